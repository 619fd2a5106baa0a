#!/usr/bin/env python3
"""One state per pair: `treesyncctl status --json`, `treesyncctl metrics`
(treesync_state) and systemd's STATUS= line (read here from a notify
socket of the test's own, as test_notify.py does) must say the same thing
in the moments where they used to disagree:

- the settle window after a directory rename (STATUS= said idle while
  status said syncing);
- the backoff after a failed compare (STATUS= said syncing, status error);
- a max_delete hold (status said "paused", as for an operator's pause;
  now `held`, and a pause on top of it is `paused`);
- the last error (kept but shown neither in metrics nor in STATUS=).

The tests that fill or remount a destination mount a small tmpfs inside
their own temporary directory (root only) and unmount it at the end.

Environment: TREESYNCD, TREESYNCCTL, TREESYNC_SOURCE_ROOT, TREESYNC_WRAP
(as test_live). Skipped without libsystemd (no STATUS= to compare).
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemonlib import (DEADLINE, DaemonCase, SLOW,  # noqa: E402
                       TREESYNCCTL, TREESYNCD, WRAP, write)
from test_ctl import parse_prometheus, value  # noqa: E402
from test_notify import linked_to_libsystemd  # noqa: E402

ROOT_ONLY = unittest.skipUnless(os.geteuid() == 0, "needs root (mount)")


def status_state(line):
    """The worst state a STATUS= line names: its first word."""
    return "idle" if line.startswith("idle:") else line.split(" ", 1)[0]


class State(DaemonCase):
    def setUp(self):
        if not linked_to_libsystemd():
            self.skipTest("treesyncd built without libsystemd")
        super().setUp()
        self.mounts = []
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(os.path.join(self.tmp, "notify"))
        self.notify.settimeout(0.1)
        self.line = None      # the last STATUS= taken by status_lines
        # Read at once, as systemd does: a sender blocks once ten
        # datagrams wait (net.unix.max_dgram_qlen).
        self.received, self.taken = [], 0
        self.lock = threading.Lock()
        self.reading = True
        self.reader = threading.Thread(target=self.read_notify, daemon=True)
        self.reader.start()

    def read_notify(self):
        while self.reading:
            try:
                data = self.notify.recv(4096).decode()
            except (socket.timeout, OSError):
                continue
            with self.lock:
                self.received += [ln[len("STATUS="):]
                                  for ln in data.splitlines()
                                  if ln.startswith("STATUS=")]

    def tearDown(self):
        # The daemon stops before its destination is unmounted.
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        for m in reversed(self.mounts):
            subprocess.run(["umount", m], capture_output=True)
        self.reading = False
        self.reader.join()
        self.notify.close()
        super().tearDown()

    def mount_tmpfs(self, path, size):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=" + size,
                        "tmpfs", path], check=True)
        self.mounts.append(path)

    def launch(self, syncs=None, settings=""):
        syncs = syncs or [("t", self.src, [self.dst], settings)]
        self.write_config(syncs)
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(self.tmp,
                                                          "notify"))
        self.proc = subprocess.Popen(WRAP + [TREESYNCD, "-f", "-c",
                                             self.conf], env=env,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        # Its control socket answers once it runs (a stop before that
        # would find no signal handler in place).
        end = time.monotonic() + DEADLINE
        while subprocess.run([TREESYNCCTL, "-s", self.sock, "status"],
                             capture_output=True).returncode != 0:
            self.assertIsNone(self.proc.poll(), self.logtext()[-2000:])
            self.assertLess(time.monotonic(), end, "no control socket")
            time.sleep(0.05)

    # -- the three read-outs --------------------------------------------
    def ctl(self, *args):
        p = subprocess.run([TREESYNCCTL, "-s", self.sock] + list(args),
                           capture_output=True, text=True,
                           timeout=60 * SLOW)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def pair(self):
        for p in json.loads(self.ctl("status", "--json"))["pairs"]:
            if p["name"] == "t":
                return p
        self.fail("no pair t in status")

    def metrics(self):
        return parse_prometheus(self.ctl("metrics"))

    def metrics_state(self, m=None):
        m = m or self.metrics()
        on = [lab["state"] for _, lab, v in m["treesync_state"]["samples"]
              if lab.get("sync") == "t" and v == 1]
        self.assertEqual(len(on), 1, on)
        return on[0]

    def status_lines(self):
        """The STATUS= lines received since the last call, in order."""
        with self.lock:
            got = self.received[self.taken:]
            self.taken = len(self.received)
        if got:
            self.line = got[-1]
        return got

    def wait(self, what, pred):
        end = time.monotonic() + DEADLINE
        while not pred():
            if time.monotonic() > end:
                self.fail("%s: not after %d s; status %s, STATUS=%r\n%s"
                          % (what, DEADLINE, json.dumps(self.pair()),
                             self.line, self.logtext()[-2000:]))
            time.sleep(0.05)

    def wait_status_state(self, state):
        def seen():
            self.status_lines()
            return self.line is not None and \
                status_state(self.line) == state
        self.wait("STATUS= says %s" % state, seen)

    def assert_all(self, state):
        """status --json, metrics and STATUS= all say state (STATUS= is
        sent at most every 250 ms: wait for it)."""
        self.wait_status_state(state)
        self.assertEqual(self.pair()["state"], state)
        self.assertEqual(self.metrics_state(), state)

    def wait_idle_everywhere(self):
        self.wait("idle", lambda: self.pair()["state"] == "idle" and
                  self.pair()["queue"] == 0)
        self.assert_all("idle")
        self.assertEqual(self.line, "idle: 1 pair in sync")

    # -- the disagreements ------------------------------------------------
    def test_rename_settle_window(self):
        """After a directory rename the pair waits for the source to be
        quiet, then compares: syncing, then scanning, then idle. A
        STATUS= line that says idle must mean idle: the status and
        metrics read right after it say so too, and it is never
        followed by a busy line with no new change in between."""
        for i in range(2000):
            write(os.path.join(self.src, "bulk%d" % (i % 20), "f%d" % i),
                  b"x")
        for i in range(50):
            write(os.path.join(self.src, "dir", "f%d" % i), b"%d" % i)
        self.launch()
        self.wait_equal()
        self.wait_idle_everywhere()
        self.status_lines()                    # from now on only
        os.rename(os.path.join(self.src, "dir"),
                  os.path.join(self.src, "dir2"))
        lines, busy_seen, json_busy = [], False, []
        end = time.monotonic() + DEADLINE
        while True:
            p = self.pair()
            if p["state"] != "idle":
                json_busy.append(p["state"])
            new = self.status_lines()
            lines += new
            busy_seen |= any(status_state(x) != "idle" for x in new)
            if busy_seen and new and status_state(new[-1]) == "idle":
                # Idle said: idle it is, in every read-out.
                p = self.pair()
                self.assertEqual((p["state"], p["queue"]), ("idle", 0),
                                 "STATUS=%r while status says %s (lines "
                                 "%r)" % (new[-1], p["state"], lines))
                self.assertEqual(self.metrics_state(), "idle")
                break
            if time.monotonic() > end:
                # The settle window alone lasts a second: STATUS= (sent
                # every 250 ms) must have shown what status showed.
                self.fail("status said %s after the rename; STATUS= only "
                          "%r" % (sorted(set(json_busy)), lines or
                                  [self.line]))
            time.sleep(0.02)
        self.assertIn("syncing", json_busy)
        # Quiet for a while: no busy line comes after the idle one.
        time.sleep(2)
        later = self.status_lines()
        self.assertEqual(later, [], "after idle: %r" % later)
        self.wait_equal()

    @ROOT_ONLY
    def test_failed_compare_backoff(self):
        """A compare that fails (its destination went read-only) is
        followed by another after a backoff; meanwhile the pair is in
        error everywhere, not syncing in one place and error in the
        other."""
        self.mount_tmpfs(self.dst, "16m")
        for i in range(20):
            write(os.path.join(self.src, "f%d" % i), b"%d" % i * 100)
        self.launch()
        self.wait_equal()
        self.wait_idle_everywhere()
        # A difference no event tells about, on a read-only destination:
        # only the compare finds it, and it cannot repair it.
        os.unlink(os.path.join(self.dst, "f3"))
        subprocess.run(["mount", "-o", "remount,ro", self.dst], check=True)
        self.ctl("resync", "t")
        self.wait("the compare failed", lambda: self.pair()["state"] ==
                  "error")
        p = self.pair()
        self.assertEqual(p["queue"], 0, p)       # no path is pending
        self.assertGreater(p["errors"], 0, p)
        self.assertIn("full pass", p["last_error"])
        self.assert_all("error")
        subprocess.run(["mount", "-o", "remount,rw", self.dst], check=True)
        self.wait_equal()
        self.wait_idle_everywhere()

    def test_hold_is_not_a_pause(self):
        """max_delete reached: the pair is held (deletes withheld, copies
        go on), which is not the operator's pause; a pause on top shows
        paused, a resume shows held again, resync --force releases."""
        for i in range(10):
            write(os.path.join(self.src, "f%d" % i), b"%d" % i)
        self.launch(settings="max_delete = 2;")
        self.wait_equal()
        self.wait_idle_everywhere()
        self.stop()
        # Six deletes the daemon does not see happen: its start-up
        # compare finds them and may do two.
        for i in range(6):
            os.unlink(os.path.join(self.src, "f%d" % i))
        self.launch(settings="max_delete = 2;")
        self.wait("held", lambda: self.pair()["held"])
        self.wait("the pass ended", lambda: self.pair()["queue"] == 0 and
                  self.pair()["destinations"][0]["jobs"] == 0)
        p = self.pair()
        self.assertEqual((p["state"], p["held"], p["paused"]),
                         ("held", True, False), p)
        self.assertIn("max_delete", p["fault"])
        self.assert_all("held")
        m = self.metrics()
        self.assertEqual(value(m, "treesync_state", sync="t",
                               state="paused"), 0)
        self.assertIn("  ! max_delete", self.ctl("status"))
        # The operator pauses a held pair: paused (and still held).
        self.ctl("pause", "t")
        p = self.pair()
        self.assertEqual((p["state"], p["held"], p["paused"]),
                         ("paused", True, True), p)
        self.assert_all("paused")
        self.ctl("resume", "t")
        self.assert_all("held")
        self.ctl("resync", "--force", "t")
        self.wait_equal()
        self.wait_idle_everywhere()
        self.assertFalse(self.pair()["held"])

    @ROOT_ONLY
    def test_last_error_is_shown(self):
        """A file that cannot be copied (the destination is full): its
        error, with the path, the destination and the reason, is what
        status, status --json, metrics and STATUS= show."""
        self.mount_tmpfs(self.dst, "1m")
        write(os.path.join(self.src, "small"), b"s")
        self.launch()
        self.wait_equal()
        self.wait_idle_everywhere()
        write(os.path.join(self.src, "big"), b"b" * (3 << 20))
        self.wait("the copy keeps failing",
                  lambda: self.pair()["state"] == "error")
        self.assert_all("error")
        p = self.pair()
        err = p["last_error"]
        self.assertTrue(self.line.endswith("; last error: " + err),
                        self.line)
        self.assertIn("'big'", err)
        self.assertIn(self.dst, err)
        self.assertIn("No space left on device", err)
        d = p["destinations"][0]
        self.assertEqual(d["last_error"], err)
        self.assertGreater(d["failing_paths"], 0)
        self.assertIsNotNone(p["next_attempt_ms"])
        self.assertIn(err, self.ctl("status"))
        m = self.metrics()
        labels = {"sync": "t", "destination": self.dst}
        self.assertGreater(value(m, "treesync_errors_total", **labels), 0)
        # Each retry renews the time: read later, never earlier.
        self.assertGreaterEqual(value(
            m, "treesync_last_error_timestamp_seconds", **labels),
            d["last_error_time"])
        # Gone from the source: in sync again; the error stays history.
        os.unlink(os.path.join(self.src, "big"))
        self.wait_equal()
        self.wait_idle_everywhere()
        self.assertEqual(self.pair()["last_error"], err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
