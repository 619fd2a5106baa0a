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
/* The answer has been sent (or its client was gone): free d now. */
typedef void (*DiffDoneFn)(Diff *d, void *arg);

/*
 * Starts the passes, opt being the pair's (live_pass_options) made a dry
 * run, and defers the client's answer (control_defer) until they are
 * done. 0, or -ENOMEM with nothing started.
 */
int diff_new(Pool *pool, const SyncPairConfig *pair, const FullSyncOptions *opt,
    ControlClient *client, DiffDoneFn done, void *arg, Diff **ret);
/* Shutdown: hands no more work to the pool; done is not called. */
void diff_stop(Diff *d);
/* Jobs of its passes in the pool. */
size_t diff_jobs_out(const Diff *d);
void diff_free(Diff *d);

#endif
