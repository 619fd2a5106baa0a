/*
 * completion — what a finished path batch, rename or pass means for the
 * pending paths, and its lines in the sync log (live-int.h).
 *
 * A path is never worked on twice at once: a change while its job was
 * out (again) brings it back at once. Failures come back due later with
 * exponential backoff (0.1 s .. 30 s); a failed pass is followed by a
 * full pass, backing off ten times as long. A path that keeps failing
 * only delays itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/copy.h"
#include "live-int.h"
#include "util/clock.h"
#include "util/synclog.h"

/* The line of a path that failed or was stopped; attempts: the failures
 * in a row this one makes (for the delay). */
static void
log_path_failure(LiveDest *d, const DestItem *r, unsigned attempts)
{
	const DestItem *it = r;
	const char *pair = d->live->pair->name;
	const char *action = live_action_word(r->action);

	if (r->err == COPY_SOURCE_CHANGED) {
		synclog_event(LOG_LEVEL_DEBUG, pair, "copy", it->relpath,
		    d->path, "still being written: waiting for its close");
	} else if (r->err == -ECANCELED) {
		/* copy_abandon (SIGTERM): not a failure. One that had not
		 * copied a byte yet never really started: debug only. */
		char path[4096];

		synclog_escape(it->relpath, path, sizeof path);
		synclog_event(r->bytes > 0 ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG,
		    pair, "copy", it->relpath, d->path, "stopping: abandoned "
		    "the copy of '%s' (%llu of %llu bytes); it is copied again "
		    "at the next start", path, (unsigned long long)r->bytes,
		    (unsigned long long)r->size);
	} else {
		synclog_event(LOG_LEVEL_WARN, pair, action, it->relpath,
		    d->path, "failed: %s (will retry in %.1f s, attempt %u)",
		    strerror(-r->err),
		    (double)live_backoff_ms(attempts) / 1000, attempts + 1);
	}
}

/* One line per path that changed something (or failed). */
static void
log_path_result(LiveDest *d, const DestItem *it, unsigned attempts)
{
	const DestItem *r = it;
	const char *pair = d->live->pair->name;
	double ms = (double)it->usec / 1000;
	char size[32];

	if (r->fault != GUARD_OK)
		return;	/* live_enter_fault says it, once */
	if (r->err != 0) {
		log_path_failure(d, it, attempts);
	} else if (r->withheld) {
		synclog_event(LOG_LEVEL_DEBUG, pair, "delete", it->relpath,
		    d->path, "withheld: deletes are held (max_delete)");
	} else if (r->action == RULE_NONE) {
		/* nothing needed doing */
	} else if (r->action == RULE_COPY) {
		synclog_format_size(r->bytes, size, sizeof size);
		synclog_event(LOG_LEVEL_INFO, pair, "copy", it->relpath,
		    d->path, "%s %.1f ms", size, ms);
	} else if (r->action == RULE_DELETE) {
		synclog_event(LOG_LEVEL_INFO, pair, "delete", it->relpath,
		    d->path, "%llu %s", (unsigned long long)r->count,
		    r->count == 1 ? "entry" : "entries");
	} else {
		synclog_event(r->action == RULE_ATTRS ? LOG_LEVEL_DEBUG :
		    LOG_LEVEL_INFO, pair, live_action_word(r->action),
		    it->relpath, d->path, "%.1f ms", ms);
	}
}

/* A path whose job did not bring it in sync: when it is due again.
 * False when the item succeeded (the outcome decides). */
static bool
item_retry(LiveDest *d, Pending *p, const DestItem *it, uint64_t now)
{
	int err = it->err;

	if (it->fault != GUARD_OK || err == -ECANCELED) {
		/* Nothing was done: the probe's full pass covers the path
		 * once the source is back (path_done enters the fault).
		 * Stopping (copy_abandon): no failure, no retry; the next
		 * start copies the path. */
		if (it->fault != GUARD_OK)
			p->again = false;
	} else if (err == COPY_SOURCE_CHANGED) {
		/* A writer is still at it: its close (or a second of quiet)
		 * brings the path back; no failure, no backoff. */
		p->due_ms = now + WRITER_QUIET_MS;
		p->again = false;
	} else if (err != 0) {
		p->due_ms = now + live_backoff_ms(p->attempts + 1);
		queue_set_attempts(d, p, p->attempts + 1);
		p->again = false;
	} else {
		return false;
	}
	queue_place(d, p);
	return true;
}

