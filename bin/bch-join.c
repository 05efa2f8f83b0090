/* bch-join: accept a bch1- invite (PROTOCOL.md 6): register on its relay
 * under the chosen name, keep the personal token, subscribe to the
 * invite's channels, then configure the harnesses (bch-setup).
 *
 * Design rationale. The room token is used for the one registration
 * request and kept nowhere: not in config.json, not in tokens/, not on a
 * command line (so registration is done here with the library rather
 * than by running bch-init with --token). The invite itself may be
 * read from standard input ("-") to keep it out of ps too. As bch init
 * does, a process with BACKCHANNEL_AGENT set leaves an existing default
 * identity alone and keeps the token in tokens/<name>; then bch-setup
 * gets that name in BACKCHANNEL_AGENT, for the wake service; when name
 * becomes the default, bch-setup gets no BACKCHANNEL_AGENT. bch-setup
 * is the last step and replaces this process (execv, an argv array). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agent.h"
#include "cli.h"
#include "install.h"
#include "invite.h"
#include "io.h"
#include "show.h"
#include "url.h"

static const char usage[] =
    "bch-join <invite | -> --as name [--no-hooks] [--wake]";

static char *
read_invite(struct cli *c, const char *arg)
{
	struct buf b = BUF_INIT;

	if (strcmp(arg, "-") != 0)
		return xstrdup(arg);
	if (io_readfd(0, INVITE_WRAPPED_MAX + 64, &b) < 0) {
		err_set(&c->e, BCH_PERM, "cannot read the invite from standard "
		    "input (over %d bytes, or a read error)",
		    INVITE_WRAPPED_MAX);
		cli_fail(c);
	}
	/* Read as a string, it would end at the NUL: what follows would be
	 * dropped unseen. */
	if (b.len && memchr(b.p, 0, b.len)) {
		err_set(&c->e, BCH_PERM, "the invite on standard input holds a "
		    "NUL byte — copy it whole, on one line");
		cli_fail(c);
	}
	return b.p ? b.p : xstrdup("");
}

/* The relay refused to register name, or was never reached: a token
 * kept for it that is not its token there (dead: chosen now, or refused
 * by the relay) is no one's (kept, it would stand in the way of joining
 * another relay as name, as after an invite with a mistyped address).
 * Only a failure after the relay may have heard of it keeps the token,
 * for a retry to offer. */
static void
refused(struct cli *c, const char *name, int dead)
{
	struct err e;

	if (dead && (c->e.code == BCH_PERM || !c->sp->reached) &&
	    config_forget_token(&c->cfg, name, &e) < 0)
		fprintf(stderr, "bch-join: %s\n", e.msg);
	if (c->e.status == 409)
		err_set(&c->e, BCH_PERM, "the name %s is taken on this relay — "
		    "join with another --as name", name);
	cli_fail(c);
}

/* Register name with the name's own token if we have one for this
 * relay (a second join refreshes), else with the room token, under the
 * token kept for name or a new one kept first. A token kept for another
 * relay, or for this one under another key pin, is never sent: it is a
 * password there, and the pin is what tells this relay from an
 * impostor at its address. The personal token. */
