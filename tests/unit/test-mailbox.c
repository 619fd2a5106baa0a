/*
 * Unit tests for util/mailbox, the hand-off the pool's completions and
 * the watcher's batches share: every item posted from any thread arrives
 * once, on the reactor thread, in each poster's order; posts made while
 * the reactor is busy arrive in one callback. Run under TSan too
 * (scripts/test.sh, build-tsan): the lock and eventfd edge are what it
 * checks for races.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include <event2/event.h>

#include "util/mailbox.h"

enum { POSTERS = 4, PER_POSTER = 20000 };

typedef struct Item {
	MailboxItem item;
	int poster;
	int seq;
} Item;

typedef struct Ctx {
	struct event_base *base;
	Mailbox *mb;
	pthread_t reactor;
	Item *items;
	int next_seq[POSTERS];
	size_t received, expected, callbacks, largest;
	bool wrong_thread, out_of_order;
} Ctx;

static void
on_items(MailboxItem *list, void *arg)
{
	Ctx *c = arg;
	size_t n = 0;

	if (!pthread_equal(pthread_self(), c->reactor))
		c->wrong_thread = true;
	for (; list != NULL; list = list->next, n++) {
		Item *it = MAILBOX_ENTRY(list, Item, item);
		if (it->seq != c->next_seq[it->poster])
			c->out_of_order = true;
		c->next_seq[it->poster] = it->seq + 1;
	}
	c->callbacks++;
	c->received += n;
	if (n > c->largest)
		c->largest = n;
	if (c->received >= c->expected)
		event_base_loopbreak(c->base);
}

static void
ctx_init(Ctx *c, size_t n_items)
{
	*c = (Ctx){ .reactor = pthread_self(), .expected = n_items };
	c->base = event_base_new();
	ck_assert_ptr_nonnull(c->base);
	ck_assert_int_eq(mailbox_new(c->base, on_items, c, &c->mb), 0);
	c->items = calloc(n_items, sizeof *c->items);
	ck_assert_ptr_nonnull(c->items);
}

static void
ctx_done(Ctx *c)
{
	mailbox_free(c->mb);
	event_base_free(c->base);
	free(c->items);
}

struct poster {
	Ctx *c;
	int id;
};

static void *
poster_main(void *arg)
{
	struct poster *p = arg;

	for (int i = 0; i < PER_POSTER; i++) {
		Item *it = &p->c->items[p->id * PER_POSTER + i];
		it->poster = p->id;
		it->seq = i;
		mailbox_post(p->c->mb, &it->item);
	}
	return NULL;
}

START_TEST(test_posts_from_threads_arrive_once_in_order)
{
	pthread_t th[POSTERS];
	struct poster p[POSTERS];
	Ctx c;

	ctx_init(&c, POSTERS * PER_POSTER);
	for (int i = 0; i < POSTERS; i++) {
		p[i] = (struct poster){ &c, i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, poster_main,
		    &p[i]), 0);
	}
	ck_assert_int_ge(event_base_dispatch(c.base), 0);
	for (int i = 0; i < POSTERS; i++)
		pthread_join(th[i], NULL);
	ck_assert(!c.wrong_thread);
	ck_assert(!c.out_of_order);
	ck_assert_uint_eq(c.received, c.expected);
	for (int i = 0; i < POSTERS; i++)
		ck_assert_int_eq(c.next_seq[i], PER_POSTER);
	ctx_done(&c);
}
END_TEST

/* Posts made while the reactor is not looking: one wake-up takes them all. */
START_TEST(test_burst_is_one_callback)
{
	enum { N = 1000 };
	Ctx c;

	ctx_init(&c, N);
	for (int i = 0; i < N; i++) {
		c.items[i].seq = i;
		mailbox_post(c.mb, &c.items[i].item);
	}
	ck_assert_int_ge(event_base_loop(c.base, EVLOOP_NONBLOCK), 0);
	ck_assert_uint_eq(c.callbacks, 1);
	ck_assert_uint_eq(c.largest, N);
	ck_assert(!c.out_of_order);
	/* Nothing more: the eventfd was read, no callback for an empty list. */
	ck_assert_int_ge(event_base_loop(c.base, EVLOOP_NONBLOCK), 0);
	ck_assert_uint_eq(c.callbacks, 1);
	ctx_done(&c);
}
END_TEST

/* mailbox_take empties the list itself; the pending wake-up finds nothing. */
START_TEST(test_take_without_callback)
{
	MailboxItem *list;
	Ctx c;
	int n = 0;

	ctx_init(&c, 3);
	for (int i = 0; i < 3; i++) {
		c.items[i].seq = i;
		mailbox_post(c.mb, &c.items[i].item);
	}
	list = mailbox_take(c.mb);
	for (; list != NULL; list = list->next)
		ck_assert_int_eq(MAILBOX_ENTRY(list, Item, item)->seq, n++);
	ck_assert_int_eq(n, 3);
	ck_assert_ptr_null(mailbox_take(c.mb));
	ck_assert_int_ge(event_base_loop(c.base, EVLOOP_NONBLOCK), 0);
	ck_assert_uint_eq(c.callbacks, 0);
	/* And it still wakes for the next post. */
	mailbox_post(c.mb, &c.items[0].item);
	c.items[0].seq = 0;
	c.expected = 1;
	ck_assert_int_ge(event_base_loop(c.base, EVLOOP_NONBLOCK), 0);
	ck_assert_uint_eq(c.callbacks, 1);
	ctx_done(&c);
	mailbox_free(NULL);
}
END_TEST

static Suite *
mailbox_suite(void)
{
	Suite *s = suite_create("mailbox");
	TCase *tc = tcase_create("mailbox");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_posts_from_threads_arrive_once_in_order);
	tcase_add_test(tc, test_burst_is_one_callback);
	tcase_add_test(tc, test_take_without_callback);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(mailbox_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
