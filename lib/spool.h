/* spool: the one interface every program uses to reach messages, whether
 * they sit in the local Maildir tree (spool-fs.c) or behind a relay. */
#ifndef BCH_SPOOL_H
#define BCH_SPOOL_H

#include <stddef.h>

#include "config.h"
#include "err.h"
#include "msg.h"

struct agent_rec {
	char name[NAME_MAX_LEN + 1];
	char **subs; /* "#dev", ... */
	size_t nsubs;
	char created[40];
	char seen[40];
	char *token_hash; /* NULL when absent */
	char *token;      /* a relay's answer to a first registration */
};

/* One unread message as listed: enough to sort, filter and claim it. */
struct spool_item {
	char id[ID_MAX_LEN + 1];
	char ts[40];
	char *name;   /* file name in new/ */
	char *scope;  /* NULL when unscoped */
	char *raw;    /* the stored JSON, when kept in memory; else NULL */
	size_t rawlen;
	int urgent;
};

/* A claimed message: it is ours until spool_ack() or spool_release(). */
struct spool_claim {
	char agent[NAME_MAX_LEN + 1];
	char name[ID_MAX_LEN + 16]; /* file name it had in new/ */
	char *path;                 /* where the claim sits now */
	int gone;   /* deleted when taken (a relay without leases): it
	             * cannot be released, and needs no ack */
};

struct spool;

struct spool_ops {
	int (*reg)(struct spool *, const char *, const char *, struct agent_rec *,
	    struct err *);
	int (*agents)(struct spool *, struct agent_rec **, size_t *, struct err *);
	int (*subscribe)(struct spool *, const char *, const char *, int,
	    struct err *);
	int (*send)(struct spool *, struct msg *, struct err *);
	int (*sync)(struct spool *, struct err *);
	int (*list)(struct spool *, const char *, struct spool_item **, size_t *,
	    struct err *);
	int (*peek)(struct spool *, const char *, const struct spool_item *,
	    struct msg *, struct err *);
	int (*take)(struct spool *, const char *, const struct spool_item *,
	    struct msg *, struct spool_claim *, struct err *);
	int (*ack)(struct spool *, struct spool_claim *, int, struct err *);
	int (*release)(struct spool *, struct spool_claim *, struct err *);
	int (*wait)(struct spool *, const char *, int, struct err *);
	int (*await)(struct spool *, const char *, char **, size_t, int, int *,
	    struct err *);
	void (*close)(struct spool *);
	/* NULL for a spool that can only list: spool_scan() lists then. */
	int (*scan)(struct spool *, const char *,
	    void (*)(void *, const struct spool_item *), void *, struct err *);
	/* NULL for a spool whose waits bring no messages. */
	void (*arrived)(struct spool *, struct spool_item **, size_t *);
};

/* What a spool shared by several relays keeps for them (spool-redis.c),
 * so that any relay can answer any request and a relay that dies
 * strands nothing. A spool without it (s->shared NULL) leaves the relay
 * to keep leases, recent client ids, send-rate buckets and the token
 * index in its own memory, and to find arrivals with inotify. With it,
 * a send that carries an id is idempotent: a second send with that id
 * from the same sender stores nothing and fills m with the first. */
struct spool_shared {
	/* The agent whose personal token hashes (sha256 hex) to hash:
	 * 1 found (agent filled), 0 none, -1 error. */
	int (*token)(struct spool *, const char *hash,
	    char agent[NAME_MAX_LEN + 1], struct err *);
	/* spool_send in two halves, taking one send from m->from's bucket
	 * (rate per second, burst, one for all the relays) in the same
	 * step, so that a relay can put the sends of one round to the spool
	 * together. send_queue() checks and queues m: 0, or -1 with e
	 * filled. send_done() gives the outcome of the oldest send queued,
	 * for that same m: 0 stored, or -1 with e filled; over the rate,
	 * e's status is 429 and *retry_after the seconds to wait. Every
	 * queued send must have its send_done(); other calls may come in
	 * between. */
	int (*send_queue)(struct spool *, struct msg *m, double rate,
	    double burst, struct err *);
	int (*send_done)(struct spool *, struct msg *m, int *retry_after,
	    struct err *);
	/* Hold the claim c for seconds; settle() ends it, or it runs out
	 * and the message returns to the inbox. 0 or -1. */
	int (*lease)(struct spool *, struct spool_claim *c, int seconds,
	    struct err *);
	/* Settle agent's leased id: ack (keep it or not) or release it.
	 * 1 done, 0 no such lease (expired, settled), -1 error. */
	int (*settle)(struct spool *, const char *agent, const char *id,
	    int ack, int keep, struct err *);
	/* The recipients of from's send with client-chosen id, while the
	 * id is remembered: 1 (*rcpt, *n: free each and the array), 0
	 * unknown, -1 error. For read receipts asked of any relay. */
	int (*sent)(struct spool *, const char *from, const char *id,
	    char ***rcpt, size_t *n, struct err *);
	/* Return every expired lease to its inbox. 0 or -1. */
	int (*expire)(struct spool *, struct err *);
	/* Arrivals, as an event loop wants them: the descriptor to poll,
	 * -1 while not subscribed; *gen changes whenever the descriptor
	 * does (a reconnect may reuse the number). */
	int (*arrival_fd)(struct spool *, unsigned *gen);
	/* Read the arrivals there are, without blocking, (re)subscribing
	 * first when the subscription is down; fn(arg, agent, id, json, len)
	 * for each (json: the stored message, or NULL), and fn with agent
	 * NULL when some may have been missed. 0 or -1. */
	int (*arrivals)(struct spool *, void (*fn)(void *, const char *,
	    const char *, const char *, size_t), void *arg, struct err *);
};

