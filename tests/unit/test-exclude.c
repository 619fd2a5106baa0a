/*
 * Unit tests for exclude: the pattern rules of SPEC "Config file".
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "engine/exclude.h"

#define FILE_ false
#define DIR_ true

static Exclude *
make(const char *const *patterns)
{
	Exclude *ex = NULL;
	size_t i;

	ck_assert_int_eq(exclude_new(&ex), 0);
	ck_assert_ptr_nonnull(ex);
	for (i = 0; patterns[i] != NULL; i++)
		ck_assert_int_eq(exclude_add(ex, patterns[i]), 0);
	ck_assert_uint_eq(exclude_count(ex), i);
	return ex;
}

#define MAKE(...) make((const char *const[]){ __VA_ARGS__, NULL })

START_TEST(test_empty_set)
{
	Exclude *ex = NULL;

	ck_assert_int_eq(exclude_new(&ex), 0);
	ck_assert_uint_eq(exclude_count(ex), 0);
	ck_assert(!exclude_match(ex, "a", FILE_));
	ck_assert(!exclude_match(ex, "a/b", DIR_));
	exclude_free(ex);
	exclude_free(NULL);
}
END_TEST

START_TEST(test_invalid_patterns)
{
	Exclude *ex = MAKE("ok");

	ck_assert_int_eq(exclude_add(ex, ""), -EINVAL);
	ck_assert_int_eq(exclude_add(ex, "/"), -EINVAL);
	ck_assert_int_eq(exclude_add(ex, "//"), -EINVAL);
	ck_assert_uint_eq(exclude_count(ex), 1);
	exclude_free(ex);
}
END_TEST

START_TEST(test_basename_any_depth)
{
	Exclude *ex = MAKE("*.swp", "node_modules", "*~");

	ck_assert(exclude_match(ex, "a.swp", FILE_));
	ck_assert(exclude_match(ex, "src/a.swp", FILE_));
	ck_assert(exclude_match(ex, "src/deep/er/.main.c.swp", FILE_));
	ck_assert(exclude_match(ex, "node_modules", DIR_));
	ck_assert(exclude_match(ex, "web/app/node_modules", DIR_));
	ck_assert(exclude_match(ex, "web/node_modules", FILE_));
	ck_assert(exclude_match(ex, "notes.txt~", FILE_));
	ck_assert(exclude_match(ex, "a/b/notes.txt~", FILE_));

	ck_assert(!exclude_match(ex, "a.swpx", FILE_));
	ck_assert(!exclude_match(ex, "x.swp/inner", FILE_));
	ck_assert(!exclude_match(ex, "node_modules2", DIR_));
	ck_assert(!exclude_match(ex, "node_modules/x.js", FILE_));
	ck_assert(!exclude_match(ex, "my_node_modules", DIR_));
	ck_assert(!exclude_match(ex, "~notes", FILE_));
	exclude_free(ex);
}
END_TEST

START_TEST(test_path_anchored_at_root)
{
	Exclude *ex = MAKE("build/out", "docs/*.md");

	ck_assert(exclude_match(ex, "build/out", DIR_));
	ck_assert(exclude_match(ex, "build/out", FILE_));
	ck_assert(exclude_match(ex, "docs/readme.md", FILE_));

	ck_assert(!exclude_match(ex, "src/build/out", DIR_));
	ck_assert(!exclude_match(ex, "build/out/x", FILE_));
	ck_assert(!exclude_match(ex, "build/outer", FILE_));
	ck_assert(!exclude_match(ex, "out", FILE_));
	ck_assert(!exclude_match(ex, "x/docs/readme.md", FILE_));
	exclude_free(ex);
}
END_TEST

START_TEST(test_star_does_not_cross_slash)
{
	Exclude *ex = MAKE("docs/*.md", "*/tmp", "a/**");

	ck_assert(exclude_match(ex, "docs/a.md", FILE_));
	ck_assert(!exclude_match(ex, "docs/sub/a.md", FILE_));
	ck_assert(exclude_match(ex, "x/tmp", DIR_));
	ck_assert(!exclude_match(ex, "x/y/tmp", DIR_));
	ck_assert(!exclude_match(ex, "tmp", DIR_));
	/* "**" is not special: it is two '*', neither crossing '/'. */
	ck_assert(exclude_match(ex, "a/x", FILE_));
	ck_assert(!exclude_match(ex, "a/x/y", FILE_));
	exclude_free(ex);
}
END_TEST

START_TEST(test_trailing_slash_dir_only)
{
	Exclude *ex = MAKE(".git/", "build/cache/", "*.d/");

	ck_assert(exclude_match(ex, ".git", DIR_));
	ck_assert(exclude_match(ex, "vendor/lib/.git", DIR_));
	ck_assert(!exclude_match(ex, ".git", FILE_));
	ck_assert(!exclude_match(ex, "vendor/lib/.git", FILE_));
	ck_assert(!exclude_match(ex, ".gitignore", FILE_));

	ck_assert(exclude_match(ex, "build/cache", DIR_));
	ck_assert(!exclude_match(ex, "build/cache", FILE_));
	ck_assert(!exclude_match(ex, "x/build/cache", DIR_));

	ck_assert(exclude_match(ex, "etc/conf.d", DIR_));
	ck_assert(!exclude_match(ex, "etc/conf.d", FILE_));
	exclude_free(ex);
}
END_TEST

