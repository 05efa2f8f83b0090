# Shared setup for the bats suite: every test gets its own spool.
bats_load_library bats-support 2>/dev/null || load /usr/lib/bats/bats-support/load
bats_load_library bats-assert 2>/dev/null || load /usr/lib/bats/bats-assert/load

T_ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
export PATH="$T_ROOT/bin:$PATH"
# make check-valgrind puts wrappers that run each program under memcheck
# in front of bin/.
[ -z "${BCH_VALGRIND_BIN:-}" ] || export PATH="$BCH_VALGRIND_BIN:$PATH"

setup() {
	export BACKCHANNEL_HOME="$BATS_TEST_TMPDIR/home"
	export HOME="$BATS_TEST_TMPDIR/user"
	mkdir -p "$HOME"
	unset BACKCHANNEL_AGENT BACKCHANNEL_URL BACKCHANNEL_TOKEN
	export BACKCHANNEL_FSYNC=0
	cd "$BATS_TEST_TMPDIR" || return 1
	[ -z "${BCH_TEST_RELAY:-}" ] || start_relay
	if declare -F local_setup >/dev/null; then local_setup; fi
}

# With BCH_TEST_RELAY=1 the same tests run against a relay on a loopback
# port, whose spool is $BACKCHANNEL_HOME too: the client keeps only
# config.json and tokens/ there, the relay agents/ and spool/, so tests
# that look at the files see the same tree either way.
start_relay() {
	export BCH_ROOM="room-$RANDOM$RANDOM$RANDOM$RANDOM"
	mkdir -p "$BACKCHANNEL_HOME"
	bch-relayd --home "$BACKCHANNEL_HOME" --port 0 --token "$BCH_ROOM" --rate 100000 ${BCH_TEST_RELAY_SPOOL:+--spool "$BCH_TEST_RELAY_SPOOL?prefix=$BCH_ROOM:"} \
		2>"$BATS_TEST_TMPDIR/relay.log" &
	BCH_RELAY_PID=$!
	wait_for 10 grep -q 'listening on' "$BATS_TEST_TMPDIR/relay.log" || {
		cat "$BATS_TEST_TMPDIR/relay.log" >&2
		return 1
	}
	local port
	port=$(sed -n 's/.* port \([0-9]*\),.*/\1/p' "$BATS_TEST_TMPDIR/relay.log")
	export BACKCHANNEL_URL="http://127.0.0.1:$port"
}

stop_relay() {
	[ -n "${BCH_RELAY_PID:-}" ] || return 0
	kill "$BCH_RELAY_PID" 2>/dev/null
	wait "$BCH_RELAY_PID" 2>/dev/null
	BCH_RELAY_PID=
}

teardown() {
	if declare -F local_teardown >/dev/null; then local_teardown; fi
	bg_stop
	stop_relay
}

# bg_pid PID: a background process of this test (a watcher, a client, a
# slow writer); the teardown stops it, even when the test failed.
bg_pid() {
	echo "$1" >>"$BATS_TEST_TMPDIR/bg.pids"
}

# bg_stop: TERM every process bg_pid named, and reap those that are ours.
bg_stop() {
	local p
	[ -f "$BATS_TEST_TMPDIR/bg.pids" ] || return 0
	while read -r p; do
		kill "$p" 2>/dev/null || true
	done <"$BATS_TEST_TMPDIR/bg.pids"
	while read -r p; do
		wait "$p" 2>/dev/null || true
	done <"$BATS_TEST_TMPDIR/bg.pids"
	rm -f "$BATS_TEST_TMPDIR/bg.pids"
}

# gone PID: the process has exited (a zombie counts as gone).
gone() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 0
	[ -z "$st" ] || [ "${st#Z}" != "$st" ]
}

# sleeping PID: the process is blocked (in the kernel, waiting).
sleeping() {
	# S, with or without modifiers (N under nice, < raised, s leader).
	case $(ps -o stat= -p "$1") in
	S*) return 0 ;;
	esac
	return 1
}

# local_only: skip a test that is about the local spool alone.
local_only() {
	[ -z "${BCH_TEST_RELAY:-}" ] || skip "local spool only: ${1:-about files on disk}"
}

# relay_init NAME [ARGS...]: bch init NAME, on the relay when there is one.
relay_init() {
	if [ -n "${BCH_TEST_RELAY:-}" ]; then
		bch init "$@" --token "$BCH_ROOM"
	else
		bch init "$@"
	fi
}

# as NAME CMD...: run CMD as agent NAME.
as() {
	local who=$1
	shift
	BACKCHANNEL_AGENT=$who "$@"
}

# agents NAME...: register each name; the first becomes the default.
agents() {
	local a
	relay_init "$1" >/dev/null
	for a in "${@:2}"; do BACKCHANNEL_AGENT=$a relay_init "$a" >/dev/null; done
}

# count_new AGENT: unread files in AGENT's new/ (with the relay's spool
# in Redis, on the unix socket t/run made: the size of AGENT's inbox).
count_new() {
	if [ -n "${BCH_TEST_RELAY:-}" ] && [ -n "${BCH_TEST_RELAY_SPOOL:-}" ]; then
		redis-cli -s "${BCH_TEST_RELAY_SPOOL#unix://}" HLEN "$BCH_ROOM:new:$1"
		return
	fi
	find "$BACKCHANNEL_HOME/spool/$1/new" -name '*.json' | wc -l
}

# wait_for SECONDS CMD...: retry CMD until it succeeds or time runs out.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}
