#!/usr/bin/env bats
# bch join: register on the invite's relay, keep only the personal token,
# subscribe to its channels, then run bch-setup.
load helper
bats_require_minimum_version 1.5.0

# The relay keeps its spool apart from the joiner's BACKCHANNEL_HOME, so
# that what the client stored can be looked at alone; and the client
# finds the relay through what join saved, not the environment.
local_setup() {
	stop_relay
	BACKCHANNEL_HOME="$BATS_TEST_TMPDIR/relay" start_relay
	RELAY=$BACKCHANNEL_URL
	unset BACKCHANNEL_URL
	# Never touch a real supervisor: a scan directory of our own, and a
	# stand-in s6-svscanctl and s6-svc that record how they were called.
	export BCH_S6_SCANDIR="$BATS_TEST_TMPDIR/scan"
	mkdir -p "$BCH_S6_SCANDIR" "$BATS_TEST_TMPDIR/fake"
	printf '#!/bin/sh\necho "$*" >>"%s/svscanctl.log"\n' "$BATS_TEST_TMPDIR" \
		>"$BATS_TEST_TMPDIR/fake/s6-svscanctl"
	chmod +x "$BATS_TEST_TMPDIR/fake/s6-svscanctl"
	printf '#!/bin/sh\necho "$*" >>"%s/svc.log"\n' "$BATS_TEST_TMPDIR" \
		>"$BATS_TEST_TMPDIR/fake/s6-svc"
	chmod +x "$BATS_TEST_TMPDIR/fake/s6-svc"
	export PATH="$BATS_TEST_TMPDIR/fake:$PATH"
	unset XDG_CONFIG_HOME XDG_DATA_HOME CODEX_HOME
	INV=$(bch invite --url "$RELAY" --token "$BCH_ROOM" --channel dev --channel '#ops' --room acme)
}

@test "join registers, keeps the personal token and subscribes the channels" {
	run bch join "$INV" --as carol --no-hooks
	assert_success
	assert_output "joined acme as carol via $RELAY
subscribed carol to #dev
subscribed carol to #ops"
	cfg="$BACKCHANNEL_HOME/config.json"
	[ "$(jq -r .agent "$cfg")" = carol ]
	[ "$(jq -r .url "$cfg")" = "$RELAY" ]
	token=$(jq -r .token "$cfg")
	[[ $token =~ ^[0-9a-f]{64}$ ]]
	[ "$token" != "$BCH_ROOM" ]
	[ "$(stat -c %a "$cfg")" = 600 ]
	[ "$(cat "$BACKCHANNEL_HOME/tokens/carol")" = "$token" ]
	run bch whoami
	assert_output "carol via $RELAY"
	run bch agents
	assert_success
	assert_output --partial carol
	assert_output --partial '#dev'
	assert_output --partial '#ops'
}

@test "join keeps the members of config.json it does not know" {
	run bch join "$INV" --as carol --no-hooks
	assert_success
	cfg=$BACKCHANNEL_HOME/config.json
	jq '. + {theme: {a: [1, 2]}, x: "y"}' "$cfg" >"$BATS_TEST_TMPDIR/cfg"
	cat "$BATS_TEST_TMPDIR/cfg" >"$cfg"
	run bch join "$INV" --as dave --no-hooks
	assert_success
	run jq -c 'del(.url, .token)' "$cfg"
	assert_success
	assert_output '{"agent":"dave","theme":{"a":[1,2]},"x":"y"}'
	[ "$(jq -r .token "$cfg")" = "$(cat "$BACKCHANNEL_HOME/tokens/dave")" ]
	run bch whoami
	assert_output "dave via $RELAY"
}

@test "the room token is kept nowhere: not in BACKCHANNEL_HOME, not in HOME" {
	mkdir -p "$HOME/.claude"
	run bch join "$INV" --as carol
	assert_success
	run grep -rlF -- "$BCH_ROOM" "$BACKCHANNEL_HOME" "$HOME"
	assert_failure 1
	assert_output ''
	run grep -rlF -- "$BCH_ROOM" "$BATS_TEST_TMPDIR/relay"
	assert_failure 1
}

@test "a message sent from another identity arrives" {
	bch join "$INV" --as carol --no-hooks >/dev/null
	BACKCHANNEL_AGENT=dave bch init dave --url "$RELAY" --token "$BCH_ROOM" >/dev/null
	as dave bch send @carol "PR 42 merged, rebase now" >/dev/null
	as dave bch send '#dev' "standup in 5" >/dev/null
	run bch drain
	assert_success
	assert_output --partial 'dave -> @carol'
	assert_output --partial 'PR 42 merged, rebase now'
	assert_output --partial 'dave -> #dev'
	assert_output --partial 'standup in 5'
	run bch drain
	assert_output 'inbox empty'
}

@test "the invite may come on standard input" {
	run bch join - --as carol --no-hooks <<<"$INV"
	assert_success
	assert_line -n 0 "joined acme as carol via $RELAY"
}

