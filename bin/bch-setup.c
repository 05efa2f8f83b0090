/* bch-setup: configure the agent harnesses found on this machine (Claude
 * Code, Codex, Gemini CLI) to use backchannel; --wake installs the wake
 * service; --remove takes out what setup added.
 *
 * Design rationale. These are the user's own files, edited by hand and
 * by the harnesses themselves, so setup only ever splices in or takes
 * out its own entries (lib/edit.h): everything else stays, byte for
 * byte. A file that does not parse is reported and left alone while the
 * others are still done. Running setup again finds its entries in place
 * and writes nothing. Commands are written with absolute paths, because
 * a harness starts hooks and MCP servers with whatever PATH it has. What
 * setup writes:
 *   Claude Code  ~/.claude/settings.json  hooks.UserPromptSubmit and
 *                hooks.SessionStart: {"hooks": [{"type": "command",
 *                "command": "/abs/bch-drain --hook --here"}]}, bch-drain
 *                itself, not through the sh dispatcher: one process
 *                start a prompt instead of two
 *                ~/.claude/skills/backchannel/SKILL.md
 *                ~/.claude.json  mcpServers.backchannel: {"type": "stdio",
 *                "command": "/abs/bch", "args": ["mcp"]}
 *   Codex        $CODEX_HOME/config.toml (default ~/.codex)
 *                [mcp_servers.backchannel] command, args;
 *                $CODEX_HOME/AGENTS.md, a marked section
 *   Gemini CLI   ~/.gemini/settings.json  mcpServers.backchannel:
 *                {"command": "/abs/bch", "args": ["mcp"]};
 *                ~/.gemini/GEMINI.md, a marked section */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "edit.h"
#include "install.h"
#include "io.h"
#include "json.h"
#include "proc.h"
#include "setup.h"
#include "wake.h"

static const char usage[] =
    "bch-setup [--dry-run] [--remove] [--no-hooks] [--wake] "
    "[--service s6|systemd|launchd] [--skill file] [--sv dir]";

/* The length of e's line without err_sys's hint at the spool: the
 * harness's files and the wake service's are not the spool, and the
 * hint would send the user to the wrong directory. */
static int
not_spool(const struct err *e)
{
	static const char spool[] = " — check the permissions of "
	    "BACKCHANNEL_HOME";
	size_t n = strlen(e->msg), k = sizeof spool - 1;

	if (n >= k && strcmp(e->msg + n - k, spool) == 0)
		n -= k;
	return (int)n;
}

void
setup_fail(struct setup *s, const char *path, const struct err *e)
{
	int n = not_spool(e);

	fprintf(stderr, "bch-setup: %s: %.*s — left it untouched; fix it and "
	    "run bch setup again\n", path, n, e->msg);
	if (e->code > s->status)
		s->status = e->code ? e->code : BCH_PERM;
}

/* Append s quoted for sh when it needs it. */
static void
sh_quote(struct buf *b, const char *str)
{
	const char *p;

	if (*str && strspn(str, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstu"
	    "vwxyz0123456789/._-+@%:,=") == strlen(str)) {
		buf_adds(b, str);
		return;
	}
	buf_addc(b, '\'');
	for (p = str; *p; p++) {
		if (*p == '\'')
			buf_adds(b, "'\\''");
		else
			buf_addc(b, *p);
	}
	buf_addc(b, '\'');
}

/* Say what happened to one file: what is our part, as "the ... hooks". */
static void
report(struct setup *s, const char *who, struct edit_file *f, int rc,
    const char *what)
{
	int backed = rc == EDIT_UPDATED && !f->has_backup && !s->remove;

	if (rc == EDIT_SAME) {
		if (!s->remove)
			printf("%s: %s: %s already there\n", who, f->path, what);
		else if (f->exists)
			printf("%s: %s: nothing of setup's to remove\n", who,
			    f->path);
		return;
	}
	if (rc == EDIT_DELETED) {
		printf("%s: %s: %s %s and the file, which setup had created\n",
		    who, f->path, s->dry ? "would remove" : "removed", what);
		return;
	}
	printf("%s: %s: %s %s%s%s%s%s\n", who, f->path,
	    s->remove ? (s->dry ? "would remove" : "removed") :
	    (s->dry ? "would add" : "added"), what,
	    rc == EDIT_CREATED ? (s->dry ? " (a new file)" : " (new file)") : "",
	    backed ? (s->dry ? " (the file as it is would be kept in " :
	    " (the file as it was is kept in ") : "", backed ? f->real : "",
	    backed ? EDIT_BACKUP ")" : "");
}

