/*
 * Unit tests for the local destination behind the seam (dest/dest.h,
 * dest/local*.c) with a real pool: a batch over several directories
 * reports per path what it did and the trees show it; a batch that has
 * copied 4 MiB hands the rest back untouched; renames are applied in
 * order; a compare repairs the tree; a source root that is not the one
 * expected makes a batch touch nothing. Everything comes back through
 * done() on the reactor, never from inside the call that handed it over.
 * (The live planner's model test fakes this seam; this is the real side.)
 */
#define _GNU_SOURCE
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "dest/dest.h"
#include "engine/exclude.h"
#include "engine/fsutil.h"
#include "util/synclog.h"

static char top[] = "/tmp/treesync-dest.XXXXXX";
static char srcdir[256], dstdir[256];
static struct event_base *base;
static Pool *pool;
static SyncPairConfig pair;
static char *dests[1];
static Dest *dest;
static int dones;
static bool handing_over;	/* inside a dest_* call: done must not run */

static void
sh(const char *fmt, const char *arg)
{
	char cmd[1024];

	snprintf(cmd, sizeof cmd, fmt, arg);
	ck_assert_int_eq(system(cmd), 0);
}

/* path relative to dir ("s" or "d"), with text; parents made. */
static void
put(const char *side, const char *rel, const char *text)
{
	char path[512], cmd[1200];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", side[0] == 's' ? srcdir : dstdir,
	    rel);
	snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs(text, f);
	fclose(f);
}

static bool
has(const char *side, const char *rel, const char *text)
{
	char path[512], buf[256] = "";
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "%s/%s", side[0] == 's' ? srcdir : dstdir,
	    rel);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return text == NULL || strcmp(buf, text) == 0;
}

/* The destination's copy of rel gets the source's mtime. */
static void
same_mtime(const char *rel)
{
	char s[512], d[512];
	struct stat st;
	struct timespec t[2];

	snprintf(s, sizeof s, "%s/%s", srcdir, rel);
	snprintf(d, sizeof d, "%s/%s", dstdir, rel);
	ck_assert_int_eq(stat(s, &st), 0);
	t[0] = st.st_atim;
	t[1] = st.st_mtim;
	ck_assert_int_eq(utimensat(AT_FDCWD, d, t, 0), 0);
}

