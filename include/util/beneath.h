/*
 * beneath — opening a path relative to a root fd so that it cannot lead
 * outside the root: no symlink anywhere on the way, no "..", no absolute
 * path (SPEC guarantee 3). The one implementation every layer uses.
 *
 * openat2(RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH) where the kernel has it;
 * where it does not (Linux < 5.6, valgrind, a seccomp filter that answers
 * ENOSYS or EPERM), a walk one component at a time with O_NOFOLLOW that
 * refuses ".." and absolute paths the same way. Any thread.
 */
#ifndef TREESYNC_BENEATH_H
#define TREESYNC_BENEATH_H

/*
 * Opens relpath ("" or "." for the root itself) beneath root_fd with
 * flags (O_NOFOLLOW and O_CLOEXEC are always added; O_CREAT is not
 * supported). Returns an fd or -errno (-EXDEV for ".." or an absolute
 * path, -ELOOP for a symlink on the way, as openat2 says them).
 * TREESYNC_NO_OPENAT2 in the environment forces the walk (tests).
 */
int open_beneath(int root_fd, const char *relpath, int flags);

#endif
