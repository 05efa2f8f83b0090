/* spool-redis-conn: the connections of the spool in Redis — the command
 * connection that runs the scripts, made again with a growing pause when
 * it fails, and the subscription to arrivals (the spool URL is read in
 * spool-redis-url.c). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "spool-redis.h"

#define CMD_TIMEOUT_S 3 /* for an answer from Redis */

#define BACKOFF_MAX 2.0 /* seconds between attempts to reconnect */
#define PROBE_MS 250    /* for an answer from a Redis that stalled */

double
rd_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int
rd_unavailable(struct rd *r, struct err *e, const char *why)
{
	err_set(e, BCH_TEMP,
	        "the spool (Redis at %s) is unavailable: %s — "
	        "try again in a moment",
	        r->where, why);
	return err_status(e, 503);
}

void
rd_pause_more(double *backoff, double *retry_at)
{
	*backoff = *backoff > 0 ? *backoff * 2 : 0.1;
	if (*backoff > BACKOFF_MAX)
		*backoff = BACKOFF_MAX;
	*retry_at = rd_now() + *backoff;
}

/* One command on a fresh connection, during its set-up. */
static int
setup_cmd(redisContext *c, struct err *e, struct rd *r, int argc,
          const char **argv)
{
	redisReply *rep = redisCommandArgv(c, argc, argv, NULL);
	int rc = 0;

	if (!rep)
		return rd_unavailable(r, e, c->errstr);
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

/* After a command went unanswered, a server that accepts connections
 * may still be stopped (a freeze, a fork of a large dataset): any answer
 * to a PING within PROBE_MS says it runs again, so that the set-up and
 * the scripts to load do not each wait out the command timeout. */
static int
probe(redisContext *c, struct rd *r, struct err *e)
{
	struct timeval tv = {0, PROBE_MS * 1000};
	redisReply *rep;

	redisSetTimeout(c, tv);
	if (!(rep = redisCommand(c, "PING")))
		return rd_unavailable(r, e, "it does not answer");
	freeReplyObject(rep);
	r->stalled = 0;
	return 0;
}

static redisContext *
dial(struct rd *r, struct err *e)
{
	struct timeval tv = {1, 0}, cmd = {CMD_TIMEOUT_S, 0};
	redisContext *c;
	char db[16];

	c = r->port ? redisConnectWithTimeout(r->host, r->port, tv)
	            : redisConnectUnixWithTimeout(r->host, tv);
	if (!c || c->err) {
		rd_unavailable(r, e, c ? c->errstr : "out of memory");
		if (c)
			redisFree(c);
		return NULL;
	}
	fcntl(c->fd, F_SETFD, FD_CLOEXEC);
	if (r->stalled && probe(c, r, e) < 0) {
		redisFree(c);
		return NULL;
	}
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

/* Give the connection up; the next call makes it again. The replies
 * queued scripts were owed on it will not come: rd_next() hands each
 * out as a failure. A connection lost is made again at once; one that
 * went silent not before a pause, and then after a probe (dial()): the
 * relay has one thread, and a stopped Redis must not hold it up for a
 * command timeout with every request. */
static void
drop(struct rd *r)
{
	r->nread = r->nq;
	if (r->c)
		redisFree(r->c);
	r->c = NULL;
	if (r->stalled) {
		r->backoff = BACKOFF_MAX;
		r->retry_at = rd_now() + BACKOFF_MAX;
	} else {
		r->retry_at = 0;
	}
}

/* Send what is queued in c's output and wait for the next reply in
 * poll(), which only the reply wakes. (A read() blocked on a unix socket
 * is woken as well when Redis consumes the request and its write space
 * comes back: one needless trip through the scheduler per command, on a
 * CPU Redis then pays to interrupt.) NULL with c->errstr set when the
 * connection failed or Redis said nothing for the command timeout. */
static redisReply *
reply(struct rd *r)
{
	redisContext *c = r->c;
	struct pollfd p;
	void *rep = NULL;
	int done = 0, n;

	while (!done)
		if (redisBufferWrite(c, &done) != REDIS_OK)
			return NULL;
	p.fd = c->fd;
	p.events = POLLIN;
	for (;;) {
		if (redisGetReplyFromReader(c, &rep) != REDIS_OK)
			return NULL;
		if (rep)
			return rep;
		n = poll(&p, 1, CMD_TIMEOUT_S * 1000);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r->stalled = n == 0;
			c->err = REDIS_ERR_IO;
			snprintf(c->errstr, sizeof c->errstr, "%s",
			    n ? strerror(errno) : "no answer in time");
			return NULL;
		}
		if (redisBufferRead(c) != REDIS_OK)
			return NULL;
	}
}

/* Read the replies owed to queued scripts and keep them for rd_next(),
 * so that the command about to go gets its own. */
static void
collect(struct rd *r)
{
	while (r->nread < r->nq) {
		redisReply *rep = reply(r);
		if (!rep) {
			drop(r);
			return;
		}
		r->q[r->nread++].rep = rep;
	}
}

/* One command and its reply on the connection there is; NULL with e
 * filled, the connection dropped, when it failed. */
static redisReply *
command(struct rd *r, struct err *e, int argc, const char **argv,
        const size_t *lens)
{
	redisReply *rep;

	collect(r);
	if (!r->c)
		return rd_unavailable(r, e, "the connection was lost"), NULL;
	if (redisAppendCommandArgv(r->c, argc, argv, lens) != REDIS_OK ||
	    !(rep = reply(r))) {
		rd_unavailable(r, e, r->c->errstr);
		drop(r);
		return NULL;
	}
	return rep;
}

static int
load_scripts(struct rd *r, struct err *e)
{
	int i;

	for (i = 0; i < NSCRIPTS; i++) {
		const char *a[3] = {"SCRIPT", "LOAD", rd_scripts[i]};
		redisReply *rep = command(r, e, 3, a, NULL);
		if (!rep)
			return -1;
		if (rep->type != REDIS_REPLY_STRING ||
		    rep->len >= sizeof r->sha[i]) {
			rd_unavailable(r, e,
			    rep->type == REDIS_REPLY_ERROR ? rep->str
			                                   : "cannot load the scripts");
			freeReplyObject(rep);
			drop(r);
			return -1;
		}
		memcpy(r->sha[i], rep->str, rep->len + 1);
		freeReplyObject(rep);
	}
	r->loads++;
	return 0;
}

/* An error reply, freed, into e. A server that no longer takes writes
 * (READONLY: a master turned replica in a failover; MASTERDOWN) is given
 * up after a pause, so that a Redis behind one address (a DNS name, a
 * proxy) is found again where the failover moved it. */
static void
refused(struct rd *r, struct err *e, redisReply *rep)
{
	int gone = strncmp(rep->str, "READONLY", 8) == 0 ||
	           strncmp(rep->str, "MASTERDOWN", 10) == 0;

	rd_unavailable(r, e, rep->str);
	freeReplyObject(rep);
	if (gone) {
		drop(r);
		rd_pause_more(&r->backoff, &r->retry_at);
	}
}

/* The command connection, made again when it was lost. */
int
rd_ready(struct rd *r, struct err *e)
{
	if (r->c)
		return 0;
	if (rd_now() < r->retry_at)
		return rd_unavailable(r, e, "reconnecting");
	if (!(r->c = dial(r, e)) || load_scripts(r, e) < 0) {
		drop(r);
		rd_pause_more(&r->backoff, &r->retry_at);
		return -1;
	}
	r->backoff = 0;
	return 0;
}

/* Run one command; the reply, or NULL with e filled (BCH_TEMP, 503). */
redisReply *
rd_call(struct rd *r, struct err *e, int argc, const char **argv,
        const size_t *lens)
{
	redisReply *rep;

	if (rd_ready(r, e) < 0 || !(rep = command(r, e, argc, argv, lens)))
		return NULL;
	if (rep->type == REDIS_REPLY_ERROR) {
		refused(r, e, rep);
		return NULL;
	}
	return rep;
}

/* EVALSHA script which with args, the prefix first: into argv and len;
 * the count. */
static int
script_argv(struct rd *r, int which, int argc, const char **args,
            const size_t *lens, const char **argv, size_t *len)
{
	int i;

	argv[0] = "EVALSHA";
	argv[1] = r->sha[which];
	argv[2] = "0";
	argv[3] = r->prefix;
	for (i = 0; i < 4; i++)
		len[i] = strlen(argv[i]);
	for (i = 0; i < argc; i++) {
		argv[4 + i] = args[i];
		len[4 + i] = lens && lens[i] ? lens[i] : strlen(args[i]);
	}
	return 4 + argc;
}

/* A script's error reply, freed, into e. After a SCRIPT FLUSH (NOSCRIPT)
 * the scripts are loaded again and 1 says to run it again. */
static int
script_error(struct rd *r, struct err *e, redisReply *rep)
{
	int noscript = strncmp(rep->str, "NOSCRIPT", 8) == 0;

	refused(r, e, rep);
	return noscript && load_scripts(r, e) == 0;
}

/* EVALSHA script with ARGV args (the prefix first, added here). */
redisReply *
rd_script(struct rd *r, struct err *e, int which, int argc, const char **args,
          const size_t *lens)
{
	const char *argv[16];
	size_t len[16];
	redisReply *rep;
	int tries, n;

	for (tries = 0; tries < 2; tries++) {
		if (rd_ready(r, e) < 0)
			return NULL;
		n = script_argv(r, which, argc, args, lens, argv, len);
		if (!(rep = command(r, e, n, argv, len)))
			return NULL;
		if (rep->type != REDIS_REPLY_ERROR)
			return rep;
		if (!script_error(r, e, rep))
			return NULL;
	}
	return NULL;
}

/* Queue script which, to go out with the next command or rd_next(). */
int
rd_queue(struct rd *r, struct err *e, int which, int argc, const char **args,
         const size_t *lens)
{
	const char *argv[16];
	size_t len[16];
	char *cmd;
	int n;

	if (rd_ready(r, e) < 0)
		return -1;
	n = script_argv(r, which, argc, args, lens, argv, len);
	if ((n = redisFormatCommandArgv(&cmd, n, argv, len)) < 0)
		return rd_unavailable(r, e, "out of memory");
	if (redisAppendFormattedCommand(r->c, cmd, (size_t)n) != REDIS_OK) {
		redisFreeCommand(cmd);
		return rd_unavailable(r, e, "out of memory");
	}
	if (r->nq == r->capq) {
		r->capq = r->capq ? 2 * r->capq : 16;
		r->q = xrealloc(r->q, r->capq * sizeof *r->q);
	}
	r->q[r->nq].cmd = cmd;
	r->q[r->nq].len = (size_t)n;
	r->q[r->nq].loads = r->loads;
	r->q[r->nq++].rep = NULL;
	return 0;
}

/* A queued script refused with NOSCRIPT (a SCRIPT FLUSH since): the
 * scripts loaded again, unless that was done after it was queued, and
 * the same bytes sent once more. The reply, or NULL with e filled. */
static redisReply *
requeued(struct rd *r, struct err *e, const struct rd_queued *q)
{
	redisReply *rep;

	if (q->loads == r->loads && load_scripts(r, e) < 0)
		return NULL;
	collect(r);
	if (!r->c)
		return rd_unavailable(r, e, "the connection was lost"), NULL;
	if (redisAppendFormattedCommand(r->c, q->cmd, q->len) != REDIS_OK ||
	    !(rep = reply(r))) {
		rd_unavailable(r, e, r->c->errstr);
		drop(r);
		return NULL;
	}
	return rep;
}

/* The reply to the oldest script queued, or NULL with e filled. */
redisReply *
rd_next(struct rd *r, struct err *e)
{
	struct rd_queued q;
	redisReply *rep;

	if (r->q_off == r->nq)
		return rd_unavailable(r, e, "no script was queued"), NULL;
	q = r->q[r->q_off++];
	if (r->q_off <= r->nread) { /* read ahead, or lost */
		if (!(rep = q.rep))
			rd_unavailable(r, e, "the connection was lost");
	} else if (r->nread++, !(rep = reply(r))) {
		rd_unavailable(r, e, r->c->errstr);
		drop(r);
	}
	if (rep && rep->type == REDIS_REPLY_ERROR &&
	    strncmp(rep->str, "NOSCRIPT", 8) == 0) {
		freeReplyObject(rep);
		rep = requeued(r, e, &q);
	}
	if (rep && rep->type == REDIS_REPLY_ERROR) {
		refused(r, e, rep);
		rep = NULL;
	}
	redisFreeCommand(q.cmd);
	if (r->q_off == r->nq)
		r->q_off = r->nread = r->nq = 0;
	return rep;
}

int
rd_bad_reply(struct rd *r, struct err *e, redisReply *rep)
{
	if (rep)
		freeReplyObject(rep);
	return rd_unavailable(r, e, "an unexpected reply");
}

/* Subscribe on a connection of its own, then read it without blocking. */
int
rd_sub_connect(struct rd *r, struct err *e)
{
	redisContext *c;
	redisReply *rep;

	if (!(c = dial(r, e)))
		return -1;
	rep = redisCommand(c, "SUBSCRIBE %s", r->chan);
	if (!rep || rep->type != REDIS_REPLY_ARRAY) {
		rd_unavailable(r, e,
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

void
rd_sub_lost(struct rd *r)
{
	redisFree(r->sub);
	r->sub = NULL;
	r->gen++;
	r->sub_retry_at = 0;
}
