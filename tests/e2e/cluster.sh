#!/usr/bin/env bash
# Redis Cluster for real: three masters and three replicas; two nginx
# instances (two workers each) learn the slot map from the seeds and send each
# client's checks to the master of its slot (the keys are
# "rate_guard:<zone>:{<client key>}": one client's zones share one slot).
# (a) The limit is exact across both servers, for keys on every master.
# (b) A master killed (SIGKILL, by its PID) under a load that runs until
#     both nginx decide through Redis again: every request answered, the fail
#     policy deciding until the replica is promoted; then the limit exact on
#     the promoted replica.
# (c) A slot migrated to another master under load, as redis-cli does
#     (IMPORTING/MIGRATING: ASK; MIGRATE; SETSLOT NODE: MOVED): every request
#     answered, the client's count moved with its keys, the limit exact after.
#
# Usage: cluster.sh MODULE.so
set -euo pipefail
source "$(dirname "$0")/lib.sh"

module=$(realpath "$1")
limit=100
during=50000  # requests of each load: enough to outlast a failover (about 3 s)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
# die MESSAGE: a failure after which the scenario cannot go on.
die() {
  fail "$*"
  exit 1
}

started=$(now)
start_cluster 3 1
seeds=$(cluster_seeds)
echo "cluster of 3 masters + 3 replicas up in $(since "$started") s:"
for master in $(cluster_masters); do
  echo "  master 127.0.0.1:$master, slots $(cluster_map "$master" | awk -v m="$master" '$1 == "slots" && $3 == m { print $2 }' | paste -sd' ' -)," \
       "replica 127.0.0.1:$(cluster_replicas "$master" | paste -sd, -)"
done

start_nginx_pair "$module" "rate_guard_redis cluster=$seeds timeout=100ms connect_timeout=100ms;" "$limit"

