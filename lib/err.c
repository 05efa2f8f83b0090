/* err: error records, errno classification, the last words of a program. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"

static const char *oom_prog = "bch";

int
err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return -1;
	e->code = code;
	e->status = 0;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof e->msg, fmt, ap);
	va_end(ap);
	return -1;
}

int
err_status(struct err *e, int status)
{
	if (e)
		e->status = status;
	return -1;
}

int
err_temporary(int errnum)
{
	switch (errnum) {
	case ENOSPC:
	case EDQUOT:
	case EIO:
	case EAGAIN:
	case EINTR:
	case ENOMEM:
	case EMFILE:
	case ENFILE:
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ECONNRESET:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EBUSY:
	case EROFS:
	case EPIPE: /* output whose reader went away: the data stays queued */
	case EBADF:
		return 1;
	}
	return 0;
}

int
err_sys(struct err *e, const char *fmt, ...)
{
	int saved = errno;
	va_list ap;
	char what[400];
	const char *hint = "";

	if (!e)
		return -1;
	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (saved == ENOSPC || saved == EDQUOT)
		hint = " — free some space and try again";
	else if (saved == EACCES || saved == EPERM)
		hint = " — check the permissions of BACKCHANNEL_HOME";
	else if (saved == EROFS)
		hint = " — the file system is read-only";
	e->code = err_temporary(saved) ? BCH_TEMP : BCH_PERM;
	e->status = saved == ENOSPC || saved == EDQUOT ? 507 : 0;
	snprintf(e->msg, sizeof e->msg, "%s: %s%s", what, strerror(saved),
	    hint);
	errno = saved;
	return -1;
}

int
err_inotify(struct err *e, const char *fmt, ...)
{
	int saved = errno, fd;
	va_list ap;
	char what[400];
	const char *limit = NULL;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	if (saved == ENOSPC) {
		limit = "fs.inotify.max_user_watches";
	} else if (saved == EMFILE) {
		/* Also the process's own descriptor limit: is one left? */
		if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0) {
			limit = "fs.inotify.max_user_instances";
			close(fd);
		}
	}
	errno = saved;
	if (!limit)
		return err_sys(e, "%s", what);
	err_set(e, BCH_TEMP, "%s: this user's inotify limit is reached — stop "
	    "some watchers, or raise it: sysctl %s", what, limit);
	errno = saved;
	return -1;
}

void
err_exit(const char *prog, const struct err *e)
{
	fflush(stdout);
	fprintf(stderr, "%s: %s\n", prog, e->msg);
	exit(e->code ? e->code : BCH_PERM);
}

void
err_prog(const char *prog)
{
	oom_prog = prog;
}

void
err_oom(void)
{
	static const char tail[] = ": out of memory — try again later\n";

	if (write(2, oom_prog, strlen(oom_prog)) < 0 ||
	    write(2, tail, sizeof tail - 1) < 0)
		_exit(BCH_TEMP);
	_exit(BCH_TEMP);
}
