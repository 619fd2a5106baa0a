/*
 * One rule set: the full pass and the live path job take the same
 * action for every pair of (source entry, destination entry) shapes, and
 * leave the same destination.
 *
 * For every pair — source: missing, file, hard link (nlink 2), directory,
 * symlink; destination: missing, or a file, directory or symlink equal
 * to the source's entry of that kind or differing in one thing (size,
 * mtime, mode, owner, content of the same size, a hard link of its own;
 * a directory's size or contents; a symlink's target) — in both compare
 * modes, on real files in a temporary directory:
 *  - a full pass (fullsync through a Pool and an event_base, as
 *    treesyncd --once runs it) over a tree holding that pair, and
 *  - the live path job (pathsync_run) on a fresh copy of the same tree,
 *    followed by what the live daemon does with its answer: a subtree
 *    pass for PATHSYNC_SUBTREE, a full pass for PATHSYNC_HARDLINK, the
 *    parent's own metadata when an entry changed in it.
 * Both must report the same action for the entry (the pass through its
 * report hook, the path job in PathSyncResult) and leave destinations
 * that a tree walk finds equal to each other and to the source: type,
 * bytes, mode, owner, mtime to the ns (not a symlink's), symlink target,
 * link count. Owners vary only as root (chown).
 *
 * Each pair is one loop test; the name of a failing one is in its
 * message ("hash: file vs file/mtime").
 */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "engine/fullsync.h"
#include "engine/pathsync.h"
#include "engine/pool.h"
#include "engine/rules.h"
#include "util/synclog.h"

#define NAME "e"		/* the entry of the pair, in every root */
#define OTHER_UID 4242		/* an owner the source never has */
#define MAX_CASES 512
#define MAX_STEPS 8
#define MAX_WALK 16

enum Kind { K_MISSING, K_FILE, K_DIR, K_LINK };

/* One entry as the test makes it. */
typedef struct Spec {
	enum Kind kind;
	const char *bytes;	/* a file's content */
	mode_t mode;
	time_t mtime;
	long mtime_ns;
	uid_t uid;
	const char *target;	/* a symlink's */
	bool linked;		/* a file with a second name outside the root */
	bool grown;		/* a directory whose size grew (ext4 keeps it) */
	bool full;		/* a directory with an entry inside */
} Spec;

typedef struct Case {
	char name[96];
	Spec src;
	Spec dst;
	CompareMode compare;
	bool delete;
	bool touched;		/* same bytes, other mtime (a file) */
	bool dir_size_only;	/* directories that differ in size only */
	bool unseen;		/* other bytes of the same size and mtime:
				 * compare = "mtime" cannot tell (SPEC) */
} Case;

/* The steps a pass reported for NAME, in order. */
typedef struct Steps {
	RuleAction v[MAX_STEPS];
	size_t n;
	int err;
} Steps;

static Case cases[MAX_CASES];
static size_t n_cases;
static bool as_root;

static char base[] = "/tmp/treesync-rules.XXXXXX";
static struct event_base *ev;
static Pool *pool;
static Exclude *no_patterns;

/* ---- making the trees ------------------------------------------------ */

static void
path_of(char *buf, size_t size, const char *what)
{
	snprintf(buf, size, "%s/%s", base, what);
}

static int
open_dir(const char *what)
{
	char p[256];
	int fd;

	path_of(p, sizeof p, what);
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_msg(fd >= 0, "open %s: %s", p, strerror(errno));
	return fd;
}

static void
set_times(int dir, const char *name, const Spec *sp)
{
	struct timespec t[2] = { { sp->mtime, sp->mtime_ns },
	    { sp->mtime, sp->mtime_ns } };

	ck_assert_int_eq(utimensat(dir, name, t, AT_SYMLINK_NOFOLLOW), 0);
}

static void
make_file(int dir, const char *name, const char *bytes)
{
	int fd = openat(dir, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    0600);
	size_t n = strlen(bytes);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, bytes, n), (ssize_t)n);
	close(fd);
}

/* Makes NAME in root as sp says; a second name of a linked file goes
 * into the directory outside (beside the root, never mirrored). */
