/*
 * test-synclog — the sync log's writer thread: every line arrives, in
 * order, while a reader drains it; past the backlog bound the lines that
 * arrive plus the dropped count add up to the lines logged; SIGUSR1's
 * reopen splits the lines between the old and the new file where it was
 * asked; close gives up on a writer that cannot write. Run under TSan as
 * well (scripts/test.sh): the reactor and the writer share the queue.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/synclog.h"

static char dir[PATH_MAX];
static char path[PATH_MAX + 32];

static void
setup(void)
{
	snprintf(dir, sizeof dir, "/tmp/treesync-test-synclog.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/log", dir);
}

static void
teardown(void)
{
	char p[PATH_MAX + 64];

	synclog_close();
	synclog_set_writer_limits(0, 0);
	unlink(path);
	snprintf(p, sizeof p, "%s.1", path);
	unlink(p);
	rmdir(dir);
}

static char *
slurp(const char *p)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = fopen(p, "r");

	ck_assert_ptr_nonnull(f);
	if (getdelim(&text, &len, '\0', f) < 0) {
		free(text);
		text = strdup("");
	}
	fclose(f);
	return text;
}

/* A reader of the fifo: collects everything until EOF. */
typedef struct Reader {
	int fd;
	char *text;
	size_t len;
	pthread_t thread;
	size_t step;		/* bytes per read; 0: 64 KiB */
	useconds_t pause;	/* between reads */
} Reader;

static void *
reader_main(void *arg)
{
	Reader *r = arg;
	char buf[65536];
	ssize_t n;

	while ((n = read(r->fd, buf, r->step ? r->step : sizeof buf)) != 0) {
		if (r->pause > 0)
			usleep(r->pause);
		if (n < 0 && errno == EINTR)
			continue;
		ck_assert_int_gt(n, 0);
		r->text = realloc(r->text, r->len + (size_t)n + 1);
		memcpy(r->text + r->len, buf, (size_t)n);
		r->len += (size_t)n;
		r->text[r->len] = '\0';
	}
	return NULL;
}

static void
reader_start(Reader *r)
{
	int fl = fcntl(r->fd, F_GETFL);

	fcntl(r->fd, F_SETFL, fl & ~O_NONBLOCK);
	ck_assert_int_eq(pthread_create(&r->thread, NULL, reader_main, r), 0);
}

/* Opens the fifo for reading (not blocking) and the log on it. */
static void
open_fifo_log(Reader *r)
{
	memset(r, 0, sizeof *r);
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	r->fd = open(path, O_RDONLY | O_NONBLOCK);
	ck_assert_int_ge(r->fd, 0);
	ck_assert_int_eq(synclog_open(path, LOG_LEVEL_DEBUG), 0);
}

static void
reader_finish(Reader *r)
{
	pthread_join(r->thread, NULL);
	close(r->fd);
	if (r->text == NULL)
		r->text = strdup("");
}

START_TEST(test_every_line_in_order)
{
	enum { N = 20000 };
	Reader r;
	const char *p;
	int next = 0;

	open_fifo_log(&r);
	reader_start(&r);
	for (int i = 0; i < N; i++)
		synclog_msg(LOG_LEVEL_INFO, "line %d", i);
	synclog_close();
	reader_finish(&r);
	for (p = r.text; (p = strstr(p, " info  line ")) != NULL; p++) {
		ck_assert_int_eq(atoi(p + 12), next);
		next++;
	}
	ck_assert_int_eq(next, N);
	ck_assert_ptr_null(strstr(r.text, "dropped"));
	free(r.text);
}
END_TEST

