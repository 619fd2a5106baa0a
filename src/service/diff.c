/*
 * diff — see include/service/diff.h.
 *
 * Each destination's pass reports its steps into its own ItemList; the
 * last pass to finish renders every list into one answer, in the pair's
 * order of destinations, hands it to the client, and the diff frees
 * itself (inside that pass's done callback, which fullsync allows). The
 * answer's size is bounded by splitting DIFF_ANSWER_MAX between the
 * lists: past its share a list only counts its lines ("... and N more
 * lines").
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
	Diff *next;		/* in the caller's list */
	Diff **list;
	const SyncPairConfig *pair;
	ControlClient *client;	/* NULL once it went */
	void (*release)(void *arg);
	void *release_arg;
	bool held;		/* the pair's deletes are held */
	FullSync **passes;
	ItemList *items;
	size_t n;
	size_t finished;
};

static void
diff_free(Diff *d)
{
	/* Still waiting (shutdown): no answer comes, and no "gone" call
	 * may reach us once we are freed. */
	if (d->client != NULL)
		control_on_gone(d->client, NULL, NULL);
	for (size_t i = 0; i < d->n; i++)
		fullsync_free(d->passes[i]);
	for (size_t i = 0; d->items != NULL && i < d->pair->n_destinations;
	    i++)
		itemize_free(&d->items[i]);
	if (d->release != NULL)
		d->release(d->release_arg);
	free(d->passes);
	free(d->items);
	free(d);
}

static void
unlink_diff(Diff *d)
{
	Diff **pp = d->list;

	while (*pp != d)
		pp = &(*pp)->next;
	*pp = d->next;
}

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

/* Every pass is done: the answer. */
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
	if (d->client != NULL && body == NULL &&
	    (body = evbuffer_new()) != NULL) {
		evbuffer_add_printf(body, "out of memory\n");
		control_answer(d->client, -1, body);
	} else if (d->client != NULL && body != NULL) {
		control_answer(d->client, 0, body);
	}
	d->client = NULL;
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
	unlink_diff(d);
	diff_free(d);	/* fs with it: the last thing its pass calls */
}

int
diff_start(Diff **list, Pool *pool, const SyncPairConfig *pair,
    const FullSyncOptions *opt, ControlClient *client,
    void (*release)(void *arg), void *release_arg)
{
	FullSyncOptions o = *opt;
	Diff *d = calloc(1, sizeof *d);
	size_t share;

	if (d == NULL)
		return -ENOMEM;
	d->pair = pair;
	d->held = opt->hold_deletes;
	d->passes = calloc(pair->n_destinations, sizeof *d->passes);
	d->items = calloc(pair->n_destinations, sizeof *d->items);
	if (d->passes == NULL || d->items == NULL || pair->n_destinations == 0)
		goto fail;
	share = DIFF_ANSWER_MAX / pair->n_destinations;
	/* A dry run of the whole tree; its failures are no retries. */
	o.dry_run = true;
	o.will_retry = false;
	o.force = false;
	o.report = itemize_step;
	for (size_t i = 0; i < pair->n_destinations; i++) {
		itemize_init(&d->items[i], opt->preserve_owner, share);
		o.report_arg = &d->items[i];
		if (fullsync_new(pool, pair, pair->destinations[i], "", &o,
		    on_pass_done, d, &d->passes[i]) < 0)
			goto fail;
		d->n++;
	}
	d->client = client;
	d->release = release;
	d->release_arg = release_arg;
	d->list = list;
	d->next = *list;
	*list = d;
	control_on_gone(client, client_gone, d);
	synclog_msg(LOG_LEVEL_INFO, "%s: treesyncctl diff: comparing %zu "
	    "destination%s (dry run: nothing is changed)", pair->name,
	    pair->n_destinations, pair->n_destinations == 1 ? "" : "s");
	for (size_t i = 0; i < d->n; i++)
		fullsync_start(d->passes[i]);
	return 0;
fail:
	diff_free(d);
	return -ENOMEM;
}

void
diff_stop_all(Diff *list)
{
	for (Diff *d = list; d != NULL; d = d->next)
		for (size_t i = 0; i < d->n; i++)
			fullsync_stop(d->passes[i]);
}

void
diff_free_all(Diff **list)
{
	while (*list != NULL) {
		Diff *d = *list;
		*list = d->next;
		diff_free(d);
	}
}
