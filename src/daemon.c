/*
 * daemon — see include/daemon.h.
 *
 * DESIGN
 * Start-up: for each sync pair, watches first (watcher_add_root), then,
 * when the watcher says they are in place, the pair's first full pass
 * (live_start); events that arrive meanwhile wait in the pair's pending
 * table, so nothing changed during the start-up scan is lost.
 *
 * Reload (SIGHUP): the new file is parsed beside the old one; when it is
 * invalid, the problems are logged and nothing changes. Otherwise pairs
 * whose settings are unchanged keep running untouched; removed or changed
 * ones are stopped and retired (freed once their jobs are back), and new
 * or changed ones start. A Config stays alive while any running pair
 * points into it (ConfigRef).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "daemon.h"
#include "live.h"
#include "pool.h"
#include "synclog.h"
#include "watcher.h"

#ifndef TREESYNC_VERSION
#define TREESYNC_VERSION "unknown"
#endif

#define POLL_INTERVAL_MS 10000
#define REAPER_INTERVAL_US 250000	/* also how soon an idle heap is trimmed */
#define TRIM_GAP_S 2		/* malloc_trim costs ~4 ms at 50,000 dirs */

typedef struct ConfigRef {
	Config *cfg;
	unsigned refs;
} ConfigRef;

typedef struct PairRun {
	struct PairRun *next;
	ConfigRef *ref;
	const SyncPairConfig *pair;
	Live *live;
	unsigned root;		/* watcher root id, never reused */
	bool watched;		/* the watcher holds its Exclude */
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
	struct event *signals[4];
	struct event *reaper;
	bool trim_due;		/* jobs were out since the last malloc_trim */
	time_t trimmed_at;	/* CLOCK_MONOTONIC seconds; 0: never */
	bool stopping;
} Daemon;

static void
ref_put(ConfigRef *ref)
{
	if (ref != NULL && --ref->refs == 0) {
		config_free(ref->cfg);
		free(ref);
	}
}

static bool
same_pair(const SyncPairConfig *a, const SyncPairConfig *b)
{
	if (strcmp(a->name, b->name) != 0 || strcmp(a->source, b->source) != 0
	    || a->delete != b->delete || a->compare != b->compare ||
	    a->n_destinations != b->n_destinations ||
	    !exclude_equal(a->exclude, b->exclude))
		return false;
	for (size_t i = 0; i < a->n_destinations; i++)
		if (strcmp(a->destinations[i], b->destinations[i]) != 0)
			return false;
	return true;
}

static int
pair_start(Daemon *dm, ConfigRef *ref, const SyncPairConfig *pair)
{
	LiveOptions opt = { .delay_ms = ref->cfg->delay_ms,
	    .preserve_owner = geteuid() == 0 };
	PairRun *pr = calloc(1, sizeof *pr);
	int r;

	if (pr == NULL)
		return -ENOMEM;
	if ((r = live_new(dm->base, dm->pool, pair, &opt, &pr->live)) < 0) {
		free(pr);
		return r;
	}
	pr->ref = ref;
	ref->refs++;
	pr->pair = pair;
	pr->root = dm->next_root++;
	pr->next = dm->pairs;
	dm->pairs = pr;
	/* Watches first; the first pass starts when they are in place. */
	r = watcher_add_root(dm->watcher, pr->root, pair->source,
	    pair->exclude);
	pr->watched = r == 0;
	if (r < 0)
		synclog_msg(LOG_LEVEL_ERROR, "%s: cannot watch '%s': %s; "
		    "comparing every %d s instead", pair->name, pair->source,
		    strerror(-r), POLL_INTERVAL_MS / 1000);
	if (r < 0) {
		live_start(pr->live);
		live_set_polling(pr->live, POLL_INTERVAL_MS);
	}
	return 0;
}

/* Stops a pair; it is freed by the reaper once its jobs are back. */
static void
pair_retire(Daemon *dm, PairRun *pr)
{
	if (pr->watched && watcher_remove_root(dm->watcher, pr->root) < 0)
		pr->watched = false;
	live_stop(pr->live);
	pr->next = dm->retiring;
	dm->retiring = pr;
}

static void
pair_free(PairRun *pr)
{
	live_free(pr->live);
	ref_put(pr->ref);
	free(pr);
}

static PairRun *
find_root(PairRun *list, unsigned root)
{
	for (PairRun *pr = list; pr != NULL; pr = pr->next)
		if (pr->root == root)
			return pr;
	return NULL;
}

/*
 * Frees retired pairs whose last job has come back, and trims the heap
 * when the pairs fall idle after work: a full pass frees a few hundred
 * bytes per directory that malloc would otherwise keep (measured in
 * docs/performance-live.md). At most every TRIM_GAP_S, so a stream of
 * small changes does not pay for it each time.
 */
