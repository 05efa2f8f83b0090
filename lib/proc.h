/* proc: finding a program on PATH and running it with an argv array,
 * never through a shell, and never leaving a zombie behind; catching a
 * signal. */
#ifndef BCH_PROC_H
#define BCH_PROC_H

#include <stddef.h>

#include "err.h"

/* Look name up in the directories of PATH (absolute entries only: an
 * empty or relative entry would make the current directory choose the
 * program). 1 found (full path in out), 0 not found. */
int proc_find(const char *name, char *out, size_t outsz);

/* Run path with argv (argv[0] first, NULL last) and the caller's
 * environment: standard input from /dev/null, standard output onto our
 * standard error (so a child never writes into our data stream), signal
 * dispositions and mask reset. Wait at most timeout_ms for it, then kill
 * it (SIGKILL) and reap it. Returns its exit status (0-255), or -1 with
 * e filled (could not start, killed by a signal, or took too long). */
int proc_run(const char *path, char *const argv[], int timeout_ms,
    struct err *e);

/* As proc_run, but what the child writes to its standard output and
 * error is caught (in an unlinked file under $TMPDIR), never shown: the
 * first line of it in out, "" when it wrote nothing. With no file to
 * catch it in, the program runs as under proc_run. */
int proc_run_caught(const char *path, char *const argv[], int timeout_ms,
    char *out, size_t outsz, struct err *e);

/* Call fn on sig, without SA_RESTART: the signal ends a wait (poll(),
 * read()). Should that fail, "prog: cannot catch signal N: ..." and exit
 * BCH_TEMP. */
void proc_catch(const char *prog, int sig, void (*fn)(int));

#endif