static void
make(const char *root, const char *outside, const Spec *sp)
{
	int dir = open_dir(root), out;
	char name[32];

	switch (sp->kind) {
	case K_MISSING:
		break;
	case K_FILE:
		make_file(dir, NAME, sp->bytes);
		if (sp->linked) {
			out = open_dir(outside);
			ck_assert_int_eq(linkat(dir, NAME, out, NAME, 0), 0);
			close(out);
		}
		break;
	case K_DIR:
		ck_assert_int_eq(mkdirat(dir, NAME, 0700), 0);
		if (sp->grown || sp->full) {
			int d = openat(dir, NAME, O_RDONLY | O_DIRECTORY);

			ck_assert_int_ge(d, 0);
			/* All made, then all removed: a slot freed at once
			 * would be taken again. */
			for (int i = 0; sp->grown && i < 800; i++) {
				snprintf(name, sizeof name, "entry-with-a-long-"
				    "name-%03d", i % 400);
				if (i < 400)
					make_file(d, name, "");
				else
					ck_assert_int_eq(unlinkat(d, name, 0),
					    0);
			}
			if (sp->full) {
				make_file(d, "inner", "inside\n");
				set_times(d, "inner", sp);
			}
			close(d);
		}
		break;
	case K_LINK:
		ck_assert_int_eq(symlinkat(sp->target, dir, NAME), 0);
		break;
	}
	if (sp->kind != K_MISSING) {
		if (as_root)
			ck_assert_int_eq(fchownat(dir, NAME, sp->uid, sp->uid,
			    AT_SYMLINK_NOFOLLOW), 0);
		if (sp->kind != K_LINK)
			ck_assert_int_eq(fchmodat(dir, NAME, sp->mode, 0), 0);
		set_times(dir, NAME, sp);
	}
	close(dir);
}

/* The same anchor file in every root (a source is never empty: the
 * pass's guard would refuse to delete anything), then the roots' own
 * mode and times equal: only the pair differs. */
static void
finish_root(const char *root)
{
	static const Spec anchor = { K_FILE, "anchor\n", 0644, 1500000000,
	    5, 0, NULL, false, false, false };
	static const Spec top = { K_DIR, NULL, 0755, 1500000100, 7, 0, NULL,
	    false, false, false };
	int dir = open_dir(root);

	make_file(dir, "a", anchor.bytes);
	ck_assert_int_eq(fchmodat(dir, "a", anchor.mode, 0), 0);
	set_times(dir, "a", &anchor);
	ck_assert_int_eq(fchmod(dir, top.mode), 0);
	set_times(dir, ".", &top);
	close(dir);
}

static void
make_trees(const Case *c)
{
	static const char *const dirs[] = { "src", "pass", "live", "out-src",
	    "out-pass", "out-live" };
	char p[256];

	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		path_of(p, sizeof p, dirs[i]);
		ck_assert_int_eq(mkdir(p, 0755), 0);
	}
	make("src", "out-src", &c->src);
	make("pass", "out-pass", &c->dst);
	make("live", "out-live", &c->dst);
	finish_root("src");
	finish_root("pass");
	finish_root("live");
}

/* ---- the two engines ------------------------------------------------- */

static void
on_report(void *arg, const FullSyncStep *step)
{
	Steps *st = arg;

	if (strcmp(step->relpath, NAME) != 0)
		return;
	if (st->n < MAX_STEPS)
		st->v[st->n++] = step->done;
	if (step->err != 0)
		st->err = step->err;
}

static void
on_pass_done(FullSync *fs, void *arg)
{
	(void)fs;
	*(bool *)arg = true;
	event_base_loopbreak(ev);
}

/* A pass over relroot of the tree in dest, as the daemon runs one. */
static void
run_pass(const Case *c, const char *dest, const char *relroot, Steps *st)
{
	char src[256], dst[256];
	char *dests[1] = { dst };
	SyncPairConfig pair = { 0 };
	FullSyncOptions opt = { 0 };
	FullSync *fs;
	bool done = false;

	path_of(src, sizeof src, "src");
	path_of(dst, sizeof dst, dest);
	pair.name = "rules";
	pair.source = src;
	pair.destinations = dests;
	pair.n_destinations = 1;
	pair.exclude = no_patterns;
	pair.delete = c->delete;
	pair.compare = c->compare;
	opt.preserve_owner = as_root;
	opt.umask_zero = true;
	opt.report = on_report;
	opt.report_arg = st;
	ck_assert_int_eq(fullsync_new(pool, &pair, dst, relroot, &opt,
	    on_pass_done, &done, &fs), 0);
	fullsync_start(fs);
	event_base_dispatch(ev);
	ck_assert_msg(done, "%s: the pass did not end", c->name);
	ck_assert_msg(fullsync_stats(fs)->errors == 0, "%s: the pass had "
	    "%llu errors", c->name,
	    (unsigned long long)fullsync_stats(fs)->errors);
	ck_assert_msg(st->err == 0, "%s: a step of the pass failed: %s",
	    c->name, strerror(-st->err));
	fullsync_free(fs);
}

