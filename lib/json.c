/* json: jsmn tokenizes; because jsmn is lenient (it accepts missing commas
 * and bad escapes), a strict validator runs first, so a value is either
 * proper JSON or refused. \u0000 and a lone surrogate escape (which
 * JSON.stringify writes for a string cut inside a pair) are grammatical
 * JSON but no UTF-8: the validator passes them, so that what the first
 * (TypeScript) implementation wrote is read; json_string refuses them, for
 * names and exact values, and json_text makes each U+FFFD, for free text.
 * U+FFFD is printable: nothing a body holds reaches a terminal raw. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define JSMN_STRICT
#define JSMN_STATIC
#define JSMN_PARENT_LINKS /* linear, not quadratic, on deep nesting */
#include <jsmn.h>

#include "json.h"
#include "json-check.h"

static size_t
skip_to_value(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' ||
	    s[i] == '\r'))
		i++;
	return i;
}

/* A bare number, true, false or null: jsmn's strict mode wants a
 * delimiter after a primitive, so the token is made here. */
static int
scalar(struct json *j, const char *s, size_t len, const char **why)
{
	size_t start = skip_to_value(s, len), end = start;

	while (end < len && !strchr(" \t\n\r", s[end]))
		end++;
	if (start >= len) {
		*why = "unexpected end of input";
		return -1;
	}
	j->s = s;
	j->len = len;
	j->n = 1;
	j->t = xcalloc(1, sizeof *j->t);
	j->t[0].type = JSON_PRIMITIVE;
	j->t[0].start = (int)start;
	j->t[0].end = (int)end;
	return 0;
}

int
json_parse(struct json *j, const char *s, size_t len, int maxdepth,
    const char **why)
{
	jsmn_parser p;
	jsmntok_t *tok;
	int n, k;

	memset(j, 0, sizeof *j);
	if (len > 0x7fffffff) {
		*why = "input too large";
		return -1;
	}
	if (json_check(s, len, maxdepth, why) < 0)
		return -1;
	k = (int)skip_to_value(s, len); /* validated: a value is there */
	if (s[k] != '{' && s[k] != '[' && s[k] != '"')
		return scalar(j, s, len, why);
	jsmn_init(&p);
	n = jsmn_parse(&p, s, len, NULL, 0);
	if (n <= 0) {
		*why = "malformed JSON";
		return -1;
	}
	tok = xcalloc((size_t)n, sizeof *tok);
	jsmn_init(&p);
	if (jsmn_parse(&p, s, len, tok, (unsigned)n) != n) {
		free(tok);
		*why = "malformed JSON";
		return -1;
	}
	j->s = s;
	j->len = len;
	j->n = n;
	j->t = xcalloc((size_t)n, sizeof *j->t);
	for (k = 0; k < n; k++) {
		j->t[k].type = tok[k].type;
		j->t[k].start = tok[k].start;
		j->t[k].end = tok[k].end;
		j->t[k].size = tok[k].size;
	}
	free(tok);
	return 0;
}

void
json_free(struct json *j)
{
	free(j->t);
	j->t = NULL;
	j->n = 0;
}

int
json_next(const struct json *j, int i)
{
	int remaining = 1;

	/* Each token owns `size` direct children; walk until all are seen. */
	while (remaining > 0 && i < j->n) {
		remaining += j->t[i].size - 1;
		i++;
	}
	return i;
}

static int unescape(const struct json *j, int i, size_t max, int text,
    char **out, size_t *outlen);

/* Does string token i name key (klen bytes)? A name with escapes is
 * read as every JSON reader reads it: "\u0074o" is "to", and must not
 * slip past a check for a field given twice. */
static int
key_is(const struct json *j, int i, const char *key, size_t klen)
{
	const struct json_tok *t = &j->t[i];
	size_t n = (size_t)(t->end - t->start), dlen;
	char *d;
	int same;

	if (t->type != JSON_STRING)
		return 0;
	if (!memchr(j->s + t->start, '\\', n))
		return n == klen && memcmp(j->s + t->start, key, klen) == 0;
	if (unescape(j, i, klen, 0, &d, &dlen) < 0)
		return 0;
	same = dlen == klen && memcmp(d, key, klen) == 0;
	free(d);
	return same;
}

/* The value of obj's first (or last) member named key; -1 if none. */
static int
member(const struct json *j, int obj, const char *key, int last)
{
	size_t klen = strlen(key);
	int i, k, v = -1;

	if (obj < 0 || obj >= j->n || j->t[obj].type != JSON_OBJECT)
		return -1;
	i = obj + 1;
	for (k = 0; k < j->t[obj].size && i + 1 < j->n; k++) {
		if (key_is(j, i, key, klen)) {
			v = i + 1;
			if (!last)
				break;
		}
		i = json_next(j, i + 1);
	}
	return v;
}

int
json_get(const struct json *j, int obj, const char *key)
{
	return member(j, obj, key, 0);
}

/* The last member named key: the one JSON.parse and Python's json keep
 * when a key is there twice. */
int
json_get_last(const struct json *j, int obj, const char *key)
{
	return member(j, obj, key, 1);
}

