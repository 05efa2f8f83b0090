#!/usr/bin/env bats
# Compatibility with the first (TypeScript) implementation, PROTOCOL.md 1
# and 2: we read the spool it wrote, and it can read every file we write.
load helper
bats_require_minimum_version 1.5.0
# Where the helper knows no relay mode, every test is a local one.
declare -F local_only >/dev/null || local_only() { :; }

# The first implementation's files on disk: the local spool only.
local_setup() { local_only "the first implementation's spool files"; }

FIX="$BATS_TEST_DIRNAME/fixtures/ts"

# The messages of bob's fixture inbox, oldest first (by ts, then id).
D=9b2e4f10-5c3a-4d8e-b1f2-7a6c0d9e3b21 # 11:59:59.999, fields reordered, unknown fields
A=3f0c9d7e-8a41-4c1b-9d55-0b6f5f1e2a10 # 12:00:00.000, every field, scoped
C=0a7d3c55-1e2f-4b6a-9c8d-2f3e4a5b6c7d # 12:00:01.500, compact, emoji
B=c4e8a2b6-3d5f-4a7c-8e9b-1f2a3b4c5d6e # 12:00:01.500, \u escapes; same ts as C
F=5d6e7f80-9a1b-4c2d-ae3f-4b5c6d7e8f90 # 2026-06-13, multi-line body
K=e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a5b # in cur/: read earlier with keep

# ts_spool: BACKCHANNEL_HOME becomes a copy of the fixture spool, with the
# empty tmp/, new/ and cur/ that the first implementation made and git
# does not keep.
ts_spool() {
	mkdir -p "$BACKCHANNEL_HOME"
	cp -R "$FIX/." "$BACKCHANNEL_HOME/"
	local a
	for a in alice bob carol; do
		mkdir -p "$BACKCHANNEL_HOME/spool/$a/tmp" "$BACKCHANNEL_HOME/spool/$a/new" \
			"$BACKCHANNEL_HOME/spool/$a/cur"
	done
}

new_of() { echo "$BACKCHANNEL_HOME/spool/$1/new"; }
cur_of() { echo "$BACKCHANNEL_HOME/spool/$1/cur"; }

# An independent, strict JSON reader: node's JSON.parse (what the first
# implementation used), else python3's json module. Invalid UTF-8, a BOM,
# NaN and duplicate keys are refused.
#   fields FILE...   per file "@<TAB>FILE", then "key<TAB>type<TAB>json" lines;
#                    type "strings" is an array of non-empty strings
#   canon FILE...|-  each message's protocol fields, in protocol order, one
#                    line each; "-" reads a JSON array or JSON lines on stdin
JSONTOOL_JS='
const fs = require("fs");
const [mode, ...args] = process.argv.slice(1);
const dec = b => new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(b);
const read = f => fs.readFileSync(f === "-" ? 0 : f);
const type = v => v === null ? "null" : Array.isArray(v) ?
	(v.every(x => typeof x === "string" && x !== "") ? "strings" : "array") : typeof v;
const ORDER = ["id", "from", "to", "body", "priority", "scope", "thread", "refs", "ts"];
const canon = m => { const o = {}; for (const k of ORDER) if (k in m) o[k] = m[k]; return JSON.stringify(o); };
const many = s => { try { const v = JSON.parse(s); return Array.isArray(v) ? v : [v]; }
	catch (e) { return s.split("\n").filter(l => l !== "").map(l => JSON.parse(l)); } };
const out = [];
for (const f of args) {
	if (mode === "fields") {
		const v = JSON.parse(dec(read(f)));
		out.push("@\t" + f);
		if (type(v) !== "object") { out.push("!\tnot an object\t"); continue; }
		for (const k of Object.keys(v)) out.push(k + "\t" + type(v[k]) + "\t" + JSON.stringify(v[k]));
	} else if (mode === "canon") {
		if (f === "-") for (const m of many(dec(read(f)))) out.push(canon(m));
		else out.push(canon(JSON.parse(dec(read(f)))));
	} else { throw new Error("unknown mode " + mode); }
}
if (out.length) process.stdout.write(out.join("\n") + "\n");
'
JSONTOOL_PY='
import json, sys
mode, args = sys.argv[1], sys.argv[2:]
def refuse(c): raise ValueError("not JSON: " + c)
def pairs(ps):
	d = {}
	for k, v in ps:
		if k in d: raise ValueError("duplicate key " + k)
		d[k] = v
	return d
