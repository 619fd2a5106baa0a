/*
 * Unit tests for engine/xattr (suite "xattr").
 *
 * Real files in a mkdtemp directory under /tmp (ext4 here), and the same
 * on a tmpfs the test mounts (user xattrs since Linux 6.6) and on a ramfs
 * (no xattr support at all: the refusing destination), both unmounted at
 * the end. trusted.*, security.*, capabilities, the mounts and the
 * unprivileged checks need root; without it those tests say so and pass
 * without checking. ACL values are built by hand here (the kernel's
 * binary format) and, where setfacl is installed, also by setfacl.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "engine/xattr.h"

static char g_base[] = "/tmp/treesync-test-xattr-XXXXXX";
static char g_tmpfs[sizeof g_base + 16];
static char g_ramfs[sizeof g_base + 16];
static bool g_tmpfs_ok, g_ramfs_ok;
static int g_seq;

#define NOBODY 65534

/* ---- helpers ---- */

static bool
is_root(void)
{
	return geteuid() == 0;
}

/* A new file dir/name-N with content and mode; *path gets its path. */
static int
new_file(const char *dir, const char *name, mode_t mode, char *path,
    size_t size)
{
	int fd;

	snprintf(path, size, "%s/%s-%d-%d", dir, name, (int)getpid(), ++g_seq);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ck_assert_msg(fd >= 0, "create %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, "data", 4), 4);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	return fd;
}

static void
set(const char *path, const char *name, const void *v, size_t n)
{
	ck_assert_msg(lsetxattr(path, name, v, n, 0) == 0, "setxattr %s %s: %s",
	    path, name, strerror(errno));
}

static void
sets(const char *path, const char *name, const char *v)
{
	set(path, name, v, strlen(v));
}

struct acl_entry {
	unsigned tag, perm;
	uint32_t id;
};

#define U_OBJ 0x01
#define U 0x02
#define G_OBJ 0x04
#define G 0x08
#define M 0x10
#define O 0x20
#define NOID 0xffffffffu

/* The kernel's binary form of entries (version 2, little endian). */
static size_t
acl_build(unsigned char *buf, const struct acl_entry *e, size_t n)
{
	size_t off = 4;

	buf[0] = 2;
	buf[1] = buf[2] = buf[3] = 0;
	for (size_t i = 0; i < n; i++, off += 8) {
		buf[off] = e[i].tag & 0xff;
		buf[off + 1] = e[i].tag >> 8;
		buf[off + 2] = e[i].perm & 0xff;
		buf[off + 3] = e[i].perm >> 8;
		for (int k = 0; k < 4; k++)
			buf[off + 4 + k] = (e[i].id >> (8 * k)) & 0xff;
	}
	return off;
}

/* The ACL of the mask case: owner rw, nobody rw, group r, mask rw. */
static size_t
acl_masked(unsigned char *buf)
{
	static const struct acl_entry e[] = {
		{ U_OBJ, 6, NOID }, { U, 6, NOBODY }, { G_OBJ, 4, NOID },
		{ M, 6, NOID }, { O, 0, NOID } };

	return acl_build(buf, e, 5);
}

/* A v2 vfs_cap_data: effective, permitted = the bit cap (< 32). */
static size_t
cap_build(unsigned char *buf, unsigned cap)
{
	uint32_t w[5] = { 0x02000000u | 1u, 1u << cap, 0, 0, 0 };

	for (int i = 0; i < 5; i++)
		for (int k = 0; k < 4; k++)
			buf[4 * i + k] = (w[i] >> (8 * k)) & 0xff;
	return 20;
}

static XattrSet *
read_path(const char *path, unsigned ns)
{
	XattrSet *s = (XattrSet *)0x1;
	int fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	int r;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	r = xattr_read(fd, ns, &s);
	ck_assert_msg(r == 0, "xattr_read %s: %s", path, strerror(-r));
	close(fd);
	return s;
}

static mode_t
mode_of(const char *path)
{
	struct stat st;

	ck_assert_int_eq(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static bool
have_prog(const char *p)
{
	char buf[64];

	snprintf(buf, sizeof buf, "command -v %s >/dev/null 2>&1", p);
	return system(buf) == 0;
}

static void
run(const char *fmt, const char *arg)
{
	char cmd[PATH_MAX + 128];

	snprintf(cmd, sizeof cmd, fmt, arg);
	ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

/* The dirs each file-system test runs in: ext4, and tmpfs when mounted. */
static const char *
fs_dir(int i)
{
	return i == 0 ? g_base : g_tmpfs;
}

static bool
fs_skip(int i)
{
	if (i == 1 && !g_tmpfs_ok) {
		fprintf(stderr, "test-xattr: no tmpfs mounted (needs root): "
		    "tmpfs case not checked\n");
		return true;
	}
	return false;
}

/* ---- names and permissions ---- */

START_TEST(test_namespace_of_names)
{
	ck_assert_uint_eq(xattr_namespace("user.x"), XATTR_NS_USER);
	ck_assert_uint_eq(xattr_namespace("trusted.overlay.opaque"),
	    XATTR_NS_TRUSTED);
	ck_assert_uint_eq(xattr_namespace("security.selinux"),
	    XATTR_NS_SECURITY);
	ck_assert_uint_eq(xattr_namespace("security.capability"),
	    XATTR_NS_CAPABILITY);
	ck_assert_uint_eq(xattr_namespace("system.posix_acl_access"),
	    XATTR_NS_ACL_ACCESS);
	ck_assert_uint_eq(xattr_namespace("system.posix_acl_default"),
	    XATTR_NS_ACL_DEFAULT);
	ck_assert_uint_eq(xattr_namespace("system.nfs4_acl"), 0);
	ck_assert_uint_eq(xattr_namespace("system.posix_acl_accessx"), 0);
	ck_assert_uint_eq(xattr_namespace("user"), 0);
	ck_assert_uint_eq(xattr_namespace("os2.x"), 0);
}
END_TEST

/* Drops CAP_SYS_ADMIN and CAP_SETFCAP from the effective set. */
static int
drop_caps(void)
{
	struct __user_cap_header_struct h = {
		.version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];

	if (syscall(SYS_capget, &h, d) != 0)
		return -1;
	d[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &= ~CAP_TO_MASK(CAP_SYS_ADMIN);
	d[CAP_TO_INDEX(CAP_SETFCAP)].effective &= ~CAP_TO_MASK(CAP_SETFCAP);
	return (int)syscall(SYS_capset, &h, d);
}

START_TEST(test_permitted)
{
	pid_t pid;
	int st;

	if (!is_root()) {
		ck_assert_uint_eq(xattr_namespaces_permitted(),
		    XATTR_NS_USER | XATTR_NS_ACL);
		return;
	}
	ck_assert_uint_eq(xattr_namespaces_permitted(), XATTR_NS_ALL);
	/* root without the two capabilities (a sandboxed unit): by
	 * capability, not by uid */
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0)
		_exit(drop_caps() != 0 ? 2 : xattr_namespaces_permitted() ==
		    (XATTR_NS_USER | XATTR_NS_ACL) ? 0 : 1);
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %d", st);
}
END_TEST

/* ---- reading ---- */

START_TEST(test_read_empty)
{
	char p[PATH_MAX];
	XattrSet *s = (XattrSet *)0x1;
	int fd;

	if (fs_skip(_i))
		return;
	fd = new_file(fs_dir(_i), "empty", 0644, p, sizeof p);
	ck_assert_int_eq(xattr_read(fd, XATTR_NS_ALL, &s), 0);
	ck_assert_ptr_null(s);
	ck_assert_uint_eq(xattr_set_count(s), 0);
	ck_assert_ptr_null(xattr_set_find(s, "user.x"));
	ck_assert_uint_eq(xattr_compare(s, NULL), 0);
	xattr_set_free(s);
	close(fd);
	/* a bad fd is an error, not an empty set */
	ck_assert_int_eq(xattr_read(-1, XATTR_NS_ALL, &s), -EBADF);
}
END_TEST

START_TEST(test_read_each_namespace)
{
	unsigned char acl[64], cap[20];
	size_t acl_n = acl_masked(acl), cap_n = cap_build(cap, CAP_NET_RAW);
	char p[PATH_MAX];
	const XattrEntry *e;
	XattrSet *s;
	int fd;

	if (fs_skip(_i))
		return;
	fd = new_file(fs_dir(_i), "ns", 0640, p, sizeof p);
	sets(p, "user.b", "second");
	sets(p, "user.a", "first");
	set(p, "user.empty", "", 0);
	set(p, XATTR_ACL_ACCESS, acl, acl_n);
	if (is_root()) {
		sets(p, "trusted.t", "trusted value");
		sets(p, "security.treesync-test", "security value");
		set(p, XATTR_CAPABILITY, cap, cap_n);
	}

	ck_assert_int_eq(xattr_read(fd, XATTR_NS_ALL, &s), 0);
	ck_assert_uint_eq(xattr_set_count(s), is_root() ? 7 : 4);
	for (size_t i = 1; i < s->count; i++)	/* sorted by name */
		ck_assert_int_lt(strcmp(s->entry[i - 1].name, s->entry[i].name),
		    0);
	e = xattr_set_find(s, "user.a");
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->size, 5);
	ck_assert_int_eq(memcmp(e->value, "first", 5), 0);
	e = xattr_set_find(s, "user.empty");
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->size, 0);
	e = xattr_set_find(s, XATTR_ACL_ACCESS);
	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->size, acl_n);
	ck_assert_int_eq(memcmp(e->value, acl, acl_n), 0);
	if (is_root()) {
		e = xattr_set_find(s, XATTR_CAPABILITY);
		ck_assert_ptr_nonnull(e);
		ck_assert_int_eq(memcmp(e->value, cap, cap_n), 0);
		ck_assert_ptr_nonnull(xattr_set_find(s, "trusted.t"));
	}
	xattr_set_free(s);

	/* only the namespaces asked for */
	ck_assert_int_eq(xattr_read(fd, XATTR_NS_USER, &s), 0);
	ck_assert_uint_eq(xattr_set_count(s), 3);
	xattr_set_free(s);
	ck_assert_int_eq(xattr_read(fd, XATTR_NS_ACL_ACCESS, &s), 0);
	ck_assert_uint_eq(xattr_set_count(s), 1);
	xattr_set_free(s);
	ck_assert_int_eq(xattr_read(fd, XATTR_NS_ACL_DEFAULT, &s), 0);
	ck_assert_ptr_null(s);
	if (is_root()) {
		ck_assert_int_eq(xattr_read(fd, XATTR_NS_SECURITY, &s), 0);
		ck_assert_uint_eq(xattr_set_count(s), 1);	/* not the cap */
		ck_assert_str_eq(s->entry[0].name, "security.treesync-test");
		xattr_set_free(s);
	}
	close(fd);
}
END_TEST

/* Past XATTR_SET_MAX_BYTES: -E2BIG (tmpfs holds more than ext4's block). */
START_TEST(test_read_cap)
{
	static char big[60000];
	char p[PATH_MAX], name[32];
	XattrSet *s = (XattrSet *)0x1;
	int fd;

	if (fs_skip(1))
		return;
	memset(big, 'x', sizeof big);
	fd = new_file(g_tmpfs, "big", 0644, p, sizeof p);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof name, "user.big%d", i);
		set(p, name, big, sizeof big);
	}
	ck_assert_int_eq(xattr_read(fd, XATTR_NS_ALL, &s), 0);	/* 240 KB */
	ck_assert_uint_eq(xattr_set_count(s), 4);
	ck_assert_uint_le(s->bytes, XATTR_SET_MAX_BYTES);
	xattr_set_free(s);
	set(p, "user.big4", big, sizeof big);
	s = (XattrSet *)0x1;
	ck_assert_int_eq(xattr_read(fd, XATTR_NS_ALL, &s), -E2BIG);
	ck_assert_ptr_eq(s, (XattrSet *)0x1);		/* untouched */
	/* outside the namespaces asked for, they do not count */
	ck_assert_int_eq(xattr_read(fd, XATTR_NS_ACL, &s), 0);
	ck_assert_ptr_null(s);
	close(fd);
}
END_TEST

