/* doctor-claims: bch-doctor's look at claims in cur/ made under another
 * host name than this machine's — counted per host, and with --release
 * HOST those of HOST returned to new/.
 *
 * Design rationale. A reader returns only its own machine's dead claims
 * (claim.h): another machine's process cannot be seen from here, and its
 * claimer lock cannot be trusted across machines (NFS mounted nolock, a
 * local disk exported to them). So claims left under a host name that no
 * longer exists — a laptop renamed, a container rebuilt under a new name —
 * stay in cur/ for good. Nothing here can tell a renamed machine from a
 * live one sharing the spool; the user can. So doctor names each host
 * that holds claims, fails once its oldest is past CLAIM_STALE (longer
 * than any reader or lease holds one), and --release returns that host's
 * claims, all but those whose claimer lock is held: a reader alive on this
 * kernel (a container sharing the spool) keeps its own. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "claim.h"
#include "doctor.h"

#define PIDNS "-pidns-" /* as claim_host() writes it */

struct fhost {
	char name[128];     /* the machine part of the claims' host */
	size_t n, agent_n;  /* claims in all, and in the agent being scanned */
	size_t dead, live, returned; /* claimer lock free; held; --release */
	time_t oldest;
	struct buf by;      /* "bob 2, carol 1" */
	int fix_failed;
	char fix_err[300];
};

int
doctor_unclaim(const char *src, const char *dst)
{
	if (renameat2(AT_FDCWD, src, AT_FDCWD, dst, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno == EEXIST)
		return unlink(src); /* it is back in new/ already */
	if (errno == ENOENT)
		return 0; /* a reader returned it meanwhile */
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (link(src, dst) < 0 && errno != EEXIST)
		return -1;
	return unlink(src);
}

int
doctor_host_valid(const char *h)
{
	size_t i;

	for (i = 0; h[i]; i++)
		if (!((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' &&
		    h[i] <= 'Z') || (h[i] >= '0' && h[i] <= '9') ||
		    h[i] == '-' || h[i] == '_'))
			return 0;
	return i > 0 && i < sizeof ((struct fhost *)0)->name &&
	    !strstr(h, PIDNS);
}

/* The entry of the host whose machine part is name (len bytes). */
static struct fhost *
fhost_of(struct doc *d, const char *name, size_t len)
{
	struct fhost *h;
	size_t i;

	if (len >= sizeof h->name)
		len = sizeof h->name - 1;
	for (i = 0; i < d->nfh; i++)
		if (strlen(d->fh[i].name) == len &&
		    memcmp(d->fh[i].name, name, len) == 0)
			return &d->fh[i];
	d->fh = xrealloc(d->fh, (d->nfh + 1) * sizeof *d->fh);
	h = &d->fh[d->nfh++];
	memset(h, 0, sizeof *h);
	memcpy(h->name, name, len);
	return h;
}

/* The claimer lock file at path: -1 none, 1 held by a process (as this
 * kernel sees it), 0 free: its claimer died. */
static int
lock_state(const char *path)
{
	int fd, held;

	if ((fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC)) < 0)
		return -1;
	held = flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK;
	close(fd); /* closing releases it */
	return held;
}

void
doctor_foreign_claim(struct doc *d, const char *agent, const char *path,
    const char *name)
{
	char host[256], lock[P], dst[P];
	const char *ns;
	struct fhost *h;
	struct stat st;
	ssize_t flen;
	long pid;
	int lk;

	if ((flen = claim_parse(name, host, sizeof host, &pid)) < 0)
		return;
	ns = strstr(host, PIDNS);
	h = fhost_of(d, host, ns ? (size_t)(ns - host) : strlen(host));
	h->n++;
	h->agent_n++;
	if (lstat(path, &st) == 0 && (!h->oldest || st.st_ctime < h->oldest))
		h->oldest = st.st_ctime;
	snprintf(lock, sizeof lock, "%s/claimers/%s.%ld", d->cfg.home, host,
	    pid);
	lk = lock_state(lock);
	h->dead += lk == 0;
	if (!d->release || strcmp(h->name, d->release) != 0)
		return;
	if (lk == 1) {
		h->live++;
		return;
	}
	snprintf(dst, sizeof dst, "%s/spool/%s/new/%.*s", d->cfg.home, agent,
	    (int)flen, name);
	if (doctor_unclaim(path, dst) == 0) {
		h->returned++;
	} else if (!h->fix_failed) {
		h->fix_failed = 1;
		snprintf(h->fix_err, sizeof h->fix_err, "cannot return %s: %s",
		    name, strerror(errno));
	}
}

