/*
 * diff — see include/service/diff.h.
 *
 * Each destination's pass reports its steps into its own ItemList; the
 * last pass to finish renders every list into one answer, in the pair's
 * order of destinations, and hands it to the client. The answer's size
 * is bounded by splitting DIFF_ANSWER_MAX between the lists: past its
 * share a list only counts its lines ("... and N more lines").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "engine/itemize.h"
#include "service/diff.h"
#include "util/synclog.h"

struct Diff {
	const SyncPairConfig *pair;
	ControlClient *client;	/* NULL once it went */
	DiffDoneFn done;
	void *done_arg;
	bool held;		/* the pair's deletes are held */
	FullSync **passes;
	ItemList *items;
	size_t n;
	size_t finished;
};

static void
client_gone(void *arg)
{
	Diff *d = arg;

	d->client = NULL;
}

static void
add_line(void *arg, const char *line)
{
	evbuffer_add_printf(arg, "%s\n", line);
}

/* Every pass is done: the answer, then the owner frees us. */
static void
answer(Diff *d)
{
	struct evbuffer *body = evbuffer_new();
	size_t lines = 0;

	for (size_t i = 0; body != NULL && i < d->n; i++)
		lines += itemize_render(&d->items[i], d->pair,
		    d->pair->destinations[i], fullsync_stats(d->passes[i]),
		    d->held, add_line, body);
	synclog_msg(LOG_LEVEL_INFO, "%s: treesyncctl diff: %s", d->pair->name,
	    lines == 0 ? "every destination matches its source" :
	    "a full sync would change something");
	if (d->client != NULL) {
		if (body == NULL) {
			if ((body = evbuffer_new()) != NULL)
				evbuffer_add_printf(body, "out of memory\n");
			if (body != NULL)
				control_answer(d->client, -1, body);
		} else {
			control_answer(d->client, 0, body);
		}
		d->client = NULL;
	}
	if (body != NULL)
		evbuffer_free(body);
}

static void
on_pass_done(FullSync *fs, void *arg)
{
	Diff *d = arg;

	(void)fs;
	if (++d->finished < d->n)
		return;
	answer(d);
	d->done(d, d->done_arg);	/* may free d, and fs with it */
}

int
diff_new(Pool *pool, const SyncPairConfig *pair, const FullSyncOptions *opt,
    ControlClient *client, DiffDoneFn done, void *arg, Diff **ret)
{
	FullSyncOptions o = *opt;
	Diff *d = calloc(1, sizeof *d);
	size_t share;
	int r = -ENOMEM;

	if (d == NULL)
		return -ENOMEM;
	d->pair = pair;
	d->client = client;
	d->done = done;
	d->done_arg = arg;
	d->held = opt->hold_deletes;
	d->passes = calloc(pair->n_destinations, sizeof *d->passes);
	d->items = calloc(pair->n_destinations, sizeof *d->items);
	if (d->passes == NULL || d->items == NULL)
		goto fail;
	share = DIFF_ANSWER_MAX / (pair->n_destinations ?
	    pair->n_destinations : 1);
	/* A dry run of the whole tree; its failures are no retries. */
	o.dry_run = true;
	o.will_retry = false;
	o.force = false;
	o.report = itemize_step;
	for (size_t i = 0; i < pair->n_destinations; i++) {
		itemize_init(&d->items[i], opt->preserve_owner, share);
		o.report_arg = &d->items[i];
		if ((r = fullsync_new(pool, pair, pair->destinations[i], "", &o,
		    on_pass_done, d, &d->passes[i])) < 0)
			goto fail;
		d->n++;
	}
	if (d->n == 0) {
		r = -EINVAL;
		goto fail;
	}
	control_defer(client, client_gone, d);
	for (size_t i = 0; i < d->n; i++)
		fullsync_start(d->passes[i]);
	*ret = d;
	return 0;
fail:
	d->client = NULL;
	diff_free(d);
	return r;
}

void
diff_stop(Diff *d)
{
	for (size_t i = 0; i < d->n; i++)
		fullsync_stop(d->passes[i]);
}

size_t
diff_jobs_out(const Diff *d)
{
	size_t n = 0;

	for (size_t i = 0; i < d->n; i++)
		n += fullsync_jobs_out(d->passes[i]);
	return n;
}

void
diff_free(Diff *d)
{
	if (d == NULL)
		return;
	/* Still waiting (shutdown): no answer comes, and no "gone" call
	 * may reach us once we are freed. */
	if (d->client != NULL)
		control_defer(d->client, NULL, NULL);
	for (size_t i = 0; i < d->n; i++)
		fullsync_free(d->passes[i]);
	for (size_t i = 0; d->items != NULL && i < d->pair->n_destinations;
	    i++)
		itemize_free(&d->items[i]);
	free(d->passes);
	free(d->items);
	free(d);
}
