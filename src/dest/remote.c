/*
 * remote — see include/dest/remote.h.
 *
 * DESIGN
 * Requests (batches, renames, compares) wait in one queue and run one at
 * a time in the "small" lane, in the order they came: two rsync runs in
 * one directory at once could leave its mtime as the slower one read it.
 * A batch that holds a big file (REMOTE_BIG_BYTES) hands its other paths
 * back (skipped: the caller re-batches them at once) and moves to the
 * "big" lane, where it runs beside the small lane without touching any
 * parent's attributes (--no-implied-dirs; its parents come back as
 * entries_changed). So small files never wait behind a big one.
 *
 * A batch: (1) a look at the source on a worker (remote-worker.c: the
 * guard check, lstat of each path, the parents of those that exist);
 * (2) the paths that left the source as DELETE ops, pipelined, parents
 * before children (a path under one being deleted goes with it); (3) one
 * rsync run of the paths that exist plus their parents (so directory
 * mtimes travel in the same run), names on stdin, hard-link groups whole
 * in it; its itemized lines say what was done to which path, its stderr
 * which path failed. Renames are RENAME ops, in order, before anything
 * queued behind them. A compare is one recursive rsync run with the
 * pair's excludes compiled to filters (a subtree: listed with -r, so the
 * pinned root stays the run's destination).
 *
 * The host's connection and the ops session come first: a request waits
 * while the host connects; once the host is away every request waiting
 * or running comes back DEST_ERR_AWAY (and new ones at once), and the
 * destination says it is away (dest_changed) until the host is back and
 * a session has pinned the root again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>

#include "dest/proc.h"
#include "dest/remote-host.h"
#include "dest/remote-rsync.h"
#include "dest/remote.h"
#include "dest/rsync-filter.h"
#include "engine/fsutil.h"
#include "remote-int.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/map.h"
#include "util/path.h"
#include "util/synclog.h"

#define REMOTE_REQUESTS 3	/* one running, one filled, one big */
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
	char tag[16];
	char **filters;
	Req *head, **tail;	/* waiting */
	Req *small;		/* running in the small lane */
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

static void pump(RemoteDest *rd);
static void req_finish(Req *q);
static void compare_looked(Req *q);

/* ---- state ---------------------------------------------------------------- */

static bool
host_away(const RemoteDest *rd)
{
	return remote_host_state(rd->host) == REMOTE_HOST_AWAY ||
	    rd->root_changed;
}

static void fail_waiting(RemoteDest *rd);

/* Says it when availability flips (dest_changed, from the loop's
 * events only: every caller is a completion or a child's event). */
static void
update_away(RemoteDest *rd)
{
	bool away = host_away(rd);

	if (away == rd->away)
		return;
	rd->away = away;
	if (away) {
		rd->away_since = rd->root_changed ? time(NULL) :
		    remote_host_away_since(rd->host);
		if (rd->away_since == 0)
			rd->away_since = time(NULL);
		fail_waiting(rd);
	} else {
		rd->away_since = 0;
	}
	dest_changed(&rd->base);
}

/* ---- deferred completion ---------------------------------------------------- */

static void
on_deferred(evutil_socket_t fd, short what, void *arg)
{
	Req *q = arg;

	(void)fd;
	(void)what;
	q->rd->deferred--;
	req_finish(q);
}

/* Finishes q from the loop (never inside the call that handed it over). */
static void
defer(Req *q)
{
	struct timeval now = { 0, 0 };

	q->rd->deferred++;
	if (event_base_once(q->rd->ev, -1, EV_TIMEOUT, on_deferred, q, &now) <
	    0)
		xoom();
}

static void
set_away_err(Req *q)
{
	if (q->b != NULL)
		q->b->err = DEST_ERR_AWAY;
	if (q->r != NULL)
		q->r->err = DEST_ERR_AWAY;
	if (q->c != NULL)
		q->c->base.err = DEST_ERR_AWAY;
}

static void
fail_waiting(RemoteDest *rd)
{
	Req *q;

	while ((q = rd->head) != NULL) {
		rd->head = q->next;
		set_away_err(q);
		defer(q);
	}
	rd->tail = &rd->head;
	while ((q = rd->big_head) != NULL) {
		rd->big_head = q->next;
		set_away_err(q);
		defer(q);
	}
	rd->big_tail = &rd->big_head;
}

/* ---- the session ---------------------------------------------------------- */

static void session_ready_cb(void *arg);
static void session_closed_cb(void *arg, RemoteFault f, const char *why);

static void
start_session(RemoteDest *rd)
{
	RemoteSessionEvents ev = { session_ready_cb, session_closed_cb, rd };
	int r;

	if (rd->session != NULL || rd->stopped)
		return;
	r = remote_session_new(rd->host, rd->root, rd->pinned ? rd->root_dev :
	    0, rd->pinned ? rd->root_ino : 0, &ev, &rd->session);
	if (r < 0) {
		rd->session = NULL;
		remote_host_failed(rd->host, REMOTE_AWAY, strerror(-r));
	}
}

