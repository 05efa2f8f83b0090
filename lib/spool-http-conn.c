/* spool-http-conn: the transport of the spool over HTTP — a link to the
 * relay opened (TCP, and TLS over it for https; link.c reads it, held
 * to BACKCHANNEL_TIMEOUT), one request and its answer on
 * the keep-alive link, retries with backoff (the event stream that
 * spool_wait() reads is spool-http-events.c; the design rationale is in
 * spool-http.c). */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "io.h"
#include "json.h"
#include "link.h"
#include "show.h"
#include "spool.h"
#include "spool-http.h"
#include "tls.h"

#define ANSWER_MAX (8 << 20) /* bytes of an answer's body, at most */

/* TCP keepalive, probing after a minute idle rather than the system's
 * two hours: a link whose peer vanished then fails instead of waiting.
 * Best effort: without it the stream's silence limit still applies. */
static void
keepalive_on(int fd)
{
	int on = 1;

	if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0)
		return;
#ifdef TCP_KEEPIDLE
	{
		int idle = 60, intvl = 15, cnt = 4;
		if (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle,
		    sizeof idle) < 0 || setsockopt(fd, IPPROTO_TCP,
		    TCP_KEEPINTVL, &intvl, sizeof intvl) < 0)
			return;
		(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
	}
#endif
}

int
hs_link_open(struct spool *s, struct link *l, struct err *e)
{
	struct hs *h = s->impl;
	struct addrinfo hints, *res, *ai;
	struct timeval tv = { s->cfg->timeout, 0 };
	int rc, fd = -1, slow = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(h->url.host, h->url.port, &hints, &res);
	if (rc != 0) {
		err_set(e, BCH_TEMP, "relay %s unreachable: %s — check the URL "
		    "or try again later", s->cfg->url, gai_strerror(rc));
		return err_status(e, 503);
	}
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
		keepalive_on(fd);
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINTR) {
			/* The connection goes on in the kernel: wait for it. */
			struct pollfd pw = { fd, POLLOUT, 0 };
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			while (poll(&pw, 1, s->cfg->timeout * 1000) < 0 &&
			    errno == EINTR)
				;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
			    soerr == 0 && (pw.revents & POLLOUT))
				break;
			errno = soerr ? soerr : ETIMEDOUT;
		}
		/* SO_SNDTIMEO ran out (Linux leaves EINPROGRESS): no answer. */
		slow |= errno == EINPROGRESS || errno == EAGAIN ||
		    errno == EWOULDBLOCK || errno == ETIMEDOUT;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0 && slow) {
		/* As an answer that does not come (504): not tried again,
		 * or a caller (a prompt hook) would wait that long per try. */
		err_set(e, BCH_TEMP, "relay %s did not answer within %d s — "
		    "is it reachable? try again later", s->cfg->url,
		    s->cfg->timeout);
		return err_status(e, 504);
	}
	if (fd < 0) {
		err_set(e, BCH_TEMP, "relay %s unreachable: %s — is it running? "
		    "try again later", s->cfg->url, strerror(errno));
		return err_status(e, 503);
	}
	l->fd = fd;
	if (h->url.https) {
		l->tls = tls_client_new(h->url.host, s->cfg->pin,
		    s->cfg->cafile, e);
		if (!l->tls) {
			link_close(l);
			return -1;
		}
	}
	return 0;
}

/* The Host header: see url_authority(). */
void
hs_host_put(struct buf *q, const struct url *u)
{
	char host[URL_AUTHORITY_MAX];

	url_authority(u, host, sizeof host);
	buf_printf(q, "Host: %s\r\n", host);
}

static void
request_build(struct hs *h, struct buf *q, const char *method,
    const char *path, const char *token, const struct buf *body)
{
	buf_printf(q, "%s %s%s HTTP/1.1\r\n", method, h->url.prefix, path);
	hs_host_put(q, &h->url);
	buf_adds(q, "User-Agent: backchannel\r\nAccept: application/json\r\n");
	if (token && *token)
		buf_printf(q, "Authorization: Bearer %s\r\n", token);
	if (body)
		buf_printf(q, "Content-Type: application/json\r\n"
		    "Content-Length: %zu\r\n\r\n%s", body->len, body->p);
	else
		buf_adds(q, "\r\n");
}

