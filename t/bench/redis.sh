#!/bin/sh
# redis.sh: bch-relayd with the spool in Redis (--spool), all on this
# machine: sends per second over keep-alive with one relay on Redis, with
# two relays sharing it, and, beside them, one relay on the Maildir
# spool; Redis's own CPU while it carries them; and send-to-SSE latency
# with 1,000 subscribers of a channel (Redis and Maildir).
#
# Load comes from relay-load.c (N keep-alive connections, one request in
# flight each); two relays get one relay-load each, half the connections
# apiece, at once. SSE clients come from sse-load.c. With the spool in
# Redis every arrival reaches a relay's SSE clients through Redis pub/sub,
# whichever relay took the send, so the latency figure is the cross-relay
# one. Redis runs with appendonly yes and appendfsync no, and the Maildir
# relay with BACKCHANNEL_FSYNC=0: neither waits for the disk. Needs
# redis-server (Debian package redis-server).
. "$(dirname "$0")/lib.sh"
bench_init

dur=5      # seconds per send-rate run
rounds=3   # runs per setup, taking turns; the median is shown
conns=${BENCH_CONNS:-100} # keep-alive connections in all
subs=1000  # SSE subscribers of the channel
sends=200  # timed sends per latency figure (with 50, the p99 was the maximum)

if ! command -v redis-server >/dev/null 2>&1; then
	echo "(redis-server is not installed — apt install redis-server — so no figures)"
	exit 0
fi
command -v curl >/dev/null 2>&1 || bench_die "curl is not installed"
bench_cc relay-load
bench_cc sse-load
ulimit -n "$(ulimit -H -n)" 2>/dev/null || :

room_token=bench-room-$bench_id-0123456789
body="{\"to\":\"@bob\",\"body\":\"$bench_body\"}"
printf '%s' "$body" >"$bench_tmp/body.json"
rdir=$bench_tmp/redis
pids=
trap 'for p in $pids; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	sh "$bench_root/t/redis-server" stop "$rdir"; cd /; rm -rf "$bench_tmp"' EXIT

spool=$(sh "$bench_root/t/redis-server" start "$rdir" --appendfsync no) ||
	bench_die "cannot start redis-server"
redis_pid=$(cat "$rdir/redis.pid")

# relay NAME [OPTIONS...]: a relay on a free port; sets port_NAME.
relay() {
	r_name=$1
	shift
	mkdir -p "$bench_tmp/$r_name.home"
	BACKCHANNEL_FSYNC=0 BACKCHANNEL_MAX_INBOX=100000000 \
		bch-relayd --home "$bench_tmp/$r_name.home" --port 0 --token "$room_token" \
		--rate 1000000000 "$@" 2>"$bench_tmp/$r_name.log" &
	pids="$pids $!"
	r_t=0
	until grep -q 'listening on .* port [0-9][0-9]*, spool' "$bench_tmp/$r_name.log"; do
		r_t=$((r_t + 1))
		[ "$r_t" -lt 200 ] || bench_die "bch-relayd did not start: $(cat "$bench_tmp/$r_name.log")"
		sleep 0.05
	done
	eval "port_$r_name=$(sed -n 's/.* port \([0-9]*\),.*/\1/p' "$bench_tmp/$r_name.log")"
}

# register PORT NAME: register NAME through the relay; prints its token.
register() {
	curl -sf -H "Authorization: Bearer $room_token" -d "{\"name\":\"$2\"}" \
		"http://127.0.0.1:$1/v1/register" | sed -n 's/.*"token": *"\([0-9a-f]*\)".*/\1/p'
}

# room PORT DIR: alice, bob and $subs subscribers of #bench, through the
# relay; DIR/tokens has "name token" lines of the subscribers.
room() {
	mkdir -p "$2"
	register "$1" alice >"$2/alice" && register "$1" bob >"$2/bob" ||
		bench_die "cannot register through port $1"
	: >"$2/tokens"
	i=0
	while [ "$i" -lt "$subs" ]; do
		i=$((i + 1))
		n=$(printf 'sub-%04d' "$i")
		t=$(register "$1" "$n")
		curl -sf -o /dev/null -H "Authorization: Bearer $t" -d '{"channel":"#bench"}' \
			"http://127.0.0.1:$1/v1/subscribe" || bench_die "cannot subscribe $n"
		echo "$n $t" >>"$2/tokens"
	done
}

