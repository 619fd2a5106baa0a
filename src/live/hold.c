/*
 * hold — the pair's two safety states (live-int.h; engine/guard.h does
 * the checks on the workers):
 *
 *   fault  every pass and every live delete first checks the source
 *          root. A root that vanished, was unmounted or replaced, or is
 *          empty while the destination is not, puts the pair in fault:
 *          no work is handed out but a probe (a full pass of the first
 *          destination) with backoff (0.5 s .. 16 s); a probe that finds
 *          the root sound leaves the fault and every destination gets a
 *          full pass.
 *   hold   a pass that reached max_delete holds the pair: passes and
 *          path jobs go on, deletes do not, until live_resync(force) or a
 *          reload with another max_delete (which restarts the pair).
 *
 *            sound ──check fails──▶ fault ──probe sound──▶ sound
 *              │                     └──resync --force──▶ sound
 *              └──pass withheld deletes──▶ held ──resync --force──▶ sound
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "live-int.h"
#include "util/clock.h"
#include "util/synclog.h"

/* The operator's line for a fault: what, what happens, how to end it. */
static void
fault_text(Live *live, GuardFault f)
{
	bool forced = f == GUARD_REPLACED || f == GUARD_EMPTY;

	snprintf(live->fault_text, sizeof live->fault_text, "source '%s' %s: "
	    "nothing is deleted or copied until it is back; checking again "
	    "every %.1f..%d s%s%s", live->pair->source, guard_fault_text(f),
	    FAULT_CHECK_MIN_MS / 1000.0, FAULT_CHECK_MAX_MS / 1000, forced ?
	    "; if it is meant to be so: treesyncctl resync --force " : "",
	    forced ? live->pair->name : "");
}

/*
 * The source root failed its check: stop handing out work (deletes
 * above all), log once per episode, and probe again with backoff.
 */
void
live_enter_fault(Live *live, GuardFault f)
{
	uint64_t wait = FAULT_CHECK_MIN_MS;

	if (live->fault == GUARD_OK || live->fault != f) {
		fault_text(live, f);
		synclog_event(LOG_LEVEL_ERROR, live->pair->name, "guard", "",
		    "-", "%s", live->fault_text);
		live->fault_checks = 0;
	}
	live->fault = f;
	for (unsigned i = 0; i < live->fault_checks && wait <
	    FAULT_CHECK_MAX_MS; i++)
		wait *= 2;
	if (wait > FAULT_CHECK_MAX_MS)
		wait = FAULT_CHECK_MAX_MS;
	live->fault_checks++;
	live->fault_due_ms = clock_ms() + wait;
}

/* A probe found the source root sound: converge every destination. */
void
live_leave_fault(Live *live)
{
	GuardFault was = live->fault;

	synclog_event(LOG_LEVEL_INFO, live->pair->name, "guard", "", "-",
	    "source '%s' is back: resuming; comparing every destination",
	    live->pair->source);
	live->fault = GUARD_OK;
	live->fault_checks = 0;
	live->fault_text[0] = '\0';
	for (size_t k = 0; k < live->n_dests; k++) {
		live->dests[k].full_needed = true;
		live->dests[k].pass_due_ms = 0;
	}
	/* An emptied root kept its watches: no restart, whose handover
	 * would only race with the jobs still out. */
	if (was != GUARD_EMPTY && live->opt.source_back != NULL)
		live->opt.source_back(live->opt.source_back_arg);
}

/* A pass reached max_delete: no deletes for this pair until released. */
void
live_enter_hold(Live *live, const LiveDest *d, const SyncStats *st)
{
	const MaxDelete *md = &live->pair->max_delete;
	char limit[64];

	if (md->kind == MAX_DELETE_PERCENT)
		snprintf(limit, sizeof limit, "\"%llu%%\" (%llu entries)",
		    md->value, (unsigned long long)st->delete_budget);
	else
		snprintf(limit, sizeof limit, "%llu", md->value);
	snprintf(live->fault_text, sizeof live->fault_text, "max_delete "
	    "reached in '%s': %llu deleted, %llu more deletes withheld "
	    "(max_delete = %s per pass); deletes are held for this pair, "
	    "copies go on; release: treesyncctl resync --force %s (or raise "
	    "max_delete and reload with SIGHUP)", d->path,
	    (unsigned long long)st->deleted, (unsigned long long)st->withheld,
	    limit, live->pair->name);
	if (!live->held)
		synclog_event(LOG_LEVEL_ERROR, live->pair->name, "guard", "",
		    d->path, "%s", live->fault_text);
	live->held = true;
}

/* resync --force: the operator takes the source as it is. */
void
live_release(Live *live)
{
	live->held = false;
	live->fault_text[0] = '\0';
	if (live->fault != GUARD_OK) {
		live->fault = GUARD_OK;
		live->fault_checks = 0;
	}
}
