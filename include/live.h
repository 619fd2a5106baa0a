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
	/* Called (reactor thread) when a source root that failed its guard
	 * check is sound again: its watches are gone and must be placed
	 * again. May call live_stop; not live_free. NULL: nobody. */
	void (*source_back)(void *arg);
	void *source_back_arg;
} LiveOptions;

/* What status shows of a pair (see live_status). */
typedef struct LiveStatus {
	/* "error": the source root failed its guard check (fault says how);
	 * "paused": max_delete reached, deletes held; "retrying": paths
	 * are failing; else "syncing" or "idle". */
	const char *state;
	const char *fault;	/* NULL, or one line for the operator */
	const char *last_error;	/* NULL, or the last failure: "copy
				 * 'a/b' -> /dst: Permission denied" */
	int64_t last_error_age_ms;	/* -1 without last_error */
	int64_t next_attempt_ms;	/* ms until the next retry; -1 none */
	size_t failing_paths;	/* paths waiting for a retry */
} LiveStatus;

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
/*
 * Compares every destination again now (treesyncctl resync NAME). With
 * force (resync --force): releases a max_delete hold and a source-guard
 * fault, and the next full pass takes the source root as it is and may
 * delete past max_delete.
 */
void live_resync(Live *live, bool force);
/*
 * The pair's fault for status, or NULL: the source guard ("error") or a
 * max_delete hold ("paused"). Valid until the next call into live.
 */
const char *live_fault(const Live *live);
/* State, fault, last error and next retry; strings valid as above. */
void live_status(const Live *live, LiveStatus *out);
/* Jobs (and passes) of this pair in the pool. */
size_t live_jobs_out(const Live *live);
/* Hands out no more work (shutdown; pool_free cancels what is queued). */
void live_stop(Live *live);
void live_free(Live *live);

#endif
