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
#include "engine/rules.h"
#include "util/beneath.h"
#include "util/path.h"

/* An ancestor that vanished or stopped being a directory: no such path. */
static bool
path_gone(int err)
{
	return err == -ENOENT || err == -ENOTDIR || err == -ELOOP;
}

static RuleOptions
rule_options(const PathSyncOptions *opt)
{
	RuleOptions r = { .compare = opt->compare, .delete = opt->delete,
	    .preserve_owner = opt->copy.preserve_owner };

	return r;
}

static void
sync_root_meta(int src_root, int dst_root, const PathSyncOptions *opt,
    PathSyncResult *res)
{
	RuleOptions ropt = rule_options(opt);
	struct stat ss, ds;
	ScanEntry s = { 0 }, d = { 0 };

	if (fstat(src_root, &ss) < 0 || fstat(dst_root, &ds) < 0) {
		res->err = -errno;
		return;
	}
	fsutil_meta_from_stat(&ss, &s.meta);
	fsutil_meta_from_stat(&ds, &d.meta);
	if (!rules_decide(&s, &d, &ropt).attrs)
		return;
	res->action = RULE_ATTRS;
	res->err = copy_set_meta(dst_root, ".", &s.meta, &opt->copy);
}

/* A name gone from the source: delete it, unless held or the source
 * root fails its check. */
static void
sync_gone(const PathSyncDir *pd, const char *base, const PathSyncOptions *opt,
    PathSyncResult *res)
{
	if (opt->hold_deletes) {
		res->withheld = true;
	} else if (opt->expect != NULL &&
	    (res->fault = guard_check_source(pd->src_root, 0, pd->dst_root,
	    opt->expect, true, &(SourceIdentity){ 0 })) != GUARD_OK) {
		/* A vanished or emptied source root says nothing about this
		 * name: keep it. */
	} else {
		res->action = RULE_DELETE;
		res->entries_changed = true;
		res->err = copy_delete_tree(pd->dp, base, &res->count);
	}
}

/* Reads the target of the symlink name in dir into e (a buffer of
 * PATH_MAX + 1). 0 or -errno. */
static int
read_target(int dir, const char *name, ScanEntry *e, char *buf)
{
	ssize_t n = readlinkat(dir, name, buf, PATH_MAX);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	e->link_target = buf;
	return 0;
}

/* Does what rule says for a name both sides may have (the source has). */
static void
apply(int sp, int dp, const char *base, const ScanEntry *s,
    const ScanEntry *d, const RuleDecision *rule, const PathSyncOptions *opt,
    PathSyncResult *res)
{
	RuleOptions ropt = rule_options(opt);
	RuleAction action = rule->action;
	bool same;

	if (action == RULE_RECURSE)
		action = rule->attrs ? RULE_ATTRS : RULE_NONE;
	if (action == RULE_NONE || action == RULE_SKIP)
		return;
	if (rule->replace) {
		/* A directory where a file or symlink belongs goes first. */
		res->action = RULE_DELETE;
		res->entries_changed = true;
		if ((res->err = copy_delete_tree(dp, base, &res->count)) < 0)
			return;
		res->replaced = true;
	}
	if (action == RULE_HASH) {
		if ((res->err = hash_same(sp, dp, base, &same)) < 0)
			return;
		action = rules_after_hash(s, d, &ropt, same).action;
		if (action == RULE_NONE)
			return;
	}
	res->action = action;
	switch (action) {
	case RULE_ATTRS:
		res->err = copy_set_meta(dp, base, &s->meta, &opt->copy);
		break;
	case RULE_COPY:
		res->entries_changed = true;
		res->size = (uint64_t)s->meta.size;
		res->err = copy_file_atomic(sp, base, dp, base, &opt->copy,
		    &res->bytes, NULL);
		break;
	case RULE_SYMLINK:
		res->entries_changed = true;
		res->err = copy_symlink(dp, base, s->link_target, &s->meta,
		    &opt->copy);
		break;
	default:
		res->action = RULE_NONE;	/* not one of the rules' answers */
		break;
	}
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
	RuleOptions ropt = rule_options(opt);
	char starget[PATH_MAX + 1], dtarget[PATH_MAX + 1];
	ScanEntry s = { 0 }, d = { 0 };
	struct stat ss, ds;
	bool have_src = false, have_dst = false;
	int sp = pd->sp, dp = pd->dp, r;
	RuleDecision rule;

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
	if (have_src) {
		fsutil_meta_from_stat(&ss, &s.meta);
		if (S_ISLNK(ss.st_mode) &&
		    (r = read_target(sp, base, &s, starget)) < 0) {
			res->err = path_gone(r) ? 0 : r;
			return;
		}
	}
	if (have_dst) {
		fsutil_meta_from_stat(&ds, &d.meta);
		/* Unreadable: another target, recreated. */
		if (S_ISLNK(ds.st_mode))
			(void)read_target(dp, base, &d, dtarget);
	}
	rule = rules_decide(have_src ? &s : NULL, have_dst ? &d : NULL, &ropt);
	switch (rule.action) {
	case RULE_DELETE:
		sync_gone(pd, base, opt, res);
		break;
	case RULE_MKDIR:
		/* New, or replacing another kind: a subtree pass does it. */
		res->outcome = PATHSYNC_SUBTREE;
		break;
	case RULE_HARDLINK:
		/* Its other names are elsewhere: a pass of the whole pair. */
		res->outcome = PATHSYNC_HARDLINK;
		break;
	case RULE_NONE:
	case RULE_KEEP:
	case RULE_SKIP:
	case RULE_SOURCE_ERROR:
		break;
	default:
		apply(sp, dp, base, &s, have_dst ? &d : NULL, &rule, opt, res);
		break;
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
