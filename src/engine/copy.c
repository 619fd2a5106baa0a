/*
 * copy — see include/engine/copy.h.
 *
 * Every call works on names relative to directory fds with O_NOFOLLOW /
 * AT_SYMLINK_NOFOLLOW, so a symlink swapped into a destination cannot lead
 * a write outside its root. A temporary is removed on every failure path.
 *
 * Test hook: when the environment variable TREESYNC_NO_COPY_FILE_RANGE is
 * set (any value), file data goes through the pread/pwrite fallback. It is
 * read once per copy, so tests can toggle it between calls.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/copy.h"

/* Longer than any fsutil_temp_name result (35 bytes). */
#define TEMP_NAME_SIZE 64
/* The read/write fallback's buffer, allocated only when it is needed. */
#define FALLBACK_BUF_SIZE (256 * 1024)
/* Per copy_file_range call: small enough that a stop request is seen
 * within a fraction of a second (copy_abandon), large enough that the
 * syscall count does not matter (a small file is one call either way). */
#define CFR_CHUNK ((size_t)32 << 20)

/* Set once by copy_abandon, never cleared: the process is stopping. */
static atomic_bool abandon;

void
copy_abandon(void)
{
	atomic_store_explicit(&abandon, true, memory_order_relaxed);
}

static bool
abandoned(void)
{
	return atomic_load_explicit(&abandon, memory_order_relaxed);
}

/* State of one file's data copy. */
struct data_copy {
	int src;
	int dst;
	bool fallback;		/* copy_file_range unusable: pread/pwrite */
	bool short_source;	/* source ended early: it shrank meanwhile */
	char *buf;		/* FALLBACK_BUF_SIZE, lazily allocated */
	uint64_t copied;
};

static bool
cfr_wants_fallback(int err)
{
	return err == EXDEV || err == EINVAL || err == ENOSYS ||
	    err == EOPNOTSUPP || err == EBADF;
}

/* Copies [off, off + len) with pread/pwrite through the shared buffer. */
static int
copy_range_rw(struct data_copy *dc, off_t off, off_t len)
{
	if (dc->buf == NULL && (dc->buf = malloc(FALLBACK_BUF_SIZE)) == NULL)
		return -ENOMEM;
	while (len > 0) {
		size_t want = len > FALLBACK_BUF_SIZE ? FALLBACK_BUF_SIZE :
		    (size_t)len;
		ssize_t n;
		size_t done = 0;

		if (abandoned())
			return -ECANCELED;
		n = pread(dc->src, dc->buf, want, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			dc->short_source = true;
			return 0;
		}
		while (done < (size_t)n) {
			ssize_t w = pwrite(dc->dst, dc->buf + done,
			    (size_t)n - done, off + (off_t)done);

			if (w < 0) {
				if (errno == EINTR)
					continue;
				return -errno;
			}
			if (w == 0)
				return -EIO;
			done += (size_t)w;
		}
		off += n;
		len -= n;
		dc->copied += (uint64_t)n;
	}
	return 0;
}

/* Copies [off, off + len) at the same offset in the temporary; switches
 * to pread/pwrite for good where copy_file_range cannot do the job
 * (cross-device on old kernels, file systems without support). */
