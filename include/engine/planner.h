/*
 * planner — what one directory of a destination needs so that it equals
 * the same directory of the source, and in what order: it pairs the two
 * listings by name, leaves out excluded names and temporaries, asks
 * rules_decide (rules.h) about each name and orders the steps.
 *
 * Pure: it reads two ScanLists and the pair's options and writes an action
 * list; it touches no file and keeps no state, so it is unit-tested
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
#include "engine/rules.h"
#include "engine/scan.h"

/*
 * One step of a directory's plan. type is what rules_decide gave the name
 * (rules.h), or RULE_DELETE for the first step of a replace (rule.replace:
 * the destination entry in the way goes first); RULE_NONE and RULE_KEEP
 * get no step. A new directory is two steps: RULE_MKDIR, then
 * RULE_RECURSE with fresh_dir.
 */
typedef struct PlanAction {
	RuleAction type;	/* RULE_DELETE, MKDIR, COPY, HASH, HARDLINK,
				 * SYMLINK, ATTRS, RECURSE, SKIP or
				 * SOURCE_ERROR */
	const ScanEntry *src;	/* NULL for RULE_DELETE */
	const ScanEntry *dst;	/* the destination entry of that name (NULL
				 * after a replace's delete) */
	RuleDecision rule;	/* the name's decision: leader for
				 * RULE_HARDLINK, attrs for RULE_RECURSE */
	bool fresh_dir;		/* RULE_RECURSE: dst dir is new, empty */
} PlanAction;

typedef struct PlanOptions {
	const Exclude *exclude;
	RuleOptions rules;
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
void planner_plan_free(Plan *plan);

#endif
