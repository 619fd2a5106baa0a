/*
 * guard — see include/engine/guard.h.
 *
 * A source root that is unmounted leaves the (usually empty) mount point
 * in its place; one that is deleted leaves nothing; one that is swapped
 * leaves another inode. To a compare pass all three look like "delete
 * everything in the destination", which is never what the operator
 * meant, so they are faults that stop deletes until the source is back.
 *
 * "Back" means: the same device and inode as before, or, for a root that
 * was a mount point, a mount point again (a tmpfs remounted gets a new
 * device number). Anything else needs the operator's word
 * (treesyncctl resync --force), which takes the new root as it is.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/fsutil.h"
#include "engine/guard.h"

/* True when the directory fd is the root of a mounted file system. */
static bool
is_mount_root(int fd, const struct stat *st)
{
	struct stat up;
#ifdef STATX_ATTR_MOUNT_ROOT
	struct statx sx;

	if (statx(fd, "", AT_EMPTY_PATH, 0, &sx) == 0 &&
	    (sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
#endif
	/* Older kernels: the parent is on another device. */
	if (fstatat(fd, "..", &up, 0) < 0)
		return false;
	return up.st_dev != st->st_dev || up.st_ino == st->st_ino;
}

/* 1: the directory has an entry that is not a temporary; 0: none. */
static int
has_entries(int fd)
{
	DIR *d;
	struct dirent *de;
	int dup_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int found = 0;

	if (dup_fd < 0)
		return -errno;
	if ((d = fdopendir(dup_fd)) == NULL) {
		int r = -errno;
		close(dup_fd);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0 ||
		    fsutil_is_temp_name(de->d_name))
			continue;
		found = 1;
		break;
	}
	closedir(d);
	return found;
}

GuardFault
guard_check_source(int src_fd, int src_err, int dst_fd,
    const SourceIdentity *expect, bool check_empty, SourceIdentity *seen)
{
	struct stat st;

	memset(seen, 0, sizeof *seen);
	(void)src_err;
	if (src_fd < 0 || fstat(src_fd, &st) < 0 || !S_ISDIR(st.st_mode))
		return GUARD_VANISHED;
	seen->known = true;
	seen->dev = (uint64_t)st.st_dev;
	seen->ino = (uint64_t)st.st_ino;
	seen->mount_root = is_mount_root(src_fd, &st);
	if (expect != NULL && expect->known &&
	    (seen->dev != expect->dev || seen->ino != expect->ino)) {
		if (expect->mount_root && !seen->mount_root)
			return GUARD_UNMOUNTED;
		if (!(expect->mount_root && seen->mount_root))
			return GUARD_REPLACED;
		/* Remounted: a file system is on it again. */
	}
	if (check_empty && dst_fd >= 0 && has_entries(src_fd) == 0 &&
	    has_entries(dst_fd) == 1)
		return GUARD_EMPTY;
	return GUARD_OK;
}

const char *
guard_fault_text(GuardFault f)
{
	switch (f) {
	case GUARD_OK:
		return "is sound";
	case GUARD_VANISHED:
		return "is gone (cannot be opened as a directory)";
	case GUARD_UNMOUNTED:
		return "was unmounted (no file system is mounted on it any "
		    "more)";
	case GUARD_REPLACED:
		return "is another directory than the one the pair started "
		    "with (its device or inode changed)";
	case GUARD_EMPTY:
		return "is empty while its destination is not";
	}
	return "?";
}

uint64_t
guard_delete_budget(const MaxDelete *md, uint64_t dst_entries)
{
	switch (md->kind) {
	case MAX_DELETE_NONE:
		break;
	case MAX_DELETE_COUNT:
		return md->value;
	case MAX_DELETE_PERCENT:
		/* Rounded down: "10%" of 9 entries allows none. */
		return dst_entries * md->value / 100;
	}
	return UINT64_MAX;
}

/* Adds the entries beneath the open directory fd to *count. */
static int
count_dir(int fd, uint64_t limit, uint64_t *count)
{
	DIR *d = fdopendir(fd);
	struct dirent *de;
	int r = 0;

	if (d == NULL) {
		r = -errno;
		close(fd);
		return r;
	}
	while (*count <= limit && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if ((r = guard_count_tree(dirfd(d), de->d_name, limit,
		    count)) < 0)
			break;
	}
	closedir(d);
	return r;
}

int
guard_count_tree(int dir, const char *name, uint64_t limit, uint64_t *count)
{
	struct stat st;
	int fd;

	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	/* The directory itself is an entry, except a root passed as ".". */
	if (strcmp(name, ".") != 0)
		(*count)++;
	if (!S_ISDIR(st.st_mode) || *count > limit)
		return 0;
	fd = openat(dir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;	/* unreadable: counted as the one entry */
	return count_dir(fd, limit, count);
}
