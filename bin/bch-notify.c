/* bch-notify: raise a desktop notification for each message JSON line on
 * standard input (bch notify).
 *
 * Design rationale. A message body is another model's output, so it only
 * ever travels as data: the notifier (notify-send, else osascript, else a
 * bell and a line on stderr) is found on PATH by us and started with an
 * argv array through posix_spawn, never a shell; notify-send gets "--"
 * before its positional arguments so a body that starts with '-' cannot
 * pass as an option; osascript runs a fixed script that reads title and
 * text from its argv, so no byte of a message becomes script text. What
 * a notification shows is cut to a readable length (10 lines, blank ones
 * trimmed, and 200 characters) on a UTF-8 boundary, with control
 * characters, C1 controls and bidi overrides escaped (show_text) and,
 * for notify-send, the markup characters as entities.
 * Bursts are coalesced: at most --burst notifications per --window
 * seconds; the rest are counted and summarised as one "N more from X"
 * when the window ends (poll() wakes us for that even with no input) or
 * at end of input, and each held-back message is logged on stderr so
 * that the service log keeps a record of it. A stop signal lets the
 * notifier at work finish but starts no other: the lines already read
 * are logged (and teed) only, so stopping never waits on a notifier per
 * line. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "io.h"
#include "msg.h"
#include "proc.h"
#include "show.h"

static const char usage[] =
    "bch-notify [-t] [--burst n] [--window seconds] < messages.jsonl";

#define TEXT_MAX 200       /* characters of body a notification shows */
#define LINES_MAX 10       /* and lines */
#define NOTIFIER_MS 10000  /* how long a notifier may take */
#define NSENDERS 3         /* senders named in a summary */

enum how { NOTIFY_SEND, OSASCRIPT, BELL };

struct notify {
	const char *prog;
	struct limits lim;
	int tee;
	unsigned burst;
	long window_ms;
	enum how how;
	char path[4096];
	/* the input */
	struct buf line;
	int toolong;
	long lineno;
	int worst;
	int done; /* stop reading: the tee's reader went away */
	struct timespec readat; /* when the line in hand was read */
	/* the current window */
	int active;
	struct timespec start;
	unsigned shown;
	unsigned held;
	int held_urgent;
	char senders[NSENDERS][NAME_MAX_LEN + 1];
	unsigned nsenders, others;
};

static volatile sig_atomic_t stop;

static void
on_stop(int sig)
{
	(void)sig;
	stop = 1;
	alarm(1); /* in case it landed just before poll() */
}

static void
on_alarm(int sig)
{
	(void)sig;
}

/* s with whitespace runs made one space, for one-line forms. */
static char *
flatten(const char *s)
{
	struct buf b = BUF_INIT;
	int space = 0;

	buf_adds(&b, "");
	for (; *s; s++) {
		if (strchr(" \t\n\r\v\f", *s)) {
			space = 1;
			continue;
		}
		if (space && b.len)
			buf_addc(&b, ' ');
		space = 0;
		buf_addc(&b, *s);
	}
	return b.p;
}

/* The lines of s a popup holds: blank lines at either end dropped, each
 * run of them inside made one, at most LINES_MAX lines. 1 if lines with
 * text were left out. */
static int
tidy_lines(struct buf *b, const char *s)
{
	const char *nl;
	size_t len;
	int lines = 0, gap = 0;

	for (; *s; s = *nl ? nl + 1 : nl) {
		nl = strchr(s, '\n');
		if (!nl)
			nl = s + strlen(s);
		len = (size_t)(nl - s);
		if (len && s[len - 1] == '\r') /* CRLF: a line end too */
			len--;
		if (strspn(s, " \t\r\v\f") >= len) { /* a blank line */
			gap = lines > 0;
			continue;
		}
		if (lines + gap + 1 > LINES_MAX)
			return 1;
		if (lines)
			buf_adds(b, gap ? "\n\n" : "\n");
		buf_add(b, s, len);
		lines += gap + 1;
		gap = 0;
	}
	return 0;
}

/* The text of a notification for body s (valid UTF-8): its lines tidied
 * (tidy_lines), then cut to TEXT_MAX characters, "…" if anything was
 * left out. Cut before show_text() escapes it, so never in an escape. */
