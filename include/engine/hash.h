/*
 * hash — content hashes (xxh3-64) of files, for compare = "hash".
 * Stateless; worker threads only. Streams with a fixed buffer.
 */
#ifndef TREESYNC_HASH_H
#define TREESYNC_HASH_H

#include <stdint.h>

/* Hashes the regular file name in dir (O_NOFOLLOW). 0 or -errno. */
int hash_file(int dir, const char *name, uint64_t *out);

#endif
