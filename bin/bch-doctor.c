/* bch-doctor: check the whole chain a message travels — identity, spool,
 * relay, harnesses, wake service — and say for each failure the command
 * that fixes it (bch doctor).
 *
 * Design rationale. A doctor that changes what it examines hides the
 * problem it was asked about, so the spool is read here directly rather
 * than through spool_list(), which returns dead claims and sets corrupt
 * files aside as it goes: nothing is changed unless --fix is given, and
 * --fix does one thing only, the one a reader would do anyway (return
 * the claims of dead processes to new/). Every program is run with an
 * argv array through proc_run(), bounded in time; its output, which
 * proc_run() sends to our standard error, is caught in a temporary file
 * for the report. The relay is asked for /v1/health on a connection of
 * our own, because the Date header (clock skew) and the TLS verdict are
 * needed apart from any answer; the token is then tried through the
 * spool interface, exactly as every other program would use it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "config.h"
#include "http.h"
#include "install.h"
#include "io.h"
#include "json.h"
#include "proc.h"
#include "show.h"
#include "spool.h"
#include "tls.h"
#include "wake.h"

static const char usage[] = "bch-doctor [--json] [--fix]";

#define P 4400          /* room for home (PATH_MAX) plus our components */
#define RUN_MS 10000    /* how long a program we try may take */
#define NET_MS 5000     /* connect and answer timeout for the relay */
#define SKEW_MAX 60     /* seconds of clock skew before a warning */
#define MAX_LINES 40    /* problem lines of one kind before a summary */
#define LABEL "org.backchannel.notify"

enum { OK, WARN, FAIL };
static const char *const words[] = { "ok", "warn", "FAIL" };

struct check {
	int st;
	char *what, *detail, *fix;
};

struct ran { /* a program already tried: tried once, reported alike */
	char path[PATH_MAX];
	int rc;
	char out[300];
};

struct doc {
	struct config cfg;
	int json, fix;
	struct check *c;
	size_t n;
	int failed;
	char host[64];  /* gethostname() as claim names carry it */
	char user[64];  /* for chown fixes */
	char id_fix[600]; /* what fixes the identity, when it is broken */
	struct ran ran[8];
	size_t nran;
};

/* --- the report ----------------------------------------------------------- */

static char *
clean(const char *s)
{
	struct buf b = BUF_INIT;

	show_text(&b, s, 0);
	buf_add(&b, "", 0);
	return b.p;
}

static void
put_line(const struct check *k)
{
	printf("%-4s  %s%s%s\n", words[k->st], k->what, k->detail ? ": " : "",
	    k->detail ? k->detail : "");
	if (k->fix)
		printf("      fix: %s\n", k->fix);
	if (fflush(stdout) != 0) { /* nobody reads: no point going on */
		fprintf(stderr, "bch-doctor: cannot write to standard output: "
		    "%s\n", strerror(errno));
		exit(BCH_TEMP);
	}
}

/* One check: what was checked, how it went, why (fmt, may be NULL), and
 * for a failure the command that fixes it. */
static void add(struct doc *d, int st, const char *what, const char *fix,
    const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
add(struct doc *d, int st, const char *what, const char *fix,
    const char *fmt, ...)
{
	struct check *k;
	char line[1600];
	va_list ap;

	d->c = xrealloc(d->c, (d->n + 1) * sizeof *d->c);
	k = &d->c[d->n++];
	k->st = st;
	k->what = clean(what);
	k->detail = k->fix = NULL;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(line, sizeof line, fmt, ap);
		va_end(ap);
		k->detail = clean(line);
	}
	if (st == FAIL) {
		d->failed = 1;
		k->fix = clean(fix ? fix : "see the line above");
	}
	if (!d->json)
		put_line(k);
}

static void
put_json(struct doc *d, struct buf *b)
{
	static const char *const keys[] = { "check", "detail", "fix" };
	size_t i, k;

	buf_printf(b, "{\"ok\":%s,\"checks\":[", d->failed ? "false" : "true");
	for (i = 0; i < d->n; i++) {
		const char *v[3] = { d->c[i].what, d->c[i].detail, d->c[i].fix };
		buf_printf(b, "%s\n{\"status\":\"%s\"", i ? "," : "",
		    words[d->c[i].st]);
		for (k = 0; k < 3; k++) {
			if (!v[k])
				continue;
			buf_printf(b, ",\"%s\":", keys[k]);
			json_put_string(b, v[k], strlen(v[k]));
		}
		buf_addc(b, '}');
	}
	buf_adds(b, "\n]}\n");
}

/* --- small helpers ---------------------------------------------------------- */

/* s quoted for sh when it needs it, into out. */
static const char *
q(const char *s, char *out, size_t outsz)
{
	size_t w = 0;

	if (*s && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
	    "vwxyz0123456789/._-+@%:,=") == strlen(s)) {
		snprintf(out, outsz, "%s", s);
		return out;
	}
	out[w++] = '\'';
	for (; *s && w + 6 < outsz; s++) {
		if (*s == '\'') {
			memcpy(out + w, "'\\''", 4);
			w += 4;
		} else {
			out[w++] = *s;
		}
	}
	out[w++] = '\'';
	out[w] = 0;
	return out;
}

/* "bch init NAME", with BACKCHANNEL_AGENT= when it is not the default. */
static void
init_cmd(struct doc *d, const char *name, char *out, size_t outsz)
{
	const char *n = name && *name ? name : "<name>";

	if (name && *name && d->cfg.file_agent[0] &&
	    strcmp(name, d->cfg.file_agent) != 0)
		snprintf(out, outsz, "BACKCHANNEL_AGENT=%s bch init %s", n, n);
	else
		snprintf(out, outsz, "bch init %s", n);
}

static void
age(long s, char *out, size_t outsz)
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

/* Read a file that may be a symlink (dotfiles often are) into b. */
static int
read_any(const char *path, size_t max, struct buf *b)
{
	char real[PATH_MAX];

	if (!realpath(path, real))
		return -1;
	return io_readfile(AT_FDCWD, real, max, b);
}

/* Run path with argv, bounded, its output caught: exit status, or -1
 * with the reason in out. The first line of what it printed is in out. */
static int
run(const char *path, char *const argv[], char *out, size_t outsz)
{
	char tmpl[P];
	const char *tmp = getenv("TMPDIR");
	struct err e = { 0, 0, "" };
	int fd, saved, rc;
	ssize_t n;

	out[0] = 0;
	snprintf(tmpl, sizeof tmpl, "%s/bch-doctor.XXXXXX",
	    tmp && *tmp == '/' ? tmp : "/tmp");
	if ((fd = mkostemp(tmpl, O_CLOEXEC)) < 0) {
		snprintf(out, outsz, "cannot make a temporary file: %s",
		    strerror(errno));
		return -1;
	}
	if (unlink(tmpl) < 0) {
		snprintf(out, outsz, "cannot remove %s: %s", tmpl,
		    strerror(errno));
		close(fd);
		return -1;
	}
	fflush(stderr);
	if ((saved = fcntl(2, F_DUPFD_CLOEXEC, 3)) < 0 || dup2(fd, 2) < 0) {
		snprintf(out, outsz, "cannot redirect output: %s",
		    strerror(errno));
		if (saved >= 0)
			close(saved);
		close(fd);
		return -1;
	}
	rc = proc_run(path, argv, RUN_MS, &e);
	if (dup2(saved, 2) < 0)
		rc = -1; /* cannot happen: saved is open */
	close(saved);
	n = pread(fd, out, outsz - 1, 0);
	out[n > 0 ? n : 0] = 0;
	out[strcspn(out, "\n")] = 0;
	close(fd);
	if (rc < 0)
		snprintf(out, outsz, "%s", e.msg);
	return rc;
}

