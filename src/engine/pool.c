/*
 * pool — see include/engine/pool.h.
 *
 * DESIGN
 * Out: a FIFO of jobs under `lock`, workers sleep on `wake`.
 * In: a LIFO list of finished jobs under the same lock, plus an eventfd
 * the reactor watches. A worker writes the eventfd only when the finished
 * list goes from empty to non-empty, so a burst of completions costs one
 * wake-up; the reactor takes the whole list under the lock, reverses it to
 * submission order and runs done() after unlocking.
 * One lock is enough: both critical sections are a few pointer moves.
 * Workers block every signal, so signals reach the reactor's loop.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine/pool.h"

struct Pool {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	Job *queue_head, *queue_tail;	/* waiting to run */
	Job *finished;			/* LIFO, waiting for done() */
	bool stopping;
	int efd;
	struct event *ev;
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
		bool was_empty;

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

		pthread_mutex_lock(&pool->lock);
		was_empty = pool->finished == NULL;
		job->next = pool->finished;
		pool->finished = job;
		if (was_empty) {
			uint64_t one = 1;
			/* Cannot fail short of a bug: the counter never nears max. */
			if (write(pool->efd, &one, sizeof one) < 0)
				abort();
		}
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

/* Takes every finished job and runs done() in submission order. */
static void
drain_finished(Pool *pool)
{
	Job *list, *rev = NULL;

	pthread_mutex_lock(&pool->lock);
	list = pool->finished;
	pool->finished = NULL;
	pthread_mutex_unlock(&pool->lock);

	while (list != NULL) {
		Job *next = list->next;
		list->next = rev;
		rev = list;
		list = next;
	}
	while (rev != NULL) {
		Job *next = rev->next;
		pool->in_flight--;
		rev->done(rev);
		rev = next;
	}
}

static void
on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		return;
	drain_finished(arg);
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
	pool->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (pool->efd < 0) {
		r = -errno;
		goto fail;
	}
	pool->ev = event_new(base, pool->efd, EV_READ | EV_PERSIST,
	    on_eventfd, pool);
	if (pool->ev == NULL || event_add(pool->ev, NULL) < 0) {
		r = -ENOMEM;
		goto fail;
	}
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
	drain_finished(pool);
	queued = pool->queue_head;
	pool->queue_head = pool->queue_tail = NULL;
	while (queued != NULL) {
		Job *next = queued->next;
		queued->cancelled = true;
		pool->in_flight--;
		queued->done(queued);
		queued = next;
	}
	if (pool->ev != NULL)
		event_free(pool->ev);
	if (pool->efd >= 0)
		close(pool->efd);
	free(pool->threads);
	pthread_cond_destroy(&pool->wake);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}
