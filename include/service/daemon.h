/*
 * daemon — the live daemon (treesyncd without --once): the event loop,
 * signals, the watcher and one Live per sync pair, and config reloads.
 *
 * Owns the running Config (and older ones still referenced by pairs that
 * a reload kept). Main thread only; returns when the daemon stops.
 */
#ifndef TREESYNC_DAEMON_H
#define TREESYNC_DAEMON_H

#include "service/config.h"

/*
 * Runs until SIGTERM/SIGINT. Takes ownership of cfg. Returns the exit
 * status (0 after a graceful stop, 1 when it could not start).
 */
int daemon_run(Config *cfg);

#endif
