/* bch-drain: claim every matching unread message and print it; with
 * --peek, list them and claim nothing (bch inbox).
 *
 * Design rationale. Output is written in blocks, and the messages of a
 * block are deleted only after the block reached standard output: a
 * failed write (a closed pipe, a full disk) returns the block's claims to
 * the inbox, and a drain killed half-way leaves claims that the next
 * reader puts back. The hook form is made for a prompt hook: it prints
 * nothing when there is nothing, keeps within a byte budget (the rest
 * stays queued, and it says how many), and fences each body as untrusted
 * text under a nonce its sender cannot know. A message it can only show
 * cut stays queued for bch read, so it would come first on every prompt:
 * such messages wait until every message shown whole has had its turn,
 * and take only the room left, lest two long messages fill every prompt
 * and starve the short ones behind them.
 *
 * A long inbox must not cost memory in proportion to its messages:
 * spool_scan() hands them over one at a time, of each one wanted only
 * its ts and id go into a queue (some 20 bytes), and each message is
 * read again when its turn comes. A relay's inbox over what one answer
 * may hold is listed in parts, oldest first (spool->more): a drain
 * takes one and lists again, till it is all taken. A peek or the hook
 * form, which take none or a budget's worth, look at the first part,
 * and a drain whose match leaves a whole part untaken can get no
 * further: each says that more wait past it, never "inbox empty". */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "queue.h"
#include "scope.h"
#include "show.h"

static const char usage[] =
    "bch-drain [--peek] [--json | --jsonl | --hook | --brief] "
    "[--match scope | --here] [--budget bytes]";

enum form { HUMAN, BRIEF, JSON, JSONL, HOOK };

/* Output is written, and its claims settled, a block at a time. */
#define BLOCK (64 * 1024)

/* A budget is for a prompt's context: a gigabyte is past any harness. */
#define BUDGET_MAX (1L << 30)

struct drain {
	struct cli *c;
	enum form form;
	int peek;
	const char *match;
	int here;
	size_t budget;
	struct buf out;            /* rendered, not yet written */
	struct spool_claim *held;  /* claims covered by out */
	size_t nheld, capheld;
	size_t shown;
	struct queue q;
	struct queue cut;          /* the hook form's messages shown cut */
	int cut_turn;              /* serving cut, after q */
	size_t listed;             /* messages the last listing held */
	size_t other;              /* of those, scoped to another match */
};

/* Render m (in the hook form, whole if asked); 1 when only a cut of it
 * shows. */
static int
render(struct drain *d, const struct msg *m, const char *fence, int whole)
{
	int cut = 0;

	if (d->shown && (d->form == HUMAN))
		buf_addc(&d->out, '\n');
	switch (d->form) {
	case HUMAN: show_human(&d->out, m); break;
	case BRIEF: show_brief(&d->out, m); break;
	case JSONL: show_jsonl(&d->out, m); break;
	case JSON:
		buf_adds(&d->out, d->shown ? ",\n" : "[\n");
		msg_encode(m, &d->out);
		break;
	case HOOK:
		if (d->shown)
			buf_addc(&d->out, '\n');
		cut = show_hook(&d->out, m, fence, whole ? 0 : d->budget / 2);
		break;
	}
	d->shown++;
	return cut;
}

/* Take back the message rendered last, which began at before. */
static void
unrender(struct drain *d, size_t before)
{
	d->out.len = before;
	d->out.p[before] = 0;
	d->shown--;
}

/* Write what is rendered, then settle the claims it covers. */
static int
flush(struct drain *d)
{
	struct cli *c = d->c;
	size_t i;
	int failed = 0;

	if (d->out.len && cli_write(&d->out) < 0) {
		err_sys(&c->e, "cannot write to standard output");
		failed = 1;
	}
	for (i = 0; i < d->nheld; i++) {
		struct err e;
		if (failed ? spool_release(c->sp, &d->held[i], &e) :
		    spool_ack(c->sp, &d->held[i], 0, &e))
			fprintf(stderr, "%s: %s\n", c->prog, e.msg);
	}
	d->nheld = 0;
	buf_reset(&d->out);
	return failed ? -1 : 0;
}

