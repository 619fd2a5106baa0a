/*
 * daemon-reload — the reload path of the live daemon (see daemon.c's
 * DESIGN): a config loaded off the reactor (reload.h) is swapped in here,
 * on the reactor: pairs kept, retired or started, the control socket
 * moved (and given control_socket_group), the metrics endpoint started,
 * moved or stopped, the clients that asked answered. Reactor thread only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "daemon-int.h"
#include "service/notify.h"
#include "util/alloc.h"
#include "util/synclog.h"

static bool
same_pair(const SyncPairConfig *a, const SyncPairConfig *b)
{
	if (strcmp(a->name, b->name) != 0 || strcmp(a->source, b->source) != 0
	    || a->delete != b->delete || a->compare != b->compare ||
	    a->max_delete.kind != b->max_delete.kind ||
	    a->max_delete.value != b->max_delete.value ||
	    a->n_destinations != b->n_destinations ||
	    !exclude_equal(a->exclude, b->exclude))
		return false;
	for (size_t i = 0; i < a->n_destinations; i++)
		if (strcmp(a->destinations[i], b->destinations[i]) != 0 ||
		    !config_remote_same(a->dest_remotes[i], b->dest_remotes[i]))
			return false;
	return true;
}


/* What a control socket's message says for control_new's error r. */
static const char *
control_error(int r)
{
	return r == -EADDRINUSE ? "another treesyncd answers on it" :
	    r == -EEXIST ? "a file that is not a socket is in the way" :
	    strerror(-r);
}

/*
 * Opens the new control socket of a reload; the old one stops when that
 * worked and is freed once its last client is gone (free_idle_controls).
 * false when the socket could not be moved.
 */
static bool
move_control(Daemon *dm, const char *path, struct evbuffer *answer)
{
	Control *c;
	int r;

	if (dm->control != NULL && strcmp(control_path(dm->control), path) == 0)
		return true;
	if ((r = control_new(dm->base, path, on_control, dm, &c)) < 0) {
		synclog_msg(LOG_LEVEL_ERROR, "reload: cannot open the control "
		    "socket '%s': %s; staying on '%s'", path, control_error(r),
		    dm->control ? control_path(dm->control) : "(none)");
		evbuffer_add_printf(answer, "cannot move the control socket to "
		    "'%s': %s; it stays at '%s'\n", path, control_error(r),
		    dm->control ? control_path(dm->control) : "(none)");
		return false;
	}
	synclog_msg(LOG_LEVEL_INFO, "control socket moved to %s", path);
	/* We may be inside a handler of the old one: stop it, free later. */
	control_stop(dm->control);
	xgrow(&dm->retired_controls, &dm->retired_cap,
	    dm->n_retired_controls + 1, sizeof *dm->retired_controls, 4);
	dm->retired_controls[dm->n_retired_controls++] = dm->control;
	dm->control = c;
	return true;
}

void
free_idle_controls(Daemon *dm)
{
	size_t k = 0;

	for (size_t i = 0; i < dm->n_retired_controls; i++) {
		if (control_clients(dm->retired_controls[i]) == 0)
			control_free(dm->retired_controls[i]);
		else
			dm->retired_controls[k++] = dm->retired_controls[i];
	}
	dm->n_retired_controls = k;
}

/*
 * control_socket_group on the socket file; when the setting went away
 * (was_set), the daemon's own group again. Without it the file keeps the
 * group it was made with.
 */
void
apply_socket_group(Daemon *dm, const Config *cfg, bool was_set)
{
	gid_t gid = cfg->control_socket_group != NULL ?
	    cfg->control_socket_gid : getegid();
	int r;

	if (cfg->control_socket_group == NULL && !was_set)
		return;
	if (dm->control != NULL && (r = control_set_group(dm->control,
	    gid)) < 0)
		synclog_msg(LOG_LEVEL_ERROR, "cannot give the control socket "
		    "'%s' the group %s: %s; only root may connect",
		    control_path(dm->control), cfg->control_socket_group ?
		    cfg->control_socket_group : "of the daemon", strerror(-r));
}

/*
 * Starts, moves or stops the Prometheus endpoint as cfg says; on a reload
 * (answer may be NULL then) a new address that cannot be had keeps the
 * old one. 0, or -errno when the endpoint cfg names is not listening.
 */
