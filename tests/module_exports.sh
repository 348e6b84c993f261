#!/usr/bin/env bash
# nginx loads every module RTLD_GLOBAL, so whatever a module exports meets
# every other module's symbols. The module must export only what load_module
# looks up (ngx_modules, ngx_module_names, ngx_module_order) and must need
# no hiredis from outside: Debian's nchan exports hiredis 1.x under the same
# unversioned names as the hiredis 0.14 linked in here.
#   module_exports.sh MODULE.so
set -uo pipefail

module=$1
status=0
fail() { echo "FAIL: $*" >&2; status=1; }

exported=$(nm -D --defined-only "$module" | awk '{ print $NF }' | sort | xargs)
if [[ $exported == "ngx_module_names ngx_module_order ngx_modules" ]]; then
  echo "exported: $exported"
else
  fail "the module exports more than its entry point: $(wc -w <<< "$exported") symbols, among them $(tr ' ' '\n' <<< "$exported" | grep -v '^ngx_module' | head -5 | xargs) ..."
fi

hiredis_needed=$(nm -D --undefined-only "$module" | awk '{ print $NF }' | grep -E '^(redis|sds|hi_)' | xargs)
[[ -z $hiredis_needed ]] || fail "hiredis symbols left to bind at load time: $hiredis_needed"

libraries=$(readelf -d "$module" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | xargs)
echo "needs: $libraries"
[[ $libraries != *hiredis* ]] || fail "the module loads a shared hiredis"

exit $status
