#!/usr/bin/env python3
"""Tests of powercutfs itself (README.md beside this file): each crash rule
on its own, the control file, and a seeded mix of operations checked
against a model of the rules written here independently of the C code.

    POWERCUTFS=build/tests/powercutfs python3 tests/tools/powercut/test_powercut.py [-v]

Needs root and /dev/fuse; skipped (with the reason) otherwise. Every test
mounts in its own temporary directory under /tmp and unmounts at the end.
"""

import errno
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from powercut import PowercutFS, PowercutError, unavailable  # noqa: E402

SEEDS = [int(s) for s in os.environ.get("POWERCUT_SEEDS", "1 2 3 4 5 6 7 8").split()]
WHY = unavailable()


def write(path, data, mode=0o644, fsync=False, trunc=True):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if trunc else 0), mode)
    try:
        os.write(fd, data)
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def fsync_path(path, data_only=False):
    fd = os.open(path, os.O_RDONLY)
    try:
        (os.fdatasync if data_only else os.fsync)(fd)
    finally:
        os.close(fd)


def read(path):
    with open(path, "rb") as fh:
        return fh.read()


@unittest.skipIf(WHY, WHY)
class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="powercut-test.")
        self.backing = os.path.join(self.tmp, "backing")
        self.mnt = os.path.join(self.tmp, "mnt")
        os.mkdir(self.backing)
        os.mkdir(self.mnt)
        self.fs = None

    def tearDown(self):
        if self.fs is not None:
            try:
                self.fs.unmount()
            except PowercutError:
                pass
            self.fs.close()
        shutil.rmtree(self.tmp)

    def mount(self):
        if self.fs is None:
            self.fs = PowercutFS(self.backing, self.mnt)
        return self.fs.mount()

    def m(self, *p):
        return os.path.join(self.mnt, *p)

    def b(self, *p):
        return os.path.join(self.backing, *p)

    def cut_and_reboot(self):
        """The cut (unless it happened), its own report checked, then a
        remount."""
        if not self.fs.is_cut():
            self.fs.cut()
        st = self.fs.status()
        self.assertEqual(st["state"], "cut")
        self.assertEqual(st["errors"], 0, self.fs.logtext())
        self.fs.unmount()
        # the roll-back is complete: nothing of the state is left
        self.assertFalse(os.path.exists(self.backing + ".powercut"))
        self.fs.mount()


