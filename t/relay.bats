#!/usr/bin/env bats
# bch-relayd itself: the routes of PROTOCOL.md 5 and their statuses, the
# tokens, the limits, HTTP/1.1 framing and its abuses, SSE, signals,
# readiness, the log and TLS, driven with curl and raw sockets (bash's
# /dev/tcp) against a relay each test starts on a free loopback port.
load helper
bats_require_minimum_version 1.5.0
# This file starts its own relays: the suite's relay mode does not apply.
unset BCH_TEST_RELAY

local_setup() {
	ROOM="room-0123456789-$RANDOM$RANDOM$RANDOM$RANDOM"
	LOG=$BATS_TEST_TMPDIR/relay.log
}

# relayd [OPTIONS...]: start bch-relayd on a free loopback port over
# $BACKCHANNEL_HOME with the room token $ROOM; sets PORT and URL. The
# helper's teardown stops it (BCH_RELAY_PID). Variables set on the call
# (VAR=x relayd) reach the relay's environment.
relayd() {
	: >"$LOG" # not the last relay's line
	bch-relayd --home "$BACKCHANNEL_HOME" --port 0 --token "$ROOM" "$@" 2>"$LOG" &
	BCH_RELAY_PID=$!
	PORT=$(relay_port "$LOG") || return 1
	URL=http://127.0.0.1:$PORT
}

# relayd_under ULIMIT-OPTION... -- OPTION...: relayd, run under ulimit.
relayd_under() {
	local lim=()
	while [ "$1" != -- ]; do
		lim+=("$1")
		shift
	done
	shift
	: >"$LOG"
	(ulimit "${lim[@]}" && exec bch-relayd --home "$BACKCHANNEL_HOME" \
		--port 0 --token "$ROOM" "$@") 2>"$LOG" &
	BCH_RELAY_PID=$!
	PORT=$(relay_port "$LOG") || return 1
	URL=http://127.0.0.1:$PORT
}

# hold N: open N connections to the relay; their descriptors in fds.
hold() {
	local i fd
	fds=()
	for i in $(seq 1 "$1"); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
		fds+=("$fd")
	done
}

# req METHOD PATH [TOKEN [BODY]]: one request with curl; sets STATUS, BODY
# and HEADERS (the response head, CRLF stripped).
req() {
	local args=(-s -o "$BATS_TEST_TMPDIR/resp.body" -D "$BATS_TEST_TMPDIR/resp.head"
		-w '%{http_code}' -X "$1" -H 'Expect:')
	[ "$1" != HEAD ] || args+=(-I) # no body follows the head
	[ -z "${3:-}" ] || args+=(-H "Authorization: Bearer $3")
	[ $# -lt 4 ] || args+=(-H 'Content-Type: application/json' --data-binary "$4")
	STATUS=$(curl "${args[@]}" "$URL$2")
	BODY=$(cat "$BATS_TEST_TMPDIR/resp.body")
	HEADERS=$(tr -d '\r' <"$BATS_TEST_TMPDIR/resp.head")
}

# expect STATUS: the last answer had this status (else show it).
expect() {
	[ "$STATUS" = "$1" ] || {
		echo "expected $1, got $STATUS: $BODY"
		return 1
	}
}

# is_error: the last body is {"error": "<some text>"}.
is_error() {
	[[ $BODY =~ ^\{\"error\":\".+\"\}$ ]] || {
		echo "not an error body: $BODY"
		return 1
	}
}

# reg NAME: register NAME with the room token; its personal token in TOK.
reg() {
	req POST /v1/register "$ROOM" "{\"name\":\"$1\"}"
	expect 201
	TOK=$(printf '%s\n' "$BODY" | sed -n 's/.*"token": *"\([0-9a-f]*\)".*/\1/p')
	[ "${#TOK}" -eq 64 ] || {
		echo "no token in $BODY"
		return 1
	}
}

# alice_bob: register alice and bob; their tokens in A and B.
alice_bob() {
	reg alice
	A=$TOK
	reg bob
	B=$TOK
}

# bob_carol_on_dev: register carol (her token in C) and subscribe bob
# and carol to #dev.
bob_carol_on_dev() {
	local t
	reg carol
	C=$TOK
	for t in "$B" "$C"; do
		req POST /v1/subscribe "$t" '{"channel":"#dev"}'
		expect 200
	done
}

# send TOKEN TO BODY [EXTRA-JSON]: POST /v1/send; the stored id in ID.
send() {
	req POST /v1/send "$1" "{\"to\":\"$2\",\"body\":\"$3\"${4:+,$4}}"
	ID=$(printf '%s\n' "$BODY" | sed -n 's/^{"id":"\([0-9a-f-]*\)".*/\1/p')
}

uuid() {
	cat /proc/sys/kernel/random/uuid
}

# raw FILE: write FILE's bytes to the relay in one write and print what
# comes back until the relay closes (at most 5 s).
raw() {
	local fd
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	cat "$1" >&"$fd"
	timeout 5 cat <&"$fd" || true
	exec {fd}>&-
}

# status_lines: the status codes of the HTTP responses on stdin, in order.
status_lines() {
	tr -d '\r' | sed -n 's/^HTTP\/1\.1 \([0-9][0-9][0-9]\) .*/\1/p' | tr '\n' ' '
}

# answers FILE STATUSES: write FILE to the relay (raw); the status codes
# of the answers, in order, each followed by a space, are STATUSES
# ("200 404 "). $output holds the answers.
answers() {
	run raw "$1"
	assert_equal "$(printf '%s\n' "$output" | status_lines)" "$2"
}

# read_resp FD: read one response from FD (Content-Length framed); sets
# RESP_STATUS and RESP_BODY.
read_resp() {
	local LC_ALL=C line len=0
	IFS= read -r -t 5 -u "$1" line || return 1
	RESP_STATUS=$(echo "$line" | cut -d' ' -f2)
	while IFS= read -r -t 5 -u "$1" line; do
		line=${line%$'\r'}
		[ -n "$line" ] || break
		case ${line,,} in content-length:*) len=${line#*: } ;; esac
	done
	RESP_BODY=
	[ "$len" -eq 0 ] || IFS= read -r -t 5 -N "$len" -u "$1" RESP_BODY
}

# alive: the relay process runs and answers the health check.
alive() {
	kill -0 "$BCH_RELAY_PID" && req GET /v1/health && expect 200
}

# nfds: descriptors the relay holds open.
nfds() {
	ls "/proc/$BCH_RELAY_PID/fd" | wc -l
}

# nfds_le N: the relay holds at most N descriptors (for wait_for).
nfds_le() {
	[ "$(nfds)" -le "$1" ]
}

# new_is AGENT N: AGENT's new/ holds N messages (for wait_for).
new_is() {
	[ "$(count_new "$1")" -eq "$2" ]
}

# snapshot: every path under the spool with its size and mtime.
snapshot() {
	find "$BACKCHANNEL_HOME" -printf '%p %s %T@\n' | sort
}


# stream TOKEN AGENT FILE: AGENT's event stream into FILE, in the
# background (stopped by the teardown); returns once it is open.
stream() {
	curl -sN -H "Authorization: Bearer $1" "$URL/v1/events/$2" >"$3" 2>/dev/null &
	bg_pid $!
	wait_for 5 grep -q '^retry:' "$3"
}

# --- routes, tokens, identity -------------------------------------------

@test "health answers without a token" {
	relayd
	req GET /v1/health
	expect 200
	[ "$BODY" = '{"ok":true,"service":"backchannel-relay"}' ]
}

@test "register: 201 with a token once; 409 for a taken name with the room token" {
	relayd
	reg alice
	[[ $BODY == *'"name": "alice"'* ]]
	req POST /v1/register "$ROOM" '{"name":"alice"}'
	expect 409
	is_error
	[[ $BODY != *'"token"'* ]]
}

@test "register: a name whose record is there but unreadable is still taken; its inbox is not handed over" {
	relayd
	alice_bob
	req POST /v1/send "$A" '{"to":"@bob","body":"for bob only"}'
	expect 200
	for rec in '{"name": "bob", "subscriptions": ' \
	    '{"name": "mallory", "subscriptions": [], "createdAt": "2026-01-01T00:00:00.000Z", "lastSeen": "2026-01-01T00:00:00.000Z"}'; do
		printf '%s\n' "$rec" >"$BACKCHANNEL_HOME/agents/bob.json"
		req POST /v1/register "$ROOM" '{"name":"bob"}'
		expect 409
		is_error
		[[ $BODY != *'"token"'* ]]
		cmp -s <(printf '%s\n' "$rec") "$BACKCHANNEL_HOME/agents/bob.json"
	done
	# The message waits for bob, once his record is repaired on the host.
	ls "$BACKCHANNEL_HOME/spool/bob/new" | grep -q '\.json$'
}

@test "register with the name's own token refreshes: 200 and no new token" {
	relayd
	reg alice
	a=$TOK
	hash=$(sed -n 's/.*"tokenHash": *"\([0-9a-f]*\)".*/\1/p' "$BACKCHANNEL_HOME/agents/alice.json")
	req POST /v1/register "$a" '{"name":"alice"}'
	expect 200
	[[ $BODY == *'"name": "alice"'* ]]
	[[ $BODY != *'"token"'* ]]
	[[ $BODY != *tokenHash* ]]
	# The old token still works; the stored hash did not change.
	req GET /v1/agents "$a"
	expect 200
	grep -q "\"tokenHash\": \"$hash\"" "$BACKCHANNEL_HOME/agents/alice.json"
}

@test "register: 401 for a wrong token, 403 for another agent's token, 400 for a bad name" {
	relayd
	reg alice
	req POST /v1/register "not-the-room-token-at-all" '{"name":"carol"}'
	expect 401
	is_error
	req POST /v1/register "" '{"name":"carol"}'
	expect 401
	req POST /v1/register "$TOK" '{"name":"carol"}'
	[ "$STATUS" = 403 ] || [ "$STATUS" = 401 ] || [ "$STATUS" = 409 ]
	req POST /v1/register "$ROOM" '{"name":"../carol"}'
	expect 400
	[ ! -e "$BACKCHANNEL_HOME/carol.json" ]
	[ ! -e "$BACKCHANNEL_HOME/agents/carol.json" ]
}

@test "the room token where a personal one is needed is 401" {
	relayd
	reg alice
	for p in /v1/agents /v1/channels /v1/inbox/alice /v1/events/alice; do
		req GET "$p" "$ROOM"
		expect 401
		is_error
	done
	req POST /v1/send "$ROOM" '{"to":"@alice","body":"from the room"}'
	expect 401
	req GET /v1/agents
	expect 401
	req GET /v1/agents "${TOK}x"
	expect 401
	[ "$(count_new alice)" -eq 0 ]
}

@test "a registration whose answer is lost is tried again, and the retry gets the name" {
	relayd
	# A proxy that hands the first request to the relay, lets it act,
	# and drops the answer; later connections pass both ways.
	cat >lossy.py <<'PY'
import socket, sys, threading, select
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(16)
print(s.getsockname()[1], flush=True)
first = True
def pump(a, b):
    while True:
        for x in select.select([a, b], [], [])[0]:
            d = x.recv(65536)
            if not d:
                a.close(); b.close(); return
            (b if x is a else a).sendall(d)
while True:
    c, _ = s.accept()
    t = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    if first:
        first = False
        req = c.recv(65536)
        while b"\r\n\r\n" not in req:
            req += c.recv(65536)
        t.sendall(req)
        sys.stderr.write("dropped: %r\n" % t.recv(65536)[:40])
        sys.stderr.flush()
        c.close(); t.close()
        continue
    threading.Thread(target=pump, args=(c, t), daemon=True).start()
PY
	fake_relay lossy.py "$PORT"
	run bch init dave --url "$FAKE_URL" --token "$ROOM"
	assert_success
	grep -q "dropped: b'HTTP/1.1 201" lossy.py.err
	# The token it kept is dave's on the relay itself.
	run env BACKCHANNEL_URL="$URL" bch inbox
	assert_success
	assert_output 'inbox empty'
}

@test "register with a token of the caller's choosing: kept as its hash; malformed or taken is refused" {
	relayd
	mine=$(printf '%064d' 7)
	req POST /v1/register "$ROOM" "{\"name\":\"erin\",\"token\":\"$mine\"}"
	expect 201
	grep -q "\"token\": \"$mine\"" <<<"$BODY"
	grep -q "\"tokenHash\": \"$(printf %s "$mine" | sha256sum | cut -c1-64)\"" \
		"$BACKCHANNEL_HOME/agents/erin.json"
	# The same again (a retry): 200, the same token.
	req POST /v1/register "$ROOM" "{\"name\":\"erin\",\"token\":\"$mine\"}"
	expect 200
	grep -q "\"token\": \"$mine\"" <<<"$BODY"
	# Another name cannot take that token; erin cannot be taken with another.
	req POST /v1/register "$ROOM" "{\"name\":\"frank\",\"token\":\"$mine\"}"
	expect 409
	req POST /v1/register "$ROOM" "{\"name\":\"erin\",\"token\":\"$(printf '%064d' 8)\"}"
	expect 409
	req POST /v1/register "$ROOM" '{"name":"gina","token":"ABC"}'
	expect 400
	[ ! -e "$BACKCHANNEL_HOME/agents/frank.json" ]
	[ ! -e "$BACKCHANNEL_HOME/agents/gina.json" ]
	req GET /v1/inbox/erin "$mine"
	expect 200
}

@test "tokenHash is the sha256 hex of the token and never leaves the relay" {
	relayd
	reg alice
	want=$(printf '%s' "$TOK" | sha256sum | cut -d' ' -f1)
	grep -q "\"tokenHash\": \"$want\"" "$BACKCHANNEL_HOME/agents/alice.json"
	! grep -q "$TOK" "$BACKCHANNEL_HOME/agents/alice.json" || false
	[ "$(stat -c %a "$BACKCHANNEL_HOME/agents/alice.json")" = 600 ]
	req GET /v1/agents "$TOK"
	expect 200
	[[ $BODY == *'"name": "alice"'* ]]
	[[ $BODY != *tokenHash* ]]
	[[ $BODY != *"$want"* ]]
	[[ $BODY != *"$TOK"* ]]
}

@test "a token survives a restart of the relay (the index is rebuilt from the records)" {
	relayd
	alice_bob
	stop_relay
	relayd
	grep -q '2 agents with tokens' "$LOG"
	send "$A" @bob 'after restart'
	expect 200
	[ "$(count_new bob)" -eq 1 ]
}

@test "a record whose tokenHash is not hex is left out of the index at start-up, and the relay says so" {
	relayd
	alice_bob
	stop_relay
	bad=$(printf 'Z%.0s' $(seq 64))
	sed -i "s/\"tokenHash\": *\"[0-9a-f]*\"/\"tokenHash\": \"$bad\"/" "$BACKCHANNEL_HOME/agents/bob.json"
	grep -q "\"tokenHash\": \"$bad\"" "$BACKCHANNEL_HOME/agents/bob.json"
	relayd
	grep -q '1 agents with tokens' "$LOG"
	grep -q 'bch-relayd: skipping the tokenHash of agent record bob: not 64 lowercase hex digits' "$LOG"
	send "$A" @bob 'still here'
	expect 200
	req GET /v1/inbox/bob "$B"
	expect 401
}

@test "a forged from in a send body is ignored: from comes from the token" {
	relayd
	alice_bob
	send "$A" @bob 'it was me' '"from":"bob"'
	expect 200
	[[ $BODY == *'"from":"alice"'* ]]
	f=$BACKCHANNEL_HOME/spool/bob/new/$ID.json
	grep -q '"from": *"alice"' "$f"
	! grep -q '"from": *"bob"' "$f" || false
	send "$A" @bob 'me again' '"from":"mallory"'
	expect 200
	[[ $BODY == *'"from":"alice"'* ]]
}

@test "a send body naming a field twice is 400 and stores nothing" {
	relayd
	alice_bob
	send "$A" @bob 'to whom' '"to":"@alice"'
	expect 400
	[[ $BODY == *'field \"to\" given twice'* ]]
	[ "$(count_new bob)" -eq 0 ]
	[ "$(count_new alice)" -eq 0 ]
}

@test "another agent's inbox and events are 403" {
	relayd
	alice_bob
	send "$A" @bob secret
	req GET /v1/inbox/bob "$A"
	expect 403
	is_error
	[[ $BODY != *secret* ]]
	req GET /v1/events/bob "$A"
	expect 403
	is_error
	req GET /v1/inbox/alice "$A"
	expect 200
	[ "$BODY" = '[]' ]
	req GET /v1/inbox/bob "$B"
	expect 200
	[[ $BODY == *secret* ]]
}

@test "/v1/inbox/..%2Fbob and friends are 403 and touch no file" {
	relayd
	alice_bob
	send "$A" @bob secret
	before=$(snapshot)
	for p in '/v1/inbox/..%2Fbob' '/v1/inbox/%2e%2e%2fbob' '/v1/inbox/alice%2F..%2F..%2Fbob' \
		'/v1/events/..%2Fbob' '/v1/inbox/..%2F..%2Fagents%2Fbob.json' '/v1/inbox/bob%00' \
		'/v1/inbox/%62%6f%62'; do
		req GET "$p" "$A"
		expect 403
		[[ $BODY != *secret* ]]
	done
	[ "$(snapshot)" = "$before" ]
	[ "$(count_new bob)" -eq 1 ]
}

@test "a send whose text holds a lone surrogate or \\u0000 is stored as U+FFFD; in a name it is 400" {
	relayd
	alice_bob
	# What the first implementation's client sends for a string cut inside
	# a surrogate pair, or holding NUL: JSON.stringify writes both.
	send "$A" @bob 'cut \ud83d, stray \udc00, nul \u0000 end' '"thread":"t\ud800","refs":["r\u0000"]'
	expect 200
	[[ $BODY == *'"body":"cut �, stray �, nul � end"'* ]]
	grep -qF '"body":"cut �, stray �, nul � end","priority":"normal","thread":"t�","refs":["r�"]' \
		"$BACKCHANNEL_HOME/spool/bob/new/$ID.json"
	req GET /v1/inbox/bob "$B"
	expect 200
	[[ $BODY == *'"body":"cut �, stray �, nul � end"'* ]]
	for to in '@bob\u0000' '@bob\ud800' '#dev\udc00'; do
		send "$A" "$to" 'x'
		expect 400
		is_error
	done
	req POST /v1/subscribe "$B" '{"channel":"#dev\u0000"}'
	expect 400
	[ "$(count_new bob)" -eq 1 ]
	[ ! -e "$BACKCHANNEL_HOME/spool/bob/corrupt" ]
}

@test "malformed JSON and invalid fields are 400 with an error body" {
	relayd
	alice_bob
	for b in '{"to":' 'not json' '[]' '{"to":"@bob"}' '{"to":"@bob","body":""}' \
		'{"to":"@../bob","body":"x"}' '{"to":"@bob","body":"x","priority":"loud"}'; do
		req POST /v1/send "$A" "$b"
		expect 400
		is_error
	done
	req POST /v1/take "$B" '{"id":"../../agents/bob"}'
	expect 400
	is_error
	req POST /v1/subscribe "$A" '{"chan'
	expect 400
	is_error
	[ "$(count_new bob)" -eq 0 ]
}

@test "an unknown route is 404; a GET of a POST route is not served" {
	relayd
	reg alice
	req GET /v1/nope "$TOK"
	expect 404
	is_error
	req GET /nope
	expect 404
	req POST /v1/health/x "$TOK" '{}'
	expect 404
	req GET /v1/send "$TOK"
	expect 405
	req GET /v1/register "$ROOM"
	expect 405
}

# allow METHOD PATH TOKEN ALLOW: METHOD on PATH is 405, with an error
# body (but to HEAD), and Allow says ALLOW.
allow() {
	req "$1" "$2" "$3"
	expect 405
	[ "$1" = HEAD ] || is_error # a HEAD answer has no body
	grep -qx "Allow: $4" <<<"$HEADERS" || {
		echo "$1 $2: no Allow: $4 in"$'\n'"$HEADERS"
		return 1
	}
}

@test "a method a route does not take is 405 with Allow naming the ones it does; nothing is done" {
	relayd
	alice_bob
	send "$A" @bob hi
	[ -n "$ID" ]
	allow GET /v1/send "$A" 'POST, OPTIONS'
	allow PUT /v1/send "$A" 'POST, OPTIONS'
	allow GET /v1/take "$B" 'POST, OPTIONS'
	allow GET /v1/ack "$B" 'POST, OPTIONS'
	allow DELETE /v1/release "$B" 'POST, OPTIONS'
	allow GET /v1/subscribe "$B" 'POST, OPTIONS'
	allow GET /v1/unsubscribe "$B" 'POST, OPTIONS'
	allow GET /v1/register "$ROOM" 'POST, OPTIONS'
	allow POST /v1/health "" 'GET, HEAD, OPTIONS'
	allow DELETE /v1/health "" 'GET, HEAD, OPTIONS'
	allow POST /v1/agents "$A" 'GET, HEAD, OPTIONS'
	allow PUT /v1/channels "$A" 'GET, HEAD, OPTIONS'
	allow DELETE /v1/inbox/bob "$B" 'GET, HEAD, OPTIONS'
	allow POST "/v1/receipt/$ID" "$A" 'GET, HEAD, OPTIONS'
	allow POST /v1/events/bob "$B" 'GET, OPTIONS'
	allow HEAD /v1/events/bob "$B" 'GET, OPTIONS'
	# The message is still there, unread.
	[ "$(count_new bob)" -eq 1 ]
	# A path that is no route stays 404, whatever the method.
	req DELETE /v1/nope "$A"
	expect 404
	req POST /nope
	expect 404
	run -1 grep -q '^Allow:' <<<"$HEADERS"
	# Still a token first on the routes that need one.
	req DELETE /v1/inbox/bob
	expect 401
}

@test "a body over the limit is 413, and nothing is stored" {
	relayd
	alice_bob
	# Over the message limit (64 KiB body), under the HTTP body limit.
	awk 'BEGIN { printf "{\"to\":\"@bob\",\"body\":\""; for (i = 0; i < 70000; i++) printf "a"; printf "\"}" }' >big.json
	req POST /v1/send "$A" "@big.json"
	expect 413
	is_error
	# Over the HTTP body limit: refused from the head alone.
	printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 10000000\r\n\r\n' "$A" >q
	answers q '413 '
	[ "$(count_new bob)" -eq 0 ]
	alive
}

@test "a body over 1 MiB that a raised BACKCHANNEL_MAX_BODY allows goes through the relay" {
	BACKCHANNEL_MAX_BODY=2000000 relayd
	alice_bob
	head -c 1100000 /dev/zero | tr '\0' a >big
	export BACKCHANNEL_URL=$URL BACKCHANNEL_MAX_BODY=2000000
	BACKCHANNEL_TOKEN=$A BACKCHANNEL_AGENT=alice run bch send @bob - <big
	assert_success
	assert_output --regexp '^sent [0-9a-f]{8} to @bob$'
	BACKCHANNEL_TOKEN=$B BACKCHANNEL_AGENT=bob run --separate-stderr bch drain --jsonl
	assert_success
	[ "$(printf '%s\n' "$output" | python3 -c 'import json, sys; print(len(json.loads(sys.stdin.readline())["body"]))')" = 1100000 ]
}

@test "a send whose JSON spells its body in \\u escapes is taken within the message limits" {
	relayd
	alice_bob
	# json.dumps escapes all but ASCII: 60000 bytes of body, 180000 of JSON.
	python3 -c 'import json; print(json.dumps({"to": "@bob", "body": "\u00e9" * 30000}))' >esc.json
	req POST /v1/send "$A" "@esc.json"
	expect 200
	[ "$(count_new bob)" -eq 1 ]
	# The body's limit still holds: 80000 bytes.
	python3 -c 'import json; print(json.dumps({"to": "@bob", "body": "\u00e9" * 40000}))' >esc.json
	req POST /v1/send "$A" "@esc.json"
	expect 413
	[[ $BODY == *'field \"body\" is over its limit of 65536 bytes'* ]]
	[ "$(count_new bob)" -eq 1 ]
}

@test "a send over the relay's limit is told the limit, as a permanent error, not a lost connection" {
	relayd
	alice_bob
	head -c 15000000 /dev/zero | tr '\0' a >big
	BACKCHANNEL_URL=$URL BACKCHANNEL_MAX_BODY=20000000 BACKCHANNEL_TOKEN=$A BACKCHANNEL_AGENT=alice \
		run -100 bch send @bob - <big
	assert_output "bch-send: request over the limit of 655360 bytes of this relay, which takes a body of at most 65536 bytes — send a path or URL in --ref instead"
	[ "$(count_new bob)" -eq 0 ]
	alive
}

@test "over --rate a sender gets 429 with Retry-After, and no message is lost" {
	relayd --rate 2
	alice_bob
	ok=0 limited=0
	for i in $(seq 1 30); do
		send "$A" @bob "burst $i"
		case $STATUS in
		200) ok=$((ok + 1)) ;;
		429)
			limited=$((limited + 1))
			is_error
			ra=$(printf '%s\n' "$HEADERS" | sed -n 's/^Retry-After: *\([0-9]*\)$/\1/Ip')
			[ -n "$ra" ] && [ "$ra" -ge 1 ]
			;;
		*) false ;;
		esac
	done
	[ "$limited" -gt 0 ]
	[ "$(count_new bob)" -eq "$ok" ]
	# Another sender has a bucket of its own.
	send "$B" @alice 'not limited'
	expect 200
}

