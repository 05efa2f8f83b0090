/* json: strict RFC 8259 validation, tokens from jsmn, string escaping.
 * The only module that includes jsmn.h. */
#ifndef BCH_JSON_H
#define BCH_JSON_H

#include <stddef.h>

#include "buf.h"

enum { JSON_OBJECT = 1, JSON_ARRAY, JSON_STRING, JSON_PRIMITIVE };

struct json_tok {
	int type;
	int start; /* byte offsets into the text; a string's exclude quotes */
	int end;
	int size; /* members of an object, items of an array */
};

struct json {
	const char *s;
	size_t len;
	struct json_tok *t;
	int n;
};

/* Validate s strictly (grammar, escapes, UTF-8, nesting at most maxdepth,
 * one value and nothing after it) and tokenize it. A lone surrogate
 * escape is grammatical JSON and passes: the decoders judge it. 0, or -1
 * with why set to a short reason. Call json_free() after success. */
int json_parse(struct json *j, const char *s, size_t len, int maxdepth,
    const char **why);
void json_free(struct json *j);

/* Index of the token after token i and everything inside it. */
int json_next(const struct json *j, int i);

/* Index of the value of key in object obj, or -1. */
int json_get(const struct json *j, int obj, const char *key);
int json_get_last(const struct json *j, int obj, const char *key);

/* Unescape string token i into a new NUL-terminated allocation.
 * -1 if i is not a string, decodes to more than max bytes, or holds a
 * \u0000 or a lone surrogate escape. For names and other exact values. */
int json_string(const struct json *j, int i, size_t max, char **out,
    size_t *outlen);

/* json_string for free text (a message body): a \u0000 or a lone
 * surrogate escape becomes U+FFFD, so the text is read, not refused. */
int json_text(const struct json *j, int i, size_t max, char **out,
    size_t *outlen);

/* Does primitive token i spell lit ("true", "null", ...)? */
int json_is(const struct json *j, int i, const char *lit);

/* Integer value of primitive token i; -1 if it is not a plain integer. */
int json_int(const struct json *j, int i, long long *out);

/* Append s (n bytes of valid UTF-8) as a quoted JSON string: quotes,
 * backslashes and every control character escaped. */
void json_put_string(struct buf *b, const char *s, size_t n);

/* Is s[0..n) valid UTF-8 (no overlongs, surrogates or values past
 * U+10FFFF)? */
int utf8_valid(const char *s, size_t n);

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
int utf8_seqlen(const unsigned char *s, size_t n);

#endif