static char *
cut(const char *s)
{
	struct buf b = BUF_INIT;
	size_t i, chars = 0;
	int more;

	buf_adds(&b, "");
	more = tidy_lines(&b, s);
	for (i = 0; b.p[i]; i++) {
		if (((unsigned char)b.p[i] & 0xc0) == 0x80)
			continue;
		if (chars++ == TEXT_MAX)
			break;
	}
	if (b.p[i] || more) {
		b.len = i;
		b.p[i] = 0;
		buf_adds(&b, "\xe2\x80\xa6");
	}
	return b.p;
}

/* What notify-send would read as markup, as entities. */
static void
add_markup_escaped(struct buf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': buf_adds(b, "&amp;"); break;
		case '<': buf_adds(b, "&lt;"); break;
		case '>': buf_adds(b, "&gt;"); break;
		case '\'': buf_adds(b, "&#39;"); break;
		case '"': buf_adds(b, "&quot;"); break;
		default: buf_addc(b, *s);
		}
	}
}

/* A bell on the terminal, if there is one, and the line on stderr. */
static void
show_here(struct notify *n, const char *what, const char *title,
    const char *text)
{
	struct buf b = BUF_INIT;
	char *flat = flatten(text);
	int fd;

	if (!what && (fd = open("/dev/tty", O_WRONLY | O_NOCTTY | O_CLOEXEC)) >= 0) {
		if (io_writeall(fd, "\a", 1) < 0) {
			/* no terminal to ring after all: the line will do */
		}
		close(fd);
	}
	buf_printf(&b, "%s: %s%s: ", n->prog, what ? what : "", title);
	show_text(&b, flat, 0);
	buf_addc(&b, '\n');
	if (io_writeall(2, b.p, b.len) < 0) {
		/* stderr is gone: nowhere left to say anything */
	}
	free(flat);
	buf_free(&b);
}

/* Raise one notification. title is already safe to show; text is raw
 * message text (cut), escaped here for the notifier at hand. */
static void
raise_one(struct notify *n, const char *title, const char *text, int urgent)
{
	struct buf shown = BUF_INIT, body = BUF_INIT;
	struct err e;
	char *argv[12];
	int k = 0, rc;

	buf_adds(&shown, "");
	show_text(&shown, text, 1);
	if (n->how == BELL) {
		show_here(n, NULL, title, text);
		goto out;
	}
	argv[k++] = n->path;
	if (n->how == NOTIFY_SEND) {
		add_markup_escaped(&body, shown.p);
		argv[k++] = "-u";
		argv[k++] = urgent ? "critical" : "normal";
		argv[k++] = "-a";
		argv[k++] = "backchannel";
		argv[k++] = "--";
		argv[k++] = (char *)title;
		argv[k++] = body.p;
	} else {
		argv[k++] = "-e";
		argv[k++] = "on run argv";
		argv[k++] = "-e";
		argv[k++] = "display notification (item 2 of argv) with title "
		    "(item 1 of argv)";
		argv[k++] = "-e";
		argv[k++] = "end run";
		argv[k++] = (char *)title;
		argv[k++] = shown.p;
	}
	argv[k] = NULL;
	rc = proc_run(n->path, argv, NOTIFIER_MS, &e);
	if (rc != 0) {
		if (rc > 0)
			fprintf(stderr, "%s: %s exited %d — is a desktop session "
			    "running? showing the message here\n", n->prog, n->path,
			    rc);
		else
			fprintf(stderr, "%s: %s — showing the message here\n",
			    n->prog, e.msg);
		show_here(n, NULL, title, text);
	}
out:
	buf_free(&shown);
	buf_free(&body);
}

static void
title_of(struct buf *t, const struct msg *m)
{
	show_text(t, m->from, 0);
	buf_adds(t, " -> ");
	show_text(t, m->to, 0);
	if (m->urgent)
		buf_adds(t, " [URGENT]");
}

/* "N more from alice, bob and others" for what the window held back. */
static void
summarise(struct notify *n)
{
	struct buf title = BUF_INIT, text = BUF_INIT;
	unsigned i;

	if (!n->held)
		return;
	buf_printf(&title, "%u more from ", n->held);
	for (i = 0; i < n->nsenders; i++) {
		if (i)
			buf_adds(&title, i + 1 == n->nsenders && !n->others ?
			    " and " : ", ");
		buf_adds(&title, n->senders[i]);
	}
	if (n->others)
		buf_adds(&title, " and others");
	if (n->held_urgent)
		buf_adds(&title, " [URGENT]");
	buf_printf(&text, "more than %u message%s arrived within %g s; the "
	    "rest were not shown one by one", n->burst, n->burst == 1 ? "" :
	    "s", n->window_ms / 1000.0);
	raise_one(n, title.p, text.p, n->held_urgent);
	buf_free(&title);
	buf_free(&text);
	n->held = 0;
	n->held_urgent = 0;
	n->nsenders = n->others = 0;
}

