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

#include "agent.h"
#include "cli.h"
#include "io.h"

static const char usage[] =
    "bch-init <name> [--url relay-url --token room-token [--pin sha256]] | "
    "bch-init --whoami";

/* Register on the relay with the room token (or the name's own token to
 * refresh) and keep the personal token it answers with: in config.json
 * for the machine's default identity, else in tokens/<name>. */
static void
init_relay(struct cli *c, const char *name, int keep_default)
{
	struct agent_rec rec;
	const char *token;
	char *own = config_agent_token(&c->cfg, name), *room = c->cfg.token;
	int rc = -1;

	if (!own && c->cfg.file_token && strcmp(name, c->cfg.file_agent) == 0)
		own = xstrdup(c->cfg.file_token);
	cli_open(c, 0);
	if (own) {
		/* Registered before: refresh with the name's own token. */
		c->cfg.token = own;
		rc = spool_register(c->sp, name, &rec, &c->e);
		if (rc < 0 && c->e.status != 401 && c->e.status != 403)
			cli_fail(c);
		c->cfg.token = room;
		if (rc == 0) {
			free(rec.token);
			rec.token = xstrdup(own);
		}
	}
	if (rc < 0 && spool_register(c->sp, name, &rec, &c->e) < 0)
		cli_fail(c);
	free(own);
	if (!rec.token) {
		/* Never keep the room token as if it were ours. */
		err_set(&c->e, BCH_PERM, "the relay at %s answered without a "
		    "personal token — is it a backchannel relay?", c->cfg.url);
		cli_fail(c);
	}
	token = rec.token;
	if (io_mkdirs(c->cfg.home, 0700) < 0) {
		err_sys(&c->e, "cannot create %s", c->cfg.home);
		cli_fail(c);
	}
	if (keep_default) {
		if (config_save_token(&c->cfg, name, token, &c->e) < 0)
			cli_fail(c);
	} else if (config_save(&c->cfg, name, c->cfg.url, token, c->cfg.pin,
	    &c->e) < 0 || config_save_token(&c->cfg, name, token, &c->e) < 0) {
		cli_fail(c);
	}
	printf("initialised %s via %s\n", name, c->cfg.url);
	agent_free(&rec);
}

static void
whoami(struct cli *c)
{
	if (config_need_agent(&c->cfg, &c->e) < 0)
		cli_fail(c);
	printf("%s via %s\n", c->cfg.agent, c->cfg.url ? c->cfg.url : "local spool");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "whoami", no_argument, 0, 'w' },
		{ "url", required_argument, 0, 'u' },
		{ "token", required_argument, 0, 't' },
		{ "pin", required_argument, 0, 'P' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	static struct cli c; /* reachable until exit, as exit(3) leaves it */
	const char *name, *url = NULL, *token = NULL, *pin = NULL;
	int ch, who = 0, keep_default;

	/* Only a real init may set a broken config.json aside. */
	for (ch = 1; ch < argc; ch++)
		if (!strcmp(argv[ch], "--whoami") || !strcmp(argv[ch], "-w"))
			who = 1;
	if (who)
		cli_init(&c, "bch-init");
	else
		cli_init_repair(&c, "bch-init");
	while ((ch = getopt_long(argc, argv, "hwu:t:P:", opts, NULL)) != -1) {
		switch (ch) {
		case 'w': who = 1; break;
		case 'u': url = optarg; break;
		case 't': token = optarg; break;
		case 'P': pin = optarg; break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: cli_usage(&c, usage, "bad option %s (unknown, or missing its value)", argv[optind - 1]);
		}
	}
	if (who) {
		if (optind != argc)
			cli_usage(&c, usage, "--whoami takes no name");
		whoami(&c);
		cli_close(&c);
		return 0;
	}
	if (optind != argc - 1)
		cli_usage(&c, usage, optind == argc ? "missing agent name" :
		    "too many arguments");
	name = argv[optind];
	if (!name_valid(name)) {
		err_set(&c.e, BCH_PERM, "invalid agent name — use letters, "
		    "digits, '.', '_' and '-', starting with a letter or "
		    "digit, at most 64");
		cli_fail(&c);
	}
	keep_default = c.cfg.agent_from_env && c.cfg.file_agent[0] &&
	    strcmp(c.cfg.file_agent, name) != 0;
	if (url) {
		free(c.cfg.url);
		c.cfg.url = xstrdup(url);
	}
	if (pin) {
		free(c.cfg.pin);
		c.cfg.pin = xstrdup(pin);
	}
	if (token) {
		free(c.cfg.token);
		c.cfg.token = xstrdup(token);
	}
	if (c.cfg.url) {
		if (!c.cfg.token)
			cli_usage(&c, usage, "a relay needs --token (the room "
			    "token from the invite)");
		init_relay(&c, name, keep_default);
		cli_close(&c);
		return 0;
	}
	cli_open(&c, 0);
	if (spool_register(c.sp, name, NULL, &c.e) < 0)
		cli_fail(&c);
	if (!keep_default && (!c.cfg.agent_from_env || !c.cfg.file_agent[0]) &&
	    config_save(&c.cfg, name, NULL, NULL, NULL, &c.e) < 0)
		cli_fail(&c);
	printf("initialised %s via local spool\n", name);
	if (keep_default)
		printf("default identity stays %s (this one is used where "
		    "BACKCHANNEL_AGENT=%s)\n", c.cfg.file_agent, name);
	cli_close(&c);
	return 0;
}
