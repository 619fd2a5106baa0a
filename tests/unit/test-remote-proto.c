/*
 * Unit tests for remote-proto: the ops protocol's lines, as both sides
 * encode and decode them (include/dest/remote-proto.h is the contract).
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dest/remote-proto.h"

START_TEST(test_request_round_trip)
{
	/* Every byte a name may hold but NUL and '/', and the ones that
	 * would break a line. */
	char name[300], out[REMOTE_PROTO_MAX_LINE], copy[REMOTE_PROTO_MAX_LINE];
	const char *args[2];
	RemoteProtoLine l;
	int n, k = 0;

	for (int c = 1; c < 256; c++)
		if (c != '/')
			name[k++] = (char)c;
	name[k] = '\0';
	args[0] = name;
	args[1] = "dir with space/new\nline%25";
	n = remote_proto_format_request(out, sizeof out, 42, "RENAME", args, 2);
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(out[n - 1], '\n');
	ck_assert_ptr_null(memchr(out, '\n', (size_t)n - 1));
	memcpy(copy, out, (size_t)n);
	ck_assert_int_eq(remote_proto_parse(copy, (size_t)n, &l), 0);
	ck_assert_uint_eq(l.id, 42);
	ck_assert_str_eq(l.word, "RENAME");
	ck_assert_uint_eq(l.nfields, 2);
	ck_assert_str_eq(l.field[0], name);
	ck_assert_uint_eq(l.len[0], strlen(name));
	ck_assert_str_eq(l.field[1], args[1]);
	/* Printable bytes travel as themselves. */
	ck_assert_ptr_nonnull(strstr(out, "dir%20with%20space/new%0Aline%2525"));
}
END_TEST

START_TEST(test_responses)
{
	char out[512];
	const char *const kv[][2] = { { "exists", "1" }, { "dev", "2049" },
	    { "msg", "a b" } };
	RemoteProtoLine l;
	int n;

	n = remote_proto_format_ok(out, sizeof out, 7, kv, 3);
	ck_assert_str_eq(out, "7 OK exists=1 dev=2049 msg=a%20b\n");
	ck_assert_int_eq(remote_proto_parse(out, (size_t)n, &l), 0);
	ck_assert_int_eq(remote_proto_status(&l), 0);
	ck_assert_str_eq(remote_proto_field(&l, "dev"), "2049");
	ck_assert_str_eq(remote_proto_field(&l, "msg"), "a b");
	ck_assert_ptr_null(remote_proto_field(&l, "de"));
	ck_assert_ptr_null(remote_proto_field(&l, "inode"));

	n = remote_proto_format_error(out, sizeof out, 8, ENOENT,
	    "rename 'a' -> 'b': No such file or directory");
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq(remote_proto_parse(out, (size_t)n, &l), 0);
	ck_assert_uint_eq(l.id, 8);
	ck_assert_str_eq(l.word, "ENOENT");
	ck_assert_int_eq(remote_proto_status(&l), ENOENT);
	ck_assert_uint_eq(l.nfields, 1);
	ck_assert_str_eq(l.field[0], "rename 'a' -> 'b': No such file or "
	    "directory");

	/* An errno without a name here travels as its number. */
	n = remote_proto_format_error(out, sizeof out, 9, 4000, "x");
	ck_assert_str_eq(out, "9 E4000 x\n");
	ck_assert_int_eq(remote_proto_parse(out, (size_t)n, &l), 0);
	ck_assert_int_eq(remote_proto_status(&l), 4000);
	/* Id 0 answers a line whose id could not be read. */
	n = remote_proto_format_error(out, sizeof out, 0, EPROTO, "bad");
	ck_assert_str_eq(out, "0 EPROTO bad\n");
	/* A status nobody knows is a protocol error, not success. */
	strcpy(out, "3 EWHATEVER x\n");
	ck_assert_int_eq(remote_proto_parse(out, strlen(out), &l), 0);
	ck_assert_int_eq(remote_proto_status(&l), EPROTO);
}
END_TEST

