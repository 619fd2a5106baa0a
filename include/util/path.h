/*
 * path — relative paths as every layer spells them: "" is the root,
 * components are separated by one '/', no leading or trailing '/'.
 * Pure string work; any thread.
 */
#ifndef TREESYNC_PATH_H
#define TREESYNC_PATH_H

#include <stdbool.h>
#include <stddef.h>

/* True when path is dir or lies beneath it ("" holds every path). */
bool path_under(const char *dir, const char *path);
/* True when path lies strictly beneath dir. */
bool path_strictly_under(const char *dir, const char *path);
/* Splits relpath into its parent ("" at the top) and its last name. */
void path_split(const char *relpath, char *parent, size_t size,
    const char **base);
/* Number of '/' in relpath: the depth below the root's entries. */
unsigned path_depth(const char *relpath);

#endif
