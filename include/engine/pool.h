/*
 * pool — a fixed set of worker threads that run every blocking file
 * operation, and the completion path back to the reactor.
 *
 * A Job is embedded in a larger struct that holds its inputs and outputs.
 * The reactor thread fills it and calls pool_submit; a worker calls
 * job->run (which may only touch the job's own struct); the reactor then
 * calls job->done from its event loop, and done() frees the job.
 *
 * Thread: pool_new, pool_submit, pool_in_flight and pool_free are for the
 * reactor thread only.
 */
#ifndef TREESYNC_POOL_H
#define TREESYNC_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "util/mailbox.h"

struct event_base;

typedef struct Job Job;
typedef void (*JobFn)(Job *job);

struct Job {
	JobFn run;		/* on a worker thread */
	JobFn done;		/* on the reactor thread; frees the job */
	bool cancelled;		/* set when pool_free discards a queued job */
	Job *next;		/* owned by the pool while queued */
	MailboxItem finished;	/* owned by the pool once run */
};

typedef struct Pool Pool;

/* Starts nthreads workers and registers the completion eventfd in base. */
int pool_new(struct event_base *base, int nthreads, Pool **ret);
void pool_submit(Pool *pool, Job *job);
/* Jobs submitted whose done() has not run yet. */
size_t pool_in_flight(const Pool *pool);
int pool_threads(const Pool *pool);
/*
 * Stops the workers: running jobs finish, queued ones are not run; every
 * job that has not had done() gets it now (queued ones with cancelled set),
 * so their owners can release them. NULL is fine.
 */
void pool_free(Pool *pool);

#endif
