/*
 * status — the counters of each destination, and the one snapshot that
 * derives a pair's state (live-int.h, include/live/live.h).
 *
 * Every state read-out of the daemon (treesyncctl status, status --json,
 * metrics, systemd's STATUS=) renders a live_snapshot, so they cannot
 * disagree. It costs O(destinations): what it needs is kept as work
 * moves (queue.c's failing/stuck counts and retry heap, the pending
 * table's count), never found by walking the pending paths.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/copy.h"
#include "engine/rules.h"
#include "live-int.h"
#include "util/clock.h"

const uint64_t live_latency_bounds_usec[LIVE_LATENCY_BUCKETS] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000, 30000000, 60000000, UINT64_MAX,
};

const char *
live_state_name(LiveState s)
{
	static const char *const names[LIVE_N_STATES] = {
		[LIVE_IDLE] = "idle", [LIVE_SYNCING] = "syncing",
		[LIVE_SCANNING] = "scanning", [LIVE_DEGRADED] = "degraded",
		[LIVE_ERROR] = "error", [LIVE_HELD] = "held",
		[LIVE_PAUSED] = "paused",
	};

	return (unsigned)s < LIVE_N_STATES ? names[s] : "?";
}

/* The sync log's word for an action: the rules' own. */
const char *
live_action_word(RuleAction a)
{
	/* A failure before anything was decided is a "sync" of the path. */
	return a == RULE_NONE ? "sync" : rules_action_name(a);
}

/* The destination's last failure, as every read-out shows it. */
void
live_note_error(LiveDest *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->st.last_error, sizeof d->st.last_error, fmt, ap);
	va_end(ap);
	d->st.last_error_time = time(NULL);
}

/* An event's latency runs from its arrival until a path job serves it. */
static void
count_latency(LiveDest *d, uint64_t event_usec)
{
	LiveDestStats *st = &d->st;
	uint64_t now = clock_usec(), us = now > event_usec ? now - event_usec :
	    0;
	size_t b = 0;

	while (us > live_latency_bounds_usec[b])
		b++;
	st->latency_buckets[b]++;
	st->latency_count++;
	st->latency_sum_usec += us;
}

void
live_stats_path_done(LiveDest *d, Pending *p, const DestItem *it)
{
	LiveDestStats *st = &d->st;

	if (it->err != 0) {
		/* Not served yet: the latency keeps running. */
		if (p->event_usec == 0)
			p->event_usec = it->event_usec;
		if (it->err == COPY_SOURCE_CHANGED || it->err == -ECANCELED)
			return;
		st->errors++;
		live_note_error(d, "%s '%s' -> %s: %s",
		    live_action_word(it->action), it->relpath, d->path,
		    strerror(-it->err));
		return;
	}
	if (it->action == RULE_COPY) {
		st->files_copied++;
		st->bytes_copied += it->bytes;
	} else if (it->action == RULE_DELETE) {
		st->deletes += it->count;
	}
	if (it->event_usec != 0 && it->outcome == DEST_DONE)
		count_latency(d, it->event_usec);
	else if (it->event_usec != 0 && p->event_usec == 0)
		/* A subtree pass or more work follows: still unserved. */
		p->event_usec = it->event_usec;
}

void
live_stats_pass_done(LiveDest *d, const SyncStats *ss, bool whole)
{
	LiveDestStats *st = &d->st;

	st->files_copied += ss->files_copied;
	st->bytes_copied += ss->bytes_copied;
	st->deletes += ss->deleted;
	st->errors += ss->errors;
	if (ss->errors != 0)
		live_note_error(d, "%s pass of '%s%s%s': %llu entr%s could not "
		    "be synced (see the log)", whole ? "full" : "subtree",
		    d->path, whole ? "" : "/", d->pass_root,
		    (unsigned long long)ss->errors, ss->errors == 1 ? "y" :
		    "ies");
	if (whole) {
		st->passes++;
		st->last_full_end = time(NULL);
	}
}

/* ---- the snapshot ------------------------------------------------------- */

/* The destination's state: the first that holds, worst first. */
static LiveState
state_of(const LiveDest *d)
{
	const Live *live = d->live;

	if (live->paused)
		return LIVE_PAUSED;
	if (live->held)
		return LIVE_HELD;
	if (live->fault != GUARD_OK || d->away || d->pass_failures > 0 ||
	    d->stuck > 0)
		return LIVE_ERROR;
	if (live->polling)
		return LIVE_DEGRADED;
	if (!live->started || d->full_needed || (d->pass != NULL &&
	    d->pass_root[0] == '\0'))
		return LIVE_SCANNING;
	if (d->pending.count > 0 || d->jobs_out > 0 || d->pass != NULL ||
	    d->renames != NULL || d->n_subtrees > 0 || d->settle_needed)
		return LIVE_SYNCING;
	return LIVE_IDLE;
}

