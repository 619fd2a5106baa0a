/*
 * local-int — what dest/local.c (reactor) and dest/local-worker.c
 * (worker threads) share: the jobs. A job is filled on the reactor,
 * run on a worker, which reads and writes only the job and the request
 * it carries (the destination's while it is out), and finished on the
 * reactor.
 */
#ifndef TREESYNC_DEST_LOCAL_INT_H
#define TREESYNC_DEST_LOCAL_INT_H

#include "dest/dest.h"

#define LOCAL_BATCH_PATHS 64
#define LOCAL_BATCH_BYTES (4u << 20)	/* a batch copies at most this much
					 * before handing the rest back */

typedef struct LocalDest LocalDest;

/* A batch of paths or a list of renames, for one worker. */
typedef struct LocalJob {
	Job job;
	LocalDest *ld;		/* reactor side only (done) */
	char *source;		/* the worker's copies of the roots */
	char *root;
	DestBatch *b;		/* one of the two */
	DestRenames *r;
	size_t *order;		/* b's items sorted by parent directory */
} LocalJob;

/* local-worker.c: worker thread */
void local_batch_run(Job *job);
void local_rename_run(Job *job);

#endif
