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
 *
 * Jobs are self-contained: each carries copies of what its worker reads
 * (paths, the source's metadata, options) and a counted reference to the
 * pass's PassRoots (the two root fds, copy options, the max_delete
 * budget), so no worker reads the FullSync or a DirNode, and the roots
 * stay open until the last job that may use them is done.
 *
 * Files: this one (the pass, scheduling, completions, logging),
 * fullsync-dir.c, fullsync-links.c, fullsync-worker.c; fullsync-int.h
 * says what each owns.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fullsync-int.h"
#include "util/alloc.h"
#include "util/synclog.h"

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

void
fullsync_log_failure(FullSync *fs, const char *action, const char *relpath,
    int err)
{
	fs->stats.errors++;
	synclog_event(fs->opt.will_retry ? LOG_LEVEL_WARN : LOG_LEVEL_ERROR,
	    fs->pair->name, action, relpath, fs->dest, "failed: %s%s",
	    reason(err), fs->opt.will_retry ? " (will retry)" : "");
}

void
fullsync_settle(FullSync *fs, const FileMeta *meta)
{
	fs->stats.entries_done++;
	if (S_ISREG(meta->mode))
		fs->stats.bytes_done += (uint64_t)meta->size;
}

/* ---- hard-link groups ------------------------------------------------ */

/* ---- the roots every job reads --------------------------------------- */

static PassRoots *
roots_new(const RootJob *rj, const FullSyncOptions *opt,
    const RuleOptions *rules)
{
	PassRoots *r = xcalloc(1, sizeof *r);

	atomic_init(&r->refs, 1);
	r->src = rj->src_fd;
	r->dst = rj->dst_fd;
	r->copy.preserve_owner = opt->preserve_owner;
	r->copy.umask_zero = opt->umask_zero;
	r->rules = *rules;
	r->limit_deletes = rj->budget != UINT64_MAX;
	atomic_init(&r->deletes_left, rj->budget);
	return r;
}

static PassRoots *
roots_ref(PassRoots *r)
{
	atomic_fetch_add(&r->refs, 1);
	return r;
}

