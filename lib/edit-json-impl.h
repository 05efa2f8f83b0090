/* edit-json-impl: what edit-json.c (the edits) and edit-json-style.c
 * (the layout they write in) share. Private to the two. */
#ifndef BCH_EDIT_JSON_IMPL_H
#define BCH_EDIT_JSON_IMPL_H

#include <stddef.h>

#include "buf.h"
#include "json.h"

/* A token's first and one-past-last byte, a string's quotes included. */
static inline int
tstart(const struct json *j, int i)
{
	return j->t[i].start - (j->t[i].type == JSON_STRING);
}

static inline int
tend(const struct json *j, int i)
{
	return j->t[i].end + (j->t[i].type == JSON_STRING);
}

/* How a document writes its members. */
struct style {
	int pretty;
	char unit[17]; /* one level of indentation */
	char colon[5]; /* between a key and its value */
	const char *sep; /* between members on one line: "," or ", " */
	const char *eol; /* the file's line end: "\n" or "\r\n" */
};

/* The indentation of the line of s that holds offset pos, into ind. */
void edit_line_indent(const char *s, size_t pos, struct buf *ind);

/* The style of document s (parsed as j), for a member of object obj. */
void edit_style_of(const char *s, const struct json *j, int obj,
    struct style *st);

/* Append value v (token i) at indentation ind. Returns the next token. */
int edit_render(struct buf *o, const struct json *v, int i, const char *ind,
    const struct style *st);

#endif
