#!/usr/bin/env python3
"""treesyncd under a real systemd: a minimal Debian 12 booted with
systemd-nspawn, treesync installed into it with `meson install --destdir`,
driven with `nsenter -t PID -a systemctl ...`.

The root comes from rootfs.py's cache (debootstrap once, keyed by the
package list) and each run boots an overlay of it (a copy where overlayfs
is refused), so a run never dirties the cache. Skipped, with the reason,
when there is no root, no mirror or no debootstrap.

Environment: TREESYNC_BUILD_DIR (the meson build dir to install from;
default build/), TREESYNC_SOURCE_ROOT, TREESYNC_KEEP=1 keeps the run dir.
Tests run in order (test_1_ .. test_7_) on one booted container; test_5c
checks that the sandbox lets metrics_listen have its TCP socket.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import rootfs  # noqa: E402

ROOT = os.environ.get("TREESYNC_SOURCE_ROOT",
                      os.path.dirname(os.path.dirname(HERE)))
BUILD = os.environ.get("TREESYNC_BUILD_DIR", os.path.join(ROOT, "build"))
TREECMP = os.path.join(ROOT, "tests", "tools", "treecmp.py")
DEADLINE = 60  # seconds; the machine is shared, never a timing assertion

CONFIG = """workers = 2;
delay_ms = 20;
log_level = "info";
%s
syncs = (
%s
);
"""
PAIR = '  { name = "%s"; source = "/srv/src/%s"; destinations = ( "/srv/dst/%s" ); }'


def log(msg):
    sys.stderr.write("system: %s\n" % msg)
    sys.stderr.flush()


def seqnum(entry):
    """The journal's sequence number of an entry (from its cursor)."""
    return int(re.search(r"(?:^|;)i=([0-9a-f]+)", entry["__CURSOR"]).group(1),
               16)


def wait_for(what, pred, deadline=DEADLINE):
    end = time.monotonic() + deadline
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > end:
            raise AssertionError("timed out after %d s waiting for %s" %
                                 (deadline, what))
        time.sleep(0.2)