# A Retry-After of 10 s or more was ignored: the client asked again at
# once, three times, then exited 111 without saying how long to wait.
@test "a long Retry-After ends the command at once, saying how long the relay asks to wait" {
	relayd --rate 0.05
	alice_bob
	for i in $(seq 1 10); do
		send "$A" @bob "burst $i"
		expect 200
	done
	start=$SECONDS
	run -111 env BACKCHANNEL_URL="$URL" BACKCHANNEL_TOKEN="$A" BACKCHANNEL_AGENT=alice bch send @bob one-more
	[ $((SECONDS - start)) -lt 5 ]
	assert_output --regexp '^bch-send: sending too fast — slow down and retry \(the relay asks to wait [12][0-9] s\)$'
	[ "$(grep -c '"POST /v1/send" 429' "$LOG")" -eq 1 ]
	[ "$(count_new bob)" -eq 10 ]
}

@test "507 when the recipient's inbox is full, and the message is not stored" {
	BACKCHANNEL_MAX_INBOX=3 relayd
	alice_bob
	for i in 1 2 3; do
		send "$A" @bob "m$i"
		expect 200
	done
	send "$A" @bob overflow
	expect 507
	is_error
	[ "$(count_new bob)" -eq 3 ]
	! grep -rq overflow "$BACKCHANNEL_HOME/spool/bob" || false
	# Room again once bob takes one.
	id=$(ls "$BACKCHANNEL_HOME/spool/bob/new" | head -1)
	req POST /v1/take "$B" "{\"id\":\"${id%.json}\"}"
	expect 200
	send "$A" @bob 'fits now'
	expect 200
}

@test "a full inbox drained by a tool on the relay host takes mail again within seconds" {
	BACKCHANNEL_MAX_INBOX=3 relayd
	alice_bob
	for i in 1 2 3; do
		send "$A" @bob "m$i"
		expect 200
	done
	for i in 1 2 3 4 5; do
		send "$A" @bob "refused $i"
		expect 507
	done
	# Not through the relay: it learns of the room from a new count.
	run -0 env BACKCHANNEL_AGENT=bob bch drain
	[ "$(count_new bob)" -eq 0 ]
	ok=
	for i in $(seq 30); do
		send "$A" @bob 'fits now'
		[ "$STATUS" = 200 ] && ok=1 && break
		expect 507
		sleep 0.1
	done
	[ -n "$ok" ]
	[ "$(count_new bob)" -eq 1 ]
	! grep -rq refused "$BACKCHANNEL_HOME/spool/bob" || false
}

# --- take, leases, idempotent send ----------------------------------------

@test "take without a lease deletes; a second take gets null" {
	relayd
	alice_bob
	send "$A" @bob 'take me'
	req POST /v1/take "$B" "{\"id\":\"$ID\"}"
	expect 200
	[[ $BODY == '{"message":{"id":"'$ID'"'* ]]
	[[ $BODY == *'"body":"take me"'* ]]
	[ "$(count_new bob)" -eq 0 ]
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
	req POST /v1/take "$B" "{\"id\":\"$ID\"}"
	expect 200
	[ "$BODY" = '{"message":null}' ]
}

@test "take of another agent's message id is null and leaves it" {
	relayd
	alice_bob
	send "$B" @alice 'for alice'
	req POST /v1/take "$B" "{\"id\":\"$ID\"}"
	expect 200
	[ "$BODY" = '{"message":null}' ]
	[ "$(count_new alice)" -eq 1 ]
}

