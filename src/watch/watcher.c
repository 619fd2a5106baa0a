/*
 * watcher — see include/watch/watcher.h.
 *
 * DESIGN
 * Threads. libinotifytools keeps its inotify fd, its read buffer and its
 * watch records in process-wide globals without locks, so one thread owns
 * it: the watcher thread initializes it, places and removes every watch,
 * reads every event and cleans it up. The reactor reaches that thread only
 * through a command list (add root, remove root) and gets results back as
 * batches on an out list, both under the one `lock` (critical sections are
 * a few pointer moves; there is no other lock, so no lock order).
 *
 * Hand-off to the reactor is pool.c's: a finished batch is appended to the
 * out list and the eventfd is written only when the list goes from empty
 * to non-empty; the reactor takes the whole list under the lock and, after
 * unlocking, drops what belongs to removed roots (a command sequence number
 * per batch tells incarnations of a root id apart) and calls the callback
 * once per batch. When the reactor falls MAX_QUEUED events behind, the
 * watcher stops reading, so the kernel queue overflows into IN_Q_OVERFLOW
 * (a rescan) instead of our memory growing without bound.
 *
 * Waiting. libinotifytools has no public call that returns its fd (we
 * find it, see Memory, but reading stays the library's) and waits with
 * select() whose timeout is in whole seconds: a timeout loop would delay
 * commands by up to a second. So the thread blocks in
 * inotifytools_next_events(-1, 1) and the reactor wakes it through
 * inotify itself: the read end of a pipe is watched (through
 * /proc/self/fd) for IN_MODIFY, and a command is
 * announced by writing one byte when the command list goes from empty to
 * non-empty. A self-test at start checks that the kernel reports pipe
 * writes; where it does not, the thread falls back to a 1 s timeout.
 * Events are never held back: next_events returns as soon as the fd is
 * readable, and the rest of a pass is taken with timeout 0, which only
 * polls, so a pass is "everything queued now" (up to READ_CAP).
 * num_events stays 1: with more, the library spins on FIONREAD until that
 * many events are queued.
 *
 * Paths. Our own tree is the authority on where a watched directory is: a
 * node per directory (parent, name, inode), found by wd and by (parent,
 * name) through two hash tables. A rename is one relink whatever the size
 * of the subtree, and a path is built by walking up. The library's records
 * would be no use for paths: in 3.22 inotifytools_replace_filename deletes
 * and reinserts nodes of the red-black tree it is walking and skips
 * entries (746 of 1000 watched subdirectories kept their old name in a
 * test), and a record whose watch the kernel dropped (IN_IGNORED) can only
 * go through inotify_rm_watch, which then fails: the library keeps the
 * record for good.
 *
 * Memory. So the library keeps no record of our watches at all: it cost
 * 176 B per directory (record, a copy of the path, nodes in two red-black
 * trees) beside our node, and made our RSS per watched directory larger
 * than lsyncd's (327 B vs 279 B at 50,000 directories; 124 B vs 251 B
 * without it and with a node and its name in one allocation, see
 * docs/performance-live.md). The library still owns the instance: it
 * creates the fd, reads and decodes every event (next_events passes
 * events of wds it has no record of through untouched: with no regex and
 * no stats it never looks them up) and closes it; its only record is the
 * wake-up pipe's. We place and remove watches with inotify_add_watch /
 * inotify_rm_watch on its fd, which find_lib_fd finds through /proc
 * (the library has no call that returns it). A node is one allocation
 * with its name.
 *
 * Placing a watch. A directory is opened beneath its root's fd
 * (util/beneath: no symlink on the way) and watched through
 * "/proc/self/fd/N/", so the watch is on exactly the inode we opened and
 * fstat'ed, with IN_MASK_CREATE, so an inode that is already watched
 * answers EEXIST instead of quietly sharing its old wd. The kernel
 * returns the wd. An EEXIST for an inode none of our nodes has, or lost
 * nodes outnumbering the live ones, rebuild the instance: cleanup,
 * initialize, every root watched again, and the batch says overflow so
 * the roots are rescanned.
 *
 * New directories. A directory that appears is watched first and read
 * second, and each entry found becomes a synthetic IN_CREATE; its
 * subdirectories get the same (an explicit stack, one fd open at a time).
 * A scan sees the tree as it is now while the queue still holds older
 * events, so the rules hold for a tree that is ahead of the events (or
 * behind them): a node goes away only on IN_IGNORED (by wd, exact) or
 * our own removal; a node whose name a newer directory takes becomes an
 * orphan until its IN_IGNORED or a move places it again; EEXIST is
 * resolved by inode; a directory that cannot be opened at the path our
 * tree gives (an ancestor's rename is still queued) is tried again after
 * the next pass; and where no rule fits, the batch says overflow.
 *
 * Moves. A pass is read whole before it is processed, so an IN_MOVED_FROM
 * of a directory whose IN_MOVED_TO (same cookie) is in the same pass is a
 * rename: its node is relinked, unless the inode now at the new name says
 * otherwise. Without its IN_MOVED_TO the directory left every watched
 * tree and its subtree's watches are removed; should the IN_MOVED_TO come
 * in the next pass, it is a new directory like any other.
 *
 * Lost events. IN_Q_OVERFLOW may have swallowed new directories, renames
 * and IN_IGNOREDs, so after it every root is walked again in place
 * (repair): missing watches are placed, moved nodes found by inode, and
 * nodes no walk reaches are marked lost and let go at their next event.
 * A fresh instance would be simpler but costs a second placement of every
 * watch, and loses what arrives meanwhile, which invites the next
 * overflow.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/select.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>
#include <inotifytools/inotify.h>
#include <inotifytools/inotifytools.h>

#include "util/alloc.h"
#include "util/beneath.h"
#include "util/map.h"
#include "watch/watcher.h"

#define DIR_MASK (IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | \
	IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | \
	IN_MOVE_SELF | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_ONLYDIR | \
	IN_MASK_CREATE)

#define READ_CAP 4096		/* raw events taken in one pass */
#define BATCH_CAP 4096		/* events in one delivered batch */
#define MAX_QUEUED (256 * 1024)	/* undelivered events before we stop reading */
#define LOST_REBUILD_MIN 16384	/* lost nodes worth a rebuild */

enum {
	NODE_TOP = 1,		/* a root's directory */
	NODE_ORPHAN = 2,	/* lost its place: dead, or moved and not yet seen */
	NODE_LOST = 4,		/* orphan a repair walk did not find: outside */
	NODE_UNMOUNTED = 8,	/* IN_UNMOUNT seen: look again at IN_IGNORED */
	NODE_VISITED = 16,	/* reached by the current repair walk */
};

/*
 * One watched directory. Owned by the wd table. One allocation with its
 * name (iname): 96 bytes for a name of up to 8 characters, see DESIGN.
 */
struct node {
	struct node *parent;	/* NULL for a root's top and for orphans */
	struct node *child;	/* first child */
	struct node *next, *prev;	/* siblings */
	struct node *wd_next;	/* chain in the wd table */
	struct node *name_next;	/* chain in the name table */
	char *name;		/* "" for a root's top; iname or, renamed, malloc'd */
	uint64_t dev, ino;	/* tells a moved directory from a new one */
	int wd;
	uint8_t flags;
	char iname[];		/* the name it was created with */
};

struct table {
	struct node **slots;
	size_t mask;		/* slots - 1, a power of two minus one */
	size_t n;
};

/* A root as the watcher thread knows it. */
struct root {
	struct root *next;
	unsigned id;
	char *path;
	int fd;			/* its directory while held: see root_hold */
	int holds;
	const Exclude *ex;	/* borrowed until WATCH_ROOT_RELEASED */
	struct node *top;	/* NULL once the directory is gone */
	bool gone;		/* its directory was deleted: nothing to repair */
	/* New directories of this pass that needed / got a watch. */
	size_t pass_needed, pass_placed;
	int pass_error;
};

/* A growable string; also used as a stack of strings. */
struct sbuf {
	char *s;
	size_t len, cap;
};

/* An event as read, copied out of libinotifytools' static buffer. */
struct raw {
	int wd;
	uint32_t mask, cookie;
	size_t name;		/* offset in raw_names */
};

/* A directory moved within the pass: the node its IN_MOVED_FROM named. */
struct pending_move {
	uint32_t cookie;
	struct node *node;	/* may be NULL: the old name was not watched */
};

