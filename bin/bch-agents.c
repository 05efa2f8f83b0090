/* bch-agents: list the agents of this spool (bch agents), or with
 * --channels the channels that have subscribers (bch channels). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "cli.h"
#include "json.h"
#include "show.h"

static const char usage[] = "bch-agents [--channels] [--json]";

static void
agents(struct cli *c, int json, struct buf *out)
{
	struct agent_rec *a;
	size_t n, i, k;

	if (spool_agents(c->sp, &a, &n, &c->e) < 0)
		cli_fail(c);
	if (json)
		buf_adds(out, "[");
	for (i = 0; i < n; i++) {
		if (json) {
			buf_adds(out, i ? ",\n" : "\n");
			agent_encode(&a[i], out, 0);
			continue;
		}
		buf_adds(out, a[i].name);
		if (strcmp(a[i].name, c->cfg.agent) == 0)
			buf_adds(out, " (you)");
		for (k = 0; k < a[i].nsubs; k++) {
			buf_adds(out, k ? " " : "  ");
			buf_adds(out, a[i].subs[k]);
		}
		buf_adds(out, "  last seen ");
		show_text(out, a[i].seen[0] ? a[i].seen : "never", 0);
		buf_addc(out, '\n');
	}
	if (json)
		buf_adds(out, n ? "\n]\n" : "]\n");
	else if (!n)
		buf_adds(out, "no agents — run bch init <name>\n");
	agent_list_free(a, n);
}

static void
channels(struct cli *c, int json, struct buf *out)
{
	char **ch;
	size_t n, i;

	if (spool_channels(c->sp, &ch, &n, &c->e) < 0)
		cli_fail(c);
	if (json)
		buf_adds(out, "[");
	for (i = 0; i < n; i++) {
		if (json) {
			if (i)
				buf_addc(out, ',');
			json_put_string(out, ch[i], strlen(ch[i]));
		} else {
			buf_adds(out, ch[i]);
			buf_addc(out, '\n');
		}
		free(ch[i]);
	}
	free(ch);
	if (json)
		buf_adds(out, "]\n");
	else if (!n)
		buf_adds(out, "no channels — bch sub #name starts one\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "channels", no_argument, 0, 'c' },
		{ "json", no_argument, 0, 'j' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	static struct cli c; /* reachable until exit, as exit(3) leaves it */
	struct buf out = BUF_INIT;
	int ch, chans = 0, json = 0;

	cli_init(&c, "bch-agents");
	while ((ch = getopt_long(argc, argv, "hcj", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': chans = 1; break;
		case 'j': json = 1; break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: cli_bad_option(&c, usage, argv, opts);
		}
	}
	if (optind != argc)
		cli_usage(&c, usage, "unexpected argument \"%s\"", argv[optind]);
	cli_open(&c, 0);
	if (chans)
		channels(&c, json, &out);
	else
		agents(&c, json, &out);
	if (cli_write(&out) < 0) {
		err_sys(&c.e, "cannot write to standard output");
		cli_fail(&c);
	}
	buf_free(&out);
	cli_close(&c);
	return 0;
}
