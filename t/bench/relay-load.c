/* relay-load: POST /v1/send over N keep-alive connections for S seconds,
 * as fast as the relay answers, for t/bench/relay.sh where wrk is not
 * installed (see README there).
 *
 *   relay-load HOST PORT CONNS SECONDS TOKEN BODY-FILE
 *
 * Each connection has one request outstanding at a time (no
 * pipelining), as wrk does. Prints "requests R ok K other O seconds S":
 * every answer counted, those with status 200, and the rest. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct conn {
	int fd;
	size_t off; /* of the request written so far */
	size_t len; /* of the answer read so far */
	char in[16384];
};

static char req[8192];
static size_t reqlen;

static void
die(const char *what)
{
	fprintf(stderr, "relay-load: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double
now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* Write what remains of the request; -1 if the connection broke. */
static int
push(struct conn *c)
{
	while (c->off < reqlen) {
		ssize_t w = write(c->fd, req + c->off, reqlen - c->off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN)
			return 0;
		if (w <= 0)
			return -1;
		c->off += (size_t)w;
	}
	return 0;
}

/* Read answers; count whole ones. -1 if the connection broke. */
static int
pull(struct conn *c, long *ok, long *other)
{
	for (;;) {
		ssize_t n =
		    read(c->fd, c->in + c->len, sizeof c->in - c->len - 1);
		char *h, *cl;
		size_t need;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n <= 0)
			return -1;
		c->len += (size_t)n;
		c->in[c->len] = 0;
		if (!(h = strstr(c->in, "\r\n\r\n")))
			continue;
		cl = strcasestr(c->in, "content-length:");
		need = (size_t)(h + 4 - c->in) +
		       (cl && cl < h ? (size_t)atol(cl + 15) : 0);
		if (c->len < need)
			continue;
		if (strncmp(c->in, "HTTP/1.1 200", 12) == 0)
			(*ok)++;
		else
			(*other)++;
		memmove(c->in, c->in + need, c->len - need);
		c->len -= need;
		c->off = 0;
		return push(c);
	}
}

int
main(int argc, char **argv)
{
	struct sockaddr_in sa;
	struct conn *cs;
	long ok = 0, other = 0;
	double t0, end;
	char body[4096];
	int ep, i, n, secs;
	FILE *f;
	size_t blen;

	if (argc != 7) {
		fprintf(stderr, "usage: relay-load HOST PORT CONNS SECONDS "
		                "TOKEN BODY-FILE\n");
		return 2;
	}
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_port = htons((unsigned short)atoi(argv[2]));
	if (inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1)
		return 2;
	n = atoi(argv[3]);
	secs = atoi(argv[4]);
	if (!(f = fopen(argv[6], "r")))
		die(argv[6]);
	blen = fread(body, 1, sizeof body - 1, f);
	fclose(f);
	reqlen = (size_t)snprintf(
	    req, sizeof req,
	    "POST /v1/send HTTP/1.1\r\n"
	    "Host: x\r\nAuthorization: Bearer %s\r\n"
	    "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%.*s",
	    argv[5], blen, (int)blen, body);
	if (n < 1 || secs < 1 || !(cs = calloc((size_t)n, sizeof *cs)) ||
	    (ep = epoll_create1(0)) < 0)
		die("setup");
	for (i = 0; i < n; i++) {
		struct epoll_event ev;
		int one = 1;
		cs[i].fd = socket(AF_INET, SOCK_STREAM, 0);
		if (cs[i].fd < 0 ||
		    connect(cs[i].fd, (struct sockaddr *)&sa, sizeof sa) < 0)
			die("connect");
		setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one,
		           sizeof one);
		fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
		ev.events = EPOLLIN;
		ev.data.ptr = &cs[i];
		epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
	}
	t0 = now_s();
	end = t0 + secs;
	for (i = 0; i < n; i++)
		if (push(&cs[i]) < 0)
			die("write");
	while (now_s() < end) {
		struct epoll_event evs[256];
		int k = epoll_wait(ep, evs, 256, 100);
		for (i = 0; i < k; i++)
			if (pull(evs[i].data.ptr, &ok, &other) < 0)
				die("the relay closed a connection");
	}
	printf("requests %ld ok %ld other %ld seconds %.3f\n", ok + other, ok,
	       other, now_s() - t0);
	return 0;
}