/* One batch. pub first: watcher_batch_free gets &pub. */
struct batch {
	WatchBatch pub;
	struct batch *next;
	uint64_t seq;		/* commands processed before its content */
	size_t cap_events, cap_notices;
	struct sbuf strings;	/* relpaths; events hold offsets until sealed */
};

enum { CMD_ADD, CMD_REMOVE };

struct cmd {
	struct cmd *next;
	int kind;
	unsigned root;
	uint64_t seq;
	const Exclude *ex;
	char path[];
};

/*
 * A directory a walk could not open (ENOENT): deleted, or an ancestor was
 * renamed after the event we are processing. Tried again, at its parent's
 * then current path, after the passes that bring the rename.
 */
struct retry {
	struct node *parent;	/* NULL once freed: dropped */
	char *name;
	bool emit;
	int failures;		/* in passes that read everything queued */
};

/* A directory waiting in a walk: its relpath is on the walk's path stack. */
struct walk_item {
	struct node *parent;	/* NULL: the parent has no watch, count only */
	size_t off;
};

/* One recursive walk: a root being added or repaired, a new directory. */
struct walk {
	struct root *root;
	bool emit;		/* a synthetic event per entry found */
	bool rescan_known;	/* read directories that were already watched */
	bool no_space;		/* ENOSPC seen: stop asking the kernel */
	bool busy;		/* the root's directory is watched for another root */
	size_t needed, placed;
	int error;		/* the first failure */
	struct walk_item *items;
	size_t n_items, cap_items;
	struct sbuf paths;
};

/* The reactor's view of a root: which events are still wanted. */
struct reg {
	unsigned id;
	uint64_t add_seq;	/* batches older than the add are not its */
	char *path;
};

struct Watcher {
	/* Reactor thread only. */
	struct event_base *base;
	WatcherFn cb;
	void *arg;
	int efd;
	struct event *ev;
	struct reg *regs;
	size_t n_regs, cap_regs;
	uint64_t next_seq;
	pthread_t thread;
	bool started;

	/* Under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* init done; out list drained; stopping */
	struct cmd *cmd_head, *cmd_tail;
	struct batch *out_head, *out_tail;
	size_t out_events;
	bool stopping;
	atomic_bool quit;	/* stopping, readable without the lock */
	bool init_done;
	int init_error;

	/* Read end watched by the thread through inotify; the reactor writes. */
	int wake_rd, wake_wr;

	/* Watcher thread only. */
	struct root *roots;
	struct table by_wd, by_name;
	int ifd;		/* libinotifytools' inotify fd, see find_lib_fd */
	int wake_wd;		/* -1: no wake-up through inotify, poll 1 s */
	bool broken;		/* libinotifytools failed to start again */
	bool need_rebuild;	/* a new inotify instance, see rebuild() */
	bool need_repair;	/* events were lost, see repair() */
	size_t lost;		/* NODE_LOST nodes */
	uint64_t seq_done;
	struct batch *cur;
	struct raw *raw;
	size_t n_raw, cap_raw;
	struct sbuf raw_names;
	struct pending_move *moves;
	size_t n_moves, cap_moves;
	struct retry *retries;
	size_t n_retries, cap_retries;
	struct sbuf path, path2;	/* scratch: event path, walk path */
	/* Bumped when a node is attached or detached: the per-root watch
	 * counts are recounted at the next hand-off (see count_watches). */
	uint64_t tree_gen, counted_gen;

	/* Counters, read by watcher_get_stats from any thread. */
	atomic_size_t st_watches, st_rebuilds;
	atomic_uint_least64_t st_events, st_batches;
};

/* libinotifytools is process-global: one Watcher at a time. */
static atomic_bool watcher_exists;

static void
sbuf_reserve(struct sbuf *b, size_t more)
{
	if (b->len + more + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + more + 1)
			cap *= 2;
		b->s = xrealloc(b->s, cap);
		b->cap = cap;
	}
}

static void
sbuf_set(struct sbuf *b, const char *s, size_t len)
{
	b->len = 0;
	sbuf_reserve(b, len);
	memcpy(b->s, s, len);
	b->len = len;
	b->s[len] = '\0';
}

/* Appends "/name" (or just name when empty). */
static void
sbuf_join(struct sbuf *b, const char *name)
{
	size_t n = strlen(name);

	sbuf_reserve(b, n + 1);
	if (b->len > 0)
		b->s[b->len++] = '/';
	memcpy(b->s + b->len, name, n);
	b->len += n;
	b->s[b->len] = '\0';
}

/* ---- batches (watcher thread) ---- */

static struct batch *
cur_batch(Watcher *w)
{
	if (w->cur == NULL) {
		w->cur = calloc(1, sizeof *w->cur);
		if (w->cur == NULL)
			abort();
		w->cur->seq = w->seq_done;
	}
	return w->cur;
}

static void hand_off(Watcher *w);

static void
emit_event(Watcher *w, unsigned root, uint32_t mask, uint32_t cookie,
    bool synthetic, const char *relpath, size_t len)
{
	struct batch *b = cur_batch(w);
	WatchEvent *e;

	if (b->pub.n == b->cap_events) {
		b->cap_events = b->cap_events ? 2 * b->cap_events : 64;
		b->pub.events = xrealloc(b->pub.events,
		    b->cap_events * sizeof *b->pub.events);
	}
	sbuf_reserve(&b->strings, len);
	e = &b->pub.events[b->pub.n++];
	e->root = root;
	e->mask = mask;
	e->cookie = cookie;
	e->synthetic = synthetic;
	/* An offset until the batch is sealed: strings may still move. */
	e->relpath = (char *)(uintptr_t)b->strings.len;
	memcpy(b->strings.s + b->strings.len, relpath, len);
	b->strings.len += len;
	b->strings.s[b->strings.len++] = '\0';
	if (b->pub.n >= BATCH_CAP)
		hand_off(w);
}

static void
emit_notice(Watcher *w, WatchNoticeKind kind, unsigned root, int error,
    size_t needed, size_t placed)
{
	struct batch *b = cur_batch(w);

	if (b->pub.n_notices == b->cap_notices) {
		b->cap_notices = b->cap_notices ? 2 * b->cap_notices : 4;
		b->pub.notices = xrealloc(b->pub.notices,
		    b->cap_notices * sizeof *b->pub.notices);
	}
	b->pub.notices[b->pub.n_notices++] = (WatchNotice){
		.kind = kind, .root = root, .error = error,
		.dirs_needed = needed, .dirs_placed = placed,
	};
}

static void
set_overflow(Watcher *w)
{
	cur_batch(w)->pub.overflow = true;
}

/*
 * Counts the watched directories of every root into b, when the tree
 * changed since the last count. A walk of the nodes (no recursion: the
 * parent links lead back), so it costs one visit per watch and runs only
 * on hand-offs after a change.
 */
static void
count_watches(Watcher *w, struct batch *b)
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

/* Passes the current batch to the reactor, if it says anything. */
static void
hand_off(Watcher *w)
{
	struct batch *b = w->cur;
	bool was_empty;

	if (b == NULL && w->tree_gen != w->counted_gen && w->roots != NULL)
		b = cur_batch(w);
	if (b == NULL)
		return;
	w->cur = NULL;
	count_watches(w, b);
	if (b->pub.n == 0 && b->pub.n_notices == 0 && !b->pub.overflow &&
	    b->pub.n_counts == 0) {
		watcher_batch_free(&b->pub);
		return;
	}
	for (size_t i = 0; i < b->pub.n; i++)
		b->pub.events[i].relpath = b->strings.s +
		    (uintptr_t)b->pub.events[i].relpath;
	pthread_mutex_lock(&w->lock);
	was_empty = w->out_head == NULL;
	if (w->out_tail != NULL)
		w->out_tail->next = b;
	else
		w->out_head = b;
	w->out_tail = b;
	w->out_events += b->pub.n;
	if (was_empty) {
		uint64_t one = 1;
		/* Cannot fail short of a bug: the counter never nears max. */
		if (write(w->efd, &one, sizeof one) < 0)
			abort();
	}
	pthread_mutex_unlock(&w->lock);
}

/* ---- node tables (watcher thread) ---- */

static size_t
wd_slot(const struct table *t, int wd)
{
	return ((uint32_t)wd * 2654435761u) & t->mask;
}

