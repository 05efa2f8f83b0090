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

/* Open the file at path and take its claim lock (flock, exclusive,
 * without waiting): a claimer holds it from before its rename into cur/
 * until it acks or releases. The descriptor, or -1 with errno
 * (EWOULDBLOCK: another process holds it; ENOENT: gone). */
int claim_lock(const char *path);

/* Judge the claim at path, named name, for a reader whose claim_host()
 * is ours: CLAIM_NOT (not a claim, or gone), CLAIM_FOREIGN (another
 * machine's, not judged here), CLAIM_LIVE (its claimer lives), or, for
 * a claim whose claimer is gone, a descriptor holding its lock, to close
 * once it is back in new/; *flen is then the length of <file>.
 * A claim's lock is held while its claimer lives. One of this pid
 * namespace is gone when its lock is free and its pid is not alive, or
 * it is older than CLAIM_STALE (the relay takes no locks, and its leases
 * are shorter; an old claimer's pid may have been reused). One of
 * another pid namespace of this machine, where pids say nothing, is gone
 * when its lock is free. */
enum { CLAIM_NOT = -1, CLAIM_FOREIGN = -2, CLAIM_LIVE = -3 };
#define CLAIM_STALE (2 * 3600)
int claim_judge(const char *path, const char *name, const char *ours,
    ssize_t *flen);

#endif
