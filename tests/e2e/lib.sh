# Shared by the end-to-end scripts, on top of scripts/lib.sh (work directory
# $e2e_work, free_port, start_redis, processes stopped by PID on exit): nginx
# instances, certificates, Sentinel, Cluster. Source it, then use
# start_nginx, wait_http, fail.

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

# die MESSAGE: a failure after which the script cannot go on.
die() {
  fail "$*"
  exit 1
}

# make_certs: the test certificates (scripts/make_test_certs) in $certs
# ($e2e_work/certs), each NAME.pem with its NAME.key: a CA "ca"; "server",
# signed by it, for redis.test and 127.0.0.1; "localhost_only", for the name
# localhost alone; "client", for client.test; and a second CA, "other_ca",
# that signed none of them.
certs="$e2e_work/certs"
make_certs() {
  "$(dirname "${BASH_SOURCE[0]}")/../../scripts/make_test_certs" "$certs" || die "openssl could not make the certificates"
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

# start_sentinels: a master, its replica and three sentinels (start_sentinel)
# monitoring it; returns once every sentinel could promote the replica. Sets
# master_port, master_pid, replica_port, sentinels ("127.0.0.1:PORT" each) and
# sentinel_list (them, separated by commas).
start_sentinels() {
  local port s
  master_port=$(free_port)
  replica_port=$(free_port)
  start_redis "$master_port"
  master_pid=$bg_pid
  start_redis "$replica_port" --replicaof 127.0.0.1 "$master_port"
  for _ in $(seq 100); do
    redis_cli -p "$replica_port" info replication | grep -q master_link_status:up && break
    sleep 0.1
  done
  sentinels=()
  for _ in 1 2 3; do
    port=$(free_port)
    start_sentinel "$port" "$master_port"
    sentinels+=("127.0.0.1:$port")
  done
  sentinel_list=$(IFS=,; echo "${sentinels[*]}")
  for s in "${sentinels[@]}"; do
    for _ in $(seq 300); do can_promote "${s#127.0.0.1:}" && break; sleep 0.1; done
    can_promote "${s#127.0.0.1:}" || fail "sentinel $s cannot promote the replica"
  done
}

# can_promote SENTINEL_PORT: that sentinel has fresh INFO from the replica, as
# it needs to promote it (else SENTINEL FAILOVER answers NOGOODSLAVE).
can_promote() {
  redis_cli -p "$1" sentinel replicas mymaster | tr -d '\r' | awk '
    prev == "flags" { flags = $0 } prev == "master-link-status" { link = $0 }
    prev == "info-refresh" { refresh = $0 } { prev = $0 }
    END { exit !(flags == "slave" && link == "ok" && refresh != "" && refresh < 5000) }'
}

# wait_role PORT ROLE [SECONDS]: until ROLE answers "master" or "slave" (30 s).
wait_role() {
  local deadline=$((SECONDS + ${3:-30})) role
  until role=$(redis_cli -p "$1" role 2>/dev/null) && [[ ${role%%$'\n'*} == "$2" ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.05
  done
}

# wait_log NAME PATTERN [SECONDS]: until nginx NAME logged a line matching
# the extended regular expression (30 s).
wait_log() {
  local deadline=$((SECONDS + ${3:-30}))
  until grep -qE "$2" "$e2e_work/$1/error.log"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
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

# start_nginx_pair MODULE REDIS_DIRECTIVE LIMIT [NAME]: NAME1 and NAME2
# (default nginx1 and nginx2; two workers each) on one Redis deployment,
# waited for; their ports in `ports`, their names in `pair`.
# Both serve /exact (sliding_log, LIMIT per 60 s per X-Client), /wide (a limit
# never reached; X-Status: $rate_guard_status) and /metrics.
start_nginx_pair() {
  local module=$1 redis=$2 limit=$3 n port
  ports=()
  pair=()
  for n in 1 2; do
    port=$(free_port)
    ports+=("$port")
    pair+=("${4:-nginx}$n")
    start_nginx "${pair[-1]}" "$module" "
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

# fail_policy ZONE: requests of start_nginx_pair's pair decided by
# rate_guard_fail, summed over both servers.
fail_policy() {
  local total=0 port n
  for port in "${ports[@]}"; do
    n=$(curl -s "http://127.0.0.1:$port/metrics" |
        awk -v name="rate_guard_requests_fail_policy_total{zone=\"$1\"}" '$1 == name { print $2 }')
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

# load_until_stopped KEY FILE: bursts of 5000 requests of client KEY to /wide
# over both instances, 16 at a time, one after the other, their codes in
# FILE, until $e2e_work/stop-load exists (so the load covers a whole failover
# however fast the fail policy answers), or the script exits; its PID in
# $load_pid.
load_until_stopped() {
  rm -f "$e2e_work/stop-load"
  : > "$2"
  (while [[ ! -e $e2e_work/stop-load ]]; do burst 5000 16 "X-Client: $1" $(pair_urls wide) >> "$2"; done) &
  load_pid=$!
  track "$load_pid"
}

# stop_load: the load of load_until_stopped ends after its current burst.
stop_load() {
  touch "$e2e_work/stop-load"
  wait "$load_pid"
  untrack "$load_pid"
}

# all_answered FILE LABEL FAIL_POLICY_BEFORE SENT: every one of the SENT
# requests to /wide whose codes are in FILE got 200 (fail_policy wide was
# FAIL_POLICY_BEFORE when they began).
all_answered() {
  local answered ok sent=$4
  answered=$(grep -cv '^000$' "$1" || true)
  ok=$(grep -c '^200$' "$1" || true)
  echo "$2: $sent sent, $answered answered, $ok with 200," \
       "$(($(fail_policy wide) - $3)) decided by the fail policy (rate_guard_fail open)"
  if [[ $answered -ne $sent || $ok -ne $sent ]]; then
    fail "$2: every request must be answered with 200"
    sort "$1" | uniq -c >&2
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

# worker_pids NAME: the PIDs of nginx NAME's workers (its master's
# children), on one line.
worker_pids() {
  pgrep -P "$(cat "$e2e_work/$1/nginx.pid")" | sort -n | paste -sd' ' -
}

# serve NAME PORT REDIS_ARGS: nginx NAME with the module in $module, limiting
# /t at 5 per minute (sliding_log) through `rate_guard_redis REDIS_ARGS
# timeout=500ms connect_timeout=500ms`; X-Status tells who decided.
serve() {
  start_nginx "$1" "$module" "
    rate_guard_redis $3 timeout=500ms connect_timeout=500ms;
    rate_guard_zone \$http_x_client zone=five rate=5r/m algorithm=sliding_log;
    server {
        listen 127.0.0.1:$2;
        location = /t { rate_guard zone=five; add_header X-Status \$rate_guard_status always; empty_gif; }
    }"
  wait_http "$2"
}

# statuses NAME PORT CLIENT: 8 requests of CLIENT to serve's /t, one after
# the other; prints "code:status" for each.
statuses() {
  local i out=()
  for i in $(seq 8); do
    out+=("$(curl -s -o /dev/null -D - -H "X-Client: $3" "http://127.0.0.1:$2/t" |
      awk 'NR == 1 { code = $2 } tolower($1) == "x-status:" { sub(/\r/, "", $2); status = $2 } END { print code ":" status }')")
  done
  echo "${out[*]}"
}

# What statuses prints when Redis decides (5 pass, then rejections), and
# when the fail policy (open) does.
exact="200:PASSED 200:PASSED 200:PASSED 200:PASSED 200:PASSED 429:REJECTED 429:REJECTED 429:REJECTED"
failed="200:ERROR 200:ERROR 200:ERROR 200:ERROR 200:ERROR 200:ERROR 200:ERROR 200:ERROR"

# expect NAME REDIS_ARGS EXPECTED [LOG_PATTERN]: serve NAME on a free port;
# statuses of a client of its own are EXPECTED; its error log has a line
# matching LOG_PATTERN (extended regular expression); no crash.
expect() {
  local port got
  port=$(free_port)
  serve "$1" "$port" "$2"
  sleep 0.3  # the first connection: refused ones have failed by now
  got=$(statuses "$1" "$port" "client-of-$1")
  if [[ $got == "$3" ]]; then
    echo "ok: $1: $got"
  else
    fail "$1: got $got, expected $3"
  fi
  if [[ -n ${4:-} ]] && ! grep -qE "$4" "$e2e_work/$1/error.log"; then
    fail "$1: no line matching /$4/ in its error log: $(grep rate_guard "$e2e_work/$1/error.log" | tail -2)"
  fi
  no_crash "$1"
}

# Redis Cluster. start_cluster MASTERS REPLICAS: MASTERS x (1 + REPLICAS)
# redis-servers started with start_redis (so stopped by PID on exit), each
# with cluster-node-timeout 1000 ms (fast failover), a cluster bus port of its
# own (not port+10000, which may be taken) and nodes.conf in its own
# directory; joined by `redis-cli --cluster create`; returns once the cluster
# is stable (wait_cluster_stable). Sets cluster_ports (every node) and
# cluster_pid[PORT]; stop a node with stop_cluster_node PORT. After
# redis_tls, every node is TLS-only, the cluster bus too.
declare -A cluster_pid=()
cluster_ports=()
cluster_why=

start_cluster() {
  local masters=$1 replicas=$2 total i
  local -a picked
  total=$((masters * (1 + replicas)))
  mapfile -t picked < <(free_ports $((2 * total)))
  for ((i = 0; i < total; i++)); do
    start_cluster_node "${picked[$((2 * i))]}" "${picked[$((2 * i + 1))]}" || return 1
  done
  if ! redis_cli --cluster create $(printf '127.0.0.1:%s ' "${cluster_ports[@]}") \
      --cluster-replicas "$replicas" --cluster-yes > "$e2e_work/cluster-create.log" 2>&1; then
    echo "redis-cli --cluster create failed: $(tail -5 "$e2e_work/cluster-create.log")" >&2
    return 1
  fi
  wait_cluster_stable
}

# start_cluster_node PORT BUS_PORT: a redis-server of the cluster (not yet
# joined), in cluster_ports and cluster_pid.
start_cluster_node() {
  # repl-diskless-sync-delay 0: a replica's first sync at once, not 5 s
  # later (it cannot be promoted before); repl-ping-replica-period 1: its
  # offset moves within 1 s, and only then does CLUSTER SLOTS list it.
  start_redis "$1" --cluster-enabled yes --cluster-config-file nodes.conf \
    --cluster-node-timeout 1000 --cluster-port "$2" \
    --repl-diskless-sync-delay 0 --repl-ping-replica-period 1 || return 1
  cluster_pid[$1]=$bg_pid
  cluster_ports+=("$1")
}

# add_cluster_master: one more node, joined as a master that serves no slot
# (`redis-cli --cluster add-node`); returns once the cluster is stable, with
# its port in $added_port.
add_cluster_master() {
  local -a picked
  mapfile -t picked < <(free_ports 2)
  start_cluster_node "${picked[0]}" "${picked[1]}" || return 1
  added_port=${picked[0]}
  if ! redis_cli --cluster add-node "127.0.0.1:$added_port" "127.0.0.1:$(cluster_masters | head -1)" \
      > "$e2e_work/cluster-add-node.log" 2>&1; then
    echo "redis-cli --cluster add-node failed: $(tail -5 "$e2e_work/cluster-add-node.log")" >&2
    return 1
  fi
  wait_cluster_stable || return 1
  # Stable once every node knows it (it has no slot, so cluster_map is silent).
  local deadline=$((SECONDS + 30)) port
  for port in "${cluster_ports[@]}"; do
    until redis_cli -p "$port" cluster nodes | grep -q "127\.0\.0\.1:$added_port@.*master.* connected"; do
      ((SECONDS < deadline)) || { echo "127.0.0.1:$port does not see 127.0.0.1:$added_port as a master" >&2; return 1; }
      sleep 0.05
    done
  done
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
  redis_cli -p "$1" cluster nodes | tr -d '\r' | awk '
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
  redis_cli -p "$(cluster_any_port)" cluster keyslot "$1"
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
    info=$(redis_cli -p "$port" cluster info 2>&1)
    [[ $info == *cluster_state:ok* ]] || { cluster_why="127.0.0.1:$port is not cluster_state:ok"; return 1; }
    map=$(cluster_map "$port")
    if [[ -z $first_port ]]; then
      first=$map first_port=$port
    elif [[ $map != "$first" ]]; then
      cluster_why="127.0.0.1:$first_port and 127.0.0.1:$port see different maps"
      return 1
    fi
    role=$(redis_cli -p "$port" role 2>&1)
    if [[ ${role%%$'\n'*} == slave ]]; then
      info=$(redis_cli -p "$port" info replication 2>&1)
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

# A client's keys in the cluster, in start_nginx_pair's zones:
# "rate_guard:<zone>:{<client key>}", one slot for all of them.
# slot_of KEY: its slot. owner_of KEY: the master serving it.
slot_of() { key_slot "rate_guard:exact:{$1}"; }
owner_of() { slot_owner "$(slot_of "$1")"; }
# key_on PREFIX MASTER: the first of PREFIX1, PREFIX2, ... whose slot MASTER serves.
key_on() {
  local i
  for i in $(seq 500); do
    [[ $(owner_of "$1$i") == "$2" ]] && { echo "$1$i"; return 0; }
  done
  echo "no key $1* on 127.0.0.1:$2" >&2
  return 1
}
# stored_on PORT ZONE KEY: that node holds the zone's key of that client.
stored_on() { [[ $(redis_cli -p "$1" exists "rate_guard:$2:{$3}") == 1 ]]; }

# A slot migrated as redis-cli does: begin_migration, migrate_keys,
# finish_migration. A failure there is the end of the script (die).
node_id() { redis_cli -p "$1" cluster myid; }
# begin_migration SLOT FROM TO: IMPORTING on the destination first, then
# MIGRATING on the source (which from then answers ASK for keys it lacks).
begin_migration() {
  local reply
  reply=$(redis_cli -p "$3" cluster setslot "$1" importing "$(node_id "$2")")
  [[ $reply == OK ]] || die "CLUSTER SETSLOT $1 IMPORTING on 127.0.0.1:$3: $reply"
  reply=$(redis_cli -p "$2" cluster setslot "$1" migrating "$(node_id "$3")")
  [[ $reply == OK ]] || die "CLUSTER SETSLOT $1 MIGRATING on 127.0.0.1:$2: $reply"
}
# migrate_keys SLOT FROM TO: MIGRATE the slot's keys, 100 at a time (CLUSTER
# GETKEYSINSLOT); prints how many moved.
migrate_keys() {
  local moved=0 reply
  local -a keys
  while :; do
    mapfile -t keys < <(redis_cli -p "$2" cluster getkeysinslot "$1" 100)
    [[ ${#keys[@]} -gt 0 && -n ${keys[0]} ]] || break
    reply=$(redis_cli -p "$2" migrate 127.0.0.1 "$3" "" 0 5000 keys "${keys[@]}")
    if [[ $reply != OK && $reply != NOKEY ]]; then
      echo "MIGRATE from 127.0.0.1:$2 to 127.0.0.1:$3: $reply" >&2
      return 1
    fi
    moved=$((moved + ${#keys[@]}))
  done
  echo "$moved"
}
# finish_migration SLOT FROM TO: what is left migrated, then SETSLOT NODE on
# the destination, the source and the other masters; until every node sees
# the slot on TO (the source then answers MOVED).
finish_migration() {
  local id port reply deadline=$((SECONDS + 30))
  migrate_keys "$1" "$2" "$3" > /dev/null || die "the keys of slot $1 could not be migrated"
  id=$(node_id "$3")
  for port in "$3" "$2" $(cluster_masters | grep -vxE "$2|$3" || true); do
    reply=$(redis_cli -p "$port" cluster setslot "$1" node "$id")
    [[ $reply == OK ]] || die "CLUSTER SETSLOT $1 NODE on 127.0.0.1:$port: $reply"
  done
  for port in "${cluster_ports[@]}"; do
    cluster_running "$port" || continue
    until [[ $(slot_owner "$1" "$port") == "$3" ]]; do
      ((SECONDS < deadline)) || die "127.0.0.1:$port does not see slot $1 on 127.0.0.1:$3"
      sleep 0.05
    done
  done
  wait_cluster_stable
}
