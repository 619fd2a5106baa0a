/*
 * schedule — what a destination may hand out now, and when the timer
 * must look again (live-int.h).
 *
 * live_flush takes the steps below in order; the first that holds the
 * line ends it, so the order is the safety argument:
 *   0. away           a destination that says it is away takes nothing
 *                     (what changes meanwhile waits in the queue)
 *   1. the probe      a faulted pair hands out nothing but a full pass
 *                     of its first destination, with backoff (hold.c)
 *   2. renames        first, in the order they happened, alone
 *   3. passes         a full pass (when its backoff allows) or a subtree
 *                     pass, once no path job is out: a path job racing a
 *                     pass could make the pass delete what it saw late
 *   4. the settle     the compare after a directory rename, once the
 *                     destination is quiet
 *   5. batches        ripe paths, parents first, in jobs of about an
 *                     equal share per worker
 * Only what is due later arms the timer; what is due now and still
 * queued waits for a completion, which flushes again.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "live-int.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/synclog.h"

uint64_t
live_backoff_ms(unsigned attempts)
{
	uint64_t ms = BACKOFF_MIN_MS;

	while (attempts-- > 1 && ms < BACKOFF_MAX_MS)
		ms *= 2;
	return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

/* A pass of relroot ("" = the whole tree) starts now. */
static void
start_pass(LiveDest *d, const char *relroot)
{
	Live *live = d->live;
	FullSyncOptions opt = live->pass_opt;
	int r;

	opt.expect = live->identity;
	opt.hold_deletes = live->held;
	if (relroot[0] == '\0' && d->force_next) {
		/* The operator's word: take the source as it is, delete
		 * past max_delete, once. */
		opt.force = true;
		opt.expect.known = false;
		d->force_next = false;
	}
	d->probing = live->fault != GUARD_OK;
	/* Changes made before the pass starts are seen by its scans. */
	queue_clear(d, relroot);
	if (relroot[0] == '\0')
		synclog_event(LOG_LEVEL_INFO, live->pair->name, "full", "",
		    d->path, "comparing the whole tree");
	d->pass_root = xstrdup(relroot);
	if ((r = dest_compare(d->dest, relroot, &opt, live_pass_done, d,
	    &d->pass)) < 0) {
		/* Nothing started: like a pass that failed at once. */
		synclog_event(LOG_LEVEL_ERROR, live->pair->name, "full",
		    relroot, d->path, "cannot start a compare: %s; will try "
		    "again", strerror(-r));
		free(d->pass_root);
		d->pass_root = NULL;
		d->pass = NULL;
		d->pass_failures++;
		d->full_needed = true;
		d->pass_due_ms = clock_ms() + live_backoff_ms(d->pass_failures)
		    * PASS_BACKOFF_FACTOR;
	}
}

/* 1. A faulted pair: only the probe, a full pass of the first
 * destination, when its backoff allows. */
static bool
step_probe(LiveDest *d, uint64_t now)
{
	Live *live = d->live;

	if (live->fault == GUARD_OK)
		return false;
	if (d == &live->dests[0] && d->jobs_out == 0 &&
	    now >= live->fault_due_ms)
		start_pass(d, "");
	return true;
}

/* 0. An away destination takes nothing; it says when it is back. */
static bool
step_away(const LiveDest *d)
{
	return d->away;
}

/* 2. Renames go first, in order, when nothing else is out. */
static bool
step_renames(LiveDest *d)
{
	DestRenames *r;

	if (d->renames == NULL)
		return false;
	if (d->jobs_out > 0)
		return true;
	r = dest_renames_new(d->n_renames);
	for (Rename *x = d->renames; x != NULL; x = x->next)
		dest_renames_add(r, x->from, x->to, x->is_dir);
	queue_free_renames(queue_take_renames(d));
	r->done = live_renames_done;
	r->arg = d;
	d->jobs_out++;
	dest_rename(d->dest, r);
	return true;
}

/* 3. A full pass (its backoff over) or the first subtree pass waiting,
 * once the path jobs are back. */
static bool
step_pass(LiveDest *d, uint64_t now)
{
	bool full = d->full_needed && now >= d->pass_due_ms;
	char *root;

	if (!full && d->n_subtrees == 0)
		return false;
	if (d->jobs_out > 0)
		return true;
	if (full) {
		d->full_needed = false;
		queue_drop_subtrees(d);
		start_pass(d, "");
		return true;
	}
	root = d->subtrees[0];
	d->n_subtrees--;
	memmove(d->subtrees, d->subtrees + 1, d->n_subtrees *
	    sizeof *d->subtrees);
	start_pass(d, root);
	free(root);
	return true;
}

/* 4. Directories were renamed: one compare once the source has been
 * quiet for SETTLE_MS and this destination has nothing else to do. */
