#!/usr/bin/env python3
"""What `meson install` gives a Debian admin, checked on a temporary
--destdir of the build under test:

- the files land where the build's prefix and sysconfdir say (with
  prefix /usr: /usr/sbin, /etc/treesync, /etc/logrotate.d,
  /usr/share/man/man{1,5,8}, systemd's unit directory,
  /usr/share/bash-completion/completions);
- every man page renders without a warning (groff -ww and man -l);
- `treesyncd --help` and treesyncd(8) list the same options, and every
  config key of src/service/config.c is documented in treesync.conf(5);
- `systemd-analyze verify` is clean on the installed unit.

Environment: TREESYNC_BUILD_DIR (default build/), TREESYNC_SOURCE_ROOT.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

ROOT = os.environ.get("TREESYNC_SOURCE_ROOT",
                      os.path.dirname(os.path.dirname(os.path.dirname(
                          os.path.abspath(__file__)))))
BUILD = os.environ.get("TREESYNC_BUILD_DIR", os.path.join(ROOT, "build"))
PAGES = {"treesyncd.8": "man8", "treesyncctl.1": "man1",
         "treesync.conf.5": "man5", "treesync-remote.8": "man8"}


def options():
    r = subprocess.run(["meson", "introspect", "--buildoptions", BUILD],
                       stdout=subprocess.PIPE, text=True, check=True)
    return {o["name"]: o["value"] for o in json.loads(r.stdout)}


def unitdir(opts):
    if opts.get("systemdsystemunitdir"):
        return opts["systemdsystemunitdir"]
    r = subprocess.run(["pkg-config", "--variable=systemdsystemunitdir",
                        "systemd"], stdout=subprocess.PIPE, text=True)
    if r.returncode == 0 and r.stdout.strip():
        return r.stdout.strip()
    return os.path.join(opts["prefix"], "lib/systemd/system")


def completionsdir(opts):
    """meson.build's rule: the option, else pkg-config bash-completion's
    completionsdir under this prefix, else datadir's usual place."""
    if opts.get("bashcompletionsdir"):
        return opts["bashcompletionsdir"]
    datadir = os.path.join(opts["prefix"], opts["datadir"])
    r = subprocess.run(["pkg-config", "--define-variable=datadir=" + datadir,
                        "--variable=completionsdir", "bash-completion"],
                       stdout=subprocess.PIPE, text=True)
    if r.returncode == 0 and r.stdout.strip():
        return r.stdout.strip()
    return os.path.join(datadir, "bash-completion", "completions")


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dest = tempfile.mkdtemp(prefix="treesync-install.")
        subprocess.run(["meson", "install", "-C", BUILD, "--destdir",
                        cls.dest, "--no-rebuild", "--quiet"], check=True,
                       stdout=subprocess.DEVNULL)
        cls.opts = options()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dest, ignore_errors=True)

    def at(self, path):
        return os.path.join(self.dest, path.lstrip("/"))

    def test_layout(self):
        o = self.opts
        prefix = o["prefix"]
        sysconf = os.path.join(prefix, o["sysconfdir"])
        mandir = os.path.join(prefix, o["mandir"])
        want = {
            os.path.join(prefix, o["sbindir"], "treesyncd"),
            os.path.join(prefix, o["bindir"], "treesync-remote"),
            os.path.join(sysconf, "treesync", "treesync.conf"),
            os.path.join(sysconf, "logrotate.d", "treesync"),
            os.path.join(unitdir(o), "treesyncd.service"),
        } | {os.path.join(mandir, sec, page) for page, sec in PAGES.items()
             } | {os.path.join(completionsdir(o), prog)
                  for prog in ("treesyncd", "treesyncctl")}
        if prefix == "/usr":  # what Debian expects
            self.assertEqual(sysconf, "/etc")
            self.assertIn("/usr/share/bash-completion/completions/"
                          "treesyncctl", want)
            self.assertIn("/usr/sbin/treesyncd", want)
            self.assertIn("/usr/share/man/man8/treesyncd.8", want)
        got = {"/" + os.path.relpath(os.path.join(d, n), self.dest)
               for d, _, ns in os.walk(self.dest) for n in ns}
        # treesyncctl comes with the control-socket work; when it is
        # built, it must be installed beside treesyncd.
        ctl = os.path.join(prefix, o["bindir"], "treesyncctl")
        if os.path.exists(os.path.join(BUILD, "treesyncctl")):
            want.add(ctl)
        self.assertEqual(got, want)
        self.assertTrue(os.access(self.at(os.path.join(
            prefix, o["sbindir"], "treesyncd")), os.X_OK))
        with open(self.at(os.path.join(unitdir(o), "treesyncd.service"))) as f:
            unit = f.read()
        self.assertIn("ExecStart=%s/treesyncd --foreground -c %s/treesync/"
                      "treesync.conf" % (os.path.join(prefix, o["sbindir"]),
                                         sysconf), unit)
        self.assertNotIn("@", unit.replace("@SBINDIR@", "X"))

    def page(self, name):
        return self.at(os.path.join(self.opts["prefix"], self.opts["mandir"],
                                    PAGES[name], name))

    def test_man_pages_render_without_warnings(self):
        for name in PAGES:
            with self.subTest(page=name):
                r = subprocess.run(["groff", "-man", "-ww", "-z",
                                    self.page(name)],
                                   stderr=subprocess.PIPE, text=True)
                self.assertEqual((r.returncode, r.stderr), (0, ""))
                r = subprocess.run(["man", "--warnings", "-l",
                                    self.page(name)],
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True,
                                   env=dict(os.environ, MANPAGER="cat",
                                            PAGER="cat", MANWIDTH="80"))
                self.assertEqual((r.returncode, r.stderr), (0, ""))
                self.assertIn("NAME", r.stdout)

    def long_options(self, text):
        return set(re.findall(r"--([a-z][a-z-]+)", text))

    def test_help_matches_man_page(self):
        for prog, page in (("treesyncd", "treesyncd.8"),
                           ("treesyncctl", "treesyncctl.1")):
            exe = os.path.join(BUILD, prog)
            if not os.path.exists(exe):
                continue  # treesyncctl: built by the control-socket work
            with self.subTest(program=prog):
                help_text = subprocess.run([exe, "--help"],
                                           stdout=subprocess.PIPE, text=True,
                                           check=True).stdout
                with open(self.page(page)) as f:
                    roff = f.read().replace("\\-", "-")
                section = roff.split(".SH OPTIONS", 1)[1].split(".SH", 1)[0]
                # Command arguments (status --json) are the COMMANDS
                # section's business; options are compared with OPTIONS.
                if "\nOptions:" in help_text:
                    help_text = help_text.split("\nOptions:", 1)[1]
                self.assertEqual(self.long_options(help_text),
                                 self.long_options(section))
                for short in set(re.findall(r"^\s+(-[a-zA-Z]),", help_text,
                                            re.M)):
                    self.assertIn(".BR %s \", \"" % short, section)

    def test_every_config_key_documented(self):
        with open(os.path.join(ROOT, "src", "service", "config.c")) as f:
            src = f.read()
        keys = set()
        # The key lists (shared by config.c's files, so not static).
        for block in re.findall(r"(?:static )?const char \*const \w+\[\]"
                                r" = \{(.*?)\};", src, re.S):
            keys |= set(re.findall(r'"([a-z_]+)"', block))
        self.assertGreaterEqual(len(keys), 11, keys)
        with open(self.page("treesync.conf.5")) as f:
            roff = f.read()
        for key in keys:
            with self.subTest(key=key):
                self.assertRegex(roff, r"(?m)^\.BR %s \"? ?\(" % key)

    def test_unit_verifies_clean(self):
        if shutil.which("systemd-analyze") is None or \
                shutil.which("unshare") is None:
            self.skipTest("systemd-analyze or unshare missing")
        o = self.opts
        sbin = os.path.join(o["prefix"], o["sbindir"])
        unit = self.at(os.path.join(unitdir(o), "treesyncd.service"))
        # The unit names the installed path of treesyncd: show it there,
        # in a private mount namespace, without touching the machine.
        script = ("set -e; mkdir -p %(sbin)s; mount -t tmpfs none %(sbin)s; "
                  "cp %(exe)s %(sbin)s/; systemd-analyze verify %(unit)s" % {
                      "sbin": sbin, "unit": unit,
                      "exe": self.at(os.path.join(sbin, "treesyncd"))})
        r = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "sh", "-c",
             script], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, env=dict(os.environ, MANPATH=self.at(os.path.join(
                o["prefix"], o["mandir"])), SYSTEMD_LOG_LEVEL="notice"))
        self.assertEqual((r.returncode, r.stdout), (0, ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
