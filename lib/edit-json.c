/* edit-json: JSON edits made by splicing text at token offsets (edit.h).
 *
 * Design rationale. Re-serialising a user's settings would reorder,
 * re-indent and re-escape what they wrote. Instead each edit parses the
 * document (strictly: a file that is not JSON is refused, untouched),
 * finds the tokens it needs and replaces one byte range: a new member
 * goes after the last one with the same separator and indentation as
 * its neighbours, and removing it takes exactly those bytes out again.
 * An edit is one splice, then the text is parsed afresh for the next.
 * Comments (Gemini CLI allows them) are read as white space at the same
 * offsets, so they stay where they are; edit.c refuses an edit that
 * would still cut one out, and comments where the harness allows none. */
#include <stdlib.h>
#include <string.h>

#include "edit.h"
#include "edit-json-impl.h"

#define DEPTH 128 /* nesting we accept in a user's file */

struct kid {
	int first; /* key token (object) or the item */
	int last;  /* value token (object) or the item */
};

static int
is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Parse doc with its comments as white space: j->s is that text, at the
 * same offsets, for reading; edits splice into doc. Free with done(). */
static int
parse(struct buf *doc, struct json *j, int create, struct err *e)
{
	const char *why = NULL;
	char *s;
	size_t i;

	for (i = 0; i < doc->len && is_ws(doc->p[i]); i++)
		;
	if (i == doc->len) {
		if (!create)
			return 0;
		buf_reset(doc);
		buf_adds(doc, "{}\n");
	}
	s = xmalloc(doc->len + 1);
	edit_json_uncomment(doc->p, doc->len, s);
	s[doc->len] = 0;
	if (json_parse(j, s, doc->len, DEPTH, &why) < 0) {
		free(s);
		return err_set(e, BCH_PERM, "not valid JSON (%s)",
		    why ? why : "malformed");
	}
	if (j->t[0].type != JSON_OBJECT) {
		json_free(j);
		free(s);
		return err_set(e, BCH_PERM, "not a JSON object");
	}
	return 1;
}

static void
done(struct json *j)
{
	char *s = (char *)j->s;

	json_free(j);
	free(s);
}

/* The children of container c. Free *out. */
static int
kids(const struct json *j, int c, struct kid **out)
{
	int n = j->t[c].size, k, i = c + 1;
	int obj = j->t[c].type == JSON_OBJECT;

	*out = xcalloc((size_t)n + 1, sizeof **out);
	for (k = 0; k < n; k++) {
		(*out)[k].first = i;
		(*out)[k].last = obj ? i + 1 : i;
		i = json_next(j, (*out)[k].last);
	}
	return n;
}

/* Append a child to container c: key (NULL in an array) and the compact
 * JSON value. */
