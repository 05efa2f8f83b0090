/* relayd-conn: bch-relayd's connections — accepted, read, handed to
 * process_requests(), written a round of events at a time, closed; over
 * TLS the engine sits between the socket and the buffers. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "relayd.h"
#include "tls.h"

#define MAX_OUT (4 << 20)  /* a stream's reader that falls this far behind
                            * is cut */
#define MAX_IN (512 * 1024) /* input taken in one go, unless one request
                            * being read needs more (in_cap()) */
#define SLICE (256 * 1024) /* backlog put out at a time */
#define HOLD MAX_OUT       /* answers owed past this hold back the next
                            * request: as much as a stream may owe */
#define SSE_IN_MAX 4096    /* an SSE client has nothing to say: more is
                            * not a client */

static void
ep_set(struct relayd *d, struct conn *k, int op)
{
	struct epoll_event ev;

	/* Past the peer's EOF, reading is over: a level-triggered
	 * EPOLLIN would wake the loop every round till the answers drain. */
	memset(&ev, 0, sizeof ev);
	ev.events = (k->eof || k->full ? 0 : EPOLLIN | EPOLLRDHUP) |
	    (k->want_out ? EPOLLOUT : 0);
	ev.data.ptr = k;
	epoll_ctl(d->ep, op, k->fd, &ev);
}

static void
pending_add(struct relayd *d, struct conn *k)
{
	if (k->pprev)
		return;
	k->pnext = d->pending;
	if (d->pending)
		d->pending->pprev = &k->pnext;
	d->pending = k;
	k->pprev = &d->pending;
}

static void
pending_del(struct conn *k)
{
	if (!k->pprev)
		return;
	*k->pprev = k->pnext;
	if (k->pnext)
		k->pnext->pprev = k->pprev;
	k->pnext = NULL;
	k->pprev = NULL;
}

static void
backlog_free(struct conn *k)
{
	while (k->ibl < k->nbl)
		free(k->bl[k->ibl++]);
	free(k->bl);
	k->bl = NULL;
	buf_free(&k->later);
}

int
stream_start(struct relayd *d, struct conn *k, const char *agent,
    const struct buf *head)
{
	struct spool_item *it;
	size_t n, i;

	if (spool_list(d->c.sp, agent, &it, &n, NULL) < 0)
		return -1;
	conn_send(d, k, head->p, head->len);
	if (!n)
		return 0;
	k->bl = xcalloc(n, sizeof *k->bl);
	for (i = 0; i < n; i++)
		k->bl[i] = xstrdup(it[i].name);
	k->nbl = n;
	k->ibl = 0;
	spool_items_free(it, n);
	return 0;
}

/* The next slice of k's backlog into its (drained) output; once the
 * last is in, what arrived meanwhile follows it. */
static void
backlog_fill(struct relayd *d, struct conn *k)
{
	while (k->ibl < k->nbl && k->out.len - k->out_off < SLICE) {
		relay_sse_event(&d->r, k->agent, k->bl[k->ibl], &k->out);
		free(k->bl[k->ibl++]);
	}
	if (k->ibl < k->nbl)
		return;
	buf_add(&k->out, k->later.p, k->later.len);
	backlog_free(k);
}

/* What k owes its client: past MAX_OUT a stream is cut. An answer is
 * not: it is as big as it is (an inbox of many MB), and a client that
 * stops reading it is cut by the write deadline instead (tick()). */
static size_t
owed(const struct conn *k)
{
	return k->out.len - k->out_off + k->later.len;
}

int
conn_held(const struct conn *k)
{
	return !k->sse && owed(k) >= HOLD;
}

/* How much input k may hold: MAX_IN, or when the request at its front
 * is being read (its head parsed, nothing held) and is longer, that
 * request whole, as the limits let it be: reading must not stop short
 * of a request it would take, or it waits out REQUEST_TIMEOUT. A
 * chunked body's raw length is held by the parser to 2 * body + 64 KiB
 * before its last chunk line and data: 3 * body + 128 KiB lets it see
 * past that and refuse. */
static size_t
in_cap(const struct relayd *d, const struct conn *k)
{
	const struct http_parse *s = &k->parse;
	size_t need, body = d->lim.body;

	if (!s->end || k->sse || k->q || conn_held(k))
		return MAX_IN;
	if (!s->chunked)
		need = s->need;
	else if (body > (SIZE_MAX - s->end - 128 * 1024) / 3)
		need = SIZE_MAX;
	else
		need = s->end + 3 * body + 128 * 1024;
	return need > MAX_IN ? need : MAX_IN;
}

