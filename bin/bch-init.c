/* bch-init: create or claim this machine's identity; bch-init --whoami
 * says who this process is and where its messages go.
 *
 * Design rationale. Run with BACKCHANNEL_AGENT set, init registers that
 * identity and leaves the machine's default alone when one exists: many
 * agents share one machine, and a second one's init must not turn every
 * later plain `bch send` into a send from it (PROTOCOL.md 2). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent.h"
#include "cli.h"
#include "invite.h"
#include "io.h"
#include "url.h"

static const char usage[] =
    "bch-init <name> [--url relay-url] [--token room-token] [--pin sha256] | "
    "bch-init --whoami";

/* The relay refused to register name, or was never reached: a token
 * chosen for it is no one's (kept, it would stand in the way of
 * registering name on another, as after a mistyped --url). */
static void
refused(struct cli *c, const char *name, int fresh)
{
	struct err e;

	if (fresh && (c->e.code == BCH_PERM || !c->sp->reached) &&
	    config_forget_token(&c->cfg, name, &e) < 0)
		fprintf(stderr, "bch-init: %s\n", e.msg);
	cli_fail(c);
}

/* Registering name needs the room token, and none was given: say how
 * to give it, before anything is kept (own: a token kept for name
 * before, which stays). */
static void
no_room(struct cli *c, const char *name, char *own)
{
	free(own);
	err_set(&c->e, BCH_PERM, "registering %s on %s needs the room token: "
	    "bch init %s --url %s --token <room token>, or ask for an invite",
	    name, c->cfg.url, name, c->cfg.url);
	cli_fail(c);
}

/* Register on the relay with the room token (or the name's own token to
 * refresh), under the token kept for name or a new one kept first (so
 * that a failed save sends nothing and a retry offers the same token).
 * The room token is only ever the one given (--token, BACKCHANNEL_TOKEN):
 * a personal token sent in its place is refused by the relay. The
 * personal token. */
static char *
enrol(struct cli *c, const char *name)
{
	struct agent_rec rec;
	char *own, *room = c->cfg.token, *token;
	int fresh, rc = -1;

	if (config_token_check(&c->cfg, name, c->cfg.url, c->cfg.pin, &own,
	    &c->e) < 0)
		cli_fail(c);
	fresh = !own;
	if (fresh && !room)
		no_room(c, name, own);
	if (fresh && !(own = config_choose_token(&c->cfg, name, c->cfg.url,
	    c->cfg.pin, &c->e)))
		cli_fail(c);
	cli_open(c, 0);
	if (!fresh) {
		/* Registered before: refresh with the name's own token. */
		c->cfg.token = own;
		rc = spool_register(c->sp, name, &rec, &c->e);
		c->cfg.token = room;
		if (rc < 0 && c->e.status != 401 && c->e.status != 403)
			cli_fail(c);
		if (rc == 0) {
			free(rec.token);
			rec.token = xstrdup(own);
		}
	}
	if (rc < 0 && !room)
		no_room(c, name, own);
	if (rc < 0) {
		c->cfg.chosen = own;
		rc = spool_register(c->sp, name, &rec, &c->e);
		c->cfg.chosen = NULL;
		if (rc < 0)
			refused(c, name, fresh);
	}
	free(own);
	if (!rec.token) {
		/* Never keep the room token as if it were ours. */
		err_set(&c->e, BCH_PERM, "the relay at %s answered without a "
		    "personal token — is it a backchannel relay?", c->cfg.url);
		refused(c, name, fresh);
	}
	token = rec.token;
	rec.token = NULL;
	agent_free(&rec);
	return token;
}

/* Register on the relay and keep the personal token: in config.json
 * for the machine's default identity, and in tokens/<name>. */
static void
init_relay(struct cli *c, const char *name, int keep_default)
{
	char *token = enrol(c, name);

	if (io_mkdirs(c->cfg.home, 0700) < 0) {
		err_sys(&c->e, "cannot create %s", c->cfg.home);
		cli_fail(c);
	}
	/* It keeps tokens: 0700 even if it was there more open, as a
	 * local init makes it (bch doctor says so if this fails). */
	(void)chmod(c->cfg.home, 0700);
	if ((!keep_default && config_save(&c->cfg, name, c->cfg.url, token,
	    c->cfg.pin, &c->e) < 0) ||
	    config_save_token(&c->cfg, name, token, c->cfg.url, c->cfg.pin,
	    &c->e) < 0)
		cli_fail(c);
	printf("initialised %s via %s\n", name, c->cfg.url);
	url_warn_clear("bch-init", c->cfg.url);
	free(token);
}

static void
whoami(struct cli *c)
{
	struct url u;

	/* The url is printed as it is: one that is no URL is refused. */
	if (config_need_agent(&c->cfg, &c->e) < 0 ||
	    (c->cfg.url && url_parse(&u, c->cfg.url, &c->e) < 0))
		cli_fail(c);
	printf("%s via %s\n", c->cfg.agent, c->cfg.url ? c->cfg.url : "local spool");
}

/* What the command line asks for. */
struct opts {
	const char *name, *url, *token, *pin;
	int who;
};

/* Is this bch-init --whoami? Known before the options are parsed, as
 * only a real init may set a broken config.json aside. */
static int
asks_whoami(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--whoami") || !strcmp(argv[i], "-w"))
			return 1;
	return 0;
}

