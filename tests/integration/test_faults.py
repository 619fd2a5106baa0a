#!/usr/bin/env python3
"""Fault injection against the live daemon (`treesyncd -f`): crashes,
file systems that go away or turn read-only, sources that vanish or are
emptied, max_delete, awkward trees. Every outcome is judged by
tests/tools/treecmp.py (independent walk + rsync --checksum) or by looking
at the destination directly; docs/reliability.md lists what each test
injects and checks.

Tests that mount tmpfs file systems need root; run the file (like the full
suite) under `flock /tmp/treesync-suite.lock`. Every mount is undone in a
cleanup. The slow tests (1 GiB rewrite, 100,000 entries, kill -9 rounds)
run only in the normal build: not under TREESYNC_WRAP (valgrind), not
with ASAN_OPTIONS set (the ASan build), not with TREESYNC_QUICK_FAULTS.

Environment: as daemonlib; TREESYNC_FAULT_SEED fixes the seed of the
kill -9 tests (printed either way).
"""
import os
import json
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemonlib import (DEADLINE, DaemonCase, GENTREE, SLOW,  # noqa: E402
                       TREESYNCD, WRAP, temp_files, write)

TREESYNCCTL = os.environ.get("TREESYNCCTL",
                             os.path.join(os.path.dirname(TREESYNCD),
                                          "treesyncctl"))
QUICK = bool(WRAP or os.environ.get("ASAN_OPTIONS") or
             os.environ.get("TREESYNC_QUICK_FAULTS"))
ROOT_ONLY = unittest.skipUnless(os.geteuid() == 0, "needs root (mount)")
SLOW_ONLY = unittest.skipIf(QUICK, "slow: normal build only")
# Same code paths as a test that does run under valgrind: keep its time.
NO_VALGRIND = unittest.skipIf(bool(WRAP), "covered under valgrind by a "
                              "sibling test")


def listing(tree):
    """Every relative path under tree (not following symlinks)."""
    out = set()
    for d, ds, fs in os.walk(tree):
        for n in ds + fs:
            out.add(os.path.relpath(os.path.join(d, n), tree))
    return out


def seed():
    s = int(os.environ.get("TREESYNC_FAULT_SEED", random.randrange(10**6)))
    sys.stderr.write("fault seed %d (TREESYNC_FAULT_SEED=%d to repeat)\n"
                     % (s, s))
    return s


