/* relayd-refuse: a connection refused as a whole. The wrong scheme for
 * the port is answered at its first byte (sniff_scheme()).
 *
 * A lingering close (RFC 9112 9.6): a connection refused
 * while its client still sends (a body over the limit, the wrong
 * scheme) is not closed outright: a close with input unread makes the
 * kernel send a reset, which can destroy the refusal in flight, and the
 * client, still writing, sees a lost connection instead of the answer.
 * Its sending side is shut (after the close_notify over TLS), and what
 * still comes is read and dropped, for a while and up to a size, so
 * that no client holds a slot by sending on: then it is closed. Nor
 * does it hold one from a new connection: with every slot taken, the
 * oldest lingering one is closed to make room (on_accept()). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "http.h"
#include "relayd.h"
#include "tls.h"

#define LINGER_BYTES (16 << 20) /* dropped at most, then closed */
#define LINGER_SLICE (256 * 1024) /* read at a time: the loop goes on */

/* The wrong scheme for the port, as its first byte tells: a TLS
 * client's is a handshake record's (0x16), an HTTP request's a method's
 * letter. Plain HTTP on the TLS port (http:// typed for an https://
 * relay), or a handshake on the plain one (the other way round), is
 * answered in plain text, so that the client sees a refusal it can name,
 * not a cut it would retry (or a wait for a head that never comes); then
 * k is plain HTTP, closing. Looked at (MSG_PEEK) once, before anything
 * reads it. */
void
sniff_scheme(struct relayd *d, struct conn *k)
{
	static const char to_tls[] =
	    "{\"error\":\"this relay speaks TLS: use https://\"}\n";
	static const char to_plain[] =
	    "{\"error\":\"this relay speaks plain HTTP: use http://\"}\n";
	struct buf out = BUF_INIT;
	unsigned char c;
	ssize_t n;

	do
		n = recv(k->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		return; /* EOF, an error, nothing yet: the reader's to see */
	k->sniffed = 1;
	if (k->tls ? !((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) :
	    c != 0x16)
		return;
	if (k->tls)
		http_put_response(&out, 400, NULL, to_tls, sizeof to_tls - 1,
		    0, NULL);
	else
		http_put_response(&out, 400, NULL, to_plain,
		    sizeof to_plain - 1, 0, NULL);
	fprintf(stderr, "relay %s - refused 400: %s\n", k->peer, k->tls ?
	    "plain HTTP on the TLS port" : "TLS on the plain HTTP port");
	tls_conn_free(k->tls);
	k->tls = NULL;
	conn_send(d, k, out.p, out.len);
	buf_free(&out);
	k->closing = 1; /* what it sent is read and dropped */
	k->unread = 1;
}

void
conn_finish(struct relayd *d, struct conn *k)
{
	struct epoll_event ev;

	/* No input left unread (or the client's end is closed): no reset
	 * to fear. A queued send's outcome is not this one's to wait for. */
	if (!k->unread || k->eof || k->q || k->sse || d->stop ||
	    shutdown(k->fd, SHUT_WR) < 0) {
		conn_close(d, k);
		return;
	}
	/* What the connection held is done with: it only drops input. */
	tls_conn_free(k->tls);
	k->tls = NULL;
	buf_free(&k->in);
	buf_free(&k->out);
	k->out_off = 0;
	http_parse_free(&k->parse);
	k->lingering = 1;
	k->lprev = d->ltail; /* the newest: the last to make room */
	k->lnext = NULL;
	if (d->ltail)
		d->ltail->lnext = k;
	else
		d->lhead = k;
	d->ltail = k;
	k->want_out = k->full = 0;
	k->since = time(NULL);
	k->linger_left = LINGER_BYTES;
	memset(&ev, 0, sizeof ev);
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.ptr = k;
	if (epoll_ctl(d->ep, EPOLL_CTL_MOD, k->fd, &ev) < 0)
		conn_close(d, k);
}

void
conn_linger(struct relayd *d, struct conn *k)
{
	static char sink[65536];
	size_t got = 0;

	while (got < LINGER_SLICE && k->linger_left) {
		size_t want = k->linger_left < sizeof sink ? k->linger_left :
		    sizeof sink;
		ssize_t n = read(k->fd, sink, want);
		if (n > 0) {
			got += (size_t)n;
			k->linger_left -= (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		break; /* the client closed (or is gone): done */
	}
	if (got >= LINGER_SLICE && k->linger_left)
		return; /* more on the next round: others are served too */
	conn_close(d, k);
}

void
linger_del(struct relayd *d, struct conn *k)
{
	if (k->lprev)
		k->lprev->lnext = k->lnext;
	else
		d->lhead = k->lnext;
	if (k->lnext)
		k->lnext->lprev = k->lprev;
	else
		d->ltail = k->lprev;
	k->lprev = k->lnext = NULL;
}

void
conn_drop(struct relayd *d, struct conn *k)
{
	conn_unlink(d, k);
	k->fd = -1; /* its events this round are ignored: on_conn() */
	k->next = d->dropped;
	d->dropped = k;
}

void
conns_reap(struct relayd *d)
{
	struct conn *k;

	while ((k = d->dropped)) {
		d->dropped = k->next;
		free(k);
	}
}
