/* spool-redis: the spool interface in Redis (or Valkey), so that several
 * relays serve one room and any of them can die without losing a message.
 *
 * Design rationale. Every rule of PROTOCOL.md 2 is one short Lua script,
 * because a script runs alone: the send script resolves the recipients,
 * checks quotas and the client id, and stores a copy in each inbox hash
 * in one step (fan-out at send time, as on disk); the take script moves
 * a message from the inbox hash to the claim hash, so of two claimers the
 * one whose script runs first gets it and the other finds nothing (the
 * rename of the Maildir). Every claim is a lease in a sorted set scored
 * by its expiry on Redis's own clock: an ack deletes it, and a lease that
 * runs out (its relay died, its client went away) is put back by any
 * relay's next sweep. Arrivals are published on one channel per prefix,
 * "<id> <recipient>...\n<message>", so that a relay pushes them to its
 * SSE clients without asking again; each relay subscribes on a second
 * connection whose descriptor sits in its event loop. A connection that
 * fails is dropped and made again on the next call, with a growing pause,
 * and meanwhile every call fails with BCH_TEMP (the relay answers 503): a
 * send is acknowledged only after Redis answered that it stored it.
 * A relay queues the send scripts of one round of its event loop
 * (send_queue) and reads their replies in order (send_done): one write
 * and one wait for all of them, where a round trip each cost Redis half
 * its CPU in wakeups. A command in between first reads the replies owed.
 *
 * Keys, under the prefix P: P"agents" (set of names), P"agent:<name>"
 * (hash: createdAt, lastSeen, tokenHash), P"subs:<name>" (list of
 * channels, in subscription order), P"chan:<#ch>" (set of members),
 * P"tokens" (hash: sha256 hex -> name), P"new:<name>" (hash: id -> the
 * unread message's JSON), P"claim:<name>" (claimed), P"kept:<name>"
 * (acked with keep), P"leases" (sorted set "<name> <id>" by expiry, ms),
 * P"sent:<from> <id>" (hash: m the stored message, r its recipients,
 * expiring: a client id remembered), and
 * P"rate:<name>" (a send-rate bucket).
 *
 * Here: the agent records, sending, and the tables; reading an inbox is in
 * spool-redis-read.c, the connections in spool-redis-conn.c, the scripts
 * in spool-redis-lua.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "spool.h"
#include "spool-redis.h"

#define SENT_TTL 900 /* seconds a client id is remembered */

static char *
dupstr(const redisReply *x)
{
	return x && x->type == REDIS_REPLY_STRING ? xstrndup(x->str, x->len)
	                                          : xstrdup("");
}

static int
is(const redisReply *x, const char *s)
{
	return x && x->type == REDIS_REPLY_STRING && strcmp(x->str, s) == 0;
}

/* An agent record from name, createdAt, lastSeen, tokenHash, subs. */
static void
fill_agent(struct agent_rec *a, const char *name, redisReply **f,
           redisReply **subs, size_t nsubs)
{
	size_t i;

	memset(a, 0, sizeof *a);
	snprintf(a->name, sizeof a->name, "%s", name);
	if (f[0]->type == REDIS_REPLY_STRING)
		snprintf(a->created, sizeof a->created, "%s", f[0]->str);
	if (f[1]->type == REDIS_REPLY_STRING)
		snprintf(a->seen, sizeof a->seen, "%s", f[1]->str);
	if (f[2]->type == REDIS_REPLY_STRING && f[2]->len)
		a->token_hash = dupstr(f[2]);
	a->subs = xcalloc(nsubs + 1, sizeof *a->subs);
	for (i = 0; i < nsubs; i++)
		if (subs[i]->type == REDIS_REPLY_STRING)
			a->subs[a->nsubs++] = dupstr(subs[i]);
}

static int
rd_reg(struct spool *s, const char *name, const char *token_hash,
       struct agent_rec *out, struct err *e)
{
	struct rd *r = s->impl;
	char ts[40];
	const char *a[3] = {name, ts, token_hash ? token_hash : ""};
	redisReply *rep;
	int again;

