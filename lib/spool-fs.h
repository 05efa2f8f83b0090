/* spool-fs: what the parts of the Maildir spool share — the state
 * of an open spool, and the helpers for paths, agent records and inboxes.
 * Private to spool-fs.c (delivery), spool-fs-agents.c (agent records)
 * and spool-fs-read.c (reading). */
#ifndef BCH_SPOOL_FS_H
#define BCH_SPOOL_FS_H

#include <stddef.h>
#include <sys/stat.h>
#include <time.h>

#include "agent.h"
#include "err.h"
#include "spool.h"

#define P 4200 /* room for home (PATH_MAX) plus our own components */

/* The spool's top directory, $BACKCHANNEL_HOME. */
static inline const char *
fs_home(const struct spool *s)
{
	return s->cfg->home;
}

/* What this process knows of one inbox. A long-lived sender (the relay)
 * trusts it for a while instead of asking the file system on every
 * send; a one-shot program starts with nothing. */
struct box {
	char name[NAME_MAX_LEN + 1];
	size_t n;      /* messages in new/, counted at `at` plus our sends */
	time_t at;     /* when n was counted */
	time_t ok_at;  /* when box_ok() last passed */
	time_t rec_at; /* when the agent record was last seen there */
	int spread;    /* 50..149: this inbox's share of a recheck period */
	int dirty;     /* new/ has entries not yet synced */
	size_t held;   /* claims in cur/ live readers held at the last look */
	/* The claims in cur/ (their names) when it was last read, trusted
	 * while it keeps the mtime cur_st has (spool-fs-write.c). */
	char **claims;
	size_t nclaims;
	struct stat cur_st;
	int claims_ok;
	struct box *next; /* hash chain */
};

struct fs {
	char host[96]; /* claim_host(), made on first use: see fs_host() */
	int ino; /* inotify descriptor, -1 until spool_wait() */
	int wd;  /* watch on the inbox's new/, -1 when not armed */
	struct box **boxes; /* hash table by name */
	size_t nboxes, capboxes;
	struct box **dirty; /* boxes to sync, each once */
	size_t ndirty, capdirty;
	/* The agent records, kept while agents/ is unchanged (see
	 * agents_fresh()); loaded on a channel send or a listing. */
	struct agent_rec *agents;
	size_t nagents;
	int agents_ok;
	struct stat agents_st;
};

/* This machine as claim and tmp/ names carry it (claim_host()), found
 * on first use: a listing with no claim to judge (the prompt hook's,
 * most of all) never asks. */
const char *fs_host(struct fs *fs);

