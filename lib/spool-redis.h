/* spool-redis: what the parts of the spool in Redis share — the state of
 * an open spool, the scripts by name, and the connection that runs them.
 * Private to spool-redis.c (agents and sending), spool-redis-read.c
 * (reading), spool-redis-conn.c (the connection) and spool-redis-lua.c
 * (the scripts). */
#ifndef BCH_SPOOL_REDIS_H
#define BCH_SPOOL_REDIS_H

#include <stddef.h>

#include <hiredis/hiredis.h>

#include "err.h"
#include "msg.h"
#include "spool.h"

/* The Lua scripts, one for each rule of PROTOCOL.md 2, by what they do. */
/* clang-format off */
enum { S_REG, S_AGENTS, S_SUB, S_SEND, S_LIST, S_TAKE, S_LEASE, S_SETTLE,
	S_EXPIRE, NSCRIPTS };
/* clang-format on */

/* Their text, loaded once on each connection (spool-redis-lua.c). */
extern const char *const rd_scripts[NSCRIPTS];

/* An open spool in Redis, s->impl. */
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
	int stalled; /* the last command had no answer in time */
	double sub_retry_at, sub_backoff;
	int sub_was_up;
	unsigned gen;
	char sha[NSCRIPTS][48];
	char waiting[NAME_MAX_LEN + 1]; /* spool_wait's agent */
	int woke;
	/* Scripts queued (rd_queue) and not yet handed out (rd_next), in
	 * order, from q_off to nq: each with its bytes, so that one refused
	 * after a SCRIPT FLUSH can go again, and the count of script loads
	 * when it was queued. Those before nread had their reply read ahead
	 * for a command that came between (rep; NULL for one lost with its
	 * connection); the rest are still to come on r->c. */
	struct rd_queued {
		char *cmd;
		size_t len;
		unsigned loads;
		redisReply *rep;
	} *q;
	size_t q_off, nread, nq, capq;
	unsigned loads;
};

/* The connection, in spool-redis-conn.c. */

/* Seconds on the monotonic clock. */
double rd_now(void);

/* Fill e: the spool is unavailable because of why (BCH_TEMP, 503); -1. */
int rd_unavailable(struct rd *r, struct err *e, const char *why);

/* Lengthen a pause (from 0.1 s, doubling, up to a ceiling) and set
 * *retry_at to its end. */
void rd_pause_more(double *backoff, double *retry_at);

/* The command connection with the scripts loaded, made again when it was
 * lost (once the pause after a failed attempt is over): 0, or -1 with e
 * filled. */
int rd_ready(struct rd *r, struct err *e);

/* Run one command; the reply, or NULL with e filled (BCH_TEMP, 503). */
redisReply *rd_call(struct rd *r, struct err *e, int argc, const char **argv,
    const size_t *lens);

/* Run script which (S_*) with ARGV args, the prefix first, added here; a
 * length of 0 in lens (or no lens) is the string's own. The reply, or NULL
 * with e filled (BCH_TEMP, 503). */
redisReply *rd_script(struct rd *r, struct err *e, int which, int argc,
    const char **args, const size_t *lens);

/* Queue script which (S_*) as rd_script would run it, to go out with
 * the next command or rd_next(): 0, or -1 with e filled (503). Every
 * queued script must have its rd_next(). */
int rd_queue(struct rd *r, struct err *e, int which, int argc,
    const char **args, const size_t *lens);

/* The reply to the oldest script queued, or NULL with e filled (BCH_TEMP,
 * 503: the connection was lost, or Redis answered with an error). */
redisReply *rd_next(struct rd *r, struct err *e);

/* Free rep (if any) and fill e: Redis answered what no script returns. */
int rd_bad_reply(struct rd *r, struct err *e, redisReply *rep);

/* Subscribe to r->chan on a connection of its own, r->sub, then read it
 * without blocking; 0, or -1 with e filled. */
int rd_sub_connect(struct rd *r, struct err *e);

/* Forget r->sub, which failed. */
void rd_sub_lost(struct rd *r);

/* Fill r's address, user, database and prefix from url
 * (redis://[user@]host[:port][/db][?db=N&prefix=P] or unix:///path): 0,
 * or -1 with e filled (BCH_PERM). */
int rd_parse_url(struct rd *r, const char *url, struct err *e);

/* The reading operations of the spool_ops and spool_shared tables
 * (spool.h says what each promises), in spool-redis-read.c. */
int rd_list(struct spool *s, const char *agent, struct spool_item **items,
    size_t *n, struct err *e);
int rd_peek(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct err *e);
int rd_take(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct spool_claim *c, struct err *e);
int rd_ack(struct spool *s, struct spool_claim *c, int keep, struct err *e);
int rd_release(struct spool *s, struct spool_claim *c, struct err *e);
int rd_wait(struct spool *s, const char *agent, int timeout_ms,
    struct err *e);
int rd_await(struct spool *s, const char *id, char **rcpt, size_t n,
    int timeout_ms, int *got, struct err *e);
int rd_lease(struct spool *s, struct spool_claim *c, int seconds,
    struct err *e);
int rd_settle(struct spool *s, const char *agent, const char *id, int ack,
    int keep, struct err *e);
int rd_arrival_fd(struct spool *s, unsigned *gen);
int rd_arrivals(struct spool *s,
    void (*fn)(void *, const char *, const char *, const char *, size_t),
    void *arg, struct err *e);

#endif
