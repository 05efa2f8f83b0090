#!/usr/bin/env bats
# The libFuzzer targets of t/fuzz build, pass every seed and regression
# input of their corpora, and survive a short fuzzing run.
load helper

FUZZ="$T_ROOT/t/fuzz"

local_setup() {
	# The targets call the library directly: once is enough.
	if declare -F local_only >/dev/null; then
		local_only "the fuzz targets do not use a spool"
	fi
	command -v clang >/dev/null ||
	    skip "no clang (Debian: apt-get install clang libclang-rt-14-dev)"
	printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)\n{\n\treturn 0;\n}\n' >probe.c
	clang -fsanitize=fuzzer,address,undefined -o probe probe.c 2>/dev/null ||
	    skip "clang cannot link libFuzzer (Debian: apt-get install libclang-rt-14-dev)"
}

@test "the fuzz targets build with clang, libFuzzer and the sanitizers" {
	run make -C "$FUZZ"
	assert_success
	for t in json msg agent config scope http relay sse pin; do
		[ -x "$FUZZ/$t-fuzz" ]
	done
}

@test "every seed and regression input in the corpora passes its target" {
	make -C "$FUZZ" >/dev/null
	run make -C "$FUZZ" regress
	assert_success
	refute_output --partial FAILED
}

# BCH_FUZZ_SECONDS per target, 10 by default; 0 skips the run.
@test "each target survives a short fuzzing run" {
	[ "${BCH_FUZZ_SECONDS:-10}" != 0 ] || skip "BCH_FUZZ_SECONDS=0"
	make -C "$FUZZ" >/dev/null
	run make -C "$FUZZ" run FUZZ_SECONDS="${BCH_FUZZ_SECONDS:-10}"
	assert_success
	assert_output --partial "fuzz: scope #"
	assert_output --partial "fuzz: http #"
	assert_output --partial "fuzz: relay #"
	assert_output --partial "fuzz: sse #"
	assert_output --partial "fuzz: pin #"
}
