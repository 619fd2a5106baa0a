/*
 * beneath — see include/remote/beneath.h.
 *
 * The same rule as the engine's fsutil_open_dir_beneath, for any kind of
 * file and with the component walk's refusals spelled as openat2's
 * (EXDEV, ELOOP), so callers see one set of answers either way.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "remote/beneath.h"

static bool openat2_missing;

/* Component by component, each with O_NOFOLLOW: a symlink answers ELOOP
 * (or ENOTDIR for an intermediate one opened O_DIRECTORY, turned into
 * ELOOP when it is one). */
static int
walk(int root, const char *relpath, int flags)
{
	const int dflags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	char *copy = NULL, *comp, *next, *save = NULL;
	int fd, r;

	if (relpath[0] == '/')
		return -EXDEV;
	if ((fd = openat(root, ".", dflags)) < 0)
		return -errno;
	if ((copy = strdup(relpath)) == NULL) {
		r = -ENOMEM;
		goto out;
	}
	comp = strtok_r(copy, "/", &save);
	while (comp != NULL) {
		int nfd;

		next = strtok_r(NULL, "/", &save);
		if (strcmp(comp, "..") == 0) {
			r = -EXDEV;
			goto out;
		}
		if (strcmp(comp, ".") == 0) {
			comp = next;
			continue;
		}
		nfd = openat(fd, comp, next != NULL ? dflags :
		    flags | O_NOFOLLOW | O_CLOEXEC, 0);
		if (nfd < 0) {
			r = -errno;
			if (r == -ENOTDIR || r == -ELOOP) {
				struct stat st;

				if (fstatat(fd, comp, &st,
				    AT_SYMLINK_NOFOLLOW) == 0 &&
				    S_ISLNK(st.st_mode))
					r = -ELOOP;
			}
			goto out;
		}
		close(fd);
		fd = nfd;
		comp = next;
	}
	r = fd;
	fd = -1;
out:
	if (fd >= 0)
		close(fd);
	free(copy);
	return r;
}

static int open_beneath(int root, const char *relpath, int flags);

int
beneath_open(int root, const char *relpath, int flags)
{
	int fd = open_beneath(root, relpath, flags);

	/* A symlink where a directory was asked for answers ENOTDIR
	 * (O_DIRECTORY wins over O_NOFOLLOW): say what it is. */
	if (fd == -ENOTDIR && (flags & O_DIRECTORY) != 0) {
		int probe = open_beneath(root, relpath, O_PATH);
		struct stat st;

		if (probe == -ELOOP)
			return -ELOOP;
		if (probe >= 0) {
			if (fstat(probe, &st) == 0 && S_ISLNK(st.st_mode))
				fd = -ELOOP;
			close(probe);
		}
	}
	return fd;
}

static int
open_beneath(int root, const char *relpath, int flags)
{
	struct open_how how = {
		.flags = (unsigned)(flags | O_CLOEXEC | O_NOFOLLOW),
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		    RESOLVE_NO_MAGICLINKS,
	};
	const char *path = relpath[0] == '\0' ? "." : relpath;
	long fd;

	if (!openat2_missing && getenv("TREESYNC_NO_OPENAT2") == NULL) {
		fd = syscall(SYS_openat2, root, path, &how, sizeof how);
		if (fd >= 0)
			return (int)fd;
		if (errno != ENOSYS && errno != EPERM)
			return -errno;
		/* EPERM: seccomp profiles that predate openat2 deny it
		 * so; the walk reports a real permission error itself. */
		if (errno == ENOSYS)
			openat2_missing = true;
	}
	return walk(root, path, flags);
}

int
beneath_open_parent(int root, const char *relpath, const char **base)
{
	const char *slash = strrchr(relpath, '/');
	char parent[4096];

	if (relpath[0] == '\0')
		return -EINVAL;
	if (slash == NULL) {
		*base = relpath;
		return beneath_open(root, "", O_RDONLY | O_DIRECTORY);
	}
	if ((size_t)(slash - relpath) >= sizeof parent)
		return -ENAMETOOLONG;
	memcpy(parent, relpath, (size_t)(slash - relpath));
	parent[slash - relpath] = '\0';
	*base = slash + 1;
	return beneath_open(root, parent, O_RDONLY | O_DIRECTORY);
}

/* Appends the components of path to rel (which holds *len bytes),
 * dropping empty and "." ones. */
static int
append_components(const char *path, char *rel, size_t size, size_t *len)
{
	const char *p = path;

	while (*p != '\0') {
		const char *end = strchrnul(p, '/');
		size_t n = (size_t)(end - p);

		if (n == 2 && p[0] == '.' && p[1] == '.')
			return -EXDEV;
		if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (*len + (*len > 0) + n + 1 > size)
				return -ENAMETOOLONG;
			if (*len > 0)
				rel[(*len)++] = '/';
			memcpy(rel + *len, p, n);
			*len += n;
			rel[*len] = '\0';
		}
		p = *end == '/' ? end + 1 : end;
	}
	return 0;
}

int
beneath_relative_dest(const char *dir, const char *arg, char *rel,
    size_t size)
{
	char clean_dir[4096], clean_arg[4096];
	size_t dlen = 0, alen = 0;
	int r;

	if (size == 0)
		return -ENAMETOOLONG;
	rel[0] = '\0';
	if (arg[0] == '\0')
		return -EINVAL;
	clean_dir[0] = clean_arg[0] = '\0';
	if ((r = append_components(dir, clean_dir, sizeof clean_dir,
	    &dlen)) < 0)
		return r == -EXDEV ? -EINVAL : r;
	if (arg[0] != '/') {
		size_t len = 0;

		return append_components(arg, rel, size, &len);
	}
	if ((r = append_components(arg, clean_arg, sizeof clean_arg,
	    &alen)) < 0)
		return r;
	/* Both are now "a/b/c" without the leading '/'. */
	if (dlen == 0) {
		if (alen + 1 > size)
			return -ENAMETOOLONG;
		memcpy(rel, clean_arg, alen + 1);
		return 0;
	}
	if (alen < dlen || memcmp(clean_arg, clean_dir, dlen) != 0 ||
	    (alen > dlen && clean_arg[dlen] != '/'))
		return -EXDEV;
	if (alen == dlen)
		return 0;
	if (alen - dlen > size)
		return -ENAMETOOLONG;
	memcpy(rel, clean_arg + dlen + 1, alen - dlen);
	return 0;
}
