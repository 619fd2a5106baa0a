/*
 * daemon — see include/service/daemon.h.
 *
 * DESIGN
 * Start-up: for each sync pair, watches first (watcher_add_root), then,
 * when the watcher says they are in place, the pair's first full pass
 * (live_start); events that arrive meanwhile wait in the pair's pending
 * table, so nothing changed during the start-up scan is lost.
 *
 * Reload (SIGHUP, treesyncctl reload; daemon-reload.c): the new file is
 * read, parsed and
 * its paths resolved on a thread of its own (reload.h), never on the
 * reactor: a hung NFS path must not freeze the loop or trip the
 * watchdog. Meanwhile the pairs sync and the socket answers; a request
 * for another reload waits for the next load. Back on the reactor, when
 * the file is invalid, the problems are logged and nothing changes. Otherwise pairs
 * whose settings are unchanged keep running untouched; removed or changed
 * ones are stopped and retired (freed once their jobs are back), and new
 * or changed ones start. A started pair's first pass waits (reaper)
 * while a retired pair that writes one of its destinations still has
 * jobs out: their late results would otherwise land after the compare
 * that was to settle them. A pair whose source came back after being
 * unmounted or replaced is restarted the same way (its watches were
 * lost). A Config stays alive while any running pair points into it
 * (ConfigRef).
 *
 * Control socket: requests from treesyncctl are answered here, on the
 * reactor (control.c serves the socket, metrics.c renders). A reload that
 * changes control_socket opens the new socket first and stops the old
 * one only when that worked; control_socket_group is applied to it each
 * time. metrics_listen (metrics_http.c) is started, moved and stopped
 * the same way; its GET /metrics renders the same snapshot as
 * treesyncctl metrics.
 * systemd (notify.c): READY=1 once every pair's watches are in place and
 * its first pass started (or it fell back to polling); RELOADING=1 ..
 * READY=1 around a reload; a STATUS= line refreshed at most once a second
 * by the reaper timer. TREESYNC_TEST_HOOKS=1 makes SIGUSR2 stall the
 * reactor, so a test can watch systemd's watchdog restart us.
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

#include <event2/buffer.h>
#include <event2/event.h>

#include "service/control.h"
#include "dest/dest.h"
#include "engine/copy.h"
#include "service/daemon.h"
#include "service/diff.h"
#include "live/live.h"
#include "service/metrics.h"
#include "service/metrics_http.h"
#include "service/notify.h"
#include "service/reload.h"
#include "engine/pool.h"
#include "util/alloc.h"
#include "util/synclog.h"
#include "watch/watcher.h"

#include "daemon-int.h"

#ifndef TREESYNC_VERSION
#define TREESYNC_VERSION "unknown"
#endif

#define POLL_INTERVAL_MS 10000
#define REAPER_INTERVAL_US 250000	/* also how soon an idle heap is trimmed */
#define TRIM_GAP_S 2		/* malloc_trim costs ~4 ms at 50,000 dirs */

void
ref_put(ConfigRef *ref)
{
	if (ref != NULL && --ref->refs == 0) {
		config_free(ref->cfg);
		free(ref);
	}
}

/*
 * The pair's source root failed its guard check and is sound again: its
 * watches went with the old root (unmounted, deleted), so the pair is
 * restarted from the loop (watches first, then a full pass).
 */
static void
on_source_back(void *arg)
{
	PairRun *pr = arg;

	pr->restart = true;
	event_active(pr->dm->restarter, 0, 0);
}

/*
 * A retired pair (reload, restart) whose jobs are still out and that
 * writes one of pr's destinations: pr's first pass must not compare
 * before those jobs land, or it would take their late results for the
 * truth and never look again.
 */
static bool
retired_jobs_in_the_way(const Daemon *dm, const PairRun *pr)
{
	for (const PairRun *o = dm->retiring; o != NULL; o = o->next) {
		if (live_jobs_out(o->live) == 0)
			continue;
		for (size_t i = 0; i < o->pair->n_destinations; i++)
			for (size_t j = 0; j < pr->pair->n_destinations; j++)
				if (strcmp(o->pair->destinations[i],
				    pr->pair->destinations[j]) == 0)
					return true;
	}
	return false;
}

