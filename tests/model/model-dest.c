/*
 * model-dest — the model's workers and the model destination behind the
 * seam (model-int.h, dest/dest.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "model-int.h"
#include "engine/copy.h"
#include "engine/rules.h"

/* ---- the model's workers ------------------------------------------------ */



static void
submit(MJob *j)
{
	j->next = NULL;
	*F.queued_tail = j;
	F.queued_tail = &j->next;
	F.nqueued++;
}

/* A worker takes one of the first `threads` queued jobs and runs it. */
void
worker_run_one(void)
{
	uint32_t k = rnd(F.rng, (uint32_t)(F.nqueued < (size_t)F.threads ?
	    F.nqueued : (size_t)F.threads));
	MJob **pp = &F.queued, *job;

	while (k-- > 0)
		pp = &(*pp)->next;
	job = *pp;
	*pp = job->next;
	if (F.queued_tail == &job->next)
		F.queued_tail = pp;
	F.nqueued--;
	job->run(job);
	job->next = NULL;
	*F.ran_tail = job;
	F.ran_tail = &job->next;
	F.nran++;
}

/* The reactor takes the oldest finished job: its completion. */
void
reactor_done_one(void)
{
	MJob *job = F.ran;

	F.ran = job->next;
	if (F.ran == NULL)
		F.ran_tail = &F.ran;
	F.nran--;
	job->done(job);
}

/* ---- a model destination: the seam (dest.h) over a model tree ------------ */



#define MODEL(d) ((ModelDest *)(void *)(d))

static int
fault_errno(void)
{
	return rnd(F.rng, 2) ? -EIO : -ENOSPC;
}

static bool
inject(void)
{
	return F.faults && chance(F.rng, F.fail_pct);
}

static bool
path_gone(int err)
{
	return err == -ENOENT || err == -ENOTDIR || err == -ELOOP;
}

/* copy_delete_tree: a failure may leave part of the tree deleted. */
static int
dst_delete(Tree *t, const char *path, uint64_t *count)
{
	char p[MAXP];

	snprintf(p, sizeof p, "%s", path);
	if (inject()) {
		if (rnd(F.rng, 2)) {
			/* What was inside went, the directory itself not. */
			size_t before = t->n;
			Node *n = t_get(t, p);
			if (n != NULL && n->type == T_DIR) {
				for (size_t i = 0; i < t->n;)
					if (is_under(t->v[i].path, p))
						t_remove_tree(t, t->v[i].path);
					else
						i++;
				if (t->n != before)
					touch_dir(t, p);
			}
		}
		return fault_errno();
	}
	*count += t_remove_tree(t, p);
	touch_parent(t, p);
	return 0;
}

/* copy_file_atomic / copy_symlink: a temporary renamed over the name. */
static int
dst_copy(Tree *t, const Node *s)
{
	Node *d;

	if (inject())
		return fault_errno();	/* the temporary is removed */
	/* copy_file_atomic saw the file change while it read it. */
	if (s->writing && F.faults && chance(F.rng, 50))
		return COPY_SOURCE_CHANGED;
	if ((d = t_get(t, s->path)) != NULL && d->type == T_DIR)
		abort();	/* callers delete a directory first */
	if (d == NULL)
		d = t_add(t, s->path, s->type);
	*d = *s;
	touch_parent(t, s->path);
	return 0;
}

/* copy_set_meta: mode, then times; a failure may stop between them. */
static int
dst_meta(Node *d, const Node *s)
{
	if (inject()) {
		if (rnd(F.rng, 2))
			d->mode = s->mode;
		return fault_errno();
	}
	d->mode = s->mode;
	d->mtime = s->mtime;
	return 0;
}

/* A model entry as a scan lists it, for rules_decide (one owner, one
 * link each; a symlink's target is its content's number). */
static const ScanEntry *
entry_of(const Node *n, ScanEntry *e, char *target, size_t size)
{
	if (n == NULL)
		return NULL;
	memset(e, 0, sizeof *e);
	e->meta.mode = (n->type == T_FILE ? S_IFREG : n->type == T_DIR ?
	    S_IFDIR : S_IFLNK) | (n->mode & 07777);
	e->meta.size = n->type == T_FILE ? n->size : 0;
	e->meta.mtime_sec = (int64_t)n->mtime;
	e->meta.nlink = 1;
	if (n->type == T_LINK) {
		snprintf(target, size, "%u", (unsigned)n->content);
		e->link_target = target;
	}
	return e;
}