/* --- identity and config ---------------------------------------------------- */

/* What config_load() does with the environment, for when config.json
 * cannot be read: the rest can still be checked. */
static void
config_env(struct config *c)
{
	const char *v, *home = getenv("HOME");

	memset(c, 0, sizeof *c);
	limits_default(&c->lim);
	limits_default(&c->rlim);
	c->max_inbox = 100000;
	c->fsync = 1;
	if ((v = getenv("BACKCHANNEL_HOME")) && *v)
		snprintf(c->home, sizeof c->home, "%s", v);
	else if (home && *home)
		snprintf(c->home, sizeof c->home, "%s/.backchannel", home);
	if ((v = getenv("BACKCHANNEL_AGENT")) && name_valid(v)) {
		snprintf(c->agent, sizeof c->agent, "%s", v);
		c->agent_from_env = 1;
	}
	if ((v = getenv("BACKCHANNEL_URL")) && *v)
		c->url = xstrdup(v);
	if ((v = getenv("BACKCHANNEL_TOKEN")) && *v)
		c->token = xstrdup(v);
	if ((v = getenv("BACKCHANNEL_PIN")) && *v)
		c->pin = xstrdup(v);
	if ((v = getenv("BACKCHANNEL_CA")) && *v)
		c->cafile = xstrdup(v);
}

/* Owned by us, mode as wanted: else a failure naming the fix. 1 fine. */
static int
owner_mode(struct doc *d, const char *what, const char *path,
    const struct stat *st, mode_t want)
{
	char fix[P + 64], qp[P];

	if (st->st_uid != getuid()) {
		snprintf(fix, sizeof fix, "chown %s %s", d->user,
		    q(path, qp, sizeof qp));
		add(d, FAIL, what, fix, "owned by uid %ld, not by you (uid %ld)",
		    (long)st->st_uid, (long)getuid());
		return 0;
	}
	if ((st->st_mode & 07777) != want) {
		snprintf(fix, sizeof fix, "chmod %o %s", (unsigned)want,
		    q(path, qp, sizeof qp));
		add(d, FAIL, what, fix, "mode %04o, want %04o",
		    (unsigned)(st->st_mode & 07777), (unsigned)want);
		return 0;
	}
	return 1;
}

static void
check_home(struct doc *d)
{
	char what[P], fix[200];
	struct stat st;

	snprintf(what, sizeof what, "home %s", d->cfg.home);
	init_cmd(d, d->cfg.agent, fix, sizeof fix);
	if (stat(d->cfg.home, &st) < 0) {
		if (errno == ENOENT)
			add(d, FAIL, what, fix, "missing — nothing was set up");
		else
			add(d, FAIL, what, fix, "%s", strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		add(d, FAIL, what, "unset BACKCHANNEL_HOME, or point it at a "
		    "directory", "not a directory");
		return;
	}
	if (owner_mode(d, what, d->cfg.home, &st, 0700))
		add(d, OK, what, NULL, "0700, yours");
}

static void
check_config(struct doc *d, const struct err *load)
{
	char path[P], what[P + 16], fix[P + 64], qp[P];
	struct stat st;

	snprintf(path, sizeof path, "%s/config.json", d->cfg.home);
	snprintf(what, sizeof what, "config %s", path);
	init_cmd(d, d->cfg.agent, fix, sizeof fix);
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT)
			add(d, FAIL, what, fix, "%s", strerror(errno));
		else if (d->cfg.agent_from_env)
			add(d, WARN, what, NULL, "none; the identity comes from "
			    "BACKCHANNEL_AGENT alone");
		else
			add(d, FAIL, what, fix, "missing — this machine has no "
			    "identity");
		return;
	}
	if (S_ISLNK(st.st_mode) || !S_ISREG(st.st_mode)) {
		snprintf(fix, sizeof fix, "rm %s && bch init %s",
		    q(path, qp, sizeof qp), d->cfg.agent[0] ? d->cfg.agent :
		    "<name>");
		add(d, FAIL, what, fix, "%s, not a plain file — it is not read",
		    S_ISLNK(st.st_mode) ? "a symlink" : "not a file");
		return;
	}
	if (load && (load->status == 1 || strstr(load->msg, "config.json"))) {
		add(d, FAIL, what, fix, "%s", load->status == 1 ?
		    "not valid JSON (bch init sets it aside as config.json.bad "
		    "and writes a new one)" : load->msg);
		owner_mode(d, what, path, &st, 0600);
		return;
	}
	/* The variables' own faults are said where they are checked. */
	if (load && !strstr(load->msg, "BACKCHANNEL_AGENT") &&
	    !strstr(load->msg, "not a directory"))
		add(d, FAIL, "configuration", "unset the variable it names",
		    "%s", load->msg);
	if (owner_mode(d, what, path, &st, 0600))
		add(d, OK, what, NULL, "valid JSON, 0600");
}

/* The identity and its record: locally agents/<name>.json; on a relay
 * the token check answers for the record. */
static void
check_identity(struct doc *d)
{
	char path[P], what[200], fix[200];
	const char *from = d->cfg.agent_from_env ? "BACKCHANNEL_AGENT" :
	    "config.json";
	struct buf b = BUF_INIT;
	struct agent_rec a;
	struct err e;

	if (!d->cfg.agent[0]) {
		init_cmd(d, NULL, fix, sizeof fix);
		snprintf(d->id_fix, sizeof d->id_fix, "%s", fix);
		add(d, FAIL, "identity", fix, "none — neither config.json nor "
		    "BACKCHANNEL_AGENT names one");
		return;
	}
	snprintf(what, sizeof what, "identity %s", d->cfg.agent);
	if (d->cfg.url) {
		add(d, OK, what, NULL, "from %s, on the relay %s", from,
		    d->cfg.url);
		return;
	}
	init_cmd(d, d->cfg.agent, fix, sizeof fix);
	snprintf(path, sizeof path, "%s/agents/%s.json", d->cfg.home,
	    d->cfg.agent);
	if (io_readfile(AT_FDCWD, path, 256 * 1024, &b) < 0) {
		snprintf(d->id_fix, sizeof d->id_fix, "%s", fix);
		if (errno == ENOENT)
			add(d, FAIL, what, fix, "no record agents/%s.json — "
			    "nobody can send to it", d->cfg.agent);
		else
			add(d, FAIL, what, fix, "cannot read agents/%s.json: %s",
			    d->cfg.agent, strerror(errno));
		buf_free(&b);
		return;
	}
	if (agent_decode(b.p, b.len, &a, &e) < 0) {
		snprintf(d->id_fix, sizeof d->id_fix, "%s", fix);
		add(d, FAIL, what, fix, "record agents/%s.json is corrupt: %s",
		    d->cfg.agent, e.msg);
	} else {
		add(d, OK, what, NULL, "from %s, record agents/%s.json", from,
		    d->cfg.agent);
		agent_free(&a);
	}
	buf_free(&b);
}