void
doctor_foreign_agent_done(struct doc *d, const char *agent)
{
	size_t i;

	for (i = 0; i < d->nfh; i++) {
		if (!d->fh[i].agent_n)
			continue;
		buf_printf(&d->fh[i].by, "%s%s %zu", d->fh[i].by.len ? ", " :
		    "", agent, d->fh[i].agent_n);
		d->fh[i].agent_n = 0;
	}
}

/* The host named by --release: what was returned, and its claimer lock
 * files removed once nothing of it is left in cur/. */
static void
report_released(struct doc *d, struct fhost *h, const char *what,
    const char *fix)
{
	char dir[P];

	if (h->fix_failed) {
		add(d, FAIL, what, fix, "returned %zu of %zu; %s", h->returned,
		    h->n, h->fix_err);
		return;
	}
	if (h->live)
		add(d, WARN, what, NULL, "returned %zu message(s) to new/ (%s); "
		    "%zu held by a reader that is alive, left to it",
		    h->returned, h->by.p, h->live);
	else
		add(d, OK, what, NULL, "returned %zu message(s) to new/ (%s)",
		    h->returned, h->by.p);
	snprintf(dir, sizeof dir, "%s/claimers", d->cfg.home);
	if (!h->live)
		claim_sweep(dir, h->name, 1);
}

static int
cmp_host(const void *a, const void *b)
{
	return strcmp(((const struct fhost *)a)->name,
	    ((const struct fhost *)b)->name);
}

void
doctor_report_foreign(struct doc *d)
{
	char what[200], fix[200], old[40], when[80];
	const char *ns = strstr(d->host, PIDNS);
	int me = ns ? (int)(ns - d->host) : (int)strlen(d->host);
	int released = 0;
	size_t i;

	if (d->nfh)
		qsort(d->fh, d->nfh, sizeof *d->fh, cmp_host);
	for (i = 0; i < d->nfh; i++) {
		struct fhost *h = &d->fh[i];
		long secs = (long)(time(NULL) - h->oldest);
		snprintf(what, sizeof what, "claims of host %s", h->name);
		snprintf(fix, sizeof fix, "bch doctor --release %s", h->name);
		doctor_age(secs, old, sizeof old);
		if (d->release && strcmp(h->name, d->release) == 0) {
			released = 1;
			report_released(d, h, what, fix);
		} else if (secs > CLAIM_STALE || h->dead) {
			if (h->dead)
				snprintf(when, sizeof when, "that died");
			else
				snprintf(when, sizeof when, "the oldest %s ago", old);
			add(d, FAIL, what, fix, "%zu message(s) (%s) claimed by a "
			    "reader on %s, not this machine (%.*s), %s: never "
			    "returned from here — if %s is this machine's old "
			    "name, or gone, release them", h->n, h->by.p,
			    h->name, me, d->host, when, h->name);
		} else {
			add(d, WARN, what, NULL, "%zu message(s) (%s) being read "
			    "on another machine sharing this spool, the oldest "
			    "claimed %s ago: not returned from here (should %s "
			    "be gone, bch doctor --release %s returns them)",
			    h->n, h->by.p, old, h->name, h->name);
		}
		buf_free(&h->by);
	}
	if (d->release && !released) {
		snprintf(what, sizeof what, "claims of host %s", d->release);
		add(d, OK, what, NULL, "none to release");
	}
	free(d->fh);
	d->fh = NULL;
	d->nfh = 0;
}
