/*
 * map — see include/util/map.h.
 */
#include <stdlib.h>

#include "util/alloc.h"
#include "util/map.h"

#define MAP_MIN_BUCKETS 16

void
map_clear(Map *m)
{
	free(m->buckets);
	m->buckets = NULL;
	m->nbuckets = m->count = 0;
}

/* The bucket of a hash: the high bits, which FNV mixes best. */
static size_t
bucket_of(uint64_t hash, size_t nbuckets)
{
	return (size_t)(hash ^ (hash >> 29)) & (nbuckets - 1);
}

static void
grow(Map *m)
{
	size_t n = m->nbuckets != 0 ? m->nbuckets * 2 : MAP_MIN_BUCKETS;
	MapNode **b = xcalloc(n, sizeof *b);

	for (size_t i = 0; i < m->nbuckets; i++) {
		MapNode *node = m->buckets[i];

		while (node != NULL) {
			MapNode *next = node->next;
			size_t j = bucket_of(node->hash, n);

			node->next = b[j];
			b[j] = node;
			node = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

MapNode *
map_find(const Map *m, uint64_t hash, MapEqualFn equal, const void *key)
{
	if (m->nbuckets == 0)
		return NULL;
	for (MapNode *n = m->buckets[bucket_of(hash, m->nbuckets)]; n != NULL;
	    n = n->next)
		if (n->hash == hash && equal(n, key))
			return n;
	return NULL;
}

void
map_insert(Map *m, MapNode *node, uint64_t hash)
{
	size_t i;

	if (m->count >= m->nbuckets)
		grow(m);
	i = bucket_of(hash, m->nbuckets);
	node->hash = hash;
	node->next = m->buckets[i];
	m->buckets[i] = node;
	m->count++;
}

void
map_remove(Map *m, MapNode *node)
{
	MapNode **pp = &m->buckets[bucket_of(node->hash, m->nbuckets)];

	while (*pp != node)
		pp = &(*pp)->next;
	*pp = node->next;
	node->next = NULL;
	m->count--;
}

MapIter
map_iter(const Map *m)
{
	MapIter it = { m, 0, NULL };

	while (it.bucket < m->nbuckets && (it.next = m->buckets[it.bucket]) ==
	    NULL)
		it.bucket++;
	return it;
}

MapNode *
map_next(MapIter *it)
{
	MapNode *n = it->next;

	if (n == NULL)
		return NULL;
	if ((it->next = n->next) == NULL)
		while (++it->bucket < it->m->nbuckets &&
		    (it->next = it->m->buckets[it->bucket]) == NULL)
			;
	return n;
}

uint64_t
map_hash_bytes(const void *p, size_t n)
{
	const unsigned char *s = p;
	uint64_t h = 14695981039346656037ull;

	while (n-- > 0)
		h = (h ^ *s++) * 1099511628211ull;
	return h;
}

uint64_t
map_hash_str(const char *s)
{
	uint64_t h = 14695981039346656037ull;

	while (*s != '\0')
		h = (h ^ (unsigned char)*s++) * 1099511628211ull;
	return h;
}

uint64_t
map_hash_u64(uint64_t a, uint64_t b)
{
	uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull);

	h ^= h >> 32;
	h *= 0xd6e8feb86659fd93ull;
	return h ^ (h >> 32);
}
