/* bch-send: deliver one message given as arguments, or many given as
 * JSON lines on standard input.
 *
 * Design rationale. On stdin each line is one send request
 * ({"to","body","priority"?,"scope"?,"thread"?,"refs"?,"id"?}); a bad
 * line is reported with its number and skipped, the rest go through, and
 * the exit status says the worst that happened. Directory syncs are
 * batched: "sent" lines are printed only after the sync that makes them
 * durable, so a line on stdout is a promise; a batch ends when the input
 * pauses, at 4096 sends or after 100 ms. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "io.h"

static const char usage[] =
    "bch-send <@agent|#channel> <message words...> [--urgent] [--scope s] "
    "[--thread id] [--ref r]... [--wait[=seconds]] | "
    "bch-send [--wait[=seconds]] < requests.jsonl";

struct opts {
	int wait;     /* seconds to wait for receipts, or -1 for no wait */
	int urgent;
	const char *scope, *thread;
	char **refs;
	size_t nrefs;
};

/* Sends to wait for: each id with the recipients it went to. */
struct pending {
	char id[ID_MAX_LEN + 1];
	char **rcpt;
	size_t n;
};

static struct pending *pend;
static size_t npend;
/* The batch on stdin stopped at a relay found down: waiting on it for
 * the sends before would only fail again, after a second error. */
static int stopped;

static void
remember(struct spool *sp, const char *id)
{
	struct pending *p;
	size_t i;

	pend = xrealloc(pend, (npend + 1) * sizeof *pend);
	p = &pend[npend++];
	snprintf(p->id, sizeof p->id, "%s", id);
	p->rcpt = xcalloc(sp->nrcpt + 1, sizeof *p->rcpt);
	for (i = 0; i < sp->nrcpt; i++)
		p->rcpt[i] = xstrdup(sp->rcpt[i]);
	p->n = sp->nrcpt;
}

/* Block until every remembered send was claimed by each of its
 * recipients, or seconds pass, counted on the monotonic clock in ms (a
 * deadline in whole seconds of time() came up to a second early for a
 * later message once the second turned in an earlier wait). 0,
 * BCH_TEMP on a timeout, -1 on error.
 * named: the sends came from stdin, so each "read" line names its
 * message, as the "sent" lines do ("read by bob" alone is ambiguous). */
static int
await_all(struct cli *c, int seconds, int named)
{
	struct buf out = BUF_INIT;
	struct timespec t0;
	size_t i, k;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < npend; i++) {
		struct pending *p = &pend[i];
		int *got = xcalloc(p->n + 1, sizeof *got), r;
		long left = (long)seconds * 1000 - io_ms_since(&t0);
		r = spool_await(c->sp, p->id, p->rcpt, p->n,
		    left > 0 ? (int)left : 0, got, &c->e);
		if (r < 0) {
			free(got);
			buf_free(&out);
			return -1;
		}
		for (k = 0; k < p->n; k++)
			if (got[k] && named)
				buf_printf(&out, "read %.8s by %s\n", p->id,
				    p->rcpt[k]);
			else if (got[k])
				buf_printf(&out, "read by %s\n", p->rcpt[k]);
		if (!r) {
			struct buf who = BUF_INIT;
			for (k = 0; k < p->n; k++)
				if (!got[k])
					buf_printf(&who, "%s%s", who.len ? ", " : "",
					    p->rcpt[k]);
			fprintf(stderr, "%s: %.8s not read by %s after %d s — it "
			    "stays queued\n", c->prog, p->id, who.p, seconds);
			buf_free(&who);
			rc = BCH_TEMP;
		}
		free(got);
	}
	if (cli_write(&out) < 0)
		rc = err_sys(&c->e, "cannot write to standard output");
	buf_free(&out);
	return rc;
}

static void
sent_line(struct buf *out, const struct msg *m, int n)
{
	(void)n;
	buf_printf(out, "sent %.8s to %s\n", m->id, m->to);
}

/* Standard output failed (errno) after what it was to report was sent:
 * say so, lest a script that reads only the exit status send it again.
 * what: the message, or the lines, that went all the same. */
static void
out_failed(struct cli *c, const char *what)
{
	int saved = errno;

	err_set(&c->e, err_temporary(saved) ? BCH_TEMP : BCH_PERM,
	    "cannot write to standard output: %s — %s", strerror(saved),
	    what);
}

/* Make the sends of stdin up to line lineno durable and say so. */
static int
flush_sent(struct cli *c, struct buf *out, long lineno)
{
	char what[160];

	if (spool_sync(c->sp, &c->e) < 0)
		return -1;
	if (cli_write(out) < 0) {
		snprintf(what, sizeof what, "stopped after line %ld: the "
		    "lines up to it were sent all the same, but for those "
		    "reported above", lineno);
		out_failed(c, what);
		return -1;
	}
	buf_reset(out);
	return 0;
}

