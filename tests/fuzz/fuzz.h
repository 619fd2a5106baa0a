/*
 * fuzz — what the libFuzzer targets in tests/fuzz share: the entry point's
 * prototype and an assertion that reports the broken invariant and aborts,
 * so libFuzzer records the input as a crash (and -DNDEBUG cannot drop it).
 */
#ifndef TREESYNC_FUZZ_H
#define TREESYNC_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			fprintf(stderr, "%s:%d: invariant broken: %s: ",	\
			    __FILE__, __LINE__, #cond);			\
			fprintf(stderr, __VA_ARGS__);			\
			fputc('\n', stderr);				\
			abort();					\
		}							\
	} while (0)

#endif
