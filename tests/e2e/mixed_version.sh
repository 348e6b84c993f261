#!/usr/bin/env bash
# A rolling upgrade: the previous release's module (435628b, the two-counter
# sliding_window) and this one, each in its own nginx, on one Redis; one
# zone, 5 per 3 s, sliding_window (the default). What the README's upgrade
# paragraph says, checked:
# - a key the old server wrote ("index:current:previous") is read by the new
#   one with each count charged at its latest possible moment: never fewer
#   counts than were made; a client that waits Retry-After then passes;
# - a key the new server wrote (tag 'W', not a digit) is read by the old one
#   as empty, and overwritten in the old layout: the new server's counts are
#   forgotten, and the new server then reads the old layout;
# - a client alternating between them gets only 200 or 429, and neither
#   server logs an error.
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
state() { redis-cli -p "$redis_port" --raw GET "rate_guard:mixed:$1" | tr -d '\n' | head -c 40 | tr -c '[:print:]' '.'; }
old_layout() { [[ $(state "$1") =~ ^[0-9]+:[0-9]+:[0-9]+$ ]]; }

# 1. The old server counts 5; the new one reads them and rejects.
for i in 1 2 3 4 5; do expect "old server, request $i of 5" "$(ask old a)" 200; done
old_layout a || fail "the old server wrote $(state a)"
expect "new server after the old one's 5" "$(ask new a)" 429
retry=$(header Retry-After)
remaining=$(header X-RateLimit-Remaining)
echo "new server reading the old layout: 429, Retry-After $retry, Remaining $remaining"
expect "Remaining after the old server's 5" "$remaining" 0
[[ $retry =~ ^[0-9]+$ && $retry -ge 1 && $retry -le 4 ]] || fail "Retry-After $retry, expected 1 to 4 s"
sleep "$retry"
expect "new server, Retry-After later" "$(ask new a)" 200
[[ $(state a) == W* ]] || fail "the new server wrote $(state a), expected its own layout (tag W)"

# 2. The new server counts 5; the old one reads the new layout as empty,
# passes, and starts the key over in its own layout. (No 6th request to the
# new server: its rejection would stay in that server's blocked-key cache,
# which cannot know that an old server has since reset the key.)
for i in 1 2 3 4 5; do expect "new server, request $i of 5" "$(ask new b)" 200; done
[[ $(state b) == W* ]] || fail "the new server wrote $(state b)"
expect "old server after the new one's 5 (reads the new layout as empty)" "$(ask old b)" 200
expect "the old server's remaining" "$(header X-RateLimit-Remaining)" 4
old_layout b || fail "the old server wrote $(state b)"
# The new server's 5 are gone with its layout; it reads the old server's 1.
expect "new server after the old one's write" "$(ask new b)" 200
expect "the new server's remaining" "$(header X-RateLimit-Remaining)" 3

# 3. A client alternating between the two: answers only 200 or 429.
codes=()
for i in $(seq 40); do
  if ((i % 2)); then codes+=("$(ask old c)"); else codes+=("$(ask new c)"); fi
done
others=$(printf '%s\n' "${codes[@]}" | grep -cvE '^(200|429)$' || true)
passed=$(printf '%s\n' "${codes[@]}" | grep -c '^200$' || true)
echo "alternating old/new, 40 requests within about a second: $passed passed (5 per 3 s on either alone)"
expect "answers other than 200 or 429" "$others" 0

# No error of the module's (a script error, a reply it could not read): the
# rejections' own lines ("limiting requests") and wait_http's probe of / aside.
for name in new old; do
  no_crash "$name"
  if grep -hE '\[(error|warn)\]' "$e2e_work/$name/error.log" | grep -vE 'limiting requests|index.html'; then
    fail "$name server logged errors"
  fi
done
exit $e2e_status
