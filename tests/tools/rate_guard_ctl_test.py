#!/usr/bin/env python3
"""tools/rate-guard-ctl against real redis-servers that this test starts on
free loopback ports (a single server, one with a password and ACL users, a
3-master Redis Cluster, TLS-only ones) and stops by their PIDs.

Redis is read back with redis-cli, not with the tool (binary keys go through
`redis-cli -x`, byte for byte); digests are checked against the C++ unit
tests' expectations (tests/unit/redis_key_test.cpp) and against sha256sum.

Usage: rate_guard_ctl_test.py [unittest options]   (ctest: rate_guard_ctl, label redis)
"""

import ctypes
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TOOL = os.path.join(REPO, "tools", "rate-guard-ctl")
MAKE_CERTS = os.path.join(REPO, "scripts", "make_test_certs")
sys.path.insert(0, os.path.join(REPO, "scripts"))
from free_ports import free_ports  # noqa: E402

WORK = None  # the run's directory: kept when a test failed
PR_SET_PDEATHSIG = 1


def die_with_the_test():
    """In the child: SIGTERM when this test's process ends, however it ends
    (ctest's timeout included), so that no redis-server outlives it."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


# ---- servers, redis-cli, the tool -------------------------------------------

class RedisServer:
    """A redis-server on 127.0.0.1:port, no persistence, in a directory of its
    own; `tls` (a dict of certificate paths) makes it TLS-only; `cli_args` are
    given to every redis-cli (a password, a client certificate)."""

    def __init__(self, *args, tls=None, cli_args=()):
        self.port = free_ports(1)[0]
        self.dir = os.path.join(WORK, f"redis-{self.port}")
        os.makedirs(self.dir)
        self.tls = tls
        self.cli_args = list(cli_args)
        listen = ["--port", str(self.port)]
        if tls:
            listen = ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", tls["cert"],
                      "--tls-key-file", tls["key"], "--tls-ca-cert-file", tls["ca"]]
        self.process = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", *listen, "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--logfile", os.path.join(self.dir, "redis.log"), *args],
            preexec_fn=die_with_the_test)
        deadline = time.monotonic() + 10
        while self.cli("PING", check=False) != b"PONG":
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not start: see {self.dir}/redis.log")
            time.sleep(0.05)

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def cli(self, *args, stdin=None, check=True):
        """redis-cli's raw answer, without the last newline. With `stdin`, it
        is the command's last argument (-x), byte for byte."""
        tls = ["--tls", "--cacert", self.tls["ca"]] if self.tls else []
        command = ["redis-cli", *tls, "-p", str(self.port), *self.cli_args] + (["-x"] if stdin is not None else [])
        done = subprocess.run(command + [str(a) for a in args], input=stdin, capture_output=True, timeout=10)
        if check and (done.returncode != 0 or re.match(rb"(ERR|WRONGTYPE|NOAUTH|MOVED|ASK) ", done.stdout)):
            raise AssertionError(f"redis-cli {args}: {done.stdout!r} {done.stderr!r}")
        return done.stdout[:-1] if done.stdout.endswith(b"\n") else done.stdout

    def number(self, *args, **kwargs):
        return int(self.cli(*args, **kwargs))

    def time_ms(self):
        seconds, micros = self.cli("TIME").split(b"\n")
        return int(seconds) * 1000 + int(micros) // 1000

    def stop(self):
        self.process.terminate()
        self.process.wait(10)


def ctl(*args, python=None):
    """The tool's exit status, output and errors."""
    command = ([python, "-I", "-S", TOOL] if python else [TOOL]) + list(args)
    done = subprocess.run(command, capture_output=True, timeout=60)
    return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")


def sha256sum(data):
    """The digest as coreutils computes it (not hashlib, which the tool uses)."""
    return subprocess.run(["sha256sum"], input=data, capture_output=True, check=True).stdout.split()[0].decode()


class ToolTest(unittest.TestCase):
    server = None

    def run_ok(self, *args):
        status, out, err = ctl("--redis", self.server.address, *args)
        self.assertEqual(status, 0, f"rate-guard-ctl {' '.join(args)}: {err}")
        return out

    def value(self, key):
        """GET of a key given as bytes (None when there is none)."""
        if not self.server.number("EXISTS", stdin=key):
            return None
        return self.server.cli("GET", stdin=key).decode()


