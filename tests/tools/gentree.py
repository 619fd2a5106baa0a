#!/usr/bin/env python3
"""Deterministic (seeded) generator of a source tree for treesync mirror tests.

    gentree.py DIR --files N [--seed S] [--dirs D] [--big-file SIZE_BYTES] [--plain]

Creates about N regular files spread over about D directories (default N/20),
nested up to depth 8.  File sizes are log-normal around 4 KiB (capped at
1 MiB); content is cut from a seeded random pool, so the same seed gives the
same tree (names, bytes, modes, owners, mtimes).

Without --plain the tree also holds the awkward cases a mirror must get right:
hard links (groups of 2-3 names, some across directories), symlinks (to
siblings, "../..", "/etc", dangling, loops, long and odd targets), empty
files, setuid/setgid files, sticky / 0700 / 0555 directories, mtimes before
1970 and after 2038 with nanoseconds, odd names (spaces, newline, tab, UTF-8,
undecodable bytes, leading dashes, glob characters, 255-byte names, dotfiles,
names that common exclude patterns match) and, when run as root, files,
directories and one symlink owned by other uids/gids.

Every file, symlink and directory (the root included) gets a deliberate
nanosecond mtime; directory modes, owners and mtimes are applied last,
deepest directory first.

With --big-file SIZE a file "big.bin" of SIZE bytes is written into DIR's root
in 1 MiB chunks (each chunk distinct, cheap to generate).

DIR must not exist or be empty.  Only the standard library is used.
"""

import argparse
import math
import os
import random
import stat
import sys
import time

MiB = 1 << 20
MAX_DEPTH = 8
NS = 1_000_000_000

# Recent mtimes: 2001-09-09 .. 2024-01-01.
RECENT_LO = 1_000_000_000 * NS
RECENT_HI = 1_704_067_200 * NS


def die(msg, code=2):
    print("gentree: " + msg, file=sys.stderr)
    sys.exit(code)


def parse_size(text):
    """Bytes, optionally with a K/M/G/T suffix (binary units)."""
    t = text.strip().upper()
    for suffix in ("IB", "B"):
        if t.endswith(suffix) and len(t) > len(suffix) and t[-len(suffix) - 1] in "KMGT":
            t = t[: -len(suffix)]
            break
    mult = 1
    if t and t[-1] in "KMGT":
        mult = 1 << (10 * ("KMGT".index(t[-1]) + 1))
        t = t[:-1]
    try:
        val = int(t)
    except ValueError:
        raise argparse.ArgumentTypeError("not a size: %r" % text)
    if val < 0:
        raise argparse.ArgumentTypeError("negative size: %r" % text)
    return val * mult