static void
clean_done(void *arg, int err, RemoteProtoLine *line)
{
	RemoteDest *rd = arg;

	(void)line;
	if (err == -ECANCELED)
		return;
	if (err != 0 && err != -EHOSTDOWN)
		synclog_event(LOG_LEVEL_WARN, rd->pair->name, "clean", "",
		    rd->base.name, "removing old temporaries failed: %s",
		    strerror(err > 0 ? err : -err));
}

static void
root_done(void *arg, int err, RemoteProtoLine *line)
{
	RemoteDest *rd = arg;
	const char *dev, *ino, *args[] = { rd->tag };
	uint64_t d, i;

	if (err == -ECANCELED)
		return;
	if (err != 0 || line == NULL) {
		if (err > 0)
			synclog_event(LOG_LEVEL_ERROR, rd->pair->name, "dest", "",
			    rd->base.name, "cannot make or open the root on the "
			    "host: %s; will try again", strerror(err));
		if (rd->session != NULL)
			remote_host_failed(rd->host, REMOTE_FAILED, err > 0 ?
			    strerror(err) : "the ops session ended");
		return;
	}
	dev = remote_proto_field(line, "dev");
	ino = remote_proto_field(line, "ino");
	d = dev != NULL ? strtoull(dev, NULL, 10) : 0;
	i = ino != NULL ? strtoull(ino, NULL, 10) : 0;
	if (rd->pinned && (d != rd->root_dev || i != rd->root_ino)) {
		snprintf(rd->reason, sizeof rd->reason, "the root on the host "
		    "was replaced (it was %" PRIu64 ":%" PRIu64 ", now %" PRIu64
		    ":%" PRIu64 "): nothing is written there", rd->root_dev,
		    rd->root_ino, d, i);
		rd->root_changed = true;
		update_away(rd);
		return;
	}
	rd->pinned = true;
	rd->root_dev = d;
	rd->root_ino = i;
	/* What a killed daemon left in the root (its --temp-dirs). */
	remote_session_send(rd->session, "CLEAN", args, 1, clean_done, rd);
	rd->session_ready = true;
	update_away(rd);
	pump(rd);
}

static void
session_ready_cb(void *arg)
{
	RemoteDest *rd = arg;
	const char *mode[] = { "0700" };

	/* Makes a missing root (one level), then answers as PROBE. */
	remote_session_send(rd->session, "MKROOT", mode, 1, root_done, rd);
}

static void
on_root_timer(evutil_socket_t fd, short what, void *arg)
{
	RemoteDest *rd = arg;

	(void)fd;
	(void)what;
	if (rd->root_changed && !rd->stopped &&
	    remote_host_state(rd->host) == REMOTE_HOST_UP)
		start_session(rd);
}

static void
session_closed_cb(void *arg, RemoteFault f, const char *why)
{
	RemoteDest *rd = arg;

	remote_session_free(rd->session);
	rd->session = NULL;
	rd->session_ready = false;
	if (rd->stopped)
		return;
	if (f == REMOTE_ROOT_CHANGED) {
		struct timeval tv = { ROOT_RETRY_MS / 1000, 0 };

		if (!rd->root_changed)
			synclog_event(LOG_LEVEL_ERROR, rd->pair->name, "dest",
			    "", rd->base.name, "%s: nothing is written there; "
			    "looked at again every %d s", why,
			    ROOT_RETRY_MS / 1000);
		snprintf(rd->reason, sizeof rd->reason, "%s", why);
		rd->root_changed = true;
		evtimer_add(rd->root_timer, &tv);
		update_away(rd);
		return;
	}
	remote_host_failed(rd->host, f == REMOTE_OK ? REMOTE_AWAY : f, why);
}

static void
host_changed(void *arg)
{
	RemoteDest *rd = arg;

	if (rd->stopped)
		return;
	if (remote_host_state(rd->host) == REMOTE_HOST_UP)
		start_session(rd);
	else if (remote_host_state(rd->host) == REMOTE_HOST_AWAY) {
		snprintf(rd->reason, sizeof rd->reason, "%s",
		    remote_host_reason(rd->host) ? remote_host_reason(rd->host) :
		    "unreachable");
		if (rd->session != NULL) {
			remote_session_free(rd->session);
			rd->session = NULL;
		}
		rd->session_ready = false;
	}
	update_away(rd);
}

/* ---- finishing a request -------------------------------------------------- */

static void
req_free(Req *q)
{
	map_clear(&q->names);
	free(q->nodes);
	free(q->listed);
	free(q->dels);
	remote_look_free(q->look);
	if (q->proc != NULL)
		proc_free(q->proc);
	free(q);
}

/* Hands the request back to its caller and frees the rest of it. */
static void
req_finish(Req *q)
{
	RemoteDest *rd = q->rd;

	if (rd->small == q)
		rd->small = NULL;
	if (rd->big == q)
		rd->big = NULL;
	if (q->b != NULL) {
		q->b->cancelled = q->cancelled;
		q->b->done(q->b);
	} else if (q->r != NULL) {
		q->r->cancelled = q->cancelled;
		q->r->done(q->r);
	} else if (q->c != NULL) {
		RemoteCompare *c = q->c;

		c->req = NULL;
		c->finished = true;
		if (!q->cancelled && !rd->stopped)
			c->base.done(&c->base, c->base.arg);
	}
	req_free(q);
	if (!rd->stopped)
		pump(rd);
}