/* Input past in_cap() waits for its requests to be taken (behind answers
 * owed, or a queued send): reading stops till then, and so does
 * polling for it, as level-triggered EPOLLIN would wake every round. */
static void
hold_input(struct relayd *d, struct conn *k)
{
	int full = k->in.len >= in_cap(d, k);

	if (full != k->full) {
		k->full = full;
		ep_set(d, k, EPOLL_CTL_MOD);
	}
}

/* The peer sends no more: k ends once it has answered what it holds. */
static void
conn_eof(struct conn *k)
{
	k->eof = 1;
	if (!k->in.len || !conn_held(k))
		k->closing = 1;
}

void
conn_unlink(struct relayd *d, struct conn *k)
{
	struct conn **p;

	if (k->sse)
		for (p = sse_bucket(d, k->agent); *p; p = &(*p)->same)
			if (*p == k) {
				*p = k->same;
				break;
			}
	if (k->q)
		k->q->k = NULL; /* its send still gets its outcome */
	if (k->lingering)
		linger_del(d, k);
	pending_del(k);
	epoll_ctl(d->ep, EPOLL_CTL_DEL, k->fd, NULL);
	close(k->fd);
	if (k->prev)
		k->prev->next = k->next;
	else
		d->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	tls_conn_free(k->tls);
	backlog_free(k);
	buf_free(&k->in);
	http_parse_free(&k->parse);
	buf_free(&k->out);
	d->nconns--;
}

void
conn_close(struct relayd *d, struct conn *k)
{
	conn_unlink(d, k);
	free(k);
}

void
conn_end(struct relayd *d, struct conn *k)
{
	if (k->sse) { /* a stream has no end to reach */
		backlog_free(k);
		buf_reset(&k->out);
		k->out_off = 0;
	}
	k->closing = 1;
	pending_add(d, k);
}

/* Queue bytes for k (through TLS when it has it); they go out when the
 * loop flushes, before it waits again, so a round of events costs one
 * write per connection and no epoll change unless the socket is full. */
void
conn_send(struct relayd *d, struct conn *k, const char *p, size_t n)
{
	if (k->bl) { /* behind the backlog */
		buf_add(&k->later, p, n);
		return;
	}
	if (!k->out.len && !k->want_out) /* nothing owed till now */
		k->out_at = time(NULL);
	buf_add(&k->out, p, n);
	pending_add(d, k);
}

/* Read what there is, up to in_cap() at a time; -1 when the peer is
 * gone. */
static int
conn_read(struct relayd *d, struct conn *k)
{
	size_t cap = in_cap(d, k);

	if (k->in.len >= cap)
		return 0; /* held behind answers owed, or its send */
	for (;;) {
		ssize_t n;
		buf_grow(&k->in, 16384);
		size_t room = k->in.cap - k->in.len - 1;
		n = read(k->fd, k->in.p + k->in.len, room);
		if (n > 0) {
			if (!k->in.len)
				k->since = time(NULL); /* a request begins */
			k->in.len += (size_t)n;
			if (k->in.len > cap || (size_t)n < room)
				return 0; /* parse refuses the first; the loop
				           * wakes us again for more */
			continue;
		}
		if (n == 0)
			return -1;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN ? 0 : -1;
	}
}

/* Input no request will be parsed from is not kept, as epoll wakes the
 * loop for more as long as the client sends: a closing connection's is
 * dropped (read, so that closing sends no reset ahead of the answers),
 * and an SSE client that says more than a little is closed. -1 when k
 * was closed. */
static int
drop_unheard(struct relayd *d, struct conn *k)
{
	if (k->sse && k->in.len > SSE_IN_MAX) {
		fprintf(stderr, "relay %s %s - closed: %zu bytes sent on an "
		    "event stream\n", k->peer, k->agent, k->in.len);
		conn_close(d, k);
		return -1;
	}
	if (k->sse || k->closing) {
		if (k->closing && k->in.len)
			k->unread = 1; /* more may follow: linger at the end */
		buf_reset(&k->in); /* kept for the next read: no churn */
		http_parse_free(&k->parse);
	}
	return 0;
}

