/*
 * Unit tests for watcher: real inotify, and real fanotify, on temporary
 * trees. Every case of the events and limits tcases runs twice, with the
 * roots watched by inotify and then by fanotify (root only, on a file
 * system that takes a fanotify mark: skipped otherwise, saying why);
 * the cases about one mechanism say so. fanotify merges events on one
 * name queued by one process (a create, its writes and its close may be
 * one event with three IN_* bits), which the checks allow. Each test has
 * its own event_base, Watcher and mkdtemp tree, and runs the base until
 * the events it expects arrive, with a deadline (never sleep-and-hope).
 * The overflow test lowers the machine-wide max_queued_events (root only,
 * skipped otherwise) under a lock file shared with other runs, only until
 * its watcher's inotify instance exists, and an unchecked teardown (run in
 * the parent even when the test dies) restores it. The watch-limit test
 * touches no machine-wide limit: it moves into its own user namespace and
 * lowers user.max_inotify_watches there (Linux >= 5.11; skipped otherwise),
 * so other tests' watches on the machine are not affected.
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine/exclude.h"
#include "watch/watcher.h"

#define WAIT_MS 5000

static char g_base[] = "/tmp/test-watcher-XXXXXX";
/* The mode of this run of the suite (main runs it once per mode). */
static WatchMode g_mode = WATCH_INOTIFY;

struct seen {
	unsigned root;
	uint32_t mask;
	uint32_t cookie;
	bool synthetic;
	char *relpath;
};

typedef struct T {
	struct event_base *base;
	struct event *tick;
	Watcher *w;
	char dir[256];		/* this test's directory */
	char src[300];		/* a watched root inside it */
	struct seen *ev;
	size_t n_ev, cap_ev;
	WatchNotice notices[256];
	size_t n_notices;
	size_t overflows;
} T;

static void
on_batch(WatchBatch *b, void *arg)
{
	T *t = arg;

	for (size_t i = 0; i < b->n; i++) {
		if (t->n_ev == t->cap_ev) {
			t->cap_ev = t->cap_ev ? 2 * t->cap_ev : 256;
			t->ev = realloc(t->ev, t->cap_ev * sizeof *t->ev);
			ck_assert_ptr_nonnull(t->ev);
		}
		t->ev[t->n_ev++] = (struct seen){
			.root = b->events[i].root, .mask = b->events[i].mask,
			.cookie = b->events[i].cookie,
			.synthetic = b->events[i].synthetic,
			.relpath = strdup(b->events[i].relpath),
		};
	}
	for (size_t i = 0; i < b->n_notices; i++)
		if (t->n_notices < 256)
			t->notices[t->n_notices++] = b->notices[i];
	if (b->overflow)
		t->overflows++;
	watcher_batch_free(b);
}

