/*
 * fsutil — see include/engine/fsutil.h.
 *
 * The only mutable state is the temporary-name tag (written once under
 * pthread_once) and an atomic counter; everything else is thread-safe.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine/fsutil.h"

#define TEMP_TAG_LEN 8

static pthread_once_t temp_tag_once = PTHREAD_ONCE_INIT;
static char temp_tag[TEMP_TAG_LEN + 1];
static atomic_uint_fast64_t temp_counter;

void
fsutil_meta_from_stat(const struct stat *st, FileMeta *out)
{
	memset(out, 0, sizeof *out);
	out->dev = st->st_dev;
	out->ino = st->st_ino;
	out->size = st->st_size;
	out->mtime_sec = st->st_mtim.tv_sec;
	out->mtime_nsec = (int32_t)st->st_mtim.tv_nsec;
	out->atime_sec = st->st_atim.tv_sec;
	out->atime_nsec = (int32_t)st->st_atim.tv_nsec;
	out->ctime_sec = st->st_ctim.tv_sec;
	out->ctime_nsec = (int32_t)st->st_ctim.tv_nsec;
	out->mode = st->st_mode;
	out->uid = st->st_uid;
	out->gid = st->st_gid;
	out->nlink = (uint32_t)st->st_nlink;
	out->rdev = st->st_rdev;
}

/* Picks the run's tag; getrandom must not block at early boot, so fall
 * back to pid and clock, which are unique enough between runs. */
static void
pick_temp_tag(void)
{
	uint32_t v;

	if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		v = (uint32_t)getpid() * 2654435761u ^ (uint32_t)ts.tv_nsec ^
		    (uint32_t)ts.tv_sec;
	}
	snprintf(temp_tag, sizeof temp_tag, "%08x", (unsigned)v);
}

void
fsutil_init_temp_tag(void)
{
	pthread_once(&temp_tag_once, pick_temp_tag);
}

/* At most 10 + 8 + 1 + 16 = 35 bytes: destination names may be 255. */
void
fsutil_temp_name(char *buf, size_t size)
{
	uint64_t n;

	fsutil_init_temp_tag();
	n = atomic_fetch_add_explicit(&temp_counter, 1, memory_order_relaxed);
	snprintf(buf, size, TEMP_PREFIX "%s.%" PRIx64, temp_tag, n);
}

bool
fsutil_is_temp_name(const char *name)
{
	return strncmp(name, TEMP_PREFIX, sizeof TEMP_PREFIX - 1) == 0;
}

bool
fsutil_is_own_temp(const char *name)
{
	fsutil_init_temp_tag();
	if (!fsutil_is_temp_name(name))
		return false;
	name += sizeof TEMP_PREFIX - 1;
	return strncmp(name, temp_tag, TEMP_TAG_LEN) == 0 &&
	    name[TEMP_TAG_LEN] == '.';
}

int
fsutil_open_read(int dir, const char *name)
{
	const int flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
	    O_NOCTTY;
	int fd;

	fd = openat(dir, name, flags | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = openat(dir, name, flags);
	return fd < 0 ? -errno : fd;
}

