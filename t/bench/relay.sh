#!/bin/sh
# relay.sh: bch-relayd under load, all on 127.0.0.1. Sends per second
# over keep-alive with 2 and with 10,000 registered agents, and with TLS
# on; send-to-SSE latency with 1,000 subscribers of a channel (and, for
# comparison, 1,000 streams of one inbox, the same pushes with no relay
# at all (pushfloor.c), and the floor of the fan-out: the links alone),
# and the same with TLS on;
# resident memory with 10,000 idle SSE connections, plain and with TLS.
# fsync off (BACKCHANNEL_FSYNC=0). See README.
#
# Load comes from wrk (Debian package wrk) with a small Lua script for
# POST /v1/send, else from relay-load.c (beside this file), N keep-alive
# connections with one request in flight each, as wrk does. SSE clients
# come from sse-load.c: it opens the streams non-blocking, then times
# each send from its write until every stream has the event; with -t it
# speaks TLS (BearSSL) on every connection. Rooms are
# made as files: agent records with the sha256 (sha256sum) of tokens we
# choose, so 10,000 agents cost no 10,000 registrations.
# Arguments name the parts to run, of rate, lat and idle (all three when
# none is named): sh t/bench/relay.sh lat
. "$(dirname "$0")/lib.sh"
parts=${*:-rate lat idle}
for p in $parts; do
	case $p in rate | lat | idle) ;; *) bench_die "no part $p (rate, lat, idle)" ;; esac
done
want() {
	case " $parts " in *" $1 "*) return 0 ;; esac
	return 1
}
bench_init

dur=5         # seconds per send-rate run
rounds=3      # send-rate runs per room, taking turns; the median is shown
conns=${BENCH_CONNS:-100} # keep-alive connections of the load generator
many=10000    # agents in the big room
subs=1000     # SSE subscribers of the channel, for the latency figure
sends=200     # timed sends per latency figure (with 50, the p99 was the maximum)
idle=10000    # idle SSE connections for the memory figure

[ -x "$bench_root/bin/bch-relayd" ] || bench_die "bin/bch-relayd is missing — run make first"
command -v sha256sum >/dev/null || bench_die "sha256sum is missing (coreutils)"
bench_cc sse-load
if [ "${BENCH_LOAD:-}" = relay-load ]; then
	load=relay-load
	bench_cc relay-load
	echo "(BENCH_LOAD=relay-load: relay-load.c makes the load, and the TLS send rate is skipped)"
elif command -v wrk >/dev/null 2>&1; then
	load=wrk
else
	load=relay-load
	bench_cc relay-load
	echo "(wrk is not installed — apt install wrk — so relay-load.c makes the load, and the TLS send rate is skipped)"
fi

relay_pid=
trap 'relay_stop; cd /; rm -rf "$bench_tmp"' EXIT

# Descriptors: 10,000 streams need as many on each side.
ulimit -n "$(ulimit -H -n)" 2>/dev/null || :
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ "$nofile" -lt $((idle + 100)) ]; then
	idle_note="(only $((nofile - 100)) idle streams: ulimit -n is $nofile and cannot be raised)"
	idle=$((nofile - 100))
fi
watches=$(cat /proc/sys/fs/inotify/max_user_watches 2>/dev/null || echo 0)
[ "$watches" -ge "$many" ] ||
	echo "(fs.inotify.max_user_watches is $watches, under $many: the relay cannot watch every inbox)"

room_token=bench-room-$bench_id-0123456789
body="{\"to\":\"@bob\",\"body\":\"$bench_body\"}"

