#!/usr/bin/env bats
# Nothing is lost when a reader dies or its output fails (PROTOCOL.md 2,
# crash-safe claim; DESIGN.md, delivery semantics): a claim is deleted only
# after its output was written, and a dead claimer's claim goes back.
load helper
bats_require_minimum_version 1.5.0
# Where the helper knows no relay mode, every test is a local one.
declare -F local_only >/dev/null || local_only() { :; }

local_setup() {
	agents alice bob
	NEW="$BACKCHANNEL_HOME/spool/bob/new"
	CUR="$BACKCHANNEL_HOME/spool/bob/cur"
}

# The host part of a claim name: gethostname() with every byte outside
# [A-Za-z0-9_-] made '_'.
claim_host() { printf %s "$(uname -n)" | tr -c 'A-Za-z0-9_-' '_'; }

msgid() { printf '00000000-0000-4000-8000-%012d' "$1"; }

# queue FROM TO [TARGET]: alice sends TARGET (@bob) messages FROM..TO,
# with known ids, each body padded to one length so every JSON line is
# the same size.
queue() {
	local i
	for ((i = $1; i <= $2; i++)); do
		printf '{"to":"%s","body":"message %06d of the crash test, padded to a fixed length","id":"00000000-0000-4000-8000-%012d"}\n' "${3:-@bob}" "$i" "$i"
	done | bch-send >/dev/null
}

# complete_ids FILE...: ids of the complete JSON lines in the files; a last
# line cut short by a kill has no newline and does not count.
complete_ids() {
	local f n
	for f in "$@"; do
		n=$(wc -l < "$f")
		head -n "$n" "$f"
	done | sed -n 's/^{"id":"\([^"]*\)".*"}$/\1/p'
}

# A pid that was just in use and is certainly dead now.
dead_pid() {
	sh -c 'exit 0' &
	local p=$!
	wait "$p"
	echo "$p"
}

@test "drains killed with SIGKILL at random moments lose nothing" {
	local_only "claim files of the local spool"
	rounds=20 per=400 killed=0
	for ((r = 1; r <= rounds; r++)); do
		queue $(((r - 1) * per + 1)) $((r * per))
		# Made here: a kill may come before the drain's shell opens it.
		: >"out.$r"
		BACKCHANNEL_AGENT=bob bch-drain --jsonl > "out.$r" 2>> err &
		pid=$!
		sleep "0.00$((RANDOM % 10))"
		kill -9 "$pid" 2>/dev/null || true
		rc=0
		wait "$pid" || rc=$?
		[ "$rc" -eq 0 ] || [ "$rc" -eq 137 ] || { echo "drain exited $rc"; false; }
		[ "$rc" -eq 0 ] || { killed=$((killed + 1)); cat "out.$r" >> killed.jsonl; }
	done
	as bob timeout 30 bch-drain --jsonl > out.final 2>> err
	# Every complete line is a whole message.
	[ "$(cat out.* | wc -l)" -eq "$(complete_ids out.* | wc -l)" ]
	complete_ids out.* | sort > got
	seq 1 $((rounds * per)) | while read -r i; do msgid "$i"; echo; done | sort > sent
	missing=$(comm -23 sent got | wc -l)
	dups=$(uniq -d got | wc -l)
	recovered=$(grep -c 'its claimer died' err || true)
	echo "# $killed of $rounds drains killed mid-run; $recovered claims returned; $dups delivered twice" >&3
	[ "$missing" -eq 0 ] || { comm -23 sent got | head; false; }
	# Nothing is left claimed or unread.
	[ -z "$(ls -A "$NEW")" ]
	[ -z "$(ls -A "$CUR")" ]
	# A duplicate is only possible for a claim whose drain was killed after
	# printing it and before deleting it: a killed drain printed it, and
	# the next reader returned it. That reader says so, unless it was
	# itself killed between the return and the line: once per kill at most.
	silent=0
	for id in $(uniq -d got); do
		grep -q "\"id\":\"$id\"" killed.jsonl || { echo "$id twice, never printed by a killed drain"; false; }
		grep -q "returned $id.json to bob's inbox" err || silent=$((silent + 1))
	done
	[ "$silent" -le "$killed" ] || { echo "$silent returned unannounced, $killed kills"; false; }
	# Else the kills all came too late and the test proved nothing.
	[ "$killed" -ge 1 ]
}