def parse(s): return json.loads(s, parse_constant=refuse, object_pairs_hook=pairs)
def read(f): return (sys.stdin.buffer.read() if f == "-" else open(f, "rb").read()).decode("utf-8")
def enc(v): return json.dumps(v, separators=(",", ":"))
def typ(v):
	if v is None: return "null"
	if isinstance(v, bool): return "boolean"
	if isinstance(v, (int, float)): return "number"
	if isinstance(v, str): return "string"
	if isinstance(v, dict): return "object"
	return "strings" if all(isinstance(x, str) and x for x in v) else "array"
ORDER = ["id", "from", "to", "body", "priority", "scope", "thread", "refs", "ts"]
def canon(m): return enc({k: m[k] for k in ORDER if k in m})
def many(s):
	try:
		v = parse(s)
		return v if isinstance(v, list) else [v]
	except ValueError:
		return [parse(l) for l in s.split("\n") if l != ""]
out = []
for f in args:
	if mode == "fields":
		v = parse(read(f))
		out.append("@\t" + f)
		if typ(v) != "object":
			out.append("!\tnot an object\t")
			continue
		out += [k + "\t" + typ(x) + "\t" + enc(x) for k, x in v.items()]
	elif mode == "canon":
		out += [canon(m) for m in many(read(f))] if f == "-" else [canon(parse(read(f)))]
	else:
		raise SystemExit("unknown mode " + mode)
if out: sys.stdout.write("\n".join(out) + "\n")
'
# BCH_TEST_JSON=python3 (or none) picks the parser, to test the fallbacks.
json_impl() {
	local p
	for p in node python3; do
		[ -z "${BCH_TEST_JSON:-}" ] || [ "$BCH_TEST_JSON" = "$p" ] || continue
		command -v "$p" >/dev/null 2>&1 && { echo "$p"; return; }
	done
}
jsontool() {
	case $(json_impl) in
	node) node -e "$JSONTOOL_JS" "$@" ;;
	python3) python3 -c "$JSONTOOL_PY" "$@" ;;
	*) echo "no JSON parser" >&2; return 1 ;;
	esac
}
need_json_parser() {
	[ -n "$(json_impl)" ] ||
		skip "neither node nor python3 is installed: no independent JSON parser to check with"
}

RE_TS='"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"'
RE_NAME='[A-Za-z0-9][A-Za-z0-9._-]{0,63}'
RE_UUID='"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"'

# problems KIND FILE...: print, one line each, what in the files breaks
# PROTOCOL.md (KIND is msg, agent or config); print nothing when all is well.
problems() {
	local kind=$1 tsv key type val file=
	shift
	local -A T=() V=()
	tsv=$(jsontool fields "$@" 2>&1) || { echo "not strict JSON: $tsv"; return; }
	while IFS=$'\t' read -r key type val; do
		if [ "$key" = @ ]; then
			[ -z "$file" ] || "verdict_$kind" "$file"
			file=$type T=() V=()
			continue
		fi
		T[$key]=$type V[$key]=$val
	done <<<"$tsv"
	[ -z "$file" ] || "verdict_$kind" "$file"
}

# only FILE KEY...: the object in FILE has no keys but these.
only() {
	local f=$1 k allowed
	shift
	allowed=" $* "
	for k in "${!T[@]}"; do
		[[ $allowed == *" $k "* ]] || echo "$f: unexpected field \"$k\""
	done
}

