#!/usr/bin/env bash
# A load run of the module under valgrind (or AddressSanitizer): no leak, no
# invalid access.
#
# Usage: tests/sanitize_load.sh [--asan] MODULE.so [ROUNDS]      (ROUNDS default 20)
#
#   valgrind (default): MODULE.so is a normal build (build/nginx/objs/...).
#       nginx runs as one process (master_process off, daemon off) under
#       valgrind --leak-check=full --error-exitcode=99.
#   --asan: MODULE.so is a -DRATE_GUARD_SANITIZE=ON build; nginx runs with
#       libasan and libubsan preloaded (see tests/sanitize.sh), reports to
#       files, leaks checked at exit with tests/lsan.supp.
#
# Each round sends, on keep-alive connections: 100 requests over 20 keys
# (limit 3 per minute: passes, rejections answered by Redis, then from the
# blocked-key cache), 20 requests of cost 2 over 4 keys on a limit of 3 (the
# first of each key passes, the others are rejected by Redis),
# 5 metrics requests, and 10 clients that leave while their check waits on a
# Redis made slow (DEBUG SLEEP) so the check is cancelled, and 10 requests that
# time out in the module (timeout=100ms) on that slow Redis. In the middle
# round Redis is killed (requests decided by the fail policy, at once, while
# it is down) and started again (the module reconnects). 20 rounds: about
# 2,900 requests to nginx.
#
# What counts: valgrind's errors (invalid reads and writes, uses of
# uninitialised values, invalid frees) anywhere, and every leak "definitely",
# "indirectly" or "possibly lost" (valgrind's exit status 99), except the
# blocks nginx allocates through its own allocators (ngx_alloc,
# ngx_memalign: tests/valgrind.supp), which it does not free at exit; memory
# still reachable at exit is not a leak. The records are also sorted here:
# those whose stack passes through the module, hiredis or libstdc++ are named.
set -euo pipefail

mode=valgrind
if [[ "${1:-}" == --asan ]]; then
  mode=asan
  shift
fi
if [[ $# -lt 1 || ! -f "$1" ]]; then
  echo "usage: $0 [--asan] MODULE.so [ROUNDS]" >&2
  exit 2
fi
module=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
rounds="${2:-20}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
start_time=$SECONDS

source "$root/scripts/lib.sh"
lib_init sanitize_load
[[ -z ${SANITIZE_LOAD_KEEP:-} ]] || RATE_GUARD_KEEP=1
status=0
{ read -r nginx_port; read -r redis_port; } < <(free_ports 2)

cli() { redis-cli -h 127.0.0.1 -p "$redis_port" "$@"; }
# DEBUG SLEEP makes Redis slow; redis-server before 7 has no
# --enable-debug-command (DEBUG is always allowed there)
redis_debug=()
if [[ $(redis-server --version) =~ v=([0-9]+) ]] && (( BASH_REMATCH[1] >= 7 )); then
  redis_debug=(--enable-debug-command local)
fi
start_redis "$redis_port" "${redis_debug[@]}"
redis_pid=$bg_pid

mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<EOF
load_module $module;
worker_processes 1;
daemon off;
master_process off;
error_log $work/logs/error.log notice;
pid $work/logs/nginx.pid;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $work/body;
    proxy_temp_path $work/proxy;
    fastcgi_temp_path $work/fastcgi;
    uwsgi_temp_path $work/uwsgi;
    scgi_temp_path $work/scgi;

    rate_guard_redis 127.0.0.1:$redis_port timeout=100ms connect_timeout=100ms;
    rate_guard_zone \$arg_k zone=load rate=3r/m;
    rate_guard_zone \$arg_k zone=load_log rate=3r/m algorithm=sliding_log;
    rate_guard_zone \$arg_k zone=load_tb rate=3r/m algorithm=token_bucket burst=2;
    rate_guard_zone \$arg_k zone=load_cost rate=3r/m;
    server {
        listen 127.0.0.1:$nginx_port;
        location = /t {
            rate_guard zone=load;
            rate_guard zone=load_log;
            rate_guard zone=load_tb;
            add_header X-Status \$rate_guard_status always;
            empty_gif;
        }
        location = /cost {
            rate_guard zone=load_cost cost=2;
            empty_gif;
        }
        location = /metrics {
            rate_guard_metrics;
        }
    }
}
EOF

case $mode in
valgrind)
  command -v valgrind > /dev/null || { echo "sanitize_load: valgrind not installed" >&2; exit 2; }
  start_bg nginx.out valgrind --leak-check=full --show-leak-kinds=definite,indirect,possible \
    --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=40 \
    --trace-children=no --log-file="$work/valgrind.log" \
    --suppressions="$root/tests/valgrind.supp" ${SANITIZE_LOAD_VALGRIND_OPTS:-} \
    "$NGINX_BINARY" -p "$work/" -c "$work/nginx.conf" -e "$work/logs/error.log"
  nginx_pid=$bg_pid
  ;;
