/* doctor-harness: bch-doctor's look at what wakes an agent — the hooks
 * and MCP entries of Claude Code, Codex and Gemini CLI, and each program
 * they name run once. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "doctor.h"
#include "edit.h"
#include "io.h"
#include "json.h"
#include "proc.h"
#include "wake.h"

#define RUN_MS 10000    /* how long a program we try may take */

/* Read a file that may be a symlink (dotfiles often are) into b. */
static int
read_any(const char *path, size_t max, struct buf *b)
{
	char real[PATH_MAX];

	if (!realpath(path, real))
		return -1;
	return io_readfile(AT_FDCWD, real, max, b);
}

/* Run path with argv, bounded, its output caught: exit status, or -1
 * with the reason in out. The first line of what it printed is in out. */
int
doctor_run(const char *path, char *const argv[], char *out, size_t outsz)
{
	struct err e = { 0, 0, "" };
	int rc = proc_run_caught(path, argv, RUN_MS, out, outsz, &e);

	if (rc < 0)
		snprintf(out, outsz, "%s", e.msg);
	return rc;
}

/* --- harnesses ---------------------------------------------------------------- */

/* The first word of a shell command line, unquoted. */
static void
first_word(const char *s, char *out, size_t outsz)
{
	size_t w = 0;
	char quote = 0;

	while (*s == ' ' || *s == '\t')
		s++;
	for (; *s && w + 1 < outsz; s++) {
		if (quote) {
			if (*s == quote)
				quote = 0;
			else if (quote == '"' && *s == '\\' && s[1] &&
			    strchr("\"\\$`", s[1]))
				out[w++] = *++s;
			else
				out[w++] = *s;
		} else if (*s == '\'' || *s == '"') {
			quote = *s;
		} else if (*s == '\\' && s[1]) {
			out[w++] = *++s;
		} else if (*s == ' ' || *s == '\t') {
			break;
		} else {
			out[w++] = *s;
		}
	}
	out[w] = 0;
}

/* Does prog exist and run? A check named what, status as it went. */
static void
check_prog(struct doc *d, const char *what, const char *prog,
    const char *shown)
{
	char path[PATH_MAX], out[300];
	const char *base = strrchr(prog, '/');
	char *argv[3];
	struct stat st;
	struct ran *r = NULL;
	size_t i;
	int rc;

	if (!*prog) {
		add(d, FAIL, what, "bch setup", "%s: no program named", shown);
		return;
	}
	if (strchr(prog, '/'))
		snprintf(path, sizeof path, "%s", prog);
	else if (!proc_find(prog, path, sizeof path)) {
		add(d, FAIL, what, "bch setup", "%s: %s is not on PATH", shown,
		    prog);
		return;
	}
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) {
		add(d, FAIL, what, "bch setup", "%s: %s does not exist", shown,
		    path);
		return;
	}
	if (access(path, X_OK) < 0) {
		add(d, FAIL, what, "bch setup", "%s: %s is not executable",
		    shown, path);
		return;
	}
	for (i = 0; i < d->nran; i++)
		if (strcmp(d->ran[i].path, path) == 0)
			r = &d->ran[i];
	if (!r) {
		r = &d->ran[d->nran < 8 ? d->nran++ : 7];
		snprintf(r->path, sizeof r->path, "%s", path);
		argv[0] = path;
		argv[1] = strcmp(base ? base + 1 : prog, "bch") == 0 ?
		    "whoami" : "-h";
		argv[2] = NULL;
		r->rc = doctor_run(path, argv, r->out, sizeof r->out);
	}
	rc = r->rc;
	snprintf(out, sizeof out, "%s", r->out);
	/* bch whoami answers with the identity, worth showing; what -h
	 * printed is a usage line, which would read as an error. */
	if (rc == 0 && *out && strcmp(base ? base + 1 : prog, "bch") == 0)
		add(d, OK, what, NULL, "%s (runs: %s)", shown, out);
	else if (rc == 0)
		add(d, OK, what, NULL, "%s (runs)", shown);
	else if (rc < 0)
		add(d, FAIL, what, "bch setup", "%s: %s", shown, out);
	else
		add(d, FAIL, what, rc == BCH_PERM && d->id_fix[0] ? d->id_fix :
		    "bch setup", "%s: it exits %d: %s", shown, rc, *out ? out :
		    "(no output)");
}

