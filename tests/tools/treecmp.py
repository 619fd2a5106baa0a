#!/usr/bin/env python3
"""Independent mirror checker for treesync.

    treecmp.py SRC DST [--exclude PATTERN ...] [--no-owner] [--no-xattrs] [--no-rsync]
               [--ignore-extra]

Walks both trees without following symlinks (the root directories included)
and compares, per relative path:

  - entry type;
  - permission bits incl. setuid/setgid/sticky (not for symlinks);
  - uid/gid (default: when running as root; --no-owner / --owner override);
  - st_mtime_ns for everything but symlinks (directories and the root too);
  - size and full content of regular files;
  - symlink targets (bytes);
  - hard-link structure: the partition of the common regular-file paths by
    inode must be the same on both sides; a DST inode may not be a SRC inode;
  - extended attributes and POSIX ACLs (unless --no-xattrs): the names and
    raw values in user.*, trusted.*, security.* (security.capability
    included) and system.posix_acl_access / system.posix_acl_default, read
    with listxattr/getxattr on the entry itself, never through a symlink.
    Symlinks, fifos, sockets and devices are compared as well: the kernel
    allows trusted.* and security.* on them (user.* and ACLs only on files
    and directories, so those simply never appear there).  Other system.*
    names (NFSv4 ACLs, ...) are not part of SPEC 7 and are not compared.
    A file system that has no xattr support (ENOTSUP) counts as an empty
    set, so a source with xattrs against such a destination reports them
    missing.  What is visible depends on who runs this: trusted.* only to
    root (then it is compared on both sides alike).

Entries only in SRC are "missing", only in DST "extra" (ignored with
--ignore-extra).  Entries named ".treesync.*" in DST are always reported
(leftover temporaries).  --exclude patterns follow treesync's SPEC: a shell
glob; without '/' it matches the base name at any depth; with '/' the whole
path relative to the root ('*', '?' and [...] never match '/', a leading '/'
just anchors); a trailing '/' matches directories only; an excluded directory
excludes its subtree.  Excluded paths are skipped on both sides.

Unless --no-rsync, also runs
    rsync -rlptDn --checksum --omit-link-times --numeric-ids --delete
          --itemize-changes [-go] [-AX] [--exclude=...] SRC/ DST/
as a second opinion; every output line counts as a difference.

Exit status: 0 equal, 1 different, 2 usage error.
"""

import argparse
import errno
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

MAX_PRINT = 50
CHUNK = 1 << 20
TEMP_PREFIX = b".treesync."
ACL_ACCESS = "system.posix_acl_access"
ACL_DEFAULT = "system.posix_acl_default"
CAPABILITY = "security.capability"
XATTR_PREFIXES = ("user.", "trusted.", "security.")


# ------------------------------------------------------------------ patterns
_POSIX_CLASSES = {
    b"alnum": b"a-zA-Z0-9", b"alpha": b"a-zA-Z", b"blank": b" \\t",
    b"cntrl": b"\\x00-\\x1f\\x7f", b"digit": b"0-9", b"graph": b"\\x21-\\x7e",
    b"lower": b"a-z", b"print": b"\\x20-\\x7e",
    b"punct": b"!-/:-@\\[-`{-~", b"space": b" \\t\\n\\r\\x0b\\x0c",
    b"upper": b"A-Z", b"xdigit": b"0-9A-Fa-f",
}


