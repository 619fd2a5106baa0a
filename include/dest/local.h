/*
 * local — the destination that is a directory on this machine: the
 * worker pool runs the work against it (pathsync for a batch of paths,
 * renameat for renames, fullsync for a compare). Its worker side is
 * src/dest/local-worker.c; every job carries its own copies of the two
 * roots and its options, so a worker reads nothing the reactor owns.
 *
 * Reactor thread only (the constructor and, through dest.h, its ops).
 */
#ifndef TREESYNC_DEST_LOCAL_H
#define TREESYNC_DEST_LOCAL_H

#include "dest/dest.h"

/* The destination path (absolute) of pair, which must outlive it; jobs
 * go to pool. 0 or -errno. */
int dest_local_new(struct event_base *base, Pool *pool,
    const SyncPairConfig *pair, const char *path, Dest **ret);

#endif
