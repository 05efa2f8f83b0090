# Shared setup for the bats suite: every test gets its own spool.
bats_load_library bats-support 2>/dev/null || load /usr/lib/bats/bats-support/load
bats_load_library bats-assert 2>/dev/null || load /usr/lib/bats/bats-assert/load

T_ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
export PATH="$T_ROOT/bin:$PATH"

setup() {
	export BACKCHANNEL_HOME="$BATS_TEST_TMPDIR/home"
	export HOME="$BATS_TEST_TMPDIR/user"
	mkdir -p "$HOME"
	unset BACKCHANNEL_AGENT BACKCHANNEL_URL BACKCHANNEL_TOKEN
	export BACKCHANNEL_FSYNC=0
	cd "$BATS_TEST_TMPDIR" || return 1
	if declare -F local_setup >/dev/null; then local_setup; fi
}

# as NAME CMD...: run CMD as agent NAME.
as() {
	local who=$1
	shift
	BACKCHANNEL_AGENT=$who "$@"
}

# agents NAME...: register each name; the first becomes the default.
agents() {
	local a
	bch init "$1" >/dev/null
	for a in "${@:2}"; do BACKCHANNEL_AGENT=$a bch init "$a" >/dev/null; done
}

# count_new AGENT: unread files in AGENT's new/.
count_new() {
	find "$BACKCHANNEL_HOME/spool/$1/new" -name '*.json' | wc -l
}

# wait_for SECONDS CMD...: retry CMD until it succeeds or time runs out.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 0.05
	done
}
