"""treesync-remote over real ssh (tests/remote/sshhosts.py: sshd in network
namespaces this test makes), with the system ssh client on exactly the
options of treesyncd's transport: the daemon's rsync option sets land files
beneath DIR; the ops protocol renames, deletes and acknowledges; every
request outside the allowlist or outside DIR is refused with nothing
outside DIR changed (a witness directory, writable by the remote user,
compared before and after); a changed host key is refused before anything
is sent; one connection carries many commands.

Remote trees are read directly (the namespaces share this file system) and
mirrors compared with tests/tools/treecmp.py.

Environment: TREESYNC_REMOTE (the treesync-remote binary),
TREESYNC_SOURCE_ROOT. Needs root.
"""
import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.environ.get("TREESYNC_SOURCE_ROOT",
                      os.path.dirname(os.path.dirname(HERE)))
REMOTE = os.environ.get("TREESYNC_REMOTE",
                        os.path.join(ROOT, "build", "treesync-remote"))
TREECMP = os.path.join(ROOT, "tests", "tools", "treecmp.py")
sys.path.insert(0, HERE)
import sshhosts  # noqa: E402

TAG = "0123abcd"
TEMP_RULE = "-p .treesync.*"    # RSYNC_FILTER_TEMP_RULE
# The daemon's option sets: a full compare, and a live batch of listed
# paths. -@-1: rsync compares mtimes to the second without it (a file
# rewritten within its second, or a directory, would be left as it is).
# --delete with --delete-missing-args: without it a directory that left
# the source is "cannot delete non-empty directory".
COMPARE = ["-aHAX", "-@-1", "--numeric-ids", "--delete", "--timeout=30",
           "--partial-dir=.treesync.partial",
           "--temp-dir=.treesync.%s.1" % TAG, "--filter=" + TEMP_RULE,
           "--itemize-changes"]
BATCH = ["-aHAX", "-@-1", "--numeric-ids", "--from0", "--files-from=-",
         "--delete", "--delete-missing-args", "--timeout=30",
         "--partial-dir=.treesync.partial",
         "--temp-dir=.treesync.%s.2" % TAG, "--itemize-changes"]

# A receiver that follows every symlink, as rsync before 3.4 does: it
# tries to change things outside its destination through a symlinked
# parent (evil -> the witness) and an absolute path, and writes one file
# inside. Each attempt reports itself; none may get through.
FAKE_RSYNC = r"""#!/bin/sh
out=$1
try() { if "$@" 2>/dev/null; then echo "ESCAPED: $*"; else echo "blocked: $*"; fi; }
try sh -c 'echo pwned > evil/new'
try sh -c 'echo pwned >> evil/mine'
try mkdir evil/newdir
try rm -f evil/mine2
try mv evil/mine3 moved-in
try ln -s x evil/link
try chmod 600 evil/mine
try touch -d 2001-01-01 evil/mine
try chown "$(id -u)" evil/mine
try sh -c "echo pwned > $(readlink evil)/abs"
try sh -c "echo pwned > /tmp/treesync-remote-escape-$$"
echo inside > inside-file && echo "wrote inside"
"""


def snapshot(top):
    """Everything a change would show: type, mode, owner, size, mtime,
    content hash or link target, per relative path."""
    out = {}
    for d, dirs, files in os.walk(top):
        for n in dirs + files + ([] if d != top else ["."]):
            p = os.path.normpath(os.path.join(d, n))
            st = os.lstat(p)
            item = (stat.S_IFMT(st.st_mode), st.st_mode & 0o7777, st.st_uid,
                    st.st_gid, st.st_mtime_ns)
            if stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    item += (st.st_size, hashlib.sha256(f.read()).hexdigest())
            elif stat.S_ISLNK(st.st_mode):
                item += (os.readlink(p),)
            out[os.path.relpath(p, top)] = item
    return out


