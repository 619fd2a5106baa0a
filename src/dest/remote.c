/*
 * remote — see include/dest/remote.h. This file: the seam's entry
 * points, the queue and its lanes, the host's state and the ops session;
 * batches are remote-batch.c's, compares remote-compare.c's, the look at
 * the source remote-worker.c's (remote-int.h).
 *
 * DESIGN
 * Requests (batches, renames, compares) wait in one queue and start in
 * the order they came in the "small" lane: up to REMOTE_SMALL_RUNS
 * batches side by side, a rename or a compare alone (live hands those out
 * alone too). Two batches in one directory each set its mtime last, from
 * the source as they read it; one that read it before an entry changed
 * there is followed by that change's own event for the directory (or by
 * entries_changed), so the last word is the source's.
 * A batch that holds a big file (REMOTE_BIG_BYTES) hands its other paths
 * back (skipped: the caller re-batches them at once) and moves to the
 * "big" lane, where it runs beside the small lane without touching any
 * parent's attributes (--no-implied-dirs; its parents come back as
 * entries_changed). So small files never wait behind a big one.
 *
 * A batch: (1) a look at the source on a worker (remote-worker.c: the
 * guard check, lstat of each path, the parents of those that exist);
 * (2) the paths that left the source as DELETE ops, pipelined, parents
 * before children (a path under one being deleted goes with it); (3) one
 * rsync run of the paths that exist plus their parents (so directory
 * mtimes travel in the same run), names on stdin, hard-link groups whole
 * in it; its itemized lines say what was done to which path, its stderr
 * which path failed. Renames are RENAME ops, in order, before anything
 * queued behind them. A compare is one recursive rsync run with the
 * pair's excludes compiled to filters (a subtree: listed with -r, so the
 * pinned root stays the run's destination).
 *
 * The host's connection and the ops session come first: a request waits
 * while the host connects; once the host is away every request waiting
 * or running comes back DEST_ERR_AWAY (and new ones at once), and the
 * destination says it is away (dest_changed) until the host is back and
 * a session has pinned the root again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "dest/proc.h"
#include "dest/remote-host.h"
#include "dest/remote-rsync.h"
#include "dest/remote.h"
#include "dest/rsync-filter.h"
#include "engine/fsutil.h"
#include "remote-int.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/map.h"
#include "util/path.h"
#include "util/synclog.h"

/* ---- state ---------------------------------------------------------------- */

static bool
host_away(const RemoteDest *rd)
{
	return remote_host_state(rd->host) == REMOTE_HOST_AWAY ||
	    rd->root_changed;
}

static void fail_waiting(RemoteDest *rd);

/* Says it when availability flips (dest_changed, from the loop's
 * events only: every caller is a completion or a child's event). */
void
remote_update_away(RemoteDest *rd)
{
	/* Once away, back only when a session has pinned the root again
	 * (not when the host merely starts connecting). */
	bool away = host_away(rd) || (rd->away && !rd->session_ready);

	if (away == rd->away)
		return;
	rd->away = away;
	if (away) {
		rd->away_since = rd->root_changed ? time(NULL) :
		    remote_host_away_since(rd->host);
		if (rd->away_since == 0)
			rd->away_since = time(NULL);
		fail_waiting(rd);
	} else {
		rd->away_since = 0;
	}
	dest_changed(&rd->base);
}

/* ---- deferred completion ---------------------------------------------------- */

static void
on_deferred(evutil_socket_t fd, short what, void *arg)
{
	Req *q = arg;

	(void)fd;
	(void)what;
	q->rd->deferred--;
	remote_req_finish(q);
}

/* Finishes q from the loop (never inside the call that handed it over). */
void
remote_req_defer(Req *q)
{
	struct timeval now = { 0, 0 };

	q->rd->deferred++;
	if (event_base_once(q->rd->ev, -1, EV_TIMEOUT, on_deferred, q, &now) <
	    0)
		xoom();
}

void
remote_req_away_err(Req *q)
{
	if (q->b != NULL)
		q->b->err = DEST_ERR_AWAY;
	if (q->r != NULL)
		q->r->err = DEST_ERR_AWAY;
	if (q->c != NULL)
		q->c->base.err = DEST_ERR_AWAY;
}

