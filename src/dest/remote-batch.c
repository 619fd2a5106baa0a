/*
 * remote-batch — a batch of a remote destination (remote-int.h, the plan
 * in remote.c's DESIGN): after the look at the source, the paths that
 * left it as DELETE ops, then one rsync run of the rest and their
 * parents, whose itemized lines and stderr say what became of each path.
 * Reactor thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dest/rsync-filter.h"
#include "engine/fsutil.h"
#include "remote-int.h"
#include "util/alloc.h"
#include "util/path.h"
#include "util/synclog.h"


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

void
remote_keep_err(Req *q, const char *line, size_t len)
{
	remote_tail_add(q->err, sizeof q->err, line, len);
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
		remote_keep_err(q, line, len);
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
		remote_req_finish(q);
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
		remote_req_away_err(q);
		remote_update_away(q->rd);
		remote_req_finish(q);
		return;
	default:
		remote_req_away(q, f, why);
		return;
	}
	remote_req_finish(q);
}

static void
batch_run(Req *q)
{
	RemoteDest *rd = q->rd;
	DestBatch *b = q->b;
	RemoteRunSpec spec = { 0 };
	char temp[64];
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
		remote_req_finish(q);
		return;
	}
	remote_run_spec(rd, &spec, temp, sizeof temp);
	spec.files_from = true;
	spec.delete = b->opt.rules.delete && !b->opt.hold_deletes;
	spec.implied_dirs = !q->big;
	spec.checksum = b->opt.rules.compare == COMPARE_HASH;
	spec.max_delete = -1;
	if ((r = remote_run_start(q, &spec, &ps)) < 0) {
		for (size_t i = 0; i < b->n; i++)
			if (q->listed[i])
				b->items[i].err = r;
		remote_req_finish(q);
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
	if (err == -EHOSTDOWN || err == -ECANCELED) {
		/* The session ended before it answered. */
		q->lost = true;
	} else if (err == 0 && line != NULL) {
		count = remote_proto_field(line, "count");
		it->count = count != NULL ? strtoull(count, NULL, 10) : 0;
		it->action = it->count > 0 ? RULE_DELETE : RULE_NONE;
	} else {
		it->action = RULE_DELETE;
		it->err = err > 0 ? -err : err;
	}
	if (q->waiting > 0)
		return;
	if (q->lost || q->rd->session == NULL || q->rd->stopped) {
		/* From the loop: the session's end is still being told. */
		q->cancelled = q->rd->stopped;
		if (!q->cancelled)
			remote_req_away_err(q);
		remote_req_defer(q);
		return;
	}
	batch_run(q);
}

/* Paths that left the source: DELETE ops, shallow first; a path beneath
 * one already going is gone with it. */
void
remote_batch_deletes(Req *q)
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
void
remote_batch_looked(Req *q)
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
		remote_req_finish(q);
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
		remote_lane_leave(rd, q);
		q->next = NULL;
		*rd->big_tail = q;
		rd->big_tail = &q->next;
		remote_pump(rd);
		return;
	}
	remote_batch_deletes(q);
}

