/*
 * live — keeps every destination of one sync pair equal to its source
 * while the source changes: change events in, coalesced per path within
 * delay_ms, out as path jobs, renames and subtree or full passes.
 *
 * Owns, per destination, the table of pending paths, the queue of renames
 * and the pass in progress, and the destinations themselves (dest.h),
 * through which all work is done. Reactor thread only.
 */
#ifndef TREESYNC_LIVE_H
#define TREESYNC_LIVE_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "dest/dest.h"
#include "engine/pair.h"

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

/*
 * dests: one per pair->destinations, in that order (dest_new); on
 * success the pair owns them (live_free frees them), on failure the
 * caller still does. pair must outlive the Live.
 */
int live_new(struct event_base *base, const SyncPairConfig *pair,
    Dest **dests, const LiveOptions *opt, Live **ret);
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
/* What the pair's destinations still have out (jobs in the pool): a
 * stopped pair is freed only at 0. */
size_t live_jobs_out(const Live *live);
/* What a pair (or one destination) is doing, worst first wins. */
typedef enum LiveState {
	LIVE_IDLE,
	LIVE_SYNCING,		/* path work queued or in flight */
	LIVE_SCANNING,		/* a full pass is running (or about to) */
	LIVE_DEGRADED,		/* watches incomplete: periodic compares */
	LIVE_ERROR,		/* passes or paths keep failing */
	LIVE_PAUSED,
} LiveState;

const char *live_state_name(LiveState s);

/* Propagation latency buckets (upper bounds, µs); the last is +Inf. */
#define LIVE_LATENCY_BUCKETS 14
extern const uint64_t live_latency_bounds_usec[LIVE_LATENCY_BUCKETS];

/* Counters of one destination since the pair started. */
typedef struct LiveDestStats {
	const char *path;	/* borrowed from the pair's config */
	LiveState state;
	size_t pending;		/* paths waiting */
	size_t jobs_out;	/* jobs of this destination in the pool */
	uint64_t files_copied;
	uint64_t bytes_copied;
	uint64_t deletes;	/* destination entries removed */
	uint64_t renames;
	uint64_t errors;	/* failed path jobs and entries of passes */
	char last_error[256];	/* "" when none */
	time_t last_error_time;	/* wall clock; 0 when none */
	time_t last_full_end;	/* end of the last whole-tree pass; 0: none */
	uint64_t passes;	/* whole-tree passes finished */
	/*
	 * Event arrival to the path job that made the destination hold it
	 * (paths covered by a pass instead are not counted).
	 */
	uint64_t latency_buckets[LIVE_LATENCY_BUCKETS];	/* not cumulative */
	uint64_t latency_count;
	uint64_t latency_sum_usec;
} LiveDestStats;

typedef struct LiveStats {
	LiveState state;	/* the pair's: the worst of its destinations */
	bool paused;
	bool polling;		/* watches incomplete (degraded) */
	bool force_next_pass;	/* resync --force not yet used up */
	bool held;		/* max_delete reached: deletes held */
	const char *fault;	/* guard fault or hold, one line; NULL: none
				 * (valid until the reactor runs on) */
	size_t failing_paths;	/* paths waiting for a retry */
	int64_t next_attempt_ms;	/* ms until the next retry; -1: none */
	uint64_t events;	/* change events received */
	uint64_t overflows;	/* event losses (full compares) */
	size_t n_dests;
	LiveDestStats *dests;	/* malloc'd: live_stats_release */
} LiveStats;

/* A snapshot. -ENOMEM, or 0 and out filled (release it). */
int live_get_stats(const Live *live, LiveStats *out);
void live_stats_release(LiveStats *st);
/*
 * Pause: no new work goes out (running jobs finish); events keep being
 * recorded (past the pending limit they collapse into a full compare).
 * Resume: what is due goes out now.
 */
void live_pause(Live *live);
void live_resume(Live *live);
/*
 * A whole-tree compare-and-repair of every destination now (after the
 * running one, if any; when paused, at resume). force: the next pass may
 * delete past the pair's max_delete guard (kept for that guard, issue 5).
 */
void live_resync(Live *live, bool force);
/* Read-only figures for the systemd STATUS line: paths pending plus
 * entries a running pass has seen but not settled; whether any work is
 * queued, out or due (a pass, paths, renames). */
size_t live_queue_depth(const Live *live);
bool live_busy(const Live *live);
/* Hands out no more work (shutdown; pool_free cancels what is queued). */
void live_stop(Live *live);
void live_free(Live *live);

/*
 * For the model test (tests/model), which runs the planner with no file
 * system, threads or real time: it hands live_new model destinations
 * (dest.h's DestOps over model trees), supplies the clock (µs, monotonic; NULL: the real one, the
 * default) and fires the timer itself. live_timer_due: when the timer
 * fires (in the clock's ms), UINT64_MAX when not armed; live_tick: what
 * the timer does when it fires.
 */
void live_set_clock(uint64_t (*clock_usec)(void));
uint64_t live_timer_due(const Live *live);
void live_tick(Live *live);

#endif
