#!/usr/bin/env bats
# Many processes on one spool (PROTOCOL.md 2): the rename is the lock, so
# concurrent readers claim each message once, and concurrent writers lose
# nothing.
load helper
declare -F relay_init >/dev/null || relay_init() { bch init "$@"; }

local_setup() { agents alice bob; }

# jobs_json N FROM TO PREFIX: JSON lines for bch-send, messages FROM..TO
# to @N with bodies "PREFIX-<i>".
jobs_json() {
	local i
	for ((i = $2; i <= $3; i++)); do
		printf '{"to":"@%s","body":"%s-%d"}\n' "$1" "$4" "$i"
	done
}

# ids FILE...: the ids of the JSON lines in the files, one a line.
ids() { cat "$@" | sed -n 's/^{"id":"\([^"]*\)".*/\1/p'; }

# bodies FILE...: the bodies of the JSON lines in the files.
bodies() { cat "$@" | sed -n 's/.*,"body":"\([^"]*\)".*/\1/p'; }

# reap PID...: wait for each background job (each runs under timeout(1),
# so none can hang the suite) and fail if any did not exit 0.
reap() {
	local p rc=0
	for p in "$@"; do
		wait "$p" || { echo "job $p exited $?"; rc=1; }
	done
	return $rc
}

# empty_box AGENT: nothing unread, claimed or kept is left in AGENT's
# inbox (new/ and cur/ are empty; in Redis, no such key and no lease).
empty_box() {
	if on_redis; then
		[ "$(rcli EXISTS "$BCH_ROOM:new:$1" "$BCH_ROOM:claim:$1" "$BCH_ROOM:kept:$1")" -eq 0 ] &&
			! rcli ZRANGE "$BCH_ROOM:leases" 0 -1 | grep -q "^$1 "
		return
	fi
	[ -z "$(ls -A "$BACKCHANNEL_HOME/spool/$1/new")" ] &&
		[ -z "$(ls -A "$BACKCHANNEL_HOME/spool/$1/cur")" ]
}

@test "eight concurrent drainers claim each of 2000 messages exactly once" {
	jobs_json bob 1 2000 m | bch-send > sent.txt
	[ "$(wc -l < sent.txt)" -eq 2000 ]
	[ "$(count_new bob)" -eq 2000 ]
	pids=()
	# All eight start together once go exists, so that a slow start (a
	# sanitizer build, a busy machine) cannot let the first take all.
	for k in 1 2 3 4 5 6 7 8; do
		(
			: > "ready.$k"
			t=0
			until [ -e go ] || [ "$t" -ge 1000 ]; do sleep 0.01; t=$((t + 1)); done
			BACKCHANNEL_AGENT=bob exec timeout 30 bch-drain --jsonl
		) > "out.$k" 2> "err.$k" &
		pids+=($!)
	done
	all_ready() { [ "$(ls ready.* 2>/dev/null | wc -l)" -eq 8 ]; }
	wait_for 10 all_ready
	touch go
	reap "${pids[@]}"
	ids out.* | sort > got.txt
	[ "$(wc -l < got.txt)" -eq 2000 ]
	[ -z "$(uniq -d got.txt)" ]
	[ "$(sort -u got.txt | wc -l)" -eq 2000 ]
	# Every body arrived, each once.
	[ "$(bodies out.* | sort -u | wc -l)" -eq 2000 ]
	diff <(bodies out.* | sort) <(seq 1 2000 | sed 's/^/m-/' | sort)
	# No drainer complained (a lost race is silent) and nothing is left.
	cat err.*
	[ -z "$(cat err.*)" ]
	empty_box bob
	busy=0
	for k in 1 2 3 4 5 6 7 8; do [ -s "out.$k" ] && busy=$((busy + 1)); done
	echo "# $busy of 8 drainers claimed messages" >&3
	# Else the race this test is about never happened. Against a relay
	# under the sanitizers, eight listings of 2,000 messages keep the
	# relay busy long enough that one drainer may take them all; there
	# the count is shown, not required (make check requires it both ways).
	[ -z "${BCH_SANITIZED:-}" ] || [ -z "${BCH_TEST_RELAY:-}" ] || return 0
	[ "$busy" -ge 2 ]
}

@test "concurrent drainers keep the ts order within each one's output" {
	jobs_json bob 1 600 o | bch-send >/dev/null
	pids=()
	for k in 1 2 3 4; do
		BACKCHANNEL_AGENT=bob timeout 30 bch-drain --jsonl > "out.$k" &
		pids+=($!)
	done
	reap "${pids[@]}"
	for k in 1 2 3 4; do
		sed -n 's/.*"ts":"\([^"]*\)".*/\1/p' "out.$k" > ts.$k
		sort -c ts.$k
	done
	[ "$(ids out.* | sort -u | wc -l)" -eq 600 ]
}

