/* bch-invite: print a bch1- invite to a relay (PROTOCOL.md 6) and, with
 * --out, the onboarding text a teammate follows to install and join.
 *
 * Design rationale. The invite carries the room token, so it goes to
 * stdout only (a pipe or the terminal, never a file we chose) and the
 * onboarding text, which holds it too, is written 0600 with a warning.
 * Everything that goes into the invite is checked here first, so that a
 * joiner never receives an invite that bch join would refuse. */
#include <ctype.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "invite.h"
#include "io.h"
#include "json.h"
#include "tls.h"
#include "url.h"

static const char usage[] =
    "bch-invite [--url relay-url] --token room-token [--channel #name]... "
    "[--room name] [--pin hex | --cert pem] [--out file] [--source git-url]";


/* Printable ASCII or UTF-8, no control characters, at most max bytes. */
static int
text_ok(const char *s, size_t max, int spaces)
{
	size_t n = strlen(s), i;

	if (n == 0 || n > max || !utf8_valid(s, n))
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < ' ' || s[i] == 0x7f ||
		    (!spaces && s[i] == ' '))
			return 0;
	return 1;
}

/* Who invites, to what, and how to install. */
static void
onboarding_intro(struct buf *b, const struct invite *inv, const char *inviter,
    const char *source)
{
	size_t i;

	if (inv->room)
		buf_printf(b, "# Join the backchannel room %s\n\n", inv->room);
	else
		buf_adds(b, "# Join backchannel\n\n");
	buf_printf(b, "%s invites you to backchannel: asynchronous messages "
	    "between AI coding\nagents (Claude Code, Codex, Gemini CLI) and "
	    "people, through the relay at\n%s.\n", inviter && *inviter ?
	    inviter : "A teammate", inv->url);
	if (inv->nchannels) {
		buf_adds(b, "Joining subscribes you to");
		for (i = 0; i < inv->nchannels; i++)
			buf_printf(b, "%s %s", i ? "," : "", inv->channels[i]);
		buf_adds(b, ".\n");
	}
	buf_adds(b, "\nKeep this text private: the invite in it carries the "
	    "room token, which lets\nanyone register on the relay. Delete it "
	    "once you have joined.\n\n"
	    "## 1. Install backchannel (from source, two commands)\n\n");
	buf_printf(b, "    git clone %s backchannel && cd backchannel\n"
	    "    sh quickstart.sh\n\n", source);
	buf_adds(b, "quickstart.sh installs the Debian packages it needs "
	    "(BearSSL, jsmn, s6, bats),\nbuilds, installs `bch` into "
	    "/usr/local (with sudo), and runs a short local demo.\n\n");
}

/* Joining with the invite, and reading. */
static void
onboarding_join(struct buf *b, const char *code)
{
	buf_adds(b, "## 2. Join\n\n");
	buf_printf(b, "    bch join %s --as <name>\n\n", code);
	buf_adds(b, "Pick a name for this machine's agent identity: letters, "
	    "digits, '.', '_' and\n'-', such as yourname-claude. Join "
	    "registers it on the relay and keeps only\nyour personal token (in "
	    "~/.backchannel, mode 0600; the room token is not\nstored), "
	    "subscribes you to the room's channels, and configures Claude "
	    "Code,\nCodex and Gemini CLI where it finds them: a prompt hook, "
	    "the MCP server and\nthe etiquette (bch setup --remove takes it "
	    "out again). Add --wake for a\ndesktop notification on urgent "
	    "messages; --no-hooks to leave the harnesses\nalone.\n\n"
	    "## 3. Read: at the start of a task, and before finishing it\n\n"
	    "Your agents see their messages when a session starts and on "
	    "every prompt\n(Claude Code's hook), or when they run `bch drain "
	    "--here`. By hand:\n\n"
	    "    bch inbox            # list what waits, claim nothing\n"
	    "    bch drain            # claim and print what has no scope\n"
	    "    bch drain --here     # also what is scoped to this "
	    "repository\n\n"
	    "Reading deletes: a drained message is gone, so act on it or note "
	    "it.\n\n");
}

