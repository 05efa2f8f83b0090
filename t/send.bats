#!/usr/bin/env bats
load helper
bats_require_minimum_version 1.5.0

local_setup() { agents alice bob; }

@test "send prints the short id and the target" {
	run bch send @bob PR 42 merged, rebase now
	assert_success
	assert_output --regexp '^sent [0-9a-f]{8} to @bob$'
	[ "$(count_new bob)" -eq 1 ]
}

@test "a bare agent name means @agent" {
	run bch send bob hello
	assert_success
	assert_output --regexp ' to @bob$'
	run as bob bch drain --jsonl
	assert_output --partial '"to":"@bob"'
}

@test "the stored file has exactly the protocol fields, named by its id" {
	bch send @bob hi --urgent --scope acme/api --thread t1 --ref a.ts --ref https://x/1
	id=$(new_ids bob)
	[[ $id =~ ^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$ ]]
	run new_json bob "$id"
	assert_output --regexp "^\{\"id\":\"$id\",\"from\":\"alice\",\"to\":\"@bob\",\"body\":\"hi\",\"priority\":\"urgent\",\"scope\":\"acme/api\",\"thread\":\"t1\",\"refs\":\[\"a.ts\",\"https://x/1\"\],\"ts\":\"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z\"\}$"
	on_redis || [ "$(ls "$BACKCHANNEL_HOME/spool/bob/new/")" = "$id.json" ]
	on_redis || [ "$(stat -c %a "$BACKCHANNEL_HOME/spool/bob/new/$id.json")" = 600 ]
}

@test "optional fields are omitted when empty" {
	bch send @bob plain
	run new_json bob
	refute_output --partial scope
	refute_output --partial thread
	refute_output --partial refs
	assert_output --partial '"priority":"normal"'
}

@test "send to an unknown agent fails with 100 and a clear line" {
	run bch send @carol hi
	assert_failure 100
	assert_output 'bch-send: unknown agent "carol" — they must run bch init carol first'
}

@test "hostile names are refused before anything touches the disk" {
	for t in '@../x' '@a/b' '@' '#' '@.hidden' "@$(printf 'a%.0s' {1..65})" '@a b' '#../etc'; do
		run bch send "$t" hi
		assert_failure 100
		assert_output --partial 'invalid target'
	done
	[ ! -e "$BACKCHANNEL_HOME/spool/x" ]
	[ ! -e "$BACKCHANNEL_HOME/etc" ]
	[ "$(find "$BACKCHANNEL_HOME/spool" -name '*.json' | wc -l)" -eq 0 ]
	if on_redis; then
		keys=$(rcli KEYS "$BCH_ROOM:new:*")
		[ -z "$keys" ]
	fi
}

@test "a 64-byte name is accepted, 65 is not" {
	n64=$(printf 'a%.0s' {1..64})
	run as "$n64" relay_init "$n64"
	assert_success
	run bch send "@$n64" hi
	assert_success
	run relay_init "${n64}b"
	assert_failure 100
}

@test "an empty body is refused" {
	run bch send @bob ''
	assert_failure 100
	assert_output --partial 'empty body'
	run bch send @bob
	assert_failure 2
}

@test "a body over 64 KiB is refused whole, one at the limit goes through" {
	head -c 65536 /dev/zero | tr '\0' a > ok.txt
	run bch send @bob - < ok.txt
	assert_success
	head -c 65537 /dev/zero | tr '\0' a > big.txt
	run bch send @bob - < big.txt
	assert_failure 100
	assert_output --partial 'over the limit'
	[ "$(count_new bob)" -eq 1 ]
}

@test "the body limit is configurable" {
	run env BACKCHANNEL_MAX_BODY=10 bch send @bob 0123456789A
	assert_failure 100
	run env BACKCHANNEL_MAX_BODY=10 bch send @bob 0123456789
	assert_success
}

@test "send - reads the body from stdin, keeping newlines" {
	printf 'line one\nline two\n' | bch send @bob -
	run as bob bch drain --jsonl
	assert_output --partial '"body":"line one\nline two\n"'
}

@test "send - refuses a body holding NUL, rather than sending the part before it" {
	printf 'hello\0secret' > nul.txt
	run --separate-stderr bch send @bob - < nul.txt
	assert_failure 100
	[ -z "$output" ]
	assert_equal "$stderr" 'bch-send: the body on standard input holds NUL — a body must be a string without NUL'
	[ "$(count_new bob)" -eq 0 ]
}

