/*
 * powercutfs — a FUSE file system for power-cut tests: a passthrough onto a
 * backing directory that remembers what an fsync has not made durable, and
 * on a "power cut" puts the backing directory back to exactly what was
 * durable, then refuses every further operation (EIO) until it is
 * unmounted. README.md beside this file gives the crash semantics; this
 * comment says how they are kept.
 *
 *   powercutfs [--state DIR] BACKING MOUNTPOINT [FUSE OPTIONS]
 *
 * Every operation goes straight to BACKING, so reads, listings, renames
 * and hard links behave as on the backing file system (the page cache, in
 * the model's terms). Before an operation changes something that an fsync
 * has not covered yet, the durable version is kept, once per fsync period:
 *   - a file's attributes (mode, owner, mtime) at its first change;
 *   - a file's data at its first data change: copied into STATE/snap (a
 *     file created since the mount has no durable data: nothing to copy);
 *   - a directory's entry list (name -> inode) at its first entry change;
 *   - an inode that loses its last name (unlink, rmdir, a rename over it)
 *     is moved into STATE/stash instead of being freed, so that a rolled
 *     back name can point at it again. Inode numbers therefore never get
 *     reused while mounted, and identify nodes.
 * fsync/fdatasync of a file drops its kept data (fsync also its
 * attributes); fsync of a directory drops its kept listing, after applying
 * its cross-directory renames to the other directory's kept listing (a
 * rename is one transaction, as on a journaling file system).
 *
 * The cut (a write of "cut" to /.powercut-ctl, or "arm N": cut instead of
 * the (N+1)th mutating operation from now) runs between two requests
 * (single-threaded loop): every entry of every directory with a kept
 * listing moves into STATE/cut, each kept listing is linked (files) or
 * renamed (directories) back from wherever its inodes are now, kept data
 * and attributes are written back, and STATE is removed: what is left in
 * BACKING is what was durable. A clean unmount makes everything durable
 * (STATE removed, BACKING as it is).
 *
 * STATE (default BACKING.powercut, beside BACKING) must be on the same
 * file system and must not exist: a leftover means a previous instance
 * died without a cut or an unmount, and BACKING is then in its volatile
 * state; the tool refuses to guess.
 */
#define FUSE_USE_VERSION 35
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse.h>
#include <ftw.h>
#include <limits.h>
#include <search.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <unistd.h>

#define CTL_NAME ".powercut-ctl"
#define CTL_PATH "/" CTL_NAME
#define CTL_INO ((ino_t)0x7ffffffffffffffeULL)

/* What a node has kept since its last fsync. */
#define K_ATTR 0x01	/* attr holds the durable attributes */
#define K_DATA 0x02	/* the durable data is kept (snap file, or empty) */
#define K_EMPTY 0x04	/* with K_DATA: the durable data is empty (new) */
#define K_DIR 0x08	/* ents holds the durable listing */

struct dent {
	char *name;
	ino_t ino;
};

struct node {
	ino_t ino;
	unsigned kept;
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec mtime;
	struct dent *ents;
	size_t nents;
};

/* A name operation not yet covered by an fsync of a directory it touched:
 * each is one transaction (a rename moves its inode and drops the victim
 * at once), and the operations on one inode are durable in their order. */
enum op_kind { OP_RENAME, OP_EXCHANGE, OP_LINK, OP_UNLINK };

struct op {
	enum op_kind kind;
	ino_t src_dir, dst_dir;	/* 0: none (a link has no source dir, an
				 * unlink no destination) */
	ino_t ino, ino2;	/* the inode; a rename's victim or an
				 * exchange's other inode (0: none) */
	char *src_name, *dst_name;
	bool due;
};

struct handle {
	int fd;
	ino_t ino;
	DIR *dir;
	bool ctl;
};

static struct {
	const char *backing;
	char *state;
	int root;		/* BACKING */
	int state_fd, stash, snap;
	ino_t root_ino, state_ino;
	dev_t dev;
	bool privileged;
	void *nodes;		/* tsearch tree of struct node, by ino */
	struct op *xr;		/* pending name operations, oldest first */
	size_t nxr, xr_cap;
	uint64_t seq;
	/* control */
	bool frozen;
	long long armed;	/* -1: not armed; else ops to let through */
	uint64_t ops;
	uint64_t restored_dirs, restored_data, restored_attrs, errors;
} g = { .armed = -1 };

static void
warnx_(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "powercutfs: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
}

static void *
xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (p == NULL) {
		warnx_("out of memory");
		abort();
	}
	return p;
}

static char *
xstrdup(const char *s)
{
	char *p = xmalloc(strlen(s) + 1);

	strcpy(p, s);
	return p;
}

/* ---- paths ---- */

/* "/a/b" -> "a/b", "/" -> "." */
static const char *
rel(const char *path)
{
	while (*path == '/')
		path++;
	return *path ? path : ".";
}

/* Splits path into its parent (relative, into buf) and its last name. */
static const char *
split(const char *path, char *buf, size_t size)
{
	const char *r = rel(path);
	const char *slash = strrchr(r, '/');

	if (slash == NULL) {
		snprintf(buf, size, ".");
		return r;
	}
	snprintf(buf, size, "%.*s", (int)(slash - r), r);
	return slash + 1;
}

static bool
is_ctl(const char *path)
{
	return strcmp(path, CTL_PATH) == 0;
}

/* ---- nodes ---- */

static int
node_cmp(const void *a, const void *b)
{
	ino_t x = ((const struct node *)a)->ino, y = ((const struct node *)b)->ino;

	return x < y ? -1 : x > y;
}

static struct node *
node_find(ino_t ino)
{
	struct node key = { .ino = ino };
	void *p = tfind(&key, &g.nodes, node_cmp);

	return p ? *(struct node **)p : NULL;
}

static struct node *
node_get(ino_t ino)
{
	struct node *n = node_find(ino);

	if (n == NULL) {
		n = xmalloc(sizeof *n);
		memset(n, 0, sizeof *n);
		n->ino = ino;
		if (tsearch(n, &g.nodes, node_cmp) == NULL)
			abort();
	}
	return n;
}

