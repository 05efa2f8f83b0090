/* http: HTTP/1.1 parsing (an answer's head is written by http-put.c).
 * Strict: CRLF line ends, token header names, one Content-Length or
 * chunked (never both), limits on every size, and anything doubtful
 * refused rather than guessed at. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "http.h"
#include "http-impl.h"

void
http_limits_default(struct http_limits *l)
{
	l->head = 16 * 1024;
	l->headers = 64;
	l->body = 256 * 1024;
}

int
http_tchar(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Find the end of the head in b[0..n): the index just past CRLF CRLF,
 * or 0. The search goes on from *seen, how far the last one got, so a
 * head that arrives in pieces is searched once. A head whose lines end
 * in bare LFs ends at LF LF (or LF CRLF), for the parse to refuse at
 * once rather than wait for a CRLF CRLF that never comes. */
static size_t
head_end(const char *b, size_t n, size_t *seen)
{
	size_t i;

	for (i = *seen > 1 ? *seen : 1; i < n; i++)
		if (b[i] == '\n' && (b[i - 1] == '\n' ||
		    (i >= 2 && b[i - 1] == '\r' && b[i - 2] == '\n')))
			return i + 1;
	*seen = n;
	return 0;
}

/* Does the head b[0..end) that head_end() found end right, in CRLF
 * CRLF? (Not LF LF, nor CRLF LF.) */
static int
crlf_end(const char *b, size_t end)
{
	return end >= 4 && memcmp(b + end - 4, "\r\n\r\n", 4) == 0;
}

struct hdrs {
	long clen; /* -1 none */
	int retry_after; /* seconds, -1 none */
	int chunked;
	int close, keep;
	int expect; /* Expect: 100-continue */
	int bad;
	int hosts; /* Host fields */
};

/* The options of a Connection field [v, ve), a list ("TE, close"). */
static void
conn_options(const char *v, const char *ve, struct hdrs *h)
{
	while (v < ve) {
		const char *e = memchr(v, ',', (size_t)(ve - v)), *t;
		if (!e)
			e = ve;
		for (t = e; t > v && (t[-1] == ' ' || t[-1] == '\t'); t--)
			;
		if (t - v == 5 && strncasecmp(v, "close", 5) == 0)
			h->close = 1;
		else if (t - v == 10 && strncasecmp(v, "keep-alive", 10) == 0)
			h->keep = 1;
		for (v = e + (e < ve); v < ve && (*v == ' ' || *v == '\t'); v++)
			;
	}
}

/* Is [v, ve) a Host value, uri-host [":" port] (RFC 9110 7.2)? Its
 * characters, that is: a name's, an IP literal's brackets, the colon. */
static int
host_value(const char *v, const char *ve)
{
	for (; v < ve; v++)
		if (!isalnum((unsigned char)*v) &&
		    !strchr("-._~%!$&'()*+,;=:[]", *v))
			return 0;
	return 1;
}

