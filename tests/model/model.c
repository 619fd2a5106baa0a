/*
 * model — see model.h.
 *
 * The seam: live_new gets model destinations (ModelDest, dest.h's
 * DestOps over the model trees), as the daemon gives it dest_new's.
 * src/live/ runs as it is (events, the heaps, batching, renames, passes,
 * backoff, holds); everything it does to a destination comes here. Each
 * request becomes a job that a model "worker" runs at a random later
 * step and whose completion comes back later still, with the contract
 * of the local destination (dest/local*.c: pathsync, renameat, fullsync):
 * paths are looked at as the source is when the job runs, a batch hands
 * the rest back after 4 MiB copied. A quarter of the destinations are
 * remote-like (two requests of up to 1,000 paths) and may go away
 * (requests come back DEST_ERR_AWAY) and come back (dest_changed).
 *
 * Simplifications (each is a choice the real code could not break):
 * - A job's work happens at one instant (when the model "worker" runs
 *   it, picked at random between submit and completion). A copy that
 *   races the source inside that instant is not modelled; the real
 *   copy's answer to it (COPY_SOURCE_CHANGED) is, for files a writer
 *   still holds open.
 * - A pass works one directory per job (each at one instant), its
 *   subdirectories later; a directory gone by then is skipped, as the
 *   real scan's ENOENT is: the events for that reach live.c anyway.
 * - No hard links, owners or guard faults (the source root is
 *   always sound); the destination roots always exist.
 * - Paths are names in the model, not inodes: a job resolves its paths
 *   when it runs, as the real one does (it opens the parents then).
 * - Directory sizes are not modelled (the real pathsync compares them;
 *   they only cost an "attrs" job).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>

#include "model-int.h"

#include <event2/event.h>

#include "live/live.h"
#include "util/synclog.h"

#define QUIESCE_ROUNDS 200000

/* ---- the driver: the source changes, the kernel speaks ---------------- */

static uint64_t
model_clock_usec(void)
{
	return F.clock_ms * 1000;
}

static bool
is_unwatched(const char *path)
{
	for (size_t i = 0; i < F.nunwatched; i++)
		if (is_under(path, F.unwatched[i].path))
			return true;
	return false;
}

/* The watch is placed when the event that names the directory is read
 * (whatever path a stale rename gives it): by id, not by path. */
static uint32_t
add_unwatched(const char *dir)
{
	if (F.nunwatched == 16)
		return 0;	/* the model's limit: watched at once */
	snprintf(F.unwatched[F.nunwatched].path, MAXP, "%s", dir);
	F.unwatched[F.nunwatched].id = ++F.watch_ids;
	return F.unwatched[F.nunwatched++].id;
}

/* Queues an event, unless nothing watches where it happens; false when
 * it was not queued. */
static bool
emit(uint32_t mask, uint32_t cookie, const char *path)
{
	uint32_t watch = 0;

	if (is_unwatched(path))
		return false;
	if (F.nev == MAX_EVENTS) {
		/* The kernel's queue is full: what follows is lost, and
		 * an IN_Q_OVERFLOW comes after what it holds. */
		F.lost = true;
		return false;
	}
	/* A directory made, or moved in from where nothing watched it (no
	 * IN_MOVED_FROM just before: the watcher then keeps its watches),
	 * is watched once the watcher reads this event. */
	if ((mask & IN_ISDIR) && ((mask & IN_CREATE) || ((mask &
	    IN_MOVED_TO) && !(F.nev > 0 && F.ev[F.nev - 1].cookie == cookie &&
	    (F.ev[F.nev - 1].mask & IN_MOVED_FROM)))))
		watch = add_unwatched(path);
	F.ev[F.nev].mask = mask;
	F.ev[F.nev].cookie = cookie;
	F.ev[F.nev].watch = watch;
	snprintf(F.ev[F.nev].path, MAXP, "%s", path);
	/* Newest rename first: a->b then b->c names c/x "a/x". */
	for (size_t i = F.nstale; i-- > 0;) {
		char buf[2 * MAXP];

		if (!is_under(F.ev[F.nev].path, F.stale[i].to))
			continue;
		snprintf(buf, sizeof buf, "%s%s", F.stale[i].from,
		    F.ev[F.nev].path + strlen(F.stale[i].to));
		if (strlen(buf) >= MAXP)
			break;	/* past the model's depth: as it is */
		memcpy(F.ev[F.nev].path, buf, strlen(buf) + 1);
	}
	F.nev++;
	return true;
}