/* Paths waiting, and entries the running compare has not settled. */
static size_t
pending_of(const LiveDest *d)
{
	size_t n = d->pending.count;

	if (d->pass != NULL) {
		const SyncStats *s = dest_compare_stats(d->pass);

		if (s->entries_seen > s->entries_done)
			n += (size_t)(s->entries_seen - s->entries_done);
	}
	return n;
}

/* When this destination tries again what failed (a path, its compare);
 * UINT64_MAX: nothing failed. */
static uint64_t
next_attempt_of(const LiveDest *d)
{
	uint64_t next = queue_next_retry(d);

	if (d->pass_failures > 0 && d->full_needed && d->pass_due_ms < next)
		next = d->pass_due_ms;
	return next;
}

static int64_t
ms_until(uint64_t t, uint64_t now)
{
	if (t == UINT64_MAX)
		return -1;
	return t > now ? (int64_t)(t - now) : 0;
}

static void
dest_snapshot(const LiveDest *d, uint64_t now, LiveDestStats *ds)
{
	DestState st;

	*ds = d->st;
	ds->path = d->path;
	ds->state = state_of(d);
	ds->pending = pending_of(d);
	ds->failing = d->failing;
	ds->next_attempt_ms = ms_until(next_attempt_of(d), now);
	ds->jobs_out = dest_in_flight(d->dest);
	dest_state(d->dest, &st);
	ds->away = st.availability != DEST_AVAILABLE;
	ds->away_since = ds->away ? st.away_since : 0;
	snprintf(ds->away_reason, sizeof ds->away_reason, "%s", ds->away &&
	    st.reason != NULL ? st.reason : "");
}

int
live_snapshot(const Live *live, LiveStats *out)
{
	uint64_t now = clock_ms(), next = UINT64_MAX;

	memset(out, 0, sizeof *out);
	if ((out->dests = calloc(live->n_dests ? live->n_dests : 1,
	    sizeof *out->dests)) == NULL)
		return -ENOMEM;
	out->n_dests = live->n_dests;
	out->paused = live->paused;
	out->held = live->held;
	out->polling = live->polling;
	out->events = live->events;
	out->overflows = live->overflows;
	out->fault = live->fault != GUARD_OK || live->held ?
	    live->fault_text : NULL;
	out->state = live->paused ? LIVE_PAUSED : LIVE_IDLE;
	for (size_t k = 0; k < live->n_dests; k++) {
		const LiveDest *d = &live->dests[k];
		LiveDestStats *ds = &out->dests[k];
		uint64_t t = next_attempt_of(d);

		dest_snapshot(d, now, ds);
		if (ds->state > out->state)
			out->state = ds->state;
		out->queue += ds->pending;
		out->failing_paths += ds->failing;
		out->force_next_pass |= d->force_next;
		next = t < next ? t : next;
		if (ds->last_error_time != 0 && ds->last_error_time >=
		    out->last_error_time) {
			out->last_error = ds->last_error;
			out->last_error_time = ds->last_error_time;
		}
	}
	if (live->fault != GUARD_OK)
		next = live->fault_due_ms;	/* only the probe goes out */
	out->next_attempt_ms = ms_until(next, now);
	return 0;
}

void
live_snapshot_release(LiveStats *st)
{
	if (st == NULL)
		return;
	free(st->dests);
	st->dests = NULL;
	st->n_dests = 0;
}

/* For the model test: recount by a walk what the snapshot reads from
 * counters (the one place that walks, and only for a test). */
bool
live_audit(const Live *live, char *why, size_t size)
{
	for (size_t k = 0; k < live->n_dests; k++) {
		const LiveDest *d = &live->dests[k];
		MapIter it = map_iter(&d->pending);
		size_t failing = 0, stuck = 0, retry = 0;
		uint64_t next = UINT64_MAX;

		for (MapNode *n; (n = map_next(&it)) != NULL;) {
			const Pending *p = MAP_ENTRY(n, Pending, node);

			failing += p->attempts > 0;
			stuck += p->attempts >= STUCK_ATTEMPTS;
			if (p->attempts > 0 && !p->in_flight) {
				retry++;
				next = p->due_ms < next ? p->due_ms : next;
			}
			if (p->in_retry != (p->attempts > 0 && !p->in_flight)) {
				snprintf(why, size, "'%s' in_retry is wrong",
				    p->relpath);
				return false;
			}
		}
		if (failing != d->failing || stuck != d->stuck ||
		    retry != heap_count(&d->retry) ||
		    next != queue_next_retry(d)) {
			snprintf(why, size, "destination %zu: failing %zu/%zu, "
			    "stuck %zu/%zu, retry %zu/%zu, next %llu/%llu "
			    "(counted/kept)", k, failing, d->failing, stuck,
			    d->stuck, retry, heap_count(&d->retry),
			    (unsigned long long)next,
			    (unsigned long long)queue_next_retry(d));
			return false;
		}
	}
	return true;
}