/* Keeps EVLOOP_ONCE from blocking longer than a tick. */
static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
mkdir_p(const char *path)
{
	char buf[512];

	snprintf(buf, sizeof buf, "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = '\0';
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	ck_assert(mkdir(buf, 0755) == 0 || errno == EEXIST);
}

static void
write_file(const char *path, const char *data)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert(write(fd, data, strlen(data)) == (ssize_t)strlen(data));
	ck_assert(close(fd) == 0);
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
rm_rf(const char *path)
{
	nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

static T *
t_new(void)
{
	static int counter;
	T *t = calloc(1, sizeof *t);
	struct timeval tv = { 0, 10 * 1000 };

	ck_assert_ptr_nonnull(t);
	snprintf(t->dir, sizeof t->dir, "%s/t%d-%d", g_base, (int)getpid(),
	    counter++);
	ck_assert_int_eq(mkdir(t->dir, 0755), 0);
	snprintf(t->src, sizeof t->src, "%s/src", t->dir);
	ck_assert_int_eq(mkdir(t->src, 0755), 0);
	t->base = event_base_new();
	ck_assert_ptr_nonnull(t->base);
	t->tick = event_new(t->base, -1, EV_PERSIST, on_tick, NULL);
	ck_assert_ptr_nonnull(t->tick);
	ck_assert_int_eq(event_add(t->tick, &tv), 0);
	ck_assert_int_eq(watcher_new(t->base, on_batch, t, &t->w), 0);
	return t;
}

static void
t_free(T *t)
{
	watcher_free(t->w);
	event_free(t->tick);
	event_base_free(t->base);
	for (size_t i = 0; i < t->n_ev; i++)
		free(t->ev[i].relpath);
	free(t->ev);
	rm_rf(t->dir);
	free(t);
}

static void
path_in(const T *t, char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", t->src, rel);
}

/* Index of the first event for root with relpath and any of mask, from. */
static long
find_event(const T *t, size_t from, unsigned root, const char *relpath,
    uint32_t mask)
{
	for (size_t i = from; i < t->n_ev; i++)
		if (t->ev[i].root == root && (t->ev[i].mask & mask) &&
		    strcmp(t->ev[i].relpath, relpath) == 0)
			return (long)i;
	return -1;
}

/* The first such notice at index from or later. */
static const WatchNotice *
find_notice(const T *t, size_t from, WatchNoticeKind kind, unsigned root)
{
	for (size_t i = from; i < t->n_notices; i++)
		if (t->notices[i].kind == kind && t->notices[i].root == root)
			return &t->notices[i];
	return NULL;
}

struct want {
	T *t;
	int what;		/* 0 event, 1 notice, 2 overflow */
	unsigned root;
	const char *relpath;
	uint32_t mask;
	WatchNoticeKind kind;
	size_t from;		/* notices: count those from this index */
};

static bool
satisfied(const struct want *q)
{
	switch (q->what) {
	case 0:
		return find_event(q->t, 0, q->root, q->relpath, q->mask) >= 0;
	case 1:
		return find_notice(q->t, q->from, q->kind, q->root) != NULL;
	default:
		return q->t->overflows > 0;
	}
}

/* Runs the loop until q holds or ms pass. */
static bool
run_until(const struct want *q, int ms)
{
	uint64_t deadline = now_ms() + (uint64_t)ms;

	while (!satisfied(q)) {
		if (now_ms() > deadline)
			return false;
		event_base_loop(q->t->base, EVLOOP_ONCE);
	}
	return true;
}

/* Runs the loop until nothing arrives for quiet_ms (at most WAIT_MS). */
static void
settle(T *t, int quiet_ms)
{
	uint64_t deadline = now_ms() + WAIT_MS, last = now_ms();
	size_t seen = t->n_ev + t->overflows + t->n_notices;

	while (now_ms() < deadline && now_ms() - last < (uint64_t)quiet_ms) {
		event_base_loop(t->base, EVLOOP_ONCE);
		if (t->n_ev + t->overflows + t->n_notices != seen) {
			seen = t->n_ev + t->overflows + t->n_notices;
			last = now_ms();
		}
	}
}

static bool
wait_event(T *t, unsigned root, const char *relpath, uint32_t mask)
{
	struct want q = { t, 0, root, relpath, mask, 0, 0 };

	return run_until(&q, WAIT_MS);
}

static const WatchNotice *
wait_notice(T *t, size_t from, WatchNoticeKind kind, unsigned root)
{
	struct want q = { t, 1, root, NULL, 0, kind, from };

	if (!run_until(&q, WAIT_MS))
		return NULL;
	return find_notice(t, from, kind, root);
}

/* Adds t->src as root 1 and waits until it is completely watched. */
static void
watch_src(T *t, const Exclude *ex)
{
	size_t from = t->n_notices;
	const WatchNotice *n;

	ck_assert_int_eq(watcher_add_root(t->w, 1, t->src, ex, g_mode), 0);
	n = wait_notice(t, from, WATCH_ROOT_READY, 1);
	ck_assert_ptr_nonnull(n);
	ck_assert_int_eq(n->error, 0);
	ck_assert_uint_gt(n->dirs_placed, 0);
	ck_assert_uint_eq(n->dirs_placed, n->dirs_needed);
	ck_assert_int_eq(n->mode, g_mode);
	ck_assert_int_eq(n->fanotify_error, 0);
}

START_TEST(test_create_file)
{
	T *t = t_new();
	char p[512];
	long c, w;

	watch_src(t, NULL);
	path_in(t, p, sizeof p, "f");
	write_file(p, "hello");
	ck_assert(wait_event(t, 1, "f", IN_CLOSE_WRITE));
	c = find_event(t, 0, 1, "f", IN_CREATE);
	w = find_event(t, 0, 1, "f", IN_CLOSE_WRITE);
	ck_assert_int_ge(c, 0);
	ck_assert_int_le(c, w);		/* the same event when merged */
	ck_assert(!t->ev[c].synthetic);
	ck_assert(!(t->ev[c].mask & IN_ISDIR));
	ck_assert_uint_eq(t->overflows, 0);
	t_free(t);
}
END_TEST

START_TEST(test_api_errors)
{
	T *t = t_new();
	Watcher *second = NULL;
	const WatchNotice *n;
	char p[512];

	ck_assert_int_eq(watcher_new(t->base, on_batch, t, &second), -EBUSY);
	ck_assert_ptr_null(second);
	ck_assert_int_eq(watcher_add_root(t->w, 1, "relative", NULL,
	    g_mode), -EINVAL);
	ck_assert_int_eq(watcher_remove_root(t->w, 7), -ENOENT);
	watch_src(t, NULL);
	ck_assert_int_eq(watcher_add_root(t->w, 1, "/elsewhere", NULL,
	    g_mode), -EEXIST);
	path_in(t, p, sizeof p, "inner");
	ck_assert_int_eq(watcher_add_root(t->w, 2, p, NULL, g_mode), -EBUSY);
	ck_assert_int_eq(watcher_add_root(t->w, 2, t->dir, NULL, g_mode),
	    -EBUSY);

	/* A missing root: READY with nothing placed, then RELEASED. */
	snprintf(p, sizeof p, "%s/missing", t->dir);
	ck_assert_int_eq(watcher_add_root(t->w, 3, p, NULL, g_mode), 0);
	n = wait_notice(t, 0, WATCH_ROOT_RELEASED, 3);
	ck_assert_ptr_nonnull(n);
	n = find_notice(t, 0, WATCH_ROOT_READY, 3);
	ck_assert_ptr_nonnull(n);
	ck_assert_int_eq(n->error, -ENOENT);
	ck_assert_uint_eq(n->dirs_placed, 0);
	/* Forgotten: the id is free again. */
	ck_assert_int_eq(watcher_remove_root(t->w, 3), -ENOENT);
	t_free(t);
}
END_TEST

/* mkdir -p a/b/c && echo x > a/b/c/f: f is made before any watch on c. */
START_TEST(test_mkdir_p_race)
{
	T *t = t_new();
	char p[512];
	long i;

	watch_src(t, NULL);
	path_in(t, p, sizeof p, "a/b/c");
	mkdir_p(p);
	path_in(t, p, sizeof p, "a/b/c/f");
	write_file(p, "x\n");
	ck_assert_msg(wait_event(t, 1, "a/b/c/f", IN_CREATE | IN_CLOSE_WRITE),
	    "no event names a/b/c/f");
	ck_assert(wait_event(t, 1, "a/b/c", IN_CREATE));
	i = find_event(t, 0, 1, "a/b/c", IN_CREATE);
	ck_assert(t->ev[i].mask & IN_ISDIR);
	/* Parents are reported before what is inside them. */
	ck_assert_int_lt(find_event(t, 0, 1, "a", IN_CREATE),
	    find_event(t, 0, 1, "a/b", IN_CREATE));
	ck_assert_int_lt(i, find_event(t, 0, 1, "a/b/c/f",
	    IN_CREATE | IN_CLOSE_WRITE));

	/* And c is watched now: a later write is a real event. */
	path_in(t, p, sizeof p, "a/b/c/g");
	write_file(p, "y\n");
	ck_assert(wait_event(t, 1, "a/b/c/g", IN_CLOSE_WRITE));
	i = find_event(t, 0, 1, "a/b/c/g", IN_CLOSE_WRITE);
	ck_assert(!t->ev[i].synthetic);
	t_free(t);
}
END_TEST

/* A directory made outside the tree and moved in: its content is reported. */
START_TEST(test_moved_in)
{
	T *t = t_new();
	char out[512], p[512], q[512];
	long i;

	watch_src(t, NULL);
	snprintf(out, sizeof out, "%s/outside/sub", t->dir);
	mkdir_p(out);
	snprintf(p, sizeof p, "%s/outside/sub/old", t->dir);
	write_file(p, "old");
	snprintf(p, sizeof p, "%s/outside", t->dir);
	path_in(t, q, sizeof q, "in");
	ck_assert_int_eq(rename(p, q), 0);
	path_in(t, p, sizeof p, "in/sub/new");
	write_file(p, "new");

	ck_assert(wait_event(t, 1, "in", IN_MOVED_TO));
	ck_assert(wait_event(t, 1, "in/sub/old", IN_CREATE));
	i = find_event(t, 0, 1, "in/sub/old", IN_CREATE);
	ck_assert(t->ev[i].synthetic);
	/* new may come as a synthetic entry, a real event, or both. */
	ck_assert(wait_event(t, 1, "in/sub/new", IN_CREATE | IN_CLOSE_WRITE));

	/* Later changes in the moved-in tree are real events. */
	path_in(t, p, sizeof p, "in/sub/later");
	write_file(p, "later");
	ck_assert(wait_event(t, 1, "in/sub/later", IN_CLOSE_WRITE));
	t_free(t);
}
END_TEST

/* A renamed directory: events inside it carry the new name. */
START_TEST(test_rename_dir)
{
	T *t = t_new();
	char p[512], q[512];
	long from, to;
	size_t mark;

	watch_src(t, NULL);
	path_in(t, p, sizeof p, "d/x");
	mkdir_p(p);
	ck_assert(wait_event(t, 1, "d/x", IN_CREATE));
	/* Make sure x's watch is in place before the rename. */
	path_in(t, p, sizeof p, "d/x/probe");
	write_file(p, "");
	ck_assert(wait_event(t, 1, "d/x/probe", IN_CLOSE_WRITE));

	mark = t->n_ev;
	path_in(t, p, sizeof p, "d");
	path_in(t, q, sizeof q, "e");
	ck_assert_int_eq(rename(p, q), 0);
	path_in(t, p, sizeof p, "e/x/f");
	write_file(p, "f");
	ck_assert(wait_event(t, 1, "e/x/f", IN_CLOSE_WRITE));
	from = find_event(t, mark, 1, "d", IN_MOVED_FROM);
	to = find_event(t, mark, 1, "e", IN_MOVED_TO);
	ck_assert_int_ge(from, 0);
	ck_assert_int_gt(to, from);
	ck_assert_uint_ne(t->ev[from].cookie, 0);
	ck_assert_uint_eq(t->ev[from].cookie, t->ev[to].cookie);
	ck_assert_int_lt(find_event(t, mark, 1, "d/x/f", ~0u), 0);

	/* Twice, and deeper: the subtree follows each rename. */
	path_in(t, p, sizeof p, "e/x");
	path_in(t, q, sizeof q, "e/y");
	ck_assert_int_eq(rename(p, q), 0);
	path_in(t, p, sizeof p, "e");
	path_in(t, q, sizeof q, "g");
	ck_assert_int_eq(rename(p, q), 0);
	path_in(t, p, sizeof p, "g/y/h");
	write_file(p, "h");
	ck_assert(wait_event(t, 1, "g/y/h", IN_CLOSE_WRITE));
	ck_assert_uint_eq(t->overflows, 0);
	t_free(t);
}
END_TEST

/* A directory moved out of the tree loses its watches. */
START_TEST(test_moved_out)
{
	T *t = t_new();
	char p[512], q[512];
	WatcherStats before, after;
	size_t mark;

	path_in(t, p, sizeof p, "m/n/o");
	mkdir_p(p);
	watch_src(t, NULL);
	watcher_get_stats(t->w, &before);
	ck_assert_uint_eq(before.watches, 4);
	path_in(t, p, sizeof p, "m");
	snprintf(q, sizeof q, "%s/gone", t->dir);
	ck_assert_int_eq(rename(p, q), 0);
	ck_assert(wait_event(t, 1, "m", IN_MOVED_FROM));
	mark = t->n_ev;
	snprintf(p, sizeof p, "%s/gone/n/o/f", t->dir);
	write_file(p, "f");
	path_in(t, p, sizeof p, "sentinel");
	write_file(p, "s");
	ck_assert(wait_event(t, 1, "sentinel", IN_CLOSE_WRITE));
	for (size_t i = mark; i < t->n_ev; i++)
		ck_assert_msg(strcmp(t->ev[i].relpath, "sentinel") == 0,
		    "unexpected event for %s", t->ev[i].relpath);
	watcher_get_stats(t->w, &after);
	ck_assert_uint_eq(after.watches, 1);
	t_free(t);
}
END_TEST

/* Excluded directories are not watched and excluded names not reported. */
START_TEST(test_exclude)
{
	T *t = t_new();
	Exclude *ex = NULL;
	WatcherStats st;
	char p[512], q[512];
	size_t mark;

	ck_assert_int_eq(exclude_new(&ex), 0);
	ck_assert_int_eq(exclude_add(ex, "skip/"), 0);
	ck_assert_int_eq(exclude_add(ex, "*.tmp"), 0);
	path_in(t, p, sizeof p, "skip/deep");
	mkdir_p(p);
	watch_src(t, ex);
	watcher_get_stats(t->w, &st);
	ck_assert_uint_eq(st.watches, 1);

	path_in(t, p, sizeof p, "skip/deep/f");
	write_file(p, "no");
	path_in(t, p, sizeof p, "a.tmp");
	write_file(p, "no");
	path_in(t, p, sizeof p, "keep/skip");
	mkdir_p(p);	/* "skip/" matches a directory at any depth */
	path_in(t, p, sizeof p, "keep/skip/f");
	write_file(p, "no");
	path_in(t, p, sizeof p, "keep/f");
	write_file(p, "yes");
	ck_assert(wait_event(t, 1, "keep/f", IN_CLOSE_WRITE | IN_CREATE));
	path_in(t, p, sizeof p, "keep/g");
	write_file(p, "yes");
	ck_assert(wait_event(t, 1, "keep/g", IN_CLOSE_WRITE));

	/* A watched directory renamed to an excluded name is let go. */
	path_in(t, p, sizeof p, "keep");
	path_in(t, q, sizeof q, "keep.tmp");
	ck_assert_int_eq(rename(p, q), 0);
	path_in(t, p, sizeof p, "keep.tmp/h");
	write_file(p, "no");
	path_in(t, p, sizeof p, "sentinel");
	write_file(p, "s");
	ck_assert(wait_event(t, 1, "sentinel", IN_CLOSE_WRITE));
	mark = 0;
	for (size_t i = mark; i < t->n_ev; i++) {
		const char *r = t->ev[i].relpath, *slash = strrchr(r, '/');
		char parent[512];

		if (strstr(r, "skip") == NULL && strstr(r, ".tmp") == NULL)
			continue;
		/* An excluded name that comes or goes is reported (its
		 * directory's mtime moved); its writes and anything inside
		 * an excluded directory are not. */
		snprintf(parent, sizeof parent, "%.*s", slash != NULL ?
		    (int)(slash - r) : 0, r);
		ck_assert_msg(strstr(parent, "skip") == NULL &&
		    strstr(parent, ".tmp") == NULL && (t->ev[i].mask &
		    (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) &&
		    !(t->ev[i].mask & (IN_MODIFY | IN_CLOSE_WRITE)),
		    "excluded path reported: %s (mask 0x%x)", r,
		    t->ev[i].mask);
	}
	watcher_get_stats(t->w, &st);
	ck_assert_uint_eq(st.watches, 1);
	t_free(t);
	exclude_free(ex);
}
END_TEST

/* After remove_root, nothing more comes for it; the other root goes on. */
START_TEST(test_remove_root)
{
	T *t = t_new();
	char other[400], p[512];
	WatcherStats st;

	snprintf(other, sizeof other, "%s/other", t->dir);
	ck_assert_int_eq(mkdir(other, 0755), 0);
	watch_src(t, NULL);
	ck_assert_int_eq(watcher_add_root(t->w, 2, other, NULL, g_mode), 0);
	ck_assert_ptr_nonnull(wait_notice(t, 0, WATCH_ROOT_READY, 2));
	path_in(t, p, sizeof p, "before");
	write_file(p, "1");
	ck_assert(wait_event(t, 1, "before", IN_CLOSE_WRITE));

	/* Events already queued for root 1 must not reach us either. */
	path_in(t, p, sizeof p, "queued");
	write_file(p, "1");
	ck_assert_int_eq(watcher_remove_root(t->w, 1), 0);
	ck_assert_int_eq(watcher_remove_root(t->w, 1), -ENOENT);
	path_in(t, p, sizeof p, "after");
	write_file(p, "1");
	snprintf(p, sizeof p, "%s/x", other);
	write_file(p, "2");
	ck_assert(wait_event(t, 2, "x", IN_CLOSE_WRITE));
	ck_assert_ptr_nonnull(wait_notice(t, 0, WATCH_ROOT_RELEASED, 1));
	ck_assert_int_lt(find_event(t, 0, 1, "queued", ~0u), 0);
	ck_assert_int_lt(find_event(t, 0, 1, "after", ~0u), 0);
	watcher_get_stats(t->w, &st);
	ck_assert_uint_eq(st.watches, 1);

	/* The id can be used again. */
	watch_src(t, NULL);
	path_in(t, p, sizeof p, "again");
	write_file(p, "1");
	ck_assert(wait_event(t, 1, "again", IN_CLOSE_WRITE));
	t_free(t);
}
END_TEST

/* A directory moved from one root to another: the second learns its content. */
START_TEST(test_move_between_roots)
{
	T *t = t_new();
	char other[400], p[512], q[512];
	long i;

	snprintf(other, sizeof other, "%s/other", t->dir);
	ck_assert_int_eq(mkdir(other, 0755), 0);
	path_in(t, p, sizeof p, "m/sub");
	mkdir_p(p);
	path_in(t, p, sizeof p, "m/sub/old");
	write_file(p, "x");
	watch_src(t, NULL);
	ck_assert_int_eq(watcher_add_root(t->w, 2, other, NULL, g_mode), 0);
	ck_assert_ptr_nonnull(wait_notice(t, 0, WATCH_ROOT_READY, 2));

	path_in(t, p, sizeof p, "m");
	snprintf(q, sizeof q, "%s/m2", other);
	ck_assert_int_eq(rename(p, q), 0);
	ck_assert(wait_event(t, 2, "m2/sub/old", IN_CREATE));
	i = find_event(t, 0, 2, "m2/sub/old", IN_CREATE);
	ck_assert(t->ev[i].synthetic);
	ck_assert_int_ge(find_event(t, 0, 1, "m", IN_MOVED_FROM), 0);
	snprintf(p, sizeof p, "%s/m2/sub/new", other);
	write_file(p, "y");
	ck_assert(wait_event(t, 2, "m2/sub/new", IN_CLOSE_WRITE));
	ck_assert_int_lt(find_event(t, 0, 1, "m/sub/new", ~0u), 0);
	t_free(t);
}
END_TEST

/* The root directory itself deleted: said once, then nothing is left. */
START_TEST(test_root_deleted)
{
	T *t = t_new();
	char p[512];
	WatcherStats st;

	path_in(t, p, sizeof p, "a/b");
	mkdir_p(p);
	watch_src(t, NULL);
	rm_rf(t->src);
	ck_assert(wait_event(t, 1, "", IN_DELETE_SELF));
	ck_assert_int_eq(watcher_remove_root(t->w, 1), 0);
	ck_assert_ptr_nonnull(wait_notice(t, 0, WATCH_ROOT_RELEASED, 1));
	watcher_get_stats(t->w, &st);
	ck_assert_uint_eq(st.watches, 0);
	ck_assert_uint_eq(t->overflows, 0);
	t_free(t);
}
END_TEST

/* Batches still queued when the watcher is freed are freed with it. */
START_TEST(test_free_pending)
{
	T *t = t_new();
	char p[512];
	WatcherStats st;
	uint64_t deadline;

	watch_src(t, NULL);
	for (int i = 0; i < 200; i++) {
		snprintf(p, sizeof p, "%s/d%d", t->src, i % 10);
		mkdir(p, 0755);
		snprintf(p, sizeof p, "%s/d%d/f%d", t->src, i % 10, i);
		write_file(p, "x");
	}
	/* Without running the loop: wait for the thread to have them all. */
	deadline = now_ms() + WAIT_MS;
	do {
		watcher_get_stats(t->w, &st);
		usleep(10 * 1000);
	} while (st.watches < 11 && now_ms() < deadline);
	usleep(100 * 1000);
	ck_assert_uint_eq(t->n_ev, 0);
	t_free(t);	/* valgrind / LeakSanitizer judge */
}
END_TEST

/* ---- tests that lower inotify limits ---- */

#define PROC_INOTIFY_QUEUED "/proc/sys/fs/inotify/max_queued_events"
#define PROC_FANOTIFY_QUEUED "/proc/sys/fs/fanotify/max_queued_events"
/* The queue limit of this run's mechanism (machine-wide for both). */
#define PROC_QUEUED (g_mode == WATCH_FANOTIFY ? PROC_FANOTIFY_QUEUED : \
	PROC_INOTIFY_QUEUED)
#define PROC_NS_WATCHES "/proc/sys/user/max_inotify_watches"

/*
 * max_queued_events in test_overflow. fanotify's queue takes every
 * change on the whole file system (other programs' too): 256 still
 * overflows under the storm, and leaves room for the machine's noise.
 */
#define QUEUED_LOW (g_mode == WATCH_FANOTIFY ? 256 : 16)

static long saved_queued = -1;

static long
read_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f == NULL)
		return -1;
	if (fscanf(f, "%ld", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

static bool
write_long(const char *path, long v)
{
	FILE *f = fopen(path, "w");
	bool ok;

	if (f == NULL)
		return false;
	ok = fprintf(f, "%ld\n", v) > 0;
	return fclose(f) == 0 && ok;
}

/* One write(2): what /proc/self/uid_map and gid_map accept. */
static bool
write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, s, strlen(s)) == (ssize_t)strlen(s);
	return close(fd) == 0 && ok;
}

/*
 * max_queued_events is machine-wide (it has no per-namespace version):
 * test runs in other trees may be lowering it too. A lock file serializes
 * such runs for the whole test case, so nobody saves a value another run
 * has lowered and "restores" it later.
 */
#define LIMITS_LOCK "/tmp/treesync-inotify-limits.lock"
static int limits_lock = -1;

/* Unchecked fixture: runs in the parent, so it restores even after a crash. */
static void
limits_save(void)
{
	uint64_t deadline = now_ms() + 60 * 1000;

	limits_lock = open(LIMITS_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	while (limits_lock >= 0 && flock(limits_lock, LOCK_EX | LOCK_NB) < 0) {
		if (now_ms() > deadline) {
			close(limits_lock);
			limits_lock = -1;
			break;
		}
		usleep(50 * 1000);
	}
	if (limits_lock < 0)
		return;		/* can_tune() says skipped */
	saved_queued = read_long(PROC_QUEUED);
}

/*
 * Undoes only what test_overflow sets (16 queued events): another test on
 * the machine may be changing the same limit, and its own restore must
 * not be overwritten.
 */
static void
limits_restore(void)
{
	if (saved_queued > QUEUED_LOW && read_long(PROC_QUEUED) == QUEUED_LOW)
		write_long(PROC_QUEUED, saved_queued);
}

/* Unchecked teardown: restore, then let other runs have the limits. */
static void
limits_done(void)
{
	limits_restore();
	if (limits_lock >= 0) {
		close(limits_lock);
		limits_lock = -1;
	}
}

static bool
can_tune(void)
{
	if (geteuid() != 0 || access(PROC_QUEUED, W_OK) != 0 ||
	    limits_lock < 0 || saved_queued <= QUEUED_LOW) {
		fprintf(stderr, "test-watcher: not root, no writable "
		    "/proc/sys/fs/inotify, or max_queued_events already low: "
		    "overflow test skipped\n");
		return false;
	}
	return true;
}

/*
 * Writes rel until its IN_CLOSE_WRITE comes. Again only when an overflow
 * was reported meanwhile (the queue is still small: fanotify's takes the
 * machine's changes too); a write simply not seen fails.
 */
static bool
write_until_seen(T *t, const char *rel)
{
	char p[512];

	path_in(t, p, sizeof p, rel);
	for (int attempt = 0; attempt < 5; attempt++) {
		size_t overflows = t->overflows;

		write_file(p, "x");
		if (wait_event(t, 1, rel, IN_CLOSE_WRITE))
			return true;
		if (t->overflows == overflows)
			return false;
	}
	return false;
}

START_TEST(test_overflow)
{
	T *t;
	char p[512];
	struct want q;
	uint64_t deadline;
	int rounds = 0;

	if (!can_tune())
		return;
	/* The limit is taken when an instance is created: the inotify one in
	 * watcher_new, the fanotify group at the first root that wants it. */
	if (g_mode == WATCH_FANOTIFY) {
		/* Its queue is unlimited but for the tests (fanotify.c). */
		setenv("TREESYNC_TEST_FANOTIFY_BOUNDED", "1", 1);
		t = t_new();
		/* fanotify's reader takes hundreds of events per read and
		 * keeps up with one writer: a tree moved in keeps it walking
		 * while the storm fills the queue (see the loop). */
		for (int g = 0; g < 20; g++)
			for (int d = 0; d < 100; d++) {
				snprintf(p, sizeof p, "%s/big/g%d/d%d", t->dir,
				    g, d);
				mkdir_p(p);
			}
		ck_assert(write_long(PROC_QUEUED, QUEUED_LOW));
		watch_src(t, NULL);
		limits_restore();
	} else {
		ck_assert(write_long(PROC_QUEUED, QUEUED_LOW));
		t = t_new();
		limits_restore();
		watch_src(t, NULL);
	}
	/* Three events per file against a 16-event queue; the watcher reads
	 * concurrently, so keep going (bounded) until the kernel gives up. */
	q = (struct want){ .t = t, .what = 2 };
	deadline = now_ms() + WAIT_MS;
	while (!satisfied(&q) && now_ms() < deadline) {
		char big[400], in[400];

		snprintf(big, sizeof big, "%s/big", t->dir);
		snprintf(in, sizeof in, "%s/big%d", t->src, rounds);
		if (g_mode == WATCH_FANOTIFY)
			ck_assert_int_eq(rename(big, in), 0);
		for (int k = 0; k < 500; k++) {
			snprintf(p, sizeof p, "%s/f%d-%d", t->src, rounds, k);
			write_file(p, "x");
		}
		/* Directories made in the storm: their IN_CREATE may be
		 * lost, their watches must not be. */
		for (int k = 0; k < 40; k++) {
			snprintf(p, sizeof p, "%s/d%d-%d", t->src, rounds, k);
			ck_assert_int_eq(mkdir(p, 0755), 0);
		}
		if (g_mode == WATCH_FANOTIFY)
			ck_assert_int_eq(rename(in, big), 0);
		rounds++;
		event_base_loop(t->base, EVLOOP_NONBLOCK);
	}
	ck_assert_msg(run_until(&q, WAIT_MS), "no overflow reported");
	/* The tail of the storm may overflow the queue again: let it pass.
	 * Then it works, in the new directories too (the watcher walked
	 * the tree again after the overflow). */
	settle(t, 300);
	ck_assert(write_until_seen(t, "after"));
	for (int r = 0; r < rounds; r++) {
		for (int k = 0; k < 40; k++) {
			char rel[64];
			snprintf(rel, sizeof rel, "d%d-%d/after", r, k);
			ck_assert_msg(write_until_seen(t, rel),
			    "%s not reported", rel);
		}
	}
	t_free(t);
	unsetenv("TREESYNC_TEST_FANOTIFY_BOUNDED");
}
END_TEST

/*
 * Moves this process into a new user namespace where it stays root (uid
 * and gid 0 map to 0, so root-owned temporary trees stay readable and
 * watchable), and saves the namespace's max_inotify_watches in *saved.
 * Since Linux 5.11 that limit counts only the watches of inotify
 * instances made inside the namespace: lowering it leaves the watches of
 * everything else on the machine alone. unshare(CLONE_NEWUSER) refuses a
 * process with threads, so this runs before t_new() starts the watcher
 * thread. Says why on stderr and returns false when it cannot.
 */
static bool
enter_userns(long *saved)
{
	uint64_t deadline = now_ms() + 1000;
	int r;

	/* Under CK_FORK=no an earlier test's watcher thread was joined but
	 * may not have left the thread group yet: EINVAL for a moment. A
	 * thread that stays (TSan's background thread) means a skip. */
	while ((r = unshare(CLONE_NEWUSER)) < 0 && errno == EINVAL &&
	    now_ms() < deadline)
		usleep(10 * 1000);
	if (r < 0) {
		int e = errno;

		fprintf(stderr, "test-watcher: unshare(CLONE_NEWUSER): %s%s: "
		    "watch-limit test skipped\n", strerror(e),
		    e == EINVAL ? " (the process has threads)" : "");
		return false;
	}
	if (!write_str("/proc/self/setgroups", "deny") ||
	    !write_str("/proc/self/uid_map", "0 0 1") ||
	    !write_str("/proc/self/gid_map", "0 0 1")) {
		fprintf(stderr, "test-watcher: mapping root into a user "
		    "namespace: %s: watch-limit test skipped\n",
		    strerror(errno));
		return false;
	}
	*saved = read_long(PROC_NS_WATCHES);
	if (*saved < 0 || !write_long(PROC_NS_WATCHES, *saved)) {
		fprintf(stderr, "test-watcher: %s not writable in a user "
		    "namespace (Linux < 5.11?): watch-limit test skipped\n",
		    PROC_NS_WATCHES);
		return false;
	}
	return true;
}

/*
 * Watches of this process's inotify instances, from /proc/self/fdinfo:
 * all that the namespace's limit counts, as nothing else runs in it.
 */
static long
own_watches(void)
{
	DIR *fds = opendir("/proc/self/fdinfo");
	struct dirent *fe;
	long n = 0;

	if (fds == NULL)
		return -1;
	while ((fe = readdir(fds)) != NULL) {
		char path[300], line[512];
		FILE *f;

		if (fe->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "/proc/self/fdinfo/%s",
		    fe->d_name);
		if ((f = fopen(path, "r")) == NULL)
			continue;	/* the directory's own fd, gone now */
		while (fgets(line, sizeof line, f) != NULL)
			if (strncmp(line, "inotify wd:", 11) == 0)
				n++;
		fclose(f);
	}
	closedir(fds);
	return n;
}

START_TEST(test_watch_limit)
{
	T *t;
	char p[512];
	const WatchNotice *n;
	WatcherStats st;
	long used, saved;
	bool seen = false;

	if (g_mode == WATCH_FANOTIFY) {
		/* No watch per directory: nothing to run out of (and a
		 * whole-file-system mark needs the initial namespace). */
		fprintf(stderr, "test-watcher: watch-limit test is about "
		    "inotify: skipped in the fanotify run\n");
		return;
	}
	if (!enter_userns(&saved))
		return;
	/* The watcher's inotify instance is made here, inside the
	 * namespace: its watches count against the namespace's limit. */
	t = t_new();
	for (int i = 0; i < 40; i++) {
		snprintf(p, sizeof p, "%s/d%02d", t->src, i);
		ck_assert_int_eq(mkdir(p, 0755), 0);
	}
	used = own_watches();
	ck_assert_int_ge(used, 1);	/* at least our wake-up watch */
	/* Room for the root and a few of its 40 subdirectories. */
	ck_assert(write_long(PROC_NS_WATCHES, used + 10));
	ck_assert_int_eq(watcher_add_root(t->w, 1, t->src, NULL, g_mode), 0);
	n = wait_notice(t, 0, WATCH_ROOT_READY, 1);
	ck_assert_ptr_nonnull(n);
	ck_assert_int_eq(n->error, -ENOSPC);
	ck_assert_uint_eq(n->dirs_needed, 41);
	ck_assert_uint_gt(n->dirs_placed, 0);
	ck_assert_uint_lt(n->dirs_placed, 41);

	/* New directories under the limit: reported, not watched, noticed.
	 * Take all room away, so this part does not depend on how many
	 * watches the walk above got placed. */
	ck_assert(write_long(PROC_NS_WATCHES, 1));
	path_in(t, p, sizeof p, "new/sub");
	mkdir_p(p);
	ck_assert(wait_event(t, 1, "new", IN_CREATE));
	n = wait_notice(t, 0, WATCH_INCOMPLETE, 1);
	ck_assert_ptr_nonnull(n);
	ck_assert_int_eq(n->error, -ENOSPC);
	ck_assert_uint_lt(n->dirs_placed, n->dirs_needed);
	ck_assert(write_long(PROC_NS_WATCHES, saved));

	/* Events keep flowing where watches exist. */
	path_in(t, p, sizeof p, "top-file");
	write_file(p, "x");
	seen = wait_event(t, 1, "top-file", IN_CLOSE_WRITE);
	ck_assert(seen);

	/* With room again, new directories get watches (the failed adds
	 * used up kernel ids: the next wd is not the last plus one). */
	path_in(t, p, sizeof p, "later");
	ck_assert_int_eq(mkdir(p, 0755), 0);
	ck_assert(wait_event(t, 1, "later", IN_CREATE));
	path_in(t, p, sizeof p, "later/f");
	write_file(p, "x");
	ck_assert(wait_event(t, 1, "later/f", IN_CLOSE_WRITE));
	watcher_get_stats(t->w, &st);
	ck_assert_uint_eq(st.rebuilds, 0);
	ck_assert_uint_eq(t->overflows, 0);
	t_free(t);
}
END_TEST

/*
 * Heap in use per watched directory: our node and table slots (~115 B),
 * nothing in libinotifytools (its record per watch was 176 B more, which
 * put us above lsyncd; see docs/design.md). mallinfo2 sums every glibc
 * arena, the watcher thread's too; under ASan or valgrind malloc is
 * replaced and it says nothing, so the test is skipped there.
 */
START_TEST(test_heap_per_dir)
{
	const int groups = 40, per_group = 100;
	const char *preload = getenv("LD_PRELOAD");
	struct mallinfo2 before, after;
	size_t used, per_dir;
	char p[512];
	WatcherStats st;
	T *t;

#ifdef __SANITIZE_ADDRESS__
	return;
#endif
	if (preload != NULL && strstr(preload, "vgpreload") != NULL)
		return;
	t = t_new();
	for (int g = 0; g < groups; g++) {
		snprintf(p, sizeof p, "%s/g%02d", t->src, g);
		ck_assert_int_eq(mkdir(p, 0755), 0);
		for (int d = 0; d < per_group; d++) {
			snprintf(p, sizeof p, "%s/g%02d/d%03d", t->src, g, d);
			ck_assert_int_eq(mkdir(p, 0755), 0);
		}
	}
	/* The first add grows the watcher thread's arena and buffers. */
	before = mallinfo2();
	watch_src(t, NULL);
	after = mallinfo2();
	watcher_get_stats(t->w, &st);
	ck_assert_uint_eq(st.watches, 1 + groups + groups * per_group);
	used = (after.uordblks + after.hblkhd) -
	    (before.uordblks + before.hblkhd);
	per_dir = used / st.watches;
	ck_assert_msg(per_dir < 200, "%zu heap bytes per watched directory "
	    "(%zu for %zu)", per_dir, used, st.watches);
	t_free(t);
}
END_TEST

/*
 * Heap bytes per directory of t->src watched in mode, by a new Watcher
 * (t's previous one freed first: one Watcher per process).
 */
static size_t
heap_per_dir(T *t, WatchMode mode)
{
	WatchMode saved = g_mode;
	struct mallinfo2 before, after;
	WatcherStats st;
	size_t used;

	watcher_free(t->w);
	t->w = NULL;
	t->n_notices = 0;
	ck_assert_int_eq(watcher_new(t->base, on_batch, t, &t->w), 0);
	g_mode = mode;
	before = mallinfo2();
	watch_src(t, NULL);
	after = mallinfo2();
	g_mode = saved;
	watcher_get_stats(t->w, &st);
	used = (after.uordblks + after.hblkhd) -
	    (before.uordblks + before.hblkhd);
	return used / st.watches;
}

/*
 * fanotify's point at scale: no watch per directory, and a node that is
 * smaller than inotify's (a handle instead of wd, inode and a name-map
 * entry). Both measured in this process on the same tree, each once
 * before it counts, so neither pays the thread's arena and buffers.
 * Skipped where mallinfo2 says nothing (see above; TSan too).
 */
START_TEST(test_heap_fanotify_below_inotify)
{
	const char *preload = getenv("LD_PRELOAD");
	size_t ino, fan;
	char p[512];
	T *t;

#ifdef __SANITIZE_ADDRESS__
	return;
#endif
#ifdef __SANITIZE_THREAD__
	return;
#endif
	if (preload != NULL && strstr(preload, "vgpreload") != NULL)
		return;
	if (g_mode != WATCH_FANOTIFY)
		return;
	t = t_new();
	for (int g = 0; g < 40; g++) {
		snprintf(p, sizeof p, "%s/g%02d", t->src, g);
		ck_assert_int_eq(mkdir(p, 0755), 0);
		for (int d = 0; d < 100; d++) {
			snprintf(p, sizeof p, "%s/g%02d/d%03d", t->src, g, d);
			ck_assert_int_eq(mkdir(p, 0755), 0);
		}
	}
	(void)heap_per_dir(t, WATCH_INOTIFY);
	(void)heap_per_dir(t, WATCH_FANOTIFY);
	ino = heap_per_dir(t, WATCH_INOTIFY);
	fan = heap_per_dir(t, WATCH_FANOTIFY);
	t_free(t);
	fprintf(stderr, "test-watcher: heap per directory: inotify %zu B, "
	    "fanotify %zu B\n", ino, fan);
	ck_assert_msg(fan < ino, "fanotify %zu B per directory, inotify %zu B",
	    fan, ino);
}
END_TEST

static Suite *
watcher_suite(void)
{
	Suite *s = suite_create(g_mode == WATCH_FANOTIFY ?
	    "watcher (fanotify)" : "watcher (inotify)");
	TCase *tc_events = tcase_create("events");
	TCase *tc_limits = tcase_create("limits");
	TCase *tc_userns = tcase_create("userns");

	tcase_set_timeout(tc_events, 60);
	tcase_add_test(tc_events, test_create_file);
	tcase_add_test(tc_events, test_api_errors);
	tcase_add_test(tc_events, test_mkdir_p_race);
	tcase_add_test(tc_events, test_moved_in);
	tcase_add_test(tc_events, test_rename_dir);
	tcase_add_test(tc_events, test_moved_out);
	tcase_add_test(tc_events, test_exclude);
	tcase_add_test(tc_events, test_remove_root);
	tcase_add_test(tc_events, test_move_between_roots);
	tcase_add_test(tc_events, test_root_deleted);
	tcase_add_test(tc_events, test_free_pending);
	tcase_add_test(tc_events, test_heap_per_dir);
	tcase_add_test(tc_events, test_heap_fanotify_below_inotify);
	suite_add_tcase(s, tc_events);

	tcase_set_timeout(tc_limits, 60);
	tcase_add_unchecked_fixture(tc_limits, limits_save, limits_done);
	tcase_add_test(tc_limits, test_overflow);
	suite_add_tcase(s, tc_limits);

	/* Last: under CK_FORK=no the process stays in the test's user
	 * namespace, where the machine-wide limits can't be written. */
	tcase_set_timeout(tc_userns, 60);
	tcase_add_test(tc_userns, test_watch_limit);
	suite_add_tcase(s, tc_userns);
	return s;
}

/* Whether a fanotify mark can watch g_base's file system; why not if not. */
static bool
fanotify_here(void)
{
	int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME,
	    O_RDONLY);

	if (fd < 0 || fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
	    FAN_CREATE | FAN_ONDIR, AT_FDCWD, g_base) < 0) {
		fprintf(stderr, "test-watcher: fanotify on %s: %s: the fanotify "
		    "run is skipped\n", g_base, strerror(errno));
		if (fd >= 0)
			close(fd);
		return false;
	}
	close(fd);
	return true;
}

/* Runs the suite in one mode; the number of failures. */
static int
run_mode(WatchMode mode)
{
	SRunner *sr;
	int failed;

	g_mode = mode;
	sr = srunner_create(watcher_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed;
}

int
main(void)
{
	int failed = 0;

	if (mkdtemp(g_base) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	/* fanotify first: under CK_FORK=no the inotify run's last test
	 * leaves the process in a user namespace, where no fanotify mark
	 * on a whole file system can be placed. */
	if (fanotify_here())
		failed += run_mode(WATCH_FANOTIFY);
	failed += run_mode(WATCH_INOTIFY);
	rm_rf(g_base);
	return failed == 0 ? 0 : 1;
}
