#!/usr/bin/env bats
# A message body is another model's output (PROTOCOL.md 3): nothing runs
# it, and no printed form lets it drive a terminal. The spool is a
# directory others may plant things in: symlinks, odd names, oversize or
# malformed files are set aside, never followed or loaded.
load helper
bats_require_minimum_version 1.5.0
# Where the helper knows no relay mode, every test is a local one.
declare -F local_only >/dev/null || local_only() { :; }

local_setup() {
	agents alice bob
	NEW="$BACKCHANNEL_HOME/spool/bob/new"
	CUR="$BACKCHANNEL_HOME/spool/bob/cur"
	BAD="$BACKCHANNEL_HOME/spool/bob/corrupt"
	PWNED="$BATS_TEST_TMPDIR/pwned"
	hostile
}

# HOSTILE: bodies that would do harm if run by a shell or shown raw.
hostile() {
	local p=$PWNED
	HOSTILE=(
		"\$(touch $p)"
		"\`touch $p\`"
		"; touch $p"
		"&& touch $p"
		"'\"; touch $p; echo \"'"
		'<b>markup</b> <script>alert(1)</script>'
		$'red \e[31mALERT\e[0m plain'
		$'title \e]0;owned title\a after'
		$'link \e]8;;https://evil.example/\e\\click me\e]8;;\e\\ after'
		$'c1 csi \xc2\x9b31m after'
		$'bidi \xe2\x80\xaeexe.txt\xe2\x80\xac after'
	)
}

# send_hostile: alice sends bob every hostile body, and one message whose
# thread and refs are hostile too.
send_hostile() {
	local b
	for b in "${HOSTILE[@]}"; do
		bch send @bob "$b" >/dev/null
	done
	bch send @bob 'hostile details' --thread $'\e[2J' --ref $'\e]8;;x\e\\' --ref $'\xe2\x80\xaeref' >/dev/null
}

nothing_ran() {
	[ ! -e "$PWNED" ] || { echo "a message body was run"; return 1; }
}

# terminal_safe FILE: no byte that can drive a terminal: C0 controls but
# newline and tab, DEL, C1 controls (UTF-8 c2 80..9f), bidi overrides.
terminal_safe() {
	local bad=0
	if LC_ALL=C grep -aq $'[\x01-\x08\x0b-\x1f\x7f]' "$1"; then
		echo "raw C0 control or DEL in $1:"
		LC_ALL=C grep -an $'[\x01-\x08\x0b-\x1f\x7f]' "$1" | head -3 | od -c | head -5
		bad=1
	fi
	if LC_ALL=C grep -aq $'\xc2[\x80-\x9f]' "$1"; then
		echo "raw C1 control in $1"
		bad=1
	fi
	if LC_ALL=C grep -aqE $'\xe2\x80[\xaa-\xae]|\xe2\x81[\xa6-\xa9]' "$1"; then
		echo "raw bidi override in $1"
		bad=1
	fi
	return $bad
}

