/*
 * live — see include/live/live.h.
 *
 * DESIGN
 * Events do not say what to copy; they say which paths to look at. Each
 * destination keeps a table of pending paths (relpath -> when it is due);
 * an event makes its path due delay_ms from now (a burst of writes to one
 * file keeps pushing it back, so the file is copied once, after the
 * writer went quiet) and a create, delete or move makes the parent
 * directory due too, since its mtime changed. When paths fall due, each
 * becomes a pathsync job that compares the source as it is now with the
 * destination and repairs the difference: a stale or repeated event can
 * cost work, never correctness.
 *
 * Order: due paths go out parents first; renames (IN_MOVED_FROM/TO paired
 * by cookie) are applied in the order they happened, before any other
 * work for that destination, and their old and new paths are then checked
 * like any other. A directory that is new, moved in or renamed gets a
 * subtree pass (fullsync over it), which finds what an event could not
 * name (files made before its watch existed) and keeps inodes of a
 * renamed tree. While a pass runs for a destination, its path jobs wait:
 * a path job racing a pass could make the pass delete what it saw too
 * late. Overflow, a changed hard-link group, or too many pending paths
 * collapse into one full pass.
 *
 * A path is never worked on twice at once: a change while its job is out
 * marks it to run again when the job returns. Failures come back due
 * later with exponential backoff (0.1 s .. 30 s); a failed pass likewise
 * (x10). A path that keeps failing only delays itself.
 *
 * Safety guards (guard.h): every pass and every live delete first checks
 * the source root on the worker. A root that vanished, was unmounted or
 * replaced, or is empty while the destination is not, puts the pair in
 * fault: no work is handed out but a probe (a full pass of the first
 * destination) with backoff (0.5 s .. 16 s); when a probe finds the root
 * sound it converges and every destination gets a full pass. A pass that
 * reaches max_delete holds the pair: passes and path jobs go on, deletes
 * do not, until live_resync(force) or a reload with another max_delete
 * (which restarts the pair).
 *
 * Cost (measured on a burst of 10,000 new files, docs/performance-live.md):
 * the reactor never walks the table. A pending path that is not in
 * flight sits in one of two heaps, `waiting` (by due time: the timer's
 * next wake-up is its top) or `ripe` (by depth, then arrival: a refill
 * pops from the top), so an event or a completion costs O(log n). The
 * timer is armed only for what is due later; what is due now and still
 * queued waits for a completion, which refills. Ripe paths share a job
 * (up to BATCH_MAX, sized so every worker gets a share, whatever their
 * directories): the worker opens the roots once for all of them and
 * each parent directory once per run of its names, and the reactor
 * wakes once per batch. A destination has at most workers + 1 jobs
 * out, so while the workers are busy what falls due gathers in the
 * heap for the next batch instead of waiting in the pool as jobs of
 * one file (a burst across ten directories then cost 24 syscalls per
 * file, 13 now: docs/performance-live.md). A batch that
 * copied BATCH_BYTES hands its remaining paths back (due at once), so a
 * large file does not hold up the small ones behind it. A directory's
 * own path waits (parked) while paths inside it are ripe or in flight
 * (DirCount): its mtime would move again with each of their copies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "live/live.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/path.h"
#include "engine/pathsync.h"
#include "util/synclog.h"

#define MAX_PENDING 100000	/* past this, one full pass instead */
#define WRITER_QUIET_MS 1000	/* an open file is copied after a second
				 * without writes, even if never closed */
#define SETTLE_MS 1000		/* quiet time after a directory rename
				 * before the compare that follows it */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 30000
#define FAULT_CHECK_MIN_MS 500	/* the source root is checked again */
#define FAULT_CHECK_MAX_MS 16000

typedef struct Dest Dest;

#define BATCH_MAX 64		/* paths of one directory per job */
#define BATCH_BYTES (4u << 20)	/* a job copies at most this much before
				 * handing the rest of its paths back */

typedef struct Pending {
	struct Pending *hnext;
	char *relpath;
	unsigned depth;		/* '/' count: parents go out first */
	uint64_t due_ms;
	uint64_t seq;		/* order of arrival in the ripe heap */
	struct Heap *heap;	/* the heap it is in; NULL while in flight */
	size_t hidx;		/* its index there */
	bool in_flight;
	bool again;		/* changed while its job was out */
	bool active;		/* ripe or in flight: counted in its parent's
				 * DirCount */
	bool parked;		/* due, but waits for the active paths
				 * beneath it (see DirCount) */
	unsigned attempts;	/* failures in a row */
	uint64_t event_usec;	/* arrival of its oldest unserved event; 0 none */
} Pending;

/*
 * Paths directly inside one directory that are ripe or in flight. While
 * there are any, the directory's own pending path is parked instead of
 * run: its job would restore an mtime that their copies move again, so
 * a burst of new files in one directory would cost a job for the
 * directory per file. It runs once they are done (the last one brings
 * it back), after them, which is also when its mtime is final. Paths
 * not due yet (a file still being written) do not hold it up.
 */
typedef struct DirCount {
	struct DirCount *next;
	size_t n;
	Pending *parked;	/* the directory's own path, parked */
	char path[];
} DirCount;

/*
 * Every pending path that is not in flight is in exactly one of a
 * destination's two heaps: `waiting` (not due yet, earliest due_ms on
 * top) or `ripe` (due, shallowest first, then first come). A refill and
 * the timer look at the tops only, so the work per event and per
 * completion is O(log n), not a walk of the table.
 */
typedef struct Heap {
	Pending **v;
	size_t n;
	size_t cap;
	bool by_depth;		/* ripe: (depth, seq); waiting: (due_ms, seq) */
} Heap;

typedef struct Rename {
	struct Rename *next;
	char *from;
	char *to;
	bool is_dir;
	int err;
} Rename;

struct Dest {
	Live *live;
	char *path;
	Pending **buckets;
	size_t nbuckets;
	size_t count;
	Heap waiting;
	Heap ripe;
	uint64_t seq;
	DirCount **dirs;	/* hash of DirCount by path */
	size_t ndirs_buckets;
	size_t ndirs;
	Rename *renames;	/* waiting, in order */
	Rename **renames_tail;
	FullSync *pass;
	char *pass_root;	/* the running pass's subtree ("" = all) */
	char **subtrees;	/* subtree passes waiting */
	size_t n_subtrees;
	size_t cap_subtrees;
	bool full_needed;
	bool settle_needed;	/* a directory was renamed: compare once
				 * the source is quiet (see on_events) */
	uint64_t settle_due_ms;
	unsigned pass_failures;
	uint64_t pass_due_ms;	/* backoff of the next full pass */
	bool force_next;	/* its next full pass ignores max_delete */
	bool probing;		/* the running pass is a fault's probe */
	size_t jobs_out;
	LiveDestStats st;	/* counters; live_get_stats adds the rest */
};

struct Live {
	struct event_base *base;
	Pool *pool;
	const SyncPairConfig *pair;
	LiveOptions opt;
	PathSyncOptions path_opt;
	FullSyncOptions pass_opt;
	Dest *dests;
	size_t n_dests;
	struct event *timer;
	uint64_t timer_due_ms;	/* when it fires; UINT64_MAX: not armed */
	struct event *poll_timer;
	bool started;
	bool stopping;
	bool paused;
	bool polling;
	uint64_t events, overflows;
	size_t max_jobs;
	/* Guards. identity: the source root as last found sound. */
	SourceIdentity identity;
	GuardFault fault;
	unsigned fault_checks;
	uint64_t fault_due_ms;	/* the next probe */
	bool held;		/* max_delete reached: no deletes */
	char fault_text[1024];	/* for status: NULL when no fault/hold */
	/* Retries, for status. */
	char last_error[1024];
	uint64_t last_error_ms;
};