START_TEST(test_compare)
{
	unsigned char acl[64];
	size_t acl_n = acl_masked(acl);
	char a[PATH_MAX], b[PATH_MAX];
	XattrSet *sa, *sb;

	close(new_file(g_base, "cmp-a", 0640, a, sizeof a));
	close(new_file(g_base, "cmp-b", 0640, b, sizeof b));
	sets(a, "user.x", "1");
	sets(b, "user.x", "1");
	set(a, XATTR_ACL_ACCESS, acl, acl_n);
	set(b, XATTR_ACL_ACCESS, acl, acl_n);
	sa = read_path(a, XATTR_NS_ALL);
	sb = read_path(b, XATTR_NS_ALL);
	ck_assert_uint_eq(xattr_compare(sa, sb), 0);
	ck_assert_uint_eq(xattr_compare(sa, NULL),
	    XATTR_NS_USER | XATTR_NS_ACL_ACCESS);
	ck_assert_uint_eq(xattr_compare(NULL, sb),
	    XATTR_NS_USER | XATTR_NS_ACL_ACCESS);
	xattr_set_free(sb);

	sets(b, "user.x", "2");			/* same size, other value */
	sb = read_path(b, XATTR_NS_ALL);
	ck_assert_uint_eq(xattr_compare(sa, sb), XATTR_NS_USER);
	xattr_set_free(sb);
	sets(b, "user.x", "1");
	sets(b, "user.y", "");			/* an extra, empty */
	ck_assert_int_eq(lremovexattr(b, XATTR_ACL_ACCESS), 0);
	sb = read_path(b, XATTR_NS_ALL);
	ck_assert_uint_eq(xattr_compare(sa, sb),
	    XATTR_NS_USER | XATTR_NS_ACL_ACCESS);
	ck_assert_uint_eq(xattr_compare(sb, sa),
	    XATTR_NS_USER | XATTR_NS_ACL_ACCESS);
	xattr_set_free(sb);
	xattr_set_free(sa);
}
END_TEST

