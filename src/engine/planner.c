/*
 * planner — see include/engine/planner.h.
 *
 * Why this order:
 *  1. Deletes first: a name whose type changed (a directory that became a
 *     file) must be gone before the new entry can take it, and a full disk
 *     gets its space back before anything is written.
 *  2. Mkdirs next, so the files and subtrees that go into them have a home.
 *  3. Files, symlinks and metadata: independent of each other, so the
 *     caller may run them in parallel batches.
 *  4. Subdirectories last: the caller descends into them after 1 and 2.
 * A directory's own mode and times are not here: the caller sets them when
 * everything beneath it is done, because every entry created inside a
 * directory changes its mtime.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/planner.h"

#define PHASES 4

static int
phase_of(PlanType t)
{
	switch (t) {
	case PLAN_DELETE:
		return 0;
	case PLAN_MKDIR:
		return 1;
	case PLAN_RECURSE:
		return 3;
	default:
		return 2;
	}
}

static int
push(Plan *plan, PlanType type, const ScanEntry *src, const ScanEntry *dst)
{
	PlanAction *a;

	if (plan->n == plan->cap) {
		size_t cap = plan->cap ? plan->cap * 2 : 32;
		PlanAction *v = realloc(plan->actions, cap * sizeof *v);
		if (v == NULL)
			return -ENOMEM;
		plan->actions = v;
		plan->cap = cap;
	}
	a = &plan->actions[plan->n++];
	memset(a, 0, sizeof *a);
	a->type = type;
	a->src = src;
	a->dst = dst;
	switch (type) {
	case PLAN_MKDIR:
	case PLAN_COPY:
	case PLAN_HASH_COPY:
	case PLAN_HARDLINK:
	case PLAN_SYMLINK:
	case PLAN_META:
		plan->n_src_acted++;
		if (S_ISREG(src->meta.mode))
			plan->src_bytes_acted += (uint64_t)src->meta.size;
		break;
	default:
		break;
	}
	return 0;
}

bool
planner_same_content(const FileMeta *src, const FileMeta *dst)
{
	return src->size == dst->size && src->mtime_sec == dst->mtime_sec &&
	    src->mtime_nsec == dst->mtime_nsec;
}

bool
planner_same_attrs(const FileMeta *src, const FileMeta *dst,
    bool preserve_owner)
{
	if ((src->mode & 07777) != (dst->mode & 07777))
		return false;
	return !preserve_owner || (src->uid == dst->uid && src->gid == dst->gid);
}

/* Excluded, or one of our temporaries that a source happens to hold. */
static bool
ignored(const char *dir_relpath, const char *name, bool is_dir,
    const Exclude *ex)
{
	char path[8192];
	int n;

	if (fsutil_is_temp_name(name))
		return true;
	if (exclude_count(ex) == 0)
		return false;
	if (dir_relpath[0] == '\0')
		return exclude_match(ex, name, is_dir);
	n = snprintf(path, sizeof path, "%s/%s", dir_relpath, name);
	if (n < 0 || (size_t)n >= sizeof path)
		return false;
	return exclude_match(ex, path, is_dir);
}