/* The budget less what the header and the "more waiting" line take. */
static size_t
room(const struct drain *d)
{
	return d->budget - 200;
}

static int
wanted(const struct drain *d, const struct spool_item *it)
{
	if (d->peek && !d->match)
		return 1; /* listing shows everything waiting */
	return scope_match(it->scope, d->match);
}

/* spool_scan()'s callback: keep a key of each message wanted. */
static void
want(void *arg, const struct spool_item *it)
{
	struct drain *d = arg;

	d->listed++;
	if (wanted(d, it))
		queue_add(&d->q, it->ts, it->id);
	else
		d->other++;
}

/* The next message of q, named by its id as spool_scan() allows. */
static int
next(struct queue *q, struct spool_item *it, char *name, size_t namesz)
{
	memset(it, 0, sizeof *it);
	if (!queue_next(q, it->ts, it->id))
		return 0;
	snprintf(name, namesz, "%s.json", it->id);
	it->name = name;
	return 1;
}

/* A block's worth of claims, not the whole inbox's. */
static void
hold_room(struct drain *d)
{
	if (d->nheld < d->capheld)
		return;
	d->capheld = d->capheld ? d->capheld * 2 : 64;
	d->held = xrealloc(d->held, d->capheld * sizeof *d->held);
}

/* Return the claim just taken to the inbox. */
static void
put_back(struct drain *d)
{
	struct cli *c = d->c;

	if (spool_release(c->sp, &d->held[d->nheld], &c->e) < 0)
		fprintf(stderr, "%s: %s\n", c->prog, c->e.msg);
}

/* Render m. In the hook form a message may go back to the inbox (the
 * budget is spent, or only its cut shows, or its turn is after the
 * messages shown whole): then 0, and *left counts what the next prompt
 * will show. One that cannot go back (a relay without leases deleted
 * it) is shown whole, past the budget. 1 when its claim is to be
 * settled. */
static int
place(struct drain *d, const struct spool_item *it, const struct msg *m,
    const char *fence, size_t *left)
{
	size_t before = d->out.len;
	int first = !d->shown, cut;
	int gone = !d->peek && d->held[d->nheld].gone;

	cut = render(d, m, fence, gone);
	if (d->peek || d->form != HOOK || gone)
		return 1;
	if (cut && !d->cut_turn) {
		/* Shown, if there is room, after the messages shown whole. */
		unrender(d, before);
		queue_add(&d->cut, it->ts, it->id);
		put_back(d);
		return 0;
	}
	if (first || d->out.len <= room(d)) {
		if (!cut)
			return 1; /* never the first back, or nothing would show */
		/* Shown cut: the whole text stays queued for bch read. */
		put_back(d);
		return 0;
	}
	/* Over budget: put it back for the next prompt. */
	unrender(d, before);
	(*left)++;
	put_back(d);
	return 0;
}

/* The hook form's "more waiting" line: how many it left queued, and
 * when the relay listed only the oldest messages (spool->cut), that
 * more wait past them, a number it cannot know. Past them may be
 * messages for this session even when none of the oldest was. */
static void
more_line(const struct drain *d, struct buf *b, size_t left)
{
	const char *how = d->here ? " --here" : d->match ? " --match <scope>" :
	    "";

	if (!d->c->sp->cut && left)
		buf_printf(b, "\n[backchannel] %zu more message(s) waiting — "
		    "run: bch drain%s\n", left, how);
	else if (d->c->sp->cut && !d->shown)
		buf_printf(b, "[backchannel] more messages waiting for %s than "
		    "the relay lists at once, none of the oldest for this "
		    "session — run: bch inbox\n", d->c->cfg.agent);
	else if (d->c->sp->cut && left)
		buf_printf(b, "\n[backchannel] %zu more message(s) waiting, and "
		    "more past them that the relay did not list — run: bch "
		    "drain%s\n", left, how);
	else if (d->c->sp->cut)
		buf_printf(b, "\n[backchannel] more messages waiting past these, "
		    "that the relay did not list — run: bch drain%s\n", how);
}

