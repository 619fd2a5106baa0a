/*
 * Unit tests for rsync-filter: the rules it writes for each exclude form,
 * and the proof that matters, agreement: for every form (alone, and all
 * together) a real `rsync -a --delete` with the compiled rules leaves
 * exactly the tree that treesync's own reading (exclude.c, the planner's
 * rules: an excluded path is neither copied nor deleted, a directory that
 * left the source goes with everything in it) says it should.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dest/rsync-filter.h"
#include "engine/exclude.h"

extern char **environ;

static const struct {
	const char *pattern;
	const char *rule;	/* NULL: not a rule (see err) */
	int err;
} forms[] = {
	{ "*.swp", "-p *.swp", 0 },
	{ ".git/", "-p .git/", 0 },
	{ "node_modules/", "-p node_modules/", 0 },
	{ "a/b", "-p /a/b", 0 },
	{ "/a/b", "-p /a/b", 0 },
	{ "//a", "-p /a", 0 },
	{ "/top", "-p /top", 0 },
	{ "a/*/c", "-p /a/*/c", 0 },
	{ "**/deep*", "-p /*/deep*", 0 },
	{ "**x", "-p *x", 0 },
	{ "[ab]", "-p [ab]", 0 },
	{ "\\[ab]", "-p [[]ab]", 0 },
	{ "x\\?y", "-p x[?]y", 0 },
	{ "star\\*", "-p star[*]", 0 },
	{ "\\**", "-p [*]*", 0 },
	{ "back\\\\slash", "-p back\\slash", 0 },
	{ "back\\\\sl*", "-p back[\\\\]sl*", 0 },
	{ "lit\\eral", "-p literal", 0 },
	{ "a[b", "-p a[[]b", 0 },
	{ "[!a]z", "-p [!a]z", 0 },
	{ "d/[!x]", "-p /d/[!x/]", 0 },
	{ "d/[a/b]", "-p /d/[ab]", 0 },
	{ "d/[.-0]", "-p /d/[.-.0-0]", 0 },
	{ "[]x]", "-p [\\]x]", 0 },
	{ "[a-c]", "-p [a-c]", 0 },
	{ "[[:digit:]]*", "-p [[:digit:]]*", 0 },
	{ "sp ace", "-p sp ace", 0 },
	{ "x/", "-p x/", 0 },
	{ "a/b/", "-p /a/b/", 0 },
	{ "d/[/]x", NULL, RSYNC_FILTER_NEVER },
	{ "x\\", NULL, RSYNC_FILTER_NEVER },
	{ "a//b", NULL, RSYNC_FILTER_NEVER },
	{ "a//", NULL, RSYNC_FILTER_NEVER },
	{ "", NULL, -EINVAL },
	{ "/", NULL, -EINVAL },
	{ "[[:nope:]]", NULL, -EINVAL },
	{ "[[=a=]]", NULL, -ENOTSUP },
	{ "[[.a.]]", NULL, -ENOTSUP },
	{ "n\nl", NULL, -ENOTSUP },
};

START_TEST(test_rules)
{
	for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		char out[256];
		int r = rsync_filter_rule(forms[i].pattern, out, sizeof out);

		if (forms[i].rule != NULL) {
			ck_assert_msg(r == 0, "'%s': %d", forms[i].pattern, r);
			ck_assert_msg(strcmp(out, forms[i].rule) == 0,
			    "'%s' -> '%s', want '%s'", forms[i].pattern, out,
			    forms[i].rule);
		} else {
			ck_assert_msg(r == forms[i].err, "'%s': %d, want %d",
			    forms[i].pattern, r, forms[i].err);
		}
	}
}
END_TEST

