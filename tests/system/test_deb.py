#!/usr/bin/env python3
"""The Debian package, the way a Debian admin gets it:

1. a clean clone of the checkout (`git clone`: only what is committed),
   built with `dpkg-buildpackage -us -uc -b` into treesync_VERSION_amd64.deb;
2. `lintian` on the result: no E: and no W: (overrides only with a
   reason, in debian/);
3. `apt-get install ./treesync_*.deb` into the Debian 12 container that
   test_systemd.py boots (rootfs.py's cached root, booted with
   systemd-nspawn): the unit is enabled and running idle (the shipped
   config has no pair), the control socket is 0660 root:treesync and a
   member of the group may use treesyncctl, others may not;
4. test_systemd.py's checks against the installed package (start and
   READY, a file arrives, STATUS, journal fields, reload, watchdog, stop);
5. `apt-get purge`: nothing of it is left: every path `dpkg -L` listed is
   gone unless another package owns it, and so are the log directory, the
   runtime directory, the group, systemd's enablement and dpkg's records.

Skipped, with the reason, when not root, when the checkout is not a git
repository, or when the build tools cannot be had. Installs debhelper,
lintian, dpkg-dev and bash-completion when missing (as scripts/deps.sh).

Environment: TREESYNC_SOURCE_ROOT (the checkout), TREESYNC_KEEP=1 keeps
the run directory (the build and the container's root).
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_systemd  # noqa: E402

ROOT = test_systemd.ROOT
BUILD_TOOLS = {"dpkg-buildpackage": "dpkg-dev", "dh": "debhelper",
               "lintian": "lintian"}
BUILD_PACKAGES = ["debhelper", "dpkg-dev", "lintian", "bash-completion",
                  "pkgconf", "meson", "ninja-build", "libevent-dev",
                  "libconfig-dev", "libinotifytools0-dev", "libxxhash-dev",
                  "libsystemd-dev", "systemd"]
GROUP_MEMBER = "deb-tsmember"
OUTSIDER = "deb-tsother"
log = test_systemd.log


def project_version():
    with open(os.path.join(ROOT, "meson.build")) as f:
        return re.search(r"version\s*:\s*'([^']+)'", f.read()).group(1)


def ensure_build_tools():
    """None, or why the package cannot be built here."""
    missing = [p for p in BUILD_PACKAGES if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True).stdout !=
        "install ok installed"]
    if missing:
        log("installing %s (apt-get)" % " ".join(missing))
        r = subprocess.run(["apt-get", "install", "-y", "-qq",
                            "--no-install-recommends"] + missing,
                           env=dict(os.environ,
                                    DEBIAN_FRONTEND="noninteractive"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           text=True)
        if r.returncode != 0:
            return "apt-get install %s failed: %s" % (" ".join(missing),
                                                      r.stderr[-300:])
    for tool, pkg in BUILD_TOOLS.items():
        if shutil.which(tool) is None:
            return "%s (%s) is not installed" % (tool, pkg)
    return None


class Deb(test_systemd.Systemd):
    # The package's config names the group; the test's keeps it.
    config_extra = 'control_socket_group = "treesync";'
    deb = None
    files = None        # dpkg -L after the install
    timings = {}

    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            cls.skip_reason = "skipped: needs root (apt-get, nspawn)"
            log(cls.skip_reason)
            return
        if not os.path.exists(os.path.join(ROOT, ".git")):
            cls.skip_reason = "skipped: %s is not a git checkout" % ROOT
            log(cls.skip_reason)
            return
        why = ensure_build_tools()
        if why is not None:
            cls.skip_reason = "skipped: " + why
            log(cls.skip_reason)
            return
        cls.build_dir = tempfile.mkdtemp(prefix="treesync-deb.")
        try:
            cls.build_package()
        except BaseException:
            cls.remove_build()
            raise
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.remove_build()
        for what, secs in cls.timings.items():
            log("%s: %.1f s" % (what, secs))

    @classmethod
    def remove_build(cls):
        d = getattr(cls, "build_dir", None)
        if d is None:
            return
        if os.environ.get("TREESYNC_KEEP"):
            log("kept %s" % d)
        else:
            shutil.rmtree(d, ignore_errors=True)

    @classmethod
    def build_package(cls):
        src = os.path.join(cls.build_dir, "treesync")
        t = time.monotonic()
        subprocess.run(["git", "clone", "--quiet", ROOT, src], check=True)
        # The unit suites run in every normal build (meson test); the
        # package build skips them for the time budget (nocheck).
        r = subprocess.run(["dpkg-buildpackage", "-us", "-uc", "-b"],
                           cwd=src, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True,
                           env=dict(os.environ, DEB_BUILD_OPTIONS="nocheck"))
        cls.timings["clone and dpkg-buildpackage"] = time.monotonic() - t
        if r.returncode != 0:
            raise AssertionError("dpkg-buildpackage failed (%d):\n%s" % (
                r.returncode, r.stdout[-4000:]))
        cls.deb = os.path.join(cls.build_dir, "treesync_%s_amd64.deb" %
                               project_version())
        cls.changes = cls.deb[:-len(".deb")] + ".changes"
        if not os.path.exists(cls.deb):
            raise AssertionError("no %s; the build made %s" % (
                os.path.basename(cls.deb),
                os.listdir(cls.build_dir)))
        t = time.monotonic()
        cls.lintian = subprocess.run(
            ["lintian", "--fail-on", "error,warning", "--tag-display-limit",
             "0", "--info", cls.changes], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        cls.timings["lintian"] = time.monotonic() - t

    @classmethod
    def install(cls):
        shutil.copy(cls.deb, os.path.join(cls.root, "root"))

    @classmethod
    def after_boot(cls):
        t = time.monotonic()
        r = cls.sh(["sh", "-c", "cd /root && DEBIAN_FRONTEND=noninteractive "
                    "apt-get install -y ./%s" % os.path.basename(cls.deb)],
                   check=False, timeout=300)
        cls.timings["apt-get install"] = time.monotonic() - t
        if r.returncode != 0:
            raise AssertionError("apt-get install: exit %d\n%s%s" % (
                r.returncode, r.stdout[-3000:], r.stderr[-3000:]))
        cls.files = cls.sh(["dpkg", "-L", "treesync"]).stdout.split("\n")
        cls.files = [p for p in cls.files if p.startswith("/")]
        cls.installed_state = {
            "enabled": cls.sh(["systemctl", "is-enabled", "treesyncd"],
                              check=False).stdout.strip(),
            "active": cls.wait_active(),
            "socket": cls.sh(["stat", "-c", "%a %U %G",
                              "/run/treesync/control.sock"],
                             check=False).stdout.strip(),
            "status": cls.sh(["treesyncctl", "status"], check=False),
        }
        for args in (["useradd", "--system", "--no-create-home", "-G",
                      "treesync", GROUP_MEMBER],
                     ["useradd", "--system", "--no-create-home", OUTSIDER]):
            cls.sh(args)
        cls.as_member = cls.sh(["runuser", "-u", GROUP_MEMBER, "--",
                                "treesyncctl", "status"], check=False)
        cls.as_outsider = cls.sh(["runuser", "-u", OUTSIDER, "--",
                                  "treesyncctl", "status"], check=False)
        cls.check_shipped = cls.sh(["treesyncd", "--check-config"],
                                   check=False)
        # The shipped config logs to log_file (logrotate's), not the
        # journal.
        try:
            with open(cls.host_path("/var/log/treesync/treesync.log")) as f:
                cls.idle_log = f.read()
        except OSError as e:
            cls.idle_log = str(e)
        # Then the operator's part, as test_systemd does it before its
        # boot: a config with a pair and a drop-in that grants the
        # destinations; test_1 starts the service on them.
        cls.configure()
        cls.sh(["systemctl", "daemon-reload"])
        cls.sh(["systemctl", "stop", "treesyncd"], timeout=120)

    @classmethod
    def host_path(cls, path):
        return os.path.join(cls.root, path.lstrip("/"))

    @classmethod
    def wait_active(cls):
        end = time.monotonic() + test_systemd.DEADLINE
        while True:
            state = cls.sh(["systemctl", "is-active", "treesyncd"],
                           check=False).stdout.strip()
            if state != "activating" or time.monotonic() > end:
                return state
            time.sleep(0.2)

    # -- the package itself ---------------------------------------------

    def test_0_built_from_a_clean_clone_and_lintian_clean(self):
        self.assertTrue(os.path.exists(self.deb))
        out = self.lintian.stdout
        bad = [ln for ln in out.splitlines() if re.match(r"[EW]: ", ln)]
        self.assertEqual(bad, [], out)
        self.assertEqual(self.lintian.returncode, 0, out)
        contents = subprocess.run(["dpkg-deb", "-c", self.deb],
                                  stdout=subprocess.PIPE, text=True,
                                  check=True).stdout
        for path in ("./usr/sbin/treesyncd", "./usr/bin/treesyncctl",
                     "./lib/systemd/system/treesyncd.service",
                     "./etc/treesync/treesync.conf",
                     "./etc/logrotate.d/treesync",
                     "./usr/share/man/man8/treesyncd.8.gz",
                     "./usr/share/man/man5/treesync.conf.5.gz",
                     "./usr/share/man/man1/treesyncctl.1.gz",
                     "./usr/share/bash-completion/completions/treesyncd",
                     "./usr/share/bash-completion/completions/treesyncctl"):
            self.assertIn(" " + path + "\n", contents + "\n")
        fields = subprocess.run(["dpkg-deb", "-f", self.deb, "Package",
                                 "Version", "Architecture"],
                                stdout=subprocess.PIPE, text=True).stdout
        self.assertEqual(fields.split(), [
            "Package:", "treesync", "Version:", project_version(),
            "Architecture:", "amd64"])
        info = tempfile.mkdtemp(dir=self.build_dir)
        subprocess.run(["dpkg-deb", "-e", self.deb, info], check=True)
        with open(os.path.join(info, "conffiles")) as f:
            self.assertIn("/etc/treesync/treesync.conf", f.read().split())

    def test_0a_remote_side_has_a_package_of_its_own(self):
        """A host that only receives mirrors installs treesync-remote
        alone: the forced command and its man page, nothing of the
        daemon, and rsync (which it execs) as a dependency."""
        deb = os.path.join(self.build_dir, "treesync-remote_%s_amd64.deb" %
                           project_version())
        self.assertTrue(os.path.exists(deb), os.listdir(self.build_dir))
        contents = subprocess.run(["dpkg-deb", "-c", deb],
                                  stdout=subprocess.PIPE, text=True,
                                  check=True).stdout
        files = [ln.split()[-1] for ln in contents.splitlines()
                 if not ln.startswith("d")]
        self.assertIn("./usr/bin/treesync-remote", files)
        self.assertIn("./usr/share/man/man8/treesync-remote.8.gz", files)
        self.assertFalse([f for f in files if "treesyncd" in f], files)
        depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"],
                                 stdout=subprocess.PIPE, text=True,
                                 check=True).stdout
        self.assertRegex(depends, r"\brsync \(>= 3\.2\)")
        main = subprocess.run(["dpkg-deb", "-c", self.deb],
                              stdout=subprocess.PIPE, text=True,
                              check=True).stdout
        self.assertNotIn("treesync-remote", main)

    def test_0b_installed_idle_enabled_group_socket(self):
        st = self.installed_state
        self.assertEqual(st["enabled"], "enabled")
        self.assertEqual(st["active"], "active")
        self.assertEqual(st["socket"], "660 root treesync")
        self.assertEqual(st["status"].returncode, 0, st["status"].stderr)
        self.assertRegex(self.idle_log, r"(?m) info  no sync pairs in "
                         r"/etc/treesync/treesync\.conf: idle until a reload "
                         r"brings one$")
        self.assertEqual(self.as_member.returncode, 0,
                         self.as_member.stderr)
        self.assertIn("treesyncd", self.as_member.stdout)
        self.assertEqual(self.as_outsider.returncode, 1)
        self.assertIn("Permission denied", self.as_outsider.stderr)
        # The shipped config as installed: valid, no pair, the group set.
        r = self.check_shipped
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("configuration OK (0 sync pairs)", r.stdout)
        r = subprocess.run(["dpkg-deb", "--fsys-tarfile", self.deb],
                           stdout=subprocess.PIPE, check=True)
        conf = subprocess.run(["tar", "-xOf", "-",
                               "./etc/treesync/treesync.conf"],
                              input=r.stdout, stdout=subprocess.PIPE,
                              check=True).stdout.decode()
        self.assertRegex(conf, r"(?m)^control_socket_group = \"treesync\";$")
        self.assertRegex(conf, r"(?m)^syncs = \($\n(#.*\n)*\);$")

    def test_5b_completion_installed(self):
        # bash-completion is not in the container; the script itself is
        # where bash-completion looks, and loads in bash.
        r = self.sh(["bash", "-c", "source /usr/share/bash-completion/"
                     "completions/treesyncctl && complete -p treesyncctl"])
        self.assertEqual(r.stdout.strip(),
                         "complete -F _treesyncctl treesyncctl")

    # test_1 .. test_7 come from test_systemd.Systemd and run here against
    # the package; test_7 leaves the service stopped.

    def test_8_purge_leaves_nothing(self):
        self.assertTrue(self.files)
        # What the operator made is the operator's: the test's drop-ins go
        # first, as an admin removing treesync would remove them.
        shutil.rmtree(self.host("/etc/systemd/system/treesyncd.service.d"),
                      ignore_errors=True)
        self.sh(["userdel", GROUP_MEMBER])
        self.sh(["userdel", OUTSIDER])
        # Purged while it runs, as on a live system.
        self.sh(["systemctl", "daemon-reload"])
        self.sh(["systemctl", "start", "treesyncd"], timeout=120)
        self.assertTrue(os.path.exists(self.host("/var/log/treesync")))
        t = time.monotonic()
        r = self.sh(["sh", "-c", "DEBIAN_FRONTEND=noninteractive apt-get "
                     "purge -y treesync"], check=False, timeout=300)
        self.timings["apt-get purge"] = time.monotonic() - t
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(self.sh(["pgrep", "-x", "treesyncd"],
                                 check=False).stdout, "")
        left = []
        for p in self.files:
            if p == "/." or not os.path.lexists(self.host(p)):
                continue
            # A directory shared with other packages (/usr, /etc, ...).
            if os.path.isdir(self.host(p)) and self.sh(
                    ["dpkg", "-S", p], check=False).returncode == 0:
                continue
            left.append(p)
        self.assertEqual(left, [], "left behind by apt purge")
        for p in ("/etc/treesync", "/var/log/treesync", "/run/treesync",
                  "/etc/systemd/system/multi-user.target.wants/"
                  "treesyncd.service",
                  "/var/lib/systemd/deb-systemd-helper-enabled/"
                  "treesyncd.service.dsh-also",
                  "/var/lib/systemd/deb-systemd-helper-enabled/"
                  "multi-user.target.wants/treesyncd.service",
                  "/var/lib/systemd/deb-systemd-helper-masked/"
                  "treesyncd.service"):
            self.assertFalse(os.path.lexists(self.host(p)), p)
        self.assertEqual(glob.glob(self.host("/var/lib/dpkg/info/"
                                             "treesync.*")), [])
        self.assertNotEqual(self.sh(["getent", "group", "treesync"],
                                    check=False).returncode, 0)
        r = self.sh(["dpkg-query", "-W", "-f=${Status}", "treesync"],
                    check=False)
        self.assertNotIn("installed", r.stdout)
        self.assertNotIn("config-files", r.stdout)
        self.assertEqual(self.sh(["systemctl", "list-unit-files",
                                  "treesyncd.service", "--no-legend"],
                                 check=False).stdout.strip(), "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