static void
env_one(struct doc *d, const char *name, const char *v)
{
	char what[300];
	const char *file = NULL, *key = name + 12;
	char *end;

	snprintf(what, sizeof what, "environment %s", name);
	if (strcmp(key, "HOME") == 0 || strcmp(key, "PIN") == 0 ||
	    strcmp(key, "CA") == 0) {
		add(d, OK, what, NULL, "%s", v);
		return;
	}
	if (strcmp(key, "AGENT") == 0 || strcmp(key, "URL") == 0) {
		file = key[0] == 'A' ? d->cfg.file_agent : d->cfg.file_url;
		if (!name_valid(v) && key[0] == 'A')
			add(d, FAIL, what, "unset BACKCHANNEL_AGENT, or set it "
			    "to a name of letters, digits, '.', '_' and '-'",
			    "%s is not a valid agent name", v);
		else if (file && *file && strcmp(file, v) != 0)
			add(d, WARN, what, NULL, "%s overrides config.json's %s",
			    v, file);
		else
			add(d, OK, what, NULL, "%s", v);
		return;
	}
	if (strcmp(key, "TOKEN") == 0) {
		if (d->cfg.file_token && strcmp(d->cfg.file_token, v) != 0)
			add(d, WARN, what, NULL, "set; overrides the token kept "
			    "in config.json");
		else
			add(d, OK, what, NULL, "set");
		return;
	}
	if (strcmp(key, "FSYNC") == 0) {
		if (strcmp(v, "0") == 0)
			add(d, WARN, what, NULL, "0: no fsync, so a crash of the "
			    "machine may lose recent sends");
		else
			add(d, OK, what, NULL, "%s", v);
		return;
	}
	if (strcmp(key, "MAX_BODY") == 0 || strcmp(key, "MAX_INBOX") == 0) {
		errno = 0;
		if (!*v || strtoull(v, &end, 10) == 0 || errno || *end)
			add(d, WARN, what, NULL, "%s is not a positive number — "
			    "ignored, the default applies", v);
		else
			add(d, OK, what, NULL, "%s", v);
		return;
	}
	add(d, WARN, what, NULL, "not a variable backchannel knows — ignored "
	    "(a typo?)");
}

static void
check_env(struct doc *d)
{
	extern char **environ;
	char **e, name[200];
	int any = 0;

	for (e = environ; *e; e++) {
		const char *eq = strchr(*e, '=');
		if (strncmp(*e, "BACKCHANNEL_", 12) != 0 || !eq ||
		    (size_t)(eq - *e) >= sizeof name)
			continue;
		snprintf(name, sizeof name, "%.*s", (int)(eq - *e), *e);
		env_one(d, name, eq + 1);
		any = 1;
	}
	if (!any)
		add(d, OK, "environment", NULL, "no BACKCHANNEL_* overrides");
}

/* --- the spool --------------------------------------------------------------- */

struct tally {
	size_t problems; /* lines said about directories */
	size_t boxes;
	size_t stale, returned, live, foreign;
	struct buf stale_by; /* "bob 1, carol 2" */
	int fix_failed;
	char fix_err[300];
};

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

static int
claim_parse(const char *name, char *host, size_t hostsz, long *pid)
{
	const char *c = strstr(name, ".claim."), *h, *dot;
	char *end;

	if (!c)
		return 0;
	h = c + 7;
	if (!(dot = strrchr(h, '.')) || dot == h ||
	    (size_t)(dot - h) >= hostsz)
		return 0;
	snprintf(host, hostsz, "%.*s", (int)(dot - h), h);
	errno = 0;
	*pid = strtol(dot + 1, &end, 10);
	return !errno && !*end && *pid > 0;
}

/* Put cur/<name> back as new/<file>, never over a file already there. */
static int
unclaim(const char *src, const char *dst)
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

/* Entries of one of new/, cur/, tmp/, corrupt/: counted, symlinks and
 * (in cur/) claims looked at. Returns the number of plain entries. */
