/* url: a relay URL taken apart, the one parser of the client (spool-http)
 * and of bch-doctor, so both mean the same by a URL. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "url.h"

/* The error for s, echoed without its user:password@, if any; s is not
 * echoed at all when it holds a byte that is no printable ASCII: it
 * would reach a terminal as it is, and U+202E or an escape sequence
 * could show another relay than the one named. */
static int
url_bad(const char *s, struct err *e)
{
	const char *auth = strstr(s, "://"), *at;

	if (!url_ascii(s))
		return err_set(e, BCH_PERM, "bad relay URL: it holds a control "
		    "character, a space or a byte beyond ASCII — use "
		    "http(s)://host[:port], a host name beyond ASCII in "
		    "punycode");
	auth = auth ? auth + 3 : s;
	at = memrchr(auth, '@', strcspn(auth, "/"));
	if (at)
		return err_set(e, BCH_PERM, "bad relay URL \"%.*s…%.200s\" — "
		    "use http(s)://host[:port], with no user:password@",
		    (int)(auth - s), s, at);
	return err_set(e, BCH_PERM, "bad relay URL \"%.200s\" — use "
	    "http(s)://host[:port]", s);
}

int
url_ascii(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

int
url_parse(struct url *u, const char *s, struct err *e)
{
	const char *p = s, *slash, *colon;
	size_t n;

	memset(u, 0, sizeof *u);
	if (!url_ascii(s))
		goto bad;
	if (strncmp(p, "https://", 8) == 0) {
		u->https = 1;
		p += 8;
	} else if (strncmp(p, "http://", 7) == 0) {
		p += 7;
	} else {
		goto bad;
	}
	slash = strchr(p, '/');
	n = slash ? (size_t)(slash - p) : strlen(p);
	if (memchr(p, '@', n))
		goto bad; /* user:password@ names no host */
	if (n >= sizeof u->host)
		goto bad; /* cut short, it would name another host or port */
	/* A query or fragment would swallow the route appended to the
	 * prefix; a prefix cut short would name another path. */
	if (strpbrk(p, "?#") || (slash && strlen(slash) >= sizeof u->prefix))
		goto bad;
	snprintf(u->prefix, sizeof u->prefix, "%s", slash ? slash : "");
	if (p[0] == '[') {
		const char *rb = memchr(p, ']', n);
		/* Only a port may follow: [::1]relay.example would show a
		 * host it does not connect to. */
		if (!rb || (rb + 1 < p + n && rb[1] != ':'))
			goto bad;
		snprintf(u->host, sizeof u->host, "%.*s", (int)(rb - p - 1),
		    p + 1);
		colon = rb + 1 < p + n && rb[1] == ':' ? rb + 1 : NULL;
	} else {
		colon = memchr(p, ':', n);
		snprintf(u->host, sizeof u->host, "%.*s",
		    (int)(colon ? (size_t)(colon - p) : n), p);
	}
	if (colon && p + n - colon - 1 > 5)
		goto bad; /* no port has more than five digits */
	snprintf(u->port, sizeof u->port, "%.*s",
	    colon ? (int)(p + n - colon - 1) : 3, colon ? colon + 1 :
	    u->https ? "443" : "80");
	n = strlen(u->prefix);
	while (n && u->prefix[n - 1] == '/')
		u->prefix[--n] = 0;
	if (!u->host[0] || !u->port[0] || strspn(u->port, "0123456789") !=
	    strlen(u->port) || atoi(u->port) < 1 || atoi(u->port) > 65535)
		goto bad;
	return 0;
bad:
	return url_bad(s, e);
}

void
url_authority(const struct url *u, char *out, size_t n)
{
	int v6 = strchr(u->host, ':') != NULL;
	int dflt = strcmp(u->port, u->https ? "443" : "80") == 0;

	snprintf(out, n, "%s%s%s%s%s", v6 ? "[" : "", u->host, v6 ? "]" : "",
	    dflt ? "" : ":", dflt ? "" : u->port);
}

int
url_in_clear(const char *s)
{
	struct url u;

	if (url_parse(&u, s, NULL) < 0 || u.https)
		return 0;
	return strcmp(u.host, "localhost") != 0 &&
	    strncmp(u.host, "127.", 4) != 0 && strcmp(u.host, "::1") != 0;
}

void
url_warn_clear(const char *prog, const char *s)
{
	if (url_in_clear(s))
		fprintf(stderr, "%s: warning: %s is plain HTTP off this "
		    "machine: tokens and messages cross the network "
		    "unencrypted — use an https:// relay (bch-relayd --cert "
		    "--key, or TLS in front)\n", prog, s);
}