	ts_now(ts);
	if (!(rep = rd_script(r, e, S_REG, 3, a, NULL)))
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
		return rd_bad_reply(r, e, rep);
	if (is(rep->element[0], "taken")) {
		freeReplyObject(rep);
		err_set(e, BCH_PERM,
		        "name already registered — pick another, "
		        "or use that name's own token");
		return err_status(e, 409);
	}
	if (is(rep->element[0], "tokentaken")) {
		freeReplyObject(rep);
		err_set(e, BCH_PERM, "that token is taken — choose another");
		return err_status(e, 409);
	}
	if (rep->elements < 4)
		return rd_bad_reply(r, e, rep);
	again = is(rep->element[0], "again");
	if (out)
		fill_agent(out, name, rep->element + 1, rep->element + 4,
		           rep->elements - 4);
	freeReplyObject(rep);
	return again;
}

static int
rd_agents(struct spool *s, struct agent_rec **list, size_t *n, struct err *e)
{
	struct rd *r = s->impl;
	redisReply *rep;
	size_t i, w = 0;

	*list = NULL;
	*n = 0;
	if (!(rep = rd_script(r, e, S_AGENTS, 0, NULL, NULL)))
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY)
		return rd_bad_reply(r, e, rep);
	*list = xcalloc(rep->elements + 1, sizeof **list);
	for (i = 0; i < rep->elements; i++) {
		redisReply *x = rep->element[i];
		if (x->type != REDIS_REPLY_ARRAY || x->elements != 5 ||
		    x->element[0]->type != REDIS_REPLY_STRING ||
		    !name_valid(x->element[0]->str) ||
		    x->element[4]->type != REDIS_REPLY_ARRAY)
			continue;
		fill_agent(&(*list)[w++], x->element[0]->str, x->element + 1,
		           x->element[4]->element, x->element[4]->elements);
	}
	*n = w;
	freeReplyObject(rep);
	return 0;
}

static int
rd_subscribe(struct spool *s, const char *agent, const char *channel, int on,
             struct err *e)
{
	struct rd *r = s->impl;
	const char *a[3] = {agent, channel, on ? "1" : "0"};
	redisReply *rep;
	long long v;

	if (!(rep = rd_script(r, e, S_SUB, 3, a, NULL)))
		return -1;
	if (rep->type != REDIS_REPLY_INTEGER)
		return rd_bad_reply(r, e, rep);
	v = rep->integer;
	freeReplyObject(rep);
	if (v < 0)
		return err_set(e, BCH_PERM,
		               "unknown agent \"%s\" — they must run "
		               "bch init %s first",
		               agent, agent);
	return (int)v;
}

static int
cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Recipients "a b c" as a vector of copies, sorted: the send script
 * leaves them in the channel set's order, since Lua's sort held Redis up
 * (0.7 of 3.4 ms for 1,000 names here) where qsort holds up no one.
 * Their number. */
static size_t
split_names(const char *names, char ***out)
{
	char *copy = xstrdup(names), *p, *save = NULL;
	char **v = xcalloc(strlen(names) / 2 + 2, sizeof *v);
	size_t n = 0;

	for (p = strtok_r(copy, " ", &save); p; p = strtok_r(NULL, " ", &save))
		v[n++] = xstrdup(p);
	free(copy);
	qsort(v, n, sizeof *v, cmp_name);
	*out = v;
	return n;
}

/* Recipients "a b c" as s->rcpt; their number. */
static int
set_rcpt(struct spool *s, const char *names)
{
	char **v;
	size_t i, n = split_names(names, &v);

	spool_set_rcpt(s, v, n);
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
	return (int)n;
}

/* The stored message of a send already made with this client id. */
static int
sent_before(struct spool *s, struct msg *m, const redisReply *json,
            const redisReply *names, struct err *e)
{
	struct msg old;

	if (msg_decode(json->str, json->len, 0, &s->cfg->rlim, &old, e) < 0)
		return -1;
	msg_free(m);
	*m = old;
	return set_rcpt(s, names->type == REDIS_REPLY_STRING ? names->str : "");
}

