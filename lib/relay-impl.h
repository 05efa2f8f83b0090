/* relay-impl: what the parts of the relay share. Private to relay.c
 * (routing, tokens, the room's directory), relay-register.c
 * (registration) and relay-mail.c (send, receipts, inbox, take and
 * settle, the event stream). */
#ifndef BCH_RELAY_IMPL_H
#define BCH_RELAY_IMPL_H

#include <stddef.h>

#include "err.h"
#include "http.h"
#include "relay.h"

/* Seconds on the monotonic clock: the send-rate buckets' time. */
double relay_now(void);

/* Answer status with {"error": msg}, dropping any body so far. */
void relay_fail(struct relay_answer *a, int status, const char *msg);

/* Answer e: its own status, else 503 if trying again may help, else 400. */
void relay_fail_err(struct relay_answer *a, const struct err *e);

/* A string field of the JSON object body, at most max bytes, for the
 * caller to free; NULL if absent. *bad is set if the body is not an
 * object or the field not such a string. */
char *relay_field(const struct http_req *q, const char *key, size_t max,
    int *bad);

/* A boolean field of the body: 1 true, 0 false or absent, -1 anything
 * else. */
int relay_bool_field(const struct http_req *q, const char *key);

/* An integer field of the body, from min to max, into *out: 1 there, 0
 * absent (*out untouched), -1 anything else (a fraction, an exponent, a
 * string, out of range). */
int relay_int_field(const struct http_req *q, const char *key, long long min,
    long long max, long long *out);

/* Index the personal token whose sha256 hex is hash as agent's. */
void relay_tok_put(struct relay *r, const char *hash, const char *agent);

/* The agent a personal token belongs to, or NULL (e->code set when a
 * shared spool, which holds the index then, could not answer). */
struct relay_token *relay_tok_find(struct relay *r, const char *token,
    struct err *e);

/* Who asks: what the token in a request's head entitles it to. */
struct caller {
	struct relay_token *t; /* the bearer's entry in the token index */
	int room;              /* the bearer is the room token (register) */
};

/* POST /v1/register for caller c (see relay-register.c). */
void relay_route_register(struct relay *r, const struct http_req *q,
    const struct caller *c, struct relay_answer *a);

/* The mail side's state in r (the ring of recent sends, the leases):
 * made empty; and freed, each lease this relay holds returned first. */
void relay_mail_init(struct relay *r);
void relay_mail_free(struct relay *r);

/* Answer one of the mail routes for the authenticated caller a->agent,
 * whose token entry is t. 1 if path is one of them (a is answered), 0 if
 * not (a is untouched). */
int relay_route_mail(struct relay *r, const struct http_req *q,
    const char *path, struct relay_token *t, struct relay_answer *a);

#endif