static void
node_drop_ents(struct node *n)
{
	for (size_t i = 0; i < n->nents; i++)
		free(n->ents[i].name);
	free(n->ents);
	n->ents = NULL;
	n->nents = 0;
	n->kept &= ~K_DIR;
}

static void
snap_name(ino_t ino, char *buf, size_t size)
{
	snprintf(buf, size, "%llu", (unsigned long long)ino);
}

static void
node_drop_data(struct node *n)
{
	char name[32];

	if ((n->kept & K_DATA) && !(n->kept & K_EMPTY)) {
		snap_name(n->ino, name, sizeof name);
		unlinkat(g.snap, name, 0);
	}
	n->kept &= ~(K_DATA | K_EMPTY);
}

static void
keep_attr(struct node *n, const struct stat *st)
{
	if (n->kept & K_ATTR)
		return;
	n->mode = st->st_mode;
	n->uid = st->st_uid;
	n->gid = st->st_gid;
	n->mtime = st->st_mtim;
	n->kept |= K_ATTR;
}

/* Keeps the attributes of the entry at relative path r; returns its node. */
static int
keep_attr_at(const char *r, struct node **ret)
{
	struct stat st;
	struct node *n;

	if (fstatat(g.root, r, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	n = node_get(st.st_ino);
	keep_attr(n, &st);
	if (ret)
		*ret = n;
	return 0;
}

/* Keeps the listing of the directory at relative path r before its first
 * entry change since its last fsync. */
static int
keep_dir(const char *r)
{
	struct stat st;
	struct node *n;
	struct dirent *de;
	size_t cap = 0;
	DIR *d;
	int fd;

	if (fstatat(g.root, r, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	n = node_get(st.st_ino);
	keep_attr(n, &st);
	if (n->kept & K_DIR)
		return 0;
	fd = openat(g.root, r, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n->nents == cap) {
			struct dent *e;

			cap = cap ? cap * 2 : 16;
			e = realloc(n->ents, cap * sizeof *e);
			if (e == NULL)
				abort();
			n->ents = e;
		}
		n->ents[n->nents].name = xstrdup(de->d_name);
		n->ents[n->nents].ino = de->d_ino;
		n->nents++;
	}
	closedir(d);
	n->kept |= K_DIR;
	return 0;
}

static int
keep_parent(const char *path)
{
	char parent[PATH_MAX];

	split(path, parent, sizeof parent);
	return keep_dir(parent);
}

static int
copy_fd(int from, int to)
{
	char buf[65536];
	ssize_t n;

	while ((n = read(from, buf, sizeof buf)) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(to, buf + off, (size_t)(n - off));

			if (w < 0)
				return -errno;
			off += w;
		}
	}
	return n < 0 ? -errno : 0;
}

/* Keeps the data (and attributes) of the open file fd before its first
 * data change since its last fsync. */
static int
keep_data_fd(int fd)
{
	struct stat st;
	struct node *n;
	char name[32], proc[64];
	int src, dst, r;

	if (fstat(fd, &st) < 0)
		return -errno;
	n = node_get(st.st_ino);
	keep_attr(n, &st);
	if (n->kept & K_DATA)
		return 0;
	snap_name(n->ino, name, sizeof name);
	/* fd may be write-only: read through a fresh open of the same inode */
	snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
	src = open(proc, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return -errno;
	dst = openat(g.snap, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600);
	if (dst < 0) {
		r = -errno;
		close(src);
		return r;
	}
	r = copy_fd(src, dst);
	close(src);
	close(dst);
	if (r < 0)
		return r;
	n->kept |= K_DATA;
	return 0;
}

static int
keep_data_at(const char *r)
{
	int fd = openat(g.root, r, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), ret;

	if (fd < 0)
		return -errno;
	ret = keep_data_fd(fd);
	close(fd);
	return ret;
}

/* A node made since the mount: nothing of it is durable but its creation
 * attributes (durable with its name, when its directory is fsynced). */
static void
node_new(const struct stat *st)
{
	struct node *n = node_get(st->st_ino);

	node_drop_ents(n);
	node_drop_data(n);
	n->kept = 0;
	keep_attr(n, st);
	if (S_ISREG(st->st_mode))
		n->kept |= K_DATA | K_EMPTY;
	if (S_ISDIR(st->st_mode))
		n->kept |= K_DIR;		/* an empty durable listing */
}

/* Moves the entry name of dirfd into STATE/stash (keeping its inode). */
static int
stash_entry(int dirfd, const char *name, ino_t ino)
{
	char s[64];

	snprintf(s, sizeof s, "%llu.%llu", (unsigned long long)ino,
	    (unsigned long long)++g.seq);
	return renameat(dirfd, name, g.stash, s) < 0 ? -errno : 0;
}

static void
op_add(enum op_kind kind, ino_t src_dir, const char *sname, ino_t dst_dir,
    const char *dname, ino_t ino, ino_t ino2)
{
	if (g.nxr == g.xr_cap) {
		g.xr_cap = g.xr_cap ? g.xr_cap * 2 : 16;
		g.xr = realloc(g.xr, g.xr_cap * sizeof *g.xr);
		if (g.xr == NULL)
			abort();
	}
	g.xr[g.nxr++] = (struct op){ kind, src_dir, dst_dir, ino, ino2,
	    sname ? xstrdup(sname) : NULL, dname ? xstrdup(dname) : NULL,
	    false };
}

static void
ents_set(struct node *d, const char *name, ino_t ino)
{
	for (size_t i = 0; i < d->nents; i++) {
		if (strcmp(d->ents[i].name, name) == 0) {
			d->ents[i].ino = ino;
			return;
		}
	}
	d->ents = realloc(d->ents, (d->nents + 1) * sizeof *d->ents);
	if (d->ents == NULL)
		abort();
	d->ents[d->nents].name = xstrdup(name);
	d->ents[d->nents].ino = ino;
	d->nents++;
}

static void
ents_remove(struct node *d, const char *name, ino_t ino)
{
	for (size_t i = 0; i < d->nents; i++) {
		if (strcmp(d->ents[i].name, name) == 0 && d->ents[i].ino == ino) {
			free(d->ents[i].name);
			d->ents[i] = d->ents[--d->nents];
			return;
		}
	}
}

static struct node *
kept_dir(ino_t ino)
{
	struct node *n = ino ? node_find(ino) : NULL;

	return n && (n->kept & K_DIR) ? n : NULL;
}

/* A pending operation becomes durable: applied to the kept listings. */
static void
op_apply(const struct op *o)
{
	struct node *src = kept_dir(o->src_dir), *dst = kept_dir(o->dst_dir);

	switch (o->kind) {
	case OP_RENAME:
		if (src)
			ents_remove(src, o->src_name, o->ino);
		if (dst)
			ents_set(dst, o->dst_name, o->ino);
		break;
	case OP_EXCHANGE:
		if (src)
			ents_set(src, o->src_name, o->ino2);
		if (dst)
			ents_set(dst, o->dst_name, o->ino);
		break;
	case OP_LINK:
		if (dst)
			ents_set(dst, o->dst_name, o->ino);
		break;
	case OP_UNLINK:
		if (src)
			ents_remove(src, o->src_name, o->ino);
		break;
	}
}

static bool
in_set(const ino_t *set, size_t n, ino_t ino)
{
	for (size_t i = 0; i < n; i++)
		if (set[i] == ino)
			return true;
	return false;
}

/* fsync of directory d: every pending operation that touched d becomes
 * durable (in both directories of a rename), with every earlier one on
 * the same inodes, transitively; then d's listing as it is now. */
static void
dir_synced(struct node *d)
{
	ino_t *set = NULL;
	size_t nset = 0, cap = 0, k = 0;

	for (size_t i = g.nxr; i-- > 0;) {
		struct op *o = &g.xr[i];

		o->due = o->src_dir == d->ino || o->dst_dir == d->ino ||
		    in_set(set, nset, o->ino) ||
		    (o->ino2 && in_set(set, nset, o->ino2));
		if (!o->due)
			continue;
		if (nset + 2 > cap) {
			cap = cap ? cap * 2 : 16;
			set = realloc(set, cap * sizeof *set);
			if (set == NULL)
				abort();
		}
		if (!in_set(set, nset, o->ino))
			set[nset++] = o->ino;
		if (o->ino2 && !in_set(set, nset, o->ino2))
			set[nset++] = o->ino2;
	}
	free(set);
	for (size_t i = 0; i < g.nxr; i++) {
		struct op *o = &g.xr[i];

		if (!o->due) {
			g.xr[k++] = *o;
			continue;
		}
		op_apply(o);
		free(o->src_name);
		free(o->dst_name);
	}
	g.nxr = k;
	node_drop_ents(d);
	d->kept &= ~K_ATTR;
}

/* ---- the cut ---- */

/* Where each inode is found during the cut: one name of it. */
struct loc {
	ino_t ino, parent;
	char *name;
	bool isdir;
};

static void *g_index;

static int
loc_cmp(const void *a, const void *b)
{
	ino_t x = ((const struct loc *)a)->ino, y = ((const struct loc *)b)->ino;

	return x < y ? -1 : x > y;
}

static struct loc *
loc_find(ino_t ino)
{
	struct loc key = { .ino = ino };
	void *p = tfind(&key, &g_index, loc_cmp);

	return p ? *(struct loc **)p : NULL;
}

static void
loc_set(ino_t ino, ino_t parent, const char *name, bool isdir, bool replace)
{
	struct loc *l = loc_find(ino);

	if (l != NULL) {
		if (!replace)
			return;
		free(l->name);
	} else {
		l = xmalloc(sizeof *l);
		l->ino = ino;
		if (tsearch(l, &g_index, loc_cmp) == NULL)
			abort();
	}
	l->parent = parent;
	l->name = name ? xstrdup(name) : NULL;
	l->isdir = isdir;
}

static void
loc_free(void *p)
{
	struct loc *l = p;

	free(l->name);
	free(l);
}

static void
index_dir(int fd, ino_t ino, int depth)
{
	struct dirent *de;
	DIR *d;
	int dup_fd = dup(fd);

	if (dup_fd < 0 || (d = fdopendir(dup_fd)) == NULL) {
		if (dup_fd >= 0)
			close(dup_fd);
		g.errors++;
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		int sub;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			g.errors++;
			continue;
		}
		loc_set(st.st_ino, ino, de->d_name, S_ISDIR(st.st_mode), false);
		if (!S_ISDIR(st.st_mode) || depth > 4000)
			continue;
		sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (sub < 0) {
			g.errors++;
			continue;
		}
		index_dir(sub, st.st_ino, depth + 1);
		close(sub);
	}
	closedir(d);
}

/* Indexes BACKING first (so a hard-linked file's name in it wins), then
 * STATE. */
static void
index_build(void)
{
	tdestroy(g_index, loc_free);
	g_index = NULL;
	loc_set(g.root_ino, 0, NULL, true, true);
	loc_set(g.state_ino, 0, NULL, true, true);
	index_dir(g.root, g.root_ino, 0);
	index_dir(g.state_fd, g.state_ino, 0);
}

/* The path of ino relative to BACKING (*in_backing) or STATE; false when
 * not found. */
static bool
loc_path(ino_t ino, char *buf, size_t size, bool *in_backing)
{
	const char *names[4096];
	size_t n = 0, off = 0;
	struct loc *l = loc_find(ino);

	while (l != NULL && l->parent != 0 && n < 4096) {
		names[n++] = l->name;
		l = loc_find(l->parent);
	}
	if (l == NULL || l->parent != 0)
		return false;
	*in_backing = l->ino == g.root_ino;
	buf[0] = '\0';
	if (n == 0)
		snprintf(buf, size, ".");
	while (n > 0) {
		int w = snprintf(buf + off, size - off, "%s%s", off ? "/" : "",
		    names[--n]);

		if (w < 0 || (size_t)w >= size - off)
			return false;
		off += (size_t)w;
	}
	return true;
}

/* An O_PATH fd on the directory ino, and whether it is in BACKING. */
static int
open_dir_ino(ino_t ino, bool *in_backing)
{
	char path[PATH_MAX];
	bool b;
	int fd;

	if (!loc_path(ino, path, sizeof path, &b))
		return -1;
	fd = openat(b ? g.root : g.state_fd, path, O_PATH | O_DIRECTORY |
	    O_NOFOLLOW | O_CLOEXEC);
	if (in_backing)
		*in_backing = b;
	return fd;
}

struct dirty {
	struct node *node;
	int fd;
};

static struct dirty *g_dirty;
static size_t g_ndirty, g_dirty_cap;

static void
collect_dirty(const void *p, VISIT which, int depth)
{
	struct node *n = *(struct node *const *)p;

	(void)depth;
	if ((which != postorder && which != leaf) || !(n->kept & K_DIR))
		return;
	if (g_ndirty == g_dirty_cap) {
		g_dirty_cap = g_dirty_cap ? g_dirty_cap * 2 : 16;
		g_dirty = realloc(g_dirty, g_dirty_cap * sizeof *g_dirty);
		if (g_dirty == NULL)
			abort();
	}
	g_dirty[g_ndirty++] = (struct dirty){ n, -1 };
}

static struct node **g_all;
static size_t g_nall, g_all_cap;

static void
collect_all(const void *p, VISIT which, int depth)
{
	(void)depth;
	if (which != postorder && which != leaf)
		return;
	if (g_nall == g_all_cap) {
		g_all_cap = g_all_cap ? g_all_cap * 2 : 64;
		g_all = realloc(g_all, g_all_cap * sizeof *g_all);
		if (g_all == NULL)
			abort();
	}
	g_all[g_nall++] = *(struct node *const *)p;
}

static int
rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(p) < 0)
		g.errors++;
	return 0;
}

