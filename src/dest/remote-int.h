/*
 * remote-int — what dest/remote.c (reactor) and dest/remote-worker.c
 * (worker threads) share: the look at the source a batch or a compare
 * takes before anything goes to the host. A SourceLook is filled on the
 * reactor with copies (paths, root, expected identity), run on a worker,
 * which reads and writes only it, and finished on the reactor.
 */
#ifndef TREESYNC_DEST_REMOTE_INT_H
#define TREESYNC_DEST_REMOTE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "dest/dest.h"

#define REMOTE_BIG_BYTES (4u << 20)	/* a file this large goes in a run
					 * of its own */

/* What the source says about one path of a batch. */
typedef struct PathFact {
	bool exists;
	bool is_dir;
	bool is_file;
	uint64_t size;
	uint64_t nlink;
	uint64_t dev, ino;
	int err;		/* lstat's -errno other than ENOENT */
} PathFact;

typedef struct SourceLook {
	Job job;
	void *owner;		/* reactor side only */
	char *source;		/* copies */
	SourceIdentity expect;
	size_t n;
	char **paths;		/* n relative paths ("" the root) */
	/* Out: */
	PathFact *facts;	/* n */
	char **parents;		/* directories (not "") holding the paths
				 * that exist in the source, sorted, unique */
	size_t n_parents;
	bool root_empty;	/* the root has no entry (a compare's guard) */
	GuardFault fault;
	int err;		/* the source root cannot be opened */
	SourceIdentity seen;
} SourceLook;

/* remote-worker.c: worker thread */
void remote_look_run(Job *job);
void remote_look_free(SourceLook *l);

#endif
