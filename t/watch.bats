#!/usr/bin/env bats
# bch-watch: messages printed the moment they land, claimed once.
load helper

local_setup() {
	agents alice bob
}

# watcher NAME AGENT ARGS...: start bch-watch for AGENT in the background,
# output in NAME.out, errors in NAME.err; its pid in $wpid. Returns once
# it is watching (it writes NAME.ready through --ready-fd).
watcher() {
	local name=$1 who=$2
	shift 2
	BACKCHANNEL_AGENT=$who bch-watch --ready-fd 4 "$@" >"$name.out" \
		2>"$name.err" 4>"$name.ready" 3>&- &
	wpid=$!
	bg_pid "$wpid"
	wait_for 5 test -s "$name.ready"
}

# lines FILE N: FILE has at least N lines.
lines() {
	[ "$(wc -l <"$1")" -ge "$2" ]
}

# both_have N: a.out and b.out hold N lines between them.
both_have() {
	[ "$(cat a.out b.out | wc -l)" -ge "$1" ]
}

# bodies FILE: the body of each JSON line, in order.
bodies() {
	sed 's/.*"body":"\([^"]*\)".*/\1/' "$1"
}




# send_seq ARGS...: bch send ARGS, then wait for the clock to pass the
# millisecond the send finished in, so that messages sort (by ts, then
# by random id) in the order they were sent.
send_seq() {
	bch send "$@" >/dev/null || return
	local t
	t=$(date +%s%3N)
	while [ "$(date +%s%3N)" = "$t" ]; do :; done
}

@test "watch prints a message sent by another process, as one JSON line, and claims it" {
	watcher w bob
	[ ! -s w.out ]
	send_seq @bob first
	send_seq @bob second --urgent
	send_seq @bob third
	wait_for 5 lines w.out 3
	run bodies w.out
	assert_output "$(printf '%s\n' first second third)"
	run sed -n 2p w.out
	assert_output --regexp '^\{"id":"[0-9a-f-]{36}","from":"alice","to":"@bob","body":"second","priority":"urgent","ts":"[0-9T:.Z-]{24}"\}$'
	[ "$(count_new bob)" -eq 0 ]
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
	[ ! -s w.err ]
}

@test "messages already waiting are printed first, oldest first" {
	send_seq @bob old1
	send_seq @bob old2
	watcher w bob
	wait_for 5 lines w.out 2
	send_seq @bob new1
	wait_for 5 lines w.out 3
	run bodies w.out
	assert_output "$(printf '%s\n' old1 old2 new1)"
	[ "$(count_new bob)" -eq 0 ]
}