static size_t
name_slot(const struct table *t, const struct node *parent, const char *name)
{
	uint64_t h = 1469598103934665603ull ^ (uintptr_t)parent;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211ull;
	return (size_t)(h ^ (h >> 29)) & t->mask;
}

/* Doubles a table once it holds as many nodes as it has slots. */
static void
table_grow(struct table *t, bool by_name)
{
	struct node **old = t->slots;
	size_t old_size = t->slots ? t->mask + 1 : 0;
	size_t size = old_size ? 2 * old_size : 1024;

	if (t->slots != NULL && t->n < old_size)
		return;
	t->slots = calloc(size, sizeof *t->slots);
	if (t->slots == NULL)
		abort();
	t->mask = size - 1;
	for (size_t i = 0; i < old_size; i++) {
		struct node *n = old[i], *next;
		for (; n != NULL; n = next) {
			size_t s;
			if (by_name) {
				next = n->name_next;
				s = name_slot(t, n->parent, n->name);
				n->name_next = t->slots[s];
			} else {
				next = n->wd_next;
				s = wd_slot(t, n->wd);
				n->wd_next = t->slots[s];
			}
			t->slots[s] = n;
		}
	}
	free(old);
}

static struct node *
wd_find(Watcher *w, int wd)
{
	struct node *n;

	if (w->by_wd.slots == NULL)
		return NULL;
	for (n = w->by_wd.slots[wd_slot(&w->by_wd, wd)]; n; n = n->wd_next)
		if (n->wd == wd)
			return n;
	return NULL;
}

static struct node *
name_find(Watcher *w, const struct node *parent, const char *name)
{
	struct node *n;

	if (w->by_name.slots == NULL || parent == NULL)
		return NULL;
	for (n = w->by_name.slots[name_slot(&w->by_name, parent, name)]; n;
	    n = n->name_next)
		if (n->parent == parent && strcmp(n->name, name) == 0)
			return n;
	return NULL;
}

static void
name_unlink(Watcher *w, struct node *n)
{
	struct node **pp = &w->by_name.slots[name_slot(&w->by_name, n->parent,
	    n->name)];

	while (*pp != n)
		pp = &(*pp)->name_next;
	*pp = n->name_next;
	w->by_name.n--;
}

/* Takes n out of its parent's children and the name table. */
static void
detach(Watcher *w, struct node *n)
{
	if (n->parent == NULL)
		return;
	name_unlink(w, n);
	if (n->prev != NULL)
		n->prev->next = n->next;
	else
		n->parent->child = n->next;
	if (n->next != NULL)
		n->next->prev = n->prev;
	n->parent = n->next = n->prev = NULL;
	w->tree_gen++;
}

static void
attach(Watcher *w, struct node *n, struct node *parent)
{
	size_t s;

	n->parent = parent;
	if (n->flags & NODE_LOST)
		w->lost--;
	n->flags &= ~(NODE_ORPHAN | NODE_LOST);
	n->prev = NULL;
	n->next = parent->child;
	if (n->next != NULL)
		n->next->prev = n;
	parent->child = n;
	table_grow(&w->by_name, true);
	s = name_slot(&w->by_name, parent, n->name);
	n->name_next = w->by_name.slots[s];
	w->by_name.slots[s] = n;
	w->by_name.n++;
	w->tree_gen++;
}

static void
set_lost(Watcher *w, struct node *n)
{
	if (!(n->flags & NODE_LOST)) {
		n->flags |= NODE_LOST;
		w->lost++;
	}
}

static void
orphan(Watcher *w, struct node *n)
{
	detach(w, n);
	n->flags |= NODE_ORPHAN;
}

static struct node *
top_of(struct node *n)
{
	while (n->parent != NULL)
		n = n->parent;
	return n;
}

