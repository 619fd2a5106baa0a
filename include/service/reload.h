/*
 * reload — a new config for a reload, loaded off the reactor.
 *
 * config_load reads the file and its @includes and resolves every source
 * and destination with realpath(): any of it can hang on a dead NFS
 * server, and the reactor (and systemd's watchdog) must not wait for it.
 * A ReloadLoader runs one config_load at a time on a thread of its own
 * (not the pool: its queue may hold a pass's worth of copies, and
 * pool_free would wait for a hung load at exit) and hands the result to
 * the reactor as a callback from the event loop. The caller swaps the new
 * Config in there (service/daemon.c), as STYLE.md example 8 says.
 *
 * Owns its thread's job while it runs; the result belongs to the callback.
 * Reactor thread only (reload-worker.c's thread touches only its job).
 */
#ifndef TREESYNC_RELOAD_H
#define TREESYNC_RELOAD_H

#include <stdbool.h>

#include "service/config.h"

struct event_base;

typedef struct ReloadLoader ReloadLoader;

/*
 * config_load's outcome, on the reactor: r, and cfg (r == 0) or errors
 * (r < 0, may be NULL), both the callback's to free.
 */
typedef void (*ReloadDone)(int r, Config *cfg, char *errors, void *arg);

int reload_loader_new(struct event_base *base, ReloadDone done, void *arg,
    ReloadLoader **ret);
/* Starts loading path: 0, -EBUSY while a load runs, or -errno (no thread). */
int reload_start(ReloadLoader *l, const char *path);
bool reload_running(const ReloadLoader *l);
/*
 * Frees the loader. A load still running is abandoned: its thread frees
 * its own result whenever config_load returns (a hung read must not hold
 * up the exit), and the callback is not called. NULL is fine.
 */
void reload_loader_free(ReloadLoader *l);

#endif
