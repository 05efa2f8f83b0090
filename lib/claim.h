/* claim: the name a claimed message takes in cur/,
 * <file>.claim.<host>.<pid> (PROTOCOL.md 2). */
#ifndef BCH_CLAIM_H
#define BCH_CLAIM_H

#include <stddef.h>
#include <sys/types.h>

/* This machine's name as claims carry it, into out: gethostname() with
 * every byte but [A-Za-z0-9_-] made '_', or "localhost" when there is
 * none (or it does not fit). */
void claim_host(char *out, size_t outsz);

/* Take a claim's name apart: host (non-empty, fitting hostsz) and pid
 * (> 0). Returns the length of <file>, or -1 if name is not a claim. */
ssize_t claim_parse(const char *name, char *host, size_t hostsz, long *pid);

#endif
