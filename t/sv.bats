#!/usr/bin/env bats
# sv/bch-notify: the wake service under s6-svscan, in a scan directory of
# its own, with a stand-in notify-send that records what it was given.
load helper

local_setup() {
	# Under LeakSanitizer a supervised daemon killed by s6 can hang in
	# its exit-time leak check; t/relay.bats covers the relay there.
	[ -z "${BCH_SANITIZED:-}" ] || skip "not under the sanitizers (make check-asan)"
	command -v s6-svscan >/dev/null && command -v s6-svc >/dev/null &&
		command -v s6-svstat >/dev/null && command -v s6-svwait >/dev/null ||
		skip "s6 is not installed (s6-svscan, s6-svc, s6-svstat, s6-svwait): apt install s6"
	agents alice bob carol
	export CALLS=$BATS_TEST_TMPDIR/calls
	mkdir -p "$CALLS" fakebin scan
	cat >fakebin/notify-send <<'EOF'
#!/bin/sh
set -C
n=1
until true 2>/dev/null >"$CALLS/$n"; do n=$((n + 1)); done
set +C
for a in "$@"; do printf '%s\0' "$a"; done >"$CALLS/$n"
: >"$CALLS/$n.done"
EOF
	chmod +x fakebin/notify-send
	export PATH="$BATS_TEST_TMPDIR/fakebin:$PATH"
	# A copy: s6-supervise writes its state into the service directory.
	cp -R "$T_ROOT/sv/bch-notify" scan/
	mkdir scan/bch-notify/env
	echo bob >scan/bch-notify/env/BACKCHANNEL_AGENT
	svc=$BATS_TEST_TMPDIR/scan/bch-notify
	s6-svscan scan </dev/null >svscan.log 2>&1 3>&- &
	scanpid=$!
	wait_for 10 s6-svok "$svc"
	wait_for 10 test -e "$svc/supervise/status"
	s6-svwait -U -t 10000 "$svc"
}

local_teardown() {
	[ -n "${scanpid:-}" ] || return 0
	# Bring the services down, then the scanner (both by pid we know).
	s6-svc -d "$svc" 2>/dev/null || true
	s6-svc -d "$svc/log" 2>/dev/null || true
	s6-svwait -D -t 5000 "$svc" 2>/dev/null || true
	kill -TERM "$scanpid" 2>/dev/null || true
	wait "$scanpid" 2>/dev/null || true
}

ncalls() {
	ls "$CALLS" | grep -c '\.done$' || true
}

calls_are() {
	[ "$(ncalls)" -eq "$1" ]
}

argv_of() {
	mapfile -d '' -t ARGV <"$CALLS/$1"
}

# texts: the text argument of every call so far, one per line.
texts() {
	local i
	for ((i = 1; i <= $(ncalls); i++)); do
		argv_of "$i"
		printf '%s\n' "${ARGV[6]}"
	done
}

svpid() {
	s6-svstat -p "$svc"
}

# watch_pid: the bch-watch under the service's bch-notify.
watch_pid() {
	ps -o pid=,comm= --ppid "$(svpid)" | awk '$2 == "bch-watch" { print $1 }'
}

# new_pid OLD: the service runs again, under a pid other than OLD, and is ready.
new_pid() {
	local p
	p=$(svpid) && [ "$p" -gt 0 ] && [ "$p" != "$1" ] &&
		s6-svstat -o ready "$svc" | grep -qx true
}


@test "the service runs bch-notify with bch-watch as its child, and is ready" {
	run s6-svstat "$svc"
	assert_output --regexp '^up \(pid [0-9]+\) [0-9]+ seconds, ready'
	[ "$(ps -o comm= -p "$(svpid)")" = bch-notify ]
	[ -n "$(watch_pid)" ]
	run ps -o args= -p "$(watch_pid)"
	assert_output --partial 'bch-watch --urgent-only --peek --ready-fd 3'
}

@test "an urgent message reaches the notifier and stays queued for the agent" {
	bch send @bob normal news >/dev/null
	bch send @bob main is red --urgent >/dev/null
	wait_for 10 calls_are 1
	argv_of 1
	[ "${ARGV[1]}" = critical ]
	[ "${ARGV[5]}" = 'alice -> @bob [URGENT]' ]
	[ "${ARGV[6]}" = 'main is red' ]
	[ "$(count_new bob)" -eq 2 ]
	run as bob bch inbox --jsonl
	assert_output --partial '"body":"normal news"'
	assert_output --partial '"body":"main is red"'
}

@test "kill -9 of the watch restarts the service and loses no message" {
	bch send @bob first --urgent >/dev/null
	wait_for 10 calls_are 1
	old=$(svpid)
	w=$(watch_pid)
	[ -n "$w" ]
	kill -9 "$w"
	# Sent while the service is down or restarting.
	bch send @bob while-down --urgent >/dev/null
	wait_for 10 new_pid "$old"
	bch send @bob after --urgent >/dev/null
	# The new watch shows what still waits (first, while-down), then after.
	wait_for 10 calls_are 4
	run texts
	assert_line first
	assert_line while-down
	assert_line after
	# The watch only peeks: every message is still there for bob's agent.
	[ "$(count_new bob)" -eq 3 ]
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
}

@test "kill -9 of bch-notify restarts the service; the old watch leaves at once" {
	old=$(svpid)
	w=$(watch_pid)
	kill -9 "$old"
	wait_for 5 gone "$w"
	wait_for 10 new_pid "$old"
	bch send @bob after --urgent >/dev/null
	wait_for 10 calls_are 1
	argv_of 1
	[ "${ARGV[6]}" = after ]
	[ "$(count_new bob)" -eq 1 ]
	# Exactly one watcher is left on the inbox.
	run pgrep -x -P "$(svpid)" bch-watch
	[ "${#lines[@]}" -eq 1 ]
}

@test "s6-svc -d stops both processes and claims nothing after" {
	n=$(svpid)
	w=$(watch_pid)
	s6-svc -d "$svc"
	s6-svwait -D -t 5000 "$svc"
	wait_for 5 gone "$n"
	wait_for 5 gone "$w"
	bch send @bob while-stopped --urgent >/dev/null
	[ "$(count_new bob)" -eq 1 ]
	s6-svc -u "$svc"
	s6-svwait -U -t 10000 "$svc"
	wait_for 10 calls_are 1
	argv_of 1
	[ "${ARGV[6]}" = while-stopped ]
}

@test "the service's messages go to s6-log in log/main" {
	for i in 1 2 3 4 5; do bch send @bob "burst $i" --urgent >/dev/null; done
	wait_for 10 calls_are 3
	wait_for 10 grep -q 'bch-notify: held back: alice -> @bob \[URGENT\]: burst' "$svc/log/main/current"
}