/* ---- applying ---- */

/* src gets one attribute of every namespace and the mask case's ACL. */
static void
decorate(const char *src)
{
	unsigned char acl[64], cap[20];

	sets(src, "user.a", "first");
	sets(src, "user.b", "second");
	set(src, XATTR_ACL_ACCESS, acl, acl_masked(acl));
	if (is_root()) {
		sets(src, "trusted.t", "trusted");
		sets(src, "security.treesync-test", "sec");
		set(src, XATTR_CAPABILITY, cap, cap_build(cap, CAP_NET_RAW));
	}
}

START_TEST(test_apply_file)
{
	char src[PATH_MAX], dst[PATH_MAX];
	XattrApplyResult res;
	XattrSet *want, *got;
	int dfd;

	if (fs_skip(_i))
		return;
	close(new_file(g_base, "apply-src", 0640, src, sizeof src));
	decorate(src);
	ck_assert_uint_eq(mode_of(src), 0660);	/* the mask shows */
	dfd = new_file(fs_dir(_i), "apply-dst", 0600, dst, sizeof dst);
	sets(dst, "user.stale", "remove me");
	if (is_root())
		sets(dst, "trusted.stale", "remove me too");

	want = read_path(src, XATTR_NS_ALL);
	ck_assert_int_eq(xattr_apply(dfd, want, mode_of(src), XATTR_NS_ALL,
	    &res), 0);
	ck_assert_uint_eq(res.refused, 0);
	ck_assert_uint_eq(res.failed, 0);
	ck_assert_uint_eq(res.mode, 0660);
	ck_assert(res.changed & XATTR_NS_USER);
	ck_assert(res.changed & XATTR_NS_ACL_ACCESS);
	got = read_path(dst, XATTR_NS_ALL);
	ck_assert_uint_eq(xattr_compare(want, got), 0);
	ck_assert_ptr_null(xattr_set_find(got, "user.stale"));
	ck_assert_uint_eq(mode_of(dst), 0660);
	xattr_set_free(got);
	xattr_set_free(want);

	/* applying again changes nothing */
	want = read_path(src, XATTR_NS_ALL);
	ck_assert_int_eq(xattr_apply(dfd, want, mode_of(src), XATTR_NS_ALL,
	    &res), 0);
	ck_assert_uint_eq(res.changed, 0);
	xattr_set_free(want);

	/* the source loses its ACL and one attribute, another changes */
	ck_assert_int_eq(lremovexattr(src, XATTR_ACL_ACCESS), 0);
	ck_assert_int_eq(chmod(src, 0640), 0);
	ck_assert_int_eq(lremovexattr(src, "user.a"), 0);
	sets(src, "user.b", "changed");
	want = read_path(src, XATTR_NS_ALL);
	ck_assert_int_eq(xattr_apply(dfd, want, 0640, XATTR_NS_ALL, &res), 0);
	got = read_path(dst, XATTR_NS_ALL);
	ck_assert_uint_eq(xattr_compare(want, got), 0);
	ck_assert_ptr_null(xattr_set_find(got, XATTR_ACL_ACCESS));
	ck_assert_uint_eq(mode_of(dst), 0640);
	ck_assert_uint_eq(res.mode, 0640);
	xattr_set_free(got);
	xattr_set_free(want);
	close(dfd);
}
END_TEST

