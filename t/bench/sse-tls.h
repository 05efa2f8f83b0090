/* sse-tls: the TLS client of sse-load.c (its -t), see sse-tls.c. */
#ifndef SSE_TLS_H
#define SSE_TLS_H
#include <stddef.h>
#include <sys/types.h>

#include <bearssl.h>

/* An X.509 engine that trusts any chain and hands over the leaf's key. */
struct anyx {
	const br_x509_class *vtable;
	br_x509_decoder_context dc; /* the leaf's; holds its key */
	int depth;
};

/* One TLS connection: its engine, plain text waiting to go out, and
 * what it asked of epoll. */
struct tls {
	br_ssl_client_context cc;
	struct anyx x;
	int ep;          /* the epoll set the socket is in */
	void *ptr;       /* the socket's epoll data */
	unsigned events; /* the interest last registered */
	size_t olen, ooff;
	char out[1024];
	unsigned char io[BR_SSL_BUFSIZE_BIDI];
};

struct tls *tls_new(int ep, void *ptr, unsigned events);
ssize_t tls_read(struct tls *t, int fd, char *buf, size_t cap);
int tls_send(struct tls *t, int fd, const char *p, size_t n);
void tls_handshake(struct tls *t, int fd);

#endif