/* The actions for a source entry s whose destination entry is d (or NULL). */
static int
plan_source_entry(const ScanEntry *s, const ScanEntry *d,
    const PlanOptions *opt, Plan *out)
{
	mode_t st = s->meta.mode & S_IFMT;
	mode_t dt = d != NULL ? (d->meta.mode & S_IFMT) : 0;
	int r = 0;

	out->n_src++;
	if (st == S_IFREG)
		out->src_bytes += (uint64_t)s->meta.size;
	if (s->err != 0)
		return push(out, PLAN_SOURCE_ERROR, s, d);
	if (d != NULL && d->err != 0 &&
	    (st == S_IFDIR || st == S_IFREG || st == S_IFLNK)) {
		/* Unknown destination entry: replace it (not for a special
		 * source file, which replaces nothing: fuzz-planner). */
		if ((r = push(out, PLAN_DELETE, NULL, d)) < 0)
			return r;
		d = NULL;
		dt = 0;
	}
	switch (st) {
	case S_IFDIR:
		if (d != NULL && dt == S_IFDIR)
			return push(out, PLAN_RECURSE, s, d);
		if (d != NULL && (r = push(out, PLAN_DELETE, NULL, d)) < 0)
			return r;
		if ((r = push(out, PLAN_MKDIR, s, NULL)) < 0)
			return r;
		if ((r = push(out, PLAN_RECURSE, s, NULL)) < 0)
			return r;
		out->actions[out->n - 1].fresh_dir = true;
		return 0;
	case S_IFREG: {
		bool same = false, split = false;

		if (d != NULL && dt == S_IFDIR) {
			if ((r = push(out, PLAN_DELETE, NULL, d)) < 0)
				return r;
			d = NULL;
			dt = 0;
		}
		if (d != NULL && dt == S_IFREG) {
			/* A destination name linked to other names must be
			 * split off when the source name stands alone. */
			split = s->meta.nlink <= 1 && d->meta.nlink > 1;
			same = !split && planner_same_content(&s->meta,
			    &d->meta);
		}
		if (s->meta.nlink > 1) {
			if ((r = push(out, PLAN_HARDLINK, s, d)) < 0)
				return r;
			out->actions[out->n - 1].up_to_date = same;
			return 0;
		}
		if (opt->compare == COMPARE_HASH) {
			/* Equal sizes: only the content can tell. */
			if (d != NULL && dt == S_IFREG && !split &&
			    d->meta.size == s->meta.size)
				return push(out, PLAN_HASH_COPY, s, d);
			return push(out, PLAN_COPY, s, d);
		}
		if (!same)
			return push(out, PLAN_COPY, s, d);
		if (!planner_same_attrs(&s->meta, &d->meta, opt->preserve_owner))
			return push(out, PLAN_META, s, d);
		return 0;
	}
	case S_IFLNK:
		if (d != NULL && dt == S_IFDIR) {
			if ((r = push(out, PLAN_DELETE, NULL, d)) < 0)
				return r;
			d = NULL;
			dt = 0;
		}
		if (d != NULL && dt == S_IFLNK && d->link_target != NULL &&
		    strcmp(d->link_target, s->link_target) == 0) {
			if (opt->preserve_owner && (s->meta.uid != d->meta.uid ||
			    s->meta.gid != d->meta.gid))
				return push(out, PLAN_META, s, d);
			return 0;
		}
		return push(out, PLAN_SYMLINK, s, d);
	default:
		return push(out, PLAN_SKIP_SPECIAL, s, d);
	}
}

/* Stable sort by phase: counting pass, then scatter. */
static int
order_by_phase(Plan *plan)
{
	size_t start[PHASES] = { 0 }, count[PHASES] = { 0 };
	PlanAction *sorted;

	if (plan->n < 2)
		return 0;
	for (size_t i = 0; i < plan->n; i++)
		count[phase_of(plan->actions[i].type)]++;
	for (int p = 1; p < PHASES; p++)
		start[p] = start[p - 1] + count[p - 1];
	if ((sorted = malloc(plan->cap * sizeof *sorted)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < plan->n; i++)
		sorted[start[phase_of(plan->actions[i].type)]++] =
		    plan->actions[i];
	free(plan->actions);
	plan->actions = sorted;
	return 0;
}

int
planner_plan_dir(const char *dir_relpath, const ScanList *src,
    const ScanList *dst, const PlanOptions *opt, Plan *out)
{
	static const ScanList empty;
	size_t i = 0, j = 0;
	int r = 0;

	memset(out, 0, sizeof *out);
	if (dst == NULL)
		dst = &empty;
	/* Both lists are sorted by name: merge them. */
	while (i < src->n || j < dst->n) {
		const ScanEntry *s = i < src->n ? &src->entries[i] : NULL;
		const ScanEntry *d = j < dst->n ? &dst->entries[j] : NULL;
		int c = s == NULL ? 1 : d == NULL ? -1 : strcmp(s->name, d->name);

		if (c < 0) {
			i++;
			if (!ignored(dir_relpath, s->name,
			    S_ISDIR(s->meta.mode), opt->exclude))
				r = plan_source_entry(s, NULL, opt, out);
		} else if (c > 0) {
			j++;
			/* Temporaries of an earlier run always go; names
			 * that left the source go only with delete = true,
			 * and excluded names never. */
			if (fsutil_is_temp_name(d->name)) {
				if (!fsutil_is_own_temp(d->name))
					r = push(out, PLAN_DELETE, NULL, d);
			} else if (opt->delete && !ignored(dir_relpath,
			    d->name, d->err == 0 && S_ISDIR(d->meta.mode),
			    opt->exclude)) {
				r = push(out, PLAN_DELETE, NULL, d);
			}
		} else {
			i++;
			j++;
			/* A source entry never mirrored under a temporary's
			 * name does not save an earlier run's leftover. */
			if (fsutil_is_temp_name(d->name) &&
			    !fsutil_is_own_temp(d->name))
				r = push(out, PLAN_DELETE, NULL, d);
			else if (!ignored(dir_relpath, s->name,
			    S_ISDIR(s->meta.mode), opt->exclude))
				r = plan_source_entry(s, d, opt, out);
		}
		if (r < 0)
			goto fail;
	}
	if ((r = order_by_phase(out)) < 0)
		goto fail;
	return 0;
fail:
	planner_plan_free(out);
	return r;
}

void
planner_plan_free(Plan *plan)
{
	free(plan->actions);
	memset(plan, 0, sizeof *plan);
}
