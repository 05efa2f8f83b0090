/* bch-watch: print each message the moment it lands, one JSON line each,
 * claiming it (bch watch); with --peek, show each once and leave it
 * queued.
 *
 * Design rationale. The loop is spool_wait() then spool_list(): the
 * first wait arms the inbox watch and returns at once, so messages that
 * were waiting are printed first and nothing that lands afterwards is
 * missed (the wait also wakes to look again at claims other live
 * readers hold: their claimer may die without a trace). Each message is
 * claimed, written with one write(2) (so a
 * reader sees whole lines the moment they exist), and deleted only after
 * the write succeeded; a failed write returns the claim to the inbox. A
 * standard output left O_NONBLOCK (harnesses written in Node do that) is
 * waited on with poll() when full: EAGAIN is no failure, and failing
 * there would leave half a line in the reader's stream. A
 * reader that goes away is an ordinary end, not an error: on EPIPE the
 * claim goes back and we exit 0. When standard output is a pipe we also
 * ask for SIGIO, which Linux sends to the writer when the last reader
 * closes, so an idle watcher whose reader died (bch-notify killed under
 * s6) exits at once rather than at the next message. Signals are caught
 * without SA_RESTART so that they interrupt the wait; a signal landing
 * between the flag check and poll() would otherwise go unnoticed until
 * the next message, so the handler also sets alarm(1) as a backstop.
 * JSON escapes only C0 controls, so C1 controls, bidi marks and the
 * invisible code points show_text() hides are written as \u escapes
 * too: the same string to any JSON reader, inert on a terminal. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "io.h"
#include "proc.h"
#include "scope.h"
#include "show.h"

static const char usage[] =
    "bch-watch [--peek] [--urgent-only] [--match scope | --here] [--brief] "
    "[--ready-fd fd]";

static volatile sig_atomic_t stop, outcheck;

struct seen {
	char id[ID_MAX_LEN + 1];
};

struct watch {
	struct cli *c;
	int peek, urgent, brief;
	const char *match;
	struct buf out;
	struct seen *seen; /* --peek: ids shown and still queued, sorted */
	size_t nseen;
	int took;    /* this pass claimed (or tried to) a listed message */
	int stalled; /* the last listing was a part, none of it claimed */
	struct timespec listed; /* when it was made */
	int asyncfl; /* stdout's flags before O_ASYNC, or -1 */
};

static void
on_stop(int sig)
{
	(void)sig;
	stop = 1;
	alarm(1);
}

static void
on_io(int sig)
{
	(void)sig;
	outcheck = 1;
	alarm(1);
}

static void
on_alarm(int sig)
{
	(void)sig; /* only here to interrupt poll() */
}

/* Ask the kernel for SIGIO when the reader of a pipe on stdout closes. */
static void
watch_reader(struct watch *w)
{
	struct stat st;
	int fl;

	w->asyncfl = -1;
	if (fstat(1, &st) < 0 || !S_ISFIFO(st.st_mode))
		return;
	if ((fl = fcntl(1, F_GETFL)) < 0 || fcntl(1, F_SETOWN, getpid()) < 0 ||
	    fcntl(1, F_SETFL, fl | O_ASYNC) < 0)
		return;
	w->asyncfl = fl;
}

/* Has the reader of stdout gone away? */
static int
reader_gone(void)
{
	struct pollfd p = { 1, 0, 0 };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

/* Write b in full, waiting while a non-blocking stdout is full. On a
 * signal that asks us to stop, give up only if nothing of the line went
 * out yet (a reader must never see half a line). -1 with errno on
 * failure. */
static int
put(const struct buf *b)
{
	size_t off = 0;

	while (off < b->len) {
		ssize_t n = write(1, b->p + off, b->len - off);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) &&
		    io_wait_writable(1) == 0)
			continue;
		if (n < 0) {
			if (errno == EINTR && !(stop && off == 0))
				continue;
			return -1;
		}
		off += (size_t)n;
	}
	return 0;
}

static int
wanted(const struct watch *w, const struct spool_item *it)
{
	if (w->urgent && !it->urgent)
		return 0;
	if (w->peek && !w->match)
		return 1; /* as bch inbox: a listing shows everything */
	return scope_match(it->scope, w->match);
}

/* A JSON line with the code points show_text() hides written as \uXXXX
 * escapes (a surrogate pair past U+FFFF): the same string to any JSON
 * reader, but inert on a terminal (JSON itself escapes only the C0
 * controls). They can only occur inside strings. */