/* The value at path in a JSON document; -1 if absent. */
static int
jpath(const struct json *j, const char *const *path)
{
	int i = 0;

	for (; *path; path++) {
		if (j->t[i].type != JSON_OBJECT)
			return -1;
		if ((i = json_get_last(j, i, *path)) < 0)
			return -1;
	}
	return i;
}

/* Read a harness's JSON file (jsonc: comments allowed, as Gemini CLI
 * allows them): 1 parsed (free j and b), 0 absent, -1 a failure said. */
static int
load_json(struct doc *d, const char *what, const char *path, int jsonc,
    struct json *j, struct buf *b)
{
	char fix[P + 32], qp[P];
	const char *why = NULL;

	if (read_any(path, 64 << 20, b) < 0) {
		if (errno == ENOENT) {
			buf_free(b);
			return 0;
		}
		snprintf(fix, sizeof fix, "ls -l %s", q(path, qp, sizeof qp));
		add(d, FAIL, what, fix, "cannot read %s: %s", path,
		    strerror(errno));
		buf_free(b);
		return -1;
	}
	if (b->len == 0) {
		buf_free(b);
		return 0;
	}
	if (jsonc)
		edit_json_uncomment(b->p, b->len, b->p);
	if (json_parse(j, b->p, b->len, 128, &why) < 0) {
		snprintf(fix, sizeof fix, "python3 -m json.tool %s  # shows "
		    "where", q(path, qp, sizeof qp));
		add(d, FAIL, what, fix, "%s is not valid JSON (%s): the harness "
		    "cannot read it either", path, why ? why : "?");
		buf_free(b);
		return -1;
	}
	return 1;
}

/* An entry that is not there: a warning where the harness is installed,
 * fine where it is not (bch setup skips a harness it cannot find). */
static void
absent(struct doc *d, const char *what, int installed, const char *who,
    const char *warning)
{
	if (installed)
		add(d, WARN, what, NULL, "%s", warning);
	else
		add(d, OK, what, NULL, "%s is not installed: nothing to set up",
		    who);
}

/* Is this hook command ours: bch (or bch-drain) with --hook? */
static int
our_hook(const char *cmd)
{
	char prog[PATH_MAX];
	const char *base;

	first_word(cmd, prog, sizeof prog);
	base = strrchr(prog, '/');
	base = base ? base + 1 : prog;
	return strncmp(base, "bch", 3) == 0 && strstr(cmd, "--hook") != NULL;
}

static void
claude_hooks(struct doc *d, const char *home, int installed)
{
	static const char *const events[] = { "UserPromptSubmit",
		"SessionStart" };
	char path[P], what[200], prog[PATH_MAX];
	struct buf b = BUF_INIT;
	struct json j;
	size_t k;
	int rc, i, g, h, kk, ll, seen, arr;

	snprintf(path, sizeof path, "%s/.claude/settings.json", home);
	if ((rc = load_json(d, "claude code hooks", path, 0, &j, &b)) < 0)
		return;
	for (k = 0; k < 2; k++) {
		const char *jp[] = { "hooks", events[k], NULL };
		snprintf(what, sizeof what, "claude code hook %s", events[k]);
		seen = 0;
		arr = rc ? jpath(&j, jp) : -1;
		if (arr < 0 || j.t[arr].type != JSON_ARRAY)
			arr = -1;
		for (kk = 0, g = arr + 1; arr >= 0 && kk < j.t[arr].size;
		    kk++, g = json_next(&j, g)) {
			h = j.t[g].type == JSON_OBJECT ? json_get(&j, g, "hooks") :
			    -1;
			if (h < 0 || j.t[h].type != JSON_ARRAY)
				continue;
			for (ll = 0, i = h + 1; ll < j.t[h].size;
			    ll++, i = json_next(&j, i)) {
				char *cmd = NULL;
				int c = j.t[i].type == JSON_OBJECT ?
				    json_get(&j, i, "command") : -1;
				if (c < 0 || json_string(&j, c, 16384, &cmd,
				    NULL) < 0)
					continue;
				if (our_hook(cmd)) {
					first_word(cmd, prog, sizeof prog);
					check_prog(d, what, prog, cmd);
					seen = 1;
				}
				free(cmd);
			}
		}
		if (!seen)
			absent(d, what, installed, "Claude Code", "not configured "
			    "— bch setup adds it");
	}
	if (rc)
		json_free(&j);
	buf_free(&b);
}

