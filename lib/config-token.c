/* config-token: personal tokens kept under tokens/, each with the relay
 * (and key pin) it was issued by, so that no token is offered to
 * another relay; and whether two relay urls name one relay. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "config-impl.h"
#include "hash.h"
#include "io.h"
#include "url.h"

/* The first line of the file at path, or NULL. */
static char *
first_line(const char *path)
{
	struct buf b = BUF_INIT;

	if (io_readfile(AT_FDCWD, path, 4096, &b) < 0 || !b.len) {
		buf_free(&b);
		return NULL;
	}
	b.p[strcspn(b.p, "\r\n")] = 0;
	return b.p;
}

/* tokens/.relay/<agent>: the relay url tokens/<agent> was given by, so
 * that a token is never offered to another relay, and on a second line
 * the key pin that relay was trusted by (empty for none), so that it is
 * never offered to another key either; a file from before pins were
 * kept has no second line. A file of its own keeps tokens/<agent> the
 * bare token that scripts read; the leading dot keeps it apart from
 * every agent name. */
static void
relay_path(const struct config *c, const char *agent, char *path, size_t n)
{
	snprintf(path, n, "%s/tokens/.relay%s%s", c->home, agent ? "/" : "",
	    agent ? agent : "");
}

/* The relay url tokens/.relay/<agent> names, or NULL. */
static char *
token_relay(const struct config *c, const char *agent)
{
	char path[PATH_MAX + 100];

	relay_path(c, agent, path, sizeof path);
	return first_line(path);
}

void
token_origin(const struct config *c, const char *agent, struct origin *o)
{
	char path[PATH_MAX + 100], *nl;
	struct buf b = BUF_INIT;

	memset(o, 0, sizeof *o);
	relay_path(c, agent, path, sizeof path);
	if (io_readfile(AT_FDCWD, path, 4096, &b) < 0 || !b.len) {
		buf_free(&b);
		return;
	}
	nl = strchr(b.p, '\n');
	if (nl) {
		*nl++ = 0;
		o->known = *nl != 0;
		nl[strcspn(nl, "\r\n")] = 0;
		o->pin = *nl ? xstrdup(nl) : NULL;
	}
	b.p[strcspn(b.p, "\r")] = 0;
	o->url = b.p;
}

/* Do the relay urls a and b name one relay, however written: a host's
 * case, a trailing '/', a port that is the scheme's own? */
int
config_same_relay(const char *a, const char *b)
{
	struct url ua, ub;

	if (strcmp(a, b) == 0)
		return 1;
	return url_parse(&ua, a, NULL) == 0 && url_parse(&ub, b, NULL) == 0 &&
	    ua.https == ub.https && strcasecmp(ua.host, ub.host) == 0 &&
	    strcmp(ua.port, ub.port) == 0 && strcmp(ua.prefix, ub.prefix) == 0;
}

char *
config_agent_token(const struct config *c, const char *agent)
{
	char path[PATH_MAX + 100];

	snprintf(path, sizeof path, "%s/tokens/%s", c->home, agent);
	return first_line(path);
}

/* Two pins name the same key (or neither names one). */
static int
same_pin(const char *a, const char *b)
{
	return a && b ? strcasecmp(a, b) == 0 : a == b;
}

/* 1, with e saying so, if a personal token of agent is kept for
 * another relay than url (or for one not recorded), in tokens/<agent>
 * or in config.json: registering here would replace it, and with it
 * the name there, for good, as a relay keeps only its hash. */
static int
kept_elsewhere(const struct config *c, const char *agent, const char *url,
    struct err *e)
{
	char file[PATH_MAX + 100], cfg[PATH_MAX + 40];
	char *tok = config_agent_token(c, agent);
	char *kept = tok ? token_relay(c, agent) : NULL;
	int in_file = tok && (!kept || !config_same_relay(kept, url));
	int in_cfg = c->file_token && c->file_url && c->file_url[0] &&
	    strcmp(agent, c->file_agent) == 0 &&
	    !config_same_relay(c->file_url, url);

	snprintf(file, sizeof file, "%s/tokens/%s", c->home, agent);
	snprintf(cfg, sizeof cfg, "the token in %s/config.json", c->home);
	if (in_file || in_cfg)
		err_set(e, BCH_PERM, "%s already has a personal token for %s — "
		    "use another name, or remove %s%s%s to give up %s there",
		    agent, !in_file ? c->file_url : kept ? kept :
		    "a relay not recorded", in_file ? file : "",
		    in_file && in_cfg ? " and " : "", in_cfg ? cfg : "", agent);
	free(tok);
	free(kept);
	return in_file || in_cfg;
}

