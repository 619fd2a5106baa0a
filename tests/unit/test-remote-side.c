/*
 * Unit tests for treesync-remote's modules: splitting the command line,
 * the rsync allowlist, naming a destination beneath DIR, opening paths
 * beneath a root (openat2 and the fallback walk), and the tree operations.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "remote/beneath.h"
#include "remote/cmdline.h"
#include "remote/fsops.h"
#include "remote/rsync-allow.h"

START_TEST(test_split)
{
	CmdLine cl;
	size_t bad = 0;

	ck_assert_int_eq(cmdline_split("rsync --server  -logDtpre.iLsfxCIvu "
	    ". /srv/my\\ site/it\\'s\\$x\\\nz", &cl, &bad), 0);
	ck_assert_uint_eq(cl.n, 5);
	ck_assert_str_eq(cl.word[0], "rsync");
	ck_assert_str_eq(cl.word[3], ".");
	ck_assert_str_eq(cl.word[4], "/srv/my site/it's$x\nz");
	ck_assert_ptr_null(cl.word[5]);
	cmdline_free(&cl);
	/* Wildcards are literal: no shell sees them. */
	ck_assert_int_eq(cmdline_split("a b*c?[d]", &cl, &bad), 0);
	ck_assert_str_eq(cl.word[1], "b*c?[d]");
	cmdline_free(&cl);

	ck_assert_int_eq(cmdline_split("", &cl, &bad), -EINVAL);
	ck_assert_int_eq(cmdline_split(" \t ", &cl, &bad), -EINVAL);
	ck_assert_int_eq(cmdline_split("rsync; rm -rf /", &cl, &bad), -EINVAL);
	ck_assert_uint_eq(bad, 5);
	ck_assert_int_eq(cmdline_split("a $(id)", &cl, &bad), -EINVAL);
	ck_assert_int_eq(cmdline_split("a `id`", &cl, &bad), -EINVAL);
	ck_assert_int_eq(cmdline_split("a 'b c'", &cl, &bad), -EINVAL);
	ck_assert_int_eq(cmdline_split("a \"b\"", &cl, &bad), -EINVAL);
	ck_assert_int_eq(cmdline_split("a|b", &cl, &bad), -EINVAL);
	ck_assert_int_eq(cmdline_split("a>b", &cl, &bad), -EINVAL);
	ck_assert_int_eq(cmdline_split("a\nb", &cl, &bad), -EINVAL);
	ck_assert_int_eq(cmdline_split("a&", &cl, &bad), -EINVAL);
	ck_assert_int_eq(cmdline_split("a\\", &cl, &bad), -EINVAL);
	ck_assert_uint_eq(bad, 1);
}
END_TEST

static int
check(const char *line, RsyncRequest *req, char *why)
{
	CmdLine cl;
	static CmdLine keep;
	int r;

	ck_assert_int_eq(cmdline_split(line, &cl, NULL), 0);
	r = rsync_allow_check(cl.word, cl.n, req, why, 256);
	/* The request points into the words: keep them until the next. */
	cmdline_free(&keep);
	keep = cl;
	return r;
}

/* The command lines rsync 3.5.0 writes for treesyncd's option sets
 * (measured: rsync -e 'sh -c "echo \"$*\"" --' ...). */
