/* edit: reading and writing back a user's configuration file, and the
 * line-oriented edits (a TOML table, a marked markdown section).
 *
 * Design rationale. The user's file is theirs: we read it whole, change
 * only the bytes of the one block we own, and write it back through a
 * temporary file and a rename, so that a crash leaves the old file or
 * the new one, never half of each. A symlinked file (dotfiles kept in a
 * repository) is edited where it lives, not replaced by a copy. The
 * first change keeps the file as it was in FILE.bak-backchannel, and
 * that backup is also how --remove knows what the user had. Appending a
 * block puts one blank line before it and removing it takes that line
 * back, so that set then remove gives the file back byte for byte. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edit.h"
#include "io.h"

int
edit_open(struct edit_file *f, const char *path, enum edit_kind kind,
    mode_t mode, struct err *e)
{
	char bak[PATH_MAX + 32];
	struct stat st;

	memset(f, 0, sizeof *f);
	f->kind = kind;
	f->mode = mode;
	if (snprintf(f->path, sizeof f->path, "%s", path) >= (int)sizeof f->path)
		return err_set(e, BCH_PERM, "path too long: %s", path);
	snprintf(f->real, sizeof f->real, "%s", path);
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT)
			return err_sys(e, "cannot read %s", path);
	} else {
		if (S_ISLNK(st.st_mode) && !realpath(path, f->real)) {
			if (errno != ENOENT)
				return err_sys(e, "cannot follow %s", path);
			return err_set(e, BCH_PERM, "%s is a symlink to nothing "
			    "— fix or remove the link", path);
		}
		if (stat(f->real, &st) < 0)
			return err_sys(e, "cannot read %s", path);
		if (!S_ISREG(st.st_mode))
			return err_set(e, BCH_PERM, "%s is not a regular file — "
			    "move it aside", path);
		if (io_readfile(AT_FDCWD, f->real, EDIT_MAX, &f->old) < 0) {
			if (errno == EFBIG)
				return err_set(e, BCH_PERM, "%s is over %d MiB — "
				    "not editing it", path, EDIT_MAX >> 20);
			return err_sys(e, "cannot read %s", path);
		}
		f->exists = 1;
		f->mode = st.st_mode & 07777;
	}
	buf_add(&f->text, f->old.p ? f->old.p : "", f->old.len);
	snprintf(bak, sizeof bak, "%s%s", f->real, EDIT_BACKUP);
	if (io_readfile(AT_FDCWD, bak, EDIT_MAX, &f->orig) == 0)
		f->has_backup = 1;
	else if (errno != ENOENT)
		return err_sys(e, "cannot read %s", bak);
	return 0;
}

/* Is the edited text nothing at all: white space, or an empty object? */
static int
text_empty(const struct edit_file *f)
{
	const char *s = f->text.p ? f->text.p : "";
	size_t i = 0, n = f->text.len;

	while (i < n && strchr(" \t\r\n", s[i]))
		i++;
	if (f->kind == EDIT_JSON && i < n && s[i] == '{') {
		for (i++; i < n && strchr(" \t\r\n", s[i]); i++)
			;
		if (i < n && s[i] == '}')
			for (i++; i < n && strchr(" \t\r\n", s[i]); i++)
				;
		else
			return 0;
	}
	return i == n;
}

static int
backup(struct edit_file *f, struct err *e)
{
	char bak[PATH_MAX + 32];
	int fd;

	snprintf(bak, sizeof bak, "%s%s", f->real, EDIT_BACKUP);
	fd = open(bak, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    f->mode & 0666);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0; /* once: the first backup is the original */
		return err_sys(e, "cannot create the backup %s", bak);
	}
	if (io_writeall(fd, f->old.p ? f->old.p : "", f->old.len) < 0 ||
	    fsync(fd) < 0 || fchmod(fd, f->mode & 0666) < 0) {
		err_sys(e, "cannot write the backup %s", bak);
		close(fd);
		unlink(bak);
		return -1;
	}
	if (close(fd) < 0) {
		err_sys(e, "cannot write the backup %s", bak);
		unlink(bak);
		return -1;
	}
	return 0;
}

static int
parent_dirs(const char *path, struct err *e)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof dir, "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = 0;
	if (io_mkdirs(dir, 0700) < 0)
		return err_sys(e, "cannot create %s", dir);
	return 0;
}

