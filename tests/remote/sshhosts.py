"""Real OpenSSH servers in network namespaces, for the remote-destination
tests: every "remote host" is a network namespace made for the run, joined
to the root namespace by its own veth pair (a /30 of its own), with a
Debian sshd inside it on a config of its own. The namespaces share this
machine's file system, so a test reads a remote tree directly.

    hosts = SshHosts(count=3)          # or: with SshHosts(3) as hosts:
    h = hosts[0]
    h.authorize(hosts.remote_user, 'restrict,command="... /srv/x"')
    subprocess.run(h.ssh_argv() + ["treesync-remote", "ops"], ...)
    hosts.close()

What is made, and undone by close() (also at exit, on SIGTERM and when a
test fails; what a SIGKILLed run left, the next run's reap_stale removes):
  - per host a namespace "remote-<run>-h<i>" and a veth pair "rm<run>h<i>a"
    (root side, 10.A.B.1) / "...b" (inside, 10.A.B.2), A.B chosen so no
    route or address of this machine overlaps;
  - per host an sshd (key-only: no password, no keyboard-interactive, no
    PAM; its own ed25519 host key made for the run; AuthorizedKeysFile
    under the run's directory, %u per user; no ForceCommand: the forced
    command is the authorized_keys line's command=; PermitRootLogin
    forced-commands-only, for the "owners when root on both ends" case;
    StrictModes off, since the run's directory lies under /tmp);
  - a remote user "remote<pid>" with /bin/sh as its shell, no home and no
    password (the usual deployment: an unprivileged key user), removed
    with its files' ownership left to the caller's cleanup;
  - the client's identity (ed25519) and a known_hosts file pinning every
    host's key.
/run/sshd (the privilege-separation directory Debian's sshd insists on)
is created when missing and left: it is empty and shared by every sshd.

Before any connection (ssh_argv, check_route) the harness asserts that
`ip route get ADDR` leaves through the host's own veth, so traffic only
ever goes to an address inside a namespace this run made.

Needs root (network namespaces, useradd).
"""
import atexit
import ipaddress
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SSHD = "/usr/sbin/sshd"
BRANCH = "remote"


def _run(argv, check=True, **kw):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kw)


def ensure_openssh_server():
    """Installs Debian's openssh-server when sshd is missing."""
    if os.access(SSHD, os.X_OK):
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq",
                    "--no-install-recommends", "openssh-server"],
                   check=True, env=env, stdout=subprocess.DEVNULL)


def _used_networks():
    nets = []
    for argv in (["ip", "-o", "-4", "addr", "show"],
                 ["ip", "-4", "route", "show", "table", "all"]):
        for word in _run(argv).stdout.split():
            try:
                nets.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                pass
    return nets


def reap_stale():
    """Removes what a run killed with SIGKILL left: namespaces
    "remote-PID-h*" (with the sshd inside, and the veth), and the user
    "remotePID", when no process PID is alive."""
    names = _run(["ip", "netns", "list"], check=False).stdout.split()
    dead = set()
    for name in names:
        m = re.fullmatch(r"%s-(\d+)-h\d+" % BRANCH, name)
        if m is None or os.path.exists("/proc/%s" % m.group(1)):
            continue
        dead.add(m.group(1))
        for pid in _run(["ip", "netns", "pids", name],
                        check=False).stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        _run(["ip", "netns", "del", name], check=False)
    for run in dead:
        user = "%s%s" % (BRANCH, run)
        if _run(["id", user], check=False).returncode == 0:
            _run(["userdel", user], check=False)
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        m = re.fullmatch(r"%s-ssh\.(\d+)\..*" % BRANCH, name)
        if m is not None and not os.path.exists("/proc/%s" % m.group(1)):
            shutil.rmtree(os.path.join(tmp, name), ignore_errors=True)