@test "an invite wrapped over lines by a chat or mail client joins" {
	wrapped=$(fold -w 40 <<<"$INV")
	[ "$(grep -c . <<<"$wrapped")" -gt 2 ]
	run bch join "$wrapped" --as carol --no-hooks
	assert_success
	assert_line -n 0 "joined acme as carol via $RELAY"
	# Pasted on standard input, with CRLF and an indent.
	run env BACKCHANNEL_AGENT=dave bch join - --as dave --no-hooks \
		< <(fold -w 50 <<<"$INV" | sed 's/^/  /; s/$/\r/')
	assert_success
	assert_line -n 0 "joined acme as dave via $RELAY"
	# What is not white space is still refused.
	run bch join "${INV:0:30}.${INV:30}" --as erin --no-hooks
	assert_failure 100
	assert_output 'bch-join: the invite does not decode (bad base64url) — copy it whole, from bch1- to its end'
}

@test "an invite on standard input with a NUL byte is refused, not cut at the NUL" {
	run --separate-stderr bch join - --as carol --no-hooks < <(printf '%s\0%s\n' "$INV" "$INV")
	assert_failure 100
	[ -z "$output" ]
	[ "$stderr" = "bch-join: the invite on standard input holds a NUL byte — copy it whole, on one line" ]
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/carol" ]
}

@test "joining again refreshes with the personal token and keeps it" {
	bch join "$INV" --as carol --no-hooks >/dev/null
	token=$(jq -r .token "$BACKCHANNEL_HOME/config.json")
	run bch join "$INV" --as carol --no-hooks
	assert_success
	assert_line 'carol is already subscribed to #dev'
	[ "$(jq -r .token "$BACKCHANNEL_HOME/config.json")" = "$token" ]
}

@test "an invite to the same relay written another way joins again, under the token kept" {
	bch join "$INV" --as carol --no-hooks >/dev/null
	kept=$(cat "$BACKCHANNEL_HOME/tokens/carol")
	# A trailing '/': the same relay, not another one.
	run bch join "$(bch invite --url "$RELAY/" --token "$BCH_ROOM")" --as carol --no-hooks
	assert_success
	assert_output "joined as carol via $RELAY/"
	[ "$(cat "$BACKCHANNEL_HOME/tokens/carol")" = "$kept" ]
	run bch join "$INV" --as carol --no-hooks
	assert_success
	assert_line -n 0 "joined acme as carol via $RELAY"
	[ "$(cat "$BACKCHANNEL_HOME/tokens/carol")" = "$kept" ]
	# So too as another identity than the default.
	run env BACKCHANNEL_AGENT=dave bch join "$INV" --as dave --no-hooks
	assert_success
	run env BACKCHANNEL_AGENT=dave bch join "$(bch invite --url "$RELAY/" --token "$BCH_ROOM")" --as dave --no-hooks
	assert_success
	run bch whoami
	assert_output "carol via $RELAY"
}

@test "a name taken on the relay is refused with 100" {
	bch join "$INV" --as carol --no-hooks >/dev/null
	run env BACKCHANNEL_HOME="$BATS_TEST_TMPDIR/other" bch join "$INV" --as carol --no-hooks
	assert_failure 100
	assert_output 'bch-join: the name carol is taken on this relay — join with another --as name'
	[ ! -e "$BATS_TEST_TMPDIR/other/config.json" ]
}

@test "with BACKCHANNEL_AGENT set, the default identity stays" {
	bch join "$INV" --as carol --no-hooks >/dev/null
	run env BACKCHANNEL_AGENT=erin bch join "$INV" --as erin --no-hooks
	assert_success
	assert_line 'default identity stays carol (this one is used where BACKCHANNEL_AGENT=erin)'
	[ "$(jq -r .agent "$BACKCHANNEL_HOME/config.json")" = carol ]
	[[ $(cat "$BACKCHANNEL_HOME/tokens/erin") =~ ^[0-9a-f]{64}$ ]]
	run as erin bch whoami
	assert_output "erin via $RELAY"
	run as erin bch drain
	assert_output 'inbox empty'
}

@test "joining a second room under another name says the default identity changed" {
	bch join "$INV" --as carol --no-hooks >/dev/null
	other_relay
	run bch join "$(bch invite --url "$URL_B" --token "$ROOM_B" --room beta)" --as carol-b --no-hooks
	assert_success
	assert_output "joined beta as carol-b via $URL_B
default identity is now carol-b (was carol)"
	run bch whoami
	assert_output "carol-b via $URL_B"
	# Joining again as the default says nothing of it.
	run bch join "$(bch invite --url "$URL_B" --token "$ROOM_B")" --as carol-b --no-hooks
	assert_success
	assert_output "joined as carol-b via $URL_B"
}

