/* config: environment overrides over config.json, PROTOCOL.md 2. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config-impl.h"
#include "io.h"
#include "json.h"

static size_t
env_size(const char *name, size_t dflt)
{
	const char *v = getenv(name);
	char *end;
	unsigned long long n;

	if (!v || !*v)
		return dflt;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end || n == 0)
		return dflt;
	return (size_t)n;
}

/* The string member key of config.json's object into *out (NULL when
 * absent or null). One that is there but no string, or that holds NUL or
 * a lone surrogate, is an error: ignoring it would quietly send this
 * machine's mail to the local spool instead of the relay it names. */
static int
file_str(const struct json *j, const char *key, size_t max, char **out,
    const char *path, struct err *e)
{
	int i = json_get(j, 0, key);

	*out = NULL;
	if (i < 0 || json_is(j, i, "null"))
		return 0;
	if (j->t[i].type == JSON_STRING && json_string(j, i, max, out,
	    NULL) == 0)
		return 0;
	err_set(e, BCH_PERM, "%s: \"%s\" must be a string of at most %zu "
	    "bytes, without NUL — fix it or run bch init <name> again", path,
	    key, max);
	return err_status(e, 1); /* bch init may set it aside */
}

/* The most config.json may hold: load_file() reads no more. */
#define CONFIG_MAX (64 * 1024)

/* The members load_file() reads; config_save() writes them anew. */
static const char *const known[] = { "agent", "url", "token", "pin", "ca" };

/* Does key token i name one of known[] (escaped or not)? */
static int
known_key(const struct json *j, int i)
{
	size_t n, k;
	char *key;
	int hit = 0;

	if (json_string(j, i, 16, &key, &n) < 0)
		return 0; /* longer, or with a NUL: none of them */
	for (k = 0; k < sizeof known / sizeof *known; k++)
		if (strlen(known[k]) == n && memcmp(key, known[k], n) == 0)
			hit = 1;
	free(key);
	return hit;
}

/* Token i as written, a string with its quotes. */
static void
put_raw(struct buf *b, const struct json *j, int i)
{
	const struct json_tok *t = &j->t[i];
	int q = t->type == JSON_STRING;

	buf_add(b, j->s + t->start - q, (size_t)(t->end - t->start + 2 * q));
}

/* The members of config.json's object that are not known[], verbatim
 * and in their order: a rewrite by bch init or bch join keeps them. */
static char *
file_extra(const struct json *j)
{
	struct buf b = BUF_INIT;
	int i = 1, k;

	for (k = 0; k < j->t[0].size && i + 1 < j->n; k++) {
		if (!known_key(j, i)) {
			buf_adds(&b, ",\n  ");
			put_raw(&b, j, i);
			buf_adds(&b, ": ");
			put_raw(&b, j, i + 1);
		}
		i = json_next(j, i + 1);
	}
	return b.p;
}

int
config_parse_timeout(const char *v)
{
	char *end;
	long n;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	n = strtol(v, &end, 10);
	return errno || *end || n < 1 || n > 3600 ? -1 : (int)n;
}

/* Unlike a limit, a bad BACKCHANNEL_TIMEOUT is refused, not left at its
 * default: it was set to wait less (a hook) or more (a slow link), and
 * either way a silent 15 s would surprise. */
static int
load_timeout(struct config *c, struct err *e)
{
	const char *v = getenv("BACKCHANNEL_TIMEOUT");

	c->timeout = CONFIG_TIMEOUT;
	if (!v || !*v)
		return 0;
	if ((c->timeout = config_parse_timeout(v)) < 0) {
		c->timeout = CONFIG_TIMEOUT;
		return err_set(e, BCH_PERM, "BACKCHANNEL_TIMEOUT is not a whole "
		    "number of seconds from 1 to 3600 — fix or unset it");
	}
	return 0;
}

static int
load_file(struct config *c, struct err *e)
{
	char path[PATH_MAX + 16];
	struct buf b = BUF_INIT;
	struct json j;
	const char *why = NULL;
	char *agent = NULL;
	int i, rc = -1;

	snprintf(path, sizeof path, "%s/config.json", c->home);
	if (io_readfile(AT_FDCWD, path, CONFIG_MAX, &b) < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			buf_free(&b);
			return 0;
		}
		err_sys(e, "cannot read %s", path);
		buf_free(&b);
		return -1;
	}
	if (json_parse(&j, b.p, b.len, 8, &why) < 0 || j.t[0].type != JSON_OBJECT) {
		if (!why)
			json_free(&j);
		err_set(e, BCH_PERM, "%s is not valid JSON (%s) — fix it or run "
		    "bch init <name> again", path, why ? why : "not an object");
		err_status(e, 1); /* marks a broken file bch init may set aside */
		buf_free(&b);
		return -1;
	}
	i = json_get(&j, 0, "agent");
	if (i >= 0 && json_string(&j, i, NAME_MAX_LEN, &agent, NULL) == 0) {
		if (name_valid(agent))
			snprintf(c->file_agent, sizeof c->file_agent, "%s", agent);
		free(agent);
	}
	if (file_str(&j, "url", 4096, &c->file_url, path, e) < 0 ||
	    file_str(&j, "token", 4096, &c->file_token, path, e) < 0 ||
	    file_str(&j, "pin", 128, &c->file_pin, path, e) < 0 ||
	    file_str(&j, "ca", 4096, &c->file_ca, path, e) < 0)
		goto out;
	if (c->file_pin)
		c->pin = xstrdup(c->file_pin);
	if (c->file_ca)
		c->cafile = xstrdup(c->file_ca);
	c->file_extra = file_extra(&j);
	rc = 0;
