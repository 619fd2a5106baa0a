#!/usr/bin/env python3
"""treesyncd's side of systemd's notify protocol, without systemd: the test
plays systemd's part (a datagram socket named by NOTIFY_SOCKET, a watchdog
asked for with WATCHDOG_USEC) and reads what the real daemon sends.
Runs in every build (the sanitizers and valgrind see the notify code);
tests/system/test_systemd.py checks the same against a real systemd.

Environment: TREESYNCD, TREESYNC_SOURCE_ROOT, TREESYNC_WRAP (as test_live).
Skipped when treesyncd was built without libsystemd.
"""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

ROOT = os.environ.get("TREESYNC_SOURCE_ROOT",
                      os.path.dirname(os.path.dirname(os.path.dirname(
                          os.path.abspath(__file__)))))
TREESYNCD = os.environ.get("TREESYNCD",
                           os.path.join(ROOT, "build", "treesyncd"))
WRAP = os.environ.get("TREESYNC_WRAP", "").split()
SLOW = 10 if WRAP else 1
DEADLINE = 30 * SLOW


def linked_to_libsystemd():
    r = subprocess.run(["ldd", TREESYNCD], stdout=subprocess.PIPE, text=True)
    return "libsystemd" in r.stdout


class Notify(unittest.TestCase):
    def setUp(self):
        if not linked_to_libsystemd():
            self.skipTest("treesyncd built without libsystemd")
        self.tmp = tempfile.mkdtemp(prefix="treesync-notify.")
        self.src = os.path.join(self.tmp, "src")
        os.mkdir(self.src)
        for i in range(3):
            with open(os.path.join(self.src, "f%d" % i), "w") as f:
                f.write("x")
        self.conf = os.path.join(self.tmp, "t.conf")
        self.write_config(["a"])
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(os.path.join(self.tmp, "notify"))
        self.proc = None

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if hasattr(self, "sock"):
            self.sock.close()
        shutil.rmtree(getattr(self, "tmp", "/nonexistent"),
                      ignore_errors=True)

    def write_config(self, names):
        # A source of its own per pair: the watcher refuses a second
        # watch of one source (EBUSY), which makes that pair degraded.
        for n in names[1:]:
            if not os.path.exists(self.src + "-" + n):
                shutil.copytree(self.src, self.src + "-" + n)
        pairs = ",\n".join(
            '{ name = "%s"; source = "%s"; destinations = ( "%s/dst-%s" ); }'
            % (n, self.src if i == 0 else self.src + "-" + n, self.tmp, n)
            for i, n in enumerate(names))
        with open(self.conf, "w") as f:
            f.write('workers = 2;\ndelay_ms = 20;\nlog_file = "%s/log";\n'
                    'syncs = ( %s );\n' % (self.tmp, pairs))

    def start(self, watchdog_usec=None):
        env = dict(os.environ, NOTIFY_SOCKET=os.path.join(self.tmp, "notify"))
        if watchdog_usec:
            env["WATCHDOG_USEC"] = str(watchdog_usec)
        self.proc = subprocess.Popen(WRAP + [TREESYNCD, "-f", "-c",
                                             self.conf], env=env,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

    def messages_until(self, pred, what):
        """Datagrams (each a dict of KEY=VALUE) until pred(msg) holds."""
        got = []
        end = time.monotonic() + DEADLINE
        while True:
            left = end - time.monotonic()
            if left <= 0:
                self.fail("no %s after %d s; got %r" % (what, DEADLINE, got))
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                continue
            msg = dict(line.split("=", 1) for line in data.splitlines()
                       if "=" in line)
            got.append(msg)
            if pred(msg):
                return got

    def log(self):
        with open(os.path.join(self.tmp, "log")) as f:
            return f.read()

    def test_ready_status_reload_stop(self):
        self.start()
        got = self.messages_until(lambda m: m.get("READY") == "1", "READY=1")
        # READY only after the watches are in place (the log says so first).
        self.assertIn("a: watching 1 directories under", self.log())
        self.assertIn("ready: watches in place", self.log())
        self.assertRegex(got[-1].get("STATUS", ""),
                         r"^((scanning|syncing) 1/1 pairs?, [\d,]+ files? "
                         r"queued|"
                         r"idle: 1 pair in sync)$")
        self.messages_until(lambda m: m.get("STATUS") == "idle: 1 pair in sync",
                            "the idle STATUS line")
        self.write_config(["a", "b"])
        self.proc.send_signal(signal.SIGHUP)
        got = self.messages_until(lambda m: m.get("READY") == "1",
                                  "READY=1 after the reload")
        reloading = [m for m in got if m.get("RELOADING") == "1"]
        self.assertEqual(len(reloading), 1, got)
        self.assertGreater(int(reloading[0]["MONOTONIC_USEC"]), 0)
        self.assertLess(got.index(reloading[0]), len(got) - 1)
        self.messages_until(lambda m: m.get("STATUS") == "idle: 2 pairs in sync",
                            "the idle STATUS line of two pairs")
        self.proc.send_signal(signal.SIGTERM)
        self.messages_until(lambda m: m.get("STOPPING") == "1", "STOPPING=1")
        self.assertEqual(self.proc.wait(timeout=10 * SLOW), 0)

    def test_watchdog_pings_when_asked(self):
        self.start(watchdog_usec=400000)
        got = self.messages_until(lambda m: m.get("READY") == "1", "READY=1")
        pings = sum(m.get("WATCHDOG") == "1" for m in got)
        # Every 0.2 s from the reactor: several within a couple of seconds.
        end = time.monotonic() + 2 * SLOW
        while time.monotonic() < end:
            self.sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data = self.sock.recv(4096).decode()
            except socket.timeout:
                break
            pings += "WATCHDOG=1" in data.splitlines()
        self.assertGreaterEqual(pings, 3)
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=10 * SLOW), 0)

    def test_no_watchdog_unless_asked(self):
        self.start()
        got = self.messages_until(lambda m: m.get("STOPPING") == "1" or (
            m.get("READY") == "1" and self.proc.send_signal(signal.SIGTERM)),
            "STOPPING=1")
        self.assertFalse([m for m in got if "WATCHDOG" in m], got)
        self.assertEqual(self.proc.wait(timeout=10 * SLOW), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