# ---- one Redis ---------------------------------------------------------------

class SingleRedis(ToolTest):
    @classmethod
    def setUpClass(cls):
        cls.socket = os.path.join(WORK, "single.sock")
        cls.server = RedisServer("--unixsocket", cls.socket)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def setUp(self):
        self.server.cli("FLUSHALL")

    def test_ban_ends_a_duration_after_redis_time_and_expires_then(self):
        before = self.server.time_ms()
        out = self.run_ok("ban", "per_ip", "203.0.113.7", "10m")
        after = self.server.time_ms()
        value = self.value(b"rate_guard:per_ip!rule:203.0.113.7")
        end = int(re.fullmatch(r"ban=([0-9]+)", value).group(1))
        self.assertGreaterEqual(end, before + 600000)
        self.assertLessEqual(end, after + 600000)
        self.assertEqual(self.server.number("PEXPIRETIME", "rate_guard:per_ip!rule:203.0.113.7"), end)
        self.assertAlmostEqual(self.server.number("PTTL", "rate_guard:per_ip!rule:203.0.113.7"), 600000, delta=2000)
        self.assertIn('banned key "203.0.113.7" in zone "per_ip" for 10m', out)

    def test_ban_end_is_taken_from_redis_not_from_the_local_clock(self):
        # The tool run with its clock three days behind: the ban still ends 1 min after Redis's TIME.
        skewed = ("import runpy, sys, time\n"
                  "real, real_ns = time.time, time.time_ns\n"
                  "time.time = lambda: real() - 3 * 86400\n"
                  "time.time_ns = lambda: real_ns() - 3 * 86400 * 10**9\n"
                  f"sys.argv = [{TOOL!r}] + sys.argv[1:]\n"
                  f"runpy.run_path({TOOL!r}, run_name='__main__')\n")
        before = self.server.time_ms()
        done = subprocess.run([sys.executable, "-c", skewed, "--redis", self.server.address,
                               "ban", "z", "k", "1m"], capture_output=True, timeout=30)
        after = self.server.time_ms()
        self.assertEqual(done.returncode, 0, done.stderr)
        end = self.server.number("PEXPIRETIME", "rate_guard:z!rule:k")
        self.assertGreaterEqual(end, before + 60000)
        self.assertLessEqual(end, after + 60000)

    def test_durations_are_written_as_nginx_writes_times(self):
        for text, ms in [("500ms", 500), ("60s", 60000), ("10m", 600000), ("1h", 3600000),
                         ("1d", 86400000), ("1h30m", 5400000), ("1m30s500ms", 90500), ("90", 90000),
                         ("2w", 1209600000), ("366d", 31622400000)]:
            with self.subTest(text):
                self.run_ok("ban", "z", text, text)
                left = self.server.number("PEXPIRETIME", f"rate_guard:z!rule:{text}") - self.server.time_ms()
                self.assertGreater(left, ms - 1000)
                self.assertLessEqual(left, ms)

    def test_a_ban_of_500ms_is_gone_after_it(self):
        self.run_ok("ban", "z", "k", "500ms")
        self.assertEqual(self.server.number("EXISTS", "rate_guard:z!rule:k"), 1)
        time.sleep(0.7)
        self.assertEqual(self.server.number("EXISTS", "rate_guard:z!rule:k"), 0)

    def test_a_new_ban_replaces_the_previous_one(self):
        self.run_ok("ban", "z", "k", "1h")
        out = self.run_ok("ban", "z", "k", "10m")
        self.assertAlmostEqual(self.server.number("PTTL", "rate_guard:z!rule:k"), 600000, delta=2000)
        self.assertIn("it replaces a ban with 59m", out)

    def test_limit_stores_rate_of_n_per_window_ms_and_no_ttl(self):
        for text, stored in [("100r/s", "rate=100/1000"), ("100r/m", "rate=100/60000"),
                             ("7r/h", "rate=7/3600000"), ("3r/d", "rate=3/86400000"),
                             ("5r/10s", "rate=5/10000"), ("20r/1m30s", "rate=20/90000"),
                             ("1000000000r/366d", "rate=1000000000/31622400000"),
                             ("unlimited", "rate=unlimited")]:
            with self.subTest(text):
                key = f"k-{text}".replace("/", "-")
                self.run_ok("limit", "z", key, text)
                self.assertEqual(self.value(f"rate_guard:z!rule:{key}".encode()), stored)
                self.assertEqual(self.server.number("PTTL", f"rate_guard:z!rule:{key}"), -1)

    def test_a_new_limit_replaces_the_previous_one(self):
        self.run_ok("limit", "z", "k", "100r/m")
        out = self.run_ok("limit", "z", "k", "unlimited")
        self.assertEqual(self.value(b"rate_guard:z!rule:k"), "rate=unlimited")
        self.assertIn("it replaces rate=100/60000", out)

    def test_limit_keeps_the_ban_and_removes_its_ttl(self):
        self.run_ok("ban", "z", "k", "1h")
        ban = self.value(b"rate_guard:z!rule:k")
        self.run_ok("limit", "z", "k", "100r/m")
        self.assertEqual(sorted(self.value(b"rate_guard:z!rule:k").split(" ")), sorted([ban, "rate=100/60000"]))
        self.assertEqual(self.server.number("PTTL", "rate_guard:z!rule:k"), -1)

    def test_ban_keeps_the_override(self):
        self.run_ok("limit", "z", "k", "unlimited")
        self.run_ok("ban", "z", "k", "1h")
        fields = self.value(b"rate_guard:z!rule:k").split(" ")
        self.assertIn("rate=unlimited", fields)
        self.assertEqual(len(fields), 2)
        self.assertTrue(any(re.fullmatch(r"ban=[0-9]+", f) for f in fields), fields)
        self.assertEqual(self.server.number("PTTL", "rate_guard:z!rule:k"), -1)

    def test_unban_leaves_the_override(self):
        self.run_ok("limit", "z", "k", "100r/m")
        self.run_ok("ban", "z", "k", "1h")
        out = self.run_ok("unban", "z", "k")
        self.assertEqual(self.value(b"rate_guard:z!rule:k"), "rate=100/60000")
        self.assertEqual(self.server.number("PTTL", "rate_guard:z!rule:k"), -1)
        self.assertIn('lifted the ban of key "k" in zone "z"; it had 59m', out)

    def test_unlimit_leaves_the_ban_expiring_at_its_end(self):
        self.run_ok("ban", "z", "k", "1h")
        ban = self.value(b"rate_guard:z!rule:k")
        self.run_ok("limit", "z", "k", "100r/m")
        self.run_ok("unlimit", "z", "k")
        self.assertEqual(self.value(b"rate_guard:z!rule:k"), ban)
        self.assertEqual(self.server.number("PEXPIRETIME", "rate_guard:z!rule:k"), int(ban[4:]))

    def test_unban_and_unlimit_of_the_last_field_delete_the_key(self):
        self.run_ok("ban", "z", "b", "1h")
        self.run_ok("unban", "z", "b")
        self.run_ok("limit", "z", "l", "1r/s")
        self.run_ok("unlimit", "z", "l")
        self.assertEqual(self.server.number("DBSIZE"), 0)

    def test_unban_and_unlimit_of_nothing_say_so_and_succeed(self):
        status, out, _ = ctl("--redis", self.server.address, "unban", "z", "k")
        self.assertEqual(status, 0)
        self.assertIn('no ban on key "k" in zone "z": nothing to lift', out)
        status, out, _ = ctl("--redis", self.server.address, "unlimit", "z", "k")
        self.assertEqual(status, 0)
        self.assertIn('no override on key "k" in zone "z": nothing to remove', out)
        self.assertEqual(self.server.number("DBSIZE"), 0)
        self.run_ok("limit", "z", "k", "5r/s")
        self.assertIn("no ban on", self.run_ok("unban", "z", "k"))
        self.assertEqual(self.value(b"rate_guard:z!rule:k"), "rate=5/1000")

    def test_fields_of_a_later_release_are_kept(self):
        self.server.cli("SET", "rate_guard:z!rule:k", "later=1 rate=5/1000")
        self.run_ok("ban", "z", "k", "1h")
        fields = self.value(b"rate_guard:z!rule:k").split(" ")
        self.assertIn("later=1", fields)
        self.assertIn("rate=5/1000", fields)
        self.run_ok("unlimit", "z", "k")
        self.run_ok("unban", "z", "k")
        self.assertEqual(self.value(b"rate_guard:z!rule:k"), "later=1")
        self.assertEqual(self.server.number("PTTL", "rate_guard:z!rule:k"), -1)

    def test_a_ban_that_is_over_is_no_ban(self):
        self.server.cli("SET", "rate_guard:z!rule:k", "ban=1000 rate=5/1000")
        self.assertIn("no ban on", self.run_ok("unban", "z", "k"))
        self.assertEqual(self.value(b"rate_guard:z!rule:k"), "rate=5/1000")
        self.server.cli("SET", "rate_guard:z!rule:k", "ban=1000 rate=5/1000")
        self.run_ok("unlimit", "z", "k")
        self.assertEqual(self.server.number("EXISTS", "rate_guard:z!rule:k"), 0)

    def test_show_prints_key_ban_left_and_override(self):
        self.run_ok("ban", "per_ip", "203.0.113.7", "1h")
        self.run_ok("limit", "per_ip", "203.0.113.7", "100r/m")
        value = self.value(b"rate_guard:per_ip!rule:203.0.113.7")
        out = self.run_ok("show", "per_ip", "203.0.113.7")
        self.assertIn('key:      "rate_guard:per_ip!rule:203.0.113.7"\n', out)
        self.assertRegex(out, r"ban:      59m[0-9]+s([0-9]+ms)? left, until 20[0-9-]+T[0-9:.]+Z by Redis's clock\n")
        self.assertIn("override: 100 per 1m (rate=100/60000)\n", out)
        self.assertIn("ttl:      none", out)
        self.assertEqual(self.value(b"rate_guard:per_ip!rule:203.0.113.7"), value)  # show changes nothing

    def test_show_of_a_key_without_rule(self):
        out = self.run_ok("show", "z", "k")
        self.assertEqual(out, 'key:      "rate_guard:z!rule:k"\nrule:     none (the zone\'s own limit applies)\n')
        self.assertEqual(self.server.number("DBSIZE"), 0)

    def test_prefix_option(self):
        self.run_ok("--prefix", "rl:", "ban", "z", "k", "1h")
        self.assertEqual(self.server.number("EXISTS", "rl:z!rule:k"), 1)

    def test_a_key_of_64_bytes_is_kept_raw(self):
        self.run_ok("ban", "z", "k" * 64, "1h")
        self.assertEqual(self.server.number("EXISTS", "rate_guard:z!rule:" + "k" * 64), 1)

    def test_a_key_of_65_bytes_goes_as_its_digest_as_in_the_module(self):
        # tests/unit/redis_key_test.cpp, KeyOf65BytesIsReplacedByItsDigest
        self.run_ok("ban", "z", "x" * 65, "1h")
        self.assertEqual(self.server.cli("KEYS", "*").decode(),
                         "rate_guard:z!rule:sha256:9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9")

    def test_a_long_key_goes_as_its_sha256(self):
        key = "Bearer " + "eyJhbGciOiJIUzI1NiJ9." * 12
        self.run_ok("ban", "api", key, "1h")
        self.assertEqual(self.server.cli("KEYS", "*").decode(), "rate_guard:api!rule:sha256:" + sha256sum(key.encode()))

    def test_a_binary_key_digest_as_in_the_module(self):
        # tests/unit/redis_key_test.cpp, DigestOfBinaryKeyIsLowercaseHexOfSha256: bytes 0..255
        escaped = "".join("\\x%02X" % b for b in range(256))
        self.run_ok("--escaped", "ban", "z", escaped, "1h")
        self.assertEqual(self.server.cli("KEYS", "*").decode(),
                         "rate_guard:z!rule:sha256:40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880")

    def test_ip_gives_the_4_bytes_of_an_ipv4_address(self):
        self.run_ok("--ip", "ban", "per_ip", "203.0.113.7", "1h")
        key = b"rate_guard:per_ip!rule:" + bytes([203, 0, 113, 7])
        self.assertEqual(self.server.number("EXISTS", stdin=key), 1)
        self.assertEqual(self.server.number("DBSIZE"), 1)
        out = self.run_ok("--ip", "show", "per_ip", "203.0.113.7")
        self.assertIn('key:      "rate_guard:per_ip!rule:\\xCB\\x00q\\x07"', out)

    def test_ip_gives_the_16_bytes_of_an_ipv6_address(self):
        self.run_ok("--ip", "ban", "per_ip", "2001:db8::1", "1h")
        key = b"rate_guard:per_ip!rule:" + bytes([0x20, 0x01, 0x0d, 0xb8] + [0] * 11 + [1])
        self.assertEqual(len(key), len("rate_guard:per_ip!rule:") + 16)
        self.assertEqual(self.server.number("EXISTS", stdin=key), 1)
        self.assertEqual(self.server.number("DBSIZE"), 1)

    def test_escaped_key_as_the_error_log_writes_it(self):
        self.run_ok("--escaped", "ban", "z", "ip:\\xCB\\x00q\\x07", "1h")
        self.assertEqual(self.server.number("EXISTS", stdin=b"rate_guard:z!rule:ip:\xcb\x00q\x07"), 1)

    def test_without_ip_an_address_is_text_for_remote_addr_zones(self):
        self.run_ok("ban", "per_ip", "2001:db8::1", "1h")
        self.assertEqual(self.server.number("EXISTS", "rate_guard:per_ip!rule:2001:db8::1"), 1)

    def test_cluster_flag_puts_the_key_in_a_hash_tag(self):
        self.run_ok("--cluster", "ban", "z", "k", "1h")
        self.run_ok("--cluster", "ban", "z", "a}b", "1h")
        self.assertEqual(sorted(self.server.cli("KEYS", "*").decode().split("\n")),
                         ["rate_guard:z!rule:{k}", "rate_guard:z!rule:{sha256:%s}" % sha256sum(b"a}b")])

    def test_db_option(self):
        self.run_ok("--db", "3", "limit", "z", "k", "1r/s")
        self.assertEqual(self.server.number("DBSIZE"), 0)
        self.assertEqual(self.server.cli("-n", "3", "GET", "rate_guard:z!rule:k"), b"rate=1/1000")

    def test_unix_socket(self):
        status, _, err = ctl("--redis", "unix:" + self.socket, "ban", "z", "k", "1h")
        self.assertEqual(status, 0, err)
        self.assertEqual(self.server.number("EXISTS", "rate_guard:z!rule:k"), 1)

    def test_bad_input_is_refused_with_status_2_and_nothing_written(self):
        refused = [
            ["ban", "z", "k", ""], ["ban", "z", "k", "0"], ["ban", "z", "k", "0s"], ["ban", "z", "k", "10x"],
            ["ban", "z", "k", "1m1h"], ["ban", "z", "k", "1h1h"], ["ban", "z", "k", "367d"],
            ["ban", "z", "k", "1.5h"], ["ban", "z", "k", "ms"], ["ban", "z", "k", "1m30"], ["ban", "z", "k", "-5m"],
            ["ban", "z", "k"], ["ban", "z", "k", "1h", "extra"],
            ["limit", "z", "k", "0r/s"], ["limit", "z", "k", "100r/x"], ["limit", "z", "k", "100/s"],
            ["limit", "z", "k", "r/s"], ["limit", "z", "k", "100"], ["limit", "z", "k", "1000000001r/s"],
            ["limit", "z", "k", "5r/0s"], ["limit", "z", "k", "100r/367d"], ["limit", "z", "k", "100r/ms"],
            ["limit", "z", "k", "unlimit"], ["limit", "z", "k", "-1r/s"], ["limit", "z", "k"],
            ["ban", "per ip", "k", "1h"], ["ban", "a:b", "k", "1h"], ["ban", "a@sw2", "k", "1h"],
            ["ban", "a!rule", "k", "1h"], ["ban", "", "k", "1h"], ["ban", "z" * 65, "k", "1h"],
            ["ban", "zoné", "k", "1h"], ["show", "a{b}", "k"],
            ["--ip", "ban", "z", "1.2.3", "1h"], ["--ip", "ban", "z", "::g", "1h"], ["--ip", "ban", "z", "host", "1h"],
            ["--escaped", "ban", "z", "\\q", "1h"], ["ban", "z", "", "1h"], ["--ip", "--escaped", "show", "z", "k"],
            ["--prefix", "a b", "show", "z", "k"], ["--prefix", "", "show", "z", "k"],
            ["--username", "u", "show", "z", "k"], ["--db", "x", "show", "z", "k"],
            ["--cluster", "--db", "1", "show", "z", "k"], ["--tls-ca", "/x", "show", "z", "k"],
            ["--tls", "--tls-ca", os.path.join(WORK, "missing.pem"), "show", "z", "k"],
            ["--redis", "unix:relative", "show", "z", "k"], ["--redis", "h:99999", "show", "z", "k"],
            ["frobnicate", "z", "k"], [],
        ]
        for args in refused:
            with self.subTest(args):
                status, out, err = ctl("--redis", self.server.address, *args)
                self.assertEqual(status, 2, out + err)
                self.assertTrue(err.strip(), "no message")
        self.assertEqual(self.server.number("DBSIZE"), 0)

    def test_messages_name_the_bad_token(self):
        for args, message in [(["ban", "z", "k", "10x"], 'invalid duration "10x"'),
                              (["ban", "z", "k", "367d"], 'duration must be between 1ms and 366d in "367d"'),
                              (["limit", "z", "k", "100r/x"], 'invalid rate "100r/x"'),
                              (["limit", "z", "k", "0r/s"], 'limit must be between 1 and 1000000000 in "0r/s"'),
                              (["ban", "a:b", "k", "1h"], 'invalid zone name "a:b"'),
                              (["--ip", "ban", "z", "1.2.3", "1h"], '"1.2.3" is not an IPv4 or IPv6 address')]:
            with self.subTest(args):
                self.assertIn(message, ctl("--redis", self.server.address, *args)[2])

    def test_unreachable_redis_is_status_1(self):
        status, _, err = ctl("--redis", f"127.0.0.1:{free_ports(1)[0]}", "show", "z", "k")
        self.assertEqual(status, 1)
        self.assertIn("cannot connect to Redis at 127.0.0.1:", err)

    def test_runs_on_the_standard_library_alone(self):
        # -S: no site-packages; -I: no user site, no environment.
        python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
        status, _, err = ctl("--redis", self.server.address, "ban", "z", "k", "1h", python=python)
        self.assertEqual(status, 0, err)
        self.assertEqual(self.server.number("EXISTS", "rate_guard:z!rule:k"), 1)