static void
on_reaper(evutil_socket_t fd, short what, void *arg)
{
	Daemon *dm = arg;
	PairRun **pp = &dm->retiring;
	struct timespec now;
	size_t out = 0;

	(void)fd;
	(void)what;
	while (*pp != NULL) {
		PairRun *pr = *pp;
		/* Its jobs are back and the watcher let go of its Exclude. */
		if (!pr->watched && live_jobs_out(pr->live) == 0) {
			*pp = pr->next;
			pair_free(pr);
		} else {
			out += live_jobs_out(pr->live);
			pp = &pr->next;
		}
	}
	for (PairRun *pr = dm->pairs; pr != NULL; pr = pr->next)
		out += live_jobs_out(pr->live);
	if (out > 0) {
		dm->trim_due = true;
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (dm->trim_due && (dm->trimmed_at == 0 ||
	    now.tv_sec - dm->trimmed_at >= TRIM_GAP_S)) {
		malloc_trim(0);
		dm->trim_due = false;
		dm->trimmed_at = now.tv_sec > 0 ? now.tv_sec : 1;
	}
}

static void
on_watch(WatchBatch *batch, void *arg)
{
	Daemon *dm = arg;
	LiveEvent *evs = NULL;

	if (dm->stopping)
		goto out;
	for (size_t i = 0; i < batch->n_notices; i++) {
		const WatchNotice *n = &batch->notices[i];
		PairRun *pr = find_root(dm->pairs, n->root);

		if (n->kind == WATCH_ROOT_RELEASED) {
			if (pr == NULL)
				pr = find_root(dm->retiring, n->root);
			if (pr != NULL)
				pr->watched = false;
			continue;
		}
		if (pr == NULL)
			continue;
		if (n->kind == WATCH_ROOT_READY && n->error == 0) {
			synclog_msg(LOG_LEVEL_INFO, "%s: watching %zu "
			    "directories under %s", pr->pair->name, n->dirs_placed,
			    pr->pair->source);
		} else if (n->error == -ENOSPC) {
			synclog_msg(LOG_LEVEL_ERROR, "%s: out of inotify "
			    "watches: %zu of %zu directories watched; raise "
			    "fs.inotify.max_user_watches by at least %zu "
			    "(sysctl); until then every destination is "
			    "compared every %d s", pr->pair->name, n->dirs_placed,
			    n->dirs_needed, n->dirs_needed - n->dirs_placed,
			    POLL_INTERVAL_MS / 1000);
			live_set_polling(pr->live, POLL_INTERVAL_MS);
		} else {
			synclog_msg(LOG_LEVEL_ERROR, "%s: cannot watch '%s': "
			    "%s; comparing every %d s instead", pr->pair->name,
			    pr->pair->source, strerror(-n->error),
			    POLL_INTERVAL_MS / 1000);
			live_set_polling(pr->live, POLL_INTERVAL_MS);
		}
		if (n->kind == WATCH_ROOT_READY)
			live_start(pr->live);
	}
	if (batch->overflow)
		for (PairRun *pr = dm->pairs; pr != NULL; pr = pr->next)
			live_on_overflow(pr->live);
	if (batch->n == 0)
		goto out;
	if ((evs = malloc(batch->n * sizeof *evs)) == NULL)
		goto out;
	/* Per pair, in the order inotify gave them. */
	for (PairRun *pr = dm->pairs; pr != NULL; pr = pr->next) {
		size_t k = 0;
		for (size_t i = 0; i < batch->n; i++) {
			const WatchEvent *e = &batch->events[i];
			if (e->root != pr->root)
				continue;
			evs[k].mask = e->mask;
			evs[k].cookie = e->cookie;
			evs[k].relpath = e->relpath;
			k++;
		}
		if (k > 0)
			live_on_events(pr->live, evs, k);
	}
out:
	free(evs);
	watcher_batch_free(batch);
}

static void
reload(Daemon *dm)
{
	Config *cfg = NULL;
	char *errors = NULL;
	ConfigRef *ref;
	PairRun *keep = NULL, *pr;
	int r;

	synclog_msg(LOG_LEVEL_INFO, "SIGHUP: reloading %s", dm->config_path);
	if ((r = config_load(dm->config_path, &cfg, &errors)) < 0) {
		/* One log line per problem, each FILE:LINE: message. */
		for (char *line = strtok(errors ? errors : "", "\n");
		    line != NULL; line = strtok(NULL, "\n"))
			synclog_msg(LOG_LEVEL_ERROR, "reload: %s", line);
		synclog_msg(LOG_LEVEL_ERROR, "reload failed: the running "
		    "configuration stays in force");
		free(errors);
		return;
	}
	if ((ref = calloc(1, sizeof *ref)) == NULL) {
		config_free(cfg);
		return;
	}
	ref->cfg = cfg;
	ref->refs = 1;
	synclog_set_level(cfg->log_level);
	/* Keep what is unchanged; retire the rest. */
	while ((pr = dm->pairs) != NULL) {
		const SyncPairConfig *np = config_find_sync(cfg, pr->pair->name);
		dm->pairs = pr->next;
		if (np != NULL && same_pair(pr->pair, np)) {
			pr->next = keep;
			keep = pr;
		} else {
			synclog_msg(LOG_LEVEL_INFO, "%s: %s", pr->pair->name,
			    np != NULL ? "changed: restarting it" : "removed");
			pair_retire(dm, pr);
		}
	}
	dm->pairs = keep;
	for (size_t i = 0; i < cfg->n_syncs; i++) {
		const SyncPairConfig *np = &cfg->syncs[i];
		bool running = false;
		for (pr = dm->pairs; pr != NULL; pr = pr->next)
			running |= strcmp(pr->pair->name, np->name) == 0;
		if (running)
			continue;
		synclog_msg(LOG_LEVEL_INFO, "%s: starting (%s -> %zu "
		    "destination%s)", np->name, np->source, np->n_destinations,
		    np->n_destinations == 1 ? "" : "s");
		if (pair_start(dm, ref, np) < 0)
			synclog_msg(LOG_LEVEL_ERROR, "%s: cannot start",
			    np->name);
	}
	ref_put(dm->current);
	dm->current = ref;
	synclog_msg(LOG_LEVEL_INFO, "reload done: %zu sync pair%s",
	    cfg->n_syncs, cfg->n_syncs == 1 ? "" : "s");
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	Daemon *dm = arg;

	(void)what;
	switch (sig) {
	case SIGHUP:
		reload(dm);
		break;
	case SIGUSR1: {
		int r = synclog_reopen();
		if (r < 0)
			synclog_msg(LOG_LEVEL_ERROR, "cannot reopen the log "
			    "file: %s", strerror(-r));
		else
			synclog_msg(LOG_LEVEL_INFO, "log file reopened");
		break;
	}
	default:
		synclog_msg(LOG_LEVEL_INFO, "%s received: stopping; copies in "
		    "progress finish or are removed", sig == SIGINT ?
		    "SIGINT" : "SIGTERM");
		dm->stopping = true;
		event_base_loopbreak(dm->base);
		break;
	}
}

int
daemon_run(Config *cfg)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1 };
	Daemon dm = { 0 };
	struct timeval tick = { 0, REAPER_INTERVAL_US };
	int r, status = 1;

	if ((dm.current = calloc(1, sizeof *dm.current)) == NULL ||
	    (dm.config_path = strdup(cfg->path)) == NULL) {
		config_free(cfg);
		free(dm.current);
		return 1;
	}
	dm.current->cfg = cfg;
	dm.current->refs = 1;
	if ((dm.base = event_base_new()) == NULL)
		goto out;
	if ((r = pool_new(dm.base, cfg->workers, &dm.pool)) < 0) {
		synclog_msg(LOG_LEVEL_ERROR, "cannot start %d workers: %s",
		    cfg->workers, strerror(-r));
		goto out;
	}
	if ((r = watcher_new(dm.base, on_watch, &dm, &dm.watcher)) < 0) {
		synclog_msg(LOG_LEVEL_ERROR, "cannot start the watcher: %s",
		    strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		dm.signals[i] = evsignal_new(dm.base, sigs[i], on_signal, &dm);
		if (dm.signals[i] == NULL || evsignal_add(dm.signals[i],
		    NULL) < 0)
			goto out;
	}
	dm.reaper = event_new(dm.base, -1, EV_PERSIST, on_reaper, &dm);
	if (dm.reaper == NULL || event_add(dm.reaper, &tick) < 0)
		goto out;
	synclog_msg(LOG_LEVEL_INFO, "treesyncd %s starting: %zu sync pair%s, "
	    "%d workers, delay %d ms, config %s", TREESYNC_VERSION,
	    cfg->n_syncs, cfg->n_syncs == 1 ? "" : "s", cfg->workers,
	    cfg->delay_ms, cfg->path);
	for (size_t i = 0; i < cfg->n_syncs; i++)
		if (pair_start(&dm, dm.current, &cfg->syncs[i]) < 0)
			goto out;
	event_base_dispatch(dm.base);
	status = 0;
out:
	for (PairRun *pr = dm.pairs; pr != NULL; pr = pr->next)
		live_stop(pr->live);
	/* Running jobs finish (a copy lands or its temporary goes);
	 * queued ones are cancelled. */
	watcher_free(dm.watcher);
	pool_free(dm.pool);
	while (dm.pairs != NULL) {
		PairRun *pr = dm.pairs;
		dm.pairs = pr->next;
		pair_free(pr);
	}
	while (dm.retiring != NULL) {
		PairRun *pr = dm.retiring;
		dm.retiring = pr->next;
		pair_free(pr);
	}
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
		if (dm.signals[i] != NULL)
			event_free(dm.signals[i]);
	if (dm.reaper != NULL)
		event_free(dm.reaper);
	if (dm.base != NULL)
		event_base_free(dm.base);
	ref_put(dm.current);
	free(dm.config_path);
	if (status == 0)
		synclog_msg(LOG_LEVEL_INFO, "treesyncd stopped");
	return status;
}
