/*
 * fullsync-dir — a pass's directory nodes and their batches (see
 * fullsync-int.h). Reactor thread only.
 *
 * DirNode.pending counts what a directory still waits for: its batches,
 * its unfinished subdirectories and hard links waiting for their group.
 * When it reaches zero the directory is finalized (its own owner, mode
 * and times, once everything beneath it is done: every entry made inside
 * a directory changes its mtime) and releases its parent. Phase-2
 * batches and subdirectories are held by the directory until its
 * phase 1 (deletes, mkdirs) is done.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fullsync-int.h"
#include "util/alloc.h"
#include "util/path.h"
#include "util/synclog.h"

/* ---- batches --------------------------------------------------------- */

Batch *
fullsync_batch_new(FullSync *fs, DirNode *dir, const char *dir_relpath,
    int phase)
{
	Batch *b = xcalloc(1, sizeof *b);

	b->fs = fs;
	b->dir = dir;
	b->dir_relpath = xstrdup(dir_relpath);
	b->phase = phase;
	dir->pending++;
	return b;
}

void
fullsync_batch_free(Batch *b)
{
	for (size_t i = 0; i < b->n; i++) {
		free(b->ops[i].name);
		free(b->ops[i].target);
	}
	free(b->ops);
	free(b->dir_relpath);
	free(b);
}

Op *
fullsync_batch_add(Batch *b, RuleAction type, const char *name,
    const FileMeta *meta)
{
	Op *op;

	xgrow(&b->ops, &b->cap, b->n + 1, sizeof *b->ops, 8);
	op = &b->ops[b->n++];
	memset(op, 0, sizeof *op);
	op->type = type;
	op->done = type;
	op->name = xstrdup(name);
	if (meta != NULL)
		op->meta = *meta;
	if (type == RULE_COPY || type == RULE_HASH) {
		b->needs_source = true;
		b->bytes += (uint64_t)op->meta.size;
	}
	return op;
}

void
fullsync_ready_push(FullSync *fs, Batch *b)
{
	b->next = NULL;
	if (fs->ready_tail != NULL)
		fs->ready_tail->next = b;
	else
		fs->ready_head = b;
	fs->ready_tail = b;
}

void
fullsync_builder_init(Builder *bl, FullSync *fs, DirNode *dir, int phase)
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

Op *
fullsync_builder_add(Builder *bl, RuleAction type, const char *name,
    const FileMeta *meta)
{
	Op *op;

	if (bl->cur == NULL)
		bl->cur = fullsync_batch_new(bl->fs, bl->dir, bl->dir->relpath,
		    bl->phase);
	op = fullsync_batch_add(bl->cur, type, name, meta);
	if (bl->cur->n >= BATCH_MAX_OPS || bl->cur->bytes >= BATCH_MAX_BYTES)
		builder_close(bl);
	return op;
}

Batch *
fullsync_builder_finish(Builder *bl)
{
	builder_close(bl);
	*bl->out_tail = NULL;
	return bl->out;
}

/* ---- directory nodes ------------------------------------------------- */

DirNode *
fullsync_dir_new(FullSync *fs, DirNode *parent, char *relpath)
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

void
fullsync_dir_free(FullSync *fs, DirNode *d)
{
	if (d->all_prev != NULL)
		d->all_prev->all_next = d->all_next;
	else
		fs->all_dirs = d->all_next;
	if (d->all_next != NULL)
		d->all_next->all_prev = d->all_prev;
	for (Batch *b = d->held_batches; b != NULL;) {
		Batch *next = b->next;
		fullsync_batch_free(b);
		b = next;
	}
	free(d->relpath);
	free(d);
}

void
fullsync_dir_finished(FullSync *fs, DirNode *dir)
{
	DirNode *parent = dir->parent;

	if (parent == NULL)
		fs->root_done = true;
	fullsync_dir_free(fs, dir);
	if (parent != NULL)
		fullsync_dir_release(fs, parent);
}

/* Everything below dir is done: set its own metadata, then tell parent. */
static void
dir_finalize(FullSync *fs, DirNode *dir)
{
	bool same = dir->have_dst_meta && !dir->dirty && !dir->attrs;
	Batch *b;

	if (same || dir->skip_finalize) {
		fullsync_dir_finished(fs, dir);
		return;
	}
	/* The batch lives in the parent directory (the root: in itself). */
	if (dir->relpath[0] != '\0') {
		char parent_path[PATH_MAX];
		const char *base;

		path_split(dir->relpath, parent_path, sizeof parent_path, &base);
		b = fullsync_batch_new(fs, dir, parent_path, 3);
		fullsync_batch_add(b, RULE_ATTRS, base, &dir->src_meta);
	} else {
		b = fullsync_batch_new(fs, dir, "", 3);
		fullsync_batch_add(b, RULE_ATTRS, ".", &dir->src_meta);
	}
	b->finalize = true;
	dir->pending--;	/* batch_new counted it; finalize is not pending */
	fullsync_ready_push(fs, b);
}

