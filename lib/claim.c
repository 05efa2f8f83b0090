/* claim: the name of a claim in cur/, written by spool-fs and read back
 * by spool-fs (to return a dead reader's claims) and bch-doctor. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "claim.h"

void
claim_host(char *out, size_t outsz)
{
	size_t i;

	out[outsz - 1] = 0;
	if (gethostname(out, outsz - 1) < 0 || !out[0])
		snprintf(out, outsz, "localhost");
	for (i = 0; out[i]; i++) {
		char ch = out[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_'))
			out[i] = '_';
	}
}

ssize_t
claim_parse(const char *name, char *host, size_t hostsz, long *pid)
{
	const char *c = strstr(name, ".claim."), *h, *dot;
	char *end;

	if (!c)
		return -1;
	h = c + 7;
	if (!(dot = strrchr(h, '.')) || dot == h ||
	    (size_t)(dot - h) >= hostsz)
		return -1;
	snprintf(host, hostsz, "%.*s", (int)(dot - h), h);
	errno = 0;
	*pid = strtol(dot + 1, &end, 10);
	if (errno || *end || *pid <= 0)
		return -1;
	return c - name;
}
