/*
 * watcher — see include/watch/watcher.h; the files of the module are
 * listed in watch-int.h. This one: the thread's loop, the commands from
 * the reactor, the reactor's side of the hand-off, the public API.
 *
 * DESIGN
 * Threads. libinotifytools keeps its inotify fd, its read buffer and its
 * watch records in process-wide globals without locks, so one thread owns
 * it (and the fanotify group): the watcher thread initializes it, places and removes every watch,
 * reads every event and cleans it up. The reactor reaches that thread only
 * through a command list (add root, remove root) and gets results back as
 * batches through util/mailbox (critical sections are a few pointer
 * moves).
 *
 * Hand-off to the reactor is the pool's: util/mailbox. A finished batch
 * is posted (the eventfd is written only when the list goes from empty
 * to non-empty); the reactor takes the whole list and drops what belongs
 * to removed roots (a command sequence number per batch tells
 * incarnations of a root id apart) and calls the callback once per batch.
 * When the reactor falls MAX_QUEUED events behind (out_events, under
 * `lock`), the watcher stops reading, so the kernel queue overflows into
 * IN_Q_OVERFLOW (a rescan) instead of our memory growing without bound.
 * Locks: `lock` (commands, out_events, start-up and stop) and the
 * mailbox's, never held together.
 *
 * Waiting. The thread poll()s the wake-up pipe (the reactor writes a
 * byte when the command list goes from empty to non-empty), the
 * library's inotify fd and the fanotify group's fd, and then takes what
 * is queued with timeout 0, which only polls: a pass is "everything
 * queued now" (up to READ_CAP; a capped pass makes the next poll not
 * wait, as the library may hold the rest in its buffer, which poll
 * cannot see). Events are never held back. libinotifytools' own wait is
 * a select() in whole seconds on its fd alone, so it is never used to
 * block. num_events stays 1: with more, the library spins on FIONREAD
 * until that many events are queued. The pipe is also watched through
 * the library once, at start: that watch is how its fd is found (see
 * Memory); its events are skipped.
 *
 * fanotify (fanotify.c). A root in mode auto or fanotify whose file
 * system takes a FAN_MARK_FILESYSTEM mark has no watch per directory:
 * the walks give every directory a node keyed by its file handle, an
 * event names its directory by handle, and one hash lookup drops what is
 * outside every root while the buffer is decoded. The decoded events are
 * inotify's (same IN_* values, FAN_RENAME split into a MOVED_FROM /
 * MOVED_TO pair with a cookie of ours, a directory's DELETE_SELF followed
 * by an IN_IGNORED), so the rest of the watcher treats both alike.
 *
 * Paths. Our own tree is the authority on where a watched directory is: a
 * node per directory (parent, name, inode), found by wd and by (parent,
 * name) through two util/map maps (nodes.c). A rename is one relink whatever the size
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
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "watch-int.h"

/* libinotifytools is process-global: one Watcher at a time. */
static atomic_bool watcher_exists;

/*
 * Nodes of directories no walk found (dead ones whose IN_IGNORED an
 * overflow swallowed): when they outnumber the live watches, a rebuild is
 * cheaper than keeping them.
 */
static bool
too_much_garbage(const Watcher *w)
{
	return w->lost >= LOST_REBUILD_MIN &&
	    w->lost >= watch_node_count(w) - w->lost;
}

/* Runs the queued commands; false once the watcher is stopping. */
static bool
run_commands(Watcher *w)
{
	struct cmd *list;
	bool stopping;

	/* Drain before taking: a command queued after the take writes
	 * again and so wakes us again. */
	watch_drain_wake_pipe(w);
	pthread_mutex_lock(&w->lock);
	list = w->cmd_head;
	w->cmd_head = w->cmd_tail = NULL;
	stopping = w->stopping;
	pthread_mutex_unlock(&w->lock);
	while (list != NULL) {
		struct cmd *next = list->next;
		if (!stopping) {
			/* A batch never spans a command: see reg/seq. */
			watch_hand_off(w);
			w->seq_done = list->seq;
			if (list->kind == CMD_ADD)
				watch_add_root(w, list);
			else
				watch_remove_root(w, list->root);
			watch_hand_off(w);
		}
		free(list);
		list = next;
	}
	return !stopping;
}

/*
 * libinotifytools could not be started again: fanotify roots go on (a
 * pass each time the fd is ready), inotify ones wait for commands.
 */
static void
wait_broken(Watcher *w, bool *wake)
{
	struct pollfd p[2] = {
		{ .fd = w->wake_rd, .events = POLLIN },
		{ .fd = w->fan_fd, .events = POLLIN },
	};

	*wake = true;
	if (poll(p, 2, 1000) > 0 && p[1].revents != 0) {
		w->n_raw = 0;
		w->raw_names.len = 0;
		w->n_moves = 0;
		watch_fan_read(w);
		watch_process_pass(w);
	}
}

/* One pass: what inotify and fanotify have queued now, then processed. */
static void
read_and_process(Watcher *w, bool *wake)
{
	bool ino = false, fan = false, ok = true;

	watch_wait(w, wake, &ino, &fan);
	w->n_raw = 0;
	w->raw_names.len = 0;
	w->n_moves = 0;
	if (ino)
		ok = watch_read_pass(w, wake);
	if (fan)
		watch_fan_read(w);
	if (ok || w->n_raw > 0)
		watch_process_pass(w);
}

/* Waits while the reactor is MAX_QUEUED events behind; false: stopping. */
static bool
wait_for_reactor(Watcher *w)
{
	bool stopping;

	pthread_mutex_lock(&w->lock);
	while (w->out_events > MAX_QUEUED && !w->stopping)
		pthread_cond_wait(&w->cond, &w->lock);
	stopping = w->stopping;
	pthread_mutex_unlock(&w->lock);
	return !stopping;
}

