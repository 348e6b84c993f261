#!/usr/bin/env bash
# Redis CPU per check of the check script, per algorithm and batch size, with
# no nginx in the way: a private redis-server on a free loopback port, the
# script loaded from src/lua/ (the files of src/lua/check.files, in order, as
# the build embeds them), and redis-benchmark sending EVALSHA with
# ARGV[1] = "0" (Redis's TIME, as the module does) for random keys, each
# zone's state key and its rule key (none there, unless --rule), as the
# module sends them; a script of an earlier release (no RULE_OVERRIDE in it)
# is sent the state keys alone.
#
# Usage: bench/script_cost.sh [options]
#   --lua FILE        one Lua file instead (e.g. a variant being measured)
#   --script FILE     a C++ file holding the script as R"lua(...)lua": the
#                     generated header (build/generated/check_script_lua.h), or
#                     an older src/scripts.cpp that held it, e.g.
#                     `git show f59e38c:src/scripts.cpp > /tmp/old.cpp`
#   --old             FILE is the one-request-per-call script (ARGV[2..] = 5 per
#                     zone, no request count): only batch 1 is run
#   --checks N        checks per measurement (default 200000; 20000 with --callgrind)
#   --keys N          distinct client keys (default 10000; 1000 with --callgrind)
#   --batches "1 16"  requests per EVALSHA
#   --algorithms "sliding_window sliding_log fixed_window token_bucket"
#   --limit N --window-ms N   the zone (default 1000 per 60000 ms: all pass)
#   --hot             every check of every call on one key per algorithm (a
#                     hot key), not random keys
#   --merged          each call's checks as one merged entry (0, n, the zone:
#                     what the module sends for n checks of one key); with --hot
#   --rule TEXT       the hot key's rule key holds TEXT (e.g. "rate=2000/60000",
#                     "rate=unlimited"): the cost of a rule; with --hot
#   --runs N          measurements per cell; the median is printed (default 3)
#   --clients N --pipeline N  redis-benchmark's -c and -P (default 4 and 8)
#   --callgrind       run redis-server under valgrind's callgrind and count the
#                     instructions Redis executes per check instead: slow, but
#                     the same on a busy machine, where times vary by half
#
# Columns: µs/check (commandstats) is cmdstat_evalsha usec_per_call divided by
# the batch size: the script's own time, every command it ran included.
# µs/check (cpu) is the delta of used_cpu_user + used_cpu_sys over the run,
# divided by the checks: also the protocol parsing and the replies, that is,
# what Redis spends in all (and its background work: active expiry...).
# cmds/check counts every command Redis ran (EVALSHA and the ones inside the
# script) per check. With --callgrind: kinstr/check, the thousands of
# instructions Redis executed per check, everything included (active expiry
# off).
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
lua_dir=$here/src/lua
script_file=
lua_file=
old=0
checks=
keys=
batches="1 16"
algorithms="sliding_window sliding_log fixed_window token_bucket"
limit=1000
window_ms=60000
runs=3
clients=4
pipeline=8
callgrind=0
hot=0
merged=0
rule=
while [ $# -gt 0 ]; do
  case $1 in
    --script) script_file=$2; shift 2 ;;
    --lua) lua_file=$2; shift 2 ;;
    --old) old=1; shift ;;
    --checks) checks=$2; shift 2 ;;
    --keys) keys=$2; shift 2 ;;
    --batches) batches=$2; shift 2 ;;
    --algorithms) algorithms=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --window-ms) window_ms=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --pipeline) pipeline=$2; shift 2 ;;
    --callgrind) callgrind=1; shift ;;
    --hot) hot=1; shift ;;
    --merged) merged=1; shift ;;
    --rule) rule=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
if [ "$callgrind" = 1 ]; then
  checks=${checks:-20000}
  keys=${keys:-1000}
else
  checks=${checks:-200000}
  keys=${keys:-10000}
fi
if [ "$old" = 1 ]; then
  batches=1
fi
if [ "$merged" = 1 ] && { [ "$hot" = 0 ] || [ "$old" = 1 ]; }; then
  echo "--merged needs --hot (and the current layout)" >&2
  exit 2
fi
if [ -n "$rule" ] && { [ "$hot" = 0 ] || [ "$old" = 1 ]; }; then
  echo "--rule needs --hot (and the current layout)" >&2
  exit 2
