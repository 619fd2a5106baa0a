/*
 * dest — the destination seam: everything live sync does *to* a
 * destination goes through this interface, whatever the destination is.
 * dest/local.c is a directory on this machine (the worker pool runs
 * pathsync and fullsync against it); dest/remote.c, another host over
 * OpenSSH + rsync (SPEC "Remote destinations"), is the second, and the
 * planning code above (src/live/) does not change for it.
 *
 * Shape: every request is asynchronous. The caller (the reactor thread)
 * hands over a self-contained request — paths copied, options by value —
 * and gets it back in its done callback, on the reactor thread, with the
 * results filled in. done is never called from inside the call that
 * handed the request over (always from the loop), so the caller may
 * hand out more work from done. A destination says how much it takes at
 * once (dest_capacity): a local one as many batches as the pool has
 * workers (+1, so the next is ready when one ends) of up to 64 paths; a
 * remote one two rsync runs (one in flight while the next fills) of many
 * paths. A destination may be slow or away: that is its own state
 * (dest_state), never a reason for the caller to block. A request to an
 * away destination comes back (from the loop) with DEST_ERR_AWAY, and
 * when the destination is back it tells the caller (dest_set_listener),
 * which then compares it once to catch up.
 *
 * What an implementation must do (a remote one as the local one):
 * - sync_paths: make each path of the batch equal to the source as it is
 *   now (not as the event said): copy, replace, set attributes, delete
 *   (delete = true, and not with hold_deletes), a directory's own
 *   metadata; report per path what was done (RuleAction) and the
 *   outcome (a new directory -> DEST_SUBTREE, a name with nlink > 1 ->
 *   DEST_HARDLINK, a missing parent -> DEST_NO_PARENT). Before anything,
 *   and again before each delete, check the source root against
 *   opt.expect (guard_check_source, on a worker) and touch nothing when
 *   it fails (b->fault and every item's fault). It may hand paths back
 *   unrun (skipped) when a batch has copied enough, so a large file does
 *   not hold up the small ones.
 * - rename: apply each rename in order as a rename (never delete + copy);
 *   an error per rename (the caller checks both names afterwards).
 * - compare: one compare-and-repair of the whole tree or a subtree, with
 *   the figures of SyncStats (errors, withheld deletes, the source's
 *   identity for a whole tree) and its guards (FullSyncOptions: expect,
 *   hold_deletes, force, max_delete from the pair).
 * - state: available or away (since when, why), and call dest_changed
 *   when that changes.
 * - stop: hand out nothing more (shutdown, a retired pair); requests out
 *   finish or come back cancelled; a running compare's done is not
 *   called (the caller frees it). in_flight: what it still has out in
 *   threads or processes, so the pair is freed only after.
 * Everything a worker thread (or child process) of the implementation
 * reads is its own copy, never the caller's or the reactor's.
 *
 * Ownership: the caller allocates a DestBatch / DestRenames (their
 * strings included); it belongs to the destination until its done()
 * runs, then to the caller again (dest_batch_free). A DestCompare is
 * the destination's; the caller frees it with dest_compare_free after
 * its done() (or, stopped, when in_flight is 0). Thread: reactor only,
 * all of it.
 */
#ifndef TREESYNC_DEST_H
#define TREESYNC_DEST_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "engine/copy.h"
#include "engine/fullsync.h"
#include "engine/guard.h"
#include "engine/pair.h"
#include "engine/pool.h"
#include "engine/rules.h"

typedef struct Dest Dest;

/* A whole request failed before any path was looked at: unreachable. */
#define DEST_ERR_AWAY (-EHOSTDOWN)

/* What became of one path of a batch. */
typedef enum DestOutcome {
	DEST_DONE = 0,		/* in sync (or err says why not) */
	DEST_SUBTREE,		/* a directory new or replaced in the
				 * destination: compare it (dest_compare) */
	DEST_HARDLINK,		/* a name of a hard-link group: its other
				 * names need a compare of the whole pair */
	DEST_NO_PARENT,		/* the destination parent is missing */
} DestOutcome;

typedef struct DestItem {
	/* In (the caller's, kept as they were): */
	char *relpath;		/* relative to the source root; "" = the
				 * root's own metadata (alone in a batch) */
	uint64_t event_usec;	/* the caller's; not read by the destination */
	/* Out: */
	DestOutcome outcome;
	RuleAction action;	/* what was done (RULE_NONE: nothing
				 * needed doing); with err, what failed */
	int err;		/* 0 or -errno (or COPY_SOURCE_CHANGED);
				 * -ECANCELED: stopping (copy_abandon) */
	uint64_t bytes;		/* copied (so far, when -ECANCELED) */
	uint64_t size;		/* the source file's size, for a copy */
	uint64_t count;		/* entries deleted */
	uint64_t usec;		/* time this path took */
	bool entries_changed;	/* a name was made, replaced or removed in
				 * the parent (its mtime moved) */
	bool withheld;		/* a delete was not done (hold_deletes) */
	bool skipped;		/* not run: handed back, due again now */
	GuardFault fault;	/* a delete or the batch was refused: the
				 * source root failed its check */
} DestItem;

/* What a batch may do, fixed when it is handed over. */
typedef struct DestBatchOptions {
	RuleOptions rules;
	CopyOptions copy;
	SourceIdentity expect;	/* the source root must still be this
				 * (expect.known false: no check) */
	bool hold_deletes;	/* delete nothing (max_delete hold) */
} DestBatchOptions;

typedef struct DestBatch DestBatch;
typedef void (*DestBatchDoneFn)(DestBatch *b);

