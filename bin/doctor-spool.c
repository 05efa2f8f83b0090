/* doctor-spool: bch-doctor's look at the files of the local spool —
 * agents/, each inbox, tokens/ — read directly, changing nothing but,
 * with --fix, the claims of dead readers (returned to new/). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "buf.h"
#include "claim.h"
#include "doctor.h"
#include "io.h"
#include "msg.h"

#define MAX_LINES 40    /* problem lines of one kind before a summary */

struct tally {
	size_t problems; /* lines said about directories */
	size_t boxes;
	size_t stale, returned, live;
	struct buf stale_by; /* "bob 1, carol 2" */
	int fix_failed;
	char fix_err[300];
};

void
doctor_age(long s, char *out, size_t outsz)
{
	if (s < 120)
		snprintf(out, outsz, "%ld s", s < 0 ? 0 : s);
	else if (s < 7200)
		snprintf(out, outsz, "%ld min", s / 60);
	else if (s < 172800)
		snprintf(out, outsz, "%ld h", s / 3600);
	else
		snprintf(out, outsz, "%ld days", s / 86400);
}

/* A directory of the spool: there, a directory, ours, 0700. */
static int
check_dir(struct doc *d, struct tally *t, const char *path, int need,
    const char *init)
{
	char what[P + 16], fix[2 * P + 64], qp[P];
	const char *rel = path + strlen(d->cfg.home) + 1;
	struct stat st;

	snprintf(what, sizeof what, "spool %s", rel);
	if (lstat(path, &st) < 0) {
		if (errno == ENOENT && !need)
			return 0;
		t->problems++;
		add(d, FAIL, what, init, "%s", errno == ENOENT ? "missing" :
		    strerror(errno));
		return 0;
	}
	if (!S_ISDIR(st.st_mode)) {
		t->problems++;
		q(path, qp, sizeof qp);
		snprintf(fix, sizeof fix, "rm %s && mkdir -m 700 %s", qp, qp);
		add(d, FAIL, what, fix, "%s — programs refuse to use it",
		    S_ISLNK(st.st_mode) ? "a symlink, not a directory" :
		    "not a directory");
		return 0;
	}
	if (!owner_mode(d, what, path, &st, 0700))
		t->problems++;
	return 1;
}

/* A symlink in the spool: a failure, said for the first MAX_LINES. */
static void
say_symlink(struct doc *d, struct tally *t, const char *path)
{
	char what[P + 16], qp[P], fix[P + 8];

	if (++t->problems > MAX_LINES)
		return;
	snprintf(what, sizeof what, "spool %s", path + strlen(d->cfg.home) + 1);
	snprintf(fix, sizeof fix, "rm %s", q(path, qp, sizeof qp));
	add(d, FAIL, what, fix, "a symlink — a spool holds only plain files; "
	    "nothing reads it");
}

/* A claim in agent's cur/ (path, named name) counted as another host's,
 * live or stale; a stale one, with --fix, put back in new/. 1 if stale. */
static int
check_claim(struct doc *d, struct tally *t, const char *agent,
    const char *path, const char *name)
{
	char dst[P], locks[P];
	ssize_t flen;

	snprintf(locks, sizeof locks, "%s/claimers", d->cfg.home);
	switch (claim_judge(path, name, d->host, locks, &flen)) {
	case CLAIM_NOT:
		return 0;
	case CLAIM_FOREIGN:
		doctor_foreign_claim(d, agent, path, name);
		return 0;
	case CLAIM_LIVE:
		t->live++;
		return 0;
	}
	if (d->fix) {
		snprintf(dst, sizeof dst, "%s/spool/%s/new/%.*s", d->cfg.home,
		    agent, (int)flen, name);
		if (doctor_unclaim(path, dst) == 0) {
			t->returned++;
		} else if (!t->fix_failed) {
			t->fix_failed = 1;
			snprintf(t->fix_err, sizeof t->fix_err,
			    "cannot return %s: %s", name, strerror(errno));
		}
	}
	return 1;
}

/* Entries of one of new/, cur/, tmp/, corrupt/: counted, symlinks and
 * (in cur/) claims looked at. Returns the number of plain entries. */