static size_t
scan_box(struct doc *d, struct tally *t, const char *agent,
    const char *dir, const char *sub, time_t *oldest)
{
	char path[P], src[P], dst[P], host[64], what[P + 16], qp[P],
	    fix[P + 8];
	struct dirent *de;
	size_t n = 0, stale = 0;
	struct stat st;
	DIR *dd;
	long pid;

	if (!(dd = opendir(dir)))
		return 0;
	while ((de = readdir(dd))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (de->d_type == DT_LNK || (de->d_type == DT_UNKNOWN &&
		    lstat(path, &st) == 0 && S_ISLNK(st.st_mode))) {
			if (++t->problems <= MAX_LINES) {
				snprintf(what, sizeof what, "spool %s",
				    path + strlen(d->cfg.home) + 1);
				snprintf(fix, sizeof fix, "rm %s",
				    q(path, qp, sizeof qp));
				add(d, FAIL, what, fix, "a symlink — a spool "
				    "holds only plain files; nothing reads it");
			}
			continue;
		}
		n++;
		if (oldest && fstatat(dirfd(dd), de->d_name, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 && (!*oldest ||
		    st.st_mtime < *oldest))
			*oldest = st.st_mtime;
		if (strcmp(sub, "cur") != 0 ||
		    !claim_parse(de->d_name, host, sizeof host, &pid))
			continue;
		if (strcmp(host, d->host) != 0) {
			t->foreign++;
			continue;
		}
		if (pid == (long)getpid() || io_pid_alive((pid_t)pid)) {
			t->live++;
			continue;
		}
		stale++;
		if (!d->fix)
			continue;
		snprintf(src, sizeof src, "%s", path);
		snprintf(dst, sizeof dst, "%s/spool/%s/new/%.*s", d->cfg.home,
		    agent, (int)(strstr(de->d_name, ".claim.") - de->d_name),
		    de->d_name);
		if (unclaim(src, dst) == 0) {
			t->returned++;
		} else if (!t->fix_failed) {
			t->fix_failed = 1;
			snprintf(t->fix_err, sizeof t->fix_err, "cannot return "
			    "%s: %s", de->d_name, strerror(errno));
		}
	}
	closedir(dd);
	if (stale) {
		buf_printf(&t->stale_by, "%s%s %zu", t->stale ? ", " : "",
		    agent, stale);
		t->stale += stale;
	}
	return n;
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
			age((long)(time(NULL) - tmp_oldest), old, sizeof old);
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
	snprintf(what, sizeof what, "queue %s", agent);
	if (!has_rec) {
		add(d, WARN, what, NULL, "%zu unread, but no record "
		    "agents/%s.json: nobody can send here", unread, agent);
		return;
	}
	old[0] = 0;
	if (unread)
		age((long)(time(NULL) - oldest), old, sizeof old);
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

/* Names of agents/<name>.json, sorted. */
static char **
records(struct doc *d, struct tally *t, size_t *n)
{
	char dir[P], path[P], what[P], fix[P + 8], qp[P];
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
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		if (de->d_type == DT_LNK) {
			t->problems++;
			snprintf(what, sizeof what, "spool agents/%s", de->d_name);
			snprintf(fix, sizeof fix, "rm %s", q(path, qp, sizeof qp));
			add(d, FAIL, what, fix, "a symlink — records are read "
			    "only as plain files");
			continue;
		}
		v = xrealloc(v, (*n + 2) * sizeof *v);
		v[(*n)++] = xstrndup(de->d_name, len - 5);
		v[*n] = NULL;
	}
	closedir(dd);
	return v;
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

static void
check_spool(struct doc *d)
{
	char dir[P], init[200], what[P];
	struct tally t;
	struct dirent *de;
	char **recs, **boxes = NULL;
	size_t nrec, nbox = 0, i;
	int local = !d->cfg.url;
	DIR *dd;

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
	snprintf(dir, sizeof dir, "%s/spool", d->cfg.home);
	if (check_dir(d, &t, dir, local, init) && (dd = opendir(dir))) {
		while ((de = readdir(dd))) {
			if (de->d_name[0] == '.')
				continue;
			if (!name_valid(de->d_name)) {
				snprintf(what, sizeof what, "spool spool/%s",
				    de->d_name);
				add(d, WARN, what, NULL, "not an agent name — "
				    "ignored");
				continue;
			}
			boxes = xrealloc(boxes, (nbox + 1) * sizeof *boxes);
			boxes[nbox++] = xstrdup(de->d_name);
		}
		closedir(dd);
	}
	for (i = 0; i < nrec; i++)
		if (!has(boxes, nbox, recs[i])) {
			boxes = xrealloc(boxes, (nbox + 1) * sizeof *boxes);
			boxes[nbox++] = xstrdup(recs[i]);
		}
	if (nbox)
		qsort(boxes, nbox, sizeof *boxes, cmp_str);
	for (i = 0; i < nbox; i++)
		check_box(d, &t, boxes[i], has(recs, nrec, boxes[i]));
	check_tokens(d, &t);
	if (t.problems > MAX_LINES)
		add(d, FAIL, "spool", NULL, "%zu problems in all; the first %d "
		    "are above", t.problems, MAX_LINES);
	if (!t.problems)
		add(d, OK, "spool directories", NULL, "%zu inbox(es), all "
		    "0700, yours, no symlinks", t.boxes);
	if (t.fix_failed)
		add(d, FAIL, "stale claims", "bch doctor --fix", "returned %zu "
		    "of %zu; %s", t.returned, t.stale, t.fix_err);
	else if (t.stale && d->fix)
		add(d, OK, "stale claims", NULL, "returned %zu message(s) to "
		    "new/ (%s)", t.returned, t.stale_by.p);
	else if (t.stale)
		add(d, FAIL, "stale claims", "bch doctor --fix", "%zu claimed "
		    "message(s) whose reader died (%s) — the next drain returns "
		    "them too", t.stale, t.stale_by.p);
	else
		add(d, OK, "stale claims", NULL, "none%s", t.live ?
		    "; a reader is at work" : "");
	if (t.foreign)
		add(d, WARN, "claims of other hosts", NULL, "%zu, by readers on "
		    "another machine sharing this spool: not returned from here",
		    t.foreign);
	buf_free(&t.stale_by);
	for (i = 0; i < nrec; i++)
		free(recs[i]);
	for (i = 0; i < nbox; i++)
		free(boxes[i]);
	free(recs);
	free(boxes);
}

/* --- the relay ---------------------------------------------------------------- */

struct url {
	char host[256], port[8], prefix[512];
	int https;
};

static int
url_parse(struct url *u, const char *s)
{
	const char *p = s, *slash, *colon;
	size_t n;

	memset(u, 0, sizeof *u);
	if (strncmp(p, "https://", 8) == 0) {
		u->https = 1;
		p += 8;
	} else if (strncmp(p, "http://", 7) == 0) {
		p += 7;
	} else {
		return -1;
	}
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	snprintf(u->prefix, sizeof u->prefix, "%s", slash ? slash : "");
	while (*u->prefix && u->prefix[strlen(u->prefix) - 1] == '/')
		u->prefix[strlen(u->prefix) - 1] = 0;
	if (n >= sizeof u->host)
		return -1;
	if (p[0] == '[') {
		const char *rb = memchr(p, ']', n);
		if (!rb)
			return -1;
		snprintf(u->host, sizeof u->host, "%.*s", (int)(rb - p - 1),
		    p + 1);
		colon = rb + 1 < p + n && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(p, ':', n);
		snprintf(u->host, sizeof u->host, "%.*s", (int)(colon ?
		    (size_t)(colon - p) : n), p);
	}
	if (colon)
		snprintf(u->port, sizeof u->port, "%.*s",
		    (int)(p + n - colon - 1), colon + 1);
	else
		snprintf(u->port, sizeof u->port, "%s", u->https ? "443" : "80");
	return u->host[0] && u->port[0] &&
	    strspn(u->port, "0123456789") == strlen(u->port) ? 0 : -1;
}

static long
ms_since(const struct timespec *t0)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t0->tv_sec) * 1000L +
	    (now.tv_nsec - t0->tv_nsec) / 1000000L;
}

