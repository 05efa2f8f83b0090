#!/usr/bin/env bats
# bin/bch, the dispatcher: each verb runs its program.
load helper
bats_require_minimum_version 1.5.0

BCH=$T_ROOT/bin/bch

# A copy of bch beside stub programs that print how they were called, so
# the mapping is seen exactly, whatever the real programs do.
local_setup() {
	stubs=$BATS_TEST_TMPDIR/stubs
	mkdir -p "$stubs"
	cp "$BCH" "$stubs/bch"
	for p in bch-init bch-send bch-drain bch-claim bch-sub bch-agents; do
		printf '#!/bin/sh\nprintf %%s "${0##*/}"\nprintf " [%%s]" "$@"\necho\n' > "$stubs/$p"
		chmod +x "$stubs/$p"
	done
}

# verb VERB ARGS...: the stub line VERB maps to, via the copy of bch.
verb() {
	PATH=/usr/bin:/bin "$stubs/bch" "$@"
}

@test "each verb runs its program with its flags, arguments passed on intact" {
	run verb init alice;          assert_output 'bch-init [alice]'
	run verb whoami;              assert_output 'bch-init [--whoami]'
	run verb send @bob 'a  b' --urgent; assert_output 'bch-send [@bob] [a  b] [--urgent]'
	run verb inbox --json;        assert_output 'bch-drain [--peek] [--json]'
	run verb drain --hook;        assert_output 'bch-drain [--hook]'
	run verb read abc --keep;     assert_output 'bch-claim [abc] [--keep]'
	run verb sub '#dev';          assert_output 'bch-sub [#dev]'
	run verb unsub '#dev';        assert_output 'bch-sub [--unsubscribe] [#dev]'
	run verb agents --json;       assert_output 'bch-agents [--json]'
	run verb channels;            assert_output 'bch-agents [--channels]'
	run verb send @bob '';        assert_output 'bch-send [@bob] []'
}

@test "the verbs reach the real programs" {
	agents alice bob
	run bch whoami
	assert_output 'alice via local spool'
	run bch send @bob hi
	assert_output --regexp '^sent [0-9a-f]{8} to @bob$'
	run as bob bch inbox --brief
	assert_output --regexp ': hi$'
	run as bob bch drain --brief
	assert_output --regexp ': hi$'
	run as bob bch read 00000000
	assert_failure 100
	run bch sub dev
	assert_output 'subscribed alice to #dev'
	run bch channels
	assert_output '#dev'
	run bch unsub dev
	assert_output 'unsubscribed alice from #dev'
	run bch agents
	assert_line -n 0 --regexp '^alice \(you\)'
}

@test "bch help, -h and --help print the usage and exit 0" {
	for h in help -h --help; do
		run --separate-stderr "$BCH" $h
		assert_success
		assert_line -n 0 'usage: bch <verb> [arguments]'
		for v in init send inbox drain read watch notify sub unsub agents channels whoami \
			invite join setup doctor relay mcp help; do
			assert_output --partial "$v"
		done
		[ -z "$stderr" ]
	done
}

@test "bch with no verb prints the usage on stderr and exits 2" {
	run --separate-stderr "$BCH"
	assert_failure 2
	assert_output ''
	[[ $stderr == 'usage: bch <verb> [arguments]'* ]]
}

@test "an unknown verb exits 2 with one line" {
	run --separate-stderr "$BCH" frobnicate --json
	assert_failure 2
	assert_output ''
	assert_equal "$stderr" 'bch: unknown verb "frobnicate" — see bch help'
}

@test "a verb whose program is missing says so and exits 111" {
	rm "$stubs/bch-agents"
	run --separate-stderr verb agents
	assert_failure 111
	[[ $stderr == 'bch: bch-agents is not installed'* ]]
	[ "$(grep -c . <<<"$stderr")" -eq 1 ]
}

@test "bch works when bin/ is on PATH" {
	agents alice
	run env PATH="$T_ROOT/bin:/usr/bin:/bin" bch whoami
	assert_success
	assert_output 'alice via local spool'
}

@test "bch works by absolute path with bin/ not on PATH" {
	agents alice
	run env PATH=/usr/bin:/bin "$BCH" whoami
	assert_success
	assert_output 'alice via local spool'
}

@test "bch by relative path runs the programs beside it" {
	agents alice
	cd "$T_ROOT/bin"
	run env PATH=/usr/bin:/bin ./bch whoami
	assert_success
	assert_output 'alice via local spool'
}

@test "the programs beside bch win over others on PATH" {
	mkdir decoy
	printf '#!/bin/sh\necho decoy\n' > decoy/bch-init
	chmod +x decoy/bch-init
	run env PATH="$BATS_TEST_TMPDIR/decoy:/usr/bin:/bin" "$stubs/bch" whoami
	assert_output 'bch-init [--whoami]'
}

@test "bch called through a symlink elsewhere finds the programs on PATH" {
	mkdir elsewhere
	ln -s "$stubs/bch" elsewhere/bch
	run env PATH="$stubs:/usr/bin:/bin" elsewhere/bch inbox
	assert_output 'bch-drain [--peek]'
}

@test "every program names a refused option as typed, not by the word before it" {
	for p in bch-agents bch-claim bch-drain bch-init bch-invite bch-join bch-relayd bch-send bch-sub; do
		run --separate-stderr "$p" word -Z9
		assert_failure 2
		[[ ${stderr%%$'\n'*} == "$p: bad option -Z (unknown, or missing its value)"* ]] ||
			{ echo "$p: $stderr"; return 1; }
	done
}

@test "the usage lines agree with the man pages" {
	run -0 bch help
	assert_line '                              (--json --jsonl --brief --match --here)'
	run -0 bch-init -h
	assert_output 'usage: bch-init <name> [--url relay-url] [--token room-token] [--pin sha256] | bch-init --whoami'
	run -0 bch-send -h
	assert_output --partial '| bch-send [--wait[=seconds]] < requests.jsonl'
	run -0 bch-claim -h
	assert_output --partial '| bch-claim [--keep] [--json | --jsonl] < ids'
}
