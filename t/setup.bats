#!/usr/bin/env bats
# bch setup: the harnesses' files get our entries and keep everything
# else; --dry-run writes nothing; --remove gives the files back; --wake
# installs the wake service (never through a real systemctl or scan dir).
load helper
bats_require_minimum_version 1.5.0

local_setup() {
	unset XDG_CONFIG_HOME XDG_DATA_HOME CODEX_HOME
	FAKE="$BATS_TEST_TMPDIR/fake"
	mkdir -p "$FAKE"
	# Stand-ins that record their argv: a real one must never run here.
	for t in systemctl launchctl; do
		printf '#!/bin/sh\necho "$*" >>"%s/%s.log"\n' "$BATS_TEST_TMPDIR" "$t" >"$FAKE/$t"
		chmod +x "$FAKE/$t"
	done
	export PATH="$FAKE:$PATH"
	export BCH_S6_SCANDIR="$BATS_TEST_TMPDIR/scan"
	BCH="$T_ROOT/bin/bch"
	HOOK="$T_ROOT/bin/bch-drain --hook --here"
	ORIG="$BATS_TEST_TMPDIR/orig"
}

local_teardown() {
	if [ -n "${OTHER_HOME:-}" ]; then
		rm -rf "$OTHER_HOME"
	fi
	if [ -n "${SVSCAN_PID:-}" ]; then
		s6-svscanctl -t "$BCH_S6_SCANDIR" 2>/dev/null || kill "$SVSCAN_PID" 2>/dev/null
		wait "$SVSCAN_PID" 2>/dev/null || true
	fi
}

# fixtures: the user's own configuration, in each harness's file, and a
# copy of it in $ORIG.
fixtures() {
	mkdir -p "$HOME/.claude" "$HOME/.codex" "$HOME/.gemini"
	cat >"$HOME/.claude/settings.json" <<'EOF'
{
  "model": "opus",
  "permissions": {
    "allow": ["Bash(npm test:*)"]
  },
  "hooks": {
    "PreToolUse": [
      {
        "matcher": "Bash",
        "hooks": [
          {
            "type": "command",
            "command": "~/bin/check-bash"
          }
        ]
      }
    ],
    "UserPromptSubmit": [
      {
        "hooks": [
          {
            "type": "command",
            "command": "date"
          }
        ]
      }
    ]
  },
  "env": {
    "FOO": "bar \u00e9"
  }
}
EOF
	printf '%s' '{"numStartups":12,"mcpServers":{"other":{"type":"stdio","command":"npx","args":["other-mcp"],"env":{}}},"projects":{"/src/app":{"allowedTools":[],"mcpServers":{}}},"userID":"abc"}' \
		>"$HOME/.claude.json"
	cat >"$HOME/.codex/config.toml" <<'EOF'
# my codex config
model = "o4-mini"
approval_policy = "on-request"
notes = """
[not a table]
"""

[mcp_servers.other]
command = "npx"
args = [
  "-y",
  ["nested"],
]

# the profile I use at work
[profiles.work]
model = "o3"
EOF
	printf '# My instructions\n\nAlways run the tests.\n' >"$HOME/.codex/AGENTS.md"
	printf '{\n\t"theme": "Dracula",\n\t"mcpServers": {\n\t\t"git": {\n\t\t\t"command": "uvx",\n\t\t\t"args": ["mcp-server-git"]\n\t\t}\n\t}\n}\n' \
		>"$HOME/.gemini/settings.json"
	chmod 640 "$HOME/.claude/settings.json"
	chmod 600 "$HOME/.claude.json"
	chmod 604 "$HOME/.codex/config.toml"
	rm -rf "$ORIG"
	cp -a "$HOME" "$ORIG"
}

# snapshot: every file under HOME with its content hash and mode.
snapshot() {
	(cd "$HOME" && find . -type f -print0 | sort -z | xargs -0 sha256sum &&
		find . -printf '%m %y %p\n' | sort)
}

# same FILE...: each file under HOME is byte for byte as in the fixtures.
same() {
	local f
	for f in "$@"; do cmp "$HOME/$f" "$ORIG/$f" || return 1; done
}

FILES=(.claude/settings.json .claude.json .codex/config.toml .codex/AGENTS.md .gemini/settings.json)

