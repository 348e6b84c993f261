// The Lua script (src/lua/) that checks a batch of requests, every zone of each, in a
// single EVALSHA, so a request is counted in all its zones only if all allow it.
#pragma once

#include <string_view>

namespace rate_guard {

// One call checks a batch of requests, each with one or more zones; the
// requests are decided one after the other, in order, each seeing what the
// previous ones recorded, and each is recorded in all its zones or in none.
//
// KEYS      the Redis key (see append_redis_key) of every zone of every
//           request, request after request.
// ARGV[1]   the current time in microseconds, or "0" to take it from Redis
//           `TIME` (the module always sends "0": one clock for every server;
//           tests pin the time with it).
// ARGV[2]   the number of requests R.
// then, for each request: its number of zones n, followed by 5 arguments
//           per zone: algorithm code (Algorithm's value), limit, window in
//           ms, burst, cost.
// Reply: kCheckReplyFieldsPerZone integers per zone, request after request,
//        in KEYS order:
//        allowed (1 or 0), limit, remaining, reset in ms (see ZoneVerdict).
//        R = 0 (no key, no argument after R) is answered with an empty array.
// Every argument is checked before anything is recorded: an error reply about
// them (bad time, counts that do not match KEYS and ARGV, a bad zone argument)
// means that no request of the batch was recorded. Redis's TIME is read once per
// call: every request of a batch is at the same time.
extern const std::string_view kCheckScript;

// Arguments per zone, after each request's zone count, and integers per zone
// in the reply (src/lua/check_script.cpp checks that the Lua agrees).
constexpr int kCheckArgsPerZone = 5;
constexpr int kCheckReplyFieldsPerZone = 4;

}  // namespace rate_guard
