#!/usr/bin/env python3
"""Fault-injection proof of rate_guard: see README.md beside this file.

Usage: faults.py [--keep] [--list] [--tls] MODULE.so [scenario ...]

Every scenario starts its own redis-server and nginx (master + 2 workers) on
free loopback ports in a private directory, drives load with loadclient.py /
h2client.py (every request accounted for), injects its fault, checks, and
stops everything it started by PID.  With --tls, Redis listens for TLS only
and nginx speaks TLS to it (the scenarios of TLS_PATHS).  Exit status: 0 when
every scenario passed, 1 otherwise, 2 on a usage error.
"""

import argparse
import collections
import ctypes
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
LOADCLIENT = os.path.join(HERE, "loadclient.py")
H2CLIENT = os.path.join(HERE, "h2client.py")
MAKE_CERTS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts", "make_test_certs")
NGINX = os.environ.get("NGINX_BINARY", "/usr/sbin/nginx")
REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")
REDIS_CLI = os.environ.get("REDIS_CLI", "redis-cli")

TIMEOUT_MS = 100  # rate_guard_redis timeout= and connect_timeout=
MARGIN_MS = 150  # what a request may take beyond the timeout
BOUND = (TIMEOUT_MS + MARGIN_MS) / 1000.0
GRACE = 1.5  # reconnection backoff is at most 1 s: exact again within this after the fault
LOG_MAX_PER_SECOND = 2  # rate_guard error lines by one worker in one wall-clock second
RUN_BOUND_S = 420  # the whole run, a last resort

mono = time.monotonic
STARTED = []  # (kind, pid) of every process this run started, for the last-resort cleanup


# ---- processes -----------------------------------------------------------

def become_subreaper():
    """Orphans (the new master of a binary upgrade) are reparented to us."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def proc_stat(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(")") + 2:].split()
    return rest[0], int(rest[1])


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] not in "ZX"


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def children(pid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_stat(int(name))
            if st is not None and st[1] == pid and st[0] not in "ZX":
                out.append(int(name))
    return sorted(out)


def fd_count(pid):
    try:
        return len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        return -1


def rss_kb(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(HERE)), "scripts"))
from free_ports import free_port  # noqa: E402  (below the ephemeral range: see there)


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
        return True
    except ProcessLookupError:
        return False


def wait_until(predicate, timeout, step=0.02):
    deadline = mono() + timeout
    while True:
        if predicate():
            return True
        if mono() >= deadline:
            return False
        time.sleep(step)


# ---- TLS -----------------------------------------------------------------

class Tls:
    """The certificates of a --tls run (scripts/make_test_certs: a CA, and a
    server certificate it signed for 127.0.0.1), and what each side is told."""

    def __init__(self, workdir):
        self.dir = os.path.join(workdir, "certs")
        r = subprocess.run([MAKE_CERTS, self.dir], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError("scripts/make_test_certs failed: " + r.stderr.strip())
        self.ca = os.path.join(self.dir, "ca.pem")
        self.cert = os.path.join(self.dir, "server.pem")
        self.key = os.path.join(self.dir, "server.key")

    def redis_server_args(self, port):
        """TLS only: no plain TCP port at all."""
        return ["--port", "0", "--tls-port", str(port), "--tls-cert-file", self.cert, "--tls-key-file", self.key,
                "--tls-ca-cert-file", self.ca, "--tls-auth-clients", "no"]

    def redis_cli_args(self):
        return ["--tls", "--cacert", self.ca]

    def nginx_options(self):
        """Verified against the CA, for the name 127.0.0.1 (the module's default: the host)."""
        return " tls=on tls_trusted_certificate=" + self.ca

    def client(self, sock):
        """A Python socket, connected to Redis, in TLS (verified, as nginx does)."""
        ctx = ssl.create_default_context(cafile=self.ca)
        return ctx.wrap_socket(sock, server_hostname="127.0.0.1")

    def server_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, self.key)
        return ctx


# ---- Redis ---------------------------------------------------------------

class Redis:
    def __init__(self, workdir, tls=None):
        self.dir = os.path.join(workdir, "redis")
        os.makedirs(self.dir, exist_ok=True)
        self.port = free_port()
        self.tls = tls
        self.proc = None
        self.auth = []  # redis-cli's arguments to authenticate, while a scenario requires it

    def start(self):
        log = open(os.path.join(self.dir, "redis.log"), "a")
        listen = self.tls.redis_server_args(self.port) if self.tls else ["--port", str(self.port)]
        self.proc = subprocess.Popen(
            [REDIS_SERVER] + listen + ["--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--enable-debug-command", "yes", "--dir", self.dir,
                                       "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        STARTED.append(("redis", self.proc.pid))
        if not wait_until(self.ping, 5):
            raise RuntimeError("redis-server did not start on port %d" % self.port)

    def ping(self):
        try:
            return self.cli("PING", timeout=1) == "PONG"
        except Exception:
            return False

    def cli_args(self):
        return ([REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port)] + (self.tls.redis_cli_args() if self.tls else [])
                + self.auth)

    def connect(self):
        """A connection of our own (TLS when Redis speaks it), for raw commands."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=3)
        return self.tls.client(sock) if self.tls else sock

    def answers_plain_tcp(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def cli(self, *args, timeout=3):
        r = subprocess.run(self.cli_args() + list(args),
                           capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        return r.stdout.strip()

    def cli_bg(self, *args):
        p = subprocess.Popen(self.cli_args() + list(args),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             text=True)
        STARTED.append(("redis-cli", p.pid))
        return p

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(5)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(3)


# ---- nginx ---------------------------------------------------------------

CONF = """\
load_module {module};
daemon on;
master_process on;
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;

events {{ worker_connections 4096; }}

http {{
    log_format fault '$msec $pid $arg_id $status $rate_guard_status $request_time $server_port $uri';
    access_log {prefix}/access.log fault;
    client_body_temp_path {prefix}/tmp/body;
    proxy_temp_path {prefix}/tmp/proxy;
    fastcgi_temp_path {prefix}/tmp/fastcgi;
    uwsgi_temp_path {prefix}/tmp/uwsgi;
    scgi_temp_path {prefix}/tmp/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
    default_type text/plain;

    rate_guard_redis 127.0.0.1:{redis_port} timeout={timeout} connect_timeout=100ms{redis_options};
    rate_guard_zone $http_x_key zone=load rate=50r/s;
    rate_guard_zone $http_x_key zone=exact rate=20 window=60s algorithm=sliding_log;
    rate_guard_zone $http_x_key zone=pipe rate=5 window=60s algorithm=sliding_log;
    rate_guard_log_level info;
    rate_guard_fail {fail};

    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{rport} reuseport;
        include {prefix}/locations.conf;
    }}
{h2server}}}
"""

H2SERVER = """
    server {{
        listen 127.0.0.1:{h2port} http2;
        include {prefix}/locations.conf;
    }}
