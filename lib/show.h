/* show: the printed forms of PROTOCOL.md 7 and 8 that users, hooks and
 * scripts read. Every byte of a message is treated as hostile: control
 * characters and bidirectional overrides are escaped, never passed on. */
#ifndef BCH_SHOW_H
#define BCH_SHOW_H

#include "buf.h"
#include "msg.h"

/* Append s with control characters (but newline and tab when lines is
 * set) and DEL escaped as \xNN; C1 controls, bidi marks, zero-width and
 * other invisible format characters, blank fillers, line and paragraph
 * separators as \uNNNN; tag characters as \UNNNNNNNN. A variation
 * selector is escaped too unless it follows a visible character that is
 * no blank and no selector (U+E0100 and up: a CJK ideograph); a zero
 * width non-joiner or joiner unless it stands alone after a letter or
 * mark and before a letter of one Arabic or Indic script, or (a joiner)
 * between two emoji; tag characters unless they spell the flag of
 * England, Scotland or Wales after U+1F3F4. */
void show_text(struct buf *b, const char *s, int lines);

/* The character at s (n bytes left): its length in *k (1 for a byte
 * that starts no UTF-8 character, the whole sequence for a flag of
 * tags that show_text() shows as it is); if show_text() would escape it as \u
 * or \U after *prev (the code point it showed raw just before, 0 at the
 * start or after an escape), its code point, else 0. *prev becomes what
 * show_text() would hold after it. */
unsigned long show_hidden_at(const unsigned char *s, size_t n,
    unsigned long *prev, int *k);

/* show_text(), but no more than max bytes of what it appends, never
 * splitting a character or an escape: the number of bytes of s shown. */
size_t show_text_cut(struct buf *b, const char *s, int lines, size_t max);

/* "<from> -> <to>[ [URGENT]] (<ts>, id <first 8 of id>)" */
void show_head(struct buf *b, const struct msg *m);

/* The head line, scope/thread/refs lines, then the body; ends in '\n'. */
void show_human(struct buf *b, const struct msg *m);

/* One line: head, ": ", the body with whitespace runs made one space,
 * cut at 120 characters with "…". */
void show_brief(struct buf *b, const struct msg *m);

/* A fence for show_hook(): 8 random hex digits (out holds 9 bytes), so
 * a body cannot carry the line that would close its own fence. */
void show_fence(char *out);

/* The hook form: head and detail lines, then the body fenced between
 * lines carrying fence (a per-run nonce the sender cannot predict).
 * When max is non-zero, shows at most max bytes of the body and about
 * max / 2 of the detail lines, and says how to read the rest: then 1,
 * else 0. */
int show_hook(struct buf *b, const struct msg *m, const char *fence,
    size_t max);

/* One compact JSON object and '\n'. */
void show_jsonl(struct buf *b, const struct msg *m);

#endif
