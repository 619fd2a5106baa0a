/*
 * pool — see include/engine/pool.h.
 *
 * DESIGN
 * Out: a FIFO of jobs under `lock`, workers sleep on `wake`.
 * In: util/mailbox, the completion path every thread shares (a locked
 * list plus an eventfd the reactor watches, written only when the list
 * goes from empty to non-empty, so a burst of completions costs one
 * wake-up); the reactor gets the finished jobs in the order they finished
 * and runs done() after the mailbox's lock is released.
 * Two locks, never held together: `lock` (the queue) and the mailbox's.
 * Workers block every signal, so signals reach the reactor's loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "engine/pool.h"
#include "util/mailbox.h"

struct Pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	Job *queue_head, *queue_tail;	/* waiting to run */
	bool stopping;
	Mailbox *finished;		/* run, waiting for done() */
	pthread_t *threads;
	int n_threads;
	size_t in_flight;		/* reactor's count: submitted - done */
};

static void *
worker_main(void *arg)
{
	Pool *pool = arg;

	pthread_mutex_lock(&pool->lock);
	for (;;) {
		Job *job;

		while (pool->queue_head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->wake, &pool->lock);
		if (pool->stopping)
			break;
		job = pool->queue_head;
		pool->queue_head = job->next;
		if (pool->queue_head == NULL)
			pool->queue_tail = NULL;
		pthread_mutex_unlock(&pool->lock);

		job->run(job);
		mailbox_post(pool->finished, &job->finished);

		pthread_mutex_lock(&pool->lock);
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* Runs done() for finished jobs, in the order they finished. */
static void
run_done(MailboxItem *list, void *arg)
{
	Pool *pool = arg;

	while (list != NULL) {
		Job *job = MAILBOX_ENTRY(list, Job, finished);
		list = list->next;
		pool->in_flight--;
		job->done(job);
	}
}

int
pool_new(struct event_base *base, int nthreads, Pool **ret)
{
	Pool *pool;
	sigset_t all, old;
	int r = 0;

	if (nthreads < 1)
		return -EINVAL;
	if ((pool = calloc(1, sizeof *pool)) == NULL)
		return -ENOMEM;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->wake, NULL);
	if ((r = mailbox_new(base, run_done, pool, &pool->finished)) < 0)
		goto fail;
	if ((pool->threads = calloc((size_t)nthreads,
	    sizeof *pool->threads)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < nthreads; i++) {
		int e = pthread_create(&pool->threads[i], NULL, worker_main,
		    pool);
		if (e != 0) {
			r = -e;
			break;
		}
		pool->n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r < 0)
		goto fail;
	*ret = pool;
	return 0;
fail:
	pool_free(pool);
	return r;
}

void
pool_submit(Pool *pool, Job *job)
{
	job->next = NULL;
	job->cancelled = false;
	pool->in_flight++;
	pthread_mutex_lock(&pool->lock);
	if (pool->queue_tail != NULL)
		pool->queue_tail->next = job;
	else
		pool->queue_head = job;
	pool->queue_tail = job;
	pthread_cond_signal(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
}

size_t
pool_in_flight(const Pool *pool)
{
	return pool->in_flight;
}

int
pool_threads(const Pool *pool)
{
	return pool->n_threads;
}

void
pool_free(Pool *pool)
{
	Job *queued;

	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->wake);
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < pool->n_threads; i++)
		pthread_join(pool->threads[i], NULL);

	/* Jobs that ran get their done(); queued ones are cancelled. */
	if (pool->finished != NULL)
		run_done(mailbox_take(pool->finished), pool);
	queued = pool->queue_head;
	pool->queue_head = pool->queue_tail = NULL;
	while (queued != NULL) {
		Job *next = queued->next;
		queued->cancelled = true;
		pool->in_flight--;
		queued->done(queued);
		queued = next;
	}
	mailbox_free(pool->finished);
	free(pool->threads);
	pthread_cond_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}
