/* relay: the routes of PROTOCOL.md 5 over the spool interface.
 *
 * Design rationale. The relay is a user of spool.h like every other
 * program, so local and remote mode cannot drift apart. Personal tokens
 * live only as sha256 hex in agent records; an in-memory index maps the
 * hash to the agent, so a request costs one hash and one probe, and the
 * found hash is compared in constant time. A leased take keeps the
 * claim in cur/ under this process's pid: if the relay dies, the next
 * reader returns it, exactly as for a local claimer. A spool shared by
 * several relays (s->shared, spool-redis.c) keeps the token index,
 * leases, client ids and rate buckets itself, so that any relay can
 * answer for another; the relay then keeps only what its receipts need. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "agent.h"
#include "hash.h"
#include "json.h"
#include "relay.h"

#define SENT_RING 4096
#define SENT_HASH 8192 /* chains of the ring, a power of two */

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The hash is already uniform: its first hex digits pick the slot. */
static size_t
slot(const char *hash, size_t cap)
{
	size_t h = 0;
	int i;

	for (i = 0; i < 15; i++)
		h = h * 16 + (size_t)(hash[i] <= '9' ? hash[i] - '0' :
		    hash[i] - 'a' + 10);
	return h & (cap - 1);
}

static void tok_put(struct relay *r, const char *hash, const char *agent);
static void sent_clear(struct relay_sent *s);

static void
tok_grow(struct relay *r)
{
	struct relay_token *old = r->tok;
	size_t i, oldcap = r->captok;

	r->captok = oldcap ? oldcap * 2 : 64;
	r->tok = xcalloc(r->captok, sizeof *r->tok);
	r->ntok = 0;
	for (i = 0; i < oldcap; i++)
		if (old[i].hash[0])
			tok_put(r, old[i].hash, old[i].agent);
	free(old);
}

static void
tok_put(struct relay *r, const char *hash, const char *agent)
{
	size_t i;

	if (strlen(hash) != 64)
		return;
	if ((r->ntok + 1) * 2 > r->captok)
		tok_grow(r);
	for (i = slot(hash, r->captok);; i = (i + 1) & (r->captok - 1)) {
		struct relay_token *t = &r->tok[i];
		if (!t->hash[0]) {
			memcpy(t->hash, hash, 65);
			r->ntok++;
		} else if (strcmp(t->hash, hash) != 0) {
			continue;
		}
		snprintf(t->agent, sizeof t->agent, "%s", agent);
		t->tokens = r->burst;
		t->last = now_s();
		return;
	}
}

static struct relay_token *
tok_probe(struct relay *r, const char *hash)
{
	size_t i;

	if (!r->captok)
		return NULL;
	for (i = slot(hash, r->captok); r->tok[i].hash[0];
	    i = (i + 1) & (r->captok - 1))
		if (hash_equal(r->tok[i].hash, hash, 64))
			return &r->tok[i];
	return NULL;
}

/* The agent a personal token belongs to, or NULL (e->code set when a
 * shared spool, which holds the index then, could not answer). */
static struct relay_token *
tok_find(struct relay *r, const char *token, struct err *e)
{
	char hash[65], agent[NAME_MAX_LEN + 1];
	struct relay_token *t;

	e->code = 0;
	if (!*token)
		return NULL;
	hash_sha256_hex(token, strlen(token), hash);
	if ((t = tok_probe(r, hash)) || !r->sp->shared)
		return t;
	/* Ask the shared spool, and keep the answer: a token is never
	 * given to another agent, so it cannot go stale. */
	if (r->sp->shared->token(r->sp, hash, agent, e) <= 0)
		return NULL;
	tok_put(r, hash, agent);
	return tok_probe(r, hash);
}

int
relay_init(struct relay *r, struct spool *sp, struct config *cfg,
    const char *room_token, struct err *e)
{
	struct agent_rec *a;
	size_t n, i;

	memset(r, 0, sizeof *r);
	r->sp = sp;
	r->cfg = cfg;
	r->rate = r->rate > 0 ? r->rate : 50;
	r->burst = 100;
	r->lease_max = 3600;
	hash_sha256_hex(room_token, strlen(room_token), r->room_hash);
	r->sent = xcalloc(SENT_RING, sizeof *r->sent);
	r->sent_head = xcalloc(SENT_HASH, sizeof *r->sent_head);
	for (i = 0; i < SENT_HASH; i++)
		r->sent_head[i] = -1;
	tok_grow(r);
	if (sp->shared)
		return 0; /* the spool keeps the index */
	if (spool_agents(sp, &a, &n, e) < 0)
		return -1;
	for (i = 0; i < n; i++)
		if (a[i].token_hash)
			tok_put(r, a[i].token_hash, a[i].name);
	agent_list_free(a, n);
	return 0;
}