static bool
step_settle(LiveDest *d, uint64_t now)
{
	if (!d->settle_needed || now < d->settle_due_ms ||
	    d->pending.count != 0 || d->jobs_out != 0)
		return false;
	d->settle_needed = false;
	synclog_event(LOG_LEVEL_DEBUG, d->live->pair->name, "settle", "",
	    d->path, "directories were renamed: comparing");
	start_pass(d, "");
	return true;
}

static DestBatch *
new_batch(LiveDest *d, size_t cap)
{
	Live *live = d->live;
	DestBatch *b = dest_batch_new(cap);

	b->opt = live->batch_opt;
	b->opt.hold_deletes = live->held;
	b->opt.expect = live->identity;
	b->done = live_batch_done;
	b->arg = d;
	return b;
}

#define MAX_OPEN 64		/* batches filled by one flush */

/*
 * 5. Ripe paths share batches: a local destination opens the roots once
 * per batch and each parent directory once per run of its names, a
 * remote one sends a batch as one run, and the reactor wakes once per
 * batch, not per file. A batch takes its share of what is ripe, so
 * every worker (cap.parallel) gets some; with at most cap.requests out,
 * what falls due meanwhile gathers in the heap for the next batch. The
 * root's own metadata goes alone.
 */
static void
step_batches(LiveDest *d, uint64_t now)
{
	DestBatch *open[MAX_OPEN], *b;
	size_t per, slots, nopen = 0;
	Pending *p;

	if (d->pending.count == 0 || d->jobs_out >= d->cap.requests)
		return;
	queue_ripen(d, now);
	per = (heap_count(&d->ripe) + d->cap.parallel - 1) / d->cap.parallel;
	per = per < d->cap.batch_paths ? per : d->cap.batch_paths;
	slots = d->cap.requests - d->jobs_out;
	slots = slots < MAX_OPEN ? slots : MAX_OPEN;
	while ((p = queue_next_ripe(d)) != NULL) {
		DestItem *it;

		b = nopen > 0 ? open[nopen - 1] : NULL;
		if (b != NULL && (b->n >= per || p->relpath[0] == '\0' ||
		    b->items[0].relpath[0] == '\0'))
			b = NULL;
		if (b == NULL) {
			if (nopen == slots)
				break;
			b = open[nopen++] = new_batch(d, per);
		}
		queue_take(d, p);
		it = dest_batch_add(b, p->relpath);
		it->event_usec = p->event_usec;
		p->event_usec = 0;
	}
	for (size_t j = 0; j < nopen; j++) {
		d->jobs_out++;
		dest_sync_paths(d->dest, open[j]);
	}
}

/* Hands out whatever this destination may do now, in the safe order. */
void
live_flush(LiveDest *d)
{
	Live *live = d->live;
	uint64_t now = clock_ms();

	if (live->stopping || !live->started || live->paused || d->pass != NULL)
		return;
	if (step_away(d) || step_probe(d, now) || step_renames(d) ||
	    step_pass(d, now) || step_settle(d, now))
		return;
	step_batches(d, now);
}

/* The earliest moment after now at which d has something to do, or
 * UINT64_MAX. */
static uint64_t
next_wakeup(const LiveDest *d, uint64_t now)
{
	const Live *live = d->live;
	uint64_t next = UINT64_MAX, t;

	if (d->pass != NULL || d->away)
		return UINT64_MAX;	/* its completion (or return) flushes */
	if (live->fault != GUARD_OK)
		return d == &live->dests[0] && live->fault_due_ms > now ?
		    live->fault_due_ms : UINT64_MAX;
	if (d->full_needed && d->pass_due_ms > now)
		next = d->pass_due_ms;
	if (d->settle_needed && d->settle_due_ms > now &&
	    d->settle_due_ms < next)
		next = d->settle_due_ms;
	if ((t = queue_next_due(d)) > now && t < next)
		next = t;
	return next;
}

/*
 * Flushes every destination and arms the timer for the earliest moment
 * one has work. What is due now and still here after the flush waits for
 * a job slot, for renames or path jobs to come back, or for the pending
 * paths to drain (a settle): every completion calls this again. A timer
 * at "now" for it would spin the loop while the workers are busy.
 */
void
live_schedule(Live *live)
{
	uint64_t now = clock_ms(), next = UINT64_MAX;

	if (live->stopping || !live->started || live->paused)
		return;
	for (size_t k = 0; k < live->n_dests; k++) {
		uint64_t t;

		live_flush(&live->dests[k]);
		if ((t = next_wakeup(&live->dests[k], now)) < next)
			next = t;
	}
	if (next == UINT64_MAX)
		return;
	{
		uint64_t wait = next - now;
		struct timeval tv = { (time_t)(wait / 1000),
		    (suseconds_t)(wait % 1000) * 1000 };

		evtimer_add(live->timer, &tv);
		live->timer_due_ms = next;
	}
}