static const char *const names[] = { "a", "b", "c", "d", "e" };

/* A random directory of the source (the root included). */
static Node *
random_dir(Tree *t)
{
	size_t dirs[MAXN], n = 0;

	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].type == T_DIR && depth(t->v[i].path) < 3)
			dirs[n++] = i;
	return &t->v[dirs[rnd(F.rng, (uint32_t)n)]];
}

static Node *
random_entry(Tree *t, int type)
{
	size_t v[MAXN], n = 0;

	for (size_t i = 1; i < t->n; i++)
		if (type == 0 || t->v[i].type == type)
			v[n++] = i;
	return n == 0 ? NULL : &t->v[v[rnd(F.rng, (uint32_t)n)]];
}

static void
random_name(char *out, const char *dir)
{
	join(out, dir, names[rnd(F.rng, 5)]);
}

static void
src_touch_parent(const char *path)
{
	char p[MAXP];

	parent_of(path, p);
	t_get(&F.src, p)->mtime = ++F.tick;
}

static void
fill_file(Node *n)
{
	n->content = ++F.next_content;
	/* Few sizes: equal sizes are common; a large one (bytes only in
	 * the model) makes its batch hand the rest back (BATCH_BYTES). */
	n->size = chance(F.rng, F.big_pct) ? 3u << 20 : rnd(F.rng, 4);
	n->mtime = ++F.tick;
}

static void
src_delete_tree(const char *path)
{
	char p[MAXP];

	snprintf(p, sizeof p, "%s", path);
	/* rm -r: the deepest first, an event from each parent's watch. */
	for (;;) {
		int best = -1;
		for (size_t i = 0; i < F.src.n; i++)
			if ((strcmp(F.src.v[i].path, p) == 0 ||
			    is_under(F.src.v[i].path, p)) && (best < 0 ||
			    depth(F.src.v[i].path) >
			    depth(F.src.v[best].path)))
				best = (int)i;
		if (best < 0)
			break;
		{
			char q[MAXP];
			bool dir = F.src.v[best].type == T_DIR;
			snprintf(q, sizeof q, "%s", F.src.v[best].path);
			emit(IN_DELETE | (dir ? IN_ISDIR : 0), 0, q);
			t_remove_tree(&F.src, q);
			src_touch_parent(q);
		}
	}
}

static void
src_create(const char *path, int type)
{
	Node *n = t_add(&F.src, path, type);

	src_touch_parent(path);
	if (type == T_DIR) {
		n->mtime = ++F.tick;
		emit(IN_CREATE | IN_ISDIR, 0, path);
		return;
	}
	if (type == T_LINK) {
		n->content = ++F.next_content;
		n->mtime = ++F.tick;
		emit(IN_CREATE, 0, path);
		return;
	}
	fill_file(n);
	emit(IN_CREATE, 0, path);
	emit(IN_MODIFY, 0, path);
	n->writing = !chance(F.rng, 85);
	if (!n->writing)
		emit(IN_CLOSE_WRITE, 0, path);
}