@test "take with a lease, then ack, deletes" {
	relayd
	alice_bob
	send "$A" @bob leased
	req POST /v1/take "$B" "{\"id\":\"$ID\",\"lease\":60}"
	expect 200
	[[ $BODY == *'"body":"leased"'* ]]
	[ "$(count_new bob)" -eq 0 ]
	[ -n "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
	req POST /v1/ack "$A" "{\"id\":\"$ID\"}"
	expect 404 # alice holds no lease on it
	req POST /v1/ack "$B" "{\"id\":\"$ID\"}"
	expect 200
	[ "$BODY" = '{"ok":true}' ]
	[ "$(count_new bob)" -eq 0 ]
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
	req POST /v1/ack "$B" "{\"id\":\"$ID\"}"
	expect 404
}

@test "take with a lease, then release, returns the message" {
	relayd
	alice_bob
	send "$A" @bob 'back you go'
	req POST /v1/take "$B" "{\"id\":\"$ID\",\"lease\":60}"
	expect 200
	[ "$(count_new bob)" -eq 0 ]
	req POST /v1/release "$B" "{\"id\":\"$ID\"}"
	expect 200
	[ "$(count_new bob)" -eq 1 ]
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
	req GET /v1/inbox/bob "$B"
	[[ $BODY == *'back you go'* ]]
}

@test "a lease that expires returns the message to the inbox" {
	relayd
	alice_bob
	send "$A" @bob 'short lease'
	req POST /v1/take "$B" "{\"id\":\"$ID\",\"lease\":1}"
	expect 200
	[ "$(count_new bob)" -eq 0 ]
	wait_for 5 new_is bob 1
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
	req POST /v1/ack "$B" "{\"id\":\"$ID\"}"
	expect 404
	req POST /v1/take "$B" "{\"id\":\"$ID\"}"
	[[ $BODY == *'short lease'* ]]
}

@test "a leased claim is never replaced by another sender's message under its id: that send is refused until it is read" {
	relayd
	alice_bob
	reg carol
	C=$TOK
	id=$(uuid)
	send "$A" @bob 'from alice' "\"id\":\"$id\""
	req POST /v1/take "$B" "{\"id\":\"$id\",\"lease\":60}"
	expect 200
	[[ $BODY == *'from alice'* ]]
	# Carol sends under the same id: refused, as for an unread message
	# of alice's under it; bob's lease on alice's still holds.
	send "$C" @bob 'from carol' "\"id\":\"$id\""
	expect 409
	is_error
	req POST /v1/take "$B" "{\"id\":\"$id\",\"lease\":60}"
	expect 200
	grep -q 'from alice' "$BACKCHANNEL_HOME/spool/bob/cur/$id.json.claim."*
	req POST /v1/ack "$B" "{\"id\":\"$id\"}"
	expect 200
	# Read and gone, alice's frees the id: carol's is taken, once.
	send "$C" @bob 'from carol' "\"id\":\"$id\""
	expect 200
	req POST /v1/take "$B" "{\"id\":\"$id\"}"
	expect 200
	[[ $BODY == *'from carol'* ]]
	[ "$(count_new bob)" -eq 0 ]
}

@test "a lease taken just before the clock's second turns is held its whole second" {
	relayd
	alice_bob
	local try t0 ms n
	for try in 1 2 3 4 5; do
		send "$A" @bob 'a full second'
		# Take it in the last tenth of a wall-clock second: a lease
		# that ran out at the next whole second would be gone within
		# 0.1 s.
		until [ "$(date +%N)" -ge 900000000 ]; do :; done
		t0=${EPOCHREALTIME/./}
		req POST /v1/take "$B" "{\"id\":\"$ID\",\"lease\":1}"
		expect 200
		sleep 0.4 # time passing is the point, not a wait for an event
		n=$(count_new bob)
		ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
		req POST /v1/ack "$B" "{\"id\":\"$ID\"}"
		if [ "$ms" -ge 900 ]; then
			# A machine so busy that the lease's second was over by
			# the count proves nothing: take it away, try again.
			req POST /v1/take "$B" "{\"id\":\"$ID\"}"
			continue
		fi
		[ "$n" -eq 0 ]
		expect 200
		return 0
	done
	echo "no try counted within the lease (last took $ms ms)"
	return 1
}

@test "a take whose lease or keep is malformed is 400 and takes nothing" {
	relayd
	alice_bob
	send "$A" @bob 'claim me safely'
	for field in '"lease":30.5' '"lease":"60"' '"lease":1e2' \
		'"lease":99999999999999999999' '"lease":0' '"lease":-5' \
		'"lease":null' '"keep":"yes"' '"keep":1'; do
		req POST /v1/take "$B" "{\"id\":\"$ID\",$field}"
		expect 400 || { echo "for $field"; return 1; }
		is_error
		[ "$(count_new bob)" -eq 1 ] || { echo "$field took the message"; return 1; }
	done
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
	req POST /v1/ack "$B" "{\"id\":\"$ID\",\"keep\":\"no\"}"
	expect 400
	# A well-formed leased take still holds it.
	req POST /v1/take "$B" "{\"id\":\"$ID\",\"lease\":60,\"keep\":false}"
	expect 200
	[[ $BODY == *'claim me safely'* ]]
	[ -n "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
	req POST /v1/ack "$B" "{\"id\":\"$ID\",\"keep\":true}"
	expect 200
}

@test "idempotent send: the same client id twice stores one message" {
	relayd
	alice_bob
	id=$(uuid)
	send "$A" @bob once "\"id\":\"$id\""
	expect 200
	first=$BODY
	[ "$ID" = "$id" ]
	send "$A" @bob once "\"id\":\"$id\""
	expect 200
	[ "$BODY" = "$first" ]
	[ "$(count_new bob)" -eq 1 ]
	[ -f "$BACKCHANNEL_HOME/spool/bob/new/$id.json" ]
	# A malformed client id is refused.
	send "$A" @bob bad '"id":"not-a-uuid"'
	expect 400
	[ "$(count_new bob)" -eq 1 ]
}

# --- HTTP/1.1 framing -------------------------------------------------------

@test "a send under another sender's message id is 409, and no stream or inbox gets it" {
	relayd
	alice_bob
	bob_carol_on_dev
	reg dave
	D=$TOK
	id=$(uuid)
	send "$D" @bob 'the real one' "\"id\":\"$id\""
	expect 200
	stream "$B" bob sse.bob
	stream "$C" carol sse.carol
	wait_for 5 grep -q 'the real one' sse.bob
	# alice takes dave's id, to bob and to the channel bob is on.
	send "$A" @bob forged "\"id\":\"$id\""
	expect 409
	is_error
	send "$A" '#dev' 'forged too' "\"id\":\"$id\""
	expect 409
	is_error
	# A send after them reaches both streams: anything before it would
	# have too.
	send "$A" '#dev' after
	expect 200
	wait_for 5 grep -q '"body":"after"' sse.bob
	wait_for 5 grep -q '"body":"after"' sse.carol
	! grep -q forged sse.bob sse.carol || false
	[ "$(grep -c '^data: ' sse.bob)" -eq 2 ]
	[ "$(grep -c '^data: ' sse.carol)" -eq 1 ]
	# The inboxes hold dave's message and the one after, nothing forged.
	[ "$(count_new bob)" -eq 2 ]
	[ "$(count_new carol)" -eq 1 ]
	grep -q 'the real one' "$BACKCHANNEL_HOME/spool/bob/new/$id.json"
	[ ! -e "$BACKCHANNEL_HOME/spool/carol/new/$id.json" ]
	[ -z "$(find "$BACKCHANNEL_HOME/spool/bob/tmp" "$BACKCHANNEL_HOME/spool/carol/tmp" -type f)" ]
	# The same sender's retry is still one message, pushed once.
	send "$D" @bob 'the real one' "\"id\":\"$id\""
	expect 200
	[ "$(count_new bob)" -eq 2 ]
}

@test "a channel send retried with its id after a restart reaches the members that lack it, once" {
	relayd
	alice_bob
	bob_carol_on_dev
	id=$(uuid)
	send "$A" '#dev' 'to all' "\"id\":\"$id\""
	expect 200
	# carol read hers; the relay restarts and forgets the send.
	req POST /v1/take "$C" "{\"id\":\"$id\"}"
	expect 200
	stop_relay
	relayd
	stream "$B" bob sse.bob
	wait_for 5 grep -q '"body":"to all"' sse.bob
	send "$A" '#dev' 'to all' "\"id\":\"$id\""
	expect 200
	send "$A" @bob after
	wait_for 5 grep -q '"body":"after"' sse.bob
	[ "$(grep -c '"body":"to all"' sse.bob)" -eq 1 ]
	[ "$(count_new bob)" -eq 2 ]
}

@test "keep-alive: several requests on one connection" {
	relayd
	reg alice
	run curl -s -w '%{http_code} %{num_connects}\n' -H "Authorization: Bearer $TOK" \
		-o /dev/null "$URL/v1/health" -o /dev/null "$URL/v1/agents" \
		-o /dev/null "$URL/v1/channels" -o /dev/null "$URL/v1/inbox/alice"
	[ "${lines[0]}" = '200 1' ]
	[ "${lines[1]}" = '200 0' ]
	[ "${lines[2]}" = '200 0' ]
	[ "${lines[3]}" = '200 0' ]
	# The same by hand: answer, then ask again on the same socket.
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	for i in 1 2 3; do
		printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
		read_resp "$fd"
		[ "$RESP_STATUS" = 200 ]
		[ "$RESP_BODY" = '{"ok":true,"service":"backchannel-relay"}'$'\n' ]
	done
	exec {fd}>&-
}

@test "Connection: close is honoured inside a list of options, as Perl's LWP sends it" {
	relayd
	for c in 'TE, close' 'keep-alive, close' 'Upgrade,Close'; do
		printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: %s\r\n\r\n' "$c" >q
		SECONDS=0
		answers q '200 '
		assert_line $'Connection: close\r'
		[ "$SECONDS" -lt 4 ] # closed, not left for raw's timeout
	done
	# An HTTP/1.0 client that says both is closed too; one that asks
	# for keep-alive in a list keeps it.
	printf 'GET /v1/health HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n' >q
	run raw q
	assert_line $'Connection: close\r'
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	for i in 1 2; do
		printf 'GET /v1/health HTTP/1.0\r\nConnection: TE, Keep-Alive\r\n\r\n' >&"$fd"
		read_resp "$fd"
		[ "$RESP_STATUS" = 200 ]
	done
	exec {fd}>&-
}

@test "an HTTP/1.0 client that asks for keep-alive is told it has it, as ab -k needs; one that does not is closed" {
	relayd
	printf 'GET /v1/health HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET /v1/health HTTP/1.0\r\n\r\n' >q
	SECONDS=0
	answers q '200 200 '
	[ "$(printf '%s\n' "$output" | grep -ci '^Connection: keep-alive')" -eq 1 ]
	[ "$(printf '%s\n' "$output" | grep -ci '^Connection: close')" -eq 1 ]
	[ "$SECONDS" -lt 4 ]
}

@test "a request target in absolute form is served as its path" {
	relayd
	alice_bob
	run curl -s -w ' %{http_code}' --request-target "http://127.0.0.1:$PORT/v1/health" "$URL/"
	assert_output $'{"ok":true,"service":"backchannel-relay"}\n 200'
	run curl -s -w ' %{http_code}' -H "Authorization: Bearer $A" -H 'Content-Type: application/json' \
		--data-binary '{"to":"@bob","body":"absolute"}' --request-target "HTTP://relay.example/v1/send" "$URL/"
	assert_output --regexp '"body":"absolute".* 200$'
	run curl -s -w ' %{http_code}' -H "Authorization: Bearer $B" --request-target "https://relay.example/v1/inbox/bob?x=1" "$URL/"
	assert_output --regexp '"body":"absolute".* 200$'
	run curl -s -w ' %{http_code}' --request-target "http://relay.example?v1/health" "$URL/"
	assert_output --regexp ' 404$'
}

@test "a request target that is no path nor absolute URL is 400: authority form, *, a bare name, another scheme" {
	relayd
	alice_bob
	local t
	for t in "127.0.0.1:$PORT" '*' v1/health 'ftp://relay.example/v1/health'; do
		run curl -s -w ' %{http_code}' --request-target "$t" "$URL/"
		assert_output --regexp ' 400$'
	done
	run curl -s -w ' %{http_code}' -X POST -H "Authorization: Bearer $A" -H 'Content-Type: application/json' \
		--data-binary '{"to":"@bob","body":"relative"}' --request-target v1/send "$URL/"
	assert_output --regexp ' 400$'
	[ "$(count_new bob)" -eq 0 ]
	# OPTIONS * is a request line, for the relay to answer.
	run curl -s -w ' %{http_code}' -X OPTIONS --request-target '*' "$URL/"
	assert_output ' 200'
	alive
}

@test "OPTIONS * and OPTIONS on a route are 200 with Allow and no body, with no token; the connection stays open" {
	relayd
	printf 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >q
	answers q '200 '
	local head
	head=$(tr -d '\r' <<<"$output")
	grep -qx 'Allow: GET, HEAD, POST, OPTIONS' <<<"$head"
	grep -qx 'Content-Length: 0' <<<"$head"
	# Another request after it, on the same connection.
	{
		printf 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n'
		printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	} >q
	answers q '200 200 '
	req OPTIONS /v1/send
	expect 200
	grep -qx 'Allow: POST, OPTIONS' <<<"$HEADERS"
	grep -qx 'Content-Length: 0' <<<"$HEADERS"
	[ -z "$BODY" ]
	req OPTIONS /v1/inbox/bob
	expect 200
	grep -qx 'Allow: GET, HEAD, OPTIONS' <<<"$HEADERS"
	req OPTIONS /v1/health
	expect 200
	grep -qx 'Allow: GET, HEAD, OPTIONS' <<<"$HEADERS"
	# A path that is no route is still 404, with or without a token.
	req OPTIONS /v1/nope
	expect 404
	req OPTIONS /nope
	expect 404
	run -1 grep -q '^Allow:' <<<"$HEADERS"
	# The asterisk is for OPTIONS alone.
	printf 'GET * HTTP/1.1\r\nHost: x\r\n\r\n' >q
	answers q '400 '
}

@test "pipelined requests in one write get their answers in order" {
	relayd
	reg alice
	{
		printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n'
		printf 'GET /v1/agents HTTP/1.1\r\nHost: x\r\n\r\n'
		printf 'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n'
		b='{"to":"@alice","body":"x"}'
		printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s' "$TOK" "${#b}" "$b"
		printf 'GET /v1/inbox/alice HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' "$TOK"
	} >q
	answers q '200 401 404 200 200 '
	[ "$(count_new alice)" -eq 1 ]
	# The last one saw the send before it.
	[[ ${lines[${#lines[@]} - 1]} == '[{"id":'*'"body":"x"'* ]]
}

@test "a HEAD answer has a head and no body, so the next answer on the connection is read right" {
	relayd
	reg alice
	{
		printf 'HEAD /v1/health HTTP/1.1\r\nHost: x\r\n\r\n'
		printf 'HEAD /v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n' "$TOK"
		printf 'HEAD /v1/inbox/alice HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n' "$TOK"
		printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	} >q
	raw q >a
	# Each head is followed at once by the next status line; only the
	# GET has its body after it. HEAD is served wherever GET is.
	[ "$(status_lines <a)" = '200 200 200 200 ' ]
	[ "$(grep -c '"ok":true' a)" -eq 1 ]
	[ "$(tr -d '\r' <a | grep -c '^$')" -eq 4 ]
	[ "$(tr -d '\r' <a | sed -n '$p')" = '{"ok":true,"service":"backchannel-relay"}' ]
}

@test "a chunked request body is decoded" {
	relayd
	alice_bob
	printf '%s' '{"to":"@bob","body":"chunked hello"}' >body.json
	run curl -s -H 'Transfer-Encoding: chunked' -H "Authorization: Bearer $A" \
		-H 'Content-Type: application/json' --data-binary @body.json "$URL/v1/send"
	assert_success
	assert_output --partial '"body":"chunked hello"'
	# Several chunks, an extension, the final empty chunk, then another request.
	{
		printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n' "$A"
		printf '7\r\n{"to":"\r\n'
		printf 'a;ext=1\r\n@bob","bod\r\n'
		printf '11\r\ny":"in pieces"}  \r\n'
		printf '0\r\n\r\n'
		printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
	} >q
	answers q '200 200 '
	assert_output --partial '"body":"in pieces"'
	[ "$(count_new bob)" -eq 2 ]
	# Malformed chunking is 400.
	printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nxx\r\n0\r\n\r\n' "$A" >q
	answers q '400 '
}

@test "a client that sends Expect: 100-continue is told to go on at once, and its body is read" {
	relayd
	alice_bob
	python3 -c 'import json; print(json.dumps({"to": "@bob", "body": "x" * 2000}))' >big.json
	# curl waits this long for "100 Continue" before it sends the body
	# anyway: a relay that never says it costs every such send the wait.
	for te in '' 'Transfer-Encoding: chunked'; do
		run curl -sv --expect100-timeout 20 -m 10 -H 'Expect: 100-continue' \
			${te:+-H "$te"} -H "Authorization: Bearer $A" \
			-H 'Content-Type: application/json' --data-binary @big.json "$URL/v1/send"
		assert_success
		assert_line --partial '< HTTP/1.1 100 Continue'
		assert_line --partial '< HTTP/1.1 200 OK'
	done
	[ "$(count_new bob)" -eq 2 ]
	# Refused on its head: the final answer, never a 100 before it.
	head -c 1000000 /dev/zero >huge
	run curl -sv --expect100-timeout 20 -m 10 -H 'Expect: 100-continue' \
		-H "Authorization: Bearer $A" --data-binary @huge "$URL/v1/send"
	refute_line --partial '< HTTP/1.1 100 Continue'
	assert_line --partial '< HTTP/1.1 413 '
	# Not to HTTP/1.0, which has no 1xx: it sends its body unasked.
	b='{"to":"@bob","body":"one-oh"}'
	printf 'POST /v1/send HTTP/1.0\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n%s' "$A" "${#b}" "$b" >q
	answers q '200 '
}

# head_first PATH AUTH [EXPECT]: a POST of 600000 bytes of JSON (a send
# to @bob, padded), its head first with AUTH as its Authorization value
# ("-": none), and Expect: 100-continue with EXPECT. Prints each answer's
# status line as it comes (or that none came within 5 s); the body goes
# after a 100, or after a final answer, when it prints whether the body
# went and the relay then closed. Over TLS with CAFILE set.
head_first() {
	timeout 30 python3 -c '
import os, socket, ssl, sys
port, path, auth, expect = int(sys.argv[1]), sys.argv[2], sys.argv[3], len(sys.argv) > 4
body = b"{\"to\":\"@bob\",\"body\":\"sent head first\""
body += b" " * (600000 - len(body) - 1) + b"}"
h = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (path.encode(), len(body))
if auth != "-":
    h += b"Authorization: %s\r\n" % auth.encode()
if expect:
    h += b"Expect: 100-continue\r\n"
c = socket.create_connection(("127.0.0.1", port))
if os.environ.get("CAFILE"):
    ctx = ssl.create_default_context(cafile=os.environ["CAFILE"])
    c = ctx.wrap_socket(c, server_hostname="localhost")
c.settimeout(5)
c.sendall(h + b"\r\n")
def answer():
    try:
        a = c.recv(65536)
    except socket.timeout:
        print("no answer in 5 s")
        sys.exit(0)
    print(a.split(b"\r\n")[0].decode())
    return a
a = answer()
if a.startswith(b"HTTP/1.1 100 "):
    c.sendall(body)
    a = answer()
    sys.exit(0)
print("closes" if b"\r\nConnection: close\r\n" in a else "stays open")
try:
    c.sendall(body)
    print("body sent")
except OSError as e:
    print("body cut:", type(e).__name__)
try:
    print("closed" if not c.recv(65536) else "more")
except OSError as e:
    print("read failed:", type(e).__name__)
' "$PORT" "$@"
}

# A request whose token cannot pass was read whole before its 401: a
# client with no token made the relay wait for (and hold) its body, or,
# with Expect: 100-continue, was told to send it for nothing.
@test "a request whose token cannot pass is 401 from its head alone, before its body is read" {
	relayd
	alice_bob
	for auth in "Bearer 0123456789abcdef0123456789abcdef" "Bearer $ROOM" \
		"Basic $A" "Bearer" -; do
		run head_first /v1/send "$auth"
		assert_output "HTTP/1.1 401 Unauthorized
closes
body sent
closed"
	done
	run head_first /v1/register "Bearer 0123456789abcdef0123456789abcdef"
	assert_output "HTTP/1.1 401 Unauthorized
closes
body sent
closed"
	[ "$(count_new bob)" -eq 0 ]
	alive
}

@test "Expect: 100-continue with a token that cannot pass is answered 401, not 100 Continue" {
	relayd
	alice_bob
	run head_first /v1/send "Bearer 0123456789abcdef0123456789abcdef" expect
	assert_output "HTTP/1.1 401 Unauthorized
closes
body sent
closed"
	[ "$(count_new bob)" -eq 0 ]
	stop_relay
	tls_relay ec
	CAFILE=$CERT run head_first /v1/send "Bearer 0123456789abcdef0123456789abcdef" expect
	assert_output "HTTP/1.1 401 Unauthorized
closes
body sent
closed"
}

@test "Expect: 100-continue with a good token is told 100 Continue, and its send goes" {
	relayd
	alice_bob
	run head_first /v1/send "Bearer $A" expect
	assert_output "HTTP/1.1 100 Continue
HTTP/1.1 200 OK"
	[ "$(count_new bob)" -eq 1 ]
	# The room token registers from a head that comes first too.
	run head_first /v1/register "Bearer $ROOM" expect
	assert_line -n 0 "HTTP/1.1 100 Continue"
	assert_line -n 1 --regexp "^HTTP/1.1 [0-9]{3} "
	refute_line -n 1 "HTTP/1.1 401 Unauthorized"
}

@test "a chunk size line with more than digits and an extension after them is 400, and nothing in the body is taken for a request" {
	relayd
	alice_bob
	# "0x26" is the last chunk to a reader that stops at the first
	# non-digit, and 38 bytes of data to one that reads C's 0x: the
	# request hidden in them must not be answered.
	g='GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n'
	printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n0x26\r\n\r\n'"$g"'\r\n0\r\n\r\n' "$A" >q
	answers q '400 '
	refute_output --partial '"ok":true'
	b='{"to":"@bob","body":"x"}'
	printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n%xzz\r\n%s\r\n0\r\n\r\n' "$A" "${#b}" "$b" >q
	answers q '400 '
	# A control byte in an extension too.
	printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n%x;a\rb\r\n%s\r\n0\r\n\r\n' "$A" "${#b}" "$b" >q
	answers q '400 '
	[ "$(count_new bob)" -eq 0 ]
	# Whitespace before an extension, and uppercase hex, are fine.
	printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%X \t;a="b c"\r\n%s\r\n0\r\n\r\n' "$A" "${#b}" "$b" >q
	answers q '200 '
	[ "$(count_new bob)" -eq 1 ]
}

@test "Transfer-Encoding chunked twice, or in an HTTP/1.0 request, is 400, and the body is not taken for requests" {
	relayd
	alice_bob
	b='{"to":"@bob","body":"x"}'
	printf -v chunked '%x\r\n%s\r\n0\r\n\r\n' "${#b}" "$b"
	for te in 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked' \
		'Transfer-Encoding: chunked\r\ntransfer-encoding: CHUNKED' \
		'Transfer-Encoding: chunked, chunked'; do
		printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n'"$te"'\r\n\r\n%sGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n' "$A" "$chunked" >q
		run raw q
		[ "$(printf '%s\n' "$output" | status_lines)" = '400 ' ] ||
			[ "$(printf '%s\n' "$output" | status_lines)" = '501 ' ]
		refute_output --partial '"ok":true'
	done
	printf 'POST /v1/send HTTP/1.0\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n%sGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n' "$A" "$chunked" >q
	answers q '400 '
	[ "$(count_new bob)" -eq 0 ]
	# Once, in HTTP/1.1, it is fine.
	printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n%s' "$A" "$chunked" >q
	answers q '200 '
	[ "$(count_new bob)" -eq 1 ]
}

@test "a chunked body's trailer fields are read past, whole or cut at any byte, and the next request is answered" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd --rate 100000
	alice_bob
	run timeout 60 python3 -c '
import fakehttp, re, sys
port, tok = int(sys.argv[1]), sys.argv[2].encode()
body = b"{\"to\":\"@bob\",\"body\":\"with trailers\"}"
def chunked(trailer):
    return (b"POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
            b"\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n" +
            b"%x\r\n" % len(body) + body + b"\r\n0\r\n" + trailer + b"\r\n" +
            b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
def ask(data, cut):
    return re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", fakehttp.ask_cut(port, data, cut))
good = chunked(b"X-Sum: 1234\r\nX-Empty:\r\n")
start = good.index(b"0\r\nX-Sum")
wrong = sum(ask(good, cut) != [b"200", b"200"] for cut in range(start, len(good) - 60))
print("good, wrong", wrong)
for t in (b"X-Sum: 1\n", b"X-Sum 1\r\n", b"X-Sum: 1\r\n folded\r\n", b"X-Sum: 1\r2\r\n"):
    print("bad", ask(chunked(t), 1))
' "$PORT" "$A"
	assert_success
	echo "$output"
	assert_line 'good, wrong 0'
	[ "$(grep -c "^bad \[b'400'\]$" <<<"$output")" -eq 4 ]
	[ "$(count_new bob)" -gt 20 ]
}

@test "a chunked body padded with chunk extensions is 413 past twice the limit, and nothing is stored" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd
	alice_bob
	# 6 kB of JSON in one-byte chunks, each with a 250-byte extension:
	# some 1.5 MB on the wire for a body well under the limit.
	python3 -c '
import sys
body = b"{\"to\":\"@bob\",\"body\":\"" + b"x" * 6000 + b"\"}"
head = ("POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n" % sys.argv[1]).encode()
ext = b";" + b"e" * 250
sys.stdout.buffer.write(head + b"".join(b"1" + ext + b"\r\n" + body[i:i + 1] + b"\r\n"
                                        for i in range(len(body))) + b"0\r\n\r\n")
' "$A" >padded.req
	[ "$(wc -c <padded.req)" -gt 1500000 ]
	run raw padded.req
	[ "$(printf '%s\n' "$output" | status_lines)" = '413 ' ]
	assert_output --partial '"error":"request over the limit'
	[ "$(count_new bob)" -eq 0 ]
	# The same body in one chunk is sent.
	python3 -c '
import sys
body = b"{\"to\":\"@bob\",\"body\":\"" + b"x" * 6000 + b"\"}"
sys.stdout.buffer.write(("POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
    "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n%x;e=1\r\n"
    % (sys.argv[1], len(body))).encode() + body + b"\r\n0\r\n\r\n")
' "$A" >plain.req
	run raw plain.req
	[ "$(printf '%s\n' "$output" | status_lines)" = '200 ' ]
	[ "$(count_new bob)" -eq 1 ]
}

@test "a request trickled in one byte a write, head and Content-Length body, is answered right, and the next one too" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd
	alice_bob
	# Each byte its own segment, a little apart, so that the relay reads
	# them one at a time; a GET follows the send in the same trickle.
	run timeout 30 python3 -c '
import socket, sys, time
port, tok = int(sys.argv[1]), sys.argv[2]
body = b"{\"to\":\"@bob\",\"body\":\"trickled, byte by byte\"}"
data = (b"POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " +
        tok.encode() + b"\r\nContent-Type: application/json\r\n" +
        b"Content-Length: %d\r\n\r\n" % len(body) + body +
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.connect(("127.0.0.1", port))
for i in range(len(data)):
    s.sendall(data[i:i + 1])
    time.sleep(0.0005)
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
sys.stdout.write(got.decode())
' "$PORT" "$A"
	assert_success
	[ "$(printf '%s\n' "$output" | status_lines)" = '200 200 ' ]
	assert_output --partial '"body":"trickled, byte by byte"'
	assert_output --partial '"ok":true'
	[ "$(count_new bob)" -eq 1 ]
}

@test "pipelined requests, chunked and Content-Length, cut in two at every byte, are each answered once, in order" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd --rate 100000
	reg alice
	# Bodies are parsed before the route is looked at: a 404 takes its
	# body off the connection too, and so does a 401 that came whole. A
	# 401 whose head came without all of its body is answered from the
	# head, and the connection closes, unanswered past it.
	run timeout 120 python3 -c '
import fakehttp, re, sys
port, tok = int(sys.argv[1]), sys.argv[2].encode()
def chunked(path, auth, parts):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + auth +
            b"\r\nTransfer-Encoding: chunked\r\n\r\n" +
            b"".join(b"%x;n=%d\r\n%s\r\n" % (len(p), i, p) for i, p in enumerate(parts)) +
            b"0\r\n\r\n")
def clen(path, auth, body):
    return (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + auth +
            b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
data = (chunked(b"/v1/subscribe", tok, [b"{\"chan", b"nel\":", b"\"#dev\"}"]) +
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n" +
        clen(b"/v1/send", b"0" * 64, b"{\"to\":\"@alice\",\"body\":\"no\"}") +
        chunked(b"/v1/nope", tok, [b"x" * 20, b"y"]) +
        clen(b"/v1/subscribe", tok, b"{\"channel\":\"#ops\"}") +
        b"GET /v1/channels HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
        b"\r\nConnection: close\r\n\r\n")
want = [b"200", b"200", b"401", b"404", b"200", b"200"]
head = data.index(b"\r\n\r\n", data.index(b"POST /v1/send")) + 4
body = data.index(b"POST /v1/nope")
def right(cut, got, st):
    if st == want and b"#dev" in got and b"#ops" in got:
        return True
    return (head <= cut < body and st == want[:3] and
            b"\r\nConnection: close\r\n" in got.split(b"HTTP/1.1 401 ")[-1])
bad = 0
for cut in range(1, len(data)):
    got = fakehttp.ask_cut(port, data, cut)
    st = re.findall(rb"HTTP/1\.1 ([0-9]{3}) ", got)
    if not right(cut, got, st):
        bad += 1
        if bad <= 5:
            print("cut at %d: %r" % (cut, st))
print("cuts %d, wrong %d" % (len(data) - 1, bad))
' "$PORT" "$TOK"
	assert_success
	echo "$output"
	assert_line --regexp '^cuts [0-9]+, wrong 0$'
	alive
}

@test "a request whose lines end in bare LFs is 400 at once, not left waiting for the request timeout" {
	relayd
	for q in 'GET /v1/health HTTP/1.1\nHost: x\n\n' \
		'GET /v1/health HTTP/1.1\r\nHost: x\n\n' \
		'GET /v1/health HTTP/1.1\r\nHost: x\n\r\n' \
		'GET /v1/health HTTP/1.1\r\nHost: x\r\n\nContent-Length: 3\r\n\r\nabc'; do
		printf "$q" >q
		SECONDS=0
		answers q '400 '
		[ "$SECONDS" -lt 4 ]
	done
	alive
}

# A first byte that no method starts with (neither a letter, for which
# the wrong scheme is told, nor a TLS handshake's) left the connection
# waiting for a head that would never parse, then closed it with no
# answer after the 10 s request timeout. raw waits 5 s for the answer.
@test "a request that starts with a byte no method starts with is 400 at once, over HTTP and TLS, not left waiting for the request timeout" {
	relayd
	bg_pid "$BCH_RELAY_PID" # the TLS one below is the teardown's
	for q in '\x00' '\x00\x01garbage' ' GET /v1/health HTTP/1.1\r\n' '/v1/health'; do
		printf "$q" >q
		answers q '400 '
		assert_output --partial '{"error":"Bad Request"}'
	done
	alive
	tls_relay ec
	run timeout 20 python3 -c '
import socket, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[2])
c = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[1]))),
    server_hostname="localhost")
c.sendall(b"\x00")
c.settimeout(5)
a = b""
try:
    while True:
        b = c.recv(4096)
        if not b:
            break
        a += b
except (OSError, ssl.SSLError) as e:
    print("no end:", type(e).__name__)
print(a.split(b"\r\n")[0].decode())
' "$PORT" "$CERT"
	assert_output 'HTTP/1.1 400 Bad Request'
}