struct spool {
	const struct spool_ops *ops;
	const struct spool_shared *shared; /* NULL but for a shared spool */
	struct config *cfg;
	const char *prog; /* for warnings on stderr */
	int batch;        /* defer directory syncs to spool_sync() */
	size_t keep_raw;  /* bytes of listed messages to keep in memory */
	int keep_arrived; /* spool_wait() keeps what it reads, for
	                   * spool_arrived() */
	char **rcpt;      /* who the last spool_send delivered to */
	size_t nrcpt;
	/* Optional: told of each message spool_send stores on the files,
	 * once it is written and its recipients are known, before it is
	 * linked into their inboxes (json: the stored message, no newline).
	 * The relay pushes it to their streams meanwhile. */
	void (*stored)(void *arg, const char *id, char **rcpt, size_t n,
	    const char *json, size_t len);
	void *stored_arg;
	/* The last spool_scan()'s listing, sorted by id, on a spool without
	 * ops->scan, for the peeks and takes that name its items by id. */
	struct spool_item *scanned;
	size_t nscanned;
	char *scanned_for; /* the agent it lists */
	/* The last spool_list() or spool_scan() listed only the oldest
	 * unread messages (cut): a relay lists an inbox over what one
	 * answer may hold in parts. more: it got further than the listing
	 * before, so once they are taken, listing again gets the next (and
	 * spool_wait() returns at once); a reader that takes none of them
	 * clears it, as listing again would get the same. */
	int cut, more;
	/* A relay's spool: a request went out on a connection to the
	 * relay once (over TLS, past the handshake), so it may have reached
	 * it. A failed registration without it reached no relay (an address
	 * that does not answer, https:// to a plain HTTP port). */
	int reached;
	void *impl;
};

/* Open the spool the configuration names (relay URL, else local). */
struct spool *spool_open(struct config *c, const char *prog, struct err *e);
void spool_close(struct spool *s);

/* Create (or refresh) the record and inbox of agent name. */
int spool_register(struct spool *s, const char *name, struct agent_rec *out,
    struct err *e);

/* The same, setting the record's tokenHash (a relay registering). On a
 * shared spool, checked with the write in one step: 409 in e if another
 * name has that tokenHash, or name exists with another; 1 (the record
 * refreshed) if name has it already, a retry through any relay. */
int spool_register_token(struct spool *s, const char *name,
    const char *token_hash, struct agent_rec *out, struct err *e);

/* Every agent record, sorted by name. Free with agent_list_free(). */
int spool_agents(struct spool *s, struct agent_rec **list, size_t *n,
    struct err *e);
void agent_list_free(struct agent_rec *list, size_t n);

/* Every channel with at least one subscriber, sorted. */
int spool_channels(struct spool *s, char ***list, size_t *n, struct err *e);

/* Add (on) or remove (!on) agent's subscription to channel ("#x"). */
int spool_subscribe(struct spool *s, const char *agent, const char *channel,
    int on, struct err *e);

/* Deliver m: fills m->id (if empty) and m->ts, copies it to every
 * recipient. Returns the number of recipients, or -1 with e filled:
 * BCH_PERM for unknown agent, empty channel, over a limit; BCH_TEMP for
 * a full inbox, disk or I/O trouble. Durable on return unless fsync is
 * off or s->batch is set (then after spool_sync()). */
int spool_send(struct spool *s, struct msg *m, struct err *e);
int spool_sync(struct spool *s, struct err *e);

/* The unread messages of agent, sorted by ts then id. Returns dead
 * claimers' messages to the inbox first; moves corrupt files aside with a
 * warning. From a relay, only the oldest of an inbox over what one
 * answer may hold (s->cut, s->more). Free with spool_items_free(). */
