#!/usr/bin/env bash
# A flood of distinct client keys: Redis memory stays bounded by the keys'
# TTLs, and the blocked-key cache by its size.
#
# Usage: tests/hostile/key_flood.sh MODULE.so [N]      (N: distinct keys per phase, default 1000000)
#
# It starts its own redis-server and nginx (one worker) on free loopback
# ports, and drives them with wrk (tests/hostile/key_flood.lua: every request
# has an X-Key of its own). Bounded in time: each phase stops after N
# responses or FLOOD_MAX_SECONDS (default 300), whichever comes first. Its
# work dir (logs, samples) is kept when it fails or RATE_GUARD_KEEP is set
# (scripts/lib.sh).
#
# Phase A, "pass": zone rate=5 window=2s, every key sent once, so every
# request passes and creates a Redis key with a TTL of at most two windows
# (sliding_window). Sampled every second: DBSIZE, used_memory, the worker's
# RSS. Redis keys at any time are about (requests per second) x (TTL), never
# N, and DBSIZE falls back to 0 once the flood stops.
#
# Phase B, "over": every key sent once to a location whose cost (2) exceeds
# its zone's limit (1 per 600s): every request is rejected by Redis (nothing
# is stored: a rejection consumes no quota) and its key enters the
# blocked-key cache (rate_guard_block_cache 1m: about 9,000 entries). The
# cache cannot grow: it lives in a shared zone of fixed size, so the
# worker's RSS stays flat however many keys come. Its capacity is then
# measured: the first 500 keys of each wrk thread are sent again (they were
# evicted: answered by Redis, no cache hit), then 500 new keys per thread
# are rejected and sent again (still cached: cache hits), read from the
# block_cache_hits counter.
#
# Exit status 0 when: the peak DBSIZE stays under 8 s of traffic, DBSIZE
# drains to 0, phase B stores nothing in Redis, the worker's RSS grows by
# less than 8 MB over phase B, the recent keys are cache hits and (when N is
# well above the capacity) the oldest are not.
set -euo pipefail

if [[ $# -lt 1 || ! -f "$1" ]]; then
  echo "usage: $0 MODULE.so [N]" >&2
  exit 2
fi
module=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
n="${2:-1000000}"
max_seconds="${FLOOD_MAX_SECONDS:-300}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
threads=2
connections=64
per_thread=$(( (n + threads - 1) / threads ))

# shellcheck source-path=SCRIPTDIR source=../../scripts/lib.sh
source "$here/../../scripts/lib.sh"
lib_init key_flood
{ read -r nginx_port; read -r redis_port; } < <(free_ports 2)

start_redis "$redis_port"
cli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }

mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<EOF
load_module $module;
worker_processes 1;
daemon off;
master_process on;
error_log $work/logs/error.log warn;
pid $work/logs/nginx.pid;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;

    rate_guard_redis 127.0.0.1:$redis_port timeout=1s;
    rate_guard_block_cache 1m;
    rate_guard_log_level info;
    rate_guard_zone \$http_x_key zone=flood rate=5 window=2s;
    rate_guard_zone \$http_x_key zone=flood_over rate=1 window=600s;
    server {
        listen 127.0.0.1:$nginx_port backlog=4096;
        location = /pass {
            rate_guard zone=flood;
            empty_gif;
        }
        location = /over {
            rate_guard zone=flood_over cost=2;
            empty_gif;
        }
        location = /metrics {
            rate_guard_metrics;
        }
    }
}
EOF
start_bg logs/nginx.out "$NGINX_BINARY" -p "$work/" -c "$work/nginx.conf" -e "$work/logs/error.log"
nginx_pid=$bg_pid
for _ in $(seq 100); do
  curl -s -o /dev/null "http://127.0.0.1:$nginx_port/metrics" && break
  kill -0 "$nginx_pid" 2>/dev/null || break
  sleep 0.1
done
worker_pid=$(pgrep -P "$nginx_pid" | head -1 || true)
[[ -n "$worker_pid" ]] || { echo "key_flood: no nginx worker" >&2; cat "$work/logs/error.log" >&2; exit 1; }

rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$worker_pid/status"; }
metric() { curl -s "http://127.0.0.1:$nginx_port/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
cache_hits() { metric 'rate_guard_requests_block_cache_hits_total{zone="flood_over"}'; }

# One line a second: seconds, DBSIZE, used_memory, worker RSS.
sample() {
  local phase=$1 start=$SECONDS
  while true; do
    printf '%s %4d %8d %12d %8d\n' "$phase" $(( SECONDS - start )) "$(cli DBSIZE)" \
      "$(cli INFO memory | awk -F: '/^used_memory:/ { print $2 + 0 }')" "$(rss_kb)"
    sleep 1
  done
}

flood() {  # path prefix first count-per-thread; prints wrk's FLOOD line
  local done_dir="$work/done.$RANDOM" out="$work/wrk.out" wrk_pid start=$SECONDS
  mkdir -p "$done_dir"
  FLOOD_PATH=$1 FLOOD_PREFIX=$2 FLOOD_FIRST=$3 FLOOD_COUNT=$4 FLOOD_DONE_DIR=$done_dir \
    wrk -t "$threads" -c "$connections" -d "${max_seconds}s" \
    -s "$here/key_flood.lua" "http://127.0.0.1:$nginx_port/" > "$out" 2>&1 &
  wrk_pid=$!
  # wrk runs for its whole -d: interrupt it once every thread has its count
  while kill -0 "$wrk_pid" 2>/dev/null; do
    if [[ $(find "$done_dir" -type f | wc -l) -ge $threads || $(( SECONDS - start )) -gt $max_seconds ]]; then
      kill -INT "$wrk_pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  wait "$wrk_pid" || true
  grep '^FLOOD' "$out" || { echo "key_flood: wrk failed:" >&2; cat "$out" >&2; return 1; }
}

status=0
check() {  # description condition...
  local what=$1; shift
  if "$@"; then echo "PASS  $what"; else echo "FAIL  $what"; status=1; fi
}

echo "key_flood: N=$n distinct keys per phase, wrk $threads threads x $connections connections, module $module"
echo "redis 127.0.0.1:$redis_port, nginx 127.0.0.1:$nginx_port (worker pid $worker_pid)"
echo
echo "== phase A: $n distinct keys, each passing (zone rate=5 window=2s)"
echo "phase  sec   DBSIZE  used_memory  RSS(kB)"
used_before=$(cli INFO memory | awk -F: '/^used_memory:/ { print $2 + 0 }')
sample A > "$work/samples.A" &
sampler_pid=$!
track "$sampler_pid"
a_start=$SECONDS
a_result=$(flood /pass a 1 "$per_thread")
a_seconds=$(( SECONDS - a_start ))
# after the flood: until DBSIZE is back to 0 (at most 30 s)
drain_start=$SECONDS
while [[ $(cli DBSIZE) -gt 0 && $(( SECONDS - drain_start )) -lt 30 ]]; do sleep 0.5; done
drain_seconds=$(( SECONDS - drain_start ))
sleep 1
stop "$sampler_pid"
cat "$work/samples.A"
echo "$a_result"
a_requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<< "$a_result")
a_ok=$(sed -E 's/.* ok=([0-9]+).*/\1/' <<< "$a_result")
peak_db=$(awk '{ if ($3 > m) m = $3 } END { print m + 0 }' "$work/samples.A")
peak_mem=$(awk '{ if ($4 > m) m = $4 } END { print m + 0 }' "$work/samples.A")
final_db=$(cli DBSIZE)
final_mem=$(cli INFO memory | awk -F: '/^used_memory:/ { print $2 + 0 }')
rate=$(( a_requests / (a_seconds > 0 ? a_seconds : 1) ))
echo "phase A: $a_requests requests in ${a_seconds}s (~$rate/s), $a_ok passed"
echo "phase A: peak DBSIZE $peak_db, peak used_memory $peak_mem B (before: $used_before B)"
echo "phase A: DBSIZE back to $final_db ${drain_seconds}s after the flood; used_memory $final_mem B"
check "every request of phase A passed" test "$a_ok" -eq "$a_requests"
# Keys live at most two windows (4 s); Redis reclaims expired keys in its
# active-expiry cycles, so DBSIZE lags: 8 s of traffic, however large N is.
check "peak DBSIZE ($peak_db) <= 8 s of traffic ($(( rate * 8 ))), not N ($n)" test "$peak_db" -le $(( rate * 8 ))
check "DBSIZE drains to 0 after the flood (TTL)" test "$final_db" -eq 0

