/* edit-text: the line-oriented edits (edit.h): a TOML table, a marked
 * markdown section.
 *
 * Design rationale. Appending a block puts one blank line before it and
 * removing it takes that line back, so that set then remove gives the
 * file back byte for byte. In TOML a table of ours may hold the user's
 * keys too (an env, a timeout): setup writes and takes out only its own
 * keys, and the table goes whole only when nothing else is in it. A table
 * the file defines otherwise (dotted keys, an inline table) cannot get a
 * header beside it, so that file is refused. */
#include <string.h>

#include "edit.h"

/* Append block, after one blank line when the text has any. */
static void
block_append(struct buf *doc, const char *block)
{
	if (doc->len > 0)
		buf_adds(doc, doc->p[doc->len - 1] == '\n' ? "\n" : "\n\n");
	buf_adds(doc, block);
}

/* Delete doc[start..end), and the blank line block_append put before it
 * when that leaves two line ends in a row before a blank line or the
 * end. */
static void
block_delete(struct buf *doc, size_t start, size_t end)
{
	edit_splice(doc, start, end, "", 0);
	if (start >= 2 && doc->p[start - 1] == '\n' &&
	    doc->p[start - 2] == '\n' &&
	    (start == doc->len || doc->p[start] == '\n'))
		edit_splice(doc, start - 1, start, "", 0);
	else if (start == 0 && doc->len > 0 && doc->p[0] == '\n')
		edit_splice(doc, 0, 1, "", 0);
}

static int
block_set(struct buf *doc, int found, size_t start, size_t end,
    const char *block)
{
	size_t n = strlen(block);

	if (!found) {
		block_append(doc, block);
		return 1;
	}
	if (end - start == n && memcmp(doc->p + start, block, n) == 0)
		return 0;
	edit_splice(doc, start, end, block, n);
	return 1;
}

/* TOML: a scanner that knows strings, comments and brackets well enough
 * to tell a table header from a line of a multi-line array or string,
 * and to read the key of each statement. */

#define TOML_PARTS 8 /* key parts kept; a longer key's are only counted */

struct toml_key {
	int n; /* parts, or -1: a header we cannot read */
	char part[TOML_PARTS][128];
};

struct toml_scan {
	const char *s;
	size_t n, i;
	int depth;  /* [ and { inside values */
	int mlq;    /* inside """ (1) or ''' (2) */
};

enum { TOML_IDLE, TOML_TABLE, TOML_ARRAY, TOML_KEYVAL, TOML_ODD };

/* A statement: a blank or comment line, a header, a key and its value
 * (all its lines), or a line we cannot read. */
struct toml_stmt {
	size_t start, end; /* its lines, the last one's line end included */
	int what;
	struct toml_key key; /* a header's or a key's parts */
};

/* Where a table is in a file, and what else defines it (toml_find). */
struct toml_where {
	int found;           /* a [table] header */
	int clash;           /* defined otherwise: dotted keys, inline, [[ ]] */
	size_t start, end;   /* its header to its last statement */
	int others;          /* its statements that are not among keys */
	int kfound;          /* the one key looked for */
	size_t kstart, kend; /* its statement */
};

/* Parse one dotted key part at s[*i]; copy it to part. 0 or -1. */
static int
toml_key_part(const char *s, size_t n, size_t *i, char *part, size_t psz)
{
	size_t k = 0;

	if (*i < n && (s[*i] == '"' || s[*i] == '\'')) {
		char q = s[(*i)++];
		while (*i < n && s[*i] != q && s[*i] != '\n') {
			if (q == '"' && s[*i] == '\\')
				return -1; /* escaped keys: not ours */
			if (k + 1 < psz)
				part[k++] = s[*i];
			(*i)++;
		}
		if (*i >= n || s[*i] != q)
			return -1;
		(*i)++;
	} else {
		while (*i < n && (s[*i] == '_' || s[*i] == '-' ||
		    (s[*i] >= 'a' && s[*i] <= 'z') ||
		    (s[*i] >= 'A' && s[*i] <= 'Z') ||
		    (s[*i] >= '0' && s[*i] <= '9'))) {
			if (k + 1 < psz)
				part[k++] = s[*i];
			(*i)++;
		}
		if (k == 0)
			return -1;
	}
	part[k] = 0;
	return 0;
}