@test "setup adds our entries and keeps everything else, in order" {
	fixtures
	run bch setup
	assert_success
	s="$HOME/.claude/settings.json"
	assert_equal "$(jq -c 'keys_unsorted' "$s")" '["model","permissions","hooks","env"]'
	assert_equal "$(jq -c '.hooks | keys_unsorted' "$s")" '["PreToolUse","UserPromptSubmit","SessionStart"]'
	assert_equal "$(jq -c '.hooks.PreToolUse' "$s")" "$(jq -c '.hooks.PreToolUse' "$ORIG/.claude/settings.json")"
	assert_equal "$(jq -c '.hooks.UserPromptSubmit' "$s")" \
		"[{\"hooks\":[{\"type\":\"command\",\"command\":\"date\"}]},{\"hooks\":[{\"type\":\"command\",\"command\":\"$HOOK\"}]}]"
	assert_equal "$(jq -c '.hooks.SessionStart' "$s")" \
		"[{\"hooks\":[{\"type\":\"command\",\"command\":\"$HOOK\"}]}]"
	assert_equal "$(jq -c '.env, .permissions' "$s")" "$(jq -c '.env, .permissions' "$ORIG/.claude/settings.json")"
	# The text around our entries is the user's, byte for byte.
	grep -qF '"FOO": "bar \u00e9"' "$s"
	c="$HOME/.claude.json"
	assert_equal "$(jq -c 'keys_unsorted' "$c")" '["numStartups","mcpServers","projects","userID"]'
	assert_equal "$(jq -c '.mcpServers | keys_unsorted' "$c")" '["other","backchannel"]'
	assert_equal "$(jq -c '.mcpServers.backchannel' "$c")" "{\"type\":\"stdio\",\"command\":\"$BCH\",\"args\":[\"mcp\",\"--here\"]}"
	assert_equal "$(jq -c '.projects' "$c")" '{"/src/app":{"allowedTools":[],"mcpServers":{}}}'
	t="$HOME/.codex/config.toml"
	head -c "$(stat -c %s "$ORIG/.codex/config.toml")" "$t" | cmp - "$ORIG/.codex/config.toml"
	assert_equal "$(tail -n 4 "$t")" "
[mcp_servers.backchannel]
command = \"$BCH\"
args = [\"mcp\", \"--here\"]"
	a="$HOME/.codex/AGENTS.md"
	head -c "$(stat -c %s "$ORIG/.codex/AGENTS.md")" "$a" | cmp - "$ORIG/.codex/AGENTS.md"
	grep -qx '<!-- backchannel:begin -->' "$a" && grep -qx '<!-- backchannel:end -->' "$a"
	grep -qi 'untrusted' "$a"
	g="$HOME/.gemini/settings.json"
	assert_equal "$(jq -c 'keys_unsorted' "$g")" '["theme","mcpServers"]'
	assert_equal "$(jq -c '.mcpServers | keys_unsorted' "$g")" '["git","backchannel"]'
	assert_equal "$(jq -c '.mcpServers.backchannel' "$g")" "{\"command\":\"$BCH\",\"args\":[\"mcp\",\"--here\"]}"
	# The new member follows the file's own indentation (tabs here).
	grep -q "^		\"backchannel\": {$" "$g"
	grep -qx '<!-- backchannel:begin -->' "$HOME/.gemini/GEMINI.md"
}

@test "the skill is the repository's SKILL.md, with front matter Claude Code reads" {
	mkdir -p "$HOME/.claude"
	run bch setup
	assert_success
	# The repository's SKILL.md, then one line saying setup wrote it,
	# with the SHA-256 of the text above.
	head -n -1 "$HOME/.claude/skills/backchannel/SKILL.md" | cmp - "$T_ROOT/SKILL.md"
	mark=$(tail -n 1 "$HOME/.claude/skills/backchannel/SKILL.md")
	[[ $mark == "<!-- written by bch setup, sha256 $(sha256sum <"$T_ROOT/SKILL.md" | cut -d' ' -f1): "*' -->' ]]
	[ "$(sed -n 1p "$T_ROOT/SKILL.md")" = --- ]
	sed -n '2,/^---$/p' "$T_ROOT/SKILL.md" | grep -qx 'name: backchannel'
	sed -n '2,/^---$/p' "$T_ROOT/SKILL.md" | grep -q '^description: .\{40,\}'
}

@test "a SKILL.md setup did not write is kept as SKILL.md.bak-backchannel, said on stderr, and --remove puts it back" {
	S=$HOME/.claude/skills/backchannel
	mkdir -p "$S"
	printf 'my own skill\n' >"$S/SKILL.md"
	chmod 600 "$S/SKILL.md"
	run --separate-stderr bch setup
	assert_success
	[ "$(cat "$S/SKILL.md.bak-backchannel")" = 'my own skill' ]
	[ "$(stat -c %a "$S/SKILL.md.bak-backchannel")" = 600 ]
	assert_equal "$stderr" "bch-setup: $S/SKILL.md: not the skill as setup wrote it — kept it as $S/SKILL.md.bak-backchannel"
	assert_line "claude: $S/SKILL.md: updated the skill (the file as it was is kept in $S/SKILL.md.bak-backchannel)"
	head -n -1 "$S/SKILL.md" | cmp - "$T_ROOT/SKILL.md"
	run --separate-stderr bch setup
	assert_success
	assert_line "claude: $S/SKILL.md: the skill already there"
	assert_equal "$stderr" ''
	run bch setup --remove
	assert_success
	assert_line "claude: $S/SKILL.md: removed the skill, and put back the file that was there before (from $S/SKILL.md.bak-backchannel)"
	[ "$(cat "$S/SKILL.md")" = 'my own skill' ]
	[ "$(stat -c %a "$S/SKILL.md")" = 600 ]
	[ ! -e "$S/SKILL.md.bak-backchannel" ]
}

@test "an edited skill is kept before setup replaces it; an edit the backup cannot take is refused, and --remove leaves it" {
	S=$HOME/.claude/skills/backchannel
	mkdir -p "$HOME/.claude"
	bch setup >/dev/null
	echo 'my note' >>"$S/SKILL.md"
	first=$(cat "$S/SKILL.md")
	run --separate-stderr bch setup
	assert_success
	assert_equal "$(cat "$S/SKILL.md.bak-backchannel")" "$first"
	assert_equal "$stderr" "bch-setup: $S/SKILL.md: not the skill as setup wrote it — kept it as $S/SKILL.md.bak-backchannel"
	head -n -1 "$S/SKILL.md" | cmp - "$T_ROOT/SKILL.md"
	echo 'another note' >>"$S/SKILL.md"
	second=$(cat "$S/SKILL.md")
	run --separate-stderr bch setup
	assert_equal "$status" 100
	assert_equal "$stderr" "bch-setup: $S/SKILL.md: not the skill as setup wrote it, and its backup $S/SKILL.md.bak-backchannel holds another file: move that backup away first — left it untouched; fix it and run bch setup again"
	assert_equal "$(cat "$S/SKILL.md")" "$second"
	assert_equal "$(cat "$S/SKILL.md.bak-backchannel")" "$first"
	run bch setup --remove
	assert_line "claude: $S/SKILL.md: not the skill as setup wrote it (changed since) — left it"
	assert_equal "$(cat "$S/SKILL.md")" "$second"
}

@test "setup's own skill, older or as an older setup wrote it, is replaced without a backup" {
	S=$HOME/.claude/skills/backchannel
	mkdir -p "$HOME/.claude"
	sed 's/^# backchannel: messages between agents$/# backchannel, an older skill/' "$T_ROOT/SKILL.md" >old.md
	bch setup --skill old.md >/dev/null
	run --separate-stderr bch setup
	assert_success
	assert_line "claude: $S/SKILL.md: updated the skill"
	assert_equal "$stderr" ''
	[ ! -e "$S/SKILL.md.bak-backchannel" ]
	# Setups before the mark wrote the shipped file as it is.
	cp "$T_ROOT/SKILL.md" "$S/SKILL.md"
	run --separate-stderr bch setup
	assert_line "claude: $S/SKILL.md: updated the skill"
	assert_equal "$stderr" ''
	[ ! -e "$S/SKILL.md.bak-backchannel" ]
	cp "$T_ROOT/SKILL.md" "$S/SKILL.md"
	run bch setup --remove
	assert_line "claude: $S/SKILL.md: removed the skill"
	[ ! -e "$S" ]
}

@test "each changed file is backed up once, as it was" {
	fixtures
	run bch setup
	assert_success
	for f in "${FILES[@]}"; do
		cmp "$HOME/$f.bak-backchannel" "$ORIG/$f"
		[ "$(stat -c %a "$HOME/$f.bak-backchannel")" = "$(stat -c %a "$ORIG/$f")" ]
	done
	[ ! -e "$HOME/.gemini/GEMINI.md.bak-backchannel" ] # setup created it
	bch setup --remove >/dev/null
	bch setup >/dev/null
	for f in "${FILES[@]}"; do cmp "$HOME/$f.bak-backchannel" "$ORIG/$f"; done
}

@test "running setup twice changes nothing the second time" {
	fixtures
	bch setup >/dev/null
	before=$(snapshot)
	run bch setup
	assert_success
	assert_output --partial 'already there'
	refute_output --partial 'added'
	assert_equal "$(snapshot)" "$before"
}

@test "--dry-run says what it would do and changes nothing" {
	fixtures
	before=$(snapshot)
	run bch setup --dry-run
	assert_success
	assert_output --partial "claude: $HOME/.claude/settings.json: would add the UserPromptSubmit and SessionStart hooks"
	assert_output --partial "would install the skill"
	assert_output --partial "gemini: $HOME/.gemini/GEMINI.md: would add the backchannel section (a new file)"
	assert_equal "$(snapshot)" "$before"
	bch setup >/dev/null
	before=$(snapshot)
	run bch setup --remove --dry-run
	assert_success
	assert_output --partial 'would remove'
	assert_equal "$(snapshot)" "$before"
}

@test "--remove gives every file back exactly as it was" {
	fixtures
	bch setup >/dev/null
	run bch setup --remove
	assert_success
	assert_output --partial "claude: $HOME/.claude/settings.json: removed the UserPromptSubmit and SessionStart hooks"
	same "${FILES[@]}"
	[ ! -e "$HOME/.gemini/GEMINI.md" ] # setup had created it
	[ ! -e "$HOME/.claude/skills/backchannel" ]
	for f in "${FILES[@]}"; do
		[ "$(stat -c %a "$HOME/$f")" = "$(stat -c %a "$ORIG/$f")" ]
	done
	# Only the backups are new.
	diff <(cd "$ORIG" && find . -type f | sort) \
		<(cd "$HOME" && find . -type f ! -name '*.bak-backchannel' | sort)
	run bch setup --remove
	assert_success
	assert_output --partial 'nothing of setup'
	same "${FILES[@]}"
}

@test "--remove takes out only what setup added, keeping later edits" {
	fixtures
	bch setup >/dev/null
	jq '.model = "sonnet"' "$HOME/.claude/settings.json" >x.json && cat x.json >"$HOME/.claude/settings.json"
	printf '\nmore of mine\n' >>"$HOME/.codex/AGENTS.md"
	bch setup --remove >/dev/null
	[ "$(jq -r .model "$HOME/.claude/settings.json")" = sonnet ]
	[ "$(jq -c .hooks.UserPromptSubmit "$HOME/.claude/settings.json")" = \
		'[{"hooks":[{"type":"command","command":"date"}]}]' ]
	[ "$(jq -r '.hooks.SessionStart' "$HOME/.claude/settings.json")" = null ]
	grep -q 'more of mine' "$HOME/.codex/AGENTS.md"
	! grep -q backchannel "$HOME/.codex/AGENTS.md" || false
	grep -q '^Always run the tests.$' "$HOME/.codex/AGENTS.md"
}

@test "a settings.json of only white space comes back as it was after --remove" {
	mkdir -p "$HOME/.claude"
	printf '\n  \n' >"$HOME/.claude/settings.json"
	cp "$HOME/.claude/settings.json" before.json
	bch setup >/dev/null
	jq -e .hooks.SessionStart "$HOME/.claude/settings.json" >/dev/null
	bch setup --remove >/dev/null
	cmp "$HOME/.claude/settings.json" before.json
}

@test "a Codex or markdown file without a final line end comes back without one after --remove" {
	mkdir -p "$HOME/.codex"
	printf 'model = "o3"' >"$HOME/.codex/config.toml"
	printf '# Mine\n\nNo line end here' >"$HOME/.codex/AGENTS.md"
	cp -a "$HOME" "$ORIG"
	bch setup >/dev/null
	grep -q '^\[mcp_servers.backchannel\]$' "$HOME/.codex/config.toml"
	grep -q '^No line end here$' "$HOME/.codex/AGENTS.md"
	bch setup --remove >/dev/null
	same .codex/config.toml
	same .codex/AGENTS.md
	# Our keys added to the user's table at the end of the file.
	printf '[mcp_servers.backchannel]\nenv = { A = "1" }' >"$HOME/.codex/config.toml"
	cp "$HOME/.codex/config.toml" "$ORIG/.codex/config.toml"
	rm "$HOME/.codex/config.toml.bak-backchannel"
	bch setup >/dev/null
	grep -q '^args = ' "$HOME/.codex/config.toml"
	bch setup --remove >/dev/null
	same .codex/config.toml
}

@test "lines added to a JSON file with CRLF line ends end in CRLF too" {
	mkdir -p "$HOME/.claude"
	printf '{\r\n  "model": "opus",\r\n  "hooks": {}\r\n}\r\n' >"$HOME/.claude/settings.json"
	cp "$HOME/.claude/settings.json" before.json
	bch setup >/dev/null
	jq -e .hooks.SessionStart "$HOME/.claude/settings.json" >/dev/null
	[ "$(tr -d '\r' <"$HOME/.claude/settings.json" | wc -l)" -gt 10 ]
	! grep -q "$(printf '[^\r]$')" "$HOME/.claude/settings.json" || false
	bch setup --remove >/dev/null
	cmp "$HOME/.claude/settings.json" before.json
}

@test "file modes are kept" {
	fixtures
	bch setup >/dev/null
	for f in "${FILES[@]}"; do
		[ "$(stat -c %a "$HOME/$f")" = "$(stat -c %a "$ORIG/$f")" ]
	done
	[ "$(stat -c %a "$HOME/.claude/settings.json")" = 640 ]
	[ "$(stat -c %a "$HOME/.codex/config.toml")" = 604 ]
}

@test "a file that is not JSON is left untouched, with a clear error and 100" {
	fixtures
	printf '{\n  "model": "opus",\n}\n' >"$HOME/.claude/settings.json"
	cp "$HOME/.claude/settings.json" bad.json
	run --separate-stderr bch setup
	assert_failure 100
	[[ $stderr == "bch-setup: $HOME/.claude/settings.json: not valid JSON ("*") — left it untouched; fix it and run bch setup again" ]]
	cmp "$HOME/.claude/settings.json" bad.json
	[ ! -e "$HOME/.claude/settings.json.bak-backchannel" ]
	# The other files are still done.
	[ "$(jq -r .mcpServers.backchannel.command "$HOME/.claude.json")" = "$BCH" ]
	grep -q 'mcp_servers.backchannel' "$HOME/.codex/config.toml"
}

@test "a Gemini settings.json with comments, as Gemini CLI allows: our server is added, every comment kept, and --remove gives it back" {
	mkdir -p "$HOME/.gemini"
	cat >"$HOME/.gemini/settings.json" <<'EOF'
{
  // my theme
  "theme": "Dracula", /* dark */
  "url": "http://example.com/*not a comment*/",
  "mcpServers": {
    // git server
    "git": {
      "command": "uvx", // uv
      "args": ["mcp-server-git"]
    } // end git
  }
}
EOF
	cp "$HOME/.gemini/settings.json" before.json
	run bch setup
	assert_success
	assert_line --partial "gemini: $HOME/.gemini/settings.json: added the MCP server mcpServers.backchannel"
	sed 's#/\* dark \*/##; s# *// .*##' "$HOME/.gemini/settings.json" >stripped.json
	[ "$(jq -r .mcpServers.backchannel.command stripped.json)" = "$BCH" ]
	[ "$(jq -r .mcpServers.git.command stripped.json)" = uvx ]
	[ "$(jq -r .url stripped.json)" = 'http://example.com/*not a comment*/' ]
	[ "$(grep -c -e '// ' -e '/\* dark' "$HOME/.gemini/settings.json")" = 5 ]
	! grep -q '^ *$' "$HOME/.gemini/settings.json" || false
	cp "$HOME/.gemini/settings.json" after.json
	bch setup >/dev/null
	cmp "$HOME/.gemini/settings.json" after.json
	bch setup --remove >/dev/null
	cmp "$HOME/.gemini/settings.json" before.json
}

@test "a comment where our Gemini entry goes is refused untouched; a comment in Claude Code's JSON, which it rejects, is too" {
	mkdir -p "$HOME/.gemini" "$HOME/.claude"
	printf '{"mcpServers": { /* none yet */ }}\n' >"$HOME/.gemini/settings.json"
	printf '{\n  // mine\n  "model": "opus"\n}\n' >"$HOME/.claude/settings.json"
	cp "$HOME/.gemini/settings.json" gemini.json
	cp "$HOME/.claude/settings.json" claude.json
	run --separate-stderr bch setup
	assert_failure 100
	[[ $stderr == *"bch-setup: $HOME/.gemini/settings.json: a comment is where setup's entry goes, and would be lost or doubled — move it — left it untouched"* ]]
	[[ $stderr == *"bch-setup: $HOME/.claude/settings.json: not valid JSON (a comment) — left it untouched"* ]]
	cmp "$HOME/.gemini/settings.json" gemini.json
	cmp "$HOME/.claude/settings.json" claude.json
}

@test "a value of the wrong type on our path is refused untouched" {
	fixtures
	printf '{"hooks": []}\n' >"$HOME/.claude/settings.json"
	run --separate-stderr bch setup
	assert_failure 100
	[[ $stderr == *"settings.json: hooks is not an object"* ]]
	[ "$(cat "$HOME/.claude/settings.json")" = '{"hooks": []}' ]
}

@test "the installed hook runs as Claude Code runs it: scoped messages, or nothing" {
	agents bob alice
	mkdir -p "$HOME/.claude" repo/.git other
	printf '[remote "origin"]\n\turl = git@github.com:Acme/API.git\n' >repo/.git/config
	bch setup >/dev/null
	for ev in UserPromptSubmit SessionStart; do
		cmd=$(jq -r ".hooks.$ev[0].hooks[0].command" "$HOME/.claude/settings.json")
		assert_equal "$cmd" "$HOOK"
		# Nothing waiting: nothing at all.
		run --separate-stderr sh -c "cd repo && echo '{\"hook_event_name\":\"$ev\"}' | $cmd"
		assert_success
		[ -z "$output" ] && [ -z "$stderr" ]
	done
	as alice bch send @bob "rebase on main" --scope acme/api >/dev/null
	input='{"session_id":"s1","hook_event_name":"UserPromptSubmit","prompt":"go on"}'
	cmd=$(jq -r '.hooks.UserPromptSubmit[0].hooks[0].command' "$HOME/.claude/settings.json")
	run --separate-stderr sh -c "cd other && $cmd" <<<"$input"
	assert_success
	[ -z "$output" ]
	run --separate-stderr sh -c "cd repo && $cmd" <<<"$input"
	assert_success
	assert_line -n 0 '[backchannel] 1 message(s) for bob:'
	assert_output --regexp '--- begin message [0-9a-f]{8} from alice \[[^]]+\]: '
	assert_output --partial 'rebase on main'
	assert_output --regexp '--- end message [0-9a-f]{8} \[[^]]+\] ---'
}

@test "a bch-drain path with a space is quoted for the shell in the hook" {
	mkdir -p "$HOME/.claude" "odd dir"
	cp "$T_ROOT"/bin/bch "$T_ROOT"/bin/bch-setup "$T_ROOT"/bin/bch-drain "odd dir/"
	cp "$T_ROOT/SKILL.md" .
	run "$PWD/odd dir/bch-setup" --skill SKILL.md
	assert_success
	cmd=$(jq -r '.hooks.UserPromptSubmit[0].hooks[0].command' "$HOME/.claude/settings.json")
	assert_equal "$cmd" "'$PWD/odd dir/bch-drain' --hook --here"
	agents bob
	run sh -c "$cmd" </dev/null
	assert_success
	assert_output ''
}

@test "a hook of an older setup is replaced, not doubled" {
	mkdir -p "$HOME/.claude"
	printf '{"hooks":{"SessionStart":[{"hooks":[{"type":"command","command":"/old/bin/bch drain --hook --here"}]}]}}\n' \
		>"$HOME/.claude/settings.json"
	run bch setup
	assert_success
	assert_line "claude: $HOME/.claude/settings.json: added the UserPromptSubmit and SessionStart hooks (the file as it was is kept in $HOME/.claude/settings.json.bak-backchannel)"
	assert_equal "$(jq -c '.hooks.SessionStart' "$HOME/.claude/settings.json")" \
		"[{\"hooks\":[{\"type\":\"command\",\"command\":\"$HOOK\"}]}]"
	run bch setup
	assert_line "claude: $HOME/.claude/settings.json: the UserPromptSubmit and SessionStart hooks already there"
	# It was setup's own: remove takes it out too (the backup has it).
	bch setup --remove >/dev/null
	[ "$(cat "$HOME/.claude/settings.json")" = '{"hooks":{"SessionStart":[]}}' ]
}

@test "old and new hook forms elsewhere, quoted or not, are setup's: replaced, then removed" {
	mkdir -p "$HOME/.claude"
	printf '%s\n' '{"hooks":{' \
		'"UserPromptSubmit":[{"hooks":[{"type":"command","command":"'"'/old dir/bch-drain'"' --hook --here"}]}],' \
		'"SessionStart":[{"hooks":[{"type":"command","command":"date"}]},{"hooks":[{"type":"command","command":"'"'/old dir/bch'"' drain --hook --here"}]}]}}' \
		>"$HOME/.claude/settings.json"
	bch setup >/dev/null
	assert_equal "$(jq -c '.hooks' "$HOME/.claude/settings.json")" \
		"{\"UserPromptSubmit\":[{\"hooks\":[{\"type\":\"command\",\"command\":\"$HOOK\"}]}],\"SessionStart\":[{\"hooks\":[{\"type\":\"command\",\"command\":\"date\"}]},{\"hooks\":[{\"type\":\"command\",\"command\":\"$HOOK\"}]}]}"
	# The old forms, put back by hand: --remove takes them out as well.
	printf '%s\n' '{"hooks":{' \
		'"UserPromptSubmit":[{"hooks":[{"type":"command","command":"/old/bin/bch-drain --hook --here"}]}],' \
		'"SessionStart":[{"hooks":[{"type":"command","command":"date"}]},{"hooks":[{"type":"command","command":"/old/bin/bch drain --hook --here"}]}]}}' \
		>"$HOME/.claude/settings.json"
	bch setup --remove >/dev/null
	assert_equal "$(jq -c '.hooks' "$HOME/.claude/settings.json")" \
		'{"UserPromptSubmit":[],"SessionStart":[{"hooks":[{"type":"command","command":"date"}]}]}'
}

@test "a hook that only looks like ours is the user's: kept, ours added beside it" {
	mkdir -p "$HOME/.claude"
	printf '{"hooks":{"SessionStart":[{"hooks":[{"type":"command","command":"/x/notbch drain --hook --here"}]},{"hooks":[{"type":"command","command":"/x/bch-drainer --hook --here"}]}]}}\n' \
		>"$HOME/.claude/settings.json"
	bch setup >/dev/null
	assert_equal "$(jq -r '.hooks.SessionStart[].hooks[0].command' "$HOME/.claude/settings.json")" \
		"/x/notbch drain --hook --here
/x/bch-drainer --hook --here
$HOOK"
	bch setup --remove >/dev/null
	assert_equal "$(jq -r '.hooks.SessionStart[].hooks[0].command' "$HOME/.claude/settings.json")" \
		"/x/notbch drain --hook --here
/x/bch-drainer --hook --here"
}

@test "our hook in a group beside the user's: --remove takes out ours and keeps theirs" {
	mkdir -p "$HOME/.claude"
	s="$HOME/.claude/settings.json"
	bch setup >/dev/null
	# As Claude Code's /hooks may: the user's hook in the same group.
	jq '.hooks.UserPromptSubmit[0].hooks += [{"type":"command","command":"echo mine"}]' "$s" >x.json
	cat x.json >"$s"
	run bch setup
	assert_line "claude: $s: the UserPromptSubmit and SessionStart hooks already there"
	run bch setup --remove
	assert_success
	assert_line "claude: $s: removed the UserPromptSubmit and SessionStart hooks"
	! grep -q 'bch-drain' "$s" || false
	assert_equal "$(jq -c .hooks "$s")" '{"UserPromptSubmit":[{"hooks":[{"type":"command","command":"echo mine"}]}]}'
	run bch setup --remove
	assert_line "claude: $s: nothing of setup's to remove"
}

# Our hooks went into the first of two "hooks" members, which Claude Code
# (JSON.parse: the last one wins) never reads.
@test "a key there twice: the hooks go where the harness reads them, the last one" {
	mkdir -p "$HOME/.claude"
	s="$HOME/.claude/settings.json"
	printf '%s\n' '{' '  "hooks": {},' '  "model": "x",' '  "hooks": {"Stop": []}' '}' >"$s"
	run bch setup
	assert_success
	run python3 -c 'import json, sys; h = json.load(open(sys.argv[1]))["hooks"]; print(sorted(h))' "$s"
	assert_output "['SessionStart', 'Stop', 'UserPromptSubmit']"
	grep -q '^  "hooks": {},$' "$s"
	run bch doctor
	assert_line --regexp '^ok +claude code hook UserPromptSubmit: '
	run bch setup --remove
	assert_line "claude: $s: removed the UserPromptSubmit and SessionStart hooks"
	run python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["hooks"])' "$s"
	assert_output "{'Stop': []}"
}

