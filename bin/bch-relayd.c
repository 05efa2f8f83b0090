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
#include <sys/resource.h>
#include <sys/socket.h>
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
    "[--redis-password-file f] [--max-conns n] [-d fd]";

#define IDLE_TIMEOUT 60    /* keep-alive connection with nothing to do */
#define REQUEST_TIMEOUT 10 /* a request must arrive whole within this */
#define WRITE_TIMEOUT 30   /* answers owed and none of them read */
#define KEEPALIVE_EVERY 25 /* SSE comment */

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
	else if (a->allow) /* a 405 */
		snprintf(extra, sizeof extra, "Allow: %s\r\n", a->allow);
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
}

/* Answer every whole request at the front of k->in. */
void
process_requests(struct relayd *d, struct conn *k)
{
	size_t off = 0;

	while (!k->sse && !k->closing && !k->q && !conn_held(k) &&
	    off < k->in.len) {
		struct http_req q;
		int status = 400;
		long used = http_parse_request(&k->parse, k->in.p + off,
		    k->in.len - off, &d->lim, &q, &status);
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

/* What the command line asks for. */
struct opts {
	const char *listen, *tok, *tokfile, *cert, *key, *spool, *pwfile, *home;
	int port, notify, maxconns_asked;
	double rate;
};

static void
parse_opts(struct relayd *d, int argc, char **argv, struct opts *o)
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
	struct cli *c = &d->c;
	char *end;
	int ch;

	memset(o, 0, sizeof *o);
	o->listen = "127.0.0.1";
	o->port = 7117;
	o->notify = -1;
	o->rate = 50;
	d->maxconns = 20000;
	while ((ch = getopt_long(argc, argv, "hl:p:t:T:H:c:k:r:m:d:S:P:", opts,
	    NULL)) != -1) {
		switch (ch) {
		case 'l': o->listen = optarg; break;
		case 'p': o->port = cli_num(c, usage, "--port", optarg, 0, 65535); break;
		case 't': o->tok = optarg; break;
		case 'T': o->tokfile = optarg; break;
		case 'H': o->home = optarg; break;
		case 'c': o->cert = optarg; break;
		case 'k': o->key = optarg; break;
		case 'r':
			o->rate = strtod(optarg, &end);
			if (*end || end == optarg || !(o->rate > 0 && o->rate <= 1e12))
				cli_usage(c, usage, "--rate takes a number of sends a "
				    "second above 0, not \"%s\"", optarg);
			break;
		case 'm':
			d->maxconns = (size_t)cli_num(c, usage, "--max-conns",
			    optarg, 1, 10000000);
			o->maxconns_asked = 1;
			break;
		case 'd': o->notify = cli_num(c, usage, "-d", optarg, 0, 1 << 20); break;
		case 'S': o->spool = optarg; break;
		case 'P': o->pwfile = optarg; break;
		case 'h': printf("usage: %s\n", usage); exit(0);
		default: cli_bad_option(c, usage, argv, opts);
		}
	}
	if (optind != argc)
		cli_usage(c, usage, "unexpected argument \"%s\"", argv[optind]);
	if ((o->cert != NULL) != (o->key != NULL))
		cli_usage(c, usage, "--cert and --key go together");
}

/* Each connection holds a descriptor, and the relay needs some of its
 * own besides (the listener, epoll, inotify, Redis, the file it is
 * reading): raise the soft limit as far as --max-conns asks, and serve
 * no more connections than the limit leaves room for, so that a crowd
 * of them can never leave the relay unable to open an inbox. */
#define FD_RESERVE 64

static void
fit_descriptors(struct relayd *d, int asked)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)d->maxconns + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want
	    ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= want)
		return;
	d->maxconns = rl.rlim_cur > 2 * FD_RESERVE ? rl.rlim_cur - FD_RESERVE
	                                           : rl.rlim_cur / 2;
	if (asked) /* the default is cut without a word */
		fprintf(stderr, "bch-relayd: serving at most %zu connections "
		    "at once, as ulimit -n is %llu\n", d->maxconns,
		    (unsigned long long)rl.rlim_cur);
}

/* Open the spool and the room, load the certificate, listen, and make the
 * event loop's descriptors. Exits on failure. */
