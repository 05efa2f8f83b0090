/* spool-fs: the spool interface on the Maildir tree of PROTOCOL.md 2 —
 * the tree, its inboxes and the send. Writing a message into its
 * recipients' inboxes is in spool-fs-write.c, agent records in
 * spool-fs-agents.c, reading in spool-fs-read.c and claims in
 * spool-fs-claim.c; what they share is in spool-fs.h.
 *
 * Design rationale. A message is written once into the first recipient's
 * tmp/ and published into each recipient's new/ by link() (a copy moved
 * in with renameat2(NOREPLACE) where a link cannot be made), so a file
 * already in new/ is never replaced, and a channel of n members costs
 * one write and n links. Every new/ is looked at first: a message under
 * the same id from another sender refuses the send before anything is
 * stored or pushed. Files in new/ are immutable
 * from then on, which is why a listing may keep the bytes it read and a
 * claim need not read them again. */
#include <dirent.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "claim.h"
#include "io.h"
#include "spool.h"
#include "spool-fs.h"

#define BOX_RECHECK 10 /* seconds a long-lived sender trusts box_ok() */

void
fs_warn(struct spool *s, const char *fmt, ...)
{
	char line[700];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", s->prog, line);
}

void
agent_path(struct spool *s, char *out, const char *name)
{
	snprintf(out, P, "%s/agents/%s.json", fs_home(s), name);
}

void
box_path(struct spool *s, char *out, const char *agent, const char *sub,
    const char *file)
{
	if (file)
		snprintf(out, P, "%s/spool/%s/%s/%s", fs_home(s), agent, sub, file);
	else
		snprintf(out, P, "%s/spool/%s/%s", fs_home(s), agent, sub);
}

/* Whose directories the spool may hold: ours, root's, and those of
 * the home's owner -- root serving or using a user's spool (a relay run
 * as root, sudo, a container on a bind mount), or a network filesystem
 * that reports one owner for everything. Anyone else is a user who
 * swapped them in through a home left writable to them. */
static int
uid_trusted(struct spool *s, uid_t uid)
{
	struct stat st;

	if (uid == geteuid() || uid == 0)
		return 1;
	return stat(fs_home(s), &st) == 0 && st.st_uid == uid;
}

/* Refuse an inbox whose directories are not plain directories of
 * ours: a symlink planted there must not send a write or a claim
 * elsewhere, and one another user made (in a home left writable to
 * them) would let them read what is sent and plant what is read. */
int
box_ok(struct spool *s, const char *name, struct err *e)
{
	static const char *subs[] = { "", NULL, "tmp", "new", "cur" };
	char path[P];
	struct stat st;
	size_t i;

	for (i = 0; i < 5; i++) {
		if (subs[i] && !*subs[i])
			snprintf(path, sizeof path, "%s/spool", fs_home(s));
		else if (subs[i])
			box_path(s, path, name, subs[i], NULL);
		else
			snprintf(path, sizeof path, "%s/spool/%s", fs_home(s), name);
		if (lstat(path, &st) < 0) {
			if (errno == ENOENT)
				continue; /* made on demand */
			return err_sys(e, "cannot check %s", path);
		}
		if (!S_ISDIR(st.st_mode))
			return err_set(e, BCH_PERM, "%s is not a directory (a "
			    "symlink?) — refusing to use it; run bch doctor for "
			    "the fix", path);
		if (!uid_trusted(s, st.st_uid))
			return err_set(e, BCH_PERM, "%s is owned by uid %ld, not "
			    "by you — refusing to use it; run bch doctor for the "
			    "fix", path, (long)st.st_uid);
	}
	return 0;
}

int
make_box(struct spool *s, const char *name, struct err *e)
{
	static const char *subs[] = { "tmp", "new", "cur" };
	char path[P];
	size_t i;

	for (i = 0; i < 3; i++) {
		box_path(s, path, name, subs[i], NULL);
		if (io_mkdirs(path, 0700) < 0)
			return err_sys(e, "cannot create %s", path);
	}
	return 0;
}

static size_t
name_hash(const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*name)
		h = (h ^ (unsigned char)*name++) * 16777619u;
	return h;
}