# shows_escaped FILE [brief]: the hostile bytes are there, made visible;
# in the detail lines too (thread, refs) unless the form is brief.
shows_escaped() {
	local s details=('\x1b[2J' '\x1b]8;;x\x1b\' '\u202eref')
	[ "${2-}" != brief ] || details=()
	for s in '\x1b[31mALERT' '\x1b]0;owned title\x07' '\x1b]8;;https://evil.example/\x1b\click me' \
		'\u009b31m' '\u202eexe.txt\u202c' "\$(touch $PWNED)" "\`touch $PWNED\`" '<b>markup</b>' \
		"${details[@]}"; do
		grep -qF -- "$s" "$1" || { echo "$1 lacks $s"; return 1; }
	done
}

# An independent JSON reader (node, else python3) for the JSON forms.
#   bodies FILE  the body of each message of a JSON array or JSON lines,
#                JSON-encoded, one a line
#   quote FILE...  each file's bytes as a JSON string (strict UTF-8)
#   text FILE    the text of each MCP result in FILE (JSON lines), raw
JSONTOOL_JS='
const fs = require("fs");
const [mode, f, ...more] = process.argv.slice(1);
const text = f => new TextDecoder("utf-8", { fatal: true }).decode(fs.readFileSync(f));
if (mode === "quote") { for (const g of [f, ...more]) console.log(JSON.stringify(text(g))); process.exit(0); }
if (mode === "text") { for (const l of text(f).split("\n").filter(l => l !== "")) for (const c of JSON.parse(l).result.content) process.stdout.write(c.text + "\n"); process.exit(0); }
const s = text(f);
let v;
try { v = JSON.parse(s); if (!Array.isArray(v)) v = [v]; }
catch (e) { v = s.split("\n").filter(l => l !== "").map(l => JSON.parse(l)); }
for (const m of v) console.log(JSON.stringify(m.body));
'
JSONTOOL_PY='
import json, sys
mode, f = sys.argv[1], sys.argv[2]
text = lambda g: open(g, "rb").read().decode("utf-8")
if mode == "quote":
	for g in sys.argv[2:]: print(json.dumps(text(g)))
	sys.exit(0)
if mode == "text":
	for l in text(f).split("\n"):
		for c in json.loads(l)["result"]["content"] if l else []: sys.stdout.buffer.write((c["text"] + "\n").encode())
	sys.exit(0)
s = text(f)
try:
	v = json.loads(s)
	v = v if isinstance(v, list) else [v]
except ValueError:
	v = [json.loads(l) for l in s.split("\n") if l != ""]
for m in v: print(json.dumps(m["body"]))
'
jsontool() {
	if command -v node >/dev/null 2>&1; then
		node -e "$JSONTOOL_JS" "$@"
	elif command -v python3 >/dev/null 2>&1; then
		python3 -c "$JSONTOOL_PY" "$@"
	else
		return 2
	fi
}
have_json_parser() { command -v node >/dev/null 2>&1 || command -v python3 >/dev/null 2>&1; }

# json_safe FILE: the JSON output holds no raw control character (the
# newlines between records aside) and its bodies are the hostile bodies,
# exactly.
json_safe() {
	if tr -d '\n' < "$1" | LC_ALL=C grep -aq '[[:cntrl:]]'; then
		echo "raw control character in JSON output $1"
		return 1
	fi
	have_json_parser || { echo "# no node or python3: JSON bodies not compared" >&3; return 0; }
	local i
	if [ ! -f want.bodies ]; then
		for i in "${!HOSTILE[@]}"; do printf '%s' "${HOSTILE[$i]}" > "body.$i"; done
		printf 'hostile details' > body.details
		jsontool quote body.* | sort > want.bodies
	fi
	diff want.bodies <(jsontool bodies "$1" | sort)
}

# plant NAME CONTENT: put a file straight into bob's new/.
plant() { printf '%s' "$2" > "$NEW/$1"; }

# message ID BODY: a message as a file in the spool holds it.
message() {
	printf '{"id":"%s","from":"mallory","to":"@bob","body":"%s","priority":"normal","ts":"2026-06-12T12:00:00.000Z"}' "$1" "$2"
}

corrupt_count() { find "$BAD" -type f -printf x 2>/dev/null | wc -c; }

@test "hostile bodies run nothing and are escaped in drain's human, brief and hook forms" {
	for form in human --brief --hook; do
		send_hostile
		f=${form#--}
		if [ "$form" = human ]; then
			as bob bch drain > "out.$f"
		else
			as bob bch drain "$form" > "out.$f"
		fi
		nothing_ran
		terminal_safe "out.$f"
		shows_escaped "out.$f" "$f"
		[ "$(count_new bob)" -eq 0 ]
	done
	# The hook fences every body.
	[ "$(grep -c '^--- begin message [0-9a-f]\{8\} from alice \[' out.hook)" -eq 12 ]
	[ "$(grep -c '^--- end message [0-9a-f]\{8\} \[' out.hook)" -eq 12 ]
	# brief is one line per message, whatever the body holds.
	[ "$(wc -l < out.brief)" -eq 12 ]
}

@test "hostile bodies run nothing and are escaped in inbox and read" {
	send_hostile
	bch send @bob 'scoped' --scope $'acme/\e[31mapi\xe2\x80\xae' >/dev/null
	as bob bch inbox > out.inbox
	as bob bch inbox --brief > out.brief
	for id in $(new_ids bob); do
		as bob bch read "$id" >> out.read
	done
	for f in out.inbox out.brief out.read; do
		nothing_ran
		terminal_safe "$f"
		shows_escaped "$f" "${f#out.}"
	done
	grep -qF '  scope: acme/\x1b[31mapi\u202e' out.inbox
	[ "$(count_new bob)" -eq 0 ]
}

# INVISIBLE: code points that show nothing at all, as UTF-8 for printf:
# zero-width characters, word joiner and invisible operators, the byte
# order mark, line and paragraph separators, tag characters (which can
# spell out instructions no human reader sees); then the soft hyphen, the
# grapheme joiner, Hangul fillers, Khmer inherent vowels, the Mongolian
# vowel separator, deprecated format characters, interlinear annotation
# marks, musical and shorthand format controls. SHOWN: how every text
# form must show each.
INVISIBLE=('\xe2\x80\x8b' '\xe2\x80\x8c' '\xe2\x80\x8d' '\xe2\x81\xa0' '\xe2\x81\xa1'
	'\xe2\x81\xa2' '\xe2\x81\xa3' '\xe2\x81\xa4' '\xef\xbb\xbf' '\xe2\x80\xa8' '\xe2\x80\xa9'
	'\xf3\xa0\x80\x80' '\xf3\xa0\x80\x81' '\xf3\xa0\x81\x81' '\xf3\xa0\x81\xbf'
	'\xc2\xad' '\xcd\x8f' '\xe1\x85\x9f' '\xe1\x85\xa0' '\xe3\x85\xa4' '\xef\xbe\xa0'
	'\xe1\x9e\xb4' '\xe1\x9e\xb5' '\xe1\xa0\x8e' '\xe2\x81\xaa' '\xe2\x81\xab' '\xe2\x81\xac'
	'\xe2\x81\xad' '\xe2\x81\xae' '\xe2\x81\xaf' '\xef\xbf\xb9' '\xef\xbf\xba' '\xef\xbf\xbb'
	'\xf0\x9d\x85\xb3' '\xf0\x9d\x85\xb4' '\xf0\x9d\x85\xb5' '\xf0\x9d\x85\xb6'
	'\xf0\x9d\x85\xb7' '\xf0\x9d\x85\xb8' '\xf0\x9d\x85\xb9' '\xf0\x9d\x85\xba'
	'\xf0\x9b\xb2\xa0')
SHOWN=('\u200b' '\u200c' '\u200d' '\u2060' '\u2061' '\u2062' '\u2063' '\u2064' '\ufeff'
	'\u2028' '\u2029' '\U000e0000' '\U000e0001' '\U000e0041' '\U000e007f'
	'\u00ad' '\u034f' '\u115f' '\u1160' '\u3164' '\uffa0'
	'\u17b4' '\u17b5' '\u180e' '\u206a' '\u206b' '\u206c'
	'\u206d' '\u206e' '\u206f' '\ufff9' '\ufffa' '\ufffb'
	'\U0001d173' '\U0001d174' '\U0001d175' '\U0001d176'
	'\U0001d177' '\U0001d178' '\U0001d179' '\U0001d17a'
	'\U0001bca0')

# invisible_body [FROM [COUNT]]: invisible code points (all by default),
# each between a letter and its index.
invisible_body() {
	local i from=${1:-0} n=${2:-${#INVISIBLE[@]}}
	for ((i = from; i < from + n && i < ${#INVISIBLE[@]}; i++)); do
		printf "a${INVISIBLE[$i]}$i; "
	done
}

# shows_invisible FILE: every invisible code point of invisible_body is
# there escaped, and none raw.
shows_invisible() {
	local i
	for i in "${!SHOWN[@]}"; do
		grep -qF -- "a${SHOWN[$i]}$i;" "$1" || { echo "$1 lacks a${SHOWN[$i]}$i;"; return 1; }
		if LC_ALL=C grep -aqF -- "$(printf "${INVISIBLE[$i]}")" "$1"; then
			echo "raw ${SHOWN[$i]} in $1"
			return 1
		fi
	done
}

# mcp_inbox AGENT: what bch_inbox of bch-mcp shows AGENT's model (the
# text of its result), claiming the messages.
mcp_inbox() {
	printf '%s\n' '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"bch_inbox","arguments":{}}}' >mcp.in
	as "$1" bch-mcp <mcp.in >mcp.out
	jsontool text mcp.out
}

# shown_as FORM: bob's messages as FORM shows them; all are gone from his
# inbox after.
shown_as() {
	case $1 in
	human) as bob bch drain ;;
	inbox) as bob bch inbox && as bob bch drain >/dev/null ;;
	read) as bob bch read $(new_ids bob) ;;
	mcp) mcp_inbox bob ;;
	*) as bob bch drain "$1" ;;
	esac
}

@test "zero-width, separator, filler, format and tag characters are escaped in every text form" {
	local from
	for form in human --brief --hook inbox read mcp; do
		[ "$form" != mcp ] || have_json_parser || continue
		# Twelve at a time: the brief form shows 120 characters.
		for ((from = 0; from < ${#INVISIBLE[@]}; from += 12)); do
			invisible_body $from 12 | bch send @bob - >/dev/null
		done
		bch send @bob 'invisible details' --thread "$(invisible_body 0 15)" >/dev/null
		shown_as $form > out
		shows_invisible out || { echo "form $form:"; cat out; false; }
		terminal_safe out
		[ "$(count_new bob)" -eq 0 ]
	done
}

# A variation selector after a visible character is ordinary (U+FE0F
# makes an emoji of what precedes it), but a run of them can carry any
# bytes, one a selector, that no reader sees. SMUGGLED: 40 selectors
# after an emoji, U+FE00 to U+FE0F then U+E0100 to U+E0117, as for the
# bytes 0 to 39; STRAY: selectors that follow nothing visible, and a
# joiner that joins no emoji. ORDINARY: emoji with selectors and joiners,
# and an ideographic variation sequence, shown as they are.
selector_bodies() {
	local b
	SMUGGLED=$'run \xf0\x9f\x91\x8d' SMUGGLED_SHOWN=$'run \xf0\x9f\x91\x8d'
	for ((b = 0; b < 40; b++)); do
		if [ $b -lt 16 ]; then
			SMUGGLED+=$(printf "\\xef\\xb8\\x$(printf %02x $((0x80 + b)))")
			SMUGGLED_SHOWN+=$(printf '\\ufe%02x' $b)
		else
			SMUGGLED+=$(printf "\\xf3\\xa0\\x84\\x$(printf %02x $((0x80 + b - 16)))")
			SMUGGLED_SHOWN+=$(printf '\\U000e01%02x' $((b - 16)))
		fi
	done
	SMUGGLED+=' end' SMUGGLED_SHOWN+=' end'
	STRAY=$'\xef\xb8\x8fstart; lead \xef\xb8\x80x; tab\t\xef\xb8\x81z; latin a\xf3\xa0\x84\x80b; '
	STRAY+=$'han \xe6\xbc\xa2\xf3\xa0\x84\x80\xf3\xa0\x84\x81; joiner \xf0\x9f\x91\x8d\xe2\x80\x8dx; end'
	STRAY_SHOWN=('\ufe0fstart;' 'lead \ufe00x;' '\ufe01z;' 'latin a\U000e0100b;'
		$'han \xe6\xbc\xa2\\U000e0100\\U000e0101;' $'joiner \xf0\x9f\x91\x8d\\u200dx;')
	# 👍️ (U+1F44D U+FE0F), 🇺🇳, 👨‍👩‍👧‍👦, ❤️‍🔥, 1️⃣, 漢󠄀 (U+6F22 U+E0100)
	ORDINARY=$'thumbs \xf0\x9f\x91\x8d\xef\xb8\x8f flag \xf0\x9f\x87\xba\xf0\x9f\x87\xb3 '
	ORDINARY+=$'family \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7\xe2\x80\x8d\xf0\x9f\x91\xa6 '
	ORDINARY+=$'heart \xe2\x9d\xa4\xef\xb8\x8f\xe2\x80\x8d\xf0\x9f\x94\xa5 keycap 1\xef\xb8\x8f\xe2\x83\xa3 '
	ORDINARY+=$'han \xe6\xbc\xa2\xf3\xa0\x84\x80 end'
}

@test "a smuggled run of variation selectors is escaped in every text form; ordinary emoji are not" {
	local s
	selector_bodies
	for form in human --brief --hook inbox read mcp; do
		[ "$form" != mcp ] || have_json_parser || continue
		bch send @bob "$SMUGGLED" >/dev/null
		bch send @bob "$STRAY" >/dev/null
		bch send @bob "$ORDINARY" >/dev/null
		shown_as $form > out
		grep -qF -- "$SMUGGLED_SHOWN" out || { echo "form $form lacks $SMUGGLED_SHOWN:"; cat out; false; }
		for s in "${STRAY_SHOWN[@]}"; do
			grep -qF -- "$s" out || { echo "form $form lacks $s:"; cat out; false; }
		done
		grep -qF -- "$ORDINARY" out || { echo "form $form changed $ORDINARY:"; cat out; false; }
		terminal_safe out
		[ "$(count_new bob)" -eq 0 ]
	done
}

# Zero width non-joiners and joiners are ordinary inside words of the
# scripts that write them, and a subdivision flag is a tag sequence.
# WRITTEN: Persian می‌خواهم (ZWNJ between letters), Devanagari क्‌ष
# (after a virama) and र्‍य (eyelash ra), Malayalam ന്‍റ, Sinhala ශ්‍රී,
# the flag of England (U+1F3F4, tags g b e n g, CANCEL TAG): shown as they
# are. OUT_OF_WORD and BAD_FLAGS: a joiner beside Latin, at a word's end,
# in a run, between two scripts or two digits, or before a combining mark
# (marks stack on one letter, so joiners between them would hide bits);
# tags in upper case, with no CANCEL TAG, more than seven, none, with no
# flag, or spelling any other flag than England's, Scotland's and Wales's
# (tags spell text no one sees): escaped (each message short enough for
# the brief form).
joiner_bodies() {
	local zwnj=$'\xe2\x80\x8c' zwj=$'\xe2\x80\x8d' mi=$'\xd9\x85\xdb\x8c'
	local kh=$'\xd8\xae\xd9\x88\xd8\xa7\xd9\x87\xd9\x85' ka=$'\xe0\xa4\x95\xe0\xa5\x8d'
	local flag=$'\xf0\x9f\x8f\xb4' cancel=$'\xf3\xa0\x81\xbf' t=$'\xf3\xa0\x81'
	local gbeng=$t$'\xa7'$t$'\xa2'$t$'\xa5'$t$'\xae'$t$'\xa7'
	local shown_gbeng='\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067'
	WRITTEN="persian $mi$zwnj$kh hindi $ka$zwnj"$'\xe0\xa4\xb7'
	WRITTEN+=$' eyelash \xe0\xa4\xb0\xe0\xa5\x8d'$zwj$'\xe0\xa4\xaf'
	WRITTEN+=$' malayalam \xe0\xb4\xa8\xe0\xb5\x8d'$zwj$'\xe0\xb4\xb1'
	WRITTEN+=$' sinhala \xe0\xb7\x81\xe0\xb7\x8a'$zwj$'\xe0\xb6\xbb\xe0\xb7\x93'
	WRITTEN+=" england $flag$gbeng$cancel end"
	OUT_OF_WORD="latin $mi${zwnj}x; end $mi$zwnj ; run $mi$zwnj$zwnj$kh; "
	OUT_OF_WORD+="scripts $mi$zwj$ka; digits "$'\xdb\xb1'$zwnj$'\xdb\xb2'"; "
	OUT_OF_WORD+="marks "$'\xd8\xa8\xd9\x8e'$zwnj$'\xd9\x8e'$zwj$'\xd9\x8e'"; end"
	OUT_OF_WORD_SHOWN=("latin $mi\\u200cx;" "end $mi\\u200c ;"
		"run $mi\\u200c\\u200c$kh;" "scripts $mi\\u200d$ka;"
		$'digits \xdb\xb1\\u200c\xdb\xb2;'
		$'marks \xd8\xa8\xd9\x8e\\u200c\xd9\x8e\\u200d\xd9\x8e;')
	BAD_FLAGS="upper $flag$t"$'\xa7'"$t"$'\x82'"$cancel; open $flag$gbeng; "
	BAD_FLAGS+="long $flag$gbeng$gbeng$cancel; none $flag$cancel; bare x$gbeng$cancel; "
	BAD_FLAGS+="other $flag$t"$'\xb5'"$t"$'\xb3'"$t"$'\xb4'"$t"$'\xb8'"$cancel; end"
	BAD_FLAGS_SHOWN=("upper $flag\\U000e0067\\U000e0042\\U000e007f;"
		"open $flag$shown_gbeng;" "long $flag$shown_gbeng$shown_gbeng\\U000e007f;"
		"none $flag\\U000e007f;" "bare x$shown_gbeng\\U000e007f;"
		"other $flag\\U000e0075\\U000e0073\\U000e0074\\U000e0078\\U000e007f;")
}

@test "joiners inside Persian and Indic words and subdivision flags show as written; elsewhere they are escaped" {
	local s
	joiner_bodies
	for form in human --brief --hook inbox read mcp; do
		[ "$form" != mcp ] || have_json_parser || continue
		bch send @bob "$WRITTEN" >/dev/null
		bch send @bob "$OUT_OF_WORD" >/dev/null
		bch send @bob "$BAD_FLAGS" >/dev/null
		shown_as $form > out
		grep -qF -- "$WRITTEN" out || { echo "form $form changed $WRITTEN:"; cat out; false; }
		for s in "${OUT_OF_WORD_SHOWN[@]}" "${BAD_FLAGS_SHOWN[@]}"; do
			grep -qF -- "$s" out || { echo "form $form lacks $s:"; cat out; false; }
		done
		terminal_safe out
		[ "$(count_new bob)" -eq 0 ]
	done
}

@test "hostile bodies come out of every JSON form with control characters escaped, exactly" {
	for form in --json --jsonl; do
		send_hostile
		as bob bch drain "$form" > "out$form"
		nothing_ran
		json_safe "out$form"
	done
	send_hostile
	as bob bch inbox --json > out.inbox
	json_safe out.inbox
	ids=$(new_ids bob)
	as bob bch read --jsonl $ids > out.read
	json_safe out.read
	nothing_ran
}

@test "JSON forms escape C1 controls too" {
	bch send @bob $'c1 csi \xc2\x9b31m after' >/dev/null
	as bob bch inbox --json > out.json
	grep -qF '\u009b' out.json
	! LC_ALL=C grep -aq $'\xc2[\x80-\x9f]' out.json || false
	as bob bch drain --jsonl > out.jsonl
	grep -qF '\u009b' out.jsonl
	! LC_ALL=C grep -aq $'\xc2[\x80-\x9f]' out.jsonl || false
}

@test "a 64 KiB hostile body runs nothing and is escaped in every form" {
	unit=$'\e[31m'"\$(touch $PWNED) \`touch $PWNED\` "
	while [ "${#big}" -lt 70000 ]; do big+=$unit; done
	printf '%s' "$big" | head -c 65536 > big.txt
	[ "$(wc -c < big.txt)" -eq 65536 ]
	esc=$(tr -cd '\033' < big.txt | wc -c)
	for form in human --brief --json --jsonl read; do
		bch send @bob - < big.txt >/dev/null
		case $form in
		human) as bob bch drain > out ;;
		read) as bob bch read "$(new_ids bob)" > out ;;
		*) as bob bch drain "$form" > out ;;
		esac
		nothing_ran
		if [ "$form" = --json ] || [ "$form" = --jsonl ]; then
			! tr -d '\n' < out | LC_ALL=C grep -aq '[[:cntrl:]]' || false
			[ "$(grep -o '\\u001b' out | wc -l)" -eq "$esc" ]
		else
			terminal_safe out
		fi
		# The whole body is shown (brief cuts at 120 characters).
		if [ "$form" = human ] || [ "$form" = read ]; then
			[ "$(grep -oF '\x1b[31m' out | wc -l)" -eq "$esc" ]
		fi
		[ "$(count_new bob)" -eq 0 ]
	done
}

@test "a 64 KiB body in the hook form is cut, and stays queued as the hook says" {
	head -c 65536 /dev/zero | tr '\0' 'a' > big.txt
	bch send @bob - < big.txt >/dev/null
	id=$(new_ids bob)
	run as bob bch drain --hook
	assert_success
	[ "${#output}" -lt 10000 ]
	assert_output --partial "the whole message stays queued; run: bch read ${id:0:8}"
	[ "$(new_ids bob)" = "$id" ] || { echo "the hook said the message stays queued, but it was claimed"; false; }
	run as bob bch read "${id:0:8}"
	assert_success
	[ "$(grep -o a <<<"$output" | wc -l)" -ge 65536 ]
}

@test "a message file naming its sender twice is set aside, shown as neither" {
	local_only "the reader of planted files is this process"
	id=6f1c2a4e-0b7d-4c1e-9a55-000000000042
	plant "$id.json" "{\"id\":\"$id\",\"from\":\"alice\",\"to\":\"@bob\",\"body\":\"trust me\",\"priority\":\"normal\",\"ts\":\"2026-06-12T12:00:00.000Z\",\"from\":\"mallory\"}"
	run --separate-stderr as bob bch drain
	assert_success
	assert_output 'inbox empty'
	[[ $stderr == *"corrupt message $id.json in bob's inbox (field \"from\" given twice (JSON readers differ on which one counts))"* ]]
	ls "$BAD" | grep -q "^$id.json"
}

@test "invalid UTF-8 written straight into a spool file is set aside in every form, never shown raw" {
	local_only "the reader of planted files is this process"
	n=0
	for form in inbox drain --brief --hook --json --jsonl read; do
		n=$((n + 1))
		id=$(printf '6f1c2a4e-0b7d-4c1e-9a55-%012d' "$n")
		plant "$id.json" "$(message "$id" $'bogus \xff\xfe bytes \xc0\xaf and \xed\xa0\x80 here')"
		bch send @bob "fine $n" >/dev/null
		case $form in
		inbox) as bob bch inbox > out 2> err ;;
		drain) as bob bch drain > out 2> err ;;
		read) as bob bch read "$id" > out 2> err || true ;;
		*) as bob bch drain "$form" > out 2> err ;;
		esac
		! LC_ALL=C grep -aq $'[\xff\xfe\xc0]\|\xed\xa0' out || false
		! grep -q 'bogus' out || false
		[ "$form" = read ] || [ "$form" = inbox ] || grep -q "fine $n" out
		[ ! -e "$NEW/$id.json" ]
		ls "$BAD" | grep -q "^$id.json"
		grep -q "corrupt message $id.json in bob's inbox" err
		! LC_ALL=C grep -aq $'[\xff\xfe\xc0]' err || false
		as bob bch drain >/dev/null
	done
	nothing_ran
}

