/*
 * events — what a change event means for a destination's pending paths
 * (live-int.h).
 *
 * Events do not say what to copy; they say which paths to look at. An
 * event makes its path due delay_ms from now (a burst of writes to one
 * file keeps pushing it back, so the file is copied once, after the
 * writer went quiet) and a create, delete or move makes the parent
 * directory due too, since its mtime changed. IN_MOVED_FROM/TO with one
 * cookie are a rename, applied as one; a directory that arrives gets a
 * subtree pass (it is a new inode, whatever the destination has).
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>

#include "engine/exclude.h"
#include "engine/fsutil.h"
#include "live-int.h"
#include "util/clock.h"
#include "util/synclog.h"

/* Excluded: the path, or any directory above it; treesync's own
 * temporaries always. */
static bool
excluded(const SyncPairConfig *pair, const char *relpath, bool is_dir)
{
	char buf[PATH_MAX];
	const char *base = strrchr(relpath, '/');

	if (fsutil_is_temp_name(base != NULL ? base + 1 : relpath))
		return true;
	if (exclude_count(pair->exclude) == 0)
		return false;
	if (exclude_match(pair->exclude, relpath, is_dir))
		return true;
	snprintf(buf, sizeof buf, "%s", relpath);
	for (char *s = strrchr(buf, '/'); s != NULL; s = strrchr(buf, '/')) {
		*s = '\0';
		if (exclude_match(pair->exclude, buf, true))
			return true;
	}
	return false;
}

/* The directory relpath is in is excluded (the root never is). */
static bool
parent_excluded(const SyncPairConfig *pair, const char *relpath)
{
	const char *slash = strrchr(relpath, '/');
	char parent[PATH_MAX];

	if (slash == NULL)
		return false;
	snprintf(parent, sizeof parent, "%.*s", (int)(slash - relpath),
	    relpath);
	return excluded(pair, parent, true);
}

/* One event, as the planner reads it. */
typedef struct Meaning {
	const LiveEvent *e;
	const LiveEvent *to;	/* its IN_MOVED_TO: a rename in the tree */
	bool is_dir;
	bool entry;		/* a name came or went in its directory */
	bool from_ex;		/* the (old) name is excluded */
	bool to_ex;		/* the new name of a rename is excluded */
	uint64_t due;
} Meaning;

/* A move inside the tree: its IN_MOVED_TO (same cookie) later in the
 * batch, or NULL. */
static const LiveEvent *
moved_to(const LiveEvent *ev, size_t n, size_t i)
{
	if (!(ev[i].mask & IN_MOVED_FROM) || ev[i].cookie == 0)
		return NULL;
	for (size_t j = i + 1; j < n; j++)
		if ((ev[j].mask & IN_MOVED_TO) && ev[j].cookie == ev[i].cookie)
			return &ev[j];
	return NULL;
}

/* The path itself is due: when depends on what happened to it. */
static void
mark_path(LiveDest *d, const Meaning *m)
{
	const LiveEvent *e = m->e;
	Pending *p;

	/* A file just created or still being written waits for its close
	 * (or for the writer to go quiet). */
	if (e->mask & IN_CLOSE_WRITE)
		p = queue_mark(d, e->relpath, m->due, true);
	else if ((e->mask & IN_MODIFY) || (!m->is_dir && (e->mask &
	    IN_CREATE)))
		p = queue_mark(d, e->relpath, m->due + WRITER_QUIET_MS, false);
	else
		p = queue_mark(d, e->relpath, m->due, false);
	/* The latency histogram starts at the oldest event a path job has
	 * not served yet. */
	if (p != NULL && p->event_usec == 0)
		p->event_usec = clock_usec();
	/* A directory that arrives is a new inode even where one of that
	 * name is in the destination: its contents get a subtree pass. */
	if (m->is_dir && (e->mask & (IN_CREATE | IN_MOVED_TO)))
		queue_subtree(d, e->relpath);
}

/* What one event means for one destination. */
static void
event_for_dest(LiveDest *d, const Meaning *m)
{
	const SyncPairConfig *pair = d->live->pair;

	if (d->settle_needed)
		d->settle_due_ms = m->due + SETTLE_MS;
	if (m->to != NULL && !m->from_ex && !m->to_ex) {
		queue_add_rename(d, m->e->relpath, m->to->relpath, m->is_dir);
		/* Events already queued in the kernel for what was inside
		 * it may still carry the old path: a compare once the source
		 * is quiet settles what they named wrongly. */
		if (m->is_dir) {
			d->settle_needed = true;
			d->settle_due_ms = m->due + SETTLE_MS;
		}
	}
	/* A name moved to an excluded name is no rename: its old name is
	 * marked like any other, and its job finds it gone (a delete). */
	if (!m->from_ex)
		mark_path(d, m);
	/* An entry came or went: its directory's mtime moved, an excluded
	 * name's too (SPEC: directories' mtimes converge), unless the
	 * directory is excluded itself: a job there would mirror it. */
	if (m->entry && (!m->from_ex || !parent_excluded(pair, m->e->relpath)))
		queue_mark_parent(d, m->e->relpath, m->due);
}

void
live_on_events(Live *live, const LiveEvent *ev, size_t n)
{
	uint64_t due = clock_ms() + (uint64_t)live->opt.delay_ms;

	if (live->stopping)
		return;
	live->events += n;
	for (size_t i = 0; i < n; i++) {
		Meaning m = { .e = &ev[i], .due = due };

		if (ev[i].relpath == NULL)
			continue;
		if (synclog_enabled(LOG_LEVEL_DEBUG))
			synclog_event(LOG_LEVEL_DEBUG, live->pair->name,
			    "event", ev[i].relpath, "-", "mask 0x%x cookie %u",
			    ev[i].mask, ev[i].cookie);
		m.is_dir = (ev[i].mask & IN_ISDIR) != 0;
		m.entry = (ev[i].mask & (IN_CREATE | IN_DELETE |
		    IN_MOVED_FROM | IN_MOVED_TO)) != 0;
		m.to = moved_to(ev, n, i);
		m.from_ex = excluded(live->pair, ev[i].relpath, m.is_dir);
		m.to_ex = m.to != NULL && excluded(live->pair, m.to->relpath,
		    m.is_dir);
		for (size_t k = 0; k < live->n_dests; k++)
			event_for_dest(&live->dests[k], &m);
	}
	live_schedule(live);
}

void
live_on_overflow(Live *live)
{
	synclog_msg(LOG_LEVEL_WARN, "%s: inotify queue overflow: events were "
	    "lost; comparing every destination with the source",
	    live->pair->name);
	live->overflows++;
	for (size_t k = 0; k < live->n_dests; k++)
		live->dests[k].full_needed = true;
	live_schedule(live);
}
