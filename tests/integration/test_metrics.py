#!/usr/bin/env python3
"""The Prometheus endpoint (metrics_listen) against the real daemon
(`treesyncd -f`) on temporary trees, on loopback only:

- what GET /metrics answers (the families of `treesyncctl metrics`, the
  exposition format, its Content-Type), 404 for other paths, 405 for other
  methods on /metrics, the header and body limits;
- off unless configured; started, moved and stopped by a reload; an
  address that cannot be had at start is an error;
- bounded: 200 clients that connect and hang or trickle do not delay a
  change's arrival, the daemon holds at most METRICS_HTTP_MAX_CONNECTIONS
  of them, a trickler is cut off, and the endpoint answers again after;
- a real Prometheus server (Debian's `prometheus`, installed when missing
  and the test runs as root) scraping it every second: its HTTP API
  reports the files, bytes and latency samples the test caused, and
  `promtool check metrics` accepts the output.

Trees are judged by tests/tools/treecmp.py (daemonlib.wait_equal).
Environment: TREESYNCD, TREESYNCCTL, TREESYNC_SOURCE_ROOT, TREESYNC_WRAP.
"""
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from daemonlib import (DEADLINE, DaemonCase, SLOW,  # noqa: E402
                       TREESYNCCTL, TREESYNCD, WRAP, write)
from test_ctl import parse_prometheus, value  # noqa: E402

# include/service/metrics_http.h
MAX_CONNECTIONS = 16
TIMEOUT_S = 10
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def assert_loopback(host):
    """Traffic goes to loopback only: the route says so."""
    r = subprocess.run(["ip", "route", "get", host], capture_output=True,
                       text=True)
    if r.returncode == 0:
        assert " dev lo " in r.stdout + " ", r.stdout


def tcp_sockets_of(pid, port):
    """How many TCP sockets of process pid have local port `port`
    (the listener included), from /proc: what the daemon holds."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", link)
        if m:
            inodes.add(m.group(1))
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if int(f[1].rsplit(":", 1)[1], 16) == port and f[9] in inodes:
                n += 1
    return n


def listening_ports_of(pid):
    """Local ports of the TCP sockets of pid in state LISTEN."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", link)
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            f = row.split()
            if f[3] == "0A" and f[9] in inodes:
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


class MetricsCase(DaemonCase):
    def setUp(self):
        super().setUp()
        assert_loopback("127.0.0.1")
        self.port = free_port()
        self.listen = "127.0.0.1:%d" % self.port

    def write_config(self, syncs=None, extra=None, sock=None):
        if extra is None:
            extra = 'metrics_listen = "%s";' % self.listen
        super().write_config(syncs, extra, sock)

    def request(self, method="GET", path="/metrics", port=None, body=None,
                headers=None, host="127.0.0.1"):
        c = http.client.HTTPConnection(host, port or self.port,
                                       timeout=30 * SLOW)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def scrape(self, port=None):
        status, headers, body = self.request(port=port)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers.get("Content-Type"), CONTENT_TYPE)
        return body.decode()

    def ctl(self, *args):
        p = subprocess.run([TREESYNCCTL, "-s", self.sock] + list(args),
                           capture_output=True, text=True, timeout=60 * SLOW)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return p.stdout

    def wait_for(self, what, pred, deadline=DEADLINE):
        end = time.monotonic() + deadline
        while True:
            v = pred()
            if v:
                return v
            if time.monotonic() > end:
                self.fail("timed out after %d s waiting for %s\nlog tail:\n"
                          "%s" % (deadline, what, self.logtext()[-3000:]))
            time.sleep(0.1)

    def wait_idle(self):
        def idle():
            st = json.loads(self.ctl("status", "--json"))
            return all(p["state"] == "idle" and p["queue"] == 0
                       for p in st["pairs"])
        self.wait_for("the pairs to be idle", idle)

    def refused(self, port):
        s = socket.socket()
        s.settimeout(5 * SLOW)
        try:
            s.connect(("127.0.0.1", port))
            return False
        except ConnectionRefusedError:
            return True
        finally:
            s.close()


