/* relay: the relay API of PROTOCOL.md 5 over a spool, apart from the
 * sockets: a request goes in, a status and a JSON body come out. The
 * event loop (bin/bch-relayd.c, its connections in bin/relayd-conn.c)
 * owns connections, SSE and TLS. */
#ifndef BCH_RELAY_H
#define BCH_RELAY_H

#include <stddef.h>
#include <time.h>

#include "buf.h"
#include "http.h"
#include "spool.h"

struct relay_token { /* the token index: sha256 hex -> agent */
	char hash[65];
	char agent[NAME_MAX_LEN + 1];
	double tokens; /* send-rate bucket */
	double last;
};

struct relay_lease {
	struct spool_claim claim;
	char id[ID_MAX_LEN + 1];
	double expires; /* relay_now(): a clock that never steps */
};

struct relay_sent { /* recent sends: idempotent retries, receipts */
	char from[NAME_MAX_LEN + 1];
	char id[ID_MAX_LEN + 1];
	char *json;
	char **rcpt;
	size_t nrcpt;
	int next; /* next slot in its hash chain, or -1 */
};

struct relay {
	struct spool *sp;
	struct config *cfg;
	char room_hash[65];
	struct relay_token *tok; /* open addressing, cap a power of two */
	size_t ntok, captok;
	struct relay_lease *leases;
	size_t nleases;
	struct relay_sent *sent; /* a ring */
	size_t nsent, sentpos;
	int *sent_head; /* hash of id -> first slot, or -1 */
	double rate;  /* sends per second per agent */
	double burst; /* bucket size */
	int lease_max; /* seconds */
};

struct relay_answer {
	int status;
	struct buf body;
	int retry_after;                /* seconds, or 0 */
	const char *allow;              /* Allow (a 405's, OPTIONS's) or NULL */
	char agent[NAME_MAX_LEN + 1];   /* who asked, once authenticated */
	int sse;                        /* answer with an event stream */
	struct msg *queued;             /* a send queued on a shared spool */
};

/* Load the token index from the agent records; rate and burst start at
 * 50/s and 100 for the caller to change. 0 or -1. */
int relay_init(struct relay *r, struct spool *sp, struct config *cfg,
    const char *room_token, struct err *e);
void relay_free(struct relay *r);

/* Answer one request. For GET /v1/events/<agent> that passes the checks,
 * a->sse is set and the loop streams instead. */
void relay_handle(struct relay *r, const struct http_req *q,
    struct relay_answer *a);

/* The answer q's head alone decides, before its body is read: 1 with a
 * answered when the route needs a token that the head does not carry
 * (none, a garbled one, or one that is no one's: the 401 relay_handle()
 * would give), else 0 with a empty, for relay_handle() to answer once
 * the body is in. The checks are relay_handle()'s own. */
int relay_head(struct relay *r, const struct http_req *q,
    struct relay_answer *a);

/* The last touches every answer gets (Retry-After on a shared spool's
 * 503); relay_handle() and relay_send_done() apply them. */
void relay_answered(struct relay *r, struct relay_answer *a);

/* A send on a shared spool is queued and answered later:
 * relay_handle() returns with a->queued set and nothing else, and the
 * loop calls relay_send_done() with it, once for each, in the order
 * queued; it fills a as relay_handle() would have and frees m. Other
 * requests may be handled in between. */
void relay_send_done(struct relay *r, struct msg *m, const char *agent,
    struct relay_answer *a);

/* Messages waiting for agent as SSE events ("id:", "data:", blank), all
 * at once (bch-relayd sends a stream's backlog a slice at a time). */
void relay_sse_backlog(struct relay *r, const char *agent, struct buf *out);

/* One SSE event for the file name in agent's new/, if it is still there. */
int relay_sse_event(struct relay *r, const char *agent, const char *name,
    struct buf *out);

/* Did this relay lately store the message id in agent's inbox? (Its
 * event went to agent's streams then: the loop need not send it again.) */
int relay_sent_to(struct relay *r, const char *id, const char *agent);

/* Return expired leases to their inboxes; with all, every lease. */
void relay_expire(struct relay *r, int all);

#endif
