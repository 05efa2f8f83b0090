# lib.sh: helpers shared by the benchmarks in t/bench/ (see README there).
# Sourced by each script, which runs as `sh t/bench/NAME.sh`. POSIX sh.
#
# Timing and memory come from rusage (rusage.c beside this file, compiled
# into the scratch directory): it spawns the command, waits for it with
# wait4(), and prints "<wall us> <max RSS KiB> <CPU us>" per run, the wall
# time from a monotonic clock, so no fork of ours (date, the shell's own
# loop) is in a figure.

bench_dir=$(cd "$(dirname "$0")" && pwd) || exit 1
bench_root=$(cd "$bench_dir/../.." && pwd) || exit 1
bench_name=$(basename "$0")

# Fixed-size message body: a typical note between agents, about 200 bytes
# once stored. Every generated request has the same length.
bench_body='heads up: I am refactoring publish() in lib/spool-fs.c and the batch path of bch-send; please hold changes there until I push, then rebase'

bench_die() {
	printf '%s: %s\n' "$bench_name" "$*" >&2
	exit 1
}

# bench_init: check the build, make the scratch directory, compile the
# helpers, print the header line.
bench_init() {
	for bench_p in bch bch-init bch-send bch-drain; do
		[ -x "$bench_root/bin/$bench_p" ] ||
			bench_die "$bench_root/bin/$bench_p is missing — run make first"
	done
	unset BACKCHANNEL_URL BACKCHANNEL_TOKEN BACKCHANNEL_AGENT \
		BACKCHANNEL_MAX_BODY BACKCHANNEL_MAX_INBOX
	BACKCHANNEL_FSYNC=0
	export BACKCHANNEL_FSYNC
	bench_tmp=$(mktemp -d "${TMPDIR:-/tmp}/bch-bench.XXXXXX") ||
		bench_die "cannot make a scratch directory"
	trap 'cd /; rm -rf "$bench_tmp"' EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM HUP
	# Spread the directories made under the scratch directory over the
	# file system's block groups (ext4's Orlov allocator treats them as
	# top-level, and starts its search at a hash of the name, so every
	# name carries this run's random suffix). Without a journal, ext4 will
	# not reuse an inode freed in the last seconds, and skips over each
	# one on every create: a run that creates files where an earlier run
	# (a drain, a removal) deleted thousands can take ten times as long.
	# See README. Best effort.
	chattr +T "$bench_tmp" 2>/dev/null || :
	bench_id=${bench_tmp##*.}
	HOME=$bench_tmp/user
	export HOME
	mkdir "$HOME" || bench_die "cannot create $HOME"
	cd "$bench_tmp" || bench_die "cannot enter $bench_tmp"
	# Run a snapshot of bin/, so that a rebuild while the benchmarks run
	# (make in another shell) neither breaks a run nor mixes two builds.
	# The bch dispatcher runs the programs beside itself first.
	mkdir "$bench_tmp/bin" || bench_die "cannot create $bench_tmp/bin"
	for bench_p in "$bench_root"/bin/bch "$bench_root"/bin/bch-*; do
		case $bench_p in *.c) continue ;; esac
		[ -f "$bench_p" ] && [ -x "$bench_p" ] || continue
		cp "$bench_p" "$bench_tmp/bin/" ||
			bench_die "cannot copy $bench_p"
	done
	PATH=$bench_tmp/bin:$PATH
	export PATH
	: >"$bench_tmp/summary"
	bench_seq=0
	bench_t0=$(date +%s)
	bench_cc rusage
	bench_fs=$(df -PT "$bench_tmp" | awk 'NR == 2 { print $2 }')
	bench_dev=$(df -P "$bench_tmp" | awk 'NR == 2 { print $1 }')
	case $bench_fs in
	ext3 | ext4)
		if ls "/proc/fs/jbd2/${bench_dev##*/}-"* >/dev/null 2>&1; then
			bench_fs="$bench_fs, journal"
		elif [ -d /proc/fs/jbd2 ]; then
			bench_fs="$bench_fs, no journal"
		fi
		;;
	esac
	printf '== %s: %s %s, %s CPUs, load %s; scratch %s on %s (%s)\n' \
		"$bench_name" "$(uname -s)" "$(uname -r)" \
		"$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo '?')" \
		"$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo '?')" \
		"$bench_tmp" "$bench_fs" "$bench_dev"
}

