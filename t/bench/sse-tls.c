/* sse-tls: the TLS client of sse-load.c (its -t).
 *
 * BearSSL does no I/O of its own, so TLS stays inside the epoll loop:
 * where plain TCP reads or writes the socket, tls_pump() moves bytes
 * between the socket and the connection's engine instead, handshake
 * included, and watches for EPOLLOUT only while the engine holds records
 * the socket would not take. Each connection has its own engine and
 * 33 KiB of record buffers, some 400 MB here for 10,000 streams, all of
 * it in this process and none in the relay's figures. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bearssl.h>

#include "sse-tls.h"

/* br_ssl_client_init_full() sets up a minimal X.509 engine, which anyx
 * then replaces; none of its state is ever used, so one does for all. */
static br_x509_minimal_context unused_xc;

static void
anyx_start_chain(const br_x509_class **ctx, const char *server_name)
{
	struct anyx *x = (struct anyx *)(void *)ctx;

	(void)server_name;
	br_x509_decoder_init(&x->dc, NULL, NULL);
	x->depth = 0;
}

static void
anyx_start_cert(const br_x509_class **ctx, uint32_t length)
{
	(void)ctx;
	(void)length;
}

static void
anyx_append(const br_x509_class **ctx, const unsigned char *buf, size_t len)
{
	struct anyx *x = (struct anyx *)(void *)ctx;

	if (x->depth == 0)
		br_x509_decoder_push(&x->dc, buf, len);
}

static void
anyx_end_cert(const br_x509_class **ctx)
{
	((struct anyx *)(void *)ctx)->depth++;
}

static unsigned
anyx_end_chain(const br_x509_class **ctx)
{
	struct anyx *x = (struct anyx *)(void *)ctx;

	return br_x509_decoder_get_pkey(&x->dc) ? 0 : BR_ERR_X509_NOT_TRUSTED;
}

static const br_x509_pkey *
anyx_get_pkey(const br_x509_class *const *ctx, unsigned *usages)
{
	struct anyx *x = (struct anyx *)(void *)ctx;

	if (usages)
		*usages = BR_KEYTYPE_KEYX | BR_KEYTYPE_SIGN;
	return br_x509_decoder_get_pkey(&x->dc);
}

static const br_x509_class anyx_vtable = {
    sizeof(struct anyx), anyx_start_chain, anyx_start_cert, anyx_append,
    anyx_end_cert,       anyx_end_chain,   anyx_get_pkey,
};

/* A client engine for a socket already in epoll set ep with data ptr and
 * interest events. */
struct tls *
tls_new(int ep, void *ptr, unsigned events)
{
	struct tls *t = malloc(sizeof *t);

	if (!t) {
		fprintf(stderr, "sse-load: out of memory\n");
		exit(1);
	}
	br_ssl_client_init_full(&t->cc, &unused_xc, NULL, 0);
	t->x.vtable = &anyx_vtable;
	br_ssl_engine_set_x509(&t->cc.eng, &t->x.vtable);
	br_ssl_engine_set_buffer(&t->cc.eng, t->io, sizeof t->io, 1);
	if (!br_ssl_client_reset(&t->cc, "localhost", 0)) {
		fprintf(stderr, "sse-load: cannot start a TLS session\n");
		exit(1);
	}
	t->ep = ep;
	t->ptr = ptr;
	t->events = events;
	t->olen = t->ooff = 0;
	return t;
}

/* Move what can move: records between the socket and the engine, queued
 * plain text into the engine, and up to cap bytes of plain text out of
 * it into buf. Returns the bytes put in buf, or -1 when there are none
 * and the connection is closed or failed. */
