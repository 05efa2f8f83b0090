/* relayd-arrive: how a message reaches the SSE streams of its inbox —
 * pushed as the relay stores it, found by inotify when a local tool on
 * this host wrote it, or announced by Redis pub/sub on a shared spool. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "relay.h"
#include "relayd.h"

/* The SSE event of a message whose stored bytes we have: as
 * relay_sse_event() would send them. Built once for all the recipients
 * of a channel's message (a shared spool's arrive one after another). */
static const struct buf *
arrival_event(struct relayd *d, const char *id, const char *json, size_t len)
{
	struct buf *e = &d->arrival;
	size_t head = strlen(id) + 11; /* "id: <id>\ndata: " */

	if (strcmp(d->arrival_id, id) == 0 && e->len == head + len + 2 &&
	    memcmp(e->p + head, json, len) == 0)
		return e;
	buf_reset(e);
	buf_printf(e, "id: %s\ndata: ", id);
	buf_add(e, json, len);
	buf_adds(e, "\n\n");
	snprintf(d->arrival_id, sizeof d->arrival_id, "%s", id);
	return e;
}

/* A shared spool's arrival: push it to the SSE readers of its inbox.
 * No agent: some were missed, so every SSE client is dropped (after
 * this round of events) and reconnects to get what is unread. */
static void
arrived(void *arg, const char *agent, const char *id, const char *json,
    size_t len)
{
	struct relayd *d = arg;
	char name[ID_MAX_LEN + 8];
	struct buf own = BUF_INIT;
	const struct buf *e = NULL;
	struct conn *k;

	if (!agent) {
		d->drop_sse = 1;
		return;
	}
	/* Stored JSON is one line: what is not would end the event and
	 * forge the next. Read from the spool instead, which checks it. */
	if (json && (memchr(json, '\n', len) || memchr(json, '\r', len) ||
	    memchr(json, 0, len)))
		json = NULL;
	for (k = *sse_bucket(d, agent); k; k = k->same) {
		if (strcmp(k->agent, agent) != 0)
			continue;
		if (!e && json) {
			e = arrival_event(d, id, json, len);
		} else if (!e) {
			snprintf(name, sizeof name, "%s.json", id);
			if (!relay_sse_event(&d->r, agent, name, &own))
				break; /* already taken */
			e = &own;
		}
		conn_send(d, k, e->p, e->len);
	}
	buf_free(&own);
}

/* Add fd to the event loop, readable, with tag as its data. */
int
watch_fd(struct relayd *d, int fd, void *tag)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = tag;
	return epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Keep the arrivals descriptor in the loop; a reconnect changes it (the
 * old one was closed, which took it out of epoll). */
static void
sync_evfd(struct relayd *d)
{
	unsigned gen;
	int fd = d->c.sp->shared->arrival_fd(d->c.sp, &gen);

	if (fd == d->evfd && gen == d->evgen)
		return;
	d->evfd = fd;
	d->evgen = gen;
	if (fd < 0)
		return;
	if (watch_fd(d, fd, &d->evfd) < 0)
		fprintf(stderr, "bch-relayd: cannot poll arrivals: %s\n",
		    strerror(errno));
}

void
on_arrivals(struct relayd *d)
{
	struct err e;
	int was = d->evfd;

	if (d->c.sp->shared->arrivals(d->c.sp, arrived, d, &e) < 0 && was >= 0)
		fprintf(stderr, "bch-relayd: %s\n", e.msg);
	sync_evfd(d);
	if (was < 0 && d->evfd >= 0)
		fprintf(stderr, "bch-relayd: subscribed to arrivals\n");
}

int
subscribed(struct relayd *d)
{
	if (d->evfd < 0)
		on_arrivals(d);
	return d->evfd >= 0;
}

/* Drop every SSE client: they reconnect and are sent what is unread. */
void
drop_sse(struct relayd *d)
{
	struct conn *k, *next;

	d->drop_sse = 0;
	for (k = d->conns; k; k = next) {
		next = k->next;
		if (k->sse)
			conn_close(d, k);
	}
}

