#!/usr/bin/env python3
"""bench_remote.py -- remote destinations in one run: treesync against lsyncd
(default.rsyncssh, the smallest delay it takes) and a plain `rsync -a`, all
over the same ssh to one host in a network namespace this run makes
(tests/remote/sshhosts.py: real sshd, key-only).

What is measured (issue 11):
  latency   200 samples of a 4 KiB write until the remote has it (p50, p99)
  burst     10,000 new files until all are on the remote, against one
            `rsync -a` of those files over the same connection
  renames   bytes on the veth for a rename of a 1 GiB (sparse) file and of
            a 1,000-file directory

treesync runs as the daemon (treesyncd -f, delay_ms = 0) when it syncs
remote destinations; on a tree where live sync does not go through the
destination seam yet, it falls back to tests/remote/dest-drive, which the
bench then hands each change itself (the destination's share of the
latency, without the watcher), and says so in its output.

lsyncd and rsync log in as a second user with a plain /bin/sh and no
forced command (what they need); treesync's key runs treesync-remote.

Usage: bench/bench-remote.sh [--quick]   (root; prints a Markdown table)
"""
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BUILD = os.environ.get("BUILD", os.path.join(ROOT, "build"))
sys.path.insert(0, os.path.join(ROOT, "tests", "remote"))
import sshhosts  # noqa: E402

QUICK = "--quick" in sys.argv
SAMPLES = 40 if QUICK else 200
BURST = 2000 if QUICK else 10000
TREE = 200 if QUICK else 1000


def run(argv, **kw):
    return subprocess.run(argv, check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, **kw)


def wait_for(pred, timeout=300, step=0.001):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return False


def content_is(path, data):
    try:
        with open(path, "rb") as f:
            return f.read() == data
    except OSError:
        return False