# ---- a password, ACL users ---------------------------------------------------

class Authentication(ToolTest):
    @classmethod
    def setUpClass(cls):
        cls.server = RedisServer("--requirepass", "s3cret", cli_args=("--pass", "s3cret", "--no-auth-warning"))
        cls.server.cli("ACL", "SETUSER", "ops", "on", ">opspass", "~*", "+@all")
        cls.server.cli("ACL", "SETUSER", "noinfo", "on", ">np", "~*", "+@all", "-info")

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_without_password_redis_refuses(self):
        status, _, err = ctl("--redis", self.server.address, "ban", "z", "k", "1h")
        self.assertEqual(status, 1)
        self.assertIn("NOAUTH", err)

    def test_wrong_password_is_refused(self):
        status, _, err = ctl("--redis", self.server.address, "--password", "nope", "show", "z", "k")
        self.assertEqual(status, 1)
        self.assertIn("WRONGPASS", err)

    def test_password(self):
        self.assertEqual(ctl("--redis", self.server.address, "--password", "s3cret", "ban", "z", "pw", "1h")[0], 0)
        self.assertEqual(self.server.number("EXISTS", "rate_guard:z!rule:pw"), 1)

    def test_acl_user(self):
        status, _, err = ctl("--redis", self.server.address, "--username", "ops", "--password", "opspass",
                             "limit", "z", "acl", "1r/s")
        self.assertEqual(status, 0, err)
        self.assertEqual(self.server.cli("GET", "rate_guard:z!rule:acl"), b"rate=1/1000")

    def test_a_user_without_info_gets_the_plain_layout_and_a_warning(self):
        status, _, err = ctl("--redis", self.server.address, "--username", "noinfo", "--password", "np",
                             "ban", "z", "noinfo", "1h")
        self.assertEqual(status, 0, err)
        self.assertIn("assuming no Redis Cluster", err)
        self.assertEqual(self.server.number("EXISTS", "rate_guard:z!rule:noinfo"), 1)