@test "a claim left by a dead process on this host is returned to new/ by the next reader" {
	local_only "claim files of the local spool"
	bch send @bob orphaned >/dev/null
	f=$(ls "$NEW")
	dead=$(dead_pid)
	mv "$NEW/$f" "$CUR/$f.claim.$(claim_host).$dead"
	[ "$(count_new bob)" -eq 0 ]
	run as bob bch inbox
	assert_success
	assert_output --partial orphaned
	[ -f "$NEW/$f" ]
	[ -z "$(ls -A "$CUR")" ]
	run as bob bch drain
	assert_output --partial orphaned
	[ "$(count_new bob)" -eq 0 ]
}

@test "the returned claim is announced on stderr, not stdout" {
	local_only "claim files of the local spool"
	bch send @bob orphaned >/dev/null
	f=$(ls "$NEW")
	mv "$NEW/$f" "$CUR/$f.claim.$(claim_host).$(dead_pid)"
	as bob bch drain --jsonl > out 2> err
	grep -q "returned $f to bob's inbox" err
	[ "$(wc -l < out)" -eq 1 ] && grep -q '"body":"orphaned"' out
}

@test "the returned claim's name is escaped on stderr: no raw escape, no forged line" {
	local_only "claim files of the local spool"
	name=$'x\e[31mRED\n fake: line.json'
	printf 'planted' > "$CUR/$name.claim.$(claim_host).$(dead_pid)"
	run --separate-stderr as bob bch inbox
	assert_success
	printf '%s\n' "$stderr" > err
	grep -qF "returned x\x1b[31mRED\x0a fake: line.json to bob's inbox: its claimer died" err
	! LC_ALL=C grep -aq $'\e' err || false
	! grep -q '^fake:' err || false
	! grep -v '^bch-drain: ' err || false
}

@test "a claim held by a live process is left alone until it dies" {
	local_only "claim files of the local spool"
	bch send @bob held >/dev/null
	f=$(ls "$NEW")
	# A live process, stopped in teardown if the test fails.
	sleep 120 </dev/null >/dev/null 2>&1 3>&- &
	live=$!
	bg_pid "$live"
	claim="$CUR/$f.claim.$(claim_host).$live"
	mv "$NEW/$f" "$claim"
	bch send @bob other >/dev/null
	run as bob bch drain
	assert_success
	assert_output --partial other
	refute_output --partial held
	[ -f "$claim" ]
	[ "$(count_new bob)" -eq 0 ]
	kill "$live"
	wait "$live" 2>/dev/null || true
	run as bob bch drain
	assert_output --partial held
	[ -z "$(ls -A "$CUR")" ]
}

@test "a reader that cannot make its claimer lock still delivers, and its claims are judged by pid" {
	local_only "claim files of the local spool"
	: >"$BACKCHANNEL_HOME/claimers" # a file where the directory goes
	queue 1 3
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	[ "${#lines[@]}" -eq 3 ]
	# A claim whose claimer had no lock, and is dead: returned.
	queue 4 4
	f=$(ls "$NEW")
	mv "$NEW/$f" "$CUR/$f.claim.$(claim_host).$(dead_pid)"
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	[ -z "$(ls -A "$CUR")" ]
	[ -f "$BACKCHANNEL_HOME/claimers" ]
}

@test "a claimer's lock is removed when it exits, and a lock left by a dead one frees its claims" {
	local_only "claim files of the local spool"
	queue 1 2
	as bob bch drain --jsonl >/dev/null
	[ -d "$BACKCHANNEL_HOME/claimers" ]
	[ -z "$(ls -A "$BACKCHANNEL_HOME/claimers")" ]
	# A lock file nobody holds (its claimer was killed), beside a claim
	# whose pid is alive: the lock says it is gone.
	sleep 120 </dev/null >/dev/null 2>&1 3>&- &
	live=$!
	bg_pid "$live"
	queue 3 3
	f=$(ls "$NEW")
	mv "$NEW/$f" "$CUR/$f.claim.$(claim_host).$live"
	: >"$BACKCHANNEL_HOME/claimers/$(claim_host).$live"
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	[ -z "$(ls -A "$CUR")" ]
}

