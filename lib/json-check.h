/* json-check: strict validation of JSON text, for json.c. */
#ifndef BCH_JSON_CHECK_H
#define BCH_JSON_CHECK_H

#include <stddef.h>

/* Is s[0..len) one proper JSON value, nested at most maxdepth deep,
 * with nothing after it but whitespace? 0, or -1 with why set. */
int json_check(const char *s, size_t len, int maxdepth, const char **why);

/* The value of the 4 hex digits at s (of n bytes), or -1. */
long json_hex4(const unsigned char *s, size_t n);

#endif
