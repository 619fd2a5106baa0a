/*
 * serve-rsync — runs a checked `rsync --server` request (rsync-allow)
 * inside the destination: resolves it beneath DIR, checks a pinned root,
 * creates the run's --temp-dir, starts rsync there with "." as its
 * destination, waits, and removes the run's temporaries when rsync exits
 * however it exits.
 *
 * Single-threaded; called once per process, inside the sandbox.
 */
#ifndef TREESYNC_REMOTE_SERVE_RSYNC_H
#define TREESYNC_REMOTE_SERVE_RSYNC_H

#include <stddef.h>

#include "remote/rootid.h"
#include "remote/rsync-allow.h"

typedef struct ServeRsyncOptions {
	int dir_fd;		/* DIR, inside the sandbox (borrowed) */
	const char *dest;	/* the destination relative to DIR ("": DIR) */
	const char *dest_shown;	/* as the client named it, for messages */
	const char *rsync;	/* the program to run: "rsync" or a path */
	RootId expect;
} ServeRsyncOptions;

/*
 * rsync's exit status (128 + N when it died of signal N), or
 * REMOTE_EXIT_UNAVAILABLE / REMOTE_EXIT_REFUSED / REMOTE_EXIT_EXEC with
 * the reason in why.
 */
int serve_rsync(const ServeRsyncOptions *opt, const RsyncRequest *req,
    char *why, size_t why_size);

#endif
