/*
 * walk — placing watches (watcher thread): a root's recursive set-up, a
 * new directory's watches with a synthetic IN_CREATE per entry found,
 * directories tried again after an ancestor's queued rename, and the
 * repair walk after lost events. Walks open every directory beneath its
 * root's fd without following symlinks (util/beneath) and treat ENOENT as
 * "gone", see watcher.c's DESIGN.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/alloc.h"
#include "util/beneath.h"
#include "watch-int.h"

/*
 * Opens the root's directory for a while. Not for longer: an open fd keeps
 * a deleted directory's inode alive, and then its IN_DELETE_SELF never
 * comes. Once the root is watched, the path must still name the same
 * directory (not one made again, or moved there).
 */
int
watch_root_hold(struct root *root)
{
	struct stat st;
	int fd;

	if (root->holds > 0) {
		root->holds++;
		return 0;
	}
	if ((fd = open(root->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if (root->top != NULL && (fstat(fd, &st) < 0 ||
	    st.st_dev != root->dev || st.st_ino != root->ino)) {
		close(fd);
		return -ESTALE;
	}
	root->fd = fd;
	root->holds = 1;
	return 0;
}

void
watch_root_release(struct root *root)
{
	if (--root->holds == 0) {
		close(root->fd);
		root->fd = -1;
	}
}

int
watch_dir_id(Watcher *w, bool fan, int fd, struct dir_id *id)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	id->dev = st.st_dev;
	id->ino = st.st_ino;
	id->hlen = 0;
	id->htype = 0;
	if (!fan)
		return 0;
	for (id->fs = 0; id->fs < w->n_fs; id->fs++)
		if (w->fs[id->fs].dev == st.st_dev)
			return watch_fan_handle(fd, id);
	return -ENOENT;		/* not a marked file system: none of ours */
}

bool
watch_still_there(Watcher *w, const struct node *n)
{
	struct root *root = watch_node_path(w, n, &w->path2);
	struct dir_id id;
	int fd;
	bool same;

	if (root == NULL || watch_root_hold(root) < 0)
		return false;
	fd = open_beneath(root->fd, w->path2.s, O_PATH | O_DIRECTORY);
	same = fd >= 0 && watch_dir_id(w, (n->flags & NODE_FAN) != 0, fd,
	    &id) == 0 && watch_node_is(n, &id);
	if (fd >= 0)
		close(fd);
	watch_root_release(root);
	return same;
}

static void
walk_note(struct walk *wk, int error)
{
	if (wk->error == 0)
		wk->error = error;
}

static void
walk_push(struct walk *wk, struct node *parent, const char *relpath)
{
	size_t len = strlen(relpath);

	if (wk->n_items == wk->cap_items) {
		wk->cap_items = wk->cap_items ? 2 * wk->cap_items : 64;
		wk->items = xrealloc(wk->items,
		    wk->cap_items * sizeof *wk->items);
	}
	wk->items[wk->n_items++] = (struct walk_item){
		.parent = parent, .off = wk->paths.len,
	};
	sbuf_reserve(&wk->paths, len);
	memcpy(wk->paths.s + wk->paths.len, relpath, len + 1);
	wk->paths.len += len + 1;
}

/* A new node n (of the directory st) at name under parent. */
static struct node *
place_new(Watcher *w, struct walk *wk, struct node *n,
    const struct stat *st, struct node *parent, const char *name, bool top)
{
	n->flags |= NODE_VISITED;
	if (top) {
		n->flags |= NODE_TOP;
		wk->root->top = n;
		wk->root->dev = st->st_dev;
		wk->root->ino = st->st_ino;
	} else {
		struct node *occupant = (n->flags & NODE_FAN) ? NULL :
		    watch_node_by_name(w, parent, name);
		if (occupant != NULL)
			watch_node_orphan(w, occupant);
		watch_node_attach(w, n, parent);
	}
	wk->placed++;
	return n;
}

/*
 * The directory id already has a node: the kernel said EEXIST (inotify),
 * or its handle is known (fanotify; n is that node, else NULL).
 */
static struct node *
place_known(Watcher *w, struct walk *wk, const struct dir_id *id,
    struct node *n, struct node *parent, const char *name, bool top,
    bool *skip)
{
	int r;

	if (!wk->root->fan)
		n = top ? wk->root->top : watch_node_by_name(w, parent, name);
	else if (!(top ? n == wk->root->top : n->parent == parent &&
	    strcmp(n->name, name) == 0))
		n = NULL;
	if (n != NULL && watch_node_is(n, id)) {
		/* Already watched here. It was read after its watch was
		 * placed, so only a repair or another root needs it again. */
		wk->placed++;
		n->flags |= NODE_VISITED;
		if (!wk->rescan_known)
			*skip = true;
		return n;
	}
	if (top) {
		/* Overlapping roots would share wds; see watcher_add_root. */
		wk->busy = true;
		walk_note(wk, -EBUSY);
		*skip = true;
		return NULL;
	}
	if (wk->root->fan) {
		n = watch_node_by_handle(w, id->fs, id->htype, id->hlen,
		    id->handle);
	} else {
		struct stat st = { .st_dev = id->dev, .st_ino = id->ino };
		if ((n = watch_node_by_inode(w, &st)) == NULL) {
			/* The kernel has a watch we do not know (a bug, or
			 * lost track after an overflow): start over. */
			w->need_rebuild = true;
			walk_note(wk, -EIO);
			return NULL;
		}
	}
	if (watch_still_there(w, n)) {
		/* Visible at two paths (bind mount): watched at the other,
		 * so not missing here either. */
		wk->needed--;
		*skip = true;
		return NULL;
	}
	if ((r = watch_relink(w, n, parent, name)) < 0) {
		watch_set_overflow(w);
		w->need_repair = true;
		walk_note(wk, r);
		return NULL;
	}
	wk->placed++;
	n->flags |= NODE_VISITED;
	return n;
}

/*
 * Gives the directory open as fd (at relpath, with st) a node under
 * parent (top: the root's node). Returns the node, or NULL when it has
 * no watch; *skip when its subtree must not be walked.
 */
static struct node *
walk_place(Watcher *w, struct walk *wk, int fd, const struct stat *st,
    struct node *parent, const char *relpath, bool *skip)
{
	const char *slash = strrchr(relpath, '/');
	const char *name = slash != NULL ? slash + 1 : relpath;
	bool top = relpath[0] == '\0';
	struct dir_id id = { .dev = st->st_dev, .ino = st->st_ino };
	struct node *n;
	int wd = -1, r;

	if (wk->root->fan) {
		/* No watch: the file system's mark (placed at its first
		 * directory) and the handle that events will name. */
		if ((r = watch_fan_mark(w, fd, st, &id.fs)) < 0 ||
		    (r = watch_fan_handle(fd, &id)) < 0) {
			walk_note(wk, r);
			return NULL;
		}
		n = watch_node_by_handle(w, id.fs, id.htype, id.hlen,
		    id.handle);
		if (n == NULL)
			return place_new(w, wk, watch_node_new_fan(w, &id,
			    name), st, parent, name, top);
		return place_known(w, wk, &id, n, parent, name, top, skip);
	}
	if (wk->no_space) {
		walk_note(wk, -ENOSPC);
		return NULL;
	}
	r = watch_fd(w, fd, &wd);
	if (r == 0)
		return place_new(w, wk, watch_node_new_ino(w, wd, name, st),
		    st, parent, name, top);
	if (r == -EEXIST)
		return place_known(w, wk, &id, NULL, parent, name, top, skip);
	if (r == -ENOSPC)
		wk->no_space = true;
	walk_note(wk, r);
	return NULL;
}

static void
retry_add(Watcher *w, struct node *parent, const char *relpath, bool emit)
{
	const char *slash = strrchr(relpath, '/');
	char *name = xstrdup(slash != NULL ? slash + 1 : relpath);

	if (w->n_retries == w->cap_retries) {
		w->cap_retries = w->cap_retries ? 2 * w->cap_retries : 16;
		w->retries = xrealloc(w->retries,
		    w->cap_retries * sizeof *w->retries);
	}
	w->retries[w->n_retries++] = (struct retry){
		.parent = parent, .name = name, .emit = emit,
	};
}

/* Reads the directory watched as n: entries out, subdirectories pushed. */
static int
walk_read(Watcher *w, struct walk *wk, struct node *n, DIR *dir,
    const char *relpath)
{
	struct root *root = wk->root;
	struct dirent *de;

	sbuf_set(&w->path2, relpath, strlen(relpath));
	while ((errno = 0, de = readdir(dir)) != NULL) {
		bool is_dir = de->d_type == DT_DIR;
		size_t base = w->path2.len;

		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (de->d_type == DT_UNKNOWN) {
			struct stat cst;
			is_dir = fstatat(dirfd(dir), de->d_name, &cst,
			    AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(cst.st_mode);
		}
		sbuf_join(&w->path2, de->d_name);
		if (root->ex == NULL ||
		    !exclude_match(root->ex, w->path2.s, is_dir)) {
			if (wk->emit)
				watch_emit_event(w, root->id, IN_CREATE |
				    (is_dir ? IN_ISDIR : 0), 0, true,
				    w->path2.s, w->path2.len);
			if (is_dir)
				walk_push(wk, n, w->path2.s);
		}
		w->path2.len = base;
		w->path2.s[base] = '\0';
	}
	return errno != 0 ? -errno : 0;
}

/* Watches one directory, then reads it. */
static void
walk_dir(Watcher *w, struct walk *wk, struct node *parent,
    const char *relpath)
{
	bool top = relpath[0] == '\0', skip = false;
	struct node *n = NULL;
	struct stat st;
	DIR *dir;
	int fd, r;

	fd = open_beneath(wk->root->fd, relpath, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		/* Gone, or not a directory any more, or not where our tree
		 * says: an ancestor renamed by an event still queued. */
		if (!top && fd == -ENOENT && parent != NULL)
			retry_add(w, parent, relpath, wk->emit);
		if (!top && (fd == -ENOENT || fd == -ENOTDIR || fd == -ELOOP))
			return;
		wk->needed++;
		walk_note(wk, fd);
		return;
	}
	wk->needed++;
	if (fstat(fd, &st) < 0) {
		walk_note(wk, -errno);
		close(fd);
		return;
	}
	if (top || parent != NULL)
		n = walk_place(w, wk, fd, &st, parent, relpath, &skip);
	if (skip || (top && n == NULL)) {
		close(fd);
		return;
	}
	if ((dir = fdopendir(fd)) == NULL) {
		walk_note(wk, -errno);
		close(fd);
		return;
	}
	if ((r = walk_read(w, wk, n, dir, relpath)) < 0)
		walk_note(wk, r);
	closedir(dir);
}

void
watch_walk_run(Watcher *w, struct walk *wk, struct node *parent,
    const char *relpath)
{
	struct sbuf here = { 0 };
	int r;

	if ((r = watch_root_hold(wk->root)) < 0) {
		wk->needed++;
		walk_note(wk, r);
		return;
	}
	walk_push(wk, parent, relpath);
	/* A walk of a big tree takes seconds: watcher_free need not wait. */
	while (wk->n_items > 0 && !wk->busy &&
	    !atomic_load_explicit(&w->quit, memory_order_relaxed)) {
		struct walk_item it = wk->items[--wk->n_items];
		sbuf_set(&here, wk->paths.s + it.off,
		    strlen(wk->paths.s + it.off));
		wk->paths.len = it.off;
		walk_dir(w, wk, it.parent, here.s);
	}
	watch_root_release(wk->root);
	free(here.s);
	free(wk->items);
	free(wk->paths.s);
	wk->items = NULL;
	wk->paths.s = NULL;
	wk->n_items = wk->cap_items = wk->paths.len = wk->paths.cap = 0;
}

/* rescan_known: read it even where it was watched already (another root). */
void
watch_walk_new(Watcher *w, struct root *root, struct node *parent,
    const char *relpath, bool emit, bool rescan_known)
{
	struct walk wk = {
		.root = root, .emit = emit, .rescan_known = rescan_known,
	};

	watch_walk_run(w, &wk, parent, relpath);
	root->pass_needed += wk.needed;
	root->pass_placed += wk.placed;
	if (root->pass_error == 0)
		root->pass_error = wk.error;
}

/* Whether r's directory exists now at its parent's path; walks it if so. */
static void
retry_one(Watcher *w, struct retry *r, bool capped)
{
	struct root *root;
	char *relpath;
	int fd;

	if (r->parent == NULL ||
	    (root = watch_node_path(w, r->parent, &w->path)) == NULL) {
		r->failures = INT_MAX;
		return;
	}
	sbuf_join(&w->path, r->name);
	if ((fd = watch_root_hold(root)) == 0) {
		fd = open_beneath(root->fd, w->path.s, O_PATH | O_DIRECTORY);
		watch_root_release(root);
	}
	if (fd < 0) {
		if (fd != -ENOENT)
			r->failures = INT_MAX;
		else if (!capped)
			r->failures++;
		return;
	}
	close(fd);
	/* The walk may add retries (moving the array): r is done. */
	r->failures = INT_MAX;
	relpath = xstrdup(w->path.s);
	watch_walk_new(w, root, r->parent, relpath, r->emit, false);
	free(relpath);
}

/*
 * A failure in two passes that were not cut at READ_CAP means they are
 * really gone.
 */
void
watch_run_retries(Watcher *w, bool capped)
{
	size_t n = w->n_retries, k = 0;

	for (size_t i = 0; i < n; i++) {
		struct retry r = w->retries[i];
		retry_one(w, &r, capped);
		w->retries[i].failures = r.failures;
	}
	/* Keep what may still turn up; entries added meanwhile stay. */
	for (size_t i = 0; i < w->n_retries; i++) {
		struct retry *r = &w->retries[i];
		if (r->parent != NULL && r->failures < 2)
			w->retries[k++] = *r;
		else
			free(r->name);
	}
	w->n_retries = k;
}

void
watch_retries_forget(Watcher *w)
{
	for (size_t i = 0; i < w->n_retries; i++)
		free(w->retries[i].name);
	w->n_retries = 0;
}

/*
 * After lost events: every root is walked again in place. New directories
 * get watches, moved ones are found by inode and relinked; a node no walk
 * reaches is outside every root (or dead). Cheaper than a rebuild: no
 * watch is placed twice, and the kernel queue keeps what arrives meanwhile.
 */
void
watch_repair(Watcher *w)
{
	w->need_repair = false;
	watch_set_overflow(w);
	watch_nodes_unvisit(w);
	for (struct root *root = w->roots; root != NULL; root = root->next) {
		struct walk wk = { .root = root, .rescan_known = true };
		if (root->top == NULL)
			continue;
		watch_walk_run(w, &wk, NULL, "");
		if (wk.placed < wk.needed)
			watch_emit_notice(w, WATCH_INCOMPLETE, root->id,
			    wk.error, wk.needed, wk.placed);
	}
	watch_nodes_lose_unvisited(w);
}

/*
 * fanotify for root, if the mode wants it and its file system takes a
 * mark; else inotify, with the reason in root->fan_error.
 */
static void
choose_mechanism(Watcher *w, struct root *root, WatchMode mode)
{
	struct dir_id id;
	struct stat st;
	int fd, r;

	if (mode == WATCH_INOTIFY)
		return;
	if ((r = watch_fan_start(w)) < 0)
		goto out;
	fd = open(root->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		/* The walk says why, whichever way it goes. */
		root->fan = mode == WATCH_FANOTIFY;
		return;
	}
	if (fstat(fd, &st) < 0)
		r = -errno;
	else if ((r = watch_fan_mark(w, fd, &st, &id.fs)) == 0)
		r = watch_fan_handle(fd, &id);
	close(fd);
out:
	root->fan = r == 0;
	root->fan_error = r;
}

void
watch_add_root(Watcher *w, struct cmd *c)
{
	struct root *root = xcalloc(1, sizeof *root);
	struct walk wk = { 0 };
	WatchNotice *ready;

	root->id = c->root;
	root->ex = c->ex;
	root->fd = -1;
	root->path = xstrdup(c->path);
	root->next = w->roots;
	w->roots = root;
	wk.root = root;
	wk.rescan_known = true;
	choose_mechanism(w, root, c->mode);
	if (c->mode == WATCH_FANOTIFY && !root->fan) {
		wk.needed = 1;
		wk.error = root->fan_error;
	} else if (w->broken && !root->fan) {
		wk.needed = 1;
		wk.error = -EIO;
	} else {
		watch_walk_run(w, &wk, NULL, "");
	}
	ready = watch_emit_notice(w, WATCH_ROOT_READY, c->root, wk.error,
	    wk.needed, root->top != NULL ? wk.placed : 0);
	ready->mode = root->fan ? WATCH_FANOTIFY : WATCH_INOTIFY;
	ready->fanotify_error = c->mode == WATCH_AUTO ? root->fan_error : 0;
	if (root->top == NULL) {
		w->roots = root->next;
		free(root->path);
		free(root);
		watch_emit_notice(w, WATCH_ROOT_RELEASED, c->root, 0, 0, 0);
	}
}

void
watch_remove_root(Watcher *w, unsigned id)
{
	struct root **pp = &w->roots, *root;

	while (*pp != NULL && (*pp)->id != id)
		pp = &(*pp)->next;
	/* Not found: its failed READY already released it. */
	if ((root = *pp) == NULL)
		return;
	if (root->top != NULL)
		watch_drop_subtree(w, root->top, true);
	*pp = root->next;
	free(root->path);
	free(root);
	watch_emit_notice(w, WATCH_ROOT_RELEASED, id, 0, 0, 0);
}