@test "setup and --remove name only the hooks they changed" {
	mkdir -p "$HOME/.claude"
	s="$HOME/.claude/settings.json"
	bch setup >/dev/null
	jq '.hooks.SessionStart = []' "$s" >x.json && cat x.json >"$s"
	run bch setup --dry-run
	assert_output --partial "claude: $s: would add the SessionStart hook (the file"
	run bch setup --remove
	assert_line "claude: $s: removed the UserPromptSubmit hook"
	assert_equal "$(jq -c .hooks "$s")" '{"SessionStart":[]}'
}

@test "an older hook beside the user's, or with their timeout, is updated in place and removed alone" {
	mkdir -p "$HOME/.claude"
	s="$HOME/.claude/settings.json"
	printf '%s\n' '{"hooks":{' \
		'"UserPromptSubmit":[{"hooks":[{"type":"command","command":"date"},{"type":"command","command":"/old/bin/bch drain --hook --here"}]}],' \
		'"SessionStart":[{"matcher":"startup","hooks":[{"type":"command","command":"/old/bin/bch-drain --hook --here","timeout":30}]}]}}' \
		>"$s"
	bch setup >/dev/null
	assert_equal "$(jq -c .hooks "$s")" \
		"{\"UserPromptSubmit\":[{\"hooks\":[{\"type\":\"command\",\"command\":\"date\"},{\"type\":\"command\",\"command\":\"$HOOK\"}]}],\"SessionStart\":[{\"matcher\":\"startup\",\"hooks\":[{\"type\":\"command\",\"command\":\"$HOOK\",\"timeout\":30}]}]}"
	run bch setup
	assert_line "claude: $s: the UserPromptSubmit and SessionStart hooks already there"
	bch setup --remove >/dev/null
	assert_equal "$(jq -c .hooks "$s")" '{"UserPromptSubmit":[{"hooks":[{"type":"command","command":"date"}]}],"SessionStart":[]}'
}

