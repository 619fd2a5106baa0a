/*
 * fsops — the tree operations of treesync-remote's ops protocol, on
 * directory fds beneath the session root: deleting and counting a tree and
 * removing leftover temporaries, never following a symlink and never
 * entering another file system.
 *
 * Stateless; single-threaded callers. Every function returns 0 or -errno
 * and goes on past an entry it cannot remove (the first error is what it
 * returns).
 */
#ifndef TREESYNC_REMOTE_FSOPS_H
#define TREESYNC_REMOTE_FSOPS_H

#include <stdbool.h>
#include <stdint.h>

/*
 * Removes name (in dir) and, for a directory, everything beneath it,
 * deepest first. A missing name is success. A directory on another file
 * system than dir (a mount point) is left: -EBUSY. *count += entries
 * removed.
 */
int fsops_delete_tree(int dir, const char *name, uint64_t *count);

/* *count = entries of name's tree (name included), stopping past limit;
 * 0 for a missing name. */
int fsops_count_tree(int dir, const char *name, uint64_t limit,
    uint64_t *count);

/*
 * Removes, in the directory root (and with tree, every directory beneath
 * it), each entry of the temporary shape whose tag is not tag (tag NULL:
 * any tag), and with partial each REMOTE_PROTO_PARTIAL_DIR directory.
 * *removed += entries removed.
 */
int fsops_clean(int root, const char *tag, bool tree, bool partial,
    uint64_t *removed);

#endif
