#!/usr/bin/env bash
# Redis memory per client key, per algorithm: one key that sent N requests
# (default 100, limit 1000 per minute so none is rejected), measured with
# MEMORY USAGE. Usage: bench/memory_per_key.sh MODULE.so [N]
set -euo pipefail
module=$(realpath "$1")
requests=${2:-100}
work=$(mktemp -d /tmp/rate_guard-mem.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
redis_port=$(free_port); port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save '' --appendonly no --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
algorithms=(sliding_window sliding_log fixed_window token_bucket)
{
  echo "load_module $module; daemon off; master_process off; pid $work/nginx.pid;"
  echo "error_log $work/error.log warn; events { worker_connections 64; }"
  echo "http { access_log off; rate_guard_redis 127.0.0.1:$redis_port;"
  for a in "${algorithms[@]}"; do echo "rate_guard_zone \$http_x_client zone=$a rate=1000r/m algorithm=$a;"; done
  echo "server { listen 127.0.0.1:$port;"
  for a in "${algorithms[@]}"; do echo "location = /$a { rate_guard zone=$a; empty_gif; }"; done
  echo "} }"
} > "$work/nginx.conf"
/usr/sbin/nginx -p "$work" -c "$work/nginx.conf" &
pids+=($!)
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$port/none" && break; sleep 0.1; done
printf '| algorithm | Redis type | bytes per key after %s requests |\n|---|---|---|\n' "$requests"
for a in "${algorithms[@]}"; do
  for _ in $(seq "$requests"); do echo "url = \"http://127.0.0.1:$port/$a\""; echo '-H "X-Client: 203.0.113.7"'; echo "-o /dev/null"; done > "$work/curl.conf"
  curl -s -K "$work/curl.conf"
  key="rate_guard:$a:203.0.113.7"
  printf '| %s | %s | %s |\n' "$a" "$(redis-cli -p "$redis_port" type "$key")" \
    "$(redis-cli -p "$redis_port" memory usage "$key" samples 0)"
done