/* What goes around the messages: the hook form's header and its "more
 * waiting" line, JSON's brackets, or "inbox empty" (not when the relay
 * listed only the oldest: more wait past them). */
static void
frame(struct drain *d, size_t left)
{
	struct buf head = BUF_INIT;
	int cut = d->c->sp->cut;

	if (d->form == HOOK && (d->shown || cut)) {
		if (d->shown)
			buf_printf(&head, "[backchannel] %zu message(s) for %s:"
			    "\n\n", d->shown, d->c->cfg.agent);
		buf_add(&head, d->out.p, d->out.len);
		more_line(d, &head, left);
		buf_free(&d->out);
		d->out = head;
	} else if (d->form == JSON) {
		buf_adds(&d->out, d->shown ? "\n]\n" : "[]\n");
	} else if (!d->shown && !cut && (d->form == HUMAN || d->form == BRIEF)) {
		buf_adds(&d->out, "inbox empty\n");
	}
}

/* A failure part-way: write what is rendered (a JSON array closed, so
 * that what was shown parses), return every claim. */
static int
give_up(struct drain *d)
{
	size_t i;

	if (d->form == JSON && d->shown)
		frame(d, 0);
	flush(d);
	for (i = 0; i < d->nheld; i++)
		spool_release(d->c->sp, &d->held[i], NULL);
	free(d->held);
	return -1;
}

/* The hook form's failure part-way, after some messages were taken:
 * they are shown (exit 0, or a harness would not show them) and the
 * rest wait for the next prompt. */
static int
hook_partial(struct drain *d, size_t left)
{
	if (!d->shown)
		return give_up(d);
	fprintf(stderr, "%s: %s — showing the %zu message(s) taken; the rest "
	    "wait\n", d->c->prog, d->c->e.msg, d->shown);
	frame(d, left);
	if (flush(d) < 0)
		return give_up(d);
	free(d->held);
	return 0;
}

/* Show the messages of q in order, as far as the budget goes. */
static int
serve(struct drain *d, struct queue *q, const char *fence, size_t *left)
{
	struct cli *c = d->c;
	struct spool_item it;
	char name[ID_MAX_LEN + 8];

	while (next(q, &it, name, sizeof name)) {
		struct msg m;
		int rc;
		if (d->form == HOOK && d->shown && d->out.len >= room(d)) {
			(*left)++;
			continue;
		}
		hold_room(d);
		rc = d->peek ? spool_peek(c->sp, c->cfg.agent, &it, &m, &c->e) :
		    spool_take(c->sp, c->cfg.agent, &it, &m,
		    &d->held[d->nheld], &c->e);
		if (rc < 0)
			return -1;
		if (rc == 0)
			continue;
		if (place(d, &it, &m, fence, left) && !d->peek)
			d->nheld++;
		msg_free(&m);
		if (d->form != HOOK && d->out.len >= BLOCK && flush(d) < 0)
			return -1;
	}
	return 0;
}

/* The next part of an inbox a relay lists in parts into d->q, once the
 * last is taken: 1, 0 when there is none (or it would be the same), -1
 * failed. */
static int
next_part(struct drain *d)
{
	struct cli *c = d->c;

	if (d->peek || d->form == HOOK || !c->sp->more)
		return 0;
	queue_free(&d->q);
	memset(&d->q, 0, sizeof d->q);
	d->listed = 0;
	d->other = 0;
	if (spool_scan(c->sp, c->cfg.agent, want, d, &c->e) < 0)
		return -1;
	queue_sort(&d->q);
	return 1;
}

