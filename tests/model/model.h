/*
 * model — a model-based test of the live planner (src/live/), shared by
 * the check test (tests/unit/test-model.c) and the libFuzzer target
 * (tests/fuzz/fuzz-live.c).
 *
 * Owns an in-memory source tree and one or two destination trees, a
 * random driver that changes the source and emits the inotify events the
 * kernel would, and model destinations behind the destination seam
 * (dest/dest.h) that apply live's work to the model trees with the
 * contract of the local destination. The real src/live/ runs on top,
 * with the model's clock (live_set_clock) and timer (live_timer_due, live_tick).
 * One sequence: build a live pair, drive it, stop changing the source,
 * run until the planner is idle (a bound: never idle is a livelock), then
 * every destination must equal the source exactly.
 *
 * Single-threaded; one sequence at a time (the model's world is process-global).
 */
#ifndef TREESYNC_MODEL_H
#define TREESYNC_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Randomness: a seeded PRNG, or (fuzzing) the bytes of an input. */
typedef struct ModelRng {
	uint64_t state;
	const uint8_t *data;	/* non-NULL: take choices from these bytes */
	size_t len, pos;
	bool exhausted;		/* data ran out: the sequence ends */
} ModelRng;

void model_rng_seed(ModelRng *r, uint64_t seed);
void model_rng_bytes(ModelRng *r, const uint8_t *data, size_t len);

typedef struct ModelResult {
	bool ok;
	uint64_t steps;		/* driver steps taken */
	char message[512];	/* on failure: what differs, and where */
} ModelResult;

/*
 * Runs one sequence of at most max_steps driver steps (with bytes: until
 * they run out too). trace: every step on stderr. Returns 0 and fills
 * *res (res->ok false: the destinations diverged or the planner never
 * went idle), or -errno when the model itself could not be set up.
 */
int model_run(ModelRng *rng, uint64_t max_steps, bool trace,
    ModelResult *res);

#endif
