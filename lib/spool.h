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
	void (*close)(struct spool *);
};

struct spool {
	const struct spool_ops *ops;
	struct config *cfg;
	const char *prog; /* for warnings on stderr */
	int batch;        /* defer directory syncs to spool_sync() */
	size_t keep_raw;  /* bytes of listed messages to keep in memory */
	void *impl;
};

/* Open the spool the configuration names (relay URL, else local). */
struct spool *spool_open(struct config *c, const char *prog, struct err *e);
void spool_close(struct spool *s);

/* Create (or refresh) the record and inbox of agent name. */
int spool_register(struct spool *s, const char *name, struct agent_rec *out,
    struct err *e);

/* The same, setting the record's tokenHash (a relay registering). */
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
 * warning. Free with spool_items_free(). */
int spool_list(struct spool *s, const char *agent, struct spool_item **items,
    size_t *n, struct err *e);
void spool_items_free(struct spool_item *items, size_t n);

/* Read one listed message without claiming it. 1 read, 0 gone, -1 error. */
int spool_peek(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct err *e);

/* Claim one listed message: 1 claimed (m and c filled), 0 someone else
 * had it first (or it was corrupt and set aside), -1 error. */
int spool_take(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct spool_claim *c, struct err *e);

/* The claimed message was handled: delete it, or keep it in cur/. */
int spool_ack(struct spool *s, struct spool_claim *c, int keep, struct err *e);

/* The claimed message could not be handled: return it to the inbox. */
int spool_release(struct spool *s, struct spool_claim *c, struct err *e);

/* Wait until agent's inbox may have changed (a message arrived, or the
 * inbox was removed and made anew) or timeout_ms passed (-1: no limit).
 * The first call arms the watch and returns 1 at once, so a caller
 * lists after it and misses nothing. 1 changed, 0 timed out or
 * interrupted by a signal (EINTR), -1 error. */
int spool_wait(struct spool *s, const char *agent, int timeout_ms,
    struct err *e);

/* Open the local Maildir spool (spool-fs.c). */
struct spool *spool_fs_open(struct config *c, const char *prog,
    struct err *e);

/* Open a relay at c->url with c->token (spool-http.c). */
struct spool *spool_http_open(struct config *c, const char *prog,
    struct err *e);

#endif
