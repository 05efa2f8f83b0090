/* scope: normalisation and matching of scopes, and the match string of a
 * working directory, found by reading .git/config without running git. */
#include <ctype.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "io.h"
#include "scope.h"

static void
strip_suffix_slashes(char *s)
{
	size_t n = strlen(s);

	while (n > 0 && s[n - 1] == '/')
		s[--n] = 0;
}

/* The length of the "scheme://" p starts with (RFC 3986: a letter, then
 * letters, digits, '+', '-' or '.'), else 0. */
static size_t
scheme_len(const char *p)
{
	size_t i;

	if (!isalpha((unsigned char)p[0]))
		return 0;
	for (i = 1; isalnum((unsigned char)p[i]) || p[i] == '+' ||
	    p[i] == '-' || p[i] == '.'; i++)
		;
	return strncmp(p + i, "://", 3) == 0 ? i + 3 : 0;
}

/* Where p's host begins: past a user ("git@", "bob@", "user:token@"),
 * the last '@' before the first '/'. */
static const char *
past_user(const char *p)
{
	const char *at = NULL, *q;

	for (q = p; *q && *q != '/'; q++)
		if (*q == '@')
			at = q;
	return at ? at + 1 : p;
}

/* The length of the ":port" right after the host of a URL, else 0. */
static size_t
port_len(const char *host)
{
	const char *p = host + strcspn(host, ":/");
	size_t n;

	if (*p != ':')
		return 0;
	n = strspn(p + 1, "0123456789");
	return p[1 + n] == '/' || p[1 + n] == 0 ? n + 1 : 0;
}

/* The length of a leading "www." label on the host at p when what
 * follows is still a domain name and a path follows it: www.github.com/o/r
 * is github.com/o/r, but a scope naming a repository alone,
 * "www.acme.com", is that repository's name. Else 0. */
static size_t
www_len(const char *p)
{
	size_t n;

	if (strncasecmp(p, "www.", 4) != 0)
		return 0;
	n = strcspn(p + 4, ":/");
	return n > 0 && memchr(p + 4, '.', n) && p[4 + n] ? 4 : 0;
}

/* A remote names its repository in several forms: https://host/o/r.git,
 * git@host:o/r.git, ssh://git@host:22/o/r, user:token@ in an https URL,
 * a host with or without "www.". Each becomes host/o/r, so that a scope
 * written in any of them, or as o/r, is found in the match string of a
 * checkout cloned with another. */
void
scope_normalize(const char *in, char *out, size_t outsz)
{
	size_t skip = 0, at = 0, i, n, o = 0;
	const char *p;
	int url;

	url = (n = scheme_len(in)) > 0;
	p = past_user(in + n);
	p += www_len(p);
	if (url) {
		at = (size_t)(p - in) + strcspn(p, ":/");
		skip = port_len(p);
	}
	for (i = (size_t)(p - in); in[i] && o + 1 < outsz; i++) {
		if (skip && i == at) {
			i += skip - 1;
			continue;
		}
		out[o] = (char)tolower((unsigned char)in[i]);
		if (out[o] == ':')
			out[o] = '/';
		o++;
	}
	if (outsz)
		out[o] = 0;
	strip_suffix_slashes(out);
	n = strlen(out);
	if (n >= 4 && strcmp(out + n - 4, ".git") == 0)
		out[n - 4] = 0;
	strip_suffix_slashes(out);
}

/* Does m hold s as whole path segments: starting at its start or after
 * a '/', ending at its end or before one? "acme/api" is in
 * "github.com/acme/api", not in "github.com/acme/api-private" nor in
 * "github.com/notacme/api", which are other repositories. */
static int
holds(const char *m, const char *s)
{
	size_t n = strlen(s);
	const char *p;

	for (p = m; (p = strstr(p, s)); p++)
		if ((p == m || p[-1] == '/') && (p[n] == 0 || p[n] == '/'))
			return 1;
	return 0;
}

/* Does the match string m, of one or more alternatives one a line, hold
 * the normalised scope s? Each alternative is normalised on its own. */
static int
any_holds(const char *m, const char *s)
{
	char *alt = xmalloc(strlen(m) + 1), *norm = xmalloc(strlen(m) + 1);
	int ok = 0;

	while (*m && !ok) {
		size_t n = strcspn(m, "\n");

		memcpy(alt, m, n);
		alt[n] = 0;
		scope_normalize(alt, norm, n + 1);
		ok = *norm && holds(norm, s);
		m += n + (m[n] == '\n');
	}
	free(alt);
	free(norm);
	return ok;
}

int
scope_match(const char *scope, const char *match)
{
	char *s;
	int ok;

	if (!scope || !*scope)
		return 1;
	s = xmalloc(strlen(scope) + 1);
	scope_normalize(scope, s, strlen(scope) + 1);
	if (!*s) { /* "/", "https://": no repository named, so none left out */
		free(s);
		return 1;
	}
	if (!match || !*match) {
		free(s);
		return 0;
	}
	ok = any_holds(match, s);
	free(s);
	return ok;
}

