/*
 * heap — see include/util/heap.h.
 */
#include <stdlib.h>

#include "util/alloc.h"
#include "util/heap.h"

#define HEAP_MIN_CAP 64

void
heap_clear(Heap *h)
{
	free(h->v);
	*h = (Heap)HEAP_INIT(h->less);
}

static void
put(Heap *h, size_t i, HeapNode *node)
{
	h->v[i] = node;
	node->index = i;
}

static void
sift_up(Heap *h, size_t i)
{
	HeapNode *node = h->v[i];

	while (i > 0 && h->less(node, h->v[(i - 1) / 2])) {
		put(h, i, h->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	put(h, i, node);
}

static void
sift_down(Heap *h, size_t i)
{
	HeapNode *node = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->less(h->v[c + 1], h->v[c]))
			c++;
		if (!h->less(h->v[c], node))
			break;
		put(h, i, h->v[c]);
		i = c;
	}
	put(h, i, node);
}

void
heap_push(Heap *h, HeapNode *node)
{
	xgrow(&h->v, &h->cap, h->n + 1, sizeof *h->v, HEAP_MIN_CAP);
	put(h, h->n++, node);
	sift_up(h, h->n - 1);
}

HeapNode *
heap_top(const Heap *h)
{
	return h->n > 0 ? h->v[0] : NULL;
}

HeapNode *
heap_pop(Heap *h)
{
	HeapNode *top = heap_top(h);

	if (top != NULL)
		heap_remove(h, top);
	return top;
}

void
heap_remove(Heap *h, HeapNode *node)
{
	size_t i = node->index;

	if (--h->n == i)
		return;
	put(h, i, h->v[h->n]);
	heap_update(h, h->v[i]);
}

void
heap_update(Heap *h, HeapNode *node)
{
	size_t i = node->index;

	if (i > 0 && h->less(node, h->v[(i - 1) / 2]))
		sift_up(h, i);
	else
		sift_down(h, i);
}
