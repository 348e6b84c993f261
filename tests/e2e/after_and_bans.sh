#!/usr/bin/env bash
# Issue 15 across servers: two nginx (two workers each) on one Redis.
#
#   a) count=after adds up over the fleet: failed logins (401, counted after
#      the response through `if=$login_failed`) made on both servers fill one
#      limit of 10, while correct logins on both use none of it; tokens
#      charged from an upstream header (X-Tokens-Used: 7) on both servers
#      spend one budget of 100: exactly 15 requests pass (the 15th sees 2
#      left), the 16th gets 429 on either server.
#   b) a ban written by rate-guard-ctl rejects on both servers within 1.5 s
#      (the promise: about a second, the blocked-key cache and leases
#      included), measured from just before rate-guard-ctl runs until each
#      server answers 429 with the ban's Retry-After, for a key admitted from
#      leases (kept busy by wrk on both servers, lease_time=2s, so that only
#      the 1 s cap on a lease's life bounds it) and for a key held in both
#      blocked-key caches (rejected by its limit just before); then unban
#      lifts it on both within the same bound.
#   c) an override raises and lowers a key's limit on both servers (exact
#      counts over both), and rate=unlimited lets everything through.
#
# Usage: after_and_bans.sh MODULE.so [RATE_GUARD_CTL]
#   RATE_GUARD_CTL: the helper (default: the repository's tools/rate-guard-ctl)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

module=$(realpath "$1")
ctl=${2:-${RATE_GUARD_CTL:-$root/tools/rate-guard-ctl}}
bound_ms=1500
[[ -x $ctl ]] || die "rate-guard-ctl not found at $ctl"
command -v wrk > /dev/null || die "wrk is missing (Debian package wrk; ./dev setup installs it)"

redis_port=$(free_port)
start_redis "$redis_port"
ports=()
for n in 1 2; do
  port=$(free_port)
  ports+=("$port")
  start_nginx "nginx$n" "$module" "
    rate_guard_redis 127.0.0.1:$redis_port timeout=500ms;
    map \$status \$login_failed {
        401     1;
        403     1;
        default \"\";
    }
    rate_guard_zone \$http_x_user zone=login rate=10r/m algorithm=sliding_log;
    rate_guard_zone \$http_x_api_key zone=tokens rate=100 window=60s;
    rate_guard_zone \$http_x_client zone=busy rate=1000000 window=1h lease_time=2s;
    rate_guard_zone \$http_x_client zone=strict rate=5r/m algorithm=sliding_log lease=off;
    server {
        listen 127.0.0.1:$port;
        location = /login {
            rate_guard zone=login count=after if=\$login_failed;
            proxy_pass http://127.0.0.1:$port/check-password;
        }
        location = /check-password {
            if (\$http_x_password != \"right\") {
                return 401 \"wrong password\n\";
            }
            return 200 \"welcome\n\";
        }
        location = /chat {
            rate_guard zone=tokens count=after cost=\$upstream_http_x_tokens_used;
            proxy_pass http://127.0.0.1:$port/model;
        }
        location = /model {
            add_header X-Tokens-Used 7;
            return 200 \"answer\n\";
        }
        location = /busy { rate_guard zone=busy; empty_gif; }
        location = /strict { rate_guard zone=strict; empty_gif; }
        location = /metrics { rate_guard off; rate_guard_metrics; }
    }"
done
for port in "${ports[@]}"; do wait_http "$port" || die "nginx did not start: $(tail -5 "$e2e_work"/nginx*/error.log)"; done

ctl() { "$ctl" --redis "127.0.0.1:$redis_port" "$@" > /dev/null || die "rate-guard-ctl $* failed"; }

# ask SERVER PATH HEADER...: one request to server SERVER (0 or 1); prints
# "CODE LIMIT REMAINING RETRY_AFTER" ("-" for a header that is absent).
ask() {
  local server=$1 path=$2 h args=()
  shift 2
  for h in "$@"; do args+=(-H "$h"); done
  curl -s -o /dev/null -D - "${args[@]}" "http://127.0.0.1:${ports[$server]}/$path" | tr -d '\r' | awk '
    NR == 1 { code = $2 }
    tolower($1) == "x-ratelimit-limit:" { limit = $2 }
    tolower($1) == "x-ratelimit-remaining:" { remaining = $2 }
    tolower($1) == "retry-after:" { retry = $2 }
    END { print (code ? code : "000"), (limit != "" ? limit : "-"), (remaining != "" ? remaining : "-"), (retry != "" ? retry : "-") }'
}