static void
put_utf8(char *o, size_t *w, unsigned long cp)
{
	if (cp < 0x80) {
		o[(*w)++] = (char)cp;
	} else if (cp < 0x800) {
		o[(*w)++] = (char)(0xc0 | (cp >> 6));
		o[(*w)++] = (char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		o[(*w)++] = (char)(0xe0 | (cp >> 12));
		o[(*w)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[(*w)++] = (char)(0x80 | (cp & 0x3f));
	} else {
		o[(*w)++] = (char)(0xf0 | (cp >> 18));
		o[(*w)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
		o[(*w)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[(*w)++] = (char)(0x80 | (cp & 0x3f));
	}
}

/* The code point of the \u escape at s[r] (r at the backslash), a high
 * surrogate paired with the low one after it; *used gets the bytes it
 * takes. -1 for a lone surrogate, 0 for \u0000. */
static long
escape_cp(const unsigned char *s, size_t n, size_t r, size_t *used)
{
	long cp = json_hex4(s + r + 2, n - r - 2), lo;

	*used = 6;
	if (cp < 0xd800 || cp > 0xdfff)
		return cp;
	if (cp >= 0xdc00 || r + 12 > n || s[r + 6] != '\\' || s[r + 7] != 'u')
		return -1;
	lo = json_hex4(s + r + 8, n - r - 8);
	if (lo < 0xdc00 || lo > 0xdfff)
		return -1;
	*used = 12;
	return 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
}

/* Unescape string token i; text: NUL and lone surrogates become U+FFFD
 * instead of a refusal. */
static int
unescape(const struct json *j, int i, size_t max, int text, char **out,
    size_t *outlen)
{
	const unsigned char *s;
	size_t n, r, w = 0, used;
	char *o;

	if (i < 0 || i >= j->n || j->t[i].type != JSON_STRING)
		return -1;
	s = (const unsigned char *)j->s + j->t[i].start;
	n = (size_t)(j->t[i].end - j->t[i].start);
	o = xmalloc(n + 1); /* unescaping never grows a string */
	for (r = 0; r < n;) {
		long cp;
		if (s[r] != '\\') {
			o[w++] = (char)s[r++];
			continue;
		}
		switch (s[r + 1]) {
		case 'b': o[w++] = '\b'; r += 2; continue;
		case 'f': o[w++] = '\f'; r += 2; continue;
		case 'n': o[w++] = '\n'; r += 2; continue;
		case 'r': o[w++] = '\r'; r += 2; continue;
		case 't': o[w++] = '\t'; r += 2; continue;
		case 'u': break;
		default: o[w++] = (char)s[r + 1]; r += 2; continue;
		}
		cp = escape_cp(s, n, r, &used);
		r += used;
		if (cp <= 0 && !text)
			goto bad;
		put_utf8(o, &w, cp <= 0 ? 0xfffd : (unsigned long)cp);
	}
	if (w > max || memchr(o, 0, w))
		goto bad;
	o[w] = 0;
	*out = o;
	if (outlen)
		*outlen = w;
	return 0;
bad:
	free(o);
	return -1;
}

int
json_string(const struct json *j, int i, size_t max, char **out,
    size_t *outlen)
{
	return unescape(j, i, max, 0, out, outlen);
}

int
json_text(const struct json *j, int i, size_t max, char **out,
    size_t *outlen)
{
	return unescape(j, i, max, 1, out, outlen);
}

int
json_is(const struct json *j, int i, const char *lit)
{
	size_t k = strlen(lit);

	return i >= 0 && i < j->n && j->t[i].type == JSON_PRIMITIVE &&
	    (size_t)(j->t[i].end - j->t[i].start) == k &&
	    memcmp(j->s + j->t[i].start, lit, k) == 0;
}

int
json_int(const struct json *j, int i, long long *out)
{
	char tmp[32], *end;
	size_t k;

	if (i < 0 || i >= j->n || j->t[i].type != JSON_PRIMITIVE)
		return -1;
	k = (size_t)(j->t[i].end - j->t[i].start);
	if (k == 0 || k >= sizeof tmp)
		return -1;
	memcpy(tmp, j->s + j->t[i].start, k);
	tmp[k] = 0;
	errno = 0;
	*out = strtoll(tmp, &end, 10);
	if (errno || *end)
		return -1;
	return 0;
}

void
json_put_string(struct buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, run = 0;

	buf_grow(b, n + 2);
	buf_addc(b, '"');
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[7];
		if (c == 0xc2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
		    (unsigned char)s[i + 1] <= 0x9f) {
			/* A C1 control: escaped like the C0 ones. */
			buf_add(b, s + run, i - run);
			buf_printf(b, "\\u00%02x", (unsigned char)s[i + 1]);
			run = i + 2;
			i++;
			continue;
		}
		if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
			continue;
		buf_add(b, s + run, i - run);
		run = i + 1;
		esc[0] = '\\';
		switch (c) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\t': esc[1] = 't'; break;
		case '\r': esc[1] = 'r'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 15];
			buf_add(b, esc, 6);
			continue;
		}
		buf_add(b, esc, 2);
	}
	buf_add(b, s + run, n - run);
	buf_addc(b, '"');
}