class Host:
    """One remote host: a namespace, its veth pair and its sshd."""

    def __init__(self, hosts, index, net):
        self.hosts = hosts
        self.index = index
        self.netns = "%s-%s-h%d" % (BRANCH, hosts.run_id, index)
        self.veth = "rm%sh%da" % (hosts.run_id, index)      # root side
        self.peer = "rm%sh%db" % (hosts.run_id, index)      # inside
        hosts_iter = net.hosts()
        self.local_addr = str(next(hosts_iter))
        self.addr = str(next(hosts_iter))
        self.prefixlen = net.prefixlen
        self.dir = os.path.join(hosts.dir, "h%d" % index)
        self.keys_dir = os.path.join(self.dir, "authorized_keys")
        self.host_key = os.path.join(self.dir, "ssh_host_ed25519_key")
        self.config = os.path.join(self.dir, "sshd_config")
        self.log = os.path.join(self.dir, "sshd.log")
        self.sshd = None
        self._log_file = None

    # -- set-up --------------------------------------------------------
    def create(self):
        os.makedirs(self.keys_dir)
        os.chmod(self.dir, 0o755)
        os.chmod(self.keys_dir, 0o755)
        _run(["ip", "netns", "add", self.netns])
        self.hosts._undo.append(lambda: _run(
            ["ip", "netns", "del", self.netns], check=False))
        _run(["ip", "link", "add", self.veth, "type", "veth", "peer", "name",
              self.peer])
        self.hosts._undo.append(lambda: _run(
            ["ip", "link", "del", self.veth], check=False))
        _run(["ip", "link", "set", self.peer, "netns", self.netns])
        _run(["ip", "addr", "add", "%s/%d" % (self.local_addr, self.prefixlen),
              "dev", self.veth])
        _run(["ip", "link", "set", self.veth, "up"])
        self.ns(["ip", "addr", "add", "%s/%d" % (self.addr, self.prefixlen),
                 "dev", self.peer])
        self.ns(["ip", "link", "set", self.peer, "up"])
        self.ns(["ip", "link", "set", "lo", "up"])
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
              self.netns, "-f", self.host_key])
        with open(self.config, "w") as f:
            f.write(self._sshd_config())
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.start_sshd()

    def _sshd_config(self):
        return "\n".join([
            "ListenAddress %s" % self.addr,
            "Port 22",
            "HostKey %s" % self.host_key,
            "PidFile %s" % os.path.join(self.dir, "sshd.pid"),
            "AuthorizedKeysFile %s/%%u" % self.keys_dir,
            "AuthenticationMethods publickey",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "UsePAM no",
            "PermitRootLogin forced-commands-only",
            "PermitUserEnvironment no",
            "StrictModes no",
            "AllowUsers %s root" % self.hosts.remote_user,
            "LogLevel VERBOSE",
            "MaxStartups 50",
            "MaxSessions 50",
            "ClientAliveInterval 0",
            "",
        ])

    def start_sshd(self):
        """Starts (or restarts, with the current host key) the sshd."""
        self.stop_sshd()
        self._log_file = open(self.log, "a")
        # ip netns exec execs sshd: the pid is sshd's own.
        self.sshd = subprocess.Popen(
            ["ip", "netns", "exec", self.netns, SSHD, "-D", "-e", "-f",
             self.config], stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.sshd.poll() is not None:
                raise RuntimeError("sshd in %s exited: %s" % (
                    self.netns, open(self.log).read()[-2000:]))
            r = self.ns(["ss", "-Htln", "src", self.addr], check=False)
            if ":22" in r.stdout:
                return
            time.sleep(0.05)
        raise RuntimeError("sshd in %s does not listen" % self.netns)

    def stop_sshd(self):
        if self.sshd is not None and self.sshd.poll() is None:
            self.sshd.terminate()
            try:
                self.sshd.wait(10)
            except subprocess.TimeoutExpired:
                self.sshd.kill()
                self.sshd.wait()
        self.sshd = None
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def ns(self, argv, check=True):
        return _run(["ip", "netns", "exec", self.netns] + argv, check=check)

    # -- keys ------------------------------------------------------------
    def public_host_key(self):
        with open(self.host_key + ".pub") as f:
            kind, blob = f.read().split()[:2]
        return "%s %s" % (kind, blob)

    def replace_host_key(self):
        """A new host key for this host's sshd (the pinned one is now
        wrong): the "changed host key" case."""
        os.unlink(self.host_key)
        os.unlink(self.host_key + ".pub")
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
              self.netns, "-f", self.host_key])
        self.start_sshd()

    def authorize(self, user, options, identity=None, append=False):
        """Sets (or with append, adds) a line of user's authorized_keys on
        this host: OPTIONS and the public key of identity (a key path;
        default the client's)."""
        with open((identity or self.hosts.identity) + ".pub") as f:
            key = f.read().strip()
        path = os.path.join(self.keys_dir, user)
        with open(path, "a" if append else "w") as f:
            f.write("%s %s\n" % (options, key))
        os.chmod(path, 0o644)

    # -- the client side ---------------------------------------------------
    def check_route(self):
        """Asserts that traffic to this host leaves through its veth."""
        r = _run(["ip", "-o", "route", "get", self.addr])
        dev = re.search(r"\bdev (\S+)", r.stdout)
        if dev is None or dev.group(1) != self.veth:
            raise AssertionError("route to %s is not via %s: %s" % (
                self.addr, self.veth, r.stdout.strip()))

    def ssh_argv(self, user=None, identity=None, known_hosts=None,
                 control=True, control_name="default", extra=()):
        """The system ssh client with the options SPEC and issue 11 name
        for treesyncd's transport, up to and including the destination
        (append the remote command). The route is checked first."""
        self.check_route()
        hosts = self.hosts
        argv = ["ssh", "-F", "/dev/null",
                "-o", "BatchMode=yes",
                "-o", "IdentitiesOnly=yes",
                "-o", "IdentityFile=%s" % (identity or hosts.identity),
                "-o", "StrictHostKeyChecking=yes",
                "-o", "UserKnownHostsFile=%s" % (known_hosts or
                                                 hosts.known_hosts),
                "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", "ServerAliveInterval=5",
                "-o", "ServerAliveCountMax=3",
                "-o", "ConnectTimeout=10"]
        if control:
            argv += ["-o", "ControlMaster=auto",
                     "-o", "ControlPath=%s/%s-%%r@%%h" % (hosts.control_dir,
                                                         control_name),
                     "-o", "ControlPersist=60"]
        else:
            argv += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
        argv += list(extra)
        argv += ["-p", "22", "-l", user or hosts.remote_user, self.addr]
        return argv

    def rsync_e(self, **kw):
        """ssh_argv without the destination, as one string for rsync -e
        (the rsync target is then ADDR:PATH)."""
        return shlex.join(self.ssh_argv(**kw)[:-1])

    def close_master(self, control_name="default", user=None):
        path_argv = self.ssh_argv(user=user, control_name=control_name)
        _run(path_argv[:-1] + ["-O", "exit", self.addr], check=False)

    # -- the link ------------------------------------------------------------
    def link(self, up):
        """The host goes away (or comes back): its own end of the veth,
        inside the namespace, goes down. The root end stays up, so the
        route to the host stays on this veth (NO-CARRIER) and packets are
        dropped; taking the root end down instead would remove that route
        and send traffic for the host to the default route (check_route
        refuses that)."""
        self.ns(["ip", "link", "set", self.peer, "up" if up else "down"])
        if up:
            deadline = time.monotonic() + 10
            while "NO-CARRIER" in _run(["ip", "-o", "link", "show",
                                        self.veth]).stdout:
                if time.monotonic() > deadline:
                    raise RuntimeError("%s has no carrier" % self.veth)
                time.sleep(0.05)

    def throttle(self, rate="1mbit", burst="32kbit", latency="400ms"):
        """tc tbf on the way to the host (root side of the veth)."""
        _run(["tc", "qdisc", "replace", "dev", self.veth, "root", "tbf",
              "rate", rate, "burst", burst, "latency", latency])

    def unthrottle(self):
        _run(["tc", "qdisc", "del", "dev", self.veth, "root"], check=False)

    def counters(self):
        """(bytes sent to the host, bytes received from it)."""
        base = "/sys/class/net/%s/statistics/" % self.veth
        with open(base + "tx_bytes") as t, open(base + "rx_bytes") as r:
            return int(t.read()), int(r.read())

    def accepted_logins(self):
        """How many connections the host's sshd authenticated so far."""
        try:
            with open(self.log) as f:
                return f.read().count("Accepted publickey")
        except FileNotFoundError:
            return 0