static size_t
scan_box(struct doc *d, struct tally *t, const char *agent,
    const char *dir, const char *sub, time_t *oldest)
{
	char path[P];
	struct dirent *de;
	size_t n = 0, stale = 0;
	struct stat st;
	DIR *dd;

	if (!(dd = opendir(dir)))
		return 0;
	while ((de = readdir(dd))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (de->d_type == DT_LNK || (de->d_type == DT_UNKNOWN &&
		    lstat(path, &st) == 0 && S_ISLNK(st.st_mode))) {
			say_symlink(d, t, path);
			continue;
		}
		n++;
		if (oldest && fstatat(dirfd(dd), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 && (!*oldest ||
		    st.st_mtime < *oldest))
			*oldest = st.st_mtime;
		if (strcmp(sub, "cur") == 0)
			stale += check_claim(d, t, agent, path, de->d_name);
	}
	closedir(dd);
	if (strcmp(sub, "cur") == 0)
		doctor_foreign_agent_done(d, agent);
	if (stale) {
		buf_printf(&t->stale_by, "%s%s %zu", t->stale ? ", " : "",
		    agent, stale);
		t->stale += stale;
	}
	return n;
}

/* How full agent's inbox is: unread messages in new/, the oldest of
 * them from oldest. Without a record nobody can send there at all. */
static void
report_queue(struct doc *d, const char *agent, int has_rec, size_t unread,
    time_t oldest)
{
	char what[200], fix[P + 64], old[40];

	snprintf(what, sizeof what, "queue %s", agent);
	if (!has_rec) {
		add(d, WARN, what, NULL, "%zu unread, but no record "
		    "agents/%s.json: nobody can send here", unread, agent);
		return;
	}
	old[0] = 0;
	if (unread)
		doctor_age((long)(time(NULL) - oldest), old, sizeof old);
	snprintf(fix, sizeof fix, "BACKCHANNEL_AGENT=%s bch drain", agent);
	if (unread >= d->cfg.max_inbox)
		add(d, FAIL, what, fix, "%zu unread: full, sends to it are "
		    "refused", unread);
	else if (unread * 10 >= d->cfg.max_inbox * 9)
		add(d, WARN, what, NULL, "%zu unread, near the limit of %zu",
		    unread, d->cfg.max_inbox);
	else if (unread)
		add(d, OK, what, NULL, "%zu unread, the oldest %s old", unread,
		    old);
	else
		add(d, OK, what, NULL, "empty");
}

static void
check_box(struct doc *d, struct tally *t, const char *agent, int has_rec)
{
	/* cur/ before new/: claims returned by --fix are counted as unread. */
	static const char *const subs[] = { "tmp", "cur", "new", "corrupt" };
	char dir[P], what[200], init[200], fix[P + 64], qp[P], old[40];
	time_t oldest = 0, tmp_oldest = 0;
	size_t k, unread = 0, n;
	int counted = 0;

	init_cmd(d, agent, init, sizeof init);
	snprintf(dir, sizeof dir, "%s/spool/%s", d->cfg.home, agent);
	if (!check_dir(d, t, dir, has_rec, init))
		return;
	t->boxes++;
	for (k = 0; k < 4; k++) {
		snprintf(dir, sizeof dir, "%s/spool/%s/%s", d->cfg.home, agent,
		    subs[k]);
		if (!check_dir(d, t, dir, k < 3, init))
			continue;
		n = scan_box(d, t, agent, dir, subs[k], k == 2 ? &oldest :
		    k == 0 ? &tmp_oldest : NULL);
		if (k == 2) {
			unread = n;
			counted = 1;
		}
		if (k == 0 && n && time(NULL) - tmp_oldest > 3600) {
			doctor_age((long)(time(NULL) - tmp_oldest), old, sizeof old);
			snprintf(what, sizeof what, "spool %s/tmp", agent);
			add(d, WARN, what, NULL, "%zu file(s) left by a sender "
			    "that died mid-write, the oldest %s old (safe to "
			    "delete)", n, old);
		}
		if (k == 3 && n) {
			snprintf(what, sizeof what, "corrupt %s", agent);
			snprintf(fix, sizeof fix, "rm -r %s  # after a look at "
			    "what is in it", q(dir, qp, sizeof qp));
			add(d, FAIL, what, fix, "%zu file(s) set aside in "
			    "spool/%s/corrupt/ — unreadable as messages", n,
			    agent);
		}
	}
	if (!counted)
		return; /* new/ is unusable, as said above: no count to tell */
	report_queue(d, agent, has_rec, unread, oldest);
}

/* Names of agents/<name>.json. One whose name is not an agent name is
 * said and left out, as the spool leaves it out. */
static char **
records(struct doc *d, struct tally *t, size_t *n)
{
	char dir[P], path[P], what[P], fix[P + 8], qp[P], *name;
	struct dirent *de;
	char **v = NULL;
	DIR *dd;

	*n = 0;
	snprintf(dir, sizeof dir, "%s/agents", d->cfg.home);
	if (!(dd = opendir(dir)))
		return NULL;
	while ((de = readdir(dd))) {
		size_t len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len < 6 ||
		    strcmp(de->d_name + len - 5, ".json") != 0)
			continue;
		snprintf(what, sizeof what, "spool agents/%s", de->d_name);
		name = xstrndup(de->d_name, len - 5);
		if (!name_valid(name)) {
			add(d, WARN, what, NULL, "not an agent name — ignored");
			free(name);
			continue;
		}
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (de->d_type == DT_LNK) {
			t->problems++;
			snprintf(fix, sizeof fix, "rm %s", q(path, qp, sizeof qp));
			add(d, FAIL, what, fix, "a symlink — records are read "
			    "only as plain files");
			free(name);
			continue;
		}
		v = xrealloc(v, (*n + 2) * sizeof *v);
		v[(*n)++] = name;
		v[*n] = NULL;
	}
	closedir(dd);
	return v;
}