static long
tls_pump(struct tls *t, int fd, char *buf, size_t cap)
{
	br_ssl_engine_context *eng = &t->cc.eng;
	size_t got = 0, len;
	int moved = 1, blocked = 0, dead = 0;
	unsigned char *p;
	unsigned st;
	ssize_t n;

	while (moved && !dead) {
		moved = blocked = 0;
		if (br_ssl_engine_current_state(eng) & BR_SSL_CLOSED) {
			static int told;
			int e = br_ssl_engine_last_error(eng);
			if (e && !told++)
				fprintf(stderr, "sse-load: TLS error %d\n", e);
			dead = 1;
			break;
		}
		if ((p = br_ssl_engine_sendrec_buf(eng, &len))) {
			/* A peer gone mid-record is an error, not SIGPIPE. */
			n = send(fd, p, len, MSG_NOSIGNAL);
			if (n > 0)
				br_ssl_engine_sendrec_ack(eng, (size_t)n);
			else if (n < 0 && errno == EAGAIN)
				blocked = 1;
			else if (n == 0 || errno != EINTR)
				dead = 1;
			if (n > 0 || (n < 0 && errno == EINTR))
				moved = 1;
		}
		if (got < cap && (p = br_ssl_engine_recvapp_buf(eng, &len))) {
			if (len > cap - got)
				len = cap - got;
			memcpy(buf + got, p, len);
			br_ssl_engine_recvapp_ack(eng, len);
			got += len;
			moved = 1;
		}
		if (t->ooff < t->olen &&
		    (p = br_ssl_engine_sendapp_buf(eng, &len))) {
			if (len > t->olen - t->ooff)
				len = t->olen - t->ooff;
			memcpy(p, t->out + t->ooff, len);
			br_ssl_engine_sendapp_ack(eng, len);
			t->ooff += len;
			if (t->ooff == t->olen)
				br_ssl_engine_flush(eng, 0);
			moved = 1;
		}
		/* Past the handshake, take records in only with room for
		 * their plain text: plain text left in the engine would wait
		 * for a readable socket that never comes. */
		st = br_ssl_engine_current_state(eng);
		if (!dead && (got < cap || !(st & BR_SSL_SENDAPP)) &&
		    (p = br_ssl_engine_recvrec_buf(eng, &len))) {
			n = read(fd, p, len);
			if (n > 0)
				br_ssl_engine_recvrec_ack(eng, (size_t)n);
			else if (n == 0 || (errno != EAGAIN && errno != EINTR))
				dead = 1;
			if (n > 0 || (n < 0 && errno == EINTR))
				moved = 1;
		}
	}
	{
		struct epoll_event ev;
		ev.events = EPOLLIN | (blocked ? EPOLLOUT : 0);
		ev.data.ptr = t->ptr;
		if (!dead && ev.events != t->events &&
		    epoll_ctl(t->ep, EPOLL_CTL_MOD, fd, &ev) == 0)
			t->events = ev.events;
	}
	return got || !dead ? (long)got : -1;
}

/* read(2) on the plain text: -1 with EAGAIN while there is none yet (a
 * handshake, a record not whole), 0 once the connection is gone. */
ssize_t
tls_read(struct tls *t, int fd, char *buf, size_t cap)
{
	long n = tls_pump(t, fd, buf, cap);

	if (n == 0)
		errno = EAGAIN;
	return n == 0 ? -1 : n < 0 ? 0 : n;
}

/* Queue n bytes to send and push out what can go now; later pumps send
 * the rest as the handshake and the socket allow. */
int
tls_send(struct tls *t, int fd, const char *p, size_t n)
{
	if (t->ooff < t->olen || n > sizeof t->out) {
		errno = ENOBUFS;
		return -1;
	}
	memcpy(t->out, p, n);
	t->olen = n;
	t->ooff = 0;
	return tls_pump(t, fd, NULL, 0) < 0 ? -1 : 0;
}

/* Finish the sender's handshake before the clock starts. */
void
tls_handshake(struct tls *t, int fd)
{
	int polls = 0; /* of at most 100 ms each: 10 s in all */

	while (!(br_ssl_engine_current_state(&t->cc.eng) & BR_SSL_SENDAPP)) {
		struct pollfd pf = {fd, POLLIN, 0};
		if (tls_pump(t, fd, NULL, 0) < 0 || ++polls > 100) {
			fprintf(stderr, "sse-load: no TLS handshake with the "
			                "relay for the sender\n");
			exit(1);
		}
		if (t->events & EPOLLOUT)
			pf.events |= POLLOUT;
		poll(&pf, 1, 100);
	}
}