START_TEST(test_compile)
{
	const char *const p[] = { "*.swp", "x\\", ".git/" };
	const char *const bad[] = { "*.swp", "[[=a=]]" };
	char **rules;
	size_t n, at = 99;

	ck_assert_int_eq(rsync_filter_compile(p, 3, &rules, &n, &at), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(rules[0], RSYNC_FILTER_TEMP_RULE);
	ck_assert_str_eq(rules[1], "-p *.swp");
	ck_assert_str_eq(rules[2], "-p .git/");
	ck_assert_ptr_null(rules[3]);
	rsync_filter_free(rules);
	ck_assert_int_eq(rsync_filter_compile(bad, 2, &rules, &n, &at),
	    -ENOTSUP);
	ck_assert_uint_eq(at, 1);
	ck_assert_ptr_null(rules);
	rsync_filter_free(NULL);
}
END_TEST

/* ---- agreement with a real rsync ---------------------------------- */

/* The directories of the test tree ("" the root); every one holds every
 * name of file_names as a file, unless a subdirectory has that name. */
static const char *const dirs[] = {
	"", ".git", "a", "a/y", "a/z", "a/y/q", "x", "x/a", "node_modules",
	"sub", "sub/.git", "sub/x", "deep", "deep/deeper", "d", "[ab]dir",
	"b",
};

static const char *const file_names[] = {
	"a.swp", ".x.swp", "x.swpx", "b", "c", "ab", "[ab]", "x?y", "xzy", "?",
	"back\\slash", "backslash", "back\\sl", "star*", "starx", "*x", "top",
	"deeply", "sp ace", "space", "tilde~", "az", "bz", "9lives", "literal",
	"lit\\eral", "a[b", "-dash", "n\nl", "x", ".", "/", "0", "-", "]", "]x",
	".treesync.notes", "node_modules", ".git",
};

/* Extra entries only the destination has: a name beside each of the
 * above, and whole directories that left the source. */
static const char *const dest_only_dirs[] = {
	"gone", "gone/.git", "gone/sub", "a/gone", ".git/gone", "x/a/gone",
	"old.swp", "node_modules/gone",
};

typedef struct PathSet {
	char **v;
	size_t n, cap;
} PathSet;

static void
set_add(PathSet *s, const char *p)
{
	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		s->v = realloc(s->v, s->cap * sizeof *s->v);
		ck_assert_ptr_nonnull(s->v);
	}
	s->v[s->n++] = strdup(p);
}

static int
cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
set_has(const PathSet *s, const char *p)
{
	return bsearch(&p, s->v, s->n, sizeof *s->v, cmp) != NULL;
}

static void
set_free(PathSet *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof *s);
}

static bool
is_child_dir(const char *dir, const char *name)
{
	char path[512];

	snprintf(path, sizeof path, "%s%s%s", dir, *dir ? "/" : "", name);
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++)
		if (strcmp(dirs[i], path) == 0)
			return true;
	for (size_t i = 0; i < sizeof dest_only_dirs / sizeof dest_only_dirs[0];
	    i++)
		if (strcmp(dest_only_dirs[i], path) == 0)
			return true;
	return false;
}

static void
make_file(const char *root, const char *rel)
{
	char path[1024];
	int fd;

	snprintf(path, sizeof path, "%s/%s", root, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_msg(fd >= 0, "create '%s': %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, rel, strlen(rel)), (ssize_t)strlen(rel));
	close(fd);
}

static void
make_dir(const char *root, const char *rel)
{
	char path[1024];

	snprintf(path, sizeof path, "%s/%s", root, rel);
	ck_assert_msg(*rel == '\0' || mkdir(path, 0755) == 0 ||
	    errno == EEXIST, "mkdir '%s': %s", path, strerror(errno));
}

/* Fills a directory with every file name not taken by a subdirectory;
 * prefix "" for the source's names, "old-" for the destination's own. */
static void
fill(const char *root, const char *dir, const char *prefix)
{
	for (size_t j = 0; j < sizeof file_names / sizeof file_names[0]; j++) {
		char rel[512], name[256];

		snprintf(name, sizeof name, "%s%s", prefix, file_names[j]);
		if (strcmp(name, ".") == 0 || strchr(name, '/') != NULL ||
		    strcmp(name, "..") == 0 || is_child_dir(dir, name))
			continue;
		snprintf(rel, sizeof rel, "%s%s%s", dir, *dir ? "/" : "", name);
		make_file(root, rel);
	}
}

static void
build_trees(const char *src, const char *dst)
{
	ck_assert_int_eq(mkdir(src, 0755), 0);
	ck_assert_int_eq(mkdir(dst, 0755), 0);
	for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
		make_dir(src, dirs[i]);
		make_dir(dst, dirs[i]);
		fill(src, dirs[i], "");
		fill(dst, dirs[i], "old-");
		/* The same names, so a rule's effect on deletes shows. */
		fill(dst, dirs[i], "");
	}
	for (size_t i = 0; i < sizeof dest_only_dirs / sizeof dest_only_dirs[0];
	    i++) {
		make_dir(dst, dest_only_dirs[i]);
		fill(dst, dest_only_dirs[i], "");
	}
	/* A temporary treesync's CLEAN is for, not rsync. */
	make_dir(dst, ".treesync.0123abcd.1");
	make_file(dst, ".treesync.0123abcd.1/t");
	/* Destination entries whose source is gone, at the top. */
	make_file(dst, "only-here");
	make_file(dst, "only-here.swp");
}

static PathSet walk_set;
static size_t walk_prefix;

static int
walk_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	char rel[1024];

	(void)ftw;
	if (strlen(path) <= walk_prefix)
		return 0;
	snprintf(rel, sizeof rel, "%s%s", path + walk_prefix + 1,
	    S_ISDIR(st->st_mode) && type != FTW_SL ? "/" : "");
	set_add(&walk_set, rel);
	return 0;
}

