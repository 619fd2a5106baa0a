/*
 * fanotify — the watcher's fanotify mode (watcher thread): one group for
 * the process, a mark on the whole file system of each fanotify root
 * (and of any other file system mounted beneath one), the file handle of
 * every directory the walks meet, and the decoding of fanotify's events
 * into the pass in inotify's form, so that events.c treats both alike.
 *
 * Ours, not libinotifytools': its fanotify mode (inotifytools_init(1, 1,
 * 0)) makes the group in the same process-global state as its inotify
 * instance, so a process has one or the other, while `auto` needs both at
 * once (a root whose file system refuses the mark falls back to inotify
 * beside the others). Its next_events gives an event the wd of a record
 * it makes for every directory handle it has not seen, after an
 * open_by_handle_at and a readlink of /proc/self/fd to learn the path:
 * on a whole-file-system mark that is a syscall pair and a record that is
 * never freed per directory anywhere on the disk, where we want events
 * outside the sources dropped with one hash lookup; the converted event
 * loses the directory's handle (our key) and every info record after the
 * first (FAN_RENAME's new name), and its path is the one seen first,
 * stale after a rename. So we call fanotify_init, fanotify_mark and read
 * ourselves, and keep the paths in our node tree as for inotify.
 *
 * Kernel features, found at start: FAN_REPORT_TARGET_FID (Linux 5.17:
 * a rename names the moved directory's own handle) else plain
 * FAN_REPORT_DFID_NAME (5.9); FAN_RENAME (5.17: one event with both
 * names) else FAN_MOVED_FROM / FAN_MOVED_TO paired when one directly
 * follows the other (the kernel queues a rename's two halves together;
 * an unpaired half is a move out or in, which is still right, only
 * slower). TREESYNC_TEST_FANOTIFY_OLD=1 in the environment makes the
 * watcher behave as on a 5.9 kernel, for the tests.
 *
 * The queue is unlimited (FAN_UNLIMITED_QUEUE). The mark sees every
 * change on the file system, our own copies into a destination on it
 * included: with fanotify's default 16,384 events, a start-up pass of
 * 50,000 directories overflowed it nine times (a full compare and a
 * repair walk each, during which more piled up: 26 s instead of 7.5 s).
 * The thread drains the queue as fast as it decodes, dropping what is
 * outside the roots, so the kernel holds only what arrives while it is
 * busy (a walk) or the reactor is MAX_QUEUED events behind.
 * TREESYNC_TEST_FANOTIFY_BOUNDED=1 asks for the default queue
 * (fs.fanotify.max_queued_events), so the tests can reach
 * FAN_Q_OVERFLOW.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "util/alloc.h"
#include "watch-int.h"

#ifndef FAN_RENAME
#define FAN_RENAME 0x10000000
#endif
#ifndef FAN_REPORT_TARGET_FID
#define FAN_REPORT_TARGET_FID 0x00001000
#endif
#ifndef FAN_EVENT_INFO_TYPE_OLD_DFID_NAME
#define FAN_EVENT_INFO_TYPE_OLD_DFID_NAME 10
#define FAN_EVENT_INFO_TYPE_NEW_DFID_NAME 12
#endif
#ifndef AT_HANDLE_FID
#define AT_HANDLE_FID 0x200
#endif

#define FAN_BUF (64 * 1024)
#define FAN_READS_PER_PASS 64	/* then the pass is processed: 4 MiB */

/* Events kept, in both forms: fanotify's bits have inotify's values. */
#define FAN_EVENTS (FAN_CREATE | FAN_DELETE | FAN_MODIFY | FAN_CLOSE_WRITE | \
	FAN_ATTRIB | FAN_DELETE_SELF | FAN_MOVE_SELF)
#define IN_KEPT (IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | \
	IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF | IN_MOVED_FROM | \
	IN_MOVED_TO | IN_ISDIR)

_Static_assert(FAN_CREATE == IN_CREATE && FAN_DELETE == IN_DELETE &&
    FAN_MODIFY == IN_MODIFY && FAN_CLOSE_WRITE == IN_CLOSE_WRITE &&
    FAN_ATTRIB == IN_ATTRIB && FAN_DELETE_SELF == IN_DELETE_SELF &&
    FAN_MOVE_SELF == IN_MOVE_SELF && FAN_MOVED_FROM == IN_MOVED_FROM &&
    FAN_MOVED_TO == IN_MOVED_TO && FAN_ONDIR == IN_ISDIR &&
    FAN_Q_OVERFLOW == IN_Q_OVERFLOW, "fanotify and inotify bits");

