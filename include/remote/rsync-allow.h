/*
 * rsync-allow — the allowlist for the `rsync --server` command lines that
 * treesyncd's rsync client sends (rsync 3.2 or newer): receiver side only,
 * with the options of a live batch and of a full compare (-@-1 among
 * them: without it rsync compares mtimes to the second), and nothing that
 * makes the receiver follow symlinks (-K, -L, -k), keep partial data under
 * a final name (--partial, --inplace, --append), write beside the tree
 * (--backup-dir, --log-file, --*-dest, a --temp-dir or --partial-dir other
 * than treesync's own names), send files back (--sender), read further
 * arguments from the connection (-s) or delete excluded paths.
 *
 * Pure: looks at words only. Owns the argv it builds.
 */
#ifndef TREESYNC_REMOTE_RSYNC_ALLOW_H
#define TREESYNC_REMOTE_RSYNC_ALLOW_H

#include <stdbool.h>
#include <stddef.h>

typedef struct RsyncRequest {
	/*
	 * What to execute: "rsync" "--server" OPTIONS... "." "." — the
	 * destination replaced by ".", since treesync-remote starts rsync
	 * inside the destination it resolved itself. NULL-terminated;
	 * argv[0] may be replaced by the caller (it is not freed).
	 */
	char **argv;
	size_t argc;
	const char *dest;	/* the destination as the client named it */
	const char *temp_dir;	/* --temp-dir (a temporary's name), or NULL */
} RsyncRequest;

/*
 * words[0..n): a split command line starting with "rsync". 0 and *out
 * filled, or -EPERM with the reason in why (one line, names the word), or
 * -ENOMEM. The words must outlive *out.
 */
int rsync_allow_check(char *const *words, size_t n, RsyncRequest *out,
    char *why, size_t why_size);
void rsync_request_free(RsyncRequest *req);

#endif
