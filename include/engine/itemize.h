/*
 * itemize — what a dry-run pass (FullSyncOptions.dry_run) would do to one
 * destination, as lines in the manner of `rsync -n --itemize-changes`:
 * one line per entry, its code saying what would happen and which
 * attributes differ, then the pass's verdict on the guards and
 * max_delete. The format is documented in treesyncd(8); both
 * `treesyncd --once --dry-run` and `treesyncctl diff` print it.
 *
 *   >f+++++++++ new.txt               a file the destination lacks
 *   >f.st...... grown.txt             content copied: size, mtime differ
 *   >fc........ same-size.txt         content differs (compare = "hash")
 *   .f...p..... mode.txt              attributes only: mode
 *   .f....og... owner.txt             owner and group
 *   .f..t...... touched.txt           mtime only (content equal)
 *   cL+++++++++ link -> target        a new symlink
 *   cLc........ link -> new-target    another target
 *   cd+++++++++ dir/                  a new directory
 *   hf......... b => a                linked to the name it shares an
 *                                     inode with in the source
 *   >f+++++++++ x (replaces a directory)   a type change
 *   *deleting   extra/                gone from the source (and every
 *   *deleting   extra/file            entry beneath, one line each)
 *   would hold: 150 deletes > max_delete 100: ...
 *
 * The code is YXcstpoguax: Y what happens (> content copied, c created,
 * h hard-linked, . attributes only), X the type (f file, d directory, L
 * symlink), then c content (or a symlink's target), s size, t mtime, p
 * permissions, o owner, g group (o and g only when running as root), u
 * a x unused ('.': atime is not mirrored; xattrs and ACLs are not
 * compared by the rules); + for every attribute of a new entry.
 *
 * An ItemList owns its lines (malloc'd). Lines are sorted by path, a
 * directory's entries right after it. Reactor thread (itemize_step is
 * the pass's report hook).
 */
#ifndef TREESYNC_ITEMIZE_H
#define TREESYNC_ITEMIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/fullsync.h"
#include "engine/pair.h"

typedef struct ItemList {
	bool preserve_owner;	/* compare owner and group (o, g) */
	size_t max_bytes;	/* 0: no limit; past it lines are counted */
	char **lines;
	size_t n;
	size_t cap;
	size_t bytes;
	uint64_t dropped;	/* lines past max_bytes */
} ItemList;

void itemize_init(ItemList *l, bool preserve_owner, size_t max_bytes);
/* A FullSyncReportFn: arg is the ItemList. */
void itemize_step(void *arg, const FullSyncStep *step);
/*
 * One destination's block, line by line (no "\n") to emit: a header
 * "# PAIR -> DEST", the entries, then what a real pass would hold or
 * fail at (from the pass's figures; held: the pair's deletes are held
 * already, as the live daemon's pass would find them). Nothing at all
 * when the destination equals its source. Sorts l's lines. Returns the
 * lines emitted after the header (0: in sync).
 */
size_t itemize_render(ItemList *l, const SyncPairConfig *pair,
    const char *dest, const SyncStats *st, bool held,
    void (*emit)(void *arg, const char *line), void *arg);
void itemize_free(ItemList *l);

#endif