static void
start(struct relayd *d, const struct opts *o)
{
	struct sigaction sa;
	char room[4096];

	fit_descriptors(d, o->maxconns_asked);
	free(d->c.cfg.url);
	d->c.cfg.url = NULL; /* the relay serves its own spool */
	room_token(d, o->tok, o->tokfile, room, sizeof room);
	d->evfd = -1;
	d->qtail = &d->qhead;
	if (o->spool)
		open_redis(d, o->spool, o->pwfile);
	else
		cli_open(&d->c, 0);
	if (!d->c.sp->shared) { /* a shared spool's arrive by pub/sub */
		d->c.sp->stored = push_stored;
		d->c.sp->stored_arg = d;
	}
	if (io_mkdirs(d->c.cfg.home, 0700) < 0) {
		err_sys(&d->c.e, "cannot create %s", d->c.cfg.home);
		cli_fail(&d->c);
	}
	if (relay_init(&d->r, d->c.sp, &d->c.cfg, room, &d->c.e) < 0)
		cli_fail(&d->c);
	d->r.rate = o->rate;
	d->r.burst = o->rate * 2 > 10 ? o->rate * 2 : 10;
	http_limits_default(&d->lim);
	d->lim.body = msg_request_max(&d->c.cfg.lim);
	if (o->cert) {
		char pin[65];
		unsigned bits;
		if (!(d->tls = tls_server_new(o->cert, o->key, pin, &d->c.e)))
			cli_fail(&d->c);
		bits = tls_server_rsa_bits(d->tls);
		if (bits && bits < 2048)
			fprintf(stderr, "bch-relayd: warning: %s is a %u-bit RSA "
			    "key, too weak to trust — make one of 2048 bits or "
			    "more, or an EC key\n", o->key, bits);
		fprintf(stderr, "bch-relayd: TLS on, key pin %s\n", pin);
	}
	if ((d->lfd = listen_on(o->listen, o->port, &d->c.e)) < 0)
		cli_fail(&d->c);
	d->ep = epoll_create1(EPOLL_CLOEXEC);
	if ((d->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		err_inotify(&d->c.e, "cannot start inotify");
		cli_fail(&d->c);
	}
	if (d->ep < 0 || watch_fd(d, d->lfd, NULL) < 0 ||
	    watch_fd(d, d->ino, &d->ino) < 0) {
		err_sys(&d->c.e, "cannot start the event loop");
		cli_fail(&d->c);
	}
	stop_flag = &d->stop;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_term;
	if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0) {
		err_sys(&d->c.e, "cannot handle SIGTERM");
		cli_fail(&d->c);
	}
}

/* Say where the relay listens, and that it is ready, to s6 too. */
static void
ready(struct relayd *d, const struct opts *o)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int port = o->port;

	if (port == 0 && getsockname(d->lfd, (struct sockaddr *)&ss, &sl) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	if (o->spool) {
		on_arrivals(d);
		fprintf(stderr, "bch-relayd: listening on %s port %d, spool %s, "
		    "shared\n", o->listen, port, o->spool);
	} else {
		fprintf(stderr, "bch-relayd: listening on %s port %d, spool %s, "
		    "%zu agents with tokens\n", o->listen, port, d->c.cfg.home,
		    d->r.ntok);
	}
	if (o->notify >= 0) {
		if (write(o->notify, "\n", 1) < 0)
			fprintf(stderr, "bch-relayd: cannot notify readiness on "
			    "fd %d: %s\n", o->notify, strerror(errno));
		close(o->notify);
	}
}

/* --home dir (if given) as BACKCHANNEL_HOME, made absolute: the
 * relay's spool is where it was started from, not where it runs. */
static void
set_home(struct cli *c, const char *home)
{
	char cwd[PATH_MAX], abs[PATH_MAX];

	if (!home)
		return;
	if (!*home)
		cli_usage(c, usage, "--home takes a directory, not \"\"");
	if (*home != '/') {
		if (!getcwd(cwd, sizeof cwd)) {
			perror("bch-relayd: cannot read the working directory");
			exit(BCH_TEMP);
		}
		if (snprintf(abs, sizeof abs, "%s/%s", cwd, home) >=
		    (int)sizeof abs)
			cli_usage(c, usage, "--home is too long");
		home = abs;
	}
	if (setenv("BACKCHANNEL_HOME", home, 1) < 0)
		err_oom();
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
	parse_opts(&d, argc, argv, &o);
	set_home(&d.c, o.home);
	cli_init(&d.c, "bch-relayd");
	/* A log line per request: written a round at a time (run()). */
	setvbuf(stderr, logbuf, _IOFBF, sizeof logbuf);
	start(&d, &o);
	ready(&d, &o);
	run(&d);
	tls_server_free(d.tls);
	cli_close(&d.c);
	return 0;
}
