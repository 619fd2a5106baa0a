/*
 * beneath — see include/util/beneath.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util/beneath.h"

/* The walk: every component but the last as an O_PATH directory, the
 * last with the caller's flags, each with O_NOFOLLOW. */
static int
open_walk(int root_fd, const char *path, int flags)
{
	const int dirflags = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	char *copy = NULL, *comp, *next, *save = NULL;
	int fd, r;

	if (path[0] == '/')
		return -EXDEV;
	if ((fd = openat(root_fd, ".", dirflags)) < 0)
		return -errno;
	if ((copy = strdup(path)) == NULL) {
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
		if (strcmp(comp, ".") == 0 && next != NULL) {
			comp = next;
			continue;
		}
		nfd = openat(fd, comp, next != NULL ? dirflags :
		    flags | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			struct stat st;

			/* A symlink answers ELOOP, as openat2 says it (an
			 * O_DIRECTORY open of one says ENOTDIR). */
			r = -errno;
			if ((r == -ENOTDIR || r == -ELOOP) && fstatat(fd, comp,
			    &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
				r = -ELOOP;
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

/* Set once openat2 answered ENOSYS; never cleared. */
static atomic_bool openat2_missing;

static int
open_raw(int root_fd, const char *relpath, int flags)
{
	struct open_how how = {
		.flags = (unsigned long long)(flags | O_NOFOLLOW | O_CLOEXEC),
		.mode = 0,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH,
	};
	const char *path = relpath[0] == '\0' ? "." : relpath;
	long fd;

	/* Read per call so tests can toggle it; getenv is cheap and
	 * thread-safe as long as nobody calls setenv concurrently. */
	if (getenv("TREESYNC_NO_OPENAT2") != NULL ||
	    atomic_load_explicit(&openat2_missing, memory_order_relaxed))
		return open_walk(root_fd, path, flags);
	fd = syscall(SYS_openat2, root_fd, path, &how, sizeof how);
	if (fd >= 0)
		return (int)fd;
	/* ENOSYS: remembered, so a kernel (or valgrind) without openat2
	 * costs one failed call, not one per directory. EPERM: older
	 * container seccomp profiles deny unknown syscalls with it; the
	 * walk reports any real permission error itself. */
	if (errno == ENOSYS)
		atomic_store_explicit(&openat2_missing, true,
		    memory_order_relaxed);
	if (errno == ENOSYS || errno == EPERM)
		return open_walk(root_fd, path, flags);
	return -errno;
}

int
open_beneath(int root_fd, const char *relpath, int flags)
{
	int fd = open_raw(root_fd, relpath, flags);

	/* A symlink where a directory was asked for may answer ENOTDIR
	 * (O_DIRECTORY wins over O_NOFOLLOW): say what it is, one answer
	 * whichever way the path was resolved. */
	if (fd == -ENOTDIR && (flags & O_DIRECTORY) != 0) {
		int probe = open_raw(root_fd, relpath, O_PATH);
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
