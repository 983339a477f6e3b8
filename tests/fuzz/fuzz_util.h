/* What the fuzz drivers share: a failed check that names its driver, and the seeded generator. */
#ifndef VI_FUZZ_UTIL_H
#define VI_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef FUZZ_NAME
#error "define FUZZ_NAME (the driver's name, for messages) before including fuzz_util.h"
#endif

/* Stops the run when an invariant does not hold: a failed check fails the test. */
#define fuzz_check(cond)                                                                   \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, FUZZ_NAME ": %s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #cond);                                          \
			abort();                                                           \
		}                                                                          \
	} while (0)

/* xorshift64*: small, fast and the same everywhere, so a SEED replays its run exactly. */
static uint64_t fuzz_state __attribute__((unused)) = 1;

static inline void fuzz_seed(uint64_t seed)
{
	fuzz_state = seed * 0x9E3779B97F4A7C15ULL + 1;
	if (fuzz_state == 0)
		fuzz_state = 1;
}

static inline uint64_t fuzz_random(void)
{
	fuzz_state ^= fuzz_state >> 12;
	fuzz_state ^= fuzz_state << 25;
	fuzz_state ^= fuzz_state >> 27;
	return fuzz_state * 0x2545F4914F6CDD1DULL;
}

/* A number in [0, n), 0 when n is 0. */
static inline size_t fuzz_below(size_t n)
{
	return n == 0 ? 0 : (size_t)(fuzz_random() % n);
}

#endif