static void
add_jsonl(struct buf *out, const struct msg *m)
{
	struct buf raw = BUF_INIT;
	const unsigned char *s;
	size_t i = 0, run = 0;
	unsigned long prev = 0, cp;
	int k;

	show_jsonl(&raw, m);
	s = (const unsigned char *)raw.p;
	while (i < raw.len) {
		if (s[i] == '"' || s[i] == '\\') {
			/* A string's ends and JSON escapes (\n, \", \u001b):
			 * as after an escape, nothing shown before what
			 * follows. */
			i += s[i] == '"' ? 1 : s[i + 1] == 'u' ? 6 : 2;
			prev = 0;
			continue;
		}
		cp = show_hidden_at(s + i, raw.len - i, &prev, &k);
		if (!cp) {
			i += (size_t)k;
			continue;
		}
		buf_add(out, s + run, i - run);
		if (cp > 0xffff)
			buf_printf(out, "\\u%04lx\\u%04lx",
			    0xd800 + ((cp - 0x10000) >> 10),
			    0xdc00 + ((cp - 0x10000) & 0x3ff));
		else
			buf_printf(out, "\\u%04lx", cp);
		i += (size_t)k;
		run = i;
	}
	buf_add(out, s + run, raw.len - run);
	buf_free(&raw);
}

static void
render(struct watch *w, const struct msg *m)
{
	buf_reset(&w->out);
	if (w->brief)
		show_brief(&w->out, m);
	else
		add_jsonl(&w->out, m);
}

/* A write failed: 0 if that is the reader leaving (or us being told to
 * stop), else report it and exit 111. */
static int
write_failed(struct watch *w, int saved)
{
	if (saved == EPIPE || saved == EINTR)
		return 0;
	errno = saved;
	err_sys(&w->c->e, "cannot write to standard output");
	w->c->e.code = BCH_TEMP;
	return -1;
}

/* Claim, print, then delete. 1 go on, 0 the reader went away, -1 fail. */
static int
take_one(struct watch *w, const struct spool_item *it)
{
	struct cli *c = w->c;
	struct spool_claim claim;
	struct msg m;
	struct err e;
	int rc, saved;

	rc = spool_take(c->sp, c->cfg.agent, it, &m, &claim, &e);
	if (rc < 0)
		fprintf(stderr, "%s: %s\n", c->prog, e.msg);
	if (rc <= 0)
		return 1;
	render(w, &m);
	msg_free(&m);
	if (put(&w->out) < 0) {
		saved = errno;
		if (spool_release(c->sp, &claim, &e) < 0)
			fprintf(stderr, "%s: %s\n", c->prog, e.msg);
		return write_failed(w, saved);
	}
	if (spool_ack(c->sp, &claim, 0, &e) < 0)
		fprintf(stderr, "%s: %s\n", c->prog, e.msg);
	return 1;
}

static int
cmp_seen(const void *a, const void *b)
{
	return strcmp(((const struct seen *)a)->id, ((const struct seen *)b)->id);
}

/* Is id among the n sorted ids? */
static int
has_id(const struct seen *ids, size_t n, const char *id)
{
	struct seen key;

	snprintf(key.id, sizeof key.id, "%s", id);
	return n && bsearch(&key, ids, n, sizeof key, cmp_seen) != NULL;
}

/* Print without claiming, once per message. 1, 0 or -1 as take_one;
 * *shown set when the message is (still) one we have shown. */
static int
peek_one(struct watch *w, const struct spool_item *it, int *shown)
{
	struct cli *c = w->c;
	struct msg m;
	struct err e;
	int rc;

	*shown = has_id(w->seen, w->nseen, it->id);
	if (*shown)
		return 1;
	rc = spool_peek(c->sp, c->cfg.agent, it, &m, &e);
	if (rc < 0)
		fprintf(stderr, "%s: %s\n", c->prog, e.msg);
	if (rc <= 0)
		return 1;
	render(w, &m);
	msg_free(&m);
	if (put(&w->out) < 0)
		return write_failed(w, errno);
	*shown = 1;
	return 1;
}

/* The ids of the n items, sorted. */
static struct seen *
ids_of(const struct spool_item *it, size_t n)
{
	struct seen *ids = xcalloc(n + 1, sizeof *ids);
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(ids[i].id, sizeof ids->id, "%s", it[i].id);
	qsort(ids, n, sizeof *ids, cmp_seen);
	return ids;
}

/* Print (and claim, but with --peek) it if wanted; with --peek, put its
 * id in now[*k] while it is one shown. 1, 0 or -1 as take_one. */
static int
one(struct watch *w, const struct spool_item *it, struct seen *now,
    size_t *k)
{
	int shown = 0, rc;

	if (!wanted(w, it))
		return 1;
	if (!w->peek) {
		w->took = 1;
		return take_one(w, it);
	}
	rc = peek_one(w, it, &shown);
	if (shown)
		snprintf(now[(*k)++].id, sizeof now->id, "%s", it->id);
	return rc;
}