@test "--peek shows each message once and leaves it queued" {
	send_seq @bob m1
	watcher w bob --peek
	wait_for 5 lines w.out 1
	send_seq @bob m2
	wait_for 5 lines w.out 2
	send_seq @bob m3
	wait_for 5 lines w.out 3
	# Another reader's claim makes it list again: still nothing twice.
	as bob bch-claim "$(sed -n 's/.*"id":"\([^"]*\)".*"body":"m1".*/\1/p' w.out)" >/dev/null
	send_seq @bob m4
	wait_for 5 lines w.out 4
	run bodies w.out
	assert_output "$(printf '%s\n' m1 m2 m3 m4)"
	[ "$(count_new bob)" -eq 3 ]
}

@test "two watchers on one agent never both claim a message" {
	watcher a bob
	watcher b bob
	for i in $(seq 1 60); do
		printf '{"to":"@bob","body":"n%d"}\n' "$i"
	done | bch-send >/dev/null
	wait_for 10 both_have 60
	[ "$(cat a.out b.out | wc -l)" -eq 60 ]
	[ "$(cat a.out b.out | sed 's/.*"id":"\([^"]*\)".*/\1/' | sort -u | wc -l)" -eq 60 ]
	[ "$({ bodies a.out; bodies b.out; } | sort -u | wc -l)" -eq 60 ]
	[ "$(count_new bob)" -eq 0 ]
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
}

@test "--urgent-only prints and claims only urgent messages" {
	send_seq @bob n1
	send_seq @bob u1 --urgent
	watcher w bob --urgent-only
	send_seq @bob n2
	send_seq @bob u2 --urgent
	wait_for 5 lines w.out 2
	# n2 was sent before u2, so the watcher has seen it and passed it by.
	run bodies w.out
	assert_output "$(printf '%s\n' u1 u2)"
	[ "$(count_new bob)" -eq 2 ]
	run as bob bch drain --jsonl
	assert_line --partial '"body":"n1"'
	assert_line --partial '"body":"n2"'
}

@test "--match claims its scope and unscoped messages; without it, only unscoped" {
	watcher m bob --match git@github.com:acme/api.git
	send_seq @bob s-other --scope other/x
	send_seq @bob s-acme --scope acme/api
	send_seq @bob plain
	wait_for 5 lines m.out 2
	kill "$wpid"
	wait "$wpid"
	run bodies m.out
	assert_output "$(printf '%s\n' s-acme plain)"
	[ "$(count_new bob)" -eq 1 ]
	watcher u bob
	send_seq @bob plain2
	wait_for 5 lines u.out 1
	run bodies u.out
	assert_output plain2
	[ "$(count_new bob)" -eq 1 ] # s-other: nobody here matches it
}

@test "--here matches the origin remote of the current repository" {
	mkdir -p repo/.git repo/src
	printf '[remote "origin"]\n\turl = git@github.com:acme/api.git\n' >repo/.git/config
	cd repo/src
	watcher "$BATS_TEST_TMPDIR/h" bob --here
	cd "$BATS_TEST_TMPDIR"
	send_seq @bob elsewhere --scope other/x
	send_seq @bob ours --scope github.com/acme/api
	wait_for 5 lines h.out 1
	run bodies h.out
	assert_output ours
}

@test "--peek without a match shows scoped messages too" {
	watcher p bob --peek
	send_seq @bob scoped --scope acme/api
	wait_for 5 lines p.out 1
	run bodies p.out
	assert_output scoped
	[ "$(count_new bob)" -eq 1 ]
}

@test "--brief prints the one-line human form" {
	watcher b bob --brief
	send_seq @bob "$(printf 'two\n\nlines  here')" --urgent
	wait_for 5 lines b.out 1
	run cat b.out
	assert_output --regexp '^alice -> @bob \[URGENT\] \([0-9T:.Z-]{24}, id [0-9a-f]{8}\): two lines here$'
}

@test "the inbox directories removed and made anew: watching goes on" {
	local_only "removes the spool directories"
	watcher w bob
	send_seq @bob before
	wait_for 5 lines w.out 1
	# The watcher may remake new/ while rm walks the tree: either way,
	# the directory went away under it.
	rm -rf "$BACKCHANNEL_HOME/spool/bob" 2>/dev/null || rm -rf "$BACKCHANNEL_HOME/spool/bob" || true
	send_seq @bob after-rm
	wait_for 5 lines w.out 2
	mv "$BACKCHANNEL_HOME/spool/bob" "$BACKCHANNEL_HOME/old-bob"
	rm -rf "$BACKCHANNEL_HOME/old-bob"
	mkdir -p "$BACKCHANNEL_HOME/spool/bob/new" "$BACKCHANNEL_HOME/spool/bob/tmp" "$BACKCHANNEL_HOME/spool/bob/cur"
	send_seq @bob after-mkdir
	wait_for 5 lines w.out 3
	run bodies w.out
	assert_output "$(printf '%s\n' before after-rm after-mkdir)"
	kill -0 "$wpid"
	[ "$(count_new bob)" -eq 0 ]
}

@test "SIGTERM and SIGINT end it with status 0" {
	watcher w bob
	kill -TERM "$wpid"
	wait "$wpid"
	watcher i bob
	kill -INT "$wpid"
	wait "$wpid"
	watcher h bob
	kill -HUP "$wpid"
	wait "$wpid"
}

@test "a reader that goes away loses nothing: the watch exits 0 and the message stays" {
	mkfifo pipe
	BACKCHANNEL_AGENT=bob bch-watch >pipe 2>w.err 3>&- &
	wpid=$!
	bg_pid "$wpid"
	exec 5<pipe
	send_seq @bob one
	read -r -t 5 -u 5 line
	[[ $line == *'"body":"one"'* ]]
	exec 5<&-
	# It notices its reader went away even with nothing to write...
	wait_for 5 gone "$wpid"
	wait "$wpid"
	# ...and whatever arrives next stays queued for the next reader.
	send_seq @bob two
	[ "$(count_new bob)" -eq 1 ]
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
	run as bob bch drain --jsonl
	assert_output --partial '"body":"two"'
}

@test "a closed pipe at write time returns the claim and exits 0" {
	send_seq @bob one
	send_seq @bob two
	# head reads one line and leaves: the write of a later line fails with
	# EPIPE (SIGPIPE is ignored), and that message goes back.
	as bob timeout 10 bch-watch | head -n 1 >got
	[ "${PIPESTATUS[0]}" -eq 0 ]
	grep -q '"body":"one"' got
	# "two" was either written before head left (then head read it and
	# threw it away, as a pipe allows) or returned: never stuck claimed.
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
}

@test "a failed write returns the message to the inbox and exits 111" {
	[ -w /dev/full ] || skip "no /dev/full"
	send_seq @bob kept
	run env BACKCHANNEL_AGENT=bob sh -c 'exec bch-watch >/dev/full' 
	[ "$status" -eq 111 ]
	[[ $output == *'bch-watch: cannot write to standard output'* ]]
	[ "$(count_new bob)" -eq 1 ]
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
}

# all_or_gone: w.out holds 3 lines, or the watcher $wpid has exited.
all_or_gone() {
	lines w.out 3 || gone "$wpid"
}

@test "a non-blocking standard output that fills up gets whole lines, each message once" {
	for i in 1 2 3; do
		head -c 50000 /dev/zero | tr '\0' "$i" | send_seq @bob -
	done
	mkfifo pipe
	BACKCHANNEL_AGENT=bob nonblocking bch-watch >pipe 2>w.err 3>&- &
	wpid=$!
	bg_pid "$wpid"
	# A slow reader: the pipe is full long before the first line is read.
	{ sleep 1; exec cat; } <pipe >w.out &
	bg_pid $!
	wait_for 10 all_or_gone
	run gone "$wpid"
	assert_failure # still watching
	[ ! -s w.err ]
	# Each body whole (its length, its digit), each message once, in order.
	bodies w.out | awk '{ print length, substr($0, 1, 1) }' >got
	run cat got
	assert_output "$(printf '50000 %s\n' 1 2 3)"
	[ "$(count_new bob)" -eq 0 ]
	[ -z "$(cur_ids bob)" ]
}

@test "a claim left by a killed watcher is printed by the next one" {
	local_only "plants a claim file"
	send_seq @bob orphan
	f=$(ls "$BACKCHANNEL_HOME/spool/bob/new")
	dead=$(sh -c 'echo $$')
	host=$(hostname | tr -c 'A-Za-z0-9_\n-' '_')
	mv "$BACKCHANNEL_HOME/spool/bob/new/$f" "$BACKCHANNEL_HOME/spool/bob/cur/$f.claim.$host.$dead"
	watcher w bob
	wait_for 5 lines w.out 1
	run bodies w.out
	assert_output orphan
	[ -z "$(ls "$BACKCHANNEL_HOME/spool/bob/cur")" ]
}

@test "a message whose claimer is killed while the watch runs is printed within seconds" {
	local_only "a relay returns it itself, when the claim's lease runs out"
	[ -r /proc/self/status ] || skip "no /proc"
	head -c 65536 /dev/zero | tr '\0' x >big.txt
	send_seq @bob - <big.txt
	id=$(new_ids bob)
	# A reader that claims it and then blocks writing: its line is more
	# than the pipe holds, and nobody reads the pipe.
	mkfifo pipe
	sleep 600 <>pipe &
	bg_pid $!
	BACKCHANNEL_AGENT=bob bch-claim "$id" >pipe 2>/dev/null &
	cpid=$!
	bg_pid "$cpid"
	wait_for 5 eval '[ -n "$(cur_ids bob)" ]'
	watcher w bob
	[ ! -s w.out ]
	# Killed with its claim in cur/: no message arrives, nothing wakes the
	# watch but the look it takes at the claims other readers hold.
	kill -9 "$cpid"
	wait_for 10 lines w.out 1
	[ "$(bodies w.out | tr -d '\n' | wc -c)" -eq 65536 ]
	grep -q "returned $id.json to bob's inbox: its claimer died" w.err
	[ -z "$(cur_ids bob)" ]
	# With no claim left to look at, it sleeps until a message comes.
	wait_for 5 sleeping "$wpid"
	before=$(grep ctxt_switches "/proc/$wpid/status")
	sleep 2.5 # a measurement, longer than its look at held claims
	after=$(grep ctxt_switches "/proc/$wpid/status")
	[ "$before" = "$after" ]
}

@test "an idle watcher does not wake up" {
	[ -r /proc/self/status ] || skip "no /proc"
	watcher w bob
	wait_for 5 sleeping "$wpid"
	before=$(grep ctxt_switches "/proc/$wpid/status")
	sleep 1 # a measurement, not a synchronisation
	after=$(grep ctxt_switches "/proc/$wpid/status")
	[ "$before" = "$after" ]
}

@test "an unknown agent fails with 100 and a clear line" {
	local_only "the relay refuses a stranger's token instead"
	run env BACKCHANNEL_AGENT=ghost bch-watch
	assert_failure 100
	assert_output 'bch-watch: unknown agent "ghost" — run bch init ghost first'
}

@test "bad usage exits 2 with a clear line" {
	run bch-watch --bogus
	assert_failure 2
	run bch-watch --ready-fd 9
	assert_failure 2
	assert_output --partial 'open descriptor'
	run bch-watch -h
	assert_success
	assert_output --partial 'usage: bch-watch'
}

# --- the no-execution rule: hostile text is data ---------------------------

hostile_bodies() {
	printf '%s\n' \
		'$(touch "$BATS_TEST_TMPDIR/ran1")' \
		'`touch $BATS_TEST_TMPDIR/ran2`' \
		"; touch $BATS_TEST_TMPDIR/ran3" \
		"&& touch $BATS_TEST_TMPDIR/ran4 || touch $BATS_TEST_TMPDIR/ran4" \
		"it's \"quoted\" and 'single'" \
		'<b>bold</b> <a href="x">link</a> &amp; <i>' \
		"$(printf 'ansi \033[31mred\033[0m \033[2J clear')" \
		"$(printf 'osc \033]0;pwned\007 \033]52;c;cHduZWQ=\007 title')" \
		"$(printf 'c1 \xc2\x9b31m csi \xc2\x9d0;x\xc2\x9c osc')" \
		"$(printf 'bidi \xe2\x80\xaeevil\xe2\x80\xac')"
}

# no_raw_escapes FILE...: no FILE holds an escape a terminal acts on
# (ESC, BEL, the C1 CSI and OSC, a right-to-left override). A function,
# because a "! cmd" line does not fail a bats test.
no_raw_escapes() {
	local rc=0
	LC_ALL=C grep -q $'\x1b\|\x07\|\x9b\|\x9d\|\xe2\x80\xae' "$@" || rc=$?
	[ "$rc" -eq 1 ] # 1: none found; 2 (a file missing) fails too
}

# no_byte_ff FILE...: no FILE holds the byte 0xff (never valid UTF-8).
no_byte_ff() {
	local rc=0
	LC_ALL=C grep -q $'\xff' "$@" || rc=$?
	[ "$rc" -eq 1 ]
}

@test "hostile bodies come out of watch as inert data" {
	hostile_bodies >bodies.txt
	while IFS= read -r b; do send_seq @bob "$b"; done <bodies.txt
	watcher b bob --peek --brief
	wait_for 5 lines b.out 10
	watcher j bob
	wait_for 5 lines j.out 10
	for f in ran1 ran2 ran3 ran4; do [ ! -e "$BATS_TEST_TMPDIR/$f" ]; done
	no_raw_escapes j.out
	no_raw_escapes b.out
	no_raw_escapes j.err
	grep -qF '"body":"$(touch \"$BATS_TEST_TMPDIR/ran1\")"' j.out
	grep -qF '\u001b[31mred' j.out
	grep -qF '\u009b31m' j.out
	grep -qF '\u202eevil' j.out
	grep -qF 'ansi \x1b[31mred\x1b[0m' b.out
	grep -qF '\u202eevil' b.out
}

@test "zero-width, separator, format, tag and stray selector characters come out of watch escaped" {
	raw=('\xe2\x80\x8b' '\xe2\x80\x8c' '\xe2\x80\x8d' '\xe2\x81\xa0' '\xe2\x81\xa1'
		'\xe2\x81\xa2' '\xe2\x81\xa3' '\xe2\x81\xa4' '\xef\xbb\xbf' '\xe2\x80\xa8' '\xe2\x80\xa9'
		'\xc2\xad' '\xe2\x81\xaa' '\xe3\x85\xa4'
		'\xf3\xa0\x80\x80' '\xf3\xa0\x80\x81' '\xf3\xa0\x81\x81' '\xf3\xa0\x81\xbf' '\xf0\x9d\x85\xb3')
	brief=('\u200b' '\u200c' '\u200d' '\u2060' '\u2061' '\u2062' '\u2063' '\u2064' '\ufeff'
		'\u2028' '\u2029' '\u00ad' '\u206a' '\u3164'
		'\U000e0000' '\U000e0001' '\U000e0041' '\U000e007f' '\U0001d173')
	# JSON has no escape past U+FFFF but a surrogate pair.
	json=("${brief[@]:0:14}" '\udb40\udc00' '\udb40\udc01' '\udb40\udc41' '\udb40\udc7f' '\ud834\udd73')
	body='' shown='' want=''
	for i in "${!raw[@]}"; do
		body+=$(printf "a${raw[$i]}$i;")
		shown+="a${brief[$i]}$i;"
		want+="a${json[$i]}$i;"
	done
	# Variation selectors: one at the start, one after a newline and a
	# run after an emoji are escaped; U+FE0F after an emoji is not.
	thumb=$'\xf0\x9f\x91\x8d'
	vs16=$'\xef\xb8\x8f' pair=$'\xef\xb8\x80\xef\xb8\x81'
	sel="${vs16}x $thumb$pair ok $thumb$vs16"$'\n'"$vs16"
	send_seq @bob "$body"
	send_seq @bob "$sel"
	watcher b bob --peek --brief
	wait_for 5 lines b.out 2
	watcher j bob
	wait_for 5 lines j.out 2
	grep -qF ": $shown" b.out
	grep -qF "\"body\":\"$want\"" j.out
	grep -qF ": \\ufe0fx $thumb\\ufe00\\ufe01 ok $thumb$vs16 \\ufe0f" b.out
	grep -qF "\"body\":\"\\ufe0fx $thumb\\ufe00\\ufe01 ok $thumb$vs16\\n\\ufe0f\"" j.out
	for f in b.out j.out; do
		! LC_ALL=C grep -aqE $'\xe2\x80[\x8b-\x8d\xa8\xa9]|\xe2\x81[\xa0-\xa4\xaa]|\xef\xbb\xbf|\xf3\xa0[\x80\x81]|\xc2\xad|\xe3\x85\xa4|\xf0\x9d\x85\xb3|\xef\xb8[\x80\x81]' "$f" || false
	done
	# The escapes stand for the very text sent.
	if command -v python3 >/dev/null; then
		[ "$(python3 -c 'import json, sys; sys.stdout.buffer.write(json.loads(open(sys.argv[1]).readline())["body"].encode())' j.out)" = "$body" ]
		[ "$(python3 -c 'import json, sys; sys.stdout.buffer.write(json.loads(open(sys.argv[1]).readlines()[1])["body"].encode())' j.out)" = "$sel" ]
	fi
}

@test "joiners inside Persian and Indic words and subdivision flags come out of watch as written; stray ones escaped" {
	zwnj=$'\xe2\x80\x8c' mi=$'\xd9\x85\xdb\x8c' kh=$'\xd8\xae\xd9\x88\xd8\xa7\xd9\x87\xd9\x85'
	sinhala=$'\xe0\xb7\x81\xe0\xb7\x8a\xe2\x80\x8d\xe0\xb6\xbb\xe0\xb7\x93'
	flag=$'\xf0\x9f\x8f\xb4\xf3\xa0\x81\xa7\xf3\xa0\x81\xa2\xf3\xa0\x81\xa5\xf3\xa0\x81\xae\xf3\xa0\x81\xa7\xf3\xa0\x81\xbf'
	written="$mi$zwnj$kh $sinhala $flag"
	send_seq @bob "$written x${zwnj}y x"$'\xf3\xa0\x81\xa7'
	watcher b bob --peek --brief
	wait_for 5 lines b.out 1
	watcher j bob
	wait_for 5 lines j.out 1
	grep -qF ": $written x\\u200cy x\\U000e0067" b.out
	grep -qF "\"body\":\"$written x\\u200cy x\\udb40\\udc67\"" j.out
}

@test "a 64 KiB body comes through whole" {
	head -c 65536 /dev/zero | tr '\0' x >big.txt
	send_seq @bob - <big.txt
	watcher w bob
	wait_for 5 lines w.out 1
	[ "$(bodies w.out | tr -d '\n' | wc -c)" -eq 65536 ]
}

@test "invalid UTF-8 or raw control bytes written into the spool are set aside, never printed" {
	local_only "writes files into the spool"
	watcher w bob
	new=$BACKCHANNEL_HOME/spool/bob/new
	id1=11111111-1111-4111-8111-111111111111
	id2=22222222-2222-4222-8222-222222222222
	printf '{"id":"%s","from":"alice","to":"@bob","body":"bad \xff\xfe utf8 \xc0\xaf","priority":"urgent","ts":"2026-01-01T00:00:00.000Z"}\n' "$id1" >"$BACKCHANNEL_HOME/spool/bob/tmp/$id1.json"
	mv "$BACKCHANNEL_HOME/spool/bob/tmp/$id1.json" "$new/"
	printf '{"id":"%s","from":"alice","to":"@bob","body":"raw \033]0;pwned\007 esc","priority":"urgent","ts":"2026-01-01T00:00:00.000Z"}\n' "$id2" >"$BACKCHANNEL_HOME/spool/bob/tmp/$id2.json"
	mv "$BACKCHANNEL_HOME/spool/bob/tmp/$id2.json" "$new/"
	send_seq @bob good
	wait_for 5 lines w.out 1
	wait_for 5 test -e "$BACKCHANNEL_HOME/spool/bob/corrupt"
	run bodies w.out
	assert_output good
	[ "$(ls "$BACKCHANNEL_HOME/spool/bob/corrupt" | wc -l)" -eq 2 ]
	grep -q "corrupt message $id1.json" w.err
	no_raw_escapes w.out
	no_raw_escapes w.err
	no_byte_ff w.out w.err
	kill -0 "$wpid"
}

# sse_relay MODE: a stand-in relay for alice whose inbox is empty on the
# first look and holds one message ("behind the big one") after; its
# event stream sends, per MODE, "big" the start of an event over the
# client's 1 MiB limit, then nothing more; "silent" nothing at all;
# "close" ends the stream at once, noting each open in ./opens. Sets
# the client's environment to use it.
sse_relay() {
	cat >sse.py <<'PY'
import sys, time, fakehttp
mode, looks = sys.argv[1], [0]
MSG = (b'[{"id":"c0000001-0000-4000-8000-000000000001","from":"bob",'
       b'"to":"@alice","body":"behind the big one","priority":"normal",'
       b'"ts":"2026-06-12T12:00:01.000Z"}]')
class H(fakehttp.Handler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if "/v1/events/" in self.path:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            if mode == "close":
                with open("opens", "a") as f:
                    f.write("open\n")
                self.close_connection = True
                return
            if mode == "big":
                self.wfile.write(b"data: " + b"x" * (1100 * 1024))
                self.wfile.flush()
            time.sleep(3600)
            return
        self.answer(200, MSG if looks[0] else b"[]")
        looks[0] += 1
fakehttp.serve(H, threads=True)
PY
	fake_relay sse.py "$1"
	export BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t
}

@test "an event over the size limit is dropped, and the inbox listed for what it was" {
	sse_relay big
	watcher w alice --peek
	wait_for 10 grep -q 'behind the big one' w.out
	run cat w.err
	assert_output ''
}

@test "a relay that ends each event stream at once is not asked again in a tight loop" {
	sse_relay close
	watcher w alice --peek
	sleep 3
	# Opened again after 0.25, 0.5, 1, 2 s: not thousands of times.
	[ "$(wc -l < opens)" -ge 2 ]
	[ "$(wc -l < opens)" -le 8 ]
}

# The stream's 75 s silence limit is tested once, with a stream that
# trickles (below): it takes 75 s.
@test "the links to the relay have TCP keepalive on, so a vanished peer fails" {
	command -v ss >/dev/null || skip "ss is needed to see a socket's timers"
	sse_relay silent
	watcher w alice --peek
	run ss -tnoH state established "( dport = :${FAKE_URL##*:} )"
	assert_success
	[ "${#lines[@]}" -ge 1 ]
	[ "$(grep -c 'timer:(keepalive,' <<<"$output")" = "${#lines[@]}" ]
}

# tls_stall_relay: a stand-in relay over TLS for alice (its certificate
# relay.crt) whose event stream, opened the first time, sends an event
# with an id, then the first bytes of a 4 KiB TLS record and the rest a
# byte every half second: a record that trickles, each byte well within
# the timeout of a read. Each open of the stream, with its Last-Event-ID,
# goes to ./opens; the inbox is empty until the stream is opened again.
tls_stall_relay() {
	tls_cert relay
	cat >stall.py <<'PY'
import ssl, sys, time, fakehttp
ID = "c0000001-0000-4000-8000-000000000001"
MSG = ('[{"id":"%s","from":"bob","to":"@alice","body":"after the stall",'
       '"priority":"normal","ts":"2026-06-12T12:00:01.000Z"}]' % ID).encode()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
opens = []
def serve(c):
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    t = ctx.wrap_bio(inc, out, server_side=True)
    def call(f, *a):  # f over the socket: its records out, the peer's in
        while True:
            try:
                r = f(*a)
                c.sendall(out.read())
                return r
            except ssl.SSLWantReadError:
                c.sendall(out.read())
                d = c.recv(65536)
                if not d:
                    raise EOFError
                inc.write(d)
    try:
        call(t.do_handshake)
        req = b""
        while b"\r\n\r\n" not in req:
            req += call(t.read, 65536)
        head = req.decode("latin-1").split("\r\n")
        if "/v1/events/" not in head[0]:
            body = MSG if len(opens) > 1 else b"[]"
            call(t.write, b"HTTP/1.1 200 OK\r\nContent-Type: application/json"
                 b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                 % (len(body), body))
            return
        leid = [h for h in head if h.lower().startswith("last-event-id:")]
        opens.append(leid[0] if leid else "-")
        with open("opens", "a") as f:
            f.write(opens[-1] + "\n")
        call(t.write, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"
             b"\r\n\r\nid: %s\n: hello\n\n" % ID.encode())
        if len(opens) > 1:
            time.sleep(3600)
        t.write(b": " + b"x" * 4096 + b"\n\n")
        rec = out.read()
        c.sendall(rec[:16])
        for i in range(16, len(rec)):
            time.sleep(0.5)
            c.sendall(rec[i:i + 1])
    except (OSError, EOFError, ssl.SSLError):
        pass
    finally:
        c.close()
fakehttp.serve_raw(serve)
PY
	fake_relay stall.py "$BATS_TEST_TMPDIR/relay.crt" "$BATS_TEST_TMPDIR/relay.key"
	export BACKCHANNEL_URL=https://localhost:${FAKE_URL##*:} BACKCHANNEL_TOKEN=t \
		BACKCHANNEL_CA=$BATS_TEST_TMPDIR/relay.crt
	unset BACKCHANNEL_PIN
}

@test "over TLS, a record of the event stream that trickles is given up on at the timeout, and the stream opened again" {
	tls_stall_relay
	t0=$(date +%s%N)
	BACKCHANNEL_TIMEOUT=2 watcher w alice --peek
	wait_for 15 grep -q 'after the stall' w.out
	ms=$((($(date +%s%N) - t0) / 1000000))
	echo "printed after $ms ms"
	[ "$ms" -ge 1900 ]
	[ "$ms" -lt 9000 ]
	run cat opens
	assert_line --index 0 '-'
	assert_line --index 1 'Last-Event-ID: c0000001-0000-4000-8000-000000000001'
	run cat w.err
	assert_output ''
	kill -0 "$wpid"
}

# trickle_relay: a stand-in relay over plain HTTP for alice whose event
# stream, opened the first time, sends an event with an id, then the
# start of an event that never ends, a byte every 3 s. Each open of the
# stream, with its Last-Event-ID, goes to ./opens; the inbox is empty
# until the stream is opened again.
trickle_relay() {
	cat >trickle.py <<'PY'
import time, fakehttp
ID = "c0000001-0000-4000-8000-000000000001"
MSG = ('[{"id":"%s","from":"bob","to":"@alice","body":"after the trickle",'
       '"priority":"normal","ts":"2026-06-12T12:00:01.000Z"}]' % ID).encode()
opens = []
def serve(c):
    try:
        head = fakehttp.read_head(c)
        if head is None:
            return
        if "/v1/events/" not in head[0]:
            fakehttp.answer_json(c, MSG if len(opens) > 1 else b"[]")
            return
        leid = [h for h in head if h.lower().startswith("last-event-id:")]
        opens.append(leid[0] if leid else "-")
        with open("opens", "a") as f:
            f.write(opens[-1] + "\n")
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"
                  b"\r\n\r\nid: %s\n: hello\n\n" % ID.encode())
        if len(opens) > 1:
            time.sleep(3600)
        for b in b"data: " + b"x" * 100:
            time.sleep(3)
            c.sendall(bytes([b]))
    except OSError:
        pass
    finally:
        c.close()
fakehttp.serve_raw(serve, nodelay=True)
PY
	fake_relay trickle.py
	export BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t
}

# This one takes the 75 s of the silence limit.
@test "over plain HTTP, an event stream that trickles an event that never ends is silent, and opened again" {
	local_only "runs a stand-in relay of its own, and waits out the 75 s silence limit"
	trickle_relay
	t0=$(date +%s%N)
	watcher w alice --peek
	wait_for 100 grep -q 'after the trickle' w.out
	ms=$((($(date +%s%N) - t0) / 1000000))
	echo "printed after $ms ms"
	[ "$ms" -ge 74000 ]
	run cat opens
	assert_line --index 0 '-'
	assert_line --index 1 'Last-Event-ID: c0000001-0000-4000-8000-000000000001'
	run cat w.err
	assert_output ''
	kill -0 "$wpid"
}

# slow_event_relay: a stand-in relay over plain HTTP for alice whose
# event stream brings one event of 20 KiB in five pieces 22 s apart (88 s
# in all, past the silence limit), then ends it. Each open of the stream
# goes to ./opens; the inbox lists the message once the event has come.
slow_event_relay() {
	cat >slow.py <<'PY'
import json, time, fakehttp
MSG = json.dumps({"id": "c0000002-0000-4000-8000-000000000002", "from": "bob",
                  "to": "@alice", "body": "slow event " + "y" * 20470,
                  "priority": "normal", "ts": "2026-06-12T12:00:02.000Z"}).encode()
done = []
def serve(c):
    try:
        head = fakehttp.read_head(c)
        if head is None:
            return
        if "/v1/events/" not in head[0]:
            fakehttp.answer_json(c, b"[" + MSG + b"]" if done else b"[]")
            return
        with open("opens", "a") as f:
            f.write("open\n")
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        ev = b"id: c0000002-0000-4000-8000-000000000002\ndata: " + MSG
        step = len(ev) // 5 + 1
        for i in range(0, len(ev), step):
            c.sendall(ev[i:i + step])
            time.sleep(22)
        done.append(1)
        c.sendall(b"\n\n")
        time.sleep(3600)
    except OSError:
        pass
    finally:
        c.close()
fakehttp.serve_raw(serve, nodelay=True)
PY
	fake_relay slow.py
	export BACKCHANNEL_URL=$FAKE_URL BACKCHANNEL_TOKEN=t
}

# This one takes 88 s: an event that takes longer than the silence limit.
@test "over plain HTTP, an event that keeps coming for longer than the silence limit is read, not taken for silence" {
	local_only "runs a stand-in relay of its own, and outlasts the 75 s silence limit"
	slow_event_relay
	watcher w alice --peek --brief
	wait_for 120 grep -q 'slow event' w.out
	run cat opens
	assert_output 'open'
	run cat w.err
	assert_output ''
}

@test "an event stream whose lines end in CRLF wakes the watcher" {
	local_only "starts a relay of its own"
	command -v python3 >/dev/null || skip "python3 is needed for the stand-in relay"
	# A relay that sends its events with CRLF line ends, as SSE allows;
	# its inbox holds the message only once the event is sent.
	cat > crlf.py <<'PY'
import json, time, fakehttp
m = {"id": "00000000-0000-4000-8000-000000000001", "from": "alice", "to": "@bob",
     "body": "over CRLF", "priority": "normal", "ts": "2026-01-01T00:00:00.000Z"}
sent = []
class H(fakehttp.Handler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        if not self.path.startswith("/v1/events/"):
            return self.answer(200, json.dumps(sent).encode())
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b"retry: 3000\r\n\r\n")
        self.wfile.flush()
        time.sleep(1)
        sent.append(m)
        self.wfile.write(b"id: %s\r\ndata: %s\r\n\r\n" % (m["id"].encode(), json.dumps(m).encode()))
        self.wfile.flush()
        time.sleep(10)
fakehttp.serve(H, threads=True)
PY
	python3 crlf.py > port &
	bg_pid $!
	wait_for 10 test -s port
	export BACKCHANNEL_URL="http://127.0.0.1:$(cat port)" BACKCHANNEL_TOKEN=t
	# No timeout(1) around it: its SIGCONT to the group, sent after its
	# SIGTERM, can cancel the SIGSTOP with which LeakSanitizer stops the
	# exiting watch under check-asan, and both then wait for ever.
	BACKCHANNEL_AGENT=bob bch watch --peek > out 2>err &
	bg_pid $!
	wait_for 8 grep -q 'over CRLF' out
}

@test "a watch rides out a restart of the relay and prints what came after" {
	local_only "starts a relay of its own"
	room=room-0123456789-$RANDOM$RANDOM$RANDOM
	mkdir -p relay
	# A port the relay picks and binds itself: one picked here and bound
	# after could be taken meanwhile. It is started there again below.
	bch-relayd --home relay --port 0 --token "$room" 2>relay.log &
	rpid=$!
	bg_pid $rpid
	port=$(relay_port relay.log)
	export BACKCHANNEL_HOME=$BATS_TEST_TMPDIR/client BACKCHANNEL_URL=http://127.0.0.1:$port
	bch init alice --token "$room" >/dev/null
	as bob bch init bob --token "$room" >/dev/null
	watcher w bob
	bch send @bob 'before the restart' >/dev/null
	wait_for 5 grep -q 'before the restart' w.out
	kill "$rpid"
	wait "$rpid" || true
	# Down for longer than a request's retries last (about 2.6 s).
	sleep 4
	kill -0 "$wpid"
	bch-relayd --home relay --port "$port" --token "$room" 2>>relay.log &
	bg_pid $!
	wait_for 10 eval '[ "$(grep -c listening relay.log)" -eq 2 ]'
	bch send @bob 'after the restart' >/dev/null
	wait_for 10 grep -q 'after the restart' w.out
	kill -0 "$wpid"
	# Said once when the relay went, and once when it came back.
	run cat w.err
	assert_line --index 0 --regexp "^bch-watch: relay http://127.0.0.1:$port unreachable: .* — waiting for it\$"
	assert_line --index 1 'bch-watch: the relay answers again'
	[ "${#lines[@]}" -eq 2 ]
}

# own_relay: a relay of this test's own over relay/ (its log relay.log),
# and this test's clients on it, with homes apart (client/): so that a
# tool can write into the relay's spool directly, as a local tool on the
# relay host would (local_send).
own_relay() {
	mkdir -p relay
	: >relay.log
	bch-relayd --home relay --port 0 --token "$1" 2>relay.log &
	bg_pid $!
	port=$(relay_port relay.log) || return 1
	export BACKCHANNEL_HOME=$BATS_TEST_TMPDIR/client BACKCHANNEL_URL=http://127.0.0.1:$port
	bch init alice --token "$1" >/dev/null
	as bob bch init bob --token "$1" >/dev/null
}

# local_send ARGS...: bch send as alice into the relay's spool, no relay.
local_send() {
	(
		unset BACKCHANNEL_URL BACKCHANNEL_TOKEN
		BACKCHANNEL_HOME=$BATS_TEST_TMPDIR/relay BACKCHANNEL_AGENT=alice \
			bch send "$@" >/dev/null
	)
}

@test "inboxes removed and made anew on a relay's host: local mail still reaches the watch" {
	local_only "starts a relay of its own"
	local room=room-0123456789-$RANDOM$RANDOM$RANDOM
	own_relay "$room"
	as carol bch init carol --token "$room" >/dev/null
	# carol's watch, made first, stays as bob's is made again and again.
	watcher c carol
	watcher w bob
	local box=$BATS_TEST_TMPDIR/relay/spool/bob
	local_send @bob before
	wait_for 5 lines w.out 1
	# The whole box, made again by the next local send.
	rm -rf "$box"
	local_send @bob after-rm
	wait_for 10 lines w.out 2
	# new/ alone, made again by hand; the send comes later.
	rm -rf "$box/new"
	mkdir -m 700 "$box/new"
	sleep 1.5
	local_send @bob after-mkdir
	wait_for 10 lines w.out 3
	# new/ moved away and another put in its place.
	mv "$box/new" "$box/old-new"
	mkdir -m 700 "$box/new"
	sleep 1.5
	local_send @bob after-mv
	wait_for 10 lines w.out 4
	# The box moved away, which tells new/ nothing, and made anew.
	mv "$box" "$box.old"
	mkdir -m 700 "$box" "$box/new" "$box/cur" "$box/tmp"
	local_send @bob after-box-mv
	wait_for 15 lines w.out 5
	run bodies w.out
	assert_output "$(printf '%s\n' before after-rm after-mkdir after-mv after-box-mv)"
	kill -0 "$wpid"
	local_send @carol to-carol
	wait_for 5 lines c.out 1
	run bodies c.out
	assert_output to-carol
	[ -z "$(ls "$box/new")" ]
}

@test "a watch past this user's inotify limit names the limit and the sysctl that raises it" {
	local_only "inotify watches the local spool"
	[ "$(id -u)" = 0 ] || skip "runs a user of its own: needs root"
	id nobody >/dev/null 2>&1 || skip "no user nobody"
	max=$(cat /proc/sys/fs/inotify/max_user_instances)
	[ "$max" -le 4096 ] || skip "fs.inotify.max_user_instances is $max"
	top=$(mktemp -d /tmp/bch-limit.XXXXXX)
	chmod 755 "$top"
	chown nobody "$top"
	as_nobody=(setpriv --reuid=nobody --regid="$(id -g nobody)" \
	    --clear-groups env HOME="$top" BACKCHANNEL_HOME="$top/bch" \
	    BACKCHANNEL_AGENT=bob)
	nobody() { "${as_nobody[@]}" "$@"; }
	nobody bch init bob >/dev/null
	# Every inotify instance the user may have, held open (its pid is
	# $!: setpriv and env exec it).
	"${as_nobody[@]}" python3 -c '
import ctypes, resource, sys, time
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
libc = ctypes.CDLL(None, use_errno=True)
n = 0
while libc.inotify_init1(0) >= 0:
    n += 1
print(n, ctypes.get_errno(), flush=True)
time.sleep(600)' >"$top/hog" 3>&- &
	bg_pid $!
	for _ in $(seq 100); do
		[ -s "$top/hog" ] && break
		sleep 0.1
	done
	read -r held errnum <"$top/hog"
	[ "$errnum" = 24 ] || skip "inotify instances end in errno $errnum"
	run nobody bch watch
	assert_failure 111
	assert_output "bch-watch: cannot start inotify: this user's inotify limit is reached — stop some watchers, or raise it: sysctl fs.inotify.max_user_instances"
	# A send that would wait for its reader is sent, then says why not.
	run nobody bch send --wait=1 @bob hi
	assert_failure 111
	assert_line --index 0 --regexp '^sent [0-9a-f]{8} to @bob$'
	assert_line --index 1 "bch-send: cannot start inotify: this user's inotify limit is reached — stop some watchers, or raise it: sysctl fs.inotify.max_user_instances"
	bg_stop
	rm -rf "$top"
}
