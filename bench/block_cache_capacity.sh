#!/usr/bin/env bash
# How many distinct blocked keys a blocked-key cache of SIZE holds: N keys are
# each rejected once (recorded in the cache), then asked again; the hits
# counted by the metrics are the keys still held (a miss is rejected by Redis
# and recorded again, as under a real flood). One worker, one Redis.
# Usage: bench/block_cache_capacity.sh MODULE.so [SIZE] [N ...]
set -euo pipefail
module=$(realpath "$1")
size=${2:-1m}
shift $(( $# >= 2 ? 2 : 1 ))
counts=("$@")
[[ ${#counts[@]} -gt 0 ]] || counts=(2000 4000 6000 8000 9000 12000)
source "$(dirname "$0")/../scripts/lib.sh"
lib_init cache
redis_port=$(free_port); port=$(free_port)
start_redis "$redis_port"
cat > "$work/nginx.conf" <<CONF
load_module $module; daemon off; master_process off; pid $work/nginx.pid;
error_log $work/error.log crit; events { worker_connections 64; }
http { access_log off; rate_guard_redis 127.0.0.1:$redis_port; rate_guard_block_cache $size;
  rate_guard_zone \$arg_c zone=cap rate=1 window=1h algorithm=fixed_window;
  server { listen 127.0.0.1:$port;
    location = /t { rate_guard zone=cap; empty_gif; }
    location = /metrics { rate_guard_metrics; } } }
CONF
hits() { curl -s "http://127.0.0.1:$port/metrics" | awk '/^rate_guard_requests_block_cache_hits_total/ {print $2}'; }
# Sends /t?c=<round>-<i> for i in 0..n-1.
send() {
  local round=$1 n=$2
  for ((i = 0; i < n; i++)); do echo "url = \"http://127.0.0.1:$port/t?c=$round-$i\""; echo "-o /dev/null"; done > "$work/curl.conf"
  curl -s -K "$work/curl.conf"
}
printf '| blocked keys | held by a %s cache | share |\n|--:|--:|--:|\n' "$size"
# A fresh nginx (a fresh cache) for each count.
for n in "${counts[@]}"; do
  "$NGINX_BINARY" -p "$work" -c "$work/nginx.conf" &
  nginx_pid=$!
  track "$nginx_pid"
  wait_port "$port"
  send "$n" "$n"; send "$n" "$n"  # passes, then rejected by Redis: recorded
  before=$(hits); send "$n" "$n"; after=$(hits)
  held=$((after - before))
  printf '| %s | %s | %s%% |\n' "$n" "$held" "$((100 * held / n))"
  stop "$nginx_pid"
done
