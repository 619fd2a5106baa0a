/*
 * Unit tests for dest/remote-rsync: the itemized lines and --stats
 * figures rsync 3.2+ writes, the exit-status table, and — with the real
 * rsync — that every option set the remote destination runs becomes a
 * server command line treesync-remote's allowlist accepts.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dest/remote-rsync.h"
#include "remote/cmdline.h"
#include "remote/rsync-allow.h"

START_TEST(test_items)
{
	static const struct {
		const char *line;
		RuleAction action;
		const char *name;
	} cases[] = {
		{ ">f+++++++++ a/new", RULE_COPY, "a/new" },
		{ ">f.st...... a b/x", RULE_COPY, "a b/x" },
		{ "cd+++++++++ a/c/", RULE_MKDIR, "a/c" },
		{ ".d..t...... a/", RULE_ATTRS, "a" },
		{ ".d..t...... ./", RULE_ATTRS, "" },
		{ "cL+++++++++ deep/sym", RULE_SYMLINK, "deep/sym" },
		{ "hf+++++++++ ab2", RULE_HARDLINK, "ab2" },
		{ ".f...p..... bin/tool", RULE_ATTRS, "bin/tool" },
		{ ".f          zz", RULE_NONE, "zz" },
		{ "*deleting   a/f1", RULE_DELETE, "a/f1" },
		{ ">f+++++++++ new\\#012line", RULE_COPY, "new\nline" },
	};
	char buf[256], *name;
	RuleAction a;

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(buf, sizeof buf, "%s", cases[i].line);
		ck_assert_msg(remote_parse_item(buf, &a, &name), "%s",
		    cases[i].line);
		ck_assert_int_eq(a, cases[i].action);
		ck_assert_str_eq(name, cases[i].name);
	}
	snprintf(buf, sizeof buf, "sent 280 bytes  received 75 bytes");
	ck_assert(!remote_parse_item(buf, &a, &name));
	snprintf(buf, sizeof buf, "Number of files: 8 (reg: 3, dir: 5)");
	ck_assert(!remote_parse_item(buf, &a, &name));
}
END_TEST

START_TEST(test_stats)
{
	SyncStats st = { 0 };

	ck_assert(remote_parse_stats_line("Number of files: 1,208 (reg: 3, "
	    "dir: 5)", &st));
	ck_assert(remote_parse_stats_line("Number of deleted files: 1 (reg: "
	    "1)", &st));
	ck_assert(remote_parse_stats_line("Number of regular files "
	    "transferred: 2", &st));
	ck_assert(remote_parse_stats_line("Total transferred file size: 6 "
	    "bytes", &st));
	ck_assert(remote_parse_stats_line("Deletions stopped due to "
	    "--max-delete limit (7 skipped)", &st));
	ck_assert(!remote_parse_stats_line("Literal data: 6 bytes", &st));
	ck_assert_uint_eq(st.entries_seen, 1208);
	ck_assert_uint_eq(st.deleted, 1);
	ck_assert_uint_eq(st.files_copied, 2);
	ck_assert_uint_eq(st.bytes_copied, 6);
	ck_assert_uint_eq(st.withheld, 7);
}
END_TEST

START_TEST(test_classify)
{
	static const struct {
		int status;
		const char *err;
		RemoteFault f;
	} cases[] = {
		{ 0, "", REMOTE_OK },
		{ 24, "file has vanished: \"/s/x\"", REMOTE_OK },
		{ 25, "Deletions stopped", REMOTE_OK },
		{ 23, "rsync: [receiver] mkstemp \"x\" failed: Permission "
		    "denied (13)", REMOTE_PARTIAL },
		{ 255, "ssh: connect to host 10.1.1.2 port 22: Connection "
		    "refused", REMOTE_AWAY },
		{ 12, "rsync: connection unexpectedly closed", REMOTE_AWAY },
		{ 30, "rsync error: timeout in data send/receive (code 30)",
		    REMOTE_AWAY },
		{ 35, "", REMOTE_AWAY },
		{ 255, "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! "
		    "@@@\nHost key verification failed.", REMOTE_HOST_KEY },
		{ 255, "tsync@h: Permission denied (publickey).", REMOTE_AUTH },
		{ 12, "treesync-remote: destination '/srv' is not the pinned "
		    "root 1:2", REMOTE_ROOT_CHANGED },
		{ 12, "treesync-remote: refused: option '--x' is not allowed",
		    REMOTE_FAILED },
		{ 11, "rsync: [receiver] write failed on \"/srv/big\": No space "
		    "left on device (28)", REMOTE_FAILED },
		{ 1, "rsync: syntax or usage error", REMOTE_FAILED },
	};
	char why[256];

	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		ck_assert_msg(remote_classify(cases[i].status, cases[i].err, why,
		    sizeof why) == cases[i].f, "%d %s", cases[i].status,
		    cases[i].err);
	ck_assert_int_eq(remote_error_errno("rsync: write failed on \"x\": No "
	    "space left on device (28)"), 28);
	ck_assert_int_eq(remote_error_errno("no number here"), 0);
	remote_classify(11, "a\nrsync: write failed: No space left (28)\n",
	    why, sizeof why);
	ck_assert_str_eq(why, "rsync: write failed: No space left (28)");
}
END_TEST

/* The server command line rsync writes for argv: its remote shell is a
 * script that saves its arguments and fails. */
