/* spool-fs-write: writing a message into its recipients' inboxes of the
 * Maildir spool (PROTOCOL.md 2): once into the first one's tmp/, then
 * linked into each new/ that lacks it.
 *
 * Design rationale. A link (a copy moved in with renameat2(NOREPLACE)
 * where a link cannot be made) never replaces a file already in new/,
 * and every inbox is looked at first, new/ and cur/: a message under the
 * same id from another sender, unread or claimed, refuses the send
 * before anything is stored or pushed, and the same sender's, unread,
 * claimed or kept, is its retry, stored once. The quota is asked of
 * the inboxes that lack it alone: a retry whose first try was stored is
 * the success it was, however full those inboxes are since. The file in
 * tmp/ is named by this host and pid, so a sender killed mid-write
 * leaves nothing its retry could trip on. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
	return io_writeout(fd, path, b->p, b->len, sync, e);
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

enum { NONE, SAME, OTHER };

/* Whose is the message at path? SAME from `from`; OTHER from another
 * sender, or not readable as a message; NONE when no file is there; -1
 * with e filled. */
static int
whose(struct spool *s, const char *path, const char *from, struct err *e)
{
	struct buf old = BUF_INIT;
	struct msg m;
	int same = 0;

	if (io_readfile(AT_FDCWD, path, s->cfg->rlim.total + 1, &old) < 0) {
		buf_free(&old);
		if (errno == ENOENT)
			return NONE;
		return err_sys(e, "cannot read %s", path);
	}
	if (msg_decode(old.p, old.len, 0, &s->cfg->rlim, &m, NULL) == 0) {
		same = m.from && strcmp(m.from, from) == 0;
		msg_free(&m);
	}
	buf_free(&old);
	return same ? SAME : OTHER;
}

/* Whose is the message at dst, in new/ or claimed? An id already there
 * from the same sender is a retry, stored once; another sender's
 * message under that id is refused, never lost behind a success. 1 the
 * same sender's, 0 none there, -1 with e filled (409 for another
 * sender's). */
static int
id_owner(struct spool *s, const char *dst, const char *from, struct err *e)
{
	int w = whose(s, dst, from, e);

	if (w < 0 || w == NONE)
		return w < 0 ? -1 : 0;
	if (w == SAME)
		return 1;
	err_set(e, BCH_PERM, "message id already used by another message — "
	    "send with a new id");
	return err_status(e, 409);
}

void
box_claims_drop(struct box *b)
{
	size_t i;

	for (i = 0; i < b->nclaims; i++)
		free(b->claims[i]);
	free(b->claims);
	b->claims = NULL;
	b->nclaims = 0;
	b->claims_ok = 0;
}

/* Bring b's list of claims up to date with its cur/, read again only
 * when cur/ changed: a long-lived sender (the relay, a batch) must not
 * read a cur/ full of kept messages on every send. A claim is a rename
 * into or out of cur/, which moves its mtime; one within the clock tick
 * seen would not, so, as agents_load() does, a listing is trusted only
 * when cur/ had been still for 50 ms before it was read. */