/* The pair's first pass, now or (start_waiting) from the reaper. */
static void
pair_first_pass(Daemon *dm, PairRun *pr)
{
	if (retired_jobs_in_the_way(dm, pr)) {
		pr->start_waiting = true;
		return;
	}
	pr->start_waiting = false;
	pr->started = true;
	live_start(pr->live);
}

int
pair_start(Daemon *dm, ConfigRef *ref, const SyncPairConfig *pair)
{
	LiveOptions opt = { .delay_ms = ref->cfg->delay_ms,
	    .preserve_owner = geteuid() == 0, .source_back = on_source_back };
	PairRun *pr = calloc(1, sizeof *pr);
	Dest **dests = calloc(pair->n_destinations ? pair->n_destinations : 1,
	    sizeof *dests);
	size_t made = 0;
	int r = -ENOMEM;

	if (pr == NULL || dests == NULL)
		goto fail;
	pr->dm = dm;
	opt.source_back_arg = pr;
	for (; made < pair->n_destinations; made++)
		if ((r = dest_new(dm->base, dm->pool, pair,
		    pair->destinations[made], &dests[made])) < 0)
			goto fail;
	if ((r = live_new(dm->base, pair, dests, &opt, &pr->live)) < 0)
		goto fail;
	free(dests);
	pr->ref = ref;
	ref->refs++;
	pr->pair = pair;
	pr->root = dm->next_root++;
	pr->next = dm->pairs;
	dm->pairs = pr;
	/* Watches first; the first pass starts when they are in place. */
	r = watcher_add_root(dm->watcher, pr->root, pair->source,
	    pair->exclude, ref->cfg->watch);
	pr->watched = r == 0;
	if (r < 0)
		synclog_msg(LOG_LEVEL_ERROR, "%s: cannot watch '%s': %s; "
		    "comparing every %d s instead", pair->name, pair->source,
		    strerror(-r), POLL_INTERVAL_MS / 1000);
	if (r < 0) {
		pair_first_pass(dm, pr);
		live_set_polling(pr->live, POLL_INTERVAL_MS);
	}
	return 0;
fail:
	while (made-- > 0)
		dest_free(dests[made]);
	free(dests);
	free(pr);
	return r;
}

/* Stops a pair; it is freed by the reaper once its jobs are back. */
void
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

static int snapshot(Daemon *dm, DaemonStatus *st);
static void snapshot_release(DaemonStatus *st);

/* The STATUS= line, from the snapshot every read-out renders. */
void
update_status(Daemon *dm)
{
	DaemonStatus st;
	char line[256];		/* notify.c keeps the last one in as much */

	if (snapshot(dm, &st) == 0) {
		metrics_status_line(&st, line, sizeof line);
		notify_status(line);
	}
	snapshot_release(&st);
}

/* READY=1 once every pair has its watches and its first pass. */
static void
check_ready(Daemon *dm)
{
	if (dm->ready || dm->stopping)
		return;
	for (PairRun *pr = dm->pairs; pr != NULL; pr = pr->next)
		if (!pr->started)
			return;
	dm->ready = true;
	/* The line first, written (the log has a thread of its own): in the
	 * journal it then precedes systemd's "Started", the order an operator
	 * reads. Bounded: a stalled log delays READY by 1 s at most. */
	synclog_msg(LOG_LEVEL_INFO, "ready: watches in place, start-up sync "
	    "under way");
	(void)synclog_flush(1000);
	update_status(dm);
	notify_ready();
}

/*
 * Every REAPER_INTERVAL_US: refreshes the STATUS line (sent only when it
 * changed), frees retired pairs whose last job has come back, and trims the heap
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
	update_status(dm);
	free_idle_controls(dm);
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
	for (PairRun *pr = dm->pairs; pr != NULL; pr = pr->next) {
		if (pr->start_waiting)
			pair_first_pass(dm, pr);
		out += live_jobs_out(pr->live);
	}
	check_ready(dm);
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
on_restart(evutil_socket_t fd, short what, void *arg)
{
	Daemon *dm = arg;
	PairRun **pp = &dm->pairs;

	(void)fd;
	(void)what;
	while (*pp != NULL) {
		PairRun *pr = *pp;
		if (!pr->restart) {
			pp = &pr->next;
			continue;
		}
		*pp = pr->next;
		synclog_msg(LOG_LEVEL_INFO, "%s: source is back: watching it "
		    "again", pr->pair->name);
		pair_retire(dm, pr);
		if (pair_start(dm, pr->ref, pr->pair) < 0)
			synclog_msg(LOG_LEVEL_ERROR, "%s: cannot start",
			    pr->pair->name);
		pp = &dm->pairs;
	}
}

/* The one line that says a pair is watched, and how (and why so). */
static void
log_watching(const PairRun *pr, const WatchNotice *n)
{
	const char *how = n->mode == WATCH_FANOTIFY ? "fanotify, a mark on "
	    "its whole file system" : "inotify, a watch per directory";

	if (n->fanotify_error != 0)
		synclog_msg(LOG_LEVEL_INFO, "%s: watching %zu directories "
		    "under %s (inotify: fanotify is not possible here: %s)",
		    pr->pair->name, n->dirs_placed, pr->pair->source,
		    strerror(-n->fanotify_error));
	else
		synclog_msg(LOG_LEVEL_INFO, "%s: watching %zu directories "
		    "under %s (%s)", pr->pair->name, n->dirs_placed,
		    pr->pair->source, how);
}

