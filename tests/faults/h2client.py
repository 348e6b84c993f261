#!/usr/bin/env python3
"""A minimal HTTP/2 (prior knowledge, h2c) client with per-stream accounting.

Python 3 standard library only.  It speaks just enough HTTP/2 for a load test
against nginx: the connection preface, SETTINGS (and their ACK), PING ACK,
HEADERS with an HPACK block of literals (no Huffman, no dynamic table),
RST_STREAM, GOAWAY.  Of the answer it reads the :status, which nginx encodes
either as a static-table index or as a raw literal; the stream ends with
END_STREAM.  Flow control: the client opens the connection and stream windows
to 2^31-1 at once, so it never has to send WINDOW_UPDATE again.

Modes:
  load   --conns connections, each with at most --streams streams in flight,
         paced at --rate new streams per second per connection, --duration s
  abort  --conns connections in turn; each opens --streams streams at once,
         waits --abort-after s, resets every other stream (RST_STREAM CANCEL)
         and closes the TCP connection with the rest still in flight

Records (--out): conn stream t_send t_done outcome status
  outcome: answered | reset_by_server | refused (GOAWAY, never processed) |
           lost | timeout | aborted
A JSON summary is printed on stdout.
"""

import argparse
import json
import random
import selectors
import socket
import struct
import sys
import time

mono = time.monotonic
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 3, 4, 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY = 0x1, 0x1, 0x4, 0x8, 0x20
STATIC_STATUS = {0x88: 200, 0x89: 204, 0x8a: 206, 0x8b: 304, 0x8c: 400, 0x8d: 404, 0x8e: 500}
MAX_WINDOW = 2 ** 31 - 1


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_int(value, prefix_bits, first):
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = [first | limit]
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_string(text):
    data = text.encode()
    return hpack_int(len(data), 7, 0) + data


def request_block(path, authority, headers):
    block = b"\x82\x86"  # :method GET, :scheme http (static table)
    block += hpack_int(4, 4, 0x00) + hpack_string(path)  # :path, literal without indexing
    block += hpack_int(1, 4, 0x00) + hpack_string(authority)  # :authority
    for name, value in headers:
        block += b"\x00" + hpack_string(name.lower()) + hpack_string(value)
    return block


def status_of(block):
    """The :status of an nginx HEADERS block (its first field)."""
    if not block:
        return 0
    first = block[0]
    if first in STATIC_STATUS:
        return STATIC_STATUS[first]
    if first == 0x48 and len(block) >= 5 and block[1] == 3:  # incremental indexing, name :status, raw "NNN"
        return int(block[2:5])
    return -1


class Stream:
    __slots__ = ("sid", "t_send", "t_done", "status", "outcome")

    def __init__(self, sid, now):
        self.sid = sid
        self.t_send = now
        self.t_done = 0.0
        self.status = 0
        self.outcome = ""


class Conn:
    def __init__(self, cid):
        self.cid = cid
        self.sock = None
        self.buf = bytearray()
        self.wbuf = bytearray()
        self.next_sid = 1
        self.open_streams = {}
        self.next_send = 0.0
        self.goaway = False
        self.preface_sent = False