# RFC 9112 2.2: a server SHOULD ignore at least one empty line (CRLF)
# before a request line; a client may end a body with a CRLF too many.
# The relay answered 400 and closed.
@test "empty lines before a request line are ignored, on a new connection and between requests" {
	relayd
	printf '\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >q
	answers q '200 '
	printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >q
	answers q '200 200 '
	alive
}

@test "a flood of 100 headers is 431" {
	relayd
	{
		printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\n'
		for i in $(seq 1 100); do printf 'X-Flood-%d: %d\r\n' "$i" "$i"; done
		printf '\r\n'
	} >q
	answers q '431 '
	assert_output --partial '{"error":'
	alive
}

@test "a 20 KiB header is 431" {
	relayd
	{
		printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: '
		head -c 20480 /dev/zero | tr '\0' a
		printf '\r\n\r\n'
	} >q
	answers q '431 '
	alive
}

@test "an HTTP/1.1 request without Host, or any with two Host fields or a bad one, is 400 and its connection closed; HTTP/1.0 needs none" {
	relayd
	alice_bob
	local b='{"to":"@bob","body":"no host"}'
	# Without Host, a send is refused and the request after it is not read.
	printf 'POST /v1/send HTTP/1.1\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%sGET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n' "$A" "${#b}" "$b" >q
	answers q '400 '
	[ "$(count_new bob)" -eq 0 ]
	printf 'GET /v1/health HTTP/1.1\r\n\r\n' >q
	answers q '400 '
	# Two Host fields, the same or not, in HTTP/1.1 or 1.0.
	printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n' >q
	answers q '400 '
	printf 'GET /v1/health HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n' >q
	answers q '400 '
	# A value that is no host[:port].
	printf 'GET /v1/health HTTP/1.1\r\nHost: x y\r\n\r\n' >q
	answers q '400 '
	printf 'GET /v1/health HTTP/1.1\r\nHost: x/y@z\r\n\r\n' >q
	answers q '400 '
	# HTTP/1.0 without Host, and host, port and IPv6 literal forms, pass.
	printf 'GET /v1/health HTTP/1.0\r\n\r\n' >q
	answers q '200 '
	printf 'GET /v1/health HTTP/1.1\r\nhost: relay.example:7117\r\n\r\nGET /v1/health HTTP/1.1\r\nHost: [::1]:7117\r\n\r\nGET /v1/health HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n' >q
	answers q '200 200 200 '
	# bch itself sends Host.
	BACKCHANNEL_URL=$URL BACKCHANNEL_TOKEN=$A BACKCHANNEL_AGENT=alice bch send @bob "with host"
	[ "$(count_new bob)" -eq 1 ]
}

@test "a request target over 1023 bytes is 414, a method over 15 is 501, HTTP/1.2 is served as 1.1" {
	relayd
	local long
	long=$(printf 'a%.0s' $(seq 1 1100))
	printf 'GET /%s HTTP/1.1\r\nHost: x\r\n\r\n' "$long" >q
	answers q '414 '
	# Just under the limit, the target is read: no such route.
	printf 'GET /%s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' "${long:0:1022}" >q
	answers q '404 '
	printf 'PROPPATCHPROPPATCH /v1/health HTTP/1.1\r\nHost: x\r\n\r\n' >q
	answers q '501 '
	# A later HTTP/1 minor version is HTTP/1.1 to us (RFC 9110 2.5).
	printf 'GET /v1/health HTTP/1.2\r\nHost: x\r\n\r\nGET /v1/health HTTP/1.9\r\nHost: x\r\nConnection: close\r\n\r\n' >q
	answers q '200 200 '
	printf 'GET /v1/health HTTP/1.2\r\n\r\n' >q
	answers q '400 '
	alive
}

@test "request line garbage is 400; HTTP/2.0 is 505; an unknown transfer coding is 501" {
	relayd
	printf 'garbage\r\n\r\n' >q
	answers q '400 '
	printf 'GET  /v1/health HTTP/1.1\r\n\r\n' >q
	answers q '400 '
	printf '\x01\x02\x03\xff\r\n\r\n' >q
	answers q '400 '
	printf 'GET /v1/health HTTP/2.0\r\nHost: x\r\n\r\n' >q
	answers q '505 '
	printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n' >q
	answers q '501 '
	printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!' >q
	answers q '400 '
	alive
}

# --- abusive clients ---------------------------------------------------------

@test "a chunked body sent in one-byte chunks costs the relay its length in CPU, not its length squared" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd
	alice_bob
	# 44,000 one-byte chunks, 264 kB on the wire, under the raw limit:
	# 41,000 at once, then the rest one a write, 1 ms apart, so that the
	# relay reads each on its own with the rest of the body before it.
	# Parsed from its first byte on every read, the request cost 160 to
	# 205 ticks (2 s of CPU on the one thread everyone shares); going on
	# from where the parse got to, 3 or 4.
	run timeout 60 python3 -c '
import socket, sys, time
port, pid, tok = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def ticks():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
def answer(s, got):
    while b"\r\n\r\n" not in got:
        b = s.recv(65536)
        if not b:
            return got, b""
        got += b
    head, rest = got.split(b"\r\n\r\n", 1)
    n = [int(l.split(b":")[1]) for l in head.split(b"\r\n")
         if l.lower().startswith(b"content-length:")][0]
    while len(rest) < n:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    return head.split(b"\r\n")[0] + b" " + rest[:n], rest[n:]
body = b"{\"to\":\"@bob\",\"body\":\"" + b"x" * (44000 - 24) + b"\"}"
chunks = [b"1\r\n" + body[i:i + 1] + b"\r\n" for i in range(len(body))]
s = socket.socket()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.connect(("127.0.0.1", port))
t0 = ticks()
s.sendall(("POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
           % tok).encode() + b"".join(chunks[:41000]))
for c in chunks[41000:]:
    time.sleep(0.001)
    s.sendall(c)
s.sendall(b"0\r\n\r\n")
a, rest = answer(s, b"")
print("ticks", ticks() - t0)
print(a[:40].decode())
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
print(answer(s, rest)[0].decode().strip())
' "$PORT" "$BCH_RELAY_PID" "$A"
	assert_success
	echo "$output"
	# Under the sanitizers every byte costs many times more.
	[ -n "${BCH_SANITIZED:-}" ] || [ "${lines[0]#ticks }" -lt 15 ]
	assert_line --index 1 --partial 'HTTP/1.1 200 OK {"id":"'
	assert_line --index 2 'HTTP/1.1 200 OK {"ok":true,"service":"backchannel-relay"}'
	[ "$(count_new bob)" -eq 1 ]
	alive
}

@test "a client sending one byte a second is dropped after the request timeout; others are served" {
	relayd
	reg alice
	# The writer feeds a request one byte a second; the reader sees the close.
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	(
		trap '' PIPE
		r='GET /v1/health HTTP/1.1\r\nHost: a-slow-client-that-takes-its-time.example\r\n\r\n'
		r=$(printf "$r")
		for ((i = 0; i < ${#r}; i++)); do
			printf '%s' "${r:i:1}" 2>/dev/null || exit 0
			sleep 1
		done
	) 1>&"$fd" 2>/dev/null &
	bg_pid $!
	start=$SECONDS
	timeout 25 cat <&"$fd" >slow.out &
	reader=$!
	bg_pid $reader
	exec {fd}>&-
	# Meanwhile everyone else is served at once.
	for i in 1 2 3 4 5; do
		alive
		req GET /v1/agents "$TOK"
		expect 200
		sleep 1
	done
	wait_for 20 gone "$reader"
	took=$((SECONDS - start))
	[ "$took" -ge 9 ]
	[ "$took" -le 16 ]
	# Dropped, not answered.
	[ ! -s slow.out ] || ! grep -q '^HTTP/1.1 200' slow.out || false
	alive
}

@test "a client that sends requests and reads none of the answers is closed after 30 s" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd
	base=$(nfds)
	# 30,000 pipelined requests: more answers than the sockets hold, so
	# some wait in the relay, under its 4 MiB cut.
	python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n" * 30000)
open("sent", "w").close()
time.sleep(120)
' "$PORT" &
	bg_pid $!
	wait_for 10 test -e sent
	start=$SECONDS
	[ "$(nfds)" -gt "$base" ]
	wait_for 50 nfds_le "$base"
	took=$((SECONDS - start))
	echo "closed after $took s"
	[ "$took" -ge 25 ]
	grep -q 'closed: answers unread for 30 seconds' "$LOG"
	alive
}

@test "a client that half-closes and does not read yet costs no CPU, then gets every answer" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd
	# 20,000 pipelined requests (3 MB of answers, more than the sockets
	# hold), then EOF: the answers wait in the relay while the client
	# sleeps, and the EOF must not wake the relay every round meanwhile.
	run timeout 30 python3 -c '
import socket, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
def ticks():
    f = open("/proc/%s/stat" % pid).read().rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n" * 20000)
s.shutdown(socket.SHUT_WR)
time.sleep(0.5)
t0 = ticks()
time.sleep(2)
print("ticks", ticks() - t0)
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
print("answers", got.count(b"HTTP/1.1 200 OK"))
' "$PORT" "$BCH_RELAY_PID"
	assert_success
	echo "$output"
	[ "${lines[0]#ticks }" -lt 50 ]
	assert_line --index 1 'answers 20000'
	alive
}

@test "a keep-alive connection idle for 12 s is answered a request that comes in two parts" {
	relayd
	exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
	read_resp "$fd"
	[ "$RESP_STATUS" = 200 ]
	# Idle past the request timeout (10 s), then a request whose head
	# comes in two parts, across a tick of the relay.
	sleep 12
	printf 'GET /v1/health HTTP/1.1\r\n' >&"$fd"
	sleep 1.5
	printf 'Host: x\r\n\r\n' >&"$fd" || true
	read_resp "$fd" || { echo "closed unanswered"; return 1; }
	[ "$RESP_STATUS" = 200 ]
	[ "$RESP_BODY" = '{"ok":true,"service":"backchannel-relay"}'$'\n' ]
	exec {fd}>&-
}

@test "clients that disconnect mid-request or mid-body do no harm" {
	relayd
	alice_bob
	base=$(nfds)
	for i in $(seq 1 20); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
		case $((i % 4)) in
		0) printf 'POST /v1/se' >&"$fd" ;;
		1) printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n' "$A" >&"$fd" ;;
		2) printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 40\r\n\r\n{"to":"@bob",' "$A" >&"$fd" ;;
		3) printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"to"\r\n' "$A" >&"$fd" ;;
		esac
		exec {fd}>&-
	done
	alive
	[ "$(count_new bob)" -eq 0 ]
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/tmp")" ]
	send "$A" @bob 'still here'
	expect 200
	[ "$(count_new bob)" -eq 1 ]
	wait_for 5 nfds_le "$base"
}

@test "a client that disconnects mid-SSE does no harm" {
	relayd
	alice_bob
	base=$(nfds)
	for i in 1 2 3; do send "$A" @bob "backlog $i"; done
	for i in 1 2 3 4 5; do
		curl -sN -H "Authorization: Bearer $B" "$URL/v1/events/bob" >"sse.$i" 2>/dev/null &
		p=$!
		bg_pid $p
		wait_for 5 grep -q 'backlog 3' "sse.$i"
		kill "$p"
		wait "$p" || true
		# Arrivals for a reader that just left.
		send "$A" @bob "after $i"
		expect 200
	done
	# One more reader stays: it gets the backlog and a live message.
	curl -sN -H "Authorization: Bearer $B" "$URL/v1/events/bob" >sse.live 2>/dev/null &
	bg_pid $!
	wait_for 5 grep -q 'after 5' sse.live
	send "$A" @bob live
	wait_for 5 grep -q '"body":"live"' sse.live
	alive
	# Nothing was claimed by any of it.
	[ "$(count_new bob)" -eq 9 ]
	wait_for 5 nfds_le $((base + 1))
}

@test "SSE: a stream that stops reading is cut 4 MiB behind; the others get every message" {
	relayd
	alice_bob
	bob_carol_on_dev
	# bob's stream reads its head and then nothing: the socket fills.
	exec {stall}<>"/dev/tcp/127.0.0.1/$PORT"
	printf 'GET /v1/events/bob HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n' "$B" >&"$stall"
	stream "$C" carol sse.carol
	# 200 sends of 60 KiB to the channel: some 12 MB for each stream.
	big=$(head -c 61440 /dev/zero | tr '\0' x)
	for i in $(seq 1 200); do
		printf '{"to":"#dev","body":"%s %s"}\n' "$i" "$big"
	done >sends.jsonl
	BACKCHANNEL_URL=$URL BACKCHANNEL_TOKEN=$A BACKCHANNEL_AGENT=alice \
		bch-send <sends.jsonl >sent.out
	[ "$(wc -l <sent.out)" -eq 200 ]
	wait_for 20 eval '[ "$(grep -c "^data: " sse.carol)" -eq 200 ]'
	# The stalled stream was cut: reading it now comes to an end, short.
	got=$(timeout 20 cat <&"$stall" | grep -c '^data: ' || true)
	exec {stall}<&-
	[ "$got" -lt 200 ]
	alive
	# Nothing lost: bob takes them all from his inbox.
	[ "$(count_new bob)" -eq 200 ]
}

# rss_kb: the relay's resident memory, in KiB.
rss_kb() {
	awk '$1 == "VmRSS:" { print $2 }' "/proc/$BCH_RELAY_PID/status"
}

# closing_flood [CAFILE]: a client that pipelines 30,000 requests, the
# last with Connection: close, reads none of the answers (so some wait in
# the relay), then sends 24 MiB of junk; over TLS with CAFILE. Once the
# relay has read all of it from the socket, and with the connection
# still open, prints the relay's VmRSS in KiB (or why it could not).
closing_flood() {
	timeout 60 python3 -c '
import socket, ssl, sys, time
port, pid = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.connect(("127.0.0.1", port))
me = s.getsockname()[1]
if len(sys.argv) > 3:
    ctx = ssl.create_default_context(cafile=sys.argv[3])
    s = ctx.wrap_socket(s, server_hostname="localhost")
def unread():  # bytes waiting in the relay end of the socket
    for line in open("/proc/net/tcp").readlines()[1:]:
        f = line.split()
        if f[1].endswith(":%04X" % port) and f[2].endswith(":%04X" % me):
            return int(f[4].split(":")[1], 16)
    sys.exit("the relay closed the connection")
req = b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n"
for i in range(60):
    s.sendall(req * 500)
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
s.settimeout(10)
try:
    for i in range(24 * 16):
        s.sendall(b"Z" * 65536)
except OSError as e:
    sys.exit("the relay stopped taking the junk: %s" % e)
for i in range(200):
    if unread() == 0:
        break
    time.sleep(0.1)
else:
    sys.exit("the relay left the junk unread")
time.sleep(0.2)
print([l.split()[1] for l in open("/proc/%s/status" % pid) if l.startswith("VmRSS:")][0])
' "$PORT" "$BCH_RELAY_PID" "$@"
}

@test "input sent after Connection: close is dropped while the answers wait, not kept" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd
	base=$(rss_kb)
	run closing_flood
	assert_success
	echo "VmRSS ${base} kB before, ${output} kB after"
	# Under the sanitizers the heap is ASan's (freed memory quarantined,
	# shadow pages): the figure says nothing there.
	[ -n "${BCH_SANITIZED:-}" ] || [ "$output" -lt $((base + 12 * 1024)) ]
	alive
}

@test "TLS: input sent after Connection: close is dropped while the answers wait, not kept" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	tls_relay ec
	base=$(rss_kb)
	run closing_flood "$CERT"
	assert_success
	echo "VmRSS ${base} kB before, ${output} kB after"
	# Under the sanitizers the heap is ASan's (freed memory quarantined,
	# shadow pages): the figure says nothing there.
	[ -n "${BCH_SANITIZED:-}" ] || [ "$output" -lt $((base + 12 * 1024)) ]
	run curl -s --cacert "$CERT" "https://localhost:$PORT/v1/health"
	assert_output '{"ok":true,"service":"backchannel-relay"}'
}

@test "SSE: a client that sends on its event stream is closed, its input not kept" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd
	alice_bob
	base=$(rss_kb)
	run timeout 30 python3 -c '
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /v1/events/bob HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
          + sys.argv[2].encode() + b"\r\n\r\n")
got = b""
while b"retry:" not in got:
    got += s.recv(4096)
s.settimeout(5)
try:
    for i in range(16 * 16):
        s.sendall(b"A" * 65536)
    while s.recv(4096):
        pass
    print("closed")
except socket.timeout:
    print("still open after 16 MiB")
except OSError:
    print("closed")
' "$PORT" "$B"
	assert_output 'closed'
	rss=$(rss_kb)
	echo "VmRSS ${base} kB before, ${rss} kB after"
	[ "$rss" -lt $((base + 8 * 1024)) ]
	grep -q 'sent on an event stream' "$LOG"
	alive
}

@test "a few hundred connections opened and dropped, then the relay still answers" {
	relayd
	alice_bob
	base=$(nfds)
	# 300 at once, held, then all dropped.
	fds=()
	for i in $(seq 1 300); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
		fds+=("$fd")
	done
	alive
	for fd in "${fds[@]}"; do exec {fd}>&-; done
	# 300 more one after another, half of them with a partial request.
	for i in $(seq 1 300); do
		exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
		[ $((i % 2)) -eq 0 ] || printf 'GET /v1/heal' >&"$fd"
		exec {fd}>&-
	done
	alive
	send "$A" @bob 'after the storm'
	expect 200
	req GET /v1/inbox/bob "$B"
	[[ $BODY == *'after the storm'* ]]
	wait_for 10 nfds_le "$base"
}

@test "--max-conns sheds connections over the limit and keeps serving" {
	relayd --max-conns 20
	hold 40
	for fd in "${fds[@]:0:20}"; do exec {fd}>&-; done
	wait_for 5 alive
	for fd in "${fds[@]:20}"; do exec {fd}>&-; done
	alive
}

@test "under a low ulimit -n the relay serves fewer connections and keeps descriptors to read inboxes" {
	relayd_under -n 100 -- --max-conns 1000
	grep -q 'serving at most 50 connections at once, as ulimit -n is 100' "$LOG"
	alice_bob
	for m in m1 m2 m3; do send "$A" @bob $m; expect 200; done
	hold 120
	# Those over the limit are closed; the 50 served hold their places.
	run curl -s "$URL/v1/inbox/bob" -H "Authorization: Bearer $B"
	# closed unanswered: an empty reply, or a reset if the request was in
	[ "$status" -eq 52 ] || [ "$status" -eq 56 ]
	for fd in "${fds[@]}"; do exec {fd}>&-; done
	wait_for 5 alive
	req GET /v1/inbox/bob "$B"
	expect 200
	for m in m1 m2 m3; do grep -q "\"body\":\"$m\"" <<<"$BODY"; done
	[ ! -e "$BACKCHANNEL_HOME/spool/bob/corrupt" ]
	! grep -q corrupt "$LOG"
}

@test "a soft ulimit -n under --max-conns is raised, not a cap" {
	relayd_under -Sn 100 -- --max-conns 500
	[ "$(ulimit -Hn)" = unlimited ] || [ "$(ulimit -Hn)" -ge 564 ] ||
		skip "the hard limit is under 564"
	! grep -q 'serving at most' "$LOG"
	grep -q '^Max open files *564 ' "/proc/$BCH_RELAY_PID/limits"
	hold 200
	alive
	[ "$(nfds)" -gt 200 ]
	for fd in "${fds[@]}"; do exec {fd}>&-; done
}

# --- SSE ----------------------------------------------------------------------

