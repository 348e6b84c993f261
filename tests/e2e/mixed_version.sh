#!/usr/bin/env bash
# A rolling upgrade: the previous release's module (435628b, the two-counter
# sliding_window at "rate_guard:<zone>:<key>") and this one (16 counters at
# "rate_guard:<zone>@sw2:<key>"), each in its own nginx, on one Redis; one
# zone, 5 per 3 s, sliding_window (the default). What the README's upgrade
# paragraph says, checked:
# - the two versions never share a key: each counts its own servers'
#   requests, neither reads nor writes the other's (the old key keeps the
#   old layout, the new key the new one, whatever the other server did);
# - so a client served by both gets at most its limit from each: the new
#   servers never admit more than the limit in any window, the old ones as
#   the previous release did;
# - every answer is 200 or 429, and neither server logs an error.
#
# Usage: mixed_version.sh MODULE.so PREVIOUS_MODULE.so
set -euo pipefail
source "$(dirname "$0")/lib.sh"

module=$(realpath "$1")
previous=$(realpath "$2")
[[ -f $previous ]] || { echo "no previous module at $previous (cmake --build build --target previous_module)" >&2; exit 1; }

redis_port=$(free_port)
start_redis "$redis_port"
declare -A port
for name in new old; do
  port[$name]=$(free_port)
  so=$module
  [[ $name == old ]] && so=$previous
  start_nginx "$name" "$so" "
    rate_guard_redis 127.0.0.1:$redis_port;
    rate_guard_zone \$http_x_client zone=mixed rate=5 window=3s;
    server {
        listen 127.0.0.1:${port[$name]};
        location = /mixed { rate_guard zone=mixed; empty_gif; }
    }"
done
wait_http "${port[new]}"
wait_http "${port[old]}"

# ask SERVER CLIENT: the status; the response headers in $e2e_work/headers.
ask() {
  curl -s -o /dev/null -D "$e2e_work/headers" -w '%{http_code}' -H "X-Client: $2" "http://127.0.0.1:${port[$1]}/mixed"
}
header() { tr -d '\r' < "$e2e_work/headers" | sed -n "s/^$1: //Ip"; }
# expect WHAT GOT WANTED
expect() { [[ $2 == "$3" ]] || fail "$1: got $2, expected $3"; }
# state KEY: its value, printable, at most 40 bytes
state() { redis-cli -p "$redis_port" --raw GET "$1" | tr -d '\n' | head -c 40 | tr -c '[:print:]' '.'; }
old_key() { echo "rate_guard:mixed:$1"; }
new_key() { echo "rate_guard:mixed@sw2:$1"; }
old_layout() { [[ $(state "$(old_key "$1")") =~ ^[0-9]+:[0-9]+:[0-9]+$ ]]; }
new_layout() { [[ $(state "$(new_key "$1")") == W* ]]; }

# 1. The old server counts 5 and refuses the 6th; the new one has its own
# key: it passes, and the old key is left as it was.
for i in 1 2 3 4 5; do expect "old server, request $i of 5" "$(ask old a)" 200; done
expect "old server, request 6" "$(ask old a)" 429
old_state=$(state "$(old_key a)")
old_layout a || fail "the old server wrote $old_state"
expect "new server after the old one's 5" "$(ask new a)" 200
expect "the new server's remaining" "$(header X-RateLimit-Remaining)" 4
new_layout a || fail "the new server wrote $(state "$(new_key a)") at $(new_key a)"
expect "the old key after the new server's request" "$(state "$(old_key a)")" "$old_state"

# 2. The other way: the new server counts 5 and refuses the 6th (its
# Retry-After holds); the old server, on its own key, passes.
for i in 1 2 3 4 5; do expect "new server, request $i of 5" "$(ask new b)" 200; done
new_state=$(state "$(new_key b)")
expect "new server, request 6" "$(ask new b)" 429
retry=$(header Retry-After)
expect "old server after the new one's 5" "$(ask old b)" 200
expect "the old server's remaining" "$(header X-RateLimit-Remaining)" 4
old_layout b || fail "the old server wrote $(state "$(old_key b)")"
expect "the new key after the old server's request" "$(state "$(new_key b)")" "$new_state"
[[ $retry =~ ^[0-9]+$ && $retry -ge 1 && $retry -le 4 ]] || fail "Retry-After $retry, expected 1 to 4 s"
sleep "$retry"
expect "new server, Retry-After later" "$(ask new b)" 200

# 3. A client alternating between the two, 40 requests within about a
# second: the new server admits at most 5 (its limit), the old one at most
# what the previous release allows (up to about 2 x 5 at a window edge);
# every answer 200 or 429.
passed_old=0 passed_new=0 others=0
for i in $(seq 40); do
  if ((i % 2)); then server=old; else server=new; fi
  code=$(ask "$server" c)
  case $code in
    200) if [[ $server == old ]]; then passed_old=$((passed_old + 1)); else passed_new=$((passed_new + 1)); fi ;;
    429) ;;
    *) others=$((others + 1)) ;;
  esac
done
echo "alternating old/new, 40 requests within about a second: $passed_old passed the old server, $passed_new the new (5 per 3 s each)"
expect "answers other than 200 or 429" "$others" 0
expect "passed the new server" "$passed_new" 5
((passed_old >= 5 && passed_old <= 10)) || fail "the old server passed $passed_old, expected 5 to 10"
old_layout c && new_layout c || fail "a key not in its version's layout: $(state "$(old_key c)") / $(state "$(new_key c)")"

# No error of the module's (a script error, a reply it could not read): the
# rejections' own lines ("limiting requests") and wait_http's probe of / aside.
for name in new old; do
  no_crash "$name"
  if grep -hE '\[(error|warn)\]' "$e2e_work/$name/error.log" | grep -vE 'limiting requests|index.html'; then
    fail "$name server logged errors"
  fi
done
exit $e2e_status
