/* pin fuzz target: tls_pin_of_cert over the input as a certificate's
 * DER, which a relay sends before anything is trusted. A pin is 64
 * lowercase hex digits and depends on nothing but the bytes it hashes:
 * the same input gives the same pin, and a certificate cut short at any
 * point is refused or hashes a prefix that is still inside it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "tls-impl.h"

#include "check.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned char *copy = malloc(size ? size : 1);
	char pin[65], again[65];
	size_t cut;

	CHECK(copy);
	/* Exactly size bytes, so a read past them is ASan's to see. */
	memcpy(copy, data, size);
	if (tls_pin_of_cert(copy, size, pin) == 0) {
		CHECK(hash_hex64(pin));
		CHECK(tls_pin_of_cert(copy, size, again) == 0);
		CHECK(strcmp(pin, again) == 0);
	}
	for (cut = 0; cut < size && cut < 64; cut++) {
		unsigned char *part = malloc(cut ? cut : 1);
		CHECK(part);
		memcpy(part, data, cut);
		if (tls_pin_of_cert(part, cut, again) == 0)
			CHECK(hash_hex64(again));
		free(part);
	}
	free(copy);
	return 0;
}
