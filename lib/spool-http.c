/* spool-http: the spool interface against a relay (PROTOCOL.md 5).
 *
 * Design rationale. One keep-alive connection for requests and, once
 * spool_wait() is called, a second one for the event stream. A request
 * that fails for a reason that may pass (no connection, a reset, a 5xx,
 * a 429) is retried with backoff; a send carries a client-chosen id, so
 * a retry is stored once. A take asks for a lease, so a claim whose
 * answer is lost comes back to the inbox instead of vanishing, and it is
 * settled by ack (or release) after the output was written, as locally.
 * A relay that knows no leases deletes on take; ack and release then get
 * 404, which is fine for ack. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "http.h"
#include "io.h"
#include "json.h"
#include "spool.h"
#include "tls.h"
#include "url.h"

#define TIMEOUT_MS 15000
#define LEASE_SECONDS 300

struct link {
	int fd;
	struct tls_client *tls;
	struct buf in;
};

struct hs {
	struct url url;
	struct link req, ev;
	char last_id[ID_MAX_LEN + 1];
};

static void
link_close(struct link *l)
{
	if (l->fd >= 0)
		close(l->fd);
	tls_client_free(l->tls);
	l->tls = NULL;
	l->fd = -1;
	buf_reset(&l->in);
}

static int
link_open(struct spool *s, struct link *l, struct err *e)
{
	struct hs *h = s->impl;
	struct addrinfo hints, *res, *ai;
	struct timeval tv = { TIMEOUT_MS / 1000, 0 };
	int rc, fd = -1;

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
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		if (errno == EINTR) {
			/* The connection goes on in the kernel: wait for it. */
			struct pollfd pw = { fd, POLLOUT, 0 };
			int soerr = 0;
			socklen_t sl = sizeof soerr;
			while (poll(&pw, 1, TIMEOUT_MS) < 0 && errno == EINTR)
				;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
			    soerr == 0 && (pw.revents & POLLOUT))
				break;
			errno = soerr ? soerr : ETIMEDOUT;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
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

static ssize_t
link_write(struct link *l, const void *p, size_t n)
{
	if (l->tls)
		return tls_client_write(l->tls, l->fd, p, n) < 0 ? -1 : (ssize_t)n;
	return io_writeall(l->fd, p, n) < 0 ? -1 : (ssize_t)n;
}

static ssize_t
link_read(struct link *l, void *p, size_t n)
{
	ssize_t r;

	if (l->tls)
		return tls_client_read(l->tls, l->fd, p, n);
	do
		r = read(l->fd, p, n);
	while (r < 0 && errno == EINTR);
	return r;
}

/* One request and its answer on the keep-alive link; no retries. */
static int
exchange(struct spool *s, const char *method, const char *path,
    const char *token, const struct buf *body, struct http_resp *r,
    struct err *e)
{
	struct hs *h = s->impl;
	struct link *l = &h->req;
	struct buf q = BUF_INIT;
	int fresh = 0;

	for (;;) {
		if (l->fd < 0) {
			if (link_open(s, l, e) < 0)
				return -1;
			fresh = 1;
		}
		buf_reset(&q);
		buf_printf(&q, "%s %s%s HTTP/1.1\r\nHost: %s\r\n"
		    "User-Agent: backchannel\r\nAccept: application/json\r\n",
		    method, h->url.prefix, path, h->url.host);
		if (token && *token)
			buf_printf(&q, "Authorization: Bearer %s\r\n", token);
		if (body)
			buf_printf(&q, "Content-Type: application/json\r\n"
			    "Content-Length: %zu\r\n\r\n%s", body->len, body->p);
		else
			buf_adds(&q, "\r\n");
		if (link_write(l, q.p, q.len) < 0)
			goto broken;
		for (;;) {
			long used = http_parse_response(l->in.p ? l->in.p : "",
			    l->in.len, 8 << 20, r);
			ssize_t n;
			if (used > 0) {
				memmove(l->in.p, l->in.p + used, l->in.len - (size_t)used);
				l->in.len -= (size_t)used;
				if (!r->keepalive)
					link_close(l);
				buf_free(&q);
				return 0;
			}
			if (used < 0) {
				link_close(l);
				buf_free(&q);
				err_set(e, BCH_TEMP, "relay %s sent a malformed answer",
				    s->cfg->url);
				return err_status(e, 502);
			}
			buf_grow(&l->in, 16384);
			n = link_read(l, l->in.p + l->in.len, l->in.cap - l->in.len - 1);
			if (n <= 0)
				goto broken;
			l->in.len += (size_t)n;
		}
	broken:
		if (l->tls && tls_client_why(l->tls)) {
			err_set(e, BCH_PERM, "relay %s is not trusted: %s — check "
			    "the pin or CA (BACKCHANNEL_PIN, BACKCHANNEL_CA)",
			    s->cfg->url, tls_client_why(l->tls));
			link_close(l);
			buf_free(&q);
			return err_status(e, 495);
		}
		link_close(l);
		if (fresh) {
			buf_free(&q);
			err_sys(e, "relay %s: connection lost", s->cfg->url);
			e->code = BCH_TEMP;
			return err_status(e, 503);
		}
		/* A reused keep-alive link may have been closed by the relay:
		 * try once more on a fresh one. */
		fresh = 1;
	}
}

