/* doctor-relay: bch-doctor's look at the relay — reachable, TLS, health,
 * clock — on a connection of its own, then the token through the spool
 * interface, as every other program uses it. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "doctor.h"
#include "http.h"
#include "io.h"
#include "link.h"
#include "spool.h"
#include "tls.h"
#include "url.h"

#define NET_MS 5000     /* connect timeout for the relay */
#define SKEW_MAX 60     /* seconds of clock skew before a warning */


/* Connect within NET_MS; the socket is blocking after, with a timeout
 * for writes (reads are held to the link's deadline). */
static int
dial(const struct url *u, char *why, size_t whysz)
{
	struct addrinfo hints, *res, *ai;
	struct timeval tv = { NET_MS / 1000, 0 };
	int fd = -1, rc, err = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(u->host, u->port, &hints, &res)) != 0) {
		snprintf(why, whysz, "%s", gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		socklen_t len = sizeof err;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			do
				rc = poll(&pfd, 1, NET_MS);
			while (rc < 0 && errno == EINTR);
			err = rc == 0 ? ETIMEDOUT : rc < 0 ? errno : 0;
			if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
			    &len) < 0)
				err = errno;
			if (!err)
				break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(why, whysz, "%s", strerror(err ? err : ECONNREFUSED));
		return -1;
	}
	if (fcntl(fd, F_SETFL, 0) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
		snprintf(why, whysz, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct health {
	int status;
	int ok;        /* the answer is backchannel's */
	time_t date;   /* the Date header, or 0 */
	long ms;
	char why[300]; /* why there was no answer */
	const char *tls_why;
	int late;      /* it did not come whole within BACKCHANNEL_TIMEOUT */
	int malformed; /* something answered, but not in HTTP we take */
	int plain;     /* https://, answered in plain HTTP */
};

static time_t
date_of(const char *head, size_t n)
{
	const char *p = head, *end = head + n;
	struct tm tm;
	char v[64];

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			break;
		if (eol - p > 5 && strncasecmp(p, "date:", 5) == 0 &&
		    eol - p < (long)sizeof v + 5) {
			snprintf(v, sizeof v, "%.*s", (int)(eol - p - 5), p + 5);
			memset(&tm, 0, sizeof tm);
			if (strptime(v, " %a, %d %b %Y %H:%M:%S GMT", &tm))
				return timegm(&tm);
			return 0;
		}
		p = eol + 1;
	}
	return 0;
}

/* Read the answer to our request on l into l->in: 0 with what the
 * parser made of it in *used (<= 0: malformed, or past bounds), -1 when
 * the link broke first or its deadline came (errno says how, 0 for a
 * close). */
static int
read_answer(struct link *l, struct http_resp *r, long *used)
{
	struct buf *in = &l->in;

	for (;;) {
		ssize_t n;
		*used = http_parse_response(NULL, in->p ? in->p : "", in->len,
		    1 << 16, r);
		if (*used != 0)
			return 0;
		buf_grow(in, 4096);
		n = link_read(l, in->p + in->len, in->cap - in->len - 1);
		if (n == 0)
			errno = 0;
		if (n <= 0)
			return -1;
		in->len += (size_t)n;
		in->p[in->len] = 0;
		if (in->len > 1 << 17)
			return 0;
	}
}

/* Why a broken link gave no answer, into h: a TLS failure first, as
 * h->tls_why too, since check_relay tells that one apart. Called
 * straight after the failed read or write, for the errno it left. */
static void
say_broken(const struct link *l, int secs, struct health *h)
{
	static char tls_why[200];
	int saved = errno;

	if (l->tls && tls_client_why(l->tls)) {
		snprintf(tls_why, sizeof tls_why, "%s", tls_client_why(l->tls));
		h->tls_why = tls_why;
		snprintf(h->why, sizeof h->why, "%s", tls_why);
	} else if (l->tls && tls_client_plain(l->tls)) {
		h->plain = 1;
		snprintf(h->why, sizeof h->why, "answered in plain HTTP, not "
		    "TLS");
	} else if (saved == ETIMEDOUT || saved == EAGAIN ||
	    saved == EWOULDBLOCK) {
		h->late = 1;
		snprintf(h->why, sizeof h->why, "%s within %d s "
		    "(BACKCHANNEL_TIMEOUT)", l->in.len ? "its answer not whole" :
		    "no answer", secs);
	} else
		snprintf(h->why, sizeof h->why, "%s", l->in.len ? "the "
		    "connection broke mid-answer" : "no answer (the connection "
		    "was closed)");
}

/* GET /v1/health on a connection of our own, the whole answer held to
 * BACKCHANNEL_TIMEOUT as every program's are. 0 answered, -1 not (the
 * relay is unreachable, or TLS failed: h->tls_why). */
static int
health(struct doc *d, const struct url *u, struct health *h)
{
	struct timespec t0;
	struct link l = { .fd = -1 };
	struct buf req = BUF_INIT;
	struct http_resp r;
	struct err e;
	char host[URL_AUTHORITY_MAX];
	long used = 0;
	int rc = -1;

	memset(h, 0, sizeof *h);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((l.fd = dial(u, h->why, sizeof h->why)) < 0)
		return -1;
	if (u->https && !(l.tls = tls_client_new(u->host, d->cfg.pin,
	    d->cfg.cafile, &e))) {
		snprintf(h->why, sizeof h->why, "%s", e.msg);
		goto out;
	}
	url_authority(u, host, sizeof host);
	buf_printf(&req, "GET %s/v1/health HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: backchannel-doctor\r\nConnection: close\r\n\r\n",
	    u->prefix, host);
	link_due(&l, d->cfg.timeout);
	if (link_write(&l, req.p, req.len) < 0 ||
	    read_answer(&l, &r, &used) < 0) {
		say_broken(&l, d->cfg.timeout, h);
		goto out;
	}
	if (used <= 0) {
		h->malformed = 1;
		snprintf(h->why, sizeof h->why, "sent a malformed answer%s",
		    used < 0 && r.head_too_big ? ": its head is over the limit "
		    "of 64 KiB" : "");
		goto out;
	}
	h->ms = io_ms_since(&t0);
	h->status = r.status;
	h->ok = r.status == 200 && r.body &&
	    strstr(r.body, "\"ok\"") && strstr(r.body, "true");
	h->date = date_of(l.in.p, (size_t)used - r.body_len);
	http_resp_free(&r);
	rc = 0;
out:
	link_close(&l);
	buf_free(&l.in);
	buf_free(&req);
	return rc;
}

/* The personal token, tried on the routes every program uses. */
static void
check_token(struct doc *d)
{
	char what[200], fix[600], init[200];
	struct spool *sp;
	struct spool_item *it;
	struct agent_rec *a;
	size_t n, na, i;
	struct err e;
	int found = 0;

	snprintf(what, sizeof what, "relay token");
	snprintf(init, sizeof init, "bch init %s --url %s --token "
	    "<room token>", d->cfg.agent[0] ? d->cfg.agent : "<name>",
	    d->cfg.url);
	if (!d->cfg.agent[0]) {
		add(d, FAIL, what, init, "no identity to try it for");
		return;
	}
	snprintf(fix, sizeof fix, "%s%s", getenv("BACKCHANNEL_TOKEN") ?
	    "unset BACKCHANNEL_TOKEN, or " : "", init);
	if (!d->cfg.token || !*d->cfg.token) {
		add(d, FAIL, what, fix, "none kept for %s (config.json or "
		    "tokens/%s)", d->cfg.agent, d->cfg.agent);
		return;
	}
	if (!(sp = spool_open(&d->cfg, "bch-doctor", &e))) {
		add(d, FAIL, what, init, "%s", e.msg);
		return;
	}
	if (spool_agents(sp, &a, &na, &e) < 0) {
		add(d, FAIL, what, e.status == 401 ? fix : "bch doctor  # "
		    "again, once the relay answers", "%s (%d)", e.status == 401 ?
		    "rejected by the relay" : e.msg, e.status);
		spool_close(sp);
		return;
	}
	for (i = 0; i < na; i++)
		found |= strcmp(a[i].name, d->cfg.agent) == 0;
	agent_list_free(a, na);
	if (spool_list(sp, d->cfg.agent, &it, &n, &e) < 0) {
		add(d, FAIL, what, fix, "%s (%d)%s", e.status == 403 ?
		    "it belongs to another agent" : e.msg, e.status,
		    found ? "" : "; the relay has no record of this agent");
		spool_close(sp);
		return;
	}
	spool_items_free(it, n);
	spool_close(sp);
	add(d, OK, what, NULL, "accepted for %s", d->cfg.agent);
	snprintf(what, sizeof what, "queue %s (relay)", d->cfg.agent);
	add(d, OK, what, NULL, n ? "%zu unread" : "empty", n);
}

/* How the relay is reached: TLS verified by what, or plain HTTP, which
 * is fine only on loopback. */
static void
report_tls(struct doc *d, const struct url *u)
{
	if (u->https)
		add(d, OK, "relay TLS", NULL, "verified by %s", d->cfg.pin ?
		    "the pinned key" : d->cfg.cafile ? "the CA file" :
		    "the system's CAs");
	else if (!url_in_clear(d->cfg.url))
		add(d, OK, "relay TLS", NULL, "none: plain HTTP on loopback");
	else
		add(d, WARN, "relay TLS", NULL, "none: plain HTTP, so tokens "
		    "and messages cross the network unencrypted");
}

/* The relay's clock against ours, from its Date header (0: none). */
static void
report_clock(struct doc *d, time_t date)
{
	long skew;

	if (!date) {
		add(d, OK, "relay clock", NULL, "not measured: the relay sends "
		    "no Date header");
		return;
	}
	skew = (long)(time(NULL) - date);
	if (labs(skew) > SKEW_MAX)
		add(d, WARN, "relay clock", NULL, "this machine's clock "
		    "is %ld s %s the relay's: message times will look "
		    "wrong (sync the clocks with NTP)", labs(skew),
		    skew > 0 ? "ahead of" : "behind");
	else
		add(d, OK, "relay clock", NULL, "within %ld s of this "
		    "machine's", labs(skew));
}

/* No answer from the relay at u (but for TLS): it is down, or too slow
 * for the programs, which wait as long as doctor did. */
static void
report_down(struct doc *d, const struct url *u, const struct health *h,
    const char *what, const char *init)
{
	char fix[800];
	const char *unset = getenv("BACKCHANNEL_URL") ?
	    "unset BACKCHANNEL_URL; or " : "";

	if (h->plain) { /* https:// typed for http:// */
		const char *rest = strstr(d->cfg.url, "://") + 3;
		if (*unset)
			snprintf(fix, sizeof fix, "set BACKCHANNEL_URL=http://%s",
			    rest);
		else
			snprintf(fix, sizeof fix, "bch init %s --url http://%s "
			    "--token <room token>", d->cfg.agent[0] ?
			    d->cfg.agent : "<name>", rest);
		add(d, FAIL, what, fix, "%s — use http://", h->why);
		return;
	}
	if (h->late || h->malformed) {
		snprintf(fix, sizeof fix, "%scheck that the URL is a running "
		    "backchannel relay's%s", unset, h->late ? "; over a slow "
		    "link, raise BACKCHANNEL_TIMEOUT" : "");
		add(d, FAIL, what, fix, "%s", h->why);
		return;
	}
	snprintf(fix, sizeof fix, "%sstart the relay on its host (bch relay "
	    "--port %s), or point at a running one: %s", unset, u->port, init);
	add(d, FAIL, what, fix, "unreachable: %s", h->why);
}

void
check_relay(struct doc *d)
{
	char what[600], fix[800], init[400];
	struct health h;
	struct url u;

	if (!d->cfg.url) {
		add(d, OK, "relay", NULL, "none configured: the local spool");
		return;
	}
	snprintf(what, sizeof what, "relay %s", d->cfg.url);
	snprintf(init, sizeof init, "bch init %s --url <relay-url> --token "
	    "<room token>", d->cfg.agent[0] ? d->cfg.agent : "<name>");
	if (url_parse(&u, d->cfg.url, NULL) < 0) {
		add(d, FAIL, what, getenv("BACKCHANNEL_URL") ?
		    "unset BACKCHANNEL_URL, or set it to http(s)://host[:port]" :
		    init, "not a relay URL: use http(s)://host[:port]");
		return;
	}
	if (health(d, &u, &h) < 0) {
		if (h.tls_why) {
			add(d, OK, what, NULL, "reachable");
			snprintf(fix, sizeof fix, "bch init %s --url %s --token "
			    "<room token> --pin <the pin the relay logs>",
			    d->cfg.agent[0] ? d->cfg.agent : "<name>",
			    d->cfg.url);
			add(d, FAIL, "relay TLS", fix, "not trusted: %s%s",
			    h.tls_why, d->cfg.pin ? " (pinned key)" : "");
			return;
		}
		report_down(d, &u, &h, what, init);
		return;
	}
	add(d, OK, what, NULL, "reachable, answered in %ld ms", h.ms);
	report_tls(d, &u);
	if (!h.ok) {
		add(d, FAIL, "relay health", init, "/v1/health answered %d, not "
		    "backchannel's {\"ok\": true} — is the URL right?", h.status);
		return;
	}
	add(d, OK, "relay health", NULL, "/v1/health answers ok");
	report_clock(d, h.date);
	check_token(d);
}