@test "the user's own members of our MCP entry are kept by setup and by --remove" {
	mkdir -p "$HOME/.claude" "$HOME/.gemini"
	c="$HOME/.claude.json" g="$HOME/.gemini/settings.json"
	printf '%s\n' '{"mcpServers": {"backchannel": {"command":"bch","args":["mcp"],"env":{"BACKCHANNEL_AGENT":"me-claude"}}}}' >"$c"
	printf '{\n  "mcpServers": {\n    "backchannel": {\n      "command": "bch",\n      "args": ["mcp"],\n      "trust": true\n    }\n  }\n}\n' >"$g"
	run bch setup
	assert_success
	assert_equal "$(jq -c .mcpServers "$c")" "{\"backchannel\":{\"command\":\"$BCH\",\"args\":[\"mcp\",\"--here\"],\"env\":{\"BACKCHANNEL_AGENT\":\"me-claude\"},\"type\":\"stdio\"}}"
	assert_equal "$(jq -c .mcpServers "$g")" "{\"backchannel\":{\"command\":\"$BCH\",\"args\":[\"mcp\",\"--here\"],\"trust\":true}}"
	run bch setup
	assert_line "claude: $c: the MCP server mcpServers.backchannel already there"
	assert_line "gemini: $g: the MCP server mcpServers.backchannel already there"
	bch setup --remove >/dev/null
	assert_equal "$(jq -c .mcpServers "$c")" '{"backchannel":{"env":{"BACKCHANNEL_AGENT":"me-claude"}}}'
	assert_equal "$(jq -c .mcpServers "$g")" '{"backchannel":{"trust":true}}'
	# Added after setup: kept the same way; with nothing of the user's
	# left, the entry goes whole.
	printf '{"mcpServers":{}}\n' >"$c"
	bch setup >/dev/null
	jq -c '.mcpServers.backchannel.env = {"A":"1"}' "$c" >x.json && cat x.json >"$c"
	bch setup >/dev/null
	assert_equal "$(jq -c .mcpServers.backchannel.env "$c")" '{"A":"1"}'
	bch setup --remove >/dev/null
	assert_equal "$(jq -c . "$c")" '{"mcpServers":{"backchannel":{"env":{"A":"1"}}}}'
	jq -c 'del(.mcpServers.backchannel.env)' "$c" >x.json && cat x.json >"$c"
	bch setup >/dev/null
	bch setup --remove >/dev/null
	assert_equal "$(jq -c . "$c")" '{"mcpServers":{}}'
}

@test "without bch-drain beside bch or on PATH: one line says so, nothing is written" {
	mkdir -p "$HOME/.claude" lone
	cp "$T_ROOT"/bin/bch "$T_ROOT"/bin/bch-setup lone/
	cp "$T_ROOT/SKILL.md" .
	run --separate-stderr env PATH=/usr/bin:/bin "$PWD/lone/bch-setup" --skill SKILL.md
	assert_failure 100
	assert_equal "$stderr" "bch-setup: cannot find the bch-drain program beside $PWD/lone/bch or on PATH — run make install"
	[ -z "$output" ]
	[ -z "$(ls -A "$HOME/.claude")" ]
	[ ! -e "$HOME/.claude.json" ]
}

