#!/usr/bin/env python3
"""Integration tests for `treesyncd --once --dry-run` and `treesyncctl diff
NAME`: a destination that differs from its source in every way the rules
know (missing, extra, extra tree, content of the same size and mtime,
size, mode, owner, mtime only, symlink target, type changes, a split
hard link) must be listed exactly once per difference with the item code
treesyncd(8) documents, and nothing in it may change: a walk of the
destination before and after compares bytes, modes, owners, ns mtimes,
inode numbers and link counts, and finds no new entry.

Environment: TREESYNCD, TREESYNCCTL, TREESYNC_SOURCE_ROOT, TREESYNC_WRAP
(valgrind: every treesyncd runs under it, the daemon must exit 0 at
SIGTERM).
"""
import collections
import hashlib
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemonlib import (DaemonCase, SLOW, TREESYNCCTL, TREESYNCD, WRAP,  # noqa
                       write)

AS_ROOT = os.geteuid() == 0
OTHER_ID = 12345        # an owner nobody on the machine has


def walk(root):
    """Everything a dry run must not change, per path below root."""
    seen = {}

    def visit(path, rel):
        st = os.lstat(path)
        what = None
        if stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                what = hashlib.sha256(f.read()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            what = os.readlink(path)
        seen[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_size,
                     st.st_mtime_ns, st.st_ino, st.st_nlink, what)
        if stat.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(path)):
                visit(os.path.join(path, name),
                      os.path.join(rel, name) if rel else name)
    visit(root, "")
    return seen


def make_source(src):
    """The source every test starts from (compare = "hash" decides)."""
    t = 1_600_000_000_123_456_789
    files = {
        "missing.txt": b"the destination lacks me\n",
        "same_size.txt": b"AAAA",
        "grown.txt": b"a longer content than the destination's\n",
        "mode.txt": b"mode\n",
        "owner.txt": b"owner\n",
        "touched.txt": b"touched\n",
        "file_vs_dir": b"a file where the destination has a directory\n",
        "hard1": b"two names, one inode\n",
        "sub/deep.txt": b"equal on both sides\n",
        "dir_vs_link/inner": b"inside a directory that is a symlink there\n",
    }
    for rel, data in files.items():
        write(os.path.join(src, rel), data, 0o644)
    os.link(os.path.join(src, "hard1"), os.path.join(src, "hard2"))
    os.symlink("target-a", os.path.join(src, "link"))
    for rel in list(files) + ["hard2"]:
        os.utime(os.path.join(src, rel), ns=(t, t))
    for d in ("sub", "dir_vs_link", ""):
        os.chmod(os.path.join(src, d), 0o755)
        os.utime(os.path.join(src, d), ns=(t, t))


def damage(src, dst):
    """Makes dst, a mirror of src, differ in every way; returns the lines
    a dry run must list (one per difference)."""
    j = lambda *p: os.path.join(dst, *p)  # noqa: E731
    mtime = lambda rel: os.lstat(os.path.join(src, rel)).st_mtime_ns  # noqa
    expect = []
    os.remove(j("missing.txt"))
    expect.append(">f+++++++++ missing.txt")
    write(j("extra.txt"), b"gone from the source\n")
    expect.append("*deleting   extra.txt")
    write(j("extra_tree", "a", "b.txt"), b"b\n")
    write(j("extra_tree", "c.txt"), b"c\n")
    expect += ["*deleting   extra_tree/", "*deleting   extra_tree/a/",
               "*deleting   extra_tree/a/b.txt", "*deleting   extra_tree/c.txt"]
    # Same size, same mtime, other bytes: only a hash can tell.
    with open(j("same_size.txt"), "r+b") as f:
        f.write(b"BBBB")
    os.utime(j("same_size.txt"), ns=(mtime("same_size.txt"),) * 2)
    expect.append(">fc........ same_size.txt")
    with open(j("grown.txt"), "wb") as f:
        f.write(b"short\n")
    os.utime(j("grown.txt"), ns=(mtime("grown.txt"),) * 2)
    expect.append(">f.s....... grown.txt")
    os.chmod(j("mode.txt"), 0o600)
    expect.append(".f...p..... mode.txt")
    if AS_ROOT:
        os.chown(j("owner.txt"), OTHER_ID, OTHER_ID)
        expect.append(".f....og... owner.txt")
    t = mtime("touched.txt") + 5_000_000_001
    os.utime(j("touched.txt"), ns=(t, t))
    expect.append(".f..t...... touched.txt")
    os.remove(j("link"))
    os.symlink("target-b", j("link"))
    expect.append("cLc........ link -> target-a")
    os.remove(j("file_vs_dir"))
    write(j("file_vs_dir", "inside"), b"goes with the directory\n")
    expect.append(">f+++++++++ file_vs_dir (replaces a directory)")
    shutil.rmtree(j("dir_vs_link"))
    os.symlink("sub", j("dir_vs_link"))
    expect += ["cd+++++++++ dir_vs_link/ (replaces a symlink)",
               ">f+++++++++ dir_vs_link/inner"]
    # The source's two names share an inode, the destination's no more:
    # an equal copy (bytes, mode, owner, mtime) under the second name.
    os.remove(j("hard2"))
    shutil.copy2(j("hard1"), j("hard2"))
    expect.append("hf......... hard2 => hard1")
    # Directories both sides have keep the source's attributes, so that
    # only the differences above are differences.
    for d in ("sub", ""):
        os.utime(j(d), ns=(mtime(d),) * 2)
    return expect


