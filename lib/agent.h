/* agent: the agent record of PROTOCOL.md 2 and its JSON form. */
#ifndef BCH_AGENT_H
#define BCH_AGENT_H

#include "buf.h"
#include "err.h"
#include "spool.h"

/* Decode an agent record. 0, or -1 with e filled. */
int agent_decode(const char *s, size_t n, struct agent_rec *a, struct err *e);

/* Append a as JSON (indented as the first implementation wrote it);
 * tokenHash only when with_hash. */
void agent_encode(const struct agent_rec *a, struct buf *b, int with_hash);

/* Is the agent subscribed to channel? Index, or -1. */
int agent_has_sub(const struct agent_rec *a, const char *channel);

/* A deep copy of src into dst. */
void agent_copy(struct agent_rec *dst, const struct agent_rec *src);

void agent_free(struct agent_rec *a);

#endif