/* A change that POSIX allows, and the events for it. */
static void
mutate(void)
{
	char p[MAXP], q[MAXP];
	Node *n, *m;
	/* Weights: file writes most, directory renames (each brings a
	 * settle pass of the whole tree) less. */
	static const uint8_t ops[] = { 0, 0, 0, 2, 2, 2, 2, 3, 4, 5, 5, 6, 7,
	    8, 10, 11, 12, 13, 14, 14 };
	uint32_t op = ops[rnd(F.rng, sizeof ops)];

	/* Keep the trees small: past half full, delete more. */
	if (F.src.n > MAXN / 3 && op < 4)
		op = 6;
	switch (op) {
	case 0: case 1:	/* create a file (or write one that is there) */
		random_name(p, random_dir(&F.src)->path);
		if ((n = t_get(&F.src, p)) == NULL) {
			trace("create %s", p);
			src_create(p, T_FILE);
		} else if (n->type == T_FILE) {
			trace("write %s", p);
			fill_file(n);
			n->writing = false;
			emit(IN_MODIFY, 0, p);
			emit(IN_CLOSE_WRITE, 0, p);
		}
		break;
	case 2:	/* write, append, truncate */
		if ((n = random_entry(&F.src, T_FILE)) == NULL)
			break;
		trace("modify %s", n->path);
		fill_file(n);
		emit(IN_MODIFY, 0, n->path);
		n->writing = !chance(F.rng, 80);
		if (!n->writing)
			emit(IN_CLOSE_WRITE, 0, n->path);
		break;
	case 3:	/* mkdir */
		random_name(p, random_dir(&F.src)->path);
		if (t_get(&F.src, p) == NULL) {
			trace("mkdir %s", p);
			src_create(p, T_DIR);
		}
		break;
	case 4:	/* symlink, or retarget one (unlink + symlink) */
		random_name(p, random_dir(&F.src)->path);
		if ((n = t_get(&F.src, p)) == NULL) {
			trace("symlink %s", p);
			src_create(p, T_LINK);
		} else if (n->type == T_LINK) {
			trace("retarget %s", p);
			emit(IN_DELETE, 0, p);
			n->content = ++F.next_content;
			n->mtime = ++F.tick;
			src_touch_parent(p);
			emit(IN_CREATE, 0, p);
		}
		break;
	case 5:	/* delete a file or symlink */
		if ((n = random_entry(&F.src, 0)) == NULL || n->type == T_DIR)
			break;
		trace("delete %s", n->path);
		snprintf(p, sizeof p, "%s", n->path);
		src_delete_tree(p);
		break;
	case 6:	/* rm -r a directory (or delete anything) */
		if ((n = random_entry(&F.src, 0)) == NULL)
			break;
		snprintf(p, sizeof p, "%s", n->path);
		trace("rm -r %s", p);
		src_delete_tree(p);
		/* Sometimes a file takes the directory's place. */
		if (chance(F.rng, 30) && t_parent_state(&F.src, p) == 0) {
			trace("create %s (in its place)", p);
			src_create(p, T_FILE);
		}
		break;
	case 7: case 8: case 9: {	/* rename inside the tree */
		uint32_t cookie;
		bool dir, from_queued;
		if ((n = random_entry(&F.src, 0)) == NULL)
			break;
		snprintf(p, sizeof p, "%s", n->path);
		random_name(q, random_dir(&F.src)->path);
		dir = n->type == T_DIR;
		if (strcmp(p, q) == 0 || is_under(q, p))
			break;	/* EINVAL */
		/* The moved tree must stay within the model's depth. */
		{
			unsigned deepest = 0;
			for (size_t i = 0; i < F.src.n; i++)
				if (is_under(F.src.v[i].path, p) &&
				    depth(F.src.v[i].path) > deepest)
					deepest = depth(F.src.v[i].path);
			if (deepest > 0 && deepest - depth(p) + depth(q) > 3)
				break;
		}
		if ((m = t_get(&F.src, q)) != NULL) {
			if (dir != (m->type == T_DIR))
				break;	/* EISDIR, ENOTDIR */
			if (dir && t_has_children(&F.src, q))
				break;	/* ENOTEMPTY */
			t_remove_tree(&F.src, q);
		}
		trace("rename %s -> %s", p, q);
		t_move(&F.src, p, q);
		src_touch_parent(p);
		src_touch_parent(q);
		cookie = ++F.cookie;
		from_queued = emit(IN_MOVED_FROM | (dir ? IN_ISDIR : 0), cookie,
		    p);
		/* Stale names only for a watched directory that stays
		 * watched: its IN_MOVED_TO must come, or none are. */
		if (emit(IN_MOVED_TO | (dir ? IN_ISDIR : 0), cookie, q) &&
		    dir && from_queued && F.nstale < 16) {
			snprintf(F.stale[F.nstale].from, MAXP, "%s", p);
			snprintf(F.stale[F.nstale].to, MAXP, "%s", q);
			F.stale[F.nstale++].cookie = cookie;
		}
		break;
	}
	case 10:	/* moved out of the tree */
		if ((n = random_entry(&F.src, 0)) == NULL)
			break;
		snprintf(p, sizeof p, "%s", n->path);
		trace("move out %s", p);
		emit(IN_MOVED_FROM | (n->type == T_DIR ? IN_ISDIR : 0),
		    ++F.cookie, p);
		t_remove_tree(&F.src, p);
		src_touch_parent(p);
		break;
	case 11: {	/* moved into the tree: a file, or a directory with
			 * contents that no event names */
		Node *parent = random_dir(&F.src);
		random_name(p, parent->path);
		if (t_get(&F.src, p) != NULL)
			break;
		trace("move in %s", p);
		if (depth(p) < 3 && chance(F.rng, 50)) {
			n = t_add(&F.src, p, T_DIR);
			n->mtime = ++F.tick;
			for (uint32_t i = rnd(F.rng, 4); i > 0; i--) {
				random_name(q, p);
				if (t_get(&F.src, q) == NULL) {
					m = t_add(&F.src, q, T_FILE);
					fill_file(m);
				}
			}
			src_touch_parent(p);
			emit(IN_MOVED_TO | IN_ISDIR, ++F.cookie, p);
		} else {
			n = t_add(&F.src, p, T_FILE);
			fill_file(n);
			src_touch_parent(p);
			emit(IN_MOVED_TO, ++F.cookie, p);
		}
		break;
	}
	case 12:	/* chmod */
		if ((n = random_entry(&F.src, 0)) == NULL || n->type == T_LINK)
			break;
		trace("chmod %s", n->path);
		n->mode = n->type == T_DIR ? (n->mode == 0755 ? 0700 : 0755) :
		    (n->mode == 0644 ? 0600 : 0644);
		emit(IN_ATTRIB | (n->type == T_DIR ? IN_ISDIR : 0), 0,
		    n->path);
		break;
	case 13:	/* touch: a new mtime, the same data */
		if ((n = random_entry(&F.src, 0)) == NULL || n->type == T_LINK)
			break;
		trace("touch %s", n->path);
		n->mtime = ++F.tick;
		emit(IN_ATTRIB | (n->type == T_DIR ? IN_ISDIR : 0), 0,
		    n->path);
		break;
	case 14:	/* a writer closes its file */
		for (size_t i = 0; i < F.src.n; i++)
			if (F.src.v[i].writing) {
				trace("close %s", F.src.v[i].path);
				F.src.v[i].writing = false;
				emit(IN_CLOSE_WRITE, 0, F.src.v[i].path);
				break;
			}
		break;
	}
}

