/*
 * Unit tests for copy, fsutil and hash (suite "copy").
 *
 * Needs root for owner preservation, the tmpfs mount of the ENOSPC test
 * and the unprivileged delete test. All scratch files live below one
 * mkdtemp directory in /tmp, created in main() and removed at the end.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#include "engine/copy.h"
#include "engine/fsutil.h"
#include "engine/hash.h"
#include "util/alloc.h"
#include "util/beneath.h"

static char g_base[] = "/tmp/treesync-test-copy-XXXXXX";
static char g_mnt[sizeof g_base + 16];

static const CopyOptions opt_owner = { .preserve_owner = true };
static const CopyOptions opt_plain = { .preserve_owner = false };

/* ---- helpers ---- */

/* Makes g_base/<name> and returns an fd on it; *path gets its path. */
static int
new_dir(const char *name, char *path, size_t size)
{
	char buf[PATH_MAX];
	int fd;

	if (path == NULL) {
		path = buf;
		size = sizeof buf;
	}
	snprintf(path, size, "%s/%s", g_base, name);
	ck_assert_msg(mkdir(path, 0755) == 0, "mkdir %s: %s", path,
	    strerror(errno));
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	return fd;
}

static void
fill_random(unsigned char *buf, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		buf[i] = (unsigned char)(x >> 24);
	}
}

static void
pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	ck_assert_int_eq(pwrite(fd, buf, n, off), (ssize_t)n);
}

/* Creates name in dir with n random bytes at offset off. */
static void
write_random(int dir, const char *name, size_t n, uint64_t seed)
{
	unsigned char *buf = malloc(n ? n : 1);
	int fd;

	ck_assert_ptr_nonnull(buf);
	fill_random(buf, n, seed);
	fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	if (n > 0)
		pwrite_all(fd, buf, n, 0);
	close(fd);
	free(buf);
}

static void
write_text(int dir, const char *name, const char *text)
{
	int fd = openat(dir, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0644);

	ck_assert_int_ge(fd, 0);
	pwrite_all(fd, text, strlen(text), 0);
	close(fd);
}

/* Byte-for-byte comparison in chunks; O_NOATIME so that reading does
 * not disturb the atimes the tests compare. */
static bool
same_content(int da, const char *na, int db, const char *nb)
{
	static char a[65536], b[65536];
	int fa = openat(da, na, O_RDONLY | O_NOATIME | O_CLOEXEC);
	int fb = openat(db, nb, O_RDONLY | O_NOATIME | O_CLOEXEC);
	bool same = fa >= 0 && fb >= 0;

	while (same) {
		ssize_t ra = read(fa, a, sizeof a), rb;
		size_t got = 0;

		if (ra < 0) {
			same = false;
			break;
		}
		while (got < (size_t)ra) {
			rb = read(fb, b + got, (size_t)ra - got);
			if (rb <= 0)
				break;
			got += (size_t)rb;
		}
		if (got != (size_t)ra || memcmp(a, b, got) != 0) {
			same = false;
			break;
		}
		if (ra == 0) {
			same = read(fb, b, 1) == 0;
			break;
		}
	}
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return same;
}

/* True when dir holds an entry starting with TEMP_PREFIX. */
static bool
has_temp(int dir)
{
	int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fdopendir(fd);
	struct dirent *de;
	bool found = false;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, ".treesync.", 10) == 0)
			found = true;
	closedir(d);
	return found;
}

static struct stat
lstat_at(int dir, const char *name)
{
	struct stat st;

	ck_assert_msg(fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0,
	    "fstatat %s: %s", name, strerror(errno));
	return st;
}