# bench_cc NAME: compile t/bench/NAME.c to $bench_tmp/NAME, with the
# files it names on a "/* with: FILE.c... */" line (sse-load.c: its TLS
# client, sse-tls.c). When one of them includes <bearssl.h>, it is linked
# with the static BearSSL the programs link.
bench_cc() {
	bench_srcs="$bench_dir/$1.c"
	for bench_f in $(sed -n 's|^/\* with: \(.*\) \*/$|\1|p' "$bench_dir/$1.c"); do
		bench_srcs="$bench_srcs $bench_dir/$bench_f"
	done
	bench_libs=
	# shellcheck disable=SC2086
	if grep -q '^#include <bearssl.h>' $bench_srcs; then
		bench_libs=-l:libbearssl.a
	fi
	# shellcheck disable=SC2086
	${CC:-cc} -std=c11 -O2 -Wall -Wextra -Werror -o "$bench_tmp/$1" \
		$bench_srcs $bench_libs || bench_die "cannot compile $1.c"
}

# bench_home: a fresh BACKCHANNEL_HOME (exported) with agents alice (the
# default identity, so the sender) and bob; sets bench_new to bob's new/.
bench_home() {
	bench_seq=$((bench_seq + 1))
	BACKCHANNEL_HOME=$bench_tmp/home.$bench_id.$bench_seq
	export BACKCHANNEL_HOME
	if ! bch init alice >/dev/null ||
		! BACKCHANNEL_AGENT=bob bch init bob >/dev/null; then
		bench_die "bch init failed in $BACKCHANNEL_HOME"
	fi
	bench_new=$BACKCHANNEL_HOME/spool/bob/new
}

# bench_lines N FILE: N send requests to @bob as JSON lines, all one size.
bench_lines() {
	awk -v n="$1" -v body="$bench_body" 'BEGIN {
		for (i = 1; i <= n; i++)
			printf "{\"to\":\"@bob\",\"body\":\"%s (%06d)\"}\n", body, i
	}' >"$2"
}

# bench_queue N: a fresh home with N messages waiting for bob, delivered by
# bch-send from standard input without fsync.
bench_queue() {
	bench_home
	[ -f "$bench_tmp/lines.$1" ] || bench_lines "$1" "$bench_tmp/lines.$1"
	BACKCHANNEL_FSYNC=0 bch-send <"$bench_tmp/lines.$1" >/dev/null ||
		bench_die "bch-send failed queueing $1 messages"
	bench_expect "$bench_new" "$1"
}

# bench_drop DIR: remove the files of a run as soon as they were counted,
# keeping its (empty) directories until the end. Files seconds old mostly
# never got a disk block (delayed allocation), so removing them is cheap;
# left until the end they reach the disk, and on a file system mounted
# with discard and without a journal each unlink then waits for a
# discard. The directories stay so that the block group the files were
# in, full of inodes just freed, does not look empty to the allocator
# and draw the next run's directory. See README.
bench_drop() {
	find "$1" -type f -exec rm -f {} + || bench_die "cannot empty $1"
}

# bench_count DIR: number of entries in DIR (our names have no newline).
bench_count() {
	ls -A "$1" | wc -l
}

# bench_expect DIR N: die unless DIR holds exactly N entries.
bench_expect() {
	bench_c=$(bench_count "$1")
	[ "$bench_c" -eq "$2" ] ||
		bench_die "expected $2 files in $1, found $bench_c"
}

