/*
 * fuzz-planner — planner_plan_dir on arbitrary pairs of listings.
 *
 * The input is decoded into options, exclude patterns and two listings
 * (source and destination) of entries whose names come from a small table,
 * so that names meet on both sides often. The plan is then checked:
 *  - every action points at an entry of this directory's two listings
 *    (nothing outside the directory) and has the fields its type needs;
 *  - phases are in order (deletes, mkdirs, files, recursions), and every
 *    delete of a name comes before any create of it;
 *  - applied to a model of the destination listing, where a create on a
 *    name still taken by a directory fails like mkdir/rename would, it
 *    gives the source listing, except where SPEC says otherwise: excluded
 *    names and source entries that could not be read (or are special
 *    files) leave the destination as it was, names only in the
 *    destination stay when delete = false or excluded, and temporaries of
 *    an earlier run always go;
 *  - nothing is done to a name that already matches (mtime mode), and
 *    with compare = "hash" equal-size files are hashed, whatever their
 *    mtimes (rules.h);
 *  - the figures count the source entries that are not ignored.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/fsutil.h"
#include "engine/planner.h"
#include "fuzz.h"

#define N_NAMES 16

static char own_temp[128];
static const char *names[N_NAMES] = {
	"a", "b", "c", "d", "e.o", "f", "A", "a.b",
	".treesync.0000000000000000.1", NULL /* own_temp */, "x y", "\xc3\xa4",
	"bb", "ab", "cache", "z",
};
static const char *dirs[4] = { "", "d", "a/b", "cache/x" };
static const char *patterns[8] = {
	"*.o", "b", "cache/", "/a", "d/*", "[ab]", "?", "a/b/c*",
};
static const char *targets[4] = { "a", "../x", "/etc/passwd", "b" };

struct reader {
	const uint8_t *p, *end;
};

static unsigned
next(struct reader *rd)
{
	return rd->p < rd->end ? *rd->p++ : 0;
}

/* One name in the model of the destination. */
struct model {
	bool present;
	bool original;		/* still the listing's entry (not replaced) */
	bool created, deleted;
	RuleAction did;		/* the last step taken on the name */
	uint32_t type;
	FileMeta meta;
	const char *target;
};

static int
name_index(const char *name)
{
	for (int i = 0; i < N_NAMES; i++)
		if (strcmp(names[i], name) == 0)
			return i;
	FUZZ_CHECK(false, "unknown name '%s'", name);
	return -1;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const ScanEntry *)a)->name,
	    ((const ScanEntry *)b)->name);
}

/* Decodes one entry; false when the name is already on that side. */
static bool
decode_entry(struct reader *rd, unsigned head, ScanEntry *e, bool *taken)
{
	static const uint32_t modes[4] = { 0644, 0600, 04755, 0 };
	static const int64_t sizes[4] = { 0, 1, 100, (int64_t)1 << 40 };
	unsigned kind = (head >> 1) & 7, name = head >> 4;
	unsigned m = next(rd), t = next(rd);

	if (taken[name])
		return false;
	taken[name] = true;
	memset(e, 0, sizeof *e);
	e->name = (char *)names[name];
	e->meta.size = sizes[m & 3];
	e->meta.mtime_sec = (m >> 2) & 1;
	e->meta.mtime_nsec = (m >> 3) & 1 ? 5 : 0;
	e->meta.mode = modes[(m >> 4) & 3];
	e->meta.uid = (m >> 6) & 1;
	e->meta.gid = (m >> 7) & 1;
	e->meta.nlink = 1;
	e->meta.ino = name + 1;
	switch (kind) {
	case 0:
	case 1:
		e->meta.mode |= S_IFREG;
		break;
	case 2:
		e->meta.mode |= S_IFREG;
		e->meta.nlink = 2 + (t & 1);
		break;
	case 3:
		e->meta.mode |= S_IFDIR;
		e->meta.nlink = 2;
		e->meta.size = 4096;
		break;
	case 4:
		e->meta.mode |= S_IFLNK;
		e->link_target = (char *)targets[t & 3];
		e->meta.size = (int64_t)strlen(e->link_target);
		break;
	case 5:
		e->meta.mode |= (t & 1) ? S_IFIFO : S_IFSOCK;
		break;
	case 6:
		/* lstat failed: meta unknown (zero, as scan leaves it). */
		memset(&e->meta, 0, sizeof e->meta);
		e->err = (t & 1) ? -EACCES : -ENOENT;
		break;
	default:
		e->meta.mode |= S_IFDIR;
		e->meta.nlink = 3;
		e->meta.size = 4096;
		break;
	}
	return true;
}