@test "SSE: the backlog first with id: and data: lines and retry:, then a live message" {
	relayd
	alice_bob
	send "$A" @bob first
	id1=$ID
	send "$A" @bob second
	id2=$ID
	curl -sN -D sse.head -H "Authorization: Bearer $B" "$URL/v1/events/bob" >sse.out 2>/dev/null &
	bg_pid $!
	wait_for 5 grep -q '"body":"second"' sse.out
	tr -d '\r' <sse.head | grep -qi '^content-type: text/event-stream'
	grep -q '^retry: [0-9][0-9]*$' sse.out
	grep -qx "id: $id1" sse.out
	grep -qx "id: $id2" sse.out
	grep -q "^data: {\"id\":\"$id1\",.*\"body\":\"first\"" sse.out
	# An event is "id:", then one "data:" line, then a blank line.
	[ "$(grep -A1 "^id: $id1\$" sse.out | tail -1 | cut -c1-6)" = 'data: ' ]
	[ "$(grep -A1 "^data: {\"id\":\"$id1\"" sse.out | tail -1)" = '' ]
	# The live one, within a deadline.
	send "$A" @bob 'live one'
	id3=$ID
	wait_for 5 grep -qx "id: $id3" sse.out
	grep -q '^data: .*"body":"live one"' sse.out
	# Backlog before the live message, in order; nothing claimed.
	[ "$(grep '^id: ' sse.out | cut -c5- | tr '\n' ' ')" = "$id1 $id2 $id3 " ]
	[ "$(count_new bob)" -eq 3 ]
}

@test "an event stream whose backlog cannot be listed is refused with 503, not opened empty" {
	relayd
	alice_bob
	send "$A" @bob waiting
	# bob's new/ unreadable for now: a file where the directory goes.
	mv "$BACKCHANNEL_HOME/spool/bob/new" new.saved
	: >"$BACKCHANNEL_HOME/spool/bob/new"
	STATUS=$(curl -s -m 5 -D sse.head -o sse.out -w '%{http_code}' \
		-H "Authorization: Bearer $B" "$URL/v1/events/bob") || true
	[ "$STATUS" = 503 ]
	tr -d '\r' <sse.head | grep -qi '^retry-after: [0-9]'
	grep -q '"error":"cannot list the waiting messages' sse.out
	# Once it can be listed, the stream opens with what waits.
	rm "$BACKCHANNEL_HOME/spool/bob/new"
	mv new.saved "$BACKCHANNEL_HOME/spool/bob/new"
	curl -sN -H "Authorization: Bearer $B" "$URL/v1/events/bob" >sse.out 2>/dev/null &
	bg_pid $!
	wait_for 5 grep -q '"body":"waiting"' sse.out
}

# big_backlog [N [SCOPE]]: N (220) messages of 60 KiB from alice wait
# for bob, scoped to SCOPE if given, written on the relay host (13 MB,
# over the 4 MiB a stream may owe).
big_backlog() {
	local big i
	big=$(head -c 61440 /dev/zero | tr '\0' x)
	for i in $(seq 1 "${1:-220}"); do
		printf '{"to":"@bob","body":"%s %s"%s}\n' "$i" "$big" \
			"${2:+,\"scope\":\"$2\"}"
	done >sends.jsonl
	(
		unset BACKCHANNEL_URL BACKCHANNEL_TOKEN
		BACKCHANNEL_AGENT=alice bch-send <sends.jsonl >/dev/null
	)
}

# alice_sends SCOPE BODY: alice sends bob BODY scoped to SCOPE, on the
# relay host.
alice_sends() {
	(
		unset BACKCHANNEL_URL BACKCHANNEL_TOKEN
		BACKCHANNEL_AGENT=alice bch-send --scope "$1" @bob "$2" >/dev/null
	)
}

# web_then_api: a relay, alice and bob, and 9 MB for bob scoped to
# another repository, then one message for acme/api past the first part
# the relay lists (8 MiB).
web_then_api() {
	relayd
	alice_bob
	big_backlog 150 github.com/acme/web
	alice_sends github.com/acme/api 'for api'
	[ "$(count_new bob)" -eq 151 ]
}

@test "an inbox answer of 9 MB reaches a client that reads it late, whole" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd
	alice_bob
	big_backlog 150
	[ "$(count_new bob)" -eq 150 ]
	# A client with a small receive window that reads a second late, as
	# one far away does: the relay cannot write the answer at once. (On
	# loopback the kernel takes up to 4 MiB of it; far away, much less.)
	timeout 30 python3 -c '
import socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.connect(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /v1/inbox/bob HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
          + sys.argv[2].encode() + b"\r\nConnection: close\r\n\r\n")
time.sleep(1)
got = b""
while True:
    b = s.recv(1 << 20)
    if not b:
        break
    got += b
head, _, body = got.partition(b"\r\n\r\n")
want = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
print(want, len(body), body.count(b"\"from\":\"alice\""))
' "$PORT" "$B" >late.out
	read -r want got n <late.out
	[ "$want" -gt $((8 << 20)) ]
	[ "$got" -eq "$want" ]
	[ "$n" -eq 150 ]
	alive
}

# held_flood [CERT]: 200 asks for bob's 1 MB inbox in one write (over
# TLS with CERT), none of it read till "go"; then prints how many
# answers came whole. Answered at once, they would take 200 MB.
held_flood() {
	timeout 60 python3 -c '
import os, socket, ssl, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
s.connect(("127.0.0.1", int(sys.argv[1])))
if len(sys.argv) > 3:
    ctx = ssl.create_default_context(cafile=sys.argv[3])
    s = ctx.wrap_socket(s, server_hostname="localhost")
one = (b"GET /v1/inbox/bob HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
       + sys.argv[2].encode() + b"\r\n\r\n")
s.sendall(one * 200)
open("sent", "w").close()
while not os.path.exists("go"):
    time.sleep(0.1)
f = s.makefile("rb")
ok = 0
for i in range(200):
    status = f.readline().split()[1]
    n = 0
    while True:
        line = f.readline().strip().lower()
        if not line:
            break
        if line.startswith(b"content-length:"):
            n = int(line.split(b":")[1])
    body = f.read(n)
    if status == b"200" and body.count(b"\"from\":\"alice\"") == 16:
        ok += 1
print(ok)
' "$PORT" "$B" "$@" >flood.out &
	bg_pid $!
	wait_for 10 test -e sent
}

# held_check CURL-ARGS...: while held_flood's client reads nothing,
# another client is served and the relay has not grown; once it reads,
# every answer comes, in full.
held_check() {
	local hwm
	STATUS=$(curl -s -m 10 -o /dev/null -w '%{http_code}' "$@")
	[ "$STATUS" = 200 ]
	hwm=$(awk '$1 == "VmHWM:" { print $2 }' "/proc/$BCH_RELAY_PID/status")
	echo "relay peak: $hwm kB"
	# Under the sanitizers the heap is ASan's (freed memory quarantined,
	# up to 256 MB of it): the peak says nothing about what is held.
	[ -n "${BCH_SANITIZED:-}" ] || [ "$hwm" -lt 65536 ]
	touch go
	wait_for 30 test -s flood.out
	[ "$(cat flood.out)" -eq 200 ]
}

@test "pipelined requests whose answers are not read are held, not all answered into memory" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd
	alice_bob
	big_backlog 16
	[ "$(count_new bob)" -eq 16 ]
	held_flood
	held_check "$URL/v1/health"
	alive
}

@test "TLS: pipelined requests whose answers are not read are held, not all answered into memory" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	tls_relay ec
	for n in alice bob; do
		curl -s --cacert "$CERT" -H "Authorization: Bearer $ROOM" \
			-d "{\"name\":\"$n\"}" "https://localhost:$PORT/v1/register" >reg.$n
	done
	B=$(sed -n 's/.*"token": *"\([0-9a-f]*\)".*/\1/p' reg.bob)
	[ "${#B}" -eq 64 ]
	big_backlog 16
	[ "$(count_new bob)" -eq 16 ]
	held_flood "$CERT"
	held_check --cacert "$CERT" "https://localhost:$PORT/v1/health"
}

@test "SSE: a backlog of 13 MB reaches a reader whole, before a live message, on every connect" {
	relayd
	alice_bob
	big_backlog
	[ "$(count_new bob)" -eq 220 ]
	for n in 1 2; do
		curl -sN -H "Authorization: Bearer $B" "$URL/v1/events/bob" >"sse.$n" 2>/dev/null &
		p=$!
		bg_pid $p
		wait_for 20 eval '[ "$(grep -c "^data: " sse.'"$n"')" -ge 220 ]'
		send "$A" @bob "live $n"
		expect 200
		wait_for 5 grep -q "\"body\":\"live $n\"" "sse.$n"
		# Whole, in order, and the stream still open.
		[ "$(grep -c '^data: ' "sse.$n")" -eq $((220 + n)) ]
		grep '^data: ' "sse.$n" | tail -1 | grep -q "\"body\":\"live $n\""
		kill -0 "$p"
		kill "$p"
	done
	# A reader that pauses early in the backlog: a message that arrives
	# meanwhile comes after the whole backlog, not in the middle of it.
	command -v python3 >/dev/null || skip "python3 is not installed"
	timeout 60 python3 -c '
import os, socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /v1/events/bob HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
          + sys.argv[2].encode() + b"\r\n\r\n")
got = b""
while len(got) < 300000:
    got += s.recv(65536)
open("paused", "w").close()
while not os.path.exists("go"):
    time.sleep(0.1)
while b"live slow" not in got:
    got += s.recv(65536)
before = got.split(b"live slow")[0]
print(before.count(b"\ndata: "))
' "$PORT" "$B" >slow.out &
	bg_pid $!
	wait_for 10 test -e paused
	send "$A" @bob 'live slow'
	expect 200
	touch go
	wait_for 30 test -s slow.out
	# The 222 unread (live 1 and 2 too), then the data line of the live one.
	[ "$(cat slow.out)" -eq 223 ]
	alive
}

