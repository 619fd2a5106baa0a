/*
 * rules — see include/engine/rules.h (the semantics and why are there).
 */
#include <string.h>
#include <sys/stat.h>

#include "engine/rules.h"

static bool
same_owner(const FileMeta *s, const FileMeta *d, const RuleOptions *opt)
{
	return !opt->preserve_owner || (s->uid == d->uid && s->gid == d->gid);
}

static bool
same_mtime(const FileMeta *s, const FileMeta *d)
{
	return s->mtime_sec == d->mtime_sec && s->mtime_nsec == d->mtime_nsec;
}

/* A file's or directory's attributes: mode, owner, mtime. */
static bool
same_attrs(const FileMeta *s, const FileMeta *d, const RuleOptions *opt)
{
	return (s->mode & 07777) == (d->mode & 07777) &&
	    same_owner(s, d, opt) && same_mtime(s, d);
}

static RuleDecision
decided(RuleAction action)
{
	RuleDecision r;

	memset(&r, 0, sizeof r);
	r.action = action;
	return r;
}

/* Content taken as equal: nothing, or the attributes. */
static RuleAction
attrs_or_none(const ScanEntry *src, const ScanEntry *dst,
    const RuleOptions *opt)
{
	return same_attrs(&src->meta, &dst->meta, opt) ? RULE_NONE : RULE_ATTRS;
}

/* A regular source file over dst (a regular file, or NULL), by content:
 * what a lone file or a group's first name needs. */
static RuleAction
file_content(const ScanEntry *src, const ScanEntry *dst,
    const RuleOptions *opt)
{
	if (dst == NULL || !S_ISREG(dst->meta.mode))
		return RULE_COPY;
	if (src->meta.size != dst->meta.size)
		return RULE_COPY;
	if (opt->compare == COMPARE_HASH)
		return RULE_HASH;
	if (!same_mtime(&src->meta, &dst->meta))
		return RULE_COPY;
	return attrs_or_none(src, dst, opt);
}

static RuleDecision
decide_file(const ScanEntry *src, const ScanEntry *dst,
    const RuleOptions *opt)
{
	RuleDecision r;

	if (src->meta.nlink > 1) {
		r = decided(RULE_HARDLINK);
		r.leader = file_content(src, dst, opt);
		return r;
	}
	/* A destination name linked to other names is split off. */
	if (dst != NULL && S_ISREG(dst->meta.mode) && dst->meta.nlink > 1)
		return decided(RULE_COPY);
	return decided(file_content(src, dst, opt));
}

static RuleDecision
decide_symlink(const ScanEntry *src, const ScanEntry *dst,
    const RuleOptions *opt)
{
	if (dst != NULL && S_ISLNK(dst->meta.mode) && dst->link_target != NULL &&
	    src->link_target != NULL &&
	    strcmp(dst->link_target, src->link_target) == 0)
		return decided(same_owner(&src->meta, &dst->meta, opt) ?
		    RULE_NONE : RULE_ATTRS);
	return decided(RULE_SYMLINK);
}

RuleDecision
rules_decide(const ScanEntry *src, const ScanEntry *dst,
    const RuleOptions *opt)
{
	mode_t st, dt;
	RuleDecision r;
	bool replace;

	if (src == NULL) {
		if (dst == NULL)
			return decided(RULE_NONE);
		return decided(opt->delete ? RULE_DELETE : RULE_KEEP);
	}
	if (src->err != 0)
		return decided(RULE_SOURCE_ERROR);
	st = src->meta.mode & S_IFMT;
	if (st != S_IFREG && st != S_IFDIR && st != S_IFLNK)
		return decided(RULE_SKIP);	/* replaces nothing */
	dt = dst != NULL && dst->err == 0 ? dst->meta.mode & S_IFMT : 0;
	/* Unreadable, or a directory on one side only: in the way. */
	replace = dst != NULL && (dst->err != 0 ||
	    (st == S_IFDIR) != (dt == S_IFDIR));
	if (replace)
		dst = NULL;
	switch (st) {
	case S_IFDIR:
		if (dst == NULL) {
			r = decided(RULE_MKDIR);
		} else {
			r = decided(RULE_RECURSE);
			r.attrs = !same_attrs(&src->meta, &dst->meta, opt);
		}
		break;
	case S_IFREG:
		r = decide_file(src, dst, opt);
		break;
	default:
		r = decide_symlink(src, dst, opt);
		break;
	}
	r.replace = replace;
	return r;
}

RuleDecision
rules_after_hash(const ScanEntry *src, const ScanEntry *dst,
    const RuleOptions *opt, bool same)
{
	if (!same || dst == NULL)
		return decided(RULE_COPY);
	return decided(attrs_or_none(src, dst, opt));
}

const char *
rules_action_name(RuleAction a)
{
	/* In the enum's order. */
	static const char *const names[RULE_ACTIONS] = { "-", "attrs",
	    "copy", "hash", "symlink", "mkdir", "recurse", "link", "delete",
	    "keep", "skip", "stat" };

	return (unsigned)a < RULE_ACTIONS ? names[a] : "?";
}
