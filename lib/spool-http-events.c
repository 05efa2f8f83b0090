/* spool-http-events: the relay's event stream, which spool_wait() reads
 * over a link of its own: opened with Last-Event-ID, its events split
 * off (lines ending in LF, CRLF or CR), a runaway event dropped, a
 * stream silent too long opened again, and the messages it brought kept
 * for spool_arrived() when asked. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "io.h"
#include "msg.h"
#include "spool.h"
#include "spool-http.h"
#include "tls.h"

/* The relay sends a keepalive comment every 25 s: a stream that says
 * nothing for three of them is dead (a NAT that forgot it, a laptop that
 * slept), though no error will ever come to say so. */
#define SILENCE_MS 75000

/* Bytes of one event that count as a sign of life while it comes: an
 * event of a MiB over a slow link is not taken for silence over and
 * over, while a byte now and then of an event that never ends is. */
#define PROGRESS_BYTES 4096

static void
heard_now(struct hs *h)
{
	clock_gettime(CLOCK_MONOTONIC, &h->heard);
	h->unheard = 0;
}

/* The relay answered the request for the event stream with something
 * else than the stream: -1 with e filled, r freed, the link closed. */
static int
events_refused(struct spool *s, const char *agent, struct http_resp *r,
    struct err *e)
{
	struct hs *h = s->impl;
	char path[NAME_MAX_LEN + 16];

	if (r->status >= 300 && r->status < 400) {
		snprintf(path, sizeof path, "/v1/events/%s", agent);
		hs_redirect_err(s, path, r, e);
	} else {
		err_set(e, r->status == 401 || r->status == 403 ? BCH_PERM :
		    BCH_TEMP, "relay refused the event stream (%d)", r->status);
	}
	http_resp_free(r);
	link_close(&h->ev);
	return -1;
}

/* Open the event stream; its head is read here, its events in wait. */
static int
events_open(struct spool *s, const char *agent, struct err *e)
{
	struct hs *h = s->impl;
	struct link *l = &h->ev;
	struct buf q = BUF_INIT;
	struct http_resp r;
	struct http_parse ps = HTTP_PARSE_INIT;
	const char *why = "event stream lost";

	if (hs_link_open(s, l, e) < 0)
		return -1;
	/* The head is held to the deadline of any answer; the events that
	 * follow are not (keepalives come 25 s apart): SILENCE_MS is theirs. */
	link_due(l, s->cfg->timeout);
	buf_printf(&q, "GET %s/v1/events/%s HTTP/1.1\r\n", h->url.prefix,
	    agent);
	hs_host_put(&q, &h->url);
	buf_printf(&q, "Accept: text/event-stream\r\nAuthorization: Bearer "
	    "%s\r\n", hs_token(s));
	if (h->last_id[0])
		buf_printf(&q, "Last-Event-ID: %s\r\n", h->last_id);
	buf_adds(&q, "\r\n");
	if (link_write(l, q.p, q.len) < 0)
		goto broken;
	buf_free(&q);
	for (;;) {
		long used = http_parse_response(&ps, l->in.p ? l->in.p : "",
		    l->in.len, 1 << 16, &r);
		ssize_t n;
		if (used > 0) {
			int ok = r.status == 200 && r.event_stream;
			memmove(l->in.p, l->in.p + used, l->in.len - (size_t)used);
			l->in.len -= (size_t)used;
			l->in.p[l->in.len] = 0; /* events may have come with the head */
			link_due(l, 0);
			if (!ok)
				return events_refused(s, agent, &r, e);
			http_resp_free(&r);
			heard_now(h);
			h->opened = h->heard;
			return 0;
		}
		if (used < 0) {
			if (r.head_too_big)
				why = "the event stream's head is over the "
				    "limit of 64 KiB";
			goto broken;
		}
		buf_grow(&l->in, 4096);
		n = link_read(l, l->in.p + l->in.len, l->in.cap - l->in.len - 1);
		if (n <= 0)
			goto broken;
		l->in.len += (size_t)n;
	}
broken:
	buf_free(&q);
	http_parse_free(&ps);
	link_close(l);
	err_set(e, BCH_TEMP, "relay %s: %s", s->cfg->url, why);
	return -1;
}

#define EVENT_MAX (1 << 20)

/* Take what the stream brought up to end off its front. */
static void
drop_to(struct link *l, const char *end)
{
	l->in.len -= (size_t)(end - l->in.p);
	memmove(l->in.p, end, l->in.len + 1);
}

/* Drop what is read of an event over EVENT_MAX up to the blank line that
 * ends it: 1 when that end is in, 0 when more is to come. A last '\n'
 * is kept, for the one that may start the next read. */
