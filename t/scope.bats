#!/usr/bin/env bats
# Scopes, PROTOCOL.md 4: each case a real send --scope and drain --match.
# Both sides are normalised (strip a leading scheme:// such as https://
# or ssh://, then a user such as git@, and after a scheme a :port, then
# a leading www. of a host a path follows; lowercase; ':' becomes '/'; strip a trailing .git and trailing
# slashes), and a reader claims a message when its normalised match
# contains the normalised scope as whole path segments.
load helper
bats_require_minimum_version 1.5.0

local_setup() { agents alice bob; }

# claimed SCOPE MATCH: a message sent with SCOPE is claimed by a drain
# with MATCH.
claimed() {
	bch send @bob scoped --scope "$1" >/dev/null
	run as bob bch drain --brief --match "$2"
	assert_success
	assert_output --regexp '^alice -> @bob \(.*\): scoped$'
	[ "$(count_new bob)" -eq 0 ]
}

# refused SCOPE MATCH: a message sent with SCOPE is left by a drain with
# MATCH.
refused() {
	bch send @bob scoped --scope "$1" >/dev/null
	run --separate-stderr as bob bch drain --brief --match "$2"
	assert_success
	assert_output 'inbox empty'
	[ "$(count_new bob)" -eq 1 ]
}

@test "acme/api is claimed by git@github.com:acme/api.git" {
	claimed acme/api git@github.com:acme/api.git
}

@test "acme/api is claimed by https://github.com/Acme/API/" {
	claimed acme/api https://github.com/Acme/API/
}

@test "acme/api is claimed by http://github.com/acme/api.git" {
	claimed acme/api http://github.com/acme/api.git
}

@test "acme/api is claimed by github.com/acme/api" {
	claimed acme/api github.com/acme/api
}

@test "acme/api is claimed by https://git@github.com/acme/api.git" {
	claimed acme/api https://git@github.com/acme/api.git
}

@test "acme/api is claimed by ssh://git@github.com/acme/api.git" {
	claimed acme/api ssh://git@github.com/acme/api.git
}

@test "github.com/acme/api is claimed by ssh://git@github.com/acme/api.git" {
	claimed github.com/acme/api ssh://git@github.com/acme/api.git
}

@test "host/acme/api is claimed by ssh://git@host:22/acme/api (the port is not part of the path)" {
	claimed host/acme/api ssh://git@host:22/acme/api
}

@test "gitlab.com/acme/api is claimed by an https remote with a user and token" {
	claimed gitlab.com/acme/api https://oauth2:tok3n@gitlab.com/acme/api.git
}

@test "a scope written as the scp remote is claimed by the ssh:// URL" {
	claimed git@github.com:acme/api.git ssh://git@github.com/acme/api
}

@test "a scope of a local path is claimed by its file:// URL" {
	claimed /srv/git/acme/api file:///srv/git/acme/api.git
}

@test "host/acme/api is not claimed by ssh://git@host:22/acme/api-v2" {
	refused host/acme/api ssh://git@host:22/acme/api-v2
}

@test "acme/api is claimed by a match with trailing slashes" {
	claimed acme/api 'github.com/acme/api///'
}

@test "acme/api is claimed by acme:api (':' becomes '/')" {
	claimed acme/api acme:api
}

@test "acme/api is not claimed by github.com/acme/web" {
	refused acme/api github.com/acme/web
}

@test "acme/api is not claimed by git@github.com:acme/web.git" {
	refused acme/api git@github.com:acme/web.git
}

@test "acme/api is not claimed by a match that holds only part of it" {
	refused acme/api github.com/acme
}

@test "acme/api is not claimed by another repository whose name holds it" {
	refused acme/api git@github.com:acme/api-private.git
}

@test "acme/api is not claimed by another owner whose name ends in acme" {
	refused acme/api https://github.com/notacme/api
}

@test "a scope of a whole owner is claimed by each of its repositories" {
	claimed github.com/acme git@github.com:acme/api.git
}

@test "a scope that names nothing once normalised is no scope at all" {
	bch send @bob scoped --scope https:// >/dev/null
	run as bob bch drain --brief
	assert_success
	assert_output --regexp '^alice -> @bob \(.*\): scoped$'
}

@test "github.com/acme/api is claimed by a remote on www.github.com" {
	claimed github.com/acme/api https://www.github.com/acme/api.git
}

@test "a scope written with www.github.com is claimed by the ssh remote on github.com" {
	claimed https://WWW.github.com/acme/api git@github.com:acme/api.git
}

@test "only a leading www. label is stripped: www2.github.com is another host" {
	refused github.com/acme/api https://www2.github.com/acme/api.git
}

@test "a scope naming a repository alone keeps its www.: www.acme.com is not acme.com" {
	claimed www.acme.com https://github.com/acme/www.acme.com.git
	refused www.acme.com https://github.com/evil/acme.com.git
}

