/*
 * fuzz-exclude — exclude_add and exclude_match against a reference.
 *
 * Input: lines. Those before the first empty line are patterns, the rest
 * are relative paths; a path line ending in '/' is a directory (the '/'
 * is dropped). Lines holding a NUL are skipped (a C string cannot).
 *
 * The reference is written from the header's words, not from exclude.c:
 * a pattern that is all '/' is refused; a trailing '/' means directories
 * only; a pattern without '/' is fnmatch(3) on the base name with no
 * flags; any other is fnmatch on the whole path with FNM_PATHNAME after
 * its leading '/'s are dropped. On top of that, properties that must hold
 * whatever the reference says: a set of patterns matches exactly when one
 * of its patterns does, a pattern without '/' gives the same answer at any
 * depth, a directory is excluded whenever a file of that path is, and the
 * same patterns compare equal.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <string.h>

#include "engine/exclude.h"
#include "fuzz.h"

#define MAX_LINES 64

static bool
ref_refused(const char *pat)
{
	return pat[strspn(pat, "/")] == '\0';
}

static bool
ref_match(const char *pat, const char *path, bool is_dir)
{
	size_t len = strlen(pat);
	char body[4096];
	const char *base, *glob;

	if (len >= sizeof body)
		abort();
	memcpy(body, pat, len + 1);
	if (len > 0 && body[len - 1] == '/') {
		if (!is_dir)
			return false;
		body[--len] = '\0';
	}
	if (strchr(body, '/') == NULL) {
		base = strrchr(path, '/');
		base = base != NULL ? base + 1 : path;
		return fnmatch(body, base, 0) == 0;
	}
	glob = body + strspn(body, "/");
	return fnmatch(glob, path, FNM_PATHNAME) == 0;
}

/* A relpath as exclude_match takes it: not empty, no leading '/'. */
static bool
valid_path(const char *p)
{
	return p[0] != '\0' && p[0] != '/';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *lines[MAX_LINES];
	size_t n_lines = 0, n_pat = 0, i, j;
	bool in_paths = false, pat_ok[MAX_LINES];
	Exclude *ex = NULL, *ex2 = NULL, *one[MAX_LINES] = { 0 };
	const uint8_t *p = data, *end = data + size;

	if (size > 4000)
		return 0;
	while (p < end && n_lines < MAX_LINES) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = (nl != NULL ? nl : end) - p;

		if (n == 0 && !in_paths) {
			in_paths = true;
			n_pat = n_lines;
		} else if (memchr(p, '\0', n) == NULL) {
			if ((lines[n_lines] = strndup((const char *)p, n)) ==
			    NULL)
				goto out;
			n_lines++;
		}
		p = nl != NULL ? nl + 1 : end;
	}
	if (!in_paths)
		n_pat = n_lines;
	if (exclude_new(&ex) < 0 || exclude_new(&ex2) < 0)
		goto out;
	for (i = 0; i < n_pat; i++) {
		int r = exclude_add(ex, lines[i]);

		FUZZ_CHECK(r == 0 || r == -EINVAL, "exclude_add: %d", r);
		FUZZ_CHECK((r == -EINVAL) == ref_refused(lines[i]),
		    "pattern '%s': exclude_add %d", lines[i], r);
		pat_ok[i] = r == 0;
		if (r == 0) {
			FUZZ_CHECK(exclude_add(ex2, lines[i]) == 0, "again");
			if (exclude_new(&one[i]) < 0)
				goto out;
			FUZZ_CHECK(exclude_add(one[i], lines[i]) == 0, "alone");
		}
	}
	FUZZ_CHECK(exclude_equal(ex, ex2), "same patterns not equal");
	for (i = n_pat; i < n_lines; i++) {
		char *path = lines[i];
		size_t len = strlen(path);
		bool is_dir = len > 0 && path[len - 1] == '/';

		if (is_dir)
			path[len - 1] = '\0';
		if (!valid_path(path))
			continue;
		for (int d = 0; d < 2; d++) {
			bool dir = d == 1, any = false;
			bool got = exclude_match(ex, path, dir);

			for (j = 0; j < n_pat; j++) {
				bool want, alone;
				const char *base;

				if (!pat_ok[j])
					continue;
				want = ref_match(lines[j], path, dir);
				alone = exclude_match(one[j], path, dir);
				FUZZ_CHECK(alone == want, "pattern '%s' path '%s' "
				    "dir %d: exclude %d, reference %d",
				    lines[j], path, dir, alone, want);
				any = any || want;
				/* No '/' (but a trailing one): depth does not
				 * matter. */
				base = strrchr(path, '/');
				if (base != NULL && strchr(lines[j], '/') ==
				    strrchr(lines[j], '/') &&
				    (strchr(lines[j], '/') == NULL ||
				    strchr(lines[j], '/')[1] == '\0'))
					FUZZ_CHECK(exclude_match(one[j],
					    base + 1, dir) == alone,
					    "pattern '%s': '%s' and '%s' differ",
					    lines[j], path, base + 1);
			}
			FUZZ_CHECK(got == any, "set on '%s' dir %d: %d, any %d",
			    path, dir, got, any);
		}
		FUZZ_CHECK(!exclude_match(ex, path, false) ||
		    exclude_match(ex, path, true), "'%s': file but not dir",
		    path);
	}
out:
	for (i = 0; i < n_lines; i++) {
		free(lines[i]);
		exclude_free(one[i]);
	}
	exclude_free(ex);
	exclude_free(ex2);
	return 0;
}
