/*
 * fullsync-int — what the files of the fullsync module share (private;
 * nothing outside src/engine/fullsync*.c includes it).
 *
 *   fullsync.c         the pass: state, scheduling (pump), the root and
 *                      scan completions, logging and figures (reactor)
 *   fullsync-dir.c     directory nodes, batches, a directory's plan
 *                      turned into batches, post-order finalize (reactor)
 *   fullsync-links.c   hard-link groups (util/map), who leads, who waits
 *                      (reactor)
 *   fullsync-worker.c  the job bodies: root, scan, batch (worker threads)
 *
 * Ownership: everything here belongs to the reactor thread but for what
 * a job carries for its worker: the job's own struct (its ops, its copy
 * of the directory's path and options) and a reference to the pass's
 * PassRoots. A worker reads nothing else, and writes only its own job
 * and PassRoots.deletes_left.
 */
#ifndef TREESYNC_FULLSYNC_INT_H
#define TREESYNC_FULLSYNC_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "engine/copy.h"
#include "engine/fullsync.h"
#include "engine/guard.h"
#include "engine/planner.h"
#include "engine/pool.h"
#include "engine/rules.h"
#include "engine/scan.h"
#include "util/map.h"

#define BATCH_MAX_OPS 64
#define BATCH_MAX_BYTES (4u << 20)
#define COPY_ATTEMPTS 5

typedef struct DirNode DirNode;
typedef struct Batch Batch;
typedef struct HardlinkGroup HardlinkGroup;

/*
 * What every worker-side job of a pass reads beyond its own struct: the
 * two roots (opened by the root job), the copy options and the
 * max_delete budget. Reference-counted: the pass holds one reference
 * and every scan or batch job out one more, so the roots stay open for
 * as long as any job may use them, whoever lets go last. Immutable once
 * made, but for deletes_left, which delete ops count down as they run
 * (only the worker knows a directory's size): the one piece of pass
 * state workers write.
 */
typedef struct PassRoots {
	atomic_uint refs;
	int src;
	int dst;
	CopyOptions copy;
	RuleOptions rules;	/* for a hash's verdict (rules_after_hash) */
	bool limit_deletes;
	atomic_uint_least64_t deletes_left;
} PassRoots;

/*
 * One step for one name, as the rules put it (rules.h): RULE_DELETE,
 * RULE_MKDIR, RULE_COPY, RULE_HASH (hash both sides, then what
 * rules_after_hash says), RULE_SYMLINK, RULE_HARDLINK (link to the
 * group's leader) or RULE_ATTRS.
 */
typedef struct Op {
	RuleAction type;
	char *name;		/* entry name inside the batch's directory */
	char *target;		/* symlink target, or the hard-link leader's
				 * destination path */
	FileMeta meta;		/* the source entry's metadata */
	FileMeta dst_meta;	/* RULE_HASH: the destination entry's */
	HardlinkGroup *group;	/* copies of a hard-link leader (reactor) */
	int attempts;
	/* Results, written by the worker. */
	RuleAction done;	/* what was done: type, or for RULE_HASH
				 * RULE_NONE, RULE_ATTRS or RULE_COPY */
	int err;		/* 0, -errno or COPY_SOURCE_CHANGED */
	bool withheld;		/* RULE_DELETE past the pass's budget */
	uint64_t bytes;
	uint64_t count;
	uint64_t dst_ino;
	uint64_t usec;
} Op;

struct DirNode {
	DirNode *parent;
	DirNode *next;		/* scan stack or held list */
	DirNode *all_prev;	/* every live node of the pass, so that an */
	DirNode *all_next;	/* interrupted pass can free them all */
	char *relpath;		/* "" for the root */
	FileMeta src_meta;
	FileMeta dst_meta;
	bool have_dst_meta;
	bool fresh;		/* created by this pass: nothing to scan */
	bool attrs;		/* its own attributes differ (rules) */
	bool dirty;		/* entries were changed inside it */
	bool skip_finalize;	/* the source could not be read */
	size_t pending;
	size_t phase1_left;
	Batch *held_batches;	/* phase 2, released after phase 1 */
	DirNode *held_children;
};

/* A job of ops in one directory. The worker reads roots, dir_relpath and
 * ops and writes the ops' results and open_err; the rest is the
 * reactor's. */
struct Batch {
	Job job;
	PassRoots *roots;	/* a reference, taken at submit */
	char *dir_relpath;	/* the directory the ops' names live in */
	bool needs_source;
	Op *ops;
	size_t n;
	size_t cap;
	int open_err;		/* a directory could not be opened */
	/* The reactor's: */
	FullSync *fs;
	DirNode *dir;		/* whose pending count this batch holds */
	bool finalize;		/* sets dir's own metadata */
	int phase;
	Batch *next;
	uint64_t bytes;		/* source bytes, to cap a batch's size */
};

/* Reads one directory on both sides. */
typedef struct ScanJob {
	Job job;
	/* In, for the worker: */
	PassRoots *roots;	/* a reference, taken at submit */
	char *relpath;
	bool fresh;		/* new in the destination: source side only */
	/* Unprivileged: the destination directory's mode, to be made
	 * writable for the pass (finalize restores it); -1: leave it. */
	int fix_mode;
	/* Out: */
	ScanList src;
	ScanList dst;
	int src_err;
	int dst_err;
	bool dst_mode_fixed;
	/* The reactor's: */
	FullSync *fs;
	DirNode *dir;
} ScanJob;