# bench_run SAMPLES [rusage options] COMMAND...: run COMMAND under rusage
# (-n runs, -i stdin file, -o stdout file; both /dev/null by default) and
# append one "<wall us> <max RSS KiB> <CPU us>" line per run to SAMPLES.
bench_run() {
	bench_f=$1
	shift
	"$bench_tmp/rusage" "$@" >>"$bench_f" || bench_die "failed: $*"
}

# bench_stats SAMPLES: set bench_med (median wall us), bench_cpu (median
# CPU us), bench_rss (max KiB) and bench_n (runs) from a samples file.
bench_stats() {
	[ -s "$1" ] || bench_die "no samples in $1"
	# shellcheck disable=SC2046
	set -- $(awk '
		function median(a, n, i, j, t) {
			for (i = 2; i <= n; i++)
				for (j = i; j > 1 && a[j - 1] > a[j]; j--) {
					t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
				}
			return n % 2 ? a[(n + 1) / 2] : int((a[n / 2] + a[n / 2 + 1]) / 2)
		}
		{ w[NR] = $1; c[NR] = $3; if ($2 > m) m = $2 }
		END { print median(w, NR), median(c, NR), m, NR }' "$1")
	bench_med=$1 bench_cpu=$2 bench_rss=$3 bench_n=$4
}

# bench_us US: a time for people (us below 10 ms, then ms, then s).
bench_us() {
	awk -v u="$1" 'BEGIN {
		if (u < 10000) printf "%d us", u
		else if (u < 10000000) printf "%.1f ms", u / 1000
		else printf "%.2f s", u / 1e6
	}'
}

# bench_mib KIB: a size in MiB with two decimals.
bench_mib() {
	awk -v k="$1" 'BEGIN { printf "%.2f MiB", k / 1024 }'
}

# bench_div A B [DECIMALS]: A / B.
bench_div() {
	awk -v a="$1" -v b="$2" -v d="${3:-2}" 'BEGIN { printf "%.*f", d, a / b }'
}

# bench_target WHAT VALUE LIMIT SHOWN: check VALUE < LIMIT, record it for
# the summary, and set bench_v to "< SHOWN: ok" or "< SHOWN: MISS".
bench_target() {
	bench_ok=$(awk -v v="$2" -v l="$3" 'BEGIN { print (v + 0 < l + 0) ? "ok" : "MISS" }')
	bench_v="< $4: $bench_ok"
	printf '%-4s  %s\n' "$bench_ok" "$1" >>"$bench_tmp/summary"
}

# bench_report LABEL SAMPLES US_LIMIT KIB_LIMIT [EXTRA]: print one figure
# line: median time over the runs, EXTRA, peak RSS, and the targets (a
# limit of - means none).
bench_report() {
	bench_stats "$2"
	bench_line="$1: median $(bench_us "$bench_med") (CPU $(bench_us "$bench_cpu")) over $bench_n runs${5:-}, max RSS $(bench_mib "$bench_rss")"
	bench_tt=
	if [ "$3" != - ]; then
		bench_target "$1: $(bench_us "$bench_med") (< $(bench_us "$3"))" \
			"$bench_med" "$3" "$(bench_us "$3")"
		bench_tt=$bench_v
	fi
	if [ "$4" != - ]; then
		bench_target "$1: max RSS $bench_rss KiB (< $4 KiB)" \
			"$bench_rss" "$4" "$(bench_mib "$4")"
		bench_tt=${bench_tt:+$bench_tt, }$bench_v
	fi
	if [ -n "$bench_tt" ]; then
		echo "$bench_line [target $bench_tt]"
	else
		echo "$bench_line"
	fi
}

# bench_summary: the closing lines: every target checked, and the time.
bench_summary() {
	bench_met=$(grep -c '^ok' "$bench_tmp/summary")
	bench_missed=$(grep -c '^MISS' "$bench_tmp/summary")
	printf -- '-- %s summary: %s target(s) met, %s missed; took %s s\n' \
		"$bench_name" "$bench_met" "$bench_missed" \
		"$(($(date +%s) - bench_t0))"
	sed 's/^/   /' "$bench_tmp/summary"
}
