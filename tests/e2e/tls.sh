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
#   - a host name in the address is the name checked, an address an address;
#   - connections killed by the server: the workers reconnect and resume
#     their TLS sessions;
#   - the TLS Redis killed and restarted under load: every request answered,
#     exact again after;
#   - nginx -t: tls_* without tls=on, a certificate without its key, a
#     missing file.
#   tls.sh MODULE
set -uo pipefail

module=$(realpath "$1")
source "$(dirname "$0")/lib.sh"

make_certs
redis_tls "$certs/ca.pem" "$certs/server.pem" "$certs/server.key"

# start_tls_redis PORT AUTH_CLIENTS: TLS only, password "secret".
start_tls_redis() {
  start_redis "$1" --tls-auth-clients "$2" --requirepass secret
  redis_pid=$bg_pid
}
redis_port=$(free_port)
mtls_port=$(free_port)
start_tls_redis "$mtls_port" yes
start_tls_redis "$redis_port" no
tls_redis_pid=$redis_pid

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
# A host name in the address is the name checked (and sent as SNI), although
# it is resolved when the configuration loads: a server whose certificate
# names only "localhost" is trusted at localhost:PORT, not at 127.0.0.1:PORT.
named_port=$(free_port)
start_redis "$named_port" --tls-cert-file "$certs/localhost_only.pem" --tls-key-file "$certs/localhost_only.key" \
  --tls-auth-clients no --requirepass secret
expect by_name "localhost:$named_port password=secret tls=on tls_trusted_certificate=$certs/ca.pem" "$exact"
expect by_address "127.0.0.1:$named_port password=secret tls=on tls_trusted_certificate=$certs/ca.pem" "$failed" \
  'TLS certificate does not match "127.0.0.1"'
# Connections dropped by the server (CLIENT KILL): the workers reconnect,
# offering their TLS sessions, which the server resumes.
port=$(free_port)
serve resume "$port" "$trusted tls_name=redis.test"
statuses resume "$port" before-kill > /dev/null
redis-cli --tls --cacert "$certs/ca.pem" -h 127.0.0.1 -p "$redis_port" --no-auth-warning -a secret \
  CLIENT KILL TYPE normal > /dev/null
sleep 1.5  # reconnection backs off up to 1 s
got=$(statuses resume "$port" after-kill)
[[ $got == "$exact" ]] || fail "resume: not exact after the connections were killed: $got"
if grep -q "TLS to Redis at 127.0.0.1:$redis_port: TLSv1.[23], a resumed session" "$e2e_work/resume/error.log"; then
  echo "ok: resume: the reconnections resumed their TLS sessions"
else
  fail "resume: no resumed TLS session: $(grep 'TLS to Redis' "$e2e_work/resume/error.log" | tail -3)"
fi
no_crash resume

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

# (and the info line of each handshake made)
if grep -h "rate_guard" "$e2e_work"/{other_ca,wrong_name,no_client_cert}/error.log | grep -v '\[error\]' |
  grep -v '\[info\] .*rate_guard: TLS to Redis at' | grep -q .; then
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