static int
event_skip(struct link *l)
{
	char *end = memmem(l->in.p, l->in.len, "\n\n", 2);

	if (!end) {
		int nl = l->in.len && l->in.p[l->in.len - 1] == '\n';
		buf_reset(&l->in);
		if (nl)
			buf_addc(&l->in, '\n');
		return 0;
	}
	drop_to(l, end + 2);
	l->skip = 0;
	return 1;
}

/* Lines may end in CRLF or CR as well as LF: make each end one LF. A CR
 * last in b waits for the next read, which may bring its LF. */
static void
strip_cr(struct buf *b)
{
	char *r = memchr(b->p, '\r', b->len), *w;
	size_t i;

	if (!r)
		return;
	for (w = r, i = (size_t)(r - b->p); i < b->len; i++) {
		if (b->p[i] != '\r' || i + 1 == b->len)
			*w++ = b->p[i];
		else if (b->p[i + 1] != '\n')
			*w++ = '\n';
	}
	b->len = (size_t)(w - b->p);
	b->p[b->len] = 0;
}

/* Take whole events off the front of the stream; 1 if any was a
 * message. The data of each, one JSON a line, into keep (unless NULL). */
static int
events_consume(struct hs *h, struct buf *keep)
{
	struct link *l = &h->ev;
	int got = 0;
	char *end;

	if (l->in.len)
		strip_cr(&l->in);
	if (l->skip) {
		if (!event_skip(l))
			return 0;
		heard_now(h); /* it ended */
	}
	/* Lines are measured, not NUL-terminated: a stream may hold any
	 * byte, and an id is taken only from a whole, clean "id:" line. */
	while (l->in.len && (end = memmem(l->in.p, l->in.len, "\n\n", 2))) {
		char *line = l->in.p;
		while (line <= end) {
			char *nl = memchr(line, '\n', (size_t)(end + 1 - line));
			size_t n = (size_t)(nl - line);
			if (n >= 5 && memcmp(line, "data:", 5) == 0) {
				size_t sp = n > 5 && line[5] == ' ';
				got = 1;
				if (keep && n > 5 + sp) {
					buf_add(keep, line + 5 + sp, n - 5 - sp);
					buf_addc(keep, '\n');
				}
			} else if (n > 4 && n - 4 <= ID_MAX_LEN &&
			    memcmp(line, "id: ", 4) == 0) {
				char id[ID_MAX_LEN + 1];
				memcpy(id, line + 4, n - 4);
				id[n - 4] = 0;
				if (strlen(id) == n - 4 && id_valid(id))
					memcpy(h->last_id, id, n - 3);
			}
			line = nl + 1;
		}
		drop_to(l, end + 2);
		heard_now(h);
	}
	/* A comment line before any event (": keepalive" with no blank
	 * line after it) is heard too; no part of an event is. */
	while (l->in.len && l->in.p[0] == ':' &&
	    (end = memchr(l->in.p, '\n', l->in.len))) {
		drop_to(l, end + 1);
		heard_now(h);
	}
	if (l->in.len > EVENT_MAX) {
		/* A runaway event: no message is read from it, but one may
		 * be behind it, so the caller lists the inbox, and what is
		 * left of the event is dropped as it comes. */
		l->skip = 1;
		event_skip(l);
		return 1;
	}
	return got;
}

/* How long to poll the stream: the caller's timeout, cut short to when
 * the stream will have been silent too long (*silent then set). */
static int
poll_ms(const struct hs *h, int timeout_ms, int *silent)
{
	long left = SILENCE_MS - io_ms_since(&h->heard);

	if (left < 0)
		left = 0;
	*silent = timeout_ms < 0 || left < timeout_ms;
	return *silent ? (int)left : timeout_ms;
}

/* Open the stream (again): 1 when it is open, for the caller to list
 * what came meanwhile. When the relay is away, wait a little; then 1 if
 * no stream was ever opened here (the listing will say the relay is
 * away), else 0: a relay restarting or a network gone for a while must
 * not end a watch, and the stream opened again lists what came. */
static int
events_reopen(struct spool *s, const char *agent, int timeout_ms,
    struct err *e)
{
	struct hs *h = s->impl;
	int before = h->opened.tv_sec || h->opened.tv_nsec;

	if (h->pause_ms) /* the last stream ended at once: no spin */
		poll(NULL, 0, timeout_ms >= 0 && timeout_ms < h->pause_ms ?
		    timeout_ms : h->pause_ms);
	if (events_open(s, agent, e) == 0)
		return 1;
	if (e->code == BCH_PERM)
		return -1;
	poll(NULL, 0, timeout_ms < 0 || timeout_ms > 2000 ? 2000 : timeout_ms);
	return before ? 0 : 1;
}

/* What one wait reads at most while more is there at once, so that a
 * burst (a stream just opened brings every unread message) is one wake
 * of the caller, who lists the inbox at each, and not one per event. */
#define BATCH_MAX (4 << 20)

