/* sse fuzz target: the relay client's event stream (spool-http.c's
 * events_open and events_consume, which are static) reached through the
 * public API: spool_http_open at a relay on 127.0.0.1 that is a thread
 * of this process, and spool_wait called until the stream is over.
 *
 * The first byte of an input says how the relay writes it: odd, all at
 * once (bch-relayd sends the head, "retry:" and the backlog in one
 * write); even, an event-stream head first, and the events once the
 * client waits for them, one write each, as they arrive live. The rest is
 * the relay's answer to GET /v1/events/alice. A second connection (the
 * client reconnecting after the stream ended) gets 401, which ends it.
 *
 * Checked: spool_wait returns -1, 0 or 1, and as the relay always ends
 * the stream, a run that does not end is a libFuzzer timeout; each request
 * the client makes is a whole HTTP request for its own event stream with
 * its token; a Last-Event-ID it sends back is a valid id that the
 * stream carried on an "id: " line. ASan and UBSan watch the rest.
 *
 * BCH_FUZZ_SSE_PHASED=1 makes every input phased: a way to fuzz past
 * regress-events-after-head while that bug is open. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "io.h"
#include "spool.h"

#include "check.h"

#define TOKEN "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define MAX_PIECES 32
#define MAX_WAITS 64

static char home[PATH_MAX];
static struct config cfg;
static int lfd, force_phased;
static int trace; /* BCH_FUZZ_TRACE=1: print the client's requests */

/* Shared with the relay thread, under mu. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static const uint8_t *cur; /* this run's answer */
static size_t curlen;
static int phased;
static unsigned gen;  /* which run */
static int go;        /* spool_wait calls made after the first */
static int conns;     /* connections of this run */
static int busy;      /* the relay thread is on a connection */
static struct buf reqs[2]; /* what the client sent on the first two */

/* Read a request head (the client sends no body on this route). */
static void
read_head(int fd, struct buf *b)
{
	char tmp[4096];

	while (b->len < 16384 && !(b->p && strstr(b->p, "\r\n\r\n"))) {
		ssize_t n = read(fd, tmp, sizeof tmp);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_add(b, tmp, (size_t)n);
	}
}

/* Wait until the client has called spool_wait k times more than once,
 * or the run is over; 0 when it is over. */
static int
await_go(int k, unsigned mygen)
{
	struct timespec t;
	int ok;

	clock_gettime(CLOCK_REALTIME, &t);
	t.tv_sec += 5; /* a safety net only: a go always comes */
	pthread_mutex_lock(&mu);
	while (go < k && gen == mygen)
		if (pthread_cond_timedwait(&cv, &mu, &t) == ETIMEDOUT)
			break;
	ok = gen == mygen;
	pthread_mutex_unlock(&mu);
	return ok;
}

static void
serve(int fd, const uint8_t *p, size_t n, int ph, unsigned mygen)
{
	struct http_resp r;
	long head;
	int k;

	head = ph ? http_parse_response(NULL, (const char *)p, n, 1 << 16, &r) :
	    0;
	if (head > 0) {
		int es = r.status == 200 && r.event_stream;
		http_resp_free(&r);
		if (!es)
			head = 0;
	}
	if (head <= 0) {
		io_writeall(fd, p, n);
		return;
	}
	/* The head; the events once the client waits for them, each in a
	 * write of its own (TCP may still join them). */
	if (io_writeall(fd, p, (size_t)head) < 0 || !await_go(1, mygen))
		return;
	p += head;
	n -= (size_t)head;
	for (k = 1; n; k++) {
		const uint8_t *e = memmem(p, n, "\n\n", 2);
		size_t len = e && k < MAX_PIECES ? (size_t)(e - p) + 2 : n;
		if (io_writeall(fd, p, len) < 0)
			return;
		p += len;
		n -= len;
	}
}

static void *
relay_thread(void *arg)
{
	static const char no[] = "HTTP/1.1 401 Unauthorized\r\n"
	    "Content-Type: application/json\r\nContent-Length: 20\r\n\r\n"
	    "{\"error\":\"no more\"}\n";
	sigset_t all;

	/* libFuzzer's timer signals are the client's business. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);

	for (;;) {
		struct buf b = BUF_INIT, mine = BUF_INIT;
		unsigned mygen;
		int fd = accept(lfd, NULL, NULL), k, ph;

		if (fd < 0)
			continue;
		read_head(fd, &b);
		/* A copy: libFuzzer frees the input once the run is over, and
		 * ASan checks a write's buffer after the write. */
		pthread_mutex_lock(&mu);
		busy = 1;
		k = conns++;
		mygen = gen;
		buf_add(&mine, cur, curlen);
		ph = phased;
		if (k < 2) {
			buf_reset(&reqs[k]);
			buf_add(&reqs[k], b.p ? b.p : "", b.len);
		}
		pthread_mutex_unlock(&mu);
		if (k == 0)
			serve(fd, (const uint8_t *)mine.p, mine.len, ph, mygen);
		else
			io_writeall(fd, no, sizeof no - 1);
		shutdown(fd, SHUT_WR);
		close(fd);
		buf_free(&b);
		buf_free(&mine);
		pthread_mutex_lock(&mu);
		busy = 0;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
	}
	return NULL;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");
	struct sockaddr_in a;
	socklen_t alen = sizeof a;
	pthread_t t;
	char url[64];
	struct err e;

	signal(SIGPIPE, SIG_IGN);
	if (!tmp || !*tmp)
		tmp = "/tmp";
	/* A client writes nothing there: a home that is not there says so
	 * if it tried, and no crash leaves one behind. */
	snprintf(home, sizeof home, "%s/bch-fuzz-sse.%ld.none/home", tmp,
	    (long)getpid());
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(lfd >= 0);
	memset(&a, 0, sizeof a);
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	CHECK(bind(lfd, (struct sockaddr *)&a, sizeof a) == 0);
	CHECK(listen(lfd, 16) == 0);
	CHECK(getsockname(lfd, (struct sockaddr *)&a, &alen) == 0);
	snprintf(url, sizeof url, "http://127.0.0.1:%d", ntohs(a.sin_port));
	setenv("BACKCHANNEL_HOME", home, 1);
	setenv("BACKCHANNEL_URL", url, 1);
	setenv("BACKCHANNEL_TOKEN", TOKEN, 1);
	setenv("BACKCHANNEL_AGENT", "alice", 1);
	unsetenv("BACKCHANNEL_PIN");
	unsetenv("BACKCHANNEL_CA");
	if (config_load(&cfg, &e) < 0) {
		fprintf(stderr, "bch-fuzz-sse: %s\n", e.msg);
		exit(1);
	}
	force_phased = getenv("BCH_FUZZ_SSE_PHASED") != NULL;
	trace = getenv("BCH_FUZZ_TRACE") != NULL;
	CHECK(pthread_create(&t, NULL, relay_thread, NULL) == 0);
	CHECK(pthread_detach(t) == 0);
	return 0;
}

