/* spool-fs: the spool interface on the Maildir tree of PROTOCOL.md 2.
 *
 * Design rationale. A message is written once into the first recipient's
 * tmp/ and published into each recipient's new/ by renameat2(NOREPLACE)
 * or link(), so a file already in new/ is never replaced, and a channel
 * of n members costs one write and n links. Files in new/ are immutable
 * from then on, which is why a listing may keep the bytes it read and a
 * claim need not read them again. A claim renames new/<f> to
 * cur/<f>.claim.<host>.<pid>: the rename is the lock, and a claim whose
 * process died is found by the next reader and put back. */
#include <dirent.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "claim.h"
#include "io.h"
#include "spool.h"

#define P 4200 /* room for home (PATH_MAX) plus our own components */
#define BOX_RECHECK 10 /* seconds a long-lived sender trusts box_ok() */

/* What this process knows of one inbox. A long-lived sender (the relay)
 * trusts it for a while instead of asking the file system on every
 * send; a one-shot program starts with nothing. */
struct box {
	char name[NAME_MAX_LEN + 1];
	size_t n;      /* messages in new/, counted at `at` plus our sends */
	time_t at;     /* when n was counted */
	time_t ok_at;  /* when box_ok() last passed */
	time_t rec_at; /* when the agent record was last seen there */
	int spread;    /* 50..149: this inbox's share of a recheck period */
	int dirty;     /* new/ has entries not yet synced */
	struct box *next; /* hash chain */
};

struct fs {
	char host[64];
	int ino; /* inotify descriptor, -1 until spool_wait() */
	int wd;  /* watch on the inbox's new/, -1 when not armed */
	struct box **boxes; /* hash table by name */
	size_t nboxes, capboxes;
	struct box **dirty; /* boxes to sync, each once */
	size_t ndirty, capdirty;
	/* The agent records, kept while agents/ is unchanged (see
	 * agents_fresh()); loaded on a channel send or a listing. */
	struct agent_rec *agents;
	size_t nagents;
	int agents_ok;
	struct stat agents_st;
};

static void
warn(struct spool *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#include <stdarg.h>
static void
warn(struct spool *s, const char *fmt, ...)
{
	char line[700];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s\n", s->prog, line);
}

static const char *
home(struct spool *s)
{
	return s->cfg->home;
}

static void
agent_path(struct spool *s, char *out, const char *name)
{
	snprintf(out, P, "%s/agents/%s.json", home(s), name);
}

static void
box_path(struct spool *s, char *out, const char *agent, const char *sub,
    const char *file)
{
	if (file)
		snprintf(out, P, "%s/spool/%s/%s/%s", home(s), agent, sub, file);
	else
		snprintf(out, P, "%s/spool/%s/%s", home(s), agent, sub);
}

static int
lock_agents(struct spool *s, struct err *e)
{
	char path[P];
	int fd;

	snprintf(path, sizeof path, "%s/agents/.lock", home(s));
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return err_sys(e, "cannot open %s", path);
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			err_sys(e, "cannot lock %s", path);
			close(fd);
			return -1;
		}
	}
	return fd;
}

static void
unlock_agents(int fd)
{
	close(fd); /* closing releases the flock */
}

static int
read_agent(struct spool *s, const char *name, struct agent_rec *a,
    struct err *e)
{
	char path[P];
	struct buf b = BUF_INIT;
	int rc;

	agent_path(s, path, name);
	if (io_readfile(AT_FDCWD, path, 256 * 1024, &b) < 0) {
		if (errno == ENOENT)
			err_set(e, BCH_PERM, "unknown agent \"%s\" — they must run "
			    "bch init %s first", name, name);
		else
			err_sys(e, "cannot read %s", path);
		buf_free(&b);
		return -1;
	}
	rc = agent_decode(b.p, b.len, a, e);
	if (rc < 0)
		err_set(e, BCH_PERM, "agent record %s is corrupt — run bch "
		    "init %s again", path, name);
	buf_free(&b);
	return rc;
}

static int
write_agent(struct spool *s, const struct agent_rec *a, int sync,
    struct err *e)
{
	char path[P];
	struct buf b = BUF_INIT;
	int rc;

