/* io: the system-call helpers every module relies on. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"

int
io_wait_writable(int fd)
{
	struct pollfd pf = { .fd = fd, .events = POLLOUT };
	int fl = fcntl(fd, F_GETFL);

	/* A blocking descriptor says EAGAIN only when its SO_SNDTIMEO ran
	 * out: that timeout is the caller's deadline, not ours to extend. */
	if (fl < 0 || !(fl & O_NONBLOCK)) {
		errno = EAGAIN;
		return -1;
	}
	/* POLLERR or POLLHUP also end the wait: the next write() says why. */
	return poll(&pf, 1, -1) < 0 ? -1 : 0;
}

int
io_wait_readable(int fd, const struct timespec *due)
{
	struct pollfd pf = { .fd = fd, .events = POLLIN };

	for (;;) {
		long left = -io_ms_since(due);
		int rc;
		if (left <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		rc = poll(&pf, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (rc > 0)
			return 0;
		if (rc < 0 && errno != EINTR)
			return -1;
	}
}

int
io_writeall(int fd, const void *p, size_t n)
{
	const char *s = p;

	while (n > 0) {
		ssize_t w = write(fd, s, n);
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    (io_wait_writable(fd) == 0 || errno == EINTR))
			continue;
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		s += w;
		n -= (size_t)w;
	}
	return 0;
}

int
io_readfd(int fd, size_t max, struct buf *b)
{
	for (;;) {
		ssize_t r;

		if (b->cap - b->len < 2)
			buf_grow(b, 4096);
		r = read(fd, b->p + b->len, b->cap - b->len - 1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		b->len += (size_t)r;
		b->p[b->len] = 0;
		if (b->len > max) {
			errno = EFBIG;
			return -1;
		}
	}
	return 0;
}

int
io_readfile(int dirfd, const char *path, size_t max, struct buf *b)
{
	struct stat st;
	int fd, rc, saved;

	fd = openat(dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		errno = EINVAL;
		goto fail;
	}
	if ((size_t)st.st_size > max) {
		errno = EFBIG;
		goto fail;
	}
	/* Room for the whole file and one byte more, so that a file of the
	 * size fstat gave is read without growing the buffer. */
	buf_grow(b, (size_t)st.st_size + 1);
	rc = io_readfd(fd, max, b);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

int
io_fsyncdir(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int rc, saved;

	if (fd < 0)
		return -1;
	rc = fsync(fd);
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

int
io_writeout(int fd, const char *path, const void *p, size_t n, int sync,
    struct err *e)
{
	if (io_writeall(fd, p, n) < 0 || (sync && fsync(fd) < 0)) {
		err_sys(e, "cannot write %s", path);
		close(fd);
		unlink(path);
		return -1;
	}
	if (close(fd) < 0) { /* NFS may say only now that the write failed */
		err_sys(e, "cannot write %s", path);
		unlink(path);
		return -1;
	}
	return 0;
}

int
io_replace(const char *path, const void *p, size_t n, int sync, struct err *e)
{
	char tmp[4096], dir[4096];
	char *slash;
	int fd;

	if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >=
	    (int)sizeof tmp)
		return err_set(e, BCH_PERM, "path too long: %s", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd < 0)
		return err_sys(e, "cannot create %s", tmp);
	if (io_writeout(fd, tmp, p, n, sync, e) < 0)
		return -1;
	if (rename(tmp, path) < 0) {
		err_sys(e, "cannot replace %s", path);
		unlink(tmp);
		return -1;
	}
	if (sync) {
		snprintf(dir, sizeof dir, "%s", path);
		slash = strrchr(dir, '/');
		if (slash)
			*slash = 0;
		else
			snprintf(dir, sizeof dir, ".");
		if (io_fsyncdir(dir) < 0)
			return err_sys(e, "cannot sync %s", dir);
	}
	return 0;
}

int
io_mkdirs(const char *path, mode_t mode)
{
	char p[4096];
	size_t i, n = strlen(path);

	if (n == 0 || n >= sizeof p) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(p, path, n + 1);
	for (i = 1; i <= n; i++) {
		if (p[i] != '/' && p[i] != 0)
			continue;
		p[i] = 0;
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -1;
		p[i] = path[i];
	}
	return 0;
}

int
io_pid_alive(pid_t pid)
{
	if (pid <= 0)
		return 0;
	return kill(pid, 0) == 0 || errno == EPERM;
}

int
io_readline(FILE *f, struct buf *line, size_t max, int *toolong)
{
	int ch;

	buf_reset(line);
	*toolong = 0;
	while ((ch = getc_unlocked(f)) != EOF) {
		if (ch == '\n')
			return 1;
		if (line->len < max)
			buf_addc(line, (char)ch);
		else
			*toolong = 1;
	}
	if (ferror(f))
		return -1;
	return line->len > 0 || *toolong;
}

/* Read what l->fd has into l->b, dropping what was returned: n bytes,
 * 0 at the end of input (l->eof set), -1 error. */
static ssize_t
lines_fill(struct io_lines *l)
{
	ssize_t n;

	if (l->off) {
		memmove(l->b.p, l->b.p + l->off, l->b.len - l->off);
		l->b.len -= l->off;
		l->off = 0;
	}
	buf_grow(&l->b, 65536);
	while ((n = read(l->fd, l->b.p + l->b.len, 65536)) < 0 &&
	    errno == EINTR)
		;
	if (n > 0)
		l->b.len += (size_t)n;
	else if (n == 0)
		l->eof = 1;
	return n;
}

int
io_lines_next(struct io_lines *l, struct buf *line, size_t max, int *toolong)
{
	for (;;) {
		char *p = l->b.p + l->off, *nl;
		size_t have = l->b.len - l->off, n;
		if ((nl = have ? memchr(p, '\n', have) : NULL) || l->eof) {
			n = nl ? (size_t)(nl - p) : have;
			if (!nl && !n && !l->skip)
				return 0;
			*toolong = l->skip || n > max;
			if (*toolong && l->over)
				l->over(l->over_arg, p, n);
			if (!l->skip) {
				buf_reset(line);
				buf_add(line, p, n < max ? n : max);
			}
			l->skip = 0;
			l->off += n + (nl != NULL);
			return 1;
		}
		if (have > max) { /* over the limit: keep none of the rest */
			if (l->over)
				l->over(l->over_arg, p, have);
			if (!l->skip) {
				buf_reset(line);
				buf_add(line, p, max);
			}
			l->skip = 1;
			l->off = l->b.len;
		}
		if (lines_fill(l) < 0)
			return -1;
	}
}

int
io_lines_ready(struct io_lines *l, size_t max)
{
	struct pollfd pf = { .fd = l->fd, .events = POLLIN };
	size_t seen = 0; /* bytes from off on known to hold no newline */
	int n;

	for (;;) {
		size_t have = l->b.len - l->off;
		if (l->eof || (have > seen &&
		    memchr(l->b.p + l->off + seen, '\n', have - seen)))
			return 1;
		seen = have;
		if (have > max)
			return 0; /* it would drop that much and wait */
		while ((n = poll(&pf, 1, 0)) < 0 && errno == EINTR)
			;
		if (n <= 0)
			return 0;
		if (lines_fill(l) < 0)
			return 1; /* the error is there to report */
	}
}

int
io_lines_pull(struct io_lines *l, size_t max)
{
	struct pollfd pf = { .fd = l->fd, .events = POLLIN };
	int n;

	while (!l->eof && l->b.len - l->off <= max) {
		while ((n = poll(&pf, 1, 0)) < 0 && errno == EINTR)
			;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (lines_fill(l) < 0)
			return -1;
	}
	return 0;
}

void
io_lines_free(struct io_lines *l)
{
	buf_free(&l->b);
}

long
io_ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000L +
	    (now.tv_nsec - t0->tv_nsec) / 1000000L;
}
