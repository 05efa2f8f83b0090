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
 *
 * Keys, under the prefix P: P"agents" (set of names), P"agent:<name>"
 * (hash: createdAt, lastSeen, tokenHash), P"subs:<name>" (list of
 * channels, in subscription order), P"chan:<#ch>" (set of members),
 * P"tokens" (hash: sha256 hex -> name), P"new:<name>" (hash: id -> the
 * unread message's JSON), P"claim:<name>" (claimed), P"kept:<name>"
 * (acked with keep), P"leases" (sorted set "<name> <id>" by expiry, ms),
 * P"sent:<from> <id>" (hash: m the stored message, r its recipients,
 * expiring: a client id remembered), and
 * P"rate:<name>" (a send-rate bucket). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "agent.h"
#include "spool.h"

#define CLAIM_MS 60000  /* a take not yet leased nor acked */
#define SENT_TTL 900    /* seconds a client id is remembered */
#define BACKOFF_MAX 2.0 /* seconds between attempts to reconnect */

/* clang-format off */
/* Scripts that read the clock and then write need effects replication,
 * the default since Redis 5; asking for it keeps 3.2 and 4 working. */
#define NOW \
	"if redis.replicate_commands then redis.replicate_commands() end\n" \
	"local function now_ms() local t = redis.call('TIME')\n" \
	" return tonumber(t[1]) * 1000 +\n" \
	"  math.floor(tonumber(t[2]) / 1000) end\n"

/* Put back what the leases that ran out hold; ARGV[1] prefix, [2] channel. */
#define EXPIRE \
	"local function expire(p, chan)\n" \
	" local due = redis.call('ZRANGEBYSCORE', p .. 'leases', '-inf',\n" \
	"  now_ms(), 'LIMIT', 0, 512)\n" \
	" for _, m in ipairs(due) do\n" \
	"  redis.call('ZREM', p .. 'leases', m)\n" \
	"  local sp = string.find(m, ' ', 1, true)\n" \
	"  if sp then\n" \
	"   local a, id = string.sub(m, 1, sp - 1), string.sub(m, sp + 1)\n" \
	"   local v = redis.call('HGET', p .. 'claim:' .. a, id)\n" \
	"   if v then\n" \
	"    redis.call('HDEL', p .. 'claim:' .. a, id)\n" \
	"    if redis.call('HSETNX', p .. 'new:' .. a, id, v) == 1 then\n" \
	"     redis.call('PUBLISH', chan, id .. ' ' .. a .. '\\n' .. v) end\n" \
	"   end\n" \
	"  end\n" \
	" end\n" \
	" return #due\n" \
	"end\n"

enum { S_REG, S_AGENTS, S_SUB, S_SEND, S_LIST, S_TAKE, S_LEASE, S_SETTLE,
	S_EXPIRE, S_RATE, NSCRIPTS };

static const char *const scripts[NSCRIPTS] = {
	/* reg: p, name, ts, tokenHash or "" */
	"local p, n, ts, th = ARGV[1], ARGV[2], ARGV[3], ARGV[4]\n"
	"local k = p .. 'agent:' .. n\n"
	"local exists = redis.call('EXISTS', k) == 1\n"
	"if th ~= '' and exists then return {'taken'} end\n"
	"if not exists then\n"
	" redis.call('HSET', k, 'createdAt', ts)\n"
	" redis.call('SADD', p .. 'agents', n)\n"
	"end\n"
	"redis.call('HSET', k, 'lastSeen', ts)\n"
	"if th ~= '' then\n"
	" redis.call('HSET', k, 'tokenHash', th)\n"
	" redis.call('HSET', p .. 'tokens', th, n)\n"
	"end\n"
	"local v = redis.call('HMGET', k, 'createdAt', 'lastSeen',\n"
	" 'tokenHash')\n"
	"local out = {'ok', v[1] or '', v[2] or '', v[3] or ''}\n"
	"local subs = redis.call('LRANGE', p .. 'subs:' .. n, 0, -1)\n"
	"for _, c in ipairs(subs) do\n"
	" out[#out + 1] = c end\n"
	"return out\n",

	/* agents: p */
	"local p, out = ARGV[1], {}\n"
	"for _, n in ipairs(redis.call('SMEMBERS', p .. 'agents')) do\n"
	" local v = redis.call('HMGET', p .. 'agent:' .. n, 'createdAt',\n"
	"  'lastSeen', 'tokenHash')\n"
	" out[#out + 1] = {n, v[1] or '', v[2] or '', v[3] or '',\n"
	"  redis.call('LRANGE', p .. 'subs:' .. n, 0, -1)}\n"
	"end\n"
	"return out\n",

	/* subscribe: p, agent, channel, on */
	"local p, a, c = ARGV[1], ARGV[2], ARGV[3]\n"
	"if redis.call('EXISTS', p .. 'agent:' .. a) == 0 then return -1 end\n"
	"if ARGV[4] == '1' then\n"
	" if redis.call('SADD', p .. 'chan:' .. c, a) == 0 then return 0 end\n"
	" redis.call('RPUSH', p .. 'subs:' .. a, c)\n"
	" return 1\n"
	"end\n"
	"if redis.call('SREM', p .. 'chan:' .. c, a) == 0 then return 0 end\n"
	"redis.call('LREM', p .. 'subs:' .. a, 0, c)\n"
	"return 1\n",

	/* send: p, channel, from, to, id, json, max inbox, once, ttl */
	"local p, from, to, id = ARGV[1], ARGV[3], ARGV[4], ARGV[5]\n"
	"if redis.call('SISMEMBER', p .. 'agents', from) == 0 then\n"
	" return {'nosender', from} end\n"
	"local sent = p .. 'sent:' .. from .. ' ' .. id\n"
	"if ARGV[8] == '1' then\n"
	" local old = redis.call('HMGET', sent, 'm', 'r')\n"
	" if old[1] then return {'dup', old[1], old[2]} end\n"
	"end\n"
	"local r = {}\n"
	"if string.sub(to, 1, 1) == '@' then\n"
	" local a = string.sub(to, 2)\n"
	" if redis.call('SISMEMBER', p .. 'agents', a) == 0 then\n"
	"  return {'unknown', a} end\n"
	" r[1] = a\n"
	"else\n"
	" for _, a in ipairs(redis.call('SMEMBERS', p .. 'chan:' .. to)) do\n"
	"  if a ~= from then r[#r + 1] = a end\n"
	" end\n"
	" if #r == 0 then return {'empty', to} end\n"
	" table.sort(r)\n"
	"end\n"
	"local max = tonumber(ARGV[7])\n"
	"for _, a in ipairs(r) do\n"
	" if redis.call('HLEN', p .. 'new:' .. a) >= max then\n"
	"  return {'full', a} end\n"
	"end\n"
	"for _, a in ipairs(r) do\n"
	" redis.call('HSETNX', p .. 'new:' .. a, id, ARGV[6]) end\n"
	"local names = table.concat(r, ' ')\n"
	"if ARGV[8] == '1' then\n"
	" redis.call('HSET', sent, 'm', ARGV[6], 'r', names)\n"
	" redis.call('EXPIRE', sent, tonumber(ARGV[9]))\n"
	"end\n"
	"redis.call('PUBLISH', ARGV[2],\n"
	" id .. ' ' .. names .. '\\n' .. ARGV[6])\n"
	"return {'ok', names}\n",

	/* list: p, channel, agent, ts */
	NOW EXPIRE
	"expire(ARGV[1], ARGV[2])\n"
	"local k = ARGV[1] .. 'agent:' .. ARGV[3]\n"
	"if redis.call('EXISTS', k) == 0 then return false end\n"
	"local seen = redis.call('HGET', k, 'lastSeen')\n"
	"if not seen or\n"
	" string.sub(seen, 1, 16) ~= string.sub(ARGV[4], 1, 16) then\n"
	" redis.call('HSET', k, 'lastSeen', ARGV[4]) end\n"
	"return redis.call('HGETALL', ARGV[1] .. 'new:' .. ARGV[3])\n",

	/* take: p, agent, id, ms */
	NOW
	"local p, a, id = ARGV[1], ARGV[2], ARGV[3]\n"
	"local v = redis.call('HGET', p .. 'new:' .. a, id)\n"
	"if not v then return false end\n"
	"redis.call('HDEL', p .. 'new:' .. a, id)\n"
	"redis.call('HSET', p .. 'claim:' .. a, id, v)\n"
	"redis.call('ZADD', p .. 'leases', now_ms() + tonumber(ARGV[4]),\n"
	" a .. ' ' .. id)\n"
	"return v\n",

	/* lease: p, agent, id, ms */
	NOW
	"local p, a, id = ARGV[1], ARGV[2], ARGV[3]\n"
	"if redis.call('HEXISTS', p .. 'claim:' .. a, id) == 0 then\n"
	" return 0 end\n"
	"redis.call('ZADD', p .. 'leases', now_ms() + tonumber(ARGV[4]),\n"
	" a .. ' ' .. id)\n"
	"return 1\n",

	/* settle: p, channel, agent, id, ack|keep|release */
	"local p, a, id, how = ARGV[1], ARGV[3], ARGV[4], ARGV[5]\n"
	"local v = redis.call('HGET', p .. 'claim:' .. a, id)\n"
	"redis.call('ZREM', p .. 'leases', a .. ' ' .. id)\n"
	"if not v then return 0 end\n"
	"redis.call('HDEL', p .. 'claim:' .. a, id)\n"
	"if how == 'keep' then\n"
	" redis.call('HSET', p .. 'kept:' .. a, id, v)\n"
	"elseif how == 'release' then\n"
	" if redis.call('HSETNX', p .. 'new:' .. a, id, v) == 1 then\n"
	"  redis.call('PUBLISH', ARGV[2], id .. ' ' .. a .. '\\n' .. v) end\n"
	"end\n"
	"return 1\n",

	/* expire: p, channel */
	NOW EXPIRE
	"return expire(ARGV[1], ARGV[2])\n",

	/* rate: p, agent, rate, burst; 0 allowed, else ms to wait */
	NOW
	"local k = ARGV[1] .. 'rate:' .. ARGV[2]\n"
	"local rate, burst = tonumber(ARGV[3]), tonumber(ARGV[4])\n"
	"local now = now_ms() / 1000\n"
	"local v = redis.call('HMGET', k, 't', 'l')\n"
	"local tok, last = tonumber(v[1]) or burst, tonumber(v[2]) or now\n"
	"if now > last then\n"
	" tok = math.min(burst, tok + (now - last) * rate) end\n"
	"local wait = 0\n"
	"if tok >= 1 then tok = tok - 1\n"
	"else wait = math.ceil((1 - tok) / rate * 1000) end\n"
	"redis.call('HSET', k, 't', tostring(tok), 'l', tostring(now))\n"
	"redis.call('PEXPIRE', k, math.ceil(burst / rate * 1000) + 1000)\n"
	"return wait\n",
};

/* clang-format on */

struct rd {
	char where[300]; /* the URL, for messages */
	char host[256];  /* or the socket's path */
	int port;        /* 0 for a unix socket */
	int db;
	char user[128];
	char *password;
	char prefix[72];
	char chan[96];     /* arrivals */
	redisContext *c;   /* commands */
	redisContext *sub; /* the subscription */
	double retry_at, backoff;
	double sub_retry_at, sub_backoff;
	int sub_was_up;
	unsigned gen;
	char sha[NSCRIPTS][48];
	char waiting[NAME_MAX_LEN + 1]; /* spool_wait's agent */
	int woke;
};

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int
unavailable(struct rd *r, struct err *e, const char *why)
{
	err_set(e, BCH_TEMP,
	        "the spool (Redis at %s) is unavailable: %s — "
	        "try again in a moment",
	        r->where, why);
	return err_status(e, 503);
}

static void
pause_more(double *backoff, double *retry_at)
{
	*backoff = *backoff > 0 ? *backoff * 2 : 0.1;
	if (*backoff > BACKOFF_MAX)
		*backoff = BACKOFF_MAX;
	*retry_at = now_s() + *backoff;
}

/* One command on a fresh connection, during its set-up. */
static int
setup_cmd(redisContext *c, struct err *e, struct rd *r, int argc,
          const char **argv)
{
	redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
	int rc = 0;

	if (!rep)
		return unavailable(r, e, c->errstr);
	if (rep->type == REDIS_REPLY_ERROR) {
		/* A wrong password or database will not mend by itself. */
		int perm = strstr(rep->str, "WRONGPASS") ||
		           strstr(rep->str, "NOAUTH") ||
		           strstr(rep->str, "invalid") ||
		           strstr(rep->str, "DB index") ||
		           strstr(rep->str, "without any password");
		err_set(e, perm ? BCH_PERM : BCH_TEMP,
		        "Redis at %s refused %s: "
		        "%.200s — check the URL and the password",
		        r->where, argv[0], rep->str);
		err_status(e, 503);
		rc = -1;
	}
	freeReplyObject(rep);
	return rc;
}

static redisContext *
dial(struct rd *r, struct err *e)
{
	struct timeval tv = {1, 0}, cmd = {3, 0};
	redisContext *c;
	char db[16];

	c = r->port ? redisConnectWithTimeout(r->host, r->port, tv)
	            : redisConnectUnixWithTimeout(r->host, tv);
	if (!c || c->err) {
		unavailable(r, e, c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	fcntl(c->fd, F_SETFD, FD_CLOEXEC);
	redisSetTimeout(c, cmd);
	if (r->port)
		redisEnableKeepAlive(c);
	if (r->password) {
		const char *a[3] = {"AUTH", r->user, r->password};
		if (r->user[0]
		        ? setup_cmd(c, e, r, 3, a)
		        : setup_cmd(c, e, r, 2,
		                    (const char *[]){"AUTH", r->password}))
			goto fail;
	}
	if (r->db) {
		snprintf(db, sizeof db, "%d", r->db);
		if (setup_cmd(c, e, r, 2, (const char *[]){"SELECT", db}) < 0)
			goto fail;
	}
	return c;
fail:
	redisFree(c);
	return NULL;
}

static void
drop(struct rd *r)
{
	if (r->c)
		redisFree(r->c);
	r->c = NULL;
	r->retry_at = 0; /* the first attempt again is at once */
}

static int
load_scripts(struct rd *r, struct err *e)
{
	int i;

	for (i = 0; i < NSCRIPTS; i++) {
		redisReply *rep =
		    redisCommand(r->c, "SCRIPT LOAD %s", scripts[i]);
		if (!rep || rep->type != REDIS_REPLY_STRING ||
		    rep->len >= sizeof r->sha[i]) {
			unavailable(
			    r, e,
			    rep && rep->type == REDIS_REPLY_ERROR ? rep->str
			    : r->c->errstr[0]                     ? r->c->errstr
			                      : "cannot load the scripts");
			if (rep)
				freeReplyObject(rep);
			drop(r);
			return -1;
		}
		memcpy(r->sha[i], rep->str, rep->len + 1);
		freeReplyObject(rep);
	}
	return 0;
}

/* The command connection, made again when it was lost. */
static int
ready(struct rd *r, struct err *e)
{
	if (r->c)
		return 0;
	if (now_s() < r->retry_at)
		return unavailable(r, e, "reconnecting");
	if (!(r->c = dial(r, e)) || load_scripts(r, e) < 0) {
		drop(r);
		pause_more(&r->backoff, &r->retry_at);
		return -1;
	}
	r->backoff = 0;
	return 0;
}

/* Run one command; the reply, or NULL with e filled (BCH_TEMP, 503). */
static redisReply *
call(struct rd *r, struct err *e, int argc, const char **argv,
     const size_t *lens)
{
	redisReply *rep;

	if (ready(r, e) < 0)
		return NULL;
	rep = redisCommandArgv(r->c, argc, argv, lens);
	if (!rep) {
		unavailable(r, e, r->c->errstr);
		drop(r);
		return NULL;
	}
	if (rep->type == REDIS_REPLY_ERROR) {
		unavailable(r, e, rep->str);
		freeReplyObject(rep);
		return NULL;
	}
	return rep;
}

/* EVALSHA script with ARGV args (the prefix first, added here). */
static redisReply *
script(struct rd *r, struct err *e, int which, int argc, const char **args,
       const size_t *lens)
{
	const char *argv[16];
	size_t len[16];
	redisReply *rep;
	int i, tries;

	for (tries = 0; tries < 2; tries++) {
		if (ready(r, e) < 0)
			return NULL;
		argv[0] = "EVALSHA";
		argv[1] = r->sha[which];
		argv[2] = "0";
		argv[3] = r->prefix;
		for (i = 0; i < 4; i++)
			len[i] = strlen(argv[i]);
		for (i = 0; i < argc; i++) {
			argv[4 + i] = args[i];
			len[4 + i] =
			    lens && lens[i] ? lens[i] : strlen(args[i]);
		}
		rep = redisCommandArgv(r->c, 4 + argc, argv, len);
		if (!rep) {
			unavailable(r, e, r->c->errstr);
			drop(r);
			return NULL;
		}
		if (rep->type != REDIS_REPLY_ERROR)
			return rep;
		if (strncmp(rep->str, "NOSCRIPT", 8) == 0 && tries == 0) {
			freeReplyObject(
			    rep); /* SCRIPT FLUSH: load them again */
			if (load_scripts(r, e) < 0)
				return NULL;
			continue;
		}
		unavailable(r, e, rep->str);
		freeReplyObject(rep);
		return NULL;
	}
	return NULL;
}

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
bad_reply(struct rd *r, struct err *e, redisReply *rep)
{
	if (rep)
		freeReplyObject(rep);
	return unavailable(r, e, "an unexpected reply");
}

static int
rd_reg(struct spool *s, const char *name, const char *token_hash,
       struct agent_rec *out, struct err *e)
{
	struct rd *r = s->impl;
	char ts[40];
	const char *a[3] = {name, ts, token_hash ? token_hash : ""};
	redisReply *rep;

	ts_now(ts);
	if (!(rep = script(r, e, S_REG, 3, a, NULL)))
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 1)
		return bad_reply(r, e, rep);
	if (is(rep->element[0], "taken")) {
		freeReplyObject(rep);
		err_set(e, BCH_PERM,
		        "name already registered — pick another, "
		        "or use that name's own token");
		return err_status(e, 409);
	}
	if (rep->elements < 4)
		return bad_reply(r, e, rep);
	if (out)
		fill_agent(out, name, rep->element + 1, rep->element + 4,
		           rep->elements - 4);
	freeReplyObject(rep);
	return 0;
}

static int
rd_agents(struct spool *s, struct agent_rec **list, size_t *n, struct err *e)
{
	struct rd *r = s->impl;
	redisReply *rep;
	size_t i, w = 0;

	*list = NULL;
	*n = 0;
	if (!(rep = script(r, e, S_AGENTS, 0, NULL, NULL)))
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY)
		return bad_reply(r, e, rep);
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

	if (!(rep = script(r, e, S_SUB, 3, a, NULL)))
		return -1;
	if (rep->type != REDIS_REPLY_INTEGER)
		return bad_reply(r, e, rep);
	v = rep->integer;
	freeReplyObject(rep);
	if (v < 0)
		return err_set(e, BCH_PERM,
		               "unknown agent \"%s\" — they must run "
		               "bch init %s first",
		               agent, agent);
	return (int)v;
}

/* Recipients "a b c" as s->rcpt; their number. */
static int
set_rcpt(struct spool *s, const char *names)
{
	char *copy = xstrdup(names), *p, *save = NULL;
	char **v = xcalloc(strlen(names) / 2 + 2, sizeof *v);
	size_t n = 0;

	for (p = strtok_r(copy, " ", &save); p; p = strtok_r(NULL, " ", &save))
		v[n++] = p;
	spool_set_rcpt(s, v, n);
	free(v);
	free(copy);
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

static int
rd_send(struct spool *s, struct msg *m, struct err *e)
{
	struct rd *r = s->impl;
	char to[NAME_MAX_LEN + 3], max[32], ttl[16];
	struct buf b = BUF_INIT;
	redisReply *rep;
	const char *a[8];
	size_t len[8] = {0};
	int once = m->id[0] != 0, rc = -1;

	if (!m->from || !name_valid(m->from))
		return err_set(e, BCH_PERM, "invalid sender name");
	if (target_parse(m->to, to, sizeof to, e) < 0 ||
	    msg_check(m, &s->cfg->lim, e) < 0)
		return -1;
	free(m->to);
	m->to = xstrdup(to);
	if (!m->id[0] && uuid_v4(m->id) < 0)
		return err_sys(e, "cannot get random bytes for an id");
	if (!id_valid(m->id))
		return err_set(e, BCH_PERM, "invalid message id");
	ts_now(m->ts);
	msg_encode(m, &b);
	if (b.len + 1 > s->cfg->lim.total) {
		err_set(e, BCH_PERM,
		        "message is %zu bytes encoded, over the "
		        "limit of %zu",
		        b.len + 1, s->cfg->lim.total);
		buf_free(&b);
		return err_status(e, 413);
	}
	snprintf(max, sizeof max, "%zu", s->cfg->max_inbox);
	snprintf(ttl, sizeof ttl, "%d", SENT_TTL);
	a[0] = r->chan, a[1] = m->from, a[2] = m->to, a[3] = m->id;
	a[4] = b.p, len[4] = b.len;
	a[5] = max, a[6] = once ? "1" : "0", a[7] = ttl;
	rep = script(r, e, S_SEND, 8, a, len);
	buf_free(&b);
	if (!rep)
		return -1;
	if (rep->type != REDIS_REPLY_ARRAY || rep->elements < 2 ||
	    rep->element[1]->type != REDIS_REPLY_STRING)
		return bad_reply(r, e, rep);
	if (is(rep->element[0], "ok")) {
		rc = set_rcpt(s, rep->element[1]->str);
	} else if (is(rep->element[0], "dup") && rep->elements == 3) {
		rc = sent_before(s, m, rep->element[1], rep->element[2], e);
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
	} else if (is(rep->element[0], "full")) {
		err_set(e, BCH_TEMP,
		        "inbox of %s is full (%zu messages) — they "
		        "must drain it first",
		        rep->element[1]->str, s->cfg->max_inbox);
		err_status(e, 507);
	} else {
		return bad_reply(r, e, rep);
	}
	freeReplyObject(rep);
	return rc;
}

static int
rd_sync(struct spool *s, struct err *e)
{
	return 0; /* durability is Redis's appendfsync (README) */
}

/* A stored message that does not decode: out of the inbox, kept aside. */
static void
set_aside(struct spool *s, const char *agent, const redisReply *id,
          const redisReply *v, const char *why)
{
	struct rd *r = s->impl;
	char k[160], c[160];
	redisReply *rep;

	snprintf(k, sizeof k, "%snew:%s", r->prefix, agent);
	snprintf(c, sizeof c, "%scorrupt:%s", r->prefix, agent);
	rep = redisCommand(r->c, "HSET %s %b %b", c, id->str, id->len, v->str,
	                   v->len);
	if (rep)
		freeReplyObject(rep);
	rep = redisCommand(r->c, "HDEL %s %b", k, id->str, id->len);
	if (rep)
		freeReplyObject(rep);
	fprintf(stderr,
	        "%s: corrupt message in %s's inbox (%s) — moved to "
	        "%s\n",
	        s->prog, agent, why, c);
}

static int
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
	if (!(rep = script(r, e, S_LIST, 3, a, NULL)))
		return -1;
	if (rep->type == REDIS_REPLY_NIL) {
		freeReplyObject(rep);
		return err_set(e, BCH_PERM,
		               "unknown agent \"%s\" — run bch init "
		               "%s first",
		               agent, agent);
	}
	if (rep->type != REDIS_REPLY_ARRAY)
		return bad_reply(r, e, rep);
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

static int
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
	if (!(rep = call(r, e, 3, a, NULL)))
		return -1;
	if (rep->type == REDIS_REPLY_STRING)
		rc = decode(s, agent, rep->str, rep->len, m);
	freeReplyObject(rep);
	return rc;
}

static int
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
	if (!(rep = script(r, e, S_TAKE, 3, a, NULL)))
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

	if (!(rep = script(r, e, S_SETTLE, 4, a, NULL)))
		return -1;
	if (rep->type != REDIS_REPLY_INTEGER)
		return bad_reply(r, e, rep);
	rc = rep->integer ? 1 : 0;
	freeReplyObject(rep);
	return rc;
}

