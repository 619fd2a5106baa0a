/*
 * queue — the pending store of one destination (live-int.h): the table
 * of pending paths (util/map), the two heaps they wait in (util/heap),
 * the directories whose own path is parked while paths inside them are
 * active, and the renames and subtree passes waiting.
 *
 * Cost: an event, a refill and a completion cost O(log n) each; only
 * queue_clear (when a pass starts: the pass covers the paths) walks the
 * table.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "live-int.h"
#include "util/alloc.h"
#include "util/path.h"
#include "util/synclog.h"

/* ---- the heaps ---------------------------------------------------------- */

#define PENDING_OF(n) HEAP_ENTRY(n, Pending, hnode)

/* waiting: the earliest due first, then first come. */
static bool
waiting_less(const HeapNode *a, const HeapNode *b)
{
	const Pending *x = PENDING_OF(a), *y = PENDING_OF(b);

	if (x->due_ms != y->due_ms)
		return x->due_ms < y->due_ms;
	return x->seq < y->seq;
}

/* ripe: parents before children, then first come. */
static bool
ripe_less(const HeapNode *a, const HeapNode *b)
{
	const Pending *x = PENDING_OF(a), *y = PENDING_OF(b);

	if (x->depth != y->depth)
		return x->depth < y->depth;
	return x->seq < y->seq;
}

/* retry: failed paths not in flight, the earliest due first. */
static bool
retry_less(const HeapNode *a, const HeapNode *b)
{
	const Pending *x = HEAP_ENTRY(a, Pending, rnode);
	const Pending *y = HEAP_ENTRY(b, Pending, rnode);

	return x->due_ms < y->due_ms;
}

/* Puts p in the retry heap, moves it there or takes it out, as its
 * attempts, flight and due time say. */
static void
retry_sync(LiveDest *d, Pending *p)
{
	bool want = p->attempts > 0 && !p->in_flight;

	if (want && p->in_retry) {
		heap_update(&d->retry, &p->rnode);
	} else if (want) {
		heap_push(&d->retry, &p->rnode);
		p->in_retry = true;
	} else if (p->in_retry) {
		heap_remove(&d->retry, &p->rnode);
		p->in_retry = false;
	}
}

/* A path's failures in a row: the status counters follow. */
void
queue_set_attempts(LiveDest *d, Pending *p, unsigned attempts)
{
	d->failing += (attempts > 0) - (p->attempts > 0);
	d->stuck += (attempts >= STUCK_ATTEMPTS) -
	    (p->attempts >= STUCK_ATTEMPTS);
	p->attempts = attempts;
	retry_sync(d, p);
}

/* When the next failed path is due again (now or past: it waits for a
 * slot); UINT64_MAX when none is waiting. */
uint64_t
queue_next_retry(const LiveDest *d)
{
	HeapNode *top = heap_top(&d->retry);

	return top != NULL ? HEAP_ENTRY(top, Pending, rnode)->due_ms :
	    UINT64_MAX;
}

static void
heap_in(LiveDest *d, Heap *h, Pending *p)
{
	p->seq = d->seq++;
	p->heap = h;
	heap_push(h, &p->hnode);
}

static void
heap_out(Pending *p)
{
	if (p->heap != NULL)
		heap_remove(p->heap, &p->hnode);
	p->heap = NULL;
}

/* ---- active paths per directory ----------------------------------------- */

typedef struct DirKey {
	const char *path;
	size_t len;
} DirKey;

static bool
dircount_is(const MapNode *n, const void *key)
{
	const DirCount *c = MAP_ENTRY(n, DirCount, node);
	const DirKey *k = key;

	return strncmp(c->path, k->path, k->len) == 0 &&
	    c->path[k->len] == '\0';
}

/* The DirCount of path[0, len), made when create is set (else NULL). */
static DirCount *
dircount_get(LiveDest *d, const char *path, size_t len, bool create)
{
	DirKey key = { path, len };
	uint64_t h = map_hash_bytes(path, len);
	MapNode *n = map_find(&d->dirs, h, dircount_is, &key);
	DirCount *c;

	if (n != NULL || !create)
		return n != NULL ? MAP_ENTRY(n, DirCount, node) : NULL;
	c = xcalloc(1, sizeof *c + len + 1);
	memcpy(c->path, path, len);
	c->path[len] = '\0';
	map_insert(&d->dirs, &c->node, h);
	return c;
}

/* Counts p in (or out of) its parent directory's active paths; the
 * last one out brings a parked parent back. */
