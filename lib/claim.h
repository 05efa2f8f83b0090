/* claim: the name a claimed message takes in cur/,
 * <file>.claim.<host>.<pid> (PROTOCOL.md 2). */
#ifndef BCH_CLAIM_H
#define BCH_CLAIM_H

#include <stddef.h>
#include <sys/types.h>

/* This machine's name as claims carry it, into out: gethostname() with
 * every byte but [A-Za-z0-9_-] made '_', or "localhost" when there is
 * none (or it does not fit); in a pid namespace other than the first,
 * "-pidns-<its inode>" follows, as its pids are not the machine's. */
void claim_host(char *out, size_t outsz);

/* Take a claim's name apart: host (non-empty, fitting hostsz) and pid
 * (> 0). Returns the length of <file>, or -1 if name is not a claim. */
ssize_t claim_parse(const char *name, char *host, size_t hostsz, long *pid);

/* The claimer lock: dir/<host>.<pid> (dir is <home>/claimers), made at
 * a process's first claim and held (flock, exclusive) until it exits,
 * when it is removed. A claim's process is alive exactly while its lock
 * is held, in any pid namespace of the machine, where a pid says
 * nothing. 0, or -1 with errno (the claim is then judged by its pid). */
int claim_hold(const char *dir, const char *host);

/* Judge the claim at path, named name, for a reader whose claim_host()
 * is ours, with claimer locks in dir: CLAIM_NOT (not a claim),
 * CLAIM_FOREIGN (another machine's, not judged here), CLAIM_LIVE (its
 * claimer lives) or CLAIM_GONE (return it to new/; *flen is the length
 * of <file>). A claimer whose lock file is there lives while it holds
 * it. One without (the relay before this lock, an older bch) is judged
 * by its pid in this pid namespace, and in any namespace is taken for
 * gone once its claim is older than CLAIM_STALE (past the longest
 * lease). */
enum { CLAIM_NOT = -1, CLAIM_FOREIGN = -2, CLAIM_LIVE = -3, CLAIM_GONE = 0 };
#define CLAIM_STALE (2 * 3600)
int claim_judge(const char *path, const char *name, const char *ours,
    const char *dir, ssize_t *flen);

/* The lock files in dir of this machine's claimers that are gone (their
 * lock free), removed when fix is set: each is left by a claimer that
 * did not exit normally. Remove them only once the claims naming them
 * are returned, as a claim whose lock file is missing is judged by its
 * pid, which may be another process's by now. Returns their number. */
size_t claim_sweep(const char *dir, const char *ours, int fix);

#endif