/* One handle record of an event. */
struct fid {
	const int32_t *fsid;	/* two words */
	int32_t htype;
	uint32_t hlen;
	const unsigned char *handle;
	const char *name;	/* "" when the record has none */
};

static int
fan_init(unsigned flags)
{
	int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK |
	    flags, O_RDONLY | O_CLOEXEC);

	return fd >= 0 ? fd : -errno;
}

int
watch_fan_start(Watcher *w)
{
	bool old = getenv("TREESYNC_TEST_FANOTIFY_OLD") != NULL;
	unsigned queue = getenv("TREESYNC_TEST_FANOTIFY_BOUNDED") != NULL ?
	    0 : FAN_UNLIMITED_QUEUE;
	int fd = -EINVAL;

	if (w->fan_tried)
		return w->fan_error;
	w->fan_tried = true;
	if (!old)
		fd = fan_init(queue | FAN_REPORT_DFID_NAME | FAN_REPORT_FID |
		    FAN_REPORT_TARGET_FID);
	w->fan_target_fid = fd >= 0;
	if (fd == -EINVAL)
		fd = fan_init(queue | FAN_REPORT_DFID_NAME);
	/* EINVAL: a kernel before 5.9, without directory handles. */
	if (fd < 0) {
		w->fan_error = fd == -EINVAL ? -ENOSYS : fd;
		return w->fan_error;
	}
	w->fan_fd = fd;
	w->fan_rename = !old;	/* tried at the first mark */
	w->fan_mask = FAN_EVENTS | FAN_ONDIR | (old ? FAN_MOVED_FROM |
	    FAN_MOVED_TO : FAN_RENAME);
	w->fan_buf = xmalloc(FAN_BUF);
	return 0;
}

void
watch_fan_stop(Watcher *w)
{
	if (w->fan_fd >= 0)
		close(w->fan_fd);
	w->fan_fd = -1;
	free(w->fan_buf);
	w->fan_buf = NULL;
}

/* The file system of fd marked (once): FAN_MARK_FILESYSTEM. */
static int
mark_fs(Watcher *w, int fd)
{
	int r = fanotify_mark(w->fan_fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM,
	    w->fan_mask, fd, NULL);

	if (r < 0 && errno == EINVAL && w->fan_rename) {
		/* A kernel before 5.17: no FAN_RENAME. */
		w->fan_rename = false;
		w->fan_mask = (w->fan_mask & ~(uint64_t)FAN_RENAME) |
		    FAN_MOVED_FROM | FAN_MOVED_TO;
		r = fanotify_mark(w->fan_fd, FAN_MARK_ADD |
		    FAN_MARK_FILESYSTEM, w->fan_mask, fd, NULL);
	}
	return r < 0 ? -errno : 0;
}

int
watch_fan_mark(Watcher *w, int fd, const struct stat *st, uint8_t *fs)
{
	struct statfs sfs;
	int r;

	for (size_t i = 0; i < w->n_fs; i++) {
		if (w->fs[i].dev == st->st_dev) {
			*fs = (uint8_t)i;
			return 0;
		}
	}
	if (w->n_fs == FAN_FS_MAX)
		return -EMFILE;
	if (fstatfs(fd, &sfs) < 0)
		return -errno;
	if ((r = mark_fs(w, fd)) < 0)
		return r;
	w->fs[w->n_fs].dev = st->st_dev;
	memcpy(w->fs[w->n_fs].fsid, &sfs.f_fsid, sizeof w->fs[w->n_fs].fsid);
	*fs = (uint8_t)w->n_fs++;
	return 0;
}

int
watch_fan_handle(int fd, struct dir_id *id)
{
	struct {
		struct file_handle fh;
		unsigned char bytes[HANDLE_MAX];
	} h;
	int mount_id, r;

	/* The handle fanotify reports: for identification (AT_HANDLE_FID,
	 * Linux 6.5); before it, the same for every file system that
	 * fanotify accepts. */
	h.fh.handle_bytes = HANDLE_MAX;
	r = name_to_handle_at(fd, "", &h.fh, &mount_id,
	    AT_EMPTY_PATH | AT_HANDLE_FID);
	if (r < 0 && errno == EINVAL) {
		h.fh.handle_bytes = HANDLE_MAX;
		r = name_to_handle_at(fd, "", &h.fh, &mount_id,
		    AT_EMPTY_PATH);
	}
	if (r < 0)
		return errno == EOVERFLOW ? -EOVERFLOW : -errno;
	id->htype = h.fh.handle_type;
	id->hlen = (uint8_t)h.fh.handle_bytes;
	memcpy(id->handle, h.fh.f_handle, h.fh.handle_bytes);
	return 0;
}