static char *
enrol(struct cli *c, const struct invite *inv, const char *name)
{
	struct agent_rec rec;
	char *own, *token;
	int fresh, rc = -1, dead;

	if (config_token_check(&c->cfg, name, inv->url, c->cfg.pin, &own,
	    &c->e) < 0)
		cli_fail(c);
	dead = fresh = !own;
	/* Kept before the relay hears of it: a save that fails then costs
	 * nothing, and a retry after a failure further on offers the same
	 * token, which the relay answers as a retry (200) instead of
	 * finding the name taken. */
	if (fresh && !(own = config_choose_token(&c->cfg, name, inv->url,
	    c->cfg.pin, &c->e)))
		cli_fail(c);
	free(c->cfg.token);
	c->cfg.token = NULL;
	cli_open(c, 0);
	if (!fresh) {
		c->cfg.token = own;
		rc = spool_register(c->sp, name, &rec, &c->e);
		c->cfg.token = NULL;
		if (rc < 0 && c->e.status != 401 && c->e.status != 403)
			cli_fail(c);
		/* Not name's token on this relay (a join that failed before
		 * the relay heard of it kept it): no one's if refused below. */
		dead = rc < 0;
		if (rc == 0) { /* a refresh: the token is the one we have */
			free(rec.token);
			rec.token = xstrdup(own);
		}
	}
	if (rc < 0) {
		c->cfg.token = inv->token;
		c->cfg.chosen = own;
		rc = spool_register(c->sp, name, &rec, &c->e);
		c->cfg.token = c->cfg.chosen = NULL;
		if (rc < 0)
			refused(c, name, dead);
	}
	free(own);
	if (!rec.token || !*rec.token || strcmp(rec.token, inv->token) == 0) {
		agent_free(&rec);
		err_set(&c->e, BCH_PERM, "the relay answered without a personal "
		    "token — it is not a backchannel relay, or too old");
		refused(c, name, dead);
	}
	token = rec.token;
	rec.token = NULL;
	agent_free(&rec);
	return token;
}

static void
save(struct cli *c, const struct invite *inv, const char *name,
    const char *token, int keep_default)
{
	if (io_mkdirs(c->cfg.home, 0700) < 0) {
		err_sys(&c->e, "cannot create %s", c->cfg.home);
		cli_fail(c);
	}
	/* The pin the relay was trusted by (point_at: the invite's, else
	 * BACKCHANNEL_PIN's), in config.json as in tokens/.relay/<name>. */
	if ((!keep_default && config_save(&c->cfg, name, inv->url, token,
	    c->cfg.pin, &c->e) < 0) ||
	    config_save_token(&c->cfg, name, token, inv->url, c->cfg.pin,
	    &c->e) < 0)
		cli_fail(c);
}

static void
subscribe(struct cli *c, const struct invite *inv, const char *name)
{
	size_t i;
	int rc;

	for (i = 0; i < inv->nchannels; i++) {
		rc = spool_subscribe(c->sp, name, inv->channels[i], 1, &c->e);
		if (rc < 0)
			cli_fail(c);
		printf(rc ? "subscribed %s to %s\n" :
		    "%s is already subscribed to %s\n", name, inv->channels[i]);
	}
}

static void
run_setup(struct cli *c, const char *argv0, const char *name,
    int keep_default, int nohooks, int wake)
{
	char bindir[PATH_MAX], setup[PATH_MAX];
	char *args[4];
	int n = 0;

	args[n++] = "bch-setup";
	if (nohooks)
		args[n++] = "--no-hooks";
	if (wake)
		args[n++] = "--wake";
	args[n] = NULL;
	if (fflush(stdout) != 0) {
		err_sys(&c->e, "cannot write to standard output");
		cli_fail(c);
	}
	if ((install_bindir(argv0, bindir, sizeof bindir) < 0 ||
	    !install_prog(bindir, "bch-setup", setup, sizeof setup)) &&
	    !install_prog(NULL, "bch-setup", setup, sizeof setup)) {
		err_set(&c->e, BCH_TEMP, "joined, but bch-setup is not "
		    "installed — install it, then run bch setup");
		cli_fail(c);
	}
	/* Else name is the default identity now: a BACKCHANNEL_AGENT that
	 * names another would have the wake service watch that one. */
	if ((keep_default ? setenv("BACKCHANNEL_AGENT", name, 1) :
	    unsetenv("BACKCHANNEL_AGENT")) < 0) {
		err_sys(&c->e, "cannot set BACKCHANNEL_AGENT");
		cli_fail(c);
	}
	cli_close(c);
	execv(setup, args);
	fprintf(stderr, "bch-join: joined, but cannot run %s — run bch setup "
	    "yourself\n", setup);
	exit(BCH_TEMP);
}

/* What the command line asks for. */
struct opts {
	const char *invite, *name;
	int nohooks, wake;
};