static Live *the_live;

/* The watcher hands over the first k events (all: k = 0). With lose,
 * the rest are lost and the kernel says so (IN_Q_OVERFLOW). */
static void
deliver(size_t k, bool lose)
{
	LiveEvent le[MAX_EVENTS];

	if (k == 0 || k > F.nev)
		k = F.nev;
	for (size_t i = 0; i < k; i++) {
		le[i].mask = F.ev[i].mask;
		le[i].cookie = F.ev[i].cookie;
		le[i].relpath = F.ev[i].path;
	}
	trace("deliver %zu of %zu events%s", k, F.nev, lose ? ", lose the "
	    "rest: overflow" : "");
	if (k > 0)
		live_on_events(the_live, le, k);
	/* The watcher placed watches on the directories it read of. */
	for (size_t i = 0; i < k; i++)
		for (size_t j = 0; F.ev[i].watch != 0 && j < F.nunwatched; j++)
			if (F.unwatched[j].id == F.ev[i].watch) {
				memmove(&F.unwatched[j], &F.unwatched[j + 1],
				    (F.nunwatched - j - 1) *
				    sizeof F.unwatched[0]);
				F.nunwatched--;
				break;
			}
	/* The watcher renamed its watches as it read the moves. */
	for (size_t i = 0; i < k; i++)
		for (size_t j = 0; j < F.nstale; j++)
			if ((F.ev[i].mask & IN_MOVED_TO) &&
			    F.ev[i].cookie == F.stale[j].cookie) {
				memmove(&F.stale[j], &F.stale[j + 1],
				    (F.nstale - j - 1) * sizeof F.stale[0]);
				F.nstale--;
				break;
			}
	if (lose || (F.nev == k && F.lost))
		F.nstale = F.nunwatched = 0;	/* after an overflow the
					 * watcher walks the roots again and
					 * places what is missing (watcher.c) */
	memmove(F.ev, F.ev + k, (F.nev - k) * sizeof F.ev[0]);
	F.nev -= k;
	if (lose || (F.nev == 0 && F.lost)) {
		F.nev = 0;
		F.lost = false;
		live_on_overflow(the_live);
	}
}

