/* spool-fs-read: reading an inbox of the Maildir spool — listing and
 * scanning new/, peeking, and setting aside what is not a message
 * (claims are in spool-fs-claim.c, waiting in spool-fs-wait.c).
 *
 * Design rationale. Files in new/ are never replaced (spool-fs.c), so a
 * listing may keep the bytes it read and a claim need not read them
 * again. A file that can never be read as a message is moved to
 * corrupt/, kept for bch doctor to report, not deleted. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "claim.h"
#include "io.h"
#include "spool.h"
#include "spool-fs.h"

void
fs_show_name(char *out, size_t outsz, const char *in)
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

/* Does errnum say that the file itself can never be read as a message
 * (a link, not a regular file, too big, not ours to read), rather than
 * that reading failed for now (out of descriptors or memory, an I/O
 * error)? Only the first kind is set aside; the second is an error, and
 * the file stays for the next reader. */
static int
file_bad(int errnum)
{
	switch (errnum) {
	case ELOOP:
	case EINVAL:
	case EFBIG:
	case ENXIO:
	case EISDIR:
	case EACCES:
	case EPERM:
		return 1;
	}
	return 0;
}

/* Move src into dir as name.<time>, never over a file there (one moved
 * under the name in the same second): then name.<time>.1 and on. 0 with
 * the name used in out (P bytes), or -1 with errno (EEXIST: every name
 * was taken). */
int
fs_move_dated(const char *src, const char *dir, const char *name, char *out)
{
	long now = (long)time(NULL);
	int n, rc;

	snprintf(out, P, "%s/%.200s.%ld", dir, name, now);
	for (n = 1; (rc = move_noreplace(src, out)) == 1 && n < 100; n++)
		snprintf(out, P, "%s/%.200s.%ld.%d", dir, name, now, n);
	if (rc == 1)
		errno = EEXIST;
	return rc == 0 ? 0 : -1;
}

/* Move a file that cannot be read as a message out of the way. */
void
fs_set_aside(struct spool *s, const char *agent, const char *path,
    const char *name, const char *why)
{
	char dir[P], dst[P], shown[300];
	struct stat st;

	box_path(s, dir, agent, "corrupt", NULL);
	fs_show_name(shown, sizeof shown, name);
	if (io_mkdirs(dir, 0700) < 0) {
		fs_warn(s, "corrupt message %s in %s's inbox (%s), and cannot "
		    "create %s: %s", shown, agent, why, dir, strerror(errno));
		return;
	}
	/* As box_ok() does for tmp/, new/ and cur/: a symlink planted as
	 * corrupt/ must not carry a file out of the spool. */
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fs_warn(s, "corrupt message %s in %s's inbox (%s), left in new/: "
		    "%s is not a directory (a symlink?) — run bch doctor for "
		    "the fix", shown, agent, why, dir);
		return;
	}
	if (fs_move_dated(path, dir, name, dst) < 0) {
		if (errno != ENOENT)
			fs_warn(s, "corrupt message %s in %s's inbox (%s), and cannot "
			    "move it aside: %s", shown, agent, why,
			    strerror(errno));
		return;
	}
	fs_warn(s, "corrupt message %s in %s's inbox (%s) — moved to "
	    "spool/%s/corrupt/", shown, agent, why, agent);
}

/* Read the file at path (named name in agent's box) into b: 1 read; 0
 * gone, or set aside as never a message; -1 not readable for now (e
 * says why), the file left where it is. */
static int
read_file(struct spool *s, const char *agent, const char *path,
    const char *name, struct buf *b, struct err *e)
{
	int saved;

	if (io_readfile(AT_FDCWD, path, s->cfg->rlim.total + 1, b) == 0)
		return 1;
	saved = errno;
	buf_free(b);
	if (saved == ENOENT)
		return 0; /* another reader claimed it */
	if (!file_bad(saved)) {
		errno = saved;
		return err_sys(e, "cannot read %s", path);
	}
	fs_set_aside(s, agent, path, name, strerror(saved));
	return 0;
}

/* Decode the bytes of the file at path into m: 1, or 0 with the file set
 * aside as not a message. */
static int
decoded(struct spool *s, const char *agent, const char *path,
    const char *name, const struct buf *b, struct msg *m)
{
	struct err bad;

	if (msg_decode(b->p, b->len, 0, &s->cfg->rlim, m, &bad) == 0)
		return 1;
	fs_set_aside(s, agent, path, name, bad.msg);
	return 0;
}

const char *
fs_host(struct fs *fs)
{
	if (!fs->host[0])
		claim_host(fs->host, sizeof fs->host);
	return fs->host;
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
 * *kept stays within keep. 1 listed, 0 not a message (set aside) or gone,
 * -1 it could not be read for now. */
static int
list_one(struct spool *s, const char *agent, const char *name,
    struct spool_item *it, size_t *kept, size_t keep, struct err *e)
{
	char path[P];
	struct buf b = BUF_INIT;
	struct msg m;
	int rc;

	memset(it, 0, sizeof *it);
	box_path(s, path, agent, "new", name);
	if (!msg_file(name, it->id)) {
		if (name[0] != '.')
			fs_set_aside(s, agent, path, name, "not a message file name");
		return 0;
	}
	if ((rc = read_file(s, agent, path, name, &b, e)) <= 0)
		return rc;
	if (!decoded(s, agent, path, name, &b, &m)) {
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
	int rc = 0;

	if (box_ok(s, agent, e) < 0)
		return -1;
	b = box_of(s, agent);
	b->ok_at = time(NULL);
	fs_recover(s, agent);
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
		rc = list_one(s, agent, d->d_name, &it, &kept, keep, e);
		if (rc < 0)
			break;
		if (rc) {
			fn(arg, &it);
			seen++;
		}
	}
	closedir(dir);
	if (rc < 0)
		return -1;
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

int
fs_list(struct spool *s, const char *agent, struct spool_item **items,
    size_t *n, struct err *e)
{
	struct listing l = { NULL, 0, 0 };
	int rc;

	rc = walk(s, agent, s->keep_raw, list_add, &l, e);
	if (rc < 0) {
		spool_items_free(l.it, l.n);
		l.it = NULL;
		l.n = 0;
	}
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
int
fs_scan(struct spool *s, const char *agent,
    void (*fn)(void *, const struct spool_item *), void *arg, struct err *e)
{
	struct scan sc = { fn, arg };

	return walk(s, agent, 0, scan_one, &sc, e);
}

/* Decode the message at path: 1 done, 0 gone or not a message (set
 * aside), -1 it could not be read for now (e says why). */
int
fs_decode_at(struct spool *s, const char *agent, const char *path,
    const struct spool_item *it, struct msg *m, struct err *e)
{
	struct buf b = BUF_INIT;
	int rc;

	if (it->raw) {
		b.p = it->raw; /* the listing's bytes, still its to free */
		b.len = it->rawlen;
		return decoded(s, agent, path, it->name, &b, m);
	}
	if ((rc = read_file(s, agent, path, it->name, &b, e)) <= 0)
		return rc;
	rc = decoded(s, agent, path, it->name, &b, m);
	buf_free(&b);
	return rc;
}

int
fs_peek(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct err *e)
{
	char path[P];

	box_path(s, path, agent, "new", it->name);
	return fs_decode_at(s, agent, path, it, m, e);
}