START_TEST(test_errno_names)
{
	static const int errs[] = { ENOENT, EXDEV, ELOOP, ENOTEMPTY, ENOSPC,
	    EACCES, EROFS, ESTALE, EBUSY, EINVAL, EDQUOT, ENOTDIR, EISDIR };

	for (size_t i = 0; i < sizeof errs / sizeof errs[0]; i++) {
		const char *name = remote_proto_errno_name(errs[i]);

		ck_assert_ptr_nonnull(name);
		ck_assert_int_eq(remote_proto_errno_from_name(name), errs[i]);
	}
	ck_assert_int_eq(remote_proto_errno_from_name("E17"), 17);
	ck_assert_int_eq(remote_proto_errno_from_name("E0"), 0);
	ck_assert_int_eq(remote_proto_errno_from_name("E-1"), 0);
	ck_assert_int_eq(remote_proto_errno_from_name("E12x"), 0);
	ck_assert_int_eq(remote_proto_errno_from_name("OK"), 0);
	ck_assert_int_eq(remote_proto_errno_from_name("E"), 0);
}
END_TEST

static int
parse_str(const char *s)
{
	char buf[256];
	RemoteProtoLine l;

	snprintf(buf, sizeof buf, "%s", s);
	return remote_proto_parse(buf, strlen(buf), &l);
}

START_TEST(test_broken_lines)
{
	ck_assert_int_eq(parse_str("1 PROBE\n"), 0);
	ck_assert_int_eq(parse_str("1 PROBE"), 0);
	ck_assert_int_eq(parse_str("\n"), -EPROTO);
	ck_assert_int_eq(parse_str("PROBE\n"), -EPROTO);
	ck_assert_int_eq(parse_str("1\n"), -EPROTO);
	ck_assert_int_eq(parse_str("1 \n"), -EPROTO);
	ck_assert_int_eq(parse_str("01 PROBE\n"), -EPROTO);
	ck_assert_int_eq(parse_str("-1 PROBE\n"), -EPROTO);
	ck_assert_int_eq(parse_str("99999999999999999999 PROBE\n"), -EPROTO);
	ck_assert_int_eq(parse_str("9223372036854775808 PROBE\n"), -EPROTO);
	ck_assert_int_eq(parse_str("9223372036854775807 PROBE\n"), 0);
	ck_assert_int_eq(parse_str("1 DELETE  a\n"), -EPROTO);
	ck_assert_int_eq(parse_str("1 DELETE a \n"), -EPROTO);
	ck_assert_int_eq(parse_str("1 DELETE a%2\n"), -EPROTO);
	ck_assert_int_eq(parse_str("1 DELETE a%zz\n"), -EPROTO);
	ck_assert_int_eq(parse_str("1 DELETE a%\n"), -EPROTO);
	ck_assert_int_eq(parse_str("1 DELETE a%2f\n"), 0);
	ck_assert_int_eq(parse_str("1 A 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 "
	    "16\n"), 0);
	ck_assert_int_eq(parse_str("1 A 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 "
	    "16 17\n"), -EPROTO);
	{
		/* Two lines handed over as one. */
		char buf[] = "1 A b\nc\n";
		RemoteProtoLine l;

		ck_assert_int_eq(remote_proto_parse(buf, sizeof buf - 1, &l),
		    -EPROTO);
	}
}
END_TEST

START_TEST(test_format_limits)
{
	char out[16];
	const char *args[] = { "abcdefghijklmnopqrstuvwxyz" };
	const char *none[] = { NULL };

	ck_assert_int_eq(remote_proto_format_request(out, sizeof out, 1,
	    "DELETE", args, 1), -ENOSPC);
	ck_assert_int_eq(remote_proto_format_request(out, sizeof out, 0,
	    "PROBE", none, 0), -EINVAL);
	ck_assert_int_eq(remote_proto_format_request(out, sizeof out, 1,
	    "probe", none, 0), -EINVAL);
	ck_assert_int_eq(remote_proto_format_request(out, sizeof out, 1,
	    "PROBE", none, 0), 8);
	ck_assert_str_eq(out, "1 PROBE\n");
	{
		/* A line may not exceed the limit whatever the buffer. */
		static char big[2 * REMOTE_PROTO_MAX_LINE];
		static char arg[REMOTE_PROTO_MAX_LINE];
		const char *a[] = { arg };

		memset(arg, 'x', sizeof arg - 1);
		ck_assert_int_eq(remote_proto_format_request(big, sizeof big,
		    1, "DELETE", a, 1), -ENOSPC);
	}
}
END_TEST

