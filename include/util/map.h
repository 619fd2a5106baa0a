/*
 * map — the one hash map: intrusive, chained, keyed by a 64-bit hash the
 * caller computes, with the caller's equality test. A MapNode is embedded
 * in the caller's struct (MAP_ENTRY gets the struct back), so an entry
 * costs no allocation of its own and the caller owns every entry; the map
 * owns only its bucket array.
 *
 * The table doubles when it holds as many entries as buckets, so a find
 * is O(1) on average. Not thread-safe: each map belongs to one thread.
 */
#ifndef TREESYNC_MAP_H
#define TREESYNC_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct MapNode {
	struct MapNode *next;
	uint64_t hash;
} MapNode;

typedef struct Map {
	MapNode **buckets;
	size_t nbuckets;	/* 0 or a power of two */
	size_t count;
} Map;

#define MAP_INIT { NULL, 0, 0 }
#define MAP_ENTRY(node, type, member) \
	((type *)(void *)((char *)(node) - offsetof(type, member)))

typedef bool (*MapEqualFn)(const MapNode *node, const void *key);

/* Frees the bucket array (not the entries); the map is empty again. */
void map_clear(Map *m);
/* The first entry with this hash for which equal(node, key) holds. */
MapNode *map_find(const Map *m, uint64_t hash, MapEqualFn equal,
    const void *key);
/* Adds node (not already in a map) under hash. */
void map_insert(Map *m, MapNode *node, uint64_t hash);
/* Takes node (which is in m) out. */
void map_remove(Map *m, MapNode *node);

/*
 * Every entry, in no particular order; the current entry may be removed
 * (or freed) before the next call:
 *   MapIter it = map_iter(&m);
 *   for (MapNode *n; (n = map_next(&it)) != NULL; ) ...
 */
typedef struct MapIter {
	const Map *m;
	size_t bucket;
	MapNode *next;
} MapIter;

MapIter map_iter(const Map *m);
MapNode *map_next(MapIter *it);

/* FNV-1a over bytes, and over a NUL-terminated string. */
uint64_t map_hash_bytes(const void *p, size_t n);
uint64_t map_hash_str(const char *s);
/* Two 64-bit words mixed (device and inode, say). */
uint64_t map_hash_u64(uint64_t a, uint64_t b);

#endif
