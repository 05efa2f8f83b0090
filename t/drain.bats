#!/usr/bin/env bats
# bch drain (bch-drain) and bch inbox (bch-drain --peek): the printed
# forms, the order, what is claimed and what is left, scopes, corrupt files.
load helper
bats_require_minimum_version 1.5.0

local_setup() { agents alice bob; }

# put AGENT ID TS BODY [FIELDS]: store a message as AGENT's unread ID by
# hand, in the byte form bch-send writes; FIELDS (JSON members) go before ts.
put() {
	put_json "$1" "$2" "$(printf '{"id":"%s","from":"alice","to":"@%s","body":"%s","priority":"normal"%s,"ts":"%s"}' \
		"$2" "$1" "$4" "${5:+,$5}" "$3")"
}

# field KEY: a string field of the stored message on stdin.
field() {
	sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p"
}

# sent: the short id from the "sent XXXXXXXX to ..." line in $output.
sent() {
	[[ $output =~ ^sent\ ([0-9a-f]{8})\ to ]] && echo "${BASH_REMATCH[1]}"
}

I1=11111111-aaaa-4aaa-8aaa-111111111111
I2=22222222-bbbb-4bbb-8bbb-222222222222
I3=33333333-cccc-4ccc-8ccc-333333333333
I4=44444444-dddd-4ddd-8ddd-444444444444

@test "a sent message drains in the human form: head, scope, thread, refs, body" {
	run bch send @bob hello world --scope acme/api --thread t1 --ref a.ts --ref https://x/1
	short=$(sent)
	ts=$(new_json bob "$short" | field ts)
	run as bob bch drain --match acme/api
	assert_success
	assert_output "$(printf '%s\n' "alice -> @bob ($ts, id $short)" '  scope: acme/api' \
		'  thread: t1' '  refs: a.ts, https://x/1' 'hello world')"
}

@test "an urgent message says [URGENT] in its head; a plain one has no detail lines" {
	run bch send @bob --urgent fire
	short=$(sent)
	ts=$(new_json bob "$short" | field ts)
	run as bob bch drain
	assert_success
	assert_output "alice -> @bob [URGENT] ($ts, id $short)
fire"
}

@test "messages are separated by one blank line, and a body keeps its lines" {
	put bob "$I1" 2026-06-12T12:00:00.000Z 'line one\nline two'
	put_json bob "$I2" "$(printf '{"id":"%s","from":"carol","to":"#dev","body":"second","priority":"urgent","thread":"t9","ts":"2026-06-12T12:00:01.000Z"}' \
		"$I2")"
	run as bob bch drain
	assert_success
	assert_output "alice -> @bob (2026-06-12T12:00:00.000Z, id 11111111)
line one
line two

carol -> #dev [URGENT] (2026-06-12T12:00:01.000Z, id 22222222)
  thread: t9
second"
}

@test "inbox and drain with nothing to show print inbox empty and succeed" {
	for cmd in inbox drain; do
		run --separate-stderr as bob bch $cmd
		assert_success
		assert_output 'inbox empty'
		[ -z "$stderr" ]
		run as bob bch $cmd --brief
		assert_success
		assert_output 'inbox empty'
	done
}

@test "--json with nothing to show prints []" {
	run as bob bch drain --json
	assert_success
	assert_output '[]'
	run as bob bch inbox --json
	assert_success
	assert_output '[]'
}

@test "--jsonl with nothing to show prints nothing" {
	run as bob bch drain --jsonl
	assert_success
	assert_output ''
}

@test "--json prints an array of the stored messages, oldest first" {
	put bob "$I2" 2026-06-12T12:00:02.000Z two
	put bob "$I1" 2026-06-12T12:00:01.000Z one '"scope":"s","refs":["r1","r2"]'
	want="[$(new_json bob "$I1" | tr -d '\n'),$(new_json bob "$I2" | tr -d '\n')]"
	run as bob bch inbox --json --match s
	assert_success
	assert_equal "$(tr -d '\n' <<<"$output")" "$want"
	run as bob bch drain --json --match s
	assert_success
	assert_equal "$(tr -d '\n' <<<"$output")" "$want"
	[ "$(count_new bob)" -eq 0 ]
}

