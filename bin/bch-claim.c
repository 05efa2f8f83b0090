/* bch-claim: claim the messages named by id or unique id prefix (as
 * arguments, or one per line on standard input) and print them.
 *
 * Design rationale. A message is deleted (or, with --keep, moved to
 * cur/) only after its text reached standard output, as in bch-drain.
 * A name that matches nothing or more than one message is reported and
 * the others still go through; the exit status is 100 if any failed.
 * The inbox is listed once up front and again on each name it lacks:
 * ids on standard input often come from bch-watch or bch-drain --peek
 * as messages arrive, after the first listing. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io.h"
#include "show.h"

static const char usage[] =
    "bch-claim [--keep] [--json | --jsonl] <id-or-prefix>... | "
    "bch-claim [--keep] [--json | --jsonl] < ids";

enum form { HUMAN, JSON, JSONL };

/* A line of standard input longer than this is not an id. */
#define LINE_MAX_LEN 256

struct claim {
	struct cli *c;
	enum form form;
	int keep;
	size_t shown;
	struct spool_item *items;
	size_t n;
	char *taken; /* items already claimed in this run */
};

/* Index of the one item whose id starts with p; -1 none, -2 several. */
static long
find(const struct claim *k, const char *p)
{
	size_t i, len = strlen(p);
	long hit = -1;

	for (i = 0; i < k->n; i++) {
		if (strncmp(k->items[i].id, p, len) != 0 || k->taken[i])
			continue;
		if (strlen(k->items[i].id) == len)
			return (long)i;
		if (hit >= 0)
			return -2;
		hit = (long)i;
	}
	return hit;
}

/* Replace the listing with a fresh one. Messages claimed in this run
 * have left the inbox, so none is marked taken. */
static void
relist(struct claim *k)
{
	struct cli *c = k->c;

	spool_items_free(k->items, k->n);
	free(k->taken);
	k->items = NULL;
	k->n = 0;
	if (spool_list(c->sp, c->cfg.agent, &k->items, &k->n, &c->e) < 0)
		cli_fail(c);
	k->taken = xcalloc(k->n + 1, 1);
}

/* find(), listing the inbox again when p names nothing in the listing
 * held: its message may have arrived since. One listing per miss, so a
 * stream of names that are really gone costs a listing each. */
static long
locate(struct claim *k, const char *p)
{
	long i = find(k, p);

	if (i != -1)
		return i;
	relist(k);
	return find(k, p);
}

/* Take the message p names into m and sc: 0, or the exit status with
 * the reason told. A relay lists an inbox over what one answer may
 * hold in parts (spool->cut): a name past the part listed is tried as
 * a whole id, as no prefix can be matched there; failing that, the
 * user is told so, lest a prefix of a message past the part seem to
 * name none. */
static int
take_named(struct claim *k, const char *p, struct msg *m,
    struct spool_claim *sc)
{
	struct cli *c = k->c;
	long i = -1;
	int rc;

	if (!*p) {
		fprintf(stderr, "%s: empty id — give an id, or a prefix of one, "
		    "as bch inbox shows them\n", c->prog);
		return BCH_PERM;
	}
	if (strlen(p) <= ID_MAX_LEN && (i = locate(k, p)) == -1 &&
	    c->sp->cut) {
		if ((rc = spool_take_id(c->sp, c->cfg.agent, p, m, sc,
		    &c->e)) < 0)
			cli_fail(c);
		if (rc == 0)
			fprintf(stderr, "%s: no unread message %s among the "
			    "oldest the relay lists at once, nor one with that "
			    "whole id past them — past them, a prefix names "
			    "nothing: give the whole id\n", c->prog, p);
		return rc ? 0 : BCH_PERM;
	}
	if (i == -1) {
		fprintf(stderr, "%s: no unread message %.*s — see bch inbox\n",
		    c->prog, ID_MAX_LEN, p);
		return BCH_PERM;
	}
	if (i == -2) {
		fprintf(stderr, "%s: id prefix %s matches several messages — "
		    "give more of the id\n", c->prog, p);
		return BCH_PERM;
	}
	if ((rc = spool_take(c->sp, c->cfg.agent, &k->items[i], m, sc,
	    &c->e)) < 0)
		cli_fail(c);
	if (rc == 0) {
		fprintf(stderr, "%s: message %s was claimed by another reader\n",
		    c->prog, k->items[i].id);
		return BCH_PERM;
	}
	k->taken[i] = 1;
	return 0;
}

