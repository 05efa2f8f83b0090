/* buf: a growable byte buffer, always NUL-terminated. */
#ifndef BCH_BUF_H
#define BCH_BUF_H

#include <stddef.h>

struct buf {
	char *p;
	size_t len;
	size_t cap;
};

#define BUF_INIT { 0, 0, 0 }

/* Make room for n more bytes (plus the NUL); exits 111 on out of memory. */
void buf_grow(struct buf *b, size_t n);
void buf_add(struct buf *b, const void *p, size_t n);
void buf_adds(struct buf *b, const char *s);
void buf_addc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

/* The value of the hex digit c (0-9, a-f, A-F), or -1. */
int hex_digit(int c);

/* malloc, calloc, strdup, strndup that exit 111 rather than return NULL. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);

#endif