/* Connect within NET_MS; the socket is blocking after, with timeouts. */
static int
dial(const struct url *u, char *why, size_t whysz)
{
	struct addrinfo hints, *res, *ai;
	struct timeval tv = { NET_MS / 1000, 0 };
	int fd = -1, rc, err = 0;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(u->host, u->port, &hints, &res)) != 0) {
		snprintf(why, whysz, "%s", gai_strerror(rc));
		return -1;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		struct pollfd pfd;
		socklen_t len = sizeof err;
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC |
		    SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		if (errno == EINPROGRESS) {
			pfd.fd = fd;
			pfd.events = POLLOUT;
			do
				rc = poll(&pfd, 1, NET_MS);
			while (rc < 0 && errno == EINTR);
			err = rc == 0 ? ETIMEDOUT : rc < 0 ? errno : 0;
			if (rc > 0 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
			    &len) < 0)
				err = errno;
			if (!err)
				break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0) {
		snprintf(why, whysz, "%s", strerror(err ? err : ECONNREFUSED));
		return -1;
	}
	if (fcntl(fd, F_SETFL, 0) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
		snprintf(why, whysz, "%s", strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

struct health {
	int status;
	int ok;        /* the answer is backchannel's */
	time_t date;   /* the Date header, or 0 */
	long ms;
	char why[300]; /* why there was no answer */
	const char *tls_why;
};

static time_t
date_of(const char *head, size_t n)
{
	const char *p = head, *end = head + n;
	struct tm tm;
	char v[64];

	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			break;
		if (eol - p > 5 && strncasecmp(p, "date:", 5) == 0 &&
		    eol - p < (long)sizeof v + 5) {
			snprintf(v, sizeof v, "%.*s", (int)(eol - p - 5), p + 5);
			memset(&tm, 0, sizeof tm);
			if (strptime(v, " %a, %d %b %Y %H:%M:%S GMT", &tm))
				return timegm(&tm);
			return 0;
		}
		p = eol + 1;
	}
	return 0;
}

/* GET /v1/health on a connection of our own. 0 answered, -1 not (the
 * relay is unreachable, or TLS failed: h->tls_why). */
static int
health(struct doc *d, const struct url *u, struct health *h)
{
	static char tls_why[200];
	struct timespec t0;
	struct tls_client *tls = NULL;
	struct buf req = BUF_INIT, in = BUF_INIT;
	struct http_resp r;
	struct err e;
	long used = 0;
	int fd, rc = -1;

	memset(h, 0, sizeof *h);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((fd = dial(u, h->why, sizeof h->why)) < 0)
		return -1;
	if (u->https && !(tls = tls_client_new(u->host, d->cfg.pin,
	    d->cfg.cafile, &e))) {
		snprintf(h->why, sizeof h->why, "%s", e.msg);
		close(fd);
		return -1;
	}
	buf_printf(&req, "GET %s/v1/health HTTP/1.1\r\nHost: %s\r\n"
	    "User-Agent: backchannel-doctor\r\nConnection: close\r\n\r\n",
	    u->prefix, u->host);
	if ((tls ? tls_client_write(tls, fd, req.p, req.len) :
	    io_writeall(fd, req.p, req.len)) < 0)
		goto broken;
	for (;;) {
		ssize_t n;
		used = http_parse_response(in.p ? in.p : "", in.len, 1 << 16, &r);
		if (used != 0)
			break;
		buf_grow(&in, 4096);
		n = tls ? tls_client_read(tls, fd, in.p + in.len,
		    in.cap - in.len - 1) : read(fd, in.p + in.len,
		    in.cap - in.len - 1);
		if (n < 0 && !tls && errno == EINTR)
			continue;
		if (n <= 0)
			goto broken;
		in.len += (size_t)n;
		in.p[in.len] = 0;
		if (in.len > 1 << 17)
			break;
	}
	if (used <= 0) {
		snprintf(h->why, sizeof h->why, "a malformed answer to "
		    "/v1/health");
		goto out;
	}
	h->ms = ms_since(&t0);
	h->status = r.status;
	h->ok = r.status == 200 && r.body &&
	    strstr(r.body, "\"ok\"") && strstr(r.body, "true");
	h->date = date_of(in.p, (size_t)used - r.body_len);
	http_resp_free(&r);
	rc = 0;
	goto out;
broken:
	if (tls && tls_client_why(tls)) {
		snprintf(tls_why, sizeof tls_why, "%s", tls_client_why(tls));
		h->tls_why = tls_why;
	}
	snprintf(h->why, sizeof h->why, "%s", in.len ? "the connection broke "
	    "mid-answer" : h->tls_why ? h->tls_why : errno == EAGAIN ||
	    errno == EWOULDBLOCK ? "no answer in 5 s" : "no answer (the "
	    "connection was closed)");
out:
	tls_client_free(tls);
	close(fd);
	buf_free(&req);
	buf_free(&in);
	return rc;
}

static int
loopback(const char *host)
{
	return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	    strcmp(host, "::1") == 0;
}

/* The personal token, tried on the routes every program uses. */
static void
check_token(struct doc *d)
{
	char what[200], fix[600], init[200];
	struct spool *sp;
	struct spool_item *it;
	struct agent_rec *a;
	size_t n, na, i;
	struct err e;
	int found = 0;

	snprintf(what, sizeof what, "relay token");
	snprintf(init, sizeof init, "bch init %s --url %s --token "
	    "<room token>", d->cfg.agent[0] ? d->cfg.agent : "<name>",
	    d->cfg.url);
	if (!d->cfg.agent[0]) {
		add(d, FAIL, what, init, "no identity to try it for");
		return;
	}
	snprintf(fix, sizeof fix, "%s%s", getenv("BACKCHANNEL_TOKEN") ?
	    "unset BACKCHANNEL_TOKEN, or " : "", init);
	if (!d->cfg.token || !*d->cfg.token) {
		add(d, FAIL, what, fix, "none kept for %s (config.json or "
		    "tokens/%s)", d->cfg.agent, d->cfg.agent);
		return;
	}
	if (!(sp = spool_open(&d->cfg, "bch-doctor", &e))) {
		add(d, FAIL, what, init, "%s", e.msg);
		return;
	}
	if (spool_agents(sp, &a, &na, &e) < 0) {
		add(d, FAIL, what, e.status == 401 ? fix : "bch doctor  # "
		    "again, once the relay answers", "%s (%d)", e.status == 401 ?
		    "rejected by the relay" : e.msg, e.status);
		spool_close(sp);
		return;
	}
	for (i = 0; i < na; i++)
		found |= strcmp(a[i].name, d->cfg.agent) == 0;
	agent_list_free(a, na);
	if (spool_list(sp, d->cfg.agent, &it, &n, &e) < 0) {
		add(d, FAIL, what, fix, "%s (%d)%s", e.status == 403 ?
		    "it belongs to another agent" : e.msg, e.status,
		    found ? "" : "; the relay has no record of this agent");
		spool_close(sp);
		return;
	}
	spool_items_free(it, n);
	spool_close(sp);
	add(d, OK, what, NULL, "accepted for %s", d->cfg.agent);
	snprintf(what, sizeof what, "queue %s (relay)", d->cfg.agent);
	add(d, OK, what, NULL, n ? "%zu unread" : "empty", n);
}

static void
check_relay(struct doc *d)
{
	char what[600], fix[800], init[400];
	struct health h;
	struct url u;
	long skew;

	if (!d->cfg.url) {
		add(d, OK, "relay", NULL, "none configured: the local spool");
		return;
	}
	snprintf(what, sizeof what, "relay %s", d->cfg.url);
	snprintf(init, sizeof init, "bch init %s --url <relay-url> --token "
	    "<room token>", d->cfg.agent[0] ? d->cfg.agent : "<name>");
	if (url_parse(&u, d->cfg.url) < 0) {
		add(d, FAIL, what, getenv("BACKCHANNEL_URL") ?
		    "unset BACKCHANNEL_URL, or set it to http(s)://host[:port]" :
		    init, "not a relay URL: use http(s)://host[:port]");
		return;
	}
	if (health(d, &u, &h) < 0) {
		if (h.tls_why) {
			add(d, OK, what, NULL, "reachable");
			snprintf(fix, sizeof fix, "bch init %s --url %s --token "
			    "<room token> --pin <the pin the relay logs>",
			    d->cfg.agent[0] ? d->cfg.agent : "<name>",
			    d->cfg.url);
			add(d, FAIL, "relay TLS", fix, "not trusted: %s%s",
			    h.tls_why, d->cfg.pin ? " (pinned key)" : "");
			return;
		}
		snprintf(fix, sizeof fix, "%sstart the relay on its host (bch "
		    "relay --port %s), or point at a running one: %s",
		    getenv("BACKCHANNEL_URL") ? "unset BACKCHANNEL_URL; or " :
		    "", u.port, init);
		add(d, FAIL, what, fix, "unreachable: %s", h.why);
		return;
	}
	add(d, OK, what, NULL, "reachable, answered in %ld ms", h.ms);
	if (u.https)
		add(d, OK, "relay TLS", NULL, "verified by %s", d->cfg.pin ?
		    "the pinned key" : d->cfg.cafile ? "the CA file" :
		    "the system's CAs");
	else if (loopback(u.host))
		add(d, OK, "relay TLS", NULL, "none: plain HTTP on loopback");
	else
		add(d, WARN, "relay TLS", NULL, "none: plain HTTP, so tokens "
		    "and messages cross the network unencrypted");
	if (!h.ok) {
		add(d, FAIL, "relay health", init, "/v1/health answered %d, not "
		    "backchannel's {\"ok\": true} — is the URL right?", h.status);
		return;
	}
	add(d, OK, "relay health", NULL, "/v1/health answers ok");
	if (!h.date) {
		add(d, OK, "relay clock", NULL, "not measured: the relay sends "
		    "no Date header");
	} else {
		skew = (long)(time(NULL) - h.date);
		if (labs(skew) > SKEW_MAX)
			add(d, WARN, "relay clock", NULL, "this machine's clock "
			    "is %ld s %s the relay's: message times will look "
			    "wrong (sync the clocks with NTP)", labs(skew),
			    skew > 0 ? "ahead of" : "behind");
		else
			add(d, OK, "relay clock", NULL, "within %ld s of this "
			    "machine's", labs(skew));
	}
	check_token(d);
}

/* --- harnesses ---------------------------------------------------------------- */

/* The first word of a shell command line, unquoted. */
static void
first_word(const char *s, char *out, size_t outsz)
{
	size_t w = 0;
	char quote = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s && w + 1 < outsz; s++) {
		if (quote) {
			if (*s == quote)
				quote = 0;
			else if (quote == '"' && *s == '\\' && s[1] &&
			    strchr("\"\\$`", s[1]))
				out[w++] = *++s;
			else
				out[w++] = *s;
		} else if (*s == '\'' || *s == '"') {
			quote = *s;
		} else if (*s == '\\' && s[1]) {
			out[w++] = *++s;
		} else if (*s == ' ' || *s == '\t') {
			break;
		} else {
			out[w++] = *s;
		}
	}
	out[w] = 0;
}

