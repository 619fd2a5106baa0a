/*
 * planner — decides what one directory of a destination needs so that it
 * equals the same directory of the source, and in what order.
 *
 * Pure: it reads two ScanLists and the pair's options and writes an action
 * list; it touches no file and keeps no state, so the rules are unit-tested
 * without a file system. The order it emits is the order that is safe to
 * apply (see planner.c). Called on the reactor thread.
 */
#ifndef TREESYNC_PLANNER_H
#define TREESYNC_PLANNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/pair.h"
#include "engine/exclude.h"
#include "engine/scan.h"

typedef enum {
	PLAN_DELETE,		/* dst: remove (a tree when a directory) */
	PLAN_MKDIR,		/* src: create the directory */
	PLAN_COPY,		/* src: copy the regular file */
	PLAN_HASH_COPY,		/* src: hash both, copy when they differ */
	PLAN_HARDLINK,		/* src: file with nlink > 1, the caller
				 * decides copy or link (see up_to_date) */
	PLAN_SYMLINK,		/* src: (re)create the symlink */
	PLAN_META,		/* src: same content, fix owner/mode/times */
	PLAN_RECURSE,		/* src: descend into the subdirectory */
	PLAN_SKIP_SPECIAL,	/* src: fifo, socket or device: not mirrored */
	PLAN_SOURCE_ERROR,	/* src: could not be read; dst left alone */
} PlanType;

typedef struct PlanAction {
	PlanType type;
	const ScanEntry *src;	/* NULL for PLAN_DELETE */
	const ScanEntry *dst;	/* the destination entry of that name */
	bool up_to_date;	/* PLAN_HARDLINK: content already matches */
	bool fresh_dir;		/* PLAN_RECURSE: dst dir is new, empty */
} PlanAction;

typedef struct PlanOptions {
	const Exclude *exclude;
	bool delete;		/* propagate names that left the source */
	CompareMode compare;
	bool preserve_owner;
} PlanOptions;

typedef struct Plan {
	PlanAction *actions;
	size_t n;
	size_t cap;
	/* For progress figures: source entries considered (not excluded),
	 * and those of them that got an action to wait for. */
	size_t n_src;
	uint64_t src_bytes;
	size_t n_src_acted;
	uint64_t src_bytes_acted;
} Plan;

/*
 * Plans directory dir_relpath ("" for the root). dst may be NULL when the
 * destination directory is new. Order: deletes, then mkdirs, then files,
 * symlinks and metadata, then subdirectories to recurse into. Actions point
 * into src and dst, which must outlive the plan. 0 or -ENOMEM.
 */
int planner_plan_dir(const char *dir_relpath, const ScanList *src,
    const ScanList *dst, const PlanOptions *opt, Plan *out);
/* True when a file's content is taken to match (size + mtime ns check). */
bool planner_same_content(const FileMeta *src, const FileMeta *dst);
/* True when owner (if preserve_owner) and mode match. */
bool planner_same_attrs(const FileMeta *src, const FileMeta *dst,
    bool preserve_owner);
void planner_plan_free(Plan *plan);

#endif
