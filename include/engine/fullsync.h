/*
 * fullsync — one full compare-and-repair pass of one destination of a sync
 * pair: walks the source and the destination together, directory by
 * directory, and makes the destination equal to the source.
 *
 * Runs on the reactor thread and owns all of the pass's state: the
 * directories in progress, the queue of work not yet handed to the pool,
 * the hard-link groups seen so far and the figures. Workers only see
 * self-contained scan and batch jobs. Memory is bounded by the directories
 * in progress and a capped number of jobs, not by the size of the tree.
 */
#ifndef TREESYNC_FULLSYNC_H
#define TREESYNC_FULLSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/pair.h"
#include "engine/guard.h"
#include "engine/pool.h"
#include "engine/rules.h"

typedef struct SyncStats {
	uint64_t entries_seen;	/* source entries considered */
	uint64_t bytes_seen;	/* their regular-file bytes */
	uint64_t entries_done;	/* entries settled: up to date or acted on */
	uint64_t bytes_done;
	uint64_t files_copied;
	uint64_t bytes_copied;
	uint64_t dirs_created;
	uint64_t symlinks;
	uint64_t hardlinks;
	uint64_t deleted;	/* destination entries removed */
	uint64_t meta_fixed;
	uint64_t skipped;	/* fifos, sockets, devices */
	uint64_t errors;	/* entries that could not be synced */
	uint64_t withheld;	/* deletes not done: past max_delete or held */
	uint64_t delete_budget;	/* what max_delete allowed (UINT64_MAX: all) */
	GuardFault fault;	/* the source root failed its check: the pass
				 * did nothing (see guard.h) */
	SourceIdentity source;	/* the source root as the pass found it */
	bool scan_done;		/* every directory has been read */
} SyncStats;

typedef struct FullSync FullSync;
typedef void (*FullSyncDoneFn)(FullSync *fs, void *arg);

/*
 * One step the pass took on a name, in the rules' words (rules.h), for a
 * caller that wants them name by name (tests/unit/test-rules.c; an
 * itemized list): relpath ("" for the pass's top), what was done
 * (RULE_DELETE, RULE_MKDIR, RULE_COPY, RULE_SYMLINK, RULE_HARDLINK,
 * RULE_ATTRS, or RULE_NONE when a hash found the content and the
 * attributes equal; RULE_SKIP, RULE_SOURCE_ERROR) and its outcome (0 or
 * -errno). A replace is two steps, RULE_DELETE then the other; a
 * directory's own attributes are a RULE_ATTRS step after its entries.
 * Names found equal without a hash get no call. Reactor thread.
 */
typedef void (*FullSyncReportFn)(void *arg, const char *relpath,
    RuleAction done, int err);

typedef struct FullSyncOptions {
	bool preserve_owner;	/* running as root */
	bool will_retry;	/* failures are retried later (live daemon) */
	bool umask_zero;	/* main set umask 0: see CopyOptions */
	/* Safety guards (guard.h). The source root is checked before the
	 * pass does anything: against expect when expect.known, and for a
	 * whole-tree pass, not empty while the destination is full. */
	SourceIdentity expect;
	bool hold_deletes;	/* delete nothing: the pair is held */
	bool force;		/* ignore max_delete for this pass */
	uint64_t dst_entries;	/* destination size for a percentage
				 * max_delete; 0: count it in the pass */
	FullSyncReportFn report;	/* NULL: none */
	void *report_arg;
} FullSyncOptions;

/*
 * Prepares a pass of pair (which must outlive it) into destination dest,
 * over the whole tree (relroot "" or NULL) or the subtree relroot (a path
 * relative to the source root whose parent exists in the destination; a
 * subtree that is gone or no longer a directory ends the pass at once).
 * done is called on the reactor thread once the pass is over (successful
 * or not: see fullsync_stats); it may free the pass.
 */
int fullsync_new(Pool *pool, const SyncPairConfig *pair, const char *dest,
    const char *relroot, const FullSyncOptions *opt, FullSyncDoneFn done,
    void *arg, FullSync **ret);
void fullsync_start(FullSync *fs);
/*
 * Hands no more work to the pool (shutdown): jobs already submitted finish
 * or are cancelled by pool_free; the done callback is not called.
 */
void fullsync_stop(FullSync *fs);
const SyncStats *fullsync_stats(const FullSync *fs);
/* Jobs of this pass in the pool (a stopped pass may be freed at 0). */
size_t fullsync_jobs_out(const FullSync *fs);
const char *fullsync_dest(const FullSync *fs);
const char *fullsync_pair_name(const FullSync *fs);
/* Frees a pass whose done callback has run (or that never started). */
void fullsync_free(FullSync *fs);

#endif
