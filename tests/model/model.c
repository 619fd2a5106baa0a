/*
 * model — see model.h.
 *
 * The fakes replace, at link time, what live.c calls outside itself
 * (pool_submit, pool_threads, pathsync_*, fullsync_*): the test links the
 * engine as a static library, and symbols defined here win, so those
 * objects are never pulled in. live.c's own code (path_run, the heaps,
 * batching, renames, passes, backoff) is the daemon's, unchanged.
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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine/copy.h"
#include "engine/exclude.h"
#include "engine/fullsync.h"
#include "live/live.h"
#include "model.h"
#include "engine/pathsync.h"
#include "engine/pool.h"
#include "engine/rules.h"
#include "util/synclog.h"

#define MAXN 192		/* entries of one model tree (root included) */
#define MAXP 40			/* path length */
#define MAX_DESTS 2
#define MAX_EVENTS 512
#define QUIESCE_ROUNDS 200000

/* ---- randomness ----------------------------------------------------- */

void
model_rng_seed(ModelRng *r, uint64_t seed)
{
	memset(r, 0, sizeof *r);
	r->state = seed * 0x9e3779b97f4a7c15ull + 1;
}

void
model_rng_bytes(ModelRng *r, const uint8_t *data, size_t len)
{
	memset(r, 0, sizeof *r);
	r->data = data;
	r->len = len;
}

/* 0..n-1 (n >= 1). */
static uint32_t
rnd(ModelRng *r, uint32_t n)
{
	uint64_t z;

	if (n <= 1)
		return 0;
	if (r->data != NULL) {
		if (r->pos >= r->len) {
			r->exhausted = true;
			return 0;
		}
		z = r->data[r->pos++];
		if (n > 256 && r->pos < r->len)
			z = z << 8 | r->data[r->pos++];
		return (uint32_t)(z % n);
	}
	z = (r->state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (uint32_t)(z % n);
}

static bool
chance(ModelRng *r, unsigned pct)
{
	return rnd(r, 100) < pct;
}

/* ---- trees ----------------------------------------------------------- */

enum { T_FILE = 1, T_DIR, T_LINK };

typedef struct Node {
	char path[MAXP];	/* "" is the root */
	int type;
	uint32_t content;	/* file data, or a symlink's target */
	uint32_t size;
	unsigned mode;
	uint64_t mtime;
	bool writing;		/* a writer has it open (no close yet) */
} Node;

typedef struct Tree {
	Node v[MAXN];
	size_t n;
} Tree;

typedef struct Fs Fs;
typedef struct PassRec PassRec;

/* One sequence's world. Global: the fakes have no other way in. */
struct Fs {
	ModelRng *rng;
	bool trace;
	Tree src;
	Tree dst[MAX_DESTS];
	size_t ndst;
	ino_t dst_ino[MAX_DESTS];
	uint64_t clock_ms;
	uint64_t tick;		/* mtimes: every change gets a new one */
	uint32_t next_content;
	uint32_t cookie;
	/* Events the "watcher" has not delivered yet. */
	struct {
		uint32_t mask, cookie;
		char path[MAXP];
		uint32_t watch;	/* the watch it makes the watcher place */
	} ev[MAX_EVENTS];
	size_t nev;
	/* Directory renames the watcher has not seen yet: its watches keep
	 * the old names, so events inside carry the old paths. */
	struct {
		char from[MAXP], to[MAXP];
		uint32_t cookie;
	} stale[16];
	size_t nstale;
	/* Directories made (or moved in) whose event the watcher has not
	 * read yet: nothing watches them, changes inside make no event. */
	struct {
		char path[MAXP];
		uint32_t id;
	} unwatched[16];
	size_t nunwatched;
	uint32_t watch_ids;
	bool lost;		/* the queue overflowed */
	/* The fake pool: submitted (FIFO) and run, awaiting done (FIFO). */
	Job *queued, **queued_tail;
	Job *ran, **ran_tail;
	size_t nqueued, nran;
	int threads;
	bool faults;		/* inject failures now */
	bool paused;		/* live_pause in force */
	unsigned fail_pct;	/* of a path job's steps, a rename */
	unsigned pass_fail_pct;	/* of passes (then some entries fail) */
	bool pass_failing;	/* the pass running now fails entries */
	unsigned overflow_pm;	/* per mille of deliveries */
	unsigned big_pct;	/* of files written: 3 MiB */
	unsigned resync_pm;	/* per mille of steps */
	/* Parents opened by pathsync_dir_open (the fake's "fds"). */
	struct {
		bool used;
		size_t di;
		char parent[MAXP];
	} slot[8];
	char dir[64];		/* scratch: real roots for path_run's opens */
	char srcdir[80], dstdir[MAX_DESTS][80];
};

static Fs F;
static const Exclude *model_ex;	/* the pair's patterns (maybe none) */

/* Excluded as live.c and the planner see it: the path, or a directory
 * above it, matches. */
static bool
excluded_path(const char *path, bool is_dir)
{
	char buf[MAXP];

	if (exclude_count(model_ex) == 0 || path[0] == '\0')
		return false;
	if (exclude_match(model_ex, path, is_dir))
		return true;
	snprintf(buf, sizeof buf, "%s", path);
	for (char *s = strrchr(buf, '/'); s != NULL; s = strrchr(buf, '/')) {
		*s = '\0';
		if (exclude_match(model_ex, buf, true))
			return true;
	}
	return false;
}

static void __attribute__((format(printf, 1, 2)))
trace(const char *fmt, ...)
{
	va_list ap;

	if (!F.trace)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "[%llu] ", (unsigned long long)F.clock_ms);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int
t_find(const Tree *t, const char *path)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].path, path) == 0)
			return (int)i;
	return -1;
}