int
move_metrics(Daemon *dm, const Config *cfg, bool reloading,
    struct evbuffer *answer)
{
	const char *was = dm->metrics ? metrics_http_listen(dm->metrics) : NULL;
	const struct sockaddr *sa = (const struct sockaddr *)&cfg->metrics_addr;
	MetricsHttp *m = NULL;
	int r;

	if (cfg->metrics_listen == NULL) {
		if (was != NULL)
			synclog_msg(LOG_LEVEL_INFO, "metrics endpoint on %s "
			    "stopped (no metrics_listen)", was);
		metrics_http_free(dm->metrics);
		dm->metrics = NULL;
		return 0;
	}
	if (was != NULL && strcmp(was, cfg->metrics_listen) == 0)
		return 0;
	r = metrics_http_new(dm->base, cfg->metrics_listen, sa,
	    cfg->metrics_addrlen, render_metrics, dm, &m);
	if (r == -EADDRINUSE && dm->metrics != NULL) {
		/* Perhaps we hold the port ourselves ("127.0.0.1:9851" to
		 * "0.0.0.0:9851"): let it go, and take it back on failure. */
		char *old = strdup(was);
		MetricsHttp *back = NULL;
		struct sockaddr_storage osa;
		socklen_t olen;
		const struct sockaddr *held = metrics_http_addr(dm->metrics,
		    &olen);

		memcpy(&osa, held, olen);
		metrics_http_free(dm->metrics);
		dm->metrics = NULL;
		r = metrics_http_new(dm->base, cfg->metrics_listen, sa,
		    cfg->metrics_addrlen, render_metrics, dm, &m);
		if (r < 0 && old != NULL && metrics_http_new(dm->base, old,
		    (const struct sockaddr *)&osa, olen, render_metrics, dm,
		    &back) == 0)
			dm->metrics = back;
		free(old);
		was = dm->metrics ? metrics_http_listen(dm->metrics) : NULL;
	}
	if (r < 0) {
		synclog_msg(LOG_LEVEL_ERROR, "%scannot listen on %s "
		    "(metrics_listen): %s; %s%s", reloading ? "reload: " : "",
		    cfg->metrics_listen, strerror(-r), reloading ?
		    "the metrics endpoint stays on " : "not starting",
		    reloading ? (was ? was : "(none)") : "");
		if (answer != NULL)
			evbuffer_add_printf(answer, "cannot listen on %s "
			    "(metrics_listen): %s\n", cfg->metrics_listen,
			    strerror(-r));
		return r;
	}
	metrics_http_free(dm->metrics);
	dm->metrics = m;
	synclog_msg(LOG_LEVEL_INFO, "metrics endpoint: http://%s/metrics",
	    cfg->metrics_listen);
	return 0;
}

/*
 * A loaded config, swapped in on the reactor. 0, or -1 when the file is
 * invalid (the running configuration stays) or part of the new one could
 * not be put in force (a pair that cannot start, a control socket that
 * cannot move). answer gets what the operator should read: the FILE:LINE
 * problems, or what changed.
 */
static int
reload_apply(Daemon *dm, int r, Config *cfg, char *errors,
    struct evbuffer *answer)
{
	ConfigRef *ref;
	PairRun *keep = NULL, *pr;
	bool had_group;
	int status = 0;

