/* relay-mail: the relay's mail routes over the spool — send, receipts,
 * inbox, take and its lease, ack and release, the event stream — and
 * the state they keep: the ring of recent sends and the leases.
 *
 * Design rationale. The ring remembers each recent send's answer and
 * recipients, so a retried send with the same client id gets the first
 * answer again instead of a second message, a receipt knows whom to ask
 * about, and the event loop knows which streams already had the event;
 * a hash chain over the ring finds a send by id without a scan. */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "relay-impl.h"

#define SENT_RING 4096
#define SENT_HASH 8192 /* chains of the ring, a power of two */

static void
sent_clear(struct relay_sent *s)
{
	size_t i;

	for (i = 0; i < s->nrcpt; i++)
		free(s->rcpt[i]);
	free(s->rcpt);
	free(s->json);
	memset(s, 0, sizeof *s);
}

static int *
sent_chain(struct relay *r, const char *id)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	while (*id)
		h = (h ^ (unsigned char)*id++) * 16777619u;
	return &r->sent_head[h & (SENT_HASH - 1)];
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Has this sender sent this client id lately? Its stored answer. */
static struct relay_sent *
sent_find(struct relay *r, const char *from, const char *id)
{
	int i;

	for (i = *sent_chain(r, id); i >= 0; i = r->sent[i].next)
		if (strcmp(r->sent[i].id, id) == 0 &&
		    strcmp(r->sent[i].from, from) == 0)
			return &r->sent[i];
	return NULL;
}

static void
sent_add(struct relay *r, const char *from, const char *id, const char *json)
{
	int slot = (int)r->sentpos, *p;
	struct relay_sent *s = &r->sent[slot];
	size_t i;

	if (s->json) { /* the oldest goes: out of its chain first */
		for (p = sent_chain(r, s->id); *p != slot;
		    p = &r->sent[*p].next)
			;
		*p = s->next;
	}
	sent_clear(s);
	snprintf(s->from, sizeof s->from, "%s", from);
	snprintf(s->id, sizeof s->id, "%s", id);
	s->json = xstrdup(json);
	s->rcpt = xcalloc(r->sp->nrcpt + 1, sizeof *s->rcpt);
	for (i = 0; i < r->sp->nrcpt; i++)
		s->rcpt[i] = xstrdup(r->sp->rcpt[i]);
	s->nrcpt = r->sp->nrcpt;
	qsort(s->rcpt, s->nrcpt, sizeof *s->rcpt, cmp_name); /* relay_sent_to */
	p = sent_chain(r, id);
	s->next = *p;
	*p = slot;
	r->sentpos = (r->sentpos + 1) % SENT_RING;
	if (r->nsent < SENT_RING)
		r->nsent++;
}

int
relay_sent_to(struct relay *r, const char *id, const char *agent)
{
	int i;

	for (i = *sent_chain(r, id); i >= 0; i = r->sent[i].next)
		if (strcmp(r->sent[i].id, id) == 0 &&
		    bsearch(&agent, r->sent[i].rcpt, r->sent[i].nrcpt,
		    sizeof *r->sent[i].rcpt, cmp_name))
			return 1;
	return 0;
}

static int
rate_ok(struct relay *r, struct relay_token *t, struct relay_answer *a)
{
	double now = relay_now();

	t->tokens += (now - t->last) * r->rate;
	if (t->tokens > r->burst)
		t->tokens = r->burst;
	t->last = now;
	if (t->tokens >= 1) {
		t->tokens -= 1;
		return 1;
	}
	a->retry_after = (int)((1 - t->tokens) / r->rate) + 1;
	relay_fail(a, 429, "sending too fast — slow down and retry");
	return 0;
}

/* The answer to a send stored: the message, and (ext) whom it went to,
 * for the sender's --wait. */
static void
sent_answer(struct relay *r, struct msg *m, const char *agent,
    struct relay_answer *a)
{
	size_t i;

	msg_encode(m, &a->body);
	a->body.len--;
	buf_adds(&a->body, ",\"recipients\":[");
	for (i = 0; i < r->sp->nrcpt; i++) {
		if (i)
			buf_addc(&a->body, ',');
		json_put_string(&a->body, r->sp->rcpt[i],
		    strlen(r->sp->rcpt[i]));
	}
	buf_adds(&a->body, "]}");
	sent_add(r, agent, m->id, a->body.p); /* relay_sent_to() */
	a->status = 200;
}

static void
route_send(struct relay *r, const struct http_req *q, struct relay_token *t,
    struct relay_answer *a)
{
	const struct spool_shared *sh = r->sp->shared;
	struct relay_sent *dup;
	struct limits lim = r->cfg->lim;
	struct msg m;
	struct err e;
	int rc;