@test "an existing [mcp_servers.backchannel] table is replaced in place" {
	mkdir -p "$HOME/.codex"
	printf '[mcp_servers.backchannel]\ncommand = "/old/bch"\nargs = ["mcp"]\n\n# next\n[mcp_servers.z]\ncommand = "z"\n' \
		>"$HOME/.codex/config.toml"
	run bch setup
	assert_success
	assert_equal "$(cat "$HOME/.codex/config.toml")" "[mcp_servers.backchannel]
command = \"$BCH\"
args = [\"mcp\", \"--here\"]

# next
[mcp_servers.z]
command = \"z\""
}

# toml_ok FILE: FILE is valid TOML, as Python reads it.
toml_ok() {
	python3 -c 'import sys, tomllib; tomllib.load(open(sys.argv[1], "rb"))' "$1"
}

@test "the user's keys in our Codex table are kept by setup and by --remove" {
	mkdir -p "$HOME/.codex"
	c="$HOME/.codex/config.toml"
	printf '[mcp_servers.backchannel]\ncommand = "bch"\nargs = [\n  "mcp",\n]\nenv = { BACKCHANNEL_AGENT = "me-codex" }\n\n[other]\nx = 1\n' >"$c"
	run bch setup
	assert_success
	assert_equal "$(cat "$c")" "[mcp_servers.backchannel]
command = \"$BCH\"
args = [\"mcp\", \"--here\"]
env = { BACKCHANNEL_AGENT = \"me-codex\" }

[other]
x = 1"
	run bch setup
	assert_output --partial "codex: $c: the MCP server [mcp_servers.backchannel] already there"
	bch setup --remove >/dev/null
	assert_equal "$(cat "$c")" '[mcp_servers.backchannel]
env = { BACKCHANNEL_AGENT = "me-codex" }

[other]
x = 1'
	# Added after setup, at the end of the file: kept the same way.
	printf 'x = 1\n' >"$c"
	bch setup >/dev/null
	printf 'startup_timeout_sec = 30' >>"$c"
	bch setup >/dev/null
	toml_ok "$c"
	bch setup --remove >/dev/null
	assert_equal "$(cat "$c")" 'x = 1

[mcp_servers.backchannel]
startup_timeout_sec = 30'
}

@test "a Codex table defined by dotted keys or inline is left untouched, with one line and 100" {
	mkdir -p "$HOME/.codex" "$HOME/.claude"
	c="$HOME/.codex/config.toml"
	for t in '[mcp_servers]\nbackchannel = { command = "bch", args = ["mcp"] }\n' \
		'model = "o3"\nmcp_servers.backchannel.command = "bch"\n' \
		'[mcp_servers]\nbackchannel.command = "bch"\nbackchannel.args = ["mcp"]\n' \
		'mcp_servers = { other = { command = "x" } }\n' \
		'[[mcp_servers]]\ncommand = "x"\n'; do
		printf "$t" >"$c"
		cp "$c" before.toml
		toml_ok "$c"
		run --separate-stderr bch setup
		assert_failure 100
		[[ $stderr == "bch-setup: $c: mcp_servers.backchannel is defined there by dotted keys or an inline table"*" — left it untouched; fix it and run bch setup again" ]]
		cmp "$c" before.toml
		[ ! -e "$c.bak-backchannel" ]
		# The other files are still done.
		[ "$(jq -r .mcpServers.backchannel.command "$HOME/.claude.json")" = "$BCH" ]
		run bch setup --remove
		cmp "$c" before.toml
	done
}

@test "Codex tables beside ours, dotted or inline, get ours appended as valid TOML" {
	mkdir -p "$HOME/.codex"
	c="$HOME/.codex/config.toml"
	for t in 'mcp_servers.other.command = "x"\n' \
		'[mcp_servers]\nother = { command = "x" }\n' \
		'[mcp_servers.backchannel.env]\nFOO = "1"\n'; do
		printf "$t" >"$c"
		cp "$c" before.toml
		run bch setup
		assert_success
		toml_ok "$c"
		assert_equal "$(python3 -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["mcp_servers"]["backchannel"]["command"])' "$c")" "$BCH"
		bch setup --remove >/dev/null
		cmp "$c" before.toml
		rm "$c.bak-backchannel"
	done
}

@test "setup as root on a user's HOME (sudo keeping HOME) leaves every file and directory the user's" {
	[ "$(id -u)" -eq 0 ] || skip "only root can give a file away"
	other_home
	fixtures
	chown -R 65534:65534 "$HOME"
	bch setup >/dev/null
	# No file or directory of root's: the user can still read and edit
	# their settings, and Claude Code can rewrite ~/.claude.json.
	run find "$HOME" ! -uid 65534 -o ! -gid 65534
	assert_success
	assert_output ''
	[ "$(stat -c %a "$HOME/.claude/settings.json")" = 640 ]
	bch setup --remove >/dev/null
	run find "$HOME" ! -uid 65534 -o ! -gid 65534
	assert_output ''
	same "${FILES[@]}"
}

# The temporary file beside a settings file was opened as found: run
# as root, a link the HOME's owner had put at its name (pid known from
# ps) was written through and given to them, the file it names too.
@test "setup as root writes no file through a link at its temporary name" {
	[ "$(id -u)" -eq 0 ] || skip "only root can give a file away"
	other_home
	fixtures
	chown -R 65534:65534 "$HOME"
	printf 'root only\n' >"$BATS_TEST_TMPDIR/victim"
	chmod 600 "$BATS_TEST_TMPDIR/victim"
	# exec keeps the pid, which names the temporary file.
	run sh -c 'ln "$1" "$HOME/.claude/settings.json.tmp.$$" && exec bch-setup' \
		sh "$BATS_TEST_TMPDIR/victim"
	assert_success
	grep -q bch-drain "$HOME/.claude/settings.json"
	assert_equal "$(stat -c %u:%h "$BATS_TEST_TMPDIR/victim")" 0:1
	assert_equal "$(cat "$BATS_TEST_TMPDIR/victim")" 'root only'
	assert_equal "$(stat -c %u "$HOME/.claude/settings.json")" 65534
}

# Run as root on a user's HOME, setup followed a link the user had put
# at a file it edits to root's own file, and appended its section there.
@test "setup as root on a user's HOME writes nothing through a link of theirs to a file of root's" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run setup as root"
	other_home
	mkdir "$HOME/.codex"
	printf 'root only\n' >"$OTHER_HOME/root-file"
	chmod 600 "$OTHER_HOME/root-file"
	ln -s "$OTHER_HOME/root-file" "$HOME/.codex/AGENTS.md"
	chown -R -h 65534:65534 "$HOME"
	run --separate-stderr bch setup
	assert_failure 100
	assert_equal "$stderr" "bch-setup: $HOME/.codex/AGENTS.md: cannot read it: Permission denied — left it untouched; fix it and run bch setup again"
	assert_equal "$(cat "$OTHER_HOME/root-file")" 'root only'
	assert_equal "$(stat -c %u:%g:%a "$OTHER_HOME/root-file")" 0:0:600
	# The rest is done, as the user's.
	grep -q backchannel "$HOME/.codex/config.toml"
	assert_equal "$(stat -c %u "$HOME/.codex/config.toml")" 65534
}

# Root that may not change its ids (a container without CAP_SETUID and
# CAP_SETGID) cannot become the user: setup says so and edits nothing.
@test "setup as root that cannot become the user whose HOME it is: one line, exit 100, nothing touched" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run setup as root"
	command -v setpriv >/dev/null || skip "no setpriv"
	setpriv --bounding-set -setuid,-setgid true 2>/dev/null || skip "setpriv cannot drop capabilities here"
	other_home
	fixtures
	chown -R 65534:65534 "$HOME"
	run --separate-stderr setpriv --bounding-set -setuid,-setgid "$T_ROOT/bin/bch-setup"
	assert_failure 100
	assert_output ''
	assert_equal "$stderr" "bch-setup: cannot become uid 65534, the owner of HOME ($HOME), to edit its files (setgroups: Operation not permitted) — run bch setup as that user; nothing was changed"
	same "${FILES[@]}"
	run find "$HOME" -name '*backchannel*'
	assert_output ''
}

# The user whose HOME it is cannot read a BACKCHANNEL_HOME of root's:
# setup, run as them, says so and installs nothing.
@test "--wake as root on a user's HOME with a BACKCHANNEL_HOME only root can read installs nothing" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run setup as root"
	agents bob
	other_home
	chown -R 0:0 "$BACKCHANNEL_HOME"
	chmod 700 "$BACKCHANNEL_HOME"
	run --separate-stderr bch setup --no-hooks --wake --service systemd
	assert_failure 100
	assert_equal "$stderr" "bch-setup: cannot read $BACKCHANNEL_HOME/config.json: Permission denied — check the permissions of BACKCHANNEL_HOME"
	[ ! -e "$HOME/.config/systemd/user/bch-notify.service" ]
	[ ! -e "$HOME/.local/share/backchannel" ]
}

# A scan directory of root's: setup, run as the user whose HOME it is,
# cannot put the service there, and says so.
@test "--wake under s6 as root on a user's HOME, the scan directory root's: a clear error, nothing installed" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run setup as root"
	agents bob
	other_home
	export BCH_S6_SCANDIR="$OTHER_HOME/scan"
	mkdir -m 755 "$BCH_S6_SCANDIR"
	run --separate-stderr bch setup --no-hooks --wake
	assert_failure 100
	assert_equal "$stderr" "bch-setup: cannot install the s6 service in the scan directory $BCH_S6_SCANDIR: Permission denied — the service runs as you: set BCH_S6_SCANDIR to a scan directory of yours"
	[ -z "$(ls -A "$BCH_S6_SCANDIR")" ]
}

# settings_home: a HOME of user 65534's that the user can reach (the
# test's own directory is root's), holding ~/.claude/settings.json, a
# copy of it in before.json.
settings_home() {
	OTHER_HOME=$(mktemp -d /tmp/bch-setup-home.XXXXXX)
	chmod 755 "$OTHER_HOME"
	export HOME="$OTHER_HOME/home"
	mkdir -p "$HOME/.claude"
	printf '{"model": "opus"}\n' >"$HOME/.claude/settings.json"
	cp "$HOME/.claude/settings.json" before.json
	chown -R 65534:65534 "$HOME"
}

@test "a file of another user is refused untouched, when setup cannot give it back" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to make a file of another user"
	command -v setpriv >/dev/null || skip "no setpriv"
	settings_home
	chown 65533:65533 "$HOME/.claude/settings.json"
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$T_ROOT/bin/bch-setup"
	[ "$status" -eq 100 ]
	assert_output --partial "bch-setup: $HOME/.claude/settings.json: owned by another user (uid 65533) — chown it to yourself, or run bch setup as that user"
	cmp "$HOME/.claude/settings.json" before.json
	[ "$(stat -c %u "$HOME/.claude/settings.json")" = 65533 ]
	[ ! -e "$HOME/.claude/settings.json.bak-backchannel" ]
}