def write(path, data, mode=0o644, mtime_ns=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def make_source(top):
    """Files, directories, odd names, a symlink, hard links, special
    modes, nanosecond mtimes, an xattr."""
    names = ["plain.txt", "a b", "new\nline", "-dash", "star*", "q?",
             "back\\slash", "\u00fcn\u00ef", ".hidden"]
    for i, n in enumerate(names):
        write(os.path.join(top, "dir", n), b"%d %s\n" % (i, n.encode()),
              mtime_ns=1_600_000_000_123_456_789 + i)
    write(os.path.join(top, "bin", "tool"), b"#!/bin/sh\n", 0o4755,
          1_500_000_000_000_000_001)
    write(os.path.join(top, "deep", "er", "est", "f"), b"x" * 100000)
    os.link(os.path.join(top, "dir", "plain.txt"),
            os.path.join(top, "deep", "hardlink"))
    os.symlink("../dir/plain.txt", os.path.join(top, "deep", "sym"))
    os.makedirs(os.path.join(top, "sticky"))
    os.chmod(os.path.join(top, "sticky"), 0o1777)
    os.setxattr(os.path.join(top, "dir", "plain.txt"), "user.test", b"v")
    for d, dirs, _ in os.walk(top, topdown=False):
        for n in dirs:
            os.utime(os.path.join(d, n), ns=(1_400_000_000_5, 1_400_000_000_5))
    os.utime(top, ns=(1_300_000_000_7, 1_300_000_000_7))


class RemoteSide(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (network namespaces)")
        cls.hosts = sshhosts.SshHosts(3)
        cls.base = tempfile.mkdtemp(prefix="treesync-remote-test.")
        os.chmod(cls.base, 0o755)
        cls.uid, cls.gid = cls.hosts.remote_uid, cls.hosts.remote_gid
        cls.fake = os.path.join(cls.base, "fake-rsync")
        with open(cls.fake, "w") as f:
            f.write(FAKE_RSYNC)
        os.chmod(cls.fake, 0o755)
        cls.fake_id = cls.hosts.new_identity("fake")
        cls.landlock_id = cls.hosts.new_identity("landlock")
        for h in cls.hosts:
            h.site = os.path.join(cls.base, "h%d" % h.index, "site")
            h.witness = os.path.join(cls.base, "h%d" % h.index, "outside")
            for d in (h.site, h.witness):
                os.makedirs(d)
                os.chown(d, cls.uid, cls.gid)
            cmd = 'restrict,command="%s %%s%s"' % (REMOTE, h.site)
            user = cls.hosts.remote_user
            h.authorize(user, cmd % "")
            h.authorize(user, cmd % ("--rsync=%s " % cls.fake), cls.fake_id,
                        append=True)
            h.authorize(user, cmd % ("--sandbox=landlock --rsync=%s " %
                                     cls.fake), cls.landlock_id, append=True)
            h.authorize("root", 'restrict,command="%s %s"' % (
                REMOTE, os.path.join(cls.base, "h%d" % h.index, "rootsite")))

    @classmethod
    def tearDownClass(cls):
        cls.hosts.close()
        shutil.rmtree(cls.base, ignore_errors=True)

    # -- helpers ---------------------------------------------------------
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="treesync-remote-src.",
                                    dir=self.base)

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def fresh(self, h):
        """Empties the host's site and fills its witness with files the
        remote user owns (so only confinement can keep them as they
        are)."""
        for top in (h.site, h.witness):
            for n in os.listdir(top):
                p = os.path.join(top, n)
                if os.path.isdir(p) and not os.path.islink(p):
                    shutil.rmtree(p)
                else:
                    os.unlink(p)
        for n in ("mine", "mine2", "mine3"):
            write(os.path.join(h.witness, n), b"witness " + n.encode())
            os.chown(os.path.join(h.witness, n), self.uid, self.gid)
        os.symlink(h.witness, os.path.join(h.site, "evil"))
        os.lchown(os.path.join(h.site, "evil"), self.uid, self.gid)
        return snapshot(h.witness)

    def rsync(self, h, opts, src, dest, stdin=None, **kw):
        argv = ["rsync"] + opts + ["-e", h.rsync_e(**kw), src,
                                   "%s:%s" % (h.addr, dest)]
        return subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)

    def ssh(self, h, words, stdin=b"", **kw):
        return subprocess.run(h.ssh_argv(**kw) + words, input=stdin,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def ops(self, h, requests, path=None, root_id=None, **kw):
        """One ops session: the greeting and one response per request."""
        words = ["treesync-remote"]
        if root_id:
            words.append("--root-id=%d:%d" % root_id)
        words += ["ops"] + ([path] if path else [])
        r = self.ssh(h, words, stdin="".join(
            "%d %s\n" % (i + 1, q) for i, q in enumerate(requests)).encode(),
            **kw)
        lines = r.stdout.decode().splitlines()
        return r, lines

    def treecmp(self, src, dst, owner=False):
        r = subprocess.run([sys.executable, TREECMP, src, dst,
                            "--owner" if owner else "--no-owner"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stdout)

    def assert_no_temporaries(self, top):
        for d, dirs, files in os.walk(top):
            left = [n for n in dirs + files if n.startswith(".treesync.")]
            self.assertEqual(left, [], "temporaries left in %s" % d)

    # -- (a) data lands beneath DIR ----------------------------------------
    def test_compare_then_batch_land_beneath_dir(self):
        h = self.hosts[0]
        witness = self.fresh(h)
        os.unlink(os.path.join(h.site, "evil"))
        src = os.path.join(self.tmp, "src")
        make_source(src)
        r = self.rsync(h, COMPARE, src + "/", h.site + "/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.treecmp(src, h.site)
        self.assert_no_temporaries(h.site)
        # A live batch: a changed file, a new one, a deleted one, a
        # renamed-away name, and their directories (so mtimes travel).
        write(os.path.join(src, "dir", "a b"), b"changed\n",
              mtime_ns=1_700_000_000_000_000_009)
        write(os.path.join(src, "dir", "brand new"), b"new\n")
        os.unlink(os.path.join(src, "dir", "q?"))
        os.rename(os.path.join(src, "deep", "er"),
                  os.path.join(src, "deep", "moved"))
        paths = ["dir", "dir/a b", "dir/brand new", "dir/q?", "deep",
                 "deep/er", "deep/moved", "deep/moved/est",
                 "deep/moved/est/f"]
        r = self.rsync(h, BATCH, src + "/", h.site + "/",
                       stdin=b"\0".join(p.encode() for p in paths) + b"\0")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.treecmp(src, h.site)
        self.assert_no_temporaries(h.site)
        # A dry run (treesyncd --once --dry-run, guards' counts): lists,
        # changes nothing, the root's mtime included.
        write(os.path.join(src, "dir", "plain.txt"), b"changed again\n")
        before = snapshot(h.site)
        r = self.rsync(h, COMPARE + ["-n"], src + "/", h.site + "/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn(b"dir/plain.txt", r.stdout)
        self.assertEqual(snapshot(h.site), before)
        self.assertEqual(snapshot(h.witness), witness)

    def test_owners_when_root_on_both_ends(self):
        h = self.hosts[1]
        site = os.path.join(self.base, "h1", "rootsite")
        os.makedirs(site, exist_ok=True)
        src = os.path.join(self.tmp, "src")
        make_source(src)
        for i, (d, _, files) in enumerate(os.walk(src)):
            for n in files:
                os.lchown(os.path.join(d, n), 1000 + i, 2000 + i)
        r = self.rsync(h, COMPARE, src + "/", site + "/", user="root")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.treecmp(src, site, owner=True)

    # -- (b) the ops protocol ------------------------------------------------
    def test_ops_rename_delete_acknowledged(self):
        h = self.hosts[0]
        witness = self.fresh(h)
        write(os.path.join(h.site, "a", "f"), b"f")
        write(os.path.join(h.site, "tree", "x", "y"), b"y")
        write(os.path.join(h.site, "sp ace\nname"), b"odd")
        write(os.path.join(h.site, ".treesync.deadbeef.7", "t"), b"tmp")
        write(os.path.join(h.site, ".treesync.%s.8" % TAG), b"mine")
        for d, dirs, files in os.walk(h.site):
            for n in dirs + files:
                os.lchown(os.path.join(d, n), self.uid, self.gid)
        r, lines = self.ops(h, [
            "PROBE", "RENAME a b", "RENAME sp%20ace%0Aname plain",
            "STAT b/f", "COUNT tree 100", "DELETE tree", "DELETE gone",
            "CLEAN %s" % TAG, "RENAME b/f c/f"])
        self.assertEqual(r.returncode, 0, r.stderr)
        st = os.stat(h.site)
        self.assertEqual(lines[0].split()[:2], ["treesync-remote", "1"])
        self.assertIn("sandbox=mountns", lines[0])
        self.assertEqual(lines[1], "1 OK exists=1 type=dir dev=%d ino=%d "
                         "mountpoint=0 mode=%04o uid=%d gid=%d" % (
                             st.st_dev, st.st_ino, st.st_mode & 0o7777,
                             self.uid, self.gid))
        self.assertEqual(lines[2], "2 OK")
        self.assertEqual(lines[3], "3 OK")
        self.assertTrue(lines[4].startswith("4 OK type=file mode=0644 size=1 "))
        self.assertEqual(lines[5], "5 OK count=3")
        self.assertEqual(lines[6], "6 OK count=3")
        self.assertEqual(lines[7], "7 OK count=0")
        self.assertEqual(lines[8], "8 OK removed=2")
        self.assertTrue(lines[9].startswith("9 ENOENT "), lines[9])
        self.assertEqual(len(lines), 10)
        self.assertEqual(sorted(os.listdir(h.site)), sorted(
            ["b", "plain", "evil", ".treesync.%s.8" % TAG]))
        with open(os.path.join(h.site, "plain"), "rb") as f:
            self.assertEqual(f.read(), b"odd")
        self.assertEqual(snapshot(h.witness), witness)

    def test_ops_missing_root_is_made_once(self):
        h = self.hosts[0]
        self.fresh(h)
        root = os.path.join(h.site, "newroot")
        r, lines = self.ops(h, ["PROBE", "DELETE x", "MKROOT 0700", "STAT x"],
                            path=root)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(lines[1], "1 OK exists=0")
        self.assertTrue(lines[2].startswith("2 ENOENT "), lines[2])
        self.assertTrue(lines[3].startswith("3 OK exists=1 type=dir "))
        self.assertTrue(lines[4].startswith("4 ENOENT "))
        self.assertEqual(stat.S_IMODE(os.stat(root).st_mode), 0o700)

    def test_pinned_root(self):
        h = self.hosts[0]
        self.fresh(h)
        st = os.stat(h.site)
        src = os.path.join(self.tmp, "src")
        write(os.path.join(src, "f"), b"f")
        pinned = "treesync-remote --root-id=%d:%d rsync" % (st.st_dev,
                                                            st.st_ino)
        r = self.rsync(h, COMPARE + ["--rsync-path=" + pinned], src + "/",
                       h.site + "/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertTrue(os.path.exists(os.path.join(h.site, "f")))
        # The root replaced: refused, nothing written.
        before = snapshot(h.site)
        write(os.path.join(src, "g"), b"g")
        wrong = "treesync-remote --root-id=%d:%d rsync" % (st.st_dev,
                                                           st.st_ino + 1)
        r = self.rsync(h, COMPARE + ["--rsync-path=" + wrong], src + "/",
                       h.site + "/")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"is not the pinned root", r.stderr)
        self.assertEqual(snapshot(h.site), before)
        r, lines = self.ops(h, ["PROBE"], root_id=(st.st_dev, st.st_ino + 1))
        self.assertEqual(r.returncode, 69)
        self.assertEqual(lines, [])

    # -- (c) refusals --------------------------------------------------------
    def refused(self, h, result, words, witness, site):
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(b"treesync-remote: refused: ", result.stderr)
        for w in words:
            self.assertIn(w.encode(), result.stderr)
        self.assertEqual(snapshot(h.witness), witness)
        self.assertEqual(snapshot(h.site), site)

    def test_refused_commands(self):
        h = self.hosts[0]
        witness = self.fresh(h)
        site = snapshot(h.site)
        for words, why in [
                ([], "no command"),
                (["ls", "-la", "/"], "'ls' is not allowed"),
                (["sh", "-c", "id"], "'sh' is not allowed"),
                (["rsync", "--server", "--sender", "-logDtpre.iLsfxCIvu",
                  ".", h.site], "'--sender'"),
                (["rsync", "--server", "-slogDtpre.iLsfxCIvu", ".", h.site],
                 "'-s'"),
                (["rsync", "--server", "-logDtpre.iLsfxCIvu", ".",
                  h.site + "/x;", "rm", "-rf", "/"], "unquoted ';'"),
                (["treesync-remote", "--verbose", "ops"], "'--verbose'")]:
            r = self.ssh(h, words)
            self.assertEqual(r.returncode, 77, (words, r.stderr))
            self.refused(h, r, [why], witness, site)

    def test_refused_rsync_options_and_paths(self):
        h = self.hosts[0]
        witness = self.fresh(h)
        site = snapshot(h.site)
        src = os.path.join(self.tmp, "src")
        write(os.path.join(src, "f"), b"payload")
        outside = os.path.join(self.base, "h0")
        cases = [
            (["--inplace"], h.site + "/", "'--inplace'"),
            (["--partial"], h.site + "/", "'--partial'"),
            (["--backup", "--backup-dir=" + h.witness], h.site + "/",
             "'-b'"),
            (["--delete-excluded"], h.site + "/", "'--delete-excluded'"),
            (["--keep-dirlinks"], h.site + "/", "'-K'"),
            (["--temp-dir=" + h.witness], h.site + "/", "--temp-dir"),
            ([], h.site + "/../outside/", "is not beneath"),
            ([], "../outside/", "is not beneath"),
            ([], "/etc/treesync-remote-test/", "is not beneath"),
            ([], outside + "/", "is not beneath"),
            ([], h.site + "/evil/", "symlink on the way"),
            ([], "evil/", "symlink on the way"),
        ]
        for extra, dest, why in cases:
            r = self.rsync(h, ["-a"] + extra, src + "/", dest)
            self.refused(h, r, [why], witness, site)
        self.assertFalse(os.path.exists("/etc/treesync-remote-test"))

    def test_symlinked_parent_inside_dir_changes_nothing_outside(self):
        # rsync itself walks "evil/x": whatever its version does, the
        # sandbox keeps the write inside.
        h = self.hosts[0]
        witness = self.fresh(h)
        src = os.path.join(self.tmp, "src")
        write(os.path.join(src, "evil", "mine"), b"replaced")
        write(os.path.join(src, "evil", "new"), b"new")
        r = self.rsync(h, BATCH[:1] + ["--files-from=-", "--no-implied-dirs"],
                       src + "/", h.site + "/",
                       stdin=b"evil/mine\nevil/new\n")
        self.assertNotEqual(r.returncode, 0)
        self.assertEqual(snapshot(h.witness), witness)

    def test_ops_paths_outside_refused(self):
        h = self.hosts[0]
        witness = self.fresh(h)
        write(os.path.join(h.site, "a"), b"a")
        site = snapshot(h.site)
        r, lines = self.ops(h, ["RENAME a ../x", "RENAME a evil/x",
                                "RENAME evil/mine a2", "RENAME a /tmp/x",
                                "DELETE evil/mine", "DELETE ..",
                                "DELETE a/../../outside", "STAT evil/mine",
                                "COUNT evil/. 9", "CLEAN ../x",
                                "RENAME a%00b c"])
        self.assertEqual(r.returncode, 0, r.stderr)
        want = ["EINVAL", "ELOOP", "ELOOP", "EINVAL", "ELOOP", "EINVAL",
                "EINVAL", "ELOOP", "EINVAL", "EINVAL", "EINVAL"]
        self.assertEqual([line.split()[1] for line in lines[1:]], want,
                         lines)
        self.assertEqual(snapshot(h.witness), witness)
        self.assertEqual(snapshot(h.site), site)
        # The symlink itself is inside DIR: deleting it is fine, its
        # target stays.
        r, lines = self.ops(h, ["DELETE evil"])
        self.assertEqual(lines[1], "1 OK count=1")
        self.assertEqual(snapshot(h.witness), witness)

    def confined_receiver(self, identity, must_block):
        h = self.hosts[1]
        witness = self.fresh(h)
        r = self.ssh(h, ["rsync", "--server", "-logDtpre.iLsfxCIvu", ".",
                         h.site], identity=identity,
                     control_name=os.path.basename(identity)[3:5])
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("wrote inside", out)
        self.assertTrue(os.path.exists(os.path.join(h.site, "inside-file")))
        for attempt in must_block:
            self.assertIn("blocked: " + attempt, out)
        self.assertEqual([ln for ln in out.splitlines()
                          if ln.startswith("ESCAPED") and
                          any(a in ln for a in must_block)], [])
        return h, witness, out

    WRITES = ["sh -c echo pwned > evil/new", "sh -c echo pwned >> evil/mine",
              "mkdir evil/newdir", "rm -f evil/mine2", "mv evil/mine3 moved-in",
              "ln -s x evil/link"]

    def test_sandbox_contains_a_receiver_that_follows_symlinks(self):
        h, witness, out = self.confined_receiver(
            self.fake_id, self.WRITES + ["chmod 600 evil/mine",
                                         "touch -d 2001-01-01 evil/mine"])
        self.assertNotIn("ESCAPED", out)
        self.assertEqual(snapshot(h.witness), witness)

    def test_landlock_contains_writes(self):
        # Landlock does not cover chmod and times (see sandbox.c): only
        # the writes are checked, and the witness's contents.
        h, witness, out = self.confined_receiver(self.landlock_id,
                                                 self.WRITES)
        now = snapshot(h.witness)
        self.assertEqual(sorted(now), sorted(witness))
        for p in witness:
            self.assertEqual(now[p][5:], witness[p][5:], p)

    # -- (d) a changed host key ------------------------------------------
    def test_changed_host_key_refused_nothing_sent(self):
        h = self.hosts[2]
        self.fresh(h)
        site = snapshot(h.site)
        src = os.path.join(self.tmp, "src")
        write(os.path.join(src, "big"), os.urandom(2 << 20))
        h.replace_host_key()
        try:
            logins = h.accepted_logins()
            sent = h.counters()[0]
            r = self.rsync(h, COMPARE, src + "/", h.site + "/",
                           control=False)
            self.assertNotEqual(r.returncode, 0)
            self.assertIn(b"Host key verification failed.", r.stderr)
            self.assertEqual(h.accepted_logins(), logins)
            # The key exchange travels, the 2 MiB file does not.
            self.assertLess(h.counters()[0] - sent, 256 << 10)
            self.assertEqual(snapshot(h.site), site)
        finally:
            self.hosts.write_known_hosts()

    # -- the harness's own levers ------------------------------------------
    def test_harness_link_throttle_counters(self):
        h = self.hosts[1]
        self.fresh(h)
        kw = {"control": False}
        tx, rx = h.counters()
        r, lines = self.ops(h, ["PROBE"] * 2000, **kw)
        self.assertEqual(len(lines), 2001)
        tx2, rx2 = h.counters()
        # 2,000 requests out, 2,000 answers back, through this veth.
        self.assertGreater(tx2 - tx, 2000 * len("1 PROBE\n"))
        self.assertGreater(rx2 - rx, 2000 * len("1 OK exists=1"))
        h.throttle("1mbit")
        try:
            qdisc = subprocess.run(["tc", "qdisc", "show", "dev", h.veth],
                                   stdout=subprocess.PIPE, text=True).stdout
            self.assertIn("tbf", qdisc)
            r, lines = self.ops(h, ["PROBE"], **kw)
            self.assertEqual(r.returncode, 0)
        finally:
            h.unthrottle()
        qdisc = subprocess.run(["tc", "qdisc", "show", "dev", h.veth],
                               stdout=subprocess.PIPE, text=True).stdout
        self.assertNotIn("tbf", qdisc)
        h.link(False)
        try:
            r, lines = self.ops(h, ["PROBE"], control=False,
                                extra=["-o", "ConnectTimeout=2"])
            self.assertEqual(r.returncode, 255)
            self.assertEqual(lines, [])
            self.assertIn(b"connect to host %s" % h.addr.encode(), r.stderr)
        finally:
            h.link(True)
        r, lines = self.ops(h, ["PROBE"], **kw)
        self.assertEqual(r.returncode, 0, r.stderr)

    # -- connection reuse ----------------------------------------------------
    def test_one_connection_for_many_commands(self):
        h = self.hosts[2]
        self.hosts.write_known_hosts()
        self.fresh(h)
        os.unlink(os.path.join(h.site, "evil"))
        src = os.path.join(self.tmp, "src")
        make_source(src)
        logins = h.accepted_logins()
        kw = {"control_name": "reuse"}
        r, lines = self.ops(h, ["PROBE"], **kw)
        self.assertEqual(lines[1][:14], "1 OK exists=1 ")
        for _ in range(2):
            r = self.rsync(h, COMPARE, src + "/", h.site + "/", **kw)
            self.assertEqual(r.returncode, 0, r.stderr)
        r = self.ssh(h, ["treesync-remote", "ops"], stdin=b"1 PROBE\n", **kw)
        self.assertEqual(r.returncode, 0)
        check = subprocess.run(h.ssh_argv(**kw)[:-1] + ["-O", "check",
                                                        h.addr],
                               stderr=subprocess.PIPE, text=True)
        self.assertEqual(check.returncode, 0, check.stderr)
        self.assertIn("Master running", check.stderr)
        # Four commands, one login.
        self.assertEqual(h.accepted_logins() - logins, 1)
        self.treecmp(src, h.site)


if __name__ == "__main__":
    unittest.main()
