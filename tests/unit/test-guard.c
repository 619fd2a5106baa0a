/*
 * Unit tests for guard: the source-root checks and the max_delete budget,
 * on real temporary directories.
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/guard.h"

static char base[64];
static int src, dst;

static void
sh(const char *fmt)
{
	char cmd[1024];

	snprintf(cmd, sizeof cmd, fmt, base, base, base, base, base, base);
	ck_assert_int_eq(system(cmd), 0);
}

static int
open_dir(const char *name)
{
	char path[256];
	int fd;

	snprintf(path, sizeof path, "%s/%s", base, name);
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static void
setup(void)
{
	strcpy(base, "/tmp/treesync-guard.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	sh("mkdir %s/src %s/dst");
	src = open_dir("src");
	dst = open_dir("dst");
}

static void
teardown(void)
{
	close(src);
	close(dst);
	sh("rm -rf %s");
}

START_TEST(test_empty_source_full_destination)
{
	SourceIdentity seen;

	/* Both empty: nothing to protect. */
	ck_assert_int_eq(guard_check_source(src, 0, dst, NULL, true, &seen),
	    GUARD_OK);
	ck_assert(seen.known);
	sh("touch %s/dst/a");
	ck_assert_int_eq(guard_check_source(src, 0, dst, NULL, true, &seen),
	    GUARD_EMPTY);
	/* Without the emptiness check (a subtree pass): fine. */
	ck_assert_int_eq(guard_check_source(src, 0, dst, NULL, false, &seen),
	    GUARD_OK);
	/* A crash's temporary in the source does not make it full. */
	sh("touch %s/src/.treesync.0123456789abcdef.1");
	ck_assert_int_eq(guard_check_source(src, 0, dst, NULL, true, &seen),
	    GUARD_EMPTY);
	sh("touch %s/src/b");
	ck_assert_int_eq(guard_check_source(src, 0, dst, NULL, true, &seen),
	    GUARD_OK);
}
END_TEST

START_TEST(test_identity)
{
	SourceIdentity first, seen;
	int other;

	ck_assert_int_eq(guard_check_source(src, 0, dst, NULL, false, &first),
	    GUARD_OK);
	ck_assert_int_eq(guard_check_source(src, 0, dst, &first, false,
	    &seen), GUARD_OK);
	ck_assert_uint_eq(seen.ino, first.ino);
	/* Another directory at the same place: replaced. */
	sh("mkdir %s/other");
	other = open_dir("other");
	ck_assert_int_eq(guard_check_source(other, 0, dst, &first, false,
	    &seen), GUARD_REPLACED);
	/* A root that was a mount point and is not one now: unmounted. */
	first.mount_root = true;
	ck_assert_int_eq(guard_check_source(other, 0, dst, &first, false,
	    &seen), GUARD_UNMOUNTED);
	ck_assert(!seen.mount_root);
	close(other);
	/* No root at all. */
	ck_assert_int_eq(guard_check_source(-1, -2, dst, &first, false,
	    &seen), GUARD_VANISHED);
	ck_assert(!seen.known);
}
END_TEST

START_TEST(test_mount_root)
{
	SourceIdentity seen;
	int root = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	ck_assert_int_eq(guard_check_source(root, 0, -1, NULL, false, &seen),
	    GUARD_OK);
	ck_assert(seen.mount_root);
	ck_assert_int_eq(guard_check_source(src, 0, -1, NULL, false, &seen),
	    GUARD_OK);
	close(root);
}
END_TEST

START_TEST(test_budget)
{
	MaxDelete none = { MAX_DELETE_NONE, 0 };
	MaxDelete count = { MAX_DELETE_COUNT, 7 };
	MaxDelete pct = { MAX_DELETE_PERCENT, 10 };

	ck_assert_uint_eq(guard_delete_budget(&none, 100), UINT64_MAX);
	ck_assert_uint_eq(guard_delete_budget(&count, 100), 7);
	ck_assert_uint_eq(guard_delete_budget(&pct, 1000), 100);
	ck_assert_uint_eq(guard_delete_budget(&pct, 9), 0);
}
END_TEST

START_TEST(test_count_tree)
{
	uint64_t n = 0;

	sh("mkdir -p %s/dst/d/e && touch %s/dst/d/1 %s/dst/d/e/2 %s/dst/f && "
	    "ln -s / %s/dst/d/link");
	/* d, d/e, d/1, d/e/2, d/link: the symlink is not followed. */
	ck_assert_int_eq(guard_count_tree(dst, "d", UINT64_MAX - 1, &n), 0);
	ck_assert_uint_eq(n, 5);
	n = 0;
	ck_assert_int_eq(guard_count_tree(dst, ".", UINT64_MAX - 1, &n), 0);
	ck_assert_uint_eq(n, 6);
	/* Stops soon after the limit. */
	n = 0;
	ck_assert_int_eq(guard_count_tree(dst, "d", 1, &n), 0);
	ck_assert_uint_gt(n, 1);
	ck_assert_uint_le(n, 3);
	n = 0;
	ck_assert_int_eq(guard_count_tree(dst, "missing", 10, &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("guard");
	TCase *tc = tcase_create("guard");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_empty_source_full_destination);
	tcase_add_test(tc, test_identity);
	tcase_add_test(tc, test_mount_root);
	tcase_add_test(tc, test_budget);
	tcase_add_test(tc, test_count_tree);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