/* Find url = ... in [remote "<name>"] of a git config text. */
static int
remote_url(const char *text, const char *name, char *out, size_t outsz)
{
	const char *line = text;
	char head[128];
	int in_remote = 0;

	snprintf(head, sizeof head, "[remote \"%s\"]", name);

	while (*line) {
		const char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) : strlen(line);
		char l[2048];
		char *p, *q;

		if (n >= sizeof l)
			n = sizeof l - 1;
		memcpy(l, line, n);
		l[n] = 0;
		line = end ? end + 1 : line + strlen(line);
		for (p = l; *p == ' ' || *p == '\t'; p++)
			;
		if (*p == '[') {
			in_remote = strncmp(p, head, strlen(head)) == 0;
			continue;
		}
		if (!in_remote || strncasecmp(p, "url", 3) != 0)
			continue;
		for (q = p + 3; *q == ' ' || *q == '\t'; q++)
			;
		if (*q != '=')
			continue;
		for (q++; *q == ' ' || *q == '\t'; q++)
			;
		n = strlen(q);
		while (n > 0 && (q[n - 1] == ' ' || q[n - 1] == '\t' ||
		    q[n - 1] == '\r'))
			q[--n] = 0;
		if (n >= 2 && q[0] == '"' && q[n - 1] == '"') {
			q[n - 1] = 0;
			q++;
		}
		if (!*q)
			continue;
		snprintf(out, outsz, "%s", q);
		return 0;
	}
	return -1;
}

/* The git config of the repository whose .git entry is at dotgit. */
static int
read_git_config(const char *dotgit, struct buf *cfg)
{
	char path[PATH_MAX + 64], dir[PATH_MAX];
	struct buf b = BUF_INIT;
	struct stat st;
	int rc = -1;

	if (stat(dotgit, &st) < 0)
		return -1;
	snprintf(dir, sizeof dir, "%s", dotgit);
	if (S_ISREG(st.st_mode)) {
		/* A worktree or submodule: "gitdir: <path>". */
		char *p, *nl;
		if (io_readfile(AT_FDCWD, dotgit, 4096, &b) < 0)
			goto out;
		if (strncmp(b.p, "gitdir:", 7) != 0)
			goto out;
		for (p = b.p + 7; *p == ' '; p++)
			;
		if ((nl = strpbrk(p, "\r\n")))
			*nl = 0;
		if (*p == '/') {
			snprintf(dir, sizeof dir, "%s", p);
		} else {
			char *slash;
			snprintf(path, sizeof path, "%s", dotgit);
			slash = strrchr(path, '/');
			if (slash)
				*slash = 0;
			snprintf(dir, sizeof dir, "%.2000s/%.2000s", path, p);
		}
		buf_reset(&b);
		snprintf(path, sizeof path, "%s/commondir", dir);
		if (io_readfile(AT_FDCWD, path, 4096, &b) == 0 && b.len) {
			char common[PATH_MAX];
			if ((nl = strpbrk(b.p, "\r\n")))
				*nl = 0;
			if (b.p[0] == '/')
				snprintf(common, sizeof common, "%s", b.p);
			else
				snprintf(common, sizeof common, "%.2000s/%.2000s",
				    dir, b.p);
			snprintf(dir, sizeof dir, "%s", common);
		}
	}
	snprintf(path, sizeof path, "%s/config", dir);
	rc = io_readfile(AT_FDCWD, path, 1 << 20, cfg);
out:
	buf_free(&b);
	return rc;
}

/* Is dir a git directory itself, as git tells one: a HEAD, objects/
 * and refs/? So is a bare repository, and the .git of a checkout. */
static int
git_dir(const char *dir)
{
	char path[PATH_MAX + 16];
	struct stat st;

	snprintf(path, sizeof path, "%s/HEAD", dir);
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return 0;
	snprintf(path, sizeof path, "%s/objects", dir);
	if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
		return 0;
	snprintf(path, sizeof path, "%s/refs", dir);
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The match string of the repository whose git entry is dotgit and
 * whose top directory is top: its origin remote, else top; then, on a
 * line of its own, its upstream remote if it has one (a fork's session
 * is also the one working on the repository it was forked from). */
static void
repo_at(const char *dotgit, const char *top, char *out, size_t outsz)
{
	struct buf cfg = BUF_INIT;
	char up[2048];
	size_t n;
	int found;

	found = read_git_config(dotgit, &cfg) == 0;
	if (!found || remote_url(cfg.p, "origin", out, outsz) < 0)
		snprintf(out, outsz, "%s", top);
	n = strlen(out);
	/* Only whole: a cut URL could name another repository. */
	if (found && remote_url(cfg.p, "upstream", up, sizeof up) == 0 &&
	    n + 1 + strlen(up) < outsz)
		snprintf(out + n, outsz - n, "\n%s", up);
	buf_free(&cfg);
}

int
repo_match(const char *dir, char *out, size_t outsz)
{
	char cur[PATH_MAX], dotgit[PATH_MAX + 8];
	char *slash;

	if (!realpath(dir, cur))
		return -1;
	for (;;) {
		snprintf(dotgit, sizeof dotgit, "%s/.git",
		    strcmp(cur, "/") ? cur : "");
		if (access(dotgit, F_OK) == 0) {
			repo_at(dotgit, cur, out, outsz);
			return 0;
		}
		if (git_dir(cur)) {
			/* In a bare repository, or in the .git of a checkout,
			 * whose top directory is the one above. */
			slash = strrchr(cur, '/');
			snprintf(dotgit, sizeof dotgit, "%s", cur);
			if (slash && strcmp(slash, "/.git") == 0)
				*(slash == cur ? slash + 1 : slash) = 0;
			repo_at(dotgit, cur, out, outsz);
			return 0;
		}
		slash = strrchr(cur, '/');
		if (!slash || slash == cur)
			break;
		*slash = 0;
	}
	if (!realpath(dir, cur))
		return -1;
	snprintf(out, outsz, "%s", cur);
	return 0;
}
