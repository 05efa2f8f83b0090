/* setup-skill: the skill bch-setup installs for Claude Code,
 * ~/.claude/skills/backchannel/SKILL.md, and the marked section of
 * AGENTS.md and GEMINI.md made of its body.
 *
 * Design rationale. The skill is a whole file of ours, not an entry in
 * one of the user's files, so an update replaces it. But the user may
 * have edited it, or had a file of their own there: replaced blindly,
 * that text would be gone. So the skill ends with a line saying setup
 * wrote it, with the SHA-256 of the text above that line. A file whose
 * line matches its text (or that is the shipped SKILL.md exactly, as
 * setups before that line wrote it) is setup's, replaced and removed
 * freely; any other is kept first as SKILL.md.bak-backchannel, as every
 * file setup changes is (lib/edit.h), and --remove puts it back. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edit.h"
#include "hash.h"
#include "install.h"
#include "io.h"
#include "json.h"
#include "setup.h"

#define MARK "<!-- written by bch setup, sha256 "

int
setup_load_skill(struct setup *s, struct err *e)
{
	char path[PATH_MAX];
	const char *body, *p;

	if (s->skillfile)
		snprintf(path, sizeof path, "%s", s->skillfile);
	else if (!install_data(s->bindir, "SKILL.md", path, sizeof path))
		return err_set(e, BCH_PERM, "cannot find SKILL.md beside bch "
		    "(in %s/.. or its share/doc/backchannel) — pass --skill "
		    "FILE", s->bindir);
	if (io_readfile(AT_FDCWD, path, 1 << 20, &s->skill) < 0)
		return err_sys(e, "cannot read %s", path);
	if (!s->skill.len || !utf8_valid(s->skill.p, s->skill.len) ||
	    strncmp(s->skill.p, "---\n", 4) != 0 ||
	    !(p = strstr(s->skill.p + 3, "\n---\n")))
		return err_set(e, BCH_PERM, "%s is not a skill (no front "
		    "matter between --- lines) — pass the SKILL.md of "
		    "backchannel", path);
	for (body = p + 5; *body == '\n'; body++)
		;
	buf_printf(&s->section, BEGIN "\n%s", body);
	if (s->section.p[s->section.len - 1] != '\n')
		buf_addc(&s->section, '\n');
	buf_adds(&s->section, END "\n");
	return 0;
}

/* The file setup writes: the skill, then its mark. */
static void
skill_text(const struct setup *s, struct buf *out)
{
	char hex[65];

	buf_reset(out);
	buf_add(out, s->skill.p, s->skill.len);
	if (out->len && out->p[out->len - 1] != '\n')
		buf_addc(out, '\n');
	hash_sha256_hex(out->p, out->len, hex);
	buf_printf(out, MARK "%s: edited, it is kept as SKILL.md"
	    EDIT_BACKUP " when setup replaces it -->\n", hex);
}

static int
same(const struct buf *a, const struct buf *b)
{
	return a->len == b->len && (!a->len || memcmp(a->p, b->p, a->len) == 0);
}

/* Is b a skill as setup wrote it, unchanged since? */
static int
skill_ours(const struct setup *s, const struct buf *b)
{
	char hex[65];
	size_t start, k = strlen(MARK);

	if (s->skill.len && same(b, &s->skill))
		return 1; /* as setups before the mark wrote it */
	if (b->len < 2 || b->p[b->len - 1] != '\n')
		return 0;
	for (start = b->len - 1; start > 0 && b->p[start - 1] != '\n'; start--)
		;
	if (b->len - start < k + 64 || memcmp(b->p + start, MARK, k) != 0)
		return 0;
	hash_sha256_hex(b->p, start, hex);
	return memcmp(b->p + start + k, hex, 64) == 0;
}

/* --remove: only a skill of setup's goes, and a file the user had
 * there before comes back from its backup. */
static void
skill_remove(struct setup *s, struct edit_file *f, const char *sub)
{
	char bak[PATH_MAX + 32];
	struct err e = { 0, 0, "" };

	snprintf(bak, sizeof bak, "%s%s", f->real, EDIT_BACKUP);
	if (!skill_ours(s, &f->old)) {
		printf("claude: %s: not the skill as setup wrote it (changed "
		    "since) — left it\n", f->path);
	} else if (f->has_backup) {
		if (!s->dry && rename(bak, f->real) < 0) {
			err_sys(&e, "cannot put back %s", bak);
			setup_fail(s, f->path, &e);
			return;
		}
		printf("claude: %s: %s the skill, and put back the file that "
		    "was there before (from %s)\n", f->path, s->dry ?
		    "would remove" : "removed", bak);
	} else if (!s->dry && unlink(f->path) < 0) {
		err_sys(&e, "cannot remove it");
		setup_fail(s, f->path, &e);
	} else {
		if (!s->dry)
			rmdir(sub);
		printf("claude: %s: %s the skill\n", f->path, s->dry ?
		    "would remove" : "removed");
	}
}

/* Install or update the skill, keeping a file that is not setup's in
 * the backup first; refused when the backup holds another file still. */
static void
skill_install(struct setup *s, struct edit_file *f, const char *sub)
{
	struct err e = { 0, 0, "" };
	int mine = f->exists && skill_ours(s, &f->old), rc;
	int kept = f->exists && !mine;

	skill_text(s, &f->text);
	if (kept && f->has_backup && !same(&f->orig, &f->old)) {
		err_set(&e, BCH_PERM, "not the skill as setup wrote it, and "
		    "its backup %s%s holds another file: move that backup "
		    "away first", f->real, EDIT_BACKUP);
		setup_fail(s, f->path, &e);
		return;
	}
	f->no_backup = mine;
	if (!s->dry && !f->exists && io_mkdirs(sub, 0755) < 0)
		rc = err_sys(&e, "cannot create %s", sub);
	else
		rc = edit_commit(f, s->dry, &e);
	if (rc < 0) {
		setup_fail(s, f->path, &e);
	} else if (rc == EDIT_SAME) {
		printf("claude: %s: the skill already there\n", f->path);
	} else {
		printf("claude: %s: %s the skill%s%s%s\n", f->path, s->dry ?
		    (f->exists ? "would update" : "would install") :
		    (f->exists ? "updated" : "installed"), kept ? (s->dry ?
		    " (the file as it is would be kept in " :
		    " (the file as it was is kept in ") : "",
		    kept ? f->real : "", kept ? EDIT_BACKUP ")" : "");
		if (kept && !s->dry)
			fprintf(stderr, "bch-setup: %s: not the skill as setup "
			    "wrote it — kept it as %s%s\n", f->path, f->real,
			    EDIT_BACKUP);
	}
}

void
setup_skill(struct setup *s, const char *dir)
{
	char path[PATH_MAX], sub[PATH_MAX];
	struct edit_file f;
	struct err e = { 0, 0, "" };

	snprintf(sub, sizeof sub, "%s/skills/backchannel", dir);
	snprintf(path, sizeof path, "%s/SKILL.md", sub);
	if (edit_open(&f, path, EDIT_TEXT, 0644, &e) < 0) {
		setup_fail(s, path, &e);
		return;
	}
	if (s->remove && f.exists)
		skill_remove(s, &f, sub);
	else if (!s->remove)
		skill_install(s, &f, sub);
	edit_close(&f);
}
