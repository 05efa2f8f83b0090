/* relay: the routes of PROTOCOL.md 5 over the spool interface — the
 * request's route and token, registration and the room's directory;
 * registration is in relay-register.c, the mail routes in relay-mail.c,
 * relay-impl.h what they share.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "agent.h"
#include "hash.h"
#include "json.h"
#include "relay-impl.h"

double
relay_now(void)
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
		h = h * 16 + (size_t)hex_digit(hash[i]);
	return h & (cap - 1);
}

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
			relay_tok_put(r, old[i].hash, old[i].agent);
	free(old);
}

void
relay_tok_put(struct relay *r, const char *hash, const char *agent)
{
	size_t i;

	if (!hash_hex64(hash))
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
		t->last = relay_now();
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
struct relay_token *
relay_tok_find(struct relay *r, const char *token, struct err *e)
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
	relay_tok_put(r, hash, agent);
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
	r->rate = 50; /* bch-relayd sets --rate's after this */
	r->burst = 100;
	r->lease_max = 3600;
	hash_sha256_hex(room_token, strlen(room_token), r->room_hash);
	relay_mail_init(r);
	tok_grow(r);
	if (sp->shared)
		return 0; /* the spool keeps the index */
	if (spool_agents(sp, &a, &n, e) < 0)
		return -1;
	for (i = 0; i < n; i++) {
		if (!a[i].token_hash)
			continue;
		if (hash_hex64(a[i].token_hash))
			relay_tok_put(r, a[i].token_hash, a[i].name);
		else
			fprintf(stderr, "%s: skipping the tokenHash of agent "
			    "record %s: not 64 lowercase hex digits — no token "
			    "speaks for %s until it is fixed, or the record "
			    "deleted and %s registered again\n", sp->prog,
			    a[i].name, a[i].name, a[i].name);
	}
	agent_list_free(a, n);
	return 0;
}

void
relay_free(struct relay *r)
{
	relay_mail_free(r);
	free(r->tok);
}

void
relay_fail(struct relay_answer *a, int status, const char *msg)
{
	a->status = status;
	buf_reset(&a->body);
	buf_adds(&a->body, "{\"error\":");
	json_put_string(&a->body, msg, strlen(msg));
	buf_adds(&a->body, "}");
}

void
relay_fail_err(struct relay_answer *a, const struct err *e)
{
	int st = e->status ? e->status : e->code == BCH_TEMP ? 503 : 400;

	relay_fail(a, st, e->msg);
}

char *
relay_field(const struct http_req *q, const char *key, size_t max, int *bad)
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

int
relay_bool_field(const struct http_req *q, const char *key)
{
	struct json j;
	const char *why;
	int i, v = 0;

	if (json_parse(&j, q->body, q->body_len, 16, &why) < 0)
		return 0; /* relay_field() says the body is bad */
	i = json_get(&j, 0, key);
	if (i >= 0)
		v = json_is(&j, i, "true") ? 1 : json_is(&j, i, "false") ? 0 : -1;
	json_free(&j);
	return v;
}

int
relay_int_field(const struct http_req *q, const char *key, long long min,
    long long max, long long *out)
{
	struct json j;
	const char *why;
	long long v;
	int i, rc = 0;

	if (json_parse(&j, q->body, q->body_len, 16, &why) < 0)
		return 0; /* relay_field() says the body is bad */
	i = json_get(&j, 0, key);
	if (i >= 0) {
		rc = json_int(&j, i, &v) < 0 || v < min || v > max ? -1 : 1;
		if (rc > 0)
			*out = v;
	}
	json_free(&j);
	return rc;
}

