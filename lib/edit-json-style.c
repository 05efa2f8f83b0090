/* edit-json-style: the layout of a user's JSON, read so that what an
 * edit adds is written as the file already is (indentation, colon,
 * separator, line end), and values rendered in it. Private to
 * edit-json.c. */
#include <string.h>

#include "edit-json-impl.h"

/* The indentation of the line that holds offset pos. */
void
edit_line_indent(const char *s, size_t pos, struct buf *ind)
{
	size_t a = pos, b;

	while (a > 0 && s[a - 1] != '\n')
		a--;
	for (b = a; b < pos && (s[b] == ' ' || s[b] == '\t'); b++)
		;
	buf_reset(ind);
	buf_add(ind, s + a, b - a);
}

void
edit_style_of(const char *s, const struct json *j, int obj, struct style *st)
{
	const char *nl1 = memchr(s, '\n', j->len);
	int o, key;

	st->pretty = 1;
	st->eol = nl1 && nl1 > s && nl1[-1] == '\r' ? "\r\n" : "\n";
	strcpy(st->unit, "  ");
	strcpy(st->colon, ": ");
	if (j->t[0].size > 0) {
		const char *a = s + j->t[0].start + 1, *b = s + tstart(j, 1);
		const char *nl = NULL, *p;
		for (p = a; p < b; p++)
			if (*p == '\n')
				nl = p;
		if (!nl) {
			st->pretty = 0;
			strcpy(st->colon, ":");
		} else if (b - nl - 1 <= 16) {
			memcpy(st->unit, nl + 1, (size_t)(b - nl - 1));
			st->unit[b - nl - 1] = 0;
		}
	}
	/* The colon as this object writes it, else as the top one does. */
	for (o = obj; o >= 0; o = o ? 0 : -1) {
		int a, b, k;
		if (j->t[o].type != JSON_OBJECT || j->t[o].size == 0)
			continue;
		key = o + 1;
		a = tend(j, key);
		b = tstart(j, key + 1);
		if (b - a < 1 || b - a > 4)
			continue;
		for (k = a; k < b; k++)
			if (s[k] != ' ' && s[k] != ':')
				break;
		if (k == b) {
			memcpy(st->colon, s + a, (size_t)(b - a));
			st->colon[b - a] = 0;
			break;
		}
	}
	/* On one line, "a": 1, "b": 2 or "a":1,"b":2, as the colon goes. */
	st->sep = st->colon[strlen(st->colon) - 1] == ' ' ? ", " : ",";
}

/* Append value v (token i) at indentation ind. Returns the next token. */
int
edit_render(struct buf *o, const struct json *v, int i, const char *ind,
    const struct style *st)
{
	const struct json_tok *t = &v->t[i];
	int obj = t->type == JSON_OBJECT, k;
	struct buf in = BUF_INIT;

	if (t->type == JSON_STRING) {
		buf_add(o, v->s + t->start - 1, (size_t)(t->end - t->start + 2));
		return i + 1;
	}
	if (t->type == JSON_PRIMITIVE) {
		buf_add(o, v->s + t->start, (size_t)(t->end - t->start));
		return i + 1;
	}
	if (t->size == 0) {
		buf_adds(o, obj ? "{}" : "[]");
		return i + 1;
	}
	buf_printf(&in, "%s%s", ind, st->unit);
	buf_addc(o, obj ? '{' : '[');
	for (k = 0, i++; k < t->size; k++) {
		if (k)
			buf_adds(o, st->pretty ? "," : st->sep);
		if (st->pretty) {
			buf_adds(o, st->eol);
			buf_adds(o, in.p);
		}
		if (obj) {
			i = edit_render(o, v, i, "", st);
			buf_adds(o, st->colon);
		}
		i = edit_render(o, v, i, in.p, st);
	}
	if (st->pretty) {
		buf_adds(o, st->eol);
		buf_adds(o, ind);
	}
	buf_addc(o, obj ? '}' : ']');
	buf_free(&in);
	return i;
}