static const char *const accepted[] = {
	/* The daemon's full compare and live batch (tests/remote). */
	"rsync --server -lHogDtpAXre.iLsfxCIvu --log-format=%i --timeout=30 "
	    "--delete -@-1 --partial-dir .treesync.partial --numeric-ids "
	    "--temp-dir .treesync.0123abcd.1 . /srv/site/",
	"rsync --server -nlHogDtpAXre.iLsfxCIvu --log-format=%i --timeout=30 "
	    "--max-delete=100 --delete -@-1 --partial-dir .treesync.partial "
	    "--numeric-ids --temp-dir .treesync.0123abcd.1 . /srv/site/",
	"rsync --server -ldHogDtpAXRe.LsfxCIvu --no-r --log-format=%i "
	    "--timeout=30 --delete --delete-missing-args -@-1 --partial-dir "
	    ".treesync.partial --numeric-ids --temp-dir .treesync.0123abcd.2 . "
	    "/srv/site/",
	"rsync --server -lHogDtpAXre.iLsfxCIvu --numeric-ids . /srv/site/",
	"rsync --server -lHogDtpAXRe.LsfxCIvu --timeout=30 "
	    "--delete-missing-args --partial-dir .treesync.partial "
	    "--numeric-ids --temp-dir .treesync.0123abcd.1 . /srv/site/",
	"rsync --server -lHogDtpAXRe.LsfxCIvu --log-format=%i --timeout=30 "
	    "--bwlimit=20480 --delete-missing-args --numeric-ids "
	    "--no-implied-dirs . /srv/site/",
	"rsync --server -nlHogDtpAXre.iLsfxCIvu --log-format=%i --timeout=30 "
	    "--max-delete=100 --delete --numeric-ids . /srv/site/",
	"rsync --server -lWHogDtpAXrcxSze.iLsfxCIvu --delete-during "
	    "--numeric-ids --fsync . /srv/site/",
	"rsync --server -vlogDtpre.iLsfxCIvu --stats . /srv/site/",
	"rsync --server -logDtpRe.LsfxCIvu . /srv/a\\ b*c?\\$x",
	"rsync --server -ldHogDtpAXRe.LsfxCIvu --no-r --delete "
	    "--delete-missing-args -@-1 --numeric-ids . /srv/site/",
	"rsync --server -logDtpre31.iLsfxCIvu --max-delete=-1 "
	    "--partial-dir=.treesync.partial --temp-dir=.treesync.deadbeef.ff "
	    "--compress-choice=zstd --compress-level=3 . x",
};

static const char *const refused[] = {
	"rsync",
	"rsync -logDtpre.iLsfxCIvu . /srv/site",
	"/usr/bin/rsync --server -logDtpre.iLsfxCIvu . /srv/site",
	"rsync --server --sender -logDtpre.iLsfxCIvu . /srv/site",
	"rsync --server -slogDtpre.iLsfxCIvu . /srv/site",
	"rsync --server -Klogtpre.iLsfxCIvu . /srv/site",
	"rsync --server -Llogtpre.iLsfxCIvu . /srv/site",
	"rsync --server -klogtpre.iLsfxCIvu . /srv/site",
	"rsync --server -blogtpre.iLsfxCIvu . /srv/site",
	"rsync --server -logDtpre.iL-sfxCIvu . /srv/site",
	"rsync --server -logDtpr --partial . /srv/site",
	"rsync --server -logDtpr --inplace . /srv/site",
	"rsync --server -logDtpr --append . /srv/site",
	"rsync --server -logDtpr --delete-excluded . /srv/site",
	"rsync --server -logDtpr --ignore-errors . /srv/site",
	"rsync --server -logDtpr --backup-dir /tmp . /srv/site",
	"rsync --server -logDtpr --link-dest=/etc . /srv/site",
	"rsync --server -logDtpr --log-file=/etc/passwd . /srv/site",
	"rsync --server -logDtpr --files-from=- . /srv/site",
	"rsync --server -logDtpr --temp-dir /tmp . /srv/site",
	"rsync --server -logDtpr --temp-dir ../x . /srv/site",
	"rsync --server -logDtpr --temp-dir .treesync.x . /srv/site",
	"rsync --server -logDtpr --temp-dir . /srv/site",
	"rsync --server -logDtpr --partial-dir /tmp . /srv/site",
	"rsync --server -logDtpr --partial-dir .rsync-partial . /srv/site",
	"rsync --server -logDtpr --timeout=x . /srv/site",
	"rsync --server -logDtpr --timeout . /srv/site",
	"rsync --server -logDtpr --max-delete=-2 . /srv/site",
	"rsync --server -logDtpr --log-format=%f . /srv/site",
	"rsync --server -logDtpr --numeric-ids=1 . /srv/site",
	"rsync --server -logDtpr --munge-links . /srv/site",
	"rsync --server -logDtpr --copy-unsafe-links . /srv/site",
	"rsync --server -logDtpr --delay-updates . /srv/site",
	"rsync --server -logDtpr --iconv=utf8 . /srv/site",
	"rsync --server -logDtpr -B1024 . /srv/site",
	"rsync --server -logDtpr /srv/site",
	"rsync --server -logDtpr .",
	"rsync --server -logDtpr . /srv/a /srv/b",
	"rsync --server -logDtpr bogus . /srv/site",
	"rsync --server - . /srv/site",
	"rsync --server -logDtpr -@x . /srv/site",
};

