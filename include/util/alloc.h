/*
 * alloc — allocation that cannot fail: out of memory ends the process
 * with one line on stderr ("treesync: out of memory") and abort(), from
 * whichever thread ran out. The one policy for the whole program: a
 * daemon that cannot allocate a path's few bytes cannot keep any of its
 * promises, and a core dump says more than a half-run pass.
 *
 * Any thread. Functions that must report ENOMEM to a caller instead
 * (config loading, the control socket's answers) use malloc directly.
 */
#ifndef TREESYNC_ALLOC_H
#define TREESYNC_ALLOC_H

#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
/* Grows *v (of *cap elements of size each) to hold at least need: the
 * capacity doubles from min, so n pushes cost O(n). */
void xgrow(void *v, size_t *cap, size_t need, size_t size, size_t min);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
/* dir + "/" + name, or either alone when the other is "". */
char *xjoin(const char *dir, const char *name);
/* Ends the process: the message above, then abort(). */
void xoom(void) __attribute__((noreturn));

#endif
