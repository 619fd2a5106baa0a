/*
 * Unit tests for planner: what one directory needs, and in which order.
 * No file system: listings are built by hand.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/planner.h"

typedef struct {
	ScanList list;
} Listing;

static void
add(Listing *l, const char *name, mode_t mode, int64_t size,
    int64_t mtime, const char *target)
{
	ScanEntry *e;

	l->list.entries = realloc(l->list.entries,
	    (l->list.n + 1) * sizeof *e);
	e = &l->list.entries[l->list.n++];
	memset(e, 0, sizeof *e);
	e->name = strdup(name);
	e->link_target = target ? strdup(target) : NULL;
	e->meta.mode = mode;
	e->meta.size = size;
	e->meta.mtime_sec = mtime;
	e->meta.nlink = 1;
	e->meta.ino = l->list.n;
}

static int
by_name(const void *a, const void *b)
{
	return strcmp(((const ScanEntry *)a)->name,
	    ((const ScanEntry *)b)->name);
}

static void
sort(Listing *l)
{
	if (l->list.n > 1)
		qsort(l->list.entries, l->list.n, sizeof *l->list.entries,
		    by_name);
}

static ScanEntry *
entry(Listing *l, const char *name)
{
	for (size_t i = 0; i < l->list.n; i++)
		if (strcmp(l->list.entries[i].name, name) == 0)
			return &l->list.entries[i];
	ck_abort_msg("no entry %s", name);
	return NULL;
}

static Exclude *ex;
static PlanOptions opt;
static Listing src, dst;
static Plan plan;

static void
setup(void)
{
	ck_assert_int_eq(exclude_new(&ex), 0);
	memset(&opt, 0, sizeof opt);
	opt.exclude = ex;
	opt.rules.delete = true;
	opt.rules.compare = COMPARE_MTIME;
	memset(&src, 0, sizeof src);
	memset(&dst, 0, sizeof dst);
	memset(&plan, 0, sizeof plan);
	fsutil_init_temp_tag();
}

static void
teardown(void)
{
	scan_list_free(&src.list);
	scan_list_free(&dst.list);
	planner_plan_free(&plan);
	exclude_free(ex);
}

static void
run_plan(const char *dir, bool fresh)
{
	sort(&src);
	sort(&dst);
	ck_assert_int_eq(planner_plan_dir(dir, &src.list,
	    fresh ? NULL : &dst.list, &opt, &plan), 0);
}

/* The action for the entry called name (src or dst side), or -1. */
static int
action_of(const char *name, int nth)
{
	for (size_t i = 0; i < plan.n; i++) {
		const ScanEntry *e = plan.actions[i].src ? plan.actions[i].src :
		    plan.actions[i].dst;
		if (strcmp(e->name, name) == 0 && nth-- == 0)
			return (int)plan.actions[i].type;
	}
	return -1;
}

static size_t
index_of(const char *name, RuleAction type)
{
	for (size_t i = 0; i < plan.n; i++) {
		const ScanEntry *e = plan.actions[i].src ? plan.actions[i].src :
		    plan.actions[i].dst;
		if (strcmp(e->name, name) == 0 && plan.actions[i].type == type)
			return i;
	}
	ck_abort_msg("no action %d for %s", type, name);
	return 0;
}

