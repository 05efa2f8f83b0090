/* json fuzz target: json_parse, a walk of every token through the json_*
 * helpers, the escape round trip, utf8_valid against a reference, and
 * json_scan against json_parse. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json-scan.h"

#include "check.h"

/* RFC 3629, written the other way round from lib/json.c: decode, then
 * judge the code point. Length of the sequence at s, or 0. */
static int
ref_seqlen(const unsigned char *s, size_t n)
{
	static const unsigned long min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	unsigned long cp;
	int len, k;

	if (s[0] < 0x80)
		return 1;
	if ((s[0] & 0xe0) == 0xc0)
		len = 2, cp = s[0] & 0x1f;
	else if ((s[0] & 0xf0) == 0xe0)
		len = 3, cp = s[0] & 0x0f;
	else if ((s[0] & 0xf8) == 0xf0)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < (size_t)len)
		return 0;
	for (k = 1; k < len; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[k] & 0x3f);
	}
	if (cp < min[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static int
ref_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		int k = ref_seqlen(s + i, n - i);
		if (!k)
			return 0;
		i += (size_t)k;
	}
	return 1;
}

static void
check_utf8(const uint8_t *s, size_t n)
{
	size_t i;

	CHECK(utf8_valid((const char *)s, n) == ref_valid(s, n));
	for (i = 0; i < n && i < 64; i++)
		CHECK(utf8_seqlen(s + i, n - i) == ref_seqlen(s + i, n - i));
}

/* s (n bytes, valid UTF-8, no NUL) escaped by json_put_string must be
 * clean JSON text that parses and unescapes to the same bytes. */
static void
check_escape(const char *s, size_t n)
{
	struct buf b = BUF_INIT;
	struct json j;
	const char *why = NULL;
	char *out = NULL;
	size_t outlen = 0, i;

	json_put_string(&b, s, n);
	for (i = 0; i < b.len; i++)
		CHECK((unsigned char)b.p[i] >= 0x20 && b.p[i] != 0x7f);
	CHECK(json_parse(&j, b.p, b.len, 1, &why) == 0);
	CHECK(j.n == 1 && j.t[0].type == JSON_STRING);
	CHECK(json_string(&j, 0, n, &out, &outlen) == 0);
	CHECK(outlen == n && memcmp(out, s, n) == 0);
	free(out);
	json_free(&j);
	buf_free(&b);
}

/* Raw bytes that need no escaping, quoted, are JSON exactly when they
 * are UTF-8: the validator and utf8_valid must agree. */
static void
check_quoted(const uint8_t *s, size_t n)
{
	struct buf b = BUF_INIT;
	struct json j;
	const char *why = NULL;
	size_t i;
	int ok;

	for (i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] == '"' || s[i] == '\\')
			return;
	buf_addc(&b, '"');
	buf_add(&b, s, n);
	buf_addc(&b, '"');
	ok = json_parse(&j, b.p, b.len, 1, &why) == 0;
	CHECK(ok == utf8_valid((const char *)s, n));
	if (ok)
		json_free(&j);
	buf_free(&b);
}

/* json_text reads every string the validator passed, as UTF-8 without
 * NUL; json_string reads the same unless it refuses, which only a \u0000
 * or a lone surrogate (U+FFFD in the text) may make it do. */
static void
walk_string(const struct json *j, int i)
{
	char *out = NULL, *text = NULL;
	size_t len = 0, tlen = 0;

	CHECK(!json_is(j, i, "null"));
	CHECK(json_text(j, i, (size_t)-1, &text, &tlen) == 0);
	CHECK(strlen(text) == tlen);
	CHECK(utf8_valid(text, tlen));
	CHECK(tlen <= (size_t)(j->t[i].end - j->t[i].start));
	check_escape(text, tlen);
	if (json_string(j, i, (size_t)-1, &out, &len) < 0) {
		CHECK(strstr(text, "\xef\xbf\xbd") != NULL);
		free(text);
		return;
	}
	CHECK(len == tlen && memcmp(out, text, len) == 0);
	free(out);
	free(text);
	if (len > 0) {
		CHECK(json_string(j, i, len - 1, &out, NULL) < 0);
		CHECK(json_text(j, i, len - 1, &text, NULL) < 0);
	}
}

static void
walk_primitive(const struct json *j, int i)
{
	char c = j->s[j->t[i].start];
	long long v;

	CHECK(j->t[i].end > j->t[i].start);
	CHECK(strchr("-0123456789tfn", c) != NULL);
	CHECK(json_string(j, i, (size_t)-1, &(char *){ 0 }, NULL) < 0);
	if (json_int(j, i, &v) == 0)
		CHECK(c == '-' || (c >= '0' && c <= '9'));
	if (json_is(j, i, "true") || json_is(j, i, "false") ||
	    json_is(j, i, "null"))
		CHECK(c == 't' || c == 'f' || c == 'n');
}

