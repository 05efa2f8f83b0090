# Shared setup for the bats suite: every test gets its own spool.
bats_load_library bats-support 2>/dev/null || load /usr/lib/bats/bats-support/load
bats_load_library bats-assert 2>/dev/null || load /usr/lib/bats/bats-assert/load

T_ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
export PATH="$T_ROOT/bin:$PATH"
# Stand-in relays written in python3 import t/fakehttp.py.
export PYTHONPATH="$T_ROOT/t${PYTHONPATH:+:$PYTHONPATH}"
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
# that look at the files see the same tree either way. start_relay ROOM
# starts it again on the room of one stopped (with its keys in Redis, so
# its agents stay registered).
start_relay() {
	export BCH_ROOM="${1:-room-0123456789-$RANDOM$RANDOM$RANDOM$RANDOM}"
	mkdir -p "$BACKCHANNEL_HOME"
	# Empty the log first: a relay started before in this test wrote to
	# the same file, and its line must not be taken for this one's.
	: >"$BATS_TEST_TMPDIR/relay.log"
	bch-relayd --home "$BACKCHANNEL_HOME" --port 0 --token "$BCH_ROOM" --rate 100000 ${BCH_TEST_RELAY_SPOOL:+--spool "$BCH_TEST_RELAY_SPOOL?prefix=$BCH_ROOM:"} \
		2>"$BATS_TEST_TMPDIR/relay.log" &
	BCH_RELAY_PID=$!
	local port
	port=$(relay_port "$BATS_TEST_TMPDIR/relay.log") || return 1
	export BACKCHANNEL_URL="http://127.0.0.1:$port"
}

