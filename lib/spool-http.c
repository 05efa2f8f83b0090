/* spool-http: the spool interface against a relay (PROTOCOL.md 5) — each
 * operation as a request. The links to the relay, a request with its
 * retries, and the event stream are in spool-http-conn.c; what the two
 * share is in spool-http.h.
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
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent.h"
#include "hash.h"
#include "io.h"
#include "json.h"
#include "spool.h"
#include "spool-http.h"

#define LEASE_SECONDS 300

static void
put_kv(struct buf *b, const char *k, const char *v, int first)
{
	if (!first)
		buf_addc(b, ',');
	json_put_string(b, k, strlen(k));
	buf_addc(b, ':');
	json_put_string(b, v, strlen(v));
}

/* A token the relay issues goes into every later request's header, and
 * into config.json and tokens/<name>: one word of printable ASCII. */
static int
bearer_ok(const char *t)
{
	size_t i;

	for (i = 0; t[i]; i++)
		if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
			return 0;
	return i > 0;
}

static int
http_reg(struct spool *s, const char *name, const char *token_hash,
    struct agent_rec *out, struct err *e)
{
	struct buf b = BUF_INIT;
	struct http_resp r;
	struct agent_rec a;
	char mine[65];
	int rc;

	(void)token_hash;
	buf_addc(&b, '{');
	put_kv(&b, "name", name, 1);
	/* A token of our choosing (ext): a retry after a lost answer then
	 * finds the name registered under it and is answered 200, where it
	 * would have found the name taken. A relay without the ext makes
	 * its own, which the answer carries. The caller's choice, when it
	 * made one (and kept it first), else one made here. */
	if (s->cfg->chosen && hash_hex64(s->cfg->chosen))
		put_kv(&b, "token", s->cfg->chosen, 0);
	else if (hash_random_hex(mine, 32) == 0)
		put_kv(&b, "token", mine, 0);
	buf_addc(&b, '}');
	rc = hs_call(s, "POST", "/v1/register", hs_token(s), &b, &r, HS_RETRY,
	    e);
	buf_free(&b);
	if (rc < 0)
		return -1;
	rc = agent_decode(r.body, r.body_len, &a, e);
	http_resp_free(&r);
	if (rc < 0)
		return err_set(e, BCH_TEMP, "relay sent a malformed agent record");
	if (a.token && !bearer_ok(a.token)) {
		agent_free(&a);
		return err_set(e, BCH_PERM, "the relay at %s answered with a "
		    "personal token that is not one word of printable ASCII — "
		    "it is not a backchannel relay", s->cfg->url);
	}
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