START_TEST(test_order_deletes_mkdirs_files_subdirs)
{
	add(&src, "newdir", S_IFDIR | 0755, 0, 10, NULL);
	add(&src, "file", S_IFREG | 0644, 5, 10, NULL);
	add(&src, "link", S_IFLNK | 0777, 3, 10, "../x");
	add(&src, "was_dir", S_IFREG | 0644, 7, 10, NULL);
	add(&src, "olddir", S_IFDIR | 0755, 0, 10, NULL);
	add(&dst, "stale", S_IFREG | 0644, 1, 1, NULL);
	add(&dst, "was_dir", S_IFDIR | 0755, 0, 1, NULL);
	add(&dst, "olddir", S_IFDIR | 0755, 0, 1, NULL);
	run_plan("", false);

	/* Every delete before every mkdir before every file before every
	 * descent. */
	size_t last_phase = 0;
	for (size_t i = 0; i < plan.n; i++) {
		size_t phase;
		switch (plan.actions[i].type) {
		case RULE_DELETE: phase = 0; break;
		case RULE_MKDIR: phase = 1; break;
		case RULE_RECURSE: phase = 3; break;
		default: phase = 2; break;
		}
		ck_assert_uint_ge(phase, last_phase);
		last_phase = phase;
	}
	ck_assert_uint_lt(index_of("stale", RULE_DELETE),
	    index_of("newdir", RULE_MKDIR));
	ck_assert_uint_lt(index_of("was_dir", RULE_DELETE),
	    index_of("was_dir", RULE_COPY));
	ck_assert_uint_lt(index_of("newdir", RULE_MKDIR),
	    index_of("file", RULE_COPY));
	ck_assert_uint_lt(index_of("link", RULE_SYMLINK),
	    index_of("newdir", RULE_RECURSE));
	ck_assert(plan.actions[index_of("newdir", RULE_RECURSE)].fresh_dir);
	ck_assert(!plan.actions[index_of("olddir", RULE_RECURSE)].fresh_dir);
	ck_assert_uint_eq(plan.n, 8);
}
END_TEST

START_TEST(test_quick_check_size_mtime_ns_and_attrs)
{
	add(&src, "same", S_IFREG | 0644, 5, 100, NULL);
	add(&dst, "same", S_IFREG | 0644, 5, 100, NULL);
	add(&src, "ns", S_IFREG | 0644, 5, 100, NULL);
	add(&dst, "ns", S_IFREG | 0644, 5, 100, NULL);
	add(&src, "size", S_IFREG | 0644, 6, 100, NULL);
	add(&dst, "size", S_IFREG | 0644, 5, 100, NULL);
	add(&src, "mode", S_IFREG | 04755, 5, 100, NULL);
	add(&dst, "mode", S_IFREG | 0755, 5, 100, NULL);
	entry(&src, "ns")->meta.mtime_nsec = 1;
	run_plan("sub", false);
	ck_assert_int_eq(action_of("same", 0), -1);
	ck_assert_int_eq(action_of("ns", 0), RULE_COPY);
	ck_assert_int_eq(action_of("size", 0), RULE_COPY);
	ck_assert_int_eq(action_of("mode", 0), RULE_ATTRS);
	ck_assert_uint_eq(plan.n_src, 4);
	ck_assert_uint_eq(plan.n_src_acted, 3);
}
END_TEST

START_TEST(test_owner_compared_only_when_preserving)
{
	add(&src, "f", S_IFREG | 0644, 5, 100, NULL);
	add(&dst, "f", S_IFREG | 0644, 5, 100, NULL);
	entry(&src, "f")->meta.uid = 1000;
	run_plan("", false);
	ck_assert_int_eq(action_of("f", 0), -1);
	planner_plan_free(&plan);
	opt.rules.preserve_owner = true;
	run_plan("", false);
	ck_assert_int_eq(action_of("f", 0), RULE_ATTRS);
}
END_TEST

START_TEST(test_delete_false_keeps_names_but_fixes_types)
{
	opt.rules.delete = false;
	add(&dst, "gone", S_IFREG | 0644, 1, 1, NULL);
	add(&src, "t", S_IFLNK | 0777, 1, 1, "x");
	add(&dst, "t", S_IFDIR | 0755, 0, 1, NULL);
	run_plan("", false);
	ck_assert_int_eq(action_of("gone", 0), -1);
	ck_assert_int_eq(action_of("t", 0), RULE_DELETE);
	ck_assert_int_eq(action_of("t", 1), RULE_SYMLINK);
}
END_TEST

