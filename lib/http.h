/* http: strict HTTP/1.1 message parsing and formatting, for the relay
 * (requests in, responses out) and its client (the reverse). Parsers
 * work on a buffer holding the start of a connection's input and say
 * how much one whole message took, so pipelined requests fall out. */
#ifndef BCH_HTTP_H
#define BCH_HTTP_H

#include <stddef.h>

#include "buf.h"

struct http_limits {
	size_t head;    /* request line and headers: 16 KiB */
	size_t headers; /* header count: 64 */
	size_t body;    /* decoded body: 256 KiB */
};

struct http_req {
	char method[16];
	char path[1024]; /* raw target, query included */
	int keepalive;           /* 2: HTTP/1.0's, to be said in the answer */
	char auth[600];          /* Authorization value */
	char last_event_id[128]; /* Last-Event-ID value */
	char *body;              /* decoded body, NUL-terminated; free it */
	size_t body_len;
};

void http_limits_default(struct http_limits *l);

/* How far the parse of one request (or response) got, kept between
 * calls so that one arriving in pieces costs its length however small
 * the pieces are: its head is searched for its end once, its length
 * known once the head is whole, and its chunks decoded once each. */
struct http_parse {
	size_t seen;  /* bytes searched: for the head's end, a chunk line's */
	size_t end;   /* the head's length once it is whole, else 0 */
	size_t need;  /* Content-Length: the whole request's length */
	size_t at;    /* chunked: the next chunk line, or (data) its data */
	size_t size;  /* chunked, data: that chunk's size */
	int chunked;
	int data;
	int expect;   /* 1: the head is whole, says Expect: 100-continue,
	               * and its body is still to come: the client waits for
	               * "100 Continue", which the caller sends, setting 2 */
	struct buf body; /* chunked: what is decoded so far */
};

#define HTTP_PARSE_INIT { 0, 0, 0, 0, 0, 0, 0, 0, BUF_INIT }

/* Parse one request from buf[0..n), going on from where s got to: each
 * call after the first gives the same input, longer (an input shorter
 * than s has seen starts it again). Returns bytes used (> 0) when
 * whole, 0 when more input is needed, -1 when it can never be valid
 * (from its first byte on, when that cannot start a method), with
 * *status the answer to give (400, 413, 414, 431, 501, 505). Empty
 * lines before a request are the caller's to skip. s is ready for the
 * next request once one is taken or refused. The call that finds the
 * head whole (s->end set) with the body still to come returns 0 with the
 * head in r (no body), for the caller to look at before the body. */
long http_parse_request(struct http_parse *s, const char *buf, size_t n,
    const struct http_limits *l, struct http_req *r, int *status);

/* Drop what s holds of a request given up on, and start it again. */
void http_parse_free(struct http_parse *s);
void http_req_free(struct http_req *r);

struct http_resp {
	int status;
	int keepalive;
	int retry_after; /* seconds, or -1 */
	int event_stream; /* Content-Type: text/event-stream (no body length) */
	char location[512]; /* Location, cut to fit; "" when none */
	size_t head_len; /* bytes of the head, once it is whole */
	int too_big; /* refused: a Content-Length over maxbody */
	int head_too_big; /* refused: a head over HTTP_RESP_HEAD_MAX */
	int truncated; /* set by a caller that kept only a body's start */
	char *body;
	size_t body_len;
};

/* The bytes of a response's head (status line and headers, the blank
 * line included), at most. */
#define HTTP_RESP_HEAD_MAX (64 * 1024)

/* Parse one response from buf[0..n), going on from where s got to (NULL:
 * afresh), as http_parse_request does: an answer read in many small
 * pieces costs its length, not its length times the pieces. An event
 * stream's head alone is a whole response: its body follows as events.
 * A body whose Content-Length is over maxbody is -1 with too_big and
 * head_len set, as soon as the head is in; a head over
 * HTTP_RESP_HEAD_MAX is -1 with head_too_big, however its bytes come
 * in. s is ready for the next response once one is taken or refused;
 * http_parse_free() drops it when one is given up on half-read. */
long http_parse_response(struct http_parse *s, const char *buf, size_t n,
    size_t maxbody, struct http_resp *r);
void http_resp_free(struct http_resp *r);

/* Append a whole response with a body (JSON unless ctype says else);
 * keepalive 0 says Connection: close, 2 Connection: keep-alive. */
void http_put_response(struct buf *b, int status, const char *ctype,
    const char *body, size_t len, int keepalive, const char *extra);

/* The reason phrase of status. */
const char *http_reason(int status);

/* Decode %XX in a path segment into out; -1 on a bad escape, a NUL, or
 * a result over outsz-1 bytes. */
int http_unescape(const char *in, size_t n, char *out, size_t outsz);

#endif
