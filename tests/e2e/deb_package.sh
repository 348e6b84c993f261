#!/usr/bin/env bash
# Installs the .deb for real next to Debian's nginx and Debian's nchan module
# (libnginx-mod-nchan, installed by ./dev), checks that the module is enabled
# the Debian way and that Debian's nginx loads it beside nchan and limits with
# it, that its rate-guard-ctl runs (on Debian's python3, which the package
# depends on) and writes a rule key, then purges the package and checks that
# nothing is left behind.
# Needs root (dpkg); CI and `./dev test` run as root.
set -euo pipefail

deb=$1
package=libnginx-mod-http-rate-guard
module=/usr/lib/nginx/modules/ngx_http_rate_guard_module.so
ctl=/usr/bin/rate-guard-ctl
enabled=/etc/nginx/modules-enabled/50-mod-http-rate-guard.conf

if [[ $(id -u) -ne 0 ]]; then
  echo "FAIL: installing a package needs root" >&2
  exit 1
fi
[[ -f $deb ]] || { echo "FAIL: no package at $deb (cmake --build build --target deb)" >&2; exit 1; }

source "$(dirname "$0")/../../scripts/lib.sh"
lib_init deb
at_exit 'dpkg -P "$package" >/dev/null 2>&1'

fail() { echo "FAIL: $*" >&2; exit 1; }

[[ $(dpkg-deb -f "$deb" Depends) == *nginx-abi-* ]] || fail "the package does not depend on the nginx ABI"
[[ $(dpkg-deb -f "$deb" Depends) != *hiredis* ]] || fail "the package depends on a shared hiredis (it is linked in)"
[[ $(dpkg-deb -f "$deb" Depends) == *python3* ]] || fail "the package does not depend on python3 (rate-guard-ctl)"
dpkg-query -W -f='${Status}' libnginx-mod-nchan 2>/dev/null | grep -q 'install ok installed' ||
  fail "libnginx-mod-nchan is not installed (./dev installs it): the package must install beside it"
[[ -e /etc/nginx/modules-enabled/50-mod-nchan.conf ]] || fail "Debian's nchan module is not enabled"
dpkg -i "$deb" > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
echo "installed: $(dpkg-query -W -f='${Package} ${Version} ${Status}' "$package")"
[[ -f $module ]] || fail "$module missing"
[[ -L $enabled ]] || fail "$enabled is not a link"
[[ $(readlink "$enabled") == /usr/share/nginx/modules-available/mod-http-rate-guard.conf ]] ||
  fail "$enabled points at $(readlink "$enabled")"

redis_port=$(free_port)
port=$(free_port)
start_redis "$redis_port"

# As Debian's nginx.conf does: the modules come from modules-enabled (in the
# glob's order: rate_guard, then nchan), their paths relative to the Debian
# prefix (/usr/share/nginx/modules is a link).
# Debian's own /usr/sbin/nginx on purpose, not $NGINX_BINARY.
mkdir -p "$work/logs"
cat > "$work/nginx.conf" <<CONF
include /etc/nginx/modules-enabled/*.conf;
daemon off;
master_process on;
worker_processes 1;
pid $work/nginx.pid;
error_log $work/logs/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    rate_guard_redis 127.0.0.1:$redis_port;
    rate_guard_zone \$remote_addr zone=deb rate=1r/m;
    server {
        listen 127.0.0.1:$port;
        location = /t { rate_guard zone=deb; empty_gif; }
        location = /pub { nchan_publisher; nchan_channel_id deb; }
    }
}
CONF
/usr/sbin/nginx -t -q -p /usr/share/nginx/ -e "$work/logs/error.log" -c "$work/nginx.conf" || fail "Debian's nginx -t does not load the installed module"
/usr/sbin/nginx -p /usr/share/nginx/ -e "$work/logs/error.log" -c "$work/nginx.conf" &
track $!
wait_port "$port"
first=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/t")
second=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/t")
echo "requests through the installed module: $first then $second"
[[ $first == 200 && $second == 429 ]] || fail "expected 200 then 429"
published=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary hello "http://127.0.0.1:$port/pub")
echo "nchan beside it: publish $published"
[[ $published == 202 ]] || fail "nchan's publisher answered $published, expected 202"
! grep 'exited on signal' "$work/logs/error.log" || fail "a worker died"

[[ -x $ctl ]] || fail "$ctl missing or not executable"
"$ctl" --help > /dev/null || fail "$ctl --help"
"$ctl" --redis "127.0.0.1:$redis_port" --ip ban deb 192.0.2.1 1h > "$work/ctl.log" || fail "$ctl ban: $(cat "$work/ctl.log")"
[[ $(printf 'rate_guard:deb!rule:\xc0\x00\x02\x01' | redis_cli -p "$redis_port" -x PTTL) -gt 3590000 ]] ||
  fail "$ctl did not write the rule key of 192.0.2.1 with the ban's TTL"
echo "rate-guard-ctl from the package: $(head -1 "$work/ctl.log")"

dpkg -r "$package" > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -r"; }
[[ ! -e $module ]] || fail "$module left after remove"
[[ ! -e $enabled ]] || fail "$enabled left after remove"
[[ ! -e $ctl ]] || fail "$ctl left after remove"
dpkg -P "$package" > "$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -P"; }
[[ ! -e $enabled.removed ]] || fail "$enabled.removed left after purge"
echo "removed and purged cleanly"

# cmake --install lays out the same files (into DESTDIR here).
DESTDIR="$work/destdir" cmake --install "$(dirname "$deb")" > "$work/install.log"
[[ -f $work/destdir$module ]] || fail "cmake --install did not install $module"
[[ -f $work/destdir/usr/share/nginx/modules-available/mod-http-rate-guard.conf ]] ||
  fail "cmake --install did not install the modules-available snippet"
[[ $(readlink "$work/destdir$enabled") == /usr/share/nginx/modules-available/mod-http-rate-guard.conf ]] ||
  fail "cmake --install did not enable the module"
[[ -x $work/destdir$ctl ]] || fail "cmake --install did not install $ctl"
echo "cmake --install: module, snippet, modules-enabled link and rate-guard-ctl in place"