/* A request with retries for what may pass; 4xx other than 429 are final
 * and come back as errors carrying the relay's message. */
static int
call(struct spool *s, const char *method, const char *path, const char *token,
    const struct buf *body, struct http_resp *r, int retry, struct err *e)
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
		int rc = exchange(s, method, path, token, body, r, e);
		int temporary;
		if (rc < 0 && e && e->code == BCH_PERM)
			return -1;
		temporary = rc < 0 || r->status == 429 || r->status >= 500;
		if (!temporary)
			break;
		if (!retry || attempt >= 3) {
			if (rc == 0)
				break;
			return -1;
		}
		if (rc == 0) {
			if (r->retry_after > 0 && r->retry_after < 10)
				delay = r->retry_after * 1000;
			http_resp_free(r);
		}
		usleep((useconds_t)delay * 1000);
		delay *= 3;
	}
	if (r->status >= 400) {
		struct json j;
		const char *why;
		char *msg = NULL;
		int i;
		if (json_parse(&j, r->body, r->body_len, 4, &why) == 0) {
			i = json_get(&j, 0, "error");
			if (i >= 0)
				json_string(&j, i, 400, &msg, NULL);
			json_free(&j);
		}
		/* The relay's words as they are: local and remote mode say
		 * the same thing about the same mistake. */
		err_set(e, r->status == 429 || r->status == 507 ||
		    r->status >= 500 ? BCH_TEMP : BCH_PERM, "%s",
		    msg ? msg : http_reason(r->status));
		err_status(e, r->status);
		free(msg);
		http_resp_free(r);
		return -1;
	}
	return 0;
}

static const char *
token_of(struct spool *s)
{
	return s->cfg->token ? s->cfg->token : "";
}

static void
put_kv(struct buf *b, const char *k, const char *v, int first)
{
	if (!first)
		buf_addc(b, ',');
	json_put_string(b, k, strlen(k));
	buf_addc(b, ':');
	json_put_string(b, v, strlen(v));
}

static int
http_reg(struct spool *s, const char *name, const char *token_hash,
    struct agent_rec *out, struct err *e)
{
	struct buf b = BUF_INIT;
	struct http_resp r;
	struct agent_rec a;
	int rc;

	(void)token_hash;
	buf_addc(&b, '{');
	put_kv(&b, "name", name, 1);
	buf_addc(&b, '}');
	rc = call(s, "POST", "/v1/register", token_of(s), &b, &r, 1, e);
	buf_free(&b);
	if (rc < 0)
		return -1;
	rc = agent_decode(r.body, r.body_len, &a, e);
	http_resp_free(&r);
	if (rc < 0)
		return err_set(e, BCH_TEMP, "relay sent a malformed agent record");
	if (out)
		*out = a;
	else
		agent_free(&a);
	return 0;
}

/* Walk a JSON array answer; fn gets each element's text. */
static int
each(const struct http_resp *r, int (*fn)(void *, const char *, size_t),
    void *arg, struct err *e)
{
	struct json j;
	const char *why;
	int i, k;

	if (json_parse(&j, r->body, r->body_len, 16, &why) < 0 ||
	    j.t[0].type != JSON_ARRAY) {
		json_free(&j);
		return err_set(e, BCH_TEMP, "relay sent a malformed list");
	}
	for (k = 0, i = 1; k < j.t[0].size; k++, i = json_next(&j, i)) {
		int start = j.t[i].start, end = j.t[i].end;
		if (j.t[i].type == JSON_STRING) {
			start--;
			end++;
		}
		if (fn(arg, r->body + start, (size_t)(end - start)) < 0)
			break;
	}
	json_free(&j);
	return 0;
}