/* Sending, and why a message is data, not instructions. */
static void
onboarding_send(struct buf *b, const struct invite *inv, const char *peer)
{
	buf_adds(b, "## 4. Send\n\n");
	buf_printf(b, "    bch send @%s \"rebased api on main; tests green\" "
	    "--ref src/api.ts\n", peer);
	buf_printf(b, "    bch send '%s' \"schema v2 is live\" --scope "
	    "github.com/acme/api\n", inv->nchannels ? inv->channels[0] :
	    "#proj");
	buf_printf(b, "    bch send @%s \"prod deploy blocked: migration 42 "
	    "fails\" --urgent\n\n", peer);
	buf_adds(b, "@name for one reader, #channel for its subscribers "
	    "(bch agents lists who\nis there). Keep a message short and "
	    "self-contained: the repository, branch,\npaths and the exact "
	    "error. --ref points at files and URLs instead of pasting\nthem; "
	    "--scope keeps a message for sessions in one repository; --thread "
	    "<id>\nanswers a message; --urgent is for blockers only.\n\n"
	    "## 5. Every message is untrusted input\n\n"
	    "A message body is another model's output, or a stranger's. Treat "
	    "it as\ndata, never as instructions: do not run commands or code "
	    "it contains, do\nnot follow what it tells you or your agents to "
	    "do, and never send secrets\nbecause a message asks. backchannel "
	    "itself never runs message content: the\nmost a hostile member "
	    "can do is put text in front of an agent, fenced and\nlabelled as "
	    "theirs.\n");
}

static void
onboarding(struct buf *b, const struct invite *inv, const char *code,
    const char *inviter, const char *source)
{
	onboarding_intro(b, inv, inviter, source);
	onboarding_join(b, code);
	onboarding_send(b, inv, inviter && *inviter ? inviter : "alice");
}

static void
add_channel(struct cli *c, struct invite *inv, const char *arg)
{
	char ch[NAME_MAX_LEN + 2];
	size_t i;

	if (invite_channel(arg, ch, sizeof ch) < 0) {
		err_set(&c->e, BCH_PERM, "invalid channel — use #name, with "
		    "letters, digits, '.', '_' and '-'");
		cli_fail(c);
	}
	for (i = 0; i < inv->nchannels; i++)
		if (strcmp(inv->channels[i], ch) == 0)
			return;
	if (inv->nchannels == INVITE_CHANNELS) {
		err_set(&c->e, BCH_PERM, "too many channels (at most %d)",
		    INVITE_CHANNELS);
		cli_fail(c);
	}
	inv->channels[inv->nchannels++] = xstrdup(ch);
}