/* What the rules (engine/rules.h, the daemon's one decision) say a
 * destination entry d (or NULL) needs to equal the source entry s (or
 * NULL); a hash is the content's. */
static RuleDecision
model_decide(const Node *s, const Node *d, const RuleOptions *opt)
{
	char st[16], dtg[16];
	ScanEntry se, de;
	const ScanEntry *sp = entry_of(s, &se, st, sizeof st);
	const ScanEntry *dp = entry_of(d, &de, dtg, sizeof dtg);
	RuleDecision r = rules_decide(sp, dp, opt);

	if (r.action == RULE_HASH)
		r = rules_after_hash(sp, dp, opt, s->content == d->content);
	return r;
}

/* The model's pair: delete = true, compare = "mtime" (model.c). */
static const RuleOptions model_rules = { .compare = COMPARE_MTIME,
	.delete = true };

/* A file or symlink where the destination has another entry, or other
 * content: replaced (a directory deleted first). */
static void
path_replace(Tree *dt, const Node *s, const RuleDecision *rule,
    DestItem *it)
{
	if (rule->replace) {
		it->action = RULE_DELETE;
		if ((it->err = dst_delete(dt, s->path, &it->count)) != 0)
			return;
	}
	it->action = rule->action;
	it->entries_changed = true;
	it->bytes = s->size;
	it->err = dst_copy(dt, s);
}

/* The root's own metadata (pathsync's sync_root_meta). */
static void
path_root(Tree *dt, DestItem *it)
{
	if (!model_decide(&F.src.v[0], &dt->v[0], &model_rules).attrs)
		return;
	it->action = RULE_ATTRS;
	it->err = dst_meta(&dt->v[0], &F.src.v[0]);
}

/*
 * One path of a batch, with the contract of the local destination's
 * worker (pathsync): gone parents give DEST_NO_PARENT or nothing, a
 * directory missing in the destination DEST_SUBTREE, size+mtime decide a
 * copy, a directory in a file's place is deleted first.
 */
static void
model_path(ModelDest *md, const DestBatchOptions *opt, DestItem *it)
{
	Tree *dt = &F.dst[md->di];
	const char *path = it->relpath;
	RuleDecision rule;
	int sp, dp;
	Node *s, *d;

	if (path[0] == '\0') {
		path_root(dt, it);
		return;
	}
	sp = t_parent_state(&F.src, path);
	dp = inject() ? fault_errno() : t_parent_state(dt, path);
	if (sp < 0 && !path_gone(sp)) {
		it->err = sp;
		return;
	}
	s = sp == 0 ? t_get(&F.src, path) : NULL;
	if (dp < 0) {
		if (path_gone(dp))
			it->outcome = s != NULL ? DEST_NO_PARENT : DEST_DONE;
		else
			it->err = dp;
		return;
	}
	if (inject()) {
		it->err = fault_errno();	/* its stat */
		return;
	}
	d = t_get(dt, path);
	if (opt->expect.known)
		abort();	/* no guard in the model: passes say unknown */
	rule = model_decide(s, d, &opt->rules);
	switch (rule.action) {
	case RULE_DELETE:
		it->action = RULE_DELETE;
		it->entries_changed = true;
		it->err = dst_delete(dt, path, &it->count);
		break;
	case RULE_MKDIR:
		it->outcome = DEST_SUBTREE;
		break;
	case RULE_RECURSE:
	case RULE_ATTRS:
		if (rule.action == RULE_RECURSE && !rule.attrs)
			break;
		it->action = RULE_ATTRS;
		it->err = dst_meta(d, s);
		break;
	case RULE_COPY:
	case RULE_SYMLINK:
		path_replace(dt, s, &rule, it);
		break;
	default:
		break;	/* in sync, or kept */
	}
}

typedef struct BatchJob {
	MJob j;
	DestBatch *b;
} BatchJob;

/* The batch's paths at one instant, against the source as it is now;
 * past 4 MiB copied, the rest are handed back (as the local one does). */
static void
batch_run(MJob *j)
{
	DestBatch *b = ((BatchJob *)j)->b;

	if (j->md->away) {
		b->err = DEST_ERR_AWAY;
		trace("batch (dest %zu): away", j->md->di);
		return;
	}
	for (size_t i = 0; i < b->n; i++) {
		DestItem *it = &b->items[i];

		if (b->bytes >= (4u << 20)) {
			it->skipped = true;
			continue;
		}
		model_path(j->md, &b->opt, it);
		b->bytes += it->bytes;
		trace("path '%s' (dest %zu): action %d outcome %d err %d",
		    it->relpath, j->md->di, (int)it->action, (int)it->outcome,
		    it->err);
	}
}

