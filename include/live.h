/*
 * live — keeps every destination of one sync pair equal to its source
 * while the source changes: change events in, coalesced per path within
 * delay_ms, out as path jobs, renames and subtree or full passes.
 *
 * Owns, per destination, the table of pending paths, the queue of renames
 * and the pass in progress. Reactor thread only; the work itself runs on
 * the pool (pathsync, fullsync).
 */
#ifndef TREESYNC_LIVE_H
#define TREESYNC_LIVE_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "fullsync.h"
#include "pool.h"

struct event_base;

typedef struct Live Live;

/* One change as the watcher reports it (inotify mask and cookie). */
typedef struct LiveEvent {
	uint32_t mask;
	uint32_t cookie;
	const char *relpath;	/* relative to the source root */
} LiveEvent;

typedef struct LiveOptions {
	int delay_ms;
	bool preserve_owner;
} LiveOptions;

int live_new(struct event_base *base, Pool *pool, const SyncPairConfig *pair,
    const LiveOptions *opt, Live **ret);
/* Starts the first full pass of every destination (watches in place). */
void live_start(Live *live);
/* A batch of events for this pair, in the order inotify gave them. */
void live_on_events(Live *live, const LiveEvent *events, size_t n);
/* Events were lost: compare every destination again. */
void live_on_overflow(Live *live);
/* Watches are incomplete: compare every destination every interval_ms. */
void live_set_polling(Live *live, int interval_ms);
/* Jobs (and passes) of this pair in the pool. */
size_t live_jobs_out(const Live *live);
/* Read-only figures for the systemd STATUS line: paths pending plus
 * entries a running pass has seen but not settled; whether any work is
 * queued, out or due (a pass, paths, renames). */
size_t live_queue_depth(const Live *live);
bool live_busy(const Live *live);
/* Hands out no more work (shutdown; pool_free cancels what is queued). */
void live_stop(Live *live);
void live_free(Live *live);

#endif