static void
add_kid(struct buf *doc, const struct json *j, int c, const char *key,
    const char *value)
{
	struct buf ins = BUF_INIT, ind = BUF_INIT;
	struct style st;
	struct json v;
	struct kid *ks;
	const char *why;
	size_t at, cut;
	int n = kids(j, c, &ks);

	edit_style_of(j->s, j, c, &st);
	if (json_parse(&v, value, strlen(value), DEPTH, &why) < 0)
		abort(); /* ours: always valid */
	if (n == 0) {
		at = (size_t)j->t[c].start + 1;
		cut = (size_t)j->t[c].end - 1;
		edit_line_indent(j->s, at - 1, &ind);
		if (st.pretty) {
			buf_printf(&ins, "%s%s%s", st.eol, ind.p ? ind.p : "",
			    st.unit);
			buf_adds(&ind, st.unit);
		}
	} else {
		size_t a, b, p;
		at = cut = (size_t)tend(j, ks[n - 1].last);
		a = n == 1 ? (size_t)j->t[c].start + 1 :
		    (size_t)tend(j, ks[n - 2].last);
		b = (size_t)tstart(j, ks[n - 1].first);
		if (n > 1)
			while (a < b && j->s[a++] != ',')
				;
		for (p = b; p > a && j->s[p - 1] != '\n'; p--)
			;
		st.pretty = p > a;
		buf_addc(&ins, ',');
		if (st.pretty && memcmp(doc->p + a, j->s + a, b - a) != 0)
			/* A comment there stays there: a new line only. */
			buf_add(&ins, j->s + p - 1 - (p - 1 > a &&
			    j->s[p - 2] == '\r'), b - p + 1 +
			    (p - 1 > a && j->s[p - 2] == '\r'));
		else if (st.pretty || n > 1)
			buf_add(&ins, j->s + a, b - a);
		else if (strcmp(st.sep, ", ") == 0)
			buf_addc(&ins, ' ');
		buf_reset(&ind);
		buf_add(&ind, j->s + p, b - p);
	}
	if (key) {
		json_put_string(&ins, key, strlen(key));
		buf_adds(&ins, st.colon);
	}
	edit_render(&ins, &v, 0, ind.p ? ind.p : "", &st);
	if (n == 0 && st.pretty) {
		edit_line_indent(j->s, (size_t)j->t[c].start, &ind);
		buf_printf(&ins, "%s%s", st.eol, ind.p ? ind.p : "");
	}
	edit_splice(doc, at, cut, ins.p, ins.len);
	json_free(&v);
	buf_free(&ins);
	buf_free(&ind);
	free(ks);
}

/* Take child k out of container c, with the separator before it. */
static void
del_kid(struct buf *doc, const struct json *j, int c, int k)
{
	struct kid *ks;
	int n = kids(j, c, &ks);

	if (n == 1)
		edit_splice(doc, (size_t)j->t[c].start + 1, (size_t)j->t[c].end - 1,
		    "", 0);
	else if (k == 0)
		edit_splice(doc, (size_t)tstart(j, ks[0].first),
		    (size_t)tstart(j, ks[1].first), "", 0);
	else
		edit_splice(doc, (size_t)tend(j, ks[k - 1].last),
		    (size_t)tend(j, ks[k].last), "", 0);
	free(ks);
}

/* Replace value token i with the compact JSON value. */
static void
put_value(struct buf *doc, const struct json *j, int i, const char *value)
{
	struct buf ins = BUF_INIT, ind = BUF_INIT;
	struct style st;
	struct json v;
	const char *why;

	edit_style_of(j->s, j, 0, &st);
	if (json_parse(&v, value, strlen(value), DEPTH, &why) < 0)
		abort();
	edit_line_indent(j->s, (size_t)tstart(j, i), &ind);
	edit_render(&ins, &v, 0, ind.p ? ind.p : "", &st);
	edit_splice(doc, (size_t)tstart(j, i), (size_t)tend(j, i), ins.p, ins.len);
	json_free(&v);
	buf_free(&ins);
	buf_free(&ind);
}

/* Value token i with the white space outside strings taken out. */
static void
compact(const struct json *j, int i, struct buf *out)
{
	const char *s = j->s;
	int k, str = 0;

	for (k = tstart(j, i); k < tend(j, i); k++) {
		if (str) {
			buf_addc(out, s[k]);
			if (s[k] == '\\' && k + 1 < tend(j, i))
				buf_addc(out, s[++k]);
			else if (s[k] == '"')
				str = 0;
		} else if (!is_ws(s[k])) {
			buf_addc(out, s[k]);
			str = s[k] == '"';
		}
	}
}

static int
depth_of(const char *const *path)
{
	int d = 0;

	while (path[d])
		d++;
	return d;
}

/* Follow path[0..d) from the top. The value's token; or -1 when a key is
 * missing, with *have keys found and *at the last object reached. */
static int
walk(const struct json *j, const char *const *path, int d, int *have, int *at)
{
	int i = 0, k;

	*have = 0;
	*at = 0;
	for (k = 0; k < d; k++) {
		int v;
		if (j->t[i].type != JSON_OBJECT)
			return -1;
		*at = i;
		v = json_get_last(j, i, path[k]);
		if (v < 0)
			return -1;
		*have = k + 1;
		i = v;
	}
	return i;
}