@test "--jsonl prints each stored message on its own line, oldest first" {
	bch send @bob first >/dev/null
	bch send @bob 'second, with "quotes" and a
newline' >/dev/null
	# The stored messages, in the order the spool must keep: ts, then id.
	want=$(new_json bob | while IFS= read -r m; do
		printf '%s %s\t%s\n' "$(field ts <<<"$m")" "$(field id <<<"$m")" "$m"
	done | sort | cut -f2-)
	run as bob bch drain --jsonl
	assert_success
	assert_output "$want"
	[ "${#lines[@]}" -eq 2 ]
}

@test "--brief puts each message on one line with whitespace runs made one space" {
	run bch send @bob "  fix	the

 build   now  "
	short=$(sent)
	ts=$(new_json bob "$short" | field ts)
	run as bob bch inbox --brief
	assert_success
	assert_output "alice -> @bob ($ts, id $short): fix the build now"
}

@test "--brief cuts a body longer than 120 characters at 120, ending in …" {
	long=$(printf 'x%.0s' {1..200})
	put bob "$I1" 2026-06-12T12:00:01.000Z "$long"
	exact=$(printf 'y%.0s' {1..120})
	put bob "$I2" 2026-06-12T12:00:02.000Z "$exact"
	run as bob bch inbox --brief
	assert_success
	assert_line -n 0 "alice -> @bob (2026-06-12T12:00:01.000Z, id 11111111): $(printf 'x%.0s' {1..119})…"
	assert_line -n 1 "alice -> @bob (2026-06-12T12:00:02.000Z, id 22222222): $exact"
	[ "${#lines[@]}" -eq 2 ]
}

@test "--brief counts characters, not bytes, and never splits one" {
	put bob "$I1" 2026-06-12T12:00:01.000Z "$(printf 'é%.0s' {1..200})"
	run as bob bch drain --brief
	assert_success
	assert_output "alice -> @bob (2026-06-12T12:00:01.000Z, id 11111111): $(printf 'é%.0s' {1..119})…"
}

@test "messages are ordered by ts, then by id, whatever the files are called" {
	put bob "$I4" 2026-06-12T12:00:00.000Z fourth-file-first-ts
	put bob "$I3" 2026-06-12T12:00:05.000Z third-file-last-ts
	put bob "$I2" 2026-06-12T12:00:01.000Z same-ts-larger-id
	put bob "$I1" 2026-06-12T12:00:01.000Z same-ts-smaller-id
	want=$(printf '%s\n' \
		"alice -> @bob (2026-06-12T12:00:00.000Z, id 44444444): fourth-file-first-ts" \
		"alice -> @bob (2026-06-12T12:00:01.000Z, id 11111111): same-ts-smaller-id" \
		"alice -> @bob (2026-06-12T12:00:01.000Z, id 22222222): same-ts-larger-id" \
		"alice -> @bob (2026-06-12T12:00:05.000Z, id 33333333): third-file-last-ts")
	run as bob bch inbox --brief
	assert_output "$want"
	run as bob bch drain --brief
	assert_output "$want"
}