@test "an inbox of 9 MB on the relay is drained whole, claimed past its first part, and watched whole" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	relayd
	alice_bob
	big_backlog 150
	# (A reader slow to start gets the listing whole from the relay:
	# "an inbox answer of 9 MB reaches a client that reads it late".)
	export BACKCHANNEL_URL=$URL BACKCHANNEL_TOKEN=$B BACKCHANNEL_AGENT=bob
	# Over what one answer to the client may hold (8 MiB): listed in
	# parts. The hook form shows the oldest, cut, and takes nothing.
	run bch drain --hook
	assert_success
	assert_output --partial '[backchannel] 1 message(s) for bob:'
	# It counts what it listed and left, and says more wait past them.
	assert_line --regexp '^\[backchannel\] [0-9]+ more message\(s\) waiting, and more past them that the relay did not list — run: bch drain$'
	[ "$(count_new bob)" -eq 150 ]
	# The newest, past the first part, claimed by its id; a prefix of
	# it cannot be matched there, and the error says so.
	last=$(grep -l '"body":"150 ' "$BACKCHANNEL_HOME"/spool/bob/new/*.json)
	last=$(basename "$last" .json)
	run bch read "${last:0:8}"
	assert_failure 100
	assert_output "bch-claim: no unread message ${last:0:8} among the oldest the relay lists at once, nor one with that whole id past them — past them, a prefix names nothing: give the whole id"
	[ "$(count_new bob)" -eq 150 ]
	run bch read --jsonl "$last"
	assert_success
	[ "$(grep -c '"body":"150 ' <<<"$output")" -eq 1 ]
	[ "$(count_new bob)" -eq 149 ]
	# A peek shows the oldest part, and says so after it, where the
	# reader looks last.
	run bch drain --peek --brief
	assert_success
	[ "${#lines[@]}" -gt 100 ]
	[ "${#lines[@]}" -lt 149 ]
	[[ ${lines[-1]} =~ ^bch-drain:\ more\ messages\ waiting\ past\ the\ oldest\ [0-9]+,\ all\ the\ relay\ lists\ at\ once ]]
	[ "$(count_new bob)" -eq 149 ]
	# One drain takes all the rest, each message once.
	bch drain --jsonl >drained 2>drain.err
	[ "$(count_new bob)" -eq 0 ]
	[ "$(grep -c '"from":"alice"' drained)" -eq 149 ]
	[ "$(grep -o '"id":"[0-9a-f-]*"' drained | sort -u | wc -l)" -eq 149 ]
	! grep -q "\"id\":\"$last\"" drained
	[ ! -s drain.err ]
	# A watch claims the whole backlog, no new message needed to wake it.
	big_backlog
	bch-watch >watch.out 2>watch.err &
	bg_pid $!
	wait_for 60 eval '[ "$(count_new bob)" -eq 0 ]'
	wait_for 10 eval '[ "$(grep -c "\"from\":\"alice\"" watch.out)" -eq 220 ]'
	[ "$(grep -o '"id":"[0-9a-f-]*"' watch.out | sort -u | wc -l)" -eq 220 ]
	run cat watch.err
	assert_output ''
	alive
}

@test "an inbox of 9 MB on the relay whose oldest part matches no scope asked for: peek, drain and hook say more wait" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	web_then_api
	export BACKCHANNEL_URL=$URL BACKCHANNEL_TOKEN=$B BACKCHANNEL_AGENT=bob
	local note='^bch-drain: more messages waiting past the oldest [0-9]+, all the relay lists at once — the rest are listed once those are taken$'
	# Nothing of the part matches: not "inbox empty", but more waiting.
	for args in '--peek --brief' '--brief'; do
		run bch drain $args --match git@github.com:acme/api.git
		assert_success
		refute_output --partial 'inbox empty'
		assert_output --regexp "$note"
		[ "$(count_new bob)" -eq 151 ]
	done
	# The hook form, silent when nothing matches, cannot know that here.
	run bch drain --hook --match git@github.com:acme/api.git
	assert_success
	assert_output '[backchannel] more messages waiting for bob than the relay lists at once, none of the oldest for this session — run: bch inbox'
	[ "$(count_new bob)" -eq 151 ]
	alive
}

# ids FILE: how many distinct message ids the JSON lines of FILE hold.
ids() {
	grep -o '"id":"[0-9a-f-]*"' "$1" | sort -u | wc -l
}

@test "an inbox of 9 MB on the relay, watched with --peek and with --match: what waits past the part and what arrives are printed" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	web_then_api
	export BACKCHANNEL_URL=$URL BACKCHANNEL_TOKEN=$B BACKCHANNEL_AGENT=bob
	# A peek takes nothing, so it cannot list past the part; yet it
	# shows every message once, then what arrives.
	bch-watch --peek >peek.out 2>peek.err &
	bg_pid $!
	peek=$!
	wait_for 60 grep -q '"body":"for api"' peek.out
	alice_sends github.com/acme/web 'late for web'
	wait_for 30 grep -q '"body":"late for web"' peek.out
	sleep 1
	kill "$peek"
	wait "$peek"
	[ "$(wc -l <peek.out)" -eq 152 ]
	[ "$(ids peek.out)" -eq 152 ]
	run cat peek.err
	assert_output ''
	[ "$(count_new bob)" -eq 152 ]
	# A watch whose match none of the part meets cannot take the part;
	# yet it takes what is for it past the part, then what arrives.
	bch-watch --match github.com/acme/api >match.out 2>match.err &
	bg_pid $!
	match=$!
	wait_for 60 grep -q '"body":"for api"' match.out
	alice_sends github.com/acme/api 'late for api'
	wait_for 30 grep -q '"body":"late for api"' match.out
	wait_for 10 eval '[ "$(count_new bob)" -eq 151 ]'
	kill "$match"
	wait "$match"
	[ "$(wc -l <match.out)" -eq 2 ]
	run cat match.err
	assert_output ''
	alive
}

# written: the bytes the relay has written so far (to its clients, all
# but a few).
written() {
	sed -n 's/^wchar: //p' "/proc/$BCH_RELAY_PID/io"
}

@test "an inbox of 9 MB on the relay, watched with --peek and with --match: the part is not listed again at each message" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	[ -r /proc/self/io ] || skip "no /proc/PID/io to count what the relay writes"
	web_then_api
	export BACKCHANNEL_URL=$URL BACKCHANNEL_TOKEN=$B BACKCHANNEL_AGENT=bob
	local args w before i
	for args in --peek '--match github.com/acme/api'; do
		bch-watch $args >out 2>err &
		bg_pid $!
		w=$!
		# The newest: the stream that opened has brought every message.
		wait_for 60 grep -q '"body":"for api"' out
		before=$(written)
		# Neither watch claims any of the part: listing it again at
		# each message would get the same 8 MiB. What is new comes on
		# the stream: at most one listing (a minute apart), not five.
		for i in 1 2 3 4 5; do
			alice_sends github.com/acme/api "late $args $i"
			wait_for 30 grep -q "\"body\":\"late $args $i\"" out
		done
		[ $(($(written) - before)) -lt $((16 << 20)) ]
		kill "$w"
		wait "$w"
		run cat err
		assert_output ''
	done
	# Each printed once; the match watch took its own, and the peek's.
	[ "$(grep -c '"body":"late --peek' out)" -eq 5 ]
	[ "$(grep -c '"body":"late --match' out)" -eq 5 ]
	[ "$(count_new bob)" -eq 150 ]
	alive
}

# mcp TOOL [ARGS]: one tools/call of TOOL (ARGS a JSON object) to
# bch-mcp: its text ("error: " first when it is a tool error), then
# the members of structuredContent but messages, as KEY=JSON lines, and
# how many messages. Lines are cut to 300 characters.
mcp() {
	local args=${2:-'{}'}
	printf '%s\n' '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"bats","version":"1"}}}' \
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"$1\",\"arguments\":$args}}" |
		bch-mcp >mcp.out || return
	python3 -c '
import json
r = json.loads(open("mcp.out").read().split("\n")[1])["result"]
for l in (("error: " if r.get("isError") else "") + r["content"][0]["text"]).split("\n"):
    print(l[:300])
for k, v in sorted(r.get("structuredContent", {}).items()):
    print("%s=%s" % (k, len(v) if k == "messages" else json.dumps(v)))
'
}

@test "an inbox of 9 MB on the relay through bch-mcp: counts say more wait past the part, bch_read takes past it by whole id" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	web_then_api
	last=$(grep -l '"body":"for api"' "$BACKCHANNEL_HOME"/spool/bob/new/*.json)
	last=$(basename "$last" .json)
	export BACKCHANNEL_URL=$URL BACKCHANNEL_TOKEN=$B BACKCHANNEL_AGENT=bob
	# A peek holds 64 KiB of messages; it counts the rest of the part,
	# and says more wait past them.
	run mcp bch_peek
	assert_success
	assert_line --regexp '^\[backchannel\] [0-9]+ more message\(s\) waiting, and more past them that the relay did not list, not shown — claim some first$'
	assert_line 'more_unlisted=true'
	# None of the part for this session: more wait, not "inbox empty".
	local none='^\[backchannel\] more messages waiting for bob than the relay lists at once, none of the oldest [0-9]+ for this session — bch_peek without match lists them$'
	for tool in bch_peek bch_inbox; do
		run mcp $tool '{"match":"github.com/acme/api"}'
		assert_success
		refute_output --partial 'inbox empty'
		assert_line --regexp "$none"
		assert_line 'messages=0'
		assert_line 'more_unlisted=true'
	done
	run mcp bch_inbox
	assert_line --regexp "$none"
	assert_line --regexp '^\[backchannel\] [0-9]+ message\(s\) scoped to other repositories left queued'
	[ "$(count_new bob)" -eq 151 ]
	# Past the part a prefix names nothing, and the error says so; the
	# whole id claims the message.
	run mcp bch_read "{\"id\":\"${last:0:8}\"}"
	assert_output "error: no unread message \"${last:0:8}\" among the oldest the relay lists at once, nor one with that whole id past them — past them, a prefix names nothing: give the whole id"
	[ "$(count_new bob)" -eq 151 ]
	run mcp bch_read "{\"id\":\"$last\"}"
	assert_line 'for api'
	assert_line 'messages=1'
	[ "$(count_new bob)" -eq 150 ]
	alive
}

@test "SSE: a reconnect with Last-Event-ID gets every message still unread" {
	relayd
	alice_bob
	send "$A" @bob one
	id1=$ID
	send "$A" @bob two
	curl -sN -H "Authorization: Bearer $B" -H "Last-Event-ID: $id1" \
		"$URL/v1/events/bob" >sse.out 2>/dev/null &
	bg_pid $!
	wait_for 5 grep -q '"body":"two"' sse.out
	grep -q '"body":"one"' sse.out
}

@test "SSE: the events route is 403 for another agent" {
	relayd
	alice_bob
	run curl -s -m 5 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $A" "$URL/v1/events/bob"
	[ "$output" = 403 ]
	run curl -s -m 5 -o /dev/null -w '%{http_code}' "$URL/v1/events/bob"
	[ "$output" = 401 ]
}

@test "SSE: mail dropped into the spool by a local tool on the relay host is pushed" {
	relayd
	alice_bob
	stream "$B" bob sse.out
	# bch-send on the relay host, on the relay's spool, no relay involved.
	(
		unset BACKCHANNEL_URL BACKCHANNEL_TOKEN
		BACKCHANNEL_AGENT=alice bch-send @bob 'dropped in locally' >/dev/null
	)
	wait_for 5 grep -q '^data: .*"from":"alice".*"body":"dropped in locally"' sse.out
}

@test "SSE: when inotify's queue overflows, the streams are closed and a new one has every message" {
	relayd
	alice_bob
	local max n curl
	max=$(cat /proc/sys/fs/inotify/max_queued_events)
	[ "$max" -le 100000 ] || skip "fs.inotify.max_queued_events is $max"
	curl -sN -H "Authorization: Bearer $B" "$URL/v1/events/bob" >sse.out 2>/dev/null &
	curl=$!
	bg_pid "$curl"
	wait_for 5 grep -q '^retry:' sse.out
	# More arrivals than inotify queues, made by a local tool while the
	# relay sleeps: the kernel drops the rest and says so.
	n=$((max + 100))
	seq "$n" | awk '{ printf "{\"to\":\"@bob\",\"body\":\"local %d\"}\n", $1 }' >reqs
	kill -STOP "$BCH_RELAY_PID"
	(
		unset BACKCHANNEL_URL BACKCHANNEL_TOKEN
		BACKCHANNEL_FSYNC=0 BACKCHANNEL_AGENT=alice bch-send <reqs >/dev/null
	)
	kill -CONT "$BCH_RELAY_PID"
	# The stream that missed arrivals is closed, not left to wait...
	wait_for 20 eval '! kill -0 "$curl" 2>/dev/null'
	grep -q 'inotify.*overflow' "$LOG"
	# ...and the client's next stream has every message, the last too.
	stream "$B" bob sse.2
	wait_for 20 grep -q "\"body\":\"local $n\"" sse.2
	[ "$(grep -c '^data: ' sse.2)" -eq "$n" ]
}

@test "SSE: an inbox made again while inotify's queue overflowed is watched by the next stream" {
	relayd
	alice_bob
	local max n curl new=$BACKCHANNEL_HOME/spool/bob/new
	max=$(cat /proc/sys/fs/inotify/max_queued_events)
	[ "$max" -le 100000 ] || skip "fs.inotify.max_queued_events is $max"
	curl -sN -H "Authorization: Bearer $B" "$URL/v1/events/bob" >sse.1 2>/dev/null &
	curl=$!
	bg_pid "$curl"
	wait_for 5 grep -q '^retry:' sse.1
	# While the relay sleeps, more events than inotify queues, then
	# bob's new/ removed and made again: the kernel drops the watch,
	# and the event that says so with the rest.
	kill -STOP "$BCH_RELAY_PID"
	n=$((max + 100))
	(cd "$new" && seq -f 'junk.%.0f' "$n" | xargs touch)
	rm -rf "$new"
	mkdir -m 700 "$new"
	kill -CONT "$BCH_RELAY_PID"
	wait_for 20 eval '! kill -0 "$curl" 2>/dev/null'
	grep -q 'inotify.*overflow' "$LOG"
	# The client's next stream is pushed what a local tool writes.
	stream "$B" bob sse.2
	(
		unset BACKCHANNEL_URL BACKCHANNEL_TOKEN
		BACKCHANNEL_AGENT=alice bch-send @bob 'into the new new/' >/dev/null
	)
	wait_for 5 grep -q '^data: .*"body":"into the new new/"' sse.2
}

@test "SSE: a channel message reaches every subscriber's stream" {
	relayd
	alice_bob
	reg carol
	C=$TOK
	req POST /v1/subscribe "$B" '{"channel":"#dev"}'
	expect 200
	req POST /v1/subscribe "$C" '{"channel":"#dev"}'
	expect 200
	stream "$B" bob sse.bob
	stream "$C" carol sse.carol
	send "$A" '#dev' 'to the channel'
	expect 200
	wait_for 5 grep -q '"to":"#dev".*"body":"to the channel"' sse.bob
	wait_for 5 grep -q '"to":"#dev".*"body":"to the channel"' sse.carol
}

@test "SSE: a message sent through the relay reaches each stream once, a local one too" {
	relayd
	alice_bob
	req POST /v1/subscribe "$B" '{"channel":"#dev"}'
	expect 200
	stream "$B" bob sse.1
	stream "$B" bob sse.2
	send "$A" '@bob' 'direct'
	expect 200
	send "$A" '#dev' 'channel'
	expect 200
	(
		unset BACKCHANNEL_URL BACKCHANNEL_TOKEN
		BACKCHANNEL_AGENT=alice bch-send @bob 'local' >/dev/null
	)
	for f in sse.1 sse.2; do
		wait_for 5 grep -q '"body":"local"' "$f"
	done
	sleep 0.5 # time for a second copy, were one coming
	for f in sse.1 sse.2; do
		[ "$(grep -c '^data: ' "$f")" -eq 3 ]
		[ "$(grep -c '^id: ' "$f")" -eq 3 ]
		[ "$(grep '^id: ' "$f" | sort -u | wc -l)" -eq 3 ]
	done
}

@test "SSE: two messages under one id in two inboxes each reach their own stream" {
	relayd
	alice_bob
	reg carol
	C=$TOK
	stream "$B" bob sse.bob
	stream "$C" carol sse.carol
	# Dropped in by hand, as another tool on the relay host might: the
	# same id, two different files. The relay reuses an event built for
	# one file for that file's other links only, never for this.
	id=$(uuid)
	for to in bob carol; do
		printf '{"id":"%s","from":"alice","to":"@%s","body":"only for %s","priority":"normal","ts":"2026-01-01T00:00:00.000Z"}\n' \
			"$id" "$to" "$to" >"$BACKCHANNEL_HOME/spool/$to/tmp/$id.json"
		mv "$BACKCHANNEL_HOME/spool/$to/tmp/$id.json" "$BACKCHANNEL_HOME/spool/$to/new/$id.json"
	done
	wait_for 5 grep -q '"body":"only for bob"' sse.bob
	wait_for 5 grep -q '"body":"only for carol"' sse.carol
	run ! grep -q 'only for carol' sse.bob
	run ! grep -q 'only for bob' sse.carol
}

@test "subscriptions changed by a local tool on the relay host count at the relay's next send" {
	relayd
	alice_bob
	reg carol
	req POST /v1/subscribe "$B" '{"channel":"#dev"}'
	expect 200
	send "$A" '#dev' 'one'
	expect 200
	[[ $BODY == *'"recipients":["bob"]'* ]]
	sleep 0.2 # the relay now trusts what it read of agents/
	send "$A" '#dev' 'two'
	[[ $BODY == *'"recipients":["bob"]'* ]]
	# bch sub and unsub on the relay's own spool, no relay involved.
	(
		unset BACKCHANNEL_URL BACKCHANNEL_TOKEN
		BACKCHANNEL_AGENT=carol bch-sub '#dev' >/dev/null
	)
	send "$A" '#dev' 'three'
	expect 200
	[[ $BODY == *'"recipients":['*'"carol"'* ]]
	[[ $BODY == *'"bob"'* ]]
	[ "$(count_new carol)" -eq 1 ]
	sleep 0.2
	(
		unset BACKCHANNEL_URL BACKCHANNEL_TOKEN
		BACKCHANNEL_AGENT=bob bch-sub --unsubscribe '#dev' >/dev/null
	)
	send "$A" '#dev' 'four'
	expect 200
	[[ $BODY == *'"recipients":["carol"]'* ]]
	[ "$(count_new bob)" -eq 3 ]
	[ "$(count_new carol)" -eq 2 ]
}

@test "an agent made by a local tool after the relay started can be sent to at once" {
	relayd
	alice_bob
	send "$A" '@dave' 'too early'
	expect 404
	(
		unset BACKCHANNEL_URL BACKCHANNEL_TOKEN
		bch-init dave >/dev/null
	)
	send "$A" '@dave' 'just in time'
	expect 200
	[ "$(count_new dave)" -eq 1 ]
}

# --- operations ---------------------------------------------------------------

@test "SIGTERM: exits 0, logs stopped, returns leased claims to new/" {
	relayd
	alice_bob
	send "$A" @bob 'leased at shutdown'
	req POST /v1/take "$B" "{\"id\":\"$ID\",\"lease\":600}"
	expect 200
	[ "$(count_new bob)" -eq 0 ]
	stream "$B" bob sse.out
	kill -TERM "$BCH_RELAY_PID"
	rc=0
	wait "$BCH_RELAY_PID" || rc=$?
	BCH_RELAY_PID=
	[ "$rc" -eq 0 ]
	grep -q 'stopped' "$LOG"
	[ "$(count_new bob)" -eq 1 ]
	[ -f "$BACKCHANNEL_HOME/spool/bob/new/$ID.json" ]
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
}

@test "readiness: -d 3 writes a newline to fd 3 once listening" {
	bch-relayd --home "$BACKCHANNEL_HOME" --port 0 --token "$ROOM" -d 3 3>ready 2>"$LOG" &
	BCH_RELAY_PID=$!
	wait_for 10 test -s ready
	[ "$(od -An -c ready | tr -d ' ')" = '\n' ]
	PORT=$(relay_port "$LOG")
	URL=http://127.0.0.1:$PORT
	alive
}

# logged N: the log holds N request lines.
logged() {
	[ "$(grep -c '"[A-Z]* /[^"]*" [0-9][0-9][0-9] ' "$LOG")" -eq "$1" ]
}

@test "one log line per request on stderr, and no token in the log" {
	relayd
	alice_bob
	send "$A" @bob 'log me'
	req GET /v1/inbox/bob "$B"
	req GET /v1/inbox/alice "$B"
	req GET /v1/nope "$A"
	req GET /v1/health
	# 2 registrations, a send, 2 inbox reads, a 404 and a health check.
	wait_for 5 logged 7
	grep -q ' alice "POST /v1/send" 200 ' "$LOG"
	grep -q ' bob "GET /v1/inbox/alice" 403 ' "$LOG"
	grep -q '"GET /v1/nope" 404 ' "$LOG"
	! grep -qF "$ROOM" "$LOG" || false
	! grep -qF "$A" "$LOG" || false
	! grep -qF "$B" "$LOG" || false
	! grep -q 'log me' "$LOG" || false
}

@test "a bad option is a usage error (exit 2); -h prints usage" {
	run -2 bch-relayd --no-such-option
	assert_output --partial usage
	run -2 bch-relayd --cert only.pem
	run -0 bch-relayd -h
	assert_output --partial 'bch-relayd'
}

@test "--home is the relay's BACKCHANNEL_HOME: -h and a start whatever the environment says" {
	# A relative BACKCHANNEL_HOME left in the environment (a run script's)
	# is refused by every client, but --home replaces it.
	run -0 env BACKCHANNEL_HOME=rel bch-relayd -h
	assert_line --index 0 --partial 'usage: bch-relayd'
	home=$BACKCHANNEL_HOME
	BACKCHANNEL_HOME=rel bch-relayd --home "$home" --port 0 \
	    --token "$ROOM" 2>"$LOG" &
	BCH_RELAY_PID=$!
	PORT=$(relay_port "$LOG")
	URL=http://127.0.0.1:$PORT
	reg alice
	[ -f "$BACKCHANNEL_HOME/agents/alice.json" ]
	stop_relay
	# A relative --home is the directory it names from where the relay
	# was started.
	mkdir sub
	(cd sub && exec bch-relayd --home rh --port 0 --token "$ROOM") 2>"$LOG" &
	BCH_RELAY_PID=$!
	PORT=$(relay_port "$LOG")
	grep -q "spool $PWD/sub/rh," "$LOG"
	run -2 bch-relayd --home '' --port 0 --token "$ROOM"
	assert_line --index 0 'bch-relayd: --home takes a directory, not ""'
}

@test "a room token from --token-file; a too short one is refused" {
	printf '%s\n' "$ROOM" >room
	bch-relayd --home "$BACKCHANNEL_HOME" --port 0 --token-file room 2>"$LOG" &
	BCH_RELAY_PID=$!
	PORT=$(relay_port "$LOG")
	URL=http://127.0.0.1:$PORT
	reg alice
	stop_relay
	echo short >short
	run -100 bch-relayd --home "$BACKCHANNEL_HOME" --port 0 --token-file short
	assert_output --partial 'too short'
}

@test "an empty or short --token or BACKCHANNEL_ROOM_TOKEN is refused: exit 100, nothing served" {
	run -100 timeout 10 bch-relayd --home "$BACKCHANNEL_HOME" --port 0 --token ''
	assert_output --partial 'room token from --token is too short'
	[ "${#lines[@]}" -le 2 ]
	refute_output --partial 'listening on'
	run -100 timeout 10 bch-relayd --home "$BACKCHANNEL_HOME" --port 0 --token 123456789012345
	assert_output --partial 'room token from --token is too short'
	run -100 env BACKCHANNEL_ROOM_TOKEN=short timeout 10 bch-relayd --home "$BACKCHANNEL_HOME" --port 0
	assert_output --partial 'room token in BACKCHANNEL_ROOM_TOKEN is too short'
	# 16 characters are enough.
	relayd --token 1234567890123456
	ROOM=1234567890123456
	reg alice
	req POST /v1/register '' '{"name":"mallory"}'
	expect 401
}

@test "bch-relayd refuses a port, rate or descriptor that is not a number, before it starts" {
	for bad in "--port abc" "--port 70000" "--port 80x" "--port +80" "--rate fast" "--rate 0" "--max-conns 0" "-d fd"; do
		# shellcheck disable=SC2086
		run -2 bch-relayd --home "$BACKCHANNEL_HOME" --token "$ROOM" $bad
		assert_output --partial "${bad%% *} "
		assert_output --partial 'usage: bch-relayd'
		refute_output --partial 'listening'
	done
	run -2 bch-relayd --port abc
	assert_line --index 0 'bch-relayd: --port takes a whole number from 0 to 65535, not "abc"'
	# A rate as high as the benchmarks ask for ("no limit") is taken.
	relayd --rate 1000000000
	reg alice
}

@test "a relay that closes every connection unanswered: 111 and a line that says so" {
	command -v python3 >/dev/null || skip "python3 is needed for the stand-in relay"
	cat > closer.py <<'PY'
import fakehttp
def serve(c):
    c.recv(65536)
    c.close()
fakehttp.serve_raw(serve)
PY
	python3 closer.py > port &
	bg_pid $!
	wait_for 10 test -s port
	BACKCHANNEL_URL="http://127.0.0.1:$(cat port)" BACKCHANNEL_TOKEN=t BACKCHANNEL_AGENT=alice run -111 bch send @bob hi
	assert_output --partial "closed the connection before answering"
	refute_output --partial "in progress"
}

# slow_take MODE [CERT]: a stand-in relay for alice (over TLS with
# CERT.crt and CERT.key, trusted as the CA) whose inbox holds one
# message. It answers the listing at once, on a keep-alive connection;
# the first take leases the message, and its answer is, per MODE, "hold"
# held for 20 s (past the default timeout of 15 s) or "cut" cut off
# after its first line. A later take is answered null, as a relay does
# for a leased message. Each request's method and path go to
# requests.log.
slow_take() {
	cat >slow.py <<'PY'
import json, sys, time, fakehttp
mode = sys.argv[1]
MSG = {"id": "c0000001-0000-4000-8000-000000000001", "from": "bob",
       "to": "@alice", "body": "leased once", "priority": "normal",
       "ts": "2026-06-12T12:00:01.000Z"}
leased = []
class H(fakehttp.Handler):
    protocol_version = "HTTP/1.1"
    def log(self):
        with open("requests.log", "a") as f:
            f.write("%s %s\n" % (self.command, self.path))
    def do_GET(self):
        self.log()
        self.answer(200, json.dumps([] if leased else [MSG]).encode())
    def do_POST(self):
        self.log()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/take":
            return self.answer(200, b'{"ok":true}')
        if leased:
            return self.answer(200, b'{"message":null}')
        leased.append(MSG["id"])
        if mode == "cut":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self.close_connection = True
            return
        time.sleep(20)
        self.answer(200, json.dumps({"message": MSG, "lease": 300}).encode())
fakehttp.serve(H, threads=True, cert=sys.argv[2:] or None)
PY
	fake_relay slow.py "$1" ${2:+"$BATS_TEST_TMPDIR/$2.crt" "$BATS_TEST_TMPDIR/$2.key"}
	if [ -n "${2:-}" ]; then
		FAKE_URL=https://localhost:${FAKE_URL##*:}
		export BACKCHANNEL_CA=$BATS_TEST_TMPDIR/$2.crt
	fi
	export BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t BACKCHANNEL_AGENT=alice
}

@test "a batch stopped by a send the relay took but did not answer in time does not say that line was not sent" {
	# The relay reads the send (it may well deliver it) and answers late.
	cat >late.py <<'PY'
import time, fakehttp
def serve(c):
    head = fakehttp.read_head(c)
    if head:
        with open("requests.log", "a") as f:
            f.write(head[0] + "\n")
        time.sleep(5)
    c.close()
fakehttp.serve_raw(serve)
PY
	fake_relay late.py
	export BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t BACKCHANNEL_AGENT=alice
	printf '{"to":"@bob","body":"%s"}\n' one two > in.jsonl
	BACKCHANNEL_TIMEOUT=1 run -111 --separate-stderr bch-send < in.jsonl
	assert_output ''
	assert_equal "$stderr" "bch-send: line 1: relay $FAKE_URL did not answer within 1 s — try again later — stopped: no line after it was sent, and this one may not have been"
	run cat requests.log
	assert_output "POST /v1/send HTTP/1.1"
}

@test "a take not answered in time on a reused link fails with 111, and is not sent again" {
	slow_take hold
	BACKCHANNEL_TIMEOUT=1 run -111 bch drain
	# Not "inbox empty": a take sent again would find the message leased.
	assert_output "bch-drain: relay $FAKE_URL did not answer within 1 s — try again later"
	run cat requests.log
	assert_output "GET /v1/inbox/alice
POST /v1/take"
}

@test "over TLS too, a take not answered in time is not taken for a closed link" {
	tls_cert relay
	slow_take hold relay
	BACKCHANNEL_TIMEOUT=1 run -111 bch drain
	assert_output "bch-drain: relay $FAKE_URL did not answer within 1 s — try again later"
	run cat requests.log
	assert_output "GET /v1/inbox/alice
POST /v1/take"
}

# paced_relay BYTES CHUNK PAUSE: a stand-in relay that answers every
# request with an empty inbox padded to BYTES of JSON, all of it head
# included sent CHUNK bytes at a time with PAUSE seconds between.
paced_relay() {
	cp "$T_ROOT/t/paced.py" .
	fake_relay paced.py "$@"
	export BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t BACKCHANNEL_AGENT=alice
}

@test "an answer trickled a byte at a time is given up on at the deadline, not read for ever" {
	# Each byte comes well within the timeout; the answer, in 12 s.
	paced_relay 2 1 0.15
	t0=$(date +%s%N)
	BACKCHANNEL_TIMEOUT=2 run -111 bch drain
	ms=$((($(date +%s%N) - t0) / 1000000))
	assert_output "bch-drain: relay $FAKE_URL did not answer within 2 s — try again later"
	echo "gave up after $ms ms"
	[ "$ms" -ge 1900 ]
	[ "$ms" -lt 6000 ]
}

# big_head_relay HEAD CHUNK PAUSE: a stand-in relay that answers every
# request with an empty inbox whose head (status line, headers and the
# blank line) is HEAD bytes, padded with a header, all of it sent CHUNK
# bytes at a time with PAUSE seconds between (CHUNK 0: in one write).
big_head_relay() {
	cat >bighead.py <<'PY'
import sys, time, fakehttp
size, chunk, pause = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nConnection: close\r\nX-Pad: ")
answer = head + b"x" * (size - len(head) - 4) + b"\r\n\r\n[]"
def serve(c):
    try:
        c.recv(65536)
        for i in range(0, len(answer), chunk or len(answer)):
            c.sendall(answer[i:i + (chunk or len(answer))])
            time.sleep(pause)
    except OSError:
        pass
    c.close()
fakehttp.serve_raw(serve, nodelay=True)
PY
	fake_relay bighead.py "$@"
	export BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t BACKCHANNEL_AGENT=alice
}

@test "an answer whose head is over 64 KiB is refused in one line, whether it comes at once or in pieces" {
	big_head_relay $((100 * 1024)) 0 0
	run -111 bch drain
	assert_output "bch-drain: relay $FAKE_URL sent a malformed answer: its head is over the limit of 64 KiB"
	big_head_relay $((100 * 1024)) 4096 0.01
	run -111 bch drain
	assert_output "bch-drain: relay $FAKE_URL sent a malformed answer: its head is over the limit of 64 KiB"
}

@test "an answer whose head is 64 KiB exactly is read, whether it comes at once or in pieces" {
	big_head_relay $((64 * 1024)) 0 0
	run -0 bch drain
	assert_output "inbox empty"
	big_head_relay $((64 * 1024)) 4096 0.01
	run -0 bch drain
	assert_output "inbox empty"
}

@test "a big answer over a slow link is not cut off at the deadline" {
	# 640 KiB at some 160 KiB/s: 4 s, past a 1 s timeout, but each
	# 64 KiB that comes gives it a second more.
	paced_relay $((640 * 1024)) 16384 0.1
	BACKCHANNEL_TIMEOUT=1 run -0 bch drain
	assert_output "inbox empty"
}

@test "a chunked answer read in many small pieces costs the client its length, not its length times the pieces" {
	# An inbox listing in 1-byte chunks (as a proxy may re-chunk one):
	# most of it at once, then its last 2000 chunks a millisecond apart,
	# each read by itself. Parsed from its start after every read, the
	# answer cost 2000 times its 44000 chunks: seconds of CPU.
	cat >chunky.py <<'PY'
import time
import fakehttp
body = b"[" + b" " * 43998 + b"]"
chunks = [b"1\r\n" + body[i:i + 1] + b"\r\n" for i in range(len(body))]
def serve(c):
    try:
        c.recv(65536)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(chunks[:42000]))
        for k in chunks[42000:]:
            time.sleep(0.001)
            c.sendall(k)
        c.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    c.close()
fakehttp.serve_raw(serve, nodelay=True)
PY
	fake_relay chunky.py
	export BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t BACKCHANNEL_AGENT=alice
	TIMEFORMAT=%U
	{ time bch drain >out 2>err; } 2>cpu
	run cat out err
	assert_output "inbox empty"
	ms=$((10#$(tr -d '.\n' <cpu)))
	echo "user CPU: $ms ms"
	# Under the sanitizers or valgrind every byte costs many times more.
	[ -n "${BCH_SANITIZED:-}${BCH_VALGRIND_BIN:-}" ] || [ "$ms" -lt 500 ]
}

@test "a chunked answer whose trailer field never ends is refused once over the limit, not held in memory" {
	# 24 MiB of one trailer field, past the 16 MiB an answer may take.
	cat >trailer.py <<'PY'
import fakehttp
def serve(c):
    try:
        c.recv(65536)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\nX-Pad: ")
        for _ in range(24):
            c.sendall(b"a" * (1 << 20))
    except OSError:
        pass
    c.close()
fakehttp.serve_raw(serve)
PY
	fake_relay trailer.py
	export BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t BACKCHANNEL_AGENT=alice
	run -111 bch drain
	assert_output "bch-drain: relay $FAKE_URL sent a malformed answer"
}

@test "a take whose answer is cut off on a reused link fails with 111, and is not sent again" {
	slow_take cut
	run -111 bch drain
	assert_output "bch-drain: relay $FAKE_URL closed the connection in the middle of its answer"
	run cat requests.log
	assert_output "GET /v1/inbox/alice
POST /v1/take"
}

@test "BACKCHANNEL_TIMEOUT that is not a number of seconds is refused in one line" {
	slow_take hold
	for v in 0 x 1.5 -3 3601 99999999999999999999; do
		BACKCHANNEL_TIMEOUT=$v run -100 bch drain
		assert_output "bch-drain: BACKCHANNEL_TIMEOUT is not a whole number of seconds from 1 to 3600 — fix or unset it"
	done
	[ ! -e requests.log ]
}

# odd_relay MODE [ADDRESS]: a stand-in relay on ADDRESS (127.0.0.1) that
# answers every request the one way MODE says: "redirect" a 301 to
# https://relay.example, "stream" an event stream (but an empty inbox to
# GET /v1/inbox/), "ok" {"ok":true}, "notfound" a bare 404, "gateway" a
# 502 with a page of HTML (a proxy whose relay is down). It logs each request's method, path
# and Host to requests.log. Sets FAKE_URL, and the client's environment.
odd_relay() {
	cat >odd.py <<'PY'
import sys, fakehttp
mode = sys.argv[1]
class H(fakehttp.Handler):
    def odd(self):
        with open("requests.log", "a") as f:
            f.write("%s %s %s\n" % (self.command, self.path, self.headers.get("Host")))
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b"[]" if "/v1/inbox/" in self.path else b'{"ok":true}'
        if mode in ("notfound", "gateway"):
            self.send_response(404 if mode == "notfound" else 502)
            body = b"" if mode == "notfound" else b"<html>bad gateway</html>"
        elif mode == "redirect":
            self.send_response(301)
            self.send_header("Location", "https://relay.example" + self.path)
            body = b""
        elif mode == "stream" and body != b"[]":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            self.wfile.write(b": keepalive\n\n")
            return
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = odd
fakehttp.serve(H, sys.argv[2])
PY
	fake_relay odd.py "$1" "${2:-127.0.0.1}"
	export BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t BACKCHANNEL_AGENT=alice
}

@test "a relay url that redirects: 100 and where it leads, never \"sent\"" {
	odd_relay redirect
	run -100 bch send @bob hi
	assert_output "bch-send: the relay at $FAKE_URL redirects to https://relay.example — use that URL"
	run -100 bch sub '#proj'
	assert_output "bch-sub: the relay at $FAKE_URL redirects to https://relay.example — use that URL"
}

# A URL that is not a relay's printed the reason phrase alone:
# "bch-drain: Not Found".
@test "an answer that is not a relay's says which URL answered what" {
	odd_relay notfound
	run -100 bch drain
	assert_output "bch-drain: relay $FAKE_URL answered 404 Not Found, not as a backchannel relay would — check the URL"
	odd_relay gateway
	run -111 bch send @bob hi
	assert_output "bch-send: relay $FAKE_URL answered 502 Bad Gateway — try again later"
}

@test "an event stream where JSON was due: send fails and says so" {
	odd_relay stream
	run -111 bch send @bob hi
	assert_output "bch-send: relay $FAKE_URL sent a malformed answer: an event stream where JSON was due — is it a backchannel relay?"
}

@test "an event stream where JSON was due: sub fails and says so, no crash" {
	odd_relay stream
	run -111 bch sub '#proj'
	assert_output "bch-sub: relay $FAKE_URL sent a malformed answer: an event stream where JSON was due — is it a backchannel relay?"
}

@test "a send answered with something other than the stored message is not sent" {
	odd_relay ok
	run -111 bch send @bob hi
	assert_output "bch-send: relay $FAKE_URL answered the send with something other than the stored message — it may not have been stored; is it a backchannel relay?"
}

@test "a hostile relay's error text and redirect reach the terminal escaped" {
	# A relay (someone else's machine) whose error and Location carry
	# terminal escapes: ESC, BEL, a C1 CSI, a newline forging a line.
	cat >hostile.py <<'PY'
import fakehttp
class H(fakehttp.Handler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path == "/v1/send":
            self.answer(400, b'{"error":"no\\u001b]0;owned\\u0007\\u001b[2J \\u009b31m\\nbch-send: sent"}')
        else:
            self.send_response(302)
            self.send_header("Location", "https://x.example/\xc2\x9b31m\x7f")
            self.send_header("Content-Length", "0")
            self.end_headers()
fakehttp.serve(H)
PY
	fake_relay hostile.py
	export BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t BACKCHANNEL_AGENT=alice
	run -100 bch send @bob hi
	refute_output --partial $'\e'
	refute_output --partial $'\a'
	refute_output --partial $'\xc2\x9b'
	assert_output 'bch-send: no\x1b]0;owned\x07\x1b[2J \u009b31m\x0abch-send: sent'
	run -100 bch sub '#proj'
	refute_output --partial $'\xc2\x9b'
	refute_output --partial $'\x7f'
	assert_output "bch-sub: the relay at $FAKE_URL redirects to https://x.example/\\u009b31m\\x7f — use that URL"
}

@test "the Host header names the relay's port, and brackets an IPv6 address" {
	odd_relay redirect
	port=${FAKE_URL##*:}
	run bch send @bob hi
	run cat requests.log
	assert_output "POST /v1/send 127.0.0.1:$port"
	rm requests.log
	odd_relay stream ::1
	port=$(head -1 odd.py.port)
	BACKCHANNEL_URL="http://[::1]:$port/bch" bch-watch >watch.out 2>&1 &
	bg_pid $!
	wait_for 10 grep -q events requests.log
	wait_for 10 grep -q inbox requests.log
	run sort -u requests.log
	assert_output "GET /bch/v1/events/alice [::1]:$port
GET /bch/v1/inbox/alice [::1]:$port"
}

@test "the client exits 111 when the relay is not running" {
	relayd
	reg alice
	stop_relay
	run -111 bch init bob --url "$URL" --token "$ROOM"
	assert_output --partial 'unreachable'
	printf '{"agent":"alice","url":"%s","token":"%s"}\n' "$URL" "$TOK" >"$BACKCHANNEL_HOME/config.json"
	run -111 bch send @alice 'nobody home'
	run -111 bch drain
}

@test "bch watch against the relay prints a message sent while it runs" {
	command -v bch-watch >/dev/null || skip "bch-watch is not built yet"
	relayd
	export BACKCHANNEL_URL=$URL
	bch init alice --token "$ROOM" >/dev/null
	BACKCHANNEL_AGENT=bob bch init bob --token "$ROOM" >/dev/null
	BACKCHANNEL_AGENT=bob bch-watch --ready-fd 3 3>watch.ready >watch.out 2>watch.err &
	bg_pid $!
	wait_for 10 test -s watch.ready
	bch send @bob 'while you watch' >/dev/null
	wait_for 5 grep -q 'while you watch' watch.out
}

@test "an event stream quiet for longer than BACKCHANNEL_TIMEOUT between keepalives is kept open" {
	# The timeout is for an answer; the stream's events come when they
	# come, its keepalives every 25 s: here 1.5 s apart, past a 1 s one.
	cat >quiet.py <<'PY'
import json, time, fakehttp
m = {"id": "00000000-0000-4000-8000-000000000002", "from": "alice",
     "to": "@bob", "body": "after the quiet", "priority": "normal",
     "ts": "2026-01-01T00:00:00.000Z"}
sent = []
class H(fakehttp.Handler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if not self.path.startswith("/v1/events/"):
            return self.answer(200, json.dumps(sent).encode())
        with open("opens", "a") as f:
            f.write("open\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.flush()
        for _ in range(2):
            time.sleep(1.5)
            self.wfile.write(b": keepalive\n\n")
            self.wfile.flush()
        time.sleep(1.5)
        sent.append(m)
        self.wfile.write(b"id: %s\ndata: %s\n\n" % (m["id"].encode(), json.dumps(m).encode()))
        self.wfile.flush()
        time.sleep(60)
fakehttp.serve(H, threads=True)
PY
	fake_relay quiet.py
	BACKCHANNEL_TIMEOUT=1 BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t BACKCHANNEL_AGENT=bob bch-watch --peek >watch.out 2>watch.err &
	bg_pid $!
	wait_for 10 grep -q 'after the quiet' watch.out
	run cat opens
	assert_output open
	run cat watch.err
	assert_output ''
}

# --- TLS ------------------------------------------------------------------------

# tls_relay ec|rsa: a self-signed certificate for localhost and 127.0.0.1,
# and a relay serving it; PIN is the pin the relay printed, CERT the file.
tls_relay() {
	local kind=$1
	command -v openssl >/dev/null || skip "openssl is not installed"
	CERT=$BATS_TEST_TMPDIR/$kind.crt
	KEY=$BATS_TEST_TMPDIR/$kind.key
	case $kind in
	ec) set -- -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 ;;
	rsa) set -- -newkey rsa:2048 ;;
	esac
	openssl req -x509 "$@" -nodes -keyout "$KEY" -out "$CERT" -days 2 \
		-subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' 2>/dev/null
	relayd --cert "$CERT" --key "$KEY"
	PIN=$(sed -n 's/.*key pin \([0-9a-f]\{64\}\).*/\1/p' "$LOG")
	[ "${#PIN}" -eq 64 ]
	URL=https://127.0.0.1:$PORT
}

