/* hash: the SHA-256 of BearSSL and getrandom(2) for tokens. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <bearssl/bearssl_hash.h>

#include "hash.h"

void
hash_sha256(const void *p, size_t n, unsigned char out[32])
{
	br_sha256_context c;

	br_sha256_init(&c);
	br_sha256_update(&c, p, n);
	br_sha256_out(&c, out);
}

static void
hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = 0;
}

void
hash_sha256_hex(const void *p, size_t n, char out[65])
{
	unsigned char d[32];

	hash_sha256(p, n, d);
	hex(d, 32, out);
}

int
hash_equal(const void *a, const void *b, size_t n)
{
	const volatile unsigned char *x = a, *y = b;
	unsigned char acc = 0;
	size_t i;

	for (i = 0; i < n; i++)
		acc |= (unsigned char)(x[i] ^ y[i]);
	return acc == 0;
}

int
hash_random_hex(char *out, size_t nbytes)
{
	unsigned char r[64];
	size_t got = 0;

	if (nbytes > sizeof r)
		return -1;
	while (got < nbytes) {
		ssize_t k = getrandom(r + got, nbytes - got, 0);
		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		got += (size_t)k;
	}
	hex(r, nbytes, out);
	return 0;
}

int
hash_hex64(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[64] == 0;
}
