/* relayd-watch: the inotify watches on the new/ of inboxes with SSE
 * readers, through which mail that local tools write is pushed — made,
 * checked, and made again when the directory is.
 *
 * Design rationale. A watch is on a directory, not a path: when new/ is
 * removed (an agent unregistered, a box deleted by hand, a spool
 * restored from backup) the kernel drops the watch (IN_IGNORED), and
 * when it is moved away (IN_MOVE_SELF, or no event at all when a
 * directory above it moves) the watch follows it. Either way a new
 * new/ at the path would go unwatched. inotify_add_watch() on the path
 * settles it every time: the same wd back means the path still names
 * the watched directory; another wd, a new directory; ENOENT, none yet.
 * That check is made when an event says the watch may be gone, when a
 * stream opens for the agent (so the streams that a queue overflow
 * closes check their watches as they come back, though the overflow
 * lost the events that said so), and once a second for the lost ones,
 * until the directory is there again. A slice of the others is checked
 * each second too, for the moves that send no event. Mail may have come
 * into a new directory before it was watched: if it holds any the relay
 * has not pushed, the agent's streams are closed, and their clients'
 * next ones replay what is unread, as after an overflow. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "io.h"
#include "relay.h"
#include "relayd.h"

#define VERIFY_EVERY 5 /* seconds for the checks to go round the watches */

#define MASK (IN_CREATE | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF | \
    IN_ONLYDIR)

struct watch {
	int wd; /* -1: lost, watched again once new/ is there */
	char agent[NAME_MAX_LEN + 1];
};

static void
new_path(const struct relayd *d, const char *agent, char *path, size_t size)
{
	snprintf(path, size, "%s/spool/%s/new", d->c.cfg.home, agent);
}

/* The first watch past those with a wd under wd, or (after) at most
 * wd: where one with wd goes, after its equals. */
static size_t
seek(const struct relayd *d, int wd, int after, size_t n)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (d->watches[mid].wd < wd ||
		    (after && d->watches[mid].wd == wd))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const char *
watched(struct relayd *d, int wd)
{
	size_t i = seek(d, wd, 0, d->nwatches);

	if (wd < 0 || i == d->nwatches || d->watches[i].wd != wd)
		return NULL;
	return d->watches[i].agent;
}

static void
drop(struct relayd *d, size_t i)
{
	memmove(&d->watches[i], &d->watches[i + 1],
	    (d->nwatches - i - 1) * sizeof *d->watches);
	d->nwatches--;
}

/* Watch i now has wd: moved to its place, so the array stays sorted
 * by wd whatever order the kernel hands them out in. */
static void
place(struct relayd *d, size_t i, int wd)
{
	struct watch w = d->watches[i];
	size_t j;

	drop(d, i);
	j = seek(d, wd, 1, d->nwatches);
	memmove(&d->watches[j + 1], &d->watches[j],
	    (d->nwatches - j) * sizeof *d->watches);
	w.wd = wd;
	d->watches[j] = w;
	d->nwatches++;
}

static int
has_readers(struct relayd *d, const char *agent)
{
	struct conn *k;

	for (k = *sse_bucket(d, agent); k; k = k->same)
		if (strcmp(k->agent, agent) == 0)
			return 1;
	return 0;
}

/* Does agent's new/ hold a message the relay has not pushed (it sent
 * the others itself)? What is unreadable counts: a client's listing
 * will tell. */
static int
missed(struct relayd *d, const char *agent)
{
	char path[PATH_MAX + 200], id[ID_MAX_LEN + 1];
	struct dirent *e;
	DIR *dir;
	int any = 0;

	new_path(d, agent, path, sizeof path);
	if (!(dir = opendir(path)))
		return errno != ENOENT;
	while (!any && (e = readdir(dir))) {
		size_t len = strlen(e->d_name);
		if (len < 6 || len - 5 > ID_MAX_LEN ||
		    strcmp(e->d_name + len - 5, ".json") != 0)
			continue;
		memcpy(id, e->d_name, len - 5);
		id[len - 5] = 0;
		any = !relay_sent_to(&d->r, id, agent);
	}
	closedir(dir);
	return any;
}

