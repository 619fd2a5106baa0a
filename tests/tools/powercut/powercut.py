"""Test harness for powercutfs (README.md beside this file).

    from powercut import PowercutFS, find_binary, unavailable

    with PowercutFS(backing, mountpoint) as fs:
        ...                 # write into mountpoint
        fs.cut()            # or fs.arm(N); ...; fs.wait_cut()
        fs.reboot()         # unmount; mount BACKING again (only what was durable)

unavailable() says why the file system cannot be used here (not root, no
/dev/fuse, no binary), or returns None. The binary comes from $POWERCUTFS
(meson sets it for the tests) or build/tests/powercutfs in the checkout.
Standard library only.
"""

import os
import shutil
import subprocess
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
CTL = ".powercut-ctl"
MOUNT_DEADLINE = 30.0


def find_binary():
    b = os.environ.get("POWERCUTFS")
    if b:
        return b
    return os.path.join(ROOT, "build", "tests", "powercutfs")


def unavailable(binary=None):
    """Why powercutfs cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (FUSE mounts with allow_other)"
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse"
    b = binary or find_binary()
    if not os.access(b, os.X_OK):
        return "powercutfs not built (%s; install libfuse3-dev, reconfigure)" % b
    return None


class PowercutError(Exception):
    pass


class PowercutFS:
    """One powercutfs mount of backing at mountpoint (both must exist)."""

    def __init__(self, backing, mountpoint, binary=None, state=None):
        self.backing = os.path.abspath(backing)
        self.mountpoint = os.path.abspath(mountpoint)
        self.binary = binary or find_binary()
        self.state = state
        self.proc = None
        self.log = None
        self.mounts = 0

    # -- mounting ---------------------------------------------------------
    def mount(self):
        if self.proc is not None:
            raise PowercutError("already mounted")
        if self.log is not None:
            self.log.close()
        self.log = tempfile.TemporaryFile()
        cmd = [self.binary]
        if self.state:
            cmd += ["--state", self.state]
        cmd += [self.backing, self.mountpoint]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        end = time.monotonic() + MOUNT_DEADLINE
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.proc = None
                raise PowercutError("powercutfs exited %d: %s" % (rc, self.logtext()))
            if os.path.ismount(self.mountpoint):
                try:
                    self.status()
                    break
                except OSError:
                    pass
            if time.monotonic() > end:
                self._stop()
                raise PowercutError("not mounted within %.0f s: %s" % (
                    MOUNT_DEADLINE, self.logtext()))
            time.sleep(0.02)
        self.mounts += 1
        return self

    def logtext(self):
        if self.log is None:
            return ""
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def unmount(self):
        """Unmounts (lazily when something still holds the mount, as
        processes killed at a cut may for a moment) and waits for the file
        system process to end. Without a cut, everything becomes durable."""
        if self.proc is None:
            return
        r = subprocess.run(["umount", self.mountpoint], capture_output=True, text=True)
        if r.returncode != 0 and os.path.ismount(self.mountpoint):
            subprocess.run(["umount", "-l", self.mountpoint], capture_output=True)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._stop()
            raise PowercutError("powercutfs did not exit after unmount: " + self.logtext())
        self.proc = None
        if rc != 0:
            raise PowercutError("powercutfs exited %d: %s" % (rc, self.logtext()))

    def _stop(self):
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        if os.path.ismount(self.mountpoint):
            subprocess.run(["umount", "-l", self.mountpoint], capture_output=True)

    def reboot(self):
        """The machine comes back: unmount, mount the same backing dir."""
        self.unmount()
        self.mount()

    def __enter__(self):
        return self.mount()

    def close(self):
        """Ends everything (unmounting lazily if needed); idempotent."""
        self._stop()
        if self.log is not None:
            self.log.close()
            self.log = None

    def __exit__(self, *exc):
        try:
            self.unmount()
        finally:
            self.close()
        return False

    # -- control ----------------------------------------------------------
    def command(self, text):
        fd = os.open(os.path.join(self.mountpoint, CTL), os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def status(self):
        """The control file's key=value line as a dict (numbers as int)."""
        with open(os.path.join(self.mountpoint, CTL), "rb") as fh:
            line = fh.read().decode()
        out = {}
        for item in line.split():
            k, _, v = item.partition("=")
            out[k] = int(v) if v.lstrip("-").isdigit() else v
        return out

    def cut(self):
        self.command("cut")

    def arm(self, n):
        """Cut instead of the (n+1)th mutating operation from now."""
        self.command("arm %d" % n)

    def sync(self):
        """Checkpoint: everything written so far becomes durable."""
        self.command("sync")

    def is_cut(self):
        return self.status()["state"] == "cut"

    def wait_cut(self, timeout=120):
        """Waits until an armed cut has happened (polling; True) or the
        timeout passed (False). Not a timing assertion: the caller decides
        what a missed cut means."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.is_cut():
                return True
            time.sleep(0.05)
        return False
