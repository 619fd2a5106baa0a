/*
 * fuzz-live — the live planner (src/live/) on event input from bytes.
 *
 * The input's bytes are the model's choices (tests/model/model.h): how
 * many destinations and workers, the delay, the fault rates, the trees as
 * the daemon finds them, then each step: a change to the source (and the
 * events the kernel would give for it), a batch of events delivered (or
 * lost with an overflow), a worker running a job (against the source as
 * it is at that moment, failing some), a completion, the clock and the
 * timer, a resync. When the bytes run out the source stops changing; the
 * planner must go idle (no livelock, no stall) and every destination
 * must then equal the source exactly.
 */
#include "fuzz.h"
#include "model.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	ModelRng rng;
	ModelResult res;
	int r;

	model_rng_bytes(&rng, data, size);
	r = model_run(&rng, 100000, false, &res);
	FUZZ_CHECK(r == 0, "model set-up failed: %d", r);
	FUZZ_CHECK(res.ok, "after %llu steps: %s",
	    (unsigned long long)res.steps, res.message);
	return 0;
}