@test "stored text with \\u0000 or a lone surrogate shows as U+FFFD in every form; in a name it is set aside" {
	# Valid JSON that is no UTF-8 text, as JSON.stringify writes it: read
	# as U+FFFD in the body, thread and refs, never as raw bytes; a name
	# holding it is refused as before.
	id=6f1c2a4e-0b7d-4c1e-9a55-3b6f5f1e2a10
	bad=6f1c2a4e-0b7d-4c1e-9a55-3b6f5f1e2a11
	put_json bob $id "$(message $id 'nul \u0000 cut \ud83d stray \udc00 end' |
		sed 's/,"ts"/,"thread":"t\\ud800","refs":["r\\u0000"],"ts"/')"
	put_json bob $bad "$(message $bad 'named badly' | sed 's/"mallory"/"mal\\u0000lory"/')"
	want='nul � cut � stray � end'
	for form in inbox --brief --hook --json; do
		if [ $form = inbox ]; then
			as bob bch inbox >out 2>>err
		else
			as bob bch drain --peek $form >out 2>>err
		fi
		grep -qF "$want" out || { echo "$form: no [$want] in: $(cat out)"; false; }
		! LC_ALL=C grep -aq $'\xed[\xa0-\xbf]' out || false
		! grep -q 'named badly' out || false
	done
	grep -qF '"thread":"t�","refs":["r�"]' out
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	assert_output "{\"id\":\"$id\",\"from\":\"mallory\",\"to\":\"@bob\",\"body\":\"$want\",\"priority\":\"normal\",\"thread\":\"t�\",\"refs\":[\"r�\"],\"ts\":\"2026-06-12T12:00:00.000Z\"}"
	[ "$(count_new bob)" -eq 0 ]
	# Said by the reader of the spool: this process, or the relay.
	if on_redis; then
		[ "$(rcli HKEYS "$BCH_ROOM:corrupt:bob")" = "$bad" ]
	else
		[ "$(corrupt_count)" -eq 1 ]
		ls "$BAD" | grep -q "^$bad.json"
	fi
	if [ -n "${BCH_TEST_RELAY:-}" ]; then
		[ "$(grep -c 'corrupt message' "$BATS_TEST_TMPDIR/relay.log")" -eq 1 ]
	else
		grep -q "corrupt message $bad.json" err
	fi
	nothing_ran
}

