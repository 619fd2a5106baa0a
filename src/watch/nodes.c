/*
 * nodes — the watcher's tree of watched directories (watcher thread):
 * a node per directory (parent, name). inotify nodes are found by wd and
 * by (parent, name) through two util/map maps and know their inode;
 * fanotify nodes are found by file handle only (one map): events name
 * directories by handle, and a moved directory's handle comes with its
 * rename. A rename is one relink whatever the size of the subtree; a
 * path is built by walking up. See watcher.c's DESIGN for why the tree,
 * not the library's records, says where a directory is.
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

#define INO(p) MAP_ENTRY(p, struct ino_node, n)
#define FAN(p) MAP_ENTRY(p, struct fan_node, n)
#define KEY(m) MAP_ENTRY(m, struct node, key)

struct handle_key {
	uint8_t fs, hlen;
	int32_t htype;
	const unsigned char *bytes;
};

static bool
is_fan(const struct node *n)
{
	return (n->flags & NODE_FAN) != 0;
}

static uint64_t
handle_hash(uint8_t fs, int32_t htype, uint8_t hlen, const unsigned char *h)
{
	return map_hash_u64(map_hash_bytes(h, hlen),
	    ((uint64_t)fs << 32) | (uint32_t)htype);
}

static bool
handle_equal(const MapNode *m, const void *key)
{
	const struct node *n = KEY(m);
	const struct handle_key *k = key;

	return n->fs == k->fs && n->htype == k->htype && n->hlen == k->hlen &&
	    memcmp(FAN(n)->data, k->bytes, k->hlen) == 0;
}

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
	return INO(KEY(m))->wd == *(const int *)key;
}

static bool
name_equal(const MapNode *m, const void *key)
{
	const struct node *n = &MAP_ENTRY(m, struct ino_node, by_name)->n;
	const struct name_key *k = key;

	return n->parent == k->parent && strcmp(n->name, k->name) == 0;
}

struct node *
watch_node_by_wd(Watcher *w, int wd)
{
	MapNode *m = map_find(&w->by_wd, wd_hash(wd), wd_equal, &wd);

	return m != NULL ? KEY(m) : NULL;
}

struct node *
watch_node_by_handle(Watcher *w, uint8_t fs, int32_t htype, uint8_t hlen,
    const unsigned char *handle)
{
	struct handle_key k = { fs, hlen, htype, handle };
	MapNode *m = map_find(&w->by_handle, handle_hash(fs, htype, hlen,
	    handle), handle_equal, &k);

	return m != NULL ? KEY(m) : NULL;
}

bool
watch_node_is(const struct node *n, const struct dir_id *id)
{
	if (is_fan(n))
		return n->fs == id->fs && n->htype == id->htype &&
		    n->hlen == id->hlen &&
		    memcmp(FAN(n)->data, id->handle, id->hlen) == 0;
	return INO(n)->dev == id->dev && INO(n)->ino == id->ino;
}

/*
 * fanotify nodes are in no name map (memory): by the child's handle when
 * the event has it (FAN_REPORT_TARGET_FID), else a look at the children.
 */
