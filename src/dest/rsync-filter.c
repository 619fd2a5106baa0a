/*
 * rsync-filter — see include/dest/rsync-filter.h.
 *
 * A pattern is first read the way glibc's fnmatch reads it (FNM_PATHNAME
 * for a whole-path pattern, no FNM_PERIOD, backslash escapes on) into
 * tokens: literal bytes, '?', '*' (runs collapsed: under FNM_PATHNAME "**"
 * is "*", while rsync would let it cross '/'), and sets. Then each token is
 * written the way rsync's wildmatch reads it:
 *   - a literal '*', '?', '[' or '\' becomes a one-member set ("[*]",
 *     "[\\]"), never "\*": "\**" would contain "**", which rsync treats as
 *     "match the full path";
 *   - a pattern with no wildcard token and none of those bytes is written
 *     as it is, since rsync reads backslashes literally when a pattern has
 *     no wildcard character;
 *   - a set loses '/' (fnmatch never lets one match it under FNM_PATHNAME)
 *     and a negated set gains it, so rsync's sets do not match it either;
 *   - an unterminated '[' is a literal '[', as in fnmatch.
 * Ranges and character classes mean the same to both (bytes, C locale).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "dest/rsync-filter.h"

enum token_kind { T_LITERAL, T_ANY, T_STAR, T_SET };

struct token {
	enum token_kind kind;
	char c;			/* T_LITERAL */
	const char *set;	/* T_SET: the bytes between '[' (and '!') and ']' */
	size_t set_len;
	bool negated;
};

struct tokens {
	struct token *v;
	size_t n;
};

static const char *const class_names[] = { "alnum", "alpha", "blank",
    "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper",
    "xdigit" };

static bool
valid_class(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof class_names / sizeof class_names[0]; i++)
		if (strlen(class_names[i]) == len &&
		    strncmp(class_names[i], name, len) == 0)
			return true;
	return false;
}

/*
 * p points after '['. On a terminated set returns the index just past its
 * ']' and fills t; 0 for an unterminated one (then '[' is a literal);
 * -EINVAL / -ENOTSUP for forms we refuse.
 */
static long
read_set(const char *g, size_t len, size_t i, struct token *t)
{
	size_t start;

	t->kind = T_SET;
	t->negated = false;
	if (i < len && (g[i] == '!' || g[i] == '^')) {
		t->negated = true;
		i++;
	}
	start = i;
	if (i < len && g[i] == ']')	/* a leading ']' is a member */
		i++;
	while (i < len && g[i] != ']') {
		if (g[i] == '\\') {
			i += 2;
			continue;
		}
		if (g[i] == '[' && i + 1 < len &&
		    (g[i + 1] == ':' || g[i + 1] == '.' || g[i + 1] == '=')) {
			char kind = g[i + 1];
			const char *end = NULL;

			for (size_t j = i + 2; j + 1 < len; j++)
				if (g[j] == kind && g[j + 1] == ']') {
					end = g + j;
					break;
				}
			if (end == NULL)
				return 0;
			if (kind != ':')
				return -ENOTSUP;
			if (!valid_class(g + i + 2, (size_t)(end - (g + i + 2))))
				return -EINVAL;
			i = (size_t)(end - g) + 2;
			continue;
		}
		i++;
	}
	if (i >= len)
		return 0;
	t->set = g + start;
	t->set_len = i - start;
	return (long)(i + 1);
}

/* 0, RSYNC_FILTER_NEVER, or -errno. t->v is malloc'd. */
static int
tokenize(const char *g, size_t len, struct tokens *t)
{
	size_t i = 0;

	t->n = 0;
	t->v = calloc(len + 1, sizeof *t->v);
	if (t->v == NULL)
		return -ENOMEM;
	while (i < len) {
		struct token tok = { .kind = T_LITERAL };
		char c = g[i];

		if (c == '\\') {
			if (i + 1 == len)
				return RSYNC_FILTER_NEVER;	/* "Trailing \ loses" */
			tok.c = g[i + 1];
			i += 2;
		} else if (c == '?') {
			tok.kind = T_ANY;
			i++;
		} else if (c == '*') {
			tok.kind = T_STAR;
			while (i < len && g[i] == '*')
				i++;
		} else if (c == '[') {
			long next = read_set(g, len, i + 1, &tok);

			if (next < 0)
				return (int)next;
			if (next == 0) {
				tok.kind = T_LITERAL;
				tok.c = '[';
				i++;
			} else {
				i = (size_t)next;
			}
		} else {
			tok.c = c;
			i++;
		}
		t->v[t->n++] = tok;
	}
	return 0;
}

struct out {
	char *buf;
	size_t size, len;
	bool full;
};