@test "a default identity's token kept only in config.json outlives joining another room as another name" {
	bch join "$INV" --as carol --no-hooks >/dev/null
	# As an older version kept it: in config.json alone.
	rm -r "$BACKCHANNEL_HOME/tokens"
	BACKCHANNEL_AGENT=dave bch init dave --url "$RELAY" --token "$BCH_ROOM" >/dev/null
	as dave bch send @carol "still there?" >/dev/null
	other_relay
	run bch join "$(bch invite --url "$URL_B" --token "$ROOM_B")" --as carol-b --no-hooks
	assert_success
	[ "$(jq -r .agent "$BACKCHANNEL_HOME/config.json")" = carol-b ]
	run as carol bch whoami
	assert_output "carol via $RELAY"
	run as carol bch inbox
	assert_success
	assert_output --partial 'dave -> @carol'
	assert_output --partial 'still there?'
}

@test "a default identity's token kept with no relay recorded is not taken to the next default's relay" {
	bch join "$INV" --as carol --no-hooks >/dev/null
	# As a version from before relays were recorded kept it.
	rm -r "$BACKCHANNEL_HOME/tokens/.relay"
	other_relay
	run bch join "$(bch invite --url "$URL_B" --token "$ROOM_B")" --as carol-b --no-hooks
	assert_success
	run as carol bch whoami
	assert_output "carol via $RELAY"
	run as carol bch inbox
	assert_success
	assert_output 'inbox empty'
}

@test "join runs bch-setup, which configures the harnesses it finds" {
	mkdir -p "$HOME/.claude" "$HOME/.gemini"
	run bch join "$INV" --as carol
	assert_success
	assert_line -n 0 "joined acme as carol via $RELAY"
	assert_output --partial "claude: $HOME/.claude/settings.json: added the UserPromptSubmit and SessionStart hooks"
	assert_output --partial "gemini: $HOME/.gemini/settings.json: added the MCP server"
	[ "$(jq -r '.hooks.UserPromptSubmit[0].hooks[0].command' "$HOME/.claude/settings.json")" = \
		"$T_ROOT/bin/bch-drain --hook --here" ]
	[ -f "$HOME/.claude/skills/backchannel/SKILL.md" ]
}

@test "--no-hooks leaves the harnesses alone" {
	mkdir -p "$HOME/.claude"
	run bch join "$INV" --as carol --no-hooks
	assert_success
	refute_output --partial claude
	[ -z "$(ls -A "$HOME/.claude")" ]
}

@test "--wake is passed to bch-setup, which installs the wake service" {
	run bch join "$INV" --as carol --no-hooks --wake
	assert_success
	assert_output --partial "wake: installed the s6 service $BCH_S6_SCANDIR/bch-notify"
	[ -x "$BCH_S6_SCANDIR/bch-notify/run" ]
	grep -qx -- "-a $BCH_S6_SCANDIR" "$BATS_TEST_TMPDIR/svscanctl.log"
}

@test "--wake watches the name joined, not another BACKCHANNEL_AGENT names" {
	env="$BCH_S6_SCANDIR/bch-notify/env"
	# No default yet: frank becomes it, and the service follows it.
	run env BACKCHANNEL_AGENT=erin bch join "$INV" --as frank --no-hooks --wake
	assert_success
	assert_line -n 0 "joined acme as frank via $RELAY"
	[ "$(jq -r .agent "$BACKCHANNEL_HOME/config.json")" = frank ]
	[ ! -e "$env/BACKCHANNEL_AGENT" ]
	# frank is the default: so again, whatever BACKCHANNEL_AGENT says.
	run env BACKCHANNEL_AGENT=erin bch join "$INV" --as frank --no-hooks --wake
	assert_success
	[ ! -e "$env/BACKCHANNEL_AGENT" ]
	# Another identity beside the default: the service watches that one.
	run env BACKCHANNEL_AGENT=erin bch join "$INV" --as erin --no-hooks --wake
	assert_success
	[ "$(cat "$env/BACKCHANNEL_AGENT")" = erin ]
	grep -qx -- "-r $BCH_S6_SCANDIR/bch-notify" "$BATS_TEST_TMPDIR/svc.log"
}

@test "the invite's pin is kept in config.json for the relay" {
	tls_cert a
	tls_relay a
	pin=$(sed -n 's/.*key pin \([0-9a-f]\{64\}\).*/\1/p' "$BATS_TEST_TMPDIR/tls.log")
	[ -n "$pin" ]
	inv=$(bch invite --url "$TLS_URL" --token "$BCH_ROOM" --pin "$pin")
	run bch join "$inv" --as carol --no-hooks
	assert_success
	[ "$(jq -r .pin "$BACKCHANNEL_HOME/config.json")" = "$pin" ]
}

