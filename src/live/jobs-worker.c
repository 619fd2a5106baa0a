/*
 * jobs-worker — the bodies of live's jobs. Worker thread only: each
 * reads nothing but its own job (paths, options and roots copied into
 * it by schedule.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "live-int.h"
#include "util/clock.h"
#include "util/path.h"

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

/* Stable: within one directory the ripe order (parents first) holds. */
static void
sort_by_parent(PathItem *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		PathItem x = v[i];
		size_t j = i;

		while (j > 0 && parent_cmp(v[j - 1].relpath, x.relpath) > 0) {
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

/* Opens both roots and checks the source's; false (every item told why)
 * when the batch cannot run. */
static bool
open_roots(PathJob *pj, int *src, int *dst)
{
	int err = 0;

	*dst = -1;
	pj->fault = GUARD_OK;
	if ((*src = open_root(pj->source)) < 0) {
		err = *src;
		if (err == -ENOENT || err == -ENOTDIR)
			pj->fault = GUARD_VANISHED;
	} else if (pj->expect.known && (pj->fault = guard_check_source(*src,
	    0, -1, &pj->expect, false, &(SourceIdentity){ 0 })) != GUARD_OK) {
		/* Not the root the pair mirrors (unmounted, replaced): touch
		 * nothing, neither copy from it nor delete because of it. */
	} else if ((*dst = open_root(pj->dest_root)) < 0) {
		err = *dst;
	}
	if (err == 0 && pj->fault == GUARD_OK)
		return true;
	for (size_t i = 0; i < pj->n; i++) {
		pj->items[i].res.err = err;
		pj->items[i].res.fault = pj->fault;
	}
	if (*src >= 0)
		close(*src);
	if (*dst >= 0)
		close(*dst);
	return false;
}

/* The paths of one batch, sorted by parent: each parent opened once per
 * run of its names. Past BATCH_BYTES copied the rest are skipped. */
static void
run_items(PathJob *pj, int src, int dst, uint64_t t0)
{
	char parent[PATH_MAX];
	const char *base;
	PathSyncDir pd;
	bool have_pd = false;
	uint64_t bytes = 0;

	sort_by_parent(pj->items, pj->n);
	for (size_t i = 0; i < pj->n; i++) {
		PathItem *it = &pj->items[i];
		uint64_t t = clock_usec();

		if (bytes >= BATCH_BYTES) {
			it->skipped = true;
			continue;
		}
		/* A new directory: its parent fds, once for its run. */
		if (!have_pd || parent_cmp(pj->items[i - 1].relpath,
		    it->relpath) != 0) {
			if (have_pd)
				pathsync_dir_close(&pd);
			have_pd = true;
			path_split(it->relpath, parent, sizeof parent, &base);
			pathsync_dir_open(src, dst, parent, &pd);
		}
		base = strrchr(it->relpath, '/');
		pathsync_dir_run(&pd, base != NULL ? base + 1 : it->relpath,
		    &pj->opt, &it->res);
		bytes += it->res.bytes;
		it->usec = clock_usec() - (i == 0 ? t0 : t);
	}
	if (have_pd)
		pathsync_dir_close(&pd);
}

/*
 * The roots are opened once per batch; each path is then compared and
 * repaired on its own (a failure is its own). Past BATCH_BYTES copied,
 * the rest goes back to the reactor, so a large file does not hold up
 * the small ones queued behind it for long.
 */
void
live_path_run(Job *job)
{
	PathJob *pj = (PathJob *)job;
	uint64_t t0 = clock_usec();
	int src, dst;

	for (size_t i = 0; i < pj->n; i++) {
		memset(&pj->items[i].res, 0, sizeof pj->items[i].res);
		pj->items[i].skipped = false;
	}
	if (!open_roots(pj, &src, &dst))
		return;
	pj->opt.expect = &pj->expect;
	if (pj->items[0].relpath[0] == '\0') {
		/* The root's own metadata: always a job of its own. */
		pathsync_run(src, dst, "", &pj->opt, &pj->items[0].res);
		pj->items[0].usec = clock_usec() - t0;
	} else {
		run_items(pj, src, dst, t0);
	}
	close(src);
	close(dst);
}

void
live_rename_run(Job *job)
{
	RenameJob *rj = (RenameJob *)job;
	int dst = open_root(rj->dest_root);

	for (Rename *r = rj->list; r != NULL; r = r->next)
		r->err = dst < 0 ? dst : pathsync_rename(dst, r->from, r->to);
	if (dst >= 0)
		close(dst);
}