/* An answer no request of ours can have: an event stream (whose body
 * never ends) or an interim 1xx (the real answer would follow). The
 * link is in no state to reuse: closed, r freed, -1 with e filled. */
static int
answer_odd(struct spool *s, struct link *l, struct http_resp *r,
    struct err *e)
{
	link_close(l);
	if (r->event_stream)
		err_set(e, BCH_TEMP, "relay %s sent a malformed answer: an "
		    "event stream where JSON was due — is it a backchannel "
		    "relay?", s->cfg->url);
	else
		err_set(e, BCH_TEMP, "relay %s sent a malformed answer: an "
		    "unasked-for %d", s->cfg->url, r->status);
	http_resp_free(r);
	return err_status(e, 502);
}

/* A 2xx whose body is over ANSWER_MAX, for a caller that can use its
 * start (HS_CUT): its first ANSWER_MAX bytes as r->body, r->truncated
 * set. The rest is not read: the link is closed. 0, or 1 when the link
 * broke first. */
static int
answer_cut(struct link *l, struct http_resp *r)
{
	size_t want = r->head_len + ANSWER_MAX;

	while (l->in.len < want) {
		ssize_t n;
		buf_grow(&l->in, 16384);
		n = link_read(l, l->in.p + l->in.len,
		    l->in.cap - l->in.len - 1 < want - l->in.len ?
		    l->in.cap - l->in.len - 1 : want - l->in.len);
		if (n <= 0) {
			if (n == 0)
				errno = 0;
			return 1;
		}
		l->in.len += (size_t)n;
	}
	r->body = xstrndup(l->in.p + r->head_len, ANSWER_MAX);
	r->body_len = ANSWER_MAX;
	r->truncated = 1;
	link_close(l);
	buf_free(&l->in); /* not 8 MiB held for a watch's lifetime */
	return 0;
}

/* What to add when a plain http:// link got no answer, or one that
 * starts a TLS record (an alert, 0x15 0x03, or a handshake, 0x16 0x03):
 * that is how a TLS relay answers plain HTTP. */
static const char *
tls_hint(const struct link *l)
{
	const unsigned char *p = (const unsigned char *)l->in.p;

	if (l->tls)
		return "";
	if (l->in.len == 0 || (l->in.len >= 2 && (p[0] == 0x15 ||
	    p[0] == 0x16) && p[1] == 0x03))
		return " — is it https://?";
	return "";
}

/* Read one answer off the link into r: 0; -1 with e filled for a
 * malformed one; 1 when the link broke before it came. Only a whole
 * answer with a body (or with cut, the start of one) comes back as 0:
 * r->body is never NULL then. */
static int
answer_read(struct spool *s, struct link *l, struct http_resp *r, int cut,
    struct err *e)
{
	struct http_parse ps = HTTP_PARSE_INIT;

	for (;;) {
		long used = http_parse_response(&ps, l->in.p ? l->in.p : "",
		    l->in.len, ANSWER_MAX, r);
		ssize_t n;
		if (used < 0 && cut && r->too_big && r->status >= 200 &&
		    r->status < 300)
			return answer_cut(l, r);
		if (used > 0) {
			memmove(l->in.p, l->in.p + used, l->in.len - (size_t)used);
			l->in.len -= (size_t)used;
			if (r->event_stream || r->status < 200)
				return answer_odd(s, l, r, e);
			if (!r->keepalive)
				link_close(l);
			return 0;
		}
		if (used < 0) {
			const char *hint = tls_hint(l);
			link_close(l);
			err_set(e, BCH_TEMP, "relay %s sent a malformed answer%s%s",
			    s->cfg->url, r->head_too_big ? ": its head is over "
			    "the limit of 64 KiB" : "", hint);
			return err_status(e, 502);
		}
		buf_grow(&l->in, 16384);
		n = link_read(l, l->in.p + l->in.len, l->in.cap - l->in.len - 1);
		if (n <= 0) {
			int saved = n == 0 ? 0 : errno; /* 0: closed, no error */
			http_parse_free(&ps);
			errno = saved;
			return 1;
		}
		l->in.len += (size_t)n;
	}
}

