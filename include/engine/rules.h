/*
 * rules — the one decision per entry: given a source entry, the
 * destination entry of the same name and the pair's options, what the
 * destination entry needs so that it equals the source. The full pass's
 * differ (planner), the live path job (pathsync) and the model test's
 * reference all ask this function, so `compare = "hash"`, directories,
 * symlinks and hard links mean the same thing live and in a pass
 * (tests/unit/test-rules.c runs both on every pair of shapes).
 *
 * Pure: no I/O, no state; any thread. What an action then costs on a
 * destination (a copy, a hash of both sides) is the caller's.
 *
 * The semantics, and why:
 * - compare = "mtime": a regular file's content is taken to match when
 *   size and mtime (to the ns) do (rsync's quick check); then its
 *   attributes: mode (07777), and owner and group when preserve_owner.
 * - compare = "hash": as `rsync --checksum`: files of equal size are
 *   decided by their content whatever their mtimes (RULE_HASH, then
 *   rules_after_hash), and equal content needs only its attributes,
 *   mtime included. A file that was touched but not changed is then
 *   never copied, live or in a pass; the price is a hash of both sides
 *   of every equal-size file, which is what the user asked for.
 * - A directory's own attributes are its mode, owner and mtime: what
 *   SPEC's convergence promises. Not its size, which says how its
 *   entries were laid out, not what it holds (ext4 never shrinks one).
 * - A symlink matches when its target does; then only its owner (SPEC:
 *   a symlink's own mtime is not compared, its mode does not exist).
 * - A name whose destination entry is another kind (a directory where
 *   a file goes, anything where a directory goes) or unreadable is
 *   replaced: delete it first (replace), then action. A file or symlink
 *   over a file or symlink needs no delete: rename(2) replaces it.
 * - A source name that stands alone (nlink 1) over a destination file
 *   linked to other names is copied, which splits the link (else a
 *   write through it would reach names the source does not link).
 * - A fifo, socket or device is not mirrored and replaces nothing.
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
				 * directory's own attributes after that
				 * (RuleDecision.attrs) */
	RULE_HARDLINK,		/* a source name with nlink > 1: whoever
				 * knows the group links it to the group's
				 * first name (or, for the first name, does
				 * RuleDecision.leader) */
	RULE_DELETE,		/* gone from the source, delete = true:
				 * remove it (a whole tree for a directory) */
	RULE_KEEP,		/* gone from the source but kept: delete =
				 * false (excluded names and unreadable
				 * sources never get this far) */
	RULE_SKIP,		/* fifo, socket, device: not mirrored */
	RULE_SOURCE_ERROR,	/* the source entry could not be read: the
				 * destination is left alone */
} RuleAction;

#define RULE_ACTIONS (RULE_SOURCE_ERROR + 1)

typedef struct RuleDecision {
	RuleAction action;
	/* The destination entry is in the way (another kind, or
	 * unreadable): delete it first, then do action. */
	bool replace;
	/* RULE_RECURSE: the directory's own attributes (mode, owner,
	 * mtime) differ; set them once what is beneath is done. A caller
	 * that does not descend (the live path job) sets them at once. */
	bool attrs;
	/* RULE_HARDLINK: what the name needs if it is the first of its
	 * group the caller meets (the one the others are linked to):
	 * RULE_NONE, RULE_ATTRS, RULE_COPY or RULE_HASH, decided as for a
	 * lone file, but a destination linked elsewhere is no reason to
	 * copy (it may be this very group). */
	RuleAction leader;
} RuleDecision;

typedef struct RuleOptions {
	CompareMode compare;
	bool delete;		/* names gone from the source go */
	bool preserve_owner;	/* running as root */
} RuleOptions;

/*
 * src, dst: the entries of one name (NULL when missing on that side;
 * err set when lstat failed; link_target for symlinks). Excluded names
 * and treesync's own temporaries are the caller's to leave out before
 * asking.
 */
RuleDecision rules_decide(const ScanEntry *src, const ScanEntry *dst,
    const RuleOptions *opt);
/*
 * After RULE_HASH (of a lone file, or a group's first name): the hashes
 * were equal (same) or not. RULE_NONE, RULE_ATTRS or RULE_COPY.
 */
RuleDecision rules_after_hash(const ScanEntry *src, const ScanEntry *dst,
    const RuleOptions *opt, bool same);
/* The sync log's word for an action: "copy", "attrs", "symlink",
 * "mkdir", "delete", "link", ...; "-" for RULE_NONE. */
const char *rules_action_name(RuleAction a);

#endif