static Node *
t_get(Tree *t, const char *path)
{
	int i = t_find(t, path);

	return i < 0 ? NULL : &t->v[i];
}

/* under is path's ancestor (strictly). */
static bool
is_under(const char *path, const char *under)
{
	size_t n = strlen(under);

	if (n == 0)
		return path[0] != '\0';
	return strncmp(path, under, n) == 0 && path[n] == '/';
}

static void
parent_of(const char *path, char *out)
{
	const char *s = strrchr(path, '/');

	if (s == NULL)
		out[0] = '\0';
	else {
		memcpy(out, path, (size_t)(s - path));
		out[s - path] = '\0';
	}
}

static void
join(char *out, const char *dir, const char *name)
{
	if (dir[0] == '\0')
		snprintf(out, MAXP, "%s", name);
	else
		snprintf(out, MAXP, "%s/%s", dir, name);
}

static unsigned
depth(const char *path)
{
	unsigned d = path[0] != '\0';

	for (; *path != '\0'; path++)
		d += *path == '/';
	return d;
}

static Node *
t_add(Tree *t, const char *path, int type)
{
	Node *n;

	if (t->n >= MAXN)
		abort();	/* the driver keeps trees well below */
	n = &t->v[t->n++];
	memset(n, 0, sizeof *n);
	snprintf(n->path, sizeof n->path, "%s", path);
	n->type = type;
	n->mode = type == T_DIR ? 0755 : 0644;
	return n;
}

/* Removes path and everything beneath it; how many entries went. */
static size_t
t_remove_tree(Tree *t, const char *path)
{
	size_t k = 0, gone = 0;
	char keep[MAXP];

	snprintf(keep, sizeof keep, "%s", path);
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->v[i].path, keep) == 0 ||
		    is_under(t->v[i].path, keep)) {
			gone++;
			continue;
		}
		t->v[k++] = t->v[i];
	}
	t->n = k;
	return gone;
}

static bool
t_has_children(const Tree *t, const char *dir)
{
	for (size_t i = 0; i < t->n; i++) {
		char p[MAXP];

		parent_of(t->v[i].path, p);
		if (t->v[i].path[0] != '\0' && strcmp(p, dir) == 0)
			return true;
	}
	return false;
}

/* Moves from (and what is beneath it) to to; to must not exist. */
static void
t_move(Tree *t, const char *from, const char *to)
{
	char f[MAXP], tt[MAXP];
	size_t fl;

	snprintf(f, sizeof f, "%s", from);
	snprintf(tt, sizeof tt, "%s", to);
	fl = strlen(f);
	for (size_t i = 0; i < t->n; i++) {
		Node *n = &t->v[i];
		char buf[2 * MAXP];

		if (strcmp(n->path, f) == 0)
			snprintf(n->path, sizeof n->path, "%s", tt);
		else if (is_under(n->path, f)) {
			snprintf(buf, sizeof buf, "%s%s", tt, n->path + fl);
			if (strlen(buf) >= MAXP)
				abort();	/* the driver checks depth */
			memcpy(n->path, buf, strlen(buf) + 1);
		}
	}
}

/* What opening path's parent (beneath the root, no symlinks) gives. */
static int
t_parent_state(const Tree *t, const char *path)
{
	char p[MAXP];

	parent_of(path, p);
	/* Every ancestor, from the top: the first that fails decides. */
	for (size_t i = 0; p[0] != '\0';) {
		char pre[MAXP];
		const Node *n;
		int k;
		const char *s = strchr(p + i, '/');
		size_t len = s != NULL ? (size_t)(s - p) : strlen(p);

		memcpy(pre, p, len);
		pre[len] = '\0';
		if ((k = t_find(t, pre)) < 0)
			return -ENOENT;
		n = &t->v[k];
		if (n->type == T_LINK)
			return -ELOOP;
		if (n->type != T_DIR)
			return -ENOTDIR;
		if (s == NULL)
			break;
		i = len + 1;
	}
	return 0;
}

