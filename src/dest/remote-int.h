/*
 * remote-int — what the files of the remote destination share:
 *   remote.c          the seam's entry points, the queue and lanes, the
 *                     host's state and the ops session, finishing requests
 *   remote-batch.c    a batch: deletes as ops, one rsync run, its output
 *   remote-compare.c  a compare: one rsync run, its figures and guards
 *   remote-worker.c   the look at the source (worker threads)
 * All but remote-worker.c run on the reactor thread. The look at the
 * source a batch or a compare takes before anything goes to the host: A SourceLook is filled on the
 * reactor with copies (paths, root, expected identity), run on a worker,
 * which reads and writes only it, and finished on the reactor.
 */
#ifndef TREESYNC_DEST_REMOTE_INT_H
#define TREESYNC_DEST_REMOTE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "dest/dest.h"

#define REMOTE_BIG_BYTES (4u << 20)	/* a file this large goes in a run
					 * of its own */

/* What the source says about one path of a batch. */
typedef struct PathFact {
	bool exists;
	bool is_dir;
	bool is_file;
	uint64_t size;
	uint64_t nlink;
	uint64_t dev, ino;
	int err;		/* lstat's -errno other than ENOENT */
} PathFact;

typedef struct SourceLook {
	Job job;
	void *owner;		/* reactor side only */
	char *source;		/* copies */
	SourceIdentity expect;
	size_t n;
	char **paths;		/* n relative paths ("" the root) */
	/* Out: */
	PathFact *facts;	/* n */
	char **parents;		/* directories (not "") holding the paths
				 * that exist in the source, sorted, unique */
	size_t n_parents;
	bool root_empty;	/* the root has no entry (a compare's guard) */
	GuardFault fault;
	int err;		/* the source root cannot be opened */
	SourceIdentity seen;
} SourceLook;

/* ---- the reactor side, shared by remote.c, remote-batch.c and
 * remote-compare.c ---- */

#include <event2/event.h>

#include "dest/proc.h"
#include "dest/remote-host.h"
#include "dest/remote-rsync.h"
#include "util/map.h"

#define REMOTE_REQUESTS 3	/* running, filled, moved to the big lane */
#define REMOTE_SMALL_RUNS 2	/* batches side by side (renames and
				 * compares run alone) */
#define REMOTE_BATCH_PATHS 8192
#define ROOT_RETRY_MS 30000	/* a replaced root is looked at again */
#define ERR_TAIL 8192

typedef enum ReqKind { REQ_BATCH, REQ_RENAMES, REQ_COMPARE } ReqKind;
typedef struct RemoteDest RemoteDest;
typedef struct Req Req;

typedef struct RemoteCompare {
	DestCompare base;
	SyncStats st;
	char *relroot;
	FullSyncOptions opt;
	Req *req;		/* running; NULL once finished */
	bool finished;
} RemoteCompare;

/* A path of a batch, findable by name for the run's output. */
typedef struct DeleteOp {
	Req *q;
	size_t item;
} DeleteOp;

typedef struct NameNode {
	MapNode node;
	size_t item;
} NameNode;

struct Req {
	ReqKind kind;
	RemoteDest *rd;
	DestBatch *b;
	DestRenames *r;
	RemoteCompare *c;
	Req *next;
	bool big;		/* in the big lane */
	bool cancelled;
	bool lost;		/* an op's session ended unanswered */
	SourceLook *look;
	size_t waiting;		/* ops not answered yet */
	size_t answered;
	Proc *proc;
	struct DeleteOp *dels;	/* one per DELETE sent */
	Map names;		/* NameNode by item relpath */
	NameNode *nodes;
	bool *listed;		/* per item: in the rsync run */
	long long max_delete;
	bool empty_guard;	/* the source root looked empty */
	bool dry;		/* counting deletes for a percentage */
	char err[ERR_TAIL];
};

struct RemoteDest {
	Dest base;
	struct event_base *ev;
	Pool *pool;
	const SyncPairConfig *pair;
	char *source;
	char *root;		/* on the host */
	RemoteHost *host;
	RemoteHostListener listener;
	RemoteSession *session;
	bool session_ready;	/* pinned and cleaned: requests may run */
	bool pinned;
	uint64_t root_dev, root_ino;
	bool root_changed;
	uint64_t root_retry_ms;
	struct event *root_timer;
	struct event *kick;	/* pump from the loop (submit) */
	char tag[16];
	char **filters;
	Req *head, **tail;	/* waiting */
	Req *small[REMOTE_SMALL_RUNS];	/* running in the small lane */
	Req *big_head, **big_tail;
	Req *big;		/* running in the big lane */
	size_t looks;		/* source looks in the pool */
	size_t deferred;	/* completions waiting for the loop */
	bool stopped;
	bool away;
	time_t away_since;
	char reason[512];
};

#define RD(d) ((RemoteDest *)(void *)(d))


/* remote.c */
void remote_lane_leave(RemoteDest *rd, Req *q);
int remote_run_start(Req *q, const RemoteRunSpec *spec, ProcSpec *ps);
void remote_run_spec(RemoteDest *rd, RemoteRunSpec *spec, char *temp,
    size_t size);
void remote_pump(RemoteDest *rd);
void remote_update_away(RemoteDest *rd);
void remote_req_defer(Req *q);
void remote_req_away_err(Req *q);
void remote_req_finish(Req *q);
void remote_req_away(Req *q, RemoteFault f, const char *why);
void remote_clean_done(void *arg, int err, RemoteProtoLine *line);
/* remote-batch.c */
void remote_keep_err(Req *q, const char *line, size_t len);
void remote_batch_looked(Req *q);
void remote_batch_deletes(Req *q);
/* remote-compare.c */
void remote_compare_looked(Req *q);

/* remote-worker.c: worker thread */
void remote_look_run(Job *job);
void remote_look_free(SourceLook *l);

#endif
