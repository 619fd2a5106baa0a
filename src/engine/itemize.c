/*
 * itemize — see include/engine/itemize.h (the format is there and in
 * treesyncd(8)).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/fsutil.h"
#include "engine/guard.h"
#include "engine/itemize.h"
#include "util/alloc.h"
#include "util/synclog.h"

#define CODE_LEN 11	/* YXcstpoguax */

void
itemize_init(ItemList *l, bool preserve_owner, size_t max_bytes)
{
	memset(l, 0, sizeof *l);
	l->preserve_owner = preserve_owner;
	l->max_bytes = max_bytes;
}

void
itemize_free(ItemList *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->lines[i]);
	free(l->lines);
	memset(l, 0, sizeof *l);
}

static char
type_char(uint32_t mode)
{
	return S_ISDIR(mode) ? 'd' : S_ISLNK(mode) ? 'L' : S_ISREG(mode) ?
	    'f' : S_ISCHR(mode) || S_ISBLK(mode) ? 'D' : 'S';
}

static const char *
type_name(uint32_t mode)
{
	return S_ISDIR(mode) ? "a directory" : S_ISLNK(mode) ? "a symlink" :
	    S_ISREG(mode) ? "a file" : "a special file";
}

/* The letters of what differs between an entry and the one it makes. */
static void
attr_letters(const ItemList *l, const FileMeta *s, const FileMeta *d,
    bool sized, char *code)
{
	if (sized && s->size != d->size)
		code[3] = 's';
	if (!S_ISLNK(s->mode) && (s->mtime_sec != d->mtime_sec ||
	    s->mtime_nsec != d->mtime_nsec))
		code[4] = 't';
	if (!S_ISLNK(s->mode) && (s->mode & 07777) != (d->mode & 07777))
		code[5] = 'p';
	if (l->preserve_owner && s->uid != d->uid)
		code[6] = 'o';
	if (l->preserve_owner && s->gid != d->gid)
		code[7] = 'g';
}

/* Appends one line: code, the escaped path (a directory's with '/'),
 * then suffix. */
static void
add_line(ItemList *l, const char *code, const char *relpath, bool dir,
    const char *suffix)
{
	const char *p = relpath[0] == '\0' ? "." : relpath;
	size_t esize = strlen(p) * 4 + 8;
	char *esc = xmalloc(esize), *line;
	size_t n;

	synclog_escape(p, esc, esize);
	n = strlen(code) + 1 + strlen(esc) + 1 + strlen(suffix) + 1;
	if (l->max_bytes != 0 && l->bytes + n > l->max_bytes) {
		l->dropped++;
		free(esc);
		return;
	}
	line = xmalloc(n);
	snprintf(line, n, "%s %s%s%s", code, esc, dir ? "/" : "", suffix);
	free(esc);
	xgrow(&l->lines, &l->cap, l->n + 1, sizeof *l->lines, 64);
	l->lines[l->n++] = line;
	l->bytes += n;
}

/* A delete: the entry, then (a directory) each entry beneath it. */
static void
add_delete(ItemList *l, const FullSyncStep *st)
{
	bool dir = st->dst != NULL && S_ISDIR(st->dst->mode);
	size_t off = 0;

	add_line(l, "*deleting  ", st->relpath, dir, "");
	while (off < st->listing_len) {
		const char *name = st->listing + off;
		size_t n = strlen(name);
		char *path = xjoin(st->relpath, name);

		/* The listing's directories end in '/' already. */
		add_line(l, "*deleting  ", path, false, "");
		free(path);
		off += n + 1;
	}
}

void
itemize_step(void *arg, const FullSyncStep *st)
{
	ItemList *l = arg;
	const FileMeta *s = st->src, *d = st->dst;
	char code[CODE_LEN + 1] = "...........", suffix[64] = "";
	char *tail = NULL;
	bool other_type, dir;

	if (st->err != 0)
		return;	/* a failure: the log names it, the figures count it */
	if (st->done == RULE_DELETE) {
		if (!st->replace)	/* a replace: its next step says it */
			add_delete(l, st);
		return;
	}
	if (st->done != RULE_MKDIR && st->done != RULE_COPY &&
	    st->done != RULE_ATTRS && st->done != RULE_SYMLINK &&
	    st->done != RULE_HARDLINK)
		return;	/* equal after a hash, or not mirrored */
	other_type = d != NULL && s != NULL &&
	    (d->mode & S_IFMT) != (s->mode & S_IFMT);
	code[1] = s != NULL ? type_char(s->mode) : 'd';
	switch (st->done) {
	case RULE_MKDIR:
		code[0] = 'c';
		code[1] = 'd';
		break;
	case RULE_COPY:
		code[0] = '>';
		break;
	case RULE_SYMLINK:
		code[0] = 'c';
		break;
	case RULE_HARDLINK:
		code[0] = 'h';
		break;
	default:
		break;
	}
	if (d == NULL || other_type || st->done == RULE_MKDIR) {
		memset(code + 2, '+', CODE_LEN - 2);
	} else {
		if ((st->done == RULE_COPY && st->hashed) ||
		    st->done == RULE_SYMLINK)
			code[2] = 'c';
		attr_letters(l, s, d, st->done != RULE_ATTRS, code);
	}
	if (other_type)
		snprintf(suffix, sizeof suffix, " (replaces %s)",
		    type_name(d->mode));
	else if (st->done == RULE_COPY && d != NULL && d->nlink > 1 &&
	    s->nlink <= 1)
		snprintf(suffix, sizeof suffix, " (splits a hard link)");
	if (st->target != NULL && (st->done == RULE_SYMLINK ||
	    st->done == RULE_HARDLINK)) {
		size_t esize = strlen(st->target) * 4 + 8;
		char *esc = xmalloc(esize);

		synclog_escape(st->target, esc, esize);
		tail = xmalloc(strlen(esc) + strlen(suffix) + 8);
		sprintf(tail, " %s %s%s", st->done == RULE_SYMLINK ? "->" :
		    "=>", esc, suffix);
		free(esc);
	}
	dir = code[1] == 'd';
	add_line(l, code, st->relpath, dir, tail != NULL ? tail : suffix);
	free(tail);
}

