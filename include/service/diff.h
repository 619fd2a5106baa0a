/*
 * diff — `treesyncctl diff NAME`: what a full sync of one pair would do
 * to each of its destinations, asked of the running daemon. A dry-run
 * pass (FullSyncOptions.dry_run) per destination on the daemon's pool,
 * beside the pair's live sync and apart from it: its own FullSyncs,
 * never the pair's passes, pending tables or figures. The guards are
 * judged as the pair's next pass would judge them (live_pass_options).
 * Once every pass is done the control client gets the lists in the
 * format of engine/itemize.h, bounded to DIFF_ANSWER_MAX bytes.
 *
 * Owns its passes and lists; borrows the pair (the caller keeps it alive
 * until diff_free) and the client (until the answer, or until the
 * client goes: control_defer's gone). Reactor thread.
 */
#ifndef TREESYNC_DIFF_H
#define TREESYNC_DIFF_H

#include <stddef.h>

#include "engine/fullsync.h"
#include "engine/pair.h"
#include "engine/pool.h"
#include "service/control.h"

/* The lists' share of the answer (control.c refuses more). */
#define DIFF_ANSWER_MAX (CONTROL_REPLY_MAX - (64u << 10))

typedef struct Diff Diff;

/*
 * Starts the passes, opt being the pair's (live_pass_options) made a dry
 * run, links the diff into *list and defers the client's answer
 * (control_defer) until they are done; then the diff answers, leaves
 * the list and frees itself, calling release(release_arg) (the caller's
 * hold on the pair). 0, or -ENOMEM with nothing started.
 */
int diff_start(Diff **list, Pool *pool, const SyncPairConfig *pair,
    const FullSyncOptions *opt, ControlClient *client,
    void (*release)(void *arg), void *release_arg);
/* Shutdown: the diffs of list hand no more work to the pool. */
void diff_stop_all(Diff *list);
/* After pool_free: frees the diffs of list (no answers go out). */
void diff_free_all(Diff **list);

#endif