int
config_token_check(const struct config *c, const char *agent,
    const char *url, const char *pin, char **token, struct err *e)
{
	struct origin o;
	const char *kept_pin = NULL;
	int ok = 1;

	*token = NULL;
	if (!url)
		return 0;
	if (kept_elsewhere(c, agent, url, e))
		return -1;
	token_origin(c, agent, &o);
	if (o.url && config_same_relay(o.url, url)) {
		*token = config_agent_token(c, agent);
		/* A file from before pins were kept: config.json's word. */
		kept_pin = o.known ? o.pin : c->file_url &&
		    config_same_relay(c->file_url, url) ? c->file_pin : NULL;
	} else if (c->file_token && c->file_url &&
	    strcmp(agent, c->file_agent) == 0 &&
	    config_same_relay(c->file_url, url)) {
		*token = xstrdup(c->file_token);
		kept_pin = c->file_pin;
	}
	if (*token && !same_pin(kept_pin, pin)) {
		free(*token);
		*token = NULL;
		ok = 0;
	}
	free(o.url);
	free(o.pin);
	if (!ok)
		return err_set(e, BCH_PERM, "%s's token for %s was kept under "
		    "another key pin — not sent (is this relay an impostor?); "
		    "if its key really changed, ask its operator for the new "
		    "pin", agent, url);
	return 0;
}

int
config_save_token(const struct config *c, const char *agent,
    const char *token, const char *url, const char *pin, struct err *e)
{
	char path[PATH_MAX + 100];
	struct buf b = BUF_INIT;
	int rc;

	/* The old relay's name goes first: a failure half way leaves a
	 * token kept for no relay, never one kept for the wrong one. */
	relay_path(c, agent, path, sizeof path);
	if (unlink(path) < 0 && errno != ENOENT && errno != ENOTDIR)
		return err_sys(e, "cannot remove %s", path);
	relay_path(c, NULL, path, sizeof path);
	if (io_mkdirs(path, 0700) < 0)
		return err_sys(e, "cannot create %s", path);
	snprintf(path, sizeof path, "%s/tokens/%s", c->home, agent);
	buf_printf(&b, "%s\n", token);
	rc = io_replace(path, b.p, b.len, 1, e);
	buf_free(&b);
	if (rc < 0 || !url)
		return rc;
	relay_path(c, agent, path, sizeof path);
	buf_printf(&b, "%s\n%s\n", url, pin ? pin : "");
	rc = io_replace(path, b.p, b.len, 1, e);
	buf_free(&b);
	return rc;
}

char *
config_choose_token(const struct config *c, const char *agent,
    const char *url, const char *pin, struct err *e)
{
	char token[65];

	if (hash_random_hex(token, 32) < 0) {
		err_set(e, BCH_TEMP, "no randomness for a token — try again");
		return NULL;
	}
	if (io_mkdirs(c->home, 0700) < 0) {
		err_sys(e, "cannot create %s", c->home);
		return NULL;
	}
	if (config_save_token(c, agent, token, url, pin, e) < 0) {
		config_forget_token(c, agent, NULL); /* half kept */
		return NULL;
	}
	return xstrdup(token);
}

int
config_forget_token(const struct config *c, const char *agent,
    struct err *e)
{
	char path[PATH_MAX + 100];

	snprintf(path, sizeof path, "%s/tokens/%s", c->home, agent);
	if (unlink(path) < 0 && errno != ENOENT && errno != ENOTDIR)
		return err_sys(e, "cannot remove %s", path);
	relay_path(c, agent, path, sizeof path);
	if (unlink(path) < 0 && errno != ENOENT && errno != ENOTDIR)
		return err_sys(e, "cannot remove %s", path);
	return 0;
}

/* config.json is about to name agent: a personal token of the default
 * identity it names now that it alone holds (an older version's, or
 * the first implementation's, config.json) goes to tokens/<old> first,
 * with the relay and pin it was issued under, else it would be lost
 * for good, and the name with it on that relay. A tokens/<old> with
 * that token but no relay recorded gets config.json's. */
int
config_keep_old_token(const struct config *c, const char *agent, struct err *e)
{
	const char *old = c->file_agent;
	char *tok, *kept;
	int rc = 0;

	if (!old[0] || !c->file_token || !c->file_token[0] ||
	    strcmp(old, agent) == 0)
		return 0;
	tok = config_agent_token(c, old);
	kept = tok ? token_relay(c, old) : NULL;
	if (!tok || (!kept && c->file_url && strcmp(tok, c->file_token) == 0))
		rc = config_save_token(c, old, c->file_token, c->file_url,
		    c->file_pin, e);
	free(tok);
	free(kept);
	return rc;
}
