/* cli: what every program does first and the options several share. */
#ifndef BCH_CLI_H
#define BCH_CLI_H

#include <stddef.h>

#include "config.h"
#include "spool.h"

struct cli {
	const char *prog;
	struct config cfg;
	struct spool *sp;
	struct err e;
};

/* Name the program, ignore SIGPIPE (a write error is then ours to
 * handle, so claims are returned rather than lost), load config. Exits
 * on failure. */
void cli_init(struct cli *c, const char *prog);

/* cli_init for bch init: a broken config.json is set aside, not fatal. */
void cli_init_repair(struct cli *c, const char *prog);

/* Open the spool; with need_agent, also insist on an identity. Exits on
 * failure. */
void cli_open(struct cli *c, int need_agent);

/* Print "prog: msg" for the error in c->e and exit with its code. */
void cli_fail(struct cli *c) __attribute__((noreturn));

/* Usage error: "prog: msg" and the usage line on stderr, exit 2. */
void cli_usage(struct cli *c, const char *usage, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

/* getopt_long refused an option: the usage error, naming the option as
 * typed (a long one) or by its letter ("-w5" is -w, not the word before
 * it). */
struct option;
void cli_bad_option(struct cli *c, const char *usage, char **argv,
    const struct option *lopts) __attribute__((noreturn));

/* cli_bad_option for a program whose arguments are free text: an
 * unknown option ("-1", "--foo") may be a message's first word, and
 * the line says to put -- before it. */
void cli_bad_word(struct cli *c, const char *usage, char **argv,
    const struct option *lopts) __attribute__((noreturn));

/* The value of option opt (its name, "--port") as a whole number from
 * min to max; anything else is a usage error. */
long cli_num(struct cli *c, const char *usage, const char *opt,
    const char *arg, long min, long max);

/* The match string from --match or --here (here set); NULL when neither.
 * Exits on failure. */
const char *cli_match(struct cli *c, const char *match, int here,
    char *out, size_t outsz);

/* Write b to stdout in full; -1 (errno) on failure. */
int cli_write(const struct buf *b);

void cli_close(struct cli *c);

#endif