/* mcpServers.backchannel in a JSON file: the command, run. */
static void
mcp_json(struct doc *d, const char *what, const char *path, int jsonc,
    int installed, const char *who)
{
	static const char *const jp[] = { "mcpServers", "backchannel", NULL };
	struct buf b = BUF_INIT;
	struct json j;
	char *cmd = NULL, *arg = NULL, shown[PATH_MAX + 16];
	int rc, i, c, a;

	if ((rc = load_json(d, what, path, jsonc, &j, &b)) < 0)
		return;
	i = rc ? jpath(&j, jp) : -1;
	if (i < 0 || j.t[i].type != JSON_OBJECT) {
		absent(d, what, installed, who, "not configured — bch setup "
		    "adds it");
		goto out;
	}
	c = json_get(&j, i, "command");
	a = json_get(&j, i, "args");
	if (c < 0 || json_string(&j, c, PATH_MAX, &cmd, NULL) < 0) {
		add(d, FAIL, what, "bch setup", "mcpServers.backchannel in %s "
		    "has no command", path);
		goto out;
	}
	if (a < 0 || j.t[a].type != JSON_ARRAY || j.t[a].size < 1 ||
	    json_string(&j, a + 1, 64, &arg, NULL) < 0 ||
	    strcmp(arg, "mcp") != 0) {
		add(d, FAIL, what, "bch setup", "%s runs without the argument "
		    "mcp: it is not the MCP server", cmd);
		goto out;
	}
	snprintf(shown, sizeof shown, "%s mcp", cmd);
	check_prog(d, what, cmd, shown);
out:
	free(cmd);
	free(arg);
	if (rc > 0)
		json_free(&j);
	buf_free(&b);
}

/* A TOML string value (basic or literal) at s, into out. */
static int
toml_str(const char *s, char *out, size_t outsz)
{
	char quote = *s;
	size_t w = 0;

	if (quote != '"' && quote != '\'')
		return -1;
	for (s++; *s && *s != quote; s++) {
		if (w + 1 >= outsz)
			return -1;
		if (quote == '"' && *s == '\\' && s[1]) {
			s++;
			out[w++] = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s;
		} else {
			out[w++] = *s;
		}
	}
	out[w] = 0;
	return *s == quote ? 0 : -1;
}

/* Is the line "[mcp_servers.backchannel]" (spaces, quoted keys)? */
static int
toml_ours(const char *line)
{
	char norm[200];
	size_t w = 0;

	for (; *line && *line != '#' && w + 1 < sizeof norm; line++)
		if (!strchr(" \t\"'", *line))
			norm[w++] = *line;
	norm[w] = 0;
	return strcmp(norm, "[mcp_servers.backchannel]") == 0;
}

/* The command and first argument of [mcp_servers.backchannel] in the
 * text of a config.toml (cut up in place): 1 if that table is there.
 * Either is left empty when absent or not a string. */