START_TEST(test_allowlist)
{
	RsyncRequest req;
	char why[256];

	for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
		ck_assert_msg(check(accepted[i], &req, why) == 0, "'%s': %s",
		    accepted[i], why);
		ck_assert_str_eq(req.argv[0], "rsync");
		ck_assert_str_eq(req.argv[1], "--server");
		ck_assert_str_eq(req.argv[req.argc - 2], ".");
		ck_assert_str_eq(req.argv[req.argc - 1], ".");
		ck_assert_ptr_null(req.argv[req.argc]);
		rsync_request_free(&req);
	}
	ck_assert_int_eq(check(accepted[4], &req, why), 0);
	ck_assert_str_eq(req.temp_dir, ".treesync.0123abcd.1");
	ck_assert_str_eq(req.dest, "/srv/site/");
	rsync_request_free(&req);
	ck_assert_int_eq(check(accepted[9], &req, why), 0);
	ck_assert_str_eq(req.dest, "/srv/a b*c?$x");
	rsync_request_free(&req);

	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		why[0] = '\0';
		ck_assert_msg(check(refused[i], &req, why) == -EPERM,
		    "'%s' accepted", refused[i]);
		ck_assert_msg(why[0] != '\0', "'%s': no reason", refused[i]);
		ck_assert_ptr_null(req.argv);
	}
	/* The reason names the word. */
	check("rsync --server --sender -lr . /x", &req, why);
	ck_assert_ptr_nonnull(strstr(why, "--sender"));
	check("rsync --server -lrK . /x", &req, why);
	ck_assert_ptr_nonnull(strstr(why, "'-K'"));
}
END_TEST

START_TEST(test_relative_dest)
{
	char rel[256];

	ck_assert_int_eq(beneath_relative_dest("/srv/site", "/srv/site", rel,
	    sizeof rel), 0);
	ck_assert_str_eq(rel, "");
	ck_assert_int_eq(beneath_relative_dest("/srv/site/", "/srv//site/./",
	    rel, sizeof rel), 0);
	ck_assert_str_eq(rel, "");
	ck_assert_int_eq(beneath_relative_dest("/srv/site", "/srv/site/a//b/",
	    rel, sizeof rel), 0);
	ck_assert_str_eq(rel, "a/b");
	ck_assert_int_eq(beneath_relative_dest("/srv/site", "a/./b", rel,
	    sizeof rel), 0);
	ck_assert_str_eq(rel, "a/b");
	ck_assert_int_eq(beneath_relative_dest("/srv/site", ".", rel,
	    sizeof rel), 0);
	ck_assert_str_eq(rel, "");
	ck_assert_int_eq(beneath_relative_dest("/", "/etc", rel, sizeof rel),
	    0);
	ck_assert_str_eq(rel, "etc");

	ck_assert_int_eq(beneath_relative_dest("/srv/site", "/srv/sites", rel,
	    sizeof rel), -EXDEV);
	ck_assert_int_eq(beneath_relative_dest("/srv/site", "/srv", rel,
	    sizeof rel), -EXDEV);
	ck_assert_int_eq(beneath_relative_dest("/srv/site", "/etc/x", rel,
	    sizeof rel), -EXDEV);
	ck_assert_int_eq(beneath_relative_dest("/srv/site", "../x", rel,
	    sizeof rel), -EXDEV);
	ck_assert_int_eq(beneath_relative_dest("/srv/site", "a/../../x", rel,
	    sizeof rel), -EXDEV);
	ck_assert_int_eq(beneath_relative_dest("/srv/site", "/srv/site/..",
	    rel, sizeof rel), -EXDEV);
	ck_assert_int_eq(beneath_relative_dest("/srv/site", "", rel,
	    sizeof rel), -EINVAL);
	ck_assert_int_eq(beneath_relative_dest("/srv/site", "/srv/site/abc",
	    rel, 3), -ENAMETOOLONG);
}
END_TEST

