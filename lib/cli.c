/* cli: start-up and shared options of the programs. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "io.h"
#include "scope.h"

/* A closed standard descriptor would be taken by the next open(), and
 * a claimed message could be "written" into a spool file or a socket:
 * give 0 and 2 /dev/null, and refuse to run without 1. */
static void
check_fds(struct cli *c)
{
	int fd;

	for (fd = 0; fd <= 2; fd++) {
		int n;
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
		if (n >= 0 && n != fd)
			close(n); /* cannot happen: the lowest fd is free */
		if (fd == 1) {
			err_set(&c->e, BCH_TEMP, "standard output is closed — "
			    "nothing was done");
			cli_fail(c);
		}
	}
}

/* What cli_init and cli_init_repair do before loading the config. */
static void
start(struct cli *c, const char *prog)
{
	memset(c, 0, sizeof *c);
	c->prog = prog;
	err_prog(prog);
	opterr = 0; /* our own one-line usage errors instead */
	check_fds(c);
	signal(SIGPIPE, SIG_IGN);
}

void
cli_init(struct cli *c, const char *prog)
{
	start(c, prog);
	if (config_load(&c->cfg, &c->e) < 0)
		cli_fail(c);
}

void
cli_init_repair(struct cli *c, const char *prog)
{
	start(c, prog);
	if (config_load_repair(&c->cfg, prog, &c->e) < 0)
		cli_fail(c);
}

void
cli_open(struct cli *c, int need_agent)
{
	if (need_agent && config_need_agent(&c->cfg, &c->e) < 0)
		cli_fail(c);
	if (!(c->sp = spool_open(&c->cfg, c->prog, &c->e)))
		cli_fail(c);
}

void
cli_fail(struct cli *c)
{
	err_exit(c->prog, &c->e);
}

void
cli_usage(struct cli *c, const char *usage, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "%s: ", c->prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: %s\n", usage);
	exit(BCH_USAGE);
}

long
cli_num(struct cli *c, const char *usage, const char *opt, const char *arg,
    long min, long max)
{
	char *end;
	long n;

	errno = 0;
	n = strtol(arg, &end, 10);
	/* strtol would also take " 7" and "+7": not a number as typed. */
	if (!(*arg == '-' || (*arg >= '0' && *arg <= '9')) || *end || errno ||
	    n < min || n > max)
		cli_usage(c, usage, "%s takes a whole number from %ld to %ld, "
		    "not \"%s\"", opt, min, max, arg);
	return n;
}

const char *
cli_match(struct cli *c, const char *match, int here, char *out,
    size_t outsz)
{
	if (match) {
		snprintf(out, outsz, "%s", match);
		return out;
	}
	if (!here)
		return NULL;
	if (repo_match(".", out, outsz) < 0) {
		err_sys(&c->e, "cannot resolve the current directory");
		cli_fail(c);
	}
	return out;
}

int
cli_write(const struct buf *b)
{
	return io_writeall(1, b->p, b->len);
}

void
cli_close(struct cli *c)
{
	spool_close(c->sp);
	config_free(&c->cfg);
}

/* (cli.h) Name the option getopt_long refused. optopt is 0 for an unknown long
 * option, else the option's letter; argv[optind - 1] is the word last
 * stepped over, which is that option only when it is a long one (for
 * "-w5" it is whatever came before). */
static void __attribute__((noreturn))
bad_option(struct cli *c, const char *usage, char **argv,
    const struct option *lopts, int text)
{
	const char *w = argv[optind - 1], *opt = w, *hint = "";
	char s[3] = { '-', (char)optopt, 0 };
	size_t i, n;
	int known = 0;

	if (optopt) {
		opt = s;
		n = strcspn(w, "=");
		for (i = 0; lopts[i].name; i++) {
			known |= lopts[i].val == optopt;
			if (lopts[i].val == optopt && strncmp(w, "--", 2) == 0 &&
			    n > 2 && strncmp(lopts[i].name, w + 2, n - 2) == 0)
				opt = w;
		}
	}
	/* An unknown letter ("-1 on that PR") or long option ("--foo bar")
	 * is likely a word of the message; a known one lacked its value. */
	if (text && !known)
		hint = " — put -- before a message that starts with -";
	cli_usage(c, usage, "bad option %s (unknown, or missing its value)%s",
	    opt, hint);
}

void
cli_bad_option(struct cli *c, const char *usage, char **argv,
    const struct option *lopts)
{
	bad_option(c, usage, argv, lopts, 0);
}

void
cli_bad_word(struct cli *c, const char *usage, char **argv,
    const struct option *lopts)
{
	bad_option(c, usage, argv, lopts, 1);
}