@test "a symlink planted in new/ is not followed: the outside file is untouched and not shown" {
	files_only "a symlink planted in new/"
	mkdir outside
	id=6f1c2a4e-0b7d-4c1e-9a55-3b6f5f1e2a10
	message "$id" 'TOP SECRET' > outside/secret.json
	cp outside/secret.json secret.orig
	for form in inbox drain --jsonl --hook read; do
		ln -s "$BATS_TEST_TMPDIR/outside/secret.json" "$NEW/$id.json"
		case $form in
		inbox) as bob bch inbox > out 2>&1 ;;
		drain) as bob bch drain > out 2>&1 ;;
		read) as bob bch read "$id" > out 2>&1 || true ;;
		*) as bob bch drain "$form" > out 2>&1 ;;
		esac
		! grep -q 'TOP SECRET' out || { echo "$form followed the link"; false; }
		[ -f outside/secret.json ] && [ ! -L outside/secret.json ]
		cmp secret.orig outside/secret.json
		rm -f "$NEW/$id.json"
	done
}

@test "a symlink planted as tmp/ does not redirect a send outside the spool" {
	files_only "a symlink planted as tmp/"
	mkdir outside
	touch -d '2001-02-03 04:05:06' outside
	before=$(stat -c %y outside)
	rm -rf "$BACKCHANNEL_HOME/spool/bob/tmp"
	ln -s "$BATS_TEST_TMPDIR/outside" "$BACKCHANNEL_HOME/spool/bob/tmp"
	run bch send @bob 'through the link'
	# Nothing was created in (and then moved out of) the outside directory.
	[ "$(stat -c %y outside)" = "$before" ] || { echo "the send wrote through tmp/ -> outside/"; false; }
	[ -z "$(ls -A outside)" ]
	# Refused, or delivered without the link: never lost silently.
	if [ "$status" -eq 0 ]; then
		run as bob bch drain
		assert_output --partial 'through the link'
	fi
}

