/* proc: run a fixed program with an argv array and a bounded wait.
 *
 * Design rationale. posix_spawn with an argv array is the only way a
 * child is started: there is no shell to interpret message text. The
 * wait is bounded so that a hung notifier cannot stall the caller for
 * ever: on Linux a pidfd lets poll() sleep until the child exits or time
 * runs out; elsewhere waitpid(WNOHANG) is retried with short sleeps. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "io.h"
#include "proc.h"

extern char **environ;

int
proc_find(const char *name, char *out, size_t outsz)
{
	const char *path = getenv("PATH"), *p, *colon;
	struct stat st;

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p; p = colon + 1) {
		size_t len;
		colon = strchr(p, ':');
		if (!colon)
			colon = p + strlen(p);
		len = (size_t)(colon - p);
		if (len > 0 && p[0] == '/' &&
		    snprintf(out, outsz, "%.*s/%s", (int)len, p, name) <
		    (int)outsz &&
		    stat(out, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(out, X_OK) == 0)
			return 1;
		if (!*colon)
			break;
	}
	out[0] = 0;
	return 0;
}


/* Wait for pid until timeout_ms after t0. 1 reaped (status set), 0 time
 * ran out, -1 error. */
static int
wait_bounded(pid_t pid, int *status, int timeout_ms,
    const struct timespec *t0)
{
	long left;
	pid_t r;
#ifdef SYS_pidfd_open
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd >= 0) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int rc;
		while ((left = timeout_ms - io_ms_since(t0)) > 0) {
			rc = poll(&pfd, 1, (int)left);
			if (rc > 0 || (rc < 0 && errno != EINTR))
				break;
		}
		close(fd);
	}
#endif
	for (;;) {
		struct timespec nap = { 0, 2 * 1000 * 1000 };
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
		if ((left = timeout_ms - io_ms_since(t0)) <= 0)
			return 0;
		if (left < 2)
			nap.tv_nsec = left * 1000 * 1000;
		nanosleep(&nap, NULL);
	}
}

/* Start path; its standard output and error go to outfd, or with outfd
 * -1 its standard output onto our standard error. */
static int
spawn(pid_t *pid, const char *path, char *const argv[], int outfd,
    struct err *e)
{
	static const int sigs[] = { SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGALRM,
		SIGIO, SIGCHLD, SIGUSR1, SIGUSR2, SIGQUIT };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t def, none;
	size_t i;
	int rc;

	sigemptyset(&def);
	sigemptyset(&none);
	for (i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		sigaddset(&def, sigs[i]);
	if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
		errno = rc;
		return err_sys(e, "cannot run %s", path);
	}
	if ((rc = posix_spawnattr_init(&at)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		errno = rc;
		return err_sys(e, "cannot run %s", path);
	}
	if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
	    O_RDONLY, 0)) == 0 &&
	    (rc = outfd < 0 ? posix_spawn_file_actions_adddup2(&fa, 2, 1) :
	    posix_spawn_file_actions_adddup2(&fa, outfd, 1)) == 0 &&
	    (rc = outfd < 0 ? 0 :
	    posix_spawn_file_actions_adddup2(&fa, outfd, 2)) == 0 &&
	    (rc = posix_spawnattr_setsigdefault(&at, &def)) == 0 &&
	    (rc = posix_spawnattr_setsigmask(&at, &none)) == 0 &&
	    (rc = posix_spawnattr_setflags(&at,
	    POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK)) == 0)
		rc = posix_spawn(pid, path, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc != 0) {
		errno = rc;
		return err_sys(e, "cannot run %s", path);
	}
	return 0;
}

static int
run(const char *path, char *const argv[], int outfd, int timeout_ms,
    struct err *e)
{
	struct timespec t0;
	pid_t pid;
	int status = 0, rc;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (spawn(&pid, path, argv, outfd, e) < 0)
		return -1;
	rc = wait_bounded(pid, &status, timeout_ms, &t0);
	if (rc == 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		return err_set(e, BCH_TEMP, "%s took longer than %d ms — killed "
		    "it", path, timeout_ms);
	}
	if (rc < 0)
		return err_sys(e, "cannot wait for %s", path);
	if (WIFSIGNALED(status))
		return err_set(e, BCH_TEMP, "%s was killed by signal %d", path,
		    WTERMSIG(status));
	return WEXITSTATUS(status);
}

int
proc_run(const char *path, char *const argv[], int timeout_ms,
    struct err *e)
{
	return run(path, argv, -1, timeout_ms, e);
}

int
proc_run_caught(const char *path, char *const argv[], int timeout_ms,
    char *out, size_t outsz, struct err *e)
{
	const char *tmp = getenv("TMPDIR");
	char tmpl[PATH_MAX];
	ssize_t n;
	int fd, rc;

	out[0] = 0;
	snprintf(tmpl, sizeof tmpl, "%s/bch-proc.XXXXXX",
	    tmp && *tmp == '/' ? tmp : "/tmp");
	/* With nowhere to catch it, the tool still runs, heard as
	 * proc_run's are: a step skipped would be worse than noise. */
	if ((fd = mkostemp(tmpl, O_CLOEXEC)) < 0)
		return run(path, argv, -1, timeout_ms, e);
	if (unlink(tmpl) < 0) {
		close(fd);
		return run(path, argv, -1, timeout_ms, e);
	}
	rc = run(path, argv, fd, timeout_ms, e);
	while ((n = pread(fd, out, outsz - 1, 0)) < 0 && errno == EINTR)
		;
	out[n > 0 ? n : 0] = 0;
	out[strcspn(out, "\r\n")] = 0;
	close(fd);
	return rc;
}

void
proc_catch(const char *prog, int sig, void (*fn)(int))
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = 0; /* no SA_RESTART: let the signal end the wait */
	if (sigaction(sig, &sa, NULL) < 0) {
		fprintf(stderr, "%s: cannot catch signal %d: %s — report "
		    "this\n", prog, sig, strerror(errno));
		exit(BCH_TEMP);
	}
}
