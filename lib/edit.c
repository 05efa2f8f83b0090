/* edit: reading and writing back a user's configuration file; the edits
 * are in edit-json.c and edit-text.c.
 *
 * Design rationale. The user's file is theirs: we read it whole, change
 * only the bytes of the one block we own, and write it back through a
 * temporary file and a rename, so that a crash leaves the old file or
 * the new one, never half of each. A symlinked file (dotfiles kept in a
 * repository) is edited where it lives, not replaced by a copy. The
 * first change keeps the file as it was in FILE.bak-backchannel, and
 * that backup is also how --remove knows what the user had. */
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
edit_json_uncomment(const char *s, size_t n, char *out)
{
	size_t i = 0;
	int found = 0;

	if (out != s)
		memcpy(out, s, n);
	while (i < n) {
		if (s[i] == '"') {
			for (i++; i < n && s[i] != '"'; i++)
				if (s[i] == '\\')
					i++;
			i++;
		} else if (s[i] == '/' && i + 1 < n && s[i + 1] == '/') {
			found = 1;
			for (; i < n && s[i] != '\n' && s[i] != '\r'; i++)
				out[i] = ' ';
		} else if (s[i] == '/' && i + 1 < n && s[i + 1] == '*') {
			size_t k;
			for (k = i + 2; k + 1 < n && !(s[k] == '*' &&
			    s[k + 1] == '/'); k++)
				;
			if (k + 1 >= n)
				return found; /* unterminated: left to fail */
			found = 1;
			for (k += 2; i < k; i++)
				if (s[i] != '\n' && s[i] != '\r')
					out[i] = ' ';
		} else {
			i++;
		}
	}
	return found;
}

/* Has b a JSON comment? Its comments' text, each then a NUL, in out. */
static int
comments(const struct buf *b, struct buf *out)
{
	char *m;
	size_t i;
	int found;

	if (!b->len)
		return 0;
	m = xmalloc(b->len);
	found = edit_json_uncomment(b->p, b->len, m);
	for (i = 0; out && i < b->len; i++)
		if (m[i] != b->p[i])
			buf_addc(out, b->p[i]);
		else if (i > 0 && m[i - 1] != b->p[i - 1])
			buf_addc(out, 0); /* the end of a run of them */
	free(m);
	return found;
}

/* Does the edited text keep each comment, once and in order? */
static int
comments_kept(const struct edit_file *f)
{
	struct buf a = BUF_INIT, b = BUF_INIT;
	int same;

	if (!comments(&f->old, &a))
		return 1;
	comments(&f->text, &b);
	same = a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
	buf_free(&a);
	buf_free(&b);
	return same;
}

static int
open_file(struct edit_file *f, const char *path, enum edit_kind kind,
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
			return err_sys(e, "cannot read it");
	} else {
		if (S_ISLNK(st.st_mode) && !realpath(path, f->real)) {
			if (errno != ENOENT)
				return err_sys(e, "cannot follow the link");
			return err_set(e, BCH_PERM, "a symlink to nothing — fix "
			    "or remove the link");
		}
		f->link = S_ISLNK(st.st_mode);
		if (stat(f->real, &st) < 0)
			return err_sys(e, "cannot read it");
		if (!S_ISREG(st.st_mode))
			return err_set(e, BCH_PERM, "not a regular file — move it "
			    "aside");
		if (io_readfile(AT_FDCWD, f->real, EDIT_MAX, &f->old) < 0) {
			if (errno == EFBIG)
				return err_set(e, BCH_PERM, "over %d MiB — not "
				    "editing it", EDIT_MAX >> 20);
			return err_sys(e, "cannot read it");
		}
		f->exists = 1;
		f->st = st; /* before the read: a write after it is seen */
		f->mode = st.st_mode & 07777;
		f->uid = st.st_uid;
		if (kind == EDIT_JSON && comments(&f->old, NULL))
			return err_set(e, BCH_PERM, "not valid JSON (a comment)");
	}
	buf_add(&f->text, f->old.p ? f->old.p : "", f->old.len);
	snprintf(bak, sizeof bak, "%s%s", f->real, EDIT_BACKUP);
	if (io_readfile(AT_FDCWD, bak, EDIT_MAX, &f->orig) == 0)
		f->has_backup = 1;
	else if (errno != ENOENT)
		return err_sys(e, "cannot read %s", bak);
	return 0;
}

