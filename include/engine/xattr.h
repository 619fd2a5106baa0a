/*
 * xattr — the extended attributes, POSIX ACLs and file capabilities of one
 * file (SPEC guarantee 7): read a file's set, compare two sets, apply a
 * source's set to a destination file in an order that never leaves it more
 * open than the source, and the mode a destination gets where it cannot
 * hold the source's ACL.
 *
 * Stateless: called from worker threads, any number at once. Every
 * function works on an fd, never a path: a regular file or directory
 * opened O_RDONLY (or for writing), or any entry (a symlink, a fifo, a
 * device) opened O_PATH | O_NOFOLLOW. The kernel's f*xattr calls refuse
 * O_PATH fds, so for those the calls go through /proc/self/fd/N, whose
 * magic link resolves to the entry itself, never to what a symlink points
 * to (lgetxattr semantics without a path). The kernel allows user.* and
 * ACLs only on regular files and directories: on anything else they are
 * neither read nor written.
 *
 * Raw copies through the kernel's own calls (flistxattr, fgetxattr,
 * fsetxattr, fremovexattr), no libacl or libattr: an ACL travels as the
 * kernel's binary xattr value (system.posix_acl_access / _default), which
 * the destination's kernel parses and validates itself, and a capability
 * as its struct vfs_cap_data. Those libraries would add only a text form
 * and an in-memory ACL type that a byte-for-byte copy never needs. The one
 * place this module reads an ACL is xattr_acl_effective_mode.
 */
#ifndef TREESYNC_ENGINE_XATTR_H
#define TREESYNC_ENGINE_XATTR_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Namespaces, one bit each. A name outside all of them (system.* other
 * than the two ACLs, os2.*, ...) is never read or written. */
#define XATTR_NS_USER		0x01u	/* user.*: files and directories only */
#define XATTR_NS_TRUSTED	0x02u	/* trusted.*: CAP_SYS_ADMIN to read or write */
#define XATTR_NS_SECURITY	0x04u	/* security.* but the capability:
					 * CAP_SYS_ADMIN to write */
#define XATTR_NS_CAPABILITY	0x08u	/* security.capability: CAP_SETFCAP
					 * to write; chown and writes clear it */
#define XATTR_NS_ACL_ACCESS	0x10u	/* system.posix_acl_access: the owner */
#define XATTR_NS_ACL_DEFAULT	0x20u	/* system.posix_acl_default: directories */
#define XATTR_NS_ACL		(XATTR_NS_ACL_ACCESS | XATTR_NS_ACL_DEFAULT)
#define XATTR_NS_ALL		0x3fu

#define XATTR_ACL_ACCESS	"system.posix_acl_access"
#define XATTR_ACL_DEFAULT	"system.posix_acl_default"
#define XATTR_CAPABILITY	"security.capability"

/* The most one set may hold: names (with their NULs) plus values. The
 * kernel allows 64 KiB per value and 64 KiB of names; ext4 keeps a file's
 * attributes in one 4 KiB block unless ea_inode is on. Past this a read
 * fails with -E2BIG, and the caller reports the file ("xattrs of 'a/b':
 * more than 256 KiB, not copied") instead of holding megabytes per job. */
#define XATTR_SET_MAX_BYTES	(256u * 1024)

typedef struct XattrEntry {
	const char *name;	/* NUL-terminated */
	const void *value;
	size_t size;		/* of value; 0 is a valid, empty value */
} XattrEntry;

/*
 * The attributes of one file in the namespaces it was read with, sorted by
 * name (strcmp). One allocation (header, entries, names and values), owned
 * by whoever xattr_read gave it to; freed with xattr_set_free. NULL is the
 * empty set, so a file without attributes (the common case) costs one
 * flistxattr call and no allocation; every function here accepts NULL.
 */
typedef struct XattrSet {
	size_t count;
	size_t bytes;		/* names with NULs + values, <= XATTR_SET_MAX_BYTES */
	XattrEntry entry[];	/* count of them; the data follows */
} XattrSet;

/* The namespace bit of name, 0 for a name that is never copied. */
unsigned xattr_namespace(const char *name);

/*
 * The namespaces this process can read and write, from its effective
 * capabilities (capget; not from its uid, as a sandboxed root may lack
 * some): user.* and the ACLs always (an unprivileged daemon owns its
 * destination files), trusted.* and security.* with CAP_SYS_ADMIN, the
 * capability with CAP_SETFCAP. Unprivileged, that is what rsync -AX
 * carries too. Cheap; call it at start and pass the result around.
 */
unsigned xattr_namespaces_permitted(void);

/*
 * Reads the attributes of fd in the given namespaces into *ret (NULL when
 * there are none). A file system without xattr support (EOPNOTSUPP) has
 * none. An attribute removed while it is read is left out. Errors: -E2BIG
 * past XATTR_SET_MAX_BYTES, -ENOMEM, or the kernel's (-EACCES, -EIO, ...);
 * *ret is set only on success.
 */