static char root_path[64];
static int root_fd = -1;

static int
rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void
put(const char *rel)
{
	char path[256];
	int fd;

	snprintf(path, sizeof path, "%s/%s", root_path, rel);
	if (rel[strlen(rel) - 1] == '/') {
		ck_assert_int_eq(mkdir(path, 0755), 0);
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
	ck_assert_int_ge(fd, 0);
	close(fd);
}

static bool
exists(const char *rel)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof path, "%s/%s", root_path, rel);
	return lstat(path, &st) == 0;
}

/* root/ in/ in/d/ in/d/f, out/ out/secret, in/link -> ../out,
 * in/abs -> <root>/out, in/dlink -> d */
static void
setup(void)
{
	char target[128], path[256];

	snprintf(root_path, sizeof root_path, "/tmp/test-remote-side.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root_path));
	put("in/");
	put("in/d/");
	put("in/d/f");
	put("out/");
	put("out/secret");
	snprintf(path, sizeof path, "%s/in/link", root_path);
	ck_assert_int_eq(symlink("../out", path), 0);
	snprintf(target, sizeof target, "%s/out", root_path);
	snprintf(path, sizeof path, "%s/in/abs", root_path);
	ck_assert_int_eq(symlink(target, path), 0);
	snprintf(path, sizeof path, "%s/in/dlink", root_path);
	ck_assert_int_eq(symlink("d", path), 0);
	snprintf(path, sizeof path, "%s/in", root_path);
	root_fd = open(path, O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(root_fd, 0);
}

static void
teardown(void)
{
	close(root_fd);
	(void)nftw(root_path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	unsetenv("TREESYNC_NO_OPENAT2");
}

static void
open_cases(void)
{
	const char *base;
	int fd;

	fd = beneath_open(root_fd, "d/f", O_RDONLY);
	ck_assert_int_ge(fd, 0);
	close(fd);
	fd = beneath_open(root_fd, "", O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(beneath_open(root_fd, "link/secret", O_RDONLY),
	    -ELOOP);
	ck_assert_int_eq(beneath_open(root_fd, "abs/secret", O_RDONLY), -ELOOP);
	ck_assert_int_eq(beneath_open(root_fd, "dlink/f", O_RDONLY), -ELOOP);
	ck_assert_int_eq(beneath_open(root_fd, "link", O_RDONLY | O_DIRECTORY),
	    -ELOOP);
	ck_assert_int_eq(beneath_open(root_fd, "../out/secret", O_RDONLY),
	    -EXDEV);
	ck_assert_int_eq(beneath_open(root_fd, "/etc/passwd", O_RDONLY),
	    -EXDEV);
	ck_assert_int_eq(beneath_open(root_fd, "nope/x", O_RDONLY), -ENOENT);
	ck_assert_int_eq(beneath_open(root_fd, "d/f", O_RDONLY | O_DIRECTORY),
	    -ENOTDIR);
	fd = beneath_open_parent(root_fd, "d/f", &base);
	ck_assert_int_ge(fd, 0);
	ck_assert_str_eq(base, "f");
	close(fd);
	ck_assert_int_eq(beneath_open_parent(root_fd, "link/secret", &base),
	    -ELOOP);
	ck_assert_int_eq(beneath_open_parent(root_fd, "", &base), -EINVAL);
}

START_TEST(test_open_beneath)
{
	open_cases();
}
END_TEST

START_TEST(test_open_beneath_walk)
{
	setenv("TREESYNC_NO_OPENAT2", "1", 1);
	open_cases();
}
END_TEST

START_TEST(test_delete_tree)
{
	uint64_t n = 0;

	put("in/d/g/");
	put("in/d/g/h");
	/* A symlink inside the tree is removed, never followed. */
	{
		char path[256], target[128];

		snprintf(path, sizeof path, "%s/in/d/g/out", root_path);
		snprintf(target, sizeof target, "%s/out", root_path);
		ck_assert_int_eq(symlink(target, path), 0);
	}
	ck_assert_int_eq(fsops_delete_tree(root_fd, "d", &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert(!exists("in/d"));
	ck_assert(exists("out/secret"));
	/* The symlink itself goes, its target stays. */
	n = 0;
	ck_assert_int_eq(fsops_delete_tree(root_fd, "link", &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert(!exists("in/link"));
	ck_assert(exists("out/secret"));
	n = 0;
	ck_assert_int_eq(fsops_delete_tree(root_fd, "missing", &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_count_tree)
{
	uint64_t n;

	put("in/d/g/");
	put("in/d/g/h");
	ck_assert_int_eq(fsops_count_tree(root_fd, "d", 100, &n), 0);
	ck_assert_uint_eq(n, 4);
	ck_assert_int_eq(fsops_count_tree(root_fd, "d", 1, &n), 0);
	ck_assert_uint_le(n, 3);
	ck_assert_uint_gt(n, 1);
	ck_assert_int_eq(fsops_count_tree(root_fd, "link", 100, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_int_eq(fsops_count_tree(root_fd, "nope", 100, &n), 0);
	ck_assert_uint_eq(n, 0);
}
END_TEST

START_TEST(test_clean)
{
	uint64_t n = 0;

	put("in/.treesync.0123abcd.1/");
	put("in/.treesync.0123abcd.1/x");
	put("in/.treesync.deadbeef.2");
	put("in/.treesync.notes");
	put("in/.treesync.partial/");
	put("in/d/.treesync.0123abcd.3");
	put("in/d/.treesync.partial/");
	put("in/d/.treesync.partial/big");
	ck_assert_int_eq(fsops_clean(root_fd, "deadbeef", false, false, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert(!exists("in/.treesync.0123abcd.1"));
	ck_assert(exists("in/.treesync.deadbeef.2"));
	ck_assert(exists("in/.treesync.notes"));
	ck_assert(exists("in/.treesync.partial"));
	ck_assert(exists("in/d/.treesync.0123abcd.3"));
	n = 0;
	ck_assert_int_eq(fsops_clean(root_fd, NULL, true, true, &n), 0);
	ck_assert_uint_eq(n, 5);
	ck_assert(!exists("in/.treesync.deadbeef.2"));
	ck_assert(!exists("in/d/.treesync.0123abcd.3"));
	ck_assert(!exists("in/d/.treesync.partial"));
	ck_assert(!exists("in/.treesync.partial"));
	ck_assert(exists("in/.treesync.notes"));
	ck_assert(exists("in/d/f"));
	/* Not through the symlinks to out/. */
	ck_assert(exists("out/secret"));
}
END_TEST

static Suite *
remote_side_suite(void)
{
	Suite *s = suite_create("remote-side");
	TCase *pure = tcase_create("pure");
	TCase *fs = tcase_create("fs");

	tcase_add_test(pure, test_split);
	tcase_add_test(pure, test_allowlist);
	tcase_add_test(pure, test_relative_dest);
	suite_add_tcase(s, pure);
	tcase_add_checked_fixture(fs, setup, teardown);
	tcase_add_test(fs, test_open_beneath);
	tcase_add_test(fs, test_open_beneath_walk);
	tcase_add_test(fs, test_delete_tree);
	tcase_add_test(fs, test_count_tree);
	tcase_add_test(fs, test_clean);
	suite_add_tcase(s, fs);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(remote_side_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