struct agents_acc {
	struct agent_rec *a;
	size_t n;
};

static int
add_agent(void *arg, const char *p, size_t n)
{
	struct agents_acc *acc = arg;

	acc->a = xrealloc(acc->a, (acc->n + 1) * sizeof *acc->a);
	if (agent_decode(p, n, &acc->a[acc->n], NULL) == 0)
		acc->n++;
	return 0;
}

static int
http_agents(struct spool *s, struct agent_rec **list, size_t *n,
    struct err *e)
{
	struct agents_acc acc = { NULL, 0 };
	struct http_resp r;

	if (call(s, "GET", "/v1/agents", token_of(s), NULL, &r, 1, e) < 0)
		return -1;
	if (each(&r, add_agent, &acc, e) < 0) {
		http_resp_free(&r);
		return -1;
	}
	http_resp_free(&r);
	*list = acc.a;
	*n = acc.n;
	return 0;
}

static int
http_subscribe(struct spool *s, const char *agent, const char *channel,
    int on, struct err *e)
{
	struct buf b = BUF_INIT;
	struct http_resp r;
	int rc;

	if (strcmp(agent, s->cfg->agent) != 0)
		return err_set(e, BCH_PERM, "a relay subscribes only the agent "
		    "whose token is used");
	buf_addc(&b, '{');
	put_kv(&b, "channel", channel, 1);
	buf_addc(&b, '}');
	rc = call(s, "POST", on ? "/v1/subscribe" : "/v1/unsubscribe",
	    token_of(s), &b, &r, 1, e);
	buf_free(&b);
	if (rc < 0)
		return -1;
	/* ext: "changed"; a relay without it is taken to have changed. */
	rc = strstr(r.body, "\"changed\":false") ? 0 : 1;
	http_resp_free(&r);
	return rc;
}

/* ext: a relay names the recipients in its send answer (for --wait).
 * Their count, or 1 when it does not say. */
static int
take_recipients(struct spool *s, const struct http_resp *r)
{
	struct json j;
	const char *why;
	char **names;
	size_t nn = 0;
	int i, k, t;

	if (json_parse(&j, r->body, r->body_len, 16, &why) < 0 ||
	    (i = json_get(&j, 0, "recipients")) < 0 ||
	    j.t[i].type != JSON_ARRAY) {
		json_free(&j);
		spool_set_rcpt(s, NULL, 0);
		return 1;
	}
	names = xcalloc((size_t)j.t[i].size + 1, sizeof *names);
	for (k = 0, t = i + 1; k < j.t[i].size; k++, t = json_next(&j, t))
		if (json_string(&j, t, NAME_MAX_LEN, &names[nn], NULL) == 0)
			nn++;
	json_free(&j);
	spool_set_rcpt(s, names, nn);
	for (k = 0; (size_t)k < nn; k++)
		free(names[k]);
	free(names);
	return (int)nn;
}

static int
http_send(struct spool *s, struct msg *m, struct err *e)
{
	struct buf b = BUF_INIT;
	struct http_resp r;
	struct msg got;
	char to[NAME_MAX_LEN + 3];
	size_t i;
	int rc;

	if (target_parse(m->to, to, sizeof to, e) < 0 ||
	    msg_check(m, &s->cfg->lim, e) < 0)
		return -1;
	if (!m->id[0] && uuid_v4(m->id) < 0)
		return err_sys(e, "cannot get random bytes for an id");
	buf_addc(&b, '{');
	put_kv(&b, "id", m->id, 1);
	put_kv(&b, "to", to, 0);
	put_kv(&b, "body", m->body, 0);
	put_kv(&b, "priority", m->urgent ? "urgent" : "normal", 0);
	if (m->scope)
		put_kv(&b, "scope", m->scope, 0);
	if (m->thread)
		put_kv(&b, "thread", m->thread, 0);
	if (m->nrefs) {
		buf_adds(&b, ",\"refs\":[");
		for (i = 0; i < m->nrefs; i++) {
			if (i)
				buf_addc(&b, ',');
			json_put_string(&b, m->refs[i], strlen(m->refs[i]));
		}
		buf_addc(&b, ']');
	}
	buf_addc(&b, '}');
	rc = call(s, "POST", "/v1/send", token_of(s), &b, &r, 1, e);
	buf_free(&b);
	if (rc < 0)
		return -1;
	rc = take_recipients(s, &r);
	if (msg_decode(r.body, r.body_len, 0, &s->cfg->rlim, &got, e) == 0) {
		snprintf(m->id, sizeof m->id, "%s", got.id);
		snprintf(m->ts, sizeof m->ts, "%s", got.ts);
		free(m->to);
		m->to = xstrdup(got.to);
		msg_free(&got);
	} else {
		free(m->to);
		m->to = xstrdup(to);
	}
	http_resp_free(&r);
	return rc;
}

