# Shared by the end-to-end scripts: a private work directory, free loopback
# ports, redis-server and nginx processes started here and stopped by PID.
# Source it, then use start_redis, start_nginx, wait_http, fail.

e2e_work=$(mktemp -d /tmp/rate_guard-e2e.XXXXXX)
e2e_pids=()
e2e_status=0

e2e_cleanup() {
  for pid in "${e2e_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${e2e_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ $e2e_status -ne 0 || -n ${E2E_KEEP:-} ]]; then
    echo "logs kept in $e2e_work" >&2
  else
    rm -rf "$e2e_work"
  fi
}
trap e2e_cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# fail MESSAGE: records a failure (the script goes on; exit with $e2e_status).
fail() {
  echo "FAIL: $*" >&2
  e2e_status=1
}

# start_redis PORT [redis-server arguments...]: waits until it answers PING.
start_redis() {
  local port=$1
  shift
  local dir="$e2e_work/redis-$port"
  mkdir -p "$dir"
  redis-server "$@" --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" &
  e2e_pids+=($!)
  for _ in $(seq 100); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  echo "redis on port $port did not start: $(tail -5 "$dir/redis.log")" >&2
  return 1
}

# start_sentinel PORT MASTER_PORT: a sentinel monitoring "mymaster", quorum 2.
start_sentinel() {
  local port=$1 master_port=$2
  local dir="$e2e_work/sentinel-$port"
  mkdir -p "$dir"
  cat > "$dir/sentinel.conf" <<CONF
sentinel monitor mymaster 127.0.0.1 $master_port 2
sentinel down-after-milliseconds mymaster 1000
sentinel failover-timeout mymaster 4000
CONF
  start_redis "$port" "$dir/sentinel.conf" --sentinel
}

# start_nginx NAME MODULE HTTP_BLOCK_BODY: nginx with two workers under a
# master, its own prefix; prints nothing, logs in $e2e_work/NAME/error.log.
start_nginx() {
  local name=$1 module=$2 http=$3
  local dir="$e2e_work/$name"
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<CONF
load_module $module;
daemon off;
master_process on;
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log info;
events { worker_connections 1024; }
http {
    access_log off;
$http
}
CONF
  "${TEST_NGINX_BINARY:-/usr/sbin/nginx}" -p "$dir" -c "$dir/nginx.conf" &
  e2e_pids+=($!)
}

# wait_http PORT: until nginx answers there.
wait_http() {
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0
    sleep 0.05
  done
  echo "nothing answers on port $1" >&2
  return 1
}

# burst COUNT CONCURRENCY HEADER URL...: COUNT requests spread over the URLs,
# CONCURRENCY at a time; prints one status code per line.
burst() {
  local count=$1 concurrency=$2 header=$3
  shift 3
  local urls=("$@") conf="$e2e_work/burst.$$.$RANDOM"
  # Headers in a curl config apply to every URL; outputs are per URL.
  {
    printf -- '-H "%s"\n' "$header"
    for i in $(seq "$count"); do
      printf 'url = "%s"\n-o /dev/null\n' "${urls[$((i % ${#urls[@]}))]}"
    done
  } > "$conf"
  curl --parallel --parallel-max "$concurrency" -s -w '%{http_code}\n' -K "$conf" 2>/dev/null || true
}

# no_crash NAME: the nginx logged no crash and no alert.
no_crash() {
  if grep -E '\[(alert|crit)\]|exited on signal' "$e2e_work/$1/error.log"; then
    fail "nginx $1 logged a crash or an alert"
  fi
}
