/* http fuzz target: http_parse_request under the default limits and tight
 * ones, every pipelined request in the input in turn; http_parse_response
 * (Content-Length, chunked and event-stream heads); http_unescape against
 * a reference decoder. A parser that sees a connection's bytes arrive in
 * pieces must give the same answer whatever the pieces: 0 (more) for
 * every prefix shorter than a whole message, then the same message. Both
 * parsers are tried both ways: afresh on each prefix, and going on from
 * where they got to on the last (as bch-relayd and the relay client call
 * them), each answer the same as the fresh one. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#include "check.h"

/* Small enough that an 8 KiB input crosses every one of them. */
static const struct http_limits tight = { 256, 4, 64 };

/* Prefixes tried: every one up to this length, a sample beyond it (each
 * parse is linear, so all of them would be quadratic in the input). */
#define ALL_PREFIXES 256

/* A copy of p[0..n) in a block of exactly n bytes, so ASan sees any read
 * past the length the parser was given. */
static char *
exact(const uint8_t *p, size_t n)
{
	char *c = malloc(n ? n : 1);

	CHECK(c);
	if (n)
		memcpy(c, p, n);
	return c;
}

static int
terminated(const char *s, size_t sz)
{
	return memchr(s, 0, sz) != NULL;
}

static int
no_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 && *s != '\t')
			return 0;
	return 1;
}

static int
tchars(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		    (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s)))
			return 0;
	return 1;
}

/* The bytes just past the first blank line (CRLF CRLF), or 0. */
static size_t
head_len(const uint8_t *b, size_t n)
{
	const uint8_t *e = memmem(b, n, "\r\n\r\n", 4);

	return e ? (size_t)(e - b) + 4 : 0;
}

static void
check_req(const struct http_req *q, long used, size_t n,
    const struct http_limits *l)
{
	CHECK(used > 0 && (size_t)used <= n);
	CHECK(terminated(q->method, sizeof q->method) && q->method[0]);
	CHECK(terminated(q->path, sizeof q->path) && q->path[0]);
	CHECK(terminated(q->auth, sizeof q->auth));
	CHECK(terminated(q->last_event_id, sizeof q->last_event_id));
	CHECK(tchars(q->method));
	for (const char *p = q->path; *p; p++)
		CHECK((unsigned char)*p > 0x20 && (unsigned char)*p < 0x7f);
	/* Origin form, an absolute URL's made so; or OPTIONS *. */
	CHECK(q->path[0] == '/' || (strcmp(q->path, "*") == 0 &&
	    strcmp(q->method, "OPTIONS") == 0));
	/* Header values: no control but tab (DEL and UTF-8 pass). */
	CHECK(no_ctl(q->auth) && no_ctl(q->last_event_id));
	CHECK(q->keepalive >= 0 && q->keepalive <= 2); /* 2: HTTP/1.0's */
	CHECK(q->body && q->body[q->body_len] == 0);
	CHECK(q->body_len <= l->body);
	CHECK(q->body_len <= n);
}

static void
same_req(const struct http_req *a, const struct http_req *b)
{
	CHECK(strcmp(a->method, b->method) == 0);
	CHECK(strcmp(a->path, b->path) == 0);
	CHECK(strcmp(a->auth, b->auth) == 0);
	CHECK(strcmp(a->last_event_id, b->last_event_id) == 0);
	CHECK(a->keepalive == b->keepalive);
	CHECK(a->body_len == b->body_len);
	CHECK(memcmp(a->body, b->body, a->body_len) == 0);
}

/* Parse b[0..n) going on from where s got to; NULL s: afresh. */
static long
parse_req(struct http_parse *s, const uint8_t *b, size_t n,
    const struct http_limits *l, struct http_req *q, int *status)
{
	struct http_parse fresh = HTTP_PARSE_INIT;
	char *c = exact(b, n);
	long used;

	*status = 0;
	used = http_parse_request(s ? s : &fresh, c, n, l, q, status);
	free(c);
	if (!s) /* a fresh parse is done with its state, whole or not */
		http_parse_free(&fresh);
	if (used <= 0)
		CHECK(!q->body);
	if (used < 0)
		CHECK(*status == 400 || *status == 413 || *status == 414 ||
		    *status == 431 || *status == 501 || *status == 505);
	return used;
}

/* Is prefix length k one to try, for an input of n bytes whose answer
 * changes at m (the whole message's length, else n)? */