int xattr_read(int fd, unsigned namespaces, XattrSet **ret);

void xattr_set_free(XattrSet *set);

size_t xattr_set_count(const XattrSet *set);

/* The entry called name, or NULL. */
const XattrEntry *xattr_set_find(const XattrSet *set, const char *name);

/*
 * The namespaces in which a and b differ (a name in one but not the other,
 * or a different value): 0 when they are equal. Both should have been read
 * with the same namespaces. A caller whose destination refuses some
 * namespaces (XattrApplyResult.refused) masks those out: they can never
 * become equal there. For rsync-like itemizing: XATTR_NS_ACL bits are
 * ACL changes, the others xattr changes.
 */
unsigned xattr_compare(const XattrSet *a, const XattrSet *b);

/*
 * The mode to give a file whose source has the access ACL acl (the raw
 * system.posix_acl_access value) and mode mode, where the ACL cannot be
 * carried: never wider than the source's effective permissions for any
 * user. With an ACL the group bits of a mode show the mask, not the
 * owning group's permissions (0640 + u:nobody:rw reads as 0660), so:
 *   owner bits  = the ACL's owner entry;
 *   group bits  = owning group entry & mask & every named user's entry
 *                 (a named user in the owning group gets only their entry);
 *   other bits  = other entry & every named user's and named group's
 *                 entry, each & mask (a named entry denies its user what
 *                 "other" would give);
 *   setuid, setgid and sticky bits from mode.
 * Named users and groups lose their extra access: narrower, never wider.
 * -EINVAL for a value that is not a valid ACL (version 2; 8-byte entries
 * of le16 tag, le16 perm, le32 id; one owner, owning group and other
 * entry; a mask where named entries are); *ret is set only on success.
 */
int xattr_acl_effective_mode(mode_t mode, const void *acl, size_t size,
    mode_t *ret);

/*
 * The mode a destination should have for a source of mode mode and
 * attributes src, when the destination refuses the namespaces refused:
 * mode itself unless the access ACL is refused and src has one; then
 * xattr_acl_effective_mode's (owner bits only, if the ACL is malformed).
 * For the rule set's compare: what xattr_apply sets on such a destination.
 */
mode_t xattr_destination_mode(mode_t mode, const XattrSet *src,
    unsigned refused);

typedef struct XattrApplyResult {
	unsigned changed;	/* namespaces in which something was set or
				 * removed */
	unsigned refused;	/* namespaces the destination's file system
				 * refused (EOPNOTSUPP): not an error; the
				 * caller warns once per pair and destination */
	unsigned failed;	/* namespaces with another failure; the
				 * return value is the first one */
	mode_t mode;		/* the permission bits set (narrower than the
				 * source's when its ACL could not be set) */
	char name[256];		/* the attribute of the returned error, ""
				 * when it is the chmod or the read */
} XattrApplyResult;

/*
 * Makes fd's attributes in namespaces equal to want's (read from the
 * source with the same namespaces; its entries outside namespaces are
 * not copied) and sets its mode to mode (the source's; ignored for a
 * symlink): sets what differs, removes what the source does not have,
 * and leaves alone every name outside namespaces. An access ACL in want
 * that does not reach fd (refused, or outside namespaces) narrows the
 * mode as xattr_destination_mode says, so passing mode unchanged is safe.
 *
 * Call it after the file's data and owner are final (fchown first: chown
 * clears a capability and the setuid/setgid bits, a write clears the
 * capability), and do not fchmod it yourself: the mode is part of the
 * order. Set times afterwards (setxattr and chmod change only the ctime).
 * The order never leaves the file open to anyone the source's ACL and
 * mode deny:
 *   1. if the access ACL changes, the mode first narrows to the owner's
 *      bits (both the current and the final ones), so that neither the old
 *      ACL without its entries nor the new mode without its ACL is ever
 *      in force on their own;
 *   2. user.*, trusted.* and security.* (extras removed first, so that a
 *      file system with little room for attributes takes the new ones);
 *      a read-only file of an unprivileged owner gets u+w meanwhile;
 *   3. the access ACL, then the default ACL (directories);
 *   4. the final mode: mode, or xattr_destination_mode's when the access
 *      ACL is refused, or only the owner's bits when setting or removing
 *      it failed otherwise (the caller retries);
 *   5. the capability, last.
 * Returns 0 when everything that the destination accepts is in place
 * (res->refused may be non-zero), else the first -errno (res says which
 * namespace and attribute); it goes on with the rest after a failure.
 * res must not be NULL.
 */
int xattr_apply(int fd, const XattrSet *want, mode_t mode,
    unsigned namespaces, XattrApplyResult *res);

#endif
