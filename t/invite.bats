#!/usr/bin/env bats
# bch invite: the bch1- invite of PROTOCOL.md 6 and the onboarding text;
# and what bch join says about invites that are not right.
load helper
bats_require_minimum_version 1.5.0

# An invite names its relay itself: the one the suite may run is not it.
local_setup() { unset BACKCHANNEL_URL; }

PIN=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef

# decode INVITE: the JSON inside, as base64 -d reads it (padding restored).
decode() {
	local s=${1#bch1-}
	s=$(printf %s "$s" | tr '_-' '/+')
	while [ $((${#s} % 4)) -ne 0 ]; do s="$s="; done
	printf %s "$s" | base64 -d
}

# mkinvite JSON: an invite made by hand, for the bad cases.
mkinvite() {
	printf 'bch1-%s' "$(printf %s "$1" | base64 -w0 | tr '/+' '_-' | tr -d =)"
}

@test "an invite round-trips: bch1- and base64url of the JSON, no padding" {
	run --separate-stderr bch invite --url https://relay.example:7117 --token room-secret-0123456789 \
		--channel '#proj' --channel ops --room acme --pin "$PIN"
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	[ -z "$stderr" ]
	[[ $output =~ ^bch1-[A-Za-z0-9_-]+$ ]]
	json=$(decode "$output")
	jq -e . <<<"$json" >/dev/null
	assert_equal "$(jq -c . <<<"$json")" \
		'{"url":"https://relay.example:7117","token":"room-secret-0123456789","channels":["#proj","#ops"],"room":"acme","pin":"'"$PIN"'"}'
}

@test "optional fields are left out when not given" {
	run bch invite --url http://127.0.0.1:7117 --token t0k-0123456789abcdef
	assert_success
	assert_equal "$(decode "$output" | jq -c .)" '{"url":"http://127.0.0.1:7117","token":"t0k-0123456789abcdef"}'
}

@test "an invite for plain HTTP off this machine says so on stderr; loopback and https:// do not" {
	run --separate-stderr bch invite --url http://relay.example:7117 --token room-token-0123456789
	assert_success
	[[ $output =~ ^bch1-[A-Za-z0-9_-]+$ ]]
	assert_equal "$stderr" "bch-invite: warning: http://relay.example:7117 is plain HTTP off this machine: tokens and messages cross the network unencrypted — use an https:// relay (bch-relayd --cert --key, or TLS in front)"
	for u in http://127.0.0.1:7117 http://localhost:7117 'http://[::1]:7117' https://relay.example:7117; do
		run --separate-stderr bch invite --url "$u" --token room-token-0123456789
		assert_success
		assert_equal "$stderr" ""
	done
}

@test "every length of JSON encodes without padding and decodes back" {
	for room in a ab abc abcd abcde; do
		run bch invite --url https://h --token room-token-0123456789 --room "$room"
		assert_success
		refute_output --partial '='
		assert_equal "$(decode "$output" | jq -r .room)" "$room"
	done
}

@test "a repeated channel is named once; a pin is written lowercase" {
	run bch invite --url https://h --token room-token-0123456789 --channel dev --channel '#dev' --pin "${PIN^^}"
	assert_success
	assert_equal "$(decode "$output" | jq -c .channels)" '["#dev"]'
	assert_equal "$(decode "$output" | jq -r .pin)" "$PIN"
}

@test "the url and pin default to the configured relay's" {
	mkdir -p "$BACKCHANNEL_HOME"
	printf '{"agent":"alice","url":"https://relay.example","token":"personal","pin":"%s"}\n' "$PIN" \
		>"$BACKCHANNEL_HOME/config.json"
	run bch invite --token room-0123456789abcdef
	assert_success
	assert_equal "$(decode "$output" | jq -c .)" "{\"url\":\"https://relay.example\",\"token\":\"room-0123456789abcdef\",\"pin\":\"$PIN\"}"
	# Another relay's invite does not get this relay's pin.
	run bch invite --url https://other.example --token room-0123456789abcdef
	assert_equal "$(decode "$output" | jq -c .)" '{"url":"https://other.example","token":"room-0123456789abcdef"}'
	run env BACKCHANNEL_URL=https://env.example bch invite --token room-0123456789abcdef
	assert_equal "$(decode "$output" | jq -c .)" '{"url":"https://env.example","token":"room-0123456789abcdef"}'
}

@test "the configured relay's url written another way still gets its pin" {
	mkdir -p "$BACKCHANNEL_HOME"
	printf '{"agent":"alice","url":"https://relay.example","token":"personal","pin":"%s"}\n' "$PIN" \
		>"$BACKCHANNEL_HOME/config.json"
	run bch invite --url https://Relay.Example:443/ --token room-0123456789abcdef
	assert_success
	assert_equal "$(decode "$output" | jq -c .)" "{\"url\":\"https://Relay.Example:443/\",\"token\":\"room-0123456789abcdef\",\"pin\":\"$PIN\"}"
	run env BACKCHANNEL_URL=https://relay.example/ bch invite --token room-0123456789abcdef
	assert_success
	assert_equal "$(decode "$output" | jq -c .)" "{\"url\":\"https://relay.example/\",\"token\":\"room-0123456789abcdef\",\"pin\":\"$PIN\"}"
}

@test "--cert computes the pin the relay prints for that certificate" {
	command -v openssl >/dev/null || skip "needs openssl"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout key.pem -out cert.pem -days 2 -subj /CN=relay.test 2>/dev/null
	run bch invite --url https://relay.test:7117 --token room-token-0123456789 --cert cert.pem
	assert_success
	pin=$(decode "$output" | jq -r .pin)
	[[ $pin =~ ^[0-9a-f]{64}$ ]]
	bch-relayd --home relay --port 0 --token room-token-0123456789 --cert cert.pem --key key.pem 2>relayd.log &
	pid=$!
	wait_for 10 grep -q 'listening on' relayd.log
	kill "$pid"
	wait "$pid" || true
	grep -q "$pin" relayd.log
}

@test "--out writes the onboarding text, 0600, and warns that it holds the room token" {
	run --separate-stderr bch invite --url https://relay.example --token room-secret-0123456789 \
		--channel dev --room acme --out onboard.md --source https://git.example/backchannel.git
	assert_success
	inv=$output
	[ "$(stat -c %a onboard.md)" = 600 ]
	[[ $stderr == *"onboard.md carries the room token"* ]]
	[ "$(grep -c . <<<"$stderr")" -eq 1 ]
	grep -qF "git clone https://git.example/backchannel.git backchannel && cd backchannel" onboard.md
	grep -qF "sh quickstart.sh" onboard.md
	grep -qF "bch join $inv --as <name>" onboard.md
	grep -qF "bch drain" onboard.md
	grep -qF "bch drain            # claim and print what has no scope" onboard.md
	! grep -qF "everything for you" onboard.md || false
	grep -qF "bch send" onboard.md
	grep -qi "untrusted" onboard.md
	grep -qF "never" onboard.md
	grep -qF "#dev" onboard.md
}

@test "--out without --source says where the clone URL goes" {
	run --separate-stderr bch invite --url https://relay.example --token room-token-0123456789 --out o.md
	assert_success
	[[ $stderr == *"pass --source URL"* ]]
	grep -qF '<backchannel-repository-url>' o.md
}

@test "bad invite arguments are refused" {
	run bch invite --url https://relay.example
	assert_failure 2
	assert_output --partial 'missing --token'
	run bch invite --token room-token-0123456789
	assert_failure 2
	assert_output --partial 'missing --url'
	run bch invite --url ftp://relay.example --token room-token-0123456789
	assert_failure 100
	assert_output --partial 'http:// or https://'
	run bch invite --url https://relay.example --token room-token-0123456789 --channel '#../x'
	assert_failure 100
	assert_output --partial 'invalid channel'
	run bch invite --url https://relay.example --token room-token-0123456789 --pin abc
	assert_failure 100
	assert_output --partial '64 hex digits'
	run bch invite --url https://relay.example --token 'a b'
	assert_failure 100
	run bch invite --url https://relay.example --token t
	assert_failure 100
	assert_output 'bch-invite: the room token is too short — the relay refuses one under 16 characters'
	run bch invite --url https://relay.example --token 0123456789abcde
	assert_failure 100
	run bch invite --url https://relay.example --token 0123456789abcdef
	assert_success
	run bch invite --url https://relay.example --token room-token-0123456789 --pin "$PIN" --cert x.pem
	assert_failure 2
}

@test "a pin or certificate for a plain http:// relay url is refused in one line" {
	run bch invite --url http://relay.example:7117 --token room-token-0123456789 --pin "$PIN"
	assert_failure 100
	assert_output "bch-invite: --pin names a TLS relay's key, and http://relay.example:7117 is plain HTTP — give the relay's https:// url"
	touch cert.pem
	run bch invite --url http://relay.example:7117 --token room-token-0123456789 --cert cert.pem
	assert_failure 100
	assert_output "bch-invite: --cert names a TLS relay's key, and http://relay.example:7117 is plain HTTP — give the relay's https:// url"
	run bch invite --url https://relay.example:7117 --token room-token-0123456789 --pin "$PIN"
	assert_success
	# A pin the configuration gives is left out of an http:// invite.
	BACKCHANNEL_URL=http://relay.example:7117 BACKCHANNEL_PIN=$PIN run --separate-stderr bch invite --token room-token-0123456789
	assert_success
	decode "$output" | grep -q '"url":"http://relay.example:7117"'
	! decode "$output" | grep -q pin
}

@test "an invite too long for bch join to take is not made" {
	local args=() i long
	long=$(printf 'x%.0s' $(seq 60))
	for i in $(seq 64); do args+=(--channel "c$i$long"); done
	# Each part within its own bound, the whole over INVITE_MAX.
	run --separate-stderr bch invite --url "https://127.0.0.1:9/$(printf 'p%.0s' $(seq 500))" \
		--token "room-token-$(printf 't%.0s' $(seq 1000))" --room "$(printf 'r%.0s' $(seq 256))" \
		--pin "$PIN" "${args[@]}"
	assert_failure 100
	[ -z "$output" ]
	[ "$stderr" = "bch-invite: the invite would be over 8192 bytes, more than bch join takes — name fewer or shorter channels, or a shorter room, token or url" ]
	# Fewer channels make one (just within), and bch join takes it (to the
	# unreachable relay).
	run bch invite --url "https://127.0.0.1:9/$(printf 'p%.0s' $(seq 500))" \
		--token "room-token-$(printf 't%.0s' $(seq 1000))" --room "$(printf 'r%.0s' $(seq 256))" \
		--pin "$PIN" "${args[@]:0:124}"
	assert_success
	inv=$output
	run --separate-stderr bch join "$inv" --as carol --no-hooks
	assert_failure 111
	[[ $stderr == "bch-join: relay https://127.0.0.1:9/p"*" unreachable: "* ]]
	# Wrapped by a mail client (CRLF every 76 columns) it is over 8192
	# bytes, but its white space does not count.
	printf %s "$inv" | fold -w 76 | sed 's/$/\r/' >wrapped
	[ "$(wc -c <wrapped)" -gt 8192 ]
	run --separate-stderr bch join - --as carol --no-hooks <wrapped
	assert_failure 111
	[[ $stderr == "bch-join: relay https://127.0.0.1:9/p"*" unreachable: "* ]]
	# What is over 8192 bytes without it is refused, wrapped or not.
	long="bch1-$(printf 'A%.0s' $(seq 8200))"
	run --separate-stderr bch join "$long" --as carol --no-hooks
	assert_failure 100
	[ "$stderr" = "bch-join: the invite is too long (over 8192 bytes) — ask for a new invite" ]
	run --separate-stderr bch join "$(printf %s "$long" | fold -w 76)" --as carol --no-hooks
	assert_failure 100
	[ "$stderr" = "bch-join: the invite is too long (over 8192 bytes) — ask for a new invite" ]
}

@test "bad invites: each kind is refused with 100 and one clear line" {
	# expect INVITE TEXT: bch join refuses INVITE with the line TEXT.
	expect() {
		run --separate-stderr bch join "$1" --as carol
		assert_failure 100
		[ -z "$output" ]
		[ "$(grep -c . <<<"$stderr")" -eq 1 ]
		[[ $stderr == "bch-join: "*"$2"*" — "* ]] || { echo "$stderr"; return 1; }
	}
	expect 'hello' 'not an invite (it must start with bch1-)'
	expect "bch2-$(mkinvite '{}' | cut -c6-)" 'not an invite'
	expect 'bch1-' 'does not decode (bad base64url)'
	expect 'bch1-eyJ1cmwi!!' 'does not decode (bad base64url)'
	expect 'bch1-eyJ1c' 'does not decode (bad base64url)'
	expect "$(mkinvite 'not json at all')" 'not JSON'
	expect "$(mkinvite '{"url":"http://h","token":"t",}')" 'not JSON'
	expect "$(mkinvite '["http://h"]')" 'not a JSON object'
	expect "$(mkinvite '{"token":"t"}')" 'has no relay url'
	expect "$(mkinvite '{"url":"file:///etc/passwd","token":"t"}')" 'url is not an http:// or https://'
	expect "$(mkinvite '{"url":"http://h"}')" 'has no room token'
	expect "$(mkinvite '{"url":"http://h","token":"t","channels":["#../x"]}')" 'channel that is not a valid name'
	expect "$(mkinvite '{"url":"http://h","token":"t","channels":"#dev"}')" 'channels are not a list'
	expect "$(mkinvite '{"url":"http://h","token":"t","pin":"xyz"}')" 'pin is not 64 hex digits'
	many=$(for i in $(seq 65); do printf '"#c%d",' "$i"; done)
	expect "$(mkinvite "{\"url\":\"http://h\",\"token\":\"t\",\"channels\":[${many%,}]}")" 'names more than 64 channels'
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
}

@test "an invite that names a field twice is refused, whichever a reader would take" {
	# jq (and JSON.parse) read the last url: the invite must not join the first.
	inv=$(mkinvite '{"url":"http://127.0.0.1:9","token":"room-token-0123456789","url":"https://relay.example"}')
	[ "$(decode "$inv" | jq -r .url)" = https://relay.example ]
	run --separate-stderr bch join "$inv" --as carol --no-hooks
	assert_failure 100
	[ -z "$output" ]
	[ "$stderr" = "bch-join: the invite names its url twice — ask for a new invite" ]
	for f in '"token":"room-token-0123456789"' '"room":"acme"' '"channels":["#dev"]' "\"pin\":\"$PIN\""; do
		run --separate-stderr bch join "$(mkinvite "{\"url\":\"http://127.0.0.1:9\",\"token\":\"room-token-0123456789\",$f,$f}")" --as carol --no-hooks
		assert_failure 100
		[[ $stderr == "bch-join: the invite names its "*" twice — ask for a new invite" ]] || { echo "$f: $stderr"; return 1; }
	done
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
	[ ! -e "$BACKCHANNEL_HOME/tokens/carol" ]
}

@test "an invite whose room is a number or true is refused like a bad room string; a null room is none" {
	local room
	for room in 7 true false '{}' '["acme"]' '"a\u0007b"'; do
		run --separate-stderr bch join "$(mkinvite "{\"url\":\"http://127.0.0.1:9\",\"token\":\"t\",\"room\":$room}")" --as carol --no-hooks
		assert_failure 100
		[ "$stderr" = "bch-join: the invite's room is not a short line of text — ask for a new invite" ] ||
			{ echo "$room: $stderr"; return 1; }
	done
	# null is no room: the join goes on, to the (unreachable) relay.
	run --separate-stderr bch join "$(mkinvite '{"url":"http://127.0.0.1:9","token":"t","room":null}')" --as carol --no-hooks
	assert_failure 111
	[[ $stderr == "bch-join: relay http://127.0.0.1:9 unreachable: "* ]]
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
}

@test "an invite's text never echoes the room token in an error" {
	run bch join "$(mkinvite '{"url":"http://h","token":"sekrit-room","channels":["bad name"]}')" --as carol
	assert_failure 100
	refute_output --partial sekrit-room
}

@test "join needs --as and a valid name" {
	inv=$(bch invite --url http://127.0.0.1:9 --token room-token-0123456789)
	run bch join "$inv"
	assert_failure 2
	assert_output --partial 'missing --as'
	run bch join "$inv" --as '../x'
	assert_failure 100
	assert_output --partial 'invalid agent name'
	run bch join --as carol
	assert_failure 2
}

@test "an unreachable relay is a temporary failure" {
	inv=$(bch invite --url http://127.0.0.1:9 --token room-token-0123456789)
	run bch join "$inv" --as carol --no-hooks
	assert_failure 111
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
}

@test "a relay url the client could not use is refused by invite and by join, without its user:password" {
	for u in https://u:secret@relay.example https://secret@relay.example:7117/x \
		http://relay.example:99999 http://relay.example:0 http://relay.example: \
		'http://relay.example:12a' https://relay.example:123456 \
		'http://relay.example?secret' 'https://relay.example:7117/x?secret' \
		'https://relay.example/x#secret' "https://relay.example/$(printf 'secret%0512d' 0)" \
		'http://[127.0.0.1]relay.example' 'http://[::1]relay.example:7117/x'; do
		run bch invite --url "$u" --token room-token-0123456789
		assert_failure 100
		assert_output --partial 'http:// or https:// URL of a host'
		refute_output --partial secret
		run --separate-stderr bch join "$(mkinvite "{\"url\":\"$u\",\"token\":\"t\"}")" --as carol --no-hooks
		assert_failure 100
		[[ $stderr == "bch-join: the invite's url is not an http:// or https:// URL"*" — ask for a new invite" ]] ||
			{ echo "$u: $stderr"; return 1; }
		[[ $stderr != *secret* ]]
	done
	for u in https://relay.example:7117/prefix http://127.0.0.1:65535 'http://[::1]:8080'; do
		run bch invite --url "$u" --token room-token-0123456789
		assert_success
	done
	# Nor does the client echo one from BACKCHANNEL_URL.
	run env BACKCHANNEL_URL=https://u:secret@relay.example BACKCHANNEL_AGENT=carol bch send @bob hi
	assert_failure 100
	assert_output 'bch-send: bad relay URL "https://…@relay.example" — use http(s)://host[:port], with no user:password@'
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
}

@test "a relay url with bytes beyond ASCII is refused by invite and by join, and not echoed" {
	# U+202E turns the rest of a line around; U+009B is a C1 control.
	rlo=$'\xe2\x80\xae' csi=$'\xc2\x9b' e=$'\xc3\xa9'
	for u in "http://127.0.0.1:9/${rlo}gro.elpmaxe" "http://relay.example${csi}2J:7117" \
		"https://r${e}lay.example"; do
		run --separate-stderr bch join "$(mkinvite "{\"url\":\"$u\",\"token\":\"t\"}")" --as carol --no-hooks
		assert_failure 100
		[[ $stderr == "bch-join: the invite's url is not an http:// or https:// URL"*" — ask for a new invite" ]] ||
			{ echo "$u: $stderr"; return 1; }
		[[ $stderr != *"$rlo"* ]]
		[[ $stderr != *"$csi"* ]]
		[[ $stderr != *"$e"* ]]
		run bch invite --url "$u" --token room-token-0123456789
		assert_failure 100
		assert_output --partial 'http:// or https:// URL of a host'
	done
	[ ! -e "$BACKCHANNEL_HOME/config.json" ]
}
