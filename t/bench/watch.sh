#!/bin/sh
# watch.sh: send-to-watch latency (median and p99 over 1,000 messages,
# fsync off, then fsync on) and the wake-ups of an idle watcher and of an
# idle `bch-watch | bch-notify` pipeline. See README.
#
# Latency is timed by lat, a small C driver written and compiled below (no
# fork of ours is in a figure): it starts one bch-watch (as bob) with its
# output on a pipe and one bch-send (as alice) reading JSON requests on a
# pipe, then for each message writes one request and waits for the
# watcher's line. So a figure is the whole path of a message through the
# spool: bch-send parses it and publishes it into new/, inotify wakes the
# watcher, which lists, claims, writes its line and deletes the claim.
# Messages go one at a time, so each is timed alone. Idle wake-ups are the
# context switches (voluntary and involuntary, /proc/<pid>/status) of a
# watcher that is waiting, over a few seconds in which nothing arrives.
. "$(dirname "$0")/lib.sh"
bench_init

n=1000      # timed messages per latency figure
warm=50     # untimed messages first (start-up, page cache)
idle=2      # seconds of idle observed

[ -x "$bench_root/bin/bch-watch" ] && [ -x "$bench_root/bin/bch-notify" ] ||
	bench_die "bch-watch or bch-notify is missing — run make first"