/* Parse the dotted key at s[*i] into k, and the white space after it.
 * 0 or -1. */
static int
toml_key(const char *s, size_t n, size_t *i, struct toml_key *k)
{
	char spare[128];

	for (k->n = 0;; k->n++) {
		char *part = k->n < TOML_PARTS ? k->part[k->n] : spare;
		while (*i < n && (s[*i] == ' ' || s[*i] == '\t'))
			(*i)++;
		if (toml_key_part(s, n, i, part, sizeof spare) < 0)
			return -1;
		while (*i < n && (s[*i] == ' ' || s[*i] == '\t'))
			(*i)++;
		if (*i >= n || s[*i] != '.') {
			k->n++;
			return 0;
		}
		(*i)++;
	}
}

/* The header line at s[i] (a '['): TOML_TABLE for [a.b], TOML_ARRAY for
 * [[a.b]], with k its key (n -1 when we cannot read it). */
static int
toml_header(const char *s, size_t n, size_t i, struct toml_key *k)
{
	int dbl = 0;

	i++;
	if (i < n && s[i] == '[') {
		dbl = 1;
		i++;
	}
	if (toml_key(s, n, &i, k) < 0 || i >= n || s[i++] != ']' ||
	    (dbl && (i >= n || s[i++] != ']')))
		k->n = -1;
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
		i++;
	if (i < n && s[i] != '\n' && s[i] != '#')
		k->n = -1;
	return dbl ? TOML_ARRAY : TOML_TABLE;
}

/* Move past the rest of a line of values, tracking strings and
 * brackets; leaves sc->i after the line's '\n' (or at the end). */
static void
toml_line(struct toml_scan *sc)
{
	const char *s = sc->s;

	while (sc->i < sc->n) {
		char c = s[sc->i];
		if (sc->mlq) {
			const char *q = sc->mlq == 1 ? "\"\"\"" : "'''";
			if (c == '\\' && sc->mlq == 1 && sc->i + 1 < sc->n) {
				sc->i += 2;
				continue;
			}
			if (sc->i + 3 <= sc->n && memcmp(s + sc->i, q, 3) == 0) {
				sc->i += 3;
				sc->mlq = 0;
				continue;
			}
			sc->i++;
			continue;
		}
		if (c == '\n') {
			sc->i++;
			return;
		}
		if (c == '#') {
			while (sc->i < sc->n && s[sc->i] != '\n')
				sc->i++;
			continue;
		}
		if ((c == '"' || c == '\'') && sc->i + 3 <= sc->n &&
		    s[sc->i + 1] == c && s[sc->i + 2] == c) {
			sc->mlq = c == '"' ? 1 : 2;
			sc->i += 3;
			continue;
		}
		if (c == '"' || c == '\'') {
			for (sc->i++; sc->i < sc->n && s[sc->i] != c &&
			    s[sc->i] != '\n'; sc->i++)
				if (c == '"' && s[sc->i] == '\\' &&
				    sc->i + 1 < sc->n && s[sc->i + 1] != '\n')
					sc->i++;
			if (sc->i < sc->n && s[sc->i] == c)
				sc->i++;
			continue;
		}
		if (c == '[' || c == '{')
			sc->depth++;
		else if ((c == ']' || c == '}') && sc->depth > 0)
			sc->depth--;
		sc->i++;
	}
}

/* Is the line s[a..b) blank or only a comment? */
static int
toml_idle(const char *s, size_t a, size_t b)
{
	while (a < b && (s[a] == ' ' || s[a] == '\t' || s[a] == '\r'))
		a++;
	return a == b || s[a] == '\n' || s[a] == '#';
}