cpu_ticks() {
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# load ROOMDIR PORT... : alice of ROOMDIR sends to bob with relay-load on
# each port at once, $conns split among them, for $dur s; prints sends
# per second, all ports together.
load() {
	l_room=$1
	shift
	l_each=$((conns / $#))
	l_i=0
	for l_port in "$@"; do
		l_i=$((l_i + 1))
		"$bench_tmp/relay-load" 127.0.0.1 "$l_port" "$l_each" "$dur" \
			"$(cat "$l_room/alice")" "$bench_tmp/body.json" \
			>"$bench_tmp/load.$l_i" &
		eval "l_pid$l_i=$!"
	done
	l_j=0
	while [ "$l_j" -lt "$l_i" ]; do
		l_j=$((l_j + 1))
		eval "wait \$l_pid$l_j" || bench_die "relay-load failed"
	done
	cat "$bench_tmp"/load.[0-9]* | awk '{ ok += $4; bad += $6; s = $8 > s ? $8 : s }
		END { if (bad) printf "(%d answers not 200) ", bad > "/dev/stderr"; printf "%.0f\n", ok / s }'
	rm -f "$bench_tmp"/load.[0-9]*
}

median() {
	sort -n "$1" | awk '{ a[NR] = $1 } END { print NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# lat PORT ROOMDIR: p50 and p99 of send-to-every-stream, in ms.
lat() {
	"$bench_tmp/sse-load" lat 127.0.0.1 "$1" "$2/tokens" "$subs" \
		"$(cat "$2/alice")" '#bench' "$sends" >"$bench_tmp/lat" ||
		bench_die "sse-load failed"
	sort -n "$bench_tmp/lat" | awk '{ a[NR] = $1 }
		END { i = int(NR * 0.99 + 0.999); if (i > NR) i = NR
			printf "p50 %.2f ms, p99 %.2f ms\n", a[int((NR + 1) / 2)] / 1000, a[i] / 1000 }'
}

relay A --spool "$spool"
relay B --spool "$spool"
relay F
echo "making the rooms ($subs subscribers each, through the relays)..."
room "$port_A" "$bench_tmp/room"
room "$port_F" "$bench_tmp/froom"

: >"$bench_tmp/one" && : >"$bench_tmp/two" && : >"$bench_tmp/fs"
: >"$bench_tmp/cpu1" && : >"$bench_tmp/cpu2"
r=0
while [ "$r" -lt "$rounds" ]; do
	r=$((r + 1))
	c0=$(cpu_ticks "$redis_pid")
	load "$bench_tmp/room" "$port_A" >>"$bench_tmp/one"
	c1=$(cpu_ticks "$redis_pid")
	load "$bench_tmp/room" "$port_A" "$port_B" >>"$bench_tmp/two"
	c2=$(cpu_ticks "$redis_pid")
	echo $(((c1 - c0) * 100 / dur / $(getconf CLK_TCK))) >>"$bench_tmp/cpu1"
	echo $(((c2 - c1) * 100 / dur / $(getconf CLK_TCK))) >>"$bench_tmp/cpu2"
	redis-cli -s "$rdir/redis.sock" DEL bch:new:bob >/dev/null
	load "$bench_tmp/froom" "$port_F" >>"$bench_tmp/fs"
	# Moved aside, not removed: on ext4 without a journal a removal just
	# before the next run slows it several times over (relay.sh,
	# empty_inbox; README).
	mv "$bench_tmp/F.home/spool/bob/new" "$bench_tmp/F.old.$r" &&
		mkdir -m 700 "$bench_tmp/F.home/spool/bob/new" || bench_die "cannot empty bob's inbox"
done

one=$(median "$bench_tmp/one")
two=$(median "$bench_tmp/two")
fs=$(median "$bench_tmp/fs")
echo "sends/s over keep-alive ($conns connections, median of $rounds runs of $dur s):"
echo "  Maildir spool, one relay:   $fs"
echo "  Redis spool, one relay:     $one  (Redis CPU $(median "$bench_tmp/cpu1")% of a core)"
echo "  Redis spool, two relays:    $two  (Redis CPU $(median "$bench_tmp/cpu2")% of a core)"
echo "  two relays / one relay:     $(awk -v a="$two" -v b="$one" 'BEGIN { printf "%.2fx (target 1.6x)", a / b }')"
echo "send -> SSE latency, $subs subscribers of a channel, $sends sends:"
echo "  Maildir spool:              $(lat "$port_F" "$bench_tmp/froom")"
# Redis's own share of that latency: the send script's run time, from
# SLOWLOG (each call over 200 us is logged: the sends to 1,000 are).
rcmd() { redis-cli -s "$rdir/redis.sock" "$@" >/dev/null; }
rcmd CONFIG SET slowlog-max-len 4096 && rcmd CONFIG SET slowlog-log-slower-than 200 &&
	rcmd SLOWLOG RESET || bench_die "cannot set Redis's SLOWLOG"
echo "  Redis spool (via pub/sub):  $(lat "$port_B" "$bench_tmp/room")  (target p99 < 10 ms)"
redis-cli -s "$rdir/redis.sock" --json SLOWLOG GET 4096 >"$bench_tmp/slowlog" ||
	bench_die "cannot read Redis's SLOWLOG"
echo "  of which Redis ran the send script: $(python3 -c '
import json, sys
t = sorted(e[2] for e in json.load(open(sys.argv[1]))
           if e[3][0].upper() == "EVALSHA" and "#bench" in e[3])
if t:
	print("p50 %.2f ms, p99 %.2f ms (%d sends)" % (t[(len(t) - 1) // 2] / 1e3,
	      t[min(len(t) - 1, int(len(t) * 0.99 + 0.999) - 1)] / 1e3, len(t)))
else:
	print("no send took over 200 us")' "$bench_tmp/slowlog")"
echo "($(nproc) cores: the load generators, the relays and Redis share them)"
