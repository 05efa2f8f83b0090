/* relayd-start: how bch-relayd starts — its options, the descriptors
 * it may hold, its spool, room, certificate and listener, and the word
 * that it is ready. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "http.h"
#include "io.h"
#include "relay.h"
#include "relayd.h"
#include "tls.h"

static const char usage[] =
    "bch-relayd [--listen addr] [--port 7117] [--token room-token | "
    "--token-file f] [--home dir] [--cert pem --key pem] [--rate n] "
    "[--spool redis://host:port/db | unix:///path] "
    "[--redis-password-file f] [--max-conns n] [-d fd]";


void
relayd_opts(struct relayd *d, int argc, char **argv, struct opts *o)
{
	static const struct option opts[] = {
		{ "listen", required_argument, 0, 'l' },
		{ "port", required_argument, 0, 'p' },
		{ "token", required_argument, 0, 't' },
		{ "token-file", required_argument, 0, 'T' },
		{ "home", required_argument, 0, 'H' },
		{ "cert", required_argument, 0, 'c' },
		{ "key", required_argument, 0, 'k' },
		{ "rate", required_argument, 0, 'r' },
		{ "max-conns", required_argument, 0, 'm' },
		{ "spool", required_argument, 0, 'S' },
		{ "redis-password-file", required_argument, 0, 'P' },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	struct cli *c = &d->c;
	char *end;
	int ch;

	memset(o, 0, sizeof *o);
	o->listen = "127.0.0.1";
	o->port = 7117;
	o->notify = -1;
	o->rate = 50;
	d->maxconns = 20000;
	while ((ch = getopt_long(argc, argv, "hl:p:t:T:H:c:k:r:m:d:S:P:", opts,
	    NULL)) != -1) {
		switch (ch) {
		case 'l': o->listen = optarg; break;
		case 'p': o->port = cli_num(c, usage, "--port", optarg, 0, 65535); break;
		case 't': o->tok = optarg; break;
		case 'T': o->tokfile = optarg; break;
		case 'H': o->home = optarg; break;
		case 'c': o->cert = optarg; break;
		case 'k': o->key = optarg; break;
		case 'r':
			o->rate = strtod(optarg, &end);
			if (*end || end == optarg || !(o->rate > 0 && o->rate <= 1e12))
				cli_usage(c, usage, "--rate takes a number of sends a "
				    "second above 0, not \"%s\"", optarg);
			break;
		case 'm':
			d->maxconns = (size_t)cli_num(c, usage, "--max-conns",
			    optarg, 1, 10000000);
			o->maxconns_asked = 1;
			break;
		case 'd': o->notify = cli_num(c, usage, "-d", optarg, 0, 1 << 20); break;
		case 'S': o->spool = optarg; break;
		case 'P': o->pwfile = optarg; break;
		case 'h': printf("usage: %s\n", usage); exit(0);
		default: cli_bad_option(c, usage, argv, opts);
		}
	}
	if (optind != argc)
		cli_usage(c, usage, "unexpected argument \"%s\"", argv[optind]);
	if ((o->cert != NULL) != (o->key != NULL))
		cli_usage(c, usage, "--cert and --key go together");
}

/* Each connection holds a descriptor, and the relay needs some of its
 * own besides (the listener, epoll, inotify, Redis, the file it is
 * reading): raise the soft limit as far as --max-conns asks, and serve
 * no more connections than the limit leaves room for, so that a crowd
 * of them can never leave the relay unable to open an inbox. */
#define FD_RESERVE 64

static void
fit_descriptors(struct relayd *d, int asked)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)d->maxconns + FD_RESERVE;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY ||
	    rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want
	    ? rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 && getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	if (rl.rlim_cur >= want)
		return;
	d->maxconns = rl.rlim_cur > 2 * FD_RESERVE ? rl.rlim_cur - FD_RESERVE
	                                           : rl.rlim_cur / 2;
	if (asked) /* the default is cut without a word */
		fprintf(stderr, "bch-relayd: serving at most %zu connections "
		    "at once, as ulimit -n is %llu\n", d->maxconns,
		    (unsigned long long)rl.rlim_cur);
}

/* A non-blocking socket listening on addr (IPv4 or IPv6) and port, or -1
 * with e set. */
