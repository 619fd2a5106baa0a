/*
 * fullsync — see include/engine/fullsync.h.
 *
 * DESIGN
 * A pass is a walk of directory nodes. For each directory:
 *   scan job (worker)   read the source and destination directory
 *   plan (reactor)      planner_plan_dir: deletes, mkdirs, files, subdirs
 *   phase 1 (workers)   batches of deletes and mkdirs
 *   phase 2 (workers)   batches of copies, links, symlinks, metadata;
 *                       subdirectories are scanned in parallel with it
 *   finalize (worker)   the directory's own owner, mode and times, once
 *                       everything beneath it is done (post-order), since
 *                       every entry made inside a directory changes its
 *                       mtime
 * DirNode.pending counts what a directory still waits for: its batches,
 * its unfinished subdirectories and hard links waiting for their group.
 * When it reaches zero the directory is finalized and releases its parent.
 *
 * Bounded memory: at most max_jobs jobs are in the pool, ready batches go
 * out before any new directory is scanned, and scans are taken depth-first
 * (a stack), so what is held is the directories on the current paths and
 * one directory's worth of batches, not the tree.
 *
 * Hard links: the first name of a source inode that the walk meets is the
 * group's leader and is copied (or found up to date); every later name is
 * linked to the leader's destination name once the leader is settled, and
 * waits in the group until then.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/copy.h"
#include "engine/fullsync.h"
#include "engine/guard.h"
#include "engine/hash.h"
#include "engine/planner.h"
#include "engine/scan.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/synclog.h"
#include "util/beneath.h"
#include "util/path.h"

#define BATCH_MAX_OPS 64
#define BATCH_MAX_BYTES (4u << 20)
#define COPY_ATTEMPTS 5
#define HL_BUCKETS_MIN 256

typedef struct DirNode DirNode;
typedef struct Batch Batch;
typedef struct HardlinkGroup HardlinkGroup;

typedef enum {
	OP_DELETE,
	OP_MKDIR,
	OP_COPY,
	OP_HASH_COPY,
	OP_SYMLINK,
	OP_HARDLINK,
	OP_META,
} OpType;

typedef struct Op {
	OpType type;
	char *name;		/* entry name inside the batch's directory */
	char *target;		/* symlink target, or the hard-link leader's
				 * destination path */
	FileMeta meta;		/* the source entry's metadata */
	HardlinkGroup *group;	/* copies of a hard-link leader */
	int attempts;
	/* Results, written by the worker. */
	int err;		/* 0, -errno or COPY_SOURCE_CHANGED */
	bool unchanged;		/* OP_HASH_COPY found equal content */
	bool withheld;		/* OP_DELETE past the pass's budget */
	uint64_t bytes;
	uint64_t count;
	uint64_t dst_ino;
	uint64_t usec;
} Op;

struct DirNode {
	DirNode *parent;
	DirNode *next;		/* scan stack or held list */
	DirNode *all_prev;	/* every live node of the pass, so that an */
	DirNode *all_next;	/* interrupted pass can free them all */
	char *relpath;		/* "" for the root */
	FileMeta src_meta;
	FileMeta dst_meta;
	bool have_dst_meta;
	bool fresh;		/* created by this pass: nothing to scan */
	bool dirty;		/* entries were changed inside it */
	bool skip_finalize;	/* the source could not be read */
	size_t pending;
	size_t phase1_left;
	Batch *held_batches;	/* phase 2, released after phase 1 */
	DirNode *held_children;
};

struct Batch {
	Job job;
	FullSync *fs;
	DirNode *dir;		/* whose pending count this batch holds */
	char *dir_relpath;	/* the directory the ops' names live in */
	bool finalize;		/* sets dir's own metadata */
	int phase;
	bool needs_source;
	Batch *next;
	Op *ops;
	size_t n;
	size_t cap;
	uint64_t bytes;		/* source bytes, to cap a batch's size */
	int open_err;		/* a directory could not be opened */
};

typedef struct ScanJob {
	Job job;
	FullSync *fs;
	DirNode *dir;
	ScanList src;
	ScanList dst;
	int src_err;
	int dst_err;
	bool dst_mode_fixed;
} ScanJob;

typedef struct RootJob {
	Job job;
	FullSync *fs;
	int src_fd;
	int dst_fd;
	struct stat src_st;	/* of the pass's top directory */
	struct stat dst_st;
	int src_err;
	int dst_err;
	bool created;
	bool not_dir;		/* a subtree's source is no longer a dir */
	GuardFault fault;
	SourceIdentity seen;
	uint64_t budget;	/* deletes this pass may do */
} RootJob;

typedef struct Waiter {
	struct Waiter *next;
	DirNode *dir;
	char *name;
	FileMeta meta;
	bool have_dst;
	uint64_t dst_ino;
} Waiter;

typedef enum { HL_NONE, HL_PENDING, HL_DONE } HardlinkState;

struct HardlinkGroup {
	HardlinkGroup *hnext;
	uint64_t dev;
	uint64_t ino;
	HardlinkState state;
	char *leader;		/* destination relpath of the settled name */
	uint64_t dst_ino;
	Waiter *waiters;
};

struct FullSync {
	Pool *pool;
	const SyncPairConfig *pair;
	char *dest;
	char *relroot;		/* "" for the whole tree, else a subtree */
	FullSyncOptions opt;
	CopyOptions copy_opt;
	PlanOptions plan_opt;
	FullSyncDoneFn done;
	void *done_arg;

	int src_root;
	int dst_root;
	DirNode *root;
	bool root_done;
	bool finished;
	bool stopping;		/* fullsync_stop: hand out no more work */

	DirNode *scan_stack;
	DirNode *all_dirs;
	Batch *ready_head;
	Batch *ready_tail;
	size_t jobs_out;
	size_t max_jobs;
	size_t dirs_unscanned;	/* directories known but not yet read */

	HardlinkGroup **hl_buckets;
	size_t hl_nbuckets;
	size_t hl_count;