class Bench:
    def __init__(self):
        self.hosts = sshhosts.SshHosts(1)
        self.h = self.hosts[0]
        self.base = tempfile.mkdtemp(prefix="bench-remote.")
        os.chmod(self.base, 0o755)
        self.top = os.path.join(self.base, "remote")
        os.makedirs(self.top)
        os.chown(self.top, self.hosts.remote_uid, self.hosts.remote_gid)
        self.h.authorize(self.hosts.remote_user, 'restrict,command="%s %s"'
                         % (os.path.join(BUILD, "treesync-remote"),
                            self.top))
        # The baselines' key: a plain login with /bin/sh, no forced
        # command, the same user and directory.
        self.plain = self.hosts.new_identity("plain")
        self.h.authorize(self.hosts.remote_user, "no-pty", self.plain,
                         append=True)
        self.results = {}

    def close(self):
        self.hosts.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def dirs(self, tag):
        src = os.path.join(self.base, "src-" + tag)
        dst = os.path.join(self.top, tag)
        for d in (src, dst):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        os.chown(dst, self.hosts.remote_uid, self.hosts.remote_gid)
        return src, dst

    # -- the tools ----------------------------------------------------------
    def start_treesync(self, src, dst):
        conf = os.path.join(self.base, "treesync.conf")
        with open(conf, "w") as f:
            f.write('control_socket = "%s/c.sock";\ndelay_ms = 0;\n'
                    'log_level = "warn";\n'
                    'remotes = ( { name = "h"; host = "%s"; user = "%s"; '
                    'identity = "%s"; known_hosts = "%s"; } );\n'
                    'syncs = ( { name = "b"; source = "%s"; destinations = '
                    '( "h:%s" ); } );\n' % (
                        self.base, self.h.addr, self.hosts.remote_user,
                        self.hosts.identity, self.hosts.known_hosts, src,
                        dst))
        self.h.check_route()
        env = dict(os.environ, PATH="%s:%s" % (BUILD, os.environ["PATH"]))
        probe = os.path.join(src, ".probe")
        with open(probe, "w") as f:
            f.write("p")
        p = subprocess.Popen([os.path.join(BUILD, "treesyncd"), "-f", "-c",
                              conf], stdout=subprocess.DEVNULL,
                             stderr=open(os.path.join(self.base,
                                                      "treesyncd.log"), "a"),
                             env=env)
        if wait_for(lambda: content_is(os.path.join(dst, ".probe"), b"p"),
                    timeout=30, step=0.05):
            os.unlink(probe)
            return ("daemon", p, None)
        p.send_signal(signal.SIGTERM)
        p.wait(30)
        os.unlink(probe)
        d = subprocess.Popen([os.path.join(BUILD, "tests", "dest-drive"),
                              conf, "b", "h:" + dst], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True,
                             stderr=subprocess.DEVNULL, env=env)
        d.stdin.write("compare\n")
        d.stdin.flush()
        d.stdout.readline()
        return ("seam", d, None)

    def stop(self, kind, p):
        if kind == "seam":
            p.stdin.write("quit\n")
            p.stdin.close()
        else:
            p.send_signal(signal.SIGTERM)
        p.wait(60)

    def start_lsyncd(self, src, dst):
        ssh = self.h.ssh_argv(identity=self.plain, control_name="ls")
        rsh = " ".join(ssh[:-1])
        conf = os.path.join(self.base, "lsyncd.lua")
        with open(conf, "w") as f:
            f.write('settings { nodaemon = true, logfile = "%s/lsyncd.log",'
                    ' statusFile = "%s/lsyncd.status" }\n'
                    'sync { default.rsyncssh, source = "%s", host = "%s@%s",'
                    ' targetdir = "%s", delay = 0,\n'
                    '  rsync = { rsh = "%s", archive = true },\n'
                    '  ssh = { binary = "/usr/bin/ssh", _extra = { %s } } }\n'
                    % (self.base, self.base, src, self.hosts.remote_user,
                       self.h.addr, dst, rsh,
                       ", ".join('"%s"' % a for a in ssh[1:-5])))
        probe = os.path.join(src, ".probe")
        with open(probe, "w") as f:
            f.write("p")
        p = subprocess.Popen(["lsyncd", conf], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        if not wait_for(lambda: content_is(os.path.join(dst, ".probe"),
                                           b"p"), timeout=60, step=0.05):
            raise RuntimeError("lsyncd did not start: %s" % open(
                os.path.join(self.base, "lsyncd.log")).read()[-2000:])
        os.unlink(probe)
        return ("lsyncd", p, None)

    # -- the measurements --------------------------------------------------
    def latency(self, tool, src, dst, kind, proc):
        samples = []
        for i in range(SAMPLES):
            name = "lat%d" % i
            data = os.urandom(4096)
            t0 = time.monotonic()
            with open(os.path.join(src, name), "wb") as f:
                f.write(data)
            if kind == "seam":
                proc.stdin.write("sync\t%s\n" % name)
                proc.stdin.flush()
            if not wait_for(lambda: content_is(os.path.join(dst, name), data),
                            timeout=60):
                log = os.path.join(self.base, "lsyncd.log")
                raise RuntimeError("%s: change never arrived%s" % (
                    tool, open(log).read()[-3000:] if tool == "lsyncd" and
                    os.path.exists(log) else ""))
            samples.append((time.monotonic() - t0) * 1000)
            if kind == "seam":
                proc.stdout.readline()
            time.sleep(0.02)
        samples.sort()
        return (statistics.median(samples),
                samples[int(len(samples) * 0.99) - 1])

    def burst(self, tool, src, dst, kind, proc):
        d = os.path.join(src, "burst")
        os.makedirs(d)
        t0 = time.monotonic()
        names = []
        for i in range(BURST):
            names.append("burst/f%05d" % i)
            with open(os.path.join(src, names[-1]), "wb") as f:
                f.write(b"%d\n" % i)
        if kind == "seam":
            proc.stdin.write("sync\tburst\t%s\n" % "\t".join(names))
            proc.stdin.flush()
        last = os.path.join(dst, names[-1])
        ok = wait_for(lambda: os.path.exists(last) and
                      len(os.listdir(os.path.join(dst, "burst"))) >= BURST,
                      timeout=600, step=0.01)
        if kind == "seam":
            proc.stdout.readline()
        if not ok:
            raise RuntimeError("%s: burst never complete" % tool)
        return time.monotonic() - t0

    def renames(self, tool, src, dst, kind, proc):
        with open(os.path.join(src, "big"), "wb") as f:
            f.truncate(1 << 30)
        os.makedirs(os.path.join(src, "tree"))
        for i in range(TREE):
            with open(os.path.join(src, "tree", "f%04d" % i), "wb") as f:
                f.write(b"%d\n" % i)
        if kind == "seam":
            proc.stdin.write("compare\n")
            proc.stdin.flush()
            proc.stdout.readline()
        wait_for(lambda: os.path.exists(os.path.join(dst, "big")) and
                 os.path.getsize(os.path.join(dst, "big")) == 1 << 30 and
                 len(os.listdir(os.path.join(dst, "tree"))) == TREE
                 if os.path.isdir(os.path.join(dst, "tree")) else False,
                 timeout=900, step=0.1)
        time.sleep(1)
        tx, rx = self.h.counters()
        os.rename(os.path.join(src, "big"), os.path.join(src, "big2"))
        os.rename(os.path.join(src, "tree"), os.path.join(src, "tree2"))
        if kind == "seam":
            proc.stdin.write("rename\tbig\tbig2\t0\ttree\ttree2\t1\n")
            proc.stdin.write("sync\tbig\tbig2\ttree\ttree2\n")
            proc.stdin.write("compare\ttree2\n")
            proc.stdin.flush()
            for _ in range(3):
                proc.stdout.readline()
        wait_for(lambda: os.path.exists(os.path.join(dst, "big2")) and
                 os.path.isdir(os.path.join(dst, "tree2")) and
                 not os.path.exists(os.path.join(dst, "big")) and
                 len(os.listdir(os.path.join(dst, "tree2"))) == TREE,
                 timeout=900, step=0.05)
        time.sleep(2)
        tx2, rx2 = self.h.counters()
        return (tx2 - tx) + (rx2 - rx)

    def rsync_once(self, src, dst):
        """One `rsync -a` of the burst over an open connection."""
        ssh = self.h.ssh_argv(identity=self.plain, control_name="rs")
        subprocess.run(ssh + ["true"], check=True)
        rsh = " ".join(ssh[:-1])
        d = os.path.join(src, "burst")
        os.makedirs(d)
        for i in range(BURST):
            with open(os.path.join(d, "f%05d" % i), "wb") as f:
                f.write(b"%d\n" % i)
        t0 = time.monotonic()
        run(["rsync", "-a", "-e", rsh, src + "/", "%s:%s/" % (self.h.addr,
                                                               dst)])
        return time.monotonic() - t0

    def rsync_latency(self, src, dst):
        ssh = self.h.ssh_argv(identity=self.plain, control_name="rs")
        rsh = " ".join(ssh[:-1])
        samples = []
        for i in range(SAMPLES):
            with open(os.path.join(src, "lat"), "wb") as f:
                f.write(os.urandom(4096))
            t0 = time.monotonic()
            run(["rsync", "-a", "-e", rsh, os.path.join(src, "lat"),
                 "%s:%s/" % (self.h.addr, dst)])
            samples.append((time.monotonic() - t0) * 1000)
        samples.sort()
        return (statistics.median(samples),
                samples[int(len(samples) * 0.99) - 1])

    def main(self):
        out = {}
        for tool in ("treesync", "lsyncd"):
            src, dst = self.dirs(tool)
            start = self.start_treesync if tool == "treesync" else \
                self.start_lsyncd
            kind, proc, _ = start(src, dst)
            try:
                lat = self.latency(tool, src, dst, kind, proc)
                burst = self.burst(tool, src, dst, kind, proc)
                wire = self.renames(tool, src, dst, kind, proc)
            finally:
                if tool == "treesync":
                    self.stop(kind, proc)
                else:
                    proc.terminate()
                    proc.wait(30)
            out[tool] = (kind, lat, burst, wire)
        src, dst = self.dirs("rsync")
        out["rsync"] = ("rsync -a", self.rsync_latency(src, dst),
                        self.rsync_once(src, dst), None)
        rs = out["rsync"][2]
        print("| tool | how | latency p50 | p99 | %d-file burst | vs one "
              "rsync -a | rename bytes (1 GiB + %d files) |" % (BURST, TREE))
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for tool, (kind, lat, burst, wire) in out.items():
            print("| %s | %s | %.1f ms | %.1f ms | %.2f s | %.2fx | %s |" % (
                tool, kind, lat[0], lat[1], burst, burst / rs,
                "-" if wire is None else "%.1f KiB" % (wire / 1024)))


if __name__ == "__main__":
    if os.geteuid() != 0:
        sys.exit("bench_remote.py: needs root (network namespaces)")
    if shutil.which("lsyncd") is None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "install", "-y", "-qq", "lsyncd"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    b = Bench()
    try:
        b.main()
    finally:
        b.close()