START_TEST(test_excluded_names_neither_copied_nor_deleted)
{
	ck_assert_int_eq(exclude_add(ex, "*.swp"), 0);
	ck_assert_int_eq(exclude_add(ex, "cache/"), 0);
	ck_assert_int_eq(exclude_add(ex, "top/only.txt"), 0);
	add(&src, "a.swp", S_IFREG | 0644, 1, 1, NULL);
	add(&dst, "b.swp", S_IFREG | 0644, 1, 1, NULL);
	add(&src, "cache", S_IFDIR | 0755, 0, 1, NULL);
	add(&dst, "cache", S_IFREG | 0644, 0, 1, NULL);	/* left alone */
	add(&src, "only.txt", S_IFREG | 0644, 1, 1, NULL);
	run_plan("top", false);
	ck_assert_int_eq(action_of("a.swp", 0), -1);
	ck_assert_int_eq(action_of("b.swp", 0), -1);
	ck_assert_int_eq(action_of("cache", 0), -1);
	ck_assert_int_eq(action_of("only.txt", 0), -1);
	ck_assert_uint_eq(plan.n, 0);
	planner_plan_free(&plan);
	/* The same name one level down is not excluded by "top/only.txt". */
	run_plan("other", false);
	ck_assert_int_eq(action_of("only.txt", 0), RULE_COPY);
}
END_TEST

START_TEST(test_temporaries)
{
	char own[64];

	opt.rules.delete = false;
	fsutil_temp_name(own, sizeof own);
	add(&dst, ".treesync.0123abcd.7", S_IFREG | 0600, 1, 1, NULL);
	add(&dst, own, S_IFREG | 0600, 1, 1, NULL);
	add(&src, ".treesync.in-source", S_IFREG | 0644, 1, 1, NULL);
	run_plan("", false);
	/* A crash's leftover goes even with delete = false; our own
	 * in-flight temporary stays; the source's is never mirrored. */
	ck_assert_int_eq(action_of(".treesync.0123abcd.7", 0), RULE_DELETE);
	ck_assert_int_eq(action_of(own, 0), -1);
	ck_assert_int_eq(action_of(".treesync.in-source", 0), -1);
	ck_assert_uint_eq(plan.n, 1);
}
END_TEST

/* Found by tests/fuzz/fuzz-planner: a source entry of the same name
 * (never mirrored) used to shield an earlier run's leftover. */
START_TEST(test_leftover_temporary_goes_when_source_has_the_name)
{
	opt.rules.delete = false;
	add(&dst, ".treesync.0123abcd.7", S_IFREG | 0600, 1, 1, NULL);
	add(&src, ".treesync.0123abcd.7", S_IFREG | 0644, 5, 2, NULL);
	run_plan("", false);
	ck_assert_int_eq(action_of(".treesync.0123abcd.7", 0), RULE_DELETE);
	ck_assert_uint_eq(plan.n, 1);
	ck_assert_ptr_eq(plan.actions[0].src, NULL);
}
END_TEST

START_TEST(test_hash_mode)
{
	opt.rules.compare = COMPARE_HASH;
	add(&src, "eq", S_IFREG | 0644, 5, 100, NULL);
	add(&dst, "eq", S_IFREG | 0644, 5, 100, NULL);
	add(&src, "newer", S_IFREG | 0644, 5, 200, NULL);
	add(&dst, "newer", S_IFREG | 0644, 5, 100, NULL);
	add(&src, "len", S_IFREG | 0644, 6, 100, NULL);
	add(&dst, "len", S_IFREG | 0644, 5, 100, NULL);
	run_plan("", false);
	ck_assert_int_eq(action_of("eq", 0), RULE_HASH);
	ck_assert_int_eq(action_of("newer", 0), RULE_HASH);
	ck_assert_int_eq(action_of("len", 0), RULE_COPY);
}
END_TEST

START_TEST(test_hardlinks)
{
	add(&src, "h", S_IFREG | 0644, 5, 100, NULL);
	add(&dst, "h", S_IFREG | 0644, 5, 100, NULL);
	add(&src, "h2", S_IFREG | 0644, 5, 100, NULL);
	add(&src, "split", S_IFREG | 0644, 5, 100, NULL);
	add(&dst, "split", S_IFREG | 0644, 5, 100, NULL);
	entry(&src, "h")->meta.nlink = 2;
	entry(&src, "h2")->meta.nlink = 2;
	entry(&dst, "split")->meta.nlink = 2;
	run_plan("", false);
	/* What each would need as the group's first name. */
	ck_assert_int_eq(action_of("h", 0), RULE_HARDLINK);
	ck_assert_int_eq(plan.actions[index_of("h", RULE_HARDLINK)].rule.leader,
	    RULE_NONE);
	ck_assert_int_eq(action_of("h2", 0), RULE_HARDLINK);
	ck_assert_int_eq(plan.actions[index_of("h2", RULE_HARDLINK)].rule.leader,
	    RULE_COPY);
	/* A lone source name linked to others in the destination is
	 * copied, which splits it off. */
	ck_assert_int_eq(action_of("split", 0), RULE_COPY);
}
END_TEST

