/*
 * watcher — change events on the source roots, from recursive inotify
 * watches or from a fanotify mark on each root's whole file system,
 * turned into ordered batches of change events for the reactor. Both
 * mechanisms report the same events (inotify's IN_* masks and cookies).
 *
 * A Watcher owns one thread. That thread is the only one in the process
 * that calls libinotifytools (its state is process-global and not
 * thread-safe), so there is at most one Watcher per process: a second
 * watcher_new fails with -EBUSY. The watcher thread places the watches,
 * reads the events and hands them over in batches; the callback gets each
 * batch on the reactor thread, from the event_base given to watcher_new.
 *
 * Thread: every watcher_* function but watcher_get_stats is for the
 * reactor thread only (the thread that runs the event_base), and the
 * callback runs there. The callback may call watcher_add_root and
 * watcher_remove_root, not watcher_free.
 *
 * What is reported, for each root:
 * - every inotify event on a watched directory, in the order inotify gave
 *   them, with the path relative to the root ("" for the root itself);
 * - for a directory that appears (IN_CREATE or IN_MOVED_TO with IN_ISDIR,
 *   unless it is a rename within the same root), the watches beneath it are
 *   placed first and then one synthetic IN_CREATE (| IN_ISDIR) per entry
 *   found beneath it, so nothing created before the watches were in place
 *   is missed. Duplicates with real events are possible; misses are not;
 * - paths matched by the root's Exclude are not reported, and excluded
 *   directories are not watched. A watched directory renamed to an excluded
 *   name, or out of every watched tree, loses its watches;
 * - events on a directory itself (IN_ATTRIB, IN_DELETE_SELF, IN_MOVE_SELF)
 *   are reported for the root directory only: for any other directory its
 *   parent's event already says it. IN_UNMOUNT is reported for any
 *   directory (rescan it). IN_IGNORED is never reported;
 * - the root directory deleted or moved away (IN_DELETE_SELF, IN_MOVE_SELF
 *   on "") is the caller's to handle: remove the root, add it again when
 *   it is back. Its watches follow the directory, not the path;
 * - a directory visible at two paths (a bind mount inside the tree) is
 *   watched, and reported, at one of them.
 *
 * Needs Linux >= 4.18 (IN_MASK_CREATE) and /proc mounted (watches are
 * placed through /proc/self/fd, and libinotifytools' fd is found through
 * /proc/self/fdinfo, see watcher.c). fanotify needs Linux >= 5.9
 * (FAN_REPORT_DFID_NAME), CAP_SYS_ADMIN, and a file system that reports
 * file handles for a whole-file-system mark (ext4, xfs, btrfs, tmpfs;
 * not overlayfs, FUSE or /proc): see WatchMode.
 *
 * What differs with fanotify: IN_UNMOUNT is never reported (the kernel
 * has no such event for a file-system mark), merged events may carry
 * several IN_* bits at once (fanotify merges events on one name queued
 * by one process), and every change on a marked file system passes
 * through the watcher thread (dropped there when outside every root).
 * fanotify's queue is unlimited (see fanotify.c), so it does not
 * overflow; an overflow of inotify's still means every root.
 *
 * Every watcher_add_root that returned 0 is answered by exactly one
 * WATCH_ROOT_READY notice and, after watcher_remove_root or a READY with
 * dirs_placed 0, by exactly one WATCH_ROOT_RELEASED: only then may the
 * root's Exclude be freed. After watcher_remove_root returns, the callback
 * sees no event, READY or INCOMPLETE for that root any more.
 */
#ifndef TREESYNC_WATCHER_H
#define TREESYNC_WATCHER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/exclude.h"

struct event_base;

/* How a root is watched (the `watch` config key). */
typedef enum WatchMode {
	/* fanotify where the kernel, privileges and file system allow it,
	 * else inotify; WATCH_ROOT_READY says which and why. */
	WATCH_AUTO,
	WATCH_INOTIFY,		/* a watch per directory */
	/* A mark on the root's file system; refused where it cannot be
	 * placed (WATCH_ROOT_READY with dirs_placed 0 and the reason). */
	WATCH_FANOTIFY,
} WatchMode;

typedef struct WatchEvent {
	unsigned root;		/* the id given to watcher_add_root */
	uint32_t mask;		/* IN_* bits as inotify reports them, IN_ISDIR included */
	uint32_t cookie;	/* pairs IN_MOVED_FROM / IN_MOVED_TO; 0 otherwise */
	bool synthetic;		/* found by a scan of a new directory, not by inotify */
	char *relpath;		/* relative to the root, "" for the root itself */
} WatchEvent;

