/*
 * remote-worker — the source side of a remote destination's batches and
 * compares (remote-int.h). Worker thread only: it reads its SourceLook's
 * copies and writes its results, nothing else.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "remote-int.h"
#include "util/alloc.h"

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The directories holding the paths that exist (never the root, whose
 * own listing would be a compare of its entries: it goes alone), each
 * once, checked to be directories in the source: rsync puts a copy in
 * place by a rename, which moves the parent's mtime on the host even
 * when the source's did not move. */
static void
collect_parents(SourceLook *l, int src)
{
	size_t cap = 0, k = 0;
	struct stat st;

	for (size_t i = 0; i < l->n; i++) {
		const char *slash = strrchr(l->paths[i], '/');

		/* A name that left: its parent is pending anyway (the delete
		 * event named it), a run for it here would be one more. */
		if (slash == NULL || !l->facts[i].exists)
			continue;
		xgrow(&l->parents, &cap, l->n_parents + 1, sizeof *l->parents,
		    16);
		l->parents[l->n_parents++] = xstrndup(l->paths[i],
		    (size_t)(slash - l->paths[i]));
	}
	if (l->n_parents == 0)
		return;
	qsort(l->parents, l->n_parents, sizeof *l->parents, cmp_str);
	for (size_t i = 0; i < l->n_parents; i++) {
		if ((k > 0 && strcmp(l->parents[k - 1], l->parents[i]) == 0) ||
		    fstatat(src, l->parents[i], &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISDIR(st.st_mode)) {
			free(l->parents[i]);
			continue;
		}
		l->parents[k++] = l->parents[i];
	}
	l->n_parents = k;
}

static bool
dir_is_empty(int src)
{
	int fd = openat(src, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *e;
	bool empty = true;
	DIR *d;

	if (fd < 0 || (d = fdopendir(fd)) == NULL) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			empty = false;
			break;
		}
	closedir(d);
	return empty;
}

void
remote_look_run(Job *job)
{
	SourceLook *l = (SourceLook *)job;
	int src = open(l->source, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (src < 0) {
		l->err = -errno;
		if (l->err == -ENOENT || l->err == -ENOTDIR)
			l->fault = GUARD_VANISHED;
		return;
	}
	l->fault = guard_check_source(src, 0, -1, &l->expect, false,
	    &l->seen);
	if (l->fault != GUARD_OK)
		goto out;
	l->root_empty = dir_is_empty(src);
	l->facts = xcalloc(l->n ? l->n : 1, sizeof *l->facts);
	for (size_t i = 0; i < l->n; i++) {
		PathFact *f = &l->facts[i];
		struct stat st;

		if (l->paths[i][0] == '\0') {
			f->exists = f->is_dir = true;
			continue;
		}
		if (fstatat(src, l->paths[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT && errno != ENOTDIR)
				f->err = -errno;
			continue;
		}
		f->exists = true;
		f->is_dir = S_ISDIR(st.st_mode);
		f->is_file = S_ISREG(st.st_mode);
		f->size = (uint64_t)st.st_size;
		f->nlink = (uint64_t)st.st_nlink;
		f->dev = (uint64_t)st.st_dev;
		f->ino = (uint64_t)st.st_ino;
	}
	collect_parents(l, src);
out:
	close(src);
}

void
remote_look_free(SourceLook *l)
{
	if (l == NULL)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
	for (size_t i = 0; i < l->n_parents; i++)
		free(l->parents[i]);
	free(l->parents);
	free(l->facts);
	free(l->source);
	free(l);
}