static bool
exists_at(int dir, const char *name)
{
	struct stat st;

	return fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static void
set_times(int dir, const char *name, int64_t asec, long ansec, int64_t msec,
    long mnsec)
{
	struct timespec ts[2] = { { asec, ansec }, { msec, mnsec } };

	ck_assert_int_eq(utimensat(dir, name, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void
assert_same_meta(const struct stat *a, const struct stat *b)
{
	ck_assert_uint_eq(a->st_mode, b->st_mode);
	ck_assert_int_eq(a->st_size, b->st_size);
	ck_assert_int_eq(a->st_mtim.tv_sec, b->st_mtim.tv_sec);
	ck_assert_int_eq(a->st_mtim.tv_nsec, b->st_mtim.tv_nsec);
	ck_assert_int_eq(a->st_atim.tv_sec, b->st_atim.tv_sec);
	ck_assert_int_eq(a->st_atim.tv_nsec, b->st_atim.tv_nsec);
}

static void
meta_for(FileMeta *m, mode_t mode, uint32_t uid, uint32_t gid, int64_t asec,
    int32_t ansec, int64_t msec, int32_t mnsec)
{
	memset(m, 0, sizeof *m);
	m->mode = mode;
	m->uid = uid;
	m->gid = gid;
	m->atime_sec = asec;
	m->atime_nsec = ansec;
	m->mtime_sec = msec;
	m->mtime_nsec = mnsec;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void
rm_rf(const char *path)
{
	nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
}

/* ---- copy_file_atomic ---- */

START_TEST(test_copy_basic)
{
	int s = new_dir("basic-src", NULL, 0), d = new_dir("basic-dst", NULL, 0);
	struct stat ss, ds;
	uint64_t bytes = 0;
	FileMeta dm;

	write_random(s, "f", 300000, 1);
	ck_assert_int_eq(fchownat(s, "f", 1234, 5678, 0), 0);
	ck_assert_int_eq(fchmodat(s, "f", 07755, 0), 0);
	set_times(s, "f", 1600000000, 111111111, 1700000000, 123456789);

	ck_assert_int_eq(copy_file_atomic(s, "f", d, "g", &opt_owner, &bytes,
	    &dm), 0);
	ck_assert_uint_eq(bytes, 300000);
	ck_assert(same_content(s, "f", d, "g"));
	ss = lstat_at(s, "f");
	ds = lstat_at(d, "g");
	assert_same_meta(&ss, &ds);
	ck_assert_uint_eq(ds.st_mode & 07777, 07755);
	ck_assert_uint_eq(ds.st_uid, 1234);
	ck_assert_uint_eq(ds.st_gid, 5678);
	ck_assert_uint_eq(dm.ino, ds.st_ino);
	ck_assert_int_eq(dm.size, 300000);
	ck_assert(!has_temp(d));

	/* Without preserve_owner the copy belongs to us. */
	ck_assert_int_eq(copy_file_atomic(s, "f", d, "h", &opt_plain, NULL,
	    NULL), 0);
	ds = lstat_at(d, "h");
	ck_assert_uint_eq(ds.st_uid, geteuid());
	ck_assert_uint_eq(ds.st_mode & 07777, 07755);
	close(s);
	close(d);
}
END_TEST

START_TEST(test_copy_umask_zero)
{
	static const CopyOptions opt_zero = { .preserve_owner = true,
	    .umask_zero = true };
	static const mode_t modes[] = { 0644, 0600, 0777, 04755, 02750,
	    01700, 0 };
	int s = new_dir("umask-src", NULL, 0), d = new_dir("umask-dst", NULL, 0);
	mode_t old = umask(0);

	/* With umask 0 the permission bits are set at creation; the
	 * special bits still need (and get) the fchmod after chown. */
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		char name[16];
		struct stat ds;

		snprintf(name, sizeof name, "m%zu", i);
		write_random(s, name, 5000, (int)i);
		ck_assert_int_eq(fchownat(s, name, 1234, 5678, 0), 0);
		ck_assert_int_eq(fchmodat(s, name, modes[i], 0), 0);
		ck_assert_int_eq(copy_file_atomic(s, name, d, name, &opt_zero,
		    NULL, NULL), 0);
		ds = lstat_at(d, name);
		ck_assert_uint_eq(ds.st_mode & 07777, modes[i]);
		ck_assert_uint_eq(ds.st_uid, 1234);
		ck_assert(same_content(s, name, d, name));
	}
	umask(old);
	close(s);
	close(d);
}
END_TEST

START_TEST(test_copy_negative_mtime)
{
	int s = new_dir("neg-src", NULL, 0), d = new_dir("neg-dst", NULL, 0);
	struct stat ds;

	write_text(s, "old", "from the thirties\n");
	set_times(s, "old", -1000000000, 5, -999999999, 987654321);
	ck_assert_int_eq(copy_file_atomic(s, "old", d, "old", &opt_owner, NULL,
	    NULL), 0);
	ds = lstat_at(d, "old");
	ck_assert_int_eq(ds.st_mtim.tv_sec, -999999999);
	ck_assert_int_eq(ds.st_mtim.tv_nsec, 987654321);
	ck_assert_int_eq(ds.st_atim.tv_sec, -1000000000);
	ck_assert_int_eq(ds.st_atim.tv_nsec, 5);
	close(s);
	close(d);
}
END_TEST

START_TEST(test_copy_empty)
{
	int s = new_dir("empty-src", NULL, 0), d = new_dir("empty-dst", NULL, 0);
	uint64_t bytes = 99;
	struct stat ss, ds;

	write_random(s, "e", 0, 0);
	set_times(s, "e", 1, 2, 3, 4);
	ck_assert_int_eq(copy_file_atomic(s, "e", d, "e", &opt_owner, &bytes,
	    NULL), 0);
	ck_assert_uint_eq(bytes, 0);
	ss = lstat_at(s, "e");
	ds = lstat_at(d, "e");
	assert_same_meta(&ss, &ds);
	ck_assert_int_eq(ds.st_size, 0);
	close(s);
	close(d);
}
END_TEST

START_TEST(test_copy_replaces)
{
	int s = new_dir("repl-src", NULL, 0), d = new_dir("repl-dst", NULL, 0);
	struct stat before, after;
	FileMeta dm;

	write_random(s, "f", 5000, 2);
	write_random(d, "f", 90000, 3);
	before = lstat_at(d, "f");
	ck_assert_int_eq(copy_file_atomic(s, "f", d, "f", &opt_owner, NULL,
	    &dm), 0);
	after = lstat_at(d, "f");
	ck_assert_uint_ne(before.st_ino, after.st_ino);
	ck_assert_uint_eq(dm.ino, after.st_ino);
	ck_assert_int_eq(after.st_size, 5000);
	ck_assert(same_content(s, "f", d, "f"));
	ck_assert(!has_temp(d));
	close(s);
	close(d);
}
END_TEST

/* A 1 GiB file with a few bytes of data stays sparse in the copy. */
static void
check_sparse(const char *tag, bool fallback)
{
	char sn[64], dn[64];
	int s, d, fd;
	struct stat ds;
	uint64_t bytes = 0;
	const off_t gib = (off_t)1 << 30;
	const off_t offs[] = { 512 << 20, gib - 5 };
	char buf[8];

	snprintf(sn, sizeof sn, "sparse-src-%s", tag);
	snprintf(dn, sizeof dn, "sparse-dst-%s", tag);
	s = new_dir(sn, NULL, 0);
	d = new_dir(dn, NULL, 0);
	fd = openat(s, "big", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, gib), 0);
	pwrite_all(fd, "hello", 5, offs[0]);
	pwrite_all(fd, "world", 5, offs[1]);
	close(fd);

	if (fallback)
		setenv("TREESYNC_NO_COPY_FILE_RANGE", "1", 1);
	ck_assert_int_eq(copy_file_atomic(s, "big", d, "big", &opt_owner,
	    &bytes, NULL), 0);
	unsetenv("TREESYNC_NO_COPY_FILE_RANGE");
	ds = lstat_at(d, "big");
	ck_assert_int_eq(ds.st_size, gib);
	ck_assert_int_lt((long long)ds.st_blocks * 512, 1 << 20);
	ck_assert_uint_lt(bytes, 1 << 20);
	fd = openat(d, "big", O_RDONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, 5, offs[0]), 5);
	ck_assert(memcmp(buf, "hello", 5) == 0);
	ck_assert_int_eq(pread(fd, buf, 5, offs[1]), 5);
	ck_assert(memcmp(buf, "world", 5) == 0);
	ck_assert_int_eq(pread(fd, buf, 8, 1000), 8);
	ck_assert(memcmp(buf, "\0\0\0\0\0\0\0\0", 8) == 0);
	close(fd);
	ck_assert(!has_temp(d));
	close(s);
	close(d);
}

START_TEST(test_copy_sparse)
{
	check_sparse("cfr", false);
}
END_TEST

START_TEST(test_copy_sparse_fallback)
{
	check_sparse("rw", true);
}
END_TEST

/* Larger than the 256 KiB fallback buffer, with a hole in the middle. */
START_TEST(test_copy_fallback_large)
{
	int s = new_dir("fb-src", NULL, 0), d = new_dir("fb-dst", NULL, 0);
	size_t n1 = 300 * 1024 + 7, n2 = 700 * 1024 + 123;
	unsigned char *buf = malloc(n2);
	struct stat ss, ds;
	uint64_t bytes = 0;
	int fd;

	ck_assert_ptr_nonnull(buf);
	fd = openat(s, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0640);
	ck_assert_int_ge(fd, 0);
	fill_random(buf, n1, 4);
	pwrite_all(fd, buf, n1, 0);
	fill_random(buf, n2, 5);
	pwrite_all(fd, buf, n2, 4 << 20);
	close(fd);
	free(buf);
	set_times(s, "f", 10, 20, 30, 40);

	setenv("TREESYNC_NO_COPY_FILE_RANGE", "1", 1);
	ck_assert_int_eq(copy_file_atomic(s, "f", d, "f", &opt_owner, &bytes,
	    NULL), 0);
	unsetenv("TREESYNC_NO_COPY_FILE_RANGE");
	ck_assert_uint_ge(bytes, n1 + n2);
	ck_assert_uint_lt(bytes, 4 << 20);	/* the hole was skipped */
	ck_assert(same_content(s, "f", d, "f"));
	ss = lstat_at(s, "f");
	ds = lstat_at(d, "f");
	assert_same_meta(&ss, &ds);
	close(s);
	close(d);
}
END_TEST

START_TEST(test_copy_bad_sources)
{
	int s = new_dir("bad-src", NULL, 0), d = new_dir("bad-dst", NULL, 0);

	ck_assert_int_eq(mkfifoat(s, "fifo", 0644), 0);
	ck_assert_int_eq(copy_file_atomic(s, "fifo", d, "fifo", &opt_owner,
	    NULL, NULL), -EINVAL);
	write_text(s, "target", "x");
	ck_assert_int_eq(symlinkat("target", s, "link"), 0);
	/* O_NOFOLLOW: a symlink swapped in for a file is never followed. */
	ck_assert_int_eq(copy_file_atomic(s, "link", d, "link", &opt_owner,
	    NULL, NULL), -ELOOP);
	ck_assert_int_eq(copy_file_atomic(s, "missing", d, "m", &opt_owner,
	    NULL, NULL), -ENOENT);
	ck_assert_int_eq(mkdirat(s, "dir", 0755), 0);
	ck_assert_int_eq(copy_file_atomic(s, "dir", d, "dir", &opt_owner,
	    NULL, NULL), -EINVAL);
	/* Renaming over a directory fails after the data copy. */
	ck_assert_int_eq(mkdirat(d, "isdir", 0755), 0);
	ck_assert_int_eq(copy_file_atomic(s, "target", d, "isdir", &opt_owner,
	    NULL, NULL), -EISDIR);
	ck_assert(S_ISDIR(lstat_at(d, "isdir").st_mode));
	ck_assert(!exists_at(d, "fifo"));
	ck_assert(!exists_at(d, "link"));
	ck_assert(!has_temp(d));
	close(s);
	close(d);
}
END_TEST

/* ENOSPC: a 4 MiB file into a 1 MiB tmpfs (mounted by the fixture). */
static void
mount_small_tmpfs(void)
{
	snprintf(g_mnt, sizeof g_mnt, "%s/small", g_base);
	if (mkdir(g_mnt, 0755) < 0 ||
	    mount("tmpfs", g_mnt, "tmpfs", 0, "size=1m") < 0)
		g_mnt[0] = '\0';	/* the test reports it */
}

static void
umount_small_tmpfs(void)
{
	if (g_mnt[0] != '\0') {
		umount2(g_mnt, MNT_DETACH);
		rmdir(g_mnt);
	}
}

START_TEST(test_copy_enospc)
{
	int s = new_dir("enospc-src", NULL, 0), d;

	ck_assert_msg(g_mnt[0] != '\0', "could not mount a tmpfs (root?)");
	d = open(g_mnt, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(d, 0);
	write_random(s, "big", 4 << 20, 6);
	ck_assert_int_eq(copy_file_atomic(s, "big", d, "big", &opt_owner, NULL,
	    NULL), -ENOSPC);
	setenv("TREESYNC_NO_COPY_FILE_RANGE", "1", 1);
	ck_assert_int_eq(copy_file_atomic(s, "big", d, "big", &opt_owner, NULL,
	    NULL), -ENOSPC);
	unsetenv("TREESYNC_NO_COPY_FILE_RANGE");
	ck_assert(!exists_at(d, "big"));
	ck_assert(!has_temp(d));
	/* The space came back: a small file still fits. */
	write_text(s, "small", "fits\n");
	ck_assert_int_eq(copy_file_atomic(s, "small", d, "small", &opt_owner,
	    NULL, NULL), 0);
	close(s);
	close(d);
}
END_TEST

/* A writer keeps changing the source's mtime during copies: the copy
 * must report COPY_SOURCE_CHANGED (at least once) and leave no temp.
 * The writer is a child process, not a thread: valgrind runs one thread
 * at a time and could starve it for the whole loop (minutes of copies). */
static void __attribute__((noreturn))
writer_loop(int dir)
{
	for (long n = 0;; n++) {
		struct timespec ts[2] = { { 0, UTIME_OMIT },
			{ 1000000, n % 1000000000 } };

		utimensat(dir, "f", ts, 0);
	}
}

START_TEST(test_copy_source_changed)
{
	int s = new_dir("chg-src", NULL, 0), d = new_dir("chg-dst", NULL, 0);
	pid_t writer;
	int changed = 0;

	write_random(s, "f", 8 << 20, 7);
	writer = fork();
	ck_assert_int_ge(writer, 0);
	if (writer == 0)
		writer_loop(s);
	for (int i = 0; i < 200 && changed == 0; i++) {
		int r = copy_file_atomic(s, "f", d, "f", &opt_owner, NULL,
		    NULL);

		ck_assert(r == 0 || r == COPY_SOURCE_CHANGED);
		if (r == COPY_SOURCE_CHANGED)
			changed++;
		ck_assert(!has_temp(d));
	}
	kill(writer, SIGKILL);
	waitpid(writer, NULL, 0);
	ck_assert_int_gt(changed, 0);
	close(s);
	close(d);
}
END_TEST

/* ---- copy_abandon ---- */

/*
 * copy_abandon sets a process-wide flag that is never cleared, so each
 * case runs in a child process of its own (CK_FORK=no under valgrind
 * would otherwise carry it into later tests). The child reports through
 * its exit status; the parent checks the directory it leaves.
 */

#define ABANDON_SIZE ((size_t)128 << 20)

/* The size of the first temporary in dir, or -1 when there is none. */
static off_t
temp_size(int dir)
{
	int fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	struct stat st;
	off_t size = -1;

	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while (size < 0 && (de = readdir(d)) != NULL)
		if (strncmp(de->d_name, ".treesync.", 10) == 0 &&
		    fstatat(dir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0)
			size = st.st_size;
	closedir(d);
	return size;
}

static atomic_bool copy_returned;

/* The "other thread": abandons once the copy has written data (it may
 * lose the race to a copy that ends first: copy_returned). */
static void *
abandon_when_started(void *arg)
{
	int dir = *(const int *)arg;

	while (temp_size(dir) <= 0)
		if (atomic_load(&copy_returned))
			return NULL;
		else
			usleep(100);
	copy_abandon();
	return NULL;
}

/* Child exit status: the copy ended before the other thread abandoned
 * it (a lost race, not a failure). */
#define ABANDON_RACE_LOST 30

/* In the child: 0 when the copy came back -ECANCELED as it should. */
static int
abandon_child(int s, int d, bool fallback, bool mid)
{
	pthread_t t;
	uint64_t bytes = UINT64_MAX;
	int r;

	if (fallback)
		setenv("TREESYNC_NO_COPY_FILE_RANGE", "1", 1);
	if (!mid)
		copy_abandon();
	else if (pthread_create(&t, NULL, abandon_when_started, &d) != 0)
		return 10;
	r = copy_file_atomic(s, "f", d, "f", &opt_owner, &bytes, NULL);
	atomic_store(&copy_returned, true);
	if (mid)
		pthread_join(t, NULL);
	if (mid && r == 0)
		return ABANDON_RACE_LOST;
	if (r != -ECANCELED) {
		fprintf(stderr, "copy_file_atomic: %d, not -ECANCELED\n", r);
		return 11;
	}
	/* Before: nothing copied. Mid-copy: some, not all. */
	if (mid ? bytes == 0 || bytes >= ABANDON_SIZE : bytes != 0) {
		fprintf(stderr, "bytes copied: %llu of %zu\n",
		    (unsigned long long)bytes, ABANDON_SIZE);
		return 12;
	}
	return 0;
}

static void
check_abandon(const char *tag, bool fallback, bool sparse, bool mid)
{
	char sn[64], dn[64];
	unsigned char *buf = malloc(1 << 20);
	int s, d, fd, status;
	pid_t pid;

	ck_assert_ptr_nonnull(buf);
	snprintf(sn, sizeof sn, "abandon-src-%s", tag);
	snprintf(dn, sizeof dn, "abandon-dst-%s", tag);
	s = new_dir(sn, NULL, 0);
	d = new_dir(dn, NULL, 0);
	fd = openat(s, "f", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, (off_t)ABANDON_SIZE), 0);
	/* Sparse: one MiB of data every other MiB (many segments). */
	/* One random MiB (valgrind makes filling slow), stamped per block. */
	fill_random(buf, 1 << 20, 9);
	for (size_t off = 0; off < ABANDON_SIZE; off += (sparse ? 2 : 1) << 20) {
		memcpy(buf, &off, sizeof off);
		pwrite_all(fd, buf, 1 << 20, (off_t)off);
	}
	close(fd);
	free(buf);

	/* A few rounds: the copy may end before the other thread gets a
	 * turn. valgrind runs one thread at a time and may let it end every
	 * time; there the "before" cases stand for the flag. */
	for (int round = 0;; round++) {
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0)
			_exit(abandon_child(s, d, fallback, mid));
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(!has_temp(d), "%s: a temporary is left", tag);
		if (!mid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != ABANDON_RACE_LOST)
			break;
		/* Lost: a complete copy, as without the request. */
		ck_assert(same_content(s, "f", d, "f"));
		ck_assert_int_eq(unlinkat(d, "f", 0), 0);
		if (round == 7 && RUNNING_ON_VALGRIND)
			break;
		ck_assert_msg(round < 7, "%s: every copy ended before the "
		    "abandon", tag);
	}
	if (!(WIFEXITED(status) && WEXITSTATUS(status) == ABANDON_RACE_LOST))
		ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		    "%s: child status %#x", tag, status);
	ck_assert_msg(!exists_at(d, "f"), "%s: the destination exists", tag);
	/* Only the child stopped: here copies still work. */
	ck_assert_int_eq(unlinkat(s, "f", 0), 0);
	write_text(s, "f", "after\n");
	ck_assert_int_eq(copy_file_atomic(s, "f", d, "f", &opt_owner, NULL,
	    NULL), 0);
	ck_assert(same_content(s, "f", d, "f"));
	close(s);
	close(d);
}

START_TEST(test_copy_abandon_before)
{
	check_abandon("before-cfr", false, false, false);
	check_abandon("before-rw", true, false, false);
	check_abandon("before-sparse", false, true, false);
}
END_TEST

START_TEST(test_copy_abandon_mid)
{
	check_abandon("mid-cfr", false, false, true);
	check_abandon("mid-rw", true, false, true);
	check_abandon("mid-sparse", false, true, true);
}
END_TEST

/* ---- symlinks, hard links, directories, metadata ---- */

START_TEST(test_symlink)
{
	int d = new_dir("symlink", NULL, 0);
	char buf[64];
	struct stat st, etc_before, etc_after;
	FileMeta m;
	ssize_t n;

	ck_assert_int_eq(lstat("/etc", &etc_before), 0);
	meta_for(&m, S_IFLNK | 0777, 1234, 5678, 1000000000, 1,
	    1000000000, 500000000);
	ck_assert_int_eq(copy_symlink(d, "abs", "/etc", &m, &opt_owner), 0);
	n = readlinkat(d, "abs", buf, sizeof buf);
	ck_assert_int_eq(n, 4);
	ck_assert(memcmp(buf, "/etc", 4) == 0);
	st = lstat_at(d, "abs");
	ck_assert(S_ISLNK(st.st_mode));
	ck_assert_uint_eq(st.st_uid, 1234);
	ck_assert_uint_eq(st.st_gid, 5678);
	ck_assert_int_eq(st.st_mtim.tv_sec, 1000000000);
	ck_assert_int_eq(st.st_mtim.tv_nsec, 500000000);
	ck_assert_int_eq(lstat("/etc", &etc_after), 0);
	ck_assert_uint_eq(etc_after.st_uid, etc_before.st_uid);
	ck_assert_int_eq(etc_after.st_mtim.tv_sec, etc_before.st_mtim.tv_sec);

	ck_assert_int_eq(copy_symlink(d, "rel", "../..", &m, &opt_plain), 0);
	n = readlinkat(d, "rel", buf, sizeof buf);
	ck_assert_int_eq(n, 5);
	ck_assert(memcmp(buf, "../..", 5) == 0);
	ck_assert_uint_eq(lstat_at(d, "rel").st_uid, geteuid());

	/* Replacing an existing symlink. */
	ck_assert_int_eq(symlinkat("old-target", d, "rep"), 0);
	ck_assert_int_eq(copy_symlink(d, "rep", "new-target", NULL, NULL), 0);
	n = readlinkat(d, "rep", buf, sizeof buf);
	ck_assert_int_eq(n, 10);
	ck_assert(memcmp(buf, "new-target", 10) == 0);

	/* Over a directory: an error, and the directory and no temp stay. */
	ck_assert_int_eq(mkdirat(d, "dir", 0755), 0);
	ck_assert_int_lt(copy_symlink(d, "dir", "x", &m, &opt_owner), 0);
	ck_assert(S_ISDIR(lstat_at(d, "dir").st_mode));
	ck_assert(!has_temp(d));
	close(d);
}
END_TEST

START_TEST(test_hardlink)
{
	int d = new_dir("hardlink", NULL, 0), e = new_dir("hardlink2", NULL, 0);
	struct stat a, b;

	write_text(d, "a", "shared\n");
	ck_assert_int_eq(copy_hardlink(d, "a", d, "b"), 0);
	a = lstat_at(d, "a");
	b = lstat_at(d, "b");
	ck_assert_uint_eq(a.st_ino, b.st_ino);
	ck_assert_uint_eq(b.st_nlink, 2);

	/* Replacing a separate file, in another directory. */
	write_text(e, "c", "separate\n");
	ck_assert_int_eq(copy_hardlink(d, "a", e, "c"), 0);
	ck_assert_uint_eq(lstat_at(e, "c").st_ino, a.st_ino);
	ck_assert_uint_eq(lstat_at(d, "a").st_nlink, 3);

	/* Already the same inode: a no-op that leaves no temp. */
	ck_assert_int_eq(copy_hardlink(d, "a", d, "b"), 0);
	ck_assert_int_eq(copy_hardlink(d, "b", e, "c"), 0);
	ck_assert_uint_eq(lstat_at(d, "a").st_nlink, 3);
	ck_assert(!has_temp(d));
	ck_assert(!has_temp(e));

	ck_assert_int_eq(copy_hardlink(d, "missing", d, "x"), -ENOENT);
	ck_assert(!has_temp(d));
	close(d);
	close(e);
}
END_TEST

START_TEST(test_mkdir)
{
	int d = new_dir("mkdir", NULL, 0);
	struct stat st;

	ck_assert_int_eq(copy_mkdir(d, "sub"), 0);
	st = lstat_at(d, "sub");
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	ck_assert_int_eq(copy_mkdir(d, "sub"), 0);
	write_text(d, "file", "x");
	ck_assert_int_eq(copy_mkdir(d, "file"), -EEXIST);
	ck_assert_int_eq(symlinkat("sub", d, "link"), 0);
	ck_assert_int_eq(copy_mkdir(d, "link"), -EEXIST);
	ck_assert_int_eq(copy_mkdir(d, "nope/x"), -ENOENT);
	close(d);
}
END_TEST

START_TEST(test_set_meta)
{
	int d = new_dir("setmeta", NULL, 0);
	struct stat st;
	FileMeta m;

	/* A directory. */
	ck_assert_int_eq(mkdirat(d, "dir", 0700), 0);
	meta_for(&m, S_IFDIR | 03775, 1234, 5678, 1400000000, 100000000,
	    1500000000, 987654321);
	ck_assert_int_eq(copy_set_meta(d, "dir", &m, &opt_owner), 0);
	st = lstat_at(d, "dir");
	ck_assert_uint_eq(st.st_mode, S_IFDIR | 03775);
	ck_assert_uint_eq(st.st_uid, 1234);
	ck_assert_uint_eq(st.st_gid, 5678);
	ck_assert_int_eq(st.st_mtim.tv_sec, 1500000000);
	ck_assert_int_eq(st.st_mtim.tv_nsec, 987654321);
	ck_assert_int_eq(st.st_atim.tv_sec, 1400000000);
	ck_assert_int_eq(st.st_atim.tv_nsec, 100000000);

	/* A setuid file whose owner changes keeps its setuid bit. */
	write_text(d, "file", "x");
	meta_for(&m, S_IFREG | 06755, 1234, 5678, 5, 6, -7, 8);
	ck_assert_int_eq(copy_set_meta(d, "file", &m, &opt_owner), 0);
	st = lstat_at(d, "file");
	ck_assert_uint_eq(st.st_mode, S_IFREG | 06755);
	ck_assert_uint_eq(st.st_uid, 1234);
	ck_assert_int_eq(st.st_mtim.tv_sec, -7);
	ck_assert_int_eq(st.st_mtim.tv_nsec, 8);

	/* A symlink: its own owner and times, the target untouched. */
	ck_assert_int_eq(symlinkat("file", d, "link"), 0);
	meta_for(&m, S_IFLNK | 0777, 4321, 8765, 1100000000, 0,
	    1200000000, 123);
	ck_assert_int_eq(copy_set_meta(d, "link", &m, &opt_owner), 0);
	st = lstat_at(d, "link");
	ck_assert(S_ISLNK(st.st_mode));
	ck_assert_uint_eq(st.st_uid, 4321);
	ck_assert_uint_eq(st.st_gid, 8765);
	ck_assert_int_eq(st.st_mtim.tv_sec, 1200000000);
	ck_assert_int_eq(st.st_mtim.tv_nsec, 123);
	st = lstat_at(d, "file");
	ck_assert_uint_eq(st.st_uid, 1234);
	ck_assert_uint_eq(st.st_mode, S_IFREG | 06755);
	ck_assert_int_eq(st.st_mtim.tv_sec, -7);

	ck_assert_int_eq(copy_set_meta(d, "missing", &m, &opt_owner), -ENOENT);
	close(d);
}
END_TEST

/* ---- copy_delete_tree ---- */

/*
 * Builds below dir a tree "t": nested directories DEPTH deep, symlinks
 * pointing out of the tree (to outside_path), a 0500 and a 0000
 * directory with contents. Returns the number of entries including "t".
 */
#define DEPTH 40
static uint64_t
build_tree(int dir, const char *outside_path)
{
	uint64_t n = 0;
	char name[32];
	int t, cur;

	ck_assert_int_eq(mkdirat(dir, "t", 0755), 0);
	n++;
	t = openat(dir, "t", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(t, 0);
	write_text(t, "f1", "one");
	n++;
	ck_assert_int_eq(symlinkat(outside_path, t, "abs-out"), 0);
	n++;
	ck_assert_int_eq(symlinkat("../../outside", t, "rel-out"), 0);
	n++;

	cur = dup(t);
	for (int i = 0; i < DEPTH; i++) {
		int next;

		snprintf(name, sizeof name, "d%d", i);
		ck_assert_int_eq(mkdirat(cur, name, 0755), 0);
		n++;
		next = openat(cur, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		ck_assert_int_ge(next, 0);
		close(cur);
		cur = next;
		if (i == DEPTH / 2) {
			char target[PATH_MAX];

			snprintf(target, sizeof target, "%s/osub", outside_path);
			ck_assert_int_eq(symlinkat(target, cur, "dirlink"), 0);
			n++;
		}
	}
	write_text(cur, "bottom", "deep");
	n++;
	close(cur);

	ck_assert_int_eq(mkdirat(t, "ro", 0755), 0);
	n++;
	write_text(t, "ro/x", "x");
	write_text(t, "ro/y", "y");
	ck_assert_int_eq(mkdirat(t, "ro/sub", 0755), 0);
	write_text(t, "ro/sub/z", "z");
	ck_assert_int_eq(fchmodat(t, "ro/sub", 0500, 0), 0);
	ck_assert_int_eq(fchmodat(t, "ro", 0500, 0), 0);
	n += 4;
	ck_assert_int_eq(mkdirat(t, "none", 0755), 0);
	write_text(t, "none/w", "w");
	ck_assert_int_eq(fchmodat(t, "none", 0000, 0), 0);
	n += 2;
	close(t);
	return n;
}

static int
make_outside(const char *tag, char *path, size_t size)
{
	int o = new_dir(tag, path, size);

	write_text(o, "keep", "keep me");
	ck_assert_int_eq(mkdirat(o, "osub", 0755), 0);
	write_text(o, "osub/file", "keep me too");
	return o;
}

static void
assert_outside_intact(int o)
{
	ck_assert(S_ISREG(lstat_at(o, "keep").st_mode));
	ck_assert(S_ISREG(lstat_at(o, "osub/file").st_mode));
}

START_TEST(test_delete_tree)
{
	char opath[PATH_MAX];
	int o = make_outside("del-outside", opath, sizeof opath);
	int d = new_dir("del", NULL, 0);
	uint64_t expect = build_tree(d, opath), count = 0;

	ck_assert_int_eq(copy_delete_tree(d, "t", &count), 0);
	ck_assert_uint_eq(count, expect);
	ck_assert(!exists_at(d, "t"));
	assert_outside_intact(o);

	ck_assert_int_eq(copy_delete_tree(d, "t", &count), 0);
	ck_assert_uint_eq(count, 0);
	write_text(d, "single", "s");
	ck_assert_int_eq(copy_delete_tree(d, "single", &count), 0);
	ck_assert_uint_eq(count, 1);
	/* A symlink to a directory goes, its target stays. */
	ck_assert_int_eq(symlinkat(opath, d, "dl"), 0);
	ck_assert_int_eq(copy_delete_tree(d, "dl", NULL), 0);
	ck_assert(!exists_at(d, "dl"));
	assert_outside_intact(o);
	close(o);
	close(d);
}
END_TEST

static int
chown_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return lchown(path, 65534, 65534);
}

/* The same, as an unprivileged owner: needs the u+rwx repair. */
START_TEST(test_delete_tree_unprivileged)
{
	char opath[PATH_MAX], dpath[PATH_MAX];
	int o = make_outside("delu-outside", opath, sizeof opath);
	int d = new_dir("delu", dpath, sizeof dpath);
	uint64_t expect = build_tree(d, opath);
	pid_t pid;
	int status;

	ck_assert_int_eq(nftw(dpath, chown_one, 32, FTW_PHYS), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		uint64_t count = 0;
		int r;

		if (setresgid(65534, 65534, 65534) < 0 ||
		    setresuid(65534, 65534, 65534) < 0)
			_exit(10);
		r = copy_delete_tree(d, "t", &count);
		if (r < 0)
			_exit(11);
		_exit(count == expect ? 0 : 12);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	ck_assert(!exists_at(d, "t"));
	assert_outside_intact(o);
	close(o);
	close(d);
}
END_TEST

/* ---- fsutil ---- */

static void
check_open_beneath(const char *tag)
{
	int r = new_dir(tag, NULL, 0), fd;
	struct stat want, got;

	ck_assert_int_eq(mkdirat(r, "a", 0755), 0);
	ck_assert_int_eq(mkdirat(r, "a/b", 0755), 0);
	ck_assert_int_eq(mkdirat(r, "a/b/c", 0755), 0);
	ck_assert_int_eq(symlinkat("a", r, "s"), 0);
	ck_assert_int_eq(symlinkat("b", r, "a/s2"), 0);
	ck_assert_int_eq(symlinkat("/etc", r, "a/etc"), 0);
	write_text(r, "f", "x");

	fd = open_beneath(r, "a/b/c", O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &got), 0);
	want = lstat_at(r, "a/b/c");
	ck_assert_uint_eq(got.st_ino, want.st_ino);
	ck_assert_int_ne(fcntl(fd, F_GETFD) & FD_CLOEXEC, 0);
	close(fd);

	fd = open_beneath(r, "", O_RDONLY | O_DIRECTORY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &got), 0);
	ck_assert_int_eq(fstat(r, &want), 0);
	ck_assert_uint_eq(got.st_ino, want.st_ino);
	close(fd);

	ck_assert_int_lt(open_beneath(r, "s", O_RDONLY | O_DIRECTORY), 0);
	ck_assert_int_lt(open_beneath(r, "s/b", O_RDONLY | O_DIRECTORY), 0);
	ck_assert_int_lt(open_beneath(r, "a/s2", O_RDONLY | O_DIRECTORY), 0);
	ck_assert_int_lt(open_beneath(r, "a/s2/c", O_RDONLY | O_DIRECTORY), 0);
	ck_assert_int_lt(open_beneath(r, "a/etc", O_RDONLY | O_DIRECTORY), 0);
	ck_assert_int_lt(open_beneath(r, "..", O_RDONLY | O_DIRECTORY), 0);
	ck_assert_int_lt(open_beneath(r, "a/../..", O_RDONLY | O_DIRECTORY), 0);
	ck_assert_int_lt(open_beneath(r, "../x", O_RDONLY | O_DIRECTORY), 0);
	ck_assert_int_lt(open_beneath(r, "/etc", O_RDONLY | O_DIRECTORY), 0);
	ck_assert_int_eq(open_beneath(r, "f", O_RDONLY | O_DIRECTORY), -ENOTDIR);
	ck_assert_int_eq(open_beneath(r, "missing", O_RDONLY | O_DIRECTORY), -ENOENT);
	/* Other flags for the last component (the watcher's O_PATH). */
	fd = open_beneath(r, "a/b", O_PATH | O_DIRECTORY);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &got), 0);
	want = lstat_at(r, "a/b");
	ck_assert_uint_eq(got.st_ino, want.st_ino);
	close(fd);
	ck_assert_int_lt(open_beneath(r, "s", O_PATH | O_DIRECTORY), 0);
	close(r);
}

