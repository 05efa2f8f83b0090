/* bch-relayd: the relay. HTTP/1.1 and Server-Sent Events over the spool,
 * so agents on other machines reach the same inboxes.
 *
 * Design rationale. One process, one thread, an epoll loop over
 * non-blocking sockets: a connection is a small record with an input
 * and an output buffer, so thousands of idle SSE clients cost little.
 * Requests are answered whole as soon as they are parsed (keep-alive and
 * pipelining fall out of parsing from the front of the input buffer).
 * The parse of a request that came in part goes on from where it got to
 * when more comes (k->parse), not from its first byte again: a body
 * trickled in a few bytes at a time must cost its length, not its
 * length squared, on the one thread that serves everyone.
 * A message the relay stores goes to its recipients' streams once it is
 * written, before the links of its fan-out (spool->stored); arrivals
 * are also found with inotify on each watched inbox's new/, so mail
 * written by local tools on this host is pushed too. Every connection
 * has a deadline; slow or silent clients are dropped. On SIGTERM the
 * relay stops accepting, flushes what it owes, returns leased claims to
 * their inboxes and exits 0. Logs are one line per request on stderr.
 * With --spool redis://... several relays share one room: the spool is in
 * Redis, and arrivals come from its pub/sub on a descriptor of their own
 * in the same loop instead of inotify (lib/spool-redis.c). */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "io.h"
#include "relay.h"
#include "relayd.h"
#include "tls.h"

#define IDLE_TIMEOUT 60    /* keep-alive connection with nothing to do */
#define REQUEST_TIMEOUT 10 /* a request must arrive whole within this */
#define WRITE_TIMEOUT 30   /* answers owed and none of them read */
#define KEEPALIVE_EVERY 25 /* SSE comment */
#define LINGER_TIMEOUT 2   /* a refused client's input dropped this long */

static volatile sig_atomic_t *stop_flag;

static void
on_term(int sig)
{
	(void)sig;
	*stop_flag = 1;
}

/* One request's log line; bytes < 0: its client had gone. */
static void
logline(const char *peer, const char *agent, const char *method,
    const char *path, int status, long bytes)
{
	char t[32], n[24] = "-";

	ts_now(t);
	if (bytes >= 0)
		snprintf(n, sizeof n, "%ld", bytes);
	fprintf(stderr, "%s %s %s \"%s %.200s\" %d %s\n", t, peer,
	    agent[0] ? agent : "-", method, path, status, n);
}

struct conn **
sse_bucket(struct relayd *d, const char *agent)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*agent)
		h = (h ^ (unsigned char)*agent++) * 16777619u;
	return &d->readers[h & (BUCKETS - 1)];
}

/* An answer that is not a stream, out to k, and its log line. */
static void
respond(struct relayd *d, struct conn *k, struct relay_answer *a,
    int keepalive, const char *method, const char *path)
{
	struct buf out = BUF_INIT;
	char extra[96] = "";

	if (a->retry_after)
		snprintf(extra, sizeof extra, "Retry-After: %d\r\n",
		    a->retry_after);
	else if (a->allow) /* a 405, or the answer to OPTIONS */
		snprintf(extra, sizeof extra, "Allow: %s\r\n", a->allow);
	if (a->body.len) /* none to OPTIONS: Content-Length: 0 */
		buf_addc(&a->body, '\n');
	http_put_response(&out, a->status, NULL, a->body.p, a->body.len,
	    d->stop ? 0 : keepalive, extra);
	/* A HEAD answer says the length of the body it does not have: one
	 * sent would be read as the start of the next answer. */
	if (strcmp(method, "HEAD") == 0)
		out.len -= a->body.len;
	if (!keepalive || d->stop)
		k->closing = 1;
	logline(k->peer, k->agent, method, path, a->status, (long)out.len);
	conn_send(d, k, out.p, out.len);
	buf_free(&out);
}