static int
claim_one(struct claim *k, const char *p)
{
	struct cli *c = k->c;
	struct spool_claim sc;
	struct buf out = BUF_INIT;
	struct msg m;
	int rc;

	if ((rc = take_named(k, p, &m, &sc)) != 0)
		return rc;
	if (k->form == HUMAN) {
		if (k->shown)
			buf_addc(&out, '\n');
		show_human(&out, &m);
	} else if (k->form == JSONL) {
		show_jsonl(&out, &m);
	} else {
		buf_adds(&out, k->shown ? ",\n" : "[\n");
		msg_encode(&m, &out);
	}
	k->shown++;
	msg_free(&m);
	if (cli_write(&out) < 0) {
		err_sys(&c->e, "cannot write to standard output");
		spool_release(c->sp, &sc, NULL);
		buf_free(&out);
		cli_fail(c);
	}
	buf_free(&out);
	if (spool_ack(c->sp, &sc, k->keep, &c->e) < 0)
		cli_fail(c);
	return 0;
}

/* Claim the ids on standard input, one a line. A line too long to be
 * an id is refused whole: read in pieces, its tail could name a message
 * nobody meant. The worst status. */
static int
claim_stdin(struct claim *k)
{
	struct buf line = BUF_INIT;
	long lineno = 0;
	int rc, worst = 0, toolong;

	while ((rc = io_readline(stdin, &line, LINE_MAX_LEN, &toolong)) > 0) {
		lineno++;
		if (toolong) {
			fprintf(stderr, "%s: line %ld: over the limit of %d bytes "
			    "— skipped\n", k->c->prog, lineno, LINE_MAX_LEN);
			worst = BCH_PERM;
			continue;
		}
		if (!line.len)
			continue;
		if (memchr(line.p, 0, line.len)) {
			fprintf(stderr, "%s: line %ld: holds NUL — skipped\n",
			    k->c->prog, lineno);
			worst = BCH_PERM;
			continue;
		}
		line.p[strcspn(line.p, "\r")] = 0;
		if (line.p[0] && (rc = claim_one(k, line.p)) > worst)
			worst = rc;
	}
	buf_free(&line);
	if (rc < 0) {
		err_sys(&k->c->e, "cannot read standard input");
		cli_fail(k->c);
	}
	return worst;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "keep", no_argument, 0, 'k' },
		{ "json", no_argument, 0, 'j' },
		{ "jsonl", no_argument, 0, 'l' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct claim k;
	static struct cli c; /* reachable until exit, as exit(3) leaves it */
	struct buf tail = BUF_INIT;
	int ch, rc, worst = 0, i;

	memset(&k, 0, sizeof k);
	k.c = &c;
	cli_init(&c, "bch-claim");
	while ((ch = getopt_long(argc, argv, "hkjl", opts, NULL)) != -1) {
		switch (ch) {
		case 'k': k.keep = 1; break;
		case 'j': k.form = JSON; break;
		case 'l': k.form = JSONL; break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default: cli_bad_option(&c, usage, argv, opts);
		}
	}
	if (optind == argc && isatty(0))
		cli_usage(&c, usage, "missing message id");
	cli_open(&c, 1);
	relist(&k);
	if (optind < argc) {
		for (i = optind; i < argc; i++)
			if ((rc = claim_one(&k, argv[i])) > worst)
				worst = rc;
	} else if ((rc = claim_stdin(&k)) > worst) {
		worst = rc;
	}
	if (k.form == JSON) {
		buf_adds(&tail, k.shown ? "\n]\n" : "[]\n");
		if (cli_write(&tail) < 0) {
			err_sys(&c.e, "cannot write to standard output");
			cli_fail(&c);
		}
		buf_free(&tail);
	}
	spool_items_free(k.items, k.n);
	free(k.taken);
	cli_close(&c);
	return worst;
}