static int
http_sync(struct spool *s, struct err *e)
{
	(void)s;
	(void)e;
	return 0;
}

struct items_acc {
	struct spool *s;
	struct spool_item *it;
	size_t n;
};

static int
add_item(void *arg, const char *p, size_t n)
{
	struct items_acc *acc = arg;
	struct spool_item *it;
	struct msg m;

	if (msg_decode(p, n, 0, &acc->s->cfg->rlim, &m, NULL) < 0) {
		fprintf(stderr, "%s: skipping a malformed message from the relay\n",
		    acc->s->prog);
		return 0;
	}
	acc->it = xrealloc(acc->it, (acc->n + 1) * sizeof *acc->it);
	it = &acc->it[acc->n++];
	memset(it, 0, sizeof *it);
	snprintf(it->id, sizeof it->id, "%s", m.id);
	snprintf(it->ts, sizeof it->ts, "%s", m.ts);
	it->name = xstrdup(m.id);
	it->scope = m.scope;
	m.scope = NULL;
	it->urgent = m.urgent;
	it->raw = xstrndup(p, n);
	it->rawlen = n;
	msg_free(&m);
	return 0;
}

static int
http_list(struct spool *s, const char *agent, struct spool_item **items,
    size_t *n, struct err *e)
{
	struct items_acc acc = { s, NULL, 0 };
	struct http_resp r;
	char path[NAME_MAX_LEN + 16];

	snprintf(path, sizeof path, "/v1/inbox/%s", agent);
	if (call(s, "GET", path, token_of(s), NULL, &r, 1, e) < 0)
		return -1;
	if (each(&r, add_item, &acc, e) < 0) {
		http_resp_free(&r);
		return -1;
	}
	http_resp_free(&r);
	*items = acc.it;
	*n = acc.n;
	return 0;
}

static int
http_peek(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct err *e)
{
	(void)agent;
	if (msg_decode(it->raw, it->rawlen, 0, &s->cfg->rlim, m, e) < 0)
		return 0;
	return 1;
}

static int
http_take(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct spool_claim *c, struct err *e)
{
	struct buf b = BUF_INIT;
	struct http_resp r;
	struct json j;
	const char *why;
	int i, rc = 0;

	buf_addc(&b, '{');
	put_kv(&b, "id", it->id, 1);
	buf_printf(&b, ",\"lease\":%d}", LEASE_SECONDS);
	/* Not retried: a lost answer leaves a lease that runs out. */
	rc = call(s, "POST", "/v1/take", token_of(s), &b, &r, 0, e);
	buf_free(&b);
	if (rc < 0)
		return -1;
	if (json_parse(&j, r.body, r.body_len, 16, &why) < 0 ||
	    (i = json_get(&j, 0, "message")) < 0) {
		json_free(&j);
		http_resp_free(&r);
		return err_set(e, BCH_TEMP, "relay sent a malformed take answer");
	}
	if (j.t[i].type == JSON_OBJECT) {
		rc = msg_decode(r.body + j.t[i].start,
		    (size_t)(j.t[i].end - j.t[i].start), 0, &s->cfg->rlim, m, e);
		rc = rc < 0 ? -1 : 1;
	}
	json_free(&j);
	http_resp_free(&r);
	if (rc == 1) {
		memset(c, 0, sizeof *c);
		snprintf(c->agent, sizeof c->agent, "%s", agent);
		snprintf(c->name, sizeof c->name, "%s", it->id);
		c->path = xstrdup(it->id);
	}
	return rc;
}

static int
settle(struct spool *s, struct spool_claim *c, const char *route, int keep,
    struct err *e)
{
	struct buf b = BUF_INIT;
	struct http_resp r;
	struct err mine;
	int rc;