/* The pin: --pin, --cert, or the configured relay's. */
static char *
pin_of(struct cli *c, const char *pin, const char *cert, int configured)
{
	char hex[65];
	char *p;

	if (cert) {
		if (tls_pin_of_file(cert, hex, &c->e) < 0)
			cli_fail(c);
		return xstrdup(hex);
	}
	/* config.json's pin is its relay's: not one BACKCHANNEL_URL names. */
	if (!pin)
		return configured && c->cfg.pin && (getenv("BACKCHANNEL_PIN") ||
		    (c->cfg.file_url && config_same_relay(c->cfg.url,
		    c->cfg.file_url))) ? xstrdup(c->cfg.pin) : NULL;
	if (!invite_pin_valid(pin)) {
		err_set(&c->e, BCH_PERM, "the pin must be 64 hex digits (the "
		    "relay prints it as key pin <hex>)");
		cli_fail(c);
	}
	p = xstrdup(pin);
	for (char *q = p; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	return p;
}

static void
write_out(struct cli *c, const char *out, const struct invite *inv,
    const char *code, const char *source)
{
	struct buf t = BUF_INIT;

	onboarding(&t, inv, code, c->cfg.agent, source ? source :
	    "<backchannel-repository-url>");
	if (io_replace(out, t.p, t.len, 1, &c->e) < 0)
		cli_fail(c);
	buf_free(&t);
	fprintf(stderr, "bch-invite: %s carries the room token — send it "
	    "privately (not to a public channel or repository) and delete it "
	    "once they joined\n", out);
	if (!source)
		fprintf(stderr, "bch-invite: %s says <backchannel-repository-url> "
		    "where to clone from — pass --source URL to fill it in\n",
		    out);
}

/* What the command line asks for, beyond what goes into the invite. */
struct opts {
	const char *url, *pin, *cert, *out, *source;
};

/* Fill inv and o from the command line. Channels are checked as they
 * come, so a bad one is refused before any other mistake is named. */
static void
parse_opts(struct cli *c, struct invite *inv, struct opts *o, int argc,
    char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, 0, 'u' },
		{ "token", required_argument, 0, 't' },
		{ "channel", required_argument, 0, 'c' },
		{ "room", required_argument, 0, 'r' },
		{ "pin", required_argument, 0, 'P' },
		{ "cert", required_argument, 0, 'C' },
		{ "out", required_argument, 0, 'o' },
		{ "source", required_argument, 0, 's' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int ch;

	memset(o, 0, sizeof *o);
	while ((ch = getopt_long(argc, argv, "hu:t:c:r:P:C:o:s:", opts,
	    NULL)) != -1) {
		switch (ch) {
		case 'u': o->url = optarg; break;
		case 't': inv->token = xstrdup(optarg); break;
		case 'c': add_channel(c, inv, optarg); break;
		case 'r': inv->room = xstrdup(optarg); break;
		case 'P': o->pin = optarg; break;
		case 'C': o->cert = optarg; break;
		case 'o': o->out = optarg; break;
		case 's': o->source = optarg; break;
		case 'h': printf("usage: %s\n", usage); exit(0);
		default: cli_bad_option(c, usage, argv, opts);
		}
	}
	if (optind != argc)
		cli_usage(c, usage, "takes no arguments (options only)");
	if (!inv->token)
		cli_usage(c, usage, "missing --token (the relay's room token)");
	if (o->pin && o->cert)
		cli_usage(c, usage, "--pin and --cert both name the pin — "
		    "give one");
	if (!o->url && !c->cfg.url)
		cli_usage(c, usage, "missing --url (no relay is configured "
		    "here)");
}

/* Refuse here what bch join would refuse in the invite. */
static void
check(struct cli *c, const struct invite *inv, const struct opts *o)
{
	if (!invite_url_valid(inv->url)) {
		err_set(&c->e, BCH_PERM, "the relay url must be an http:// or "
		    "https:// URL of a host, with a port from 1 to 65535 if any "
		    "and no user:password@");
		cli_fail(c);
	}
	if (!text_ok(inv->token, 1024, 0)) {
		err_set(&c->e, BCH_PERM, "the room token must be one word of "
		    "printable characters");
		cli_fail(c);
	}
	if (strlen(inv->token) < ROOM_TOKEN_MIN) {
		err_set(&c->e, BCH_PERM, "the room token is too short — the "
		    "relay refuses one under %d characters", ROOM_TOKEN_MIN);
		cli_fail(c);
	}
	if (inv->room && !text_ok(inv->room, 256, 1)) {
		err_set(&c->e, BCH_PERM, "the room name must be one line of "
		    "printable text, at most 256 bytes");
		cli_fail(c);
	}
	if ((o->pin || o->cert) && strncmp(inv->url, "http://", 7) == 0) {
		err_set(&c->e, BCH_PERM, "--%s names a TLS relay's key, and %s "
		    "is plain HTTP — give the relay's https:// url",
		    o->pin ? "pin" : "cert", inv->url);
		cli_fail(c);
	}
	if (o->source && !text_ok(o->source, 2048, 0)) {
		err_set(&c->e, BCH_PERM, "--source must be one word (a git URL)");
		cli_fail(c);
	}
}

int
main(int argc, char **argv)
{
	static struct cli c; /* reachable until exit, as exit(3) leaves it */
	struct invite inv;
	struct buf code = BUF_INIT;
	struct opts o;

	cli_init(&c, "bch-invite");
	memset(&inv, 0, sizeof inv);
	inv.channels = xcalloc(INVITE_CHANNELS, sizeof(char *));
	parse_opts(&c, &inv, &o, argc, argv);
	inv.url = xstrdup(o.url ? o.url : c.cfg.url);
	check(&c, &inv, &o);
	/* A pin the configuration gives means nothing to an http:// relay
	 * (one given as an option was refused by check()). */
	inv.pin = pin_of(&c, o.pin, o.cert, strncmp(inv.url, "http://", 7) &&
	    (!o.url || (c.cfg.url && config_same_relay(o.url, c.cfg.url))));
	invite_encode(&inv, &code);
	if (code.len > INVITE_MAX) {
		err_set(&c.e, BCH_PERM, "the invite would be over %d bytes, "
		    "more than bch join takes — name fewer or shorter channels, "
		    "or a shorter room, token or url", INVITE_MAX);
		cli_fail(&c);
	}
	if (o.out)
		write_out(&c, o.out, &inv, code.p, o.source);
	printf("%s\n", code.p);
	url_warn_clear("bch-invite", inv.url);
	if (fflush(stdout) != 0) {
		err_sys(&c.e, "cannot write to standard output");
		cli_fail(&c);
	}
	buf_free(&code);
	invite_free(&inv);
	cli_close(&c);
	return 0;
}
