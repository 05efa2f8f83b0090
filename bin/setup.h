/* setup.h: what bch-setup's two files share — its state, and the
 * entries it splices into each harness's files (bin/setup-entries.c). */
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
