/*
 * nodes — the watcher's tree of watched directories (watcher thread):
 * a node per directory (parent, name, inode), found by wd and by (parent,
 * name) through two util/map maps. A rename is one relink whatever the
 * size of the subtree; a path is built by walking up. See watcher.c's
 * DESIGN for why the tree, not the library's records, says where a
 * directory is.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "watch-int.h"

struct name_key {
	const struct node *parent;
	const char *name;
};

static uint64_t
wd_hash(int wd)
{
	return map_hash_u64((uint64_t)(unsigned)wd, 0);
}

static uint64_t
name_hash(const struct node *parent, const char *name)
{
	return map_hash_u64((uint64_t)(uintptr_t)parent, map_hash_str(name));
}

static bool
wd_equal(const MapNode *m, const void *key)
{
	return MAP_ENTRY(m, struct node, by_wd)->wd == *(const int *)key;
}

static bool
name_equal(const MapNode *m, const void *key)
{
	const struct node *n = MAP_ENTRY(m, struct node, by_name);
	const struct name_key *k = key;

	return n->parent == k->parent && strcmp(n->name, k->name) == 0;
}

struct node *
watch_node_by_wd(Watcher *w, int wd)
{
	MapNode *m = map_find(&w->by_wd, wd_hash(wd), wd_equal, &wd);

	return m != NULL ? MAP_ENTRY(m, struct node, by_wd) : NULL;
}

struct node *
watch_node_by_name(Watcher *w, const struct node *parent, const char *name)
{
	struct name_key k = { parent, name };
	MapNode *m;

	if (parent == NULL)
		return NULL;
	m = map_find(&w->by_name, name_hash(parent, name), name_equal, &k);
	return m != NULL ? MAP_ENTRY(m, struct node, by_name) : NULL;
}

/* Takes n out of its parent's children and the name map. */
static void
detach(Watcher *w, struct node *n)
{
	if (n->parent == NULL)
		return;
	map_remove(&w->by_name, &n->by_name);
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		n->parent->child = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	n->parent = n->next = n->prev = NULL;
	w->tree_gen++;
}

void
watch_node_attach(Watcher *w, struct node *n, struct node *parent)
{
	n->parent = parent;
	if (n->flags & NODE_LOST)
		w->lost--;
	n->flags &= ~(NODE_ORPHAN | NODE_LOST);
	n->prev = NULL;
	n->next = parent->child;
	if (n->next != NULL)
		n->next->prev = n;
	parent->child = n;
	map_insert(&w->by_name, &n->by_name, name_hash(parent, n->name));
	w->tree_gen++;
}

void
watch_node_set_lost(Watcher *w, struct node *n)
{
	if (!(n->flags & NODE_LOST)) {
		n->flags |= NODE_LOST;
		w->lost++;
	}
}

void
watch_node_orphan(Watcher *w, struct node *n)
{
	detach(w, n);
	n->flags |= NODE_ORPHAN;
}

struct node *
watch_node_top(struct node *n)
{
	while (n->parent != NULL)
		n = n->parent;
	return n;
}

struct node *
watch_node_new(Watcher *w, int wd, const char *name, const struct stat *st)
{
	size_t len = strlen(name);
	struct node *n = xcalloc(1, offsetof(struct node, iname) + len + 1);

	memcpy(n->iname, name, len + 1);
	n->name = n->iname;
	n->wd = wd;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	map_insert(&w->by_wd, &n->by_wd, wd_hash(wd));
	w->tree_gen++;
	atomic_store(&w->st_watches, w->by_wd.count);
	return n;
}

static void
node_free_mem(struct node *n)
{
	if (n->name != n->iname)
		free(n->name);
	free(n);
}

static struct root *
root_of_top(Watcher *w, const struct node *top)
{
	for (struct root *r = w->roots; r != NULL; r = r->next)
		if (r->top == top)
			return r;
	return NULL;
}

/* Frees one node; its children become orphans (lost with it, if it was). */
void
watch_node_free(Watcher *w, struct node *n, bool rm)
{
	while (n->child != NULL) {
		struct node *c = n->child;
		watch_node_orphan(w, c);
		if (n->flags & NODE_LOST)
			watch_node_set_lost(w, c);
	}
	if (n->flags & NODE_LOST)
		w->lost--;
	if (rm)
		watch_rm(w, n->wd);
	if (n->flags & NODE_TOP) {
		struct root *r = root_of_top(w, n);
		if (r != NULL) {
			r->top = NULL;
			/* The kernel dropped it: deleted or unmounted. */
			r->gone = !rm;
		}
	}
	detach(w, n);
	map_remove(&w->by_wd, &n->by_wd);
	w->tree_gen++;
	atomic_store(&w->st_watches, w->by_wd.count);
	for (size_t i = 0; i < w->n_moves; i++)
		if (w->moves[i].node == n)
			w->moves[i].node = NULL;
	for (size_t i = 0; i < w->n_retries; i++)
		if (w->retries[i].parent == n)
			w->retries[i].parent = NULL;
	node_free_mem(n);
}