/* Time passes; the timer fires when it is due. */
static void
advance(uint64_t ms)
{
	uint64_t target = F.clock_ms + ms;

	while (live_timer_due(the_live) <= target) {
		/* libevent's cached time may run behind: a timer can fire a
		 * millisecond before live's clock says it is due. */
		if (live_timer_due(the_live) > F.clock_ms + 1 &&
		    rnd(F.rng, 10) == 0)
			F.clock_ms = live_timer_due(the_live) - 1;
		else if (live_timer_due(the_live) > F.clock_ms)
			F.clock_ms = live_timer_due(the_live);
		live_tick(the_live);
	}
	F.clock_ms = target;
}

/* n more random entries (fresh: in an empty tree). */
static void
random_tree(Tree *t, unsigned n, bool fresh)
{
	if (fresh) {
		t->n = 0;
		t_add(t, "", T_DIR)->mtime = ++F.tick;
	}
	for (unsigned i = 0; i < n; i++) {
		char p[MAXP];
		Node *dir = random_dir(t), *m;
		int type = (int)rnd(F.rng, 3) + 1;

		random_name(p, dir->path);
		if (t_get(t, p) != NULL)
			continue;
		m = t_add(t, p, type);
		if (type == T_FILE)
			fill_file(m);
		else
			m->content = ++F.next_content, m->mtime = ++F.tick;
		dir->mtime = ++F.tick;
	}
}

/* The first difference of destination k from the source, or "" none. */
static bool
compare(size_t k, char *msg, size_t size)
{
	const Tree *d = &F.dst[k];

	for (size_t i = 0; i < F.src.n; i++) {
		const Node *s = &F.src.v[i];
		int j;

		if (excluded_path(s->path, s->type == T_DIR))
			continue;	/* not mirrored: whatever is there */
		j = t_find(d, s->path);
		const Node *x = j < 0 ? NULL : &d->v[j];
		const char *what = NULL;

		if (x == NULL)
			what = "missing";
		else if (x->type != s->type)
			what = "of another type";
		else if (s->type != T_DIR && x->content != s->content)
			what = "with other content";
		else if (s->type != T_LINK && x->mode != s->mode)
			what = "with another mode";
		else if (s->type != T_LINK && (x->mtime != s->mtime ||
		    x->size != s->size))
			what = "with another mtime or size";
		if (what != NULL) {
			snprintf(msg, size, "destination %zu: '%s' is %s", k,
			    s->path, what);
			return false;
		}
	}
	/* The destinations start without excluded paths (model_run), and
	 * SPEC says they are never copied. */
	for (size_t i = 0; i < d->n; i++)
		if (excluded_path(d->v[i].path, d->v[i].type == T_DIR)) {
			snprintf(msg, size, "destination %zu: '%s' is excluded "
			    "but was copied", k, d->v[i].path);
			return false;
		}
	for (size_t i = 0; i < d->n; i++)
		if (t_find(&F.src, d->v[i].path) < 0 &&
		    !excluded_path(d->v[i].path, d->v[i].type == T_DIR)) {
			snprintf(msg, size, "destination %zu: '%s' is not in "
			    "the source", k, d->v[i].path);
			return false;
		}
	return true;
}

static void
dump(const char *what, const Tree *t)
{
	fprintf(stderr, "%s:\n", what);
	for (size_t i = 0; i < t->n; i++)
		fprintf(stderr, "  '%s' type %d content %u size %u mode %o "
		    "mtime %llu\n", t->v[i].path, t->v[i].type,
		    t->v[i].content, t->v[i].size, t->v[i].mode,
		    (unsigned long long)t->v[i].mtime);
}