START_TEST(test_open_beneath)
{
	check_open_beneath("beneath");
}
END_TEST

START_TEST(test_open_beneath_walk)
{
	setenv("TREESYNC_NO_OPENAT2", "1", 1);
	check_open_beneath("beneath-walk");
	unsetenv("TREESYNC_NO_OPENAT2");
}
END_TEST

#define NAME_THREADS 4
#define NAMES_PER_THREAD 2000
static char names[NAME_THREADS * NAMES_PER_THREAD][64];

static void *
name_main(void *arg)
{
	long t = (long)arg;

	for (int i = 0; i < NAMES_PER_THREAD; i++)
		fsutil_temp_name(names[t * NAMES_PER_THREAD + i], 64);
	return NULL;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(a, b);
}

START_TEST(test_temp_names)
{
	pthread_t t[NAME_THREADS];
	char name[64], other[64];

	fsutil_init_temp_tag();
	fsutil_temp_name(name, sizeof name);
	ck_assert_uint_lt(strlen(name), 40);
	ck_assert(strncmp(name, TEMP_PREFIX, strlen(TEMP_PREFIX)) == 0);
	ck_assert(fsutil_is_temp_name(name));
	ck_assert(fsutil_is_own_temp(name));
	ck_assert(fsutil_is_temp_name(".treesync.anything"));
	ck_assert(!fsutil_is_temp_name("treesync.x"));
	ck_assert(!fsutil_is_temp_name(".treesync"));
	ck_assert(!fsutil_is_own_temp(".treesync.x"));
	ck_assert(!fsutil_is_own_temp("plain"));
	/* Another run's tag. */
	snprintf(other, sizeof other, "%s", name);
	other[strlen(TEMP_PREFIX)] = other[strlen(TEMP_PREFIX)] == 'a' ?
	    'b' : 'a';
	ck_assert(fsutil_is_temp_name(other));
	ck_assert(!fsutil_is_own_temp(other));
	/* The tag without the separator is not ours either. */
	other[strlen(TEMP_PREFIX)] = name[strlen(TEMP_PREFIX)];
	other[strlen(TEMP_PREFIX) + 8] = 'x';
	ck_assert(!fsutil_is_own_temp(other));

	for (long i = 0; i < NAME_THREADS; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, name_main,
		    (void *)i), 0);
	for (int i = 0; i < NAME_THREADS; i++)
		pthread_join(t[i], NULL);
	qsort(names, NAME_THREADS * NAMES_PER_THREAD, sizeof names[0],
	    cmp_names);
	for (int i = 1; i < NAME_THREADS * NAMES_PER_THREAD; i++)
		ck_assert_str_ne(names[i - 1], names[i]);
	ck_assert(fsutil_is_own_temp(names[0]));
}
END_TEST

