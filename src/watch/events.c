/*
 * events — one pass of raw events (inotify's, and fanotify's decoded to
 * the same IN_* form) turned into changes of the node tree and the
 * events reported to the reactor (watcher thread). A pass is read whole
 * before it is processed, so a directory's IN_MOVED_FROM pairs with its
 * IN_MOVED_TO (same cookie, same mechanism) in the pass.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/beneath.h"
#include "watch-int.h"

static bool
moved_to_follows(const Watcher *w, size_t i)
{
	const struct raw *e = &w->raw[i];

	for (size_t j = i + 1; j < w->n_raw; j++)
		if ((w->raw[j].mask & (IN_MOVED_TO | IN_ISDIR)) ==
		    (IN_MOVED_TO | IN_ISDIR) && w->raw[j].cookie == e->cookie &&
		    w->raw[j].fan == e->fan)
			return true;
	return false;
}

static struct node *
take_move(Watcher *w, const struct raw *e)
{
	for (size_t i = 0; i < w->n_moves; i++) {
		if (w->moves[i].cookie == e->cookie &&
		    w->moves[i].fan == e->fan) {
			struct node *n = w->moves[i].node;
			w->moves[i] = w->moves[--w->n_moves];
			return n;
		}
	}
	return NULL;
}

/* A walk of a new directory at w->path (under parent). */
static void
walk_new_here(Watcher *w, struct root *root, struct node *parent,
    const char *path)
{
	char *relpath = xstrdup(path);

	watch_walk_new(w, root, parent, relpath, true, false);
	free(relpath);
}

/*
 * The directory n (found by name at IN_MOVED_FROM) was renamed to relpath
 * under parent. The event is trusted unless the inode now at relpath says
 * otherwise: a tree ahead of the events may have given n's old name to a
 * newer directory, which is then what n is.
 */
static void
moved_within(Watcher *w, struct root *root, struct node *n,
    struct node *parent, const char *relpath)
{
	const char *slash = strrchr(relpath, '/');
	const char *name = slash != NULL ? slash + 1 : relpath;
	struct root *from = watch_node_path(w, n, &w->path2);
	bool other = false;
	struct dir_id id;
	int fd;

	if (watch_root_hold(root) == 0) {
		fd = open_beneath(root->fd, relpath, O_PATH | O_DIRECTORY);
		if (fd >= 0) {
			other = watch_dir_id(w, root->fan, fd, &id) == 0 &&
			    !watch_node_is(n, &id);
			close(fd);
		}
		watch_root_release(root);
	}
	if (other) {
		watch_walk_new(w, root, parent, relpath, true, false);
		return;
	}
	if (watch_relink(w, n, parent, name) < 0) {
		watch_set_overflow(w);
		w->need_repair = true;
		return;
	}
	/* Another root never saw its content. */
	if (from != root)
		watch_walk_new(w, root, parent, relpath, true, true);
}

static void
on_ignored(Watcher *w, struct node *n)
{
	struct root *root = NULL;
	struct node *parent = n->parent;

	/* After an unmount, what is under the mount point needs a watch. */
	if ((n->flags & NODE_UNMOUNTED) && parent != NULL)
		root = watch_node_path(w, n, &w->path);
	watch_node_free(w, n, false);
	if (root != NULL)
		walk_new_here(w, root, parent, w->path.s);
}

/* An event of a directory whose place in the tree is unknown. */
static void
on_orphan_event(Watcher *w, struct node *n, const struct raw *e,
    const char *name)
{
	if (name[0] == '\0')
		return;
	if (watch_node_top(n)->flags & NODE_LOST) {
		/* Outside every root. Alive, unless all it says is that it
		 * is being emptied: then its IN_IGNORED is near and frees
		 * it. */
		if (!(e->mask & IN_DELETE))
			watch_node_free(w, n, true);
	} else {
		/* Alive where a newer directory took its name and no event
		 * told us where it went: find it again. */
		watch_set_overflow(w);
		w->need_repair = true;
	}
}

/* IN_MOVED_FROM of the directory w->path (named name in n), not excluded. */
static void
on_dir_moved_from(Watcher *w, struct root *root, struct node *n,
    size_t i, const char *name)
{
	const struct raw *e = &w->raw[i];
	struct dir_id child;
	struct node *old;

	if (e->fan && e->child != SIZE_MAX)
		watch_fan_unpack(w, e->child, &child);
	old = watch_node_child(w, n, name, e->fan && e->child != SIZE_MAX ?
	    &child : NULL);
	watch_emit_event(w, root->id, e->mask, e->cookie, false, w->path.s,
	    w->path.len);
	if (moved_to_follows(w, i)) {
		if (w->n_moves == w->cap_moves) {
			w->cap_moves = w->cap_moves ? 2 * w->cap_moves : 16;
			w->moves = xrealloc(w->moves,
			    w->cap_moves * sizeof *w->moves);
		}
		w->moves[w->n_moves++] = (struct pending_move){
			.fan = e->fan, .cookie = e->cookie, .node = old,
		};
	} else if (old != NULL && !watch_still_there(w, old)) {
		/* Moved out of every watched tree. */
		watch_drop_subtree(w, old, true);
	}
}