/* Our index of the file system fanotify calls fsid, or -1. */
static int
fs_index(const Watcher *w, const int32_t *fsid)
{
	for (size_t i = 0; i < w->n_fs; i++)
		if (memcmp(w->fs[i].fsid, fsid, sizeof w->fs[i].fsid) == 0)
			return (int)i;
	return -1;
}

/* The node of a handle record, or NULL: outside every root. */
static struct node *
fid_node(Watcher *w, const struct fid *f)
{
	int fs = fs_index(w, f->fsid);

	if (fs < 0 || f->hlen > HANDLE_MAX)
		return NULL;
	return watch_node_by_handle(w, (uint8_t)fs, f->htype,
	    (uint8_t)f->hlen, f->handle);
}

/* Packs a record's handle into raw_names: fs, hlen, htype, bytes. */
static size_t
pack(Watcher *w, const struct fid *f)
{
	struct sbuf *b = &w->raw_names;
	size_t off = b->len;
	uint8_t fs = (uint8_t)fs_index(w, f->fsid), hlen = (uint8_t)f->hlen;

	sbuf_reserve(b, 6 + hlen);
	b->s[b->len++] = (char)fs;
	b->s[b->len++] = (char)hlen;
	memcpy(b->s + b->len, &f->htype, 4);
	memcpy(b->s + b->len + 4, f->handle, hlen);
	b->len += 4 + hlen;
	return off;
}

void
watch_fan_unpack(const Watcher *w, size_t off, struct dir_id *id)
{
	const char *p = w->raw_names.s + off;

	id->fs = (uint8_t)p[0];
	id->hlen = (uint8_t)p[1];
	memcpy(&id->htype, p + 2, 4);
	memcpy(id->handle, p + 6, id->hlen);
}

struct node *
watch_fan_lookup(Watcher *w, size_t off)
{
	struct dir_id id;

	if (off == SIZE_MAX)
		return NULL;
	watch_fan_unpack(w, off, &id);
	return watch_node_by_handle(w, id.fs, id.htype, id.hlen, id.handle);
}

static void
push(Watcher *w, uint32_t mask, uint32_t cookie, const struct fid *dir,
    const char *name, const struct fid *child)
{
	size_t len = strlen(name);
	struct raw *r;

	if (w->n_raw == w->cap_raw) {
		w->cap_raw = w->cap_raw ? 2 * w->cap_raw : 256;
		w->raw = xrealloc(w->raw, w->cap_raw * sizeof *w->raw);
	}
	r = &w->raw[w->n_raw++];
	*r = (struct raw){ .wd = -1, .mask = mask, .cookie = cookie,
	    .fan = true, .dir = SIZE_MAX, .child = SIZE_MAX };
	if (dir != NULL)
		r->dir = pack(w, dir);
	if (child != NULL && child->hlen <= HANDLE_MAX &&
	    fs_index(w, child->fsid) >= 0)
		r->child = pack(w, child);
	sbuf_reserve(&w->raw_names, len);
	r->name = w->raw_names.len;
	memcpy(w->raw_names.s + r->name, name, len + 1);
	w->raw_names.len += len + 1;
}

/* An event's handle records: the directory one(s) and the object's. */
struct records {
	struct fid dir, from, to, child;
	bool has_dir, has_from, has_to, has_child;
};

/* ev: the event in the read buffer, md: its header (copied: see below). */
static void
parse_records(const struct fanotify_event_metadata *md, const char *ev,
    struct records *rec)
{
	const char *p = ev + md->metadata_len;
	const char *end = ev + md->event_len;

	memset(rec, 0, sizeof *rec);
	while (p + sizeof(struct fanotify_event_info_header) <= end) {
		const struct fanotify_event_info_fid *info = (const void *)p;
		const struct file_handle *fh = (const void *)info->handle;
		struct fid f;

		if (info->hdr.len == 0 || p + info->hdr.len > end)
			break;
		f.fsid = (const int32_t *)(const void *)&info->fsid;
		f.htype = fh->handle_type;
		f.hlen = fh->handle_bytes;
		f.handle = fh->f_handle;
		f.name = (const char *)fh->f_handle + fh->handle_bytes;
		switch (info->hdr.info_type) {
		case FAN_EVENT_INFO_TYPE_DFID_NAME:
			rec->dir = f, rec->has_dir = true;
			break;
		case FAN_EVENT_INFO_TYPE_DFID:
			f.name = "";
			rec->dir = f, rec->has_dir = true;
			break;
		case FAN_EVENT_INFO_TYPE_OLD_DFID_NAME:
			rec->from = f, rec->has_from = true;
			break;
		case FAN_EVENT_INFO_TYPE_NEW_DFID_NAME:
			rec->to = f, rec->has_to = true;
			break;
		case FAN_EVENT_INFO_TYPE_FID:
			rec->child = f, rec->has_child = true;
			break;
		}
		p += info->hdr.len;
	}
}