START_TEST(test_join)
{
	char *s;

	s = xjoin("", "a");
	ck_assert_str_eq(s, "a");
	free(s);
	s = xjoin("a/b", "c");
	ck_assert_str_eq(s, "a/b/c");
	free(s);
	s = xjoin("a", "");
	ck_assert_str_eq(s, "a");
	free(s);
}
END_TEST

START_TEST(test_meta_from_stat)
{
	int d = new_dir("meta", NULL, 0);
	struct stat st;
	FileMeta m;

	write_text(d, "f", "abc");
	set_times(d, "f", -3, 4, 5, 6);
	st = lstat_at(d, "f");
	fsutil_meta_from_stat(&st, &m);
	ck_assert_uint_eq(m.ino, st.st_ino);
	ck_assert_uint_eq(m.dev, st.st_dev);
	ck_assert_int_eq(m.size, 3);
	ck_assert_int_eq(m.atime_sec, -3);
	ck_assert_int_eq(m.atime_nsec, 4);
	ck_assert_int_eq(m.mtime_sec, 5);
	ck_assert_int_eq(m.mtime_nsec, 6);
	ck_assert_uint_eq(m.mode, st.st_mode);
	ck_assert_uint_eq(m.nlink, 1);
	close(d);
}
END_TEST

/* ---- hash ---- */

