#!/usr/bin/env bash
# rate_guard beside Debian's nchan (libnginx-mod-nchan), which carries its own
# hiredis 1.x. nginx loads modules RTLD_GLOBAL, so a module that exports (or
# leaves undefined) hiredis's unversioned redis* symbols binds to the other
# module's copy. One nginx (two workers), one Redis, both modules using it,
# loaded in both orders: rate_guard limits (5 x 200, then 429), nchan
# publishes through Redis (202, the message then read back by a subscriber),
# and no worker dies.
#   nchan_coexistence.sh MODULE [NCHAN_MODULE]
set -uo pipefail

module=$1
nchan=${2:-/usr/lib/nginx/modules/ngx_nchan_module.so}
. "$(dirname "$0")/lib.sh"

[[ -f $nchan ]] || { echo "FAIL: no nchan module at $nchan (Debian package libnginx-mod-nchan)" >&2; exit 1; }

redis_port=$(free_port)
start_redis "$redis_port" || exit 1

# workers MASTER_PID: its worker processes' PIDs, sorted, on one line.
workers() { ps -o pid= --ppid "$1" | sort -n | xargs; }

# check_order NAME MODULES: one nginx with MODULES loaded in that order.
check_order() {
  local name=$1 modules=$2 port master before after codes published received log
  port=$(free_port)
  log="$e2e_work/$name/error.log"
  start_nginx "$name" "$modules" "
    upstream nchan_redis { nchan_redis_server redis://127.0.0.1:$redis_port; }
    rate_guard_redis 127.0.0.1:$redis_port timeout=1s;
    rate_guard_zone \$http_x_client zone=coexist rate=5r/m;
    server {
        listen 127.0.0.1:$port;
        location = /limited { rate_guard zone=coexist; empty_gif; }
        location ~ ^/pub/(\w+)\$ { nchan_publisher; nchan_channel_id \$1; nchan_redis_pass nchan_redis; }
        location ~ ^/sub/(\w+)\$ { nchan_subscriber; nchan_channel_id \$1; nchan_redis_pass nchan_redis; }
    }"
  master=${lib_pids[-1]}
  # Until it answers, or a worker dies: then the master forks new ones that
  # die as well, thousands a minute, so it is stopped at once.
  for _ in $(seq 100); do
    curl -s -m 1 -o /dev/null "http://127.0.0.1:$port/" && break
    grep -q 'exited on signal' "$log" && break
    sleep 0.05
  done
  if grep -m 1 'exited on signal' "$log"; then
    fail "$name: workers die before answering ($(grep -c 'exited on signal' "$log") deaths)"
    kill "$master" 2>/dev/null
    wait "$master" 2>/dev/null
    return
  fi
  before=$(workers "$master")

  codes=$(for _ in 1 2 3 4 5 6; do
            curl -s -o /dev/null -m 5 -w '%{http_code} ' -H "X-Client: $name" "http://127.0.0.1:$port/limited"
          done)
  echo "$name: rate_guard, 6 requests at 5r/m: $codes"
  [[ $codes == "200 200 200 200 200 429 " ]] || fail "$name: rate_guard answered '$codes', expected 5 x 200 then 429"

  published=$(curl -s -o "$e2e_work/$name/published" -m 5 -w '%{http_code}' -X POST \
              --data-binary "hello from $name" "http://127.0.0.1:$port/pub/$name")
  echo "$name: nchan publish through Redis: $published"
  [[ $published == 202 ]] || fail "$name: nchan's publisher answered '$published', expected 202"
  if ! redis-cli -p "$redis_port" --scan --pattern "*channel:*$name*" | grep -q .; then
    fail "$name: nchan stored nothing in Redis for channel $name"
  fi
  received=$(curl -s -m 5 "http://127.0.0.1:$port/sub/$name")
  echo "$name: nchan subscriber read back: '$received'"
  [[ $received == "hello from $name" ]] || fail "$name: nchan's subscriber got '$received'"

  sleep 0.5
  after=$(workers "$master")
  echo "$name: workers before the requests: [$before], after: [$after]"
  [[ -n $before && $before == "$after" ]] || fail "$name: the workers changed (a worker died)"
  if grep -m 3 'exited on signal' "$log"; then
    fail "$name: a worker died ($(grep -c 'exited on signal' "$log") times)"
  fi
  kill "$master" 2>/dev/null
  wait "$master" 2>/dev/null
}

check_order nchan_first "$nchan $module"
check_order rate_guard_first "$module $nchan"

exit $e2e_status
