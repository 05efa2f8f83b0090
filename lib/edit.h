/* edit: change a user's configuration file without losing a byte that is
 * not ours: JSON members and array items spliced in at their tokens'
 * offsets (edit-json.c), a TOML table, a marked markdown section; then
 * written back atomically, keeping the file's mode, after a backup. */
#ifndef BCH_EDIT_H
#define BCH_EDIT_H

#include <limits.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"
#include "json.h"

#define EDIT_BACKUP ".bak-backchannel" /* suffix of the one backup */
#define EDIT_MAX (64 << 20)            /* largest file we edit */

/* EDIT_JSONC: JSON with // and slash-star comments, as Gemini CLI reads
 * its settings; EDIT_JSON refuses a comment. */
enum edit_kind { EDIT_TEXT, EDIT_JSON, EDIT_JSONC };

/* What edit_commit did, or would do (dry run). */
enum { EDIT_SAME, EDIT_CREATED, EDIT_UPDATED, EDIT_DELETED };

struct edit_file {
	char path[PATH_MAX]; /* as named, for messages */
	char real[PATH_MAX]; /* what is read and written: symlinks resolved */
	enum edit_kind kind;
	int exists;
	int link;        /* path is a symlink (to real) */
	mode_t mode;     /* the file's mode, or the mode it is created with */
	uid_t uid;       /* the file's owner: another user's is not edited */
	struct buf old;  /* as read */
	struct buf text; /* as edited; starts as a copy of old */
	struct buf orig; /* the backup, the file as it was before setup */
	int has_backup;
	int no_backup;   /* set by the caller: the file is setup's own, as
	                    it wrote it, and needs no backup */
	struct stat st;  /* the file as read (exists), to see it change */
	int changed;     /* set by edit_commit: the file changed since it was
	                    read (its harness wrote it); nothing was replaced,
	                    nor a backup left: read it and edit it again */
};

/* Read path (a symlink is followed to its file, which is what gets
 * edited). A missing file reads as empty and will be created with mode.
 * 0, or -1 with e filled and nothing for edit_close() to free. */
int edit_open(struct edit_file *f, const char *path, enum edit_kind kind,
    mode_t mode, struct err *e);

/* Write f->text if it differs from what was read: first, once, a backup
 * of the file as it was (path.bak-backchannel, its mode), then the parent
 * directories (0700) if missing, then an atomic replace, keeping the
 * mode and the owner (a new file gets its directory's owner).
 * A text left empty (for JSON: an empty object) of a file setup created
 * (no backup) is deleted instead, unless path is a symlink: the user's
 * link and its file stay, with that text. With dry, only says what it
 * would do.
 * EDIT_JSONC: -1 when the edit would lose or copy a comment.
 * -1 with f->changed set (BCH_TEMP) when, just before the rename, the
 * file is no longer the one read (inode, size, mtime, ctime).
 * EDIT_SAME, EDIT_CREATED, EDIT_UPDATED or EDIT_DELETED, or -1. */
int edit_commit(struct edit_file *f, int dry, struct err *e);

void edit_close(struct edit_file *f);

/* Replace path (a symlink itself, not its file) atomically with the n
 * bytes at p, mode mode, as edit_commit writes: a file there keeps its
 * owner, a new one gets its directory's; the temporary file beside it
 * is made anew. No backup, no parent directories. 0, or -1 with e
 * filled (naming path). */
int edit_write(const char *path, const char *p, size_t n, mode_t mode,
    struct err *e);

/* JSON. doc is the text of an object (empty text counts as {}); path is
 * a NULL-terminated list of keys from the top. New text follows the
 * document's own indentation and spacing. Each returns 1 when doc
 * changed, 0 when it already was so, -1 with e filled when doc is not a
 * JSON object or a value on the path is not what the path needs. */

/* Make the member at path hold value (compact JSON), creating the
 * objects on the way. An existing equal value is left as it is. */
int edit_json_set(struct buf *doc, const char *const *path, const char *value,
    struct err *e);

/* How an array item relates to the item we want (the callback's answer). */
enum {
	EDIT_OTHER,    /* not ours */
	EDIT_OURS_OLD, /* ours, from an older setup: replace it */
	EDIT_OURS,     /* ours, exactly as wanted */
	EDIT_HAS_OURS  /* the user's, but it already does what ours would */
};
typedef int (*edit_item_fn)(const struct json *j, int item, void *arg);

/* Make the array at path hold item (compact JSON): nothing if some item
 * is EDIT_OURS or EDIT_HAS_OURS, else replace the first EDIT_OURS_OLD,
 * else append. Creates the array and the objects on the way. */
int edit_json_add_item(struct buf *doc, const char *const *path,
    const char *item, edit_item_fn kind, void *arg, struct err *e);

/* What an edit_json_fix callback asks for in one child: token tok
 * (the child or a value inside it) changed to value (compact JSON), or
 * with value NULL taken out of the array or object that holds it. */
struct edit_change {
	int tok; /* -1: nothing to change */
	const char *value;
};
typedef void (*edit_fix_fn)(const struct json *j, int kid, void *arg,
    struct edit_change *c);

/* Go through the children of the array or object at path (an object's:
 * each member's value, its key the token before), asking fn for a change
 * and making it, then asking about the same child again (or the next,
 * when it is gone or fn asks for nothing that is not so already). Objects
 * and arrays this leaves empty go, from path up, unless they exist in
 * orig (the file before setup; NULL: none). */
int edit_json_fix(struct buf *doc, const char *const *path, edit_fix_fn fn,
    void *arg, const char *orig, size_t origlen, struct err *e);

/* Copy s[0..n) to out (n bytes) with each comment outside strings (//
 * to the line end, slash-star to star-slash) blanked to spaces, line
 * ends kept, so that offsets stay the same (out may be s). 1 when there
 * was one. The
 * edits above read doc so and splice into its own text: comments
 * outside what they change stay. */
int edit_json_uncomment(const char *s, size_t n, char *out);

/* Does doc's value at path exist? (doc invalid: no.) */
int edit_json_has(const char *doc, size_t len, const char *const *path);

/* TOML. table names a table by its dotted key parts ({"mcp_servers",
 * "backchannel", NULL}, bare keys); keys and vals are NULL-terminated
 * lists of the keys (bare) that are ours in it and their values (TOML,
 * one line each). The table runs from its header to the next header,
 * less the blank and comment lines before that one. Both return 1 when
 * doc changed, 0 when it did not, -1 with e filled. */

/* Make the table hold keys = vals: each replaces that key's line, or
 * goes after the table's last line; the table's other keys stay. No
 * table: append it, after a blank line. -1 when the file defines the
 * table otherwise (dotted keys, an inline table or a value of a table
 * above it, an array of tables), where a header would be invalid. */
int edit_toml_set(struct buf *doc, const char *const *table,
    const char *const *keys, const char *const *vals, struct err *e);

/* Take keys out of the table; the whole table goes, with the blank line
 * that set put before it, when nothing else is in it. */
int edit_toml_del(struct buf *doc, const char *const *table,
    const char *const *keys, struct err *e);

/* Markdown: a section from a line `begin` to a line `end` (markers
 * included, in block). Same contract as the TOML pair. -1 when a begin
 * marker has no end marker after it. */
int edit_md_set(struct buf *doc, const char *begin, const char *end,
    const char *block, struct err *e);
int edit_md_del(struct buf *doc, const char *begin, const char *end,
    struct err *e);

/* Replace doc[start..end) with the n bytes at p. */
void edit_splice(struct buf *doc, size_t start, size_t end, const char *p,
    size_t n);

#endif