@test "a claim from another host is not judged by a local pid" {
	local_only "claim files of the local spool"
	bch send @bob elsewhere >/dev/null
	f=$(ls "$NEW")
	claim="$CUR/$f.claim.other-host-$(claim_host).$(dead_pid)"
	mv "$NEW/$f" "$claim"
	run as bob bch drain
	assert_output 'inbox empty'
	[ -f "$claim" ]
}

# blocked_drain [TARGET]: queue 1000 messages to TARGET (@bob) and start
# bob's drain (pid in $pid) writing them into ./pipe, whose read end is
# fd 6 and read by nobody; return once it has claimed and, where the
# kernel shows it, sits in write().
blocked_drain() {
	queue 1 1000 "${1:-@bob}"
	mkfifo pipe
	BACKCHANNEL_AGENT=bob bch-drain --jsonl > pipe 2>/dev/null &
	pid=$!
	exec 6<pipe
	claimed() { [ "$(count_new bob)" -lt 1000 ]; }
	blocked() { grep -q pipe_write "/proc/$pid/wchan"; }
	wait_for 10 claimed
	if [ "$(cat /proc/$$/wchan 2>/dev/null || echo 0)" != 0 ]; then
		wait_for 10 blocked
	fi
}

# in_pidns CMD...: run CMD in a new pid namespace (same host name), where
# pids are not those of this one; skips where that cannot be done.
in_pidns() {
	unshare -p -f --mount-proc true 2>/dev/null ||
		skip "cannot make a pid namespace (unshare -p needs root)"
	unshare -p -f --mount-proc "$@"
}

@test "a live reader's claims are not taken back by a reader in another pid namespace" {
	local_only "claim files of the local spool"
	# A reader blocked in write() with its claims taken, alive.
	blocked_drain
	held=$(ls "$CUR" | wc -l)
	# Its pid means nothing in the namespace: only the lock says it lives.
	BACKCHANNEL_AGENT=bob in_pidns bch-drain --jsonl > ns.out 2> ns.err
	! grep -q 'claimer died' ns.err
	[ "$(ls "$CUR" | wc -l)" -eq "$held" ]
	cat <&6 > host.out
	wait "$pid"
	exec 6<&-
	# Each message printed once, by one of the two.
	[ "$(complete_ids host.out ns.out | sort | uniq -d | wc -l)" -eq 0 ]
	[ "$(complete_ids host.out ns.out | sort -u | wc -l)" -eq 1000 ]
	[ -z "$(ls -A "$CUR")" ]
}

@test "a member holding claims on channel messages holds them from no other member" {
	local_only "claim files of the local spool"
	BACKCHANNEL_AGENT=carol bch init carol >/dev/null
	as bob bch sub '#dev' >/dev/null
	as carol bch sub '#dev' >/dev/null
	# One file, linked into both inboxes; bob's drain sits on his claims.
	blocked_drain '#dev'
	[ -n "$(ls "$CUR")" ]
	run --separate-stderr as carol bch drain --jsonl
	assert_success
	[ "${#lines[@]}" -eq 1000 ]
	cat <&6 >/dev/null
	wait "$pid"
	exec 6<&-
	[ "$(count_new bob)" -eq 0 ]
	[ -z "$(ls -A "$CUR")" ]
}

@test "a reader killed in another pid namespace has its claims returned" {
	local_only "claim files of the local spool"
	queue 1 1000
	# Killed while blocked writing to a pipe nobody reads; its pid (a
	# small one, in the namespace) may be alive out here.
	BACKCHANNEL_AGENT=bob in_pidns sh -c 'mkfifo p2; bch-drain --jsonl > p2 &
		exec 6<p2; while [ -z "$(ls "$0")" ]; do sleep 0.05; done
		sleep 0.2; kill -9 $!' "$CUR"
	[ -n "$(ls "$CUR")" ]
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	[ "${#lines[@]}" -eq 1000 ]
	[ -z "$(ls -A "$CUR")" ]
}

