/*
 * beneath — see include/remote/beneath.h.
 *
 * Opening is util/beneath.c's open_beneath, the one rule of the whole
 * project (linked into this libc-only program); what is here is the
 * remote side's own: the parent of a path and the lexical check of a
 * destination argument against DIR.
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
#include "util/beneath.h"

int
beneath_open(int root, const char *relpath, int flags)
{
	return open_beneath(root, relpath, flags);
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