@test "a relay trusted by BACKCHANNEL_PIN at join is trusted by that pin after, from config.json too" {
	tls_cert a
	tls_relay a
	pin=$(sed -n 's/.*key pin \([0-9a-f]\{64\}\).*/\1/p' "$BATS_TEST_TMPDIR/tls.log")
	[ -n "$pin" ]
	inv=$(bch invite --url "$TLS_URL" --token "$BCH_ROOM")
	run env BACKCHANNEL_PIN="$pin" bch join "$inv" --as carol --no-hooks
	assert_success
	# Without the variable, the default identity still reaches its relay.
	run bch agents
	assert_success
	assert_output --partial carol
	[ "$(jq -r .pin "$BACKCHANNEL_HOME/config.json")" = "$pin" ]
	[ "$(sed -n 2p "$BACKCHANNEL_HOME/tokens/.relay/carol")" = "$pin" ]
	# A BACKCHANNEL_PIN that is no pin is refused before anything is kept.
	run env BACKCHANNEL_PIN=xyz BACKCHANNEL_AGENT=erin bch join "$inv" --as erin --no-hooks
	assert_failure 100
	assert_output "bch-join: BACKCHANNEL_PIN is not 64 hex digits — unset it, or set it to the relay's key pin"
	[ ! -e "$BACKCHANNEL_HOME/tokens/erin" ]
}

@test "a personal token kept for one relay is never sent to another" {
	bch join "$INV" --as alice --no-hooks >/dev/null
	BACKCHANNEL_AGENT=erin bch join "$INV" --as erin --no-hooks >/dev/null
	alice=$(cat "$BACKCHANNEL_HOME/tokens/alice")
	erin=$(cat "$BACKCHANNEL_HOME/tokens/erin")
	[[ $alice =~ ^[0-9a-f]{64}$ ]]
	[[ $erin =~ ^[0-9a-f]{64}$ ]]
	# Relay B logs the token each request carries and takes none.
	printf 'import fakehttp\nfakehttp.serve(fakehttp.LogsAuth)\n' >b.py
	fake_relay b.py
	INV_B=$(bch invite --url "$FAKE_URL" --token room-b-0123456789abcdef --channel dev)
	run bch join "$INV_B" --as alice --no-hooks
	assert_failure 100
	run env BACKCHANNEL_AGENT=erin bch join "$INV_B" --as erin --no-hooks
	assert_failure 100
	run bch init alice --url "$FAKE_URL" --token room-b-0123456789abcdef
	assert_failure 100
	run bch join "$INV_B" --as frank --no-hooks
	assert_failure 100
	# With config.json naming B, a command as erin goes to erin's relay.
	jq --arg u "$FAKE_URL" '.url = $u' "$BACKCHANNEL_HOME/config.json" >c.json
	cp c.json "$BACKCHANNEL_HOME/config.json"
	run env BACKCHANNEL_AGENT=erin bch send @alice 'to erin'"'"'s relay'
	assert_success
	jq --arg u "$RELAY" '.url = $u' "$BACKCHANNEL_HOME/config.json" >c.json
	cp c.json "$BACKCHANNEL_HOME/config.json"
	# Only B's room token reached B; A's tokens still work on A.
	run sort -u auth.log
	assert_output 'Bearer room-b-0123456789abcdef'
	[ "$(cat "$BACKCHANNEL_HOME/tokens/alice")" = "$alice" ]
	run bch join "$INV" --as alice --no-hooks
	assert_success
	[ "$(jq -r .token "$BACKCHANNEL_HOME/config.json")" = "$alice" ]
	run env BACKCHANNEL_AGENT=erin bch join "$INV" --as erin --no-hooks
	assert_success
	[ "$(cat "$BACKCHANNEL_HOME/tokens/erin")" = "$erin" ]
}

# --- trust: a personal token goes only where it was issued -------------

# tls_relay NAME [PORT]: the test's relay again, over TLS with NAME.crt,
# on PORT (else a free one); TLS_URL and TLS_PORT name it.
tls_relay() {
	stop_relay
	: >"$BATS_TEST_TMPDIR/tls.log"
	bch-relayd --home "$BATS_TEST_TMPDIR/relay" --port "${2:-0}" --token "$BCH_ROOM" \
		--cert "$BATS_TEST_TMPDIR/$1.crt" --key "$BATS_TEST_TMPDIR/$1.key" \
		2>"$BATS_TEST_TMPDIR/tls.log" &
	BCH_RELAY_PID=$!
	TLS_PORT=$(relay_port "$BATS_TEST_TMPDIR/tls.log") || return 1
	TLS_URL=https://127.0.0.1:$TLS_PORT
}

# impostor NAME PORT: in the relay's place on PORT, a TLS server with
# NAME.crt that logs the Authorization of each request to auth.log and
# takes none.
impostor() {
	cat >imp.py <<'PY'
import fakehttp, http.server, ssl, sys
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[3])), fakehttp.LogsAuth)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(sys.argv[3], flush=True)
s.serve_forever()
PY
	: >auth.log
	fake_relay imp.py "$BATS_TEST_TMPDIR/$1.crt" "$BATS_TEST_TMPDIR/$1.key" "$2"
}

