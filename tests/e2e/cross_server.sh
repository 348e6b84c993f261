#!/usr/bin/env bash
# Proof across servers: two nginx instances, two workers each, share one
# Redis; many concurrent clients hit them on one key. With sliding_log and
# sliding_window exactly `limit` requests pass in total (100 of 1000, some
# from leases); every request gets an answer; and a client that keeps
# sending after its rejection gets through as soon as the window allows.
#
# Usage: cross_server.sh MODULE.so ALGORITHM [TOLERANCE]
#   TOLERANCE: how far from the limit the number of passes may be (0 = exact).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

module=$(realpath "$1")
algorithm=$2
tolerance=${3:-0}
limit=100
requests=1000
concurrency=32

redis_port=$(free_port)
start_redis "$redis_port"
ports=()
for n in 1 2; do
  port=$(free_port)
  ports+=("$port")
  start_nginx "nginx$n" "$module" "
    rate_guard_redis 127.0.0.1:$redis_port;
    rate_guard_zone \$http_x_client zone=shared rate=$limit window=60s algorithm=$algorithm lease_time=20ms;
    rate_guard_zone \$http_x_client zone=again rate=5 window=6s algorithm=$algorithm;
    server {
        listen 127.0.0.1:$port;
        location = /shared { rate_guard zone=shared; empty_gif; }
        location = /again { rate_guard zone=again; empty_gif; }
        location = /metrics { rate_guard off; rate_guard_metrics; }
    }"
done
for port in "${ports[@]}"; do wait_http "$port"; done

# Phase 1: $requests concurrent requests, alternating between the servers.
burst "$requests" "$concurrency" "X-Client: one" \
  "http://127.0.0.1:${ports[0]}/shared" "http://127.0.0.1:${ports[1]}/shared" > "$e2e_work/codes"
passed=$(grep -c '^200$' "$e2e_work/codes" || true)
rejected=$(grep -c '^429$' "$e2e_work/codes" || true)
answered=$(wc -l < "$e2e_work/codes")
echo "$algorithm: $requests requests over 2 servers x 2 workers, $concurrency at a time:" \
     "$passed passed, $rejected rejected, $answered answered (limit $limit per 60s)"
if [[ $answered -ne $requests || $((passed + rejected)) -ne $requests ]]; then
  fail "every request must be answered with 200 or 429"
  sort "$e2e_work/codes" | uniq -c >&2
fi
diff=$((passed > limit ? passed - limit : limit - passed))
[[ $diff -le $tolerance ]] || fail "$passed passed, expected $limit (tolerance $tolerance)"
# With leases on (the default): how many passed from a lease, over both servers.
lease_requests=0
for port in "${ports[@]}"; do
  n=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "rate_guard_lease_requests_total{zone=\"shared\"}" { print $2 }')
  lease_requests=$((lease_requests + ${n:-0}))
done
echo "$algorithm: $lease_requests of the $passed passed from a lease"
# (lease_time=20ms: a key busy for 10 ms is leased; the exact count above
# must hold with leases out, so they must have been used)
[[ $lease_requests -gt 0 ]] || fail "no request passed from a lease: the count above did not test leases"

# Phase 2: a client keeps sending after being rejected and still gets through
# once the 6 s window allows (record-then-count would keep it out forever).
# The window is long enough for the 20 requests of a loaded machine to fit in
# it (with 2 s, 20 curls there could outlast the window and rightly pass).
again() { curl -s -o /dev/null -w '%{http_code}' -H 'X-Client: stubborn' "http://127.0.0.1:${ports[$1]}/again"; }
for i in 1 2 3 4 5; do again $((i % 2)) > /dev/null; done
hammered=0
hammer_start=$SECONDS
for _ in $(seq 20); do
  [[ $(again 0) == 429 ]] && hammered=$((hammered + 1))
  sleep 0.05
done
hammer_seconds=$((SECONDS - hammer_start))
sleep 6.1
after=$(again 1)
echo "$algorithm: stubborn client: $hammered of 20 rejected while over the limit (sent in about ${hammer_seconds}s), then $after after the window"
# sliding_log and sliding_window promise that no request of the hammering
# passes (never more than the limit in any window); fixed_window and
# token_bucket may let one through when a window boundary passes.
if [[ $after != 200 || ($algorithm == sliding_* && $hammered -ne 20) ]]; then
  fail "a client that keeps sending must get through once the window allows"
fi
no_crash nginx1
no_crash nginx2
exit $e2e_status