static char *
server_line(char **argv, const char *dir)
{
	char script[512], out[512], **v;
	size_t n = 0;
	char *line = NULL;
	size_t cap = 0;
	FILE *f;
	pid_t pid;
	int st;

	snprintf(script, sizeof script, "%s/rsh", dir);
	snprintf(out, sizeof out, "%s/cmd", dir);
	f = fopen(script, "w");
	ck_assert_ptr_nonnull(f);
	fprintf(f, "#!/bin/sh\nshift\necho \"$*\" > %s\nexit 1\n", out);
	fclose(f);
	chmod(script, 0755);
	while (argv[n] != NULL)
		n++;
	v = calloc(n + 1, sizeof *v);
	for (size_t i = 0; i < n; i++)
		v[i] = strncmp(argv[i], "--rsh=", 6) == 0 ?
		    (asprintf(&v[i], "--rsh=%s", script), v[i]) : argv[i];
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", 1);

		dup2(null, 1);
		dup2(null, 2);
		execvp("rsync", v);
		_exit(127);
	}
	waitpid(pid, &st, 0);
	for (size_t i = 0; i < n; i++)
		if (v[i] != argv[i])
			free(v[i]);
	free(v);
	f = fopen(out, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_gt(getline(&line, &cap, f), 0);
	fclose(f);
	line[strcspn(line, "\n")] = '\0';
	return line;
}

START_TEST(test_runs_on_the_allowlist)
{
	RemoteConfig rc = { .name = "h", .host = "10.9.9.9", .port = 22,
	    .user = "tsync", .identity = "/k", .known_hosts = "/kh",
	    .timeout_s = 30, .bwlimit_kib = 20480, .control_path = "/run/c" };
	char *filters[] = { "-p .treesync.*", "-p *.swp", "-p /node_modules/",
	    NULL };
	RemoteRunSpec base = { .remote = &rc, .source = "/srv/src",
	    .root = "/srv/my site", .root_dev = 12, .root_ino = 34,
	    .temp_dir = ".treesync.0123abcd.1f", .filters = filters,
	    .implied_dirs = true, .max_delete = -1 };
	char dir[] = "/tmp/treesync-test-remote-rsync.XXXXXX";
	RemoteRunSpec specs[6];
	size_t n = 0;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	/* A batch, a big-file batch, a batch without deletes, a whole
	 * compare, a subtree compare, a dry run counting deletes. */
	specs[n] = base, specs[n].files_from = true, specs[n++].delete = true;
	specs[n] = base, specs[n].files_from = true, specs[n].delete = true,
	    specs[n++].implied_dirs = false;
	specs[n] = base, specs[n++].files_from = true;
	specs[n] = base, specs[n].recursive = true, specs[n].delete = true,
	    specs[n].stats = true, specs[n++].max_delete = 100;
	specs[n] = base, specs[n].recursive = true, specs[n].files_from = true,
	    specs[n].delete = true, specs[n].checksum = true,
	    specs[n++].stats = true;
	specs[n] = base, specs[n].recursive = true, specs[n].delete = true,
	    specs[n].dry_run = true, specs[n++].stats = true;
	for (size_t i = 0; i < n; i++) {
		char **argv = remote_rsync_argv(&specs[i]);
		char *line = server_line(argv, dir), *rs, why[256];
		RsyncRequest req;
		CmdLine cl;

		/* "treesync-remote --root-id=12:34 rsync --server ..." */
		ck_assert_msg(strncmp(line, "treesync-remote --root-id=12:34 "
		    "rsync --server ", 45) == 0, "%s", line);
		rs = line + strlen("treesync-remote --root-id=12:34 ");
		ck_assert_int_eq(cmdline_split(rs, &cl, NULL), 0);
		ck_assert_msg(rsync_allow_check(cl.word, cl.n, &req, why,
		    sizeof why) == 0, "refused: %s: %s", why, line);
		ck_assert_str_eq(req.dest, "/srv/my site/");
		ck_assert_str_eq(req.temp_dir, ".treesync.0123abcd.1f");
		rsync_request_free(&req);
		cmdline_free(&cl);
		free(line);
		remote_argv_free(argv);
	}
	{
		char cmd[600];

		snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
		ck_assert_int_eq(system(cmd), 0);
	}
}
END_TEST

START_TEST(test_ops_command)
{
	char *c = remote_ops_command("/srv/my site/it's", 1, 2);

	ck_assert_str_eq(c, "treesync-remote --root-id=1:2 ops "
	    "/srv/my\\ site/it\\'s");
	free(c);
	c = remote_ops_command("/srv/x", 0, 0);
	ck_assert_str_eq(c, "treesync-remote ops /srv/x");
	free(c);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("remote-rsync");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_items);
	tcase_add_test(tc, test_stats);
	tcase_add_test(tc, test_classify);
	tcase_add_test(tc, test_runs_on_the_allowlist);
	tcase_add_test(tc, test_ops_command);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