@test "a symlink planted as corrupt/ does not move a file set aside outside the spool" {
	files_only "a symlink planted as corrupt/"
	mkdir outside
	bch send @bob 'still delivered' >/dev/null
	ln -s "$BATS_TEST_TMPDIR/outside" "$BACKCHANNEL_HOME/spool/bob/corrupt"
	printf 'echo pwned\n' >"$NEW/evil.sh"
	run --separate-stderr as bob bch drain
	assert_success
	assert_output --partial 'still delivered'
	[ -z "$(ls -A outside)" ] || { echo "set aside through corrupt/ -> outside/: $(ls -A outside)"; false; }
	# Said by the reader of the spool: this process, or the relay.
	if [ -n "${BCH_TEST_RELAY:-}" ]; then
		grep -q 'evil.sh.*not a directory' "$BATS_TEST_TMPDIR/relay.log"
	else
		[[ $stderr == *evil.sh* ]]
	fi
	# Left where it was, for bch doctor to point at.
	[ -f "$NEW/evil.sh" ]
}

@test "a symlink planted as cur/ does not redirect a claim outside the spool" {
	files_only "a symlink planted as cur/"
	mkdir outside
	touch -d '2001-02-03 04:05:06' outside
	before=$(stat -c %y outside)
	bch send @bob 'claim me' >/dev/null
	bch send @bob 'keep me' >/dev/null
	rm -rf "$CUR"
	ln -s "$BATS_TEST_TMPDIR/outside" "$CUR"
	run as bob bch read "$(grep -l 'keep me' "$NEW"/*.json | sed 's|.*/||; s/\.json$//')" --keep
	run as bob bch drain
	[ "$(stat -c %y outside)" = "$before" ] || { echo "a claim went through cur/ -> outside/"; false; }
	[ -z "$(ls -A outside)" ]
	# Not lost: shown, or still waiting.
	[[ $output == *'claim me'* ]] || [ "$(count_new bob)" -ge 1 ]
}

