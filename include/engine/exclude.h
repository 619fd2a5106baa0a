/*
 * exclude — the exclude patterns of one sync pair (SPEC "Config file").
 *
 * Shell globs (fnmatch). A pattern without '/' matches the base name at any
 * depth; a pattern with '/' matches the whole path relative to the source
 * root, '*' not crossing '/'; a leading '/' anchors at the root (it is
 * dropped before matching); a trailing '/' matches directories only.
 *
 * Owns its copies of the patterns. Immutable after set-up, so any thread may
 * call exclude_match.
 */
#ifndef TREESYNC_EXCLUDE_H
#define TREESYNC_EXCLUDE_H

#include <stdbool.h>

typedef struct Exclude Exclude;

int exclude_new(Exclude **ret);
/* Adds one pattern. -EINVAL for an empty pattern or one that is only "/". */
int exclude_add(Exclude *ex, const char *pattern);
/* relpath: relative to the source root, no leading '/', never empty. */
bool exclude_match(const Exclude *ex, const char *relpath, bool is_dir);
size_t exclude_count(const Exclude *ex);
/* Pattern i as it was given to exclude_add (NULL past the end). */
const char *exclude_pattern(const Exclude *ex, size_t i);
/* Same patterns in the same order (a reload keeps such a pair running). */
bool exclude_equal(const Exclude *a, const Exclude *b);
void exclude_free(Exclude *ex);

#endif
