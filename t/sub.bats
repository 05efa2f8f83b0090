#!/usr/bin/env bats
# bch sub and bch unsub (bch-sub): subscriptions, and concurrent changes.
load helper

local_setup() { agents alice bob; }

@test "sub with # subscribes and says so" {
	run bch sub '#dev'
	assert_success
	assert_output 'subscribed alice to #dev'
	assert_equal "$(record_subs alice)" '#dev'
}

@test "sub without # means the same channel" {
	run bch sub dev
	assert_success
	assert_output 'subscribed alice to #dev'
	assert_equal "$(record_subs alice)" '#dev'
}

@test "subscribing again says already subscribed and stores it once" {
	bch sub '#dev' >/dev/null
	run bch sub dev
	assert_success
	assert_output 'alice is already subscribed to #dev'
	assert_equal "$(record_subs alice)" '#dev'
}

@test "unsub with and without # unsubscribes and says so" {
	bch sub '#dev' '#ops' >/dev/null
	run bch unsub '#dev'
	assert_success
	assert_output 'unsubscribed alice from #dev'
	run bch unsub ops
	assert_success
	assert_output 'unsubscribed alice from #ops'
	assert_equal "$(record_subs alice)" ''
}

# A record that names a channel twice (written by hand, or by another
# implementation) lost one of them to unsub and stayed subscribed.
@test "unsub takes out a channel that the record lists twice" {
	local_only "an agent record edited on disk"
	bch sub '#dev' '#ops' >/dev/null
	sed -i 's/"#dev",/"#dev", "#dev",/' "$BACKCHANNEL_HOME/agents/alice.json"
	assert_equal "$(grep -o '"#dev"' "$BACKCHANNEL_HOME/agents/alice.json" | wc -l)" 2
	run bch unsub dev
	assert_success
	assert_output 'unsubscribed alice from #dev'
	assert_equal "$(record_subs alice)" '#ops'
}

@test "unsubscribing from a channel one is not on says so and succeeds" {
	run bch unsub '#nowhere'
	assert_success
	assert_output 'alice was not subscribed to #nowhere'
}

@test "several channels in one call, one line each" {
	run bch sub a '#b' c
	assert_success
	assert_output 'subscribed alice to #a
subscribed alice to #b
subscribed alice to #c'
	assert_equal "$(record_subs alice)" '#a
#b
#c'
}

@test "sub acts for BACKCHANNEL_AGENT, not the default identity" {
	run as bob bch sub '#dev'
	assert_output 'subscribed bob to #dev'
	assert_equal "$(record_subs bob)" '#dev'
	assert_equal "$(record_subs alice)" ''
}

@test "invalid channel names are refused with 100 and change nothing" {
	bch sub '#keep' >/dev/null
	for c in '#' '' '#../x' '../x' 'a/b' '#.x' '#-x' '#a b' '##x' $'#a\nb' "#$(printf 'a%.0s' {1..65})"; do
		run bch sub -- "$c"
		assert_failure 100
		[ "${#lines[@]}" -eq 1 ]
		assert_output --regexp '^bch-sub: (invalid channel|channel name too long)'
		run bch unsub -- "$c"
		assert_failure 100
	done
	assert_equal "$(record_subs alice)" '#keep'
	[ ! -e "$BATS_TEST_TMPDIR/x" ]
	[ ! -e "$BACKCHANNEL_HOME/x" ]
	# In Redis, no channel's member set was made for any of them either.
	! on_redis || assert_equal "$(rcli KEYS "$BCH_ROOM:chan:*")" "$BCH_ROOM:chan:#keep"
}

@test "a 64-byte channel name is accepted" {
	n64=$(printf 'c%.0s' {1..64})
	run bch sub "#$n64"
	assert_success
	assert_output "subscribed alice to #$n64"
}

@test "a 65-byte channel name is refused without the # too, not cut to 64" {
	n65=$(printf 'c%.0s' {1..65})
	run bch sub "$n65"
	assert_failure 100
	assert_equal "$(record_subs alice)" ''
}

@test "channels lists what was subscribed" {
	bch sub '#dev' ops >/dev/null
	run bch channels
	assert_success
	assert_output '#dev
#ops'
	bch unsub dev >/dev/null
	run bch channels
	assert_output '#ops'
}

@test "sub without a channel is a usage error" {
	run bch sub
	assert_failure 2
}

@test "20 concurrent subs of different channels by one agent keep all 20" {
	local pids=() i
	for i in $(seq 20); do
		bch sub "#c$i" >/dev/null &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	assert_equal "$(record_subs alice)" "$(for i in $(seq 20); do echo "#c$i"; done | LC_ALL=C sort)"
	run bch channels
	[ "${#lines[@]}" -eq 20 ]
}

@test "concurrent subs and unsubs end in the expected set" {
	local pids=() i
	bch sub $(seq -f 'old%g' 10) >/dev/null
	for i in $(seq 10); do
		bch unsub "#old$i" >/dev/null &
		pids+=($!)
		bch sub "#new$i" >/dev/null &
		pids+=($!)
		as bob bch sub "#new$i" >/dev/null &
		pids+=($!)
	done
	for i in "${pids[@]}"; do wait "$i"; done
	want=$(for i in $(seq 10); do echo "#new$i"; done | LC_ALL=C sort)
	assert_equal "$(record_subs alice)" "$want"
	assert_equal "$(record_subs bob)" "$want"
	run bch agents --json
	assert_success
}

@test "a full disk refuses a subscribe with 111 and leaves the record whole" {
	local_only "a disk the test fills under the local spool"
	if [ "$(id -u)" != 0 ] || ! mount -t tmpfs -o size=512k tmpfs "$BACKCHANNEL_HOME" 2>/dev/null; then
		skip "needs root to mount a small tmpfs"
	fi
	agents alice
	bch sub '#dev' >/dev/null
	cp "$BACKCHANNEL_HOME/agents/alice.json" before.json
	head -c 1M /dev/zero > "$BACKCHANNEL_HOME/filler" 2>/dev/null || true
	run bch sub '#ops'
	left=$(ls -A "$BACKCHANNEL_HOME/agents" | grep -c '\.tmp\.' || true)
	same=0
	cmp -s before.json "$BACKCHANNEL_HOME/agents/alice.json" || same=1
	umount "$BACKCHANNEL_HOME"
	assert_failure 111
	assert_output --partial 'No space left on device'
	[ "$(grep -c . <<<"$output")" -eq 1 ]
	[ "$same" -eq 0 ]
	[ "$left" -eq 0 ] # no temporary file beside the record
}
