#!/usr/bin/env bats
# bch-notify: a desktop notification per message line, through a fixed
# notifier run with an argv array; message text is only ever data.
load helper

local_setup() {
	agents alice bob carol
	export CALLS=$BATS_TEST_TMPDIR/calls
	mkdir -p "$CALLS" fakebin
	stand_in fakebin/notify-send
	export PATH="$BATS_TEST_TMPDIR/fakebin:$PATH"
}

# stand_in PATH [EXTRA]: a notifier that records its argv in $CALLS/N,
# each argument followed by a NUL, then marks the call done with N.done.
# N is claimed with an exclusive create (set -C), so notifiers running at
# once never share one. Shell builtins only, so it runs with any PATH.
# EXTRA runs after.
stand_in() {
	cat >"$1" <<EOF
#!/bin/sh
set -C
n=1
until true 2>/dev/null >"\$CALLS/\$n"; do n=\$((n + 1)); done
set +C
for a in "\$@"; do printf '%s\0' "\$a"; done >"\$CALLS/\$n"
: >"\$CALLS/\$n.done"
${2:-}
EOF
	chmod +x "$1"
}

# ncalls: how many notifications were raised.
ncalls() {
	ls "$CALLS" | grep -c '\.done$' || true
}

calls_are() {
	[ "$(ncalls)" -eq "$1" ]
}

# argv_of N: the Nth call's arguments, into the array ARGV.
argv_of() {
	mapfile -d '' -t ARGV <"$CALLS/$1"
}

# childless PID: the process has no children (none left unreaped).
childless() {
	[ -z "$(ps -o pid= --ppid "$1")" ]
}