void
fullsync_roots_release(PassRoots *r)
{
	if (r == NULL || atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	close(r->src);
	close(r->dst);
	free(r);
}

void
fullsync_submit(FullSync *fs, Job *job, JobFn run, JobFn done)
{
	job->run = run;
	job->done = done;
	fs->jobs_out++;
	pool_submit(fs->pool, job);
}

/* A done op's line: what was done (op->done), in the rules' words. */
static void
log_op(FullSync *fs, const char *dir_relpath, const Op *op)
{
	const char *pair = fs->pair->name, *word = rules_action_name(op->done);
	char *path = xjoin(dir_relpath, op->name);
	char buf[1024];

	switch (op->done) {
	case RULE_DELETE:
		synclog_event(LOG_LEVEL_INFO, pair, word, path, fs->dest,
		    "%llu %s", (unsigned long long)op->count,
		    op->count == 1 ? "entry" : "entries");
		break;
	case RULE_MKDIR:
		synclog_event(LOG_LEVEL_INFO, pair, word, path, fs->dest,
		    "created");
		break;
	case RULE_COPY:
		synclog_format_size(op->bytes, buf, sizeof buf);
		synclog_event(LOG_LEVEL_INFO, pair, word, path, fs->dest,
		    "%s %.1f ms", buf, (double)op->usec / 1000);
		break;
	case RULE_SYMLINK:
	case RULE_HARDLINK:
		synclog_escape(op->target, buf, sizeof buf);
		synclog_event(LOG_LEVEL_INFO, pair, word, path, fs->dest,
		    op->done == RULE_SYMLINK ? "target '%s'" : "to '%s'", buf);
		break;
	case RULE_ATTRS:
		synclog_event(LOG_LEVEL_DEBUG, pair, word, path, fs->dest,
		    "mode %04o%s", (unsigned)(op->meta.mode & 07777),
		    op->type == RULE_HASH ? ", content equal" : "");
		break;
	default:	/* RULE_NONE after a hash */
		synclog_event(LOG_LEVEL_DEBUG, pair, "same", path, fs->dest,
		    "content equal");
		break;
	}
	free(path);
}

/* A source file changed under the copy: try it again, a few times. */
static bool
retry_changed(FullSync *fs, Batch *b, Op *op)
{
	Batch *nb;
	Op *nop;

	if (op->err != COPY_SOURCE_CHANGED || op->attempts + 1 >= COPY_ATTEMPTS)
		return false;
	nb = fullsync_batch_new(fs, b->dir, b->dir_relpath, b->phase);
	nop = fullsync_batch_add(nb, op->type, op->name, &op->meta);
	nop->dst_meta = op->dst_meta;
	nop->attempts = op->attempts + 1;
	nop->group = op->group;
	fullsync_ready_push(fs, nb);
	return true;
}

static const char *
base_name(const char *relpath)
{
	const char *slash = strrchr(relpath, '/');

	return slash != NULL ? slash + 1 : relpath;
}

/* A failed (or stopped, or vanished) op's line; a done op's line. */
static void
log_outcome(FullSync *fs, Batch *b, Op *op, int open_err)
{
	bool copy = op->type == RULE_COPY || op->type == RULE_HASH;
	char *path = b->finalize ? xstrdup(b->dir->relpath) :
	    xjoin(b->dir_relpath, op->name);

	if (op->err == -ENOENT && copy && open_err == 0) {
		/* Gone from the source since the scan: nothing to mirror. */
		synclog_event(LOG_LEVEL_DEBUG, fs->pair->name, "copy", path,
		    fs->dest, "vanished from the source");
	} else if (op->err == -ECANCELED && copy && open_err == 0) {
		/* Stopping: no error, no retry; the next start copies it. */
		log_abandoned(fs, path, op->bytes, (uint64_t)op->meta.size);
	} else if (op->err != 0) {
		fullsync_log_failure(fs, copy ? "copy" :
		    rules_action_name(op->type), path, op->err);
	} else {
		log_op(fs, b->dir_relpath, op);
	}
	free(path);
}

/* The figures of a done op. */
static void
count_done(FullSync *fs, const Op *op)
{
	SyncStats *st = &fs->stats;
	RuleAction a = op->done;
	uint64_t *one = a == RULE_MKDIR ? &st->dirs_created :
	    a == RULE_COPY ? &st->files_copied :
	    a == RULE_SYMLINK ? &st->symlinks :
	    a == RULE_HARDLINK ? &st->hardlinks :
	    a == RULE_ATTRS ? &st->meta_fixed : NULL;

	if (one != NULL)
		(*one)++;
	if (a == RULE_COPY)
		st->bytes_copied += op->bytes;
	if (a == RULE_DELETE)
		st->deleted += op->count;
}

/* One op's outcome: log, count, and the bookkeeping it unblocks. */
static void
op_done(FullSync *fs, Batch *b, Op *op, int open_err)
{
	if (open_err == 0 && retry_changed(fs, b, op))
		return;
	if (open_err != 0)
		op->err = open_err;
	if (op->withheld && open_err == 0) {
		/* Past max_delete (or the pair is held): the caller logs one
		 * line for the pass; the name stays in the destination. */
		char *path = xjoin(b->dir_relpath, op->name);
		synclog_event(LOG_LEVEL_DEBUG, fs->pair->name, "delete", path,
		    fs->dest, "withheld: past max_delete");
		free(path);
		fs->stats.withheld++;
		return;
	}
	log_outcome(fs, b, op, open_err);
	if (fs->opt.report != NULL) {
		char *path = b->finalize ? xstrdup(b->dir->relpath) :
		    xjoin(b->dir_relpath, op->name);
		fs->opt.report(fs->opt.report_arg, path, op->done, op->err);
		free(path);
	}
	if (op->err == 0)
		count_done(fs, op);
	if (op->type != RULE_DELETE && !b->finalize && op->err != -ECANCELED)
		fullsync_settle(fs, &op->meta);
	/* Names made or replaced in the directory moved its mtime. */
	if (op->done != RULE_ATTRS && op->done != RULE_NONE && !b->finalize)
		b->dir->dirty = true;
	if (op->group != NULL)
		fullsync_link_settled(fs, op->group, op->err == 0, op->dst_ino);
	if (op->type == RULE_MKDIR && op->err != 0) {
		/* Do not descend into a directory that is not there. */
		for (DirNode *c = b->dir->held_children; c != NULL; c = c->next)
			if (strcmp(base_name(c->relpath), op->name) == 0)
				c->skip_finalize = true;
	}
}

void
fullsync_batch_done(Job *job)
{
	Batch *b = (Batch *)job;
	FullSync *fs = b->fs;
	DirNode *dir = b->dir;

	fs->jobs_out--;
	fullsync_roots_release(b->roots);
	b->roots = NULL;
	if (job->cancelled) {
		fullsync_batch_free(b);
		return;
	}
	for (size_t i = 0; i < b->n; i++)
		op_done(fs, b, &b->ops[i], b->open_err);

	if (b->finalize) {
		fullsync_dir_finished(fs, dir);
	} else {
		if (b->phase == 1 && --dir->phase1_left == 0)
			fullsync_dir_release_held(fs, dir);
		fullsync_dir_release(fs, dir);
	}
	fullsync_batch_free(b);
	fullsync_pump(fs);
}

/* A directory's scan came back: plan it. */
static void
scan_done(Job *job)
{
	ScanJob *sj = (ScanJob *)job;
	FullSync *fs = sj->fs;
	DirNode *dir = sj->dir;
	const char *failed = NULL;
	Plan plan;
	int r = 0;

	fs->jobs_out--;
	fs->dirs_unscanned--;
	fullsync_roots_release(sj->roots);
	if (job->cancelled)
		goto out;
	if (sj->src_err == -ENOENT && dir->parent != NULL) {
		synclog_event(LOG_LEVEL_DEBUG, fs->pair->name, "scan",
		    dir->relpath, fs->dest, "vanished from the source");
		r = sj->src_err;
	} else if ((r = sj->src_err) < 0 || (r = sj->dst_err) < 0) {
		/* An unreadable side is no reason to delete anything. */
		failed = "scan";
	} else {
		if (sj->dst_mode_fixed)
			dir->dirty = true;
		r = planner_plan_dir(dir->relpath, &sj->src, dir->fresh ? NULL :
		    &sj->dst, &fs->plan_opt, &plan);
		failed = "plan";
	}
	if (r < 0) {
		if (failed != NULL)
			fullsync_log_failure(fs, failed, dir->relpath, r);
		dir->skip_finalize = true;
	} else {
		fullsync_dir_plan(fs, dir, &plan);
		planner_plan_free(&plan);
	}
	fullsync_dir_release(fs, dir);	/* the hold taken by the scan */
out:
	scan_list_free(&sj->src);
	scan_list_free(&sj->dst);
	free(sj->relpath);
	free(sj);
	if (fs->dirs_unscanned == 0)
		fs->stats.scan_done = true;
	fullsync_pump(fs);
}

/* The scan job of directory d, with copies of what its worker reads. */
static void
submit_scan(FullSync *fs, DirNode *d)
{
	ScanJob *sj = xcalloc(1, sizeof *sj);

	d->pending++;	/* released when the scan is planned */
	sj->fs = fs;
	sj->dir = d;
	sj->roots = roots_ref(fs->roots);
	sj->relpath = xstrdup(d->relpath);
	sj->fresh = d->fresh;
	sj->fix_mode = -1;
	if (!fs->opt.preserve_owner && d->have_dst_meta &&
	    (d->dst_meta.mode & 0700) != 0700)
		sj->fix_mode = (int)(d->dst_meta.mode & 07777);
	fullsync_submit(fs, &sj->job, fullsync_scan_run, scan_done);
}

/* Hands ready work to the pool, batches before new scans. */
void
fullsync_pump(FullSync *fs)
{
	if (fs->stopping)
		return;
	while (fs->jobs_out < fs->max_jobs) {
		if (fs->ready_head != NULL) {
			Batch *b = fs->ready_head;
			fs->ready_head = b->next;
			if (fs->ready_head == NULL)
				fs->ready_tail = NULL;
			b->roots = roots_ref(fs->roots);
			fullsync_submit(fs, &b->job, fullsync_batch_run,
			    fullsync_batch_done);
		} else if (fs->scan_stack != NULL) {
			DirNode *d = fs->scan_stack;

			fs->scan_stack = d->next;
			d->next = NULL;
			submit_scan(fs, d);
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

/* The root job failed, found a fault or found nothing to walk: the
 * pass ends before it began (true), after logging what it must. */
static bool
root_failed(FullSync *fs, RootJob *rj)
{
	bool src = rj->src_err < 0;

	if (rj->not_dir || (rj->src_err == -ENOENT && fs->relroot[0] != '\0'))
		/* The subtree is gone or no longer a directory: whoever
		 * asked for it learns that from the source itself. */
		return true;
	if (rj->fault != GUARD_OK) {
		/* Nothing is done: the caller says what happens next (the
		 * live daemon holds deletes and checks again). */
		fs->stats.fault = rj->fault;
		fs->stats.errors++;
		if (!fs->opt.will_retry)
			synclog_event(LOG_LEVEL_ERROR, fs->pair->name, "guard",
			    "", fs->dest, "source '%s' %s%s%s: nothing done for "
			    "this destination, nothing deleted",
			    fs->pair->source, guard_fault_text(rj->fault),
			    src ? ": " : "", src ? strerror(-rj->src_err) : "");
		return true;
	}
	if (src || rj->dst_err < 0) {
		fs->stats.errors++;
		synclog_event(fs->opt.will_retry ? LOG_LEVEL_WARN :
		    LOG_LEVEL_ERROR, fs->pair->name, "open", "", fs->dest,
		    "failed: %s '%s': %s%s", src ? "source" : "destination",
		    src ? fs->pair->source : fs->dest,
		    strerror(src ? -rj->src_err : -rj->dst_err),
		    fs->opt.will_retry ? " (will retry)" :
		    ", nothing done for this destination");
		return true;
	}
	if (rj->src_st.st_dev == rj->dst_st.st_dev &&
	    rj->src_st.st_ino == rj->dst_st.st_ino) {
		fullsync_log_failure(fs, "open", "", -ELOOP);
		return true;
	}
	return false;
}

/* The top directory's own attributes, by the rules for a directory. */
static bool
root_attrs_differ(const FullSync *fs, const DirNode *root)
{
	ScanEntry s = { .meta = root->src_meta }, d = { .meta = root->dst_meta };

	return rules_decide(&s, &d, &fs->plan_opt.rules).attrs;
}

static void
root_job_free(RootJob *rj)
{
	free(rj->source);
	free(rj->dest);
	free(rj->relroot);
	free(rj);
}

static void
root_done(Job *job)
{
	RootJob *rj = (RootJob *)job;
	FullSync *fs = rj->fs;
	DirNode *root;

	fs->jobs_out--;
	if (job->cancelled || root_failed(fs, rj)) {
		if (rj->src_fd >= 0)
			close(rj->src_fd);
		if (rj->dst_fd >= 0)
			close(rj->dst_fd);
		fs->root_done = true;
		goto out;
	}
	if (rj->created) {
		synclog_event(LOG_LEVEL_INFO, fs->pair->name, "mkdir",
		    fs->relroot, fs->dest, "%s", fs->relroot[0] == '\0' ?
		    "created the destination root" : "created");
		if (rj->replaced && fs->opt.report != NULL)
			fs->opt.report(fs->opt.report_arg, fs->relroot,
			    RULE_DELETE, 0);
		if (fs->opt.report != NULL)
			fs->opt.report(fs->opt.report_arg, fs->relroot,
			    RULE_MKDIR, 0);
	}
	fs->roots = roots_new(rj, &fs->opt, &fs->plan_opt.rules);
	fs->stats.source = rj->seen;
	fs->stats.delete_budget = rj->budget;
	root = fullsync_dir_new(fs, NULL, xstrdup(fs->relroot));
	fsutil_meta_from_stat(&rj->src_st, &root->src_meta);
	fsutil_meta_from_stat(&rj->dst_st, &root->dst_meta);
	root->have_dst_meta = true;
	root->attrs = root_attrs_differ(fs, root);
	root->fresh = rj->created;
	root->dirty = rj->created;
	fs->root = root;
	root->next = NULL;
	fs->scan_stack = root;
	fs->dirs_unscanned = 1;
out:
	root_job_free(rj);
	fullsync_pump(fs);
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
	fs->plan_opt.exclude = pair->exclude;
	fs->plan_opt.rules.delete = pair->delete;
	fs->plan_opt.rules.compare = pair->compare;
	fs->plan_opt.rules.preserve_owner = opt->preserve_owner;
	fs->done = done;
	fs->done_arg = arg;
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
	rj->source = xstrdup(fs->pair->source);
	rj->dest = xstrdup(fs->dest);
	rj->relroot = xstrdup(fs->relroot);
	rj->opt = fs->opt;
	rj->delete = fs->pair->delete;
	rj->max_delete = fs->pair->max_delete;
	rj->src_fd = rj->dst_fd = -1;
	fullsync_submit(fs, &rj->job, fullsync_root_run, root_done);
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
		fullsync_dir_free(fs, fs->all_dirs);
	while (fs->ready_head != NULL) {
		Batch *next = fs->ready_head->next;
		fullsync_batch_free(fs->ready_head);
		fs->ready_head = next;
	}
	fullsync_links_free(fs);
	fullsync_roots_release(fs->roots);
	free(fs->dest);
	free(fs->relroot);
	free(fs);
}
