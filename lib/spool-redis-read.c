/* spool-redis-read: reading an inbox of the spool in Redis — listing,
 * claiming, settling and leasing claims, the arrivals a relay pushes, and
 * waiting for a message or a read receipt. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "spool-redis.h"

#define CLAIM_MS 60000 /* a take not yet leased nor acked */

/* A stored message that does not decode: out of the inbox, kept aside. */
static void
set_aside(struct spool *s, const char *agent, const redisReply *id,
          const redisReply *v, const char *why)
{
	struct rd *r = s->impl;
	char k[160], c[160];
	const char *set[4] = {"HSET", c, id->str, v->str};
	const char *del[3] = {"HDEL", k, id->str};
	size_t setn[4] = {4, 0, id->len, v->len}, deln[3] = {4, 0, id->len};
	redisReply *rep;
	struct err e;

	setn[1] = (size_t)snprintf(c, sizeof c, "%scorrupt:%s", r->prefix, agent);
	deln[1] = (size_t)snprintf(k, sizeof k, "%snew:%s", r->prefix, agent);
	if ((rep = rd_call(r, &e, 4, set, setn)))
		freeReplyObject(rep);
	if ((rep = rd_call(r, &e, 3, del, deln)))
		freeReplyObject(rep);
	fprintf(stderr,
	        "%s: corrupt message in %s's inbox (%s) — moved to "
	        "%s\n",
	        s->prog, agent, why, c);
}

int
rd_list(struct spool *s, const char *agent, struct spool_item **items,
        size_t *n, struct err *e)
{
	struct rd *r = s->impl;
	struct spool_item *out;
	char ts[40];
	const char *a[3] = {r->chan, agent, ts};
	redisReply *rep;
	size_t i, w = 0, kept = 0;

	*items = NULL;
	*n = 0;
	ts_now(ts);
	if (!(rep = rd_script(r, e, S_LIST, 3, a, NULL)))
		return -1;
	if (rep->type == REDIS_REPLY_NIL) {
		freeReplyObject(rep);
		return err_set(e, BCH_PERM,
		               "unknown agent \"%s\" — run bch init "
		               "%s first",
		               agent, agent);
	}
	if (rep->type != REDIS_REPLY_ARRAY)
		return rd_bad_reply(r, e, rep);
	out = xcalloc(rep->elements / 2 + 1, sizeof *out);
	for (i = 0; i + 1 < rep->elements; i += 2) {
		redisReply *id = rep->element[i], *v = rep->element[i + 1];
		struct spool_item *it = &out[w];
		struct msg m;
		struct err de;
		if (id->type != REDIS_REPLY_STRING ||
		    v->type != REDIS_REPLY_STRING)
			continue;
		if (!id_valid(id->str) || id->len > ID_MAX_LEN) {
			set_aside(s, agent, id, v, "not a message id");
			continue;
		}
		if (msg_decode(v->str, v->len, 0, &s->cfg->rlim, &m, &de) < 0) {
			set_aside(s, agent, id, v, de.msg);
			continue;
		}
		snprintf(it->id, sizeof it->id, "%s", id->str);
		snprintf(it->ts, sizeof it->ts, "%s", m.ts);
		it->name = xmalloc(id->len + 6); /* as the file name would be */
		snprintf(it->name, id->len + 6, "%s.json", id->str);
		it->scope = m.scope;
		m.scope = NULL;
		it->urgent = m.urgent;
		msg_free(&m);
		if (kept + v->len <= s->keep_raw) {
			kept += v->len;
			it->raw = xstrndup(v->str, v->len);
			it->rawlen = v->len;
		}
		w++;
	}
	freeReplyObject(rep);
	*items = out;
	*n = w;
	return 0;
}

/* it->id, or the id of the file name "<id>.json" the relay passes. */
static void
item_id(const struct spool_item *it, char *id)
{
	size_t len;

	snprintf(id, ID_MAX_LEN + 1, "%s", it->id);
	if (!id[0] && it->name && (len = strlen(it->name)) > 5 &&
	    strcmp(it->name + len - 5, ".json") == 0 && len - 5 <= ID_MAX_LEN)
		snprintf(id, ID_MAX_LEN + 1, "%.*s", (int)(len - 5), it->name);
}

static int
decode(struct spool *s, const char *agent, const char *json, size_t len,
       struct msg *m)
{
	struct err e;

