/*
 * remote-proto — the operations protocol between treesyncd (the client)
 * and treesync-remote (the server, the forced command of the daemon's key
 * on a remote host). This header is the contract; both programs compile
 * src/dest/remote-proto.c, which only encodes and decodes (no I/O, no
 * policy), so any thread may call it.
 *
 * SESSION
 *   The client runs, over its shared ssh connection:
 *       ssh ... HOST treesync-remote [--root-id=DEV:INO] ops [PATH]
 *   (sshd puts that in SSH_ORIGINAL_COMMAND; the forced command
 *   `treesync-remote DIR` reads it). PATH is the destination root: absolute
 *   and equal to or beneath DIR, or relative to DIR; omitted, DIR itself.
 *   With --root-id the session is refused (exit 69) unless the root exists
 *   and has that st_dev:st_ino (decimal), so a pinned root that was
 *   replaced is never written.
 *   The server first sends one greeting line:
 *       treesync-remote 1 sandbox=NAME euid=N
 *   ("1" is REMOTE_PROTO_VERSION; key=value fields may be added). Then it
 *   reads requests from stdin and answers each on stdout, strictly in
 *   order, one response per request; the client may send several before
 *   reading (pipelining). EOF on stdin ends the session (exit 0).
 *
 * LINES
 *   One line per request or response, '\n'-terminated, at most
 *   REMOTE_PROTO_MAX_LINE bytes with the '\n'. Fields are separated by one
 *   space. Inside a field every byte <= 0x20, 0x7f and '%' is written as
 *   %XX (two upper-case hex digits); every other byte stands for itself.
 *   So names with spaces, newlines or any other byte travel unchanged.
 *
 *   request:   ID VERB ARG...
 *   response:  ID OK FIELD...            (FIELD: key=value, value escaped)
 *              ID ENAME MESSAGE          (an errno name such as ENOENT, or
 *                                         E<number> for one without a
 *                                         name; MESSAGE escaped, one field)
 *   ID: decimal, 1 to 2^63-1, chosen by the client, echoed back. A line that
 *   cannot be parsed at all gets "0 EPROTO message"; a line longer than the
 *   limit ends the session (exit 65).
 *
 * PATHS
 *   Every PATH argument is relative to the session root: not empty, no
 *   leading '/', no empty, "." or ".." component, no NUL byte, at most
 *   REMOTE_PROTO_MAX_PATH bytes (remote_proto_valid_path). Anything else is
 *   answered EINVAL. The server opens parents with openat2(RESOLVE_BENEATH |
 *   RESOLVE_NO_SYMLINKS) from the root (a component walk with O_NOFOLLOW on
 *   kernels without openat2): a symlink anywhere on the way answers ELOOP,
 *   nothing is ever followed, nothing outside the root is touched.
 *
 * VERBS
 *   PROBE
 *       OK exists=1 type=dir dev=N ino=N mountpoint=0|1 mode=OCTAL uid=N
 *          gid=N   the root as it is now (uid/gid as the server sees them)
 *       OK exists=0            the root is missing (its parent exists)
 *   MKROOT MODE
 *       Creates the root's last component (MODE octal, e.g. 0700) when it
 *       is missing, then answers as PROBE. Never creates more than one
 *       level (a missing parent is more likely a mount that is not there).
 *   RENAME FROM TO [noreplace]
 *       renameat(2) of FROM to TO (RENAME_NOREPLACE with "noreplace").
 *       OK. Errors as renameat's: ENOENT (FROM or TO's parent missing),
 *       ENOTEMPTY, EXDEV (another file system), ELOOP (a symlink on the way).
 *   DELETE PATH
 *       Removes PATH and, for a directory, everything beneath it, deepest
 *       first, never following a symlink and never entering another file
 *       system (a mount point inside is left: EBUSY). A missing PATH is
 *       success. OK count=N (entries removed).
 *   COUNT PATH LIMIT
 *       Entries in PATH's tree (PATH included, no symlink followed, no mount
 *       crossed), counting stops past LIMIT. OK count=N (0: PATH missing).
 *       For max_delete budgets before a DELETE.
 *   STAT PATH
 *       lstat of PATH: OK type=file|dir|symlink|other mode=OCTAL size=N
 *       nlink=N uid=N gid=N dev=N ino=N mtime=SEC.NSEC; ENOENT when missing.
 *   CLEAN TAG [tree] [partial]
 *       Removes treesync's leftover temporaries: every entry whose name has
 *       the temporary shape (remote_proto_is_temp_name) with a tag other
 *       than TAG (TAG: the client's own 8 hex digits, so a run's own
 *       temporaries in flight stay; "-" removes every tag). In the root
 *       directory only, or in the whole tree with "tree"; with "partial"
 *       also every REMOTE_PROTO_PARTIAL_DIR directory (rsync's kept partial
 *       files of interrupted transfers). OK removed=N.
 *
 * TEMPORARIES ON THE REMOTE
 *   A data run (rsync) writes its temporaries into --temp-dir
 *   ".treesync.TAG.N" in the destination root (TAG: 8 lower-case hex
 *   digits of the daemon's run, N: 1-16 lower-case hex digits; the same
 *   shape as the local fsutil_temp_name), which treesync-remote creates
 *   (0700) before rsync starts and removes with its content when rsync has
 *   exited; only a kill -9 or a crash leaves one, for CLEAN. Interrupted
 *   large files are kept by rsync in REMOTE_PROTO_PARTIAL_DIR inside their
 *   own directory (--partial-dir) and resumed by the next run.
 *   Every run that deletes (--delete) must carry rsync-filter.h's
 *   RSYNC_FILTER_TEMP_RULE ("-p .treesync.*"): without it rsync deletes
 *   its own --temp-dir (and other runs') from the root as extraneous and
 *   every file fails ("mkstemp ... No such file or directory", measured).
 *   rsync compares mtimes to the second unless given -@-1 (measured), and
 *   --delete-missing-args removes a directory only together with
 *   --delete; both are on the allowlist.
 *
 * EXIT STATUS of treesync-remote (any mode)
 *   0 success; rsync's own status when rsync ran; 65 protocol error in an
 *   ops session; 69 the destination (DIR, PATH) cannot be opened, is not
 *   the pinned one, or no confinement is available; 71 rsync could not be
 *   started; 77 the request was refused (not on the allowlist, a path
 *   outside DIR); 78 treesync-remote itself misconfigured (bad arguments
 *   in authorized_keys).
 */
