#!/usr/bin/env python3
"""Bursts of requests for one client key, over several servers, with every
request's send and receive times (the client's clock), for
sliding_window_bound.sh.

Usage: burst_client.py --urls URL,URL --key KEY --bursts N --size N
       --every SECONDS --phase SECONDS --window SECONDS --seed N

Waits until time.time() % window == phase (the aligned windows' edges, as
Redis's clock has them on this machine), then sends a burst of `size`
requests every `every` seconds, each request to a server chosen at random
and delayed by 0 to 20 ms within its burst. Prints one line per request:
"send recv status" (seconds since the epoch, float).
"""
import argparse
import http.client
import random
import threading
import time
import urllib.parse


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--urls", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--bursts", type=int, default=28)
    parser.add_argument("--size", type=int, default=40)
    parser.add_argument("--every", type=float, default=0.25)
    parser.add_argument("--phase", type=float, default=0.0)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    urls = [urllib.parse.urlsplit(u) for u in args.urls.split(",")]
    rng = random.Random(args.seed)

    # One keep-alive connection per request slot of a burst.
    plan = [[(rng.randrange(len(urls)), rng.uniform(0, 0.02)) for _ in range(args.size)]
            for _ in range(args.bursts)]
    results = []
    lock = threading.Lock()

    def worker(slot, start):
        connections = {}
        for b in range(args.bursts):
            server, delay = plan[b][slot]
            target = start + b * args.every + delay
            pause = target - time.time()
            if pause > 0:
                time.sleep(pause)
            url = urls[server]
            for attempt in range(2):
                connection = connections.get(server)
                if connection is None:
                    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=5)
                    connections[server] = connection
                sent = time.time()
                try:
                    connection.request("GET", url.path, headers={"X-Client": args.key})
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                    break
                except (OSError, http.client.HTTPException):
                    connection.close()
                    connections[server] = None
                    status = 0
            received = time.time()
            with lock:
                results.append((sent, received, status))

    now = time.time()
    start = now - now % args.window + args.phase
    while start < now + 0.3:
        start += args.window
    threads = [threading.Thread(target=worker, args=(slot, start)) for slot in range(args.size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for sent, received, status in sorted(results):
        print(f"{sent:.6f} {received:.6f} {status}")


if __name__ == "__main__":
    main()
