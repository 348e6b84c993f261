#!/usr/bin/env bash
# The core's GoogleTest suite, the fuzz targets' seeds and regression inputs
# and the t/ suites under AddressSanitizer and UndefinedBehaviorSanitizer.
#
# Usage: tests/sanitize.sh [t/ files...]          (default: every t/*.t)
#
# Environment:
#   RATE_GUARD_ASAN_BUILD_DIR  build directory (default: build-asan)
#   NGINX_BINARY               the uninstrumented nginx to run (default $TEST_NGINX_BINARY, then /usr/sbin/nginx)
#
# It builds with -DRATE_GUARD_SANITIZE=ON (core, tests and the module through
# nginx's configure), runs rate_guard_{unit,redis}_tests and fuzz_replay, then t/run with an nginx wrapper
# that preloads the sanitizer runtimes. Debian's nginx is not instrumented, and
# an instrumented module can only be loaded into a process whose first
# libraries are libasan (and libubsan): LD_PRELOAD does that, for nginx only
# (not for prove, perl or redis-server). Under CPAN's Test::Nginx the same
# wrapper works; TEST_NGINX_LD_PRELOAD would too.
#
# Every sanitizer report goes to a file under $build/sanitizer-reports
# (log_path): a worker's report would otherwise land on a closed stderr. The
# run fails if any report file appears, whatever the suites said. Errors abort
# the process (halt_on_error, abort_on_error): a crashed worker also fails its
# block in t/lib's runner.
#
# Leaks: LeakSanitizer runs at the exit of every nginx process.
# tests/lsan.supp suppresses only stacks through nginx's own allocators
# (ngx_alloc, ngx_calloc, ngx_memalign): the process that daemonizes exits
# without freeing the cycle it parsed, by design. Memory the module allocates
# with new/malloc, or through hiredis, is still checked.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build="${RATE_GUARD_ASAN_BUILD_DIR:-$root/build-asan}"
source "$root/scripts/lib.sh"  # NGINX_BINARY; t/run below starts the servers
start=$(date +%s)

step() { printf '==> %s (%ds)\n' "$*" $(( $(date +%s) - start )); }

step "building with -DRATE_GUARD_SANITIZE=ON in $build"
cmake -S "$root" -B "$build" -DRATE_GUARD_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
cmake --build "$build" -j "$(nproc)" > "$build/build.log" 2>&1 || { tail -40 "$build/build.log"; exit 1; }

module="$build/nginx/objs/ngx_http_rate_guard_module.so"
libasan=$(ldd "$module" | awk '/libasan\.so/ { print $3 }')
libubsan=$(ldd "$module" | awk '/libubsan\.so/ { print $3 }')
if [[ -z "$libasan" || -z "$libubsan" ]]; then
  echo "sanitize.sh: $module is not linked with libasan and libubsan" >&2
  exit 1
fi

reports="$build/sanitizer-reports"
rm -rf "$reports"
mkdir -p "$reports"
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=1:detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:log_path=$reports/asan"
export LSAN_OPTIONS="suppressions=$root/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:abort_on_error=1:print_stacktrace=1:log_path=$reports/ubsan"

# The reports must land where they are looked for: an instrumented program
# that overflows a buffer, leaks and overflows an int leaves three files.
step "canary: the options are read and reports land in $reports"
canary="$build/sanitizer-canary"
cat > "$canary.c" <<'EOF'
#include <limits.h>
#include <stdlib.h>
#include <string.h>
int main(int argc, char **argv) {
    char *p = malloc(8);
    switch (argv[1][0]) {
    case 'o': memset(p, 0, 8 + argc - 1); break;      /* heap-buffer-overflow */
    case 'l': p = malloc(16); p[0] = 0; break;         /* the first 8 bytes leak */
    case 'u': return INT_MAX - 1 + argc > 0;           /* signed integer overflow */
    }
    free(p);
    return 0;
}
EOF
gcc -g -O0 -fsanitize=address,undefined -fno-omit-frame-pointer "$canary.c" -o "$canary"
for mode in o l u; do
  # exit with an error instead of aborting: the same reports, no "Aborted" line
  ASAN_OPTIONS=${ASAN_OPTIONS/abort_on_error=1/abort_on_error=0} \
  UBSAN_OPTIONS=${UBSAN_OPTIONS/abort_on_error=1/abort_on_error=0} \
    "$canary" "$mode" > /dev/null 2>&1 || true
done
found=$(grep -ls -e 'heap-buffer-overflow' -e 'detected memory leaks' -e 'runtime error: signed integer overflow' \
      "$reports"/* | wc -l)
if [[ $found -ne 3 ]]; then
  echo "sanitize.sh: the canary left $found of 3 reports in $reports: sanitizer options are not effective" >&2
  ls -l "$reports" >&2
  exit 1
fi
rm -f "$reports"/*

status=0

step "GoogleTest under ASan+UBSan"
for tests in rate_guard_unit_tests rate_guard_redis_tests; do
  if ! "$build/$tests" --gtest_brief=1; then
    status=1
  fi
done

step "fuzz seeds and regression inputs under ASan+UBSan"
if ! "$build/fuzz/fuzz_replay" "$root/fuzz" > "$build/fuzz_replay.log" 2>&1; then
  tail -5 "$build/fuzz_replay.log"
  status=1
else
  tail -1 "$build/fuzz_replay.log"
fi

step "t/ suites under ASan+UBSan (nginx: $NGINX_BINARY with LD_PRELOAD=$libasan $libubsan)"
wrapper="$build/nginx-sanitized"
cat > "$wrapper" <<EOF
#!/bin/sh
# $NGINX_BINARY with the sanitizer runtimes preloaded (written by tests/sanitize.sh).
LD_PRELOAD="$libasan $libubsan\${LD_PRELOAD:+ \$LD_PRELOAD}" exec "$NGINX_BINARY" "\$@"
EOF
chmod +x "$wrapper"
if ! NGINX_BINARY="$wrapper" RATE_GUARD_MODULE="$module" \
    RATE_GUARD_TEST_WORKDIR="$build/t-work" "$root/t/run" "$@"; then
  status=1
fi

step "sanitizer reports"
shopt -s nullglob
files=("$reports"/*)
if [[ ${#files[@]} -gt 0 ]]; then
  for f in "${files[@]}"; do
    echo "---- $f"
    head -60 "$f"
  done
  echo "sanitize.sh: ${#files[@]} sanitizer report(s) in $reports" >&2
  status=1
else
  echo "no sanitizer report"
fi

step "done: $([[ $status == 0 ]] && echo PASS || echo FAIL)"
exit $status