	if (msg_decode(json, len, 0, &s->cfg->rlim, m, &e) < 0) {
		fprintf(stderr, "%s: corrupt message in %s's inbox: %s\n",
		        s->prog, agent, e.msg);
		return 0;
	}
	return 1;
}

int
rd_peek(struct spool *s, const char *agent, const struct spool_item *it,
        struct msg *m, struct err *e)
{
	struct rd *r = s->impl;
	char k[160], id[ID_MAX_LEN + 1];
	const char *a[3] = {"HGET", k, id};
	redisReply *rep;
	int rc = 0;

	if (it->raw)
		return decode(s, agent, it->raw, it->rawlen, m);
	item_id(it, id);
	snprintf(k, sizeof k, "%snew:%s", r->prefix, agent);
	if (!(rep = rd_call(r, e, 3, a, NULL)))
		return -1;
	if (rep->type == REDIS_REPLY_STRING)
		rc = decode(s, agent, rep->str, rep->len, m);
	freeReplyObject(rep);
	return rc;
}

int
rd_take(struct spool *s, const char *agent, const struct spool_item *it,
        struct msg *m, struct spool_claim *c, struct err *e)
{
	struct rd *r = s->impl;
	char id[ID_MAX_LEN + 1], ms[16];
	const char *a[3] = {agent, id, ms};
	redisReply *rep;
	int rc = 0;

	item_id(it, id);
	snprintf(ms, sizeof ms, "%d", CLAIM_MS);
	if (!(rep = rd_script(r, e, S_TAKE, 3, a, NULL)))
		return -1;
	if (rep->type == REDIS_REPLY_STRING &&
	    (rc = decode(s, agent, rep->str, rep->len, m)) == 1) {
		memset(c, 0, sizeof *c);
		snprintf(c->agent, sizeof c->agent, "%s", agent);
		snprintf(c->name, sizeof c->name, "%s", id);
	}
	freeReplyObject(rep);
	return rc;
}

static int
settle(struct spool *s, const char *agent, const char *id, const char *how,
       struct err *e)
{
	struct rd *r = s->impl;
	const char *a[4] = {r->chan, agent, id, how};
	redisReply *rep;
	int rc;

	if (!(rep = rd_script(r, e, S_SETTLE, 4, a, NULL)))
		return -1;
	if (rep->type != REDIS_REPLY_INTEGER)
		return rd_bad_reply(r, e, rep);
	rc = rep->integer ? 1 : 0;
	freeReplyObject(rep);
	return rc;
}

int
rd_ack(struct spool *s, struct spool_claim *c, int keep, struct err *e)
{
	return settle(s, c->agent, c->name, keep ? "keep" : "ack", e) < 0 ? -1
	                                                                  : 0;
}

int
rd_release(struct spool *s, struct spool_claim *c, struct err *e)
{
	return settle(s, c->agent, c->name, "release", e) < 0 ? -1 : 0;
}

int
rd_settle(struct spool *s, const char *agent, const char *id, int ack, int keep,
          struct err *e)
{
	return settle(s, agent, id,
	              !ack   ? "release"
	              : keep ? "keep"
	                     : "ack",
	              e);
}

int
rd_lease(struct spool *s, struct spool_claim *c, int seconds, struct err *e)
{
	struct rd *r = s->impl;
	char ms[24];
	const char *a[3] = {c->agent, c->name, ms};
	redisReply *rep;

	snprintf(ms, sizeof ms, "%lld", (long long)seconds * 1000);
	if (!(rep = rd_script(r, e, S_LEASE, 3, a, NULL)))
		return -1;
	freeReplyObject(rep);
	return 0;
}

/* "<id> <agent> <agent>...\n<message>": fn for each agent. */
static void
announce(const redisReply *rep,
         void (*fn)(void *, const char *, const char *, const char *, size_t),
         void *arg)
{
	char id[ID_MAX_LEN + 1], agent[NAME_MAX_LEN + 1];
	const char *p, *q, *end, *json = NULL;
	size_t jsonlen = 0;
	redisReply *payload;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
	    rep->element[0]->type != REDIS_REPLY_STRING ||
	    strcmp(rep->element[0]->str, "message") != 0)
		return;
	payload = rep->element[2];
	if (payload->type != REDIS_REPLY_STRING)
		return;
	p = payload->str;
	end = p + payload->len;
	if ((q = memchr(p, '\n', (size_t)(end - p)))) {
		json = q + 1;
		jsonlen = (size_t)(end - json);
		end = q;
	}
	q = memchr(p, ' ', (size_t)(end - p));
	if (!q || q - p > ID_MAX_LEN)
		return;
	snprintf(id, sizeof id, "%.*s", (int)(q - p), p);
	if (!id_valid(id))
		return;
	for (p = q + 1; p < end; p = q + 1) {
		if (!(q = memchr(p, ' ', (size_t)(end - p))))
			q = end;
		if (q - p > NAME_MAX_LEN)
			continue;
		snprintf(agent, sizeof agent, "%.*s", (int)(q - p), p);
		if (name_valid(agent))
			fn(arg, agent, id, json, jsonlen);
	}
}