/* compare = "hash": a group's first name of the same size as its
 * destination is hashed too, whatever the mtimes (rules.h). */
START_TEST(test_hardlink_leader_in_hash_mode)
{
	opt.rules.compare = COMPARE_HASH;
	add(&src, "h", S_IFREG | 0644, 5, 100, NULL);
	add(&dst, "h", S_IFREG | 0644, 5, 100, NULL);
	add(&src, "g", S_IFREG | 0644, 5, 100, NULL);
	add(&dst, "g", S_IFREG | 0644, 6, 100, NULL);
	entry(&src, "h")->meta.nlink = 2;
	entry(&src, "g")->meta.nlink = 2;
	run_plan("", false);
	ck_assert_int_eq(plan.actions[index_of("h", RULE_HARDLINK)].rule.leader,
	    RULE_HASH);
	ck_assert_int_eq(plan.actions[index_of("g", RULE_HARDLINK)].rule.leader,
	    RULE_COPY);
}
END_TEST

/* A directory's own attributes are mode, owner and mtime, not its size. */
START_TEST(test_directory_attributes)
{
	opt.rules.preserve_owner = true;
	add(&src, "same", S_IFDIR | 0755, 4096, 10, NULL);
	add(&dst, "same", S_IFDIR | 0755, 20480, 10, NULL);
	add(&src, "mode", S_IFDIR | 0755, 4096, 10, NULL);
	add(&dst, "mode", S_IFDIR | 0700, 4096, 10, NULL);
	add(&src, "mtime", S_IFDIR | 0755, 4096, 10, NULL);
	add(&dst, "mtime", S_IFDIR | 0755, 4096, 11, NULL);
	add(&src, "owner", S_IFDIR | 0755, 4096, 10, NULL);
	add(&dst, "owner", S_IFDIR | 0755, 4096, 10, NULL);
	entry(&dst, "owner")->meta.uid = 7;
	run_plan("", false);
	ck_assert(!plan.actions[index_of("same", RULE_RECURSE)].rule.attrs);
	ck_assert(plan.actions[index_of("mode", RULE_RECURSE)].rule.attrs);
	ck_assert(plan.actions[index_of("mtime", RULE_RECURSE)].rule.attrs);
	ck_assert(plan.actions[index_of("owner", RULE_RECURSE)].rule.attrs);
	/* Settled at once: a directory both sides have is no op to wait
	 * for (its attributes come with its finalize). */
	ck_assert_uint_eq(plan.n_src_acted, 0);
}
END_TEST

START_TEST(test_symlinks)
{
	add(&src, "same", S_IFLNK | 0777, 4, 1, "/etc");
	add(&dst, "same", S_IFLNK | 0777, 4, 9, "/etc");
	add(&src, "moved", S_IFLNK | 0777, 5, 1, "../..");
	add(&dst, "moved", S_IFLNK | 0777, 4, 1, "/etc");
	add(&src, "wasfile", S_IFLNK | 0777, 1, 1, "x");
	add(&dst, "wasfile", S_IFREG | 0644, 1, 1, NULL);
	run_plan("", false);
	/* A symlink's own mtime is not compared. */
	ck_assert_int_eq(action_of("same", 0), -1);
	ck_assert_int_eq(action_of("moved", 0), RULE_SYMLINK);
	/* rename() replaces a file by a symlink: no delete needed. */
	ck_assert_int_eq(action_of("wasfile", 0), RULE_SYMLINK);
	ck_assert_int_eq(action_of("wasfile", 1), -1);
}
END_TEST