static void
set_active(LiveDest *d, Pending *p, bool on)
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

		map_remove(&d->dirs, &c->node);
		free(c);
		if (parent != NULL) {
			parent->parked = false;
			queue_place(d, parent);
		}
	}
}

/* Puts a path that is not in flight where its due_ms says. */
void
queue_place(LiveDest *d, Pending *p)
{
	heap_out(p);
	heap_in(d, &d->waiting, p);
	/* Its due time may have moved: its place in the retry heap first,
	 * before set_active can bring a parked parent back, whose own
	 * heap update must not meet this path out of order. */
	retry_sync(d, p);
	set_active(d, p, false);
}

/* Parks a ripe directory path while paths inside it are active; false
 * when there are none. */
static bool
park(LiveDest *d, Pending *p)
{
	DirCount *c = dircount_get(d, p->relpath, strlen(p->relpath), false);

	if (c == NULL)
		return false;
	heap_out(p);
	p->parked = true;
	c->parked = p;
	return true;
}

void
queue_ripen(LiveDest *d, uint64_t now)
{
	HeapNode *top;

	while ((top = heap_top(&d->waiting)) != NULL &&
	    PENDING_OF(top)->due_ms <= now) {
		Pending *p = PENDING_OF(top);

		heap_out(p);
		heap_in(d, &d->ripe, p);
		set_active(d, p, true);
	}
}

/* The next ripe path to hand out (directories with active paths inside
 * parked on the way), or NULL. It stays ripe until queue_take. */
Pending *
queue_next_ripe(LiveDest *d)
{
	HeapNode *top;

	while ((top = heap_top(&d->ripe)) != NULL)
		if (!park(d, PENDING_OF(top)))
			return PENDING_OF(top);
	return NULL;
}

/* p goes out in a job. */
void
queue_take(LiveDest *d, Pending *p)
{
	heap_out(p);
	p->in_flight = true;
	p->again = false;
	retry_sync(d, p);
}

uint64_t
queue_next_due(const LiveDest *d)
{
	HeapNode *top = heap_top(&d->waiting);

	return top != NULL ? PENDING_OF(top)->due_ms : UINT64_MAX;
}

/* ---- the pending table -------------------------------------------------- */

static bool
pending_is(const MapNode *n, const void *key)
{
	return strcmp(MAP_ENTRY(n, Pending, node)->relpath, key) == 0;
}

Pending *
queue_find(LiveDest *d, const char *relpath)
{
	MapNode *n = map_find(&d->pending, map_hash_str(relpath), pending_is,
	    relpath);

	return n != NULL ? MAP_ENTRY(n, Pending, node) : NULL;
}

void
queue_remove(LiveDest *d, Pending *victim)
{
	map_remove(&d->pending, &victim->node);
	heap_out(victim);
	queue_set_attempts(d, victim, 0);
	if (victim->parked) {
		DirCount *c = dircount_get(d, victim->relpath,
		    strlen(victim->relpath), false);
		if (c != NULL)
			c->parked = NULL;
	}
	set_active(d, victim, false);
	free(victim->relpath);
	free(victim);
}

/* Drops every pending path under `under` that is not in flight: the
 * pass that starts covers them. */
void
queue_clear(LiveDest *d, const char *under)
{
	MapIter it = map_iter(&d->pending);

	for (MapNode *n; (n = map_next(&it)) != NULL;) {
		Pending *p = MAP_ENTRY(n, Pending, node);

		if (!p->in_flight && path_under(under, p->relpath))
			queue_remove(d, p);
	}
}

/* An existing path changed again: a later due time pushes it back. */
static void
mark_again(LiveDest *d, Pending *p, uint64_t due_ms, bool exact)
{
	uint64_t old = p->due_ms;

	if (p->in_flight)
		p->again = true;
	if (exact || p->attempts == 0 || due_ms > p->due_ms)
		p->due_ms = due_ms;
	/* A ripe path pushed into the future waits again; a waiting one
	 * moves in its heap (ripe ones brought forward stay). */
	if (p->heap == &d->waiting && p->due_ms != old)
		heap_update(&d->waiting, &p->hnode);
	else if (p->heap == &d->ripe && p->due_ms > old)
		queue_place(d, p);
	if (p->due_ms != old)
		retry_sync(d, p);
}

/*
 * Makes relpath due at due_ms: a later change pushes it back; with
 * exact, due_ms is taken as it is (a close after writes may bring the
 * copy forward). NULL when the table is full (a full pass instead).
 */