static void
setup(void)
{
	strcpy(top, "/tmp/treesync-dest.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(top));
	snprintf(srcdir, sizeof srcdir, "%s/src", top);
	snprintf(dstdir, sizeof dstdir, "%s/dst", top);
	ck_assert_int_eq(mkdir(srcdir, 0755), 0);
	ck_assert_int_eq(mkdir(dstdir, 0755), 0);
	fsutil_init_temp_tag();
	synclog_set_level(LOG_LEVEL_ERROR);	/* the pass's lines */
	ck_assert_ptr_nonnull(base = event_base_new());
	ck_assert_int_eq(pool_new(base, 3, &pool), 0);
	memset(&pair, 0, sizeof pair);
	pair.name = "t";
	pair.source = srcdir;
	dests[0] = dstdir;
	pair.destinations = dests;
	pair.n_destinations = 1;
	pair.delete = true;
	ck_assert_int_eq(exclude_new(&pair.exclude), 0);
	ck_assert_int_eq(dest_new(base, pool, &pair, dstdir, &dest), 0);
	dones = 0;
}

static void
teardown(void)
{
	ck_assert_uint_eq(dest_in_flight(dest), 0);
	dest_stop(dest);
	pool_free(pool);
	dest_free(dest);
	exclude_free(pair.exclude);
	event_base_free(base);
	sh("rm -rf %s", top);
}

/* Runs the loop until n requests have come back. */
static void
wait_dones(int n)
{
	while (dones < n)
		ck_assert_int_ge(event_base_loop(base, EVLOOP_ONCE), 0);
}

static void
batch_done(DestBatch *b)
{
	ck_assert(!handing_over);
	ck_assert_ptr_eq(b->arg, &dones);
	dones++;
}

static DestBatch *
batch(const char *const *paths, size_t n)
{
	DestBatch *b = dest_batch_new(n);

	b->opt.rules.delete = true;
	b->opt.copy.preserve_owner = geteuid() == 0;
	b->done = batch_done;
	b->arg = &dones;
	for (size_t i = 0; i < n; i++)
		dest_batch_add(b, paths[i]);
	return b;
}

static void
send_batch(DestBatch *b)
{
	handing_over = true;
	dest_sync_paths(dest, b);
	handing_over = false;
}

static const DestItem *
item(const DestBatch *b, const char *relpath)
{
	for (size_t i = 0; i < b->n; i++)
		if (strcmp(b->items[i].relpath, relpath) == 0)
			return &b->items[i];
	ck_abort_msg("no item %s", relpath);
	return NULL;
}

START_TEST(test_capacity_is_the_workers)
{
	DestCapacity cap;
	DestState st;

	dest_capacity(dest, &cap);
	ck_assert_uint_eq(cap.parallel, 3);
	ck_assert_uint_eq(cap.requests, 4);
	ck_assert_uint_ge(cap.batch_paths, 1);
	dest_state(dest, &st);
	ck_assert_int_eq(st.availability, DEST_AVAILABLE);
	ck_assert_str_eq(dest->ops->kind, "local");
	ck_assert_int_eq(dest_new(base, pool, &pair, "web2:/srv/x",
	    &(Dest *){ NULL }), -EPROTONOSUPPORT);
}
END_TEST

START_TEST(test_batch_over_directories)
{
	/* The paths in an order that is not by directory. */
	static const char *const paths[] = { "a/new", "b/changed", "a/gone",
	    "b", "c", "x/y/orphan", "a/same" };
	DestBatch *b;

	put("s", "a/new", "new");
	put("s", "a/same", "same");
	put("d", "a/same", "same");
	same_mtime("a/same");
	put("s", "b/changed", "v2");
	put("d", "b/changed", "v1");
	put("d", "a/gone", "old");
	put("s", "c/inside", "in a new directory");
	put("s", "x/y/orphan", "its parent is missing in dst");
	b = batch(paths, sizeof paths / sizeof paths[0]);
	send_batch(b);
	ck_assert_int_eq(dones, 0);
	wait_dones(1);
	ck_assert(!b->cancelled);
	ck_assert_int_eq(b->err, 0);
	ck_assert_int_eq(b->fault, GUARD_OK);
	/* The caller's order is kept in items[]. */
	for (size_t i = 0; i < b->n; i++)
		ck_assert_str_eq(b->items[i].relpath, paths[i]);
	ck_assert_int_eq(item(b, "a/new")->action, RULE_COPY);
	ck_assert(item(b, "a/new")->entries_changed);
	ck_assert_uint_eq(item(b, "a/new")->bytes, 3);
	ck_assert_int_eq(item(b, "b/changed")->action, RULE_COPY);
	ck_assert_int_eq(item(b, "a/gone")->action, RULE_DELETE);
	ck_assert_uint_eq(item(b, "a/gone")->count, 1);
	ck_assert_int_eq(item(b, "c")->outcome, DEST_SUBTREE);
	ck_assert_int_eq(item(b, "x/y/orphan")->outcome, DEST_NO_PARENT);
	ck_assert_int_eq(item(b, "a/same")->action, RULE_NONE);
	for (size_t i = 0; i < b->n; i++)
		ck_assert_int_eq(b->items[i].err, 0);
	ck_assert(has("d", "a/new", "new"));
	ck_assert(has("d", "b/changed", "v2"));
	ck_assert(!has("d", "a/gone", NULL));
	ck_assert(!has("d", "c/inside", NULL));
	ck_assert_uint_eq(b->bytes, 5);
	dest_batch_free(b);
}
END_TEST

START_TEST(test_batch_hands_back_after_4_mib)
{
	static const char *const paths[] = { "big0", "big1", "big2", "small" };
	char cmd[512];
	DestBatch *b;
	size_t skipped = 0;

	for (int i = 0; i < 3; i++) {
		snprintf(cmd, sizeof cmd, "head -c 3000000 /dev/zero | tr '\\0' "
		    "x > %s/big%d", srcdir, i);
		ck_assert_int_eq(system(cmd), 0);
	}
	put("s", "small", "s");
	b = batch(paths, 4);
	send_batch(b);
	wait_dones(1);
	for (size_t i = 0; i < b->n; i++) {
		const DestItem *it = &b->items[i];

		if (it->skipped) {
			skipped++;
			ck_assert(!has("d", it->relpath, NULL));
			ck_assert_int_eq(it->action, RULE_NONE);
		} else {
			ck_assert(has("d", it->relpath, NULL));
		}
	}
	/* 3 MB copied is under the budget, 6 MB is past it. */
	ck_assert_uint_eq(skipped, 2);
	ck_assert_uint_ge(b->bytes, 4u << 20);
	dest_batch_free(b);
}
END_TEST

static void
renames_done(DestRenames *r)
{
	ck_assert(!handing_over);
	(void)r;
	dones++;
}

START_TEST(test_renames_in_order)
{
	DestRenames *r = dest_renames_new(4);

	put("d", "a", "A");
	put("d", "dir/f", "F");
	dest_renames_add(r, "a", "b", false);
	dest_renames_add(r, "b", "c", false);
	dest_renames_add(r, "nothing", "there", false);
	dest_renames_add(r, "dir", "dir2", true);
	r->done = renames_done;
	handing_over = true;
	dest_rename(dest, r);
	handing_over = false;
	wait_dones(1);
	ck_assert_int_eq(r->err, 0);
	ck_assert_int_eq(r->items[0].err, 0);
	ck_assert_int_eq(r->items[1].err, 0);
	ck_assert_int_eq(r->items[2].err, -ENOENT);
	ck_assert_int_eq(r->items[3].err, 0);
	ck_assert(has("d", "c", "A"));
	ck_assert(!has("d", "a", NULL) && !has("d", "b", NULL));
	ck_assert(has("d", "dir2/f", "F"));
	dest_renames_free(r);
}
END_TEST

static void
compare_done(DestCompare *c, void *arg)
{
	ck_assert(!handing_over);
	ck_assert_ptr_eq(arg, &dones);
	ck_assert_int_eq(c->err, 0);
	dones++;
}

START_TEST(test_compare_repairs_the_tree)
{
	FullSyncOptions opt = { .preserve_owner = geteuid() == 0 };
	DestCompare *c = NULL;
	const SyncStats *st;

	put("s", "one", "1");
	put("s", "sub/two", "2");
	put("d", "stray", "not in the source");
	handing_over = true;
	ck_assert_int_eq(dest_compare(dest, "", &opt, compare_done, &dones,
	    &c), 0);
	handing_over = false;
	ck_assert_ptr_nonnull(c);
	wait_dones(1);
	st = dest_compare_stats(c);
	ck_assert_uint_eq(st->files_copied, 2);
	ck_assert_uint_eq(st->deleted, 1);
	ck_assert_uint_eq(st->errors, 0);
	ck_assert(st->source.known);
	dest_compare_free(c);
	ck_assert(has("d", "one", "1") && has("d", "sub/two", "2"));
	ck_assert(!has("d", "stray", NULL));
}
END_TEST

START_TEST(test_batch_from_another_source_root_touches_nothing)
{
	static const char *const paths[] = { "f", "old" };
	struct stat st;
	DestBatch *b;

	put("s", "f", "f");
	put("d", "old", "would be deleted");
	ck_assert_int_eq(stat(srcdir, &st), 0);
	b = batch(paths, 2);
	/* The root the pair mirrors had another inode: replaced. */
	b->opt.expect = (SourceIdentity){ .known = true, .dev = st.st_dev,
	    .ino = st.st_ino + 1 };
	send_batch(b);
	wait_dones(1);
	ck_assert_int_eq(b->fault, GUARD_REPLACED);
	for (size_t i = 0; i < b->n; i++) {
		ck_assert_int_eq(b->items[i].fault, GUARD_REPLACED);
		ck_assert_int_eq(b->items[i].action, RULE_NONE);
	}
	ck_assert(!has("d", "f", NULL));
	ck_assert(has("d", "old", NULL));
	dest_batch_free(b);
}
END_TEST

START_TEST(test_held_deletes_are_withheld)
{
	static const char *const paths[] = { "old" };
	DestBatch *b;

	put("d", "old", "kept");
	b = batch(paths, 1);
	b->opt.hold_deletes = true;
	send_batch(b);
	wait_dones(1);
	ck_assert(b->items[0].withheld);
	ck_assert(has("d", "old", "kept"));
	dest_batch_free(b);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("dest");
	TCase *tc = tcase_create("local");
	SRunner *sr;
	int failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_capacity_is_the_workers);
	tcase_add_test(tc, test_batch_over_directories);
	tcase_add_test(tc, test_batch_hands_back_after_4_mib);
	tcase_add_test(tc, test_renames_in_order);
	tcase_add_test(tc, test_compare_repairs_the_tree);
	tcase_add_test(tc, test_batch_from_another_source_root_touches_nothing);
	tcase_add_test(tc, test_held_deletes_are_withheld);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
