/*
 * rules — the one decision per entry: given a source entry, the
 * destination entry of the same name and the pair's options, what the
 * destination entry needs so that it equals the source. The full pass's
 * differ (planner), the live path job (pathsync) and the model test's
 * reference all ask this function, so `compare = "hash"`, directories,
 * symlinks and hard links mean the same thing live and in a pass.
 *
 * Pure: no I/O, no state; any thread. What an action then costs on a
 * destination (a copy, a hash of both sides) is the caller's.
 *
 * CONTRACT (issue 10, filled in by src/engine/rules.c): the enum names
 * below are what dest/, live/ and the sync log use; their meaning is
 * written beside each.
 */
#ifndef TREESYNC_RULES_H
#define TREESYNC_RULES_H

#include <stdbool.h>

#include "engine/pair.h"
#include "engine/scan.h"

typedef enum RuleAction {
	RULE_NONE = 0,		/* already equal: nothing to do */
	RULE_ATTRS,		/* same content: owner, mode, times only */
	RULE_COPY,		/* regular file: copy its content (new, or
				 * over a file whose content differs) */
	RULE_HASH,		/* compare = "hash", equal sizes: hash both
				 * sides, then rules_after_hash decides */
	RULE_SYMLINK,		/* (re)create the symlink */
	RULE_MKDIR,		/* create the directory, fill it beneath */
	RULE_RECURSE,		/* both directories: compare beneath; the
				 * directory's own attributes after that */
	RULE_HARDLINK,		/* a source name with nlink > 1: whoever
				 * knows the group links it to the group's
				 * first name (or copies that one) */
	RULE_DELETE,		/* gone from the source, delete = true:
				 * remove it (a whole tree for a directory) */
	RULE_KEEP,		/* gone from the source but kept: delete =
				 * false, excluded, or unreadable source */
	RULE_SKIP,		/* fifo, socket, device: not mirrored */
	RULE_SOURCE_ERROR,	/* the source entry could not be read: the
				 * destination is left alone */
} RuleAction;

typedef struct RuleDecision {
	RuleAction action;
	/* The destination entry is in the way (another type, or a
	 * directory where a file goes, or unreadable): delete it first,
	 * then do action. */
	bool replace;
	/* RULE_HARDLINK: the first name's content already matches. */
	bool content_same;
} RuleDecision;

typedef struct RuleOptions {
	CompareMode compare;
	bool delete;		/* names gone from the source go */
	bool preserve_owner;	/* running as root */
} RuleOptions;

/*
 * src, dst: the entries of one name (NULL when missing on that side);
 * excluded names and treesync's own temporaries are the caller's to
 * leave out before asking.
 */
RuleDecision rules_decide(const ScanEntry *src, const ScanEntry *dst,
    const RuleOptions *opt);
/* After RULE_HASH: the hashes were equal (same) or not. */
RuleDecision rules_after_hash(const ScanEntry *src, const ScanEntry *dst,
    const RuleOptions *opt, bool same);
/* The sync log's word for an action: "copy", "attrs", "symlink",
 * "mkdir", "delete", "link", ... */
const char *rules_action_name(RuleAction a);

#endif