/* A message this relay is storing, written once and about to be linked
 * into its recipients' inboxes (spool->stored): out to their streams
 * now, so that a channel's fan-out to a thousand inboxes holds up no
 * stream. None can take it before it is there: the relay answers one
 * request at a time, and this one ends after the links. inotify reports
 * the files a moment later; on_inotify() skips those (relay_sent_to). */
void
push_stored(void *arg, const char *id, char **rcpt, size_t n,
    const char *json, size_t len)
{
	struct relayd *d = arg;
	const struct buf *e = NULL;
	struct conn *k;
	size_t i;

	for (i = 0; i < n; i++)
		for (k = *sse_bucket(d, rcpt[i]); k; k = k->same)
			if (strcmp(k->agent, rcpt[i]) == 0) {
				if (!e)
					e = arrival_event(d, id, json, len);
				conn_send(d, k, e->p, e->len);
			}
	if (e)
		flush_streams(d);
}

/* The SSE event for name in agent's new/: the last one built when it is
 * the same file (a channel's fan-out), else built from the file. */
static const struct buf *
event_of(struct relayd *d, const char *agent, const char *name)
{
	struct last_event *l = &d->last;
	char path[PATH_MAX + 200];
	struct stat st, after;

	snprintf(path, sizeof path, "%s/spool/%s/new/%s", d->c.cfg.home, agent,
	    name);
	if (lstat(path, &st) < 0)
		return NULL; /* taken already */
	if (l->ok && strcmp(l->name, name) == 0 && st.st_ino == l->st.st_ino &&
	    st.st_dev == l->st.st_dev && st.st_size == l->st.st_size &&
	    st.st_mtim.tv_sec == l->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == l->st.st_mtim.tv_nsec)
		return &l->ev;
	buf_reset(&l->ev);
	l->ok = 0;
	if (!relay_sse_event(&d->r, agent, name, &l->ev))
		return NULL;
	/* Kept only if the file read is the one looked at. */
	if (lstat(path, &after) == 0 && after.st_ino == st.st_ino &&
	    after.st_dev == st.st_dev) {
		snprintf(l->name, sizeof l->name, "%s", name);
		l->st = st;
		l->ok = 1;
	}
	return &l->ev;
}

/* Push each arrival to the SSE readers of its inbox. When the kernel's
 * queue overflowed, some were lost: every stream is closed (after this
 * round), and its client's next one replays what is unread. */
void
on_inotify(struct relayd *d)
{
	char ev[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	ssize_t n;

	while ((n = read(d->ino, ev, sizeof ev)) > 0) {
		char *p;
		for (p = ev; p < ev + n;) {
			struct inotify_event *ie = (struct inotify_event *)p;
			char id[ID_MAX_LEN + 1];
			const struct buf *e;
			const char *agent;
			struct conn *k;
			size_t len = ie->len ? strlen(ie->name) : 0;
			p += sizeof *ie + ie->len;
			if (ie->mask & IN_Q_OVERFLOW) {
				/* Lost too: events saying a watch is gone.
				 * Each stream opened again checks its own. */
				fprintf(stderr, "bch-relayd: inotify queue "
				    "overflowed: closing the SSE streams so that "
				    "their clients catch up\n");
				d->drop_sse = 1;
				continue;
			}
			if (ie->mask & (IN_IGNORED | IN_DELETE_SELF |
			    IN_MOVE_SELF | IN_UNMOUNT)) {
				watch_gone(d, ie->wd);
				continue;
			}
			if (len < 6 || len - 5 > ID_MAX_LEN ||
			    strcmp(ie->name + len - 5, ".json") != 0 ||
			    !(agent = watched(d, ie->wd)))
				continue;
			memcpy(id, ie->name, len - 5);
			id[len - 5] = 0;
			if (relay_sent_to(&d->r, id, agent))
				continue; /* pushed when it was sent */
			for (k = *sse_bucket(d, agent); k; k = k->same)
				if (strcmp(k->agent, agent) == 0)
					break;
			if (!k || !(e = event_of(d, agent, ie->name)))
				continue; /* no reader now, or taken */
			for (; k; k = k->same)
				if (strcmp(k->agent, agent) == 0)
					conn_send(d, k, e->p, e->len);
		}
	}
}
