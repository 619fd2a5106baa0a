/*
 * pathsync — see include/engine/pathsync.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/fsutil.h"
#include "engine/hash.h"
#include "engine/pathsync.h"
#include "engine/planner.h"
#include "util/beneath.h"
#include "util/path.h"

/* An ancestor that vanished or stopped being a directory: no such path. */
static bool
path_gone(int err)
{
	return err == -ENOENT || err == -ENOTDIR || err == -ELOOP;
}

static void
sync_root_meta(int src_root, int dst_root, const PathSyncOptions *opt,
    PathSyncResult *res)
{
	struct stat ss, ds;
	FileMeta sm, dm;

	if (fstat(src_root, &ss) < 0 || fstat(dst_root, &ds) < 0) {
		res->err = -errno;
		return;
	}
	fsutil_meta_from_stat(&ss, &sm);
	fsutil_meta_from_stat(&ds, &dm);
	if (planner_same_attrs(&sm, &dm, opt->copy.preserve_owner) &&
	    planner_same_content(&sm, &dm))
		return;
	res->action = "attrs";
	res->err = copy_set_meta(dst_root, ".", &sm, &opt->copy);
}

/* A directory where a file or symlink belongs goes first. */
static bool
clear_dir(int dp, const char *base, PathSyncResult *res)
{
	res->action = "delete";
	res->err = copy_delete_tree(dp, base, &res->count);
	return res->err == 0;
}

/* Regular file: copy unless it already matches. */
static void
sync_file(int sp, int dp, const char *base, const FileMeta *sm,
    const struct stat *ds, bool have_dst, const PathSyncOptions *opt,
    PathSyncResult *res)
{
	FileMeta dm;

	if (sm->nlink > 1) {
		res->outcome = PATHSYNC_HARDLINK;
		return;
	}
	if (have_dst && S_ISREG(ds->st_mode)) {
		bool same;

		fsutil_meta_from_stat(ds, &dm);
		same = dm.nlink <= 1 && planner_same_content(sm, &dm);
		if (same && opt->compare == COMPARE_HASH) {
			uint64_t hs, hd;
			same = hash_file(sp, base, &hs) == 0 &&
			    hash_file(dp, base, &hd) == 0 && hs == hd;
		}
		if (same) {
			if (planner_same_attrs(sm, &dm,
			    opt->copy.preserve_owner))
				return;
			res->action = "attrs";
			res->err = copy_set_meta(dp, base, sm, &opt->copy);
			return;
		}
	}
	if (have_dst && S_ISDIR(ds->st_mode) && !clear_dir(dp, base, res))
		return;
	res->action = "copy";
	res->entries_changed = true;
	res->size = (uint64_t)sm->size;
	res->err = copy_file_atomic(sp, base, dp, base, &opt->copy,
	    &res->bytes, NULL);
}

static void
sync_symlink(int sp, int dp, const char *base, const FileMeta *sm,
    const struct stat *ds, bool have_dst, const PathSyncOptions *opt,
    PathSyncResult *res)
{
	char target[PATH_MAX + 1], old[PATH_MAX + 1];
	ssize_t n = readlinkat(sp, base, target, sizeof target - 1);

	if (n < 0) {
		res->err = path_gone(-errno) ? 0 : -errno;
		return;
	}
	target[n] = '\0';
	if (have_dst && S_ISLNK(ds->st_mode)) {
		ssize_t m = readlinkat(dp, base, old, sizeof old - 1);
		if (m == n && memcmp(old, target, (size_t)n) == 0) {
			if (!opt->copy.preserve_owner ||
			    (ds->st_uid == sm->uid && ds->st_gid == sm->gid))
				return;
			res->action = "attrs";
			res->err = copy_set_meta(dp, base, sm, &opt->copy);
			return;
		}
	}
	if (have_dst && S_ISDIR(ds->st_mode) && !clear_dir(dp, base, res))
		return;
	res->action = "symlink";
	res->entries_changed = true;
	res->err = copy_symlink(dp, base, target, sm, &opt->copy);
}

void
pathsync_dir_open(int src_root, int dst_root, const char *parent,
    PathSyncDir *pd)
{
	pd->src_root = src_root;
	pd->dst_root = dst_root;
	pd->sp = open_beneath(src_root, parent, O_RDONLY | O_DIRECTORY);
	pd->dp = open_beneath(dst_root, parent, O_RDONLY | O_DIRECTORY);
}