class TestRules(Base):
    def test_durable_replace_survives(self):
        # the pattern fsync = true must use: write, fsync, rename, fsync dir
        write(self.b("f"), b"old contents")
        self.mount()
        write(self.m(".tmp"), b"new contents", fsync=True)
        os.rename(self.m(".tmp"), self.m("f"))
        fsync_path(self.mnt)
        self.cut_and_reboot()
        self.assertEqual(read(self.m("f")), b"new contents")
        self.assertEqual(sorted(os.listdir(self.m())), ["f"])

    def test_write_without_fsync_is_lost(self):
        write(self.b("f"), b"durable bytes")
        write(self.b("g"), b"durable too")
        self.mount()
        write(self.m("f"), b"newer, and longer than before")
        with open(self.m("g"), "ab") as fh:
            fh.write(b" appended")
        self.cut_and_reboot()
        self.assertEqual(read(self.m("f")), b"durable bytes")
        self.assertEqual(read(self.m("g")), b"durable too")

    def test_fsync_and_fdatasync_keep_data(self):
        write(self.b("f"), b"old")
        write(self.b("g"), b"old")
        self.mount()
        write(self.m("f"), b"new f")
        fsync_path(self.m("f"))
        write(self.m("g"), b"new g")
        fsync_path(self.m("g"), data_only=True)
        write(self.m("f"), b"after the fsync")      # lost again
        self.cut_and_reboot()
        self.assertEqual(read(self.m("f")), b"new f")
        self.assertEqual(read(self.m("g")), b"new g")

    def test_new_file_renamed_without_its_fsync_is_empty(self):
        write(self.b("f"), b"old contents")
        self.mount()
        old_ino = os.stat(self.m("f")).st_ino
        write(self.m(".tmp"), b"new contents")      # no fsync of the file
        os.rename(self.m(".tmp"), self.m("f"))
        fsync_path(self.mnt)                        # the rename is durable
        self.cut_and_reboot()
        st = os.stat(self.m("f"))
        self.assertEqual(st.st_size, 0)             # ext4 noauto_da_alloc
        self.assertNotEqual(st.st_ino, old_ino)

    def test_rename_without_dir_fsync_is_rolled_back(self):
        write(self.b("f"), b"old contents")
        self.mount()
        write(self.m(".tmp"), b"new contents", fsync=True)
        os.rename(self.m(".tmp"), self.m("f"))      # no fsync of the dir
        self.assertEqual(read(self.m("f")), b"new contents")
        self.cut_and_reboot()
        self.assertEqual(read(self.m("f")), b"old contents")
        self.assertEqual(os.listdir(self.m()), ["f"])   # .tmp was never durable

    def test_durable_temporary_comes_back_under_its_name(self):
        write(self.b("f"), b"old")
        self.mount()
        write(self.m(".tmp"), b"")
        fsync_path(self.mnt)                        # .tmp durable, empty
        write(self.m(".tmp"), b"new", fsync=True)
        os.rename(self.m(".tmp"), self.m("f"))
        self.cut_and_reboot()
        self.assertEqual(read(self.m("f")), b"old")
        self.assertEqual(read(self.m(".tmp")), b"new")

    def test_unlink_rmdir_mkdir_rolled_back(self):
        os.makedirs(self.b("keep", "sub"))
        write(self.b("keep", "file"), b"kept")
        os.mkdir(self.b("empty"))
        self.mount()
        os.unlink(self.m("keep", "file"))
        os.rmdir(self.m("empty"))
        os.mkdir(self.m("new"))
        write(self.m("new", "x"), b"x", fsync=True)
        fsync_path(self.m("new"))                   # new's own listing, not its name
        self.cut_and_reboot()
        self.assertEqual(read(self.m("keep", "file")), b"kept")
        self.assertTrue(os.path.isdir(self.m("empty")))
        self.assertFalse(os.path.exists(self.m("new")))
        self.assertTrue(os.path.isdir(self.m("keep", "sub")))

    def test_dir_fsync_makes_them_durable(self):
        write(self.b("gone"), b"x")
        os.mkdir(self.b("emptied"))
        self.mount()
        os.unlink(self.m("gone"))
        os.rmdir(self.m("emptied"))
        os.mkdir(self.m("new"))
        write(self.m("new", "x"), b"x", fsync=True)
        fsync_path(self.m("new"))
        fsync_path(self.mnt)
        self.cut_and_reboot()
        self.assertEqual(sorted(os.listdir(self.m())), ["new"])
        self.assertEqual(read(self.m("new", "x")), b"x")

    def test_cross_directory_rename_is_one_transaction(self):
        for side in ("src", "dst", None):
            with self.subTest(fsynced=side):
                shutil.rmtree(self.backing)
                os.makedirs(self.b("a", "sub"))
                os.mkdir(self.b("b"))
                write(self.b("a", "x"), b"x")
                write(self.b("a", "sub", "y"), b"y")
                self.mount()
                os.rename(self.m("a", "x"), self.m("b", "x"))
                os.rename(self.m("a", "sub"), self.m("b", "sub"))
                if side:
                    fsync_path(self.m("a" if side == "src" else "b"))
                self.cut_and_reboot()
                moved = side is not None
                self.assertEqual(os.path.exists(self.m("b", "x")), moved)
                self.assertEqual(os.path.exists(self.m("a", "x")), not moved)
                self.assertEqual(read(self.m("b" if moved else "a", "sub", "y")), b"y")
                self.assertEqual(os.path.exists(self.m("a", "sub")), not moved)
                self.fs.unmount()

    def test_chain_of_moves_is_never_in_two_places(self):
        for d in "abc":
            os.mkdir(self.b(d))
        write(self.b("a", "x"), b"x")
        self.mount()
        os.rename(self.m("a", "x"), self.m("b", "x"))
        os.rename(self.m("b", "x"), self.m("c", "x"))
        fsync_path(self.m("c"))                     # only the last hop's target
        self.cut_and_reboot()
        where = [d for d in "abc" if os.path.exists(self.m(d, "x"))]
        self.assertEqual(where, ["c"])
        self.assertEqual(os.stat(self.m("c", "x")).st_nlink, 1)

    def test_hard_links(self):
        write(self.b("f"), b"data")
        self.mount()
        os.link(self.m("f"), self.m("g"))
        os.link(self.m("f"), self.m("h"))
        fsync_path(self.mnt)
        os.link(self.m("f"), self.m("lost"))
        self.cut_and_reboot()
        self.assertEqual(sorted(os.listdir(self.m())), ["f", "g", "h"])
        st = [os.stat(self.m(n)) for n in "fgh"]
        self.assertEqual(len({s.st_ino for s in st}), 1)
        self.assertEqual(st[0].st_nlink, 3)
        self.assertEqual(read(self.m("h")), b"data")

    def test_attributes_need_the_file_fsync(self):
        write(self.b("f"), b"x", mode=0o644)
        write(self.b("g"), b"x", mode=0o644)
        os.utime(self.b("f"), ns=(0, 10**18))
        os.utime(self.b("g"), ns=(0, 10**18))
        self.mount()
        for n in "fg":
            os.chmod(self.m(n), 0o600)
            os.utime(self.m(n), ns=(0, 2 * 10**18 + 7))
        fsync_path(self.m("g"))
        self.cut_and_reboot()
        f, g = os.stat(self.m("f")), os.stat(self.m("g"))
        self.assertEqual(stat.S_IMODE(f.st_mode), 0o644)
        self.assertEqual(f.st_mtime_ns, 10**18)
        self.assertEqual(stat.S_IMODE(g.st_mode), 0o600)
        self.assertEqual(g.st_mtime_ns, 2 * 10**18 + 7)

    def test_rolled_back_directory_keeps_its_mtime(self):
        os.mkdir(self.b("d"))
        write(self.b("d", "f"), b"x")
        os.utime(self.b("d"), ns=(0, 10**18 + 3))
        mt = os.stat(self.b("d")).st_mtime_ns
        self.mount()
        write(self.m("d", "new"), b"y")
        os.unlink(self.m("d", "f"))
        self.cut_and_reboot()
        self.assertEqual(os.listdir(self.m("d")), ["f"])
        self.assertEqual(os.stat(self.m("d")).st_mtime_ns, mt)

    def test_new_files_owned_by_their_creator(self):
        os.chmod(self.tmp, 0o755)
        os.chmod(self.backing, 0o1777)
        self.mount()
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "sh", "-c", "echo hi > '%s'" % self.m("mine")],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(self.m("mine"))
        self.assertEqual((st.st_uid, st.st_gid), (65534, 65534))
        # default_permissions: the kernel checks modes for other users
        os.chmod(self.m("mine"), 0o600)
        os.chown(self.m("mine"), 0, 0)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                            "cat", self.m("mine")], capture_output=True, text=True)
        self.assertNotEqual(r.returncode, 0)