/* Fill o from the command line: the options, then the name. */
static void
parse_opts(struct cli *c, struct opts *o, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "whoami", no_argument, 0, 'w' },
		{ "url", required_argument, 0, 'u' },
		{ "token", required_argument, 0, 't' },
		{ "pin", required_argument, 0, 'P' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "hwu:t:P:", opts, NULL)) != -1) {
		switch (ch) {
		case 'w': o->who = 1; break;
		case 'u': o->url = optarg; break;
		case 't': o->token = optarg; break;
		case 'P': o->pin = optarg; break;
		case 'h': printf("usage: %s\n", usage); exit(0);
		default: cli_bad_option(c, usage, argv, opts);
		}
	}
	if (o->who) {
		if (optind != argc)
			cli_usage(c, usage, "--whoami takes no name");
		return;
	}
	if (optind != argc - 1)
		cli_usage(c, usage, optind == argc ? "missing agent name" :
		    "too many arguments");
	o->name = argv[optind];
}

/* A value from the command line wins over the config's. */
static void
override(char **field, const char *value)
{
	if (!value)
		return;
	free(*field);
	*field = xstrdup(value);
}

/* The room token in cfg->token: --token, else BACKCHANNEL_TOKEN, else
 * none. The token config.json (or tokens/<agent>) gave is a personal
 * one, a password for its own name only: sent as the room token to
 * register another name, the relay refuses it (401). */
static void
room_token(struct config *cfg, const char *opt)
{
	const char *env = getenv("BACKCHANNEL_TOKEN");

	free(cfg->token);
	cfg->token = opt ? xstrdup(opt) : env && *env ? xstrdup(env) : NULL;
}

/* --url naming another relay than the configured one, without --pin:
 * the configured pin is that relay's, and would fail this one (or trust
 * a key it never had), so it goes, as bch join drops it. A pin from
 * BACKCHANNEL_PIN, set on purpose, stays. */
static void
other_relay(struct config *cfg, const char *url, const char *pin)
{
	if (!url || pin || (cfg->url && config_same_relay(cfg->url, url))
	    || getenv("BACKCHANNEL_PIN"))
		return;
	free(cfg->pin);
	cfg->pin = NULL;
}

/* Register name in the local spool. */
static void
init_local(struct cli *c, const char *name, int keep_default)
{
	cli_open(c, 0);
	if (spool_register(c->sp, name, NULL, &c->e) < 0)
		cli_fail(c);
	if (!keep_default && (!c->cfg.agent_from_env || !c->cfg.file_agent[0]) &&
	    config_save(&c->cfg, name, NULL, NULL, NULL, &c->e) < 0)
		cli_fail(c);
	printf("initialised %s via local spool\n", name);
	if (keep_default)
		printf("default identity stays %s (this one is used where "
		    "BACKCHANNEL_AGENT=%s)\n", c->cfg.file_agent, name);
}

/* A room token given (--token, BACKCHANNEL_TOKEN) shorter than any
 * relay takes (bch-relayd refuses to start with one): say so, before
 * the relay is asked or anything is saved. */
static void
room_length(struct cli *c, const struct opts *o)
{
	const char *env = getenv("BACKCHANNEL_TOKEN");

	if (!c->cfg.url || !c->cfg.token || (!o->token && !(env && *env)) ||
	    strlen(c->cfg.token) >= ROOM_TOKEN_MIN)
		return;
	err_set(&c->e, BCH_PERM, "the room token (%s) is too short — the "
	    "relay refuses one under %d characters", o->token ? "--token" :
	    "BACKCHANNEL_TOKEN", ROOM_TOKEN_MIN);
	cli_fail(c);
}

int
main(int argc, char **argv)
{
	static struct cli c; /* reachable until exit, as exit(3) leaves it */
	struct opts o;
	int keep_default;

	memset(&o, 0, sizeof o);
	o.who = asks_whoami(argc, argv);
	if (o.who)
		cli_init(&c, "bch-init");
	else
		cli_init_repair(&c, "bch-init");
	parse_opts(&c, &o, argc, argv);
	if (o.who) {
		whoami(&c);
		cli_close(&c);
		return 0;
	}
	if (!name_valid(o.name)) {
		err_set(&c.e, BCH_PERM, "invalid agent name — use letters, "
		    "digits, '.', '_' and '-', starting with a letter or "
		    "digit, at most 64");
		cli_fail(&c);
	}
	keep_default = c.cfg.agent_from_env && c.cfg.file_agent[0] &&
	    strcmp(c.cfg.file_agent, o.name) != 0;
	other_relay(&c.cfg, o.url, o.pin);
	override(&c.cfg.url, o.url);
	override(&c.cfg.pin, o.pin);
	room_token(&c.cfg, o.token);
	/* Saved, a malformed pin would fail every later command. */
	if (c.cfg.url && c.cfg.pin && !invite_pin_valid(c.cfg.pin)) {
		err_set(&c.e, BCH_PERM, "the pin (%s) is not 64 hex digits — "
		    "give the relay key's SHA-256, as bch invite prints it",
		    o.pin ? "--pin" : "BACKCHANNEL_PIN");
		cli_fail(&c);
	}
	if (o.pin && c.cfg.url && strncmp(c.cfg.url, "http://", 7) == 0) {
		err_set(&c.e, BCH_PERM, "--pin names a TLS relay's key, and %s "
		    "is plain HTTP — give the relay's https:// url", c.cfg.url);
		cli_fail(&c);
	}
	room_length(&c, &o);
	if (c.cfg.url)
		init_relay(&c, o.name, keep_default);
	else
		init_local(&c, o.name, keep_default);
	cli_close(&c);
	return 0;
}