# relay_port LOG: wait for the relay's "listening on" line in LOG and print
# its port. The caller empties LOG before the relay starts.
relay_port() {
	wait_for 10 grep -q 'listening on .* port [0-9][0-9]*, spool' "$1" || {
		cat "$1" >&2
		return 1
	}
	sed -n 's/.*listening on .* port \([0-9]*\), spool.*/\1/p' "$1" | tail -1
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

# --- the spool as stored: files, or (BCH_TEST_RELAY_SPOOL) Redis --------
# A relay's spool in Redis sits on the unix socket t/run made, each test's
# keys under the prefix "$BCH_ROOM:" (see lib/spool-redis.c for the keys).
# These helpers read what is stored either way, so a test of what a send
# stored or a claim left runs on both.

# on_redis: the relay keeps this test's spool in Redis.
on_redis() {
	[ -n "${BCH_TEST_RELAY:-}" ] && [ -n "${BCH_TEST_RELAY_SPOOL:-}" ]
}

# rcli ARGS...: redis-cli on that server, raw replies.
rcli() {
	redis-cli --raw -s "${BCH_TEST_RELAY_SPOOL#unix://}" "$@"
}

# forget_sent FROM ID: with the spool in Redis, drop what it remembers
# of FROM's send under client id ID (P"sent:<from> <id>", kept 15
# minutes), as if that time had passed: a retry is then told apart by
# the inboxes alone. Nothing to do elsewhere.
forget_sent() {
	if on_redis; then
		[ "$(rcli DEL "$BCH_ROOM:sent:$1 $2")" = 1 ]
	fi
}

# files_only [WHY]: skip a test about the spool's files themselves
# (modes, planted symlinks) when there are none: the spool is in Redis.
files_only() {
	! on_redis || skip "spool files only: ${1:-the spool is in Redis}"
}

# count_new AGENT: unread files in AGENT's new/ (with the spool in
# Redis, the size of AGENT's inbox).
count_new() {
	if on_redis; then
		rcli HLEN "$BCH_ROOM:new:$1"
		return
	fi
	find "$BACKCHANNEL_HOME/spool/$1/new" -name '*.json' | wc -l
}

# new_ids AGENT: the ids of AGENT's unread messages, one a line, sorted.
new_ids() {
	if on_redis; then
		rcli HKEYS "$BCH_ROOM:new:$1" | LC_ALL=C sort
		return
	fi
	find "$BACKCHANNEL_HOME/spool/$1/new" -name '*.json' -printf '%f\n' |
		sed 's/\.json$//' | LC_ALL=C sort
}

# new_json AGENT [ID]: the stored JSON of AGENT's unread message ID (or
# of every one, in id order; ID may be a unique prefix), each ending in
# a newline as a file in new/ does. Fails when there is none.
new_json() {
	local id ids n=0
	ids=$(new_ids "$1" | grep "^${2:-}") || return 1
	for id in $ids; do
		if on_redis; then
			rcli HGET "$BCH_ROOM:new:$1" "$id" | tr -d '\n'
			echo
		else
			cat "$BACKCHANNEL_HOME/spool/$1/new/$id.json" || return 1
		fi
		n=$((n + 1))
	done
	[ "$n" -gt 0 ]
}

# put_json AGENT ID JSON: store JSON as AGENT's unread message ID by
# hand, past every check a send makes (a file in new/, or the inbox hash).
put_json() {
	if on_redis; then
		rcli HSET "$BCH_ROOM:new:$1" "$2" "$3" >/dev/null
		return
	fi
	printf '%s\n' "$3" >"$BACKCHANNEL_HOME/spool/$1/new/$2.json"
}

# kept_json AGENT ID: the stored JSON of a message read with --keep.
kept_json() {
	if on_redis; then
		rcli HGET "$BCH_ROOM:kept:$1" "$2" | tr -d '\n'
		echo
		return
	fi
	cat "$BACKCHANNEL_HOME/spool/$1/cur/$2.json"
}

# record_subs AGENT: AGENT's subscriptions as stored, one a line, sorted.
record_subs() {
	if on_redis; then
		rcli LRANGE "$BCH_ROOM:subs:$1" 0 -1 | LC_ALL=C sort
		return
	fi
	tr -d ' \n' <"$BACKCHANNEL_HOME/agents/$1.json" |
		sed -n 's/.*"subscriptions":\[\([^]]*\)\].*/\1/p' | tr ',' '\n' |
		tr -d '"' | sed '/^$/d' | LC_ALL=C sort
}

# record_field AGENT FIELD: a string field of AGENT's record (createdAt,
# lastSeen, tokenHash).
record_field() {
	if on_redis; then
		rcli HGET "$BCH_ROOM:agent:$1" "$2"
		return
	fi
	tr -d ' \n' <"$BACKCHANNEL_HOME/agents/$1.json" |
		sed -n "s/.*\"$2\":\"\([^\"]*\)\".*/\1/p"
}

# set_record_field AGENT FIELD VALUE: change it where it is stored.
set_record_field() {
	if on_redis; then
		rcli HSET "$BCH_ROOM:agent:$1" "$2" "$3" >/dev/null
		return
	fi
	sed -i "s/\"$2\": \"[^\"]*\"/\"$2\": \"$3\"/" "$BACKCHANNEL_HOME/agents/$1.json"
}

# cur_ids AGENT: what reads left in AGENT's cur/, one a line, sorted: the
# id of each message read with --keep, and "<id> claimed" for a claim
# still in flight (on disk, any other file shows as it is named).
cur_ids() {
	if on_redis; then
		{
			rcli HKEYS "$BCH_ROOM:kept:$1"
			rcli HKEYS "$BCH_ROOM:claim:$1" | sed '/^$/d; s/$/ claimed/'
		} | sed '/^$/d' | LC_ALL=C sort
		return
	fi
	ls -A "$BACKCHANNEL_HOME/spool/$1/cur" |
		sed -e 's/\.json$//' -e 's/\.json\.claim\..*/ claimed/' | LC_ALL=C sort
}

# nonblocking CMD...: exec CMD with its standard output set O_NONBLOCK,
# as a harness written in Node often leaves a pipe or a terminal.
nonblocking() {
	python3 -c 'import fcntl, os, sys
fl = fcntl.fcntl(1, fcntl.F_GETFL)
fcntl.fcntl(1, fcntl.F_SETFL, fl | os.O_NONBLOCK)
os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}

# wait_for SECONDS CMD...: retry CMD until it succeeds or time runs out.
# The time is bash 5's $EPOCHREALTIME in microseconds: $SECONDS counts
# turns of the clock's second, so a wait begun late in a second gave up
# most of a second early (wait_for 3 after 2 s).
wait_for() {
	local _wf_now=${EPOCHREALTIME/[^0-9]/} _wf_end
	_wf_end=$((10#$_wf_now + $1 * 1000000))
	shift
	until "$@"; do
		_wf_now=${EPOCHREALTIME/[^0-9]/}
		[ "$((10#$_wf_now))" -lt "$_wf_end" ] || return 1
		sleep 0.05
	done
}

# tls_cert NAME: a self-signed EC certificate for localhost and 127.0.0.1,
# NAME.crt and NAME.key in the test's directory.
tls_cert() {
	command -v openssl >/dev/null || skip "openssl is not installed"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$BATS_TEST_TMPDIR/$1.key" -out "$BATS_TEST_TMPDIR/$1.crt" \
		-days 2 -subj /CN=localhost \
		-addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' 2>/dev/null
}

# fake_relay SCRIPT [ARGS...]: run the python3 stand-in relay SCRIPT in
# the background (stopped by the teardown); it prints the port it listens
# on first. Sets FAKE_URL. Skips the test when python3 is not installed.
fake_relay() {
	command -v python3 >/dev/null || skip "python3 is needed for the stand-in relay"
	rm -f "$1.port" # not the last one's port
	python3 "$@" >"$1.port" 2>"$1.err" &
	bg_pid $!
	wait_for 10 test -s "$1.port" || {
		cat "$1.err" >&2
		return 1
	}
	FAKE_URL="http://127.0.0.1:$(head -1 "$1.port")"
}