static void
path_job(const Case *c, const char *relpath, PathSyncResult *r)
{
	PathSyncOptions opt = { 0 };
	int src = open_dir("src"), dst = open_dir("live");

	opt.copy.preserve_owner = as_root;
	opt.copy.umask_zero = true;
	opt.delete = c->delete;
	opt.compare = c->compare;
	pathsync_run(src, dst, relpath, &opt, r);
	close(src);
	close(dst);
	ck_assert_msg(r->err == 0, "%s: path job '%s': %s", c->name, relpath,
	    strerror(-r->err));
}

/*
 * The live daemon's handling of a change to NAME: the path job, then
 * what live.c does with its outcome (item_done, pass_done). The steps
 * of a pass it hands on to go into handoff.
 */
static void
run_live(const Case *c, PathSyncResult *first, Steps *handoff)
{
	PathSyncResult r;

	path_job(c, NAME, first);
	switch (first->outcome) {
	case PATHSYNC_SUBTREE:
		/* A subtree pass, then its top as a path, then its parent's
		 * metadata (making it moved the parent's mtime). */
		run_pass(c, "live", NAME, handoff);
		path_job(c, NAME, &r);
		ck_assert_msg(r.action == RULE_NONE && r.outcome ==
		    PATHSYNC_DONE, "%s: after the subtree pass the path job "
		    "still does %s", c->name, rules_action_name(r.action));
		path_job(c, "", &r);
		break;
	case PATHSYNC_HARDLINK:
		run_pass(c, "live", "", handoff);
		break;
	case PATHSYNC_DONE:
		if (first->entries_changed)
			path_job(c, "", &r);
		break;
	case PATHSYNC_NO_PARENT:
		ck_abort_msg("%s: the root has no parent to miss", c->name);
	}
}

/* What a pass did to NAME: its first step that is not the delete of a
 * replace (nothing reported: RULE_NONE). */
static RuleAction
main_step(const Steps *st, bool *replaced)
{
	*replaced = false;
	for (size_t i = 0; i < st->n; i++)
		if (st->v[i] != RULE_DELETE) {
			*replaced = i > 0;
			return st->v[i];
		}
	return st->n > 0 ? RULE_DELETE : RULE_NONE;
}

/* ---- comparing the trees --------------------------------------------- */

typedef struct Seen {
	char path[300];
	struct stat st;
	char data[64];		/* a file's bytes or a symlink's target */
} Seen;

typedef struct Walk {
	Seen v[MAX_WALK];
	size_t n;
} Walk;

static int
by_path(const void *a, const void *b)
{
	return strcmp(((const Seen *)a)->path, ((const Seen *)b)->path);
}

static void
walk_into(int dir, const char *prefix, Walk *w)
{
	DIR *d = fdopendir(dup(dir));
	struct dirent *de;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		Seen *s;
		int fd;
		ssize_t n = 0;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") ==
		    0)
			continue;
		ck_assert_uint_lt(w->n, MAX_WALK);
		s = &w->v[w->n++];
		memset(s, 0, sizeof *s);
		snprintf(s->path, sizeof s->path, "%s%s", prefix, de->d_name);
		ck_assert_int_eq(fstatat(dir, de->d_name, &s->st,
		    AT_SYMLINK_NOFOLLOW), 0);
		if (S_ISLNK(s->st.st_mode)) {
			n = readlinkat(dir, de->d_name, s->data,
			    sizeof s->data - 1);
		} else if (S_ISREG(s->st.st_mode)) {
			fd = openat(dir, de->d_name, O_RDONLY | O_NOFOLLOW);
			ck_assert_int_ge(fd, 0);
			n = read(fd, s->data, sizeof s->data - 1);
			close(fd);
		} else if (S_ISDIR(s->st.st_mode)) {
			char sub[310];

			fd = openat(dir, de->d_name, O_RDONLY | O_DIRECTORY);
			ck_assert_int_ge(fd, 0);
			snprintf(sub, sizeof sub, "%s/", s->path);
			walk_into(fd, sub, w);
			close(fd);
		}
		ck_assert_int_ge(n, 0);
		s->data[n] = '\0';
	}
	closedir(d);
}