def _class_to_regex(pat, i):
    """pat[i] == '['.  Return (regex, next index) or None when unterminated."""
    n = len(pat)
    j = i + 1
    negate = False
    if j < n and pat[j:j + 1] in (b"!", b"^"):
        negate = True
        j += 1
    items = []
    first = True
    while j < n:
        c = pat[j:j + 1]
        if c == b"]" and not first:
            body = b"".join(items)
            if negate:
                return b"[^/" + body + b"]", j + 1
            return b"(?!/)[" + body + b"]" if body else b"(?!)", j + 1
        first = False
        if c == b"[" and pat[j + 1:j + 2] == b":":
            end = pat.find(b":]", j + 2)
            if end != -1 and pat[j + 2:end] in _POSIX_CLASSES:
                items.append(_POSIX_CLASSES[pat[j + 2:end]])
                j = end + 2
                continue
        if c == b"\\" and j + 1 < n:
            j += 1
            c = pat[j:j + 1]
        # a range a-z (the '-' must not be last before ']')
        if pat[j + 1:j + 2] == b"-" and j + 2 < n and pat[j + 2:j + 3] != b"]":
            hi = pat[j + 2:j + 3]
            k = j + 3
            if hi == b"\\" and j + 3 < n:
                hi = pat[j + 3:j + 4]
                k = j + 4
            if c <= hi:
                items.append(re.escape(c) + b"-" + re.escape(hi))
            j = k
            continue
        items.append(re.escape(c))
        j += 1
    return None


def glob_to_regex(pat):
    """Translate a shell glob (bytes) to a regex source (bytes) in which
    nothing matches '/' except a literal '/' in the pattern."""
    out = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i:i + 1]
        if c == b"*":
            out.append(b"[^/]*")
            while pat[i:i + 1] == b"*":
                i += 1
            continue
        if c == b"?":
            out.append(b"[^/]")
        elif c == b"[":
            r = _class_to_regex(pat, i)
            if r is None:
                out.append(re.escape(c))
            else:
                out.append(r[0])
                i = r[1]
                continue
        elif c == b"\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pat[i:i + 1]))
        else:
            out.append(re.escape(c))
        i += 1
    return b"".join(out)


class Exclude:
    """One exclude pattern with treesync's SPEC semantics."""

    def __init__(self, pattern):
        p = os.fsencode(pattern)
        self.text = pattern
        self.dir_only = p.endswith(b"/")
        while p.endswith(b"/") and len(p) > 1:
            p = p[:-1]
        self.anchored = b"/" in p
        if p.startswith(b"/"):
            p = p.lstrip(b"/")
        self.regex = re.compile(glob_to_regex(p) + b"\\Z", re.DOTALL)

    def matches(self, rel, name, is_dir):
        if self.dir_only and not is_dir:
            return False
        return self.regex.match(rel if self.anchored else name) is not None

    def rsync_arg(self):
        p = self.text
        # rsync matches "a/b" against the end of the path; SPEC anchors it.
        if "/" in p.rstrip("/") and not p.startswith("/"):
            p = "/" + p
        return "--exclude=" + p


def is_excluded(excludes, rel, name, is_dir):
    for e in excludes:
        if e.matches(rel, name, is_dir):
            return True
    return False


# ------------------------------------------------------------------ helpers
def esc(rel):
    """Printable, one-line form of a relative path (bytes)."""
    if rel == b"":
        return "."
    out = []
    for ch in rel.decode("utf-8", "surrogateescape"):
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append("\\x%02x" % (o - 0xDC00))
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif o < 0x100:
            out.append("\\x%02x" % o)
        else:
            out.append("\\u%04x" % o if o < 0x10000 else "\\U%08x" % o)
    return "".join(out)


def fmt_ns(ns):
    sec, frac = divmod(ns, 1_000_000_000)
    try:
        t = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
    except (OverflowError, OSError, ValueError):
        t = "?"
    return "%d (%s.%09dZ)" % (ns, t, frac)


TYPE_NAMES = {
    stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
    stat.S_IFIFO: "fifo", stat.S_IFSOCK: "socket", stat.S_IFCHR: "chardev",
    stat.S_IFBLK: "blockdev",
}


def type_name(mode):
    return TYPE_NAMES.get(stat.S_IFMT(mode), "type%o" % stat.S_IFMT(mode))


class Report:
    def __init__(self, max_print=MAX_PRINT):
        self.count = 0
        self.max_print = max_print
        self.lock = threading.Lock()

    def diff(self, kind, rel, detail=""):
        with self.lock:
            self.count += 1
            if self.count <= self.max_print:
                line = "%s: %s" % (kind, esc(rel) if isinstance(rel, bytes) else rel)
                if detail:
                    line += " " + detail
                print(line, flush=True)
            elif self.count == self.max_print + 1 and self.max_print > 0:
                print("... (further differences counted, not printed)", flush=True)