/* IN_MOVED_TO of the directory w->path, in n. */
static void
on_dir_moved_to(Watcher *w, struct root *root, struct node *n,
    const struct raw *e, bool excluded)
{
	struct node *moved = take_move(w, e);
	char *relpath;

	if (excluded) {
		/* Renamed to an excluded name: no longer watched. */
		if (moved != NULL)
			watch_drop_subtree(w, moved, true);
		return;
	}
	watch_emit_event(w, root->id, e->mask, e->cookie, false, w->path.s,
	    w->path.len);
	relpath = xstrdup(w->path.s);
	if (moved != NULL)
		moved_within(w, root, moved, n, relpath);
	else
		watch_walk_new(w, root, n, relpath, true, false);
	free(relpath);
}

/* An event on an entry of the watched directory n, at w->path. */
static void
on_entry_event(Watcher *w, struct root *root, struct node *n, size_t i,
    const char *name)
{
	const struct raw *e = &w->raw[i];
	bool is_dir = (e->mask & IN_ISDIR) != 0;
	bool excluded = root->ex != NULL &&
	    exclude_match(root->ex, w->path.s, is_dir);

	if ((e->mask & IN_MOVED_FROM) && is_dir && !excluded) {
		on_dir_moved_from(w, root, n, i, name);
		return;
	}
	if ((e->mask & IN_MOVED_TO) && is_dir) {
		on_dir_moved_to(w, root, n, e, excluded);
		return;
	}
	if (excluded) {
		/* Not mirrored; but a name that came or went moved its
		 * directory's mtime, which live checks (SPEC: directory
		 * mtimes converge). Never watched. */
		uint32_t entry = e->mask & (IN_CREATE | IN_DELETE |
		    IN_MOVED_FROM | IN_MOVED_TO);

		/* Only that: a fanotify event may carry its writes too. */
		if (entry != 0)
			watch_emit_event(w, root->id, entry |
			    (e->mask & IN_ISDIR), e->cookie, false, w->path.s,
			    w->path.len);
		return;
	}
	watch_emit_event(w, root->id, e->mask, e->cookie, false, w->path.s,
	    w->path.len);
	if ((e->mask & IN_CREATE) && is_dir)
		walk_new_here(w, root, n, w->path.s);
}

/* One event of the pass (index i, for the move pairing). */
static void
process_event(Watcher *w, size_t i)
{
	const struct raw *e = &w->raw[i];
	const char *name = w->raw_names.s + e->name;
	struct node *n;
	struct root *root;

	if (e->mask & IN_Q_OVERFLOW) {
		/* Lost events may have been new or renamed directories. */
		watch_set_overflow(w);
		w->need_repair = true;
		return;
	}
	/* wd -1 (overflow) never gets here; unknown wds are removed watches,
	 * unknown handles directories outside every root. */
	if ((n = e->fan ? watch_fan_lookup(w, e->dir) :
	    watch_node_by_wd(w, e->wd)) == NULL)
		return;
	if (e->mask & IN_IGNORED) {
		on_ignored(w, n);
		return;
	}
	if (e->mask & IN_UNMOUNT)
		n->flags |= NODE_UNMOUNTED;
	if ((root = watch_node_path(w, n, &w->path)) == NULL) {
		on_orphan_event(w, n, e, name);
		return;
	}
	if (name[0] == '\0') {
		if ((n->flags & NODE_TOP) || (e->mask & IN_UNMOUNT))
			watch_emit_event(w, root->id, e->mask, e->cookie,
			    false, w->path.s, w->path.len);
		else if (e->fan && (e->mask & IN_ATTRIB))
			/* fanotify reports a directory's own change only
			 * on itself: say it as inotify's parent watch does. */
			watch_emit_event(w, root->id, IN_ATTRIB | IN_ISDIR, 0,
			    false, w->path.s, w->path.len);
		return;
	}
	sbuf_join(&w->path, name);
	on_entry_event(w, root, n, i, name);
}

void
watch_process_pass(Watcher *w)
{
	for (size_t i = 0; i < w->n_raw; i++)
		process_event(w, i);
	watch_run_retries(w, w->n_raw >= READ_CAP);
	for (struct root *r = w->roots; r != NULL; r = r->next) {
		if (r->pass_placed < r->pass_needed)
			watch_emit_notice(w, WATCH_INCOMPLETE, r->id,
			    r->pass_error, r->pass_needed, r->pass_placed);
		r->pass_needed = r->pass_placed = 0;
		r->pass_error = 0;
	}
}
