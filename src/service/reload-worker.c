/*
 * reload-worker — see include/service/reload.h.
 *
 * DESIGN
 * One job per load, shared by the reactor and the load's thread, with a
 * lock of its own. The thread runs config_load on the job's copy of the
 * path, then under the lock either marks the job done and writes the
 * loader's eventfd (the reactor reads it, takes the result, frees the
 * job) or, when the loader was freed meanwhile (abandoned), frees the job
 * and the result itself. The eventfd is closed only after the job was
 * marked abandoned under the same lock, so the thread never writes to a
 * closed fd. Threads are detached and block every signal.
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

#include "service/reload.h"
#include "util/alloc.h"

typedef struct ReloadJob {
	pthread_mutex_t lock;
	char *path;
	int efd;		/* the loader's, while not abandoned */
	/* Written by the thread before done, read by the reactor after: */
	int r;
	Config *cfg;
	char *errors;
	bool done, abandoned;	/* under lock */
} ReloadJob;

struct ReloadLoader {
	int efd;
	struct event *ev;
	ReloadJob *job;		/* the load running, or NULL */
	ReloadDone done;
	void *arg;
};

static void
job_free(ReloadJob *job)
{
	pthread_mutex_destroy(&job->lock);
	free(job->path);
	free(job);
}

static void *
load_main(void *arg)
{
	ReloadJob *job = arg;
	Config *cfg = NULL;
	char *errors = NULL;
	int r;

	r = config_load(job->path, &cfg, &errors);
	pthread_mutex_lock(&job->lock);
	if (job->abandoned) {
		pthread_mutex_unlock(&job->lock);
		config_free(cfg);
		free(errors);
		job_free(job);
		return NULL;
	}
	job->r = r;
	job->cfg = cfg;
	job->errors = errors;
	job->done = true;
	{
		uint64_t one = 1;
		/* Cannot fail short of a bug: the counter never nears max. */
		if (write(job->efd, &one, sizeof one) < 0)
			abort();
	}
	pthread_mutex_unlock(&job->lock);
	return NULL;
}

static void
on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	ReloadLoader *l = arg;
	ReloadJob *job = l->job;
	uint64_t n;
	bool done;

	(void)what;
	if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN)
		return;
	if (job == NULL)
		return;
	pthread_mutex_lock(&job->lock);
	done = job->done;
	pthread_mutex_unlock(&job->lock);
	if (!done)
		return;
	l->job = NULL;
	/* The thread let go of the job when it set done. */
	l->done(job->r, job->cfg, job->errors, l->arg);
	job_free(job);
}

int
reload_loader_new(struct event_base *base, ReloadDone done, void *arg,
    ReloadLoader **ret)
{
	ReloadLoader *l = xcalloc(1, sizeof *l);

	l->done = done;
	l->arg = arg;
	if ((l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		int r = -errno;
		free(l);
		return r;
	}
	l->ev = event_new(base, l->efd, EV_READ | EV_PERSIST, on_eventfd, l);
	if (l->ev == NULL || event_add(l->ev, NULL) < 0) {
		if (l->ev != NULL)
			event_free(l->ev);
		close(l->efd);
		free(l);
		return -ENOMEM;
	}
	*ret = l;
	return 0;
}

int
reload_start(ReloadLoader *l, const char *path)
{
	ReloadJob *job;
	pthread_attr_t attr;
	pthread_t thread;
	sigset_t all, old;
	int r;

	if (l->job != NULL)
		return -EBUSY;
	job = xcalloc(1, sizeof *job);
	pthread_mutex_init(&job->lock, NULL);
	job->path = xstrdup(path);
	job->efd = l->efd;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&thread, &attr, load_main, job);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (r != 0) {
		job_free(job);
		return -r;
	}
	l->job = job;
	return 0;
}

bool
reload_running(const ReloadLoader *l)
{
	return l->job != NULL;
}

void
reload_loader_free(ReloadLoader *l)
{
	if (l == NULL)
		return;
	if (l->job != NULL) {
		ReloadJob *job = l->job;
		bool done;

		pthread_mutex_lock(&job->lock);
		done = job->done;
		job->abandoned = true;
		pthread_mutex_unlock(&job->lock);
		if (done) {	/* finished, its eventfd not read yet */
			config_free(job->cfg);
			free(job->errors);
			job_free(job);
		}
	}
	event_free(l->ev);
	close(l->efd);
	free(l);
}
