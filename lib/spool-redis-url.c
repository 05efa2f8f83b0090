/* spool-redis-url: the spool URL of bch-relayd --spool, read into the
 * connection's settings: redis://[user@]host[:port][/db] or
 * unix:///path, with ?db=N&prefix=P. A password never goes in the URL
 * (it would show in ps). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "spool-redis.h"

/* A key prefix: 1 to 63 of letters, digits, '.', '_', ':', '-'. */
static int
prefix_ok(const char *p)
{
	size_t n = strlen(p);

	return n > 0 && n < 64 &&
	       strspn(p, "abcdefghijklmnopqrstuvwxyz"
	                 "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:-") == n;
}

/* A whole decimal number from 0 to max at s, else -1. */
static int
number(const char *s, int max)
{
	char *end;
	long n;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	n = strtol(s, &end, 10);
	return *end || errno || n > max ? -1 : (int)n;
}

/* "?db=N&prefix=P" after a URL's path. */
static int
parse_query(struct rd *r, char *q, struct err *e)
{
	char *kv, *save = NULL;

	for (kv = strtok_r(q, "&", &save); kv;
	     kv = strtok_r(NULL, "&", &save)) {
		if (strncmp(kv, "db=", 3) == 0 &&
		    (r->db = number(kv + 3, 1000000)) >= 0)
			continue;
		if (strncmp(kv, "prefix=", 7) == 0 && prefix_ok(kv + 7))
			snprintf(r->prefix, sizeof r->prefix, "%s", kv + 7);
		else
			return err_set(e, BCH_PERM, "bad \"%s\" in the spool "
			    "URL — use db=N or prefix=P (letters, digits, "
			    "'.', '_', ':', '-')", kv);
	}
	return 0;
}

/* The [user@]host[:port][/db] of a redis:// URL, into r. */
static int
parse_server(struct rd *r, char *host, const char *url, struct err *e)
{
	char *at, *slash, *colon;

	if ((slash = strchr(host, '/'))) {
		*slash = 0;
		if (slash[1])
			r->db = number(slash + 1, 1000000);
	}
	if ((at = strrchr(host, '@'))) {
		*at = 0;
		if (strchr(host, ':'))
			return err_set(e, BCH_PERM, "a password does not go in "
			    "the spool URL (it would show in ps) — use "
			    "--redis-password-file or REDIS_PASSWORD");
		snprintf(r->user, sizeof r->user, "%s", host);
		host = at + 1;
	}
	r->port = 6379;
	if (host[0] == '[') {
		char *close = strchr(host, ']');
		if (!close || (close[1] && close[1] != ':'))
			return err_set(e, BCH_PERM, "bad spool URL %s", url);
		*close = 0;
		if (close[1] == ':')
			r->port = number(close + 2, 65535);
		host++;
	} else if ((colon = strrchr(host, ':'))) {
		*colon = 0;
		r->port = number(colon + 1, 65535);
	}
	if (!host[0] || r->port <= 0 || r->db < 0)
		return err_set(e, BCH_PERM, "bad spool URL %s — use "
		    "redis://host:port/db", url);
	if (strlen(host) >= sizeof r->host)
		return err_set(e, BCH_PERM, "bad spool URL %s — the host "
		    "name is too long", url);
	snprintf(r->host, sizeof r->host, "%s", host);
	return 0;
}

int
rd_parse_url(struct rd *r, const char *url, struct err *e)
{
	struct sockaddr_un sun;
	char u[1024], *q;

	if (strlen(url) >= sizeof u)
		return err_set(e, BCH_PERM, "spool URL too long");
	snprintf(u, sizeof u, "%s", url);
	snprintf(r->prefix, sizeof r->prefix, "bch:");
	if ((q = strchr(u, '?'))) {
		*q++ = 0;
		if (parse_query(r, q, e) < 0)
			return -1;
	}
	snprintf(r->where, sizeof r->where, "%s", u);
	if (strncmp(u, "unix://", 7) == 0) {
		if (u[7] != '/')
			return err_set(e, BCH_PERM, "bad spool URL %s — use "
			    "unix:///path/to/redis.sock", u);
		/* hiredis would cut a longer path and dial another socket. */
		if (strlen(u + 7) >= sizeof sun.sun_path)
			return err_set(e, BCH_PERM, "bad spool URL %s — a "
			    "socket path has at most %zu bytes", u,
			    sizeof sun.sun_path - 1);
		snprintf(r->host, sizeof r->host, "%s", u + 7);
		return 0;
	}
	if (strncmp(u, "redis://", 8) != 0)
		return err_set(e, BCH_PERM, "bad spool URL %s — use "
		    "redis://host:port/db or unix:///path", u);
	return parse_server(r, u + 8, url, e);
}