@test "a directory setup cannot write: the error names the file, not BACKCHANNEL_HOME, and the file is untouched" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run as another user"
	command -v setpriv >/dev/null || skip "no setpriv"
	settings_home
	chmod 555 "$HOME/.claude"
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$T_ROOT/bin/bch-setup"
	[ "$status" -eq 100 ]
	assert_output --partial "bch-setup: $HOME/.claude/settings.json: cannot create the backup $HOME/.claude/settings.json.bak-backchannel: Permission denied — left it untouched; fix it and run bch setup again"
	refute_output --partial BACKCHANNEL_HOME
	cmp "$HOME/.claude/settings.json" before.json
}

@test "a symlinked file is edited where it lives" {
	fixtures
	mkdir dotfiles
	mv "$HOME/.claude/settings.json" dotfiles/settings.json
	ln -s "$PWD/dotfiles/settings.json" "$HOME/.claude/settings.json"
	bch setup >/dev/null
	[ -L "$HOME/.claude/settings.json" ]
	jq -e '.hooks.SessionStart' dotfiles/settings.json >/dev/null
	bch setup --remove >/dev/null
	cmp dotfiles/settings.json "$ORIG/.claude/settings.json"
}

@test "--remove never deletes a symlinked file, even when only setup's entry is left in it" {
	mkdir -p "$HOME/.gemini" dotfiles
	printf '{\n  "mcpServers": {\n    "backchannel": {\n      "command": "/old/bch",\n      "args": ["mcp"]\n    }\n  }\n}\n' >dotfiles/settings.json
	printf '%s\n' '<!-- backchannel:begin -->' 'old' '<!-- backchannel:end -->' >dotfiles/GEMINI.md
	ln -s "$PWD/dotfiles/settings.json" "$HOME/.gemini/settings.json"
	ln -s "$PWD/dotfiles/GEMINI.md" "$HOME/.gemini/GEMINI.md"
	run bch setup --remove
	assert_success
	refute_output --partial "which setup had created"
	[ -L "$HOME/.gemini/settings.json" ]
	[ -L "$HOME/.gemini/GEMINI.md" ]
	[ "$(jq -c . dotfiles/settings.json)" = '{}' ]
	[ ! -s dotfiles/GEMINI.md ]
	[ -f dotfiles/GEMINI.md ]
}

@test "a directory or a dangling link where a file goes: one line naming the path once, the rest still set up" {
	mkdir -p "$HOME/.gemini/settings.json" "$HOME/.claude"
	ln -s "$BATS_TEST_TMPDIR/nowhere" "$HOME/.claude/settings.json"
	run -100 bch setup
	assert_line "bch-setup: $HOME/.gemini/settings.json: not a regular file — move it aside — left it untouched; fix it and run bch setup again"
	assert_line "bch-setup: $HOME/.claude/settings.json: a symlink to nothing — fix or remove the link — left it untouched; fix it and run bch setup again"
	assert_output --partial "GEMINI.md: added the backchannel section"
	[ -d "$HOME/.gemini/settings.json" ]
	[ -L "$HOME/.claude/settings.json" ]
}

@test "harnesses that are not there are skipped" {
	PATH="$T_ROOT/bin:/usr/bin:/bin"
	for p in claude codex gemini; do
		! command -v "$p" >/dev/null || skip "$p is installed on this machine"
	done
	run bch setup
	assert_success
	assert_line "claude: not found (no $HOME/.claude, no claude on PATH) — skipped"
	assert_line "codex: not found (no $HOME/.codex, no codex on PATH) — skipped"
	assert_line "gemini: not found (no $HOME/.gemini, no gemini on PATH) — skipped"
	[ -z "$(ls -A "$HOME")" ]
}

