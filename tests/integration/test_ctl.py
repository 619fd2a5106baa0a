#!/usr/bin/env python3
"""Integration tests for treesyncctl against the real daemon (`treesyncd -f`)
on temporary trees: status (text and JSON) and metrics checked against what
the test did, pause/resume, resync of a destination damaged by hand,
reload (a new pair, a broken file, a moved socket), the not-running error,
and the control socket itself (mode, stale file, a second daemon, slow or
silent clients). Trees are judged by tests/tools/treecmp.py.

Environment: TREESYNCD, TREESYNCCTL, TREESYNC_SOURCE_ROOT, TREESYNC_WRAP
(as test_live: runs every treesyncd under it).
"""
import json
import os
import grp
import pwd
import re
import signal
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemonlib import (DEADLINE, DaemonCase, SLOW,  # noqa: E402
                       TREESYNCCTL, TREESYNCD, WRAP, write)


def human_size(n):
    """synclog_format_size, independently: what the table must show."""
    if n < 1024:
        return "%d B" % n
    v, units = float(n), ["KiB", "MiB", "GiB", "TiB"]
    u = -1
    while v >= 1024 and u < 3:
        v /= 1024
        u += 1
    return "%.1f %s" % (v, units[u])


# -- a strict parser of the Prometheus text format (0.0.4) ----------------
NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
SAMPLE = re.compile(r"^(%s)(?:\{(%s(?:,%s)*)\})? (\S+)$" % (NAME, LABEL,
                                                            LABEL))
LABEL_ONE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')


def parse_prometheus(text):
    """Returns {family: {"type", "help", "samples": [(name, labels, v)]}};
    raises AssertionError on anything the format does not allow."""
    fams, current = {}, None
    assert text.endswith("\n"), "exposition must end with a newline"
    for ln in text.split("\n")[:-1]:
        assert ln != "", "empty line in exposition"
        if ln.startswith("# HELP "):
            name, _, help_ = ln[7:].partition(" ")
            assert re.fullmatch(NAME, name), ln
            assert name not in fams, "family %s twice" % name
            fams[name] = {"help": help_, "type": None, "samples": []}
            current = name
            continue
        if ln.startswith("# TYPE "):
            name, _, typ = ln[7:].partition(" ")
            assert name == current, "TYPE %s not after its HELP" % name
            assert typ in ("counter", "gauge", "histogram", "summary",
                           "untyped"), ln
            fams[name]["type"] = typ
            continue
        assert not ln.startswith("#"), "stray comment: " + ln
        m = SAMPLE.match(ln)
        assert m, "not a sample line: %r" % ln
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        v = float(value)  # raises on garbage
        lab = dict(LABEL_ONE.findall(labels))
        fam = current
        assert fam is not None and fams[fam]["type"] is not None, ln
        if fams[fam]["type"] == "histogram":
            assert name in (fam + "_bucket", fam + "_sum", fam + "_count"), ln
        else:
            assert name == fam, "sample %s outside its family %s" % (name,
                                                                     fam)
        if fams[fam]["type"] == "counter":
            assert v >= 0, ln
        fams[fam]["samples"].append((name, lab, v))
    for fam, f in fams.items():
        assert f["type"] is not None, "family %s without TYPE" % fam
        if f["type"] != "histogram":
            continue
        series = {}
        for name, lab, v in f["samples"]:
            key = tuple(sorted((k, x) for k, x in lab.items() if k != "le"))
            s = series.setdefault(key, {"buckets": [], "sum": None,
                                        "count": None})
            if name.endswith("_bucket"):
                assert "le" in lab, "bucket without le"
                s["buckets"].append((float(lab["le"]), v))
            elif name.endswith("_sum"):
                s["sum"] = v
            else:
                s["count"] = v
        for key, s in series.items():
            assert s["sum"] is not None and s["count"] is not None, \
                "%s %s: _sum/_count missing" % (fam, key)
            les = [le for le, _ in s["buckets"]]
            assert les == sorted(les) and les[-1] == float("inf"), \
                "%s %s: buckets not ascending to +Inf" % (fam, key)
            counts = [c for _, c in s["buckets"]]
            assert all(a <= b for a, b in zip(counts, counts[1:])), \
                "%s %s: buckets not cumulative: %s" % (fam, key, counts)
            assert counts[-1] == s["count"], "%s: +Inf != _count" % fam
        f["series"] = series
    return fams