static int
send_args(struct cli *c, int argc, char **argv, const struct opts *o)
{
	struct buf body = BUF_INIT, out = BUF_INIT;
	struct msg m;
	int i, n;

	for (i = 1; i < argc; i++) {
		if (i > 1)
			buf_addc(&body, ' ');
		buf_adds(&body, argv[i]);
	}
	if (argc == 2 && strcmp(argv[1], "-") == 0) {
		buf_reset(&body);
		if (io_readfd(0, c->cfg.lim.body, &body) < 0) {
			err_sys(&c->e, "cannot read the body from standard input");
			if (c->e.code == BCH_PERM)
				err_set(&c->e, BCH_PERM, "body is over the limit of "
				    "%zu bytes — send a path or URL in --ref instead",
				    c->cfg.lim.body);
			return -1;
		}
		/* Read as bytes but kept as a C string: a NUL would end it. */
		if (body.len && memchr(body.p, 0, body.len)) {
			buf_free(&body);
			return err_set(&c->e, BCH_PERM, "the body on standard "
			    "input holds NUL — a body must be a string "
			    "without NUL");
		}
	}
	memset(&m, 0, sizeof m);
	m.from = xstrdup(c->cfg.agent);
	m.to = xstrdup(argv[0]);
	m.body = body.p ? body.p : xstrdup("");
	m.urgent = o->urgent;
	m.scope = o->scope && *o->scope ? xstrdup(o->scope) : NULL;
	m.thread = o->thread && *o->thread ? xstrdup(o->thread) : NULL;
	m.refs = xcalloc(o->nrefs + 1, sizeof *m.refs);
	for (m.nrefs = 0; m.nrefs < o->nrefs; m.nrefs++)
		m.refs[m.nrefs] = xstrdup(o->refs[m.nrefs]);
	n = spool_send(c->sp, &m, &c->e);
	if (n >= 0) {
		if (o->wait >= 0)
			remember(c->sp, m.id);
		sent_line(&out, &m, n);
		/* It is delivered: a failure here must not read as "try
		 * again", which would send it twice. */
		if (cli_write(&out) < 0)
			n = err_set(&c->e, BCH_PERM, "sent %.8s to %s, but cannot "
			    "write that to standard output (%s) — it is "
			    "delivered, do not send it again", m.id, m.to,
			    strerror(errno));
	}
	msg_free(&m);
	buf_free(&out);
	return n < 0 ? -1 : 0;
}

/* The longest line of stdin taken as a request. JSON may spell any byte
 * of a message as a six-byte \uXXXX escape, so a request for a message
 * within the limit of an encoded message can be six times as long; the
 * decoded message's own limits (body, then the encoded whole) decide
 * after. Bounded, since the line is held whole before it is decoded. */
static size_t
line_max(const struct limits *l)
{
	return l->total > SIZE_MAX / 6 ? SIZE_MAX : 6 * l->total;
}

/* A send failed for a reason no later line escapes: the relay is
 * unreachable, or failing for now (not a full inbox, 507). Each line
 * after would wait out the same retries, one after the other. */
static int
relay_down(const struct cli *c, const struct err *e)
{
	return c->cfg.url && e->code == BCH_TEMP && e->status != 507;
}

/* Send line lineno of stdin (toolong: it was cut at the limit), adding
 * its "sent" line to out, or saying on stderr why not and raising
 * *worst. 1 sent, 0 not, -1 not and the rest cannot be either. */