@test "a harness found only on PATH gets its files, and remove deletes what it created" {
	printf '#!/bin/sh\nexit 0\n' >"$FAKE/codex"
	chmod +x "$FAKE/codex"
	PATH="$FAKE:$T_ROOT/bin:/usr/bin:/bin"
	run bch setup
	assert_success
	assert_equal "$(cat "$HOME/.codex/config.toml")" "[mcp_servers.backchannel]
command = \"$BCH\"
args = [\"mcp\", \"--here\"]"
	[ "$(stat -c %a "$HOME/.codex/config.toml")" = 600 ]
	run bch setup --remove
	assert_success
	[ ! -e "$HOME/.codex/config.toml" ]
	[ ! -e "$HOME/.codex/AGENTS.md" ]
}

@test "CODEX_HOME is where Codex's files are" {
	export CODEX_HOME="$BATS_TEST_TMPDIR/codexhome"
	mkdir -p "$CODEX_HOME"
	run bch setup
	assert_success
	grep -q 'mcp_servers.backchannel' "$CODEX_HOME/config.toml"
	[ ! -e "$HOME/.codex" ]
}

@test "--wake installs a systemd --user unit and starts it through systemctl" {
	agents bob
	run bch setup --no-hooks --wake --service systemd
	assert_success
	unit="$HOME/.config/systemd/user/bch-notify.service"
	assert_output "wake: installed the systemd --user unit $unit and started it"
	assert_equal "$(cat "$BATS_TEST_TMPDIR/systemctl.log")" "--user daemon-reload
--user enable --now bch-notify.service"
	dir="$HOME/.local/share/backchannel/sv/bch-notify"
	grep -qx "ExecStart=\"$dir/run\"" "$unit"
	grep -qx "WorkingDirectory=$dir" "$unit"
	grep -qx 'WantedBy=default.target' "$unit"
	grep -q "^Environment=\"PATH=\(.*:\)\{0,1\}$T_ROOT/bin[:\"]" "$unit"
	cmp "$dir/run" "$T_ROOT/sv/bch-notify/run"
	[ -x "$dir/run" ]
	run bch setup --no-hooks --wake --service systemd
	assert_output --partial 'already installed'
	[ "$(wc -l <"$BATS_TEST_TMPDIR/systemctl.log")" -eq 2 ]
	run bch setup --remove
	assert_success
	assert_output "wake: stopped and removed the systemd --user unit $unit"
	assert_equal "$(tail -n 2 "$BATS_TEST_TMPDIR/systemctl.log")" "--user disable --now bch-notify.service
--user daemon-reload"
	[ ! -e "$unit" ]
	[ ! -e "$HOME/.local/share/backchannel" ]
}

@test "--wake when systemctl fails: the unit stays installed, setup says so with systemctl's words and exits 111" {
	agents bob
	printf '#!/bin/sh\necho "$*" >>"%s/systemctl.log"\necho "Failed to connect to bus: No medium found" >&2\nexit 1\n' \
		"$BATS_TEST_TMPDIR" >"$FAKE/systemctl"
	run --separate-stderr bch setup --no-hooks --wake --service systemd
	assert_failure 111
	unit="$HOME/.config/systemd/user/bch-notify.service"
	assert_output "wake: installed the systemd --user unit $unit"
	assert_equal "${stderr_lines[0]}" "bch-setup: systemctl did not start the service (it failed) — start it yourself: systemctl --user enable --now bch-notify.service"
	assert_equal "${stderr_lines[1]}" "bch-setup: it said: Failed to connect to bus: No medium found"
	assert_equal "${#stderr_lines[@]}" 2
	assert_equal "$(cat "$BATS_TEST_TMPDIR/systemctl.log")" "--user daemon-reload"
	[ -f "$unit" ]
	# Found but it cannot start: the line says why.
	printf '#!/nonexistent/sh\n' >"$FAKE/systemctl"
	rm "$unit"
	run --separate-stderr bch setup --no-hooks --wake --service systemd
	assert_failure 111
	assert_equal "$stderr" "bch-setup: systemctl did not start the service (cannot run $FAKE/systemctl: No such file or directory) — start it yourself: systemctl --user enable --now bch-notify.service"
}

@test "--wake without s6 picks systemd on Linux" {
	agents bob
	[ "$(uname -s)" = Linux ] || skip "Linux only"
	! pgrep -u "$(id -u)" -x s6-svscan >/dev/null || skip "an s6-svscan of this user runs here"
	unset BCH_S6_SCANDIR
	run bch setup --no-hooks --wake
	assert_success
	assert_output --partial 'systemd --user unit'
	[ -f "$HOME/.config/systemd/user/bch-notify.service" ]
	grep -q 'enable --now bch-notify.service' "$BATS_TEST_TMPDIR/systemctl.log"
}

@test "--wake with --dry-run writes nothing and runs nothing" {
	agents bob
	run bch setup --no-hooks --wake --service systemd --dry-run
	assert_success
	assert_output --partial 'would install the systemd --user unit'
	[ ! -e "$HOME/.config" ]
	[ ! -e "$HOME/.local" ]
	[ ! -e "$BATS_TEST_TMPDIR/systemctl.log" ]
}

@test "--wake without an identity, or with an unknown one, installs nothing and says why, rather than a service that fails for ever" {
	run bch setup --no-hooks --wake --service systemd
	assert_failure 100
	assert_output 'bch-setup: no identity for the wake service to watch — run bch init <name> (or set BACKCHANNEL_AGENT) first; nothing was installed'
	[ ! -e "$HOME/.config" ]
	[ ! -e "$HOME/.local" ]
	[ ! -e "$BATS_TEST_TMPDIR/systemctl.log" ]
	mkdir -p "$BCH_S6_SCANDIR"
	run bch setup --no-hooks --wake
	assert_failure 100
	assert_output --partial 'no identity for the wake service'
	[ -z "$(ls -A "$BCH_S6_SCANDIR")" ]
	# One never registered is refused the same way.
	BACKCHANNEL_AGENT=zed run bch setup --no-hooks --wake --service systemd
	assert_failure 100
	assert_output 'bch-setup: unknown agent "zed" for the wake service to watch — run bch init zed first; nothing was installed'
	[ ! -e "$BATS_TEST_TMPDIR/systemctl.log" ]
	# With one, the same command installs it.
	agents bob
	run bch setup --no-hooks --wake --service systemd
	assert_success
	grep -q 'enable --now bch-notify.service' "$BATS_TEST_TMPDIR/systemctl.log"
}

@test "--wake installs a launchd agent through launchctl when asked" {
	agents bob
	run bch setup --no-hooks --wake --service launchd
	assert_success
	plist="$HOME/Library/LaunchAgents/org.backchannel.notify.plist"
	assert_output "wake: installed the launchd agent $plist and started it"
	grep -q "<string>$HOME/.local/share/backchannel/sv/bch-notify/run</string>" "$plist"
	grep -q "load -w $plist" "$BATS_TEST_TMPDIR/launchctl.log"
	run bch setup --remove
	assert_success
	grep -q "unload -w $plist" "$BATS_TEST_TMPDIR/launchctl.log"
	[ ! -e "$plist" ]
}

@test "--wake leaves a service it did not install alone" {
	agents bob
	mkdir -p "$BCH_S6_SCANDIR/bch-notify"
	echo mine >"$BCH_S6_SCANDIR/bch-notify/run"
	run bch setup --no-hooks --wake
	assert_failure 100
	assert_output --partial 'bch-setup did not install it'
	[ "$(cat "$BCH_S6_SCANDIR/bch-notify/run")" = mine ]
	run bch setup --remove
	assert_success
	[ "$(cat "$BCH_S6_SCANDIR/bch-notify/run")" = mine ]
}

@test "--wake under s6: the service delivers a notification through a stand-in notifier" {
	command -v s6-svscan >/dev/null || skip "needs s6"
	agents bob alice
	printf '#!/bin/sh\nprintf "%%s\\n" "$*" >>"%s/notified"\n' "$BATS_TEST_TMPDIR" >"$FAKE/notify-send"
	chmod +x "$FAKE/notify-send"
	mkdir -p "$BCH_S6_SCANDIR"
	s6-svscan "$BCH_S6_SCANDIR" 2>"$BATS_TEST_TMPDIR/svscan.log" &
	SVSCAN_PID=$!
	wait_for 10 test -p "$BCH_S6_SCANDIR/.s6-svscan/control"
	run bch setup --no-hooks --wake
	assert_success
	assert_output "wake: installed the s6 service $BCH_S6_SCANDIR/bch-notify (bch-watch --urgent-only --peek | bch-notify); s6-svscan is starting it"
	[ "$(cat "$BCH_S6_SCANDIR/bch-notify/env/BACKCHANNEL_HOME")" = "$BACKCHANNEL_HOME" ]
	wait_for 20 sh -c "s6-svstat '$BCH_S6_SCANDIR/bch-notify' | grep -q ready"
	as alice bch send @bob "prod is down" --urgent >/dev/null
	as alice bch send @bob "not urgent" >/dev/null
	wait_for 20 test -s "$BATS_TEST_TMPDIR/notified"
	grep -q 'alice -> @bob \[URGENT\] prod is down' "$BATS_TEST_TMPDIR/notified"
	! grep -q 'not urgent' "$BATS_TEST_TMPDIR/notified" || false
	run bch setup --no-hooks --wake
	assert_output --partial 'already installed'
	# With no temporary directory to catch the tools' words in, they run
	# all the same: the service is stopped, then removed.
	run env TMPDIR="$BATS_TEST_TMPDIR/gone" bch setup --remove
	assert_success
	assert_output "wake: removed the s6 service $BCH_S6_SCANDIR/bch-notify"
	[ ! -e "$BCH_S6_SCANDIR/bch-notify" ]
	[ -z "$(find "$BCH_S6_SCANDIR" -mindepth 1 -maxdepth 1 ! -name .s6-svscan)" ]
	! pgrep -f "s6-supervise bch-notify" -P "$SVSCAN_PID" >/dev/null || false
}

@test "--wake under s6 with no s6-svscan: the tools' errors only after setup's own line, and --remove says plainly what it did" {
	command -v s6-svscanctl >/dev/null || skip "needs s6"
	agents bob
	mkdir -p "$BCH_S6_SCANDIR"
	run --separate-stderr bch setup --no-hooks --wake
	assert_failure 111
	assert_output "wake: installed the s6 service $BCH_S6_SCANDIR/bch-notify (bch-watch --urgent-only --peek | bch-notify)"
	assert_equal "${stderr_lines[0]}" "bch-setup: no s6-svscan answered on $BCH_S6_SCANDIR — start one (s6-svscan $BCH_S6_SCANDIR) to run the service"
	[[ "${stderr_lines[1]}" == "bch-setup: it said: s6-svscanctl: "*"$BCH_S6_SCANDIR"* ]]
	assert_equal "${#stderr_lines[@]}" 2
	# An update cannot restart it either, and says so the same way.
	echo /elsewhere >"$BCH_S6_SCANDIR/bch-notify/env/HOME"
	run --separate-stderr bch setup --no-hooks --wake
	assert_failure 111
	assert_output "wake: updated the s6 service $BCH_S6_SCANDIR/bch-notify"
	assert_equal "${stderr_lines[0]}" "bch-setup: s6-svc could not restart it — start s6-svscan $BCH_S6_SCANDIR, or run s6-svc -r $BCH_S6_SCANDIR/bch-notify"
	[[ "${stderr_lines[1]}" == "bch-setup: it said: s6-svc: "* ]]
	assert_equal "${#stderr_lines[@]}" 2
	run --separate-stderr bch setup --remove
	assert_success
	assert_output "wake: removed the s6 service directory $BCH_S6_SCANDIR/bch-notify; no s6-svscan answered on $BCH_S6_SCANDIR, so there was nothing to stop"
	assert_equal "$stderr" ""
	[ -z "$(ls -A "$BCH_S6_SCANDIR")" ]
}

@test "--wake under s6: a tool that cannot start or is killed: setup's line says why" {
	agents bob
	mkdir -p "$BCH_S6_SCANDIR"
	# Found on PATH, but exec fails (its interpreter is missing).
	printf '#!/nonexistent/sh\n' >"$FAKE/s6-svscanctl"
	chmod +x "$FAKE/s6-svscanctl"
	run --separate-stderr bch setup --no-hooks --wake
	assert_failure 111
	assert_output "wake: installed the s6 service $BCH_S6_SCANDIR/bch-notify (bch-watch --urgent-only --peek | bch-notify)"
	assert_equal "$stderr" "bch-setup: no s6-svscan answered on $BCH_S6_SCANDIR (cannot run $FAKE/s6-svscanctl: No such file or directory) — start one (s6-svscan $BCH_S6_SCANDIR) to run the service"
	# A restart whose s6-svc is killed says so.
	printf '#!/bin/sh\nkill -KILL $$\n' >"$FAKE/s6-svc"
	chmod +x "$FAKE/s6-svc"
	echo /elsewhere >"$BCH_S6_SCANDIR/bch-notify/env/HOME"
	run --separate-stderr bch setup --no-hooks --wake
	assert_failure 111
	assert_output "wake: updated the s6 service $BCH_S6_SCANDIR/bch-notify"
	assert_equal "$stderr" "bch-setup: s6-svc could not restart it ($FAKE/s6-svc was killed by signal 9) — start s6-svscan $BCH_S6_SCANDIR, or run s6-svc -r $BCH_S6_SCANDIR/bch-notify"
}

# other_home: run as root, a HOME (and a scan directory in it) of user
# 65534 that they can reach, with their BACKCHANNEL_HOME (a copy of the
# test's, as agents made it), and stand-ins for the supervisor tools
# that they can run too, first on PATH: no real one runs here. Run as
# root on that HOME, setup runs as its owner.
other_home() {
	OTHER_HOME=$(mktemp -d /tmp/bch-setup-home.XXXXXX)
	chmod 755 "$OTHER_HOME"
	export HOME="$OTHER_HOME/home"
	export BCH_S6_SCANDIR="$HOME/service"
	mkdir -p "$BCH_S6_SCANDIR" "$OTHER_HOME/fake"
	chown -R 65534:65534 "$HOME"
	if [ -d "$BACKCHANNEL_HOME" ]; then
		cp -a "$BACKCHANNEL_HOME" "$OTHER_HOME/bch"
		chown -R 65534:65534 "$OTHER_HOME/bch"
	fi
	export BACKCHANNEL_HOME="$OTHER_HOME/bch"
	for t in systemctl s6-svscanctl s6-svc; do
		printf '#!/bin/sh\nexit 0\n' >"$OTHER_HOME/fake/$t"
	done
	printf '#!/bin/sh\nexit 1\n' >"$OTHER_HOME/fake/s6-svok"
	chmod 755 "$OTHER_HOME"/fake/*
	export PATH="$OTHER_HOME/fake:$PATH"
}

# --wake wrote its files and directories as root: run with sudo keeping
# HOME, the user could neither change them nor take them out.
@test "--wake as root on a user's HOME leaves what it made the user's, and the user's --remove takes it out" {
	[ "$(id -u)" -eq 0 ] || skip "only root can give a file away"
	command -v setpriv >/dev/null || skip "no setpriv"
	agents bob
	other_home
	run bch setup --no-hooks --wake --service systemd
	assert_success
	unit="$HOME/.config/systemd/user/bch-notify.service"
	assert_output "wake: installed the systemd --user unit $unit and started it"
	[ -x "$HOME/.local/share/backchannel/sv/bch-notify/run" ]
	run find "$HOME" ! -uid 65534 -o ! -gid 65534
	assert_success
	assert_output ''
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$T_ROOT/bin/bch-setup" --no-hooks --wake --remove
	assert_success
	assert_output "wake: stopped and removed the systemd --user unit $unit"
	[ ! -e "$unit" ]
	[ ! -e "$HOME/.local/share/backchannel" ]
}

@test "--wake into a directory the user cannot write: the error names it, not BACKCHANNEL_HOME" {
	[ "$(id -u)" -eq 0 ] || skip "needs root to run as another user"
	agents bob
	other_home
	mkdir -p "$HOME/.config/systemd/user"
	chown -R 65534:65534 "$HOME/.config"
	chmod 555 "$HOME/.config/systemd/user"
	run bch setup --no-hooks --wake --service systemd
	assert_failure 100
	assert_output --regexp "^bch-setup: .*$HOME/\.config/systemd/user.*: Permission denied\$"
	[ ! -e "$HOME/.config/systemd/user/bch-notify.service" ]
}

# Its temporary file was opened as found: run as root, a link the
# HOME's owner had put at its name was written through, root's file
# it names overwritten and made the unit.
@test "--wake as root writes no file through a link at its temporary name" {
	[ "$(id -u)" -eq 0 ] || skip "only root can give a file away"
	agents bob
	other_home
	mkdir -p "$HOME/.config/systemd/user"
	chown -R 65534:65534 "$HOME/.config"
	unit="$HOME/.config/systemd/user/bch-notify.service"
	printf 'root only\n' >"$BATS_TEST_TMPDIR/victim"
	chmod 600 "$BATS_TEST_TMPDIR/victim"
	# exec keeps the pid, which names the temporary file.
	run sh -c 'ln "$1" "$2.tmp.$$" && exec bch-setup --no-hooks --wake --service systemd' \
		sh "$BATS_TEST_TMPDIR/victim" "$unit"
	assert_success
	grep -q '^ExecStart=' "$unit"
	assert_equal "$(stat -c %u:%h "$BATS_TEST_TMPDIR/victim")" 0:1
	assert_equal "$(cat "$BATS_TEST_TMPDIR/victim")" 'root only'
	assert_equal "$(stat -c %u "$unit")" 65534
}

@test "--wake under s6 as root, the scan directory a user's: the service directory is theirs, and their --remove takes it out" {
	[ "$(id -u)" -eq 0 ] || skip "only root can give a file away"
	command -v setpriv >/dev/null || skip "no setpriv"
	agents bob
	other_home
	run bch setup --no-hooks --wake
	assert_success
	target="$BCH_S6_SCANDIR/bch-notify"
	assert_output "wake: installed the s6 service $target (bch-watch --urgent-only --peek | bch-notify); s6-svscan is starting it"
	[ "$(cat "$target/env/HOME")" = "$HOME" ]
	[ -x "$target/log/run" ]
	run find "$HOME" ! -uid 65534 -o ! -gid 65534
	assert_success
	assert_output ''
	# An update replaces files: each keeps its owner.
	echo /elsewhere >"$target/env/HOME"
	chown 65534:65534 "$target/env/HOME"
	run bch setup --no-hooks --wake
	assert_success
	assert_output "wake: updated (and restarted) the s6 service $target"
	run find "$HOME" ! -uid 65534 -o ! -gid 65534
	assert_output ''
	run setpriv --reuid=65534 --regid=65534 --clear-groups "$T_ROOT/bin/bch-setup" --no-hooks --wake --remove
	assert_success
	assert_output "wake: removed the s6 service $target"
	[ -z "$(ls -A "$BCH_S6_SCANDIR")" ]
}

# Run as root on a user's HOME, setup made a directory, looked up the
# owner of the one above, then opened the new one by its path to give
# it to them: a directory above that the user swapped for a link in
# between was followed, and root's directory of that name given away.
@test "setup as root gives away no directory of root's through a link put above one it made" {
	[ "$(id -u)" -eq 0 ] || skip "only root can give a file away"
	strace -o /dev/null true 2>/dev/null || skip "strace cannot trace here"
	agents bob
	other_home
	mkdir "$HOME/.local"
	chown 65534:65534 "$HOME/.local"
	mkdir -p "$BATS_TEST_TMPDIR/root/share"
	# An open of ~/.local/share by its path waits 2 s: the user's link
	# goes in meanwhile.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -o /dev/null -P "$HOME/.local/share" -e trace=openat \
		-e inject=openat:delay_enter=2000000 \
		bch-setup --no-hooks --wake --service systemd >out 2>err &
	local pid=$!
	bg_pid $pid
	wait_for 10 test -d "$HOME/.local/share"
	sleep 0.3
	mv "$HOME/.local" "$HOME/.local.moved"
	ln -s "$BATS_TEST_TMPDIR/root" "$HOME/.local"
	wait "$pid" || true
	assert_equal "$(stat -c %u:%g "$BATS_TEST_TMPDIR/root/share")" 0:0
	assert_equal "$(stat -c %u:%g "$HOME/.local.moved/share")" 65534:65534
}

@test "bad usage exits 2" {
	run bch setup extra
	assert_failure 2
	run bch setup --service upstart
	assert_failure 2
	assert_output --partial 'is s6, systemd or launchd'
	run bch setup --bogus
	assert_failure 2
}

# harness_writes N: Claude Code rewrites ~/.claude.json as it runs: a
# new file, renamed over it, with its own member "from_harness".
harness_writes() {
	printf '{"numStartups":%s,"from_harness":true}\n' "$1" >"$HOME/.claude.json.h"
	mv "$HOME/.claude.json.h" "$HOME/.claude.json"
}

# bch setup is often run from inside Claude Code: its rewrite of
# ~/.claude.json between setup's read and setup's rename was lost, the
# file going back to what setup had read, with its entry.
@test "a harness that rewrites its file while setup edits it keeps its write: setup edits the new file" {
	strace -o /dev/null true 2>/dev/null || skip "strace cannot trace here"
	mkdir -p "$HOME/.claude"
	bch setup >/dev/null
	rm "$HOME/.claude.json"
	printf '{"numStartups":1}\n' >"$HOME/.claude.json"
	# The first fsync, of the backup made after the read, waits 2 s,
	# and the harness writes the file meanwhile.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		strace -f -o /dev/null -e trace=fsync \
		-e inject=fsync:delay_enter=2000000:when=1 \
		bch-setup >out 2>err &
	local pid=$! rc=0
	bg_pid $pid
	wait_for 10 test -e "$HOME/.claude.json.bak-backchannel"
	harness_writes 2
	wait "$pid" || rc=$?
	[ "$rc" -eq 0 ]
	[ ! -s err ]
	grep -qxF "claude: $HOME/.claude.json: added the MCP server mcpServers.backchannel (the file as it was is kept in $HOME/.claude.json.bak-backchannel)" out
	[ "$(jq -r .from_harness "$HOME/.claude.json")" = true ]
	[ "$(jq -r .numStartups "$HOME/.claude.json")" = 2 ]
	[ "$(jq -r .mcpServers.backchannel.command "$HOME/.claude.json")" = "$BCH" ]
	# The backup is the file as it was before setup changed it: the
	# harness's.
	[ "$(cat "$HOME/.claude.json.bak-backchannel")" = '{"numStartups":2,"from_harness":true}' ]
	run ls -A "$HOME"
	refute_output --partial .tmp.
}

@test "a file its harness keeps rewriting is refused after a few reads: exit 111, the harness's file as it wrote it" {
	strace -o /dev/null true 2>/dev/null || skip "strace cannot trace here"
	mkdir -p "$HOME/.claude"
	bch setup >/dev/null
	rm "$HOME/.claude.json"
	harness_writes 0
	(i=0; while :; do i=$((i + 1)); harness_writes $i; sleep 0.05; done) &
	local writer=$!
	bg_pid $writer
	# Every fsync waits: each try sees the file changed.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		run --separate-stderr strace -f -o /dev/null -e trace=fsync \
		-e inject=fsync:delay_enter=300000 bch-setup
	kill "$writer"
	wait "$writer" || true
	assert_failure 111
	assert_equal "$stderr" "bch-setup: $HOME/.claude.json changed while setup edited it — run bch setup again"
	refute_output --partial "$HOME/.claude.json:"
	[ "$(jq -r .from_harness "$HOME/.claude.json")" = true ]
	[ "$(jq -r .mcpServers "$HOME/.claude.json")" = null ]
	[ ! -e "$HOME/.claude.json.bak-backchannel" ]
	run ls -A "$HOME"
	refute_output --partial .tmp.
}
