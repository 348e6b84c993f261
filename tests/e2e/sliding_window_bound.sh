#!/usr/bin/env bash
# sliding_window's promise for real: never more than `limit` requests in any
# interval of length `window`, across servers. Two nginx (two workers each)
# on one Redis, one client key, 20 per 2 s; bursts of 40 requests every
# 250 ms for 7 s (burst_client.py), started at several phases of the
# aligned 2 s windows' edges (Redis's clock is this machine's), several
# seeds (which server, and a 0-20 ms spread within each burst).
#
# Counting by the client's clock, conservatively: a request was decided by
# Redis somewhere between its send and its receive times, so the passes
# whose [send, receive] both lie inside one interval of 1.95 s were decided
# within 1.95 s of one another: never more than the limit. (Counting by
# receive times alone could blame the module for the network's jitter.)
#
# With PREVIOUS_MODULE (the previous release's), the same experiment must
# find more than the limit in some interval: the count can tell.
#
# Usage: sliding_window_bound.sh MODULE.so [PREVIOUS_MODULE.so]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)

module=$(realpath "$1")
previous=${2:+$(realpath "$2")}
limit=20

redis_port=$(free_port)
start_redis "$redis_port"

# start_servers TAG MODULE: nginx TAG1 and TAG2; their URLs in `urls`.
start_servers() {
  local tag=$1 so=$2 n port list=()
  for n in 1 2; do
    port=$(free_port)
    start_nginx "$tag$n" "$so" "
    rate_guard_redis 127.0.0.1:$redis_port;
    rate_guard_zone \$http_x_client zone=bound rate=$limit window=2s;
    server {
        listen 127.0.0.1:$port;
        location = /bound { rate_guard zone=bound; empty_gif; }
    }"
    wait_http "$port"
    list+=("http://127.0.0.1:$port/bound")
  done
  urls=$(IFS=,; echo "${list[*]}")
}

# run TAG PHASE SEED: one experiment; prints the most passes found in one
# interval, and checks that every request was answered 200 or 429.
run() {
  local tag=$1 phase=$2 seed=$3 out="$e2e_work/$1-$2-$3.times"
  python3 "$here/burst_client.py" --urls "$urls" --key "$tag-$phase-$seed" --phase "$phase" \
    --seed "$seed" --bursts 28 --size 40 --every 0.25 --window 2 > "$out"
  python3 - "$out" <<'PY'
import sys
rows = [tuple(float(x) for x in line.split()) for line in open(sys.argv[1])]
bad = [r for r in rows if int(r[2]) not in (200, 429)]
passes = sorted((s, r) for s, r, status in rows if int(status) == 200)
span = 1.95
most = 0
for i, (start, _) in enumerate(passes):
    most = max(most, sum(1 for s, r in passes[i:] if r <= start + span))
print(most, len(rows), len(passes), len(bad))
PY
}

status_line() { echo "$1: phase $2 s, seed $3: $5 requests, $6 passed, most in one 1.95 s interval: $4 (limit $limit)"; }

start_servers new "$module"
for phase in 0 0.9 1.95; do
  for seed in 1 2; do
    read -r most total passed bad < <(run new "$phase" "$seed")
    status_line "this module" "$phase" "$seed" "$most" "$total" "$passed"
    [[ $total -eq 1120 && $bad -eq 0 ]] || fail "every request must be answered 200 or 429 ($bad were not, $total answered)"
    [[ $most -le $limit ]] || fail "$most passed within 1.95 s, limit $limit"
    [[ $passed -ge 60 ]] || fail "only $passed passed in 7 s: the limit lets 20 per 2 s through"
  done
done
no_crash new1
no_crash new2
if grep -hE '\[(error|warn)\]' "$e2e_work"/new*/error.log | grep -vE 'limiting requests|index.html'; then
  fail "errors logged"
fi

if [[ -n $previous ]]; then
  start_servers old "$previous"
  worst=0
  for phase in 1.95 0; do
    read -r most total passed bad < <(run old "$phase" 1)
    status_line "previous release" "$phase" 1 "$most" "$total" "$passed"
    (( most > worst )) && worst=$most
  done
  [[ $worst -gt $limit ]] || fail "the previous release's estimate should have let more than $limit through (found $worst): the count cannot tell"
fi
exit $e2e_status