static int
wrong_type(const char *const *path, int d, const char *what, struct err *e)
{
	struct buf p = BUF_INIT;
	int k;

	for (k = 0; k < d; k++)
		buf_printf(&p, "%s%s", k ? "." : "", path[k]);
	err_set(e, BCH_PERM, "%s is not %s", p.p, what);
	buf_free(&p);
	return -1;
}

/* The value for path[from..d) holding value: {"a":{"b":value}}. */
static void
wrap(const char *const *path, int from, int d, const char *value,
    struct buf *out)
{
	int k;

	for (k = from; k < d; k++) {
		buf_addc(out, '{');
		json_put_string(out, path[k], strlen(path[k]));
		buf_addc(out, ':');
	}
	buf_adds(out, value);
	for (k = from; k < d; k++)
		buf_addc(out, '}');
}

/* Follow path, adding what is missing: when the member path[d-1] (or
 * an object before it) is missing, add it holding value (wrapped in the
 * missing objects) and return 1. 0 with *v set when it exists; -1 when a
 * value on the way is not an object. */
static int
reach(struct buf *doc, const struct json *j, const char *const *path, int d,
    const char *value, int *v, struct err *e)
{
	int i = 0, k;

	for (k = 0; k < d; k++) {
		int next;
		if (j->t[i].type != JSON_OBJECT)
			return wrong_type(path, k, "an object", e);
		next = json_get_last(j, i, path[k]);
		if (next < 0) {
			struct buf w = BUF_INIT;
			wrap(path, k + 1, d, value, &w);
			add_kid(doc, j, i, path[k], w.p);
			buf_free(&w);
			return 1;
		}
		i = next;
	}
	*v = i;
	return 0;
}

/* Is value token i the compact JSON value, white space aside? */
static int
equal(const struct json *j, int i, const char *value)
{
	struct buf have = BUF_INIT, want = BUF_INIT;
	struct json w;
	const char *why;
	int same;

	compact(j, i, &have);
	if (json_parse(&w, value, strlen(value), DEPTH, &why) < 0)
		abort(); /* ours: always valid */
	compact(&w, 0, &want);
	json_free(&w);
	same = have.len == want.len && memcmp(have.p, want.p, have.len) == 0;
	buf_free(&have);
	buf_free(&want);
	return same;
}

int
edit_json_set(struct buf *doc, const char *const *path, const char *value,
    struct err *e)
{
	struct json j;
	int v, rc;

	if (parse(doc, &j, 1, e) < 0)
		return -1;
	rc = reach(doc, &j, path, depth_of(path), value, &v, e);
	if (rc == 0 && !equal(&j, v, value)) {
		put_value(doc, &j, v, value);
		rc = 1;
	}
	done(&j);
	return rc;
}

int
edit_json_add_item(struct buf *doc, const char *const *path,
    const char *item, edit_item_fn kind, void *arg, struct err *e)
{
	struct json j;
	struct buf arr = BUF_INIT;
	struct kid *ks = NULL;
	int d = depth_of(path), v, rc, n, k, old = -1;

	if (parse(doc, &j, 1, e) < 0)
		return -1;
	buf_printf(&arr, "[%s]", item);
	rc = reach(doc, &j, path, d, arr.p, &v, e);
	buf_free(&arr);
	if (rc != 0)
		goto out;
	if (j.t[v].type != JSON_ARRAY) {
		rc = wrong_type(path, d, "a list", e);
		goto out;
	}
	n = kids(&j, v, &ks);
	for (k = 0; k < n; k++) {
		int r = kind(&j, ks[k].first, arg);
		if (r == EDIT_OURS || r == EDIT_HAS_OURS)
			goto out; /* rc 0: already there */
		if (r == EDIT_OURS_OLD && old < 0)
			old = k;
	}
	if (old >= 0)
		put_value(doc, &j, ks[old].first, item);
	else
		add_kid(doc, &j, v, NULL, item);
	rc = 1;
out:
	free(ks);
	done(&j);
	return rc;
}