/* k's send, queued on the shared spool: k waits for its answer. */
static void
queue_send(struct relayd *d, struct conn *k, struct msg *m, int keepalive)
{
	struct queued *s = xcalloc(1, sizeof *s);

	s->k = k;
	s->m = m;
	snprintf(s->agent, sizeof s->agent, "%s", k->agent);
	snprintf(s->peer, sizeof s->peer, "%s", k->peer);
	s->keepalive = keepalive;
	*d->qtail = s;
	d->qtail = &s->next;
	k->q = s;
}

void
settle_sends(struct relayd *d)
{
	struct queued *s;

	while ((s = d->qhead)) {
		struct relay_answer a;
		if (!(d->qhead = s->next))
			d->qtail = &d->qhead;
		memset(&a, 0, sizeof a);
		relay_send_done(&d->r, s->m, s->agent, &a);
		if (s->k) {
			s->k->q = NULL;
			respond(d, s->k, &a, s->keepalive, "POST", "/v1/send");
			process_requests(d, s->k); /* may queue more */
		} else {
			logline(s->peer, s->agent, "POST", "/v1/send", a.status,
			    -1);
		}
		buf_free(&a.body);
		free(s);
	}
}

/* The round's sends, answered (they went to the spool together), and
 * every answer out. Flushing a TLS connection can hand over requests
 * its engine held back, sends among them: those are settled too, as no
 * event would come for them. */
static void
settle_and_flush(struct relayd *d)
{
	do {
		settle_sends(d);
		flush_pending(d);
	} while (d->qhead);
}

/* An event stream not opened: 503, to come back in a moment. */
static void
sse_refuse(struct relay_answer *a, const char *why)
{
	a->sse = 0;
	a->status = 503;
	a->retry_after = 2;
	buf_reset(&a->body);
	buf_printf(&a->body, "{\"error\":\"%s\"}", why); /* no quotes */
}

static void
answer(struct relayd *d, struct conn *k, const struct http_req *q)
{
	struct relay_answer a;
	struct buf out = BUF_INIT;

	memset(&a, 0, sizeof a);
	relay_handle(&d->r, q, &a);
	snprintf(k->agent, sizeof k->agent, "%s", a.agent);
	if (a.queued) {
		queue_send(d, k, a.queued, q->keepalive);
		buf_free(&a.body);
		return;
	}
	/* A stream that would miss what arrives, or what waits: let it
	 * come back. What waits is listed before the stream is promised,
	 * and after the watch that tells what arrives is armed. */
	if (a.sse && d->c.sp->shared && !subscribed(d))
		sse_refuse(&a, "this relay cannot hear arrivals from the "
		    "shared spool yet — retry in a moment");
	if (a.sse && !d->c.sp->shared)
		watch_agent(d, a.agent);
	if (a.sse) {
		buf_adds(&out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"
		    "\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n"
		    "X-Accel-Buffering: no\r\n\r\nretry: 3000\n\n");
		if (stream_start(d, k, a.agent, &out) < 0)
			sse_refuse(&a, "cannot list the waiting messages — "
			    "retry in a moment");
	}
	if (a.sse) {
		k->sse = 1;
		k->rest_now = 1;
		k->same = *sse_bucket(d, k->agent);
		*sse_bucket(d, k->agent) = k;
		k->last_tx = time(NULL);
		logline(k->peer, k->agent, q->method, q->path, a.status,
		    (long)out.len);
	} else {
		respond(d, k, &a, q->keepalive, q->method, q->path);
	}
	buf_free(&out);
	buf_free(&a.body);
}

static void
refuse(struct relayd *d, struct conn *k, int status)
{
	struct buf out = BUF_INIT;
	char body[256];
	int n = status == 413 ?
	    snprintf(body, sizeof body, "{\"error\":\"request over the limit "
	    "of %zu bytes of this relay, which takes a body of at most %zu "
	    "bytes — send a path or URL in --ref instead\"}\n", d->lim.body,
	    d->c.cfg.lim.body) :
	    snprintf(body, sizeof body, "{\"error\":\"%s\"}\n",
	    http_reason(status));

	http_put_response(&out, status, NULL, body, (size_t)n, 0, NULL);
	fprintf(stderr, "%s %s - refused %d\n", "relay", k->peer, status);
	conn_send(d, k, out.p, out.len);
	buf_free(&out);
	k->closing = 1;
	k->unread = 1; /* the rest of the request may still come */
}