/* agents/<name>.json reads as the record of name: valid, and naming
 * name. The spool ignores any other (lib/spool-fs-agents.c), so that
 * agent is left out of listings, channel sends and a relay's tokens. */
static void
check_record(struct doc *d, struct tally *t, const char *name)
{
	char path[P], what[P], init[200];
	struct buf b = BUF_INIT;
	struct agent_rec a;
	struct err e;

	snprintf(path, sizeof path, "%s/agents/%s.json", d->cfg.home, name);
	snprintf(what, sizeof what, "spool agents/%s.json", name);
	init_cmd(d, name, init, sizeof init);
	if (io_readfile(AT_FDCWD, path, 256 * 1024, &b) < 0) {
		if (errno != ENOENT && ++t->problems <= MAX_LINES)
			add(d, FAIL, what, init, "cannot read it: %s",
			    strerror(errno));
	} else if (agent_decode(b.p, b.len, &a, &e) < 0) {
		if (++t->problems <= MAX_LINES)
			add(d, FAIL, what, init, "corrupt: %s — ignored, so %s "
			    "gets no channel messages", e.msg, name);
	} else {
		if (strcmp(a.name, name) != 0 && ++t->problems <= MAX_LINES)
			add(d, FAIL, what, init, "names \"%s\", not \"%s\" — "
			    "ignored, so %s is not listed, gets no channel "
			    "messages and no relay token works for it", a.name,
			    name, name);
		agent_free(&a);
	}
	buf_free(&b);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
has(char **v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

/* tokens/ holds personal tokens: 0700, each file 0600. */
static void
check_tokens(struct doc *d, struct tally *t)
{
	char dir[P], path[P], what[P];
	struct dirent *de;
	struct stat st;
	DIR *dd;

	snprintf(dir, sizeof dir, "%s/tokens", d->cfg.home);
	if (!check_dir(d, t, dir, 0, "bch init <name>") || !(dd = opendir(dir)))
		return;
	while ((de = readdir(dd))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		snprintf(what, sizeof what, "token tokens/%s", de->d_name);
		if (lstat(path, &st) == 0 && !owner_mode(d, what, path, &st,
		    0600))
			t->problems++;
	}
	closedir(dd);
}

/* The names under spool/ that can be inboxes; any other is said. */
static char **
spool_names(struct doc *d, struct tally *t, int local, const char *init,
    size_t *n)
{
	char dir[P], what[P];
	struct dirent *de;
	char **v = NULL;
	DIR *dd;

	*n = 0;
	snprintf(dir, sizeof dir, "%s/spool", d->cfg.home);
	if (!check_dir(d, t, dir, local, init) || !(dd = opendir(dir)))
		return NULL;
	while ((de = readdir(dd))) {
		if (de->d_name[0] == '.')
			continue;
		if (!name_valid(de->d_name)) {
			snprintf(what, sizeof what, "spool spool/%s", de->d_name);
			add(d, WARN, what, NULL, "not an agent name — ignored");
			continue;
		}
		v = xrealloc(v, (*n + 1) * sizeof *v);
		v[(*n)++] = xstrdup(de->d_name);
	}
	closedir(dd);
	return v;
}

/* The spool as a whole, and its claims, as the tally found them. */
static void
report_tally(struct doc *d, const struct tally *t)
{
	if (t->problems > MAX_LINES)
		add(d, FAIL, "spool", NULL, "%zu problems in all; the first %d "
		    "are above", t->problems, MAX_LINES);
	if (!t->problems)
		add(d, OK, "spool directories", NULL, "%zu inbox(es), all "
		    "0700, yours, no symlinks", t->boxes);
	if (t->fix_failed)
		add(d, FAIL, "stale claims", "bch doctor --fix", "returned %zu "
		    "of %zu; %s", t->returned, t->stale, t->fix_err);
	else if (t->stale && d->fix)
		add(d, OK, "stale claims", NULL, "returned %zu message(s) to "
		    "new/ (%s)", t->returned, t->stale_by.p);
	else if (t->stale)
		add(d, FAIL, "stale claims", "bch doctor --fix", "%zu claimed "
		    "message(s) whose reader died (%s) — the next drain returns "
		    "them too", t->stale, t->stale_by.p);
	else
		add(d, OK, "stale claims", NULL, "none%s", t->live ?
		    "; a reader is at work" : "");
	doctor_report_foreign(d);
}

/* The lock files of readers that died (claim.h), removed by --fix once
 * their claims are back in new/. */
static void
report_locks(struct doc *d, const struct tally *t)
{
	char dir[P];
	size_t n;
	int fix = d->fix && !t->fix_failed;

	snprintf(dir, sizeof dir, "%s/claimers", d->cfg.home);
	if (!(n = claim_sweep(dir, d->host, fix)))
		return;
	if (fix)
		add(d, OK, "claimer locks", NULL, "removed %zu left by readers "
		    "that died", n);
	else
		add(d, WARN, "claimer locks", "bch doctor --fix", "%zu left by "
		    "readers that died (empty files in %s)", n, dir);
}

void
check_spool(struct doc *d)
{
	char dir[P], init[200];
	struct tally t;
	char **recs, **boxes;
	size_t nrec, nbox, i;
	int local = !d->cfg.url;

	memset(&t, 0, sizeof t);
	init_cmd(d, d->cfg.agent, init, sizeof init);
	snprintf(dir, sizeof dir, "%s/spool", d->cfg.home);
	if (!local && access(dir, F_OK) < 0) {
		add(d, OK, "spool", NULL, "none here: messages wait on the relay");
		check_tokens(d, &t);
		return;
	}
	snprintf(dir, sizeof dir, "%s/agents", d->cfg.home);
	check_dir(d, &t, dir, local, init);
	recs = records(d, &t, &nrec);
	boxes = spool_names(d, &t, local, init, &nbox);
	for (i = 0; i < nrec; i++)
		if (!has(boxes, nbox, recs[i])) {
			boxes = xrealloc(boxes, (nbox + 1) * sizeof *boxes);
			boxes[nbox++] = xstrdup(recs[i]);
		}
	if (nbox)
		qsort(boxes, nbox, sizeof *boxes, cmp_str);
	for (i = 0; i < nrec; i++) /* the identity's: said with it */
		if (d->cfg.url || strcmp(recs[i], d->cfg.agent) != 0)
			check_record(d, &t, recs[i]);
	for (i = 0; i < nbox; i++)
		check_box(d, &t, boxes[i], has(recs, nrec, boxes[i]));
	check_tokens(d, &t);
	report_tally(d, &t);
	report_locks(d, &t);
	buf_free(&t.stale_by);
	for (i = 0; i < nrec; i++)
		free(recs[i]);
	for (i = 0; i < nbox; i++)
		free(boxes[i]);
	free(recs);
	free(boxes);
}