/* Read the statement at sc->i into st: 0 at the end of the text. */
static int
toml_next(struct toml_scan *sc, struct toml_stmt *st)
{
	const char *s = sc->s;
	size_t j = sc->i;

	if (sc->i >= sc->n)
		return 0;
	st->start = sc->i;
	st->key.n = -1;
	while (j < sc->n && (s[j] == ' ' || s[j] == '\t'))
		j++;
	if (toml_idle(s, j, sc->n))
		st->what = TOML_IDLE;
	else if (s[j] == '[')
		st->what = toml_header(s, sc->n, j, &st->key);
	else if (toml_key(s, sc->n, &j, &st->key) == 0 && j < sc->n &&
	    s[j] == '=')
		st->what = TOML_KEYVAL;
	else
		st->what = TOML_ODD;
	do
		toml_line(sc);
	while (sc->i < sc->n && (sc->depth > 0 || sc->mlq));
	st->end = sc->i;
	return 1;
}

/* Is the key cur then k (k NULL: cur alone) table itself (0), a key
 * inside it (1), one on the way to it (2), or none of these (-1)? */
static int
toml_rel(const struct toml_key *cur, const struct toml_key *k,
    const char *const *table)
{
	int d = 0, i, n;

	while (table[d])
		d++;
	if (cur->n < 0 || (k && k->n < 0) || d > TOML_PARTS)
		return -1;
	n = cur->n + (k ? k->n : 0);
	for (i = 0; i < n && i < d; i++)
		if (strcmp(i < cur->n ? cur->part[i] : k->part[i - cur->n],
		    table[i]) != 0)
			return -1;
	return n == d ? 0 : n > d ? 1 : 2;
}

static int
toml_among(const struct toml_key *k, const char *const *keys)
{
	for (; keys && *keys; keys++)
		if (k->n == 1 && strcmp(k->part[0], *keys) == 0)
			return 1;
	return 0;
}

/* Find table, the statements in it that are not among keys, the one
 * statement of key (if not NULL), and whatever else defines the table:
 * a value or dotted keys of a table above it ([a] b = {...}, a.b.c = 1),
 * or an array of tables. */
static void
toml_find(const char *s, size_t n, const char *const *table,
    const char *const *keys, const char *key, struct toml_where *w)
{
	struct toml_scan sc = { s, n, 0, 0, 0 };
	struct toml_stmt st;
	struct toml_key cur; /* the table the statements are in */
	const char *one[] = { key, NULL };
	int in = 0;

	memset(w, 0, sizeof *w);
	cur.n = 0;
	while (toml_next(&sc, &st)) {
		if (st.what == TOML_TABLE || st.what == TOML_ARRAY) {
			int rel = toml_rel(&st.key, NULL, table);
			cur = st.key;
			in = st.what == TOML_TABLE && !w->found && rel == 0;
			if (st.what == TOML_ARRAY && (rel == 0 || rel == 2))
				w->clash = 1;
			if (in) {
				w->found = 1;
				w->start = st.start;
				w->end = st.end;
			}
			continue;
		}
		if (st.what == TOML_KEYVAL && cur.n >= 0 && toml_rel(&cur, NULL,
		    table) == 2 && toml_rel(&cur, &st.key, table) >= 0)
			w->clash = 1;
		if (!in || st.what == TOML_IDLE)
			continue;
		w->end = st.end;
		if (st.what != TOML_KEYVAL || !toml_among(&st.key, keys))
			w->others++;
		if (key && st.what == TOML_KEYVAL && toml_among(&st.key, one)) {
			w->kfound = 1;
			w->kstart = st.start;
			w->kend = st.end;
		}
	}
}

/* Make key's statement in the table "key = val", or add that line after
 * the table's last statement. 1 when doc changed. */
static int
toml_put(struct buf *doc, const char *const *table, const char *key,
    const char *val)
{
	struct toml_where w;
	struct buf line = BUF_INIT;
	size_t a, b;
	int rc = 1;

	toml_find(doc->p, doc->len, table, NULL, key, &w);
	buf_printf(&line, "%s = %s", key, val);
	if (w.kfound) {
		a = w.kstart;
		for (b = w.kend; b > a && (doc->p[b - 1] == '\n' ||
		    doc->p[b - 1] == '\r'); b--)
			;
		if (b - a == line.len && memcmp(doc->p + a, line.p, b - a) == 0)
			rc = 0;
		else
			edit_splice(doc, a, b, line.p, line.len);
	} else {
		int nl = w.end > 0 && doc->p[w.end - 1] != '\n';
		buf_reset(&line);
		buf_printf(&line, "%s%s = %s\n", nl ? "\n" : "", key, val);
		edit_splice(doc, w.end, w.end, line.p, line.len);
	}
	buf_free(&line);
	return rc;
}