/* Close agent's streams: their clients' next ones replay what is unread. */
static int
catch_up(struct relayd *d, const char *agent)
{
	struct conn *k;
	int n = 0;

	for (k = *sse_bucket(d, agent); k; k = k->same)
		if (strcmp(k->agent, agent) == 0 && !k->closing) {
			conn_end(d, k); /* closed after this round */
			n++;
		}
	return n;
}

/* Say why path cannot be watched (errno), naming a limit reached. */
static void
watch_failed(const char *path)
{
	struct err e;

	err_inotify(&e, "cannot watch %s", path);
	fprintf(stderr, "bch-relayd: %s\n", e.msg);
}

/* Is watch i still on what its path names? If not, it is made again
 * (or lost, till new/ is there). 1 when i is still where it was. */
static int
check(struct relayd *d, size_t i)
{
	char path[PATH_MAX + 200], agent[NAME_MAX_LEN + 1];
	int old = d->watches[i].wd, wd, n;

	snprintf(agent, sizeof agent, "%s", d->watches[i].agent);
	new_path(d, agent, path, sizeof path);
	if ((wd = inotify_add_watch(d->ino, path, MASK)) == old)
		return 1;
	if (wd < 0 && errno != ENOENT)
		watch_failed(path);
	else if (wd < 0)
		fprintf(stderr, "bch-relayd: %s is gone: watching for it to be "
		    "made again\n", path);
	/* One removed is unwatched already; one moved away is not. */
	if (old >= 0 && inotify_rm_watch(d->ino, old) < 0 && errno != EINVAL)
		fprintf(stderr, "bch-relayd: cannot stop watching the old %s: "
		    "%s\n", path, strerror(errno));
	place(d, i, wd < 0 ? -1 : wd);
	if (wd < 0)
		return 0;
	if (has_readers(d, agent) && missed(d, agent) &&
	    (n = catch_up(d, agent)) > 0)
		fprintf(stderr, "bch-relayd: watching %s again, with mail "
		    "in it not pushed: closing %s's %d stream%s so that "
		    "their clients catch up\n", path, agent, n,
		    n == 1 ? "" : "s");
	else
		fprintf(stderr, "bch-relayd: watching %s again\n", path);
	return 0;
}

void
watch_agent(struct relayd *d, const char *agent)
{
	char path[PATH_MAX + 200];
	size_t i;
	int wd;

	for (i = 0; i < d->nwatches; i++)
		if (strcmp(d->watches[i].agent, agent) == 0) {
			check(d, i);
			return;
		}
	new_path(d, agent, path, sizeof path);
	wd = inotify_add_watch(d->ino, path, MASK);
	if (wd < 0 && errno != ENOENT)
		watch_failed(path);
	d->watches = xrealloc(d->watches,
	    (d->nwatches + 1) * sizeof *d->watches);
	snprintf(d->watches[d->nwatches].agent, sizeof d->watches->agent, "%s",
	    agent);
	d->watches[d->nwatches].wd = -1;
	d->nwatches++;
	place(d, d->nwatches - 1, wd < 0 ? -1 : wd);
}

void
watch_gone(struct relayd *d, int wd)
{
	size_t i = seek(d, wd, 0, d->nwatches);

	if (wd >= 0 && i < d->nwatches && d->watches[i].wd == wd)
		check(d, i);
}

void
watch_tick(struct relayd *d)
{
	size_t i = 0, n;

	/* The lost ones: watched again, or forgotten with their readers
	 * (the next stream watches afresh). */
	while (i < d->nwatches && d->watches[i].wd < 0) {
		if (!has_readers(d, d->watches[i].agent))
			drop(d, i);
		else if (check(d, i))
			i++;
	}
	/* A slice of the others, round the lot every VERIFY_EVERY s. A
	 * check that moves one may make this skip another or look at it
	 * twice: the next round sees to it. */
	for (n = d->nwatches / VERIFY_EVERY + 1; n > 0 && d->nwatches; n--) {
		if (d->wnext >= d->nwatches)
			d->wnext = 0;
		i = d->wnext++;
		if (d->watches[i].wd >= 0 &&
		    has_readers(d, d->watches[i].agent))
			check(d, i);
	}
}