START_TEST(test_dir_replaced_by_file_and_file_by_dir)
{
	add(&src, "d2f", S_IFREG | 0644, 1, 1, NULL);
	add(&dst, "d2f", S_IFDIR | 0755, 0, 1, NULL);
	add(&src, "f2d", S_IFDIR | 0755, 0, 1, NULL);
	add(&dst, "f2d", S_IFREG | 0644, 1, 1, NULL);
	add(&src, "l2d", S_IFDIR | 0755, 0, 1, NULL);
	add(&dst, "l2d", S_IFLNK | 0777, 1, 1, "/");
	run_plan("", false);
	ck_assert_int_eq(action_of("d2f", 0), RULE_DELETE);
	ck_assert_int_eq(action_of("d2f", 1), RULE_COPY);
	ck_assert_int_eq(action_of("f2d", 0), RULE_DELETE);
	ck_assert_int_eq(action_of("f2d", 1), RULE_MKDIR);
	ck_assert_int_eq(action_of("f2d", 2), RULE_RECURSE);
	/* A symlink where a directory belongs is replaced, never followed. */
	ck_assert_int_eq(action_of("l2d", 0), RULE_DELETE);
	ck_assert_int_eq(action_of("l2d", 1), RULE_MKDIR);
}
END_TEST

START_TEST(test_specials_and_source_errors_leave_destination_alone)
{
	add(&src, "fifo", S_IFIFO | 0644, 0, 1, NULL);
	add(&src, "unreadable", S_IFREG | 0644, 1, 1, NULL);
	add(&dst, "unreadable", S_IFREG | 0644, 9, 1, NULL);
	entry(&src, "unreadable")->err = -13;
	run_plan("", false);
	ck_assert_int_eq(action_of("fifo", 0), RULE_SKIP);
	ck_assert_int_eq(action_of("unreadable", 0), RULE_SOURCE_ERROR);
	ck_assert_int_eq(action_of("unreadable", 1), -1);
}
END_TEST

/* Found by tests/fuzz/fuzz-planner: an unreadable destination entry was
 * deleted for a special source file, which puts nothing in its place. */
START_TEST(test_special_source_keeps_unknown_destination_entry)
{
	add(&src, "fifo", S_IFIFO | 0644, 0, 1, NULL);
	add(&dst, "fifo", S_IFREG | 0644, 1, 1, NULL);
	entry(&dst, "fifo")->err = -13;
	run_plan("", false);
	ck_assert_int_eq(action_of("fifo", 0), RULE_SKIP);
	ck_assert_uint_eq(plan.n, 1);
}
END_TEST

START_TEST(test_fresh_directory)
{
	add(&src, "a", S_IFREG | 0644, 1, 1, NULL);
	add(&src, "d", S_IFDIR | 0755, 0, 1, NULL);
	run_plan("x", true);
	ck_assert_int_eq(action_of("a", 0), RULE_COPY);
	ck_assert_int_eq(action_of("d", 0), RULE_MKDIR);
	ck_assert_int_eq(action_of("d", 1), RULE_RECURSE);
	ck_assert_uint_eq(plan.n, 3);
}
END_TEST

static Suite *
planner_suite(void)
{
	Suite *s = suite_create("planner");
	TCase *tc = tcase_create("plan_dir");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_order_deletes_mkdirs_files_subdirs);
	tcase_add_test(tc, test_quick_check_size_mtime_ns_and_attrs);
	tcase_add_test(tc, test_owner_compared_only_when_preserving);
	tcase_add_test(tc, test_delete_false_keeps_names_but_fixes_types);
	tcase_add_test(tc, test_excluded_names_neither_copied_nor_deleted);
	tcase_add_test(tc, test_temporaries);
	tcase_add_test(tc, test_leftover_temporary_goes_when_source_has_the_name);
	tcase_add_test(tc, test_hash_mode);
	tcase_add_test(tc, test_hardlinks);
	tcase_add_test(tc, test_hardlink_leader_in_hash_mode);
	tcase_add_test(tc, test_directory_attributes);
	tcase_add_test(tc, test_symlinks);
	tcase_add_test(tc, test_dir_replaced_by_file_and_file_by_dir);
	tcase_add_test(tc, test_specials_and_source_errors_leave_destination_alone);
	tcase_add_test(tc, test_special_source_keeps_unknown_destination_entry);
	tcase_add_test(tc, test_fresh_directory);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(planner_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
