/*
 * remote-rsync — the command lines of a remote destination's children
 * (the ssh master, an ops session, an rsync run) and the reading of what
 * they say back: rsync's itemized lines and --stats figures, and what an
 * exit status means (remote_classify). Pure: no I/O, any thread; the unit
 * tests check every table here.
 *
 * The rsync option sets are the ones treesync-remote's allowlist accepts
 * (tests/unit/test-remote-side.c holds the server command lines they
 * become). Rules every run follows (measured, docs/design.md):
 *   -@-1           mtimes compared to the nanosecond (rsync compares
 *                  seconds without it)
 *   --delete       whenever --delete-missing-args is given (a directory
 *                  that left the source is otherwise kept), and always
 *                  with RSYNC_FILTER_TEMP_RULE first
 *   --temp-dir     .treesync.TAG.N in the destination root, made by
 *                  treesync-remote before rsync starts
 *   --rsync-path   "treesync-remote --root-id=DEV:INO rsync": the run is
 *                  refused unless the root is the pinned one
 */
#ifndef TREESYNC_REMOTE_RSYNC_H
#define TREESYNC_REMOTE_RSYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/fullsync.h"
#include "engine/pair.h"
#include "engine/rules.h"

/* Which ssh: the connection's master, or a client of its socket. */
typedef enum RemoteSshRole {
	REMOTE_SSH_MASTER,	/* -M -N; says "up" on stdout once connected */
	REMOTE_SSH_CLIENT,	/* through the master's socket */
} RemoteSshRole;

#define REMOTE_SSH_UP_LINE "treesync-ssh-up"

/*
 * ssh's argv up to and including the host (append the remote command
 * words); NULL-terminated, free with remote_argv_free. Every option
 * comes from rc: -F /dev/null, key only, the pinned known_hosts only,
 * keep-alives and a connect timeout from rc->timeout_s.
 */
char **remote_ssh_argv(const RemoteConfig *rc, RemoteSshRole role);
/* The same as one string for rsync's -e (without the host). */
char *remote_ssh_command(const RemoteConfig *rc);

/* The remote command of an ops session on root ("" for DIR itself),
 * pinned when dev or ino is not 0: words escaped for treesync-remote's
 * command-line splitting. */
char *remote_ops_command(const char *root, uint64_t dev, uint64_t ino);

/* What one rsync run is. */
typedef struct RemoteRunSpec {
	const RemoteConfig *remote;
	const char *source;	/* the local source root */
	const char *root;	/* the destination root on the remote host */
	uint64_t root_dev, root_ino;	/* pinned (0, 0: not yet known) */
	const char *temp_dir;	/* ".treesync.TAG.N" */
	char *const *filters;	/* rsync_filter_compile's, or NULL */
	bool files_from;	/* names on stdin (--from0 --files-from=-) */
	bool recursive;		/* -r (a compare; with files_from, of the
				 * subtrees listed) */
	bool delete;		/* --delete (and, with files_from,
				 * --delete-missing-args) */
	bool implied_dirs;	/* false: --no-implied-dirs (a run that must
				 * not touch the parents' attributes) */
	bool checksum;		/* compare = "hash" */
	bool dry_run;
	bool stats;		/* --stats (a compare's figures) */
	long long max_delete;	/* --max-delete=N; -1: none */
} RemoteRunSpec;

/* rsync's argv for spec; NULL-terminated, free with remote_argv_free. */
char **remote_rsync_argv(const RemoteRunSpec *spec);
void remote_argv_free(char **argv);

/*
 * One line of rsync's --out-format="%i %n" output: what was done to which
 * name (*name points into line, decoded in place: rsync's "\#ooo"
 * escapes undone, a directory's trailing '/' removed; "." is the root,
 * given as ""). False for a line that is not an itemized one.
 */
bool remote_parse_item(char *line, RuleAction *action, char **name);

/* Adds what a --stats line says to st; false for another line. */
bool remote_parse_stats_line(const char *line, SyncStats *st);

/* What an rsync or ssh exit means for the destination. */
typedef enum RemoteFault {
	REMOTE_OK = 0,		/* done (24, vanished source files, is too) */
	REMOTE_PARTIAL,		/* some paths failed (23): retry those */
	REMOTE_FAILED,		/* the run failed as a whole (disk full,
				 * refused, a usage error): retry later */
	REMOTE_AWAY,		/* the host or the connection is gone:
				 * the destination is away */
	REMOTE_ROOT_CHANGED,	/* the remote root is not the pinned one */
	REMOTE_HOST_KEY,	/* the host key does not match known_hosts */
	REMOTE_AUTH,		/* the key was refused */
} RemoteFault;

/*
 * status: rsync's or ssh's exit; err_text: its stderr (the last lines
 * are enough). *why gets a short reason for the log (static or within
 * err_text's lifetime is not promised: copied into why, why_size).
 */
RemoteFault remote_classify(int status, const char *err_text, char *why,
    size_t why_size);
/* The errno of "... (28)" at the end of an rsync error line, or 0. */
int remote_error_errno(const char *line);
const char *remote_fault_name(RemoteFault f);
/* Appends line (len bytes) and a '\n' to the NUL-terminated text in buf
 * (size bytes), dropping its older half when full: a child's stderr tail
 * for remote_classify. */
void remote_tail_add(char *buf, size_t size, const char *line, size_t len);

#endif