@test "an invite with another pin for the same relay gets no personal token" {
	tls_cert a
	tls_cert b
	tls_relay a
	IA=$(bch invite --url "$TLS_URL" --token "$BCH_ROOM" --cert a.crt)
	run bch join "$IA" --as alice --no-hooks
	assert_success
	alice=$(cat "$BACKCHANNEL_HOME/tokens/alice")
	stop_relay
	impostor b "$TLS_PORT"
	IB=$(bch invite --url "$TLS_URL" --token "$BCH_ROOM" --cert b.crt)
	before=$(cd "$BACKCHANNEL_HOME" && find . -type f -exec md5sum {} + | sort)
	run bch join "$IB" --as alice --no-hooks
	assert_failure 100
	assert_output "bch-join: alice's token for $TLS_URL was kept under another key pin — not sent (is this relay an impostor?); if its key really changed, ask its operator for the new pin"
	run grep -cF "$alice" auth.log
	assert_output 0
	assert_equal "$(cd "$BACKCHANNEL_HOME" && find . -type f -exec md5sum {} + | sort)" "$before"
	run bch init alice --url "$TLS_URL" --token "$BCH_ROOM" --pin "$(openssl x509 -in b.crt -pubkey -noout |
		openssl pkey -pubin -outform DER | sha256sum | cut -c1-64)"
	assert_failure 100
	assert_output --partial 'was kept under another key pin'
	run grep -cF "$alice" auth.log
	assert_output 0
}

@test "an invite's room name is shown with its hidden and control characters escaped" {
	inv=bch1-$(printf '{"url":"%s","token":"%s","room":"acme\\u202egnp.exe\\u009b2J"}' \
		"$RELAY" "$BCH_ROOM" | base64 -w0 | tr '/+' '_-' | tr -d =)
	run bch join "$inv" --as carol --no-hooks
	assert_success
	assert_line --regexp '^joined acme.*gnp\.exe.*2J as carol via '
	[ "$(printf '%s' "$output" | LC_ALL=C grep -c $'\xe2\x80\xae\|\xc2\x9b')" -eq 0 ]
}

@test "a pinned relay's invite joins again as an identity other than the default" {
	tls_cert a
	bch join "$INV" --as carol --no-hooks >/dev/null
	tls_relay a
	IA=$(bch invite --url "$TLS_URL" --token "$BCH_ROOM" --cert a.crt)
	run env BACKCHANNEL_AGENT=erin bch join "$IA" --as erin --no-hooks
	assert_success
	erin=$(cat "$BACKCHANNEL_HOME/tokens/erin")
	run env BACKCHANNEL_AGENT=erin bch join "$IA" --as erin --no-hooks
	assert_success
	[ "$(cat "$BACKCHANNEL_HOME/tokens/erin")" = "$erin" ]
	# Every command as erin trusts her relay by the pin she joined it by.
	run env BACKCHANNEL_AGENT=erin bch agents
	assert_success
	assert_output --partial erin
}

@test "a pinned relay's url written another way is still trusted by its pin" {
	tls_cert a
	tls_relay a
	pin=$(sed -n 's/.*key pin \([0-9a-f]\{64\}\).*/\1/p' "$BATS_TEST_TMPDIR/tls.log")
	[ -n "$pin" ]
	inv=$(bch invite --url "$TLS_URL" --token "$BCH_ROOM" --pin "$pin")
	bch join "$inv" --as carol --no-hooks >/dev/null
	BACKCHANNEL_AGENT=erin bch join "$inv" --as erin --no-hooks >/dev/null
	# The default identity: the pin in config.json.
	run env BACKCHANNEL_URL="$TLS_URL/" bch inbox
	assert_success
	assert_output 'inbox empty'
	# Another identity: the pin in tokens/.relay/erin.
	run env BACKCHANNEL_URL="$TLS_URL/" BACKCHANNEL_AGENT=erin bch inbox
	assert_success
	assert_output 'inbox empty'
}

# other_relay: a second relay, B, with a room token of its own; sets
# URL_B and ROOM_B.
other_relay() {
	ROOM_B=room-b-0123456789-$RANDOM$RANDOM$RANDOM$RANDOM
	bch-relayd --home "$BATS_TEST_TMPDIR/relay-b" --port 0 --token "$ROOM_B" \
		2>"$BATS_TEST_TMPDIR/relay-b.log" &
	bg_pid $!
	URL_B=http://127.0.0.1:$(relay_port "$BATS_TEST_TMPDIR/relay-b.log") || return 1
}