echo
echo "== phase B: $n distinct keys, each over its limit (cost 2 > limit 1): the blocked-key cache"
hits_before=$(cache_hits)
sample B > "$work/samples.B" &
sampler_pid=$!
track "$sampler_pid"
b_result=$(flood /over o 1 "$per_thread")
sleep 1
stop "$sampler_pid"
echo "phase  sec   DBSIZE  used_memory  RSS(kB)"
cat "$work/samples.B"
echo "$b_result"
b_requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<< "$b_result")
b_rejected=$(sed -E 's/.*rejected=([0-9]+).*/\1/' <<< "$b_result")
# RSS after the first seconds (the cache's shared pages touched once; the
# last sample of a shorter run) to the end
rss_first=$(awk 'NR <= 3 { v = $5 } END { print v + 0 }' "$work/samples.B")
rss_max=$(awk '{ if ($5 > m) m = $5 } END { print m + 0 }' "$work/samples.B")
rss_last=$(tail -1 "$work/samples.B" | awk '{ print $5 }')
b_db_max=$(awk '{ if ($3 > m) m = $3 } END { print m + 0 }' "$work/samples.B")
shm_kb=$(awk '/rate_guard|zero \(deleted\)|SYSV/ { z = 1 } z && /^Rss:/ { s += $2; z = 0 } END { print s + 0 }' "/proc/$worker_pid/smaps")
hits_flood=$(( $(cache_hits) - hits_before ))
echo "phase B: $b_requests requests, $b_rejected rejected, $hits_flood cache hits during the flood (every key new)"
echo "phase B: worker RSS ${rss_first} kB after 3 s, max ${rss_max} kB, last ${rss_last} kB; shared zones resident: ${shm_kb} kB"

# Capacity: the oldest keys of the flood were evicted; keys rejected just
# now are cached. (Fresh keys rather than the flood's last ones: wrk's two
# threads do not finish together, so one thread's last keys may be followed
# by many thousands of the other's.)
h0=$(cache_hits)
flood /over o 1 500 > /dev/null
h1=$(cache_hits)
flood /over n 1 500 > /dev/null
h2=$(cache_hits)
flood /over n 1 500 > /dev/null
h3=$(cache_hits)
oldest_hits=$(( h1 - h0 ))
newest_hits=$(( h3 - h2 ))
capacity=$(( 1024 * 1024 / 112 ))
echo "phase B: replay of the first 500 keys per thread: $oldest_hits cache hits of $(( 500 * threads ))"
echo "phase B: 500 new keys per thread rejected, then sent again: $newest_hits cache hits for $(( 500 * threads )) keys (and those in flight when wrk stopped)"
check "every request of phase B was rejected" test "$b_rejected" -eq "$b_requests"
check "phase B stored nothing in Redis (DBSIZE max $b_db_max)" test "$b_db_max" -eq 0
check "worker RSS grew by less than 8 MB over phase B ($rss_first -> $rss_max kB)" \
    test $(( rss_max - rss_first )) -lt 8192
check "the most recent keys are answered from the cache" test "$newest_hits" -ge $(( 500 * threads * 9 / 10 ))
if [[ $(( per_thread * threads )) -gt $(( 4 * capacity )) ]]; then
    check "the oldest keys were evicted (the cache holds about $capacity, not $n)" \
        test "$oldest_hits" -le $(( 500 * threads / 10 ))
else
    echo "SKIP  eviction: N=$n is not well above the cache's capacity (~$capacity)"
fi

echo
grep -E '\[(alert|crit|emerg)\]|exited on signal' "$work/logs/error.log" && {
    echo "FAIL  nginx logged alerts or crashed"; status=1; } || true
echo "key_flood: $([[ $status == 0 ]] && echo PASS || echo FAIL)"
exit $status