int
edit_commit(struct edit_file *f, int dry, struct err *e)
{
	if (f->text.len == f->old.len &&
	    (f->old.len == 0 || memcmp(f->text.p, f->old.p, f->old.len) == 0))
		return EDIT_SAME;
	if (f->exists && !f->has_backup && text_empty(f)) {
		if (!dry && unlink(f->real) < 0)
			return err_sys(e, "cannot remove %s", f->path);
		return EDIT_DELETED;
	}
	if (dry)
		return f->exists ? EDIT_UPDATED : EDIT_CREATED;
	if (f->exists && backup(f, e) < 0)
		return -1;
	if (!f->exists && parent_dirs(f->real, e) < 0)
		return -1;
	if (io_replace(f->real, f->text.p, f->text.len, 1, e) < 0)
		return -1;
	if (chmod(f->real, f->mode) < 0)
		return err_sys(e, "cannot set the mode of %s", f->path);
	return f->exists ? EDIT_UPDATED : EDIT_CREATED;
}

void
edit_close(struct edit_file *f)
{
	buf_free(&f->old);
	buf_free(&f->text);
	buf_free(&f->orig);
}

/* Replace doc[start..end) with the n bytes at p. */
static void
text_splice(struct buf *doc, size_t start, size_t end, const char *p, size_t n)
{
	struct buf out = BUF_INIT;

	buf_add(&out, doc->p, start);
	buf_add(&out, p, n);
	buf_add(&out, doc->p + end, doc->len - end);
	buf_free(doc);
	*doc = out;
}

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
	text_splice(doc, start, end, "", 0);
	if (start >= 2 && doc->p[start - 1] == '\n' &&
	    doc->p[start - 2] == '\n' &&
	    (start == doc->len || doc->p[start] == '\n'))
		text_splice(doc, start - 1, start, "", 0);
	else if (start == 0 && doc->len > 0 && doc->p[0] == '\n')
		text_splice(doc, 0, 1, "", 0);
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
	text_splice(doc, start, end, block, n);
	return 1;
}

/* TOML: a scanner that knows strings, comments and brackets well enough
 * to tell a table header from a line of a multi-line array or string. */

struct toml_scan {
	const char *s;
	size_t n, i;
	int depth;  /* [ and { inside values */
	int mlq;    /* inside """ (1) or ''' (2) */
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

/* Is the line at s[i] a table header? 1 for [a.b] (matching table sets
 * *match), 2 for [[a.b]], 0 for not a header. */
static int
toml_header(const char *s, size_t n, size_t i, const char *const *table,
    int *match)
{
	char part[256];
	int dbl = 0, k = 0, same = 1;

	*match = 0;
	if (i >= n || s[i] != '[')
		return 0;
	i++;
	if (i < n && s[i] == '[') {
		dbl = 1;
		i++;
	}
	for (;;) {
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (toml_key_part(s, n, &i, part, sizeof part) < 0)
			return 0;
		if (!table[k] || strcmp(part, table[k]) != 0)
			same = 0;
		if (table[k])
			k++;
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i < n && s[i] == '.') {
			i++;
			continue;
		}
		break;
	}
	if (i >= n || s[i++] != ']' || (dbl && (i >= n || s[i++] != ']')))
		return 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
		i++;
	if (i < n && s[i] != '\n' && s[i] != '#')
		return 0;
	*match = !dbl && same && !table[k];
	return dbl ? 2 : 1;
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

/* Find table: 1 with [*start, *end), 0 if absent. */
static int
toml_find(const char *s, size_t n, const char *const *table, size_t *start,
    size_t *end)
{
	struct toml_scan sc = { s, n, 0, 0, 0 };
	int found = 0, match;

	while (sc.i < n) {
		size_t line = sc.i, j = sc.i;
		if (!sc.mlq && sc.depth == 0) {
			while (j < n && (s[j] == ' ' || s[j] == '\t'))
				j++;
			if (toml_header(s, n, j, table, &match)) {
				if (found)
					break;
				if (match) {
					found = 1;
					*start = line;
				}
			}
		}
		toml_line(&sc);
		if (found && !toml_idle(s, line, sc.i))
			*end = sc.i;
	}
	return found;
}

int
edit_toml_set(struct buf *doc, const char *const *table, const char *block,
    struct err *e)
{
	size_t start = 0, end = 0;
	int found = toml_find(doc->p ? doc->p : "", doc->len, table, &start,
	    &end);

	(void)e;
	return block_set(doc, found, start, end, block);
}

int
edit_toml_del(struct buf *doc, const char *const *table, struct err *e)
{
	size_t start = 0, end = 0;

	(void)e;
	if (!toml_find(doc->p ? doc->p : "", doc->len, table, &start, &end))
		return 0;
	block_delete(doc, start, end);
	return 1;
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