/* Every path beneath root, directories with a trailing '/'. Sorted. */
static PathSet
tree(const char *root)
{
	PathSet s;

	memset(&walk_set, 0, sizeof walk_set);
	walk_prefix = strlen(root);
	ck_assert_int_eq(nftw(root, walk_one, 32, FTW_PHYS), 0);
	s = walk_set;
	qsort(s.v, s.n, sizeof *s.v, cmp);
	return s;
}

static bool
matches(const Exclude *ex, const char *rel, bool is_dir)
{
	const char *base = strrchr(rel, '/');

	base = base != NULL ? base + 1 : rel;
	/* The planner's first rule: our temporaries are never mirrored,
	 * and (remotely) left to CLEAN. */
	if (strncmp(base, ".treesync.", 10) == 0)
		return true;
	return exclude_match(ex, rel, is_dir);
}

/*
 * Whether treesync's planner leaves the entry p (a directory's path ends
 * in '/') in the destination, given the source s and the destination d
 * before. Walking down p's components: a name the source has and that is
 * excluded (by the source's type) is left as the destination had it;
 * one only the destination has goes unless excluded (by its type there);
 * a name both have as directories is descended into; anything else is
 * the source's.
 */
static bool
expected(const Exclude *ex, const PathSet *s, const PathSet *d,
    const char *p)
{
	size_t len = strlen(p);

	for (size_t i = 1; i <= len; i++) {
		char name[1024], key[1026];
		bool sdir, sfile, ddir, dfile, last;

		if (i < len && p[i] != '/')
			continue;
		last = i == len || (i == len - 1 && p[i] == '/');
		memcpy(name, p, i);
		name[i] = '\0';
		snprintf(key, sizeof key, "%s/", name);
		sdir = set_has(s, key);
		ddir = set_has(d, key);
		sfile = set_has(s, name);
		dfile = set_has(d, name);
		if (sdir || sfile) {
			if (matches(ex, name, sdir))
				return set_has(d, p);
			if (last || !(sdir && ddir))
				return set_has(s, p);
			continue;
		}
		if ((ddir || dfile) && matches(ex, name, ddir))
			return set_has(d, p);
		return false;
	}
	return false;
}

static int
run_rsync(const char *src, const char *dst, char **rules, size_t nrules)
{
	char **argv = calloc(nrules + 8, sizeof *argv);
	char srcarg[512], dstarg[512];
	size_t k = 0;
	pid_t pid;
	int status, devnull;
	posix_spawn_file_actions_t fa;

	snprintf(srcarg, sizeof srcarg, "%s/", src);
	snprintf(dstarg, sizeof dstarg, "%s/", dst);
	argv[k++] = (char *)"rsync";
	argv[k++] = (char *)"-a";
	argv[k++] = (char *)"--delete";
	for (size_t i = 0; i < nrules; i++) {
		char *f;

		ck_assert_int_ge(asprintf(&f, "--filter=%s", rules[i]), 0);
		argv[k++] = f;
	}
	argv[k++] = srcarg;
	argv[k++] = dstarg;
	posix_spawn_file_actions_init(&fa);
	devnull = open("/dev/null", O_WRONLY);
	posix_spawn_file_actions_adddup2(&fa, devnull, STDOUT_FILENO);
	ck_assert_int_eq(posix_spawnp(&pid, "rsync", &fa, NULL, argv, environ),
	    0);
	posix_spawn_file_actions_destroy(&fa);
	close(devnull);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	for (size_t i = 3; i < 3 + nrules; i++)
		free(argv[i]);
	free(argv);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int
rm_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return type == FTW_DP ? rmdir(path) : unlink(path);
}

