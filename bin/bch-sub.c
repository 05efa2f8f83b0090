/* bch-sub: subscribe this agent to channels, or with --unsubscribe
 * (bch unsub) take it off them. The record is rewritten atomically
 * under a lock, so concurrent calls keep each other's changes. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] = "bch-sub [--unsubscribe] <#channel>...";

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "unsubscribe", no_argument, 0, 'u' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	static struct cli c; /* reachable until exit, as exit(3) leaves it */
	int ch, on = 1, i, rc;

	cli_init(&c, "bch-sub");
	while ((ch = getopt_long(argc, argv, "hu", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': on = 0; break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: cli_bad_option(&c, usage, argv, opts);
		}
	}
	if (optind == argc)
		cli_usage(&c, usage, "missing channel");
	cli_open(&c, 1);
	for (i = optind; i < argc; i++) {
		char chan[NAME_MAX_LEN + 2];
		const char *name = argv[i] + (argv[i][0] == '#');
		if (strlen(name) > NAME_MAX_LEN) {
			err_set(&c.e, BCH_PERM, "channel name too long (at most 64)");
			cli_fail(&c);
		}
		snprintf(chan, sizeof chan, "#%s", name);
		rc = spool_subscribe(c.sp, c.cfg.agent, chan, on, &c.e);
		if (rc < 0)
			cli_fail(&c);
		if (on)
			printf(rc ? "subscribed %s to %s\n" :
			    "%s is already subscribed to %s\n", c.cfg.agent, chan);
		else
			printf(rc ? "unsubscribed %s from %s\n" :
			    "%s was not subscribed to %s\n", c.cfg.agent, chan);
	}
	if (fflush(stdout) != 0) {
		err_sys(&c.e, "cannot write to standard output");
		cli_fail(&c);
	}
	cli_close(&c);
	return 0;
}