static struct node *
node_new(Watcher *w, int wd, const char *name, const struct stat *st)
{
	size_t len = strlen(name), s;
	struct node *n = calloc(1, offsetof(struct node, iname) + len + 1);

	if (n == NULL)
		abort();
	memcpy(n->iname, name, len + 1);
	n->name = n->iname;
	n->wd = wd;
	n->dev = st->st_dev;
	n->ino = st->st_ino;
	table_grow(&w->by_wd, false);
	s = wd_slot(&w->by_wd, wd);
	n->wd_next = w->by_wd.slots[s];
	w->by_wd.slots[s] = n;
	w->by_wd.n++;
	w->tree_gen++;
	atomic_store(&w->st_watches, w->by_wd.n);
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

/*
 * Frees one node (its children must be gone or orphaned). rm: remove the
 * kernel watch too; otherwise the kernel already dropped it.
 */
static void
node_free(Watcher *w, struct node *n, bool rm)
{
	struct node **pp;

	while (n->child != NULL) {
		struct node *c = n->child;
		orphan(w, c);
		if (n->flags & NODE_LOST)
			set_lost(w, c);
	}
	if (n->flags & NODE_LOST)
		w->lost--;
	/* EINVAL: the kernel dropped it meanwhile (its IN_IGNORED is
	 * queued and will find no node). */
	if (rm)
		(void)inotify_rm_watch(w->ifd, n->wd);
	if (n->flags & NODE_TOP) {
		struct root *r = root_of_top(w, n);
		if (r != NULL) {
			r->top = NULL;
			/* The kernel dropped it: deleted or unmounted. */
			r->gone = !rm;
		}
	}
	detach(w, n);
	pp = &w->by_wd.slots[wd_slot(&w->by_wd, n->wd)];
	while (*pp != n)
		pp = &(*pp)->wd_next;
	*pp = n->wd_next;
	w->by_wd.n--;
	w->tree_gen++;
	atomic_store(&w->st_watches, w->by_wd.n);
	for (size_t i = 0; i < w->n_moves; i++)
		if (w->moves[i].node == n)
			w->moves[i].node = NULL;
	for (size_t i = 0; i < w->n_retries; i++)
		if (w->retries[i].parent == n)
			w->retries[i].parent = NULL;
	node_free_mem(n);
}

/* Frees n and everything beneath it, deepest first. */
static void
drop_subtree(Watcher *w, struct node *n, bool rm)
{
	for (;;) {
		struct node *x = n;
		while (x->child != NULL)
			x = x->child;
		if (x == n)
			break;
		node_free(w, x, rm);
	}
	node_free(w, n, rm);
}

/*
 * Moves n to (parent, name). The node that held that name loses it: it is
 * dead or elsewhere, and its own events will tell.
 */
static int
relink(Watcher *w, struct node *n, struct node *parent, const char *name)
{
	struct node *occupant;

	if (n->flags & NODE_TOP)
		return -EBUSY;
	for (struct node *p = parent; p != NULL; p = p->parent)
		if (p == n)
			return -ELOOP;
	occupant = name_find(w, parent, name);
	if (occupant == n)
		return 0;
	if (occupant != NULL)
		orphan(w, occupant);
	detach(w, n);
	if (strcmp(n->name, name) != 0) {
		char *copy = strdup(name);
		if (copy == NULL)
			abort();
		if (n->name != n->iname)
			free(n->name);
		n->name = copy;
	}
	attach(w, n, parent);
	return 0;
}

/*
 * Writes n's path relative to its root into out and returns the root;
 * NULL when n hangs under an orphan (its place is unknown).
 */
static struct root *
node_path(Watcher *w, const struct node *n, struct sbuf *out)
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

/* ---- opening and watching (watcher thread) ---- */

/*
 * Opens the root's directory for a while. Not for longer: an open fd keeps
 * a deleted directory's inode alive, and then its IN_DELETE_SELF never
 * comes. Once the root is watched, the path must still name the same
 * directory (not one made again, or moved there).
 */
static int
root_hold(struct root *root)
{
	struct stat st;
	int fd;

	if (root->holds > 0) {
		root->holds++;
		return 0;
	}
	if ((fd = open(root->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (root->top != NULL && (fstat(fd, &st) < 0 ||
	    st.st_dev != root->top->dev || st.st_ino != root->top->ino)) {
		close(fd);
		return -ESTALE;
	}
	root->fd = fd;
	root->holds = 1;
	return 0;
}

static void
root_release(struct root *root)
{
	if (--root->holds == 0) {
		close(root->fd);
		root->fd = -1;
	}
}

/* The directory at relpath, if it is the inode of n. */
static bool
still_there(Watcher *w, const struct node *n)
{
	struct root *root = node_path(w, n, &w->path2);
	struct stat st;
	int fd;
	bool same;

	if (root == NULL || root_hold(root) < 0)
		return false;
	fd = open_beneath(root->fd, w->path2.s, O_PATH | O_DIRECTORY);
	same = fd >= 0 && fstat(fd, &st) == 0 && st.st_dev == n->dev &&
	    st.st_ino == n->ino;
	if (fd >= 0)
		close(fd);
	root_release(root);
	return same;
}

/* Rarely needed (EEXIST for an inode not where we expect it): a full scan. */
static struct node *
find_by_inode(Watcher *w, const struct stat *st)
{
	for (size_t i = 0; w->by_wd.slots && i <= w->by_wd.mask; i++)
		for (struct node *n = w->by_wd.slots[i]; n; n = n->wd_next)
			if (n->dev == st->st_dev && n->ino == st->st_ino)
				return n;
	return NULL;
}

/*
 * Watches the directory open as fd, on the library's instance but not
 * through the library (see DESIGN: its record per watch is memory we do
 * not use). Returns 0 and the new wd, -EEXIST when the inode is already
 * watched, or another -errno.
 */
static int
watch_fd(Watcher *w, int fd, int *wd)
{
	char path[48];
	int r;

	snprintf(path, sizeof path, "/proc/self/fd/%d/", fd);
	if ((r = inotify_add_watch(w->ifd, path, DIR_MASK)) < 0)
		return -errno;
	*wd = r;
	return 0;
}

/* ---- walks (watcher thread) ---- */

static void
walk_note(struct walk *wk, int error)
{
	if (wk->error == 0)
		wk->error = error;
}

static void
walk_push(struct walk *wk, struct node *parent, const char *relpath)
{
	size_t len = strlen(relpath);

	if (wk->n_items == wk->cap_items) {
		wk->cap_items = wk->cap_items ? 2 * wk->cap_items : 64;
		wk->items = xrealloc(wk->items,
		    wk->cap_items * sizeof *wk->items);
	}
	wk->items[wk->n_items++] = (struct walk_item){
		.parent = parent, .off = wk->paths.len,
	};
	sbuf_reserve(&wk->paths, len);
	memcpy(wk->paths.s + wk->paths.len, relpath, len + 1);
	wk->paths.len += len + 1;
}

/*
 * Gives the directory open as fd (at relpath, with st) a node under
 * parent (top: the root's node). Returns the node, or NULL when it has
 * no watch; *skip when its subtree must not be walked.
 */
static struct node *
walk_place(Watcher *w, struct walk *wk, int fd, const struct stat *st,
    struct node *parent, const char *relpath, bool *skip)
{
	const char *slash = strrchr(relpath, '/');
	const char *name = slash != NULL ? slash + 1 : relpath;
	bool top = relpath[0] == '\0';
	struct node *n;
	int wd = -1, r;

	if (wk->no_space) {
		walk_note(wk, -ENOSPC);
		return NULL;
	}
	r = watch_fd(w, fd, &wd);
	if (r == 0) {
		n = node_new(w, wd, name, st);
		n->flags |= NODE_VISITED;
		if (top) {
			n->flags |= NODE_TOP;
			wk->root->top = n;
		} else {
			struct node *occupant = name_find(w, parent, name);
			if (occupant != NULL)
				orphan(w, occupant);
			attach(w, n, parent);
		}
		wk->placed++;
		return n;
	}
	if (r != -EEXIST) {
		if (r == -ENOSPC)
			wk->no_space = true;
		walk_note(wk, r);
		return NULL;
	}
	n = top ? wk->root->top : name_find(w, parent, name);
	if (n != NULL && n->dev == st->st_dev && n->ino == st->st_ino) {
		/* Already watched here. It was read after its watch was
		 * placed, so only a repair or another root needs it again. */
		wk->placed++;
		n->flags |= NODE_VISITED;
		if (!wk->rescan_known)
			*skip = true;
		return n;
	}
	if (top) {
		/* Overlapping roots would share wds; see watcher_add_root. */
		wk->busy = true;
		walk_note(wk, -EBUSY);
		*skip = true;
		return NULL;
	}
	if ((n = find_by_inode(w, st)) == NULL) {
		/* The kernel has a watch we do not know (a bug, or lost
		 * track after an overflow): start over. */
		w->need_rebuild = true;
		walk_note(wk, -EIO);
		return NULL;
	}
	if (still_there(w, n)) {
		/* Visible at two paths (bind mount): watched at the other,
		 * so not missing here either. */
		wk->needed--;
		*skip = true;
		return NULL;
	}
	if ((r = relink(w, n, parent, name)) < 0) {
		set_overflow(w);
		w->need_repair = true;
		walk_note(wk, r);
		return NULL;
	}
	wk->placed++;
	n->flags |= NODE_VISITED;
	return n;
}

static void
retry_add(Watcher *w, struct node *parent, const char *relpath, bool emit)
{
	const char *slash = strrchr(relpath, '/');
	char *name = strdup(slash != NULL ? slash + 1 : relpath);

	if (name == NULL)
		abort();
	if (w->n_retries == w->cap_retries) {
		w->cap_retries = w->cap_retries ? 2 * w->cap_retries : 16;
		w->retries = xrealloc(w->retries,
		    w->cap_retries * sizeof *w->retries);
	}
	w->retries[w->n_retries++] = (struct retry){
		.parent = parent, .name = name, .emit = emit,
	};
}

/* Watches one directory, then reads it: entries out, subdirectories pushed. */
static void
walk_dir(Watcher *w, struct walk *wk, struct node *parent,
    const char *relpath)
{
	struct root *root = wk->root;
	bool top = relpath[0] == '\0', skip = false;
	struct node *n = NULL;
	struct dirent *de;
	struct stat st;
	DIR *dir;
	int fd;

	fd = open_beneath(root->fd, relpath, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		/* Gone, or not a directory any more, or not where our tree
		 * says: an ancestor renamed by an event still queued. */
		if (!top && fd == -ENOENT && parent != NULL)
			retry_add(w, parent, relpath, wk->emit);
		if (!top && (fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP))
			return;
		wk->needed++;
		walk_note(wk, fd);
		return;
	}
	wk->needed++;
	if (fstat(fd, &st) < 0) {
		walk_note(wk, -errno);
		close(fd);
		return;
	}
	if (top || parent != NULL)
		n = walk_place(w, wk, fd, &st, parent, relpath, &skip);
	if (skip || (top && n == NULL)) {
		close(fd);
		return;
	}
	if ((dir = fdopendir(fd)) == NULL) {
		walk_note(wk, -errno);
		close(fd);
		return;
	}
	sbuf_set(&w->path2, relpath, strlen(relpath));
	while ((errno = 0, de = readdir(dir)) != NULL) {
		bool is_dir = de->d_type == DT_DIR;
		size_t base = w->path2.len;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type == DT_UNKNOWN) {
			struct stat cst;
			is_dir = fstatat(dirfd(dir), de->d_name, &cst,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(cst.st_mode);
		}
		sbuf_join(&w->path2, de->d_name);
		if (root->ex == NULL ||
		    !exclude_match(root->ex, w->path2.s, is_dir)) {
			if (wk->emit)
				emit_event(w, root->id, IN_CREATE |
				    (is_dir ? IN_ISDIR : 0), 0, true,
				    w->path2.s, w->path2.len);
			if (is_dir)
				walk_push(wk, n, w->path2.s);
		}
		w->path2.len = base;
		w->path2.s[base] = '\0';
	}
	if (errno != 0)
		walk_note(wk, -errno);
	closedir(dir);
}

/*
 * Watches relpath (a directory under parent, or the root itself when
 * relpath is "") and everything beneath it.
 */
static void
walk_run(Watcher *w, struct walk *wk, struct node *parent,
    const char *relpath)
{
	struct sbuf here = { 0 };
	int r;

	if ((r = root_hold(wk->root)) < 0) {
		wk->needed++;
		walk_note(wk, r);
		return;
	}
	walk_push(wk, parent, relpath);
	/* A walk of a big tree takes seconds: watcher_free need not wait. */
	while (wk->n_items > 0 && !wk->busy &&
	    !atomic_load_explicit(&w->quit, memory_order_relaxed)) {
		struct walk_item it = wk->items[--wk->n_items];
		sbuf_set(&here, wk->paths.s + it.off,
		    strlen(wk->paths.s + it.off));
		wk->paths.len = it.off;
		walk_dir(w, wk, it.parent, here.s);
	}
	root_release(wk->root);
	free(here.s);
	free(wk->items);
	free(wk->paths.s);
	wk->items = NULL;
	wk->paths.s = NULL;
	wk->n_items = wk->cap_items = wk->paths.len = wk->paths.cap = 0;
}

/*
 * A directory appeared at relpath under parent: watch it and what is
 * beneath, report its content (emit), and count the result for the pass's
 * WATCH_INCOMPLETE. rescan_known: read it even where it was watched
 * already (it came from another root).
 */
static void
walk_new(Watcher *w, struct root *root, struct node *parent,
    const char *relpath, bool emit, bool rescan_known)
{
	struct walk wk = {
		.root = root, .emit = emit, .rescan_known = rescan_known,
	};

	walk_run(w, &wk, parent, relpath);
	root->pass_needed += wk.needed;
	root->pass_placed += wk.placed;
	if (root->pass_error == 0)
		root->pass_error = wk.error;
}

/*
 * End of a pass: directories that could not be opened are tried again at
 * their parent's current path. A failure in two passes that were not cut
 * at READ_CAP means they are really gone.
 */
static void
run_retries(Watcher *w, bool capped)
{
	size_t n = w->n_retries, k = 0;

	for (size_t i = 0; i < n; i++) {
		struct retry *r = &w->retries[i];
		struct root *root;
		char *relpath;
		int fd;

		if (r->parent == NULL ||
		    (root = node_path(w, r->parent, &w->path)) == NULL) {
			r->failures = INT_MAX;
			continue;
		}
		sbuf_join(&w->path, r->name);
		if ((fd = root_hold(root)) == 0) {
			fd = open_beneath(root->fd, w->path.s,
			    O_PATH | O_DIRECTORY);
			root_release(root);
		}
		if (fd < 0) {
			if (fd != -ENOENT)
				r->failures = INT_MAX;
			else if (!capped)
				r->failures++;
			continue;
		}
		close(fd);
		/* The walk may add retries (moving the array): r is done. */
		r->failures = INT_MAX;
		relpath = strdup(w->path.s);
		if (relpath == NULL)
			abort();
		walk_new(w, root, r->parent, relpath, r->emit, false);
		free(relpath);
	}
	/* Keep what may still turn up; entries added meanwhile stay. */
	for (size_t i = 0; i < w->n_retries; i++) {
		struct retry *r = &w->retries[i];
		if (r->parent != NULL && r->failures < 2)
			w->retries[k++] = *r;
		else
			free(r->name);
	}
	w->n_retries = k;
}

/* ---- events (watcher thread) ---- */

static void
raw_push(Watcher *w, const struct inotify_event *ev)
{
	const char *name = ev->len > 0 ? ev->name : "";
	size_t len = strlen(name);

	if (w->n_raw == w->cap_raw) {
		w->cap_raw = w->cap_raw ? 2 * w->cap_raw : 256;
		w->raw = xrealloc(w->raw, w->cap_raw * sizeof *w->raw);
	}
	sbuf_reserve(&w->raw_names, len);
	w->raw[w->n_raw++] = (struct raw){
		.wd = ev->wd, .mask = ev->mask, .cookie = ev->cookie,
		.name = w->raw_names.len,
	};
	memcpy(w->raw_names.s + w->raw_names.len, name, len + 1);
	w->raw_names.len += len + 1;
}

static bool
moved_to_follows(const Watcher *w, size_t i, uint32_t cookie)
{
	for (size_t j = i + 1; j < w->n_raw; j++)
		if ((w->raw[j].mask & (IN_MOVED_TO | IN_ISDIR)) ==
		    (IN_MOVED_TO | IN_ISDIR) && w->raw[j].cookie == cookie)
			return true;
	return false;
}

static struct node *
take_move(Watcher *w, uint32_t cookie)
{
	for (size_t i = 0; i < w->n_moves; i++) {
		if (w->moves[i].cookie == cookie) {
			struct node *n = w->moves[i].node;
			w->moves[i] = w->moves[--w->n_moves];
			return n;
		}
	}
	return NULL;
}

/*
 * The directory n (found by name at IN_MOVED_FROM) was renamed to relpath
 * under parent. The event is trusted unless the inode now at relpath says
 * otherwise: a tree ahead of the events may have given n's old name to a
 * newer directory, which is then what n is.
 */
static void
moved_within(Watcher *w, struct root *root, struct node *n,
    struct node *parent, const char *relpath)
{
	const char *slash = strrchr(relpath, '/');
	const char *name = slash != NULL ? slash + 1 : relpath;
	struct root *from = node_path(w, n, &w->path2);
	bool other = false;
	struct stat st;
	int fd;

	if (root_hold(root) == 0) {
		fd = open_beneath(root->fd, relpath, O_PATH | O_DIRECTORY);
		if (fd >= 0) {
			other = fstat(fd, &st) == 0 &&
			    (st.st_dev != n->dev || st.st_ino != n->ino);
			close(fd);
		}
		root_release(root);
	}
	if (other) {
		walk_new(w, root, parent, relpath, true, false);
		return;
	}
	if (relink(w, n, parent, name) < 0) {
		set_overflow(w);
		w->need_repair = true;
		return;
	}
	/* Another root never saw its content. */
	if (from != root)
		walk_new(w, root, parent, relpath, true, true);
}

static void
on_ignored(Watcher *w, struct node *n)
{
	struct root *root = NULL;
	struct node *parent = n->parent;

	/* After an unmount, what is under the mount point needs a watch. */
	if ((n->flags & NODE_UNMOUNTED) && parent != NULL)
		root = node_path(w, n, &w->path);
	node_free(w, n, false);
	if (root != NULL) {
		char *relpath = strdup(w->path.s);
		if (relpath == NULL)
			abort();
		walk_new(w, root, parent, relpath, true, false);
		free(relpath);
	}
}

/* One event of the pass (index i, for the move pairing). */
static void
process_event(Watcher *w, size_t i)
{
	const struct raw *e = &w->raw[i];
	const char *name = w->raw_names.s + e->name;
	bool is_dir = (e->mask & IN_ISDIR) != 0;
	struct node *n, *moved;
	struct root *root;
	bool excluded;

	if (e->mask & IN_Q_OVERFLOW) {
		/* Lost events may have been new or renamed directories. */
		set_overflow(w);
		w->need_repair = true;
		return;
	}
	/* wd -1 (overflow) never gets here; unknown wds are removed watches. */
	if ((n = wd_find(w, e->wd)) == NULL)
		return;
	if (e->mask & IN_IGNORED) {
		on_ignored(w, n);
		return;
	}
	if (e->mask & IN_UNMOUNT)
		n->flags |= NODE_UNMOUNTED;
	if ((root = node_path(w, n, &w->path)) == NULL) {
		if (name[0] == '\0')
			return;
		if (top_of(n)->flags & NODE_LOST) {
			/* Outside every root. Alive, unless all it says is
			 * that it is being emptied: then its IN_IGNORED is
			 * near and frees it. */
			if (!(e->mask & IN_DELETE))
				node_free(w, n, true);
		} else {
			/* Alive where a newer directory took its name and no
			 * event told us where it went: find it again. */
			set_overflow(w);
			w->need_repair = true;
		}
		return;
	}
	if (name[0] == '\0') {
		if ((n->flags & NODE_TOP) || (e->mask & IN_UNMOUNT))
			emit_event(w, root->id, e->mask, e->cookie, false,
			    w->path.s, w->path.len);
		return;
	}
	sbuf_join(&w->path, name);
	excluded = root->ex != NULL &&
	    exclude_match(root->ex, w->path.s, is_dir);

	if ((e->mask & IN_MOVED_FROM) && is_dir && !excluded) {
		struct node *old = name_find(w, n, name);
		emit_event(w, root->id, e->mask, e->cookie, false, w->path.s,
		    w->path.len);
		if (moved_to_follows(w, i, e->cookie)) {
			if (w->n_moves == w->cap_moves) {
				w->cap_moves = w->cap_moves ? 2 * w->cap_moves
				    : 16;
				w->moves = xrealloc(w->moves,
				    w->cap_moves * sizeof *w->moves);
			}
			w->moves[w->n_moves++] = (struct pending_move){
				.cookie = e->cookie, .node = old,
			};
		} else if (old != NULL && !still_there(w, old)) {
			/* Moved out of every watched tree. */
			drop_subtree(w, old, true);
		}
		return;
	}
	if ((e->mask & IN_MOVED_TO) && is_dir) {
		char *relpath;

		moved = take_move(w, e->cookie);
		if (excluded) {
			/* Renamed to an excluded name: no longer watched. */
			if (moved != NULL)
				drop_subtree(w, moved, true);
			return;
		}
		emit_event(w, root->id, e->mask, e->cookie, false, w->path.s,
		    w->path.len);
		if ((relpath = strdup(w->path.s)) == NULL)
			abort();
		if (moved != NULL)
			moved_within(w, root, moved, n, relpath);
		else
			walk_new(w, root, n, relpath, true, false);
		free(relpath);
		return;
	}
	if (excluded) {
		/* Not mirrored; but a name that came or went moved its
		 * directory's mtime, which live checks (SPEC: directory
		 * mtimes converge). Never watched. */
		if (e->mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM |
		    IN_MOVED_TO))
			emit_event(w, root->id, e->mask, e->cookie, false,
			    w->path.s, w->path.len);
		return;
	}
	emit_event(w, root->id, e->mask, e->cookie, false, w->path.s,
	    w->path.len);
	if ((e->mask & IN_CREATE) && is_dir) {
		char *relpath = strdup(w->path.s);
		if (relpath == NULL)
			abort();
		walk_new(w, root, n, relpath, true, false);
		free(relpath);
	}
}

/* Reads what is queued (waiting for the first event) and processes it. */
static void
read_pass(Watcher *w, bool *wake)
{
	struct inotify_event *ev;
	long timeout = w->wake_wd >= 0 ? -1 : 1;

	w->n_raw = 0;
	w->raw_names.len = 0;
	w->n_moves = 0;
	ev = inotifytools_next_events(timeout, 1);
	if (ev == NULL && inotifytools_error() != 0 &&
	    inotifytools_error() != EINTR) {
		/* Not expected from a healthy fd; do not spin on it. */
		usleep(100 * 1000);
		*wake = true;
		return;
	}
	while (ev != NULL) {
		if (ev->wd == w->wake_wd && w->wake_wd >= 0)
			*wake = true;
		else
			raw_push(w, ev);
		/* Stop at the cap, but not between a move's two halves. */
		if (w->n_raw >= READ_CAP &&
		    !(w->raw[w->n_raw - 1].mask & IN_MOVED_FROM))
			break;
		ev = inotifytools_next_events(0, 1);
	}
	for (size_t i = 0; i < w->n_raw; i++)
		process_event(w, i);
	run_retries(w, w->n_raw >= READ_CAP);
	for (struct root *r = w->roots; r != NULL; r = r->next) {
		if (r->pass_placed < r->pass_needed)
			emit_notice(w, WATCH_INCOMPLETE, r->id, r->pass_error,
			    r->pass_needed, r->pass_placed);
		r->pass_needed = r->pass_placed = 0;
		r->pass_error = 0;
	}
}

/* ---- library instance (watcher thread) ---- */

/* A set of fds, from /proc/self/fd. */
struct fdset {
	int *fd;
	size_t n, cap;
};

/* The inotify instances open in this process now, into set. */
static int
inotify_fds(struct fdset *set)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	char link[64];
	ssize_t len;
	int e = 0;

	if (d == NULL)
		return -errno;
	set->n = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		len = readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
		if (len < 0)
			continue;	/* closed meanwhile, or the dir's own fd */
		link[len] = '\0';
		if (strcmp(link, "anon_inode:inotify") != 0)
			continue;
		if (set->n == set->cap) {
			set->cap = set->cap ? 2 * set->cap : 8;
			set->fd = xrealloc(set->fd, set->cap * sizeof *set->fd);
		}
		set->fd[set->n++] = atoi(de->d_name);
	}
	if (closedir(d) < 0)
		e = -errno;
	return e;
}

static bool
fdset_has(const struct fdset *set, int fd)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->fd[i] == fd)
			return true;
	return false;
}

