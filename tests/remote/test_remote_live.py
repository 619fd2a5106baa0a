"""The live daemon (treesyncd -f) with remote destinations over real sshds
in network namespaces this test makes (tests/remote/sshhosts.py, three
hosts): the randomized churn of test_live with one local and two remote
destinations, a host taken offline during 200,000 changes (the daemon's
RSS, the other destinations, `treesyncctl status`, the catch-up), and a
throttled host beside a fast one. Every check is tests/tools/treecmp.py
on the remote directory (the namespaces share this file system).

Environment: TREESYNCD, TREESYNCCTL, TREESYNC_REMOTE,
TREESYNC_SOURCE_ROOT, TREESYNC_WRAP (as the integration suites). Root.
"""
import os
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("TREESYNC_SOURCE_ROOT",
                      os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import sshhosts  # noqa: E402
import test_live  # noqa: E402
from daemonlib import (DEADLINE, SLOW, TREESYNCCTL, TREESYNCD,  # noqa: E402
                       DaemonCase, temp_files, write)

REMOTE = os.environ.get("TREESYNC_REMOTE",
                        os.path.join(ROOT, "build", "treesync-remote"))


def sanitized(binary):
    """An ASan build: its shadow memory and quarantine are RSS too."""
    with open(binary, "rb") as f:
        return b"__asan_init" in f.read()


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RemoteLive(DaemonCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (network namespaces)")
        cls.hosts = sshhosts.SshHosts(3)
        cls.top = os.path.join(cls.hosts.dir, "sites")
        os.makedirs(cls.top)
        os.chmod(cls.top, 0o755)
        for h in cls.hosts:
            h.site_top = os.path.join(cls.top, "h%d" % h.index)
            os.makedirs(h.site_top)
            os.chown(h.site_top, cls.hosts.remote_uid, cls.hosts.remote_gid)
            h.authorize(cls.hosts.remote_user, 'restrict,command="%s %s"' % (
                REMOTE, h.site_top))

    @classmethod
    def tearDownClass(cls):
        cls.hosts.close()

    def setUp(self):
        super().setUp()
        self.remote_dirs = []
        for h in self.hosts:
            h.check_route()
            d = os.path.join(h.site_top, os.path.basename(self.tmp))
            os.makedirs(d)
            os.chown(d, self.hosts.remote_uid, self.hosts.remote_gid)
            self.remote_dirs.append(d)
        self.use = [0, 1]      # the hosts of this test's pair

    def tearDown(self):
        for h in self.hosts:
            h.unthrottle()
            h.link(True)
        super().tearDown()

    # -- the pair: one local and remote destinations ----------------------
    def write_config(self, syncs=None, extra="", sock=None):
        remotes = ",\n".join(
            '{ name = "h%d"; host = "%s"; user = "%s"; identity = "%s"; '
            'known_hosts = "%s"; timeout = 5; }' % (
                h.index, h.addr, self.hosts.remote_user, self.hosts.identity,
                self.hosts.known_hosts) for h in self.hosts)
        dests = [self.dst] + ["h%d:%s" % (i, self.remote_dirs[i])
                              for i in self.use]
        super().write_config(syncs or [("t", self.src, dests, "")],
                             extra="remotes = ( %s );\n%s" % (remotes, extra),
                             sock=sock)

    def wait_equal(self, src=None, dst=None, *args):
        if dst is not None:
            return super().wait_equal(src, dst, *args)
        super().wait_equal(src, self.dst, *args)
        for i in self.use:
            super().wait_equal(src, self.remote_dirs[i], "--no-owner", *args)

    def status(self):
        return subprocess.run([TREESYNCCTL, "-s", self.sock, "status"],
                              capture_output=True, text=True).stdout

    # -- the cases -----------------------------------------------------------
    def test_churn_seed_1(self):
        test_live.Live.churn(self, 1)
        for i in self.use:
            self.assertEqual(temp_files(self.remote_dirs[i]), [])

    def test_churn_seed_2(self):
        test_live.Live.churn(self, 2)

    def test_churn_seed_3(self):
        test_live.Live.churn(self, 3)

    def test_host_offline_during_200000_changes(self):
        away = self.hosts[1]
        for i in range(10):
            write(os.path.join(self.src, "w%d" % i), b"start")
        self.start()
        away.link(False)
        peak = 0
        try:
            # Lean: 190,000 small writes to ten files, 10,000 new files.
            fds = [os.open(os.path.join(self.src, "w%d" % i),
                           os.O_WRONLY | os.O_APPEND) for i in range(10)]
            for n in range(190000):
                os.write(fds[n % 10], b"%d\n" % n)
                if n % 19 == 0:
                    d = os.path.join(self.src, "new%d" % (n // 19 // 1000))
                    os.makedirs(d, exist_ok=True)
                    write(os.path.join(d, "f%d" % (n // 19)), b"%d" % n)
                if n % 10000 == 0:
                    peak = max(peak, rss_kib(self.proc.pid))
            for fd in fds:
                os.close(fd)
            # The others keep converging while the host is away.
            super().wait_equal(self.src, self.dst)
            super().wait_equal(self.src, self.remote_dirs[0], "--no-owner")
            peak = max(peak, rss_kib(self.proc.pid))
            deadline = time.monotonic() + DEADLINE
            while "offline since" not in self.status() and \
                    time.monotonic() < deadline:
                time.sleep(0.2)
            st = self.status()
            self.assertIn("offline since", st)
            self.assertIn("paths pending", st)
        finally:
            away.link(True)
        if SLOW == 1 and not sanitized(TREESYNCD):
            self.assertLess(peak, 64 * 1024, "RSS %d KiB" % peak)
        self.wait_equal()
        self.assertIn("back: comparing it", self.logtext())

    def test_throttled_host_does_not_slow_another(self):
        slow, fast = 1, 0
        self.start()
        self.hosts[slow].throttle("1mbit")
        write(os.path.join(self.src, "big"), os.urandom(3 << 20))
        for i in range(20):
            write(os.path.join(self.src, "small%d" % i), b"%d" % i)
        # The fast host and the local destination have it all while the
        # slow host is still at its big file.
        super().wait_equal(self.src, self.remote_dirs[fast], "--no-owner")
        super().wait_equal(self.src, self.dst)
        big = os.path.join(self.remote_dirs[slow], "big")
        self.assertFalse(os.path.exists(big) and
                         os.path.getsize(big) == 3 << 20)
        self.hosts[slow].unthrottle()
        self.wait_equal()

    def test_renames_travel_as_renames(self):
        self.use = [2]
        h = self.hosts[2]
        with open(os.path.join(self.src, "big"), "wb") as f:
            f.truncate(1 << 30)     # sparse; a copy would send all of it
        for i in range(1000):
            write(os.path.join(self.src, "tree", "f%04d" % i), b"%d" % i)
        self.start()
        tx, rx = h.counters()
        os.rename(os.path.join(self.src, "big"),
                  os.path.join(self.src, "big2"))
        os.rename(os.path.join(self.src, "tree"),
                  os.path.join(self.src, "tree2"))
        self.wait_equal()
        tx2, rx2 = h.counters()
        if SLOW == 1:
            # Under valgrind the watcher may see a move's two halves
            # too far apart to pair them (then it is a delete and a
            # create, as for a local destination).
            self.assertLess((tx2 - tx) + (rx2 - rx), 1 << 20)
        self.assertIn("rename", self.logtext())

    def test_ten_thousand_deletes_few_runs_one_connection(self):
        self.use = [2]
        h = self.hosts[2]
        names = [os.path.join(self.src, "many", "f%05d" % i)
                 for i in range(10000)]
        for n in names:
            write(n, b"x")
        self.start()
        logins = h.accepted_logins()
        runs = self.logtext().count(" run of ")
        for n in names:
            os.unlink(n)
        self.wait_equal()
        self.assertLessEqual(self.logtext().count(" run of ") - runs, 3)
        self.assertEqual(h.accepted_logins(), logins)

    def test_kill9_mid_transfer_restart_converges(self):
        self.use = [0]
        h = self.hosts[0]
        site = self.remote_dirs[0]
        self.start()
        h.throttle("8mbit", burst="64kbit")
        write(os.path.join(self.src, "big"), os.urandom(16 << 20))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                n.startswith(".treesync.") for n in os.listdir(site)):
            time.sleep(0.05)
        time.sleep(0.5)
        self.proc.kill()
        self.proc.wait()
        self.proc = None
        h.unthrottle()
        # The far end of the killed run cleans up first (RestartSec).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and subprocess.run(
                ["pgrep", "-u", self.hosts.remote_user, "-f",
                 "treesync-remote"], stdout=subprocess.DEVNULL).returncode == 0:
            time.sleep(0.1)
        self.start()
        self.assertEqual(temp_files(site), [])


if __name__ == "__main__":
    unittest.main()
