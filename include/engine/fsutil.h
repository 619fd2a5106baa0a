/*
 * fsutil — small file-system helpers shared by the worker-side modules
 * (scan, copy, hash): the compact per-entry metadata, opening a source
 * file for reading, and the temporary-name rule. (Opening beneath a root
 * is util/beneath.h; path strings are util/path.h.)
 *
 * Stateless apart from the process's temporary prefix, which main.c sets
 * once before any worker starts; safe from any thread after that.
 */
#ifndef TREESYNC_FSUTIL_H
#define TREESYNC_FSUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Every temporary in a destination starts with this (SPEC guarantee 2). */
#define TEMP_PREFIX ".treesync."

/* What we keep of an lstat: enough to compare and to restore metadata. */
typedef struct FileMeta {
	uint64_t dev;
	uint64_t ino;
	int64_t size;
	int64_t mtime_sec;
	int64_t atime_sec;
	int32_t mtime_nsec;
	int32_t atime_nsec;
	uint32_t mode;		/* type and permission bits */
	uint32_t uid;
	uint32_t gid;
	uint32_t nlink;
	uint64_t rdev;
	int64_t ctime_sec;
	int32_t ctime_nsec;
} FileMeta;

void fsutil_meta_from_stat(const struct stat *st, FileMeta *out);

/*
 * Sets this process's temporary prefix: TEMP_PREFIX plus a random tag
 * unique to this run, so a scan can tell our in-flight temporaries
 * from an earlier crash's leftovers.
 */
void fsutil_init_temp_tag(void);
/* Writes a fresh temporary name ("<prefix><tag>.<counter>") into buf. */
void fsutil_temp_name(char *buf, size_t size);
/* True for any name starting with TEMP_PREFIX. */
bool fsutil_is_temp_name(const char *name);
/* True for a temporary of this run (not a crash leftover). */
bool fsutil_is_own_temp(const char *name);

/*
 * Opens name in dir for reading: O_NOFOLLOW, O_NONBLOCK (a FIFO swapped
 * in cannot block a worker), O_NOATIME where we may (owner or
 * CAP_FOWNER; without it on EPERM). Returns an fd or -errno.
 */
int fsutil_open_read(int dir, const char *name);

#endif
