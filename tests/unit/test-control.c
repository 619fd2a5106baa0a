/*
 * Unit tests for control_parse: the request lines treesyncctl sends and
 * the malformed ones a peer could send instead.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/control_parse.h"

static ControlRequest req;

static int
parse(const char *s)
{
	return control_parse(s, strlen(s), &req);
}

static void
bad(const char *s, const char *why)
{
	ck_assert_msg(parse(s) == -EINVAL, "accepted '%s'", s);
	ck_assert_ptr_nonnull(req.error);
	ck_assert_msg(strstr(req.error, why) != NULL, "'%s': error '%s' lacks "
	    "'%s'", s, req.error, why);
}

START_TEST(test_every_command)
{
	ck_assert_int_eq(parse("status\n"), 0);
	ck_assert_int_eq(req.command, CONTROL_STATUS);
	ck_assert(!req.json);
	ck_assert_str_eq(req.name, "");
	ck_assert_int_eq(parse("status --json\n"), 0);
	ck_assert(req.json);
	ck_assert_int_eq(parse("resync projects\n"), 0);
	ck_assert_int_eq(req.command, CONTROL_RESYNC);
	ck_assert(!req.force);
	ck_assert_str_eq(req.name, "projects");
	ck_assert_int_eq(parse("resync --force my-pair.2_b\n"), 0);
	ck_assert(req.force);
	ck_assert_str_eq(req.name, "my-pair.2_b");
	ck_assert_int_eq(parse("pause a\n"), 0);
	ck_assert_int_eq(req.command, CONTROL_PAUSE);
	ck_assert_str_eq(req.name, "a");
	ck_assert_int_eq(parse("resume a\n"), 0);
	ck_assert_int_eq(req.command, CONTROL_RESUME);
	ck_assert_int_eq(parse("reload\n"), 0);
	ck_assert_int_eq(req.command, CONTROL_RELOAD);
	ck_assert_int_eq(parse("metrics\n"), 0);
	ck_assert_int_eq(req.command, CONTROL_METRICS);
	ck_assert_str_eq(control_command_name(CONTROL_METRICS), "metrics");
	ck_assert_int_eq(parse("diff projects\n"), 0);
	ck_assert_int_eq(req.command, CONTROL_DIFF);
	ck_assert_str_eq(req.name, "projects");
	ck_assert_int_eq(parse("diff\n"), -EINVAL);
	ck_assert_int_eq(parse("diff --force a\n"), -EINVAL);
}
END_TEST

START_TEST(test_spacing_and_newline)
{
	/* No newline, extra spaces, option after the name. */
	ck_assert_int_eq(parse("status"), 0);
	ck_assert_int_eq(parse("  pause   x  \n"), 0);
	ck_assert_str_eq(req.name, "x");
	ck_assert_int_eq(parse("resync x --force"), 0);
	ck_assert(req.force);
	ck_assert_str_eq(req.name, "x");
	/* Only the given length counts, not what follows. */
	ck_assert_int_eq(control_parse("pause abcdef", 8, &req), 0);
	ck_assert_str_eq(req.name, "ab");
}
END_TEST

START_TEST(test_rejects)
{
	bad("", "empty");
	bad("\n", "empty");
	bad("   \n", "empty");
	bad("stat\n", "unknown command");
	bad("STATUS\n", "unknown command");
	bad("statusx\n", "unknown command");
	bad("status --force\n", "unknown option");
	bad("resync --json a\n", "unknown option");
	bad("pause --force a\n", "unknown option");
	bad("status extra\n", "too many");
	bad("reload now\n", "too many");
	bad("pause a b\n", "too many");
	bad("pause\n", "missing");
	bad("resync --force\n", "missing");
	bad("pause a/b\n", "sync name");
	bad("pause ../x\n", "sync name");
	bad("pause a\tb\n", "printable");
	bad("pause a\n\n", "printable");
	bad("pause \xc3\xa9\n", "printable");
	bad("status\r\n", "printable");
	ck_assert_int_eq(control_parse(NULL, 0, &req), -EINVAL);
	/* A NUL inside the line. */
	ck_assert_int_eq(control_parse("pause a\0b\n", 10, &req), -EINVAL);
}
END_TEST

START_TEST(test_lengths)
{
	char line[CONTROL_LINE_MAX + 8];
	char name[CONTROL_NAME_MAX + 2];

	memset(name, 'n', sizeof name);
	name[CONTROL_NAME_MAX] = '\0';
	snprintf(line, sizeof line, "pause %s\n", name);
	ck_assert_int_eq(parse(line), 0);
	ck_assert_uint_eq(strlen(req.name), CONTROL_NAME_MAX);
	name[CONTROL_NAME_MAX] = 'n';
	name[CONTROL_NAME_MAX + 1] = '\0';
	snprintf(line, sizeof line, "pause %s\n", name);
	bad(line, "too long");
	/* A line of exactly the limit passes the length check. */
	memset(line, ' ', CONTROL_LINE_MAX);
	memcpy(line, "status", 6);
	line[CONTROL_LINE_MAX - 1] = '\n';
	ck_assert_int_eq(control_parse(line, CONTROL_LINE_MAX, &req), 0);
	line[CONTROL_LINE_MAX - 1] = ' ';
	line[CONTROL_LINE_MAX] = '\n';
	ck_assert_int_eq(control_parse(line, CONTROL_LINE_MAX + 1, &req),
	    -EINVAL);
	ck_assert_str_eq(req.error, "request too long");
}
END_TEST

/* Every byte value at every position of a short line: no crash, and
 * success only for lines that are still well-formed. */
START_TEST(test_all_bytes)
{
	const char *base = "resync --force ab\n";
	size_t n = strlen(base);
	char line[32];

	for (size_t pos = 0; pos < n; pos++)
		for (int b = 0; b < 256; b++) {
			memcpy(line, base, n);
			line[pos] = (char)b;
			if (control_parse(line, n, &req) == 0) {
				ck_assert_int_eq(req.command, CONTROL_RESYNC);
				ck_assert(strlen(req.name) <= 3);
			} else {
				ck_assert_ptr_nonnull(req.error);
			}
		}
}
END_TEST

static Suite *
control_suite(void)
{
	Suite *s = suite_create("control");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, test_every_command);
	tcase_add_test(tc, test_spacing_and_newline);
	tcase_add_test(tc, test_rejects);
	tcase_add_test(tc, test_lengths);
	tcase_add_test(tc, test_all_bytes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(control_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