@test "concurrent senders to one inbox lose nothing" {
	pids=()
	for k in 1 2 3 4 5 6; do
		jobs_json bob 1 250 "s$k" > "in.$k"
		timeout 30 bch-send < "in.$k" > "sent.$k" &
		pids+=($!)
	done
	# And senders of one message each, through the argument path.
	for k in 1 2; do
		(for i in $(seq 1 25); do timeout 10 bch send @bob "a$k-$i" >/dev/null || exit 1; done) &
		pids+=($!)
	done
	reap "${pids[@]}"
	[ "$(count_new bob)" -eq 1550 ]
	as bob bch drain --jsonl > out
	[ "$(ids out | sort -u | wc -l)" -eq 1550 ]
	diff <(bodies out | sort) <({ for k in 1 2 3 4 5 6; do seq 1 250 | sed "s/^/s$k-/"; done
		for k in 1 2; do seq 1 25 | sed "s/^/a$k-/"; done; } | sort)
}

@test "sends racing drains: every message delivered exactly once" {
	pids=()
	for k in 1 2 3 4; do
		jobs_json bob 1 300 "r$k" > "in.$k"
		timeout 30 bch-send < "in.$k" > /dev/null &
		pids+=($!)
	done
	# Drainers loop until the senders are done (with a deadline).
	for k in 1 2 3; do
		(
			deadline=$((SECONDS + 30))
			until [ -e senders.done ] || [ "$SECONDS" -ge "$deadline" ]; do
				BACKCHANNEL_AGENT=bob bch-drain --jsonl >> "out.$k" || exit 1
			done
		) 2> "err.$k" &
		drainers+=($!)
	done
	reap "${pids[@]}"
	touch senders.done
	reap "${drainers[@]}"
	as bob bch-drain --jsonl > out.final
	[ "$(ids out.* | wc -l)" -eq 1200 ]
	[ "$(ids out.* | sort -u | wc -l)" -eq 1200 ]
	during=$(ids out.[123] | wc -l)
	echo "# $during of 1200 claimed while the senders ran" >&3
	cat err.*
	[ -z "$(cat err.*)" ]
	empty_box bob
}

@test "two identities on one spool via BACKCHANNEL_AGENT keep separate inboxes" {
	as carol relay_init carol >/dev/null
	{ jobs_json alice 1 300 to-alice; jobs_json bob 1 300 to-bob; } | shuf > in
	as carol bch-send < in >/dev/null
	pids=()
	for who in alice bob alice bob; do
		BACKCHANNEL_AGENT=$who timeout 30 bch-drain --jsonl > "out.$who.$RANDOM$RANDOM" &
		pids+=($!)
	done
	reap "${pids[@]}"
	diff <(bodies out.alice.* | sort) <(seq 1 300 | sed 's/^/to-alice-/' | sort)
	diff <(bodies out.bob.* | sort) <(seq 1 300 | sed 's/^/to-bob-/' | sort)
	! grep -v '"to":"@alice"' out.alice.* || false
	! grep -v '"to":"@bob"' out.bob.* || false
	empty_box alice
	empty_box bob
	# Who you are comes from the environment; the default stays alice.
	run as bob bch whoami
	assert_output --regexp '^bob via '
	run bch whoami
	assert_output --regexp '^alice via '
	as bob bch send @alice 'from bob' >/dev/null
	run as alice bch drain --jsonl
	assert_output --partial '"from":"bob","to":"@alice","body":"from bob"'
}

@test "concurrent subscribes to one record lose none of each other's changes" {
	pids=()
	for k in 1 2 3 4 5 6 7 8; do
		(for i in 1 2 3 4 5; do as bob timeout 10 bch sub "#c$k-$i" >/dev/null || exit 1; done) &
		pids+=($!)
	done
	# Meanwhile another identity changes its own record.
	(for i in 1 2 3 4 5; do as alice timeout 10 bch sub "#a$i" >/dev/null || exit 1; done) &
	pids+=($!)
	reap "${pids[@]}"
	run bch channels
	[ "$(grep -c '^#c' <<<"$output")" -eq 40 ]
	[ "$(grep -c '^#a' <<<"$output")" -eq 5 ]
	[ "$(record_subs bob | grep -c '^#c')" -eq 40 ]
	# A concurrent unsubscribe storm leaves exactly what was not removed.
	pids=()
	for k in 1 2 3 4; do
		(for i in 1 2 3 4 5; do as bob timeout 10 bch unsub "#c$k-$i" >/dev/null || exit 1; done) &
		pids+=($!)
	done
	reap "${pids[@]}"
	run bch channels
	[ "$(grep -c '^#c' <<<"$output")" -eq 20 ]
	! grep -q '^#c[1-4]-' <<<"$output" || false
	# No temporary record files left behind.
	on_redis || [ "$(ls "$BACKCHANNEL_HOME/agents" | grep -vc '\.json$')" -eq 0 ]
}
