/*
 * hash — see include/engine/hash.h.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine/fsutil.h"
#include "engine/hash.h"

#define HASH_BUF_SIZE (128 * 1024)


int
hash_file(int dir, const char *name, uint64_t *out)
{
	XXH3_state_t *state = NULL;
	unsigned char *buf = NULL;
	struct stat st;
	int fd, r;

	if ((fd = fsutil_open_read(dir, name)) < 0)
		return fd;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -EINVAL;	/* same choice as copy_file_atomic */
		goto out;
	}
	state = XXH3_createState();
	buf = malloc(HASH_BUF_SIZE);
	if (state == NULL || buf == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (XXH3_64bits_reset(state) != XXH_OK) {
		r = -EINVAL;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, HASH_BUF_SIZE);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out;
		}
		if (n == 0)
			break;
		XXH3_64bits_update(state, buf, (size_t)n);
	}
	*out = XXH3_64bits_digest(state);
	r = 0;
out:
	XXH3_freeState(state);
	free(buf);
	close(fd);
	return r;
}

int
hash_same(int src_dir, int dst_dir, const char *name, bool *same)
{
	uint64_t hs, hd;
	int r;

	*same = false;
	if ((r = hash_file(src_dir, name, &hs)) < 0)
		return r;
	*same = hash_file(dst_dir, name, &hd) == 0 && hs == hd;
	return 0;
}
