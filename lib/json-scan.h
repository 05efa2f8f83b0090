/* json-scan: the top-level members of a JSON object, read as a stream
 * and kept in a fixed space: for a line too long to keep whose id (say)
 * is still wanted. Only the top level is checked as JSON; a nested value
 * is followed by its brackets and strings alone. */
#ifndef BCH_JSON_SCAN_H
#define BCH_JSON_SCAN_H

#include <stddef.h>

#define JSON_SCAN_NAMES 8
#define JSON_SCAN_VAL 256 /* the longest value text kept */
#define JSON_SCAN_DEPTH 64 /* as deep as bch-mcp parses */

struct json_scan {
	const char *const *names; /* members to watch, NULL-ended */
	int state, depth, odd, str, esc, cur;
	unsigned long long objs; /* bit d: the container at depth d+1 is {} */
	char key[64]; /* the top-level key being read, quotes and all */
	size_t keylen;
	struct {
		int n; /* times given */
		size_t len; /* its value's length; text kept up to VAL */
		char val[JSON_SCAN_VAL];
	} m[JSON_SCAN_NAMES];
};

/* Start a scan watching names (NULL-ended, at most JSON_SCAN_NAMES, each
 * at most 8 bytes; names match keys as json_get() does, escapes read). */
void json_scan_init(struct json_scan *s, const char *const *names);

/* Read the next n bytes of the text. */
void json_scan(struct json_scan *s, const char *p, size_t n);

/* Was the text one object, closed, its top level well-formed? */
int json_scan_ok(const struct json_scan *s);

/* Watched member k, if the text was ok and gave it exactly once: its
 * type (JSON_STRING, JSON_PRIMITIVE, JSON_OBJECT or JSON_ARRAY) as its
 * first byte tells, and in *val and *len its text when that is at most
 * JSON_SCAN_VAL bytes of valid JSON (else *val is NULL). 0 otherwise. */
int json_scan_member(const struct json_scan *s, int k, const char **val,
    size_t *len);

#endif