	/* The request's JSON may escape what the message's does not: its
	 * length is held to the request's limit, the message stored to the
	 * encoded message's (as bch send takes a line). */
	lim.total = msg_request_max(&r->cfg->lim);
	if (msg_decode(q->body, q->body_len, 1, &lim, &m, &e) < 0)
		return relay_fail_err(a, &e);
	/* A shared spool makes the send itself idempotent. */
	if (m.id[0] && !sh && (dup = sent_find(r, a->agent, m.id))) {
		msg_free(&m);
		a->status = 200;
		buf_adds(&a->body, dup->json);
		return;
	}
	free(m.from);
	m.from = xstrdup(a->agent); /* from the token, never the request */
	/* A shared spool keeps one bucket for all the relays, and takes
	 * from it in the same step as the send, which the loop settles
	 * with the other sends of its round (relay_send_done). */
	if (sh) {
		if ((rc = sh->send_queue(r->sp, &m, r->rate, r->burst, &e)) == 0) {
			a->queued = xmalloc(sizeof m);
			*a->queued = m;
			return;
		}
	} else if (!rate_ok(r, t, a)) {
		msg_free(&m); /* a holds the 429 */
		return;
	} else {
		rc = spool_send(r->sp, &m, &e);
	}
	if (rc < 0)
		relay_fail_err(a, &e);
	else
		sent_answer(r, &m, a->agent, a);
	msg_free(&m);
}

void
relay_send_done(struct relay *r, struct msg *m, const char *agent,
    struct relay_answer *a)
{
	struct err e;

	if (r->sp->shared->send_done(r->sp, m, &a->retry_after, &e) < 0)
		relay_fail_err(a, &e);
	else
		sent_answer(r, m, agent, a);
	relay_answered(r, a);
	msg_free(m);
	free(m);
}

/* GET /v1/receipt/<id> (ext): which recipients have claimed a message
 * the caller sent lately. */
static void
route_receipt(struct relay *r, const char *id, struct relay_answer *a)
{
	struct relay_sent mine, *sent = sent_find(r, a->agent, id);
	int *got;
	size_t i;
	struct err e;

	memset(&mine, 0, sizeof mine);
	if (!sent && r->sp->shared) { /* sent through another relay */
		int rc = r->sp->shared->sent(r->sp, a->agent, id, &mine.rcpt,
		    &mine.nrcpt, &e);
		if (rc < 0)
			return relay_fail_err(a, &e);
		if (rc > 0)
			sent = &mine;
	}
	if (!sent) {
		relay_fail(a, 404, "unknown message — receipts are kept for "
		    "your recent sends only");
		return;
	}
	got = xcalloc(sent->nrcpt + 1, sizeof *got);
	if (spool_await(r->sp, id, sent->rcpt, sent->nrcpt, 0, got, &e) < 0) {
		free(got);
		sent_clear(&mine);
		relay_fail_err(a, &e);
		return;
	}
	buf_adds(&a->body, "{\"id\":");
	json_put_string(&a->body, id, strlen(id));
	buf_adds(&a->body, ",\"read\":[");
	for (i = 0; i < sent->nrcpt; i++)
		if (got[i]) {
			if (a->body.p[a->body.len - 1] != '[')
				buf_addc(&a->body, ',');
			json_put_string(&a->body, sent->rcpt[i],
			    strlen(sent->rcpt[i]));
		}
	buf_adds(&a->body, "],\"unread\":[");
	for (i = 0; i < sent->nrcpt; i++)
		if (!got[i]) {
			if (a->body.p[a->body.len - 1] != '[')
				buf_addc(&a->body, ',');
			json_put_string(&a->body, sent->rcpt[i],
			    strlen(sent->rcpt[i]));
		}
	buf_adds(&a->body, "]}");
	free(got);
	sent_clear(&mine);
	a->status = 200;
}

static void
route_inbox(struct relay *r, struct relay_answer *a)
{
	struct spool_item *it;
	size_t n, i, shown = 0;
	struct err e;

	if (spool_list(r->sp, a->agent, &it, &n, &e) < 0) {
		relay_fail_err(a, &e);
		return;
	}
	buf_addc(&a->body, '[');
	for (i = 0; i < n; i++) {
		struct msg m;
		if (spool_peek(r->sp, a->agent, &it[i], &m, &e) != 1)
			continue;
		if (shown++)
			buf_addc(&a->body, ',');
		msg_encode(&m, &a->body);
		msg_free(&m);
	}
	buf_addc(&a->body, ']');
	spool_items_free(it, n);
	a->status = 200;
}

