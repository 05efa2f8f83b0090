#!/usr/bin/env bats
# bch send --wait: block until the recipients have claimed the message.
load helper

local_setup() { agents alice bob carol; }

# has_new AGENT: something is waiting unread for AGENT (in new/).
has_new() { [ "$(count_new "$1")" -gt 0 ]; }

@test "--wait returns once a drain in another process takes the message" {
	( wait_for 10 has_new bob &&
		as bob bch drain > drained ) &
	bg=$!
	run bch send @bob "your turn" --wait=20
	wait "$bg"
	assert_success
	assert_line --index 0 --regexp '^sent [0-9a-f]{8} to @bob$'
	assert_line --index 1 'read by bob'
	grep -q 'your turn' drained
}

@test "--wait times out with 111, names who has not read it, and leaves it queued" {
	run bch send @bob "anyone there" --wait=1
	assert_failure 111
	assert_line --regexp '^sent [0-9a-f]{8} to @bob$'
	assert_line --regexp '^bch-send: [0-9a-f]{8} not read by bob after 1 s — it stays queued$'
	[ "$(count_new bob)" -eq 1 ]
	run as bob bch drain
	assert_output --partial 'anyone there'
}

@test "--wait on a channel waits for every subscriber it was copied to" {
	as bob bch sub '#dev' >/dev/null
	as carol bch sub '#dev' >/dev/null
	( wait_for 10 has_new bob &&
		as bob bch drain >/dev/null ) &
	bg=$!
	run bch send '#dev' "standup" --wait=2
	wait "$bg"
	assert_failure 111
	assert_line 'read by bob'
	assert_line --partial 'not read by carol after 2 s'
	# carol's "standup" is still there: read it, so that has_new below
	# means the next message, in both inboxes.
	as carol bch drain >/dev/null
	( wait_for 10 has_new carol && wait_for 10 has_new bob &&
		as bob bch drain >/dev/null && as carol bch drain >/dev/null ) &
	bg=$!
	run bch send '#dev' "again" --wait=20
	wait "$bg"
	assert_success
	assert_line 'read by bob'
	assert_line 'read by carol'
}

@test "--wait with JSON lines on stdin waits for all of them" {
	printf '%s\n' '{"to":"@bob","body":"one"}' '{"to":"@carol","body":"two"}' > in.jsonl
	( wait_for 10 has_new carol &&
		as bob bch drain >/dev/null && as carol bch drain >/dev/null ) &
	bg=$!
	run bch-send --wait=20 < in.jsonl
	wait "$bg"
	assert_success
	assert_line --regexp '^read [0-9a-f]{8} by bob$'
	assert_line --regexp '^read [0-9a-f]{8} by carol$'
}

@test "--wait takes whole seconds" {
	run bch send @bob hi --wait=soon
	assert_failure 2
	run bch send @bob hi --wait=0
	assert_failure 2
	run bch send @bob hi --wait=99999999999999999999
	assert_failure 2
	assert_output --partial '--wait takes a whole number from 1 to 86400'
	[ "$(count_new bob)" -eq 0 ]
}

@test "--wait against a relay that has no receipts says so instead of hanging" {
	local_only "starts a relay of its own"
	command -v python3 >/dev/null || skip "python3 is needed for the stand-in relay"
	python3 -c 'import fakehttp; fakehttp.serve(fakehttp.SendOnly)' > port &
	pid=$!
	wait_for 10 test -s port
	export BACKCHANNEL_URL="http://127.0.0.1:$(cat port)" BACKCHANNEL_TOKEN=t
	run bch send @bob hi --wait=5
	kill "$pid"
	assert_failure 100
	assert_line --regexp '^sent [0-9a-f]{8} to @bob$'
	assert_line 'bch-send: this relay does not support --wait (it has no read receipts)'
}