/* One path of a finished batch: log it, and decide when it is due
 * again (or drop it from the table when it is in sync). */
static void
item_done(LiveDest *d, const DestBatch *b, DestItem *it, uint64_t now)
{
	Pending *p = queue_find(d, it->relpath);
	char copied[32];

	if (p == NULL)
		return;
	p->in_flight = false;
	if (it->skipped || b->err != 0) {
		/* Not run (handed back, or the destination was away): as it
		 * was, due now (an away destination takes it when back). */
		synclog_format_size(b->bytes, copied, sizeof copied);
		if (it->skipped)
			synclog_event(LOG_LEVEL_DEBUG, d->live->pair->name,
			    "batch", it->relpath, d->path, "handed back: its "
			    "batch copied %s before it", copied);
		if (p->event_usec == 0)
			p->event_usec = it->event_usec;
		queue_place(d, p);
		return;
	}
	log_path_result(d, it, p->attempts + 1);
	live_stats_path_done(d, p, it);
	if (it->entries_changed)
		queue_mark_parent(d, it->relpath, now);
	if (item_retry(d, p, it, now))
		return;
	switch (it->outcome) {
	case DEST_SUBTREE:
		queue_subtree(d, it->relpath);
		break;
	case DEST_HARDLINK:
		/* Its other names are elsewhere in the tree: compare all. */
		d->full_needed = true;
		break;
	case DEST_NO_PARENT:
		queue_mark_parent(d, it->relpath, now);
		queue_set_attempts(d, p, p->attempts + 1);
		if (p->attempts > NO_PARENT_TRIES) {
			d->full_needed = true;
			break;
		}
		p->due_ms = now + live_backoff_ms(p->attempts);
		queue_place(d, p);
		return;
	case DEST_DONE:
		break;
	}
	if (p->again) {
		p->again = false;
		queue_set_attempts(d, p, 0);
		queue_place(d, p);
		return;
	}
	queue_remove(d, p);
}

void
live_batch_done(DestBatch *b)
{
	LiveDest *d = b->arg;
	uint64_t now = clock_ms();
	GuardFault fault = b->fault;

	d->jobs_out--;
	for (size_t i = 0; i < b->n && !b->cancelled; i++) {
		/* The root's check before the batch, or a delete's. */
		if (fault == GUARD_OK)
			fault = b->items[i].fault;
		item_done(d, b, &b->items[i], now);
	}
	/* Once per batch: each entry pushes the next probe back. */
	if (!b->cancelled && fault != GUARD_OK)
		live_enter_fault(d->live, fault);
	dest_batch_free(b);
	/* A refill looks at the heaps' tops only: cheap enough for every
	 * completion, which keeps the workers fed. */
	live_schedule(d->live);
}

void
live_renames_done(DestRenames *r)
{
	LiveDest *d = r->arg;
	uint64_t now = clock_ms();

	d->jobs_out--;
	if (!r->cancelled && r->err != 0)
		queue_renames_back(d, r);	/* away: they go when it is back */
	for (size_t i = 0; i < r->n && !r->cancelled && r->err == 0; i++) {
		const DestRename *x = &r->items[i];

		if (x->err == 0) {
			synclog_event(LOG_LEVEL_INFO, d->live->pair->name,
			    "rename", x->from, d->path, "to '%s'", x->to);
			d->st.renames++;
		}
		/* Whatever happened, both names get checked; a directory
		 * gets its contents checked too. */
		queue_mark(d, x->from, now, false);
		queue_mark(d, x->to, now, false);
		queue_mark_parent(d, x->from, now);
		queue_mark_parent(d, x->to, now);
		if (x->is_dir)
			queue_subtree(d, x->to);
	}
	dest_renames_free(r);
	if (!d->live->stopping) {
		live_flush(d);
		live_schedule(d->live);
	}
}

