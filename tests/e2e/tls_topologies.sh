#!/usr/bin/env bash
# Sentinel and Cluster over TLS for real: Debian's redis-server, every
# server TLS-only (--port 0 --tls-port), replication, sentinels and the
# cluster bus over TLS too; certificates made here with openssl (make_certs:
# the server's for redis.test and 127.0.0.1); nginx pairs (two workers each)
# with `tls=on tls_trusted_certificate=` and no tls_name (each server's
# address is the name checked).
# (a) Sentinel: a master, a replica, three sentinels. The limit is exact
#     across both servers; the master killed (SIGKILL, by its PID) under a
#     load that runs until both nginx decide through the promoted replica:
#     every request answered, no worker lost; then the limit exact on the new
#     master, found over TLS.
# (b) Cluster: three masters (CLUSTER SLOTS announces their TLS ports). The
#     limit is exact for clients on every master; a fourth master added and a
#     slot migrated to it: nginx follows MOVED to a node it never spoke to,
#     over TLS, and the client's count moved with its key.
# (c) tls_name=redis.test is checked on every cluster node: exact; a name or
#     a CA that does not match, on the cluster and on the sentinels: refused,
#     the fail policy answers, the reason is logged.
#
# Usage: tls_topologies.sh MODULE.so
set -euo pipefail
source "$(dirname "$0")/lib.sh"

module=$(realpath "$1")
limit=5
make_certs
redis_tls "$certs/ca.pem" "$certs/server.pem" "$certs/server.key"
tls="tls=on tls_trusted_certificate=$certs/ca.pem"

# ready: both instances of the pair decide through Redis.
ready() {
  local port
  for port in "${ports[@]}"; do
    decided_by_redis "$port" ready || die "nginx on port $port does not decide through Redis over TLS"
  done
}
# redirects: MOVED and ASK followed by the pair, summed.
redirects() {
  local total=0 port n
  for port in "${ports[@]}"; do
    n=$(curl -s "http://127.0.0.1:$port/metrics" | awk '$1 == "rate_guard_redis_redirects_total" { print $2 }')
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

echo "== (a) Sentinel over TLS"
start_sentinels
echo "master 127.0.0.1:$master_port (PID $master_pid), replica 127.0.0.1:$replica_port, sentinels $sentinel_list, all TLS-only"
start_nginx_pair "$module" \
  "rate_guard_redis sentinel=$sentinel_list master=mymaster $tls timeout=1s connect_timeout=1s;" "$limit" sentinel
ready
exact_round before "before the failover" "$limit"
[[ $(redis_cli -p "$master_port" exists "rate_guard:exact:before") == 1 ]] || fail "the checks did not go to the master"
workers_before="$(worker_pids sentinel1) $(worker_pids sentinel2)"
before=$(fail_policy wide)
load_until_stopped during "$e2e_work/sentinel-during"
sleep 0.5
stop "$master_pid" KILL
killed=$SECONDS
wait_role "$replica_port" master 60 || die "the replica 127.0.0.1:$replica_port was not promoted"
echo "master killed; replica promoted within $((SECONDS - killed)) s"
for n in 1 2; do
  wait_log "sentinel$n" "switched to 127\.0\.0\.1:$replica_port" 30 || fail "sentinel$n did not follow the failover"
done
for port in "${ports[@]}"; do
  decided_by_redis "$port" probe || fail "nginx on port $port is not deciding through the new master"
done
stop_load
sent=$(wc -l < "$e2e_work/sentinel-during")
all_answered "$e2e_work/sentinel-during" "during the failover" "$before" "$sent"
((sent > 0 && sent % 5000 == 0)) || fail "a burst of the load lost answers ($sent codes)"
workers_after="$(worker_pids sentinel1) $(worker_pids sentinel2)"
[[ $workers_after == "$workers_before" ]] || fail "workers changed during the failover: $workers_before, then $workers_after"
exact_round after "after the failover" "$limit"
[[ $(redis_cli -p "$replica_port" exists "rate_guard:exact:after") == 1 ]] || fail "the checks did not go to the new master"
for n in 1 2; do no_crash "sentinel$n"; done

echo "== (b) Cluster over TLS"
start_cluster 3 0
echo "masters $(cluster_seeds), TLS-only, the cluster bus too"
start_nginx_pair "$module" "rate_guard_redis cluster=$(cluster_seeds) $tls timeout=1s connect_timeout=1s;" "$limit" cluster
ready
for master in $(cluster_masters); do
  key=$(key_on exact- "$master")
  exact_round "$key" "client '$key' (slot $(slot_of "$key"), master 127.0.0.1:$master)" "$limit"
  stored_on "$master" exact "$key" || fail "rate_guard:exact:{$key} is not on 127.0.0.1:$master"
done

add_cluster_master || die "no fourth master"
from=$(cluster_masters | head -1)
moving=$(key_on moving- "$from")
slot=$(slot_of "$moving")
burst 3 1 "X-Client: $moving" $(pair_urls exact) > "$e2e_work/codes"
[[ $(grep -c '^200$' "$e2e_work/codes") -eq 3 ]] || fail "3 requests of '$moving' before the migration must pass"
stored_on "$from" exact "$moving" || fail "rate_guard:exact:{$moving} is not on 127.0.0.1:$from"
redirects_before=$(redirects)
begin_migration "$slot" "$from" "$added_port"
finish_migration "$slot" "$from" "$added_port"
echo "slot $slot of client '$moving' migrated from 127.0.0.1:$from to the new master 127.0.0.1:$added_port"
exact_round "$moving" "after the migration, client '$moving' (3 passed before)" $((limit - 3))
stored_on "$added_port" exact "$moving" || fail "rate_guard:exact:{$moving} is not on 127.0.0.1:$added_port"
followed=$(($(redirects) - redirects_before))
echo "MOVED followed: $followed"
((followed > 0)) || fail "no MOVED was followed"
for n in 1 2; do
  wait_log "cluster$n" "Redis Cluster masters: .*127\.0\.0\.1:$added_port \(1 slots\)" 10 ||
    fail "cluster$n did not log the slot map with 127.0.0.1:$added_port"
  no_crash "cluster$n"
done

echo "== (c) names and CAs"
seeds=$(cluster_seeds)
expect cluster_named "cluster=$seeds $tls tls_name=redis.test" "$exact"
expect cluster_wrong_name "cluster=$seeds $tls tls_name=other.test" "$failed" \
  'TLS certificate does not match "other\.test"'
expect sentinel_other_ca "sentinel=$sentinel_list master=mymaster tls=on tls_trusted_certificate=$certs/other_ca.pem" \
  "$failed" "TLS certificate verify error"

exit "$e2e_status"