static int
toml_clash(const char *const *table, struct err *e)
{
	struct buf name = BUF_INIT;
	int k;

	for (k = 0; table[k]; k++)
		buf_printf(&name, "%s%s", k ? "." : "", table[k]);
	err_set(e, BCH_PERM, "%s is defined there by dotted keys or an inline "
	    "table, which a [%s] table beside it would make invalid TOML — "
	    "write it as that table", name.p, name.p);
	buf_free(&name);
	return -1;
}

int
edit_toml_set(struct buf *doc, const char *const *table,
    const char *const *keys, const char *const *vals, struct err *e)
{
	struct toml_where w;
	struct buf block = BUF_INIT;
	int k, rc = 0;

	toml_find(doc->p, doc->len, table, keys, NULL, &w);
	if (w.clash)
		return toml_clash(table, e);
	if (w.found) {
		for (k = 0; keys[k]; k++)
			rc |= toml_put(doc, table, keys[k], vals[k]);
		return rc;
	}
	buf_addc(&block, '[');
	for (k = 0; table[k]; k++)
		buf_printf(&block, "%s%s", k ? "." : "", table[k]);
	buf_adds(&block, "]\n");
	for (k = 0; keys[k]; k++)
		buf_printf(&block, "%s = %s\n", keys[k], vals[k]);
	block_append(doc, block.p);
	buf_free(&block);
	return 1;
}

int
edit_toml_del(struct buf *doc, const char *const *table,
    const char *const *keys, struct err *e)
{
	struct toml_where w;
	int k, rc = 0;

	(void)e;
	toml_find(doc->p, doc->len, table, keys, NULL, &w);
	if (!w.found)
		return 0;
	if (!w.others) {
		block_delete(doc, w.start, w.end);
		return 1;
	}
	for (k = 0; keys[k]; k++) {
		toml_find(doc->p, doc->len, table, NULL, keys[k], &w);
		if (w.kfound) {
			edit_splice(doc, w.kstart, w.kend, "", 0);
			rc = 1;
		}
	}
	return rc;
}

/* The line s[i..] equals marker (trailing white space aside)? */
static int
md_is(const char *s, size_t n, size_t i, const char *marker)
{
	size_t k = strlen(marker);

	if (n - i < k || memcmp(s + i, marker, k) != 0)
		return 0;
	for (i += k; i < n && s[i] != '\n'; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return 0;
	return 1;
}

static int
md_find(const char *s, size_t n, const char *begin, const char *end,
    size_t *a, size_t *b, struct err *e)
{
	size_t i = 0;
	int in = 0;

	while (i < n) {
		size_t eol = i;
		while (eol < n && s[eol] != '\n')
			eol++;
		if (eol < n)
			eol++;
		if (!in && md_is(s, n, i, begin)) {
			in = 1;
			*a = i;
		} else if (in && md_is(s, n, i, end)) {
			*b = eol;
			return 1;
		}
		i = eol;
	}
	if (in)
		return err_set(e, BCH_PERM, "a %s line has no %s after it — "
		    "fix the file by hand", begin, end);
	return 0;
}

int
edit_md_set(struct buf *doc, const char *begin, const char *end,
    const char *block, struct err *e)
{
	size_t a = 0, b = 0;
	int found = md_find(doc->p ? doc->p : "", doc->len, begin, end, &a, &b,
	    e);

	if (found < 0)
		return -1;
	return block_set(doc, found, a, b, block);
}

int
edit_md_del(struct buf *doc, const char *begin, const char *end,
    struct err *e)
{
	size_t a = 0, b = 0;
	int found = md_find(doc->p ? doc->p : "", doc->len, begin, end, &a, &b,
	    e);

	if (found <= 0)
		return found;
	block_delete(doc, a, b);
	return 1;
}
