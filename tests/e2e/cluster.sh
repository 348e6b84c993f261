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

started=$(now)
start_cluster 3 1
seeds=$(cluster_seeds)
echo "cluster of 3 masters + 3 replicas up in $(since "$started") s:"
for master in $(cluster_masters); do
  echo "  master 127.0.0.1:$master, slots $(cluster_map "$master" | awk -v m="$master" '$1 == "slots" && $3 == m { print $2 }' | paste -sd' ' -)," \
       "replica 127.0.0.1:$(cluster_replicas "$master" | paste -sd, -)"
done

start_nginx_pair "$module" "rate_guard_redis cluster=$seeds timeout=100ms connect_timeout=100ms;" "$limit"

# key_in_slot PREFIX SLOT: a client key PREFIXn hashed to SLOT (CRC16 mod 16384).
key_in_slot() {
  python3 -c '
import binascii, sys
prefix, slot, i = sys.argv[1], int(sys.argv[2]), 0
while binascii.crc_hqx(f"{prefix}{i}".encode(), 0) % 16384 != slot:
    i += 1
print(f"{prefix}{i}")' "$1" "$2"
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
# load_running: whether the load is still going.
load_running() { kill -0 "$load_pid" 2>/dev/null && echo "still running" || echo "already over"; }

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
wait_role "$replica" master 30 || fail "the replica 127.0.0.1:$replica was not promoted"
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
stop_load
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
all_answered "$e2e_work/moving" "during the migration" "$before" "$during"
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