/* Opens the roots, checks the guards, makes a subtree's top a directory. */
typedef struct RootJob {
	Job job;
	/* In, copies of what the worker reads: */
	char *source;		/* the pair's source root */
	char *dest;
	char *relroot;
	FullSyncOptions opt;
	bool delete;		/* the pair's */
	MaxDelete max_delete;
	/* Out: */
	int src_fd;
	int dst_fd;
	struct stat src_st;	/* of the pass's top directory */
	struct stat dst_st;
	int src_err;
	int dst_err;
	bool created;
	bool replaced;		/* a subtree's top was another kind */
	bool not_dir;		/* a subtree's source is no longer a dir */
	GuardFault fault;
	SourceIdentity seen;
	uint64_t budget;	/* deletes this pass may do */
	/* The reactor's: */
	FullSync *fs;
} RootJob;

typedef struct Waiter {
	struct Waiter *next;
	DirNode *dir;
	char *name;
	FileMeta meta;
	bool have_dst;
	uint64_t dst_ino;
} Waiter;

typedef enum { HL_NONE, HL_PENDING, HL_DONE } HardlinkState;

struct HardlinkGroup {
	MapNode node;		/* in FullSync.links, keyed by dev + ino */
	uint64_t dev;
	uint64_t ino;
	HardlinkState state;
	char *leader;		/* destination relpath of the settled name */
	uint64_t dst_ino;
	Waiter *waiters;
};

struct FullSync {
	Pool *pool;
	const SyncPairConfig *pair;
	char *dest;
	char *relroot;		/* "" for the whole tree, else a subtree */
	FullSyncOptions opt;
	PlanOptions plan_opt;
	FullSyncDoneFn done;
	void *done_arg;

	PassRoots *roots;	/* NULL until the root job opened them */
	DirNode *root;
	bool root_done;
	bool finished;
	bool stopping;		/* fullsync_stop: hand out no more work */

	DirNode *scan_stack;
	DirNode *all_dirs;
	Batch *ready_head;
	Batch *ready_tail;
	size_t jobs_out;
	size_t max_jobs;
	size_t dirs_unscanned;	/* directories known but not yet read */

	Map links;		/* HardlinkGroup by source dev + ino */

	SyncStats stats;
};

/* Collects a directory's ops into batches of bounded size. */
typedef struct Builder {
	FullSync *fs;
	DirNode *dir;
	int phase;
	Batch *cur;
	Batch *out;		/* finished batches, in order */
	Batch **out_tail;
	size_t count;
} Builder;

/* fullsync.c */
void fullsync_pump(FullSync *fs);
void fullsync_submit(FullSync *fs, Job *job, JobFn run, JobFn done);
void fullsync_settle(FullSync *fs, const FileMeta *meta);
void fullsync_log_failure(FullSync *fs, const char *action,
    const char *relpath, int err);
void fullsync_batch_done(Job *job);
void fullsync_roots_release(PassRoots *r);

/* fullsync-dir.c */
DirNode *fullsync_dir_new(FullSync *fs, DirNode *parent, char *relpath);
void fullsync_dir_free(FullSync *fs, DirNode *d);
/* One thing dir waited for is over; at zero it is finalized. */
void fullsync_dir_release(FullSync *fs, DirNode *dir);
/* Phase 1 is over: phase 2 and the subdirectories may go. */
void fullsync_dir_release_held(FullSync *fs, DirNode *dir);
/* The directory's finalize batch is done (or was not needed). */
void fullsync_dir_finished(FullSync *fs, DirNode *dir);
void fullsync_dir_plan(FullSync *fs, DirNode *dir, const Plan *plan);
Batch *fullsync_batch_new(FullSync *fs, DirNode *dir, const char *dir_relpath,
    int phase);
Op *fullsync_batch_add(Batch *b, RuleAction type, const char *name,
    const FileMeta *meta);
void fullsync_batch_free(Batch *b);
void fullsync_ready_push(FullSync *fs, Batch *b);
void fullsync_builder_init(Builder *bl, FullSync *fs, DirNode *dir,
    int phase);
Op *fullsync_builder_add(Builder *bl, RuleAction type, const char *name,
    const FileMeta *meta);
/* Closes the builder and returns its batches as a list. */
Batch *fullsync_builder_finish(Builder *bl);

/* fullsync-links.c */
/* What the name in bl's directory, a member of a source hard-link group,
 * needs: lead (copy, or take it as it is), wait, or be linked. */
void fullsync_link_resolve(FullSync *fs, Builder *bl, const char *name,
    const FileMeta *src, const ScanEntry *dst, RuleAction leader);
/* The leader's copy finished (or failed): serve the names waiting. */
void fullsync_link_settled(FullSync *fs, HardlinkGroup *g, bool ok,
    uint64_t dst_ino);
void fullsync_links_free(FullSync *fs);

/* fullsync-worker.c (worker threads) */
void fullsync_root_run(Job *job);
void fullsync_scan_run(Job *job);
void fullsync_batch_run(Job *job);

#endif