	if (hs_call(s, "GET", "/v1/agents", hs_token(s), NULL, &r, HS_RETRY,
	    e) < 0)
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
	rc = hs_call(s, "POST", on ? "/v1/subscribe" : "/v1/unsubscribe",
	    hs_token(s), &b, &r, HS_RETRY, e);
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
	rc = hs_call(s, "POST", "/v1/send", hs_token(s), &b, &r, HS_RETRY, e);
	buf_free(&b);
	if (rc < 0)
		return -1;
	/* The answer is the stored message: anything else (a proxy's page,
	 * a stranger's "ok") is no sign that it was stored. */
	if (msg_decode(r.body, r.body_len, 0, &s->cfg->rlim, &got, NULL) < 0) {
		http_resp_free(&r);
		err_set(e, BCH_TEMP, "relay %s answered the send with something "
		    "other than the stored message — it may not have been "
		    "stored; is it a backchannel relay?", s->cfg->url);
		return err_status(e, 502);
	}
	rc = take_recipients(s, &r);
	snprintf(m->id, sizeof m->id, "%s", got.id);
	snprintf(m->ts, sizeof m->ts, "%s", got.ts);
	free(m->to);
	m->to = xstrdup(got.to);
	msg_free(&got);
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

int
hs_add_item(void *arg, const char *p, size_t n)
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

/* A listing cut short (HS_CUT): keep its whole elements, close the
 * array after the last (the cut may end right after it: one byte more
 * is needed). -1 if not even one is whole. */
static int
list_whole(struct http_resp *r)
{
	size_t i, last = 0;
	int depth = 0, str = 0, esc = 0;

	for (i = 0; i < r->body_len; i++) {
		char c = r->body[i];
		if (str) {
			if (esc)
				esc = 0;
			else if (c == '\\')
				esc = 1;
			else if (c == '"')
				str = 0;
		} else if (c == '"') {
			str = 1;
		} else if (c == '[' || c == '{') {
			depth++;
		} else if ((c == ']' || c == '}') && --depth == 1) {
			last = i + 1;
		}
	}
	if (!last)
		return -1;
	r->body = xrealloc(r->body, last + 2);
	r->body[last] = ']';
	r->body[last + 1] = 0;
	r->body_len = last + 1;
	return 0;
}

/* An inbox over what one answer may hold (the relay lists it whole:
 * PROTOCOL.md 5) is listed in parts: its oldest messages, as many as
 * the answer's first ANSWER_MAX bytes hold; the rest once they are
 * taken. s->more tells the reader (and spool_wait()) to list again at
 * once, unless the part ends where the last one did: a reader that
 * took nothing would only see it again. */
static int
http_list(struct spool *s, const char *agent, struct spool_item **items,
    size_t *n, struct err *e)
{
	struct hs *h = s->impl;
	struct items_acc acc = { s, NULL, 0 };
	struct http_resp r;
	char path[NAME_MAX_LEN + 16];

	snprintf(path, sizeof path, "/v1/inbox/%s", agent);
	if (hs_call(s, "GET", path, hs_token(s), NULL, &r, HS_RETRY | HS_CUT,
	    e) < 0)
		return -1;
	if (r.truncated && list_whole(&r) < 0) {
		http_resp_free(&r);
		return err_set(e, BCH_TEMP, "relay sent a malformed list");
	}
	if (each(&r, hs_add_item, &acc, e) < 0) {
		http_resp_free(&r);
		return -1;
	}
	s->cut = r.truncated;
	s->more = 0;
	if (r.truncated && acc.n) {
		s->more = strcmp(h->cut_id, acc.it[acc.n - 1].id) != 0;
		snprintf(h->cut_id, sizeof h->cut_id, "%s",
		    acc.it[acc.n - 1].id);
	} else {
		h->cut_id[0] = 0;
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
	rc = hs_call(s, "POST", "/v1/take", hs_token(s), &b, &r, 0, e);
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
	if (rc == 1) {
		memset(c, 0, sizeof *c);
		snprintf(c->agent, sizeof c->agent, "%s", agent);
		snprintf(c->name, sizeof c->name, "%s", it->id);
		c->path = xstrdup(it->id);
		/* A relay that holds no lease says none: it deleted the
		 * message on take, as a compat relay does. */
		c->gone = json_get(&j, 0, "lease") < 0;
	}
	json_free(&j);
	http_resp_free(&r);
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
	rc = hs_call(s, "POST", route, hs_token(s), &b, &r, HS_RETRY, &mine);
	buf_free(&b);
	free(c->path);
	c->path = NULL;
	/* 404: no lease. An ack's message is gone all the same, a leased
	 * release's is back in the inbox, and a message taken from a relay
	 * without leases was deleted on take. */
	if (rc < 0 && mine.status == 404 && c->gone &&
	    strcmp(route, "/v1/release") == 0)
		err_set(&mine, BCH_PERM, "message %.8s was deleted by the relay "
		    "when it was taken (the relay holds no leases): it cannot "
		    "be put back", c->name);
	else if (rc < 0 && mine.status == 404)
		return 0;
	if (rc < 0) {
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
		if (hs_call(s, "GET", path, hs_token(s), NULL, &r, HS_RETRY,
		    e) < 0) {
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
	buf_free(&h->arrived);
	free(h);
	free(s);
}

static const struct spool_ops http_ops = {
	http_reg, http_agents, http_subscribe, http_send, http_sync, http_list,
	http_peek, http_take, http_ack, http_release, hs_wait, http_await,
	http_close, NULL, /* scan: spool_scan() lists */
	hs_arrived,
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