static void
batch_done(MJob *j)
{
	DestBatch *b = ((BatchJob *)j)->b;

	j->md->jobs--;
	free(j);
	b->done(b);
}

static void
model_sync_paths(Dest *d, DestBatch *b)
{
	BatchJob *bj = calloc(1, sizeof *bj);

	if (bj == NULL)
		abort();
	bj->j.run = batch_run;
	bj->j.done = batch_done;
	bj->j.md = MODEL(d);
	bj->b = b;
	MODEL(d)->jobs++;
	submit(&bj->j);
}

/* renameat(2) in a destination, with its rules. */
static int
model_rename_one(Tree *t, const char *from, const char *to)
{
	Node *f, *d;
	int e;

	if ((e = t_parent_state(t, from)) < 0 ||
	    (e = t_parent_state(t, to)) < 0)
		return e;
	if (inject())
		return fault_errno();
	if ((f = t_get(t, from)) == NULL)
		return -ENOENT;
	if (strcmp(from, to) == 0)
		return 0;
	if (is_under(to, from))
		return -EINVAL;
	if ((d = t_get(t, to)) != NULL) {
		if (f->type == T_DIR && d->type != T_DIR)
			return -ENOTDIR;
		if (f->type != T_DIR && d->type == T_DIR)
			return -EISDIR;
		if (d->type == T_DIR && t_has_children(t, to))
			return -ENOTEMPTY;
		t_remove_tree(t, to);
	}
	t_move(t, from, to);
	touch_parent(t, from);
	touch_parent(t, to);
	return 0;
}

typedef struct RenameJob {
	MJob j;
	DestRenames *r;
} RenameJob;

static void
rename_run(MJob *j)
{
	DestRenames *r = ((RenameJob *)j)->r;

	if (j->md->away) {
		r->err = DEST_ERR_AWAY;
		trace("renames (dest %zu): away", j->md->di);
		return;
	}
	for (size_t i = 0; i < r->n; i++) {
		r->items[i].err = model_rename_one(&F.dst[j->md->di],
		    r->items[i].from, r->items[i].to);
		trace("rename '%s' -> '%s': %d", r->items[i].from,
		    r->items[i].to, r->items[i].err);
	}
}

static void
rename_done(MJob *j)
{
	DestRenames *r = ((RenameJob *)j)->r;

	j->md->jobs--;
	free(j);
	r->done(r);
}

static void
model_rename(Dest *d, DestRenames *r)
{
	RenameJob *rj = calloc(1, sizeof *rj);

	if (rj == NULL)
		abort();
	rj->j.run = rename_run;
	rj->j.done = rename_done;
	rj->j.md = MODEL(d);
	rj->r = r;
	MODEL(d)->jobs++;
	submit(&rj->j);
}

/* ---- a model compare (fullsync's contract) -------------------------------- */

typedef struct ModelCompare {
	DestCompare base;
	MJob j;
	char relroot[MAXP];
	SyncStats st;
	bool stopped;
	bool queued;		/* its job is out */
	/* Like the real pass, one directory at a time, each a job of its
	 * own: the source changes between them. */
	bool opened;
	bool failing;		/* this pass fails some entries */
	char todo[MAXN][MAXP];
	size_t ntodo;
} ModelCompare;

#define COMPARE_OF(job) ((ModelCompare *)(void *)((char *)(job) - \
	offsetof(ModelCompare, j)))

/* A file or symlink as the source has it (a pass's copy). */
static void
put(Tree *t, const Node *s, const char *dir)
{
	Node *d = t_get(t, s->path);

	if (d == NULL)
		d = t_add(t, s->path, s->type);
	*d = *s;
	touch_dir(t, dir);
}

/* Makes the entries of the destination directory dir equal to the
 * source's (a failed entry is skipped); its directories come later. */