@test "a join and an init over plain HTTP off this machine warn that tokens cross the network unencrypted" {
	addr=$(hostname -I 2>/dev/null | tr ' ' '\n' | grep -m1 -E '^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$' | grep -v '^127\.') ||
		skip "no non-loopback IPv4 address"
	ROOM_C=room-c-0123456789-$RANDOM$RANDOM$RANDOM$RANDOM
	bch-relayd --home "$BATS_TEST_TMPDIR/relay-c" --listen "$addr" --port 0 --token "$ROOM_C" \
		2>"$BATS_TEST_TMPDIR/relay-c.log" &
	bg_pid $!
	url=http://$addr:$(relay_port "$BATS_TEST_TMPDIR/relay-c.log")
	warn="warning: $url is plain HTTP off this machine: tokens and messages cross the network unencrypted — use an https:// relay (bch-relayd --cert --key, or TLS in front)"
	run --separate-stderr bch join "$(bch invite --url "$url" --token "$ROOM_C" 2>/dev/null)" --as dora --no-hooks
	assert_success
	assert_output "joined as dora via $url"
	assert_equal "$stderr" "bch-join: $warn"
	run --separate-stderr env BACKCHANNEL_AGENT=erin bch init erin --url "$url" --token "$ROOM_C"
	assert_success
	assert_equal "$stderr" "bch-init: $warn"
	run --separate-stderr bch join "$INV" --as fay --no-hooks
	assert_success
	assert_equal "$stderr" ""
}

# tree: what is in BACKCHANNEL_HOME, each file with its checksum.
tree() {
	(cd "$BACKCHANNEL_HOME" && find . -type f -exec md5sum {} + | sort)
}

@test "a name with a token kept for one relay does not join another under it" {
	bch join "$INV" --as alice --no-hooks >/dev/null
	alice=$(cat "$BACKCHANNEL_HOME/tokens/alice")
	other_relay
	IB=$(bch invite --url "$URL_B" --token "$ROOM_B" --channel dev)
	before=$(tree)
	run bch join "$IB" --as alice --no-hooks
	assert_failure 100
	assert_output "bch-join: alice already has a personal token for $RELAY — use another name, or remove $BACKCHANNEL_HOME/tokens/alice and the token in $BACKCHANNEL_HOME/config.json to give up alice there"
	run bch init alice --url "$URL_B" --token "$ROOM_B"
	assert_failure 100
	assert_output --partial "alice already has a personal token for $RELAY"
	assert_equal "$(tree)" "$before"
	[ ! -e "$BATS_TEST_TMPDIR/relay-b/agents/alice.json" ]
	# As another identity than the default, tokens/ alone holds it.
	run env BACKCHANNEL_AGENT=erin bch join "$INV" --as erin --no-hooks
	assert_success
	run env BACKCHANNEL_AGENT=erin bch join "$IB" --as erin --no-hooks
	assert_failure 100
	assert_output "bch-join: erin already has a personal token for $RELAY — use another name, or remove $BACKCHANNEL_HOME/tokens/erin to give up erin there"
	# The same relay again refreshes; another name joins B.
	run bch join "$INV" --as alice --no-hooks
	assert_success
	[ "$(cat "$BACKCHANNEL_HOME/tokens/alice")" = "$alice" ]
	run env BACKCHANNEL_AGENT=alice2 bch join "$IB" --as alice2 --no-hooks
	assert_success
	# Given up on purpose, the name joins B.
	rm "$BACKCHANNEL_HOME/tokens/alice"
	run bch join "$IB" --as alice --no-hooks
	assert_failure 100
	assert_output "bch-join: alice already has a personal token for $RELAY — use another name, or remove the token in $BACKCHANNEL_HOME/config.json to give up alice there"
	jq 'del(.token)' "$BACKCHANNEL_HOME/config.json" >c.json
	cp c.json "$BACKCHANNEL_HOME/config.json"
	run bch join "$IB" --as alice --no-hooks
	assert_success
	[ "$(head -1 "$BACKCHANNEL_HOME/tokens/.relay/alice")" = "$URL_B" ]
}

# --- the token is kept before the relay hears of it --------------------

@test "a personal token that cannot be kept is never registered, and a retry gets the name" {
	bch join "$INV" --as carol --no-hooks >/dev/null
	# tokens/ cannot take another file: a full disk, as far as join sees.
	mv "$BACKCHANNEL_HOME/tokens" "$BACKCHANNEL_HOME/tokens.away"
	echo 'not a directory' >"$BACKCHANNEL_HOME/tokens"
	run env BACKCHANNEL_AGENT=erin bch join "$INV" --as erin --no-hooks
	assert_failure
	assert_output --partial "$BACKCHANNEL_HOME/tokens"
	[ "${#lines[@]}" -eq 1 ]
	run bch agents
	assert_success
	refute_output --partial erin
	rm "$BACKCHANNEL_HOME/tokens"
	mv "$BACKCHANNEL_HOME/tokens.away" "$BACKCHANNEL_HOME/tokens"
	run env BACKCHANNEL_AGENT=erin bch join "$INV" --as erin --no-hooks
	assert_success
	assert_line -n 0 "joined acme as erin via $RELAY"
	[[ $(cat "$BACKCHANNEL_HOME/tokens/erin") =~ ^[0-9a-f]{64}$ ]]
}