static void
remove_state(void)
{
	close(g.stash);
	close(g.snap);
	close(g.state_fd);
	g.stash = g.snap = g.state_fd = -1;
	nftw(g.state, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
}

static void
restore_data(struct node *n)
{
	char path[PATH_MAX], name[32];
	bool in_backing;
	int fd, src;

	if (!loc_path(n->ino, path, sizeof path, &in_backing) || !in_backing)
		return;			/* not durable anywhere */
	fd = openat(g.root, path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || ftruncate(fd, 0) < 0) {
		g.errors++;
		goto out;
	}
	if (!(n->kept & K_EMPTY)) {
		snap_name(n->ino, name, sizeof name);
		src = openat(g.snap, name, O_RDONLY | O_CLOEXEC);
		if (src < 0 || copy_fd(src, fd) < 0)
			g.errors++;
		if (src >= 0)
			close(src);
	}
	g.restored_data++;
out:
	if (fd >= 0)
		close(fd);
}

static void
restore_attr(struct node *n)
{
	struct timespec t[2] = { { .tv_nsec = UTIME_OMIT }, n->mtime };
	char path[PATH_MAX];
	bool in_backing;

	if (!loc_path(n->ino, path, sizeof path, &in_backing) || !in_backing)
		return;
	if (g.privileged && fchownat(g.root, path, n->uid, n->gid,
	    AT_SYMLINK_NOFOLLOW) < 0)
		g.errors++;
	if (!S_ISLNK(n->mode) && fchmodat(g.root, path, n->mode & 07777, 0) < 0)
		g.errors++;
	if (utimensat(g.root, path, t, AT_SYMLINK_NOFOLLOW) < 0)
		g.errors++;
	g.restored_attrs++;
}

static void
power_cut(void)
{
	int cut_fd;

	g.frozen = true;
	g_ndirty = 0;
	twalk(g.nodes, collect_dirty);
	index_build();
	for (size_t i = 0; i < g_ndirty; i++)
		g_dirty[i].fd = open_dir_ino(g_dirty[i].node->ino, NULL);
	if (mkdirat(g.state_fd, "cut", 0700) < 0 ||
	    (cut_fd = openat(g.state_fd, "cut", O_PATH | O_DIRECTORY |
	    O_CLOEXEC)) < 0) {
		warnx_("cut: cannot make %s/cut: %s", g.state, strerror(errno));
		g.errors++;
		return;
	}
	/* 1. Empty every directory whose listing was kept. */
	for (size_t i = 0; i < g_ndirty; i++) {
		int fd = g_dirty[i].fd, rfd;
		struct dirent *de;
		char **names = NULL;
		size_t n = 0, cap = 0;
		DIR *d;

		if (fd < 0) {
			g.errors++;
			continue;
		}
		rfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (rfd < 0 || (d = fdopendir(rfd)) == NULL) {
			if (rfd >= 0)
				close(rfd);
			g.errors++;
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			if (strcmp(de->d_name, ".") == 0 ||
			    strcmp(de->d_name, "..") == 0)
				continue;
			if (n == cap) {
				cap = cap ? cap * 2 : 16;
				names = realloc(names, cap * sizeof *names);
				if (names == NULL)
					abort();
			}
			names[n++] = xstrdup(de->d_name);
		}
		closedir(d);
		for (size_t k = 0; k < n; k++) {
			struct stat st;
			char s[64];

			if (fstatat(fd, names[k], &st, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISDIR(st.st_mode))	/* its mtime changes */
				keep_attr(node_get(st.st_ino), &st);
			snprintf(s, sizeof s, "%llu.%llu",
			    (unsigned long long)st.st_ino,
			    (unsigned long long)++g.seq);
			if (renameat(fd, names[k], cut_fd, s) < 0)
				g.errors++;
			free(names[k]);
		}
		free(names);
	}
	/* 2. Fill them with their durable listings. */
	index_build();
	for (size_t i = 0; i < g_ndirty; i++) {
		struct node *d = g_dirty[i].node;

		if (g_dirty[i].fd < 0)
			continue;
		for (size_t k = 0; k < d->nents; k++) {
			struct loc *l = loc_find(d->ents[k].ino);
			bool in_backing;
			int pfd;

			if (l == NULL || (pfd = open_dir_ino(l->parent,
			    &in_backing)) < 0) {
				warnx_("cut: inode %llu of '%s' not found",
				    (unsigned long long)d->ents[k].ino,
				    d->ents[k].name);
				g.errors++;
				continue;
			}
			if (l->isdir) {
				if (renameat(pfd, l->name, g_dirty[i].fd,
				    d->ents[k].name) < 0)
					g.errors++;
				else
					loc_set(l->ino, d->ino, d->ents[k].name,
					    true, true);
			} else {
				if (linkat(pfd, l->name, g_dirty[i].fd,
				    d->ents[k].name, 0) < 0)
					g.errors++;
				else if (!in_backing)
					loc_set(l->ino, d->ino, d->ents[k].name,
					    false, true);
			}
			close(pfd);
		}
		g.restored_dirs++;
	}
	/* 3. Data, then attributes (a data write changes the mtime). */
	g_nall = 0;
	twalk(g.nodes, collect_all);
	for (size_t i = 0; i < g_nall; i++)
		if (g_all[i]->kept & K_DATA)
			restore_data(g_all[i]);
	for (size_t i = 0; i < g_nall; i++)
		if (g_all[i]->kept & K_ATTR)
			restore_attr(g_all[i]);
	for (size_t i = 0; i < g_ndirty; i++)
		if (g_dirty[i].fd >= 0)
			close(g_dirty[i].fd);
	close(cut_fd);
	remove_state();
	tdestroy(g_index, loc_free);
	g_index = NULL;
	if (g.errors)
		warnx_("cut: %llu errors", (unsigned long long)g.errors);
}

/* Everything becomes durable (the "sync" command). */
static void
node_forget(void *p)
{
	struct node *n = p;

	node_drop_ents(n);
	node_drop_data(n);
	free(n);
}

static void
forget_ops(void)
{
	for (size_t i = 0; i < g.nxr; i++) {
		free(g.xr[i].src_name);
		free(g.xr[i].dst_name);
	}
	g.nxr = 0;
}

static void
make_durable(void)
{
	tdestroy(g.nodes, node_forget);
	g.nodes = NULL;
	forget_ops();
	/* the stash holds nothing durable any more */
	{
		int fd = openat(g.stash, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
		struct dirent *de;
		char path[PATH_MAX];

		while (d && (de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(path, sizeof path, "%s/stash/%s", g.state,
			    de->d_name);
			nftw(path, rm_entry, 32, FTW_DEPTH | FTW_PHYS);
		}
		if (d)
			closedir(d);
	}
}

/* Counts a mutating operation; true when it must not run (cut or armed
 * cut reached). */
static bool
mutating(void)
{
	if (g.frozen)
		return true;
	if (g.armed == 0) {
		g.armed = -1;
		power_cut();
		return true;
	}
	if (g.armed > 0)
		g.armed--;
	g.ops++;
	return false;
}

#define FROZEN_CHECK() do { if (g.frozen) return -EIO; } while (0)
#define MUTATING() do { if (mutating()) return -EIO; } while (0)

/* ---- operations ---- */

static void *
pc_init(struct fuse_conn_info *conn, struct fuse_config *cfg)
{
	(void)conn;
	cfg->use_ino = 1;
	cfg->hard_remove = 1;
	cfg->entry_timeout = 0;
	cfg->attr_timeout = 0;
	cfg->negative_timeout = 0;
	return NULL;
}

static void
pc_destroy(void *priv)
{
	(void)priv;
	if (!g.frozen)
		remove_state();		/* a clean unmount: all durable */
	tdestroy(g.nodes, node_forget);
	g.nodes = NULL;
	forget_ops();
}

static int
pc_getattr(const char *path, struct stat *st, struct fuse_file_info *fi)
{
	if (is_ctl(path)) {
		memset(st, 0, sizeof *st);
		st->st_mode = S_IFREG | 0600;
		st->st_nlink = 1;
		st->st_ino = CTL_INO;
		return 0;
	}
	/* the root still answers, so that the control file can be reached */
	if (g.frozen && strcmp(path, "/") != 0)
		return -EIO;
	if (fi && fi->fh) {
		struct handle *h = (struct handle *)(uintptr_t)fi->fh;

		if (h->fd >= 0)
			return fstat(h->fd, st) < 0 ? -errno : 0;
	}
	return fstatat(g.root, rel(path), st, AT_SYMLINK_NOFOLLOW) < 0 ?
	    -errno : 0;
}

static int
pc_readlink(const char *path, char *buf, size_t size)
{
	ssize_t n;

	FROZEN_CHECK();
	n = readlinkat(g.root, rel(path), buf, size - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

/* The owner a new entry gets: the caller's, the group as the backing file
 * system chose it when the directory is setgid. */
static void
own(const char *r)
{
	struct fuse_context *c = fuse_get_context();
	struct stat st;
	gid_t gid = c->gid;
	char parent[PATH_MAX];

	if (!g.privileged)
		return;
	split(r, parent, sizeof parent);
	if (fstatat(g.root, parent, &st, 0) == 0 && (st.st_mode & S_ISGID))
		gid = st.st_gid;
	fchownat(g.root, r, c->uid, gid, AT_SYMLINK_NOFOLLOW);
}

static int
after_create(const char *r)
{
	struct stat st;

	own(r);
	if (fstatat(g.root, r, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	node_new(&st);
	return 0;
}

static bool
reserved(const char *path)
{
	return is_ctl(path);
}

static int
pc_mknod(const char *path, mode_t mode, dev_t rdev)
{
	int r;

	if (reserved(path))
		return -EEXIST;
	MUTATING();
	if ((r = keep_parent(path)) < 0)
		return r;
	if (mknodat(g.root, rel(path), mode, rdev) < 0)
		return -errno;
	return after_create(rel(path));
}

static int
pc_mkdir(const char *path, mode_t mode)
{
	int r;

	if (reserved(path))
		return -EEXIST;
	MUTATING();
	if ((r = keep_parent(path)) < 0)
		return r;
	if (mkdirat(g.root, rel(path), mode) < 0)
		return -errno;
	return after_create(rel(path));
}

static int
pc_symlink(const char *target, const char *path)
{
	int r;

	if (reserved(path))
		return -EEXIST;
	MUTATING();
	if ((r = keep_parent(path)) < 0)
		return r;
	if (symlinkat(target, g.root, rel(path)) < 0)
		return -errno;
	return after_create(rel(path));
}

static int
record_unlink(const char *parent, const char *name, ino_t ino)
{
	struct stat pst;

	if (fstatat(g.root, parent, &pst, 0) < 0)
		return -errno;
	op_add(OP_UNLINK, pst.st_ino, name, 0, NULL, ino, 0);
	return 0;
}

static int
pc_unlink(const char *path)
{
	struct stat st;
	char parent[PATH_MAX];
	const char *name = split(path, parent, sizeof parent);
	int r, pfd;

	if (reserved(path))
		return -EPERM;
	MUTATING();
	if (fstatat(g.root, rel(path), &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if ((r = keep_parent(path)) < 0)
		return r;
	if (st.st_nlink > 1) {
		if (unlinkat(g.root, rel(path), 0) < 0)
			return -errno;
	} else {
		pfd = openat(g.root, parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (pfd < 0)
			return -errno;
		r = stash_entry(pfd, name, st.st_ino);
		close(pfd);
		if (r < 0)
			return r;
	}
	return record_unlink(parent, name, st.st_ino);
}

static bool
dir_is_empty(const char *r)
{
	int fd = openat(g.root, r, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	struct dirent *de;
	bool empty = true;
	DIR *d;

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			empty = false;
	closedir(d);
	return empty;
}

static int
pc_rmdir(const char *path)
{
	struct stat st;
	char parent[PATH_MAX];
	const char *name = split(path, parent, sizeof parent);
	int r, pfd;

	MUTATING();
	if (strcmp(rel(path), ".") == 0)
		return -EBUSY;
	if (fstatat(g.root, rel(path), &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (!dir_is_empty(rel(path)))
		return -ENOTEMPTY;
	if ((r = keep_parent(path)) < 0)
		return r;
	pfd = openat(g.root, parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pfd < 0)
		return -errno;
	r = stash_entry(pfd, name, st.st_ino);
	close(pfd);
	return r < 0 ? r : record_unlink(parent, name, st.st_ino);
}

static int
pc_rename(const char *from, const char *to, unsigned int flags)
{
	char fparent[PATH_MAX], tparent[PATH_MAX];
	const char *fname = split(from, fparent, sizeof fparent);
	const char *tname = split(to, tparent, sizeof tparent);
	struct stat fs, ts, fps, tps;
	bool victim = false, victim_dir = false, replaced = false;
	char vstash[64] = "";
	int r;

	if (reserved(from) || reserved(to))
		return -EPERM;
	MUTATING();
	if (fstatat(g.root, rel(from), &fs, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (fstatat(g.root, fparent, &fps, 0) < 0 ||
	    fstatat(g.root, tparent, &tps, 0) < 0)
		return -errno;
	if ((r = keep_dir(fparent)) < 0 || (r = keep_dir(tparent)) < 0)
		return r;
	if (!(flags & RENAME_EXCHANGE) &&
	    fstatat(g.root, rel(to), &ts, AT_SYMLINK_NOFOLLOW) == 0 &&
	    ts.st_ino != fs.st_ino) {
		replaced = true;
		if (flags & RENAME_NOREPLACE)
			return -EEXIST;
		if (S_ISDIR(fs.st_mode) && !S_ISDIR(ts.st_mode))
			return -ENOTDIR;
		if (!S_ISDIR(fs.st_mode) && S_ISDIR(ts.st_mode))
			return -EISDIR;
		if (S_ISDIR(ts.st_mode)) {
			if (!dir_is_empty(rel(to)))
				return -ENOTEMPTY;
			victim = victim_dir = true;
		} else {
			victim = ts.st_nlink == 1;
		}
	}
	if (victim) {
		/* keep the inode the target name loses */
		snprintf(vstash, sizeof vstash, "%llu.%llu",
		    (unsigned long long)ts.st_ino, (unsigned long long)++g.seq);
		if (victim_dir ? renameat(g.root, rel(to), g.stash, vstash) :
		    linkat(g.root, rel(to), g.stash, vstash, 0))
			return -errno;
	}
	if (renameat2(g.root, rel(from), g.root, rel(to), flags) < 0) {
		r = -errno;
		if (victim_dir)
			renameat(g.stash, vstash, g.root, rel(to));
		else if (victim)
			unlinkat(g.stash, vstash, 0);
		return r;
	}
	if (flags & RENAME_EXCHANGE) {
		struct stat now;

		if (fstatat(g.root, rel(from), &now, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		op_add(OP_EXCHANGE, fps.st_ino, fname, tps.st_ino, tname,
		    fs.st_ino, now.st_ino);
	} else {
		op_add(OP_RENAME, fps.st_ino, fname, tps.st_ino, tname,
		    fs.st_ino, replaced ? ts.st_ino : 0);
	}
	return 0;
}

static int
pc_link(const char *from, const char *to)
{
	int r;

	if (reserved(from) || reserved(to))
		return -EPERM;
	char parent[PATH_MAX];
	const char *name = split(to, parent, sizeof parent);
	struct stat st, pst;

	MUTATING();
	if ((r = keep_parent(to)) < 0)
		return r;
	if (linkat(g.root, rel(from), g.root, rel(to), 0) < 0)
		return -errno;
	if (fstatat(g.root, rel(to), &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    fstatat(g.root, parent, &pst, 0) < 0)
		return -errno;
	op_add(OP_LINK, 0, NULL, pst.st_ino, name, st.st_ino, 0);
	return 0;
}

static int
pc_chmod(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int r;

	(void)fi;
	if (reserved(path))
		return -EPERM;
	MUTATING();
	if ((r = keep_attr_at(rel(path), NULL)) < 0)
		return r;
	return fchmodat(g.root, rel(path), mode, 0) < 0 ? -errno : 0;
}

static int
pc_chown(const char *path, uid_t uid, gid_t gid, struct fuse_file_info *fi)
{
	int r;

	(void)fi;
	if (reserved(path))
		return -EPERM;
	MUTATING();
	if ((r = keep_attr_at(rel(path), NULL)) < 0)
		return r;
	return fchownat(g.root, rel(path), uid, gid, AT_SYMLINK_NOFOLLOW) < 0 ?
	    -errno : 0;
}

static int
pc_truncate(const char *path, off_t size, struct fuse_file_info *fi)
{
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	int r, fd;

	if (is_ctl(path))
		return 0;
	MUTATING();
	if (h && h->fd >= 0) {
		if ((r = keep_data_fd(h->fd)) < 0)
			return r;
		return ftruncate(h->fd, size) < 0 ? -errno : 0;
	}
	fd = openat(g.root, rel(path), O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = keep_data_fd(fd);
	if (r == 0 && ftruncate(fd, size) < 0)
		r = -errno;
	close(fd);
	return r;
}

static int
pc_utimens(const char *path, const struct timespec tv[2],
    struct fuse_file_info *fi)
{
	int r;

	(void)fi;
	if (is_ctl(path))
		return 0;
	MUTATING();
	if ((r = keep_attr_at(rel(path), NULL)) < 0)
		return r;
	return utimensat(g.root, rel(path), tv, AT_SYMLINK_NOFOLLOW) < 0 ?
	    -errno : 0;
}

static int
new_handle(struct fuse_file_info *fi, int fd)
{
	struct handle *h = xmalloc(sizeof *h);
	struct stat st;

	memset(h, 0, sizeof *h);
	h->fd = fd;
	if (fd >= 0 && fstat(fd, &st) == 0)
		h->ino = st.st_ino;
	fi->fh = (uint64_t)(uintptr_t)h;
	return 0;
}

static int
pc_open(const char *path, struct fuse_file_info *fi)
{
	int flags = fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY);
	int fd, r;

	if (is_ctl(path)) {
		new_handle(fi, -1);
		((struct handle *)(uintptr_t)fi->fh)->ctl = true;
		fi->direct_io = 1;
		return 0;
	}
	FROZEN_CHECK();
	if (flags & O_TRUNC) {
		MUTATING();
		if ((r = keep_data_at(rel(path))) < 0)
			return r;
	}
	fd = openat(g.root, rel(path), flags | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return new_handle(fi, fd);
}

static int
pc_create(const char *path, mode_t mode, struct fuse_file_info *fi)
{
	int flags = fi->flags & ~O_NOCTTY;
	int fd, r;

	if (reserved(path))
		return -EEXIST;
	MUTATING();
	if ((r = keep_parent(path)) < 0)
		return r;
	fd = openat(g.root, rel(path), flags | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, mode);
	if (fd >= 0) {
		if ((r = after_create(rel(path))) < 0) {
			close(fd);
			return r;
		}
		return new_handle(fi, fd);
	}
	if (errno != EEXIST || (flags & O_EXCL))
		return -errno;
	/* it existed after all: an ordinary open */
	if ((flags & O_TRUNC) && (r = keep_data_at(rel(path))) < 0)
		return r;
	fd = openat(g.root, rel(path), flags | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	return new_handle(fi, fd);
}

static int
ctl_status(char *buf, size_t size)
{
	size_t files = 0, dirs = 0;

	g_nall = 0;
	if (!g.frozen)
		twalk(g.nodes, collect_all);
	for (size_t i = 0; i < g_nall; i++) {
		if (g_all[i]->kept & K_DATA)
			files++;
		if (g_all[i]->kept & K_DIR)
			dirs++;
	}
	return snprintf(buf, size, "state=%s ops=%llu armed=%lld "
	    "unsynced_files=%zu unsynced_dirs=%zu pending_ops=%zu "
	    "restored_dirs=%llu restored_data=%llu restored_attrs=%llu "
	    "errors=%llu\n", g.frozen ? "cut" : "running",
	    (unsigned long long)g.ops, g.armed, files, dirs, g.nxr,
	    (unsigned long long)g.restored_dirs,
	    (unsigned long long)g.restored_data,
	    (unsigned long long)g.restored_attrs,
	    (unsigned long long)g.errors);
}

static int
pc_read(const char *path, char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	ssize_t n;

	(void)path;
	if (h->ctl) {
		char s[512];
		int len = ctl_status(s, sizeof s);

		if (off >= len)
			return 0;
		if ((size_t)(len - off) < size)
			size = (size_t)(len - off);
		memcpy(buf, s + off, size);
		return (int)size;
	}
	FROZEN_CHECK();
	n = pread(h->fd, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int
ctl_command(const char *buf, size_t size)
{
	char cmd[64];
	long long n;

	snprintf(cmd, sizeof cmd, "%.*s", (int)(size < 63 ? size : 63), buf);
	cmd[strcspn(cmd, "\n")] = '\0';
	if (strcmp(cmd, "cut") == 0) {
		if (!g.frozen)
			power_cut();
	} else if (sscanf(cmd, "arm %lld", &n) == 1 && n >= 0) {
		if (g.frozen)
			return -EIO;
		g.armed = n;
	} else if (strcmp(cmd, "disarm") == 0) {
		g.armed = -1;
	} else if (strcmp(cmd, "sync") == 0) {
		if (g.frozen)
			return -EIO;
		make_durable();
	} else {
		return -EINVAL;
	}
	return (int)size;
}

static int
pc_write(const char *path, const char *buf, size_t size, off_t off,
    struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	ssize_t n;
	int r;

	(void)path;
	if (h->ctl)
		return ctl_command(buf, size);
	MUTATING();
	if ((r = keep_data_fd(h->fd)) < 0)
		return r;
	n = pwrite(h->fd, buf, size, off);
	return n < 0 ? -errno : (int)n;
}

static int
pc_statfs(const char *path, struct statvfs *st)
{
	(void)path;
	FROZEN_CHECK();
	return fstatvfs(g.root, st) < 0 ? -errno : 0;
}

static int
pc_release(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)path;
	if (h->fd >= 0)
		close(h->fd);
	free(h);
	return 0;
}

static int
pc_fsync(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct node *n;

	(void)path;
	if (h->ctl)
		return 0;
	MUTATING();
	n = node_find(h->ino);
	if (n == NULL)
		return 0;
	node_drop_data(n);
	if (!datasync)
		n->kept &= ~K_ATTR;
	return 0;
}

static int
pc_fallocate(const char *path, int mode, off_t off, off_t len,
    struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int r;

	(void)path;
	MUTATING();
	if ((r = keep_data_fd(h->fd)) < 0)
		return r;
	return fallocate(h->fd, mode, off, len) < 0 ? -errno : 0;
}

static int
pc_opendir(const char *path, struct fuse_file_info *fi)
{
	struct handle *h;
	int fd;

	FROZEN_CHECK();
	fd = openat(g.root, rel(path), O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd < 0)
		return -errno;
	new_handle(fi, fd);
	h = (struct handle *)(uintptr_t)fi->fh;
	h->dir = fdopendir(dup(fd));
	if (h->dir == NULL) {
		close(fd);
		free(h);
		return -ENOMEM;
	}
	return 0;
}

static int
pc_readdir(const char *path, void *buf, fuse_fill_dir_t filler, off_t off,
    struct fuse_file_info *fi, enum fuse_readdir_flags flags)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct dirent *de;

	(void)path;
	(void)off;
	(void)flags;
	FROZEN_CHECK();
	rewinddir(h->dir);
	while ((de = readdir(h->dir)) != NULL) {
		struct stat st = { .st_ino = de->d_ino,
		    .st_mode = (mode_t)DTTOIF(de->d_type) };

		if (filler(buf, de->d_name, &st, 0, 0))
			break;
	}
	return 0;
}

static int
pc_releasedir(const char *path, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)path;
	closedir(h->dir);
	close(h->fd);
	free(h);
	return 0;
}

static int
pc_fsyncdir(const char *path, int datasync, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct node *n;

	(void)path;
	(void)datasync;
	MUTATING();
	n = node_find(h->ino);
	if (n != NULL)
		dir_synced(n);
	return 0;
}

static const struct fuse_operations ops = {
	.init = pc_init,
	.destroy = pc_destroy,
	.getattr = pc_getattr,
	.readlink = pc_readlink,
	.mknod = pc_mknod,
	.mkdir = pc_mkdir,
	.symlink = pc_symlink,
	.unlink = pc_unlink,
	.rmdir = pc_rmdir,
	.rename = pc_rename,
	.link = pc_link,
	.chmod = pc_chmod,
	.chown = pc_chown,
	.truncate = pc_truncate,
	.utimens = pc_utimens,
	.open = pc_open,
	.create = pc_create,
	.read = pc_read,
	.write = pc_write,
	.statfs = pc_statfs,
	.release = pc_release,
	.fsync = pc_fsync,
	.fallocate = pc_fallocate,
	.opendir = pc_opendir,
	.readdir = pc_readdir,
	.releasedir = pc_releasedir,
	.fsyncdir = pc_fsyncdir,
};

static void
usage(void)
{
	fprintf(stderr, "usage: powercutfs [--state DIR] BACKING MOUNTPOINT "
	    "[FUSE OPTIONS]\n");
	exit(2);
}

int
main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct stat st, sst;
	int i = 1, rc;

	if (i + 1 < argc && strcmp(argv[i], "--state") == 0) {
		g.state = xstrdup(argv[i + 1]);
		i += 2;
	}
	if (argc - i < 2)
		usage();
	g.backing = argv[i];
	if (g.state == NULL) {
		size_t n = strlen(g.backing);

		while (n > 1 && g.backing[n - 1] == '/')
			n--;
		g.state = xmalloc(n + 16);
		snprintf(g.state, n + 16, "%.*s.powercut", (int)n, g.backing);
	}
	umask(0);
	g.privileged = geteuid() == 0;
	g.root = open(g.backing, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g.root < 0 || fstat(g.root, &st) < 0) {
		warnx_("%s: %s", g.backing, strerror(errno));
		return 1;
	}
	if (mkdir(g.state, 0700) < 0) {
		warnx_("state directory %s: %s%s", g.state, strerror(errno),
		    errno == EEXIST ? " (left by an instance that was neither "
		    "cut nor unmounted: BACKING holds its volatile state; "
		    "remove it to accept that as durable)" : "");
		return 1;
	}
	g.state_fd = open(g.state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (g.state_fd < 0 || fstat(g.state_fd, &sst) < 0 ||
	    mkdirat(g.state_fd, "stash", 0700) < 0 ||
	    mkdirat(g.state_fd, "snap", 0700) < 0 ||
	    (g.stash = openat(g.state_fd, "stash", O_PATH | O_DIRECTORY |
	    O_CLOEXEC)) < 0 ||
	    (g.snap = openat(g.state_fd, "snap", O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) < 0) {
		warnx_("state directory %s: %s", g.state, strerror(errno));
		rmdir(g.state);
		return 1;
	}
	if (sst.st_dev != st.st_dev) {
		warnx_("%s and %s are on different file systems", g.state,
		    g.backing);
		remove_state();
		return 1;
	}
	g.root_ino = st.st_ino;
	g.state_ino = sst.st_ino;
	g.dev = st.st_dev;

	fuse_opt_add_arg(&args, argv[0]);
	for (int k = i + 1; k < argc; k++)
		fuse_opt_add_arg(&args, argv[k]);
	/* One request at a time: the cut happens between two of them. */
	fuse_opt_add_arg(&args, "-s");
	fuse_opt_add_arg(&args, "-f");
	fuse_opt_add_arg(&args, g.privileged ?
	    "-odefault_permissions,allow_other,fsname=powercut,subtype=powercut" :
	    "-odefault_permissions,fsname=powercut,subtype=powercut");
	rc = fuse_main(args.argc, args.argv, &ops, NULL);
	fuse_opt_free_args(&args);
	free(g.xr);
	free(g_dirty);
	free(g_all);
	if (g.state_fd >= 0)		/* fuse_main failed before init */
		remove_state();
	free(g.state);
	return rc;
}
