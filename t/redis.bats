#!/usr/bin/env bats
# Several relays, one room: bch-relayd --spool on a real redis-server that
# each test starts on a unix socket in its own directory (t/redis-server).
# Two relays share it: whatever one stores, claims or leases, the other
# sees, and neither holds state a crash could lose.
load helper
bats_require_minimum_version 1.5.0
# This file starts its own relays: the suite's relay mode does not apply.
unset BCH_TEST_RELAY

local_setup() {
	command -v redis-server >/dev/null 2>&1 ||
		skip "redis-server is not installed (Debian: redis-server)"
	ROOM="room-0123456789-$RANDOM$RANDOM$RANDOM$RANDOM"
	RDIR=$BATS_TEST_TMPDIR/redis
	BG=$BATS_TEST_TMPDIR/bg.pids
	: >"$BG"
	SPOOL=$(sh "$T_ROOT/t/redis-server" start "$RDIR" --appendfsync always)
}

local_teardown() {
	local p
	while read -r p; do
		kill "$p" 2>/dev/null || true
	done <"$BG"
	while read -r p; do
		wait "$p" 2>/dev/null || true
	done <"$BG"
	[ -z "${RDIR:-}" ] || sh "$T_ROOT/t/redis-server" stop "$RDIR"
}

bgpid() {
	echo "$1" >>"$BG"
}

# relay NAME [OPTIONS...]: a bch-relayd on the test's Redis, on a free
# port; sets NAME_URL and NAME_PID. Each relay has a home of its own:
# nothing of the room is on disk.
relay() {
	local name=$1 log=$BATS_TEST_TMPDIR/$1.log port
	shift
	mkdir -p "$BATS_TEST_TMPDIR/$name.home"
	: >"$log"
	bch-relayd --home "$BATS_TEST_TMPDIR/$name.home" --port 0 --token "$ROOM" \
		--spool "$SPOOL" "$@" 2>"$log" &
	bgpid $!
	eval "${name}_PID=$!"
	port=$(relay_port "$log") || return 1
	eval "${name}_URL=http://127.0.0.1:$port"
}

# on NAME AGENT CMD...: run a bch command as AGENT through relay NAME.
on() {
	local url
	eval "url=\$${1}_URL"
	BACKCHANNEL_URL=$url BACKCHANNEL_AGENT=$2 "${@:3}"
}

# join NAME AGENT: register AGENT through relay NAME.
join() {
	on "$1" "$2" bch init "$2" --token "$ROOM" >/dev/null
}

# tok AGENT: AGENT's personal token.
tok() {
	cat "$BACKCHANNEL_HOME/tokens/$1" 2>/dev/null ||
		sed -n 's/.*"token": "\(.*\)".*/\1/p' "$BACKCHANNEL_HOME/config.json"
}