/* --peek: remember the k ids in now as those shown, and those of
 * it[from..n) shown before; forget the others, which left the inbox.
 * But of a listing cut (a relay's part), what is not in it may wait
 * past it: then nothing shown is forgotten. */
static void
remember(struct watch *w, struct seen *now, size_t k,
    const struct spool_item *it, size_t from, size_t n, int cut)
{
	size_t i, u;

	for (i = from; i < n; i++)
		if (has_id(w->seen, w->nseen, it[i].id))
			snprintf(now[k++].id, sizeof now->id, "%s", it[i].id);
	for (i = 0; cut && i < w->nseen; i++)
		now[k++] = w->seen[i];
	qsort(now, k, sizeof *now, cmp_seen);
	for (i = u = 0; i < k; i++)
		if (!u || strcmp(now[u - 1].id, now[i].id) != 0)
			now[u++] = now[i];
	free(w->seen);
	w->seen = now;
	w->nseen = u;
}

/* The listing for a pass, and what the wait read on the relay's event
 * stream (every unread one when it opens, then each as it comes) when
 * the listing is cut: 1 listed, 0 passed on what came alone, -1 (e).
 * Listing a part none of which this watch claims (stalled) again at
 * each event would fetch the same part, up to 8 MiB, for nothing: what
 * is new came with the event. So an event that brings messages is
 * passed on them alone, but for the first RELIST_MS after the last
 * listing, which finds what came back into the part unannounced (a
 * relay may push a returned message to no stream) or left it; one that
 * brings none (a stream opened again) lists. */
#define RELIST_MS 60000

static int
listing(struct watch *w, struct spool_item **it, size_t *n,
    struct spool_item **ar, size_t *na)
{
	struct spool *sp = w->c->sp;

	*it = *ar = NULL;
	*n = *na = 0;
	if (w->stalled)
		spool_arrived(sp, ar, na);
	if (*na && io_ms_since(&w->listed) < RELIST_MS)
		return 0;
	if (spool_list(sp, w->c->cfg.agent, it, n, &w->c->e) < 0) {
		spool_items_free(*ar, *na);
		return -1;
	}
	clock_gettime(CLOCK_MONOTONIC, &w->listed);
	if (sp->cut && !w->stalled) /* else listed whole, with what came */
		spool_arrived(sp, ar, na);
	return 1;
}

/* One pass over the inbox. A relay lists an inbox over what one answer
 * may hold in parts (spool->cut): those past the part are listed only
 * once it is taken, which --peek never does, nor --match when none of
 * the part matches. So, of a cut listing, the messages the wait read on
 * the relay's event stream that are not in the part are printed too.
 * 1 go on, 0 stop cleanly, -1 fail. */
static int
pass(struct watch *w)
{
	struct cli *c = w->c;
	struct spool_item *it, *ar;
	struct seen *now = NULL, *listed = NULL;
	size_t n, na, i, a, k = 0;
	int rc = 1, fresh;

	if ((fresh = listing(w, &it, &n, &ar, &na)) < 0)
		return -1;
	if (w->peek)
		now = xcalloc(n + na + w->nseen + 1, sizeof *now);
	w->took = 0;
	for (i = 0; i < n && rc == 1 && !stop; i++)
		rc = one(w, &it[i], now, &k);
	if (fresh)
		w->stalled = c->sp->cut && !w->took;
	if (w->stalled) /* listing again gets no further */
		c->sp->more = 0;
	if (na)
		listed = ids_of(it, n);
	for (a = 0; a < na && rc == 1 && !stop; a++)
		if (!has_id(listed, n, ar[a].id))
			rc = one(w, &ar[a], now, &k);
	if (w->peek)
		remember(w, now, k, it, i, n, c->sp->cut);
	free(listed);
	spool_items_free(it, n);
	spool_items_free(ar, na);
	return rc;
}

/* Re-arming the watch after the inbox was removed can fail when the
 * directories vanish again while they are being made (someone is still
 * removing the tree): once the watch has worked, try a few more times,
 * a tenth of a second apart, before giving up. */
static int
again(struct cli *c, int *fails, int armed)
{
	struct timespec nap = { 0, 100 * 1000 * 1000 };

	if (!armed || stop || ++*fails > 10)
		return 0;
	if (*fails > 1)
		fprintf(stderr, "%s: %s — retrying\n", c->prog, c->e.msg);
	nanosleep(&nap, NULL);
	return 1;
}