void
relay_free(struct relay *r)
{
	size_t i;

	relay_expire(r, 1);
	for (i = 0; i < SENT_RING; i++)
		sent_clear(&r->sent[i]);
	free(r->sent);
	free(r->sent_head);
	buf_free(&r->sent_event);
	free(r->tok);
	free(r->leases);
}

static void
fail(struct relay_answer *a, int status, const char *msg)
{
	a->status = status;
	buf_reset(&a->body);
	buf_adds(&a->body, "{\"error\":");
	json_put_string(&a->body, msg, strlen(msg));
	buf_adds(&a->body, "}");
}

static void
fail_err(struct relay_answer *a, const struct err *e)
{
	int st = e->status ? e->status : e->code == BCH_TEMP ? 503 : 400;

	fail(a, st, e->msg);
}

/* A string field of a JSON object body; NULL if absent or not a string. */
static char *
field(const struct http_req *q, const char *key, size_t max, int *bad)
{
	struct json j;
	const char *why;
	char *s = NULL;
	int i;

	if (json_parse(&j, q->body, q->body_len, 16, &why) < 0 ||
	    j.t[0].type != JSON_OBJECT) {
		json_free(&j);
		*bad = 1;
		return NULL;
	}
	i = json_get(&j, 0, key);
	if (i >= 0 && json_string(&j, i, max, &s, NULL) < 0)
		*bad = 1;
	json_free(&j);
	return s;
}

static long long
int_field(const struct http_req *q, const char *key)
{
	struct json j;
	const char *why;
	long long v = 0;
	int i;

	if (json_parse(&j, q->body, q->body_len, 16, &why) < 0)
		return 0;
	i = json_get(&j, 0, key);
	if (i >= 0 && json_is(&j, i, "true"))
		v = 1;
	else if (i >= 0 && json_int(&j, i, &v) < 0)
		v = 0;
	json_free(&j);
	return v;
}

static void
put_agent(struct buf *b, const struct agent_rec *a, const char *token)
{
	agent_encode(a, b, 0);
	if (token) {
		b->len -= 2; /* reopen the object ("\n}") for the token */
		buf_adds(b, ",\n  \"token\": ");
		json_put_string(b, token, strlen(token));
		buf_adds(b, "\n}");
	}
}

static void
route_register(struct relay *r, const struct http_req *q, const char *bearer,
    struct relay_answer *a)
{
	struct err te;
	struct relay_token *own = tok_find(r, bearer, &te);
	struct agent_rec rec, old;
	char bearer_hash[65], token[65], hash[65];
	int bad = 0, room;
	char *name = field(q, "name", NAME_MAX_LEN + 8, &bad);

