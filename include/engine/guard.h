/*
 * guard — the checks that keep a mistaken source from emptying a
 * destination: is the source root still the directory the pair started
 * with (not vanished, not unmounted, not replaced), is it empty while its
 * destination is not, and how many entries may one pass delete
 * (max_delete).
 *
 * Stateless. guard_check_source and guard_count_tree touch the disk and
 * run on worker threads; guard_delete_budget and guard_fault_text are pure
 * and may be called from any thread.
 */
#ifndef TREESYNC_GUARD_H
#define TREESYNC_GUARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/pair.h"

/* What the source root was when the pair last found it sound. */
typedef struct SourceIdentity {
	bool known;
	uint64_t dev;
	uint64_t ino;
	bool mount_root;	/* a file system was mounted on it */
} SourceIdentity;

typedef enum {
	GUARD_OK = 0,
	GUARD_VANISHED,		/* cannot be opened as a directory */
	GUARD_UNMOUNTED,	/* was a mount point, no longer is */
	GUARD_REPLACED,		/* another directory (inode or device) */
	GUARD_EMPTY,		/* empty while the destination is not */
} GuardFault;

/*
 * Checks the source root src_fd (src_err: the -errno of opening it when
 * src_fd < 0) against expect (ignored unless expect->known) and, with
 * check_empty, whether it is empty while the destination root dst_fd is
 * not (.treesync.* temporaries do not count). *seen gets the root's
 * identity as it is now. Worker thread.
 */
GuardFault guard_check_source(int src_fd, int src_err, int dst_fd,
    const SourceIdentity *expect, bool check_empty, SourceIdentity *seen);

/* A short reason for a fault, for the log: "is gone (No such file...)". */
const char *guard_fault_text(GuardFault f);

/*
 * Entries one pass may delete under md, given the destination's entry
 * count (for a percentage). UINT64_MAX: no limit.
 */
uint64_t guard_delete_budget(const MaxDelete *md, uint64_t dst_entries);

/*
 * Counts name (in dir) and, for a directory, everything beneath it,
 * without following symlinks; stops once the count passes limit. 0 or
 * -errno. Worker thread.
 */
int guard_count_tree(int dir, const char *name, uint64_t limit,
    uint64_t *count);

#endif