# slot_of KEY: the slot of the client key's Redis key (the same in every zone).
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
# key_in_slot PREFIX SLOT: a client key PREFIXn hashed to SLOT (CRC16 mod 16384).
key_in_slot() {
  python3 -c '
import binascii, sys
prefix, slot, i = sys.argv[1], int(sys.argv[2]), 0
while binascii.crc_hqx(f"{prefix}{i}".encode(), 0) % 16384 != slot:
    i += 1
print(f"{prefix}{i}")' "$1" "$2"
}
# stored_on PORT ZONE KEY: that node holds the zone's key of that client.
stored_on() { [[ $(redis-cli -p "$1" exists "rate_guard:$2:{$3}") == 1 ]]; }
# fail_policy ZONE: requests decided by rate_guard_fail, summed over both servers.
fail_policy() {
  local total=0 port n
  for port in "${ports[@]}"; do
    n=$(curl -s "http://127.0.0.1:$port/metrics" |
        awk -v name="rate_guard_requests_fail_policy_total{zone=\"$1\"}" '$1 == name { print $2 }')
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

# load KEY FILE: $during requests, 16 at a time, on a limit never reached, in
# the background; its PID in $load_pid. Returns once the first answers are in
# (curl's output to a file comes in blocks of about a thousand), not while
# burst is still writing its curl config.
load() {
  local deadline=$((SECONDS + 10))
  burst "$during" 16 "X-Client: $1" $(pair_urls wide) > "$2" &
  load_pid=$!
  until [[ -s $2 ]] || ((SECONDS >= deadline)); do sleep 0.01; done
}
# load_until_stopped KEY FILE: bursts of 5000 requests like load, one after
# the other, until $e2e_work/stop-load exists (so the load covers the whole
# failover however fast the fail policy answers); PID in $load_pid.
load_until_stopped() {
  rm -f "$e2e_work/stop-load"
  : > "$2"
  (while [[ ! -e $e2e_work/stop-load ]]; do burst 5000 16 "X-Client: $1" $(pair_urls wide) >> "$2"; done) &
  load_pid=$!
}
# load_running: whether the load is still going.
load_running() { kill -0 "$load_pid" 2>/dev/null && echo "still running" || echo "already over"; }
# all_answered FILE LABEL FAIL_POLICY_BEFORE [SENT]: every request of the
# load (SENT, default $during) got 200.
all_answered() {
  local answered ok sent=${4:-$during}
  answered=$(grep -cv '^000$' "$1" || true)
  ok=$(grep -c '^200$' "$1" || true)
  echo "$2: $sent sent, $answered answered, $ok with 200," \
       "$(($(fail_policy wide) - $3)) decided by the fail policy (rate_guard_fail open)"
  if [[ $answered -ne $sent || $ok -ne $sent ]]; then
    fail "$2: every request must be answered with 200"
    sort "$1" | uniq -c >&2
  fi
}

node_id() { redis-cli -p "$1" cluster myid; }
# begin_migration SLOT FROM TO: IMPORTING on the destination first, then
# MIGRATING on the source (which from then answers ASK for keys it lacks).
begin_migration() {
  local reply
  reply=$(redis-cli -p "$3" cluster setslot "$1" importing "$(node_id "$2")")
  [[ $reply == OK ]] || die "CLUSTER SETSLOT $1 IMPORTING on 127.0.0.1:$3: $reply"
  reply=$(redis-cli -p "$2" cluster setslot "$1" migrating "$(node_id "$3")")
  [[ $reply == OK ]] || die "CLUSTER SETSLOT $1 MIGRATING on 127.0.0.1:$2: $reply"
}
# migrate_keys SLOT FROM TO: MIGRATE the slot's keys, 100 at a time (CLUSTER
# GETKEYSINSLOT); prints how many moved.
migrate_keys() {
  local moved=0 reply
  local -a keys
  while :; do
    mapfile -t keys < <(redis-cli -p "$2" cluster getkeysinslot "$1" 100)
    [[ ${#keys[@]} -gt 0 && -n ${keys[0]} ]] || break
    reply=$(redis-cli -p "$2" migrate 127.0.0.1 "$3" "" 0 5000 keys "${keys[@]}")
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
    reply=$(redis-cli -p "$port" cluster setslot "$1" node "$id")
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

echo "== (a) the limit is exact, on every master"
for master in $(cluster_masters); do
  key=$(key_on exact- "$master")
  exact_round "$key" "client '$key' (slot $(slot_of "$key"), master 127.0.0.1:$master)" "$limit"
  stored_on "$master" exact "$key" || fail "rate_guard:exact:{$key} is not on 127.0.0.1:$master"
done

echo "== (b) a master killed under load"
victim=$(owner_of during)
replica=$(cluster_replicas "$victim")
[[ -n $replica ]] || die "127.0.0.1:$victim has no replica"
probe=$(key_on probe- "$victim")
after=$(key_on after- "$victim")
echo "client 'during' (slot $(slot_of during)) is on master 127.0.0.1:$victim (PID ${cluster_pid[$victim]}), replica 127.0.0.1:$replica"
before=$(fail_policy wide)
load_started=$(now)
load_until_stopped during "$e2e_work/during"
sleep 0.5
killed=$(now)
stop_cluster_node "$victim" KILL
for _ in $(seq 600); do
  role=$(redis-cli -p "$replica" role)
  [[ ${role%%$'\n'*} == master ]] && break
  sleep 0.05
done
[[ ${role%%$'\n'*} == master ]] || fail "the replica 127.0.0.1:$replica was not promoted"
echo "master 127.0.0.1:$victim killed; replica 127.0.0.1:$replica promoted $(since "$killed") s later (the load $(load_running))"
wait_cluster_stable || die "the cluster did not settle after the failover"
echo "cluster stable again $(since "$killed") s after the kill; masters now $(cluster_seeds)"
# Both instances use the promoted replica: consecutive checks decided by
# Redis, from both workers of each, for a client on the failed-over slots.
for port in "${ports[@]}"; do
  if decided_by_redis "$port" "$probe"; then
    echo "nginx on port $port: 8 consecutive checks of client '$probe' decided by Redis (PASSED) $(since "$killed") s after the kill"
  else
    fail "nginx on port $port is not deciding through 127.0.0.1:$replica (client '$probe')"
  fi
done
# Each worker says which masters it now uses.
for n in 1 2; do
  grep -q "Redis Cluster masters: .*127\.0\.0\.1:$replica (" "$e2e_work/nginx$n/error.log" ||
    fail "nginx$n did not log the new slot map with 127.0.0.1:$replica"
done
# The load ran on from before the kill until both decide through Redis again.
touch "$e2e_work/stop-load"
wait "$load_pid"
echo "the load ran $(since "$load_started") s"
all_answered "$e2e_work/during" "during the failover" "$before" "$(wc -l < "$e2e_work/during")"
(($(wc -l < "$e2e_work/during") % 5000 == 0)) || fail "a burst of the load lost answers"
[[ $(owner_of "$after") == "$replica" ]] || fail "client '$after' is not on the promoted 127.0.0.1:$replica"
exact_round "$after" "after the failover, client '$after' (slot $(slot_of "$after"), was on 127.0.0.1:$victim)" "$limit"
stored_on "$replica" exact "$after" || fail "rate_guard:exact:{$after} is not on the promoted 127.0.0.1:$replica"

echo "== (c) a slot migrated to another master under load"
masters=($(cluster_masters))
from=${masters[0]} to=${masters[1]}
moving=$(key_on moving- "$from")
slot=$(slot_of "$moving")
burst 60 16 "X-Client: $moving" $(pair_urls exact) > "$e2e_work/codes"
early=$(grep -c '^200$' "$e2e_work/codes" || true)
echo "client '$moving' (slot $slot) on master 127.0.0.1:$from: $early of 60 passed before the migration"
[[ $early -eq 60 ]] || fail "all 60 requests before the migration must pass"
stored_on "$from" exact "$moving" || fail "rate_guard:exact:{$moving} is not on 127.0.0.1:$from"
before=$(fail_policy wide)
load_started=$(now)
load "$moving" "$e2e_work/moving"
begin_migration "$slot" "$from" "$to"
sleep 0.3  # MIGRATING: the source still serves the keys it holds
moved=$(migrate_keys "$slot" "$from" "$to") || die "the keys of slot $slot could not be migrated"
migrated=$(now)
sleep 0.5  # keys gone from the source: it answers ASK
finish_migration "$slot" "$from" "$to"
asking=$(redis-cli -p "$to" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_asking:calls=\([0-9]*\).*/\1/p')
echo "slot $slot: $moved keys migrated from 127.0.0.1:$from to 127.0.0.1:$to; ASK for $(since "$migrated") s, then MOVED" \
     "(the load $(load_running)); 127.0.0.1:$to got ${asking:-0} ASKING"
wait "$load_pid"
echo "the load took $(since "$load_started") s"
all_answered "$e2e_work/moving" "during the migration" "$before"
[[ $(owner_of "$moving") == "$to" ]] || fail "slot $slot is not on 127.0.0.1:$to"
exact_round "$moving" "after the migration, client '$moving' (60 passed before)" $((limit - 60))
stored_on "$to" exact "$moving" || fail "rate_guard:exact:{$moving} is not on the new master 127.0.0.1:$to"
fresh=$(key_in_slot fresh- "$slot")
[[ $(slot_of "$fresh") == "$slot" ]] || die "client '$fresh' is not in slot $slot"
exact_round "$fresh" "after the migration, fresh client '$fresh' (slot $slot)" "$limit"
stored_on "$to" exact "$fresh" || fail "rate_guard:exact:{$fresh} is not on the new master 127.0.0.1:$to"

for n in 1 2; do
  echo "nginx$n: $(grep -c 'rate_guard: ' "$e2e_work/nginx$n/error.log" || true) 'rate_guard:' lines about Redis," \
       "$(curl -s "http://127.0.0.1:${ports[$((n - 1))]}/metrics" | grep -E '^rate_guard_redis_(reconnects|errors|redirects|slot_map_refreshes)_total' | paste -sd' ' -)"
  no_crash "nginx$n"
done
exit $e2e_status