/* The link broke: closed, and -1 with e filled when another try cannot
 * help; else 0. Only a reused link that the relay closed (or reset)
 * before a byte of the answer came is tried again: it may have closed
 * it as idle just as the request went. A request that was not answered
 * in time is not sent again: the relay may be at work on it (a take
 * would have leased the message, and the second would find it gone),
 * and a relay that slow is for the caller to give up on. Called
 * straight after the failed read or write, for the errno it left. */
static int
link_lost(struct spool *s, struct link *l, int fresh, struct err *e)
{
	int saved = errno, heard = l->in.len > 0;
	const char *hint = tls_hint(l);

	if (l->tls && tls_client_why(l->tls)) {
		err_set(e, BCH_PERM, "relay %s is not trusted: %s — check "
		    "the pin or CA (BACKCHANNEL_PIN, BACKCHANNEL_CA)",
		    s->cfg->url, tls_client_why(l->tls));
		link_close(l);
		return err_status(e, 495);
	}
	if (l->tls && tls_client_plain(l->tls)) {
		/* https:// typed for a relay that speaks plain HTTP: no
		 * other try can help. */
		err_set(e, BCH_PERM, "relay %s answered in plain HTTP, not "
		    "TLS — use http://", s->cfg->url);
		link_close(l);
		return err_status(e, 400);
	}
	link_close(l);
	if (saved == EAGAIN || saved == EWOULDBLOCK || saved == ETIMEDOUT) {
		err_set(e, BCH_TEMP, "relay %s did not answer within %d s — "
		    "try again later", s->cfg->url, s->cfg->timeout);
		return err_status(e, 504);
	}
	if (!fresh && !heard)
		return 0;
	errno = saved;
	if (saved && *hint)
		err_set(e, BCH_TEMP, "relay %s: connection lost: %s%s",
		    s->cfg->url, strerror(saved), hint);
	else if (saved)
		err_sys(e, "relay %s: connection lost", s->cfg->url);
	else if (*hint && heard)
		err_set(e, BCH_TEMP, "relay %s answered in TLS, not plain "
		    "HTTP%s", s->cfg->url, hint);
	else
		err_set(e, BCH_TEMP, "relay %s closed the connection %s%s",
		    s->cfg->url, heard ? "in the middle of its answer" :
		    "before answering", hint);
	e->code = BCH_TEMP;
	return err_status(e, 503);
}

/* One request and its answer on the keep-alive link; no retries. */
static int
exchange(struct spool *s, const char *method, const char *path,
    const char *token, const struct buf *body, struct http_resp *r, int cut,
    struct err *e)
{
	struct hs *h = s->impl;
	struct link *l = &h->req;
	struct buf q = BUF_INIT;
	int fresh = 0, rc = -1;

	request_build(h, &q, method, path, token, body);
	for (;;) {
		if (l->fd < 0) {
			if ((rc = hs_link_open(s, l, e)) < 0)
				break;
			fresh = 1;
		}
		link_due(l, s->cfg->timeout);
		rc = link_write(l, q.p, q.len) >= 0;
		/* A relay refuses a request over its limit from the head
		 * (413) and closes without reading the rest: the write
		 * fails, and its answer waits to be read. */
		if (!rc && !l->tls && (errno == EPIPE || errno == ECONNRESET))
			rc = 1;
		/* Over TLS, nothing leaves before the handshake is done. */
		if (!l->tls || tls_client_up(l->tls))
			s->reached = 1;
		if (rc && (rc = answer_read(s, l, r, cut, e)) <= 0)
			break;
		if ((rc = link_lost(s, l, fresh, e)) < 0)
			break;
		/* The relay closed the reused keep-alive link as idle: try
		 * once more on a fresh one. */
		fresh = 1;
	}
	link_due(l, 0);
	buf_free(&q);
	return rc;
}

/* A 3xx: the relay's url leads elsewhere. Where to, as the url to use
 * instead when the answer names the route asked for. */
void
hs_redirect_err(struct spool *s, const char *path, const struct http_resp *r,
    struct err *e)
{
	size_t n = strlen(r->location), pn = strlen(path);
	char *where;
	struct buf b = BUF_INIT;

