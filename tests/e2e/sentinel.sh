#!/usr/bin/env bash
# Redis Sentinel for real: a master, a replica and three sentinels; two nginx
# instances (two workers each) find the master through the sentinels. The
# limit is exact across both; a failover (SENTINEL FAILOVER) under load is
# survived, every request answered, the fail policy deciding meanwhile; and
# the limit is exact again on the new master.
#
# Usage: sentinel.sh MODULE.so
set -euo pipefail
source "$(dirname "$0")/lib.sh"

module=$(realpath "$1")
limit=100

start_sentinels
first_sentinel=${sentinels[0]#127.0.0.1:}

start_nginx_pair "$module" \
  "rate_guard_redis sentinel=$sentinel_list master=mymaster timeout=100ms connect_timeout=100ms;" "$limit"

exact_round before "before the failover" "$limit"

# Load during the failover: 20000 requests, 16 at a time, on a limit never
# reached; meanwhile the sentinels promote the replica.
during=20000
burst "$during" 16 "X-Client: during" $(pair_urls wide) > "$e2e_work/during" &
load=$!
sleep 0.3
redis-cli -p "$first_sentinel" sentinel failover mymaster > /dev/null
wait "$load"
answered=$(wc -l < "$e2e_work/during")
ok=$(grep -c '^200$' "$e2e_work/during" || true)
echo "during the failover: $during sent, $answered answered, $ok with 200 (fail open while the master moves)"
[[ $answered -eq $during && $ok -eq $during ]] || { fail "every request must be answered with 200"; sort "$e2e_work/during" | uniq -c >&2; }

wait_role "$replica_port" master 10 || fail "the replica was not promoted"
# Both instances follow the sentinels' +switch-master to the new master.
for n in 1 2; do
  wait_log "nginx$n" "switched to 127.0.0.1:$replica_port" 10 || fail "nginx$n did not follow the failover"
done
# ... and are connected to it again: consecutive checks decided by Redis
# (PASSED, not ERROR) from both workers of each instance.
for port in "${ports[@]}"; do
  decided_by_redis "$port" probe || fail "nginx on port $port is not deciding through the new master"
done
exact_round after "after the failover" "$limit"
[[ $(redis-cli -p "$replica_port" exists "rate_guard:exact:after") == 1 ]] || fail "the checks did not go to the new master"
for n in 1 2; do
  echo "nginx$n: $(grep -c 'switched to' "$e2e_work/nginx$n/error.log" || true) '+switch-master' lines," \
       "$(curl -s "http://127.0.0.1:${ports[$((n - 1))]}/metrics" | grep '^rate_guard_redis_reconnects_total')"
  no_crash "nginx$n"
done
exit $e2e_status