static void
rm_tree(const char *path)
{
	(void)nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

/* One run: the trees afresh, rsync with the rules of patterns, then every
 * path of either tree checked against treesync's reading. */
static void
agree(const char *const *patterns, size_t n, const char *label)
{
	/* A memory file system when there is one: thousands of small
	 * files per run, and the shared disk is slow. */
	char base[64], src[80], dst[80];
	PathSet s, d0, d1;
	Exclude *ex = NULL;
	char **rules;
	size_t nrules, bad, wrong = 0;

	snprintf(base, sizeof base, "%s/test-rsync-filter.XXXXXX",
	    access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(src, sizeof src, "%s/src", base);
	snprintf(dst, sizeof dst, "%s/dst", base);
	build_trees(src, dst);
	ck_assert_int_eq(exclude_new(&ex), 0);
	for (size_t i = 0; i < n; i++)
		ck_assert_int_eq(exclude_add(ex, patterns[i]), 0);
	ck_assert_int_eq(rsync_filter_compile(patterns, n, &rules, &nrules,
	    &bad), 0);
	s = tree(src);
	d0 = tree(dst);
	ck_assert_int_eq(run_rsync(src, dst, rules, nrules), 0);
	d1 = tree(dst);
	/* Every path either tree had (before or after) must be where
	 * treesync says it would be. */
	for (int which = 0; which < 3; which++) {
		const PathSet *from = which == 0 ? &s : which == 1 ? &d0 : &d1;

		for (size_t i = 0; i < from->n; i++) {
			const char *p = from->v[i];
			bool want = expected(ex, &s, &d0, p);
			bool got = set_has(&d1, p);

			if (want != got && wrong++ < 10)
				fprintf(stderr, "%s: '%s' %s by rsync, treesync "
				    "would %s it\n", label, p,
				    got ? "left" : "not left",
				    want ? "leave" : "not leave");
		}
	}
	rsync_filter_free(rules);
	exclude_free(ex);
	set_free(&s);
	set_free(&d0);
	set_free(&d1);
	rm_tree(base);
	ck_assert_msg(wrong == 0, "%s: %zu paths differ", label, wrong);
}

static const char *const agreement_patterns[] = {
	"*.swp", ".git/", "a/b", "a/*/c", "node_modules/", "[ab]", "\\[ab]",
	"x\\?y", "?", "back\\\\slash", "back\\\\sl*", "star\\*", "\\**",
	"/top", "**/deep*", "deep/**", "*~", "sp ace", "[!a]z", "x/[!a]",
	"[[:digit:]]*", "lit\\eral", "a[b", "d/[/]x", "x\\", "-dash", ".*",
	"sub/", "x/a/", "a/b/", "[a-c]", "[]x]", "]*", "a*b", "*/*", "/x/a/b",
	"*", "a/y", "a/y/", "gone", "n?l", "d/[.-0]", "old-*", "*.swp/",
};

START_TEST(test_agreement_each_form)
{
	size_t n = sizeof agreement_patterns / sizeof agreement_patterns[0];

	for (size_t i = 0; i < n; i++) {
		char label[128];

		snprintf(label, sizeof label, "pattern '%s'",
		    agreement_patterns[i]);
		agree(&agreement_patterns[i], 1, label);
	}
}
END_TEST

START_TEST(test_agreement_together)
{
	static const char *const some[] = { "*.swp", ".git/", "a/b", "a/*/c",
	    "node_modules/", "[ab]", "x\\?y", "back\\\\slash", "/top", "*~",
	    "sp ace", "lit\\eral", "a[b", "sub/x" };

	agree(some, sizeof some / sizeof some[0], "the usual set");
	agree(NULL, 0, "no patterns");
}
END_TEST

static Suite *
rsync_filter_suite(void)
{
	Suite *s = suite_create("rsync-filter");
	TCase *tc = tcase_create("core");
	TCase *real = tcase_create("real-rsync");

	tcase_add_test(tc, test_rules);
	tcase_add_test(tc, test_compile);
	suite_add_tcase(s, tc);
	tcase_set_timeout(real, 110);
	tcase_add_test(real, test_agreement_each_form);
	tcase_add_test(real, test_agreement_together);
	suite_add_tcase(s, real);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(rsync_filter_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