asan)
  libasan=$(ldd "$module" | awk '/libasan\.so/ { print $3 }')
  libubsan=$(ldd "$module" | awk '/libubsan\.so/ { print $3 }')
  [[ -n "$libasan" ]] || { echo "sanitize_load: $module is not built with -DRATE_GUARD_SANITIZE=ON" >&2; exit 2; }
  mkdir -p "$work/reports"
  start_bg nginx.out env \
    ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:log_path=$work/reports/asan" \
    LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0" \
    UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$work/reports/ubsan" \
    LD_PRELOAD="$libasan $libubsan" \
    "$NGINX_BINARY" -p "$work/" -c "$work/nginx.conf" -e "$work/logs/error.log"
  nginx_pid=$bg_pid
  ;;
esac
for _ in $(seq 300); do
  curl -s -o /dev/null "http://127.0.0.1:$nginx_port/metrics" && break
  kill -0 "$nginx_pid" 2>/dev/null || { echo "sanitize_load: nginx exited" >&2; cat "$work/logs/error.log" >&2; exit 1; }
  sleep 0.2
done

# A small HTTP/1.1 client: sends the paths on one keep-alive connection and
# prints the status codes. With "abort", sends each request on a connection
# of its own and closes it after 20 ms, before the answer.
cat > "$work/client.pl" <<'EOF'
use strict; use warnings; use IO::Socket::INET; use Time::HiRes qw(sleep);
my ($port, $mode, @paths) = @ARGV;
my %codes;
my $sock;
for my $path (@paths) {
    if ($mode eq 'abort') {
        my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) or die $!;
        print $s "GET $path HTTP/1.1\r\nHost: x\r\n\r\n";
        sleep 0.02;
        close $s;
        $codes{aborted}++;
        next;
    }
    $sock //= IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) or die $!;
    print $sock "GET $path HTTP/1.1\r\nHost: x\r\n\r\n";
    my $head = '';
    while ($head !~ /\r\n\r\n/) {
        my $n = sysread $sock, my $buf, 1;
        die "connection closed\n" unless $n;
        $head .= $buf;
    }
    my ($code) = $head =~ m{^HTTP/1\.1 (\d+)};
    my ($len) = $head =~ /^Content-Length: (\d+)/mi;
    my $body = '';
    while (length $body < ($len // 0)) {
        my $n = sysread $sock, my $buf, $len - length $body;
        die "connection closed\n" unless $n;
        $body .= $buf;
    }
    $codes{$code}++;
    undef $sock if $head =~ /^Connection: close/mi;
}
print join(' ', map { "$_=$codes{$_}" } sort keys %codes), "\n";
EOF
client() { perl "$work/client.pl" "$nginx_port" "$@"; }