@test "ts and ids of any form are ordered as strings: byte by byte, ts first" {
	# Most keep their usual forms; the rest (a ts without milliseconds or
	# with fewer digits, one past the year 7205, ids that are not
	# lowercase UUIDs) must fall in between exactly as strcmp puts them.
	local T=2026-06-12T12:00:01
	put bob 0first "$T.000Z" a-odd-id-first
	put bob "$I2" "$T.000Z" c-uuid-larger
	put bob m-1 "$T.000Z" e-odd-id-lowercase
	put bob "$I1" "$T.000Z" b-uuid-smaller
	put bob A1111111-aaaa-4aaa-8aaa-111111111111 "$T.000Z" d-odd-id-uppercase
	put bob "$I3" "${T}Z" i-odd-ts-no-ms
	put bob "$I4" "$T.5Z" g-odd-ts-short-ms
	put bob 55555555-eeee-4eee-8eee-555555555555 "$T.500Z" f-500
	put bob 66666666-ffff-4fff-8fff-666666666666 "$T.600Z" h-600
	put bob 77777777-aaaa-4aaa-8aaa-777777777777 7205-12-31T23:59:59.999Z j-7205
	put bob 88888888-bbbb-4bbb-8bbb-888888888888 7206-01-01T00:00:00.000Z k-7206
	put bob 99999999-cccc-4ccc-8ccc-999999999999 8000-01-01T00:00:00.000Z l-8000
	put bob 00000000-0000-4000-8000-000000000000 0000-00-00T00:00:00.000Z 0-zero
	run as bob bch inbox --brief
	assert_success
	inbox=$output
	# the bodies in the order of their letters
	assert_equal "$(sed 's/.*: //' <<<"$output" | tr '\n' ' ')" \
		"0-zero a-odd-id-first b-uuid-smaller c-uuid-larger d-odd-id-uppercase e-odd-id-lowercase f-500 g-odd-ts-short-ms h-600 i-odd-ts-no-ms j-7205 k-7206 l-8000 "
	assert_line --index 3 "alice -> @bob ($T.000Z, id 22222222): c-uuid-larger"
	assert_line --index 7 "alice -> @bob ($T.5Z, id 44444444): g-odd-ts-short-ms"
	run as bob bch drain --brief
	assert_success
	assert_equal "$output" "$inbox"
	[ "$(count_new bob)" -eq 0 ]
}

# many_json FIRST LAST TO: send requests, one a line, bodies m<N>.
many_json() {
	local i
	for ((i = $1; i <= $2; i++)); do
		printf '{"to":"%s","body":"m%d"}\n' "$3" "$i"
	done
}

# ts_id: "ts id" of each --jsonl line on stdin.
ts_id() {
	jq -r '"\(.ts) \(.id)"'
}

@test "a drain of thousands comes out complete, once each, in (ts, id) order" {
	many_json 1 2500 @bob | bch-send >/dev/null
	# and a few whose ts or id has another form, among them
	put bob 0odd-first 2000-01-01T00:00:00.000Z odd-first
	put bob m-late 2999-01-01T00:00:00Z odd-late
	put bob UPPER-CASE "$(date -u +%Y-%m-%dT%H:%M)Z" odd-now
	[ "$(count_new bob)" -eq 2503 ]
	as bob bch inbox --jsonl | ts_id > listed
	as bob bch drain --jsonl > drained
	ts_id < drained > got
	cmp listed got
	[ "$(wc -l < got)" -eq 2503 ]
	[ "$(cut -d' ' -f2 got | sort -u | wc -l)" -eq 2503 ]
	LC_ALL=C sort -c -t ' ' -k1,1 -k2,2 got
	head -n 1 got | grep -q ' 0odd-first$'
	tail -n 1 got | grep -q ' m-late$'
	for i in 1 1250 2500; do grep -q "\"body\":\"m$i\"" drained; done
	[ "$(count_new bob)" -eq 0 ]
	run as bob bch drain
	assert_output 'inbox empty'
}