class SshHosts:
    def __init__(self, count=3, run_id=None, remote_user=None):
        if os.geteuid() != 0:
            raise PermissionError("sshhosts needs root")
        ensure_openssh_server()
        reap_stale()
        # The pid: names stay unique among live runs, and reap_stale can
        # tell a dead run's leftovers (interface names: at most 15 bytes,
        # "rm" + 7 digits + "h9a").
        self.run_id = run_id or str(os.getpid())
        self.remote_user = remote_user or "%s%s" % (BRANCH, self.run_id)
        # Short: ControlPath must fit a unix socket's 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="%s-ssh.%s." % (BRANCH,
                                                           self.run_id))
        os.chmod(self.dir, 0o755)
        self.control_dir = os.path.join(self.dir, "c")
        os.makedirs(self.control_dir, mode=0o700)
        self.identity = os.path.join(self.dir, "id_ed25519")
        self.known_hosts = os.path.join(self.dir, "known_hosts")
        self.hosts = []
        self._undo = []
        self._closed = False
        self._old_term = signal.signal(signal.SIGTERM, self._on_term)
        atexit.register(self.close)
        try:
            self._create_user()
            _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                  "treesyncd-test", "-f", self.identity])
            for i, net in enumerate(self._pick_networks(count)):
                h = Host(self, i, net)
                self.hosts.append(h)
                h.create()
            self.write_known_hosts()
        except BaseException:
            self.close()
            raise

    def _on_term(self, signum, frame):
        self.close()
        sys.exit(128 + signum)

    def _create_user(self):
        if _run(["id", self.remote_user], check=False).returncode == 0:
            raise RuntimeError("user %s exists" % self.remote_user)
        # "*": no password, yet not a locked account ("!"), which sshd
        # refuses without PAM.
        _run(["useradd", "--system", "--no-create-home", "--home-dir",
              "/nonexistent", "--shell", "/bin/sh", "--password", "*",
              "--user-group", self.remote_user])
        self._undo.append(lambda: _run(["userdel", self.remote_user],
                                       check=False))
        pw = pwd.getpwnam(self.remote_user)
        self.remote_uid, self.remote_gid = pw.pw_uid, pw.pw_gid

    def _pick_networks(self, count):
        used = _used_networks()
        picked = []
        seed = int(self.run_id)
        for k in range(64 * 64):
            a = 64 + (seed + k) % 128
            b = (seed // 128 + k) % 64 * 4
            net = ipaddress.ip_network("10.%d.%d.0/30" % (a, b))
            if any(net.overlaps(u) for u in used + picked):
                continue
            picked.append(net)
            if len(picked) == count:
                return picked
        raise RuntimeError("no free 10.x.y.0/30 networks")

    def new_identity(self, name):
        """Another client key (a second forced command needs its own)."""
        path = os.path.join(self.dir, "id_" + name)
        _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name,
              "-f", path])
        return path

    def write_known_hosts(self, path=None, keys=None):
        """known_hosts pinning every host (keys: {host index: key text})."""
        with open(path or self.known_hosts, "w") as f:
            for h in self.hosts:
                key = (keys or {}).get(h.index) or h.public_host_key()
                f.write("%s %s\n" % (h.addr, key))
        return path or self.known_hosts

    def __getitem__(self, i):
        return self.hosts[i]

    def __len__(self):
        return len(self.hosts)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._closed:
            return
        self._closed = True
        # ControlPersist masters of this run: ask them to go.
        if os.path.isdir(self.control_dir):
            for sock in os.listdir(self.control_dir):
                _run(["ssh", "-F", "/dev/null", "-o",
                      "ControlPath=%s" % os.path.join(self.control_dir, sock),
                      "-O", "exit", "master"], check=False)
        for h in self.hosts:
            h.stop_sshd()
        for undo in reversed(self._undo):
            undo()
        shutil.rmtree(self.dir, ignore_errors=True)
        try:
            signal.signal(signal.SIGTERM, self._old_term)
        except (ValueError, TypeError):
            pass
