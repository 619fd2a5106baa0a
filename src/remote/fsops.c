/*
 * fsops — see include/remote/fsops.h.
 *
 * Each level of a walk holds one directory fd (opened O_NOFOLLOW relative
 * to its parent's fd), so a directory swapped for a symlink while we walk
 * is never entered: its open fails (ELOOP / ENOTDIR) and the entry is
 * removed as the symlink it now is, or reported.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dest/remote-proto.h"
#include "remote/fsops.h"

#define DIR_FLAGS (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

static void
keep_first(int *r, int err)
{
	if (*r == 0 && err < 0)
		*r = err;
}

/* unlinkat, once more after giving ourselves write permission on the
 * directory when it is ours and read-only (a mirrored 0555 directory). */
static int
remove_entry(int dir, const char *name, int flags)
{
	struct stat st;

	if (unlinkat(dir, name, flags) == 0)
		return 0;
	if (errno == ENOENT)
		return 0;
	if (errno != EACCES || fstat(dir, &st) < 0 || st.st_uid != geteuid() ||
	    fchmod(dir, (st.st_mode & 07777) | S_IRWXU) < 0 ||
	    unlinkat(dir, name, flags) < 0)
		return errno == ENOENT ? 0 : -errno;
	return 0;
}

static int
delete_at(int dir, const char *name, dev_t dev, uint64_t *count)
{
	struct stat st;
	struct dirent *de;
	DIR *d = NULL;
	int fd, r = 0;

	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode)) {
		if ((r = remove_entry(dir, name, 0)) == 0)
			(*count)++;
		return r;
	}
	if (st.st_dev != dev)
		return -EBUSY;
	if ((fd = openat(dir, name, DIR_FLAGS)) < 0) {
		/* Swapped for a symlink or a file since the fstatat: that
		 * is what the name is now, and what goes (once: a name that
		 * keeps changing is reported, not chased). */
		if (errno != ELOOP && errno != ENOTDIR)
			return errno == ENOENT ? 0 : -errno;
		if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return errno == ENOENT ? 0 : -errno;
		if (S_ISDIR(st.st_mode))
			return -ELOOP;
		if ((r = remove_entry(dir, name, 0)) == 0)
			(*count)++;
		return r;
	}
	if ((d = fdopendir(fd)) == NULL) {
		r = -errno;
		close(fd);
		return r;
	}
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		keep_first(&r, delete_at(fd, de->d_name, dev, count));
		errno = 0;
	}
	if (errno != 0)
		keep_first(&r, -errno);
	closedir(d);
	if (r == 0 && (r = remove_entry(dir, name, AT_REMOVEDIR)) == 0)
		(*count)++;
	return r;
}

int
fsops_delete_tree(int dir, const char *name, uint64_t *count)
{
	struct stat st;

	if (fstat(dir, &st) < 0)
		return -errno;
	return delete_at(dir, name, st.st_dev, count);
}

static int
count_at(int dir, const char *name, dev_t dev, uint64_t limit,
    uint64_t *count)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int fd, r = 0;

	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	(*count)++;
	if (!S_ISDIR(st.st_mode) || st.st_dev != dev || *count > limit)
		return 0;
	if ((fd = openat(dir, name, DIR_FLAGS)) < 0)
		return errno == ENOENT || errno == ELOOP || errno == ENOTDIR ?
		    0 : -errno;
	if ((d = fdopendir(fd)) == NULL) {
		r = -errno;
		close(fd);
		return r;
	}
	while (*count <= limit && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		keep_first(&r, count_at(fd, de->d_name, dev, limit, count));
	}
	closedir(d);
	return r;
}

int
fsops_count_tree(int dir, const char *name, uint64_t limit, uint64_t *count)
{
	struct stat st;

	*count = 0;
	if (fstat(dir, &st) < 0)
		return -errno;
	return count_at(dir, name, st.st_dev, limit, count);
}

static int
clean_dir(int fd, dev_t dev, const char *tag, bool tree, bool partial,
    uint64_t *removed)
{
	struct dirent *de;
	DIR *d;
	int dup_fd, r = 0;

	if ((dup_fd = openat(fd, ".", DIR_FLAGS)) < 0)
		return -errno;
	if ((d = fdopendir(dup_fd)) == NULL) {
		r = -errno;
		close(dup_fd);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		const char *name = de->d_name;
		bool same_tag;
		struct stat st;
		int sub;

		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (remote_proto_is_temp_name(name, tag, &same_tag)) {
			if (!same_tag)
				keep_first(&r, delete_at(fd, name, dev,
				    removed));
			continue;
		}
		if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode) || st.st_dev != dev)
			continue;
		if (partial && strcmp(name, REMOTE_PROTO_PARTIAL_DIR) == 0) {
			keep_first(&r, delete_at(fd, name, dev, removed));
			continue;
		}
		if (!tree)
			continue;
		if ((sub = openat(fd, name, DIR_FLAGS)) < 0)
			continue;	/* swapped, gone or unreadable: not ours */
		keep_first(&r, clean_dir(sub, dev, tag, tree, partial,
		    removed));
		close(sub);
	}
	closedir(d);
	return r;
}

int
fsops_clean(int root, const char *tag, bool tree, bool partial,
    uint64_t *removed)
{
	struct stat st;

	if (fstat(root, &st) < 0)
		return -errno;
	return clean_dir(root, st.st_dev, tag, tree, partial, removed);
}