/* Open, edit with fn, commit, report. */
typedef int (*edit_fn)(struct setup *, struct buf *, const struct buf *,
    struct err *);

#define EDIT_TRIES 5 /* reads of a file its harness keeps rewriting */

static void
edit(struct setup *s, const char *who, const char *path, enum edit_kind kind,
    mode_t mode, edit_fn fn, const char *what)
{
	struct edit_file f;
	struct err e = { 0, 0, "" };
	int rc, tries = 0;

again:
	if (edit_open(&f, path, kind, mode, &e) < 0) {
		setup_fail(s, path, &e);
		return;
	}
	if (s->remove && !f.exists) {
		edit_close(&f);
		return;
	}
	s->what[0] = 0;
	if (fn(s, &f.text, f.has_backup ? &f.orig : NULL, &e) < 0 ||
	    (rc = edit_commit(&f, s->dry, &e)) < 0) {
		/* Its harness wrote it since it was read: nothing was
		 * replaced; the edit is made again on what it wrote. */
		if (f.changed && ++tries < EDIT_TRIES) {
			edit_close(&f);
			memset(&e, 0, sizeof e);
			goto again;
		}
		if (f.changed) {
			fprintf(stderr, "bch-setup: %s changed while setup "
			    "edited it — run bch setup again\n", path);
			if (s->status < BCH_TEMP)
				s->status = BCH_TEMP;
		} else {
			setup_fail(s, path, &e);
		}
		edit_close(&f);
		return;
	}
	report(s, who, &f, rc, s->what[0] ? s->what : what);
	edit_close(&f);
}

/* Is the harness here: its directory, or its program on PATH? */
static int
found(struct setup *s, const char *who, const char *dir, const char *prog)
{
	char p[PATH_MAX];
	struct stat st;

	if (s->remove)
		return 1;
	if (stat(dir, &st) == 0 && S_ISDIR(st.st_mode))
		return 1;
	if (proc_find(prog, p, sizeof p))
		return 1;
	printf("%s: not found (no %s, no %s on PATH) — skipped\n", who, dir,
	    prog);
	return 0;
}

static void
harnesses(struct setup *s)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	const char *codex = getenv("CODEX_HOME");

	snprintf(dir, sizeof dir, "%s/.claude", s->home);
	if (found(s, "claude", dir, "claude")) {
		snprintf(path, sizeof path, "%s/settings.json", dir);
		edit(s, "claude", path, EDIT_JSON, 0600, setup_claude_hooks,
		    "the UserPromptSubmit and SessionStart hooks");
		setup_skill(s, dir);
		snprintf(path, sizeof path, "%s/.claude.json", s->home);
		edit(s, "claude", path, EDIT_JSON, 0600, setup_claude_mcp,
		    "the MCP server mcpServers.backchannel");
	}
	if (codex && *codex == '/')
		snprintf(dir, sizeof dir, "%s", codex);
	else
		snprintf(dir, sizeof dir, "%s/.codex", s->home);
	if (found(s, "codex", dir, "codex")) {
		snprintf(path, sizeof path, "%s/config.toml", dir);
		edit(s, "codex", path, EDIT_TEXT, 0600, setup_codex_toml,
		    "the MCP server [mcp_servers.backchannel]");
		snprintf(path, sizeof path, "%s/AGENTS.md", dir);
		edit(s, "codex", path, EDIT_TEXT, 0644, setup_section,
		    "the backchannel section");
	}
	snprintf(dir, sizeof dir, "%s/.gemini", s->home);
	if (found(s, "gemini", dir, "gemini")) {
		snprintf(path, sizeof path, "%s/settings.json", dir);
		edit(s, "gemini", path, EDIT_JSONC, 0600, setup_gemini_mcp,
		    "the MCP server mcpServers.backchannel");
		snprintf(path, sizeof path, "%s/GEMINI.md", dir);
		edit(s, "gemini", path, EDIT_TEXT, 0644, setup_section,
		    "the backchannel section");
	}
}