/* The destination changed an entry in dir: the kernel moves its mtime. */
static void
touch_dir(Tree *t, const char *dir)
{
	Node *n = t_get(t, dir);

	if (n != NULL)
		n->mtime = ++F.tick;
}

static void
touch_parent(Tree *t, const char *path)
{
	char p[MAXP];

	parent_of(path, p);
	touch_dir(t, p);
}

/* ---- the fake pool --------------------------------------------------- */

struct Pool {
	int threads;
};

static Pool the_pool;

void
pool_submit(Pool *pool, Job *job)
{
	(void)pool;
	job->cancelled = false;
	job->next = NULL;
	*F.queued_tail = job;
	F.queued_tail = &job->next;
	F.nqueued++;
}

int
pool_threads(const Pool *pool)
{
	return pool->threads;
}

/* A worker takes one of the first `threads` queued jobs and runs it. */
static void
pool_run_one(void)
{
	uint32_t k = rnd(F.rng, (uint32_t)(F.nqueued < (size_t)F.threads ?
	    F.nqueued : (size_t)F.threads));
	Job **pp = &F.queued, *job;

	while (k-- > 0)
		pp = &(*pp)->next;
	job = *pp;
	*pp = job->next;
	if (F.queued_tail == &job->next)
		F.queued_tail = pp;
	F.nqueued--;
	job->run(job);
	job->next = NULL;
	*F.ran_tail = job;
	F.ran_tail = &job->next;
	F.nran++;
}

/* The reactor takes the oldest finished job: its done(). */
static void
pool_done_one(void)
{
	Job *job = F.ran;

	F.ran = job->next;
	if (F.ran == NULL)
		F.ran_tail = &F.ran;
	F.nran--;
	job->done(job);
}

/* ---- the fake pathsync ----------------------------------------------- */

static size_t
dest_of_fd(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0)
		for (size_t k = 0; k < F.ndst; k++)
			if (st.st_ino == F.dst_ino[k])
				return k;
	fprintf(stderr, "model: a destination fd that is no destination\n");
	abort();
}

static int
fault_errno(void)
{
	return rnd(F.rng, 2) ? -EIO : -ENOSPC;
}

static bool
inject(void)
{
	return F.faults && chance(F.rng, F.fail_pct);
}

void
pathsync_dir_open(int src_root, int dst_root, const char *parent,
    PathSyncDir *pd)
{
	size_t di = dest_of_fd(dst_root);
	char probe[2 * MAXP];
	int s = -1;

	pd->src_root = src_root;
	pd->dst_root = dst_root;
	for (int i = 0; i < 8; i++)
		if (!F.slot[i].used) {
			s = i;
			break;
		}
	if (s < 0)
		abort();
	F.slot[s].used = true;
	F.slot[s].di = di;
	snprintf(F.slot[s].parent, MAXP, "%s", parent);
	/* The state of the parent itself: its own parent's, then it. */
	join(probe, parent, "x");
	pd->sp = pd->dp = s;
	{
		int e = t_parent_state(&F.src, probe);
		if (e < 0)
			pd->sp = e;
		e = t_parent_state(&F.dst[di], probe);
		if (e < 0)
			pd->dp = e;
	}
	if (inject())
		pd->dp = fault_errno();
	if (pd->sp < 0 && pd->dp < 0)
		F.slot[s].used = false;
}

void
pathsync_dir_close(PathSyncDir *pd)
{
	if (pd->sp >= 0)
		F.slot[pd->sp].used = false;
	else if (pd->dp >= 0)
		F.slot[pd->dp].used = false;
	pd->sp = pd->dp = -1;
}

static bool
path_gone(int err)
{
	return err == -ENOENT || err == -ENOTDIR || err == -ELOOP;
}

/* copy_delete_tree: a failure may leave part of the tree deleted. */
static int
dst_delete(Tree *t, const char *path, uint64_t *count)
{
	char p[MAXP];

	snprintf(p, sizeof p, "%s", path);
	if (inject()) {
		if (rnd(F.rng, 2)) {
			/* What was inside went, the directory itself not. */
			size_t before = t->n;
			Node *n = t_get(t, p);
			if (n != NULL && n->type == T_DIR) {
				for (size_t i = 0; i < t->n;)
					if (is_under(t->v[i].path, p))
						t_remove_tree(t, t->v[i].path);
					else
						i++;
				if (t->n != before)
					touch_dir(t, p);
			}
		}
		return fault_errno();
	}
	*count += t_remove_tree(t, p);
	touch_parent(t, p);
	return 0;
}