@test "an inbox another user swapped in through a writable home is refused: nothing planted is read, nothing sent is put there" {
	local_only "a relay trusts an inbox it checked for 10 s"
	[ "$(id -u)" -eq 0 ] || skip "only root can give a directory away"
	bch send @bob 'for bob only' >/dev/null
	# What another user can do in a home left mode 0777: set spool/
	# aside and put one of their own in its place.
	chmod 777 "$BACKCHANNEL_HOME"
	mv "$BACKCHANNEL_HOME/spool" "$BACKCHANNEL_HOME/spool.old"
	mkdir -p "$BACKCHANNEL_HOME/spool/bob/new" "$BACKCHANNEL_HOME/spool/bob/tmp" "$BACKCHANNEL_HOME/spool/bob/cur"
	printf '%s\n' '{"id":"11111111-1111-4111-8111-111111111111","from":"alice","to":"@bob","body":"planted","priority":"urgent","ts":"2026-12-07T15:00:00.000Z"}' \
		>"$BACKCHANNEL_HOME/spool/bob/new/11111111-1111-4111-8111-111111111111.json"
	chown -R 65534 "$BACKCHANNEL_HOME/spool"
	run as bob bch drain
	assert_failure 100
	assert_output "bch-drain: $BACKCHANNEL_HOME/spool is owned by uid 65534, not by you — refusing to use it; run bch doctor for the fix"
	run bch send @bob 'a secret'
	assert_failure 100
	assert_output --partial 'is owned by uid 65534, not by you'
	[ -z "$(ls -A "$BACKCHANNEL_HOME/spool/bob/tmp")" ]
	[ "$(ls "$BACKCHANNEL_HOME/spool/bob/new")" = 11111111-1111-4111-8111-111111111111.json ]
}