static int
ready_fd(struct cli *c, const char *arg)
{
	char *end;
	long fd;

	errno = 0;
	fd = strtol(arg, &end, 10);
	if (errno || *end || end == arg || fd < 3 || fd > 1 << 20 ||
	    fcntl((int)fd, F_GETFD) < 0)
		cli_usage(c, usage, "--ready-fd needs an open descriptor, 3 or "
		    "more");
	return (int)fd;
}

static void
signal_ready(int *fd)
{
	if (*fd < 0)
		return;
	if (io_writeall(*fd, "\n", 1) < 0)
		fprintf(stderr, "bch-watch: cannot signal readiness: %s\n",
		    strerror(errno));
	close(*fd);
	*fd = -1;
}

/* Fill w from the command line; the --ready-fd descriptor, or -1. */
static int
parse_opts(struct watch *w, const char **match, int *here, int argc,
    char **argv)
{
	static const struct option opts[] = {
		{ "peek", no_argument, 0, 'p' },
		{ "urgent-only", no_argument, 0, 'u' },
		{ "match", required_argument, 0, 'm' },
		{ "here", no_argument, 0, 'H' },
		{ "brief", no_argument, 0, 'b' },
		{ "ready-fd", required_argument, 0, 'd' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int ch, readyfd = -1;

	while ((ch = getopt_long(argc, argv, "hpum:Hbd:", opts, NULL)) != -1) {
		switch (ch) {
		case 'p': w->peek = 1; break;
		case 'u': w->urgent = 1; break;
		case 'm': *match = optarg; break;
		case 'H': *here = 1; break;
		case 'b': w->brief = 1; break;
		case 'd': readyfd = ready_fd(w->c, optarg); break;
		case 'h': printf("usage: %s\n", usage); exit(0);
		default: cli_usage(w->c, usage, "unknown option");
		}
	}
	if (optind != argc)
		cli_usage(w->c, usage, "unexpected argument \"%s\"", argv[optind]);
	return readyfd;
}

/* Stopping signals end the wait; SIGIO says the reader went away. */
static void
catch_all(void)
{
	proc_catch("bch-watch", SIGTERM, on_stop);
	proc_catch("bch-watch", SIGINT, on_stop);
	proc_catch("bch-watch", SIGHUP, on_stop);
	proc_catch("bch-watch", SIGALRM, on_alarm);
	proc_catch("bch-watch", SIGIO, on_io);
}

/* A relay away is waited out (spool_wait() returns 0 with e saying why):
 * said once on stderr when it goes, and once when it answers again, so
 * that a watch in a terminal or under a supervisor is not silent. */
static void
say_away(struct cli *c, int r, int *away)
{
	if (r == 0 && c->e.msg[0] && !*away) {
		fprintf(stderr, "%s: %s — waiting for it\n", c->prog, c->e.msg);
		*away = 1;
	} else if (r > 0 && *away) {
		fprintf(stderr, "%s: the relay answers again\n", c->prog);
		*away = 0;
	}
}

/* Wait, pass, repeat, until told to stop or the reader goes away. 0 a
 * clean end, -1 fail; readiness is signalled after the first pass. */
static int
run(struct watch *w, int readyfd)
{
	struct cli *c = w->c;
	int rc = 1, armed = 0, fails = 0, away = 0;

	outcheck = 1; /* the reader may be gone already */
	while (!stop) {
		int r;
		if (outcheck) {
			outcheck = 0;
			if (reader_gone())
				break;
		}
		c->e.msg[0] = 0;
		r = spool_wait(c->sp, c->cfg.agent, -1, &c->e);
		say_away(c, r, &away);
		if (r < 0 && again(c, &fails, armed))
			continue;
		if (r < 0) {
			rc = -1;
			break;
		}
		armed = 1;
		fails = 0;
		if (r == 0 || stop)
			continue;
		if ((rc = pass(w)) <= 0)
			break;
		signal_ready(&readyfd);
	}
	return rc < 0 ? -1 : 0;
}

int
main(int argc, char **argv)
{
	struct watch w;
	static struct cli c; /* reachable until exit, as exit(3) leaves it */
	char matchbuf[4096];
	const char *match = NULL;
	int here = 0, readyfd, rc;

	memset(&w, 0, sizeof w);
	w.c = &c;
	cli_init(&c, "bch-watch");
	readyfd = parse_opts(&w, &match, &here, argc, argv);
	cli_open(&c, 1);
	w.match = cli_match(&c, match, here, matchbuf, sizeof matchbuf);
	catch_all();
	watch_reader(&w);
	c.sp->keep_arrived = 1;
	rc = run(&w, readyfd);
	if (w.asyncfl >= 0)
		fcntl(1, F_SETFL, w.asyncfl);
	if (rc < 0)
		cli_fail(&c);
	free(w.seen);
	buf_free(&w.out);
	cli_close(&c);
	return 0;
}
