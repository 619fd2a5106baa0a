/*
 * fullsync-links — a pass's hard-link groups (see fullsync-int.h).
 *
 * The first name of a source inode that the walk meets is the group's
 * leader and is copied (or found up to date); every later name is linked
 * to the leader's destination name once the leader is settled, and waits
 * in the group until then. Groups live in FullSync.links (util/map),
 * keyed by the source's device and inode; only inodes with nlink > 1
 * get one. Reactor thread only.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fullsync-int.h"
#include "util/alloc.h"

typedef struct LinkKey {
	uint64_t dev;
	uint64_t ino;
} LinkKey;

static bool
group_is(const MapNode *node, const void *key)
{
	const HardlinkGroup *g = MAP_ENTRY(node, HardlinkGroup, node);
	const LinkKey *k = key;

	return g->dev == k->dev && g->ino == k->ino;
}

static HardlinkGroup *
group_get(FullSync *fs, const FileMeta *meta)
{
	LinkKey key = { meta->dev, meta->ino };
	uint64_t h = map_hash_u64(meta->dev, meta->ino);
	MapNode *n = map_find(&fs->links, h, group_is, &key);
	HardlinkGroup *g;

	if (n != NULL)
		return MAP_ENTRY(n, HardlinkGroup, node);
	g = xcalloc(1, sizeof *g);
	g->dev = meta->dev;
	g->ino = meta->ino;
	map_insert(&fs->links, &g->node, h);
	return g;
}

void
fullsync_links_free(FullSync *fs)
{
	MapIter it = map_iter(&fs->links);

	for (MapNode *n; (n = map_next(&it)) != NULL;) {
		HardlinkGroup *g = MAP_ENTRY(n, HardlinkGroup, node);

		while (g->waiters != NULL) {
			Waiter *w = g->waiters;
			g->waiters = w->next;
			free(w->name);
			free(w);
		}
		free(g->leader);
		free(g);
	}
	map_clear(&fs->links);
}

void
fullsync_link_resolve(FullSync *fs, Builder *bl, const char *name,
    const FileMeta *src, const ScanEntry *dst, RuleAction leader)
{
	HardlinkGroup *g = group_get(fs, src);
	bool have_dst = dst != NULL && dst->err == 0 && S_ISREG(dst->meta.mode);
	Op *op;

	switch (g->state) {
	case HL_NONE:
		/* The first name met leads: it needs what the rules said of
		 * it, and the others are linked to it once that is done. */
		g->leader = xjoin(bl->dir->relpath, name);
		if (have_dst && (leader == RULE_NONE || leader == RULE_ATTRS)) {
			g->state = HL_DONE;
			g->dst_ino = dst->meta.ino;
			if (leader == RULE_ATTRS)
				fullsync_builder_add(bl, RULE_ATTRS, name, src);
			else
				fullsync_settle(fs, src);
			return;
		}
		g->state = HL_PENDING;
		if (!have_dst && leader == RULE_HASH)
			leader = RULE_COPY;	/* nothing to hash against */
		op = fullsync_builder_add(bl, leader == RULE_HASH ? RULE_HASH :
		    RULE_COPY, name, src);
		if (leader == RULE_HASH)
			op->dst_meta = dst->meta;
		op->group = g;
		return;
	case HL_PENDING: {
		Waiter *w = xcalloc(1, sizeof *w);
		w->dir = bl->dir;
		w->name = xstrdup(name);
		w->meta = *src;
		w->have_dst = have_dst;
		w->dst_ino = have_dst ? dst->meta.ino : 0;
		w->next = g->waiters;
		g->waiters = w;
		bl->dir->pending++;
		return;
	}
	case HL_DONE:
		if (have_dst && dst->meta.ino == g->dst_ino) {
			fullsync_settle(fs, src);
			return;
		}
		op = fullsync_builder_add(bl, RULE_HARDLINK, name, src);
		op->target = xstrdup(g->leader);
		return;
	}
}

void
fullsync_link_settled(FullSync *fs, HardlinkGroup *g, bool ok,
    uint64_t dst_ino)
{
	Waiter *w = g->waiters;

	g->waiters = NULL;
	if (ok) {
		g->state = HL_DONE;
		g->dst_ino = dst_ino;
	} else {
		/* The next waiting name becomes the leader. */
		g->state = HL_NONE;
		free(g->leader);
		g->leader = NULL;
	}
	while (w != NULL) {
		Waiter *next = w->next;
		ScanEntry dst = { .meta = { .ino = w->dst_ino,
		    .mode = S_IFREG } };
		Builder bl;

		fullsync_builder_init(&bl, fs, w->dir, 2);
		/* Led by a name whose copy failed: this one leads now, and
		 * is copied. */
		fullsync_link_resolve(fs, &bl, w->name, &w->meta,
		    w->have_dst ? &dst : NULL, RULE_COPY);
		for (Batch *b = fullsync_builder_finish(&bl); b != NULL;) {
			Batch *bn = b->next;
			fullsync_ready_push(fs, b);
			b = bn;
		}
		fullsync_dir_release(fs, w->dir);
		free(w->name);
		free(w);
		w = next;
	}
}