/* The box record of name, made on first use. */
struct box *
box_of(struct spool *s, const char *name)
{
	struct fs *fs = s->impl;
	struct box *b;
	size_t i;

	if (fs->capboxes) {
		for (b = fs->boxes[name_hash(name) & (fs->capboxes - 1)]; b;
		    b = b->next)
			if (strcmp(b->name, name) == 0)
				return b;
	}
	if (fs->nboxes >= fs->capboxes) {
		size_t cap = fs->capboxes ? fs->capboxes * 2 : 16;
		struct box **t = xcalloc(cap, sizeof *t);
		for (i = 0; i < fs->capboxes; i++)
			while ((b = fs->boxes[i])) {
				fs->boxes[i] = b->next;
				b->next = t[name_hash(b->name) & (cap - 1)];
				t[name_hash(b->name) & (cap - 1)] = b;
			}
		free(fs->boxes);
		fs->boxes = t;
		fs->capboxes = cap;
	}
	b = xcalloc(1, sizeof *b);
	snprintf(b->name, sizeof b->name, "%s", name);
	b->spread = 50 + (int)(name_hash(name) % 100);
	i = name_hash(name) & (fs->capboxes - 1);
	b->next = fs->boxes[i];
	fs->boxes[i] = b;
	fs->nboxes++;
	return b;
}

/* A recheck period of secs, stretched or shrunk for b: the inboxes of
 * a channel, all checked by its first send, come due at different
 * sends after that instead of all at once in one send. */
static time_t
period(const struct box *b, time_t secs)
{
	return secs * b->spread / 100;
}

int
fs_box_checked(struct spool *s, const char *name, struct err *e)
{
	struct box *b = box_of(s, name);
	time_t now = time(NULL);

	if (b->ok_at && now - b->ok_at < period(b, BOX_RECHECK))
		return 0;
	if (box_ok(s, name, e) < 0)
		return -1;
	b->ok_at = now;
	return 0;
}

/* Does name have an agent record? Asked at most once a second. 1, 0
 * (none), -1 with e filled. */
static int
has_record(struct spool *s, const char *name, struct err *e)
{
	struct box *b = box_of(s, name);
	time_t now = time(NULL);
	char path[P];

	if (b->rec_at == now)
		return 1;
	agent_path(s, path, name);
	if (access(path, F_OK) < 0) {
		if (errno == ENOENT)
			return 0;
		return err_sys(e, "cannot read %s", path);
	}
	b->rec_at = now;
	return 1;
}

/* The size of name's inbox. A batch trusts its own count; a long-lived
 * sender counts again, since readers take messages away and other
 * senders add: every second once the inbox is half full, else about
 * every minute (period(); so the quota may be passed by what others
 * sent meanwhile). A fresh count is one taken this second: a sender
 * refused again and again costs one count a second, not one a send
 * (takes in this process keep n right meanwhile: fs_take()). */
static struct box *
count_of(struct spool *s, const char *name, int fresh)
{
	struct box *b = box_of(s, name);
	time_t now = time(NULL);
	char path[P];
	struct dirent *d;
	DIR *dir;

	if (b->at && (fresh ? b->at == now : s->batch ||
	    now - b->at < (b->n >= s->cfg->max_inbox / 2 ? 1 : period(b, 60))))
		return b;
	b->n = 0;
	b->at = now;
	box_path(s, path, name, "new", NULL);
	if ((dir = opendir(path))) {
		while ((d = readdir(dir)))
			if (d->d_name[0] != '.')
				b->n++;
		closedir(dir);
	}
	return b;
}

/* The recipients of m: one agent, or every subscriber but the sender. */
static int
recipients(struct spool *s, const struct msg *m, char ***out, size_t *n,
    struct err *e)
{
	struct fs *fs = s->impl;
	size_t i;
	char **r;
	int rc;

	*n = 0;
	if (m->to[0] == '@') {
		if ((rc = has_record(s, m->to + 1, e)) < 0)
			return -1;
		if (rc == 0) {
			err_set(e, BCH_PERM, "unknown agent \"%s\" — they must "
			    "run bch init %s first", m->to + 1, m->to + 1);
			return err_status(e, 404);
		}
		*out = xcalloc(2, sizeof **out);
		(*out)[(*n)++] = xstrdup(m->to + 1);
		return 0;
	}
	if (agents_load(s, e) < 0)
		return -1;
	r = xcalloc(fs->nagents + 1, sizeof *r);
	for (i = 0; i < fs->nagents; i++)
		if (strcmp(fs->agents[i].name, m->from) != 0 &&
		    agent_has_sub(&fs->agents[i], m->to) >= 0)
			r[(*n)++] = xstrdup(fs->agents[i].name);
	if (*n == 0) {
		free(r);
		return err_set(e, BCH_PERM, "channel %s has no other subscribers "
		    "— nothing to deliver", m->to);
	}
	*out = r;
	return 0;
}

/* Move src to dst unless dst exists. 0 moved, 1 dst was there, -1. */
int
move_noreplace(const char *src, const char *dst)
{
	if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EEXIST)
		return 1;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (link(src, dst) < 0)
		return errno == EEXIST ? 1 : -1;
	return unlink(src) < 0 ? -1 : 0;
}

