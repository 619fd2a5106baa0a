"""Shared helpers of the integration tests that run the live daemon
(test_live.py, test_faults.py): the binary and tools, a temporary source
and destination per test, the config file, starting and stopping
treesyncd, and the independent convergence check (tests/tools/treecmp.py,
polled until the trees are equal or a deadline passes).

Environment: TREESYNCD, TREESYNC_SOURCE_ROOT, TREESYNC_WRAP (a command that
runs every treesyncd, e.g. valgrind: timeouts grow tenfold), TREESYNC_WATCH
(the config's `watch`: "inotify" unless set, so the suites keep testing
what they were written for; tests/meson.build runs test_live again with
"fanotify").
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.environ.get("TREESYNC_SOURCE_ROOT",
                      os.path.dirname(os.path.dirname(os.path.dirname(
                          os.path.abspath(__file__)))))
TREESYNCD = os.environ.get("TREESYNCD",
                           os.path.join(ROOT, "build", "treesyncd"))
TREESYNCCTL = os.environ.get("TREESYNCCTL",
                             os.path.join(os.path.dirname(TREESYNCD),
                                          "treesyncctl"))
GENTREE = os.path.join(ROOT, "tests", "tools", "gentree.py")
TREECMP = os.path.join(ROOT, "tests", "tools", "treecmp.py")
WRAP = os.environ.get("TREESYNC_WRAP", "").split()
CHURN_SECONDS = float(os.environ.get("TREESYNC_CHURN_SECONDS", "20"))
WATCH = os.environ.get("TREESYNC_WATCH", "inotify")
SLOW = 10 if WRAP else 1
DEADLINE = 30 * SLOW


def write(path, data=b"", mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def temp_files(tree):
    return [os.path.join(d, n) for d, ds, fs in os.walk(tree)
            for n in ds + fs if n.startswith(".treesync.")]


class DaemonCase(unittest.TestCase):
    """A temporary src/ and dst/ in self.tmp and a treesyncd to run on them."""
    delay_ms = 20
    watch = WATCH

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="treesync-live.")
        os.chmod(self.tmp, 0o755)
        self.src = os.path.join(self.tmp, "src")
        self.dst = os.path.join(self.tmp, "dst")
        self.log = os.path.join(self.tmp, "sync.log")
        self.conf = os.path.join(self.tmp, "t.conf")
        self.sock = os.path.join(self.tmp, "c.sock")
        os.mkdir(self.src)
        self.proc = None

    def tearDown(self):
        # A clean stop, checked: under TREESYNC_WRAP (valgrind) the exit
        # code is where memcheck errors and leaks at exit show up.
        problem = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=10 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                rc = "(killed: SIGTERM did not stop it)"
            if rc != 0:
                problem = "daemon exit %s at the end of the test\n%s" % (
                    rc, self.logtext()[-2000:])
        if os.environ.get("TREESYNC_KEEP"):
            sys.stderr.write("kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if problem:
            self.fail(problem)

    def write_config(self, syncs=None, extra="", sock=None):
        """syncs: (name, source, [destinations][, settings]) tuples."""
        syncs = syncs or [("t", self.src, [self.dst], "")]
        body = ",\n".join(
            '{ name = "%s"; source = "%s"; destinations = ( %s ); %s }' % (
                x[0], x[1], ", ".join('"%s"' % d for d in x[2]),
                x[3] if len(x) > 3 else "")
            for x in syncs)
        with open(self.conf, "w") as f:
            f.write('workers = 4;\ndelay_ms = %d;\nlog_file = "%s";\n'
                    'log_level = "debug";\ncontrol_socket = "%s";\n'
                    'watch = "%s";\n%s\nsyncs = ( %s );\n' % (
                        self.delay_ms, self.log, sock or self.sock,
                        self.watch, extra, body))

    def start(self, syncs=None, env=None):
        self.write_config(syncs)
        self.proc = subprocess.Popen(WRAP + [TREESYNCD, "-f", "-c",
                                             self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, env=env)
        self.wait_equal()

    def logtext(self):
        if not os.path.exists(self.log):
            return ""
        with open(self.log, errors="replace") as f:
            return f.read()

    def compare(self, src, dst, *args, rsync=False):
        cmd = [sys.executable, TREECMP, src, dst] + list(args)
        if not rsync:
            cmd.append("--no-rsync")
        return subprocess.run(cmd, capture_output=True, text=True)

    def wait_equal(self, src=None, dst=None, *args, deadline=DEADLINE):
        """Polls the independent check until the mirror is equal (within
        deadline seconds: a tree whose check itself takes seconds may
        need more than the usual)."""
        src, dst = src or self.src, dst or self.dst
        end = time.monotonic() + deadline
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                self.fail("daemon exited %d:\n%s" % (
                    self.proc.returncode, self.logtext()[-3000:]))
            if os.path.isdir(dst):
                p = self.compare(src, dst, *args)
                if p.returncode == 0:
                    p = self.compare(src, dst, *args, rsync=True)
                    if p.returncode == 0:
                        return
            if time.monotonic() > end:
                self.fail("not converged after %d s:\n%s\nlog tail:\n%s" % (
                    deadline, p.stdout[-3000:], self.logtext()[-3000:]))
            time.sleep(0.1)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=10 * SLOW)
        self.assertEqual(rc, 0, self.logtext()[-2000:])
        self.proc = None

    def sysctl(self, name, value, kind="inotify"):
        """Sets a machine-wide inotify (or fanotify) limit; returns the
        function that puts it back (also run at cleanup). Other tests run
        at the same time: hold it lowered for as short a time as the test
        allows."""
        path = "/proc/sys/fs/%s/%s" % (kind, name)
        with open(path) as f:
            old = f.read().strip()
        done = []
        def put(v):
            with open(path, "w") as f:
                f.write(v)
        def restore():
            if not done:
                done.append(True)
                put(old)
        put(str(value))
        self.addCleanup(restore)
        return restore

