/* hash: SHA-256, constant-time comparison and random tokens. */
#ifndef BCH_HASH_H
#define BCH_HASH_H

#include <stddef.h>

/* Is s 64 lowercase hex digits, as a SHA-256 or a token is written? */
int hash_hex64(const char *s);

/* Lowercase hex SHA-256 of p[0..n) into out[65]. */
void hash_sha256_hex(const void *p, size_t n, char out[65]);

/* Raw SHA-256 of p[0..n) into out[32]. */
void hash_sha256(const void *p, size_t n, unsigned char out[32]);

/* 1 if a and b (n bytes each) are equal; time independent of content. */
int hash_equal(const void *a, const void *b, size_t n);

/* 2*nbytes lowercase hex characters of kernel randomness into out
 * (size 2*nbytes+1). 0, or -1 if no randomness could be had. */
int hash_random_hex(char *out, size_t nbytes);

#endif
