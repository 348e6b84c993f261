#!/usr/bin/env python3
"""HTTP/1.1 load client with per-request accounting (Python 3 standard library only).

Every request it sends is recorded once, with its send time, answer time and
outcome; it never retries.  Outcomes:

  answered      a complete HTTP answer was read (status, X-RG-Status, ...)
  unread_close  the server closed a reused keep-alive connection before any
                byte of the answer: the HTTP keep-alive race of RFC 9112
                9.3.1 (a real client retries such a request); the caller checks
                against nginx's access log that nginx never read it
  lost          anything else: a partial answer, a reset after some bytes, a
                fresh connection closed before answering
  timeout       no complete answer within --req-timeout (a hang)
  aborted       (abort mode) the client closed on purpose before the answer

Modes:
  load      N keep-alive connections (optionally some with Connection: close),
            closed loop with pacing, for --duration seconds
  pipeline  each connection writes --depth requests in ONE write, then reads
            --depth answers and checks that they come back in order
  slow      each connection sends its requests one byte at a time over
            --slow-seconds, --per-conn requests on one keep-alive connection
  abort     --requests requests, each on a new connection, closed (FIN, or RST
            with --rst-fraction) --abort-min..--abort-max seconds after sending

SIGUSR1 ends the sending at once (the answers in flight are still read).
Records go to --out as tab-separated lines:
  conn seq id t_send t_done outcome status rg_status has_ratelimit_headers req_id_echo
Times are time.monotonic() seconds (CLOCK_MONOTONIC: comparable across
processes).  A JSON summary is printed on stdout.
"""

import argparse
import errno
import json
import random
import selectors
import signal
import socket
import struct
import sys
import time

mono = time.monotonic


class ParseError(Exception):
    pass