static void
emit(struct out *o, const char *s, size_t n)
{
	if (o->len + n + 1 > o->size) {
		o->full = true;
		return;
	}
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

static void
emit_c(struct out *o, char c)
{
	emit(o, &c, 1);
}

/* One member byte inside an rsync set: escaped when it could be read as
 * syntax there. */
static void
emit_member(struct out *o, char c)
{
	if (strchr("\\]-[!^", c) != NULL)
		emit_c(o, '\\');
	emit_c(o, c);
}

/*
 * A set, re-read member by member (escapes resolved, ranges and classes
 * kept). Returns false when it can match nothing once '/' is dropped.
 */
static bool
emit_set(struct out *o, const struct token *t, bool whole_path)
{
	const char *s = t->set;
	size_t n = t->set_len, i = 0, members = 0;

	emit_c(o, '[');
	if (t->negated)
		emit_c(o, '!');
	while (i < n) {
		char c;

		if (s[i] == '[' && i + 1 < n && s[i + 1] == ':') {
			const char *end = strstr(s + i + 2, ":]");

			emit(o, s + i, (size_t)(end - (s + i)) + 2);
			i = (size_t)(end - s) + 2;
			members++;
			continue;
		}
		if (s[i] == '\\' && i + 1 < n) {
			c = s[i + 1];
			i += 2;
		} else {
			c = s[i++];
		}
		/* A range "c-e": '-' not first, not last. */
		if (i + 1 < n && s[i] == '-') {
			char e;

			i++;
			if (s[i] == '\\' && i + 1 < n) {
				e = s[i + 1];
				i += 2;
			} else {
				e = s[i++];
			}
			/* A range over '/' keeps its other bytes. */
			if (whole_path && c <= '/' && '/' <= e) {
				if (c < '/') {
					emit_member(o, c);
					emit_c(o, '-');
					emit_member(o, '/' - 1);
				}
				if (e > '/') {
					emit_member(o, '/' + 1);
					emit_c(o, '-');
					emit_member(o, e);
				}
				members += c < '/' || e > '/';
			} else {
				emit_member(o, c);
				emit_c(o, '-');
				emit_member(o, e);
				members++;
			}
			continue;
		}
		if (whole_path && c == '/')
			continue;
		emit_member(o, c);
		members++;
	}
	if (t->negated && whole_path) {
		emit_member(o, '/');
		members++;
	}
	emit_c(o, ']');
	return members > 0 || t->negated;
}

int
rsync_filter_rule(const char *pattern, char *buf, size_t size)
{
	struct out o = { .buf = buf, .size = size };
	struct tokens t = { 0 };
	const char *g = pattern;
	size_t len = strlen(pattern);
	bool dir_only = false, whole_path, wild = false;
	int r;

	if (size > 0)
		buf[0] = '\0';
	if (strpbrk(pattern, "\n\r") != NULL)
		return -ENOTSUP;
	if (len > 0 && g[len - 1] == '/') {
		dir_only = true;
		len--;
	}
	whole_path = memchr(g, '/', len) != NULL;
	while (len > 0 && *g == '/') {
		g++;
		len--;
	}
	if (len == 0)
		return -EINVAL;
	/* Relative paths have no empty component and no trailing '/'. */
	if (whole_path && (g[len - 1] == '/' || memmem(g, len, "//", 2)))
		return RSYNC_FILTER_NEVER;
	if ((r = tokenize(g, len, &t)) != 0)
		goto out;
	for (size_t i = 0; i < t.n; i++)
		if (t.v[i].kind != T_LITERAL || strchr("*?[", t.v[i].c))
			wild = true;
	emit(&o, "-p ", 3);
	if (whole_path)
		emit_c(&o, '/');
	for (size_t i = 0; i < t.n; i++) {
		const struct token *k = &t.v[i];

		switch (k->kind) {
		case T_ANY:
			emit_c(&o, '?');
			break;
		case T_STAR:
			emit_c(&o, '*');
			break;
		case T_SET:
			if (!emit_set(&o, k, whole_path)) {
				r = RSYNC_FILTER_NEVER;
				goto out;
			}
			break;
		case T_LITERAL:
			if (wild && strchr("*?[\\", k->c) != NULL) {
				emit_c(&o, '[');
				if (k->c == '\\')
					emit_c(&o, '\\');
				emit_c(&o, k->c);
				emit_c(&o, ']');
			} else {
				emit_c(&o, k->c);
			}
			break;
		}
	}
	if (dir_only)
		emit_c(&o, '/');
	r = o.full ? -ENOSPC : 0;
out:
	if (r != 0 && size > 0)
		buf[0] = '\0';
	free(t.v);
	return r;
}

int
rsync_filter_compile(const char *const *patterns, size_t npatterns,
    char ***rules, size_t *n, size_t *bad)
{
	char **v, buf[8192];
	size_t k = 0;
	int r = 0;

	*rules = NULL;
	*n = 0;
	if ((v = calloc(npatterns + 2, sizeof *v)) == NULL)
		return -ENOMEM;
	if ((v[k++] = strdup(RSYNC_FILTER_TEMP_RULE)) == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < npatterns; i++) {
		r = rsync_filter_rule(patterns[i], buf, sizeof buf);
		if (r == RSYNC_FILTER_NEVER)
			continue;
		if (r < 0) {
			if (bad != NULL)
				*bad = i;
			goto fail;
		}
		if ((v[k++] = strdup(buf)) == NULL) {
			r = -ENOMEM;
			goto fail;
		}
	}
	*rules = v;
	*n = k;
	return 0;
fail:
	rsync_filter_free(v);
	return r;
}

void
rsync_filter_free(char **rules)
{
	if (rules == NULL)
		return;
	for (char **p = rules; *p != NULL; p++)
		free(*p);
	free(rules);
}
