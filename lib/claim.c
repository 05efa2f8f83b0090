/* claim: the name of a claim in cur/, written by spool-fs and read back
 * by spool-fs (to return a dead reader's claims) and bch-doctor, and the
 * lock a claimer holds on it. */
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
	/* The directory is made once: opening first saves a mkdir a run. */
	fd = open(held_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ENOENT &&
	    (mkdir(dir, 0700) == 0 || errno == EEXIST))
		fd = open(held_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	}
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