/* The root itself ("."), then every entry beneath it, by path. */
static void
walk(const char *root, Walk *w)
{
	int dir = open_dir(root);

	memset(w, 0, sizeof *w);
	strcpy(w->v[0].path, ".");
	ck_assert_int_eq(fstat(dir, &w->v[0].st), 0);
	w->n = 1;
	walk_into(dir, "", w);
	close(dir);
	qsort(w->v + 1, w->n - 1, sizeof *w->v, by_path);
}

/* a and b the same, as SPEC's convergence says (link counts only when
 * with_nlink: a source name linked outside the tree is not). */
static void
same_tree(const Case *c, const char *an, const Walk *a, const char *bn,
    const Walk *b, bool with_nlink)
{
	ck_assert_msg(a->n == b->n, "%s: %s has %zu entries, %s %zu",
	    c->name, an, a->n, bn, b->n);
	for (size_t i = 0; i < a->n; i++) {
		const Seen *x = &a->v[i], *y = &b->v[i];
		const char *p = x->path;

		ck_assert_msg(strcmp(x->path, y->path) == 0, "%s: %s has '%s' "
		    "where %s has '%s'", c->name, an, x->path, bn, y->path);
		ck_assert_msg((x->st.st_mode & S_IFMT) == (y->st.st_mode &
		    S_IFMT), "%s: '%s' is of another type in %s than in %s",
		    c->name, p, an, bn);
		ck_assert_msg(strcmp(x->data, y->data) == 0, "%s: '%s' holds "
		    "'%s' in %s, '%s' in %s", c->name, p, x->data, an,
		    y->data, bn);
		if (!S_ISLNK(x->st.st_mode)) {
			ck_assert_msg(x->st.st_mode == y->st.st_mode, "%s: "
			    "'%s' mode %o in %s, %o in %s", c->name, p,
			    x->st.st_mode, an, y->st.st_mode, bn);
			ck_assert_msg(x->st.st_mtim.tv_sec ==
			    y->st.st_mtim.tv_sec && x->st.st_mtim.tv_nsec ==
			    y->st.st_mtim.tv_nsec, "%s: '%s' mtime %lld.%09ld "
			    "in %s, %lld.%09ld in %s", c->name, p,
			    (long long)x->st.st_mtim.tv_sec,
			    x->st.st_mtim.tv_nsec, an,
			    (long long)y->st.st_mtim.tv_sec,
			    y->st.st_mtim.tv_nsec, bn);
		}
		if (as_root)
			ck_assert_msg(x->st.st_uid == y->st.st_uid &&
			    x->st.st_gid == y->st.st_gid, "%s: '%s' owner "
			    "%u:%u in %s, %u:%u in %s", c->name, p,
			    x->st.st_uid, x->st.st_gid, an, y->st.st_uid,
			    y->st.st_gid, bn);
		if (with_nlink && !S_ISDIR(x->st.st_mode))
			ck_assert_msg(x->st.st_nlink == y->st.st_nlink, "%s: "
			    "'%s' has %ju links in %s, %ju in %s", c->name, p,
			    (uintmax_t)x->st.st_nlink, an,
			    (uintmax_t)y->st.st_nlink, bn);
	}
}

/* ---- the test -------------------------------------------------------- */