# expect LABEL GOT WANTED: GOT (ask's line) must match the extended regular
# expression WANTED.
expect() {
  [[ $2 =~ ^$3$ ]] || fail "$1: got \"$2\", expected \"$3\""
}

# metric COUNTER ZONE: rate_guard_COUNTER_total of ZONE summed over both servers.
metric() {
  local name="rate_guard_$1_total{zone=\"$2\"}" total=0 port n
  for port in "${ports[@]}"; do
    n=$(curl -s --max-time 5 "http://127.0.0.1:$port/metrics" | awk -v name="$name" '$1 == name { print $2 }')
    total=$((total + ${n:-0}))
  done
  echo "$total"
}

now_ms() { date +%s%3N; }

# ---- a) count=after over the fleet
# Failed logins alternate between the servers, each but the last followed
# by a correct login on the other server: every response reports the quota
# before the request, 10 down to 1 for the failures, whatever the correct
# logins did; the 10th failure fills the limit.
for i in $(seq 10); do
  got=$(ask $((i % 2)) login "X-User: mallory" "X-Password: guess$i")
  expect "failed login $i" "$got" "401 10 $((11 - i)) -"
  ((i < 10)) || break
  got=$(ask $(((i + 1) % 2)) login "X-User: mallory" "X-Password: right")
  expect "correct login after failure $i" "$got" "200 10 $((10 - i)) -"
done
for server in 0 1; do
  got=$(ask $server login "X-User: mallory" "X-Password: right")
  expect "a correct login once 10 failures are counted, server $((server + 1))" "$got" "429 10 0 (59|60)"
done
echo "count=after: 10 failed and 9 correct logins over 2 servers: the 10 failures filled the limit of 10, the correct logins none of it"

passed=0
for i in $(seq 20); do
  got=$(ask $((i % 2)) chat "X-Api-Key: team-b")
  if [[ $got == 200\ * ]]; then
    passed=$((passed + 1))
    expect "chat $i" "$got" "200 100 $((100 - 7 * (i - 1))) -"
  else
    expect "chat $i" "$got" "429 100 0 [1-9][0-9]*"
  fi
done
units=$(metric after_units tokens)
counts=$(metric after_counts tokens)
echo "count=after: 20 requests of 7 tokens over 2 servers, budget 100: $passed passed; charged $counts times, $units tokens"
[[ $passed -eq 15 ]] || fail "tokens: $passed passed, expected exactly 15 (the 15th sees 2 left)"
[[ $counts -eq 15 && $units -eq 105 ]] || fail "tokens: $counts charges of $units units, expected 15 of 105"

# ---- b) bans, seen on both servers within $bound_ms ms
# until_both LABEL KEY PATH REGEX: asks both servers for KEY on PATH, each
# until its answer matches REGEX (3 s at most); prints how long each took
# from $t0, and fails when one took longer than $bound_ms.
until_both() {
  local label=$1 key=$2 path=$3 regex=$4 server got elapsed
  local -a seen=(- -)
  while [[ ${seen[0]} == - || ${seen[1]} == - ]]; do
    for server in 0 1; do
      [[ ${seen[$server]} == - ]] || continue
      got=$(ask $server "$path" "X-Client: $key")
      elapsed=$(($(now_ms) - t0))
      if [[ $got =~ ^$regex$ ]]; then
        seen[server]=$elapsed
      elif ((elapsed > 3000)); then
        seen[server]=never
        fail "$label: server $((server + 1)) still answers \"$got\" after 3 s"
      fi
    done
    sleep 0.01
  done
  echo "$label: server 1 after ${seen[0]} ms, server 2 after ${seen[1]} ms (bound $bound_ms ms)"
  for server in 0 1; do
    [[ ${seen[$server]} == never || ${seen[$server]} -le $bound_ms ]] ||
      fail "$label: server $((server + 1)) took ${seen[$server]} ms, more than $bound_ms"
  done
}