/* The run or the ops failed because the connection did. */
static void
req_away(Req *q, RemoteFault f, const char *why)
{
	set_away_err(q);
	remote_host_failed(q->rd->host, f, why);
	req_finish(q);
}

/* ---- batches -------------------------------------------------------------- */

typedef struct NameKey {
	const char *name;
	const DestBatch *b;
} NameKey;

static bool
name_is(const MapNode *n, const void *key)
{
	const NameNode *nn = MAP_ENTRY(n, NameNode, node);
	const NameKey *k = key;

	return strcmp(k->b->items[nn->item].relpath, k->name) == 0;
}

/* The item named name (as rsync or stderr spell it), or -1. */
static long
find_item(Req *q, const char *name)
{
	NameKey key = { name, q->b };
	MapNode *n = map_find(&q->names, map_hash_str(name), name_is, &key);

	return n != NULL ? (long)MAP_ENTRY(n, NameNode, node)->item : -1;
}

static void
index_names(Req *q)
{
	DestBatch *b = q->b;

	q->nodes = xcalloc(b->n ? b->n : 1, sizeof *q->nodes);
	q->names = (Map)MAP_INIT;
	for (size_t i = 0; i < b->n; i++) {
		q->nodes[i].item = i;
		map_insert(&q->names, &q->nodes[i].node,
		    map_hash_str(b->items[i].relpath));
	}
}

/* A stderr line of rsync's that names a path in quotes: its item. */
static void
note_failed_path(Req *q, const char *line)
{
	const char *open = strchr(line, '"'), *close;
	char path[4096];
	size_t rootlen;
	long it;

	if (q->b == NULL || open == NULL ||
	    (close = strchr(open + 1, '"')) == NULL)
		return;
	snprintf(path, sizeof path, "%.*s", (int)(close - open - 1), open + 1);
	/* The sender names the source path, the receiver the path in the
	 * destination root (or a relative one). */
	rootlen = strlen(q->rd->source);
	if (strncmp(path, q->rd->source, rootlen) == 0 && path[rootlen] == '/')
		memmove(path, path + rootlen + 1, strlen(path + rootlen + 1) + 1);
	rootlen = strlen(q->rd->root);
	if (strncmp(path, q->rd->root, rootlen) == 0 && path[rootlen] == '/')
		memmove(path, path + rootlen + 1, strlen(path + rootlen + 1) + 1);
	if ((it = find_item(q, path)) < 0)
		return;
	q->b->items[it].err = remote_error_errno(line) ?
	    -remote_error_errno(line) : -EIO;
}

static void
keep_err(Req *q, const char *line, size_t len)
{
	size_t have = strlen(q->err);

	if (have + len + 2 > sizeof q->err) {
		memmove(q->err, q->err + have / 2, have - have / 2 + 1);
		have = strlen(q->err);
	}
	if (have + len + 2 <= sizeof q->err) {
		memcpy(q->err + have, line, len);
		q->err[have + len] = '\n';
		q->err[have + len + 1] = '\0';
	}
}

static void
batch_line(Proc *p, int fd, char *line, size_t len, void *arg)
{
	Req *q = arg;
	RuleAction action;
	char *name;
	long it;

	(void)p;
	if (fd == 2) {
		keep_err(q, line, len);
		if (strncmp(line, "rsync: ", 7) == 0 ||
		    strstr(line, "failed") != NULL)
			note_failed_path(q, line);
		if (strstr(line, "Could not chdir to home") == NULL)
			synclog_event(LOG_LEVEL_DEBUG, q->rd->pair->name,
			    "rsync", "", q->rd->base.name, "%s", line);
		return;
	}
	if (!remote_parse_item(line, &action, &name) ||
	    (it = find_item(q, name)) < 0)
		return;
	if (q->b->items[it].action == RULE_NONE || action == RULE_DELETE)
		q->b->items[it].action = action;
}

/* Per item, once the run is over: outcome, figures. */
static void
settle_items(Req *q, bool ok)
{
	DestBatch *b = q->b;
	const SourceLook *l = q->look;

	for (size_t i = 0; i < b->n; i++) {
		DestItem *it = &b->items[i];
		const PathFact *f = &l->facts[i];
		size_t names = 0;

		if (!q->listed[i] || it->skipped)
			continue;
		if (!ok && it->err == 0)
			it->err = -EIO;
		if (it->err != 0)
			continue;
		if (it->action == RULE_COPY) {
			it->bytes = f->size;
			it->size = f->size;
			b->bytes += f->size;
		}
		if (f->is_dir && it->action == RULE_MKDIR)
			it->outcome = DEST_SUBTREE;
		if (f->is_file && f->nlink > 1) {
			for (size_t j = 0; j < b->n; j++)
				names += q->listed[j] &&
				    l->facts[j].dev == f->dev &&
				    l->facts[j].ino == f->ino;
			if (names < f->nlink)
				it->outcome = DEST_HARDLINK;
		}
		/* Its parent was not in the run (the root, or a big run):
		 * a name made or replaced there moved its mtime. */
		if ((q->big || strchr(it->relpath, '/') == NULL) &&
		    it->relpath[0] != '\0' && it->action != RULE_NONE &&
		    it->action != RULE_ATTRS)
			it->entries_changed = true;
	}
}