START_TEST(test_apply_mode_bits)
{
	char src[PATH_MAX], dst[PATH_MAX];
	XattrApplyResult res;
	XattrSet *want;
	int dfd;

	/* setuid/setgid survive the ACL steps (root: chmod keeps them) */
	if (!is_root())
		return;
	close(new_file(g_base, "suid-src", 04750, src, sizeof src));
	sets(src, "user.x", "1");
	run("setfacl -m u:nobody:rx '%s' 2>/dev/null || true", src);
	dfd = new_file(g_base, "suid-dst", 0600, dst, sizeof dst);
	want = read_path(src, XATTR_NS_ALL);
	ck_assert_int_eq(xattr_apply(dfd, want, mode_of(src), XATTR_NS_ALL,
	    &res), 0);
	ck_assert_uint_eq(mode_of(dst), mode_of(src));
	ck_assert_uint_eq(mode_of(dst) & 04000, 04000);
	xattr_set_free(want);
	close(dfd);
}
END_TEST

START_TEST(test_apply_dir_acls)
{
	static const struct acl_entry def[] = {
		{ U_OBJ, 7, NOID }, { U, 5, NOBODY }, { G_OBJ, 5, NOID },
		{ M, 5, NOID }, { O, 0, NOID } };
	static const struct acl_entry acc[] = {
		{ U_OBJ, 7, NOID }, { G_OBJ, 5, NOID }, { G, 7, NOBODY },
		{ M, 7, NOID }, { O, 0, NOID } };
	unsigned char d[64], a[64];
	size_t dn = acl_build(d, def, 5), an = acl_build(a, acc, 5);
	char src[PATH_MAX], dst[PATH_MAX], child[PATH_MAX + 8];
	XattrApplyResult res;
	XattrSet *want, *got;
	int dfd, cfd;

	if (fs_skip(_i))
		return;
	snprintf(src, sizeof src, "%s/dir-src-%d-%d", g_base, (int)getpid(), ++g_seq);
	snprintf(dst, sizeof dst, "%s/dir-dst-%d-%d", fs_dir(_i), (int)getpid(), ++g_seq);
	ck_assert_int_eq(mkdir(src, 0750), 0);
	ck_assert_int_eq(mkdir(dst, 0700), 0);
	set(src, XATTR_ACL_DEFAULT, d, dn);
	set(src, XATTR_ACL_ACCESS, a, an);
	sets(src, "user.dir", "yes");
	ck_assert_uint_eq(mode_of(src), 0770);		/* mask rwx */

	dfd = open(dst, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	ck_assert_int_ge(dfd, 0);
	want = read_path(src, XATTR_NS_ALL);
	ck_assert_int_eq(xattr_apply(dfd, want, mode_of(src), XATTR_NS_ALL,
	    &res), 0);
	ck_assert(res.changed & XATTR_NS_ACL_DEFAULT);
	got = read_path(dst, XATTR_NS_ALL);
	ck_assert_uint_eq(xattr_compare(want, got), 0);
	ck_assert_uint_eq(mode_of(dst), 0770);
	xattr_set_free(got);

	/* the default ACL works there: a new file inherits it */
	snprintf(child, sizeof child, "%s/new", dst);
	cfd = open(child, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	ck_assert_int_ge(cfd, 0);
	close(cfd);
	got = read_path(child, XATTR_NS_ACL);
	ck_assert_ptr_nonnull(xattr_set_find(got, XATTR_ACL_ACCESS));
	xattr_set_free(got);
	xattr_set_free(want);

	/* the default ACL is removed when the source drops it */
	ck_assert_int_eq(lremovexattr(src, XATTR_ACL_DEFAULT), 0);
	want = read_path(src, XATTR_NS_ALL);
	ck_assert_int_eq(xattr_apply(dfd, want, mode_of(src), XATTR_NS_ALL,
	    &res), 0);
	got = read_path(dst, XATTR_NS_ALL);
	ck_assert_ptr_null(xattr_set_find(got, XATTR_ACL_DEFAULT));
	ck_assert_uint_eq(xattr_compare(want, got), 0);
	xattr_set_free(got);
	xattr_set_free(want);
	close(dfd);
}
END_TEST

/* A temporary made in a directory with a default ACL inherits an ACL;
 * apply reads the destination itself and removes it. */
START_TEST(test_apply_inherited_acl_removed)
{
	static const struct acl_entry def[] = {
		{ U_OBJ, 7, NOID }, { U, 7, NOBODY }, { G_OBJ, 5, NOID },
		{ M, 7, NOID }, { O, 5, NOID } };
	unsigned char d[64];
	char dir[PATH_MAX], src[PATH_MAX], tmp[PATH_MAX];
	XattrApplyResult res;
	XattrSet *got, *want;
	int fd;

	snprintf(dir, sizeof dir, "%s/inherit-%d-%d", g_base, (int)getpid(), ++g_seq);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	set(dir, XATTR_ACL_DEFAULT, d, acl_build(d, def, 5));
	close(new_file(g_base, "plain-src", 0644, src, sizeof src));
	fd = new_file(dir, "tmp", 0600, tmp, sizeof tmp);
	got = read_path(tmp, XATTR_NS_ALL);
	ck_assert_ptr_nonnull(xattr_set_find(got, XATTR_ACL_ACCESS));
	xattr_set_free(got);
	want = read_path(src, XATTR_NS_ALL);
	ck_assert_ptr_null(want);
	ck_assert_int_eq(xattr_apply(fd, want, 0644, XATTR_NS_ALL, &res), 0);
	got = read_path(tmp, XATTR_NS_ALL);
	ck_assert_ptr_null(got);
	ck_assert_uint_eq(mode_of(tmp), 0644);
	close(fd);
}
END_TEST

START_TEST(test_apply_symlink)
{
	char target[PATH_MAX], src[PATH_MAX], dst[PATH_MAX];
	XattrApplyResult res;
	XattrSet *want, *got;
	int sfd, dfd;

	if (!is_root())
		return;		/* user.* is not allowed on symlinks */
	close(new_file(g_base, "target", 0644, target, sizeof target));
	sets(target, "user.on-target", "not the link's");
	snprintf(src, sizeof src, "%s/link-src-%d-%d", g_base, (int)getpid(), ++g_seq);
	snprintf(dst, sizeof dst, "%s/link-dst-%d-%d", g_base, (int)getpid(), ++g_seq);
	ck_assert_int_eq(symlink(target, src), 0);
	ck_assert_int_eq(symlink(target, dst), 0);
	sets(src, "trusted.link", "on the link");
	sets(src, "security.treesync-link", "also");

	sfd = open(src, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	dfd = open(dst, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	ck_assert_int_ge(sfd, 0);
	ck_assert_int_ge(dfd, 0);
	ck_assert_int_eq(xattr_read(sfd, XATTR_NS_ALL, &want), 0);
	ck_assert_uint_eq(xattr_set_count(want), 2);	/* not the target's */
	ck_assert_ptr_null(xattr_set_find(want, "user.on-target"));
	ck_assert_int_eq(xattr_apply(dfd, want, 0777, XATTR_NS_ALL, &res), 0);
	ck_assert_uint_eq(res.failed, 0);
	ck_assert_int_eq(xattr_read(dfd, XATTR_NS_ALL, &got), 0);
	ck_assert_uint_eq(xattr_compare(want, got), 0);
	xattr_set_free(got);
	/* the target was not touched through either link */
	got = read_path(target, XATTR_NS_ALL);
	ck_assert_uint_eq(xattr_set_count(got), 1);
	ck_assert_uint_eq(mode_of(target), 0644);
	xattr_set_free(got);
	xattr_set_free(want);
	close(sfd);
	close(dfd);
}
END_TEST

START_TEST(test_capability_and_chown)
{
	unsigned char cap[20];
	char src[PATH_MAX], dst[PATH_MAX];
	XattrApplyResult res;
	XattrSet *want, *got;
	int dfd;

	if (!is_root())
		return;
	close(new_file(g_base, "cap-src", 0755, src, sizeof src));
	set(src, XATTR_CAPABILITY, cap, cap_build(cap, CAP_NET_RAW));
	dfd = new_file(g_base, "cap-dst", 0600, dst, sizeof dst);
	ck_assert_int_eq(fchown(dfd, 1234, 1234), 0);	/* the caller's step */
	want = read_path(src, XATTR_NS_ALL);
	ck_assert_int_eq(xattr_apply(dfd, want, 0755, XATTR_NS_ALL, &res), 0);
	ck_assert(res.changed & XATTR_NS_CAPABILITY);
	if (have_prog("getcap"))
		run("getcap '%s' | grep -q 'cap_net_raw=ep'", dst);
	got = read_path(dst, XATTR_NS_ALL);
	ck_assert_uint_eq(xattr_compare(want, got), 0);
	xattr_set_free(got);

	/* chown clears it: why apply must come after the chown */
	ck_assert_int_eq(fchown(dfd, 0, 0), 0);
	got = read_path(dst, XATTR_NS_ALL);
	ck_assert_uint_eq(xattr_compare(want, got), XATTR_NS_CAPABILITY);
	xattr_set_free(got);
	/* and so does a write */
	ck_assert_int_eq(xattr_apply(dfd, want, 0755, XATTR_NS_ALL, &res), 0);
	ck_assert_int_eq(pwrite(dfd, "x", 1, 0), 1);
	got = read_path(dst, XATTR_NS_ALL);
	ck_assert_uint_eq(xattr_compare(want, got), XATTR_NS_CAPABILITY);
	xattr_set_free(got);
	ck_assert_int_eq(xattr_apply(dfd, want, 0755, XATTR_NS_ALL, &res), 0);
	got = read_path(dst, XATTR_NS_ALL);
	ck_assert_uint_eq(xattr_compare(want, got), 0);
	ck_assert_uint_eq(mode_of(dst), 0755);
	xattr_set_free(got);

	/* the source loses it: removed */
	ck_assert_int_eq(lremovexattr(src, XATTR_CAPABILITY), 0);
	xattr_set_free(want);
	want = read_path(src, XATTR_NS_ALL);
	ck_assert_int_eq(xattr_apply(dfd, want, 0755, XATTR_NS_ALL, &res), 0);
	got = read_path(dst, XATTR_NS_ALL);
	ck_assert_ptr_null(got);
	xattr_set_free(want);
	close(dfd);
}
END_TEST

/* The refusing destination: ramfs has no xattr support at all. */
START_TEST(test_refused)
{
	char src[PATH_MAX], dst[PATH_MAX];
	XattrApplyResult res;
	XattrSet *want, *got;
	mode_t expect;
	int dfd;

	if (!g_ramfs_ok) {
		fprintf(stderr, "test-xattr: no ramfs mounted (needs root): "
		    "refusing destination not checked\n");
		return;
	}
	close(new_file(g_base, "refuse-src", 0640, src, sizeof src));
	decorate(src);				/* mode 0660 through the mask */
	dfd = new_file(g_ramfs, "refuse-dst", 0600, dst, sizeof dst);
	want = read_path(src, XATTR_NS_ALL);
	ck_assert_int_eq(xattr_apply(dfd, want, mode_of(src), XATTR_NS_ALL,
	    &res), 0);
	ck_assert(res.refused & XATTR_NS_USER);
	ck_assert(res.refused & XATTR_NS_ACL_ACCESS);
	if (is_root())
		ck_assert(res.refused & XATTR_NS_TRUSTED);
	ck_assert_uint_eq(res.failed, 0);
	/* never wider than the source's effective permissions: the group
	 * may read (its entry), not write (that was the mask) */
	ck_assert_uint_eq(mode_of(dst), 0640);
	ck_assert_uint_eq(res.mode, 0640);
	expect = xattr_destination_mode(mode_of(src), want, res.refused);
	ck_assert_uint_eq(expect, 0640);
	/* what the rule set compares: equal once the refused are masked */
	got = read_path(dst, XATTR_NS_ALL);
	ck_assert_ptr_null(got);
	ck_assert_uint_ne(xattr_compare(want, got), 0);
	ck_assert_uint_eq(xattr_compare(want, got) & ~res.refused, 0);
	/* a second apply is as quiet as the first */
	ck_assert_int_eq(xattr_apply(dfd, want, mode_of(src), XATTR_NS_ALL,
	    &res), 0);
	ck_assert_uint_eq(res.changed, 0);
	ck_assert_uint_eq(mode_of(dst), 0640);
	xattr_set_free(want);
	close(dfd);
}
END_TEST

/* An ACL the caller does not carry (xattrs off for ACLs) narrows too. */
START_TEST(test_acl_not_carried_narrows)
{
	char src[PATH_MAX], dst[PATH_MAX];
	XattrApplyResult res;
	XattrSet *want;
	int dfd;

	close(new_file(g_base, "nc-src", 0640, src, sizeof src));
	decorate(src);
	dfd = new_file(g_base, "nc-dst", 0600, dst, sizeof dst);
	want = read_path(src, XATTR_NS_ALL);
	ck_assert_int_eq(xattr_apply(dfd, want, 0660, XATTR_NS_USER, &res), 0);
	ck_assert_uint_eq(mode_of(dst), 0640);
	xattr_set_free(want);
	close(dfd);
}
END_TEST

/* An unprivileged owner of a read-only file still gets its user.* set. */
START_TEST(test_unprivileged_read_only)
{
	char src[PATH_MAX], dst[PATH_MAX];
	pid_t pid;
	int st, dfd;

	if (!is_root())
		return;
	close(new_file(g_base, "ro-src", 0444, src, sizeof src));
	sets(src, "user.ro", "value");
	dfd = new_file(g_base, "ro-dst", 0444, dst, sizeof dst);
	close(dfd);
	ck_assert_int_eq(chown(dst, NOBODY, NOBODY), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		XattrApplyResult res;
		XattrSet *want = NULL;
		int sfd, fd, r;

		sfd = open(src, O_RDONLY | O_CLOEXEC);
		if (sfd < 0 || xattr_read(sfd, XATTR_NS_ALL, &want) != 0)
			_exit(10);
		if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
			_exit(11);
		if (xattr_namespaces_permitted() != (XATTR_NS_USER | XATTR_NS_ACL))
			_exit(12);
		fd = open(dst, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			_exit(13);
		r = xattr_apply(fd, want, 0444, xattr_namespaces_permitted(),
		    &res);
		xattr_set_free(want);
		_exit(r == 0 ? 0 : 14);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %d", st);
	ck_assert_uint_eq(mode_of(dst), 0444);
	{
		char v[16];
		ssize_t n = lgetxattr(dst, "user.ro", v, sizeof v);

		ck_assert_int_eq(n, 5);
		ck_assert_int_eq(memcmp(v, "value", 5), 0);
	}
}
END_TEST

/* ---- the ACL-mask computation ---- */

struct mode_case {
	const char *what;
	mode_t mode;			/* the source's, as stat shows it */
	struct acl_entry e[8];
	size_t n;
	mode_t expect;
};

/* Worked by hand: group = owning group & mask & every named user;
 * other = other & every named entry (each & mask). */
static const struct mode_case mode_cases[] = {
	{ "0640 + u:nobody:rw (the issue's case)", 0660,
	  { { U_OBJ, 6, NOID }, { U, 6, NOBODY }, { G_OBJ, 4, NOID },
	    { M, 6, NOID }, { O, 0, NOID } }, 5, 0640 },
	{ "0755 + u:bob:--- (a deny entry closes group and other)", 0755,
	  { { U_OBJ, 7, NOID }, { U, 0, 1001 }, { G_OBJ, 5, NOID },
	    { M, 5, NOID }, { O, 5, NOID } }, 5, 0700 },
	{ "0750 dir + g:devs:rwx", 0770,
	  { { U_OBJ, 7, NOID }, { G_OBJ, 5, NOID }, { G, 7, 2000 },
	    { M, 7, NOID }, { O, 0, NOID } }, 5, 0750 },
	{ "0644 + g:web:r", 0644,
	  { { U_OBJ, 6, NOID }, { G_OBJ, 4, NOID }, { G, 4, 33 },
	    { M, 4, NOID }, { O, 4, NOID } }, 5, 0644 },
	{ "mask narrower than the owning group (chmod g-w after setfacl)", 0644,
	  { { U_OBJ, 6, NOID }, { U, 6, 1001 }, { G_OBJ, 6, NOID },
	    { M, 4, NOID }, { O, 4, NOID } }, 5, 0644 },
	{ "setuid 04750 + u:alice:rx", 04750,
	  { { U_OBJ, 7, NOID }, { U, 5, 1002 }, { G_OBJ, 5, NOID },
	    { M, 5, NOID }, { O, 0, NOID } }, 5, 04750 },
	{ "sticky dir 01777 + g:nogroup:wx", 01777,
	  { { U_OBJ, 7, NOID }, { G_OBJ, 7, NOID }, { G, 3, NOBODY },
	    { M, 7, NOID }, { O, 7, NOID } }, 5, 01773 },
	{ "named group with less than other", 0664,
	  { { U_OBJ, 6, NOID }, { G_OBJ, 6, NOID }, { G, 0, 3000 },
	    { M, 6, NOID }, { O, 4, NOID } }, 5, 0660 },
	{ "two named users, rw and r", 0660,
	  { { U_OBJ, 6, NOID }, { U, 6, 1001 }, { U, 4, 1002 },
	    { G_OBJ, 6, NOID }, { M, 6, NOID }, { O, 0, NOID } }, 6, 0640 },
	{ "three base entries only (no mask)", 0604,
	  { { U_OBJ, 6, NOID }, { G_OBJ, 0, NOID }, { O, 4, NOID } }, 3, 0604 },
};

START_TEST(test_effective_mode_examples)
{
	const struct mode_case *c = &mode_cases[_i];
	unsigned char buf[128];
	size_t n = acl_build(buf, c->e, c->n);
	mode_t got = 0;

	ck_assert_msg(xattr_acl_effective_mode(c->mode, buf, n, &got) == 0,
	    "%s: refused", c->what);
	ck_assert_msg(got == c->expect, "%s: got %04o, want %04o", c->what,
	    (unsigned)got, (unsigned)c->expect);
}
END_TEST

START_TEST(test_effective_mode_malformed)
{
	static const struct acl_entry good[] = {
		{ U_OBJ, 6, NOID }, { U, 6, NOBODY }, { G_OBJ, 4, NOID },
		{ M, 6, NOID }, { O, 0, NOID } };
	static const struct acl_entry no_mask[] = {
		{ U_OBJ, 6, NOID }, { U, 6, NOBODY }, { G_OBJ, 4, NOID },
		{ O, 0, NOID } };
	static const struct acl_entry two_owners[] = {
		{ U_OBJ, 6, NOID }, { U_OBJ, 6, NOID }, { G_OBJ, 4, NOID },
		{ O, 0, NOID } };
	static const struct acl_entry no_other[] = {
		{ U_OBJ, 6, NOID }, { G_OBJ, 4, NOID } };
	static const struct acl_entry bad_tag[] = {
		{ U_OBJ, 6, NOID }, { 0x40, 6, 1 }, { G_OBJ, 4, NOID },
		{ O, 0, NOID } };
	static const struct acl_entry bad_perm[] = {
		{ U_OBJ, 8, NOID }, { G_OBJ, 4, NOID }, { O, 0, NOID } };
	unsigned char buf[128];
	mode_t m = 0777;
	size_t n;

	n = acl_build(buf, good, 5);
	ck_assert_int_eq(xattr_acl_effective_mode(0660, buf, n, &m), 0);
	ck_assert_int_eq(xattr_acl_effective_mode(0660, buf, n - 1, &m),
	    -EINVAL);
	ck_assert_int_eq(xattr_acl_effective_mode(0660, buf, 3, &m), -EINVAL);
	ck_assert_int_eq(xattr_acl_effective_mode(0660, NULL, 0, &m), -EINVAL);
	buf[0] = 1;				/* version 1 */
	ck_assert_int_eq(xattr_acl_effective_mode(0660, buf, n, &m), -EINVAL);
	m = 0777;
	n = acl_build(buf, no_mask, 4);
	ck_assert_int_eq(xattr_acl_effective_mode(0660, buf, n, &m), -EINVAL);
	n = acl_build(buf, two_owners, 4);
	ck_assert_int_eq(xattr_acl_effective_mode(0660, buf, n, &m), -EINVAL);
	n = acl_build(buf, no_other, 2);
	ck_assert_int_eq(xattr_acl_effective_mode(0660, buf, n, &m), -EINVAL);
	n = acl_build(buf, bad_tag, 4);
	ck_assert_int_eq(xattr_acl_effective_mode(0660, buf, n, &m), -EINVAL);
	n = acl_build(buf, bad_perm, 3);
	ck_assert_int_eq(xattr_acl_effective_mode(0660, buf, n, &m), -EINVAL);
	ck_assert_uint_eq(m, 0777);		/* untouched on failure */
}
END_TEST

/* The same computation on ACLs that setfacl made. */
START_TEST(test_effective_mode_setfacl)
{
	static const struct {
		mode_t mode;
		const char *spec;
		mode_t seen, expect;
	} c[] = {
		{ 0640, "u:nobody:rw", 0660, 0640 },
		{ 0644, "u:nobody:-", 0644, 0600 },
		{ 0750, "g:nogroup:rwx", 0770, 0750 },
	};
	char p[PATH_MAX], cmd[PATH_MAX + 64];

	if (!have_prog("setfacl")) {
		fprintf(stderr, "test-xattr: setfacl not installed (package "
		    "acl): setfacl cases not checked\n");
		return;
	}
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		XattrSet *s;
		const XattrEntry *e;
		mode_t m;

		close(new_file(g_base, "setfacl", c[i].mode, p, sizeof p));
		snprintf(cmd, sizeof cmd, "setfacl -m %s '%s'", c[i].spec, p);
		ck_assert_int_eq(system(cmd), 0);
		ck_assert_uint_eq(mode_of(p), c[i].seen);
		s = read_path(p, XATTR_NS_ACL);
		e = xattr_set_find(s, XATTR_ACL_ACCESS);
		ck_assert_ptr_nonnull(e);
		ck_assert_int_eq(xattr_acl_effective_mode(mode_of(p), e->value,
		    e->size, &m), 0);
		ck_assert_msg(m == c[i].expect, "%s on %04o: got %04o",
		    c[i].spec, (unsigned)c[i].mode, (unsigned)m);
		ck_assert_uint_eq(xattr_destination_mode(mode_of(p), s,
		    XATTR_NS_ACL_ACCESS), c[i].expect);
		ck_assert_uint_eq(xattr_destination_mode(mode_of(p), s, 0),
		    c[i].seen);
		xattr_set_free(s);
	}
}
END_TEST

/* ---- fixture ---- */

static void
mount_scratch(void)
{
	if (!is_root())
		return;
	snprintf(g_tmpfs, sizeof g_tmpfs, "%s/tmpfs", g_base);
	snprintf(g_ramfs, sizeof g_ramfs, "%s/ramfs", g_base);
	if (mkdir(g_tmpfs, 0755) == 0 && mount("treesync-test-xattr", g_tmpfs,
	    "tmpfs", 0, "size=16m") == 0)
		g_tmpfs_ok = true;
	if (mkdir(g_ramfs, 0755) == 0 && mount("treesync-test-xattr", g_ramfs,
	    "ramfs", 0, NULL) == 0)
		g_ramfs_ok = true;
}

static void
unmount_scratch(void)
{
	if (g_tmpfs_ok && umount(g_tmpfs) == 0)
		g_tmpfs_ok = false;
	if (g_ramfs_ok && umount(g_ramfs) == 0)
		g_ramfs_ok = false;
}

static int
rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(p);
}

static Suite *
xattr_suite(void)
{
	Suite *s = suite_create("xattr");
	TCase *tc = tcase_create("xattr");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_namespace_of_names);
	tcase_add_test(tc, test_permitted);
	tcase_add_loop_test(tc, test_read_empty, 0, 2);
	tcase_add_loop_test(tc, test_read_each_namespace, 0, 2);
	tcase_add_test(tc, test_read_cap);
	tcase_add_test(tc, test_compare);
	tcase_add_loop_test(tc, test_apply_file, 0, 2);
	tcase_add_test(tc, test_apply_mode_bits);
	tcase_add_loop_test(tc, test_apply_dir_acls, 0, 2);
	tcase_add_test(tc, test_apply_inherited_acl_removed);
	tcase_add_test(tc, test_apply_symlink);
	tcase_add_test(tc, test_capability_and_chown);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_acl_not_carried_narrows);
	tcase_add_test(tc, test_unprivileged_read_only);
	tcase_add_loop_test(tc, test_effective_mode_examples, 0,
	    (int)(sizeof mode_cases / sizeof mode_cases[0]));
	tcase_add_test(tc, test_effective_mode_malformed);
	tcase_add_test(tc, test_effective_mode_setfacl);
	suite_add_tcase(s, tc);
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
	/* the base dir is searchable by the unprivileged child */
	chmod(g_base, 0755);
	umask(0);
	mount_scratch();
	sr = srunner_create(xattr_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	unmount_scratch();
	nftw(g_base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? 0 : 1;
}
