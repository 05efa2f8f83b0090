/* io: system calls done right: full writes, EINTR, bounded reads, fsync. */
#ifndef BCH_IO_H
#define BCH_IO_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "buf.h"
#include "err.h"

/* Write all n bytes, looping on short writes and EINTR, and waiting
 * whenever a non-blocking fd is full (a harness may leave its pipe or
 * terminal O_NONBLOCK). 0 or -1 (errno). */
int io_writeall(int fd, const void *p, size_t n);

/* After write() to fd said EAGAIN: wait until fd can take more. 0, or
 * -1 with errno: EINTR when a signal came, EAGAIN when fd is blocking
 * (its send timeout ran out; waiting longer is not ours to decide). */
int io_wait_writable(int fd);

/* Wait until fd has input (or an end, or an error, for read() to say)
 * or the time due (CLOCK_MONOTONIC) has come. 0, or -1 with errno:
 * ETIMEDOUT when due came first. */
int io_wait_readable(int fd, const struct timespec *due);

/* Read a regular file opened O_NOFOLLOW (relative to dirfd unless
 * AT_FDCWD) into b, refusing anything over max bytes. 0, or -1 with
 * errno (EFBIG when over max, ELOOP for a symlink). */
int io_readfile(int dirfd, const char *path, size_t max, struct buf *b);

/* Read everything from fd into b, at most max bytes (EFBIG past it). */
int io_readfd(int fd, size_t max, struct buf *b);

/* fsync the directory at path. */
int io_fsyncdir(const char *path);

/* Write the n bytes at p into fd, a file just made at path, fsync it
 * (if sync) and close fd. 0, or -1 with e filled: then fd is closed and
 * path unlinked, so no partial file is left (a full disk, say). */
int io_writeout(int fd, const char *path, const void *p, size_t n, int sync,
    struct err *e);

/* Replace path atomically with the n bytes at p, mode 0600: write a
 * temporary beside it, fsync it (if sync), rename, fsync the directory
 * (if sync). 0 or -1 with e filled. */
int io_replace(const char *path, const void *p, size_t n, int sync,
    struct err *e);

/* mkdir -p with mode for every directory it creates; 0 or -1 (errno). */
int io_mkdirs(const char *path, mode_t mode);

/* Read one line (without its newline) of at most max bytes from f into
 * line; a longer one is read to its end and dropped, with *toolong set,
 * so it never eats the next. 1 line, 0 end of input, -1 error. */
int io_readline(FILE *f, struct buf *line, size_t max, int *toolong);

/* A line reader over a descriptor that can tell whether a whole line is
 * there without waiting for it: what a program that acknowledges in
 * groups needs before it blocks. Zero it, then set fd. */
struct io_lines {
	int fd;
	struct buf b; /* read, from off on not yet returned */
	size_t off;
	int eof, skip; /* skip: in a line over max, dropping it */
	/* If set, shown every byte of a line over max, in order (the part
	 * kept, then the part dropped), before that line is returned. */
	void (*over)(void *arg, const char *p, size_t n);
	void *over_arg;
};

/* io_readline() over l. */
int io_lines_next(struct io_lines *l, struct buf *line, size_t max,
    int *toolong);

/* Would io_lines_next() return at once? 1 when a whole line, the end of
 * input or an error is there (reading, never waiting, what fd has); 0
 * when it would wait, or when a line over max is being dropped. */
int io_lines_ready(struct io_lines *l, size_t max);

/* Read what fd has now into l, never waiting, until more than max bytes
 * wait there unreturned: for a program busy with one line that must see
 * the ones after it. 0, or -1 on an error; at the end of input l->eof
 * is set. */
int io_lines_pull(struct io_lines *l, size_t max);

void io_lines_free(struct io_lines *l);

/* Is process pid alive on this machine? */
int io_pid_alive(pid_t pid);

/* Milliseconds on the monotonic clock since t0 (set by clock_gettime()
 * with CLOCK_MONOTONIC): what a timeout is counted in. */
long io_ms_since(const struct timespec *t0);

#endif
