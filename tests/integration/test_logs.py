#!/usr/bin/env python3
"""Integration tests of the sync log an operator reads: the real daemon
(`treesyncd -f`) with a log_file, on temporary trees.

- SIGUSR1 after logrotate moved the file away: a new file is written and
  no line is lost (every file copied has exactly one copy line over both
  files, every line is whole);
- log_level: debug lines only at debug, no info lines at warn;
- a copy line holds every SPEC field.

Environment: TREESYNCD, TREESYNC_SOURCE_ROOT, TREESYNC_WRAP (as test_live).
"""
import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemonlib import (DEADLINE, ROOT, DaemonCase, SLOW,  # noqa: E402
                       TREESYNCD, WRAP, write)

# SPEC "Sync log": time (ISO 8601, UTC, ms), level, pair, action, path
# relative to the source, destination, outcome and figures.
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "
                  r"(error|warn |info |debug) \S")
COPY = re.compile(r"^(?P<time>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z "
                  r"(?P<level>info) +(?P<pair>\S+) (?P<action>copy) +"
                  r"(?P<path>.+?) -> (?P<dest>/\S*)  "
                  r"(?P<size>\d+(\.\d)? (B|KiB|MiB)) (?P<ms>\d+\.\d) ms$")


class Logs(DaemonCase):
    def start(self, level, dst=None):
        with open(self.conf, "w") as f:
            f.write('workers = 2;\ndelay_ms = 20;\nlog_file = "%s";\n'
                    'log_level = "%s";\ncontrol_socket = "%s";\n'
                    'syncs = ( { name = "logs"; '
                    'source = "%s"; destinations = ( "%s" ); } );\n' % (
                        self.log, level, self.sock, self.src,
                        dst or self.dst))
        self.proc = subprocess.Popen(WRAP + [TREESYNCD, "-f", "-c",
                                             self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

    def text(self, path=None):
        path = path or self.log
        if not os.path.exists(path):
            return ""
        with open(path, errors="replace") as f:
            return f.read()

    def wait_log(self, what, pattern, path=None):
        end = time.monotonic() + DEADLINE
        while not re.search(pattern, self.text(path), re.M):
            if self.proc.poll() is not None:
                self.fail("daemon exited %d: %s" % (
                    self.proc.returncode, self.proc.stderr.read()))
            if time.monotonic() > end:
                self.fail("no %s in the log after %d s:\n%s" % (
                    what, DEADLINE, self.text(path)[-3000:]))
            time.sleep(0.1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.assertEqual(self.proc.wait(timeout=10 * SLOW), 0)
        self.proc.stderr.close()
        self.proc = None

    def test_sigusr1_reopens_moved_file_without_losing_lines(self):
        self.start("info")
        self.wait_log("start-up pass", r"logs full +\. -> .*in sync")
        # Files keep arriving while logrotate moves the file away and
        # sends SIGUSR1, as the conf/logrotate.d snippet does.
        names = []
        stop = threading.Event()

        def writer():
            i = 0
            while not stop.is_set() or i < 40:
                name = "f%04d.txt" % i
                write(os.path.join(self.src, name), b"%d\n" % i)
                names.append(name)
                i += 1
                time.sleep(0.01)
        t = threading.Thread(target=writer)
        t.start()
        try:
            self.wait_log("a first copy", r" copy +f00\d\d\.txt ")
            rotated = self.log + ".1"
            os.rename(self.log, rotated)
            self.proc.send_signal(signal.SIGUSR1)
            self.wait_log("the reopen line", r"log file reopened$")
            time.sleep(0.5)
        finally:
            stop.set()
            t.join()
        self.wait_equal()
        self.stop()
        old, new = self.text(rotated), self.text()
        self.assertIn("log file reopened", new)
        self.assertNotIn("log file reopened", old)
        for line in (old + new).splitlines():
            self.assertRegex(line, LINE)  # whole lines only
        copies = [m.group("path") for m in map(COPY.match,
                                               (old + new).splitlines()) if m]
        # A file caught mid-write may be copied twice; none may be missing.
        self.assertEqual(set(copies), set(names),
                         "a copied file has no copy line in either file")
        self.assertTrue(any(COPY.match(l) for l in old.splitlines()))
        self.assertTrue(any(COPY.match(l) for l in new.splitlines()))

    def test_logrotate_snippet(self):
        """conf/logrotate.d/treesync, forced, on this test's log file: the
        rotated file keeps the old lines, the daemon writes a new one."""
        if shutil.which("logrotate") is None:
            self.skipTest("logrotate is not installed (scripts/deps.sh)")
        self.start("info")
        self.wait_log("start-up pass", r"logs full +\. -> .*in sync")
        with open(os.path.join(ROOT, "conf", "logrotate.d", "treesync")) as f:
            snippet = f.read()
        self.assertIn("/var/log/treesync/*.log {", snippet)
        self.assertIn("systemctl kill --kill-whom=main --signal=USR1 "
                      "treesyncd.service", snippet)
        # Same snippet, aimed at this daemon (no systemd here).
        snippet = snippet.replace("/var/log/treesync/*.log",
                                  os.path.join(self.tmp, "*.log"))
        snippet = re.sub(r"systemctl kill [^\n]*", "kill -USR1 %d" %
                         self.proc.pid, snippet)
        snippet = snippet.replace("create 0640 root adm", "create 0640")
        conf = os.path.join(self.tmp, "logrotate.conf")
        with open(conf, "w") as f:
            f.write(snippet)
        r = subprocess.run(["logrotate", "-f", "-s",
                            os.path.join(self.tmp, "lr.state"), conf],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stdout)
        self.wait_log("the reopen line", r"log file reopened$")
        write(os.path.join(self.src, "after.txt"), b"x")
        self.wait_log("the copy line in the new file", r" copy +after\.txt ")
        self.stop()
        old = self.text(self.log.replace(".log", ".log.1"))
        self.assertIn("in sync", old)
        self.assertNotIn("after.txt", old)

    def run_level(self, level):
        """A pair whose source holds a fifo (a warn line) and a file; then
        one more file while live (info copy line, debug event lines)."""
        os.mkfifo(os.path.join(self.src, "pipe"))
        write(os.path.join(self.src, "a.txt"), b"a")
        self.start(level)
        self.wait_log("the skip warning", r" skip +pipe -> ")
        write(os.path.join(self.src, "b.txt"), b"b")
        end = time.monotonic() + DEADLINE
        while not os.path.exists(os.path.join(self.dst, "b.txt")):
            self.assertLess(time.monotonic(), end, "b.txt not copied")
            time.sleep(0.1)
        time.sleep(0.3)  # the copy line follows the copy
        self.stop()
        lines = self.text().splitlines()
        for line in lines:
            self.assertRegex(line, LINE)
        return [line.split()[1] for line in lines], lines

    def test_level_debug(self):
        levels, lines = self.run_level("debug")
        self.assertIn("debug", levels)
        self.assertTrue(any(re.search(r" debug logs event +b\.txt ", l)
                            for l in lines))
        self.assertTrue(any(COPY.match(l) and "b.txt" in l for l in lines))

    def test_level_info(self):
        levels, lines = self.run_level("info")
        self.assertNotIn("debug", levels)
        self.assertIn("warn", levels)
        self.assertTrue(any(COPY.match(l) and "b.txt" in l for l in lines))

    def test_level_warn(self):
        levels, lines = self.run_level("warn")
        self.assertEqual(set(levels), {"warn"}, "\n".join(lines))
        self.assertTrue(any(" skip " in l and "pipe" in l for l in lines))

    def test_copy_line_has_every_spec_field(self):
        self.start("info")
        self.wait_log("start-up pass", r"logs full +\. -> .*in sync")
        write(os.path.join(self.src, "sub dir", "f\tx.bin"), b"z" * 5000)
        self.wait_equal()
        self.wait_log("the copy line", r" copy +sub dir/f\\tx\.bin -> ")
        before_stop = datetime.datetime.now(datetime.timezone.utc)
        self.stop()
        lines = [l for l in self.text().splitlines()
                 if "f\\tx.bin" in l and " copy " in l]
        m = [COPY.match(l) for l in lines]
        self.assertEqual(len(m), 1, "\n".join(lines))
        m = m[0]
        self.assertIsNotNone(m, "copy line does not match the SPEC format")
        when = datetime.datetime.strptime(
            m.group("time"), "%Y-%m-%dT%H:%M:%S.%f").replace(
                tzinfo=datetime.timezone.utc)
        # UTC: within the test's run, not hours off.
        self.assertLess(abs((before_stop - when).total_seconds()), 600)
        self.assertEqual(m.group("level"), "info")
        self.assertEqual(m.group("pair"), "logs")
        # Relative to the source; the tab escaped, so it stays one line.
        self.assertEqual(m.group("path"), "sub dir/f\\tx.bin")
        self.assertEqual(m.group("dest"), self.dst)
        self.assertEqual(m.group("size"), "4.9 KiB")


if __name__ == "__main__":
    unittest.main(verbosity=2)
