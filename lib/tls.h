/* tls: BearSSL for the relay (a non-blocking engine per connection) and
 * for its client (blocking, verifying the relay by CA or by pinned key).
 * The only module that includes BearSSL's TLS headers. */
#ifndef BCH_TLS_H
#define BCH_TLS_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "err.h"

struct tls_server;
struct tls_conn;
struct tls_client;

/* Load a PEM certificate chain and a PEM private key (RSA or EC). The
 * pin of the leaf's public key (hex sha256) is written to pin[65]. */
struct tls_server *tls_server_new(const char *certfile, const char *keyfile,
    char pin[65], struct err *e);
void tls_server_free(struct tls_server *s);
/* The size of the server's RSA key in bits; 0 for an EC key. */
unsigned tls_server_rsa_bits(const struct tls_server *s);

struct tls_conn *tls_conn_new(struct tls_server *s);
void tls_conn_free(struct tls_conn *t);

/* Hand the pages of t's record buffers back to the system while t is
 * idle (past the handshake, nothing in flight either way); the next
 * record brings them back. 1 resting, 0 busy. */
int tls_conn_rest(struct tls_conn *t);

/* What tls_conn_pump() reports in *flags. */
#define TLS_WANT_WRITE 1 /* records still wait for a writable socket */
#define TLS_EOF 2        /* the peer closed its side: read no more, but
                          * what is owed to it can still go */
#define TLS_SENT 4       /* records were written */

/* Move bytes between socket fd and the engine: plain out[*off..] is
 * encrypted and written to fd as far as the socket takes it; records
 * read earlier are decrypted into in as far as the engine takes them;
 * when readable (the event loop said so), fd is read, in one read for
 * many records, until some plain text came or fd has no more. Reads stop
 * there, as the loop (level-triggered) calls again for what is left: no
 * read a round that would only say EAGAIN. Bytes read but not yet taken
 * stay with t for the next call. *flags says what happened (TLS_*). 0,
 * or -1 when the session is over. */
int tls_conn_pump(struct tls_conn *t, int fd, int readable, struct buf *in,
    const struct buf *out, size_t *off, int *flags);

/* End t's session gracefully: the engine queues a close_notify for
 * tls_conn_pump() to send (the peer's own is not waited for). */
void tls_conn_close(struct tls_conn *t);

/* Has the handshake of t been done? Until it is, a client is held to the
 * time a request has to arrive. */
int tls_conn_up(const struct tls_conn *t);

/* A client session to host over a connected blocking socket. pin (hex
 * sha256 of the public key) skips CA checks; else cafile (NULL: the
 * system bundle) verifies the chain and the name. */
struct tls_client *tls_client_new(const char *host, const char *pin,
    const char *cafile, struct err *e);
void tls_client_free(struct tls_client *t);
int tls_client_write(struct tls_client *t, int fd, const void *p, size_t n);
ssize_t tls_client_read(struct tls_client *t, int fd, void *p, size_t n);

/* Hold t's reads from the socket (of records, and in the handshake) to
 * the time due (CLOCK_MONOTONIC): past it they fail with ETIMEDOUT,
 * however the bytes trickle in. NULL: each read waits as long as the
 * socket's own timeout, as it did before. */
void tls_client_due(struct tls_client *t, const struct timespec *due);

/* Why the relay was not trusted, or NULL if that is not what failed. */
const char *tls_client_why(struct tls_client *t);

/* Has t's handshake been done? Until then no byte of what was written
 * has left. */
int tls_client_up(const struct tls_client *t);

/* Did the handshake fail on an answer in plain HTTP ("HTTP/...", a
 * server that speaks no TLS on that port)? */
int tls_client_plain(const struct tls_client *t);

/* Has the engine decrypted bytes not yet read? */
int tls_client_pending(struct tls_client *t);

/* The pin of the first certificate in a PEM file, for invites. */
int tls_pin_of_file(const char *certfile, char pin[65], struct err *e);

#endif