	if (r < 0) {
		evbuffer_add_printf(answer, "%s is not valid; the running "
		    "configuration stays in force:\n%s", dm->config_path,
		    errors ? errors : "");
		/* One log line per problem, each FILE:LINE: message. */
		for (char *line = strtok(errors ? errors : "", "\n");
		    line != NULL; line = strtok(NULL, "\n"))
			synclog_msg(LOG_LEVEL_ERROR, "reload: %s", line);
		synclog_msg(LOG_LEVEL_ERROR, "reload failed: the running "
		    "configuration stays in force");
		free(errors);
		notify_ready();
		return -1;
	}
	ref = xcalloc(1, sizeof *ref);
	ref->cfg = cfg;
	ref->refs = 1;
	synclog_set_level(cfg->log_level);
	/* Keep what is unchanged; retire the rest. */
	while ((pr = dm->pairs) != NULL) {
		const SyncPairConfig *np = config_find_sync(cfg, pr->pair->name);
		dm->pairs = pr->next;
		if (np != NULL && same_pair(pr->pair, np) &&
		    pr->ref->cfg->watch == cfg->watch) {
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
		if (pair_start(dm, ref, np) < 0) {
			synclog_msg(LOG_LEVEL_ERROR, "%s: cannot start",
			    np->name);
			evbuffer_add_printf(answer, "%s: cannot start\n",
			    np->name);
			status = -1;
		}
	}
	if (move_metrics(dm, cfg, true, answer) < 0)
		status = -1;
	had_group = dm->current->cfg->control_socket_group != NULL;
	ref_put(dm->current);
	dm->current = ref;
	if (!move_control(dm, cfg->control_socket, answer))
		status = -1;
	apply_socket_group(dm, cfg, had_group);
	if (cfg->n_syncs == 0)
		synclog_msg(LOG_LEVEL_INFO, "no sync pairs in %s: idle until "
		    "a reload brings one", dm->config_path);
	synclog_msg(LOG_LEVEL_INFO, "reload done: %zu sync pair%s",
	    cfg->n_syncs, cfg->n_syncs == 1 ? "" : "s");
	evbuffer_add_printf(answer, "reloaded %s: %zu sync pair%s%s\n",
	    dm->config_path, cfg->n_syncs, cfg->n_syncs == 1 ? "" : "s",
	    status < 0 ? "; the new configuration is in force except for "
	    "what is said above" : "");
	/* New pairs place their watches in the background; systemd's
	 * reload is done once the new config is in force. */
	update_status(dm);
	notify_ready();
	return status;
}

/* Answers every client waiting for the reload that just ended. */
static void
answer_waiters(Daemon *dm, int ok, struct evbuffer *body)
{
	for (size_t i = 0; i < dm->waiting.n; i++)
		control_answer(dm->waiting.v[i], ok, body);
	dm->waiting.n = 0;
}

/* Starts reading the file on the loader's thread (why: for the log). */
static void
reload_begin(Daemon *dm, const char *why)
{
	struct evbuffer *body;
	int r;

	synclog_msg(LOG_LEVEL_INFO, "%s: reloading %s", why, dm->config_path);
	notify_reloading();
	if ((r = reload_start(dm->loader, dm->config_path)) == 0)
		return;
	synclog_msg(LOG_LEVEL_ERROR, "reload failed: cannot start reading %s: "
	    "%s; the running configuration stays in force", dm->config_path,
	    strerror(-r));
	if ((body = evbuffer_new()) == NULL)
		xoom();
	evbuffer_add_printf(body, "cannot start reading %s: %s; the running "
	    "configuration stays in force\n", dm->config_path, strerror(-r));
	answer_waiters(dm, -1, body);
	evbuffer_free(body);
	notify_ready();
}

/* The loader's result, on the reactor: swap it in, answer, go again. */
void
on_reload_loaded(int r, Config *cfg, char *errors, void *arg)
{
	Daemon *dm = arg;
	struct evbuffer *body = evbuffer_new();
	ControlWaiters next;
	int ok;

	if (body == NULL)
		xoom();
	ok = reload_apply(dm, r, cfg, errors, body);
	answer_waiters(dm, ok, body);
	evbuffer_free(body);
	/* Those who asked meanwhile get the next load: the file may have
	 * changed after this one read it. */
	next = dm->waiting;
	dm->waiting = dm->waiting_next;
	dm->waiting_next = next;
	if (dm->reload_again) {
		dm->reload_again = false;
		reload_begin(dm, "again (asked while the last reload ran)");
	}
}

/*
 * SIGHUP (cl NULL) or treesyncctl reload (cl answered when it is done):
 * the file is read and resolved off the reactor, the new config swapped
 * in when it is back. While a load runs, a request waits for the next.
 */
int
reload_request(Daemon *dm, ControlClient *cl)
{
	bool busy = reload_running(dm->loader);
	ControlWaiters *w = busy ? &dm->waiting_next : &dm->waiting;

	if (cl != NULL) {
		xgrow(&w->v, &w->cap, w->n + 1, sizeof *w->v, 4);
		w->v[w->n++] = cl;
	}
	if (busy)
		dm->reload_again = true;
	else
		reload_begin(dm, cl != NULL ? "treesyncctl reload" : "SIGHUP");
	return CONTROL_LATER;
}