int spool_list(struct spool *s, const char *agent, struct spool_item **items,
    size_t *n, struct err *e);
void spool_items_free(struct spool_item *items, size_t n);

/* The messages spool_list() would list, handed to fn(arg, it) one at a
 * time, in no particular order, it valid only during the call: the
 * caller keeps what it needs of each, and the local spool keeps nothing.
 * A later spool_peek() or spool_take() may name a message of the scan by
 * an item holding only its id, name "<id>.json" and ts (raw NULL).
 * 0, or -1 with e filled. */
int spool_scan(struct spool *s, const char *agent,
    void (*fn)(void *arg, const struct spool_item *it), void *arg,
    struct err *e);

/* Read one listed message without claiming it. 1 read, 0 gone, -1 error. */
int spool_peek(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct err *e);

/* Claim one listed message: 1 claimed (m and c filled), 0 someone else
 * had it first (or it was corrupt and set aside), -1 error. */
int spool_take(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct spool_claim *c, struct err *e);

/* Claim the unread message whose whole id is id, listed or not: past
 * the part a relay lists (s->cut) no item names it, and no prefix can
 * be matched. 1 claimed (m and c filled), 0 no unread message has that
 * id (or someone else had it first), -1 error. */
int spool_take_id(struct spool *s, const char *agent, const char *id,
    struct msg *m, struct spool_claim *c, struct err *e);

/* The claimed message was handled: delete it, or keep it in cur/. */
int spool_ack(struct spool *s, struct spool_claim *c, int keep, struct err *e);

/* The claimed message could not be handled: return it to the inbox. */
int spool_release(struct spool *s, struct spool_claim *c, struct err *e);

/* Wait until agent's inbox may have changed (a message arrived, one
 * came back from a claimer that died, or the inbox was removed and made
 * anew) or timeout_ms passed (-1: no limit). The first call arms the
 * watch and returns 1 at once, so a caller lists after it and misses
 * nothing. On the local spool, while the last listing found claims of
 * other live readers, it looks at them every few seconds, as their
 * claimer's death sends no event; with none it sleeps until an event.
 * 1 changed, 0 timed out or interrupted by a signal (EINTR), -1 error. */
int spool_wait(struct spool *s, const char *agent, int timeout_ms,
    struct err *e);

/* The messages the last spool_wait() read on a relay's event stream,
 * with s->keep_arrived set: items as spool_list() gives them, raw kept,
 * in the order they came (on a stream just opened, every unread message
 * first). For a reader whose listing is cut (s->cut), which cannot list
 * past the part without taking it, to learn of those past it: each may
 * be peeked or taken, as listed, or be listed already, or be gone. At
 * most a few MiB (what one wait reads); none from the local spool, which
 * never cuts a listing. Free with spool_items_free(). */
void spool_arrived(struct spool *s, struct spool_item **items, size_t *n);

/* Wait until message id has been claimed by each of the n agents in
 * rcpt (as spool_send left them in s->rcpt), or timeout_ms passed (0:
 * just look). read[i] is set for each that has. 1 all read, 0 not yet,
 * -1 error (e->status 404 and "unsupported": a relay without receipts). */
int spool_await(struct spool *s, const char *id, char **rcpt, size_t n,
    int timeout_ms, int *read, struct err *e);

/* Record the recipients of the last send in s->rcpt (implementations). */
void spool_set_rcpt(struct spool *s, char **r, size_t n);

/* A message a spool is about to store (implementations): a valid sender
 * and target, within the limits, m->to in its canonical form, an id
 * (made when it has none) and the time now in m->ts. 0, or -1 with e. */
int spool_prepare(struct spool *s, struct msg *m, struct err *e);

/* m as a spool stores it, its JSON and a newline, into b; -1 with e
 * (status 413) when that is over the limit. */
int spool_encode(struct spool *s, const struct msg *m, struct buf *b,
    struct err *e);

/* Open the local Maildir spool (spool-fs.c). */
struct spool *spool_fs_open(struct config *c, const char *prog,
    struct err *e);

/* Open a relay at c->url with c->token (spool-http.c). */
struct spool *spool_http_open(struct config *c, const char *prog,
    struct err *e);

/* Open the spool kept in Redis at url (redis://[user@]host[:port][/db]
 * or unix:///path, either with ?prefix=P for the keys, default "bch:"),
 * authenticating with password (NULL: none) (spool-redis.c). For the
 * relay: several relays share one room this way. */
struct spool *spool_redis_open(struct config *c, const char *url,
    const char *password, const char *prog, struct err *e);

#endif
