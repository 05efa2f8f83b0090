#!/usr/bin/env bats
# bch doctor: every check on a healthy setup says ok; each broken state,
# built by hand in a temporary HOME, makes the right line say FAIL and
# name the fix; --fix returns stale claims and changes nothing else;
# --json is one JSON object. No real systemctl, launchctl or user scan
# directory is ever looked at: stand-ins and BCH_S6_SCANDIR point here.
load helper
bats_require_minimum_version 1.5.0

local_setup() {
	unset XDG_CONFIG_HOME XDG_DATA_HOME CODEX_HOME BACKCHANNEL_PIN BACKCHANNEL_CA
	FAKE="$BATS_TEST_TMPDIR/fake"
	mkdir -p "$FAKE"
	for t in systemctl launchctl; do
		printf '#!/bin/sh\necho "$*" >>"%s/%s.log"\nexit 3\n' "$BATS_TEST_TMPDIR" "$t" >"$FAKE/$t"
		chmod +x "$FAKE/$t"
	done
	export PATH="$FAKE:$PATH"
	export BCH_S6_SCANDIR="$BATS_TEST_TMPDIR/scan"
	BCH="$T_ROOT/bin/bch"
	H=$BACKCHANNEL_HOME
}

local_teardown() {
	if [ -n "${SVSCAN_PID:-}" ]; then
		s6-svscanctl -t "$BCH_S6_SCANDIR" 2>/dev/null ||
			kill "$SVSCAN_PID" 2>/dev/null || true
		wait "$SVSCAN_PID" 2>/dev/null || true
	fi
	if [ -n "${FAKE_PID:-}" ]; then
		kill "$FAKE_PID" 2>/dev/null || true
		wait "$FAKE_PID" 2>/dev/null || true
	fi
}

# doctor [ARGS...]: bch doctor with durable sends, as a user would run it
# (BACKCHANNEL_FSYNC=0, which the suite sets for speed, is itself a warning).
doctor() {
	env -u BACKCHANNEL_FSYNC bch doctor "$@"
}

