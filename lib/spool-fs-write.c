/* spool-fs-write: writing a message into its recipients' inboxes of the
 * Maildir spool (PROTOCOL.md 2): once into the first one's tmp/, then
 * linked into each new/ that lacks it.
 *
 * Design rationale. A link (a copy moved in with renameat2(NOREPLACE)
 * where a link cannot be made) never replaces a file already in new/,
 * and every new/ is looked at first: a message under the same id from
 * another sender refuses the send before anything is stored or pushed,
 * and the same sender's is its retry, stored once. The file in tmp/ is
 * named by this host and pid, so a sender killed mid-write leaves
 * nothing its retry could trip on. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "spool.h"
#include "spool-fs.h"

/* Write b to path, a name of this process's own (see write_tmp()): 0,
 * 1 when the directory is missing, -1 with e filled. */
static int
write_file(const char *path, const struct buf *b, int sync, struct err *e)
{
	int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd = open(path, flags, 0600);

	/* Left by a process of our host and pid that died mid-write. */
	if (fd < 0 && errno == EEXIST && unlink(path) == 0)
		fd = open(path, flags, 0600);
	if (fd < 0 && errno == ENOENT)
		return 1; /* the directory is missing */
	if (fd < 0)
		return err_sys(e, "cannot create %s", path);
	if (io_writeall(fd, b->p, b->len) < 0 || (sync && fsync(fd) < 0)) {
		err_sys(e, "cannot write %s", path);
		close(fd);
		unlink(path);
		return -1;
	}
	if (close(fd) < 0) {
		err_sys(e, "cannot write %s", path);
		unlink(path);
		return -1;
	}
	return 0;
}

/* Write data into r's tmp/, creating the inbox if it went missing. The
 * name is file followed by this host and pid, as a claim's is: a sender
 * killed mid-write leaves its file behind, and its retry under the same
 * id (from another process) must not find the name taken. */
static int
write_tmp(struct spool *s, const char *r, const char *file,
    const struct buf *b, char *tmp, struct err *e)
{
	char name[ID_MAX_LEN + 160];
	int rc;

	snprintf(name, sizeof name, "%s.%s.%ld", file, fs_host(s->impl),
	    (long)getpid());
	box_path(s, tmp, r, "tmp", name);
	rc = write_file(tmp, b, s->cfg->fsync, e);
	if (rc == 1) {
		if (make_box(s, r, e) < 0)
			return -1;
		rc = write_file(tmp, b, s->cfg->fsync, e);
		if (rc == 1)
			return err_sys(e, "cannot create %s", tmp);
	}
	return rc;
}

/* Whose is the message in new/ at dst? An id already there from the same
 * sender is a retry, stored once; another sender's message under that
 * id is refused, never lost behind a success. 1 the same sender's, 0
 * none there, -1 with e filled (409 for another sender's). */
static int
id_owner(struct spool *s, const char *dst, const char *from, struct err *e)
{
	struct buf old = BUF_INIT;
	struct msg m;
	int same = 0;

	if (io_readfile(AT_FDCWD, dst, s->cfg->rlim.total + 1, &old) < 0) {
		buf_free(&old);
		return errno == ENOENT ? 0 : err_sys(e, "cannot read %s", dst);
	}
	if (msg_decode(old.p, old.len, 0, &s->cfg->rlim, &m, NULL) == 0) {
		same = m.from && strcmp(m.from, from) == 0;
		msg_free(&m);
	}
	buf_free(&old);
	if (same)
		return 1;
	err_set(e, BCH_PERM, "message id already used by another message — "
	    "send with a new id");
	return err_status(e, 409);
}

/* The recipients still to be given the message: those whose new/ does
 * not hold it already (from a send this one retries), into todo. -1 with
 * e filled if a box is unsafe, or another sender's message has that id
 * in any of them: then nothing is stored, linked or pushed. An id made
 * here is no other message's: no inbox is looked at for it. */
static int
to_deliver(struct spool *s, char **r, size_t n, const char *file,
    const struct msg *m, char **todo, size_t *ntodo, struct err *e)
{
	char dst[P];
	size_t i;
	int rc = 0;

	*ntodo = 0;
	for (i = 0; i < n; i++) {
		if (fs_box_checked(s, r[i], e) < 0)
			return -1;
		box_path(s, dst, r[i], "new", file);
		if (!m->id_made && (rc = id_owner(s, dst, m->from, e)) < 0)
			return -1;
		if (rc == 0)
			todo[(*ntodo)++] = r[i];
	}
	return 0;
}

/* Move src to dst, r's new/<file>, never over a file there: 1 moved; 0
 * the same sender's copy was there since to_deliver() looked (src
 * removed); -1 with e filled. */
static int
move_in(struct spool *s, const char *r, const char *src, const char *dst,
    const char *from, struct err *e)
{
	int rc = move_noreplace(src, dst);

	if (rc == 1) {
		unlink(src);
		return id_owner(s, dst, from, e) < 0 ? -1 : 0;
	}
	return rc < 0 ? err_sys(e, "cannot deliver to %s", r) : 1;
}

/* Link tmp into r's new/ as file (a copy when a link cannot be made): 1
 * linked, 0 the same sender's copy is there already, -1 with e filled. */
static int
link_one(struct spool *s, const char *r, const char *tmp, const char *file,
    const struct msg *m, const struct buf *b, struct err *e)
{
	char dst[P], tmp2[P];

	box_path(s, dst, r, "new", file);
	if (link(tmp, dst) == 0)
		return 1;
	if (errno == EEXIST) /* there since to_deliver() looked */
		return id_owner(s, dst, m->from, e) < 0 ? -1 : 0;
	/* Another file system, or a box gone missing. */
	if (write_tmp(s, r, file, b, tmp2, e) < 0)
		return -1;
	return move_in(s, r, tmp2, dst, m->from, e);
}

/* Write the message once and link it into each recipient's new/ that
 * lacks it. The relay's streams are told (s->stored) only once nothing
 * stands in the way: no other message under its id, the file written.
 * A failure part way takes back the links made, so that a sender told
 * to retry does not leave some recipients holding it. */
int
fs_publish(struct spool *s, char **r, size_t n, const struct msg *m,
    const struct buf *b, struct err *e)
{
	char tmp[P], dst[P], file[ID_MAX_LEN + 8];
	char **todo = xcalloc(n + 1, sizeof *todo);
	char *made = xcalloc(n + 1, 1);
	size_t i, ntodo;
	int rc = -1;

	snprintf(file, sizeof file, "%s.json", m->id);
	if (to_deliver(s, r, n, file, m, todo, &ntodo, e) < 0 ||
	    (ntodo && write_tmp(s, todo[0], file, b, tmp, e) < 0))
		goto out;
	if (ntodo && s->stored)
		s->stored(s->stored_arg, m->id, todo, ntodo, b->p, b->len - 1);
	for (i = 1; i < ntodo; i++) {
		int k = link_one(s, todo[i], tmp, file, m, b, e);
		if (k < 0)
			break;
		made[i] = (char)k;
	}
	rc = i < ntodo ? -1 : 0;
	if (ntodo && !rc) { /* last, the written file itself: a rename */
		box_path(s, dst, todo[0], "new", file);
		rc = move_in(s, todo[0], tmp, dst, m->from, e) < 0 ? -1 : 0;
	}
	if (rc < 0)
		unlink(tmp);
	while (rc < 0 && i-- > 1)
		if (made[i]) {
			box_path(s, dst, todo[i], "new", file);
			unlink(dst);
		}
out:
	free(todo);
	free(made);
	return rc;
}
