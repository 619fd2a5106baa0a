"""The daemon side of remote destinations (dest/remote.c) against real
OpenSSH servers in network namespaces this test makes
(tests/remote/sshhosts.py, three hosts, key-only, treesync-remote as the
forced command). Each case drives one destination through the
destination seam with tests/remote/dest-drive (the requests live sync and
the full pass make: batches of paths, renames, compares) and checks the
remote directory with tests/tools/treecmp.py, which reads it directly
(the namespaces share this file system). Every connection's route is
asserted first (sshhosts: the host's own veth).

Environment: TREESYNC_DEST_DRIVE, TREESYNC_REMOTE, TREESYNC_SOURCE_ROOT;
TREESYNC_WRAP (valgrind) wraps dest-drive. Needs root.
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("TREESYNC_SOURCE_ROOT",
                      os.path.dirname(os.path.dirname(HERE)))
BUILD = os.path.join(ROOT, "build")
DRIVE = os.environ.get("TREESYNC_DEST_DRIVE",
                       os.path.join(BUILD, "tests", "dest-drive"))
REMOTE = os.environ.get("TREESYNC_REMOTE",
                        os.path.join(BUILD, "treesync-remote"))
TREECMP = os.path.join(ROOT, "tests", "tools", "treecmp.py")
WRAP = os.environ.get("TREESYNC_WRAP", "").split()
sys.path.insert(0, HERE)
import sshhosts  # noqa: E402
from test_remote_side import make_source, write  # noqa: E402

RULE_DELETE = 8     # engine/rules.h RuleAction: the seam's action numbers
DEST_SUBTREE = 1
DEST_HARDLINK = 2
DEST_ERR_AWAY = -112  # -EHOSTDOWN


class Drive:
    """One dest-drive: a destination of a one-pair config."""

    def __init__(self, case, host, site, src, user=None, excludes=(),
                 delete=True, timeout=5, max_delete=None):
        self.case, self.host = case, host
        self.dir = tempfile.mkdtemp(prefix="drive.", dir=case.base)
        self.log = os.path.join(self.dir, "drive.log")
        self.dest = "h%d:%s" % (host.index, site)
        conf = os.path.join(self.dir, "t.conf")
        ex = ", ".join('"%s"' % e for e in excludes)
        with open(conf, "w") as f:
            f.write('control_socket = "%s/c.sock";\n'
                    'log_level = "debug";\n'
                    'remotes = ( { name = "h%d"; host = "%s"; user = "%s";'
                    ' identity = "%s"; known_hosts = "%s"; timeout = %d; }'
                    ' );\n'
                    'syncs = ( { name = "p"; source = "%s"; destinations ='
                    ' ( "%s" ); exclude = ( %s ); delete = %s; %s } );\n' % (
                        self.dir, host.index, host.addr,
                        user or case.hosts.remote_user,
                        case.hosts.identity, case.hosts.known_hosts,
                        timeout, src, self.dest, ex,
                        "true" if delete else "false",
                        "" if max_delete is None else
                        "max_delete = %s;" % max_delete))
        host.check_route()
        env = dict(os.environ, PATH="%s:%s" % (BUILD, os.environ["PATH"]))
        self.logf = open(self.log, "w")
        self.p = subprocess.Popen(WRAP + [DRIVE, conf, "p", self.dest],
                                  stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE,
                                  stderr=self.logf, text=True, env=env)
        self.changes = []

    def send(self, *fields):
        self.p.stdin.write("\t".join(fields) + "\n")
        self.p.stdin.flush()

    def answer(self, key, timeout=120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.p.stdout.readline()
            if not line:
                raise AssertionError("dest-drive ended: %s" % self.logtext())
            msg = json.loads(line)
            if "changed" in msg:
                self.changes.append(msg)
                continue
            if key in msg:
                return msg
        raise AssertionError("no %s answer: %s" % (key,
                                                    self.logtext()[-3000:]))

    def compare(self, relroot=""):
        self.send("compare", relroot)
        return self.answer("compare")

    def sync(self, paths):
        self.send("sync", *paths)
        return self.answer("batch")

    def rename(self, renames):
        fields = []
        for a, b, d in renames:
            fields += [a, b, "1" if d else "0"]
        self.send("rename", *fields)
        return self.answer("renames")

    def state(self):
        self.send("state")
        return self.answer("state")

    def wait_state(self, want, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state()["state"] == want:
                return
            time.sleep(0.2)
        raise AssertionError("never %s: %s" % (want, self.logtext()[-3000:]))

    def logtext(self):
        self.logf.flush()
        with open(self.log) as f:
            return f.read()

    def runs(self):
        return self.logtext().count(" run of ")

    def quit(self):
        if self.p.poll() is None:
            self.send("quit")
            self.p.stdin.close()
            rc = self.p.wait(60)
            self.case.assertEqual(rc, 0, self.logtext()[-3000:])
        self.logf.close()

    def kill(self):
        self.p.kill()
        self.p.wait()
        self.logf.close()


class RemoteDaemon(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (network namespaces)")
        cls.hosts = sshhosts.SshHosts(3)
        cls.base = tempfile.mkdtemp(prefix="treesync-remote-daemon.")
        os.chmod(cls.base, 0o755)
        cls.uid, cls.gid = cls.hosts.remote_uid, cls.hosts.remote_gid
        for h in cls.hosts:
            h.top = os.path.join(cls.base, "h%d" % h.index)
            os.makedirs(h.top)
            os.chown(h.top, cls.uid, cls.gid)
            h.authorize(cls.hosts.remote_user,
                        'restrict,command="%s %s"' % (REMOTE, h.top))
            h.authorize("root", 'restrict,command="%s %s"' % (
                REMOTE, h.top))

    @classmethod
    def tearDownClass(cls):
        cls.hosts.close()
        shutil.rmtree(cls.base, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="case.", dir=self.base)
        self.drives = []

    def tearDown(self):
        for d in self.drives:
            if d.p.poll() is None:
                d.kill()
        for h in self.hosts:
            h.unthrottle()
            h.link(True)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def drive(self, host, site, src, **kw):
        d = Drive(self, host, site, src, **kw)
        self.drives.append(d)
        return d

    def site(self, h, name):
        path = os.path.join(h.top, name)
        os.makedirs(path, exist_ok=True)
        os.chown(path, self.uid, self.gid)
        return path

    def treecmp(self, src, dst, *opts):
        r = subprocess.run([sys.executable, TREECMP, src, dst] +
                           list(opts), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        self.assertEqual(r.returncode, 0, r.stdout)

    def no_temporaries(self, top):
        for d, dirs, files in os.walk(top):
            left = [n for n in dirs + files if n.startswith(".treesync.")]
            self.assertEqual(left, [], "temporaries left in %s" % d)

    # -- convergence -------------------------------------------------------
    def test_convergence_files_dirs_links_modes_mtimes_excludes(self):
        h = self.hosts[0]
        site = self.site(h, "conv")
        src = os.path.join(self.tmp, "src")
        make_source(src)
        write(os.path.join(src, "dir", "x.swp"), b"swap")
        os.makedirs(os.path.join(src, "node_modules", "m"))
        write(os.path.join(src, "node_modules", "m", "i.js"), b"js")
        d = self.drive(h, site, src, excludes=("*.swp", "node_modules/"))
        r = d.compare()
        self.assertEqual((r["err"], r["errors"]), (0, 0), d.logtext())
        self.treecmp(src, site, "--no-owner", "--exclude", "*.swp",
                     "--exclude", "node_modules/")
        self.assertFalse(os.path.exists(os.path.join(site, "dir", "x.swp")))
        # Live-like batches: writes, a new directory, a chmod, a new
        # symlink target, a delete, a new hard link; each with the
        # paths an event would name (and their parents).
        write(os.path.join(src, "dir", "plain.txt"), b"new content",
              mtime_ns=1_700_000_000_000_000_001)
        os.makedirs(os.path.join(src, "fresh", "sub"))
        write(os.path.join(src, "fresh", "sub", "f"), b"f")
        os.chmod(os.path.join(src, "bin", "tool"), 0o2750)
        os.unlink(os.path.join(src, "deep", "sym"))
        os.symlink("elsewhere", os.path.join(src, "deep", "sym"))
        os.unlink(os.path.join(src, "dir", "q?"))
        os.link(os.path.join(src, "dir", "a b"), os.path.join(src, "ab2"))
        r = d.sync(["dir/plain.txt", "fresh", "bin/tool", "deep/sym",
                    "dir/q?", "ab2", "dir/a b"])
        self.assertEqual(r["err"], 0)
        by = {i["path"]: i for i in r["items"]}
        self.assertEqual(by["fresh"]["outcome"], DEST_SUBTREE)
        # plain.txt has a second name the batch does not hold: live
        # compares the whole pair then.
        self.assertEqual(by["dir/plain.txt"]["outcome"], DEST_HARDLINK)
        self.assertEqual(by["dir/q?"]["action"], RULE_DELETE)
        r = d.compare("fresh")
        self.assertEqual(r["errors"], 0)
        r = d.compare()
        self.assertEqual(r["errors"], 0)
        # The root's own entry (ab2 is new in it) goes alone, as live
        # sends it.
        d.sync([""])
        self.treecmp(src, site, "--no-owner", "--exclude", "*.swp",
                     "--exclude", "node_modules/")
        self.assertEqual(os.stat(os.path.join(site, "ab2")).st_ino,
                         os.stat(os.path.join(site, "dir", "a b")).st_ino)
        self.no_temporaries(site)
        d.quit()

    def test_owners_when_root_on_both_ends(self):
        h = self.hosts[1]
        site = os.path.join(h.top, "owners")
        os.makedirs(site, exist_ok=True)
        src = os.path.join(self.tmp, "src")
        make_source(src)
        for i, (dd, _, files) in enumerate(os.walk(src)):
            for n in files:
                os.lchown(os.path.join(dd, n), 1000 + i, 2000 + i)
        d = self.drive(h, site, src, user="root")
        self.assertEqual(d.compare()["errors"], 0, d.logtext())
        self.treecmp(src, site, "--owner")
        os.chown(os.path.join(src, "dir", "a b"), 4321, 1234)
        d.sync(["dir/a b"])
        self.treecmp(src, site, "--owner")
        d.quit()

    def test_delete_false_keeps_names_that_left(self):
        h = self.hosts[0]
        site = self.site(h, "nodelete")
        src = os.path.join(self.tmp, "src")
        write(os.path.join(src, "a", "keep"), b"k")
        write(os.path.join(src, "a", "gone"), b"g")
        d = self.drive(h, site, src, delete=False)
        d.compare()
        os.unlink(os.path.join(src, "a", "gone"))
        write(os.path.join(src, "a", "new"), b"n")
        r = d.sync(["a/gone", "a/new", "a"])
        self.assertEqual(r["err"], 0)
        self.assertTrue(os.path.exists(os.path.join(site, "a", "gone")))
        self.treecmp(src, site, "--no-owner", "--ignore-extra")
        d.compare()
        self.assertTrue(os.path.exists(os.path.join(site, "a", "gone")))
        d.quit()

    # -- renames and deletes travel as operations --------------------------
    def test_renames_send_under_one_mebibyte(self):
        h = self.hosts[2]
        site = self.site(h, "renames")
        src = os.path.join(self.tmp, "src")
        os.makedirs(os.path.join(src, "tree"))
        with open(os.path.join(src, "big"), "wb") as f:
            # Sparse, yet every byte of it would travel in a copy.
            f.truncate(1 << 30)
        for i in range(1000):
            write(os.path.join(src, "tree", "f%04d" % i), b"%d\n" % i)
        d = self.drive(h, site, src)
        self.assertEqual(d.compare()["errors"], 0, d.logtext())
        self.treecmp(src, site, "--no-owner", "--no-rsync")
        os.rename(os.path.join(src, "big"), os.path.join(src, "big2"))
        os.rename(os.path.join(src, "tree"), os.path.join(src, "tree2"))
        tx, rx = h.counters()
        r = d.rename([("big", "big2", False), ("tree", "tree2", True)])
        self.assertEqual(r["errs"], [0, 0])
        # What live does next: both names of each, then the directory's
        # contents.
        d.sync(["big", "big2", "tree", "tree2"])
        d.compare("tree2")
        d.sync([""])    # their parent, the root (live marks it)
        tx2, rx2 = h.counters()
        self.assertLess((tx2 - tx) + (rx2 - rx), 1 << 20)
        self.treecmp(src, site, "--no-owner", "--no-rsync")
        d.quit()

    def test_ten_thousand_deletes_in_few_runs_one_connection(self):
        h = self.hosts[2]
        site = self.site(h, "deletes")
        src = os.path.join(self.tmp, "src")
        os.makedirs(os.path.join(src, "many"))
        names = ["many/f%05d" % i for i in range(10000)]
        for n in names:
            with open(os.path.join(src, n), "wb") as f:
                f.write(b"x")
        d = self.drive(h, site, src)
        d.compare()
        logins = h.accepted_logins()
        runs = d.runs()
        for n in names:
            os.unlink(os.path.join(src, n))
        # As live hands them out: batches of up to the destination's
        # batch_paths (8192), the directory with them.
        todo = names + ["many"]
        while todo:
            r = d.sync(todo[:8192])
            self.assertEqual(r["err"], 0)
            todo = todo[8192:]
        self.assertLessEqual(d.runs() - runs, 3)
        self.assertEqual(h.accepted_logins(), logins)
        self.assertEqual(os.listdir(os.path.join(site, "many")), [])
        self.treecmp(src, site, "--no-owner")
        d.quit()

    # -- faults of one destination -------------------------------------------
    def test_host_offline_then_back(self):
        h = self.hosts[1]
        site = self.site(h, "offline")
        src = os.path.join(self.tmp, "src")
        write(os.path.join(src, "a"), b"a")
        d = self.drive(h, site, src, timeout=3)
        d.compare()
        h.link(False)
        try:
            write(os.path.join(src, "b"), b"b")
            r = d.sync(["b"])
            self.assertEqual(r["err"], DEST_ERR_AWAY)
            d.wait_state("away")
            # Requests while away come back at once, changing nothing.
            r = d.sync(["b"])
            self.assertEqual(r["err"], DEST_ERR_AWAY)
            st = d.state()
            self.assertGreater(st["away_since"], 0)
        finally:
            h.link(True)
        d.wait_state("available", timeout=90)
        r = d.compare()
        self.assertEqual((r["err"], r["errors"]), (0, 0))
        self.treecmp(src, site, "--no-owner")
        self.assertIn("away", d.logtext())
        d.quit()

    def test_hung_remote_rsync_times_out_and_recovers(self):
        h = self.hosts[1]
        site = self.site(h, "hung")
        src = os.path.join(self.tmp, "src")
        write(os.path.join(src, "data"), os.urandom(8 << 20))
        d = self.drive(h, site, src, timeout=3)
        h.throttle("4mbit", burst="64kbit")
        d.send("compare", "")
        stopped = []
        deadline = time.monotonic() + 20
        while not stopped and time.monotonic() < deadline:
            r = subprocess.run(["pgrep", "-u", self.hosts.remote_user, "-x",
                                "rsync"], stdout=subprocess.PIPE, text=True)
            for pid in r.stdout.split():
                os.kill(int(pid), signal.SIGSTOP)
                stopped.append(int(pid))
            time.sleep(0.05)
        self.assertTrue(stopped, "no remote rsync seen")
        try:
            r = d.answer("compare")
            self.assertEqual(r["err"], DEST_ERR_AWAY)
        finally:
            h.unthrottle()
            for pid in stopped:
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        d.wait_state("available", timeout=60)
        r = d.compare()
        self.assertEqual((r["err"], r["errors"]), (0, 0), d.logtext())
        self.treecmp(src, site, "--no-owner")
        self.no_temporaries(site)
        d.quit()

    def in_host(self, h, argv, check=True):
        """argv in the mount namespace of h's sshd (ip netns exec gave it
        one of its own: a mount made there is what the remote side
        sees)."""
        return subprocess.run(["nsenter", "-t", str(h.sshd.pid), "-m"] +
                              argv, check=check, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)

    def test_disk_full_retried_nothing_partial(self):
        h = self.hosts[0]
        site = self.site(h, "full")
        self.in_host(h, ["mount", "-t", "tmpfs", "-o",
                         "size=1m,mode=0755,uid=%d,gid=%d" % (self.uid,
                                                               self.gid),
                         "remote2-full", site])
        try:
            src = os.path.join(self.tmp, "src")
            write(os.path.join(src, "small"), b"s")
            write(os.path.join(src, "big"), os.urandom(3 << 20))
            d = self.drive(h, site, src)
            r = d.compare()
            self.assertGreater(r["errors"], 0, d.logtext())
            # Nothing partial under its final name: big is missing or
            # whole.
            size = self.in_host(h, ["sh", "-c", "stat -c %%s %s/big || "
                                    "echo none" % site], check=False)
            self.assertIn(size.stdout.strip().splitlines()[-1],
                          ("none", str(3 << 20)))
            self.in_host(h, ["mount", "-o", "remount,size=16m", site])
            r = d.compare()
            self.assertEqual(r["errors"], 0, d.logtext())
            r = self.in_host(h, [sys.executable, TREECMP, "--no-owner", src,
                                 site], check=False)
            self.assertEqual(r.returncode, 0, r.stdout)
            r = self.in_host(h, ["find", site, "-name", ".treesync.*"])
            self.assertEqual(r.stdout, "")
            d.quit()
        finally:
            self.in_host(h, ["umount", site], check=False)

    def test_changed_host_key_refused_logged_nothing_sent(self):
        h = self.hosts[2]
        site = self.site(h, "hostkey")
        src = os.path.join(self.tmp, "src")
        write(os.path.join(src, "big"), os.urandom(2 << 20))
        h.replace_host_key()
        try:
            logins = h.accepted_logins()
            sent = h.counters()[0]
            d = self.drive(h, site, src)
            r = d.compare()
            self.assertEqual(r["err"], DEST_ERR_AWAY)
            self.assertEqual(d.state()["state"], "away")
            log = d.logtext()
            self.assertEqual(log.count("host key does not match"), 1, log)
            self.assertIn(self.hosts.known_hosts, log)
            self.assertEqual(h.accepted_logins(), logins)
            self.assertLess(h.counters()[0] - sent, 256 << 10)
            self.assertEqual(os.listdir(site), [])
            d.quit()
        finally:
            self.hosts.write_known_hosts()

    def test_kill9_mid_transfer_restart_converges(self):
        h = self.hosts[0]
        site = self.site(h, "kill9")
        src = os.path.join(self.tmp, "src")
        write(os.path.join(src, "big"), os.urandom(16 << 20))
        write(os.path.join(src, "small"), b"s")
        h.throttle("8mbit", burst="64kbit")
        d = self.drive(h, site, src)
        d.send("compare", "")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any(
                n.startswith(".treesync.") for n in os.listdir(site)):
            time.sleep(0.05)
        time.sleep(0.5)
        d.kill()
        h.unthrottle()
        # The killed run's far end notices the connection gone, keeps its
        # partial file and removes its temp dir (putting the root's times
        # back): a restart waits for that, as systemd's RestartSec does.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and subprocess.run(
                ["pgrep", "-u", self.hosts.remote_user, "-f",
                 "treesync-remote"], stdout=subprocess.DEVNULL).returncode == 0:
            time.sleep(0.1)
        d2 = self.drive(h, site, src)
        r = d2.compare()
        self.assertEqual((r["err"], r["errors"]), (0, 0), d2.logtext())
        self.treecmp(src, site, "--no-owner")
        self.no_temporaries(site)
        d2.quit()

    def test_throttled_host_does_not_slow_another(self):
        slow, fast = self.hosts[1], self.hosts[2]
        s1, s2 = self.site(slow, "slow"), self.site(fast, "fast")
        src = os.path.join(self.tmp, "src")
        write(os.path.join(src, "big"), os.urandom(2 << 20))
        d1 = self.drive(slow, s1, src)
        d2 = self.drive(fast, s2, src)
        slow.throttle("1mbit")
        d1.send("compare", "")
        d2.compare()
        for i in range(20):
            write(os.path.join(src, "f%d" % i), b"%d" % i)
            d2.sync(["f%d" % i])
        d2.sync([""])   # the root's mtime, as live does after them
        # The fast host has everything while the slow one is still at
        # its first file.
        self.treecmp(src, s2, "--no-owner")
        self.assertFalse(os.path.exists(os.path.join(s1, "f19")))
        slow.unthrottle()
        d1.answer("compare")
        d1.compare()
        self.treecmp(src, s1, "--no-owner")
        d1.quit()
        d2.quit()


if __name__ == "__main__":
    unittest.main()