@test "--here over a long inbox claims its scope's messages and the unscoped, in order, and leaves the rest" {
	repo api
	{
		many_json 1 300 @bob | sed 's/}$/,"scope":"github.com\/acme\/api"}/'
		many_json 301 600 @bob | sed 's/}$/,"scope":"github.com\/acme\/web"}/'
		many_json 601 900 @bob
	} | shuf --random-source=<(yes) | bch-send >/dev/null
	cd api
	as bob bch drain --jsonl --here > ../drained
	cd ..
	[ "$(wc -l < drained)" -eq 600 ]
	[ "$(grep -c 'acme/web' drained)" -eq 0 ]
	[ "$(grep -c '"scope":"github.com/acme/api"' drained)" -eq 300 ]
	ts_id < drained > got
	LC_ALL=C sort -c -t ' ' -k1,1 -k2,2 got
	[ "$(count_new bob)" -eq 300 ]
	run as bob bch inbox --jsonl
	[ "${#lines[@]}" -eq 300 ]
	[ "$(grep -c '"scope":"github.com/acme/web"' <<<"$output")" -eq 300 ]
}

@test "a drain onto a non-blocking standard output that fills up prints everything, once" {
	for i in 1 2 3; do
		head -c 50000 /dev/zero | tr '\0' "$i" | bch send @bob - >/dev/null
	done
	# The pipe fills long before the slow reader starts: a harness that
	# left it O_NONBLOCK must not cost a message or cut one in half.
	slow_drain() {
		as bob nonblocking bch-drain --jsonl | { sleep 1; cat; } >d.out
		return "${PIPESTATUS[0]}"
	}
	run slow_drain
	assert_success
	# Each body whole (its length, its digit), each message once, in order.
	field body <d.out | awk '{ print length, substr($0, 1, 1) }' >got
	run cat got
	assert_output "$(printf '50000 %s\n' 1 2 3)"
	[ "$(count_new bob)" -eq 0 ]
	[ -z "$(cur_ids bob)" ]
}

@test "drain claims: a second drain finds the inbox empty" {
	bch send @bob one >/dev/null
	bch send @bob two >/dev/null
	run as bob bch drain
	assert_success
	assert_output --partial one
	assert_output --partial two
	run as bob bch drain
	assert_success
	assert_output 'inbox empty'
	[ "$(count_new bob)" -eq 0 ]
	if on_redis; then
		[ "$(rcli HLEN "$BCH_ROOM:claim:bob")" -eq 0 ] && [ "$(rcli HLEN "$BCH_ROOM:kept:bob")" -eq 0 ]
	else
		[ -z "$(ls -A "$BACKCHANNEL_HOME/spool/bob/cur")" ]
	fi
}

@test "inbox claims nothing: it lists the same twice, and drain still gets them" {
	bch send @bob kept >/dev/null
	run as bob bch inbox --brief
	first=$output
	assert_output --partial ': kept'
	run as bob bch inbox --brief
	assert_equal "$output" "$first"
	[ "$(count_new bob)" -eq 1 ]
	run as bob bch drain --brief
	assert_equal "$output" "$first"
	[ "$(count_new bob)" -eq 0 ]
}

@test "drain takes only the reader's own inbox" {
	agents alice bob carol
	bch send @carol for-carol >/dev/null
	run as bob bch drain
	assert_output 'inbox empty'
	[ "$(count_new carol)" -eq 1 ]
}

@test "a scoped message is listed by inbox but not claimed by a drain without a match" {
	bch send @bob scoped --scope acme/api >/dev/null
	run as bob bch inbox --brief
	assert_output --regexp ': scoped$'
	run --separate-stderr as bob bch drain
	assert_success
	assert_output 'inbox empty'
	[ "$(count_new bob)" -eq 1 ]
}

@test "a drain that leaves scoped messages says so on standard error; the hook form does not" {
	bch send @bob scoped --scope acme/api >/dev/null
	bch send @bob other --scope acme/web >/dev/null
	bch send @bob open >/dev/null
	for form in '' --brief --json --jsonl; do
		run --separate-stderr as bob bch drain $form --match acme/api
		assert_success
		[ "$stderr" = 'bch-drain: 1 message(s) with a scope this drain does not match left queued — bch inbox lists them, bch read <id> claims one' ]
	done
	run --separate-stderr as bob bch drain
	assert_success
	assert_output 'inbox empty'
	[ "$stderr" = 'bch-drain: 1 message(s) with a scope this drain does not match left queued — bch inbox lists them, bch read <id> claims one' ]
	run --separate-stderr as bob bch drain --hook
	assert_success
	[ -z "$output" ]
	[ -z "$stderr" ]
	run --separate-stderr as bob bch inbox --brief
	[ -z "$stderr" ]
	assert_output --regexp ': other$'
	[ "$(count_new bob)" -eq 1 ]
}