class TestControl(Base):
    def test_frozen_after_the_cut(self):
        write(self.b("f"), b"x")
        self.mount()
        self.fs.cut()
        for call in (lambda: os.stat(self.m("f")), lambda: os.listdir(self.mnt),
                     lambda: open(self.m("new"), "wb"), lambda: os.mkdir(self.m("d"))):
            with self.assertRaises(OSError) as cm:
                call()
            self.assertEqual(cm.exception.errno, errno.EIO)
        self.assertEqual(self.fs.status()["state"], "cut")

    def test_arm_cuts_instead_of_the_next_operation(self):
        write(self.b("f"), b"old")
        self.mount()
        self.fs.arm(2)
        fd = os.open(self.m("f"), os.O_WRONLY)      # not a mutating operation
        os.write(fd, b"new")                        # 1
        os.fsync(fd)                                # 2
        os.close(fd)
        self.assertFalse(self.fs.is_cut())
        with self.assertRaises(OSError) as cm:
            os.rename(self.m("f"), self.m("g"))     # 3: the cut instead
        self.assertEqual(cm.exception.errno, errno.EIO)
        self.assertTrue(self.fs.wait_cut(timeout=5))
        self.assertEqual(self.fs.status()["errors"], 0)
        self.fs.reboot()
        self.assertEqual(os.listdir(self.mnt), ["f"])
        self.assertEqual(read(self.m("f")), b"new")

    def test_clean_unmount_keeps_everything(self):
        self.mount()
        write(self.m("f"), b"never fsynced")
        os.mkdir(self.m("d"))
        self.fs.unmount()
        self.assertEqual(read(self.b("f")), b"never fsynced")
        self.assertTrue(os.path.isdir(self.b("d")))
        self.assertFalse(os.path.exists(self.backing + ".powercut"))

    def test_sync_command_is_a_checkpoint(self):
        self.mount()
        write(self.m("before"), b"1")
        self.fs.sync()
        self.assertEqual(self.fs.status()["unsynced_files"], 0)
        write(self.m("after"), b"2")
        write(self.m("before"), b"changed")
        self.cut_and_reboot()
        self.assertEqual(os.listdir(self.mnt), ["before"])
        self.assertEqual(read(self.m("before")), b"1")

    def test_status_counts(self):
        write(self.b("f"), b"x")
        self.mount()
        st = self.fs.status()
        self.assertEqual((st["state"], st["unsynced_files"], st["unsynced_dirs"]),
                         ("running", 0, 0))
        write(self.m("f"), b"y")
        write(self.m("g"), b"z")
        st = self.fs.status()
        self.assertEqual((st["unsynced_files"], st["unsynced_dirs"]), (2, 1))
        self.assertGreaterEqual(st["ops"], 3)

    def test_control_file_is_reserved_and_hidden(self):
        self.mount()
        self.assertNotIn(".powercut-ctl", os.listdir(self.mnt))
        for call in (lambda: os.unlink(self.m(".powercut-ctl")),
                     lambda: os.rename(self.m(".powercut-ctl"), self.m("x")),
                     lambda: os.mkdir(self.m(".powercut-ctl"))):
            with self.assertRaises(OSError):
                call()
        with self.assertRaises(OSError) as cm:
            self.fs.command("bogus")
        self.assertEqual(cm.exception.errno, errno.EINVAL)

    def test_refuses_xattrs_and_tmpfile(self):
        # a destination that cannot hold xattrs (issue 12), and no O_TMPFILE
        write(self.b("f"), b"x")
        self.mount()
        with self.assertRaises(OSError) as cm:
            os.setxattr(self.m("f"), "user.x", b"1")
        self.assertIn(cm.exception.errno, (errno.ENOTSUP, errno.EOPNOTSUPP))
        try:
            self.assertEqual(os.listxattr(self.m("f")), [])
        except OSError as e:
            self.assertIn(e.errno, (errno.ENOTSUP, errno.EOPNOTSUPP))
        with self.assertRaises(OSError) as cm:
            os.open(self.mnt, os.O_TMPFILE | os.O_WRONLY, 0o600)
        self.assertIn(cm.exception.errno, (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EISDIR))

    def test_leftover_state_is_refused(self):
        os.mkdir(self.backing + ".powercut")
        with self.assertRaises(PowercutError) as cm:
            self.mount()
        self.assertIn("neither cut nor unmounted", str(cm.exception))
        os.rmdir(self.backing + ".powercut")