@test "a join whose answers were lost is retried under the token it kept, and gets the name" {
	# A proxy in front of the relay: each request reaches the relay, and
	# while the file drop exists its answer is lost on the way back.
	cat >proxy.py <<'PY'
import fakehttp, http.client, os, sys
class H(fakehttp.Handler):
    protocol_version = "HTTP/1.1"
    def fwd(self, method):
        n = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(n) if n else None
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
        c.request(method, self.path, body, {"Authorization": self.headers.get("Authorization", ""),
                                             "Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        if os.path.exists("drop"):
            self.close_connection = True
            return
        self.answer(r.status, data)
    def do_GET(self):
        self.fwd("GET")
    def do_POST(self):
        self.fwd("POST")
fakehttp.serve(H)
PY
	fake_relay proxy.py "${RELAY##*:}"
	inv=$(bch invite --url "$FAKE_URL" --token "$BCH_ROOM" --channel dev)
	touch drop
	run bch join "$inv" --as alice --no-hooks
	assert_failure 111
	kept=$(cat "$BACKCHANNEL_HOME/tokens/alice")
	[[ $kept =~ ^[0-9a-f]{64}$ ]]
	[ "$(stat -c %a "$BACKCHANNEL_HOME/tokens/alice")" = 600 ]
	[ "$(head -1 "$BACKCHANNEL_HOME/tokens/.relay/alice")" = "$FAKE_URL" ]
	rm drop
	run bch join "$inv" --as alice --no-hooks
	assert_success
	assert_line -n 0 "joined as alice via $FAKE_URL"
	[ "$(jq -r .token "$BACKCHANNEL_HOME/config.json")" = "$kept" ]
	[ "$(cat "$BACKCHANNEL_HOME/tokens/alice")" = "$kept" ]
}

@test "a join the relay refuses keeps no token that would stand in the way" {
	other_relay
	IB=$(bch invite --url "$URL_B" --token "$ROOM_B")
	bad=$(bch invite --url "$RELAY" --token wrong-room-token-0123456789)
	run bch join "$bad" --as alice --no-hooks
	assert_failure 100
	[ ! -e "$BACKCHANNEL_HOME/tokens/alice" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/.relay/alice" ]
	run env BACKCHANNEL_HOME="$BATS_TEST_TMPDIR/other" bch join "$INV" --as bob --no-hooks
	assert_success
	run bch join "$INV" --as bob --no-hooks
	assert_failure 100
	assert_output 'bch-join: the name bob is taken on this relay — join with another --as name'
	[ ! -e "$BACKCHANNEL_HOME/tokens/bob" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/.relay/bob" ]
	# A server that answers with no personal token registered no one.
	cat >notoken.py <<'PY'
import fakehttp
class H(fakehttp.Handler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer(201, b'{"name":"alice","subscriptions":[],"createdAt":"2026-01-01T00:00:00.000Z","lastSeen":"2026-01-01T00:00:00.000Z"}')
fakehttp.serve(H)
PY
	fake_relay notoken.py
	run bch join "$(bch invite --url "$FAKE_URL" --token "$BCH_ROOM")" --as alice --no-hooks
	assert_failure 100
	assert_output --partial 'answered without a personal token'
	[ ! -e "$BACKCHANNEL_HOME/tokens/alice" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/.relay/alice" ]
	run bch join "$IB" --as alice --no-hooks
	assert_success
	run env BACKCHANNEL_AGENT=bob bch join "$IB" --as bob --no-hooks
	assert_success
}

@test "a join that failed before the relay heard of it, then refused, keeps no token" {
	# A proxy in front of the relay: while the file down exists, it
	# closes each connection unanswered, and the relay hears nothing.
	cat >gate.py <<'PY'
import fakehttp, http.client, os, sys
class H(fakehttp.Handler):
    protocol_version = "HTTP/1.1"
    def fwd(self, method):
        n = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(n) if n else None
        if os.path.exists("down"):
            self.close_connection = True
            return
        c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]))
        c.request(method, self.path, body, {"Authorization": self.headers.get("Authorization", ""),
                                             "Content-Type": "application/json"})
        r = c.getresponse()
        self.answer(r.status, r.read())
    def do_GET(self):
        self.fwd("GET")
    def do_POST(self):
        self.fwd("POST")
fakehttp.serve(H)
PY
	fake_relay gate.py "${RELAY##*:}"
	inv=$(bch invite --url "$FAKE_URL" --token "$BCH_ROOM")
	touch down
	run bch join "$inv" --as alice --no-hooks
	assert_failure 111
	[ -e "$BACKCHANNEL_HOME/tokens/alice" ]
	rm down
	# Meanwhile another machine took the name.
	run env BACKCHANNEL_HOME="$BATS_TEST_TMPDIR/other" bch join "$inv" --as alice --no-hooks
	assert_success
	run bch join "$inv" --as alice --no-hooks
	assert_failure 100
	assert_output 'bch-join: the name alice is taken on this relay — join with another --as name'
	[ ! -e "$BACKCHANNEL_HOME/tokens/alice" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/.relay/alice" ]
	# So the name is free to join another relay.
	other_relay
	run bch join "$(bch invite --url "$URL_B" --token "$ROOM_B")" --as alice --no-hooks
	assert_success
	# Likewise a room token the relay refuses, after a failure.
	touch down
	run bch join "$inv" --as bob --no-hooks
	assert_failure 111
	[ -e "$BACKCHANNEL_HOME/tokens/bob" ]
	rm down
	run bch join "$(bch invite --url "$FAKE_URL" --token wrong-room-token-0123456789)" --as bob --no-hooks
	assert_failure 100
	[ ! -e "$BACKCHANNEL_HOME/tokens/bob" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/.relay/bob" ]
	# And a retry after a failure joins.
	run bch join "$inv" --as bob --no-hooks
	assert_success
	assert_line -n 0 "joined as bob via $FAKE_URL"
}

# typo_join STATUS OUTPUT: joining the mistyped invite $typo as alice
# fails with STATUS and OUTPUT, and keeps no token that would stand in
# the way of the corrected one.
typo_join() {
	run bch join "$typo" --as alice --no-hooks
	assert_failure "$1"
	assert_output "$2"
	[ ! -e "$BACKCHANNEL_HOME/tokens/alice" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/.relay/alice" ]
}

@test "a join to an address where no relay answers keeps no token: the corrected invite joins" {
	# A mistyped port: nothing listens there, the connection is refused.
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	typo=$(bch invite --url "http://127.0.0.1:$port" --token "$BCH_ROOM" --channel dev)
	typo_join 111 "bch-join: relay http://127.0.0.1:$port unreachable: Connection refused — is it running? try again later"
	run bch join "$INV" --as alice --no-hooks
	assert_success
	assert_line -n 0 "joined acme as alice via $RELAY"
	# So too as an identity other than the default, and with bch init.
	run env BACKCHANNEL_AGENT=erin bch join "$typo" --as erin --no-hooks
	assert_failure 111
	run env BACKCHANNEL_AGENT=erin bch join "$INV" --as erin --no-hooks
	assert_success
	run env BACKCHANNEL_AGENT=dave bch init dave --url "http://127.0.0.1:$port" --token "$BCH_ROOM"
	assert_failure 111
	[ ! -e "$BACKCHANNEL_HOME/tokens/dave" ]
	run env BACKCHANNEL_AGENT=dave bch init dave --url "$RELAY" --token "$BCH_ROOM"
	assert_success
	assert_output "initialised dave via $RELAY"
}

@test "an https:// invite for a plain HTTP relay keeps no token and says to use http://: the http:// one joins" {
	# No TLS handshake was made, so no request was sent.
	typo=$(bch invite --url "https://${RELAY#http://}" --token "$BCH_ROOM" --channel dev)
	typo_join 100 "bch-join: relay https://${RELAY#http://} answered in plain HTTP, not TLS — use http://"
	run bch join "$INV" --as alice --no-hooks
	assert_success
	assert_line -n 0 "joined acme as alice via $RELAY"
}

@test "an http:// invite for a TLS relay keeps no token and says to use https://: the https:// one joins" {
	tls_cert a
	tls_relay a
	typo=$(bch invite --url "http://${TLS_URL#https://}" --token "$BCH_ROOM")
	typo_join 100 "bch-join: this relay speaks TLS: use https://"
	run bch join "$(bch invite --url "$TLS_URL" --token "$BCH_ROOM" --cert a.crt)" --as alice --no-hooks
	assert_success
	assert_line -n 0 "joined as alice via $TLS_URL"
}

@test "a personal token that is no word of printable ASCII is refused, not kept or sent in a header" {
	# A server whose answer carries a token that would end the
	# Authorization header of every later request and add its own.
	cat >crlf.py <<'PY'
import fakehttp
class H(fakehttp.Handler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer(201, b'{"name":"alice","token":"abc\\r\\nX-Evil: 1","subscriptions":[],"createdAt":"2026-01-01T00:00:00.000Z","lastSeen":"2026-01-01T00:00:00.000Z"}')
fakehttp.serve(H)
PY
	fake_relay crlf.py
	run --separate-stderr bch join "$(bch invite --url "$FAKE_URL" --token "$BCH_ROOM")" --as alice --no-hooks
	assert_failure 100
	[ -z "$output" ]
	[ "$stderr" = "bch-join: the relay at $FAKE_URL answered with a personal token that is not one word of printable ASCII — it is not a backchannel relay" ]
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/alice" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/.relay/alice" ]
	run bch init alice --url "$FAKE_URL" --token "$BCH_ROOM"
	assert_failure 100
	assert_output --partial 'not one word of printable ASCII'
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/alice" ]
	run bch join "$INV" --as alice --no-hooks
	assert_success
	[[ $(cat "$BACKCHANNEL_HOME/tokens/alice") =~ ^[0-9a-f]{64}$ ]]
}
