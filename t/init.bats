#!/usr/bin/env bats
# bch init and bch whoami (bch-init): identities, the home, the config.
load helper
bats_require_minimum_version 1.5.0

TS='[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z'

# flat FILE: FILE's JSON with the whitespace between tokens taken out.
flat() { tr -d ' \n' < "$1"; }

mode() { stat -c %a "$1"; }

@test "init creates the home 0700, config.json 0600 naming the agent, the record and the inbox" {
	run bch init alice
	assert_success
	assert_output 'initialised alice via local spool'
	h=$BACKCHANNEL_HOME
	[ "$(mode "$h")" = 700 ]
	[ "$(mode "$h/config.json")" = 600 ]
	assert_equal "$(flat "$h/config.json")" '{"agent":"alice"}'
	[ "$(mode "$h/agents/alice.json")" = 600 ]
	for d in tmp new cur; do
		[ -d "$h/spool/alice/$d" ] && [ "$(mode "$h/spool/alice/$d")" = 700 ]
	done
}

@test "the agent record has name, subscriptions, createdAt and lastSeen, and no tokenHash" {
	bch init alice >/dev/null
	rec=$(flat "$BACKCHANNEL_HOME/agents/alice.json")
	[[ $rec == '{'*'}' ]]
	[[ $rec == *'"name":"alice"'* ]]
	[[ $rec == *'"subscriptions":[]'* ]]
	[[ $rec =~ \"createdAt\":\"$TS\" ]]
	[[ $rec =~ \"lastSeen\":\"$TS\" ]]
	[[ $rec != *tokenHash* ]]
}

@test "init makes the home 0700 even when it already exists more open" {
	mkdir -m 755 "$BACKCHANNEL_HOME"
	bch init alice >/dev/null
	[ "$(mode "$BACKCHANNEL_HOME")" = 700 ]
}

@test "whoami prints the agent via local spool" {
	bch init alice >/dev/null
	run bch whoami
	assert_success
	assert_output 'alice via local spool'
}

@test "whoami follows BACKCHANNEL_AGENT" {
	agents alice bob
	run as bob bch whoami
	assert_success
	assert_output 'bob via local spool'
}

@test "BACKCHANNEL_AGENT=b bch init b registers b and keeps the default identity a" {
	bch init a >/dev/null
	run env BACKCHANNEL_AGENT=b bch init b
	assert_success
	assert_line -n 0 'initialised b via local spool'
	assert_equal "$(flat "$BACKCHANNEL_HOME/config.json")" '{"agent":"a"}'
	[ -f "$BACKCHANNEL_HOME/agents/b.json" ]
	[ -d "$BACKCHANNEL_HOME/spool/b/new" ]
	run bch whoami
	assert_output 'a via local spool'
	run bch send @b hi
	assert_success
	run as b bch drain --jsonl
	assert_output --partial '"from":"a"'
}

@test "init with BACKCHANNEL_AGENT set and no default yet makes it the default" {
	run env BACKCHANNEL_AGENT=b bch init b
	assert_success
	assert_equal "$(flat "$BACKCHANNEL_HOME/config.json")" '{"agent":"b"}'
	run bch whoami
	assert_output 'b via local spool'
}

@test "init without BACKCHANNEL_AGENT sets the machine's default" {
	bch init a >/dev/null
	bch init c >/dev/null
	run bch whoami
	assert_output 'c via local spool'
	[ -f "$BACKCHANNEL_HOME/agents/a.json" ]
}

@test "init again keeps the subscriptions and the creation time" {
	bch init alice >/dev/null
	bch sub '#dev' '#ops' >/dev/null
	before=$(sed -n 's/.*"createdAt": *"\([^"]*\)".*/\1/p' "$BACKCHANNEL_HOME/agents/alice.json")
	run bch init alice
	assert_success
	rec=$(flat "$BACKCHANNEL_HOME/agents/alice.json")
	[[ $rec == *'"subscriptions":["#dev","#ops"]'* ]]
	[[ $rec == *"\"createdAt\":\"$before\""* ]]
	run bch channels
	assert_output "#dev
#ops"
}

@test "invalid names exit 100 and create nothing" {
	for n in '../x' 'a/b' '' "$(printf 'a%.0s' {1..65})" '.hidden' '-dash' 'a b' $'a\nb' '..'; do
		run bch init -- "$n"
		assert_failure 100
		assert_output --partial 'invalid agent name'
		[ "${#lines[@]}" -eq 1 ]
		[ ! -e "$BACKCHANNEL_HOME" ]
	done
	[ ! -e "$BATS_TEST_TMPDIR/x" ]
}

@test "an invalid name leaves an existing home untouched" {
	bch init alice >/dev/null
	before=$(cd "$BACKCHANNEL_HOME" && find . | sort)
	run bch init '../evil'
	assert_failure 100
	assert_equal "$(cd "$BACKCHANNEL_HOME" && find . | sort)" "$before"
	[ ! -e "$BATS_TEST_TMPDIR/evil" ]
	[ ! -e "$BACKCHANNEL_HOME/spool/evil" ]
}

@test "an invalid BACKCHANNEL_AGENT is refused" {
	bch init alice >/dev/null
	run env BACKCHANNEL_AGENT=../x bch whoami
	assert_failure 100
	assert_output --partial 'BACKCHANNEL_AGENT'
}

@test "with no identity at all, every command says how to get one" {
	for cmd in whoami 'send @x hi' inbox drain 'read abc' 'sub #x'; do
		run bch $cmd
		assert_failure 100
		assert_output --regexp '^bch-[a-z]+: no identity — run bch init <name> or set BACKCHANNEL_AGENT$'
	done
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
}

@test "a BACKCHANNEL_HOME that is a file is a clear error" {
	echo precious > file
	export BACKCHANNEL_HOME=$BATS_TEST_TMPDIR/file
	run bch init alice
	assert_failure 100
	assert_output "bch-init: $BATS_TEST_TMPDIR/file is not a directory — fix BACKCHANNEL_HOME"
	run env BACKCHANNEL_AGENT=alice bch send @bob hi
	assert_failure 100
	assert_output --partial 'is not a directory'
	[ "$(cat file)" = precious ]
}

@test "a BACKCHANNEL_HOME that is a file is named as the problem, not a missing identity" {
	echo precious > file
	export BACKCHANNEL_HOME=$BATS_TEST_TMPDIR/file
	for cmd in whoami inbox; do
		run bch $cmd
		assert_failure 100
		assert_output --partial 'is not a directory'
	done
}

@test "a relative BACKCHANNEL_HOME is refused: each directory would have its own spool" {
	local_only "the relay keeps its own spool"
	mkdir d1 d2
	cd d1
	run env BACKCHANNEL_HOME=spool bch init alice
	assert_failure 100
	assert_output "bch-init: BACKCHANNEL_HOME (spool) is not an absolute path — each directory would have a spool of its own; give the full path"
	[ ! -e spool ]
	cd ../d2
	run env BACKCHANNEL_HOME='~/.backchannel' BACKCHANNEL_AGENT=alice bch send @bob hi
	assert_failure 100
	assert_output --partial 'is not an absolute path'
	[ ! -e '~' ]
	run env BACKCHANNEL_HOME=spool bch doctor
	assert_output --partial 'FAIL  environment BACKCHANNEL_HOME: spool is not an absolute path'
}

@test "a BACKCHANNEL_HOME that is a symlink to nowhere says so; to a directory, it works" {
	ln -s "$BATS_TEST_TMPDIR/dotfiles/bch" link
	export BACKCHANNEL_HOME=$BATS_TEST_TMPDIR/link
	run bch init alice
	assert_failure 100
	assert_output "bch-init: $BATS_TEST_TMPDIR/link is a symlink to a directory that does not exist — create it, or fix the symlink"
	run env BACKCHANNEL_AGENT=alice bch inbox
	assert_failure 100
	assert_output --partial 'is a symlink to a directory that does not exist'
	mkdir -p dotfiles/bch
	run relay_init alice
	assert_success
	run relay_init bob
	assert_success
	run env BACKCHANNEL_AGENT=alice bch send @bob hi
	assert_success
	run env BACKCHANNEL_AGENT=bob bch inbox
	assert_success
	assert_output --partial hi
}

@test "init refuses a home another user owns: they could read the mail and plant messages" {
	local_only "a relay's home is the relay's"
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	mkdir -m 0777 "$BACKCHANNEL_HOME"
	chown nobody "$BACKCHANNEL_HOME" || skip "cannot chown"
	run bch init alice
	assert_failure 100
	assert_output "bch-init: $BACKCHANNEL_HOME is owned by uid $(id -u nobody), not by you — another user could read and plant messages there; use a home of your own"
	[ -z "$(ls -A "$BACKCHANNEL_HOME")" ]
}

# unprivileged CMD...: run CMD without the root capabilities that would
# let it read a directory whatever its mode.
unprivileged() {
	if [ "$(id -u)" = 0 ]; then
		setpriv --inh-caps=-all --bounding-set=-all -- "$@"
	else
		"$@"
	fi
}

@test "an unreadable BACKCHANNEL_HOME is a clear one-line error, exit 100" {
	bch init alice >/dev/null
	chmod 000 "$BACKCHANNEL_HOME"
	if unprivileged cat "$BACKCHANNEL_HOME/config.json" >/dev/null 2>&1; then
		chmod 700 "$BACKCHANNEL_HOME"
		skip "cannot drop the privilege to read a mode 000 directory"
	fi
	for cmd in whoami inbox 'send @alice hi' 'init bob' agents; do
		run unprivileged bch $cmd
		assert_failure 100
		assert_output --regexp '^bch-[a-z]+: .*Permission denied — check the permissions of BACKCHANNEL_HOME$'
		[ "${#lines[@]}" -eq 1 ]
	done
	chmod 700 "$BACKCHANNEL_HOME"
	[ ! -e "$BACKCHANNEL_HOME/agents/bob.json" ]
}

@test "init keeps the members of config.json it does not know, as written and in their order" {
	bch init alice >/dev/null
	cfg=$BACKCHANNEL_HOME/config.json
	# Another version's or the user's own; "\u0075rl" is url, known.
	printf '{"theme": {"a": [1,2]}, "agent": "alice", "x": "y", "\\u0075rl": null}\n' >"$cfg"
	run bch init bob
	assert_success
	assert_output "initialised bob via local spool"
	run jq -c . "$cfg"
	assert_success
	assert_output '{"agent":"bob","theme":{"a":[1,2]},"x":"y"}'
	run bch whoami
	assert_output "bob via local spool"
}

@test "init does not grow config.json past what it can read back: refused, the file kept" {
	bch init alice >/dev/null
	cfg=$BACKCHANNEL_HOME/config.json
	# 65,536 bytes, the most a load reads; the rewrite's indent adds more.
	pad=$(head -c 65510 /dev/zero | tr '\0' x)
	printf '{"agent":"alice","pad":"%s"}' "$pad" >"$cfg"
	assert_equal "$(stat -c %s "$cfg")" 65536
	cp "$cfg" "$BATS_TEST_TMPDIR/before"
	run bch init alice
	assert_failure 100
	assert_output --regexp "^bch-init: .*/config.json would grow to [0-9]+ bytes, past the 65536 it may hold — take out the members bch does not use$"
	cmp "$cfg" "$BATS_TEST_TMPDIR/before"
	run bch whoami
	assert_success
	assert_output "alice via local spool"
}

@test "a config.json that is not JSON is a one-line error naming it, exit 100" {
	mkdir -p "$BACKCHANNEL_HOME"
	for bad in '{"agent": ' 'not json' '[]' '{"agent": "a",}'; do
		printf '%s\n' "$bad" > "$BACKCHANNEL_HOME/config.json"
		for cmd in whoami inbox 'send @a hi' agents; do
			run bch $cmd
			assert_failure 100
			assert_output --regexp "^bch-[a-z]+: $BACKCHANNEL_HOME/config.json is not valid JSON"
			[ "${#lines[@]}" -eq 1 ]
		done
	done
}

@test "the advice for a broken config.json works: bch init <name> again repairs it" {
	mkdir -p "$BACKCHANNEL_HOME"
	echo '{"agent": ' > "$BACKCHANNEL_HOME/config.json"
	run bch whoami
	assert_output --partial 'run bch init <name> again'
	run bch init alice
	assert_success
	run bch whoami
	assert_output 'alice via local spool'
}

@test "a config.json whose url, token, pin or ca is no string is refused, not ignored; bch init sets it aside" {
	unset BACKCHANNEL_URL # about the file's url, not the relay run's
	mkdir -p "$BACKCHANNEL_HOME"
	for bad in '"url": 7' '"url": "http://x\u0000y"' '"token": ["t"]' \
	    '"pin": "\ud800"' '"ca": {}'; do
		printf '{"agent": "alice", %s}\n' "$bad" >"$BACKCHANNEL_HOME/config.json"
		key=${bad%%\":*}
		key=${key#\"}
		run bch whoami
		assert_failure 100
		assert_output "bch-init: $BACKCHANNEL_HOME/config.json: \"$key\" must be a string of at most ${bad:+$(case $key in pin) echo 128;; *) echo 4096;; esac)} bytes, without NUL — fix it or run bch init <name> again"
		# Ignored, the url would have sent this mail to the local spool.
		run bch send @alice hi
		assert_failure 100
		[ ! -d "$BACKCHANNEL_HOME/spool/alice/new" ] || [ -z "$(ls "$BACKCHANNEL_HOME/spool/alice/new")" ]
	done
	printf '{"agent": "alice", "url": null}\n' >"$BACKCHANNEL_HOME/config.json"
	run bch whoami
	assert_success
	assert_output 'alice via local spool'
	printf '{"agent": "alice", "url": 7}\n' >"$BACKCHANNEL_HOME/config.json"
	run --separate-stderr bch init alice
	assert_success
	[[ $stderr == *"config.json could not be read — kept it as $BACKCHANNEL_HOME/config.json.bad"* ]]
	grep -q '"url": 7' "$BACKCHANNEL_HOME/config.json.bad"
	run bch whoami
	assert_output 'alice via local spool'
}

@test "a pin for a plain http:// relay url is refused by bch init before anything is saved" {
	unset BACKCHANNEL_URL
	pin=$(printf 'a%.0s' {1..64})
	run bch init alice --url http://127.0.0.1:9 --token room-token-0123456789 --pin "$pin"
	assert_failure 100
	assert_output "bch-init: --pin names a TLS relay's key, and http://127.0.0.1:9 is plain HTTP — give the relay's https:// url"
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens" ]
}

@test "a pin that is not 64 hex digits is refused by bch init before anything is saved" {
	unset BACKCHANNEL_URL
	run bch init alice --url http://127.0.0.1:9 --token room --pin "$(printf 'a%.0s' {1..200})"
	assert_failure 100
	assert_output "bch-init: the pin (--pin) is not 64 hex digits — give the relay key's SHA-256, as bch invite prints it"
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
	BACKCHANNEL_PIN=sha256:abc run bch init alice --url http://127.0.0.1:9 --token room
	assert_failure 100
	assert_output --partial 'the pin (BACKCHANNEL_PIN) is not 64 hex digits'
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
}

# relayd_named NAME ROOM [OPTION...]: a relay with its spool in NAME/;
# NAME_PORT (upper case) its port, and over TLS NAME_PIN its key pin.
relayd_named() {
	local name=$1 room=$2 log=$BATS_TEST_TMPDIR/$1.log port
	shift 2
	bch-relayd --home "$BATS_TEST_TMPDIR/$name" --port 0 --token "$room" "$@" 2>"$log" &
	bg_pid $!
	port=$(relay_port "$log") || return 1
	printf -v "${name^^}_PORT" %s "$port"
	printf -v "${name^^}_PIN" %s "$(sed -n 's/.*key pin \([0-9a-f]\{64\}\).*/\1/p' "$log")"
}

# tls_relayd NAME ROOM: relayd_named over TLS with NAME.crt.
tls_relayd() {
	relayd_named "$1" "$2" --cert "$BATS_TEST_TMPDIR/$1.crt" --key "$BATS_TEST_TMPDIR/$1.key"
}

@test "init --url another relay without --pin does not use the old relay's pin" {
	tls_cert a
	tls_cert b
	tls_relayd a room-a-0123456789abcdef
	tls_relayd b room-b-0123456789abcdef
	run bch init alice --url "https://127.0.0.1:$A_PORT" --token room-a-0123456789abcdef --pin "$A_PIN"
	assert_success
	[ "$(jq -r .pin "$BACKCHANNEL_HOME/config.json")" = "$A_PIN" ]
	run env BACKCHANNEL_CA="$BATS_TEST_TMPDIR/b.crt" \
		bch init bob --url "https://localhost:$B_PORT" --token room-b-0123456789abcdef
	assert_success
	assert_output "initialised bob via https://localhost:$B_PORT"
	[ "$(jq -r .pin "$BACKCHANNEL_HOME/config.json")" = null ]
	# The same relay again keeps its pin.
	run bch init carol --url "https://127.0.0.1:$A_PORT" --token room-a-0123456789abcdef --pin "$A_PIN"
	assert_success
	run bch init carol --url "https://127.0.0.1:$A_PORT" --token room-a-0123456789abcdef
	assert_success
	[ "$(jq -r .pin "$BACKCHANNEL_HOME/config.json")" = "$A_PIN" ]
}

@test "init keeps the personal token it chose before registering: a failed save sends nothing" {
	relayd_named r room-r-0123456789abcdef
	url=http://127.0.0.1:$R_PORT
	bch init carol --url "$url" --token room-r-0123456789abcdef >/dev/null
	# tokens/ cannot take another file: a full disk, as far as init sees.
	mv "$BACKCHANNEL_HOME/tokens" "$BACKCHANNEL_HOME/tokens.away"
	echo 'not a directory' >"$BACKCHANNEL_HOME/tokens"
	run env BACKCHANNEL_AGENT=erin bch init erin --url "$url" --token room-r-0123456789abcdef
	assert_failure
	[ "${#lines[@]}" -eq 1 ]
	[ ! -e "$BATS_TEST_TMPDIR/r/agents/erin.json" ]
	rm "$BACKCHANNEL_HOME/tokens"
	mv "$BACKCHANNEL_HOME/tokens.away" "$BACKCHANNEL_HOME/tokens"
	run env BACKCHANNEL_AGENT=erin bch init erin --url "$url" --token room-r-0123456789abcdef
	assert_success
	assert_line -n 0 "initialised erin via $url"
	# A refused registration keeps no token for the name.
	run bch init dave --url "$url" --token wrong-room-0123456789
	assert_failure 100
	[ ! -e "$BACKCHANNEL_HOME/tokens/dave" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/.relay/dave" ]
}

@test "a room token shorter than any relay takes is refused by bch init before the relay is asked" {
	relayd_named r room-r-0123456789abcdef
	url=http://127.0.0.1:$R_PORT
	run bch init dave --url "$url" --token room
	assert_failure 100
	assert_output "bch-init: the room token (--token) is too short — the relay refuses one under 16 characters"
	[ ! -e "$BACKCHANNEL_HOME/tokens/dave" ]
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
	BACKCHANNEL_TOKEN=room run bch init dave --url "$url"
	assert_failure 100
	assert_output "bch-init: the room token (BACKCHANNEL_TOKEN) is too short — the relay refuses one under 16 characters"
	run bch init dave --url "$url" --token room-r-0123456789abcdef
	assert_success
	assert_output "initialised dave via $url"
}

@test "init on a relay makes the home 0700 even when it already exists more open" {
	relayd_named r room-r-0123456789abcdef
	mkdir -m 755 "$BACKCHANNEL_HOME"
	bch init alice --url "http://127.0.0.1:$R_PORT" --token room-r-0123456789abcdef >/dev/null
	[ "$(mode "$BACKCHANNEL_HOME")" = 700 ]
}

@test "init of a new name on the configured relay without --token asks for the room token and keeps nothing" {
	relayd_named r room-r-0123456789abcdef
	url=http://127.0.0.1:$R_PORT
	unset BACKCHANNEL_URL # the relay config.json names, in either mode
	bch init alice --url "$url" --token room-r-0123456789abcdef >/dev/null
	cfg=$BACKCHANNEL_HOME/config.json
	cp "$cfg" "$BATS_TEST_TMPDIR/cfg.before"
	# alice's personal token is no room token: it is not sent as one.
	run bch init bob
	assert_failure 100
	assert_output "bch-init: registering bob on $url needs the room token: bch init bob --url $url --token <room token>, or ask for an invite"
	[ ! -e "$BACKCHANNEL_HOME/tokens/bob" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/.relay/bob" ]
	[ ! -e "$BATS_TEST_TMPDIR/r/agents/bob.json" ]
	cmp "$cfg" "$BATS_TEST_TMPDIR/cfg.before"
	# Nor is another identity's, kept in tokens/.
	env BACKCHANNEL_AGENT=carol bch init carol --token room-r-0123456789abcdef >/dev/null
	run env BACKCHANNEL_AGENT=carol bch init dave
	assert_failure 100
	assert_output "bch-init: registering dave on $url needs the room token: bch init dave --url $url --token <room token>, or ask for an invite"
	[ ! -e "$BACKCHANNEL_HOME/tokens/dave" ]
	# A name registered before is refreshed with its own token.
	run bch init alice
	assert_success
	assert_output "initialised alice via $url"
	run bch init bob --token room-r-0123456789abcdef
	assert_success
	assert_output "initialised bob via $url"
}

@test "init as a new default keeps the old default's token that only config.json held, with its relay and pin" {
	tls_cert a
	tls_relayd a room-a-0123456789abcdef
	url=https://127.0.0.1:$A_PORT
	bch init carol --url "$url" --token room-a-0123456789abcdef --pin "$A_PIN" >/dev/null
	# As an older version kept it: in config.json alone.
	rm -r "$BACKCHANNEL_HOME/tokens"
	token=$(jq -r .token "$BACKCHANNEL_HOME/config.json")
	run bch init dave --url "$url" --token room-a-0123456789abcdef --pin "$A_PIN"
	assert_success
	[ "$(jq -r .agent "$BACKCHANNEL_HOME/config.json")" = dave ]
	[ "$(cat "$BACKCHANNEL_HOME/tokens/carol")" = "$token" ]
	run as dave bch send @carol "still there?"
	assert_success
	run as carol bch inbox
	assert_success
	assert_output --partial 'dave -> @carol'
	# The name is carol's still: init again refreshes it.
	run env BACKCHANNEL_AGENT=carol bch init carol --url "$url" --token room-a-0123456789abcdef --pin "$A_PIN"
	assert_success
	[ "$(cat "$BACKCHANNEL_HOME/tokens/carol")" = "$token" ]
}

@test "init --url the configured relay written another way keeps its pin" {
	tls_cert a
	tls_relayd a room-a-0123456789abcdef
	url=https://127.0.0.1:$A_PORT
	bch init carol --url "$url" --token room-a-0123456789abcdef --pin "$A_PIN" >/dev/null
	run bch init carol --url "$url/" --token room-a-0123456789abcdef
	assert_success
	assert_output "initialised carol via $url/"
	[ "$(jq -r .pin "$BACKCHANNEL_HOME/config.json")" = "$A_PIN" ]
}

@test "init again keeps the ca config.json names for its relay" {
	tls_cert a
	tls_relayd a room-a-0123456789abcdef
	url=https://localhost:$A_PORT
	run env BACKCHANNEL_CA="$BATS_TEST_TMPDIR/a.crt" bch init carol --url "$url" --token room-a-0123456789abcdef
	assert_success
	# The relay's CA file, added to config.json by hand.
	jq --arg ca "$BATS_TEST_TMPDIR/a.crt" '.ca = $ca' "$BACKCHANNEL_HOME/config.json" >"$BATS_TEST_TMPDIR/cfg"
	cat "$BATS_TEST_TMPDIR/cfg" >"$BACKCHANNEL_HOME/config.json"
	run bch agents
	assert_success
	run bch init carol --url "$url/" --token room-a-0123456789abcdef
	assert_success
	[ "$(jq -r .ca "$BACKCHANNEL_HOME/config.json")" = "$BATS_TEST_TMPDIR/a.crt" ]
	run bch agents
	assert_success
	assert_output --partial carol
}
