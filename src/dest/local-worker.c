/*
 * local-worker — the bodies of a local destination's jobs (local-int.h).
 * Worker thread only: each reads its own job (the roots' paths, copied)
 * and the request it carries, and writes the request's results.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "engine/pathsync.h"
#include "local-int.h"
#include "util/clock.h"
#include "util/path.h"

static DestOutcome
outcome_of(PathSyncOutcome o)
{
	switch (o) {
	case PATHSYNC_SUBTREE:
		return DEST_SUBTREE;
	case PATHSYNC_HARDLINK:
		return DEST_HARDLINK;
	case PATHSYNC_NO_PARENT:
		return DEST_NO_PARENT;
	case PATHSYNC_DONE:
		break;
	}
	return DEST_DONE;
}

static void
put_result(DestItem *it, const PathSyncResult *r)
{
	it->outcome = outcome_of(r->outcome);
	it->action = r->action;
	it->err = r->err;
	it->bytes = r->bytes;
	it->size = r->size;
	it->count = r->count;
	it->entries_changed = r->entries_changed;
	it->withheld = r->withheld;
	it->fault = r->fault;
}

static int
open_root(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

/* Orders two paths by their parent directory (a parent sorts before
 * its subdirectories: it is a prefix of their names). */
static int
parent_cmp(const char *a, const char *b)
{
	const char *sa = strrchr(a, '/'), *sb = strrchr(b, '/');
	size_t la = sa != NULL ? (size_t)(sa - a) : 0;
	size_t lb = sb != NULL ? (size_t)(sb - b) : 0;
	int r = memcmp(a, b, la < lb ? la : lb);

	if (r != 0)
		return r;
	return la < lb ? -1 : la > lb;
}

/* order[] = the items' indices sorted by parent; stable, so within one
 * directory the caller's order (parents first) holds. */
static void
sort_by_parent(const DestBatch *b, size_t *order)
{
	for (size_t i = 0; i < b->n; i++) {
		size_t x = order[i] = i, j = i;

		while (j > 0 && parent_cmp(b->items[order[j - 1]].relpath,
		    b->items[x].relpath) > 0) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = x;
	}
}

/* Opens both roots and checks the source's; false (the batch and every
 * item told why) when the batch cannot run. */
static bool
open_roots(LocalJob *j, int *src, int *dst)
{
	DestBatch *b = j->b;
	int err = 0;

	*dst = -1;
	if ((*src = open_root(j->source)) < 0) {
		err = *src;
		if (err == -ENOENT || err == -ENOTDIR)
			b->fault = GUARD_VANISHED;
	} else if (b->opt.expect.known && (b->fault = guard_check_source(*src,
	    0, -1, &b->opt.expect, false, &(SourceIdentity){ 0 })) !=
	    GUARD_OK) {
		/* Not the root the pair mirrors (unmounted, replaced): touch
		 * nothing, neither copy from it nor delete because of it. */
	} else if ((*dst = open_root(j->root)) < 0) {
		err = *dst;
	}
	if (err == 0 && b->fault == GUARD_OK)
		return true;
	for (size_t i = 0; i < b->n; i++) {
		b->items[i].err = err;
		b->items[i].fault = b->fault;
	}
	if (*src >= 0)
		close(*src);
	if (*dst >= 0)
		close(*dst);
	return false;
}

static void
path_options(const DestBatch *b, PathSyncOptions *opt)
{
	memset(opt, 0, sizeof *opt);
	opt->copy = b->opt.copy;
	opt->delete = b->opt.rules.delete;
	opt->compare = b->opt.rules.compare;
	opt->expect = b->opt.expect.known ? &b->opt.expect : NULL;
	opt->hold_deletes = b->opt.hold_deletes;
}

/* The paths sorted by parent: each parent opened once per run of its
 * names. Past LOCAL_BATCH_BYTES copied the rest are handed back. */
static void
run_items(LocalJob *j, int src, int dst, uint64_t t0)
{
	DestBatch *b = j->b;
	char parent[PATH_MAX];
	const char *base, *prev = NULL;
	PathSyncOptions opt;
	PathSyncResult res;
	PathSyncDir pd;

	path_options(b, &opt);
	sort_by_parent(b, j->order);
	for (size_t i = 0; i < b->n; i++) {
		DestItem *it = &b->items[j->order[i]];
		uint64_t t = clock_usec();

		if (b->bytes >= LOCAL_BATCH_BYTES) {
			it->skipped = true;
			continue;
		}
		/* A new directory: its parent fds, once for its run. */
		if (prev == NULL || parent_cmp(prev, it->relpath) != 0) {
			if (prev != NULL)
				pathsync_dir_close(&pd);
			path_split(it->relpath, parent, sizeof parent, &base);
			pathsync_dir_open(src, dst, parent, &pd);
		}
		prev = it->relpath;
		base = strrchr(it->relpath, '/');
		pathsync_dir_run(&pd, base != NULL ? base + 1 : it->relpath,
		    &opt, &res);
		put_result(it, &res);
		b->bytes += res.bytes;
		it->usec = clock_usec() - (i == 0 ? t0 : t);
	}
	if (prev != NULL)
		pathsync_dir_close(&pd);
}

/*
 * The roots are opened once per batch; each path is then compared and
 * repaired on its own (a failure is its own).
 */
void
local_batch_run(Job *job)
{
	LocalJob *j = (LocalJob *)job;
	DestBatch *b = j->b;
	uint64_t t0 = clock_usec();
	int src, dst;

	if (!open_roots(j, &src, &dst))
		return;
	if (b->n == 1 && b->items[0].relpath[0] == '\0') {
		/* The root's own metadata. */
		PathSyncOptions opt;
		PathSyncResult res;

		path_options(b, &opt);
		pathsync_run(src, dst, "", &opt, &res);
		put_result(&b->items[0], &res);
		b->items[0].usec = clock_usec() - t0;
	} else {
		run_items(j, src, dst, t0);
	}
	close(src);
	close(dst);
}

void
local_rename_run(Job *job)
{
	LocalJob *j = (LocalJob *)job;
	DestRenames *r = j->r;
	int dst = open_root(j->root);

	for (size_t i = 0; i < r->n; i++)
		r->items[i].err = dst < 0 ? dst : pathsync_rename(dst,
		    r->items[i].from, r->items[i].to);
	if (dst >= 0)
		close(dst);
}