static int
try_prefix(size_t k, size_t n, size_t m, size_t head)
{
	if (n <= ALL_PREFIXES)
		return 1;
	return k % (n / 64 + 1) == 0 || (k + 16 > m && k <= m) ||
	    (head && k + 8 > head && k <= head + 8);
}

/* The parse of prefix k going on from the last, s, answers as the
 * fresh one did: u and st, and the same request q. */
static void
same_resumed(struct http_parse *s, const uint8_t *b, size_t k,
    const struct http_limits *l, long u, int st, const struct http_req *q)
{
	struct http_req r;
	int st2;
	long u2 = parse_req(s, b, k, l, &r, &st2);

	CHECK(u2 == u);
	if (u2 < 0)
		CHECK(st2 == st);
	if (u2 > 0) {
		check_req(&r, u2, k, l);
		same_req(q, &r);
		http_req_free(&r);
	}
}

/* The request at b[0..n) and every prefix of it. */
static long
one_request(const uint8_t *b, size_t n, const struct http_limits *l)
{
	struct http_parse s = HTTP_PARSE_INIT;
	struct http_req whole, q;
	int status, st, failed = 0;
	size_t k, head = head_len(b, n);
	long used = parse_req(NULL, b, n, l, &whole, &status), u;

	if (used > 0)
		check_req(&whole, used, n, l);
	for (k = 0; k < n; k++) {
		if (!try_prefix(k, n, used > 0 ? (size_t)used : n, head))
			continue;
		u = parse_req(NULL, b, k, l, &q, &st);
		same_resumed(&s, b, k, l, u, st, u > 0 ? &q : NULL);
		if (used > 0 && k < (size_t)used) {
			CHECK(u == 0);
		} else if (used > 0) {
			CHECK(u == used);
			check_req(&q, u, k, l);
			same_req(&whole, &q);
			http_req_free(&q);
		} else if (used == 0) {
			CHECK(u == 0);
		} else {
			/* Refused for good: never whole on the way there, and
			 * once refused, refused for the same reason. */
			CHECK(u <= 0);
			CHECK(!failed || u < 0);
			if (u < 0) {
				CHECK(st == status);
				failed = 1;
			}
		}
	}
	/* The whole, after the pieces. */
	same_resumed(&s, b, n, l, used, status, used > 0 ? &whole : NULL);
	http_parse_free(&s);
	if (used > 0)
		http_req_free(&whole);
	return used;
}

/* Every pipelined request in turn, as bch-relayd's loop takes them. */
static void
requests(const uint8_t *b, size_t n, const struct http_limits *l)
{
	size_t off = 0;
	int i;

	for (i = 0; i < 8 && off < n; i++) {
		long used = one_request(b + off, n - off, l);
		if (used <= 0)
			break;
		off += (size_t)used;
	}
}

static void
check_resp(const struct http_resp *r, long used, const uint8_t *b, size_t n,
    size_t maxbody)
{
	size_t head = head_len(b, n);

	CHECK(used > 0 && (size_t)used <= n);
	CHECK(head && head <= (size_t)used);
	CHECK(r->status >= 0 && r->status <= 999);
	CHECK(r->keepalive == 0 || r->keepalive == 1);
	if (r->event_stream) {
		/* The head alone: the events are the caller's. */
		CHECK((size_t)used == head && !r->body);
		return;
	}
	CHECK(r->body && r->body[r->body_len] == 0);
	CHECK(r->body_len <= maxbody);
	CHECK(r->body_len <= (size_t)used - head);
}

static void
same_resp(const struct http_resp *a, const struct http_resp *b)
{
	CHECK(a->status == b->status && a->keepalive == b->keepalive);
	CHECK(a->retry_after == b->retry_after);
	CHECK(a->event_stream == b->event_stream);
	CHECK(!a->body == !b->body && a->body_len == b->body_len);
	if (a->body)
		CHECK(memcmp(a->body, b->body, a->body_len) == 0);
}

/* Parse b[0..n) going on from where s got to; NULL s: afresh. */
static long
parse_resp(struct http_parse *s, const uint8_t *b, size_t n, size_t maxbody,
    struct http_resp *r)
{
	char *c = exact(b, n);
	long used = http_parse_response(s, c, n, maxbody, r);

	free(c);
	if (used <= 0)
		CHECK(!r->body);
	return used;
}

/* The parse of prefix k going on from the last, s, answers as the
 * fresh one did: u, and the same response a (or, refused, as big). */
