/*
 * config-check — the rules that involve more than one setting, or the
 * machine: see config-int.h.
 *
 * Overlaps: a destination inside its source, a source inside its
 * destination, two syncs writing one destination, nested destinations;
 * judged as written and, where only symlinks tell, as resolved
 * (realpath of the deepest existing ancestor). --check-config also looks
 * at what the daemon will need at start (config_check_sources).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config-int.h"
#include "config-remotes.h"

enum relation {
	REL_NONE,
	REL_SAME,
	REL_A_INSIDE_B,
	REL_B_INSIDE_A,
};

/* A path and what it resolves to, for the overlap rules. */
struct path_ref {
	const char *path;
	const char *real;
};


static bool
path_inside(const char *child, const char *parent)
{
	size_t n = strlen(parent);

	if (strcmp(parent, "/") == 0)
		return child[1] != '\0';
	return strncmp(child, parent, n) == 0 && child[n] == '/';
}


static enum relation
relate(const char *a, const char *b)
{
	if (strcmp(a, b) == 0)
		return REL_SAME;
	if (path_inside(a, b))
		return REL_A_INSIDE_B;
	if (path_inside(b, a))
		return REL_B_INSIDE_A;
	return REL_NONE;
}


/* As written first; as resolved when only the symlinks tell (*via_real). */
static enum relation
relate_refs(const struct path_ref *a, const struct path_ref *b, bool *via_real)
{
	enum relation rel = relate(a->path, b->path);

	*via_real = false;
	if (rel != REL_NONE || a->real == NULL || b->real == NULL)
		return rel;
	rel = relate(a->real, b->real);
	*via_real = rel != REL_NONE;
	return rel;
}


/*
 * realpath() of the deepest ancestor of path that exists, with the rest
 * appended: a destination that does not exist yet can still lie under a
 * symlink into its source. *out is NULL when nothing could be resolved.
 */
static int
resolve_path(const char *path, char **out)
{
	char *prefix, *real = NULL, *cut;
	const char *tail;
	int r = 0;

	*out = NULL;
	prefix = strdup(path);
	if (prefix == NULL)
		return -ENOMEM;
	for (;;) {
		real = realpath(prefix, NULL);
		if (real != NULL)
			break;
		if ((errno != ENOENT && errno != ENOTDIR) ||
		    strcmp(prefix, "/") == 0)
			goto out;
		cut = strrchr(prefix, '/');
		if (cut == prefix)
			cut[1] = '\0';
		else
			*cut = '\0';
	}
	tail = path + strlen(prefix);
	while (*tail == '/')
		tail++;
	if (*tail == '\0')
		*out = strdup(real);
	else if (asprintf(out, "%s/%s", strcmp(real, "/") == 0 ? "" : real,
	    tail) < 0)
		*out = NULL;
	if (*out == NULL)
		r = -ENOMEM;
out:
	free(real);
	free(prefix);
	return r;
}


static int
resolve_syncs(struct loader *ld)
{
	size_t i, j;
	int r = 0;

	for (i = 0; i < ld->cfg->n_syncs; i++) {
		SyncPairConfig *pair = &ld->cfg->syncs[i];
		struct sync_load *sl = &ld->syncs[i];

		if (pair->source != NULL) {
			r = resolve_path(pair->source, &sl->source_real);
			if (r < 0)
				goto out;
		}
		if (pair->n_destinations == 0)
			continue;
		sl->dest_real = calloc(pair->n_destinations,
		    sizeof *sl->dest_real);
		if (sl->dest_real == NULL) {
			r = -ENOMEM;
			goto out;
		}
		for (j = 0; j < pair->n_destinations; j++) {
			if (pair->dest_remotes[j] != NULL)
				continue;	/* another host's file system */
			r = resolve_path(pair->destinations[j],
			    &sl->dest_real[j]);
			if (r < 0)
				goto out;
		}
	}
out:
	return r;
}


