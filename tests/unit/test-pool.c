/*
 * Unit tests for pool: every job runs once on a worker and gets done()
 * once on the reactor thread; pool_free cancels what is still queued.
 * Run under TSan too (scripts/test.sh, build-tsan): the hand-off between
 * the reactor and the workers is what it checks for races.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine/pool.h"

typedef struct TestJob {
	Job job;
	int input;
	int output;		/* written by the worker */
	int runs;		/* by the worker */
	pthread_t ran_on;
	int dones;		/* by the reactor */
	bool was_cancelled;
} TestJob;

static pthread_t reactor;
static struct event_base *base;
static size_t n_done, n_expected;
static sem_t started, release;

static void
run_double(Job *job)
{
	TestJob *t = (TestJob *)job;

	t->runs++;
	t->ran_on = pthread_self();
	t->output = t->input * 2;
}

static void
done_count(Job *job)
{
	TestJob *t = (TestJob *)job;

	ck_assert(pthread_equal(pthread_self(), reactor));
	t->dones++;
	t->was_cancelled = job->cancelled;
	if (++n_done == n_expected)
		event_base_loopbreak(base);
}

static void
setup(void)
{
	reactor = pthread_self();
	base = event_base_new();
	ck_assert_ptr_nonnull(base);
	n_done = n_expected = 0;
}

static void
teardown(void)
{
	event_base_free(base);
}

START_TEST(test_every_job_runs_once_and_comes_back)
{
	enum { N = 3000 };
	TestJob *jobs = calloc(N, sizeof *jobs);
	Pool *pool = NULL;

	ck_assert_ptr_nonnull(jobs);
	ck_assert_int_eq(pool_new(base, 4, &pool), 0);
	ck_assert_int_eq(pool_threads(pool), 4);
	n_expected = N;
	for (int i = 0; i < N; i++) {
		jobs[i].job.run = run_double;
		jobs[i].job.done = done_count;
		jobs[i].input = i;
		pool_submit(pool, &jobs[i].job);
	}
	ck_assert_uint_eq(pool_in_flight(pool), N);
	ck_assert_int_eq(event_base_dispatch(base), 0);
	ck_assert_uint_eq(n_done, N);
	ck_assert_uint_eq(pool_in_flight(pool), 0);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(jobs[i].runs, 1);
		ck_assert_int_eq(jobs[i].dones, 1);
		ck_assert(!jobs[i].was_cancelled);
		ck_assert_int_eq(jobs[i].output, 2 * i);
		ck_assert(!pthread_equal(jobs[i].ran_on, reactor));
	}
	pool_free(pool);
	free(jobs);
}
END_TEST

/* The first job holds the only worker until a helper thread lets it go. */
static void
run_blocking(Job *job)
{
	TestJob *t = (TestJob *)job;

	t->runs++;
	sem_post(&started);
	sem_wait(&release);
}

static void *
release_later(void *arg)
{
	(void)arg;
	usleep(20000);
	sem_post(&release);
	return NULL;
}

START_TEST(test_free_cancels_queued_jobs)
{
	enum { N = 200 };
	TestJob *jobs = calloc(N, sizeof *jobs);
	Pool *pool = NULL;
	pthread_t helper;
	size_t ran = 0, cancelled = 0;

	ck_assert_ptr_nonnull(jobs);
	sem_init(&started, 0, 0);
	sem_init(&release, 0, 0);
	ck_assert_int_eq(pool_new(base, 1, &pool), 0);
	n_expected = N + 1;	/* never reached: no loopbreak */
	for (int i = 0; i < N; i++) {
		jobs[i].job.run = i == 0 ? run_blocking : run_double;
		jobs[i].job.done = done_count;
		jobs[i].input = i;
		pool_submit(pool, &jobs[i].job);
	}
	sem_wait(&started);
	ck_assert_int_eq(pthread_create(&helper, NULL, release_later, NULL), 0);
	/* Whenever the release comes, each job ends exactly one way. */
	pool_free(pool);
	pthread_join(helper, NULL);
	ck_assert_uint_eq(n_done, N);
	for (int i = 0; i < N; i++) {
		ck_assert_int_eq(jobs[i].dones, 1);
		ck_assert_int_eq(jobs[i].runs, jobs[i].was_cancelled ? 0 : 1);
		ran += jobs[i].runs;
		cancelled += jobs[i].was_cancelled;
	}
	ck_assert_int_eq(jobs[0].runs, 1);
	ck_assert_uint_eq(ran + cancelled, N);
	sem_destroy(&started);
	sem_destroy(&release);
	free(jobs);
}
END_TEST

START_TEST(test_zero_threads_refused)
{
	Pool *pool = (Pool *)0x1;

	ck_assert_int_eq(pool_new(base, 0, &pool), -EINVAL);
	ck_assert_ptr_eq(pool, (Pool *)0x1);
	pool_free(NULL);
}
END_TEST

static Suite *
pool_suite(void)
{
	Suite *s = suite_create("pool");
	TCase *tc = tcase_create("jobs");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_every_job_runs_once_and_comes_back);
	tcase_add_test(tc, test_free_cancels_queued_jobs);
	tcase_add_test(tc, test_zero_threads_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(pool_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
