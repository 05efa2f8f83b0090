/* url: a relay URL, http(s)://host[:port][/prefix], taken apart. */
#ifndef BCH_URL_H
#define BCH_URL_H

#include "err.h"

struct url {
	char host[256];   /* an IPv6 literal without its brackets */
	char port[8];     /* digits: the URL's, else 443 or 80 */
	char prefix[512]; /* the path the routes go under, "" or "/x" */
	int https;
};

/* Take s apart into u: 0, or -1 with e (if not NULL) saying why, as one
 * line, BCH_PERM. Only the form is checked; the port is not range checked
 * and a port of more than 7 digits is cut to its first 7, as before. */
int url_parse(struct url *u, const char *s, struct err *e);

#endif