/* The window is over: summarise, and let the summary open the next. */
static void
end_window(struct notify *n)
{
	if (!n->held) {
		n->active = 0;
		return;
	}
	summarise(n);
	clock_gettime(CLOCK_MONOTONIC, &n->start);
	n->shown = 1;
}

static void
hold(struct notify *n, const struct msg *m, const char *title,
    const char *text)
{
	unsigned i;

	show_here(n, "held back: ", title, text);
	n->held++;
	n->held_urgent |= m->urgent;
	for (i = 0; i < n->nsenders; i++)
		if (strcmp(n->senders[i], m->from) == 0)
			return;
	if (n->nsenders < NSENDERS && name_valid(m->from))
		snprintf(n->senders[n->nsenders++], sizeof n->senders[0], "%s",
		    m->from);
	else
		n->others = 1;
}

/* Milliseconds from a to b (negative when b is before a). */
static long
ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000L +
	    (b->tv_nsec - a->tv_nsec) / 1000000L;
}

/* A message counts in the window of the moment it was read, not of the
 * moment its turn came: with a slow notifier, a burst that came at once
 * would otherwise be shown one by one, each in a window of its own. */
static void
deliver(struct notify *n, const struct msg *m)
{
	struct buf title = BUF_INIT;
	char *text = cut(m->body);

	buf_adds(&title, "");
	title_of(&title, m);
	if (stop) {
		/* Told to stop: the rest of what was read is only logged. */
		hold(n, m, title.p, text);
		goto out;
	}
	if (n->active && ms_between(&n->start, &n->readat) >= n->window_ms)
		end_window(n);
	if (!n->active) {
		n->active = 1;
		n->shown = 0;
		n->start = n->readat;
	}
	if (n->shown < n->burst) {
		n->shown++;
		raise_one(n, title.p, text, m->urgent);
	} else {
		hold(n, m, title.p, text);
	}
out:
	free(text);
	buf_free(&title);
}

/* One whole input line (without its newline) is in n->line. */
static void
line_end(struct notify *n)
{
	struct msg m;
	struct err e;

	n->lineno++;
	if (n->toolong) {
		fprintf(stderr, "%s: line %ld: longer than %zu bytes — skipped\n",
		    n->prog, n->lineno, n->lim.total);
		n->worst = BCH_PERM;
		n->toolong = 0;
		goto out;
	}
	if (n->line.len == 0 || strspn(n->line.p, " \t\r") == n->line.len)
		goto out;
	if (msg_decode(n->line.p, n->line.len, 0, &n->lim, &m, &e) < 0) {
		fprintf(stderr, "%s: line %ld: %s — skipped\n", n->prog,
		    n->lineno, e.msg);
		n->worst = BCH_PERM;
		goto out;
	}
	if (n->tee && !n->done) {
		buf_addc(&n->line, '\n');
		if (io_writeall(1, n->line.p, n->line.len) < 0) {
			if (errno != EPIPE) {
				fprintf(stderr, "%s: cannot write to standard output: "
				    "%s — check the disk or the pipe\n", n->prog,
				    strerror(errno));
				exit(BCH_TEMP);
			}
			n->done = 1; /* the reader left: stop, as tee would */
		}
	}
	deliver(n, &m);
	msg_free(&m);
out:
	buf_reset(&n->line);
}

/* Split input into lines of at most lim.total bytes. */
static void
feed(struct notify *n, const char *p, size_t len)
{
	while (len > 0 && !n->done) {
		const char *nl = memchr(p, '\n', len);
		size_t k = nl ? (size_t)(nl - p) : len;
		if (!n->toolong) {
			if (n->line.len + k > n->lim.total) {
				n->toolong = 1;
				buf_reset(&n->line);
			} else {
				buf_add(&n->line, p, k);
			}
		}
		if (!nl)
			return;
		line_end(n);
		p += k + 1;
		len -= k + 1;
	}
}