/* Jobs still out (a failed sequence, or stopping): let them finish so
 * live_free finds nothing in flight. */
static void
drain(void)
{
	while (F.nqueued > 0 || F.nran > 0)
		if (F.nqueued > 0)
			worker_run_one();
		else
			reactor_done_one();
}

/* The sequence's settings, from its first choices. */
static void
choose_settings(ModelRng *rng)
{
	static const unsigned fail[] = { 0, 1, 3, 10 };
	static const unsigned pass_fail[] = { 0, 0, 5, 30 };
	static const unsigned overflow[] = { 0, 0, 3, 20 };
	static const unsigned resync[] = { 0, 0, 1, 5 };
	static const unsigned away[] = { 0, 0, 30, 100 };

	F.ndst = 1 + rnd(rng, MAX_DESTS);
	F.threads = 1 + (int)rnd(rng, 3);
	F.fail_pct = fail[rnd(rng, 4)];
	F.pass_fail_pct = pass_fail[rnd(rng, 4)];
	F.overflow_pm = overflow[rnd(rng, 4)];
	F.resync_pm = resync[rnd(rng, 4)];
	F.big_pct = rnd(rng, 3) == 0 ? 40 : 3;
	F.away_pct = away[rnd(rng, 4)];
}

/* The trees as the daemon finds them: the destinations anything (but
 * excluded paths, which SPEC says are never copied). */
static void
choose_trees(ModelRng *rng)
{
	random_tree(&F.src, 5 + rnd(rng, 20), true);
	for (size_t k = 0; k < F.ndst; k++) {
		bool fresh = rnd(rng, 2);
		if (!fresh)
			F.dst[k] = F.src;
		random_tree(&F.dst[k], rnd(rng, 8), fresh);
		for (size_t i = 1; i < F.dst[k].n;)
			if (excluded_path(F.dst[k].v[i].path,
			    F.dst[k].v[i].type == T_DIR))
				t_remove_tree(&F.dst[k], F.dst[k].v[i].path);
			else
				i++;
	}
}

/* One driver step while the source changes. */
static void
drive_step(ModelRng *rng)
{
	uint32_t what = rnd(rng, 100);

	if (what < 45) {
		mutate();
	} else if (what < 58) {
		if (F.nev > 0)
			deliver(1 + rnd(rng, (uint32_t)F.nev),
			    rnd(rng, 1000) < F.overflow_pm);
	} else if (what < 72) {
		if (F.nqueued > 0)
			worker_run_one();
	} else if (what < 86) {
		if (F.nran > 0)
			reactor_done_one();
	} else if (what == 97 && rnd(rng, 100) < F.away_pct) {
		toggle_away(F.md[rnd(rng, (uint32_t)F.ndst)]);
	} else if (what == 98 && rnd(rng, 3) == 0) {
		F.paused = !F.paused;
		trace("%s", F.paused ? "pause" : "resume");
		if (F.paused)
			live_pause(the_live);
		else
			live_resume(the_live);
	} else if (what < 99 || rnd(rng, 10) >= F.resync_pm) {
		advance(rnd(rng, 10) == 0 ? rnd(rng, 5000) : rnd(rng, 150));
	} else {
		trace("resync");
		live_resync(the_live, false);
	}
}

/* The pair as status would show it: idle, nothing queued. */
static bool
snapshot_idle(void)
{
	LiveStats st;
	bool idle;

	if (live_snapshot(the_live, &st) < 0)
		abort();
	idle = st.state == LIVE_IDLE && st.queue == 0;
	live_snapshot_release(&st);
	return idle;
}

/* Quiet: no more faults, every destination back, everything delivered
 * and done; the planner must go idle. false (and why) when it does not. */