class Faults(DaemonCase):
    delay_ms = 20

    def ctl(self, *args):
        """treesyncctl against this test's daemon; returns (rc, stdout)."""
        r = subprocess.run([TREESYNCCTL, "-s", os.path.join(self.tmp,
                                                            "c.sock")]
                           + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           timeout=30 * SLOW)
        return r.returncode, r.stdout

    def pair_status(self, name="t"):
        rc, out = self.ctl("status", "--json")
        self.assertEqual(rc, 0, out)
        return [p for p in json.loads(out)["pairs"] if p["name"] == name][0]

    def launch(self):
        """Starts the daemon on the current config; no waiting."""
        self.proc = subprocess.Popen(WRAP + [TREESYNCD, "-f", "-c",
                                             self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def kill9(self):
        self.proc.kill()
        self.proc.wait()
        self.proc = None

    def gentree(self, root, files, s):
        subprocess.run([sys.executable, GENTREE, root, "--files", str(files),
                        "--seed", str(s), "--plain"], check=True,
                       capture_output=True)

    def mount_tmpfs(self, path, size="64m"):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size,
                        "tmpfs", path], check=True)
        self.addCleanup(self.umount_quietly, path)

    @staticmethod
    def umount_quietly(path):
        while subprocess.run(["umount", path], capture_output=True,
                             ).returncode == 0:
            pass  # a test may have stacked mounts

    def umount(self, path):
        end = time.monotonic() + DEADLINE
        while subprocess.run(["umount", path],
                             capture_output=True).returncode != 0:
            self.assertLess(time.monotonic(), end, "umount %s: busy" % path)
            time.sleep(0.05)

    def wait_log(self, text, count=1):
        end = time.monotonic() + DEADLINE
        while self.logtext().count(text) < count:
            if self.proc is not None and self.proc.poll() is not None:
                self.fail("daemon exited:\n" + self.logtext()[-3000:])
            self.assertLess(time.monotonic(), end, "no %r in the log:\n%s" %
                            (text, self.logtext()[-3000:]))
            time.sleep(0.05)
        return [l for l in self.logtext().splitlines() if text in l]

    # -- the source root -------------------------------------------------
    def test_source_emptied_guard_holds(self):
        # The delay lets rm -rf finish before any delete falls due: the
        # guard judges the source as it is when a delete is due.
        self.delay_ms = 3000
        self.gentree(self.src, 300, 5)
        self.start()
        before = listing(self.dst)
        t0 = time.monotonic()
        for n in os.listdir(self.src):
            p = os.path.join(self.src, n)
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            else:
                os.unlink(p)
        # Precondition: emptied within the window, so the first delete
        # that falls due sees an empty source.
        self.assertLess(time.monotonic() - t0, self.delay_ms / 1000)
        lines = self.wait_log("is empty while its destination is not")
        self.assertIn(self.src, lines[0])
        self.assertIn("nothing is deleted", lines[0])
        self.assertIn(" error ", lines[0])
        time.sleep(self.delay_ms / 1000)
        self.assertEqual(listing(self.dst), before)
        self.assertNotIn(" delete ", self.logtext())
        self.assertEqual(len(lines), 1, "one line per fault")
        # Back: the source gets its tree again (and a change) and the
        # destination follows.
        self.gentree(self.src, 300, 5)
        write(os.path.join(self.src, "after.txt"), b"back")
        self.wait_log("is back")
        self.wait_equal()
        # Its watches never went away: no restart of the pair (whose
        # handover once raced with jobs still out, caught by the churn).
        self.assertNotIn("watching it again", self.logtext())
        self.stop()  # exit 0: no sanitizer or valgrind report

    def test_source_root_removed_and_recreated_by_force(self):
        write(os.path.join(self.src, "keep", "a"), b"a")
        self.start()
        shutil.rmtree(self.src)
        lines = self.wait_log("is gone")
        self.assertIn(self.src, lines[0])
        time.sleep(1)
        self.assertEqual(listing(self.dst), {"keep", "keep/a"})
        # Recreated: another inode. It stays a fault until the operator
        # says the new directory is right; a reload with a different
        # setting is how a test says it without treesyncctl.
        write(os.path.join(self.src, "new"), b"n")
        self.wait_log("is another directory")
        line = self.wait_log("is another directory")[0]
        self.assertIn("treesyncctl resync --force t", line)
        time.sleep(1)
        self.assertTrue(os.path.exists(os.path.join(self.dst, "keep", "a")))
        # What the operator sees, and the release the log line names.
        st = self.pair_status()
        self.assertEqual(st["state"], "error")
        self.assertIn(self.src, st["fault"])
        rc, out = self.ctl("status")
        self.assertIn("! ", out)
        self.assertIn("is another directory", out)
        rc, out = self.ctl("resync", "--force", "t")
        self.assertEqual(rc, 0, out)
        self.wait_equal()
        self.assertEqual(self.pair_status()["fault"], None)
        self.stop()  # exit 0: no sanitizer or valgrind report

    @ROOT_ONLY
    def test_source_unmounted_and_remounted(self):
        self.mount_tmpfs(self.src)
        self.gentree(self.src, 300, 7)
        saved = os.path.join(self.tmp, "saved")
        shutil.copytree(self.src, saved, symlinks=True)
        self.start()
        before = listing(self.dst)
        self.umount(self.src)
        lines = self.wait_log("was unmounted")
        self.assertIn(self.src, lines[0])
        time.sleep(1)
        self.assertEqual(listing(self.dst), before)
        self.assertNotIn(" delete ", self.logtext())
        # Remounted (a new tmpfs: another device number) and filled.
        self.mount_tmpfs(self.src)
        subprocess.run(["cp", "-a", saved + "/.", self.src], check=True)
        write(os.path.join(self.src, "while-away.txt"), b"new")
        self.wait_log("is back")
        self.wait_equal()
        # Watches are in place again: a live change arrives.
        self.wait_log("source is back: watching it again")
        time.sleep(0.5)
        write(os.path.join(self.src, "live-after.txt"), b"watched")
        self.wait_equal()
        self.stop()  # exit 0: no sanitizer or valgrind report

    # -- max_delete ------------------------------------------------------
    def max_delete_case(self, setting, n_files, n_removed, allowed,
                        release_by_ctl):
        for i in range(n_files):
            write(os.path.join(self.src, "d%d" % (i % 4), "f%03d" % i),
                  b"%d" % i)
        self.write_config(syncs=[("t", self.src, [self.dst],
                                  "max_delete = %s;" % setting)])
        self.launch()
        self.wait_equal()
        self.stop()
        removed = sorted(listing(self.src) - {"d0", "d1", "d2", "d3"})
        removed = removed[:n_removed]
        for r in removed:
            os.unlink(os.path.join(self.src, r))
        write(os.path.join(self.src, "new.txt"), b"copies go on")
        self.launch()
        line = self.wait_log("max_delete reached")[0]
        self.assertIn("max_delete = %s" % setting, line)
        self.assertIn("treesyncctl resync --force t", line)
        self.assertIn("SIGHUP", line)
        self.assertIn(" error ", line)
        time.sleep(1)
        gone = [r for r in removed
                if not os.path.exists(os.path.join(self.dst, r))]
        self.assertLessEqual(len(gone), allowed)
        self.assertTrue(os.path.exists(os.path.join(self.dst, "new.txt")))
        # Held: a live delete waits too; copies go on.
        os.unlink(os.path.join(self.src, "new.txt"))
        write(os.path.join(self.src, "new2.txt"), b"still copying")
        end = time.monotonic() + DEADLINE
        while not os.path.exists(os.path.join(self.dst, "new2.txt")):
            self.assertLess(time.monotonic(), end)
            time.sleep(0.05)
        time.sleep(0.5)
        self.assertTrue(os.path.exists(os.path.join(self.dst, "new.txt")))
        st = self.pair_status()
        self.assertEqual((st["state"], st["held"]), ("held", True))
        self.assertIn("max_delete", st["fault"])
        if release_by_ctl:
            rc, out = self.ctl("resync", "--force", "t")
            self.assertEqual(rc, 0, out)
        else:
            # Released by a reload with a higher max_delete.
            self.write_config(syncs=[("t", self.src, [self.dst],
                                      "max_delete = 100000;")])
            self.proc.send_signal(signal.SIGHUP)
        self.wait_equal()
        st = self.pair_status()
        self.assertEqual((st["held"], st["fault"]), (False, None))
        self.stop()  # exit 0: no sanitizer or valgrind report

    def test_max_delete_count(self):
        self.max_delete_case("5", 60, 20, 5, release_by_ctl=True)

    @NO_VALGRIND
    def test_max_delete_percent(self):
        # 100 files + 4 directories + the root's entries: 10% is 10.
        self.max_delete_case('"10%"', 100, 30, 10, release_by_ctl=False)

    # -- destinations ----------------------------------------------------
    @ROOT_ONLY
    def test_destination_read_only_then_read_write(self):
        ro = os.path.join(self.tmp, "dst-ro")
        self.mount_tmpfs(ro)
        self.gentree(self.src, 100, 3)
        self.write_config([("t", self.src, [ro, self.dst], "")])
        self.launch()
        self.wait_equal(self.src, ro)
        self.wait_equal()
        subprocess.run(["mount", "-o", "remount,ro", ro], check=True)
        write(os.path.join(self.src, "during-ro.txt"), b"x" * 5000)
        os.unlink(os.path.join(self.src, sorted(
            n for n in os.listdir(self.src)
            if os.path.isfile(os.path.join(self.src, n)))[0]))
        self.wait_equal()       # the other destination is unaffected
        self.wait_log("Read-only file system")
        self.assertEqual(temp_files(ro), [])
        subprocess.run(["mount", "-o", "remount,rw", ro], check=True)
        self.wait_equal(self.src, ro)
        self.stop()  # exit 0: no sanitizer or valgrind report

    @NO_VALGRIND
    def test_destination_directory_removed_or_replaced_by_hand(self):
        for d in ("gone", "file", "deep"):
            for i in range(20):
                write(os.path.join(self.src, d, "sub", "f%d" % i), b"%d" % i)
        self.start()
        shutil.rmtree(os.path.join(self.dst, "gone"))
        shutil.rmtree(os.path.join(self.dst, "file"))
        write(os.path.join(self.dst, "file"), b"a file where a dir was")
        shutil.rmtree(os.path.join(self.dst, "deep", "sub"))
        # The daemon watches sources, not destinations: the next change
        # beneath each directory finds the damage and repairs it.
        for d in ("gone", "file", "deep"):
            write(os.path.join(self.src, d, "sub", "f0"), b"changed")
        self.wait_equal()
        self.stop()  # exit 0: no sanitizer or valgrind report

    # -- retries -----------------------------------------------------------
    @unittest.skipUnless(os.geteuid() == 0, "needs root to add a user")
    def test_failing_file_does_not_block_the_rest(self):
        user = "treesync-test"
        created = subprocess.run(["id", user],
                                 capture_output=True).returncode != 0
        if created:
            subprocess.run(["useradd", "--system", "--no-create-home",
                            "--shell", "/usr/sbin/nologin", user], check=True)
            self.addCleanup(subprocess.run, ["userdel", user])
        import pwd
        pw = pwd.getpwnam(user)
        write(os.path.join(self.src, "secret.key"), b"secret", mode=0)
        write(os.path.join(self.src, "a.txt"), b"a")
        self.write_config()
        for d, ds, fs in os.walk(self.tmp):
            for n in [d] + [os.path.join(d, x) for x in fs]:
                os.lchown(n, pw.pw_uid, pw.pw_gid)
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid", user, "--regid", user, "--clear-groups",
             "--"] + WRAP + [TREESYNCD, "-f", "-c", self.conf],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_equal(self.src, self.dst, "--exclude", "/secret.key",
                        "--no-owner")
        # It keeps failing, with backoff, while other files keep syncing.
        for i in range(5):
            write(os.path.join(self.src, "later%d.txt" % i), b"%d" % i)
            os.lchown(os.path.join(self.src, "later%d.txt" % i),
                      pw.pw_uid, pw.pw_gid)
            self.wait_equal(self.src, self.dst, "--exclude", "/secret.key",
                            "--no-owner")
        lines = self.wait_log("secret.key", 2)
        self.assertIn("Permission denied", lines[0])
        self.assertIn("retry", lines[0])
        self.assertFalse(os.path.exists(os.path.join(self.dst, "secret.key")))
        # Readable again: the next retry copies it.
        os.chmod(os.path.join(self.src, "secret.key"), 0o644)
        self.wait_equal(self.src, self.dst, "--no-owner")
        self.stop()  # exit 0: no sanitizer or valgrind report

    # -- crashes -----------------------------------------------------------
    @SLOW_ONLY
    def test_kill_9_during_start_up_sync(self):
        rng = random.Random(seed())
        self.gentree(self.src, 1000, 11)
        write(os.path.join(self.src, "big.bin"), os.urandom(32 << 20))
        self.write_config()
        for round in range(10):
            # New work for every start-up pass: a round of files in,
            # the previous round out, the big file rewritten.
            shutil.rmtree(os.path.join(self.src, "round%d" % (round - 1)),
                          ignore_errors=True)
            self.gentree(os.path.join(self.src, "round%d" % round), 200,
                         round)
            with open(os.path.join(self.src, "big.bin"), "r+b") as f:
                f.write(os.urandom(1 << 20))
            self.launch()
            moment = rng.uniform(0.05, 1.0)
            sys.stderr.write("round %d: kill -9 after %.3f s\n" % (round,
                                                                    moment))
            time.sleep(moment)
            self.kill9()
            self.launch()
            self.wait_equal()
            self.assertEqual(temp_files(self.dst), [])
            self.stop()

    @SLOW_ONLY
    def test_kill_9_during_churn(self):
        rng = random.Random(seed())
        self.gentree(self.src, 500, 13)
        self.start()
        stop = threading.Event()
        crng = random.Random(rng.randrange(10**6))

        def churn():
            while not stop.is_set():
                try:
                    files = [os.path.join(d, n) for d, _, fs in
                             os.walk(self.src) for n in fs]
                    op = crng.randrange(5)
                    if op == 0 or not files:
                        write(os.path.join(self.src, "c%d" %
                                           crng.randrange(10**6)),
                              os.urandom(crng.randrange(1, 200000)))
                    elif op == 1:
                        with open(crng.choice(files), "ab") as f:
                            f.write(os.urandom(crng.randrange(1, 5000)))
                    elif op == 2:
                        os.unlink(crng.choice(files))
                    elif op == 3:
                        os.rename(crng.choice(files), os.path.join(
                            self.src, "r%d" % crng.randrange(10**6)))
                    else:
                        os.makedirs(os.path.join(self.src, "k%d" %
                                                 crng.randrange(10**6), "s"))
                except OSError:
                    pass
                time.sleep(0.002)

        t = threading.Thread(target=churn)
        t.start()
        try:
            for round in range(10):
                moment = rng.uniform(0.1, 1.5)
                sys.stderr.write("churn kill %d after %.3f s\n" % (round,
                                                                    moment))
                time.sleep(moment)
                self.kill9()
                self.launch()
        finally:
            stop.set()
            t.join()
        self.wait_equal()
        self.assertEqual(temp_files(self.dst), [])
        self.stop()  # exit 0: no sanitizer or valgrind report

    # -- files that change while they are copied -------------------------
    @NO_VALGRIND
    def test_file_appended_while_copied(self):
        self.start()
        p = os.path.join(self.src, "growing.log")
        end = time.monotonic() + 3
        with open(p, "ab") as f:
            while time.monotonic() < end:
                f.write(os.urandom(64 << 10))
                f.flush()
                time.sleep(0.01)
        self.wait_equal()
        self.assertEqual(temp_files(self.dst), [])
        self.stop()  # exit 0: no sanitizer or valgrind report

    @SLOW_ONLY
    def test_1gib_file_rewritten_while_copied(self):
        self.start()
        p = os.path.join(self.src, "huge.bin")
        block = b"A" * (1 << 20)
        with open(p, "wb") as f:
            for _ in range(1024):
                f.write(block)
        end = time.monotonic() + DEADLINE
        while not temp_files(self.dst):
            self.assertLess(time.monotonic(), end, "no copy started")
            time.sleep(0.002)
        # Rewritten in place while the copy runs: the last bytes win.
        block = b"B" * (1 << 20)
        with open(p, "r+b") as f:
            for _ in range(1024):
                f.write(block)
        self.wait_equal()
        with open(os.path.join(self.dst, "huge.bin"), "rb") as f:
            self.assertEqual(f.read(1 << 20), block)
        self.assertEqual(temp_files(self.dst), [])

    # -- awkward trees ---------------------------------------------------
    @SLOW_ONLY
    def test_directory_with_100000_entries(self):
        big = os.path.join(self.src, "big")
        os.mkdir(big)
        for i in range(100000):
            with open(os.path.join(big, "e%06d" % i), "wb") as f:
                f.write(b"%d" % i if i % 10 == 0 else b"")
        self.start()
        for i in range(0, 100000, 10000):
            os.unlink(os.path.join(big, "e%06d" % i))
            write(os.path.join(big, "n%06d" % i), b"new")
        # Each check walks 100,000 entries twice (treecmp, rsync -c): on
        # a busy machine the usual 30 s is a handful of checks.
        self.wait_equal(deadline=4 * DEADLINE)
        self.stop()  # exit 0: no sanitizer or valgrind report

    @NO_VALGRIND
    def test_path_near_path_max(self):
        # 19 directories of 200 bytes and a 190-byte file name: a relative
        # path of 4,009 bytes (PATH_MAX is 4,096 with the absolute part).
        rel = os.path.join(*[("d%02d" % i) * 66 + "dd" for i in range(19)],
                           "f" * 190)
        self.assertGreater(len(rel), 4000)
        self.assertLess(len(os.path.join(self.src, rel)), 4095)
        write(os.path.join(self.src, rel), b"deep")
        self.start()
        with open(os.path.join(self.src, rel), "ab") as f:
            f.write(b" and changed")
        self.wait_equal()
        with open(os.path.join(self.dst, rel), "rb") as f:
            self.assertEqual(f.read(), b"deep and changed")
        self.stop()  # exit 0: no sanitizer or valgrind report

    def test_symlink_loops(self):
        os.mkdir(os.path.join(self.src, "d"))
        os.symlink("b", os.path.join(self.src, "a"))
        os.symlink("a", os.path.join(self.src, "b"))
        os.symlink("self", os.path.join(self.src, "self"))
        os.symlink("..", os.path.join(self.src, "d", "up"))
        os.symlink(self.src, os.path.join(self.src, "d", "root"))
        self.start()
        os.symlink("d/up/d/up", os.path.join(self.src, "e"))
        self.wait_equal()
        self.assertEqual(os.readlink(os.path.join(self.dst, "a")), "b")
        self.assertEqual(os.readlink(os.path.join(self.dst, "d", "root")),
                         self.src)
        self.assertIsNone(self.proc.poll())
        self.stop()  # exit 0: no sanitizer or valgrind report

    def test_fifos_sockets_devices_are_skipped(self):
        os.mkfifo(os.path.join(self.src, "fifo"))
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(os.path.join(self.src, "sock"))
        self.addCleanup(sock.close)
        specials = ["fifo", "sock"]
        if os.geteuid() == 0:
            os.mknod(os.path.join(self.src, "null"), 0o600 | 0o020000,
                     os.makedev(1, 3))
            specials.append("null")
        write(os.path.join(self.src, "regular"), b"r")
        self.write_config()
        self.launch()
        self.wait_equal(self.src, self.dst,
                        *sum((["--exclude", "/" + n] for n in specials), []))
        log = self.logtext()
        for n in specials:
            lines = [l for l in log.splitlines()
                     if re.search(r" skip +%s -> " % n, l)]
            self.assertEqual(len(lines), 1, "%s: %s" % (n, log[-2000:]))
            self.assertIn(" warn ", lines[0])
            self.assertFalse(os.path.lexists(os.path.join(self.dst, n)))
        self.assertTrue(os.path.exists(os.path.join(self.dst, "regular")))
        self.stop()  # exit 0: no sanitizer or valgrind report


if __name__ == "__main__":
    unittest.main(verbosity=2)
