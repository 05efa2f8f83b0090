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
 * spool interface, exactly as every other program would use it.
 *
 * This file holds main(), the report and the checks of home, config,
 * identity and environment; the spool, the relay and the harnesses with
 * the wake service each have a doctor-*.c of their own (doctor.h). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent.h"
#include "claim.h"
#include "config.h"
#include "doctor.h"
#include "io.h"
#include "json.h"
#include "show.h"

static const char usage[] = "bch-doctor [--json] [--fix] [--release host]";

static const char *const words[] = { "ok", "warn", "FAIL" };

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

void
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

const char *
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

void
init_cmd(struct doc *d, const char *name, char *out, size_t outsz)
{
	const char *n = name && *name ? name : "<name>";

	if (name && *name && d->cfg.file_agent[0] &&
	    strcmp(name, d->cfg.file_agent) != 0)
		snprintf(out, outsz, "BACKCHANNEL_AGENT=%s bch init %s", n, n);
	else
		snprintf(out, outsz, "bch init %s", n);
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
	c->timeout = CONFIG_TIMEOUT;
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

int
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
		if (errno == ENOENT && lstat(d->cfg.home, &st) == 0 &&
		    S_ISLNK(st.st_mode))
			add(d, FAIL, what, "create the directory it points to, "
			    "or fix the symlink", "a symlink to a directory that "
			    "does not exist");
		else if (errno == ENOENT)
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
		add(d, FAIL, what, fix, "%s", load->status == 1 &&
		    strstr(load->msg, "is not valid JSON") ?
		    "not valid JSON (bch init sets it aside as config.json.bad "
		    "and writes a new one)" : load->msg);
		owner_mode(d, what, path, &st, 0600);
		return;
	}
	/* The variables' own faults are said where they are checked. */
	if (load && !strstr(load->msg, "BACKCHANNEL_AGENT") &&
	    !strstr(load->msg, "BACKCHANNEL_TIMEOUT") &&
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
	const char *env = getenv("BACKCHANNEL_AGENT");

	if (!d->cfg.agent[0]) {
		init_cmd(d, NULL, fix, sizeof fix);
		snprintf(d->id_fix, sizeof d->id_fix, "%s", fix);
		if (env && *env && !name_valid(env))
			add(d, FAIL, "identity", "unset BACKCHANNEL_AGENT, or set "
			    "it to a valid name", "none — BACKCHANNEL_AGENT, "
			    "which comes before config.json, is no valid name");
		else
			add(d, FAIL, "identity", fix, "none — neither config.json "
			    "nor BACKCHANNEL_AGENT names one");
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
	} else if (strcmp(a.name, d->cfg.agent) != 0) {
		snprintf(d->id_fix, sizeof d->id_fix, "%s", fix);
		add(d, FAIL, what, fix, "record agents/%s.json names \"%s\" — "
		    "ignored, as if there were none", d->cfg.agent, a.name);
		agent_free(&a);
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
	if (strcmp(key, "HOME") == 0 && *v && *v != '/') {
		add(d, FAIL, what, "set BACKCHANNEL_HOME to a full path",
		    "%s is not an absolute path: each directory would have a "
		    "spool of its own", v);
		return;
	}
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
	if (strcmp(key, "TIMEOUT") == 0) {
		if (config_parse_timeout(v) < 0)
			add(d, FAIL, what, "unset BACKCHANNEL_TIMEOUT, or set it "
			    "to a number of seconds from 1 to 3600", "%s is not "
			    "a whole number of seconds from 1 to 3600", v);
		else
			add(d, OK, what, NULL, "%s s for the relay to answer", v);
		return;
	}
	if (strcmp(key, "ROOM_TOKEN") == 0) {
		add(d, OK, what, NULL, "set (read by bch-relayd only)");
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

/* --- main ------------------------------------------------------------------------ */

static void
whoami_setup(struct doc *d)
{
	struct passwd *pw = getpwuid(getuid());

	if (pw && pw->pw_name && name_valid(pw->pw_name))
		snprintf(d->user, sizeof d->user, "%s", pw->pw_name);
	else
		snprintf(d->user, sizeof d->user, "%ld", (long)getuid());
	claim_host(d->host, sizeof d->host);
}

/* --release names a host, as claims carry it, that is not this one:
 * else one line saying why, and 1. */
static int
release_bad(struct doc *d)
{
	size_t m, n = strlen(d->release);
	const char *ns = strstr(d->host, "-pidns-");

	m = ns ? (size_t)(ns - d->host) : strlen(d->host);
	if (!doctor_host_valid(d->release)) {
		fprintf(stderr, "bch-doctor: --release %s: not a host name as "
		    "claims carry it (letters, digits, '-' and '_')\nusage: "
		    "%s\n", d->release, usage);
		return 1;
	}
	if (n == m && memcmp(d->release, d->host, m) == 0) {
		fprintf(stderr, "bch-doctor: --release %s: that is this machine "
		    "— bch doctor --fix returns its claims whose reader died\n",
		    d->release);
		return 1;
	}
	return 0;
}

/* Every check, in the order they are shown. */
static void
check_all(struct doc *d)
{
	struct err e = { 0, 0, "" };
	int loaded = config_load(&d->cfg, &e) == 0;

	if (!loaded)
		config_env(&d->cfg);
	if (!d->cfg.home[0]) {
		add(d, FAIL, "home", "export HOME=/home/<you>", "neither "
		    "BACKCHANNEL_HOME nor HOME is set");
	} else {
		check_home(d);
		check_config(d, loaded ? NULL : &e);
		check_identity(d);
		check_env(d);
		check_spool(d);
		check_relay(d);
	}
	check_harnesses(d);
	check_wake(d);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, 0, 'j' },
		{ "fix", no_argument, 0, 'f' },
		{ "release", required_argument, 0, 'r' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct doc d;
	int ch;
	size_t i;

	memset(&d, 0, sizeof d);
	err_prog("bch-doctor");
	opterr = 0;
	while ((ch = getopt_long(argc, argv, "hjfr:", opts, NULL)) != -1) {
		switch (ch) {
		case 'j': d.json = 1; break;
		case 'f': d.fix = 1; break;
		case 'r': d.release = optarg; break;
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
	if (d.release && release_bad(&d))
		return BCH_USAGE;
	check_all(&d);
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
