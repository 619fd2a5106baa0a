/*
 * inotify — the watcher's glue to libinotifytools (watcher thread): the
 * instance, finding the library's fd, the wake-up through a watched pipe,
 * reading a pass of events, rebuilding the instance. What the library
 * does and what we do ourselves is in watcher.c's DESIGN and
 * docs/design.md.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <unistd.h>

#include <inotifytools/inotifytools.h>

#include "util/alloc.h"
#include "watch-int.h"

/* A set of fds, from /proc/self/fd. */
struct fdset {
	int *fd;
	size_t n, cap;
};

/* The inotify instances open in this process now, into set. */
static int
inotify_fds(struct fdset *set)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	char link[64];
	ssize_t len;
	int e = 0;

	if (d == NULL)
		return -errno;
	set->n = 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		len = readlinkat(dirfd(d), de->d_name, link, sizeof link - 1);
		if (len < 0)
			continue;	/* closed meanwhile, or the dir's own fd */
		link[len] = '\0';
		if (strcmp(link, "anon_inode:inotify") != 0)
			continue;
		if (set->n == set->cap) {
			set->cap = set->cap ? 2 * set->cap : 8;
			set->fd = xrealloc(set->fd, set->cap * sizeof *set->fd);
		}
		set->fd[set->n++] = atoi(de->d_name);
	}
	if (closedir(d) < 0)
		e = -errno;
	return e;
}

static bool
fdset_has(const struct fdset *set, int fd)
{
	for (size_t i = 0; i < set->n; i++)
		if (set->fd[i] == fd)
			return true;
	return false;
}

/* Whether inotify instance fd holds watch wd on the inode ino. */
static bool
fd_has_watch(int fd, int wd, unsigned long ino)
{
	char path[64], line[256];
	unsigned int lwd;
	unsigned long lino;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
	if ((f = fopen(path, "re")) == NULL)
		return false;
	/* "inotify wd:%x ino:%lx sdev:%x ..." (fs/notify/fdinfo.c) */
	while (!found && fgets(line, sizeof line, f) != NULL)
		found = sscanf(line, "inotify wd:%x ino:%lx", &lwd, &lino) ==
		    2 && lwd == (unsigned int)wd && lino == ino;
	fclose(f);
	return found;
}

/*
 * libinotifytools 3.22 keeps its inotify fd in a static and has no call
 * that returns it. When the library placed the wake-up watch (wd 1 on the
 * pipe), it is the instance whose fdinfo lists that watch: exact even when
 * other threads open and close inotify instances meanwhile. Without that
 * watch, it must be the only instance that appeared during initialize
 * (not in before).
 */
static int
find_lib_fd(Watcher *w, const struct fdset *before, bool wake_watched)
{
	struct fdset after = { 0 };
	struct stat st;
	int found = -1, r;

	if (wake_watched && fstat(w->wake_rd, &st) < 0)
		return -errno;
	if ((r = inotify_fds(&after)) < 0)
		goto out;
	r = -EIO;
	for (size_t i = 0; i < after.n; i++) {
		int fd = after.fd[i];
		if (wake_watched) {
			if (fd_has_watch(fd, 1, (unsigned long)st.st_ino)) {
				found = fd;
				break;
			}
		} else if (fdset_has(before, fd)) {
			continue;
		} else if (found >= 0) {
			found = -1;	/* ambiguous */
			break;
		} else {
			found = fd;
		}
	}
	if (found >= 0) {
		w->ifd = found;
		r = 0;
	}
out:
	free(after.fd);
	return r;
}

int
watch_lib_start(Watcher *w)
{
	char path[48];
	struct fdset before = { 0 };
	const char *lib_name;
	bool wake_watched;
	int probe, r;

	/* The library select()s on its fd: it must be below FD_SETSIZE. */
	probe = fcntl(w->wake_rd, F_DUPFD_CLOEXEC, 0);
	if (probe >= 0)
		close(probe);
	if (probe >= FD_SETSIZE - 64)
		return -EMFILE;
	if ((r = inotify_fds(&before)) < 0)
		return r;
	if (!inotifytools_initialize()) {
		free(before.fd);
		return inotifytools_error() > 0 ? -inotifytools_error() : -EIO;
	}
	/* next_events keeps its read buffer in statics that cleanup does
	 * not reset: events a previous instance left there (a pass cut at
	 * READ_CAP) would come back with wds of the old instance. The new
	 * fd has no watch yet, so this ends with the buffer. */
	while (inotifytools_next_events(0, 1) != NULL)
		;
	w->wake_wd = -1;
	snprintf(path, sizeof path, "/proc/self/fd/%d", w->wake_rd);
	wake_watched = inotifytools_watch_file(path, IN_MODIFY) &&
	    (lib_name = inotifytools_filename_from_wd(1)) != NULL &&
	    strcmp(lib_name, path) == 0;
	r = find_lib_fd(w, &before, wake_watched);
	free(before.fd);
	if (r < 0) {
		inotifytools_cleanup();
		return r;
	}
	/* The thread polls the pipe itself: the watch only told the fd.
	 * Its events (a write per command) are skipped. */
	if (wake_watched)
		w->wake_wd = 1;
	w->ino_pending = false;
	return 0;
}