/* What the send script answered: the recipients, else why not. */
static int
sent_outcome(struct spool *s, struct msg *m, redisReply *rep,
             int *retry_after, struct err *e)
{
	struct rd *r = s->impl;
	int rc = -1;

	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
	    rep->element[1]->type != REDIS_REPLY_STRING)
		return rd_bad_reply(r, e, rep);
	if (is(rep->element[0], "ok")) {
		rc = set_rcpt(s, rep->element[1]->str);
	} else if (is(rep->element[0], "dup") && rep->elements == 3) {
		rc = sent_before(s, m, rep->element[1], rep->element[2], e);
	} else if (is(rep->element[0], "idused")) {
		/* another sender's, in some inbox: the Maildir's 409 */
		err_set(e, BCH_PERM,
		        "message id already used by another message — send "
		        "with a new id");
		err_status(e, 409);
	} else if (is(rep->element[0], "unknown")) {
		err_set(e, BCH_PERM,
		        "unknown agent \"%s\" — they must run bch "
		        "init %s first",
		        rep->element[1]->str, rep->element[1]->str);
		err_status(e, 404);
	} else if (is(rep->element[0], "nosender")) {
		err_set(e, BCH_PERM,
		        "%s is not registered here — run bch init "
		        "%s first",
		        m->from, m->from);
	} else if (is(rep->element[0], "empty")) {
		err_set(e, BCH_PERM,
		        "channel %s has no other subscribers — "
		        "nothing to deliver",
		        m->to);
	} else if (is(rep->element[0], "rate") && retry_after) {
		*retry_after = atoi(rep->element[1]->str) / 1000 + 1;
		err_set(e, BCH_TEMP, "sending too fast — slow down and retry");
		err_status(e, 429);
	} else if (is(rep->element[0], "full")) {
		err_set(e, BCH_TEMP,
		        "inbox of %s is full (%zu messages) — they "
		        "must drain it first",
		        rep->element[1]->str, s->cfg->max_inbox);
		err_status(e, 507);
	} else {
		return rd_bad_reply(r, e, rep);
	}
	freeReplyObject(rep);
	return rc;
}

/* The send script's arguments for m, prepared and encoded. */
struct send_args {
	const char *a[10];
	size_t len[10];
	char max[32], ttl[16], rs[32], bs[32];
	struct buf b;
};

static int
send_args(struct spool *s, struct msg *m, const double *rate,
          struct send_args *v, struct err *e)
{
	struct rd *r = s->impl;
	int once = m->id[0] != 0;

	memset(v, 0, sizeof *v);
	if (spool_prepare(s, m, e) < 0 || spool_encode(s, m, &v->b, e) < 0) {
		buf_free(&v->b);
		return -1;
	}
	snprintf(v->max, sizeof v->max, "%zu", s->cfg->max_inbox);
	snprintf(v->ttl, sizeof v->ttl, "%d", SENT_TTL);
	if (rate) { /* rate[0] per second, rate[1] the burst */
		snprintf(v->rs, sizeof v->rs, "%.6f", rate[0]);
		snprintf(v->bs, sizeof v->bs, "%.6f", rate[1]);
	}
	v->a[0] = r->chan, v->a[1] = m->from, v->a[2] = m->to;
	v->a[3] = m->id;
	v->a[4] = v->b.p, v->len[4] = v->b.len - 1; /* without the newline */
	v->a[5] = v->max, v->a[6] = once ? "1" : "0", v->a[7] = v->ttl;
	v->a[8] = v->rs, v->a[9] = v->bs;
	return 0;
}

static int
rd_send_queue(struct spool *s, struct msg *m, double rate, double burst,
              struct err *e)
{
	double rb[2] = {rate, burst};
	struct send_args v;
	int rc;

	if (send_args(s, m, rb, &v, e) < 0)
		return -1;
	rc = rd_queue(s->impl, e, S_SEND, 10, v.a, v.len);
	buf_free(&v.b);
	return rc;
}

static int
rd_send_done(struct spool *s, struct msg *m, int *retry_after, struct err *e)
{
	redisReply *rep = rd_next(s->impl, e);

	return rep ? sent_outcome(s, m, rep, retry_after, e) : -1;
}

