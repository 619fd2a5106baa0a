/*
 * clock — see include/util/clock.h.
 */
#include <stddef.h>
#include <time.h>

#include "util/clock.h"

static uint64_t (*test_source)(void);

void
clock_set_source(uint64_t (*usec)(void))
{
	test_source = usec;
}

uint64_t
clock_usec(void)
{
	struct timespec ts;

	if (test_source != NULL)
		return test_source();
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
clock_ms(void)
{
	return clock_usec() / 1000;
}