START_TEST(test_paths)
{
#define OK_(p) ck_assert(remote_proto_valid_path(p, strlen(p)))
#define BAD(p) ck_assert(!remote_proto_valid_path(p, strlen(p)))
	OK_("a");
	OK_("a/b/c");
	OK_("..a/b..");
	OK_(".hidden/...");
	OK_("a b/\n/c");
	BAD("");
	BAD("/a");
	BAD("a/");
	BAD("a//b");
	BAD(".");
	BAD("..");
	BAD("a/../b");
	BAD("a/./b");
	BAD("a/..");
	BAD("../a");
	ck_assert(!remote_proto_valid_path("a\0b", 3));
	{
		char longp[REMOTE_PROTO_MAX_PATH + 2];

		memset(longp, 'a', sizeof longp);
		longp[REMOTE_PROTO_MAX_PATH] = '\0';
		OK_(longp);
		longp[REMOTE_PROTO_MAX_PATH] = 'a';
		longp[REMOTE_PROTO_MAX_PATH + 1] = '\0';
		BAD(longp);
	}
#undef OK_
#undef BAD
}
END_TEST

START_TEST(test_temp_names)
{
	bool same;

	ck_assert(remote_proto_is_temp_name(".treesync.0123abcd.1", NULL,
	    &same));
	ck_assert(!same);
	ck_assert(remote_proto_is_temp_name(".treesync.0123abcd.ffffffffffffffff",
	    "0123abcd", &same));
	ck_assert(same);
	ck_assert(remote_proto_is_temp_name(".treesync.0123abcd.1a",
	    "deadbeef", &same));
	ck_assert(!same);
	/* User data that merely starts with the prefix is not ours. */
	ck_assert(!remote_proto_is_temp_name(".treesync.partial", NULL, NULL));
	ck_assert(!remote_proto_is_temp_name(".treesync.notes", NULL, NULL));
	ck_assert(!remote_proto_is_temp_name(".treesync.0123ABCD.1", NULL,
	    NULL));
	ck_assert(!remote_proto_is_temp_name(".treesync.0123abc.1", NULL,
	    NULL));
	ck_assert(!remote_proto_is_temp_name(".treesync.0123abcd.", NULL,
	    NULL));
	ck_assert(!remote_proto_is_temp_name(".treesync.0123abcd.1.x", NULL,
	    NULL));
	ck_assert(!remote_proto_is_temp_name(".treesync.0123abcd.11111111111111111",
	    NULL, NULL));
	ck_assert(!remote_proto_is_temp_name("x.treesync.0123abcd.1", NULL,
	    NULL));
	ck_assert(remote_proto_valid_tag("0123abcd"));
	ck_assert(!remote_proto_valid_tag("0123abc"));
	ck_assert(!remote_proto_valid_tag("0123abcg"));
	ck_assert(!remote_proto_valid_tag("0123abcde"));
}
END_TEST

START_TEST(test_line_length)
{
	static char big[REMOTE_PROTO_MAX_LINE + 10];

	ck_assert_int_eq(remote_proto_line_length("1 PROBE\n2", 9), 8);
	ck_assert_int_eq(remote_proto_line_length("1 PRO", 5), 0);
	memset(big, 'x', sizeof big);
	ck_assert_int_eq(remote_proto_line_length(big,
	    REMOTE_PROTO_MAX_LINE - 1), 0);
	ck_assert_int_eq(remote_proto_line_length(big, sizeof big), -EMSGSIZE);
	big[REMOTE_PROTO_MAX_LINE - 1] = '\n';
	ck_assert_int_eq(remote_proto_line_length(big, sizeof big),
	    REMOTE_PROTO_MAX_LINE);
}
END_TEST

static Suite *
remote_proto_suite(void)
{
	Suite *s = suite_create("remote-proto");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_request_round_trip);
	tcase_add_test(tc, test_responses);
	tcase_add_test(tc, test_errno_names);
	tcase_add_test(tc, test_broken_lines);
	tcase_add_test(tc, test_format_limits);
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_temp_names);
	tcase_add_test(tc, test_line_length);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(remote_proto_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