static void
parse_opts(struct cli *c, struct opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "as", required_argument, 0, 'a' },
		{ "no-hooks", no_argument, 0, 'N' },
		{ "wake", no_argument, 0, 'w' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int ch;

	memset(o, 0, sizeof *o);
	while ((ch = getopt_long(argc, argv, "ha:Nw", opts, NULL)) != -1) {
		switch (ch) {
		case 'a': o->name = optarg; break;
		case 'N': o->nohooks = 1; break;
		case 'w': o->wake = 1; break;
		case 'h': printf("usage: %s\n", usage); exit(0);
		default: cli_bad_option(c, usage, argv, opts);
		}
	}
	if (optind != argc - 1)
		cli_usage(c, usage, optind == argc ? "missing the invite" :
		    "too many arguments (one invite)");
	if (!o->name)
		cli_usage(c, usage, "missing --as <name> (who you are on the "
		    "relay)");
	o->invite = argv[optind];
}

/* From here on, speak to the invite's relay as name. */
static void
point_at(struct cli *c, const struct invite *inv, const char *name)
{
	snprintf(c->cfg.agent, sizeof c->cfg.agent, "%s", name);
	free(c->cfg.url);
	c->cfg.url = xstrdup(inv->url);
	if (inv->pin) {
		free(c->cfg.pin);
		c->cfg.pin = xstrdup(inv->pin);
	} else if (!getenv("BACKCHANNEL_PIN")) {
		free(c->cfg.pin); /* the pin of another relay */
		c->cfg.pin = NULL;
	} else if (!invite_pin_valid(c->cfg.pin)) {
		/* It is kept (save()), so it must be one. */
		err_set(&c->e, BCH_PERM, "BACKCHANNEL_PIN is not 64 hex digits "
		    "— unset it, or set it to the relay's key pin");
		cli_fail(c);
	}
}

static void
say_joined(const struct cli *c, const struct invite *inv, const char *name,
    int keep_default)
{
	struct buf room = BUF_INIT;

	if (inv->room) { /* another's text: shown with its hidden bytes */
		show_text(&room, inv->room, 0);
		printf("joined %s as %s via %s\n", room.p, name, inv->url);
		buf_free(&room);
	} else
		printf("joined as %s via %s\n", name, inv->url);
	url_warn_clear("bch-join", inv->url);
	if (keep_default)
		printf("default identity stays %s (this one is used where "
		    "BACKCHANNEL_AGENT=%s)\n", c->cfg.file_agent, name);
	else if (c->cfg.file_agent[0] && strcmp(c->cfg.file_agent, name) != 0)
		/* The hooks read another inbox from now on: said, not done
		 * silently. */
		printf("default identity is now %s (was %s)\n", name,
		    c->cfg.file_agent);
}

int
main(int argc, char **argv)
{
	static struct cli c; /* reachable until exit, as exit(3) leaves it */
	struct invite inv;
	struct opts o;
	char *text, *token;
	int keep_default;

	cli_init_repair(&c, "bch-join");
	parse_opts(&c, &o, argc, argv);
	if (!name_valid(o.name)) {
		err_set(&c.e, BCH_PERM, "invalid agent name — use letters, "
		    "digits, '.', '_' and '-', starting with a letter or "
		    "digit, at most 64");
		cli_fail(&c);
	}
	text = read_invite(&c, o.invite);
	if (invite_decode(text, &inv, &c.e) < 0)
		cli_fail(&c);
	free(text);
	keep_default = c.cfg.agent_from_env && c.cfg.file_agent[0] &&
	    strcmp(c.cfg.file_agent, o.name) != 0;
	point_at(&c, &inv, o.name);
	token = enrol(&c, &inv, o.name);
	save(&c, &inv, o.name, token, keep_default);
	c.cfg.token = token;
	say_joined(&c, &inv, o.name, keep_default);
	subscribe(&c, &inv, o.name);
	invite_free(&inv);
	if (!o.nohooks || o.wake)
		run_setup(&c, argv[0], o.name, keep_default, o.nohooks, o.wake);
	if (fflush(stdout) != 0) {
		err_sys(&c.e, "cannot write to standard output");
		cli_fail(&c);
	}
	cli_close(&c);
	return 0;
}