out:
	json_free(&j);
	buf_free(&b);
	return rc;
}

static void
load_limits(struct config *c)
{
	limits_default(&c->lim);
	c->lim.body = env_size("BACKCHANNEL_MAX_BODY", c->lim.body);
	if (c->lim.total < c->lim.body + 32 * 1024)
		c->lim.total = c->lim.body + 32 * 1024;
	/* A reader accepts what any writer's limits allow: another process
	 * may have raised its own, and mail must not be set aside for it. */
	limits_default(&c->rlim);
	if (c->rlim.body < c->lim.body)
		c->rlim.body = c->lim.body;
	if (c->rlim.body < 1 << 20)
		c->rlim.body = 1 << 20;
	c->rlim.total = c->rlim.body + 64 * 1024;
}

/* c->home: BACKCHANNEL_HOME, else ~/.backchannel; -1 if neither is
 * usable, or it is there but not a directory. */
static int
load_home(struct config *c, struct err *e)
{
	const char *v = getenv("BACKCHANNEL_HOME");
	struct stat st;

	if (v && *v) {
		/* Relative, it would name another spool in each directory
		 * (a hook's, a service's), and "~/x" from a JSON config no
		 * shell expanded would be one of them. */
		if (*v != '/')
			return err_set(e, BCH_PERM, "BACKCHANNEL_HOME (%s) is not "
			    "an absolute path — each directory would have a "
			    "spool of its own; give the full path", v);
		if (snprintf(c->home, sizeof c->home, "%s", v) >= (int)sizeof c->home)
			return err_set(e, BCH_PERM, "BACKCHANNEL_HOME is too long");
	} else {
		const char *home = getenv("HOME");
		if (!home || !*home)
			return err_set(e, BCH_PERM,
			    "neither BACKCHANNEL_HOME nor HOME is set — set one");
		if (snprintf(c->home, sizeof c->home, "%s/.backchannel",
		    home) >= (int)sizeof c->home)
			return err_set(e, BCH_PERM, "HOME is too long");
	}
	if (stat(c->home, &st) == 0) {
		if (!S_ISDIR(st.st_mode))
			return err_set(e, BCH_PERM, "%s is not a directory — "
			    "fix BACKCHANNEL_HOME", c->home);
		return 0;
	}
	/* A symlink to a directory not made yet (dotfiles not checked
	 * out): mkdir cannot make it, and "cannot create home/agents"
	 * would not say why. */
	if (errno == ENOENT && lstat(c->home, &st) == 0 && S_ISLNK(st.st_mode))
		return err_set(e, BCH_PERM, "%s is a symlink to a directory "
		    "that does not exist — create it, or fix the symlink",
		    c->home);
	return 0;
}

/* The relay and how to trust it: the environment over config.json, and
 * over both, for an identity other than config.json's, the relay that
 * gave its token (own): that token is never shown to another relay's
 * operator. BACKCHANNEL_URL, set on purpose, wins. */
static void
load_relay(struct config *c, const char *own)
{
	const char *v = getenv("BACKCHANNEL_URL");

	c->url = xstrdup(v && *v ? v : own ? own : c->file_url ? c->file_url :
	    "");
	if (c->pin && (!c->file_url || !config_same_relay(c->url,
	    c->file_url))) {
		/* config.json's pin belongs to config.json's relay only. */
		free(c->pin);
		c->pin = NULL;
	}
	if (!*c->url) {
		free(c->url);
		c->url = NULL;
	}
	v = getenv("BACKCHANNEL_PIN");
	if (v && *v) {
		free(c->pin);
		c->pin = xstrdup(v);
	}
	v = getenv("BACKCHANNEL_CA");
	if (v && *v) {
		free(c->cafile);
		c->cafile = xstrdup(v);
	}
}

