/*
 * xattr — see include/engine/xattr.h.
 *
 * A set is built in two steps: the names and values go into a growing
 * scratch buffer (values read through one 64 KiB buffer, the kernel's
 * largest value), then one allocation receives header, entries and data,
 * and the entries are sorted. Nothing is allocated for a file without
 * attributes in the namespaces asked for.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "engine/xattr.h"

/* The kernel's limits (linux/limits.h): one value, one listing. */
#define VALUE_MAX 65536
#define LIST_MAX 65536
/* A listing this small is read on the stack; larger ones on the heap. */
#define LIST_STACK 1024

/* The binary ACL xattr (linux/posix_acl_xattr.h). */
#define ACL_XATTR_VERSION 2
#define ACL_TAG_USER_OBJ 0x01
#define ACL_TAG_USER 0x02
#define ACL_TAG_GROUP_OBJ 0x04
#define ACL_TAG_GROUP 0x08
#define ACL_TAG_MASK 0x10
#define ACL_TAG_OTHER 0x20

/* The entry an fd names: f*xattr on it, or the path calls on
 * /proc/self/fd/N for an O_PATH fd (which f*xattr refuse with EBADF). */
struct target {
	int fd;
	bool opath;
	char proc[32];
};

static int
target_init(struct target *t, int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0)
		return -errno;
	t->fd = fd;
	t->opath = (fl & O_PATH) != 0;
	snprintf(t->proc, sizeof t->proc, "/proc/self/fd/%d", fd);
	return 0;
}

static ssize_t
t_list(const struct target *t, char *buf, size_t size)
{
	return t->opath ? listxattr(t->proc, buf, size) :
	    flistxattr(t->fd, buf, size);
}

static ssize_t
t_get(const struct target *t, const char *name, void *buf, size_t size)
{
	return t->opath ? getxattr(t->proc, name, buf, size) :
	    fgetxattr(t->fd, name, buf, size);
}

static int
t_set(const struct target *t, const char *name, const void *v, size_t size)
{
	int r = t->opath ? setxattr(t->proc, name, v, size, 0) :
	    fsetxattr(t->fd, name, v, size, 0);

	return r < 0 ? -errno : 0;
}

static int
t_remove(const struct target *t, const char *name)
{
	int r = t->opath ? removexattr(t->proc, name) :
	    fremovexattr(t->fd, name);

	if (r < 0 && errno != ENODATA)
		return -errno;
	return 0;
}

static bool
unsupported(int err)
{
	return err == -EOPNOTSUPP || err == -ENOTSUP;
}

unsigned
xattr_namespace(const char *name)
{
	if (strncmp(name, "user.", 5) == 0)
		return XATTR_NS_USER;
	if (strncmp(name, "trusted.", 8) == 0)
		return XATTR_NS_TRUSTED;
	if (strcmp(name, XATTR_CAPABILITY) == 0)
		return XATTR_NS_CAPABILITY;
	if (strncmp(name, "security.", 9) == 0)
		return XATTR_NS_SECURITY;
	if (strcmp(name, XATTR_ACL_ACCESS) == 0)
		return XATTR_NS_ACL_ACCESS;
	if (strcmp(name, XATTR_ACL_DEFAULT) == 0)
		return XATTR_NS_ACL_DEFAULT;
	return 0;
}