int
edit_json_has(const char *doc, size_t len, const char *const *path)
{
	struct json j;
	const char *why;
	char *s;
	int have, at, v;

	if (!doc)
		return 0;
	s = xmalloc(len + 1);
	edit_json_uncomment(doc, len, s);
	if (json_parse(&j, s, len, DEPTH, &why) < 0) {
		free(s);
		return 0;
	}
	v = walk(&j, path, depth_of(path), &have, &at);
	done(&j);
	return v >= 0;
}

/* The container that holds token tok, as an item or a member's value,
 * and tok's place in it: 0, or -1 when tok is the top or a key. */
static int
owner(const struct json *j, int tok, int *c, int *k)
{
	int at = 0;

	while (at != tok && (j->t[at].type == JSON_OBJECT ||
	    j->t[at].type == JSON_ARRAY)) {
		struct kid *ks;
		int n = kids(j, at, &ks), i, next = -1;
		for (i = 0; i < n && next < 0; i++) {
			if (ks[i].last == tok) {
				*c = at;
				*k = i;
				free(ks);
				return 0;
			}
			if (tok > ks[i].last && tok < json_next(j, ks[i].last))
				next = ks[i].last;
		}
		free(ks);
		if (next < 0)
			return -1;
		at = next;
	}
	return -1;
}

/* Take out the containers at path[0..d), d, d-1, ..., that are empty and
 * did not exist in orig. */
static int
prune(struct buf *doc, const char *const *path, int d, const char *orig,
    size_t origlen, struct err *e)
{
	const char *sub[DEPTH + 1];
	int k;

	for (; d >= 1 && d <= DEPTH; d--) {
		struct json j;
		int v, have, at, c, key;
		for (k = 0; k < d; k++)
			sub[k] = path[k];
		sub[d] = NULL;
		if (orig && edit_json_has(orig, origlen, sub))
			return 0;
		if (parse(doc, &j, 0, e) <= 0)
			return -1;
		v = walk(&j, path, d, &have, &at);
		if (v < 0 || (j.t[v].type != JSON_OBJECT &&
		    j.t[v].type != JSON_ARRAY) || j.t[v].size != 0 ||
		    owner(&j, v, &c, &key) < 0) {
			done(&j);
			return 0;
		}
		del_kid(doc, &j, c, key);
		done(&j);
	}
	return 0;
}

int
edit_json_fix(struct buf *doc, const char *const *path, edit_fix_fn fn,
    void *arg, const char *orig, size_t origlen, struct err *e)
{
	int d = depth_of(path), changed = 0, k = 0, budget = -1, rc;

	for (;;) {
		struct json j;
		struct kid *ks = NULL;
		struct edit_change c = { -1, NULL };
		int v, have, at, n = 0, pc, pk;
		if ((rc = parse(doc, &j, 0, e)) <= 0)
			return rc < 0 ? -1 : changed;
		if (budget < 0)
			budget = j.n; /* each change is progress; this is a bound */
		v = walk(&j, path, d, &have, &at);
		if (v >= 0 && (j.t[v].type == JSON_OBJECT ||
		    j.t[v].type == JSON_ARRAY))
			n = kids(&j, v, &ks);
		if (k < n && budget-- > 0)
			fn(&j, ks[k].last, arg, &c);
		free(ks);
		if (k >= n || budget < 0) {
			done(&j);
			break;
		}
		if (c.tok < 0 || owner(&j, c.tok, &pc, &pk) < 0 ||
		    (c.value && equal(&j, c.tok, c.value))) {
			k++; /* nothing (more) to change in this one */
		} else {
			if (c.value)
				put_value(doc, &j, c.tok, c.value);
			else
				del_kid(doc, &j, pc, pk);
			changed = 1;
		}
		done(&j);
	}
	if (changed && prune(doc, path, d, orig, origlen, e) < 0)
		return -1;
	return changed;
}