/* On the local spool, the identity must have a record: bch-watch
 * refuses an unknown agent, and would be started again for ever. (A
 * relay's records are the relay's; its answer is the watch's to give.) */
static int
wake_known(const struct config *cfg, struct err *e)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof path, "%s/agents/%s.json", cfg->home,
	    cfg->agent);
	if (stat(path, &st) == 0 || errno != ENOENT)
		return 0;
	return err_set(e, BCH_PERM, "unknown agent \"%s\" for the wake "
	    "service to watch — run bch init %s first; nothing was "
	    "installed", cfg->agent, cfg->agent);
}

/* The service watches the identity setup runs with: without one,
 * bch-watch would fail at once and the supervisor start it again every
 * few seconds for ever, with nothing to show the user but its log. */
static int
wake_identity(struct err *e)
{
	struct config cfg;
	int rc = config_load(&cfg, e);

	if (rc == 0 && !cfg.agent[0])
		rc = err_set(e, BCH_PERM, "no identity for the wake service to "
		    "watch — run bch init <name> (or set BACKCHANNEL_AGENT) "
		    "first; nothing was installed");
	else if (rc == 0 && !cfg.url)
		rc = wake_known(&cfg, e);
	config_free(&cfg);
	return rc;
}

static void
wake(struct setup *s)
{
	struct buf out = BUF_INIT;
	char sv[PATH_MAX];
	struct wake w;
	int rc, spool = 0;

	memset(&w, 0, sizeof w);
	w.dry = s->dry;
	w.kind = s->kind;
	w.bindir = s->bindir;
	w.home = s->home;
	w.out = &out;
	if (s->svdir)
		w.svdir = s->svdir;
	else if (install_data(s->bindir, "sv/bch-notify", sv, sizeof sv))
		w.svdir = sv;
	if (s->remove)
		rc = wake_remove(&w, &s->e);
	else if ((rc = wake_identity(&s->e)) < 0)
		spool = 1; /* the identity is read from BACKCHANNEL_HOME */
	else
		rc = wake_install(&w, &s->e);
	if (out.len)
		fwrite(out.p, 1, out.len, stdout);
	buf_free(&out);
	if (rc < 0) {
		fprintf(stderr, "bch-setup: %.*s\n", spool ?
		    (int)strlen(s->e.msg) : not_spool(&s->e), s->e.msg);
		if (s->e.code > s->status)
			s->status = s->e.code;
	} else if (w.warned && s->status < BCH_TEMP) {
		s->status = BCH_TEMP;
	}
}

/* The hook runs bch-drain itself, found as the dispatcher finds it:
 * beside bch, else on PATH. Not found, s->drain is where it would be
 * beside bch (enough for --remove, which takes out every form). */
static int
find_drain(struct setup *s)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof dir, "%s", s->bch);
	if ((slash = strrchr(dir, '/')) != NULL)
		*slash = 0;
	if (install_prog(dir, "bch-drain", s->drain, sizeof s->drain))
		return 1;
	snprintf(s->drain, sizeof s->drain, "%s/bch-drain", dir);
	return 0;
}

static void
parse_opts(struct setup *s, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, 0, 'n' },
		{ "remove", no_argument, 0, 'r' },
		{ "no-hooks", no_argument, 0, 'N' },
		{ "wake", no_argument, 0, 'w' },
		{ "service", required_argument, 0, 'S' },
		{ "skill", required_argument, 0, 'k' },
		{ "sv", required_argument, 0, 'v' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int ch;

	while ((ch = getopt_long(argc, argv, "hnrNwS:k:v:", opts, NULL)) != -1) {
		switch (ch) {
		case 'n': s->dry = 1; break;
		case 'r': s->remove = 1; break;
		case 'N': s->nohooks = 1; break;
		case 'w': s->wakeup = 1; break;
		case 'S': s->kind = optarg; break;
		case 'k': s->skillfile = optarg; break;
		case 'v': s->svdir = optarg; break;
		case 'h': printf("usage: %s\n", usage); exit(0);
		default:
			fprintf(stderr, "bch-setup: bad option %s (unknown, or "
			    "missing its value)\nusage: %s\n", argv[optind - 1],
			    usage);
			exit(BCH_USAGE);
		}
	}
	if (optind != argc || (s->kind && strcmp(s->kind, "s6") &&
	    strcmp(s->kind, "systemd") && strcmp(s->kind, "launchd"))) {
		fprintf(stderr, "bch-setup: %s\nusage: %s\n", optind != argc ?
		    "takes no arguments" : "--service is s6, systemd or launchd",
		    usage);
		exit(BCH_USAGE);
	}
}

