/* link: a client's connection to the relay — a socket, TLS over it for
 * https — whose answer is held to a deadline for the whole of it. The
 * relay client (spool-http) reads on it, and so does bch doctor. */
#ifndef BCH_LINK_H
#define BCH_LINK_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "tls.h"

/* One connection: the socket (-1: none), TLS over it for https, and what
 * was read from it and not yet used. */
struct link {
	int fd;
	struct tls_client *tls;
	struct buf in;
	int skip; /* in an event over the limit: dropping it to its end */
	/* When the answer awaited must be in (CLOCK_MONOTONIC): reads fail
	 * with ETIMEDOUT past it. Zero while none is (an event stream). */
	struct timespec due;
};

/* Close l, if open, and drop what it had read (l->in is kept for its
 * next use: buf_free() it when done with l). */
void link_close(struct link *l);

/* The answer awaited on l must be in within secs seconds from now; 0:
 * no deadline. Each 64 KiB of it that comes gives it a second more. */
void link_due(struct link *l, int secs);
/* The same in milliseconds: ms from now; 0 or less, no deadline. */
void link_due_ms(struct link *l, long ms);

/* Write and read on l as write(2) (all of it) and read(2) do, over TLS
 * where it has it; reads, and the TLS handshake's, are held to l->due:
 * past it -1 with errno ETIMEDOUT. */
ssize_t link_write(struct link *l, const void *p, size_t n);
ssize_t link_read(struct link *l, void *p, size_t n);

#endif