	buf_addc(&b, '{');
	put_kv(&b, "id", c->name, 1);
	if (keep)
		buf_adds(&b, ",\"keep\":true");
	buf_addc(&b, '}');
	rc = call(s, "POST", route, token_of(s), &b, &r, 1, &mine);
	buf_free(&b);
	free(c->path);
	c->path = NULL;
	if (rc < 0) {
		if (mine.status == 404)
			return 0; /* a relay without leases deleted it on take */
		if (e)
			*e = mine;
		return -1;
	}
	http_resp_free(&r);
	return 0;
}

static int
http_ack(struct spool *s, struct spool_claim *c, int keep, struct err *e)
{
	return settle(s, c, "/v1/ack", keep, e);
}

static int
http_release(struct spool *s, struct spool_claim *c, struct err *e)
{
	return settle(s, c, "/v1/release", 0, e);
}

/* Open the event stream; its head is read here, its events in wait. */
static int
events_open(struct spool *s, const char *agent, struct err *e)
{
	struct hs *h = s->impl;
	struct link *l = &h->ev;
	struct buf q = BUF_INIT;
	struct http_resp r;

	if (link_open(s, l, e) < 0)
		return -1;
	buf_printf(&q, "GET %s/v1/events/%s HTTP/1.1\r\nHost: %s\r\n"
	    "Accept: text/event-stream\r\nAuthorization: Bearer %s\r\n",
	    h->url.prefix, agent, h->url.host, token_of(s));
	if (h->last_id[0])
		buf_printf(&q, "Last-Event-ID: %s\r\n", h->last_id);
	buf_adds(&q, "\r\n");
	if (link_write(l, q.p, q.len) < 0)
		goto broken;
	buf_free(&q);
	for (;;) {
		long used = http_parse_response(l->in.p ? l->in.p : "", l->in.len,
		    1 << 16, &r);
		ssize_t n;
		if (used > 0) {
			int ok = r.status == 200 && r.event_stream;
			memmove(l->in.p, l->in.p + used, l->in.len - (size_t)used);
			l->in.len -= (size_t)used;
			l->in.p[l->in.len] = 0; /* events may have come with the head */
			if (!ok) {
				err_set(e, r.status == 401 || r.status == 403 ?
				    BCH_PERM : BCH_TEMP, "relay refused the event "
				    "stream (%d)", r.status);
				http_resp_free(&r);
				link_close(l);
				return -1;
			}
			http_resp_free(&r);
			return 0;
		}
		if (used < 0)
			goto broken;
		buf_grow(&l->in, 4096);
		n = link_read(l, l->in.p + l->in.len, l->in.cap - l->in.len - 1);
		if (n <= 0)
			goto broken;
		l->in.len += (size_t)n;
	}
broken:
	buf_free(&q);
	link_close(l);
	err_set(e, BCH_TEMP, "relay %s: event stream lost", s->cfg->url);
	return -1;
}

/* Take whole events off the front of the stream; 1 if any was a message. */
static int
events_consume(struct hs *h)
{
	struct link *l = &h->ev;
	int got = 0;
	char *end;

	/* Lines are measured, not NUL-terminated: a stream may hold any
	 * byte, and an id is taken only from a whole, clean "id:" line. */
	while (l->in.len && (end = memmem(l->in.p, l->in.len, "\n\n", 2))) {
		char *line = l->in.p;
		while (line <= end) {
			char *nl = memchr(line, '\n', (size_t)(end + 1 - line));
			size_t n = (size_t)(nl - line);
			if (n >= 5 && memcmp(line, "data:", 5) == 0)
				got = 1;
			else if (n > 4 && n - 4 <= ID_MAX_LEN &&
			    memcmp(line, "id: ", 4) == 0) {
				char id[ID_MAX_LEN + 1];
				memcpy(id, line + 4, n - 4);
				id[n - 4] = 0;
				if (strlen(id) == n - 4 && id_valid(id))
					memcpy(h->last_id, id, n - 3);
			}
			line = nl + 1;
		}
		end += 2;
		l->in.len -= (size_t)(end - l->in.p);
		memmove(l->in.p, end, l->in.len + 1);
	}
	if (l->in.len > 1 << 20)
		buf_reset(&l->in); /* a runaway event: drop it, relist anyway */
	return got;
}