unsigned
xattr_namespaces_permitted(void)
{
	struct __user_cap_header_struct hdr = {
		.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	unsigned ns = XATTR_NS_USER | XATTR_NS_ACL;

	memset(data, 0, sizeof data);
	if (syscall(SYS_capget, &hdr, data) != 0)
		return ns;
	if (data[CAP_TO_INDEX(CAP_SYS_ADMIN)].effective &
	    CAP_TO_MASK(CAP_SYS_ADMIN))
		ns |= XATTR_NS_TRUSTED | XATTR_NS_SECURITY;
	if (data[CAP_TO_INDEX(CAP_SETFCAP)].effective &
	    CAP_TO_MASK(CAP_SETFCAP))
		ns |= XATTR_NS_CAPABILITY;
	return ns;
}

/* ---- reading ---- */

struct pending_entry {
	size_t name_off;
	size_t value_off;
	size_t size;
};

struct builder {
	char *data;
	size_t len;
	size_t cap;
	struct pending_entry *ent;
	size_t count;
	size_t ent_cap;
};

static int
builder_append(struct builder *b, const void *p, size_t n, size_t *off)
{
	if (n > XATTR_SET_MAX_BYTES - b->len)
		return -E2BIG;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 1024;
		char *d;

		while (cap < b->len + n)
			cap *= 2;
		if (cap > XATTR_SET_MAX_BYTES)
			cap = XATTR_SET_MAX_BYTES;
		d = realloc(b->data, cap);
		if (d == NULL)
			return -ENOMEM;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	*off = b->len;
	b->len += n;
	return 0;
}

static int
builder_add(struct builder *b, const char *name, const void *value,
    size_t size)
{
	struct pending_entry e;
	int r;

	if (b->count == b->ent_cap) {
		size_t cap = b->ent_cap ? b->ent_cap * 2 : 8;
		struct pending_entry *n = realloc(b->ent, cap * sizeof *n);

		if (n == NULL)
			return -ENOMEM;
		b->ent = n;
		b->ent_cap = cap;
	}
	if ((r = builder_append(b, name, strlen(name) + 1, &e.name_off)) < 0)
		return r;
	if ((r = builder_append(b, value, size, &e.value_off)) < 0)
		return r;
	e.size = size;
	b->ent[b->count++] = e;
	return 0;
}

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const XattrEntry *)a)->name,
	    ((const XattrEntry *)b)->name);
}

static int
builder_finish(struct builder *b, XattrSet **ret)
{
	size_t head = sizeof(XattrSet) + b->count * sizeof(XattrEntry);
	XattrSet *s;
	char *data;

	s = malloc(head + b->len);
	if (s == NULL)
		return -ENOMEM;
	data = (char *)s + head;
	memcpy(data, b->data, b->len);
	s->count = b->count;
	s->bytes = b->len;
	for (size_t i = 0; i < b->count; i++) {
		s->entry[i].name = data + b->ent[i].name_off;
		s->entry[i].value = data + b->ent[i].value_off;
		s->entry[i].size = b->ent[i].size;
	}
	qsort(s->entry, s->count, sizeof s->entry[0], entry_cmp);
	*ret = s;
	return 0;
}

/* The NUL-separated name list of t into *list (buf, or a heap buffer the
 * caller frees when it is not buf); its length into *len. */
static int
read_names(const struct target *t, char *buf, size_t bufsize, char **list,
    ssize_t *len)
{
	ssize_t n = t_list(t, buf, bufsize);
	char *heap;

	*list = buf;
	if (n >= 0) {
		*len = n;
		return 0;
	}
	if (errno != ERANGE)
		return unsupported(-errno) ? (*len = 0, 0) : -errno;
	heap = malloc(LIST_MAX);
	if (heap == NULL)
		return -ENOMEM;
	n = t_list(t, heap, LIST_MAX);
	if (n < 0) {
		int r = errno == ERANGE ? -E2BIG : -errno;

		free(heap);
		return r;
	}
	*list = heap;
	*len = n;
	return 0;
}