/* Whether inotify instance fd holds watch wd on the inode ino. */
static bool
fd_has_watch(int fd, int wd, unsigned long ino)
{
	char path[64], line[256];
	unsigned int lwd;
	unsigned long lino;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	if ((f = fopen(path, "re")) == NULL)
		return false;
	/* "inotify wd:%x ino:%lx sdev:%x ..." (fs/notify/fdinfo.c) */
	while (!found && fgets(line, sizeof line, f) != NULL)
		found = sscanf(line, "inotify wd:%x ino:%lx", &lwd, &lino) ==
		    2 && lwd == (unsigned int)wd && lino == ino;
	fclose(f);
	return found;
}

/*
 * libinotifytools 3.22 keeps its inotify fd in a static and has no call
 * that returns it. When the library placed the wake-up watch (wd 1 on the
 * pipe), it is the instance whose fdinfo lists that watch: exact even when
 * other threads open and close inotify instances meanwhile. Without that
 * watch, it must be the only instance that appeared during initialize
 * (not in before).
 */
static int
find_lib_fd(Watcher *w, const struct fdset *before, bool wake_watched)
{
	struct fdset after = { 0 };
	struct stat st;
	int found = -1, r;

	if (wake_watched && fstat(w->wake_rd, &st) < 0)
		return -errno;
	if ((r = inotify_fds(&after)) < 0)
		goto out;
	r = -EIO;
	for (size_t i = 0; i < after.n; i++) {
		int fd = after.fd[i];
		if (wake_watched) {
			if (fd_has_watch(fd, 1, (unsigned long)st.st_ino)) {
				found = fd;
				break;
			}
		} else if (fdset_has(before, fd)) {
			continue;
		} else if (found >= 0) {
			found = -1;	/* ambiguous */
			break;
		} else {
			found = fd;
		}
	}
	if (found >= 0) {
		w->ifd = found;
		r = 0;
	}
out:
	free(after.fd);
	return r;
}