static int
drain(struct drain *d)
{
	char fence[9];
	size_t left = 0;
	int rc;

	show_fence(fence);
	queue_sort(&d->q);
	if (d->form != HOOK && d->q.n > 0)
		buf_grow(&d->out, BLOCK + BLOCK / 4); /* grown once, not doubled */
	do {
		if (serve(d, &d->q, fence, &left) < 0)
			return d->form == HOOK ? hook_partial(d, left) :
			    give_up(d);
	} while ((rc = next_part(d)) > 0);
	if (rc < 0)
		return give_up(d);
	queue_sort(&d->cut);
	d->cut_turn = 1;
	if (serve(d, &d->cut, fence, &left) < 0)
		return d->form == HOOK ? hook_partial(d, left) : give_up(d);
	frame(d, left);
	if (flush(d) < 0)
		return give_up(d);
	free(d->held);
	/* After the output, where a reader looks last. */
	if (d->c->sp->cut && d->form != HOOK)
		fprintf(stderr, "%s: more messages waiting past the oldest %zu, "
		    "all the relay lists at once — the rest are listed once "
		    "those are taken\n", d->c->prog, d->listed);
	/* Else "inbox empty" would be all that a message sent with a scope
	 * for a repository without a session gets: stranded unseen. The
	 * hook form stays silent, in every other session's prompt. */
	if (d->other && !d->c->sp->cut && !d->peek && d->form != HOOK)
		fprintf(stderr, "%s: %zu message(s) with a scope this drain "
		    "does not match left queued — bch inbox lists them, bch "
		    "read <id> claims one\n", d->c->prog, d->other);
	return 0;
}

/* Fill d from the command line; the --match argument, or NULL. */
static const char *
parse_opts(struct drain *d, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "peek", no_argument, 0, 'p' },
		{ "json", no_argument, 0, 'j' },
		{ "jsonl", no_argument, 0, 'l' },
		{ "hook", no_argument, 0, 'k' },
		{ "brief", no_argument, 0, 'b' },
		{ "match", required_argument, 0, 'm' },
		{ "here", no_argument, 0, 'H' },
		{ "budget", required_argument, 0, 'B' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct cli *c = d->c;
	const char *match = NULL;
	int ch;

	d->budget = 8000;
	while ((ch = getopt_long(argc, argv, "hpjlkbm:HB:", opts, NULL)) != -1) {
		switch (ch) {
		case 'p': d->peek = 1; break;
		case 'j': d->form = JSON; break;
		case 'l': d->form = JSONL; break;
		case 'k': d->form = HOOK; break;
		case 'b': d->form = BRIEF; break;
		case 'm': match = optarg; break;
		case 'H': d->here = 1; break;
		case 'B':
			/* 512: room() takes 200 of it, a cut body half. */
			d->budget = (size_t)cli_num(c, usage, "--budget", optarg,
			    512, BUDGET_MAX);
			break;
		case 'h': printf("usage: %s\n", usage); exit(0);
		default: cli_bad_option(c, usage, argv, opts);
		}
	}
	if (optind != argc)
		cli_usage(c, usage, "unexpected argument \"%s\"", argv[optind]);
	return match;
}

int
main(int argc, char **argv)
{
	static struct drain d; /* reachable until exit, as c is */
	static struct cli c; /* reachable until exit, as exit(3) leaves it */
	char matchbuf[4096];
	const char *match;

	memset(&d, 0, sizeof d);
	d.c = &c;
	cli_init(&c, "bch-drain");
	match = parse_opts(&d, argc, argv);
	/* A prompt hook is not made to wait out a relay that is down, at
	 * every prompt: the next prompt is its retry. */
	if (d.form == HOOK)
		c.cfg.retries = 0;
	cli_open(&c, 1);
	d.match = cli_match(&c, match, d.here, matchbuf, sizeof matchbuf);
	if (spool_scan(c.sp, c.cfg.agent, want, &d, &c.e) < 0)
		cli_fail(&c);
	if (drain(&d) < 0)
		cli_fail(&c);
	queue_free(&d.q);
	queue_free(&d.cut);
	buf_free(&d.out);
	cli_close(&c);
	return 0;
}
