/* url: a relay URL, http(s)://host[:port][/prefix], taken apart. */
#ifndef BCH_URL_H
#define BCH_URL_H

#include <stddef.h>

#include "err.h"

struct url {
	char host[256];   /* an IPv6 literal without its brackets */
	char port[8];     /* digits: the URL's, else 443 or 80 */
	char prefix[512]; /* the path the routes go under, "" or "/x" */
	int https;
};

/* Take s apart into u: 0, or -1 with e (if not NULL) saying why, as one
 * line, BCH_PERM, never echoing a user:password@ (refused: it names no
 * host), nor a URL that url_ascii() refuses. A port must be 1 to 65535. */
int url_parse(struct url *u, const char *s, struct err *e);

/* Is s printable ASCII with no space, as a URL is (a host name beyond
 * ASCII is written in punycode)? 1 or 0. */
int url_ascii(const char *s);

/* What a request to u says in its Host header (RFC 9110 7.2), into
 * out: the port unless it is the scheme's own, an IPv6 literal in
 * brackets. A relay behind a virtual host or a proxy routes by it. */
#define URL_AUTHORITY_MAX (sizeof ((struct url *)0)->host + 10)
void url_authority(const struct url *u, char *out, size_t n);

/* Does a request to the URL s cross a network in clear: plain http://
 * to a host other than this machine's loopback? 1 or 0 (0 too for s
 * that is no URL). */
int url_in_clear(const char *s);

/* The warning a program whose requests to s would carry tokens says
 * once on stderr when url_in_clear(s): "prog: warning: ...". */
void url_warn_clear(const char *prog, const char *s);

#endif