static bool
quiesce(ModelResult *res)
{
	F.faults = false;
	for (size_t k = 0; k < F.ndst; k++)
		if (F.md[k]->away)
			toggle_away(F.md[k]);
	if (F.paused) {
		F.paused = false;
		live_resume(the_live);
	}
	while (F.nev > 0)
		deliver(0, false);
	for (uint64_t rounds = 0;; rounds++) {
		if (rounds == QUIESCE_ROUNDS) {
			snprintf(res->message, sizeof res->message,
			    "the planner never went idle (%d rounds): "
			    "livelock", QUIESCE_ROUNDS);
			return false;
		}
		if (F.nqueued > 0) {
			worker_run_one();
		} else if (F.nran > 0) {
			reactor_done_one();
		} else if (live_timer_due(the_live) != UINT64_MAX) {
			advance(live_timer_due(the_live) > F.clock_ms ?
			    live_timer_due(the_live) - F.clock_ms : 0);
		} else if (!snapshot_idle()) {
			snprintf(res->message, sizeof res->message,
			    "the planner has work but no job out and no "
			    "timer armed: stalled");
			return false;
		} else {
			return true;
		}
	}
}

int
model_run(ModelRng *rng, uint64_t max_steps, bool trace_on,
    ModelResult *res)
{
	static struct event_base *base;
	static const int delays[] = { 0, 20, 100, 1000 };
	static char names[MAX_DESTS][16];
	SyncPairConfig pair = { 0 };
	char *dests[MAX_DESTS];
	Dest *seam[MAX_DESTS];
	LiveOptions opt = { 0 };
	uint64_t steps = 0;
	int r;

	memset(res, 0, sizeof *res);
	memset(&F, 0, sizeof F);
	F.rng = rng;
	F.trace = trace_on;
	F.queued_tail = &F.queued;
	F.ran_tail = &F.ran;
	F.clock_ms = 1000000;
	choose_settings(rng);
	if (base == NULL) {
		synclog_set_level(LOG_LEVEL_ERROR);
		if ((base = event_base_new()) == NULL)
			return -ENOMEM;
	}
	pair.name = "model";
	pair.source = "/model/src";
	pair.destinations = dests;
	pair.n_destinations = F.ndst;
	pair.delete = true;
	pair.compare = COMPARE_MTIME;
	for (size_t k = 0; k < F.ndst; k++) {
		snprintf(names[k], sizeof names[k], "/model/dst%zu", k);
		dests[k] = names[k];
		/* A quarter of the destinations are remote-like. */
		F.md[k] = model_dest_new(k, names[k], rnd(rng, 4) == 0);
		seam[k] = &F.md[k]->base;
	}
	if ((r = exclude_new(&pair.exclude)) < 0)
		goto fail_setup;
	/* Half the sequences exclude every name "c" (a fifth of the names):
	 * moves to and from excluded names, excluded directories. */
	if (rnd(rng, 2) && (r = exclude_add(pair.exclude, "c")) < 0)
		goto fail_setup;
	model_ex = pair.exclude;
	choose_trees(rng);
	opt.delay_ms = delays[rnd(rng, 4)];
	live_set_clock(model_clock_usec);
	if ((r = live_new(base, &pair, seam, &opt, &the_live)) < 0)
		goto fail_setup;
	trace("start: %zu destinations, %d workers, delay %d ms, faults: "
	    "%u%% of path steps, %u%% of passes; %u per mille of deliveries "
	    "overflow, %u per mille of steps resync, away %u%%", F.ndst,
	    F.threads, opt.delay_ms, F.fail_pct, F.pass_fail_pct,
	    F.overflow_pm, F.resync_pm, F.away_pct);
	live_start(the_live);

	/* The source changes while the planner works. */
	F.faults = true;
	while (steps < max_steps && !rng->exhausted) {
		steps++;
		drive_step(rng);
		if (!live_audit(the_live, res->message, sizeof res->message))
			break;
	}
	res->ok = res->message[0] == '\0' && quiesce(res);
	for (size_t k = 0; k < F.ndst && res->ok; k++)
		res->ok = compare(k, res->message, sizeof res->message);
	if (!res->ok && F.trace) {
		dump("source", &F.src);
		for (size_t k = 0; k < F.ndst; k++)
			dump("destination", &F.dst[k]);
	}
	res->steps = steps;
	live_stop(the_live);
	drain();
	live_free(the_live);
	the_live = NULL;
	exclude_free(pair.exclude);
	return 0;
fail_setup:
	for (size_t k = 0; k < F.ndst; k++)
		dest_free(seam[k]);
	exclude_free(pair.exclude);
	return r;
}