class Endpoint(MetricsCase):
    def test_get_metrics_is_what_treesyncctl_metrics_says(self):
        write(os.path.join(self.src, "a"), b"a" * 10)
        write(os.path.join(self.src, "d/b"), b"b" * 20)
        self.start()
        self.wait_idle()
        http_fams = parse_prometheus(self.scrape())
        ctl_fams = parse_prometheus(self.ctl("metrics"))
        # The same families, each with its HELP and TYPE, and the same
        # series; at rest the same values too.
        self.assertEqual(sorted(http_fams), sorted(ctl_fams))
        for fam in ctl_fams:
            self.assertEqual(http_fams[fam]["help"], ctl_fams[fam]["help"])
            self.assertEqual(http_fams[fam]["type"], ctl_fams[fam]["type"])
            self.assertEqual(http_fams[fam]["samples"],
                             ctl_fams[fam]["samples"], fam)
        labels = {"sync": "t", "destination": self.dst}
        self.assertEqual(value(http_fams, "treesync_files_copied_total",
                               **labels), 2)
        self.assertEqual(value(http_fams, "treesync_bytes_copied_total",
                               **labels), 30)
        self.assertEqual(http_fams["treesync_propagation_latency_seconds"]
                         ["type"], "histogram")
        self.assertIn("metrics endpoint: http://%s/metrics" % self.listen,
                      self.logtext())
        self.stop()

    def test_head_and_query_string(self):
        self.start()
        status, headers, body = self.request("HEAD")
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers.get("Content-Type"), CONTENT_TYPE)
        status, _, body = self.request(path="/metrics?name=x")
        self.assertEqual(status, 200)
        self.assertIn(b"# TYPE treesync_files_copied_total counter", body)

    def test_other_paths_404_other_methods_405(self):
        self.start()
        for path in ("/", "/metrics/", "/metricsx", "/x/metrics",
                     "/favicon.ico", "/%6detrics"):
            with self.subTest(path=path):
                status, _, body = self.request(path=path)
                self.assertEqual(status, 404, body)
                self.assertNotIn(b"treesync_", body)
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            with self.subTest(method=method):
                status, headers, body = self.request(method, body=b"")
                self.assertEqual(status, 405, body)
                self.assertEqual(headers.get("Allow"), "GET, HEAD")
                self.assertNotIn(b"treesync_", body)
        # A path other than /metrics is 404 whatever the method.
        self.assertEqual(self.request("POST", "/x", body=b"")[0], 404)
        # And the daemon still syncs and answers.
        write(os.path.join(self.src, "after"), b"x")
        self.wait_equal()
        self.assertEqual(self.request()[0], 200)

    def test_request_limits(self):
        self.start()
        # A header block over 8 KiB, a body over 1 KiB: refused, not read
        # into memory without end.
        status, _, _ = self.request(headers={"X-Big": "a" * 10000})
        self.assertIn(status, (400, 413))
        status, _, _ = self.request("POST", body=b"b" * 5000)
        self.assertEqual(status, 413)
        self.assertEqual(self.request()[0], 200)

    def test_off_unless_configured(self):
        write(os.path.join(self.src, "a"), b"a")
        self.write_config(extra="")
        self.proc = subprocess.Popen(WRAP + [TREESYNCD, "-f", "-c",
                                             self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.wait_equal()
        self.wait_idle()
        self.assertEqual(listening_ports_of(self.proc.pid), set())
        self.assertNotIn("metrics endpoint", self.logtext())

    def test_reload_starts_moves_and_stops_it(self):
        self.write_config(extra="")
        self.proc = subprocess.Popen(WRAP + [TREESYNCD, "-f", "-c",
                                             self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.wait_equal()
        self.assertTrue(self.refused(self.port))
        # Started by a reload.
        self.write_config()
        self.ctl("reload")
        self.scrape()
        # Moved: the old port is closed, the new one answers.
        other = free_port()
        self.write_config(extra='metrics_listen = "127.0.0.1:%d";' % other)
        self.ctl("reload")
        self.scrape(port=other)
        self.assertTrue(self.refused(self.port))
        # A new address that cannot be had keeps the old one.
        holder = socket.socket()
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        busy = holder.getsockname()[1]
        try:
            self.write_config(extra='metrics_listen = "127.0.0.1:%d";' %
                              busy)
            # The rest of the file is in force, but not all of it: the
            # reload says so and exits 1 (issue 13).
            p = subprocess.run([TREESYNCCTL, "-s", self.sock, "reload"],
                               capture_output=True, text=True,
                               timeout=60 * SLOW)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertIn("cannot listen on 127.0.0.1:%d" % busy, p.stderr)
            self.scrape(port=other)
            self.assertIn("reload: cannot listen on 127.0.0.1:%d "
                          "(metrics_listen): Address already in use; the "
                          "metrics endpoint stays on 127.0.0.1:%d" % (
                              busy, other), self.logtext())
        finally:
            holder.close()
        # The same port on another address: the daemon holds it itself,
        # lets it go and takes the new one (the wildcard briefly; the
        # test talks to loopback only).
        self.write_config(extra='metrics_listen = "0.0.0.0:%d";' % other)
        out = self.ctl("reload")
        self.assertNotIn("cannot listen", out)
        self.scrape(port=other)
        self.assertIn("metrics endpoint: http://0.0.0.0:%d/metrics" % other,
                      self.logtext())
        # Stopped.
        self.write_config(extra="")
        self.ctl("reload")
        self.assertTrue(self.refused(other))
        self.assertEqual(listening_ports_of(self.proc.pid), set())
        write(os.path.join(self.src, "after"), b"x")
        self.wait_equal()

    def test_busy_address_at_start_is_an_error(self):
        holder = socket.socket()
        holder.bind(("127.0.0.1", self.port))
        holder.listen(1)
        try:
            self.write_config()
            p = subprocess.run(WRAP + [TREESYNCD, "-f", "-c", self.conf],
                               capture_output=True, text=True,
                               timeout=60 * SLOW)
        finally:
            holder.close()
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("cannot listen on %s (metrics_listen): Address already "
                      "in use; not starting" % self.listen, self.logtext())

    def test_ipv6_loopback(self):
        try:
            port = free_port(socket.AF_INET6, "::1")
        except OSError:
            self.skipTest("no IPv6 loopback")
        self.write_config(extra='metrics_listen = "[::1]:%d";' % port)
        self.proc = subprocess.Popen(WRAP + [TREESYNCD, "-f", "-c",
                                             self.conf],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.wait_equal()
        status, _, body = self.request(port=port, host="::1")
        self.assertEqual(status, 200)
        self.assertIn(b"treesync_files_copied_total", body)

    def test_many_slow_clients_do_not_delay_syncing(self):
        write(os.path.join(self.src, "before"), b"x")
        self.start()
        stop = threading.Event()
        hangers, tricklers = [], []
        # 100 connect and send nothing; 100 send a request a byte at a time
        # and never finish it. Connections the daemon does not accept yet
        # wait in its backlog (or in SYN retries).
        for i in range(200):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", self.port))
            except BlockingIOError:
                pass
            (hangers if i % 2 else tricklers).append(s)
        line = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 4000

        def trickle():
            pos = 0
            while not stop.wait(0.5):
                for s in tricklers:
                    try:
                        s.send(line[pos % len(line):pos % len(line) + 1])
                    except OSError:
                        pass
                pos += 1
        t = threading.Thread(target=trickle)
        t.start()
        try:
            time.sleep(1)
            held = tcp_sockets_of(self.proc.pid, self.port)
            # The listener and at most MAX_CONNECTIONS clients.
            self.assertLessEqual(held, MAX_CONNECTIONS + 1)
            self.assertGreater(held, 1)
            # A change arrives as it does without them.
            write(os.path.join(self.src, "during", "f"), b"y" * 1000)
            os.rename(os.path.join(self.src, "before"),
                      os.path.join(self.src, "renamed"))
            self.wait_equal()
            self.assertLessEqual(tcp_sockets_of(self.proc.pid, self.port),
                                 MAX_CONNECTIONS + 1)
            # The control socket answers meanwhile.
            self.assertIn('"name": "t"', self.ctl("status", "--json"))
        finally:
            stop.set()
            t.join()
            for s in hangers + tricklers:
                s.close()
        # Once they are gone, the endpoint answers again (their slots are
        # freed within a sweep).
        self.wait_for("GET /metrics to answer after the flood",
                      lambda: self.request()[0] == 200)

    def test_kept_alive_scrapes_are_not_cut_off(self):
        # As Prometheus scrapes: one connection, a request a second, for
        # longer than the deadline; each answer gives the next request a
        # new one.
        self.start()
        c = http.client.HTTPConnection("127.0.0.1", self.port,
                                       timeout=30 * SLOW)
        c.connect()
        first = c.sock
        started = time.monotonic()
        n = 0
        while time.monotonic() - started < TIMEOUT_S + 3:
            c.request("GET", "/metrics")
            r = c.getresponse()
            self.assertEqual(r.status, 200)
            r.read()
            self.assertIs(c.sock, first, "the connection was replaced")
            n += 1
            time.sleep(1)
        c.close()
        self.assertGreater(n, TIMEOUT_S)

    def test_trickling_client_is_cut_off(self):
        self.start()
        s = socket.create_connection(("127.0.0.1", self.port))
        s.settimeout(1)
        line = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"z" * 4000
        started, pos, eof = time.monotonic(), 0, False
        # One byte every 0.5 s: never idle for the idle timeout, so only
        # the deadline from the accept can end it.
        while time.monotonic() - started < (TIMEOUT_S + 50) * SLOW:
            try:
                s.send(line[pos:pos + 1])
                pos += 1
                if s.recv(4096) == b"":
                    eof = True
                    break
            except socket.timeout:
                continue
            except OSError:
                eof = True
                break
        s.close()
        self.assertTrue(eof, "a client trickling its request for %d s was "
                        "not cut off" % (time.monotonic() - started))
        self.assertLess(pos, len(line), "the whole request went out")
        self.assertEqual(self.request()[0], 200)


def prometheus_tools():
    """(prometheus, promtool), installing Debian's package if missing;
    None when it is not there and cannot be installed."""
    def found():
        p, t = shutil.which("prometheus"), shutil.which("promtool")
        return (p, t) if p and t else None
    if found() or os.geteuid() != 0:
        return found()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sys.stderr.write("metrics: installing prometheus (apt-get)\n")
    r = subprocess.run(["apt-get", "install", "-y", "-qq",
                        "--no-install-recommends", "prometheus"], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True)
    if r.returncode != 0:
        sys.stderr.write("metrics: apt-get install prometheus: %s\n" %
                         r.stderr[-500:])
    elif os.path.isdir("/run/systemd/system"):
        # The package starts its own server on :9090 under systemd; the
        # test runs its own, so the one it just brought is put back off.
        subprocess.run(["systemctl", "disable", "--now", "prometheus"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return found()


class Prometheus(MetricsCase):
    """A real Prometheus on loopback scraping the endpoint every second."""
    tools = None

    @classmethod
    def setUpClass(cls):
        cls.tools = prometheus_tools()

    def setUp(self):
        if self.tools is None:
            self.skipTest("prometheus/promtool not installed (apt-get "
                          "install prometheus) and not root to install it")
        super().setUp()
        self.prom = None
        self.prom_port = free_port()
        self.prom_dir = os.path.join(self.tmp, "prometheus")
        os.mkdir(self.prom_dir)

    def tearDown(self):
        if self.prom is not None and self.prom.poll() is None:
            self.prom.send_signal(signal.SIGTERM)
            try:
                self.prom.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.prom.kill()
                self.prom.wait()
        if getattr(self, "prom_log", None) is not None:
            self.prom_log.close()
        super().tearDown()

    def start_prometheus(self):
        conf = os.path.join(self.prom_dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "scrape_configs:\n  - job_name: treesync\n"
                    "    static_configs:\n"
                    "      - targets: [\"%s\"]\n" % self.listen)
        self.prom_log = open(os.path.join(self.prom_dir, "log"), "w")
        self.prom = subprocess.Popen(
            [self.tools[0], "--config.file=" + conf,
             "--storage.tsdb.path=" + os.path.join(self.prom_dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.prom_port,
             "--log.level=warn"],
            stdout=self.prom_log, stderr=subprocess.STDOUT,
            cwd=self.prom_dir)

        def ready():
            if self.prom.poll() is not None:
                with open(self.prom_log.name) as f:
                    self.fail("prometheus exited %d:\n%s" % (
                        self.prom.returncode, f.read()[-2000:]))
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" %
                                            self.prom_port, timeout=5) as r:
                    return r.status == 200
            except OSError:
                return False
        self.wait_for("prometheus to be ready", ready, deadline=120)

    def query(self, expr):
        """Prometheus' instant query API: {labels: value}."""
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (
            self.prom_port, urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=30) as r:
            data = json.load(r)
        self.assertEqual(data["status"], "success", data)
        return {tuple(sorted((k, v) for k, v in x["metric"].items()
                             if k not in ("__name__", "job", "instance"))):
                float(x["value"][1]) for x in data["data"]["result"]}

    def prom_value(self, expr, **labels):
        got = self.query(expr)
        key = tuple(sorted(labels.items()))
        return got.get(key)

    def test_prometheus_scrapes_what_the_daemon_did(self):
        sizes_before = [10, 200, 3000]
        for i, n in enumerate(sizes_before):
            write(os.path.join(self.src, "old%d" % i), b"o" * n)
        self.start()
        self.wait_idle()
        self.start_prometheus()
        self.wait_for("prometheus to scrape the endpoint (up == 1)",
                      lambda: self.prom_value('up{job="treesync"}') == 1)
        # Live: files moved into the source one by one, each a copy of
        # its own (a rename into the tree: no partial writes to see).
        staging = os.path.join(self.tmp, "staging")
        os.mkdir(staging)
        sizes_live = [1, 22, 333, 4444, 55555]
        for i, n in enumerate(sizes_live):
            write(os.path.join(staging, "new%d" % i), b"n" * n)
            os.rename(os.path.join(staging, "new%d" % i),
                      os.path.join(self.src, "new%d" % i))
            self.wait_equal()
        self.wait_idle()
        labels = {"sync": "t", "destination": self.dst}
        files = len(sizes_before) + len(sizes_live)
        nbytes = sum(sizes_before) + sum(sizes_live)
        # The daemon's own answer first, then what Prometheus stored from
        # its scrapes: the same, once a scrape after the last change is in.
        fams = parse_prometheus(self.scrape())
        self.assertEqual(value(fams, "treesync_files_copied_total",
                               **labels), files)
        self.assertEqual(value(fams, "treesync_bytes_copied_total",
                               **labels), nbytes)
        hist = fams["treesync_propagation_latency_seconds"]["series"][
            tuple(sorted(labels.items()))]
        # Every live file was served by a path job: one latency sample
        # each (the start-up copies are a full pass, not events; the
        # directory the files arrived in is synced without a sample).
        self.assertEqual(hist["count"], len(sizes_live))
        self.wait_for(
            "prometheus to report %d files copied" % files,
            lambda: self.prom_value("treesync_files_copied_total",
                                    **labels) == files)
        self.assertEqual(self.prom_value("treesync_bytes_copied_total",
                                         **labels), nbytes)
        self.wait_for(
            "prometheus to report the latency histogram's count",
            lambda: self.prom_value(
                "treesync_propagation_latency_seconds_count", **labels) ==
            hist["count"])
        self.assertEqual(self.prom_value(
            'treesync_propagation_latency_seconds_bucket{le="+Inf"}',
            le="+Inf", **labels), hist["count"])
        self.assertAlmostEqual(self.prom_value(
            "treesync_propagation_latency_seconds_sum", **labels),
            hist["sum"], places=5)
        # The median Prometheus computes from the buckets lies in the
        # bucket that holds the middle sample.
        q = self.prom_value("histogram_quantile(0.5, "
                            "treesync_propagation_latency_seconds_bucket)",
                            **labels)
        lower = 0.0
        for le, cum in hist["buckets"]:
            if cum >= 0.5 * hist["count"]:
                break
            lower = le
        self.assertIsNotNone(q)
        self.assertGreaterEqual(q, lower)
        self.assertLessEqual(q, le)
        self.assertEqual(self.prom_value('treesync_state{state="idle"}',
                                         sync="t", state="idle"), 1)

    def test_promtool_accepts_the_output(self):
        write(os.path.join(self.src, "a"), b"a")
        self.start()
        write(os.path.join(self.src, "b"), b"b")
        self.wait_equal()
        self.wait_idle()
        r = subprocess.run([self.tools[1], "check", "metrics"],
                           input=self.scrape(), capture_output=True,
                           text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))


if __name__ == "__main__":
    unittest.main(verbosity=2)
