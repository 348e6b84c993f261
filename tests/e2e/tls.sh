#!/usr/bin/env bash
# TLS to Redis for real: Debian's redis-server on a TLS-only port, certificates
# made by scripts/make_test_certs with openssl (a CA, a server certificate for
# "redis.test" and 127.0.0.1, a client certificate, and a second CA that
# signed none of them),
# and nginx with the module (two workers) in front:
#   - a trusted server with a password: exactly 5 of 8 pass (as over TCP);
#   - a certificate from another CA, or for another name: refused, the fail
#     policy answers, the reason is logged;
#   - tls_verify=off: accepted;
#   - a server that requires client certificates: refused without one,
#     exact with one;
#   - the TLS Redis killed and restarted under load: every request answered,
#     exact again after;
#   - nginx -t: tls_* without tls=on, a certificate without its key, a
#     missing file.
#   tls.sh MODULE
set -uo pipefail

module=$(realpath "$1")
source "$(dirname "$0")/lib.sh"

certs="$e2e_work/certs"
"$(dirname "$0")/../../scripts/make_test_certs" "$certs" ||
  { echo "FAIL: openssl could not make the certificates" >&2; exit 1; }

# start_tls_redis PORT AUTH_CLIENTS: TLS only, password "secret".
start_tls_redis() {
  local dir="$e2e_work/redis-$1"
  mkdir -p "$dir"
  redis-server --bind 127.0.0.1 --port 0 --tls-port "$1" --tls-cert-file "$certs/server.pem" \
    --tls-key-file "$certs/server.key" --tls-ca-cert-file "$certs/ca.pem" --tls-auth-clients "$2" \
    --requirepass secret --save '' --appendonly no --dir "$dir" --logfile "$dir/redis.log" &
  redis_pid=$!
  track "$redis_pid"
  wait_port "$1"
}
redis_port=$(free_port)
mtls_port=$(free_port)
start_tls_redis "$mtls_port" yes
start_tls_redis "$redis_port" no
tls_redis_pid=$redis_pid

# serve NAME PORT REDIS_ARGS: nginx limiting /t at 5 per minute (sliding_log)
# through a rate_guard_redis with REDIS_ARGS; X-Status tells who decided.
serve() {
  start_nginx "$1" "$module" "
    rate_guard_redis $3 timeout=500ms connect_timeout=500ms;
    rate_guard_zone \$http_x_client zone=tls rate=5r/m algorithm=sliding_log;
    server {
        listen 127.0.0.1:$2;
        location = /t { rate_guard zone=tls; add_header X-Status \$rate_guard_status always; empty_gif; }
    }"
  wait_http "$2"
}

# statuses NAME PORT CLIENT: 8 requests; prints "code:status" for each.
statuses() {
  local i out=()
  for i in $(seq 8); do
    out+=("$(curl -s -o /dev/null -D - -H "X-Client: $3" "http://127.0.0.1:$2/t" |
      awk 'NR == 1 { code = $2 } tolower($1) == "x-status:" { sub(/\r/, "", $2); status = $2 } END { print code ":" status }')")
  done
  echo "${out[*]}"
}

exact="200:PASSED 200:PASSED 200:PASSED 200:PASSED 200:PASSED 429:REJECTED 429:REJECTED 429:REJECTED"
failed="200:ERROR 200:ERROR 200:ERROR 200:ERROR 200:ERROR 200:ERROR 200:ERROR 200:ERROR"

# expect NAME REDIS_ARGS EXPECTED [LOG_PATTERN]
expect() {
  local port got
  port=$(free_port)
  serve "$1" "$port" "$2"
  sleep 0.3  # the first connection: refused ones have failed by now
  got=$(statuses "$1" "$port" "client-of-$1")
  if [[ $got == "$3" ]]; then
    echo "ok: $1: $got"
  else
    fail "$1: got $got, expected $3"
  fi
  if [[ -n ${4:-} ]] && ! grep -qE "$4" "$e2e_work/$1/error.log"; then
    fail "$1: no line matching /$4/ in its error log: $(grep rate_guard "$e2e_work/$1/error.log" | tail -2)"
  fi
  no_crash "$1"
}

trusted="127.0.0.1:$redis_port password=secret tls=on tls_trusted_certificate=$certs/ca.pem"
expect trusted "$trusted tls_name=redis.test" "$exact"
expect trusted_ip "$trusted" "$exact"
expect other_ca "127.0.0.1:$redis_port password=secret tls=on tls_trusted_certificate=$certs/other_ca.pem" \
  "$failed" "TLS certificate verify error"
expect wrong_name "$trusted tls_name=other.test" "$failed" 'TLS certificate does not match "other.test"'
expect no_verify "127.0.0.1:$redis_port password=secret tls=on tls_verify=off" "$exact"
mtls="127.0.0.1:$mtls_port password=secret tls=on tls_trusted_certificate=$certs/ca.pem tls_name=redis.test"
# Refused by the server after the handshake: its alert ("certificate
# required") or, when the reset wins the race, "Connection reset by peer".
expect no_client_cert "$mtls" "$failed" "rate_guard: connection to Redis .* lost: .*(certificate required|reset by peer)"
expect client_cert "$mtls tls_certificate=$certs/client.pem tls_certificate_key=$certs/client.key" "$exact"
# The TLS Redis killed and restarted under load: every request answered
# (by the fail policy meanwhile), exact again once it is back, no reload.
port=$(free_port)
serve restart "$port" "$trusted tls_name=redis.test"
burst 200 16 "X-Client: before-restart" "http://127.0.0.1:$port/t" > "$e2e_work/restart-before"
stop "$tls_redis_pid" KILL
burst 500 16 "X-Client: during-restart" "http://127.0.0.1:$port/t" > "$e2e_work/restart-during"
start_tls_redis "$redis_port" no
sleep 1.5  # reconnection backs off up to 1 s
answered=$(cat "$e2e_work"/restart-{before,during} | grep -cE '^(200|429)$')
got=$(statuses restart "$port" after-restart)
echo "restart: $answered of 700 answered while Redis was killed and restarted; then $got"
[[ $answered -eq 700 ]] || fail "restart: $answered of 700 requests answered with 200 or 429"
[[ $got == "$exact" ]] || fail "restart: not exact again after the restart: $got"
no_crash restart

if grep -h "rate_guard" "$e2e_work"/{other_ca,wrong_name,no_client_cert}/error.log | grep -v '\[error\]' | grep -q .; then
  fail "a line about Redis other than the throttled rate_guard errors"
fi

# check_config NAME REDIS_ARGS MESSAGE: nginx -t refuses, with file and line.
check_config() {
  local dir="$e2e_work/conf-$1"
  mkdir -p "$dir/logs"
  cat > "$dir/nginx.conf" <<CONF
load_module $module;
events {}
http {
    rate_guard_redis $2;
}
CONF
  local out
  out=$("$NGINX_BINARY" -t -p "$dir" -c "$dir/nginx.conf" 2>&1)
  if [[ $out == *"$3"*"nginx.conf:4"* ]]; then
    echo "ok: nginx -t refuses $1"
  else
    fail "nginx -t on $1: $out"
  fi
}
check_config tls_without_tls "127.0.0.1:$redis_port tls_verify=off" '"tls_verify=" needs "tls=on"'
check_config key_without_cert "127.0.0.1:$redis_port tls=on tls_certificate_key=$certs/client.key" \
  '"tls_certificate_key=" needs "tls_certificate="'
check_config missing_ca "127.0.0.1:$redis_port tls=on tls_trusted_certificate=$certs/none.pem" \
  "cannot read \"$certs/none.pem\""

exit "$e2e_status"