# make_room DIR N [CHANNEL]: a spool with N agents, as the relay's own
# registrations would leave it: alice and bob, then agent-00001... (each
# subscribed to CHANNEL if given). Tokens are 64 hex characters of our
# choosing; each record holds the sha256 hex of its token. DIR/tokens
# lists "name token" lines.
make_room() {
	mr_dir=$1 mr_n=$2 mr_chan=${3:-}
	mkdir -p "$mr_dir/agents" "$mr_dir/spool" "$mr_dir/.tok" || bench_die "cannot make $mr_dir"
	od -An -tx1 -v -N $((32 * mr_n)) /dev/urandom | tr -d ' \n' | fold -w 64 |
		awk -v n="$mr_n" -v d="$mr_dir" '
		{
			name = NR == 1 ? "alice" : NR == 2 ? "bob" : sprintf("agent-%05d", NR - 2)
			print name, $0 > (d "/tokens")
			f = d "/.tok/" name
			printf "%s", $0 > f
			close(f)
		}' || bench_die "cannot make tokens"
	(cd "$mr_dir/.tok" && sha256sum -- *) >"$mr_dir/.hashes" || bench_die "sha256sum failed"
	awk -v d="$mr_dir" -v chan="$mr_chan" '
	{
		name = $2
		sub(/^\*/, "", name)
		subs = (chan != "" && name != "alice" && name != "bob") ? "\n    \"" chan "\"\n  " : ""
		f = d "/agents/" name ".json"
		printf "{\n  \"name\": \"%s\",\n  \"subscriptions\": [%s],\n  \"createdAt\": \"2026-01-01T00:00:00.000Z\",\n  \"lastSeen\": \"2026-01-01T00:00:00.000Z\",\n  \"tokenHash\": \"%s\"\n}\n", name, subs, $1 > f
		close(f)
		print d "/spool/" name "/tmp"
		print d "/spool/" name "/new"
		print d "/spool/" name "/cur"
	}' "$mr_dir/.hashes" | (umask 077 && xargs mkdir -p) ||
		bench_die "cannot write the agent records"
	chmod 600 "$mr_dir"/agents/*.json
	rm -rf "$mr_dir/.tok" "$mr_dir/.hashes"
	[ "$(ls "$mr_dir/agents" | wc -l)" -eq "$mr_n" ] || bench_die "expected $mr_n records in $mr_dir"
}

# token_of DIR NAME
token_of() {
	awk -v n="$2" '$1 == n { print $2 }' "$1/tokens"
}

# relay_start DIR [OPTIONS...]: bch-relayd over DIR on a free port, fsync
# off, no rate limit and no inbox quota in the way; sets relay_pid and
# relay_port.
relay_start() {
	rs_dir=$1
	shift
	: >"$bench_tmp/relay.log"
	BACKCHANNEL_FSYNC=0 BACKCHANNEL_MAX_INBOX=100000000 \
		bch-relayd --home "$rs_dir" --port 0 --token "$room_token" \
		--rate 1000000000 "$@" 2>"$bench_tmp/relay.log" &
	relay_pid=$!
	rs_t=0
	until grep -q 'listening on .* port [0-9][0-9]*, spool' "$bench_tmp/relay.log"; do
		rs_t=$((rs_t + 1))
		[ "$rs_t" -lt 200 ] && kill -0 "$relay_pid" 2>/dev/null ||
			bench_die "bch-relayd did not start: $(cat "$bench_tmp/relay.log")"
		sleep 0.05
	done
	relay_port=$(sed -n 's/.* port \([0-9]*\),.*/\1/p' "$bench_tmp/relay.log")
}

relay_stop() {
	[ -n "$relay_pid" ] || return 0
	kill -TERM "$relay_pid" 2>/dev/null
	wait "$relay_pid" 2>/dev/null
	relay_pid=
}

rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# target_ge WHAT VALUE LIMIT: check VALUE >= LIMIT for the summary; sets
# bench_v as bench_target does.
target_ge() {
	tg_ok=$(awk -v v="$2" -v l="$3" 'BEGIN { print (v + 0 >= l + 0) ? "ok" : "MISS" }')
	bench_v="$tg_ok"
	printf '%-4s  %s\n' "$tg_ok" "$1" >>"$bench_tmp/summary"
}