@test "a match of several lines claims a scope any one of them holds" {
	claimed acme/api $'https://github.com/Acme/API.git\ngit@github.com:me/api.git'
}

@test "a match of several lines leaves a scope none of them holds" {
	refused acme/web $'git@github.com:me/api.git\nhttps://github.com/Acme/API.git'
}

@test "a scope in capitals is claimed by a match in lower case" {
	claimed GitHub.com/Acme/API git@github.com:acme/api.git
}

@test "a scope given as an https URL is claimed by the ssh remote" {
	claimed https://github.com/acme/api.git git@github.com:acme/api.git
}

@test "a scope given as an ssh remote is claimed by the https URL" {
	claimed git@github.com:acme/api.git https://github.com/acme/api
}

@test "an HTTPS:// prefix in capitals is stripped too" {
	claimed HTTPS://GitHub.com/Acme/Api/ git@github.com:acme/api.git
}

@test "a scope with a trailing .git is claimed by the bare path" {
	claimed github.com/acme/api.git github.com/acme/api
}

@test "a scope with trailing slashes is claimed by the bare path" {
	claimed github.com/acme/api// github.com/acme/api
}

@test "a scope with ':' is claimed by the same path with '/'" {
	claimed github.com:acme/api github.com/acme/api
}

@test "a directory scope is claimed by that directory" {
	claimed /home/dev/proj /home/dev/proj
}

@test "a directory scope is not claimed by another directory" {
	refused /home/dev/proj /home/dev/other
}

@test "an unscoped message matches every reader" {
	for m in git@github.com:acme/api.git /some/dir x; do
		bch send @bob open >/dev/null
		run as bob bch drain --brief --match "$m"
		assert_output --regexp ': open$'
		[ "$(count_new bob)" -eq 0 ]
	done
}

@test "a reader without a match claims only unscoped messages" {
	bch send @bob unscoped >/dev/null
	bch send @bob scoped --scope acme/api >/dev/null
	run --separate-stderr as bob bch drain --brief
	assert_output --regexp ': unscoped$'
	[ "${#lines[@]}" -eq 1 ]
	[ "$(count_new bob)" -eq 1 ]
}

@test "the stored scope is kept as the sender wrote it" {
	bch send @bob scoped --scope 'https://GitHub.com/Acme/API.git' >/dev/null
	run as bob bch drain --jsonl --match git@github.com:acme/api.git
	assert_output --partial '"scope":"https://GitHub.com/Acme/API.git"'
}

# here_repo: a checkout api whose origin is Acme/API on GitHub, with one
# commit, and a bare clone of it, api.git, as cloned from GitHub; a
# message for it and one for another repository.
here_repo() {
	mkdir api
	git -C api init -q
	git -C api remote add origin git@github.com:Acme/API.git
	git -C api -c user.name=t -c user.email=t@example.com commit -q --allow-empty -m init
	git clone -q --bare api api.git
	git -C api.git remote set-url origin git@github.com:Acme/API.git
	bch send @bob for-api --scope github.com/acme/api >/dev/null
	bch send @bob for-web --scope github.com/acme/web >/dev/null
}

@test "--here in a bare repository matches its origin remote" {
	here_repo
	cd api.git
	run --separate-stderr as bob bch drain --brief --here
	assert_success
	assert_output --regexp ': for-api$'
	[ "${#lines[@]}" -eq 1 ]
	[ "$(count_new bob)" -eq 1 ]
}

@test "--here deeper in a bare repository matches its origin remote" {
	here_repo
	cd api.git/refs/heads
	run --separate-stderr as bob bch drain --brief --here
	assert_output --regexp ': for-api$'
	[ "${#lines[@]}" -eq 1 ]
}

@test "--here in the .git directory of a checkout matches its origin remote" {
	here_repo
	cd api/.git
	run --separate-stderr as bob bch drain --brief --here
	assert_success
	assert_output --regexp ': for-api$'
	[ "${#lines[@]}" -eq 1 ]
}

@test "--here in the .git directory of a checkout without origin matches its top directory" {
	mkdir top
	git -C top init -q
	here=$(cd top && pwd -P)
	bch send @bob for-top --scope "$here" >/dev/null
	bch send @bob for-git --scope "$here/.git/objects" >/dev/null
	cd top/.git
	run --separate-stderr as bob bch drain --brief --here
	assert_output --regexp ': for-top$'
	[ "${#lines[@]}" -eq 1 ]
}

@test "--here in a bare repository without origin matches the repository's directory" {
	git init -q --bare lone.git
	here=$(cd lone.git && pwd -P)
	bch send @bob for-lone --scope "$here" >/dev/null
	bch send @bob for-api --scope acme/api >/dev/null
	cd lone.git/refs
	run --separate-stderr as bob bch drain --brief --here
	assert_output --regexp ': for-lone$'
	[ "${#lines[@]}" -eq 1 ]
}