static void
route_agents(struct relay *r, struct relay_answer *a)
{
	struct agent_rec *all;
	size_t n, i;
	struct err e;

	if (spool_agents(r->sp, &all, &n, &e) < 0)
		return relay_fail_err(a, &e);
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
		return relay_fail_err(a, &e);
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
	char *c = relay_field(q, "channel", NAME_MAX_LEN + 1, &bad);
	struct err e;

	if (bad || !c || strlen(c + (c[0] == '#')) > NAME_MAX_LEN) {
		free(c);
		relay_fail(a, 400,
		    "missing or invalid channel — #name, at most 64");
		return;
	}
	snprintf(chan, sizeof chan, "%s%s", c[0] == '#' ? "" : "#", c);
	free(c);
	if ((rc = spool_subscribe(r->sp, a->agent, chan, on, &e)) < 0)
		return relay_fail_err(a, &e);
	a->status = 200;
	buf_printf(&a->body, "{\"ok\":true,\"changed\":%s}",
	    rc ? "true" : "false");
}

static const char *
bearer_of(const struct http_req *q)
{
	if (strncasecmp(q->auth, "Bearer ", 7) != 0)
		return "";
	return q->auth + 7;
}

/* Every answer starts empty: a is reused from request to request. */
static void
answer_reset(struct relay_answer *a)
{
	a->status = 0;
	a->sse = 0;
	a->retry_after = 0;
	a->allow = NULL;
	a->agent[0] = 0;
	a->queued = NULL;
	buf_reset(&a->body);
}

/* The methods the route of path takes (HEAD wherever GET is but on a
 * stream, OPTIONS everywhere), for the 405 to a method it does not take
 * and the answer to OPTIONS; NULL for a path that is no route (404). A
 * path under a prefix is the route's, as every method it takes answers
 * for it. */
