/* install: where this installation's programs and files are, so that
 * what setup writes names them by absolute path. */
#ifndef BCH_INSTALL_H
#define BCH_INSTALL_H

#include <stddef.h>

/* The directory of the running program: /proc/self/exe, else argv0
 * (made absolute, or looked up on PATH). 0, or -1 when unknown. */
int install_bindir(const char *argv0, char *out, size_t outsz);

/* A program of ours: beside us in bindir (NULL: skip), else on PATH.
 * 1 found (absolute path in out), 0 not found. */
int install_prog(const char *bindir, const char *name, char *out,
    size_t outsz);

/* A file or directory shipped with us (rel: "SKILL.md", "sv/bch-notify"):
 * bindir/../rel (a checkout), bindir/../share/backchannel/rel, then
 * bindir/../share/doc/backchannel/rel (make install). 1 found (canonical
 * path in out), 0 not found. */
int install_data(const char *bindir, const char *rel, char *out,
    size_t outsz);

#endif
