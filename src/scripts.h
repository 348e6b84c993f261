// The Lua script that makes one check, covering every zone of a request in a
// single EVALSHA, so a request is counted in all its zones only if all allow it.
#pragma once

#include <string_view>

namespace rate_guard {

// KEYS[i]   the Redis key of zone i (see append_redis_key).
// ARGV[1]   the current time in microseconds, or "0" to take it from Redis
//           `TIME` (the module always sends "0": one clock for every server;
//           tests pin the time with it).
// ARGV[2 + 5*(i-1)] .. ARGV[6 + 5*(i-1)]  zone i: algorithm code (Algorithm's
//           value), limit, window in ms, burst, cost.
// Reply: 4 integers per zone, in KEYS order: allowed (1 or 0), limit,
//        remaining, reset in ms (see ZoneVerdict).
extern const std::string_view kCheckScript;

// Arguments per zone after ARGV[1].
constexpr int kCheckArgsPerZone = 5;

}  // namespace rate_guard