/* Does prog exist and run? A check named what, status as it went. */
static void
check_prog(struct doc *d, const char *what, const char *prog,
    const char *shown)
{
	char path[PATH_MAX], out[300];
	const char *base = strrchr(prog, '/');
	char *argv[3];
	struct stat st;
	struct ran *r = NULL;
	size_t i;
	int rc;

	if (!*prog) {
		add(d, FAIL, what, "bch setup", "%s: no program named", shown);
		return;
	}
	if (strchr(prog, '/'))
		snprintf(path, sizeof path, "%s", prog);
	else if (!proc_find(prog, path, sizeof path)) {
		add(d, FAIL, what, "bch setup", "%s: %s is not on PATH", shown,
		    prog);
		return;
	}
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
		add(d, FAIL, what, "bch setup", "%s: %s does not exist", shown,
		    path);
		return;
	}
	if (access(path, X_OK) < 0) {
		add(d, FAIL, what, "bch setup", "%s: %s is not executable",
		    shown, path);
		return;
	}
	for (i = 0; i < d->nran; i++)
		if (strcmp(d->ran[i].path, path) == 0)
			r = &d->ran[i];
	if (!r) {
		r = &d->ran[d->nran < 8 ? d->nran++ : 7];
		snprintf(r->path, sizeof r->path, "%s", path);
		argv[0] = path;
		argv[1] = strcmp(base ? base + 1 : prog, "bch") == 0 ?
		    "whoami" : "-h";
		argv[2] = NULL;
		r->rc = run(path, argv, r->out, sizeof r->out);
	}
	rc = r->rc;
	snprintf(out, sizeof out, "%s", r->out);
	if (rc == 0)
		add(d, OK, what, NULL, "%s (runs: %s)", shown, *out ? out :
		    "fine");
	else if (rc < 0)
		add(d, FAIL, what, "bch setup", "%s: %s", shown, out);
	else
		add(d, FAIL, what, rc == BCH_PERM && d->id_fix[0] ? d->id_fix :
		    "bch setup", "%s: it exits %d: %s", shown, rc, *out ? out :
		    "(no output)");
}

/* The value at path in a JSON document; -1 if absent. */
static int
jpath(const struct json *j, const char *const *path)
{
	int i = 0;

	for (; *path; path++) {
		if (j->t[i].type != JSON_OBJECT)
			return -1;
		if ((i = json_get(j, i, *path)) < 0)
			return -1;
	}
	return i;
}

/* Read a harness's JSON file: 1 parsed (free j and b), 0 absent, -1 a
 * failure said. */
static int
load_json(struct doc *d, const char *what, const char *path,
    struct json *j, struct buf *b)
{
	char fix[P + 32], qp[P];
	const char *why = NULL;

	if (read_any(path, 64 << 20, b) < 0) {
		if (errno == ENOENT) {
			buf_free(b);
			return 0;
		}
		snprintf(fix, sizeof fix, "ls -l %s", q(path, qp, sizeof qp));
		add(d, FAIL, what, fix, "cannot read %s: %s", path,
		    strerror(errno));
		buf_free(b);
		return -1;
	}
	if (b->len == 0) {
		buf_free(b);
		return 0;
	}
	if (json_parse(j, b->p, b->len, 128, &why) < 0) {
		snprintf(fix, sizeof fix, "python3 -m json.tool %s  # shows "
		    "where", q(path, qp, sizeof qp));
		add(d, FAIL, what, fix, "%s is not valid JSON (%s): the harness "
		    "cannot read it either", path, why ? why : "?");
		buf_free(b);
		return -1;
	}
	return 1;
}

/* Is this hook command ours: bch (or bch-drain) with --hook? */
static int
our_hook(const char *cmd)
{
	char prog[PATH_MAX];
	const char *base;

	first_word(cmd, prog, sizeof prog);
	base = strrchr(prog, '/');
	base = base ? base + 1 : prog;
	return strncmp(base, "bch", 3) == 0 && strstr(cmd, "--hook") != NULL;
}