/* One more message added to name's new/ (spool-fs.h). A count taken
 * goes up by one; none is taken here, as it would read new/ with the
 * message in it and then count it twice, refusing the inbox before it
 * is full. */
void
fs_added(struct spool *s, const char *name)
{
	struct box *c = box_of(s, name);

	if (c->at)
		c->n++;
}

/* name's new/ holds a message sent: its directory is to be synced, also
 * when the sender's copy was there before, from a try that may have
 * died before its sync. */
static void
to_sync(struct spool *s, const char *name)
{
	struct fs *fs = s->impl;
	struct box *c = box_of(s, name);

	if (c->dirty)
		return;
	c->dirty = 1;
	if (fs->ndirty == fs->capdirty) {
		fs->capdirty = fs->capdirty ? fs->capdirty * 2 : 16;
		fs->dirty = xrealloc(fs->dirty, fs->capdirty * sizeof *fs->dirty);
	}
	fs->dirty[fs->ndirty++] = c;
}

static int
sync_boxes(struct spool *s, struct err *e)
{
	struct fs *fs = s->impl;
	char path[P];

	while (fs->ndirty) {
		struct box *b = fs->dirty[fs->ndirty - 1];
		box_path(s, path, b->name, "new", NULL);
		if (s->cfg->fsync && io_fsyncdir(path) < 0)
			return err_sys(e, "cannot sync %s", path);
		b->dirty = 0;
		fs->ndirty--;
	}
	return 0;
}

int
fs_room(struct spool *s, char **r, size_t n, struct err *e)
{
	size_t i;

	for (i = 0; i < n; i++) {
		/* Refuse only on a fresh count: a cached one may be stale. */
		if (count_of(s, r[i], 0)->n >= s->cfg->max_inbox &&
		    count_of(s, r[i], 1)->n >= s->cfg->max_inbox) {
			err_set(e, BCH_TEMP, "inbox of %s is full (%zu messages) — "
			    "they must drain it first", r[i], s->cfg->max_inbox);
			return err_status(e, 507);
		}
	}
	return 0;
}

static int
fs_send(struct spool *s, struct msg *m, struct err *e)
{
	struct buf b = BUF_INIT;
	char **r = NULL;
	size_t n = 0, i;
	int rc;

	if (spool_prepare(s, m, e) < 0)
		return -1;
	if ((rc = has_record(s, m->from, e)) <= 0) {
		if (rc == 0)
			err_set(e, BCH_PERM, "%s is not registered here — run "
			    "bch init %s first", m->from, m->from);
		return -1;
	}
	rc = -1;
	if (recipients(s, m, &r, &n, e) < 0)
		return -1;
	if (spool_encode(s, m, &b, e) < 0 || fs_publish(s, r, n, m, &b, e) < 0)
		goto out;
	for (i = 0; i < n; i++)
		to_sync(s, r[i]);
	rc = (int)n;
	spool_set_rcpt(s, r, n);
	if (!s->batch && sync_boxes(s, e) < 0)
		rc = -1;
out:
	for (i = 0; i < n; i++)
		free(r[i]);
	free(r);
	buf_free(&b);
	return rc;
}

static int
fs_sync(struct spool *s, struct err *e)
{
	return sync_boxes(s, e);
}

static void
fs_close(struct spool *s)
{
	struct fs *fs = s->impl;
	struct box *b;
	size_t i;

	if (fs->ino >= 0)
		close(fs->ino);
	for (i = 0; i < fs->capboxes; i++)
		while ((b = fs->boxes[i])) {
			fs->boxes[i] = b->next;
			box_claims_drop(b);
			free(b);
		}
	free(fs->boxes);
	free(fs->dirty);
	agents_drop(fs);
	free(fs);
	free(s);
}

static const struct spool_ops fs_ops = {
	fs_reg, fs_agents, fs_subscribe, fs_send, fs_sync, fs_list, fs_peek,
	fs_take, fs_ack, fs_release, fs_wait, fs_await, fs_close, fs_scan,
	NULL, /* arrived: a listing here is never cut */
};

struct spool *
spool_fs_open(struct config *c, const char *prog, struct err *e)
{
	struct spool *s;
	struct fs *fs;
	struct stat st;

	if (stat(c->home, &st) == 0 && !S_ISDIR(st.st_mode)) {
		err_set(e, BCH_PERM, "%s is not a directory — fix "
		    "BACKCHANNEL_HOME", c->home);
		return NULL;
	}
	s = xcalloc(1, sizeof *s);
	fs = xcalloc(1, sizeof *fs);
	s->ops = &fs_ops;
	s->cfg = c;
	s->prog = prog;
	s->impl = fs;
	s->keep_raw = 256 * 1024;
	fs->ino = fs->wd = -1;
	return s;
}
