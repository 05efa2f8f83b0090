/* json-check: the strict RFC 8259 validator that runs before jsmn, which
 * is lenient (it accepts missing commas and bad escapes): a value is
 * either proper JSON or refused, with a short reason. */
#include <string.h>

#include "json.h"
#include "json-check.h"

struct vstate {
	const unsigned char *s;
	size_t n, i;
	int depth, maxdepth;
	const char *why;
};

int
utf8_seqlen(const unsigned char *s, size_t n)
{
	unsigned c = s[0];

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		if (n < 2 || (s[1] & 0xc0) != 0x80)
			return 0;
		return 2;
	}
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0; /* overlong */
		if (c == 0xed && s[1] >= 0xa0)
			return 0; /* surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 ||
		    (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)
			return 0;
		if (c == 0xf4 && s[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

int
utf8_valid(const char *s, size_t n)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;

	while (i < n) {
		int k;
		if (u[i] < 0x80) {
			i++;
			continue;
		}
		k = utf8_seqlen(u + i, n - i);
		if (!k)
			return 0;
		i += (size_t)k;
	}
	return 1;
}

static void
skipws(struct vstate *v)
{
	while (v->i < v->n && (v->s[v->i] == ' ' || v->s[v->i] == '\t' ||
	    v->s[v->i] == '\n' || v->s[v->i] == '\r'))
		v->i++;
}

static int
fail(struct vstate *v, const char *why)
{
	if (!v->why)
		v->why = why;
	return -1;
}

long
json_hex4(const unsigned char *s, size_t n)
{
	long v = 0;
	size_t k;

	if (n < 4)
		return -1;
	for (k = 0; k < 4; k++) {
		int h = hex_digit(s[k]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

static int
vstring(struct vstate *v)
{
	v->i++; /* opening quote */
	while (v->i < v->n) {
		unsigned c = v->s[v->i];
		if (c == '"') {
			v->i++;
			return 0;
		}
		if (c < 0x20)
			return fail(v, "control character in string");
		if (c == '\\') {
			long u;
			if (v->i + 1 >= v->n)
				return fail(v, "truncated escape");
			c = v->s[v->i + 1];
			if (strchr("\"\\/bfnrt", (int)c) && c) {
				v->i += 2;
				continue;
			}
			if (c != 'u')
				return fail(v, "bad escape in string");
			u = json_hex4(v->s + v->i + 2, v->n - v->i - 2);
			if (u < 0)
				return fail(v, "bad \\u escape");
			/* A lone surrogate escape passes, as RFC 8259's grammar
			 * has it and JSON.stringify writes it: the decoders say
			 * what it becomes (json_string, json_text). */
			v->i += 6;
			continue;
		}
		if (c < 0x80) {
			v->i++;
			continue;
		}
		{
			int k = utf8_seqlen(v->s + v->i, v->n - v->i);
			if (!k)
				return fail(v, "invalid UTF-8");
			v->i += (size_t)k;
		}
	}
	return fail(v, "unterminated string");
}

static int
vdigits(struct vstate *v)
{
	size_t start = v->i;

	while (v->i < v->n && v->s[v->i] >= '0' && v->s[v->i] <= '9')
		v->i++;
	return v->i > start ? 0 : fail(v, "bad number");
}

static int
vnumber(struct vstate *v)
{
	if (v->s[v->i] == '-')
		v->i++;
	if (v->i < v->n && v->s[v->i] == '0')
		v->i++;
	else if (vdigits(v) < 0)
		return -1;
	if (v->i < v->n && v->s[v->i] == '.') {
		v->i++;
		if (vdigits(v) < 0)
			return -1;
	}
	if (v->i < v->n && (v->s[v->i] == 'e' || v->s[v->i] == 'E')) {
		v->i++;
		if (v->i < v->n && (v->s[v->i] == '+' || v->s[v->i] == '-'))
			v->i++;
		if (vdigits(v) < 0)
			return -1;
	}
	return 0;
}

static int
vliteral(struct vstate *v, const char *lit)
{
	size_t k = strlen(lit);

	if (v->n - v->i < k || memcmp(v->s + v->i, lit, k) != 0)
		return fail(v, "unexpected character");
	v->i += k;
	return 0;
}

static int vvalue(struct vstate *v);

static int
vcontainer(struct vstate *v, int obj)
{
	char close = obj ? '}' : ']';

	if (++v->depth > v->maxdepth)
		return fail(v, "nested too deeply");
	v->i++;
	skipws(v);
	if (v->i < v->n && v->s[v->i] == (unsigned char)close) {
		v->i++;
		v->depth--;
		return 0;
	}
	for (;;) {
		skipws(v);
		if (obj) {
			if (v->i >= v->n || v->s[v->i] != '"')
				return fail(v, "expected a string key");
			if (vstring(v) < 0)
				return -1;
			skipws(v);
			if (v->i >= v->n || v->s[v->i] != ':')
				return fail(v, "expected ':'");
			v->i++;
		}
		if (vvalue(v) < 0)
			return -1;
		skipws(v);
		if (v->i < v->n && v->s[v->i] == ',') {
			v->i++;
			continue;
		}
		if (v->i < v->n && v->s[v->i] == (unsigned char)close) {
			v->i++;
			v->depth--;
			return 0;
		}
		return fail(v, obj ? "expected ',' or '}'" : "expected ',' or ']'");
	}
}

static int
vvalue(struct vstate *v)
{
	skipws(v);
	if (v->i >= v->n)
		return fail(v, "unexpected end of input");
	switch (v->s[v->i]) {
	case '{':
		return vcontainer(v, 1);
	case '[':
		return vcontainer(v, 0);
	case '"':
		return vstring(v);
	case 't':
		return vliteral(v, "true");
	case 'f':
		return vliteral(v, "false");
	case 'n':
		return vliteral(v, "null");
	default:
		if (v->s[v->i] == '-' || (v->s[v->i] >= '0' && v->s[v->i] <= '9'))
			return vnumber(v);
		return fail(v, "unexpected character");
	}
}

int
json_check(const char *s, size_t len, int maxdepth, const char **why)
{
	struct vstate v = { (const unsigned char *)s, len, 0, 0, maxdepth, 0 };

	if (vvalue(&v) < 0) {
		*why = v.why;
		return -1;
	}
	skipws(&v);
	if (v.i != len) {
		*why = "unexpected data after the value";
		return -1;
	}
	return 0;
}