# ------------------------------------------------------------------ xattrs
def xattr_compared(name):
    """SPEC 7's namespaces: user, trusted, security, the two POSIX ACLs."""
    return name.startswith(XATTR_PREFIXES) or name in (ACL_ACCESS, ACL_DEFAULT)


def read_xattrs(path):
    """{name: value} of the entry at path itself (a symlink is not
    followed), only the names xattr_compared keeps; or an error string."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
            return {}
        return "listxattr: %s" % e.strerror
    out = {}
    for n in names:
        if not xattr_compared(n):
            continue
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            if e.errno == errno.ENODATA:        # removed since the listing
                continue
            return "getxattr %s: %s" % (n, e.strerror)
    return out


_ACL_TAGS = {0x01: "u", 0x02: "u", 0x04: "g", 0x08: "g", 0x10: "m", 0x20: "o"}


def acl_text(value):
    """The kernel's binary ACL (version 2; entries of le16 tag, le16 perm,
    le32 id) in getfacl's short form with numeric ids, e.g.
    "u::rw-,u:65534:rw-,g::r--,m::rw-,o::---"; "(none)" for None."""
    if value is None:
        return "(none)"
    if len(value) < 4 or (len(value) - 4) % 8 or int.from_bytes(value[:4], "little") != 2:
        return "(malformed: %s)" % value.hex()
    out = []
    for off in range(4, len(value), 8):
        tag = int.from_bytes(value[off:off + 2], "little")
        perm = int.from_bytes(value[off + 2:off + 4], "little")
        qid = int.from_bytes(value[off + 4:off + 8], "little")
        named = tag in (0x02, 0x08)
        p = "".join(c if perm & b else "-" for c, b in (("r", 4), ("w", 2), ("x", 1)))
        out.append("%s:%s:%s" % (_ACL_TAGS.get(tag, "?%x" % tag), qid if named else "", p))
    return ",".join(out)


def cap_text(value):
    """security.capability (struct vfs_cap_data, v1/v2/v3) as text."""
    if value is None:
        return "(none)"
    if len(value) < 4:
        return "(malformed: %s)" % value.hex()
    magic = int.from_bytes(value[:4], "little")
    rev, eff = magic & 0xFF000000, magic & 1
    words = [int.from_bytes(value[i:i + 4], "little") for i in range(4, len(value) - 3, 4)]
    if rev == 0x01000000 and len(words) >= 2:
        perm, inh, rest = words[0], words[1], ""
    elif rev in (0x02000000, 0x03000000) and len(words) >= 4:
        perm = words[0] | words[2] << 32
        inh = words[1] | words[3] << 32
        rest = " rootid=%d" % words[4] if rev == 0x03000000 and len(words) >= 5 else ""
    else:
        return "(unknown format: %s)" % value.hex()
    return "v%d permitted=%#x inheritable=%#x effective=%s%s" % (
        rev >> 24, perm, inh, "yes" if eff else "no", rest)


def value_text(value):
    if len(value) > 48:
        return repr(value[:48])[:-1] + "...' (%d bytes)" % len(value)
    return repr(value)


def compare_xattrs(rel, sx, dx, report):
    """Reports each difference between two read_xattrs results."""
    if isinstance(sx, str) or isinstance(dx, str):
        report.diff("error", rel, "xattrs: %s" % (
            "src: " + sx if isinstance(sx, str) else "dst: " + dx))
        return
    if sx == dx:
        return
    for name in sorted(set(sx) | set(dx)):
        a, b = sx.get(name), dx.get(name)
        if a == b:
            continue
        if name in (ACL_ACCESS, ACL_DEFAULT):
            report.diff("acl differs", rel, "%s src=%s dst=%s" % (
                "access" if name == ACL_ACCESS else "default", acl_text(a), acl_text(b)))
        elif name == CAPABILITY:
            report.diff("capability differs", rel, "src=%s dst=%s" % (cap_text(a), cap_text(b)))
        elif b is None:
            report.diff("xattr missing", rel, "%s (only in src)" % name)
        elif a is None:
            report.diff("xattr extra", rel, "%s (only in dst)" % name)
        else:
            report.diff("xattr differs", rel, "%s src=%s dst=%s" % (name, value_text(a), value_text(b)))


# ------------------------------------------------------------------ walking
def walk(root, excludes, report, is_dst):
    """Return {rel: stat_result} for every entry under root (root = b"")."""
    entries = {}
    try:
        entries[b""] = os.lstat(root)
    except OSError as e:
        report.diff("error", b"", "%s: cannot stat root: %s" % ("dst" if is_dst else "src", e))
        return entries
    if not stat.S_ISDIR(entries[b""].st_mode):
        return entries
    stack = [b""]
    while stack:
        rel = stack.pop()
        path = root + b"/" + rel if rel else root
        try:
            it = os.scandir(path)
        except OSError as e:
            report.diff("error", rel, "%s: cannot list: %s" % ("dst" if is_dst else "src", e.strerror))
            continue
        with it:
            for de in it:
                name = de.name
                crel = rel + b"/" + name if rel else name
                if is_dst and name.startswith(TEMP_PREFIX):
                    report.diff("leftover temporary", crel, "(in dst)")
                    continue
                try:
                    st = de.stat(follow_symlinks=False)
                except OSError as e:
                    report.diff("error", crel, "%s: cannot stat: %s" % ("dst" if is_dst else "src", e.strerror))
                    continue
                isdir = stat.S_ISDIR(st.st_mode)
                if excludes and is_excluded(excludes, crel, name, isdir):
                    continue
                entries[crel] = st
                if isdir:
                    stack.append(crel)
    return entries


def same_content(a, b, size):
    """True/False, or an error string."""
    try:
        fa = os.open(a, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as e:
        return "src: %s" % e.strerror
    try:
        try:
            fb = os.open(b, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError as e:
            return "dst: %s" % e.strerror
        try:
            if size <= CHUNK:
                return os.read(fa, size + 1) == os.read(fb, size + 1)
            while True:
                x = os.read(fa, CHUNK)
                y = os.read(fb, CHUNK)
                if x != y:
                    # short reads are possible in theory; fall back carefully
                    while len(x) != len(y) and x and y:
                        if len(x) < len(y):
                            more = os.read(fa, len(y) - len(x))
                            if not more:
                                break
                            x += more
                        else:
                            more = os.read(fb, len(x) - len(y))
                            if not more:
                                break
                            y += more
                    if x != y:
                        return False
                if not x:
                    return True
        finally:
            os.close(fb)
    finally:
        os.close(fa)


# ------------------------------------------------------------------ compare
def compare(src, dst, excludes, owner, ignore_extra, report, jobs, xattrs=True):
    se = walk(src, excludes, report, False)
    if not os.path.lexists(dst):
        report.diff("missing", b"", "(dst root does not exist)")
        return {"src": len(se), "dst": 0, "files": 0, "bytes": 0}
    de = walk(dst, excludes, report, True)
    stats = {"src": len(se), "dst": len(de), "files": 0, "bytes": 0}

    content_jobs = []
    common_files = []
    for rel, s in se.items():
        d = de.get(rel)
        if d is None:
            report.diff("missing", rel, "(%s only in src)" % type_name(s.st_mode))
            continue
        sm, dm = s.st_mode, d.st_mode
        if stat.S_IFMT(sm) != stat.S_IFMT(dm):
            report.diff("type differs", rel, "src=%s dst=%s" % (type_name(sm), type_name(dm)))
            continue
        link = stat.S_ISLNK(sm)
        if xattrs:
            compare_xattrs(rel, read_xattrs(src + b"/" + rel if rel else src),
                           read_xattrs(dst + b"/" + rel if rel else dst), report)
        if not link and stat.S_IMODE(sm) != stat.S_IMODE(dm):
            report.diff("mode differs", rel, "src=%04o dst=%04o" % (stat.S_IMODE(sm), stat.S_IMODE(dm)))
        if owner and (s.st_uid != d.st_uid or s.st_gid != d.st_gid):
            report.diff("owner differs", rel, "src=%d:%d dst=%d:%d" % (s.st_uid, s.st_gid, d.st_uid, d.st_gid))
        if not link and s.st_mtime_ns != d.st_mtime_ns:
            report.diff("mtime differs", rel, "src=%s dst=%s" % (fmt_ns(s.st_mtime_ns), fmt_ns(d.st_mtime_ns)))
        if stat.S_ISREG(sm):
            common_files.append(rel)
            if s.st_size != d.st_size:
                report.diff("size differs", rel, "src=%d dst=%d" % (s.st_size, d.st_size))
            elif (s.st_dev, s.st_ino) == (d.st_dev, d.st_ino):
                pass        # the same inode: reported below, content trivially equal
            else:
                content_jobs.append(rel)
        elif link:
            try:
                ts = os.readlink(src + b"/" + rel if rel else src)
                td = os.readlink(dst + b"/" + rel if rel else dst)
            except OSError as e:
                report.diff("error", rel, "readlink: %s" % e)
            else:
                if ts != td:
                    report.diff("symlink target differs", rel, "src=%r dst=%r" % (ts, td))
        elif stat.S_ISCHR(sm) or stat.S_ISBLK(sm):
            if s.st_rdev != d.st_rdev:
                report.diff("device number differs", rel, "src=%x dst=%x" % (s.st_rdev, d.st_rdev))

    if not ignore_extra:
        for rel, d in de.items():
            if rel not in se:
                report.diff("extra", rel, "(%s only in dst)" % type_name(d.st_mode))

    # content, in parallel (reads release the GIL)
    def check(rel):
        r = same_content(src + b"/" + rel, dst + b"/" + rel, se[rel].st_size)
        if r is True:
            return
        if r is False:
            report.diff("content differs", rel, "(%d bytes)" % se[rel].st_size)
        else:
            report.diff("error", rel, "read: %s" % r)

    stats["files"] = len(content_jobs)
    stats["bytes"] = sum(se[r].st_size for r in content_jobs)
    def check_all(rels):
        for rel in rels:
            check(rel)

    if jobs > 1 and len(content_jobs) > 256:
        with ThreadPoolExecutor(max_workers=jobs) as ex:
            # every jobs-th file per thread: big and small files spread evenly
            for f in [ex.submit(check_all, content_jobs[k::jobs]) for k in range(jobs)]:
                f.result()
    else:
        check_all(content_jobs)

    # hard-link structure on the common regular-file paths
    s2d, d2s = {}, {}
    src_inodes = set()
    for rel in common_files:
        s, d = se[rel], de[rel]
        if not stat.S_ISREG(d.st_mode):
            continue
        sk, dk = (s.st_dev, s.st_ino), (d.st_dev, d.st_ino)
        s2d.setdefault(sk, {}).setdefault(dk, []).append(rel)
        d2s.setdefault(dk, {}).setdefault(sk, []).append(rel)
    for st in se.values():
        if stat.S_ISREG(st.st_mode):
            src_inodes.add((st.st_dev, st.st_ino))
    for sk, dks in s2d.items():
        if len(dks) > 1:
            groups = sorted(sorted(v) for v in dks.values())
            report.diff("hard link broken", groups[0][0],
                        "names sharing one inode in src are split in dst: %s"
                        % " | ".join(", ".join(esc(r) for r in g) for g in groups))
    for dk, sks in d2s.items():
        if len(sks) > 1:
            groups = sorted(sorted(v) for v in sks.values())
            report.diff("hard link extra", groups[0][0],
                        "names with different inodes in src share one inode in dst: %s"
                        % ", ".join(esc(r) for g in groups for r in g))
    for dk, sks in d2s.items():
        if dk in src_inodes:
            rel = sorted(r for v in sks.values() for r in v)[0]
            report.diff("shares inode with src", rel, "(dst file is the src inode %d)" % dk[1])
    return stats


def run_rsync(src, dst, excludes, owner, ignore_extra, xattrs):
    cmd = ["rsync", "-rlptDn", "--checksum", "--omit-link-times", "--numeric-ids",
           "--itemize-changes"]
    if owner:
        cmd.append("-go")
    if xattrs:
        cmd.append("-AX")
    if not ignore_extra:
        cmd.append("--delete")
    cmd += [e.rsync_arg() for e in excludes]
    cmd += [os.fsdecode(src) + "/", os.fsdecode(dst) + "/"]
    out = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return cmd, proc, out


def main(argv=None):
    ap = argparse.ArgumentParser(description="Compare a treesync mirror with its source.")
    ap.add_argument("src", metavar="SRC")
    ap.add_argument("dst", metavar="DST")
    ap.add_argument("--exclude", action="append", default=[], metavar="PATTERN")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--no-owner", dest="owner", action="store_false", default=None,
                   help="do not compare uid/gid (default: compare when root)")
    g.add_argument("--owner", dest="owner", action="store_true",
                   help="compare uid/gid even when not root")
    ap.add_argument("--no-xattrs", dest="xattrs", action="store_false",
                    help="do not compare extended attributes and ACLs (xattrs = false)")
    ap.add_argument("--no-rsync", action="store_true", help="skip the rsync second opinion")
    ap.add_argument("--ignore-extra", action="store_true",
                    help="entries only in DST are not differences (delete = false)")
    ap.add_argument("-j", "--jobs", type=int, default=1,
                    help="content-reading threads (default 1; more only helps on cold caches)")
    ap.add_argument("-q", "--quiet", action="store_true", help="print only the summary")
    a = ap.parse_args(argv)

    src = os.fsencode(a.src).rstrip(b"/") or b"/"
    dst = os.fsencode(a.dst).rstrip(b"/") or b"/"
    if not os.path.isdir(src) or os.path.islink(src):
        ap.error("SRC is not a directory: %s" % a.src)
    owner = (os.geteuid() == 0) if a.owner is None else a.owner
    try:
        excludes = [Exclude(p) for p in a.exclude if p]
    except re.error as e:
        ap.error("bad exclude pattern: %s" % e)
    report = Report(0 if a.quiet else MAX_PRINT)
    t0 = time.monotonic()

    rs = None
    if not a.no_rsync and os.path.isdir(dst):
        rs = run_rsync(src, dst, excludes, owner, a.ignore_extra, a.xattrs)

    stats = compare(src, dst, excludes, owner, a.ignore_extra, report, max(1, a.jobs),
                    a.xattrs)
    walk_diffs = report.count

    rsync_diffs = 0
    if rs is not None:
        cmd, proc, out = rs
        rc = proc.wait()
        out.seek(0)
        for line in out.read().splitlines():
            rsync_diffs += 1
            report.diff("rsync", line)
        if rc != 0:
            rsync_diffs += 1
            report.diff("rsync", "exit status %d: %s" % (rc, " ".join(cmd)))

    dt = time.monotonic() - t0
    scope = ("entries src=%d dst=%d, content compared %d files / %d bytes, owner %s, "
             "xattrs %s, rsync %s") % (
        stats["src"], stats["dst"], stats["files"], stats["bytes"],
        "compared" if owner else "ignored", "compared" if a.xattrs else "ignored",
        "skipped" if rs is None else "run")
    if report.count == 0:
        print("treecmp: EQUAL (%s) %.2f s" % (scope, dt))
        return 0
    print("treecmp: DIFFERENT: %d differences (%d from the walk, %d from rsync) (%s) %.2f s"
          % (report.count, walk_diffs, rsync_diffs, scope, dt))
    return 1


if __name__ == "__main__":
    sys.exit(main())
