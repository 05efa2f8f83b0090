#!/usr/bin/env bats
# bch read (bch-claim): claim messages by id or unique prefix.
load helper
bats_require_minimum_version 1.5.0

A=abcd1111-0000-4000-8000-000000000001
B=abcd2222-0000-4000-8000-000000000002
C=ffff0000-0000-4000-8000-000000000003

# Three messages for bob with chosen ids: A and B share the prefix abcd.
local_setup() {
	agents alice bob
	printf '%s\n' "{\"to\":\"@bob\",\"body\":\"body A\",\"id\":\"$A\"}" \
		"{\"to\":\"@bob\",\"body\":\"body B\",\"id\":\"$B\",\"priority\":\"urgent\"}" \
		"{\"to\":\"@bob\",\"body\":\"body C\",\"id\":\"$C\"}" | bch-send >/dev/null
}

# unread ID...: bob's unread messages are these, and no others.
unread() { [ "$(new_ids bob)" = "$(printf '%s\n' "$@" | LC_ALL=C sort)" ]; }
ts_of() { new_json bob "$1" | sed -n 's/.*"ts":"\([^"]*\)".*/\1/p'; }

@test "read by full id claims that message and prints it in the human form" {
	ts=$(ts_of "$A")
	run --separate-stderr as bob bch read "$A"
	assert_success
	assert_output "alice -> @bob ($ts, id abcd1111)
body A"
	[ -z "$stderr" ]
	unread "$B" "$C"
	[ -z "$(cur_ids bob)" ]
}

@test "read by a unique prefix claims the one message it names" {
	run as bob bch read abcd2
	assert_success
	assert_line -n 0 --regexp '^alice -> @bob \[URGENT\] \(.*, id abcd2222\)$'
	assert_line -n 1 'body B'
	unread "$A" "$C"
	run as bob bch read ffff
	assert_success
	assert_output --partial 'body C'
	[ "$(count_new bob)" -eq 1 ]
}

@test "an ambiguous prefix is refused with 100 and claims nothing" {
	run --separate-stderr as bob bch read abcd
	assert_failure 100
	assert_output ''
	[[ $stderr == 'bch-claim: '*'abcd'*'matches several messages'* ]]
	[ "$(count_new bob)" -eq 3 ]
}

@test "an unknown id exits 100 and the other ids are still claimed" {
	ta=$(ts_of "$A") tc=$(ts_of "$C")
	run --separate-stderr as bob bch read zzzz "$A" 0000dead "$C"
	assert_failure 100
	assert_output "alice -> @bob ($ta, id abcd1111)
body A

alice -> @bob ($tc, id ffff0000)
body C"
	[[ $stderr == *'no unread message zzzz'* ]]
	[[ $stderr == *'no unread message 0000dead'* ]]
	[ "$(grep -c . <<<"$stderr")" -eq 2 ]
	unread "$B"
}

@test "an empty id is refused as such, and the other ids are still claimed" {
	run --separate-stderr as bob bch read '' "$C"
	assert_failure 100
	assert_output --partial 'body C'
	assert_equal "$stderr" "bch-claim: empty id — give an id, or a prefix of one, as bch inbox shows them"
	unread "$A" "$B"
}

@test "a message claimed once cannot be read again" {
	as bob bch read "$A" >/dev/null
	run --separate-stderr as bob bch read "$A"
	assert_failure 100
	assert_output ''
	[[ $stderr == *"no unread message $A"* ]]
}

@test "read --keep leaves the message whole in cur/<id>.json" {
	new_json bob "$A" > want.json
	run as bob bch read --keep abcd1
	assert_success
	assert_output --partial 'body A'
	unread "$B" "$C"
	# In Redis, cur/ is the kept hash.
	kept_json bob "$A" | cmp want.json -
	[ "$(cur_ids bob)" = "$A" ]
}

@test "read --keep never replaces a message kept under its id by another sender" {
	as bob bch read --keep "$A" >/dev/null
	kept_json bob "$A" > alice.json
	# Another sender's message under the same id, read and kept too.
	BACKCHANNEL_AGENT=carol relay_init carol >/dev/null
	as carol bch-send <<<"{\"to\":\"@bob\",\"body\":\"carol's A\",\"id\":\"$A\"}" >/dev/null
	run --separate-stderr as bob bch read --keep "$A"
	assert_success
	assert_output --partial "carol's A"
	# Alice's kept message is still there, whole; carol's is kept beside it.
	kept_json bob "$A" | cmp alice.json -
	[ "$(cur_ids bob | wc -l)" -eq 2 ]
	beside=$(cur_ids bob | grep -v "^$A\$")
	if on_redis; then
		rcli HGET "$BCH_ROOM:kept:bob" "$beside" | grep -q "carol's A"
	else
		grep -q "carol's A" "$BACKCHANNEL_HOME/spool/bob/cur/$beside"
	fi
}

@test "without --keep nothing is left in cur/" {
	as bob bch read "$A" "$B" >/dev/null
	[ -z "$(cur_ids bob)" ]
}

@test "ids on standard input, one per line, are claimed in turn" {
	ta=$(ts_of "$A") tc=$(ts_of "$C")
	run as bob bch-claim <<<"$C
abcd1"
	assert_success
	assert_output "alice -> @bob ($tc, id ffff0000)
body C

alice -> @bob ($ta, id abcd1111)
body A"
	unread "$B"
}