static int
rd_ack(struct spool *s, struct spool_claim *c, int keep, struct err *e)
{
	return settle(s, c->agent, c->name, keep ? "keep" : "ack", e) < 0 ? -1
	                                                                  : 0;
}

static int
rd_release(struct spool *s, struct spool_claim *c, struct err *e)
{
	return settle(s, c->agent, c->name, "release", e) < 0 ? -1 : 0;
}

static int
rd_settle(struct spool *s, const char *agent, const char *id, int ack, int keep,
          struct err *e)
{
	return settle(s, agent, id,
	              !ack   ? "release"
	              : keep ? "keep"
	                     : "ack",
	              e);
}

static int
rd_lease(struct spool *s, struct spool_claim *c, int seconds, struct err *e)
{
	struct rd *r = s->impl;
	char ms[24];
	const char *a[3] = {c->agent, c->name, ms};
	redisReply *rep;

	snprintf(ms, sizeof ms, "%lld", (long long)seconds * 1000);
	if (!(rep = script(r, e, S_LEASE, 3, a, NULL)))
		return -1;
	freeReplyObject(rep);
	return 0;
}

static int
rd_sent(struct spool *s, const char *from, const char *id, char ***rcpt,
        size_t *n, struct err *e)
{
	struct rd *r = s->impl;
	char k[200], *copy, *p, *save = NULL;
	const char *a[4] = {"HGET", k, "r"};
	redisReply *rep;

	snprintf(k, sizeof k, "%ssent:%s %s", r->prefix, from, id);
	if (!(rep = call(r, e, 3, a, NULL)))
		return -1;
	if (rep->type != REDIS_REPLY_STRING) {
		freeReplyObject(rep);
		return 0;
	}
	copy = xstrdup(rep->str);
	freeReplyObject(rep);
	*rcpt = xcalloc(strlen(copy) / 2 + 2, sizeof **rcpt);
	*n = 0;
	for (p = strtok_r(copy, " ", &save); p; p = strtok_r(NULL, " ", &save))
		(*rcpt)[(*n)++] = xstrdup(p);
	free(copy);
	return 1;
}

