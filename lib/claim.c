/* claim: the name of a claim in cur/, written by spool-fs and read back
 * by spool-fs (to return a dead reader's claims) and bch-doctor, and the
 * lock a claimer holds on it. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
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

/* Raise the soft limit on descriptors to the hard one, once: a drain of
 * many short messages holds a lock on each until its output is out. */
static int
more_files(void)
{
	static int done;
	struct rlimit rl;

	if (done++ || getrlimit(RLIMIT_NOFILE, &rl) < 0 ||
	    rl.rlim_cur == rl.rlim_max)
		return 0;
	rl.rlim_cur = rl.rlim_max;
	return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

int
claim_lock(const char *path)
{
	int fd, saved;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno == EMFILE && more_files())
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR)
			continue;
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

int
claim_judge(const char *path, const char *name, const char *ours,
    ssize_t *flen)
{
	char host[256];
	struct stat st;
	size_t m;
	long pid;
	int fd;

	if ((*flen = claim_parse(name, host, sizeof host, &pid)) < 0)
		return CLAIM_NOT;
	m = machine_len(ours);
	if (machine_len(host) != m || memcmp(host, ours, m) != 0)
		return CLAIM_FOREIGN;
	if (strcmp(host, ours) == 0 && pid == (long)getpid())
		return CLAIM_LIVE;
	if ((fd = claim_lock(path)) < 0)
		return errno == EWOULDBLOCK ? CLAIM_LIVE : CLAIM_NOT;
	if (strcmp(host, ours) != 0 || !io_pid_alive((pid_t)pid) ||
	    (fstat(fd, &st) == 0 && time(NULL) - st.st_ctime > CLAIM_STALE))
		return fd;
	close(fd);
	return CLAIM_LIVE;
}