static void
batch_exit(Proc *p, int status, void *arg)
{
	Req *q = arg;
	RemoteFault f;
	char why[512];

	(void)p;
	proc_free(q->proc);
	q->proc = NULL;
	if (q->cancelled || q->rd->stopped) {
		q->cancelled = true;
		req_finish(q);
		return;
	}
	f = remote_classify(status, q->err, why, sizeof why);
	switch (f) {
	case REMOTE_OK:
		settle_items(q, true);
		break;
	case REMOTE_PARTIAL:
		/* The paths stderr named failed, the others are done. */
		settle_items(q, true);
		break;
	case REMOTE_FAILED:
		synclog_event(LOG_LEVEL_WARN, q->rd->pair->name, "rsync", "",
		    q->rd->base.name, "the run of %zu paths failed: %s; they "
		    "will be retried", q->b->n, why);
		for (size_t i = 0; i < q->b->n; i++)
			if (q->listed[i] && q->b->items[i].err == 0)
				q->b->items[i].err = strstr(q->err, "(28)") ?
				    -ENOSPC : -EIO;
		settle_items(q, false);
		break;
	case REMOTE_ROOT_CHANGED:
		q->rd->root_changed = true;
		snprintf(q->rd->reason, sizeof q->rd->reason, "%s", why);
		set_away_err(q);
		update_away(q->rd);
		req_finish(q);
		return;
	default:
		req_away(q, f, why);
		return;
	}
	req_finish(q);
}

static void
batch_run(Req *q)
{
	RemoteDest *rd = q->rd;
	DestBatch *b = q->b;
	RemoteRunSpec spec = { 0 };
	char temp[64], **argv;
	ProcSpec ps = { .want_stdin = true, .on_line = batch_line,
	    .on_exit = batch_exit, .arg = q };
	size_t listed = 0;
	int r;

	for (size_t i = 0; i < b->n; i++) {
		q->listed[i] = !b->items[i].skipped && q->look->facts[i].exists &&
		    q->look->facts[i].err == 0;
		listed += q->listed[i];
	}
	if (listed == 0 && (q->big || q->look->n_parents == 0)) {
		req_finish(q);
		return;
	}
	fsutil_temp_name(temp, sizeof temp);
	spec.remote = remote_host_config(rd->host);
	spec.source = rd->source;
	spec.root = rd->root;
	spec.root_dev = rd->root_dev;
	spec.root_ino = rd->root_ino;
	spec.temp_dir = temp;
	spec.filters = rd->filters;
	spec.files_from = true;
	spec.delete = b->opt.rules.delete && !b->opt.hold_deletes;
	spec.implied_dirs = !q->big;
	spec.checksum = b->opt.rules.compare == COMPARE_HASH;
	spec.max_delete = -1;
	argv = remote_rsync_argv(&spec);
	ps.argv = argv;
	r = proc_spawn(rd->ev, &ps, &q->proc);
	remote_argv_free(argv);
	if (r < 0) {
		q->proc = NULL;
		for (size_t i = 0; i < b->n; i++)
			if (q->listed[i])
				b->items[i].err = r;
		req_finish(q);
		return;
	}
	synclog_event(LOG_LEVEL_DEBUG, rd->pair->name, "rsync", "",
	    rd->base.name, "run of %zu paths (%zu parents)%s", listed,
	    q->big ? 0 : q->look->n_parents, q->big ? ", big files" : "");
	for (size_t i = 0; i < b->n; i++)
		if (q->listed[i])
			proc_write(q->proc, b->items[i].relpath[0] ?
			    b->items[i].relpath : ".",
			    strlen(b->items[i].relpath[0] ?
			    b->items[i].relpath : ".") + 1);
	for (size_t i = 0; !q->big && i < q->look->n_parents; i++)
		proc_write(q->proc, q->look->parents[i],
		    strlen(q->look->parents[i]) + 1);
	proc_close_stdin(q->proc);
}

static void
delete_done(void *arg, int err, RemoteProtoLine *line)
{
	DeleteOp *op = arg;
	Req *q = op->q;
	DestItem *it = &q->b->items[op->item];
	const char *count;

	q->waiting--;
	if (err == -ECANCELED)
		return;
	if (err == 0 && line != NULL) {
		count = remote_proto_field(line, "count");
		it->count = count != NULL ? strtoull(count, NULL, 10) : 0;
		it->action = it->count > 0 ? RULE_DELETE : RULE_NONE;
		q->answered++;
	} else if (err == -EHOSTDOWN) {
		it->err = DEST_ERR_AWAY;
	} else {
		it->action = RULE_DELETE;
		it->err = err > 0 ? -err : err;
		q->answered++;
	}
	if (q->waiting > 0)
		return;
	if (q->rd->session == NULL || q->rd->stopped) {
		q->cancelled = q->rd->stopped;
		if (!q->cancelled)
			set_away_err(q);
		req_finish(q);
		return;
	}
	batch_run(q);
}

