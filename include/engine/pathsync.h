/*
 * pathsync — makes one path of a destination equal to the same path of the
 * source, right now: the live daemon's unit of work after a change event.
 * It looks at the source as it is (not at what the event said), so a
 * stale, repeated or reordered event can only cause extra work, never a
 * wrong result.
 *
 * What a path needs is rules_decide's answer (rules.h), the same as a
 * full pass's for the same two entries. Stateless; worker threads only.
 * Directories are not walked here: a directory that is new (or replaced)
 * in the destination is reported back as PATHSYNC_SUBTREE for a fullsync
 * pass over it, and one both sides have gets its own attributes only
 * (its entries have paths of their own).
 */
#ifndef TREESYNC_PATHSYNC_H
#define TREESYNC_PATHSYNC_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/pair.h"
#include "engine/copy.h"
#include "engine/guard.h"
#include "engine/rules.h"

typedef enum {
	PATHSYNC_DONE,		/* the path is in sync (or err says why not) */
	PATHSYNC_SUBTREE,	/* a directory to sync with a subtree pass */
	PATHSYNC_HARDLINK,	/* a file with nlink > 1: its other names
				 * need a compare of the whole pair */
	PATHSYNC_NO_PARENT,	/* the destination parent is missing */
} PathSyncOutcome;

typedef struct PathSyncOptions {
	CopyOptions copy;
	bool delete;		/* a name gone from the source goes */
	CompareMode compare;
	/* Before a name gone from the source is deleted: the source root
	 * must still be this (NULL: no check) and not be empty while the
	 * destination is not; with hold_deletes nothing is deleted. */
	const SourceIdentity *expect;
	bool hold_deletes;
} PathSyncOptions;

typedef struct PathSyncResult {
	PathSyncOutcome outcome;
	int err;		/* 0 or -errno (or COPY_SOURCE_CHANGED);
				 * -ECANCELED: stopping (copy_abandon) */
	/* What was done of what rules_decide (rules.h) asked for:
	 * RULE_COPY, RULE_SYMLINK, RULE_ATTRS or RULE_DELETE (also when
	 * the delete of a replace failed: see err); RULE_NONE when nothing
	 * was: in sync, kept (delete = false), a special file, a delete
	 * withheld or refused (see withheld and fault), or handed on
	 * (PATHSYNC_SUBTREE: the rules said RULE_MKDIR; PATHSYNC_HARDLINK:
	 * RULE_HARDLINK). */
	RuleAction action;
	bool replaced;		/* the destination entry in the way (another
				 * kind) was deleted first */
	uint64_t bytes;		/* copied (so far, when -ECANCELED) */
	uint64_t size;		/* the source file's size, for a copy */
	uint64_t count;		/* entries deleted */
	bool entries_changed;	/* a name was made, replaced or removed in
				 * the destination parent (its mtime moved) */
	GuardFault fault;	/* a delete was refused: the source root
				 * failed its check */
	bool withheld;		/* a delete was not done: hold_deletes */
} PathSyncResult;

/* relpath "" is the root directory itself (its metadata only). */
void pathsync_run(int src_root, int dst_root, const char *relpath,
    const PathSyncOptions *opt, PathSyncResult *res);

/*
 * The same for several names of one directory, which is opened once on
 * each side (the live daemon's batches): pathsync_dir_open never fails
 * by itself, a parent that could not be opened (sp/dp < 0, -errno) is
 * what pathsync_dir_run reports for each name. parent is not "" for
 * the root's own metadata: that is pathsync_run(..., "", ...).
 */
typedef struct PathSyncDir {
	int src_root;		/* the roots, borrowed: the guard looks at them
				 * before a delete */
	int dst_root;
	int sp;			/* source parent fd, or -errno */
	int dp;			/* destination parent fd, or -errno */
} PathSyncDir;

void pathsync_dir_open(int src_root, int dst_root, const char *parent,
    PathSyncDir *pd);
/* base: a name in that directory (no '/'). */
void pathsync_dir_run(const PathSyncDir *pd, const char *base,
    const PathSyncOptions *opt, PathSyncResult *res);
void pathsync_dir_close(PathSyncDir *pd);

/*
 * Renames from to to in the destination (both relative to dst_root,
 * parents opened beneath it). 0, or -errno (-ENOENT: nothing to rename,
 * or to's parent is missing).
 */
int pathsync_rename(int dst_root, const char *from, const char *to);

#endif