void
watch_lib_stop(Watcher *w)
{
	inotifytools_cleanup();
	w->ifd = -1;
}

/*
 * On the library's instance but not through the library (see DESIGN: its
 * record per watch is memory we do not use).
 */
int
watch_fd(Watcher *w, int fd, int *wd)
{
	char path[48];
	int r;

	snprintf(path, sizeof path, "/proc/self/fd/%d/", fd);
	if ((r = inotify_add_watch(w->ifd, path, DIR_MASK)) < 0)
		return -errno;
	*wd = r;
	return 0;
}

void
watch_rm(Watcher *w, int wd)
{
	/* EINVAL: the kernel dropped it meanwhile (its IN_IGNORED is
	 * queued and will find no node). */
	(void)inotify_rm_watch(w->ifd, wd);
}

static void
raw_push(Watcher *w, const struct inotify_event *ev)
{
	const char *name = ev->len > 0 ? ev->name : "";
	size_t len = strlen(name);

	if (w->n_raw == w->cap_raw) {
		w->cap_raw = w->cap_raw ? 2 * w->cap_raw : 256;
		w->raw = xrealloc(w->raw, w->cap_raw * sizeof *w->raw);
	}
	sbuf_reserve(&w->raw_names, len);
	w->raw[w->n_raw++] = (struct raw){
		.wd = ev->wd, .mask = ev->mask, .cookie = ev->cookie,
		.name = w->raw_names.len,
	};
	memcpy(w->raw_names.s + w->raw_names.len, name, len + 1);
	w->raw_names.len += len + 1;
}

/*
 * After poll said the fd is readable (or the last pass stopped at the
 * cap: the rest may be in the library's buffer, which poll cannot see).
 * Timeout 0 only polls: a pass is "everything queued now", up to
 * READ_CAP. False when the library failed.
 */
bool
watch_read_pass(Watcher *w, bool *wake)
{
	struct inotify_event *ev;

	w->ino_pending = false;
	ev = inotifytools_next_events(0, 1);
	if (ev == NULL && inotifytools_error() != 0 &&
	    inotifytools_error() != EINTR) {
		/* Not expected from a healthy fd; do not spin on it. */
		usleep(100 * 1000);
		*wake = true;
		return false;
	}
	while (ev != NULL) {
		if (ev->wd == w->wake_wd && w->wake_wd >= 0)
			*wake = true;
		else
			raw_push(w, ev);
		/* Stop at the cap, but not between a move's two halves. */
		if (w->n_raw >= READ_CAP &&
		    !(w->raw[w->n_raw - 1].mask & IN_MOVED_FROM)) {
			w->ino_pending = true;
			break;
		}
		ev = inotifytools_next_events(0, 1);
	}
	return true;
}

void
watch_wait(Watcher *w, bool *wake, bool *ino, bool *fan)
{
	struct pollfd p[3] = {
		{ .fd = w->wake_rd, .events = POLLIN },
		{ .fd = w->ifd, .events = POLLIN },
		{ .fd = w->fan_fd, .events = POLLIN },
	};
	int timeout = w->ino_pending || w->fan_pending ? 0 : -1;

	if (poll(p, 3, timeout) < 0) {
		p[0].revents = p[1].revents = p[2].revents = 0;
		*wake = true;	/* EINTR: look at the commands anyway */
	}
	*wake |= p[0].revents != 0;
	*ino = p[1].revents != 0 || w->ino_pending;
	*fan = p[2].revents != 0 || w->fan_pending;
}

void
watch_drain_wake_pipe(Watcher *w)
{
	char buf[64];

	while (read(w->wake_rd, buf, sizeof buf) > 0)
		;
}

/*
 * For lost nodes piling up, or a watch we could not account for. Events
 * in between are lost: overflow.
 */
void
watch_rebuild(Watcher *w)
{
	int r;

	watch_hand_off(w);
	watch_nodes_free_all(w);
	watch_lib_stop(w);
	w->need_rebuild = w->need_repair = false;
	atomic_fetch_add(&w->st_rebuilds, 1);
	watch_set_overflow(w);
	if ((r = watch_lib_start(w)) < 0) {
		w->broken = true;
		for (struct root *root = w->roots; root; root = root->next)
			watch_emit_notice(w, WATCH_INCOMPLETE, root->id, r, 1,
			    0);
		return;
	}
	for (struct root *root = w->roots; root != NULL; root = root->next) {
		struct walk wk = { .root = root, .rescan_known = true };
		if (root->gone)
			continue;
		watch_walk_run(w, &wk, NULL, "");
		if (wk.placed < wk.needed || root->top == NULL)
			watch_emit_notice(w, WATCH_INCOMPLETE, root->id,
			    wk.error, wk.needed, root->top != NULL ?
			    wk.placed : 0);
	}
}
