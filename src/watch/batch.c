/*
 * batch — the batch the watcher thread is filling and its hand-off to the
 * reactor through util/mailbox (see watcher.c's DESIGN); strings.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "watch-int.h"

void
sbuf_reserve(struct sbuf *b, size_t more)
{
	if (b->len + more + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + more + 1)
			cap *= 2;
		b->s = xrealloc(b->s, cap);
		b->cap = cap;
	}
}

void
sbuf_set(struct sbuf *b, const char *s, size_t len)
{
	b->len = 0;
	sbuf_reserve(b, len);
	memcpy(b->s, s, len);
	b->len = len;
	b->s[len] = '\0';
}

void
sbuf_join(struct sbuf *b, const char *name)
{
	size_t n = strlen(name);

	sbuf_reserve(b, n + 1);
	if (b->len > 0)
		b->s[b->len++] = '/';
	memcpy(b->s + b->len, name, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static struct batch *
cur_batch(Watcher *w)
{
	if (w->cur == NULL) {
		w->cur = xcalloc(1, sizeof *w->cur);
		w->cur->seq = w->seq_done;
	}
	return w->cur;
}

void
watch_emit_event(Watcher *w, unsigned root, uint32_t mask, uint32_t cookie,
    bool synthetic, const char *relpath, size_t len)
{
	struct batch *b = cur_batch(w);
	WatchEvent *e;

	if (b->pub.n == b->cap_events) {
		b->cap_events = b->cap_events ? 2 * b->cap_events : 64;
		b->pub.events = xrealloc(b->pub.events,
		    b->cap_events * sizeof *b->pub.events);
	}
	sbuf_reserve(&b->strings, len);
	e = &b->pub.events[b->pub.n++];
	e->root = root;
	e->mask = mask;
	e->cookie = cookie;
	e->synthetic = synthetic;
	/* An offset until the batch is sealed: strings may still move. */
	e->relpath = (char *)(uintptr_t)b->strings.len;
	memcpy(b->strings.s + b->strings.len, relpath, len);
	b->strings.len += len;
	b->strings.s[b->strings.len++] = '\0';
	if (b->pub.n >= BATCH_CAP)
		watch_hand_off(w);
}

WatchNotice *
watch_emit_notice(Watcher *w, WatchNoticeKind kind, unsigned root, int error,
    size_t needed, size_t placed)
{
	struct batch *b = cur_batch(w);

	if (b->pub.n_notices == b->cap_notices) {
		b->cap_notices = b->cap_notices ? 2 * b->cap_notices : 4;
		b->pub.notices = xrealloc(b->pub.notices,
		    b->cap_notices * sizeof *b->pub.notices);
	}
	b->pub.notices[b->pub.n_notices] = (WatchNotice){
		.kind = kind, .root = root, .error = error,
		.dirs_needed = needed, .dirs_placed = placed,
	};
	return &b->pub.notices[b->pub.n_notices++];
}

void
watch_set_overflow(Watcher *w)
{
	cur_batch(w)->pub.overflow = true;
}

void
watch_hand_off(Watcher *w)
{
	struct batch *b = w->cur;

	if (b == NULL && w->tree_gen != w->counted_gen && w->roots != NULL)
		b = cur_batch(w);
	if (b == NULL)
		return;
	w->cur = NULL;
	watch_count_nodes(w, b);
	if (b->pub.n == 0 && b->pub.n_notices == 0 && !b->pub.overflow &&
	    b->pub.n_counts == 0) {
		watcher_batch_free(&b->pub);
		return;
	}
	for (size_t i = 0; i < b->pub.n; i++)
		b->pub.events[i].relpath = b->strings.s +
		    (uintptr_t)b->pub.events[i].relpath;
	/* Counted before the post: the reactor subtracts what it takes. */
	pthread_mutex_lock(&w->lock);
	w->out_events += b->pub.n;
	pthread_mutex_unlock(&w->lock);
	mailbox_post(w->out, &b->item);
}

void
watcher_batch_free(WatchBatch *batch)
{
	struct batch *b = (struct batch *)batch;

	if (b == NULL)
		return;
	free(b->pub.events);
	free(b->pub.notices);
	free(b->pub.counts);
	free(b->strings.s);
	free(b);
}
