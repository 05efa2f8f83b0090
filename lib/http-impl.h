/* http-impl: what http.c (heads, framing) and http-chunked.c (chunked
 * bodies) share. Private to the two. */
#ifndef BCH_HTTP_IMPL_H
#define BCH_HTTP_IMPL_H

#include <stddef.h>

#include "http.h"

/* Is c a token character (RFC 9110 5.6.2)? */
int http_tchar(int c);

/* Decode the chunked body of b[0..n) from s->at on, into s->body.
 * Returns the length of the whole message when the last chunk and its
 * trailer section are in, 0 for more, -1 with *status (400, 413). */
long http_dechunk(struct http_parse *s, const char *b, size_t n, size_t max,
    int *status);

#endif