static int
send_line(struct cli *c, const struct buf *line, long lineno, int toolong,
    int wait, struct buf *out, int *worst)
{
	struct limits lim = c->cfg.lim;
	struct msg m;
	struct err e;
	int n, code = BCH_PERM;
	/* A byte order mark opening the input, as some Windows tools
	 * write, is not part of the request (RFC 8259 8.1 lets it go). */
	size_t skip = lineno == 1 && line->len >= 3 &&
	    memcmp(line->p, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;

	lim.total = line_max(&c->cfg.lim);
	if (toolong) {
		fprintf(stderr, "%s: line %ld: over the limit of %zu bytes "
		    "— skipped\n", c->prog, lineno, lim.total);
	} else if (line->len - skip == 0 ||
	    strspn(line->p + skip, " \t\r") == line->len - skip) {
		return 0;
	} else if (msg_decode(line->p + skip, line->len - skip, 1, &lim, &m,
	    &e) < 0) {
		fprintf(stderr, "%s: line %ld: %s — skipped\n", c->prog,
		    lineno, e.msg);
	} else {
		free(m.from);
		m.from = xstrdup(c->cfg.agent);
		if ((n = spool_send(c->sp, &m, &e)) >= 0) {
			if (wait >= 0)
				remember(c->sp, m.id);
			sent_line(out, &m, n);
		} else if (relay_down(c, &e)) {
			/* The relay may have taken this one and not got its
			 * answer back (a timeout, a cut connection). */
			fprintf(stderr, "%s: line %ld: %s — stopped: no line "
			    "after it was sent, and this one may not have "
			    "been\n", c->prog, lineno, e.msg);
			code = -1;
		} else {
			fprintf(stderr, "%s: line %ld: %s\n", c->prog, lineno,
			    e.msg);
			code = e.code;
		}
		msg_free(&m);
		if (n >= 0)
			return 1;
		if (code < 0) {
			*worst = BCH_TEMP;
			return -1;
		}
	}
	if (code > *worst)
		*worst = code;
	return 0;
}

static int
send_stdin(struct cli *c, int wait)
{
	struct buf line = BUF_INIT, out = BUF_INIT;
	struct io_lines in = { .fd = 0 };
	struct timespec first; /* of the sends not yet acknowledged */
	size_t max = line_max(&c->cfg.lim);
	long lineno = 0;
	int rc, sent, toolong, worst = 0, pending = 0;

	c->sp->batch = 1;
	for (;;) {
		/* Sync and acknowledge what is sent before waiting for more:
		 * a slow stream is acknowledged line by line, a fast one in
		 * groups of up to 4096 with one sync each, and none waits
		 * more than 100 ms (the sends may be slower than the input:
		 * an fsync each). */
		if (pending && (pending >= 4096 || io_ms_since(&first) >= 100 ||
		    !io_lines_ready(&in, max))) {
			if (flush_sent(c, &out, lineno) < 0) {
				rc = -2;
				break;
			}
			pending = 0;
		}
		rc = io_lines_next(&in, &line, max, &toolong);
		if (rc != 1)
			break;
		sent = send_line(c, &line, ++lineno, toolong, wait, &out,
		    &worst);
		if (sent < 0) {
			rc = 0;
			stopped = 1;
			lineno--; /* the last line sent, for flush_sent() */
			break;
		}
		if (sent && pending++ == 0)
			clock_gettime(CLOCK_MONOTONIC, &first);
	}
	if (rc == -2) /* flush_sent() failed */
		worst = -1;
	else if (rc < 0)
		worst = err_sys(&c->e, "cannot read standard input");
	else if (flush_sent(c, &out, lineno) < 0)
		worst = -1;
	buf_free(&line);
	buf_free(&out);
	io_lines_free(&in);
	return worst;
}

/* The seconds of --wait. Its value is optional, so "--wait 30" would
 * leave 30 to the message and wait the default: a number right after a
 * bare --wait is refused rather than guessed at. */
static int
wait_arg(struct cli *c, int argc, char **argv)
{
	const char *next = optind < argc ? argv[optind] : "";

	if (optarg)
		return (int)cli_num(c, usage, "--wait", optarg, 1, 86400);
	if (*next && strspn(next, "0123456789") == strlen(next))
		cli_usage(c, usage, "--wait %s is ambiguous — write --wait=%s "
		    "to wait %s s, or quote the number into the message",
		    next, next, next);
	return 300;
}

int
main(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "urgent", no_argument, 0, 'u' },
		{ "scope", required_argument, 0, 's' },
		{ "thread", required_argument, 0, 't' },
		{ "ref", required_argument, 0, 'r' },
		{ "wait", optional_argument, 0, 'w' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct opts o;
	static struct cli c; /* reachable until exit, as exit(3) leaves it */
	int ch, rc;

	memset(&o, 0, sizeof o);
	o.wait = -1;
	cli_init(&c, "bch-send");
	o.refs = xcalloc((size_t)argc + 1, sizeof *o.refs);
	while ((ch = getopt_long(argc, argv, "hus:t:r:", lopts, NULL)) != -1) {
		switch (ch) {
		case 'u': o.urgent = 1; break;
		case 's': o.scope = optarg; break;
		case 't': o.thread = optarg; break;
		case 'r': o.refs[o.nrefs++] = optarg; break;
		case 'w': o.wait = wait_arg(&c, argc, argv); break;
		case 'h': printf("usage: %s\n", usage); exit(0);
		default: cli_bad_word(&c, usage, argv, lopts);
		}
	}
	cli_open(&c, 1);
	if (optind == argc) {
		if (isatty(0))
			cli_usage(&c, usage, "missing target and message");
		rc = send_stdin(&c, o.wait);
	} else if (optind == argc - 1) {
		cli_usage(&c, usage, "missing message — say something "
		    "(or - to read it from standard input)");
	} else {
		rc = send_args(&c, argc - optind, argv + optind, &o);
	}
	if (rc >= 0 && o.wait >= 0 && npend && !stopped) {
		int w = await_all(&c, o.wait, optind == argc);
		if (w < 0)
			cli_fail(&c);
		if (w > rc)
			rc = w;
	}
	if (rc < 0)
		cli_fail(&c);
	free(o.refs);
	cli_close(&c);
	return rc;
}