/* Paths that left the source: DELETE ops, shallow first; a path beneath
 * one already going is gone with it. */
static void
batch_deletes(Req *q)
{
	DestBatch *b = q->b;
	bool del = b->opt.rules.delete;
	size_t *order = xcalloc(b->n ? b->n : 1, sizeof *order), n = 0;
	size_t ops = 0;

	for (size_t i = 0; i < b->n; i++) {
		const PathFact *f = &q->look->facts[i];

		if (b->items[i].skipped || f->exists || f->err != 0)
			continue;
		if (!del)
			continue;
		else if (b->opt.hold_deletes)
			b->items[i].withheld = true;
		else
			order[n++] = i;
	}
	/* Shallow first (insertion sort: batches arrive mostly sorted). */
	for (size_t i = 1; i < n; i++) {
		size_t x = order[i], j = i;

		while (j > 0 && path_depth(b->items[order[j - 1]].relpath) >
		    path_depth(b->items[x].relpath)) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = x;
	}
	for (size_t k = 0; k < n; k++) {
		DestItem *it = &b->items[order[k]];
		const char *args[] = { it->relpath };
		bool covered = false;

		for (size_t m = 0; m < k && !covered; m++)
			covered = path_strictly_under(
			    b->items[order[m]].relpath, it->relpath);
		if (covered) {
			it->action = RULE_DELETE;
			continue;
		}
		if (q->dels == NULL)
			q->dels = xcalloc(n, sizeof *q->dels);
		q->dels[ops] = (DeleteOp){ q, order[k] };
		q->waiting++;
		remote_session_send(q->rd->session, "DELETE", args, 1,
		    delete_done, &q->dels[ops++]);
	}
	free(order);
	if (q->waiting == 0)
		batch_run(q);
}

/* After the look: hand back what must not wait for a big file, then the
 * deletes, then the run. */
static void
batch_looked(Req *q)
{
	RemoteDest *rd = q->rd;
	DestBatch *b = q->b;
	const SourceLook *l = q->look;
	bool big = false, other = false;

	if (l->fault != GUARD_OK || l->err != 0) {
		b->fault = l->fault;
		for (size_t i = 0; i < b->n; i++) {
			b->items[i].fault = l->fault;
			b->items[i].err = l->err;
		}
		req_finish(q);
		return;
	}
	for (size_t i = 0; i < b->n; i++) {
		if (l->facts[i].is_file && l->facts[i].size >= REMOTE_BIG_BYTES)
			big = true;
		else
			other = true;
		if (l->facts[i].err != 0)
			b->items[i].err = l->facts[i].err;
	}
	q->listed = xcalloc(b->n ? b->n : 1, sizeof *q->listed);
	index_names(q);
	if (big && !q->big) {
		/* The small ones go back (due at once, another batch); the
		 * big ones run beside the small lane. */
		for (size_t i = 0; i < b->n && other; i++)
			if (!(l->facts[i].is_file &&
			    l->facts[i].size >= REMOTE_BIG_BYTES))
				b->items[i].skipped = true;
		q->big = true;
		rd->small = NULL;
		q->next = NULL;
		*rd->big_tail = q;
		rd->big_tail = &q->next;
		pump(rd);
		return;
	}
	batch_deletes(q);
}

static void
look_done(Job *job)
{
	SourceLook *l = (SourceLook *)job;
	Req *q = l->owner;

	q->rd->looks--;
	if (job->cancelled || q->rd->stopped) {
		q->cancelled = true;
		req_finish(q);
		return;
	}
	if (q->kind == REQ_BATCH)
		batch_looked(q);
	else
		compare_looked(q);
}

/* The look at the source (on a worker) a batch or a compare starts with. */
static void
start_look(Req *q)
{
	RemoteDest *rd = q->rd;
	SourceLook *l = xcalloc(1, sizeof *l);

	l->owner = q;
	l->source = xstrdup(rd->source);
	if (q->b != NULL) {
		l->expect = q->b->opt.expect;
		l->n = q->b->n;
		l->paths = xcalloc(l->n ? l->n : 1, sizeof *l->paths);
		for (size_t i = 0; i < l->n; i++)
			l->paths[i] = xstrdup(q->b->items[i].relpath);
	} else {
		l->expect = q->c->opt.expect;
	}
	l->job.run = remote_look_run;
	l->job.done = look_done;
	q->look = l;
	rd->looks++;
	pool_submit(rd->pool, &l->job);
}

/* ---- renames -------------------------------------------------------------- */

static void
rename_done(void *arg, int err, RemoteProtoLine *line)
{
	DeleteOp *op = arg;
	Req *q = op->q;
	DestRenames *r = q->r;

	(void)line;
	q->waiting--;
	if (err == -ECANCELED)
		return;
	if (err != -EHOSTDOWN)
		q->answered++;
	r->items[op->item].err = err > 0 ? -err : err;
	if (q->waiting > 0)
		return;
	if (q->answered == 0 && !q->rd->stopped)
		r->err = DEST_ERR_AWAY;	/* none was tried */
	q->cancelled = q->rd->stopped;
	req_finish(q);
}

