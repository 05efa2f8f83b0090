/* http-put: an answer's status line and head, written. Apart from the
 * parsing in http.c: nothing of a parse's state is needed to answer. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http.h"

const char *
http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 507: return "Insufficient Storage";
	}
	return "Unknown";
}

void
http_put_response(struct buf *b, int status, const char *ctype,
    const char *body, size_t len, int keepalive, const char *extra)
{
	char date[64];
	time_t now = time(NULL);
	struct tm tm;

	/* Date lets clients (bch doctor) see a clock that is off. */
	gmtime_r(&now, &tm);
	if (!strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm))
		date[0] = 0;
	buf_printf(b, "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\n%s%s\r\n", status, http_reason(status),
	    date, ctype ? ctype : "application/json", len,
	    keepalive == 2 ? "Connection: keep-alive\r\n" :
	    keepalive ? "" : "Connection: close\r\n", extra ? extra : "");
	buf_add(b, body, len);
}
