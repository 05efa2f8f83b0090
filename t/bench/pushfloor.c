/* pushfloor: the floor of a push to many streams on this machine, for
 * relay.sh. N loopback TCP connections, as the relay's SSE streams are;
 * for each of ROUNDS, the parent writes SIZE bytes to every one of them,
 * one write(2) per connection as the relay makes, and a child reading
 * all N through epoll, as sse-load does, notes when each arrived. No
 * HTTP, no JSON, no spool: what is left is the kernel's loopback path
 * and the two processes' wake-ups, which the relay cannot go under.
 *
 *   pushfloor N ROUNDS SIZE EACH
 *
 * Prints, one line per round, the microseconds from just before the
 * first write until the child had every connection's bytes; writes to
 * the file EACH the time of every delivery, one line each, as sse-load
 * does. The next round starts once the child has answered.
 *
 * Part of the benchmarks (t/bench/); compiled on the fly by lib.sh. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void
die(const char *what)
{
	fprintf(stderr, "pushfloor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static double
now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static void
put(int fd, const void *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		p = (const char *)p + w;
		n -= (size_t)w;
	}
}

static void
get(int fd, void *p, size_t n)
{
	while (n > 0) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read");
		p = (char *)p + r;
		n -= (size_t)r;
	}
}

/* The child: every connection in one epoll set, the start time of each
 * round from the parent on ctl, a byte back on ack once all N have had
 * SIZE bytes more. */
static void
reader(int *fds, long n, long rounds, long size, int ctl, int ack, FILE *each)
{
	static char sink[1 << 16];
	struct epoll_event ev, evs[256];
	long *got = calloc((size_t)n, sizeof *got), done, r, i;
	double t0;
	int ep = epoll_create1(0);

	if (!got || ep < 0)
		die("reader");
	for (i = 0; i < n; i++) {
		ev.events = EPOLLIN;
		ev.data.u64 = (uint64_t)i;
		if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
			die("epoll_ctl");
	}
	for (r = 0; r < rounds; r++) {
		get(ctl, &t0, sizeof t0);
		for (done = 0; done < n;) {
			int k = epoll_wait(ep, evs, 256, -1);
			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0)
				die("epoll_wait");
			while (k-- > 0) {
				long c = (long)evs[k].data.u64;
				ssize_t m = read(fds[c], sink, sizeof sink);
				if (m <= 0)
					die("read stream");
				got[c] += m;
				if (got[c] >= (r + 1) * size) {
					fprintf(each, "%.0f\n", now_us() - t0);
					done++;
				}
			}
		}
		put(ack, "", 1);
	}
	if (fclose(each) != 0)
		die("each");
}

/* n connected pairs on 127.0.0.1: out[i] is the writer's end, in[i] the
 * reader's. */
static void
connect_pairs(long n, int *out, int *in)
{
	struct sockaddr_in a;
	socklen_t len = sizeof a;
	int l = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	long i;

	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof a) < 0 ||
	    listen(l, 1024) < 0 || getsockname(l, (struct sockaddr *)&a, &len) < 0)
		die("listen");
	for (i = 0; i < n; i++) {
		if ((in[i] = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
		    connect(in[i], (struct sockaddr *)&a, sizeof a) < 0 ||
		    (out[i] = accept(l, NULL, NULL)) < 0)
			die("connect");
		/* As the relay's streams are: no Nagle, non-blocking. */
		if (setsockopt(out[i], IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof one) < 0 || fcntl(out[i], F_SETFL, O_NONBLOCK) < 0)
			die("setsockopt");
	}
	close(l);
}

int
main(int argc, char **argv)
{
	long n, rounds, size, r, i;
	int *out, *in, ctl[2], ack[2], status;
	char *data, c;
	FILE *each;
	pid_t pid;

	if (argc != 5 || (n = atol(argv[1])) < 1 ||
	    (rounds = atol(argv[2])) < 1 || (size = atol(argv[3])) < 1) {
		fputs("usage: pushfloor N ROUNDS SIZE EACH\n", stderr);
		return 2;
	}
	if (!(each = fopen(argv[4], "w")))
		die(argv[4]);
	out = calloc((size_t)n, sizeof *out);
	in = calloc((size_t)n, sizeof *in);
	data = malloc((size_t)size);
	if (!out || !in || !data)
		die("malloc");
	memset(data, 'x', (size_t)size);
	connect_pairs(n, out, in);
	if (pipe(ctl) < 0 || pipe(ack) < 0)
		die("pipe");
	if ((pid = fork()) < 0)
		die("fork");
	if (pid == 0) {
		for (i = 0; i < n; i++)
			close(out[i]);
		reader(in, n, rounds, size, ctl[0], ack[1], each);
		_exit(0);
	}
	fclose(each);
	for (i = 0; i < n; i++)
		close(in[i]);
	for (r = 0; r < rounds; r++) {
		double t0 = now_us();
		put(ctl[1], &t0, sizeof t0);
		for (i = 0; i < n; i++)
			if (write(out[i], data, (size_t)size) != size)
				die("write stream"); /* 64 KiB and more fit */
		get(ack[0], &c, 1);
		printf("%.0f\n", now_us() - t0);
		usleep(1000); /* as the relay's answer and the next send */
	}
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		die("reader failed");
	return 0;
}
