/*
 * fullsync-worker — the bodies of a pass's jobs (see fullsync-int.h).
 *
 * Worker threads only. A body reads its own job struct and the pass's
 * PassRoots it holds a reference to, and writes only its job (and the
 * max_delete budget in PassRoots, atomically); nothing here looks at the
 * FullSync, its directory nodes or its tables.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/hash.h"
#include "fullsync-int.h"
#include "util/beneath.h"
#include "util/clock.h"
#include "util/path.h"

/* A delete within the pass's max_delete budget (taken from it), else
 * withheld. Crash leftovers are ours, not the user's: never budgeted. */
static void
op_delete(PassRoots *roots, int dst, Op *op)
{
	if (roots->limit_deletes && !fsutil_is_temp_name(op->name)) {
		uint_least64_t left = atomic_load(&roots->deletes_left);
		uint64_t n = 0;

		op->err = guard_count_tree(dst, op->name, left, &n);
		if (op->err < 0)
			return;
		do {
			if (n > left) {
				op->withheld = true;
				return;
			}
		} while (!atomic_compare_exchange_weak(&roots->deletes_left,
		    &left, left - n));
	}
	op->err = copy_delete_tree(dst, op->name, &op->count);
}

/* Links op->name to the group leader's destination path op->target. */
static void
op_hardlink(PassRoots *roots, int dst, Op *op)
{
	char parent[PATH_MAX];
	const char *base;
	int ldir;

	path_split(op->target, parent, sizeof parent, &base);
	ldir = open_beneath(roots->dst, parent, O_RDONLY | O_DIRECTORY);
	if (ldir < 0) {
		op->err = ldir;
		return;
	}
	op->err = copy_hardlink(ldir, base, dst, op->name);
	close(ldir);
}

/* Hashes both sides, then does what the rules say of the verdict. */
static void
op_hash(PassRoots *roots, int src, int dst, Op *op)
{
	ScanEntry s = { .meta = op->meta }, d = { .meta = op->dst_meta };
	bool same;

	if ((op->err = hash_same(src, dst, op->name, &same)) < 0)
		return;
	op->done = rules_after_hash(&s, &d, &roots->rules, same).action;
	if (op->done == RULE_ATTRS)
		op->err = copy_set_meta(dst, op->name, &op->meta, &roots->copy);
	if (op->done != RULE_COPY)
		op->dst_ino = op->dst_meta.ino;
}

/* Runs one op inside a batch's open directories. */
static void
op_run(PassRoots *roots, int src, int dst, Op *op)
{
	const CopyOptions *copy = &roots->copy;
	uint64_t t0 = clock_usec();
	FileMeta out;

	switch (op->type) {
	case RULE_DELETE:
		op_delete(roots, dst, op);
		break;
	case RULE_MKDIR:
		op->err = copy_mkdir(dst, op->name);
		break;
	case RULE_HASH:
		op_hash(roots, src, dst, op);
		if (op->err < 0 || op->done != RULE_COPY)
			break;
		/* FALLTHROUGH */
	case RULE_COPY:
		op->err = copy_file_atomic(src, op->name, dst, op->name, copy,
		    &op->bytes, op->group != NULL ? &out : NULL);
		if (op->err == 0 && op->group != NULL)
			op->dst_ino = out.ino;
		break;
	case RULE_SYMLINK:
		op->err = copy_symlink(dst, op->name, op->target, &op->meta,
		    copy);
		break;
	case RULE_HARDLINK:
		op_hardlink(roots, dst, op);
		break;
	case RULE_ATTRS:
		op->err = copy_set_meta(dst, op->name, &op->meta, copy);
		break;
	default:
		op->err = -EINVAL;	/* no such op */
		break;
	}
	op->usec = clock_usec() - t0;
}

void
fullsync_batch_run(Job *job)
{
	Batch *b = (Batch *)job;
	int src = -1, dst;

	dst = open_beneath(b->roots->dst, b->dir_relpath, O_RDONLY |
	    O_DIRECTORY);
	if (dst < 0) {
		b->open_err = dst;
		return;
	}
	if (b->needs_source) {
		src = open_beneath(b->roots->src, b->dir_relpath, O_RDONLY |
		    O_DIRECTORY);
		if (src < 0) {
			b->open_err = src;
			close(dst);
			return;
		}
	}
	for (size_t i = 0; i < b->n; i++)
		op_run(b->roots, src, dst, &b->ops[i]);
	if (src >= 0)
		close(src);
	close(dst);
}

void
fullsync_scan_run(Job *job)
{
	ScanJob *sj = (ScanJob *)job;
	int fd;

	fd = open_beneath(sj->roots->src, sj->relpath, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		sj->src_err = fd;
		return;
	}
	sj->src_err = scan_dir(fd, &sj->src);
	close(fd);
	if (sj->src_err < 0 || sj->fresh)
		return;
	fd = open_beneath(sj->roots->dst, sj->relpath, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		sj->dst_err = fd;
		return;
	}
	/* Unprivileged, we may need to make a read-only directory writable
	 * for the time of the pass; finalize restores the mode. */
	if (sj->fix_mode >= 0 && fchmod(fd, (mode_t)sj->fix_mode | 0700) == 0)
		sj->dst_mode_fixed = true;
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
	char parent[PATH_MAX];
	const char *base;
	int sp = -1, dp = -1;

	path_split(rj->relroot, parent, sizeof parent, &base);
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
	if (fstatat(dp, base, &rj->dst_st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(rj->dst_st.st_mode))
			goto out;
		rj->replaced = true;
	}
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

/* What max_delete lets this pass delete. */
static uint64_t
delete_budget(RootJob *rj)
{
	uint64_t entries = rj->opt.dst_entries;

	if (rj->opt.hold_deletes)
		return 0;
	if (rj->opt.force || !rj->delete)
		return UINT64_MAX;
	if (rj->max_delete.kind == MAX_DELETE_PERCENT && entries == 0)
		(void)guard_count_tree(rj->dst_fd, ".", UINT64_MAX - 1,
		    &entries);
	return guard_delete_budget(&rj->max_delete, entries);
}

void
fullsync_root_run(Job *job)
{
	RootJob *rj = (RootJob *)job;

	rj->src_fd = open(rj->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rj->src_fd < 0 || fstat(rj->src_fd, &rj->src_st) < 0) {
		rj->src_err = -errno;
		/* The whole source is missing: a fault, not an error of one
		 * path (a subtree's own absence is handled in open_subtree). */
		rj->fault = GUARD_VANISHED;
		return;
	}
	rj->dst_fd = open(rj->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rj->dst_fd < 0 && errno == ENOENT) {
		/* Only the last component: a missing parent is more likely a
		 * mount that is not there than a tree to invent. */
		if (mkdir(rj->dest, 0700) == 0)
			rj->created = true;
		rj->dst_fd = open(rj->dest, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	if (rj->dst_fd < 0 || fstat(rj->dst_fd, &rj->dst_st) < 0) {
		rj->dst_err = -errno;
		return;
	}
	/* Before anything is touched: is this still the source the pair
	 * mirrors? A subtree pass checks the root's identity only. */
	rj->fault = guard_check_source(rj->src_fd, rj->src_err, rj->dst_fd,
	    &rj->opt.expect, rj->relroot[0] == '\0' && !rj->opt.force,
	    &rj->seen);
	if (rj->fault != GUARD_OK)
		return;
	rj->budget = delete_budget(rj);
	if (rj->relroot[0] != '\0') {
		rj->created = false;
		open_subtree(rj);
	}
}