/* copy_file_atomic / copy_symlink: a temporary renamed over the name. */
static int
dst_copy(Tree *t, const Node *s)
{
	Node *d;

	if (inject())
		return fault_errno();	/* the temporary is removed */
	/* copy_file_atomic saw the file change while it read it. */
	if (s->writing && F.faults && chance(F.rng, 50))
		return COPY_SOURCE_CHANGED;
	if ((d = t_get(t, s->path)) != NULL && d->type == T_DIR)
		abort();	/* callers delete a directory first */
	if (d == NULL)
		d = t_add(t, s->path, s->type);
	*d = *s;
	touch_parent(t, s->path);
	return 0;
}

/* copy_set_meta: mode, then times; a failure may stop between them. */
static int
dst_meta(Node *d, const Node *s)
{
	if (inject()) {
		if (rnd(F.rng, 2))
			d->mode = s->mode;
		return fault_errno();
	}
	d->mode = s->mode;
	d->mtime = s->mtime;
	return 0;
}

/* A model entry as a scan lists it, for rules_decide (one owner, one
 * link each; a symlink's target is its content's number). */
static const ScanEntry *
entry_of(const Node *n, ScanEntry *e, char *target, size_t size)
{
	if (n == NULL)
		return NULL;
	memset(e, 0, sizeof *e);
	e->meta.mode = (n->type == T_FILE ? S_IFREG : n->type == T_DIR ?
	    S_IFDIR : S_IFLNK) | (n->mode & 07777);
	e->meta.size = n->type == T_FILE ? n->size : 0;
	e->meta.mtime_sec = (int64_t)n->mtime;
	e->meta.nlink = 1;
	if (n->type == T_LINK) {
		snprintf(target, size, "%u", (unsigned)n->content);
		e->link_target = target;
	}
	return e;
}

/* What the rules (rules.h) say a destination entry d (or NULL) needs to
 * equal the source entry s (or NULL); a hash is the content's. */
static RuleDecision
model_decide(const Node *s, const Node *d, const RuleOptions *opt)
{
	char st[16], dtg[16];
	ScanEntry se, de;
	const ScanEntry *sp = entry_of(s, &se, st, sizeof st);
	const ScanEntry *dp = entry_of(d, &de, dtg, sizeof dtg);
	RuleDecision r = rules_decide(sp, dp, opt);

	if (r.action == RULE_HASH)
		r = rules_after_hash(sp, dp, opt, s->content == d->content);
	return r;
}

static void pathsync_dir_run_(const PathSyncDir *pd, const char *base,
    const PathSyncOptions *opt, PathSyncResult *res);

void
pathsync_dir_run(const PathSyncDir *pd, const char *base,
    const PathSyncOptions *opt, PathSyncResult *res)
{
	pathsync_dir_run_(pd, base, opt, res);
	trace("path %s '%s' (dest %zu): %s outcome %d err %d",
	    pd->sp >= 0 ? F.slot[pd->sp].parent : pd->dp >= 0 ?
	    F.slot[pd->dp].parent : "?", base, pd->dp >= 0 ?
	    F.slot[pd->dp].di : 0, rules_action_name(res->action),
	    (int)res->outcome, res->err);
}

static void
pathsync_dir_run_(const PathSyncDir *pd, const char *base,
    const PathSyncOptions *opt, PathSyncResult *res)
{
	int sp = pd->sp, dp = pd->dp, slot = sp >= 0 ? sp : dp;
	RuleDecision rule;
	Tree *dt;
	char path[MAXP] = "";
	Node *s = NULL, *d = NULL;

	memset(res, 0, sizeof *res);
	res->outcome = PATHSYNC_DONE;
	if (sp < 0 && !path_gone(sp)) {
		res->err = sp;
		return;
	}
	if (slot >= 0)
		join(path, F.slot[slot].parent, base);
	if (sp >= 0)
		s = t_get(&F.src, path);
	if (dp < 0) {
		if (path_gone(dp))
			res->outcome = s != NULL ? PATHSYNC_NO_PARENT :
			    PATHSYNC_DONE;
		else
			res->err = dp;
		return;
	}
	if (inject()) {
		res->err = fault_errno();	/* its stat */
		return;
	}
	dt = &F.dst[F.slot[dp].di];
	d = t_get(dt, path);
	if (opt->expect != NULL && opt->expect->known)
		abort();	/* no guard in the model: passes say unknown */
	rule = model_decide(s, d, &(RuleOptions){ .compare = opt->compare,
	    .delete = opt->delete });
	switch (rule.action) {
	case RULE_DELETE:
		res->action = RULE_DELETE;
		res->entries_changed = true;
		res->err = dst_delete(dt, path, &res->count);
		break;
	case RULE_MKDIR:
		res->outcome = PATHSYNC_SUBTREE;
		break;
	case RULE_RECURSE:
	case RULE_ATTRS:
		if (rule.action == RULE_RECURSE && !rule.attrs)
			break;
		res->action = RULE_ATTRS;
		res->err = dst_meta(d, s);
		break;
	case RULE_COPY:
	case RULE_SYMLINK:
		if (rule.replace) {
			res->action = RULE_DELETE;
			if ((res->err = dst_delete(dt, path, &res->count)) != 0)
				return;
			res->replaced = true;
		}
		res->action = rule.action;
		res->entries_changed = true;
		res->bytes = s->size;
		res->err = dst_copy(dt, s);
		break;
	default:
		break;	/* in sync, or kept */
	}
}