/* The head of the request at the front of k->in is whole, its body
 * still to come: refused from the head alone when its token cannot
 * pass (401), before any body is read or a 100 Continue invites it;
 * then k closes lingering, as for a body over the limit. 1 if so. */
static int
refuse_head(struct relayd *d, struct conn *k, const struct http_req *q)
{
	struct relay_answer a;

	memset(&a, 0, sizeof a);
	if (!relay_head(&d->r, q, &a)) {
		buf_free(&a.body);
		return 0;
	}
	http_parse_free(&k->parse);
	k->agent[0] = 0; /* no one's: not the last request's agent */
	respond(d, k, &a, 0, q->method, q->path); /* Connection: close */
	k->unread = 1; /* the body may still come */
	buf_free(&a.body);
	return 1;
}

/* Answer every whole request at the front of k->in. */
void
process_requests(struct relayd *d, struct conn *k)
{
	size_t off = 0;

	while (!k->sse && !k->closing && !k->q && !conn_held(k) &&
	    off < k->in.len) {
		struct http_req q;
		int status = 400, headed;
		long used;
		/* Empty lines before a request line are ignored (RFC 9112
		 * 2.2): a client may end a body with a CRLF too many. */
		if (!k->parse.seen && !k->parse.end) {
			while (off < k->in.len && (k->in.p[off] == '\r' ||
			    k->in.p[off] == '\n'))
				off++;
			if (off == k->in.len)
				break;
		}
		headed = !k->parse.end;
		used = http_parse_request(&k->parse, k->in.p + off,
		    k->in.len - off, &d->lim, &q, &status);
		/* Its head came whole just now (q holds it): refused there
		 * if it can be. */
		if (used == 0 && headed && k->parse.end && refuse_head(d, k, &q))
			break;
		if (used == 0 && k->parse.expect == 1) {
			/* Its head is good: the client may send the body. */
			conn_send(d, k, "HTTP/1.1 100 Continue\r\n\r\n", 25);
			k->parse.expect = 2;
		}
		if (used == 0)
			break;
		if (used < 0) {
			refuse(d, k, status);
			break;
		}
		answer(d, k, &q);
		http_req_free(&q);
		off += (size_t)used;
		k->since = time(NULL);
	}
	if (off) {
		memmove(k->in.p, k->in.p + off, k->in.len - off);
		k->in.len -= off;
	}
	if (k->sse) {
		buf_free(&k->in); /* an SSE client has nothing more to say */
		http_parse_free(&k->parse);
	}
	else if (k->eof && !k->q && !conn_held(k))
		k->closing = 1; /* all it sent is answered */
}

/* Once a second: deadlines, SSE keepalives, expired leases, watches. */
static void
tick(struct relayd *d)
{
	time_t now = time(NULL);
	struct conn *k, *next;

	for (k = d->conns; k; k = next) {
		next = k->next;
		if (k->lingering) {
			if (now - k->since > LINGER_TIMEOUT)
				conn_close(d, k); /* it had its time to read */
			continue;
		}
		if (k->sse) {
			if (now - k->last_tx >= KEEPALIVE_EVERY)
				conn_send(d, k, ": keepalive\n\n", 13);
			else if (k->tls && !k->out.len && now - k->last_tx >= 1)
				tls_conn_rest(k->tls); /* quiet for a second */
			continue;
		}
		if ((k->out.len || k->want_out) &&
		    now - k->out_at > WRITE_TIMEOUT) {
			/* It holds a slot and what it is owed: let it go. */
			fprintf(stderr, "relay %s %s - closed: answers unread for "
			    "%d seconds\n", k->peer, k->agent[0] ? k->agent : "-",
			    WRITE_TIMEOUT);
			conn_close(d, k);
		} else if (((k->in.len && !conn_held(k)) ||
		    (k->tls && !tls_conn_up(k->tls))) &&
		    now - k->since > REQUEST_TIMEOUT)
			conn_close(d, k); /* a request, or a handshake, stalled */
		else if (!k->in.len && !k->out.len && !k->want_out &&
		    now - k->since > IDLE_TIMEOUT)
			conn_end(d, k); /* a keep-alive's end: no cut */
		else if (k->tls && !k->in.len && !k->out.len)
			tls_conn_rest(k->tls); /* a keep-alive between requests */
	}
	relay_expire(&d->r, 0);
	if (d->c.sp->shared)
		on_arrivals(d); /* resubscribes after a loss, with backoff */
	else
		watch_tick(d); /* inboxes made again */
}

