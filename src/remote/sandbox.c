/*
 * sandbox — see include/remote/sandbox.h.
 *
 * DESIGN
 *
 * The threat: a user of the remote host who may write inside DIR (the
 * destination) swaps a directory for a symlink (or plants one) while a
 * transfer runs, so that a receiver walking "a/b/file" by path writes,
 * chmods, chowns or deletes outside DIR; when the key logs in as root that
 * is a root compromise. rsync's receiver resolves its paths relative to
 * its working directory and, before 3.4, followed symlinks in every
 * directory component. rrsync (rsync's own restricted wrapper) checks and
 * pins only the arguments it is given, not the paths rsync computes from
 * the file list, so it cannot stop this. rsync 3.4/3.5's receiver walks
 * parents itself (secure_relative_open: a held-fd walk, O_NOFOLLOW, in-tree
 * relative symlinks followed, absolute ones refused), which helps only
 * when the remote rsync is that new; SPEC allows 3.2.
 *
 * So the kernel does it, independent of the rsync version:
 *
 * mountns (the default): a private mount namespace (and, for a user other
 * than root, a user namespace mapping only that user's uid and gid to
 * themselves) in which every mount is read-only (mount_setattr
 * AT_RECURSIVE) except a fresh clone of DIR (open_tree OPEN_TREE_CLONE |
 * AT_RECURSIVE, mounts beneath DIR included) attached over DIR itself.
 * Every change rsync or treesync-remote makes through any path that leaves
 * DIR's tree -- a symlinked parent, an absolute symlink, ".." -- reaches a
 * read-only mount and fails with EROFS: writes, creates, renames,
 * unlinks, chmod, chown, utimes, xattrs, links alike. Nothing propagates
 * back (MS_PRIVATE); the namespace ends with the process.
 * Not guaranteed: (1) a hard link a local user placed inside DIR to a file
 * elsewhere on the same file system is inside DIR by every path check; if
 * rsync finds it with the source file's size and mtime it changes that
 * inode's metadata in place (chmod/chown), which is the outside file's.
 * fs.protected_hardlinks (on by default) limits this to files the user
 * owns or may write; with the key logged in as root it can still hand
 * them the source file's owner and mode. (2) Device nodes stay writable
 * on read-only mounts (the kernel's rule); rsync only writes regular files
 * through temporaries, so a device is reached only by a symlink rsync
 * replaces. (3) Reading is not confined: rsync reads basis files and the
 * daemon learns only their checksums.
 *
 * landlock (when user namespaces are disabled, or for root where mount
 * namespaces are denied): a Landlock ruleset that handles every
 * file-system write right (write, truncate, create of any kind, remove,
 * rename/link across directories) and grants them beneath DIR only (and
 * write on /dev/null). Writes, creates, renames and deletes outside DIR
 * fail with EACCES whatever the path. Not guaranteed, in addition to the
 * above: chmod, chown, utimes and xattr changes are not Landlock rights,
 * so through a symlinked parent they can reach files outside DIR that the
 * user may change anyway (its own files; anything, for root). Use it for
 * an unprivileged key user that owns nothing outside DIR.
 *
 * none (only when the administrator writes --sandbox=none): what openat2
 * gives the ops requests, and whatever the remote rsync's own resolver
 * does for data.
 *
 * auto tries mountns, then landlock, and refuses to serve (exit 69) when
 * neither can be set up, rather than run unconfined silently.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <linux/mount.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "remote/sandbox.h"

/* Landlock ABI 3 (Linux 6.2); the build host's headers may be older than
 * the kernel that runs us. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif

int
sandbox_parse_mode(const char *s, SandboxMode *out)
{
	static const char *const names[] = { "auto", "mountns", "landlock",
	    "none" };

	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (SandboxMode)i;
			return 0;
		}
	}
	return -EINVAL;
}

static int
fail(char *why, size_t size, int err, const char *fmt, ...)
{
	char what[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof what, fmt, ap);
	va_end(ap);
	snprintf(why, size, "%s: %s", what, strerror(err));
	return -err;
}

static int
write_proc(const char *path, const char *text)
{
	int fd, r = 0;
	size_t len = strlen(text);

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len)
		r = -errno;
	close(fd);
	return r;
}

/* The user namespace for a user other than root: only our own ids. */
static int
map_own_ids(uid_t uid, gid_t gid, char *why, size_t size)
{
	char line[64];
	int r;

	snprintf(line, sizeof line, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
	if ((r = write_proc("/proc/self/uid_map", line)) < 0)
		return fail(why, size, -r, "uid_map");
	if ((r = write_proc("/proc/self/setgroups", "deny")) < 0 && r != -ENOENT)
		return fail(why, size, -r, "setgroups");
	snprintf(line, sizeof line, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
	if ((r = write_proc("/proc/self/gid_map", line)) < 0)
		return fail(why, size, -r, "gid_map");
	return 0;
}

static int
enter_mountns(const char *dir, int *dir_fd, char *why, size_t size)
{
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
	uid_t uid = geteuid();
	gid_t gid = getegid();
	int dfd = -1, tree = -1, fd, r;

	if (unshare(CLONE_NEWNS | (uid != 0 ? CLONE_NEWUSER : 0)) < 0)
		return fail(why, size, errno, "unshare");
	if (uid != 0 && (r = map_own_ids(uid, gid, why, size)) < 0)
		return r;
	/* Source and type are ignored for a propagation change; named so
	 * that memory checkers see strings. */
	if (mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
		return fail(why, size, errno, "making mounts private");
	/* Opened inside the new namespace: open_tree clones only mounts of
	 * the caller's own namespace. */
	if ((dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = fail(why, size, errno, "'%s'", dir);
		goto out;
	}
	tree = (int)syscall(SYS_open_tree, dfd, "", OPEN_TREE_CLONE |
	    OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_EMPTY_PATH);
	if (tree < 0) {
		r = fail(why, size, errno, "open_tree '%s'", dir);
		goto out;
	}
	if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &ro,
	    sizeof ro) < 0) {
		r = fail(why, size, errno, "making mounts read-only");
		goto out;
	}
	if (syscall(SYS_move_mount, tree, "", dfd, "",
	    MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0) {
		r = fail(why, size, errno, "attaching '%s'", dir);
		goto out;
	}
	if ((fd = openat(tree, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = fail(why, size, errno, "'%s'", dir);
		goto out;
	}
	*dir_fd = fd;
	r = 0;
out:
	if (tree >= 0)
		close(tree);
	if (dfd >= 0)
		close(dfd);
	return r;
}

/* Every write-like right the running kernel's Landlock ABI knows. */
static uint64_t
landlock_write_rights(int abi)
{
	uint64_t rights = LANDLOCK_ACCESS_FS_WRITE_FILE |
	    LANDLOCK_ACCESS_FS_REMOVE_DIR | LANDLOCK_ACCESS_FS_REMOVE_FILE |
	    LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_DIR |
	    LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
	    LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK |
	    LANDLOCK_ACCESS_FS_MAKE_SYM;

	if (abi >= 2)
		rights |= LANDLOCK_ACCESS_FS_REFER;
	if (abi >= 3)
		rights |= LANDLOCK_ACCESS_FS_TRUNCATE;
	return rights;
}

static int
add_beneath(int ruleset, const char *path, uint64_t rights)
{
	struct landlock_path_beneath_attr pb = { .allowed_access = rights };
	int r = 0;

	if ((pb.parent_fd = open(path, O_PATH | O_CLOEXEC)) < 0)
		return -errno;
	if (syscall(SYS_landlock_add_rule, ruleset, LANDLOCK_RULE_PATH_BENEATH,
	    &pb, 0) < 0)
		r = -errno;
	close(pb.parent_fd);
	return r;
}

static int
enter_landlock(const char *dir, int *dir_fd, char *why, size_t size)
{
	struct landlock_ruleset_attr attr = { 0 };
	int abi, ruleset = -1, fd = -1, r;

	abi = (int)syscall(SYS_landlock_create_ruleset, NULL, 0,
	    LANDLOCK_CREATE_RULESET_VERSION);
	if (abi < 1)
		return fail(why, size, errno, "landlock");
	attr.handled_access_fs = landlock_write_rights(abi);
	ruleset = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof attr,
	    0);
	if (ruleset < 0)
		return fail(why, size, errno, "landlock ruleset");
	if ((r = add_beneath(ruleset, dir, attr.handled_access_fs)) < 0) {
		r = fail(why, size, -r, "'%s'", dir);
		goto out;
	}
	/* rsync and the C library may open /dev/null for writing. */
	(void)add_beneath(ruleset, "/dev/null", LANDLOCK_ACCESS_FS_WRITE_FILE &
	    attr.handled_access_fs);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		r = fail(why, size, errno, "'%s'", dir);
		goto out;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 ||
	    syscall(SYS_landlock_restrict_self, ruleset, 0) < 0) {
		r = fail(why, size, errno, "landlock_restrict_self");
		goto out;
	}
	*dir_fd = fd;
	fd = -1;
	r = 0;
out:
	if (fd >= 0)
		close(fd);
	close(ruleset);
	return r;
}

int
sandbox_enter(SandboxMode mode, const char *dir, int *dir_fd,
    const char **used, char *why, size_t why_size)
{
	char first[256] = "";
	int fd, r;

	/* dir itself must be there: a missing or unreadable DIR is the
	 * destination's fault, not the sandbox's, and says so. */
	if ((fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0)
		return fail(why, why_size, errno, "'%s'", dir);
	close(fd);
	switch (mode) {
	case SANDBOX_AUTO:
	case SANDBOX_MOUNTNS:
		if ((r = enter_mountns(dir, dir_fd, first, sizeof first)) == 0) {
			*used = "mountns";
			return 0;
		}
		if (mode == SANDBOX_MOUNTNS) {
			snprintf(why, why_size, "mount namespace: %s", first);
			return r;
		}
		/* FALLTHROUGH */
	case SANDBOX_LANDLOCK:
		if ((r = enter_landlock(dir, dir_fd, why, why_size)) == 0) {
			*used = "landlock";
			return 0;
		}
		if (mode == SANDBOX_AUTO) {
			char second[256];

			snprintf(second, sizeof second, "%s", why);
			snprintf(why, why_size, "no confinement available "
			    "(mount namespace: %s; landlock: %s)", first,
			    second);
		}
		return r;
	case SANDBOX_NONE:
		if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
			return fail(why, why_size, errno, "'%s'", dir);
		*dir_fd = fd;
		*used = "none";
		return 0;
	}
	return -EINVAL;
}