@test "a spool wholly owned by another uid (a network mount, a user's spool used by root) is used" {
	local_only "the relay's own spool is made by the relay"
	[ "$(id -u)" -eq 0 ] || skip "only root can give a directory away"
	bch send @bob 'before' >/dev/null
	chown -R 65534 "$BACKCHANNEL_HOME"
	run bch send @bob 'after'
	assert_success
	run as bob bch drain
	assert_success
	assert_output --partial 'before'
	assert_output --partial 'after'
}

@test "hostile file names in new/ are moved aside without crashing or running anything" {
	local_only "the reader of planted files is this process"
	good=6f1c2a4e-0b7d-4c1e-9a55-3b6f5f1e2a10
	plant "$good.json" "$(message "$good" 'the real one')"
	for name in $'evil\nname.json' "\$(touch pwned).json" $'\e]0;title\a.json' '--help.json' \
		'`touch pwned`.json' 'no-suffix' '.json'; do
		plant "$name" "$(message "$good" 'forged copy')"
	done
	run --separate-stderr as bob bch drain
	assert_success
	nothing_ran
	assert_output --partial 'the real one'
	refute_output --partial 'forged copy'
	[ "$(grep -c 'the real one' <<<"$output")" -eq 1 ]
	# One warning line per name, each a whole line, names escaped.
	printf '%s\n' "$stderr" > err
	! grep -v '^bch-drain: ' err || false
	! LC_ALL=C grep -aq $'[\x01-\x08\x0b-\x1f\x7f]' err || false
	grep -qF 'evil\x0aname.json' err
	[ "$(corrupt_count)" -eq 6 ]
	# A hidden name is not a message: left for whoever made it.
	[ "$(ls -A "$NEW")" = .json ]
	run as bob bch inbox
	assert_output 'inbox empty'
}