	SyncStats stats;
	/* The one piece of pass state workers write: deletes count down
	 * the max_delete budget as they run, since a directory's size is
	 * known only to the worker that counts it. */
	bool limit_deletes;
	atomic_uint_least64_t deletes_left;
};

static void pump(FullSync *fs);
static void dir_release(FullSync *fs, DirNode *dir);

/* The reason for a failed operation, as the log says it. */
static const char *
reason(int err)
{
	if (err == COPY_SOURCE_CHANGED)
		return "source kept changing while it was copied";
	return strerror(-err);
}

/* A copy stopped by copy_abandon (SIGTERM): not a failure. One that had
 * not copied a byte yet never really started: debug only. */
static void
log_abandoned(FullSync *fs, const char *relpath, uint64_t done,
    uint64_t size)
{
	char path[4096];

	synclog_escape(relpath, path, sizeof path);
	synclog_event(done > 0 ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG,
	    fs->pair->name, "copy", relpath, fs->dest, "stopping: abandoned "
	    "the copy of '%s' (%llu of %llu bytes); it is copied again at "
	    "the next start", path, (unsigned long long)done,
	    (unsigned long long)size);
}

static void
log_failure(FullSync *fs, const char *action, const char *relpath, int err)
{
	fs->stats.errors++;
	synclog_event(fs->opt.will_retry ? LOG_LEVEL_WARN : LOG_LEVEL_ERROR,
	    fs->pair->name, action, relpath, fs->dest, "failed: %s%s",
	    reason(err), fs->opt.will_retry ? " (will retry)" : "");
}

static void
settle(FullSync *fs, const FileMeta *meta)
{
	fs->stats.entries_done++;
	if (S_ISREG(meta->mode))
		fs->stats.bytes_done += (uint64_t)meta->size;
}

/* ---- hard-link groups ------------------------------------------------ */

static size_t
hl_hash(uint64_t dev, uint64_t ino, size_t nbuckets)
{
	uint64_t h = (ino ^ (dev << 32) ^ (dev >> 32)) * 0x9e3779b97f4a7c15ull;

	return (size_t)(h >> 17) & (nbuckets - 1);
}

static void
hl_grow(FullSync *fs)
{
	size_t n = fs->hl_nbuckets ? fs->hl_nbuckets * 2 : HL_BUCKETS_MIN;
	HardlinkGroup **b = xcalloc(n, sizeof *b);

	for (size_t i = 0; i < fs->hl_nbuckets; i++) {
		HardlinkGroup *g = fs->hl_buckets[i];
		while (g != NULL) {
			HardlinkGroup *next = g->hnext;
			size_t h = hl_hash(g->dev, g->ino, n);
			g->hnext = b[h];
			b[h] = g;
			g = next;
		}
	}
	free(fs->hl_buckets);
	fs->hl_buckets = b;
	fs->hl_nbuckets = n;
}

static HardlinkGroup *
hl_get(FullSync *fs, const FileMeta *meta)
{
	HardlinkGroup *g;
	size_t h;

	if (fs->hl_count >= fs->hl_nbuckets)
		hl_grow(fs);
	h = hl_hash(meta->dev, meta->ino, fs->hl_nbuckets);
	for (g = fs->hl_buckets[h]; g != NULL; g = g->hnext)
		if (g->dev == meta->dev && g->ino == meta->ino)
			return g;
	g = xcalloc(1, sizeof *g);
	g->dev = meta->dev;
	g->ino = meta->ino;
	g->hnext = fs->hl_buckets[h];
	fs->hl_buckets[h] = g;
	fs->hl_count++;
	return g;
}

static void
hl_free_all(FullSync *fs)
{
	for (size_t i = 0; i < fs->hl_nbuckets; i++) {
		HardlinkGroup *g = fs->hl_buckets[i];
		while (g != NULL) {
			HardlinkGroup *next = g->hnext;
			while (g->waiters != NULL) {
				Waiter *w = g->waiters;
				g->waiters = w->next;
				free(w->name);
				free(w);
			}
			free(g->leader);
			free(g);
			g = next;
		}
	}
	free(fs->hl_buckets);
	fs->hl_buckets = NULL;
	fs->hl_nbuckets = fs->hl_count = 0;
}

/* ---- batches --------------------------------------------------------- */

static Batch *
batch_new(FullSync *fs, DirNode *dir, const char *dir_relpath, int phase)
{
	Batch *b = xcalloc(1, sizeof *b);

	b->fs = fs;
	b->dir = dir;
	b->dir_relpath = xstrdup(dir_relpath);
	b->phase = phase;
	dir->pending++;
	return b;
}

static void
batch_free(Batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->ops[i].name);
		free(b->ops[i].target);
	}
	free(b->ops);
	free(b->dir_relpath);
	free(b);
}

static Op *
batch_add(Batch *b, OpType type, const char *name, const FileMeta *meta)
{
	Op *op;

	if (b->n == b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 8;
		Op *v = realloc(b->ops, cap * sizeof *v);
		if (v == NULL) {
			synclog_msg(LOG_LEVEL_ERROR, "out of memory");
			abort();
		}
		b->ops = v;
		b->cap = cap;
	}
	op = &b->ops[b->n++];
	memset(op, 0, sizeof *op);
	op->type = type;
	op->name = xstrdup(name);
	if (meta != NULL)
		op->meta = *meta;
	if (type == OP_COPY || type == OP_HASH_COPY) {
		b->needs_source = true;
		b->bytes += (uint64_t)op->meta.size;
	}
	return op;
}

static void
ready_push(FullSync *fs, Batch *b)
{
	b->next = NULL;
	if (fs->ready_tail != NULL)
		fs->ready_tail->next = b;
	else
		fs->ready_head = b;
	fs->ready_tail = b;
}

/*
 * Collects a directory's ops into batches of bounded size. Phase-2
 * batches are held by the directory until its phase 1 is done.
 */
