/*
 * live — see include/live/live.h; the files of src/live/ are listed in
 * live-int.h.
 *
 * DESIGN
 * Events do not say what to copy; they say which paths to look at
 * (events.c). Each destination keeps a table of pending paths, each due
 * at some time (queue.c); when paths fall due they go out in batches
 * that compare the source as it is now with the destination and repair
 * the difference, so a stale or repeated event can cost work, never
 * correctness. Renames go first, in order; a directory that is new,
 * moved in or renamed gets a subtree pass, which finds what an event
 * could not name and keeps the inodes of a renamed tree; while a pass
 * runs for a destination, its path jobs wait (schedule.c). Overflow, a
 * changed hard-link group or too many pending paths collapse into one
 * full pass. What a finished job means is completion.c's; the guards'
 * fault and max_delete hold are hold.c's; what status shows, status.c's.
 *
 * Cost (measured on a burst of 10,000 new files, docs/performance-live.md):
 * the reactor never walks the table. A pending path that is not in
 * flight sits in one of two heaps, `waiting` (by due time: the timer's
 * next wake-up is its top) or `ripe` (by depth, then arrival: a refill
 * pops from the top), so an event or a completion costs O(log n). Ripe
 * paths share a batch (up to cap.batch_paths, sized so every worker gets
 * a share): a local worker opens the roots once for all of them and each
 * parent directory once per run of its names, and the reactor wakes once
 * per batch. A destination has at most cap.requests batches out (a local
 * one workers + 1). A local batch that copied 4 MiB hands its remaining
 * paths back (due at once), so a large file does not hold up the small
 * ones behind it. A directory's
 * own path waits (parked) while paths inside it are ripe or in flight:
 * its mtime would move again with each of their copies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/time.h>

#include <event2/event.h>

#include "live-int.h"
#include "util/clock.h"
#include "util/synclog.h"

void
live_set_clock(uint64_t (*usec)(void))
{
	clock_set_source(usec);
}

uint64_t
live_timer_due(const Live *live)
{
	return live->timer_due_ms;
}

void
live_tick(Live *live)
{
	live->timer_due_ms = UINT64_MAX;
	live_schedule(live);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	live_tick(arg);
}

static void
on_poll(evutil_socket_t fd, short what, void *arg)
{
	Live *live = arg;

	(void)fd;
	(void)what;
	for (size_t k = 0; k < live->n_dests; k++)
		live->dests[k].full_needed = true;
	live_schedule(live);
}

void
live_set_polling(Live *live, int interval_ms)
{
	struct timeval tv = { interval_ms / 1000, (interval_ms % 1000) * 1000 };

	live->polling = true;
	if (live->poll_timer == NULL)
		live->poll_timer = event_new(live->base, -1, EV_PERSIST,
		    on_poll, live);
	if (live->poll_timer != NULL)
		event_add(live->poll_timer, &tv);
}

int
live_new(struct event_base *base, const SyncPairConfig *pair, Dest **dests,
    const LiveOptions *opt, Live **ret)
{
	Live *live = calloc(1, sizeof *live);

	if (live == NULL)
		return -ENOMEM;
	live->base = base;
	live->pair = pair;
	live->opt = *opt;
	live->batch_opt.copy.preserve_owner = opt->preserve_owner;
	live->batch_opt.copy.umask_zero = true;
	live->batch_opt.rules.preserve_owner = opt->preserve_owner;
	live->batch_opt.rules.delete = pair->delete;
	live->batch_opt.rules.compare = pair->compare;
	live->pass_opt.preserve_owner = opt->preserve_owner;
	live->pass_opt.will_retry = true;
	live->pass_opt.umask_zero = true;
	live->n_dests = pair->n_destinations;
	live->dests = calloc(live->n_dests ? live->n_dests : 1,
	    sizeof *live->dests);
	live->timer = evtimer_new(base, on_timer, live);
	live->timer_due_ms = UINT64_MAX;
	if (live->dests == NULL || live->timer == NULL) {
		free(live->dests);
		if (live->timer != NULL)
			event_free(live->timer);
		free(live);
		return -ENOMEM;
	}
	for (size_t k = 0; k < live->n_dests; k++) {
		LiveDest *d = &live->dests[k];
		DestState ds;

		d->live = live;
		d->dest = dests[k];
		d->path = d->dest->name;
		d->st.path = d->path;
		dest_capacity(d->dest, &d->cap);
		if (d->cap.parallel == 0)
			d->cap.parallel = 1;
		dest_state(d->dest, &ds);
		d->away = ds.availability != DEST_AVAILABLE;
		dest_set_listener(d->dest, live_dest_changed, d);
		queue_init(d);
	}
	*ret = live;
	return 0;
}

void
live_start(Live *live)
{
	live->started = true;
	for (size_t k = 0; k < live->n_dests; k++)
		live->dests[k].full_needed = true;
	live_schedule(live);
}

void
live_resync(Live *live, bool force)
{
	synclog_event(LOG_LEVEL_INFO, live->pair->name, "resync", "", "-",
	    "comparing every destination%s", force ? " (--force: the source "
	    "is taken as it is, max_delete does not apply to this pass)" : "");
	if (force)
		live_release(live);
	for (size_t k = 0; k < live->n_dests; k++) {
		LiveDest *d = &live->dests[k];

		d->full_needed = true;
		d->pass_due_ms = 0;
		d->force_next = force;
	}
	if (live->fault != GUARD_OK)
		live->fault_due_ms = 0;
	live_schedule(live);
}

void
live_pause(Live *live)
{
	live->paused = true;
	if (live->timer != NULL)
		evtimer_del(live->timer);
	live->timer_due_ms = UINT64_MAX;
}

void
live_resume(Live *live)
{
	if (!live->paused)
		return;
	live->paused = false;
	live_schedule(live);
}

void
live_pass_options(const Live *live, FullSyncOptions *out)
{
	*out = live->pass_opt;
	out->expect = live->identity;
	out->hold_deletes = live->held;
}

size_t
live_jobs_out(const Live *live)
{
	size_t n = 0;

	for (size_t k = 0; k < live->n_dests; k++)
		n += dest_in_flight(live->dests[k].dest);
	return n;
}

void
live_stop(Live *live)
{
	live->stopping = true;
	for (size_t k = 0; k < live->n_dests; k++)
		dest_stop(live->dests[k].dest);
	if (live->timer != NULL)
		evtimer_del(live->timer);
	live->timer_due_ms = UINT64_MAX;
	if (live->poll_timer != NULL)
		event_del(live->poll_timer);
}

void
live_free(Live *live)
{
	if (live == NULL)
		return;
	for (size_t k = 0; k < live->n_dests && live->dests != NULL; k++) {
		LiveDest *d = &live->dests[k];

		queue_free(d);
		dest_compare_free(d->pass);
		free(d->pass_root);
		dest_free(d->dest);
	}
	free(live->dests);
	if (live->timer != NULL)
		event_free(live->timer);
	if (live->poll_timer != NULL)
		event_free(live->poll_timer);
	free(live);
}