# fails_with REGEX FIX: some line is "FAIL  <matching REGEX>" and the line
# after it is "      fix: FIX".
fails_with() {
	local i
	for ((i = 0; i < ${#lines[@]}; i++)); do
		if [[ ${lines[i]} =~ ^FAIL\ \ $1 ]]; then
			[ "${lines[i + 1]:-}" = "      fix: $2" ] && return 0
			echo "the fix after '${lines[i]}' is '${lines[i + 1]:-}', not 'fix: $2'"
			return 1
		fi
	done
	echo "no FAIL line matches '$1' in:"
	printf '%s\n' "${lines[@]}"
	return 1
}

# all_ok: every line of the last output is an ok line.
all_ok() {
	local l bad=0
	for l in "${lines[@]}"; do
		[[ $l =~ ^ok\ \ \ \ [^\ ] ]] || {
			echo "not ok: $l"
			bad=1
		}
	done
	[ "${#lines[@]}" -gt 10 ] && [ "$bad" -eq 0 ]
}

# json_ok: standard input is one JSON object of the documented shape, its
# "ok" saying whether a check failed. Checked with python3, else node,
# else not at all (said on the TAP stream).
json_ok() {
	local py='import json,sys
d = json.load(sys.stdin)
assert set(d) == {"ok", "checks"} and isinstance(d["ok"], bool), d.keys()
assert d["checks"], "no checks"
for c in d["checks"]:
    assert c["status"] in ("ok", "warn", "FAIL"), c
    assert isinstance(c["check"], str) and c["check"], c
    assert set(c) <= {"status", "check", "detail", "fix"}, c
    assert ("fix" in c) == (c["status"] == "FAIL"), c
assert d["ok"] == all(c["status"] != "FAIL" for c in d["checks"])
print(len(d["checks"]))'
	local js='const d = JSON.parse(require("fs").readFileSync(0, "utf8"));
const ok = d.checks.every(c => ["ok", "warn", "FAIL"].includes(c.status) &&
	typeof c.check === "string" && ("fix" in c) === (c.status === "FAIL"));
if (!ok || typeof d.ok !== "boolean" || d.ok !== d.checks.every(c => c.status !== "FAIL")) process.exit(1);
console.log(d.checks.length);'
	if command -v python3 >/dev/null; then
		python3 -c "$py"
	elif command -v node >/dev/null; then
		node -e "$js"
	else
		echo "# JSON not checked: neither python3 nor node is installed" >&3
		cat >/dev/null
	fi
}

# harnesses: Claude Code, Codex and Gemini CLI "installed", then bch setup.
harnesses() {
	mkdir -p "$HOME/.claude" "$HOME/.codex" "$HOME/.gemini"
	bch setup >/dev/null
}

# notifier: a stand-in notify-send on PATH.
notifier() {
	printf '#!/bin/sh\nexit 0\n' >"$FAKE/notify-send"
	chmod +x "$FAKE/notify-send"
}

# wake_s6: an s6-svscan on $BCH_S6_SCANDIR and the wake service up in it.
wake_s6() {
	mkdir -p "$BCH_S6_SCANDIR"
	s6-svscan "$BCH_S6_SCANDIR" 2>"$BATS_TEST_TMPDIR/svscan.log" &
	SVSCAN_PID=$!
	wait_for 10 test -p "$BCH_S6_SCANDIR/.s6-svscan/control"
	bch setup --no-hooks --wake >/dev/null
	wait_for 20 sh -c "s6-svstat '$BCH_S6_SCANDIR/bch-notify' | grep -q '^up'"
}

# relay_up: a relay (the suite's, or one started here) and alice on it.
relay_up() {
	[ -n "${BCH_RELAY_PID:-}" ] || start_relay
	bch init alice --token "$BCH_ROOM" >/dev/null
}

# locked FILE: FILE is there and another process holds its flock
# (flock(1) makes the file before it takes the lock).
locked() {
	[ -e "$1" ] || return 1
	! flock -n "$1" true
}

# A pid that was just in use and is certainly dead now.
dead_pid() {
	sh -c 'exit 0' &
	local p=$!
	wait "$p"
	echo "$p"
}

# This machine's name as claim files carry it.
claim_host() {
	uname -n | tr -c 'A-Za-z0-9_\n-' _
}

# stale_claim: a message to bob, claimed by a reader that died.
stale_claim() {
	bch send @bob 'your turn' >/dev/null
	F=$(ls "$H/spool/bob/new")
	mv "$H/spool/bob/new/$F" "$H/spool/bob/cur/$F.claim.$(claim_host).$(dead_pid)"
}

# snapshot: every path under the spool with its mode, size and owner.
snapshot() {
	(cd "$H" && find . \( -type d -printf '%p d %m %U\n' \) -o -printf '%p %y %m %U %s\n' | sort)
}

# --- healthy ------------------------------------------------------------------

@test "a healthy setup: every check says ok and doctor exits 0" {
	command -v s6-svscan >/dev/null || skip "needs s6 for the wake service"
	agents alice bob
	as alice bch send @bob hello >/dev/null
	harnesses
	notifier
	wake_s6
	run doctor
	assert_success
	all_ok
	assert_line --regexp '^ok    identity alice: '
	assert_line --regexp '^ok    claude code hook UserPromptSubmit: .*/bch-drain --hook --here \(runs\)$'
	assert_line --regexp '^ok    codex mcp server: .*/bch mcp \(runs: '
	assert_line --regexp '^ok    gemini cli mcp server: .*/bch mcp \(runs: '
	assert_line --regexp '^ok    claude code skill: '
	assert_line --regexp "^ok    wake service \(s6\): $BCH_S6_SCANDIR/bch-notify: up"
	assert_line "ok    notifier: $FAKE/notify-send"
	if [ -n "${BCH_TEST_RELAY:-}" ]; then
		assert_line 'ok    relay token: accepted for alice'
	else
		assert_line --regexp '^ok    queue bob: 1 unread'
		assert_line --regexp '^ok    spool directories: 2 inbox\(es\)'
	fi
}

@test "harnesses that are not installed are ok, not set up; a wake service that is not is a warning" {
	agents alice
	run doctor
	assert_success
	refute_line --regexp '^FAIL'
	assert_line 'ok    claude code hook UserPromptSubmit: Claude Code is not installed: nothing to set up'
	assert_line 'ok    claude code hook SessionStart: Claude Code is not installed: nothing to set up'
	assert_line 'ok    claude code mcp server: Claude Code is not installed: nothing to set up'
	assert_line 'ok    claude code skill: Claude Code is not installed: nothing to set up'
	assert_line 'ok    codex mcp server: Codex is not installed: nothing to set up'
	assert_line 'ok    gemini cli mcp server: Gemini CLI is not installed: nothing to set up'
	refute_output --partial 'bch setup adds it'
	assert_line --regexp '^warn  wake service: not installed'
}

@test "a harness that is installed but not set up is a warning that names bch setup" {
	agents alice
	mkdir -p "$HOME/.claude" "$HOME/.codex" "$HOME/.gemini"
	run doctor
	assert_success
	assert_line 'warn  claude code hook UserPromptSubmit: not configured — bch setup adds it'
	assert_line 'warn  claude code mcp server: not configured — bch setup adds it'
	assert_line 'warn  claude code skill: not installed — bch setup installs it'
	assert_line 'warn  codex mcp server: not configured — bch setup adds it'
	assert_line 'warn  gemini cli mcp server: not configured — bch setup adds it'
}

@test "--json prints the same checks as one JSON object" {
	agents alice bob
	harnesses
	run doctor
	text=("${lines[@]}")
	run -0 doctor --json
	[ "${#lines[@]}" -ge 2 ]
	n=$(printf '%s\n' "$output" | json_ok)
	checks=0
	for l in "${text[@]}"; do [[ $l == '      fix: '* ]] || checks=$((checks + 1)); done
	[ -z "$n" ] || [ "$n" -eq "$checks" ]
	assert_output --partial '"ok":true'
	assert_output --partial '"status":"ok","check":"identity alice"'
	# A failure carries its fix, and "ok" turns false.
	chmod 644 "$H/config.json"
	run -1 doctor --json
	printf '%s\n' "$output" | json_ok >/dev/null
	assert_output --partial '"ok":false'
	assert_output --partial "\"status\":\"FAIL\",\"check\":\"config $H/config.json\",\"detail\":\"mode 0644, want 0600\",\"fix\":\"chmod 600 $H/config.json\""
}

# --- identity and config ---------------------------------------------------------

@test "a config.json that is not JSON: FAIL, and bch init is the fix" {
	agents alice
	echo '{"agent": "alice",' >"$H/config.json"
	run -1 doctor
	fails_with "config $H/config.json: not valid JSON" 'bch init <name>'
	assert_line --regexp '^FAIL  identity: none'
	# The fix it names works (on a relay the lost token would be needed).
	[ -z "${BCH_TEST_RELAY:-}" ] || return 0
	bch init alice >/dev/null 2>&1
	run -0 doctor
	assert_line "ok    config $H/config.json: valid JSON, 0600"
}

@test "config.json with mode 0644: FAIL, chmod 600 is the fix" {
	agents alice
	chmod 644 "$H/config.json"
	run -1 doctor
	fails_with "config $H/config.json: mode 0644, want 0600" "chmod 600 $H/config.json"
}

@test "a home directory with mode 0755: FAIL, chmod 700 is the fix" {
	agents alice
	chmod 755 "$H"
	run -1 doctor
	fails_with "home $H: mode 0755, want 0700" "chmod 700 $H"
}

@test "no config.json and no BACKCHANNEL_AGENT: FAIL, bch init is the fix" {
	local_only "a machine where nothing was set up"
	run -1 doctor
	fails_with "home $H: missing" 'bch init <name>'
	fails_with "config $H/config.json: missing" 'bch init <name>'
	fails_with 'identity: none' 'bch init <name>'
}

@test "a missing agent record: FAIL, bch init names it" {
	local_only "agent records of the local spool"
	agents alice bob
	rm "$H/agents/alice.json"
	run -1 doctor
	fails_with 'identity alice: no record agents/alice.json' 'bch init alice'
	run -1 env BACKCHANNEL_AGENT=carol bch doctor
	fails_with 'identity carol: no record agents/carol.json' 'BACKCHANNEL_AGENT=carol bch init carol'
}

@test "an invalid BACKCHANNEL_AGENT: the identity line blames it, not a missing config" {
	agents alice
	run -1 env BACKCHANNEL_AGENT='bad name' bch doctor
	fails_with 'identity: none — BACKCHANNEL_AGENT, which comes before config.json, is no valid name' 'unset BACKCHANNEL_AGENT, or set it to a valid name'
	refute_output --partial 'neither config.json nor BACKCHANNEL_AGENT names one'
}

@test "a home that is a symlink to nowhere: doctor says so, not that nothing was set up" {
	local_only "the local spool's home"
	ln -s "$BATS_TEST_TMPDIR/dotfiles/backchannel" "$BATS_TEST_TMPDIR/link"
	run -1 env BACKCHANNEL_HOME="$BATS_TEST_TMPDIR/link" bch doctor
	fails_with "home $BATS_TEST_TMPDIR/link: a symlink to a directory that does not exist" 'create the directory it points to, or fix the symlink'
}

@test "an agent record naming another agent: FAIL, bch init of the file's agent is the fix" {
	local_only "agent records of the local spool"
	agents alice bob
	sed -i 's/"name": "bob"/"name": "alice"/' "$H/agents/bob.json"
	run -1 doctor
	fails_with 'spool agents/bob.json: names "alice", not "bob" — ignored' 'BACKCHANNEL_AGENT=bob bch init bob'
	run -1 env BACKCHANNEL_AGENT=bob bch doctor
	fails_with 'identity bob: record agents/bob.json names "alice" — ignored' 'BACKCHANNEL_AGENT=bob bch init bob'
	refute_output --partial 'spool agents/bob.json'
}

@test "an agent record whose file name is no agent name: one warning, no fix, no inbox checked" {
	local_only "agent records of the local spool"
	agents alice bob
	stale_claim
	cp "$H/agents/bob.json" "$H/agents/Bad Name.json"
	cp "$H/agents/bob.json" "$H/agents/x;rm -rf ~.json"
	cp "$H/agents/bob.json" "$H/agents/.hidden.json"
	# bob's claimed message now in an inbox of that name
	mv "$H/spool/bob" "$H/spool/Bad Name"
	mkdir -m 700 "$H/spool/bob" "$H/spool/bob/"{tmp,cur,new}
	run -0 doctor --fix
	assert_line 'warn  spool agents/Bad Name.json: not an agent name — ignored'
	assert_line 'warn  spool agents/x;rm -rf ~.json: not an agent name — ignored'
	assert_line 'warn  spool spool/Bad Name: not an agent name — ignored'
	refute_output --partial 'bch init Bad'
	refute_output --partial 'bch init x'
	refute_output --partial 'hidden'
	assert_line 'ok    stale claims: none'
	# the spool ignores that inbox: its claim is not returned either
	[ -z "$(ls "$H/spool/Bad Name/new")" ]
}

@test "BACKCHANNEL_* overrides in effect are listed; surprising ones are warnings" {
	agents alice bob
	run -0 env BACKCHANNEL_AGENT=bob BACKCHANNEL_FSYNC=0 BACKCHANNEL_AGNET=x BACKCHANNEL_MAX_INBOX=10 bch doctor
	assert_line "ok    environment BACKCHANNEL_HOME: $H"
	assert_line 'warn  environment BACKCHANNEL_AGENT: bob overrides config.json'"'"'s alice'
	assert_line --regexp '^warn  environment BACKCHANNEL_FSYNC: 0: no fsync'
	assert_line --regexp '^warn  environment BACKCHANNEL_AGNET: not a variable backchannel knows'
	assert_line 'ok    environment BACKCHANNEL_MAX_INBOX: 10'
	run env BACKCHANNEL_TOKEN=s3cret bch doctor
	assert_line --regexp '^(ok|warn)  +environment BACKCHANNEL_TOKEN: set'
	refute_output --partial s3cret
	# The relay's room token is known, and never shown either.
	run env BACKCHANNEL_ROOM_TOKEN=r00mtoken-of-16chars bch doctor
	assert_line 'ok    environment BACKCHANNEL_ROOM_TOKEN: set (read by bch-relayd only)'
	refute_output --partial r00mtoken
}

@test "BACKCHANNEL_TIMEOUT is known to bch doctor, and a bad one is a FAIL that says how to fix it" {
	agents alice
	run -0 env BACKCHANNEL_TIMEOUT=5 bch doctor
	assert_line 'ok    environment BACKCHANNEL_TIMEOUT: 5 s for the relay to answer'
	run -1 env BACKCHANNEL_TIMEOUT=5s bch doctor
	assert_line --regexp '^FAIL  environment BACKCHANNEL_TIMEOUT: 5s is not a whole number of seconds from 1 to 3600'
	assert_line --regexp 'unset BACKCHANNEL_TIMEOUT, or set it to a number of seconds from 1 to 3600'
	refute_line --regexp '^FAIL  configuration'
}

# --- the spool -------------------------------------------------------------------

@test "a spool directory with mode 0755 or another owner: FAIL with the fix" {
	local_only "directories of the local spool"
	agents alice bob
	chmod 755 "$H/spool/bob/new"
	run -1 doctor
	fails_with 'spool spool/bob/new: mode 0755, want 0700' "chmod 700 $H/spool/bob/new"
	chmod 700 "$H/spool/bob/new"
	[ "$(id -u)" -eq 0 ] || skip "only root can give a directory away"
	chown 65534 "$H/spool/bob/cur"
	run -1 doctor
	fails_with 'spool spool/bob/cur: owned by uid 65534, not by you' "chown $(id -un) $H/spool/bob/cur"
}

@test "a symlink in the spool: FAIL with the fix" {
	local_only "directories of the local spool"
	agents alice bob
	mkdir -m 700 "$BATS_TEST_TMPDIR/elsewhere"
	rmdir "$H/spool/bob/new"
	ln -s "$BATS_TEST_TMPDIR/elsewhere" "$H/spool/bob/new"
	ln -s /etc/passwd "$H/spool/alice/new/evil.json"
	run -1 doctor
	fails_with 'spool spool/bob/new: a symlink, not a directory' "rm $H/spool/bob/new && mkdir -m 700 $H/spool/bob/new"
	fails_with 'spool spool/alice/new/evil.json: a symlink' "rm $H/spool/alice/new/evil.json"
	refute_line --regexp '^ok    spool directories'
}

@test "a missing inbox directory: FAIL, bch init of that agent is the fix" {
	local_only "directories of the local spool"
	agents alice bob
	rmdir "$H/spool/bob/tmp"
	run -1 doctor
	fails_with 'spool spool/bob/tmp: missing' 'BACKCHANNEL_AGENT=bob bch init bob'
	BACKCHANNEL_AGENT=bob bch init bob >/dev/null
	run -0 doctor
}

@test "queue depth is told per agent" {
	local_only "counts files of the local spool"
	agents alice bob carol
	bch send @bob one >/dev/null
	bch send @bob two >/dev/null
	run -0 doctor
	assert_line --regexp '^ok    queue bob: 2 unread, the oldest [0-9]+ s old$'
	assert_line 'ok    queue carol: empty'
	run -1 env BACKCHANNEL_MAX_INBOX=2 bch doctor
	fails_with 'queue bob: 2 unread: full' 'BACKCHANNEL_AGENT=bob bch drain'
}

@test "a stale claim of a dead process: FAIL, doctor --fix is the fix, and doctor alone moves nothing" {
	local_only "claim files of the local spool"
	agents alice bob
	stale_claim
	before=$(snapshot)
	run -1 doctor
	fails_with 'stale claims: 1 claimed message\(s\) whose reader died \(bob 1\)' 'bch doctor --fix'
	[ "$(snapshot)" = "$before" ]
	[ "$(count_new bob)" -eq 0 ]
}

@test "lock files of readers that died: a warning, and --fix removes them once their claims are back" {
	local_only "claim files of the local spool"
	agents alice bob
	L="$H/claimers"
	mkdir -p "$L"
	# A reader killed with SIGKILL leaves its lock file, free, and its
	# claim; a live reader holds its lock; another machine's is not ours.
	dead=$(dead_pid)
	bch send @bob 'your turn' >/dev/null
	F=$(ls "$H/spool/bob/new")
	mv "$H/spool/bob/new/$F" "$H/spool/bob/cur/$F.claim.$(claim_host).$dead"
	: >"$L/$(claim_host).$dead"
	: >"$L/$(claim_host).999999"
	: >"$L/other-host.$dead"
	sleep 60 </dev/null >/dev/null 2>&1 3>&- &
	live=$!
	bg_pid "$live"
	flock "$L/$(claim_host).$live" sleep 60 </dev/null >/dev/null 2>&1 3>&- &
	holder=$!
	bg_pid "$holder"
	wait_for 5 locked "$L/$(claim_host).$live"
	run -1 doctor
	assert_line "warn  claimer locks: 2 left by readers that died (empty files in $L)"
	assert_line '      fix: bch doctor --fix'
	[ "$(ls "$L" | wc -l)" -eq 4 ]
	run -0 doctor --fix
	assert_line 'ok    stale claims: returned 1 message(s) to new/ (bob 1)'
	assert_line 'ok    claimer locks: removed 2 left by readers that died'
	[ "$(ls "$L" | sort)" = "$(printf '%s\n' "$(claim_host).$live" other-host."$dead" | sort)" ]
	run doctor
	refute_output --partial 'claimer locks'
	kill "$holder" "$live"
	run -0 as bob bch drain
	assert_output --partial 'your turn'
}

@test "claims left under an old host name: FAIL naming the host, and --release returns them" {
	local_only "claim files of the local spool"
	agents alice bob
	bch send @bob 'claimed before the rename' >/dev/null
	F=$(ls "$H/spool/bob/new")
	# A reader killed mid-claim on this machine when it was called
	# old-laptop leaves its claim and its free lock file.
	mkdir -p "$H/claimers"
	mv "$H/spool/bob/new/$F" "$H/spool/bob/cur/$F.claim.old-laptop.4242"
	: >"$H/claimers/old-laptop.4242"
	run -0 as bob bch drain
	assert_output 'inbox empty'
	run -1 doctor
	fails_with "claims of host old-laptop: 1 message\\(s\\) \\(bob 1\\) claimed by a reader on old-laptop, not this machine \\($(claim_host)\\), that died: never returned from here" 'bch doctor --release old-laptop'
	[ -e "$H/spool/bob/cur/$F.claim.old-laptop.4242" ]
	run -0 doctor --release old-laptop
	assert_line 'ok    claims of host old-laptop: returned 1 message(s) to new/ (bob 1)'
	[ ! -e "$H/claimers/old-laptop.4242" ]
	run -0 doctor
	refute_output --partial 'old-laptop'
	run -0 as bob bch drain
	assert_output --partial 'claimed before the rename'
}

@test "claims of another host whose reader lives: a warning, and --release leaves them to it" {
	local_only "claim files of the local spool"
	agents alice bob
	bch send @bob 'being read in a container' >/dev/null
	F=$(ls "$H/spool/bob/new")
	mkdir -p "$H/claimers"
	# A reader in a container sharing the spool, alive: its lock is held.
	sleep 60 </dev/null >/dev/null 2>&1 3>&- &
	live=$!
	bg_pid "$live"
	flock "$H/claimers/box-7.$live" sleep 60 </dev/null >/dev/null 2>&1 3>&- &
	bg_pid $!
	wait_for 5 locked "$H/claimers/box-7.$live"
	mv "$H/spool/bob/new/$F" "$H/spool/bob/cur/$F.claim.box-7.$live"
	run -0 doctor
	assert_line --regexp '^warn  claims of host box-7: 1 message\(s\) \(bob 1\) being read on another machine sharing this spool, the oldest claimed [0-9]+ s ago: not returned from here \(should box-7 be gone, bch doctor --release box-7 returns them\)$'
	run -0 doctor --release box-7
	assert_line 'warn  claims of host box-7: returned 0 message(s) to new/ (bob 1); 1 held by a reader that is alive, left to it'
	[ -e "$H/spool/bob/cur/$F.claim.box-7.$live" ]
	[ -e "$H/claimers/box-7.$live" ]
	[ "$(count_new bob)" -eq 0 ]
}

@test "--fix returns the stale claim to new/ and repairs nothing else" {
	local_only "claim files of the local spool"
	agents alice bob
	# A file the spool sets aside (a drain would also return stale claims,
	# so this comes first), a claim whose reader is alive, other faults:
	# all left as they are.
	echo junk >"$H/spool/bob/new/00000000-0000-4000-8000-000000000000.json"
	as bob bch drain --peek >/dev/null 2>&1
	[ -n "$(ls "$H/spool/bob/corrupt")" ]
	stale_claim
	sleep 60 &
	live=$!
	bch send @bob 'being read' >/dev/null
	G=$(ls "$H/spool/bob/new")
	mv "$H/spool/bob/new/$G" "$H/spool/bob/cur/$G.claim.$(claim_host).$live"
	chmod 644 "$H/config.json"
	chmod 755 "$H/spool/alice/new"
	ln -s /etc/passwd "$H/spool/alice/new/evil.json"
	before=$(snapshot | grep -v "$F")
	run -1 doctor --fix
	kill "$live"
	assert_line 'ok    stale claims: returned 1 message(s) to new/ (bob 1)'
	fails_with "config $H/config.json: mode 0644" "chmod 600 $H/config.json"
	[ -f "$H/spool/bob/new/$F" ]
	[ ! -e "$H/spool/bob/cur/$F".claim.* ]
	[ "$(snapshot | grep -v "$F")" = "$before" ]
	[ "$(stat -c %a "$H/config.json")" = 644 ]
	[ -e "$H/spool/bob/cur/$G.claim.$(claim_host).$live" ]
	run as bob bch drain
	assert_output --partial 'your turn'
}

@test "corrupt files set aside: FAIL, counted, with the fix" {
	local_only "the corrupt/ directory of the local spool"
	agents alice bob
	echo junk >"$H/spool/bob/new/00000000-0000-4000-8000-000000000001.json"
	echo '{"id":1}' >"$H/spool/bob/new/00000000-0000-4000-8000-000000000002.json"
	as bob bch drain >/dev/null 2>&1 || true
	[ "$(ls "$H/spool/bob/corrupt" | wc -l)" -eq 2 ]
	run -1 doctor
	fails_with 'corrupt bob: 2 file\(s\) set aside in spool/bob/corrupt/' "rm -r $H/spool/bob/corrupt  # after a look at what is in it"
}

@test "doctor without --fix changes nothing in a broken spool" {
	local_only "files of the local spool"
	agents alice bob
	stale_claim
	echo junk >"$H/spool/bob/new/00000000-0000-4000-8000-000000000003.json"
	before=$(snapshot)
	run -1 doctor
	run -1 doctor --json
	[ "$(snapshot)" = "$before" ]
}

# --- the relay -----------------------------------------------------------------

@test "a relay: reachable, health, no TLS on loopback, token accepted, clock" {
	relay_up
	run doctor
	assert_line --regexp "^ok    relay $BACKCHANNEL_URL: reachable, answered in [0-9]+ ms$"
	assert_line 'ok    relay TLS: none: plain HTTP on loopback'
	assert_line 'ok    relay health: /v1/health answers ok'
	assert_line --regexp '^ok    relay clock: within [0-9]+ s'
	assert_line 'ok    relay token: accepted for alice'
	assert_line 'ok    queue alice (relay): empty'
	refute_line --regexp '^FAIL'
}

@test "a relay that is down: FAIL, with the fix" {
	relay_up
	stop_relay
	run -1 doctor
	port=${BACKCHANNEL_URL##*:}
	fails_with "relay $BACKCHANNEL_URL: unreachable: Connection refused" "unset BACKCHANNEL_URL; or start the relay on its host (bch relay --port $port), or point at a running one: bch init alice --url <relay-url> --token <room token>"
	refute_line --regexp '^(ok|FAIL)  +relay token'
}

@test "a relay that trickles its answer: FAIL at BACKCHANNEL_TIMEOUT, not held for ever" {
	# A byte every 0.3 s, each well within any per-read timeout; the
	# whole answer would take some 40 s.
	cp "$T_ROOT/t/paced.py" .
	fake_relay paced.py 0 1 0.3 '{"ok":true,"service":"backchannel-relay"}'
	stop_relay
	t0=$(date +%s%N)
	run -1 env BACKCHANNEL_URL="$FAKE_URL" BACKCHANNEL_AGENT=alice BACKCHANNEL_TOKEN=t \
		BACKCHANNEL_TIMEOUT=2 bch doctor
	ms=$((($(date +%s%N) - t0) / 1000000))
	echo "doctor took $ms ms"
	fails_with "relay $FAKE_URL: its answer not whole within 2 s \(BACKCHANNEL_TIMEOUT\)" \
		"unset BACKCHANNEL_URL; or check that the URL is a running backchannel relay's; over a slow link, raise BACKCHANNEL_TIMEOUT"
	refute_line --regexp '^(ok|FAIL)  +relay token'
	[ "$ms" -ge 1900 ]
	[ "$ms" -lt 8000 ]
}

@test "a relay whose answer's head is over 64 KiB: FAIL, in the words every program uses" {
	cat >bighead.py <<'PY'
import fakehttp
head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nConnection: close\r\nX-Pad: ")
answer = head + b"x" * (100 * 1024) + b"\r\n\r\n[]"
def serve(c):
    try:
        c.recv(65536)
        c.sendall(answer)
    except OSError:
        pass
    c.close()
fakehttp.serve_raw(serve)
PY
	fake_relay bighead.py
	run -1 env BACKCHANNEL_URL="$FAKE_URL" BACKCHANNEL_AGENT=alice BACKCHANNEL_TOKEN=t bch doctor
	fails_with "relay $FAKE_URL: sent a malformed answer: its head is over the limit of 64 KiB$" \
		"unset BACKCHANNEL_URL; or check that the URL is a running backchannel relay's"
	refute_line --regexp '^(ok|FAIL)  +relay token'
}

@test "a relay URL that is not one: FAIL, the fix naming where it came from" {
	local long u
	long=$(printf 'a%.0s' {1..300})
	for u in ftp://relay.example http:// https://:7117 http://127.0.0.1: \
	    http://127.0.0.1:71x7 'http://[::1' "http://$long:7117"; do
		run -1 env BACKCHANNEL_URL="$u" BACKCHANNEL_AGENT=alice BACKCHANNEL_TOKEN=t bch doctor
		assert_line "FAIL  relay $u: not a relay URL: use http(s)://host[:port]"
		assert_line '      fix: unset BACKCHANNEL_URL, or set it to http(s)://host[:port]'
	done
	# config.json's url, with no BACKCHANNEL_URL (a relay run's) over it.
	unset BACKCHANNEL_URL
	mkdir -p "$H"
	printf '{"agent": "alice", "url": "ftp://relay.example", "token": "t"}\n' >"$H/config.json"
	chmod 600 "$H/config.json"
	run -1 doctor
	fails_with 'relay ftp://relay.example: not a relay URL' 'bch init alice --url <relay-url> --token <room token>'
}

@test "a relay URL: the port defaults by scheme, a path is kept, trailing slashes are dropped" {
	relay_up
	run env -u BACKCHANNEL_FSYNC BACKCHANNEL_URL="$BACKCHANNEL_URL//" bch doctor
	assert_line 'ok    relay health: /v1/health answers ok'
	assert_line 'ok    relay token: accepted for alice'
	refute_line --regexp '^FAIL'
	run -1 env BACKCHANNEL_URL="$BACKCHANNEL_URL/not/here/" bch doctor
	fails_with 'relay health: /v1/health answered 404' 'bch init alice --url <relay-url> --token <room token>'
	# .invalid never resolves (RFC 2606): the port is only said in the fix.
	run -1 env BACKCHANNEL_URL=https://relay.invalid bch doctor
	fails_with 'relay https://relay.invalid: unreachable: ' 'unset BACKCHANNEL_URL; or start the relay on its host (bch relay --port 443), or point at a running one: bch init alice --url <relay-url> --token <room token>'
	run -1 env BACKCHANNEL_URL=http://relay.invalid/x bch doctor
	fails_with 'relay http://relay.invalid/x: unreachable: ' 'unset BACKCHANNEL_URL; or start the relay on its host (bch relay --port 80), or point at a running one: bch init alice --url <relay-url> --token <room token>'
}

@test "https:// for a plain HTTP relay: FAIL, saying to use http://" {
	relay_up
	https=https://${BACKCHANNEL_URL#http://}
	run -1 env BACKCHANNEL_URL="$https" bch doctor
	fails_with "relay $https: answered in plain HTTP, not TLS — use http://" "set BACKCHANNEL_URL=$BACKCHANNEL_URL"
	# The same URL kept in config.json.
	sed -i 's|"http://|"https://|' "$H/config.json"
	grep -qF "\"$https\"" "$H/config.json"
	run -1 env -u BACKCHANNEL_URL -u BACKCHANNEL_FSYNC bch doctor
	fails_with "relay $https: answered in plain HTTP, not TLS — use http://" "bch init alice --url $BACKCHANNEL_URL --token <room token>"
}

@test "a wrong token: FAIL, with the fix" {
	relay_up
	run -1 env BACKCHANNEL_TOKEN=0123456789abcdef bch doctor
	fails_with 'relay token: rejected by the relay \(401\)' "unset BACKCHANNEL_TOKEN, or bch init alice --url $BACKCHANNEL_URL --token <room token>"
	# The same token kept in config.json.
	sed -i 's/"token": "[^"]*"/"token": "0123456789abcdef"/' "$H/config.json"
	grep -q 0123456789abcdef "$H/config.json"
	run -1 doctor
	fails_with 'relay token: rejected by the relay \(401\)' "bch init alice --url $BACKCHANNEL_URL --token <room token>"
}

@test "TLS: a pinned relay verifies; a wrong pin is FAIL" {
	command -v openssl >/dev/null || skip "openssl is not installed"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout key.pem -out cert.pem -days 2 -subj /CN=localhost \
		-addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' 2>/dev/null
	stop_relay
	mkdir -p relay
	bch-relayd --home relay --port 0 --token room-token-for-tls-0123 --cert cert.pem --key key.pem 2>tls.log &
	BCH_RELAY_PID=$!
	port=$(relay_port tls.log)
	pin=$(sed -n 's/.*key pin \([0-9a-f]\{64\}\).*/\1/p' tls.log)
	export BACKCHANNEL_URL=https://127.0.0.1:$port
	bch init alice --token room-token-for-tls-0123 --pin "$pin" >/dev/null
	run doctor
	assert_line 'ok    relay TLS: verified by the pinned key'
	assert_line 'ok    relay token: accepted for alice'
	run -1 env BACKCHANNEL_PIN=0000000000000000000000000000000000000000000000000000000000000000 bch doctor
	fails_with 'relay TLS: not trusted: its public key does not match the pin' \
		"bch init alice --url $BACKCHANNEL_URL --token <room token> --pin <the pin the relay logs>"
}

@test "a relay whose clock is 10 minutes off: warn, not FAIL" {
	command -v python3 >/dev/null || skip "needs python3 for a stand-in relay"
	cat >fake.py <<'EOF'
import time, email.utils, fakehttp
class H(fakehttp.Handler):
    def date_time_string(self, timestamp=None):
        return email.utils.formatdate(time.time() - 600, usegmt=True)
    def do_GET(self):
        if self.path == "/v1/health":
            self.answer(200, b'{"ok":true,"service":"backchannel-relay"}')
        else:
            self.answer(401, b'{"error":"no"}')
fakehttp.serve(H)
EOF
	python3 fake.py >fake.port &
	FAKE_PID=$!
	wait_for 10 test -s fake.port
	stop_relay
	run env BACKCHANNEL_URL="http://127.0.0.1:$(cat fake.port)" BACKCHANNEL_AGENT=alice \
		BACKCHANNEL_TOKEN=t bch doctor
	assert_line --regexp '^warn  relay clock: this machine.s clock is (59[0-9]|60[0-9]) s ahead of the relay.s'
}

# --- harnesses -----------------------------------------------------------------

@test "a hook pointing at a missing program: FAIL, bch setup is the fix, and it fixes it" {
	agents alice
	mkdir -p "$HOME/.claude"
	cat >"$HOME/.claude/settings.json" <<'EOF'
{
  "hooks": {
    "UserPromptSubmit": [
      {"hooks": [{"type": "command", "command": "/nonexistent/bin/bch drain --hook --here"}]}
    ]
  }
}
EOF
	run -1 doctor
	fails_with 'claude code hook UserPromptSubmit: /nonexistent/bin/bch drain --hook --here: /nonexistent/bin/bch does not exist' 'bch setup'
	assert_line --regexp '^warn  claude code hook SessionStart: not configured'
	run bch setup
	assert_success
	run -0 doctor
	assert_line --regexp "^ok    claude code hook UserPromptSubmit: $T_ROOT/bin/bch-drain --hook --here \(runs\)$"
}

@test "a hook program that runs but fails, and one quoted with a space" {
	agents alice
	mkdir -p "$HOME/.claude" "$BATS_TEST_TMPDIR/my bin"
	printf '#!/bin/sh\necho "bch: it is broken" >&2\nexit 111\n' >"$BATS_TEST_TMPDIR/my bin/bch"
	chmod +x "$BATS_TEST_TMPDIR/my bin/bch"
	cat >"$HOME/.claude/settings.json" <<EOF
{"hooks": {"UserPromptSubmit": [{"hooks": [{"type": "command", "command": "'$BATS_TEST_TMPDIR/my bin/bch' drain --hook --here"}]}],
 "SessionStart": [{"hooks": [{"type": "command", "command": "$BCH drain --hook --here"}]}]}}
EOF
	run -1 doctor
	fails_with "claude code hook UserPromptSubmit: .*: it exits 111: bch: it is broken" 'bch setup'
	assert_line --regexp '^ok    claude code hook SessionStart: '
}

@test "MCP entries of Codex and Gemini pointing at a missing program: FAIL, bch setup is the fix" {
	agents alice
	mkdir -p "$HOME/.codex" "$HOME/.gemini"
	printf '[mcp_servers.backchannel]\ncommand = "/gone/bch"\nargs = ["mcp"]\n' >"$HOME/.codex/config.toml"
	echo '{"mcpServers": {"backchannel": {"command": "/gone/bch", "args": ["mcp"]}}}' >"$HOME/.gemini/settings.json"
	echo '{"mcpServers": {"backchannel": {"type": "stdio", "command": "'"$BCH"'", "args": ["mcp"]}}}' >"$HOME/.claude.json"
	run -1 doctor
	fails_with 'codex mcp server: /gone/bch mcp: /gone/bch does not exist' 'bch setup'
	fails_with 'gemini cli mcp server: /gone/bch mcp: /gone/bch does not exist' 'bch setup'
	assert_line --regexp "^ok    claude code mcp server: $BCH mcp \(runs: alice via "
	echo '{"mcpServers": ' >"$HOME/.gemini/settings.json"
	run -1 doctor
	assert_line --regexp "^FAIL  gemini cli mcp server: $HOME/.gemini/settings.json is not valid JSON"
	# Gemini CLI reads comments in its settings; so does doctor.
	printf '{\n  // mine\n  "mcpServers": {"backchannel": {"command": "/gone/bch", "args": ["mcp"]}} /* c */\n}\n' >"$HOME/.gemini/settings.json"
	run -1 doctor
	fails_with 'gemini cli mcp server: /gone/bch mcp: /gone/bch does not exist' 'bch setup'
}

# --- the wake service ------------------------------------------------------------

@test "the wake service down under s6: FAIL, s6-svc -u is the fix" {
	command -v s6-svscan >/dev/null || skip "needs s6"
	agents alice
	notifier
	wake_s6
	s6-svc -wd -T 5000 -d "$BCH_S6_SCANDIR/bch-notify"
	run -1 doctor
	fails_with "wake service \(s6\): $BCH_S6_SCANDIR/bch-notify: down" "s6-svc -u $BCH_S6_SCANDIR/bch-notify"
	s6-svc -u "$BCH_S6_SCANDIR/bch-notify"
	wait_for 20 sh -c "s6-svstat '$BCH_S6_SCANDIR/bch-notify' | grep -q '^up'"
	run -0 doctor
	assert_line --regexp '^ok    wake service \(s6\)'
}

@test "the wake service under systemd --user: asked with an argv, inactive is FAIL" {
	agents alice
	mkdir -p "$HOME/.config/systemd/user"
	echo '# Installed by bch-setup --wake' >"$HOME/.config/systemd/user/bch-notify.service"
	run -1 doctor
	fails_with "wake service \(systemd\): $HOME/.config/systemd/user/bch-notify.service" \
		'systemctl --user enable --now bch-notify.service'
	[ "$(cat "$BATS_TEST_TMPDIR/systemctl.log")" = '--user is-active bch-notify.service' ]
	if ! command -v notify-send >/dev/null && ! command -v osascript >/dev/null; then
		fails_with 'notifier: neither notify-send nor osascript' 'apt-get install libnotify-bin'
	fi
	printf '#!/bin/sh\nexit 0\n' >"$FAKE/systemctl"
	notifier
	run -0 doctor
	assert_line "ok    wake service (systemd): $HOME/.config/systemd/user/bch-notify.service: active"
}

# --- usage ---------------------------------------------------------------------

@test "usage: -h prints it, a bad option or an argument exits 2" {
	run -0 bch doctor -h
	assert_output 'usage: bch-doctor [--json] [--fix] [--release host]'
	run -2 bch doctor --bogus
	assert_line --index 0 'bch-doctor: bad option --bogus'
	run -2 bch doctor extra
	assert_line --index 0 'bch-doctor: takes no arguments'
	run -2 bch doctor --release
	assert_line --index 0 'bch-doctor: bad option --release'
	run -2 bch doctor --release 'a/b'
	assert_line --index 0 "bch-doctor: --release a/b: not a host name as claims carry it (letters, digits, '-' and '_')"
	run -2 bch doctor --release "$(claim_host)"
	assert_output "bch-doctor: --release $(claim_host): that is this machine — bch doctor --fix returns its claims whose reader died"
}