typedef struct Builder {
	FullSync *fs;
	DirNode *dir;
	int phase;
	Batch *cur;
	Batch *out;		/* finished batches, in order */
	Batch **out_tail;
	size_t count;
} Builder;

static void
builder_init(Builder *bl, FullSync *fs, DirNode *dir, int phase)
{
	memset(bl, 0, sizeof *bl);
	bl->fs = fs;
	bl->dir = dir;
	bl->phase = phase;
	bl->out_tail = &bl->out;
}

static void
builder_close(Builder *bl)
{
	if (bl->cur == NULL)
		return;
	*bl->out_tail = bl->cur;
	bl->out_tail = &bl->cur->next;
	bl->cur = NULL;
	bl->count++;
}

static Op *
builder_add(Builder *bl, OpType type, const char *name, const FileMeta *meta)
{
	Op *op;

	if (bl->cur == NULL)
		bl->cur = batch_new(bl->fs, bl->dir, bl->dir->relpath,
		    bl->phase);
	op = batch_add(bl->cur, type, name, meta);
	if (bl->cur->n >= BATCH_MAX_OPS || bl->cur->bytes >= BATCH_MAX_BYTES)
		builder_close(bl);
	return op;
}

/* Closes the builder and returns its batches as a list. */
static Batch *
builder_finish(Builder *bl)
{
	builder_close(bl);
	*bl->out_tail = NULL;
	return bl->out;
}

/* ---- hard links ------------------------------------------------------ */

/*
 * Decides what the name `name` in dir, a member of a source hard-link
 * group, needs: become the leader (copy it, or take it as it is), wait for
 * the leader, or be linked to the leader's destination name.
 */
static void
hardlink_resolve(FullSync *fs, Builder *bl, const char *name,
    const FileMeta *src, const ScanEntry *dst, bool up_to_date)
{
	HardlinkGroup *g = hl_get(fs, src);
	bool have_dst = dst != NULL && dst->err == 0 && S_ISREG(dst->meta.mode);
	Op *op;

	switch (g->state) {
	case HL_NONE:
		g->leader = xjoin(bl->dir->relpath, name);
		if (up_to_date && have_dst) {
			g->state = HL_DONE;
			g->dst_ino = dst->meta.ino;
			if (!planner_same_attrs(src, &dst->meta,
			    fs->opt.preserve_owner))
				builder_add(bl, OP_META, name, src);
			else
				settle(fs, src);
			return;
		}
		g->state = HL_PENDING;
		op = builder_add(bl, fs->pair->compare == COMPARE_HASH &&
		    have_dst && dst->meta.size == src->size ? OP_HASH_COPY :
		    OP_COPY, name, src);
		op->group = g;
		return;
	case HL_PENDING: {
		Waiter *w = xcalloc(1, sizeof *w);
		w->dir = bl->dir;
		w->name = xstrdup(name);
		w->meta = *src;
		w->have_dst = have_dst;
		w->dst_ino = have_dst ? dst->meta.ino : 0;
		w->next = g->waiters;
		g->waiters = w;
		bl->dir->pending++;
		return;
	}
	case HL_DONE:
		if (have_dst && dst->meta.ino == g->dst_ino) {
			settle(fs, src);
			return;
		}
		op = builder_add(bl, OP_HARDLINK, name, src);
		op->target = xstrdup(g->leader);
		return;
	}
}

/* The leader's copy finished (or failed): serve the names waiting on it. */
static void
hardlink_settled(FullSync *fs, HardlinkGroup *g, bool ok, uint64_t dst_ino)
{
	Waiter *w = g->waiters;

	g->waiters = NULL;
	if (ok) {
		g->state = HL_DONE;
		g->dst_ino = dst_ino;
	} else {
		/* The next waiting name becomes the leader. */
		g->state = HL_NONE;
		free(g->leader);
		g->leader = NULL;
	}
	while (w != NULL) {
		Waiter *next = w->next;
		ScanEntry dst = { .meta = { .ino = w->dst_ino,
		    .mode = S_IFREG } };
		Builder bl;
		Batch *b;

		builder_init(&bl, fs, w->dir, 2);
		hardlink_resolve(fs, &bl, w->name, &w->meta,
		    w->have_dst ? &dst : NULL, false);
		for (b = builder_finish(&bl); b != NULL;) {
			Batch *bn = b->next;
			ready_push(fs, b);
			b = bn;
		}
		dir_release(fs, w->dir);
		free(w->name);
		free(w);
		w = next;
	}
}

/* ---- workers' side --------------------------------------------------- */