# ---------------------------------------------------------------- the model
class Model:
    """The README's rules, stated directly: per inode its data, mode and
    durable data/mode; per directory its listing and durable listing;
    the pending name operations, made durable by a directory fsync with
    every earlier one on the same inodes. Ids are the model's inodes."""

    def __init__(self):
        self.kind = {0: "d"}
        self.data, self.mode, self.ddata, self.dmode, self.target = {}, {}, {}, {}, {}
        self.dirs = {0: {}}
        self.dur = {0: {}}
        self.parent = {0: None}
        self.pending = []
        self.next = 1

    def new(self, kind):
        i = self.next
        self.next += 1
        self.kind[i] = kind
        return i

    # the volatile side
    def path(self, d):
        parts = []
        while self.parent[d] is not None:
            p, n = self.parent[d]
            parts.append(n)
            d = p
        return "/".join(reversed(parts))

    def create(self, d, name, data, mode=0o644):
        i = self.new("f")
        self.data[i], self.mode[i] = data, mode
        self.ddata[i], self.dmode[i] = b"", mode
        self.dirs[d][name] = i
        return i

    def symlink(self, d, name, target):
        i = self.new("l")
        self.target[i] = target
        self.dirs[d][name] = i

    def mkdir(self, d, name):
        i = self.new("d")
        self.dirs[i], self.dur[i] = {}, {}
        self.parent[i] = (d, name)
        self.dirs[d][name] = i
        return i

    def rename(self, d1, n1, d2, n2):
        i = self.dirs[d1].pop(n1)
        victim = self.dirs[d2].get(n2)
        self.dirs[d2][n2] = i
        if self.kind[i] == "d":
            self.parent[i] = (d2, n2)
        self.pending.append(("rename", d1, n1, d2, n2, i, victim))

    def link(self, i, d, n):
        self.dirs[d][n] = i
        self.pending.append(("link", None, None, d, n, i, None))

    def unlink(self, d, n):
        i = self.dirs[d].pop(n)
        self.pending.append(("unlink", d, n, None, None, i, None))

    def fsync_file(self, i, data_only=False):
        self.ddata[i] = self.data[i]
        if not data_only:
            self.dmode[i] = self.mode[i]

    def fsync_dir(self, d):
        due, inodes = set(), set()
        for k in range(len(self.pending) - 1, -1, -1):
            _, d1, _, d2, _, i, j = self.pending[k]
            if d in (d1, d2) or i in inodes or (j is not None and j in inodes):
                due.add(k)
                inodes.add(i)
                if j is not None:
                    inodes.add(j)
        for k, (op, d1, n1, d2, n2, i, j) in enumerate(self.pending):
            if k not in due:
                continue
            if op in ("rename", "unlink") and self.dur[d1].get(n1) == i:
                del self.dur[d1][n1]
            if op in ("rename", "link"):
                self.dur[d2][n2] = i
        self.pending = [o for k, o in enumerate(self.pending) if k not in due]
        self.dur[d] = dict(self.dirs[d])

    def checkpoint(self):
        """What a remount starts from: the durable state, all clean."""
        self.dirs = {d: dict(l) for d, l in self.dur.items()}
        self.data = dict(self.ddata)
        self.mode = dict(self.dmode)
        self.pending = []
        # parents of the directories still reachable
        self.parent = {0: None}
        stack = [0]
        while stack:
            d = stack.pop()
            for n, i in self.dirs[d].items():
                if self.kind[i] == "d":
                    self.parent[i] = (d, n)
                    stack.append(i)
        for d in list(self.dirs):
            if d not in self.parent:
                del self.dirs[d]
                del self.dur[d]

    def durable_tree(self):
        """{path: (kind, bytes or target, mode, id)} after a cut."""
        out = {}
        stack = [(0, "")]
        while stack:
            d, p = stack.pop()
            for n, i in self.dur[d].items():
                q = p + "/" + n if p else n
                k = self.kind[i]
                if k == "d":
                    out[q] = ("d", None, None, i)
                    stack.append((i, q))
                elif k == "l":
                    out[q] = ("l", self.target[i], None, i)
                else:
                    out[q] = ("f", self.ddata[i], self.dmode[i], i)
        return out