static int
copy_range(struct data_copy *dc, off_t off, off_t len)
{
	while (len > 0 && !dc->fallback) {
		size_t want = (uint64_t)len > CFR_CHUNK ? CFR_CHUNK :
		    (size_t)len;
		loff_t in = off, out = off;
		ssize_t n;

		if (abandoned())
			return -ECANCELED;
		n = copy_file_range(dc->src, &in, dc->dst, &out, want, 0);
		if (n > 0) {
			off += n;
			len -= n;
			dc->copied += (uint64_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		/* 0 before the end: some file systems (procfs-like, some
		 * FUSE) report nothing; the fallback tells that apart from
		 * a source that really shrank. */
		if (n == 0 || cfr_wants_fallback(errno))
			dc->fallback = true;
		else
			return -errno;
	}
	if (len > 0)
		return copy_range_rw(dc, off, len);
	return 0;
}

/* Copies the data segments of the first size bytes, skipping holes;
 * the caller's ftruncate makes the trailing hole. */
static int
copy_data(struct data_copy *dc, off_t size)
{
	bool seek_ok = true;
	off_t pos = 0;
	int r;

	while (pos < size && !dc->short_source) {
		off_t data = pos, hole = size;

		/* Many small data segments: each is a step too. */
		if (abandoned())
			return -ECANCELED;
		if (seek_ok) {
			data = lseek(dc->src, pos, SEEK_DATA);
			if (data < 0) {
				if (errno == ENXIO)
					break;	/* only a hole remains */
				if (errno != EINVAL && errno != EOPNOTSUPP)
					return -errno;
				/* No SEEK_DATA here: everything is data. */
				seek_ok = false;
				data = pos;
			} else {
				hole = lseek(dc->src, data, SEEK_HOLE);
				if (hole < 0) {
					if (errno != ENXIO)
						return -errno;
					hole = size;	/* shrank: caught later */
				}
			}
		}
		if (data >= size)
			break;
		if (hole > size)
			hole = size;
		if ((r = copy_range(dc, data, hole - data)) < 0)
			return r;
		pos = hole;
	}
	return 0;
}


static bool
same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

/*
 * A source that is not a regular file (it changed type since the scan)
 * is -EINVAL. The scan saw a regular file, so no lstat first (one
 * syscall per file saved); O_NONBLOCK keeps a FIFO swapped in since from
 * blocking the open, and the fstat after it refuses anything else.
 */
int
copy_file_atomic(int src_dir, const char *src_name, int dst_dir,
    const char *dst_name, const CopyOptions *opt, uint64_t *bytes,
    FileMeta *dst_meta)
{
	struct data_copy dc = { .src = -1, .dst = -1 };
	char tmp[TEMP_NAME_SIZE];
	struct stat before, after, st;
	struct timespec times[2];
	bool have_tmp = false, sparse;
	mode_t create_mode;
	int r;

	if ((dc.src = fsutil_open_read(src_dir, src_name)) < 0)
		return dc.src;
	dc.fallback = getenv("TREESYNC_NO_COPY_FILE_RANGE") != NULL;
	if (fstat(dc.src, &before) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(before.st_mode)) {
		r = -EINVAL;
		goto out;
	}

	fsutil_temp_name(tmp, sizeof tmp);
	/* With umask 0 the permission bits are right from the start, and
	 * only setuid/setgid/sticky need the fchmod below. */
	create_mode = opt != NULL && opt->umask_zero ?
	    (before.st_mode & 0777) : 0600;
	dc.dst = openat(dst_dir, tmp,
	    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, create_mode);
	if (dc.dst < 0) {
		r = -errno;
		goto out;
	}
	have_tmp = true;

	/* Fewer allocated bytes than the size: there may be holes to keep.
	 * Otherwise one copy_file_range over the whole file does it. */
	sparse = (off_t)before.st_blocks * 512 < before.st_size;
	r = sparse ? copy_data(&dc, before.st_size) :
	    copy_range(&dc, 0, before.st_size);
	if (r == -ECANCELED && bytes != NULL)
		*bytes = dc.copied;	/* for the "abandoned" log line */
	if (r < 0)
		goto out;
	if (dc.short_source) {
		r = COPY_SOURCE_CHANGED;
		goto out;
	}
	if (sparse && ftruncate(dc.dst, before.st_size) < 0) {
		r = -errno;
		goto out;
	}
	/* Owner first: chown clears setuid/setgid, chmod sets them back. */
	if (opt != NULL && opt->preserve_owner &&
	    fchown(dc.dst, before.st_uid, before.st_gid) < 0) {
		r = -errno;
		goto out;
	}
	if ((create_mode != (before.st_mode & 07777)) &&
	    fchmod(dc.dst, before.st_mode & 07777) < 0) {
		r = -errno;
		goto out;
	}
	times[0] = before.st_atim;
	times[1] = before.st_mtim;
	if (futimens(dc.dst, times) < 0) {
		r = -errno;
		goto out;
	}

	/* A writer during the copy may have left a mix of old and new
	 * data: do not publish it. */
	if (fstat(dc.src, &after) < 0) {
		r = -errno;
		goto out;
	}
	if (after.st_size != before.st_size ||
	    !same_time(&after.st_mtim, &before.st_mtim) ||
	    !same_time(&after.st_ctim, &before.st_ctim)) {
		r = COPY_SOURCE_CHANGED;
		goto out;
	}

	if (dst_meta != NULL && fstat(dc.dst, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (renameat(dst_dir, tmp, dst_dir, dst_name) < 0) {
		r = -errno;
		goto out;
	}
	have_tmp = false;
	if (bytes != NULL)
		*bytes = dc.copied;
	if (dst_meta != NULL)
		fsutil_meta_from_stat(&st, dst_meta);
	r = 0;
out:
	if (have_tmp)
		unlinkat(dst_dir, tmp, 0);
	if (dc.dst >= 0)
		close(dc.dst);
	close(dc.src);
	free(dc.buf);
	return r;
}

static void
meta_times(const FileMeta *meta, struct timespec times[2])
{
	times[0].tv_sec = meta->atime_sec;
	times[0].tv_nsec = meta->atime_nsec;
	times[1].tv_sec = meta->mtime_sec;
	times[1].tv_nsec = meta->mtime_nsec;
}

int
copy_symlink(int dst_dir, const char *dst_name, const char *target,
    const FileMeta *meta, const CopyOptions *opt)
{
	char tmp[TEMP_NAME_SIZE];
	bool have_tmp = false;
	int r;

	fsutil_temp_name(tmp, sizeof tmp);
	if (symlinkat(target, dst_dir, tmp) < 0)
		return -errno;
	have_tmp = true;
	if (meta != NULL && opt != NULL && opt->preserve_owner &&
	    fchownat(dst_dir, tmp, meta->uid, meta->gid,
	    AT_SYMLINK_NOFOLLOW) < 0) {
		r = -errno;
		goto out;
	}
	if (meta != NULL) {
		struct timespec times[2];

		/* Best effort: a symlink's times are not compared. */
		meta_times(meta, times);
		(void)utimensat(dst_dir, tmp, times, AT_SYMLINK_NOFOLLOW);
	}
	/* Over a directory this fails (EISDIR/ENOTDIR): the caller
	 * deletes the directory first. */
	if (renameat(dst_dir, tmp, dst_dir, dst_name) < 0) {
		r = -errno;
		goto out;
	}
	have_tmp = false;
	r = 0;
out:
	if (have_tmp)
		unlinkat(dst_dir, tmp, 0);
	return r;
}

/*
 * renameat between two names of one inode succeeds and does nothing
 * (POSIX), which would leave the temporary behind: so skip the work when
 * dst_name already is that inode, and unlink the temporary name after
 * the rename in any case (ENOENT there is the normal outcome).
 */
int
copy_hardlink(int existing_dir, const char *existing_name, int dst_dir,
    const char *dst_name)
{
	char tmp[TEMP_NAME_SIZE];
	struct stat a, b;
	int r;

	if (fstatat(existing_dir, existing_name, &a, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (fstatat(dst_dir, dst_name, &b, AT_SYMLINK_NOFOLLOW) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		return 0;

	fsutil_temp_name(tmp, sizeof tmp);
	if (linkat(existing_dir, existing_name, dst_dir, tmp, 0) < 0)
		return -errno;
	r = renameat(dst_dir, tmp, dst_dir, dst_name) < 0 ? -errno : 0;
	unlinkat(dst_dir, tmp, 0);
	return r;
}

int
copy_mkdir(int dst_dir, const char *name)
{
	struct stat st;

	if (mkdirat(dst_dir, name, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (fstatat(dst_dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -EEXIST;
}

/* chmod without following a symlink swapped in after our lstat. glibc
 * does AT_SYMLINK_NOFOLLOW through O_PATH and /proc/self/fd; only where
 * /proc is missing (EOPNOTSUPP) fall back to the plain call, whose race
 * window is the time since the caller's fstatat. */
static int
chmod_nofollow(int dir, const char *name, mode_t mode)
{
	if (fchmodat(dir, name, mode, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	return fchmodat(dir, name, mode, 0) < 0 ? -errno : 0;
}

/* Tries every step and returns the first error. */
int
copy_set_meta(int dst_dir, const char *name, const FileMeta *meta,
    const CopyOptions *opt)
{
	struct timespec times[2];
	struct stat st;
	bool chowned = false;
	int r = 0, e;

	if (fstatat(dst_dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	/* Owner first: chown clears setuid/setgid, chmod sets them back. */
	if (opt != NULL && opt->preserve_owner &&
	    (st.st_uid != meta->uid || st.st_gid != meta->gid)) {
		chowned = true;
		if (fchownat(dst_dir, name, meta->uid, meta->gid,
		    AT_SYMLINK_NOFOLLOW) < 0)
			r = -errno;
	}
	/* The mode as it is needs no chmod (through /proc, four syscalls):
	 * the live daemon restores a directory's mtime after every batch
	 * of new files in it. */
	if (!S_ISLNK(st.st_mode) && (chowned ||
	    (st.st_mode & 07777) != (meta->mode & 07777)) &&
	    (e = chmod_nofollow(dst_dir, name, meta->mode & 07777)) < 0 &&
	    r == 0)
		r = e;
	meta_times(meta, times);
	if (utimensat(dst_dir, name, times, AT_SYMLINK_NOFOLLOW) < 0 && r == 0)
		r = -errno;
	return r;
}

static bool
is_dot_or_dotdot(const char *n)
{
	return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'));
}

static int delete_entry(int dir, const char *name, uint64_t *count);

/*
 * Empties the directory name (in dir). Removing entries while readdir
 * runs may make some file systems skip entries, so passes repeat until
 * one removes nothing. Each level of recursion holds one fd, so the
 * depth is bounded by RLIMIT_NOFILE (deeper trees fail with -EMFILE and
 * are finished by a later retry once the upper levels are gone).
 */
static int
empty_dir(int dir, const char *name, uint64_t *count)
{
	const int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	DIR *d = NULL;
	struct stat st;
	int fd, r = 0;

	fd = openat(dir, name, flags);
	if (fd < 0 && errno == EACCES) {
		/* Not readable by us (no CAP_DAC_OVERRIDE): we own it in a
		 * destination we write, so grant ourselves u+rwx. */
		if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		if (!S_ISDIR(st.st_mode))
			return -ENOTDIR;
		if ((r = chmod_nofollow(dir, name,
		    (st.st_mode & 07777) | S_IRWXU)) < 0)
			return r;
		fd = openat(dir, name, flags);
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	/* Write and search permission are needed to unlink inside. */
	if ((st.st_mode & S_IRWXU) != S_IRWXU)
		(void)fchmod(fd, (st.st_mode & 07777) | S_IRWXU);
	if ((d = fdopendir(fd)) == NULL) {
		r = -errno;
		goto out;
	}
	fd = -1;	/* owned by d now */
	for (;;) {
		uint64_t removed = 0;
		struct dirent *de;

		for (;;) {
			uint64_t before = *count;
			int e;

			errno = 0;
			if ((de = readdir(d)) == NULL) {
				if (errno != 0 && r == 0)
					r = -errno;
				break;
			}
			if (is_dot_or_dotdot(de->d_name))
				continue;
			/* Go on after an error: remove what we can. */
			e = delete_entry(dirfd(d), de->d_name, count);
			if (e < 0 && r == 0)
				r = e;
			removed += *count - before;
		}
		if (r < 0 || removed == 0)
			break;
		rewinddir(d);
	}
out:
	if (d != NULL)
		closedir(d);
	if (fd >= 0)
		close(fd);
	return r;
}

static int
delete_entry(int dir, const char *name, uint64_t *count)
{
	int r, e;

	if (unlinkat(dir, name, 0) == 0) {
		(*count)++;
		return 0;
	}
	if (errno == ENOENT)
		return 0;
	/* Linux says EISDIR for a directory; POSIX allows EPERM. */
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	r = -errno;
	if ((e = empty_dir(dir, name, count)) < 0) {
		if (e == -ENOTDIR)
			return r;	/* not a directory: EPERM stands */
		return e == -ENOENT ? 0 : e;
	}
	if (unlinkat(dir, name, AT_REMOVEDIR) < 0)
		return errno == ENOENT ? 0 : -errno;
	(*count)++;
	return 0;
}

int
copy_delete_tree(int dst_dir, const char *name, uint64_t *count)
{
	uint64_t n = 0;
	int r;

	r = delete_entry(dst_dir, name, &n);
	if (count != NULL)
		*count = n;
	return r;
}