static struct relay_lease *
lease_find(struct relay *r, const char *agent, const char *id)
{
	size_t i;

	for (i = 0; i < r->nleases; i++)
		if (strcmp(r->leases[i].id, id) == 0 &&
		    strcmp(r->leases[i].claim.agent, agent) == 0)
			return &r->leases[i];
	return NULL;
}

static void
lease_drop(struct relay *r, struct relay_lease *l)
{
	*l = r->leases[--r->nleases];
}

/* A take's fields: its id (to free), a lease in seconds (0 for none) and
 * keep. 0, or -1 with a answered 400: a take asked for with a lease or
 * keep it cannot have must not delete the message. */
static int
take_fields(const struct http_req *q, char **id, long long *lease, int *keep,
    struct relay_answer *a)
{
	int bad = 0;

	*lease = 0;
	*id = relay_field(q, "id", ID_MAX_LEN, &bad);
	if (bad || !*id || !id_valid(*id)) {
		relay_fail(a, 400, "missing or invalid id");
	} else if (relay_int_field(q, "lease", 1, INT_MAX, lease) < 0) {
		relay_fail(a, 400, "lease must be a whole number of seconds, "
		    "1 or more");
	} else if ((*keep = relay_bool_field(q, "keep")) < 0) {
		relay_fail(a, 400, "keep must be true or false");
	} else {
		return 0;
	}
	free(*id);
	*id = NULL;
	return -1;
}

/* Settle a message just taken: hold it for lease seconds, or delete it
 * (kept in cur/ with keep). */
static void
take_settle(struct relay *r, struct spool_claim *c, const char *id,
    long long lease, int keep, struct relay_answer *a)
{
	struct err e;

	if (lease > 0 && r->sp->shared) { /* any relay can settle it */
		if (r->sp->shared->lease(r->sp, c, (int)lease, &e) < 0)
			relay_fail_err(a, &e);
	} else if (lease > 0) {
		struct relay_lease *l;
		r->leases = xrealloc(r->leases,
		    (r->nleases + 1) * sizeof *r->leases);
		l = &r->leases[r->nleases++];
		l->claim = *c;
		snprintf(l->id, sizeof l->id, "%s", id);
		/* Monotonic and to the nanosecond: whole seconds of the
		 * wall clock would let the next tick end a lease up to a
		 * second early, and a step of the clock end them all. */
		l->expires = relay_now() + (double)lease;
	} else if (spool_ack(r->sp, c, keep, &e) < 0) {
		relay_fail_err(a, &e);
	}
}

static void
route_take(struct relay *r, const struct http_req *q, struct relay_answer *a)
{
	struct spool_item it;
	struct spool_claim c;
	struct msg m;
	struct err e;
	char name[ID_MAX_LEN + 8];
	char *id;
	long long lease;
	int keep, rc;

	if (take_fields(q, &id, &lease, &keep, a) < 0)
		return;
	memset(&it, 0, sizeof it);
	snprintf(name, sizeof name, "%s.json", id);
	snprintf(it.id, sizeof it.id, "%s", id);
	it.name = name;
	free(id);
	rc = spool_take(r->sp, a->agent, &it, &m, &c, &e);
	if (rc < 0) {
		relay_fail_err(a, &e);
		return;
	}
	a->status = 200;
	if (rc == 0) {
		buf_adds(&a->body, "{\"message\":null}");
		return;
	}
	if (lease > r->lease_max)
		lease = r->lease_max;
	buf_adds(&a->body, "{\"message\":");
	msg_encode(&m, &a->body);
	/* ext: the lease held, so a client knows it can give it back. */
	if (lease > 0)
		buf_printf(&a->body, ",\"lease\":%lld", lease);
	buf_addc(&a->body, '}');
	take_settle(r, &c, it.id, lease, keep, a);
	msg_free(&m);
}

/* POST /v1/ack and /v1/release: settle a leased take. */
static void
route_settle(struct relay *r, const struct http_req *q, int ack,
    struct relay_answer *a)
{
	struct relay_lease *l;
	struct err e;
	int bad = 0, rc;
	char *id = relay_field(q, "id", ID_MAX_LEN, &bad);
	int keep = relay_bool_field(q, "keep");

	if (keep < 0) {
		free(id);
		return relay_fail(a, 400, "keep must be true or false");
	}
	if (r->sp->shared) {
		rc = id ? r->sp->shared->settle(r->sp, a->agent, id, ack,
		    keep, &e) : 0;
		free(id);
		if (rc < 0)
			return relay_fail_err(a, &e);
		if (rc == 0)
			return relay_fail(a, 404, "no lease on that id — it "
			    "expired or was never taken");
		a->status = 200;
		buf_adds(&a->body, "{\"ok\":true}");
		return;
	}
	l = id ? lease_find(r, a->agent, id) : NULL;
	free(id);
	if (!l) {
		relay_fail(a, 404,
		    "no lease on that id — it expired or was never taken");
		return;
	}
	rc = ack ? spool_ack(r->sp, &l->claim, keep, &e) :
	    spool_release(r->sp, &l->claim, &e);
	lease_drop(r, l);
	if (rc < 0) {
		relay_fail_err(a, &e);
		return;
	}
	a->status = 200;
	buf_adds(&a->body, "{\"ok\":true}");
}

