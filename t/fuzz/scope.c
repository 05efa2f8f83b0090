/* scope fuzz target: scope_normalize and scope_match on the input split
 * at its first newline, and repo_match over a .git/config and a .git
 * file ("gitdir: ...") that hold the input. */
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "scope.h"

#include "check.h"

/* base/a/.git/config             the input, for a work tree at base/a
 * base/b/.git                    the input, as a worktree's .git file
 * base/b/gd/config               the input, for "gitdir: gd"
 * base/b/wt/commondir            "../gd", for "gitdir: wt" */
static char base[PATH_MAX], a_top[PATH_MAX], a_dir[PATH_MAX];
static char a_config[PATH_MAX], b_top[PATH_MAX], b_dir[PATH_MAX];
static char b_dotgit[PATH_MAX], b_config[PATH_MAX], b_common[PATH_MAX];

static void
put(const char *path, const void *p, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	CHECK(fd >= 0);
	CHECK(io_writeall(fd, p, n) == 0);
	CHECK(close(fd) == 0);
}

static void
path(char *out, const char *rel)
{
	snprintf(out, PATH_MAX, "%s/%s", base, rel);
}

static void
cleanup(void)
{
	static const char *rm[] = { "a/.git/config", "a/.git", "a/sub/dir",
		"a/sub", "a", "b/.git", "b/gd/config", "b/gd", "b/wt/commondir",
		"b/wt", "b/sub", "b", "" };
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof rm / sizeof rm[0]; i++) {
		path(p, rm[i]);
		if (unlink(p) < 0)
			rmdir(p);
	}
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char *dirs[] = { "a", "a/.git", "a/sub", "a/sub/dir", "b",
		"b/gd", "b/wt", "b/sub" };
	const char *tmp = getenv("TMPDIR");
	char p[PATH_MAX];
	size_t i;

	if (access("/dev/shm", W_OK) == 0)
		tmp = "/dev/shm";
	else if (!tmp || !*tmp)
		tmp = "/tmp";
	snprintf(p, sizeof p, "%s/bch-fuzz-scope.XXXXXX", tmp);
	if (!mkdtemp(p) || !realpath(p, base)) {
		perror("bch-fuzz-scope: mkdtemp");
		exit(1);
	}
	atexit(cleanup);
	for (i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		path(p, dirs[i]);
		CHECK(mkdir(p, 0700) == 0);
	}
	path(a_top, "a");
	path(a_dir, "a/sub/dir");
	path(a_config, "a/.git/config");
	path(b_top, "b");
	path(b_dir, "b/sub");
	path(b_dotgit, "b/.git");
	path(b_config, "b/gd/config");
	path(b_common, "b/wt/commondir");
	put(b_common, "../gd\n", 6);
	return 0;
}

static void
check_normalize(const char *in)
{
	size_t n = strlen(in), k, len;
	char *out = malloc(n + 1), *small;

	CHECK(out);
	scope_normalize(in, out, n + 1);
	len = strlen(out);
	CHECK(len <= n && !strchr(out, ':'));
	CHECK(len == 0 || out[len - 1] != '/');
	for (k = 0; k < len; k++)
		CHECK(!(out[k] >= 'A' && out[k] <= 'Z'));
	/* A short buffer truncates, never overflows. */
	k = n < 8 ? n + 1 : 8;
	small = malloc(k);
	CHECK(small);
	scope_normalize(in, small, k);
	CHECK(strlen(small) < k);
	free(small);
	free(out);
}

static void
check_scope(const char *s, size_t n)
{
	const char *nl = memchr(s, '\n', n);
	char *scope, *match = NULL;

	scope = strndup(s, nl ? (size_t)(nl - s) : n);
	CHECK(scope);
	if (nl) {
		match = strndup(nl + 1, n - (size_t)(nl + 1 - s));
		CHECK(match);
		check_normalize(match);
	}
	check_normalize(scope);
	(void)scope_match(scope, match);
	(void)scope_match(match, scope);
	CHECK(scope_match(NULL, match) == 1 && scope_match("", match) == 1);
	if (*scope)
		CHECK(scope_match(scope, scope) == 1);
	free(scope);
	free(match);
}

static void
check_repo(const char *dir, const char *top, const char *s, size_t n,
    int has_git_section)
{
	char out[PATH_MAX + 8], *small, *nl;

	CHECK(repo_match(dir, out, sizeof out) == 0);
	/* One line, or two: origin (else the top), then upstream. */
	nl = strchr(out, '\n');
	CHECK(*out && out[0] != '\n');
	if (nl)
		CHECK(nl[1] && !strchr(nl + 1, '\n') && has_git_section);
	if (!has_git_section)
		CHECK(strcmp(out, top) == 0);
	small = malloc(5);
	CHECK(small);
	CHECK(repo_match(dir, small, 5) == 0);
	CHECK(strlen(small) < 5);
	free(small);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	int remote = memmem(s, size, "[remote", 7) != NULL;

	check_scope(s, size);
	put(a_config, data, size);
	check_repo(a_dir, a_top, s, size, remote);
	put(b_dotgit, data, size);
	put(b_config, data, size);
	check_repo(b_dir, b_top, s, size,
	    remote || (size >= 7 && memcmp(s, "gitdir:", 7) == 0));
	return 0;
}