	agent_path(s, path, a->name);
	agent_encode(a, &b, 1);
	buf_addc(&b, '\n');
	rc = io_replace(path, b.p, b.len, sync && s->cfg->fsync, e);
	buf_free(&b);
	return rc;
}

/* Refuse an inbox whose directories are not plain directories: a
 * symlink planted there must not send a write or a claim elsewhere. */
static int
box_ok(struct spool *s, const char *name, struct err *e)
{
	static const char *subs[] = { NULL, "tmp", "new", "cur" };
	char path[P];
	struct stat st;
	size_t i;

	for (i = 0; i < 4; i++) {
		if (subs[i])
			box_path(s, path, name, subs[i], NULL);
		else
			snprintf(path, sizeof path, "%s/spool/%s", home(s), name);
		if (lstat(path, &st) < 0) {
			if (errno == ENOENT)
				continue; /* made on demand */
			return err_sys(e, "cannot check %s", path);
		}
		if (!S_ISDIR(st.st_mode))
			return err_set(e, BCH_PERM, "%s is not a directory (a "
			    "symlink?) — refusing to use it; run bch doctor for "
			    "the fix", path);
	}
	return 0;
}

static int
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

static int
fs_reg(struct spool *s, const char *name, const char *token_hash,
    struct agent_rec *out, struct err *e)
{
	struct agent_rec a;
	char path[P];
	int fd, rc;

	snprintf(path, sizeof path, "%s/agents", home(s));
	if (io_mkdirs(path, 0700) < 0)
		return err_sys(e, "cannot create %s", path);
	chmod(home(s), 0700);
	if (make_box(s, name, e) < 0)
		return -1;
	if ((fd = lock_agents(s, e)) < 0)
		return -1;
	if (read_agent(s, name, &a, NULL) < 0) {
		memset(&a, 0, sizeof a);
		snprintf(a.name, sizeof a.name, "%s", name);
		ts_now(a.created);
	}
	ts_now(a.seen);
	if (token_hash) {
		free(a.token_hash);
		a.token_hash = xstrdup(token_hash);
	}
	rc = write_agent(s, &a, 1, e);
	unlock_agents(fd);
	((struct fs *)s->impl)->agents_ok = 0;
	if (rc == 0 && out)
		*out = a;
	else
		agent_free(&a);
	return rc;
}

static int
read_agents(struct spool *s, struct agent_rec **list, size_t *n,
    struct err *e)
{
	char path[P];
	struct agent_rec *out = NULL;
	size_t cap = 0, w = 0;
	struct dirent *d;
	DIR *dir;

	snprintf(path, sizeof path, "%s/agents", home(s));
	*list = NULL;
	*n = 0;
	if (!(dir = opendir(path))) {
		if (errno == ENOENT)
			return 0;
		return err_sys(e, "cannot read %s", path);
	}
	while ((d = readdir(dir))) {
		size_t len = strlen(d->d_name);
		char stem[NAME_MAX_LEN + 1];
		struct err ignored;
		if (d->d_name[0] == '.' || len < 6 || len - 5 > NAME_MAX_LEN ||
		    strcmp(d->d_name + len - 5, ".json") != 0)
			continue;
		memcpy(stem, d->d_name, len - 5);
		stem[len - 5] = 0;
		if (!name_valid(stem))
			continue;
		if (w == cap) {
			cap = cap ? cap * 2 : 16;
			out = xrealloc(out, cap * sizeof *out);
		}
		if (read_agent(s, stem, &out[w], &ignored) < 0) {
			if (errno != ENOENT)
				warn(s, "skipping agent record %s: %s", stem,
				    ignored.msg);
			continue;
		}
		w++;
	}
	closedir(dir);
	*list = out;
	*n = w;
	return 0;
}

static void
agents_drop(struct fs *fs)
{
	agent_list_free(fs->agents, fs->nagents);
	fs->agents = NULL;
	fs->nagents = 0;
	fs->agents_ok = 0;
}