static void
setup(void)
{
	/* The log's writer is a thread: started here, in the forked child
	 * (check forks per test; a thread started before the fork would be
	 * missing in the child, its queue's lock perhaps held forever, and
	 * TSan refuses a fork of a threaded process). */
	ck_assert_int_eq(synclog_open(NULL, LOG_LEVEL_ERROR), 0);
	strcpy(base, "/tmp/treesync-rules.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	ck_assert_ptr_nonnull(ev = event_base_new());
	ck_assert_int_eq(pool_new(ev, 2, &pool), 0);
	ck_assert_int_eq(exclude_new(&no_patterns), 0);
}

static void
teardown(void)
{
	char cmd[300];

	pool_free(pool);
	event_base_free(ev);
	exclude_free(no_patterns);
	synclog_close();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_pass_and_path_job_agree)
{
	const Case *c = &cases[_i];
	PathSyncResult first;
	Steps pass = { 0 }, handoff = { 0 };
	RuleAction pa, la;
	bool prep, lrep;
	Walk src, wp, wl;

	make_trees(c);
	run_pass(c, "pass", "", &pass);
	run_live(c, &first, &handoff);

	/* The live path job hands hard links to a full pass and a
	 * directory new in the destination to a subtree pass. */
	ck_assert_msg((first.outcome == PATHSYNC_HARDLINK) == c->src.linked,
	    "%s: path job outcome %d", c->name, first.outcome);
	ck_assert_msg((first.outcome == PATHSYNC_SUBTREE) ==
	    (c->src.kind == K_DIR && c->dst.kind != K_DIR),
	    "%s: path job outcome %d", c->name, first.outcome);
	pa = main_step(&pass, &prep);
	if (first.outcome == PATHSYNC_DONE) {
		la = first.action;
		lrep = first.replaced;
	} else {
		la = main_step(&handoff, &lrep);
	}
	ck_assert_msg(pa == la && prep == lrep, "%s: the pass did %s%s, the "
	    "path job %s%s", c->name, prep ? "delete + " : "",
	    rules_action_name(pa), lrep ? "delete + " : "",
	    rules_action_name(la));
	/* The two choices rules.h makes where the old code disagreed. */
	if (c->touched)
		ck_assert_msg(pa == (c->compare == COMPARE_HASH ? RULE_ATTRS :
		    RULE_COPY), "%s: a touched file gets %s", c->name,
		    rules_action_name(pa));
	if (c->dir_size_only) {
		struct stat a, b;
		char sp[300], dp[300];

		path_of(sp, sizeof sp, "src/" NAME);
		path_of(dp, sizeof dp, "live/" NAME);
		ck_assert_int_eq(stat(sp, &a), 0);
		ck_assert_int_eq(stat(dp, &b), 0);
		ck_assert_msg(a.st_size != b.st_size, "%s: the directories "
		    "have the same size: the case tests nothing", c->name);
	}
	if (c->dir_size_only)
		ck_assert_msg(pa == RULE_NONE, "%s: directories of another "
		    "size only get %s", c->name, rules_action_name(pa));

	walk("src", &src);
	walk("pass", &wp);
	walk("live", &wl);
	same_tree(c, "the pass's destination", &wp, "the live one's", &wl,
	    true);
	/* Both equal the source too, or they could agree on a wrong tree;
	 * a source name linked outside the tree has links that are not. */
	if (!c->delete || c->unseen)
		return;	/* the name stays where the source has none; the
			 * quick check is blind to it (both agree above) */
	same_tree(c, "the source", &src, "the pass's destination", &wp,
	    !c->src.linked);
}
END_TEST

/* ---- the pairs ------------------------------------------------------- */

static const Spec src_shapes[] = {
	{ K_MISSING, NULL, 0, 0, 0, 0, NULL, false, false, false },
	{ K_FILE, "hello, world\n", 0644, 1600000000, 123456789, 0, NULL,
	    false, false, false },
	{ K_FILE, "hello, world\n", 0644, 1600000000, 123456789, 0, NULL,
	    true, false, false },
	{ K_DIR, NULL, 0755, 1600000300, 42, 0, NULL, false, false, false },
	{ K_LINK, NULL, 0777, 1600000400, 0, 0, "target-a", false, false,
	    false },
};

/* The destination's entry of a kind: the source's when it has that
 * kind, else one of its own. */
static Spec
base_of(enum Kind kind, const Spec *src)
{
	static const Spec others[] = {
		[K_FILE] = { K_FILE, "other bytes\n", 0640, 1400000000, 9, 0,
		    NULL, false, false, false },
		[K_DIR] = { K_DIR, NULL, 0750, 1400000100, 8, 0, NULL, false,
		    false, false },
		[K_LINK] = { K_LINK, NULL, 0777, 1400000200, 0, 0,
		    "target-z", false, false, false },
	};
	Spec s = src->kind == kind ? *src : others[kind];

	s.linked = false;
	return s;
}

static Case *
add_case(const char *src_name, const Spec *src, const char *dst_name,
    const Spec *dst, CompareMode compare, bool delete)
{
	Case *c;

	if (n_cases == MAX_CASES)
		abort();	/* raise MAX_CASES */
	c = &cases[n_cases++];
	memset(c, 0, sizeof *c);
	snprintf(c->name, sizeof c->name, "%s%s: %s vs %s",
	    compare == COMPARE_HASH ? "hash" : "mtime",
	    delete ? "" : " (delete = false)", src_name, dst_name);
	c->src = *src;
	c->dst = *dst;
	c->compare = compare;
	c->delete = delete;
	return c;
}

/* Every destination shape for one source shape. */
static void
add_pairs(const char *src_name, const Spec *src, CompareMode cmp, bool del)
{
	static const Spec missing = { K_MISSING, NULL, 0, 0, 0, 0, NULL,
	    false, false, false };
	Spec d;
	Case *c;

	add_case(src_name, src, "missing", &missing, cmp, del);

	d = base_of(K_FILE, src);
	add_case(src_name, src, "file/same", &d, cmp, del);
	d = base_of(K_FILE, src);
	d.bytes = "hello, world, longer\n";
	add_case(src_name, src, "file/size", &d, cmp, del);
	d = base_of(K_FILE, src);
	d.mtime += 60;
	c = add_case(src_name, src, "file/mtime", &d, cmp, del);
	c->touched = src->kind == K_FILE && !src->linked;
	d = base_of(K_FILE, src);
	d.mode = 0600;
	add_case(src_name, src, "file/mode", &d, cmp, del);
	if (as_root) {
		d = base_of(K_FILE, src);
		d.uid = OTHER_UID;
		add_case(src_name, src, "file/owner", &d, cmp, del);
	}
	d = base_of(K_FILE, src);
	d.bytes = src->kind == K_FILE ? "HELLO, WORLD\n" : "OTHER BYTES\n";
	c = add_case(src_name, src, "file/content", &d, cmp, del);
	c->unseen = src->kind == K_FILE && cmp == COMPARE_MTIME;
	d.mtime += 60;
	add_case(src_name, src, "file/content+mtime", &d, cmp, del);
	d = base_of(K_FILE, src);
	d.linked = true;
	add_case(src_name, src, "file/hard link", &d, cmp, del);

	d = base_of(K_DIR, src);
	add_case(src_name, src, "dir/same", &d, cmp, del);
	d.mode = 0700;
	add_case(src_name, src, "dir/mode", &d, cmp, del);
	d = base_of(K_DIR, src);
	d.mtime += 60;
	add_case(src_name, src, "dir/mtime", &d, cmp, del);
	if (as_root) {
		d = base_of(K_DIR, src);
		d.uid = OTHER_UID;
		add_case(src_name, src, "dir/owner", &d, cmp, del);
	}
	d = base_of(K_DIR, src);
	d.grown = true;
	c = add_case(src_name, src, "dir/size", &d, cmp, del);
	c->dir_size_only = src->kind == K_DIR;
	if (src->kind != K_DIR) {
		/* What is inside a directory both sides have is not the
		 * path job's: it has paths of its own. */
		d = base_of(K_DIR, src);
		d.full = true;
		add_case(src_name, src, "dir/full", &d, cmp, del);
	}

	d = base_of(K_LINK, src);
	add_case(src_name, src, "symlink/same", &d, cmp, del);
	d.target = "target-b";
	add_case(src_name, src, "symlink/target", &d, cmp, del);
	if (as_root) {
		d = base_of(K_LINK, src);
		d.uid = OTHER_UID;
		add_case(src_name, src, "symlink/owner", &d, cmp, del);
	}
}

static void
add_all_pairs(void)
{
	static const char *const names[] = { "missing", "file", "hard link",
	    "dir", "symlink" };

	for (int m = 0; m < 2; m++) {
		CompareMode cmp = m ? COMPARE_HASH : COMPARE_MTIME;

		for (size_t i = 0; i < sizeof src_shapes / sizeof *src_shapes;
		    i++)
			add_pairs(names[i], &src_shapes[i], cmp, true);
		/* What stays when the source has no such name. */
		add_pairs(names[0], &src_shapes[0], cmp, false);
	}
}

int
main(void)
{
	Suite *s = suite_create("rules");
	TCase *tc = tcase_create("pairs");
	SRunner *sr;
	int failed;

	as_root = geteuid() == 0;
	umask(0);	/* as treesyncd: modes come from the source */
	fsutil_init_temp_tag();
	add_all_pairs();
	tcase_add_checked_fixture(tc, setup, teardown);
	/* Per check; ASan on a busy machine once took over 60 s for one. */
	tcase_set_timeout(tc, 300);
	tcase_add_loop_test(tc, test_pass_and_path_job_agree, 0,
	    (int)n_cases);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
