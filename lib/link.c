/* link: a connection to the relay whose answer is held to a deadline
 * for the whole of it, not for each read: a peer that trickles a byte
 * now and then must not hold the caller for ever. */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "io.h"
#include "link.h"

void
link_close(struct link *l)
{
	if (l->fd >= 0)
		close(l->fd);
	tls_client_free(l->tls);
	l->tls = NULL;
	l->fd = -1;
	l->skip = 0;
	memset(&l->due, 0, sizeof l->due);
	buf_reset(&l->in);
}

void
link_due(struct link *l, int secs)
{
	link_due_ms(l, secs > 0 ? secs * 1000L : 0);
}

void
link_due_ms(struct link *l, long ms)
{
	memset(&l->due, 0, sizeof l->due);
	if (ms > 0) {
		clock_gettime(CLOCK_MONOTONIC, &l->due);
		l->due.tv_sec += (time_t)(ms / 1000);
		l->due.tv_nsec += ms % 1000 * 1000000;
		if (l->due.tv_nsec >= 1000000000) {
			l->due.tv_sec++;
			l->due.tv_nsec -= 1000000000;
		}
	}
}

static int
link_timed(const struct link *l)
{
	return l->due.tv_sec || l->due.tv_nsec;
}

/* n bytes of the answer came: the deadline a second later for each 64
 * KiB, so that a big answer (8 MiB) over a slow link (down to 512
 * kbit/s) is not cut off, while a trickle is, little past the timeout. */
static void
due_later(struct link *l, ssize_t n)
{
	long long ns = l->due.tv_nsec + (long long)n * (1000000000 / 65536);

	if (n <= 0 || !link_timed(l))
		return;
	l->due.tv_sec += (time_t)(ns / 1000000000);
	l->due.tv_nsec = (long)(ns % 1000000000);
}

ssize_t
link_write(struct link *l, const void *p, size_t n)
{
	if (l->tls) {
		/* The handshake's reads are held to the deadline too. */
		tls_client_due(l->tls, link_timed(l) ? &l->due : NULL);
		return tls_client_write(l->tls, l->fd, p, n) < 0 ? -1 : (ssize_t)n;
	}
	return io_writeall(l->fd, p, n) < 0 ? -1 : (ssize_t)n;
}

ssize_t
link_read(struct link *l, void *p, size_t n)
{
	ssize_t r;

	if (l->tls) {
		tls_client_due(l->tls, link_timed(l) ? &l->due : NULL);
		r = tls_client_read(l->tls, l->fd, p, n);
	} else if (link_timed(l) && io_wait_readable(l->fd, &l->due) < 0) {
		return -1;
	} else {
		do
			r = read(l->fd, p, n);
		while (r < 0 && errno == EINTR);
	}
	due_later(l, r);
	return r;
}