static void
fail_waiting(RemoteDest *rd)
{
	Req *q;

	while ((q = rd->head) != NULL) {
		rd->head = q->next;
		remote_req_away_err(q);
		remote_req_defer(q);
	}
	rd->tail = &rd->head;
	while ((q = rd->big_head) != NULL) {
		rd->big_head = q->next;
		remote_req_away_err(q);
		remote_req_defer(q);
	}
	rd->big_tail = &rd->big_head;
}

/* ---- the session ---------------------------------------------------------- */

static void session_ready_cb(void *arg);
static void session_closed_cb(void *arg, RemoteFault f, const char *why);

static void
start_session(RemoteDest *rd)
{
	RemoteSessionEvents ev = { session_ready_cb, session_closed_cb, rd };
	int r;

	if (rd->session != NULL || rd->stopped)
		return;
	r = remote_session_new(rd->host, rd->root, rd->pinned ? rd->root_dev :
	    0, rd->pinned ? rd->root_ino : 0, &ev, &rd->session);
	if (r < 0) {
		rd->session = NULL;
		remote_host_failed(rd->host, REMOTE_AWAY, strerror(-r));
	}
}

void
remote_clean_done(void *arg, int err, RemoteProtoLine *line)
{
	RemoteDest *rd = arg;

	(void)line;
	if (err == -ECANCELED)
		return;
	if (err != 0 && err != -EHOSTDOWN)
		synclog_event(LOG_LEVEL_WARN, rd->pair->name, "clean", "",
		    rd->base.name, "removing old temporaries failed: %s",
		    strerror(err > 0 ? err : -err));
}

static void
root_done(void *arg, int err, RemoteProtoLine *line)
{
	RemoteDest *rd = arg;
	const char *dev, *ino, *args[] = { rd->tag };
	uint64_t d, i;

	if (err == -ECANCELED || err == -EHOSTDOWN)
		return;		/* session_closed_cb says why */
	if (err != 0 || line == NULL) {
		if (err > 0)
			synclog_event(LOG_LEVEL_ERROR, rd->pair->name, "dest", "",
			    rd->base.name, "cannot make or open the root on the "
			    "host: %s; will try again", strerror(err));
		if (rd->session != NULL)
			remote_host_failed(rd->host, REMOTE_FAILED, err > 0 ?
			    strerror(err) : "the ops session ended");
		return;
	}
	dev = remote_proto_field(line, "dev");
	ino = remote_proto_field(line, "ino");
	d = dev != NULL ? strtoull(dev, NULL, 10) : 0;
	i = ino != NULL ? strtoull(ino, NULL, 10) : 0;
	if (rd->pinned && (d != rd->root_dev || i != rd->root_ino)) {
		snprintf(rd->reason, sizeof rd->reason, "the root on the host "
		    "was replaced (it was %" PRIu64 ":%" PRIu64 ", now %" PRIu64
		    ":%" PRIu64 "): nothing is written there", rd->root_dev,
		    rd->root_ino, d, i);
		rd->root_changed = true;
		remote_update_away(rd);
		return;
	}
	rd->pinned = true;
	rd->root_dev = d;
	rd->root_ino = i;
	rd->root_changed = false;	/* the pinned root is back */
	/* What a killed daemon left in the root (its --temp-dirs). */
	remote_session_send(rd->session, "CLEAN", args, 1, remote_clean_done, rd);
	rd->session_ready = true;
	remote_update_away(rd);
	remote_pump(rd);
}

static void
session_ready_cb(void *arg)
{
	RemoteDest *rd = arg;
	const char *mode[] = { "0700" };

	/* Makes a missing root (one level), then answers as PROBE. */
	remote_session_send(rd->session, "MKROOT", mode, 1, root_done, rd);
}

static void
on_root_timer(evutil_socket_t fd, short what, void *arg)
{
	RemoteDest *rd = arg;

	(void)fd;
	(void)what;
	if (rd->root_changed && !rd->stopped &&
	    remote_host_state(rd->host) == REMOTE_HOST_UP)
		start_session(rd);
}