def real_tree(root):
    out = {}
    for dp, dns, fns in os.walk(root):
        for n in dns + fns:
            p = os.path.join(dp, n)
            q = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                out[q] = ("d", None, None, st.st_ino)
            elif stat.S_ISLNK(st.st_mode):
                out[q] = ("l", os.readlink(p), None, st.st_ino)
            else:
                out[q] = ("f", read(p), stat.S_IMODE(st.st_mode), st.st_ino)
    return out


class Driver:
    """Random operations through the mount and on the model at once."""

    def __init__(self, model, mnt, rng):
        self.m, self.mnt, self.rng = model, mnt, rng
        self.names = 0
        self.log = []

    def p(self, d, n=None):
        base = os.path.join(self.mnt, self.m.path(d))
        return os.path.join(base, n) if n is not None else base

    def name(self):
        self.names += 1
        return "n%d" % self.names

    def dirs(self):
        return sorted(self.m.parent)

    def entries(self, kind):
        out = []
        for d in self.dirs():
            for n, i in sorted(self.m.dirs[d].items()):
                if self.m.kind[i] == kind:
                    out.append((d, n, i))
        return out

    def data(self):
        return bytes(self.rng.getrandbits(8) for _ in range(self.rng.randrange(0, 3000)))

    def inside(self, d, x):
        while d is not None:
            if d == x:
                return True
            d = self.m.parent[d][0] if self.m.parent[d] else None
        return False

    def step(self):
        r, m = self.rng, self.m
        files, subdirs = self.entries("f"), [e for e in self.entries("d")]
        op = r.choice(["create", "create", "write", "write", "fsync", "fdatasync",
                       "chmod", "fsyncdir", "fsyncdir", "rename", "rename",
                       "renamedir", "unlink", "mkdir", "rmdir", "link", "symlink"])
        d = r.choice(self.dirs())
        if op == "create" or (not files and op in ("write", "fsync", "fdatasync", "chmod",
                                                     "rename", "unlink", "link")):
            n, data = self.name(), self.data()
            write(self.p(d, n), data)
            m.create(d, n, data)
            op = "create"
        elif op == "write":
            fd_, n, i = r.choice(files)
            data = self.data()
            write(self.p(fd_, n), data)
            m.data[i] = data
        elif op in ("fsync", "fdatasync"):
            fd_, n, i = r.choice(files)
            fsync_path(self.p(fd_, n), data_only=op == "fdatasync")
            m.fsync_file(i, data_only=op == "fdatasync")
        elif op == "chmod":
            fd_, n, i = r.choice(files)
            mode = r.choice([0o600, 0o640, 0o644, 0o755])
            os.chmod(self.p(fd_, n), mode)
            m.mode[i] = mode
        elif op == "fsyncdir":
            fsync_path(self.p(d))
            m.fsync_dir(d)
        elif op == "rename":
            d1, n1, i = r.choice(files)
            targets = [(d2, n2) for d2, n2, j in files if j != i]
            if targets and r.random() < 0.4:
                d2, n2 = r.choice(targets)
            else:
                d2, n2 = d, self.name()
            os.rename(self.p(d1, n1), self.p(d2, n2))
            m.rename(d1, n1, d2, n2)
        elif op == "renamedir" and subdirs:
            d1, n1, x = r.choice(subdirs)
            cands = [t for t in self.dirs() if not self.inside(t, x)]
            d2 = r.choice(cands)
            n2 = self.name()
            os.rename(self.p(d1, n1), self.p(d2, n2))
            m.rename(d1, n1, d2, n2)
        elif op == "unlink":
            d1, n1, _ = r.choice(files)
            os.unlink(self.p(d1, n1))
            m.unlink(d1, n1)
        elif op == "rmdir" and any(not m.dirs[x] for _, _, x in subdirs):
            d1, n1, x = r.choice([e for e in subdirs if not m.dirs[e[2]]])
            os.rmdir(self.p(d1, n1))
            m.unlink(d1, n1)
            del m.parent[x]
        elif op == "link":
            d1, n1, i = r.choice(files)
            n2 = self.name()
            os.link(self.p(d1, n1), self.p(d, n2))
            m.link(i, d, n2)
        elif op == "symlink":
            n, t = self.name(), "target-%d" % r.randrange(100)
            os.symlink(t, self.p(d, n))
            m.symlink(d, n, t)
        else:
            n = self.name()
            os.mkdir(self.p(d, n))
            m.mkdir(d, n)
            op = "mkdir"
        self.log.append(op)


