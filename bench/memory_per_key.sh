#!/usr/bin/env bash
# Redis memory per client key, per algorithm: one key that sent N requests
# (default 100, limit 1000 per minute so none is rejected), measured with
# MEMORY USAGE. Usage: bench/memory_per_key.sh MODULE.so [N]
set -euo pipefail
module=$(realpath "$1")
requests=${2:-100}
source "$(dirname "$0")/../scripts/lib.sh"
lib_init mem
redis_port=$(free_port); port=$(free_port)
start_redis "$redis_port"
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
"$NGINX_BINARY" -p "$work" -c "$work/nginx.conf" &
track $!
wait_port "$port"
printf '| algorithm | Redis type | bytes per key after %s requests |\n|---|---|---|\n' "$requests"
for a in "${algorithms[@]}"; do
  for _ in $(seq "$requests"); do echo "url = \"http://127.0.0.1:$port/$a\""; echo '-H "X-Client: 203.0.113.7"'; echo "-o /dev/null"; done > "$work/curl.conf"
  curl -s -K "$work/curl.conf"
  key="rate_guard:$a:203.0.113.7"
  printf '| %s | %s | %s |\n' "$a" "$(redis-cli -p "$redis_port" type "$key")" \
    "$(redis-cli -p "$redis_port" memory usage "$key" samples 0)"
done