static void
session_closed_cb(void *arg, RemoteFault f, const char *why)
{
	RemoteDest *rd = arg;

	remote_session_free(rd->session);
	rd->session = NULL;
	rd->session_ready = false;
	if (rd->stopped)
		return;
	if (f == REMOTE_ROOT_CHANGED) {
		struct timeval tv = { ROOT_RETRY_MS / 1000, 0 };

		if (!rd->root_changed)
			synclog_event(LOG_LEVEL_ERROR, rd->pair->name, "dest",
			    "", rd->base.name, "%s: nothing is written there; "
			    "looked at again every %d s", why,
			    ROOT_RETRY_MS / 1000);
		snprintf(rd->reason, sizeof rd->reason, "%s", why);
		rd->root_changed = true;
		evtimer_add(rd->root_timer, &tv);
		remote_update_away(rd);
		return;
	}
	remote_host_failed(rd->host, f == REMOTE_OK ? REMOTE_AWAY : f, why);
}

static void
host_changed(void *arg)
{
	RemoteDest *rd = arg;

	if (rd->stopped)
		return;
	if (remote_host_state(rd->host) == REMOTE_HOST_UP)
		start_session(rd);
	else if (remote_host_state(rd->host) == REMOTE_HOST_AWAY) {
		snprintf(rd->reason, sizeof rd->reason, "%s",
		    remote_host_reason(rd->host) ? remote_host_reason(rd->host) :
		    "unreachable");
		if (rd->session != NULL) {
			remote_session_free(rd->session);
			rd->session = NULL;
		}
		rd->session_ready = false;
	}
	remote_update_away(rd);
}

/* ---- finishing a request -------------------------------------------------- */

static void
req_free(Req *q)
{
	map_clear(&q->names);
	free(q->nodes);
	free(q->listed);
	free(q->dels);
	remote_look_free(q->look);
	if (q->proc != NULL)
		proc_free(q->proc);
	free(q);
}

/* Hands the request back to its caller and frees the rest of it. */
void
remote_req_finish(Req *q)
{
	RemoteDest *rd = q->rd;

	remote_lane_leave(rd, q);
	if (rd->big == q)
		rd->big = NULL;
	if (q->b != NULL) {
		q->b->cancelled = q->cancelled;
		q->b->done(q->b);
	} else if (q->r != NULL) {
		q->r->cancelled = q->cancelled;
		q->r->done(q->r);
	} else if (q->c != NULL) {
		RemoteCompare *c = q->c;

		c->req = NULL;
		c->finished = true;
		if (!q->cancelled && !rd->stopped)
			c->base.done(&c->base, c->base.arg);
	}
	req_free(q);
	if (!rd->stopped)
		remote_pump(rd);
}

/* The run or the ops failed because the connection did. */
void
remote_req_away(Req *q, RemoteFault f, const char *why)
{
	remote_req_away_err(q);
	remote_host_failed(q->rd->host, f, why);
	remote_req_finish(q);
}

static void
look_done(Job *job)
{
	SourceLook *l = (SourceLook *)job;
	Req *q = l->owner;

	q->rd->looks--;
	if (job->cancelled || q->rd->stopped) {
		q->cancelled = true;
		remote_req_finish(q);
		return;
	}
	if (q->kind == REQ_BATCH)
		remote_batch_looked(q);
	else
		remote_compare_looked(q);
}

/* The look at the source (on a worker) a batch or a compare starts with. */
static void
start_look(Req *q)
{
	RemoteDest *rd = q->rd;
	SourceLook *l = xcalloc(1, sizeof *l);

	l->owner = q;
	l->source = xstrdup(rd->source);
	if (q->b != NULL) {
		l->expect = q->b->opt.expect;
		l->n = q->b->n;
		l->paths = xcalloc(l->n ? l->n : 1, sizeof *l->paths);
		for (size_t i = 0; i < l->n; i++)
			l->paths[i] = xstrdup(q->b->items[i].relpath);
	} else {
		l->expect = q->c->opt.expect;
	}
	l->job.run = remote_look_run;
	l->job.done = look_done;
	q->look = l;
	rd->looks++;
	pool_submit(rd->pool, &l->job);
}

