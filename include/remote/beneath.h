/*
 * beneath — opening paths beneath a root directory fd so that nothing on
 * the way is a symlink and nothing leads out: openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), or, where the kernel (or a
 * seccomp filter) has no openat2, a walk one component at a time with
 * O_NOFOLLOW that refuses ".." and absolute paths the same way. And the
 * lexical check of a destination a client names against DIR.
 *
 * Stateless but for remembering that openat2 is missing; single-threaded
 * callers (treesync-remote).
 */
#ifndef TREESYNC_REMOTE_BENEATH_H
#define TREESYNC_REMOTE_BENEATH_H

#include <stddef.h>

/*
 * Opens relpath ("" or "." for the root itself) beneath root with flags
 * (O_CLOEXEC and O_NOFOLLOW are added). An fd, or -errno: -ELOOP for a
 * symlink on the way (the last component included), -EXDEV for a path that
 * leads out.
 */
int beneath_open(int root, const char *relpath, int flags);

/*
 * Opens the directory that holds relpath's last component (the root for a
 * single name) and points *base at that name inside relpath. An fd or
 * -errno (-EINVAL for an empty relpath).
 */
int beneath_open_parent(int root, const char *relpath, const char **base);

/*
 * The destination a client named (arg: absolute, equal to or beneath dir;
 * or relative to dir) as a clean relative path in rel ("" for dir itself):
 * repeated and trailing slashes and "." components dropped. 0, -EXDEV (not
 * beneath dir, or a ".." component), -EINVAL (empty), -ENAMETOOLONG.
 * dir: absolute, as written in authorized_keys.
 */
int beneath_relative_dest(const char *dir, const char *arg, char *rel,
    size_t size);

#endif