cat >"$bench_tmp/lat.c" <<'EOF'
/* lat N WARM: send-to-watch latency, one line per timed message, in us. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static long long
now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static pid_t
start(char *prog, int in, int out, const char *agent)
{
	char *argv[] = { prog, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;

	if (posix_spawn_file_actions_init(&fa) != 0 ||
	    (in >= 0 && posix_spawn_file_actions_adddup2(&fa, in, 0) != 0) ||
	    (out >= 0 && posix_spawn_file_actions_adddup2(&fa, out, 1) != 0) ||
	    (out < 0 && posix_spawn_file_actions_addopen(&fa, 1, "/dev/null",
	    O_WRONLY, 0) != 0) || setenv("BACKCHANNEL_AGENT", agent, 1) != 0 ||
	    posix_spawnp(&pid, prog, &fa, NULL, argv, environ) != 0) {
		perror(prog);
		exit(1);
	}
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

int
main(int argc, char **argv)
{
	static char buf[1 << 16];
	size_t have = 0;
	int n, warm, i, st, wp[2], sp[2];
	pid_t w, s;

	if (argc != 3)
		return 2;
	n = atoi(argv[1]);
	warm = atoi(argv[2]);
	signal(SIGPIPE, SIG_IGN);
	if (pipe2(wp, O_CLOEXEC) < 0 || pipe2(sp, O_CLOEXEC) < 0) {
		perror("pipe");
		return 1;
	}
	w = start("bch-watch", -1, wp[1], "bob");
	s = start("bch-send", sp[0], -1, "alice");
	close(wp[1]);
	close(sp[0]);
	for (i = 0; i < warm + n; i++) {
		char req[128], want[64], *nl;
		int len = snprintf(req, sizeof req,
		    "{\"to\":\"@bob\",\"body\":\"probe %d\"}\n", i);
		long long t0 = now(), t1;
		snprintf(want, sizeof want, "\"body\":\"probe %d\"", i);
		if (write(sp[1], req, (size_t)len) != len) {
			perror("lat: write to bch-send");
			return 1;
		}
		while (!(nl = memchr(buf, '\n', have))) {
			ssize_t r = read(wp[0], buf + have, sizeof buf - have);
			if (r <= 0) {
				fprintf(stderr, "lat: bch-watch stopped\n");
				return 1;
			}
			have += (size_t)r;
		}
		t1 = now();
		*nl = 0;
		if (!strstr(buf, want)) {
			fprintf(stderr, "lat: expected probe %d, got %s\n", i, buf);
			return 1;
		}
		have -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, have);
		if (i >= warm)
			printf("%.1f\n", (t1 - t0) / 1000.0);
	}
	close(sp[1]);
	if (waitpid(s, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "lat: bch-send failed\n");
		return 1;
	}
	kill(w, SIGTERM);
	if (waitpid(w, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "lat: bch-watch did not exit 0 on SIGTERM\n");
		return 1;
	}
	return 0;
}
EOF
${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -o "$bench_tmp/lat" \
	"$bench_tmp/lat.c" || bench_die "cannot compile lat.c"

# latency LABEL FSYNC: one figure line (median, p99, max) over n messages.
latency() {
	bench_home
	BACKCHANNEL_FSYNC=$2 "$bench_tmp/lat" "$n" "$warm" >"$bench_tmp/lat.$2" ||
		bench_die "the latency run failed"
	bench_expect "$bench_new" 0
	bench_expect "$BACKCHANNEL_HOME/spool/bob/cur" 0
	# shellcheck disable=SC2046
	set -- "$1" "$2" $(sort -n "$bench_tmp/lat.$2" | awk '
		{ t[NR] = $1 }
		END {
			med = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
			p = int(NR * 0.99 + 0.999)
			printf "%d %d %d %d\n", med, t[p], t[NR], NR
		}')
	line="$1: median $(bench_us "$3"), p99 $(bench_us "$4"), max $(bench_us "$5") over $6 messages"
	if [ "$2" = 0 ]; then
		bench_target "$1: median $(bench_us "$3") (< 2.0 ms)" "$3" 2000 "2 ms"
		echo "$line [target median $bench_v]"
	else
		echo "$line"
	fi
}

latency "send-to-watch latency, fsync off" 0
latency "send-to-watch latency, fsync on" 1

# switches PID: voluntary plus involuntary context switches so far.
switches() {
	awk '/^(voluntary|nonvoluntary)_ctxt_switches:/ { s += $2 } END { print s }' \
		"/proc/$1/status"
}

# idle_figure LABEL PID...: the wake-ups of the processes over idle s.
idle_figure() {
	bench_label=$1
	shift
	bench_b=0
	for p in "$@"; do bench_b=$((bench_b + $(switches "$p"))); done
	sleep "$idle"
	bench_a=0
	for p in "$@"; do bench_a=$((bench_a + $(switches "$p"))); done
	wakes=$((bench_a - bench_b))
	bench_target "$bench_label: $wakes wake-ups in $idle s (= 0)" "$wakes" 1 "1"
	echo "$bench_label: $wakes wake-ups in $idle s while nothing arrives [target = 0: ${bench_v##*: }]"
}

if [ -r /proc/self/status ]; then
	bench_home
	BACKCHANNEL_AGENT=bob bch-watch --ready-fd 3 >/dev/null 3>"$bench_tmp/ready" &
	wpid=$!
	t=0
	while [ ! -s "$bench_tmp/ready" ] && [ "$t" -lt 100 ]; do
		sleep 0.05
		t=$((t + 1))
	done
	[ -s "$bench_tmp/ready" ] || bench_die "bch-watch did not become ready"
	sleep 0.2 # let it settle into its wait
	idle_figure "bch-watch idle" "$wpid"
	kill "$wpid"
	wait "$wpid" || bench_die "bch-watch did not exit 0 on SIGTERM"

	mkfifo "$bench_tmp/pipe"
	rm -f "$bench_tmp/ready"
	BACKCHANNEL_AGENT=bob bch-watch --urgent-only --ready-fd 3 \
		>"$bench_tmp/pipe" 3>"$bench_tmp/ready" &
	wpid=$!
	bch-notify <"$bench_tmp/pipe" 2>/dev/null &
	npid=$!
	t=0
	while [ ! -s "$bench_tmp/ready" ] && [ "$t" -lt 100 ]; do
		sleep 0.05
		t=$((t + 1))
	done
	sleep 0.2
	idle_figure "bch-watch --urgent-only | bch-notify idle" "$wpid" "$npid"
	kill "$wpid"
	wait "$wpid" "$npid" || bench_die "the pipeline did not exit 0"
else
	echo "idle wake-ups: not measured (no /proc here)"
fi
bench_summary