/* ---- renames -------------------------------------------------------------- */

static void
rename_done(void *arg, int err, RemoteProtoLine *line)
{
	DeleteOp *op = arg;
	Req *q = op->q;
	DestRenames *r = q->r;

	(void)line;
	q->waiting--;
	if (err == -EHOSTDOWN || err == -ECANCELED)
		r->items[op->item].err = -EHOSTDOWN;
	else
		q->answered++, r->items[op->item].err = err > 0 ? -err : err;
	if (q->waiting > 0)
		return;
	if (q->answered == 0 && !q->rd->stopped)
		r->err = DEST_ERR_AWAY;	/* none was tried */
	q->cancelled = q->rd->stopped;
	remote_req_defer(q);
}

static void
renames_start(Req *q)
{
	DestRenames *r = q->r;

	q->dels = xcalloc(r->n ? r->n : 1, sizeof *q->dels);
	for (size_t i = 0; i < r->n; i++) {
		const char *args[] = { r->items[i].from, r->items[i].to };

		q->dels[i] = (DeleteOp){ q, i };
		q->waiting++;
		remote_session_send(q->rd->session, "RENAME", args, 2,
		    rename_done, &q->dels[i]);
	}
	if (q->waiting == 0)
		remote_req_defer(q);
}

/* What every run of rd shares: host, roots, pin, a fresh temp dir
 * (into temp), the filters. */
void
remote_run_spec(RemoteDest *rd, RemoteRunSpec *spec, char *temp,
    size_t size)
{
	fsutil_temp_name(temp, size);
	spec->remote = remote_host_config(rd->host);
	spec->source = rd->source;
	spec->root = rd->root;
	spec->root_dev = rd->root_dev;
	spec->root_ino = rd->root_ino;
	spec->temp_dir = temp;
	spec->filters = rd->filters;
}

/* Starts q's rsync run (q->proc). 0 or -errno (q->proc NULL). */
int
remote_run_start(Req *q, const RemoteRunSpec *spec, ProcSpec *ps)
{
	char **argv = remote_rsync_argv(spec);
	int r;

	ps->argv = argv;
	/* rsync's --timeout does not cover every phase (a receiver stopped
	 * during the start-up was measured holding a run for minutes):
	 * three timeouts without any I/O of the local rsync end it. */
	ps->stall_ms = (unsigned)spec->remote->timeout_s * 3000;
	r = proc_spawn(q->rd->ev, ps, &q->proc);
	remote_argv_free(argv);
	if (r < 0)
		q->proc = NULL;
	return r;
}

/* ---- the queue ------------------------------------------------------------ */

static void
start(Req *q)
{
	switch (q->kind) {
	case REQ_RENAMES:
		renames_start(q);
		break;
	case REQ_BATCH:
		if (q->b->n == 0) {
			remote_req_finish(q);
			break;
		}
		start_look(q);
		break;
	case REQ_COMPARE:
		start_look(q);
		break;
	}
}

void
remote_pump(RemoteDest *rd)
{
	Req *q;

	if (rd->stopped || rd->away)
		return;
	if (!rd->session_ready) {
		if (rd->head == NULL && rd->big_head == NULL)
			return;
		if (remote_host_state(rd->host) == REMOTE_HOST_UP)
			start_session(rd);
		else
			remote_host_want(rd->host);
		return;
	}
	if (rd->big == NULL && (q = rd->big_head) != NULL) {
		rd->big_head = q->next;
		if (rd->big_head == NULL)
			rd->big_tail = &rd->big_head;
		rd->big = q;
		remote_batch_deletes(q);
	}
	while ((q = rd->head) != NULL) {
		size_t busy = 0, free_slot = REMOTE_SMALL_RUNS;
		bool alone = false;

		for (size_t i = 0; i < REMOTE_SMALL_RUNS; i++) {
			if (rd->small[i] == NULL)
				free_slot = free_slot < i ? free_slot : i;
			else
				busy++, alone = alone ||
				    rd->small[i]->kind != REQ_BATCH;
		}
		/* Batches side by side (their parents' mtimes: each run
		 * sets them last, a change meanwhile is a new event); a
		 * rename or a compare alone, a compare also without the
		 * big lane. */
		if (free_slot == REMOTE_SMALL_RUNS || alone ||
		    (q->kind != REQ_BATCH && busy > 0) ||
		    (q->kind == REQ_COMPARE && rd->big != NULL))
			return;
		rd->head = q->next;
		if (rd->head == NULL)
			rd->tail = &rd->head;
		q->next = NULL;
		rd->small[free_slot] = q;
		start(q);
		if (rd->stopped || rd->away || !rd->session_ready)
			return;
	}
}

