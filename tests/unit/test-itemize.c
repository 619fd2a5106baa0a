/*
 * test-itemize — engine/itemize: the item codes of treesyncd(8)'s DRY
 * RUN from steps as a dry-run pass reports them, the walk order of the
 * list, and the verdict lines of max_delete and the guards.
 * (tests/integration/test_dryrun.py checks the same codes end to end.)
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/itemize.h"

static char out[8192];

static void
collect(void *arg, const char *line)
{
	(void)arg;
	strcat(out, line);
	strcat(out, "\n");
}

static FileMeta
meta(mode_t mode, long size, long mtime)
{
	FileMeta m = { 0 };

	m.mode = mode;
	m.size = size;
	m.mtime_sec = mtime;
	m.nlink = 1;
	return m;
}

static SyncPairConfig pair = { .name = "p", .source = "/src" };

static void
render(ItemList *l, const SyncStats *st, bool held)
{
	out[0] = '\0';
	itemize_render(l, &pair, "/dst", st, held, collect, NULL);
}

START_TEST(test_codes)
{
	FileMeta f = meta(S_IFREG | 0644, 5, 100), g = f, d = meta(S_IFDIR |
	    0755, 4096, 100);
	SyncStats st = { .delete_budget = UINT64_MAX };
	FullSyncStep s = { .done = RULE_COPY, .src = &f, .dst = &g };
	ItemList l;

	itemize_init(&l, true, 0);
	g.size = 4;
	g.mtime_sec = 99;
	s.relpath = "grown";
	itemize_step(&l, &s);
	g = f;
	g.uid = 7;
	s.done = RULE_ATTRS;
	s.relpath = "owner";
	itemize_step(&l, &s);
	s.done = RULE_COPY;
	s.dst = &d;
	s.relpath = "was dir";
	itemize_step(&l, &s);
	s.done = RULE_NONE;	/* a hash found them equal: no line */
	s.relpath = "same";
	itemize_step(&l, &s);
	render(&l, &st, false);
	ck_assert_str_eq(out, "# p -> /dst\n"
	    ">f.st...... grown\n"
	    ".f....o.... owner\n"
	    ">f+++++++++ was dir (replaces a directory)\n");
	itemize_free(&l);
}
END_TEST

START_TEST(test_walk_order_and_deletes)
{
	FileMeta d = meta(S_IFDIR | 0755, 0, 1);
	static const char listing[] = "x\0sub/\0sub/y\0";
	FullSyncStep del = { .done = RULE_DELETE, .dst = &d, .count = 4,
	    .listing = listing, .listing_len = sizeof listing - 1 };
	FullSyncStep mk = { .done = RULE_MKDIR, .src = &d };
	SyncStats st = { .delete_budget = 2, .dry_deletes = 4 };
	ItemList l;

	itemize_init(&l, false, 0);
	mk.relpath = "a b";
	itemize_step(&l, &mk);
	del.relpath = "a";
	itemize_step(&l, &del);
	/* A replace's delete says nothing: the next step does. */
	del.replace = true;
	del.relpath = "c";
	itemize_step(&l, &del);
	render(&l, &st, false);
	ck_assert_str_eq(out, "# p -> /dst\n"
	    "*deleting   a/\n"
	    "*deleting   a/sub/\n"
	    "*deleting   a/sub/y\n"
	    "*deleting   a/x\n"
	    "cd+++++++++ a b/\n"
	    "would hold: 4 deletes > max_delete 2: a full sync would stop "
	    "deleting there and hold the pair's deletes\n");
	itemize_free(&l);
}
END_TEST

START_TEST(test_verdicts_and_bound)
{
	FileMeta f = meta(S_IFREG | 0644, 1, 1);
	FullSyncStep s = { .done = RULE_COPY, .src = &f, .relpath = "a" };
	SyncStats st = { .delete_budget = UINT64_MAX };
	ItemList l;

	itemize_init(&l, false, 0);
	render(&l, &st, false);
	ck_assert_str_eq(out, "");	/* in sync: nothing at all */
	st.fault = GUARD_EMPTY;
	st.errors = 1;
	render(&l, &st, false);
	ck_assert_str_eq(out, "# p -> /dst\nwould hold: source '/src' is "
	    "empty while its destination is not: nothing done for this "
	    "destination, nothing deleted\n");
	itemize_free(&l);

	/* Past its bound a list counts its lines. */
	itemize_init(&l, false, 30);
	for (int i = 0; i < 5; i++)
		itemize_step(&l, &s);
	st.fault = GUARD_OK;
	st.errors = 0;
	render(&l, &st, false);
	ck_assert(strstr(out, "# ... and 3 more lines") != NULL);
	itemize_free(&l);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("itemize");
	TCase *tc = tcase_create("itemize");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_codes);
	tcase_add_test(tc, test_walk_order_and_deletes);
	tcase_add_test(tc, test_verdicts_and_bound);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
