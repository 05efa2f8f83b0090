/* wake: install or remove the wake service, `bch-watch --urgent-only |
 * bch-notify`, as a user service: under s6 when an s6-svscan runs for
 * the user, else systemd --user, else launchd on macOS. */
#ifndef BCH_WAKE_H
#define BCH_WAKE_H

#include "buf.h"
#include "err.h"

struct wake {
	int dry;            /* say what would be done, do nothing */
	const char *kind;   /* "s6", "systemd", "launchd"; NULL: detect */
	const char *bindir; /* where bch-watch and bch-notify are */
	const char *svdir;  /* the sv/bch-notify to install, or NULL */
	const char *home;   /* $HOME */
	struct buf *out;    /* lines saying what was done, for stdout */
	int warned;         /* a step failed that the user must redo */
	char said[300];     /* the first line the last supervisor tool
	                     * printed: shown only to explain a failure */
};

/* Which supervisor to use: the kind asked for, else s6 when
 * BCH_S6_SCANDIR is set or an s6-svscan of ours runs (its directory in
 * scandir), else launchd on macOS, else systemd. */
const char *wake_detect(const struct wake *w, char *scandir, size_t sz);

/* Install the service and start it; idempotent: nothing is rewritten
 * or restarted when it is already as wanted. 0, or -1 with e filled. A
 * supervisor that would not start it sets w->warned (the files stay). */
int wake_install(struct wake *w, struct err *e);

/* Remove what wake_install installed, under every supervisor where it
 * is found (files that are not ours are left alone). 0 or -1. */
int wake_remove(struct wake *w, struct err *e);

#endif
