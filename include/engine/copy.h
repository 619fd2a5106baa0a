/*
 * copy — every change a worker makes in a destination, through directory
 * fds and *at() calls (never a path walked through a symlink):
 * atomic file copies (temporary in the same directory + renameat), symlinks,
 * hard links, directories, metadata, deletions.
 *
 * Stateless but for one process-wide flag (copy_abandon); called from
 * worker threads only. Every function returns 0 or -errno (or
 * COPY_SOURCE_CHANGED), and never leaves a temporary behind.
 */
#ifndef TREESYNC_COPY_H
#define TREESYNC_COPY_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/fsutil.h"

/* The source changed while it was copied: the temporary was removed. */
#define COPY_SOURCE_CHANGED 1

typedef struct CopyOptions {
	bool preserve_owner;	/* chown to the source's uid/gid (root) */
	bool umask_zero;	/* the process umask is 0: a new file gets
				 * its permission bits at creation */
} CopyOptions;

/*
 * Copies the regular file src_name (in src_dir) to dst_name (in dst_dir):
 * data into a temporary in dst_dir (copy_file_range, read/write fallback,
 * holes kept with SEEK_DATA/SEEK_HOLE), then owner, mode, atime/mtime (ns),
 * then renameat over dst_name. Constant memory for any size.
 * If the source's size, mtime or ctime differ after the copy from before it,
 * returns COPY_SOURCE_CHANGED. On success fills *bytes (data bytes copied)
 * and *dst_meta (the new file's metadata, for inode bookkeeping) when given.
 * After copy_abandon: -ECANCELED (the temporary removed, dst_name as it
 * was), with *bytes the data bytes copied before it stopped.
 */
/* dst_meta may be NULL: it costs an fstat, needed for hard links only. */
int copy_file_atomic(int src_dir, const char *src_name, int dst_dir,
    const char *dst_name, const CopyOptions *opt, uint64_t *bytes,
    FileMeta *dst_meta);

/*
 * Asks every copy_file_atomic in progress, and every later one, to stop
 * between two steps (at most 32 MiB of data apart) and return
 * -ECANCELED. Called by the reactor on SIGTERM/SIGINT (daemon.c's
 * on_signal, main.c's --once stop) so that a huge file in flight does not
 * hold up the exit for minutes; callers log -ECANCELED as "stopping", not
 * as a failure. Async-signal-safe (one atomic store); never undone.
 */
void copy_abandon(void);

/*
 * Creates (or atomically replaces) dst_name as a symlink to target, with the
 * source's owner (when preserve_owner) and times (best effort: a symlink's
 * mtime is not part of the contract).
 */
int copy_symlink(int dst_dir, const char *dst_name, const char *target,
    const FileMeta *meta, const CopyOptions *opt);

/*
 * Makes dst_name (in dst_dir) a hard link to the existing file
 * existing_name (in existing_dir), atomically replacing what dst_name was.
 */
int copy_hardlink(int existing_dir, const char *existing_name, int dst_dir,
    const char *dst_name);

/* mkdirat with mode 0700 (final mode comes with copy_set_meta). EEXIST ok
 * when it is already a directory. */
int copy_mkdir(int dst_dir, const char *name);

/*
 * Sets owner (when preserve_owner), mode (not for symlinks) and times of
 * name to those in meta. For symlinks only owner and times.
 */
int copy_set_meta(int dst_dir, const char *name, const FileMeta *meta,
    const CopyOptions *opt);

/*
 * Removes name and, when it is a directory, everything below it (deepest
 * first), never following a symlink. Missing name is success.
 * *count (when given) receives the number of entries removed.
 */
int copy_delete_tree(int dst_dir, const char *name, uint64_t *count);

#endif