static bool
excluded(const Exclude *ex, const char *dir, const char *name, bool is_dir)
{
	char path[512];

	if (dir[0] == '\0')
		return exclude_match(ex, name, is_dir);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return exclude_match(ex, path, is_dir);
}

/* SPEC's quick check, written here from SPEC rather than taken from
 * rules.c, so that the target checks the rules instead of repeating
 * them: size and mtime to the nanosecond; attributes: mode and owner. */
static bool
quick_same(const FileMeta *a, const FileMeta *b)
{
	return a->size == b->size && a->mtime_sec == b->mtime_sec &&
	    a->mtime_nsec == b->mtime_nsec;
}

static bool
attrs_same(const FileMeta *a, const FileMeta *b, bool owner)
{
	return (a->mode & 07777) == (b->mode & 07777) &&
	    (!owner || (a->uid == b->uid && a->gid == b->gid));
}

static int
phase(RuleAction t)
{
	return t == RULE_DELETE ? 0 : t == RULE_MKDIR ? 1 :
	    t == RULE_RECURSE ? 3 : 2;
}

static bool
in_list(const ScanList *l, const ScanEntry *e)
{
	return e >= l->entries && e < l->entries + l->n;
}

static void
make_like(struct model *m, const ScanEntry *s)
{
	m->present = true;
	m->original = false;
	m->created = true;
	m->type = s->meta.mode & S_IFMT;
	m->meta = s->meta;
	m->target = s->link_target;
}

/* Applies one action to the model, checking that it could be done. */
static void
apply(const PlanAction *a, const ScanList *src, const ScanList *dst,
    struct model *model, int *fresh, bool hash)
{
	const ScanEntry *e = a->src != NULL ? a->src : a->dst;
	struct model *m;
	int k;

