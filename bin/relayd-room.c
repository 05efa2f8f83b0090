/* relayd-room: the room bch-relayd serves — its token (from the command
 * line, a file, the environment, or one made on first start) and, with
 * --spool, the spool in Redis it shares with other relays. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "invite.h"
#include "io.h"
#include "relayd.h"

/* A room token shorter than ROOM_TOKEN_MIN: refuse to start. */
static void
check_length(struct relayd *d, const char *tok, const char *from)
{
	if (strlen(tok) >= ROOM_TOKEN_MIN)
		return;
	err_set(&d->c.e, BCH_PERM, "room token %s is too short — use at least "
	    "%d characters", from, ROOM_TOKEN_MIN);
	cli_fail(&d->c);
}

/* The room token: --token, --token-file, BACKCHANNEL_ROOM_TOKEN, else
 * the one kept in <home>/room-token (made on first start); each at
 * least ROOM_TOKEN_MIN characters. */
void
room_token(struct relayd *d, const char *tok, const char *file, char *out,
    size_t outsz)
{
	char path[PATH_MAX + 16], from[PATH_MAX + 24];
	struct buf b = BUF_INIT;
	const char *env = getenv("BACKCHANNEL_ROOM_TOKEN");

	if (tok || (!file && env && *env)) {
		check_length(d, tok ? tok : env,
		    tok ? "from --token" : "in BACKCHANNEL_ROOM_TOKEN");
		snprintf(out, outsz, "%s", tok ? tok : env);
		return;
	}
	if (!file) {
		snprintf(path, sizeof path, "%s/room-token", d->c.cfg.home);
		file = path;
		if (access(path, F_OK) < 0) {
			char t[65];
			if (io_mkdirs(d->c.cfg.home, 0700) < 0 ||
			    hash_random_hex(t, 24) < 0) {
				err_sys(&d->c.e, "cannot make a room token in %s", path);
				cli_fail(&d->c);
			}
			buf_printf(&b, "%s\n", t);
			if (io_replace(path, b.p, b.len, 1, &d->c.e) < 0)
				cli_fail(&d->c);
			buf_reset(&b);
			fprintf(stderr, "bch-relayd: made a room token in %s\n", path);
		}
	}
	if (io_readfile(AT_FDCWD, file, 4096, &b) < 0) {
		err_sys(&d->c.e, "cannot read the room token from %s", file);
		cli_fail(&d->c);
	}
	b.p[strcspn(b.p, "\r\n")] = 0;
	snprintf(from, sizeof from, "in %s", file);
	check_length(d, b.p, from);
	snprintf(out, outsz, "%s", b.p);
	buf_free(&b);
}

/* --spool: the room in Redis. The password comes from a file or the
 * environment, never from argv, where ps would show it. */
void
open_redis(struct relayd *d, const char *url, const char *pwfile)
{
	struct buf b = BUF_INIT;
	const char *env = getenv("REDIS_PASSWORD");
	char *pw = NULL;

	if (strncmp(url, "redis://", 8) != 0 && strncmp(url, "unix://", 7) != 0) {
		err_set(&d->c.e, BCH_PERM, "--spool %s: give redis://host:port/db "
		    "or unix:///path (without --spool the relay serves --home)",
		    url);
		cli_fail(&d->c);
	}
	if (pwfile) {
		if (io_readfile(AT_FDCWD, pwfile, 4096, &b) < 0) {
			err_sys(&d->c.e, "cannot read the Redis password from %s",
			    pwfile);
			d->c.e.code = BCH_PERM;
			cli_fail(&d->c);
		}
		b.p[strcspn(b.p, "\r\n")] = 0;
		pw = b.p;
	} else if (env && *env) {
		pw = xstrdup(env);
	}
	d->c.sp = spool_redis_open(&d->c.cfg, url, pw, d->c.prog, &d->c.e);
	if (pw) {
		explicit_bzero(pw, strlen(pw));
		free(pw);
	}
	if (!d->c.sp)
		cli_fail(&d->c);
}
