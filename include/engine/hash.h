/*
 * hash — content hashes (xxh3-64) of files, for compare = "hash".
 * Stateless; worker threads only. Streams with a fixed buffer.
 */
#ifndef TREESYNC_HASH_H
#define TREESYNC_HASH_H

#include <stdbool.h>
#include <stdint.h>

/* Hashes the regular file name in dir (O_NOFOLLOW). 0 or -errno. */
int hash_file(int dir, const char *name, uint64_t *out);
/*
 * Compares the content of name in src_dir and in dst_dir by their
 * hashes (rules.h's RULE_HASH). 0 with *same set, or the source side's
 * -errno; a destination that cannot be hashed differs.
 */
int hash_same(int src_dir, int dst_dir, const char *name, bool *same);

#endif