def value(fams, family, **labels):
    for name, lab, v in fams[family]["samples"]:
        if name == family and all(lab.get(k) == x for k, x in labels.items()):
            return v
    raise KeyError("%s %s" % (family, labels))


class Ctl(DaemonCase):
    def setUp(self):
        super().setUp()
        # The daemon makes the missing parent directory.
        self.sock = os.path.join(self.tmp, "run", "treesync", "c.sock")

    def start(self, syncs=None):
        super().start(syncs)
        self.wait_idle()

    def ctl(self, *args, sock=None, check=True):
        cmd = [TREESYNCCTL]
        if sock is not False:
            cmd += ["-s", sock or self.sock]
        p = subprocess.run(cmd + list(args), capture_output=True, text=True,
                           timeout=60 * SLOW)
        if check:
            self.assertEqual(p.returncode, 0, "treesyncctl %s: %s%s" % (
                " ".join(args), p.stdout, p.stderr))
        return p

    def status(self, sock=None):
        return json.loads(self.ctl("status", "--json", sock=sock).stdout)

    def pair(self, name="t", sock=None):
        for p in self.status(sock)["pairs"]:
            if p["name"] == name:
                return p
        self.fail("no pair %s in status" % name)

    def metrics(self):
        return parse_prometheus(self.ctl("metrics").stdout)

    def wait_idle(self, name="t", sock=None):
        """Polls status until the pair is idle with nothing queued."""
        end = time.monotonic() + DEADLINE
        last = None
        while True:
            if os.path.exists(sock or self.sock):
                p = self.ctl("status", "--json", sock=sock, check=False)
                if p.returncode == 0:
                    for pr in json.loads(p.stdout)["pairs"]:
                        if pr["name"] == name:
                            last = pr
                        if pr["name"] == name and pr["state"] == "idle" \
                                and pr["queue"] == 0:
                            return pr
            if time.monotonic() > end:
                self.fail("pair %s not idle after %d s: %s\nlog tail:\n%s"
                          % (name, DEADLINE, json.dumps(last),
                             self.logtext()[-3000:]))
            time.sleep(0.1)

    def move_in(self, relpath, data):
        """A file that appears in the source with one rename: one copy."""
        staging = os.path.join(self.tmp, "staging")
        os.makedirs(staging, exist_ok=True)
        tmp = os.path.join(staging, os.path.basename(relpath))
        write(tmp, data)
        os.rename(tmp, os.path.join(self.src, relpath))

    # -- status ------------------------------------------------------------
    def test_excluded_names_stay_out_and_their_directory_converges(self):
        """Two bugs the planner's model test found (tests/model): a
        rename inside an excluded directory (git's index.lock -> index)
        made a job for the directory, whose pass copied it; and an
        excluded name that came or went left its directory's mtime stale
        in the mirror (SPEC: directory mtimes converge)."""
        ex = ("--exclude", ".git/", "--exclude", "*.swp")
        write(os.path.join(self.src, ".git", "HEAD"), b"ref: main\n")
        write(os.path.join(self.src, "sub", "doc.txt"), b"doc")
        self.write_config([("t", self.src, [self.dst],
                            'exclude = ( ".git/", "*.swp" );')])
        self.proc = subprocess.Popen(WRAP + [TREESYNCD, "-f", "-c",
                                             self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.wait_equal(self.src, self.dst, *ex)
        self.wait_idle()
        lock = os.path.join(self.src, ".git", "index.lock")
        write(lock, b"index")
        os.rename(lock, os.path.join(self.src, ".git", "index"))
        swap = os.path.join(self.src, "sub", ".doc.txt.swp")
        write(swap, b"swap")
        os.unlink(swap)
        write(os.path.join(self.src, "sub", "stays.swp"), b"excluded")
        # Its events come after theirs: once it is mirrored and the pair
        # is idle, whatever they caused has been done.
        write(os.path.join(self.src, "marker"), b"m")
        self.wait_equal(self.src, self.dst, *ex)
        self.wait_idle()
        self.assertFalse(os.path.lexists(os.path.join(self.dst, ".git")),
                         sorted(os.listdir(self.dst)))
        self.assertFalse(os.path.lexists(os.path.join(self.dst, "sub",
                                                      "stays.swp")))
        self.wait_equal(self.src, self.dst, *ex)

    def test_status_text_and_json_count_what_was_copied(self):
        # 1,200 files of 100 bytes in 3 directories, copied by the first
        # full pass; then 5 files of known sizes moved in live.
        for i in range(1200):
            write(os.path.join(self.src, "d%d" % (i % 3), "f%04d" % i),
                  b"x" * 100)
        self.start()
        p = self.wait_idle()
        self.assertEqual(p["files_copied"], 1200)
        self.assertEqual(p["bytes_copied"], 120000)
        self.assertEqual(p["queue"], 0)
        self.assertEqual(p["errors"], 0)
        self.assertIsNone(p["last_error"])
        self.assertEqual(p["watches"], 4)
        self.assertEqual(p["source"], self.src)
        self.assertFalse(p["paused"])
        d = p["destinations"]
        self.assertEqual([x["path"] for x in d], [self.dst])
        self.assertEqual(d[0]["full_compares"], 1)
        self.assertIsNotNone(p["last_full_compare"])
        self.assertLessEqual(abs(p["last_full_compare"] - time.time()),
                             DEADLINE + 5)

        sizes = [1, 1000, 4096, 65536, 1 << 20]
        for i, n in enumerate(sizes):
            self.move_in("new%d" % i, bytes([65 + i]) * n)
        os.mkdir(os.path.join(self.src, "d3"))
        self.wait_equal()
        p = self.wait_idle()
        self.assertEqual(p["files_copied"], 1200 + len(sizes))
        self.assertEqual(p["bytes_copied"], 120000 + sum(sizes))
        self.assertGreaterEqual(p["events"], len(sizes))
        # A new directory is watched: counts come from the watcher.
        end = time.monotonic() + DEADLINE
        while self.pair()["watches"] != 5 and time.monotonic() < end:
            time.sleep(0.1)
        self.assertEqual(self.pair()["watches"], 5)

        text = self.ctl("status").stdout
        rows = [ln.split() for ln in text.splitlines()]
        head = next(i for i, r in enumerate(rows) if r[:2] == ["SYNC",
                                                               "STATE"])
        row = rows[head + 1]
        self.assertEqual(row[0], "t", text)
        self.assertEqual(row[1], "idle", text)
        self.assertEqual(row[2], "0", text)           # queue
        self.assertEqual(row[3], "1,205", text)       # files, grouped
        self.assertEqual(" ".join(row[4:6]),
                         human_size(120000 + sum(sizes)), text)
        self.assertEqual(row[-1], "5", text)          # watches
        self.assertIn("-> %s" % self.dst, text)
        self.assertRegex(text, r"\d+ s ago|\d+ min ago")
        self.stop()

    def test_status_shows_each_destination_and_the_last_error(self):
        dst2 = os.path.join(self.tmp, "dst2")
        write(os.path.join(self.src, "a"), b"a")
        self.start([("t", self.src, [self.dst, dst2])])
        self.wait_equal(self.src, dst2)
        # dst2 turns into a file: its pass fails, dst keeps syncing.
        shutil.rmtree(dst2)
        write(dst2, b"in the way")
        self.ctl("resync", "t")
        end = time.monotonic() + DEADLINE
        while True:
            p = self.pair()
            bad = [d for d in p["destinations"] if d["path"] == dst2][0]
            if bad["errors"] > 0 and p["state"] == "error":
                break
            if time.monotonic() > end:
                self.fail("no error shown: %s" % p)
            time.sleep(0.1)
        self.assertIn(dst2, bad["last_error"])
        self.assertIsNotNone(bad["last_error_time"])
        self.assertEqual(p["last_error"], bad["last_error"])
        good = [d for d in p["destinations"] if d["path"] == self.dst][0]
        self.assertEqual(good["errors"], 0)
        text = self.ctl("status").stdout
        self.assertIn("-> %s: error" % dst2, text)
        self.assertIn("last error (", text)
        os.unlink(dst2)
        self.ctl("resync", "t")
        self.wait_equal(self.src, dst2)
        self.stop()

    # -- pause / resume ----------------------------------------------------
    def test_pause_stops_propagation_and_resume_catches_up(self):
        write(os.path.join(self.src, "keep"), b"k")
        write(os.path.join(self.src, "gone"), b"g")
        self.start()
        p = self.ctl("pause", "t")
        self.assertIn("paused", p.stdout)
        self.assertEqual(self.pair()["state"], "paused")
        write(os.path.join(self.src, "while-paused"), b"written while paused")
        os.unlink(os.path.join(self.src, "gone"))
        write(os.path.join(self.src, "keep"), b"changed")
        # Well over delay_ms (20 ms) and the writer-quiet second.
        time.sleep(3)
        self.assertFalse(os.path.exists(os.path.join(self.dst,
                                                     "while-paused")))
        self.assertTrue(os.path.exists(os.path.join(self.dst, "gone")))
        with open(os.path.join(self.dst, "keep"), "rb") as f:
            self.assertEqual(f.read(), b"k")
        p = self.pair()
        self.assertEqual(p["state"], "paused")
        self.assertTrue(p["paused"])
        self.assertGreater(p["queue"], 0)     # recorded, not propagated
        self.assertIn("paused", self.ctl("status").stdout)
        self.ctl("resume", "t")
        self.wait_equal()
        p = self.wait_idle()
        self.assertFalse(p["paused"])
        self.stop()

    def test_pause_unknown_pair_and_usage_errors(self):
        self.start()
        p = self.ctl("pause", "nope", check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no sync pair named 'nope'", p.stderr)
        for args in (["pause"], ["frobnicate"], ["status", "--yaml"],
                     ["pause", "a/b"], []):
            p = self.ctl(*args, check=False)
            self.assertEqual(p.returncode, 2, "%s: %s" % (args, p.stderr))
            self.assertIn("treesyncctl", p.stderr)
        self.stop()

    # -- resync ------------------------------------------------------------
    def test_resync_repairs_a_destination_damaged_by_hand(self):
        for i in range(50):
            write(os.path.join(self.src, "d", "f%02d" % i), b"%d" % i * 100)
        self.start()
        # Damage with no source event: changed, removed, added.
        write(os.path.join(self.dst, "d", "f01"), b"damaged")
        os.unlink(os.path.join(self.dst, "d", "f02"))
        write(os.path.join(self.dst, "extra"), b"not in the source")
        time.sleep(1)
        self.assertNotEqual(self.compare(self.src, self.dst).returncode, 0,
                            "the daemon repaired on its own: no test")
        before = self.pair()["destinations"][0]["full_compares"]
        p = self.ctl("resync", "t")
        self.assertIn("full compare", p.stdout)
        self.wait_equal()
        p = self.wait_idle()
        self.assertGreater(p["destinations"][0]["full_compares"], before)
        self.assertGreaterEqual(p["deletes"], 1)
        with open(os.path.join(self.dst, "d", "f01"), "rb") as f:
            self.assertEqual(f.read(), b"1" * 100)
        # --force is accepted (it arms the max_delete override).
        self.ctl("resync", "--force", "t")
        self.wait_idle()
        self.stop()

    # -- reload ------------------------------------------------------------
    def test_reload_adds_a_pair_reports_a_broken_file_and_moves_the_socket(
            self):
        src2 = os.path.join(self.tmp, "src2")
        dst2 = os.path.join(self.tmp, "dst2")
        write(os.path.join(src2, "x", "y"), b"second pair")
        self.start()
        self.write_config([("t", self.src, [self.dst]),
                           ("u", src2, [dst2])])
        p = self.ctl("reload")
        self.assertIn("2 sync pairs", p.stdout)
        self.wait_equal(src2, dst2)
        self.assertEqual(sorted(x["name"] for x in self.status()["pairs"]),
                         ["t", "u"])
        self.wait_idle("u")

        # A broken file: FILE:LINE problems, the old configuration stays.
        with open(self.conf) as f:
            lines = f.read().splitlines()
        self.assertTrue(lines[1].startswith("delay_ms"))
        lines[1] = 'delay_ms = "soon";'
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        p = self.ctl("reload", check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("%s:2:" % self.conf, p.stderr)
        self.assertIn("delay_ms", p.stderr)
        self.assertIn("stays in force", p.stderr)
        write(os.path.join(src2, "after-broken"), b"still syncing")
        write(os.path.join(self.src, "after-broken"), b"still syncing")
        self.wait_equal(src2, dst2)
        self.wait_equal()
        self.assertEqual(len(self.status()["pairs"]), 2)

        # control_socket changed: the socket moves.
        sock2 = os.path.join(self.tmp, "other", "c2.sock")
        self.write_config([("t", self.src, [self.dst])], sock=sock2)
        p = self.ctl("reload")
        self.assertIn("1 sync pair", p.stdout)
        self.assertFalse(os.path.exists(self.sock))
        self.assertTrue(stat.S_ISSOCK(os.stat(sock2).st_mode))
        self.assertEqual([x["name"] for x in self.status(sock2)["pairs"]],
                         ["t"])
        self.assertEqual(self.status(sock2)["control_socket"], sock2)
        # treesyncctl -c finds it through the config.
        p = self.ctl("-c", self.conf, "status", "--json", sock=False)
        self.assertEqual(json.loads(p.stdout)["control_socket"], sock2)
        self.stop()
        self.assertFalse(os.path.exists(sock2))

    # -- metrics -----------------------------------------------------------
    def test_metrics_parse_and_count_what_the_test_did(self):
        write(os.path.join(self.src, "a"), b"a" * 10)
        write(os.path.join(self.src, "b"), b"b" * 20)
        write(os.path.join(self.src, "c"), b"c" * 30)
        self.start()
        labels = {"sync": "t", "destination": self.dst}
        m = self.metrics()
        self.assertEqual(value(m, "treesync_files_copied_total", **labels), 3)
        self.assertEqual(value(m, "treesync_bytes_copied_total", **labels),
                         60)
        # Live: 4 files moved in (1000 bytes each), 2 deleted, 1 renamed.
        for i in range(4):
            self.move_in("n%d" % i, b"n" * 1000)
        self.wait_equal()
        self.wait_idle()
        os.unlink(os.path.join(self.src, "a"))
        os.unlink(os.path.join(self.src, "b"))
        self.wait_equal()
        self.wait_idle()
        os.rename(os.path.join(self.src, "c"), os.path.join(self.src, "c2"))
        self.wait_equal()
        self.wait_idle()
        m = self.metrics()
        for fam, typ in (("treesync_files_copied_total", "counter"),
                         ("treesync_bytes_copied_total", "counter"),
                         ("treesync_deletes_total", "counter"),
                         ("treesync_renames_total", "counter"),
                         ("treesync_errors_total", "counter"),
                         ("treesync_events_total", "counter"),
                         ("treesync_overflows_total", "counter"),
                         ("treesync_queue_depth", "gauge"),
                         ("treesync_watches", "gauge"),
                         ("treesync_propagation_latency_seconds",
                          "histogram")):
            self.assertIn(fam, m)
            self.assertEqual(m[fam]["type"], typ, fam)
            self.assertTrue(m[fam]["help"], fam)
        self.assertEqual(value(m, "treesync_files_copied_total", **labels), 7)
        self.assertEqual(value(m, "treesync_bytes_copied_total", **labels),
                         4060)
        self.assertEqual(value(m, "treesync_deletes_total", **labels), 2)
        self.assertEqual(value(m, "treesync_renames_total", **labels), 1)
        self.assertEqual(value(m, "treesync_errors_total", **labels), 0)
        self.assertEqual(value(m, "treesync_queue_depth", **labels), 0)
        self.assertEqual(value(m, "treesync_overflows_total", sync="t"), 0)
        self.assertGreaterEqual(value(m, "treesync_events_total", sync="t"),
                                7)
        self.assertEqual(value(m, "treesync_watches", sync="t"), 1)
        self.assertEqual(value(m, "treesync_state", sync="t", state="idle"),
                         1)
        self.assertEqual(value(m, "treesync_state", sync="t",
                               state="paused"), 0)
        hist = m["treesync_propagation_latency_seconds"]["series"]
        s = hist[tuple(sorted(labels.items()))]
        # Each moved-in file and each delete was served by a path job.
        self.assertGreaterEqual(s["count"], 6)
        self.assertGreater(s["sum"], 0)
        self.stop()

    def test_prometheus_parser_rejects_malformed_text(self):
        good = ("# HELP x_total X.\n# TYPE x_total counter\n"
                'x_total{a="1"} 2\n')
        parse_prometheus(good)
        for bad in (good.replace("# TYPE x_total counter\n", ""),
                    good + "x_total{a=1} 2\n",
                    good + "y 1\n",
                    good + "x_total 1 2 3\n",
                    good.rstrip("\n"),
                    "# HELP h H.\n# TYPE h histogram\n"
                    'h_bucket{le="1"} 3\nh_bucket{le="+Inf"} 2\n'
                    "h_sum 1\nh_count 2\n",
                    "# HELP h H.\n# TYPE h histogram\n"
                    'h_bucket{le="+Inf"} 2\nh_sum 1\n'):
            with self.assertRaises((AssertionError, ValueError), msg=bad):
                parse_prometheus(bad)

    # -- the socket ----------------------------------------------------------
    def test_not_running_is_a_clear_error(self):
        missing = os.path.join(self.tmp, "nowhere", "c.sock")
        p = self.ctl("status", sock=missing, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(p.stdout, "")
        self.assertIn("treesyncctl: cannot connect to %s: No such file or "
                      "directory" % missing, p.stderr)
        self.assertIn("is treesyncd running?", p.stderr)
        # Found through -c: same message, the config's path.
        self.write_config(sock=missing)
        p = self.ctl("-c", self.conf, "status", sock=False, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("cannot connect to %s" % missing, p.stderr)
        # A stale socket file (nobody listening).
        stale = os.path.join(self.tmp, "stale.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)
        s.close()
        p = self.ctl("status", sock=stale, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("Connection refused", p.stderr)
        # An unreadable -c file is an error; a missing default is not.
        p = self.ctl("-c", os.path.join(self.tmp, "no.conf"), "status",
                     sock=False, check=False)
        self.assertEqual(p.returncode, 1)
        self.assertIn("no.conf", p.stderr)

    def test_socket_mode_stale_file_second_daemon_and_removal(self):
        os.makedirs(os.path.dirname(self.sock))
        s = socket.socket(socket.AF_UNIX)
        s.bind(self.sock)    # stale: bound, never listening
        s.close()
        self.start()
        st = os.stat(self.sock)
        self.assertTrue(stat.S_ISSOCK(st.st_mode))
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        # A second daemon on the same socket refuses to start.
        p = subprocess.run(WRAP + [TREESYNCD, "-f", "-c", self.conf],
                           capture_output=True, text=True,
                           timeout=60 * SLOW)
        self.assertEqual(p.returncode, 1)
        self.assertIn("another treesyncd answers on it",
                      p.stderr + self.logtext())
        self.assertEqual(self.status()["pid"], self.proc.pid)
        self.stop()
        self.assertFalse(os.path.exists(self.sock))

    def test_parent_directory_is_made(self):
        self.start()
        parent = os.path.dirname(self.sock)
        self.assertEqual(stat.S_IMODE(os.stat(parent).st_mode), 0o755)
        self.stop()

    def test_silent_and_slow_clients_do_not_stall_the_daemon(self):
        self.start()
        silent = []
        for _ in range(5):
            c = socket.socket(socket.AF_UNIX)
            c.connect(self.sock)
            silent.append(c)
        # Clients that ask and never read their answer.
        greedy = []
        for _ in range(5):
            c = socket.socket(socket.AF_UNIX)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            c.connect(self.sock)
            c.sendall(b"metrics\n")
            greedy.append(c)
        # A request line that never ends is refused, not buffered.
        long = socket.socket(socket.AF_UNIX)
        long.connect(self.sock)
        long.sendall(b"s" * 5000)
        long.settimeout(30 * SLOW)
        answer = b""
        while True:
            chunk = long.recv(4096)
            if not chunk:
                break
            answer += chunk
        self.assertTrue(answer.startswith(b"ERR\n"), answer)
        self.assertIn(b"longer than", answer)
        # Meanwhile the daemon syncs and answers.
        write(os.path.join(self.src, "f"), b"during")
        self.wait_equal()
        self.assertEqual(self.pair()["state"], "idle")
        for c in silent + greedy + [long]:
            c.close()
        self.stop()


    def test_a_client_that_does_not_read_is_dropped(self):
        # 150 pairs: a metrics answer far larger than the socket buffers.
        syncs = [("t", self.src, [self.dst])]
        for i in range(150):
            src = os.path.join(self.tmp, "s%03d" % i)
            os.mkdir(src)
            syncs.append(("p%03d" % i, src, [os.path.join(self.tmp,
                                                          "d%03d" % i)]))
        self.start(syncs)
        for name, _, _ in syncs:
            self.wait_idle(name)
        size = len(self.ctl("metrics").stdout)
        self.assertGreater(size, 400000)
        c = socket.socket(socket.AF_UNIX)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.connect(self.sock)
        c.sendall(b"metrics\n")
        t0 = time.monotonic()
        # The daemon keeps answering and syncing meanwhile.
        write(os.path.join(self.tmp, "s007", "f"), b"while stalled")
        self.wait_equal(os.path.join(self.tmp, "s007"),
                        os.path.join(self.tmp, "d007"))
        self.assertEqual(self.pair("p007")["state"], "idle")
        # After its timeout (10 s) the daemon drops it: what it can still
        # read is the start of the answer, then the end of the stream.
        time.sleep(max(0, 12 - (time.monotonic() - t0)))
        c.settimeout(30 * SLOW)
        got = b""
        try:
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        c.close()
        self.assertTrue(got.startswith(b"OK\n"), got[:100])
        self.assertLess(len(got), size)
        self.stop()

    # -- reload off the reactor ----------------------------------------------
    def test_reload_reads_the_file_off_the_reactor(self):
        """A reload whose file cannot be read yet (its @include is a fifo
        nobody writes: open(2) blocks, as on a hung NFS server) does not
        stop the daemon: changes arrive and status answers meanwhile, and
        the reload finishes once the file can be read."""
        write(os.path.join(self.src, "before"), b"b")
        self.start()
        fifo = os.path.join(self.tmp, "slow.conf")
        os.mkfifo(fifo)
        self.write_config(extra='@include "%s"' % fifo)
        reload = subprocess.Popen([TREESYNCCTL, "-s", self.sock, "reload"],
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        try:
            write(os.path.join(self.src, "during"), b"while reloading")
            self.wait_equal()
            self.assertEqual(self.pair()["name"], "t")
            self.assertIsNone(reload.poll(), "the reload did not block: "
                              "no test")
        finally:
            # The file becomes readable: an empty include.
            os.close(os.open(fifo, os.O_WRONLY))
        out, err = reload.communicate(timeout=60 * SLOW)
        self.assertEqual(reload.returncode, 0, err)
        self.assertIn("reloaded %s: 1 sync pair" % self.conf, out)
        # SIGHUP takes the same way; SIGTERM while it hangs still exits 0.
        self.proc.send_signal(signal.SIGHUP)
        end = time.monotonic() + DEADLINE
        while "SIGHUP: reloading" not in self.logtext():
            self.assertLess(time.monotonic(), end, self.logtext()[-2000:])
            time.sleep(0.1)
        write(os.path.join(self.src, "during-sighup"), b"x")
        self.wait_equal()
        self.stop()

    def test_reload_that_cannot_move_the_socket_fails(self):
        self.start()
        other = os.path.join(self.tmp, "not-a-socket")
        write(other, b"in the way")
        self.write_config(sock=other)
        p = self.ctl("reload", check=False)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("cannot move the control socket to '%s'" % other,
                      p.stderr)
        self.assertIn("not a socket", p.stderr)
        # The daemon stays on its socket.
        self.assertEqual(self.status()["control_socket"], self.sock)
        self.stop()

    # -- the socket's limits -------------------------------------------------
    def test_a_trickling_client_is_dropped_at_the_request_deadline(self):
        """One byte every 2 s never makes a request: the 10 s are for the
        whole request, so the daemon drops it, with a word."""
        self.start()
        c = socket.socket(socket.AF_UNIX)
        c.connect(self.sock)
        c.settimeout(2)
        got = b""
        end = time.monotonic() + 40 * SLOW
        for ch in b"status --json" * 10:
            try:
                c.send(bytes([ch]))
                chunk = c.recv(4096)
                got += chunk
                if not chunk:
                    break
            except socket.timeout:
                pass
            except (BrokenPipeError, ConnectionResetError):
                break
            self.assertLess(time.monotonic(), end,
                            "a trickling client kept its connection")
        c.close()
        self.assertTrue(got.startswith(b"ERR\nno complete request"), got)
        self.ctl("status")
        self.stop()

    def test_past_the_client_cap_the_oldest_idle_client_goes(self):
        self.start()
        idle = []
        for _ in range(32):
            c = socket.socket(socket.AF_UNIX)
            c.connect(self.sock)
            idle.append(c)
        # The 33rd is served (it used to be closed at once).
        p = self.ctl("status", "--json")
        self.assertEqual(json.loads(p.stdout)["pairs"][0]["name"], "t")
        idle[0].settimeout(10 * SLOW)
        self.assertTrue(idle[0].recv(4096).startswith(b"ERR\ndropped"))
        idle[-1].settimeout(0.5)
        with self.assertRaises(socket.timeout):
            idle[-1].recv(4096)   # the newest is still there
        for c in idle:
            c.close()
        self.stop()

    def test_a_second_request_on_one_connection_is_refused(self):
        self.start()
        c = socket.socket(socket.AF_UNIX)
        c.connect(self.sock)
        c.sendall(b"status\npause t\n")
        c.settimeout(10 * SLOW)
        answer = b""
        while True:
            chunk = c.recv(4096)
            if not chunk:
                break
            answer += chunk
        c.close()
        self.assertTrue(answer.startswith(b"ERR\n"), answer)
        self.assertIn(b"one request per connection", answer)
        self.assertEqual(self.pair()["state"], "idle")   # not paused
        self.stop()

    def test_permission_error_names_the_sockets_owner_group_and_mode(self):
        """As a real unprivileged user (a temporary one)."""
        if os.geteuid() != 0:
            self.skipTest("needs root to add a user")
        user = "service-ctl%d" % os.getpid()
        subprocess.run(["useradd", "--no-create-home", "--shell",
                        "/usr/sbin/nologin", user], check=True)
        self.addCleanup(subprocess.run, ["userdel", user])
        ent = pwd.getpwnam(user)
        # A copy the user can run, wherever the build lives.
        ctl = os.path.join(self.tmp, "treesyncctl")
        shutil.copy(TREESYNCCTL, ctl)
        os.chmod(ctl, 0o755)
        self.start()
        st = os.stat(self.sock)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o660)
        # Its own uid, gid and no supplementary group (not root's).
        p = subprocess.run([ctl, "-s", self.sock, "status"],
                           user=ent.pw_uid, group=ent.pw_gid,
                           extra_groups=[], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 1)
        owner = pwd.getpwuid(st.st_uid).pw_name
        group = grp.getgrgid(st.st_gid).gr_name
        self.assertIn("Permission denied", p.stderr)
        self.assertIn("owned by %s:%s with mode 0660" % (owner, group),
                      p.stderr)
        self.assertNotIn("is treesyncd running", p.stderr)
        self.stop()


@unittest.skipUnless(os.geteuid() == 0, "needs root to add a group and "
                     "users")
class CtlGroup(DaemonCase):
    """control_socket_group: members of the group may use treesyncctl,
    others may not; a reload applies a change of the group."""
    GROUP = "deb-tsctl-grp"
    MEMBER = "deb-tsctl-in"
    OTHER = "deb-tsctl-out"
    ctl = Ctl.ctl

    def setUp(self):
        super().setUp()
        self.sock = os.path.join(self.tmp, "run", "treesync", "c.sock")
        import grp
        for args in (["groupadd", "--system", self.GROUP],
                     ["useradd", "--system", "--no-create-home", "--shell",
                      "/usr/sbin/nologin", "-G", self.GROUP, self.MEMBER],
                     ["useradd", "--system", "--no-create-home", "--shell",
                      "/usr/sbin/nologin", self.OTHER]):
            subprocess.run(args, check=True)
        # Cleanups run last-in first: users, then the group.
        self.addCleanup(subprocess.run, ["groupdel", self.GROUP])
        self.addCleanup(subprocess.run, ["userdel", self.MEMBER])
        self.addCleanup(subprocess.run, ["userdel", self.OTHER])
        self.gid = grp.getgrnam(self.GROUP).gr_gid

    def write_config(self, syncs=None, extra="", sock=None):
        super().write_config(syncs, extra + getattr(self, "group_line", ""),
                             sock)

    def ctl_as(self, user):
        return subprocess.run(
            ["setpriv", "--reuid", user, "--regid", user, "--init-groups",
             "--", TREESYNCCTL, "-s", self.sock, "status"],
            capture_output=True, text=True, timeout=60 * SLOW)

    def test_group_members_may_connect(self):
        self.group_line = 'control_socket_group = "%s";\n' % self.GROUP
        self.start()
        st = os.stat(self.sock)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                         (0, self.gid, 0o660))
        p = self.ctl_as(self.MEMBER)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("t ", p.stdout)
        p = self.ctl_as(self.OTHER)
        self.assertEqual(p.returncode, 1)
        self.assertIn("Permission denied", p.stderr)
        # Without the setting the socket is the daemon's group's again.
        self.group_line = ""
        self.write_config()
        self.ctl("reload")
        self.assertEqual(os.stat(self.sock).st_gid, os.getegid())
        self.assertEqual(self.ctl_as(self.MEMBER).returncode, 1)
        self.stop()


if __name__ == "__main__":
    unittest.main(verbosity=2)