"""

LOCATIONS = """\
root {prefix}/html;
add_header X-RG-Status $rate_guard_status always;
add_header X-Req-Id $arg_id always;
location /load/ {{ rate_guard zone=load; }}
location /exact/ {{ rate_guard zone=exact; }}
location /pipe/ {{ rate_guard zone=pipe; }}
location = /metrics {{ rate_guard_metrics; }}
location = /status {{ stub_status; }}
"""

LOG_LINE = re.compile(r"^(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d) \[(\w+)\] (\d+)#\d+: (.*)$")


class Nginx:
    def __init__(self, workdir, module, redis_port, fail="open", http2=False, timeout_ms=TIMEOUT_MS,
                 redis_options=""):
        self.prefix = os.path.join(workdir, "nginx")
        for d in ("html/load", "html/exact", "html/pipe", "tmp"):
            os.makedirs(os.path.join(self.prefix, d), exist_ok=True)
        for d in ("load", "exact", "pipe"):
            with open(os.path.join(self.prefix, "html", d, "ok.txt"), "w") as f:
                f.write("ok\n")
        self.port = free_port()
        self.rport = free_port()  # reuseport: the kernel spreads its connections over both workers
        self.h2port = free_port() if http2 else None
        self.conf = os.path.join(self.prefix, "nginx.conf")
        self.errlog = os.path.join(self.prefix, "error.log")
        self.access = os.path.join(self.prefix, "access.log")
        h2 = H2SERVER.format(h2port=self.h2port, prefix=self.prefix) if http2 else ""
        with open(self.conf, "w") as f:
            f.write(CONF.format(module=module, prefix=self.prefix, redis_port=redis_port,
                                timeout="%dms" % timeout_ms, fail=fail, port=self.port, rport=self.rport,
                                h2server=h2, redis_options=redis_options))
        with open(os.path.join(self.prefix, "locations.conf"), "w") as f:
            f.write(LOCATIONS.format(prefix=self.prefix))
        self.proc = None
        self.masters = []

    def start(self):
        # `daemon on`: the binary upgrade needs a master whose parent is not
        # its launcher (nginx ignores USR2 otherwise); as a subreaper this
        # script becomes the daemon's parent and reaps it.
        out = open(os.path.join(self.prefix, "stdout.log"), "a")
        launcher = subprocess.Popen([NGINX, "-p", self.prefix + "/", "-c", self.conf, "-e", self.errlog],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        STARTED.append(("nginx", launcher.pid))
        if launcher.wait(10) != 0:
            raise RuntimeError("nginx did not start: " + self.tail_log())
        pid = self.pid_from_file()
        if pid is None:
            raise RuntimeError("nginx wrote no pid file: " + self.tail_log())
        self.masters = [pid]
        STARTED.append(("nginx", pid))
        if not wait_until(lambda: len(self.workers()) == 2, 5):
            raise RuntimeError("nginx did not start 2 workers: " + self.tail_log())
        if not wait_until(self.answers, 5):
            raise RuntimeError("nginx does not answer on port %d" % self.port)

    def pid_from_file(self, name="nginx.pid"):
        try:
            with open(os.path.join(self.prefix, name)) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return None
        return pid if pid > 0 and alive(pid) else None

    def answers(self):
        try:
            return self.request("/status")[0] == 200
        except OSError:
            return False

    @property
    def master(self):
        return self.masters[-1]

    def workers(self, master=None):
        m = master or self.master
        return [p for p in children(m) if "worker process" in cmdline(p)]

    def request(self, path, headers=None, port=None, timeout=3):
        c = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, body
        finally:
            c.close()

    def metrics(self):
        values = collections.Counter()
        try:
            status, _, body = self.request("/metrics")
        except OSError:
            return values
        for line in body.decode().splitlines():
            m = re.match(r"^(rate_guard_[a-z_]+)(\{[^}]*\})? (\S+)$", line)
            if m and not m.group(1).endswith("_bucket"):
                values[m.group(1)] += float(m.group(3))
        return values

    def active_connections(self):
        try:
            _, _, body = self.request("/status")
        except OSError:
            return -1
        m = re.search(rb"Active connections: (\d+)", body)
        return int(m.group(1)) if m else -1

    def access_log(self):
        """id -> list of (status, rg_status, pid)"""
        out = collections.defaultdict(list)
        try:
            with open(self.access) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) >= 5:
                        out[parts[2]].append((parts[3], parts[4], parts[1]))
        except FileNotFoundError:
            pass
        return out

    def error_log(self):
        try:
            with open(self.errlog, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def tail_log(self, n=5):
        return " | ".join(self.error_log().splitlines()[-n:])

    def all_pids(self):
        pids = []
        for m in self.masters:
            if alive(m):
                pids.append(m)
                pids += children(m)
        return pids

    def stop(self, timeout=8.0):
        """Graceful stop (QUIT) of every master this nginx has had; True if all left in time."""
        for m in self.masters:
            if alive(m):
                STARTED.append(("nginx", m))
                for w in children(m):
                    STARTED.append(("nginx", w))
                signal_pid(m, signal.SIGQUIT)
        ok = wait_until(lambda: not self.all_pids(), timeout, 0.05)
        if not ok:
            for p in self.all_pids():
                signal_pid(p, signal.SIGKILL)
            wait_until(lambda: not self.all_pids(), 3)
        reap()
        return ok


# ---- load ----------------------------------------------------------------

Rec = collections.namedtuple("Rec", "conn seq rid t_send t_done outcome status rg rl echo")
H2Rec = collections.namedtuple("H2Rec", "conn sid t_send t_done outcome status")


class Load:
    """loadclient.py (or h2client.py) in its own process."""

    def __init__(self, env, tag, h2=False, **kw):
        self.out = os.path.join(env.dir, "load-%s.tsv" % tag)
        self.h2 = h2
        port = env.nginx.h2port if h2 else "%d,%d" % (env.nginx.port, env.nginx.rport)
        args = [sys.executable, H2CLIENT if h2 else LOADCLIENT, "--port", str(port), "--out", self.out]
        for k, v in kw.items():
            flag = "--" + k.replace("_", "-")
            if v is True:
                args.append(flag)
            elif isinstance(v, list):
                for item in v:
                    args += [flag, str(item)]
            else:
                args += [flag, str(v)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        STARTED.append(("load", self.proc.pid))

    def stop(self):
        signal_pid(self.proc.pid, signal.SIGUSR1)

    def wait(self, timeout=40):
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
            raise RuntimeError("load client did not finish in time")
        if self.proc.returncode != 0:
            raise RuntimeError("load client failed: " + err[-500:])
        summary = json.loads(out.strip().splitlines()[-1])
        recs = []
        with open(self.out) as f:
            for line in f:
                p = line.rstrip("\n").split("\t")
                if self.h2:
                    recs.append(H2Rec(int(p[0]), int(p[1]), float(p[2]), float(p[3]), p[4], int(p[5])))
                else:
                    recs.append(Rec(int(p[0]), int(p[1]), p[2], float(p[3]), float(p[4]), p[5], int(p[6]),
                                    p[7], int(p[8]), p[9]))
        return summary, recs


# ---- results -------------------------------------------------------------

def pct(values, q):
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def ms(x):
    return "-" if x != x else "%.1f" % (x * 1000)


class Result:
    def __init__(self, name, what):
        self.name = name
        self.what = what
        self.checks = []
        self.lines = []
        self.sent = 0
        self.answered = 0
        self.statuses = collections.Counter()
        self.errors_policy = 0
        self.unanswered = collections.Counter()  # why some requests got no answer (on purpose or not)
        self.max_fault_latency = None
        self.log_rate = "-"
        self.exact = "-"

    def check(self, ok, text):
        self.checks.append((bool(ok), text))
        return ok

    def info(self, text):
        self.lines.append(text)

    @property
    def passed(self):
        return bool(self.checks) and all(ok for ok, _ in self.checks)

    def unanswered_text(self):
        return " ".join("%s:%d" % kv for kv in sorted(self.unanswered.items()) if kv[1]) or "0"

    def status_text(self):
        parts = ["%s:%d" % (k, v) for k, v in sorted(self.statuses.items())]
        return " ".join(parts) or "-"


def verdict_ok(r, fail):
    if r.rg == "PASSED":
        return r.status == 200 and r.rl == 1
    if r.rg == "REJECTED":
        return r.status == 429 and r.rl == 1
    if r.rg == "ERROR":
        return r.status == (200 if fail == "open" else 503)
    return False


def judge_load(res, env, summary, recs, fail="open", err_window=None, expect_errors=None,
               allow_unread=False, marks=None, tag="load", latency_bound=BOUND):
    """Accounting, statuses, fail policy and latency of one loadclient run.

    err_window: (from, to) monotonic times during which fail-policy answers
    (ERROR) are allowed; expect_errors: True (some required in the window),
    False (none at all), None (allowed, not required).  marks: phase names
    and start times, for the latency table.
    """
    access = env.nginx.access_log()
    out = collections.Counter(r.outcome for r in recs)
    sent = summary["sent"]
    res.sent += sent
    res.answered += out["answered"]
    for k in ("lost", "timeout", "unread_close"):
        if out[k]:
            res.unanswered[{"unread_close": "ka-race"}.get(k, k)] += out[k]
    res.check(len(recs) == sent, "%s: every request sent is accounted for (%d sent, %d recorded)" % (tag, sent, len(recs)))
    res.check(out["lost"] == 0 and out["timeout"] == 0,
              "%s: no request lost, none unanswered: %d answered, lost %d, timed out %d"
              % (tag, out["answered"], out["lost"], out["timeout"]))
    unread = [r for r in recs if r.outcome == "unread_close"]
    if unread:
        in_log = [r.rid for r in unread if r.rid in access]
        res.check(allow_unread and not in_log,
                  "%s: %d requests met a keep-alive connection that nginx closed before reading them "
                  "(none of them in access.log: %s; RFC 9112 9.3.1, a client retries those)"
                  % (tag, len(unread), "yes" if not in_log else "NO, %d are" % len(in_log)))
    res.check(summary["connect_errors"] == 0 and summary["parse_errors"] == 0,
              "%s: no connect error (%d), no unparsable answer (%d)"
              % (tag, summary["connect_errors"], summary["parse_errors"]))
    answered = [r for r in recs if r.outcome == "answered"]
    unlogged = [r.rid for r in answered if r.rid not in access]
    twice = [rid for rid, v in access.items() if len(v) > 1 and rid.startswith(("c", "p", "s", "a"))]
    res.check(not unlogged and not twice,
              "%s: every answer is in nginx's access.log once (missing %d, twice %d)"
              % (tag, len(unlogged), len(twice)))
    bad = []
    errors_in = 0
    for r in answered:
        res.statuses[str(r.status)] += 1
        if not verdict_ok(r, fail):
            bad.append(r)
        elif r.rg == "ERROR":
            res.errors_policy += 1
            if err_window and err_window[0] <= r.t_send <= err_window[1]:
                errors_in += 1
            else:
                bad.append(r)
    examples = ", ".join("%s %d %s" % (r.rid, r.status, r.rg) for r in bad[:3])
    res.check(not bad, "%s: every answer is 200 PASSED or 429 REJECTED with X-RateLimit headers%s "
              "(%d not: %s)" % (tag, (", or fail-%s %s (ERROR) during the fault" %
                                      (fail, "200" if fail == "open" else "503")) if err_window else "",
                                len(bad), examples or "none"))
    if expect_errors is True:
        res.check(errors_in > 0, "%s: the fault took effect: %d answers decided by the fail policy" % (tag, errors_in))
    elif expect_errors is False:
        res.check(res.errors_policy == 0, "%s: no answer decided by the fail policy (%d)" % (tag, res.errors_policy))
    lat = [r.t_done - r.t_send for r in answered]
    worst = max(lat) if lat else 0.0
    slow = sum(1 for x in lat if x > latency_bound)
    res.check(slow == 0, "%s: every answer within timeout + margin = %d ms (max %.1f ms, %d over)"
              % (tag, latency_bound * 1000, worst * 1000, slow))
    if marks:
        phase_table(res, [(r.t_send, r.t_done, r.status, r.rg == "ERROR") for r in answered], marks)
    if res.max_fault_latency is None:
        res.max_fault_latency = worst
    if err_window:
        errs = [r.t_send for r in answered if r.rg == "ERROR"]
        return max(errs) if errs else None
    return None


def phase_table(res, rows, marks):
    """Answers, statuses and latency per phase; rows: (t_send, t_done, status, decided_by_fail_policy)."""
    res.info("%-9s %7s %7s %7s %7s %7s %8s %8s %8s" % ("phase", "answers", "200", "429", "503", "ERROR",
                                                       "p50 ms", "p99 ms", "max ms"))
    bounds = marks + [("end", float("inf"))]
    for i, (name, t0) in enumerate(marks):
        t1 = bounds[i + 1][1]
        sel = [r for r in rows if t0 <= r[0] < t1]
        lat = [r[1] - r[0] for r in sel]
        c = collections.Counter(r[2] for r in sel)
        e = None if any(r[3] is None for r in sel) else sum(1 for r in sel if r[3])
        res.info("%-9s %7d %7d %7d %7d %7s %8s %8s %8s" % (name, len(sel), c[200], c[429], c[503],
                                                           e if e is not None else "-",
                                                           ms(pct(lat, 0.5)), ms(pct(lat, 0.99)),
                                                           ms(max(lat) if lat else float("nan"))))
        if name in ("during", "recovery") and lat:
            res.max_fault_latency = max(res.max_fault_latency or 0.0, max(lat))


def judge_log(res, env, window=None, expect=None, max_lines=None, forbid=None):
    """The error log: no crash, no alert, rate_guard errors at most ~1/s per worker.
    expect: some rate_guard error says this; forbid: none does."""
    text = env.nginx.error_log()
    per_bucket = collections.Counter()
    per_pid = collections.Counter()
    samples = []
    forbidden = []
    alarms = []
    notices = 0
    notice_bucket = collections.Counter()
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        stamp, level, pid, msg = m.groups()
        if level in ("alert", "emerg", "crit") or "exited on signal" in msg or re.search(
                r"exited with (fatal )?code [1-9]", msg):
            alarms.append(line)
        if msg.startswith("rate_guard:"):
            if level == "error":
                per_bucket[(pid, stamp)] += 1
                per_pid[pid] += 1
                short = re.sub(r"\d+", "N", msg)[:150]
                if short not in [re.sub(r"\d+", "N", s)[:150] for s in samples]:
                    samples.append(msg)
                if forbid is not None and re.search(forbid, msg):
                    forbidden.append(msg)
            elif level == "notice":
                notices += 1
                notice_bucket[(pid, stamp)] += 1
    worst = max(per_bucket.values()) if per_bucket else 0
    total = sum(per_pid.values())
    res.log_rate = "%d" % worst
    res.check(not alarms, "error.log: no [alert]/[crit]/[emerg], no worker exited on a signal (%d%s)"
              % (len(alarms), (": " + alarms[0][:200]) if alarms else ""))
    res.check(worst <= LOG_MAX_PER_SECOND,
              "error.log: rate_guard errors at most ~1/s per worker: %d lines from %d workers, "
              "at most %d in one second by one worker" % (total, len(per_pid), worst))
    worst_notices = max(notice_bucket.values()) if notice_bucket else 0
    res.check(worst_notices <= LOG_MAX_PER_SECOND,
              "error.log: rate_guard notices (reconnected, ...) at most ~1/s per worker: %d lines, at most %d "
              "in one second by one worker" % (notices, worst_notices))
    if max_lines is not None:
        res.check(total <= max_lines, "error.log: %d rate_guard error lines, at most %d expected" % (total, max_lines))
    if expect is not None:
        res.check(any(re.search(expect, s) for s in samples),
                  "error.log: the error is reported (/%s/)" % expect)
    if forbid is not None:
        res.check(not forbidden, "error.log: no rate_guard error says /%s/ (%d do%s)"
                  % (forbid, len(forbidden), (": " + forbidden[0][:200]) if forbidden else ""))
    for s in samples[:4]:
        res.info("logged: " + s[:220])
    if notices:
        res.info("logged: %d rate_guard notices (reconnected)" % notices)
        for line in text.splitlines():
            if "[notice]" in line and "rate_guard:" in line:
                res.info("logged: " + line[line.index("rate_guard:"):][:220])
                break


def exact_check(res, env, tag="", port=None):
    """A fresh key, sliding_log 20 per 60 s: exactly 20 of 50 pass (10 at a time)."""
    key = "exact-%s-%d-%s" % (res.name, os.getpid(), tag)

    def one(i):
        try:
            p = port or (env.nginx.port if i % 2 else env.nginx.rport)
            st, h, _ = env.nginx.request("/exact/ok.txt?id=x%d" % i, {"X-Key": key}, port=p)
            return st, h.get("x-rg-status", "-")
        except OSError as e:
            return 0, str(e)

    with ThreadPoolExecutor(10) as ex:
        got = list(ex.map(one, range(50)))
    passed = sum(1 for s, g in got if s == 200 and g == "PASSED")
    rejected = sum(1 for s, g in got if s == 429 and g == "REJECTED")
    res.exact = "%d/50" % passed
    res.check(passed == 20 and rejected == 30,
              "exact again after the fault: sliding_log 20/60s, a fresh key, 50 requests 10 at a time: "
              "%d passed, %d rejected, %d other" % (passed, rejected, 50 - passed - rejected))


def metrics_delta(res, m0, m1):
    names = ["round_trips", "errors", "timeouts", "reconnects", "script_loads"]
    parts = []
    for n in names:
        k = "rate_guard_redis_%s_total" % n
        parts.append("%s +%d" % (n, m1.get(k, 0) - m0.get(k, 0)))
    fp = m1.get("rate_guard_requests_fail_policy_total", 0) - m0.get("rate_guard_requests_fail_policy_total", 0)
    parts.append("fail_policy +%d" % fp)
    res.info("metrics: " + ", ".join(parts))
    return m1


# ---- scenarios -----------------------------------------------------------

class Env:
    # timeout_ms: the scenarios that need checks in flight for a while use a
    # longer timeout: after a first timeout, checks are decided at once.
    # redis_options: appended to rate_guard_redis; prepare(env): run once
    # Redis is up, before nginx starts.
    # ctx.tls: Redis listens for TLS only, and nginx speaks TLS to it.
    def __init__(self, ctx, name, fail="open", http2=False, timeout_ms=TIMEOUT_MS, redis_options="",
                 prepare=None):
        self.dir = os.path.join(ctx.workdir, name)
        os.makedirs(self.dir, exist_ok=True)
        self.tls = ctx.tls
        self.redis = Redis(self.dir, self.tls)
        if self.tls:
            redis_options += self.tls.nginx_options()
        self.nginx = Nginx(self.dir, ctx.module, self.redis.port, fail, http2, timeout_ms, redis_options)
        self.fail = fail
        self.bound = (timeout_ms + MARGIN_MS) / 1000.0
        self.prepare = prepare

    def __enter__(self):
        self.redis.start()
        if self.tls and self.redis.answers_plain_tcp():
            raise RuntimeError("Redis answers PING in plain TCP on port %d: not TLS-only" % self.redis.port)
        if self.prepare:
            self.prepare(self)
        self.t_nginx = mono()
        self.nginx.start()
        return self

    def __exit__(self, *exc):
        try:
            self.nginx.stop()
        finally:
            self.redis.stop()
        return False


def stop_and_check(res, env, expect_workers_changed=False, w0=None):
    """Checks that need nginx running, then a graceful stop that must finish."""
    masters = [m for m in env.nginx.masters if alive(m)]
    res.check(len(masters) == 1, "one nginx master running (%d)" % len(masters))
    w1 = env.nginx.workers() if masters else []
    if w0 is not None:
        if expect_workers_changed:
            res.check(len(w1) == 2 and not set(w1) & set(w0),
                      "new workers %s replaced %s, the old ones are gone" % (w1, w0))
        else:
            res.check(w1 == w0, "the same workers before and after (no crash, no respawn): %s -> %s" % (w0, w1))
    ok = env.nginx.stop()
    res.check(ok, "graceful stop (QUIT): master and workers exit within 8 s")
    text = env.nginx.error_log()
    left = [l for l in text.splitlines() if "open socket" in l or "exited on signal" in l]
    res.check(not left, "no connection left open at worker exit, no crash (%d lines)" % len(left))


class MetricsSampler:
    """rate_guard_redis_reconnects_total (both workers, from a fresh nginx) every 100 ms while running."""

    def __init__(self, nginx):
        self.nginx = nginx
        self.samples = []
        self.running = True
        self.pool = ThreadPoolExecutor(1)
        self.done = self.pool.submit(self.run)

    def run(self):
        while self.running:
            t = mono()
            self.samples.append((t, self.nginx.metrics().get("rate_guard_redis_reconnects_total", 0)))
            time.sleep(max(0.0, 0.1 - (mono() - t)))

    def stop(self):
        self.running = False
        self.done.result(5)
        self.pool.shutdown()

    def at(self, t):
        """The last sample taken at or before t (0 before the first: nginx starts with 0)."""
        before = [v for ts, v in self.samples if ts <= t]
        return before[-1] if before else 0


def judge_refusal_backoff(res, sampler, t_fs, t_fe):
    """Per worker: at most 10 reconnects in the first second of a refusal, about 1 a second after."""
    first = sampler.at(t_fs + 1.0) - sampler.at(t_fs)
    later_s = t_fe - (t_fs + 1.0)
    later = sampler.at(t_fe) - sampler.at(t_fs + 1.0)
    bound = 2 * (int(later_s + 0.999) + 1)  # 1 a second per worker, a second boundary's slack
    res.check(first <= 2 * 10, "refused: at most 10 reconnects per worker in the first second "
              "(%d by 2 workers)" % first)
    res.check(later <= bound, "refused: about 1 reconnect a second per worker after the first second "
              "(%d by 2 workers in %.1f s, at most %d)" % (later, later_s, bound))


def redis_fault(name, what, fault, fail="open", expect_errors=True, expect_log=None, hang=False,
                max_reconnects=None, redis_options="", prepare=None, refusal=False, tls_expect_log=None,
                tls_forbid_log=None):
    """hang: Redis accepts connections and commands but does not answer.
    max_reconnects: per worker, over the fault and the recovery.
    refusal: new connections are refused during the fault: the reconnects are
    sampled and bounded per second, and checks are decided at once (as hang).
    tls_expect_log: the error logged over TLS, when it is not expect_log;
    tls_forbid_log: what no error may say over TLS."""
    def scenario(ctx):
        expect = tls_expect_log if ctx.tls and tls_expect_log else expect_log
        forbid = tls_forbid_log if ctx.tls else None
        res = Result(name, what)
        with Env(ctx, name, fail=fail, redis_options=redis_options, prepare=prepare) as env:
            m0 = env.nginx.metrics()
            w0 = env.nginx.workers()
            sampler = MetricsSampler(env.nginx) if refusal else None
            load = Load(env, "load", conns=16, rate=120, duration=30, key_prefix="k-%s-" % name)
            if refusal:
                time.sleep(0.3)  # the workers meet the refusal from their start: the load begins in it
            else:
                time.sleep(1.3)
            t_fs = env.t_nginx if refusal else mono()
            note = fault(env)
            t_fe = mono()
            if sampler:
                sampler.stop()
            if note:
                res.info(note)
            time.sleep(GRACE + 1.0)
            load.stop()
            summary, recs = load.wait()
            t0 = min((r.t_send for r in recs), default=t_fs)
            marks = [("before", t0), ("during", t_fs), ("recovery", t_fe), ("after", t_fe + GRACE)]
            res.info("fault %.2f s; load %d connections, %.0f req/s" %
                     (t_fe - t_fs, 16, len(recs) / max(0.1, (max(r.t_done for r in recs) - t0))))
            last_err = judge_load(res, env, summary, recs, fail=fail,
                                  err_window=(t_fs - BOUND, t_fe + GRACE),
                                  expect_errors=expect_errors, marks=marks)
            if last_err is not None:
                d = last_err - t_fe
                res.info("recovery: the last fail-policy answer was sent %.2f s %s the fault ended"
                         % (abs(d), "after" if d >= 0 else "before"))
            served = collections.Counter(v[0][2] for v in env.nginx.access_log().values())
            res.info("answers per worker: %s" % dict(served))
            if hang or refusal:
                # The spec: "While Redis is known to be unreachable, checks are
                # decided at once, not after a timeout each." After the first
                # timeout has shown Redis to hang, requests should not each wait.
                sel = [r for r in recs if r.outcome == "answered" and t_fs + 0.2 <= r.t_send <= t_fe - 0.05]
                waited = [r for r in sel if r.t_done - r.t_send >= 0.8 * TIMEOUT_MS / 1000]
                share = len(waited) / max(1, len(sel))
                res.check(share <= 0.10,
                          "while Redis hangs, checks are decided at once after the first timeout, not after a "
                          "timeout each: %d of %d answers (%.0f%%) in the fault (from +200 ms) waited >= %d ms"
                          % (len(waited), len(sel), share * 100, 0.8 * TIMEOUT_MS))
            exact_check(res, env)
            m1 = env.nginx.metrics()
            metrics_delta(res, m0, m1)
            if max_reconnects is not None:
                rc = m1.get("rate_guard_redis_reconnects_total", 0) - m0.get("rate_guard_redis_reconnects_total", 0)
                res.check(rc <= 2 * max_reconnects,
                          "reconnection backs off (100 ms doubling to 1 s): %d reconnects by 2 workers in %.1f s "
                          "(at most %d expected)" % (rc, t_fe - t_fs + GRACE + 1.0, 2 * max_reconnects))
            judge_log(res, env, expect=expect, forbid=forbid)
            if sampler:
                judge_refusal_backoff(res, sampler, t_fs, t_fe)
            stop_and_check(res, env, w0=w0)
        return res
    scenario.__doc__ = what
    return scenario


def f_kill(env):
    env.redis.kill()
    time.sleep(1.5)
    env.redis.start()


def f_blackhole(env):
    """Redis gone, and its port a listener whose accept queue is full: SYNs
    are dropped, connecting hangs until connect_timeout."""
    env.redis.kill()
    hole = socket.socket()
    hole.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    hole.bind(("127.0.0.1", env.redis.port))
    hole.listen(0)
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        c.connect_ex(("127.0.0.1", env.redis.port))
        fillers.append(c)
    time.sleep(2.0)
    for c in fillers:
        c.close()
    hole.close()
    env.redis.start()
    return "Redis killed, its port held by a listener that never accepts (backlog full) for 2 s, then Redis restarted"


def f_pause(mode):
    def fault(env):
        t = mono()
        env.redis.cli("CLIENT", "PAUSE", "2000", mode)
        wait_until(lambda: mono() - t >= 2.0, 3)
        # the pause ends by itself; the admin connection is paused too until then
        wait_until(env.redis.ping, 3)
    return fault


def f_debug_sleep(env):
    p = env.redis.cli_bg("DEBUG", "SLEEP", "1")
    p.wait(5)


def f_client_kill(env):
    killed = 0
    for _ in range(10):
        out = env.redis.cli("CLIENT", "KILL", "TYPE", "normal")
        killed += int(out) if out.isdigit() else 0
        time.sleep(0.2)
    return "CLIENT KILL TYPE normal: %d connections killed in 10 rounds" % killed


def f_script_error(env):
    # The module's user may no longer run TIME: every check script fails inside
    # (ERR ... can't run this command ... script: ...).
    env.redis.cli("ACL", "SETUSER", "default", "-time")
    time.sleep(2.0)
    env.redis.cli("ACL", "SETUSER", "default", "+time")


def f_oom(env):
    env.redis.cli("CONFIG", "SET", "maxmemory", "1")
    time.sleep(2.0)
    env.redis.cli("CONFIG", "SET", "maxmemory", "0")


def f_readonly(env):
    env.redis.cli("REPLICAOF", "127.0.0.1", str(free_port()))
    time.sleep(2.0)
    env.redis.cli("REPLICAOF", "NO", "ONE")


def f_busy(env):
    env.redis.cli("CONFIG", "SET", "busy-reply-threshold", "50")
    p = env.redis.cli_bg("EVAL", "while true do end", "0")
    time.sleep(2.0)
    env.redis.cli("SCRIPT", "KILL")
    try:
        p.wait(3)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    env.redis.cli("CONFIG", "SET", "busy-reply-threshold", "5000")


REFUSAL_S = 3.0  # how long Redis refuses new connections


class FakeListener:
    """Redis's port held by something that is not Redis: it closes every
    connection at once, writes `greeting` and closes, or never answers.
    With `tls`, the greeting comes after a TLS handshake, as a TLS Redis
    writes its errors; closing and holding happen before any handshake."""

    def __init__(self, port, mode, greeting=b"", tls=None):
        self.tls_context = tls.server_context() if tls else None
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(128)
        self.sock.settimeout(0.02)
        self.mode, self.greeting = mode, greeting
        self.held, self.accepted, self.running = [], 0, True
        self.pool = ThreadPoolExecutor(1)
        self.done = self.pool.submit(self.serve)

    def serve(self):
        while self.running:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            self.accepted += 1
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as Redis's: what it writes leaves at once
            if self.mode == "hold":
                self.held.append(c)
                continue
            if self.greeting:
                try:
                    if self.tls_context:
                        c.settimeout(1.0)
                        c = self.tls_context.wrap_socket(c, server_side=True)
                    c.sendall(self.greeting)
                except OSError:  # ssl.SSLError too
                    pass
            c.close()

    def close(self):
        self.running = False
        self.done.result(5)
        self.pool.shutdown()
        for c in self.held:
            c.close()
        self.sock.close()


# A refusal is in place before nginx starts, so its workers meet it with no
# connection ever made (as after a start or a reload while Redis refuses), and
# is lifted REFUSAL_S after nginx started: refuse(env) before, restore(env) after.

def r_fake(mode, greeting=b"", plain=False):
    """plain: the listener speaks plain TCP even in a --tls run."""
    def refuse(env):
        env.redis.kill()
        env.fake = FakeListener(env.redis.port, mode, greeting, None if plain else env.tls)

    def restore(env):
        env.fake.close()
        env.redis.start()
        return "Redis's port held by a listener that %s (%d connections), then Redis started" % (
            {"close": "closes at once", "say": "answers %r%s and closes" % (
                greeting.strip(), "" if not env.tls else " in plain TCP" if plain else " after a TLS handshake"),
             "hold": "never answers"}[mode], env.fake.accepted)
    return refuse, restore


DENIED = b"-DENIED Redis is running in protected mode because protected mode is enabled\r\n"


def r_requirepass():
    def refuse(env):
        env.redis.cli("CONFIG", "SET", "requirepass", "s3cret")
        env.redis.auth = ["--no-auth-warning", "-a", "s3cret"]

    def restore(env):
        env.redis.cli("CONFIG", "SET", "requirepass", "")
        env.redis.auth = []
        return "requirepass set, nginx has no password=; then requirepass removed"
    return refuse, restore


def r_wrong_password():
    def refuse(env):
        env.redis.cli("CONFIG", "SET", "requirepass", "other")
        env.redis.auth = ["--no-auth-warning", "-a", "other"]

    def restore(env):
        env.redis.cli("CONFIG", "SET", "requirepass", "pw")
        env.redis.auth = ["--no-auth-warning", "-a", "pw"]
        return "requirepass other, nginx's password=pw; then requirepass pw"
    return refuse, restore


def r_acl(command):
    def refuse(env):
        env.redis.cli("ACL", "SETUSER", "rg", "on", ">pw", "~*", "+@all", "-" + command)

    def restore(env):
        env.redis.cli("ACL", "SETUSER", "rg", "+" + command)
        return "ACL SETUSER rg -%s (nginx's username=rg), then +%s" % (command, command)
    return refuse, restore


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def r_maxclients():
    # One connection holds the only slot; the admin commands go over it (a
    # new redis-cli would be refused too).
    def call(env, *args):
        env.holder.sendall(resp(*args))
        return env.holder.recv(4096).decode(errors="replace").strip()

    def refuse(env):
        env.holder = env.redis.connect()
        call(env, "CONFIG", "SET", "maxclients", "1")

    def restore(env):
        call(env, "CONFIG", "SET", "maxclients", "10000")
        env.holder.close()
        return "maxclients 1 with its slot held, then maxclients 10000"
    return refuse, restore


def r_loading():
    # DEBUG RELOAD saves and loads the dataset again, slowed down by the debug
    # config key-load-delay; meanwhile Redis answers -LOADING.
    def refuse(env):
        env.redis.cli("DEBUG", "POPULATE", "40000", "pad")
        env.redis.cli("CONFIG", "SET", "key-load-delay", "100")  # microseconds per key: ~4 s
        env.redis.cli("CONFIG", "SET", "loading-process-events-interval-bytes", "1024")
        env.reload = env.redis.cli_bg("DEBUG", "RELOAD")
        wait_until(lambda: "loading:1" in env.redis.cli("INFO", "persistence"), 3, 0.01)

    def restore(env):
        env.reload.wait(15)  # loaded
        env.redis.cli("CONFIG", "SET", "key-load-delay", "0")
        return "DEBUG RELOAD of 40,000 keys slowed to ~4 s; nginx started during it"
    return refuse, restore


def refusal(name, what, refusal_pair, expect_log, redis_options="", setup=None, tls_expect_log=None,
            tls_forbid_log=None):
    refuse, restore = refusal_pair

    def prepare(env):
        if setup:
            setup(env)
        refuse(env)
        env.t_refused = mono()

    def fault(env):
        wait_until(lambda: mono() - env.t_refused >= REFUSAL_S, REFUSAL_S + 1, 0.01)
        return restore(env)
    return redis_fault(name, what, fault, expect_log=expect_log, refusal=True, redis_options=redis_options,
                       prepare=prepare, tls_expect_log=tls_expect_log, tls_forbid_log=tls_forbid_log)


def f_noscript(env):
    for _ in range(7):
        env.redis.cli("SCRIPT", "FLUSH")
        time.sleep(0.3)
    return "SCRIPT FLUSH 7 times, every 300 ms"


def nginx_change(name, what, change, expect_errors=False, pause=None):
    def scenario(ctx):
        res = Result(name, what)
        with Env(ctx, name) as env:
            w0 = env.nginx.workers()
            # a quarter of the connections open a new connection for every request
            # (Connection: close): for them nothing may ever go missing
            load = Load(env, "load", conns=16, rate=120, duration=30, key_prefix="k-%s-" % name,
                        conn_close_fraction=0.25)
            time.sleep(1.3)
            t_fs = mono()
            if pause:
                env.redis.cli("CLIENT", "PAUSE", str(pause), "ALL")
            note = change(env, res)
            t_fe = mono()
            if pause:
                wait_until(env.redis.ping, 4)
                t_fe = mono()
            if note:
                res.info(note)
            time.sleep(GRACE + 1.0)
            load.stop()
            summary, recs = load.wait()
            t0 = min((r.t_send for r in recs), default=t_fs)
            marks = [("before", t0), ("during", t_fs), ("recovery", t_fe), ("after", t_fe + GRACE)]
            judge_load(res, env, summary, recs, err_window=(t_fs - BOUND, t_fe + GRACE) if pause else None,
                       expect_errors=expect_errors, allow_unread=True, marks=marks)
            exact_check(res, env)
            judge_log(res, env)
            stop_and_check(res, env, expect_workers_changed=True, w0=w0)
        return res
    scenario.__doc__ = what
    return scenario


def c_reload(times):
    def change(env, res):
        old = set(env.nginx.workers())
        for _ in range(times):
            signal_pid(env.nginx.master, signal.SIGHUP)
            time.sleep(0.5)
        gone = wait_until(lambda: not (set(env.nginx.workers()) & old) and len(env.nginx.workers()) == 2, 5)
        res.check(gone, "after %d reloads the old workers have exited and 2 new ones serve" % times)
        return "kill -HUP master, %d times, every 500 ms" % times
    return change


def c_upgrade(env, res):
    old_master = env.nginx.master
    old_workers = env.nginx.workers()
    signal_pid(old_master, signal.SIGUSR2)

    def new_master():
        pid = env.nginx.pid_from_file()
        return pid if pid != old_master else None

    ok = wait_until(lambda: new_master() is not None and len(env.nginx.workers(new_master())) == 2, 5)
    res.check(ok, "USR2: a new master with 2 workers started")
    if not ok:
        return "binary upgrade failed at USR2"
    nm = new_master()
    env.nginx.masters.append(nm)
    STARTED.append(("nginx", nm))
    time.sleep(0.5)
    signal_pid(old_master, signal.SIGWINCH)
    ok = wait_until(lambda: not (set(env.nginx.workers(old_master)) & set(old_workers)), 5)
    res.check(ok, "WINCH: the old workers exited gracefully")
    time.sleep(0.5)
    signal_pid(old_master, signal.SIGQUIT)
    ok = wait_until(lambda: not alive(old_master), 5)
    res.check(ok, "QUIT: the old master exited")
    env.nginx.masters.remove(old_master)
    reap()
    return "USR2 (new master %d), +0.5 s WINCH old master %d, +0.5 s QUIT old master" % (nm, old_master)


def sc_client_abort(ctx):
    """clients that close (FIN or RST) while their check is in flight; nothing leaks"""
    res = Result("client_abort", "clients that close (FIN or RST) while their check is in flight")
    with Env(ctx, "client_abort", timeout_ms=1500) as env:
        w0 = env.nginx.workers()
        time.sleep(0.2)
        base_active = env.nginx.active_connections()
        fds0 = {w: fd_count(w) for w in w0}
        rss0 = {w: rss_kb(w) for w in w0}
        load = Load(env, "load", conns=8, rate=100, duration=30, key_prefix="k-abort-")
        time.sleep(0.5)
        runs = []
        # A: healthy Redis, close right after sending: replies race the close
        a = Load(env, "abortA", mode="abort", conns=50, requests=3000, abort_min=0, abort_max=0.002,
                 rst_fraction=0.5, key_prefix="ka-", id_prefix="a", duration=20)
        runs.append(("abort A (healthy Redis, close at once)",) + tuple(a.wait()))
        # B1, B2: Redis paused: checks are in flight when the clients leave.
        # Twice: memory must not grow from the first round to the second.
        t_fs = mono()
        rss_mid = None
        for n in (1, 2):
            env.redis.cli("CLIENT", "PAUSE", "1200", "ALL")
            b = Load(env, "abortB%d" % n, mode="abort", conns=50, requests=1000, abort_min=0, abort_max=0.15,
                     rst_fraction=0.5, key_prefix="kb-", id_prefix="b%d-" % n, duration=20)
            runs.append(("abort B%d (Redis paused, close after 0-150 ms)" % n,) + tuple(b.wait()))
            wait_until(env.redis.ping, 4)
            if n == 1:
                time.sleep(0.3)
                rss_mid = {w: rss_kb(w) for w in w0}
        t_fe = mono()
        time.sleep(GRACE + 0.5)
        load.stop()
        summary, recs = load.wait()
        t0 = min((r.t_send for r in recs), default=t_fs)
        marks = [("before", t0), ("during", t_fs), ("recovery", t_fe), ("after", t_fe + GRACE)]
        judge_load(res, env, summary, recs, err_window=(t_fs - env.bound, t_fe + GRACE), marks=marks,
                   tag="background load", latency_bound=env.bound)
        access = env.nginx.access_log()
        for tag, s, rr in runs:
            o = collections.Counter(r.outcome for r in rr)
            c499 = sum(1 for r in rr if r.outcome == "aborted" and any(x[0] == "499" for x in access.get(r.rid, [])))
            res.sent += s["sent"]
            res.answered += o["answered"]
            res.unanswered["aborted"] += o["aborted"]
            res.unanswered["lost"] += o["lost"] + o["timeout"]
            for r in rr:
                if r.outcome == "answered":
                    res.statuses[str(r.status)] += 1
            res.check(len(rr) == s["sent"] and o["lost"] == 0 and o["timeout"] == 0,
                      "%s: %d sent, %d answered before the close, %d aborted (%d logged 499 by nginx), "
                      "lost %d, timed out %d" % (tag, s["sent"], o["answered"], o["aborted"], c499,
                                                 o["lost"], o["timeout"]))
            if "paused" in tag:
                res.check(c499 > 0, "%s: checks were in flight when clients left (499 in access.log)" % tag)
        back = wait_until(lambda: env.nginx.active_connections() == base_active, 3)
        active = env.nginx.active_connections()
        res.check(back, "stub_status: active connections back to the baseline %d (now %d)" % (base_active, active))
        fds_ok = wait_until(lambda: all(fd_count(w) <= fds0[w] for w in w0), 3)
        fds1 = {w: fd_count(w) for w in w0}
        rss1 = {w: rss_kb(w) for w in w0}
        res.check(fds_ok, "worker file descriptors: none more than at the start: %s -> %s"
                  % (list(fds0.values()), list(fds1.values())))
        growth = max(rss1[w] - rss_mid[w] for w in w0)
        res.check(growth < 1024, "worker RSS: %s kB at start, %s kB after the first paused round, %s kB after "
                  "the second (+%d kB at most; < 1024 kB)" % (list(rss0.values()), list(rss_mid.values()),
                                                             list(rss1.values()), growth))
        exact_check(res, env)
        judge_log(res, env)
        stop_and_check(res, env, w0=w0)
    return res


def sc_stop_in_flight(ctx):
    """nginx stopped (QUIT, then TERM) while Redis hangs and checks are in flight"""
    res = Result("stop_in_flight", "nginx stopped (QUIT, then TERM) while Redis hangs and checks are in flight")
    with Env(ctx, "stop_in_flight", timeout_ms=1500) as env:
        # QUIT: a graceful stop answers every request already read, by the fail
        # policy once the timeout expires, then the workers exit.
        load = Load(env, "load", conns=16, rate=120, duration=30, key_prefix="k-stop-")
        time.sleep(1.0)
        env.redis.cli("CLIENT", "PAUSE", "3000", "ALL")
        time.sleep(0.3)
        pids = env.nginx.all_pids()
        t = mono()
        signal_pid(env.nginx.master, signal.SIGQUIT)
        load.stop()
        gone = wait_until(lambda: not any(alive(p) for p in pids), 5, 0.01)
        res.check(gone, "QUIT with checks in flight: master and workers exited after %.2f s" % (mono() - t))
        summary, recs = load.wait()
        judge_load(res, env, summary, recs, err_window=(t - 0.3 - env.bound, mono()), allow_unread=True,
                   latency_bound=env.bound,
                   tag="load at QUIT")
        reap()
        wait_until(env.redis.ping, 4)
        # TERM: a fast stop drops what is in flight; no worker may crash on the way
        env.nginx.start()
        load = Load(env, "load2", conns=16, rate=120, duration=30, key_prefix="k-stop2-", id_prefix="t")
        time.sleep(1.0)
        env.redis.cli("CLIENT", "PAUSE", "3000", "ALL")
        time.sleep(0.3)
        pids = env.nginx.all_pids()
        t = mono()
        signal_pid(env.nginx.master, signal.SIGTERM)
        gone = wait_until(lambda: not any(alive(p) for p in pids), 5, 0.01)
        res.check(gone, "TERM with checks in flight: master and workers exited after %.2f s" % (mono() - t))
        load.stop()
        s2, r2 = load.wait()
        o = collections.Counter(r.outcome for r in r2)
        res.info("load at TERM (a fast stop drops requests in flight, as nginx does): %s" % dict(o))
        reap()
        wait_until(env.redis.ping, 4)
        judge_log(res, env)
        text = env.nginx.error_log()
        left = [l for l in text.splitlines() if "open socket" in l or "exited on signal" in l]
        res.check(not left, "no connection left open at worker exit, no crash (%d lines)" % len(left))
    return res


def sc_slow_clients(ctx):
    """clients that send their requests one byte at a time over 1 s"""
    res = Result("slow_clients", "clients that send their requests one byte at a time over 1 s")
    with Env(ctx, "slow_clients") as env:
        w0 = env.nginx.workers()
        load = Load(env, "load", conns=8, rate=100, duration=30, key_prefix="k-slow-")
        time.sleep(0.5)
        slow = Load(env, "slow", mode="slow", conns=16, per_conn=2, slow_seconds=1.0, key_prefix="ks-",
                    id_prefix="s", duration=20, req_timeout=3)
        ss, rs = slow.wait()
        load.stop()
        summary, recs = load.wait()
        judge_load(res, env, summary, recs, tag="background load")
        judge_load(res, env, ss, rs, tag="slow clients")
        lat = [r.t_done - r.t_send for r in rs if r.outcome == "answered"]
        res.info("slow clients: %d requests, answered %s ms after their last byte (max)"
                 % (len(rs), ms(max(lat) if lat else float("nan"))))
        exact_check(res, env)
        judge_log(res, env)
        stop_and_check(res, env, w0=w0)
    return res


def sc_pipelined(ctx):
    """10 requests in one write on one connection: 10 answers, in order"""
    res = Result("pipelined", "10 requests in one write on one connection: 10 answers, in order")
    with Env(ctx, "pipelined") as env:
        w0 = env.nginx.workers()
        # 1: healthy Redis, one fresh key per connection, sliding_log 5/60s:
        #    answers in order, the first 5 pass and the last 5 are rejected
        p = Load(env, "pipe", mode="pipeline", conns=20, depth=10, per_conn=1, path="/pipe/ok.txt",
                 key_per_conn=True, key_prefix="kp-%d-" % os.getpid(), id_prefix="p", duration=10)
        s1, r1 = p.wait()
        judge_load(res, env, s1, r1, tag="pipelined")
        res.check(not s1["order_errors"], "pipelined: answers come back in the order sent (%s)" % s1["order_errors"][:2])
        by_conn = collections.defaultdict(list)
        for r in sorted(r1, key=lambda r: (r.conn, r.seq)):
            by_conn[r.conn].append(r.status)
        expected = [200] * 5 + [429] * 5
        wrong = [c for c, st in by_conn.items() if st != expected]
        res.check(len(by_conn) == 20 and not wrong,
                  "pipelined: on each of 20 connections the statuses are 5 x 200 then 5 x 429 (%d differ%s)"
                  % (len(wrong), (": " + str(by_conn[wrong[0]])) if wrong else ""))
        # 2: Redis paused: each pipelined request is decided by the fail policy
        t_fs = mono()
        env.redis.cli("CLIENT", "PAUSE", "1500", "ALL")
        p2 = Load(env, "pipe-paused", mode="pipeline", conns=10, depth=10, per_conn=1, path="/load/ok.txt",
                  key_prefix="kq-", id_prefix="q", duration=10)
        s2, r2 = p2.wait()
        t_fe = mono()
        judge_load(res, env, s2, r2, tag="pipelined, Redis paused", err_window=(t_fs - BOUND, t_fe + GRACE),
                   latency_bound=10 * BOUND)
        res.check(not s2["order_errors"], "pipelined, Redis paused: answers in order (%s)" % s2["order_errors"][:2])
        lat = [r.t_done - r.t_send for r in r2 if r.outcome == "answered"]
        res.info("pipelined while Redis paused: the 10th answer of a write came after %s ms at most"
                 % ms(max(lat) if lat else float("nan")))
        res.max_fault_latency = max(lat) if lat else None
        wait_until(env.redis.ping, 4)
        time.sleep(GRACE)
        exact_check(res, env)
        judge_log(res, env)
        stop_and_check(res, env, w0=w0)
    return res


def sc_http2(ctx):
    """HTTP/2: many streams per connection, Redis paused mid-run, streams reset in flight"""
    res = Result("http2", "HTTP/2: many streams per connection, Redis paused mid-run, streams reset in flight")
    with Env(ctx, "http2", http2=True) as env:
        w0 = env.nginx.workers()
        time.sleep(0.2)
        base_active = env.nginx.active_connections()
        load = Load(env, "h2", h2=True, conns=4, streams=16, rate=400, duration=4.0, key_prefix="h2k-")
        time.sleep(1.3)
        t_fs = mono()
        env.redis.cli("CLIENT", "PAUSE", "1000", "ALL")
        wait_until(env.redis.ping, 3)
        t_fe = mono()
        summary, recs = load.wait()
        o = collections.Counter(r.outcome for r in recs)
        st = collections.Counter(r.status for r in recs if r.outcome == "answered")
        res.sent += summary["sent"]
        res.answered += o["answered"]
        if summary["sent"] - o["answered"]:
            res.unanswered["lost"] += summary["sent"] - o["answered"]
        for k, v in st.items():
            res.statuses["h2:%d" % k] += v
        res.check(len(recs) == summary["sent"] and o["answered"] == summary["sent"],
                  "h2 load: %d streams opened, %d answered (%s)" % (summary["sent"], o["answered"], dict(o)))
        res.check(set(st) <= {200, 429}, "h2 load: statuses 200/429 only (fail open): %s" % dict(st))
        lat = [r.t_done - r.t_send for r in recs if r.outcome == "answered"]
        t0 = min((r.t_send for r in recs), default=t_fs)
        phase_table(res, [(r.t_send, r.t_done, r.status, None) for r in recs if r.outcome == "answered"],
                    [("before", t0), ("during", t_fs), ("recovery", t_fe), ("after", t_fe + GRACE)])
        res.check(max(lat, default=0) <= BOUND, "h2 load: every answer within %d ms (max %.1f ms, p99 %s ms)"
                  % (BOUND * 1000, max(lat, default=0) * 1000, ms(pct(lat, 0.99))))
        # streams reset, and connections closed, with their checks in flight
        env.redis.cli("CLIENT", "PAUSE", "800", "ALL")
        ab = Load(env, "h2-abort", h2=True, mode="abort", conns=10, streams=50, abort_after=0.03, key_prefix="h2a-")
        sa, ra = ab.wait()
        oa = collections.Counter(r.outcome for r in ra)
        res.sent += sa["sent"]
        res.answered += oa["answered"]
        res.unanswered["h2-reset"] += oa["aborted"]
        res.unanswered["lost"] += oa["lost"] + oa["timeout"]
        res.check(len(ra) == sa["sent"] and oa["lost"] == 0,
                  "h2 abort: %d streams on 10 connections, %d answered before, %d reset (RST_STREAM) or "
                  "closed with the connection in flight" % (sa["sent"], oa["answered"], oa["aborted"]))
        wait_until(env.redis.ping, 3)
        if shutil.which("h2load"):
            r = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "10", "-H", "x-key: h2load",
                                "http://127.0.0.1:%d/load/ok.txt" % env.nginx.h2port],
                               capture_output=True, text=True, timeout=30)
            m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                          r"(\d+) errored, (\d+) timeout", r.stdout)
            codes = re.search(r"status codes: (.*)", r.stdout)
            codes_ok = codes and re.match(r"(\d+) 2xx, 0 3xx, (\d+) 4xx, 0 5xx", codes.group(1))
            res.check(m and m.group(3) == "2000" and m.group(6) == "0" and m.group(7) == "0" and codes_ok
                      and int(codes_ok.group(1)) + int(codes_ok.group(2)) == 2000,
                      "h2load -n 2000 -c 4 -m 10, one key: %s; %s (h2load counts the 429s as failed)"
                      % (m.group(0) if m else r.stdout[-200:], codes.group(1) if codes else ""))
        else:
            res.info("h2load not installed (Debian package nghttp2-client): skipped")
        ok = wait_until(lambda: env.nginx.active_connections() == base_active, 3)
        res.check(ok, "stub_status: active connections back to the baseline %d (now %d)"
                  % (base_active, env.nginx.active_connections()))
        time.sleep(GRACE)
        exact_check(res, env, port=None)
        judge_log(res, env)
        stop_and_check(res, env, w0=w0)
    return res


SCENARIOS = collections.OrderedDict([
    ("redis_kill", redis_fault("redis_kill", "Redis SIGKILLed under load, restarted on the same port 1.5 s later",
                               f_kill, expect_log=r"lost|refused|cannot connect", max_reconnects=8)),
    ("redis_kill_closed", redis_fault("redis_kill_closed", "the same with rate_guard_fail closed: 503 during the fault",
                                      f_kill, fail="closed", expect_log=r"lost|refused|cannot connect")),
    ("redis_blackhole", redis_fault("redis_blackhole", "Redis replaced by a listener that never accepts: connect_timeout",
                                    f_blackhole, expect_log=r"no connection to Redis \S+ ready within", max_reconnects=8)),
    ("client_pause", redis_fault("client_pause", "CLIENT PAUSE 2000 ALL: Redis accepts but does not answer",
                                 f_pause("ALL"), expect_log=r"did not answer", hang=True, max_reconnects=8)),
    ("client_pause_write", redis_fault("client_pause_write", "CLIENT PAUSE 2000 WRITE: scripts are held",
                                       f_pause("WRITE"), expect_log=r"did not answer", hang=True,
                                       max_reconnects=8)),
    ("debug_sleep", redis_fault("debug_sleep", "DEBUG SLEEP 1: Redis slower than the timeout for 1 s",
                                f_debug_sleep, expect_log=r"did not answer", hang=True, max_reconnects=8)),
    ("client_kill", redis_fault("client_kill", "CLIENT KILL TYPE normal every 200 ms for 2 s",
                                f_client_kill, expect_errors=None, expect_log=r"lost")),
    ("script_error", redis_fault("script_error", "the check script fails inside Redis for 2 s (ACL: TIME denied)",
                                 f_script_error, expect_log=r"can't run this command")),
    ("oom", redis_fault("oom", "CONFIG SET maxmemory 1 for 2 s: OOM error replies",
                        f_oom, expect_log=r"OOM")),
    ("readonly", redis_fault("readonly", "REPLICAOF a dead master for 2 s: READONLY error replies",
                             f_readonly, expect_log=r"READONLY")),
    ("busy", redis_fault("busy", "another client's endless script for 2 s: BUSY error replies, then SCRIPT KILL",
                         f_busy, expect_log=r"BUSY|did not answer")),
    ("refuse_noauth", refusal("refuse_noauth", "nginx started while Redis requires a password it does not give; 3 s",
                              r_requirepass(), r"unauthenticated|NOAUTH")),
    ("refuse_wrong_password", refusal("refuse_wrong_password", "nginx started with a wrong password=; 3 s",
                                      r_wrong_password(), r"AUTH failed", redis_options=" password=pw")),
    ("refuse_acl_evalsha", refusal("refuse_acl_evalsha", "nginx started while its ACL user may not EVALSHA; 3 s",
                                   r_acl("evalsha"), r"NOPERM", redis_options=" username=rg password=pw")),
    ("refuse_acl_script", refusal("refuse_acl_script", "nginx started while its ACL user may not SCRIPT; 3 s",
                                  r_acl("script"), r"NOPERM", redis_options=" username=rg password=pw")),
    ("refuse_maxclients", refusal("refuse_maxclients", "nginx started while Redis is at maxclients; 3 s",
                                  r_maxclients(), r"max number of clients",
                                  # over TLS Redis refuses before the handshake, and writes nothing
                                  tls_expect_log=r"lost: TLS handshake failed")),
    ("refuse_loading", refusal("refuse_loading", "nginx started while Redis loads its dataset (DEBUG RELOAD, ~4 s)",
                               r_loading(), r"LOADING")),
    ("refuse_denied", refusal("refuse_denied", "nginx started while a listener answers -DENIED and closes; 3 s",
                              r_fake("say", DENIED), r"DENIED",
                              # over TLS: what Redis said, not the send that met its close
                              tls_forbid_log=r"Broken pipe|connection closed|reset by peer")),
    ("refuse_close", refusal("refuse_close", "nginx started while a listener accepts and closes at once; 3 s",
                             r_fake("close"), r"lost", tls_expect_log=r"lost: TLS handshake failed")),
    ("refuse_silent", refusal("refuse_silent", "nginx started while a listener accepts and never answers; 3 s",
                              r_fake("hold"), r"ready within")),
    ("noscript", redis_fault("noscript", "SCRIPT FLUSH 7 times under load: NOSCRIPT, reload, retry: no request fails",
                             f_noscript, expect_errors=False)),
    ("reload", nginx_change("reload", "nginx -s reload (kill -HUP master) 5 times under load", c_reload(5))),
    ("reload_in_flight", nginx_change("reload_in_flight",
                                      "3 reloads while Redis is paused: old workers exit with checks in flight",
                                      c_reload(3), expect_errors=None, pause=2000)),
    ("binary_upgrade", nginx_change("binary_upgrade", "binary upgrade under load: USR2, WINCH, QUIT old master",
                                    c_upgrade)),
    ("stop_in_flight", sc_stop_in_flight),
    ("client_abort", sc_client_abort),
    ("slow_clients", sc_slow_clients),
    ("pipelined", sc_pipelined),
    ("http2", sc_http2),
])

# The scenarios that also run over TLS (--tls), and the path TLS changes in
# each (why the others add nothing over TLS: README.md, "Over TLS").
TLS_PATHS = collections.OrderedDict([
    ("redis_kill", "the TLS connection cut without close_notify; reconnection refused, then a full handshake"),
    ("client_pause", "a timeout while waiting for a TLS record; the new connection's handshake succeeds, "
                     "its probe is held until connect_timeout"),
    ("debug_sleep", "Redis wholly stalled: a timeout during a TLS read, then the new connection's handshake "
                    "stalls until connect_timeout"),
    ("client_kill", "Redis ends TLS connections with checks in flight"),
    ("refuse_noauth", "an error, then the close, both over TLS, before the connection is up"),
    ("refuse_wrong_password", "AUTH refused over TLS: every attempt costs a handshake, at backoff pace"),
    ("refuse_maxclients", "Redis refuses before the TLS handshake, writing nothing: the handshake fails"),
    ("refuse_denied", "a listener that completes the handshake, writes -DENIED in TLS and closes"),
    ("refuse_close", "a listener that accepts and closes: the handshake meets the end of the stream"),
    ("refuse_silent", "a listener that never answers the ClientHello: connect_timeout covers the handshake"),
    ("reload", "new workers make their first connection with a handshake: no check may be lost to it"),
    ("reload_in_flight", "workers exit with TLS connections whose checks are in flight"),
    ("stop_in_flight", "QUIT and TERM with TLS connections in flight: the TLS teardown at exit"),
    ("client_abort", "requests that end while their checks are in flight on a TLS connection"),
])

# Faults that exist only over TLS (run with --tls, after those above).
TLS_ONLY = collections.OrderedDict([
    ("refuse_plaintext", refusal("refuse_plaintext", "nginx (tls=on) started while a plain-TCP listener writes "
                                 "-DENIED at once and closes; 3 s",
                                 r_fake("say", DENIED, plain=True), r"TLS handshake failed",
                                 # bytes before the handshake are nobody's answer
                                 tls_forbid_log=r"DENIED")),
])


def print_result(res, seconds):
    print("== %s: %s  [%s, %.1f s]" % (res.name, res.what, "PASS" if res.passed else "FAIL", seconds))
    for line in res.lines:
        print("   " + line)
    for ok, text in res.checks:
        print("   [%s] %s" % ("ok" if ok else "FAIL", text))
    sys.stdout.flush()


def main():
    p = argparse.ArgumentParser(description="rate_guard fault-injection proof")
    p.add_argument("module", nargs="?")
    p.add_argument("scenarios", nargs="*")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    p.add_argument("--list", action="store_true", help="list the scenarios")
    p.add_argument("--tls", action="store_true",
                   help="Redis TLS-only, nginx with tls=on: the scenarios that TLS changes (all of them by default)")
    args = p.parse_intermixed_args()
    if args.list:
        for k, v in SCENARIOS.items():
            print("%-22s %s" % (k, v.__doc__ if v.__doc__ else ""))
            if k in TLS_PATHS:
                print("%-22s   --tls: %s" % ("", TLS_PATHS[k]))
        for k, v in TLS_ONLY.items():
            print("%-22s (--tls only) %s" % (k, v.__doc__))
        return 0
    if not args.module:
        p.print_usage(sys.stderr)
        return 2
    module = os.path.abspath(args.module)
    if not os.path.isfile(module):
        print("faults: no module at %s" % module, file=sys.stderr)
        return 2
    known = list(TLS_PATHS) + list(TLS_ONLY) if args.tls else list(SCENARIOS)
    names = args.scenarios or list(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        print("faults: unknown scenario(s)%s %s; known: %s" % (" over TLS" if args.tls else "", unknown,
                                                             " ".join(known)), file=sys.stderr)
        return 2
    for tool in (NGINX, REDIS_SERVER, REDIS_CLI) + (("openssl",) if args.tls else ()):
        if not shutil.which(tool):
            print("faults: %s not found" % tool, file=sys.stderr)
            return 2

    class Ctx:
        pass

    ctx = Ctx()
    ctx.workdir = tempfile.mkdtemp(prefix="rate_guard_faults.")
    os.chmod(ctx.workdir, 0o755)
    # a private copy: a rebuild during the run must not change or remove it
    ctx.module = os.path.join(ctx.workdir, os.path.basename(module))
    shutil.copy2(module, ctx.module)
    try:
        ctx.tls = Tls(ctx.workdir) if args.tls else None
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
        print("faults: no certificates for --tls: %s" % e, file=sys.stderr)
        return 2
    become_subreaper()

    def on_alarm(signum, frame):
        raise TimeoutError("the run took longer than %d s" % RUN_BOUND_S)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(RUN_BOUND_S)
    results = []
    t_run = mono()
    try:
        for name in names:
            t = mono()
            scenario = SCENARIOS.get(name) or TLS_ONLY[name]
            try:
                res = scenario(ctx)
            except Exception as e:  # the scenario could not run to its end
                res = Result(name, scenario.__doc__ or "")
                res.check(False, "scenario aborted: %s: %s" % (type(e).__name__, e))
                if isinstance(e, TimeoutError):
                    results.append((res, mono() - t))
                    print_result(res, mono() - t)
                    break
            results.append((res, mono() - t))
            print_result(res, mono() - t)
    finally:
        signal.alarm(0)
        cleanup()
    print()
    print("%-19s %6s %8s %-16s %-27s %9s %9s %6s  %s" % ("scenario", "sent", "answered", "unanswered",
                                                         "statuses", "fault max", "err/s/wkr", "exact", "result"))
    for res, _ in results:
        fl = "%.0f ms" % (res.max_fault_latency * 1000) if res.max_fault_latency is not None else "-"
        print("%-19s %6d %8d %-16s %-27s %9s %9s %6s  %s" % (res.name, res.sent, res.answered,
                                                             res.unanswered_text(), res.status_text(), fl,
                                                             res.log_rate, res.exact,
                                                             "PASS" if res.passed else "FAIL"))
    print("unanswered: aborted/h2-reset = the client left on purpose; ka-race = sent on a keep-alive "
          "connection nginx had closed, never read by nginx (not in access.log); lost = a failure")
    failed = [r.name for r, _ in results if not r.passed]
    print("\n%d scenarios%s, %d failed%s; %.0f s; timeout=%d ms, latency bound %d ms"
          % (len(results), " over TLS" if ctx.tls else "", len(failed), (": " + " ".join(failed)) if failed else "",
             mono() - t_run, TIMEOUT_MS, BOUND * 1000))
    if failed or args.keep:
        print("work directory kept: %s" % ctx.workdir)
    else:
        shutil.rmtree(ctx.workdir, ignore_errors=True)
    return 1 if failed or len(results) < len(names) else 0


def cleanup():
    """Whatever this run started and is still running: stop it, by PID."""
    expect = {"nginx": "nginx", "redis": "redis-server", "redis-cli": "redis-cli", "load": "client.py"}
    for kind, pid in reversed(STARTED):
        if alive(pid) and expect[kind] in cmdline(pid):
            signal_pid(pid, signal.SIGKILL)
    reap()


if __name__ == "__main__":
    sys.exit(main())