/* Paths in walk order: '/' before any other byte, so that a directory's
 * entries follow it at once ("a", "a/x", "a b"). Every line has its
 * path after the code and one space. */
static int
by_path(const void *a, const void *b)
{
	const unsigned char *x = (const unsigned char *)*(char *const *)a +
	    CODE_LEN + 1;
	const unsigned char *y = (const unsigned char *)*(char *const *)b +
	    CODE_LEN + 1;

	for (; *x != '\0' && *x == *y; x++, y++)
		;
	if (*x == *y)
		return 0;
	if (*x == '/')
		return *y == '\0' ? 1 : -1;
	if (*y == '/')
		return *x == '\0' ? -1 : 1;
	return *x < *y ? -1 : 1;
}

/* The max_delete setting as the operator wrote it. */
static void
limit_text(const MaxDelete *md, uint64_t budget, char *buf, size_t size)
{
	if (md->kind == MAX_DELETE_PERCENT)
		snprintf(buf, size, "%llu%% (%llu entries)", md->value,
		    (unsigned long long)budget);
	else
		snprintf(buf, size, "%llu", (unsigned long long)budget);
}

size_t
itemize_render(ItemList *l, const SyncPairConfig *pair, const char *dest,
    const SyncStats *st, bool held, void (*emit)(void *arg,
    const char *line), void *arg)
{
	char line[8192], limit[64];
	size_t n = 0;
	bool hold = st->fault == GUARD_OK && st->dry_deletes > st->delete_budget;

	if (l->n == 0 && l->dropped == 0 && st->fault == GUARD_OK && !hold &&
	    st->errors == 0)
		return 0;
	snprintf(line, sizeof line, "# %s -> %s", pair->name, dest);
	emit(arg, line);
	if (l->n > 1)
		qsort(l->lines, l->n, sizeof *l->lines, by_path);
	for (size_t i = 0; i < l->n; i++, n++)
		emit(arg, l->lines[i]);
	if (l->dropped != 0) {
		snprintf(line, sizeof line, "# ... and %llu more lines, not "
		    "shown: the answer is bounded (treesyncd --once --dry-run "
		    "lists them all)", (unsigned long long)l->dropped);
		emit(arg, line);
		n++;
	}
	if (st->fault != GUARD_OK) {
		snprintf(line, sizeof line, "would hold: source '%s' %s: "
		    "nothing done for this destination, nothing deleted",
		    pair->source, guard_fault_text(st->fault));
		emit(arg, line);
		n++;
	} else if (hold && held) {
		snprintf(line, sizeof line, "would hold: %llu deletes: the "
		    "pair's deletes are held (max_delete was reached); "
		    "treesyncctl resync --force %s releases them",
		    (unsigned long long)st->dry_deletes, pair->name);
		emit(arg, line);
		n++;
	} else if (hold) {
		limit_text(&pair->max_delete, st->delete_budget, limit,
		    sizeof limit);
		snprintf(line, sizeof line, "would hold: %llu deletes > "
		    "max_delete %s: a full sync would stop deleting there and "
		    "hold the pair's deletes", (unsigned long long)
		    st->dry_deletes, limit);
		emit(arg, line);
		n++;
	}
	if (st->errors != 0 && st->fault == GUARD_OK) {
		snprintf(line, sizeof line, "failed: %llu entr%s could not be "
		    "compared (the sync log names %s)",
		    (unsigned long long)st->errors, st->errors == 1 ? "y" :
		    "ies", st->errors == 1 ? "it" : "them");
		emit(arg, line);
		n++;
	}
	return n;
}