/* Is more of the stream there to read without waiting? */
static int
readable_now(struct link *l)
{
	struct pollfd p = { l->fd, POLLIN, 0 };

	return (l->tls && tls_client_pending(l->tls)) || poll(&p, 1, 0) == 1;
}

/* Read what came on the stream into l->in. Over TLS, a readable socket
 * says only that a record began: the rest of it is held to when the
 * stream would be given up on as silent, or to the caller's timeout,
 * and to BACKCHANNEL_TIMEOUT at most, as the rest of an answer is, so
 * that a record that stalls or trickles cannot hold the reader. As
 * link_read(); -1 with *late set when it was the caller's time that
 * ran out: errno ETIMEDOUT, the link broken in the middle of a record,
 * or EAGAIN, nothing read (no time was left to read a record in). */
static ssize_t
stream_read(struct spool *s, int timeout_ms, int *late)
{
	struct hs *h = s->impl;
	struct link *l = &h->ev;
	long ms = 0, most = s->cfg->timeout * 1000L;
	int silent = 1, saved;
	ssize_t n;

	*late = 0;
	if (l->tls && !tls_client_pending(l->tls)) {
		ms = poll_ms(h, timeout_ms, &silent);
		if (ms > most) {
			ms = most;
			silent = 1;
		}
		if (ms <= 0 && !silent) {
			*late = 1;
			errno = EAGAIN;
			return -1;
		}
		if (ms <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
	}
	link_due_ms(l, ms);
	buf_grow(&l->in, 16384);
	n = link_read(l, l->in.p + l->in.len, l->in.cap - l->in.len - 1);
	saved = errno;
	link_due(l, 0);
	*late = n < 0 && saved == ETIMEDOUT && !silent;
	errno = saved;
	return n;
}

/* The stream ended or broke: open it again, at once unless the last
 * one ended at once too. */
static int
stream_lost(struct spool *s, const char *agent, int timeout_ms,
    struct err *e)
{
	struct hs *h = s->impl;

	link_close(&h->ev); /* reconnect, then relist */
	h->pause_ms = io_ms_since(&h->opened) >= 2000 ? 0 :
	    h->pause_ms ? (h->pause_ms < 2500 ? 2 * h->pause_ms : 5000) : 250;
	return events_reopen(s, agent, timeout_ms, e);
}

int
hs_wait(struct spool *s, const char *agent, int timeout_ms, struct err *e)
{
	struct hs *h = s->impl;
	struct link *l = &h->ev;
	struct buf *keep = s->keep_arrived ? &h->arrived : NULL;
	struct pollfd p;
	struct err local;
	size_t taken = 0;
	int rc, silent, late, got = 0;

	if (!e)
		e = &local;
	buf_free(&h->arrived); /* the caller had its turn */
	if (l->fd < 0)
		return events_reopen(s, agent, timeout_ms, e);
	if (s->more) /* the last listing was a part: the rest waits */
		return 1;
	for (;;) {
		ssize_t n;
		got |= events_consume(h, keep);
		if (got && (taken >= BATCH_MAX || !readable_now(l)))
			return 1;
		if (!got && !(l->tls && tls_client_pending(l->tls))) {
			p.fd = l->fd;
			p.events = POLLIN;
			rc = poll(&p, 1, poll_ms(h, timeout_ms, &silent));
			if (rc < 0)
				return errno == EINTR ? 0 : err_sys(e, "poll");
			if (rc == 0 && !silent)
				return 0;
			/* Bytes that never make an event are no sign of
			 * life: only a whole event or comment sets heard. */
			if (rc == 0 || io_ms_since(&h->heard) >= SILENCE_MS) {
				/* Dead: open it again (with Last-Event-ID),
				 * and list for what the silence hid. */
				link_close(l);
				return events_reopen(s, agent, timeout_ms, e);
			}
		}
		n = stream_read(s, timeout_ms, &late);
		if (n < 0 && late && errno == ETIMEDOUT)
			link_close(l); /* the next call opens it again */
		if (n < 0 && (errno == EINTR || late))
			return got;
		if (n <= 0) {
			rc = stream_lost(s, agent, timeout_ms, e);
			return got ? 1 : rc;
		}
		taken += (size_t)n;
		l->in.len += (size_t)n;
		l->in.p[l->in.len] = 0;
		if ((h->unheard += (size_t)n) >= PROGRESS_BYTES)
			heard_now(h);
	}
}

void
hs_arrived(struct spool *s, struct spool_item **items, size_t *n)
{
	struct hs *h = s->impl;
	struct items_acc acc = { s, NULL, 0 };
	const char *p = h->arrived.p, *end = p + h->arrived.len, *nl;

	for (; p < end && (nl = memchr(p, '\n', (size_t)(end - p))); p = nl + 1)
		hs_add_item(&acc, p, (size_t)(nl - p));
	buf_free(&h->arrived);
	*items = acc.it;
	*n = acc.n;
}
