/*
 * dest — the destination seam: everything live sync and the full pass do
 * *to* a destination goes through this interface, whatever the
 * destination is. Today's implementation is dest/local.c (a directory on
 * this machine: the worker pool runs pathsync and fullsync against it);
 * dest/remote.c (another host over OpenSSH + rsync, SPEC "Remote
 * destinations") is the second, and the planning code above (src/live/,
 * main.c's --once) does not change for it.
 *
 * Shape: every operation is asynchronous. The caller (the reactor
 * thread) hands over a self-contained request — paths copied, options
 * by value — and gets it back in its done callback, on the reactor
 * thread, with the results filled in. A destination says how many
 * requests it takes at once (dest_capacity): a local one as many as the
 * pool has workers (+1, so the next batch is ready when one ends), a
 * remote one two (one run in flight while the next fills). A
 * destination may be slow or away: that is its own state
 * (dest_availability), never a reason for the caller to block, and a
 * request to an away destination completes at once with
 * DEST_ERR_AWAY.
 *
 * Ownership: the caller allocates a DestBatch / DestRenames (their
 * strings included) and owns them again from done() on; a DestCompare
 * belongs to the destination until its done() has run, then the caller
 * frees it with dest_compare_free. Thread: reactor only, all of it.
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

/* A whole request failed before any path was looked at. */
#define DEST_ERR_AWAY (-EHOSTDOWN)	/* remote host unreachable */

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
				 * root's own metadata */
	uint64_t event_usec;	/* not read by the destination */
	/* Out: */
	DestOutcome outcome;
	RuleAction action;	/* what was done (RULE_NONE: nothing
				 * needed doing) */
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
	SourceIdentity expect;	/* the source root must still be this */
	bool hold_deletes;	/* delete nothing (max_delete hold) */
	uint64_t byte_budget;	/* past this much copied, the rest of the
				 * paths come back skipped (0: no limit) */
} DestBatchOptions;

typedef struct DestBatch DestBatch;
typedef void (*DestBatchDoneFn)(DestBatch *b);

struct DestBatch {
	DestBatchOptions opt;
	DestBatchDoneFn done;
	void *arg;		/* the caller's */
	bool cancelled;		/* the destination stopped before running
				 * it: no path was looked at */
	int err;		/* the whole batch failed (DEST_ERR_AWAY,
				 * an unopenable root): 0 otherwise */
	GuardFault fault;	/* the source root failed its check before
				 * the batch: nothing was done */
	size_t n;
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
	int err;		/* all of them failed (DEST_ERR_AWAY, ...) */
	size_t n;
	DestRename items[];
};

/* A compare-and-repair of the whole tree or one subtree. */
typedef struct DestCompare DestCompare;
typedef void (*DestCompareDoneFn)(DestCompare *c, void *arg);

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

/* The methods an implementation provides (dest/local.c, dest/remote.c). */
typedef struct DestOps {
	const char *kind;	/* "local", "remote" */
	size_t (*capacity)(const Dest *d);
	void (*sync_paths)(Dest *d, DestBatch *b);
	void (*rename)(Dest *d, DestRenames *r);
	int (*compare)(Dest *d, const char *relroot,
	    const FullSyncOptions *opt, DestCompareDoneFn done, void *arg,
	    DestCompare **ret);
	const SyncStats *(*compare_stats)(const DestCompare *c);
	void (*compare_free)(DestCompare *c);
	void (*state)(const Dest *d, DestState *out);
	size_t (*in_flight)(const Dest *d);
	void (*stop)(Dest *d);
	void (*free)(Dest *d);
} DestOps;

/* The part of every Dest the interface itself reads. */
struct Dest {
	const DestOps *ops;
	char *name;		/* as configured: "/backup/x", "web2:/srv/x" */
};

/*
 * Makes the destination spelled name (one of pair->destinations) of
 * pair, which must outlive it. Local paths only for now; "NAME:/path"
 * with a declared remote is dest/remote.c's. 0 or -errno.
 */
struct event_base;
int dest_new(struct event_base *base, Pool *pool,
    const SyncPairConfig *pair, const char *name, Dest **ret);

/* Convenience wrappers over the ops (one line each in dest.c). */
size_t dest_capacity(const Dest *d);
void dest_sync_paths(Dest *d, DestBatch *b);
void dest_rename(Dest *d, DestRenames *r);
int dest_compare(Dest *d, const char *relroot, const FullSyncOptions *opt,
    DestCompareDoneFn done, void *arg, DestCompare **ret);
const SyncStats *dest_compare_stats(const DestCompare *c);
void dest_compare_free(Dest *d, DestCompare *c);
void dest_state(const Dest *d, DestState *out);
size_t dest_in_flight(const Dest *d);
/* Hands out nothing more; requests out finish or come back cancelled. */
void dest_stop(Dest *d);
void dest_free(Dest *d);

/* A batch of n items, zeroed, relpaths NULL: the caller fills them. */
DestBatch *dest_batch_new(size_t n);
/* Frees the batch and its relpaths. */
void dest_batch_free(DestBatch *b);
DestRenames *dest_renames_new(size_t n);
void dest_renames_free(DestRenames *r);

#endif
