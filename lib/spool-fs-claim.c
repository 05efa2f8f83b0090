/* spool-fs-claim: claims on messages of the Maildir spool — taking,
 * acknowledging (or keeping) and releasing them, and returning those
 * whose claimer died.
 *
 * Design rationale. A claim renames new/<f> to
 * cur/<f>.claim.<host>.<pid>: the rename is the lock, and a claim whose
 * process died is found by the next reader and put back. A claimer also
 * holds a lock of its own, <home>/claimers/<host>.<pid>, while it lives
 * (claim.h), so that a reader that cannot see its process (another pid
 * namespace) does not take it for dead. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "claim.h"
#include "io.h"
#include "spool.h"
#include "spool-fs.h"

/* Where claimers keep their locks (claim.h): <home>/claimers. */
static void
claimers_dir(struct spool *s, char out[P])
{
	snprintf(out, P, "%s/claimers", s->cfg->home);
}

/* Do the messages at a and b come from one sender? One id from one
 * sender is one message (a retried send), from two it is not. */
static int
same_sender(struct spool *s, const char *a, const char *b)
{
	struct buf x = BUF_INIT, y = BUF_INIT;
	struct msg m, n;
	size_t max = s->cfg->rlim.total;
	int same = 0;

	if (io_readfile(AT_FDCWD, a, max, &x) == 0 &&
	    io_readfile(AT_FDCWD, b, max, &y) == 0 &&
	    msg_decode(x.p, x.len, 0, &s->cfg->rlim, &m, NULL) == 0) {
		if (msg_decode(y.p, y.len, 0, &s->cfg->rlim, &n, NULL) == 0) {
			same = strcmp(m.from, n.from) == 0;
			msg_free(&n);
		}
		msg_free(&m);
	}
	buf_free(&x);
	buf_free(&y);
	return same;
}

/* Return the claim at src (of agent's file) to dst in new/: 0 done, 1
 * a file was there already, -1 error. That file is the same message
 * come again (its sender's retry), and the claim goes; or another
 * sender's under its id, come while it was claimed, and the claim is
 * set aside, not deleted. */
static int
unclaim(struct spool *s, const char *agent, const char *src,
    const char *dst, const char *file)
{
	int rc = move_noreplace(src, dst);

	if (rc == 1 && same_sender(s, src, dst))
		unlink(src);
	else if (rc == 1)
		fs_set_aside(s, agent, src, file, "another message came under "
		    "its id while it was claimed");
	return rc;
}

/* Is the claim called name this process's own? tail (made on first
 * use, "" until then) holds the end of our claims' names. */
static int
claim_ours(struct fs *fs, const char *name, char *tail, size_t tailsz)
{
	size_t n = strlen(name), k;

	if (!tail[0])
		snprintf(tail, tailsz, ".claim.%s.%ld", fs_host(fs),
		    (long)getpid());
	k = strlen(tail);
	return n >= k && strcmp(name + n - k, tail) == 0;
}

size_t
fs_recover(struct spool *s, const char *agent)
{
	struct fs *fs = s->impl;
	char path[P], src[P], dst[P], file[ID_MAX_LEN + 16];
	char shown[4 * sizeof file + 1];
	char locks[P], ours[sizeof fs->host + 32] = "";
	struct dirent *d;
	ssize_t flen;
	size_t back = 0, held = 0;
	DIR *dir;
	int j;

	claimers_dir(s, locks);
	box_path(s, path, agent, "cur", NULL);
	box_of(s, agent)->held = 0;
	if (!(dir = opendir(path)))
		return 0;
	while ((d = readdir(dir))) {
		if (!strstr(d->d_name, ".claim."))
			continue;
		box_path(s, src, agent, "cur", d->d_name);
		j = claim_judge(src, d->d_name, fs_host(fs), locks, &flen);
		if (j == CLAIM_LIVE &&
		    !claim_ours(fs, d->d_name, ours, sizeof ours))
			held++;
		if (j != CLAIM_GONE || (size_t)flen >= sizeof file)
			continue;
		snprintf(file, sizeof file, "%.*s", (int)flen, d->d_name);
		box_path(s, dst, agent, "new", file);
		if (unclaim(s, agent, src, dst, file) == 0) {
			fs_show_name(shown, sizeof shown, file);
			fs_warn(s, "returned %s to %s's inbox: its claimer died",
			    shown, agent);
			back++;
		}
	}
	closedir(dir);
	box_of(s, agent)->held = held;
	return back;
}