/*
 * "LABEL: WHAT_A 'a' is inside WHAT_B 'b'WHERE_B", and what the two resolve
 * to when only the symlinks reveal it.
 */
static void
report_overlap(struct loader *ld, const config_setting_t *at,
    const char *label, const char *what_a, const struct path_ref *a,
    enum relation rel, const char *what_b, const struct path_ref *b,
    const char *where_b, bool via_real)
{
	const char *verb = rel == REL_SAME ? "is the same directory as" :
	    rel == REL_A_INSIDE_B ? "is inside" : "contains";

	if (via_real)
		diag_report(ld, at, "%s: %s '%s' %s %s '%s'%s (after resolving "
		    "symlinks: '%s' and '%s')", label, what_a, a->path, verb,
		    what_b, b->path, where_b, a->real, b->real);
	else
		diag_report(ld, at, "%s: %s '%s' %s %s '%s'%s", label, what_a,
		    a->path, verb, what_b, b->path, where_b);
}


static const config_setting_t *
later_setting(struct loader *ld, const config_setting_t *a,
    const config_setting_t *b)
{
	return diag_line_of(ld, a) > diag_line_of(ld, b) ? a : b;
}


/* Within one sync: each destination against its source and the ones before it. */
static void
check_sync_overlaps(struct loader *ld, size_t i)
{
	const SyncPairConfig *pair = &ld->cfg->syncs[i];
	const struct sync_load *sl = &ld->syncs[i];
	struct path_ref src = { pair->source, sl->source_real };
	char where[64];
	size_t j, k;

	for (j = 0; j < pair->n_destinations; j++) {
		struct path_ref dst = { pair->destinations[j], sl->dest_real[j] };
		const config_setting_t *at = sl->dest_settings[j];
		enum relation rel;
		bool via;

		if (pair->source != NULL && pair->dest_remotes[j] == NULL) {
			const config_setting_t *later =
			    later_setting(ld, sl->source_setting, at);

			rel = relate_refs(&dst, &src, &via);
			if (rel == REL_SAME || rel == REL_A_INSIDE_B)
				report_overlap(ld, later, sl->label,
				    "destination", &dst, rel, "its source",
				    &src, "", via);
			else if (rel == REL_B_INSIDE_A)
				report_overlap(ld, later, sl->label, "source",
				    &src, REL_A_INSIDE_B, "its destination",
				    &dst, "", via);
		}
		for (k = 0; k < j; k++) {
			struct path_ref prev = { pair->destinations[k],
			    sl->dest_real[k] };
			int line = diag_line_of(ld, sl->dest_settings[k]);

			rel = relate_refs(&dst, &prev, &via);
			if (rel == REL_NONE)
				continue;
			if (rel == REL_SAME && !via) {
				diag_report(ld, at, "%s: destination '%s' is listed "
				    "twice (also at line %d)", sl->label,
				    dst.path, line);
			} else {
				snprintf(where, sizeof where, " of the same "
				    "sync (line %d)", line);
				report_overlap(ld, at, sl->label, "destination",
				    &dst, rel, "destination", &prev, where,
				    via);
			}
		}
	}
}