echo "sanitize_load: $mode, module $module, $rounds rounds"
total=0
middle=$(( (rounds + 1) / 2 ))
for round in $(seq "$rounds"); do
  paths=()
  for i in $(seq 100); do paths+=("/t?k=r$round-$(( i % 20 ))"); done
  for i in $(seq 20); do paths+=("/cost?k=c$round-$(( i % 4 ))"); done
  for i in $(seq 5); do paths+=("/metrics"); done
  line="round $round: $(client keep "${paths[@]}")"
  total=$(( total + ${#paths[@]} ))

  # slow Redis: clients that leave while their check waits, and checks
  # that time out in the module
  if cli DEBUG SLEEP 0 > /dev/null 2>&1; then
    (cli DEBUG SLEEP 1 > /dev/null 2>&1 &)
    sleep 0.05
    abort=()
    for i in $(seq 10); do abort+=("/t?k=a$round-$i"); done
    line+=" | slow redis: $(client abort "${abort[@]}")"
    late=()
    for i in $(seq 10); do late+=("/t?k=l$round-$i"); done
    line+=" | $(client keep "${late[@]}")"
    total=$(( total + 20 ))
    sleep 1
  fi

  if [[ $round == "$middle" ]]; then
    stop "$redis_pid" KILL
    down=()
    for i in $(seq 20); do down+=("/t?k=d$round-$i"); done
    line+=" | redis down: $(client keep "${down[@]}")"
    total=$(( total + 20 ))
    start_redis "$redis_port" "${redis_debug[@]}"
    redis_pid=$bg_pid
    sleep 1.5   # reconnection with backoff
    line+=" | redis back: $(client keep "/t?k=back1" "/t?k=back2" "/t?k=back1")"
    total=$(( total + 3 ))
  fi
  echo "$line"
done
metrics=$(curl -s "http://127.0.0.1:$nginx_port/metrics")
for m in passed rejected block_cache_hits fail_policy; do
  printf 'rate_guard_requests_%s_total (all zones) %s\n' "$m" \
    "$(echo "$metrics" | awk -v m="rate_guard_requests_${m}_total" 'index($1, m "{") == 1 { s += $2 } END { print s + 0 }')"
done
echo "$metrics" | grep -E '^rate_guard_redis_(round_trips|errors|timeouts|reconnects|script_loads)_total '
echo "sanitize_load: $total requests in $(( SECONDS - start_time ))s"

# A graceful stop: exit_process frees the module's worker state.
stop "$nginx_pid" QUIT
nginx_status=$stop_status
echo "sanitize_load: nginx exited with status $nginx_status"

grep -E '\[(alert|crit|emerg)\]|exited on signal' "$work/logs/error.log" && {
  echo "FAIL: nginx logged alerts"; status=1; } || true

case $mode in
valgrind)
  log="$work/valgrind.log"
  grep -E "ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable" "$log" | sed 's/^==[0-9]*== /valgrind: /'
  # Every error record, leak records included, as one paragraph each.
  awk '/^==[0-9]+== $/ { if (rec != "") print rec "\n"; rec = ""; next }
       /^==[0-9]+== / { sub(/^==[0-9]+== /, ""); rec = rec $0 "\n" }
       END { if (rec != "") print rec }' "$log" > "$work/records.txt"
  # Invalid accesses, uninitialised values, bad frees: wherever they are.
  errors=$(grep -cE '^(Invalid (read|write|free)|Conditional jump|Use of uninitialised|Syscall param|Mismatched free|Source and destination overlap)' "$work/records.txt" || true)
  # Leaks: definitely/indirectly lost records whose stack passes through the
  # module, hiredis or libstdc++ (nginx's own allocators are not counted).
  perl -00 -ne 'next unless /are (definitely|indirectly) lost/;
                $all++;
                if (/ngx_http_rate_guard_module\.so|rate_guard::|libhiredis|libstdc\+\+|operator new/) { $ours++; print STDERR "---- module leak\n$_" }
                else { $theirs++ }
                END { printf "%d %d\n", $ours // 0, $theirs // 0 }' "$work/records.txt" > "$work/leaks.txt"
  read -r module_leaks nginx_leaks < "$work/leaks.txt"
  echo "valgrind: $errors invalid access / uninitialised-value errors; $module_leaks leak records through the module, $nginx_leaks others"
  if [[ $errors -gt 0 ]]; then
    grep -B2 -A25 -E '^(Invalid (read|write|free)|Conditional jump|Use of uninitialised|Mismatched free)' "$work/records.txt" | head -120
    status=1
  fi
  [[ $module_leaks -eq 0 ]] || status=1
  ;;
asan)
  shopt -s nullglob
  reports=("$work"/reports/*)
  if [[ ${#reports[@]} -gt 0 ]]; then
    for f in "${reports[@]}"; do echo "---- $f"; head -60 "$f"; done
    status=1
  fi
  echo "asan: ${#reports[@]} sanitizer report(s)"
  ;;
esac
[[ $nginx_status -eq 0 ]] || status=1
echo "sanitize_load: $([[ $status == 0 ]] && echo "PASS: no leak or invalid access from the module" || echo FAIL) ($(( SECONDS - start_time ))s)"
exit $status