static void
claude_hooks(struct doc *d, const char *home, int installed)
{
	static const char *const events[] = { "UserPromptSubmit",
		"SessionStart" };
	char path[P], what[200], prog[PATH_MAX];
	struct buf b = BUF_INIT;
	struct json j;
	size_t k;
	int rc, i, g, h, kk, ll, seen, arr;

	snprintf(path, sizeof path, "%s/.claude/settings.json", home);
	if ((rc = load_json(d, "claude code hooks", path, &j, &b)) < 0)
		return;
	for (k = 0; k < 2; k++) {
		const char *jp[] = { "hooks", events[k], NULL };
		snprintf(what, sizeof what, "claude code hook %s", events[k]);
		seen = 0;
		arr = rc ? jpath(&j, jp) : -1;
		if (arr < 0 || j.t[arr].type != JSON_ARRAY)
			arr = -1;
		for (kk = 0, g = arr + 1; arr >= 0 && kk < j.t[arr].size;
		    kk++, g = json_next(&j, g)) {
			h = j.t[g].type == JSON_OBJECT ? json_get(&j, g, "hooks") :
			    -1;
			if (h < 0 || j.t[h].type != JSON_ARRAY)
				continue;
			for (ll = 0, i = h + 1; ll < j.t[h].size;
			    ll++, i = json_next(&j, i)) {
				char *cmd = NULL;
				int c = j.t[i].type == JSON_OBJECT ?
				    json_get(&j, i, "command") : -1;
				if (c < 0 || json_string(&j, c, 16384, &cmd,
				    NULL) < 0)
					continue;
				if (our_hook(cmd)) {
					first_word(cmd, prog, sizeof prog);
					check_prog(d, what, prog, cmd);
					seen = 1;
				}
				free(cmd);
			}
		}
		if (!seen)
			add(d, WARN, what, NULL, "not configured%s — bch setup "
			    "adds it", installed ? "" : " (Claude Code not found)");
	}
	if (rc)
		json_free(&j);
	buf_free(&b);
}

/* mcpServers.backchannel in a JSON file: the command, run. */
static void
mcp_json(struct doc *d, const char *what, const char *path, int installed,
    const char *who)
{
	static const char *const jp[] = { "mcpServers", "backchannel", NULL };
	struct buf b = BUF_INIT;
	struct json j;
	char *cmd = NULL, *arg = NULL, shown[PATH_MAX + 16];
	int rc, i, c, a;

	if ((rc = load_json(d, what, path, &j, &b)) < 0)
		return;
	i = rc ? jpath(&j, jp) : -1;
	if (i < 0 || j.t[i].type != JSON_OBJECT) {
		add(d, WARN, what, NULL, "not configured%s — bch setup adds it",
		    installed ? "" : who);
		goto out;
	}
	c = json_get(&j, i, "command");
	a = json_get(&j, i, "args");
	if (c < 0 || json_string(&j, c, PATH_MAX, &cmd, NULL) < 0) {
		add(d, FAIL, what, "bch setup", "mcpServers.backchannel in %s "
		    "has no command", path);
		goto out;
	}
	if (a < 0 || j.t[a].type != JSON_ARRAY || j.t[a].size < 1 ||
	    json_string(&j, a + 1, 64, &arg, NULL) < 0 ||
	    strcmp(arg, "mcp") != 0) {
		add(d, FAIL, what, "bch setup", "%s runs without the argument "
		    "mcp: it is not the MCP server", cmd);
		goto out;
	}
	snprintf(shown, sizeof shown, "%s mcp", cmd);
	check_prog(d, what, cmd, shown);
out:
	free(cmd);
	free(arg);
	if (rc > 0)
		json_free(&j);
	buf_free(&b);
}

/* A TOML string value (basic or literal) at s, into out. */
static int
toml_str(const char *s, char *out, size_t outsz)
{
	char quote = *s;
	size_t w = 0;

	if (quote != '"' && quote != '\'')
		return -1;
	for (s++; *s && *s != quote; s++) {
		if (w + 1 >= outsz)
			return -1;
		if (quote == '"' && *s == '\\' && s[1]) {
			s++;
			out[w++] = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
		} else {
			out[w++] = *s;
		}
	}
	out[w] = 0;
	return *s == quote ? 0 : -1;
}

/* Is the line "[mcp_servers.backchannel]" (spaces, quoted keys)? */
static int
toml_ours(const char *line)
{
	char norm[200];
	size_t w = 0;

	for (; *line && *line != '#' && w + 1 < sizeof norm; line++)
		if (!strchr(" \t\"'", *line))
			norm[w++] = *line;
	norm[w] = 0;
	return strcmp(norm, "[mcp_servers.backchannel]") == 0;
}

static void
codex(struct doc *d, const char *home, int *installed)
{
	const char *ch = getenv("CODEX_HOME");
	char dir[P], path[P + 16], cmd[PATH_MAX] = "", args[64] = "",
	    shown[PATH_MAX + 8], *line, *save = NULL;
	const char *what = "codex mcp server";
	struct buf b = BUF_INIT;
	struct stat st;
	int in = 0, found = 0;

	if (ch && *ch == '/')
		snprintf(dir, sizeof dir, "%s", ch);
	else
		snprintf(dir, sizeof dir, "%s/.codex", home);
	*installed = stat(dir, &st) == 0 || proc_find("codex", path,
	    sizeof path);
	snprintf(path, sizeof path, "%s/config.toml", dir);
	if (read_any(path, 16 << 20, &b) < 0 && errno != ENOENT) {
		add(d, FAIL, what, "bch setup", "cannot read %s: %s", path,
		    strerror(errno));
		buf_free(&b);
		return;
	}
	for (line = b.p ? strtok_r(b.p, "\n", &save) : NULL; line;
	    line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '[') {
			in = toml_ours(line);
			found |= in;
			continue;
		}
		if (!in)
			continue;
		if (strncmp(line, "command", 7) == 0 &&
		    strchr(" \t=", line[7])) {
			char *v = strchr(line, '=');
			if (v && toml_str(v + 1 + strspn(v + 1, " \t"), cmd,
			    sizeof cmd) < 0)
				cmd[0] = 0;
		} else if (strncmp(line, "args", 4) == 0 &&
		    strchr(" \t=", line[4])) {
			char *v = strchr(line, '[');
			if (v && toml_str(v + 1 + strspn(v + 1, " \t"), args,
			    sizeof args) < 0)
				args[0] = 0;
		}
	}
	buf_free(&b);
	if (!found) {
		add(d, WARN, what, NULL, "not configured%s — bch setup adds it",
		    *installed ? "" : " (Codex not found)");
		return;
	}
	if (!cmd[0]) {
		add(d, FAIL, what, "bch setup", "[mcp_servers.backchannel] in %s "
		    "has no command", path);
		return;
	}
	if (strcmp(args, "mcp") != 0) {
		add(d, FAIL, what, "bch setup", "%s runs without the argument "
		    "mcp: it is not the MCP server", cmd);
		return;
	}
	snprintf(shown, sizeof shown, "%s mcp", cmd);
	check_prog(d, what, cmd, shown);
}

static void
check_harnesses(struct doc *d)
{
	const char *home = getenv("HOME");
	char dir[P], path[P + 32], p[PATH_MAX];
	struct stat st;
	int claude, gemini, cx;

	if (!home || *home != '/') {
		add(d, WARN, "harnesses", NULL, "HOME is not set: cannot look");
		return;
	}
	snprintf(dir, sizeof dir, "%s/.claude", home);
	claude = stat(dir, &st) == 0 || proc_find("claude", p, sizeof p);
	claude_hooks(d, home, claude);
	snprintf(path, sizeof path, "%s/.claude.json", home);
	mcp_json(d, "claude code mcp server", path, claude,
	    " (Claude Code not found)");
	snprintf(path, sizeof path, "%s/skills/backchannel/SKILL.md", dir);
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
		add(d, OK, "claude code skill", NULL, "%s", path);
	else
		add(d, WARN, "claude code skill", NULL, "not installed%s — bch "
		    "setup installs it", claude ? "" : " (Claude Code not found)");
	codex(d, home, &cx);
	snprintf(dir, sizeof dir, "%s/.gemini", home);
	gemini = stat(dir, &st) == 0 || proc_find("gemini", p, sizeof p);
	snprintf(path, sizeof path, "%s/settings.json", dir);
	mcp_json(d, "gemini cli mcp server", path, gemini,
	    " (Gemini CLI not found)");
}

