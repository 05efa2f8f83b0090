/* mcp-args: a tool's arguments — read, checked against its input schema,
 * and that schema as tools/list gives it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mcp.h"

/* String token i decoded into out (TOK_MAX + 1 bytes), or "" if it is
 * not one. 1 (out "") when it is a string longer than TOK_MAX bytes,
 * so that the answer can say so instead of calling it missing. */
int
tok_str(const struct json *j, int i, char *out)
{
	char *v;

	out[0] = 0;
	if (json_string(j, i, TOK_MAX, &v, NULL) == 0) {
		memcpy(out, v, strlen(v) + 1);
		free(v);
		return 0;
	}
	if (json_string(j, i, line_max, &v, NULL) < 0)
		return 0; /* not a string, or one holding NUL */
	free(v);
	return 1;
}

/* Is token i (-1: none) a string spelled exactly s? For keys and enum
 * values, which have no escapes. */
int
tok_is(const struct json *j, int i, const char *s)
{
	size_t n = strlen(s);

	return i >= 0 && i < j->n && j->t[i].type == JSON_STRING &&
	    (size_t)(j->t[i].end - j->t[i].start) == n &&
	    memcmp(j->s + j->t[i].start, s, n) == 0;
}

/* The first of keys (NULL-ended) that object obj gives twice, or NULL.
 * JSON readers differ on which of two same-named members counts (ours
 * takes the first, JSON.parse and jq the last): a request must not be
 * one thing to a client or proxy that checked it and another here. */
const char *
twice(const struct json *j, int obj, const char *const *keys)
{
	for (; *keys; keys++)
		if (json_get(j, obj, *keys) != json_get_last(j, obj, *keys))
			return *keys;
	return NULL;
}

/* A tool failure: a result with isError, its text the error's line. */
int
fail(struct call *k, const struct err *e)
{
	k->failed = 1;
	buf_reset(&k->text);
	buf_adds(&k->text, e->msg);
	if (e->code == BCH_TEMP && !strstr(e->msg, "try again later"))
		buf_adds(&k->text, " (a temporary failure: try again later)");
	return -1;
}

/* The value of argument name, or -1 when absent or null. */
int
arg(const struct call *k, const char *name)
{
	int i = json_get(k->j, k->args, name);

	return i < 0 || json_is(k->j, i, "null") ? -1 : i;
}

/* String token i decoded whole (text: as json_text does), or NULL. */
static char *
decode(const struct json *j, int i, int text)
{
	char *v = NULL;

	if (i < 0 || j->t[i].type != JSON_STRING ||
	    (text ? json_text : json_string)(j, i, line_max, &v, NULL) < 0)
		return NULL;
	return v;
}

/* String argument name (args_check vouched for it), or NULL when absent
 * or empty. */
char *
arg_str(const struct call *k, const char *name)
{
	char *v = decode(k->j, arg(k, name), 0);

	return v && *v ? v : (free(v), NULL);
}

char *
arg_text(const struct call *k, const char *name)
{
	char *v = decode(k->j, arg(k, name), 1);

	return v && *v ? v : (free(v), NULL);
}

static int
is_string(const struct json *j, int i, int text)
{
	char *v = decode(j, i, text);
	int ok = v != NULL;

	free(v);
	return ok;
}

/* Does argument a's value (token i) have the type the schema says? */
static int
arg_ok(const struct json *j, const struct arg *a, int i)
{
	int n, e;

	switch (a->type) {
	case A_STR: return is_string(j, i, 0);
	case A_TEXT: return is_string(j, i, 1);
	case A_ENUM: return tok_is(j, i, "normal") || tok_is(j, i, "urgent");
	case A_BOOL: return json_is(j, i, "true") || json_is(j, i, "false");
	case A_INT: {
		long long v;
		return json_int(j, i, &v) == 0 && v >= 0 && v <= 3600;
	}
	case A_STRS:
		if (j->t[i].type != JSON_ARRAY)
			return 0;
		for (n = 0, e = i + 1; n < j->t[i].size; n++, e = json_next(j, e))
			if (!is_string(j, e, 1))
				return 0;
		return 1;
	}
	return 0;
}

/* Check the arguments against the tool's input schema. */
int
args_check(const struct call *k, const struct tool *t, char *why,
    size_t whysz)
{
	static const char *const want[] = { "a string without NUL or lone "
		"surrogates", "\"normal\" or \"urgent\"", "an array of strings",
		"true or false", "a whole number of seconds, 0 to 3600",
		"a string" };
	const struct json *j = k->j;
	const struct arg *a;
	char key[TOK_MAX + 1];
	int i, n;

	for (n = 0, i = k->args + 1; k->args >= 0 && n < j->t[k->args].size;
	    n++, i = json_next(j, i + 1)) {
		for (a = t->args; a->name && !tok_is(j, i, a->name); a++)
			;
		if (a->name)
			continue;
		if (tok_str(j, i, key))
			snprintf(why, whysz, "unknown argument for %s: its name "
			    "is too long (at most %d bytes)", t->name, TOK_MAX);
		else
			snprintf(why, whysz, "unknown argument \"%.64s\" for %s",
			    key, t->name);
		return -1;
	}
	for (a = t->args; a->name; a++) {
		if (json_get(j, k->args, a->name) !=
		    json_get_last(j, k->args, a->name))
			snprintf(why, whysz, "argument \"%s\" of %s given twice",
			    a->name, t->name);
		else if ((i = arg(k, a->name)) < 0 && a->required)
			snprintf(why, whysz, "missing required argument \"%s\" "
			    "for %s", a->name, t->name);
		else if (i >= 0 && !arg_ok(j, a, i))
			snprintf(why, whysz, "argument \"%s\" of %s must be %s",
			    a->name, t->name, want[a->type]);
		else
			continue;
		return -1;
	}
	return 0;
}

void
put_desc(struct buf *b, const char *desc, size_t body)
{
	struct buf t = BUF_INIT;
	const char *p;

	while ((p = strstr(desc, BODY_MAX))) {
		buf_add(&t, desc, (size_t)(p - desc));
		if (body % 1024 == 0)
			buf_printf(&t, "%zu KiB", body / 1024);
		else
			buf_printf(&t, "%zu bytes", body);
		desc = p + strlen(BODY_MAX);
	}
	buf_adds(&t, desc);
	put_str(b, t.p);
	buf_free(&t);
}

void
input_schema(struct buf *b, const struct arg *args, size_t body)
{
	static const char *const type[] = { "string", "string", "array",
		"boolean", "integer", "string" };
	const struct arg *a;
	int req = 0;

	buf_adds(b, "{\"type\":\"object\",\"properties\":{");
	for (a = args; a->name; a++) {
		buf_printf(b, "%s\"%s\":{\"type\":\"%s\",%s", a == args ? "" :
		    ",", a->name, type[a->type], a->type == A_ENUM ?
		    "\"enum\":[\"normal\",\"urgent\"]," : a->type == A_STRS ?
		    "\"items\":{\"type\":\"string\"}," : "");
		buf_adds(b, "\"description\":");
		put_desc(b, a->desc, body);
		buf_addc(b, '}');
	}
	buf_addc(b, '}');
	for (a = args; a->name; a++)
		if (a->required)
			buf_printf(b, "%s\"%s\"", req++ ? "," : ",\"required\":[",
			    a->name);
	buf_adds(b, req ? "],\"additionalProperties\":false}" :
	    ",\"additionalProperties\":false}");
}