class Client:
    def __init__(self, a):
        self.a = a
        self.sel = selectors.DefaultSelector()
        self.records = []  # (cid, Stream)
        self.sent = 0
        self.protocol_errors = []
        self.rand = random.Random(a.seed)

    def connect(self, c):
        s = socket.create_connection((self.a.host, self.a.port), timeout=2)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sock = s
        c.buf = bytearray()
        c.wbuf = bytearray(PREFACE)
        # SETTINGS: INITIAL_WINDOW_SIZE = 2^31-1; then open the connection window.
        c.wbuf += frame(SETTINGS, 0, 0, struct.pack(">HI", 4, MAX_WINDOW))
        c.wbuf += frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - 65535))
        c.next_sid = 1
        c.goaway = False
        self.sel.register(s, selectors.EVENT_READ, c)

    def close(self, c, outcome_for_open, now):
        for st in c.open_streams.values():
            self.finish(c, st, outcome_for_open, now)
        c.open_streams = {}
        if c.sock is not None:
            try:
                self.sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
            c.sock = None

    def finish(self, c, st, outcome, now, status=0):
        st.outcome = outcome
        st.t_done = now
        if status:
            st.status = status
        self.records.append((c.cid, st))

    def open_stream(self, c, now, key):
        sid = c.next_sid
        c.next_sid += 2
        st = Stream(sid, now)
        c.open_streams[sid] = st
        path = "%s?id=h2-%d-%d" % (self.a.path, c.cid, sid)
        block = request_block(path, "127.0.0.1", [("x-key", key)])
        c.wbuf += frame(HEADERS, END_STREAM | END_HEADERS, sid, block)
        self.sent += 1
        return st

    def flush(self, c, now):
        if c.sock is None or not c.wbuf:
            return
        try:
            n = c.sock.send(c.wbuf)
            del c.wbuf[:n]
        except BlockingIOError:
            pass
        except OSError:
            self.close(c, "lost", now)
            return
        if c.sock is not None:
            mask = selectors.EVENT_READ | (selectors.EVENT_WRITE if c.wbuf else 0)
            self.sel.modify(c.sock, mask, c)

    def on_read(self, c, now):
        try:
            data = c.sock.recv(262144)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self.close(c, "refused" if c.goaway else "lost", now)
            return
        c.buf += data
        while len(c.buf) >= 9:
            length = int.from_bytes(c.buf[0:3], "big")
            if len(c.buf) < 9 + length:
                break
            kind, flags = c.buf[3], c.buf[4]
            sid = int.from_bytes(c.buf[5:9], "big") & 0x7FFFFFFF
            payload = bytes(c.buf[9:9 + length])
            del c.buf[:9 + length]
            self.on_frame(c, kind, flags, sid, payload, now)
            if c.sock is None:
                return

    def on_frame(self, c, kind, flags, sid, payload, now):
        if kind == SETTINGS:
            if not flags & ACK:
                c.wbuf += frame(SETTINGS, ACK, 0)
        elif kind == PING:
            if not flags & ACK:
                c.wbuf += frame(PING, ACK, 0, payload)
        elif kind == GOAWAY:
            last = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
            c.goaway = True
            for s in sorted(c.open_streams):
                if s > last:
                    self.finish(c, c.open_streams.pop(s), "refused", now)
        elif kind == HEADERS:
            st = c.open_streams.get(sid)
            if st is None:
                return
            body = payload
            if flags & PADDED:
                pad = body[0]
                body = body[1:len(body) - pad]
            if flags & PRIORITY:
                body = body[5:]
            if st.status == 0:
                st.status = status_of(body)
            if flags & END_STREAM:
                del c.open_streams[sid]
                self.finish(c, st, "answered", now)
        elif kind == DATA:
            st = c.open_streams.get(sid)
            if st is not None and flags & END_STREAM:
                del c.open_streams[sid]
                self.finish(c, st, "answered" if st.status else "lost", now)
        elif kind == RST_STREAM:
            st = c.open_streams.pop(sid, None)
            if st is not None:
                self.finish(c, st, "reset_by_server", now)
        # WINDOW_UPDATE, CONTINUATION, PRIORITY: nothing to do

    def run_load(self):
        a = self.a
        start = mono()
        stop_sending = start + a.duration
        hard_stop = stop_sending + a.req_timeout + 1
        conns = [Conn(i) for i in range(a.conns)]
        for c in conns:
            self.connect(c)
            c.next_send = start + self.rand.random() / a.rate
        while True:
            now = mono()
            if now >= hard_stop:
                for c in conns:
                    self.close(c, "timeout", now)
                break
            wake = now + 0.05
            busy = False
            for c in conns:
                if c.sock is None:
                    if now < stop_sending:
                        self.connect(c)
                    else:
                        continue
                for st in list(c.open_streams.values()):
                    if now - st.t_send > a.req_timeout:
                        del c.open_streams[st.sid]
                        self.finish(c, st, "timeout", now)
                if c.open_streams:
                    busy = True
                if now < stop_sending and not c.goaway and self.sent < a.max_requests:
                    busy = True
                    while now >= c.next_send and len(c.open_streams) < a.streams:
                        key = "%s%d" % (a.key_prefix, self.rand.randrange(a.keys))
                        self.open_stream(c, now, key)
                        c.next_send += 1.0 / a.rate
                    if now >= c.next_send:
                        c.next_send = now  # window full: do not build a backlog
                    wake = min(wake, c.next_send)
                if c.goaway and not c.open_streams:
                    self.close(c, "lost", now)
                self.flush(c, now)
            if not busy:
                break
            for key, mask in self.sel.select(max(0.0, wake - mono())):
                c = key.data
                now = mono()
                if c.sock is None:
                    continue
                if mask & selectors.EVENT_READ:
                    self.on_read(c, now)
                if c.sock is not None and mask & selectors.EVENT_WRITE:
                    self.flush(c, now)
        for c in conns:
            self.close(c, "lost", mono())
        return start

    def run_abort(self):
        a = self.a
        start = mono()
        for i in range(a.conns):
            c = Conn(i)
            self.connect(c)
            now = mono()
            for _ in range(a.streams):
                self.open_stream(c, now, "%s%d" % (a.key_prefix, self.rand.randrange(a.keys)))
            self.flush(c, now)
            until = now + a.abort_after
            while mono() < until and c.sock is not None:
                for key, mask in self.sel.select(max(0.0, until - mono())):
                    if mask & selectors.EVENT_READ and c.sock is not None:
                        self.on_read(c, mono())
                self.flush(c, mono())
            if c.sock is None:
                continue
            now = mono()
            for n, sid in enumerate(sorted(c.open_streams)):
                if n % 2 == 0:
                    c.wbuf += frame(RST_STREAM, 0, sid, struct.pack(">I", 8))  # CANCEL
                    self.finish(c, c.open_streams.pop(sid), "aborted", now)
            self.flush(c, now)
            self.close(c, "aborted", now)
        return start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", choices=["load", "abort"], default="load")
    p.add_argument("--path", default="/load/ok.txt")
    p.add_argument("--conns", type=int, default=4)
    p.add_argument("--streams", type=int, default=16, help="streams in flight per connection")
    p.add_argument("--rate", type=float, default=400.0, help="new streams/s per connection")
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--max-requests", type=int, default=200000)
    p.add_argument("--req-timeout", type=float, default=3.0)
    p.add_argument("--keys", type=int, default=32)
    p.add_argument("--key-prefix", default="h2k")
    p.add_argument("--abort-after", type=float, default=0.02)
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    client = Client(a)
    start = client.run_load() if a.mode == "load" else client.run_abort()
    outcomes, statuses = {}, {}
    with open(a.out, "w") as f:
        for cid, st in client.records:
            f.write("%d\t%d\t%.6f\t%.6f\t%s\t%d\n" % (cid, st.sid, st.t_send, st.t_done, st.outcome, st.status))
            outcomes[st.outcome] = outcomes.get(st.outcome, 0) + 1
            if st.outcome == "answered":
                statuses[str(st.status)] = statuses.get(str(st.status), 0) + 1
    json.dump({"start": start, "sent": client.sent, "recorded": len(client.records),
               "outcomes": outcomes, "statuses": statuses}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
