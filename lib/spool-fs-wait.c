/* spool-fs-wait: waiting on the Maildir spool — for mail in an inbox
 * (inotify on its new/), and for a sent message to be read by each of
 * its recipients.
 *
 * Design rationale. A message comes back to new/ from a dead claimer's
 * claim only when someone looks (spool-fs-read.c): a claimer killed
 * with SIGKILL leaves no event behind. So while the last look found
 * claims that other live readers hold, the wait for mail looks at cur/
 * again every RECHECK_MS, and returns what died there; with no such
 * claim it sleeps until an event, as an idle watch must. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "spool.h"
#include "spool-fs.h"

#define RECHECK_MS 2000 /* how often held claims are looked at again */

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
		return err_inotify(e, "cannot watch %s", path);
	return 0;
}

/* Wait for an inotify event, looking at agent's held claims (if any)
 * every RECHECK_MS meanwhile: 1 events to read (or a claim returned
 * to new/, whose event is queued), 0 timed out or EINTR, -1 error. */
static int
await_event(struct spool *s, const char *agent, int timeout_ms,
    struct err *e)
{
	struct fs *fs = s->impl;
	struct pollfd pfd = { .fd = fs->ino, .events = POLLIN };
	struct timespec t0;
	long left = timeout_ms;
	int rc, ms;

	if (timeout_ms > 0)
		clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		int recheck = box_of(s, agent)->held > 0 &&
		    (left < 0 || left > RECHECK_MS);
		ms = recheck ? RECHECK_MS : (int)left;
		rc = poll(&pfd, 1, ms);
		if (rc < 0)
			return errno == EINTR ? 0 :
			    err_sys(e, "cannot wait for messages");
		if (rc > 0)
			return 1;
		if (!recheck)
			return 0;
		if (fs_recover(s, agent) > 0)
			return 1;
		if (timeout_ms > 0 && (left = timeout_ms - io_ms_since(&t0)) <= 0)
			return 0;
	}
}

int
fs_wait(struct spool *s, const char *agent, int timeout_ms, struct err *e)
{
	struct fs *fs = s->impl;
	char ev[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;
	int rc;

	if (fs->ino < 0) {
		fs->ino = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (fs->ino < 0)
			return err_inotify(e, "cannot start inotify");
	}
	if (fs->wd < 0)
		return arm(s, agent, e) < 0 ? -1 : 1;
	if ((rc = await_event(s, agent, timeout_ms, e)) <= 0)
		return rc;
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

int
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
		return err_inotify(e, "cannot start inotify");
	for (i = 0; i < n; i++) {
		box_path(s, path, rcpt[i], "new", NULL);
		if (inotify_add_watch(ino, path, IN_MOVED_FROM | IN_DELETE |
		    IN_DELETE_SELF | IN_ONLYDIR) < 0 && errno != ENOENT) {
			err_inotify(e, "cannot watch %s", path);
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