fi

source "$(dirname "$0")/../scripts/lib.sh"
lib_init script-cost

# The script: the .lua files as embedded, one Lua file, or the raw string
# literal R"lua(...)lua" of a C++ file.
if [ -n "$lua_file" ]; then
  source_name=$lua_file
  cp "$lua_file" "$work/check.lua"
elif [ -n "$script_file" ]; then
  source_name=$script_file
  awk '/R"lua\(/ { on = 1; sub(/.*R"lua\(/, ""); if ($0 == "") next }
       /\)lua"/ { sub(/\)lua".*/, ""); if ($0 != "") print; on = 0 }
       on' "$script_file" > "$work/check.lua"
  [ -s "$work/check.lua" ] || { echo "no R\"lua( ... )lua\" in $script_file" >&2; exit 1; }
else
  files=$(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' -e 's/^[[:space:]]*//' "$lua_dir/check.files")
  source_name="src/lua/{$(echo $files | tr ' ' ,)}"
  (cd "$lua_dir" && cat $files) > "$work/check.lua"
fi

port=$(free_port)
server=(redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$work"
        --logfile "$work/redis.log")
if [ "$callgrind" = 1 ]; then
  valgrind --tool=callgrind --callgrind-out-file="$work/callgrind.out.%p" \
    "${server[@]}" --enable-debug-command local > "$work/valgrind.log" 2>&1 &
else
  "${server[@]}" &
fi
redis_pid=$!
track "$redis_pid"
cli() { redis-cli -p "$port" "$@"; }
for _ in $(seq 600); do cli ping >/dev/null 2>&1 && break; sleep 0.05; done
sha=$(cli -x script load < "$work/check.lua")
# Whether the script takes a rule key per zone (KEYS doubled): this release's
# does, an earlier one's (or --old) does not.
rule_keys=0
if [ "$old" = 0 ] && grep -q '^local RULE_OVERRIDE = ' "$work/check.lua"; then
  rule_keys=1
fi
if [ -n "$rule" ] && [ "$rule_keys" = 0 ]; then
  echo "--rule: the script takes no rule keys" >&2
  exit 2
fi
case $sha in
  [0-9a-f]*) ;;
  *) echo "SCRIPT LOAD failed: $sha" >&2; exit 1 ;;
esac
if [ "$callgrind" = 1 ]; then
  # Background work would count by the (valgrind-slowed) time a run takes.
  cli debug set-active-expire 0 >/dev/null
fi

# An algorithm's code, as src/lua/prelude.lua names it (Algorithm's value).
code() {
  local value
  value=$(sed -n "s/^local $(echo "$1" | tr a-z A-Z) = \([0-9][0-9]*\)$/\1/p" "$lua_dir/prelude.lua")
  [ -n "$value" ] || { echo "unknown algorithm $1" >&2; exit 2; }
  echo "$value"
}

# The instructions callgrind counted since it was last zeroed.
instructions() {
  callgrind_control -d "$redis_pid" >/dev/null 2>&1
  local dump
  dump=$(ls -t "$work"/callgrind.out.* | head -1)
  awk '/^summary:/ { print $2 }' "$dump"
  rm -f "$work"/callgrind.out.*.*
}

