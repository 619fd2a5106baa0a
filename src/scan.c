/*
 * scan — see include/scan.h.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "scan.h"

static int
push_entry(ScanList *list, const char *name)
{
	ScanEntry *e;

	if (list->n == list->cap) {
		size_t cap = list->cap ? list->cap * 2 : 64;
		ScanEntry *v = realloc(list->entries, cap * sizeof *v);
		if (v == NULL)
			return -ENOMEM;
		list->entries = v;
		list->cap = cap;
	}
	e = &list->entries[list->n];
	memset(e, 0, sizeof *e);
	if ((e->name = strdup(name)) == NULL)
		return -ENOMEM;
	list->n++;
	return 0;
}

/* Reads a symlink's target of any length. */
static int
read_link(int dir, const char *name, size_t hint, char **out)
{
	size_t size = hint + 1 > 64 ? hint + 1 : 64;

	for (;;) {
		char *buf = malloc(size);
		ssize_t n;

		if (buf == NULL)
			return -ENOMEM;
		n = readlinkat(dir, name, buf, size);
		if (n < 0) {
			int e = -errno;
			free(buf);
			return e;
		}
		if ((size_t)n < size) {
			buf[n] = '\0';
			*out = buf;
			return 0;
		}
		free(buf);
		size *= 2;
	}
}

static int
compare_entries(const void *a, const void *b)
{
	return strcmp(((const ScanEntry *)a)->name,
	    ((const ScanEntry *)b)->name);
}

int
scan_dir(int dir, ScanList *out)
{
	DIR *d;
	struct dirent *de;
	int fd, r = 0;

	memset(out, 0, sizeof *out);
	/* fdopendir takes the fd: give it a duplicate so dir stays ours. */
	if ((fd = openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	if ((d = fdopendir(fd)) == NULL) {
		r = -errno;
		close(fd);
		return r;
	}
	for (;;) {
		struct stat st;
		ScanEntry *e;

		errno = 0;
		if ((de = readdir(d)) == NULL) {
			if (errno != 0)
				r = -errno;
			break;
		}
		if (de->d_name[0] == '.' && (de->d_name[1] == '\0' ||
		    (de->d_name[1] == '.' && de->d_name[2] == '\0')))
			continue;
		if (fstatat(dir, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT)
				continue;	/* gone since readdir */
			if ((r = push_entry(out, de->d_name)) < 0)
				break;
			out->entries[out->n - 1].err = -errno;
			continue;
		}
		if ((r = push_entry(out, de->d_name)) < 0)
			break;
		e = &out->entries[out->n - 1];
		fsutil_meta_from_stat(&st, &e->meta);
		if (S_ISLNK(st.st_mode)) {
			int lr = read_link(dir, de->d_name, (size_t)st.st_size,
			    &e->link_target);
			if (lr == -ENOENT) {
				free(e->name);
				out->n--;
			} else if (lr < 0) {
				e->err = lr;
			}
		}
	}
	closedir(d);
	if (r < 0) {
		scan_list_free(out);
		return r;
	}
	if (out->n > 1)
		qsort(out->entries, out->n, sizeof *out->entries,
		    compare_entries);
	return 0;
}

const ScanEntry *
scan_find(const ScanList *list, const char *name)
{
	ScanEntry key = { .name = (char *)name };

	if (list->n == 0)
		return NULL;
	return bsearch(&key, list->entries, list->n, sizeof key,
	    compare_entries);
}

void
scan_list_free(ScanList *list)
{
	if (list == NULL)
		return;
	for (size_t i = 0; i < list->n; i++) {
		free(list->entries[i].name);
		free(list->entries[i].link_target);
	}
	free(list->entries);
	memset(list, 0, sizeof *list);
}