@test "an over-long line on standard input is refused whole; its tail claims nothing" {
	long=$(head -c 255 /dev/zero | tr '\0' x)
	tc=$(ts_of "$C")
	run --separate-stderr as bob bch-claim <<<"${long}ffff
$(head -c 300 /dev/zero | tr '\0' y)$A
$C"
	assert_failure 100
	assert_output "alice -> @bob ($tc, id ffff0000)
body C"
	assert_equal "$stderr" "bch-claim: line 1: over the limit of 256 bytes — skipped
bch-claim: line 2: over the limit of 256 bytes — skipped"
	unread "$A" "$B"
}

@test "read --jsonl prints each claimed message as stored, one per line" {
	want=$(new_json bob "$C" && new_json bob "$A")
	run as bob bch read --jsonl "$C" "$A"
	assert_success
	assert_output "$want"
	[ "$(count_new bob)" -eq 1 ]
}

@test "read --json prints an array of the claimed messages" {
	want="[$(new_json bob "$A" | tr -d '\n'),$(new_json bob "$B" | tr -d '\n')]"
	run as bob bch read --json "$A" abcd2
	assert_success
	assert_equal "$(tr -d '\n' <<<"$output")" "$want"
}

@test "read --json with nothing claimed prints [] and exits 100" {
	run --separate-stderr as bob bch read --json nothing-here
	assert_failure 100
	assert_output '[]'
}

@test "bch-drain --peek --jsonl | pick ids | bch-claim claims a chosen subset" {
	run bash -c "BACKCHANNEL_AGENT=bob bch-drain --peek --jsonl | grep -v '\"priority\":\"urgent\"' |
		sed 's/^{\"id\":\"\\([^\"]*\\)\".*/\\1/' | BACKCHANNEL_AGENT=bob bch-claim --jsonl"
	assert_success
	assert_line --partial '"body":"body A"'
	assert_line --partial '"body":"body C"'
	[ "${#lines[@]}" -eq 2 ]
	unread "$B"
}

@test "an id on standard input for a message that arrived after bch-claim started is claimed" {
	N=abcd3333-0000-4000-8000-000000000004
	mkfifo ids
	BACKCHANNEL_AGENT=bob bch-claim --jsonl <ids >got 2>err &
	pid=$!
	bg_pid "$pid"
	exec 5>ids
	# Once C is printed, bch-claim has listed the inbox, before N was sent.
	echo "$C" >&5
	wait_for 10 grep -q '"body":"body C"' got
	echo "{\"to\":\"@bob\",\"body\":\"body N\",\"id\":\"$N\"}" | bch-send >/dev/null
	# Named twice: the second finds it gone, as with operands.
	printf '%s\n' "$N" "$N" >&5
	exec 5>&-
	rc=0
	wait "$pid" || rc=$?
	[ "$rc" -eq 100 ]
	[ "$(grep -c . got)" -eq 2 ]
	grep -q '"body":"body N"' got
	assert_equal "$(cat err)" "bch-claim: no unread message $N — see bch inbox"
	unread "$A" "$B"
}

# hold_claim ID: start bob's bch-claim of ID (pid in $pid) printing into
# ./pipe, which holds as much as it can already, so that it sits on its
# claim in write(); the read end is fd 6. Return once ID is claimed.
hold_claim() {
	mkfifo pipe
	exec 7<>pipe # a writer, so that opening the read end does not block
	exec 6<pipe
	exec 7>&-
	dd if=/dev/zero of=pipe bs=4096 count=64 oflag=nonblock 2>/dev/null || true
	BACKCHANNEL_AGENT=bob bch-claim --jsonl "$1" >pipe 2>err 6<&- &
	pid=$!
	bg_pid "$pid"
	claimed() { ! new_ids bob | grep -qx "$1"; }
	wait_for 10 claimed "$1"
}

@test "a send retried while bob reads its message is not delivered again" {
	hold_claim "$A"
	forget_sent alice "$A"
	# alice, never told that her send of A went through, sends it again.
	as alice bch-send <<<"{\"to\":\"@bob\",\"body\":\"body A\",\"id\":\"$A\"}" >/dev/null
	# bob's read prints A and acknowledges it.
	tr -d '\0' <&6 >got
	exec 6<&-
	wait "$pid"
	[ "$(grep -c '"body":"body A"' got)" -eq 1 ]
	unread "$B" "$C"
	run as bob bch drain --jsonl
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	refute_output --partial 'body A'
}

@test "a send retried after bob read its message with --keep is not delivered again" {
	as bob bch read --keep "$A" >/dev/null
	# A relay started again has forgotten the sends it answered; one on
	# Redis remembers them there for a while, which may have passed.
	if [ -n "${BCH_TEST_RELAY:-}" ] && ! on_redis; then
		stop_relay
		start_relay
	fi
	forget_sent alice "$A"
	as alice bch-send <<<"{\"to\":\"@bob\",\"body\":\"body A\",\"id\":\"$A\"}" >/dev/null
	unread "$B" "$C"
	[ "$(cur_ids bob)" = "$A" ]
}

@test "a send under the id of another sender's message that bob is reading is refused" {
	BACKCHANNEL_AGENT=carol relay_init carol >/dev/null
	hold_claim "$A"
	run --separate-stderr as carol bch-send <<<"{\"to\":\"@bob\",\"body\":\"carol's A\",\"id\":\"$A\"}"
	assert_failure 100
	[[ $stderr == *'message id already used by another message — send with a new id'* ]]
	tr -d '\0' <&6 >got
	exec 6<&-
	wait "$pid"
	grep -q '"body":"body A"' got
	unread "$B" "$C"
}