void
fullsync_dir_release(FullSync *fs, DirNode *dir)
{
	if (--dir->pending == 0)
		dir_finalize(fs, dir);
}

void
fullsync_dir_release_held(FullSync *fs, DirNode *dir)
{
	Batch *b = dir->held_batches;
	DirNode *c = dir->held_children;

	dir->held_batches = NULL;
	dir->held_children = NULL;
	while (b != NULL) {
		Batch *next = b->next;
		fullsync_ready_push(fs, b);
		b = next;
	}
	while (c != NULL) {
		DirNode *next = c->next;
		if (c->skip_finalize) {
			/* Its mkdir failed: nothing to descend into. */
			fs->dirs_unscanned--;
			fullsync_dir_free(fs, c);
			fullsync_dir_release(fs, dir);
		} else {
			c->next = fs->scan_stack;
			fs->scan_stack = c;
		}
		c = next;
	}
}

/* A subdirectory to walk after this directory's phase 1. */
static DirNode *
add_child(FullSync *fs, DirNode *dir, const PlanAction *a)
{
	DirNode *c = fullsync_dir_new(fs, dir, xjoin(dir->relpath,
	    a->src->name));

	c->src_meta = a->src->meta;
	c->fresh = a->fresh_dir;
	c->attrs = a->rule.attrs;
	if (a->dst != NULL) {
		c->dst_meta = a->dst->meta;
		c->have_dst_meta = true;
	}
	dir->pending++;
	fs->dirs_unscanned++;
	return c;
}

/* An entry that gets no op: a special file, or an unreadable one. */
static void
log_not_mirrored(FullSync *fs, DirNode *dir, const PlanAction *a)
{
	char *path = xjoin(dir->relpath, a->src->name);

	if (a->type == RULE_SKIP) {
		fs->stats.skipped++;
		synclog_event(LOG_LEVEL_WARN, fs->pair->name, "skip", path,
		    fs->dest, "not a regular file, directory or symlink "
		    "(fifo, socket or device): not mirrored");
	} else {
		fullsync_log_failure(fs, "stat", path, a->src->err);
	}
	if (fs->opt.report != NULL)
		fs->opt.report(fs->opt.report_arg, path, a->type, a->src->err);
	free(path);
}

void
fullsync_dir_plan(FullSync *fs, DirNode *dir, const Plan *plan)
{
	Builder p1, p2;
	DirNode *children = NULL, **ctail = &children;
	Batch *phase1;

	fullsync_builder_init(&p1, fs, dir, 1);
	fullsync_builder_init(&p2, fs, dir, 2);
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

		switch (a->type) {
		case RULE_DELETE:
			fullsync_builder_add(&p1, RULE_DELETE, a->dst->name,
			    NULL);
			break;
		case RULE_MKDIR:
			fullsync_builder_add(&p1, RULE_MKDIR, s->name, &s->meta);
			break;
		case RULE_COPY:
		case RULE_ATTRS:
			fullsync_builder_add(&p2, a->type, s->name, &s->meta);
			break;
		case RULE_HASH:
			op = fullsync_builder_add(&p2, RULE_HASH, s->name,
			    &s->meta);
			op->dst_meta = a->dst->meta;
			break;
		case RULE_HARDLINK:
			fullsync_link_resolve(fs, &p2, s->name, &s->meta,
			    a->dst, a->rule.leader);
			break;
		case RULE_SYMLINK:
			op = fullsync_builder_add(&p2, RULE_SYMLINK, s->name,
			    &s->meta);
			op->target = xstrdup(s->link_target);
			break;
		case RULE_RECURSE:
			*ctail = add_child(fs, dir, a);
			ctail = &(*ctail)->next;
			break;
		case RULE_SKIP:
		case RULE_SOURCE_ERROR:
			log_not_mirrored(fs, dir, a);
			break;
		default:
			break;	/* the planner gives no step for the others */
		}
	}
	*ctail = NULL;
	dir->held_batches = fullsync_builder_finish(&p2);
	dir->held_children = children;
	phase1 = fullsync_builder_finish(&p1);
	dir->phase1_left = p1.count;
	if (phase1 == NULL)
		fullsync_dir_release_held(fs, dir);
	while (phase1 != NULL) {
		Batch *next = phase1->next;
		fullsync_ready_push(fs, phase1);
		phase1 = next;
	}
}