@test "a drain whose standard output is closed exits 111 and keeps every message" {
	queue 1 5
	for form in '' --json --jsonl --brief --hook; do
		rc=0
		as bob bch drain $form >&- 2> err || rc=$?
		[ "$rc" -eq 111 ] || { echo "drain $form >&- exited $rc: $(cat err)"; false; }
		[ "$(count_new bob)" -eq 5 ] && [ -z "$(ls -A "$CUR")" ]
	done
}

@test "a drain onto a full device exits 111 and keeps every message" {
	[ -w /dev/full ] || skip "no /dev/full"
	queue 1 5
	for form in '' --json --jsonl --brief --hook; do
		rc=0
		as bob bch drain $form > /dev/full 2> err || rc=$?
		[ "$rc" -eq 111 ] || { echo "drain $form > /dev/full exited $rc: $(cat err)"; false; }
		grep -q 'No space left on device' err
		[ "$(count_new bob)" -eq 5 ] && [ -z "$(ls -A "$CUR")" ]
	done
	run as bob bch drain --jsonl
	[ "${#lines[@]}" -eq 5 ]
}

@test "a read onto a full device keeps the message, --keep or not" {
	[ -w /dev/full ] || skip "no /dev/full"
	queue 1 1
	id=$(msgid 1)
	rc=0
	as bob bch read "$id" > /dev/full 2>/dev/null || rc=$?
	[ "$rc" -eq 111 ]
	rc=0
	as bob bch read "$id" --keep > /dev/full 2>/dev/null || rc=$?
	[ "$rc" -eq 111 ]
	[ -f "$NEW/$id.json" ]
	[ -z "$(ls -A "$CUR")" ]
}

@test "a drain into a pipe nobody reads fails and keeps every message" {
	queue 1 20
	mkfifo pipe
	exec 4<>pipe # a reader, so that opening the write end does not block
	exec 5>pipe
	exec 4<&-    # and now there is no reader left
	for form in '' --jsonl --hook; do
		rc=0
		as bob bch drain $form >&5 2> err || rc=$?
		[ "$rc" -ne 0 ] || { echo "drain $form succeeded into a broken pipe"; false; }
		[ "$(count_new bob)" -eq 20 ] && [ -z "$(ls -A "$CUR")" ]
	done
	exec 5>&-
}

@test "bch drain | head -c 1 loses nothing" {
	# 1000 same-size lines make some 190 KiB: the first 64 KiB block cannot
	# fit in the 64 KiB pipe once head has taken its one byte and gone, so
	# the write fails and the block's claims must go back.
	[ "$(getconf PAGESIZE)" = 4096 ] || skip "pipes hold more than 64 KiB with this page size"
	queue 1 1000
	for form in --jsonl '' --json; do
		as bob bch drain $form 2> err | head -c 1 > got
		rc=${PIPESTATUS[0]}
		[ "$(wc -c < got)" -eq 1 ]
		[ "$rc" -ne 0 ] || { echo "drain $form | head -c 1 exited 0"; false; }
		[ "$(count_new bob)" -eq 1000 ] || { echo "drain $form: $(count_new bob) left"; false; }
		[ -z "$(ls -A "$CUR")" ]
	done
	run as bob bch drain --jsonl
	[ "${#lines[@]}" -eq 1000 ]
}

@test "a drain killed while blocked writing to a full pipe loses nothing" {
	local_only "claim files of the local spool"
	# Nobody reads: the drain blocks in write() with its claims taken.
	blocked_drain
	kill -9 "$pid"
	wait "$pid" || true
	exec 6<&-
	# The next reader puts every claim back and delivers all of them.
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	[ "${#lines[@]}" -eq 1000 ]
	[ -z "$(ls -A "$CUR")" ]
}