Pending *
queue_mark(LiveDest *d, const char *relpath, uint64_t due_ms, bool exact)
{
	Pending *p = queue_find(d, relpath);

	if (p != NULL) {
		mark_again(d, p, due_ms, exact);
		return p;
	}
	if (d->pending.count >= MAX_PENDING) {
		/* Bounded memory: one full pass says it all. */
		if (!d->full_needed)
			synclog_event(LOG_LEVEL_WARN, d->live->pair->name,
			    "queue", "", d->path, "over %d pending paths: one "
			    "full compare instead", MAX_PENDING);
		d->full_needed = true;
		return NULL;
	}
	p = xcalloc(1, sizeof *p);
	p->relpath = xstrdup(relpath);
	p->due_ms = due_ms;
	p->depth = path_depth(relpath);
	map_insert(&d->pending, &p->node, map_hash_str(relpath));
	queue_place(d, p);
	return p;
}

/* relpath's directory is due (an entry came or went: its mtime moved). */
void
queue_mark_parent(LiveDest *d, const char *relpath, uint64_t due_ms)
{
	const char *slash = strrchr(relpath, '/');
	char parent[PATH_MAX];

	if (relpath[0] == '\0')
		return;
	snprintf(parent, sizeof parent, "%.*s",
	    slash != NULL ? (int)(slash - relpath) : 0, relpath);
	queue_mark(d, parent, due_ms, false);
}

/* ---- renames and subtree passes waiting --------------------------------- */

void
queue_add_rename(LiveDest *d, const char *from, const char *to, bool is_dir)
{
	Rename *r = xcalloc(1, sizeof *r);

	r->from = xstrdup(from);
	r->to = xstrdup(to);
	r->is_dir = is_dir;
	*d->renames_tail = r;
	d->renames_tail = &r->next;
	d->n_renames++;
}

/* Renames that could not go (the destination was away) go back to the
 * front of the queue, in their order. */
void
queue_renames_back(LiveDest *d, const DestRenames *r)
{
	Rename *first = NULL, **tail = &first;

	for (size_t i = 0; i < r->n; i++) {
		Rename *x = xcalloc(1, sizeof *x);

		x->from = xstrdup(r->items[i].from);
		x->to = xstrdup(r->items[i].to);
		x->is_dir = r->items[i].is_dir;
		*tail = x;
		tail = &x->next;
	}
	if (first == NULL)
		return;
	*tail = d->renames;
	if (d->renames == NULL)
		d->renames_tail = tail;
	d->renames = first;
	d->n_renames += r->n;
}

/* Every rename waiting, in order; the queue is empty after. */
Rename *
queue_take_renames(LiveDest *d)
{
	Rename *list = d->renames;

	d->renames = NULL;
	d->renames_tail = &d->renames;
	d->n_renames = 0;
	return list;
}

void
queue_free_renames(Rename *r)
{
	while (r != NULL) {
		Rename *next = r->next;

		free(r->from);
		free(r->to);
		free(r);
		r = next;
	}
}

/* Queues a subtree pass, unless one over an ancestor is queued already. */
void
queue_subtree(LiveDest *d, const char *relpath)
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
	xgrow(&d->subtrees, &d->cap_subtrees, d->n_subtrees + 1,
	    sizeof *d->subtrees, 8);
	d->subtrees[d->n_subtrees++] = xstrdup(relpath);
}

/* A full pass covers every subtree pass waiting. */
void
queue_drop_subtrees(LiveDest *d)
{
	for (size_t i = 0; i < d->n_subtrees; i++)
		free(d->subtrees[i]);
	d->n_subtrees = 0;
}

void
queue_init(LiveDest *d)
{
	d->pending = (Map)MAP_INIT;
	d->dirs = (Map)MAP_INIT;
	d->waiting = (Heap)HEAP_INIT(waiting_less);
	d->ripe = (Heap)HEAP_INIT(ripe_less);
	d->retry = (Heap)HEAP_INIT(retry_less);
	d->renames_tail = &d->renames;
}

void
queue_free(LiveDest *d)
{
	MapIter it = map_iter(&d->pending);

	for (MapNode *n; (n = map_next(&it)) != NULL;) {
		Pending *p = MAP_ENTRY(n, Pending, node);

		free(p->relpath);
		free(p);
	}
	it = map_iter(&d->dirs);
	for (MapNode *n; (n = map_next(&it)) != NULL;)
		free(MAP_ENTRY(n, DirCount, node));
	map_clear(&d->pending);
	map_clear(&d->dirs);
	heap_clear(&d->waiting);
	heap_clear(&d->ripe);
	heap_clear(&d->retry);
	queue_free_renames(queue_take_renames(d));
	queue_drop_subtrees(d);
	free(d->subtrees);
	d->subtrees = NULL;
	d->cap_subtrees = 0;
}
