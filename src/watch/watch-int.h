/*
 * watch-int — what the watcher's files share (private to src/watch/).
 *
 * The module is include/watch/watcher.h; its DESIGN comment is at the top
 * of watcher.c. The files, and the thread each runs on:
 *   watcher.c  the thread's loop, the command hand-off from the reactor,
 *              the reactor's side (util/mailbox, filtering), the public API
 *   nodes.c    the node tree of watched directories, its wd and name maps
 *              (watcher thread)
 *   walk.c     placing watches: roots, new directories with synthetic
 *              IN_CREATE, retries, the repair walk after lost events
 *              (watcher thread)
 *   inotify.c  libinotifytools: the instance, finding its fd, the wake-up,
 *              reading a pass, rebuilding (watcher thread)
 *   fanotify.c the fanotify group, file-system marks, file handles, reading
 *              and decoding its events into the pass (watcher thread)
 *   events.c   one pass of raw events → the tree's changes and the events
 *              reported, moves paired (watcher thread)
 *   batch.c    the batch being filled and its hand-off (watcher thread),
 *              watcher_batch_free (reactor)
 */
#ifndef TREESYNC_WATCH_INT_H
#define TREESYNC_WATCH_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include <inotifytools/inotify.h>

#include "util/mailbox.h"
#include "util/map.h"
#include "watch/watcher.h"

#define DIR_MASK (IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | \
	IN_ATTRIB | IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | \
	IN_MOVE_SELF | IN_DONT_FOLLOW | IN_EXCL_UNLINK | IN_ONLYDIR | \
	IN_MASK_CREATE)

#define READ_CAP 4096		/* raw events taken in one pass */
#define BATCH_CAP 4096		/* events in one delivered batch */
#define MAX_QUEUED (256 * 1024)	/* undelivered events before we stop reading */
#define LOST_REBUILD_MIN 16384	/* lost nodes worth a rebuild */

enum {
	NODE_TOP = 1,		/* a root's directory */
	NODE_ORPHAN = 2,	/* lost its place: dead, or moved and not yet seen */
	NODE_LOST = 4,		/* orphan a repair walk did not find: outside */
	NODE_UNMOUNTED = 8,	/* IN_UNMOUNT seen: look again at IN_IGNORED */
	NODE_VISITED = 16,	/* reached by the current repair walk */
	NODE_FAN = 32,		/* a struct fan_node (else a struct ino_node) */
};

#define HANDLE_MAX 64		/* file-handle bytes we keep (ext4: 8, tmpfs: 12) */

/*
 * One watched directory: what both kinds share. Owned by the map its key
 * is in (Watcher.by_wd or Watcher.by_handle); one allocation with its
 * name, see DESIGN (Memory).
 */
struct node {
	struct node *parent;	/* NULL for a root's top and for orphans */
	struct node *child;	/* first child */
	struct node *next, *prev;	/* siblings */
	MapNode key;		/* by_wd (inotify) or by_handle (fanotify) */
	char *name;		/* "" for a root's top; the initial name or,
				 * renamed, malloc'd */
	uint8_t flags;
	uint8_t fs;		/* fanotify: its file system, Watcher.fs */
	uint8_t hlen;		/* fanotify: handle bytes */
	int32_t htype;		/* fanotify: handle type */
};

/* A directory with an inotify watch. */
struct ino_node {
	struct node n;
	MapNode by_name;	/* in Watcher.by_name while it has a parent */
	uint64_t dev, ino;	/* tells a moved directory from a new one */
	int wd;
	char iname[];		/* the name it was created with */
};

/* A directory under a fanotify mark: known by its file handle. */
struct fan_node {
	struct node n;
	unsigned char data[];	/* hlen handle bytes, then the first name */
};

/* What an open directory is: inode, and for fanotify its handle. */
struct dir_id {
	uint64_t dev, ino;
	uint8_t fs, hlen;
	int32_t htype;
	unsigned char handle[HANDLE_MAX];
};

/* A file system with a fanotify mark. */
struct fan_fs {
	uint64_t dev;
	int32_t fsid[2];	/* as fanotify reports it (statfs f_fsid) */
};
#define FAN_FS_MAX 255