verdict_msg() {
	local f=$1 stem k
	stem=${f##*/}
	stem=${stem%.json}
	[ "${T[!]-}" != 'not an object' ] || { echo "$f: not an object"; return; }
	only "$f" id from to body priority scope thread refs ts
	for k in id from to body priority ts; do
		[ "${T[$k]-}" = string ] || echo "$f: \"$k\" missing or not a string"
	done
	[[ ${V[id]-} =~ ^$RE_UUID$ ]] || echo "$f: id ${V[id]-} is not a lowercase UUID v4"
	[ "${V[id]-}" = "\"$stem\"" ] || echo "$f: id ${V[id]-} is not the file name stem $stem"
	[[ ${V[from]-} =~ ^\"$RE_NAME\"$ ]] || echo "$f: from ${V[from]-} is not an agent name"
	[[ ${V[to]-} =~ ^\"[@#]$RE_NAME\"$ ]] || echo "$f: to ${V[to]-} is neither @agent nor #channel"
	[ "${V[body]-}" != '""' ] || echo "$f: empty body"
	[[ ${V[priority]-} =~ ^\"(normal|urgent)\"$ ]] || echo "$f: priority ${V[priority]-}"
	[[ ${V[ts]-} =~ ^$RE_TS$ ]] || echo "$f: ts ${V[ts]-} is not ISO 8601 UTC with milliseconds"
	for k in scope thread; do
		[ -z "${T[$k]+set}" ] || { [ "${T[$k]}" = string ] && [ "${V[$k]}" != '""' ]; } ||
			echo "$f: $k is present but empty or not a string"
	done
	[ -z "${T[refs]+set}" ] || { [ "${T[refs]}" = strings ] && [ "${V[refs]}" != '[]' ]; } ||
		echo "$f: refs is present but empty or not an array of non-empty strings"
}

verdict_agent() {
	local f=$1 stem k
	stem=${f##*/}
	stem=${stem%.json}
	[ "${T[!]-}" != 'not an object' ] || { echo "$f: not an object"; return; }
	only "$f" name subscriptions createdAt lastSeen tokenHash
	[ "${V[name]-}" = "\"$stem\"" ] || echo "$f: name ${V[name]-} is not the file name stem $stem"
	[[ ${V[name]-} =~ ^\"$RE_NAME\"$ ]] || echo "$f: name ${V[name]-} is not an agent name"
	[[ ${V[subscriptions]-} =~ ^\[(\"#$RE_NAME\"(,\"#$RE_NAME\")*)?\]$ ]] ||
		echo "$f: subscriptions ${V[subscriptions]-} is not an array of #channels"
	for k in createdAt lastSeen; do
		[[ ${V[$k]-} =~ ^$RE_TS$ ]] || echo "$f: $k ${V[$k]-} is missing or not a timestamp"
	done
}

verdict_config() {
	local f=$1
	[ "${T[!]-}" != 'not an object' ] || { echo "$f: not an object"; return; }
	only "$f" agent url token
	[[ ${V[agent]-} =~ ^\"$RE_NAME\"$ ]] || echo "$f: agent ${V[agent]-} is not an agent name"
}

# ---- reading the first implementation's spool ---------------------------

@test "the fixture spool is what the first implementation wrote: strict JSON, protocol fields" {
	need_json_parser
	# Guards the fixtures themselves: the tests below mean something only
	# if these files are what a TS writer produced.
	run problems msg "$FIX"/spool/*/new/*.json "$FIX"/spool/*/cur/*.json
	# D carries unknown fields on purpose; the check must see them, and
	# nothing else.
	assert_output "$(printf "$FIX/spool/bob/new/$D.json: unexpected field \"%s\"\n" meta v x-client)"
	run problems agent "$FIX"/agents/*.json
	assert_output ''
	run problems config "$FIX/config.json"
	assert_output ''
}

@test "inbox lists a TS spool by ts then id, every field and body intact" {
	ts_spool
	run bch inbox
	assert_success
	assert_output "$(
		printf '%s\n' \
			'carol -> @bob (2026-06-12T11:59:59.999Z, id 9b2e4f10)' \
			'fields in another order; the unknown ones are ignored' \
			'' \
			'alice -> @bob (2026-06-12T12:00:00.000Z, id 3f0c9d7e)' \
			'  scope: github.com/acme/api' \
			'  thread: 6a1c2b3d-0e4f-4a5b-8c6d-7e8f9a0b1c2d' \
			'  refs: src/api.ts, https://example.com/issue/42' \
			'PR 42 merged, rebase now' \
			'' \
			'alice -> @bob [URGENT] (2026-06-12T12:00:01.500Z, id 0a7d3c55)' \
			'ship it 🚀 — naïve café, 日本語' \
			'' \
			'carol -> #dev (2026-06-12T12:00:01.500Z, id c4e8a2b6)' \
			'  thread: 3f0c9d7e-8a41-4c1b-9d55-0b6f5f1e2a10' \
			'été 🚀 — 日本語 👍🏽 see https://x.test/1' \
			'' \
			'alice -> @bob [URGENT] (2026-06-13T08:30:00.000Z, id 5d6e7f80)' \
			'  refs: notes.md' \
			'line one' \
			'line two with "quotes" and a back\slash' \
			$'\tindented, see https://example.com/a/b'
	)"
	# Listing claims nothing and leaves the files as they were.
	[ "$(count_new bob)" -eq 5 ]
	diff -r "$FIX/spool/bob/new" "$(new_of bob)"
}

@test "inbox --brief puts each TS message on one line, in order" {
	ts_spool
	run bch inbox --brief
	assert_success
	assert_output "$(
		printf '%s\n' \
			'carol -> @bob (2026-06-12T11:59:59.999Z, id 9b2e4f10): fields in another order; the unknown ones are ignored' \
			'alice -> @bob (2026-06-12T12:00:00.000Z, id 3f0c9d7e): PR 42 merged, rebase now' \
			'alice -> @bob [URGENT] (2026-06-12T12:00:01.500Z, id 0a7d3c55): ship it 🚀 — naïve café, 日本語' \
			'carol -> #dev (2026-06-12T12:00:01.500Z, id c4e8a2b6): été 🚀 — 日本語 👍🏽 see https://x.test/1' \
			'alice -> @bob [URGENT] (2026-06-13T08:30:00.000Z, id 5d6e7f80): line one line two with "quotes" and a back\slash indented, see https://example.com/a/b'
	)"
}

@test "drain --json of a TS spool equals JSON.parse of its files, unknown fields dropped" {
	need_json_parser
	ts_spool
	run bch drain --json --match git@github.com:acme/api.git
	assert_success
	printf '%s\n' "$output" > got.json
	jsontool canon "$FIX/spool/bob/new/$D.json" "$FIX/spool/bob/new/$A.json" \
		"$FIX/spool/bob/new/$C.json" "$FIX/spool/bob/new/$B.json" \
		"$FIX/spool/bob/new/$F.json" > want.txt
	jsontool canon - < got.json > got.txt
	diff want.txt got.txt
	# The unknown fields, nested look-alikes included, did not leak in.
	refute_output --partial 'not-the-id'
	refute_output --partial 'not-the-sender'
	refute_output --partial 'x-client'
	refute_output --partial 'retries'
	[ "$(count_new bob)" -eq 0 ]
}

@test "drain --jsonl decodes \\u escapes and surrogate pairs to UTF-8" {
	ts_spool
	run --separate-stderr bch drain --jsonl
	assert_success
	assert_line --index 2 --partial '"body":"été 🚀 — 日本語 👍🏽 see https://x.test/1"'
	assert_line --index 0 "{\"id\":\"$D\",\"from\":\"carol\",\"to\":\"@bob\",\"body\":\"fields in another order; the unknown ones are ignored\",\"priority\":\"normal\",\"ts\":\"2026-06-12T11:59:59.999Z\"}"
	assert_line --index 3 "{\"id\":\"$F\",\"from\":\"alice\",\"to\":\"@bob\",\"body\":\"line one\\nline two with \\\"quotes\\\" and a back\\\\slash\\n\\tindented, see https://example.com/a/b\\n\",\"priority\":\"urgent\",\"refs\":[\"notes.md\"],\"ts\":\"2026-06-13T08:30:00.000Z\"}"
	[ "${#lines[@]}" -eq 4 ]
}

@test "drain claims a TS spool's unscoped messages and leaves the scoped one and cur/ alone" {
	ts_spool
	run bch drain
	assert_success
	assert_output --partial 'id 9b2e4f10'
	refute_output --partial 'PR 42 merged'
	# Order: D, C, B, F.
	[ "$(grep -o 'id [0-9a-f]\{8\})' <<<"$output" | tr '\n' ' ')" = 'id 9b2e4f10) id 0a7d3c55) id c4e8a2b6) id 5d6e7f80) ' ]
	[ "$(ls "$(new_of bob)")" = "$A.json" ]
	# The message kept in cur/ by the first implementation is not an inbox
	# message: untouched, and nothing of ours is left beside it.
	[ "$(ls "$(cur_of bob)")" = "$K.json" ]
	cmp "$FIX/spool/bob/cur/$K.json" "$(cur_of bob)/$K.json"
	run bch drain --match https://github.com/acme/api
	assert_success
	assert_output --partial 'PR 42 merged, rebase now'
	run bch inbox
	assert_output 'inbox empty'
}

@test "read claims a TS message by id prefix; --keep moves the file to cur/ unchanged" {
	ts_spool
	run bch read 0a7d
	assert_success
	assert_output "$(printf '%s\n' 'alice -> @bob [URGENT] (2026-06-12T12:00:01.500Z, id 0a7d3c55)' 'ship it 🚀 — naïve café, 日本語')"
	[ ! -e "$(new_of bob)/$C.json" ]
	run bch read "$B" --keep
	assert_success
	assert_output --partial 'été 🚀 — 日本語 👍🏽'
	cmp "$FIX/spool/bob/new/$B.json" "$(cur_of bob)/$B.json"
	[ "$(count_new bob)" -eq 3 ]
	run bch read "$K"
	assert_failure 100
}

@test "each identity reads its own TS inbox; one without a spool directory is empty" {
	ts_spool
	run as alice bch inbox
	assert_success
	assert_output "$(printf '%s\n' 'bob -> #dev (2026-06-12T12:00:02.000Z, id 7c8d9e0f)' 'standup in 5 ☕')"
	rm -rf "$BACKCHANNEL_HOME/spool/carol"
	run as carol bch inbox
	assert_success
	assert_output 'inbox empty'
	run bch whoami
	assert_output 'bob via local spool'
}

@test "agents and channels read the TS agent records" {
	ts_spool
	run bch agents
	assert_success
	assert_output "$(
		printf '%s\n' \
			'alice  #dev  last seen 2026-06-12T12:00:05.123Z' \
			'bob (you)  #dev #ops  last seen 2026-06-13T08:31:00.000Z' \
			'carol  last seen 2026-06-12T11:59:59.999Z'
	)"
	run bch channels
	assert_success
	assert_output "$(printf '%s\n' '#dev' '#ops')"
}

@test "sends into a TS spool route by its records: DMs and channel fan-out" {
	ts_spool
	run bch send @carol 'hello from C'
	assert_success
	[ "$(count_new carol)" -eq 1 ]
	run bch send '#dev' 'fan out'
	assert_success
	# alice is subscribed in her TS record; bob is the sender.
	[ "$(count_new alice)" -eq 2 ]
	[ "$(count_new carol)" -eq 1 ]
	run as alice bch drain --jsonl
	assert_line --index 1 --partial '"from":"bob","to":"#dev","body":"fan out"'
}

# ts_message DIR ID FROM TO BODY TS: a message file as the first
# implementation writes one (JSON.stringify(m, null, 2), no trailing
# newline); FROM, TO and BODY are the JSON string contents, escapes and all.
ts_message() {
	printf '{\n  "id": "%s",\n  "from": "%s",\n  "to": "%s",\n  "body": "%s",\n  "priority": "normal",\n  "ts": "%s"\n}' \
		"$2" "$3" "$4" "$5" "$6" >"$1/$2.json"
}

@test "a TS body holding a lone surrogate or \\u0000 is read as U+FFFD, not set aside" {
	ts_spool
	# JSON.stringify writes a string cut inside a surrogate pair with a
	# lone surrogate escape, and a NUL as \u0000: valid JSON both.
	L=1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d
	N=2b3c4d5e-6f7a-4b8c-9d0e-1f2a3b4c5d6e
	ts_message "$(new_of carol)" $L alice @carol 'cut in a pair: \ud83d, a stray \ude80, a whole \ud83d\ude80' 2026-06-14T09:00:00.000Z
	ts_message "$(new_of carol)" $N alice @carol 'before\u0000after' 2026-06-14T09:00:01.000Z
	run as carol bch inbox --brief
	assert_success
	assert_output "$(printf '%s\n' \
		'alice -> @carol (2026-06-14T09:00:00.000Z, id 1a2b3c4d): cut in a pair: �, a stray �, a whole 🚀' \
		'alice -> @carol (2026-06-14T09:00:01.000Z, id 2b3c4d5e): before�after')"
	run as carol bch read "$L"
	assert_success
	assert_output "$(printf '%s\n' 'alice -> @carol (2026-06-14T09:00:00.000Z, id 1a2b3c4d)' \
		'cut in a pair: �, a stray �, a whole 🚀')"
	run as carol bch drain --jsonl
	assert_success
	assert_output "{\"id\":\"$N\",\"from\":\"alice\",\"to\":\"@carol\",\"body\":\"before�after\",\"priority\":\"normal\",\"ts\":\"2026-06-14T09:00:01.000Z\"}"
	[ "$(count_new carol)" -eq 0 ]
	[ ! -e "$BACKCHANNEL_HOME/spool/carol/corrupt" ]
	run as carol bch doctor
	refute_output --partial 'corrupt'
	assert_line --partial 'queue carol: empty'
}

@test "a TS message with \\u0000 or a lone surrogate in a name is still set aside" {
	ts_spool
	ts_message "$(new_of carol)" 3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f 'alice\u0000' @carol 'nul in from' 2026-06-14T09:00:00.000Z
	ts_message "$(new_of carol)" 4d5e6f7a-8b9c-4d0e-9f2a-3b4c5d6e7f8a alice '@carol\ud800' 'surrogate in to' 2026-06-14T09:00:01.000Z
	ts_message "$(new_of carol)" 5e6f7a8b-9c0d-4e1f-8a3b-4c5d6e7f8a9b alice @carol 'the good one' 2026-06-14T09:00:02.000Z
	run as carol bch drain
	assert_success
	assert_line 'the good one'
	refute_output --partial 'nul in from'
	refute_output --partial 'surrogate in to'
	assert_line "bch-drain: corrupt message 3c4d5e6f-7a8b-4c9d-8e1f-2a3b4c5d6e7f.json in carol's inbox (field \"from\" is over its limit of 64 bytes or holds a \\u0000 or lone surrogate escape) — moved to spool/carol/corrupt/"
	assert_line --partial "corrupt message 4d5e6f7a-8b9c-4d0e-9f2a-3b4c5d6e7f8a.json in carol's inbox (field \"to\""
	[ "$(ls "$BACKCHANNEL_HOME/spool/carol/corrupt" | wc -l)" -eq 2 ]
	run as carol bch doctor
	assert_line --partial 'corrupt carol: 2 file(s) set aside'
}

# ---- what we write, read as the first implementation would --------------

@test "the writer checks catch what a TS reader would refuse or misread" {
	need_json_parser
	id=6f1c2a4e-0b7d-4c1e-9a55-3b6f5f1e2a10
	good="{\"id\":\"$id\",\"from\":\"a\",\"to\":\"@b\",\"body\":\"x\",\"priority\":\"normal\",\"ts\":\"2026-06-12T12:00:00.000Z\"}"
	mkdir ok bad
	printf '%s' "$good" > "ok/$id.json"
	run problems msg "ok/$id.json"
	assert_output ''
	printf '%s' "${good%\}}," > "bad/$id.json"
	run problems msg "bad/$id.json"
	assert_output --partial 'not strict JSON'
	printf '%s' "${good/x/$'\xff'}" > "bad/$id.json"
	run problems msg "bad/$id.json"
	assert_output --partial 'not strict JSON'
	printf '%s' "${good/@b/b}" > "bad/$id.json"
	run problems msg "bad/$id.json"
	assert_output --partial 'neither @agent nor #channel'
	printf '%s' "${good/.000Z/Z}" > "bad/$id.json"
	run problems msg "bad/$id.json"
	assert_output --partial 'not ISO 8601'
	printf '%s' "${good%\}},\"scope\":\"\",\"refs\":[]}" > "bad/$id.json"
	run problems msg "bad/$id.json"
	assert_line --partial 'scope is present but empty'
	assert_line --partial 'refs is present but empty'
	printf '%s' "$good" > bad/other.json
	run problems msg bad/other.json
	assert_output --partial 'not the file name stem'
	printf '%s' '{"name":"a","subscriptions":["dev"],"createdAt":"x"}' > bad/a.json
	run problems agent bad/a.json
	assert_line --partial 'not an array of #channels'
	assert_line --partial 'createdAt "x"'
	assert_line --partial 'lastSeen'
}

@test "every file we write is strict JSON with exactly the protocol's fields" {
	need_json_parser
	agents alice bob carol
	as bob bch sub '#dev' >/dev/null
	as carol bch sub '#dev' >/dev/null
	as carol bch sub '#ops' >/dev/null
	as carol bch unsub '#ops' >/dev/null
	{
		bch send @bob plain
		bch send @bob every field --urgent --scope github.com/acme/api --thread t-1 --ref src/a.ts --ref 'https://x.test/?q="1"'
		bch send @bob "$(printf 'esc \033[31m bel \a soh \001 del \177 tab\t nl\n quote " back \\ sep \342\200\250 emoji 🚀 é')"
		bch send '#dev' 'to the channel'
	} >/dev/null
	printf '%s\n' '{"to":"bob","body":"stdin \u00e9 \ud83d\ude80","scope":"","thread":"","refs":[]}' \
		'{"to":"@carol","body":"refs with an empty one","refs":["","kept"]}' | bch-send >/dev/null
	first=$(ls "$BACKCHANNEL_HOME/spool/bob/new" | head -1)
	run as bob bch read "${first%.json}" --keep
	assert_success
	shopt -s nullglob
	msgs=("$BACKCHANNEL_HOME"/spool/*/new/*.json "$BACKCHANNEL_HOME"/spool/*/cur/*.json)
	[ "${#msgs[@]}" -eq 7 ]
	run problems msg "${msgs[@]}"
	assert_output ''
	run problems agent "$BACKCHANNEL_HOME"/agents/*.json
	assert_output ''
	[ "$(ls "$BACKCHANNEL_HOME/agents" | wc -l)" -eq 3 ]
	run problems config "$BACKCHANNEL_HOME/config.json"
	assert_output ''
	# Owner-only, as PROTOCOL.md 3 says.
	for f in "${msgs[@]}" "$BACKCHANNEL_HOME"/agents/*.json "$BACKCHANNEL_HOME/config.json"; do
		[ "$(stat -c %a "$f")" = 600 ] || { echo "$f is $(stat -c %a "$f")"; false; }
	done
	[ "$(stat -c %a "$BACKCHANNEL_HOME")" = 700 ]
}

@test "bodies we write read back exactly with JSON.parse, control characters included" {
	need_json_parser
	agents alice bob
	body=$(printf 'esc \033[31m bel \a soh \001 del \177 tab\t cr \r nl\n quote " back \\ sep \342\200\250 emoji 🚀 é')
	bch send @bob "$body"
	printf '%s' "$body" > want.body
	f=$(ls "$BACKCHANNEL_HOME"/spool/bob/new/*.json)
	# Control characters are stored escaped, not raw and not stripped.
	! LC_ALL=C grep -aq $'[\x01-\x1f\x7f]' "$f" || false
	if [ "$(json_impl)" = node ]; then
		node -e 'const fs=require("fs"); const m=JSON.parse(fs.readFileSync(process.argv[1],"utf8")); if (m.body !== fs.readFileSync(process.argv[2],"utf8")) { console.log(JSON.stringify(m.body)); process.exit(1); }' "$f" want.body
	else
		python3 -c 'import json,sys; m=json.load(open(sys.argv[1],encoding="utf-8")); w=open(sys.argv[2],encoding="utf-8",newline="").read(); sys.exit(0 if m["body"]==w else repr(m["body"]))' "$f" want.body
	fi
}

@test "optional fields that are empty are absent from the file, not empty" {
	agents alice bob
	printf '%s\n' '{"to":"@bob","body":"x","scope":"","thread":"","refs":[]}' | bch-send >/dev/null
	run cat "$BACKCHANNEL_HOME"/spool/bob/new/*.json
	refute_output --partial '"scope"'
	refute_output --partial '"thread"'
	refute_output --partial '"refs"'
}

@test "agent records we rewrite keep the TS fields and stay readable" {
	need_json_parser
	ts_spool
	bch sub '#new' >/dev/null
	run cat "$BACKCHANNEL_HOME/agents/bob.json"
	assert_output --partial '"createdAt": "2026-06-01T09:01:30.250Z"'
	# A reader notes lastSeen when the record is over a minute old.
	touch -d '5 minutes ago' "$BACKCHANNEL_HOME/agents/alice.json"
	as alice bch inbox >/dev/null
	run cat "$BACKCHANNEL_HOME/agents/alice.json"
	assert_output --partial '"createdAt": "2026-06-01T09:00:00.000Z"'
	refute_output --partial '2026-06-12T12:00:05.123Z'
	assert_output --partial '"#dev"'
	run problems agent "$BACKCHANNEL_HOME"/agents/*.json
	assert_output ''
	run bch channels
	assert_output "$(printf '%s\n' '#dev' '#new' '#ops')"
}
