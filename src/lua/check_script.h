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
// ARGV[2]   the number of entries R.
// then, for each entry, either a request: its number of zones z (1 or
//           more), followed by 5 arguments per zone: algorithm code
//           (Algorithm's value), limit, window in ms, burst, cost;
//           or a merged entry, n requests of one zone with the same key and
//           arguments (their cost is each one's): kCheckMergedHeader (0),
//           n, then the zone's 5 arguments.
// Reply, entry after entry, in KEYS order:
//        for a request, kCheckReplyFieldsPerZone integers per zone:
//        allowed (1 or 0), limit, remaining, reset in ms (see ZoneVerdict);
//        for a merged entry, kCheckReplyFieldsPerMerged integers: m, how
//        many pass (the first m of the n, each fitting once the ones before
//        it are counted), limit, remaining once the m are counted (what the
//        m-th and every rejected one report: the i-th passed reports
//        remaining + (m - i) * cost), the m-th's reset in ms (the others
//        passed report 0), the rejected ones' reset in ms (0 when m = n).
//        A merged entry is decided and recorded exactly as its n requests,
//        each an entry of its own, one after the other: the same verdicts,
//        the same state (tests/redis/check_script_merged_test.cpp).
//        R = 0 (no key, no argument after R) is answered with an empty array.
// Every argument is checked before anything is recorded: an error reply about
// them (bad time, counts that do not match KEYS and ARGV, a bad zone argument)
// means that no request of the batch was recorded. Redis's TIME is read once per
// call: every request of a batch is at the same time.
// A script of another release has another SHA1: each module sends to its own
// (a script without merged entries rejects a zone count of 0 with an error
// reply); the keys and their states are the same for both.
extern const std::string_view kCheckScript;

// Arguments per zone, after each request's zone count, and integers per zone
// in the reply (src/lua/check_script.cpp checks that the Lua agrees).
constexpr int kCheckArgsPerZone = 5;
constexpr int kCheckReplyFieldsPerZone = 4;
// The zone count that starts a merged entry, and the integers answering one.
constexpr int kCheckMergedHeader = 0;
constexpr int kCheckReplyFieldsPerMerged = 5;

}  // namespace rate_guard
