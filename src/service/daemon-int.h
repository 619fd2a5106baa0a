/*
 * daemon-int — what daemon.c (the loop, the pairs, the control requests)
 * and daemon-reload.c (the reload path: swapping a loaded config in) share.
 * Private to src/service/daemon*.c; reactor thread only.
 */
#ifndef TREESYNC_DAEMON_INT_H
#define TREESYNC_DAEMON_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "engine/pool.h"
#include "live/live.h"
#include "service/config.h"
#include "service/control.h"
#include "service/diff.h"
#include "service/metrics_http.h"
#include "service/reload.h"
#include "watch/watcher.h"

struct event_base;
struct event;
struct evbuffer;

typedef struct ConfigRef {
	Config *cfg;
	unsigned refs;
} ConfigRef;

/* treesyncctl clients waiting for a reload's answer. */
typedef struct ControlWaiters {
	ControlClient **v;
	size_t n, cap;
} ControlWaiters;

typedef struct PairRun {
	struct PairRun *next;
	ConfigRef *ref;
	const SyncPairConfig *pair;
	Live *live;
	unsigned root;		/* watcher root id, never reused */
	bool watched;		/* the watcher holds its Exclude */
	size_t watches;		/* directories watched, from the watcher */
	bool started;		/* its first pass was started */
	bool restart;		/* its source is back: watch it again */
	bool start_waiting;	/* first pass waits for a retired pair */
	struct Daemon *dm;
} PairRun;

typedef struct Daemon {
	struct event_base *base;
	Pool *pool;
	Watcher *watcher;
	ConfigRef *current;
	char *config_path;
	PairRun *pairs;
	PairRun *retiring;
	unsigned next_root;
	struct event *signals[5];
	struct event *reaper;
	Control *control;
	MetricsHttp *metrics;	/* metrics_listen; NULL: not configured */
	Diff *diffs;		/* treesyncctl diffs in progress */
	Control **retired_controls;	/* stopped by reloads that moved it */
	size_t n_retired_controls, retired_cap;
	ReloadLoader *loader;		/* reads a reload's file off the loop */
	ControlWaiters waiting;		/* treesyncctl reloads: this load */
	ControlWaiters waiting_next;	/* ... asked while it ran: the next */
	bool reload_again;		/* a reload was asked while one ran */
	time_t started;
	struct event *restarter;	/* pairs whose source is back */
	bool trim_due;		/* jobs were out since the last malloc_trim */
	time_t trimmed_at;	/* CLOCK_MONOTONIC seconds; 0: never */
	bool stopping;
	bool ready;		/* READY=1 was sent */
} Daemon;

/* daemon.c */
void ref_put(ConfigRef *ref);
int pair_start(Daemon *dm, ConfigRef *ref, const SyncPairConfig *pair);
/* Stops a pair; it is freed by the reaper once its jobs are back. */
void pair_retire(Daemon *dm, PairRun *pr);
/* The STATUS= line: "syncing 3/4 pairs, 12,034 files queued". */
void update_status(Daemon *dm);
/* GET /metrics (metrics_http.c): what treesyncctl metrics answers. */
int render_metrics(struct evbuffer *out, void *arg);
/* treesyncctl's requests (control.c parsed them). */
int on_control(const ControlRequest *req, ControlClient *cl,
    struct evbuffer *out, void *arg);

/* daemon-reload.c */
/*
 * SIGHUP (cl NULL) or treesyncctl reload (cl answered when it is done).
 * Returns CONTROL_LATER.
 */
int reload_request(Daemon *dm, ControlClient *cl);
/* The reload loader's callback (reload.h): swap it in, answer, go again. */
void on_reload_loaded(int r, Config *cfg, char *errors, void *arg);
/* Stopped control sockets whose last client is gone (the reaper). */
void free_idle_controls(Daemon *dm);
/*
 * control_socket_group on the socket file; when the setting went away
 * (was_set), the daemon's own group again. Start-up and reload.
 */
void apply_socket_group(Daemon *dm, const Config *cfg, bool was_set);
/*
 * Starts, moves or stops the Prometheus endpoint as cfg says; on a reload
 * a new address that cannot be had keeps the old one (answer says so). 0,
 * or -errno when the endpoint cfg names is not listening.
 */
int move_metrics(Daemon *dm, const Config *cfg, bool reloading,
    struct evbuffer *answer);

#endif