static int
load_all(struct config *c, struct err *e)
{
	struct origin o;
	const char *v;
	char *tok;
	int other;

	memset(c, 0, sizeof *c);
	load_limits(c);
	c->max_inbox = env_size("BACKCHANNEL_MAX_INBOX", 100000);
	v = getenv("BACKCHANNEL_FSYNC");
	c->fsync = !(v && strcmp(v, "0") == 0);
	c->retries = 3;
	if (load_timeout(c, e) < 0 || load_home(c, e) < 0 ||
	    load_file(c, e) < 0)
		return -1;
	v = getenv("BACKCHANNEL_AGENT");
	if (v && *v) {
		if (!name_valid(v))
			return err_set(e, BCH_PERM,
			    "BACKCHANNEL_AGENT is not a valid agent name — use "
			    "letters, digits, '.', '_' and '-'");
		snprintf(c->agent, sizeof c->agent, "%s", v);
		c->agent_from_env = 1;
	} else {
		snprintf(c->agent, sizeof c->agent, "%s", c->file_agent);
	}
	/* Another identity's relay is read only when it has a token: a
	 * local one (the prompt hook's) costs no more than it did. */
	other = c->agent[0] && strcmp(c->agent, c->file_agent) != 0;
	tok = other ? config_agent_token(c, c->agent) : NULL;
	memset(&o, 0, sizeof o);
	if (tok)
		token_origin(c, c->agent, &o);
	load_relay(c, o.url);
	/* Its relay is trusted by the pin its token was issued under. */
	v = getenv("BACKCHANNEL_PIN");
	if (o.pin && c->url && o.url && config_same_relay(c->url, o.url) &&
	    !(v && *v)) {
		free(c->pin);
		c->pin = o.pin;
		o.pin = NULL;
	}
	free(o.url);
	free(o.pin);
	v = getenv("BACKCHANNEL_TOKEN");
	if (v && *v) {
		free(tok);
		c->token = xstrdup(v);
	} else if (other) {
		c->token = tok;
	} else if (c->file_token) {
		c->token = xstrdup(c->file_token);
	}
	return 0;
}

int
config_load(struct config *c, struct err *e)
{
	if (load_all(c, e) < 0) {
		config_free(c); /* what config.json gave before the failure */
		return -1;
	}
	return 0;
}

int
config_load_repair(struct config *c, const char *prog, struct err *e)
{
	char path[PATH_MAX + 16], bad[PATH_MAX + 16];

	if (config_load(c, e) == 0)
		return 0;
	if (e->status != 1)
		return -1;
	config_free(c);
	snprintf(path, sizeof path, "%s/config.json", c->home);
	snprintf(bad, sizeof bad, "%s/config.json.bad", c->home);
	if (rename(path, bad) < 0)
		return err_sys(e, "cannot set %s aside", path);
	fprintf(stderr, "%s: %s could not be read — kept it as %s\n", prog,
	    path, bad);
	return config_load(c, e);
}

int
config_need_agent(const struct config *c, struct err *e)
{
	if (c->agent[0])
		return 0;
	return err_set(e, BCH_PERM,
	    "no identity — run bch init <name> or set BACKCHANNEL_AGENT");
}

int
config_save(const struct config *c, const char *agent, const char *url,
    const char *token, const char *pin, struct err *e)
{
	char path[PATH_MAX + 16];
	struct buf b = BUF_INIT;
	int rc;

	if (config_keep_old_token(c, agent, e) < 0)
		return -1;
	buf_adds(&b, "{\n  \"agent\": ");
	json_put_string(&b, agent, strlen(agent));
	if (url) {
		buf_adds(&b, ",\n  \"url\": ");
		json_put_string(&b, url, strlen(url));
	}
	if (token) {
		buf_adds(&b, ",\n  \"token\": ");
		json_put_string(&b, token, strlen(token));
	}
	if (pin) {
		buf_adds(&b, ",\n  \"pin\": ");
		json_put_string(&b, pin, strlen(pin));
	}
	/* The CA file written in by hand for config.json's relay stays
	 * while the relay does: dropped, the next command fails its TLS
	 * check. */
	if (c->file_ca && (url && c->file_url ?
	    config_same_relay(url, c->file_url) : !url && !c->file_url)) {
		buf_adds(&b, ",\n  \"ca\": ");
		json_put_string(&b, c->file_ca, strlen(c->file_ca));
	}
	if (c->file_extra)
		buf_adds(&b, c->file_extra);
	buf_adds(&b, "\n}\n");
	snprintf(path, sizeof path, "%s/config.json", c->home);
	/* Written past what a load reads, every command would fail on it. */
	if (b.len > CONFIG_MAX)
		rc = err_set(e, BCH_PERM, "%s would grow to %zu bytes, past the "
		    "%d it may hold — take out the members bch does not use",
		    path, b.len, CONFIG_MAX);
	else
		rc = io_replace(path, b.p, b.len, 1, e);
	buf_free(&b);
	return rc;
}

void
config_free(struct config *c)
{
	free(c->url);
	free(c->token);
	free(c->file_url);
	free(c->file_token);
	free(c->file_pin);
	free(c->file_ca);
	free(c->file_extra);
	free(c->pin);
	free(c->cafile);
	c->url = c->token = c->file_url = c->file_token = c->file_pin = NULL;
	c->file_ca = c->file_extra = NULL;
	c->pin = c->cafile = NULL;
}