void
relay_expire(struct relay *r, int all)
{
	double now = relay_now();
	size_t i = 0;

	if (r->sp->shared) {
		/* Leases live on in the spool; any relay's sweep returns them. */
		if (!all)
			r->sp->shared->expire(r->sp, NULL);
		return;
	}
	while (i < r->nleases) {
		if (all || r->leases[i].expires <= now) {
			spool_release(r->sp, &r->leases[i].claim, NULL);
			lease_drop(r, &r->leases[i]);
			continue;
		}
		i++;
	}
}

void
relay_mail_init(struct relay *r)
{
	size_t i;

	r->sent = xcalloc(SENT_RING, sizeof *r->sent);
	r->sent_head = xcalloc(SENT_HASH, sizeof *r->sent_head);
	for (i = 0; i < SENT_HASH; i++)
		r->sent_head[i] = -1;
}

void
relay_mail_free(struct relay *r)
{
	size_t i;

	relay_expire(r, 1);
	for (i = 0; i < SENT_RING; i++)
		sent_clear(&r->sent[i]);
	free(r->sent);
	free(r->sent_head);
	free(r->leases);
}

void
relay_sse_backlog(struct relay *r, const char *agent, struct buf *out)
{
	struct spool_item *it;
	size_t n, i;

	if (spool_list(r->sp, agent, &it, &n, NULL) < 0)
		return;
	for (i = 0; i < n; i++)
		relay_sse_event(r, agent, it[i].name, out);
	spool_items_free(it, n);
}

int
relay_sse_event(struct relay *r, const char *agent, const char *name,
    struct buf *out)
{
	struct spool_item it;
	struct msg m;
	size_t len = strlen(name);

	memset(&it, 0, sizeof it);
	if (len < 6 || len - 5 > ID_MAX_LEN || strcmp(name + len - 5, ".json"))
		return 0;
	memcpy(it.id, name, len - 5);
	it.name = (char *)name;
	if (spool_peek(r->sp, agent, &it, &m, NULL) != 1)
		return 0;
	buf_printf(out, "id: %s\ndata: ", m.id);
	msg_encode(&m, out);
	buf_adds(out, "\n\n");
	msg_free(&m);
	return 1;
}

/* "/v1/inbox/<agent>": the agent, which must be the caller. */
static int
own_path(const char *path, const char *prefix, struct relay_answer *a)
{
	char who[NAME_MAX_LEN * 3 + 1];
	size_t n = strlen(prefix);

	if (strncmp(path, prefix, n) != 0)
		return 0;
	if (http_unescape(path + n, strlen(path + n), who, sizeof who) < 0 ||
	    strcmp(who, a->agent) != 0) {
		relay_fail(a, 403,
		    "that is another agent's inbox — use your own name");
		return -1;
	}
	return 1;
}

int
relay_route_mail(struct relay *r, const struct http_req *q, const char *path,
    struct relay_token *t, struct relay_answer *a)
{
	int get = strcmp(q->method, "GET") == 0;
	int head = strcmp(q->method, "HEAD") == 0; /* not for a stream */
	int post = strcmp(q->method, "POST") == 0;
	int rc;

	if (post && strcmp(path, "/v1/send") == 0) {
		route_send(r, q, t, a);
	} else if (post && strcmp(path, "/v1/take") == 0) {
		route_take(r, q, a);
	} else if (post && strcmp(path, "/v1/ack") == 0) {
		route_settle(r, q, 1, a);
	} else if (post && strcmp(path, "/v1/release") == 0) {
		route_settle(r, q, 0, a);
	} else if ((get || head) && strncmp(path, "/v1/receipt/", 12) == 0) {
		if (!id_valid(path + 12))
			relay_fail(a, 400, "invalid message id");
		else
			route_receipt(r, path + 12, a);
	} else if ((get || head) &&
	    (rc = own_path(path, "/v1/inbox/", a)) != 0) {
		if (rc > 0)
			route_inbox(r, a);
	} else if (get && (rc = own_path(path, "/v1/events/", a)) != 0) {
		if (rc > 0) { /* the loop streams from here */
			a->status = 200;
			a->sse = 1;
		}
	} else {
		return 0;
	}
	return 1;
}