/* Bring fs->agents up to date. Records are replaced by rename, so any
 * change moves the mtime of agents/; a change within the same clock tick
 * as the one seen would not, so a listing is trusted only when agents/
 * had been still for 50 ms before it was read. */
static int
agents_load(struct spool *s, struct err *e)
{
	struct fs *fs = s->impl;
	struct timespec now;
	struct stat st;
	char path[P];
	long long still;

	snprintf(path, sizeof path, "%s/agents", home(s));
	memset(&st, 0, sizeof st);
	if (stat(path, &st) < 0 && errno != ENOENT)
		return err_sys(e, "cannot read %s", path);
	if (fs->agents_ok && st.st_ino == fs->agents_st.st_ino &&
	    st.st_dev == fs->agents_st.st_dev &&
	    st.st_mtim.tv_sec == fs->agents_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == fs->agents_st.st_mtim.tv_nsec)
		return 0;
	agents_drop(fs);
	clock_gettime(CLOCK_REALTIME, &now);
	if (read_agents(s, &fs->agents, &fs->nagents, e) < 0)
		return -1;
	still = (long long)(now.tv_sec - st.st_mtim.tv_sec) * 1000 +
	    (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
	fs->agents_st = st;
	fs->agents_ok = still > 50;
	return 0;
}

static int
fs_agents(struct spool *s, struct agent_rec **list, size_t *n, struct err *e)
{
	struct fs *fs = s->impl;
	size_t i;

	if (agents_load(s, e) < 0)
		return -1;
	*list = xcalloc(fs->nagents + 1, sizeof **list);
	for (i = 0; i < fs->nagents; i++)
		agent_copy(&(*list)[i], &fs->agents[i]);
	*n = fs->nagents;
	return 0;
}

static int
fs_subscribe(struct spool *s, const char *agent, const char *channel,
    int on, struct err *e)
{
	struct agent_rec a;
	int fd, k, rc = 0;

	if ((fd = lock_agents(s, e)) < 0)
		return -1;
	if (read_agent(s, agent, &a, e) < 0) {
		unlock_agents(fd);
		return -1;
	}
	k = agent_has_sub(&a, channel);
	if (on && k < 0) {
		a.subs = xrealloc(a.subs, (a.nsubs + 2) * sizeof *a.subs);
		a.subs[a.nsubs++] = xstrdup(channel);
		a.subs[a.nsubs] = NULL;
		rc = 1;
	} else if (!on && k >= 0) {
		free(a.subs[k]);
		memmove(a.subs + k, a.subs + k + 1,
		    (a.nsubs - (size_t)k) * sizeof *a.subs);
		a.nsubs--;
		rc = 1;
	}
	if (rc == 1 && write_agent(s, &a, 1, e) < 0)
		rc = -1;
	agent_free(&a);
	unlock_agents(fd);
	((struct fs *)s->impl)->agents_ok = 0;
	return rc;
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
static struct box *
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

/* box_ok(), at most once in about BOX_RECHECK seconds per inbox. */
static int
box_checked(struct spool *s, const char *name, struct err *e)
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
 * sent meanwhile). */
static struct box *
count_of(struct spool *s, const char *name, int fresh)
{
	struct box *b = box_of(s, name);
	time_t now = time(NULL);
	char path[P];
	struct dirent *d;
	DIR *dir;

	if (b->at && !fresh && (s->batch ||
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
static int
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

static int
write_file(const char *path, const struct buf *b, int sync, struct err *e)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);

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

/* Write data into r's tmp/, creating the inbox if it went missing. */
static int
write_tmp(struct spool *s, const char *r, const char *file,
    const struct buf *b, char *tmp, struct err *e)
{
	int rc;

	box_path(s, tmp, r, "tmp", file);
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

/* An id already in new/: the same sender sending it again (a retry) is
 * stored once; another sender's message under that id is refused, never
 * lost behind a success. 0 same sender, -1 with e filled. */
static int
same_sender(struct spool *s, const char *dst, const char *from,
    struct err *e)
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
		return 0;
	err_set(e, BCH_PERM, "message id already used by another message — "
	    "send with a new id");
	return err_status(e, 409);
}

static int
publish(struct spool *s, char **r, size_t n, const char *file,
    const char *from, const struct buf *b, struct err *e)
{
	char tmp[P], dst[P], tmp2[P];
	size_t i;
	int rc;

	for (i = 0; i < n; i++)
		if (box_checked(s, r[i], e) < 0)
			return -1;
	if (write_tmp(s, r[0], file, b, tmp, e) < 0)
		return -1;
	for (i = n; i-- > 0;) {
		box_path(s, dst, r[i], "new", file);
		if (i == 0) {
			rc = move_noreplace(tmp, dst);
			if (rc == 1) {
				unlink(tmp); /* that id was delivered already */
				if (same_sender(s, dst, from, e) < 0)
					return -1;
				rc = 0;
			}
		} else if ((rc = link(tmp, dst)) < 0 && errno == EEXIST) {
			if (same_sender(s, dst, from, e) < 0) {
				unlink(tmp);
				return -1;
			}
			rc = 0;
		} else if (rc < 0) {
			/* Another file system, or a box gone missing. */
			if (write_tmp(s, r[i], file, b, tmp2, e) < 0) {
				unlink(tmp);
				return -1;
			}
			rc = move_noreplace(tmp2, dst);
			if (rc == 1) { /* delivered already, as above */
				unlink(tmp2);
				if (same_sender(s, dst, from, e) < 0) {
					unlink(tmp);
					return -1;
				}
				rc = 0;
			}
		}
		if (rc < 0) {
			err_sys(e, "cannot deliver to %s", r[i]);
			unlink(tmp);
			return -1;
		}
	}
	return 0;
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

static int
fs_send(struct spool *s, struct msg *m, struct err *e)
{
	struct fs *fs = s->impl;
	char to[NAME_MAX_LEN + 3], file[ID_MAX_LEN + 8];
	struct buf b = BUF_INIT;
	char **r = NULL;
	size_t n = 0, i;
	int rc = -1;

	if (!m->from || !name_valid(m->from))
		return err_set(e, BCH_PERM, "invalid sender name");
	if (target_parse(m->to, to, sizeof to, e) < 0 ||
	    msg_check(m, &s->cfg->lim, e) < 0)
		return -1;
	if ((rc = has_record(s, m->from, e)) <= 0) {
		if (rc == 0)
			err_set(e, BCH_PERM, "%s is not registered here — run "
			    "bch init %s first", m->from, m->from);
		return -1;
	}
	rc = -1;
	free(m->to);
	m->to = xstrdup(to);
	if (!m->id[0] && uuid_v4(m->id) < 0)
		return err_sys(e, "cannot get random bytes for an id");
	if (!id_valid(m->id))
		return err_set(e, BCH_PERM, "invalid message id");
	ts_now(m->ts);
	if (recipients(s, m, &r, &n, e) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		/* Refuse only on a fresh count: a cached one may be stale. */
		if (count_of(s, r[i], 0)->n >= s->cfg->max_inbox &&
		    count_of(s, r[i], 1)->n >= s->cfg->max_inbox) {
			err_set(e, BCH_TEMP, "inbox of %s is full (%zu messages) — "
			    "they must drain it first", r[i], s->cfg->max_inbox);
			err_status(e, 507);
			goto out;
		}
	}
	msg_encode(m, &b);
	buf_addc(&b, '\n');
	if (b.len > s->cfg->lim.total) {
		err_set(e, BCH_PERM, "message is %zu bytes encoded, over the "
		    "limit of %zu", b.len, s->cfg->lim.total);
		err_status(e, 413);
		goto out;
	}
	snprintf(file, sizeof file, "%s.json", m->id);
	if (publish(s, r, n, file, m->from, &b, e) < 0)
		goto out;
	for (i = 0; i < n; i++) {
		struct box *c = count_of(s, r[i], 0);
		c->n++;
		if (!c->dirty) {
			c->dirty = 1;
			if (fs->ndirty == fs->capdirty) {
				fs->capdirty = fs->capdirty ? fs->capdirty * 2 : 16;
				fs->dirty = xrealloc(fs->dirty,
				    fs->capdirty * sizeof *fs->dirty);
			}
			fs->dirty[fs->ndirty++] = c;
		}
	}
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
show_name(char *out, size_t outsz, const char *in)
{
	size_t i, w = 0;

	for (i = 0; in[i] && w + 5 < outsz; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c < 0x20 || c >= 0x7f)
			w += (size_t)snprintf(out + w, outsz - w, "\\x%02x", c);
		else
			out[w++] = (char)c;
	}
	out[w] = 0;
}

/* Move a file that cannot be read as a message out of the way. */
static void
set_aside(struct spool *s, const char *agent, const char *path,
    const char *name, const char *why)
{
	char dir[P], dst[P], shown[300];

	box_path(s, dir, agent, "corrupt", NULL);
	show_name(shown, sizeof shown, name);
	if (io_mkdirs(dir, 0700) < 0) {
		warn(s, "corrupt message %s in %s's inbox (%s), and cannot "
		    "create %s: %s", shown, agent, why, dir, strerror(errno));
		return;
	}
	snprintf(dst, sizeof dst, "%s/%.200s.%ld", dir, name, (long)time(NULL));
	if (rename(path, dst) < 0) {
		if (errno != ENOENT)
			warn(s, "corrupt message %s in %s's inbox (%s), and cannot "
			    "move it aside: %s", shown, agent, why,
			    strerror(errno));
		return;
	}
	warn(s, "corrupt message %s in %s's inbox (%s) — moved to "
	    "spool/%s/corrupt/", shown, agent, why, agent);
}

/* Parse "<file>.claim.<host>.<pid>"; 1 if it is a claim of ours whose
 * process is gone, with the original file name in file. */
static int
stale_claim(struct fs *fs, const char *name, char *file, size_t filesz)
{
	char host[sizeof fs->host];
	ssize_t n;
	long pid;

	n = claim_parse(name, host, sizeof host, &pid);
	if (n < 0 || (size_t)n >= filesz || strcmp(host, fs->host) != 0 ||
	    pid == (long)getpid() || io_pid_alive((pid_t)pid))
		return 0;
	memcpy(file, name, (size_t)n);
	file[n] = 0;
	return 1;
}

static void
recover_claims(struct spool *s, const char *agent)
{
	char path[P], src[P], dst[P], file[ID_MAX_LEN + 16];
	struct dirent *d;
	DIR *dir;

	box_path(s, path, agent, "cur", NULL);
	if (!(dir = opendir(path)))
		return;
	while ((d = readdir(dir))) {
		if (!stale_claim(s->impl, d->d_name, file, sizeof file))
			continue;
		box_path(s, src, agent, "cur", d->d_name);
		box_path(s, dst, agent, "new", file);
		switch (move_noreplace(src, dst)) {
		case 0:
			warn(s, "returned %s to %s's inbox: its claimer died",
			    file, agent);
			break;
		case 1:
			unlink(src); /* already back in new/ */
			break;
		}
	}
	closedir(dir);
}

/* Note that the agent is reading, at most once a minute. */
static void
touch_seen(struct spool *s, const char *agent)
{
	char path[P];
	struct agent_rec a;
	struct stat st;
	int fd;

	agent_path(s, path, agent);
	if (stat(path, &st) < 0 || time(NULL) - st.st_mtime < 60)
		return;
	if ((fd = lock_agents(s, NULL)) < 0)
		return;
	if (read_agent(s, agent, &a, NULL) == 0) {
		ts_now(a.seen);
		write_agent(s, &a, 0, NULL);
		agent_free(&a);
	}
	unlock_agents(fd);
}

/* Is name "<id>.json" with a usable id? Copies the id. */
static int
msg_file(const char *name, char *id)
{
	size_t len = strlen(name);

	if (name[0] == '.' || len < 6 || len - 5 > ID_MAX_LEN ||
	    strcmp(name + len - 5, ".json") != 0)
		return 0;
	memcpy(id, name, len - 5);
	id[len - 5] = 0;
	return id_valid(id);
}

/* Read new/<name> as a listing shows it; keep its bytes in it->raw while
 * *kept stays within keep. 1 listed, 0 not a message (set aside) or gone. */
static int
list_one(struct spool *s, const char *agent, const char *name,
    struct spool_item *it, size_t *kept, size_t keep)
{
	char path[P];
	struct buf b = BUF_INIT;
	struct msg m;
	struct err e;

	memset(it, 0, sizeof *it);
	box_path(s, path, agent, "new", name);
	if (!msg_file(name, it->id)) {
		if (name[0] != '.')
			set_aside(s, agent, path, name, "not a message file name");
		return 0;
	}
	if (io_readfile(AT_FDCWD, path, s->cfg->rlim.total + 1, &b) < 0) {
		int saved = errno;
		buf_free(&b);
		if (saved != ENOENT)
			set_aside(s, agent, path, name, strerror(saved));
		return 0; /* ENOENT: another reader claimed it */
	}
	if (msg_decode(b.p, b.len, 0, &s->cfg->rlim, &m, &e) < 0) {
		set_aside(s, agent, path, name, e.msg);
		buf_free(&b);
		return 0;
	}
	snprintf(it->ts, sizeof it->ts, "%s", m.ts);
	it->name = xstrdup(name);
	it->scope = m.scope;
	m.scope = NULL;
	it->urgent = m.urgent;
	msg_free(&m);
	if (*kept + b.len <= keep) {
		*kept += b.len;
		it->raw = b.p;
		it->rawlen = b.len;
	} else {
		buf_free(&b);
	}
	return 1;
}

/* The walk over agent's new/ that a listing and a scan share: dead
 * claimers' messages go back first, corrupt files are set aside, and
 * each message is handed to fn, whose it is then (with up to keep bytes
 * of stored JSON kept, over the whole walk). */
static int
walk(struct spool *s, const char *agent, size_t keep,
    void (*fn)(void *, struct spool_item *), void *arg, struct err *e)
{
	char path[P];
	struct spool_item it;
	size_t kept = 0, seen = 0;
	struct box *b;
	struct dirent *d;
	DIR *dir;

	if (box_ok(s, agent, e) < 0)
		return -1;
	b = box_of(s, agent);
	b->ok_at = time(NULL);
	recover_claims(s, agent);
	touch_seen(s, agent);
	box_path(s, path, agent, "new", NULL);
	if (!(dir = opendir(path))) {
		if (errno != ENOENT)
			return err_sys(e, "cannot read %s", path);
		agent_path(s, path, agent);
		if (access(path, F_OK) < 0)
			return err_set(e, BCH_PERM, "unknown agent \"%s\" — run "
			    "bch init %s first", agent, agent);
		return 0;
	}
	while ((d = readdir(dir))) {
		if (d->d_name[0] == '.')
			continue;
		if (list_one(s, agent, d->d_name, &it, &kept, keep)) {
			fn(arg, &it);
			seen++;
		}
	}
	closedir(dir);
	/* A sender in this process (the relay, on an SSE client's first
	 * listing) need not count this inbox again for a while. */
	b->n = seen;
	b->at = time(NULL);
	return 0;
}

struct listing {
	struct spool_item *it;
	size_t n, cap;
};

static void
list_add(void *arg, struct spool_item *it)
{
	struct listing *l = arg;

	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->it = xrealloc(l->it, l->cap * sizeof *l->it);
	}
	l->it[l->n++] = *it;
}

static int
fs_list(struct spool *s, const char *agent, struct spool_item **items,
    size_t *n, struct err *e)
{
	struct listing l = { NULL, 0, 0 };
	int rc;

	rc = walk(s, agent, s->keep_raw, list_add, &l, e);
	*items = l.it;
	*n = l.n;
	return rc;
}

struct scan {
	void (*fn)(void *, const struct spool_item *);
	void *arg;
};

static void
scan_one(void *arg, struct spool_item *it)
{
	struct scan *sc = arg;

	sc->fn(sc->arg, it);
	free(it->name);
	free(it->scope);
	free(it->raw);
}

/* A listing that keeps nothing: the caller keeps what it needs of each
 * item, and claims it later by id (the name is "<id>.json"). */
static int
fs_scan(struct spool *s, const char *agent,
    void (*fn)(void *, const struct spool_item *), void *arg, struct err *e)
{
	struct scan sc = { fn, arg };

	return walk(s, agent, 0, scan_one, &sc, e);
}

static int
decode_at(struct spool *s, const char *agent, const char *path,
    const struct spool_item *it, struct msg *m)
{
	struct buf b = BUF_INIT;
	struct err e;
	int rc;

	if (it->raw) {
		rc = msg_decode(it->raw, it->rawlen, 0, &s->cfg->rlim, m, &e);
		if (rc < 0)
			set_aside(s, agent, path, it->name, e.msg);
		return rc < 0 ? 0 : 1;
	}
	if (io_readfile(AT_FDCWD, path, s->cfg->rlim.total + 1, &b) < 0) {
		int saved = errno;
		buf_free(&b);
		if (saved == ENOENT)
			return 0;
		set_aside(s, agent, path, it->name, strerror(saved));
		return 0;
	}
	rc = msg_decode(b.p, b.len, 0, &s->cfg->rlim, m, &e);
	if (rc < 0)
		set_aside(s, agent, path, it->name, e.msg);
	buf_free(&b);
	return rc < 0 ? 0 : 1;
}

static int
fs_peek(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct err *e)
{
	char path[P];

	(void)e;
	box_path(s, path, agent, "new", it->name);
	return decode_at(s, agent, path, it, m);
}

static int
fs_take(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct spool_claim *c, struct err *e)
{
	struct fs *fs = s->impl;
	char src[P], dst[P], file[ID_MAX_LEN + 200];

	box_path(s, src, agent, "new", it->name);
	snprintf(file, sizeof file, "%s.claim.%s.%ld", it->name, fs->host,
	    (long)getpid());
	box_path(s, dst, agent, "cur", file);
	if (rename(src, dst) < 0) {
		if (errno == ENOENT) {
			/* Claimed by another reader, or cur/ went missing. */
			if (access(src, F_OK) < 0)
				return 0;
			if (make_box(s, agent, e) < 0)
				return -1;
			if (rename(src, dst) == 0)
				goto claimed;
			if (errno == ENOENT)
				return 0;
		}
		return err_sys(e, "cannot claim %s", it->name);
	}
claimed:
	if (decode_at(s, agent, dst, it, m) == 0)
		return 0;
	memset(c, 0, sizeof *c);
	snprintf(c->agent, sizeof c->agent, "%s", agent);
	snprintf(c->name, sizeof c->name, "%s", it->name);
	c->path = xstrdup(dst);
	return 1;
}

static int
fs_ack(struct spool *s, struct spool_claim *c, int keep, struct err *e)
{
	char dst[P];
	int rc = 0;

	if (keep) {
		box_path(s, dst, c->agent, "cur", c->name);
		if (rename(c->path, dst) < 0)
			rc = err_sys(e, "cannot keep %s", c->name);
	} else if (unlink(c->path) < 0 && errno != ENOENT) {
		rc = err_sys(e, "cannot delete %s", c->path);
	}
	free(c->path);
	c->path = NULL;
	return rc;
}

static int
fs_release(struct spool *s, struct spool_claim *c, struct err *e)
{
	char dst[P];
	int rc;

	box_path(s, dst, c->agent, "new", c->name);
	rc = move_noreplace(c->path, dst);
	if (rc == 1)
		unlink(c->path);
	if (rc < 0)
		err_sys(e, "cannot return %s to the inbox", c->name);
	free(c->path);
	c->path = NULL;
	return rc < 0 ? -1 : 0;
}

/* Arm a watch on agent's new/, making the inbox if it went missing. */
static int
arm(struct spool *s, const char *agent, struct err *e)
{
	struct fs *fs = s->impl;
	char path[P];
	uint32_t mask = IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF |
	    IN_MOVE_SELF | IN_ONLYDIR;

	box_path(s, path, agent, "new", NULL);
	fs->wd = inotify_add_watch(fs->ino, path, mask);
	if (fs->wd < 0 && errno == ENOENT) {
		agent_path(s, path, agent);
		if (access(path, F_OK) < 0)
			return err_set(e, BCH_PERM, "unknown agent \"%s\" — run "
			    "bch init %s first", agent, agent);
		if (make_box(s, agent, e) < 0)
			return -1;
		box_path(s, path, agent, "new", NULL);
		fs->wd = inotify_add_watch(fs->ino, path, mask);
	}
	if (fs->wd < 0)
		return err_sys(e, "cannot watch %s", path);
	return 0;
}

static int
fs_wait(struct spool *s, const char *agent, int timeout_ms, struct err *e)
{
	struct fs *fs = s->impl;
	char ev[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct pollfd pfd;
	ssize_t n;
	int rc;

	if (fs->ino < 0) {
		fs->ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (fs->ino < 0)
			return err_sys(e, "cannot start inotify");
	}
	if (fs->wd < 0)
		return arm(s, agent, e) < 0 ? -1 : 1;
	pfd.fd = fs->ino;
	pfd.events = POLLIN;
	rc = poll(&pfd, 1, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : err_sys(e, "cannot wait for messages");
	if (rc == 0)
		return 0;
	while ((n = read(fs->ino, ev, sizeof ev)) > 0) {
		char *p = ev;
		while (p < ev + n) {
			struct inotify_event *ie = (struct inotify_event *)p;
			if (ie->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
				fs->wd = -1;
			p += sizeof *ie + ie->len;
		}
	}
	if (n < 0 && errno != EAGAIN && errno != EINTR)
		return err_sys(e, "cannot read inotify events");
	if (fs->wd < 0) {
		/* The inbox went away: watch the new one (made if need be). */
		if (arm(s, agent, e) < 0)
			return -1;
	}
	return 1;
}

/* Read receipts: a message has been read by r once <id>.json has left
 * r's new/ (claimed, or claimed and deleted). */
static int
all_read(struct spool *s, const char *id, char **rcpt, size_t n, int *got)
{
	char path[P], file[ID_MAX_LEN + 8];
	size_t i;
	int all = 1;

	snprintf(file, sizeof file, "%s.json", id);
	for (i = 0; i < n; i++) {
		box_path(s, path, rcpt[i], "new", file);
		got[i] = access(path, F_OK) < 0 && errno == ENOENT;
		all &= got[i];
	}
	return all;
}

static int
fs_await(struct spool *s, const char *id, char **rcpt, size_t n,
    int timeout_ms, int *got, struct err *e)
{
	char path[P];
	struct timespec t0;
	size_t i;
	int ino, rc;

	if (!id_valid(id))
		return err_set(e, BCH_PERM, "invalid message id");
	if (timeout_ms == 0 || all_read(s, id, rcpt, n, got))
		return all_read(s, id, rcpt, n, got);
	if ((ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK)) < 0)
		return err_sys(e, "cannot start inotify");
	for (i = 0; i < n; i++) {
		box_path(s, path, rcpt[i], "new", NULL);
		if (inotify_add_watch(ino, path, IN_MOVED_FROM | IN_DELETE |
		    IN_DELETE_SELF | IN_ONLYDIR) < 0 && errno != ENOENT) {
			err_sys(e, "cannot watch %s", path);
			close(ino);
			return -1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	/* Armed: look again, then sleep until something leaves a new/. */
	while (!(rc = all_read(s, id, rcpt, n, got))) {
		char ev[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
		struct pollfd p = { ino, POLLIN, 0 };
		long left = timeout_ms;
		if (timeout_ms > 0 && (left -= io_ms_since(&t0)) <= 0)
			break;
		if (poll(&p, 1, timeout_ms < 0 ? -1 : (int)left) < 0 &&
		    errno != EINTR) {
			rc = err_sys(e, "cannot wait for the reader");
			break;
		}
		while (read(ino, ev, sizeof ev) > 0)
			;
	}
	close(ino);
	return rc;
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
	claim_host(fs->host, sizeof fs->host);
	return s;
}