int
edit_open(struct edit_file *f, const char *path, enum edit_kind kind,
    mode_t mode, struct err *e)
{
	if (open_file(f, path, kind, mode, e) < 0) {
		edit_close(f); /* what was read before the failure */
		return -1;
	}
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
	if (f->kind != EDIT_TEXT && i < n && s[i] == '{') {
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

/* 1 when made, 0 when there is one already, or -1. */
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
	return 1;
}

/* Is f->real still the file read? A harness that rewrote it meanwhile
 * (Claude Code rewrites ~/.claude.json as it runs) would lose that write
 * to ours. 0 when it is, else -1 with e filled (and f->changed set when
 * it changed). */
static int
unchanged(struct edit_file *f, struct err *e)
{
	struct stat st;

	if (stat(f->real, &st) < 0) {
		if (errno != ENOENT)
			return err_sys(e, "cannot read it");
		if (!f->exists)
			return 0;
	} else if (f->exists && st.st_dev == f->st.st_dev &&
	    st.st_ino == f->st.st_ino && st.st_size == f->st.st_size &&
	    st.st_mtim.tv_sec == f->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == f->st.st_mtim.tv_nsec &&
	    st.st_ctim.tv_sec == f->st.st_ctim.tv_sec &&
	    st.st_ctim.tv_nsec == f->st.st_ctim.tv_nsec) {
		return 0;
	}
	f->changed = 1;
	return err_set(e, BCH_TEMP, "changed while setup edited it");
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

/* Write f->text to a temporary file beside f->real, with the file's
 * mode, and rename it over f->real once the file is still the one read.
 * Run as root, setup runs as the owner of HOME (bch-setup.c), so what it
 * writes is theirs. */
static int
replace(struct edit_file *f, struct err *e)
{
	char tmp[PATH_MAX + 32], dir[PATH_MAX];
	char *slash;
	int fd;

	snprintf(dir, sizeof dir, "%s", f->real);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = 0;
	snprintf(tmp, sizeof tmp, "%s.tmp.%ld", f->real, (long)getpid());
	/* Made anew, never opened as found: a link put at this name would
	 * be written through. */
	if (unlink(tmp) < 0 && errno != ENOENT)
		return err_sys(e, "cannot create %s", tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0)
		return err_sys(e, "cannot create %s", tmp);
	if (fchmod(fd, f->mode) < 0) {
		err_sys(e, "cannot set the mode of %s", tmp);
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (io_writeout(fd, tmp, f->text.p, f->text.len, 1, e) < 0)
		return -1;
	/* As late as can be: from here to the rename, a write is lost. */
	if (unchanged(f, e) < 0) {
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, f->real) < 0) {
		err_sys(e, "cannot replace it");
		unlink(tmp);
		return -1;
	}
	if (io_fsyncdir(slash ? (*dir ? dir : "/") : ".") < 0)
		return err_sys(e, "cannot sync %s", dir);
	return 0;
}

/* Is s[0..n) only white space? */
static int
blank(const char *s, size_t n)
{
	while (n > 0 && s[n - 1] && strchr(" \t\r\n", s[n - 1]))
		n--;
	return n == 0;
}

int
edit_commit(struct edit_file *f, int dry, struct err *e)
{
	char bak[PATH_MAX + 32];
	int made = 0;

	/* A JSON file that was only white space reads as {}: left empty
	 * again, it goes back to what it was. */
	if (f->kind != EDIT_TEXT && f->has_backup && text_empty(f) &&
	    blank(f->orig.p, f->orig.len)) {
		buf_reset(&f->text);
		buf_add(&f->text, f->orig.p ? f->orig.p : "", f->orig.len);
	}
	if (f->text.len == f->old.len &&
	    (f->old.len == 0 || memcmp(f->text.p, f->old.p, f->old.len) == 0))
		return EDIT_SAME;
	if (f->kind == EDIT_JSONC && !comments_kept(f))
		return err_set(e, BCH_PERM, "a comment is where setup's entry "
		    "goes, and would be lost or doubled — move it");
	/* A symlink is the user's (dotfiles): setup never made it. */
	if (f->exists && !f->has_backup && !f->link && text_empty(f)) {
		if (!dry && unchanged(f, e) < 0)
			return -1;
		if (!dry && unlink(f->real) < 0)
			return err_sys(e, "cannot remove it");
		return EDIT_DELETED;
	}
	if (f->exists && f->uid != geteuid() && geteuid() != 0)
		return err_set(e, BCH_PERM, "owned by another user (uid %ld) "
		    "— chown it to yourself, or run bch setup as that user",
		    (long)f->uid);
	if (dry)
		return f->exists ? EDIT_UPDATED : EDIT_CREATED;
	if (f->exists && !f->no_backup && (made = backup(f, e)) < 0)
		return -1;
	if (!f->exists && parent_dirs(f->real, e) < 0)
		return -1;
	if (replace(f, e) < 0) {
		/* The backup is the file as it was before setup changed
		 * it: the one read again, not this one. */
		snprintf(bak, sizeof bak, "%s%s", f->real, EDIT_BACKUP);
		if (f->changed && made)
			unlink(bak);
		return -1;
	}
	return f->exists ? EDIT_UPDATED : EDIT_CREATED;
}

void
edit_close(struct edit_file *f)
{
	buf_free(&f->old);
	buf_free(&f->text);
	buf_free(&f->orig);
}

void
edit_splice(struct buf *doc, size_t start, size_t end, const char *p, size_t n)
{
	struct buf out = BUF_INIT;

	buf_add(&out, doc->p, start);
	buf_add(&out, p, n);
	buf_add(&out, doc->p + end, doc->len - end);
	buf_free(doc);
	*doc = out;
}

int
edit_write(const char *path, const char *p, size_t n, mode_t mode,
    struct err *e)
{
	struct edit_file f;
	char msg[sizeof e->msg];
	struct stat st;
	int rc;

	memset(&f, 0, sizeof f);
	if (snprintf(f.real, sizeof f.real, "%s", path) >= (int)sizeof f.real)
		return err_set(e, BCH_PERM, "path too long: %s", path);
	snprintf(f.path, sizeof f.path, "%s", path);
	f.mode = mode;
	if (stat(path, &st) == 0) {
		f.exists = 1;
		f.st = st; /* replace() checks it is still this one */
	} else if (errno != ENOENT) {
		return err_sys(e, "cannot read %s", path);
	}
	buf_add(&f.text, p ? p : "", n);
	rc = replace(&f, e);
	buf_free(&f.text);
	if (rc < 0 && !strstr(e->msg, path)) { /* "it": say which */
		snprintf(msg, sizeof msg, "%s: %s", path, e->msg);
		snprintf(e->msg, sizeof e->msg, "%s", msg);
	}
	return rc;
}