static void
renames_start(Req *q)
{
	DestRenames *r = q->r;

	q->dels = xcalloc(r->n ? r->n : 1, sizeof *q->dels);
	for (size_t i = 0; i < r->n; i++) {
		const char *args[] = { r->items[i].from, r->items[i].to };

		q->dels[i] = (DeleteOp){ q, i };
		q->waiting++;
		remote_session_send(q->rd->session, "RENAME", args, 2,
		    rename_done, &q->dels[i]);
	}
	if (q->waiting == 0)
		req_finish(q);
}

/* ---- compares ------------------------------------------------------------- */

static void
compare_line(Proc *p, int fd, char *line, size_t len, void *arg)
{
	Req *q = arg;
	SyncStats *st = &q->c->st;
	RuleAction action;
	char *name;

	(void)p;
	if (fd == 2) {
		keep_err(q, line, len);
		if (strncmp(line, "rsync: ", 7) == 0 &&
		    strstr(line, "vanished") == NULL)
			st->errors++;
		if (strstr(line, "Could not chdir to home") == NULL)
			synclog_event(LOG_LEVEL_DEBUG, q->rd->pair->name,
			    "rsync", "", q->rd->base.name, "%s", line);
		return;
	}
	if (remote_parse_stats_line(line, st))
		return;
	if (q->dry || !remote_parse_item(line, &action, &name))
		return;
	switch (action) {
	case RULE_MKDIR:
		st->dirs_created++;
		break;
	case RULE_SYMLINK:
		st->symlinks++;
		break;
	case RULE_HARDLINK:
		st->hardlinks++;
		break;
	case RULE_ATTRS:
		st->meta_fixed++;
		break;
	default:
		break;
	}
	if (q->c->opt.dry_run && action == RULE_DELETE)
		st->dry_deletes++;
	if (q->c->opt.report != NULL && action != RULE_NONE) {
		FullSyncStep step = { .relpath = name, .done = action };

		q->c->opt.report(q->c->opt.report_arg, &step);
	}
}

static void compare_run(Req *q);

static void
compare_exit(Proc *p, int status, void *arg)
{
	Req *q = arg;
	RemoteDest *rd = q->rd;
	SyncStats *st = &q->c->st;
	RemoteFault f;
	char why[512];

	(void)p;
	proc_free(q->proc);
	q->proc = NULL;
	if (q->cancelled || rd->stopped) {
		q->cancelled = true;
		req_finish(q);
		return;
	}
	f = remote_classify(status, q->err, why, sizeof why);
	if (f == REMOTE_AWAY || f == REMOTE_HOST_KEY || f == REMOTE_AUTH) {
		req_away(q, f, why);
		return;
	}
	if (f == REMOTE_ROOT_CHANGED) {
		rd->root_changed = true;
		snprintf(rd->reason, sizeof rd->reason, "%s", why);
		set_away_err(q);
		update_away(rd);
		req_finish(q);
		return;
	}
	if (q->dry) {
		/* Counted: entries in the destination = the source's, less
		 * those it would create, plus those it would delete. */
		uint64_t dst = st->entries_seen + st->deleted;
		uint64_t budget = guard_delete_budget(&rd->pair->max_delete,
		    dst > 0 ? dst - 1 : 0);

		memset(st, 0, sizeof *st);
		q->dry = false;
		q->max_delete = budget == UINT64_MAX ? -1 : (long long)budget;
		q->err[0] = '\0';
		compare_run(q);
		return;
	}
	if (f != REMOTE_OK && st->errors == 0)
		st->errors = 1;
	if (f == REMOTE_FAILED)
		synclog_event(LOG_LEVEL_WARN, rd->pair->name, "full",
		    q->c->relroot, rd->base.name, "the compare failed: %s",
		    why);
	if (q->empty_guard && st->withheld > 0) {
		/* The source looks empty and the host's tree is not:
		 * nothing deleted until the operator says so. */
		st->fault = GUARD_EMPTY;
		st->withheld = 0;
	}
	if (q->c->opt.dry_run)
		st->deleted = 0;	/* counted as dry_deletes */
	st->entries_done = st->entries_seen;
	st->bytes_done = st->bytes_seen;
	st->scan_done = true;
	if (q->c->relroot[0] == '\0' && f == REMOTE_OK && st->errors == 0 &&
	    rd->session != NULL) {
		/* In sync: partial files kept for a resume are moot now. */
		const char *args[] = { rd->tag, "tree", "partial" };

		remote_session_send(rd->session, "CLEAN", args, 3, clean_done,
		    rd);
	}
	req_finish(q);
}