/* Print "prog: <message>" to stderr as one line. */
void fs_warn(struct spool *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Write <home>/agents/<name>.json into out (P bytes). */
void agent_path(struct spool *s, char *out, const char *name);

/* Write <home>/spool/<agent>/<sub>, and /<file> unless file is NULL, into
 * out (P bytes). */
void box_path(struct spool *s, char *out, const char *agent, const char *sub,
    const char *file);

/* Take agents/.lock exclusively, waiting for it: a descriptor for
 * unlock_agents(), or -1 with e filled. */
int lock_agents(struct spool *s, struct err *e);

/* Release what lock_agents() took. */
void unlock_agents(int fd);

/* Read name's agent record into a (agent_free() it). 0, or -1 with e
 * filled: BCH_PERM when there is none, it is corrupt, or its "name" is not
 * name (the file name is the agent; such a record is never trusted). e may
 * be NULL. */
int read_agent(struct spool *s, const char *name, struct agent_rec *a,
    struct err *e);

/* Replace a's record atomically, fsynced when sync and the configuration
 * asks for it. 0, or -1 with e filled (e may be NULL). */
int write_agent(struct spool *s, const struct agent_rec *a, int sync,
    struct err *e);

/* 0 when name's inbox and its tmp/, new/ and cur/ are directories or
 * absent; -1 with e filled (BCH_PERM) when one is anything else, such as
 * a symlink. */
int box_ok(struct spool *s, const char *name, struct err *e);

/* Create name's tmp/, new/ and cur/ (0700) where missing. 0, or -1 with e
 * filled. */
int make_box(struct spool *s, const char *name, struct err *e);

/* The box record of name in s, made on first use; never NULL. */
struct box *box_of(struct spool *s, const char *name);

/* Move src to dst unless dst exists: 0 moved, 1 dst was there (src left
 * in place), -1 with errno. */
int move_noreplace(const char *src, const char *dst);

/* Forget b's list of claims (spool-fs-write.c). */
void box_claims_drop(struct box *b);

/* box_ok(), at most once in about BOX_RECHECK seconds per inbox. */
int fs_box_checked(struct spool *s, const char *name, struct err *e);

/* Is there room for one more message in each of the n inboxes r (the
 * quota, BACKCHANNEL_MAX_INBOX)? 0, or -1 with e filled: 507 when one
 * is full (spool-fs.c). */
int fs_room(struct spool *s, char **r, size_t n, struct err *e);

/* One more message linked into name's new/ (not one that was there
 * before): its count goes up (spool-fs.c). */
void fs_added(struct spool *s, const char *name);

/* Write m (encoded in b) once and link it into the new/ of each of the
 * n recipients r that lacks it: a client-chosen id the same sender's
 * message has there, unread, claimed or kept, is a retry, not linked
 * again (spool-fs-write.c). 0, or -1 with e filled, nothing left linked:
 * 409 when another sender's message, unread or claimed, has its id in
 * any of them; 507 when an inbox that lacks it is full (one that has
 * it already is no bar, so a retry into a full inbox succeeds). */
int fs_publish(struct spool *s, char **r, size_t n, const struct msg *m,
    const struct buf *b, struct err *e);

/* The agent records' operations of the spool_ops table (spool.h says
 * what each promises), in spool-fs-agents.c. */
int fs_reg(struct spool *s, const char *name, const char *token_hash,
    struct agent_rec *out, struct err *e);
int fs_agents(struct spool *s, struct agent_rec **list, size_t *n,
    struct err *e);
int fs_subscribe(struct spool *s, const char *agent, const char *channel,
    int on, struct err *e);

/* Bring fs->agents, every agent record, up to date with agents/: read
 * again only when agents/ changed. 0, or -1 with e filled. */
int agents_load(struct spool *s, struct err *e);

/* Forget fs->agents. */
void agents_drop(struct fs *fs);

/* The reading operations of the spool_ops table (spool.h says what each
 * promises), in spool-fs-read.c. */
int fs_list(struct spool *s, const char *agent, struct spool_item **items,
    size_t *n, struct err *e);
int fs_scan(struct spool *s, const char *agent,
    void (*fn)(void *, const struct spool_item *), void *arg, struct err *e);
int fs_peek(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct err *e);
int fs_take(struct spool *s, const char *agent, const struct spool_item *it,
    struct msg *m, struct spool_claim *c, struct err *e);
int fs_ack(struct spool *s, struct spool_claim *c, int keep, struct err *e);
int fs_release(struct spool *s, struct spool_claim *c, struct err *e);
int fs_wait(struct spool *s, const char *agent, int timeout_ms,
    struct err *e);

/* Shared by spool-fs-read.c and spool-fs-claim.c. A file name as it may
 * be shown (control bytes escaped). */
void fs_show_name(char *out, size_t outsz, const char *in);
/* Move src into dir as name.<time>, never over a file there: 0, the
 * path made in out; -1 with errno. */
int fs_move_dated(const char *src, const char *dir, const char *name,
    char *out);
/* Move a file that cannot be read as a message (why) out of the way,
 * into the spool's corrupt/, saying so on stderr. */
void fs_set_aside(struct spool *s, const char *agent, const char *path,
    const char *name, const char *why);
/* Decode the message at path (it->raw if the listing kept its bytes): 1
 * done, 0 gone or not a message (set aside), -1 with e filled. */
int fs_decode_at(struct spool *s, const char *agent, const char *path,
    const struct spool_item *it, struct msg *m, struct err *e);

/* Return the claims in agent's cur/ whose claimer died to new/, and
 * count in box_of(agent)->held those that other live readers on this
 * machine hold (not ours, not another machine's): claims that may yet
 * come back with no message arriving, when their claimer dies. The
 * number returned. */
size_t fs_recover(struct spool *s, const char *agent);
int fs_await(struct spool *s, const char *id, char **rcpt, size_t n,
    int timeout_ms, int *got, struct err *e);

#endif
