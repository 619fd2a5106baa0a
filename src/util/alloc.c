/*
 * alloc — see include/util/alloc.h.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"

void
xoom(void)
{
	static const char msg[] = "treesync: out of memory\n";

	/* write(2), not stdio or the sync log: safe on any thread, and
	 * allocates nothing. */
	if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
		/* nothing left to tell anyone */
	}
	abort();
}

void *
xmalloc(size_t size)
{
	void *p = malloc(size != 0 ? size : 1);

	if (p == NULL)
		xoom();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n != 0 ? n : 1, size != 0 ? size : 1);

	if (p == NULL)
		xoom();
	return p;
}

void *
xrealloc(void *p, size_t size)
{
	if ((p = realloc(p, size != 0 ? size : 1)) == NULL)
		xoom();
	return p;
}

void
xgrow(void *v, size_t *cap, size_t need, size_t size, size_t min)
{
	void **vp = v;
	size_t n = *cap != 0 ? *cap : min;

	if (need <= *cap)
		return;
	while (n < need) {
		if (n > ((size_t)-1 / 2) / size)
			xoom();
		n *= 2;
	}
	*vp = xrealloc(*vp, n * size);
	*cap = n;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		xoom();
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (p == NULL)
		xoom();
	return p;
}

char *
xjoin(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *s;

	if (a == 0)
		return xstrdup(name);
	if (b == 0)
		return xstrdup(dir);
	s = xmalloc(a + 1 + b + 1);
	memcpy(s, dir, a);
	s[a] = '/';
	memcpy(s + a + 1, name, b + 1);
	return s;
}