static int
claims_load(struct spool *s, struct box *b, struct err *e)
{
	char dir[P];
	struct timespec now;
	struct stat st;
	struct dirent *d;
	DIR *dp;
	size_t cap = 0;

	box_path(s, dir, b->name, "cur", NULL);
	memset(&st, 0, sizeof st);
	if (stat(dir, &st) < 0 && errno != ENOENT)
		return err_sys(e, "cannot read %s", dir);
	if (b->claims_ok && st.st_ino == b->cur_st.st_ino &&
	    st.st_dev == b->cur_st.st_dev &&
	    st.st_mtim.tv_sec == b->cur_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == b->cur_st.st_mtim.tv_nsec)
		return 0;
	box_claims_drop(b);
	clock_gettime(CLOCK_REALTIME, &now);
	if (!(dp = opendir(dir)))
		return errno == ENOENT ? 0 : err_sys(e, "cannot read %s", dir);
	while ((errno = 0, d = readdir(dp))) {
		if (!strstr(d->d_name, ".claim."))
			continue;
		if (b->nclaims == cap) {
			cap = cap ? cap * 2 : 8;
			b->claims = xrealloc(b->claims, cap * sizeof *b->claims);
		}
		b->claims[b->nclaims++] = xstrdup(d->d_name);
	}
	if (errno) {
		err_sys(e, "cannot read %s", dir);
		closedir(dp);
		box_claims_drop(b);
		return -1;
	}
	closedir(dp);
	b->cur_st = st;
	b->claims_ok = (long long)(now.tv_sec - st.st_mtim.tv_sec) * 1000 +
	    (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000 > 50;
	return 0;
}

/* Does r's cur/ hold file claimed (cur/<file>.claim.<host>.<pid>, being
 * read) or kept (cur/<file>, read with --keep)? As id_owner(): 1 the
 * same sender's, so already delivered; 0 none; -1 with e filled, 409
 * for another sender's claim. Another sender's kept message is no bar:
 * it was read, and keeping this one too puts it beside it. Claims are
 * looked at before the kept name, the way a claim moves. */
static int
id_in_cur(struct spool *s, const char *r, const char *file,
    const char *from, struct err *e)
{
	struct box *b = box_of(s, r);
	char path[P];
	size_t i, n = strlen(file);
	int rc = 0, w;

	if (claims_load(s, b, e) < 0)
		return -1;
	for (i = 0; rc == 0 && i < b->nclaims; i++)
		if (strncmp(b->claims[i], file, n) == 0 &&
		    strncmp(b->claims[i] + n, ".claim.", 7) == 0) {
			box_path(s, path, r, "cur", b->claims[i]);
			rc = id_owner(s, path, from, e);
		}
	if (rc != 0)
		return rc;
	box_path(s, path, r, "cur", file);
	w = whose(s, path, from, e);
	return w < 0 ? -1 : w == SAME;
}

/* The recipients still to be given the message: those whose inbox does
 * not hold it already, unread, claimed or kept (from a send this one
 * retries), into todo. -1 with e filled if a box is unsafe, or another
 * sender's message has that id unread or claimed in any of them: then
 * nothing is stored, linked or pushed. An id made here is no other
 * message's: no inbox is looked at for it.
 *
 * Looking and linking are not one step. new/ is looked at before cur/,
 * in the order a message moves (new/, claim, kept), and one that goes
 * back to new/ meanwhile meets the link, which never replaces it: so a
 * copy stored before the look is found. What is left is two sends of one
 * id at once, with a reader claiming the first one's copy between the
 * second's look and its link: a sender that retried before its first try
 * ended, and one message read twice. That is the worst case a crash
 * already has (PROTOCOL.md 2); closing it would take a lock on the id
 * across every sender and inbox. A message read and deleted is gone:
 * the same id after that is a new message. */
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
		if (!m->id_made) {
			rc = id_owner(s, dst, m->from, e);
			if (rc == 0)
				rc = id_in_cur(s, r[i], file, m->from, e);
			if (rc < 0)
				return -1;
		}
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
 * stands in the way: no other message under its id, room in each inbox
 * that lacks it (fs_room()), the file written.
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
	    fs_room(s, todo, ntodo, e) < 0 ||
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
		rc = move_in(s, todo[0], tmp, dst, m->from, e);
		made[0] = (char)(rc > 0);
		rc = rc < 0 ? -1 : 0;
	}
	if (rc < 0)
		unlink(tmp);
	while (rc < 0 && i-- > 1)
		if (made[i]) {
			box_path(s, dst, todo[i], "new", file);
			unlink(dst);
		}
	for (i = 0; rc == 0 && i < ntodo; i++)
		if (made[i] == 1) /* a copy there already is counted */
			fs_added(s, todo[i]);
out:
	free(todo);
	free(made);
	return rc;
}
