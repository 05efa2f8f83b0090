/* sse-load: many Server-Sent Events clients of bch-relayd at once, for
 * t/bench/relay.sh (see README there).
 *
 *   sse-load [-t] lat  HOST PORT TOKENS N SENDER-TOKEN TARGET SENDS [EACH]
 *   sse-load [-t] idle HOST PORT TOKENS N
 *
 * TOKENS is a file of "name token" lines; connection i streams
 * /v1/events/<name of line i mod lines> with that token. Connections
 * are opened non-blocking, a few hundred in flight at a time (the
 * relay's listen backlog is finite), and count as up once the relay's
 * "retry:" line arrived.
 *
 * lat: then SENDS times, POST /v1/send {"to":TARGET} with SENDER-TOKEN on
 * one keep-alive connection, and time from just before the write until
 * every stream has seen one more "data:" line (the next send waits for
 * the answer too, which may come later). Prints that time in
 * microseconds, one line per send. With EACH, a file name, also writes
 * there the time each stream saw each send, one line per delivery.
 *
 * idle: prints "connected C of N" once C streams are up (C < N when
 * descriptors ran out), then waits for standard input to close, so the
 * caller can look at the relay meanwhile.
 *
 * -t: every connection, each stream and the sender, speaks TLS (BearSSL,
 * server name "localhost") and takes whatever certificate the relay
 * shows, unchecked: the bench runs the relay on a self-signed one of its
 * own. A stream's handshake happens while it comes up and the sender's
 * before the first send, so no timed figure holds one. The TLS client
 * is in sse-tls.c; bench_cc (lib.sh) links the two. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sse-tls.h"
/* with: sse-tls.c */

#define IN_FLIGHT 256
#define TAIL 8 /* longest pattern less one, carried across reads */

struct sub {
	int fd;
	int state; /* 0 connecting, 1 request sent, 2 streaming, -1 gone */
	int head;  /* the status line was seen */
	long events;
	size_t tlen;
	char tail[TAIL];
	const char *name, *token;
	struct tls *tls; /* with -t only */
};

static struct sockaddr_in addr;
static char **names, **tokens;
static size_t ntokens;
static int use_tls;

