/*
 * live-int — what the files of src/live/ share (see include/live/live.h
 * for the module, docs/design.md for the map). Reactor thread only, all
 * of it.
 *
 *   live.c        the pair: new, start, stop, free, pause, resync, timers
 *   events.c      what an inotify event means for the pending paths
 *   queue.c       the pending store: table, due/ripe heaps, directory
 *                 parking, renames and subtree passes waiting
 *   schedule.c    what a destination may hand out now, in which order;
 *                 the timer
 *   completion.c  what a finished batch, rename or pass means; its log
 *
 * Everything done to a destination goes through dest/dest.h (batches of
 * paths, renames, compares); nothing here runs on a worker.
 *   hold.c        the source-guard fault and the max_delete hold
 *   status.c      counters and the one state snapshot
 */
#ifndef TREESYNC_LIVE_INT_H
#define TREESYNC_LIVE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dest/dest.h"
#include "live/live.h"
#include "util/heap.h"
#include "util/map.h"

#define MAX_PENDING 100000	/* past this, one full pass instead */
#define WRITER_QUIET_MS 1000	/* an open file is copied after a second
				 * without writes, even if never closed */
#define SETTLE_MS 1000		/* quiet time after a directory rename
				 * before the compare that follows it */
#define BACKOFF_MIN_MS 100	/* a failed path: 0.1 s doubling to 30 s */
#define BACKOFF_MAX_MS 30000
#define PASS_BACKOFF_FACTOR 10	/* a failed pass: ten times that */
#define FAULT_CHECK_MIN_MS 500	/* the source root is checked again */
#define FAULT_CHECK_MAX_MS 16000
#define NO_PARENT_TRIES 20	/* then the whole tree is compared */
#define STUCK_ATTEMPTS LIVE_STUCK_ATTEMPTS	/* failing this often: error */

typedef struct LiveDest LiveDest;

/* A path of one destination that needs a look. */
typedef struct Pending {
	MapNode node;		/* in LiveDest.pending, keyed by relpath */
	HeapNode hnode;		/* in `heap` */
	Heap *heap;		/* waiting or ripe; NULL in flight, parked */
	HeapNode rnode;		/* in LiveDest.retry while in_retry */
	bool in_retry;
	char *relpath;
	unsigned depth;		/* '/' count: parents go out first */
	uint64_t due_ms;
	uint64_t seq;		/* order of arrival in its heap */
	bool in_flight;
	bool again;		/* changed while its job was out */
	bool active;		/* ripe or in flight: counted in its parent's
				 * DirCount */
	bool parked;		/* due, but waits for the active paths
				 * beneath it (see DirCount) */
	unsigned attempts;	/* failures in a row */
	uint64_t event_usec;	/* arrival of its oldest unserved event; 0 none */
} Pending;

/*
 * Paths directly inside one directory that are ripe or in flight. While
 * there are any, the directory's own pending path is parked instead of
 * run: its job would restore an mtime that their copies move again, so
 * a burst of new files in one directory would cost a job for the
 * directory per file. It runs once they are done (the last one brings
 * it back), after them, which is also when its mtime is final. Paths
 * not due yet (a file still being written) do not hold it up.
 */
typedef struct DirCount {
	MapNode node;		/* in LiveDest.dirs, keyed by path */
	size_t n;
	Pending *parked;	/* the directory's own path, parked */
	char path[];
} DirCount;

typedef struct Rename {
	struct Rename *next;
	char *from;
	char *to;
	bool is_dir;
	int err;
} Rename;