int
rd_arrivals(struct spool *s,
            void (*fn)(void *, const char *, const char *, const char *,
                       size_t),
            void *arg, struct err *e)
{
	struct rd *r = s->impl;
	void *x;

	if (!r->sub) {
		if (rd_now() < r->sub_retry_at)
			return rd_unavailable(r, e, "reconnecting");
		if (rd_sub_connect(r, e) < 0) {
			rd_pause_more(&r->sub_backoff, &r->sub_retry_at);
			return -1;
		}
		r->sub_backoff = 0;
		if (r->sub_was_up)
			fn(arg, NULL, NULL, NULL, 0); /* unheard while down */
		r->sub_was_up = 1;
	}
	if (redisBufferRead(r->sub) != REDIS_OK) {
		rd_unavailable(r, e, r->sub->errstr);
		rd_sub_lost(r);
		fn(arg, NULL, NULL, NULL, 0);
		return -1;
	}
	for (;;) {
		if (redisGetReplyFromReader(r->sub, &x) != REDIS_OK) {
			rd_unavailable(r, e, r->sub->errstr);
			rd_sub_lost(r);
			fn(arg, NULL, NULL, NULL, 0);
			return -1;
		}
		if (!x)
			break;
		announce(x, fn, arg);
		freeReplyObject(x);
	}
	return 0;
}

int
rd_arrival_fd(struct spool *s, unsigned *gen)
{
	struct rd *r = s->impl;

	*gen = r->gen;
	return r->sub ? r->sub->fd : -1;
}

static void
wake(void *arg, const char *agent, const char *id, const char *json, size_t len)
{
	struct rd *r = arg;

	if (!agent || strcmp(agent, r->waiting) == 0)
		r->woke = 1;
}

int
rd_wait(struct spool *s, const char *agent, int timeout_ms, struct err *e)
{
	struct rd *r = s->impl;
	struct pollfd p;
	int rc;

	if (!r->sub || strcmp(r->waiting, agent) != 0) {
		snprintf(r->waiting, sizeof r->waiting, "%s", agent);
		if (rd_arrivals(s, wake, r, e) < 0 && !r->sub) {
			poll(NULL, 0,
			     timeout_ms < 0 || timeout_ms > 1000 ? 1000
			                                         : timeout_ms);
		}
		return 1;
	}
	r->woke = 0;
	p.fd = r->sub->fd;
	p.events = POLLIN;
	rc = poll(&p, 1, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0
		                      : err_sys(e, "cannot wait for messages");
	if (rc == 0)
		return 0;
	rd_arrivals(s, wake, r, NULL);
	return r->woke || !r->sub;
}

/* Read receipts: id has been read by each agent whose inbox no longer
 * holds it. Polled: a sender waits seldom, and never on the relay. */
int
rd_await(struct spool *s, const char *id, char **rcpt, size_t n, int timeout_ms,
         int *got, struct err *e)
{
	struct rd *r = s->impl;
	double end = rd_now() + timeout_ms / 1000.0;
	size_t i;

	if (!id_valid(id))
		return err_set(e, BCH_PERM, "invalid message id");
	for (;;) {
		int all = 1;
		for (i = 0; i < n; i++) {
			char k[160];
			const char *a[3] = {"HEXISTS", k, id};
			redisReply *rep;
			snprintf(k, sizeof k, "%snew:%s", r->prefix, rcpt[i]);
			if (!(rep = rd_call(r, e, 3, a, NULL)))
				return -1;
			got[i] =
			    rep->type == REDIS_REPLY_INTEGER && !rep->integer;
			all &= got[i];
			freeReplyObject(rep);
		}
		if (all || timeout_ms == 0 ||
		    (timeout_ms > 0 && rd_now() >= end))
			return all;
		poll(NULL, 0, 50);
	}
}