static void
pass_dir(ModelCompare *fs, const char *dir)
{
	Tree *t = &F.dst[MODEL(fs->base.dest)->di];
	char kids[MAXN][MAXP];
	size_t nk = 0;
	const Node *sd = t_get(&F.src, dir), *dd = t_get(t, dir);

	/* Gone from either side since it was listed: the events that say
	 * so bring the paths back (the real scan finds ENOENT). */
	if (sd == NULL || sd->type != T_DIR || dd == NULL ||
	    dd->type != T_DIR)
		return;
	/* The source's entries (copied: the loop changes the trees). */
	for (size_t i = 0; i < F.src.n; i++) {
		char p[MAXP];

		parent_of(F.src.v[i].path, p);
		/* The planner ignores excluded names on both sides. */
		if (F.src.v[i].path[0] != '\0' && strcmp(p, dir) == 0 &&
		    !exclude_match(model_ex, F.src.v[i].path,
		    F.src.v[i].type == T_DIR))
			snprintf(kids[nk++], MAXP, "%s", F.src.v[i].path);
	}
	for (size_t k = 0; k < nk; k++) {
		Node s = *t_get(&F.src, kids[k]), *d = t_get(t, kids[k]);
		RuleDecision rule;

		fs->st.entries_seen++;
		if (fs->failing && chance(F.rng, 20)) {
			fs->st.errors++;
			continue;
		}
		rule = model_decide(&s, d, &model_rules);
		if (rule.replace) {
			fs->st.deleted += t_remove_tree(t, kids[k]);
			touch_dir(t, dir);
			d = NULL;
		}
		switch (rule.action) {
		case RULE_COPY:
		case RULE_SYMLINK:
			put(t, &s, dir);
			fs->st.files_copied++;
			break;
		case RULE_ATTRS:
			d->mode = s.mode;
			d->mtime = s.mtime;
			break;
		case RULE_MKDIR: {
			Node *m = t_add(t, kids[k], T_DIR);
			m->mode = 0700;
			m->mtime = ++F.tick;
			touch_dir(t, dir);
		}
			/* FALLTHROUGH */
		case RULE_RECURSE:
			/* Its own attributes once its entries are final. */
			snprintf(fs->todo[fs->ntodo++], MAXP, "%.*s", MAXP - 1,
			    kids[k]);
			break;
		default:
			break;
		}
	}
	/* What the source no longer has. */
	nk = 0;
	for (size_t i = 0; i < t->n; i++) {
		char p[MAXP];

		parent_of(t->v[i].path, p);
		if (t->v[i].path[0] != '\0' && strcmp(p, dir) == 0 &&
		    t_find(&F.src, t->v[i].path) < 0 &&
		    !exclude_match(model_ex, t->v[i].path,
		    t->v[i].type == T_DIR) &&
		    model_decide(NULL, &t->v[i], &model_rules).action ==
		    RULE_DELETE)
			snprintf(kids[nk++], MAXP, "%s", t->v[i].path);
	}
	for (size_t k = 0; k < nk; k++) {
		if (fs->failing && chance(F.rng, 20)) {
			fs->st.errors++;
			continue;
		}
		fs->st.deleted += t_remove_tree(t, kids[k]);
		touch_dir(t, dir);
	}
	/* The directory's own metadata, once its entries are final. */
	{
		Node *s = t_get(&F.src, dir), *d = t_get(t, dir);
		if (s != NULL && d != NULL) {
			d->mode = s->mode;
			d->mtime = s->mtime;
		}
	}
}

/* The pass's first job opens its roots (open_subtree); each later one
 * does one directory. */
static void
compare_open(ModelCompare *fs)
{
	Tree *t = &F.dst[MODEL(fs->base.dest)->di];
	const char *r = fs->relroot;
	Node *s, *d;
	int e;

	fs->opened = true;
	memset(&fs->st, 0, sizeof fs->st);
	fs->st.delete_budget = UINT64_MAX;
	fs->failing = F.faults && chance(F.rng, F.pass_fail_pct);
	if (fs->failing && chance(F.rng, 30)) {
		fs->st.errors = 1;	/* a root would not open */
		return;
	}
	if (r[0] != '\0') {
		/* open_subtree */
		if ((e = t_parent_state(&F.src, r)) < 0) {
			if (e != -ENOENT)
				fs->st.errors = 1;
			return;
		}
		if ((s = t_get(&F.src, r)) == NULL || s->type != T_DIR)
			return;	/* gone, or no longer a directory */
		if (t_parent_state(t, r) < 0) {
			fs->st.errors = 1;
			return;
		}
		if ((d = t_get(t, r)) == NULL || d->type != T_DIR) {
			Node *m;
			if (d != NULL)
				t_remove_tree(t, r);
			m = t_add(t, r, T_DIR);
			m->mode = 0700;
			m->mtime = ++F.tick;
			touch_parent(t, r);
		}
	}
	snprintf(fs->todo[fs->ntodo++], MAXP, "%s", r);
}

