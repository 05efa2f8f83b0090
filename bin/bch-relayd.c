/* bch-relayd: the relay. HTTP/1.1 and Server-Sent Events over the spool,
 * so agents on other machines reach the same inboxes.
 *
 * Design rationale. One process, one thread, an epoll loop over
 * non-blocking sockets: a connection is a small record with an input
 * and an output buffer, so thousands of idle SSE clients cost little.
 * Requests are answered whole as soon as they are parsed (keep-alive and
 * pipelining fall out of parsing from the front of the input buffer).
 * Arrivals are found with inotify on each watched inbox's new/, so mail
 * written by local tools on this host is pushed too. Every connection
 * has a deadline; slow or silent clients are dropped. On SIGTERM the
 * relay stops accepting, flushes what it owes, returns leased claims to
 * their inboxes and exits 0. Logs are one line per request on stderr.
 * With --spool redis://... several relays share one room: the spool is in
 * Redis, and arrivals come from its pub/sub on a descriptor of their own
 * in the same loop instead of inotify (lib/spool-redis.c). */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "io.h"
#include "relay.h"
#include "relayd.h"
#include "tls.h"

static const char usage[] =
    "bch-relayd [--listen addr] [--port 7117] [--token room-token | "
    "--token-file f] [--home dir] [--cert pem --key pem] [--rate n] "
    "[--spool redis://host:port/db | unix:///path] "
    "[--redis-password-file f] [-d fd]";

#define IDLE_TIMEOUT 60    /* keep-alive connection with nothing to do */
#define REQUEST_TIMEOUT 10 /* a request must arrive whole within this */
#define KEEPALIVE_EVERY 25 /* SSE comment */

struct watch {
	int wd;
	char agent[NAME_MAX_LEN + 1];
};

static volatile sig_atomic_t *stop_flag;

static void
on_term(int sig)
{
	(void)sig;
	*stop_flag = 1;
}

static void
logline(struct conn *k, const struct http_req *q, int status, size_t bytes)
{
	char t[32];

	ts_now(t);
	fprintf(stderr, "%s %s %s \"%s %.200s\" %d %zu\n", t, k->peer,
	    k->agent[0] ? k->agent : "-", q->method, q->path, status, bytes);
}

struct conn **
sse_bucket(struct relayd *d, const char *agent)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*agent)
		h = (h ^ (unsigned char)*agent++) * 16777619u;
	return &d->readers[h & (BUCKETS - 1)];
}

/* Watch agent's new/ while it has SSE readers. */
static void
watch_agent(struct relayd *d, const char *agent)
{
	char path[PATH_MAX + 200];
	size_t i;
	int wd;

	for (i = 0; i < d->nwatches; i++)
		if (strcmp(d->watches[i].agent, agent) == 0)
			return;
	snprintf(path, sizeof path, "%s/spool/%s/new", d->c.cfg.home, agent);
	wd = inotify_add_watch(d->ino, path, IN_CREATE | IN_MOVED_TO | IN_ONLYDIR);
	if (wd < 0) {
		fprintf(stderr, "bch-relayd: cannot watch %s: %s\n", path,
		    strerror(errno));
		return;
	}
	d->watches = xrealloc(d->watches, (d->nwatches + 1) * sizeof *d->watches);
	d->watches[d->nwatches].wd = wd;
	snprintf(d->watches[d->nwatches].agent, sizeof d->watches->agent, "%s",
	    agent);
	d->nwatches++;
}

/* The SSE event of a shared spool's arrival: the stored bytes, as
 * relay_sse_event() would send them. Built once for all the recipients
 * of a channel's message, which arrive one after another. */
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

/* Keep the arrivals descriptor in the loop; a reconnect changes it (the
 * old one was closed, which took it out of epoll). */
static void
sync_evfd(struct relayd *d)
{
	struct epoll_event ev;
	unsigned gen;
	int fd = d->c.sp->shared->arrival_fd(d->c.sp, &gen);

	if (fd == d->evfd && gen == d->evgen)
		return;
	d->evfd = fd;
	d->evgen = gen;
	if (fd < 0)
		return;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = &d->evfd;
	if (epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev) < 0)
		fprintf(stderr, "bch-relayd: cannot poll arrivals: %s\n",
		    strerror(errno));
}

static void
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

static int
subscribed(struct relayd *d)
{
	if (d->evfd < 0)
		on_arrivals(d);
	return d->evfd >= 0;
}

/* Drop every SSE client: they reconnect and are sent what is unread. */
static void
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

/* A message this relay just stored: straight to its recipients' streams
 * (a shared spool's arrive through arrived() instead). inotify reports
 * the same files a moment later; on_inotify() skips those. */
static void
push_sent(struct relayd *d)
{
	const struct buf *e = &d->r.sent_event;
	struct spool *sp = d->c.sp;
	struct conn *k;
	size_t i;

	for (i = 0; i < sp->nrcpt; i++)
		for (k = *sse_bucket(d, sp->rcpt[i]); k; k = k->same)
			if (strcmp(k->agent, sp->rcpt[i]) == 0)
				conn_send(d, k, e->p, e->len);
}