/* Sync j against an earlier sync i: no shared or nested destinations. */
static int
check_cross_overlaps(struct loader *ld, size_t i, size_t j)
{
	const SyncPairConfig *earlier = &ld->cfg->syncs[i];
	const SyncPairConfig *later = &ld->cfg->syncs[j];
	const struct sync_load *el = &ld->syncs[i], *ll = &ld->syncs[j];
	char *where = NULL;
	size_t a, b;
	int r = 0;

	for (b = 0; b < later->n_destinations; b++) {
		struct path_ref dst = { later->destinations[b], ll->dest_real[b] };
		const config_setting_t *at = ll->dest_settings[b];

		for (a = 0; a < earlier->n_destinations; a++) {
			struct path_ref other = { earlier->destinations[a],
			    el->dest_real[a] };
			int line = diag_line_of(ld, el->dest_settings[a]);
			enum relation rel;
			bool via;

			rel = relate_refs(&dst, &other, &via);
			if (rel == REL_NONE)
				continue;
			if (rel == REL_SAME && !via) {
				diag_report(ld, at, "%s: destination '%s' is also "
				    "written by %s (line %d); two syncs may "
				    "not share a destination", ll->label,
				    dst.path, el->label, line);
				continue;
			}
			free(where);
			if (asprintf(&where, " of %s (line %d)", el->label,
			    line) < 0) {
				where = NULL;
				r = -ENOMEM;
				goto out;
			}
			report_overlap(ld, at, ll->label, "destination", &dst,
			    rel, "destination", &other, where, via);
		}
	}
out:
	free(where);
	return r;
}


int
config_check_overlaps(struct loader *ld)
{
	size_t i, j;
	int r;

	r = resolve_syncs(ld);
	if (r < 0)
		goto out;
	for (j = 0; j < ld->cfg->n_syncs; j++) {
		check_sync_overlaps(ld, j);
		for (i = 0; i < j; i++) {
			r = check_cross_overlaps(ld, i, j);
			if (r < 0)
				goto out;
		}
	}
out:
	return r;
}


/* The parent directory of path into buf ("/" for a top-level entry). */
static void
parent_of(const char *path, char *buf, size_t size)
{
	const char *slash = strrchr(path, '/');
	size_t n = slash == NULL || slash == path ? 1 : (size_t)(slash - path);

	snprintf(buf, size, "%.*s", (int)n, slash == NULL ? "/" : path);
}

/* Why dir cannot hold a new entry, or NULL when it can. */
static const char *
not_a_directory(const char *dir)
{
	struct stat st;

	if (stat(dir, &st) < 0)
		return strerror(errno);
	if (!S_ISDIR(st.st_mode))
		return strerror(ENOTDIR);
	return NULL;
}

int
config_check_sources(const Config *cfg, char **errors)
{
	struct problems pb = { .path = cfg->path };
	char parent[4096];
	const char *reason;
	struct stat st;
	size_t i, j;
	int r = 0;

	*errors = NULL;
	if (cfg->log_file != NULL) {
		parent_of(cfg->log_file, parent, sizeof parent);
		if ((reason = not_a_directory(parent)) != NULL)
			diag_add(&pb, NULL, cfg->log_file_line, "log_file '%s': "
			    "its directory '%s': %s (the daemon would not start)",
			    cfg->log_file, parent, reason);
	}
	for (i = 0; i < cfg->n_syncs; i++) {
		const SyncPairConfig *pair = &cfg->syncs[i];

		reason = NULL;
		if (stat(pair->source, &st) < 0)
			reason = strerror(errno);
		else if (!S_ISDIR(st.st_mode))
			reason = strerror(ENOTDIR);
		if (reason != NULL)
			diag_add(&pb, NULL, pair->source_line,
			    "sync '%s': source '%s': %s", pair->name,
			    pair->source, reason);
		for (j = 0; j < pair->n_destinations; j++) {
			if (pair->dest_remotes[j] != NULL)
				continue;	/* checked on its host */
			parent_of(pair->destinations[j], parent, sizeof parent);
			if ((reason = not_a_directory(parent)) == NULL)
				continue;
			diag_add(&pb, NULL, pair->destination_lines[j],
			    "sync '%s': destination '%s': its parent directory "
			    "'%s': %s (a missing destination is made, its "
			    "parents are not)", pair->name,
			    pair->destinations[j], parent, reason);
		}
	}
	config_remotes_check_files(cfg, &pb);
	if (pb.oom)
		r = -ENOMEM;
	else if (pb.n > 0)
		r = -EINVAL;
	if (r < 0)
		*errors = diag_join(&pb);
	diag_free(&pb);
	return r;
}

