/*
 * test-util — the base layer: the hash map and the heap (each against a
 * plain array as the reference), path predicates, the grow helper.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/heap.h"
#include "util/map.h"
#include "util/path.h"

typedef struct Entry {
	MapNode node;
	int key;
	bool in;
} Entry;

static bool
entry_is(const MapNode *n, const void *key)
{
	return MAP_ENTRY(n, Entry, node)->key == *(const int *)key;
}

static uint64_t
key_hash(int key)
{
	/* Few distinct hashes: chains of several entries are exercised. */
	return map_hash_u64((uint64_t)(key % 97), 7);
}

START_TEST(test_map_against_reference)
{
	enum { N = 5000 };
	Entry *e = xcalloc(N, sizeof *e);
	Map m = MAP_INIT;
	unsigned seed = 1;
	size_t in = 0;

	for (int i = 0; i < N; i++)
		e[i].key = i;
	for (int step = 0; step < 200000; step++) {
		int k = (int)(rand_r(&seed) % N);
		MapNode *f = map_find(&m, key_hash(k), entry_is, &k);

		ck_assert_ptr_eq(f, e[k].in ? &e[k].node : NULL);
		if (e[k].in) {
			map_remove(&m, &e[k].node);
			e[k].in = false;
			in--;
		} else {
			map_insert(&m, &e[k].node, key_hash(k));
			e[k].in = true;
			in++;
		}
		ck_assert_uint_eq(m.count, in);
	}
	/* Iteration sees every entry once, and may remove as it goes. */
	{
		MapIter it = map_iter(&m);
		size_t seen = 0;

		for (MapNode *n; (n = map_next(&it)) != NULL; seen++) {
			Entry *x = MAP_ENTRY(n, Entry, node);

			ck_assert(x->in);
			map_remove(&m, n);
			x->in = false;
		}
		ck_assert_uint_eq(seen, in);
		ck_assert_uint_eq(m.count, 0);
	}
	map_clear(&m);
	free(e);
}
END_TEST

START_TEST(test_map_empty)
{
	Map m = MAP_INIT;
	int k = 3;
	MapIter it = map_iter(&m);

	ck_assert_ptr_null(map_find(&m, 1, entry_is, &k));
	ck_assert_ptr_null(map_next(&it));
	map_clear(&m);
	ck_assert_uint_ne(map_hash_str("a"), map_hash_str("b"));
	ck_assert_uint_eq(map_hash_str("abc"), map_hash_bytes("abc", 3));
}
END_TEST

typedef struct Item {
	HeapNode node;
	int key;
	int seq;		/* ties: the heap's order is (key, seq) */
	bool in;
} Item;

static bool
item_less(const HeapNode *a, const HeapNode *b)
{
	const Item *x = HEAP_ENTRY(a, Item, node), *y = HEAP_ENTRY(b, Item,
	    node);

	return x->key != y->key ? x->key < y->key : x->seq < y->seq;
}

/* The least item that is in, by a walk: what heap_top must give. */
static Item *
least(Item *v, size_t n)
{
	Item *best = NULL;

	for (size_t i = 0; i < n; i++)
		if (v[i].in && (best == NULL || item_less(&v[i].node,
		    &best->node)))
			best = &v[i];
	return best;
}

START_TEST(test_heap_against_reference)
{
	enum { N = 300 };	/* the reference is a walk: keep it small */
	Item *v = xcalloc(N, sizeof *v);
	Heap h = HEAP_INIT(item_less);
	unsigned seed = 7;
	size_t in = 0;

	for (int i = 0; i < N; i++)
		v[i].seq = i;
	for (int step = 0; step < 30000; step++) {
		Item *x = &v[rand_r(&seed) % N], *top;
		unsigned op = rand_r(&seed) % 4;

		if (!x->in) {
			x->key = (int)(rand_r(&seed) % 40);	/* many ties */
			heap_push(&h, &x->node);
			x->in = true;
			in++;
		} else if (op == 0) {
			heap_remove(&h, &x->node);		/* any node */
			x->in = false;
			in--;
		} else if (op == 1) {
			x->key = (int)(rand_r(&seed) % 50);	/* re-keyed */
			heap_update(&h, &x->node);
		} else if (op == 2 && (top = least(v, N)) != NULL) {
			ck_assert_ptr_eq(heap_pop(&h), &top->node);
			top->in = false;
			in--;
		}
		ck_assert_uint_eq(heap_count(&h), in);
		top = least(v, N);
		ck_assert_ptr_eq(heap_top(&h), top != NULL ? &top->node : NULL);
		/* Each node knows where it is. */
		for (size_t i = 0; i < h.n && step % 1000 == 0; i++)
			ck_assert_uint_eq(h.v[i]->index, i);
	}
	/* Popping all gives them in order. */
	for (Item *prev = NULL, *x; heap_count(&h) > 0; prev = x) {
		x = HEAP_ENTRY(heap_pop(&h), Item, node);
		if (prev != NULL)
			ck_assert(!item_less(&x->node, &prev->node));
	}
	ck_assert_ptr_null(heap_pop(&h));
	heap_clear(&h);
	free(v);
}
END_TEST

START_TEST(test_path_under)
{
	ck_assert(path_under("", "a"));
	ck_assert(path_under("", ""));
	ck_assert(path_under("a", "a"));
	ck_assert(path_under("a", "a/b"));
	ck_assert(!path_under("a", "ab"));
	ck_assert(!path_under("a/b", "a"));
	ck_assert(path_strictly_under("a", "a/b"));
	ck_assert(!path_strictly_under("a", "a"));
	ck_assert(path_strictly_under("", "a"));
	ck_assert(!path_strictly_under("", ""));
	ck_assert(path_strictly_under("/srv", "/srv/x"));
	ck_assert(!path_strictly_under("/srv", "/srvx"));
	ck_assert_uint_eq(path_depth(""), 0);
	ck_assert_uint_eq(path_depth("a/b/c"), 2);
}
END_TEST

START_TEST(test_path_split)
{
	char parent[64];
	const char *base;

	path_split("a/b/c", parent, sizeof parent, &base);
	ck_assert_str_eq(parent, "a/b");
	ck_assert_str_eq(base, "c");
	path_split("top", parent, sizeof parent, &base);
	ck_assert_str_eq(parent, "");
	ck_assert_str_eq(base, "top");
}
END_TEST

START_TEST(test_xgrow)
{
	int *v = NULL;
	size_t cap = 0;

	for (size_t i = 0; i < 1000; i++) {
		xgrow(&v, &cap, i + 1, sizeof *v, 8);
		ck_assert_uint_ge(cap, i + 1);
		v[i] = (int)i;
	}
	for (size_t i = 0; i < 1000; i++)
		ck_assert_int_eq(v[i], (int)i);
	ck_assert_uint_eq(cap, 1024);
	free(v);
}
END_TEST

static Suite *
util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc = tcase_create("util");

	/* check's default is 4 s: a loaded machine (or valgrind) needs more. */
	tcase_set_timeout(tc, 120);

	tcase_add_test(tc, test_map_against_reference);
	tcase_add_test(tc, test_map_empty);
	tcase_add_test(tc, test_heap_against_reference);
	tcase_add_test(tc, test_path_under);
	tcase_add_test(tc, test_path_split);
	tcase_add_test(tc, test_xgrow);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(util_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
