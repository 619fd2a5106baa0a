/*
 * local — see include/dest/local.h. The reactor side: requests become
 * pool jobs (local-worker.c runs them), a compare is a fullsync pass.
 */
#include <stdlib.h>

#include "dest/local.h"
#include "local-int.h"
#include "util/alloc.h"

typedef struct LocalCompare {
	DestCompare base;
	FullSync *fs;
	struct LocalCompare *next;	/* in LocalDest.compares */
} LocalCompare;

struct LocalDest {
	Dest base;
	Pool *pool;
	const SyncPairConfig *pair;
	char *source;		/* copied into each job */
	size_t jobs;		/* batch and rename jobs in the pool */
	LocalCompare *compares;	/* not freed yet */
	bool stopped;
};

#define LOCAL(d) ((LocalDest *)(void *)(d))

static void
local_capacity(const Dest *d, DestCapacity *out)
{
	size_t workers = (size_t)pool_threads(LOCAL(d)->pool);

	/* One job queued beyond the workers: a worker that finishes finds
	 * the next without waiting for the reactor. */
	out->requests = workers + 1;
	out->parallel = workers;
	out->batch_paths = LOCAL_BATCH_PATHS;
}

/* A job back on the reactor: the request goes back to its caller. */
static void
job_done(Job *job)
{
	LocalJob *j = (LocalJob *)job;
	DestBatch *b = j->b;
	DestRenames *r = j->r;
	bool cancelled = job->cancelled;

	j->ld->jobs--;
	free(j->source);
	free(j->root);
	free(j->order);
	free(j);
	if (b != NULL) {
		b->cancelled = cancelled;
		b->done(b);
	} else {
		r->cancelled = cancelled;
		r->done(r);
	}
}

static void
submit(LocalDest *ld, LocalJob *j, JobFn run)
{
	j->ld = ld;
	j->source = xstrdup(ld->source);
	j->root = xstrdup(ld->base.name);
	j->job.run = run;
	j->job.done = job_done;
	ld->jobs++;
	pool_submit(ld->pool, &j->job);
}

static void
local_sync_paths(Dest *d, DestBatch *b)
{
	LocalJob *j = xcalloc(1, sizeof *j);

	j->b = b;
	j->order = xcalloc(b->n ? b->n : 1, sizeof *j->order);
	submit(LOCAL(d), j, local_batch_run);
}

static void
local_rename(Dest *d, DestRenames *r)
{
	LocalJob *j = xcalloc(1, sizeof *j);

	j->r = r;
	submit(LOCAL(d), j, local_rename_run);
}

static void
pass_done(FullSync *fs, void *arg)
{
	LocalCompare *c = arg;

	(void)fs;
	c->base.done(&c->base, c->base.arg);
}

static int
local_compare(Dest *d, const char *relroot, const FullSyncOptions *opt,
    DestCompareDoneFn done, void *arg, DestCompare **ret)
{
	LocalDest *ld = LOCAL(d);
	LocalCompare *c = xcalloc(1, sizeof *c);
	int r;

	c->base.dest = d;
	c->base.done = done;
	c->base.arg = arg;
	if ((r = fullsync_new(ld->pool, ld->pair, d->name, relroot, opt,
	    pass_done, c, &c->fs)) < 0) {
		free(c);
		return r;
	}
	c->next = ld->compares;
	ld->compares = c;
	*ret = &c->base;
	fullsync_start(c->fs);
	return 0;
}

static const SyncStats *
local_compare_stats(const DestCompare *c)
{
	return fullsync_stats(((const LocalCompare *)(const void *)c)->fs);
}

static void
local_compare_free(DestCompare *dc)
{
	LocalCompare *c = (LocalCompare *)(void *)dc;
	LocalCompare **pp = &LOCAL(dc->dest)->compares;

	while (*pp != c)
		pp = &(*pp)->next;
	*pp = c->next;
	fullsync_free(c->fs);
	free(c);
}

static void
local_state(const Dest *d, DestState *out)
{
	(void)d;
	out->availability = DEST_AVAILABLE;
	out->away_since = 0;
	out->reason = NULL;
}

static size_t
local_in_flight(const Dest *d)
{
	const LocalDest *ld = LOCAL(d);
	size_t n = ld->jobs;

	for (const LocalCompare *c = ld->compares; c != NULL; c = c->next)
		n += fullsync_jobs_out(c->fs);
	return n;
}

static void
local_stop(Dest *d)
{
	LocalDest *ld = LOCAL(d);

	ld->stopped = true;
	for (LocalCompare *c = ld->compares; c != NULL; c = c->next)
		fullsync_stop(c->fs);
}

static void
local_free(Dest *d)
{
	LocalDest *ld = LOCAL(d);

	while (ld->compares != NULL)
		local_compare_free(&ld->compares->base);
	free(ld->source);
	free(ld);
}

static const DestOps local_ops = {
	.kind = "local",
	.capacity = local_capacity,
	.sync_paths = local_sync_paths,
	.rename = local_rename,
	.compare = local_compare,
	.compare_stats = local_compare_stats,
	.compare_free = local_compare_free,
	.state = local_state,
	.in_flight = local_in_flight,
	.stop = local_stop,
	.free = local_free,
};

int
dest_local_new(struct event_base *base, Pool *pool,
    const SyncPairConfig *pair, const char *path, Dest **ret)
{
	LocalDest *ld = xcalloc(1, sizeof *ld);

	(void)base;
	dest_init(&ld->base, &local_ops, path);
	ld->pool = pool;
	ld->pair = pair;
	ld->source = xstrdup(pair->source);
	*ret = &ld->base;
	return 0;
}
