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

/*
 * A remote host destinations may name ("NAME:/abs/path", SPEC "Remote
 * destinations"): how to reach it over ssh. service/config-remotes.c
 * fills it; dest/remote*.c reads it.
 */
typedef struct RemoteConfig {
	char *name;
	char *host;		/* a host name or address (never starts with '-') */
	int port;		/* 1..65535, default 22 */
	char *user;		/* NULL: ssh's default (the daemon's user) */
	char *identity;		/* the private key, absolute */
	char *known_hosts;	/* the pinned host keys, absolute */
	unsigned long long bwlimit_kib;	/* rsync --bwlimit, KiB/s; 0: none */
	int timeout_s;		/* rsync --timeout, ssh's ConnectTimeout and
				 * keep-alives, an ops answer: default 30 */
	char *control_path;	/* the ssh master's socket (beside the
				 * control socket) */
	int line;		/* its group, for messages */
	int identity_line;
	int known_hosts_line;
} RemoteConfig;

typedef struct SyncPairConfig {
	char *name;
	char *source;		/* absolute, normalized, no trailing '/' */
	char **destinations;	/* absolute, normalized; a remote one as
				 * "NAME:/abs/path" */
	size_t n_destinations;
	const RemoteConfig **dest_remotes;	/* parallel to destinations:
				 * the remote of "NAME:/path", NULL for a
				 * local path (the Config owns them) */
	Exclude *exclude;	/* never NULL (may hold no pattern) */
	bool delete;		/* propagate deletions; default true */
	CompareMode compare;
	MaxDelete max_delete;	/* its own, else the global one */
	int line;		/* line of this sync's group, for messages */
	int source_line;	/* line of its source setting, for messages */
	int *destination_lines;	/* parallel to destinations, for messages */
} SyncPairConfig;

#endif