static void
die(const char *what)
{
	fprintf(stderr, "sse-load: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double
now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static void
load_tokens(const char *file)
{
	FILE *f = fopen(file, "r");
	char n[128], t[160];
	size_t cap = 0;

	if (!f)
		die(file);
	while (fscanf(f, "%127s %159s", n, t) == 2) {
		if (ntokens == cap) {
			cap = cap ? cap * 2 : 1024;
			names = realloc(names, cap * sizeof *names);
			tokens = realloc(tokens, cap * sizeof *tokens);
			if (!names || !tokens)
				die("realloc");
		}
		names[ntokens] = strdup(n);
		tokens[ntokens++] = strdup(t);
	}
	fclose(f);
	if (!ntokens) {
		fprintf(stderr, "sse-load: no tokens in %s\n", file);
		exit(1);
	}
}

static int
open_conn(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 &&
	    errno != EINPROGRESS) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Count pattern p in the carried tail plus buf; keep the new tail. */
static long
count(struct sub *s, const char *buf, size_t n, const char *p)
{
	char tmp[TAIL + 65536];
	size_t len, pl = strlen(p);
	const char *q, *end;
	long c = 0;

	memcpy(tmp, s->tail, s->tlen);
	memcpy(tmp + s->tlen, buf, n);
	len = s->tlen + n;
	end = tmp + len;
	for (q = tmp; (q = memmem(q, (size_t)(end - q), p, pl)); q += pl)
		c++;
	s->tlen = len < TAIL ? len : TAIL;
	memcpy(s->tail, end - s->tlen, s->tlen);
	return c;
}

static int
send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			struct pollfd pf = {fd, POLLOUT, 0};
			poll(&pf, 1, 1000);
			continue;
		}
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* read(2) on a connection, through its engine with -t. */
static ssize_t
conn_read(int fd, struct tls *t, char *buf, size_t cap)
{
	return t ? tls_read(t, fd, buf, cap) : read(fd, buf, cap);
}

/* Send n bytes on a connection: written whole, or with -t queued into
 * its engine, which sends them once the handshake is done. */
static int
conn_send(int fd, struct tls *t, const char *p, size_t n)
{
	return t ? tls_send(t, fd, p, n) : send_all(fd, p, n);
}

/* Read what a stream has; returns new "data:" lines, -1 if it closed. */
static long
on_read(struct sub *s)
{
	char buf[65536];
	long ev = 0;

	for (;;) {
		ssize_t n = conn_read(s->fd, s->tls, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return ev;
		if (n <= 0)
			return -1;
		if (s->state == 1) {
			char tail[TAIL];
			size_t tlen = s->tlen;
			if (!s->head && strncmp(buf, "HTTP/1.1 200", 12) != 0) {
				fprintf(stderr, "sse-load: %s: %.*s\n", s->name,
				        (int)(n > 80 ? 80 : n), buf);
				exit(1);
			}
			s->head = 1;
			memcpy(tail, s->tail, tlen);
			if (count(s, buf, (size_t)n, "\nretry: "))
				s->state = 2;
			memcpy(s->tail, tail, tlen);
			s->tlen = tlen;
		}
		ev += count(s, buf, (size_t)n, "\ndata: ");
	}
}

static void
drop(struct sub *s)
{
	s->state = -1;
	close(s->fd);
	free(s->tls);
	s->tls = NULL;
}

/* Open n streams; returns how many came up. */
static size_t
connect_all(int ep, struct sub *subs, size_t n)
{
	size_t next = 0, up = 0, pending = 0, failed = 0;
	double deadline = now_us() + 60e6;

	while (up + failed < n && now_us() < deadline) {
		struct epoll_event evs[512];
		int i, k;
		while (next < n && pending < IN_FLIGHT) {
			struct sub *s = &subs[next];
			struct epoll_event ev;
			s->name = names[next % ntokens];
			s->token = tokens[next % ntokens];
			s->fd = open_conn();
			if (s->fd < 0) {
				/* Out of descriptors: stop opening more. */
				s->state = -1;
				failed += n - next;
				next = n;
				break;
			}
			ev.events = EPOLLOUT | EPOLLIN;
			ev.data.ptr = s;
			epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev);
			if (use_tls)
				s->tls = tls_new(ep, s, ev.events);
			next++;
			pending++;
		}
		k = epoll_wait(ep, evs, 512, 1000);
		for (i = 0; i < k; i++) {
			struct sub *s = evs[i].data.ptr;
			if (s->state == 0 && (evs[i].events & EPOLLOUT)) {
				char req[512];
				struct epoll_event ev;
				int len = snprintf(
				    req, sizeof req,
				    "GET /v1/events/%s HTTP/1.1\r\nHost: x\r\n"
				    "Authorization: Bearer %s\r\n"
				    "Accept: text/event-stream\r\n\r\n",
				    s->name, s->token);
				if (conn_send(s->fd, s->tls, req, len) < 0) {
					drop(s);
					failed++;
					pending--;
					continue;
				}
				s->state = 1;
				if (s->tls)
					continue; /* tls_pump() watches */
				ev.events = EPOLLIN;
				ev.data.ptr = s;
				epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
			} else if (s->state == 1 &&
			           (evs[i].events & (EPOLLIN | EPOLLOUT |
			                             EPOLLHUP | EPOLLERR))) {
				if (on_read(s) < 0) {
					drop(s);
					failed++;
					pending--;
				} else if (s->state == 2) {
					up++;
					pending--;
				}
			} else if (s->state == 2) {
				if (on_read(s) < 0) {
					drop(s);
					up--;
					failed++;
				}
			}
		}
	}
	return up;
}

static int
sender_open(void)
{
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0)
		die("cannot connect the sender");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	fcntl(fd, F_SETFL, O_NONBLOCK);
	return fd;
}

/* Read and check the answer to one send: "HTTP/1.1 200", whole. */
static int
sender_answer(int fd, struct tls *t, char *acc, size_t *len)
{
	char *h, *cl;
	size_t need;

	for (;;) {
		ssize_t n = conn_read(fd, t, acc + *len, 65536 - *len - 1);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0) {
			fprintf(stderr,
			        "sse-load: the relay closed the sender\n");
			exit(1);
		}
		*len += (size_t)n;
		acc[*len] = 0;
		if (!(h = strstr(acc, "\r\n\r\n")))
			continue;
		if (strncmp(acc, "HTTP/1.1 200", 12) != 0) {
			fprintf(stderr, "sse-load: send refused: %.200s\n",
			        acc);
			exit(1);
		}
		cl = strcasestr(acc, "content-length:");
		need = (size_t)(h + 4 - acc) + (cl ? (size_t)atol(cl + 15) : 0);
		if (*len >= need) {
			*len = 0;
			return 1;
		}
	}
}