static void
answer(struct relayd *d, struct conn *k, const struct http_req *q)
{
	struct relay_answer a;
	struct buf out = BUF_INIT;
	char extra[64] = "";

	memset(&a, 0, sizeof a);
	relay_handle(&d->r, q, &a);
	snprintf(k->agent, sizeof k->agent, "%s", a.agent);
	if (a.sent && !d->c.sp->shared)
		push_sent(d);
	if (a.sse && d->c.sp->shared && !subscribed(d)) {
		a.sse = 0; /* it would miss what arrives: let it come back */
		a.status = 503;
		a.retry_after = 2;
		buf_reset(&a.body);
		buf_adds(&a.body, "{\"error\":\"this relay cannot hear arrivals "
		    "from the shared spool yet — retry in a moment\"}");
	}
	if (a.sse) {
		buf_adds(&out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream"
		    "\r\nCache-Control: no-cache\r\nConnection: keep-alive\r\n"
		    "X-Accel-Buffering: no\r\n\r\nretry: 3000\n\n");
		if (!d->c.sp->shared)
			watch_agent(d, a.agent);
		relay_sse_backlog(&d->r, a.agent, &out);
		k->sse = 1;
		k->rest_now = 1;
		k->same = *sse_bucket(d, k->agent);
		*sse_bucket(d, k->agent) = k;
		k->last_tx = time(NULL);
	} else {
		if (a.retry_after)
			snprintf(extra, sizeof extra, "Retry-After: %d\r\n",
			    a.retry_after);
		buf_addc(&a.body, '\n');
		http_put_response(&out, a.status, NULL, a.body.p, a.body.len,
		    q->keepalive && !d->stop, extra);
		if (!q->keepalive || d->stop)
			k->closing = 1;
	}
	logline(k, q, a.status, out.len);
	conn_send(d, k, out.p, out.len);
	buf_free(&out);
	buf_free(&a.body);
}

static void
refuse(struct relayd *d, struct conn *k, int status)
{
	struct buf out = BUF_INIT;
	char body[128];
	int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}\n",
	    http_reason(status));

	http_put_response(&out, status, NULL, body, (size_t)n, 0, NULL);
	fprintf(stderr, "%s %s - refused %d\n", "relay", k->peer, status);
	conn_send(d, k, out.p, out.len);
	buf_free(&out);
	k->closing = 1;
}