@test "flags may come before or after the words" {
	bch send --urgent @bob before
	bch send @bob after --urgent
	run as bob bch drain --jsonl
	[ "$(grep -c '"priority":"urgent"' <<<"$output")" -eq 2 ]
}

@test "a number after a bare --wait is refused with 2, not sent as part of the message" {
	# On a regression it would wait 300 s for bob.
	run --separate-stderr timeout 10 bch send @bob deploy done --wait 30
	assert_failure 2
	assert_output ''
	[[ ${stderr%%$'\n'*} == 'bch-send: --wait 30 is ambiguous — write --wait=30 '* ]]
	[ "$(count_new bob)" -eq 0 ]
	run --separate-stderr bch send --wait 7 @bob deploy done
	assert_failure 2
	[ "$(count_new bob)" -eq 0 ]
	# Joined to the option, the seconds are taken and the message kept whole.
	run bch send @bob --wait=1 'deploy done 30'
	assert_failure 111
	assert_line --regexp '^sent [0-9a-f]{8} to @bob$'
	run as bob bch drain --jsonl
	assert_output --partial '"body":"deploy done 30"'
}

@test "a message that starts with a dash: the bad option line says to put -- before it" {
	run --separate-stderr bch send @bob -1 on that PR
	assert_failure 2
	assert_equal "${stderr%%$'\n'*}" 'bch-send: bad option -1 (unknown, or missing its value) — put -- before a message that starts with -'
	# An option that lacks its value gets no such hint.
	run --separate-stderr bch send @bob hi -s
	assert_failure 2
	assert_equal "${stderr%%$'\n'*}" 'bch-send: bad option -s (unknown, or missing its value)'
	run bch send @bob -- -1 on that PR
	assert_success
}

@test "a message that starts with an unknown long option: the line says to put -- before it" {
	run --separate-stderr bch send @bob --foo bar
	assert_failure 2
	assert_equal "${stderr%%$'\n'*}" 'bch-send: bad option --foo (unknown, or missing its value) — put -- before a message that starts with -'
	# A known long option that lacks its value gets no such hint.
	run --separate-stderr bch send @bob hi --scope
	assert_failure 2
	assert_equal "${stderr%%$'\n'*}" 'bch-send: bad option --scope (unknown, or missing its value)'
	[ "$(count_new bob)" -eq 0 ]
}

@test "a bad option is named as typed, not by the word before it" {
	run --separate-stderr bch send @bob hi -w5
	assert_failure 2
	[[ ${stderr%%$'\n'*} == 'bch-send: bad option -w '* ]]
	run --separate-stderr bch send @bob hi --urgent -x
	assert_failure 2
	[[ ${stderr%%$'\n'*} == 'bch-send: bad option -x '* ]]
	run --separate-stderr bch send @bob hi --scope
	assert_failure 2
	[[ ${stderr%%$'\n'*} == 'bch-send: bad option --scope '* ]]
	run --separate-stderr bch send @bob hi --bogus
	assert_failure 2
	[[ ${stderr%%$'\n'*} == 'bch-send: bad option --bogus '* ]]
	[ "$(count_new bob)" -eq 0 ]
}

@test "channel fan-out copies to every subscriber but the sender" {
	agents alice bob carol dave
	as bob bch sub '#dev' >/dev/null
	as carol bch sub '#dev' >/dev/null
	as alice bch sub '#dev' >/dev/null
	run bch send '#dev' standup in 5
	assert_success
	assert_output --regexp '^sent [0-9a-f]{8} to #dev$'
	[ "$(count_new bob)" -eq 1 ]
	[ "$(count_new carol)" -eq 1 ]
	[ "$(count_new alice)" -eq 0 ]
	[ "$(count_new dave)" -eq 0 ]
	b=$(new_ids bob) c=$(new_ids carol)
	[ "$b" = "$c" ]
	new_json carol "$c" | grep -q '"to":"#dev"'
}

@test "one subscriber's claim leaves the other's copy" {
	agents alice bob carol
	as bob bch sub '#dev' >/dev/null
	as carol bch sub '#dev' >/dev/null
	bch send '#dev' shared
	as bob bch drain >/dev/null
	run as carol bch drain
	assert_output --partial shared
}

@test "a channel with no other subscriber is an error, not a no-op" {
	bch sub '#solo' >/dev/null
	run bch send '#solo' anyone
	assert_failure 100
	assert_output 'bch-send: channel #solo has no other subscribers — nothing to deliver'
	run bch send '#nobody' anyone
	assert_failure 100
}

