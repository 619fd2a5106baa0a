/*
 * status — the counters of each destination and what status shows of a
 * pair (live-int.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/copy.h"
#include "live-int.h"
#include "util/clock.h"

const uint64_t live_latency_bounds_usec[LIVE_LATENCY_BUCKETS] = {
	5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000,
	5000000, 10000000, 30000000, 60000000, UINT64_MAX,
};

const char *
live_state_name(LiveState s)
{
	static const char *const names[] = {
		[LIVE_IDLE] = "idle", [LIVE_SYNCING] = "syncing",
		[LIVE_SCANNING] = "scanning", [LIVE_DEGRADED] = "degraded",
		[LIVE_ERROR] = "error", [LIVE_PAUSED] = "paused",
	};

	return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "?";
}

static void __attribute__((format(printf, 2, 3)))
set_last_error(LiveDest *d, const char *fmt, ...)
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

/* The sync log's word for an action (rules_action_name's, once the
 * rules engine lands). */
const char *
live_action_word(RuleAction a)
{
	switch (a) {
	case RULE_COPY:
		return "copy";
	case RULE_DELETE:
		return "delete";
	case RULE_ATTRS:
		return "attrs";
	case RULE_SYMLINK:
		return "symlink";
	case RULE_MKDIR:
		return "mkdir";
	case RULE_HARDLINK:
		return "link";
	default:
		return "sync";
	}
}

void
live_stats_path_done(LiveDest *d, Pending *p, const DestItem *it)
{
	const DestItem *r = it;
	LiveDestStats *st = &d->st;

	if (r->err != 0) {
		/* Not served yet: the latency keeps running. */
		if (p->event_usec == 0)
			p->event_usec = it->event_usec;
		if (r->err == COPY_SOURCE_CHANGED || r->err == -ECANCELED)
			return;
		st->errors++;
		set_last_error(d, "%s '%s': %s", live_action_word(r->action),
		    it->relpath, strerror(-r->err));
		return;
	}
	if (r->action == RULE_COPY) {
		st->files_copied++;
		st->bytes_copied += r->bytes;
	} else if (r->action == RULE_DELETE) {
		st->deletes += r->count;
	}
	if (it->event_usec != 0 && r->outcome == DEST_DONE)
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
		set_last_error(d, "%s pass of '%s%s%s': %llu entr%s could not "
		    "be synced (see the log)", whole ? "full" : "subtree",
		    d->path, whole ? "" : "/", d->pass_root,
		    (unsigned long long)ss->errors, ss->errors == 1 ? "y" :
		    "ies");
	if (whole) {
		st->passes++;
		st->last_full_end = time(NULL);
	}
}

const char *
live_fault(const Live *live)
{
	if (live->fault == GUARD_OK && !live->held)
		return NULL;
	return live->fault_text;
}

void
live_status(const Live *live, LiveStatus *out)
{
	uint64_t now = clock_ms(), next = UINT64_MAX;
	bool busy = false;

	memset(out, 0, sizeof *out);
	for (size_t k = 0; k < live->n_dests; k++) {
		const LiveDest *d = &live->dests[k];
		MapIter it = map_iter(&d->pending);

		busy |= d->pass != NULL || d->jobs_out > 0 ||
		    d->pending.count > 0;
		if (d->pass_failures > 0 && d->full_needed &&
		    d->pass_due_ms < next)
			next = d->pass_due_ms;
		for (MapNode *n; (n = map_next(&it)) != NULL;) {
			const Pending *p = MAP_ENTRY(n, Pending, node);

			if (p->attempts > 0) {
				out->failing_paths++;
				if (!p->in_flight && p->due_ms < next)
					next = p->due_ms;
			}
		}
	}
	if (live->fault != GUARD_OK) {
		out->state = "error";
		next = live->fault_due_ms;
	} else if (live->held) {
		out->state = "paused";
	} else if (out->failing_paths > 0) {
		out->state = "retrying";
	} else {
		out->state = busy ? "syncing" : "idle";
	}
	out->fault = live_fault(live);
	out->last_error = live->last_error[0] != '\0' ? live->last_error :
	    NULL;
	out->last_error_age_ms = out->last_error != NULL ?
	    (int64_t)(now - live->last_error_ms) : -1;
	out->next_attempt_ms = next == UINT64_MAX ? -1 :
	    next > now ? (int64_t)(next - now) : 0;
}