void
pathsync_run(int src_root, int dst_root, const char *relpath,
    const PathSyncOptions *opt, PathSyncResult *res)
{
	PathSyncDir pd;
	char parent[MAXP];
	const char *base = strrchr(relpath, '/');

	if (relpath[0] == '\0') {
		/* sync_root_meta */
		Tree *dt = &F.dst[dest_of_fd(dst_root)];
		memset(res, 0, sizeof *res);
		res->outcome = PATHSYNC_DONE;
		if (!model_decide(&F.src.v[0], &dt->v[0], &(RuleOptions){
		    .compare = opt->compare }).attrs)
			return;
		res->action = RULE_ATTRS;
		res->err = dst_meta(&dt->v[0], &F.src.v[0]);
		return;
	}
	parent_of(relpath, parent);
	pathsync_dir_open(src_root, dst_root, parent, &pd);
	pathsync_dir_run(&pd, base != NULL ? base + 1 : relpath, opt, res);
	pathsync_dir_close(&pd);
}

/* renameat(2) in a destination, with its rules. */
static int pathsync_rename_(int dst_root, const char *from, const char *to);

int
pathsync_rename(int dst_root, const char *from, const char *to)
{
	int r = pathsync_rename_(dst_root, from, to);

	trace("rename '%s' -> '%s': %d", from, to, r);
	return r;
}

static int
pathsync_rename_(int dst_root, const char *from, const char *to)
{
	Tree *t = &F.dst[dest_of_fd(dst_root)];
	Node *f, *d;
	int e;

	if ((e = t_parent_state(t, from)) < 0 ||
	    (e = t_parent_state(t, to)) < 0)
		return e;
	if (inject())
		return fault_errno();
	if ((f = t_get(t, from)) == NULL)
		return -ENOENT;
	if (strcmp(from, to) == 0)
		return 0;
	if (is_under(to, from))
		return -EINVAL;
	if ((d = t_get(t, to)) != NULL) {
		if (f->type == T_DIR && d->type != T_DIR)
			return -ENOTDIR;
		if (f->type != T_DIR && d->type == T_DIR)
			return -EISDIR;
		if (d->type == T_DIR && t_has_children(t, to))
			return -ENOTEMPTY;
		t_remove_tree(t, to);
	}
	t_move(t, from, to);
	touch_parent(t, from);
	touch_parent(t, to);
	return 0;
}

/* ---- the fake fullsync ----------------------------------------------- */

struct FullSync {
	Job job;
	size_t di;
	char relroot[MAXP];
	FullSyncDoneFn done;
	void *arg;
	SyncStats st;
	bool stopped;
	size_t jobs_out;
	/* Like the real pass, one directory at a time, each a job of its
	 * own: the source changes between them. */
	bool opened;
	bool failing;		/* this pass fails some entries */
	char todo[MAXN][MAXP];
	size_t ntodo;
	RuleOptions rules;	/* the pair's, for model_decide */
};

/* A file or symlink as the source has it (a pass's copy). */
static void
put(Tree *t, const Node *s, const char *dir)
{
	Node *d = t_get(t, s->path);

	if (d == NULL)
		d = t_add(t, s->path, s->type);
	*d = *s;
	touch_dir(t, dir);
}

/* Makes the entries of the destination directory dir equal to the
 * source's (a failed entry is skipped); its directories come later. */
