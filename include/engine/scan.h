/*
 * scan — reads one directory of a source or destination: every entry's
 * name, lstat metadata and, for symlinks, the target. Runs on workers.
 *
 * A ScanList owns its entries and their strings. Lists come back sorted by
 * name (strcmp), so the planner can merge a source and a destination list.
 */
#ifndef TREESYNC_SCAN_H
#define TREESYNC_SCAN_H

#include <stddef.h>

#include "engine/fsutil.h"

typedef struct ScanEntry {
	char *name;
	char *link_target;	/* symlinks only, else NULL */
	FileMeta meta;
	int err;		/* lstat/readlink failed: -errno, meta unknown */
} ScanEntry;

typedef struct ScanList {
	ScanEntry *entries;
	size_t n;
	size_t cap;
} ScanList;

/*
 * Reads every entry of the directory dir (not "." or ".."), which must be
 * freshly opened: reading starts at its current position. Entries
 * that vanish between readdir and lstat are left out. Returns 0 or -errno
 * when the directory itself cannot be read; per-entry failures are in
 * ScanEntry.err. Does not close dir.
 */
int scan_dir(int dir, ScanList *out);
/* Binary search by name; NULL when absent. */
const ScanEntry *scan_find(const ScanList *list, const char *name);
void scan_list_free(ScanList *list);

#endif
