#!/usr/bin/env bats
# sv/bch-relayd: the relay as an s6 service, in a scan directory of its
# own: readiness through notification-fd, requests through it, restarts,
# a clean stop, and no restart loop after a permanent failure.
load helper
bats_require_minimum_version 1.5.0
# This file starts its own relay: the suite's relay mode does not apply.
unset BCH_TEST_RELAY

local_setup() {
	# Under LeakSanitizer a supervised daemon killed by s6 can hang in
	# its exit-time leak check; t/relay.bats covers the relay there.
	[ -z "${BCH_SANITIZED:-}" ] || skip "not under the sanitizers (make check-asan)"
	local p
	for p in s6-svscan s6-svc s6-svstat s6-svwait s6-svok s6-envdir s6-log; do
		command -v "$p" >/dev/null ||
			skip "s6 is not installed ($p is missing): apt install s6"
	done
	command -v curl >/dev/null || skip "curl is not installed"
	ROOM="room-0123456789-$RANDOM$RANDOM$RANDOM$RANDOM"
	RHOME=$BATS_TEST_TMPDIR/relayhome
	mkdir -p scan
	printf '%s\n' "$ROOM" >room-token
	chmod 600 room-token
	# A copy: s6-supervise writes its state into the service directory.
	cp -R "$T_ROOT/sv/bch-relayd" scan/
	svc=$BATS_TEST_TMPDIR/scan/bch-relayd
	echo 0 >"$svc/env/PORT" # a free port; read back from the log
	echo "$RHOME" >"$svc/env/HOME_DIR"
	echo "$BATS_TEST_TMPDIR/room-token" >"$svc/env/TOKEN_FILE"
	echo "$T_ROOT/bin:$PATH" >"$svc/env/PATH"
	echo 0 >"$svc/env/BACKCHANNEL_FSYNC"
	s6-svscan scan </dev/null >svscan.log 2>&1 3>&- &
	scanpid=$!
	wait_for 10 s6-svok "$svc"
	wait_for 10 test -e "$svc/supervise/status"
	s6-svwait -U -t 10000 "$svc"
	relay_url
}

local_teardown() {
	[ ! -f plain.pid ] || kill -TERM "$(cat plain.pid)" 2>/dev/null || true
	[ -n "${scanpid:-}" ] || return 0
	s6-svc -d "$svc" 2>/dev/null || true
	s6-svc -d "$svc/log" 2>/dev/null || true
	s6-svwait -D -t 5000 "$svc" 2>/dev/null || true
	kill -TERM "$scanpid" 2>/dev/null || true
	wait "$scanpid" 2>/dev/null || true
}

LOGFILE() { echo "$svc/log/main/current"; }

# relay_url: URL of the relay now running, from its latest "listening" line.
relay_url() {
	PORT=$(relay_port "$(LOGFILE)")
	[ -n "$PORT" ] && [ "$PORT" -gt 0 ]
	URL=http://127.0.0.1:$PORT
}

# listening_count N: the log holds N "listening" lines (N starts so far).
listening_count() {
	[ "$(grep -c 'listening on' "$(LOGFILE)")" -eq "$1" ]
}

# svstat_is FIELDS VALUE: s6-svstat -o FIELDS prints VALUE (for wait_for).
svstat_is() {
	[ "$(s6-svstat -o "$1" "$svc")" = "$2" ]
}

svpid() {
	s6-svstat -p "$svc"
}

# up_again OLD: the service runs under a pid other than OLD and is ready.
up_again() {
	local p
	p=$(svpid) && [ "$p" -gt 0 ] && [ "$p" != "$1" ] &&
		[ "$(s6-svstat -o ready "$svc")" = true ]
}


# reg NAME: register NAME through the service; its token in TOK.
reg() {
	TOK=$(curl -sf -H "Authorization: Bearer $ROOM" -d "{\"name\":\"$1\"}" \
		"$URL/v1/register" | sed -n 's/.*"token": *"\([0-9a-f]*\)".*/\1/p')
	[ "${#TOK}" -eq 64 ]
}

# health: the relay answers.
health() {
	[ "$(curl -s -m 5 "$URL/v1/health")" = '{"ok":true,"service":"backchannel-relay"}' ]
}

@test "the service runs bch-relayd with -d 3, is ready when it listens, and logs to s6-log" {
	run s6-svstat "$svc"
	assert_output --regexp '^up \(pid [0-9]+\) [0-9]+ seconds, ready'
	[ "$(ps -o comm= -p "$(svpid)")" = bch-relayd ]
	run ps -o args= -p "$(svpid)"
	assert_output --partial "--home $RHOME"
	assert_output --partial "--token-file $BATS_TEST_TMPDIR/room-token"
	assert_output --regexp ' -d 3$'
	refute_output --partial "$ROOM"
	health
	# The log is s6-log's: a TAI64N stamp on each line.
	wait_for 5 grep -q '^@[0-9a-f]\{24\} [^ ]* 127\.0\.0\.1 - "GET /v1/health" 200' "$(LOGFILE)"
}

