/*
 * session — the server side of an ops session (the protocol in
 * include/dest/remote-proto.h): reads requests on one fd, answers each on
 * another, every operation beneath the session root.
 *
 * Owns nothing after it returns; single-threaded, blocking I/O (it is the
 * whole of a short-lived forced command).
 */
#ifndef TREESYNC_REMOTE_SESSION_H
#define TREESYNC_REMOTE_SESSION_H

#include "remote/rootid.h"

typedef struct SessionOptions {
	int dir_fd;		/* DIR, inside the sandbox (borrowed) */
	const char *root;	/* the session root relative to DIR ("": DIR) */
	const char *root_shown;	/* how the client named it, for messages */
	const char *sandbox;	/* the sandbox mode that holds, for the greeting */
	RootId expect;		/* --root-id, or unset */
	int in, out;
} SessionOptions;

/*
 * Serves until EOF on in. Returns the exit status: 0; REMOTE_EXIT_PROTOCOL
 * for a line too long or a write error; REMOTE_EXIT_UNAVAILABLE when the
 * root cannot be opened or is not the pinned one (with why set).
 */
int session_run(const SessionOptions *opt, char *why, size_t why_size);

#endif