# inbox_of AGENT: AGENT's messages as JSON lines (claimed).
inbox_of() {
	as "$1" bch drain --jsonl
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


# send_seq ARGS...: bch send ARGS, then wait for the clock to pass the
# millisecond the send finished in, so that messages sort (by ts, then
# by random id) in the order they were sent.
send_seq() {
	bch send "$@" >/dev/null || return
	local t
	t=$(date +%s%3N)
	while [ "$(date +%s%3N)" = "$t" ]; do :; done
}

@test "each message raises notify-send with urgency, app name, title and text as separate arguments" {
	send_seq @bob PR 42 merged, rebase now
	send_seq @bob main is red --urgent
	inbox_of bob >in.jsonl
	run bch-notify <in.jsonl
	assert_success
	assert_output ''
	calls_are 2
	argv_of 1
	[ "${#ARGV[@]}" -eq 7 ]
	[ "${ARGV[*]}" = "-u normal -a backchannel -- alice -> @bob PR 42 merged, rebase now" ]
	[ "${ARGV[5]}" = 'alice -> @bob' ]
	[ "${ARGV[6]}" = 'PR 42 merged, rebase now' ]
	argv_of 2
	[ "${ARGV[1]}" = critical ]
	[ "${ARGV[5]}" = 'alice -> @bob [URGENT]' ]
	[ "${ARGV[6]}" = 'main is red' ]
}

@test "a channel message names the channel in the title" {
	as bob bch sub '#dev' >/dev/null
	send_seq '#dev' standup in 5
	inbox_of bob | bch-notify
	argv_of 1
	[ "${ARGV[5]}" = 'alice -> #dev' ]
}

@test "notify-send markup is escaped" {
	send_seq @bob "<b>bold</b> & <a href='x'>\"link\"</a>"
	inbox_of bob | bch-notify
	argv_of 1
	[ "${ARGV[6]}" = '&lt;b&gt;bold&lt;/b&gt; &amp; &lt;a href=&#39;x&#39;&gt;&quot;link&quot;&lt;/a&gt;' ]
}

@test "a body that starts with a dash stays text, after --" {
	send_seq @bob -- '-u low --help'
	inbox_of bob | bch-notify
	argv_of 1
	[ "${ARGV[4]}" = -- ]
	[ "${ARGV[6]}" = '-u low --help' ]
}

@test "the text is cut to 200 characters on a UTF-8 boundary" {
	body=$(printf 'é%.0s' {1..300})
	send_seq @bob "$body"
	send_seq @bob "$(printf 'é%.0s' {1..200})"
	inbox_of bob | bch-notify
	argv_of 1
	[ "${ARGV[6]}" = "$(printf 'é%.0s' {1..200})…" ]
	printf '%s' "${ARGV[6]}" | iconv -f UTF-8 -t UTF-8 >/dev/null
	argv_of 2
	[ "${ARGV[6]}" = "$(printf 'é%.0s' {1..200})" ]
}

@test "the text is at most 10 lines, blank lines trimmed at the ends and runs of them made one" {
	printf 'y\n%.0s' {1..300} | send_seq @bob -
	{ printf '\n%.0s' {1..200}; echo hello; } | send_seq @bob -
	printf ' \n\t\r\n\na\n\n \n\nb\n\n \n' | send_seq @bob -
	printf 'l%d\n' {1..10} | send_seq @bob -
	printf 'l%d\n\n' {1..6} | send_seq @bob -
	inbox_of bob | bch-notify --burst 10
	calls_are 5
	argv_of 1
	[ "${ARGV[6]}" = "$(printf 'y\n%.0s' {1..9})"$'\n'"y…" ]
	argv_of 2
	[ "${ARGV[6]}" = hello ]
	argv_of 3
	[ "${ARGV[6]}" = "$(printf 'a\n\nb')" ]
	argv_of 4
	[ "${ARGV[6]}" = "$(printf 'l%d\n' {1..10})" ]
	argv_of 5
	[ "${ARGV[6]}" = "$(printf 'l1\n\nl2\n\nl3\n\nl4\n\nl5…')" ]
}

@test "a body with CRLF line ends shows its lines, not a \\x0d at the end of each" {
	printf 'first\r\n\r\nsecond\r\nthird\r\n' | send_seq @bob -
	inbox_of bob | bch-notify
	argv_of 1
	[ "${ARGV[6]}" = "$(printf 'first\n\nsecond\nthird')" ]
	no_raw_escapes "$CALLS/1"
}

@test "a body cut at 200 characters after tidying never leaves a raw escape" {
	{ printf '\n%.0s' {1..50}; printf 'é%.0s' {1..199}; printf '\033[31mred'; } | send_seq @bob -
	inbox_of bob | bch-notify
	argv_of 1
	[ "${ARGV[6]}" = "$(printf 'é%.0s' {1..199})\\x1b…" ]
	no_raw_escapes "$CALLS/1"
}

@test "control sequences, C1 controls and bidi overrides are escaped, newlines kept" {
	send_seq @bob "$(printf 'a \033[31mred\033[0m \033]0;t\007 \xc2\x9b1m \xe2\x80\xaeevil\nline2')"
	inbox_of bob | bch-notify
	argv_of 1
	[ "${ARGV[6]}" = "$(printf '%s\n%s' 'a \x1b[31mred\x1b[0m \x1b]0;t\x07 \u009b1m \u202eevil' line2)" ]
	no_raw_escapes "$CALLS/1"
}

@test "bursts are coalesced: the first three, then one summary at end of input" {
	for i in 1 2 3 4; do send_seq @bob "a$i"; done
	BACKCHANNEL_AGENT=carol send_seq @bob c1 --urgent
	send_seq @bob a5
	inbox_of bob >in.jsonl
	run bch-notify <in.jsonl
	assert_success
	calls_are 4
	argv_of 3
	[ "${ARGV[6]}" = a3 ]
	argv_of 4
	[ "${ARGV[1]}" = critical ]
	[ "${ARGV[5]}" = '3 more from alice and carol [URGENT]' ]
	[[ ${ARGV[6]} == 'more than 3 messages arrived within 5 s'* ]]
	assert_line 'bch-notify: held back: alice -> @bob: a4'
	assert_line 'bch-notify: held back: carol -> @bob [URGENT]: c1'
	assert_line 'bch-notify: held back: alice -> @bob: a5'
}

@test "a burst is coalesced even when the notifier is slower than the window" {
	# A sluggish desktop (notify-send waiting on D-Bus) must not turn a
	# burst that came at once into one popup per message.
	stand_in fakebin/notify-send 'sleep 0.3'
	for i in 1 2 3 4 5 6 7 8; do send_seq @bob "m$i" --urgent; done
	inbox_of bob >in.jsonl
	run bch-notify --window 0.2 <in.jsonl
	assert_success
	calls_are 4
	argv_of 3
	[ "${ARGV[6]}" = m3 ]
	argv_of 4
	[ "${ARGV[5]}" = '5 more from alice [URGENT]' ]
	assert_line 'bch-notify: held back: alice -> @bob [URGENT]: m8'
}

@test "with --burst 1, the summary says more than 1 message" {
	for i in 1 2 3; do send_seq @bob "m$i"; done
	inbox_of bob >in.jsonl
	run bch-notify --burst 1 <in.jsonl
	assert_success
	calls_are 2
	argv_of 2
	[ "${ARGV[5]}" = '2 more from alice' ]
	[ "${ARGV[6]}" = 'more than 1 message arrived within 5 s; the rest were not shown one by one' ]
}

@test "the summary comes when the window ends, without waiting for more input" {
	for i in 1 2 3 4 5; do send_seq @bob "m$i"; done
	inbox_of bob >in.jsonl
	mkfifo feed
	bch-notify --burst 2 --window 0.5 <feed >n.out 2>n.err 3>&- &
	npid=$!
	bg_pid "$npid"
	exec 5>feed
	head -n 4 in.jsonl >&5
	wait_for 5 calls_are 3
	argv_of 3
	[ "${ARGV[5]}" = '2 more from alice' ]
	kill -0 "$npid" # still reading
	tail -n 1 in.jsonl >&5
	wait_for 5 calls_are 4
	argv_of 4
	[ "${ARGV[6]}" = m5 ]
	exec 5>&-
	wait "$npid"
	calls_are 4
}

@test "-t copies each message line to standard output, unchanged" {
	send_seq @bob one
	send_seq @bob two --urgent
	inbox_of bob >in.jsonl
	run bch-notify -t <in.jsonl
	assert_success
	[ "$output" = "$(cat in.jsonl)" ]
	calls_are 2
	inbox_of bob >/dev/null
	send_seq @bob three
	inbox_of bob | bch-notify --tee | bch-notify
	calls_are 4
}

@test "malformed lines are reported by number and skipped" {
	send_seq @bob first
	send_seq @bob last
	inbox_of bob >ok.jsonl
	{
		head -n 1 ok.jsonl
		echo 'not json'
		echo '{"to":"@bob","body":"no id"}'
		echo
		printf '{"id":"x","body":"'
		head -c 1200000 /dev/zero | tr '\0' a
		printf '"}\n'
		tail -n 1 ok.jsonl
		printf '{"half":'
	} >in.jsonl
	run bch-notify -t <in.jsonl
	assert_failure 100
	assert_line --partial 'bch-notify: line 2: malformed JSON'
	assert_line --partial 'bch-notify: line 3: missing field'
	assert_line --partial 'bch-notify: line 5: longer than'
	assert_line --partial 'bch-notify: line 7: malformed JSON'
	calls_are 2
	argv_of 2
	[ "${ARGV[6]}" = last ]
	# Only the good lines were passed on.
	bch-notify -t <in.jsonl >teed 2>/dev/null || [ $? -eq 100 ]
	[ "$(cat teed)" = "$(cat ok.jsonl)" ]
}

@test "a body over this sender's limit but within a reader's is notified" {
	# Another writer raised its limit: the reader takes the message, so
	# its notification must not be dropped by the writer's default limit.
	# Through a relay the relay is the writer, and the limit its own.
	if [ -n "${BCH_TEST_RELAY:-}" ]; then
		stop_relay
		BACKCHANNEL_MAX_BODY=200000 start_relay "$BCH_ROOM"
	fi
	BACKCHANNEL_MAX_BODY=200000 bch send @bob --urgent \
		"$(printf 'deploy broke prod; %.0s' $(seq 5000))" >/dev/null
	inbox_of bob >in.jsonl
	[ "$(wc -c <in.jsonl)" -gt 95000 ]
	run bch-notify <in.jsonl
	assert_success
	calls_are 1
	argv_of 1
	[ "${ARGV[1]}" = critical ]
	[[ ${ARGV[6]} == 'deploy broke prod; deploy broke prod;'* ]]
}

@test "bad usage exits 2" {
	run bch-notify --burst 0
	assert_failure 2
	run bch-notify --window x
	assert_failure 2
	run bch-notify extra
	assert_failure 2
	run bch-notify -h
	assert_success
	assert_output --partial 'usage: bch-notify'
}

@test "osascript gets title and text as arguments of a fixed script" {
	mkdir mac
	stand_in mac/osascript
	send_seq @bob 'say "hi" & quit' --urgent
	inbox_of bob >in.jsonl
	PATH=$BATS_TEST_TMPDIR/mac run "$T_ROOT/bin/bch-notify" <in.jsonl
	assert_success
	argv_of 1
	[ "${#ARGV[@]}" -eq 8 ]
	[ "${ARGV[0]}" = -e ]
	[ "${ARGV[1]}" = 'on run argv' ]
	[ "${ARGV[2]}" = -e ]
	[ "${ARGV[3]}" = 'display notification (item 2 of argv) with title (item 1 of argv)' ]
	[ "${ARGV[4]}" = -e ]
	[ "${ARGV[5]}" = 'end run' ]
	[ "${ARGV[6]}" = 'alice -> @bob [URGENT]' ]
	[ "${ARGV[7]}" = 'say "hi" & quit' ]
}

@test "without a notifier: a bell and a line on standard error" {
	send_seq @bob "$(printf 'fire\nin \033[31mthe\033[0m hall')" --urgent
	inbox_of bob >in.jsonl
	mkdir empty
	PATH=$BATS_TEST_TMPDIR/empty run "$T_ROOT/bin/bch-notify" <in.jsonl
	assert_success
	assert_output 'bch-notify: alice -> @bob [URGENT]: fire in \x1b[31mthe\x1b[0m hall'
	calls_are 0
}

@test "a failing notifier falls back to the line on standard error" {
	stand_in fakebin/notify-send 'exit 1'
	send_seq @bob hello
	run bch-notify < <(inbox_of bob)
	assert_success
	assert_line --partial 'notify-send exited 1'
	assert_line 'bch-notify: alice -> @bob: hello'
}

@test "the notifier can neither read the message stream nor write into it" {
	stand_in fakebin/notify-send 'cat >"$CALLS/stdin.$n"; echo NOISE'
	send_seq @bob one
	send_seq @bob two
	inbox_of bob >in.jsonl
	bch-notify -t <in.jsonl >out 2>err
	calls_are 2
	[ ! -s "$CALLS/stdin.1" ]
	[ ! -s "$CALLS/stdin.2" ]
	[ "$(cat out)" = "$(cat in.jsonl)" ]
	grep -q NOISE err
}

@test "it leaves no zombies behind" {
	for i in 1 2 3; do send_seq @bob "z$i"; done
	inbox_of bob >in.jsonl
	mkfifo feed
	bch-notify <feed 2>/dev/null 3>&- &
	npid=$!
	bg_pid "$npid"
	exec 5>feed
	cat in.jsonl >&5
	wait_for 5 calls_are 3
	# Every notifier it started has been reaped: it has no children left.
	wait_for 5 childless "$npid"
	exec 5>&-
	wait "$npid"
}

@test "SIGTERM ends it with status 0" {
	mkfifo feed
	bch-notify <feed 3>&- &
	npid=$!
	bg_pid "$npid"
	exec 5>feed
	wait_for 5 sleeping "$npid"
	kill -TERM "$npid"
	wait "$npid"
	exec 5>&-
}

@test "SIGTERM during a slow notifier raises no more notifications: the rest are logged, and it exits at once" {
	stand_in fakebin/notify-send 'sleep 2'
	for i in 1 2 3; do send_seq @bob "s$i" --urgent; done
	inbox_of bob >in.jsonl
	bch-notify -t <in.jsonl >n.out 2>n.err 3>&- &
	npid=$!
	bg_pid "$npid"
	wait_for 5 calls_are 1
	kill -TERM "$npid"
	wait "$npid"
	# Only the notification already under way was raised.
	calls_are 1
	grep -qx 'bch-notify: held back: alice -> @bob \[URGENT\]: s2' n.err
	grep -qx 'bch-notify: held back: alice -> @bob \[URGENT\]: s3' n.err
	# What it had read still went through under -t.
	[ "$(cat n.out)" = "$(cat in.jsonl)" ]
}

# --- the no-execution rule: hostile text is data ---------------------------

@test "hostile bodies through watch | notify: nothing ran, the notifier got data, no raw escape" {
	bodies=(
		'$(touch "$BATS_TEST_TMPDIR/ran1")'
		'`touch $BATS_TEST_TMPDIR/ran2`'
		"; touch $BATS_TEST_TMPDIR/ran3"
		"&& touch $BATS_TEST_TMPDIR/ran4 || touch $BATS_TEST_TMPDIR/ran4"
		"it's \"quoted\""
		'<b>bold</b> <i>x</i> &amp;'
		"$(printf 'ansi \033[31mred\033[0m \033[2J')"
		"$(printf 'osc \033]0;pwned\007 \033]52;c;cHduZWQ=\007')"
		"$(printf 'c1 \xc2\x9b31m \xc2\x9d0;x\xc2\x9c')"
		"$(printf 'bidi \xe2\x80\xaeevil')"
	)
	for b in "${bodies[@]}"; do send_seq @bob "$b" --urgent; done
	head -c 65536 /dev/zero | tr '\0' x >big.txt
	send_seq @bob - --urgent <big.txt
	# Invalid UTF-8 written straight into the spool: set aside, not shown.
	id=33333333-3333-4333-8333-333333333333
	put_json bob "$id" "$(printf '{"id":"%s","from":"alice","to":"@bob","body":"\xff\xfe $(touch %s/ran5)","priority":"urgent","ts":"2026-01-01T00:00:00.000Z"}' \
		"$id" "$BATS_TEST_TMPDIR")"
	mkfifo pipe
	BACKCHANNEL_AGENT=bob bch-watch --urgent-only >pipe 2>w.err 3>&- &
	wpid=$!
	bg_pid "$wpid"
	bch-notify --burst 100 <pipe >n.out 2>n.err 3>&- &
	npid=$!
	bg_pid "$npid"
	wait_for 10 calls_are 11
	kill -TERM "$wpid"
	wait "$wpid"
	wait "$npid"
	# Nothing ran.
	for f in ran1 ran2 ran3 ran4 ran5; do [ ! -e "$BATS_TEST_TMPDIR/$f" ]; done
	# The notifier got each text as one argument, as data.
	argv_of 1
	[ "${ARGV[6]}" = '$(touch &quot;$BATS_TEST_TMPDIR/ran1&quot;)' ]
	argv_of 2
	[ "${ARGV[6]}" = '`touch $BATS_TEST_TMPDIR/ran2`' ]
	argv_of 3
	[ "${ARGV[6]}" = "; touch $BATS_TEST_TMPDIR/ran3" ]
	argv_of 4
	[ "${ARGV[6]}" = "&amp;&amp; touch $BATS_TEST_TMPDIR/ran4 || touch $BATS_TEST_TMPDIR/ran4" ]
	argv_of 5
	[ "${ARGV[6]}" = 'it&#39;s &quot;quoted&quot;' ]
	argv_of 6
	[ "${ARGV[6]}" = '&lt;b&gt;bold&lt;/b&gt; &lt;i&gt;x&lt;/i&gt; &amp;amp;' ]
	argv_of 7
	[ "${ARGV[6]}" = 'ansi \x1b[31mred\x1b[0m \x1b[2J' ]
	argv_of 8
	[ "${ARGV[6]}" = 'osc \x1b]0;pwned\x07 \x1b]52;c;cHduZWQ=\x07' ]
	argv_of 9
	[ "${ARGV[6]}" = 'c1 \u009b31m \u009d0;x\u009c' ]
	argv_of 10
	[ "${ARGV[6]}" = 'bidi \u202eevil' ]
	argv_of 11
	[ "${ARGV[6]}" = "$(printf 'x%.0s' {1..200})…" ]
	# No raw escape anywhere a terminal or a log would see it.
	no_raw_escapes "$CALLS"/* n.out n.err w.err
	no_byte_ff "$CALLS"/* n.out n.err w.err
	# Set aside by the reader of the spool: this one, or the relay.
	if on_redis; then
		[ "$(rcli HKEYS "$BCH_ROOM:corrupt:bob")" = "$id" ]
	else
		[ -e "$BACKCHANNEL_HOME/spool/bob/corrupt" ]
	fi
	[ "$(count_new bob)" -eq 0 ]
}

@test "no program runs message text through a shell" {
	# The rule pinned in the sources: no system(), popen() or sh -c in any
	# program or library module, and the notifier's argv is fixed.
	run grep -nE '(^|[^_a-z])(system|popen)[[:space:]]*\(|"-c"' "$T_ROOT"/bin/*.c "$T_ROOT"/lib/*.c
	assert_failure 1
	run grep -n 'posix_spawn(' "$T_ROOT/lib/proc.c"
	assert_success
	run grep -nE '^[^#]*\beval\b|sh -c' "$T_ROOT/sv/bch-notify/run" "$T_ROOT/sv/bch-notify/log/run"
	assert_failure 1
}