	FUZZ_CHECK(e != NULL, "action %d on nothing", a->type);
	FUZZ_CHECK(a->src == NULL || in_list(src, a->src),
	    "action %d: src outside the listing", a->type);
	FUZZ_CHECK(a->dst == NULL || in_list(dst, a->dst),
	    "action %d: dst outside the listing", a->type);
	FUZZ_CHECK(a->src == NULL || a->dst == NULL ||
	    strcmp(a->src->name, a->dst->name) == 0,
	    "action %d pairs '%s' with '%s'", a->type, a->src->name,
	    a->dst->name);
	k = name_index(e->name);
	m = &model[k];
	m->did = a->type;
	if (a->type != RULE_DELETE)
		FUZZ_CHECK(a->src != NULL, "action %d without src", a->type);
	switch (a->type) {
	case RULE_DELETE:
		FUZZ_CHECK(a->src == NULL && a->dst != NULL, "delete fields");
		FUZZ_CHECK(m->present && m->original, "delete '%s': not the "
		    "listed entry", e->name);
		FUZZ_CHECK(!m->created, "delete '%s' after a create", e->name);
		FUZZ_CHECK(!m->deleted, "'%s' deleted twice", e->name);
		m->present = false;
		m->original = false;
		m->deleted = true;
		break;
	case RULE_MKDIR:
		FUZZ_CHECK(S_ISDIR(a->src->meta.mode), "mkdir of a non-dir");
		FUZZ_CHECK(!m->present, "mkdir '%s': name taken", e->name);
		make_like(m, a->src);
		break;
	case RULE_COPY:
	case RULE_HASH:
	case RULE_HARDLINK:
	case RULE_SYMLINK:
		FUZZ_CHECK(a->type == RULE_SYMLINK ? S_ISLNK(a->src->meta.mode) :
		    S_ISREG(a->src->meta.mode), "action %d on mode %o",
		    a->type, a->src->meta.mode);
		FUZZ_CHECK(a->src->err == 0, "action %d on an unread entry",
		    a->type);
		/* rename(2) cannot replace a directory with a file. */
		FUZZ_CHECK(!m->present || m->type != S_IFDIR,
		    "action %d on '%s': a directory is in the way", a->type,
		    e->name);
		FUZZ_CHECK(!m->created, "'%s' created twice", e->name);
		/* The destination entry handed over is what is there. */
		FUZZ_CHECK(a->dst == NULL ? !m->present : m->original,
		    "action %d on '%s': dst does not match the model",
		    a->type, e->name);
		if (a->type == RULE_HASH)
			FUZZ_CHECK(m->present && m->type == S_IFREG &&
			    m->meta.size == a->src->meta.size,
			    "hash compare without an equal-size file");
		/* What a group's first name needs, as for a lone file. */
		if (a->type == RULE_HARDLINK && (a->rule.leader == RULE_NONE ||
		    a->rule.leader == RULE_ATTRS))
			FUZZ_CHECK(m->present && m->type == S_IFREG &&
			    !hash && quick_same(&a->src->meta, &m->meta),
			    "hard link taken as up to date without matching "
			    "content");
		if (a->type == RULE_HARDLINK && a->rule.leader == RULE_HASH)
			FUZZ_CHECK(m->present && m->type == S_IFREG && hash &&
			    m->meta.size == a->src->meta.size,
			    "hard link hashed without an equal-size file");
		make_like(m, a->src);
		break;
	case RULE_ATTRS:
		FUZZ_CHECK(m->present && m->original &&
		    m->type == (a->src->meta.mode & S_IFMT),
		    "meta on '%s': no entry of that type", e->name);
		if (m->type == S_IFREG)
			FUZZ_CHECK(quick_same(&a->src->meta,
			    &m->meta), "meta on '%s' with other content",
			    e->name);
		else
			FUZZ_CHECK(m->target != NULL && strcmp(m->target,
			    a->src->link_target) == 0, "meta on a symlink "
			    "with another target");
		m->meta.mode = (m->meta.mode & S_IFMT) |
		    (a->src->meta.mode & 07777);
		m->meta.uid = a->src->meta.uid;
		m->meta.gid = a->src->meta.gid;
		m->created = true;
		break;
	case RULE_RECURSE:
		FUZZ_CHECK(m->present && m->type == S_IFDIR,
		    "recurse into '%s': not a directory", e->name);
		FUZZ_CHECK(a->fresh_dir == !m->original,
		    "recurse '%s': fresh_dir %d", e->name, a->fresh_dir);
		fresh[k]++;
		break;
	case RULE_SKIP:
		FUZZ_CHECK(a->src->err == 0 && !S_ISREG(a->src->meta.mode) &&
		    !S_ISDIR(a->src->meta.mode) && !S_ISLNK(a->src->meta.mode),
		    "skip of a mirrored type %o", a->src->meta.mode);
		break;
	case RULE_SOURCE_ERROR:
		FUZZ_CHECK(a->src->err != 0, "source error without an error");
		break;
	default:
		FUZZ_CHECK(false, "unknown action type %d", a->type);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct reader rd = { data, data + size };
	ScanEntry src_e[N_NAMES], dst_e[N_NAMES];
	ScanList src = { src_e, 0, N_NAMES }, dst = { dst_e, 0, N_NAMES };
	bool src_taken[N_NAMES] = { 0 }, dst_taken[N_NAMES] = { 0 };
	struct model model[N_NAMES];
	int fresh[N_NAMES] = { 0 }, last_phase = 0;
	unsigned opts, pats;
	const char *dir;
	PlanOptions opt = { 0 };
	Plan plan;
	Exclude *ex = NULL;
	size_t n_src = 0, i;

	if (names[9] == NULL) {
		fsutil_temp_name(own_temp, sizeof own_temp);
		names[9] = own_temp;
	}
	opts = next(&rd);
	pats = next(&rd);
	dir = dirs[(opts >> 3) & 3];
	if (exclude_new(&ex) < 0)
		return 0;
	for (i = 0; i < 8; i++)
		if (pats & (1u << i))
			FUZZ_CHECK(exclude_add(ex, patterns[i]) == 0, "pattern");
	opt.exclude = ex;
	opt.rules.delete = opts & 1;
	opt.rules.compare = (opts & 2) ? COMPARE_HASH : COMPARE_MTIME;
	opt.rules.preserve_owner = (opts & 4) != 0;
	while (rd.p < rd.end) {
		unsigned head = next(&rd);

		if (head & 1) {
			if (decode_entry(&rd, head, &dst_e[dst.n], dst_taken))
				dst.n++;
		} else if (decode_entry(&rd, head, &src_e[src.n], src_taken)) {
			src.n++;
		}
	}
	qsort(src_e, src.n, sizeof *src_e, entry_cmp);
	qsort(dst_e, dst.n, sizeof *dst_e, entry_cmp);
	/* (opts & 0x20): the destination directory is new (dst NULL). */
	if ((opts & 0x20) && dst.n == 0) {
		FUZZ_CHECK(planner_plan_dir(dir, &src, NULL, &opt, &plan) == 0,
		    "plan failed");
	} else {
		FUZZ_CHECK(planner_plan_dir(dir, &src, &dst, &opt, &plan) == 0,
		    "plan failed");
	}

	memset(model, 0, sizeof model);
	for (i = 0; i < dst.n; i++) {
		struct model *m = &model[name_index(dst_e[i].name)];

		m->present = m->original = true;
		m->type = dst_e[i].err ? 0 : dst_e[i].meta.mode & S_IFMT;
		m->meta = dst_e[i].meta;
		m->target = dst_e[i].link_target;
	}
	for (i = 0; i < plan.n; i++) {
		int p = phase(plan.actions[i].type);

		FUZZ_CHECK(p >= last_phase, "action %zu (type %d) out of "
		    "phase order", i, plan.actions[i].type);
		last_phase = p;
		apply(&plan.actions[i], &src, &dst, model, fresh,
		    opt.rules.compare == COMPARE_HASH);
	}

	/* The result, name by name. */
	for (int k = 0; k < N_NAMES; k++) {
		const char *name = names[k];
		const ScanEntry *s = scan_find(&src, name);
		const ScanEntry *d = scan_find(&dst, name);
		const struct model *m = &model[k];
		bool temp = fsutil_is_temp_name(name);
		bool unchanged = m->present == (d != NULL) &&
		    (d == NULL || m->original);

		if (s != NULL) {
			bool ign = temp || excluded(ex, dir, name,
			    S_ISDIR(s->meta.mode));

			if (!ign)
				n_src++;
			if (temp && d != NULL && !fsutil_is_own_temp(name)) {
				FUZZ_CHECK(!m->present, "stale temporary '%s' "
				    "kept (its name is in the source too)",
				    name);
				continue;
			}
			if (ign || s->err != 0 || (!S_ISREG(s->meta.mode) &&
			    !S_ISDIR(s->meta.mode) && !S_ISLNK(s->meta.mode))) {
				FUZZ_CHECK(unchanged, "'%s' (ignored, unread "
				    "or special in the source) changed", name);
				continue;
			}
			FUZZ_CHECK(m->present && m->type ==
			    (s->meta.mode & S_IFMT), "'%s': type %o, source "
			    "%o", name, m->present ? m->type : 0,
			    s->meta.mode & S_IFMT);
			if (S_ISDIR(s->meta.mode)) {
				FUZZ_CHECK(fresh[k] == 1, "'%s': recursed %d "
				    "times", name, fresh[k]);
				continue;
			}
			FUZZ_CHECK(fresh[k] == 0, "recurse into a non-dir");
			if (S_ISREG(s->meta.mode))
				FUZZ_CHECK(quick_same(&s->meta,
				    &m->meta) || (opt.rules.compare == COMPARE_HASH &&
				    m->meta.size == s->meta.size),
				    "'%s': content differs", name);
			else
				FUZZ_CHECK(strcmp(m->target, s->link_target) ==
				    0, "'%s': symlink target", name);
			if (S_ISREG(s->meta.mode))
				FUZZ_CHECK((m->meta.mode & 07777) ==
				    (s->meta.mode & 07777), "'%s': mode %o, "
				    "source %o", name, m->meta.mode,
				    s->meta.mode);
			if (opt.rules.preserve_owner)
				FUZZ_CHECK(m->meta.uid == s->meta.uid &&
				    m->meta.gid == s->meta.gid,
				    "'%s': owner", name);
			/* compare = "hash" (as rsync --checksum): equal
			 * sizes are decided by the content, whatever the
			 * mtimes. */
			if (opt.rules.compare == COMPARE_HASH && d != NULL &&
			    d->err == 0 && S_ISREG(s->meta.mode) &&
			    S_ISREG(d->meta.mode) && s->meta.nlink == 1 &&
			    d->meta.nlink == 1 && s->meta.size == d->meta.size)
				FUZZ_CHECK(m->did == RULE_HASH, "'%s': equal "
				    "sizes in hash mode, step %d", name, m->did);
			/* Minimal: a matching single-link file is left
			 * alone in mtime mode. */
			if (opt.rules.compare == COMPARE_MTIME && d != NULL &&
			    d->err == 0 && S_ISREG(s->meta.mode) &&
			    S_ISREG(d->meta.mode) && s->meta.nlink == 1 &&
			    d->meta.nlink == 1 &&
			    quick_same(&s->meta, &d->meta) &&
			    attrs_same(&s->meta, &d->meta,
			    opt.rules.preserve_owner))
				FUZZ_CHECK(m->original && !m->created,
				    "'%s': up to date but acted on", name);
		} else if (d != NULL) {
			bool gone;

			if (temp)
				gone = !fsutil_is_own_temp(name);
			else
				gone = opt.rules.delete && !excluded(ex, dir, name,
				    d->err == 0 && S_ISDIR(d->meta.mode));
			FUZZ_CHECK(gone ? !m->present : unchanged,
			    "'%s' only in the destination: %s", name,
			    gone ? "kept" : "changed");
		}
	}
	FUZZ_CHECK(plan.n_src == n_src, "n_src %zu, expected %zu", plan.n_src,
	    n_src);
	planner_plan_free(&plan);
	exclude_free(ex);
	return 0;
}