static void
choose_notifier(struct notify *n)
{
	if (proc_find("notify-send", n->path, sizeof n->path))
		n->how = NOTIFY_SEND;
	else if (proc_find("osascript", n->path, sizeof n->path))
		n->how = OSASCRIPT;
	else
		n->how = BELL;
}

static int
run(struct notify *n)
{
	char chunk[65536];

	while (!stop && !n->done) {
		struct pollfd p = { 0, POLLIN, 0 };
		int timeout = -1, rc;
		ssize_t r;
		if (n->held) {
			long left = n->window_ms - io_ms_since(&n->start);
			if (left <= 0) {
				end_window(n);
				continue;
			}
			timeout = (int)left;
		}
		rc = poll(&p, 1, timeout);
		if (rc < 0 && errno != EINTR) {
			fprintf(stderr, "%s: cannot wait for input: %s — report "
			    "this\n", n->prog, strerror(errno));
			return BCH_TEMP;
		}
		if (rc <= 0)
			continue;
		r = read(0, chunk, sizeof chunk);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			fprintf(stderr, "%s: cannot read standard input: %s — check "
			    "what feeds it\n", n->prog, strerror(errno));
			return BCH_TEMP;
		}
		if (r == 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &n->readat);
		feed(n, chunk, (size_t)r);
	}
	if (!stop && !n->done && (n->line.len || n->toolong))
		line_end(n); /* a last line without its newline */
	if (!stop)
		summarise(n);
	return stop ? 0 : n->worst;
}

/* A program that execs into us may have left children that write to our
 * standard input (the s6 run script leaves bch-watch): when the input
 * ends, reap them, waiting up to a second for them to end, so
 * that no zombie outlives us. A zombie claimer would look alive to the
 * next reader, which would then leave its claim alone. */
static void
reap_children(void)
{
	struct timespec t0, nap = { 0, 10 * 1000 * 1000 };
	pid_t r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		r = waitpid(-1, NULL, WNOHANG);
		if (r > 0)
			continue;
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || io_ms_since(&t0) >= 1000)
			return; /* ECHILD: none left */
		nanosleep(&nap, NULL);
	}
}

static double
number(const char *arg, const char *opt, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v >= min && v <= max)) {
		fprintf(stderr, "bch-notify: %s needs a number from %g to %g\n"
		    "usage: %s\n", opt, min, max, usage);
		exit(BCH_USAGE);
	}
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "tee", no_argument, 0, 't' },
		{ "burst", required_argument, 0, 'n' },
		{ "window", required_argument, 0, 'w' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct notify n;
	struct config cfg;
	struct err e;
	int ch, rc;

	memset(&n, 0, sizeof n);
	n.prog = "bch-notify";
	n.burst = 3;
	n.window_ms = 5000;
	err_prog(n.prog);
	signal(SIGPIPE, SIG_IGN);
	while ((ch = getopt_long(argc, argv, "htn:w:", opts, NULL)) != -1) {
		switch (ch) {
		case 't': n.tee = 1; break;
		case 'n': n.burst = (unsigned)number(optarg, "--burst", 1, 1000);
			break;
		case 'w':
			n.window_ms = (long)(number(optarg, "--window", 0.001,
			    86400) * 1000 + 0.5);
			break;
		case 'h': printf("usage: %s\n", usage); return 0;
		default:
			fprintf(stderr, "bch-notify: unknown option\nusage: %s\n",
			    usage);
			return BCH_USAGE;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "bch-notify: unexpected argument \"%s\"\n"
		    "usage: %s\n", argv[optind], usage);
		return BCH_USAGE;
	}
	/* Only the limits matter here, set before anything can fail: no
	 * spool is touched, so a missing HOME or config is no reason to
	 * refuse. A reader's: what any writer may have sent. */
	(void)config_load(&cfg, &e);
	n.lim = cfg.rlim;
	config_free(&cfg);
	proc_catch("bch-notify", SIGTERM, on_stop);
	proc_catch("bch-notify", SIGINT, on_stop);
	proc_catch("bch-notify", SIGHUP, on_stop);
	proc_catch("bch-notify", SIGALRM, on_alarm);
	choose_notifier(&n);
	rc = run(&n);
	close(0); /* a writer still there (we were stopped) sees us go */
	reap_children();
	buf_free(&n.line);
	return rc;
}
