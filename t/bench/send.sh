#!/bin/sh
# send.sh: one `bch send` with and without fsync; a batch of messages
# through `bch-send` from JSON lines on stdin against the raw cost of
# create+write+rename of the same files on the same disk (raw.c). See
# README.
. "$(dirname "$0")/lib.sh"
bench_init
bench_cc raw

one_runs=50
n_nosync=10000 # messages per batch run without fsync
n_sync=1000    # with fsync: fewer, an fsync per message is slow on most disks
rounds_nosync=7 # batch runs of each kind, bch-send and raw taking turns
rounds_sync=3

# --- one message, through the dispatcher, as an agent would send it ------
bench_home
for fs in 0 1; do
	: >"$bench_tmp/s"
	BACKCHANNEL_FSYNC=$fs
	bench_run /dev/null -n 5 bch send @bob "$bench_body"
	bench_run "$bench_tmp/s" -n "$one_runs" bch send @bob "$bench_body"
	bench_report "one bch send, BACKCHANNEL_FSYNC=$fs" "$bench_tmp/s" - 2048
done
BACKCHANNEL_FSYNC=0
bench_expect "$bench_new" $((2 * (one_runs + 5)))

# --- the size of a stored message, for raw.c -----------------------------
bench_home
bench_lines 1 "$bench_tmp/one"
bch-send <"$bench_tmp/one" >/dev/null || bench_die "bch-send failed"
size=$(cat "$bench_new"/*.json | wc -c)
echo "message file: $size bytes, for a body of $((${#bench_body} + 9)) bytes (raw.c writes files of this size)"

# batch FSYNC N ROUNDS: bch-send of N requests from stdin vs raw.c of N
# files of the same size, ROUNDS runs each, alternating which goes first.
# Every run writes into a directory of its own, removed once counted (see
# README on ext4 without a journal).
batch() {
	fs=$1 n=$2 rounds=$3
	[ -f "$bench_tmp/lines.$n" ] || bench_lines "$n" "$bench_tmp/lines.$n"
	: >"$bench_tmp/s.bch" && : >"$bench_tmp/s.raw"
	r=0
	while [ "$r" -lt "$rounds" ]; do
		r=$((r + 1))
		if [ $((r % 2)) -eq 1 ]; then order="bch raw"; else order="raw bch"; fi
		for who in $order; do
			if [ "$who" = bch ]; then
				bench_home
				BACKCHANNEL_FSYNC=$fs
				bench_run "$bench_tmp/s.bch" -i "$bench_tmp/lines.$n" \
					bch-send
				BACKCHANNEL_FSYNC=0
				bench_expect "$bench_new" "$n"
				bench_drop "$BACKCHANNEL_HOME"
			else
				d=$bench_tmp/raw.$bench_id.$fs.$r
				bench_run "$bench_tmp/s.raw" "$bench_tmp/raw" "$d" "$n" \
					"$size" "$fs"
				bench_expect "$d/new" "$n"
				bench_drop "$d"
			fi
		done
	done
	bench_stats "$bench_tmp/s.raw"
	raw_med=$bench_med raw_cpu=$bench_cpu
	bench_report "raw create+write$([ "$fs" = 1 ] && echo +fsync)+rename of $n (raw.c), fsync=$fs" \
		"$bench_tmp/s.raw" - - ", $(bench_div "$bench_med" "$n" 1) us per message"
	bench_stats "$bench_tmp/s.bch"
	bch_med=$bench_med bch_cpu=$bench_cpu
	bench_report "bch-send of $n from stdin, BACKCHANNEL_FSYNC=$fs" \
		"$bench_tmp/s.bch" - 2048 ", $(bench_div "$bench_med" "$n" 1) us per message"
	ratio=$(bench_div "$bch_med" "$raw_med")
	bench_target "bch-send / raw, $n messages, fsync=$fs: ${ratio}x (< 2x)" \
		"$ratio" 2 2x
	echo "bch-send / raw, $n messages, fsync=$fs: ${ratio}x (CPU $(bench_div "$bch_cpu" "$raw_cpu")x) [target $bench_v]"
}

batch 0 "$n_nosync" "$rounds_nosync"
batch 1 "$n_sync" "$rounds_sync"
echo "(the fsync runs send $n_sync messages, not $n_nosync, $rounds_sync times each, to keep the run short)"
bench_summary