/* Look at one header line [p, e); fills what we care about. */
static void
header(const char *p, const char *e, struct hdrs *h, char *auth,
    size_t authsz, char *leid, size_t leidsz)
{
	const char *colon = p, *v, *ve;
	size_t nl;

	while (colon < e && http_tchar((unsigned char)*colon))
		colon++;
	if (colon == p || colon >= e || *colon != ':') {
		h->bad = 1;
		return;
	}
	nl = (size_t)(colon - p);
	for (v = colon + 1; v < e && (*v == ' ' || *v == '\t'); v++)
		;
	for (ve = e; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
		;
	for (const char *q = v; q < ve; q++)
		if ((unsigned char)*q < 0x20 && *q != '\t')
			h->bad = 1;
	if (nl == 14 && strncasecmp(p, "content-length", 14) == 0) {
		long n = 0;
		const char *q;
		if (v == ve || ve - v > 12) {
			h->bad = 1;
			return; /* and never multiply past what a long holds */
		}
		for (q = v; q < ve; q++) {
			if (!isdigit((unsigned char)*q))
				h->bad = 1;
			else
				n = n * 10 + (*q - '0');
		}
		if (h->clen >= 0 && h->clen != n)
			h->bad = 1;
		h->clen = n;
	} else if (nl == 17 && strncasecmp(p, "transfer-encoding", 17) == 0) {
		/* A second field is a list "chunked, chunked": chunked
		 * twice, which no sender may do; one reader would decode it
		 * once, another twice. */
		if ((size_t)(ve - v) == 7 && strncasecmp(v, "chunked", 7) == 0) {
			if (h->chunked)
				h->bad = 1;
			h->chunked = 1;
		} else {
			h->bad = 2; /* 501 */
		}
	} else if (auth && nl == 4 && strncasecmp(p, "host", 4) == 0) {
		h->hosts++;
		if (!host_value(v, ve))
			h->bad = 1;
	} else if (nl == 10 && strncasecmp(p, "connection", 10) == 0) {
		conn_options(v, ve, h);
	} else if (auth && nl == 13 && strncasecmp(p, "authorization", 13) == 0) {
		snprintf(auth, authsz, "%.*s", (int)(ve - v), v);
	} else if (leid && nl == 13 && strncasecmp(p, "last-event-id", 13) == 0) {
		snprintf(leid, leidsz, "%.*s", (int)(ve - v), v);
	} else if (nl == 6 && strncasecmp(p, "expect", 6) == 0) {
		h->expect = ve - v == 12 && strncasecmp(v, "100-continue", 12) == 0;
	} else if (nl == 11 && strncasecmp(p, "retry-after", 11) == 0) {
		const char *q;
		h->retry_after = 0;
		for (q = v; q < ve && q - v < 6 && isdigit((unsigned char)*q); q++)
			h->retry_after = h->retry_after * 10 + (*q - '0');
		if (q != ve || v == ve)
			h->retry_after = -1;
	}
}

/* An absolute-form target, which a server must take as well (RFC 9112
 * 3.2.2): its path and query alone, as in the usual origin-form. */
static void
origin_form(char *path)
{
	size_t skip = 0;
	char *p;

	if (strncasecmp(path, "http://", 7) == 0)
		skip = 7;
	else if (strncasecmp(path, "https://", 8) == 0)
		skip = 8;
	if (!skip)
		return;
	p = path + skip + strcspn(path + skip, "/?#");
	if (*p == '/') {
		memmove(path, p, strlen(p) + 1);
	} else { /* "http://host?q" is "/?q" */
		memmove(path + 1, p, strlen(p) + 1);
		path[0] = '/';
	}
}

/* The request line [b, e], e its LF: METHOD SP target SP HTTP/1.x CRLF,
 * into r and *minor (HTTP/1.2 and on are read as 1.1, RFC 9110 2.5), or
 * -1 with *status: 400, 501 for a method longer than any (RFC 9112 3.1),
 * 414 for a target longer than r holds (3), 505 for HTTP/2 and such. */
static int
req_line(const char *b, const char *e, struct http_req *r, int *minor,
    int *status)
{
	const char *p, *sp1, *sp2;

	*status = 400;
	sp1 = memchr(b, ' ', (size_t)(e - b));
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(e - sp1 - 1)) : NULL;
	if (!sp1 || !sp2 || sp1 == b || sp2 == sp1 + 1 || e - sp2 != 10 ||
	    strncmp(sp2 + 1, "HTTP/", 5) != 0 ||
	    !isdigit((unsigned char)sp2[6]) || sp2[7] != '.' ||
	    !isdigit((unsigned char)sp2[8]) || e[-1] != '\r')
		return -1;
	for (p = b; p < sp1; p++)
		if (!http_tchar((unsigned char)*p))
			return -1;
	for (p = sp1 + 1; p < sp2; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return -1;
	if (sp2[6] != '1') {
		*status = 505; /* well formed, but not a version we speak */
		return -1;
	}
	if ((size_t)(sp1 - b) >= sizeof r->method) {
		*status = 501;
		return -1;
	}
	if ((size_t)(sp2 - sp1 - 1) >= sizeof r->path) {
		*status = 414;
		return -1;
	}
	*minor = sp2[8] == '0' ? 0 : 1;
	memcpy(r->method, b, (size_t)(sp1 - b));
	memcpy(r->path, sp1 + 1, (size_t)(sp2 - sp1 - 1));
	origin_form(r->path);
	/* What is left is origin-form, "/..." (RFC 9112 3.2); but for
	 * OPTIONS *, the authority and asterisk forms are CONNECT's and
	 * OPTIONS's alone, and no other form is a target. */
	if (r->path[0] != '/' && (strcmp(r->path, "*") != 0 ||
	    strcmp(r->method, "OPTIONS") != 0))
		return -1;
	return 0;
}

/* The request line and headers, b[0..end): into r and *h, or -1 with
 * *status (400, 414, 431, 501, 505). */
static int
req_head(const char *b, size_t end, const struct http_limits *l,
    struct http_req *r, struct hdrs *h, int *status)
{
	const char *p, *e;
	size_t count = 0;
	int minor;

	*status = 400;
	if (!crlf_end(b, end))
		return -1;
	e = memchr(b, '\n', end);
	if (req_line(b, e, r, &minor, status) < 0)
		return -1;
	*status = 400;
	for (p = e + 1; p < b + end - 2; p = e + 1) {
		e = memchr(p, '\n', (size_t)(b + end - p));
		if (!e || e == p || e[-1] != '\r')
			return -1;
		if (++count > l->headers) {
			*status = 431;
			return -1;
		}
		header(p, e - 1, h, r->auth, sizeof r->auth, r->last_event_id,
		    sizeof r->last_event_id);
	}
	if (h->bad == 2) {
		*status = 501;
		return -1;
	}
	/* Chunked in HTTP/1.0 is framing a 1.0 proxy on the way ignored. */
	if (h->bad || (h->chunked && (h->clen >= 0 || minor == 0)))
		return -1;
	/* One Host, which HTTP/1.1 must send (RFC 9112 3.2). */
	if (h->hosts > 1 || (minor == 1 && !h->hosts))
		return -1;
	/* HTTP/1.0 keeps a connection only when both ends say so. */
	r->keepalive = h->close ? 0 : minor == 1 ? 1 : h->keep ? 2 : 0;
	if (minor == 0)
		h->expect = 0; /* no 1xx to an HTTP/1.0 client */
	return 0;
}

/* The head of b[0..n) once it is whole: parsed into r, and what its
 * body takes into s. 1 when done, 0 for more, -1 with *status. */
static int
req_start(struct http_parse *s, const char *b, size_t n,
    const struct http_limits *l, struct http_req *r, int *status)
{
	struct hdrs h = { -1, -1, 0, 0, 0, 0, 0, 0 };
	size_t end;

	/* A request line starts with its method, a token: a request that
	 * starts otherwise is refused at its first byte, not once a head
	 * that may never come is whole (the client would wait out the
	 * request timeout, with no answer). */
	*status = 400;
	if (n && !http_tchar((unsigned char)b[0]))
		return -1;
	end = head_end(b, n < l->head ? n : l->head, &s->seen);
	if (!end) {
		*status = 431;
		return n >= l->head ? -1 : 0;
	}
	if (req_head(b, end, l, r, &h, status) < 0)
		return -1;
	if (!h.chunked && h.clen > 0 && (size_t)h.clen > l->body) {
		*status = 413;
		return -1;
	}
	s->end = s->at = s->seen = end;
	s->chunked = h.chunked;
	s->need = end + (h.clen > 0 ? (size_t)h.clen : 0);
	s->expect = h.expect && (h.chunked || s->need > n);
	return 1;
}

/* How much of b is the whole message whose head s has parsed: 0 while
 * its body is still coming, -1 (status set, s freed) for a bad chunk. */
static long
body_end(struct http_parse *s, const char *b, size_t n, size_t max,
    int *status)
{
	long used;

	if (!s->chunked)
		return n < s->need ? 0 : (long)s->need;
	if ((used = http_dechunk(s, b, n, max, status)) < 0)
		http_parse_free(s);
	return used;
}

/* The whole body into *body (never NULL) and *len, and s made fresh
 * for the next message: the body is the caller's now. */
static void
body_take(struct http_parse *s, const char *b, char **body, size_t *len)
{
	if (!s->chunked)
		buf_add(&s->body, b + s->end, s->need - s->end);
	if (!s->body.p)
		buf_add(&s->body, "", 0);
	*body = s->body.p;
	*len = s->body.len;
	memset(s, 0, sizeof *s);
}

long
http_parse_request(struct http_parse *s, const char *b, size_t n,
    const struct http_limits *l, struct http_req *r, int *status)
{
	struct hdrs h = { -1, -1, 0, 0, 0, 0, 0, 0 };
	int headed = 0, rc;
	long used;

	memset(r, 0, sizeof *r);
	if (n < s->seen)
		http_parse_free(s); /* not the input it saw: start again */
	if (!s->end) {
		if ((rc = req_start(s, b, n, l, r, status)) < 0)
			http_parse_free(s);
		if (rc <= 0)
			return rc;
		headed = 1;
	}
	if ((used = body_end(s, b, n, l->body, status)) <= 0)
		return used;
	/* Whole: the head read again if it came in an earlier piece (once
	 * per request), as r is not kept between calls. It was found good
	 * then; it fails only if the input is not the one s saw. */
	if (!headed && req_head(b, s->end, l, r, &h, status) < 0) {
		http_parse_free(s);
		return -1;
	}
	body_take(s, b, &r->body, &r->body_len);
	return used;
}

void
http_parse_free(struct http_parse *s)
{
	buf_free(&s->body);
	memset(s, 0, sizeof *s);
}

void
http_req_free(struct http_req *r)
{
	free(r->body);
	r->body = NULL;
}

/* The headers of a response that only a response has, from the line
 * [p, e): compared within it, as the head is not a C string. */
static void
resp_header(const char *p, const char *e, struct http_resp *r)
{
	const char *v, *ve;

	if (e - p >= 13 && strncasecmp(p, "content-type:", 13) == 0) {
		for (v = p + 13; v < e && *v == ' '; v++)
			;
		if (e - v >= 17 && strncasecmp(v, "text/event-stream", 17) == 0)
			r->event_stream = 1;
	} else if (e - p >= 9 && strncasecmp(p, "location:", 9) == 0) {
		for (v = p + 9; v < e && (*v == ' ' || *v == '\t'); v++)
			;
		for (ve = e; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
			;
		snprintf(r->location, sizeof r->location, "%.*s",
		    (int)(ve - v), v);
	}
}

/* The status line and headers of a response, b[0..end): into r and *h,
 * or -1 when malformed. */
static int
resp_head(const char *b, size_t end, struct http_resp *r, struct hdrs *h)
{
	const char *p, *e = memchr(b, '\n', end);

	if (!crlf_end(b, end) || e - b < 13 || strncmp(b, "HTTP/1.", 7) != 0 || b[8] != ' ' ||
	    !isdigit((unsigned char)b[9]) || !isdigit((unsigned char)b[10]) ||
	    !isdigit((unsigned char)b[11]))
		return -1;
	r->status = (b[9] - '0') * 100 + (b[10] - '0') * 10 + (b[11] - '0');
	r->keepalive = b[7] == '1';
	for (p = e + 1; p < b + end - 2; p = e + 1) {
		e = memchr(p, '\n', (size_t)(b + end - p));
		if (!e || e == p || e[-1] != '\r')
			return -1;
		header(p, e - 1, h, NULL, 0, NULL, 0);
		resp_header(p, e - 1, r);
	}
	if (h->bad || (h->chunked && h->clen >= 0))
		return -1;
	r->retry_after = h->retry_after;
	r->head_len = end;
	if (h->close)
		r->keepalive = 0;
	return 0;
}

/* The head of b[0..n) once it is whole: parsed into r, and what its body
 * takes into s (an event stream's takes nothing). 1 when done, 0 for
 * more, -1 (with r->too_big for a Content-Length over maxbody, or
 * r->head_too_big). A body needs a length: chunked, or Content-Length.
 * The head's end is looked for in its first HTTP_RESP_HEAD_MAX bytes
 * only, so that the limit is the same whether the bytes past it came
 * in the read that brought the end or in one after. */
static int
resp_start(struct http_parse *s, const char *b, size_t n, size_t maxbody,
    struct http_resp *r)
{
	struct hdrs h = { -1, -1, 0, 0, 0, 0, 0, 0 };
	size_t end = head_end(b, n < HTTP_RESP_HEAD_MAX ? n :
	    HTTP_RESP_HEAD_MAX, &s->seen);

	if (!end) {
		r->head_too_big = n >= HTTP_RESP_HEAD_MAX;
		return r->head_too_big ? -1 : 0;
	}
	if (resp_head(b, end, r, &h) < 0)
		return -1;
	s->end = s->at = s->seen = s->need = end;
	if (r->event_stream)
		return 1;
	if (!h.chunked && (h.clen < 0 || (size_t)h.clen > maxbody)) {
		r->too_big = h.clen >= 0;
		return -1;
	}
	s->chunked = h.chunked;
	s->need = end + (h.clen > 0 ? (size_t)h.clen : 0);
	return 1;
}

/* http_parse_response() with a state to go on from. */
static long
resp_parse(struct http_parse *s, const char *b, size_t n, size_t maxbody,
    struct http_resp *r)
{
	struct hdrs h = { -1, -1, 0, 0, 0, 0, 0, 0 };
	int headed = 0, rc, status;
	long used;

	memset(r, 0, sizeof *r);
	r->retry_after = -1;
	if (n < s->seen)
		http_parse_free(s); /* not the input it saw: start again */
	if (!s->end) {
		if ((rc = resp_start(s, b, n, maxbody, r)) < 0)
			http_parse_free(s);
		if (rc <= 0)
			return rc;
		headed = 1;
	}
	if (r->event_stream) /* the head alone: the events are the caller's */
		used = (long)s->end;
	else
		used = body_end(s, b, n, maxbody, &status);
	if (used <= 0)
		return used;
	/* Whole: the head read again if it came in an earlier piece (once
	 * per answer), as r is not kept between calls. */
	if (!headed && resp_head(b, s->end, r, &h) < 0) {
		http_parse_free(s);
		return -1;
	}
	if (r->event_stream)
		memset(s, 0, sizeof *s);
	else
		body_take(s, b, &r->body, &r->body_len);
	return used;
}

long
http_parse_response(struct http_parse *s, const char *b, size_t n,
    size_t maxbody, struct http_resp *r)
{
	struct http_parse fresh = HTTP_PARSE_INIT;
	long used = resp_parse(s ? s : &fresh, b, n, maxbody, r);

	http_parse_free(&fresh);
	return used;
}

void
http_resp_free(struct http_resp *r)
{
	free(r->body);
	r->body = NULL;
}

int
http_unescape(const char *in, size_t n, char *out, size_t outsz)
{
	size_t i, w = 0;

	for (i = 0; i < n; i++) {
		int c = (unsigned char)in[i];
		if (c == '%') {
			int hi, lo;
			if (i + 2 >= n)
				return -1;
			hi = hex_digit(in[i + 1]);
			lo = hex_digit(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = hi << 4 | lo;
			i += 2;
		}
		if (c == 0 || outsz == 0 || w + 1 >= outsz)
			return -1;
		out[w++] = (char)c;
	}
	out[w] = 0;
	return 0;
}
