#!/bin/sh
# drain.sh: `bch drain --jsonl > /dev/null` of a queue of 1,000, 10,000
# and 20,000 messages (is the cost per message flat?), and `bch inbox
# --json` of 10,000; fsync off throughout. See README.
. "$(dirname "$0")/lib.sh"
bench_init

# queue size:drains, each drain on a fresh queue
sizes="1000:9 10000:7 20000:3"
peeks=5 # inbox listings (they claim nothing, so one queue serves all)

# --- drain: claim, print, delete ------------------------------------------
first='' last=''
for nr in $sizes; do
	n=${nr%:*} runs=${nr#*:}
	: >"$bench_tmp/s"
	r=0
	while [ "$r" -lt "$runs" ]; do
		r=$((r + 1))
		bench_queue "$n" # a fresh home, n messages from alice to bob
		BACKCHANNEL_AGENT=bob && export BACKCHANNEL_AGENT
		bench_run "$bench_tmp/s" bch drain --jsonl
		unset BACKCHANNEL_AGENT
		bench_expect "$bench_new" 0
		bench_expect "$BACKCHANNEL_HOME/spool/bob/cur" 0
		bench_drop "$BACKCHANNEL_HOME"
	done
	bench_stats "$bench_tmp/s"
	per=$(bench_div "$bench_med" "$n" 1)
	tl=-
	[ "$n" -eq 10000 ] && tl=500000
	bench_report "bch drain --jsonl of $n" "$bench_tmp/s" "$tl" 2048 \
		", $per us per message"
	cpu=$(bench_div "$bench_cpu" "$n" 3)
	[ -n "$first" ] || first=$per first_cpu=$cpu first_n=$n
	last=$per last_cpu=$cpu last_n=$n
done
# Linearity is judged on CPU time, which a busy machine disturbs far less
# than the wall time (shown too).
ratio=$(bench_div "$last_cpu" "$first_cpu")
bench_target "drain linearity: CPU per message at $last_n / at $first_n = ${ratio}x (< 1.5x)" \
	"$ratio" 1.5 1.5x
echo "drain linearity: CPU per message at $last_n is ${ratio}x that at $first_n (wall $(bench_div "$last" "$first")x) [target $bench_v]"

# --- inbox: list without claiming -----------------------------------------
bench_queue 10000
: >"$bench_tmp/s"
BACKCHANNEL_AGENT=bob && export BACKCHANNEL_AGENT
bench_run "$bench_tmp/s" -n "$peeks" bch inbox --json
unset BACKCHANNEL_AGENT
bench_expect "$bench_new" 10000
bench_stats "$bench_tmp/s"
bench_report "bch inbox --json of 10000" "$bench_tmp/s" - 2048 \
	", $(bench_div "$bench_med" 10000 1) us per message"
bench_drop "$BACKCHANNEL_HOME"
bench_summary
