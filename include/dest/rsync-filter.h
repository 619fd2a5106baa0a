/*
 * rsync-filter — a pair's exclude patterns (SPEC "Config file", read as
 * src/exclude.c reads them) compiled into rsync filter rules that mean the
 * same to rsync 3.2+, for the remote destination's full compare and
 * batches: a pattern without '/' matches the base name at any depth, one
 * with '/' the whole path from the transfer root ("/" anchored, '*' and '?'
 * and sets never matching '/'), a trailing '/' directories only;
 * backslash escapes, sets, negated sets and character classes kept;
 * whatever rsync would read differently (a "**", a backslash in a pattern
 * without wildcards, an unterminated '[') rewritten so it does not.
 *
 * Every rule is perishable ("-p PATTERN"): like treesync, rsync then
 * deletes a directory that left the source with the excluded entries in
 * it, instead of keeping them and the directory ("cannot delete non-empty
 * directory"); in a directory that stays, excluded entries stay.
 *
 * Pure; any thread. The rules are rsync --filter arguments.
 */
#ifndef TREESYNC_RSYNC_FILTER_H
#define TREESYNC_RSYNC_FILTER_H

#include <stddef.h>

/* First of every rule list: treesync's own temporaries (any name with the
 * ".treesync." prefix, as fsutil_is_temp_name and the planner ignore it)
 * are neither sent nor deleted; CLEAN removes the leftovers. */
#define RSYNC_FILTER_TEMP_RULE "-p .treesync.*"

/* rsync_filter_rule's answer for a pattern that can match nothing (a
 * trailing backslash, an empty component, a set of only '/'): no rule. */
#define RSYNC_FILTER_NEVER 1

/*
 * One pattern → one rule in out ("-p ..."). 0, RSYNC_FILTER_NEVER,
 * -EINVAL (empty, only '/', or an invalid character class), -ENOTSUP
 * (collating symbols and equivalence classes "[.x.]", "[=x=]", or a newline:
 * forms rsync cannot be told), -ENOSPC.
 */
int rsync_filter_rule(const char *pattern, char *out, size_t size);

/*
 * Every pattern → *rules (NULL-terminated, RSYNC_FILTER_TEMP_RULE first;
 * free with rsync_filter_free), *n rules. 0, or the first pattern's error
 * with *bad its index.
 */
int rsync_filter_compile(const char *const *patterns, size_t npatterns,
    char ***rules, size_t *n, size_t *bad);
void rsync_filter_free(char **rules);

#endif