/*
 * Starts libinotifytools, the wake-up watch on the pipe, and finds the
 * library's fd.
 */
static int
lib_start(Watcher *w)
{
	char path[48];
	struct inotify_event *ev;
	struct fdset before = { 0 };
	const char *lib_name;
	bool wake_watched;
	int probe, r;

	/* The library select()s on its fd: it must be below FD_SETSIZE. */
	probe = fcntl(w->wake_rd, F_DUPFD_CLOEXEC, 0);
	if (probe >= 0)
		close(probe);
	if (probe >= FD_SETSIZE - 64)
		return -EMFILE;
	if ((r = inotify_fds(&before)) < 0)
		return r;
	if (!inotifytools_initialize()) {
		free(before.fd);
		return inotifytools_error() > 0 ? -inotifytools_error() : -EIO;
	}
	/* next_events keeps its read buffer in statics that cleanup does
	 * not reset: events a previous instance left there (a pass cut at
	 * READ_CAP) would come back with wds of the old instance. The new
	 * fd has no watch yet, so this ends with the buffer. */
	while (inotifytools_next_events(0, 1) != NULL)
		;
	w->wake_wd = -1;
	snprintf(path, sizeof path, "/proc/self/fd/%d", w->wake_rd);
	wake_watched = inotifytools_watch_file(path, IN_MODIFY) &&
	    (lib_name = inotifytools_filename_from_wd(1)) != NULL &&
	    strcmp(lib_name, path) == 0;
	r = find_lib_fd(w, &before, wake_watched);
	free(before.fd);
	if (r < 0) {
		inotifytools_cleanup();
		return r;
	}
	/* Self-test: does this kernel report pipe writes? */
	if (wake_watched && write(w->wake_wr, "x", 1) == 1 &&
	    (ev = inotifytools_next_events(1, 1)) != NULL && ev->wd == 1)
		w->wake_wd = 1;
	return 0;
}

static void
drain_wake_pipe(Watcher *w)
{
	char buf[64];

	while (read(w->wake_rd, buf, sizeof buf) > 0)
		;
}

