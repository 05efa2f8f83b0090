/* json-scan: the top-level members of an object read as a stream (see
 * json-scan.h). A byte at a time: the top level by a small state
 * machine, deeper levels by depth, in-string and escape alone. Anything
 * the machine does not expect makes the scan odd, and an odd scan tells
 * nothing: a caller falls back as for text that is not JSON. */
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "json-scan.h"

enum { S_START, S_KEY1, S_KEY, S_INKEY, S_COLON, S_VALUE, S_INVAL,
	S_COMMA, S_END };

void
json_scan_init(struct json_scan *s, const char *const *names)
{
	memset(s, 0, sizeof *s);
	s->names = names;
	s->cur = -1;
}

/* Which watched name the key just read is, or -1. */
static int
which(const struct json_scan *s)
{
	struct json j;
	const char *why;
	char *name = NULL;
	int k = -1;

	if (s->keylen > sizeof s->key)
		return -1; /* longer than any escaped name of ours */
	if (!memchr(s->key, '\\', s->keylen)) {
		for (k = 0; s->names[k]; k++)
			if (strlen(s->names[k]) + 2 == s->keylen &&
			    memcmp(s->key + 1, s->names[k], s->keylen - 2) == 0)
				return k;
		return -1;
	}
	if (json_parse(&j, s->key, s->keylen, 1, &why) < 0)
		return -1;
	if (json_string(&j, 0, 64, &name, NULL) == 0)
		for (k = 0; s->names[k] && strcmp(s->names[k], name); k++)
			;
	free(name);
	json_free(&j);
	return k >= 0 && s->names[k] ? k : -1;
}

/* Keep byte c of the key or watched value being read. */
static void
keep(struct json_scan *s, char c)
{
	if (s->state == S_INKEY) {
		if (s->keylen < sizeof s->key)
			s->key[s->keylen] = c;
		s->keylen++;
	} else if (s->state == S_INVAL && s->cur >= 0) {
		if (s->m[s->cur].len < JSON_SCAN_VAL)
			s->m[s->cur].val[s->m[s->cur].len] = c;
		s->m[s->cur].len++;
	}
}

/* A container opens (c is '{' or '['), or closes; 0, or -1 if odd. */
static int
bracket(struct json_scan *s, char c)
{
	if (c == '{' || c == '[') {
		if (s->depth >= JSON_SCAN_DEPTH)
			return -1;
		if (c == '{')
			s->objs |= 1ULL << s->depth;
		s->depth++;
		return 0;
	}
	if (!s->depth || !(s->objs >> (s->depth - 1) & 1) != (c == ']'))
		return -1;
	s->objs &= ~(1ULL << --s->depth);
	return 0;
}

/* Byte c outside any string at the top level (depth 0 or 1, not in a
 * nested value). 0, or -1 if odd. */
static int
top(struct json_scan *s, char c)
{
	int ws = c == ' ' || c == '\t' || c == '\r' || c == '\n';
	int st = s->state;

	if (st == S_INVAL && (ws || c == ',' || c == '}'))
		st = s->state = S_COMMA; /* a number or literal ended */
	if (ws)
		return 0;
	if (c == '"' && (st == S_KEY1 || st == S_KEY)) {
		s->state = S_INKEY;
		s->keylen = 0;
	} else if (c == ':' && st == S_COLON) {
		s->state = S_VALUE;
	} else if (c == ',' && st == S_COMMA) {
		s->state = S_KEY;
	} else if (c == '{' && st == S_START) {
		s->state = S_KEY1;
		return bracket(s, c);
	} else if (c == '}' && (st == S_KEY1 || st == S_COMMA)) {
		s->state = S_END;
		return bracket(s, c);
	} else if (st == S_VALUE && !strchr("}],:", c)) {
		if (s->cur >= 0)
			s->m[s->cur].len = 0;
		s->state = S_INVAL;
		if (c == '{' || c == '[')
			return bracket(s, c);
	} else if (st != S_INVAL || strchr("\"{[]:", c)) {
		return -1; /* else a number or literal goes on */
	}
	return 0;
}

static int
step(struct json_scan *s, char c)
{
	if (s->str) {
		int escaped = s->esc;

		if ((unsigned char)c < 0x20)
			return -1;
		s->esc = !escaped && c == '\\';
		keep(s, c);
		if (escaped || c != '"')
			return 0;
		s->str = 0;
		if (s->state == S_INKEY) {
			s->state = S_COLON;
			if ((s->cur = which(s)) >= 0 && ++s->m[s->cur].n > 1)
				s->cur = -1;
		} else if (s->depth == 1) {
			s->state = S_COMMA;
		}
		return 0;
	}
	if (s->depth > 1) { /* in a nested value */
		keep(s, c);
		if (c == '"')
			s->str = 1;
		else if ((c == '{' || c == '[' || c == '}' || c == ']') &&
		    bracket(s, c) < 0)
			return -1;
		if (s->depth == 1)
			s->state = S_COMMA;
		return 0;
	}
	if (top(s, c) < 0)
		return -1;
	if (s->state == S_INKEY || s->state == S_INVAL)
		keep(s, c);
	if (c == '"' && (s->state == S_INKEY || s->state == S_INVAL))
		s->str = 1;
	return 0;
}

void
json_scan(struct json_scan *s, const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && !s->odd; i++)
		if (step(s, p[i]) < 0)
			s->odd = 1;
}

int
json_scan_ok(const struct json_scan *s)
{
	return !s->odd && s->state == S_END;
}

int
json_scan_member(const struct json_scan *s, int k, const char **val,
    size_t *len)
{
	struct json j;
	const char *why;
	char c = s->m[k].val[0];

	*val = NULL;
	*len = 0;
	if (!json_scan_ok(s) || s->m[k].n != 1)
		return 0;
	if (s->m[k].len <= JSON_SCAN_VAL && json_parse(&j, s->m[k].val,
	    s->m[k].len, JSON_SCAN_DEPTH, &why) == 0) {
		json_free(&j);
		*val = s->m[k].val;
		*len = s->m[k].len;
	}
	return c == '"' ? JSON_STRING : c == '{' ? JSON_OBJECT :
	    c == '[' ? JSON_ARRAY : JSON_PRIMITIVE;
}