static int
http_wait(struct spool *s, const char *agent, int timeout_ms, struct err *e)
{
	struct hs *h = s->impl;
	struct link *l = &h->ev;
	struct pollfd p;
	struct err local;
	int rc;

	if (!e)
		e = &local;
	if (l->fd < 0) {
		if (events_open(s, agent, e) < 0) {
			if (e && e->code == BCH_PERM)
				return -1;
			/* The relay is away: wait a little, then say "look". */
			poll(NULL, 0, timeout_ms < 0 || timeout_ms > 2000 ? 2000 :
			    timeout_ms);
			return 1;
		}
		return 1;
	}
	for (;;) {
		ssize_t n;
		if (events_consume(h))
			return 1;
		if (!(l->tls && tls_client_pending(l->tls))) {
			p.fd = l->fd;
			p.events = POLLIN;
			rc = poll(&p, 1, timeout_ms);
			if (rc < 0)
				return errno == EINTR ? 0 : err_sys(e, "poll");
			if (rc == 0)
				return 0;
		}
		buf_grow(&l->in, 16384);
		n = link_read(l, l->in.p + l->in.len, l->in.cap - l->in.len - 1);
		if (n <= 0) {
			if (n < 0 && errno == EINTR)
				return 0;
			link_close(l); /* reconnect on the next call, then relist */
			return 1;
		}
		l->in.len += (size_t)n;
		l->in.p[l->in.len] = 0;
	}
}

/* Which of rcpt appear in the JSON array key of a receipt. */
static void
mark(const struct json *j, const char *key, char **rcpt, size_t n, int *got,
    int val)
{
	int i = json_get(j, 0, key), k, t;
	size_t r;

	if (i < 0 || j->t[i].type != JSON_ARRAY)
		return;
	for (k = 0, t = i + 1; k < j->t[i].size; k++, t = json_next(j, t)) {
		char *name = NULL;
		if (json_string(j, t, NAME_MAX_LEN, &name, NULL) < 0)
			continue;
		for (r = 0; r < n; r++)
			if (strcmp(rcpt[r], name) == 0)
				got[r] = val;
		free(name);
	}
}

/* Receipts over the relay's GET /v1/receipt/<id> (ext), polled with a
 * growing interval: the relay answers at once, so this is the only wait
 * that polls. */
static int
http_await(struct spool *s, const char *id, char **rcpt, size_t n,
    int timeout_ms, int *got, struct err *e)
{
	char path[ID_MAX_LEN + 32];
	struct timespec t0;
	int delay = 50;

	if (!id_valid(id))
		return err_set(e, BCH_PERM, "invalid message id");
	snprintf(path, sizeof path, "/v1/receipt/%s", id);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct http_resp r;
		struct json j;
		const char *why;
		size_t i;
		int all = 1;
		long spent;
		if (call(s, "GET", path, token_of(s), NULL, &r, 1, e) < 0) {
			if (e && e->status == 404 && strstr(e->msg, "no such route"))
				err_set(e, BCH_PERM, "this relay does not support "
				    "--wait (it has no read receipts)");
			return -1;
		}
		if (json_parse(&j, r.body, r.body_len, 8, &why) == 0) {
			mark(&j, "read", rcpt, n, got, 1);
			mark(&j, "unread", rcpt, n, got, 0);
			json_free(&j);
		}
		http_resp_free(&r);
		for (i = 0; i < n; i++)
			all &= got[i];
		if (all)
			return 1;
		spent = io_ms_since(&t0);
		if (timeout_ms >= 0 && spent >= timeout_ms)
			return 0;
		if (timeout_ms >= 0 && spent + delay > timeout_ms)
			delay = (int)(timeout_ms - spent);
		if (poll(NULL, 0, delay) < 0 && errno == EINTR)
			return 0;
		if (delay < 1000)
			delay *= 2;
	}
}

static void
http_close(struct spool *s)
{
	struct hs *h = s->impl;

	link_close(&h->req);
	link_close(&h->ev);
	buf_free(&h->req.in);
	buf_free(&h->ev.in);
	free(h);
	free(s);
}

static const struct spool_ops http_ops = {
	http_reg, http_agents, http_subscribe, http_send, http_sync, http_list,
	http_peek, http_take, http_ack, http_release, http_wait, http_await,
	http_close, NULL, /* scan: spool_scan() lists */
};

struct spool *
spool_http_open(struct config *c, const char *prog, struct err *e)
{
	struct spool *s;
	struct hs *h = xcalloc(1, sizeof *h);

	if (url_parse(&h->url, c->url, e) < 0) {
		free(h);
		return NULL;
	}
	h->req.fd = h->ev.fd = -1;
	s = xcalloc(1, sizeof *s);
	s->ops = &http_ops;
	s->cfg = c;
	s->prog = prog;
	s->impl = h;
	return s;
}