# median FILE: the median of the numbers in FILE, one a line.
median() {
	sort -n "$1" | awk '{ a[NR] = $1 } END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# send_run DIR SCHEME WHICH: one run of POST /v1/send from alice to bob
# for $dur s over $conns connections; appends sends/s to
# $bench_tmp/rate.WHICH. The relay must be running. Answers other than
# 200 and requests that timed out (wrk: 2 s) are counted into
# $bench_tmp/errors.WHICH; every send answered 200 must be stored.
send_run() {
	sr_dir=$1 sr_scheme=$2 sr_which=$3 sr_bad=0
	sr_tok=$(token_of "$sr_dir" alice)
	sr_new=$sr_dir/spool/bob/new
	sr_before=$(bench_count "$sr_new")
	# What the last run left unwritten goes to the disk now, so that a
	# run does not also pay for the last one's writeback (the kernel's
	# flusher shares the 2 cores).
	sync
	if [ "$load" = wrk ]; then
		cat >"$bench_tmp/send.lua" <<EOF
wrk.method = "POST"
wrk.body = [[$body]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $sr_tok"
EOF
		wrk -t1 -c"$conns" -d"${dur}s" -s "$bench_tmp/send.lua" \
			"$sr_scheme://127.0.0.1:$relay_port/v1/send" >"$bench_tmp/wrk.out" 2>&1 ||
			bench_die "wrk failed: $(cat "$bench_tmp/wrk.out")"
		sr_n=$(awk '/requests in/ { print $1 }' "$bench_tmp/wrk.out")
		sr_rate=$(awk '/^Requests\/sec:/ { print $2 }' "$bench_tmp/wrk.out")
		sr_bad=$(awk '/Non-2xx/ { n += $NF }
			/Socket errors/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
			END { print n + 0 }' "$bench_tmp/wrk.out")
	else
		printf '%s' "$body" >"$bench_tmp/body.json"
		"$bench_tmp/relay-load" 127.0.0.1 "$relay_port" "$conns" "$dur" "$sr_tok" \
			"$bench_tmp/body.json" >"$bench_tmp/load.out" || bench_die "relay-load failed"
		set -- $(cat "$bench_tmp/load.out")
		sr_bad=$6
		sr_n=$4
		sr_rate=$(bench_div "$4" "$8" 0)
	fi
	sr_stored=$(($(bench_count "$sr_new") - sr_before))
	[ "$sr_stored" -ge "$sr_n" ] && [ "$sr_stored" -le $((sr_n + conns + sr_bad)) ] ||
		bench_die "$sr_n sends answered but $sr_stored stored in $sr_new"
	echo "$sr_rate" >>"$bench_tmp/rate.$sr_which"
	echo "$sr_bad" >>"$bench_tmp/errors.$sr_which"
}

# errors WHICH: ", N answers not 200 or timed out" when there were any.
errors() {
	awk '{ n += $1 } END { if (n) printf ", %d answers not 200 or timed out", n }' \
		"$bench_tmp/errors.$1"
}

# empty_inbox DIR: bob's inbox emptied between runs (relay stopped), so
# every run starts alike. The messages are moved aside, not removed: on
# ext4 without a journal (this machine's disk) the inodes of files
# removed in the last minute or more are skipped, one by one, by every
# file made after them, so a removal just before a run slows the run
# several times over. The room goes as a whole when it is done with.
empty_inbox() {
	ei_n=$((${ei_n:-0} + 1))
	mv "$1/spool/bob/new" "$1/old.$ei_n" && mkdir -m 700 "$1/spool/bob/new" ||
		bench_die "cannot empty $1/spool/bob/new"
}

# --- rooms -----------------------------------------------------------------
small=$bench_tmp/room2.$bench_id
big=$bench_tmp/room$many.$bench_id
chan=$bench_tmp/roomchan.$bench_id
chantls=$bench_tmp/roomchantls.$bench_id
t0=$(date +%s)
want rate && make_room "$small" 2
want rate || want idle && make_room "$big" "$many"
want lat && make_room "$chan" $((subs + 2)) '#bench'
# The channel latency with TLS gets a room of its own: a stream first
# replays its agent's unread messages, and the plain run leaves its sends
# unread in every subscriber's inbox.
have_tls=
if command -v openssl >/dev/null 2>&1; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$bench_tmp/key.pem" -out "$bench_tmp/cert.pem" -days 2 \
		-subj /CN=localhost -addext 'subjectAltName=DNS:localhost,IP:127.0.0.1' \
		>/dev/null 2>&1 || bench_die "openssl could not make a certificate"
	want lat && make_room "$chantls" $((subs + 2)) '#bench'
	have_tls=1
	echo "rooms made as files in $(($(date +%s) - t0)) s"
else
	echo "rooms made as files in $(($(date +%s) - t0)) s (openssl is missing: no figure with TLS)"
fi

if want rate; then
	# --- sends per second over keep-alive, 2 and 10,000 agents -----------------
	: >"$bench_tmp/rate.small"
	: >"$bench_tmp/rate.big"
	: >"$bench_tmp/errors.small"
	: >"$bench_tmp/errors.big"
	r=0
	: >"$bench_tmp/rate.tls"
	: >"$bench_tmp/errors.tls"
	# With TLS (wrk and openssl at hand), a third run each round, in turn with
	# the plain ones, so that both figures see the machine alike.
	tls_run=
	[ "$load" = wrk ] && [ -n "$have_tls" ] && tls_run=tls
	while [ "$r" -lt "$rounds" ]; do
		r=$((r + 1))
		if [ $((r % 2)) -eq 1 ]; then order="small big $tls_run"; else order="$tls_run big small"; fi
		for which in $order; do
			if [ "$which" = tls ]; then
				relay_start "$small" --cert "$bench_tmp/cert.pem" --key "$bench_tmp/key.pem"
				send_run "$small" https tls
				relay_stop
				empty_inbox "$small"
				continue
			fi
			eval "dir=\$$which"
			relay_start "$dir"
			send_run "$dir" http "$which"
			relay_stop
			empty_inbox "$dir"
		done
	done
	rate2=$(median "$bench_tmp/rate.small")
	rate_many=$(median "$bench_tmp/rate.big")
	how="$load, $conns keep-alive connections, median of $rounds runs of $dur s"
	target_ge "sends/s, 2 agents: $(bench_div "$rate2" 1 0) (>= 20000)" "$rate2" 20000
	echo "sends/s over keep-alive, 2 agents, fsync off ($how): $(bench_div "$rate2" 1 0)/s (runs: $(tr '\n' ' ' <"$bench_tmp/rate.small" | sed 's/ $//')$(errors small)) [target >= 20000/s: $bench_v]"
	target_ge "sends/s, $many agents: $(bench_div "$rate_many" 1 0) (>= 20000)" "$rate_many" 20000
	echo "sends/s over keep-alive, $many agents, fsync off ($how): $(bench_div "$rate_many" 1 0)/s (runs: $(tr '\n' ' ' <"$bench_tmp/rate.big" | sed 's/ $//')$(errors big)) [target >= 20000/s: $bench_v]"
	ratio=$(bench_div "$rate_many" "$rate2")
	target_ge "sends/s with $many agents / with 2: ${ratio}x (>= 0.9x, not falling)" "$ratio" 0.9
	echo "sends/s with $many agents / with 2: ${ratio}x [target not falling (>= 0.9x, our reading): $bench_v]"

	# --- the same with TLS on ----------------------------------------------------
	if [ -n "$tls_run" ]; then
		rate_tls=$(median "$bench_tmp/rate.tls")
		target_ge "sends/s with TLS, 2 agents: $(bench_div "$rate_tls" 1 0) (>= 20000)" "$rate_tls" 20000
		echo "sends/s over keep-alive with TLS (EC P-256), 2 agents, fsync off ($how): $(bench_div "$rate_tls" 1 0)/s (runs: $(tr '\n' ' ' <"$bench_tmp/rate.tls" | sed 's/ $//')$(errors tls)), $(bench_div "$rate_tls" "$rate2")x of plain [target >= 20000/s: $bench_v]"
	else
		echo "sends/s with TLS: skipped (needs wrk and openssl)"
	fi
	# Each room goes as soon as it is done with (see README: removing files
	# minutes old can be slow on this disk).
	rm -rf "$small"

fi

if want lat; then
	# --- send-to-SSE latency, 1,000 subscribers ----------------------------------
	# latency LABEL ROOM TOKENS TARGET [-t]: $subs streams of the names in
	# TOKENS, $sends timed sends from alice of ROOM to TARGET (with -t, all
	# over TLS); prints the median and p99 of the time until every stream had
	# a send, and of the time each stream had it; sets lat_p99 (the first)
	# and each_p99.
	latency() {
		"$bench_tmp/sse-load" ${5:+"$5"} lat 127.0.0.1 "$relay_port" "$3" "$subs" \
			"$(token_of "$2" alice)" "$4" "$sends" "$bench_tmp/each" >"$bench_tmp/lat" ||
			bench_die "sse-load failed"
		[ "$(wc -l <"$bench_tmp/lat")" -eq "$sends" ] || bench_die "sse-load timed $(wc -l <"$bench_tmp/lat") sends of $sends"
		set -- "$1" $(pcts "$bench_tmp/lat") $(pcts "$bench_tmp/each")
		lat_med=$2 lat_p99=$3 lat_max=$4 each_med=$5 each_p99=$6
		lat_line="$1: until every stream had it, median $(bench_us "$lat_med"), p99 $(bench_us "$lat_p99"), max $(bench_us "$lat_max") over $sends sends; each delivery, median $(bench_us "$each_med"), p99 $(bench_us "$each_p99") over $(wc -l <"$bench_tmp/each")"
	}

	# pcts FILE: median, p99 and max of the numbers in FILE.
	pcts() {
		sort -n "$1" | awk '{ a[NR] = $1 }
			END {
				p = int(NR * 0.99); if (p < NR * 0.99) p++
				print (NR % 2 ? a[(NR + 1) / 2] : int((a[NR / 2] + a[NR / 2 + 1]) / 2)), a[p], a[NR]
			}'
	}

	relay_start "$chan"
	grep -v '^alice \|^bob ' "$chan/tokens" >"$bench_tmp/subs.tokens"
	base=$(rss_kib "$relay_pid")
	latency "send-to-SSE latency, a channel of $subs subscribers, each on its own stream (until every stream has the event)" \
		"$chan" "$bench_tmp/subs.tokens" '#bench'
	bench_target "send-to-SSE p99, $subs channel subscribers, until every stream had it: $(bench_us "$lat_p99") (< 10 ms)" "$lat_p99" 10000 "10 ms"
	lat_v=$bench_ok
	bench_target "send-to-SSE p99, $subs channel subscribers, each delivery: $(bench_us "$each_p99") (< 10 ms)" "$each_p99" 10000 "10 ms"
	echo "$lat_line [target p99 < 10 ms: every stream $lat_v, each delivery $bench_ok]"
	relay_stop
	chan_med=$lat_med
	# The same push path without the fan-out: 1,000 streams of bob's inbox.
	relay_start "$chan"
	grep '^bob ' "$chan/tokens" >"$bench_tmp/bob.tokens"
	latency "send-to-SSE latency, $subs streams of one inbox, a DM (no fan-out: the push path alone)" \
		"$chan" "$bench_tmp/bob.tokens" '@bob'
	echo "$lat_line (for comparison, no target)"
	relay_stop
	dm_med=$lat_med dm_each=$each_p99
	# The floor under both: the same number of loopback connections, each
	# written once a round by one process and read by another through
	# epoll (pushfloor.c), with no relay, HTTP or spool between; the bytes
	# of an event as the DM run's streams had them.
	bench_cc pushfloor
	for f in "$chan/spool/bob/new/"*; do
		ev_size=$(($(wc -c <"$f") + 48)) # "id: <uuid>\ndata: " and "\n\n"
		break
	done
	"$bench_tmp/pushfloor" "$subs" "$sends" "$ev_size" "$bench_tmp/each" >"$bench_tmp/lat" ||
		bench_die "pushfloor failed"
	set -- $(pcts "$bench_tmp/lat") $(pcts "$bench_tmp/each")
	echo "the push alone: $subs loopback connections written in turn, $ev_size bytes each, and read by another process (pushfloor.c: no relay, no HTTP, no spool): until every connection had it, median $(bench_us "$1"), p99 $(bench_us "$2"); each delivery, median $(bench_us "$4"), p99 $(bench_us "$5") (the DM's each-delivery p99 was $(bench_us "$dm_each"): the floor of this machine, no target)"
	# The fan-out on this disk: the links alone, by fanout.c, into the same
	# inboxes (which hold what the runs above left there). The relay makes
	# them after the push, so they delay the sender's answer, not the
	# streams: the channel's figure is to be read against the DM's.
	bench_cc fanout
	"$bench_tmp/fanout" "$chan/spool" "$bench_tmp/subs.tokens" "$sends" 300 >"$bench_tmp/links" ||
		bench_die "fanout failed"
	set -- $(pcts "$bench_tmp/links")
	echo "the fan-out alone: one file linked into the $subs inboxes (fanout.c: no relay, no sockets), median $(bench_us "$1"), p99 $(bench_us "$2") over $sends; the relay links after it pushes, so this is off the streams' path (the channel's median was $(bench_us "$chan_med"), the DM's $(bench_us "$dm_med"); for comparison, no target)"
	rm -rf "$chan"
	# The same with TLS on: every stream and the sender, in a room of its own.
	if [ -n "$have_tls" ]; then
		relay_start "$chantls" --cert "$bench_tmp/cert.pem" --key "$bench_tmp/key.pem"
		grep -v '^alice \|^bob ' "$chantls/tokens" >"$bench_tmp/subs-tls.tokens"
		latency "send-to-SSE latency with TLS (EC P-256), a channel of $subs subscribers, each on its own stream (until every stream has the event)" \
			"$chantls" "$bench_tmp/subs-tls.tokens" '#bench' -t
		bench_target "send-to-SSE p99 with TLS, $subs channel subscribers, until every stream had it: $(bench_us "$lat_p99") (< 10 ms)" "$lat_p99" 10000 "10 ms"
		lat_v=$bench_ok
		bench_target "send-to-SSE p99 with TLS, $subs channel subscribers, each delivery: $(bench_us "$each_p99") (< 10 ms)" "$each_p99" 10000 "10 ms"
		echo "$lat_line [target p99 < 10 ms: every stream $lat_v, each delivery $bench_ok]"
		relay_stop
		rm -rf "$chantls"
	else
		echo "send-to-SSE latency with TLS: skipped (needs openssl)"
	fi

fi

if want idle; then
	# --- resident memory with 10,000 idle SSE connections, plain and TLS ---------
	# idle_rss [-t]: $idle idle streams of the big room's agents (with -t,
	# over TLS) held open against the running relay; sets base (the relay's
	# RSS before), rss (with them), up (the streams that came up), fds and
	# per (bytes per stream).
	idle_rss() {
		base=$(rss_kib "$relay_pid")
		[ -p "$bench_tmp/hold" ] || mkfifo "$bench_tmp/hold" || bench_die "cannot make a fifo"
		: >"$bench_tmp/idle.out"
		"$bench_tmp/sse-load" ${1:+"$1"} idle 127.0.0.1 "$relay_port" "$bench_tmp/idle.tokens" "$idle" \
			<"$bench_tmp/hold" >"$bench_tmp/idle.out" 2>&1 &
		idle_pid=$!
		exec 9>"$bench_tmp/hold"
		t=0
		until grep -q '^connected' "$bench_tmp/idle.out"; do
			t=$((t + 1))
			[ "$t" -lt 1200 ] && kill -0 "$idle_pid" 2>/dev/null ||
				bench_die "sse-load idle failed: $(cat "$bench_tmp/idle.out")"
			sleep 0.1
		done
		up=$(awk '/^connected/ { print $2 }' "$bench_tmp/idle.out")
		rss=$(rss_kib "$relay_pid")
		fds=$(ls "/proc/$relay_pid/fd" | wc -l)
		exec 9>&-
		wait "$idle_pid"
		per=$(bench_div $(((rss - base) * 1024)) "$up" 0)
	}

	grep -v '^alice \|^bob ' "$big/tokens" >"$bench_tmp/idle.tokens"
	relay_start "$big"
	idle_rss
	relay_stop
	bench_target "relay RSS with $up idle SSE connections: $(bench_mib "$rss") (< 64 MiB)" "$rss" 65536 "64.00 MiB"
	echo "relay RSS with $up idle SSE connections ($many agents, $fds descriptors open): $(bench_mib "$rss") ($(bench_mib "$base") before, $per bytes per connection) [target $bench_v]${idle_note:+ $idle_note}"
	[ "$up" -eq "$idle" ] || echo "(only $up of $idle streams came up)"
	if [ -n "$have_tls" ]; then
		relay_start "$big" --cert "$bench_tmp/cert.pem" --key "$bench_tmp/key.pem"
		idle_rss -t
		relay_stop
		bench_target "relay RSS with $up idle SSE connections with TLS: $(bench_mib "$rss") (< 64 MiB)" "$rss" 65536 "64.00 MiB"
		echo "relay RSS with $up idle SSE connections with TLS (EC P-256; $many agents, $fds descriptors open): $(bench_mib "$rss") ($(bench_mib "$base") before, $per bytes per connection) [target $bench_v]${idle_note:+ $idle_note}"
		[ "$up" -eq "$idle" ] || echo "(only $up of $idle streams with TLS came up)"
	else
		echo "relay RSS with idle SSE connections with TLS: skipped (needs openssl)"
	fi
	rm -rf "$big"

fi

bench_summary