@test "--match claims the unscoped messages and those whose scope it contains" {
	bch send @bob api --scope acme/api >/dev/null
	bch send @bob web --scope acme/web >/dev/null
	bch send @bob everyone >/dev/null
	run --separate-stderr as bob bch drain --brief --match git@github.com:acme/api.git
	assert_success
	assert_line --regexp ': api$'
	assert_line --regexp ': everyone$'
	refute_line --regexp ': web$'
	[ "${#lines[@]}" -eq 2 ]
	run as bob bch inbox --brief
	assert_output --regexp ': web$'
	[ "$(count_new bob)" -eq 1 ]
}

@test "inbox --match lists only what that reader could claim" {
	bch send @bob api --scope acme/api >/dev/null
	bch send @bob web --scope acme/web >/dev/null
	run as bob bch inbox --brief --match https://github.com/acme/web
	assert_output --regexp ': web$'
	[ "${#lines[@]}" -eq 1 ]
	[ "$(count_new bob)" -eq 2 ]
}

# repo DIR: a scratch repository whose origin is Acme/API on GitHub.
repo() {
	mkdir -p "$1"
	git -C "$1" init -q
	git -C "$1" remote add origin git@github.com:Acme/API.git
}

@test "--here in a repository matches its origin remote" {
	repo api
	bch send @bob for-api --scope github.com/acme/api >/dev/null
	bch send @bob for-web --scope github.com/acme/web >/dev/null
	cd api
	run --separate-stderr as bob bch drain --brief --here
	assert_success
	assert_output --regexp ': for-api$'
	[ "${#lines[@]}" -eq 1 ]
	[ "$(count_new bob)" -eq 1 ]
}

@test "--here in a checkout cloned over ssh:// matches a scope of host/owner/repo" {
	mkdir api
	git -C api init -q
	git -C api remote add origin ssh://git@github.com:22/Acme/API.git
	bch send @bob for-api --scope github.com/acme/api >/dev/null
	bch send @bob for-web --scope github.com/acme/web >/dev/null
	cd api
	run --separate-stderr as bob bch drain --brief --here
	assert_success
	assert_output --regexp ': for-api$'
	[ "${#lines[@]}" -eq 1 ]
	[ "$(count_new bob)" -eq 1 ]
}

@test "--here from a subdirectory of the repository matches its origin remote" {
	repo api
	mkdir -p api/src/deep
	bch send @bob for-api --scope acme/api >/dev/null
	bch send @bob for-web --scope acme/web >/dev/null
	cd api/src/deep
	run --separate-stderr as bob bch drain --brief --here
	assert_output --regexp ': for-api$'
	[ "${#lines[@]}" -eq 1 ]
}

@test "--here in a linked worktree matches the main repository's origin" {
	repo api
	git -C api -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m init
	git -C api worktree add -q ../wt
	[ -f wt/.git ]
	bch send @bob for-api --scope acme/api >/dev/null
	bch send @bob for-web --scope acme/web >/dev/null
	cd wt
	run --separate-stderr as bob bch drain --brief --here
	assert_output --regexp ': for-api$'
	[ "${#lines[@]}" -eq 1 ]
}

@test "--here outside any repository matches the working directory" {
	mkdir plain
	cd plain
	here=$(pwd -P)
	if git rev-parse --git-dir >/dev/null 2>&1; then
		skip "the test directory is inside a git repository"
	fi
	bch send @bob for-here --scope "$here" >/dev/null
	bch send @bob for-api --scope acme/api >/dev/null
	run --separate-stderr as bob bch drain --brief --here
	assert_output --regexp ': for-here$'
	[ "${#lines[@]}" -eq 1 ]
	[ "$(count_new bob)" -eq 1 ]
}