class DryRun(DaemonCase):
    def dry_run(self, conf=None, expect_rc=None):
        p = subprocess.run(WRAP + [TREESYNCD, "--once", "--dry-run", "-c",
                                   conf or self.conf],
                           capture_output=True, text=True, timeout=300 * SLOW)
        if expect_rc is not None:
            self.assertEqual(p.returncode, expect_rc,
                             "exit %d\nstdout:\n%s\nstderr:\n%s\nlog:\n%s" % (
                                 p.returncode, p.stdout, p.stderr[-2000:],
                                 self.logtext()[-3000:]))
        return p

    def once(self):
        p = subprocess.run(WRAP + [TREESYNCD, "--once", "-c", self.conf],
                           capture_output=True, text=True, timeout=300 * SLOW)
        self.assertEqual(p.returncode, 0, p.stderr + self.logtext()[-3000:])

    def items(self, out):
        """The item lines of a one-destination answer (header checked)."""
        lines = out.splitlines()
        self.assertTrue(lines, "nothing listed")
        self.assertEqual(lines[0], "# t -> %s" % self.dst)
        self.assertFalse([x for x in lines[1:] if x.startswith("#")],
                         out)
        return lines[1:]

    def assert_lines(self, got, expect):
        self.assertEqual(collections.Counter(got),
                         collections.Counter(expect),
                         "\ngot:\n  %s\nexpected:\n  %s" % (
                             "\n  ".join(got), "\n  ".join(expect)))

    def assert_no_claims(self, since):
        """The log's normal lines after offset since claim nothing that
        was not done."""
        log = self.logtext()[since:]
        self.assertIn("dry run complete", log)
        claims = re.findall(r"^\S+ (?:info|warn) +t +(?:copy|mkdir|delete|"
                            r"attrs|symlink|link) .*$", log, re.M)
        self.assertEqual(claims, [])
        self.assertNotIn("full sync ->", log)

    def damaged(self, settings='compare = "hash";'):
        make_source(self.src)
        self.write_config([("t", self.src, [self.dst], settings)])
        self.once()
        return damage(self.src, self.dst)

    # -- tests -------------------------------------------------------------
    def test_every_difference_once(self):
        expect = self.damaged()
        before = walk(self.dst)
        since = len(self.logtext())
        p = self.dry_run(expect_rc=1)
        self.assert_lines(self.items(p.stdout), expect)
        self.assertEqual(walk(self.dst), before,
                         "the dry run changed the destination")
        self.assert_no_claims(since)
        # What it listed is what a real pass then does: after it, a dry
        # run lists nothing.
        self.once()
        self.assertEqual(self.compare(self.src, self.dst).returncode, 0)
        p = self.dry_run(expect_rc=0)
        self.assertEqual(p.stdout, "")

    def test_equal_destination_lists_nothing(self):
        make_source(self.src)
        self.write_config([("t", self.src, [self.dst], 'compare = "hash";')])
        self.once()
        before = walk(self.dst)
        p = self.dry_run(expect_rc=0)
        self.assertEqual(p.stdout, "")
        self.assertEqual(walk(self.dst), before)

    def test_mtime_compare(self):
        """compare = "mtime" (the default): an mtime difference is a copy,
        same-size other bytes with the same mtime are not seen (SPEC)."""
        self.damaged(settings="")
        before = walk(self.dst)
        p = self.dry_run(expect_rc=1)
        got = self.items(p.stdout)
        self.assertIn(">f..t...... touched.txt", got)
        self.assertFalse([x for x in got if x.endswith(" same_size.txt")],
                         got)
        self.assertEqual(walk(self.dst), before)

    def test_missing_destination_root(self):
        make_source(self.src)
        self.write_config()
        p = self.dry_run(expect_rc=1)
        got = self.items(p.stdout)
        self.assertEqual(got[0], "cd+++++++++ ./")
        self.assertIn(">f+++++++++ sub/deep.txt", got)
        self.assertIn("cL+++++++++ link -> target-a", got)
        self.assertFalse(os.path.lexists(self.dst), "the root was made")

    def test_max_delete_hold_reported(self):
        make_source(self.src)
        self.write_config([("t", self.src, [self.dst], "max_delete = 2;")])
        self.once()
        for i in range(5):
            write(os.path.join(self.dst, "old%d" % i), b"x")
        os.utime(self.dst, ns=(os.lstat(self.src).st_mtime_ns,) * 2)
        before = walk(self.dst)
        p = self.dry_run(expect_rc=1)
        got = self.items(p.stdout)
        self.assertEqual(
            [x for x in got if x.startswith("would hold:")],
            ["would hold: 5 deletes > max_delete 2: a full sync would "
             "stop deleting there and hold the pair's deletes"])
        self.assert_lines([x for x in got if x.startswith("*")],
                          ["*deleting   old%d" % i for i in range(5)])
        self.assertEqual(walk(self.dst), before)

    def test_emptied_and_vanished_source_held(self):
        make_source(self.src)
        self.write_config()
        self.once()
        before = walk(self.dst)
        for name in os.listdir(self.src):
            path = os.path.join(self.src, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        p = self.dry_run(expect_rc=1)
        self.assertEqual(self.items(p.stdout), [
            "would hold: source '%s' is empty while its destination is "
            "not: nothing done for this destination, nothing deleted" %
            self.src])
        os.rmdir(self.src)
        p = self.dry_run(expect_rc=1)
        self.assertEqual(self.items(p.stdout), [
            "would hold: source '%s' is gone (cannot be opened as a "
            "directory): nothing done for this destination, nothing "
            "deleted" % self.src])
        self.assertEqual(walk(self.dst), before)
        os.mkdir(self.src)      # for tearDown's sake

    def test_dry_run_needs_once(self):
        self.write_config()
        p = subprocess.run([TREESYNCD, "--dry-run", "-c", self.conf],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--dry-run needs --once", p.stderr)

    def ctl(self, *args):
        return subprocess.run([TREESYNCCTL, "-s", self.sock] + list(args),
                              capture_output=True, text=True,
                              timeout=300 * SLOW)

    def test_diff_against_running_daemon(self):
        make_source(self.src)
        self.start([("t", self.src, [self.dst], 'compare = "hash";')])
        p = self.ctl("diff", "t")
        self.assertEqual((p.returncode, p.stdout), (0, ""), p.stderr)
        # The daemon does not watch its destinations: the damage stays
        # until a pass, and the diff must not be that pass.
        expect = damage(self.src, self.dst)
        before = walk(self.dst)
        p = self.ctl("diff", "t")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assert_lines(self.items(p.stdout), expect)
        self.assertEqual(walk(self.dst), before,
                         "treesyncctl diff changed the destination")
        once = self.dry_run(expect_rc=1)
        self.assertEqual(p.stdout, once.stdout)
        self.assertEqual(walk(self.dst), before)
        # The live pair goes on as before.
        write(os.path.join(self.src, "sub", "after.txt"), b"live\n")
        end = time.monotonic() + 30 * SLOW
        while not os.path.exists(os.path.join(self.dst, "sub", "after.txt")):
            self.assertLess(time.monotonic(), end, "a live change did not "
                            "arrive after the diff:\n" + self.logtext())
            time.sleep(0.05)
        # Clients that hang up before their answer cost the daemon
        # nothing (the last ones may still be comparing at SIGTERM,
        # which must stop it cleanly: tearDown checks the exit).
        for _ in range(3):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.connect(self.sock)
                c.sendall(b"diff t\n")
        p = self.ctl("diff", "t")
        self.assertEqual(p.returncode, 1, p.stderr)
        for _ in range(3):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.connect(self.sock)
                c.sendall(b"diff t\n")
        p = self.ctl("diff", "nope")
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertIn("no sync pair named 'nope'", p.stderr)


if __name__ == "__main__":
    unittest.main()
