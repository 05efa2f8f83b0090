/* msg: the message of PROTOCOL.md 1, its names, limits and JSON form. */
#ifndef BCH_MSG_H
#define BCH_MSG_H

#include <stddef.h>

#include "buf.h"
#include "err.h"

#define NAME_MAX_LEN 64
#define ID_MAX_LEN 64

struct limits {
	size_t body;   /* 64 KiB */
	size_t scope;  /* 512 */
	size_t thread; /* 128 */
	size_t nrefs;  /* 32 */
	size_t ref;    /* 1 KiB */
	size_t total;  /* 96 KiB, the whole encoded message */
};

struct msg {
	char id[ID_MAX_LEN + 1];
	char ts[40];
	char *from;
	char *to; /* "@agent" or "#channel" */
	char *body;
	char *scope;  /* NULL when absent */
	char *thread; /* NULL when absent */
	char **refs;
	size_t nrefs;
	int urgent;
	int id_made; /* spool_prepare() made the id: no other message has it */
};

/* The default limits of PROTOCOL.md 1. */
void limits_default(struct limits *l);

/* Is s an agent name: ^[A-Za-z0-9][A-Za-z0-9._-]*$, at most 64 bytes? */
int name_valid(const char *s);

/* Is s usable as a message id (a safe file name, at most 64 bytes)? */
int id_valid(const char *s);

/* Is s a lowercase UUID v4, as a new message id must be? */
int uuid_valid(const char *s);

/* Turn "@bob", "bob" or "#dev" into "@bob" or "#dev" in out (size 66+).
 * -1 with e filled (BCH_PERM) when the name is not valid. */
int target_parse(const char *in, char *out, size_t outsz, struct err *e);

/* Decode one message object. With request set, only to and body are
 * required (a send request: stdin lines, relay /v1/send); otherwise every
 * required field of PROTOCOL.md 1 must be present and valid. Unknown
 * fields are ignored. 0, or -1 with e filled (BCH_PERM). */
int msg_decode(const char *s, size_t n, int request, const struct limits *l,
    struct msg *m, struct err *e);

/* The longest send request taken for a message within l: JSON may
 * spell any byte of it as a six-byte \uXXXX escape (json.dumps does,
 * for all but ASCII), so six times the encoded message, and 64 KiB for
 * the rest. The decoded message's own limits decide after. */
size_t msg_request_max(const struct limits *l);

/* Check a message built in memory against the limits. */
int msg_check(const struct msg *m, const struct limits *l, struct err *e);

/* Append m as one compact JSON object, fields in protocol order,
 * optional ones omitted when empty. */
void msg_encode(const struct msg *m, struct buf *b);

void msg_free(struct msg *m);

/* Copy of m with every string duplicated. */
void msg_copy(struct msg *dst, const struct msg *src);

/* Fresh UUID v4, lowercase, into out[37], sorting after the one this
 * process made before (so one sender's messages of one millisecond keep
 * their order). 0, or -1 (no randomness). */
int uuid_v4(char out[37]);

/* Current UTC time as 2026-06-12T12:00:00.000Z into out[25]. */
void ts_now(char out[25]);

#endif