def parse_response(buf, eof=False):
    """(status, headers, consumed) of the first complete answer in buf, or None."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 65536:
            raise ParseError("header too long")
        return None
    head = bytes(buf[:end]).decode("latin-1")
    lines = head.split("\r\n")
    first = lines[0].split(" ", 2)
    if len(first) < 2 or not first[0].startswith("HTTP/1."):
        raise ParseError("bad status line %r" % lines[0][:80])
    try:
        status = int(first[1])
    except ValueError:
        raise ParseError("bad status %r" % lines[0][:80])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    start = end + 4
    if status in (204, 304) or 100 <= status < 200:
        return status, headers, start
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(buf) < start + n:
            return None
        return status, headers, start + n
    if "chunked" in headers.get("transfer-encoding", "").lower():
        pos = start
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                return None
            size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
            pos = line_end + 2
            if size == 0:
                trailer_end = buf.find(b"\r\n\r\n", pos - 2)
                if trailer_end < 0:
                    return None
                return status, headers, trailer_end + 4
            if len(buf) < pos + size + 2:
                return None
            pos += size + 2
    if eof:
        return status, headers, len(buf)
    return None


class Request:
    __slots__ = ("conn", "seq", "rid", "t_first", "t_send", "t_done", "outcome", "status",
                 "rg", "rl", "echo", "data")

    def __init__(self, conn, seq, rid, data):
        self.conn = conn
        self.seq = seq
        self.rid = rid
        self.data = data
        self.t_first = 0.0
        self.t_send = 0.0
        self.t_done = 0.0
        self.outcome = ""
        self.status = 0
        self.rg = "-"
        self.rl = 0
        self.echo = "-"


class Conn:
    def __init__(self, cid):
        self.cid = cid
        self.sock = None
        self.state = "new"  # new, connecting, open, closed
        self.buf = bytearray()
        self.wbuf = b""
        self.answered = 0  # answers read on this TCP connection
        self.outstanding = []  # sent requests, oldest first
        self.next_send = 0.0
        self.next_byte = 0.0  # slow mode
        self.seq = 0
        self.close_at = None  # abort mode
        self.rst = False
        self.done = False  # no more requests planned
        self.key = None
        self.close_after_each = False
        self.connect_at = 0.0


class Engine:
    def __init__(self, args):
        self.a = args
        self.sel = selectors.DefaultSelector()
        self.records = []
        self.connect_errors = 0
        self.parse_errors = 0
        self.order_errors = []
        self.sent = 0
        self.rand = random.Random(args.seed)
        self.extra = [h for h in args.header]
        self.stop_now = False
        signal.signal(signal.SIGUSR1, self.on_stop_signal)

    def on_stop_signal(self, signum, frame):
        self.stop_now = True

    # ---- requests -------------------------------------------------------
    def build(self, conn, close):
        a = self.a
        conn.seq += 1
        rid = "%s%d-%d" % (a.id_prefix, conn.cid, conn.seq)
        if conn.key is not None:
            key = conn.key
        else:
            key = "%s%d" % (a.key_prefix, self.rand.randrange(a.keys))
        lines = ["GET %s?id=%s HTTP/1.1" % (a.path, rid), "Host: 127.0.0.1", "X-Key: " + key]
        lines += self.extra
        if close:
            lines.append("Connection: close")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode()
        return Request(conn.cid, conn.seq, rid, data)

    def record(self, req, outcome, now, status=0, headers=None):
        req.outcome = outcome
        req.t_done = now
        req.status = status
        if headers is not None:
            req.rg = headers.get("x-rg-status", "-") or "-"
            req.rl = 1 if "x-ratelimit-limit" in headers else 0
            req.echo = headers.get("x-req-id", "-") or "-"
        self.records.append(req)

    # ---- sockets --------------------------------------------------------
    def open(self, conn, now):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock = s
        conn.buf = bytearray()
        conn.wbuf = b""
        conn.answered = 0
        ports = self.a.port
        rc = s.connect_ex((self.a.host, ports[conn.cid % len(ports)]))
        if rc not in (0, errno.EINPROGRESS):
            self.connect_errors += 1
            s.close()
            conn.sock = None
            conn.state = "new"
            conn.connect_at = now + 0.05
            return
        conn.state = "connecting"
        self.sel.register(s, selectors.EVENT_WRITE, conn)

    def close(self, conn, rst=False):
        if conn.sock is not None:
            try:
                self.sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
            if rst:
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.sock.close()
        conn.sock = None
        conn.state = "closed" if conn.done else "new"

    def want_write(self, conn, on):
        mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        self.sel.modify(conn.sock, mask, conn)

    def fail_outstanding(self, conn, now, eof_bytes):
        """The connection ended: what the outstanding requests became."""
        for i, req in enumerate(conn.outstanding):
            if i == 0 and eof_bytes == 0 and conn.answered > 0 and self.a.mode == "load":
                self.record(req, "unread_close", now)
            else:
                self.record(req, "lost", now)
        conn.outstanding = []

    def send(self, conn, req, now):
        conn.outstanding.append(req)
        self.sent += 1
        req.t_first = now
        if self.a.mode == "slow":
            conn.wbuf += req.data
            conn.next_byte = now
            return
        req.t_send = now
        conn.wbuf += req.data
        self.flush(conn, now)

    def flush(self, conn, now):
        try:
            while conn.wbuf:
                n = conn.sock.send(conn.wbuf)
                conn.wbuf = conn.wbuf[n:]
        except BlockingIOError:
            self.want_write(conn, True)
            return
        except OSError:
            self.lost_connection(conn, now)
            return
        self.want_write(conn, False)

    def lost_connection(self, conn, now):
        self.fail_outstanding(conn, now, len(conn.buf))
        self.close(conn)

    def on_readable(self, conn, now):
        try:
            data = conn.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = None
        if data:
            conn.buf += data
            self.consume(conn, now, eof=False)
            return
        # EOF or reset
        if conn.buf and conn.outstanding:
            self.consume(conn, now, eof=True)
        self.lost_connection(conn, now)

    def consume(self, conn, now, eof):
        while conn.buf and conn.outstanding:
            try:
                parsed = parse_response(conn.buf, eof)
            except (ParseError, ValueError):
                self.parse_errors += 1
                self.lost_connection(conn, now)
                return
            if parsed is None:
                return
            status, headers, used = parsed
            del conn.buf[:used]
            req = conn.outstanding.pop(0)
            conn.answered += 1
            self.record(req, "answered", now, status, headers)
            if self.a.mode == "abort":
                conn.close_at = None  # answered before the client left
            if self.a.mode == "pipeline" and req.echo != req.rid:
                self.order_errors.append((req.rid, req.echo))
            if headers.get("connection", "").lower() == "close" or conn.close_after_each:
                if not conn.outstanding:
                    self.close(conn)
                    return
        if conn.buf and not conn.outstanding:
            self.parse_errors += 1  # bytes nobody asked for
            self.lost_connection(conn, now)

    # ---- the loop -------------------------------------------------------
    def run(self):
        a = self.a
        start = mono()
        conns = [Conn(i) for i in range(a.conns)]
        self.stop_sending = start + a.duration
        hard_stop = self.stop_sending + a.req_timeout + 1.0
        n_close = int(round(a.conn_close_fraction * a.conns))
        for i, c in enumerate(conns):
            c.close_after_each = i < n_close
            c.next_send = start + (self.rand.random() / a.rate if a.rate > 0 else 0)
            if a.mode in ("pipeline", "slow", "abort"):
                c.key = "%s%d" % (a.key_prefix, i) if a.key_per_conn else None
        # abort mode: a pool of slots doing `requests` requests in all
        budget = a.requests if a.mode == "abort" else a.max_requests
        per_conn_left = {c.cid: a.per_conn for c in conns}
        while True:
            now = mono()
            stop_sending = self.stop_sending
            if self.stop_now:
                # SIGUSR1: stop sending; the requests in flight still get their answers
                self.stop_now = False
                self.stop_sending = stop_sending = min(stop_sending, now)
                hard_stop = min(hard_stop, now + a.req_timeout + 1.0)
            if now >= hard_stop:
                for c in conns:
                    for req in c.outstanding:
                        self.record(req, "timeout", now)
                    c.outstanding = []
                    self.close(c)
                break
            active = False
            wake = now + 0.05
            for c in conns:
                if c.state == "closed":
                    continue
                # per-request timeout: a hang
                if c.outstanding and now - c.outstanding[0].t_first > a.req_timeout + (
                        a.slow_seconds if a.mode == "slow" else 0):
                    for req in c.outstanding:
                        self.record(req, "timeout", now)
                    c.outstanding = []
                    self.close(c)
                if a.mode == "abort" and c.close_at is not None:
                    if now >= c.close_at:
                        for req in c.outstanding:
                            self.record(req, "aborted", now)
                        c.outstanding = []
                        self.close(c, rst=c.rst)
                        c.close_at = None
                    else:
                        wake = min(wake, c.close_at)
                can_send = (now < stop_sending and self.sent < budget and not c.done)
                if a.mode in ("pipeline", "slow") and per_conn_left[c.cid] <= 0:
                    can_send = False
                if c.outstanding or c.wbuf:
                    active = True
                if c.state == "new":
                    if can_send and now >= c.connect_at and (a.mode != "load" or now >= c.next_send - 0.01):
                        self.open(c, now)
                        active = True
                    elif can_send:
                        active = True
                        wake = min(wake, max(c.connect_at, c.next_send))
                    continue
                if c.state != "open":
                    if c.state == "connecting":
                        active = True
                    continue
                if a.mode == "slow" and c.wbuf and now >= c.next_byte:
                    self.slow_byte(c, now)
                    if c.wbuf:
                        wake = min(wake, c.next_byte)
                    continue
                if c.outstanding or c.wbuf:
                    if a.mode == "slow" and c.wbuf:
                        wake = min(wake, c.next_byte)
                    continue
                if not can_send:
                    if a.mode in ("pipeline", "slow", "abort"):
                        # finished with this connection
                        if a.mode != "abort" or c.close_at is None:
                            self.close(c)
                    continue
                active = True
                if a.mode == "load":
                    if now < c.next_send:
                        wake = min(wake, c.next_send)
                        continue
                    c.next_send = max(now, c.next_send + (1.0 / a.rate if a.rate > 0 else 0))
                    self.send(c, self.build(c, c.close_after_each), now)
                elif a.mode == "pipeline":
                    reqs = [self.build(c, False) for _ in range(a.depth)]
                    per_conn_left[c.cid] -= 1
                    blob = b"".join(r.data for r in reqs)
                    for r in reqs:
                        r.t_first = r.t_send = now
                        c.outstanding.append(r)
                        self.sent += 1
                    c.wbuf += blob
                    self.flush(c, now)
                elif a.mode == "slow":
                    per_conn_left[c.cid] -= 1
                    self.send(c, self.build(c, False), now)
                    self.slow_byte(c, now)
                elif a.mode == "abort":
                    req = self.build(c, True)
                    self.send(c, req, now)
                    c.close_at = now + self.rand.uniform(a.abort_min, a.abort_max)
                    c.rst = self.rand.random() < a.rst_fraction
                    wake = min(wake, c.close_at)
            if not active and (now >= stop_sending or self.sent >= budget):
                break
            if a.mode in ("pipeline", "slow") and all(
                    per_conn_left[c.cid] <= 0 and not c.outstanding and not c.wbuf for c in conns):
                break
            timeout = max(0.0, min(wake, hard_stop) - mono())
            for key, mask in self.sel.select(timeout):
                c = key.data
                now = mono()
                if c.sock is None:
                    continue
                if c.state == "connecting":
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        self.connect_errors += 1
                        self.close(c)
                        c.connect_at = now + 0.05
                        continue
                    c.state = "open"
                    self.sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                if mask & selectors.EVENT_READ:
                    self.on_readable(c, now)
                if c.sock is not None and mask & selectors.EVENT_WRITE and c.wbuf and a.mode != "slow":
                    self.flush(c, now)
        for c in conns:
            self.close(c)
        return start

    def slow_byte(self, c, now):
        try:
            n = c.sock.send(c.wbuf[:1])
        except BlockingIOError:
            n = 0
        except OSError:
            self.lost_connection(c, now)
            return
        c.wbuf = c.wbuf[n:]
        if not c.wbuf:
            c.outstanding[-1].t_send = now  # the request is complete now
        else:
            total = len(c.outstanding[-1].data)
            c.next_byte = now + self.a.slow_seconds / total


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", required=True, type=lambda v: [int(x) for x in v.split(",")],
                   help="port, or ports separated by commas: connection i uses port i mod n")
    p.add_argument("--mode", choices=["load", "pipeline", "slow", "abort"], default="load")
    p.add_argument("--path", default="/load/ok.txt")
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--rate", type=float, default=100.0, help="requests/s per connection (0: no pacing)")
    p.add_argument("--duration", type=float, default=5.0)
    p.add_argument("--max-requests", type=int, default=200000)
    p.add_argument("--req-timeout", type=float, default=3.0)
    p.add_argument("--keys", type=int, default=32)
    p.add_argument("--key-prefix", default="k")
    p.add_argument("--key-per-conn", action="store_true", help="one fixed key per connection")
    p.add_argument("--id-prefix", default="c")
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--conn-close-fraction", type=float, default=0.0)
    p.add_argument("--depth", type=int, default=10, help="pipeline: requests per write")
    p.add_argument("--per-conn", type=int, default=1, help="pipeline/slow: rounds per connection")
    p.add_argument("--slow-seconds", type=float, default=1.0)
    p.add_argument("--requests", type=int, default=1000, help="abort: requests in all")
    p.add_argument("--abort-min", type=float, default=0.0)
    p.add_argument("--abort-max", type=float, default=0.0)
    p.add_argument("--rst-fraction", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    engine = Engine(args)
    start = engine.run()
    with open(args.out, "w") as f:
        for r in engine.records:
            f.write("%d\t%d\t%s\t%.6f\t%.6f\t%s\t%d\t%s\t%d\t%s\n" % (
                r.conn, r.seq, r.rid, r.t_send or r.t_first, r.t_done, r.outcome, r.status, r.rg, r.rl,
                r.echo))
    outcomes = {}
    for r in engine.records:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    json.dump({"start": start, "sent": engine.sent, "recorded": len(engine.records),
               "outcomes": outcomes, "connect_errors": engine.connect_errors,
               "parse_errors": engine.parse_errors, "order_errors": engine.order_errors[:20]},
              sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