/* What is still the thread's goes; the reactor frees what was posted. */
static void
thread_cleanup(Watcher *w)
{
	watcher_batch_free(w->cur != NULL ? &w->cur->pub : NULL);
	w->cur = NULL;
	watch_nodes_free_all(w);
	while (w->roots != NULL) {
		struct root *next = w->roots->next;
		free(w->roots->path);
		free(w->roots);
		w->roots = next;
	}
	watch_lib_stop(w);
	watch_fan_stop(w);
	free(w->raw);
	free(w->raw_names.s);
	free(w->moves);
	free(w->retries);
	free(w->path.s);
	free(w->path2.s);
}

static void *
watcher_main(void *arg)
{
	Watcher *w = arg;
	int r = watch_lib_start(w);

	pthread_mutex_lock(&w->lock);
	w->init_done = true;
	w->init_error = r;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (r < 0) {
		watch_lib_stop(w);
		return NULL;
	}
	while (wait_for_reactor(w)) {
		bool wake = false;

		if (w->broken)
			wait_broken(w, &wake);
		else
			read_and_process(w, &wake);
		watch_hand_off(w);
		if (wake && !run_commands(w))
			break;
		if (!w->broken && (w->need_rebuild || too_much_garbage(w)))
			watch_rebuild(w);
		else if (!w->broken && w->need_repair)
			watch_repair(w);
		watch_hand_off(w);
	}
	thread_cleanup(w);
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

/* The mailbox's callback: the batches posted since the last one. */
static void
on_batches(MailboxItem *list, void *arg)
{
	Watcher *w = arg;
	size_t taken = 0;

	while (list != NULL) {
		struct batch *b = MAILBOX_ENTRY(list, struct batch, item);
		list = list->next;
		taken += b->pub.n;
		if (filter_batch(w, b)) {
			atomic_fetch_add(&w->st_events, b->pub.n);
			atomic_fetch_add(&w->st_batches, 1);
			w->cb(&b->pub, w->arg);
		} else {
			watcher_batch_free(&b->pub);
		}
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

/* Starts the thread with every signal blocked; waits for its start-up. */
static int
start_thread(Watcher *w)
{
	sigset_t all, old;
	int e, r;

	/* Signals stay with the reactor's loop. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&w->thread, NULL, watcher_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e != 0)
		return -e;
	w->started = true;
	pthread_mutex_lock(&w->lock);
	while (!w->init_done)
		pthread_cond_wait(&w->cond, &w->lock);
	r = w->init_error;
	pthread_mutex_unlock(&w->lock);
	return r;
}

int
watcher_new(struct event_base *base, WatcherFn cb, void *arg, Watcher **ret)
{
	Watcher *w;
	int pipefd[2] = { -1, -1 };
	int r = 0;

	if (atomic_exchange(&watcher_exists, true))
		return -EBUSY;
	if ((w = calloc(1, sizeof *w)) == NULL) {
		atomic_store(&watcher_exists, false);
		return -ENOMEM;
	}
	w->base = base;
	w->cb = cb;
	w->arg = arg;
	w->wake_rd = w->wake_wr = w->ifd = w->fan_fd = -1;
	w->wake_wd = -1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if ((r = mailbox_new(base, on_batches, w, &w->out)) < 0)
		goto fail;
	if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) < 0) {
		r = -errno;
		goto fail;
	}
	w->wake_rd = pipefd[0];
	w->wake_wr = pipefd[1];
	if ((r = start_thread(w)) < 0)
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

static const char *const mode_names[] = { "auto", "inotify", "fanotify" };

int
watcher_mode_from_string(const char *s)
{
	for (int i = 0; i < 3; i++)
		if (strcmp(s, mode_names[i]) == 0)
			return i;
	return -1;
}

const char *
watcher_mode_name(WatchMode mode)
{
	return (unsigned)mode < 3 ? mode_names[mode] : "?";
}

int
watcher_add_root(Watcher *w, unsigned root, const char *path,
    const Exclude *ex, WatchMode mode)
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
	c->mode = mode;
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
watcher_get_stats(const Watcher *w, WatcherStats *out)
{
	Watcher *m = (Watcher *)w;

	out->watches = atomic_load(&m->st_watches);
	out->rebuilds = atomic_load(&m->st_rebuilds);
	out->events = atomic_load(&m->st_events);
	out->batches = atomic_load(&m->st_batches);
}

/* Stops the thread (it may be in a walk: quit is checked there too). */
static void
stop_thread(Watcher *w)
{
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

void
watcher_free(Watcher *w)
{
	if (w == NULL)
		return;
	if (w->started)
		stop_thread(w);
	if (w->out != NULL) {
		MailboxItem *list = mailbox_take(w->out);
		while (list != NULL) {
			struct batch *b = MAILBOX_ENTRY(list, struct batch,
			    item);
			list = list->next;
			watcher_batch_free(&b->pub);
		}
		mailbox_free(w->out);
	}
	while (w->cmd_head != NULL) {
		struct cmd *next = w->cmd_head->next;
		free(w->cmd_head);
		w->cmd_head = next;
	}
	for (size_t i = 0; i < w->n_regs; i++)
		free(w->regs[i].path);
	free(w->regs);
	if (w->wake_rd >= 0)
		close(w->wake_rd);
	if (w->wake_wr >= 0)
		close(w->wake_wr);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	free(w);
	atomic_store(&watcher_exists, false);
}
