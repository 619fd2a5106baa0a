/*
 * remote — the destination on another host (SPEC "Remote destinations"):
 * "NAME:/abs/path" with NAME one of the config's remotes. Everything the
 * seam asks (dest.h) goes over the host's one ssh connection
 * (remote-host.h): renames and deletes as ops of a long-lived
 * treesync-remote session, data as rsync runs (remote-rsync.h), a compare
 * as one rsync run with the pair's excludes compiled to filters.
 *
 * Its faults are its own: an unreachable host, a hung or failed run, a
 * replaced remote root make it away (dest_state) or fail paths, never
 * anything else; see docs/design.md "Remote destinations" for the batch
 * plan and the exit-status table.
 *
 * Reactor thread only (the constructor and, through dest.h, its ops).
 */
#ifndef TREESYNC_DEST_REMOTE_H
#define TREESYNC_DEST_REMOTE_H

#include "dest/dest.h"

/* The destination spelled name ("NAME:/path", remote its remote) of pair,
 * which must outlive it; source looks go to pool. 0 or -errno. */
int dest_remote_new(struct event_base *base, Pool *pool,
    const SyncPairConfig *pair, const RemoteConfig *remote,
    const char *name, Dest **ret);

#endif