class Gen:
    def __init__(self, root, files, dirs, seed, plain, big):
        self.root = os.fsencode(os.path.abspath(root))
        self.nfiles = files
        self.ndirs = dirs
        self.rng = random.Random(seed)
        self.plain = plain
        self.big = big
        self.is_root = os.geteuid() == 0
        # dirs[i] = (relpath bytes, depth); dirs[0] is the root (b"")
        self.dirs = [(b"", 0)]
        self.dir_mode = {}        # index -> mode applied at the end
        self.dir_owner = {}       # index -> (uid, gid)
        self.dir_mtime = {}       # index -> mtime ns (all dirs get one)
        self.names = {0: set()}   # index -> set of names used in that dir
        self.regular = []         # (dir index, name) of regular files (first names)
        self.nfile_names = 0      # regular-file names incl. extra hard links
        self.nsymlinks = 0
        self.nlink_groups = 0
        self.nbytes = 0
        self.pool = None
        self.odd_dir_ids = []

    # ---------------------------------------------------------------- helpers
    def path(self, di, name=None):
        rel = self.dirs[di][0]
        p = self.root + b"/" + rel if rel else self.root
        return p if name is None else p + b"/" + name

    def relpath(self, di, name):
        rel = self.dirs[di][0]
        return rel + b"/" + name if rel else name

    def unique(self, di, name):
        used = self.names[di]
        base, n = name, 1
        while name in used:
            name = base + b".%d" % n
            n += 1
        used.add(name)
        return name

    def recent_ns(self):
        return self.rng.randrange(RECENT_LO, RECENT_HI)

    def file_mtime(self):
        r = self.rng.random()
        if not self.plain and r < 0.01:
            # before 1970 (negative), with nanoseconds; back to ~1906
            return -self.rng.randrange(1, 2_000_000_000 * NS)
        if not self.plain and r < 0.015:
            # after 2038 (needs 64-bit time / ext4 extra timestamp bits)
            return self.rng.randrange(2_200_000_000 * NS, 4_102_444_800 * NS)
        return self.recent_ns()

    def content(self, size):
        off = self.rng.randrange(0, len(self.pool) - size + 1)
        return self.pool[off:off + size]

    def write_file(self, di, name, size, mode=0o644, mtime=None, data=None):
        p = self.path(di, name)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode & 0o777)
        try:
            buf = data if data is not None else self.content(size)
            view = memoryview(buf)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if mode & 0o7000:
                os.fchmod(fd, mode)
            if mtime is None:
                mtime = self.file_mtime()
            os.utime(fd, ns=(mtime, mtime))
        finally:
            os.close(fd)
        self.nfile_names += 1
        self.nbytes += len(buf)
        self.regular.append((di, name))
        return p

    def symlink(self, di, name, target, mtime=None):
        p = self.path(di, name)
        os.symlink(target, p)
        if mtime is None:
            mtime = self.recent_ns()
        os.utime(p, ns=(mtime, mtime), follow_symlinks=False)
        self.nsymlinks += 1
        return p

    def pick_dir(self, max_depth=MAX_DEPTH):
        while True:
            di = self.rng.randrange(len(self.dirs))
            if self.dirs[di][1] <= max_depth:
                return di

    def add_dir(self, parent, name, mode=0o755):
        name = self.unique(parent, name)
        rel = self.relpath(parent, name)
        os.mkdir(self.root + b"/" + rel, 0o755)
        di = len(self.dirs)
        self.dirs.append((rel, self.dirs[parent][1] + 1))
        self.names[di] = set()
        if mode != 0o755:
            self.dir_mode[di] = mode
        return di

    # ------------------------------------------------------------------ build
    def build(self):
        rng = self.rng
        os.umask(0)
        if os.path.lexists(self.root):
            if not os.path.isdir(self.root) or os.path.islink(self.root):
                die("%s exists and is not a directory" % os.fsdecode(self.root))
            if os.listdir(self.root):
                die("%s is not empty" % os.fsdecode(self.root))
        else:
            os.makedirs(self.root, 0o755)
        os.chmod(self.root, 0o755)
        self.names[0].add(b"big.bin")          # reserved for --big-file

        self.pool = rng.randbytes(4 * MiB)

        # directories: a random recursive tree, depth capped at MAX_DEPTH
        for i in range(self.ndirs):
            parent = self.pick_dir(MAX_DEPTH - 1)
            self.add_dir(parent, b"d%05d" % i)

        if not self.plain:
            self.odd_dirs()

        # regular files
        mu = math.log(4096)
        modes = (0o644,) * 12 + (0o755, 0o600, 0o640, 0o444)
        for i in range(self.nfiles):
            di = rng.randrange(len(self.dirs))
            size = min(int(rng.lognormvariate(mu, 1.0)), MiB)
            ext = rng.choice((b".txt", b".c", b".h", b".bin", b".dat", b".log", b""))
            if not self.plain and rng.random() < 0.01:
                size = 0
            mode = 0o644 if self.plain else rng.choice(modes)
            self.write_file(di, self.unique(di, b"f%06d%s" % (i, ext)), size, mode)

        if not self.plain:
            self.specials()

        if self.big:
            self.big_file()

        self.finish_dirs()

    def odd_dirs(self):
        rng = self.rng
        for name in (b"dir with space", "日本".encode(), b"-dash-dir", b".hidden-dir",
                     b"node_modules", b".git", b"glob[x]*?"):
            self.odd_dir_ids.append(self.add_dir(self.pick_dir(MAX_DEPTH - 1), name))
        # a deep chain down to the maximum depth
        di = 0
        for depth in range(1, MAX_DEPTH + 1):
            di = self.add_dir(di, b"deep%d" % depth)
        n_special = max(1, self.ndirs // 500)
        candidates = list(range(1, len(self.dirs)))
        rng.shuffle(candidates)
        specials = [0o1777] * n_special + [0o700] * n_special + [0o555] * n_special \
            + [0o2775] + [0o750]
        for di, mode in zip(candidates, specials):
            self.dir_mode[di] = mode

    def specials(self):
        rng = self.rng
        n = self.nfiles
        ndirs = len(self.dirs)

        # odd names, regular files in random directories (some in the root)
        odd = [b"with space.txt", b" leading space", b"trailing space ",
               b"new\nline", b"tab\there", b"cr\rname", "café.txt".encode(),
               "日本語.txt".encode(), "emoji-😀.bin".encode(), b"-rf", b"--help",
               b"-", b"*", b"?", b"[a]", b"back\\slash", b"a*b?c[d]e", b"[!x]",
               b".hidden", b"..dots", b"...", b"trailing.", b"Case.txt", b"case.txt",
               b"latin1-\xe9-undecodable", b"quote'\"", b"semi;colon&amp|pipe$dollar",
               b"x" * 255, "日".encode() * 85, b"e" + "é".encode() * 127,
               b"edit.swp", b"backup~", b".treesync" + b"-not-a-temp"]
        for name in odd:
            di = 0 if rng.random() < 0.3 else rng.randrange(ndirs)
            self.write_file(di, self.unique(di, name), rng.randrange(0, 5000))

        # a few normal files inside the odd directories
        for di in self.odd_dir_ids:
            for k in range(2):
                self.write_file(di, self.unique(di, b"in-odd-%d" % k), rng.randrange(1, 3000))

        # setuid / setgid files
        for k in range(max(2, n // 2000)):
            di = rng.randrange(ndirs)
            self.write_file(di, self.unique(di, b"suid%d" % k), rng.randrange(1, 9000), 0o4755)
            di = rng.randrange(ndirs)
            self.write_file(di, self.unique(di, b"sgid%d" % k), rng.randrange(1, 9000), 0o2755)
        di = rng.randrange(ndirs)
        self.write_file(di, self.unique(di, b"suid-sgid-sticky"), 100, 0o7755)

        # edge mtimes
        for name, mt in ((b"mtime-minus-1ns", -1), (b"mtime-epoch", 0),
                         (b"mtime-1901", -2_147_483_648 * NS + 123),
                         (b"mtime-2100", 4_102_444_800 * NS + 999_999_999),
                         (b"mtime-max-ns", 1_600_000_000 * NS + 999_999_999)):
            di = rng.randrange(ndirs)
            self.write_file(di, self.unique(di, name), 10, mtime=mt)

        # hard links: ~1% of files get 1-2 extra names, some in other dirs
        firsts = list(self.regular)
        groups = max(2, n // 100)
        for g in range(groups):
            di, name = firsts[rng.randrange(len(firsts))]
            src = self.path(di, name)
            if os.lstat(src).st_nlink > 1:
                continue
            self.nlink_groups += 1
            for k in range(rng.choice((1, 1, 2))):
                ldi = di if rng.random() < 0.5 else rng.randrange(ndirs)
                lname = self.unique(ldi, b"hl%05d-%d" % (g, k))
                os.link(src, self.path(ldi, lname))
                self.nfile_names += 1
        # a hard link group with an odd name and a setuid member, across dirs
        di, name = next(x for x in firsts if x[1].startswith(b"suid"))
        src = self.path(di, name)
        if os.lstat(src).st_nlink == 1:
            self.nlink_groups += 1
        os.link(src, self.path(0, self.unique(0, b"hard link\nodd")))
        self.nfile_names += 1

        # symlinks: ~2% of files
        for k in range(max(8, n // 50)):
            di = rng.randrange(ndirs)
            kind = k % 8
            if kind == 0:       # sibling (or nearby) file
                sib = sorted(x for x in self.names[di] if x != b"big.bin")
                target = rng.choice(sib) if sib else b"nothing-here"
            elif kind == 1:
                target = b"../.."
            elif kind == 2:
                target = b"/etc"
            elif kind == 3:     # dangling
                target = b"does-not-exist/%d" % k
            elif kind == 4:     # file in another directory, relative
                odi, oname = firsts[rng.randrange(len(firsts))]
                up = b"../" * self.dirs[di][1]
                target = up + self.relpath(odi, oname)
            elif kind == 5:     # a directory in the tree, relative
                odi = rng.randrange(1, ndirs) if ndirs > 1 else 0
                target = b"../" * self.dirs[di][1] + (self.dirs[odi][0] or b".")
            elif kind == 6:     # absolute path inside the source tree
                target = self.path(rng.randrange(ndirs))
            else:
                target = b"."
            self.symlink(di, self.unique(di, b"sl%05d" % k), target)
        self.symlink(0, self.unique(0, b"loop"), b"loop")
        self.symlink(0, self.unique(0, b"long-target"), b"a/" * 1500 + b"end")
        self.symlink(0, self.unique(0, b"odd-target"), b"new\nline \xe9 *?[a]")
        self.symlink(0, self.unique(0, b"link with space"), b"with space.txt")
        self.symlink(0, self.unique(0, b"old-link"), b"/", mtime=-5 * NS - 7)

        # owners other than root (root only): files, a dir, a symlink
        if self.is_root:
            owners = ((1234, 5678), (0, 5678), (4321, 0), (65534, 65534))
            for k, (di, name) in enumerate(rng.sample(firsts, min(8, len(firsts)))):
                p = self.path(di, name)
                mode = stat.S_IMODE(os.lstat(p).st_mode)
                os.chown(p, *owners[k % len(owners)], follow_symlinks=False)
                os.chmod(p, mode)          # chown clears setuid/setgid
            # a setuid file owned by somebody else
            p = self.path(*firsts[-2])
            os.chown(p, 1234, 5678)
            os.chmod(p, 0o4750)
            for k, di in enumerate(rng.sample(range(1, ndirs), min(3, ndirs - 1))):
                self.dir_owner[di] = owners[k % len(owners)]
            lp = self.symlink(0, self.unique(0, b"owned-symlink"), b"elsewhere")
            os.chown(lp, 1234, 5678, follow_symlinks=False)

    def big_file(self):
        rng = self.rng
        blocks = [rng.randbytes(MiB) for _ in range(4)]
        p = self.path(0, b"big.bin")
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            left, chunk_no = self.big, 0
            while left > 0:
                blk = blocks[rng.randrange(4)]
                # every chunk distinct: its number in the first 8 bytes
                chunk = chunk_no.to_bytes(8, "little") + blk[8:min(MiB, left)]
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
                left -= len(chunk)
                chunk_no += 1
            mt = self.recent_ns()
            os.utime(fd, ns=(mt, mt))
        finally:
            os.close(fd)
        self.nfile_names += 1
        self.nbytes += self.big

    def finish_dirs(self):
        rng = self.rng
        for di in range(len(self.dirs)):
            if not self.plain and rng.random() < 0.02:
                self.dir_mtime[di] = -rng.randrange(1, 2_000_000_000 * NS)
            else:
                self.dir_mtime[di] = self.recent_ns()
        order = sorted(range(len(self.dirs)), key=lambda i: (-self.dirs[i][1], i))
        for di in order:        # deepest first, the root (depth 0) last
            p = self.path(di)
            if di in self.dir_owner:
                os.chown(p, *self.dir_owner[di])
            mode = self.dir_mode.get(di, 0o755)
            os.chmod(p, mode)
            mt = self.dir_mtime[di]
            os.utime(p, ns=(mt, mt), follow_symlinks=False)


def main():
    ap = argparse.ArgumentParser(description="Generate a deterministic test tree.")
    ap.add_argument("dir", metavar="DIR")
    ap.add_argument("--files", type=int, required=True, metavar="N")
    ap.add_argument("--seed", type=int, default=1, metavar="S")
    ap.add_argument("--dirs", type=int, default=None, metavar="D",
                    help="number of directories (default N/20)")
    ap.add_argument("--big-file", type=parse_size, default=0, metavar="SIZE_BYTES",
                    help='also write DIR/big.bin of this size (suffixes K, M, G allowed)')
    ap.add_argument("--plain", action="store_true",
                    help="only directories and regular files (no links, odd names, "
                         "special modes, owners or pre-1970 times)")
    a = ap.parse_args()
    if a.files < 0:
        ap.error("--files must be >= 0")
    dirs = a.dirs if a.dirs is not None else a.files // 20
    if dirs < 0:
        ap.error("--dirs must be >= 0")

    t0 = time.monotonic()
    g = Gen(a.dir, a.files, dirs, a.seed, a.plain, a.big_file)
    try:
        g.build()
    except OSError as e:
        die("%s" % e, 1)
    print("gentree: %s: files=%d dirs=%d symlinks=%d hardlink_groups=%d bytes=%d "
          "seed=%d%s (%.1f s)" % (os.fsdecode(g.root), g.nfile_names, len(g.dirs),
                                  g.nsymlinks, g.nlink_groups, g.nbytes, a.seed,
                                  " plain" if a.plain else "", time.monotonic() - t0))


if __name__ == "__main__":
    main()
