/* spool-fs-agents: the agent records of the Maildir spool, agents/<name>.json:
 * registering, subscribing, and the list a relay keeps of them. Every
 * change is a read-modify-write under a lock on agents/, written by atomic
 * replace, so concurrent subscribes lose nothing (PROTOCOL.md 2). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "io.h"
#include "spool.h"
#include "spool-fs.h"

int
lock_agents(struct spool *s, struct err *e)
{
	char path[P];
	int fd;

	snprintf(path, sizeof path, "%s/agents/.lock", fs_home(s));
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

void
unlock_agents(int fd)
{
	close(fd); /* closing releases the flock */
}

int
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
	buf_free(&b);
	if (rc < 0) {
		errno = EINVAL;
		return err_set(e, BCH_PERM, "agent record %s is corrupt — run "
		    "bch init %s again", path, name);
	}
	/* The file name is the agent. A record naming another (hand-edited,
	 * copied from another's) is refused whole: trusted, its name would
	 * turn a change to it into a write of the other's record, and its
	 * tokenHash into a token that speaks for the other. */
	if (strcmp(a->name, name) != 0) {
		err_set(e, BCH_PERM, "agent record %s names \"%s\", not \"%s\" "
		    "— set its \"name\" to \"%s\" or run bch init %s "
		    "again", path, a->name, name, name, name);
		agent_free(a);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int
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

/* A home another user owns is theirs to open up, and to swap spool/ or
 * agents/ for their own: they would read the mail and plant messages.
 * Refused before anything is made in it (a local bch init). */
static int
home_mine(struct spool *s, struct err *e)
{
	struct stat st;

	if (stat(fs_home(s), &st) < 0 || st.st_uid == geteuid())
		return 0; /* made below, by us */
	return err_set(e, BCH_PERM, "%s is owned by uid %ld, not by you — "
	    "another user could read and plant messages there; use a home "
	    "of your own", fs_home(s), (long)st.st_uid);
}

int
fs_reg(struct spool *s, const char *name, const char *token_hash,
    struct agent_rec *out, struct err *e)
{
	struct agent_rec a;
	char path[P];
	int fd, rc;

	if (home_mine(s, e) < 0)
		return -1;
	snprintf(path, sizeof path, "%s/agents", fs_home(s));
	if (io_mkdirs(path, 0700) < 0)
		return err_sys(e, "cannot create %s", path);
	chmod(fs_home(s), 0700);
	if (make_box(s, name, e) < 0)
		return -1;
	if ((fd = lock_agents(s, e)) < 0)
		return -1;
	if (read_agent(s, name, &a, NULL) < 0) {
		struct stat st;
		agent_path(s, path, name);
		/* A record there that cannot be read (corrupt, or naming
		 * another) is still that agent's: a registration by the room
		 * token must not take its inbox over. bch init NAME on the
		 * relay's host repairs it. */
		if (token_hash && lstat(path, &st) == 0) {
			unlock_agents(fd);
			err_set(e, BCH_PERM, "name already registered — pick "
			    "another, or use that name's own token");
			return err_status(e, 409);
		}
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

	snprintf(path, sizeof path, "%s/agents", fs_home(s));
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
				fs_warn(s, "skipping agent record %s: %s", stem,
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

void
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
int
agents_load(struct spool *s, struct err *e)
{
	struct fs *fs = s->impl;
	struct timespec now;
	struct stat st;
	char path[P];
	long long still;

	snprintf(path, sizeof path, "%s/agents", fs_home(s));
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

int
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

int
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
	}
	/* Every time it is listed: a record written by hand or by another
	 * implementation may name a channel twice. */
	for (; !on && k >= 0; k = agent_has_sub(&a, channel)) {
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
