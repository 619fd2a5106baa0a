#!/usr/bin/env python3
"""Timing probes for bench/bench-live.sh (python3, standard library only).

    live_probe.py mktree DIR --dirs N
        DIR gets N empty directories: G = 50 groups (fewer when N < 100), each
        holding the rest as children (N = 50,000: 50 x 999 + the 50 groups).
    live_probe.py ready --src S --dst D --timeout SECS
        Writes S/.bench-ready-<pid> and waits until D holds the same bytes:
        the tool is watching and propagating.  Exit 1 on timeout.
    live_probe.py latency --src S --dst D --tool T --round R --samples N
                          --out TSV [--poll SECS] [--timeout SECS]
        N times: write + close a new 4 KiB file of random bytes in S, then poll
        D (open + read + compare, every --poll seconds) until it holds the same
        bytes.  Appends "latency TOOL ROUND I SECONDS" rows (SECONDS = "timeout"
        when --timeout passed) to TSV.
    live_probe.py burst --src S --dst D --tool T --round R --files N
                        --subdirs K --out TSV [--pid PID] [--stall SECS]
                        [--timeout SECS] [--poll SECS]
        S/b00..S/b<K-1> must exist (and be mirrored) already.  Writes N new
        4 KiB files of random bytes (round-robin over the K directories) as
        fast as it can, then polls D (os.listdir, lstat of names not yet
        complete) until every one of the N names is there with size 4096.
        Appends "burst TOOL ROUND WRITE_S TOTAL_S DONE WHY" (TOTAL_S from the
        first write; DONE = files found; when not all arrived, TOTAL_S is the
        time of giving up and WHY says why: no progress for --stall seconds
        after the writes, --timeout seconds after the first write, or the
        --pid process gone).
    live_probe.py setup --tool T --round R --tree NAME --log FILE
                        --ready REGEX [--done REGEX] [--comm NAME] --pidfile F
                        --out TSV [--timeout SECS] -- CMD...
        Starts CMD in a new session (its pid, = process group, goes to F),
        polls FILE every millisecond for REGEX (watches in place), reads
        VmRSS of CMD's process (or of the group's process called --comm)
        then, waits for --done (initial sync finished), waits one more
        second, reads VmRSS and VmHWM again, stops the group with SIGTERM.
        Appends "setup TOOL ROUND TREE READY_S DONE_S RSS_READY RSS_DONE HWM
        WATCHED RC FAILED" (sizes in KiB; READY_S and DONE_S from the log
        line's own millisecond timestamp when it has one, else from when the
        line was seen; FAILED empty, or why no figures; exit 3 then).
"""

import argparse
import datetime
import os
import re
import signal
import subprocess
import sys
import time

SIZE = 4096


class Stop(Exception):
    pass


def on_term(signum, frame):
    raise Stop("signal %d" % signum)


def append(path, fields):
    with open(path, "a") as f:
        f.write("\t".join(str(x) for x in fields) + "\n")


def write_new(path, data):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def same_bytes(path, data):
    try:
        with open(path, "rb") as f:
            return f.read(len(data) + 1) == data
    except OSError:
        return False


def wait_equal(path, data, poll, timeout):
    """Seconds from now until PATH holds DATA, or None after TIMEOUT."""
    t0 = time.perf_counter()
    end = t0 + timeout
    while True:
        if same_bytes(path, data):
            return time.perf_counter() - t0
        now = time.perf_counter()
        if now > end:
            return None
        time.sleep(poll)


# ------------------------------------------------------------------ mktree
def cmd_mktree(a):
    n = a.dirs
    groups = 50 if n >= 100 else 1
    base, extra = divmod(n, groups)
    os.makedirs(a.dir, exist_ok=True)
    made = 0
    for g in range(groups):
        count = base + (1 if g < extra else 0)     # this group, itself included
        gd = os.path.join(a.dir, "g%02d" % g)
        os.mkdir(gd)
        made += 1
        for c in range(count - 1):
            os.mkdir(os.path.join(gd, "d%04d" % c))
            made += 1
    print("%d directories under %s (+ the root)" % (made, a.dir))


# ------------------------------------------------------------------ ready
def cmd_ready(a):
    name = ".bench-ready-%d-%d" % (os.getpid(), time.monotonic_ns())
    data = os.urandom(64)
    write_new(os.path.join(a.src, name), data)
    t = wait_equal(os.path.join(a.dst, name), data, 0.002, a.timeout)
    if t is None:
        sys.exit("ready: %s did not reach %s within %s s" % (name, a.dst, a.timeout))


