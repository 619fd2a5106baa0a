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
 * Compares every destination again now (treesyncctl resync NAME; after
 * the running compare, if any; when paused, at resume). With force
 * (resync --force): releases a max_delete hold and a source-guard fault,
 * and the next full pass takes the source root as it is and may delete
 * past max_delete.
 */
void live_resync(Live *live, bool force);
/*
 * The options a whole-tree pass of the pair would run with now: the
 * pair's own, the source identity its guard expects and its max_delete
 * hold, for a dry run beside it (treesyncctl diff) that must judge the
 * guards as the pair's next pass would.
 */
void live_pass_options(const Live *live, FullSyncOptions *out);
/* What the pair's destinations still have out (jobs in the pool): a
 * stopped pair is freed only at 0. */
size_t live_jobs_out(const Live *live);
/*
 * What a destination, and a pair, is doing: the one state that status,
 * status --json, metrics (treesync_state) and systemd's STATUS= all
 * show (live_snapshot). A pair is in the worst of its destinations'
 * states; the later in this list, the worse.
 */
typedef enum LiveState {
	LIVE_IDLE,		/* in sync, nothing queued */
	LIVE_SYNCING,		/* paths, renames or a subtree compare queued
				 * or out; the compare after a directory
				 * rename, due once the source is quiet */
	LIVE_SCANNING,		/* a whole-tree compare runs or is due
				 * (start-up, overflow, resync) */
	LIVE_DEGRADED,		/* watches incomplete: periodic compares */
	LIVE_ERROR,		/* the source root failed its guard check, a
				 * destination is away, its last compare
				 * failed (backing off), or a path failed
				 * LIVE_STUCK_ATTEMPTS times in a row */
	LIVE_HELD,		/* max_delete reached: deletes held, copies
				 * go on (resync --force releases) */
	LIVE_PAUSED,		/* treesyncctl pause */
} LiveState;

#define LIVE_N_STATES (LIVE_PAUSED + 1)
#define LIVE_STUCK_ATTEMPTS 3

/* "idle", "syncing", "scanning", "degraded", "error", "held", "paused" */
const char *live_state_name(LiveState s);

/* Propagation latency buckets (upper bounds, µs); the last is +Inf. */
#define LIVE_LATENCY_BUCKETS 14
extern const uint64_t live_latency_bounds_usec[LIVE_LATENCY_BUCKETS];

/* One destination in a snapshot: its state, figures and counters. */
typedef struct LiveDestStats {
	const char *path;	/* its name (borrowed: valid until the
				 * reactor runs on) */
	LiveState state;
	size_t pending;		/* paths waiting, plus entries a running
				 * compare has seen but not settled */
	size_t failing;		/* paths waiting for a retry */
	int64_t next_attempt_ms;	/* until its next retry; -1: none */
	size_t jobs_out;	/* what it has out (jobs in the pool) */
	bool away;		/* unreachable (a remote host) */
	time_t away_since;	/* wall clock; 0 when available */
	char away_reason[160];	/* "" when none */
	/* Counters since the pair started: */
	uint64_t files_copied;
	uint64_t bytes_copied;
	uint64_t deletes;	/* destination entries removed */
	uint64_t renames;
	uint64_t errors;	/* failed path jobs and entries of passes */
	char last_error[512];	/* "copy 'a/b' -> /dst: reason"; "" none */
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

/* A pair in a snapshot. */
typedef struct LiveStats {
	LiveState state;	/* the worst of its destinations' */
	bool paused;		/* by the operator */
	bool held;		/* max_delete reached: deletes held */
	bool polling;		/* watches incomplete (degraded) */
	bool force_next_pass;	/* resync --force not yet used up */
	const char *fault;	/* the guard's fault or the hold, one line
				 * for the operator; NULL: none (valid until
				 * the reactor runs on) */
	size_t queue;		/* the destinations' pending, summed */
	size_t failing_paths;	/* paths waiting for a retry */
	int64_t next_attempt_ms;	/* until the next retry (a path, a
					 * compare, the fault's probe);
					 * -1: none */
	const char *last_error;	/* the newest of its destinations', or
				 * NULL (points into dests) */
	time_t last_error_time;	/* 0 when none */
	uint64_t events;	/* change events received */
	uint64_t overflows;	/* event losses (full compares) */
	size_t n_dests;
	LiveDestStats *dests;	/* malloc'd: live_snapshot_release */
} LiveStats;

/*
 * The pair as it is now: the one derivation of its state (and each
 * destination's) and figures. O(destinations): counters kept as work
 * moves, never a walk of the pending paths. -ENOMEM, or 0 and out
 * filled (release it).
 */
int live_snapshot(const Live *live, LiveStats *out);
void live_snapshot_release(LiveStats *st);
/*
 * Pause: no new work goes out (running jobs finish); events keep being
 * recorded (past the pending limit they collapse into a full compare).
 * Resume: what is due goes out now.
 */
void live_pause(Live *live);
void live_resume(Live *live);
/* Hands out no more work (shutdown; pool_free cancels what is queued). */
void live_stop(Live *live);
void live_free(Live *live);

/*
 * For the model test (tests/model), which runs the planner with no file
 * system, threads or real time: it hands live_new model destinations
 * (dest.h's DestOps over model trees), supplies the clock (µs,
 * monotonic; NULL: the real one, the default) and fires the timer itself. live_timer_due: when the timer
 * fires (in the clock's ms), UINT64_MAX when not armed; live_tick: what
 * the timer does when it fires; live_audit: the snapshot's counters
 * checked against a walk of the pending paths.
 */
void live_set_clock(uint64_t (*clock_usec)(void));
/* Recounts by walking what the snapshot keeps as counters; false (and
 * why) when they differ. */
bool live_audit(const Live *live, char *why, size_t size);
uint64_t live_timer_due(const Live *live);
void live_tick(Live *live);

#endif