static int
toml_backchannel(char *text, char *cmd, size_t cmdsz, char *args,
    size_t argssz)
{
	char *line, *save = NULL;
	int in = 0, found = 0;

	for (line = text ? strtok_r(text, "\n", &save) : NULL; line;
	    line = strtok_r(NULL, "\n", &save)) {
		while (*line == ' ' || *line == '\t')
			line++;
		if (*line == '[') {
			in = toml_ours(line);
			found |= in;
			continue;
		}
		if (!in)
			continue;
		if (strncmp(line, "command", 7) == 0 &&
		    strchr(" \t=", line[7])) {
			char *v = strchr(line, '=');
			if (v && toml_str(v + 1 + strspn(v + 1, " \t"), cmd,
			    cmdsz) < 0)
				cmd[0] = 0;
		} else if (strncmp(line, "args", 4) == 0 &&
		    strchr(" \t=", line[4])) {
			char *v = strchr(line, '[');
			if (v && toml_str(v + 1 + strspn(v + 1, " \t"), args,
			    argssz) < 0)
				args[0] = 0;
		}
	}
	return found;
}

static void
codex(struct doc *d, const char *home, int *installed)
{
	const char *ch = getenv("CODEX_HOME");
	char dir[P], path[P + 16], cmd[PATH_MAX] = "", args[64] = "",
	    shown[PATH_MAX + 8];
	const char *what = "codex mcp server";
	struct buf b = BUF_INIT;
	struct stat st;
	int found;

	if (ch && *ch == '/')
		snprintf(dir, sizeof dir, "%s", ch);
	else
		snprintf(dir, sizeof dir, "%s/.codex", home);
	*installed = stat(dir, &st) == 0 || proc_find("codex", path,
	    sizeof path);
	snprintf(path, sizeof path, "%s/config.toml", dir);
	if (read_any(path, 16 << 20, &b) < 0 && errno != ENOENT) {
		add(d, FAIL, what, "bch setup", "cannot read %s: %s", path,
		    strerror(errno));
		buf_free(&b);
		return;
	}
	found = toml_backchannel(b.p, cmd, sizeof cmd, args, sizeof args);
	buf_free(&b);
	if (!found) {
		absent(d, what, *installed, "Codex", "not configured — bch "
		    "setup adds it");
		return;
	}
	if (!cmd[0]) {
		add(d, FAIL, what, "bch setup", "[mcp_servers.backchannel] in %s "
		    "has no command", path);
		return;
	}
	if (strcmp(args, "mcp") != 0) {
		add(d, FAIL, what, "bch setup", "%s runs without the argument "
		    "mcp: it is not the MCP server", cmd);
		return;
	}
	snprintf(shown, sizeof shown, "%s mcp", cmd);
	check_prog(d, what, cmd, shown);
}

void
check_harnesses(struct doc *d)
{
	const char *home = getenv("HOME");
	char dir[P], path[P + 32], p[PATH_MAX];
	struct stat st;
	int claude, gemini, cx;

	if (!home || *home != '/') {
		add(d, WARN, "harnesses", NULL, "HOME is not set: cannot look");
		return;
	}
	snprintf(dir, sizeof dir, "%s/.claude", home);
	claude = stat(dir, &st) == 0 || proc_find("claude", p, sizeof p);
	claude_hooks(d, home, claude);
	snprintf(path, sizeof path, "%s/.claude.json", home);
	mcp_json(d, "claude code mcp server", path, 0, claude, "Claude Code");
	snprintf(path, sizeof path, "%s/skills/backchannel/SKILL.md", dir);
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
		add(d, OK, "claude code skill", NULL, "%s", path);
	else
		absent(d, "claude code skill", claude, "Claude Code",
		    "not installed — bch setup installs it");
	codex(d, home, &cx);
	snprintf(dir, sizeof dir, "%s/.gemini", home);
	gemini = stat(dir, &st) == 0 || proc_find("gemini", p, sizeof p);
	snprintf(path, sizeof path, "%s/settings.json", dir);
	mcp_json(d, "gemini cli mcp server", path, 1, gemini, "Gemini CLI");
}