static int
rd_expire(struct spool *s, struct err *e)
{
	struct rd *r = s->impl;
	const char *a[1] = {r->chan};
	redisReply *rep;

	if (!(rep = script(r, e, S_EXPIRE, 1, a, NULL)))
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
	if (!(rep = call(r, e, 3, a, NULL)))
		return -1;
	if (rep->type == REDIS_REPLY_STRING && name_valid(rep->str)) {
		snprintf(agent, NAME_MAX_LEN + 1, "%s", rep->str);
		rc = 1;
	}
	freeReplyObject(rep);
	return rc;
}

static int
rd_rate(struct spool *s, const char *agent, double rate, double burst,
        int *retry_after, struct err *e)
{
	struct rd *r = s->impl;
	char rs[32], bs[32];
	const char *a[3] = {agent, rs, bs};
	redisReply *rep;
	long long wait;

	snprintf(rs, sizeof rs, "%.6f", rate);
	snprintf(bs, sizeof bs, "%.6f", burst);
	if (!(rep = script(r, e, S_RATE, 3, a, NULL)))
		return -1;
	if (rep->type != REDIS_REPLY_INTEGER)
		return bad_reply(r, e, rep);
	wait = rep->integer;
	freeReplyObject(rep);
	if (wait <= 0)
		return 1;
	*retry_after = (int)(wait / 1000) + 1;
	return 0;
}