@test "--here in a repository without origin matches its top directory" {
	mkdir -p bare/sub
	git -C bare init -q
	top=$(cd bare && pwd -P)
	bch send @bob for-top --scope "$top" >/dev/null
	bch send @bob for-api --scope acme/api >/dev/null
	cd bare/sub
	run --separate-stderr as bob bch drain --brief --here
	assert_output --regexp ': for-top$'
	[ "${#lines[@]}" -eq 1 ]
}

@test "control characters in a message are escaped on output; newline and tab are kept" {
	bch send @bob "$(printf 'a\033[2Jb\tc\nd\a')" >/dev/null
	run as bob bch drain
	assert_line 'a\x1b[2Jb	c'
	assert_line 'd\x07'
	refute_output --partial $'\033'
}

# corrupt_files: one bad file of each kind in bob's new/, between two good
# messages. Prints the names.
corrupt_files() {
	local n="$BACKCHANNEL_HOME/spool/bob/new"
	put bob "$I1" 2026-06-12T12:00:00.000Z before
	echo 'garbage, not JSON at all' > "$n/c0000001-0000-4000-8000-000000000001.json"
	printf '{"id":"c0000002-0000-4000-8000-000000000002","from":"alice","to":"@bob","bo' \
		> "$n/c0000002-0000-4000-8000-000000000002.json"
	echo '{"id":"c0000003-0000-4000-8000-000000000003","from":"alice","to":"@bob","priority":"normal","ts":"2026-06-12T12:00:01.000Z"}' \
		> "$n/c0000003-0000-4000-8000-000000000003.json"
	printf '{"id":"c0000004-0000-4000-8000-000000000004","from":"alice","to":"@bob","body":"bad \xff\xfe bytes","priority":"normal","ts":"2026-06-12T12:00:01.000Z"}\n' \
		> "$n/c0000004-0000-4000-8000-000000000004.json"
	echo '{"id":"c0000005-0000-4000-8000-000000000005","from":"alice","to":"@bob","body":42,"priority":"normal","ts":"2026-06-12T12:00:01.000Z"}' \
		> "$n/c0000005-0000-4000-8000-000000000005.json"
	echo '{"id":"c0000006-0000-4000-8000-000000000006","from":"alice","to":"@bob","body":"x","priority":"normal","refs":"a.ts","ts":"2026-06-12T12:00:01.000Z"}' \
		> "$n/c0000006-0000-4000-8000-000000000006.json"
	put bob "$I2" 2026-06-12T12:00:02.000Z after
}

@test "corrupt files are reported, moved to corrupt/, and the messages behind them delivered" {
	local_only "on a relay, the relay reads the files and reports them"
	corrupt_files
	run --separate-stderr as bob bch drain --brief
	assert_success
	assert_output "alice -> @bob (2026-06-12T12:00:00.000Z, id 11111111): before
alice -> @bob (2026-06-12T12:00:02.000Z, id 22222222): after"
	for k in 1 2 3 4 5 6; do
		grep -q "c000000$k-0000-4000-8000-00000000000$k.json.*moved to spool/bob/corrupt/" <<<"$stderr"
		ls "$BACKCHANNEL_HOME/spool/bob/corrupt/" | grep -q "^c000000$k-"
	done
	[ "$(grep -c . <<<"$stderr")" -eq 6 ]
	[ "$(count_new bob)" -eq 0 ]
	[ "$(find "$BACKCHANNEL_HOME/spool/bob/corrupt" -type f | wc -l)" -eq 6 ]
}