/* The pass's line: always for a whole tree, for a subtree when it did
 * something. */
static void
log_pass(const LiveDest *d, const SyncStats *st, bool whole)
{
	char copied[32];

	if (!whole && st->errors == 0 && st->files_copied == 0 &&
	    st->deleted == 0)
		return;
	synclog_format_size(st->bytes_copied, copied, sizeof copied);
	synclog_event(st->errors ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
	    d->live->pair->name, whole ? "full" : "subtree", d->pass_root,
	    d->path, "%s: %llu entries checked, %llu files copied (%s), %llu "
	    "deleted, %llu errors%s", st->errors ? "done with errors" :
	    "in sync", (unsigned long long)st->entries_seen,
	    (unsigned long long)st->files_copied, copied,
	    (unsigned long long)st->deleted, (unsigned long long)st->errors,
	    st->errors ? ", will compare again" : "");
}

/* What a finished pass that ran means for what comes next. */
static void
pass_outcome(LiveDest *d, const SyncStats *st, bool whole)
{
	Live *live = d->live;
	uint64_t now = clock_ms();

	if (whole && st->source.known) {
		/* A remounted root gets a new device: remember it. */
		live->identity = st->source;
		/* Only a probe speaks for the source as it is now: a pass
		 * that checked it before the fault began does not. */
		if (live->fault != GUARD_OK && d->probing)
			live_leave_fault(live);
	}
	if (st->withheld != 0 && !live->held)
		live_enter_hold(live, d, st);
	log_pass(d, st, whole);
	live_stats_pass_done(d, st, whole);
	if (st->errors != 0) {
		/* A full disk, a vanished destination, an unreadable file:
		 * compare everything again later, backing off; the full pass
		 * covers the subtrees still waiting. */
		d->pass_failures++;
		d->full_needed = true;
		d->pass_due_ms = now + live_backoff_ms(d->pass_failures) *
		    PASS_BACKOFF_FACTOR;
		queue_drop_subtrees(d);
	} else if (whole) {
		d->pass_failures = 0;
	} else {
		/* A subtree's top: the pass cleared its pending entry and
		 * does nothing when the source is gone (moved on since), so
		 * check it as a path; making it moved its parent's mtime. */
		queue_mark(d, d->pass_root, now, false);
		queue_mark_parent(d, d->pass_root, now);
	}
}

void
live_pass_done(DestCompare *c, void *arg)
{
	LiveDest *d = arg;
	const SyncStats *st = dest_compare_stats(c);

	if (c->err != 0) {
		/* It did not run (away): again when the destination is back. */
		if (d->pass_root[0] == '\0')
			d->full_needed = true;
		else
			queue_subtree(d, d->pass_root);
	} else if (st->fault != GUARD_OK) {
		live_enter_fault(d->live, st->fault);
		queue_drop_subtrees(d);
		d->full_needed = true;
	} else {
		pass_outcome(d, st, d->pass_root[0] == '\0');
	}
	/* The destination lets the done callback free the compare. */
	dest_compare_free(c);
	d->pass = NULL;
	free(d->pass_root);
	d->pass_root = NULL;
	if (!d->live->stopping) {
		live_flush(d);
		live_schedule(d->live);
	}
}

/* The destination went away or came back (dest_set_listener). */
void
live_dest_changed(Dest *dest, void *arg)
{
	LiveDest *d = arg;
	DestState ds;
	bool was = d->away;

	dest_state(dest, &ds);
	d->away = ds.availability != DEST_AVAILABLE;
	if (d->away == was)
		return;
	if (d->away) {
		synclog_event(LOG_LEVEL_WARN, d->live->pair->name, "dest", "",
		    d->path, "away%s%s: changes are kept (%zu paths pending) "
		    "and sent when it is back", ds.reason ? ": " : "",
		    ds.reason ? ds.reason : "", d->pending.count);
		return;
	}
	/* Back: one compare catches up with whatever it missed. */
	synclog_event(LOG_LEVEL_INFO, d->live->pair->name, "dest", "",
	    d->path, "back: comparing it");
	d->full_needed = true;
	d->pass_due_ms = 0;
	live_schedule(d->live);
}