typedef enum WatchNoticeKind {
	/*
	 * watcher_add_root finished. dirs_placed == dirs_needed (error 0):
	 * every directory is watched. Fewer: error says why the first one
	 * failed (-ENOSPC: out of watches, fs.inotify.max_user_watches); the
	 * root stays, changes beneath the unwatched ones are seen only by a
	 * rescan. dirs_placed == 0: the root directory itself could not be
	 * watched (-ENOENT, -ENOTDIR, -EACCES, -ENOSPC, -EBUSY when it is
	 * already watched for another root); the root is forgotten and
	 * WATCH_ROOT_RELEASED follows.
	 */
	WATCH_ROOT_READY,
	/* The watcher no longer uses the root's Exclude; the id is free. */
	WATCH_ROOT_RELEASED,
	/*
	 * Directories that appeared under a ready root could not all be
	 * watched: dirs_placed of dirs_needed (counted per batch), error the
	 * first reason (-ENOSPC: out of watches). Changes beneath the others
	 * need rescans. Also sent after a rebuild that could not place every
	 * watch again (dirs_placed 0: the root directory is gone).
	 */
	WATCH_INCOMPLETE,
} WatchNoticeKind;

typedef struct WatchNotice {
	WatchNoticeKind kind;
	unsigned root;
	int error;		/* 0 or -errno, see the kinds */
	size_t dirs_needed;	/* directories that needed a watch */
	size_t dirs_placed;	/* watches placed for them */
	/* WATCH_ROOT_READY: the mechanism used (WATCH_INOTIFY or
	 * WATCH_FANOTIFY), and in WATCH_AUTO why fanotify was not (-errno,
	 * else 0): -EPERM no CAP_SYS_ADMIN, -ENOSYS/-EINVAL the kernel has
	 * no FAN_REPORT_DFID_NAME, -EOPNOTSUPP/-ENODEV/-EXDEV the file
	 * system cannot be marked. */
	WatchMode mode;
	int fanotify_error;
} WatchNotice;

/* How many directories of a root are watched now. */
typedef struct WatchCount {
	unsigned root;
	size_t watches;
} WatchCount;

/*
 * One batch. Owned by the callback once delivered; it frees it with
 * watcher_batch_free. Events keep inotify's order; notices tell what
 * happened after the events of the same batch.
 */
typedef struct WatchBatch {
	WatchEvent *events;
	size_t n;
	WatchNotice *notices;
	size_t n_notices;
	/*
	 * Events were lost (IN_Q_OVERFLOW, or the watcher lost track of a
	 * directory): every root must be rescanned.
	 */
	bool overflow;
	/*
	 * Watched directories per root, as of the end of this batch; present
	 * (n_counts > 0) only when they changed since the last batch that
	 * carried them. A batch may hold nothing else.
	 */
	WatchCount *counts;
	size_t n_counts;
} WatchBatch;

typedef void (*WatcherFn)(WatchBatch *batch, void *arg);

typedef struct WatcherStats {
	size_t watches;		/* directories watched now (either way) */
	size_t rebuilds;	/* times the inotify instance was rebuilt */
	uint64_t events;	/* events delivered to the reactor */
	uint64_t batches;
} WatcherStats;

typedef struct Watcher Watcher;

/*
 * Starts the watcher thread (which initializes libinotifytools) and
 * registers the hand-off eventfd in base. -EBUSY when another Watcher
 * exists; -EMFILE when the inotify instance limit is reached.
 */
int watcher_new(struct event_base *base, WatcherFn cb, void *arg,
    Watcher **ret);
/*
 * Asks for recursive watches on path (absolute) under the id root, by
 * mode; returns at once, completion comes as WATCH_ROOT_READY. ex may be NULL;
 * it is borrowed and must stay valid until WATCH_ROOT_RELEASED for this
 * root (or watcher_free). -EEXIST: the id is in use; -EINVAL: path not
 * absolute; -EBUSY: path equals, contains or lies inside an active root's
 * path (watch the outer one and route by prefix).
 */
int watcher_add_root(Watcher *w, unsigned root, const char *path,
    const Exclude *ex, WatchMode mode);
/* "auto", "inotify", "fanotify": the mode, or -1. */
int watcher_mode_from_string(const char *s);
const char *watcher_mode_name(WatchMode mode);
/* Drops the root's watches; returns at once. -ENOENT: no such active root. */
int watcher_remove_root(Watcher *w, unsigned root);
void watcher_batch_free(WatchBatch *batch);
/* A snapshot of the counters; any thread. */
void watcher_get_stats(const Watcher *w, WatcherStats *out);
/*
 * Stops the thread, drops every watch and frees everything, undelivered
 * batches included (their callbacks do not run). NULL is fine.
 */
void watcher_free(Watcher *w);

#endif
