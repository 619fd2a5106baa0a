/*
 * Unit tests for pathsync: one path of a destination made equal to the
 * source, judged by looking at both trees afterwards.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/pathsync.h"

static char base[] = "/tmp/treesync-pathsync.XXXXXX";
static int src, dst;
static PathSyncOptions opt;

static void
sh(const char *fmt, const char *arg)
{
	char cmd[1024];

	snprintf(cmd, sizeof cmd, fmt, arg, arg, arg);
	ck_assert_int_eq(system(cmd), 0);
}

static void
setup(void)
{
	char path[256];

	strcpy(base, "/tmp/treesync-pathsync.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(path, sizeof path, "%s/src", base);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	src = open(path, O_RDONLY | O_DIRECTORY);
	snprintf(path, sizeof path, "%s/dst", base);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	dst = open(path, O_RDONLY | O_DIRECTORY);
	memset(&opt, 0, sizeof opt);
	opt.delete = true;
	opt.copy.preserve_owner = geteuid() == 0;
	fsutil_init_temp_tag();
}

static void
teardown(void)
{
	close(src);
	close(dst);
	sh("rm -rf %s", base);
}

static void
put(int dir, const char *name, const char *text)
{
	int fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static char *
get(int dir, const char *name)
{
	static char buf[256];
	int fd = openat(dir, name, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return NULL;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return buf;
}

START_TEST(test_new_file_copied_with_mtime)
{
	PathSyncResult r;
	struct stat a, b;

	ck_assert_int_eq(mkdirat(src, "d", 0755), 0);
	ck_assert_int_eq(mkdirat(dst, "d", 0755), 0);
	put(src, "d/f", "hello");
	pathsync_run(src, dst, "d/f", &opt, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.action, RULE_COPY);
	ck_assert(r.entries_changed);
	ck_assert_str_eq(get(dst, "d/f"), "hello");
	fstatat(src, "d/f", &a, 0);
	fstatat(dst, "d/f", &b, 0);
	ck_assert_int_eq(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
	/* Again: nothing to do. */
	pathsync_run(src, dst, "d/f", &opt, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.action, RULE_NONE);
}
END_TEST

START_TEST(test_gone_from_source_is_deleted_unless_delete_false)
{
	PathSyncResult r;

	ck_assert_int_eq(mkdirat(dst, "tree", 0755), 0);
	put(dst, "tree/x", "old");
	opt.delete = false;
	pathsync_run(src, dst, "tree", &opt, &r);
	ck_assert_int_eq(r.action, RULE_NONE);
	ck_assert_str_eq(get(dst, "tree/x"), "old");
	opt.delete = true;
	pathsync_run(src, dst, "tree", &opt, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.action, RULE_DELETE);
	ck_assert_uint_eq(r.count, 2);
	ck_assert_int_eq(faccessat(dst, "tree", F_OK, AT_SYMLINK_NOFOLLOW), -1);
	/* A path under a vanished source directory is gone too. */
	put(dst, "y", "old");
	pathsync_run(src, dst, "nodir/y", &opt, &r);
	ck_assert_int_eq(r.err, 0);
}
END_TEST

START_TEST(test_new_directory_wants_a_subtree_pass)
{
	PathSyncResult r;

	ck_assert_int_eq(mkdirat(src, "newdir", 0755), 0);
	pathsync_run(src, dst, "newdir", &opt, &r);
	ck_assert_int_eq(r.outcome, PATHSYNC_SUBTREE);
	/* A file where a directory belongs: also a subtree pass. */
	put(dst, "newdir", "in the way");
	pathsync_run(src, dst, "newdir", &opt, &r);
	ck_assert_int_eq(r.outcome, PATHSYNC_SUBTREE);
}
END_TEST

START_TEST(test_symlink_replaces_directory_and_is_not_followed)
{
	PathSyncResult r;
	char target[64];
	ssize_t n;

	ck_assert_int_eq(symlinkat("/etc", src, "l"), 0);
	ck_assert_int_eq(mkdirat(dst, "l", 0755), 0);
	put(dst, "l/inside", "x");
	pathsync_run(src, dst, "l", &opt, &r);
	ck_assert_int_eq(r.err, 0);
	n = readlinkat(dst, "l", target, sizeof target - 1);
	ck_assert_int_eq(n, 4);
	target[n] = '\0';
	ck_assert_str_eq(target, "/etc");
	/* Through the symlink nothing is reached: its parent is a link. */
	pathsync_run(src, dst, "l/passwd", &opt, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.action, RULE_NONE);
	ck_assert_int_eq(access("/etc/passwd", F_OK), 0);
}
END_TEST

START_TEST(test_hardlink_and_missing_parent)
{
	PathSyncResult r;

	put(src, "h1", "linked");
	ck_assert_int_eq(linkat(src, "h1", src, "h2", 0), 0);
	pathsync_run(src, dst, "h1", &opt, &r);
	ck_assert_int_eq(r.outcome, PATHSYNC_HARDLINK);
	ck_assert_int_eq(mkdirat(src, "p", 0755), 0);
	put(src, "p/f", "x");
	pathsync_run(src, dst, "p/f", &opt, &r);
	ck_assert_int_eq(r.outcome, PATHSYNC_NO_PARENT);
}
END_TEST