static void
pass_dir(FullSync *fs, const char *dir)
{
	Tree *t = &F.dst[fs->di];
	char kids[MAXN][MAXP];
	size_t nk = 0;
	const Node *sd = t_get(&F.src, dir), *dd = t_get(t, dir);
	RuleDecision rule;

	/* Gone from either side since it was listed: the events that say
	 * so bring the paths back (the real scan finds ENOENT). */
	if (sd == NULL || sd->type != T_DIR || dd == NULL ||
	    dd->type != T_DIR)
		return;
	/* The source's entries (copied: the loop changes the trees). */
	for (size_t i = 0; i < F.src.n; i++) {
		char p[MAXP];

		parent_of(F.src.v[i].path, p);
		/* The planner ignores excluded names on both sides. */
		if (F.src.v[i].path[0] != '\0' && strcmp(p, dir) == 0 &&
		    !exclude_match(model_ex, F.src.v[i].path,
		    F.src.v[i].type == T_DIR))
			snprintf(kids[nk++], MAXP, "%s", F.src.v[i].path);
	}
	for (size_t k = 0; k < nk; k++) {
		Node s = *t_get(&F.src, kids[k]), *d = t_get(t, kids[k]);

		fs->st.entries_seen++;
		if (fs->failing && chance(F.rng, 20)) {
			fs->st.errors++;
			continue;
		}
		rule = model_decide(&s, d, &fs->rules);
		if (rule.replace) {
			fs->st.deleted += t_remove_tree(t, kids[k]);
			touch_dir(t, dir);
			d = NULL;
		}
		switch (rule.action) {
		case RULE_COPY:
		case RULE_SYMLINK:
			put(t, &s, dir);
			fs->st.files_copied++;
			break;
		case RULE_ATTRS:
			d->mode = s.mode;
			d->mtime = s.mtime;
			break;
		case RULE_MKDIR: {
			Node *m = t_add(t, kids[k], T_DIR);
			m->mode = 0700;
			m->mtime = ++F.tick;
			touch_dir(t, dir);
		}
			/* FALLTHROUGH */
		case RULE_RECURSE:
			/* Its own attributes once its entries are final. */
			snprintf(fs->todo[fs->ntodo++], MAXP, "%s", kids[k]);
			break;
		default:
			break;
		}
	}
	/* What the source no longer has. */
	nk = 0;
	for (size_t i = 0; i < t->n; i++) {
		char p[MAXP];

		parent_of(t->v[i].path, p);
		if (t->v[i].path[0] != '\0' && strcmp(p, dir) == 0 &&
		    t_find(&F.src, t->v[i].path) < 0 &&
		    !exclude_match(model_ex, t->v[i].path,
		    t->v[i].type == T_DIR) &&
		    model_decide(NULL, &t->v[i], &fs->rules).action ==
		    RULE_DELETE)
			snprintf(kids[nk++], MAXP, "%s", t->v[i].path);
	}
	for (size_t k = 0; k < nk; k++) {
		if (fs->failing && chance(F.rng, 20)) {
			fs->st.errors++;
			continue;
		}
		fs->st.deleted += t_remove_tree(t, kids[k]);
		touch_dir(t, dir);
	}
	/* The directory's own metadata, once its entries are final. */
	{
		Node *s = t_get(&F.src, dir), *d = t_get(t, dir);
		if (s != NULL && d != NULL) {
			d->mode = s->mode;
			d->mtime = s->mtime;
		}
	}
}

/* The pass's first job opens its roots (open_subtree); each later one
 * does one directory. */
static void
pass_run(Job *job)
{
	FullSync *fs = (FullSync *)job;
	Tree *t = &F.dst[fs->di];
	const char *r = fs->relroot;
	Node *s, *d;
	int e;

	if (fs->opened) {
		char dir[MAXP];

		snprintf(dir, sizeof dir, "%s", fs->todo[--fs->ntodo]);
		pass_dir(fs, dir);
		return;
	}
	fs->opened = true;
	memset(&fs->st, 0, sizeof fs->st);
	fs->st.delete_budget = UINT64_MAX;
	fs->failing = F.faults && chance(F.rng, F.pass_fail_pct);
	if (fs->failing && chance(F.rng, 30)) {
		fs->st.errors = 1;	/* a root would not open */
		return;
	}
	if (r[0] != '\0') {
		/* open_subtree */
		if ((e = t_parent_state(&F.src, r)) < 0) {
			if (e != -ENOENT)
				fs->st.errors = 1;
			return;
		}
		if ((s = t_get(&F.src, r)) == NULL || s->type != T_DIR)
			return;	/* gone, or no longer a directory */
		if (t_parent_state(t, r) < 0) {
			fs->st.errors = 1;
			return;
		}
		if ((d = t_get(t, r)) == NULL || d->type != T_DIR) {
			Node *m;
			if (d != NULL)
				t_remove_tree(t, r);
			m = t_add(t, r, T_DIR);
			m->mode = 0700;
			m->mtime = ++F.tick;
			touch_parent(t, r);
		}
	}
	snprintf(fs->todo[fs->ntodo++], MAXP, "%s", r);
}

