/* bch-init: create or claim this machine's identity; bch-init --whoami
 * says who this process is and where its messages go.
 *
 * Design rationale. Run with BACKCHANNEL_AGENT set, init registers that
 * identity and leaves the machine's default alone when one exists: many
 * agents share one machine, and a second one's init must not turn every
 * later plain `bch send` into a send from it (PROTOCOL.md 2). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] = "bch-init <name> | bch-init --whoami";

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
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct cli c;
	const char *name, *url = NULL;
	int ch, who = 0, keep_default;

	cli_init(&c, "bch-init");
	while ((ch = getopt_long(argc, argv, "hwu:t:", opts, NULL)) != -1) {
		switch (ch) {
		case 'w': who = 1; break;
		case 'u': url = optarg; break;
		case 't': break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: cli_usage(&c, usage, "unknown option");
		}
	}
	if (who) {
		if (optind != argc)
			cli_usage(&c, usage, "--whoami takes no name");
		whoami(&c);
		return 0;
	}
	if (optind != argc - 1)
		cli_usage(&c, usage, optind == argc ? "missing agent name" :
		    "too many arguments");
	name = argv[optind];
	if (url || c.cfg.url) {
		err_set(&c.e, BCH_PERM, "relay registration (--url) needs the "
		    "relay client, which this build does not have — run "
		    "without --url for the local spool");
		cli_fail(&c);
	}
	if (!name_valid(name)) {
		err_set(&c.e, BCH_PERM, "invalid agent name — use letters, "
		    "digits, '.', '_' and '-', starting with a letter or "
		    "digit, at most 64");
		cli_fail(&c);
	}
	cli_open(&c, 0);
	if (spool_register(c.sp, name, NULL, &c.e) < 0)
		cli_fail(&c);
	keep_default = c.cfg.agent_from_env && c.cfg.file_agent[0] &&
	    strcmp(c.cfg.file_agent, name) != 0;
	if (!keep_default && (!c.cfg.agent_from_env || !c.cfg.file_agent[0]) &&
	    config_save(&c.cfg, name, NULL, NULL, &c.e) < 0)
		cli_fail(&c);
	printf("initialised %s via local spool\n", name);
	if (keep_default)
		printf("default identity stays %s (this one is used where "
		    "BACKCHANNEL_AGENT=%s)\n", c.cfg.file_agent, name);
	cli_close(&c);
	return 0;
}