void
remote_lane_leave(RemoteDest *rd, Req *q)
{
	for (size_t i = 0; i < REMOTE_SMALL_RUNS; i++)
		if (rd->small[i] == q)
			rd->small[i] = NULL;
	if (rd->big == q)
		rd->big = NULL;
}

static Req *
req_new(RemoteDest *rd, ReqKind kind)
{
	Req *q = xcalloc(1, sizeof *q);

	q->kind = kind;
	q->rd = rd;
	q->names = (Map)MAP_INIT;
	return q;
}

static void
submit(RemoteDest *rd, Req *q)
{
	if (rd->stopped) {
		q->cancelled = true;
		remote_req_defer(q);
		return;
	}
	if (rd->away) {
		remote_req_away_err(q);
		remote_req_defer(q);
		return;
	}
	*rd->tail = q;
	rd->tail = &q->next;
	/* Not from inside the caller's call: a request that finishes at
	 * once would call its done in there. */
	event_active(rd->kick, EV_TIMEOUT, 0);
}

static void
on_kick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	remote_pump(arg);
}

/* ---- the seam ------------------------------------------------------------- */

static void
remote_capacity(const Dest *d, DestCapacity *out)
{
	(void)d;
	out->requests = REMOTE_REQUESTS;
	out->parallel = 1;
	out->batch_paths = REMOTE_BATCH_PATHS;
}

static void
remote_sync_paths(Dest *d, DestBatch *b)
{
	Req *q = req_new(RD(d), REQ_BATCH);

	q->b = b;
	submit(RD(d), q);
}

static void
remote_rename(Dest *d, DestRenames *r)
{
	Req *q = req_new(RD(d), REQ_RENAMES);

	q->r = r;
	submit(RD(d), q);
}

static int
remote_compare(Dest *d, const char *relroot, const FullSyncOptions *opt,
    DestCompareDoneFn done, void *arg, DestCompare **ret)
{
	RemoteCompare *c = xcalloc(1, sizeof *c);
	Req *q = req_new(RD(d), REQ_COMPARE);

	c->base.dest = d;
	c->base.done = done;
	c->base.arg = arg;
	c->relroot = xstrdup(relroot);
	c->opt = *opt;
	c->req = q;
	q->c = c;
	*ret = &c->base;
	submit(RD(d), q);
	return 0;
}

static const SyncStats *
remote_compare_stats(const DestCompare *c)
{
	return &((const RemoteCompare *)(const void *)c)->st;
}

static void
remote_compare_free(DestCompare *dc)
{
	RemoteCompare *c = (RemoteCompare *)(void *)dc;

	if (c->req != NULL) {
		/* Still out (stopped): it finishes without telling anyone. */
		c->req->c = NULL;
		c->req->cancelled = true;
		if (c->req->proc != NULL)
			proc_kill(c->req->proc, SIGTERM);
	}
	free(c->relroot);
	free(c);
}

static void
remote_state(const Dest *d, DestState *out)
{
	const RemoteDest *rd = RD(d);

	out->availability = rd->away ? DEST_AWAY : DEST_AVAILABLE;
	out->away_since = rd->away ? rd->away_since : 0;
	out->reason = rd->away ? rd->reason : NULL;
}

static size_t
remote_in_flight(const Dest *d)
{
	const RemoteDest *rd = RD(d);

	size_t n = 0;

	for (size_t i = 0; i < REMOTE_SMALL_RUNS; i++)
		n += rd->small[i] != NULL;
	return n + rd->looks + rd->deferred +
	    (rd->big != NULL);
}