static void
pass_job_done(Job *job)
{
	FullSync *fs = (FullSync *)job;

	if (fs->stopped || job->cancelled) {
		fs->jobs_out = 0;
		return;
	}
	if (fs->ntodo > 0) {
		pool_submit(&the_pool, &fs->job);	/* the next directory */
		return;
	}
	fs->jobs_out = 0;
	fs->st.scan_done = true;
	trace("pass %zu '%s' done: %llu errors", fs->di, fs->relroot,
	    (unsigned long long)fs->st.errors);
	fs->done(fs, fs->arg);
}

int
fullsync_new(Pool *pool, const SyncPairConfig *pair, const char *dest,
    const char *relroot, const FullSyncOptions *opt, FullSyncDoneFn done,
    void *arg, FullSync **ret)
{
	FullSync *fs = calloc(1, sizeof *fs);

	(void)pool;
	(void)opt;
	if (fs == NULL)
		return -ENOMEM;
	for (size_t k = 0; k < pair->n_destinations; k++)
		if (strcmp(pair->destinations[k], dest) == 0)
			fs->di = k;
	snprintf(fs->relroot, sizeof fs->relroot, "%s",
	    relroot != NULL ? relroot : "");
	fs->rules.compare = pair->compare;
	fs->rules.delete = pair->delete;
	fs->done = done;
	fs->arg = arg;
	*ret = fs;
	return 0;
}

void
fullsync_start(FullSync *fs)
{
	trace("pass %zu '%s' starts", fs->di, fs->relroot);
	fs->job.run = pass_run;
	fs->job.done = pass_job_done;
	fs->jobs_out = 1;
	pool_submit(&the_pool, &fs->job);
}

void
fullsync_stop(FullSync *fs)
{
	fs->stopped = true;
}

const SyncStats *
fullsync_stats(const FullSync *fs)
{
	return &fs->st;
}

size_t
fullsync_jobs_out(const FullSync *fs)
{
	return fs->jobs_out;
}

void
fullsync_free(FullSync *fs)
{
	free(fs);
}

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

static int
setup_dirs(SyncPairConfig *pair, char **dests)
{
	static bool made;
	struct stat st;

	if (!made) {
		snprintf(F.dir, sizeof F.dir, "/tmp/treesync-model.XXXXXX");
		if (mkdtemp(F.dir) == NULL)
			return -errno;
		snprintf(F.srcdir, sizeof F.srcdir, "%s/src", F.dir);
		if (mkdir(F.srcdir, 0700) < 0)
			return -errno;
		for (size_t k = 0; k < MAX_DESTS; k++) {
			snprintf(F.dstdir[k], sizeof F.dstdir[k], "%s/dst%zu",
			    F.dir, k);
			if (mkdir(F.dstdir[k], 0700) < 0)
				return -errno;
		}
		made = true;
	}
	pair->source = F.srcdir;
	for (size_t k = 0; k < F.ndst; k++) {
		dests[k] = F.dstdir[k];
		if (stat(F.dstdir[k], &st) < 0)
			return -errno;
		F.dst_ino[k] = st.st_ino;
	}
	return 0;
}

static void
cleanup_dirs(void)
{
	char p[96];

	if (F.dir[0] == '\0')
		return;
	rmdir(F.srcdir);
	for (size_t k = 0; k < MAX_DESTS; k++)
		rmdir(F.dstdir[k]);
	snprintf(p, sizeof p, "%s", F.dir);
	rmdir(p);
}