class Systemd(unittest.TestCase):
    run_dir = None
    skip_reason = None
    nspawn = None
    leader = None
    mounted = False
    config_extra = ""  # more global settings for the config file

    @classmethod
    def setUpClass(cls):
        cache, why = rootfs.ensure_root()
        if cache is None:
            # Each test reports the skip (a class-level skip would count
            # as no test at all in scripts/test.sh's summary).
            cls.skip_reason = "skipped: " + why
            log(cls.skip_reason)
            return
        cls.run_dir = tempfile.mkdtemp(prefix="treesync-system.")
        try:
            cls.boot(cache)
        except BaseException:
            cls.cleanup()
            raise

    @classmethod
    def boot(cls, cache):
        d = cls.run_dir
        cls.root = os.path.join(d, "root")
        for sub in ("root", "upper", "work"):
            os.mkdir(os.path.join(d, sub))
        r = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o",
             "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (cache, d, d),
             cls.root], stderr=subprocess.PIPE, text=True)
        if r.returncode == 0:
            cls.mounted = True
        else:
            log("overlay refused (%s): copying the root" % r.stderr.strip())
            os.rmdir(cls.root)
            subprocess.run(["cp", "-a", "--reflink=auto", cache, cls.root],
                           check=True)
        for p in ("srv/src/alpha", "srv/src/beta", "srv/dst"):
            os.makedirs(os.path.join(cls.root, p))
        cls.install()
        cls.console = open(os.path.join(d, "console.log"), "w")
        cls.machine = "treesync-test-%d" % os.getpid()
        cls.nspawn = subprocess.Popen(
            ["systemd-nspawn", "--register=no", "--keep-unit", "-q",
             "-M", cls.machine, "-D", cls.root, "--boot",
             "--console=pipe"],
            stdin=subprocess.DEVNULL, stdout=cls.console,
            stderr=subprocess.STDOUT, start_new_session=True)
        cls.leader = wait_for("the container's systemd", cls.find_leader)
        # Until PID 1 listens on its bus, systemctl fails at once.
        state = wait_for("the container's systemd to answer", lambda: cls.sh(
            ["systemctl", "is-system-running", "--wait"], check=False,
            timeout=120).stdout.strip(), deadline=120)
        log("booted (%s)" % state)
        cls.after_boot()

    @classmethod
    def install(cls):
        """treesync into the root before it boots (test_deb.py: the
        package instead, after the boot)."""
        subprocess.run(["meson", "install", "-C", BUILD, "--destdir",
                        cls.root, "--no-rebuild", "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
        cls.configure()

    @classmethod
    def configure(cls):
        cls.write_config(["alpha"])
        # What an operator does (see the unit's comment): grant the
        # destinations.
        cls.dropin("dest.conf", "[Service]\nReadWritePaths=/srv/dst\n")

    @classmethod
    def after_boot(cls):
        pass

    @classmethod
    def find_leader(cls):
        if cls.nspawn.poll() is not None:
            raise AssertionError("systemd-nspawn exited (%d); see %s" % (
                cls.nspawn.returncode, cls.console.name))
        try:
            with open("/proc/%d/task/%d/children" % (
                    cls.nspawn.pid, cls.nspawn.pid)) as f:
                kids = f.read().split()
        except OSError:
            return None
        for k in kids:
            try:
                with open("/proc/%s/comm" % k) as f:
                    if f.read().strip() == "systemd":
                        return int(k)
            except OSError:
                pass
        return None

    @classmethod
    def sh(cls, argv, check=True, timeout=DEADLINE):
        r = subprocess.run(["nsenter", "-t", str(cls.leader), "-a"] + argv,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s: exit %d\n%s%s" % (
                " ".join(argv), r.returncode, r.stdout, r.stderr))
        return r

    @classmethod
    def write_config(cls, names):
        with open(os.path.join(cls.root, "etc/treesync/treesync.conf"),
                  "w") as f:
            f.write(CONFIG % (cls.config_extra,
                              ",\n".join(PAIR % (n, n, n) for n in names)))

    @classmethod
    def dropin(cls, name, text):
        d = os.path.join(cls.root, "etc/systemd/system/treesyncd.service.d")
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, name)
        if text is None:
            os.unlink(path)
        else:
            with open(path, "w") as f:
                f.write(text)

    @classmethod
    def cleanup(cls):
        if cls.nspawn is not None and cls.nspawn.poll() is None:
            if cls.leader is not None:
                subprocess.run(["nsenter", "-t", str(cls.leader), "-a",
                                "systemctl", "poweroff", "--no-block"],
                               stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=30)
            try:
                cls.nspawn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # nspawn turns SIGTERM into a poweroff of the container.
                log("container did not power off: SIGTERM to nspawn")
                cls.nspawn.terminate()
                try:
                    cls.nspawn.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    log("killing the container")
                    os.killpg(cls.nspawn.pid, signal.SIGKILL)
                    cls.nspawn.wait()
        if getattr(cls, "console", None) is not None:
            cls.console.close()
        shutil.rmtree("/run/systemd/nspawn/propagate/%s" % getattr(
            cls, "machine", "-"), ignore_errors=True)
        if cls.mounted:
            if subprocess.run(["umount", cls.root]).returncode != 0:
                subprocess.run(["umount", "-l", cls.root])
            cls.mounted = False
        if cls.run_dir is not None:
            if os.environ.get("TREESYNC_KEEP"):
                log("kept %s" % cls.run_dir)
            else:
                shutil.rmtree(cls.run_dir, ignore_errors=True)

    @classmethod
    def tearDownClass(cls):
        cls.cleanup()

    def setUp(self):
        if self.skip_reason is not None:
            self.skipTest(self.skip_reason)

    # helpers

    def show(self, *props):
        r = self.sh(["systemctl", "show", "treesyncd", "-p",
                     ",".join(props)])
        return dict(line.split("=", 1) for line in r.stdout.splitlines()
                    if "=" in line)

    def journal(self, *matches):
        r = self.sh(["journalctl", "-u", "treesyncd", "-o", "json",
                     "--no-pager"] + list(matches))
        return [json.loads(line) for line in r.stdout.splitlines() if line]

    def host(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def assert_mirrored(self, name):
        src, dst = self.host("/srv/src/" + name), self.host("/srv/dst/" + name)

        def same():
            return subprocess.run(
                [sys.executable, TREECMP, src, dst],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True).returncode == 0
        wait_for("%s to equal %s (treecmp)" % (dst, src), same)

    def write_in_container(self, path, text):
        # Written by a process inside the container, as a user would.
        self.sh(["sh", "-c", "printf '%%s' '%s' > '%s'" % (text, path)])

    # the checks, in order

    def test_1_start_waits_for_ready(self):
        self.sh(["systemctl", "daemon-reload"])
        self.sh(["systemctl", "start", "treesyncd"], timeout=120)
        p = self.show("Type", "ActiveState", "SubState", "MainPID")
        self.assertEqual(p["Type"], "notify")
        self.assertEqual((p["ActiveState"], p["SubState"]),
                         ("active", "running"))
        # treesyncd logs "ready" just before READY=1, through the same
        # journal socket systemd's own "Started" goes through after it
        # got READY=1: the journal's order is the order of events.
        def lines():
            es = self.journal()
            ready = [e for e in es if e.get("MESSAGE", "").endswith(
                "ready: watches in place, start-up sync under way")]
            started = [e for e in es if e.get("_PID") == "1" and
                       str(e.get("MESSAGE", "")).startswith("Started ")]
            return (ready, started) if ready and started else None
        ready, started = wait_for("the ready and Started lines", lines)
        self.assertLess(seqnum(ready[-1]), seqnum(started[-1]),
                        "systemd reported Started before treesyncd was "
                        "ready")
        # And READY means the watches are in place.
        watching = [e for e in self.journal() if str(e.get("MESSAGE", ""))
                    .endswith("alpha: watching 1 directories under "
                              "/srv/src/alpha")]
        self.assertTrue(watching)
        self.assertLess(seqnum(watching[-1]), seqnum(started[-1]))

    def test_2_file_arrives(self):
        self.write_in_container("/srv/src/alpha/hello.txt", "hello")
        self.assert_mirrored("alpha")
        with open(self.host("/srv/dst/alpha/hello.txt")) as f:
            self.assertEqual(f.read(), "hello")

    def test_3_status_line(self):
        pat = (r'Status: "(idle: \d+ pairs? in sync|syncing \d+/\d+ pairs?, '
               r'[\d,]+ files? queued)"')
        r = self.sh(["systemctl", "status", "--no-pager", "treesyncd"],
                    check=False)
        self.assertRegex(r.stdout, pat)
        wait_for("StatusText idle", lambda: self.show("StatusText")[
            "StatusText"] == "idle: 1 pair in sync")

    def test_4_journal_fields(self):
        def copy_lines():
            return [e for e in self.journal("SYNC=alpha")
                    if e.get("ACTION") == "copy"]
        es = wait_for("a copy line with SYNC=alpha", copy_lines)
        e = es[-1]
        self.assertEqual(e["PATH"], "hello.txt")
        self.assertEqual(e["DEST"], "/srv/dst/alpha")
        self.assertEqual(e["PRIORITY"], "6")
        self.assertEqual(e["_SYSTEMD_UNIT"], "treesyncd.service")
        self.assertRegex(e["MESSAGE"],
                         r"^info  alpha copy +hello\.txt -> /srv/dst/alpha  "
                         r"\d+ B ")
        self.assertEqual(self.journal("SYNC=nosuchpair"), [])

    def test_5_reload_adds_pair(self):
        self.write_in_container("/srv/src/beta/b.txt", "beta")
        self.write_config(["alpha", "beta"])
        pid = self.show("MainPID")["MainPID"]
        self.sh(["systemctl", "reload", "treesyncd"], timeout=120)
        self.assert_mirrored("beta")
        self.write_in_container("/srv/src/beta/later.txt", "after reload")
        self.assert_mirrored("beta")
        p = self.show("MainPID", "ActiveState")
        self.assertEqual(p["MainPID"], pid, "reload restarted the daemon")
        self.assertEqual(p["ActiveState"], "active")
        self.assertTrue([e for e in self.journal("SYNC=beta")
                         if e.get("PATH") == "later.txt"])

    def test_5c_metrics_endpoint_inside_the_sandbox(self):
        # The unit's RestrictAddressFamilies= must let metrics_listen
        # have its TCP socket. The container shares the host's network:
        # a free loopback port of the host.
        import socket
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        saved = type(self).config_extra
        type(self).config_extra = saved + (
            '\nmetrics_listen = "127.0.0.1:%d";' % port)
        try:
            self.write_config(["alpha", "beta"])
            self.sh(["systemctl", "reload", "treesyncd"], timeout=120)
            # bash's /dev/tcp: the minimal root has no HTTP client.
            r = self.sh(["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/%d && "
                         "printf 'GET /metrics HTTP/1.0\\r\\n\\r\\n' >&3 "
                         "&& cat <&3" % port])
            self.assertTrue(r.stdout.startswith("HTTP/1.0 200 OK"), r.stdout)
            self.assertIn('treesync_files_copied_total{sync="alpha",'
                          'destination="/srv/dst/alpha"} ', r.stdout)
        finally:
            type(self).config_extra = saved
            self.write_config(["alpha", "beta"])
            self.sh(["systemctl", "reload", "treesyncd"], timeout=120)

    def test_6_watchdog_restarts_stalled_daemon(self):
        self.dropin("watchdog.conf", "[Service]\nWatchdogSec=3s\n"
                    "Environment=TREESYNC_TEST_HOOKS=1\nLimitCORE=0\n")
        try:
            self.sh(["systemctl", "daemon-reload"])
            self.sh(["systemctl", "restart", "treesyncd"], timeout=120)
            p = self.show("MainPID", "NRestarts", "WatchdogUSec")
            self.assertEqual(p["WatchdogUSec"], "3s")
            # Pings keep it alive well past the timeout.
            time.sleep(7)
            self.assertEqual(self.show("MainPID")["MainPID"], p["MainPID"])
            self.sh(["systemctl", "kill", "-s", "USR2", "--kill-whom=main",
                     "treesyncd"])
            wait_for("systemd to restart the stalled daemon", lambda: (
                lambda q: q["NRestarts"] != p["NRestarts"] and
                q["ActiveState"] == "active" and
                q["MainPID"] not in ("0", p["MainPID"]))(
                    self.show("NRestarts", "ActiveState", "MainPID")))
            self.assertTrue([e for e in self.journal() if "atchdog timeout"
                             in str(e.get("MESSAGE", ""))])
            # And the new one syncs.
            self.write_in_container("/srv/src/alpha/after-watchdog.txt", "x")
            self.assert_mirrored("alpha")
        finally:
            self.dropin("watchdog.conf", None)
            self.sh(["systemctl", "daemon-reload"])

    def test_7_stop_is_clean(self):
        cursor = self.journal()[-1]["__CURSOR"]
        self.sh(["systemctl", "stop", "treesyncd"], timeout=120)
        self.assertEqual(self.show("ActiveState")["ActiveState"], "inactive")
        # An inactive unit may be unloaded at once (its exec status with
        # it), so the journal is the witness: our last line, then
        # systemd's verdict, and no failure.
        def after():
            msgs = [str(e.get("MESSAGE", "")) for e in self.journal(
                "--after-cursor", cursor)]
            return msgs if any("Deactivated successfully" in m
                               for m in msgs) else None
        msgs = wait_for("systemd's 'Deactivated successfully'", after)
        self.assertTrue(any(m.endswith("SIGTERM received: stopping; copies "
                                       "in progress are abandoned (their "
                                       "temporaries removed)")
                            for m in msgs), msgs)
        self.assertTrue(any(m.endswith("treesyncd stopped") for m in msgs),
                        msgs)
        self.assertFalse([m for m in msgs if "Failed with result" in m or
                          "code=exited" in m or "code=killed" in m], msgs)
        self.assertEqual(self.sh(["pgrep", "-x", "treesyncd"],
                                 check=False).stdout, "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