/* One path of a batch and what became of it. */
typedef struct PathItem {
	char *relpath;
	PathSyncResult res;
	uint64_t usec;
	uint64_t event_usec;	/* the pending path's, for the latency */
	bool skipped;		/* not run: the batch's byte budget was spent */
} PathItem;

/* Up to BATCH_MAX paths with one parent directory (or the root alone). */
typedef struct PathJob {
	Job job;
	Dest *dest;
	PathSyncOptions opt;	/* the pair's, with this moment's guards */
	SourceIdentity expect;
	GuardFault fault;	/* the source root failed its check: nothing
				 * was run */
	size_t n;
	PathItem items[BATCH_MAX];
} PathJob;

typedef struct RenameJob {
	Job job;
	Dest *dest;
	Rename *list;
} RenameJob;

static void dest_flush(Dest *d);
static void live_schedule(Live *live);
/* Counters: the section at the end of this file. */
static void live_stats_path_done(Dest *d, Pending *p, const PathItem *pj);
static void live_stats_pass_done(Dest *d, const SyncStats *st, bool whole);

void
live_set_clock(uint64_t (*usec)(void))
{
	clock_set_source(usec);
}

static uint64_t
backoff_ms(unsigned attempts)
{
	uint64_t ms = BACKOFF_MIN_MS;

	while (attempts-- > 1 && ms < BACKOFF_MAX_MS)
		ms *= 2;
	return ms < BACKOFF_MAX_MS ? ms : BACKOFF_MAX_MS;
}

/* The last failure, for status: "copy 'a/b' -> /dst: reason". */
static void __attribute__((format(printf, 2, 3)))
note_error(Live *live, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(live->last_error, sizeof live->last_error, fmt, ap);
	va_end(ap);
	live->last_error_ms = clock_ms();
}

/*
 * The source root failed its check: stop handing out work (deletes
 * above all), log once per episode, and probe again with backoff.
 */
static void
enter_fault(Live *live, GuardFault f)
{
	const char *name = live->pair->name;
	uint64_t wait = FAULT_CHECK_MIN_MS;

	if (live->fault == GUARD_OK || live->fault != f) {
		snprintf(live->fault_text, sizeof live->fault_text,
		    "source '%s' %s: nothing is deleted or copied until it is "
		    "back; checking again every %.1f..%d s%s%s", live->pair->source,
		    guard_fault_text(f), FAULT_CHECK_MIN_MS / 1000.0,
		    FAULT_CHECK_MAX_MS / 1000, f == GUARD_REPLACED ||
		    f == GUARD_EMPTY ? "; if it is meant to be so: treesyncctl "
		    "resync --force " : "", f == GUARD_REPLACED ||
		    f == GUARD_EMPTY ? name : "");
		synclog_event(LOG_LEVEL_ERROR, name, "guard", "", "-", "%s",
		    live->fault_text);
		live->fault_checks = 0;
	}
	live->fault = f;
	for (unsigned i = 0; i < live->fault_checks && wait <
	    FAULT_CHECK_MAX_MS; i++)
		wait *= 2;
	if (wait > FAULT_CHECK_MAX_MS)
		wait = FAULT_CHECK_MAX_MS;
	live->fault_checks++;
	live->fault_due_ms = clock_ms() + wait;
}

/* A probe found the source root sound: converge every destination. */
static void
leave_fault(Live *live)
{
	GuardFault was = live->fault;

	synclog_event(LOG_LEVEL_INFO, live->pair->name, "guard", "", "-",
	    "source '%s' is back: resuming; comparing every destination",
	    live->pair->source);
	live->fault = GUARD_OK;
	live->fault_checks = 0;
	live->fault_text[0] = '\0';
	for (size_t k = 0; k < live->n_dests; k++) {
		live->dests[k].full_needed = true;
		live->dests[k].pass_due_ms = 0;
	}
	/* An emptied root kept its watches: no restart, whose handover
	 * would only race with the jobs still out. */
	if (was != GUARD_EMPTY && live->opt.source_back != NULL)
		live->opt.source_back(live->opt.source_back_arg);
}

/* A pass reached max_delete: no deletes for this pair until released. */
static void
enter_hold(Live *live, const Dest *d, const SyncStats *st)
{
	const MaxDelete *md = &live->pair->max_delete;
	char limit[64];

	if (md->kind == MAX_DELETE_PERCENT)
		snprintf(limit, sizeof limit, "\"%llu%%\" (%llu entries)",
		    md->value, (unsigned long long)st->delete_budget);
	else
		snprintf(limit, sizeof limit, "%llu", md->value);
	snprintf(live->fault_text, sizeof live->fault_text, "max_delete "
	    "reached in '%s': %llu deleted, %llu more deletes withheld "
	    "(max_delete = %s per pass); deletes are held for this pair, "
	    "copies go on; release: treesyncctl resync --force %s (or raise "
	    "max_delete and reload with SIGHUP)", d->path,
	    (unsigned long long)st->deleted, (unsigned long long)st->withheld,
	    limit, live->pair->name);
	if (!live->held)
		synclog_event(LOG_LEVEL_ERROR, live->pair->name, "guard", "",
		    d->path, "%s", live->fault_text);
	live->held = true;
}

/* ---- the heaps --------------------------------------------------------- */

static bool
heap_less(const Heap *h, const Pending *a, const Pending *b)
{
	if (h->by_depth) {
		if (a->depth != b->depth)
			return a->depth < b->depth;
	} else if (a->due_ms != b->due_ms) {
		return a->due_ms < b->due_ms;
	}
	return a->seq < b->seq;
}

static void
heap_set(Heap *h, size_t i, Pending *p)
{
	h->v[i] = p;
	p->hidx = i;
}

static void
heap_up(Heap *h, size_t i)
{
	Pending *p = h->v[i];

	while (i > 0 && heap_less(h, p, h->v[(i - 1) / 2])) {
		heap_set(h, i, h->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_set(h, i, p);
}

static void
heap_down(Heap *h, size_t i)
{
	Pending *p = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && heap_less(h, h->v[c + 1], h->v[c]))
			c++;
		if (!heap_less(h, h->v[c], p))
			break;
		heap_set(h, i, h->v[c]);
		i = c;
	}
	heap_set(h, i, p);
}

static void
heap_push(Heap *h, Pending *p)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : 256;
		Pending **v = realloc(h->v, cap * sizeof *v);

		if (v == NULL)
			xoom();
		h->v = v;
		h->cap = cap;
	}
	p->heap = h;
	heap_set(h, h->n++, p);
	heap_up(h, h->n - 1);
}

static void
heap_remove(Pending *p)
{
	Heap *h = p->heap;
	size_t i = p->hidx;

	p->heap = NULL;
	if (--h->n == i)
		return;
	heap_set(h, i, h->v[h->n]);
	heap_down(h, i);
	heap_up(h, h->v[i]->hidx);
}

/* ---- active paths per directory ------------------------------------- */

