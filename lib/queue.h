/* queue: the messages a reader is about to take, put in the order of
 * PROTOCOL.md 2 (ts, then id, as strcmp compares them) in little memory:
 * about 17 to 24 bytes a message where ts and id have their usual forms. */
#ifndef BCH_QUEUE_H
#define BCH_QUEUE_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

/* All zero is an empty queue. */
struct queue {
	struct qkey *k; /* while adding: one key a message */
	size_t nk, capk;
	unsigned char *packed; /* once sorted: the keys, packed */
	size_t plen, pos;
	uint64_t ts; /* the ts of the key before pos */
	char **odd;  /* the messages without a key: "<ts>\0<id>" */
	size_t nodd, capodd, iodd;
	size_t n; /* messages added */
};

/* Add a message by its ts and id (a ts of at most 39 bytes, an id of
 * at most ID_MAX_LEN). */
void queue_add(struct queue *q, const char *ts, const char *id);

/* Put what was added in order. Nothing may be added after. */
void queue_sort(struct queue *q);

/* The next message in order: 1 with ts and id filled, 0 when none is
 * left. */
int queue_next(struct queue *q, char ts[40], char id[ID_MAX_LEN + 1]);

void queue_free(struct queue *q);

#endif