# Prints "usec_per_call cpu_us_per_check cmds_per_check" for one measurement,
# or "kinstr_per_check cmds_per_check" with --callgrind.
measure() {
  local algorithm=$1 batch=$2
  local c
  c=$(code "$algorithm")
  local key="rg:$algorithm:__rand_int__" rule_key="rg:$algorithm!rule:__rand_int__"
  if [ "$hot" = 1 ]; then
    key="rg:$algorithm:hot" rule_key="rg:$algorithm!rule:hot"
  fi
  local args=(EVALSHA "$sha")
  local i
  if [ "$merged" = 1 ]; then
    args+=($((1 + rule_keys)) "$key")
    [ "$rule_keys" = 0 ] || args+=("$rule_key")
    args+=(0 1 0 "$batch" "$c" "$limit" "$window_ms" "$limit" 1)
  else
    args+=($((batch * (1 + rule_keys))))
    for ((i = 0; i < batch; i++)); do args+=("$key"); done
    if [ "$rule_keys" = 1 ]; then
      for ((i = 0; i < batch; i++)); do args+=("$rule_key"); done
    fi
    args+=(0)
  fi
  if [ "$merged" = 1 ]; then
    :
  elif [ "$old" = 0 ]; then
    args+=("$batch")
    for ((i = 0; i < batch; i++)); do args+=(1 "$c" "$limit" "$window_ms" "$limit" 1); done
  else
    args+=("$c" "$limit" "$window_ms" "$limit" 1)
  fi
  local calls=$((checks / batch))
  # A check of the arguments first: an error reply would make a fast benchmark.
  local probe=("${args[@]}")
  for ((i = 0; i < ${#probe[@]}; i++)); do probe[i]=${probe[i]//__rand_int__/probe}; done
  local reply
  reply=$(cli "${probe[@]}" 2>&1 | head -1)
  case $reply in
    ERR*|*rror*|rate_guard:*) echo "the script answered: $reply" >&2; exit 1 ;;
  esac
  cli flushall >/dev/null
  if [ -n "$rule" ]; then
    cli set "$rule_key" "$rule" >/dev/null
  fi
  cli config resetstat >/dev/null
  local cpu0
  cpu0=$(cli info cpu | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%.6f", s }')
  if [ "$callgrind" = 1 ]; then
    callgrind_control -z "$redis_pid" >/dev/null 2>&1
  fi
  redis-benchmark -p "$port" -q -n "$calls" -r "$keys" -c "$clients" -P "$pipeline" "${args[@]}" \
    > "$work/benchmark.log" 2>&1
  local counted=0
  if [ "$callgrind" = 1 ]; then
    counted=$(instructions)
  fi
  local cpu1
  cpu1=$(cli info cpu | awk -F: '/^used_cpu_(user|sys):/ { s += $2 } END { printf "%.6f", s }')
  cli info commandstats | tr -d '\r' > "$work/stats"
  awk -F'[:=,]' -v batch="$batch" -v checks="$((calls * batch))" -v instr="$counted" \
      -v callgrind="$callgrind" -v cpu="$(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { print b - a }')" '
    /^cmdstat_evalsha:/ { for (i = 2; i < NF; i += 2) if ($i == "usec_per_call") usec = $(i + 1); else if ($i == "failed_calls") failed = $(i + 1) }
    /^cmdstat_/ && !/^cmdstat_(info|config)/ { for (i = 2; i < NF; i += 2) if ($i == "calls") cmds += $(i + 1) }
    END {
      if (failed > 0) { print "failed calls: " failed > "/dev/stderr"; exit 1 }
      if (callgrind == 1) printf "%.2f %.2f\n", instr / checks / 1000, cmds / checks
      else printf "%.2f %.2f %.2f\n", usec / batch, cpu * 1e6 / checks, cmds / checks
    }' "$work/stats"
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

layout=
if [ "$old" = 1 ]; then
  layout=' (old layout)'
elif [ "$rule_keys" = 0 ]; then
  layout=' (no rule keys)'
fi
echo "script: $source_name$layout, sha $sha"
keys_text="$keys keys"
if [ "$merged" = 1 ]; then
  keys_text="one key, each call one merged entry"
elif [ "$hot" = 1 ]; then
  keys_text="one key"
fi
if [ -n "$rule" ]; then
  keys_text="$keys_text, its rule \"$rule\""
fi
echo "redis: $(redis-server --version | awk '{ print $3 }'), $checks checks for $keys_text per cell, limit $limit per $window_ms ms, median of $runs, redis-benchmark -c $clients -P $pipeline"
echo
if [ "$callgrind" = 1 ]; then
  echo "| algorithm | batch | kinstr/check | cmds/check |"
  echo "|---|--:|--:|--:|"
else
  echo "| algorithm | batch | µs/check (commandstats) | µs/check (cpu) | cmds/check |"
  echo "|---|--:|--:|--:|--:|"
fi
for algorithm in $algorithms; do
  for batch in $batches; do
    : > "$work/runs"
    for ((r = 0; r < runs; r++)); do measure "$algorithm" "$batch" >> "$work/runs"; done
    row="| $algorithm | $batch |"
    columns=$(awk '{ print NF; exit }' "$work/runs")
    for ((f = 1; f <= columns; f++)); do
      row="$row $(cut -d' ' -f$f "$work/runs" | median) |"
    done
    echo "$row"
  done
done
