# shellcheck shell=bash
# The one helper of rate_guard's shell scripts (bench/, demo/, tests/e2e/,
# tests/hostile/, tests/sanitize*.sh, t/run): source it, then call
# `lib_init NAME` (t/run, with a work dir and cleanup of its own, only takes
# free_ports and NGINX_BINARY).
#
#   lib_init NAME             $work: a private directory (/tmp/rate_guard-NAME.*),
#                             kept with its logs when the script fails (exit
#                             status not 0) or RATE_GUARD_KEEP is set, removed
#                             otherwise; every recorded PID stopped on exit
#   free_port                 a free loopback port
#   free_ports N              N different free loopback ports, one a line
#   start_bg LOG CMD [ARG...] CMD in the background, its output in LOG
#                             ($work/LOG if relative), its PID recorded and in
#                             $bg_pid
#   track PID                 record a PID started otherwise (stopped on exit)
#   untrack PID               no longer stopped on exit (it was reaped: its
#                             number may be reused)
#   at_exit COMMAND           run COMMAND (eval) on exit, before the PIDs are stopped
#   stop PID [SIGNAL]         the signal (default TERM) to that PID, and reap it
#                             (no longer recorded: its number may be reused);
#                             its exit status in $stop_status
#   wait_port PORT [SECONDS]  until something accepts on 127.0.0.1:PORT (5 s)
#   wait_redis PORT [SECONDS] until a redis-server there answers PING (5 s)
#   start_redis PORT [CONF] [ARG...]
#                             a redis-server on 127.0.0.1:PORT, no persistence,
#                             dir and log in $work/redis-PORT, waited for,
#                             its PID recorded and in $bg_pid
#   redis_tls CA CERT KEY     from then on, start_redis starts TLS-only servers
#                             (--port 0 --tls-port PORT) with CERT and KEY that
#                             trust CA and ask clients for no certificate (an
#                             ARG may say otherwise), and speak TLS to their
#                             masters (replicas, sentinels) and on the cluster
#                             bus; and redis_cli speaks TLS to them
#   redis_cli ARG...          redis-cli; after redis_tls, over TLS, trusting CA
#                             and showing CERT (to servers that ask for one)
#   NGINX_BINARY              the nginx binary: $NGINX_BINARY, else
#                             $TEST_NGINX_BINARY (Test::Nginx's name), else
#                             /usr/sbin/nginx
#
# Processes are only ever stopped by their recorded PID.

NGINX_BINARY=${NGINX_BINARY:-${TEST_NGINX_BINARY:-/usr/sbin/nginx}}
lib_pids=()
lib_at_exit=()
redis_tls_server=()  # start_redis's TLS options, after redis_tls
redis_tls_client=()  # redis_cli's
bg_pid=
stop_status=

lib_init() {
  work=$(mktemp -d "${TMPDIR:-/tmp}/rate_guard-$1.XXXXXX")
  trap lib_cleanup EXIT
}

lib_cleanup() {
  local status=$? pid command
  for command in "${lib_at_exit[@]}"; do eval "$command" || true; done
  for pid in "${lib_pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${lib_pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n ${work:-} && -d $work ]]; then
    if [[ $status -ne 0 || -n ${RATE_GUARD_KEEP:-} ]]; then
      echo "logs kept in $work" >&2
    else
      rm -rf "$work"
    fi
  fi
  return "$status"
}

free_port() {
  python3 "$(dirname "${BASH_SOURCE[0]}")/free_ports.py" 1
}

# No two the same.
free_ports() {
  python3 "$(dirname "${BASH_SOURCE[0]}")/free_ports.py" "$1"
}

at_exit() {
  lib_at_exit+=("$1")
}

track() {
  lib_pids+=("$1")
}

untrack() {
  local i
  for i in "${!lib_pids[@]}"; do
    [[ ${lib_pids[i]} != "$1" ]] || unset 'lib_pids[i]'
  done
}

start_bg() {
  local log=$1
  shift
  [[ $log == /* ]] || log="$work/$log"
  "$@" >> "$log" 2>&1 &
  bg_pid=$!
  track "$bg_pid"
}

# shellcheck disable=SC2034  # stop_status is the caller's
stop() {
  kill -s "${2:-TERM}" "$1" 2>/dev/null || true
  stop_status=0
  wait "$1" 2>/dev/null || stop_status=$?
  untrack "$1"
}

wait_port() {
  local deadline=$((SECONDS + ${2:-5}))
  until (exec 3<> "/dev/tcp/127.0.0.1/$1") 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "nothing accepts on 127.0.0.1:$1" >&2; return 1; }
    sleep 0.05
  done
}

redis_tls() {
  redis_tls_server=(--tls-cert-file "$2" --tls-key-file "$3" --tls-ca-cert-file "$1" --tls-auth-clients no
                    --tls-replication yes --tls-cluster yes)
  redis_tls_client=(--tls --cacert "$1" --cert "$2" --key "$3")
}

redis_cli() {
  redis-cli "${redis_tls_client[@]}" "$@"
}

wait_redis() {
  local deadline=$((SECONDS + ${2:-5}))
  until redis_cli -h 127.0.0.1 -p "$1" ping > /dev/null 2>&1; do
    ((SECONDS < deadline)) || { echo "no redis-server answers on 127.0.0.1:$1" >&2; return 1; }
    sleep 0.05
  done
}

start_redis() {
  local port=$1 conf=() listen=(--port "$1")
  shift
  local dir="$work/redis-$port"
  mkdir -p "$dir"
  # A configuration file comes first; the caller's options after the TLS
  # ones, so that they can change them.
  [[ $# -eq 0 || $1 == --* ]] || { conf=("$1"); shift; }
  [[ ${#redis_tls_server[@]} -eq 0 ]] || listen=(--port 0 --tls-port "$port")
  redis-server "${conf[@]}" "${redis_tls_server[@]}" "$@" --bind 127.0.0.1 "${listen[@]}" --save '' \
    --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
  bg_pid=$!
  track "$bg_pid"
  wait_redis "$port" || { echo "redis on port $port did not start: $(tail -5 "$dir/redis.log")" >&2; return 1; }
}
