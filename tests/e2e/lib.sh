# Shared by the end-to-end scripts, on top of scripts/lib.sh (work directory
# $e2e_work, free_port, start_redis, processes stopped by PID on exit): nginx
# instances, Sentinel, Cluster. Source it, then use start_nginx, wait_http, fail.

source "$(dirname "${BASH_SOURCE[0]}")/../../scripts/lib.sh"
lib_init e2e
[[ -z ${E2E_KEEP:-} ]] || RATE_GUARD_KEEP=1
e2e_work=$work
e2e_status=0

# fail MESSAGE: records a failure (the script goes on; exit with $e2e_status).
fail() {
  echo "FAIL: $*" >&2
  e2e_status=1
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

# start_nginx NAME MODULES HTTP_BLOCK_BODY: nginx with two workers under a
# master, its own prefix; MODULES (one path, or several separated by spaces)
# loaded in that order; prints nothing, logs in $e2e_work/NAME/error.log.
start_nginx() {
  local name=$1 modules=$2 http=$3 module
  local dir="$e2e_work/$name"
  mkdir -p "$dir"
  cat > "$dir/nginx.conf" <<CONF
$(for module in $modules; do echo "load_module $module;"; done)
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
  "$NGINX_BINARY" -p "$dir" -c "$dir/nginx.conf" &
  track $!
}

# start_nginx_pair MODULE REDIS_DIRECTIVE LIMIT: nginx1 and nginx2 (two
# workers each) on one Redis deployment, waited for; their ports in `ports`.
# Both serve /exact (sliding_log, LIMIT per 60 s per X-Client), /wide (a limit
# never reached; X-Status: $rate_guard_status) and /metrics.
start_nginx_pair() {
  local module=$1 redis=$2 limit=$3 n port
  ports=()
  for n in 1 2; do
    port=$(free_port)
    ports+=("$port")
    start_nginx "nginx$n" "$module" "
    $redis
    rate_guard_zone \$http_x_client zone=exact rate=$limit window=60s algorithm=sliding_log;
    rate_guard_zone \$http_x_client zone=wide rate=1000000r/m;
    server {
        listen 127.0.0.1:$port;
        location = /exact { rate_guard zone=exact; empty_gif; }
        location = /wide { rate_guard zone=wide; add_header X-Status \$rate_guard_status always; empty_gif; }
        location = /metrics { rate_guard_metrics; }
    }"
  done
  for port in "${ports[@]}"; do wait_http "$port"; done
}

# pair_urls PATH: PATH on both instances of start_nginx_pair.
pair_urls() { echo "http://127.0.0.1:${ports[0]}/$1" "http://127.0.0.1:${ports[1]}/$1"; }

# exact_round KEY LABEL EXPECTED: 400 requests of client KEY to /exact over
# both instances, 32 at a time: every one answered 200 or 429, exactly
# EXPECTED of them 200.
exact_round() {
  local expected=$3 passed answered
  burst 400 32 "X-Client: $1" $(pair_urls exact) > "$e2e_work/codes"
  passed=$(grep -c '^200$' "$e2e_work/codes" || true)
  answered=$(grep -cE '^(200|429)$' "$e2e_work/codes" || true)
  echo "$2: 400 requests over 2 servers: $passed passed, $answered answered with 200/429 (expected $expected to pass)"
  if [[ $passed -ne $expected || $answered -ne 400 ]]; then
    fail "$2: expected exactly $expected of 400 to pass"
    sort "$e2e_work/codes" | uniq -c >&2
  fi
}

# decided_by_redis PORT CLIENT: 8 consecutive checks of CLIENT on /wide of the
# nginx on PORT answered by Redis (X-Status PASSED, not ERROR), within 200 tries.
decided_by_redis() {
  local streak=0 status
  for _ in $(seq 200); do
    status=$(curl -s -o /dev/null -D - -H "X-Client: $2" "http://127.0.0.1:$1/wide" | tr -d '\r' | sed -n 's/^X-Status: //p')
    if [[ $status == PASSED ]]; then streak=$((streak + 1)); else streak=0; fi
    [[ $streak -ge 8 ]] && return 0
    sleep 0.02
  done
  return 1
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

# Redis Cluster. start_cluster MASTERS REPLICAS: MASTERS x (1 + REPLICAS)
# redis-servers started with start_redis (so stopped by PID on exit), each
# with cluster-node-timeout 1000 ms (fast failover), a cluster bus port of its
# own (not port+10000, which may be taken) and nodes.conf in its own
# directory; joined by `redis-cli --cluster create`; returns once the cluster
# is stable (wait_cluster_stable). Sets cluster_ports (every node) and
# cluster_pid[PORT]; stop a node with stop_cluster_node PORT.
declare -A cluster_pid=()
cluster_ports=()
cluster_why=

start_cluster() {
  local masters=$1 replicas=$2 total i port bus
  local -a picked
  total=$((masters * (1 + replicas)))
  mapfile -t picked < <(free_ports $((2 * total)))
  for ((i = 0; i < total; i++)); do
    port=${picked[$((2 * i))]} bus=${picked[$((2 * i + 1))]}
    # repl-diskless-sync-delay 0: a replica's first sync at once, not 5 s
    # later (it cannot be promoted before); repl-ping-replica-period 1: its
    # offset moves within 1 s, and only then does CLUSTER SLOTS list it.
    start_redis "$port" --cluster-enabled yes --cluster-config-file nodes.conf \
      --cluster-node-timeout 1000 --cluster-port "$bus" \
      --repl-diskless-sync-delay 0 --repl-ping-replica-period 1 || return 1
    cluster_pid[$port]=${lib_pids[-1]}
    cluster_ports+=("$port")
  done
  if ! redis-cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") \
      --cluster-replicas "$replicas" --cluster-yes > "$e2e_work/cluster-create.log" 2>&1; then
    echo "redis-cli --cluster create failed: $(tail -5 "$e2e_work/cluster-create.log")" >&2
    return 1
  fi
  wait_cluster_stable
}

# cluster_running PORT: that node's redis-server has not been stopped.
cluster_running() {
  kill -0 "${cluster_pid[$1]:-}" 2>/dev/null
}

# stop_cluster_node PORT [SIGNAL]: the signal (default TERM) to its PID, and
# reap it.
stop_cluster_node() {
  kill -s "${2:-TERM}" "${cluster_pid[$1]}"
  wait "${cluster_pid[$1]}" 2>/dev/null || true
}

# cluster_any_port: a running node.
cluster_any_port() {
  local port
  for port in "${cluster_ports[@]}"; do
    cluster_running "$port" && { echo "$port"; return 0; }
  done
  echo "no cluster node is running" >&2
  return 1
}

# cluster_map PORT: the cluster as that node sees it (CLUSTER NODES), one
# line per fact, sorted: "slots FIRST[-LAST] MASTER_PORT" and
# "replica PORT of MASTER_PORT" (replicas not flagged failing).
cluster_map() {
  redis-cli -p "$1" cluster nodes | tr -d '\r' | awk '
    NF >= 8 {
      split($2, address, "[:@,]")
      n++; id[n] = $1; flags[n] = $3; of[n] = $4; port[$1] = address[2]; slots[n] = ""
      for (i = 9; i <= NF; i++) if ($i !~ /^\[/) slots[n] = slots[n] " " $i
    }
    END {
      for (i = 1; i <= n; i++) {
        if (flags[i] ~ /master/) {
          m = split(slots[i], s, " ")
          for (j = 1; j <= m; j++) print "slots " s[j] " " port[id[i]]
        } else if (flags[i] ~ /slave/ && flags[i] !~ /fail/) {
          print "replica " port[id[i]] " of " port[of[i]]
        }
      }
    }' | sort
}

# cluster_masters: the ports of the masters serving slots, by first slot.
cluster_masters() {
  cluster_map "$(cluster_any_port)" | awk '$1 == "slots"' | sort -n -k2 | awk '!seen[$3]++ { print $3 }'
}

# cluster_seeds: "127.0.0.1:P1,127.0.0.1:P2,..." of the masters.
cluster_seeds() {
  cluster_masters | sed 's/^/127.0.0.1:/' | paste -sd, -
}

# key_slot KEY: CLUSTER KEYSLOT.
key_slot() {
  redis-cli -p "$(cluster_any_port)" cluster keyslot "$1"
}

# slot_owner SLOT [PORT]: the master serving SLOT, as PORT (default: any
# running node) sees it.
slot_owner() {
  cluster_map "${2:-$(cluster_any_port)}" | awk -v slot="$1" '
    $1 == "slots" {
      n = split($2, range, "-")
      if (slot + 0 >= range[1] + 0 && slot + 0 <= range[n] + 0) { print $3; exit }
    }'
}

# cluster_replicas MASTER_PORT: its running replicas.
cluster_replicas() {
  local port
  for port in $(cluster_map "$(cluster_any_port)" | awk -v m="$1" '$1 == "replica" && $4 == m { print $2 }'); do
    cluster_running "$port" && echo "$port"
  done
  return 0
}

# cluster_stable: every running node says cluster_state:ok and sees the same
# map; all 16384 slots are served by running masters; every running replica
# is in sync with its master. If not, says why in $cluster_why.
cluster_stable() {
  local port first="" first_port="" map info role kind range owner covered=0
  for port in "${cluster_ports[@]}"; do
    cluster_running "$port" || continue
    info=$(redis-cli -p "$port" cluster info 2>&1)
    [[ $info == *cluster_state:ok* ]] || { cluster_why="127.0.0.1:$port is not cluster_state:ok"; return 1; }
    map=$(cluster_map "$port")
    if [[ -z $first_port ]]; then
      first=$map first_port=$port
    elif [[ $map != "$first" ]]; then
      cluster_why="127.0.0.1:$first_port and 127.0.0.1:$port see different maps"
      return 1
    fi
    role=$(redis-cli -p "$port" role 2>&1)
    if [[ ${role%%$'\n'*} == slave ]]; then
      info=$(redis-cli -p "$port" info replication 2>&1)
      [[ $info == *master_link_status:up* ]] || { cluster_why="replica 127.0.0.1:$port is not in sync"; return 1; }
    fi
  done
  [[ -n $first_port ]] || { cluster_why="no node is running"; return 1; }
  while read -r kind range owner; do
    [[ $kind == slots ]] || continue
    cluster_running "$owner" || { cluster_why="slots $range are still on the stopped 127.0.0.1:$owner"; return 1; }
    covered=$((covered + ${range#*-} - ${range%-*} + 1))
  done <<< "$first"
  [[ $covered -eq 16384 ]] || { cluster_why="$covered of 16384 slots are served"; return 1; }
}

# wait_cluster_stable [SECONDS]: until cluster_stable (default 30 s).
wait_cluster_stable() {
  local deadline=$((SECONDS + ${1:-30}))
  until cluster_stable; do
    if ((SECONDS >= deadline)); then
      echo "the cluster is not stable: $cluster_why" >&2
      return 1
    fi
    sleep 0.05
  done
}