START_TEST(test_leading_slash_anchors)
{
	Exclude *ex = MAKE("/build", "/*.log", "/tmp/");

	ck_assert(exclude_match(ex, "build", DIR_));
	ck_assert(exclude_match(ex, "build", FILE_));
	ck_assert(!exclude_match(ex, "src/build", DIR_));
	ck_assert(exclude_match(ex, "a.log", FILE_));
	ck_assert(!exclude_match(ex, "d/a.log", FILE_));
	ck_assert(exclude_match(ex, "tmp", DIR_));
	ck_assert(!exclude_match(ex, "tmp", FILE_));
	ck_assert(!exclude_match(ex, "x/tmp", DIR_));
	exclude_free(ex);
}
END_TEST

START_TEST(test_classes_and_question_mark)
{
	Exclude *ex = MAKE("*.[oa]", "file?.txt", "log[0-9]", "[!a-z]*.bak",
	    "core\\*");

	ck_assert(exclude_match(ex, "main.o", FILE_));
	ck_assert(exclude_match(ex, "lib/libx.a", FILE_));
	ck_assert(!exclude_match(ex, "main.c", FILE_));
	ck_assert(exclude_match(ex, "file1.txt", FILE_));
	ck_assert(exclude_match(ex, "d/fileX.txt", FILE_));
	ck_assert(!exclude_match(ex, "file10.txt", FILE_));
	ck_assert(!exclude_match(ex, "file.txt", FILE_));
	ck_assert(exclude_match(ex, "log7", FILE_));
	ck_assert(!exclude_match(ex, "logx", FILE_));
	ck_assert(exclude_match(ex, "1old.bak", FILE_));
	ck_assert(!exclude_match(ex, "old.bak", FILE_));
	/* A backslash escapes: "core\*" is the literal name "core*". */
	ck_assert(exclude_match(ex, "core*", FILE_));
	ck_assert(!exclude_match(ex, "core.123", FILE_));
	exclude_free(ex);
}
END_TEST

START_TEST(test_hidden_names_match_star)
{
	Exclude *ex = MAKE("*.tmp", "cache/*");

	ck_assert(exclude_match(ex, ".hidden.tmp", FILE_));
	ck_assert(exclude_match(ex, "cache/.lock", FILE_));
	exclude_free(ex);
}
END_TEST

START_TEST(test_odd_names)
{
	Exclude *ex = MAKE("My Documents/", "résumé*.pdf", "-rf", "--*",
	    "dir with space/*.o", "日本語");

	ck_assert(exclude_match(ex, "home/My Documents", DIR_));
	ck_assert(!exclude_match(ex, "home/My Documents", FILE_));
	ck_assert(!exclude_match(ex, "My", DIR_));
	ck_assert(exclude_match(ex, "cv/résumé-2024.pdf", FILE_));
	ck_assert(!exclude_match(ex, "cv/resume-2024.pdf", FILE_));
	ck_assert(exclude_match(ex, "-rf", FILE_));
	ck_assert(exclude_match(ex, "a/-rf", FILE_));
	ck_assert(!exclude_match(ex, "a/-rfx", FILE_));
	ck_assert(exclude_match(ex, "--verbose", FILE_));
	ck_assert(!exclude_match(ex, "-v", FILE_));
	ck_assert(exclude_match(ex, "dir with space/a b.o", FILE_));
	ck_assert(!exclude_match(ex, "dir with space/sub/a.o", FILE_));
	ck_assert(exclude_match(ex, "文書/日本語", DIR_));
	ck_assert(!exclude_match(ex, "日本語2", DIR_));
	exclude_free(ex);
}
END_TEST

START_TEST(test_many_patterns_any_matches)
{
	Exclude *ex = MAKE("a", "b/", "c/d", "*.e");

	ck_assert(exclude_match(ex, "x/a", FILE_));
	ck_assert(exclude_match(ex, "x/b", DIR_));
	ck_assert(exclude_match(ex, "c/d", FILE_));
	ck_assert(exclude_match(ex, "x/y.e", FILE_));
	ck_assert(!exclude_match(ex, "x/b", FILE_));
	ck_assert(!exclude_match(ex, "x/c/d", FILE_));
	ck_assert(!exclude_match(ex, "z", DIR_));
	exclude_free(ex);
}
END_TEST

static Suite *
exclude_suite(void)
{
	Suite *s = suite_create("exclude");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_empty_set);
	tcase_add_test(tc, test_invalid_patterns);
	tcase_add_test(tc, test_basename_any_depth);
	tcase_add_test(tc, test_path_anchored_at_root);
	tcase_add_test(tc, test_star_does_not_cross_slash);
	tcase_add_test(tc, test_trailing_slash_dir_only);
	tcase_add_test(tc, test_leading_slash_anchors);
	tcase_add_test(tc, test_classes_and_question_mark);
	tcase_add_test(tc, test_hidden_names_match_star);
	tcase_add_test(tc, test_odd_names);
	tcase_add_test(tc, test_many_patterns_any_matches);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(exclude_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