static void
compare_run(Req *q)
{
	RemoteDest *rd = q->rd;
	RemoteCompare *c = q->c;
	bool sub = c->relroot[0] != '\0';
	RemoteRunSpec spec = { 0 };
	ProcSpec ps = { .want_stdin = sub, .on_line = compare_line,
	    .on_exit = compare_exit, .arg = q };
	char temp[64], **argv;
	int r;

	fsutil_temp_name(temp, sizeof temp);
	spec.remote = remote_host_config(rd->host);
	spec.source = rd->source;
	spec.root = rd->root;
	spec.root_dev = rd->root_dev;
	spec.root_ino = rd->root_ino;
	spec.temp_dir = temp;
	spec.filters = rd->filters;
	spec.files_from = sub;
	spec.recursive = true;
	spec.delete = rd->pair->delete;
	spec.implied_dirs = true;
	spec.checksum = rd->pair->compare == COMPARE_HASH;
	spec.dry_run = q->dry || c->opt.dry_run;
	spec.stats = true;
	spec.max_delete = q->dry ? -1 : q->max_delete;
	argv = remote_rsync_argv(&spec);
	ps.argv = argv;
	r = proc_spawn(rd->ev, &ps, &q->proc);
	remote_argv_free(argv);
	if (r < 0) {
		q->proc = NULL;
		c->st.errors++;
		req_finish(q);
		return;
	}
	if (sub) {
		proc_write(q->proc, c->relroot, strlen(c->relroot) + 1);
		proc_close_stdin(q->proc);
	}
}

static void
compare_looked(Req *q)
{
	RemoteDest *rd = q->rd;
	RemoteCompare *c = q->c;
	const SourceLook *l = q->look;
	bool del = rd->pair->delete;

	c->st.source = l->seen;
	if (l->fault != GUARD_OK || l->err != 0) {
		c->st.fault = l->fault;
		if (l->fault == GUARD_OK)
			c->st.errors = 1;
		req_finish(q);
		return;
	}
	q->max_delete = -1;
	c->st.delete_budget = UINT64_MAX;
	if (del && c->opt.hold_deletes) {
		q->max_delete = 0;
	} else if (del && !c->opt.force && l->root_empty &&
	    c->relroot[0] == '\0') {
		q->max_delete = 0;
		q->empty_guard = true;
	} else if (del && !c->opt.force &&
	    rd->pair->max_delete.kind == MAX_DELETE_COUNT) {
		q->max_delete = (long long)rd->pair->max_delete.value;
	} else if (del && !c->opt.force &&
	    rd->pair->max_delete.kind == MAX_DELETE_PERCENT) {
		q->dry = true;	/* count the destination first */
	}
	if (q->max_delete >= 0)
		c->st.delete_budget = (uint64_t)q->max_delete;
	compare_run(q);
}

/* ---- the queue ------------------------------------------------------------ */

static void
start(Req *q)
{
	switch (q->kind) {
	case REQ_RENAMES:
		renames_start(q);
		break;
	case REQ_BATCH:
		if (q->b->n == 0) {
			req_finish(q);
			break;
		}
		start_look(q);
		break;
	case REQ_COMPARE:
		start_look(q);
		break;
	}
}

static void
pump(RemoteDest *rd)
{
	Req *q;

	if (rd->stopped || rd->away)
		return;
	if (!rd->session_ready) {
		if (rd->head == NULL && rd->big_head == NULL)
			return;
		if (remote_host_state(rd->host) == REMOTE_HOST_UP)
			start_session(rd);
		else
			remote_host_want(rd->host);
		return;
	}
	if (rd->big == NULL && (q = rd->big_head) != NULL) {
		rd->big_head = q->next;
		if (rd->big_head == NULL)
			rd->big_tail = &rd->big_head;
		rd->big = q;
		batch_deletes(q);
	}
	if (rd->small != NULL || (q = rd->head) == NULL)
		return;
	/* A compare runs alone. */
	if (q->kind == REQ_COMPARE && rd->big != NULL)
		return;
	rd->head = q->next;
	if (rd->head == NULL)
		rd->tail = &rd->head;
	q->next = NULL;
	rd->small = q;
	start(q);
}

static Req *
req_new(RemoteDest *rd, ReqKind kind)
{
	Req *q = xcalloc(1, sizeof *q);

	q->kind = kind;
	q->rd = rd;
	q->names = (Map)MAP_INIT;
	return q;
}

static void
submit(RemoteDest *rd, Req *q)
{
	if (rd->stopped) {
		q->cancelled = true;
		defer(q);
		return;
	}
	if (rd->away) {
		set_away_err(q);
		defer(q);
		return;
	}
	*rd->tail = q;
	rd->tail = &q->next;
	pump(rd);
}

/* ---- the seam ------------------------------------------------------------- */

static void
remote_capacity(const Dest *d, DestCapacity *out)
{
	(void)d;
	out->requests = REMOTE_REQUESTS;
	out->parallel = 1;
	out->batch_paths = REMOTE_BATCH_PATHS;
}

static void
remote_sync_paths(Dest *d, DestBatch *b)
{
	Req *q = req_new(RD(d), REQ_BATCH);

	q->b = b;
	submit(RD(d), q);
}

static void
remote_rename(Dest *d, DestRenames *r)
{
	Req *q = req_new(RD(d), REQ_RENAMES);

	q->r = r;
	submit(RD(d), q);
}

static int
remote_compare(Dest *d, const char *relroot, const FullSyncOptions *opt,
    DestCompareDoneFn done, void *arg, DestCompare **ret)
{
	RemoteCompare *c = xcalloc(1, sizeof *c);
	Req *q = req_new(RD(d), REQ_COMPARE);

	c->base.dest = d;
	c->base.done = done;
	c->base.arg = arg;
	c->relroot = xstrdup(relroot);
	c->opt = *opt;
	c->req = q;
	q->c = c;
	*ret = &c->base;
	submit(RD(d), q);
	return 0;
}

