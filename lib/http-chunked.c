/* http-chunked: the chunked transfer coding of a request or response
 * body (RFC 9112 7.1), decoded as it arrives: chunk lines, their data,
 * the trailer section. Private to http.c, which parses the heads. */
#include <string.h>

#include "http.h"
#include "http-impl.h"

/* Is b[k], in a chunk line after its digits at b[i], a control byte
 * (a CR only just before the LF)? */
static int
bad_ext(const char *b, size_t i, size_t k)
{
	unsigned char c = (unsigned char)b[k];

	if (k > i && b[k - 1] == '\r')
		return 1; /* a CR not before the LF */
	return (c < 0x20 && c != '\t' && c != '\r') || c == 0x7f;
}

/* The LF, into *lf, that ends the line from b[i] (a chunk line after its
 * digits, or a trailer field), searched for from s->seen so that a line
 * trickled in costs its length. No control byte but a CR just before
 * the LF; over len bytes it is refused with too_long. 1 found, 0 for
 * more, -1 with *status. */
static int
line_end(struct http_parse *s, const char *b, size_t n, size_t i, size_t len,
    int too_long, int *status, size_t *lf)
{
	size_t k;

	*status = 400;
	for (k = s->seen > i ? s->seen : i; k < n && b[k] != '\n'; k++) {
		if (k - i > len) {
			*status = too_long;
			return -1;
		}
		if (bad_ext(b, i, k))
			return -1;
	}
	if (k >= n) {
		s->seen = n;
		return 0;
	}
	if (b[k - 1] != '\r')
		return -1;
	*lf = k;
	return 1;
}

/* The line of the chunk at s->at: its size into s->size, s->at past the
 * line. 1 when read, 0 for more, -1 with *status (400, 413). The digits
 * (8 at most) are looked at again each time, the rest of the line is
 * searched for its end from s->seen, so a line trickled in costs its
 * length. The raw body is held to 2 * max + 64 KiB: chunk extensions
 * (ignored, up to 256 bytes a chunk) would let a body of max bytes fill
 * hundreds of times that. */
static int
chunk_line(struct http_parse *s, const char *b, size_t n, size_t max,
    int *status)
{
	size_t i = s->at, size = 0, digits = 0, k;
	int h, rc;

	*status = 413;
	if (s->at - s->end > 2 * max + 64 * 1024)
		return -1;
	*status = 400;
	while (i < n && (h = hex_digit(b[i])) >= 0) {
		if (++digits > 8)
			return -1;
		size = size * 16 + (size_t)h;
		i++;
	}
	if (i >= n)
		return 0;
	/* Chunk extensions (after BWS and ";") are allowed and ignored;
	 * anything else after the digits, "0x1b" or "1bzz", is refused, as
	 * a proxy in front may read a size from it that we do not. */
	for (k = i; k < n && k - i <= 256 && (b[k] == ' ' || b[k] == '\t'); k++)
		;
	if (k >= n)
		return 0;
	if (!digits || (b[k] != ';' && b[k] != '\r'))
		return -1;
	if ((rc = line_end(s, b, n, i, 256, 400, status, &k)) <= 0)
		return rc;
	if (s->body.len + size > max) {
		*status = 413;
		return -1;
	}
	s->at = s->seen = k + 1;
	s->size = size;
	s->data = 1;
	return 1;
}

/* The trailer section after the last chunk, from s->at: its fields are
 * read past and dropped (RFC 9112 7.1.2), each "name: value" with no
 * control bytes, and the raw body held to the limit chunk_line() keeps.
 * The message's length once the blank line that ends it is in, 0 for
 * more, -1 with *status (400, 413). */
static long
trailers(struct http_parse *s, const char *b, size_t n, size_t max,
    int *status)
{
	size_t k, limit = 2 * max + 64 * 1024;
	int rc;

	for (;;) {
		*status = 413;
		if (s->at - s->end > limit)
			return -1;
		*status = 400;
		if (n - s->at < 2)
			return 0;
		if (b[s->at] == '\r')
			return b[s->at + 1] == '\n' ? (long)(s->at + 2) : -1;
		/* A field that never ends is held to the limit too. */
		if ((rc = line_end(s, b, n, s->at, limit - (s->at - s->end), 413,
		    status, &k)) <= 0)
			return rc;
		s->seen = k + 1;
		for (k = s->at; http_tchar((unsigned char)b[k]); k++)
			;
		if (k == s->at || b[k] != ':')
			return -1;
		s->at = s->seen;
	}
}

/* Decode the chunked body of b[0..n) from s->at on, into s->body.
 * Returns the length of the whole message when the last chunk is in, 0
 * for more, -1 with *status (400, 413). */
long
http_dechunk(struct http_parse *s, const char *b, size_t n, size_t max,
    int *status)
{
	for (;;) {
		int rc = s->data ? 1 : chunk_line(s, b, n, max, status);
		if (rc <= 0)
			return rc;
		if (!s->size) /* the last chunk: its trailers, then CRLF */
			return trailers(s, b, n, max, status);
		/* The chunk's data and CRLF. */
		if (n - s->at < s->size + 2)
			return 0;
		if (b[s->at + s->size] != '\r' || b[s->at + s->size + 1] != '\n') {
			*status = 400;
			return -1;
		}
		buf_add(&s->body, b + s->at, s->size);
		s->at = s->seen = s->at + s->size + 2;
		s->data = 0;
	}
}
