/*
 * session — see include/remote/session.h.
 *
 * The root may be missing when the session starts (a first sync): then
 * only PROBE and MKROOT work, every other request answers ENOENT. Its
 * parent is held open from the start, so MKROOT creates the root exactly
 * where the session was pointed, whatever happens to the path meanwhile.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dest/remote-proto.h"
#include "remote/beneath.h"
#include "remote/fsops.h"
#include "remote/session.h"

typedef struct Session {
	const SessionOptions *opt;
	int root_fd;		/* -1 while the root is missing */
	int parent_fd;		/* the root's parent; -1 when the root is DIR */
	const char *root_base;	/* the root's name in parent_fd */
	char reply[REMOTE_PROTO_MAX_LINE];
	int reply_len;
} Session;

static int
write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void
reply_error(Session *s, uint64_t id, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
reply_error(Session *s, uint64_t id, int err, const char *fmt, ...)
{
	char msg[3 * PATH_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	s->reply_len = remote_proto_format_error(s->reply, sizeof s->reply, id,
	    err, msg);
}

static void
reply_ok(Session *s, uint64_t id, const char *const (*kv)[2], size_t n)
{
	s->reply_len = remote_proto_format_ok(s->reply, sizeof s->reply, id,
	    kv, n);
}

static const char *
type_name(mode_t mode)
{
	if (S_ISREG(mode))
		return "file";
	if (S_ISDIR(mode))
		return "dir";
	if (S_ISLNK(mode))
		return "symlink";
	return "other";
}

/* The root as it is now: opened again if it was missing (made by
 * someone else since). */
static void
do_probe(Session *s, uint64_t id)
{
	char dev[24], ino[24], mode[16], uid[16], gid[16];
	struct stat st, parent;
	int fd;

	if (s->root_fd < 0 && s->parent_fd >= 0) {
		fd = beneath_open(s->parent_fd, s->root_base,
		    O_RDONLY | O_DIRECTORY);
		if (fd >= 0)
			s->root_fd = fd;
		else if (fd != -ENOENT) {
			reply_error(s, id, -fd, "destination root '%s': %s",
			    s->opt->root_shown, strerror(-fd));
			return;
		}
	}
	if (s->root_fd < 0) {
		const char *const kv[][2] = { { "exists", "0" } };

		reply_ok(s, id, kv, 1);
		return;
	}
	if (fstat(s->root_fd, &st) < 0) {
		reply_error(s, id, errno, "destination root '%s': %s",
		    s->opt->root_shown, strerror(errno));
		return;
	}
	snprintf(dev, sizeof dev, "%" PRIu64, (uint64_t)st.st_dev);
	snprintf(ino, sizeof ino, "%" PRIu64, (uint64_t)st.st_ino);
	snprintf(mode, sizeof mode, "%04o", (unsigned)(st.st_mode & 07777));
	snprintf(uid, sizeof uid, "%u", (unsigned)st.st_uid);
	snprintf(gid, sizeof gid, "%u", (unsigned)st.st_gid);
	{
		bool mountpoint = fstatat(s->root_fd, "..", &parent, 0) == 0 &&
		    parent.st_dev != st.st_dev;
		const char *const kv[][2] = {
			{ "exists", "1" }, { "type", type_name(st.st_mode) },
			{ "dev", dev }, { "ino", ino },
			{ "mountpoint", mountpoint ? "1" : "0" },
			{ "mode", mode }, { "uid", uid }, { "gid", gid },
		};

		reply_ok(s, id, kv, sizeof kv / sizeof kv[0]);
	}
}

static void
do_mkroot(Session *s, uint64_t id, const char *mode_text)
{
	char *end;
	unsigned long mode;

	errno = 0;
	mode = strtoul(mode_text, &end, 8);
	if (errno != 0 || *end != '\0' || *mode_text == '\0' || mode > 07777) {
		reply_error(s, id, EINVAL, "MKROOT: bad mode '%s'", mode_text);
		return;
	}
	if (s->root_fd < 0 && s->parent_fd >= 0 &&
	    mkdirat(s->parent_fd, s->root_base, (mode_t)mode) < 0 &&
	    errno != EEXIST) {
		reply_error(s, id, errno, "mkdir '%s': %s", s->opt->root_shown,
		    strerror(errno));
		return;
	}
	do_probe(s, id);
}

/* Root present, or an ENOENT reply. */
static bool
need_root(Session *s, uint64_t id)
{
	if (s->root_fd >= 0)
		return true;
	reply_error(s, id, ENOENT, "destination root '%s' does not exist",
	    s->opt->root_shown);
	return false;
}

static bool
check_path(Session *s, uint64_t id, const RemoteProtoLine *l, size_t i)
{
	if (remote_proto_valid_path(l->field[i], l->len[i]))
		return true;
	reply_error(s, id, EINVAL, "%s: '%s' is not a relative path beneath "
	    "the root", l->word, l->field[i]);
	return false;
}

static void
do_rename(Session *s, uint64_t id, const RemoteProtoLine *l)
{
	const char *from = l->field[0], *to = l->field[1], *fb, *tb;
	unsigned flags = 0;
	int fd = -1, td = -1;

	if (l->nfields == 3) {
		if (strcmp(l->field[2], "noreplace") != 0) {
			reply_error(s, id, EINVAL, "RENAME: unknown flag '%s'",
			    l->field[2]);
			return;
		}
		flags = RENAME_NOREPLACE;
	}
	if ((fd = beneath_open_parent(s->root_fd, from, &fb)) < 0) {
		reply_error(s, id, -fd, "rename '%s': %s", from,
		    strerror(-fd));
		goto out;
	}
	if ((td = beneath_open_parent(s->root_fd, to, &tb)) < 0) {
		reply_error(s, id, -td, "rename '%s' -> '%s': %s", from, to,
		    strerror(-td));
		goto out;
	}
	if (renameat2(fd, fb, td, tb, flags) < 0) {
		reply_error(s, id, errno, "rename '%s' -> '%s': %s", from, to,
		    strerror(errno));
		goto out;
	}
	reply_ok(s, id, NULL, 0);
out:
	if (fd >= 0)
		close(fd);
	if (td >= 0)
		close(td);
}

static void
do_delete(Session *s, uint64_t id, const char *path)
{
	uint64_t count = 0;
	const char *base;
	char n[24];
	int fd, r;

	if ((fd = beneath_open_parent(s->root_fd, path, &base)) < 0) {
		if (fd == -ENOENT) {
			const char *const kv[][2] = { { "count", "0" } };

			reply_ok(s, id, kv, 1);
		} else {
			reply_error(s, id, -fd, "delete '%s': %s", path,
			    strerror(-fd));
		}
		return;
	}
	r = fsops_delete_tree(fd, base, &count);
	close(fd);
	if (r < 0) {
		reply_error(s, id, -r, "delete '%s': %s (%" PRIu64 " removed)",
		    path, strerror(-r), count);
		return;
	}
	snprintf(n, sizeof n, "%" PRIu64, count);
	{
		const char *const kv[][2] = { { "count", n } };

		reply_ok(s, id, kv, 1);
	}
}

static void
do_count(Session *s, uint64_t id, const char *path, const char *limit_text)
{
	uint64_t count = 0, limit;
	const char *base;
	char *end, n[24];
	int fd, r;

	errno = 0;
	limit = strtoull(limit_text, &end, 10);
	if (errno != 0 || *end != '\0' || *limit_text < '0' ||
	    *limit_text > '9') {
		reply_error(s, id, EINVAL, "COUNT: bad limit '%s'", limit_text);
		return;
	}
	if ((fd = beneath_open_parent(s->root_fd, path, &base)) >= 0) {
		r = fsops_count_tree(fd, base, limit, &count);
		close(fd);
	} else {
		r = fd == -ENOENT ? 0 : fd;
	}
	if (r < 0) {
		reply_error(s, id, -r, "count '%s': %s", path, strerror(-r));
		return;
	}
	snprintf(n, sizeof n, "%" PRIu64, count);
	{
		const char *const kv[][2] = { { "count", n } };

		reply_ok(s, id, kv, 1);
	}
}

static void
do_stat(Session *s, uint64_t id, const char *path)
{
	char mode[16], size[24], nlink[24], uid[16], gid[16], dev[24], ino[24];
	char mtime[48];
	const char *base;
	struct stat st;
	int fd, r = 0;

	if ((fd = beneath_open_parent(s->root_fd, path, &base)) < 0)
		r = fd;
	else if (fstatat(fd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
		r = -errno;
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		reply_error(s, id, -r, "stat '%s': %s", path, strerror(-r));
		return;
	}
	snprintf(mode, sizeof mode, "%04o", (unsigned)(st.st_mode & 07777));
	snprintf(size, sizeof size, "%" PRId64, (int64_t)st.st_size);
	snprintf(nlink, sizeof nlink, "%" PRIu64, (uint64_t)st.st_nlink);
	snprintf(uid, sizeof uid, "%u", (unsigned)st.st_uid);
	snprintf(gid, sizeof gid, "%u", (unsigned)st.st_gid);
	snprintf(dev, sizeof dev, "%" PRIu64, (uint64_t)st.st_dev);
	snprintf(ino, sizeof ino, "%" PRIu64, (uint64_t)st.st_ino);
	snprintf(mtime, sizeof mtime, "%" PRId64 ".%09ld",
	    (int64_t)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
	{
		const char *const kv[][2] = {
			{ "type", type_name(st.st_mode) }, { "mode", mode },
			{ "size", size }, { "nlink", nlink }, { "uid", uid },
			{ "gid", gid }, { "dev", dev }, { "ino", ino },
			{ "mtime", mtime },
		};

		reply_ok(s, id, kv, sizeof kv / sizeof kv[0]);
	}
}

static void
do_clean(Session *s, uint64_t id, const RemoteProtoLine *l)
{
	const char *tag = l->field[0];
	bool tree = false, partial = false;
	uint64_t removed = 0;
	char n[24];
	int r;

	if (strcmp(tag, "-") == 0) {
		tag = NULL;
	} else if (!remote_proto_valid_tag(tag)) {
		reply_error(s, id, EINVAL, "CLEAN: bad tag '%s'", tag);
		return;
	}
	for (size_t i = 1; i < l->nfields; i++) {
		if (strcmp(l->field[i], "tree") == 0) {
			tree = true;
		} else if (strcmp(l->field[i], "partial") == 0) {
			partial = true;
		} else {
			reply_error(s, id, EINVAL, "CLEAN: unknown flag '%s'",
			    l->field[i]);
			return;
		}
	}
	r = fsops_clean(s->root_fd, tag, tree, partial, &removed);
	if (r < 0) {
		reply_error(s, id, -r, "clean: %s (%" PRIu64 " removed)",
		    strerror(-r), removed);
		return;
	}
	snprintf(n, sizeof n, "%" PRIu64, removed);
	{
		const char *const kv[][2] = { { "removed", n } };

		reply_ok(s, id, kv, 1);
	}
}

/* Verbs, their argument counts, and whether they need the root. */
static const struct verb {
	const char *name;
	size_t min, max;
	size_t paths;		/* how many leading arguments are paths */
} verbs[] = {
	{ "PROBE", 0, 0, 0 }, { "MKROOT", 1, 1, 0 },
	{ "RENAME", 2, 3, 2 }, { "DELETE", 1, 1, 1 },
	{ "COUNT", 2, 2, 1 }, { "STAT", 1, 1, 1 },
	{ "CLEAN", 1, 3, 0 },
};

static void
dispatch(Session *s, const RemoteProtoLine *l)
{
	const struct verb *v = NULL;
	uint64_t id = l->id;

	for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
		if (strcmp(verbs[i].name, l->word) == 0)
			v = &verbs[i];
	if (id == 0) {
		reply_error(s, 0, EPROTO, "request id 0");
		return;
	}
	if (v == NULL) {
		reply_error(s, id, ENOSYS, "unknown request '%s'", l->word);
		return;
	}
	if (l->nfields < v->min || l->nfields > v->max) {
		reply_error(s, id, EINVAL, "%s takes %zu to %zu arguments",
		    v->name, v->min, v->max);
		return;
	}
	for (size_t i = 0; i < v->paths; i++)
		if (!check_path(s, id, l, i))
			return;
	if (strcmp(v->name, "PROBE") == 0) {
		do_probe(s, id);
		return;
	}
	if (strcmp(v->name, "MKROOT") == 0) {
		do_mkroot(s, id, l->field[0]);
		return;
	}
	if (!need_root(s, id))
		return;
	if (strcmp(v->name, "RENAME") == 0)
		do_rename(s, id, l);
	else if (strcmp(v->name, "DELETE") == 0)
		do_delete(s, id, l->field[0]);
	else if (strcmp(v->name, "COUNT") == 0)
		do_count(s, id, l->field[0], l->field[1]);
	else if (strcmp(v->name, "STAT") == 0)
		do_stat(s, id, l->field[0]);
	else
		do_clean(s, id, l);
}

static int
open_root(Session *s, char *why, size_t size)
{
	const SessionOptions *opt = s->opt;
	int fd, r;

	if (opt->root[0] == '\0') {
		fd = beneath_open(opt->dir_fd, "", O_RDONLY | O_DIRECTORY);
	} else {
		s->parent_fd = beneath_open_parent(opt->dir_fd, opt->root,
		    &s->root_base);
		if (s->parent_fd < 0) {
			snprintf(why, size, "destination '%s': %s",
			    opt->root_shown, strerror(-s->parent_fd));
			return s->parent_fd;
		}
		fd = beneath_open(s->parent_fd, s->root_base,
		    O_RDONLY | O_DIRECTORY);
		if (fd == -ENOENT && !opt->expect.set)
			return 0;
	}
	if (fd < 0) {
		snprintf(why, size, "destination '%s': %s", opt->root_shown,
		    strerror(-fd));
		return fd;
	}
	s->root_fd = fd;
	if ((r = rootid_check(fd, &opt->expect)) < 0) {
		snprintf(why, size, "destination '%s' is not the pinned root "
		    "%" PRIu64 ":%" PRIu64 "%s%s", opt->root_shown,
		    opt->expect.dev, opt->expect.ino, r == -ESTALE ? "" : ": ",
		    r == -ESTALE ? "" : strerror(-r));
		return r;
	}
	return 0;
}

int
session_run(const SessionOptions *opt, char *why, size_t why_size)
{
	static char in[REMOTE_PROTO_MAX_LINE];
	Session *s;
	size_t have = 0;
	char greeting[128];
	int status = 0, n;

	if ((s = calloc(1, sizeof *s)) == NULL) {
		snprintf(why, why_size, "out of memory");
		return REMOTE_EXIT_UNAVAILABLE;
	}
	s->opt = opt;
	s->root_fd = s->parent_fd = -1;
	if (open_root(s, why, why_size) < 0) {
		status = REMOTE_EXIT_UNAVAILABLE;
		goto out;
	}
	n = snprintf(greeting, sizeof greeting, "treesync-remote %d sandbox=%s "
	    "euid=%u\n", REMOTE_PROTO_VERSION, opt->sandbox,
	    (unsigned)geteuid());
	if (write_all(opt->out, greeting, (size_t)n) < 0) {
		snprintf(why, why_size, "writing: %s", strerror(errno));
		status = REMOTE_EXIT_PROTOCOL;
		goto out;
	}
	for (;;) {
		ssize_t got;
		long len;

		while ((len = remote_proto_line_length(in, have)) > 0) {
			RemoteProtoLine line;

			if (remote_proto_parse(in, (size_t)len, &line) < 0)
				reply_error(s, 0, EPROTO, "unreadable request");
			else
				dispatch(s, &line);
			if (s->reply_len < 0)
				reply_error(s, line.id, E2BIG, "reply too long");
			if (write_all(opt->out, s->reply,
			    (size_t)s->reply_len) < 0) {
				snprintf(why, why_size, "writing: %s",
				    strerror(errno));
				status = REMOTE_EXIT_PROTOCOL;
				goto out;
			}
			memmove(in, in + len, have - (size_t)len);
			have -= (size_t)len;
		}
		if (len < 0) {
			reply_error(s, 0, EPROTO, "request longer than %d bytes",
			    REMOTE_PROTO_MAX_LINE);
			(void)write_all(opt->out, s->reply,
			    (size_t)s->reply_len);
			snprintf(why, why_size, "a request longer than %d bytes",
			    REMOTE_PROTO_MAX_LINE);
			status = REMOTE_EXIT_PROTOCOL;
			goto out;
		}
		got = read(opt->in, in + have, sizeof in - have);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			snprintf(why, why_size, "reading: %s", strerror(errno));
			status = REMOTE_EXIT_PROTOCOL;
			goto out;
		}
		if (got == 0)
			break;	/* EOF: a trailing partial line is dropped */
		have += (size_t)got;
	}
out:
	if (s->root_fd >= 0)
		close(s->root_fd);
	if (s->parent_fd >= 0)
		close(s->parent_fd);
	free(s);
	return status;
}