/* A request the client made: GET its own event stream, with its token. */
static void
check_request(const struct buf *b, const uint8_t *stream, size_t n,
    int again)
{
	struct http_parse ps = HTTP_PARSE_INIT;
	struct http_limits l;
	struct http_req q;
	int status;
	long used;

	if (trace)
		fprintf(stderr, "request %d:\n%s", again + 1, b->p ? b->p : "");
	http_limits_default(&l);
	used = http_parse_request(&ps, b->p ? b->p : "", b->len, &l, &q,
	    &status);
	http_parse_free(&ps);
	if (used <= 0 || (size_t)used != b->len)
		fprintf(stderr, "request %d (%zu bytes, parsed %ld):\n%s\n",
		    again + 1, b->len, used, b->p ? b->p : "");
	CHECK(used > 0 && (size_t)used == b->len);
	CHECK(strcmp(q.method, "GET") == 0);
	CHECK(strcmp(q.path, "/v1/events/alice") == 0);
	CHECK(strcmp(q.auth, "Bearer " TOKEN) == 0);
	if (!again) {
		CHECK(!q.last_event_id[0]);
	} else if (q.last_event_id[0]) {
		char line[sizeof q.last_event_id + 8];
		size_t k;
		CHECK(id_valid(q.last_event_id));
		/* A whole line of the stream, ended by LF, CRLF or CR. */
		k = (size_t)snprintf(line, sizeof line, "id: %s\n",
		    q.last_event_id);
		if (!memmem(stream, n, line, k))
			line[k - 1] = '\r';
		CHECK(memmem(stream, n, line, k));
	}
	http_req_free(&q);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spool *sp;
	struct err e;
	sigset_t alrm, old;
	int rc, i, k;

	if (size < 1)
		return 0;
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	pthread_mutex_lock(&mu);
	gen++;
	cur = data + 1;
	curlen = size - 1;
	phased = force_phased || !(data[0] & 1);
	go = conns = 0;
	buf_reset(&reqs[0]);
	buf_reset(&reqs[1]);
	pthread_mutex_unlock(&mu);

	/* libFuzzer's -timeout timer (SIGALRM) waits till the run is over:
	 * link_open takes a connect that a signal interrupts (EINTR) for a
	 * relay that cannot be reached, which would make runs differ; a
	 * run that hangs is still reported when the signal comes through. */
	pthread_sigmask(SIG_BLOCK, &alrm, &old);
	sp = spool_http_open(&cfg, "bch-fuzz-sse", &e);
	CHECK(sp);
	/* The first call opens the stream (timeout 0: a refused stream
	 * must not make it sleep), the next ones read it. */
	rc = spool_wait(sp, "alice", 0, &e);
	/* 0 is a timeout, or a signal (libFuzzer's timer): wait again; a
	 * stream that never ends shows as a libFuzzer timeout. */
	for (i = 0; i < MAX_WAITS && rc >= 0; i++) {
		pthread_mutex_lock(&mu);
		go++;
		pthread_cond_broadcast(&cv);
		pthread_mutex_unlock(&mu);
		rc = spool_wait(sp, "alice", 2000, &e);
	}
	if (trace)
		fprintf(stderr, "spool_wait: %d calls, last %d\n", i + 1, rc);
	CHECK(rc >= -1 && rc <= 1);
	spool_close(sp);
	pthread_sigmask(SIG_SETMASK, &old, NULL);

	pthread_mutex_lock(&mu);
	gen++; /* the relay thread lets go of this run */
	pthread_cond_broadcast(&cv);
	while (busy)
		pthread_cond_wait(&cv, &mu);
	k = conns;
	pthread_mutex_unlock(&mu);
	CHECK(k >= 1);
	/* The relay thread stored them before it answered. */
	check_request(&reqs[0], data + 1, size - 1, 0);
	if (k > 1)
		check_request(&reqs[1], data + 1, size - 1, 1);
	return 0;
}