/* Write what is owed; -1 when the peer is gone. */
static int
conn_write(struct relayd *d, struct conn *k)
{
	while (k->out_off < k->out.len) {
		ssize_t n = write(k->fd, k->out.p + k->out_off,
		    k->out.len - k->out_off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				if (!k->want_out) { /* wait for room */
					k->want_out = 1;
					ep_set(d, k, EPOLL_CTL_MOD);
				}
				return 0;
			}
			return -1;
		}
		k->out_off += (size_t)n;
		k->last_tx = k->out_at = time(NULL);
	}
	buf_reset(&k->out);
	k->out_off = 0;
	if (k->want_out) {
		k->want_out = 0;
		ep_set(d, k, EPOLL_CTL_MOD);
	}
	return 0;
}

/* One pump of k's engine; *ww: records wait for room. The peer's EOF
 * ends reading (k->eof), not the session: what is owed still goes.
 * Records written count for the write deadline (k->out_at) as plain
 * text does: up to 16 KiB of them can wait in the engine with k->out
 * empty. */
static int
tls_pump(struct conn *k, int readable, int *ww)
{
	int fl, gone = tls_conn_pump(k->tls, k->fd, readable && !k->eof,
	    &k->in, &k->out, &k->out_off, &fl);

	*ww = !!(fl & TLS_WANT_WRITE);
	if (fl & TLS_EOF)
		k->eof = 1;
	if (fl & TLS_SENT)
		k->out_at = time(NULL);
	return gone;
}

/* The same over TLS: the engine sits between the socket and buffers. */
static void
on_tls(struct relayd *d, struct conn *k, int readable)
{
	int ww, gone, want, full, eof0 = k->eof;
	size_t in0;

	/* Take in what came (requests, as far as they came), answer, and
	 * pump the answers out. Pumping can hand over more requests the
	 * engine held back (it takes no record while one of its own waits
	 * to go out): answer those too, as no event would come for them.
	 * What else the client sent is still in the socket, and the loop
	 * comes back for it. Requests held back behind answers owed go on
	 * once pumping has taken those answers. */
	if (k->in.len >= in_cap(d, k))
		readable = 0; /* held behind answers owed, or its send */
	in0 = k->in.len;
	gone = tls_pump(k, readable, &ww);
	if (!in0 && k->in.len)
		k->since = time(NULL); /* a request begins */
	while (!gone && !k->sse && !k->closing && k->in.len) {
		size_t left;
		int held;
		process_requests(d, k);
		left = k->in.len;
		held = conn_held(k);
		gone = tls_pump(k, 0, &ww);
		if (k->in.len == left && (!held || conn_held(k)))
			break;
	}
	while (!gone && k->bl && k->out_off == k->out.len && !ww) {
		buf_reset(&k->out);
		k->out_off = 0;
		backlog_fill(d, k);
		gone = tls_pump(k, 0, &ww);
	}
	if (k->out_off == k->out.len) {
		buf_reset(&k->out);
		k->out_off = 0;
	}
	if (k->eof)
		conn_eof(k); /* a client that sent and half-closed still
		              * gets its answers */
	if (drop_unheard(d, k) < 0)
		return;
	pending_del(k); /* pumped all it could */
	if (gone < 0 && k->q)
		k->closing = 1; /* its send is answered first */
	else if (gone < 0 || (k->sse && owed(k) > MAX_OUT)) {
		conn_close(d, k);
		return;
	} else if (k->closing && !k->out.len && !ww && !k->q) {
		/* Done: a close_notify, so the client can tell the end
		 * from a cut; closed once it is out. */
		if (!k->notified) {
			k->notified = 1;
			tls_conn_close(k->tls);
			gone = tls_pump(k, 0, &ww);
		}
		if (gone < 0) {
			conn_close(d, k);
			return;
		}
		if (!ww) {
			conn_finish(d, k);
			return;
		}
	}
	k->last_tx = time(NULL);
	want = ww || k->out.len > 0;
	full = k->in.len >= in_cap(d, k);
	if (want != k->want_out || k->eof != eof0 || full != k->full) {
		k->want_out = want;
		k->full = full;
		ep_set(d, k, EPOLL_CTL_MOD);
	}
	/* A new stream rests as soon as its backlog is out, so that a
	 * burst of connections does not hold 33 KiB each; later, one in a
	 * burst of events keeps its buffers until tick() finds it quiet. */
	if (k->rest_now && !want) {
		k->rest_now = 0;
		tls_conn_rest(k->tls);
	}
}