@test "TLS: a client stalled in its handshake is dropped after the request timeout, not the idle one" {
	tls_relay ec
	# Half a ClientHello, then nothing: the relay must not wait the 60 s
	# a keep-alive may idle.
	run timeout 40 python3 - "$PORT" <<'PY'
import socket, ssl, sys, time
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
out = ssl.MemoryBIO()
tls = ctx.wrap_bio(ssl.MemoryBIO(), out, server_hostname="localhost")
try:
    tls.do_handshake()
except ssl.SSLWantReadError:
    pass
hello = out.read()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(hello[:len(hello) // 2])
t = time.time()
s.settimeout(35)
try:
    while s.recv(4096):
        pass
except OSError:
    pass
print(int(time.time() - t))
PY
	assert_success
	[ "$output" -ge 9 ]
	[ "$output" -le 20 ]
	kill -0 "$BCH_RELAY_PID"
}

@test "TLS: a relay whose handshake trickles in is given up on at the client's deadline" {
	tls_relay ec
	# In the relay's place, a proxy that passes what the relay sends on
	# a byte at a time: its handshake's 1 KB or so would take 20 s.
	cat >drip.py <<'PY'
import socket, sys, threading, time
import fakehttp
def up(c, u):
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            u.sendall(d)
    except OSError:
        pass
def drip(u, c):
    try:
        while True:
            d = u.recv(65536)
            if not d:
                break
            for i in range(len(d)):
                c.sendall(d[i:i + 1])
                time.sleep(0.02)
    except OSError:
        pass
    c.close()
def serve(c):
    u = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    threading.Thread(target=drip, args=(u, c), daemon=True).start()
    up(c, u)
fakehttp.serve_raw(serve)
PY
	fake_relay drip.py "$PORT"
	drip=https://127.0.0.1:${FAKE_URL##*:}
	t0=$(date +%s%N)
	BACKCHANNEL_TIMEOUT=2 BACKCHANNEL_PIN=$PIN BACKCHANNEL_URL=$drip BACKCHANNEL_TOKEN=t BACKCHANNEL_AGENT=alice run -111 bch drain
	ms=$((($(date +%s%N) - t0) / 1000000))
	assert_output "bch-drain: relay $drip did not answer within 2 s — try again later"
	echo "gave up after $ms ms"
	[ "$ms" -ge 1900 ]
	[ "$ms" -lt 6000 ]
}

# tls_round: curl with the certificate as CA; bch with the pin registers,
# sends and drains; a wrong pin is a permanent failure; BACKCHANNEL_CA
# works too. Last, the drain must have been quick: a keep-alive request
# left unanswered over TLS shows up as seconds.
tls_round() {
	run curl -s --cacert "$CERT" "https://localhost:$PORT/v1/health"
	assert_success
	assert_output '{"ok":true,"service":"backchannel-relay"}'
	run curl -s "https://localhost:$PORT/v1/health"
	assert_failure
	# Plain HTTP on the TLS port is refused, not served.
	run curl -s -m 5 "http://127.0.0.1:$PORT/v1/health"
	refute_output --partial backchannel-relay

	export BACKCHANNEL_PIN=$PIN
	bch init alice --url "$URL" --token "$ROOM" >/dev/null
	BACKCHANNEL_AGENT=bob bch init bob --url "$URL" --token "$ROOM" >/dev/null
	bch send @bob 'over tls 1' >/dev/null
	bch send @bob 'over tls 2' >/dev/null
	t0=$SECONDS
	run timeout 60 env BACKCHANNEL_AGENT=bob bch drain
	took=$((SECONDS - t0))
	assert_success
	assert_output --partial 'over tls 1'
	assert_output --partial 'over tls 2'
	[ "$(count_new bob)" -eq 0 ]

	run -100 env BACKCHANNEL_PIN=0000000000000000000000000000000000000000000000000000000000000000 \
		bch send @bob 'wrong pin'
	assert_output --partial 'not trusted'
	[ "${#lines[@]}" -eq 1 ]
	[ "$(count_new bob)" -eq 0 ]

	unset BACKCHANNEL_PIN
	run env BACKCHANNEL_CA="$CERT" BACKCHANNEL_URL="https://localhost:$PORT" \
		bch send @bob 'with the CA'
	assert_success
	[ "$(count_new bob)" -eq 1 ]
	! grep -qF "$ROOM" "$LOG" || false

	[ "$took" -le 3 ] || {
		echo "bch drain of 2 messages over TLS took $took s (a stalled keep-alive request?)"
		return 1
	}
}

@test "TLS with a self-signed EC certificate: curl --cacert, bch with the pin, a wrong pin, BACKCHANNEL_CA" {
	tls_relay ec
	tls_round
}

@test "TLS with a self-signed RSA certificate: curl --cacert, bch with the pin, a wrong pin, BACKCHANNEL_CA" {
	tls_relay rsa
	tls_round
}

@test "TLS: plain HTTP on the relay's TLS port is answered 400 in plain text, telling to use https://" {
	tls_relay ec
	run curl -s -m 5 -D head.txt "http://127.0.0.1:$PORT/v1/health"
	assert_success
	assert_output '{"error":"this relay speaks TLS: use https://"}'
	run sed -n '1p' head.txt
	assert_output $'HTTP/1.1 400 Bad Request\r'
	grep -qix $'connection: close\r' head.txt
	# A request with a body too, and the relay still serves TLS after.
	run curl -s -m 5 -w ' %{http_code}' -H "Authorization: Bearer $ROOM" \
		-d '{"name":"alice"}' "http://127.0.0.1:$PORT/v1/register"
	assert_output $'{"error":"this relay speaks TLS: use https://"}\n 400'
	run curl -s --cacert "$CERT" "https://localhost:$PORT/v1/health"
	assert_output '{"ok":true,"service":"backchannel-relay"}'
}

@test "TLS: bch given http:// for a TLS relay is told to use https://, a permanent failure" {
	tls_relay ec
	http=http://127.0.0.1:$PORT
	BACKCHANNEL_URL=$http BACKCHANNEL_TOKEN=$ROOM BACKCHANNEL_AGENT=alice run -100 bch send @bob hi
	assert_output "bch-send: this relay speaks TLS: use https://"
	# Another TLS server, that answers plain text with an alert record:
	# the client asks whether it is https://.
	cat >alert.py <<'PY'
import fakehttp
def serve(c):
    c.recv(65536)
    c.sendall(bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x46]))
    c.close()
fakehttp.serve_raw(serve)
PY
	fake_relay alert.py
	BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=$ROOM BACKCHANNEL_AGENT=alice run -111 bch send @bob hi
	assert_output --regexp "^bch-send: relay $FAKE_URL .* — is it https://\?\$"
	# A relay that closes a plain link for another reason gets no hint.
	cat >junk.py <<'PY'
import fakehttp
def serve(c):
    c.recv(65536)
    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab")
    c.close()
fakehttp.serve_raw(serve)
PY
	fake_relay junk.py
	BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=$ROOM BACKCHANNEL_AGENT=alice run -111 bch send @bob hi
	refute_output --partial 'https://'
}

@test "TLS: bch given https:// for a plain relay is told to use http://, a permanent failure" {
	relayd
	https=https://127.0.0.1:$PORT
	# A handshake on the plain port is answered at once, in plain text.
	run timeout 5 python3 -c '
import socket, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(bytes([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0, 0, 1, 0]))
a = b""
while True:
    b = c.recv(4096)
    if not b:
        break
    a += b
sys.stdout.write(a.decode().replace("\r", ""))
' "$PORT"
	assert_success
	assert_line -n 0 'HTTP/1.1 400 Bad Request'
	assert_line '{"error":"this relay speaks plain HTTP: use http://"}'
	grep -qF 'refused 400: TLS on the plain HTTP port' "$LOG"
	BACKCHANNEL_URL=$https BACKCHANNEL_TOKEN=$ROOM BACKCHANNEL_AGENT=alice run -100 bch send @bob hi
	assert_output "bch-send: relay $https answered in plain HTTP, not TLS — use http://"
	run -100 env BACKCHANNEL_AGENT=alice bch init alice --url "$https" --token "$ROOM"
	assert_output "bch-init: relay $https answered in plain HTTP, not TLS — use http://"
	[ ! -e "$BACKCHANNEL_HOME/tokens/alice" ]
	# The relay still serves plain HTTP after.
	run curl -s "$URL/v1/health"
	assert_output '{"ok":true,"service":"backchannel-relay"}'
	# Another plain HTTP server, that answers the handshake with a 400.
	cat >plain.py <<'PY'
import fakehttp
def serve(c):
    c.recv(65536)
    c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    c.close()
fakehttp.serve_raw(serve)
PY
	fake_relay plain.py
	BACKCHANNEL_URL=https://${FAKE_URL#http://} BACKCHANNEL_TOKEN=$ROOM BACKCHANNEL_AGENT=alice run -100 bch send @bob hi
	assert_output "bch-send: relay https://${FAKE_URL#http://} answered in plain HTTP, not TLS — use http://"
	# One that cuts the handshake is a temporary failure, as it was.
	cat >cut.py <<'PY'
import fakehttp
def serve(c):
    c.recv(65536)
    c.close()
fakehttp.serve_raw(serve)
PY
	fake_relay cut.py
	BACKCHANNEL_URL=https://${FAKE_URL#http://} BACKCHANNEL_TOKEN=$ROOM BACKCHANNEL_AGENT=alice run -111 bch send @bob hi
	refute_output --partial 'plain HTTP'
}

