/*
 * model-tree — the model test's randomness and trees (model-int.h).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>

#include "model-int.h"

/* ---- randomness ----------------------------------------------------- */

void
model_rng_seed(ModelRng *r, uint64_t seed)
{
	memset(r, 0, sizeof *r);
	r->state = seed * 0x9e3779b97f4a7c15ull + 1;
}

void
model_rng_bytes(ModelRng *r, const uint8_t *data, size_t len)
{
	memset(r, 0, sizeof *r);
	r->data = data;
	r->len = len;
}

/* 0..n-1 (n >= 1). */
uint32_t
rnd(ModelRng *r, uint32_t n)
{
	uint64_t z;

	if (n <= 1)
		return 0;
	if (r->data != NULL) {
		if (r->pos >= r->len) {
			r->exhausted = true;
			return 0;
		}
		z = r->data[r->pos++];
		if (n > 256 && r->pos < r->len)
			z = z << 8 | r->data[r->pos++];
		return (uint32_t)(z % n);
	}
	z = (r->state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	z ^= z >> 31;
	return (uint32_t)(z % n);
}

bool
chance(ModelRng *r, unsigned pct)
{
	return rnd(r, 100) < pct;
}

/* ---- trees ----------------------------------------------------------- */











Fs F;
const Exclude *model_ex;	/* the pair's patterns (maybe none) */

/* Excluded as live.c and the planner see it: the path, or a directory
 * above it, matches. */
bool
excluded_path(const char *path, bool is_dir)
{
	char buf[MAXP];

	if (exclude_count(model_ex) == 0 || path[0] == '\0')
		return false;
	if (exclude_match(model_ex, path, is_dir))
		return true;
	snprintf(buf, sizeof buf, "%s", path);
	for (char *s = strrchr(buf, '/'); s != NULL; s = strrchr(buf, '/')) {
		*s = '\0';
		if (exclude_match(model_ex, buf, true))
			return true;
	}
	return false;
}

void __attribute__((format(printf, 1, 2)))
trace(const char *fmt, ...)
{
	va_list ap;

	if (!F.trace)
		return;
	va_start(ap, fmt);
	fprintf(stderr, "[%llu] ", (unsigned long long)F.clock_ms);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
t_find(const Tree *t, const char *path)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i].path, path) == 0)
			return (int)i;
	return -1;
}

Node *
t_get(Tree *t, const char *path)
{
	int i = t_find(t, path);

	return i < 0 ? NULL : &t->v[i];
}

/* under is path's ancestor (strictly). */
bool
is_under(const char *path, const char *under)
{
	size_t n = strlen(under);

	if (n == 0)
		return path[0] != '\0';
	return strncmp(path, under, n) == 0 && path[n] == '/';
}

void
parent_of(const char *path, char *out)
{
	const char *s = strrchr(path, '/');

	if (s == NULL)
		out[0] = '\0';
	else {
		memcpy(out, path, (size_t)(s - path));
		out[s - path] = '\0';
	}
}

void
join(char *out, const char *dir, const char *name)
{
	if (dir[0] == '\0')
		snprintf(out, MAXP, "%s", name);
	else
		snprintf(out, MAXP, "%s/%s", dir, name);
}

unsigned
depth(const char *path)
{
	unsigned d = path[0] != '\0';

	for (; *path != '\0'; path++)
		d += *path == '/';
	return d;
}

Node *
t_add(Tree *t, const char *path, int type)
{
	Node *n;

	if (t->n >= MAXN)
		abort();	/* the driver keeps trees well below */
	n = &t->v[t->n++];
	memset(n, 0, sizeof *n);
	snprintf(n->path, sizeof n->path, "%s", path);
	n->type = type;
	n->mode = type == T_DIR ? 0755 : 0644;
	return n;
}

/* Removes path and everything beneath it; how many entries went. */
size_t
t_remove_tree(Tree *t, const char *path)
{
	size_t k = 0, gone = 0;
	char keep[MAXP];

	snprintf(keep, sizeof keep, "%s", path);
	for (size_t i = 0; i < t->n; i++) {
		if (strcmp(t->v[i].path, keep) == 0 ||
		    is_under(t->v[i].path, keep)) {
			gone++;
			continue;
		}
		t->v[k++] = t->v[i];
	}
	t->n = k;
	return gone;
}

bool
t_has_children(const Tree *t, const char *dir)
{
	for (size_t i = 0; i < t->n; i++) {
		char p[MAXP];

		parent_of(t->v[i].path, p);
		if (t->v[i].path[0] != '\0' && strcmp(p, dir) == 0)
			return true;
	}
	return false;
}

/* Moves from (and what is beneath it) to to; to must not exist. */
void
t_move(Tree *t, const char *from, const char *to)
{
	char f[MAXP], tt[MAXP];
	size_t fl;

	snprintf(f, sizeof f, "%s", from);
	snprintf(tt, sizeof tt, "%s", to);
	fl = strlen(f);
	for (size_t i = 0; i < t->n; i++) {
		Node *n = &t->v[i];
		char buf[2 * MAXP];

		if (strcmp(n->path, f) == 0)
			snprintf(n->path, sizeof n->path, "%s", tt);
		else if (is_under(n->path, f)) {
			snprintf(buf, sizeof buf, "%s%s", tt, n->path + fl);
			if (strlen(buf) >= MAXP)
				abort();	/* the driver checks depth */
			memcpy(n->path, buf, strlen(buf) + 1);
		}
	}
}

/* What opening path's parent (beneath the root, no symlinks) gives. */
int
t_parent_state(const Tree *t, const char *path)
{
	char p[MAXP];

	parent_of(path, p);
	/* Every ancestor, from the top: the first that fails decides. */
	for (size_t i = 0; p[0] != '\0';) {
		char pre[MAXP];
		const Node *n;
		int k;
		const char *s = strchr(p + i, '/');
		size_t len = s != NULL ? (size_t)(s - p) : strlen(p);

		memcpy(pre, p, len);
		pre[len] = '\0';
		if ((k = t_find(t, pre)) < 0)
			return -ENOENT;
		n = &t->v[k];
		if (n->type == T_LINK)
			return -ELOOP;
		if (n->type != T_DIR)
			return -ENOTDIR;
		if (s == NULL)
			break;
		i = len + 1;
	}
	return 0;
}

/* The destination changed an entry in dir: the kernel moves its mtime. */
void
touch_dir(Tree *t, const char *dir)
{
	Node *n = t_get(t, dir);

	if (n != NULL)
		n->mtime = ++F.tick;
}

void
touch_parent(Tree *t, const char *path)
{
	char p[MAXP];

	parent_of(path, p);
	touch_dir(t, p);
}
