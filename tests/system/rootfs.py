"""A cached minimal Debian 12 root for the systemd tests.

ensure_root() debootstraps bookworm with systemd, dbus and the libraries
treesyncd links against into /var/cache/treesync-test/<key>/root, where the
key hashes the suite, mirror and package list, so a changed list builds a
new root. The cache is never booted: each run gets a copy (see
test_systemd.py). Returns (root, None) or (None, reason to skip).

Run directly (python3 rootfs.py) to warm the cache.
"""
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys

SUITE = "bookworm"
CACHE = os.environ.get("TREESYNC_ROOTFS_CACHE", "/var/cache/treesync-test")
PACKAGES = sorted([
    "systemd", "systemd-sysv", "dbus",
    "procps",  # /bin/kill, the unit's ExecReload
    # treesyncd's runtime libraries (see meson.build; libevent_extra,
    # evhttp, is in libevent-2.1-7), so that the package of test_deb.py
    # installs without a network
    "libevent-core-2.1-7", "libevent-pthreads-2.1-7", "libevent-2.1-7",
    "libconfig9",
    "libxxhash0", "libinotifytools0", "libsystemd0",
])


def mirror():
    """The first Debian mirror of the machine's apt sources, or None."""
    urls = []
    for path in ["/etc/apt/sources.list"] + sorted(
            os.path.join("/etc/apt/sources.list.d", n)
            for n in (os.listdir("/etc/apt/sources.list.d")
                      if os.path.isdir("/etc/apt/sources.list.d") else [])):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        urls += re.findall(r"^URIs:\s*(\S+)", text, re.M)
        urls += re.findall(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+" + SUITE + r"\s",
                           text, re.M)
    for u in urls:
        if "security" not in u and u.startswith("http"):
            return u.rstrip("/")
    return None


def key(url):
    h = hashlib.sha256(("%s %s %s" % (SUITE, url, ",".join(PACKAGES)))
                       .encode()).hexdigest()
    return h[:16]


def ensure_root(log=sys.stderr):
    if os.geteuid() != 0:
        return None, "needs root (debootstrap, systemd-nspawn)"
    for tool in ("debootstrap", "systemd-nspawn", "nsenter"):
        if shutil.which(tool) is None:
            return None, "%s is not installed (scripts/deps.sh)" % tool
    url = mirror()
    if url is None:
        return None, "no Debian mirror in the apt sources"
    base = os.path.join(CACHE, key(url))
    root = os.path.join(base, "root")
    os.makedirs(base, exist_ok=True)
    # One builder at a time; others wait and then use its root.
    with open(os.path.join(base, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(os.path.join(base, "complete")):
            return root, None
        shutil.rmtree(root, ignore_errors=True)
        tmp = root + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        log.write("debootstrap %s from %s into %s (cold cache, takes "
                  "minutes)\n" % (SUITE, url, tmp))
        log.flush()
        r = subprocess.run(
            ["debootstrap", "--variant=minbase",
             "--include=" + ",".join(PACKAGES), SUITE, tmp, url],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if r.returncode != 0:
            tail = "\n".join(r.stdout.splitlines()[-5:])
            shutil.rmtree(tmp, ignore_errors=True)
            return None, "debootstrap failed (%d): %s" % (r.returncode, tail)
        os.rename(tmp, root)
        open(os.path.join(base, "complete"), "w").close()
        return root, None


if __name__ == "__main__":
    root, why = ensure_root()
    print(root if root else "skipped: " + why)
    sys.exit(0 if root else 1)