static void
add_root(Watcher *w, struct cmd *c)
{
	struct root *root = calloc(1, sizeof *root);
	struct walk wk = { 0 };

	if (root == NULL)
		abort();
	root->id = c->root;
	root->ex = c->ex;
	root->fd = -1;
	if ((root->path = strdup(c->path)) == NULL)
		abort();
	root->next = w->roots;
	w->roots = root;
	wk.root = root;
	wk.rescan_known = true;
	if (w->broken) {
		wk.needed = 1;
		wk.error = -EIO;
	} else {
		walk_run(w, &wk, NULL, "");
	}
	emit_notice(w, WATCH_ROOT_READY, c->root, wk.error, wk.needed,
	    root->top != NULL ? wk.placed : 0);
	if (root->top == NULL) {
		w->roots = root->next;
		free(root->path);
		free(root);
		emit_notice(w, WATCH_ROOT_RELEASED, c->root, 0, 0, 0);
	}
}

static void
remove_root(Watcher *w, unsigned id)
{
	struct root **pp = &w->roots, *root;

	while (*pp != NULL && (*pp)->id != id)
		pp = &(*pp)->next;
	/* Not found: its failed READY already released it. */
	if ((root = *pp) == NULL)
		return;
	if (root->top != NULL)
		drop_subtree(w, root->top, true);
	*pp = root->next;
	free(root->path);
	free(root);
	emit_notice(w, WATCH_ROOT_RELEASED, id, 0, 0, 0);
}

static void
free_all_nodes(Watcher *w)
{
	for (size_t i = 0; w->by_wd.slots && i <= w->by_wd.mask; i++) {
		struct node *n = w->by_wd.slots[i], *next;
		for (; n != NULL; n = next) {
			next = n->wd_next;
			node_free_mem(n);
		}
	}
	free(w->by_wd.slots);
	free(w->by_name.slots);
	memset(&w->by_wd, 0, sizeof w->by_wd);
	memset(&w->by_name, 0, sizeof w->by_name);
	for (struct root *r = w->roots; r != NULL; r = r->next)
		r->top = NULL;
	w->n_moves = 0;
	w->lost = 0;
	for (size_t i = 0; i < w->n_retries; i++)
		free(w->retries[i].name);
	w->n_retries = 0;
	atomic_store(&w->st_watches, 0);
}

/*
 * A fresh inotify instance with every root watched again: for lost nodes
 * piling up, or a watch we could not account for. Events in between are
 * lost: overflow.
 */
static void
rebuild(Watcher *w)
{
	int r;

	hand_off(w);
	free_all_nodes(w);
	inotifytools_cleanup();
	w->ifd = -1;
	w->need_rebuild = w->need_repair = false;
	atomic_fetch_add(&w->st_rebuilds, 1);
	set_overflow(w);
	if ((r = lib_start(w)) < 0) {
		w->broken = true;
		for (struct root *root = w->roots; root; root = root->next)
			emit_notice(w, WATCH_INCOMPLETE, root->id, r, 1, 0);
		return;
	}
	for (struct root *root = w->roots; root != NULL; root = root->next) {
		struct walk wk = { .root = root, .rescan_known = true };
		if (root->gone)
			continue;
		walk_run(w, &wk, NULL, "");
		if (wk.placed < wk.needed || root->top == NULL)
			emit_notice(w, WATCH_INCOMPLETE, root->id, wk.error,
			    wk.needed, root->top != NULL ? wk.placed : 0);
	}
}

/*
 * After lost events: every root is walked again in place. New directories
 * get watches, moved ones are found by inode and relinked; a node no walk
 * reaches is outside every root (or dead): it is let go at its next event
 * (or freed at its IN_IGNORED). Cheaper than rebuild(): no watch is placed
 * twice, and the kernel queue keeps what arrives meanwhile.
 */
static void
repair(Watcher *w)
{
	struct node *n;

	w->need_repair = false;
	set_overflow(w);
	for (size_t i = 0; w->by_wd.slots && i <= w->by_wd.mask; i++)
		for (n = w->by_wd.slots[i]; n != NULL; n = n->wd_next)
			n->flags &= ~NODE_VISITED;
	for (struct root *root = w->roots; root != NULL; root = root->next) {
		struct walk wk = { .root = root, .rescan_known = true };
		if (root->top == NULL)
			continue;
		walk_run(w, &wk, NULL, "");
		if (wk.placed < wk.needed)
			emit_notice(w, WATCH_INCOMPLETE, root->id, wk.error,
			    wk.needed, wk.placed);
	}
	for (size_t i = 0; w->by_wd.slots && i <= w->by_wd.mask; i++) {
		for (n = w->by_wd.slots[i]; n != NULL; n = n->wd_next) {
			if (n->flags & (NODE_VISITED | NODE_TOP))
				continue;
			orphan(w, n);
			set_lost(w, n);
		}
	}
}

/*
 * Nodes of directories no walk found (dead ones whose IN_IGNORED an
 * overflow swallowed): when they outnumber the live watches, a rebuild is
 * cheaper than keeping them.
 */
static bool
too_much_garbage(const Watcher *w)
{
	return w->lost >= LOST_REBUILD_MIN && w->lost >= w->by_wd.n - w->lost;
}

/* Runs the queued commands; false once the watcher is stopping. */
static bool
run_commands(Watcher *w)
{
	struct cmd *list;
	bool stopping;

	/* Drain before taking: a command queued after the take writes
	 * again and so wakes us again. */
	drain_wake_pipe(w);
	pthread_mutex_lock(&w->lock);
	list = w->cmd_head;
	w->cmd_head = w->cmd_tail = NULL;
	stopping = w->stopping;
	pthread_mutex_unlock(&w->lock);
	while (list != NULL) {
		struct cmd *next = list->next;
		if (!stopping) {
			/* A batch never spans a command: see reg/seq. */
			hand_off(w);
			w->seq_done = list->seq;
			if (list->kind == CMD_ADD)
				add_root(w, list);
			else
				remove_root(w, list->root);
			hand_off(w);
		}
		free(list);
		list = next;
	}
	return !stopping;
}

/* Waits for commands only: the library could not be started again. */
static void
wait_broken(Watcher *w)
{
	struct pollfd pfd = { .fd = w->wake_rd, .events = POLLIN };

	poll(&pfd, 1, 1000);
}

static void *
watcher_main(void *arg)
{
	Watcher *w = arg;
	int r = lib_start(w);

	pthread_mutex_lock(&w->lock);
	w->init_done = true;
	w->init_error = r;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (r < 0) {
		inotifytools_cleanup();
		return NULL;
	}
	for (;;) {
		bool wake = false, stopping;

		pthread_mutex_lock(&w->lock);
		while (w->out_events > MAX_QUEUED && !w->stopping)
			pthread_cond_wait(&w->cond, &w->lock);
		stopping = w->stopping;
		pthread_mutex_unlock(&w->lock);
		if (stopping)
			break;
		if (w->broken) {
			wait_broken(w);
			wake = true;
		} else {
			read_pass(w, &wake);
		}
		hand_off(w);
		if ((wake || w->wake_wd < 0) && !run_commands(w))
			break;
		if (!w->broken && (w->need_rebuild || too_much_garbage(w)))
			rebuild(w);
		else if (!w->broken && w->need_repair)
			repair(w);
		hand_off(w);
	}

	/* Stopping: what is still ours goes; the reactor frees the out list. */
	watcher_batch_free(w->cur != NULL ? &w->cur->pub : NULL);
	w->cur = NULL;
	free_all_nodes(w);
	while (w->roots != NULL) {
		struct root *next = w->roots->next;
		free(w->roots->path);
		free(w->roots);
		w->roots = next;
	}
	inotifytools_cleanup();
	free(w->raw);
	free(w->raw_names.s);
	free(w->moves);
	free(w->retries);
	free(w->path.s);
	free(w->path2.s);
	return NULL;
}

/* ---- reactor side ---- */

static struct reg *
reg_find(Watcher *w, unsigned id)
{
	for (size_t i = 0; i < w->n_regs; i++)
		if (w->regs[i].id == id)
			return &w->regs[i];
	return NULL;
}

static void
reg_drop(Watcher *w, struct reg *r)
{
	free(r->path);
	*r = w->regs[--w->n_regs];
}

/* Whether content of batch b about root id is still wanted. */
static bool
wanted(Watcher *w, const struct batch *b, unsigned id)
{
	struct reg *r = reg_find(w, id);

	return r != NULL && b->seq >= r->add_seq;
}