/* Runs one op inside a batch's open directories. */
static void
op_run(FullSync *fs, int src, int dst, Op *op)
{
	uint64_t t0 = clock_usec();
	struct stat st;

	switch (op->type) {
	case OP_DELETE:
		/* Crash leftovers are ours, not the user's: never budgeted. */
		if (fs->limit_deletes && !fsutil_is_temp_name(op->name)) {
			uint_least64_t left = atomic_load(&fs->deletes_left);
			uint64_t n = 0;

			op->err = guard_count_tree(dst, op->name, left, &n);
			if (op->err < 0)
				break;
			do {
				if (n > left) {
					op->withheld = true;
					break;
				}
			} while (!atomic_compare_exchange_weak(
			    &fs->deletes_left, &left, left - n));
			if (op->withheld)
				break;
		}
		op->err = copy_delete_tree(dst, op->name, &op->count);
		break;
	case OP_MKDIR:
		op->err = copy_mkdir(dst, op->name);
		break;
	case OP_HASH_COPY: {
		uint64_t hs, hd;
		int r = hash_file(src, op->name, &hs);
		if (r == 0 && hash_file(dst, op->name, &hd) == 0 && hs == hd) {
			op->unchanged = true;
			op->err = copy_set_meta(dst, op->name, &op->meta,
			    &fs->copy_opt);
			if (op->err == 0 && fstatat(dst, op->name, &st,
			    AT_SYMLINK_NOFOLLOW) == 0)
				op->dst_ino = st.st_ino;
			break;
		}
		if (r < 0) {
			op->err = r;
			break;
		}
	}
		/* FALLTHROUGH */
	case OP_COPY: {
		FileMeta out;
		op->err = copy_file_atomic(src, op->name, dst, op->name,
		    &fs->copy_opt, &op->bytes, op->group != NULL ? &out : NULL);
		if (op->err == 0 && op->group != NULL)
			op->dst_ino = out.ino;
		break;
	}
	case OP_SYMLINK:
		op->err = copy_symlink(dst, op->name, op->target, &op->meta,
		    &fs->copy_opt);
		break;
	case OP_HARDLINK: {
		char *slash = strrchr(op->target, '/');
		const char *base = slash != NULL ? slash + 1 : op->target;
		int ldir;

		if (slash != NULL)
			*slash = '\0';
		ldir = open_beneath(fs->dst_root,
		    slash != NULL ? op->target : "", O_RDONLY | O_DIRECTORY);
		if (slash != NULL)
			*slash = '/';
		if (ldir < 0) {
			op->err = ldir;
			break;
		}
		op->err = copy_hardlink(ldir, base, dst, op->name);
		close(ldir);
		break;
	}
	case OP_META:
		op->err = copy_set_meta(dst, op->name, &op->meta,
		    &fs->copy_opt);
		break;
	}
	op->usec = clock_usec() - t0;
}

static void
batch_run(Job *job)
{
	Batch *b = (Batch *)job;
	FullSync *fs = b->fs;
	int src = -1, dst;

	dst = open_beneath(fs->dst_root, b->dir_relpath, O_RDONLY | O_DIRECTORY);
	if (dst < 0) {
		b->open_err = dst;
		return;
	}
	if (b->needs_source) {
		src = open_beneath(fs->src_root, b->dir_relpath, O_RDONLY | O_DIRECTORY);
		if (src < 0) {
			b->open_err = src;
			close(dst);
			return;
		}
	}
	for (size_t i = 0; i < b->n; i++)
		op_run(fs, src, dst, &b->ops[i]);
	if (src >= 0)
		close(src);
	close(dst);
}

static void
scan_run(Job *job)
{
	ScanJob *sj = (ScanJob *)job;
	FullSync *fs = sj->fs;
	int fd;

	fd = open_beneath(fs->src_root, sj->dir->relpath, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		sj->src_err = fd;
		return;
	}
	sj->src_err = scan_dir(fd, &sj->src);
	close(fd);
	if (sj->src_err < 0 || sj->dir->fresh)
		return;
	fd = open_beneath(fs->dst_root, sj->dir->relpath, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		sj->dst_err = fd;
		return;
	}
	/* Unprivileged, we may need to make a read-only directory writable
	 * for the time of the pass; finalize restores the mode. */
	if (!fs->opt.preserve_owner && sj->dir->have_dst_meta &&
	    (sj->dir->dst_meta.mode & 0700) != 0700) {
		if (fchmod(fd, (sj->dir->dst_meta.mode & 07777) | 0700) == 0)
			sj->dst_mode_fixed = true;
	}
	sj->dst_err = scan_dir(fd, &sj->dst);
	close(fd);
}

/*
 * Opens the pass's top directory on both sides, beneath the roots and
 * without following symlinks: a subtree's source must still be a
 * directory, and its destination is made one (created, or what stood in
 * its place removed).
 */