int
model_run(ModelRng *rng, uint64_t max_steps, bool trace_on,
    ModelResult *res)
{
	static struct event_base *base;
	static bool registered;
	SyncPairConfig pair = { 0 };
	char *dests[MAX_DESTS];
	LiveOptions opt = { 0 };
	uint64_t steps = 0, rounds = 0;
	int r;
	static const int delays[] = { 0, 20, 100, 1000 };

	memset(res, 0, sizeof *res);
	memset(&F, 0, offsetof(Fs, dir));
	F.rng = rng;
	F.trace = trace_on;
	F.queued_tail = &F.queued;
	F.ran_tail = &F.ran;
	F.clock_ms = 1000000;
	F.ndst = 1 + rnd(rng, MAX_DESTS);
	F.threads = 1 + (int)rnd(rng, 3);
	{
		static const unsigned fail[] = { 0, 1, 3, 10 };
		static const unsigned pass_fail[] = { 0, 0, 5, 30 };
		static const unsigned overflow[] = { 0, 0, 3, 20 };
		static const unsigned resync[] = { 0, 0, 1, 5 };
		F.fail_pct = fail[rnd(rng, 4)];
		F.pass_fail_pct = pass_fail[rnd(rng, 4)];
		F.overflow_pm = overflow[rnd(rng, 4)];
		F.resync_pm = resync[rnd(rng, 4)];
		F.big_pct = rnd(rng, 3) == 0 ? 40 : 3;
	}
	the_pool.threads = F.threads;
	if (base == NULL) {
		synclog_set_level(LOG_LEVEL_ERROR);
		if ((base = event_base_new()) == NULL)
			return -ENOMEM;
	}
	if (!registered) {
		atexit(cleanup_dirs);
		registered = true;
	}
	pair.name = "model";
	pair.destinations = dests;
	pair.n_destinations = F.ndst;
	pair.delete = true;
	pair.compare = COMPARE_MTIME;
	if ((r = setup_dirs(&pair, dests)) < 0)
		return r;
	if ((r = exclude_new(&pair.exclude)) < 0)
		return r;
	/* Half the sequences exclude every name "c" (a fifth of the names):
	 * moves to and from excluded names, excluded directories. */
	if (rnd(rng, 2) && (r = exclude_add(pair.exclude, "c")) < 0) {
		exclude_free(pair.exclude);
		return r;
	}
	model_ex = pair.exclude;
	/* The trees as the daemon finds them: the destinations anything. */
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
	opt.delay_ms = delays[rnd(rng, 4)];
	live_set_clock(model_clock_usec);
	if ((r = live_new(base, &the_pool, &pair, &opt, &the_live)) < 0) {
		exclude_free(pair.exclude);
		return r;
	}
	trace("start: %zu destinations, %d workers, delay %d ms, faults: "
	    "%u%% of path steps, %u%% of passes; %u per mille of deliveries "
	    "overflow, %u per mille of steps resync", F.ndst, F.threads,
	    opt.delay_ms, F.fail_pct, F.pass_fail_pct, F.overflow_pm,
	    F.resync_pm);
	live_start(the_live);

	/* The source changes while the planner works. */
	F.faults = true;
	while (steps < max_steps && !rng->exhausted) {
		uint32_t what = rnd(rng, 100);

		steps++;
		if (what < 45) {
			mutate();
		} else if (what < 58) {
			if (F.nev > 0)
				deliver(1 + rnd(rng, (uint32_t)F.nev),
				    rnd(rng, 1000) < F.overflow_pm);
		} else if (what < 72) {
			if (F.nqueued > 0)
				pool_run_one();
		} else if (what < 86) {
			if (F.nran > 0)
				pool_done_one();
		} else if (what == 98 && rnd(rng, 3) == 0) {
			F.paused = !F.paused;
			trace("%s", F.paused ? "pause" : "resume");
			if (F.paused)
				live_pause(the_live);
			else
				live_resume(the_live);
		} else if (what < 99 || rnd(rng, 10) >= F.resync_pm) {
			advance(rnd(rng, 10) == 0 ? rnd(rng, 5000) :
			    rnd(rng, 150));
		} else {
			trace("resync");
			live_resync(the_live, false);
		}
	}

	/* Quiet: everything is delivered and done, with no more faults;
	 * the planner must go idle and the destinations equal the source. */
	F.faults = false;
	if (F.paused) {
		F.paused = false;
		live_resume(the_live);
	}
	while (F.nev > 0)
		deliver(0, false);
	for (;; rounds++) {
		if (rounds == QUIESCE_ROUNDS) {
			snprintf(res->message, sizeof res->message,
			    "the planner never went idle (%d rounds): "
			    "livelock", QUIESCE_ROUNDS);
			goto fail;
		}
		if (F.nqueued > 0) {
			pool_run_one();
		} else if (F.nran > 0) {
			pool_done_one();
		} else if (live_timer_due(the_live) != UINT64_MAX) {
			advance(live_timer_due(the_live) > F.clock_ms ?
			    live_timer_due(the_live) - F.clock_ms : 0);
		} else if (live_busy(the_live) ||
		    live_queue_depth(the_live) != 0) {
			snprintf(res->message, sizeof res->message,
			    "the planner has work but no job out and no "
			    "timer armed: stalled");
			goto fail;
		} else {
			break;
		}
	}
	res->ok = true;
	for (size_t k = 0; k < F.ndst && res->ok; k++)
		res->ok = compare(k, res->message, sizeof res->message);
	if (!res->ok && F.trace) {
		dump("source", &F.src);
		for (size_t k = 0; k < F.ndst; k++)
			dump("destination", &F.dst[k]);
	}
	res->steps = steps;
	live_stop(the_live);
	live_free(the_live);
	the_live = NULL;
	exclude_free(pair.exclude);
	return 0;
fail:
	res->ok = false;
	res->steps = steps;
	/* Jobs still out belong to the pass or batches: let them finish
	 * so live_free finds nothing in flight. */
	live_stop(the_live);
	while (F.nqueued > 0)
		pool_run_one();
	while (F.nran > 0)
		pool_done_one();
	live_free(the_live);
	the_live = NULL;
	exclude_free(pair.exclude);
	return 0;
}