START_TEST(test_hash)
{
	int d = new_dir("hash", NULL, 0), fd;
	size_t n = 300000;
	unsigned char *buf = malloc(n);
	uint64_t h1 = 0, h2 = 0;

	ck_assert_ptr_nonnull(buf);
	fill_random(buf, n, 8);
	write_random(d, "a", n, 8);
	write_random(d, "b", n, 8);
	ck_assert_int_eq(hash_file(d, "a", &h1), 0);
	ck_assert_int_eq(hash_file(d, "b", &h2), 0);
	ck_assert_uint_eq(h1, h2);
	ck_assert_uint_eq(h1, XXH3_64bits(buf, n));

	fd = openat(d, "b", O_WRONLY | O_CLOEXEC);
	ck_assert_int_ge(fd, 0);
	buf[200000] ^= 1;
	pwrite_all(fd, &buf[200000], 1, 200000);
	close(fd);
	ck_assert_int_eq(hash_file(d, "b", &h2), 0);
	ck_assert_uint_ne(h1, h2);
	ck_assert_uint_eq(h2, XXH3_64bits(buf, n));

	write_random(d, "empty", 0, 0);
	ck_assert_int_eq(hash_file(d, "empty", &h1), 0);
	ck_assert_uint_eq(h1, XXH3_64bits(NULL, 0));

	ck_assert_int_eq(symlinkat("a", d, "link"), 0);
	ck_assert_int_lt(hash_file(d, "link", &h1), 0);
	ck_assert_int_eq(mkdirat(d, "dir", 0755), 0);
	ck_assert_int_eq(hash_file(d, "dir", &h1), -EINVAL);
	ck_assert_int_eq(hash_file(d, "missing", &h1), -ENOENT);
	free(buf);
	close(d);
}
END_TEST