# ---- Redis Cluster -----------------------------------------------------------

class Cluster(ToolTest):
    """Three masters, no replicas, as tests/e2e/lib.sh's start_cluster starts
    them (a cluster bus port of its own, nodes.conf in each node's directory)."""

    @classmethod
    def setUpClass(cls):
        cls.nodes = []
        try:
            for bus in free_ports(3):
                cls.nodes.append(RedisServer("--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                                             "--cluster-node-timeout", "1000", "--cluster-port", str(bus)))
            created = subprocess.run(["redis-cli", "--cluster", "create", *[n.address for n in cls.nodes],
                                      "--cluster-replicas", "0", "--cluster-yes"], capture_output=True, timeout=60)
            if created.returncode != 0:
                raise RuntimeError(f"redis-cli --cluster create: {created.stdout[-500:]!r}")
            deadline = time.monotonic() + 30
            while not all(b"cluster_state:ok" in n.cli("CLUSTER", "INFO") and len(cls.owners(n)) == 3
                          for n in cls.nodes):
                if time.monotonic() > deadline:
                    raise RuntimeError("the cluster did not become stable")
                time.sleep(0.1)
        except BaseException:
            cls.tearDownClass()
            raise
        cls.by_port = {n.port: n for n in cls.nodes}

    @classmethod
    def tearDownClass(cls):
        for node in cls.nodes:
            node.stop()

    @staticmethod
    def owners(node):
        """{(first, last): port} of the masters, as CLUSTER NODES on `node` says."""
        ranges = {}
        for line in node.cli("CLUSTER", "NODES").decode().splitlines():
            parts = line.split()
            if "master" in parts[2]:
                port = int(re.match(r"[^:]*:([0-9]+)", parts[1]).group(1))
                for slots in parts[8:]:
                    if not slots.startswith("["):
                        first, _, last = slots.partition("-")
                        ranges[(int(first), int(last or first))] = port
        return ranges

    def owner(self, slot):
        return self.by_port[next(p for (a, b), p in self.owners(self.nodes[0]).items() if a <= slot <= b)]

    def slot(self, key):
        return self.nodes[0].number("CLUSTER", "KEYSLOT", stdin=key)

    def ban_through(self, seed, *args):
        status, out, err = ctl("--redis", seed.address, *args)
        self.assertEqual(status, 0, err)
        return out

    def test_rule_key_shares_the_slot_of_the_state_key_and_moved_is_followed(self):
        sha = sha256sum(b"a}b")
        for options, key, tag in [
                ([], "203.0.113.7", b"203.0.113.7"),
                (["--ip"], "198.51.100.9", bytes([198, 51, 100, 9])),
                ([], "x" * 100, b"sha256:" + sha256sum(b"x" * 100).encode()),
                ([], "a}b", b"sha256:" + sha.encode())]:
            with self.subTest(key):
                rule = b"rate_guard:z!rule:{" + tag + b"}"
                state = b"rate_guard:z@sw2:{" + tag + b"}"
                self.assertEqual(self.slot(rule), self.slot(state))
                owner = self.owner(self.slot(rule))
                seed = next(n for n in self.nodes if n is not owner)  # it answers MOVED
                # No --cluster: the tool finds cluster_enabled:1 itself.
                out = self.ban_through(seed, *options, "ban", "z", key, "1h")
                self.assertIn('key:      "rate_guard:z!rule:{', out)
                self.assertEqual(owner.number("EXISTS", stdin=rule), 1)
                self.assertEqual(seed.cli("EXISTS", stdin=rule, check=False)[:5], b"MOVED")
                self.assertIn("ban:      59m", self.ban_through(seed, *options, "show", "z", key))

    def test_ip_key_holding_a_brace_goes_as_its_digest(self):
        # 125.0.0.1: its first byte is '}'.
        self.ban_through(self.nodes[0], "--ip", "ban", "z", "125.0.0.1", "1h")
        rule = b"rate_guard:z!rule:{sha256:" + sha256sum(bytes([125, 0, 0, 1])).encode() + b"}"
        self.assertEqual(self.owner(self.slot(rule)).number("EXISTS", stdin=rule), 1)

    def test_ask_is_followed_while_the_slot_migrates(self):
        rule = b"rate_guard:z!rule:{migrating}"
        slot = self.slot(rule)
        source = self.owner(slot)
        target = next(n for n in self.nodes if n is not source)
        target.cli("CLUSTER", "SETSLOT", slot, "IMPORTING", source.cli("CLUSTER", "MYID").decode())
        source.cli("CLUSTER", "SETSLOT", slot, "MIGRATING", target.cli("CLUSTER", "MYID").decode())
        try:
            self.ban_through(source, "ban", "z", "migrating", "1h")
            # The source does not hold it: it answered ASK, the key went to the target.
            self.assertEqual(source.number("CLUSTER", "COUNTKEYSINSLOT", slot), 0)
            self.assertEqual(target.number("CLUSTER", "COUNTKEYSINSLOT", slot), 1)
        finally:
            done = subprocess.run(["redis-cli", "-p", str(target.port)], input=b"ASKING\nDEL " + rule + b"\n",
                                  capture_output=True, timeout=10)
            self.assertEqual(done.returncode, 0)
            for node in (source, target):
                node.cli("CLUSTER", "SETSLOT", slot, "STABLE")

    def test_db_is_refused_on_a_cluster(self):
        status, _, err = ctl("--redis", self.nodes[0].address, "--db", "1", "show", "z", "k")
        self.assertEqual(status, 2)
        self.assertIn("only database 0", err)


# ---- TLS ---------------------------------------------------------------------

class Tls(ToolTest):
    @classmethod
    def setUpClass(cls):
        certs = os.path.join(WORK, "certs")
        subprocess.run([MAKE_CERTS, certs], check=True, timeout=60)
        cls.certs = certs
        tls = {"ca": cls.cert("ca.pem"), "cert": cls.cert("server.pem"), "key": cls.cert("server.key")}
        cls.server = RedisServer("--tls-auth-clients", "no", tls=tls)
        cls.mutual = RedisServer("--tls-auth-clients", "yes", tls=tls,
                                 cli_args=("--cert", cls.cert("client.pem"), "--key", cls.cert("client.key")))

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.mutual.stop()

    @classmethod
    def cert(cls, name):
        return os.path.join(cls.certs, name)

    def tls_ctl(self, server, *args):
        return ctl("--redis", server.address, "--tls", "--tls-ca", self.cert("ca.pem"), *args)

    def test_round_trip_over_tls(self):
        status, _, err = self.tls_ctl(self.server, "limit", "z", "tls", "10r/s")
        self.assertEqual(status, 0, err)
        self.assertEqual(self.server.cli("GET", "rate_guard:z!rule:tls"), b"rate=10/1000")
        status, out, _ = self.tls_ctl(self.server, "show", "z", "tls")
        self.assertIn("override: 10 per 1s", out)

    def test_name_checked_in_the_certificate(self):
        self.assertEqual(self.tls_ctl(self.server, "--tls-name", "redis.test", "show", "z", "k")[0], 0)
        status, _, err = self.tls_ctl(self.server, "--tls-name", "other.test", "show", "z", "k")
        self.assertEqual(status, 1)
        self.assertIn("TLS to Redis at 127.0.0.1", err)
        self.assertIn("other.test", err)

    def test_certificate_of_another_ca_is_refused(self):
        status, _, err = ctl("--redis", self.server.address, "--tls", "--tls-ca", self.cert("other_ca.pem"),
                             "show", "z", "k")
        self.assertEqual(status, 1)
        self.assertIn("TLS to Redis at", err)

    def test_plain_tcp_to_a_tls_port_fails(self):
        self.assertEqual(ctl("--redis", self.server.address, "show", "z", "k")[0], 1)

    def test_client_certificate(self):
        self.assertEqual(self.tls_ctl(self.mutual, "show", "z", "k")[0], 1)
        status, _, err = self.tls_ctl(self.mutual, "--tls-cert", self.cert("client.pem"),
                                      "--tls-key", self.cert("client.key"), "ban", "z", "mtls", "1h")
        self.assertEqual(status, 0, err)
        self.assertEqual(self.mutual.number("EXISTS", "rate_guard:z!rule:mtls"), 1)


def main():
    global WORK
    for needed in ("redis-server", "redis-cli", "sha256sum", "openssl"):
        if not shutil.which(needed):
            print(f"rate_guard_ctl_test: {needed} not found", file=sys.stderr)
            return 1
    WORK = tempfile.mkdtemp(prefix="rate_guard-ctl.")
    result = unittest.main(exit=False, verbosity=2).result
    passed = result.wasSuccessful()
    if passed and not os.environ.get("RATE_GUARD_KEEP"):
        shutil.rmtree(WORK, ignore_errors=True)
    else:
        print(f"work directory kept: {WORK}", file=sys.stderr)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
