/* setup.h: what bch-setup's files share — its state, the entries it
 * splices into each harness's files (bin/setup-entries.c), and the skill
 * (bin/setup-skill.c). */
#ifndef BCH_SETUP_H
#define BCH_SETUP_H

#include <limits.h>

#include "buf.h"
#include "err.h"

#define BEGIN "<!-- backchannel:begin -->"
#define END "<!-- backchannel:end -->"
#define HOOK_TAIL " --hook --here"

struct setup {
	int dry, remove;
	char home[PATH_MAX];
	char bindir[PATH_MAX];
	char bch[PATH_MAX];   /* absolute path of the bch dispatcher */
	char drain[PATH_MAX]; /* bch-drain, where the dispatcher finds it */
	struct buf hook;      /* the hook command, quoted for sh */
	struct buf skill;     /* SKILL.md */
	struct buf section;   /* the marked section for AGENTS.md, GEMINI.md */
	const char *skillfile;
	int nohooks, wakeup;
	const char *kind, *svdir; /* --service, --sv */
	int status;           /* worst exit status so far */
	char what[64];        /* what an entry function changed, when it is
	                         less than the caller says: "the X hook" */
	struct err e;
};

/* Say on stderr that the file at path was left untouched, and why;
 * the exit status becomes e's. */
void setup_fail(struct setup *s, const char *path, const struct err *e);

/* bin/setup-skill.c: read SKILL.md (--skill, else the one shipped) and
 * make the marked section of its body. 0, or -1 with e filled. */
int setup_load_skill(struct setup *s, struct err *e);

/* bin/setup-skill.c: install, update or (s->remove) take out the skill
 * in dir/skills/backchannel/SKILL.md; a file there that setup did not
 * write, or that was changed since, is kept in SKILL.md.bak-backchannel
 * before it is replaced, and put back by --remove. */
void setup_skill(struct setup *s, const char *dir);

/* Each splices setup's entry into doc, a harness's file (orig, its text
 * before, or NULL), or takes it out with s->remove: 0, or -1 with e. */
int setup_claude_hooks(struct setup *s, struct buf *doc,
    const struct buf *orig, struct err *e);
int setup_claude_mcp(struct setup *s, struct buf *doc,
    const struct buf *orig, struct err *e);
int setup_gemini_mcp(struct setup *s, struct buf *doc,
    const struct buf *orig, struct err *e);
int setup_codex_toml(struct setup *s, struct buf *doc,
    const struct buf *orig, struct err *e);
/* The marked section of AGENTS.md and GEMINI.md. */
int setup_section(struct setup *s, struct buf *doc, const struct buf *orig,
    struct err *e);

#endif