struct node *
watch_node_child(Watcher *w, struct node *parent, const char *name,
    const struct dir_id *child_id)
{
	if (parent == NULL)
		return NULL;
	if (!is_fan(parent))
		return watch_node_by_name(w, parent, name);
	if (child_id != NULL)
		return watch_node_by_handle(w, child_id->fs, child_id->htype,
		    child_id->hlen, child_id->handle);
	for (struct node *c = parent->child; c != NULL; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

size_t
watch_node_count(const Watcher *w)
{
	return w->by_wd.count + w->by_handle.count;
}

struct node *
watch_node_by_name(Watcher *w, const struct node *parent, const char *name)
{
	struct name_key k = { parent, name };
	MapNode *m;

	if (parent == NULL)
		return NULL;
	m = map_find(&w->by_name, name_hash(parent, name), name_equal, &k);
	return m != NULL ? &MAP_ENTRY(m, struct ino_node, by_name)->n : NULL;
}

/* Takes n out of its parent's children and the name map. */
static void
detach(Watcher *w, struct node *n)
{
	if (n->parent == NULL)
		return;
	if (!is_fan(n))
		map_remove(&w->by_name, &INO(n)->by_name);
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
	if (!is_fan(n))
		map_insert(&w->by_name, &INO(n)->by_name,
		    name_hash(parent, n->name));
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
watch_node_new_ino(Watcher *w, int wd, const char *name,
    const struct stat *st)
{
	size_t len = strlen(name);
	struct ino_node *x = xcalloc(1, offsetof(struct ino_node, iname) +
	    len + 1);

	memcpy(x->iname, name, len + 1);
	x->n.name = x->iname;
	x->wd = wd;
	x->dev = st->st_dev;
	x->ino = st->st_ino;
	map_insert(&w->by_wd, &x->n.key, wd_hash(wd));
	w->tree_gen++;
	atomic_store(&w->st_watches, watch_node_count(w));
	return &x->n;
}

struct node *
watch_node_new_fan(Watcher *w, const struct dir_id *id, const char *name)
{
	size_t len = strlen(name);
	struct fan_node *x = xcalloc(1, offsetof(struct fan_node, data) +
	    id->hlen + len + 1);

	memcpy(x->data, id->handle, id->hlen);
	x->n.name = (char *)x->data + id->hlen;
	memcpy(x->n.name, name, len + 1);
	x->n.flags = NODE_FAN;
	x->n.fs = id->fs;
	x->n.hlen = id->hlen;
	x->n.htype = id->htype;
	map_insert(&w->by_handle, &x->n.key, handle_hash(id->fs, id->htype,
	    id->hlen, id->handle));
	w->tree_gen++;
	atomic_store(&w->st_watches, watch_node_count(w));
	return &x->n;
}

/* The name it was created with, kept in its allocation. */
static const char *
first_name(const struct node *n)
{
	return is_fan(n) ? (const char *)FAN(n)->data + n->hlen :
	    INO(n)->iname;
}

static void
node_free_mem(struct node *n)
{
	if (n->name != first_name(n))
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
	if (rm && !is_fan(n))
		watch_rm(w, INO(n)->wd);
	if (n->flags & NODE_TOP) {
		struct root *r = root_of_top(w, n);
		if (r != NULL) {
			r->top = NULL;
			/* The kernel dropped it: deleted or unmounted. */
			r->gone = !rm;
		}
	}
	detach(w, n);
	map_remove(is_fan(n) ? &w->by_handle : &w->by_wd, &n->key);
	w->tree_gen++;
	atomic_store(&w->st_watches, watch_node_count(w));
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
	/* A fanotify node that loses its name to n goes at its
	 * FAN_DELETE_SELF or stays harmlessly (paths come from parents). */
	occupant = is_fan(n) ? NULL : watch_node_by_name(w, parent, name);
	if (occupant == n || (n->parent == parent &&
	    strcmp(n->name, name) == 0))
		return 0;
	if (occupant != NULL)
		watch_node_orphan(w, occupant);
	detach(w, n);
	if (strcmp(n->name, name) != 0) {
		char *copy = xstrdup(name);
		if (n->name != first_name(n))
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

/* inotify nodes only: fanotify nodes are found by handle. */
struct node *
watch_node_by_inode(Watcher *w, const struct stat *st)
{
	MapIter it = map_iter(&w->by_wd);

	for (MapNode *m; (m = map_next(&it)) != NULL; ) {
		struct ino_node *x = INO(KEY(m));
		if (x->dev == st->st_dev && x->ino == st->st_ino)
			return &x->n;
	}
	return NULL;
}

void
watch_nodes_unvisit(Watcher *w)
{
	Map *maps[] = { &w->by_wd, &w->by_handle };

	for (size_t i = 0; i < 2; i++) {
		MapIter it = map_iter(maps[i]);
		for (MapNode *m; (m = map_next(&it)) != NULL; )
			KEY(m)->flags &= ~NODE_VISITED;
	}
}

/*
 * A node no repair walk reached is outside every root (or dead). An
 * inotify one is let go at its next event (or freed at its IN_IGNORED);
 * a fanotify one has no watch to wait for and goes now.
 */
void
watch_nodes_lose_unvisited(Watcher *w)
{
	Map *maps[] = { &w->by_wd, &w->by_handle };
	MapIter it;

	for (size_t i = 0; i < 2; i++) {
		it = map_iter(maps[i]);
		for (MapNode *m; (m = map_next(&it)) != NULL; ) {
			struct node *n = KEY(m);
			if (n->flags & (NODE_VISITED | NODE_TOP))
				continue;
			watch_node_orphan(w, n);
			watch_node_set_lost(w, n);
		}
	}
	/* Freeing one node only orphans its children: the iteration holds. */
	it = map_iter(&w->by_handle);
	for (MapNode *m; (m = map_next(&it)) != NULL; )
		if (KEY(m)->flags & NODE_LOST)
			watch_node_free(w, KEY(m), false);
}

void
watch_nodes_free_all(Watcher *w)
{
	Map *maps[] = { &w->by_wd, &w->by_handle };

	for (size_t i = 0; i < 2; i++) {
		MapIter it = map_iter(maps[i]);
		for (MapNode *m; (m = map_next(&it)) != NULL; )
			node_free_mem(KEY(m));
		map_clear(maps[i]);
	}
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
