/*
 * clock — the monotonic clock every timer, backoff and latency figure
 * reads, in one place so a test can replace it.
 *
 * clock_set_source is for tests (the live planner's model test moves
 * time itself); call it before any other thread reads the clock. The
 * readers are safe on any thread.
 */
#ifndef TREESYNC_CLOCK_H
#define TREESYNC_CLOCK_H

#include <stdint.h>

/* Microseconds on CLOCK_MONOTONIC (or the test's source). */
uint64_t clock_usec(void);
/* The same in milliseconds. */
uint64_t clock_ms(void);
/* NULL: the real clock again. */
void clock_set_source(uint64_t (*usec)(void));

#endif