class TestSeededMix(Base):
    """Random operations, a cut at a seeded moment, the backing dir
    compared with the model's durable state; then a second round on the
    remounted result."""

    def check(self, model, seed, rnd):
        got, want = real_tree(self.backing), model.durable_tree()
        ctx = "seed %d round %d" % (seed, rnd)
        self.assertEqual(sorted(got), sorted(want), ctx)
        for q in want:
            self.assertEqual(got[q][:3], want[q][:3], "%s: %s" % (ctx, q))
        # hard-link structure: the same partition of names by inode
        part = lambda t: sorted(sorted(q for q in t if t[q][3] == i and t[q][0] == "f")
                                for i in {v[3] for v in t.values() if v[0] == "f"})
        self.assertEqual(part(got), part(want), ctx)

    def test_seeded_mix(self):
        lost = rolled_back = 0
        for seed in SEEDS:
            with self.subTest(seed=seed):
                try:
                    shutil.rmtree(self.backing)
                    shutil.rmtree(self.backing + ".powercut", ignore_errors=True)
                    os.mkdir(self.backing)
                    rng = random.Random(seed)
                    model = Model()
                    # a durable starting tree, made before the mount
                    for k in range(4):
                        n = "start%d" % k
                        data = b"start %d " % k * 50
                        write(self.b(n), data)
                        i = model.create(0, n, data)
                        model.fsync_file(i)
                    os.mkdir(self.b("dir"))
                    model.mkdir(0, "dir")
                    model.fsync_dir(0)
                    self.mount()
                    for rnd in (1, 2):
                        drv = Driver(model, self.mnt, rng)
                        drv.names = 1000 * rnd
                        for _ in range(rng.randrange(5, 150)):
                            drv.step()
                        st = self.fs.status()
                        self.assertEqual(st["state"], "running")
                        self.fs.cut()
                        after = self.fs.status()
                        lost += after["restored_data"]
                        rolled_back += after["restored_dirs"]
                        self.cut_and_reboot()
                        self.check(model, seed, rnd)
                        model.checkpoint()
                finally:
                    if self.fs is not None:
                        self.fs.unmount()
        # the cuts did throw things away (else the comparison proves little)
        self.assertGreater(lost, 0)
        self.assertGreater(rolled_back, 0)


if __name__ == "__main__":
    unittest.main()