void
pathsync_dir_close(PathSyncDir *pd)
{
	if (pd->sp >= 0)
		close(pd->sp);
	if (pd->dp >= 0)
		close(pd->dp);
	pd->sp = pd->dp = -1;
}

void
pathsync_dir_run(const PathSyncDir *pd, const char *base,
    const PathSyncOptions *opt, PathSyncResult *res)
{
	struct stat ss, ds;
	bool have_src = false, have_dst = false;
	int sp = pd->sp, dp = pd->dp;
	FileMeta sm;

	memset(res, 0, sizeof *res);
	res->outcome = PATHSYNC_DONE;
	if (sp < 0 && !path_gone(sp)) {
		res->err = sp;
		return;
	}
	if (sp >= 0) {
		if (fstatat(sp, base, &ss, AT_SYMLINK_NOFOLLOW) == 0)
			have_src = true;
		else if (errno != ENOENT) {
			res->err = -errno;
			return;
		}
	}
	if (dp < 0) {
		if (path_gone(dp))
			res->outcome = have_src ? PATHSYNC_NO_PARENT :
			    PATHSYNC_DONE;
		else
			res->err = dp;
		return;
	}
	if (fstatat(dp, base, &ds, AT_SYMLINK_NOFOLLOW) == 0)
		have_dst = true;
	else if (errno != ENOENT) {
		res->err = -errno;
		return;
	}

	if (!have_src) {
		if (have_dst && opt->delete && opt->hold_deletes) {
			res->withheld = true;
		} else if (have_dst && opt->delete && opt->expect != NULL &&
		    (res->fault = guard_check_source(pd->src_root, 0,
		    pd->dst_root, opt->expect, true,
		    &(SourceIdentity){ 0 })) != GUARD_OK) {
			/* A vanished or emptied source root says nothing
			 * about this name: keep it. */
		} else if (have_dst && opt->delete) {
			res->action = "delete";
			res->entries_changed = true;
			res->err = copy_delete_tree(dp, base, &res->count);
		}
		return;
	}
	fsutil_meta_from_stat(&ss, &sm);
	switch (ss.st_mode & S_IFMT) {
	case S_IFREG:
		sync_file(sp, dp, base, &sm, &ds, have_dst, opt, res);
		break;
	case S_IFLNK:
		sync_symlink(sp, dp, base, &sm, &ds, have_dst, opt, res);
		break;
	case S_IFDIR:
		if (!have_dst || !S_ISDIR(ds.st_mode)) {
			res->outcome = PATHSYNC_SUBTREE;
			break;
		}
		/* Its own metadata; what is inside it has events of its own. */
		{
			FileMeta dm;
			fsutil_meta_from_stat(&ds, &dm);
			if (planner_same_attrs(&sm, &dm,
			    opt->copy.preserve_owner) &&
			    planner_same_content(&sm, &dm))
				break;
			res->action = "attrs";
			res->err = copy_set_meta(dp, base, &sm, &opt->copy);
		}
		break;
	default:
		break;	/* fifos, sockets, devices: not mirrored */
	}
}

void
pathsync_run(int src_root, int dst_root, const char *relpath,
    const PathSyncOptions *opt, PathSyncResult *res)
{
	char parent[PATH_MAX];
	const char *base;
	PathSyncDir pd;

	if (relpath[0] == '\0') {
		memset(res, 0, sizeof *res);
		res->outcome = PATHSYNC_DONE;
		sync_root_meta(src_root, dst_root, opt, res);
		return;
	}
	path_split(relpath, parent, sizeof parent, &base);
	pathsync_dir_open(src_root, dst_root, parent, &pd);
	pathsync_dir_run(&pd, base, opt, res);
	pathsync_dir_close(&pd);
}

int
pathsync_rename(int dst_root, const char *from, const char *to)
{
	char fparent[PATH_MAX], tparent[PATH_MAX];
	const char *fbase, *tbase;
	int fd = -1, td = -1, r = 0;

	path_split(from, fparent, sizeof fparent, &fbase);
	path_split(to, tparent, sizeof tparent, &tbase);
	if ((fd = open_beneath(dst_root, fparent, O_RDONLY | O_DIRECTORY)) < 0) {
		r = fd;
		goto out;
	}
	if ((td = open_beneath(dst_root, tparent, O_RDONLY | O_DIRECTORY)) < 0) {
		r = td;
		goto out;
	}
	if (renameat(fd, fbase, td, tbase) < 0)
		r = -errno;
out:
	if (fd >= 0)
		close(fd);
	if (td >= 0)
		close(td);
	return r;
}