/* A send with no rate to keep, at once. */
static int
rd_send(struct spool *s, struct msg *m, struct err *e)
{
	struct send_args v;
	redisReply *rep;

	if (send_args(s, m, NULL, &v, e) < 0)
		return -1;
	rep = rd_script(s->impl, e, S_SEND, 10, v.a, v.len);
	buf_free(&v.b);
	return rep ? sent_outcome(s, m, rep, NULL, e) : -1;
}

static int
rd_sync(struct spool *s, struct err *e)
{
	return 0; /* durability is Redis's appendfsync (README) */
}

static int
rd_sent(struct spool *s, const char *from, const char *id, char ***rcpt,
        size_t *n, struct err *e)
{
	struct rd *r = s->impl;
	char k[200];
	const char *a[4] = {"HGET", k, "r"};
	redisReply *rep;

	snprintf(k, sizeof k, "%ssent:%s %s", r->prefix, from, id);
	if (!(rep = rd_call(r, e, 3, a, NULL)))
		return -1;
	if (rep->type != REDIS_REPLY_STRING) {
		freeReplyObject(rep);
		return 0;
	}
	*n = split_names(rep->str, rcpt);
	freeReplyObject(rep);
	return 1;
}

static int
rd_expire(struct spool *s, struct err *e)
{
	struct rd *r = s->impl;
	const char *a[1] = {r->chan};
	redisReply *rep;

	if (!(rep = rd_script(r, e, S_EXPIRE, 1, a, NULL)))
		return -1;
	freeReplyObject(rep);
	return 0;
}

static int
rd_token(struct spool *s, const char *hash, char agent[NAME_MAX_LEN + 1],
         struct err *e)
{
	struct rd *r = s->impl;
	char k[96];
	const char *a[3] = {"HGET", k, hash};
	redisReply *rep;
	int rc = 0;

	snprintf(k, sizeof k, "%stokens", r->prefix);
	if (!(rep = rd_call(r, e, 3, a, NULL)))
		return -1;
	if (rep->type == REDIS_REPLY_STRING && name_valid(rep->str)) {
		snprintf(agent, NAME_MAX_LEN + 1, "%s", rep->str);
		rc = 1;
	}
	freeReplyObject(rep);
	return rc;
}

static void
rd_close(struct spool *s)
{
	struct rd *r = s->impl;

	if (r->c)
		redisFree(r->c);
	if (r->sub)
		redisFree(r->sub);
	for (; r->q_off < r->nq; r->q_off++) {
		if (r->q[r->q_off].rep)
			freeReplyObject(r->q[r->q_off].rep);
		redisFreeCommand(r->q[r->q_off].cmd);
	}
	free(r->q);
	free(r->password);
	free(r);
	free(s);
}

static const struct spool_ops rd_ops = {
    rd_reg,  rd_agents, rd_subscribe, rd_send, rd_sync,  rd_list,  rd_peek,
    rd_take, rd_ack,    rd_release,   rd_wait, rd_await, rd_close,
    NULL, /* scan: spool_scan() lists */
    NULL, /* arrived: a listing here is never cut */
};

static const struct spool_shared rd_shared = {
    rd_token,  rd_send_queue, rd_send_done,  rd_lease,    rd_settle,
    rd_sent,   rd_expire,     rd_arrival_fd, rd_arrivals,
};

struct spool *
spool_redis_open(struct config *c, const char *url, const char *password,
                 const char *prog, struct err *e)
{
	struct spool *s;
	struct rd *r = xcalloc(1, sizeof *r);

	if (rd_parse_url(r, url, e) < 0) {
		free(r);
		return NULL;
	}
	if (password && *password)
		r->password = xstrdup(password);
	/* Publishing ignores the database number: the channel names it. */
	snprintf(r->chan, sizeof r->chan, "%s%d:arrivals", r->prefix, r->db);
	s = xcalloc(1, sizeof *s);
	s->ops = &rd_ops;
	s->shared = &rd_shared;
	s->cfg = c;
	s->prog = prog;
	s->impl = r;
	s->keep_raw = 256 * 1024;
	if (rd_ready(r, e) < 0) {
		if (e->code == BCH_PERM) {
			rd_close(s);
			return NULL;
		}
		fprintf(stderr, "%s: %s\n", prog, e->msg); /* it may come up */
	}
	return s;
}
