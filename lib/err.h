/* err: one error record that travels up from the library to main(). */
#ifndef BCH_ERR_H
#define BCH_ERR_H

/* Exit statuses, as qmail uses them: can trying again help? */
#define BCH_OK 0
#define BCH_USAGE 2
#define BCH_PERM 100 /* bad input, unknown agent, refused: do not retry */
#define BCH_TEMP 111 /* disk full, relay down, lock busy: retry later */

struct err {
	int code;      /* BCH_PERM or BCH_TEMP */
	int status;    /* the HTTP status a relay answers with, or 0 */
	char msg[600]; /* one line: what went wrong — what to do */
};

/* Fill e (if not NULL) with code and a formatted message; returns -1. */
int err_set(struct err *e, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Set e->status (if e) and return -1: for errors a relay passes on. */
int err_status(struct err *e, int status);

/* Like err_set, classifying errno: ENOSPC, EIO, EAGAIN... are temporary. */
int err_sys(struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* err_sys for a failed inotify call: there ENOSPC and EMFILE mean a
 * per-user inotify limit (not a full disk, not descriptors), which the
 * message names with the sysctl that raises it. */
int err_inotify(struct err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* 1 if errno describes a condition that may clear by itself. */
int err_temporary(int errnum);

/* Print "prog: msg" on stderr and exit with e->code. */
void err_exit(const char *prog, const struct err *e) __attribute__((noreturn));

/* Print "prog: out of memory" and exit 111. */
void err_oom(void) __attribute__((noreturn));

/* Set the program name err_oom() prints; main() calls this once. */
void err_prog(const char *prog);

#endif