#ifndef TREESYNC_REMOTE_PROTO_H
#define TREESYNC_REMOTE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define REMOTE_PROTO_VERSION 1
#define REMOTE_PROTO_MAX_LINE 65536
#define REMOTE_PROTO_MAX_PATH 4095
#define REMOTE_PROTO_MAX_FIELDS 16
#define REMOTE_PROTO_TEMP_PREFIX ".treesync."
#define REMOTE_PROTO_TAG_LEN 8
#define REMOTE_PROTO_PARTIAL_DIR ".treesync.partial"

#define REMOTE_EXIT_PROTOCOL 65
#define REMOTE_EXIT_UNAVAILABLE 69
#define REMOTE_EXIT_EXEC 71
#define REMOTE_EXIT_REFUSED 77
#define REMOTE_EXIT_CONFIG 78

/*
 * One decoded line. parse fills it with pointers into the caller's buffer,
 * decoded in place and NUL-terminated; len[] holds each field's decoded
 * length (a field may hold a NUL byte: compare with strlen to refuse it).
 */
typedef struct RemoteProtoLine {
	uint64_t id;
	const char *word;	/* the verb of a request, the status of a response */
	size_t nfields;
	char *field[REMOTE_PROTO_MAX_FIELDS];
	size_t len[REMOTE_PROTO_MAX_FIELDS];
} RemoteProtoLine;

/*
 * Appends the escaped form of data[0..len) at out + *pos (out has size
 * bytes) and advances *pos; out stays NUL-terminated. 0, or -ENOSPC (the
 * caller discards out).
 */
int remote_proto_escape(char *out, size_t size, size_t *pos,
    const char *data, size_t len);

/*
 * Formats a request line (with its '\n') into out: id, verb, nargs
 * NUL-terminated args. Returns the line's length, or -ENOSPC / -EINVAL
 * (id 0, verb not an upper-case word).
 */
int remote_proto_format_request(char *out, size_t size, uint64_t id,
    const char *verb, const char *const *args, size_t nargs);

/* "ID OK key=value...\n": kv holds nkv pairs {key, value}. Length or -ENOSPC. */
int remote_proto_format_ok(char *out, size_t size, uint64_t id,
    const char *const (*kv)[2], size_t nkv);

/* "ID ENAME message\n" for err (a positive errno). Length or -ENOSPC. */
int remote_proto_format_error(char *out, size_t size, uint64_t id, int err,
    const char *message);

/*
 * Parses one line (len bytes, with or without its '\n') in place.
 * 0, or -EPROTO (empty, bad id, bad escape, too many fields).
 */
int remote_proto_parse(char *line, size_t len, RemoteProtoLine *out);

/*
 * In a response: 0 for OK, else the positive errno its status names
 * (EPROTO for a name this side does not know).
 */
int remote_proto_status(const RemoteProtoLine *line);

/* The value of key=value among the fields, or NULL. */
const char *remote_proto_field(const RemoteProtoLine *line, const char *key);

/* "ENOENT" for ENOENT; NULL for a number without a name here. */
const char *remote_proto_errno_name(int err);
/* ENOENT for "ENOENT", n for "E<n>"; 0 for anything else. */
int remote_proto_errno_from_name(const char *name);

/* The PATHS rule above, for a decoded field of len bytes. */
bool remote_proto_valid_path(const char *path, size_t len);

/*
 * True for ".treesync.TAG.N" (TAG: 8 lower-case hex digits, N: 1-16
 * lower-case hex digits). *same_tag (when given) tells whether its TAG is
 * tag (NULL: never).
 */
bool remote_proto_is_temp_name(const char *name, const char *tag,
    bool *same_tag);

/* True for a TAG: 8 lower-case hex digits. */
bool remote_proto_valid_tag(const char *tag);

/*
 * Finds the end of the first line in buf[0..len): returns its length with
 * the '\n', or 0 when no complete line is there yet (-EMSGSIZE when len
 * reached REMOTE_PROTO_MAX_LINE without one). For a reader's buffer.
 */
long remote_proto_line_length(const char *buf, size_t len);

#endif