static Suite *
copy_suite(void)
{
	Suite *s = suite_create("copy");
	TCase *tc = tcase_create("copy");
	TCase *tc_space = tcase_create("enospc");
	TCase *tc_tree = tcase_create("tree");
	TCase *tc_fsutil = tcase_create("fsutil");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_copy_basic);
	tcase_add_test(tc, test_copy_umask_zero);
	tcase_add_test(tc, test_copy_negative_mtime);
	tcase_add_test(tc, test_copy_empty);
	tcase_add_test(tc, test_copy_replaces);
	tcase_add_test(tc, test_copy_sparse);
	tcase_add_test(tc, test_copy_sparse_fallback);
	tcase_add_test(tc, test_copy_fallback_large);
	tcase_add_test(tc, test_copy_bad_sources);
	tcase_add_test(tc, test_copy_source_changed);
	tcase_add_test(tc, test_copy_abandon_before);
	tcase_add_test(tc, test_copy_abandon_mid);
	suite_add_tcase(s, tc);

	/* Unchecked: runs in the parent, so the unmount happens even when
	 * the test fails in its forked child. */
	tcase_add_unchecked_fixture(tc_space, mount_small_tmpfs,
	    umount_small_tmpfs);
	tcase_set_timeout(tc_space, 60);
	tcase_add_test(tc_space, test_copy_enospc);
	suite_add_tcase(s, tc_space);

	tcase_set_timeout(tc_tree, 60);
	tcase_add_test(tc_tree, test_symlink);
	tcase_add_test(tc_tree, test_hardlink);
	tcase_add_test(tc_tree, test_mkdir);
	tcase_add_test(tc_tree, test_set_meta);
	tcase_add_test(tc_tree, test_delete_tree);
	tcase_add_test(tc_tree, test_delete_tree_unprivileged);
	suite_add_tcase(s, tc_tree);

	tcase_set_timeout(tc_fsutil, 60);
	tcase_add_test(tc_fsutil, test_open_beneath);
	tcase_add_test(tc_fsutil, test_open_beneath_walk);
	tcase_add_test(tc_fsutil, test_temp_names);
	tcase_add_test(tc_fsutil, test_join);
	tcase_add_test(tc_fsutil, test_meta_from_stat);
	tcase_add_test(tc_fsutil, test_hash);
	suite_add_tcase(s, tc_fsutil);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	if (mkdtemp(g_base) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	fsutil_init_temp_tag();
	sr = srunner_create(copy_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	rm_rf(g_base);
	return failed == 0 ? 0 : 1;
}