static void
remote_stop(Dest *d)
{
	RemoteDest *rd = RD(d);
	Req *q;

	if (rd->stopped)
		return;
	rd->stopped = true;
	while ((q = rd->head) != NULL) {
		rd->head = q->next;
		q->cancelled = true;
		remote_req_defer(q);
	}
	rd->tail = &rd->head;
	while ((q = rd->big_head) != NULL) {
		rd->big_head = q->next;
		q->cancelled = true;
		remote_req_defer(q);
	}
	rd->big_tail = &rd->big_head;
	/* Runs out stop now (rsync keeps an interrupted file in its
	 * partial dir); ops out are answered or cancelled. */
	for (size_t i = 0; i < REMOTE_SMALL_RUNS; i++)
		if (rd->small[i] != NULL && rd->small[i]->proc != NULL)
			proc_kill(rd->small[i]->proc, SIGTERM);
	if (rd->big != NULL && rd->big->proc != NULL)
		proc_kill(rd->big->proc, SIGTERM);
	if (rd->session != NULL && remote_session_outstanding(rd->session) ==
	    0) {
		remote_session_free(rd->session);
		rd->session = NULL;
	}
}

static void
remote_free(Dest *d)
{
	RemoteDest *rd = RD(d);

	remote_session_free(rd->session);
	remote_host_unlisten(rd->host, &rd->listener);
	remote_host_put(rd->host);
	event_free(rd->root_timer);
	event_free(rd->kick);
	rsync_filter_free(rd->filters);
	free(rd->source);
	free(rd->root);
	free(rd);
}

static const DestOps remote_ops = {
	.kind = "remote",
	.capacity = remote_capacity,
	.sync_paths = remote_sync_paths,
	.rename = remote_rename,
	.compare = remote_compare,
	.compare_stats = remote_compare_stats,
	.compare_free = remote_compare_free,
	.state = remote_state,
	.in_flight = remote_in_flight,
	.stop = remote_stop,
	.free = remote_free,
};

int
dest_remote_new(struct event_base *base, Pool *pool,
    const SyncPairConfig *pair, const RemoteConfig *remote,
    const char *name, Dest **ret)
{
	const char *colon = strchr(name, ':');
	RemoteDest *rd;
	char temp[64];
	size_t n, bad;
	int r;

	if (colon == NULL || colon[1] != '/')
		return -EINVAL;
	rd = xcalloc(1, sizeof *rd);
	n = exclude_count(pair->exclude);
	{
		const char **pats = xcalloc(n + 1, sizeof *pats);

		for (size_t i = 0; i < n; i++)
			pats[i] = exclude_pattern(pair->exclude, i);
		r = rsync_filter_compile(pats, n, &rd->filters, &n, &bad);
		free(pats);
	}
	if (r < 0) {
		/* --check-config refuses such a pattern (config-remotes.c). */
		free(rd);
		return r;
	}
	dest_init(&rd->base, &remote_ops, name);
	rd->ev = base;
	rd->pool = pool;
	rd->pair = pair;
	rd->source = xstrdup(pair->source);
	rd->root = xstrdup(colon + 1);
	rd->tail = &rd->head;
	rd->big_tail = &rd->big_head;
	fsutil_temp_name(temp, sizeof temp);
	/* ".treesync.TAG.N": this run's tag, for CLEAN. */
	snprintf(rd->tag, sizeof rd->tag, "%.*s", REMOTE_PROTO_TAG_LEN,
	    temp + strlen(REMOTE_PROTO_TEMP_PREFIX));
	rd->root_timer = evtimer_new(base, on_root_timer, rd);
	rd->kick = event_new(base, -1, 0, on_kick, rd);
	if (rd->root_timer == NULL || rd->kick == NULL)
		xoom();
	rd->host = remote_host_get(base, remote);
	rd->listener.changed = host_changed;
	rd->listener.arg = rd;
	remote_host_listen(rd->host, &rd->listener);
	rd->away = remote_host_state(rd->host) == REMOTE_HOST_AWAY;
	*ret = &rd->base;
	return 0;
}