# req NAME METHOD PATH TOKEN [BODY]: one request through relay NAME;
# sets STATUS, BODY and HEADERS.
req() {
	local url args=(-s -o "$BATS_TEST_TMPDIR/resp.body" -D "$BATS_TEST_TMPDIR/resp.head"
		-w '%{http_code}' -X "$2" -H 'Expect:' -H "Authorization: Bearer $4")
	eval "url=\$${1}_URL"
	[ $# -lt 5 ] || args+=(-H 'Content-Type: application/json' --data-binary "$5")
	STATUS=$(curl "${args[@]}" "$url$3")
	BODY=$(cat "$BATS_TEST_TMPDIR/resp.body")
	HEADERS=$(tr -d '\r' <"$BATS_TEST_TMPDIR/resp.head")
}

# sse NAME AGENT FILE: open AGENT's event stream through relay NAME into
# FILE; true once it started (a relay not yet subscribed answers 503).
sse() {
	local url
	eval "url=\$${1}_URL"
	curl -sN -H "Authorization: Bearer $(tok "$2")" "$url/v1/events/$2" \
		>"$3" 2>/dev/null &
	bgpid $!
	wait_for 3 grep -q '^retry:' "$3"
}

rcli() {
	redis-cli -s "$RDIR/redis.sock" "$@"
}

# hlen KEY OP N: test the size of hash KEY (for wait_for, which reruns it).
hlen() {
	[ "$(rcli HLEN "$1")" "$2" "$3" ]
}

@test "two relays on one Redis: register on A, send on A, drain on B" {
	relay A
	relay B
	join A alice
	join B bob
	run on B alice bch agents
	assert_success
	assert_output --partial alice
	assert_output --partial bob
	run on A alice bch send @bob "merged, rebase now"
	assert_success
	assert_output --partial "to @bob"
	run on B bob bch drain
	assert_success
	assert_output --partial "merged, rebase now"
	run on A bob bch drain
	assert_output "inbox empty"
	# Nothing of the room went to either relay's disk.
	[ ! -e "$BATS_TEST_TMPDIR/A.home/spool" ]
	[ ! -e "$BATS_TEST_TMPDIR/B.home/agents" ]
}

@test "a channel fans out at send time to the subscribers each relay registered" {
	relay A
	relay B
	join A alice
	join B bob
	join A carol
	on B bob bch sub '#dev' >/dev/null
	on A carol bch sub '#dev' >/dev/null
	on B alice bch sub '#dev' >/dev/null
	run on A bob bch channels
	assert_output "#dev"
	run on A alice bch send '#dev' "standup in 5"
	assert_success
	[ "$(rcli HLEN "bch:new:bob")" = 1 ]
	[ "$(rcli HLEN "bch:new:carol")" = 1 ]
	[ "$(rcli HLEN "bch:new:alice")" = 0 ]
	# Subscribing later does not deliver what was sent before.
	join B dave
	on B dave bch sub '#dev' >/dev/null
	run on A dave bch inbox
	assert_output "inbox empty"
	run on A bob bch drain --json
	assert_output --partial '"to":"#dev"'
	run on B carol bch drain
	assert_output --partial "standup in 5"
	# One reader's claim leaves the other's copy: both were read.
	run on A alice bch send '#nobody' hi
	assert_failure 100
	assert_output --partial "no other subscribers"
}

@test "inbox order is by ts then id, and scopes are the reader's filter" {
	relay A
	relay B
	join A alice
	join B bob
	on A alice bch send @bob one >/dev/null
	on B alice bch send @bob two --scope github.com/acme/api >/dev/null
	on A alice bch send @bob three >/dev/null
	run on B bob bch inbox --brief
	assert_success
	[ "${#lines[@]}" -eq 3 ]
	[[ ${lines[0]} == *one ]]
	[[ ${lines[1]} == *two ]]
	[[ ${lines[2]} == *three ]]
	run on A bob bch drain --match git@github.com:acme/web.git
	assert_output --partial one
	refute_output --partial two
	run on B bob bch drain --match https://github.com/acme/api
	assert_output --partial two
}

@test "an SSE watcher on B receives what was sent through A" {
	relay A
	relay B
	join A alice
	join B bob
	curl -sN -H "Authorization: Bearer $(tok bob)" "$B_URL/v1/events/bob" \
		>"$BATS_TEST_TMPDIR/sse.out" 2>/dev/null &
	bgpid $!
	wait_for 10 grep -q '^retry:' "$BATS_TEST_TMPDIR/sse.out"
	run on A alice bch send @bob "over the wire"
	assert_success
	wait_for 10 grep -q 'over the wire' "$BATS_TEST_TMPDIR/sse.out"
	id=$(sed -n 's/^id: //p' "$BATS_TEST_TMPDIR/sse.out" | head -1)
	[ -n "$id" ]
	# bch watch on A, reading the arrival that B published.
	# Not through on(): $! would be the subshell running it, and the
	# watch, which rides out its relay's end, would outlive the test.
	BACKCHANNEL_URL=$A_URL BACKCHANNEL_AGENT=bob bch watch --peek \
		>"$BATS_TEST_TMPDIR/watch.out" 2>&1 &
	bgpid $!
	sleep 0.5
	on B alice bch send @bob "second one" >/dev/null
	wait_for 10 grep -q 'second one' "$BATS_TEST_TMPDIR/watch.out"
}

@test "SSE resumes on the other relay: Last-Event-ID gets every unread message" {
	relay A
	relay B
	join A alice
	join A bob
	on A alice bch send @bob first >/dev/null
	id=$(rcli HKEYS bch:new:bob)
	on A alice bch send @bob second >/dev/null
	curl -sN -H "Authorization: Bearer $(tok bob)" -H "Last-Event-ID: $id" \
		"$B_URL/v1/events/bob" >"$BATS_TEST_TMPDIR/sse.out" 2>/dev/null &
	bgpid $!
	wait_for 10 grep -q '"body":"second"' "$BATS_TEST_TMPDIR/sse.out"
	grep -q '"body":"first"' "$BATS_TEST_TMPDIR/sse.out"
}

@test "a lease taken on A is acked on B; an expired one comes back" {
	relay A
	relay B
	join A alice
	join A bob
	on A alice bch send @bob leased >/dev/null
	id=$(rcli HKEYS bch:new:bob)
	req A POST /v1/take "$(tok bob)" "{\"id\":\"$id\",\"lease\":30}"
	[ "$STATUS" = 200 ]
	[[ $BODY == *leased* ]]
	[ "$(rcli HLEN bch:new:bob)" = 0 ]
	req B POST /v1/ack "$(tok bob)" "{\"id\":\"$id\"}"
	[ "$STATUS" = 200 ]
	req A POST /v1/ack "$(tok bob)" "{\"id\":\"$id\"}"
	[ "$STATUS" = 404 ]
	[ "$(rcli HLEN bch:claim:bob)" = 0 ]
	[ "$(rcli ZCARD bch:leases)" = 0 ]

	on A alice bch send @bob again >/dev/null
	id=$(rcli HKEYS bch:new:bob)
	req B POST /v1/take "$(tok bob)" "{\"id\":\"$id\",\"lease\":1}"
	[ "$STATUS" = 200 ]
	# Another take of a leased message finds nothing: one claimer.
	req A POST /v1/take "$(tok bob)" "{\"id\":\"$id\"}"
	[ "$BODY" = '{"message":null}' ]
	wait_for 10 hlen bch:new:bob -eq 1
	req A POST /v1/ack "$(tok bob)" "{\"id\":\"$id\"}"
	[ "$STATUS" = 404 ]
	# Released through A, then taken for good through B.
	req A POST /v1/take "$(tok bob)" "{\"id\":\"$id\",\"lease\":30}"
	req B POST /v1/release "$(tok bob)" "{\"id\":\"$id\"}"
	[ "$STATUS" = 200 ]
	run on B bob bch drain
	assert_output --partial again
}

@test "a retried send with the same client id is stored once, whichever relay gets it" {
	relay A
	relay B
	join A alice
	join A bob
	cid=6f1c2a4e-0000-4000-8000-000000000001
	req A POST /v1/send "$(tok alice)" "{\"to\":\"@bob\",\"body\":\"once\",\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	first=$BODY
	req B POST /v1/send "$(tok alice)" "{\"to\":\"@bob\",\"body\":\"once\",\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	[ "$BODY" = "$first" ]
	[ "$(rcli HLEN bch:new:bob)" = 1 ]
	# The id is the sender's: another sender's same id is another message.
	join B carol
	req B POST /v1/send "$(tok carol)" "{\"to\":\"@alice\",\"body\":\"mine\",\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	[ "$(rcli HLEN bch:new:alice)" = 1 ]
}

@test "a send under another sender's client id is 409 on Redis: no inbox, stream or record gets it" {
	relay A
	relay B
	join A alice
	join A bob
	join B carol
	join A dave
	on A bob bch sub '#dev' >/dev/null
	on B carol bch sub '#dev' >/dev/null
	cid=6f1c2a4e-0000-4000-8000-000000000011
	req A POST /v1/send "$(tok dave)" "{\"to\":\"@bob\",\"body\":\"the real one\",\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	sse B bob "$BATS_TEST_TMPDIR/sse.bob"
	sse A carol "$BATS_TEST_TMPDIR/sse.carol"
	wait_for 5 grep -q 'the real one' "$BATS_TEST_TMPDIR/sse.bob"
	# alice takes dave's id, to bob, and to the channel where only
	# bob's inbox holds it: nothing of either is stored.
	req B POST /v1/send "$(tok alice)" \
		"{\"to\":\"@bob\",\"body\":\"forged\",\"id\":\"$cid\",\"priority\":\"urgent\"}"
	[ "$STATUS" = 409 ]
	[ "$BODY" = '{"error":"message id already used by another message — send with a new id"}' ]
	req A POST /v1/send "$(tok alice)" "{\"to\":\"#dev\",\"body\":\"forged too\",\"id\":\"$cid\"}"
	[ "$STATUS" = 409 ]
	[ "$(rcli EXISTS "bch:sent:alice $cid")" = 0 ]
	# A send after them reaches both streams: anything before it would
	# have too.
	req B POST /v1/send "$(tok alice)" '{"to":"#dev","body":"after"}'
	[ "$STATUS" = 200 ]
	wait_for 5 grep -q '"body":"after"' "$BATS_TEST_TMPDIR/sse.bob"
	wait_for 5 grep -q '"body":"after"' "$BATS_TEST_TMPDIR/sse.carol"
	! grep -q forged "$BATS_TEST_TMPDIR/sse.bob" "$BATS_TEST_TMPDIR/sse.carol" || false
	[ "$(rcli HLEN bch:new:bob)" = 2 ]
	[ "$(rcli HLEN bch:new:carol)" = 1 ]
	rcli HGET bch:new:bob "$cid" | grep -q 'the real one'
	[ "$(rcli HEXISTS bch:new:carol "$cid")" = 0 ]
	# dave's retry is still one message.
	req B POST /v1/send "$(tok dave)" "{\"to\":\"@bob\",\"body\":\"the real one\",\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	[ "$(rcli HLEN bch:new:bob)" = 2 ]
}

@test "a channel send retried after its client id is forgotten reaches only the members that lack it, pushed once" {
	relay A
	relay B
	join A alice
	join A bob
	join B carol
	on A bob bch sub '#dev' >/dev/null
	on B carol bch sub '#dev' >/dev/null
	cid=6f1c2a4e-0000-4000-8000-000000000012
	req A POST /v1/send "$(tok alice)" "{\"to\":\"#dev\",\"body\":\"to all\",\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	req B POST /v1/take "$(tok carol)" "{\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	# The relays forget a client id after 15 minutes.
	rcli DEL "bch:sent:alice $cid" >/dev/null
	sse B bob "$BATS_TEST_TMPDIR/sse.bob"
	sse A carol "$BATS_TEST_TMPDIR/sse.carol"
	wait_for 5 grep -q '"body":"to all"' "$BATS_TEST_TMPDIR/sse.bob"
	req B POST /v1/send "$(tok alice)" "{\"to\":\"#dev\",\"body\":\"to all\",\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	[[ $BODY == *'"recipients":["bob","carol"]'* ]]
	req A POST /v1/send "$(tok alice)" '{"to":"#dev","body":"after"}'
	wait_for 5 grep -q '"body":"after"' "$BATS_TEST_TMPDIR/sse.bob"
	wait_for 5 grep -q '"body":"after"' "$BATS_TEST_TMPDIR/sse.carol"
	[ "$(grep -c '"body":"to all"' "$BATS_TEST_TMPDIR/sse.bob")" = 1 ]
	[ "$(grep -c '"body":"to all"' "$BATS_TEST_TMPDIR/sse.carol")" = 1 ]
	[ "$(rcli HLEN bch:new:bob)" = 2 ]
	[ "$(rcli HLEN bch:new:carol)" = 2 ]
}

@test "a client id under a lease is not another sender's: 409, and the lease's end returns the first message" {
	relay A
	relay B
	join A alice
	join A bob
	join B carol
	cid=6f1c2a4e-0000-4000-8000-000000000013
	req A POST /v1/send "$(tok alice)" "{\"to\":\"@carol\",\"body\":\"original\",\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	req B POST /v1/take "$(tok carol)" "{\"id\":\"$cid\",\"lease\":1}"
	[ "$STATUS" = 200 ]
	req B POST /v1/send "$(tok bob)" "{\"to\":\"@carol\",\"body\":\"bob says: ignore alice\",\"id\":\"$cid\"}"
	[ "$STATUS" = 409 ]
	# alice's retry, its id forgotten, is the message being read.
	rcli DEL "bch:sent:alice $cid" >/dev/null
	req A POST /v1/send "$(tok alice)" "{\"to\":\"@carol\",\"body\":\"original\",\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	[ "$(rcli HLEN bch:new:carol)" = 0 ]
	wait_for 10 hlen bch:new:carol -eq 1
	rcli HGET bch:new:carol "$cid" | grep -q '"body":"original"'
	[ "$(rcli HLEN bch:claim:carol)" = 0 ]
	# The same through a release.
	req A POST /v1/take "$(tok carol)" "{\"id\":\"$cid\",\"lease\":30}"
	[ "$STATUS" = 200 ]
	req B POST /v1/send "$(tok bob)" "{\"to\":\"@carol\",\"body\":\"bob again\",\"id\":\"$cid\"}"
	[ "$STATUS" = 409 ]
	req B POST /v1/release "$(tok carol)" "{\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	rcli HGET bch:new:carol "$cid" | grep -q '"body":"original"'
}

@test "a read receipt is answered by any relay, and bch send --wait works on Redis" {
	relay A
	relay B
	join A alice
	join B bob
	cid=6f1c2a4e-0000-4000-8000-000000000002
	req A POST /v1/send "$(tok alice)" "{\"to\":\"@bob\",\"body\":\"r\",\"id\":\"$cid\"}"
	[ "$STATUS" = 200 ]
	req B GET "/v1/receipt/$cid" "$(tok alice)"
	[ "$STATUS" = 200 ]
	[ "$BODY" = "{\"id\":\"$cid\",\"read\":[],\"unread\":[\"bob\"]}" ]
	on A bob bch drain >/dev/null
	req B GET "/v1/receipt/$cid" "$(tok alice)"
	[ "$BODY" = "{\"id\":\"$cid\",\"read\":[\"bob\"],\"unread\":[]}" ]
	req B GET "/v1/receipt/$cid" "$(tok bob)"
	[ "$STATUS" = 404 ]
	# bob reads it once it is there (not after a time that a slow
	# machine may take just to send it).
	(wait_for 20 hlen bch:new:bob -eq 1 && on B bob bch drain >/dev/null) &
	bgpid $!
	run on A alice bch send @bob "read me" --wait=10
	assert_success
	assert_line 'read by bob'
}

@test "the send rate is one bucket for all the relays" {
	relay A --rate 0.1
	relay B --rate 0.1
	join A alice
	join A bob
	# The bucket holds 10: spent through A, the next through B is refused.
	for i in 1 2 3 4 5 6 7 8 9 10; do
		req A POST /v1/send "$(tok alice)" "{\"to\":\"@bob\",\"body\":\"n$i\"}"
		[ "$STATUS" = 200 ]
	done
	req B POST /v1/send "$(tok alice)" "{\"to\":\"@bob\",\"body\":\"too many\"}"
	[ "$STATUS" = 429 ]
	grep -qi '^Retry-After: [1-9]' <<<"$HEADERS"
	# Another agent has a bucket of its own.
	req B POST /v1/send "$(tok bob)" "{\"to\":\"@alice\",\"body\":\"fine\"}"
	[ "$STATUS" = 200 ]
}

@test "a full inbox is refused with 507 by every relay, and nothing is dropped" {
	BACKCHANNEL_MAX_INBOX=2 relay A
	BACKCHANNEL_MAX_INBOX=2 relay B
	join A alice
	join A bob
	req A POST /v1/send "$(tok alice)" '{"to":"@bob","body":"1"}'
	req B POST /v1/send "$(tok alice)" '{"to":"@bob","body":"2"}'
	[ "$STATUS" = 200 ]
	req B POST /v1/send "$(tok alice)" '{"to":"@bob","body":"3"}'
	[ "$STATUS" = 507 ]
	[[ $BODY == *full* ]]
	req A POST /v1/send "$(tok alice)" '{"to":"@bob","body":"3"}'
	[ "$STATUS" = 507 ]
	[ "$(rcli HLEN bch:new:bob)" = 2 ]
	on A bob bch drain >/dev/null
	req B POST /v1/send "$(tok alice)" '{"to":"@bob","body":"3"}'
	[ "$STATUS" = 200 ]
}

@test "sends that arrive together are each answered once stored, each once" {
	relay A --rate 100000
	join A alice
	join A bob
	local k pids=()
	for k in 1 2 3 4 5 6; do
		for i in $(seq 1 40); do echo "{\"to\":\"@bob\",\"body\":\"m$k-$i\"}"; done |
			on A alice bch-send >"$BATS_TEST_TMPDIR/s$k.out" 2>"$BATS_TEST_TMPDIR/s$k.err" &
		pids+=($!)
	done
	# Meanwhile clients that send and hang up at once: what they asked
	# is stored, once, and nobody else's answer goes astray.
	local port=${A_URL##*:} b fd
	for i in $(seq 1 20); do
		b="{\"to\":\"@bob\",\"body\":\"gone$i\",\"id\":\"$(printf '%08x-0000-4000-8000-%012x' "$i" "$i")\"}"
		exec {fd}<>"/dev/tcp/127.0.0.1/$port"
		printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s' \
			"$(tok alice)" "${#b}" "$b" >&"$fd"
		exec {fd}>&-
	done
	for k in "${pids[@]}"; do wait "$k"; done
	cat "$BATS_TEST_TMPDIR"/s*.err
	[ -z "$(cat "$BATS_TEST_TMPDIR"/s*.err)" ]
	# 240 answers, 240 ids, and each message in bob's inbox once.
	[ "$(cat "$BATS_TEST_TMPDIR"/s*.out | wc -l)" -eq 240 ]
	[ "$(cat "$BATS_TEST_TMPDIR"/s*.out | awk '{ print $2 }' | sort -u | wc -l)" -eq 240 ]
	rcli HVALS bch:new:bob | sed -n 's/.*"body":"\([a-z0-9-]*\)".*/\1/p' | sort >got
	[ "$(grep -c '^m' got)" -eq 240 ]
	[ -z "$(uniq -d got)" ]
	wait_for 5 hlen bch:new:bob -eq 260
	[ "$(rcli HVALS bch:new:bob | grep -c '"body":"gone')" -eq 20 ]
	kill -0 "$A_PID"
}

@test "pipelined sends on one connection are answered in order, before what follows" {
	relay A --rate 100000
	join A alice
	join A bob
	local port=${A_URL##*:} fd b1 b2
	b1='{"to":"@bob","body":"first"}'
	b2='{"to":"@nobody","body":"lost"}'
	{
		printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s' "$(tok alice)" "${#b1}" "$b1"
		printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s' "$(tok alice)" "${#b2}" "$b2"
		printf 'POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s' "$(tok alice)" "${#b1}" "$b1"
		printf 'GET /v1/inbox/bob HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n' "$(tok bob)"
	} >q
	exec {fd}<>"/dev/tcp/127.0.0.1/$port"
	cat q >&"$fd"
	timeout 5 cat <&"$fd" | tr -d '\r' >answers || true
	exec {fd}>&-
	# The unknown recipient's 404 between the two sends, and the inbox
	# read after them holds both.
	[ "$(sed -n 's/^HTTP\/1\.1 \([0-9]*\) .*/\1/p' answers | tr '\n' ' ')" = '200 404 200 200 ' ]
	[ "$(tail -1 answers | grep -o '"body":"first"' | wc -l)" -eq 2 ]
}

@test "after a SCRIPT FLUSH, queued and single scripts are loaded again and succeed" {
	relay A --rate 100000
	join A alice
	join A bob
	on A alice bch send @bob "warm" >/dev/null
	# Five sends on five connections, written while the relay is
	# stopped and after a SCRIPT FLUSH: it reads them in one round and
	# queues their scripts together. Each is refused with NOSCRIPT; the
	# scripts are loaded once and each send goes again.
	run python3 - "${A_URL##*:}" "$(tok alice)" "$A_PID" "$RDIR/redis.sock" <<'PY'
import os, signal, socket, subprocess, sys, time
port, tok, pid, sock = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
os.kill(pid, signal.SIGSTOP)
try:
    # kill() returns before the relay has stopped.
    while open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[0] != "T":
        time.sleep(0.001)
    subprocess.run(["redis-cli", "-s", sock, "SCRIPT", "FLUSH"], check=True,
                   stdout=subprocess.DEVNULL)
    for i, s in enumerate(socks):
        body = '{"to":"@bob","body":"queued %d"}' % i
        s.sendall(("POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                   % (tok, len(body), body)).encode())
finally:
    os.kill(pid, signal.SIGCONT)
for s in socks:
    s.settimeout(10)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    print(got.split(b"\r\n")[0].decode())
PY
	assert_success
	[ "$(grep -c '^HTTP/1.1 200 ' <<<"$output")" -eq 5 ]
	# A script run alone (the inbox listing) after another flush.
	rcli SCRIPT FLUSH
	req A GET /v1/inbox/bob "$(tok bob)"
	[ "$STATUS" = 200 ]
	run on A bob bch drain
	assert_success
	for b in warm "queued 0" "queued 1" "queued 2" "queued 3" "queued 4"; do
		[ "$(grep -c "$b" <<<"$output")" -eq 1 ]
	done
	! grep -q ' 503 ' "$BATS_TEST_TMPDIR/A.log"
}

@test "a client that sends and half-closes still gets its answer" {
	relay A --rate 100000
	join A alice
	join A bob
	# 32,767 bytes: the relay's first read takes the whole request and
	# its second the end of input, in the same round as the send.
	run python3 - "${A_URL##*:}" "$(tok alice)" <<'PY'
import socket, sys
port, tok = int(sys.argv[1]), sys.argv[2]
for size in (32767, 300):
    head = ("POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            "Content-Length: %%d\r\n\r\n" % tok)
    pad = size - len(head % 0) - len('{"to":"@bob","body":""}')
    pad -= len(str(pad + 23)) - 1
    body = '{"to":"@bob","body":"%s"}' % ("x" * pad)
    req = (head % len(body) + body).encode()
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(req)
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    print(len(req), got.split(b"\r\n")[0].decode())
PY
	assert_success
	assert_line --index 0 --regexp '^3276[0-9] HTTP/1.1 200 OK$'
	assert_line --index 1 --regexp '^[0-9]+ HTTP/1.1 200 OK$'
	[ "$(rcli HLEN bch:new:bob)" = 2 ]
}

@test "a corrupt message in a Redis inbox is set aside, and the rest delivered" {
	relay A
	join A alice
	join A bob
	on A alice bch send @bob "the good one" >/dev/null
	rcli HSET bch:new:bob 0b5e5e5e-0000-4000-8000-000000000000 '{"not":"a message' >/dev/null
	run on A bob bch drain
	assert_success
	assert_output --partial "the good one"
	[ "$(rcli HLEN bch:new:bob)" = 0 ]
	[ "$(rcli HGET bch:corrupt:bob 0b5e5e5e-0000-4000-8000-000000000000)" = '{"not":"a message' ]
	grep -q "corrupt message in bob's inbox" "$BATS_TEST_TMPDIR/A.log"
}

@test "concurrent drainers split across A and B claim each message exactly once" {
	relay A
	relay B
	join A alice
	join B bob
	for i in $(seq 1 60); do echo "{\"to\":\"@bob\",\"body\":\"m$i\"}"; done |
		on A alice bch-send >/dev/null
	[ "$(rcli HLEN bch:new:bob)" = 60 ]
	local k pids=()
	for k in 1 2 3 4; do
		if [ $((k % 2)) = 0 ]; then r=A; else r=B; fi
		(for j in 1 2 3; do on "$r" bob bch drain --jsonl; done) \
			>"$BATS_TEST_TMPDIR/d$k.out" 2>"$BATS_TEST_TMPDIR/d$k.err" &
		pids+=($!)
	done
	for k in "${pids[@]}"; do wait "$k"; done
	cat "$BATS_TEST_TMPDIR"/d*.out | sed -n 's/.*"body":"\(m[0-9]*\)".*/\1/p' |
		sort >"$BATS_TEST_TMPDIR/got"
	[ "$(wc -l <"$BATS_TEST_TMPDIR/got")" -eq 60 ]
	[ -z "$(uniq -d "$BATS_TEST_TMPDIR/got")" ]
	[ "$(rcli HLEN bch:new:bob)" = 0 ]
	[ "$(rcli HLEN bch:claim:bob)" = 0 ]
}

@test "503 with Retry-After while Redis is down; both relays recover without a restart" {
	relay A
	relay B
	join A alice
	join B bob
	on A alice bch send @bob "before" >/dev/null
	sh "$T_ROOT/t/redis-server" stop "$RDIR"
	req A POST /v1/send "$(tok alice)" '{"to":"@bob","body":"lost?"}'
	[ "$STATUS" = 503 ]
	grep -qi '^Retry-After: [1-9]' <<<"$HEADERS"
	req B GET /v1/inbox/bob "$(tok bob)"
	[ "$STATUS" = 503 ]
	req B GET /v1/events/bob "$(tok bob)"
	[ "$STATUS" = 503 ]
	req A GET /v1/health x
	[ "$STATUS" = 200 ]
	SPOOL=$(sh "$T_ROOT/t/redis-server" start "$RDIR" --appendfsync always)
	wait_for 15 on A alice bch send @bob "after" >/dev/null 2>&1
	# Both relays answer again, subscriptions included.
	wait_for 15 sse B bob "$BATS_TEST_TMPDIR/sse.out"
	wait_for 10 grep -q '"body":"after"' "$BATS_TEST_TMPDIR/sse.out"
	on A alice bch send @bob "pushed" >/dev/null
	wait_for 10 grep -q '"body":"pushed"' "$BATS_TEST_TMPDIR/sse.out"
	run on B bob bch drain
	assert_output --partial before
	assert_output --partial after
	refute_output --partial "lost?"
	grep -q 'subscribed to arrivals' "$BATS_TEST_TMPDIR/B.log"
}

@test "a Redis that stops answering holds the relay up once, then is probed briefly" {
	relay A
	join A alice
	join A bob
	on A alice bch send @bob "before" >/dev/null
	local rpid t i
	rpid=$(cat "$RDIR/redis.pid")
	kill -STOP "$rpid"
	# The first send waits out the command timeout (3 s) and is refused.
	req A POST /v1/send "$(tok alice)" '{"to":"@bob","body":"one"}'
	[ "$STATUS" = 503 ]
	# The relay does not wait on the frozen server again with every
	# request (3 s each, the whole relay stopped): it refuses at once for
	# a while, then tries a short probe. None of these waits a second.
	for i in 1 2 3 4 5 6; do
		t=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' -m 10 \
			-H "Authorization: Bearer $(tok alice)" -d '{"to":"@bob","body":"frozen"}' \
			"$A_URL/v1/send")
		echo "send $i: $t"
		[ "${t% *}" = 503 ]
		awk -v t="${t#* }" 'BEGIN { exit !(t < 1) }'
		sleep 0.5
	done
	kill -CONT "$rpid"
	wait_for 15 on A alice bch send @bob "after" >/dev/null 2>&1
	run on A bob bch drain
	assert_output --partial before
	assert_output --partial after
	refute_output --partial frozen
}

@test "a relay started while Redis is down answers 503, then serves once it is up" {
	sh "$T_ROOT/t/redis-server" stop "$RDIR"
	relay A
	grep -q 'unavailable' "$BATS_TEST_TMPDIR/A.log"
	req A POST /v1/register "$ROOM" '{"name":"alice"}'
	[ "$STATUS" = 503 ]
	grep -qi '^Retry-After: [1-9]' <<<"$HEADERS"
	SPOOL=$(sh "$T_ROOT/t/redis-server" start "$RDIR" --appendfsync always)
	wait_for 10 join A alice
	join A bob
	wait_for 15 sse A bob "$BATS_TEST_TMPDIR/sse.out"
	on A alice bch send @bob "late start" >/dev/null
	wait_for 10 grep -q '"body":"late start"' "$BATS_TEST_TMPDIR/sse.out"
}

@test "sends under a Redis restart either fail or are delivered, none twice" {
	relay A
	relay B
	join A alice
	join B bob
	(for i in $(seq 1 80); do
		if on A alice bch send @bob "load $i" >/dev/null 2>&1; then echo "load $i"; fi
	done) >"$BATS_TEST_TMPDIR/acked" &
	local sender=$!
	sleep 0.3
	sh "$T_ROOT/t/redis-server" stop "$RDIR"
	sleep 0.5
	SPOOL=$(sh "$T_ROOT/t/redis-server" start "$RDIR" --appendfsync always)
	wait "$sender"
	on B bob bch drain --jsonl | sed -n 's/.*"body":"\(load [0-9]*\)".*/\1/p' |
		sort >"$BATS_TEST_TMPDIR/got"
	sort "$BATS_TEST_TMPDIR/acked" >"$BATS_TEST_TMPDIR/want"
	[ -s "$BATS_TEST_TMPDIR/want" ]
	# Every acknowledged send is there, and no message twice.
	[ -z "$(comm -23 "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got")" ]
	[ -z "$(uniq -d "$BATS_TEST_TMPDIR/got")" ]
}

@test "SIGKILL of a relay loses nothing acknowledged, and strands no lease" {
	relay A
	relay B
	join A alice
	join B bob
	(for i in $(seq 1 400); do
		on A alice bch send @bob "k $i" >/dev/null 2>&1 || break
		echo "k $i"
	done) >"$BATS_TEST_TMPDIR/acked" &
	local sender=$!
	wait_for 10 hlen bch:new:bob -ge 20
	# Leased takes through A, in flight when it dies.
	for id in $(rcli HKEYS bch:new:bob | head -5); do
		req A POST /v1/take "$(tok bob)" "{\"id\":\"$id\",\"lease\":2}"
	done
	kill -9 "$A_PID"
	[ "$(rcli HLEN bch:claim:bob)" -ge 1 ]
	wait "$sender"
	wait_for 10 hlen bch:claim:bob -eq 0
	on B bob bch drain --jsonl | sed -n 's/.*"body":"\(k [0-9]*\)".*/\1/p' |
		sort >"$BATS_TEST_TMPDIR/got"
	sort "$BATS_TEST_TMPDIR/acked" >"$BATS_TEST_TMPDIR/want"
	[ -s "$BATS_TEST_TMPDIR/want" ]
	[ -z "$(comm -23 "$BATS_TEST_TMPDIR/want" "$BATS_TEST_TMPDIR/got")" ]
	[ -z "$(uniq -d "$BATS_TEST_TMPDIR/got")" ]
}

@test "tokens are found in Redis: a relay started later knows every agent" {
	relay A
	join A alice
	join A bob
	relay B
	run on B alice bch send @bob hi
	assert_success
	# A name registered through one relay is taken on the other.
	req B POST /v1/register "$ROOM" '{"name":"alice"}'
	[ "$STATUS" = 409 ]
	req B GET /v1/agents not-a-token
	[ "$STATUS" = 401 ]
	[ "$(rcli HLEN bch:tokens)" = 2 ]
}

# A head with a token no one has was told 100 Continue, and its body
# read, before the 401; a relay that does not hold the token itself
# looks it up in Redis from the head alone.
@test "a relay refuses a head whose token Redis does not know with 401, and takes one it does" {
	relay A
	join A alice
	join A bob
	relay B
	run timeout 30 python3 -c '
import socket, sys
port = int(sys.argv[1].rsplit(":", 1)[1])
body = b"{\"to\":\"@bob\",\"body\":\"head first\""
body += b" " * (300000 - len(body) - 1) + b"}"
for tok in (sys.argv[2], "0123456789abcdef0123456789abcdef"):
    c = socket.create_connection(("127.0.0.1", port))
    c.settimeout(5)
    c.sendall(b"POST /v1/send HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
              b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % (tok.encode(), len(body)))
    a = c.recv(65536)
    print(a.split(b"\r\n")[0].decode())
    if a.startswith(b"HTTP/1.1 100 "):
        c.sendall(body)
        print(c.recv(65536).split(b"\r\n")[0].decode())
    c.close()
' "$B_URL" "$(tok alice)"
	assert_output "HTTP/1.1 100 Continue
HTTP/1.1 200 OK
HTTP/1.1 401 Unauthorized"
}

# reg_at NAME AGENT TOKEN: register AGENT through relay NAME with the
# room token and the chosen TOKEN; prints the status.
reg_at() {
	local url
	eval "url=\$${1}_URL"
	curl -s -o "$BATS_TEST_TMPDIR/reg.$1" -w '%{http_code}' -X POST -H 'Expect:' \
		-H "Authorization: Bearer $ROOM" -H 'Content-Type: application/json' \
		--data-binary "{\"name\":\"$2\",\"token\":\"$3\"}" "$url/v1/register"
}

@test "a chosen token registered through two relays at once is one name's; the same again is a refresh" {
	relay A
	relay B
	local i t h pa pb got
	for i in $(seq 1 30); do
		# Two names, one token: one of them gets it.
		t=$(printf '%064d' "$i")
		h=$(printf %s "$t" | sha256sum | cut -c1-64)
		reg_at A "ya$i" "$t" >"$BATS_TEST_TMPDIR/st.a" &
		pa=$!
		reg_at B "yb$i" "$t" >"$BATS_TEST_TMPDIR/st.b" &
		pb=$!
		wait "$pa" "$pb"
		got="$(cat "$BATS_TEST_TMPDIR/st.a") $(cat "$BATS_TEST_TMPDIR/st.b")"
		case $got in
		"201 409") [ "$(rcli HGET bch:tokens "$h")" = "ya$i" ] &&
			[ "$(rcli EXISTS "bch:agent:yb$i")" = 0 ] ;;
		"409 201") [ "$(rcli HGET bch:tokens "$h")" = "yb$i" ] &&
			[ "$(rcli EXISTS "bch:agent:ya$i")" = 0 ] ;;
		*)
			echo "two names, one token: $got"
			false
			;;
		esac
		# One name and its token through both (a retry of a lost
		# answer): registered once, the other a refresh.
		t=$(printf 'b%063d' "$i")
		reg_at A "yc$i" "$t" >"$BATS_TEST_TMPDIR/st.a" &
		pa=$!
		reg_at B "yc$i" "$t" >"$BATS_TEST_TMPDIR/st.b" &
		pb=$!
		wait "$pa" "$pb"
		got="$(cat "$BATS_TEST_TMPDIR/st.a") $(cat "$BATS_TEST_TMPDIR/st.b")"
		[ "$got" = "201 200" ] || [ "$got" = "200 201" ] || {
			echo "one name, one token: $got"
			false
		}
		grep -q "\"token\": \"$t\"" "$BATS_TEST_TMPDIR/reg.A"
		grep -q "\"token\": \"$t\"" "$BATS_TEST_TMPDIR/reg.B"
	done
	[ "$(rcli HLEN bch:tokens)" = 60 ]
}

@test "the Redis password comes from a file or the environment, never argv" {
	sh "$T_ROOT/t/redis-server" stop "$RDIR"
	SPOOL=$(sh "$T_ROOT/t/redis-server" start "$RDIR" --requirepass s3cret-pw)
	printf 's3cret-pw\n' >"$BATS_TEST_TMPDIR/pw"
	relay A --redis-password-file "$BATS_TEST_TMPDIR/pw"
	REDIS_PASSWORD=s3cret-pw relay B
	join A alice
	join B bob
	run on B alice bch send @bob secret
	assert_success
	! grep -q s3cret /proc/"$A_PID"/cmdline || false
	printf 'wrong\n' >"$BATS_TEST_TMPDIR/bad"
	run -100 bch-relayd --home "$BATS_TEST_TMPDIR/c" --port 0 --token "$ROOM" \
		--spool "$SPOOL" --redis-password-file "$BATS_TEST_TMPDIR/bad"
	assert_output --partial "check the URL and the password"
	run -100 bch-relayd --home "$BATS_TEST_TMPDIR/c" --port 0 --token "$ROOM" \
		--spool "redis://:pw@127.0.0.1:1/0"
	assert_output --partial "does not go in the spool URL"
	run -100 bch-relayd --home "$BATS_TEST_TMPDIR/c" --port 0 --token "$ROOM" \
		--spool "http://127.0.0.1/"
	assert_output --partial "redis://"
}

@test "a malformed spool URL is refused with 100 and one line naming it" {
	local u long
	# A socket path longer than sun_path holds, which hiredis would cut
	# short and so dial another socket; a host name over 255 bytes.
	long=$(printf '%0120d' 0)
	for u in 'redis://127.0.0.1:12x/0' 'redis://127.0.0.1:70000' 'redis://127.0.0.1:6379/x' \
		'redis://[::1' 'redis://[::1]x' 'redis://:6379' 'unix://relative.sock' \
		'unix:///tmp/r.sock?db=-1' 'unix:///tmp/r.sock?prefix=a%20b' 'unix:///tmp/r.sock?x=1' \
		"unix:///tmp/$long.sock" "redis://$long$long$long:6379"; do
		run -100 timeout 10 bch-relayd --home "$BATS_TEST_TMPDIR/c" --port 0 --token "$ROOM" --spool "$u"
		[ "${#lines[@]}" -eq 1 ] || { echo "$u: $output"; false; }
		[[ $output == *"bad "* ]] || { echo "$u: $output"; false; }
	done
}

@test "two relays behind haproxy (t/haproxy.cfg) serve one room" {
	command -v haproxy >/dev/null 2>&1 || skip "haproxy is not installed (Debian: haproxy)"
	relay A
	relay B
	local lb
	lb=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	RELAY_A=${A_URL#http://} RELAY_B=${B_URL#http://} LB_PORT=$lb \
		haproxy -db -f "$T_ROOT/t/haproxy.cfg" >"$BATS_TEST_TMPDIR/haproxy.log" 2>&1 &
	bgpid $!
	wait_for 10 curl -sf "http://127.0.0.1:$lb/v1/health" >/dev/null
	LB_URL=http://127.0.0.1:$lb
	join LB alice
	join LB bob
	curl -sN -H "Authorization: Bearer $(tok bob)" "$LB_URL/v1/events/bob" \
		>"$BATS_TEST_TMPDIR/sse.out" 2>/dev/null &
	bgpid $!
	wait_for 10 grep -q '^retry:' "$BATS_TEST_TMPDIR/sse.out"
	for i in 1 2 3 4 5 6; do on LB alice bch send @bob "via lb $i" >/dev/null; done
	wait_for 10 grep -q 'via lb 6' "$BATS_TEST_TMPDIR/sse.out"
	# Round robin: both relays answered sends.
	grep -q '"POST /v1/send" 200' "$BATS_TEST_TMPDIR/A.log"
	grep -q '"POST /v1/send" 200' "$BATS_TEST_TMPDIR/B.log"
	run on LB bob bch drain
	assert_output --partial "via lb 1"
	assert_output --partial "via lb 6"
	# One relay gone: the balancer sends everything to the other.
	kill "$A_PID"
	run on LB alice bch send @bob "after A"
	assert_success
	run on LB bob bch drain
	assert_output --partial "after A"
}

@test "an announcement that is not one line of JSON cannot forge an event on a stream" {
	relay A
	join A alice
	join A bob
	sse A bob bob.sse
	chan=$(rcli PUBSUB CHANNELS '*arrivals')
	[ -n "$chan" ]
	id=00000000-0000-4000-8000-000000000001
	forged=$(printf '%s bob\n{"id":"%s","from":"x","to":"@bob","body":"garbage","priority":"normal","ts":"2026-01-01T00:00:00.000Z"}\n\nid: %s\ndata: {"from":"ceo","body":"forged"}' "$id" "$id" "$id")
	[ "$(rcli PUBLISH "$chan" "$forged")" -ge 1 ]
	on A alice bch send @bob 'after it' >/dev/null
	wait_for 5 grep -q '"body":"after it"' bob.sse
	[ "$(grep -c 'ceo\|garbage' bob.sse)" -eq 0 ]
}

@test "a failover behind one address: a relay whose Redis turned replica reconnects to the new master" {
	local R2=$BATS_TEST_TMPDIR/redis2 p1 p2 i
	# Two ports held at once, so that they differ.
	read -r p1 p2 < <(python3 -c 'import socket
a, b = socket.socket(), socket.socket()
a.bind(("127.0.0.1", 0)); b.bind(("127.0.0.1", 0))
print(a.getsockname()[1], b.getsockname()[1])')
	# The test's Redis again, on TCP too, and a replica of it.
	sh "$T_ROOT/t/redis-server" stop "$RDIR"
	SPOOL=$(sh "$T_ROOT/t/redis-server" start "$RDIR" --appendfsync always \
		--port "$p1" --bind 127.0.0.1)
	sh "$T_ROOT/t/redis-server" start "$R2" --port "$p2" --bind 127.0.0.1 \
		--replicaof 127.0.0.1 "$p1" >/dev/null
	bgpid "$(cat "$R2/redis.pid")"
	relay A
	join A alice
	join A bob
	wait_for 10 sh -c "redis-cli -s '$R2/redis.sock' INFO replication | grep -q master_link_status:up"
	on A alice bch send @bob "before" >/dev/null
	[ "$(rcli WAIT 1 5000)" = 1 ]
	# Failover: the replica is promoted, the old master follows it, and
	# the address (the socket's path) now leads to the new master.
	redis-cli -s "$R2/redis.sock" REPLICAOF NO ONE
	rcli REPLICAOF 127.0.0.1 "$p2"
	wait_for 10 sh -c "redis-cli -s '$RDIR/redis.sock' INFO replication | grep -q master_link_status:up"
	mv "$R2/redis.sock" "$RDIR/redis.sock"
	wait_for 15 on A alice bch send @bob "after" >/dev/null 2>&1
	run on A bob bch drain
	assert_output --partial before
	assert_output --partial after
	run redis-cli -s "$RDIR/redis.sock" ROLE
	assert_line --index 0 master
}
