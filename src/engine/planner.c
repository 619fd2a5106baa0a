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
#include "engine/rules.h"

#define PHASES 4

static int
phase_of(RuleAction t)
{
	switch (t) {
	case RULE_DELETE:
		return 0;
	case RULE_MKDIR:
		return 1;
	case RULE_RECURSE:
		return 3;
	default:
		return 2;
	}
}

static int
push(Plan *plan, RuleAction type, const ScanEntry *src, const ScanEntry *dst,
    const RuleDecision *rule)
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
	if (rule != NULL)
		a->rule = *rule;
	else
		a->rule.action = type;
	return 0;
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

/* The steps for a source entry s whose destination entry is d (or NULL):
 * what rules_decide says, a replace's delete first. */
static int
plan_source_entry(const ScanEntry *s, const ScanEntry *d,
    const PlanOptions *opt, Plan *out)
{
	RuleDecision rule = rules_decide(s, d, &opt->rules);
	int r;

	out->n_src++;
	if (S_ISREG(s->meta.mode) && s->err == 0)
		out->src_bytes += (uint64_t)s->meta.size;
	if (rule.action != RULE_NONE && rule.action != RULE_RECURSE &&
	    rule.action != RULE_SKIP && rule.action != RULE_SOURCE_ERROR) {
		/* An op to wait for, for the progress figures (a directory
		 * both sides have is settled at once). */
		out->n_src_acted++;
		if (S_ISREG(s->meta.mode))
			out->src_bytes_acted += (uint64_t)s->meta.size;
	}
	if (rule.replace) {
		if ((r = push(out, RULE_DELETE, NULL, d, NULL)) < 0)
			return r;
		d = NULL;
	}
	if (rule.action == RULE_NONE)
		return 0;
	if ((r = push(out, rule.action, s, d, &rule)) < 0)
		return r;
	if (rule.action == RULE_MKDIR) {
		if ((r = push(out, RULE_RECURSE, s, NULL, &rule)) < 0)
			return r;
		out->actions[out->n - 1].fresh_dir = true;
	}
	return 0;
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
					r = push(out, RULE_DELETE, NULL, d,
					    NULL);
			} else if (!ignored(dir_relpath, d->name, d->err == 0 &&
			    S_ISDIR(d->meta.mode), opt->exclude) &&
			    rules_decide(NULL, d, &opt->rules).action ==
			    RULE_DELETE) {
				r = push(out, RULE_DELETE, NULL, d, NULL);
			}
		} else {
			i++;
			j++;
			/* A source entry never mirrored under a temporary's
			 * name does not save an earlier run's leftover. */
			if (fsutil_is_temp_name(d->name) &&
			    !fsutil_is_own_temp(d->name))
				r = push(out, RULE_DELETE, NULL, d, NULL);
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