/* One destination of the pair: its pending work and its pass. */
struct LiveDest {
	Live *live;
	Dest *dest;		/* owned */
	const char *path;	/* its name, for the log (the Dest's) */
	DestCapacity cap;
	/*
	 * Every pending path that is not in flight (or parked) is in
	 * exactly one of the two heaps: `waiting` (not due yet, earliest
	 * due_ms on top) or `ripe` (due, shallowest first, then first
	 * come). A refill and the timer look at the tops only.
	 */
	Map pending;		/* Pending by relpath */
	Heap waiting;
	Heap ripe;
	/* For status, kept as paths move (never a walk of the table):
	 * paths that failed (attempts > 0), those that failed 3 times or
	 * more, and the failed ones not in flight by due time. */
	size_t failing;
	size_t stuck;
	Heap retry;
	uint64_t seq;
	Map dirs;		/* DirCount by path */
	Rename *renames;	/* waiting, in order */
	Rename **renames_tail;
	size_t n_renames;
	char **subtrees;	/* subtree passes waiting */
	size_t n_subtrees;
	size_t cap_subtrees;
	DestCompare *pass;
	char *pass_root;	/* the running pass's subtree ("" = all) */
	bool full_needed;
	bool settle_needed;	/* a directory was renamed: compare once
				 * the source is quiet (see events.c) */
	uint64_t settle_due_ms;
	unsigned pass_failures;
	uint64_t pass_due_ms;	/* backoff of the next full pass */
	bool force_next;	/* its next full pass ignores max_delete */
	bool probing;		/* the running pass is a fault's probe */
	size_t jobs_out;	/* batches and renames out */
	bool away;		/* the destination says it is away */
	LiveDestStats st;	/* counters; the snapshot adds the rest */
};

struct Live {
	struct event_base *base;
	const SyncPairConfig *pair;
	LiveOptions opt;
	DestBatchOptions batch_opt;
	FullSyncOptions pass_opt;
	LiveDest *dests;
	size_t n_dests;
	struct event *timer;
	uint64_t timer_due_ms;	/* when it fires; UINT64_MAX: not armed */
	struct event *poll_timer;
	bool started;
	bool stopping;
	bool paused;
	bool polling;
	uint64_t events, overflows;
	/* Guards (hold.c). identity: the source root as last found sound. */
	SourceIdentity identity;
	GuardFault fault;
	unsigned fault_checks;
	uint64_t fault_due_ms;	/* the next probe */
	bool held;		/* max_delete reached: no deletes */
	char fault_text[1024];	/* for status: "" when no fault/hold */
};

/* queue.c */
Pending *queue_find(LiveDest *d, const char *relpath);
Pending *queue_mark(LiveDest *d, const char *relpath, uint64_t due_ms,
    bool exact);
void queue_mark_parent(LiveDest *d, const char *relpath, uint64_t due_ms);
void queue_place(LiveDest *d, Pending *p);
void queue_remove(LiveDest *d, Pending *p);
void queue_ripen(LiveDest *d, uint64_t now);
Pending *queue_next_ripe(LiveDest *d);
void queue_take(LiveDest *d, Pending *p);
void queue_set_attempts(LiveDest *d, Pending *p, unsigned attempts);
uint64_t queue_next_retry(const LiveDest *d);
void queue_clear(LiveDest *d, const char *under);
uint64_t queue_next_due(const LiveDest *d);
void queue_add_rename(LiveDest *d, const char *from, const char *to,
    bool is_dir);
Rename *queue_take_renames(LiveDest *d);
void queue_renames_back(LiveDest *d, const DestRenames *r);
void queue_free_renames(Rename *r);
void queue_subtree(LiveDest *d, const char *relpath);
void queue_drop_subtrees(LiveDest *d);
void queue_init(LiveDest *d);
void queue_free(LiveDest *d);

/* schedule.c */
uint64_t live_backoff_ms(unsigned attempts);
void live_schedule(Live *live);
void live_flush(LiveDest *d);

/* completion.c */
void live_batch_done(DestBatch *b);
void live_renames_done(DestRenames *r);
void live_pass_done(DestCompare *c, void *arg);
void live_dest_changed(Dest *dest, void *arg);

/* hold.c */
void live_enter_fault(Live *live, GuardFault f);
void live_leave_fault(Live *live);
void live_enter_hold(Live *live, const LiveDest *d, const SyncStats *st);
void live_release(Live *live);

/* status.c */
void live_stats_path_done(LiveDest *d, Pending *p, const DestItem *it);
const char *live_action_word(RuleAction a);
void live_stats_pass_done(LiveDest *d, const SyncStats *st, bool whole);
void live_note_error(LiveDest *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