static int
listen_on(const char *addr, int port, struct err *e)
{
	struct sockaddr_in6 s6;
	struct sockaddr_in s4;
	struct sockaddr *sa;
	socklen_t len;
	int fd, one = 1;

	memset(&s6, 0, sizeof s6);
	memset(&s4, 0, sizeof s4);
	if (inet_pton(AF_INET, addr, &s4.sin_addr) == 1) {
		s4.sin_family = AF_INET;
		s4.sin_port = htons((uint16_t)port);
		sa = (struct sockaddr *)&s4;
		len = sizeof s4;
	} else if (inet_pton(AF_INET6, addr, &s6.sin6_addr) == 1) {
		s6.sin6_family = AF_INET6;
		s6.sin6_port = htons((uint16_t)port);
		sa = (struct sockaddr *)&s6;
		len = sizeof s6;
	} else {
		return err_set(e, BCH_PERM, "bad --listen address %s — give an "
		    "IPv4 or IPv6 address", addr);
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return err_sys(e, "cannot open a socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, sa, len) < 0 || listen(fd, 1024) < 0) {
		err_sys(e, "cannot listen on %s port %d", addr, port);
		e->code = BCH_TEMP;
		close(fd);
		return -1;
	}
	return fd;
}

/* Load the certificate, open the spool and the room, listen, and make the
 * event loop's descriptors. Exits on failure. */
void
relayd_start(struct relayd *d, const struct opts *o)
{
	char room[4096];

	fit_descriptors(d, o->maxconns_asked);
	/* The certificate first: a bad one stops the relay before it
	 * writes anything (a room token of its own making, the spool). */
	if (o->cert) {
		char pin[65];
		unsigned bits;
		if (!(d->tls = tls_server_new(o->cert, o->key, pin, &d->c.e)))
			cli_fail(&d->c);
		bits = tls_server_rsa_bits(d->tls);
		if (bits && bits < 2048)
			fprintf(stderr, "bch-relayd: warning: %s is a %u-bit RSA "
			    "key, too weak to trust — make one of 2048 bits or "
			    "more, or an EC key\n", o->key, bits);
		fprintf(stderr, "bch-relayd: TLS on, key pin %s\n", pin);
	}
	free(d->c.cfg.url);
	d->c.cfg.url = NULL; /* the relay serves its own spool */
	room_token(d, o->tok, o->tokfile, room, sizeof room);
	d->evfd = -1;
	d->qtail = &d->qhead;
	if (o->spool)
		open_redis(d, o->spool, o->pwfile);
	else
		cli_open(&d->c, 0);
	if (!d->c.sp->shared) { /* a shared spool's arrive by pub/sub */
		d->c.sp->stored = push_stored;
		d->c.sp->stored_arg = d;
	}
	if (io_mkdirs(d->c.cfg.home, 0700) < 0) {
		err_sys(&d->c.e, "cannot create %s", d->c.cfg.home);
		cli_fail(&d->c);
	}
	if (relay_init(&d->r, d->c.sp, &d->c.cfg, room, &d->c.e) < 0)
		cli_fail(&d->c);
	d->r.rate = o->rate;
	d->r.burst = o->rate * 2 > 10 ? o->rate * 2 : 10;
	http_limits_default(&d->lim);
	d->lim.body = msg_request_max(&d->c.cfg.lim);
	if ((d->lfd = listen_on(o->listen, o->port, &d->c.e)) < 0)
		cli_fail(&d->c);
	d->ep = epoll_create1(EPOLL_CLOEXEC);
	if ((d->ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) < 0) {
		err_inotify(&d->c.e, "cannot start inotify");
		cli_fail(&d->c);
	}
	if (d->ep < 0 || watch_fd(d, d->lfd, NULL) < 0 ||
	    watch_fd(d, d->ino, &d->ino) < 0) {
		err_sys(&d->c.e, "cannot start the event loop");
		cli_fail(&d->c);
	}
}

/* Say where the relay listens, and that it is ready, to s6 too. */
void
relayd_ready(struct relayd *d, const struct opts *o)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof ss;
	int port = o->port;

	if (port == 0 && getsockname(d->lfd, (struct sockaddr *)&ss, &sl) == 0)
		port = ntohs(ss.ss_family == AF_INET6 ?
		    ((struct sockaddr_in6 *)&ss)->sin6_port :
		    ((struct sockaddr_in *)&ss)->sin_port);
	if (o->spool) {
		on_arrivals(d);
		fprintf(stderr, "bch-relayd: listening on %s port %d, spool %s, "
		    "shared\n", o->listen, port, o->spool);
	} else {
		fprintf(stderr, "bch-relayd: listening on %s port %d, spool %s, "
		    "%zu agents with tokens\n", o->listen, port, d->c.cfg.home,
		    d->r.ntok);
	}
	if (o->notify >= 0) {
		if (write(o->notify, "\n", 1) < 0)
			fprintf(stderr, "bch-relayd: cannot notify readiness on "
			    "fd %d: %s\n", o->notify, strerror(errno));
		close(o->notify);
	}
}

/* --home dir (if given) as BACKCHANNEL_HOME, made absolute: the
 * relay's spool is where it was started from, not where it runs. */
void
relayd_home(struct cli *c, const char *home)
{
	char cwd[PATH_MAX], abs[PATH_MAX];

	if (!home)
		return;
	if (!*home)
		cli_usage(c, usage, "--home takes a directory, not \"\"");
	if (*home != '/') {
		if (!getcwd(cwd, sizeof cwd)) {
			perror("bch-relayd: cannot read the working directory");
			exit(BCH_TEMP);
		}
		if (snprintf(abs, sizeof abs, "%s/%s", cwd, home) >=
		    (int)sizeof abs)
			cli_usage(c, usage, "--home is too long");
		home = abs;
	}
	if (setenv("BACKCHANNEL_HOME", home, 1) < 0)
		err_oom();
}