/* A root as the watcher thread knows it. Owned by Watcher.roots. */
struct root {
	struct root *next;
	unsigned id;
	char *path;
	int fd;			/* its directory while held: see watch_root_hold */
	int holds;
	const Exclude *ex;	/* borrowed until WATCH_ROOT_RELEASED */
	bool fan;		/* watched through fanotify, else inotify */
	int fan_error;		/* auto, inotify: why not fanotify */
	struct node *top;	/* NULL once the directory is gone */
	uint64_t dev, ino;	/* top's directory, while top is set */
	bool gone;		/* its directory was deleted: nothing to repair */
	/* New directories of this pass that needed / got a watch. */
	size_t pass_needed, pass_placed;
	int pass_error;
};

/* A growable string; also used as a stack of strings. */
struct sbuf {
	char *s;
	size_t len, cap;
};

/*
 * An event as read: copied out of libinotifytools' static buffer, or
 * decoded from fanotify's (with IN_* bits: fanotify's have the same
 * values, FAN_RENAME becomes an IN_MOVED_FROM / IN_MOVED_TO pair).
 */
struct raw {
	int wd;			/* inotify */
	uint32_t mask, cookie;
	bool fan;
	size_t name;		/* offset in raw_names */
	size_t dir, child;	/* fanotify: offsets in raw_names of packed
				 * handles (see fanotify.c), child SIZE_MAX
				 * when the event has none */
};

/* A directory moved within the pass: the node its IN_MOVED_FROM named. */
struct pending_move {
	bool fan;
	uint32_t cookie;
	struct node *node;	/* may be NULL: the old name was not watched */
};

/*
 * One batch. pub first: watcher_batch_free gets &pub. Filled by the
 * watcher thread, then owned by the mailbox, then by the callback.
 */
struct batch {
	WatchBatch pub;
	MailboxItem item;
	uint64_t seq;		/* commands processed before its content */
	size_t cap_events, cap_notices;
	struct sbuf strings;	/* relpaths; events hold offsets until sealed */
};

enum { CMD_ADD, CMD_REMOVE };

/* A command from the reactor; the watcher thread frees it. */
struct cmd {
	struct cmd *next;
	int kind;
	unsigned root;
	uint64_t seq;
	const Exclude *ex;
	WatchMode mode;
	char path[];
};

/*
 * A directory a walk could not open (ENOENT): deleted, or an ancestor was
 * renamed after the event we are processing. Tried again, at its parent's
 * then current path, after the passes that bring the rename.
 */
struct retry {
	struct node *parent;	/* NULL once freed: dropped */
	char *name;
	bool emit;
	int failures;		/* in passes that read everything queued */
};

/* A directory waiting in a walk: its relpath is on the walk's path stack. */
struct walk_item {
	struct node *parent;	/* NULL: the parent has no watch, count only */
	size_t off;
};

/* One recursive walk: a root being added or repaired, a new directory. */
struct walk {
	struct root *root;
	bool emit;		/* a synthetic event per entry found */
	bool rescan_known;	/* read directories that were already watched */
	bool no_space;		/* ENOSPC seen: stop asking the kernel */
	bool busy;		/* the root's directory is watched for another root */
	size_t needed, placed;
	int error;		/* the first failure */
	struct walk_item *items;
	size_t n_items, cap_items;
	struct sbuf paths;
};

/* The reactor's view of a root: which events are still wanted. */
struct reg {
	unsigned id;
	uint64_t add_seq;	/* batches older than the add are not its */
	char *path;
};

struct Watcher {
	/* Reactor thread only. */
	struct event_base *base;
	WatcherFn cb;
	void *arg;
	struct reg *regs;
	size_t n_regs, cap_regs;
	uint64_t next_seq;
	pthread_t thread;
	bool started;

	/* Batches to the reactor: posted by the thread, taken by the
	 * reactor. */
	Mailbox *out;

	/* Under lock. */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* init done; batches taken; stopping */
	struct cmd *cmd_head, *cmd_tail;
	size_t out_events;	/* posted and not yet taken */
	bool stopping;
	atomic_bool quit;	/* stopping, readable without the lock */
	bool init_done;
	int init_error;