# fork_repo: a checkout fork whose origin is bob's fork Me/API and whose
# upstream is the repository it was forked from, Acme/API; a message for
# each of the two, one for an unrelated repository and one unscoped.
fork_repo() {
	mkdir fork
	git -C fork init -q
	git -C fork remote add origin git@github.com:Me/API.git
	git -C fork remote add upstream https://github.com/Acme/API.git
	bch send @bob for-upstream --scope acme/api >/dev/null
	bch send @bob for-fork --scope github.com/me/api >/dev/null
	bch send @bob for-web --scope acme/web >/dev/null
	bch send @bob for-all >/dev/null
}

@test "--here in a fork claims what is scoped to its upstream and to the fork, not to another repository" {
	fork_repo
	cd fork
	run --separate-stderr as bob bch drain --brief --here
	assert_success
	assert_line --index 0 --regexp ': for-upstream$'
	assert_line --index 1 --regexp ': for-fork$'
	assert_line --index 2 --regexp ': for-all$'
	[ "${#lines[@]}" -eq 3 ]
	[ "$(count_new bob)" -eq 1 ]
	run --separate-stderr as bob bch inbox --brief
	assert_output --regexp ': for-web$'
}

@test "--here in a fork matches its upstream from a subdirectory and from its .git directory" {
	fork_repo
	mkdir fork/src
	cd fork/src
	run --separate-stderr as bob bch drain --brief --here --peek
	assert_line --regexp ': for-upstream$'
	[ "${#lines[@]}" -eq 3 ]
	cd ../.git
	run --separate-stderr as bob bch drain --brief --here --peek
	assert_line --regexp ': for-upstream$'
	[ "${#lines[@]}" -eq 3 ]
}

@test "--here in a repository without upstream matches its origin only, as before" {
	mkdir mine
	git -C mine init -q
	git -C mine remote add origin git@github.com:Me/API.git
	git -C mine remote add acme https://github.com/Acme/API.git
	bch send @bob for-acme --scope acme/api >/dev/null
	bch send @bob for-mine --scope me/api >/dev/null
	cd mine
	run --separate-stderr as bob bch drain --brief --here
	assert_success
	assert_output --regexp ': for-mine$'
	[ "${#lines[@]}" -eq 1 ]
	[ "$(count_new bob)" -eq 1 ]
}

@test "--here in a repository with an upstream but no origin matches its top directory and the upstream" {
	mkdir loose
	git -C loose init -q
	git -C loose remote add upstream git@github.com:Acme/API.git
	top=$(cd loose && pwd -P)
	bch send @bob for-top --scope "$top" >/dev/null
	bch send @bob for-upstream --scope github.com/acme/api >/dev/null
	bch send @bob for-web --scope acme/web >/dev/null
	cd loose
	run --separate-stderr as bob bch drain --brief --here
	assert_line --index 0 --regexp ': for-top$'
	assert_line --index 1 --regexp ': for-upstream$'
	[ "${#lines[@]}" -eq 2 ]
	[ "$(count_new bob)" -eq 1 ]
}

@test "the hook form with --here in a fork shows the upstream's message and names --here for the rest" {
	fork_repo
	cd fork
	run --separate-stderr as bob bch drain --hook --here --budget 512
	assert_success
	assert_output --partial 'for-upstream'
	assert_line '[backchannel] 2 more message(s) waiting — run: bch drain --here'
	run --separate-stderr as bob bch drain --brief --here
	refute_output --partial 'for-web'
	[ "$(count_new bob)" -eq 1 ]
}

@test "bch-mcp --here in a fork claims the upstream's message by default" {
	fork_repo
	cd fork
	printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bch_inbox","arguments":{}}}' > ../in.jsonl
	run --separate-stderr env BACKCHANNEL_AGENT=bob bch-mcp --here < ../in.jsonl
	assert_success
	assert_output --partial '"for-upstream"'
	assert_output --partial '"for-fork"'
	refute_output --partial '"for-web"'
	[ "$(count_new bob)" -eq 1 ]
}

@test "bch watch --here in a fork prints the upstream's messages, waiting and new" {
	fork_repo
	cd fork
	BACKCHANNEL_AGENT=bob bch-watch --brief --here --ready-fd 4 >../w.out \
		2>../w.err 4>../w.ready 3>&- &
	bg_pid $!
	wait_for 5 test -s ../w.ready
	bch send @bob later-upstream --scope git@github.com:acme/api.git >/dev/null
	wait_for 5 grep -q ': later-upstream$' ../w.out
	run cat ../w.out
	assert_line --index 0 --regexp ': for-upstream$'
	assert_line --index 1 --regexp ': for-fork$'
	assert_line --index 2 --regexp ': for-all$'
	assert_line --index 3 --regexp ': later-upstream$'
	[ "${#lines[@]}" -eq 4 ]
	[ "$(count_new bob)" -eq 1 ]
}