static void
open_subtree(RootJob *rj)
{
	FullSync *fs = rj->fs;
	char parent[PATH_MAX];
	const char *base;
	int sp = -1, dp = -1;

	path_split(fs->relroot, parent, sizeof parent, &base);
	if ((sp = open_beneath(rj->src_fd, parent, O_RDONLY | O_DIRECTORY)) < 0) {
		rj->src_err = sp;
		goto out;
	}
	if (fstatat(sp, base, &rj->src_st, AT_SYMLINK_NOFOLLOW) < 0) {
		rj->src_err = -errno;
		goto out;
	}
	if (!S_ISDIR(rj->src_st.st_mode)) {
		rj->not_dir = true;
		goto out;
	}
	if ((dp = open_beneath(rj->dst_fd, parent, O_RDONLY | O_DIRECTORY)) < 0) {
		rj->dst_err = dp;
		goto out;
	}
	if (fstatat(dp, base, &rj->dst_st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISDIR(rj->dst_st.st_mode))
		goto out;
	if ((rj->dst_err = copy_delete_tree(dp, base, NULL)) < 0)
		goto out;
	if ((rj->dst_err = copy_mkdir(dp, base)) < 0)
		goto out;
	rj->created = true;
	if (fstatat(dp, base, &rj->dst_st, AT_SYMLINK_NOFOLLOW) < 0)
		rj->dst_err = -errno;
out:
	if (sp >= 0)
		close(sp);
	if (dp >= 0)
		close(dp);
}

static void
root_run(Job *job)
{
	RootJob *rj = (RootJob *)job;
	FullSync *fs = rj->fs;

	rj->src_fd = open(fs->pair->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rj->src_fd < 0 || fstat(rj->src_fd, &rj->src_st) < 0) {
		rj->src_err = -errno;
		/* The whole source is missing: a fault, not an error of one
		 * path (a subtree's own absence is handled in open_subtree). */
		rj->fault = GUARD_VANISHED;
		return;
	}
	rj->dst_fd = open(fs->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rj->dst_fd < 0 && errno == ENOENT) {
		/* Only the last component: a missing parent is more likely a
		 * mount that is not there than a tree to invent. */
		if (mkdir(fs->dest, 0700) == 0)
			rj->created = true;
		rj->dst_fd = open(fs->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (rj->dst_fd < 0 || fstat(rj->dst_fd, &rj->dst_st) < 0) {
		rj->dst_err = -errno;
		return;
	}
	/* Before anything is touched: is this still the source the pair
	 * mirrors? A subtree pass checks the root's identity only. */
	rj->fault = guard_check_source(rj->src_fd, rj->src_err, rj->dst_fd,
	    &fs->opt.expect, fs->relroot[0] == '\0' && !fs->opt.force,
	    &rj->seen);
	if (rj->fault != GUARD_OK)
		return;
	rj->budget = UINT64_MAX;
	if (fs->opt.hold_deletes) {
		rj->budget = 0;
	} else if (!fs->opt.force && fs->pair->delete) {
		uint64_t entries = fs->opt.dst_entries;

		if (fs->pair->max_delete.kind == MAX_DELETE_PERCENT &&
		    entries == 0)
			(void)guard_count_tree(rj->dst_fd, ".", UINT64_MAX - 1,
			    &entries);
		rj->budget = guard_delete_budget(&fs->pair->max_delete,
		    entries);
	}
	if (fs->relroot[0] != '\0') {
		rj->created = false;
		open_subtree(rj);
	}
}

/* ---- reactor's side -------------------------------------------------- */

static void
submit(FullSync *fs, Job *job, JobFn run, JobFn done)
{
	job->run = run;
	job->done = done;
	fs->jobs_out++;
	pool_submit(fs->pool, job);
}

static void batch_done(Job *job);
static void scan_done(Job *job);

static DirNode *
dir_new(FullSync *fs, DirNode *parent, char *relpath)
{
	DirNode *d = xcalloc(1, sizeof *d);

	d->parent = parent;
	d->relpath = relpath;
	d->all_next = fs->all_dirs;
	if (fs->all_dirs != NULL)
		fs->all_dirs->all_prev = d;
	fs->all_dirs = d;
	return d;
}

static void
dir_free(FullSync *fs, DirNode *d)
{
	if (d->all_prev != NULL)
		d->all_prev->all_next = d->all_next;
	else
		fs->all_dirs = d->all_next;
	if (d->all_next != NULL)
		d->all_next->all_prev = d->all_prev;
	for (Batch *b = d->held_batches; b != NULL;) {
		Batch *next = b->next;
		batch_free(b);
		b = next;
	}
	free(d->relpath);
	free(d);
}

static const char *
base_name(const char *relpath)
{
	const char *slash = strrchr(relpath, '/');

	return slash != NULL ? slash + 1 : relpath;
}

/* Everything below dir is done: set its own metadata, then tell parent. */
static void
dir_finalize(FullSync *fs, DirNode *dir)
{
	bool same = dir->have_dst_meta && !dir->dirty &&
	    planner_same_attrs(&dir->src_meta, &dir->dst_meta,
	    fs->opt.preserve_owner) &&
	    dir->src_meta.mtime_sec == dir->dst_meta.mtime_sec &&
	    dir->src_meta.mtime_nsec == dir->dst_meta.mtime_nsec;
	Batch *b;

	if (same || dir->skip_finalize) {
		DirNode *parent = dir->parent;
		if (parent == NULL)
			fs->root_done = true;
		dir_free(fs, dir);
		if (parent != NULL)
			dir_release(fs, parent);
		return;
	}
	/* The batch lives in the parent directory (the root: in itself). */
	if (dir->relpath[0] != '\0') {
		char parent_path[PATH_MAX];
		const char *base;

		path_split(dir->relpath, parent_path, sizeof parent_path, &base);
		b = batch_new(fs, dir, parent_path, 3);
		batch_add(b, OP_META, base, &dir->src_meta);
	} else {
		b = batch_new(fs, dir, "", 3);
		batch_add(b, OP_META, ".", &dir->src_meta);
	}
	b->finalize = true;
	dir->pending--;	/* batch_new counted it; finalize is not pending */
	ready_push(fs, b);
}

static void
dir_release(FullSync *fs, DirNode *dir)
{
	if (--dir->pending == 0)
		dir_finalize(fs, dir);
}

/* Phase 1 is over: let phase 2 and the subdirectories go. */
static void
dir_release_held(FullSync *fs, DirNode *dir)
{
	Batch *b = dir->held_batches;
	DirNode *c = dir->held_children;

	dir->held_batches = NULL;
	dir->held_children = NULL;
	while (b != NULL) {
		Batch *next = b->next;
		ready_push(fs, b);
		b = next;
	}
	while (c != NULL) {
		DirNode *next = c->next;
		if (c->skip_finalize) {
			/* Its mkdir failed: nothing to descend into. */
			fs->dirs_unscanned--;
			dir_free(fs, c);
			dir_release(fs, dir);
		} else {
			c->next = fs->scan_stack;
			fs->scan_stack = c;
		}
		c = next;
	}
}

static void
log_op(FullSync *fs, const char *dir_relpath, const Op *op)
{
	char *path = xjoin(dir_relpath, op->name);
	char size[32];

	switch (op->type) {
	case OP_DELETE:
		synclog_event(LOG_LEVEL_INFO, fs->pair->name, "delete", path,
		    fs->dest, "%llu %s", (unsigned long long)op->count,
		    op->count == 1 ? "entry" : "entries");
		break;
	case OP_MKDIR:
		synclog_event(LOG_LEVEL_INFO, fs->pair->name, "mkdir", path,
		    fs->dest, "created");
		break;
	case OP_COPY:
	case OP_HASH_COPY:
		if (op->unchanged) {
			synclog_event(LOG_LEVEL_DEBUG, fs->pair->name, "same",
			    path, fs->dest, "content equal");
			break;
		}
		synclog_format_size(op->bytes, size, sizeof size);
		synclog_event(LOG_LEVEL_INFO, fs->pair->name, "copy", path,
		    fs->dest, "%s %.1f ms", size, (double)op->usec / 1000);
		break;
	case OP_SYMLINK: {
		char target[1024];
		synclog_escape(op->target, target, sizeof target);
		synclog_event(LOG_LEVEL_INFO, fs->pair->name, "symlink", path,
		    fs->dest, "target '%s'", target);
		break;
	}
	case OP_HARDLINK: {
		char target[1024];
		synclog_escape(op->target, target, sizeof target);
		synclog_event(LOG_LEVEL_INFO, fs->pair->name, "link", path,
		    fs->dest, "to '%s'", target);
		break;
	}
	case OP_META:
		synclog_event(LOG_LEVEL_DEBUG, fs->pair->name, "attrs", path,
		    fs->dest, "mode %04o", (unsigned)(op->meta.mode & 07777));
		break;
	}
	free(path);
}

static const char *
op_action(OpType t)
{
	static const char *const names[] = { "delete", "mkdir", "copy",
	    "copy", "symlink", "link", "attrs" };
	return names[t];
}

/* A source file changed under the copy: try it again, a few times. */
static bool
retry_changed(FullSync *fs, Batch *b, Op *op)
{
	Batch *nb;
	Op *nop;

	if (op->err != COPY_SOURCE_CHANGED || op->attempts + 1 >= COPY_ATTEMPTS)
		return false;
	nb = batch_new(fs, b->dir, b->dir_relpath, b->phase);
	nop = batch_add(nb, op->type, op->name, &op->meta);
	nop->attempts = op->attempts + 1;
	nop->group = op->group;
	ready_push(fs, nb);
	return true;
}

/* One op's outcome: log, count, and the bookkeeping it unblocks. */
static void
op_done(FullSync *fs, Batch *b, Op *op, int open_err)
{
	char *path;

	if (open_err == 0 && retry_changed(fs, b, op))
		return;
	if (open_err != 0)
		op->err = open_err;
	if (op->withheld && open_err == 0) {
		/* Past max_delete (or the pair is held): the caller logs one
		 * line for the pass; the name stays in the destination. */
		path = xjoin(b->dir_relpath, op->name);
		synclog_event(LOG_LEVEL_DEBUG, fs->pair->name, "delete", path,
		    fs->dest, "withheld: past max_delete");
		free(path);
		fs->stats.withheld++;
		return;
	}
	if (op->err == -ENOENT && (op->type == OP_COPY ||
	    op->type == OP_HASH_COPY) && open_err == 0) {
		/* Gone from the source since the scan: nothing to mirror. */
		path = xjoin(b->dir_relpath, op->name);
		synclog_event(LOG_LEVEL_DEBUG, fs->pair->name, "copy", path,
		    fs->dest, "vanished from the source");
		free(path);
		op->err = -ENOENT;
	} else if (op->err == -ECANCELED && (op->type == OP_COPY ||
	    op->type == OP_HASH_COPY) && open_err == 0) {
		/* Stopping: no error, no retry; the next start copies it. */
		path = xjoin(b->dir_relpath, op->name);
		log_abandoned(fs, path, op->bytes, (uint64_t)op->meta.size);
		free(path);
	} else if (op->err != 0) {
		path = b->finalize ? xstrdup(b->dir->relpath) :
		    xjoin(b->dir_relpath, op->name);
		log_failure(fs, op_action(op->type), path, op->err);
		free(path);
	} else {
		log_op(fs, b->dir_relpath, op);
	}

	if (op->err == 0) {
		switch (op->type) {
		case OP_DELETE:
			fs->stats.deleted += op->count;
			break;
		case OP_MKDIR:
			fs->stats.dirs_created++;
			break;
		case OP_COPY:
		case OP_HASH_COPY:
			if (!op->unchanged) {
				fs->stats.files_copied++;
				fs->stats.bytes_copied += op->bytes;
			}
			break;
		case OP_SYMLINK:
			fs->stats.symlinks++;
			break;
		case OP_HARDLINK:
			fs->stats.hardlinks++;
			break;
		case OP_META:
			fs->stats.meta_fixed++;
			break;
		}
	}
	if (op->type != OP_DELETE && !b->finalize && op->err != -ECANCELED)
		settle(fs, &op->meta);
	if (op->type != OP_META && !b->finalize &&
	    !(op->type == OP_HASH_COPY && op->unchanged))
		b->dir->dirty = true;
	if (op->group != NULL)
		hardlink_settled(fs, op->group, op->err == 0, op->dst_ino);
	if (op->type == OP_MKDIR && op->err != 0) {
		/* Do not descend into a directory that is not there. */
		for (DirNode *c = b->dir->held_children; c != NULL; c = c->next)
			if (strcmp(base_name(c->relpath), op->name) == 0)
				c->skip_finalize = true;
	}
}

static void
batch_done(Job *job)
{
	Batch *b = (Batch *)job;
	FullSync *fs = b->fs;
	DirNode *dir = b->dir;

	fs->jobs_out--;
	if (job->cancelled) {
		batch_free(b);
		return;
	}
	for (size_t i = 0; i < b->n; i++)
		op_done(fs, b, &b->ops[i], b->open_err);

	if (b->finalize) {
		DirNode *parent = dir->parent;
		if (parent == NULL)
			fs->root_done = true;
		dir_free(fs, dir);
		if (parent != NULL)
			dir_release(fs, parent);
	} else {
		if (b->phase == 1 && --dir->phase1_left == 0)
			dir_release_held(fs, dir);
		dir_release(fs, dir);
	}
	batch_free(b);
	pump(fs);
}

/* Turns a directory's plan into batches and subdirectory nodes. */
static void
dir_plan(FullSync *fs, DirNode *dir, const Plan *plan)
{
	Builder p1, p2;
	DirNode *children = NULL, **ctail = &children;
	Batch *phase1;

	builder_init(&p1, fs, dir, 1);
	builder_init(&p2, fs, dir, 2);
	/* Entries with nothing to do are settled now; the others when their
	 * op is done (hard links: when their group says so). */
	fs->stats.entries_seen += plan->n_src;
	fs->stats.bytes_seen += plan->src_bytes;
	fs->stats.entries_done += plan->n_src - plan->n_src_acted;
	fs->stats.bytes_done += plan->src_bytes - plan->src_bytes_acted;
	for (size_t i = 0; i < plan->n; i++) {
		const PlanAction *a = &plan->actions[i];
		const ScanEntry *s = a->src;
		Op *op;
		DirNode *c;

		switch (a->type) {
		case PLAN_DELETE:
			builder_add(&p1, OP_DELETE, a->dst->name, NULL);
			break;
		case PLAN_MKDIR:
			builder_add(&p1, OP_MKDIR, s->name, &s->meta);
			break;
		case PLAN_COPY:
			builder_add(&p2, OP_COPY, s->name, &s->meta);
			break;
		case PLAN_HASH_COPY:
			builder_add(&p2, OP_HASH_COPY, s->name, &s->meta);
			break;
		case PLAN_HARDLINK:
			hardlink_resolve(fs, &p2, s->name, &s->meta, a->dst,
			    a->up_to_date);
			break;
		case PLAN_SYMLINK:
			op = builder_add(&p2, OP_SYMLINK, s->name, &s->meta);
			op->target = xstrdup(s->link_target);
			break;
		case PLAN_META:
			builder_add(&p2, OP_META, s->name, &s->meta);
			break;
		case PLAN_RECURSE:
			c = dir_new(fs, dir, xjoin(dir->relpath, s->name));
			c->src_meta = s->meta;
			c->fresh = a->fresh_dir;
			if (a->dst != NULL) {
				c->dst_meta = a->dst->meta;
				c->have_dst_meta = true;
			}
			*ctail = c;
			ctail = &c->next;
			dir->pending++;
			fs->dirs_unscanned++;
			break;
		case PLAN_SKIP_SPECIAL: {
			char *path = xjoin(dir->relpath, s->name);
			fs->stats.skipped++;
			synclog_event(LOG_LEVEL_WARN, fs->pair->name, "skip",
			    path, fs->dest, "not a regular file, directory or "
			    "symlink (fifo, socket or device): not mirrored");
			free(path);
			break;
		}
		case PLAN_SOURCE_ERROR: {
			char *path = xjoin(dir->relpath, s->name);
			log_failure(fs, "stat", path, s->err);
			free(path);
			break;
		}
		}
	}
	*ctail = NULL;
	dir->held_batches = builder_finish(&p2);
	dir->held_children = children;
	phase1 = builder_finish(&p1);
	dir->phase1_left = p1.count;
	if (phase1 == NULL)
		dir_release_held(fs, dir);
	while (phase1 != NULL) {
		Batch *next = phase1->next;
		ready_push(fs, phase1);
		phase1 = next;
	}
}

static void
scan_done(Job *job)
{
	ScanJob *sj = (ScanJob *)job;
	FullSync *fs = sj->fs;
	DirNode *dir = sj->dir;
	Plan plan;
	int r;

	fs->jobs_out--;
	fs->dirs_unscanned--;
	if (job->cancelled)
		goto out;
	if (sj->src_err < 0) {
		if (sj->src_err == -ENOENT && dir->parent != NULL) {
			synclog_event(LOG_LEVEL_DEBUG, fs->pair->name, "scan",
			    dir->relpath, fs->dest, "vanished from the source");
		} else {
			log_failure(fs, "scan", dir->relpath, sj->src_err);
		}
		/* An unreadable source is no reason to delete anything. */
		dir->skip_finalize = true;
		dir_release(fs, dir);
		goto out;
	}
	if (sj->dst_err < 0) {
		log_failure(fs, "scan", dir->relpath, sj->dst_err);
		dir->skip_finalize = true;
		dir_release(fs, dir);
		goto out;
	}
	if (sj->dst_mode_fixed)
		dir->dirty = true;
	r = planner_plan_dir(dir->relpath, &sj->src, dir->fresh ? NULL :
	    &sj->dst, &fs->plan_opt, &plan);
	if (r < 0) {
		log_failure(fs, "plan", dir->relpath, r);
		dir->skip_finalize = true;
		dir_release(fs, dir);
		goto out;
	}
	dir_plan(fs, dir, &plan);
	planner_plan_free(&plan);
	dir_release(fs, dir);	/* the hold taken when the scan started */
out:
	scan_list_free(&sj->src);
	scan_list_free(&sj->dst);
	free(sj);
	if (fs->dirs_unscanned == 0)
		fs->stats.scan_done = true;
	pump(fs);
}

/* Hands ready work to the pool, batches before new scans. */
static void
pump(FullSync *fs)
{
	if (fs->stopping)
		return;
	while (fs->jobs_out < fs->max_jobs) {
		if (fs->ready_head != NULL) {
			Batch *b = fs->ready_head;
			fs->ready_head = b->next;
			if (fs->ready_head == NULL)
				fs->ready_tail = NULL;
			submit(fs, &b->job, batch_run, batch_done);
		} else if (fs->scan_stack != NULL) {
			DirNode *d = fs->scan_stack;
			ScanJob *sj = xcalloc(1, sizeof *sj);

			fs->scan_stack = d->next;
			d->next = NULL;
			d->pending++;	/* released when the scan is planned */
			sj->fs = fs;
			sj->dir = d;
			submit(fs, &sj->job, scan_run, scan_done);
		} else {
			break;
		}
	}
	if (fs->root_done && fs->jobs_out == 0 && !fs->finished) {
		fs->finished = true;
		fs->stats.scan_done = true;
		fs->done(fs, fs->done_arg);
	}
}

/* The pass ends before it began: nothing to walk. */
static void
root_abandon(FullSync *fs, RootJob *rj)
{
	if (rj->src_fd >= 0)
		close(rj->src_fd);
	if (rj->dst_fd >= 0)
		close(rj->dst_fd);
	fs->root_done = true;
}

static void
root_done(Job *job)
{
	RootJob *rj = (RootJob *)job;
	FullSync *fs = rj->fs;
	DirNode *root;

	fs->jobs_out--;
	if (!job->cancelled && (rj->not_dir || (rj->src_err == -ENOENT &&
	    fs->relroot[0] != '\0'))) {
		/* The subtree is gone or no longer a directory: whoever asked
		 * for it learns that from the source itself. */
		fs->src_root = rj->src_fd;
		fs->dst_root = rj->dst_fd;
		fs->root_done = true;
		goto out;
	}
	if (!job->cancelled && rj->fault != GUARD_OK) {
		/* Nothing is done: the caller says what happens next (the
		 * live daemon holds deletes and checks again). */
		fs->stats.fault = rj->fault;
		fs->stats.errors++;
		if (!fs->opt.will_retry)
			synclog_event(LOG_LEVEL_ERROR, fs->pair->name, "guard",
			    "", fs->dest, "source '%s' %s%s%s: nothing done for "
			    "this destination, nothing deleted",
			    fs->pair->source, guard_fault_text(rj->fault),
			    rj->src_err < 0 ? ": " : "",
			    rj->src_err < 0 ? strerror(-rj->src_err) : "");
		root_abandon(fs, rj);
		goto out;
	}
	if (job->cancelled || rj->src_err < 0 || rj->dst_err < 0) {
		if (!job->cancelled) {
			bool src = rj->src_err < 0;
			fs->stats.errors++;
			synclog_event(fs->opt.will_retry ? LOG_LEVEL_WARN :
			    LOG_LEVEL_ERROR, fs->pair->name, "open", "",
			    fs->dest, "failed: %s '%s': %s%s",
			    src ? "source" : "destination",
			    src ? fs->pair->source : fs->dest,
			    strerror(src ? -rj->src_err : -rj->dst_err),
			    fs->opt.will_retry ? " (will retry)" :
			    ", nothing done for this destination");
		}
		root_abandon(fs, rj);
		goto out;
	}
	if (rj->src_st.st_dev == rj->dst_st.st_dev &&
	    rj->src_st.st_ino == rj->dst_st.st_ino) {
		log_failure(fs, "open", "", -ELOOP);
		close(rj->src_fd);
		close(rj->dst_fd);
		fs->root_done = true;
		goto out;
	}
	if (rj->created)
		synclog_event(LOG_LEVEL_INFO, fs->pair->name, "mkdir",
		    fs->relroot, fs->dest, "%s", fs->relroot[0] == '\0' ?
		    "created the destination root" : "created");
	fs->src_root = rj->src_fd;
	fs->dst_root = rj->dst_fd;
	fs->stats.source = rj->seen;
	fs->stats.delete_budget = rj->budget;
	fs->limit_deletes = rj->budget != UINT64_MAX;
	atomic_store(&fs->deletes_left, rj->budget);
	root = dir_new(fs, NULL, xstrdup(fs->relroot));
	fsutil_meta_from_stat(&rj->src_st, &root->src_meta);
	fsutil_meta_from_stat(&rj->dst_st, &root->dst_meta);
	root->have_dst_meta = true;
	root->fresh = rj->created;
	root->dirty = rj->created;
	fs->root = root;
	root->next = NULL;
	fs->scan_stack = root;
	fs->dirs_unscanned = 1;
out:
	free(rj);
	pump(fs);
}

int
fullsync_new(Pool *pool, const SyncPairConfig *pair, const char *dest,
    const char *relroot, const FullSyncOptions *opt, FullSyncDoneFn done,
    void *arg, FullSync **ret)
{
	FullSync *fs = calloc(1, sizeof *fs);

	if (fs == NULL)
		return -ENOMEM;
	fs->dest = strdup(dest);
	fs->relroot = strdup(relroot != NULL ? relroot : "");
	if (fs->dest == NULL || fs->relroot == NULL) {
		free(fs->dest);
		free(fs->relroot);
		free(fs);
		return -ENOMEM;
	}
	fs->pool = pool;
	fs->pair = pair;
	fs->opt = *opt;
	fs->copy_opt.preserve_owner = opt->preserve_owner;
	fs->copy_opt.umask_zero = opt->umask_zero;
	fs->plan_opt.exclude = pair->exclude;
	fs->plan_opt.delete = pair->delete;
	fs->plan_opt.compare = pair->compare;
	fs->plan_opt.preserve_owner = opt->preserve_owner;
	fs->done = done;
	fs->done_arg = arg;
	fs->src_root = fs->dst_root = -1;
	fs->stats.delete_budget = UINT64_MAX;
	fs->max_jobs = (size_t)pool_threads(pool) * 4 + 2;
	*ret = fs;
	return 0;
}

void
fullsync_start(FullSync *fs)
{
	RootJob *rj = xcalloc(1, sizeof *rj);

	rj->fs = fs;
	rj->src_fd = rj->dst_fd = -1;
	submit(fs, &rj->job, root_run, root_done);
}

void
fullsync_stop(FullSync *fs)
{
	fs->stopping = true;
}

size_t
fullsync_jobs_out(const FullSync *fs)
{
	return fs->jobs_out;
}

const SyncStats *
fullsync_stats(const FullSync *fs)
{
	return &fs->stats;
}

const char *
fullsync_pair_name(const FullSync *fs)
{
	return fs->pair->name;
}

const char *
fullsync_dest(const FullSync *fs)
{
	return fs->dest;
}

void
fullsync_free(FullSync *fs)
{
	if (fs == NULL)
		return;
	/* What an interrupted pass still holds (a finished one holds
	 * nothing): its directories and the batches not handed out. */
	while (fs->all_dirs != NULL)
		dir_free(fs, fs->all_dirs);
	while (fs->ready_head != NULL) {
		Batch *next = fs->ready_head->next;
		batch_free(fs->ready_head);
		fs->ready_head = next;
	}
	hl_free_all(fs);
	if (fs->src_root >= 0)
		close(fs->src_root);
	if (fs->dst_root >= 0)
		close(fs->dst_root);
	free(fs->dest);
	free(fs->relroot);
	free(fs);
}