	if (te.code) {
		free(name);
		return fail_err(a, &te);
	}
	hash_sha256_hex(bearer, strlen(bearer), bearer_hash);
	room = hash_equal(bearer_hash, r->room_hash, 64);
	if (!own && !room) {
		free(name);
		return fail(a, 401, "invalid token — registering needs the room "
		    "token (from the invite) or the name's own token");
	}
	if (bad || !name || !name_valid(name)) {
		free(name);
		return fail(a, 400, "invalid name — letters, digits, '.', '_' "
		    "and '-', at most 64");
	}
	if (own && strcmp(own->agent, name) == 0) {
		/* A refresh: the name's own token, no new token. */
		if (spool_register(r->sp, name, &rec, &te) < 0) {
			free(name);
			if (r->sp->shared)
				return fail_err(a, &te);
			return fail(a, 500, "cannot update the agent record");
		}
		a->status = 200;
		put_agent(&a->body, &rec, NULL);
		agent_free(&rec);
		free(name);
		return;
	}
	if (!room) {
		free(name);
		return fail(a, 403, "this token belongs to another agent");
	}
	/* A name is taken once it has a record: locally made or registered. */
	memset(&old, 0, sizeof old);
	{
		struct agent_rec *all;
		size_t n, i;
		int taken = 0;
		struct err e;
		if (spool_agents(r->sp, &all, &n, &e) < 0) {
			free(name);
			return fail_err(a, &e);
		}
		for (i = 0; i < n; i++)
			if (strcmp(all[i].name, name) == 0)
				taken = 1;
		agent_list_free(all, n);
		if (taken) {
			free(name);
			return fail(a, 409, "name already registered — pick "
			    "another, or use that name's own token");
		}
	}
	if (hash_random_hex(token, 32) < 0) {
		free(name);
		return fail(a, 503, "no randomness for a token, try again");
	}
	hash_sha256_hex(token, 64, hash);
	if (spool_register_token(r->sp, name, hash, &rec, &te) < 0) {
		free(name);
		if (r->sp->shared) /* 409 when another relay was first */
			return fail_err(a, &te);
		return fail(a, 503, "cannot write the agent record");
	}
	tok_put(r, hash, name);
	a->status = 201;
	put_agent(&a->body, &rec, token);
	agent_free(&rec);
	free(name);
}

static void
route_agents(struct relay *r, struct relay_answer *a)
{
	struct agent_rec *all;
	size_t n, i;
	struct err e;

	if (spool_agents(r->sp, &all, &n, &e) < 0)
		return fail_err(a, &e);
	buf_addc(&a->body, '[');
	for (i = 0; i < n; i++) {
		if (i)
			buf_addc(&a->body, ',');
		agent_encode(&all[i], &a->body, 0);
	}
	buf_addc(&a->body, ']');
	agent_list_free(all, n);
	a->status = 200;
}

static void
route_channels(struct relay *r, struct relay_answer *a)
{
	char **ch;
	size_t n, i;
	struct err e;

	if (spool_channels(r->sp, &ch, &n, &e) < 0)
		return fail_err(a, &e);
	buf_addc(&a->body, '[');
	for (i = 0; i < n; i++) {
		if (i)
			buf_addc(&a->body, ',');
		json_put_string(&a->body, ch[i], strlen(ch[i]));
		free(ch[i]);
	}
	buf_addc(&a->body, ']');
	free(ch);
	a->status = 200;
}

static void
route_subscribe(struct relay *r, const struct http_req *q, int on,
    struct relay_answer *a)
{
	char chan[NAME_MAX_LEN + 2];
	int bad = 0, rc;
	char *c = field(q, "channel", NAME_MAX_LEN + 1, &bad);
	struct err e;

	if (bad || !c || strlen(c + (c[0] == '#')) > NAME_MAX_LEN) {
		free(c);
		fail(a, 400, "missing or invalid channel — #name, at most 64");
		return;
	}
	snprintf(chan, sizeof chan, "%s%s", c[0] == '#' ? "" : "#", c);
	free(c);
	if ((rc = spool_subscribe(r->sp, a->agent, chan, on, &e)) < 0)
		return fail_err(a, &e);
	a->status = 200;
	buf_printf(&a->body, "{\"ok\":true,\"changed\":%s}",
	    rc ? "true" : "false");
}

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
	double now = now_s();

	if (r->sp->shared) { /* one bucket for all the relays */
		struct err e;
		int rc = r->sp->shared->rate(r->sp, t->agent, r->rate, r->burst,
		    &a->retry_after, &e);
		if (rc < 0)
			fail_err(a, &e);
		else if (rc == 0)
			fail(a, 429, "sending too fast — slow down and retry");
		return rc > 0;
	}
	t->tokens += (now - t->last) * r->rate;
	if (t->tokens > r->burst)
		t->tokens = r->burst;
	t->last = now;
	if (t->tokens >= 1) {
		t->tokens -= 1;
		return 1;
	}
	a->retry_after = (int)((1 - t->tokens) / r->rate) + 1;
	fail(a, 429, "sending too fast — slow down and retry");
	return 0;
}

static void
route_send(struct relay *r, const struct http_req *q, struct relay_token *t,
    struct relay_answer *a)
{
	struct relay_sent *dup;
	struct msg m;
	struct err e;

