/*
 * remote-compare — a compare of a remote destination (remote-int.h): one
 * recursive rsync run with the compiled filters, --stats for the
 * figures, max_delete as --max-delete (a percentage counted by a dry run
 * first), and the empty-source guard. Reactor thread.
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


static void
compare_line(Proc *p, int fd, char *line, size_t len, void *arg)
{
	Req *q = arg;
	SyncStats *st = &q->c->st;
	RuleAction action;
	char *name;

	(void)p;
	if (fd == 2) {
		remote_keep_err(q, line, len);
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
		remote_req_finish(q);
		return;
	}
	f = remote_classify(status, q->err, why, sizeof why);
	if (f == REMOTE_AWAY || f == REMOTE_HOST_KEY || f == REMOTE_AUTH) {
		remote_req_away(q, f, why);
		return;
	}
	if (f == REMOTE_ROOT_CHANGED) {
		rd->root_changed = true;
		snprintf(rd->reason, sizeof rd->reason, "%s", why);
		remote_req_away_err(q);
		remote_update_away(rd);
		remote_req_finish(q);
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

		remote_session_send(rd->session, "CLEAN", args, 3, remote_clean_done,
		    rd);
	}
	remote_req_finish(q);
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
	char temp[64];
	int r;

	remote_run_spec(rd, &spec, temp, sizeof temp);
	spec.files_from = sub;
	spec.recursive = true;
	spec.delete = rd->pair->delete;
	spec.implied_dirs = true;
	spec.checksum = rd->pair->compare == COMPARE_HASH;
	spec.dry_run = q->dry || c->opt.dry_run;
	spec.stats = true;
	spec.max_delete = q->dry ? -1 : q->max_delete;
	if ((r = remote_run_start(q, &spec, &ps)) < 0) {
		c->st.errors++;
		remote_req_finish(q);
		return;
	}
	if (sub) {
		proc_write(q->proc, c->relroot, strlen(c->relroot) + 1);
		proc_close_stdin(q->proc);
	}
}

void
remote_compare_looked(Req *q)
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
		remote_req_finish(q);
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