static uint64_t
hash_bytes(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull;

	while (len-- > 0)
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

/* The DirCount of path[0, len), made when create is set (else NULL). */
static DirCount *
dircount_get(Dest *d, const char *path, size_t len, bool create)
{
	DirCount *c;
	size_t h;

	if (d->ndirs_buckets == 0) {
		if (!create)
			return NULL;
		if ((d->dirs = calloc(64, sizeof *d->dirs)) == NULL)
			xoom();
		d->ndirs_buckets = 64;
	}
	h = (size_t)hash_bytes(path, len) & (d->ndirs_buckets - 1);
	for (c = d->dirs[h]; c != NULL; c = c->next)
		if (strncmp(c->path, path, len) == 0 && c->path[len] == '\0')
			return c;
	if (!create)
		return NULL;
	if (d->ndirs >= d->ndirs_buckets) {
		size_t n = d->ndirs_buckets * 2;
		DirCount **b = calloc(n, sizeof *b);

		if (b == NULL)
			xoom();
		for (size_t i = 0; i < d->ndirs_buckets; i++)
			while (d->dirs[i] != NULL) {
				DirCount *e = d->dirs[i];
				size_t k = (size_t)hash_bytes(e->path,
				    strlen(e->path)) & (n - 1);
				d->dirs[i] = e->next;
				e->next = b[k];
				b[k] = e;
			}
		free(d->dirs);
		d->dirs = b;
		d->ndirs_buckets = n;
		h = (size_t)hash_bytes(path, len) & (n - 1);
	}
	if ((c = calloc(1, sizeof *c + len + 1)) == NULL)
		xoom();
	memcpy(c->path, path, len);
	c->path[len] = '\0';
	c->next = d->dirs[h];
	d->dirs[h] = c;
	d->ndirs++;
	return c;
}

static void
dircount_free(Dest *d, DirCount *victim)
{
	size_t h = (size_t)hash_bytes(victim->path, strlen(victim->path)) &
	    (d->ndirs_buckets - 1);
	DirCount **pp = &d->dirs[h];

	while (*pp != victim)
		pp = &(*pp)->next;
	*pp = victim->next;
	free(victim);
	d->ndirs--;
}

static void pending_place(Dest *d, Pending *p);

/* Counts p in (or out of) its parent directory's active paths; the
 * last one out brings a parked parent back. */
static void
set_active(Dest *d, Pending *p, bool on)
{
	const char *slash;
	DirCount *c;

	if (p->active == on || p->relpath[0] == '\0')
		return;
	p->active = on;
	slash = strrchr(p->relpath, '/');
	c = dircount_get(d, p->relpath, slash != NULL ?
	    (size_t)(slash - p->relpath) : 0, true);
	if (on) {
		c->n++;
		return;
	}
	if (--c->n == 0) {
		Pending *parent = c->parked;

		dircount_free(d, c);
		if (parent != NULL) {
			parent->parked = false;
			pending_place(d, parent);
		}
	}
}

/* Puts a path that is not in flight where its due_ms says. */
static void
pending_place(Dest *d, Pending *p)
{
	if (p->heap != NULL)
		heap_remove(p);
	p->seq = d->seq++;
	heap_push(&d->waiting, p);
	set_active(d, p, false);
}

/* Parks a ripe directory path while paths inside it are active; false
 * when there are none. */
static bool
pending_park(Dest *d, Pending *p)
{
	DirCount *c = dircount_get(d, p->relpath, strlen(p->relpath), false);

	if (c == NULL)
		return false;
	heap_remove(p);
	p->parked = true;
	c->parked = p;
	return true;
}

/* Moves every path whose time has come from waiting to ripe. */
static void
pending_ripen(Dest *d, uint64_t now)
{
	while (d->waiting.n > 0 && d->waiting.v[0]->due_ms <= now) {
		Pending *p = d->waiting.v[0];

		heap_remove(p);
		p->seq = d->seq++;
		heap_push(&d->ripe, p);
		set_active(d, p, true);
	}
}

/* ---- the pending table ----------------------------------------------- */

static size_t
str_hash(const char *s, size_t nbuckets)
{
	uint64_t h = 1469598103934665603ull;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return (size_t)h & (nbuckets - 1);
}

static Pending *
pending_find(Dest *d, const char *relpath)
{
	if (d->nbuckets == 0)
		return NULL;
	for (Pending *p = d->buckets[str_hash(relpath, d->nbuckets)];
	    p != NULL; p = p->hnext)
		if (strcmp(p->relpath, relpath) == 0)
			return p;
	return NULL;
}

static void
pending_grow(Dest *d)
{
	size_t n = d->nbuckets ? d->nbuckets * 2 : 1024;
	Pending **b = calloc(n, sizeof *b);

	if (b == NULL)
		xoom();
	for (size_t i = 0; i < d->nbuckets; i++) {
		for (Pending *p = d->buckets[i]; p != NULL;) {
			Pending *next = p->hnext;
			size_t h = str_hash(p->relpath, n);
			p->hnext = b[h];
			b[h] = p;
			p = next;
		}
	}
	free(d->buckets);
	d->buckets = b;
	d->nbuckets = n;
}

static void
pending_remove(Dest *d, Pending *victim)
{
	Pending **pp = &d->buckets[str_hash(victim->relpath, d->nbuckets)];

	while (*pp != victim)
		pp = &(*pp)->hnext;
	*pp = victim->hnext;
	if (victim->heap != NULL)
		heap_remove(victim);
	if (victim->parked) {
		DirCount *c = dircount_get(d, victim->relpath,
		    strlen(victim->relpath), false);
		if (c != NULL)
			c->parked = NULL;
	}
	set_active(d, victim, false);
	free(victim->relpath);
	free(victim);
	d->count--;
}

/* Drops every pending path that is not in flight (a pass covers them). */
static void
pending_clear(Dest *d, const char *under)
{
	size_t len = strlen(under);

	for (size_t i = 0; i < d->nbuckets; i++) {
		for (Pending *p = d->buckets[i]; p != NULL;) {
			Pending *next = p->hnext;
			bool inside = len == 0 || (strncmp(p->relpath, under,
			    len) == 0 && (p->relpath[len] == '\0' ||
			    p->relpath[len] == '/'));
			if (inside && !p->in_flight)
				pending_remove(d, p);
			p = next;
		}
	}
}

/*
 * Makes relpath due at due_ms: a later change pushes it back; with
 * exact, due_ms is taken as it is (a close after writes may bring the
 * copy forward).
 */
static Pending *
mark_at(Dest *d, const char *relpath, uint64_t due_ms, bool exact)
{
	Pending *p = pending_find(d, relpath);

	if (p != NULL) {
		uint64_t old = p->due_ms;

		if (p->in_flight)
			p->again = true;
		if (exact || p->attempts == 0 || due_ms > p->due_ms)
			p->due_ms = due_ms;
		/* A ripe path pushed into the future waits again; a waiting
		 * one moves in its heap (ripe ones brought forward stay). */
		if (p->heap == &d->waiting && p->due_ms != old) {
			heap_down(&d->waiting, p->hidx);
			heap_up(&d->waiting, p->hidx);
		} else if (p->heap == &d->ripe && p->due_ms > old) {
			pending_place(d, p);
		}
		return p;
	}
	if (d->count >= MAX_PENDING) {
		/* Bounded memory: one full pass says it all. */
		if (!d->full_needed)
			synclog_event(LOG_LEVEL_WARN, d->live->pair->name,
			    "queue", "", d->path, "over %d pending paths: one "
			    "full compare instead", MAX_PENDING);
		d->full_needed = true;
		return NULL;
	}
	if (d->count >= d->nbuckets)
		pending_grow(d);
	if ((p = calloc(1, sizeof *p)) == NULL)
		xoom();
	p->relpath = xstrdup(relpath);
	p->due_ms = due_ms;
	for (const char *c = relpath; *c != '\0'; c++)
		p->depth += *c == '/';
	{
		size_t h = str_hash(relpath, d->nbuckets);
		p->hnext = d->buckets[h];
		d->buckets[h] = p;
	}
	d->count++;
	pending_place(d, p);
	return p;
}

static Pending *
mark(Dest *d, const char *relpath, uint64_t due_ms)
{
	return mark_at(d, relpath, due_ms, false);
}

static void
mark_parent(Dest *d, const char *relpath, uint64_t due_ms)
{
	const char *slash = strrchr(relpath, '/');
	char parent[PATH_MAX];

	if (relpath[0] == '\0')
		return;
	snprintf(parent, sizeof parent, "%.*s",
	    slash != NULL ? (int)(slash - relpath) : 0, relpath);
	mark(d, parent, due_ms);
}

/* Queues a subtree pass, unless one over an ancestor is queued already. */
static void
queue_subtree(Dest *d, const char *relpath)
{
	size_t k = 0;

	for (size_t i = 0; i < d->n_subtrees; i++)
		if (path_under(d->subtrees[i], relpath))
			return;
	/* Queued passes beneath it are covered by this one. */
	for (size_t i = 0; i < d->n_subtrees; i++) {
		if (path_under(relpath, d->subtrees[i]))
			free(d->subtrees[i]);
		else
			d->subtrees[k++] = d->subtrees[i];
	}
	d->n_subtrees = k;
	if (d->n_subtrees == d->cap_subtrees) {
		size_t cap = d->cap_subtrees ? d->cap_subtrees * 2 : 8;
		char **v = realloc(d->subtrees, cap * sizeof *v);
		if (v == NULL)
			xoom();
		d->subtrees = v;
		d->cap_subtrees = cap;
	}
	d->subtrees[d->n_subtrees++] = xstrdup(relpath);
}

/* ---- what the events mean -------------------------------------------- */

/* Excluded: the path, or any directory above it. */
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

static void
add_rename(Dest *d, const char *from, const char *to, bool is_dir)
{
	Rename *r = calloc(1, sizeof *r);

	if (r == NULL)
		xoom();
	r->from = xstrdup(from);
	r->to = xstrdup(to);
	r->is_dir = is_dir;
	*d->renames_tail = r;
	d->renames_tail = &r->next;
}

void
live_on_events(Live *live, const LiveEvent *ev, size_t n)
{
	uint64_t due = clock_ms() + (uint64_t)live->opt.delay_ms;

	if (live->stopping)
		return;
	live->events += n;
	for (size_t i = 0; i < n; i++) {
		const LiveEvent *e = &ev[i];
		bool is_dir = (e->mask & IN_ISDIR) != 0;
		bool entry = (e->mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM |
		    IN_MOVED_TO)) != 0;
		const LiveEvent *to = NULL;

		if (e->relpath == NULL)
			continue;
		if (synclog_enabled(LOG_LEVEL_DEBUG))
			synclog_event(LOG_LEVEL_DEBUG, live->pair->name,
			    "event", e->relpath, "-", "mask 0x%x cookie %u",
			    e->mask, e->cookie);
		/* A move inside the tree: its IN_MOVED_TO, same cookie. */
		if ((e->mask & IN_MOVED_FROM) && e->cookie != 0) {
			for (size_t j = i + 1; j < n; j++)
				if ((ev[j].mask & IN_MOVED_TO) &&
				    ev[j].cookie == e->cookie) {
					to = &ev[j];
					break;
				}
		}
		for (size_t k = 0; k < live->n_dests; k++) {
			Dest *d = &live->dests[k];
			bool from_ex = excluded(live->pair, e->relpath, is_dir);

			if (d->settle_needed)
				d->settle_due_ms = due + SETTLE_MS;

			if (to != NULL && !from_ex && !excluded(live->pair,
			    to->relpath, is_dir)) {
				add_rename(d, e->relpath, to->relpath, is_dir);
				/* Events already queued in the kernel for
				 * what was inside it may still carry the old
				 * path: a compare once the source is quiet
				 * settles what they named wrongly. */
				if (is_dir) {
					d->settle_needed = true;
					d->settle_due_ms = due + SETTLE_MS;
				}
			}
			if (!from_ex || (e->mask & IN_MOVED_FROM)) {
				/* A name moved to an excluded name is
				 * handled like a delete of the old one. A
				 * file just created or still being written
				 * waits for its close (or for the writer to
				 * go quiet). */
				Pending *p = NULL;

				if (!from_ex && (e->mask & IN_CLOSE_WRITE))
					p = mark_at(d, e->relpath, due, true);
				else if (!from_ex && ((e->mask & IN_MODIFY) ||
				    (!is_dir && (e->mask & IN_CREATE))))
					p = mark(d, e->relpath, due +
					    WRITER_QUIET_MS);
				else if (!from_ex)
					p = mark(d, e->relpath, due);
				/* The latency histogram starts at the oldest
				 * event a path job has not served yet. */
				if (p != NULL && p->event_usec == 0)
					p->event_usec = clock_usec();
				/* A directory that arrives is a new inode even
				 * where one of that name is in the destination:
				 * its contents get a subtree pass. */
				if (!from_ex && is_dir && (e->mask &
				    (IN_CREATE | IN_MOVED_TO)))
					queue_subtree(d, e->relpath);
			}
			/* An entry came or went: its directory's mtime moved,
			 * an excluded name's too (SPEC: directories' mtimes
			 * converge), unless the directory is excluded itself:
			 * a job there would mirror it. */
			if (entry && (!from_ex ||
			    !parent_excluded(live->pair, e->relpath)))
				mark_parent(d, e->relpath, due);
		}
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

/* ---- jobs ------------------------------------------------------------ */

static int
open_root(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* Orders two paths by their parent directory (a parent sorts before
 * its subdirectories: it is a prefix of their names). */
static int
parent_cmp(const char *a, const char *b)
{
	const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
	size_t la = sa != NULL ? (size_t)(sa - a) : 0;
	size_t lb = sb != NULL ? (size_t)(sb - b) : 0;
	int r = memcmp(a, b, la < lb ? la : lb);

	if (r != 0)
		return r;
	return la < lb ? -1 : la > lb;
}

/* Stable: within one directory the ripe order (parents first) holds. */
static void
sort_by_parent(PathItem *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		PathItem x = v[i];
		size_t j = i;

		while (j > 0 && parent_cmp(v[j - 1].relpath, x.relpath) > 0) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

/*
 * The roots are opened once per batch and each parent directory once
 * per run of its names; each path is then compared and repaired on its
 * own (a failure is its own). Past BATCH_BYTES copied, the rest goes back to the reactor, so a
 * large file does not hold up the small ones queued behind it for long.
 */
static void
path_run(Job *job)
{
	PathJob *pj = (PathJob *)job;
	Live *live = pj->dest->live;
	uint64_t t0 = clock_usec(), bytes = 0;
	char parent[PATH_MAX];
	const char *base;
	PathSyncDir pd;
	bool have_pd = false;
	int src, dst = -1, err = 0;

	for (size_t i = 0; i < pj->n; i++) {
		memset(&pj->items[i].res, 0, sizeof pj->items[i].res);
		pj->items[i].skipped = false;
	}
	pj->fault = GUARD_OK;
	if ((src = open_root(live->pair->source)) < 0) {
		err = src;
		if (src == -ENOENT || src == -ENOTDIR)
			pj->fault = GUARD_VANISHED;
	} else if (pj->expect.known && (pj->fault = guard_check_source(src,
	    0, -1, &pj->expect, false, &(SourceIdentity){ 0 })) != GUARD_OK) {
		/* Not the root the pair mirrors (unmounted, replaced): touch
		 * nothing, neither copy from it nor delete because of it. */
	} else if ((dst = open_root(pj->dest->path)) < 0) {
		err = dst;
	}
	if (err != 0 || pj->fault != GUARD_OK) {
		for (size_t i = 0; i < pj->n; i++) {
			pj->items[i].res.err = err;
			pj->items[i].res.fault = pj->fault;
		}
		if (src >= 0)
			close(src);
		return;
	}
	pj->opt.expect = &pj->expect;
	if (pj->items[0].relpath[0] == '\0') {
		/* The root's own metadata: always a job of its own. */
		pathsync_run(src, dst, "", &pj->opt, &pj->items[0].res);
		pj->items[0].usec = clock_usec() - t0;
		goto out;
	}
	sort_by_parent(pj->items, pj->n);
	for (size_t i = 0; i < pj->n; i++) {
		PathItem *it = &pj->items[i];
		uint64_t t = clock_usec();

		if (bytes >= BATCH_BYTES) {
			it->skipped = true;
			continue;
		}
		/* A new directory: its parent fds, once for its run. */
		if (!have_pd || parent_cmp(pj->items[i - 1].relpath,
		    it->relpath) != 0) {
			if (have_pd)
				pathsync_dir_close(&pd);
			have_pd = true;
			path_split(it->relpath, parent, sizeof parent,
			    &base);
			pathsync_dir_open(src, dst, parent, &pd);
		}
		base = strrchr(it->relpath, '/');
		pathsync_dir_run(&pd, base != NULL ? base + 1 : it->relpath,
		    &pj->opt, &it->res);
		bytes += it->res.bytes;
		it->usec = clock_usec() - (i == 0 ? t0 : t);
	}
	if (have_pd)
		pathsync_dir_close(&pd);
out:
	close(src);
	close(dst);
}

/* attempts: the failures in a row this one would make (for the delay). */
static void
log_path_result(Dest *d, const PathItem *pj, unsigned attempts)
{
	const PathSyncResult *r = &pj->res;
	const char *pair = d->live->pair->name;
	char size[32];

	if (r->err == COPY_SOURCE_CHANGED) {
		synclog_event(LOG_LEVEL_DEBUG, pair, "copy", pj->relpath,
		    d->path, "still being written: waiting for its close");
		return;
	}
	if (r->err == -ECANCELED) {
		/* copy_abandon (SIGTERM): not a failure. One that had not
		 * copied a byte yet never really started: debug only. */
		char path[4096];

		synclog_escape(pj->relpath, path, sizeof path);
		synclog_event(r->bytes > 0 ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG,
		    pair, "copy", pj->relpath, d->path, "stopping: abandoned "
		    "the copy of '%s' (%llu of %llu bytes); it is copied again "
		    "at the next start", path, (unsigned long long)r->bytes,
		    (unsigned long long)r->size);
		return;
	}
	if (r->fault != GUARD_OK)
		return;	/* enter_fault says it, once */
	if (r->err != 0) {
		synclog_event(LOG_LEVEL_WARN, pair, r->action ?
		    rules_action_name(r->action) : "sync", pj->relpath,
		    d->path, "failed: %s (will retry in %.1f s, attempt %u)",
		    strerror(-r->err), (double)backoff_ms(attempts) / 1000,
		    attempts + 1);
		note_error(d->live, "%s '%s' -> %s: %s", r->action ?
		    rules_action_name(r->action) : "sync", pj->relpath,
		    d->path, strerror(-r->err));
		return;
	}
	if (r->withheld) {
		synclog_event(LOG_LEVEL_DEBUG, pair, "delete", pj->relpath,
		    d->path, "withheld: deletes are held (max_delete)");
		return;
	}
	if (r->action == RULE_NONE)
		return;
	if (r->action == RULE_COPY) {
		synclog_format_size(r->bytes, size, sizeof size);
		synclog_event(LOG_LEVEL_INFO, pair, "copy", pj->relpath,
		    d->path, "%s %.1f ms", size, (double)pj->usec / 1000);
	} else if (r->action == RULE_DELETE) {
		synclog_event(LOG_LEVEL_INFO, pair, "delete", pj->relpath,
		    d->path, "%llu %s", (unsigned long long)r->count,
		    r->count == 1 ? "entry" : "entries");
	} else if (r->action == RULE_ATTRS) {
		synclog_event(LOG_LEVEL_DEBUG, pair, "attrs", pj->relpath,
		    d->path, "%.1f ms", (double)pj->usec / 1000);
	} else {
		synclog_event(LOG_LEVEL_INFO, pair,
		    rules_action_name(r->action), pj->relpath, d->path,
		    "%.1f ms", (double)pj->usec / 1000);
	}
}

/* One path of a finished job: log it, and decide when it is due again
 * (or drop it from the table when it is in sync). */
static void
item_done(Dest *d, PathItem *it, uint64_t now)
{
	Pending *p = pending_find(d, it->relpath);

	if (p == NULL)
		return;
	p->in_flight = false;
	if (it->skipped) {
		/* Not run: as it was, due now. */
		synclog_event(LOG_LEVEL_DEBUG, d->live->pair->name, "batch",
		    it->relpath, d->path, "handed back: its batch copied "
		    "%u MiB before it", BATCH_BYTES >> 20);
		if (p->event_usec == 0)
			p->event_usec = it->event_usec;
		pending_place(d, p);
		return;
	}
	log_path_result(d, it, p->attempts + 1);
	live_stats_path_done(d, p, it);
	if (it->res.entries_changed)
		mark_parent(d, it->relpath, now);
	if (it->res.fault != GUARD_OK) {
		/* Nothing was done; the probe's full pass covers the path
		 * once the source is back (path_done enters the fault). */
		p->again = false;
		pending_place(d, p);
		return;
	}
	if (it->res.err == -ECANCELED) {
		/* Stopping (copy_abandon): no failure, no retry; the
		 * daemon exits and its next start copies the path. */
		pending_place(d, p);
		return;
	}
	if (it->res.err == COPY_SOURCE_CHANGED) {
		/* A writer is still at it: its close (or a second of quiet)
		 * brings the path back; no failure, no backoff. */
		p->due_ms = now + WRITER_QUIET_MS;
		p->again = false;
		pending_place(d, p);
		return;
	}
	if (it->res.err != 0) {
		p->attempts++;
		p->due_ms = now + backoff_ms(p->attempts);
		p->again = false;
		pending_place(d, p);
		return;
	}
	switch (it->res.outcome) {
	case PATHSYNC_SUBTREE:
		queue_subtree(d, it->relpath);
		break;
	case PATHSYNC_HARDLINK:
		/* Its other names are elsewhere in the tree: compare all. */
		d->full_needed = true;
		break;
	case PATHSYNC_NO_PARENT:
		mark_parent(d, it->relpath, now);
		if (++p->attempts > 20) {
			d->full_needed = true;
			break;
		}
		p->due_ms = now + backoff_ms(p->attempts);
		pending_place(d, p);
		return;
	case PATHSYNC_DONE:
		break;
	}
	if (p->again) {
		p->again = false;
		p->attempts = 0;
		pending_place(d, p);
		return;
	}
	pending_remove(d, p);
}

static void
path_done(Job *job)
{
	PathJob *pj = (PathJob *)job;
	Dest *d = pj->dest;
	uint64_t now = clock_ms();
	GuardFault fault = GUARD_OK;

	d->jobs_out--;
	for (size_t i = 0; i < pj->n; i++) {
		/* The root's check before the batch, or a delete's. */
		if (fault == GUARD_OK)
			fault = pj->items[i].res.fault;
		if (!job->cancelled)
			item_done(d, &pj->items[i], now);
		free(pj->items[i].relpath);
	}
	/* Once per batch: each entry pushes the next probe back. */
	if (!job->cancelled && fault != GUARD_OK)
		enter_fault(d->live, fault);
	free(pj);
	/* A refill looks at the heaps' tops only: cheap enough for every
	 * completion, which keeps the workers fed. */
	live_schedule(d->live);
}

static void
rename_run(Job *job)
{
	RenameJob *rj = (RenameJob *)job;
	int dst = open_root(rj->dest->path);

	for (Rename *r = rj->list; r != NULL; r = r->next)
		r->err = dst < 0 ? dst : pathsync_rename(dst, r->from, r->to);
	if (dst >= 0)
		close(dst);
}

static void
rename_done(Job *job)
{
	RenameJob *rj = (RenameJob *)job;
	Dest *d = rj->dest;
	uint64_t now = clock_ms();

	d->jobs_out--;
	while (rj->list != NULL) {
		Rename *r = rj->list;
		rj->list = r->next;
		if (!job->cancelled) {
			if (r->err == 0) {
				synclog_event(LOG_LEVEL_INFO, d->live->pair->name,
				    "rename", r->from, d->path, "to '%s'", r->to);
				d->st.renames++;
			}
			/* Whatever happened, both names get checked; a
			 * directory gets its contents checked too. */
			mark(d, r->from, now);
			mark(d, r->to, now);
			mark_parent(d, r->from, now);
			mark_parent(d, r->to, now);
			if (r->is_dir)
				queue_subtree(d, r->to);
		}
		free(r->from);
		free(r->to);
		free(r);
	}
	free(rj);
	if (!d->live->stopping) {
		dest_flush(d);
		live_schedule(d->live);
	}
}

/* ---- passes ---------------------------------------------------------- */

static void
pass_done(FullSync *fs, void *arg)
{
	Dest *d = arg;
	const SyncStats *st = fullsync_stats(fs);
	bool whole = d->pass_root[0] == '\0';
	char copied[32];

	synclog_format_size(st->bytes_copied, copied, sizeof copied);
	if (st->fault != GUARD_OK) {
		enter_fault(d->live, st->fault);
		for (size_t i = 0; i < d->n_subtrees; i++)
			free(d->subtrees[i]);
		d->n_subtrees = 0;
		d->full_needed = true;
		goto out;
	}
	if (whole && st->source.known) {
		/* A remounted root gets a new device: remember it. */
		d->live->identity = st->source;
		/* Only a probe speaks for the source as it is now: a pass
		 * that checked it before the fault began does not. */
		if (d->live->fault != GUARD_OK && d->probing)
			leave_fault(d->live);
	}
	if (st->withheld != 0 && !d->live->held)
		enter_hold(d->live, d, st);
	if (whole || st->errors != 0 || st->files_copied != 0 ||
	    st->deleted != 0)
		synclog_event(st->errors ? LOG_LEVEL_WARN : LOG_LEVEL_INFO,
		    d->live->pair->name, whole ? "full" : "subtree",
		    d->pass_root, d->path, "%s: %llu entries checked, %llu "
		    "files copied (%s), %llu deleted, %llu errors%s",
		    st->errors ? "done with errors" : "in sync",
		    (unsigned long long)st->entries_seen,
		    (unsigned long long)st->files_copied, copied,
		    (unsigned long long)st->deleted,
		    (unsigned long long)st->errors,
		    st->errors ? ", will compare again" : "");
	live_stats_pass_done(d, st, whole);
	if (st->errors != 0) {
		/* A full disk, a vanished destination, an unreadable file:
		 * compare everything again later, backing off; the full pass
		 * covers the subtrees still waiting. */
		d->pass_failures++;
		d->full_needed = true;
		d->pass_due_ms = clock_ms() + backoff_ms(d->pass_failures) * 10;
		note_error(d->live, "%s pass of '%s' -> %s: %llu errors",
		    whole ? "full" : "subtree", d->pass_root, d->path,
		    (unsigned long long)st->errors);
		for (size_t i = 0; i < d->n_subtrees; i++)
			free(d->subtrees[i]);
		d->n_subtrees = 0;
	} else {
		if (whole)
			d->pass_failures = 0;
		/* A subtree's top: the pass cleared its pending entry and
		 * does nothing when the source is gone (moved on since), so
		 * check it as a path; making it moved its parent's mtime. */
		if (!whole) {
			mark(d, d->pass_root, clock_ms());
			mark_parent(d, d->pass_root, clock_ms());
		}
	}
out:
	/* The done callback runs inside the pass's last completion:
	 * free it from the loop, not from under its own feet. */
	fullsync_free(fs);
	d->pass = NULL;
	free(d->pass_root);
	d->pass_root = NULL;
	if (!d->live->stopping) {
		dest_flush(d);
		live_schedule(d->live);
	}
}

static void
start_pass(Dest *d, const char *relroot)
{
	Live *live = d->live;
	int r;

	FullSyncOptions opt = live->pass_opt;

	opt.expect = live->identity;
	opt.hold_deletes = live->held;
	if (relroot[0] == '\0' && d->force_next) {
		/* The operator's word: take the source as it is, delete
		 * past max_delete, once. */
		opt.force = true;
		opt.expect.known = false;
		d->force_next = false;
	}
	r = fullsync_new(live->pool, live->pair, d->path, relroot,
	    &opt, pass_done, d, &d->pass);
	if (r < 0)
		xoom();
	d->pass_root = xstrdup(relroot);
	d->probing = live->fault != GUARD_OK;
	/* Changes made before the pass starts are seen by its scans. */
	pending_clear(d, relroot);
	if (relroot[0] == '\0')
		synclog_event(LOG_LEVEL_INFO, live->pair->name, "full", "",
		    d->path, "comparing the whole tree");
	fullsync_start(d->pass);
}

/* Hands out whatever this destination may do now, in the safe order. */
static void
dest_flush(Dest *d)
{
	Live *live = d->live;
	uint64_t now = clock_ms();

	if (live->stopping || !live->started || live->paused || d->pass != NULL)
		return;
	if (live->fault != GUARD_OK) {
		/* Only the probe: a full pass of the first destination. */
		if (d == &live->dests[0] && d->jobs_out == 0 &&
		    now >= live->fault_due_ms)
			start_pass(d, "");
		return;
	}
	if (d->renames != NULL) {
		RenameJob *rj;

		if (d->jobs_out > 0)
			return;	/* renames go first, in order */
		if ((rj = calloc(1, sizeof *rj)) == NULL)
			xoom();
		rj->dest = d;
		rj->list = d->renames;
		d->renames = NULL;
		d->renames_tail = &d->renames;
		rj->job.run = rename_run;
		rj->job.done = rename_done;
		d->jobs_out++;
		pool_submit(live->pool, &rj->job);
		return;
	}
	if ((d->full_needed && now >= d->pass_due_ms) || d->n_subtrees > 0) {
		if (d->jobs_out > 0)
			return;	/* passes start when path jobs are back */
		if (d->full_needed && now >= d->pass_due_ms) {
			d->full_needed = false;
			for (size_t i = 0; i < d->n_subtrees; i++)
				free(d->subtrees[i]);
			d->n_subtrees = 0;
			start_pass(d, "");
		} else {
			char *root = d->subtrees[0];
			memmove(d->subtrees, d->subtrees + 1,
			    --d->n_subtrees * sizeof *d->subtrees);
			start_pass(d, root);
			free(root);
		}
		return;
	}
	if (d->settle_needed && now >= d->settle_due_ms && d->count == 0 &&
	    d->jobs_out == 0) {
		d->settle_needed = false;
		synclog_event(LOG_LEVEL_DEBUG, live->pair->name, "settle", "",
		    d->path, "directories were renamed: comparing");
		start_pass(d, "");
		return;
	}
	if (d->count == 0 || d->jobs_out >= live->max_jobs)
		return;
	pending_ripen(d, now);
	/* Ripe paths share jobs: the worker opens the roots once per job
	 * and each parent directory once per run of its names (path_run
	 * sorts them by directory), and the reactor wakes once per job,
	 * not per file. A job takes its share of what is ripe, so every
	 * worker gets some; fewer slots than workers * 4 leave paths to
	 * gather in the heap while the workers are busy. */
	{
		size_t workers = (size_t)pool_threads(live->pool);
		size_t per = (d->ripe.n + workers - 1) / workers;
		size_t free_slots = live->max_jobs - d->jobs_out;
		PathJob *open[BATCH_MAX];
		size_t nopen = 0;

		if (per > BATCH_MAX)
			per = BATCH_MAX;
		if (free_slots > BATCH_MAX)
			free_slots = BATCH_MAX;
		while (d->ripe.n > 0) {
			Pending *p = d->ripe.v[0];
			PathJob *pj = nopen > 0 ? open[nopen - 1] : NULL;
			PathItem *it;

			if (pending_park(d, p))
				continue;
			/* The root's own metadata goes alone. */
			if (pj != NULL && (pj->n >= per || p->relpath[0] ==
			    '\0' || pj->items[0].relpath[0] == '\0'))
				pj = NULL;
			if (pj == NULL) {
				if (nopen == free_slots)
					break;
				if ((pj = calloc(1, sizeof *pj)) == NULL)
					xoom();
				pj->dest = d;
				pj->opt = live->path_opt;
				pj->opt.hold_deletes = live->held;
				pj->expect = live->identity;
				pj->job.run = path_run;
				pj->job.done = path_done;
				open[nopen++] = pj;
			}
			heap_remove(p);
			p->in_flight = true;
			p->again = false;
			it = &pj->items[pj->n++];
			it->relpath = xstrdup(p->relpath);
			it->event_usec = p->event_usec;
			p->event_usec = 0;
		}
		for (size_t j = 0; j < nopen; j++) {
			d->jobs_out++;
			pool_submit(live->pool, &open[j]->job);
		}
	}
}

/* Arms the timer for the earliest moment some destination has work. */
static void
live_schedule(Live *live)
{
	uint64_t now = clock_ms(), next = UINT64_MAX;

	if (live->stopping || !live->started || live->paused)
		return;
	for (size_t k = 0; k < live->n_dests; k++) {
		Dest *d = &live->dests[k];

		dest_flush(d);
		if (d->pass != NULL)
			continue;
		if (live->fault != GUARD_OK) {
			if (k == 0 && live->fault_due_ms > now &&
			    live->fault_due_ms < next)
				next = live->fault_due_ms;
			continue;
		}
		/* Only what is due later arms the timer. What is due now
		 * and still here after the flush waits for a job slot, for
		 * renames or path jobs to come back, or for the pending
		 * paths to drain (a settle): every completion calls this
		 * again. A timer at "now" for it would spin the loop while
		 * the workers are busy. */
		if (d->full_needed && d->pass_due_ms > now &&
		    d->pass_due_ms < next)
			next = d->pass_due_ms;
		if (d->settle_needed && d->settle_due_ms > now &&
		    d->settle_due_ms < next)
			next = d->settle_due_ms;
		if (d->waiting.n > 0 && d->waiting.v[0]->due_ms > now &&
		    d->waiting.v[0]->due_ms < next)
			next = d->waiting.v[0]->due_ms;
	}
	if (next == UINT64_MAX)
		return;
	{
		uint64_t wait = next - now;
		struct timeval tv = { (time_t)(wait / 1000),
		    (suseconds_t)(wait % 1000) * 1000 };
		evtimer_add(live->timer, &tv);
		live->timer_due_ms = next;
	}
}

uint64_t
live_timer_due(const Live *live)
{
	return live->timer_due_ms;
}

void
live_tick(Live *live)
{
	live->timer_due_ms = UINT64_MAX;
	live_schedule(live);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	live_tick(arg);
}

static void
on_poll(evutil_socket_t fd, short what, void *arg)
{
	Live *live = arg;

	(void)fd;
	(void)what;
	for (size_t k = 0; k < live->n_dests; k++)
		live->dests[k].full_needed = true;
	live_schedule(live);
}

void
live_set_polling(Live *live, int interval_ms)
{
	struct timeval tv = { interval_ms / 1000, (interval_ms % 1000) * 1000 };

	live->polling = true;
	if (live->poll_timer == NULL)
		live->poll_timer = event_new(live->base, -1, EV_PERSIST,
		    on_poll, live);
	if (live->poll_timer != NULL)
		event_add(live->poll_timer, &tv);
}

int
live_new(struct event_base *base, Pool *pool, const SyncPairConfig *pair,
    const LiveOptions *opt, Live **ret)
{
	Live *live = calloc(1, sizeof *live);

	if (live == NULL)
		return -ENOMEM;
	live->base = base;
	live->pool = pool;
	live->pair = pair;
	live->opt = *opt;
	live->path_opt.copy.preserve_owner = opt->preserve_owner;
	live->path_opt.copy.umask_zero = true;
	live->path_opt.delete = pair->delete;
	live->path_opt.compare = pair->compare;
	live->pass_opt.preserve_owner = opt->preserve_owner;
	live->pass_opt.will_retry = true;
	live->pass_opt.umask_zero = true;
	/* One job queued beyond the workers: a worker that finishes finds
	 * the next without waiting for the reactor. */
	live->max_jobs = (size_t)pool_threads(pool) + 1;
	live->n_dests = pair->n_destinations;
	live->dests = calloc(live->n_dests, sizeof *live->dests);
	live->timer = evtimer_new(base, on_timer, live);
	live->timer_due_ms = UINT64_MAX;
	if (live->dests == NULL || live->timer == NULL) {
		live_free(live);
		return -ENOMEM;
	}
	for (size_t k = 0; k < live->n_dests; k++) {
		Dest *d = &live->dests[k];
		d->live = live;
		d->path = pair->destinations[k];
		d->st.path = d->path;
		d->renames_tail = &d->renames;
		d->ripe.by_depth = true;
	}
	*ret = live;
	return 0;
}

void
live_start(Live *live)
{
	live->started = true;
	for (size_t k = 0; k < live->n_dests; k++)
		live->dests[k].full_needed = true;
	live_schedule(live);
}

void
live_resync(Live *live, bool force)
{
	synclog_event(LOG_LEVEL_INFO, live->pair->name, "resync", "", "-",
	    "comparing every destination%s", force ? " (--force: the source "
	    "is taken as it is, max_delete does not apply to this pass)" : "");
	if (force) {
		live->held = false;
		live->fault_text[0] = '\0';
		if (live->fault != GUARD_OK) {
			live->fault = GUARD_OK;
			live->fault_checks = 0;
		}
	}
	for (size_t k = 0; k < live->n_dests; k++) {
		Dest *d = &live->dests[k];
		d->full_needed = true;
		d->pass_due_ms = 0;
		d->force_next = force;
	}
	if (live->fault != GUARD_OK)
		live->fault_due_ms = 0;
	live_schedule(live);
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
		const Dest *d = &live->dests[k];

		busy |= d->pass != NULL || d->jobs_out > 0 || d->count > 0;
		if (d->pass_failures > 0 && d->full_needed &&
		    d->pass_due_ms < next)
			next = d->pass_due_ms;
		for (size_t i = 0; i < d->nbuckets; i++)
			for (const Pending *p = d->buckets[i]; p != NULL;
			    p = p->hnext)
				if (p->attempts > 0) {
					out->failing_paths++;
					if (!p->in_flight && p->due_ms < next)
						next = p->due_ms;
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

size_t
live_jobs_out(const Live *live)
{
	size_t n = 0;

	for (size_t k = 0; k < live->n_dests; k++) {
		n += live->dests[k].jobs_out;
		if (live->dests[k].pass != NULL)
			n += fullsync_jobs_out(live->dests[k].pass);
	}
	return n;
}

size_t
live_queue_depth(const Live *live)
{
	size_t n = 0;

	for (size_t k = 0; k < live->n_dests; k++) {
		const Dest *d = &live->dests[k];
		n += d->count;
		if (d->pass != NULL) {
			const SyncStats *s = fullsync_stats(d->pass);
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
		const Dest *d = &live->dests[k];
		if (d->pass != NULL || d->count > 0 || d->jobs_out > 0 ||
		    d->renames != NULL || d->full_needed)
			return true;
	}
	return false;
}

void
live_stop(Live *live)
{
	live->stopping = true;
	for (size_t k = 0; k < live->n_dests; k++)
		if (live->dests[k].pass != NULL)
			fullsync_stop(live->dests[k].pass);
	if (live->timer != NULL)
		evtimer_del(live->timer);
	live->timer_due_ms = UINT64_MAX;
	if (live->poll_timer != NULL)
		event_del(live->poll_timer);
}

void
live_free(Live *live)
{
	if (live == NULL)
		return;
	for (size_t k = 0; k < live->n_dests && live->dests != NULL; k++) {
		Dest *d = &live->dests[k];
		for (size_t i = 0; i < d->nbuckets; i++)
			while (d->buckets[i] != NULL) {
				Pending *p = d->buckets[i];
				d->buckets[i] = p->hnext;
				free(p->relpath);
				free(p);
			}
		free(d->buckets);
		free(d->waiting.v);
		free(d->ripe.v);
		for (size_t i = 0; i < d->ndirs_buckets; i++)
			while (d->dirs[i] != NULL) {
				DirCount *c = d->dirs[i];
				d->dirs[i] = c->next;
				free(c);
			}
		free(d->dirs);
		while (d->renames != NULL) {
			Rename *r = d->renames;
			d->renames = r->next;
			free(r->from);
			free(r->to);
			free(r);
		}
		for (size_t i = 0; i < d->n_subtrees; i++)
			free(d->subtrees[i]);
		free(d->subtrees);
		fullsync_free(d->pass);
		free(d->pass_root);
	}
	free(live->dests);
	if (live->timer != NULL)
		event_free(live->timer);
	if (live->poll_timer != NULL)
		event_free(live->poll_timer);
	free(live);
}

/* ---- stats and control (treesyncctl) --------------------------------- */

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

/* An event named relpath: its latency runs from now until a job serves it. */
static void
set_last_error(Dest *d, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_last_error(Dest *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->st.last_error, sizeof d->st.last_error, fmt, ap);
	va_end(ap);
	d->st.last_error_time = time(NULL);
}

static void
live_stats_path_done(Dest *d, Pending *p, const PathItem *pj)
{
	const PathSyncResult *r = &pj->res;
	LiveDestStats *st = &d->st;

	if (r->err != 0) {
		/* Not served yet: the latency keeps running. */
		if (p->event_usec == 0)
			p->event_usec = pj->event_usec;
		if (r->err == COPY_SOURCE_CHANGED || r->err == -ECANCELED)
			return;
		st->errors++;
		set_last_error(d, "%s '%s': %s", r->action ?
		    rules_action_name(r->action) : "sync", pj->relpath,
		    strerror(-r->err));
		return;
	}
	if (r->action == RULE_COPY) {
		st->files_copied++;
		st->bytes_copied += r->bytes;
	} else if (r->action == RULE_DELETE) {
		st->deletes += r->count;
	}
	if (pj->event_usec != 0 && r->outcome == PATHSYNC_DONE) {
		uint64_t now = clock_usec(), us = now > pj->event_usec ?
		    now - pj->event_usec : 0;
		size_t b = 0;

		while (us > live_latency_bounds_usec[b])
			b++;
		st->latency_buckets[b]++;
		st->latency_count++;
		st->latency_sum_usec += us;
	} else if (pj->event_usec != 0 && p->event_usec == 0) {
		/* A subtree pass or more work follows: still unserved. */
		p->event_usec = pj->event_usec;
	}
}

static void
live_stats_pass_done(Dest *d, const SyncStats *ss, bool whole)
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

static LiveState
dest_state(const Dest *d)
{
	const Live *live = d->live;

	if (live->paused)
		return LIVE_PAUSED;
	if (d->pass_failures > 0)
		return LIVE_ERROR;
	for (size_t i = 0; i < d->nbuckets; i++)
		for (const Pending *p = d->buckets[i]; p != NULL; p = p->hnext)
			if (p->attempts >= 3)
				return LIVE_ERROR;
	if (live->polling)
		return LIVE_DEGRADED;
	if (!live->started || (d->pass != NULL && d->pass_root[0] == '\0') ||
	    d->full_needed)
		return LIVE_SCANNING;
	if (d->count > 0 || d->jobs_out > 0 || d->pass != NULL ||
	    d->renames != NULL || d->n_subtrees > 0 || d->settle_needed)
		return LIVE_SYNCING;
	return LIVE_IDLE;
}

int
live_get_stats(const Live *live, LiveStats *out)
{
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
		const Dest *d = &live->dests[k];
		LiveDestStats *ds = &out->dests[k];

		*ds = d->st;
		ds->state = dest_state(d);
		ds->pending = d->count;
		ds->jobs_out = d->jobs_out + (d->pass != NULL ?
		    fullsync_jobs_out(d->pass) : 0);
		if (ds->state > out->state)
			out->state = ds->state;
	}
	if (live->n_dests == 0 && live->paused)
		out->state = LIVE_PAUSED;
	/* The guards' view (live_status): a fault is an error, a
	 * max_delete hold shows as paused; the text says which. */
	{
		LiveStatus ls;

		live_status(live, &ls);
		out->fault = ls.fault;
		out->failing_paths = ls.failing_paths;
		out->next_attempt_ms = ls.next_attempt_ms;
	}
	out->held = live->held;
	if (live->fault != GUARD_OK && out->state < LIVE_ERROR)
		out->state = LIVE_ERROR;
	if (live->held && out->state < LIVE_PAUSED)
		out->state = LIVE_PAUSED;
	for (size_t k = 0; k < live->n_dests; k++)
		if (live->dests[k].force_next)
			out->force_next_pass = true;
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

void
live_pause(Live *live)
{
	live->paused = true;
	if (live->timer != NULL)
		evtimer_del(live->timer);
	live->timer_due_ms = UINT64_MAX;
}

void
live_resume(Live *live)
{
	if (!live->paused)
		return;
	live->paused = false;
	live_schedule(live);
}