@test "each corrupt file is reported with its reason" {
	local_only "on a relay, the relay reads the files and reports them"
	corrupt_files
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	grep -q 'c0000001.*malformed JSON' <<<"$stderr"
	grep -q 'c0000002.*malformed JSON' <<<"$stderr"
	grep -q 'c0000003.*missing field "body"' <<<"$stderr"
	grep -q 'c0000004.*UTF-8' <<<"$stderr"
	grep -q 'c0000005.*"body" must be a string' <<<"$stderr"
	grep -q 'c0000006.*"refs" must be an array' <<<"$stderr"
}

@test "inbox sets corrupt files aside too, and they are reported only once" {
	local_only "on a relay, the relay reads the files and reports them"
	corrupt_files
	run --separate-stderr as bob bch inbox --brief
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	[ "$(grep -c 'moved to spool/bob/corrupt/' <<<"$stderr")" -eq 6 ]
	run --separate-stderr as bob bch drain --brief
	assert_success
	[ "${#lines[@]}" -eq 2 ]
	[ -z "$stderr" ]
}

@test "a name set aside twice in one second keeps both files in corrupt/" {
	local_only "on a relay, the relay reads the files and reports them"
	bad="$BACKCHANNEL_HOME/spool/bob/new/c0000001-0000-4000-8000-000000000001.json"
	echo '{"broken' >"$bad"
	as bob bch inbox >/dev/null 2>&1
	echo '{"broken again' >"$bad"
	as bob bch inbox >/dev/null 2>&1
	[ "$(ls "$BACKCHANNEL_HOME/spool/bob/corrupt" | wc -l)" -eq 2 ]
	grep -q 'broken again' "$BACKCHANNEL_HOME"/spool/bob/corrupt/*
	grep -q 'broken$' "$BACKCHANNEL_HOME"/spool/bob/corrupt/*
}

@test "a reader out of descriptors fails with 111 and sets nothing aside" {
	local_only "on a relay, the relay reads the files"
	bch send @bob one >/dev/null
	bch send @bob two >/dev/null
	# Four descriptors: stdio and the directory; no message file opens.
	# bats holds others open, which a limit of 4 would make unusable.
	run --separate-stderr as bob bash -c 'for f in /proc/$$/fd/*; do
		n=${f##*/}; [ "$n" -le 2 ] || eval "exec $n>&-"; done
		ulimit -n 4 && exec bch-drain'
	assert_failure 111
	grep -q 'cannot read .*/spool/bob/new/.*Too many open files' <<<"$stderr"
	! grep -q corrupt <<<"$stderr"
	[ ! -e "$BACKCHANNEL_HOME/spool/bob/corrupt" ]
	[ "$(ls "$BACKCHANNEL_HOME/spool/bob/new" | wc -l)" -eq 2 ]
	run as bob bch drain --brief
	assert_success
	assert_output --partial one
	assert_output --partial two
}

@test "a drain holding more claims than ulimit -n allows descriptors delivers them all" {
	local_only "claims of the local spool"
	for i in $(seq 1 1500); do echo '{"to":"@bob","body":"x"}'; done | bch-send >/dev/null
	# 1500 short messages make one block of output, all claimed before
	# it is written: no claim may hold a descriptor of its own.
	run --separate-stderr as bob bash -c 'for f in /proc/$$/fd/*; do
		n=${f##*/}; [ "$n" -le 2 ] || eval "exec $n>&-"; done
		ulimit -n 64 && exec bch-drain --brief'
	assert_success
	[ "${#lines[@]}" -eq 1500 ]
	[ "$(count_new bob)" -eq 0 ]
}

@test "a file in new/ that is not named <id>.json is set aside, not delivered" {
	local_only "on a relay, the relay reads the files and reports them"
	echo '{"junk":1}' > "$BACKCHANNEL_HOME/spool/bob/new/notes.txt"
	bch send @bob real >/dev/null
	run --separate-stderr as bob bch drain --brief
	assert_success
	assert_output --regexp ': real$'
	assert_equal "$(grep -c 'notes.txt.*moved to spool/bob/corrupt/' <<<"$stderr")" 1
	[ ! -e "$BACKCHANNEL_HOME/spool/bob/new/notes.txt" ]
}