/* watch = "fanotify" where no mark can be placed: said, and why. */
static bool
fanotify_refused(const PairRun *pr, const WatchNotice *n)
{
	if (n->kind != WATCH_ROOT_READY || n->dirs_placed != 0 ||
	    pr->ref->cfg->watch != WATCH_FANOTIFY)
		return false;
	synclog_msg(LOG_LEVEL_ERROR, "%s: cannot watch '%s' with fanotify "
	    "(watch = \"fanotify\"): %s; watch = \"auto\" or \"inotify\" "
	    "would use inotify; comparing every %d s instead", pr->pair->name,
	    pr->pair->source, strerror(-n->error), POLL_INTERVAL_MS / 1000);
	return true;
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
		if (n->kind == WATCH_ROOT_READY)
			pr->watches = n->dirs_placed;
		if (n->kind == WATCH_ROOT_READY && n->error == 0) {
			log_watching(pr, n);
		} else if (fanotify_refused(pr, n)) {
			live_set_polling(pr->live, POLL_INTERVAL_MS);
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
			pair_first_pass(dm, pr);
	}
	for (size_t i = 0; i < batch->n_counts; i++) {
		PairRun *pr = find_root(dm->pairs, batch->counts[i].root);
		if (pr != NULL)
			pr->watches = batch->counts[i].watches;
	}
	check_ready(dm);
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

/* A snapshot of every running pair, for metrics.c. */
static int
snapshot(Daemon *dm, DaemonStatus *st)
{
	size_t n = 0;

	memset(st, 0, sizeof *st);
	st->version = TREESYNC_VERSION;
	st->pid = getpid();
	st->started = dm->started;
	st->now = time(NULL);
	st->config_path = dm->config_path;
	st->control_socket = dm->control ? control_path(dm->control) : "";
	for (PairRun *pr = dm->pairs; pr != NULL; pr = pr->next)
		n++;
	if ((st->pairs = calloc(n ? n : 1, sizeof *st->pairs)) == NULL)
		return -ENOMEM;
	/* dm->pairs is newest first: list them in config order instead. */
	for (size_t i = 0; i < dm->current->cfg->n_syncs; i++) {
		const char *name = dm->current->cfg->syncs[i].name;
		for (PairRun *pr = dm->pairs; pr != NULL; pr = pr->next) {
			PairStatus *ps = &st->pairs[st->n_pairs];
			if (strcmp(pr->pair->name, name) != 0)
				continue;
			if (live_snapshot(pr->live, &ps->live) < 0)
				return -ENOMEM;
			ps->name = pr->pair->name;
			ps->source = pr->pair->source;
			ps->watches = pr->watches;
			st->n_pairs++;
			break;
		}
	}
	return 0;
}

static void
snapshot_release(DaemonStatus *st)
{
	for (size_t i = 0; i < st->n_pairs; i++)
		live_snapshot_release(&st->pairs[i].live);
	free(st->pairs);
}

/* GET /metrics (metrics_http.c): what treesyncctl metrics answers. */
int
render_metrics(struct evbuffer *out, void *arg)
{
	DaemonStatus st;
	int r;

	if ((r = snapshot(arg, &st)) == 0)
		metrics_prometheus(&st, out);
	snapshot_release(&st);
	return r;
}

/* A diff's hold on its pair's config, let go when it is done. */
static void
diff_release(void *arg)
{
	ref_put(arg);
}

/* treesyncctl diff NAME: dry-run passes beside the pair, answered later. */
static int
start_diff(Daemon *dm, PairRun *pr, ControlClient *client,
    struct evbuffer *out)
{
	FullSyncOptions opt;

	live_pass_options(pr->live, &opt);
	pr->ref->refs++;
	if (diff_start(&dm->diffs, dm->pool, pr->pair, &opt, client,
	    diff_release, pr->ref) < 0) {
		ref_put(pr->ref);
		evbuffer_add_printf(out, "out of memory\n");
		return -1;
	}
	return CONTROL_LATER;
}

/* treesyncctl's requests (control.c parsed them). */
int
on_control(const ControlRequest *req, ControlClient *cl,
    struct evbuffer *out, void *arg)
{
	Daemon *dm = arg;
	DaemonStatus st;
	PairRun *pr = NULL;

	if (req->name[0] != '\0') {
		for (pr = dm->pairs; pr != NULL; pr = pr->next)
			if (strcmp(pr->pair->name, req->name) == 0)
				break;
		if (pr == NULL) {
			evbuffer_add_printf(out, "no sync pair named '%s'\n",
			    req->name);
			return -1;
		}
	}
	switch (req->command) {
	case CONTROL_STATUS:
	case CONTROL_METRICS:
		if (snapshot(dm, &st) < 0) {
			snapshot_release(&st);
			evbuffer_add_printf(out, "out of memory\n");
			return -1;
		}
		if (req->command == CONTROL_METRICS)
			metrics_prometheus(&st, out);
		else if (req->json)
			metrics_status_json(&st, out);
		else
			metrics_status_text(&st, out);
		snapshot_release(&st);
		return 0;
	case CONTROL_PAUSE:
		live_pause(pr->live);
		synclog_msg(LOG_LEVEL_INFO, "%s: paused by treesyncctl; changes "
		    "are recorded, not propagated", pr->pair->name);
		evbuffer_add_printf(out, "%s: paused\n", pr->pair->name);
		return 0;
	case CONTROL_RESUME:
		live_resume(pr->live);
		synclog_msg(LOG_LEVEL_INFO, "%s: resumed by treesyncctl",
		    pr->pair->name);
		evbuffer_add_printf(out, "%s: resumed\n", pr->pair->name);
		return 0;
	case CONTROL_RESYNC: {
		LiveStats ls;
		bool paused = live_snapshot(pr->live, &ls) == 0 && ls.paused;
		live_snapshot_release(&ls);
		live_resync(pr->live, req->force);
		synclog_msg(LOG_LEVEL_INFO, "%s: full compare requested by "
		    "treesyncctl%s", pr->pair->name, req->force ? " (--force)" :
		    "");
		evbuffer_add_printf(out, "%s: full compare of %zu destination%s "
		    "%s\n", pr->pair->name, pr->pair->n_destinations,
		    pr->pair->n_destinations == 1 ? "" : "s", paused ?
		    "queued: the pair is paused, it runs at resume" :
		    "started");
		return 0;
	}
	case CONTROL_RELOAD:
		return reload_request(dm, cl);
	case CONTROL_DIFF:
		return start_diff(dm, pr, cl, out);
	}
	return -1;
}

static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
	Daemon *dm = arg;

	(void)what;
	switch (sig) {
	case SIGHUP:
		reload_request(dm, NULL);
		break;
	case SIGUSR1:
		/* The writer reopens it after the lines before, and says so. */
		synclog_reopen();
		break;
	case SIGUSR2:
		/* Test hook only (TREESYNC_TEST_HOOKS=1): a hung reactor,
		 * for the systemd watchdog test. */
		synclog_msg(LOG_LEVEL_WARN, "test hook: SIGUSR2 stalls the "
		    "reactor for 600 s");
		sleep(600);
		break;
	default:
		/* First: a huge copy in flight stops within a step rather
		 * than holding up the exit (its temporary is removed). */
		copy_abandon();
		synclog_msg(LOG_LEVEL_INFO, "%s received: stopping; copies in "
		    "progress are abandoned (their temporaries removed)",
		    sig == SIGINT ? "SIGINT" : "SIGTERM");
		dm->stopping = true;
		notify_stopping();
		event_base_loopbreak(dm->base);
		break;
	}
}

