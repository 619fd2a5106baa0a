/*
 * path — see include/util/path.h.
 */
#include <stdio.h>
#include <string.h>

#include "util/path.h"

bool
path_under(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	return n == 0 || (strncmp(dir, path, n) == 0 &&
	    (path[n] == '\0' || path[n] == '/'));
}

bool
path_strictly_under(const char *dir, const char *path)
{
	size_t n = strlen(dir);

	if (n == 0)
		return path[0] != '\0';
	return strncmp(dir, path, n) == 0 && path[n] == '/';
}

void
path_split(const char *relpath, char *parent, size_t size,
    const char **base)
{
	const char *slash = strrchr(relpath, '/');

	if (slash == NULL) {
		parent[0] = '\0';
		*base = relpath;
	} else {
		snprintf(parent, size, "%.*s", (int)(slash - relpath), relpath);
		*base = slash + 1;
	}
}

unsigned
path_depth(const char *relpath)
{
	unsigned n = 0;

	for (; *relpath != '\0'; relpath++)
		n += *relpath == '/';
	return n;
}