static int
read_target(const struct target *t, unsigned namespaces, XattrSet **ret)
{
	char stackbuf[LIST_STACK];
	struct builder b = { 0 };
	char *list = NULL;
	char *value = NULL;
	ssize_t len = 0;
	int r;

	*ret = NULL;
	if ((r = read_names(t, stackbuf, sizeof stackbuf, &list, &len)) < 0)
		goto out;
	for (ssize_t off = 0; off < len; off += (ssize_t)strlen(list + off) + 1) {
		const char *name = list + off;
		ssize_t n;

		if ((xattr_namespace(name) & namespaces) == 0)
			continue;
		if (value == NULL && (value = malloc(VALUE_MAX)) == NULL) {
			r = -ENOMEM;
			goto out;
		}
		n = t_get(t, name, value, VALUE_MAX);
		if (n < 0) {
			if (errno == ENODATA)	/* removed since the listing */
				continue;
			r = errno == ERANGE ? -E2BIG : -errno;
			goto out;
		}
		if ((r = builder_add(&b, name, value, (size_t)n)) < 0)
			goto out;
	}
	if (b.count > 0)
		r = builder_finish(&b, ret);
out:
	if (list != stackbuf)
		free(list);
	free(value);
	free(b.data);
	free(b.ent);
	return r;
}

int
xattr_read(int fd, unsigned namespaces, XattrSet **ret)
{
	struct target t;
	XattrSet *s = NULL;
	int r;

	if ((r = target_init(&t, fd)) < 0)
		return r;
	if ((r = read_target(&t, namespaces, &s)) < 0)
		return r;
	*ret = s;
	return 0;
}

void
xattr_set_free(XattrSet *set)
{
	free(set);
}

size_t
xattr_set_count(const XattrSet *set)
{
	return set == NULL ? 0 : set->count;
}