/* Subscribe on a connection of its own, then read it without blocking. */
static int
sub_connect(struct rd *r, struct err *e)
{
	redisContext *c;
	redisReply *rep;

	if (!(c = dial(r, e)))
		return -1;
	rep = redisCommand(c, "SUBSCRIBE %s", r->chan);
	if (!rep || rep->type != REDIS_REPLY_ARRAY) {
		unavailable(r, e,
		            rep && rep->type == REDIS_REPLY_ERROR ? rep->str
		            : c->errstr[0]                        ? c->errstr
		                           : "cannot subscribe");
		if (rep)
			freeReplyObject(rep);
		redisFree(c);
		return -1;
	}
	freeReplyObject(rep);
	c->flags &= ~REDIS_BLOCK;
	fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
	r->sub = c;
	r->gen++;
	return 0;
}

static void
sub_lost(struct rd *r)
{
	redisFree(r->sub);
	r->sub = NULL;
	r->gen++;
	r->sub_retry_at = 0;
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

static int
rd_arrivals(struct spool *s,
            void (*fn)(void *, const char *, const char *, const char *,
                       size_t),
            void *arg, struct err *e)
{
	struct rd *r = s->impl;
	void *x;

	if (!r->sub) {
		if (now_s() < r->sub_retry_at)
			return unavailable(r, e, "reconnecting");
		if (sub_connect(r, e) < 0) {
			pause_more(&r->sub_backoff, &r->sub_retry_at);
			return -1;
		}
		r->sub_backoff = 0;
		if (r->sub_was_up)
			fn(arg, NULL, NULL, NULL, 0); /* unheard while down */
		r->sub_was_up = 1;
	}
	if (redisBufferRead(r->sub) != REDIS_OK) {
		unavailable(r, e, r->sub->errstr);
		sub_lost(r);
		fn(arg, NULL, NULL, NULL, 0);
		return -1;
	}
	for (;;) {
		if (redisGetReplyFromReader(r->sub, &x) != REDIS_OK) {
			unavailable(r, e, r->sub->errstr);
			sub_lost(r);
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

static int
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

static int
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
static int
rd_await(struct spool *s, const char *id, char **rcpt, size_t n, int timeout_ms,
         int *got, struct err *e)
{
	struct rd *r = s->impl;
	double end = now_s() + timeout_ms / 1000.0;
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
			if (!(rep = call(r, e, 3, a, NULL)))
				return -1;
			got[i] =
			    rep->type == REDIS_REPLY_INTEGER && !rep->integer;
			all &= got[i];
			freeReplyObject(rep);
		}
		if (all || timeout_ms == 0 ||
		    (timeout_ms > 0 && now_s() >= end))
			return all;
		poll(NULL, 0, 50);
	}
}

static void
rd_close(struct spool *s)
{
	struct rd *r = s->impl;

	if (r->c)
		redisFree(r->c);
	if (r->sub)
		redisFree(r->sub);
	free(r->password);
	free(r);
	free(s);
}

static const struct spool_ops rd_ops = {
    rd_reg,  rd_agents, rd_subscribe, rd_send, rd_sync,  rd_list,  rd_peek,
    rd_take, rd_ack,    rd_release,   rd_wait, rd_await, rd_close,
    NULL, /* scan: spool_scan() lists */
};

static const struct spool_shared rd_shared = {
    rd_token, rd_rate,   rd_lease,      rd_settle,
    rd_sent,  rd_expire, rd_arrival_fd, rd_arrivals,
};

/* A key prefix: 1 to 63 of letters, digits, '.', '_', ':', '-'. */
static int
prefix_ok(const char *p)
{
	size_t n = strlen(p);

	return n > 0 && n < 64 &&
	       strspn(p, "abcdefghijklmnopqrstuvwxyz"
	                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

/* "?db=N&prefix=P" after a URL's path. */
static int
parse_query(struct rd *r, char *q, struct err *e)
{
	char *kv, *save = NULL;

	for (kv = strtok_r(q, "&", &save); kv;
	     kv = strtok_r(NULL, "&", &save)) {
		if (strncmp(kv, "db=", 3) == 0)
			r->db = atoi(kv + 3);
		else if (strncmp(kv, "prefix=", 7) == 0 && prefix_ok(kv + 7))
			snprintf(r->prefix, sizeof r->prefix, "%s", kv + 7);
		else
			return err_set(e, BCH_PERM,
			               "bad \"%s\" in the spool URL "
			               "— use db=N or prefix=P (letters, "
			               "digits, '.', '_', "
			               "':', '-')",
			               kv);
	}
	return 0;
}

static int
parse_url(struct rd *r, const char *url, struct err *e)
{
	char u[1024], *q, *at, *slash, *colon, *host;

	if (strlen(url) >= sizeof u)
		return err_set(e, BCH_PERM, "spool URL too long");
	snprintf(u, sizeof u, "%s", url);
	snprintf(r->prefix, sizeof r->prefix, "bch:");
	if ((q = strchr(u, '?'))) {
		*q++ = 0;
		if (parse_query(r, q, e) < 0)
			return -1;
	}
	snprintf(r->where, sizeof r->where, "%s", u);
	if (strncmp(u, "unix://", 7) == 0) {
		if (u[7] != '/' || strlen(u + 7) >= sizeof r->host)
			return err_set(e, BCH_PERM,
			               "bad spool URL %s — use "
			               "unix:///path/to/redis.sock",
			               u);
		snprintf(r->host, sizeof r->host, "%s", u + 7);
		return 0;
	}
	if (strncmp(u, "redis://", 8) != 0)
		return err_set(e, BCH_PERM,
		               "bad spool URL %s — use "
		               "redis://host:port/db or unix:///path",
		               u);
	host = u + 8;
	if ((slash = strchr(host, '/'))) {
		*slash = 0;
		if (slash[1])
			r->db = atoi(slash + 1);
	}
	if ((at = strrchr(host, '@'))) {
		*at = 0;
		if (strchr(host, ':'))
			return err_set(
			    e, BCH_PERM,
			    "a password does not go in the "
			    "spool URL (it would show in ps) — use "
			    "--redis-password-file or REDIS_PASSWORD");
		snprintf(r->user, sizeof r->user, "%s", host);
		host = at + 1;
	}
	r->port = 6379;
	if (host[0] == '[') {
		char *close = strchr(host, ']');
		if (!close)
			return err_set(e, BCH_PERM, "bad spool URL %s", url);
		*close = 0;
		if (close[1] == ':')
			r->port = atoi(close + 2);
		host++;
	} else if ((colon = strrchr(host, ':'))) {
		*colon = 0;
		r->port = atoi(colon + 1);
	}
	if (!host[0] || r->port <= 0 || r->port > 65535 || r->db < 0)
		return err_set(e, BCH_PERM,
		               "bad spool URL %s — use "
		               "redis://host:port/db",
		               url);
	snprintf(r->host, sizeof r->host, "%s", host);
	return 0;
}

struct spool *
spool_redis_open(struct config *c, const char *url, const char *password,
                 const char *prog, struct err *e)
{
	struct spool *s;
	struct rd *r = xcalloc(1, sizeof *r);

	if (parse_url(r, url, e) < 0) {
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
	if (ready(r, e) < 0) {
		if (e->code == BCH_PERM) {
			rd_close(s);
			return NULL;
		}
		fprintf(stderr, "%s: %s\n", prog, e->msg); /* it may come up */
	}
	return s;
}