# ------------------------------------------------------------------ latency
def cmd_latency(a):
    late = 0
    vals = []
    for i in range(a.samples):
        name = "lat-%s-r%s-%04d" % (a.tool, a.round, i)
        data = os.urandom(SIZE)
        fd = os.open(os.path.join(a.src, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        os.close(fd)
        t = wait_equal(os.path.join(a.dst, name), data, a.poll, a.timeout)
        if t is None:
            late += 1
            append(a.out, ["latency", a.tool, a.round, i, "timeout"])
        else:
            vals.append(t)
            append(a.out, ["latency", a.tool, a.round, i, "%.6f" % t])
        # a short, jittered pause: no overlap with the previous sample, no
        # lock-step with anything periodic
        time.sleep(0.005 + (os.urandom(1)[0] / 255.0) * 0.005)
    vals.sort()
    msg = "  latency %-12s round %s: %d samples" % (a.tool, a.round, len(vals))
    if vals:
        msg += ", p50 %.2f ms, max %.2f ms" % (vals[len(vals) // 2] * 1e3, vals[-1] * 1e3)
    if late:
        msg += ", %d timed out (> %s s)" % (late, a.timeout)
    print(msg, flush=True)


# ------------------------------------------------------------------ burst
def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def cmd_burst(a):
    dirs = ["b%02d" % k for k in range(a.subdirs)]
    for d in dirs:
        if not os.path.isdir(os.path.join(a.dst, d)):
            sys.exit("burst: %s is not mirrored yet" % os.path.join(a.dst, d))
    want = {d: set() for d in dirs}
    blobs = [os.urandom(SIZE) for _ in range(a.files)]    # before the clock starts
    t0 = time.monotonic()
    for i in range(a.files):
        d = dirs[i % len(dirs)]
        name = "f%06d" % i
        write_new(os.path.join(a.src, d, name), blobs[i])
        want[d].add(name)
    t_write = time.monotonic() - t0
    total = a.files
    missing = {d: set(want[d]) for d in dirs}  # not yet seen with SIZE bytes
    ndone = 0
    seen = -1
    last_progress = time.monotonic()
    why = ""
    while True:
        t_poll = time.monotonic()
        for d in dirs:
            if not missing[d]:
                continue
            dd = os.path.join(a.dst, d)
            try:
                present = missing[d].intersection(os.listdir(dd))
            except OSError:
                continue
            for name in present:
                try:
                    if os.lstat(os.path.join(dd, name)).st_size == SIZE:
                        missing[d].discard(name)
                        ndone += 1
                except OSError:
                    pass
        now = time.monotonic()
        if ndone == total:
            t_all = now - t0
            break
        if ndone != seen:
            seen = ndone
            last_progress = now
        if a.pid and not alive(a.pid):
            why = "the tool exited"
        elif now - last_progress > a.stall and now - t0 > t_write + a.stall:
            why = "no progress for %g s" % a.stall
        elif now - t0 > a.timeout:
            why = "cap of %g s reached" % a.timeout
        if why:
            t_all = now - t0
            break
        # a listing of BURST names costs milliseconds: at most a third of a
        # CPU for the poller, whatever the tool
        time.sleep(max(a.poll, 2 * (now - t_poll)))
    append(a.out, ["burst", a.tool, a.round, "%.6f" % t_write, "%.6f" % t_all, ndone, why])
    print("  burst   %-12s round %s: wrote %d files in %.3f s, %s %.3f s after the first write"
          % (a.tool, a.round, total, t_write,
             "all in DST" if ndone == total else "gave up (%s) with %d/%d in DST" % (why, ndone, total),
             t_all), flush=True)


# ------------------------------------------------------------------ setup
def status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def group_member(pgid, comm):
    """Pid of the process named COMM in process group PGID (else PGID)."""
    if not comm:
        return pgid
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                st = f.read()
        except OSError:
            continue
        name = st[st.index("(") + 1:st.rindex(")")]
        rest = st[st.rindex(")") + 2:].split()
        if name == comm and int(rest[2]) == pgid:
            return int(pid)
    return pgid


TS_RE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")


def cmd_setup(a):
    ready_re = re.compile(a.ready)
    done_re = re.compile(a.done) if a.done else None
    wall0 = time.time()
    t0 = time.monotonic()
    proc = subprocess.Popen(a.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    with open(a.pidfile, "w") as f:
        f.write("%d\n" % proc.pid)
    buf = ""
    pos = 0
    t_ready = t_done = None
    rss_ready = rss_done = hwm = None
    rpid = proc.pid
    watched = ""
    failed = ""
    try:
        end = t0 + a.timeout
        while True:
            try:
                with open(a.log, errors="replace") as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
            except FileNotFoundError:
                chunk = ""
            if chunk:
                buf += chunk
                lines = buf.split("\n")
                buf = lines.pop()
                for line in lines:
                    if t_ready is None and ready_re.search(line):
                        seen = time.monotonic() - t0
                        rpid = group_member(proc.pid, a.comm)
                        rss_ready = status_kib(rpid, "VmRSS")
                        stamp = log_time(line)
                        t_ready = seen if stamp is None else stamp - wall0
                        m = re.search(r"watching (\d+) directories", line)
                        watched = m.group(1) if m else ""
                        if done_re is None:
                            t_done = t_ready
                    if t_ready is not None and t_done is None and done_re.search(line):
                        stamp = log_time(line)
                        t_done = time.monotonic() - t0 if stamp is None else stamp - wall0
            if t_done is not None:
                break
            if proc.poll() is not None:
                raise Stop("%s exited with %s before its log said it was %s"
                           % (a.cmd[0], proc.returncode, "ready" if t_ready is None else "done"))
            if time.monotonic() > end:
                raise Stop("no %s line in %s after %s s"
                           % ("ready" if t_ready is None else "done", a.log, a.timeout))
            time.sleep(0.001)
        time.sleep(1.0)
        rss_done = status_kib(rpid, "VmRSS")
        hwm = status_kib(rpid, "VmHWM")
    except Stop as e:
        failed = str(e)
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        try:
            rc = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rc = proc.wait()
        # lsyncd's rsync / the inotifywait loop: anything left in the group
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    fmt = lambda v: "" if v is None else "%.6f" % v
    append(a.out, ["setup", a.tool, a.round, a.tree, fmt(t_ready), fmt(t_done),
                   rss_ready, rss_done, hwm, watched, rc, failed])
    if failed:
        print("  setup   %-12s round %s, %s tree: FAILED: %s" % (a.tool, a.round, a.tree, failed),
              flush=True)
        sys.exit(3)
    print("  setup   %-12s round %s, %s tree: watches in place after %.3f s%s, RSS %s KiB "
          "(%s KiB 1 s after the initial sync; peak %s KiB), exit %s"
          % (a.tool, a.round, a.tree, t_ready,
             "" if a.done is None else ", initial sync done after %.3f s" % t_done,
             rss_ready, rss_done, hwm, rc), flush=True)


def log_time(line):
    """Epoch seconds of a treesync log line's own timestamp, or None."""
    m = TS_RE.match(line)
    if not m:
        return None
    ts = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f")
    return ts.replace(tzinfo=datetime.timezone.utc).timestamp()


def main():
    signal.signal(signal.SIGTERM, on_term)
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd_name", required=True)

    s = sub.add_parser("mktree")
    s.add_argument("dir")
    s.add_argument("--dirs", type=int, required=True)
    s.set_defaults(fn=cmd_mktree)

    s = sub.add_parser("ready")
    s.add_argument("--src", required=True)
    s.add_argument("--dst", required=True)
    s.add_argument("--timeout", type=float, default=60)
    s.set_defaults(fn=cmd_ready)

    s = sub.add_parser("latency")
    for k in ("src", "dst", "tool", "round", "out"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--samples", type=int, required=True)
    s.add_argument("--poll", type=float, default=0.0002)
    s.add_argument("--timeout", type=float, default=10)
    s.set_defaults(fn=cmd_latency)

    s = sub.add_parser("burst")
    for k in ("src", "dst", "tool", "round", "out"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--files", type=int, required=True)
    s.add_argument("--subdirs", type=int, required=True)
    s.add_argument("--pid", type=int, default=0)
    s.add_argument("--stall", type=float, default=20)
    s.add_argument("--timeout", type=float, default=180)
    s.add_argument("--poll", type=float, default=0.01)
    s.set_defaults(fn=cmd_burst)

    s = sub.add_parser("setup")
    for k in ("tool", "round", "tree", "log", "ready", "pidfile", "out"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--done")
    s.add_argument("--comm", help="measure the group's process of this name, not the leader")
    s.add_argument("--timeout", type=float, default=300)
    s.add_argument("cmd", nargs="+")
    s.set_defaults(fn=cmd_setup)

    a = p.parse_args()
    try:
        a.fn(a)
    except Stop as e:
        sys.exit("live_probe.py %s: %s" % (a.cmd_name, e))


if __name__ == "__main__":
    main()
