/*
 * exclude — see include/engine/exclude.h.
 *
 * exclude_match runs for every entry of every scan, so each pattern is
 * classified once in exclude_add: whether it matches the base name or the
 * whole relative path, whether it is for directories only, and whether it
 * holds no glob character at all, in which case strcmp does the job of
 * fnmatch.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

#include "engine/exclude.h"

struct pattern {
	char *text;		/* as given (for rsync filter rules) */
	char *glob;		/* without the leading and one trailing '/' */
	bool whole_path;	/* had a '/': matched against the relative path */
	bool dir_only;		/* had a trailing '/' */
	bool literal;		/* no glob character: strcmp is enough */
};

struct Exclude {
	struct pattern *patterns;
	size_t n;
	size_t cap;
};

int
exclude_new(Exclude **ret)
{
	Exclude *ex;

	ex = calloc(1, sizeof *ex);
	if (ex == NULL)
		return -ENOMEM;
	*ret = ex;
	return 0;
}

int
exclude_add(Exclude *ex, const char *pattern)
{
	struct pattern p = { 0 };
	const char *start = pattern;
	size_t len;
	int r = 0;

	len = strlen(pattern);
	if (len > 0 && pattern[len - 1] == '/') {
		p.dir_only = true;
		len--;
	}
	/* A '/' anywhere, a leading one included, ties it to the whole path. */
	if (memchr(start, '/', len) != NULL)
		p.whole_path = true;
	while (len > 0 && *start == '/') {
		start++;
		len--;
	}
	if (len == 0) {
		r = -EINVAL;
		goto out;
	}
	p.glob = strndup(start, len);
	p.text = strdup(pattern);
	if (p.glob == NULL || p.text == NULL) {
		free(p.glob);
		free(p.text);
		p.glob = p.text = NULL;
		r = -ENOMEM;
		goto out;
	}
	p.literal = strpbrk(p.glob, "*?[\\") == NULL;
	if (ex->n == ex->cap) {
		size_t cap = ex->cap ? ex->cap * 2 : 8;
		struct pattern *v = realloc(ex->patterns, cap * sizeof *v);

		if (v == NULL) {
			r = -ENOMEM;
			goto out;
		}
		ex->patterns = v;
		ex->cap = cap;
	}
	ex->patterns[ex->n++] = p;
	p.glob = p.text = NULL;
out:
	free(p.glob);
	free(p.text);
	return r;
}

bool
exclude_match(const Exclude *ex, const char *relpath, bool is_dir)
{
	const char *base = NULL;
	size_t i;

	for (i = 0; i < ex->n; i++) {
		const struct pattern *p = &ex->patterns[i];
		const char *subject;

		if (p->dir_only && !is_dir)
			continue;
		if (p->whole_path) {
			subject = relpath;
		} else {
			if (base == NULL) {
				base = strrchr(relpath, '/');
				base = base != NULL ? base + 1 : relpath;
			}
			subject = base;
		}
		if (p->literal) {
			if (strcmp(p->glob, subject) == 0)
				return true;
		} else if (fnmatch(p->glob, subject,
		    p->whole_path ? FNM_PATHNAME : 0) == 0) {
			return true;
		}
	}
	return false;
}

size_t
exclude_count(const Exclude *ex)
{
	return ex->n;
}

const char *
exclude_pattern(const Exclude *ex, size_t i)
{
	return i < ex->n ? ex->patterns[i].text : NULL;
}

void
exclude_free(Exclude *ex)
{
	size_t i;

	if (ex == NULL)
		return;
	for (i = 0; i < ex->n; i++) {
		free(ex->patterns[i].glob);
		free(ex->patterns[i].text);
	}
	free(ex->patterns);
	free(ex);
}

bool
exclude_equal(const Exclude *a, const Exclude *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++) {
		const struct pattern *p = &a->patterns[i], *q = &b->patterns[i];
		if (strcmp(p->glob, q->glob) != 0 ||
		    p->whole_path != q->whole_path || p->dir_only != q->dir_only)
			return false;
	}
	return true;
}