int
daemon_run(Config *cfg)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2 };
	const char *hooks = getenv("TREESYNC_TEST_HOOKS");
	size_t n_sigs = sizeof sigs / sizeof sigs[0];
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
	if ((r = reload_loader_new(dm.base, on_reload_loaded, &dm,
	    &dm.loader)) < 0) {
		synclog_msg(LOG_LEVEL_ERROR, "cannot set up reloads: %s",
		    strerror(-r));
		goto out;
	}
	if ((r = watcher_new(dm.base, on_watch, &dm, &dm.watcher)) < 0) {
		synclog_msg(LOG_LEVEL_ERROR, "cannot start the watcher: %s",
		    strerror(-r));
		goto out;
	}
	if (hooks == NULL || strcmp(hooks, "1") != 0)
		n_sigs--;	/* SIGUSR2 is a test hook only */
	for (size_t i = 0; i < n_sigs; i++) {
		dm.signals[i] = evsignal_new(dm.base, sigs[i], on_signal, &dm);
		if (dm.signals[i] == NULL || evsignal_add(dm.signals[i],
		    NULL) < 0)
			goto out;
	}
	dm.restarter = event_new(dm.base, -1, 0, on_restart, &dm);
	if (dm.restarter == NULL)
		goto out;
	dm.reaper = event_new(dm.base, -1, EV_PERSIST, on_reaper, &dm);
	if (dm.reaper == NULL || event_add(dm.reaper, &tick) < 0)
		goto out;
	dm.started = time(NULL);
	if ((r = control_new(dm.base, cfg->control_socket, on_control, &dm,
	    &dm.control)) < 0) {
		synclog_msg(LOG_LEVEL_ERROR, "cannot open the control socket "
		    "'%s': %s; not starting (set control_socket in %s to "
		    "another path)", cfg->control_socket, r == -EADDRINUSE ?
		    "another treesyncd answers on it" : r == -EEXIST ?
		    "a file that is not a socket is in the way" :
		    strerror(-r), cfg->path);
		goto out;
	}
	apply_socket_group(&dm, cfg, false);
	if (move_metrics(&dm, cfg, false, NULL) < 0)
		goto out;
	if ((r = notify_init(dm.base)) < 0) {
		synclog_msg(LOG_LEVEL_ERROR, "cannot start the systemd "
		    "watchdog timer: %s", strerror(-r));
		goto out;
	}
	synclog_msg(LOG_LEVEL_INFO, "treesyncd %s starting: %zu sync pair%s, "
	    "%d workers, delay %d ms, config %s", TREESYNC_VERSION,
	    cfg->n_syncs, cfg->n_syncs == 1 ? "" : "s", cfg->workers,
	    cfg->delay_ms, cfg->path);
	if (cfg->n_syncs == 0)
		synclog_msg(LOG_LEVEL_INFO, "no sync pairs in %s: idle until "
		    "a reload brings one", cfg->path);
	for (size_t i = 0; i < cfg->n_syncs; i++)
		if (pair_start(&dm, dm.current, &cfg->syncs[i]) < 0)
			goto out;
	check_ready(&dm);	/* every pair may have fallen back to polling */
	event_base_dispatch(dm.base);
	status = 0;
out:
	/* A load still reading is abandoned (its thread cleans up); its
	 * waiting clients go with their sockets. */
	reload_loader_free(dm.loader);
	free(dm.waiting.v);
	free(dm.waiting_next.v);
	metrics_http_free(dm.metrics);
	control_free(dm.control);
	for (size_t i = 0; i < dm.n_retired_controls; i++)
		control_free(dm.retired_controls[i]);
	free(dm.retired_controls);
	for (PairRun *pr = dm.pairs; pr != NULL; pr = pr->next)
		live_stop(pr->live);
	diff_stop_all(dm.diffs);
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
	diff_free_all(&dm.diffs);
	notify_free();
	for (size_t i = 0; i < n_sigs; i++)
		if (dm.signals[i] != NULL)
			event_free(dm.signals[i]);
	if (dm.reaper != NULL)
		event_free(dm.reaper);
	if (dm.restarter != NULL)
		event_free(dm.restarter);
	if (dm.base != NULL)
		event_base_free(dm.base);
	ref_put(dm.current);
	free(dm.config_path);
	if (status == 0)
		synclog_msg(LOG_LEVEL_INFO, "treesyncd stopped");
	return status;
}