@test "senders killed with SIGKILL at random moments lose nothing they acknowledged" {
	local round i
	export BACKCHANNEL_FSYNC=1
	for round in $(seq 10); do
		# A stream with pauses: each pause is a sync and a group of
		# acknowledgements, so kills land before, between and after them.
		for ((i = 1; i <= 300; i++)); do
			printf '{"to":"@bob","body":"round %d message %d"}\n' "$round" "$i"
			[ $((i % 25)) -ne 0 ] || sleep 0.005
		done 2>/dev/null | bch-send > "acked.$round" 2>/dev/null &
		p=$!
		bg_pid "$p"
		# 10 to 300 ms: under a sanitizer, or with slow fsyncs, the
		# sends lag the input and only the 100 ms bound acknowledges.
		sleep "$(printf '0.%03d' $((RANDOM % 291 + 10)))"
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	# Every "sent" line printed was durable before it was printed.
	acked=$(cat acked.* | sed -n 's/^sent \([0-9a-f]\{8\}\) to @bob$/\1/p' | sort)
	stored=$(ls "$NEW" | cut -c1-8 | sort)
	missing=$(comm -23 <(echo "$acked") <(echo "$stored"))
	[ -z "$missing" ] || { echo "acknowledged but not stored: $missing"; false; }
	# And whatever is in new/ is whole: a drain reads every file.
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	[ -z "$stderr" ]
	[ "${#lines[@]}" -eq "$(echo "$stored" | grep -c .)" ]
	echo "# $(echo "$acked" | grep -c .) acknowledged, $(echo "$stored" | grep -c .) stored, 0 lost" >&3
	# Else every kill came before the first acknowledgement: nothing proved.
	[ -n "$acked" ]
}

@test "a read-only spool refuses sends and drains with 111 and keeps every message" {
	local_only "mounts over the local spool"
	queue 1 3
	if [ "$(id -u)" != 0 ] || ! mount --bind "$BACKCHANNEL_HOME" "$BACKCHANNEL_HOME" 2>/dev/null; then
		skip "needs root to bind-mount the spool read-only"
	fi
	if ! mount -o remount,bind,ro "$BACKCHANNEL_HOME" 2>/dev/null; then
		umount "$BACKCHANNEL_HOME"
		skip "cannot remount read-only here"
	fi
	run bch send @bob "on a read-only disk"
	s_rc=$status s_out=$output
	run as bob bch drain
	d_rc=$status d_out=$output
	umount "$BACKCHANNEL_HOME"
	[ "$s_rc" -eq 111 ] || { echo "send: $s_rc $s_out"; false; }
	[[ $s_out == *'Read-only file system'* ]]
	[ "$d_rc" -eq 111 ] || { echo "drain: $d_rc $d_out"; false; }
	[ "$(ls "$NEW" | wc -l)" -eq 3 ]
	run as bob bch drain --jsonl
	[ "${#lines[@]}" -eq 3 ]
}

@test "a claim whose id another sender took meanwhile is set aside on return, not deleted" {
	local_only "claim files of the local spool"
	BACKCHANNEL_AGENT=carol bch init carol >/dev/null
	queue 1 1
	f=$(ls "$NEW")
	mv "$NEW/$f" "$CUR/$f.claim.$(claim_host).$(dead_pid)"
	# Carol's message under the claimed message's id, put there by a
	# writer that knows nothing of claims (bch-send refuses it: claim.bats).
	printf '{"id":"%s","from":"carol","to":"@bob","body":"carol under that id","priority":"normal","ts":"2026-06-12T12:00:00.000Z"}\n' \
		"$(msgid 1)" >"$NEW/$f"
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	assert_output --partial '"body":"carol under that id"'
	[[ $stderr == *"another message came under its id while it was claimed"* ]]
	# Alice's message is kept, in corrupt/, and nothing is left in cur/.
	grep -q 'message 000001 of the crash test' "$BACKCHANNEL_HOME"/spool/bob/corrupt/*
	[ -z "$(ls -A "$CUR")" ]
}

@test "a claim whose sender sent it again meanwhile goes, and the message is read once" {
	local_only "claim files of the local spool"
	queue 1 1
	f=$(ls "$NEW")
	mv "$NEW/$f" "$CUR/$f.claim.$(claim_host).$(dead_pid)"
	queue 1 1 # alice's retry, under the same id
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	[ -z "$(ls -A "$CUR")" ]
	[ ! -d "$BACKCHANNEL_HOME/spool/bob/corrupt" ] || [ -z "$(ls -A "$BACKCHANNEL_HOME/spool/bob/corrupt")" ]
}