/* Run as root on a user's HOME (sudo -E, or a sudo that keeps HOME):
 * setup becomes that user for good, as sudo -u would, before it reads
 * anything there. Root would follow the links the user can plant under
 * their HOME to root's own files; as the user it can reach only what
 * they can. Exits 100, having touched nothing, when the switch fails. */
static void
drop_root(const char *home)
{
	struct stat st;
	struct passwd *pw;
	gid_t gid;
	const char *step;

	if (geteuid() != 0 || stat(home, &st) < 0 || st.st_uid == 0)
		return;
	errno = 0;
	pw = getpwuid(st.st_uid);
	gid = pw ? pw->pw_gid : st.st_gid;
	step = "setgroups";
	if ((pw ? initgroups(pw->pw_name, gid) : setgroups(0, NULL)) < 0)
		goto fail;
	step = "setgid";
	if (setgid(gid) < 0)
		goto fail;
	step = "setuid";
	if (setuid(st.st_uid) < 0)
		goto fail;
	step = "check";
	errno = EPERM;
	if (getuid() != st.st_uid || geteuid() != st.st_uid ||
	    getgid() != gid || getegid() != gid || setuid(0) == 0)
		goto fail;
	return;
fail:
	fprintf(stderr, "bch-setup: cannot become uid %ld, the owner of HOME "
	    "(%s), to edit its files (%s: %s) — run bch setup as that user; "
	    "nothing was changed\n", (long)st.st_uid, home, step,
	    strerror(errno));
	exit(BCH_PERM);
}

/* HOME, and the programs the harnesses are to run, by absolute path.
 * Exits 100 when one is missing. */
static void
locate(struct setup *s, const char *argv0)
{
	const char *home = getenv("HOME");

	if (!home || *home != '/') {
		fprintf(stderr, "bch-setup: HOME is not set to an absolute "
		    "path — set it\n");
		exit(BCH_PERM);
	}
	snprintf(s->home, sizeof s->home, "%s", home);
	if (install_bindir(argv0, s->bindir, sizeof s->bindir) < 0 ||
	    !install_prog(s->bindir, "bch", s->bch, sizeof s->bch)) {
		fprintf(stderr, "bch-setup: cannot find the bch program beside "
		    "bch-setup or on PATH — run make install\n");
		exit(BCH_PERM);
	}
	if (!s->nohooks && !find_drain(s) && !s->remove) {
		fprintf(stderr, "bch-setup: cannot find the bch-drain program "
		    "beside %s or on PATH — run make install\n", s->bch);
		exit(BCH_PERM);
	}
	sh_quote(&s->hook, s->drain);
	buf_adds(&s->hook, HOOK_TAIL);
}

int
main(int argc, char **argv)
{
	struct setup s;

	memset(&s, 0, sizeof s);
	err_prog("bch-setup");
	parse_opts(&s, argc, argv);
	if (getenv("HOME") && *getenv("HOME") == '/')
		drop_root(getenv("HOME"));
	locate(&s, argv[0]);
	if (!s.nohooks) {
		/* --remove needs it only to know a skill as an older setup
		 * wrote it, and can do without. */
		if (setup_load_skill(&s, &s.e) < 0) {
			if (!s.remove)
				err_exit("bch-setup", &s.e);
			buf_reset(&s.skill);
			memset(&s.e, 0, sizeof s.e);
		}
		harnesses(&s);
	}
	if (s.wakeup || s.remove)
		wake(&s);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "bch-setup: cannot write to standard output\n");
		return BCH_TEMP;
	}
	buf_free(&s.hook);
	buf_free(&s.skill);
	buf_free(&s.section);
	return s.status;
}