	/* Read end polled by the thread; the reactor writes. */
	int wake_rd, wake_wr;

	/* Watcher thread only. */
	struct root *roots;
	Map by_wd, by_name;	/* struct ino_node, see nodes.c */
	Map by_handle;		/* struct fan_node */
	size_t lost;		/* NODE_LOST nodes */
	int ifd;		/* libinotifytools' inotify fd, see inotify.c */
	int wake_wd;		/* the wake-up pipe's watch, found ifd; or -1 */
	bool ino_pending;	/* a pass stopped at READ_CAP: more is queued */
	/* fanotify (fanotify.c): the group, made at the first root that
	 * wants it; fan_error when it could not be. */
	int fan_fd;
	int fan_error;
	bool fan_tried, fan_rename, fan_target_fid;
	bool fan_pending;	/* a pass stopped at READ_CAP */
	uint64_t fan_mask;
	struct fan_fs fs[FAN_FS_MAX];
	size_t n_fs;
	uint32_t fan_cookie;
	char *fan_buf;
	bool broken;		/* libinotifytools failed to start again */
	bool need_rebuild;	/* a new inotify instance, see watch_rebuild */
	bool need_repair;	/* events were lost, see watch_repair */
	uint64_t seq_done;
	struct batch *cur;
	struct raw *raw;
	size_t n_raw, cap_raw;
	struct sbuf raw_names;
	struct pending_move *moves;
	size_t n_moves, cap_moves;
	struct retry *retries;
	size_t n_retries, cap_retries;
	struct sbuf path, path2;	/* scratch: event path, walk path */
	/* Bumped when a node is attached or detached: the per-root watch
	 * counts are recounted at the next hand-off (watch_count_nodes). */
	uint64_t tree_gen, counted_gen;

	/* Counters, read by watcher_get_stats from any thread. */
	atomic_size_t st_watches, st_rebuilds;
	atomic_uint_least64_t st_events, st_batches;
};

/* ---- batch.c: strings, the current batch, the hand-off ---- */
void sbuf_reserve(struct sbuf *b, size_t more);
void sbuf_set(struct sbuf *b, const char *s, size_t len);
/* Appends "/name" (or just name when empty). */
void sbuf_join(struct sbuf *b, const char *name);
void watch_emit_event(Watcher *w, unsigned root, uint32_t mask,
    uint32_t cookie, bool synthetic, const char *relpath, size_t len);
/* The notice, valid until the next one is emitted. */
WatchNotice *watch_emit_notice(Watcher *w, WatchNoticeKind kind,
    unsigned root, int error, size_t needed, size_t placed);
/* The current batch says: every root must be rescanned. */
void watch_set_overflow(Watcher *w);
/* Passes the current batch to the reactor, if it says anything. */
void watch_hand_off(Watcher *w);

/* ---- nodes.c: the tree of watched directories ---- */
struct node *watch_node_new_ino(Watcher *w, int wd, const char *name,
    const struct stat *st);
struct node *watch_node_new_fan(Watcher *w, const struct dir_id *id,
    const char *name);
/* Whether n is the directory id (inode, or handle for fanotify). */
bool watch_node_is(const struct node *n, const struct dir_id *id);
struct node *watch_node_by_handle(Watcher *w, uint8_t fs, int32_t htype,
    uint8_t hlen, const unsigned char *handle);
/* The child of parent named name; child_id (may be NULL) names it. */
struct node *watch_node_child(Watcher *w, struct node *parent,
    const char *name, const struct dir_id *child_id);
/* Puts n (without a parent) under parent at its name. */
void watch_node_attach(Watcher *w, struct node *n, struct node *parent);
/* Takes n out of its place; it is an orphan until a move places it. */
void watch_node_orphan(Watcher *w, struct node *n);
void watch_node_set_lost(Watcher *w, struct node *n);
/* rm: remove the kernel watch too; else the kernel already dropped it. */
void watch_node_free(Watcher *w, struct node *n, bool rm);
/* Frees n and everything beneath it, deepest first. */
void watch_drop_subtree(Watcher *w, struct node *n, bool rm);
/* Moves n to (parent, name): 0, -EBUSY (a root's top) or -ELOOP. */
int watch_relink(Watcher *w, struct node *n, struct node *parent,
    const char *name);
