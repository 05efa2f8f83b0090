#!/bin/sh
# hook.sh: the prompt hook's cost on an empty inbox, per process. This is
# what every prompt of every agent session pays; see README.
. "$(dirname "$0")/lib.sh"
bench_init

rounds=100 # in each round every command runs $per times, in turn, so a
per=2      # burst of load from other jobs touches all of them alike
warm=10    # untimed runs of each first

bench_home # alice is the default identity; her inbox is empty

# As a harness hook runs it: inside a checkout, matching its origin, which
# bch-drain finds by reading .git/config itself (no git child). Every
# command runs from there; only --here looks.
mkdir -p repo/.git repo/src/lib || bench_die "cannot make a checkout"
cat >repo/.git/config <<'EOF'
[core]
	repositoryformatversion = 0
	bare = false
[remote "origin"]
	url = git@github.com:example/backchannel.git
	fetch = +refs/heads/*:refs/remotes/origin/*
[branch "main"]
	remote = origin
	merge = refs/heads/main
EOF
cd repo/src/lib || bench_die "cannot enter the checkout"

# run I [rusage options]: run command I, appending its samples to s.I.
# The first two are floors: what any process, and a sh script such as
# the bch dispatcher, costs on this machine before doing anything.
run() {
	i=$1
	shift
	case $i in
	1) bench_run "$bench_tmp/s.1" "$@" true ;;
	2) bench_run "$bench_tmp/s.2" "$@" /bin/sh -c : ;;
	3) bench_run "$bench_tmp/s.3" "$@" bch-drain --hook ;;
	4) bench_run "$bench_tmp/s.4" "$@" bch drain --hook ;;
	5) bench_run "$bench_tmp/s.5" "$@" bch drain --hook --here ;;
	esac
}

for i in 1 2 3 4 5; do
	run "$i" -n "$warm"
	: >"$bench_tmp/s.$i"
done
r=0
while [ "$r" -lt "$rounds" ]; do
	r=$((r + 1))
	for i in 1 2 3 4 5; do run "$i" -n "$per"; done
done
cd "$bench_tmp" || exit 1

# report I LABEL US_LIMIT KIB_LIMIT: the figure, with how far its median
# is from the floor (true): that difference is our own code.
report() {
	bench_stats "$bench_tmp/s.$1"
	extra=
	[ "$1" -gt 1 ] && extra=$(awk -v d="$((bench_med - floor))" \
		'BEGIN { printf " (floor %+d us)", d }')
	bench_report "$2" "$bench_tmp/s.$1" "$3" "$4" "$extra"
}
bench_stats "$bench_tmp/s.1"
floor=$bench_med
report 1 "floor (true)" - -
report 2 "floor (/bin/sh -c :)" - -
report 3 "hook empty inbox (bch-drain --hook)" 1000 2048
report 4 "hook empty inbox (bch drain --hook)" 1000 2048
report 5 "hook empty inbox, in a checkout (bch drain --hook --here)" 1000 2048

[ "$(bench_count "$bench_new")" -eq 0 ] || bench_die "the inbox was not empty"
bench_summary
