#!/usr/bin/env python3
"""Loopback ports that nobody listens on, for the servers the tests and the
benchmark start: `free_ports.py [N]` prints N (default 1), one a line; Python
code imports free_ports().

Chosen below the kernel's ephemeral range (ip_local_port_range), never by
binding to port 0: a port the kernel hands out that way is handed out again
at once as the source port of some outgoing connection (the load clients,
nginx's connections to Redis), and the server that then binds it fails with
"Address already in use".
"""

import random
import socket
import sys

LOWEST = 10000


def ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_ports(n=1):
    """n distinct ports, each free when it was chosen (held until all are)."""
    high = max(LOWEST + 1000, ephemeral_low()) - 1
    held, ports = [], []
    try:
        for _ in range(1000 * n):
            if len(ports) == n:
                return ports
            port = random.randint(LOWEST, high)
            if port in ports:
                continue
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                s.close()
                continue
            held.append(s)
            ports.append(port)
        raise RuntimeError("no free loopback port between %d and %d" % (LOWEST, high))
    finally:
        for s in held:
            s.close()


def free_port():
    return free_ports(1)[0]


if __name__ == "__main__":
    print("\n".join(str(p) for p in free_ports(int(sys.argv[1]) if len(sys.argv) > 1 else 1)))
