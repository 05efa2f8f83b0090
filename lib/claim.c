/* claim: the name of a claim in cur/, written by spool-fs and read back
 * by spool-fs (to return a dead reader's claims) and bch-doctor, and the
 * lock a claimer holds on it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "claim.h"
#include "io.h"

#define PIDNS "-pidns-"
#define PIDNS_FIRST 4026531836UL /* the first pid namespace's inode */

void
claim_host(char *out, size_t outsz)
{
	struct stat st;
	size_t i, len;

	out[outsz - 1] = 0;
	if (gethostname(out, outsz - 1) < 0 || !out[0])
		snprintf(out, outsz, "localhost");
	for (i = 0; out[i]; i++) {
		char ch = out[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			out[i] = '_';
	}
	len = strlen(out);
	if (stat("/proc/self/ns/pid", &st) == 0 &&
	    (unsigned long)st.st_ino != PIDNS_FIRST &&
	    (size_t)snprintf(out + len, outsz - len, PIDNS "%lu",
	    (unsigned long)st.st_ino) >= outsz - len)
		out[len] = 0; /* no room: the name alone */
}

/* The length of host's machine name, before any "-pidns-<n>". */
static size_t
machine_len(const char *host)
{
	const char *p = strstr(host, PIDNS);

	return p ? (size_t)(p - host) : strlen(host);
}

ssize_t
claim_parse(const char *name, char *host, size_t hostsz, long *pid)
{
	const char *c = strstr(name, ".claim."), *h, *dot;
	char *end;

	if (!c)
		return -1;
	h = c + 7;
	if (!(dot = strrchr(h, '.')) || dot == h ||
	    (size_t)(dot - h) >= hostsz)
		return -1;
	snprintf(host, hostsz, "%.*s", (int)(dot - h), h);
	errno = 0;
	*pid = strtol(dot + 1, &end, 10);
	if (errno || *end || *pid <= 0)
		return -1;
	return c - name;
}

static int held = -1;       /* this process's claimer lock */
static pid_t held_by;        /* the process that made it (not a fork) */
static char held_path[4200];

static void
unhold(void)
{
	if (held >= 0 && held_by == getpid()) {
		unlink(held_path);
		close(held);
		held = -1;
	}
}

/* Lock fd, waiting up to about 100 ms for a judge or a sweep that holds
 * it for a moment; never for good, in case another process holds it
 * under the same name (a pid namespace without /proc to tell it). */
static int
wait_lock(int fd)
{
	struct timespec ms = { 0, 1000000 };
	int i;

	for (i = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; i++) {
		if ((errno != EWOULDBLOCK && errno != EINTR) || i >= 100)
			return -1;
		if (errno == EWOULDBLOCK)
			nanosleep(&ms, NULL);
	}
	return 0;
}

/* Open and lock path: a judge or a sweep may hold the lock for a moment
 * (claim_judge, claim_sweep), and a sweep removes the file of a lock it
 * took, so the lock is waited for and then must be on the file still at
 * path. The fd, or -1. */
static int
lock_at(const char *dir, const char *path)
{
	struct stat a, b;
	int fd, tries;

	for (tries = 0; tries < 10; tries++) {
		fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		/* The directory is made once: opening first saves a mkdir. */
		if (fd < 0 && errno == ENOENT &&
		    (mkdir(dir, 0700) == 0 || errno == EEXIST))
			fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW |
			    O_CLOEXEC, 0600);
		if (fd < 0)
			return -1;
		if (wait_lock(fd) < 0) {
			close(fd);
			return -1;
		}
		if (fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return fd;
		close(fd); /* swept while we waited: make it again */
	}
	errno = EAGAIN;
	return -1;
}

int
claim_hold(const char *dir, const char *host)
{
	static int registered;
	int fd;

	if (held >= 0 && held_by == getpid())
		return 0;
	if (held >= 0) /* a fork's copy: its parent's lock, not its own */
		close(held);
	held = -1;
	snprintf(held_path, sizeof held_path, "%s/%s.%ld", dir, host,
	    (long)getpid());
	if ((fd = lock_at(dir, held_path)) < 0)
		return -1;
	held = fd;
	held_by = getpid();
	if (!registered++)
		atexit(unhold);
	return 0;
}

/* Is the claim at path older than CLAIM_STALE? */
static int
stale(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0 && time(NULL) - st.st_ctime > CLAIM_STALE;
}

int
claim_judge(const char *path, const char *name, const char *ours,
    const char *dir, ssize_t *flen)
{
	char host[256], lock[4200];
	size_t m;
	long pid;
	int fd, free_;

	if ((*flen = claim_parse(name, host, sizeof host, &pid)) < 0)
		return CLAIM_NOT;
	m = machine_len(ours);
	if (machine_len(host) != m || memcmp(host, ours, m) != 0)
		return CLAIM_FOREIGN;
	if (strcmp(host, ours) == 0 && pid == (long)getpid())
		return CLAIM_LIVE;
	snprintf(lock, sizeof lock, "%s/%s.%ld", dir, host, pid);
	if ((fd = open(lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) >= 0) {
		free_ = flock(fd, LOCK_EX | LOCK_NB) == 0;
		close(fd);
		return free_ ? CLAIM_GONE : CLAIM_LIVE;
	}
	if (strcmp(host, ours) == 0 && !io_pid_alive((pid_t)pid))
		return CLAIM_GONE;
	return stale(path) ? CLAIM_GONE : CLAIM_LIVE;
}

size_t
claim_sweep(const char *dir, const char *ours, int fix)
{
	char host[256], path[4200];
	struct dirent *de;
	size_t n = 0, m = machine_len(ours);
	const char *dot;
	DIR *dd;
	int fd;

	if (!(dd = opendir(dir)))
		return 0;
	while ((de = readdir(dd))) {
		if (de->d_name[0] == '.' || !(dot = strrchr(de->d_name, '.')) ||
		    (size_t)(dot - de->d_name) >= sizeof host)
			continue;
		snprintf(host, sizeof host, "%.*s", (int)(dot - de->d_name),
		    de->d_name);
		if (machine_len(host) != m || memcmp(host, ours, m) != 0)
			continue; /* another machine's: not judged here */
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if ((fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) < 0)
			continue;
		if (flock(fd, LOCK_EX | LOCK_NB) == 0 &&
		    (!fix || unlink(path) == 0))
			n++; /* removed while locked: see lock_at() */
		close(fd);
	}
	closedir(dd);
	return n;
}
