#!/usr/bin/env python3
"""Self-checks for treecmp.py (and a sanity check of gentree.py).

    python3 tests/tools/test_treecmp.py [-v]

Generates a small awkward tree with gentree.py, copies it with `cp -a`
(which keeps nanosecond mtimes, owners and hard links) and checks that
treecmp finds the copy equal; then perturbs one thing at a time in a fresh
copy and checks that treecmp reports exactly that kind of difference.
TestXattrs does the same for extended attributes, ACLs and capabilities on
a small tree of its own (setfacl/setcap from the acl and libcap2-bin
packages; trusted.*, security.* and capabilities need root).
"""

import contextlib
import errno
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

TOOLS = os.path.dirname(os.path.abspath(__file__))
TREECMP = os.path.join(TOOLS, "treecmp.py")
GENTREE = os.path.join(TOOLS, "gentree.py")
sys.path.insert(0, TOOLS)
import treecmp  # noqa: E402

IS_ROOT = os.geteuid() == 0


def lst(p):
    return os.lstat(p)


@contextlib.contextmanager
def keep_mtime(path):
    """Make a directory writable and restore its mode and mtime after changing
    its entries, so that a test changes only the one thing it means to."""
    st = os.lstat(path)
    os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)    # 0555 dirs, when not root
    try:
        yield
    finally:
        os.chmod(path, stat.S_IMODE(st.st_mode))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


