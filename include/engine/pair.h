/*
 * pair — what one sync pair is, as the engine, live sync and the service
 * layer share it: source, destinations, excludes, and the options that
 * decide what a destination must look like (delete, compare, max_delete).
 *
 * Plain data. service/config.c fills and frees it (config_load,
 * config_free); every other module only reads it, on the reactor thread,
 * or hands copies of what it needs to workers.
 */
#ifndef TREESYNC_PAIR_H
#define TREESYNC_PAIR_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/exclude.h"

typedef enum {
	COMPARE_MTIME = 0,	/* size + mtime (ns) quick check */
	COMPARE_HASH,		/* content hash (xxh3) when sizes are equal */
} CompareMode;

/* max_delete: entries one compare pass may delete (SPEC: safety guards). */
typedef enum {
	MAX_DELETE_NONE = 0,	/* no limit (the default) */
	MAX_DELETE_COUNT,	/* max_delete = 1000; */
	MAX_DELETE_PERCENT,	/* max_delete = "10%"; of the destination */
} MaxDeleteKind;

typedef struct MaxDelete {
	MaxDeleteKind kind;
	unsigned long long value;	/* entries, or percent 0..100 */
} MaxDelete;

typedef struct SyncPairConfig {
	char *name;
	char *source;		/* absolute, normalized, no trailing '/' */
	char **destinations;	/* absolute, normalized */
	size_t n_destinations;
	Exclude *exclude;	/* never NULL (may hold no pattern) */
	bool delete;		/* propagate deletions; default true */
	CompareMode compare;
	MaxDelete max_delete;	/* its own, else the global one */
	int line;		/* line of this sync's group, for messages */
	int source_line;	/* line of its source setting, for messages */
	int *destination_lines;	/* parallel to destinations, for messages */
} SyncPairConfig;

#endif