@test "register and send through the service with curl" {
	reg alice
	A=$TOK
	reg bob
	B=$TOK
	run curl -s -H "Authorization: Bearer $A" -d '{"to":"@bob","body":"through s6"}' "$URL/v1/send"
	assert_output --partial '"from":"alice"'
	run curl -s -H "Authorization: Bearer $B" "$URL/v1/inbox/bob"
	assert_output --partial '"body":"through s6"'
	[ "$(find "$RHOME/spool/bob/new" -name '*.json' | wc -l)" -eq 1 ]
	# The env dir's settings reached the relay.
	grep -q "spool $RHOME" "$(LOGFILE)"
	! grep -qF "$ROOM" "$(LOGFILE)" || false
	! grep -qF "$A" "$(LOGFILE)" || false
}

@test "s6-svc -k restarts it under a new pid, ready again, tokens still valid" {
	reg alice
	A=$TOK
	old=$(svpid)
	s6-svc -k "$svc"
	wait_for 10 up_again "$old"
	wait_for 10 listening_count 2
	relay_url
	health
	run curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $A" "$URL/v1/agents"
	[ "$output" = 200 ]
	# A second kill, a second restart.
	old=$(svpid)
	s6-svc -k "$svc"
	wait_for 10 up_again "$old"
	wait_for 10 listening_count 3
	relay_url
	health
}

@test "s6-svc -d stops it cleanly: exit 0, stopped logged, leases returned" {
	reg alice
	A=$TOK
	reg bob
	B=$TOK
	id=$(curl -s -H "Authorization: Bearer $A" -d '{"to":"@bob","body":"leased"}' "$URL/v1/send" |
		sed -n 's/^{"id":"\([0-9a-f-]*\)".*/\1/p')
	curl -s -H "Authorization: Bearer $B" -d "{\"id\":\"$id\",\"lease\":600}" "$URL/v1/take" >/dev/null
	[ -z "$(ls "$RHOME/spool/bob/new")" ]
	p=$(svpid)
	s6-svc -d "$svc"
	s6-svwait -D -t 10000 "$svc"
	wait_for 5 gone "$p"
	svstat_is up,exitcode 'false 0'
	wait_for 5 grep -q 'bch-relayd: stopped' "$(LOGFILE)"
	[ -f "$RHOME/spool/bob/new/$id.json" ]
	! health || false
	# And up again on request.
	s6-svc -u "$svc"
	s6-svwait -U -t 10000 "$svc"
	wait_for 10 listening_count 2
	relay_url
	health
}

@test "a permanent failure (a bad certificate) leaves the service down, not restarting" {
	s6-svc -d "$svc"
	s6-svwait -D -t 10000 "$svc"
	echo "$BATS_TEST_TMPDIR/no-such-cert.pem" >"$svc/env/CERT"
	echo "$BATS_TEST_TMPDIR/no-such-key.pem" >"$svc/env/KEY"
	s6-svc -u "$svc"
	# finish turns exit 100 into 125: s6-supervise stops wanting it up.
	wait_for 10 svstat_is up,wantedup 'false false'
	svstat_is exitcode 100
	wait_for 5 grep -q 'no-such-cert.pem' "$(LOGFILE)"
	wait_for 5 grep -q 'exit 100 is permanent' "$(LOGFILE)"
	# Fixed, it comes up again.
	: >"$svc/env/CERT"
	: >"$svc/env/KEY"
	s6-svc -u "$svc"
	s6-svwait -U -t 10000 "$svc"
	relay_url
	health
}

@test "run reads env/ with plain sh where s6-envdir is not installed" {
	# A PATH with everything run needs but s6-envdir.
	mkdir nos6
	for p in sh bch-relayd; do ln -s "$(command -v "$p")" "nos6/$p"; done
	d=$BATS_TEST_TMPDIR/plain
	cp -R "$T_ROOT/sv/bch-relayd" "$d"
	rm -f "$d/notification-fd"
	printf '127.0.0.1  \n' >"$d/env/LISTEN" # trailing blanks go
	printf '0' >"$d/env/PORT"                # no newline at the end
	echo "$BATS_TEST_TMPDIR/plainhome" >"$d/env/HOME_DIR"
	echo "$BATS_TEST_TMPDIR/room-token" >"$d/env/TOKEN_FILE"
	echo "$BATS_TEST_TMPDIR/nos6" >"$d/env/PATH"
	(cd "$d" && PATH=$BATS_TEST_TMPDIR/nos6 exec ./run) >plain.log 2>&1 &
	p=$!
	echo "$p" >plain.pid
	wait_for 10 grep -q 'listening on 127.0.0.1 port' plain.log
	[ "$(ps -o comm= -p "$p")" = bch-relayd ]
	run ps -o args= -p "$p"
	assert_output "bch-relayd --listen 127.0.0.1 --port 0 --home $BATS_TEST_TMPDIR/plainhome --token-file $BATS_TEST_TMPDIR/room-token"
	kill -TERM "$p"
	rc=0
	wait "$p" || rc=$?
	rm plain.pid
	[ "$rc" -eq 0 ]
	grep -q 'stopped' plain.log
}