static uint32_t
next_cookie(Watcher *w)
{
	/* Never 0 (no pair); apart from inotify's by the raw's kind. */
	if (++w->fan_cookie == 0)
		w->fan_cookie = 1;
	return w->fan_cookie;
}

/* FAN_RENAME: the IN_MOVED_FROM / IN_MOVED_TO pair, halves ours only. */
static void
decode_rename(Watcher *w, uint64_t mask, const struct records *rec)
{
	uint32_t dir = (mask & FAN_ONDIR) ? IN_ISDIR : 0, cookie;
	const struct fid *child = rec->has_child ? &rec->child : NULL;
	bool from = rec->has_from && fid_node(w, &rec->from) != NULL;
	bool to = rec->has_to && fid_node(w, &rec->to) != NULL;

	if (!from && !to)
		return;
	cookie = next_cookie(w);
	if (from)
		push(w, IN_MOVED_FROM | dir, cookie, &rec->from,
		    rec->from.name, child);
	if (to)
		push(w, IN_MOVED_TO | dir, cookie, &rec->to, rec->to.name,
		    child);
}

/* One event of the buffer into the pass; the prefilter drops outsiders. */
static void
decode(Watcher *w, const struct fanotify_event_metadata *md, const char *ev,
    uint32_t *last_from)
{
	struct records rec;
	uint32_t mask = (uint32_t)(md->mask & IN_KEPT), cookie = 0;
	uint32_t prev_from = *last_from;

	*last_from = 0;
	if (md->mask & FAN_Q_OVERFLOW) {
		push(w, IN_Q_OVERFLOW, 0, NULL, "", NULL);
		return;
	}
	parse_records(md, ev, &rec);
	if (md->mask & FAN_RENAME) {
		decode_rename(w, md->mask, &rec);
		return;
	}
	/* A non-directory's own event (FID only), or outside every root. */
	if (!rec.has_dir || fid_node(w, &rec.dir) == NULL)
		return;
	if (rec.dir.name[0] == '\0' || strcmp(rec.dir.name, ".") == 0) {
		/* On the directory itself (fanotify says "."). */
		mask &= IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF;
		if (mask == 0)
			return;
		push(w, mask | IN_ISDIR, 0, &rec.dir, "", NULL);
		if (mask & IN_DELETE_SELF)
			push(w, IN_IGNORED, 0, &rec.dir, "", NULL);
		return;
	}
	/* Without FAN_RENAME: a move's halves, one right after the other. */
	if (mask & IN_MOVED_TO)
		cookie = prev_from != 0 ? prev_from : next_cookie(w);
	else if (mask & IN_MOVED_FROM)
		cookie = next_cookie(w);
	push(w, mask, cookie, &rec.dir, rec.dir.name,
	    rec.has_child ? &rec.child : NULL);
	*last_from = (mask & IN_MOVED_FROM) && !(mask & IN_MOVED_TO) ?
	    cookie : 0;
}

void
watch_fan_read(Watcher *w)
{
	uint32_t last_from = 0;

	w->fan_pending = false;
	if (w->fan_fd < 0)
		return;
	for (int i = 0; i < FAN_READS_PER_PASS; i++) {
		struct fanotify_event_metadata md;
		ssize_t n = read(w->fan_fd, w->fan_buf, FAN_BUF);
		size_t off = 0;

		/* EAGAIN: all read. EINTR: the next pass. */
		if (n <= 0)
			return;
		/* Events with handle records are 4-aligned, the header wants
		 * 8 (its mask is a u64): each header is copied out. */
		while (off + sizeof md <= (size_t)n) {
			memcpy(&md, w->fan_buf + off, sizeof md);
			if (md.event_len < sizeof md ||
			    off + md.event_len > (size_t)n)
				break;
			if (md.vers == FANOTIFY_METADATA_VERSION)
				decode(w, &md, w->fan_buf + off, &last_from);
			off += md.event_len;
		}
		if (w->n_raw >= READ_CAP)
			break;
	}
	w->fan_pending = true;
}