@test "a forged oversize file in new/ is set aside, not loaded" {
	local_only "the reader of planted files is this process"
	id=6f1c2a4e-0b7d-4c1e-9a55-3b6f5f1e2a10
	# 2 MiB: over what any writer may send and any reader accepts (readers
	# take up to 1 MiB bodies, in case a writer raised its own limit).
	{
		printf '{"id":"%s","from":"mallory","to":"@bob","body":"' "$id"
		head -c 2097152 /dev/zero | tr '\0' x
		printf '","priority":"normal","ts":"2026-06-12T12:00:00.000Z"}'
	} > "$NEW/$id.json"
	bch send @bob 'small one' >/dev/null
	run --separate-stderr as bob bch inbox --json
	assert_success
	[[ $output != *xxxxxxxx* ]] || { echo "the forged file was loaded and shown"; false; }
	assert_output --partial 'small one'
	[ ! -e "$NEW/$id.json" ]
	[ "$(corrupt_count)" -eq 1 ]
	[[ $stderr == *"corrupt message $id.json"* ]]
	run --separate-stderr as bob bch drain --jsonl
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	assert_output --partial 'small one'
}

@test "a huge sparse file in new/ is refused by its size, never read into memory" {
	local_only "the reader of planted files is this process"
	if ldd "$T_ROOT/bin/bch-drain" 2>/dev/null | grep -q libasan; then
		skip "a sanitizer build needs more address space than this test allows"
	fi
	id=6f1c2a4e-0b7d-4c1e-9a55-3b6f5f1e2a10
	truncate -s 2G "$NEW/$id.json"
	bch send @bob 'small one' >/dev/null
	# 512 MiB of address space: a reader that loads the file before
	# checking its size cannot survive this.
	run --separate-stderr env BACKCHANNEL_AGENT=bob bash -c 'ulimit -v 524288 && exec timeout 10 bch-drain --jsonl'
	assert_success
	[ "${#lines[@]}" -eq 1 ]
	assert_output --partial 'small one'
	[ ! -e "$NEW/$id.json" ]
	[ "$(corrupt_count)" -eq 1 ]
}
