/*
 * rootid — the destination root's identity a client pins (st_dev:st_ino,
 * decimal, from a PROBE) and passes back as --root-id, so a root that was
 * replaced between two connections is refused instead of written.
 * Header only; pure but for the fstat.
 */
#ifndef TREESYNC_REMOTE_ROOTID_H
#define TREESYNC_REMOTE_ROOTID_H

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

typedef struct RootId {
	bool set;
	uint64_t dev;
	uint64_t ino;
} RootId;

/* "DEV:INO" → *out. 0 or -EINVAL. */
static inline int
rootid_parse(const char *s, RootId *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	out->dev = strtoull(s, &end, 10);
	if (errno != 0 || *end != ':' || end[1] < '0' || end[1] > '9')
		return -EINVAL;
	out->ino = strtoull(end + 1, &end, 10);
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	out->set = true;
	return 0;
}

/* 0 when fd is the pinned root (or nothing is pinned), -ESTALE when it is
 * another directory, -errno when it cannot be looked at. */
static inline int
rootid_check(int fd, const RootId *expect)
{
	struct stat st;

	if (!expect->set)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_dev != expect->dev ||
	    (uint64_t)st.st_ino != expect->ino)
		return -ESTALE;
	return 0;
}

#endif