static const SyncStats *
remote_compare_stats(const DestCompare *c)
{
	return &((const RemoteCompare *)(const void *)c)->st;
}

static void
remote_compare_free(DestCompare *dc)
{
	RemoteCompare *c = (RemoteCompare *)(void *)dc;

	if (c->req != NULL) {
		/* Still out (stopped): it finishes without telling anyone. */
		c->req->c = NULL;
		c->req->cancelled = true;
		if (c->req->proc != NULL)
			proc_kill(c->req->proc, SIGTERM);
	}
	free(c->relroot);
	free(c);
}

static void
remote_state(const Dest *d, DestState *out)
{
	const RemoteDest *rd = RD(d);

	out->availability = rd->away ? DEST_AWAY : DEST_AVAILABLE;
	out->away_since = rd->away ? rd->away_since : 0;
	out->reason = rd->away ? rd->reason : NULL;
}

static size_t
remote_in_flight(const Dest *d)
{
	const RemoteDest *rd = RD(d);

	return rd->looks + rd->deferred + (rd->small != NULL) +
	    (rd->big != NULL);
}

static void
remote_stop(Dest *d)
{
	RemoteDest *rd = RD(d);
	Req *q;

	if (rd->stopped)
		return;
	rd->stopped = true;
	while ((q = rd->head) != NULL) {
		rd->head = q->next;
		q->cancelled = true;
		defer(q);
	}
	rd->tail = &rd->head;
	while ((q = rd->big_head) != NULL) {
		rd->big_head = q->next;
		q->cancelled = true;
		defer(q);
	}
	rd->big_tail = &rd->big_head;
	/* Runs out stop now (rsync keeps an interrupted file in its
	 * partial dir); ops out are answered or cancelled. */
	if (rd->small != NULL && rd->small->proc != NULL)
		proc_kill(rd->small->proc, SIGTERM);
	if (rd->big != NULL && rd->big->proc != NULL)
		proc_kill(rd->big->proc, SIGTERM);
	if (rd->session != NULL && remote_session_outstanding(rd->session) ==
	    0) {
		remote_session_free(rd->session);
		rd->session = NULL;
	}
}

static void
remote_free(Dest *d)
{
	RemoteDest *rd = RD(d);

	remote_session_free(rd->session);
	remote_host_unlisten(rd->host, &rd->listener);
	remote_host_put(rd->host);
	event_free(rd->root_timer);
	rsync_filter_free(rd->filters);
	free(rd->source);
	free(rd->root);
	free(rd);
}

static const DestOps remote_ops = {
	.kind = "remote",
	.capacity = remote_capacity,
	.sync_paths = remote_sync_paths,
	.rename = remote_rename,
	.compare = remote_compare,
	.compare_stats = remote_compare_stats,
	.compare_free = remote_compare_free,
	.state = remote_state,
	.in_flight = remote_in_flight,
	.stop = remote_stop,
	.free = remote_free,
};

int
dest_remote_new(struct event_base *base, Pool *pool,
    const SyncPairConfig *pair, const RemoteConfig *remote,
    const char *name, Dest **ret)
{
	const char *colon = strchr(name, ':');
	RemoteDest *rd;
	char temp[64];
	size_t n, bad;
	int r;

	if (colon == NULL || colon[1] != '/')
		return -EINVAL;
	rd = xcalloc(1, sizeof *rd);
	n = exclude_count(pair->exclude);
	{
		const char **pats = xcalloc(n + 1, sizeof *pats);

		for (size_t i = 0; i < n; i++)
			pats[i] = exclude_pattern(pair->exclude, i);
		r = rsync_filter_compile(pats, n, &rd->filters, &n, &bad);
		free(pats);
	}
	if (r < 0) {
		/* --check-config refuses such a pattern (config-remotes.c). */
		free(rd);
		return r;
	}
	dest_init(&rd->base, &remote_ops, name);
	rd->ev = base;
	rd->pool = pool;
	rd->pair = pair;
	rd->source = xstrdup(pair->source);
	rd->root = xstrdup(colon + 1);
	rd->tail = &rd->head;
	rd->big_tail = &rd->big_head;
	fsutil_temp_name(temp, sizeof temp);
	/* ".treesync.TAG.N": this run's tag, for CLEAN. */
	snprintf(rd->tag, sizeof rd->tag, "%.*s", REMOTE_PROTO_TAG_LEN,
	    temp + strlen(REMOTE_PROTO_TEMP_PREFIX));
	rd->root_timer = evtimer_new(base, on_root_timer, rd);
	if (rd->root_timer == NULL)
		xoom();
	rd->host = remote_host_get(base, remote);
	rd->listener.changed = host_changed;
	rd->listener.arg = rd;
	remote_host_listen(rd->host, &rd->listener);
	rd->away = remote_host_state(rd->host) == REMOTE_HOST_AWAY;
	*ret = &rd->base;
	return 0;
}