static void
compare_run(MJob *j)
{
	ModelCompare *fs = COMPARE_OF(j);
	char dir[MAXP];

	if (j->md->away) {
		/* The connection went: what was done stays done. */
		fs->base.err = DEST_ERR_AWAY;
		fs->ntodo = 0;
		return;
	}
	if (!fs->opened) {
		compare_open(fs);
		return;
	}
	snprintf(dir, sizeof dir, "%s", fs->todo[--fs->ntodo]);
	pass_dir(fs, dir);
}

static void
compare_job_done(MJob *j)
{
	ModelCompare *fs = COMPARE_OF(j);

	j->md->jobs--;
	fs->queued = false;
	if (fs->stopped || j->md->stopped)
		return;	/* stopped: its done is not called (dest.h) */
	if (fs->ntodo > 0) {
		fs->queued = true;	/* the next directory */
		j->md->jobs++;
		submit(j);
		return;
	}
	fs->st.scan_done = true;
	trace("pass %zu '%s' done: %llu errors%s", j->md->di, fs->relroot,
	    (unsigned long long)fs->st.errors, fs->base.err ? " (away)" : "");
	fs->base.done(&fs->base, fs->base.arg);
}

static int
model_compare(Dest *d, const char *relroot, const FullSyncOptions *opt,
    DestCompareDoneFn done, void *arg, DestCompare **ret)
{
	ModelCompare *fs = calloc(1, sizeof *fs);

	(void)opt;
	if (fs == NULL)
		return -ENOMEM;
	fs->base.dest = d;
	fs->base.done = done;
	fs->base.arg = arg;
	snprintf(fs->relroot, sizeof fs->relroot, "%s",
	    relroot != NULL ? relroot : "");
	fs->j.run = compare_run;
	fs->j.done = compare_job_done;
	fs->j.md = MODEL(d);
	trace("pass %zu '%s' starts", MODEL(d)->di, fs->relroot);
	*ret = &fs->base;
	fs->queued = true;
	MODEL(d)->jobs++;
	submit(&fs->j);
	return 0;
}

static const SyncStats *
model_compare_stats(const DestCompare *c)
{
	return &((const ModelCompare *)(const void *)c)->st;
}

static void
model_compare_free(DestCompare *c)
{
	free(c);
}

static void
model_capacity(const Dest *d, DestCapacity *out)
{
	*out = MODEL(d)->cap;
}

static void
model_state(const Dest *d, DestState *out)
{
	out->availability = MODEL(d)->away ? DEST_AWAY : DEST_AVAILABLE;
	out->away_since = MODEL(d)->away ? 1 : 0;
	out->reason = MODEL(d)->away ? "the model's host is away" : NULL;
}

static size_t
model_in_flight(const Dest *d)
{
	return MODEL(d)->jobs;
}

static void
model_stop(Dest *d)
{
	MODEL(d)->stopped = true;
}

static void
model_free(Dest *d)
{
	free(d);
}

static const DestOps model_ops = {
	.kind = "model",
	.capacity = model_capacity,
	.sync_paths = model_sync_paths,
	.rename = model_rename,
	.compare = model_compare,
	.compare_stats = model_compare_stats,
	.compare_free = model_compare_free,
	.state = model_state,
	.in_flight = model_in_flight,
	.stop = model_stop,
	.free = model_free,
};

/* Destination k: local-like (the workers' share, 64 paths a batch) or,
 * remote-like, two runs of many paths that may go away. */
ModelDest *
model_dest_new(size_t k, const char *name, bool remote)
{
	ModelDest *md = calloc(1, sizeof *md);

	if (md == NULL)
		abort();
	dest_init(&md->base, &model_ops, name);
	md->di = k;
	if (remote)
		md->cap = (DestCapacity){ 2, 1, 1000 };
	else
		md->cap = (DestCapacity){ (size_t)F.threads + 1,
		    (size_t)F.threads, 64 };
	return md;
}

/* A remote-like destination goes away or comes back (told from the
 * loop, as a real one would). */
void
toggle_away(ModelDest *md)
{
	if (md->cap.requests != 2)
		return;
	md->away = !md->away;
	trace("dest %zu %s", md->di, md->away ? "goes away" : "is back");
	dest_changed(&md->base);
}
