/*
 * sandbox — confines treesync-remote, and the rsync it starts, so that
 * nothing outside DIR can be changed, whatever symlinks a local user plants
 * inside DIR. See the DESIGN comment in src/remote/sandbox.c for what each
 * mode guarantees and what it does not.
 *
 * Called once, before any request is served; single-threaded.
 */
#ifndef TREESYNC_REMOTE_SANDBOX_H
#define TREESYNC_REMOTE_SANDBOX_H

#include <stddef.h>

typedef enum SandboxMode {
	SANDBOX_AUTO,		/* mountns, else landlock, else refuse */
	SANDBOX_MOUNTNS,
	SANDBOX_LANDLOCK,
	SANDBOX_NONE,		/* only what openat2 and rsync itself do */
} SandboxMode;

/* "auto", "mountns", "landlock", "none". 0 or -EINVAL. */
int sandbox_parse_mode(const char *s, SandboxMode *out);

/*
 * Enters the sandbox around dir (absolute) and opens dir as seen from
 * inside it (O_RDONLY | O_DIRECTORY) into *dir_fd; *used names the mode
 * that holds. 0, or -errno with the reason in why (-ENOENT / -ENOTDIR /
 * -EACCES: dir itself cannot be opened).
 */
int sandbox_enter(SandboxMode mode, const char *dir, int *dir_fd,
    const char **used, char *why, size_t why_size);

#endif