	if (msg_decode(q->body, q->body_len, 1, &r->cfg->lim, &m, &e) < 0)
		return fail_err(a, &e);
	/* A shared spool makes the send itself idempotent. */
	if (m.id[0] && !r->sp->shared && (dup = sent_find(r, a->agent, m.id))) {
		msg_free(&m);
		a->status = 200;
		buf_adds(&a->body, dup->json);
		return;
	}
	if (!rate_ok(r, t, a)) {
		msg_free(&m);
		return;
	}
	free(m.from);
	m.from = xstrdup(a->agent); /* from the token, never the request */
	if (spool_send(r->sp, &m, &e) < 0) {
		msg_free(&m);
		return fail_err(a, &e);
	}
	msg_encode(&m, &a->body);
	{
		/* ext: who it went to, for the sender's --wait. */
		size_t i;
		a->body.len--;
		buf_adds(&a->body, ",\"recipients\":[");
		for (i = 0; i < r->sp->nrcpt; i++) {
			if (i)
				buf_addc(&a->body, ',');
			json_put_string(&a->body, r->sp->rcpt[i],
			    strlen(r->sp->rcpt[i]));
		}
		buf_adds(&a->body, "]}");
	}
	sent_add(r, a->agent, m.id, a->body.p);
	/* The event its recipients' streams get (relay_sent_to()). */
	buf_reset(&r->sent_event);
	buf_printf(&r->sent_event, "id: %s\ndata: ", m.id);
	msg_encode(&m, &r->sent_event);
	buf_adds(&r->sent_event, "\n\n");
	a->sent = 1;
	a->status = 200;
	msg_free(&m);
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
			return fail_err(a, &e);
		if (rc > 0)
			sent = &mine;
	}
	if (!sent) {
		fail(a, 404, "unknown message — receipts are kept for your "
		    "recent sends only");
		return;
	}
	got = xcalloc(sent->nrcpt + 1, sizeof *got);
	if (spool_await(r->sp, id, sent->rcpt, sent->nrcpt, 0, got, &e) < 0) {
		free(got);
		sent_clear(&mine);
		fail_err(a, &e);
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
		fail_err(a, &e);
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

static void
route_take(struct relay *r, const struct http_req *q, struct relay_answer *a)
{
	struct spool_item it;
	struct spool_claim c;
	struct msg m;
	struct err e;
	char name[ID_MAX_LEN + 8];
	int bad = 0, rc;
	char *id = field(q, "id", ID_MAX_LEN, &bad);
	long long keep = int_field(q, "keep"), lease = int_field(q, "lease");

	if (bad || !id || !id_valid(id)) {
		free(id);
		fail(a, 400, "missing or invalid id");
		return;
	}
	memset(&it, 0, sizeof it);
	snprintf(name, sizeof name, "%s.json", id);
	snprintf(it.id, sizeof it.id, "%s", id);
	it.name = name;
	free(id);
	rc = spool_take(r->sp, a->agent, &it, &m, &c, &e);
	if (rc < 0) {
		fail_err(a, &e);
		return;
	}
	a->status = 200;
	if (rc == 0) {
		buf_adds(&a->body, "{\"message\":null}");
		return;
	}
	buf_adds(&a->body, "{\"message\":");
	msg_encode(&m, &a->body);
	buf_addc(&a->body, '}');
	if (lease > 0 && r->sp->shared) { /* any relay can settle it */
		if (r->sp->shared->lease(r->sp, &c, lease > r->lease_max ?
		    r->lease_max : (int)lease, &e) < 0)
			fail_err(a, &e);
	} else if (lease > 0) {
		struct relay_lease *l;
		if (lease > r->lease_max)
			lease = r->lease_max;
		r->leases = xrealloc(r->leases,
		    (r->nleases + 1) * sizeof *r->leases);
		l = &r->leases[r->nleases++];
		l->claim = c;
		snprintf(l->id, sizeof l->id, "%s", it.id);
		l->expires = time(NULL) + (time_t)lease;
	} else if (spool_ack(r->sp, &c, keep != 0, &e) < 0) {
		fail_err(a, &e);
	}
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
	char *id = field(q, "id", ID_MAX_LEN, &bad);
	long long keep = int_field(q, "keep");

	if (r->sp->shared) {
		rc = id ? r->sp->shared->settle(r->sp, a->agent, id, ack,
		    keep != 0, &e) : 0;
		free(id);
		if (rc < 0)
			return fail_err(a, &e);
		if (rc == 0)
			return fail(a, 404, "no lease on that id — it expired or "
			    "was never taken");
		a->status = 200;
		buf_adds(&a->body, "{\"ok\":true}");
		return;
	}
	l = id ? lease_find(r, a->agent, id) : NULL;
	free(id);
	if (!l) {
		fail(a, 404, "no lease on that id — it expired or was never taken");
		return;
	}
	rc = ack ? spool_ack(r->sp, &l->claim, keep != 0, &e) :
	    spool_release(r->sp, &l->claim, &e);
	lease_drop(r, l);
	if (rc < 0) {
		fail_err(a, &e);
		return;
	}
	a->status = 200;
	buf_adds(&a->body, "{\"ok\":true}");
}

void
relay_expire(struct relay *r, int all)
{
	time_t now = time(NULL);
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
		fail(a, 403, "that is another agent's inbox — use your own name");
		return -1;
	}
	return 1;
}