struct node *watch_node_by_wd(Watcher *w, int wd);
/* inotify nodes only (the name map). */
struct node *watch_node_by_name(Watcher *w, const struct node *parent,
    const char *name);
size_t watch_node_count(const Watcher *w);
/* Rarely needed: a scan of every node for this inode. */
struct node *watch_node_by_inode(Watcher *w, const struct stat *st);
struct node *watch_node_top(struct node *n);
/*
 * Writes n's path relative to its root into out and returns the root;
 * NULL when n hangs under an orphan (its place is unknown).
 */
struct root *watch_node_path(Watcher *w, const struct node *n,
    struct sbuf *out);
/* Repair walks: clear every NODE_VISITED; orphan and lose the rest. */
void watch_nodes_unvisit(Watcher *w);
void watch_nodes_lose_unvisited(Watcher *w);
/* Frees every node (not the kernel watches: the instance goes too). */
void watch_nodes_free_all(Watcher *w);
/* Per-root watch counts into b, when the tree changed since the last. */
void watch_count_nodes(Watcher *w, struct batch *b);

/* ---- walk.c: placing watches ---- */
/* Opens the root's directory for a while (nested holds count). */
int watch_root_hold(struct root *root);
void watch_root_release(struct root *root);
/* Whether the directory at n's path is still n's inode. */
bool watch_still_there(Watcher *w, const struct node *n);
/* What the directory open as fd is (for fanotify with its handle). */
int watch_dir_id(Watcher *w, bool fan, int fd, struct dir_id *id);
/* Watches relpath (under parent; "" the root) and everything beneath. */
void watch_walk_run(Watcher *w, struct walk *wk, struct node *parent,
    const char *relpath);
/*
 * A directory appeared at relpath under parent: watch it and what is
 * beneath, report its content (emit), count the result for the pass.
 */
void watch_walk_new(Watcher *w, struct root *root, struct node *parent,
    const char *relpath, bool emit, bool rescan_known);
/* End of a pass: directories that could not be opened, tried again. */
void watch_run_retries(Watcher *w, bool capped);
void watch_retries_forget(Watcher *w);
/* After lost events: every root walked again in place. */
void watch_repair(Watcher *w);
void watch_add_root(Watcher *w, struct cmd *c);
void watch_remove_root(Watcher *w, unsigned id);

/* ---- inotify.c: libinotifytools ---- */
/* Starts the instance and the wake-up; finds the library's fd. */
int watch_lib_start(Watcher *w);
void watch_lib_stop(Watcher *w);
/* Watches the directory open as fd: 0 and *wd, -EEXIST, or -errno. */
int watch_fd(Watcher *w, int fd, int *wd);
void watch_rm(Watcher *w, int wd);
/* Reads what is queued (waiting for the first event) into w->raw. */
bool watch_read_pass(Watcher *w, bool *wake);
void watch_drain_wake_pipe(Watcher *w);
/* Waits for the wake-up pipe, inotify or fanotify; says which are ready. */
void watch_wait(Watcher *w, bool *wake, bool *ino, bool *fan);
/* A fresh instance with every root watched again. */
void watch_rebuild(Watcher *w);

/* ---- fanotify.c ---- */
/* The group (once); 0 or -errno (also kept in w->fan_error). */
int watch_fan_start(Watcher *w);
void watch_fan_stop(Watcher *w);
/* Marks the file system of the directory open as fd; its index in *fs. */
int watch_fan_mark(Watcher *w, int fd, const struct stat *st, uint8_t *fs);
/* The handle of the directory open as fd into id (fs already set). */
int watch_fan_handle(int fd, struct dir_id *id);
/* Reads what is queued into w->raw (after inotify's part of the pass). */
void watch_fan_read(Watcher *w);
/* The node a packed handle in raw_names names, or NULL. */
struct node *watch_fan_lookup(Watcher *w, size_t off);
/* Unpacks the handle at off into id. */
void watch_fan_unpack(const Watcher *w, size_t off, struct dir_id *id);

/* ---- events.c: a pass of raw events ---- */
void watch_process_pass(Watcher *w);

#endif
