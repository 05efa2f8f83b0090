/* check.h: what every fuzz target shares: a check that aborts (so the
 * fuzzer keeps the input) and ASan options. Include it once, after the
 * system headers. */
#ifndef BCH_FUZZ_CHECK_H
#define BCH_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(c) \
	do { \
		if (!(c)) { \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
			    __LINE__, #c); \
			abort(); \
		} \
	} while (0)

/* Fill every allocation whole, so a buffer read past its terminator (or
 * without one) runs into ASan's redzone instead of stale zeros. */
const char *
__asan_default_options(void)
{
	return "max_malloc_fill_size=1048576";
}

#endif