@test "JSON lines on stdin send many messages" {
	printf '%s\n' '{"to":"@bob","body":"one"}' '{"to":"bob","body":"two","priority":"urgent"}' \
		'{"to":"@bob","body":"three","refs":["x"],"scope":"s","thread":"t"}' > in.jsonl
	run bch-send < in.jsonl
	assert_success
	[ "${#lines[@]}" -eq 3 ]
	[ "$(count_new bob)" -eq 3 ]
}

@test "bad JSON lines are reported by number and skipped; the rest go through" {
	printf '%s\n' '{"to":"@bob","body":"one"}' '{"to":"@bob" "body":"x"}' 'not json' \
		'{"to":"@../x","body":"y"}' '{"to":"@bob","body":""}' '{"to":"@bob","body":"five","priority":"high"}' \
		'{"to":"@bob","body":"six"}' > in.jsonl
	run bch-send < in.jsonl
	assert_failure 100
	assert_line --partial 'line 2: malformed JSON'
	assert_line --partial 'line 3: malformed JSON'
	assert_line --partial 'line 4: invalid target'
	assert_line --partial 'line 5: empty body'
	assert_line --partial 'line 6: priority must be'
	[ "$(count_new bob)" -eq 2 ]
}

@test "a stdin line whose body or target is null says it is no string, not that it is missing" {
	printf '%s\n' '{"to":"@bob","body":null}' '{"to":null,"body":"x"}' \
		'{"to":"@bob"}' '{"to":"@bob","body":"four","scope":null}' > in.jsonl
	run --separate-stderr bch-send < in.jsonl
	assert_failure 100
	assert_output --regexp '^sent [0-9a-f]{8} to @bob$'
	[ "$stderr" = 'bch-send: line 1: field "body" must be a string — skipped
bch-send: line 2: field "to" must be a string — skipped
bch-send: line 3: missing field "body" — skipped' ]
	[ "$(count_new bob)" -eq 1 ]
}

@test "a stdin line whose text holds \\u0000 or a lone surrogate is sent as U+FFFD; one whose target does is refused" {
	printf '%s\n' '{"to":"@bob","body":"cut \ud83d, nul \u0000 end","refs":["r\udc00"]}' \
		'{"to":"@bob\u0000","body":"x"}' '{"to":"@bob\ud800","body":"y"}' > in.jsonl
	run bch-send < in.jsonl
	assert_failure 100
	assert_line --partial 'line 2: field "to" is over its limit of 80 bytes or holds a \u0000 or lone surrogate escape'
	assert_line --partial 'line 3: field "to"'
	[ "$(count_new bob)" -eq 1 ]
	run as bob bch drain --jsonl
	assert_output --partial '"body":"cut �, nul � end","priority":"normal","refs":["r�"]'
}

# acked N: the file acked holds N "sent" lines.
acked() { [ "$(grep -c '^sent [0-9a-f]\{8\} to @bob$' acked)" -eq "$1" ]; }
# bob_has N: bob has N messages waiting.
bob_has() { [ "$(count_new bob)" -eq "$1" ]; }

@test "a slow stream on stdin is acknowledged line by line, not at its end" {
	mkfifo in
	bch-send < in > acked &
	bg_pid $!
	exec 5> in
	echo '{"to":"@bob","body":"first"}' >&5
	# The stream stays open: the first line is sent and said so already.
	wait_for 10 acked 1
	bob_has 1
	# A blank line and a bad one after a good one hold nothing back.
	printf '{"to":"@bob","body":"second"}\n\nnot json\n' >&5
	wait_for 10 acked 2
	# Nor does half a line: what came before it is acknowledged.
	printf '{"to":"@bob","body":"third"}\n{"to":"@bob",' >&5
	wait_for 10 acked 3
	echo '"body":"fourth"}' >&5
	wait_for 10 acked 4
	exec 5>&-
	wait_for 10 bob_has 4
}

@test "input that keeps bch-send busy is acknowledged as it goes, not at its end" {
	local_only "the syncs that take the time are the local spool's"
	# On tmpfs an fsync costs nothing: the sends would outrun the bound.
	[ "$(stat -f -c %T "$BACKCHANNEL_HOME")" != tmpfs ] ||
		skip "the spool is on tmpfs, where fsync takes no time"
	export BACKCHANNEL_FSYNC=1
	pad=$(head -c 2000 /dev/zero | tr '\0' x)
	for i in $(seq 1000); do
		printf '{"to":"@bob","body":"busy %d %s"}\n' "$i" "$pad"
	done >lines
	mkfifo in
	bch-send < in > acked &
	bg_pid $!
	exec 5> in
	# 2 MB written as fast as bch-send reads, an fsync for each: input
	# is always waiting, and only the 100 ms bound ends a batch. cat
	# returns once what is left fits the pipe and bch-send's buffer.
	cat lines >&5
	n=$(wc -l < acked)
	echo "# $n acknowledged while the last lines waited" >&3
	[ "$n" -gt 0 ]
	exec 5>&-
	wait_for 30 acked 1000
	bob_has 1000
}

@test "--wait on stdin says which message each read line is about" {
	a=aaaa1111-0000-4000-8000-000000000001
	b=bbbb2222-0000-4000-8000-000000000002
	printf '%s\n' "{\"to\":\"@bob\",\"body\":\"one\",\"id\":\"$a\"}" \
		"{\"to\":\"@bob\",\"body\":\"two\",\"id\":\"$b\"}" >in.jsonl
	( wait_for 10 bob_has 2 && as bob bch read "$b" >/dev/null ) &
	bg_pid $!
	run --separate-stderr bch-send --wait=3 <in.jsonl
	assert_failure 111
	assert_output "sent aaaa1111 to @bob
sent bbbb2222 to @bob
read bbbb2222 by bob"
	[ "$stderr" = "bch-send: aaaa1111 not read by bob after 3 s — it stays queued" ]
}

# The deadline of --wait was kept in whole seconds of the clock: started
# late in a second, with its first message read at once, it gave up on
# the next one and said "after 3 s" a little over 2 s in.
@test "--wait=3 on stdin waits 3 s for the last message, wherever in a second it starts" {
	a=aaaa1111-0000-4000-8000-000000000001
	b=bbbb2222-0000-4000-8000-000000000002
	printf '%s\n' "{\"to\":\"@bob\",\"body\":\"one\",\"id\":\"$a\"}" \
		"{\"to\":\"@bob\",\"body\":\"two\",\"id\":\"$b\"}" >in.jsonl
	# Start in the last tenth of a second; the first is read once the
	# clock's second has turned.
	until [ "$(date +%N)" -ge 900000000 ]; do :; done
	t0=$(date +%s%N)
	(
		wait_for 10 bob_has 2
		until [ "$(date +%s)" -gt "${t0:0:-9}" ]; do sleep 0.01; done
		as bob bch read "$a" >/dev/null
	) &
	bg_pid $!
	run --separate-stderr bch-send --wait=3 <in.jsonl
	ms=$((($(date +%s%N) - t0) / 1000000))
	assert_failure 111
	assert_output "sent aaaa1111 to @bob
sent bbbb2222 to @bob
read aaaa1111 by bob"
	[ "$stderr" = "bch-send: bbbb2222 not read by bob after 3 s — it stays queued" ]
	echo "gave up after $ms ms"
	[ "$ms" -ge 3000 ]
}

@test "a stdin line cannot choose its sender" {
	echo '{"to":"@bob","body":"x","from":"mallory"}' | bch-send
	run as bob bch drain --jsonl
	assert_output --partial '"from":"alice"'
}

@test "a stdin request may carry its own id; resending it delivers once" {
	id=6f1c2a4e-0b7d-4c1e-9a55-3b6f5f1e2a10
	echo "{\"to\":\"@bob\",\"body\":\"x\",\"id\":\"$id\"}" | bch-send
	echo "{\"to\":\"@bob\",\"body\":\"x\",\"id\":\"$id\"}" | bch-send
	[ "$(count_new bob)" -eq 1 ]
	[ "$(new_ids bob)" = "$id" ]
}

@test "a send retried after its sender died mid-write is delivered, not refused by the file left in tmp/" {
	files_only "a sender's file left in tmp/"
	id=6f1c2a4e-0b7d-4c1e-9a55-3b6f5f1e2a11
	# What a sender killed between writing tmp/ and linking into new/
	# leaves behind; its retry, with the same id, must go through.
	mkdir -p "$BACKCHANNEL_HOME/spool/bob/tmp"
	printf '{"id":"%s","from":"alice"' "$id" >"$BACKCHANNEL_HOME/spool/bob/tmp/$id.json"
	run --separate-stderr bch-send <<<"{\"to\":\"@bob\",\"body\":\"again\",\"id\":\"$id\"}"
	assert_success
	assert_output "sent ${id:0:8} to @bob"
	[ "$(new_ids bob)" = "$id" ]
	run new_json bob "$id"
	assert_output --partial '"body":"again"'
}

@test "a body within its limit that encodes over the message limit is refused, not cut" {
	# 60,000 quotes: under the 64 KiB body limit, 120,000 bytes as JSON.
	body=$(head -c 60000 /dev/zero | tr '\0' '"')
	run bch send @bob "$body"
	assert_failure 100
	assert_output --partial 'limit'
	[ "${#lines[@]}" -eq 1 ]
	[ "$(count_new bob)" -eq 0 ]
}

@test "a stdin line is limited by the message it decodes to, not by its escapes" {
	# 20,000 CJK characters: 60,000 bytes of body, 120,000 as \uXXXX.
	esc=$(printf '\\u4e2d%.0s' {1..20000})
	printf '{"to":"@bob","body":"%s"}\n' "$esc" > in.jsonl
	[ "$(wc -c < in.jsonl)" -gt 98304 ]
	run --separate-stderr bch-send < in.jsonl
	assert_success
	assert_output --regexp '^sent [0-9a-f]{8} to @bob$'
	[ "$(new_json bob | LC_ALL=C tr -cd '\344' | wc -c)" -eq 20000 ]
	# 22,000 of them are 66,000 bytes: over the body limit, as an argument is.
	printf '{"to":"@bob","body":"%s%s"}\n{"to":"@bob","body":"after"}\n' \
		"$esc" "${esc:0:12000}" > in.jsonl
	run --separate-stderr bch-send < in.jsonl
	assert_failure 100
	assert_equal "$(grep -c 'sent' <<<"$output")" 1
	[[ $stderr == 'bch-send: line 1: field "body" is over its limit of 65536 bytes'* ]]
	[ "$(count_new bob)" -eq 2 ]
}

@test "an oversize stdin line is skipped without eating the next" {
	# Over six times the 96 KiB of an encoded message: no request is that long.
	{ printf '{"to":"@bob","body":"'; head -c 600000 /dev/zero | tr '\0' a; printf '"}\n'; echo '{"to":"@bob","body":"after"}'; } > in.jsonl
	run bch-send < in.jsonl
	assert_failure 100
	assert_line --partial 'line 1: over the limit'
	[ "$(count_new bob)" -eq 1 ]
	# The same as the last line, with no newline to end it.
	{ echo '{"to":"@bob","body":"before"}'; printf '{"to":"@bob","body":"'; head -c 600000 /dev/zero | tr '\0' a; printf '"}'; } > in.jsonl
	run bch-send < in.jsonl
	assert_failure 100
	assert_line --partial 'line 2: over the limit'
	[ "$(count_new bob)" -eq 2 ]
}

@test "the inbox quota refuses with 111 and keeps what is stored" {
	local_only "the quota is the relay's own setting (t/relay.bats tests 507)"
	export BACKCHANNEL_MAX_INBOX=2
	bch send @bob 1 && bch send @bob 2
	run bch send @bob 3
	assert_failure 111
	assert_output --partial 'inbox of bob is full'
	[ "$(count_new bob)" -eq 2 ]
}

# quota N: start over with an empty spool whose inboxes hold at most N
# unread messages; register the agents again (agents). A relay reads
# BACKCHANNEL_MAX_INBOX when it starts, so it is started again.
quota() {
	export BACKCHANNEL_MAX_INBOX=$1
	[ -n "${BCH_TEST_RELAY:-}" ] || return 0
	stop_relay
	rm -rf "$BACKCHANNEL_HOME"
	start_relay
}

# forget_send ID: the relay forgets its answer to alice's send of ID, as
# if long ago: one on files remembers its answers until it restarts,
# one on Redis for 15 minutes. A retry is then told apart by the inboxes
# alone, as the local spool always does.
forget_send() {
	if [ -n "${BCH_TEST_RELAY:-}" ] && ! on_redis; then
		stop_relay
		start_relay
	fi
	forget_sent alice "$1"
}

@test "a send retried after the inbox filled up is the success it was, stored once" {
	quota 3
	agents alice bob
	local id=3f0c9d7e-8a41-4c1b-9d55-0b6f5f1e2a10 line
	line="{\"to\":\"@bob\",\"body\":\"only once\",\"id\":\"$id\"}"
	run bch-send <<<"$line"
	assert_success
	bch send @bob two
	bch send @bob three
	run bch send @bob four
	assert_failure 111
	assert_output --partial 'inbox of bob is full'
	# Retried soon (a relay still remembers the send), then long after.
	run bch-send <<<"$line"
	assert_success
	assert_output "sent ${id:0:8} to @bob"
	forget_send "$id"
	run bch-send <<<"$line"
	assert_success
	assert_output "sent ${id:0:8} to @bob"
	[ "$(count_new bob)" -eq 3 ]
	[ "$(new_ids bob | grep -c "^$id\$")" -eq 1 ]
	[ "$(new_json bob "$id" | grep -c 'only once')" -eq 1 ]
}

# A batch counted each retry of a line already stored as one more message,
# and refused the inbox while it held one.
@test "a batch that repeats a line with its id counts it once against the quota" {
	quota 3
	agents alice bob
	local id=3f0c9d7e-8a41-4c1b-9d55-0b6f5f1e2a10 line
	line="{\"to\":\"@bob\",\"body\":\"only once\",\"id\":\"$id\"}"
	printf '%s\n%s\n%s\n' "$line" "$line" "$line" >batch.jsonl
	printf '{"to":"@bob","body":"two"}\n{"to":"@bob","body":"three"}\n' >>batch.jsonl
	run bch-send <batch.jsonl
	assert_success
	[ "$(grep -c '^sent ' <<<"$output")" -eq 5 ]
	[ "$(count_new bob)" -eq 3 ]
	run bch send @bob four
	assert_failure 111
	assert_output --partial 'inbox of bob is full'
}

# A retry that found its copy already in bob's new/ (linked by a try
# that may have died before its sync) did not sync new/, and reported
# "sent" for a message a power cut could still lose.
@test "a retried send syncs the inbox that holds the copy of a try before it" {
	local_only "the relay syncs in its own process"
	strace -o /dev/null true 2>/dev/null || skip "strace cannot trace here"
	agents alice bob
	local id=3f0c9d7e-8a41-4c1b-9d55-0b6f5f1e2a10 line
	line="{\"to\":\"@bob\",\"body\":\"kept\",\"id\":\"$id\"}"
	run bch-send <<<"$line"
	assert_success
	# LeakSanitizer cannot work under ptrace: no leak check in this run.
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
		BACKCHANNEL_FSYNC=1 run strace -f -y -e trace=fsync -o trace \
		bch-send <<<"$line"
	assert_success
	assert_output "sent ${id:0:8} to @bob"
	grep -q "fsync([0-9]*<$BACKCHANNEL_HOME/spool/bob/new>) = 0" trace
	[ "$(count_new bob)" -eq 1 ]
}

@test "a channel send retried into full inboxes succeeds; one a full inbox still lacks is refused for all" {
	quota 2
	agents alice bob carol
	as bob bch sub '#dev' >/dev/null
	as carol bch sub '#dev' >/dev/null
	local a=3f0c9d7e-8a41-4c1b-9d55-0b6f5f1e2a10 b=3f0c9d7e-8a41-4c1b-9d55-0b6f5f1e2a11
	printf '{"to":"#dev","body":"A","id":"%s"}\n' "$a" >a.jsonl
	printf '{"to":"#dev","body":"B","id":"%s"}\n' "$b" >b.jsonl
	run bch-send <a.jsonl
	assert_success
	bch send '#dev' filler
	# Both inboxes are full, and both hold A: its retry succeeds.
	forget_send "$a"
	run bch-send <a.jsonl
	assert_success
	assert_output "sent ${a:0:8} to #dev"
	[ "$(count_new bob)" -eq 2 ]
	[ "$(count_new carol)" -eq 2 ]
	# carol reads hers; bob's inbox, full, still lacks B: refused, and
	# carol, who had room, is not given it either.
	as carol bch drain >/dev/null
	run bch-send <b.jsonl
	assert_failure 111
	assert_output --partial 'inbox of bob is full'
	[ "$(count_new carol)" -eq 0 ]
	[ "$(count_new bob)" -eq 2 ]
	# A, retried now, is owed to carol alone, who has room (her copy was
	# read and deleted: the id is a new message to her).
	forget_send "$a"
	run bch-send <a.jsonl
	assert_success
	[ "$(new_ids carol)" = "$a" ]
	[ "$(count_new bob)" -eq 2 ]
}

@test "an unregistered sender is told to init" {
	run env BACKCHANNEL_AGENT=ghost bch send @bob hi
	assert_failure 100
	assert_output --partial 'ghost is not registered'
}

@test "a relay URL that is not one is refused with 100, before anything is sent" {
	local long u
	long=$(printf 'a%.0s' {1..300})
	for u in ftp://relay.example http:// https://:7117 http://127.0.0.1: \
	    http://127.0.0.1:71x7 'http://[::1' "http://$long:7117" \
	    http://127.0.0.1:0 http://127.0.0.1:65536 http://127.0.0.1:99999 \
	    http://127.0.0.1:0000007117; do
		run env BACKCHANNEL_URL="$u" BACKCHANNEL_TOKEN=t bch send @bob hi
		assert_failure 100
		assert_output "bch-send: bad relay URL \"${u:0:200}\" — use http(s)://host[:port]"
	done
	[ "$(count_new bob)" -eq 0 ]
}

@test "a relay URL with a control character, a space or bytes beyond ASCII is refused with 100, not echoed" {
	local msg='bad relay URL: it holds a control character, a space or a byte beyond ASCII — use http(s)://host[:port], a host name beyond ASCII in punycode'
	local u j i
	# U+202E turns the rest of a line around, U+009B and ESC start a
	# terminal's control sequence; é is written in punycode in a URL.
	local urls=($'http://127.0.0.1:9/\xe2\x80\xaegro.elpmaxe' $'http://relay.example\xc2\x9b2J:7117'
		$'http://relay.example\e[2J' $'https://r\xc3\xa9lay.example' 'http://relay .example')
	local json=('http://127.0.0.1:9/\u202egro.elpmaxe' 'http://relay.example\u009b2J:7117'
		'http://relay.example\u001b[2J' 'https://r\u00e9lay.example' 'http://relay .example')
	for i in "${!urls[@]}"; do
		u=${urls[i]}
		run env BACKCHANNEL_URL="$u" BACKCHANNEL_AGENT=alice BACKCHANNEL_TOKEN=t bch send @bob hi
		assert_failure 100
		assert_output "bch-send: $msg"
		run env BACKCHANNEL_URL="$u" BACKCHANNEL_AGENT=alice BACKCHANNEL_TOKEN=t bch drain
		assert_failure 100
		assert_output "bch-drain: $msg"
		# The same url in config.json.
		mkdir -p "$BACKCHANNEL_HOME"
		printf '{"agent": "alice", "url": "%s", "token": "t"}\n' "${json[i]}" >"$BACKCHANNEL_HOME/config.json"
		chmod 600 "$BACKCHANNEL_HOME/config.json"
		run env -u BACKCHANNEL_URL bch drain
		assert_failure 100
		assert_output "bch-drain: $msg"
		run env -u BACKCHANNEL_URL bch whoami
		assert_failure 100
		assert_output "bch-init: $msg"
	done
	rm "$BACKCHANNEL_HOME/config.json"
	[ "$(count_new bob)" -eq 0 ]
}

@test "send works with fsync on" {
	BACKCHANNEL_FSYNC=1 run bch send @bob durable
	assert_success
	[ "$(count_new bob)" -eq 1 ]
}

@test "a full disk refuses the send with 111 and loses nothing stored" {
	local_only "a disk the test fills under the local spool"
	if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=512k tmpfs "$BACKCHANNEL_HOME" 2>/dev/null; then
		skip "needs root to mount a small tmpfs"
	fi
	agents alice bob
	bch send @bob kept
	head -c 1M /dev/zero > "$BACKCHANNEL_HOME/filler" 2>/dev/null || true
	run bch send @bob "$(head -c 8000 /dev/zero | tr '\0' x)"
	n=$(count_new bob)
	body=$(cat "$BACKCHANNEL_HOME"/spool/bob/new/*.json)
	tmp=$(ls -A "$BACKCHANNEL_HOME/spool/bob/tmp")
	umount "$BACKCHANNEL_HOME"
	assert_failure 111
	assert_output --partial 'No space left on device'
	[ "$n" -eq 1 ]
	[ -z "$tmp" ] # no part of the message left behind
	[[ $body == *'"body":"kept"'* ]]
}

@test "a sender's messages of one millisecond come out in the order sent" {
	for i in $(seq 200); do echo "{\"to\":\"@bob\",\"body\":\"$i\"}"; done | bch-send >/dev/null
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	[ "$(printf '%s\n' "$output" | sed 's/.*"body":"\([0-9]*\)".*/\1/' | tr '\n' ' ')" = "$(seq 200 | tr '\n' ' ')" ]
}

@test "a request line naming a field twice is refused by its line number; the others go" {
	printf '%s\n' '{"to":"@bob","body":"one","to":"@carol"}' '{"to":"@bob","body":"two"}' \
		'{"to":"@bob","body":"three","priority":"normal","priority":"urgent"}' > in.jsonl
	run --separate-stderr bch-send < in.jsonl
	assert_failure 100
	assert_equal "$stderr" 'bch-send: line 1: field "to" given twice (JSON readers differ on which one counts) — skipped
bch-send: line 3: field "priority" given twice (JSON readers differ on which one counts) — skipped'
	[ "${#lines[@]}" -eq 1 ]
	[ "$(count_new bob)" -eq 1 ]
	[ "$(count_new carol)" -eq 0 ]
}

@test "a field named twice is refused when one of the names is written with escapes" {
	printf '%s\n' '{"to":"@bob","body":"one","\u0074o":"@carol"}' \
		'{"to":"@bob","body":"two","sc\u006fpe":"acme/api","scope":"x"}' > in.jsonl
	run --separate-stderr bch-send < in.jsonl
	assert_failure 100
	assert_equal "$stderr" 'bch-send: line 1: field "to" given twice (JSON readers differ on which one counts) — skipped
bch-send: line 2: field "scope" given twice (JSON readers differ on which one counts) — skipped'
	[ "$(count_new bob)" -eq 0 ]
}

@test "a send whose sent line cannot be written says it was delivered, not to try again" {
	[ -w /dev/full ] || skip "no /dev/full"
	run bash -c 'bch send @bob hi >/dev/full'
	assert_failure 100
	assert_output --regexp '^bch-send: sent [0-9a-f]{8} to @bob, but cannot write that to standard output \(No space left on device\) — it is delivered, do not send it again$'
	[ "$(count_new bob)" -eq 1 ]
}

@test "a send whose standard output is full says the messages went all the same" {
	[ -w /dev/full ] || skip "no /dev/full"
	printf '%s\n' '{"to":"@bob","body":"one"}' '{"to":"@bob","body":"two"}' 'not json' \
		'{"to":"@bob","body":"four"}' > in.jsonl
	rc=0
	bch-send < in.jsonl > /dev/full 2> err || rc=$?
	[ "$rc" -eq 111 ]
	[ "$(wc -l < err)" -eq 2 ]
	grep -qx 'bch-send: line 3: malformed JSON: unexpected character — skipped' err
	grep -qx 'bch-send: cannot write to standard output: No space left on device — stopped after line 4: the lines up to it were sent all the same, but for those reported above' err
	[ "$(count_new bob)" -eq 3 ]
}

@test "a relay that goes down mid-batch stops it at that line, once, with 111" {
	[ -n "${BCH_TEST_RELAY:-}" ] || skip "about a relay"
	mkfifo in
	{ bch-send < in > acked 2> err && echo 0 > rc || echo $? > rc; } &
	bg_pid $!
	exec 5> in
	printf '{"to":"@bob","body":"%s"}\n' l1 l2 >&5
	wait_for 10 acked 2
	stop_relay
	printf '{"to":"@bob","body":"%s"}\n' l3 l4 l5 >&5
	exec 5>&-
	# Before, each line after waited out the retries on its own.
	wait_for 20 test -s rc
	[ "$(cat rc)" -eq 111 ]
	acked 2
	[ "$(wc -l < err)" -eq 1 ]
	grep -q '^bch-send: line 3: relay .* unreachable: .* — stopped: no line after it was sent, and this one may not have been$' err
}

@test "a relay that goes down mid-batch under --wait stops there: one error, no wait, 111" {
	[ -n "${BCH_TEST_RELAY:-}" ] || skip "about a relay"
	mkfifo in
	{ bch-send --wait=60 < in > acked 2> err && echo 0 > rc || echo $? > rc; } &
	bg_pid $!
	exec 5> in
	printf '{"to":"@bob","body":"%s"}\n' l1 l2 >&5
	wait_for 10 acked 2
	stop_relay
	printf '{"to":"@bob","body":"%s"}\n' l3 l4 >&5
	exec 5>&-
	# Before, it went on to wait for l1 and l2 on the relay it had
	# just found down, and failed a second time.
	wait_for 20 test -s rc
	[ "$(cat rc)" -eq 111 ]
	acked 2
	[ "$(wc -l < acked)" -eq 2 ]
	[ "$(wc -l < err)" -eq 1 ]
	grep -q '^bch-send: line 3: relay .* unreachable: .* — stopped: no line after it was sent, and this one may not have been$' err
}

@test "a byte order mark opening the input does not cost its first line" {
	printf '\xef\xbb\xbf{"to":"@bob","body":"one"}\r\n{"to":"@bob","body":"two"}\r\n' > in.jsonl
	run --separate-stderr bch-send < in.jsonl
	assert_success
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq 2 ]
	run as bob bch drain --jsonl
	assert_line --index 0 --partial '"body":"one"'
	# Anywhere else it is not JSON, as before.
	printf '{"to":"@bob","body":"one"}\n\xef\xbb\xbf{"to":"@bob","body":"two"}\n' > in.jsonl
	run --separate-stderr bch-send < in.jsonl
	assert_failure 100
	assert_equal "$stderr" 'bch-send: line 2: malformed JSON: unexpected character — skipped'
}