void
watch_drop_subtree(Watcher *w, struct node *n, bool rm)
{
	for (;;) {
		struct node *x = n;
		while (x->child != NULL)
			x = x->child;
		if (x == n)
			break;
		watch_node_free(w, x, rm);
	}
	watch_node_free(w, n, rm);
}

/*
 * The node that held the name loses it: it is dead or elsewhere, and its
 * own events will tell.
 */
int
watch_relink(Watcher *w, struct node *n, struct node *parent,
    const char *name)
{
	struct node *occupant;

	if (n->flags & NODE_TOP)
		return -EBUSY;
	for (struct node *p = parent; p != NULL; p = p->parent)
		if (p == n)
			return -ELOOP;
	occupant = watch_node_by_name(w, parent, name);
	if (occupant == n)
		return 0;
	if (occupant != NULL)
		watch_node_orphan(w, occupant);
	detach(w, n);
	if (strcmp(n->name, name) != 0) {
		char *copy = xstrdup(name);
		if (n->name != n->iname)
			free(n->name);
		n->name = copy;
	}
	watch_node_attach(w, n, parent);
	return 0;
}

struct root *
watch_node_path(Watcher *w, const struct node *n, struct sbuf *out)
{
	const struct node *x;
	struct root *root;
	size_t len = 0, pos;

	for (x = n; x->parent != NULL; x = x->parent)
		len += strlen(x->name) + 1;
	if (!(x->flags & NODE_TOP) || (root = root_of_top(w, x)) == NULL)
		return NULL;
	if (len > 0)
		len--;
	out->len = 0;
	sbuf_reserve(out, len);
	out->len = pos = len;
	out->s[len] = '\0';
	for (x = n; x->parent != NULL; x = x->parent) {
		size_t l = strlen(x->name);
		pos -= l;
		memcpy(out->s + pos, x->name, l);
		if (pos > 0)
			out->s[--pos] = '/';
	}
	return root;
}

struct node *
watch_node_by_inode(Watcher *w, const struct stat *st)
{
	MapIter it = map_iter(&w->by_wd);

	for (MapNode *m; (m = map_next(&it)) != NULL; ) {
		struct node *n = MAP_ENTRY(m, struct node, by_wd);
		if (n->dev == st->st_dev && n->ino == st->st_ino)
			return n;
	}
	return NULL;
}

void
watch_nodes_unvisit(Watcher *w)
{
	MapIter it = map_iter(&w->by_wd);

	for (MapNode *m; (m = map_next(&it)) != NULL; )
		MAP_ENTRY(m, struct node, by_wd)->flags &= ~NODE_VISITED;
}

/*
 * A node no repair walk reached is outside every root (or dead): it is
 * let go at its next event (or freed at its IN_IGNORED).
 */
void
watch_nodes_lose_unvisited(Watcher *w)
{
	MapIter it = map_iter(&w->by_wd);

	for (MapNode *m; (m = map_next(&it)) != NULL; ) {
		struct node *n = MAP_ENTRY(m, struct node, by_wd);
		if (n->flags & (NODE_VISITED | NODE_TOP))
			continue;
		watch_node_orphan(w, n);
		watch_node_set_lost(w, n);
	}
}

void
watch_nodes_free_all(Watcher *w)
{
	MapIter it = map_iter(&w->by_wd);

	for (MapNode *m; (m = map_next(&it)) != NULL; )
		node_free_mem(MAP_ENTRY(m, struct node, by_wd));
	map_clear(&w->by_wd);
	map_clear(&w->by_name);
	for (struct root *r = w->roots; r != NULL; r = r->next)
		r->top = NULL;
	w->n_moves = 0;
	w->lost = 0;
	watch_retries_forget(w);
	atomic_store(&w->st_watches, 0);
}

/*
 * A walk of the nodes (no recursion: the parent links lead back), so it
 * costs one visit per watch and runs only on hand-offs after a change.
 */
void
watch_count_nodes(Watcher *w, struct batch *b)
{
	size_t n = 0;

	if (w->tree_gen == w->counted_gen)
		return;
	for (struct root *r = w->roots; r != NULL; r = r->next)
		n++;
	if (n == 0)
		return;
	b->pub.counts = xrealloc(b->pub.counts, n * sizeof *b->pub.counts);
	b->pub.n_counts = n;
	n = 0;
	for (struct root *r = w->roots; r != NULL; r = r->next) {
		size_t k = 0;
		struct node *x = r->top;

		while (x != NULL) {
			k++;
			if (x->child != NULL) {
				x = x->child;
				continue;
			}
			while (x != r->top && x->next == NULL)
				x = x->parent;
			x = x == r->top ? NULL : x->next;
		}
		b->pub.counts[n++] = (WatchCount){ .root = r->id,
		    .watches = k };
	}
	w->counted_gen = w->tree_gen;
}