/* Rename new/<f> to its claim in cur/: 1 done, 0 another reader has
 * it, -1 error. A claim of this process already under that name (a
 * relay's lease on another sender's message of the same id) must not be
 * replaced: this message waits until that one is settled. Only this
 * process makes claims under its names, so looking first is no race,
 * and needs no renameat2() (NFS has none, and a link() stand-in would
 * let two claimers both win). */
static int
move_claim(struct spool *s, const char *agent, const char *src,
    const char *dst, const char *name, struct err *e)
{
	struct stat st;

	if (lstat(dst, &st) == 0)
		return 0;
	if (errno != ENOENT && errno != ENOTDIR)
		return err_sys(e, "cannot claim %s", name);
	if (rename(src, dst) == 0)
		return 1;
	if (errno == ENOENT) {
		/* Claimed by another reader, or cur/ went missing. */
		if (access(src, F_OK) < 0)
			return 0;
		if (make_box(s, agent, e) < 0)
			return -1;
		if (rename(src, dst) == 0)
			return 1;
		if (errno == ENOENT)
			return 0;
	}
	return err_sys(e, "cannot claim %s", name);
}

/* Claim it: rename it into cur/ under this process's claim name, once
 * the process holds its claimer lock (claim.h), which tells a reader in
 * another pid namespace that it lives. */
int
fs_take(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct spool_claim *c, struct err *e)
{
	struct fs *fs = s->impl;
	char src[P], dst[P], locks[P], file[ID_MAX_LEN + 200];
	struct box *b;
	int rc;

	box_path(s, src, agent, "new", it->name);
	snprintf(file, sizeof file, "%s.claim.%s.%ld", it->name, fs_host(fs),
	    (long)getpid());
	box_path(s, dst, agent, "cur", file);
	claimers_dir(s, locks);
	claim_hold(locks, fs->host); /* without it, judged by the pid */
	if ((rc = move_claim(s, agent, src, dst, it->name, e)) <= 0)
		return rc;
	if ((b = box_of(s, agent))->n)
		b->n--; /* one fewer in new/ for count_of() */
	if ((rc = fs_decode_at(s, agent, dst, it, m, e)) < 0 &&
	    move_noreplace(dst, src) == 0)
		b->n++; /* back where it was, for a later try */
	if (rc <= 0)
		return rc;
	memset(c, 0, sizeof *c);
	snprintf(c->agent, sizeof c->agent, "%s", agent);
	snprintf(c->name, sizeof c->name, "%s", it->name);
	c->path = xstrdup(dst);
	return 1;
}

/* A claim settled. */
static void
settled(struct spool_claim *c)
{
	free(c->path);
	c->path = NULL;
}

/* Keep the claim c as cur/<name>, never over a message kept there: one
 * from the same sender is this message again (a retried send), kept
 * once; another sender's under its id stays, and this one is kept
 * beside it, as cur/<name>.<time>. */
static int
keep_claim(struct spool *s, struct spool_claim *c, struct err *e)
{
	char dir[P], dst[P];
	int rc;

	box_path(s, dst, c->agent, "cur", c->name);
	if ((rc = move_noreplace(c->path, dst)) == 0)
		return 0;
	if (rc == 1 && same_sender(s, c->path, dst)) {
		if (unlink(c->path) == 0 || errno == ENOENT)
			return 0;
	} else if (rc == 1) {
		box_path(s, dir, c->agent, "cur", NULL);
		if (fs_move_dated(c->path, dir, c->name, dst) == 0) {
			fs_warn(s, "%s's cur/%s holds another sender's message "
			    "under its id — kept this one as cur/%s", c->agent,
			    c->name, strrchr(dst, '/') + 1);
			return 0;
		}
	}
	return err_sys(e, "cannot keep %s", c->name);
}

int
fs_ack(struct spool *s, struct spool_claim *c, int keep, struct err *e)
{
	int rc = 0;

	if (keep) {
		rc = keep_claim(s, c, e);
	} else if (unlink(c->path) < 0 && errno != ENOENT) {
		rc = err_sys(e, "cannot delete %s", c->path);
	}
	settled(c);
	return rc;
}

int
fs_release(struct spool *s, struct spool_claim *c, struct err *e)
{
	char dst[P];
	int rc;

	box_path(s, dst, c->agent, "new", c->name);
	rc = unclaim(s, c->agent, c->path, dst, c->name);
	if (rc == 0)
		box_of(s, c->agent)->n++; /* back in new/ */
	if (rc < 0)
		err_sys(e, "cannot return %s to the inbox", c->name);
	settled(c);
	return rc < 0 ? -1 : 0;
}
