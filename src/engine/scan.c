/*
 * scan — see include/engine/scan.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/scan.h"

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

/* What getdents64 returns; glibc 2.36 has no wrapper for it. */
struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Adds the entry name of directory dir to out, with its metadata. */
static int
scan_entry(int dir, const char *name, ScanList *out)
{
	struct stat st;
	ScanEntry *e;
	int r;

	if (fstatat(dir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;	/* gone since getdents */
		r = -errno;
		if (push_entry(out, name) < 0)
			return -ENOMEM;
		out->entries[out->n - 1].err = r;
		return 0;
	}
	if ((r = push_entry(out, name)) < 0)
		return r;
	e = &out->entries[out->n - 1];
	fsutil_meta_from_stat(&st, &e->meta);
	if (S_ISLNK(st.st_mode)) {
		r = read_link(dir, name, (size_t)st.st_size, &e->link_target);
		if (r == -ENOENT) {
			free(e->name);
			out->n--;
		} else if (r == -ENOMEM) {
			return r;
		} else if (r < 0) {
			e->err = r;
		}
	}
	return 0;
}

/*
 * getdents64 straight on dir, at offset 0: no fdopendir, which would cost
 * a dup or open, an fstat and an fcntl per directory (a no-op sync of a
 * big tree is mostly this loop).
 */
int
scan_dir(int dir, ScanList *out)
{
	char buf[32768] __attribute__((aligned(8)));
	int r = 0;

	memset(out, 0, sizeof *out);
	for (;;) {
		long n = syscall(SYS_getdents64, dir, buf, sizeof buf);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			break;
		}
		if (n == 0)
			break;
		for (long off = 0; off < n;) {
			struct linux_dirent64 *de =
			    (struct linux_dirent64 *)(buf + off);
			const char *name = de->d_name;

			off += de->d_reclen;
			if (name[0] == '.' && (name[1] == '\0' ||
			    (name[1] == '.' && name[2] == '\0')))
				continue;
			if ((r = scan_entry(dir, name, out)) < 0)
				goto out;
		}
	}
out:
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
