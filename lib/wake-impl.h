/* wake-impl: what the parts of the wake service share — the copy of
 * sv/bch-notify, files written only when they differ, and the supervisor
 * tools. Private to wake.c (s6, and which supervisor), which defines
 * them, and wake-user.c (systemd --user and launchd). */
#ifndef BCH_WAKE_IMPL_H
#define BCH_WAKE_IMPL_H

#include <limits.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "wake.h"

/* Is there anything at p? A symlink counts, and is not followed. */
int wake_exists(const char *p);

/* Is dir a directory with our marker in it, so ours to change? */
int wake_ours(const char *dir);

/* Delete path and everything in it; never follows a symlink. 0 or -1. */
int wake_rmtree(const char *path);

/* Write path with content p[n] and mode unless it is so already, and
 * then set *changed; with dry, only say so in *changed. 0, or -1 with e
 * filled. */
int wake_put(const char *path, const char *p, size_t n, mode_t mode, int dry,
    int *changed, struct err *e);

/* The variables the service needs, their names in vars[k][0] and their
 * values in vars[k][1]: PATH (with w->bindir on it), HOME and the
 * BACKCHANNEL_ ones; with session, the display and D-Bus ones too, which
 * a user manager has of its own. Their count, at most 7. */
size_t wake_service_env(const struct wake *w, int session,
    char vars[][2][PATH_MAX * 2]);

/* Fill dir with the files of w->svdir that make the service, env/ for
 * s6-envdir (with_env) and the marker; *changed as wake_put sets it. 0,
 * or -1 with e filled. */
int wake_sv_fill(struct wake *w, const char *dir, int with_env, int *changed,
    struct err *e);

/* Run a supervisor tool with its arguments (up to four), what it prints
 * caught in w->said: its exit status, -2 when it is not installed, -1
 * when it could not run. */
int wake_tool(struct wake *w, const char *name, const char *a1, const char *a2,
    const char *a3, const char *a4, struct err *e);

/* What the last tool said, if anything, as one line on stderr after
 * bch-setup's own that says the step failed. */
void wake_said(const struct wake *w);

/* The parts in wake-user.c: systemd --user (launchd 0) or launchd.
 * wake_install and wake_remove (wake.h) say what they promise. */
int wake_user_install(struct wake *w, int launchd, struct err *e);
int wake_user_remove(struct wake *w, int launchd, struct err *e);

#endif