/* Stop accepting, answer what was asked, flush, give leases back. */
static void
shutdown_relay(struct relayd *d)
{
	time_t deadline = time(NULL) + 5;
	struct conn *k, *next;

	epoll_ctl(d->ep, EPOLL_CTL_DEL, d->lfd, NULL);
	close(d->lfd);
	for (k = d->conns; k; k = next) {
		next = k->next;
		if (k->tls)
			conn_end(d, k); /* a close_notify after what it owes */
		else if (k->sse || (!k->out.len && !k->want_out)) /* owes none */
			conn_close(d, k);
		else
			k->closing = 1;
	}
	while (d->conns && time(NULL) < deadline) {
		struct epoll_event ev[64];
		int i, n = epoll_wait(d->ep, ev, 64, 200);
		for (i = 0; i < n; i++)
			if (ev[i].data.ptr && ev[i].data.ptr != &d->ino &&
			    ev[i].data.ptr != &d->evfd)
				on_conn(d, ev[i].data.ptr, ev[i].events);
		settle_and_flush(d);
	}
	while (d->conns)
		conn_close(d, d->conns);
	relay_free(&d->r);
	buf_free(&d->last.ev);
	buf_free(&d->arrival);
	fprintf(stderr, "bch-relayd: stopped\n");
}

static void
run(struct relayd *d)
{
	time_t last = time(NULL);

	fflush(stderr);
	while (!d->stop) {
		struct epoll_event evs[256];
		int i, n = epoll_wait(d->ep, evs, 256, 1000);
		if (n < 0 && errno != EINTR) {
			fprintf(stderr, "bch-relayd: epoll_wait: %s\n", strerror(errno));
			break;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == NULL)
				on_accept(d);
			else if (evs[i].data.ptr == &d->ino)
				on_inotify(d);
			else if (evs[i].data.ptr == &d->evfd)
				on_arrivals(d);
			else
				on_conn(d, evs[i].data.ptr, evs[i].events);
		}
		conns_reap(d); /* those dropped for room by on_accept() */
		if (time(NULL) != last) {
			last = time(NULL);
			tick(d);
		}
		if (d->drop_sse)
			drop_sse(d);
		settle_and_flush(d);
		fflush(stderr); /* the round's log lines, in one write */
	}
	shutdown_relay(d);
}

/* SIGTERM and SIGINT stop the loop (d->stop), which then shuts down. */
static void
catch_term(const char *prog, struct relayd *d)
{
	struct sigaction sa;

	stop_flag = &d->stop;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) {
		err_sys(&d->c.e, "cannot handle SIGTERM");
		err_exit(prog, &d->c.e);
	}
}

int
main(int argc, char **argv)
{
	static struct relayd d;
	static char logbuf[1 << 16];
	struct opts o;

	/* The options first: -h whatever the environment, and --home is
	 * the BACKCHANNEL_HOME the configuration is then loaded from. */
	d.c.prog = "bch-relayd";
	opterr = 0;
	relayd_opts(&d, argc, argv, &o);
	relayd_home(&d.c, o.home);
	cli_init(&d.c, "bch-relayd");
	/* A log line per request: written a round at a time (run()). */
	setvbuf(stderr, logbuf, _IOFBF, sizeof logbuf);
	relayd_start(&d, &o);
	catch_term(d.c.prog, &d);
	relayd_ready(&d, &o);
	run(&d);
	tls_server_free(d.tls);
	cli_close(&d.c);
	return 0;
}
