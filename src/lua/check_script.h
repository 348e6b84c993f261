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
//           n, then the zone's 5 arguments;
//           or a lease entry, a merged entry that also asks for a lease:
//           kCheckLeaseHeader (-1), n (1 or more), U the units wanted (1 or
//           more), the lifetime wanted in ms (1 or more), then the zone's 5
//           arguments;
//           or a hand-back: kCheckHandBackHeader (-2), u the units given
//           back (1 or more), g the units of that grant (u or more), its
//           mark, then the zone's 5 arguments.
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
//        the same state (tests/redis/check_script_merged_test.cpp);
//        for a lease entry, kCheckReplyFieldsPerLease integers: a merged
//        entry's 5 (remaining not counting the grant), then the units
//        granted (0 unless all n pass), the lease's lifetime in ms from
//        Redis's time of the call (0 with nothing granted), and the grant's
//        mark. A grant is recorded as if its units were spent at any moment
//        of the lifetime (so never lets the zone over its limit, whenever
//        they are spent), and takes at most a kLeaseShare-th of what remains
//        once the n are counted (none when less than kLeaseShare remain: the
//        last units are decided one request at a time); U is for the
//        lifetime wanted: for a shorter one (at most a 16th of the window,
//        ending with sliding_window's sub-window or fixed_window's window),
//        proportionally fewer, rounded up;
//        for a hand-back, 1 integer: the units taken back off the count (0
//        once the grant's units have left the window, or for token_bucket).
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
// The zone counts that start a lease entry and a hand-back, and the integers
// answering them; a grant takes at most this share of what remains.
constexpr int kCheckLeaseHeader = -1;
constexpr int kCheckReplyFieldsPerLease = 8;
constexpr int kCheckHandBackHeader = -2;
constexpr int kCheckReplyFieldsPerHandBack = 1;
constexpr int kLeaseShare = 4;
// The zone count that starts a charge (count=after), and the integers
// answering it.
constexpr int kCheckChargeHeader = -3;
constexpr int kCheckReplyFieldsPerCharge = 1;
// The kinds of the rule events after the entries' integers (k * 2 + kind).
constexpr int kRuleBanned = 0;
constexpr int kRuleOverride = 1;
// A lease lives at most this long, so a ban reaches a leased key within it.
constexpr int kMaxLeaseLifetimeMs = 1000;

}  // namespace rate_guard