START_TEST(test_rename_in_destination)
{
	ck_assert_int_eq(mkdirat(dst, "a", 0755), 0);
	put(dst, "a/f", "moved");
	ck_assert_int_eq(mkdirat(dst, "b", 0755), 0);
	ck_assert_int_eq(pathsync_rename(dst, "a/f", "b/g"), 0);
	ck_assert_str_eq(get(dst, "b/g"), "moved");
	ck_assert_int_eq(pathsync_rename(dst, "a/f", "b/h"), -ENOENT);
	ck_assert_int_eq(pathsync_rename(dst, "b/g", "nope/g"), -ENOENT);
}
END_TEST

START_TEST(test_guarded_deletes)
{
	PathSyncResult r;
	SourceIdentity id, other = { 0 };

	put(dst, "x", "in the destination only");
	put(dst, "y", "and this");
	/* The source root is empty while the destination is not: no delete. */
	ck_assert_int_eq(guard_check_source(src, 0, -1, NULL, false, &id),
	    GUARD_OK);
	opt.expect = &id;
	pathsync_run(src, dst, "x", &opt, &r);
	ck_assert_int_eq(r.fault, GUARD_EMPTY);
	ck_assert_str_eq(get(dst, "x"), "in the destination only");
	/* Another root than the remembered one: no delete either. */
	put(src, "z", "z");
	other = id;
	other.ino++;
	opt.expect = &other;
	pathsync_run(src, dst, "x", &opt, &r);
	ck_assert_int_eq(r.fault, GUARD_REPLACED);
	ck_assert_ptr_nonnull(get(dst, "x"));
	/* Held (max_delete): withheld, kept. */
	opt.expect = &id;
	opt.hold_deletes = true;
	pathsync_run(src, dst, "x", &opt, &r);
	ck_assert(r.withheld);
	ck_assert_int_eq(r.err, 0);
	ck_assert_ptr_nonnull(get(dst, "x"));
	/* Sound and not held: deleted. */
	opt.hold_deletes = false;
	pathsync_run(src, dst, "x", &opt, &r);
	ck_assert_int_eq(r.fault, GUARD_OK);
	ck_assert_int_eq(r.action, RULE_DELETE);
	ck_assert_ptr_null(get(dst, "x"));
}
END_TEST

START_TEST(test_root_metadata)
{
	PathSyncResult r;
	struct timespec t[2] = { { 0, UTIME_OMIT }, { 12345, 678 } };
	struct stat st;

	ck_assert_int_eq(futimens(src, t), 0);
	pathsync_run(src, dst, "", &opt, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.action, RULE_ATTRS);
	fstat(dst, &st);
	ck_assert_int_eq(st.st_mtim.tv_sec, 12345);
	ck_assert_int_eq(st.st_mtim.tv_nsec, 678);
}
END_TEST

/* compare = "hash": equal sizes are decided by the content, whatever
 * the mtimes (rules.h): a touched file gets its attributes, not a copy. */
START_TEST(test_hash_mode_decides_by_content)
{
	PathSyncResult r;
	struct timespec t[2] = { { 0, UTIME_OMIT }, { 1000, 5 } };
	struct stat a, b;

	opt.compare = COMPARE_HASH;
	put(src, "f", "same bytes");
	put(dst, "f", "same bytes");
	ck_assert_int_eq(utimensat(src, "f", t, 0), 0);
	pathsync_run(src, dst, "f", &opt, &r);
	ck_assert_int_eq(r.err, 0);
	ck_assert_int_eq(r.action, RULE_ATTRS);
	ck_assert(!r.entries_changed);
	fstatat(src, "f", &a, 0);
	fstatat(dst, "f", &b, 0);
	ck_assert_int_eq(b.st_mtim.tv_sec, a.st_mtim.tv_sec);
	ck_assert_int_eq(b.st_mtim.tv_nsec, a.st_mtim.tv_nsec);
	/* Other bytes of the same size: copied. */
	put(src, "g", "bytes one");
	put(dst, "g", "bytes two");
	pathsync_run(src, dst, "g", &opt, &r);
	ck_assert_int_eq(r.action, RULE_COPY);
	ck_assert_str_eq(get(dst, "g"), "bytes one");
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("pathsync");
	TCase *tc = tcase_create("pathsync");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_new_file_copied_with_mtime);
	tcase_add_test(tc, test_gone_from_source_is_deleted_unless_delete_false);
	tcase_add_test(tc, test_new_directory_wants_a_subtree_pass);
	tcase_add_test(tc, test_symlink_replaces_directory_and_is_not_followed);
	tcase_add_test(tc, test_hardlink_and_missing_parent);
	tcase_add_test(tc, test_rename_in_destination);
	tcase_add_test(tc, test_root_metadata);
	tcase_add_test(tc, test_guarded_deletes);
	tcase_add_test(tc, test_hash_mode_decides_by_content);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