const XattrEntry *
xattr_set_find(const XattrSet *set, const char *name)
{
	size_t lo = 0, hi = xattr_set_count(set);

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(name, set->entry[mid].name);

		if (c == 0)
			return &set->entry[mid];
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

static bool
same_value(const XattrEntry *a, const XattrEntry *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return a->size == b->size &&
	    (a->size == 0 || memcmp(a->value, b->value, a->size) == 0);
}

unsigned
xattr_compare(const XattrSet *a, const XattrSet *b)
{
	size_t na = xattr_set_count(a), nb = xattr_set_count(b);
	size_t i = 0, j = 0;
	unsigned diff = 0;

	while (i < na || j < nb) {
		int c = i == na ? 1 : j == nb ? -1 :
		    strcmp(a->entry[i].name, b->entry[j].name);

		if (c < 0) {
			diff |= xattr_namespace(a->entry[i++].name);
		} else if (c > 0) {
			diff |= xattr_namespace(b->entry[j++].name);
		} else {
			if (!same_value(&a->entry[i], &b->entry[j]))
				diff |= xattr_namespace(a->entry[i].name);
			i++;
			j++;
		}
	}
	return diff;
}

/* ---- ACLs ---- */

static unsigned
le16(const unsigned char *p)
{
	return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t
le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24;
}

int
xattr_acl_effective_mode(mode_t mode, const void *acl, size_t size,
    mode_t *ret)
{
	const unsigned char *p = acl;
	unsigned user_obj = 0, group_obj = 0, other = 0, mask = 7;
	unsigned named_users = 7, named_all = 7;
	int n_user_obj = 0, n_group_obj = 0, n_other = 0, n_mask = 0;
	int n_named = 0;

	if (acl == NULL || size < 4 || (size - 4) % 8 != 0 ||
	    le32(p) != ACL_XATTR_VERSION)
		return -EINVAL;
	/* First pass: the mask, which the named entries are read through. */
	for (size_t off = 4; off < size; off += 8) {
		unsigned tag = le16(p + off), perm = le16(p + off + 2);

		if (perm > 7)
			return -EINVAL;
		switch (tag) {
		case ACL_TAG_USER_OBJ:
			user_obj = perm;
			n_user_obj++;
			break;
		case ACL_TAG_GROUP_OBJ:
			group_obj = perm;
			n_group_obj++;
			break;
		case ACL_TAG_OTHER:
			other = perm;
			n_other++;
			break;
		case ACL_TAG_MASK:
			mask = perm;
			n_mask++;
			break;
		case ACL_TAG_USER:
		case ACL_TAG_GROUP:
			n_named++;
			break;
		default:
			return -EINVAL;
		}
	}
	if (n_user_obj != 1 || n_group_obj != 1 || n_other != 1 ||
	    n_mask > 1 || (n_named > 0 && n_mask == 0))
		return -EINVAL;
	for (size_t off = 4; off < size; off += 8) {
		unsigned tag = le16(p + off), perm = le16(p + off + 2) & mask;

		if (tag == ACL_TAG_USER)
			named_users &= perm;
		if (tag == ACL_TAG_USER || tag == ACL_TAG_GROUP)
			named_all &= perm;
	}
	*ret = (mode & (S_ISUID | S_ISGID | S_ISVTX)) | (mode_t)user_obj << 6 |
	    (mode_t)(group_obj & mask & named_users) << 3 |
	    (mode_t)(other & named_all);
	return 0;
}

mode_t
xattr_destination_mode(mode_t mode, const XattrSet *src, unsigned refused)
{
	const XattrEntry *acl;
	mode_t m;

	mode &= 07777;
	if (!(refused & XATTR_NS_ACL_ACCESS))
		return mode;
	acl = xattr_set_find(src, XATTR_ACL_ACCESS);
	if (acl == NULL)
		return mode;
	if (xattr_acl_effective_mode(mode, acl->value, acl->size, &m) < 0)
		return mode & ~(mode_t)(S_IRWXG | S_IRWXO);
	return m;
}

/* ---- applying ---- */

/* Records the outcome err of one change in namespace ns. */
static void
note(XattrApplyResult *res, int *first, unsigned ns, const char *name,
    int err)
{
	if (err == 0) {
		res->changed |= ns;
	} else if (unsupported(err)) {
		res->refused |= ns;
	} else {
		res->failed |= ns;
		if (*first == 0) {
			*first = err;
			snprintf(res->name, sizeof res->name, "%s", name);
		}
	}
}

/* Makes name on t equal to want (NULL: absent), given have. Returns
 * whether the attribute is now as wanted. */
static bool
apply_one(const struct target *t, const char *name, const XattrEntry *want,
    const XattrEntry *have, XattrApplyResult *res, int *first)
{
	int r;

	if (same_value(want, have))
		return true;
	r = want != NULL ? t_set(t, name, want->value, want->size) :
	    t_remove(t, name);
	note(res, first, xattr_namespace(name), name, r);
	return r == 0;
}

/* Removes have's plain attributes (user, trusted, security) that want
 * lacks, then sets those that differ. */
static void
apply_plain(const struct target *t, const XattrSet *want,
    const XattrSet *have, unsigned ns, XattrApplyResult *res, int *first)
{
	for (size_t i = 0; i < xattr_set_count(have); i++) {
		const char *name = have->entry[i].name;

		if ((xattr_namespace(name) & ns) == 0 ||
		    xattr_set_find(want, name) != NULL)
			continue;
		apply_one(t, name, NULL, &have->entry[i], res, first);
	}
	for (size_t i = 0; i < xattr_set_count(want); i++) {
		const char *name = want->entry[i].name;

		if ((xattr_namespace(name) & ns) == 0)
			continue;
		apply_one(t, name, &want->entry[i], xattr_set_find(have, name),
		    res, first);
	}
}

static int
chmod_to(const struct target *t, mode_t mode)
{
	int r = t->opath ? chmod(t->proc, mode) : fchmod(t->fd, mode);

	return r < 0 ? -errno : 0;
}

int
xattr_apply(int fd, const XattrSet *want, mode_t mode, unsigned namespaces,
    XattrApplyResult *res)
{
	const unsigned plain = XATTR_NS_USER | XATTR_NS_TRUSTED |
	    XATTR_NS_SECURITY;
	const XattrEntry *acl_src, *acl_want, *acl_have;
	struct target t;
	XattrSet *have = NULL;
	struct stat st;
	bool acl_changes, acl_in_place = true, writable_added = false;
	mode_t final;
	int first = 0, r;

	memset(res, 0, sizeof *res);
	mode &= 07777;
	if ((r = target_init(&t, fd)) < 0 || fstat(fd, &st) < 0) {
		first = r < 0 ? r : -errno;
		goto out;
	}
	res->mode = st.st_mode & 07777;
	if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
		namespaces &= ~(XATTR_NS_USER | XATTR_NS_ACL);
	if (!S_ISDIR(st.st_mode))
		namespaces &= ~XATTR_NS_ACL_DEFAULT;
	if ((r = read_target(&t, namespaces, &have)) < 0) {
		first = r;
		goto out;
	}
	if (S_ISLNK(st.st_mode)) {
		apply_plain(&t, want, have, namespaces & plain, res, &first);
		goto capability;
	}

	acl_want = (namespaces & XATTR_NS_ACL_ACCESS) ?
	    xattr_set_find(want, XATTR_ACL_ACCESS) : NULL;
	acl_have = xattr_set_find(have, XATTR_ACL_ACCESS);
	acl_changes = (namespaces & XATTR_NS_ACL_ACCESS) &&
	    !same_value(acl_want, acl_have);
	/* 1. Neither the old ACL nor the new mode alone may be in force. */
	if (acl_changes) {
		mode_t narrow = st.st_mode & mode & S_IRWXU;

		if ((st.st_mode & 07777) != narrow) {
			if ((r = chmod_to(&t, narrow)) < 0) {
				first = r;
				goto out;
			}
			st.st_mode = (st.st_mode & S_IFMT) | narrow;
			res->mode = narrow;
		}
	}
	/* 2. Plain attributes; an unprivileged owner needs write access. */
	if (xattr_compare(want, have) & namespaces & XATTR_NS_USER &&
	    !(st.st_mode & S_IWUSR) && geteuid() != 0 &&
	    geteuid() == st.st_uid) {
		if (chmod_to(&t, (st.st_mode & 07777) | S_IWUSR) == 0)
			writable_added = true;
	}
	apply_plain(&t, want, have, namespaces & plain, res, &first);
	/* 3. The ACLs. */
	if (acl_changes)
		acl_in_place = apply_one(&t, XATTR_ACL_ACCESS, acl_want,
		    acl_have, res, &first);
	if (namespaces & XATTR_NS_ACL_DEFAULT)
		apply_one(&t, XATTR_ACL_DEFAULT,
		    xattr_set_find(want, XATTR_ACL_DEFAULT),
		    xattr_set_find(have, XATTR_ACL_DEFAULT), res, &first);
	/* 4. The mode: never wider than the source's effective permissions.
	 * A source ACL that is not carried (refused, or outside namespaces)
	 * narrows it; one that failed otherwise leaves only the owner's. */
	final = mode;
	acl_src = xattr_set_find(want, XATTR_ACL_ACCESS);
	if (acl_src != NULL && (!(namespaces & XATTR_NS_ACL_ACCESS) ||
	    (res->refused & XATTR_NS_ACL_ACCESS)))
		final = xattr_destination_mode(mode, want, XATTR_NS_ACL_ACCESS);
	else if (!acl_in_place)
		final = mode & ~(mode_t)(S_IRWXG | S_IRWXO);
	if (acl_changes || writable_added || (st.st_mode & 07777) != final) {
		if ((r = chmod_to(&t, final)) < 0) {
			if (first == 0) {
				first = r;
				res->name[0] = '\0';
			}
			goto out;
		}
		res->mode = final;
	}
capability:
	/* 5. Last: chown and writes before it would have cleared it. */
	if (namespaces & XATTR_NS_CAPABILITY)
		apply_one(&t, XATTR_CAPABILITY,
		    xattr_set_find(want, XATTR_CAPABILITY),
		    xattr_set_find(have, XATTR_CAPABILITY), res, &first);
out:
	xattr_set_free(have);
	return first;
}
