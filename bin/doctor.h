/* doctor: what the parts of bch-doctor share — the report being built
 * (struct doc), a line added to it, and the small helpers every check
 * uses to name a fix. bch-doctor.c holds these and the checks of home,
 * config, identity and environment; doctor-spool.c, doctor-relay.c and
 * doctor-harness.c the rest, in the order main() runs them. */
#ifndef BCH_DOCTOR_H
#define BCH_DOCTOR_H

#include <limits.h>
#include <stddef.h>
#include <sys/stat.h>

#include "config.h"

#define P 4400 /* room for home (PATH_MAX) plus our components */

enum { OK, WARN, FAIL };

struct check {
	int st;
	char *what, *detail, *fix;
};

struct ran { /* a program already tried: tried once, reported alike */
	char path[PATH_MAX];
	int rc;
	char out[300];
};

struct doc {
	struct config cfg;
	int json, fix;
	struct check *c;
	size_t n;
	int failed;
	char host[96];  /* this machine as claim names carry it */
	char user[64];  /* for chown fixes */
	char id_fix[600]; /* what fixes the identity, when it is broken */
	struct ran ran[8];
	size_t nran;
	const char *release; /* --release: the host whose claims to return */
	struct fhost *fh;    /* claims of other hosts, per host */
	size_t nfh;
};

/* One check: what was checked, how it went, why (fmt, may be NULL), and
 * for a failure the command that fixes it. */
void add(struct doc *d, int st, const char *what, const char *fix,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* s quoted for sh when it needs it, into out. */
const char *q(const char *s, char *out, size_t outsz);

/* "bch init NAME", with BACKCHANNEL_AGENT= when it is not the default. */
void init_cmd(struct doc *d, const char *name, char *out, size_t outsz);

/* Owned by us, mode as wanted: else a failure naming the fix. 1 fine. */
int owner_mode(struct doc *d, const char *what, const char *path,
    const struct stat *st, mode_t want);

/* doctor-spool.c: agents/, spool/, tokens/; with d->fix, stale claims. */
void check_spool(struct doc *d);

/* doctor-spool.c: s seconds as "40 s", "5 min", "3 h" or "2 days". */
void doctor_age(long s, char *out, size_t outsz);

/* doctor-claims.c: put cur/'s src back as new/'s dst, never over a file
 * already there (then src goes: the message is back). 0, or -1. */
int doctor_unclaim(const char *src, const char *dst);

/* doctor-claims.c: is h a host name as claims carry it (not this
 * machine's pid-namespace suffix)? */
int doctor_host_valid(const char *h);

/* doctor-claims.c: a claim of another host in agent's cur/ (path, named
 * name), counted under its host; returned to new/ when that host is
 * d->release and its claimer lock is not held. */
void doctor_foreign_claim(struct doc *d, const char *agent,
    const char *path, const char *name);

/* doctor-claims.c: agent's cur/ is done: its counts join each host's. */
void doctor_foreign_agent_done(struct doc *d, const char *agent);

/* doctor-claims.c: a line per host holding claims: a warning, a failure
 * once the oldest is past CLAIM_STALE, or what --release did. */
void doctor_report_foreign(struct doc *d);

/* doctor-relay.c: reachable, TLS, health, clock, then the token. */
void check_relay(struct doc *d);

/* doctor-harness.c: the hooks and MCP entries of Claude Code, Codex and
 * Gemini CLI, each program they name run once. */
void check_harnesses(struct doc *d);

/* doctor-harness.c: run path with argv, bounded, its output caught:
 * exit status, or -1 with the reason in out. The first line of what it
 * printed is in out. */
int doctor_run(const char *path, char *const argv[], char *out,
    size_t outsz);

/* doctor-wake.c: the wake service (s6, systemd --user or launchd), and
 * whether it runs. */
void check_wake(struct doc *d);

#endif