static bool
stuck(const LiveDest *d)
{
	MapIter it = map_iter(&d->pending);

	for (MapNode *n; (n = map_next(&it)) != NULL;)
		if (MAP_ENTRY(n, Pending, node)->attempts >= 3)
			return true;
	return false;
}

static LiveState
state_of(const LiveDest *d)
{
	const Live *live = d->live;

	if (live->paused)
		return LIVE_PAUSED;
	if (d->pass_failures > 0 || stuck(d))
		return LIVE_ERROR;
	if (live->polling)
		return LIVE_DEGRADED;
	if (!live->started || (d->pass != NULL && d->pass_root[0] == '\0') ||
	    d->full_needed)
		return LIVE_SCANNING;
	if (d->pending.count > 0 || d->jobs_out > 0 || d->pass != NULL ||
	    d->renames != NULL || d->n_subtrees > 0 || d->settle_needed)
		return LIVE_SYNCING;
	return LIVE_IDLE;
}

int
live_get_stats(const Live *live, LiveStats *out)
{
	LiveStatus ls;

	memset(out, 0, sizeof *out);
	if ((out->dests = calloc(live->n_dests ? live->n_dests : 1,
	    sizeof *out->dests)) == NULL)
		return -ENOMEM;
	out->n_dests = live->n_dests;
	out->paused = live->paused;
	out->polling = live->polling;
	out->events = live->events;
	out->overflows = live->overflows;
	out->state = LIVE_IDLE;
	for (size_t k = 0; k < live->n_dests; k++) {
		const LiveDest *d = &live->dests[k];
		LiveDestStats *ds = &out->dests[k];

		*ds = d->st;
		ds->state = state_of(d);
		ds->pending = d->pending.count;
		ds->jobs_out = dest_in_flight(d->dest);
		if (ds->state > out->state)
			out->state = ds->state;
		if (d->force_next)
			out->force_next_pass = true;
	}
	if (live->n_dests == 0 && live->paused)
		out->state = LIVE_PAUSED;
	/* The guards' view (live_status): a fault is an error, a
	 * max_delete hold shows as paused; the text says which. */
	live_status(live, &ls);
	out->fault = ls.fault;
	out->failing_paths = ls.failing_paths;
	out->next_attempt_ms = ls.next_attempt_ms;
	out->held = live->held;
	if (live->fault != GUARD_OK && out->state < LIVE_ERROR)
		out->state = LIVE_ERROR;
	if (live->held && out->state < LIVE_PAUSED)
		out->state = LIVE_PAUSED;
	return 0;
}

void
live_stats_release(LiveStats *st)
{
	if (st == NULL)
		return;
	free(st->dests);
	st->dests = NULL;
	st->n_dests = 0;
}

size_t
live_queue_depth(const Live *live)
{
	size_t n = 0;

	for (size_t k = 0; k < live->n_dests; k++) {
		const LiveDest *d = &live->dests[k];

		n += d->pending.count;
		if (d->pass != NULL) {
			const SyncStats *s = dest_compare_stats(d->pass);

			if (s->entries_seen > s->entries_done)
				n += (size_t)(s->entries_seen - s->entries_done);
		}
	}
	return n;
}

bool
live_busy(const Live *live)
{
	for (size_t k = 0; k < live->n_dests; k++) {
		const LiveDest *d = &live->dests[k];

		if (d->pass != NULL || d->pending.count > 0 || d->jobs_out > 0 ||
		    d->renames != NULL || d->full_needed)
			return true;
	}
	return false;
}
