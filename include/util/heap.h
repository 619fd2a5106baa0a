/*
 * heap — the one binary min-heap: nodes embedded in the caller's structs
 * (HEAP_ENTRY gets the struct back), ordered by the caller's less(). Each
 * node keeps its index in the heap, so any node, not only the top, can
 * be removed or moved after its key changed in O(log n). The heap owns
 * only its array; the caller owns every node.
 *
 * Not thread-safe: each heap belongs to one thread (live's pending
 * paths: the reactor).
 */
#ifndef TREESYNC_HEAP_H
#define TREESYNC_HEAP_H

#include <stdbool.h>
#include <stddef.h>

typedef struct HeapNode {
	size_t index;		/* where it sits in its heap's array */
} HeapNode;

/* a sorts before b (strictly). */
typedef bool (*HeapLessFn)(const HeapNode *a, const HeapNode *b);

typedef struct Heap {
	HeapNode **v;
	size_t n;
	size_t cap;
	HeapLessFn less;
} Heap;

#define HEAP_INIT(less) { NULL, 0, 0, (less) }
#define HEAP_ENTRY(node, type, member) \
	((type *)(void *)((char *)(node) - offsetof(type, member)))

/* Frees the array (not the nodes); the heap is empty again (same less). */
void heap_clear(Heap *h);
/* Adds node (not in any heap). */
void heap_push(Heap *h, HeapNode *node);
/* The least node, or NULL when empty; it stays in. */
HeapNode *heap_top(const Heap *h);
/* Takes the least node out; NULL when empty. */
HeapNode *heap_pop(Heap *h);
/* Takes node (which is in h) out. */
void heap_remove(Heap *h, HeapNode *node);
/* node's key changed (either way): moves it to its place. */
void heap_update(Heap *h, HeapNode *node);

static inline size_t
heap_count(const Heap *h)
{
	return h->n;
}

#endif