struct DestBatch {
	DestBatchOptions opt;
	DestBatchDoneFn done;
	void *arg;		/* the caller's */
	bool cancelled;		/* stopped before it ran: nothing was done */
	int err;		/* the whole batch failed: DEST_ERR_AWAY (no
				 * path looked at), else 0 */
	GuardFault fault;	/* the source root failed its check before
				 * the batch: nothing was done */
	uint64_t bytes;		/* copied by the whole batch */
	size_t n;
	size_t cap;
	DestItem items[];	/* in the order given; the destination may
				 * work them in another (parents first) */
};

/* Renames, applied in order (SPEC: a rename is a rename). */
typedef struct DestRename {
	char *from;
	char *to;
	bool is_dir;
	int err;		/* out: 0 or -errno (-ENOENT: nothing there) */
} DestRename;

typedef struct DestRenames DestRenames;
typedef void (*DestRenamesDoneFn)(DestRenames *r);

struct DestRenames {
	DestRenamesDoneFn done;
	void *arg;
	bool cancelled;
	int err;		/* none was tried: DEST_ERR_AWAY, else 0 */
	size_t n;
	size_t cap;
	DestRename items[];
};

/* A compare-and-repair of the whole tree or one subtree. */
typedef struct DestCompare DestCompare;
typedef void (*DestCompareDoneFn)(DestCompare *c, void *arg);

/* The part of every DestCompare the interface reads (an
 * implementation's struct starts with it). */
struct DestCompare {
	Dest *dest;
	DestCompareDoneFn done;
	void *arg;
	int err;		/* out: DEST_ERR_AWAY (it did not run), else
				 * 0 and the stats say how it went */
};

/* Where the destination stands, for live's scheduling and for status. */
typedef enum DestAvailability {
	DEST_AVAILABLE = 0,
	DEST_AWAY,		/* unreachable (a remote host), or its root
				 * is missing, replaced or unmounted */
} DestAvailability;

typedef struct DestState {
	DestAvailability availability;
	time_t away_since;	/* wall clock; 0 when available */
	const char *reason;	/* one line for the operator, or NULL;
				 * valid until the next call into dest */
} DestState;

/* How much a destination takes at once (fixed for its life). */
typedef struct DestCapacity {
	size_t requests;	/* batches and renames out at once */
	size_t parallel;	/* of those, how many run side by side:
				 * what is ripe is shared among this many */
	size_t batch_paths;	/* paths per batch at most */
} DestCapacity;

/* The methods an implementation provides (dest/local.c, dest/remote.c). */
typedef struct DestOps {
	const char *kind;	/* "local", "remote" */
	void (*capacity)(const Dest *d, DestCapacity *out);
	void (*sync_paths)(Dest *d, DestBatch *b);
	void (*rename)(Dest *d, DestRenames *r);
	/* 0 and *ret, or -errno (nothing started). */
	int (*compare)(Dest *d, const char *relroot,
	    const FullSyncOptions *opt, DestCompareDoneFn done, void *arg,
	    DestCompare **ret);
	/* Progress while it runs, the result in and after done(). */
	const SyncStats *(*compare_stats)(const DestCompare *c);
	void (*compare_free)(DestCompare *c);
	void (*state)(const Dest *d, DestState *out);
	size_t (*in_flight)(const Dest *d);
	void (*stop)(Dest *d);
	void (*free)(Dest *d);
} DestOps;

typedef void (*DestListenFn)(Dest *d, void *arg);

/* The part of every Dest the interface itself reads. */
struct Dest {
	const DestOps *ops;
	char *name;		/* as configured: "/backup/x", "web2:/srv/x" */
	DestListenFn listen;	/* dest_set_listener */
	void *listen_arg;
};

/*
 * Makes the destination spelled name (one of pair->destinations) of
 * pair, which must outlive it. Local paths only for now; "NAME:/path"
 * with a declared remote is dest/remote.c's (-EPROTONOSUPPORT until
 * then). 0 or -errno.
 */
struct event_base;
int dest_new(struct event_base *base, Pool *pool,
    const SyncPairConfig *pair, const char *name, Dest **ret);
/* For implementations: fills the common part (name copied). */
void dest_init(Dest *d, const DestOps *ops, const char *name);
/* For implementations: availability changed; tells the listener. */
void dest_changed(Dest *d);

/* Called (reactor, from the loop) when the state changes. */
void dest_set_listener(Dest *d, DestListenFn fn, void *arg);
void dest_capacity(const Dest *d, DestCapacity *out);
void dest_sync_paths(Dest *d, DestBatch *b);
void dest_rename(Dest *d, DestRenames *r);
int dest_compare(Dest *d, const char *relroot, const FullSyncOptions *opt,
    DestCompareDoneFn done, void *arg, DestCompare **ret);
const SyncStats *dest_compare_stats(const DestCompare *c);
/* NULL is fine. */
void dest_compare_free(DestCompare *c);
void dest_state(const Dest *d, DestState *out);
size_t dest_in_flight(const Dest *d);
/* Hands out nothing more; requests out finish or come back cancelled. */
void dest_stop(Dest *d);
/* Once in_flight is 0. NULL is fine. */
void dest_free(Dest *d);

/* A batch for up to cap paths, zeroed, n = 0. */
DestBatch *dest_batch_new(size_t cap);
/* Appends a path (copied); n < cap. */
DestItem *dest_batch_add(DestBatch *b, const char *relpath);
/* Frees the batch and its relpaths. NULL is fine. */
void dest_batch_free(DestBatch *b);
DestRenames *dest_renames_new(size_t cap);
/* Appends a rename (both names copied); n < cap. */
DestRename *dest_renames_add(DestRenames *r, const char *from,
    const char *to, bool is_dir);
void dest_renames_free(DestRenames *r);

#endif