static void
same_resp_resumed(struct http_parse *s, const uint8_t *b, size_t k,
    size_t maxbody, long u, const struct http_resp *a)
{
	struct http_resp r;
	long u2 = parse_resp(s, b, k, maxbody, &r);

	CHECK(u2 == u);
	if (u2 < 0 && a->too_big)
		CHECK(r.too_big && r.head_len == a->head_len &&
		    r.status == a->status);
	if (u2 > 0) {
		check_resp(&r, u2, b, k, maxbody);
		same_resp(a, &r);
		http_resp_free(&r);
	}
}

static long
one_response(const uint8_t *b, size_t n, size_t maxbody, int *es)
{
	struct http_parse s = HTTP_PARSE_INIT;
	struct http_resp whole, r;
	size_t k, head = head_len(b, n);
	long used = parse_resp(NULL, b, n, maxbody, &whole), u;
	int failed = 0;

	*es = 0;
	if (used > 0) {
		check_resp(&whole, used, b, n, maxbody);
		*es = whole.event_stream;
	}
	for (k = 0; k < n; k++) {
		if (!try_prefix(k, n, used > 0 ? (size_t)used : n, head))
			continue;
		u = parse_resp(NULL, b, k, maxbody, &r);
		same_resp_resumed(&s, b, k, maxbody, u, &r);
		if (used > 0 && k < (size_t)used) {
			CHECK(u == 0);
		} else if (used > 0) {
			CHECK(u == used);
			check_resp(&r, u, b, k, maxbody);
			same_resp(&whole, &r);
			http_resp_free(&r);
		} else if (used == 0) {
			CHECK(u == 0);
		} else {
			CHECK(u <= 0);
			CHECK(!failed || u < 0);
			failed |= u < 0;
		}
	}
	/* The whole, after the pieces. */
	same_resp_resumed(&s, b, n, maxbody, used, &whole);
	http_parse_free(&s);
	if (used > 0)
		http_resp_free(&whole);
	return used;
}

static void
responses(const uint8_t *b, size_t n, size_t maxbody)
{
	size_t off = 0;
	int i;

	for (i = 0; i < 8 && off < n; i++) {
		int es;
		long used = one_response(b + off, n - off, maxbody, &es);
		/* What follows an event stream's head is events. */
		if (used <= 0 || es)
			break;
		off += (size_t)used;
	}
}

/* The reference's own, not the library's hex_digit(): what it checks
 * must not share code with it. */
static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The reference: %XX decoded, anything else as it is; -1 for a bad or
 * short escape, a NUL, or more than max bytes. */
static long
ref_unescape(const uint8_t *in, size_t n, uint8_t *out, size_t max)
{
	size_t i, w = 0;

	for (i = 0; i < n; i++) {
		int c = in[i];
		if (c == '%') {
			if (n - i < 3 || hexval(in[i + 1]) < 0 ||
			    hexval(in[i + 2]) < 0)
				return -1;
			c = hexval(in[i + 1]) * 16 + hexval(in[i + 2]);
			i += 2;
		}
		if (c == 0 || w >= max)
			return -1;
		out[w++] = (uint8_t)c;
	}
	return (long)w;
}

static void
unescape(const uint8_t *b, size_t n)
{
	static const size_t sizes[] = { 1, 2, 3, 8, 65, 193, 1024 };
	uint8_t *want = malloc(n + 1);
	size_t i;

	CHECK(want);
	for (i = 0; i <= sizeof sizes / sizeof sizes[0]; i++) {
		size_t outsz = i < sizeof sizes / sizeof sizes[0] ? sizes[i] :
		    n + 1;
		char *in = exact(b, n), *out = malloc(outsz);
		long w = ref_unescape(b, n, want, outsz - 1);
		int rc;

		CHECK(out);
		rc = http_unescape(in, n, out, outsz);
		CHECK(rc == 0 || rc == -1);
		CHECK((rc == 0) == (w >= 0));
		if (rc == 0) {
			CHECK(strlen(out) == (size_t)w && (size_t)w < outsz);
			CHECK(memcmp(out, want, (size_t)w) == 0);
		}
		free(in);
		free(out);
	}
	free(want);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_limits dflt;

	http_limits_default(&dflt);
	requests(data, size, &dflt);
	requests(data, size, &tight);
	responses(data, size, 8 << 20); /* the client's request link */
	responses(data, size, 1 << 16); /* its event stream's head */
	responses(data, size, 64);
	unescape(data, size);
	return 0;
}