START_TEST(test_past_the_bound_the_drops_are_counted)
{
	enum { N = 5000 };
	Reader r;
	const char *p;
	long kept = 0, dropped = 0, last = -1;

	synclog_set_writer_limits(8192, 0);
	open_fifo_log(&r);
	/* Nobody reads: the pipe fills, then the backlog. */
	for (int i = 0; i < N; i++)
		synclog_msg(LOG_LEVEL_INFO, "line %d", i);
	reader_start(&r);
	for (int i = 0; i < 100; i++)
		synclog_msg(LOG_LEVEL_INFO, "line %d", N + i);
	synclog_msg(LOG_LEVEL_INFO, "the last line");
	synclog_close();
	reader_finish(&r);
	for (p = r.text; *p != '\0'; p = strchr(p, '\n') + 1) {
		const char *q;

		if ((q = strstr(p, " info  line ")) != NULL &&
		    q < strchr(p, '\n')) {
			ck_assert_int_gt(atol(q + 12), last);	/* in order */
			last = atol(q + 12);
			kept++;
		} else if ((q = strstr(p, " warn  log: ")) != NULL &&
		    q < strchr(p, '\n')) {
			dropped += atol(q + 12);
			ck_assert_ptr_nonnull(strstr(q, " dropped: the log file "
			    "was not writable fast enough\n"));
		}
	}
	ck_assert_int_gt(dropped, 0);
	/* The last line may have met a full backlog too: then it is counted. */
	kept += strstr(r.text, " info  the last line\n") != NULL;
	ck_assert_int_eq(kept + dropped, N + 100 + 1);
	free(r.text);
}
END_TEST

START_TEST(test_reopen_splits_where_it_was_asked)
{
	char moved[PATH_MAX + 64], *old, *new;

	snprintf(moved, sizeof moved, "%s.1", path);
	ck_assert_int_eq(synclog_open(path, LOG_LEVEL_INFO), 0);
	for (int i = 0; i < 1000; i++)
		synclog_msg(LOG_LEVEL_INFO, "before %d", i);
	ck_assert_int_eq(rename(path, moved), 0);
	synclog_reopen();
	for (int i = 0; i < 1000; i++)
		synclog_msg(LOG_LEVEL_INFO, "after %d", i);
	synclog_close();
	old = slurp(moved);
	new = slurp(path);
	ck_assert_ptr_nonnull(strstr(old, "before 999\n"));
	ck_assert_ptr_null(strstr(old, "after "));
	ck_assert_ptr_null(strstr(old, "reopened"));
	ck_assert_ptr_nonnull(strstr(new, " info  log file reopened\n"));
	ck_assert_ptr_null(strstr(new, "before "));
	ck_assert_ptr_nonnull(strstr(new, "after 0\n"));
	ck_assert_ptr_nonnull(strstr(new, "after 999\n"));
	ck_assert(strstr(new, "reopened") < strstr(new, "after 0\n"));
	free(old);
	free(new);
}
END_TEST

/*
 * A reader slower than the lines, but steady: close waits as long as the
 * writer makes progress, however long the whole takes (the stall limit is
 * 200 ms here, the whole takes longer).
 */
START_TEST(test_close_waits_for_a_slow_reader)
{
	enum { N = 20000 };
	Reader r;
	size_t lines = 0;

	synclog_set_writer_limits(0, 200);
	open_fifo_log(&r);
	r.step = 4096;
	r.pause = 2000;
	for (int i = 0; i < N; i++)
		synclog_msg(LOG_LEVEL_INFO, "line %d", i);
	reader_start(&r);
	synclog_close();
	reader_finish(&r);
	for (const char *p = r.text; (p = strstr(p, " info  line ")) != NULL;
	    p++)
		lines++;
	ck_assert_uint_eq(lines, N);
	free(r.text);
}
END_TEST

START_TEST(test_close_gives_up_on_a_stalled_writer)
{
	Reader r;

	synclog_set_writer_limits(1 << 20, 200);
	open_fifo_log(&r);
	for (int i = 0; i < 5000; i++)
		synclog_msg(LOG_LEVEL_INFO, "line %d", i);
	synclog_close();	/* must return: nobody will ever read */
	close(r.fd);
}
END_TEST

START_TEST(test_no_writer_writes_directly)
{
	/* Before synclog_open: nothing queued, nothing to close. */
	synclog_msg(LOG_LEVEL_ERROR, "test-synclog: a line on stderr");
	synclog_close();
}
END_TEST

static Suite *
synclog_suite(void)
{
	Suite *s = suite_create("synclog");
	TCase *tc = tcase_create("writer");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_every_line_in_order);
	tcase_add_test(tc, test_past_the_bound_the_drops_are_counted);
	tcase_add_test(tc, test_reopen_splits_where_it_was_asked);
	tcase_add_test(tc, test_close_waits_for_a_slow_reader);
	tcase_add_test(tc, test_close_gives_up_on_a_stalled_writer);
	tcase_add_test(tc, test_no_writer_writes_directly);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(synclog_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