/* Write what k is owed; close it when it is done or gone. */
static void
conn_flush(struct relayd *d, struct conn *k)
{
	if (k->lingering)
		return; /* still on the list from before: all is out */
	if (k->tls) {
		on_tls(d, k, 0);
		return;
	}
	do {
		if (conn_write(d, k) < 0) {
			conn_close(d, k);
			return;
		}
		if (k->bl && !k->out.len)
			backlog_fill(d, k); /* drained: the next slice */
		else
			break;
	} while (k->out.len);
	/* The requests held back while their answers were owed: on with
	 * them (their answers are queued, and flushed on the same list). */
	if (!k->sse && !k->closing && !k->q && (k->in.len || k->eof) &&
	    !conn_held(k))
		process_requests(d, k);
	hold_input(d, k);
	if (k->sse && owed(k) > MAX_OUT)
		conn_close(d, k);
	else if (k->closing && !k->out.len)
		conn_finish(d, k);
}

void
flush_pending(struct relayd *d)
{
	struct conn *k;

	while ((k = d->pending)) {
		pending_del(k);
		conn_flush(d, k);
	}
}

/* Out now, in the middle of a request: what the SSE streams are owed.
 * A stream found gone or behind stays on the list for flush_pending()
 * to close, as this round's epoll events may still name it. */
void
flush_streams(struct relayd *d)
{
	struct conn *k, *next;
	int fl;

	for (k = d->pending; k; k = next) {
		next = k->pnext;
		if (!k->sse)
			continue;
		if (k->tls) {
			if (tls_conn_pump(k->tls, k->fd, 0, &k->in, &k->out,
			    &k->out_off, &fl) < 0 || (fl & TLS_WANT_WRITE) ||
			    k->out_off < k->out.len)
				continue;
			buf_reset(&k->out);
			k->out_off = 0;
			k->last_tx = time(NULL);
		} else if (conn_write(d, k) < 0 || k->out.len) {
			continue;
		}
		if (!k->bl) /* else flush_pending() puts out the next slice */
			pending_del(k);
	}
}

void
on_conn(struct relayd *d, struct conn *k, uint32_t ev)
{
	if (k->fd < 0)
		return; /* dropped earlier this round */
	if (k->lingering) {
		conn_linger(d, k);
		return;
	}
	if (!k->sniffed && (ev & EPOLLIN))
		sniff_scheme(d, k);
	if (k->tls) {
		on_tls(d, k, !!(ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)));
		return;
	}
	if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		int gone = conn_read(d, k);
		if (!k->sse && k->in.len)
			process_requests(d, k);
		if (drop_unheard(d, k) < 0)
			return;
		hold_input(d, k);
		/* A client that sent and half-closed still gets its answer,
		 * a queued send's too. */
		if (gone < 0 && !k->out.len && !k->q) {
			conn_close(d, k);
			return;
		}
		if (gone < 0) {
			conn_eof(k);
			ep_set(d, k, EPOLL_CTL_MOD);
		}
	}
	if (ev & EPOLLOUT)
		conn_flush(d, k); /* else answers go out in flush_pending() */
}

void
on_accept(struct relayd *d)
{
	for (;;) {
		struct sockaddr_storage sa;
		socklen_t len = sizeof sa;
		struct conn *k;
		int one = 1;
		int fd = accept4(d->lfd, (struct sockaddr *)&sa, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN)
				fprintf(stderr, "bch-relayd: accept: %s\n",
				    strerror(errno));
			return;
		}
		/* Over capacity: a lingering connection has had its answer,
		 * and makes room; else shed load, keep serving. */
		if (d->nconns >= d->maxconns && d->lhead)
			conn_drop(d, d->lhead);
		if (d->nconns >= d->maxconns) {
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		k = xcalloc(1, sizeof *k);
		k->fd = fd;
		if (d->tls && !(k->tls = tls_conn_new(d->tls))) {
			close(fd);
			free(k);
			continue;
		}
		k->since = time(NULL);
		if (sa.ss_family == AF_INET6)
			inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr,
			    k->peer, sizeof k->peer);
		else
			inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr,
			    k->peer, sizeof k->peer);
		k->next = d->conns;
		if (d->conns)
			d->conns->prev = k;
		d->conns = k;
		d->nconns++;
		ep_set(d, k, EPOLL_CTL_ADD);
	}
}