/* Answer every whole request at the front of k->in. */
void
process_requests(struct relayd *d, struct conn *k)
{
	size_t off = 0;

	while (!k->sse && !k->closing && off < k->in.len) {
		struct http_req q;
		int status = 400;
		long used = http_parse_request(k->in.p + off, k->in.len - off,
		    &d->lim, &q, &status);
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
	if (k->sse)
		buf_free(&k->in); /* an SSE client has nothing more to say */
}


static const char *
watched(struct relayd *d, int wd)
{
	size_t lo = 0, hi = d->nwatches;

	while (lo < hi) { /* wds rise as watches are made */
		size_t mid = lo + (hi - lo) / 2;
		if (d->watches[mid].wd == wd)
			return d->watches[mid].agent;
		if (d->watches[mid].wd < wd)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
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

/* Push each arrival to the SSE readers of its inbox. */
static void
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

/* Once a second: deadlines, SSE keepalives, expired leases. */
static void
tick(struct relayd *d)
{
	time_t now = time(NULL);
	struct conn *k, *next;

	for (k = d->conns; k; k = next) {
		next = k->next;
		if (k->sse) {
			if (now - k->last_tx >= KEEPALIVE_EVERY)
				conn_send(d, k, ": keepalive\n\n", 13);
			else if (k->tls && !k->out.len && now - k->last_tx >= 1)
				tls_conn_rest(k->tls); /* quiet for a second */
			continue;
		}
		if ((k->in.len && now - k->since > REQUEST_TIMEOUT) ||
		    (!k->in.len && !k->out.len && now - k->since > IDLE_TIMEOUT))
			conn_close(d, k);
		else if (k->tls && !k->in.len && !k->out.len)
			tls_conn_rest(k->tls); /* a keep-alive between requests */
	}
	relay_expire(&d->r, 0);
	if (d->c.sp->shared)
		on_arrivals(d); /* resubscribes after a loss, with backoff */
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
		if (k->sse || !k->out.len)
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
		flush_pending(d);
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
	struct epoll_event ev;
	time_t last = time(NULL);

	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(d->ep, EPOLL_CTL_ADD, d->lfd, &ev);
	ev.data.ptr = &d->ino;
	epoll_ctl(d->ep, EPOLL_CTL_ADD, d->ino, &ev);
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
		if (time(NULL) != last) {
			last = time(NULL);
			tick(d);
		}
		if (d->drop_sse)
			drop_sse(d);
		flush_pending(d);
		fflush(stderr); /* the round's log lines, in one write */
	}
	shutdown_relay(d);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, 0, 'l' },
		{ "port", required_argument, 0, 'p' },
		{ "token", required_argument, 0, 't' },
		{ "token-file", required_argument, 0, 'T' },
		{ "home", required_argument, 0, 'H' },
		{ "cert", required_argument, 0, 'c' },
		{ "key", required_argument, 0, 'k' },
		{ "rate", required_argument, 0, 'r' },
		{ "max-conns", required_argument, 0, 'm' },
		{ "spool", required_argument, 0, 'S' },
		{ "redis-password-file", required_argument, 0, 'P' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	static struct relayd d;
	const char *listen_addr = "127.0.0.1", *tok = NULL, *tokfile = NULL;
	const char *cert = NULL, *key = NULL, *spool = NULL, *pwfile = NULL;
	char room[4096];
	struct sigaction sa;
	int ch, port = 7117, notify = -1;
	double rate = 50;

	static char logbuf[1 << 16];

	cli_init(&d.c, "bch-relayd");
	/* A log line per request: written a round at a time (run()). */
	setvbuf(stderr, logbuf, _IOFBF, sizeof logbuf);
	d.maxconns = 20000;
	while ((ch = getopt_long(argc, argv, "hl:p:t:T:H:c:k:r:m:d:S:P:", opts,
	    NULL)) != -1) {
		switch (ch) {
		case 'l': listen_addr = optarg; break;
		case 'p': port = atoi(optarg); break;
		case 't': tok = optarg; break;
		case 'T': tokfile = optarg; break;
		case 'H':
			snprintf(d.c.cfg.home, sizeof d.c.cfg.home, "%s", optarg);
			break;
		case 'c': cert = optarg; break;
		case 'k': key = optarg; break;
		case 'r': rate = atof(optarg); break;
		case 'm': d.maxconns = (size_t)atol(optarg); break;
		case 'd': notify = atoi(optarg); break;
		case 'S': spool = optarg; break;
		case 'P': pwfile = optarg; break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: cli_usage(&d.c, usage, "bad option %s (unknown, or missing its value)", argv[optind - 1]);
		}
	}
	if (optind != argc)
		cli_usage(&d.c, usage, "unexpected argument \"%s\"", argv[optind]);
	if (port < 0 || port > 65535 || rate <= 0 || d.maxconns == 0)
		cli_usage(&d.c, usage, "bad --port, --rate or --max-conns");
	if ((cert != NULL) != (key != NULL))
		cli_usage(&d.c, usage, "--cert and --key go together");
	free(d.c.cfg.url);
	d.c.cfg.url = NULL; /* the relay serves its own spool */
	room_token(&d, tok, tokfile, room, sizeof room);
	d.evfd = -1;
	if (spool)
		open_redis(&d, spool, pwfile);
	else
		cli_open(&d.c, 0);
	if (io_mkdirs(d.c.cfg.home, 0700) < 0) {
		err_sys(&d.c.e, "cannot create %s", d.c.cfg.home);
		cli_fail(&d.c);
	}
	d.r.rate = rate;
	if (relay_init(&d.r, d.c.sp, &d.c.cfg, room, &d.c.e) < 0)
		cli_fail(&d.c);
	d.r.rate = rate;
	d.r.burst = rate * 2 > 10 ? rate * 2 : 10;
	http_limits_default(&d.lim);
	d.lim.body = d.c.cfg.lim.total + 4096;
	if (cert) {
		char pin[65];
		if (!(d.tls = tls_server_new(cert, key, pin, &d.c.e)))
			cli_fail(&d.c);
		fprintf(stderr, "bch-relayd: TLS on, key pin %s\n", pin);
	}
	if ((d.lfd = listen_on(listen_addr, port, &d.c.e)) < 0)
		cli_fail(&d.c);
	d.ep = epoll_create1(EPOLL_CLOEXEC);
	d.ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d.ep < 0 || d.ino < 0) {
		err_sys(&d.c.e, "cannot start the event loop");
		cli_fail(&d.c);
	}
	stop_flag = &d.stop;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	if (port == 0) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		if (getsockname(d.lfd, (struct sockaddr *)&ss, &sl) == 0)
			port = ntohs(ss.ss_family == AF_INET6 ?
			    ((struct sockaddr_in6 *)&ss)->sin6_port :
			    ((struct sockaddr_in *)&ss)->sin_port);
	}
	if (spool) {
		on_arrivals(&d);
		fprintf(stderr, "bch-relayd: listening on %s port %d, spool %s, "
		    "shared\n", listen_addr, port, spool);
	} else {
		fprintf(stderr, "bch-relayd: listening on %s port %d, spool %s, "
		    "%zu agents with tokens\n", listen_addr, port, d.c.cfg.home,
		    d.r.ntok);
	}
	if (notify >= 0) {
		if (write(notify, "\n", 1) < 0)
			fprintf(stderr, "bch-relayd: cannot notify readiness on "
			    "fd %d: %s\n", notify, strerror(errno));
		close(notify);
	}
	run(&d);
	tls_server_free(d.tls);
	cli_close(&d.c);
	return 0;
}