	if (!n) {
		err_set(e, BCH_PERM, "the relay at %s answers %d, a redirect "
		    "to nowhere — check the URL", s->cfg->url, r->status);
		return;
	}
	if (n > pn && strcmp(r->location + n - pn, path) == 0)
		n -= pn;
	/* The relay's bytes, bound for a terminal: escaped (show_text). */
	where = xstrndup(r->location, n);
	show_text(&b, where, 0);
	err_set(e, BCH_PERM, "the relay at %s redirects to %s — use that "
	    "URL", s->cfg->url, b.p);
	buf_free(&b);
	free(where);
}

/* A final answer that is not a 2xx, as an error: where a 3xx leads, or
 * the relay's own words for a 4xx or 5xx. -1 with e filled; r freed. */
static int
answer_refused(struct spool *s, const char *path, struct http_resp *r,
    struct err *e)
{
	struct json j;
	struct buf b = BUF_INIT;
	const char *why;
	char *msg = NULL;
	int i;

	if (r->status < 400) {
		hs_redirect_err(s, path, r, e);
		err_status(e, r->status);
		http_resp_free(r);
		return -1;
	}
	if (json_parse(&j, r->body, r->body_len, 4, &why) == 0) {
		i = json_get(&j, 0, "error");
		if (i >= 0)
			json_string(&j, i, 400, &msg, NULL);
		json_free(&j);
	}
	/* The relay's words as they are (local and remote mode say the
	 * same thing about the same mistake), but with control characters
	 * escaped: they are bound for a terminal, and a relay is someone
	 * else's machine, which must not drive it or forge a line. */
	if (msg)
		show_text(&b, msg, 0);
	else /* not a relay's own refusal: a proxy, or not a relay at all */
		buf_printf(&b, "relay %s answered %d %s%s", s->cfg->url,
		    r->status, http_reason(r->status), r->status >= 500 ?
		    " — try again later" : ", not as a backchannel relay "
		    "would — check the URL");
	if (r->retry_after > 0)
		buf_printf(&b, " (the relay asks to wait %d s)", r->retry_after);
	err_set(e, r->status == 429 || r->status == 507 || r->status >= 500 ?
	    BCH_TEMP : BCH_PERM, "%s", b.p);
	err_status(e, r->status);
	buf_free(&b);
	free(msg);
	http_resp_free(r);
	return -1;
}

/* A request with retries for what may pass; 4xx other than 429 are final
 * and come back as errors carrying the relay's message. */
int
hs_call(struct spool *s, const char *method, const char *path,
    const char *token, const struct buf *body, struct http_resp *r, int flags,
    struct err *e)
{
	struct err local;
	int attempt, delay = 200;

	if (!e)
		e = &local;
	if (!*token && strcmp(path, "/v1/register") != 0) {
		err_set(e, BCH_PERM, "%s is not registered here — run bch init "
		    "%s first", s->cfg->agent[0] ? s->cfg->agent : "this agent",
		    s->cfg->agent[0] ? s->cfg->agent : "<name>");
		return err_status(e, 401);
	}
	for (attempt = 0;; attempt++) {
		int rc = exchange(s, method, path, token, body, r,
		    flags & HS_CUT, e);
		int temporary;
		/* A relay that did not answer in time (504) is not asked
		 * again: the caller would wait that long once per try. */
		if (rc < 0 && (e->code == BCH_PERM || e->status == 504))
			return -1;
		temporary = rc < 0 || r->status == 429 || r->status >= 500;
		if (!temporary)
			break;
		if (!(flags & HS_RETRY) || attempt >= s->cfg->retries) {
			if (rc == 0)
				break;
			return -1;
		}
		if (rc == 0) {
			if (r->retry_after >= 10)
				break; /* longer than a command waits: say so */
			if (r->retry_after > 0)
				delay = r->retry_after * 1000;
			http_resp_free(r);
		}
		usleep((useconds_t)delay * 1000);
		delay *= 3;
	}
	if (r->status < 200 || r->status >= 300)
		return answer_refused(s, path, r, e);
	return 0;
}

const char *
hs_token(struct spool *s)
{
	return s->cfg->token ? s->cfg->token : "";
}