static void
latency(int ep, struct sub *subs, size_t n, const char *sender,
        const char *target, int sends, FILE *each)
{
	int fd = sender_open(), k;
	struct epoll_event ev;
	struct tls *t = NULL;
	char acc[65536];
	size_t alen = 0;

	ev.events = EPOLLIN;
	ev.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
	if (use_tls) {
		t = tls_new(ep, NULL, ev.events);
		tls_handshake(t, fd);
	}
	for (k = 1; k <= sends; k++) {
		char body[256], req[1024];
		size_t done = 0, i;
		int answered = 0, len;
		double t0, deadline, all = 0;
		for (i = 0; i < n; i++)
			if (subs[i].state == 2 && subs[i].events >= k)
				done++;
		snprintf(body, sizeof body,
		         "{\"to\":\"%s\",\"body\":\"latency probe %d\"}",
		         target, k);
		len = snprintf(
		    req, sizeof req,
		    "POST /v1/send HTTP/1.1\r\n"
		    "Host: x\r\nAuthorization: Bearer %s\r\n"
		    "Content-Type: application/json\r\nContent-Length: "
		    "%zu\r\n\r\n%s",
		    sender, strlen(body), body);
		t0 = now_us();
		deadline = t0 + 10e6;
		if (conn_send(fd, t, req, (size_t)len) < 0)
			die("send");
		while (done < n || !answered) {
			struct epoll_event evs[512];
			int j, m = epoll_wait(ep, evs, 512, 100);
			if (now_us() > deadline) {
				fprintf(stderr,
				        "sse-load: send %d reached %zu of %zu "
				        "streams in 10 s\n",
				        k, done, n);
				exit(1);
			}
			for (j = 0; j < m; j++) {
				struct sub *s = evs[j].data.ptr;
				long got;
				if (!s) {
					answered |=
					    sender_answer(fd, t, acc, &alen);
					continue;
				}
				if (s->state != 2)
					continue;
				got = on_read(s);
				if (got < 0) {
					fprintf(stderr,
					        "sse-load: the relay closed "
					        "the stream of %s\n",
					        s->name);
					exit(1);
				}
				if (s->events < k && s->events + got >= k) {
					double at = now_us() - t0;
					if (++done == n)
						all = at;
					if (each)
						fprintf(each, "%.0f\n", at);
				}
				s->events += got;
			}
		}
		/* Every stream's time, not the answer's: the relay pushes
		 * before it has linked the message into every inbox, and
		 * answers the sender after. */
		printf("%.0f\n", all);
		fflush(stdout);
	}
	close(fd);
	free(t);
}

int
main(int argc, char **argv)
{
	struct sub *subs;
	size_t n, up;
	int ep, idle;
	struct rlimit rl;

	if (argc > 1 && !strcmp(argv[1], "-t")) {
		use_tls = 1;
		argv++;
		argc--;
	}
	if (argc < 6 || (strcmp(argv[1], "lat") && strcmp(argv[1], "idle")) ||
	    (!strcmp(argv[1], "lat") && argc != 9 && argc != 10)) {
		fprintf(stderr, "usage: sse-load [-t] lat HOST PORT TOKENS N "
		                "SENDER-TOKEN TARGET SENDS [EACH] | sse-load "
		                "[-t] idle HOST PORT TOKENS N\n");
		return 2;
	}
	idle = strcmp(argv[1], "idle") == 0;
	memset(&addr, 0, sizeof addr);
	addr.sin_family = AF_INET;
	addr.sin_port = htons((unsigned short)atoi(argv[3]));
	if (inet_pton(AF_INET, argv[2], &addr.sin_addr) != 1) {
		fprintf(stderr, "sse-load: bad address %s\n", argv[2]);
		return 2;
	}
	load_tokens(argv[4]);
	n = (size_t)atol(argv[5]);
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	subs = calloc(n ? n : 1, sizeof *subs);
	if (!subs || (ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		die("setup");
	up = connect_all(ep, subs, n);
	if (idle) {
		char c;
		printf("connected %zu of %zu\n", up, n);
		fflush(stdout);
		while (read(0, &c, 1) > 0)
			;
		return 0;
	}
	if (up < n) {
		fprintf(stderr, "sse-load: only %zu of %zu streams came up\n",
		        up, n);
		return 1;
	}
	{
		FILE *each = NULL;
		if (argc == 10 && !(each = fopen(argv[9], "w"))) {
			perror(argv[9]);
			exit(1);
		}
		latency(ep, subs, n, argv[6], argv[7], atoi(argv[8]), each);
		if (each && fclose(each) != 0) {
			perror(argv[9]);
			exit(1);
		}
	}
	return 0;
}