# The leased key: wrk on both servers, 4 connections each pausing 5 ms
# between requests, for the whole of b).
wrk_pids=()
for server in 0 1; do
  BLAST_KEY=hot BLAST_DELAY_MS=5 wrk -t1 -c4 -d30s --timeout 5s -s "$here/lease_blast.lua" \
    "http://127.0.0.1:${ports[$server]}/busy" > "$e2e_work/wrk-$server.out" 2>&1 &
  wrk_pids+=("$!")
  track "$!"
done
# The cached key: over its limit of 5, its rejection in both blocked-key caches.
for i in $(seq 5); do ask $((i % 2)) strict "X-Client: cold" > /dev/null; done
for _ in 1 2 3 4 5 6 7 8 9 10; do
  [[ $(metric lease_requests busy) -gt 100 ]] && break
  sleep 0.3
done
lease_before=$(metric lease_requests busy)
echo "bans: the busy key passed $lease_before requests from leases before its ban"
[[ $lease_before -gt 0 ]] || fail "bans: no request of the busy key passed from a lease: the ban of a leased key is not tested"
for server in 0 1; do
  got=$(ask $server strict "X-Client: cold")
  expect "cached key before its ban, server $((server + 1))" "$got" "429 5 0 (59|60)"
done
hits_before=$(metric requests_block_cache_hits strict)

t0=$(now_ms)
ctl ban busy hot 1h
until_both "ban of a leased key" hot busy "429 1000000 0 (3599|3600)"
t0=$(now_ms)
ctl ban strict cold 1h
until_both "ban of a key in the blocked-key caches" cold strict "429 5 0 (3599|3600)"
hits=$(($(metric requests_block_cache_hits strict) - hits_before))
echo "bans: $hits answers of the cached key came from the blocked-key caches meanwhile"

t0=$(now_ms)
ctl unban busy hot
until_both "unban of the busy key" hot busy "200 1000000 [0-9]+ -"
t0=$(now_ms)
ctl unban strict cold
# (still over its limit: back to its limit's Retry-After)
until_both "unban of the key in the blocked-key caches" cold strict "429 5 0 ([1-9]|[1-5][0-9]|60)"

for pid in "${wrk_pids[@]}"; do stop "$pid" INT; done
banned=$(metric banned busy)
echo "bans: rate_guard_banned_total: busy $banned, strict $(metric banned strict)"
[[ $banned -gt 0 ]] || fail "bans: rate_guard_banned_total{zone=\"busy\"} is 0"

# ---- c) overrides on both servers
for i in $(seq 5); do
  got=$(ask $((i % 2)) strict "X-Client: raised")
  expect "raised: request $i" "$got" "200 5 $((5 - i)) -"
done
# (nothing of this key is cached: the next check is Redis's, which reads the rule)
ctl limit strict raised 8r/m
passed=0
for i in $(seq 6); do
  got=$(ask $((i % 2)) strict "X-Client: raised")
  [[ $got == 200\ * ]] && passed=$((passed + 1))
  expect "raised to 8: request $i" "$got" "(200 8 $((3 - i)) -|429 8 0 [1-9][0-9]*)"
done
[[ $passed -eq 3 ]] || fail "raised to 8: $passed of 6 more passed over both servers, expected 3"
ctl limit strict raised 6r/m
sleep 1.1   # the rejections above are in the blocked-key caches
for server in 0 1; do
  got=$(ask $server strict "X-Client: raised")
  expect "lowered to 6 with 8 counted, server $((server + 1))" "$got" "429 6 0 [1-9][0-9]*"
done
ctl limit strict lowered 2r/m
passed=0
for i in $(seq 6); do
  got=$(ask $((i % 2)) strict "X-Client: lowered")
  [[ $got == 200\ * ]] && passed=$((passed + 1))
done
[[ $passed -eq 2 ]] || fail "lowered to 2: $passed of 6 passed over both servers, expected 2"
ctl limit strict free unlimited
for i in $(seq 12); do
  got=$(ask $((i % 2)) strict "X-Client: free")
  expect "unlimited: request $i" "$got" "200 5 5 -"
done
echo "overrides: raised 5 -> 8: 3 more passed over both servers; lowered to 6: rejected on both;" \
     "2r/m for a new key: 2 of 6 passed; unlimited: 12 of 12 passed (limit 5); rate_guard_overridden_total: $(metric overridden strict)"

no_crash nginx1
no_crash nginx2
exit $e2e_status