static const char *
bearer_of(const struct http_req *q)
{
	if (strncasecmp(q->auth, "Bearer ", 7) != 0)
		return "";
	return q->auth + 7;
}

static void
route(struct relay *r, const struct http_req *q, struct relay_answer *a)
{
	char path[sizeof q->path];
	const char *bearer = bearer_of(q);
	struct relay_token *t;
	struct err te;
	int get = strcmp(q->method, "GET") == 0;
	int post = strcmp(q->method, "POST") == 0;

	a->status = 0;
	a->sse = 0;
	a->sent = 0;
	a->retry_after = 0;
	a->agent[0] = 0;
	buf_reset(&a->body);
	snprintf(path, sizeof path, "%s", q->path);
	path[strcspn(path, "?#")] = 0;
	if (strcmp(path, "/v1/health") == 0) {
		a->status = 200;
		buf_adds(&a->body, "{\"ok\":true,\"service\":\"backchannel-relay\"}");
		return;
	}
	if (strcmp(path, "/v1/register") == 0) {
		if (!post)
			return fail(a, 405, "use POST");
		return route_register(r, q, bearer, a);
	}
	if (strncmp(path, "/v1/", 4) != 0)
		return fail(a, 404, "no such route");
	if (!(t = tok_find(r, bearer, &te)) && te.code)
		return fail_err(a, &te);
	if (!t)
		return fail(a, 401, "missing or invalid token — use your "
		    "personal token (bch join gives you one)");
	snprintf(a->agent, sizeof a->agent, "%s", t->agent);
	if (get && strcmp(path, "/v1/agents") == 0)
		return route_agents(r, a);
	if (get && strcmp(path, "/v1/channels") == 0)
		return route_channels(r, a);
	if (post && strcmp(path, "/v1/subscribe") == 0)
		return route_subscribe(r, q, 1, a);
	if (post && strcmp(path, "/v1/unsubscribe") == 0)
		return route_subscribe(r, q, 0, a);
	if (post && strcmp(path, "/v1/send") == 0)
		return route_send(r, q, t, a);
	if (post && strcmp(path, "/v1/take") == 0)
		return route_take(r, q, a);
	if (post && strcmp(path, "/v1/ack") == 0)
		return route_settle(r, q, 1, a);
	if (post && strcmp(path, "/v1/release") == 0)
		return route_settle(r, q, 0, a);
	if (get && strncmp(path, "/v1/receipt/", 12) == 0) {
		if (!id_valid(path + 12))
			return fail(a, 400, "invalid message id");
		return route_receipt(r, path + 12, a);
	}
	if (get) {
		int rc = own_path(path, "/v1/inbox/", a);
		if (rc > 0)
			return route_inbox(r, a);
		if (rc < 0)
			return;
		rc = own_path(path, "/v1/events/", a);
		if (rc > 0) {
			a->status = 200;
			a->sse = 1;
			return;
		}
		if (rc < 0)
			return;
	}
	fail(a, 404, "no such route");
}

void
relay_handle(struct relay *r, const struct http_req *q,
    struct relay_answer *a)
{
	route(r, q, a);
	/* A shared spool that is away (Redis restarting) comes back soon. */
	if (a->status == 503 && !a->retry_after && r->sp->shared)
		a->retry_after = 1;
}
