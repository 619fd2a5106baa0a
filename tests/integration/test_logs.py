#!/usr/bin/env python3
"""Integration tests of the sync log an operator reads: the real daemon
(`treesyncd -f`) with a log_file, on temporary trees.

- SIGUSR1 after logrotate moved the file away: a new file is written and
  no line is lost (every file copied has exactly one copy line over both
  files, every line is whole);
- log_level: debug lines only at debug, no info lines at warn;
- a copy line holds every SPEC field;
- a log that stops taking lines (a fifo nobody reads) does not stop the
  syncing: the trees converge meanwhile, and once the log is read again
  its lines are all there (below the backlog bound) or a line counts the
  dropped ones (past it); SIGTERM still stops the daemon.

Environment: TREESYNCD, TREESYNC_SOURCE_ROOT, TREESYNC_WRAP (as test_live).
"""
import datetime
import fcntl
import os
import re
import shutil
import select
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


DROPPED = re.compile(r"^\S+ warn  log: (\d+) lines? dropped: the log file "
                     r"was not writable fast enough$")
F_SETPIPE_SZ = 1031


class StalledLog(DaemonCase):
    """log_file is a fifo: the test reads it, then stops reading while the
    source changes (the pipe fills and every write(2) to it blocks), then
    reads again."""
    delay_ms = 20

    def setUp(self):
        super().setUp()
        os.mkfifo(self.log)
        # Open for reading first, so that the daemon's open does not wait.
        self.fd = os.open(self.log, os.O_RDONLY | os.O_NONBLOCK)
        # The smallest pipe (a page): a few lines fill it, so the stall
        # does not depend on how many lines the changes make.
        fcntl.fcntl(self.fd, F_SETPIPE_SZ, 4096)
        self.got = b""

    def tearDown(self):
        try:
            super().tearDown()
        finally:
            os.close(self.fd)

    def logtext(self):
        return self.got.decode(errors="replace")

    def read_available(self):
        """Everything the pipe holds now; b"" at EOF too."""
        out = b""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            if not chunk:
                return out
            out += chunk

    def read_until(self, pattern, what):
        end = time.monotonic() + DEADLINE
        while not re.search(pattern, self.logtext(), re.M):
            if time.monotonic() > end:
                self.fail("no %s in the log after %d s:\n%s" % (
                    what, DEADLINE, self.logtext()[-3000:]))
            select.select([self.fd], [], [], 0.2)
            self.got += self.read_available()

    def read_to_eof(self):
        """After SIGTERM: the daemon writes what it queued, then closes."""
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            select.select([self.fd], [], [], 0.2)
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                return
            self.got += chunk
        self.fail("the log was not closed after SIGTERM")

    def blocked_writing_the_log(self):
        """True when a thread of the daemon sits in write(2) on the log:
        /proc/PID/task/TID/syscall names the call a blocked thread is in
        and its first argument, the fd, which must be the fifo's."""
        write_nr = {"x86_64": 1, "aarch64": 64}.get(os.uname().machine)
        if write_nr is None:
            self.skipTest("write(2)'s number unknown on this machine")
        pid = self.proc.pid
        fds = set()
        for fd in os.listdir("/proc/%d/fd" % pid):
            try:
                if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == self.log:
                    fds.add(int(fd))
            except OSError:
                pass
        for tid in os.listdir("/proc/%d/task" % pid):
            try:
                with open("/proc/%d/task/%s/syscall" % (pid, tid)) as f:
                    words = f.read().split()
            except OSError:
                continue
            if len(words) > 1 and words[0] == str(write_nr) and \
                    int(words[1], 16) in fds:
                return True
        return False

    def run_stalled(self, env=None, files=400):
        """Starts the daemon, reads up to its ready line, stops reading and
        writes `files` files: the trees must converge while nobody reads
        the log, and the log must then be full (the writer blocked)."""
        self.write_config()
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(WRAP + [TREESYNCD, "-f", "-c",
                                             self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=e)
        self.read_until(r" ready: watches in place", "ready line")
        names = []
        for i in range(files):
            name = "d%d/f%04d.txt" % (i % 4, i)
            write(os.path.join(self.src, name), b"%d\n" % i * 10)
            names.append(name)
        # Nobody reads the log: the daemon syncs all the same.
        self.wait_equal()
        # The test proves something only if the log really stalled: the
        # daemon is stuck writing to it (the full pipe) while it synced.
        self.assertTrue(self.blocked_writing_the_log(),
                        "nothing waits to write the log: no stall happened")
        return names

    def finish(self):
        self.proc.send_signal(signal.SIGTERM)
        self.read_to_eof()
        self.assertEqual(self.proc.wait(timeout=10 * SLOW), 0)
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        self.proc = None
        lines = self.logtext().splitlines()
        for line in lines:
            self.assertRegex(line, LINE)  # whole lines only
        return lines, err

    def copied(self, lines):
        return {m.group("path") for m in map(COPY.match, lines) if m}

    def test_stalled_log_does_not_delay_syncing_and_loses_no_line(self):
        names = self.run_stalled()
        self.read_until(r" copy +%s -> " % re.escape(names[-1]),
                        "the copy line of the last file")
        lines, _ = self.finish()
        self.assertFalse([l for l in lines if DROPPED.match(l)],
                         "lines dropped below the backlog bound")
        self.assertEqual(self.copied(lines), set(names))

    def test_past_the_backlog_lines_are_dropped_and_counted(self):
        # A 16 KiB backlog (test hook) instead of 4 MiB: a few hundred
        # files' debug lines are far past it.
        names = self.run_stalled({"TREESYNC_TEST_HOOKS": "1",
                                  "TREESYNC_TEST_LOG_BACKLOG": "16384"})
        self.read_until(DROPPED.pattern, "the dropped-lines count")
        # The log goes on after the count: a file written now is logged.
        write(os.path.join(self.src, "after.txt"), b"after")
        self.wait_equal()
        self.read_until(r" copy +after\.txt -> ", "the copy line after")
        lines, _ = self.finish()
        dropped = sum(int(DROPPED.match(l).group(1)) for l in lines
                      if DROPPED.match(l))
        self.assertGreater(dropped, 0)
        missing = set(names) - self.copied(lines)
        # Every copy line is there or counted among the dropped.
        self.assertLessEqual(len(missing), dropped)
        self.assertIn("after.txt", self.copied(lines))

    def test_sigterm_with_a_stalled_log_still_exits_0(self):
        self.run_stalled(files=200)
        self.proc.send_signal(signal.SIGTERM)
        # Nobody reads: the writer is given up on after its exit wait.
        self.assertEqual(self.proc.wait(timeout=30 * SLOW), 0)
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        self.proc = None
        self.assertRegex(err, r"log: about \d+ lines? not written at "
                         r"exit: '%s'" % re.escape(self.log))


if __name__ == "__main__":
    unittest.main(verbosity=2)