class Base(unittest.TestCase):
    tmp = None
    src = None
    counter = 0

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="treecmp-test.")
        cls.src = os.path.join(cls.tmp, "src")
        r = subprocess.run([sys.executable, GENTREE, cls.src, "--files", "300", "--seed", "5"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            raise RuntimeError("gentree failed: " + r.stdout)
        cls.index()

    @classmethod
    def tearDownClass(cls):
        subprocess.run(["chmod", "-R", "u+rwx", cls.tmp])
        shutil.rmtree(cls.tmp)

    @classmethod
    def index(cls):
        """Find example entries of each kind in the source tree (bytes, relative)."""
        root = os.fsencode(cls.src)
        cls.files, cls.dirs, cls.links, cls.groups = [], [], [], {}
        cls.suid = None
        for dp, dns, fns in os.walk(root):
            rel = os.path.relpath(dp, root)
            rel = b"" if rel == b"." else rel
            for n in dns + fns:
                r = rel + b"/" + n if rel else n
                st = os.lstat(root + b"/" + r)
                if stat.S_ISDIR(st.st_mode):
                    cls.dirs.append(r)
                elif stat.S_ISLNK(st.st_mode):
                    cls.links.append(r)
                elif stat.S_ISREG(st.st_mode):
                    cls.files.append(r)
                    if st.st_nlink > 1:
                        cls.groups.setdefault(st.st_ino, []).append(r)
                    if st.st_mode & stat.S_ISUID and cls.suid is None:
                        cls.suid = r
        cls.files.sort()
        cls.dirs.sort()
        cls.links.sort()
        # a plain file with content of at least 100 bytes, not hard-linked
        cls.plain = next(f for f in cls.files
                         if os.lstat(os.path.join(root, f)).st_size >= 100
                         and os.lstat(os.path.join(root, f)).st_nlink == 1
                         and f.startswith(b"d"))
        cls.deep = next(f for f in cls.files
                        if f.count(b"/") >= 3
                        and os.lstat(os.path.join(root, f)).st_nlink == 1
                        and os.path.splitext(f)[1])

    def copy(self):
        """A fresh `cp -a` copy of the source; returns its path (str)."""
        Base.counter += 1
        dst = os.path.join(self.tmp, "dst%d" % Base.counter)
        subprocess.run(["cp", "-a", self.src, dst], check=True)
        return dst

    def run_cmp(self, dst, *args, src=None):
        r = subprocess.run([sys.executable, TREECMP, src or self.src, dst] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return r.returncode, r.stdout.decode("utf-8", "replace")

    def assertDiff(self, dst, kind, *args, src=None, rsync_too=True):
        """treecmp (walk only, and with rsync) reports `kind` and exits 1."""
        rc, out = self.run_cmp(dst, "--no-rsync", *args, src=src)
        self.assertEqual(rc, 1, out)
        self.assertIn(kind, out)
        if rsync_too:
            rc, out2 = self.run_cmp(dst, *args, src=src)
            self.assertEqual(rc, 1, out2)
            self.assertIn(kind, out2)
        return out

    def assertSame(self, dst, *args, src=None):
        rc, out = self.run_cmp(dst, *args, src=src)
        self.assertEqual(rc, 0, out)
        self.assertIn("EQUAL", out)
        return out

    def p(self, dst, rel):
        return os.path.join(os.fsencode(dst), rel)


class TestEqual(Base):
    def test_cp_a_copy_is_equal(self):
        dst = self.copy()
        self.assertSame(dst)
        self.assertSame(dst, "--no-rsync")
        self.assertSame(dst, "--no-owner")
        self.assertSame(dst, "--ignore-extra")

    def test_rsync_copy_is_equal(self):
        Base.counter += 1
        dst = os.path.join(self.tmp, "rs%d" % Base.counter)
        subprocess.run(["rsync", "-aH", "--numeric-ids", self.src + "/", dst + "/"], check=True)
        self.assertSame(dst)

    def test_tree_has_the_awkward_cases(self):
        self.assertTrue(self.groups, "no hard links")
        self.assertTrue(any(len(g) == 3 for g in self.groups.values()) or len(self.groups) > 1)
        self.assertGreater(len(self.links), 5)
        self.assertIsNotNone(self.suid)
        names = {os.path.basename(f) for f in self.files}
        for n in (b"new\nline", b"tab\there", b"-rf", b"--help", b"*", b"?", b"[a]",
                  b".hidden", b"x" * 255, "日".encode() * 85, b"latin1-\xe9-undecodable"):
            self.assertIn(n, names)
        modes = {stat.S_IMODE(lst(self.p(self.src, d)).st_mode) for d in self.dirs}
        self.assertTrue({0o1777, 0o700, 0o555} <= modes, oct_set(modes))
        mt = [lst(self.p(self.src, f)).st_mtime_ns for f in self.files]
        self.assertTrue(any(m < 0 for m in mt))
        self.assertTrue(any(m % 1000 for m in mt))
        rootmt = lst(self.src).st_mtime_ns
        self.assertLess(rootmt, 1_704_067_200 * 10**9)   # deliberate, not "now"
        if IS_ROOT:
            owners = {(lst(self.p(self.src, f)).st_uid, lst(self.p(self.src, f)).st_gid)
                      for f in self.files + self.links + self.dirs}
            self.assertIn((1234, 5678), owners)

    def test_gentree_is_deterministic(self):
        # the same seed into the same path gives the same tree (absolute
        # symlinks into the tree name DIR, hence the same path)
        d = os.path.join(self.tmp, "det")
        for k in (1, 2):
            subprocess.run([sys.executable, GENTREE, d, "--files", "200", "--seed", "9"],
                           check=True, stdout=subprocess.DEVNULL)
            if k == 1:
                os.rename(d, d + ".1")
        # inode numbers differ but the partition and everything else agree
        self.assertSame(d, src=d + ".1")


def oct_set(s):
    return " ".join("%o" % m for m in sorted(s))


class TestPerturb(Base):
    def test_byte_flipped_same_size_same_mtime(self):
        dst = self.copy()
        f = self.p(dst, self.plain)
        st = lst(f)
        with open(f, "r+b") as fh:
            fh.seek(50)
            b = fh.read(1)
            fh.seek(50)
            fh.write(bytes([b[0] ^ 1]))
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
        out = self.assertDiff(dst, "content differs")
        rc, out = self.run_cmp(dst)
        self.assertRegex(out, r"rsync: >fc")       # rsync --checksum sees it too

    def test_size_differs(self):
        dst = self.copy()
        f = self.p(dst, self.plain)
        st = lst(f)
        with open(f, "ab") as fh:
            fh.write(b"x")
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
        self.assertDiff(dst, "size differs")

    def test_mode_differs(self):
        dst = self.copy()
        f = self.p(dst, self.plain)
        os.chmod(f, stat.S_IMODE(lst(f).st_mode) ^ 0o020)
        self.assertDiff(dst, "mode differs")

    def test_setuid_bit_lost(self):
        dst = self.copy()
        f = self.p(dst, self.suid)
        os.chmod(f, stat.S_IMODE(lst(f).st_mode) & ~stat.S_ISUID)
        self.assertDiff(dst, "mode differs")

    def test_sticky_dir_mode(self):
        dst = self.copy()
        d = next(d for d in self.dirs if lst(self.p(self.src, d)).st_mode & stat.S_ISVTX)
        os.chmod(self.p(dst, d), 0o777)
        self.assertDiff(dst, "mode differs")

    def test_file_mtime_plus_1ns(self):
        dst = self.copy()
        f = self.p(dst, self.plain)
        st = lst(f)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        self.assertDiff(dst, "mtime differs")

    def test_negative_mtime_1ns(self):
        dst = self.copy()
        f = next(f for f in self.files if lst(self.p(self.src, f)).st_mtime_ns < 0)
        st = lst(self.p(dst, f))
        os.utime(self.p(dst, f), ns=(st.st_atime_ns, st.st_mtime_ns - 1))
        self.assertDiff(dst, "mtime differs")

    def test_dir_mtime_plus_1ns(self):
        dst = self.copy()
        d = self.p(dst, self.dirs[len(self.dirs) // 2])
        st = lst(d)
        os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        self.assertDiff(dst, "mtime differs")

    def test_root_mtime(self):
        dst = self.copy()
        st = lst(dst)
        os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        out = self.assertDiff(dst, "mtime differs: . ")

    def test_root_mode(self):
        dst = self.copy()
        os.chmod(dst, 0o700)
        self.assertDiff(dst, "mode differs: . ")

    def test_symlink_mtime_is_not_compared(self):
        dst = self.copy()
        ln = self.p(dst, self.links[0])
        os.utime(ln, ns=(1, 12345), follow_symlinks=False)
        self.assertSame(dst)

    def test_symlink_target(self):
        dst = self.copy()
        ln = self.p(dst, self.links[0])
        target = os.readlink(ln)
        with keep_mtime(os.path.dirname(ln)):
            os.unlink(ln)
            os.symlink(target + b"x", ln)
        self.assertDiff(dst, "symlink target differs")

    def test_symlink_target_same_length(self):
        dst = self.copy()
        ln = self.p(dst, b"loop")
        with keep_mtime(dst):
            os.unlink(ln)
            os.symlink(b"lopp", ln)
        self.assertDiff(dst, "symlink target differs")

    def test_extra_file(self):
        dst = self.copy()
        d = self.p(dst, self.dirs[0])
        with keep_mtime(d):
            with open(os.path.join(d, b"new-file"), "wb") as fh:
                fh.write(b"hello")
        self.assertDiff(dst, "extra")
        self.assertSame(dst, "--ignore-extra")
        self.assertSame(dst, "--ignore-extra", "--no-rsync")

    def test_extra_dir_tree(self):
        dst = self.copy()
        with keep_mtime(dst):
            os.makedirs(os.path.join(dst, "x", "y"))
        self.assertDiff(dst, "extra")
        self.assertSame(dst, "--ignore-extra")

    def test_missing_file(self):
        dst = self.copy()
        f = self.p(dst, self.plain)
        with keep_mtime(os.path.dirname(f)):
            os.unlink(f)
        self.assertDiff(dst, "missing")
        rc, out = self.run_cmp(dst, "--ignore-extra")
        self.assertEqual(rc, 1, out)

    def test_missing_dir(self):
        dst = self.copy()
        d = self.p(dst, self.dirs[-1])
        with keep_mtime(os.path.dirname(d)):
            subprocess.run(["rm", "-rf", d], check=True)
        self.assertDiff(dst, "missing")

    def test_missing_dst_root(self):
        rc, out = self.run_cmp(os.path.join(self.tmp, "no-such-dst"))
        self.assertEqual(rc, 1, out)
        self.assertIn("missing", out)

    def test_type_file_to_symlink(self):
        dst = self.copy()
        f = self.p(dst, self.plain)
        with keep_mtime(os.path.dirname(f)):
            os.unlink(f)
            os.symlink(b"whatever", f)
        self.assertDiff(dst, "type differs")

    def test_type_file_to_dir(self):
        dst = self.copy()
        f = self.p(dst, self.plain)
        st = lst(f)
        with keep_mtime(os.path.dirname(f)):
            os.unlink(f)
            os.mkdir(f, stat.S_IMODE(st.st_mode))
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
        self.assertDiff(dst, "type differs")

    def test_broken_hard_link(self):
        dst = self.copy()
        names = sorted(next(iter(self.groups.values())))
        victim = self.p(dst, names[-1])
        st = lst(victim)
        with keep_mtime(os.path.dirname(victim)):
            tmp = victim + b".tmp"
            shutil.copyfile(victim, tmp)
            os.chown(tmp, st.st_uid, st.st_gid)
            os.chmod(tmp, stat.S_IMODE(st.st_mode))
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
            os.rename(tmp, victim)
        self.assertNotEqual(lst(victim).st_ino, lst(self.p(dst, names[0])).st_ino)
        # contents, modes, times all equal: only the inode structure tells
        out = self.assertDiff(dst, "hard link broken", rsync_too=False)
        self.assertNotIn("content differs", out)
        self.assertNotIn("mtime differs", out)

    def test_merged_hard_link(self):
        src = os.path.join(self.tmp, "hl-src")
        os.mkdir(src)
        for n in ("x", "y"):
            with open(os.path.join(src, n), "wb") as fh:
                fh.write(b"same content")
            os.utime(os.path.join(src, n), ns=(0, 10**18 + 5))
        os.utime(src, ns=(0, 10**18 + 7))
        Base.counter += 1
        dst = os.path.join(self.tmp, "hl-dst%d" % Base.counter)
        subprocess.run(["cp", "-a", src, dst], check=True)
        self.assertSame(dst, src=src)
        with keep_mtime(dst):
            os.unlink(os.path.join(dst, "y"))
            os.link(os.path.join(dst, "x"), os.path.join(dst, "y"))
        self.assertDiff(dst, "hard link extra", src=src, rsync_too=False)

    def test_dst_shares_inode_with_src(self):
        dst = self.copy()
        f = self.p(dst, self.plain)
        with keep_mtime(os.path.dirname(f)):
            os.unlink(f)
            os.link(self.p(self.src, self.plain), f)
        self.assertDiff(dst, "shares inode with src", rsync_too=False)

    def test_leftover_temporary(self):
        dst = self.copy()
        d = self.p(dst, self.dirs[1])
        with keep_mtime(d):
            with open(os.path.join(d, b".treesync.x"), "wb") as fh:
                fh.write(b"partial")
        self.assertDiff(dst, "leftover temporary")
        # always a difference: with --ignore-extra, and even when excluded
        self.assertDiff(dst, "leftover temporary", "--ignore-extra")
        self.assertDiff(dst, "leftover temporary", "--exclude=.*")
        self.assertDiff(dst, "leftover temporary", "--exclude=.treesync.*")

    def test_owner(self):
        if not IS_ROOT:
            self.skipTest("needs root")
        dst = self.copy()
        f = self.p(dst, self.plain)
        mode = stat.S_IMODE(lst(f).st_mode)
        os.chown(f, 4242, 4343)
        os.chmod(f, mode)
        self.assertDiff(dst, "owner differs")
        self.assertSame(dst, "--no-owner")

    def test_symlink_owner(self):
        if not IS_ROOT:
            self.skipTest("needs root")
        dst = self.copy()
        os.chown(self.p(dst, b"owned-symlink"), 0, 0, follow_symlinks=False)
        self.assertDiff(dst, "owner differs")

    def test_odd_name_printed_on_one_line(self):
        dst = self.copy()
        f = self.p(dst, b"new\nline")
        st = lst(f)
        os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        out = self.assertDiff(dst, "mtime differs: new\\nline src=")

    def test_undecodable_name(self):
        dst = self.copy()
        rel = next(f for f in self.files if os.path.basename(f) == b"latin1-\xe9-undecodable")
        f = self.p(dst, rel)
        with keep_mtime(os.path.dirname(f)):
            os.unlink(f)
        self.assertDiff(dst, "missing: " + treecmp.esc(rel))
        self.assertIn("\\xe9-undecodable", treecmp.esc(rel))

    def test_print_limit_but_full_count(self):
        dst = self.copy()
        for f in self.files[:60]:
            p = self.p(dst, f)
            st = lst(p)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        # hard-link names share an inode: count distinct inodes touched
        inodes = {lst(self.p(dst, f)).st_ino for f in self.files[:60]}
        names = sum(1 for f in self.files if lst(self.p(dst, f)).st_ino in inodes)
        rc, out = self.run_cmp(dst, "--no-rsync")
        self.assertEqual(rc, 1)
        self.assertEqual(len(re.findall(r"^mtime differs", out, re.M)), 50)
        self.assertIn("DIFFERENT: %d differences" % names, out)

    def test_usage_errors(self):
        rc, _ = self.run_cmp(self.src, "--bogus")
        self.assertEqual(rc, 2)
        r = subprocess.run([sys.executable, TREECMP], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        self.assertEqual(r.returncode, 2)
        rc, _ = self.run_cmp(self.src, src=os.path.join(self.tmp, "no-such-src"))
        self.assertEqual(rc, 2)


class TestExclude(Base):
    def test_excluded_basename_pattern(self):
        dst = self.copy()
        # change every *.log file (at any depth) and add an extra one
        for f in self.files:
            if f.endswith(b".log"):
                os.chmod(self.p(dst, f), 0o600)
        d = self.p(dst, self.dirs[3])
        with keep_mtime(d):
            open(os.path.join(d, b"extra.log"), "w").close()
        self.assertDiff(dst, "mode differs")
        self.assertSame(dst, "--exclude=*.log")

    def test_excluded_missing_on_dst_side(self):
        dst = self.copy()
        f = next(f for f in self.files if os.path.basename(f) == b"edit.swp")
        with keep_mtime(os.path.dirname(self.p(dst, f))):
            os.unlink(self.p(dst, f))
        self.assertDiff(dst, "missing")
        self.assertSame(dst, "--exclude=*.swp")
        self.assertSame(dst, "--exclude=edit.sw?")

    def test_excluded_dir_subtree_and_trailing_slash(self):
        dst = self.copy()
        nm = [d for d in self.dirs if os.path.basename(d) == b"node_modules"][0]
        inside = self.p(dst, nm)
        with keep_mtime(inside):
            os.mkdir(os.path.join(inside, b"extra-sub"))
            open(os.path.join(inside, b"extra-sub", b"f"), "w").close()
        self.assertDiff(dst, "extra")
        self.assertSame(dst, "--exclude=node_modules/")
        self.assertSame(dst, "--exclude=node_modules")

    def test_trailing_slash_matches_dirs_only(self):
        dst = self.copy()
        f = self.p(dst, self.plain)
        os.chmod(f, 0o600 if stat.S_IMODE(lst(f).st_mode) != 0o600 else 0o644)
        name = os.fsdecode(os.path.basename(self.plain))
        self.assertSame(dst, "--exclude=" + name)
        self.assertDiff(dst, "mode differs", "--exclude=" + name + "/")

    def test_anchored_pattern_star_does_not_cross_slash(self):
        dst = self.copy()
        f = self.deep                       # d00000/d000NN/.../f000123.ext
        parts = f.split(b"/")
        p = self.p(dst, f)
        os.chmod(p, 0o600 if stat.S_IMODE(lst(p).st_mode) != 0o600 else 0o644)
        full = os.fsdecode(f)
        top = os.fsdecode(parts[0])
        ext = os.fsdecode(os.path.splitext(parts[-1])[1])
        self.assertDiff(dst, "mode differs")
        self.assertSame(dst, "--exclude=" + full)
        self.assertSame(dst, "--exclude=" + "/" + full)
        self.assertSame(dst, "--exclude=" + "/".join(["*"] * len(parts)))
        # one component short: matches the file's parent dir -> its subtree
        self.assertSame(dst, "--exclude=" + "/".join(["*"] * (len(parts) - 1)))
        # '*' does not cross '/': "top/*ext" matches only top's own children
        self.assertDiff(dst, "mode differs", "--exclude=" + top + "/*" + ext)
        # a pattern with '/' is anchored at the root, not matched at the end
        self.assertDiff(dst, "mode differs", "--exclude=" + "/".join(os.fsdecode(x) for x in parts[1:]))

    def test_glob_translation(self):
        E = treecmp.Exclude
        m = lambda p, rel, d=False: E(p).matches(rel, rel.rsplit(b"/", 1)[-1], d)
        self.assertTrue(m("*.swp", b"a/b/c.swp"))
        self.assertTrue(m("*.swp", b".swp"))
        self.assertFalse(m("*.swp", b"a/b/c.swpx"))
        self.assertTrue(m("a/*", b"a/x"))
        self.assertFalse(m("a/*", b"a/x/y"))
        self.assertFalse(m("a/*", b"b/a/x"))            # anchored at the root
        self.assertTrue(m("/a/*", b"a/x"))
        self.assertTrue(m("*/b", b"a/b"))
        self.assertFalse(m("*/b", b"a/c/b"))
        self.assertFalse(m("*/b", b"b"))
        self.assertTrue(m("a/**/c", b"a/b/c"))           # ** is just * * here
        self.assertFalse(m("a/**/c", b"a/b/b/c"))
        self.assertTrue(m("?", b"x"))
        self.assertFalse(m("?", b"xy"))
        self.assertFalse(m("x/a?b", b"x/a/b"))
        self.assertTrue(m("[abc]x", b"bx"))
        self.assertFalse(m("[abc]x", b"dx"))
        self.assertTrue(m("[!abc]x", b"dx"))
        self.assertTrue(m("[^abc]x", b"dx"))
        self.assertFalse(m("[!abc]x", b"ax"))
        self.assertFalse(m("x/a[!x]b", b"x/a/b"))
        self.assertFalse(m("x/a[+-0]b", b"x/a/b"))      # a range spanning '/'
        self.assertTrue(m("a[+-0]b", b"a.b"))
        self.assertTrue(m("[]]", b"]"))
        self.assertTrue(m("[!]]", b"x"))
        self.assertTrue(m("[a-c]", b"b"))
        self.assertTrue(m("[a-]", b"-"))
        self.assertTrue(m("[[:digit:]]*", b"7up"))
        self.assertFalse(m("[[:digit:]]*", b"up"))
        self.assertTrue(m("\\*", b"*"))
        self.assertFalse(m("\\*", b"x"))
        self.assertTrue(m("\\[a]", b"[a]"))
        self.assertTrue(m("[a]", b"a"))
        self.assertFalse(m("[a]", b"[a]"))
        self.assertTrue(m("x[", b"x["))                 # unterminated: literal
        self.assertTrue(m("back\\\\slash", b"back\\slash"))
        self.assertTrue(m("*", b"new\nline"))
        self.assertTrue(m("new?line", b"new\nline"))
        self.assertTrue(m(".git/", b"a/.git", True))
        self.assertFalse(m(".git/", b"a/.git", False))
        self.assertTrue(m("a/b/", b"a/b", True))
        self.assertFalse(m("a/b/", b"x/a/b", True))
        self.assertTrue(m("日本*", "a/日本語.txt".encode()))
        self.assertTrue(m("latin1-?-*", b"latin1-\xe9-undecodable"))
        self.assertEqual(E("a/b").rsync_arg(), "--exclude=/a/b")
        self.assertEqual(E("*.swp").rsync_arg(), "--exclude=*.swp")
        self.assertEqual(E("node_modules/").rsync_arg(), "--exclude=node_modules/")
        self.assertEqual(E("/top").rsync_arg(), "--exclude=/top")


def have(prog):
    return shutil.which(prog) is not None


class TestXattrs(unittest.TestCase):
    """Each kind of xattr/ACL difference, on a tree with one of each."""

    @classmethod
    def setUpClass(cls):
        if not have("setfacl"):
            raise unittest.SkipTest("setfacl not installed (Debian package acl)")
        cls.tmp = tempfile.mkdtemp(prefix="treecmp-xattr.")
        cls.src = os.path.join(cls.tmp, "src")
        s = cls.src
        os.makedirs(os.path.join(s, "dir"))
        for n in ("plain", "user", "acl", "masked"):
            with open(os.path.join(s, n), "wb") as fh:
                fh.write(n.encode() * 10)
            os.chmod(os.path.join(s, n), 0o640)
        os.symlink("plain", os.path.join(s, "link"))
        try:
            os.setxattr(os.path.join(s, "user"), "user.comment", b"hello")
            os.setxattr(os.path.join(s, "user"), "user.empty", b"")
            os.setxattr(os.path.join(s, "dir"), "user.onadir", b"\x00\x01binary")
        except OSError as e:
            if e.errno in (errno.ENOTSUP, errno.EOPNOTSUPP):
                shutil.rmtree(cls.tmp)
                raise unittest.SkipTest("no user xattrs on %s" % cls.tmp)
            raise
        acl = lambda *a: subprocess.run(["setfacl"] + list(a), check=True)
        acl("-m", "u:nobody:r", os.path.join(s, "acl"))
        # the ACL-mask case: 0640 + u:nobody:rw shows as 0660
        acl("-m", "u:nobody:rw", os.path.join(s, "masked"))
        acl("-d", "-m", "u:nobody:rx", os.path.join(s, "dir"))
        acl("-m", "g:nogroup:rx", os.path.join(s, "dir"))
        if IS_ROOT:
            os.setxattr(os.path.join(s, "user"), "trusted.t", b"t-value")
            os.setxattr(os.path.join(s, "user"), "security.treecmp", b"s-value")
            os.setxattr(os.path.join(s, "link"), "trusted.onlink", b"l",
                        follow_symlinks=False)
            if have("setcap"):
                with open(os.path.join(s, "cap"), "wb") as fh:
                    fh.write(b"#!/bin/true\n")
                os.chmod(os.path.join(s, "cap"), 0o755)
                subprocess.run(["setcap", "cap_net_raw,cap_net_bind_service+ep",
                                os.path.join(s, "cap")], check=True)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def copy(self):
        TestXattrs.n += 1
        dst = os.path.join(self.tmp, "dst%d" % self.n)
        subprocess.run(["cp", "-a", self.src, dst], check=True)
        return dst

    def run_cmp(self, dst, *args):
        r = subprocess.run([sys.executable, TREECMP, self.src, dst] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return r.returncode, r.stdout.decode("utf-8", "replace")

    def assertDiff(self, dst, kind, rsync_too=True):
        """Reported by the walk (with and without rsync beside it), and by
        rsync -AX alone; gone with --no-xattrs."""
        rc, out = self.run_cmp(dst, "--no-rsync")
        self.assertEqual(rc, 1, out)
        self.assertIn(kind, out)
        if rsync_too:
            rc, out2 = self.run_cmp(dst)
            self.assertEqual(rc, 1, out2)
            self.assertRegex(out2, r"rsync: \.[fdL]\S*[ax]")
        rc, out3 = self.run_cmp(dst, "--no-xattrs")
        self.assertEqual(rc, 0, out3)
        return out

    def test_the_source_has_them(self):
        # the fixture is what the other tests believe it is
        s = self.src
        self.assertEqual(os.getxattr(os.path.join(s, "user"), "user.comment"), b"hello")
        self.assertEqual(stat.S_IMODE(os.lstat(os.path.join(s, "masked")).st_mode), 0o660)
        self.assertIn(treecmp.ACL_DEFAULT, os.listxattr(os.path.join(s, "dir")))
        if IS_ROOT and have("setcap"):
            self.assertIn(treecmp.CAPABILITY, os.listxattr(os.path.join(s, "cap")))

    def test_equal_copies(self):
        dst = self.copy()
        rc, out = self.run_cmp(dst)
        self.assertEqual(rc, 0, out)
        self.assertIn("xattrs compared", out)
        rs = os.path.join(self.tmp, "rs")
        subprocess.run(["rsync", "-aAXH", "--numeric-ids", self.src + "/", rs + "/"],
                       check=True)
        rc, out = self.run_cmp(rs)
        self.assertEqual(rc, 0, out)

    def test_copy_without_xattrs_differs(self):
        # cp -r --preserve=mode,timestamps,ownership,links keeps neither
        # xattrs nor ACLs (the mask shows in the mode, as 0660)
        TestXattrs.n += 1
        dst = os.path.join(self.tmp, "bare%d" % self.n)
        subprocess.run(["cp", "-r", "--no-preserve=all",
                        "--preserve=mode,timestamps,ownership,links", "-P",
                        self.src, dst], check=True)
        for dp, dns, fns in os.walk(dst):
            for n in dns + fns:
                for x in os.listxattr(os.path.join(dp, n), follow_symlinks=False):
                    os.removexattr(os.path.join(dp, n), x, follow_symlinks=False)
        for x in os.listxattr(dst):
            os.removexattr(dst, x)
        out = self.assertDiff(dst, "xattr missing")
        self.assertIn("acl differs: masked access src=u::rw-,u:65534:rw-,g::r--,m::rw-,o::--- "
                      "dst=(none)", out)
        self.assertNotIn("mode differs: masked", out)    # 0660 both: only the ACL tells
        self.assertIn("acl differs: dir default", out)

    def test_value_differs(self):
        dst = self.copy()
        os.setxattr(os.path.join(dst, "user"), "user.comment", b"hellO")
        out = self.assertDiff(dst, "xattr differs: user user.comment src=b'hello' dst=b'hellO'")

    def test_missing_and_extra(self):
        dst = self.copy()
        os.removexattr(os.path.join(dst, "user"), "user.empty")
        self.assertDiff(dst, "xattr missing: user user.empty (only in src)")
        dst = self.copy()
        os.setxattr(os.path.join(dst, "plain"), "user.new", b"x")
        self.assertDiff(dst, "xattr extra: plain user.new (only in dst)")

    def test_on_a_directory_and_the_root(self):
        dst = self.copy()
        os.setxattr(os.path.join(dst, "dir"), "user.onadir", b"other")
        self.assertDiff(dst, "xattr differs: dir user.onadir")
        dst = self.copy()
        os.setxattr(dst, "user.root", b"r")
        self.assertDiff(dst, "xattr extra: . user.root")

    def test_access_acl(self):
        dst = self.copy()
        subprocess.run(["setfacl", "-m", "u:nobody:rw", os.path.join(dst, "acl")], check=True)
        os.chmod(os.path.join(dst, "acl"), 0o640)    # the mode (mask) as in src
        out = self.assertDiff(dst, "acl differs: acl access")
        self.assertIn("src=u::rw-,u:65534:r--,g::r--,m::r--,o::---", out)
        dst = self.copy()
        subprocess.run(["setfacl", "-b", os.path.join(dst, "masked")], check=True)
        os.chmod(os.path.join(dst, "masked"), 0o660)
        self.assertDiff(dst, "acl differs: masked access")

    def test_default_acl(self):
        dst = self.copy()
        subprocess.run(["setfacl", "-k", os.path.join(dst, "dir")], check=True)
        out = self.assertDiff(dst, "acl differs: dir default src=u::rwx,u:65534:r-x")
        self.assertIn("dst=(none)", out)

    def test_symlink_xattr(self):
        if not IS_ROOT:
            self.skipTest("trusted.* needs root")
        dst = self.copy()
        os.removexattr(os.path.join(dst, "link"), "trusted.onlink", follow_symlinks=False)
        # the target (plain) is untouched: the link's own attribute is read
        self.assertDiff(dst, "xattr missing: link trusted.onlink")

    def test_trusted_and_security(self):
        if not IS_ROOT:
            self.skipTest("needs root")
        dst = self.copy()
        os.setxattr(os.path.join(dst, "user"), "trusted.t", b"changed")
        self.assertDiff(dst, "xattr differs: user trusted.t")
        dst = self.copy()
        os.removexattr(os.path.join(dst, "user"), "security.treecmp")
        self.assertDiff(dst, "xattr missing: user security.treecmp")

    def test_capability(self):
        if not IS_ROOT or not have("setcap"):
            self.skipTest("needs root and setcap")
        dst = self.copy()
        subprocess.run(["setcap", "cap_net_raw+ep", os.path.join(dst, "cap")], check=True)
        out = self.assertDiff(dst, "capability differs: cap src=v2 permitted=0x2400")
        self.assertIn("dst=v2 permitted=0x2000 inheritable=0x0 effective=yes", out)
        dst = self.copy()
        # chown clears file capabilities: the classic way to lose them
        os.chown(os.path.join(dst, "cap"), 0, 0)
        self.assertDiff(dst, "capability differs: cap src=v2 permitted=0x2400 inheritable=0x0 "
                        "effective=yes dst=(none)")

    def test_text_helpers(self):
        self.assertEqual(treecmp.acl_text(None), "(none)")
        self.assertIn("malformed", treecmp.acl_text(b"\x02\x00\x00\x00\x01"))
        self.assertIn("malformed", treecmp.acl_text(b"\x01\x00\x00\x00"))
        v1 = (0x01000000).to_bytes(4, "little") + (5).to_bytes(4, "little") + bytes(4)
        self.assertEqual(treecmp.cap_text(v1), "v1 permitted=0x5 inheritable=0x0 effective=no")
        v3 = ((0x03000000 | 1).to_bytes(4, "little") + (1).to_bytes(4, "little") + bytes(4)
              + (1).to_bytes(4, "little") + bytes(4) + (1000).to_bytes(4, "little"))
        self.assertEqual(treecmp.cap_text(v3),
                         "v3 permitted=0x100000001 inheritable=0x0 effective=yes rootid=1000")
        self.assertFalse(treecmp.xattr_compared("system.nfs4_acl"))
        self.assertTrue(treecmp.xattr_compared("system.posix_acl_default"))
        self.assertTrue(treecmp.xattr_compared("security.capability"))

    def test_destination_without_xattr_support(self):
        # ramfs has no xattr handlers at all: every setxattr is ENOTSUP
        if not IS_ROOT:
            self.skipTest("needs root to mount a ramfs")
        mnt = os.path.join(self.tmp, "ramfs")
        os.mkdir(mnt)
        r = subprocess.run(["mount", "-t", "ramfs", "tools-treecmp-ramfs", mnt],
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a ramfs: " + r.stderr.strip())
        try:
            dst = os.path.join(mnt, "dst")
            # cp -a warns about what it cannot preserve, and goes on
            subprocess.run(["cp", "-a", self.src, dst], stderr=subprocess.DEVNULL)
            with self.assertRaises(OSError) as cm:
                os.setxattr(os.path.join(dst, "user"), "user.x", b"1")
            self.assertIn(cm.exception.errno, (errno.ENOTSUP, errno.EOPNOTSUPP))
            # a refused set reads as empty: the source's show as missing
            self.assertEqual(treecmp.read_xattrs(os.fsencode(os.path.join(dst, "user"))), {})
            rc, out = self.run_cmp(dst, "--no-rsync")
            self.assertEqual(rc, 1, out)
            self.assertIn("xattr missing: user user.comment", out)
            self.assertIn("acl differs: masked access", out)
            self.assertNotIn("error", out)
        finally:
            subprocess.run(["umount", mnt], check=True)

if __name__ == "__main__":
    unittest.main()