static const char *
route_allow(const char *path)
{
	static const struct {
		const char *path;
		int prefix;
		const char *allow;
	} routes[] = {
		{ "/v1/health", 0, "GET, HEAD, OPTIONS" },
		{ "/v1/register", 0, "POST, OPTIONS" },
		{ "/v1/agents", 0, "GET, HEAD, OPTIONS" },
		{ "/v1/channels", 0, "GET, HEAD, OPTIONS" },
		{ "/v1/subscribe", 0, "POST, OPTIONS" },
		{ "/v1/unsubscribe", 0, "POST, OPTIONS" },
		{ "/v1/send", 0, "POST, OPTIONS" },
		{ "/v1/take", 0, "POST, OPTIONS" },
		{ "/v1/ack", 0, "POST, OPTIONS" },
		{ "/v1/release", 0, "POST, OPTIONS" },
		{ "/v1/receipt/", 1, "GET, HEAD, OPTIONS" },
		{ "/v1/inbox/", 1, "GET, HEAD, OPTIONS" },
		{ "/v1/events/", 1, "GET, OPTIONS" },
	};
	size_t i;

	for (i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (routes[i].prefix ? strncmp(path, routes[i].path,
		    strlen(routes[i].path)) == 0 :
		    strcmp(path, routes[i].path) == 0)
			return routes[i].allow;
	return NULL;
}

/* 405 for a route that does not take the method, with what it takes;
 * 404 for a path that is no route. */
static void
no_route(const char *path, struct relay_answer *a)
{
	const char *allow = route_allow(path);

	if (!allow)
		return relay_fail(a, 404, "no such route");
	relay_fail(a, 405, strncmp(allow, "POST,", 5) == 0 ? "use POST" :
	    strcmp(allow, "GET, OPTIONS") == 0 ? "use GET" : "use GET or HEAD");
	a->allow = allow;
}

/* OPTIONS (RFC 9110 9.3.7): the methods of a route, or with "*" of the
 * relay as a whole, in Allow and with no body. No token is needed: the
 * answer says no more than PROTOCOL.md does, and the asker (a health
 * checker, a proxy's ping, a browser's preflight) sends none. */
static void
route_options(const char *path, struct relay_answer *a)
{
	const char *allow = strcmp(path, "*") == 0 ?
	    "GET, HEAD, POST, OPTIONS" : route_allow(path);

	if (!allow)
		return relay_fail(a, 404, "no such route");
	a->status = 200;
	a->allow = allow;
}

/* q's path without its query or fragment, into path. */
static void
route_path(const struct http_req *q, char *path, size_t size)
{
	snprintf(path, size, "%s", q->path);
	path[strcspn(path, "?#")] = 0;
}

/* The token checks of the route of path, which q's head alone decides:
 * 1 with a answered (401, or a shared spool that cannot say), 0 for the
 * route to go on as *c. OPTIONS, health, a method register does not take
 * and a path that is no route need no token; register needs the room
 * token or a name's own, every other route a personal token. The head
 * (relay_head()) and the whole request (route()) are checked here both,
 * so that the two cannot disagree. */
static int
gate(struct relay *r, const struct http_req *q, const char *path,
    struct caller *c, struct relay_answer *a)
{
	const char *bearer = bearer_of(q);
	int reg = strcmp(path, "/v1/register") == 0;
	char hash[65];
	struct err te;

	memset(c, 0, sizeof *c);
	if (strcmp(q->method, "OPTIONS") == 0 ||
	    strcmp(path, "/v1/health") == 0 || strncmp(path, "/v1/", 4) != 0 ||
	    (reg && strcmp(q->method, "POST") != 0))
		return 0;
	if (!(c->t = relay_tok_find(r, bearer, &te)) && te.code) {
		relay_fail_err(a, &te);
		return 1;
	}
	if (reg) {
		hash_sha256_hex(bearer, strlen(bearer), hash);
		c->room = hash_equal(hash, r->room_hash, 64);
	}
	if (c->t || c->room)
		return 0;
	relay_fail(a, 401, reg ? "invalid token — registering needs the "
	    "room token (from the invite) or the name's own token" :
	    "missing or invalid token — use your personal token (bch join "
	    "gives you one)");
	return 1;
}

static void
route(struct relay *r, const struct http_req *q, struct relay_answer *a)
{
	char path[sizeof q->path];
	struct caller c;
	/* HEAD is GET without the body (which the caller leaves off). */
	int get = strcmp(q->method, "GET") == 0 || strcmp(q->method, "HEAD") == 0;
	int post = strcmp(q->method, "POST") == 0;

	answer_reset(a);
	route_path(q, path, sizeof path);
	if (gate(r, q, path, &c, a))
		return;
	if (strcmp(q->method, "OPTIONS") == 0)
		return route_options(path, a);
	if (strcmp(path, "/v1/health") == 0) {
		if (!get)
			return no_route(path, a);
		a->status = 200;
		buf_adds(&a->body, "{\"ok\":true,\"service\":\"backchannel-relay\"}");
		return;
	}
	if (strcmp(path, "/v1/register") == 0) {
		if (!post)
			return no_route(path, a);
		return relay_route_register(r, q, &c, a);
	}
	if (strncmp(path, "/v1/", 4) != 0)
		return relay_fail(a, 404, "no such route");
	snprintf(a->agent, sizeof a->agent, "%s", c.t->agent);
	if (get && strcmp(path, "/v1/agents") == 0)
		return route_agents(r, a);
	if (get && strcmp(path, "/v1/channels") == 0)
		return route_channels(r, a);
	if (post && strcmp(path, "/v1/subscribe") == 0)
		return route_subscribe(r, q, 1, a);
	if (post && strcmp(path, "/v1/unsubscribe") == 0)
		return route_subscribe(r, q, 0, a);
	if (!relay_route_mail(r, q, path, c.t, a))
		no_route(path, a);
}

int
relay_head(struct relay *r, const struct http_req *q, struct relay_answer *a)
{
	char path[sizeof q->path];
	struct caller c;

	answer_reset(a);
	route_path(q, path, sizeof path);
	if (gate(r, q, path, &c, a) && a->status == 401)
		return 1;
	answer_reset(a); /* the route decides, once the body is in */
	return 0;
}

void
relay_answered(struct relay *r, struct relay_answer *a)
{
	/* A shared spool that is away (Redis restarting) comes back soon. */
	if (a->status == 503 && !a->retry_after && r->sp->shared)
		a->retry_after = 1;
}

void
relay_handle(struct relay *r, const struct http_req *q,
    struct relay_answer *a)
{
	route(r, q, a);
	relay_answered(r, a);
}