/* Drops what belongs to removed roots; false when nothing is left. */
static bool
filter_batch(Watcher *w, struct batch *b)
{
	size_t k = 0;

	for (size_t i = 0; i < b->pub.n; i++)
		if (wanted(w, b, b->pub.events[i].root))
			b->pub.events[k++] = b->pub.events[i];
	b->pub.n = k;
	k = 0;
	for (size_t i = 0; i < b->pub.n_notices; i++) {
		WatchNotice *n = &b->pub.notices[i];
		if (n->kind != WATCH_ROOT_RELEASED && !wanted(w, b, n->root))
			continue;
		/* A root that could not be watched is forgotten. */
		if (n->kind == WATCH_ROOT_READY && n->dirs_placed == 0)
			reg_drop(w, reg_find(w, n->root));
		b->pub.notices[k++] = *n;
	}
	b->pub.n_notices = k;
	k = 0;
	for (size_t i = 0; i < b->pub.n_counts; i++)
		if (wanted(w, b, b->pub.counts[i].root))
			b->pub.counts[k++] = b->pub.counts[i];
	b->pub.n_counts = k;
	return b->pub.n > 0 || b->pub.n_notices > 0 || b->pub.overflow ||
	    b->pub.n_counts > 0;
}

static void
on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	Watcher *w = arg;
	struct batch *list;
	size_t taken = 0;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		return;
	pthread_mutex_lock(&w->lock);
	list = w->out_head;
	w->out_head = w->out_tail = NULL;
	pthread_mutex_unlock(&w->lock);
	while (list != NULL) {
		struct batch *next = list->next;
		taken += list->pub.n;
		if (filter_batch(w, list)) {
			atomic_fetch_add(&w->st_events, list->pub.n);
			atomic_fetch_add(&w->st_batches, 1);
			w->cb(&list->pub, w->arg);
		} else {
			watcher_batch_free(&list->pub);
		}
		list = next;
	}
	pthread_mutex_lock(&w->lock);
	w->out_events -= taken;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/*
 * Queues a command and wakes the watcher thread if the list was empty.
 * Returns its sequence number; c belongs to the watcher thread now.
 */
static uint64_t
send_command(Watcher *w, struct cmd *c)
{
	uint64_t seq = ++w->next_seq;
	bool was_empty;

	c->seq = seq;
	pthread_mutex_lock(&w->lock);
	was_empty = w->cmd_head == NULL;
	if (w->cmd_tail != NULL)
		w->cmd_tail->next = c;
	else
		w->cmd_head = c;
	w->cmd_tail = c;
	/* A full pipe already means a wake-up is pending. */
	if (was_empty && write(w->wake_wr, "c", 1) < 0 && errno != EAGAIN)
		abort();
	pthread_mutex_unlock(&w->lock);
	return seq;
}

int
watcher_new(struct event_base *base, WatcherFn cb, void *arg, Watcher **ret)
{
	Watcher *w;
	int pipefd[2] = { -1, -1 };
	sigset_t all, old;
	int r = 0, e;

	if (atomic_exchange(&watcher_exists, true))
		return -EBUSY;
	if ((w = calloc(1, sizeof *w)) == NULL) {
		atomic_store(&watcher_exists, false);
		return -ENOMEM;
	}
	w->base = base;
	w->cb = cb;
	w->arg = arg;
	w->efd = w->wake_rd = w->wake_wr = w->ifd = -1;
	w->wake_wd = -1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if ((w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		r = -errno;
		goto fail;
	}
	if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	w->wake_rd = pipefd[0];
	w->wake_wr = pipefd[1];
	w->ev = event_new(base, w->efd, EV_READ | EV_PERSIST, on_eventfd, w);
	if (w->ev == NULL || event_add(w->ev, NULL) < 0) {
		r = -ENOMEM;
		goto fail;
	}
	/* Signals stay with the reactor's loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&w->thread, NULL, watcher_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0) {
		r = -e;
		goto fail;
	}
	w->started = true;
	pthread_mutex_lock(&w->lock);
	while (!w->init_done)
		pthread_cond_wait(&w->cond, &w->lock);
	r = w->init_error;
	pthread_mutex_unlock(&w->lock);
	if (r < 0)
		goto fail;
	*ret = w;
	return 0;
fail:
	watcher_free(w);
	return r;
}

/* "/a/b" and "/a/b/c" overlap, "/a/b" and "/a/bc" do not. */
static bool
paths_overlap(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b), l;

	while (la > 1 && a[la - 1] == '/')
		la--;
	while (lb > 1 && b[lb - 1] == '/')
		lb--;
	l = la < lb ? la : lb;
	if (strncmp(a, b, l) != 0)
		return false;
	if (la == lb)
		return true;
	/* The shorter one must end at a component boundary. */
	return (la < lb ? b[l] : a[l]) == '/' || l == 1;
}

int
watcher_add_root(Watcher *w, unsigned root, const char *path,
    const Exclude *ex)
{
	size_t len = strlen(path);
	struct cmd *c;
	char *copy;

	if (path[0] != '/')
		return -EINVAL;
	if (reg_find(w, root) != NULL)
		return -EEXIST;
	for (size_t i = 0; i < w->n_regs; i++)
		if (paths_overlap(w->regs[i].path, path))
			return -EBUSY;
	if (w->n_regs == w->cap_regs) {
		size_t cap = w->cap_regs ? 2 * w->cap_regs : 8;
		struct reg *regs = realloc(w->regs, cap * sizeof *regs);
		if (regs == NULL)
			return -ENOMEM;
		w->regs = regs;
		w->cap_regs = cap;
	}
	if ((c = calloc(1, sizeof *c + len + 1)) == NULL)
		return -ENOMEM;
	if ((copy = strdup(path)) == NULL) {
		free(c);
		return -ENOMEM;
	}
	c->kind = CMD_ADD;
	c->root = root;
	c->ex = ex;
	memcpy(c->path, path, len + 1);
	w->regs[w->n_regs++] = (struct reg){
		.id = root, .add_seq = send_command(w, c), .path = copy,
	};
	return 0;
}

int
watcher_remove_root(Watcher *w, unsigned root)
{
	struct reg *r = reg_find(w, root);
	struct cmd *c;

	if (r == NULL)
		return -ENOENT;
	if ((c = calloc(1, sizeof *c + 1)) == NULL)
		return -ENOMEM;
	c->kind = CMD_REMOVE;
	c->root = root;
	reg_drop(w, r);
	send_command(w, c);
	return 0;
}

void
watcher_batch_free(WatchBatch *batch)
{
	struct batch *b = (struct batch *)batch;

	if (b == NULL)
		return;
	free(b->pub.events);
	free(b->pub.notices);
	free(b->pub.counts);
	free(b->strings.s);
	free(b);
}

void
watcher_get_stats(const Watcher *w, WatcherStats *out)
{
	Watcher *m = (Watcher *)w;

	out->watches = atomic_load(&m->st_watches);
	out->rebuilds = atomic_load(&m->st_rebuilds);
	out->events = atomic_load(&m->st_events);
	out->batches = atomic_load(&m->st_batches);
}

void
watcher_free(Watcher *w)
{
	if (w == NULL)
		return;
	if (w->started) {
		pthread_mutex_lock(&w->lock);
		w->stopping = true;
		atomic_store(&w->quit, true);
		pthread_cond_broadcast(&w->cond);
		/* Best effort: a full pipe means a wake-up is pending. */
		if (write(w->wake_wr, "s", 1) < 0 && errno != EAGAIN)
			abort();
		pthread_mutex_unlock(&w->lock);
		pthread_join(w->thread, NULL);
	}
	while (w->out_head != NULL) {
		struct batch *next = w->out_head->next;
		watcher_batch_free(&w->out_head->pub);
		w->out_head = next;
	}
	while (w->cmd_head != NULL) {
		struct cmd *next = w->cmd_head->next;
		free(w->cmd_head);
		w->cmd_head = next;
	}
	for (size_t i = 0; i < w->n_regs; i++)
		free(w->regs[i].path);
	free(w->regs);
	if (w->ev != NULL)
		event_free(w->ev);
	if (w->efd >= 0)
		close(w->efd);
	if (w->wake_rd >= 0)
		close(w->wake_rd);
	if (w->wake_wr >= 0)
		close(w->wake_wr);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
	atomic_store(&watcher_exists, false);
}
