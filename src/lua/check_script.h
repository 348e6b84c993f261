// The Lua script (src/lua/) that checks a batch of requests, every zone of each, in a
// single EVALSHA, so a request is counted in all its zones only if all allow it.
#pragma once

#include <string_view>

namespace rate_guard {

// One call checks a batch of requests, each with one or more zones; the
// requests are decided one after the other, in order, each seeing what the
// previous ones recorded, and each is recorded in all its zones or in none.
//
// KEYS      2Z keys: first the Redis key (see append_redis_key) of the
//           state of every zone of every entry, entry after entry, Z of
//           them; then, in the same order, KEYS[Z + k] the rule key of zone
//           k ("<prefix><zone>!rule:<client key>", hash-tagged as the state
//           key is). An odd number of keys is an error reply.
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
//           mark, then the zone's 5 arguments;
//           or a charge: kCheckChargeHeader (-3), then the zone's 5
//           arguments, the cost (1 or more) the units charged.
//           A cost of 0 is a peek, in a plain request only (anywhere else,
//           an error reply): that zone decided as a request of cost 1,
//           nothing recorded in it.
// Rules: a zone's rule key, when it holds a string, "<field> <field>...":
//           ban=<ms> (banned until that Unix time in ms, Redis's clock),
//           rate=<N>/<W> (N per W ms: the key's limit and window, and
//           token_bucket's burst), rate=unlimited; unknown or malformed
//           fields are ignored. For a zone of a request, a merged or a lease
//           entry: a ban still on rejects it (the usual limit, remaining 0,
//           the wait until the ban's end; a merged or lease entry: none
//           passes, nothing granted); else rate=N/W decides it with N and W
//           (the limit answered is N); else rate=unlimited passes it and
//           records nothing there (remaining the usual limit, reset 0;
//           merged: all pass, each with that remaining, not the fan-out's
//           remaining + (m - i) * cost below; nothing granted); each of
//           these zones has its event (below). A charge takes rate=N/W,
//           records nothing under unlimited, and ignores a ban; a hand-back
//           takes rate=N/W's window only. A request rejected by a ban is,
//           as any rejection, recorded in none of its zones.
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
//        ending with sliding_window's sub-window or fixed_window's window,
//        and at most kMaxLeaseLifetimeMs, so that a rule set or removed
//        reaches a key held in leases within it), proportionally fewer,
//        rounded up;
//        for a hand-back, 1 integer: the units taken back off the count (0
//        once the grant's units have left the window, or for token_bucket);
//        for a charge, kCheckReplyFieldsPerCharge integer: the units
//        remaining after it, 0 when over (under rate=unlimited, nothing
//        recorded, the zone's limit). A charge is recorded at the
//        call's time whether or not it fits (the response was already
//        given), so that a client over its limit waits until the debt has
//        left the window: sliding_window up to 4294967295 in a sub-window,
//        sliding_log at most `limit` entries a charge, token_bucket's TAT
//        moved on from max(TAT, now) by at most tokens + burst units (at
//        most a full bucket of debt);
//        for a peek allowed: 1, limit, what remains before the request (the
//        cost-1 decision's remaining + 1; the limit under rate=unlimited),
//        reset 0; rejected: a cost-1 rejection's 4 integers.
//        Then the rule events: one integer for each zone of a request, a
//        merged or a lease entry decided under its rule, in KEYS order:
//        k * 2 + kRuleBanned (rejected by a ban) or + kRuleOverride
//        (decided under rate=N/W or rate=unlimited), k the zone's index in
//        KEYS (1 to Z); none for hand-backs and charges. A reply is thus the
//        entries' integers, then 0 or more events.
//        R = 0 (no key, no argument after R) is answered with an empty array.
// Every argument is checked before anything is recorded: an error reply about
// them (bad time, counts that do not match KEYS and ARGV, a bad zone argument)
// means that no request of the batch was recorded. Redis's TIME is read once per
// call: every request of a batch is at the same time.
// A script of another release has another SHA1: each module sends to its own
// (a script without merged entries rejects a zone count of 0 with an error
// reply, one without rules a doubled KEYS); the keys and their states are
// the same for both.
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
// A lease's lifetime is at most this (besides the one asked and the
// algorithm's bounds): a rule set or removed reaches leased keys within it.
constexpr int kMaxLeaseLifetimeMs = 1000;
// The zone count that starts a charge, and the integers answering one.
constexpr int kCheckChargeHeader = -3;
constexpr int kCheckReplyFieldsPerCharge = 1;
// A rule event is k * 2 + one of these (k: the zone's index in KEYS, 1 to Z).
constexpr int kRuleBanned = 0;
constexpr int kRuleOverride = 1;

}  // namespace rate_guard
