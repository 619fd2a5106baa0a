/*
 * schedule — what a destination may hand out now, and when the timer
 * must look again (live-int.h).
 *
 * live_flush takes the steps below in order; the first that holds the
 * line ends it, so the order is the safety argument:
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

	opt.expect = live->identity;
	opt.hold_deletes = live->held;
	if (relroot[0] == '\0' && d->force_next) {
		/* The operator's word: take the source as it is, delete
		 * past max_delete, once. */
		opt.force = true;
		opt.expect.known = false;
		d->force_next = false;
	}
	if (fullsync_new(live->pool, live->pair, d->path, relroot, &opt,
	    live_pass_done, d, &d->pass) < 0)
		xoom();
	d->pass_root = xstrdup(relroot);
	d->probing = live->fault != GUARD_OK;
	/* Changes made before the pass starts are seen by its scans. */
	queue_clear(d, relroot);
	if (relroot[0] == '\0')
		synclog_event(LOG_LEVEL_INFO, live->pair->name, "full", "",
		    d->path, "comparing the whole tree");
	fullsync_start(d->pass);
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

/* 2. Renames go first, in order, when nothing else is out. */
static bool
step_renames(LiveDest *d)
{
	RenameJob *rj;

	if (d->renames == NULL)
		return false;
	if (d->jobs_out > 0)
		return true;
	rj = xcalloc(1, sizeof *rj);
	rj->dest = d;
	rj->dest_root = xstrdup(d->path);
	rj->list = queue_take_renames(d);
	rj->job.run = live_rename_run;
	rj->job.done = live_rename_done;
	d->jobs_out++;
	pool_submit(d->live->pool, &rj->job);
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

static PathJob *
new_path_job(LiveDest *d)
{
	Live *live = d->live;
	PathJob *pj = xcalloc(1, sizeof *pj);

	pj->dest = d;
	pj->source = xstrdup(live->pair->source);
	pj->dest_root = xstrdup(d->path);
	pj->opt = live->path_opt;
	pj->opt.hold_deletes = live->held;
	pj->expect = live->identity;
	pj->job.run = live_path_run;
	pj->job.done = live_path_done;
	return pj;
}

/*
 * 5. Ripe paths share jobs: the worker opens the roots once per job and
 * each parent directory once per run of its names, and the reactor
 * wakes once per job, not per file. A job takes its share of what is
 * ripe, so every worker gets some; with at most workers + 1 jobs out,
 * what falls due meanwhile gathers in the heap for the next batch. The
 * root's own metadata goes alone.
 */
static void
step_batches(LiveDest *d, uint64_t now)
{
	Live *live = d->live;
	size_t workers = (size_t)pool_threads(live->pool), per, slots;
	PathJob *open[BATCH_MAX];
	size_t nopen = 0;
	Pending *p;

	if (d->pending.count == 0 || d->jobs_out >= live->max_jobs)
		return;
	queue_ripen(d, now);
	per = (heap_count(&d->ripe) + workers - 1) / workers;
	per = per < BATCH_MAX ? per : BATCH_MAX;
	slots = live->max_jobs - d->jobs_out;
	slots = slots < BATCH_MAX ? slots : BATCH_MAX;
	while ((p = queue_next_ripe(d)) != NULL) {
		PathJob *pj = nopen > 0 ? open[nopen - 1] : NULL;
		PathItem *it;

		if (pj != NULL && (pj->n >= per || p->relpath[0] == '\0' ||
		    pj->items[0].relpath[0] == '\0'))
			pj = NULL;
		if (pj == NULL) {
			if (nopen == slots)
				break;
			pj = open[nopen++] = new_path_job(d);
		}
		queue_take(d, p);
		it = &pj->items[pj->n++];
		it->relpath = xstrdup(p->relpath);
		it->event_usec = p->event_usec;
		p->event_usec = 0;
	}
	for (size_t j = 0; j < nopen; j++) {
		d->jobs_out++;
		pool_submit(live->pool, &open[j]->job);
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
	if (step_probe(d, now) || step_renames(d) || step_pass(d, now) ||
	    step_settle(d, now))
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

	if (d->pass != NULL)
		return UINT64_MAX;	/* its completion flushes */
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