/* --- the wake service ----------------------------------------------------------- */

static int
tool(const char *name, char *const argv[], char *out, size_t outsz)
{
	char path[PATH_MAX];

	if (!proc_find(name, path, sizeof path))
		return -2;
	return run(path, argv, out, outsz);
}

static void
check_wake(struct doc *d)
{
	const char *home = getenv("HOME"), *x = getenv("XDG_CONFIG_HOME");
	char scandir[PATH_MAX], sv[PATH_MAX + 16], unit[P], plist[P],
	    out[300], fix[P + 64], qp[P], p[PATH_MAX];
	struct wake w;
	struct stat st;
	int rc, any = 0;

	memset(&w, 0, sizeof w);
	w.home = home;
	if (strcmp(wake_detect(&w, scandir, sizeof scandir), "s6") == 0 &&
	    scandir[0]) {
		snprintf(sv, sizeof sv, "%s/bch-notify", scandir);
		if (stat(sv, &st) == 0) {
			char *argv[] = { "s6-svstat", sv, NULL };
			any = 1;
			rc = tool("s6-svstat", argv, out, sizeof out);
			snprintf(fix, sizeof fix, "s6-svc -u %s",
			    q(sv, qp, sizeof qp));
			if (rc == 0 && strncmp(out, "up", 2) == 0)
				add(d, OK, "wake service (s6)", NULL, "%s: %s", sv,
				    out);
			else if (rc == -2)
				add(d, FAIL, "wake service (s6)", "apt-get install "
				    "s6", "%s: s6-svstat is not installed", sv);
			else if (rc == 0)
				add(d, FAIL, "wake service (s6)", fix, "%s: %s",
				    sv, out);
			else {
				snprintf(fix, sizeof fix, "s6-svscanctl -a %s",
				    q(scandir, qp, sizeof qp));
				add(d, FAIL, "wake service (s6)", fix, "%s: not "
				    "supervised: %s", sv, out);
			}
		}
	}
	if (home && *home == '/') {
		if (x && *x == '/')
			snprintf(unit, sizeof unit, "%s/systemd/user/"
			    "bch-notify.service", x);
		else
			snprintf(unit, sizeof unit, "%s/.config/systemd/user/"
			    "bch-notify.service", home);
		if (stat(unit, &st) == 0) {
			char *argv[] = { "systemctl", "--user", "is-active",
				"bch-notify.service", NULL };
			any = 1;
			rc = tool("systemctl", argv, out, sizeof out);
			if (rc == 0)
				add(d, OK, "wake service (systemd)", NULL, "%s: "
				    "active", unit);
			else
				add(d, FAIL, "wake service (systemd)", "systemctl "
				    "--user enable --now bch-notify.service",
				    "%s: %s", unit, rc == -2 ? "systemctl is not "
				    "installed" : *out ? out : "not active");
		}
		snprintf(plist, sizeof plist, "%s/Library/LaunchAgents/" LABEL
		    ".plist", home);
		if (stat(plist, &st) == 0) {
			char *argv[] = { "launchctl", "list", LABEL, NULL };
			any = 1;
			rc = tool("launchctl", argv, out, sizeof out);
			snprintf(fix, sizeof fix, "launchctl load -w %s",
			    q(plist, qp, sizeof qp));
			if (rc == 0)
				add(d, OK, "wake service (launchd)", NULL, "%s: "
				    "loaded", plist);
			else
				add(d, FAIL, "wake service (launchd)", fix, "%s: "
				    "%s", plist, rc == -2 ? "launchctl is not "
				    "installed" : "not loaded");
		}
	}
	if (!any)
		add(d, WARN, "wake service", NULL, "not installed — bch setup "
		    "--wake installs it, for desktop notifications of urgent "
		    "messages");
	if (proc_find("notify-send", p, sizeof p) ||
	    proc_find("osascript", p, sizeof p))
		add(d, OK, "notifier", NULL, "%s", p);
	else if (any)
		add(d, FAIL, "notifier", "apt-get install libnotify-bin",
		    "neither notify-send nor osascript is on PATH: urgent "
		    "messages only ring a bell");
	else
		add(d, WARN, "notifier", NULL, "neither notify-send nor "
		    "osascript is on PATH");
}

/* --- main ------------------------------------------------------------------------ */

static void
whoami_setup(struct doc *d)
{
	struct passwd *pw = getpwuid(getuid());
	size_t i;

	if (pw && pw->pw_name && name_valid(pw->pw_name))
		snprintf(d->user, sizeof d->user, "%s", pw->pw_name);
	else
		snprintf(d->user, sizeof d->user, "%ld", (long)getuid());
	if (gethostname(d->host, sizeof d->host - 1) < 0 || !d->host[0])
		snprintf(d->host, sizeof d->host, "localhost");
	for (i = 0; d->host[i]; i++) {
		char ch = d->host[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			d->host[i] = '_';
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, 0, 'j' },
		{ "fix", no_argument, 0, 'f' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct doc d;
	struct err e = { 0, 0, "" };
	int ch, loaded;
	size_t i;

	memset(&d, 0, sizeof d);
	err_prog("bch-doctor");
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "hjf", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': d.json = 1; break;
		case 'f': d.fix = 1; break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default:
			fprintf(stderr, "bch-doctor: bad option %s\nusage: %s\n",
			    argv[optind - 1], usage);
			return BCH_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "bch-doctor: takes no arguments\nusage: %s\n",
		    usage);
		return BCH_USAGE;
	}
	signal(SIGPIPE, SIG_IGN);
	whoami_setup(&d);
	loaded = config_load(&d.cfg, &e) == 0;
	if (!loaded)
		config_env(&d.cfg);
	if (!d.cfg.home[0]) {
		add(&d, FAIL, "home", "export HOME=/home/<you>", "neither "
		    "BACKCHANNEL_HOME nor HOME is set");
	} else {
		check_home(&d);
		check_config(&d, loaded ? NULL : &e);
		check_identity(&d);
		check_env(&d);
		check_spool(&d);
		check_relay(&d);
	}
	check_harnesses(&d);
	check_wake(&d);
	if (d.json) {
		struct buf b = BUF_INIT;
		put_json(&d, &b);
		fwrite(b.p, 1, b.len, stdout);
		buf_free(&b);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "bch-doctor: cannot write to standard output: "
		    "%s\n", strerror(errno));
		return BCH_TEMP;
	}
	config_free(&d.cfg);
	for (i = 0; i < d.n; i++) {
		free(d.c[i].what);
		free(d.c[i].detail);
		free(d.c[i].fix);
	}
	free(d.c);
	return d.failed ? 1 : 0;
}