static void
walk_object(const struct json *j, int obj, int end)
{
	int k, key = obj + 1;

	for (k = 0; k < j->t[obj].size; k++) {
		const struct json_tok *t = &j->t[key];
		char *name, *found;
		int got;

		CHECK(key < end && t->type == JSON_STRING && t->size == 1);
		/* The first key naming the same, escapes read, wins; the
		 * last is this one or after it. (A name with \u0000 or a
		 * lone surrogate is no name a lookup can give.) */
		if (json_string(j, key, (size_t)-1, &name, NULL) == 0) {
			got = json_get(j, obj, name);
			CHECK(got > obj && got <= key + 1);
			CHECK(json_string(j, got - 1, (size_t)-1, &found,
			    NULL) == 0);
			CHECK(strcmp(found, name) == 0);
			free(found);
			CHECK(json_get_last(j, obj, name) >= key + 1);
			free(name);
		}
		key = json_next(j, key + 1);
	}
	CHECK(key == end);
	/* Escapes name any valid UTF-8 (even "\u0001"), never a bad byte. */
	CHECK(json_get(j, obj, "\xff") == -1);
}

static void
walk_array(const struct json *j, int arr, int end)
{
	int k, item = arr + 1;

	for (k = 0; k < j->t[arr].size; k++) {
		CHECK(item < end);
		item = json_next(j, item);
	}
	CHECK(item == end);
	CHECK(json_get(j, arr, "a") == -1);
}

static void
walk(const struct json *j)
{
	int i;

	CHECK(j->n >= 1 && json_next(j, 0) == j->n);
	for (i = 0; i < j->n; i++) {
		const struct json_tok *t = &j->t[i];
		int end = json_next(j, i);

		CHECK(t->start >= 0 && t->start <= t->end &&
		    (size_t)t->end <= j->len);
		CHECK(end > i && end <= j->n);
		switch (t->type) {
		case JSON_STRING: walk_string(j, i); break;
		case JSON_PRIMITIVE: walk_primitive(j, i); break;
		case JSON_OBJECT: walk_object(j, i, end); break;
		case JSON_ARRAY: walk_array(j, i, end); break;
		default: CHECK(0);
		}
	}
}

/* How many keys of object obj decode to name. */
static int
count_keys(const struct json *j, int obj, const char *name)
{
	int k, key = obj + 1, n = 0;
	char *s;

	for (k = 0; k < j->t[obj].size; k++, key = json_next(j, key + 1)) {
		if (json_string(j, key, (size_t)-1, &s, NULL) < 0)
			continue;
		n += strcmp(s, name) == 0;
		free(s);
	}
	return n;
}

/* json_scan, fed the text in pieces, agrees with json_parse: an object
 * that parses is ok to it, each watched name is counted as its keys
 * give it, and a member given once has its type and (when short) its
 * exact text. Whatever the text, a member's text it gives is JSON. */
static void
check_scan(const char *s, size_t size)
{
	static const char *const names[] = { "id", "method", "a", "", NULL };
	struct json_scan sc;
	struct json j, v;
	const char *why, *val;
	size_t i, step = size ? 1 + (unsigned char)s[0] % 7 : 1, len, raw;
	int k, t, ok;

	json_scan_init(&sc, names);
	for (i = 0; i < size; i += step)
		json_scan(&sc, s + i, size - i < step ? size - i : step);
	ok = json_parse(&j, s, size, JSON_SCAN_DEPTH, &why) == 0;
	if (ok && j.t[0].type == JSON_OBJECT)
		CHECK(json_scan_ok(&sc));
	else if (ok)
		CHECK(!json_scan_ok(&sc));
	for (k = 0; names[k]; k++) {
		t = json_scan_member(&sc, k, &val, &len);
		if (val) {
			CHECK(len <= JSON_SCAN_VAL);
			CHECK(json_parse(&v, val, len, JSON_SCAN_DEPTH, &why) == 0);
			CHECK(v.t[0].type == t);
			json_free(&v);
		}
		if (!ok || j.t[0].type != JSON_OBJECT)
			continue;
		CHECK(sc.m[k].n == count_keys(&j, 0, names[k]));
		if (sc.m[k].n != 1) {
			CHECK(t == 0 && !val);
			continue;
		}
		i = (size_t)json_get(&j, 0, names[k]);
		CHECK(t == j.t[i].type);
		raw = (size_t)(j.t[i].end - j.t[i].start) + 2 * (t == JSON_STRING);
		CHECK(raw <= JSON_SCAN_VAL ? val && len == raw && memcmp(val,
		    s + j.t[i].start - (t == JSON_STRING), raw) == 0 : !val);
	}
	if (ok)
		json_free(&j);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	struct json j;
	const char *why = NULL;
	size_t i;

	check_utf8(data, size);
	check_quoted(data, size);
	check_scan(s, size);
	if (utf8_valid(s, size) && !memchr(s, 0, size))
		check_escape(s, size);
	if (json_parse(&j, s, size, 32, &why) < 0) {
		CHECK(why && *why);
		/* jsmn must never refuse what the validator let through; a
		 * bare top-level number or literal is a known jsmn gap. */
		for (i = 0; i < size && strchr(" \t\r\n", s[i]) && s[i]; i++)
			;
		if (i < size && strchr("{[\"", s[i]) && s[i])
			CHECK(strcmp(why, "malformed JSON") != 0);
		return 0;
	}
	/* Outside strings only ASCII is allowed; inside, only UTF-8. */
	CHECK(utf8_valid(s, size));
	walk(&j);
	json_free(&j);
	return 0;
}
