/*
 * dest — see include/dest/dest.h: the wrappers over an implementation's
 * ops, choosing the implementation, and the requests' allocation.
 */
#include <stdlib.h>
#include <string.h>

#include "dest/dest.h"
#include "dest/local.h"
#include "util/alloc.h"

int
dest_new(struct event_base *base, Pool *pool, const SyncPairConfig *pair,
    const char *name, Dest **ret)
{
	/* "NAME:/path" names a remote (config.c checked it is declared). */
	if (name[0] != '/')
		return -EPROTONOSUPPORT;
	return dest_local_new(base, pool, pair, name, ret);
}

void
dest_init(Dest *d, const DestOps *ops, const char *name)
{
	d->ops = ops;
	d->name = xstrdup(name);
	d->listen = NULL;
	d->listen_arg = NULL;
}

void
dest_changed(Dest *d)
{
	if (d->listen != NULL)
		d->listen(d, d->listen_arg);
}

void
dest_set_listener(Dest *d, DestListenFn fn, void *arg)
{
	d->listen = fn;
	d->listen_arg = arg;
}

void
dest_capacity(const Dest *d, DestCapacity *out)
{
	d->ops->capacity(d, out);
}

void
dest_sync_paths(Dest *d, DestBatch *b)
{
	d->ops->sync_paths(d, b);
}

void
dest_rename(Dest *d, DestRenames *r)
{
	d->ops->rename(d, r);
}

int
dest_compare(Dest *d, const char *relroot, const FullSyncOptions *opt,
    DestCompareDoneFn done, void *arg, DestCompare **ret)
{
	return d->ops->compare(d, relroot, opt, done, arg, ret);
}

const SyncStats *
dest_compare_stats(const DestCompare *c)
{
	return c->dest->ops->compare_stats(c);
}

void
dest_compare_free(DestCompare *c)
{
	if (c != NULL)
		c->dest->ops->compare_free(c);
}

void
dest_state(const Dest *d, DestState *out)
{
	d->ops->state(d, out);
}

size_t
dest_in_flight(const Dest *d)
{
	return d->ops->in_flight(d);
}

void
dest_stop(Dest *d)
{
	d->ops->stop(d);
}

void
dest_free(Dest *d)
{
	char *name;

	if (d == NULL)
		return;
	name = d->name;
	d->ops->free(d);
	free(name);
}

/* A request struct of head bytes with room for cap items of each. */
static void *
request_new(size_t head, size_t each, size_t cap)
{
	return xcalloc(1, head + cap * each);
}

/* The index of the next item; the caller's count must fit. */
static size_t
next_item(size_t *n, size_t cap)
{
	if (*n >= cap)
		abort();
	return (*n)++;
}

DestBatch *
dest_batch_new(size_t cap)
{
	DestBatch *b = request_new(sizeof *b, sizeof b->items[0], cap);

	b->cap = cap;
	return b;
}

DestItem *
dest_batch_add(DestBatch *b, const char *relpath)
{
	DestItem *it = &b->items[next_item(&b->n, b->cap)];

	it->relpath = xstrdup(relpath);
	return it;
}

void
dest_batch_free(DestBatch *b)
{
	if (b == NULL)
		return;
	for (size_t i = 0; i < b->n; i++)
		free(b->items[i].relpath);
	free(b);
}

DestRenames *
dest_renames_new(size_t cap)
{
	DestRenames *r = request_new(sizeof *r, sizeof r->items[0], cap);

	r->cap = cap;
	return r;
}

DestRename *
dest_renames_add(DestRenames *r, const char *from, const char *to,
    bool is_dir)
{
	DestRename *x = &r->items[next_item(&r->n, r->cap)];

	x->from = xstrdup(from);
	x->to = xstrdup(to);
	x->is_dir = is_dir;
	return x;
}

void
dest_renames_free(DestRenames *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->n; i++) {
		free(r->items[i].from);
		free(r->items[i].to);
	}
	free(r);
}