# A send over the relay's limit, over TLS: the relay answers 413 from the
# head and closes while the body still comes. The client saw the
# connection cut (the close with input unread sent a reset, and its TLS
# session died with the write that failed), a temporary error, instead
# of the limit.
@test "TLS: a send over the relay's limit is told the limit, as a permanent error, not a lost connection" {
	tls_relay ec
	# One the relay reads and drops to its end, one past what it drops.
	for size in 15000000 40000000; do
		head -c "$size" /dev/zero | tr '\0' a >big
		BACKCHANNEL_PIN=$PIN BACKCHANNEL_URL=$URL BACKCHANNEL_MAX_BODY=50000000 \
			BACKCHANNEL_TOKEN=$ROOM BACKCHANNEL_AGENT=alice run -100 bch send @bob - <big
		assert_output "bch-send: request over the limit of 655360 bytes of this relay, which takes a body of at most 65536 bytes — send a path or URL in --ref instead"
	done
	run curl -s --cacert "$CERT" "https://localhost:$PORT/v1/health"
	assert_output '{"ok":true,"service":"backchannel-relay"}'
}

# refused_send [CAFILE]: send a head and an 8 MB body over the relay's
# limit whole (over TLS with CAFILE), then read: prints "sent" or why
# the send failed, then the answer's status line.
refused_send() {
	timeout 30 python3 -c '
import socket, ssl, sys
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
if len(sys.argv) > 2:
    ctx = ssl.create_default_context(cafile=sys.argv[2])
    c = ctx.wrap_socket(c, server_hostname="localhost")
body = b"a" * 8000000
try:
    c.sendall(b"POST /v1/send HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body)
    print("sent")
except OSError as e:
    print("send failed:", type(e).__name__)
a = b""
try:
    while True:
        b = c.recv(65536)
        if not b:
            break
        a += b
except OSError as e:
    print("read failed:", type(e).__name__)
print(a.split(b"\r\n")[0].decode())
' "$@"
}

# The relay answered 413 from the head and closed at once, with the body
# coming: a reset, that cut the client's send (and over TLS lost the
# answer). It lingers: its answer goes, then it reads and drops the rest.
@test "a client refused while it sends can send its request to the end and read the refusal, over HTTP and TLS" {
	relayd
	bg_pid "$BCH_RELAY_PID" # the TLS one below is the teardown's
	run refused_send "$PORT"
	assert_output $'sent\nHTTP/1.1 413 Content Too Large'
	tls_relay ec
	run refused_send "$PORT" "$CERT"
	assert_output $'sent\nHTTP/1.1 413 Content Too Large'
}

# Lingering is bounded: a client that sends on after its refusal is cut
# within seconds, not kept holding a connection slot.
@test "a refused client that sends on is cut within seconds, not held" {
	relayd
	run timeout 30 python3 -c '
import socket, sys, time
c = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
c.sendall(b"POST /v1/send HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n")
print(c.recv(4096).split(b"\r\n")[0].decode())
t0 = time.time()
try:
    while time.time() - t0 < 20:
        c.sendall(b"a" * 1000)
        time.sleep(0.05)
    print("not cut")
except OSError:
    print("cut after %d s" % round(time.time() - t0))
' "$PORT"
	assert_line -n 0 'HTTP/1.1 413 Content Too Large'
	assert_line -n 1 --regexp '^cut after [1-8] s$'
	run curl -s "$URL/v1/health"
	assert_output '{"ok":true,"service":"backchannel-relay"}'
}

# A lingering connection held its slot: with --max-conns of them
# refused while sending, every new client was shut out for seconds.
# It has had its answer: the oldest makes room for a new connection.
@test "clients refused while they send do not hold every slot from a new client" {
	relayd --max-conns 3
	run timeout 30 python3 -c '
import socket, sys
port = int(sys.argv[1])
held = []
for i in range(3):
    c = socket.create_connection(("127.0.0.1", port))
    c.sendall(b"POST /v1/send HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n" + b"a" * 100000)
    print(c.recv(4096).split(b"\r\n")[0].decode())
    held.append(c)
c = socket.create_connection(("127.0.0.1", port))
c.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
a = b""
try:
    while True:
        b = c.recv(65536)
        if not b:
            break
        a += b
except OSError as e:
    print("read failed:", type(e).__name__)
print(a.split(b"\r\n")[0].decode() or "closed unanswered")
print(a.split(b"\r\n\r\n", 1)[-1].decode())
' "$PORT"
	assert_line -n 0 'HTTP/1.1 413 Content Too Large'
	assert_line -n 1 'HTTP/1.1 413 Content Too Large'
	assert_line -n 2 'HTTP/1.1 413 Content Too Large'
	assert_line -n 3 'HTTP/1.1 200 OK'
	assert_line -n 4 '{"ok":true,"service":"backchannel-relay"}'
}

# s_client OPTION...: a handshake with the relay at PORT; the protocol
# and cipher it settled on are in the output.
s_client() {
	openssl s_client -connect "127.0.0.1:$PORT" "$@" </dev/null 2>&1
}

# TLS 1.0 and 1.1, CBC suites and static RSA key exchange were all
# negotiated; only TLS 1.2 with ECDHE and AES-GCM or ChaCha20 is left.
# SECLEVEL=0 lets openssl itself offer TLS 1.0/1.1.
@test "TLS: only TLS 1.2 with ECDHE and AEAD suites is negotiated, EC and RSA" {
	local kind sig
	for kind in ec rsa; do
		tls_relay "$kind"
		sig=ECDSA
		[ "$kind" = ec ] || sig=RSA
		run s_client -tls1_1 -cipher 'ALL:@SECLEVEL=0'
		assert_failure
		run s_client -tls1 -cipher 'ALL:@SECLEVEL=0'
		assert_failure
		run s_client -tls1_2 -cipher AES128-SHA
		assert_failure
		run s_client -tls1_2 -cipher "ECDHE-$sig-AES128-SHA"
		assert_failure
		run s_client -tls1_2 -cipher "ECDHE-$sig-AES128-SHA256"
		assert_failure
		run s_client -tls1_2
		assert_success
		assert_output --regexp "Cipher is ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)"
		run s_client -tls1_2 -cipher "ECDHE-$sig-CHACHA20-POLY1305"
		assert_success
		run curl -s --cacert "$CERT" "https://localhost:$PORT/v1/health"
		assert_success
		stop_relay
	done
}

# spki_pin CERT: the sha256 hex of the certificate's public key DER, as
# openssl gives it (curl's --pinnedpubkey, in hex).
spki_pin() {
	openssl x509 -in "$1" -pubkey -noout | openssl pkey -pubin -outform DER |
		sha256sum | cut -c1-64
}

@test "TLS: the pin is the sha256 of the key's DER; an RSA key made of a pinned EC key's bytes is not trusted" {
	command -v openssl >/dev/null || skip "openssl is not installed"
	fx=$T_ROOT/t/fixtures/pin
	relayd --cert "$fx/impostor.crt" --key "$fx/impostor.key"
	grep -q "key pin $(spki_pin "$fx/impostor.crt")" "$LOG"
	# The impostor's modulus and exponent are the victim's EC point:
	# a pin over the bare key bytes let it pass for the victim.
	run -100 bch init mallory --url "https://127.0.0.1:$PORT" --token "$ROOM" \
		--pin "$(spki_pin "$fx/victim.crt")"
	assert_output --partial 'not trusted'
	[ ! -e "$BACKCHANNEL_HOME/agents/mallory.json" ]
	run bch init mallory --url "https://127.0.0.1:$PORT" --token "$ROOM" \
		--pin "$(spki_pin "$fx/impostor.crt")"
	assert_success
}

@test "TLS: SSE streams the backlog and a live message" {
	tls_relay ec
	U=https://localhost:$PORT
	# reg, with curl trusting the certificate.
	reg_tls() {
		curl -s --cacert "$CERT" -H "Authorization: Bearer $ROOM" -d "{\"name\":\"$1\"}" \
			"$U/v1/register" | sed -n 's/.*"token": *"\([0-9a-f]*\)".*/\1/p'
	}
	tok_alice=$(reg_tls alice)
	tok_bob=$(reg_tls bob)
	[ "${#tok_alice}" -eq 64 ]
	[ "${#tok_bob}" -eq 64 ]
	curl -s --cacert "$CERT" -H "Authorization: Bearer $tok_alice" -d '{"to":"@bob","body":"waiting"}' "$U/v1/send" >/dev/null
	curl -sN --cacert "$CERT" -H "Authorization: Bearer $tok_bob" "$U/v1/events/bob" >sse.out 2>/dev/null &
	bg_pid $!
	wait_for 5 grep -q '"body":"waiting"' sse.out
	# A new stream hands its record buffers back once its backlog is
	# out, and a stream quiet for a second does at the relay's tick
	# (tls_conn_rest); each event must still come through whole.
	for i in 1 2 3; do
		[ "$i" -lt 3 ] || sleep 2.2 # quiet long enough for a tick to rest it
		curl -s --cacert "$CERT" -H "Authorization: Bearer $tok_alice" \
			-d "{\"to\":\"@bob\",\"body\":\"live tls $i\"}" "$U/v1/send" >/dev/null
		wait_for 5 grep -q "\"body\":\"live tls $i\"" sse.out
	done
	[ "$(grep -c '^data: ' sse.out)" -eq 4 ]
}

@test "TLS: a backlog of 13 MB reaches a reader whole" {
	tls_relay ec
	U=https://localhost:$PORT
	for n in alice bob; do
		curl -s --cacert "$CERT" -H "Authorization: Bearer $ROOM" -d "{\"name\":\"$n\"}" \
			"$U/v1/register" | sed -n 's/.*"token": *"\([0-9a-f]*\)".*/\1/p' >"$n.tok"
	done
	[ "$(wc -c <bob.tok)" -eq 65 ]
	big_backlog
	curl -sN --cacert "$CERT" -H "Authorization: Bearer $(cat bob.tok)" "$U/v1/events/bob" >sse.out 2>/dev/null &
	p=$!
	bg_pid $p
	wait_for 20 eval '[ "$(grep -c "^data: " sse.out)" -ge 220 ]'
	[ "$(grep -c '^data: ' sse.out)" -eq 220 ]
	kill -0 "$p"
}

@test "TLS: a body over 1 MiB that a raised BACKCHANNEL_MAX_BODY allows goes through the relay" {
	BACKCHANNEL_MAX_BODY=2000000 tls_relay ec
	U=https://localhost:$PORT
	for n in alice bob; do
		curl -s --cacert "$CERT" -H "Authorization: Bearer $ROOM" -d "{\"name\":\"$n\"}" \
			"$U/v1/register" | sed -n 's/.*"token": *"\([0-9a-f]*\)".*/\1/p' >"$n.tok"
	done
	head -c 1100000 /dev/zero | tr '\0' a >big
	BACKCHANNEL_URL=$U BACKCHANNEL_CA=$CERT BACKCHANNEL_MAX_BODY=2000000 \
		BACKCHANNEL_TOKEN=$(cat alice.tok) BACKCHANNEL_AGENT=alice run bch send @bob - <big
	assert_success
	assert_output --regexp '^sent [0-9a-f]{8} to @bob$'
	[ "$(count_new bob)" -eq 1 ]
}

@test "TLS: a keep-alive connection idle for seconds is served again, pipelining too" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	tls_relay ec
	# One TLS connection, two requests 2.5 s apart: the relay's
	# once-a-second tick rests the connection between them.
	run timeout 20 python3 -c '
import re, socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[1])
s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[2]))),
                    server_hostname="localhost")
def health():
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    got = b""
    while not got.endswith(b"}\n"):
        chunk = s.recv(4096)
        if not chunk:
            sys.exit("connection closed after " + repr(got))
        got += chunk
    print(got.decode().split("\r\n")[0], got.decode().split("\r\n\r\n")[1].strip())
health()
time.sleep(2.5)
health()
# Three requests in one write: each is answered, in order.
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n" * 3)
got = b""
while got.count(b"}\n") < 3:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("connection closed after " + repr(got))
    got += chunk
print(got.count(b"HTTP/1.1 200 OK"), "pipelined answers")
# Three records written back to back, read by the relay at once, and a
# 40 kB body in three records with a request after it in the last one
# (to a path that is no route, needing no token: a route that needs one
# would refuse the head without one, and close).
for i in range(3):
    s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
s.sendall(b"POST /nosuch HTTP/1.1\r\nHost: localhost\r\nContent-Length: 40000\r\n\r\n" +
          b"x" * 40000 + b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
got = b""
while got.count(b"}\n") < 5:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("connection closed after " + repr(got))
    got += chunk
print("answers:", *re.findall(r"HTTP/1.1 (\d+)", got.decode()))
' "$CERT" "$PORT"
	assert_success
	assert_line --index 0 'HTTP/1.1 200 OK {"ok":true,"service":"backchannel-relay"}'
	assert_line --index 1 'HTTP/1.1 200 OK {"ok":true,"service":"backchannel-relay"}'
	assert_line --index 2 '3 pipelined answers'
	assert_line --index 3 'answers: 200 200 200 404 200'
}

@test "TLS: a client that half-closes TCP without close_notify still gets every answer" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	tls_relay ec
	# 20,000 pipelined requests (3 MB of answers, more than the sockets
	# hold), then a FIN on the socket with the session left open: the
	# relay sees EOF while it still owes records, as over plain HTTP.
	run timeout 60 python3 -c '
import os, socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[1])
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.connect(("127.0.0.1", int(sys.argv[2])))
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n" * 20000)
socket.socket(fileno=os.dup(s.fileno())).shutdown(socket.SHUT_WR)
time.sleep(1) # not reading yet: the relay takes the EOF first
got = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    got += b
print("answers", got.count(b"HTTP/1.1 200 OK"))
' "$CERT" "$PORT"
	assert_success
	assert_output 'answers 20000'
	run curl -s --cacert "$CERT" "https://localhost:$PORT/v1/health"
	assert_output '{"ok":true,"service":"backchannel-relay"}'
}

# unread_tls CAFILE N [SIGNAL]: over TLS, pipeline N requests and read
# none of the answers for a second (or until the relay has SIGNAL), then
# read them all; prints how many came.
unread_tls() {
	timeout 90 python3 -c '
import os, signal, socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[1])
raw = socket.socket()
raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
raw.connect(("127.0.0.1", int(sys.argv[2])))
s = ctx.wrap_socket(raw, server_hostname="localhost")
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n" * int(sys.argv[3]))
time.sleep(1)
if sys.argv[5]:
    os.kill(int(sys.argv[4]), getattr(signal, sys.argv[5]))
    time.sleep(1)
got = b""
while True:
    try:
        b = s.recv(65536)
    except (ssl.SSLError, OSError) as e:
        print("error", e)
        break
    if not b:
        break
    got += b
print("answers", got.count(b"HTTP/1.1 200 OK"))
' "$1" "$PORT" "$2" "$BCH_RELAY_PID" "${3:-}"
}

@test "TLS: SIGTERM flushes the answers still held in the engine for a client not reading" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	tls_relay ec
	# 180 answers, some 27 KB: the socket takes part, the engine holds
	# the rest as records while the relay's own buffer is empty.
	run unread_tls "$CERT" 180 SIGTERM
	assert_success
	assert_line 'answers 180'
	wait_for 10 gone "$BCH_RELAY_PID"
	grep -q 'bch-relayd: stopped' "$LOG"
}

@test "TLS: a Connection: close answer and SIGTERM end the session with close_notify" {
	command -v python3 >/dev/null || skip "python3 is not installed"
	tls_relay ec
	# suppress_ragged_eofs=False: a TCP close without close_notify is
	# an error (UNEXPECTED_EOF), as a client guarding against truncation
	# sees it. The second connection is idle when the relay stops.
	run timeout 30 python3 -c '
import os, signal, socket, ssl, sys, time
ctx = ssl.create_default_context(cafile=sys.argv[1])
def conn():
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", int(sys.argv[2]))),
                           server_hostname="localhost", suppress_ragged_eofs=False)
def drain(s):
    got = b""
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return "close_notify %d" % got.count(b"HTTP/1.1 200 OK")
            got += b
    except ssl.SSLError as e:
        return "%s %d" % (e.reason, got.count(b"HTTP/1.1 200 OK"))
s = conn()
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
print(drain(s))
s = conn()
s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
time.sleep(1)
os.kill(int(sys.argv[3]), signal.SIGTERM)
print(drain(s))
' "$CERT" "$PORT" "$BCH_RELAY_PID"
	assert_success
	assert_line --index 0 'close_notify 1'
	assert_line --index 1 'close_notify 1'
	wait_for 10 gone "$BCH_RELAY_PID"
	grep -q 'bch-relayd: stopped' "$LOG"
}

@test "TLS: a bad certificate or key file stops the relay with a clear error" {
	echo 'not pem' >bad.pem
	run -100 bch-relayd --home "$BACKCHANNEL_HOME" --port 0 --token "$ROOM" --cert bad.pem --key bad.pem
	assert_output --partial 'bad.pem'
	# A first start without a room token writes nothing before it stops.
	run -100 bch-relayd --home "$BATS_TEST_TMPDIR/fresh" --port 0 --cert bad.pem --key bad.pem
	assert_output --partial 'bad.pem'
	[ ! -e "$BATS_TEST_TMPDIR/fresh" ]
}

# An encrypted key was "no RSA or EC private key", and a 1024-bit RSA key
# started a relay without a word.
@test "TLS: an encrypted key is refused, and a weak RSA key warned of, each in one line saying why" {
	command -v openssl >/dev/null || skip "openssl is not installed"
	openssl req -x509 -newkey rsa:2048 -keyout ek -out ec -days 1 \
		-subj /CN=localhost -passout pass:secret 2>/dev/null
	run -100 timeout 10 bch-relayd --home "$BACKCHANNEL_HOME" --port 0 \
		--token "$ROOM" --cert ec --key ek
	assert_output "bch-relayd: ek holds an encrypted private key, and bch-relayd asks for no passphrase — decrypt it: openssl pkey -in ek -out KEY.pem"
	openssl req -x509 -newkey rsa:1024 -nodes -keyout wk -out wc -days 1 \
		-subj /CN=localhost 2>/dev/null
	relayd --cert wc --key wk
	grep -qx "bch-relayd: warning: wk is a 1024-bit RSA key, too weak to trust — make one of 2048 bits or more, or an EC key" "$LOG"
}

# A key that is not the certificate's once started a relay that printed a
# pin and then failed every handshake ("bad signature").
@test "TLS: a key that does not match the certificate stops the relay with a clear error" {
	command -v openssl >/dev/null || skip "openssl is not installed"
	for k in 1 2; do
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
			-keyout k$k -out c$k -days 1 -subj /CN=localhost 2>/dev/null
	done
	openssl req -x509 -newkey rsa:2048 -nodes -keyout rk -out rc -days 1 \
		-subj /CN=localhost 2>/dev/null
	openssl req -x509 -newkey rsa:2048 -nodes -keyout rk2 -out rc2 -days 1 \
		-subj /CN=localhost 2>/dev/null
	for pair in c1:k2 c1:rk rc:rk2 rc:k1; do
		cert=${pair%:*} key=${pair#*:}
		run -100 timeout 10 bch-relayd --home "$BACKCHANNEL_HOME" --port 0 \
			--token "$ROOM" --cert "$cert" --key "$key"
		assert_output "bch-relayd: the key in $key does not match the certificate in $cert"
	done
	# The right pairs still start.
	relayd --cert c1 --key k1
	grep -q "key pin $(spki_pin c1)" "$LOG"
	stop_relay
	relayd --cert rc --key rk
	grep -q "key pin $(spki_pin rc)" "$LOG"
}
