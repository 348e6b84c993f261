// Leases (lua/check_script.h): a lease entry is a merged entry that, when all
// its n requests pass, may also be granted units that the server spends on
// its own until the lease ends; a hand-back gives back units never spent.
// The grants' values are specified here per algorithm, and above all THE
// BOUND: with servers spending their grants at the worst moments (at the
// grant, at the very end of the lifetime, just before a window's or a
// sub-window's edge) among checks that keep the zone full, and handing back
// what they did not spend, no algorithm ever lets more through than it
// would without leases. Mutants of the script (a lifetime not capped, units
// charged at the grant instead of the lifetime's end) fail the same replay:
// the test can tell.
#include "check_script_fixture.h"

#include <iostream>
#include <map>

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

// A lease entry's answer.
struct Grant {
  uint64_t passed = 0, limit = 0, remaining = 0, reset_ms = 0, retry_ms = 0;
  uint64_t units = 0, lease_ms = 0, mark = 0;

  bool operator==(const Grant& o) const {
    return passed == o.passed && limit == o.limit && remaining == o.remaining && reset_ms == o.reset_ms &&
           retry_ms == o.retry_ms && units == o.units && lease_ms == o.lease_ms && mark == o.mark;
  }
};
std::ostream& operator<<(std::ostream& out, const Grant& g) {
  return out << "Grant{passed " << g.passed << ", limit " << g.limit << ", remaining " << g.remaining << ", reset "
             << g.reset_ms << ", retry " << g.retry_ms << "; units " << g.units << ", " << g.lease_ms << " ms, mark "
             << g.mark << "}";
}

class Leases : public CheckScriptTest {
 protected:
  // The entries in one call at `now_us`, then their keys persisted, in one
  // transaction (a key's TTL runs in real time; the pinned time tells stale
  // state anyway): each entry's integers.
  std::vector<std::vector<uint64_t>> run(uint64_t now_us, const std::vector<Entry>& entries,
                                         const std::string& sha = "") {
    std::vector<std::vector<std::string>> commands = {entry_args(now_us, entries, sha)};
    for (const Entry& entry : entries) {
      commands.push_back({"PERSIST", entry.zones[0].key});
    }
    Reply exec = transaction(commands);
    std::vector<std::vector<uint64_t>> answers;
    if (exec == nullptr) {
      return answers;
    }
    const redisReply* reply = exec->element[0];
    if (reply->type != REDIS_REPLY_ARRAY) {
      ADD_FAILURE() << "script error: " << std::string_view(reply->str, reply->len);
      return answers;
    }
    size_t at = 0;
    for (const Entry& entry : entries) {
      std::vector<uint64_t> fields;
      for (size_t i = 0; i < reply_fields(entry) && at < reply->elements; ++i, ++at) {
        EXPECT_EQ(reply->element[at]->type, REDIS_REPLY_INTEGER);
        EXPECT_GE(reply->element[at]->integer, 0);
        fields.push_back(static_cast<uint64_t>(reply->element[at]->integer));
      }
      answers.push_back(fields);
    }
    EXPECT_EQ(at, reply->elements) << "the reply's length";
    return answers;
  }

  Grant ask(uint64_t now_us, const Zone& zone, uint64_t n, uint64_t units, uint64_t lease_ms) {
    std::vector<std::vector<uint64_t>> answers = run(now_us, {lease(zone, n, units, lease_ms)});
    if (answers.size() != 1 || answers[0].size() != 8) {
      ADD_FAILURE() << "no lease answer";
      return {};
    }
    const std::vector<uint64_t>& f = answers[0];
    return Grant{f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]};
  }

  uint64_t give_back(uint64_t now_us, const Zone& zone, uint64_t units, uint64_t granted, uint64_t mark) {
    std::vector<std::vector<uint64_t>> answers = run(now_us, {hand_back(zone, units, granted, mark)});
    return answers.size() == 1 && answers[0].size() == 1 ? answers[0][0] : ~uint64_t{0};
  }

  // A plain check of `zone` (cost 1) at `now_us`, persisted.
  Verdict plain_check(uint64_t now_us, const Zone& zone) {
    std::vector<std::vector<uint64_t>> answers = run(now_us, {plain(zone)});
    if (answers.size() != 1 || answers[0].size() != 4) {
      return {};
    }
    const std::vector<uint64_t>& f = answers[0];
    return Verdict{f[0] == 1, f[1], f[2], f[3]};
  }

  // Takes `units` of `zone` at `now_us` by a merged entry of as many requests.
  void take(uint64_t now_us, const Zone& zone, uint64_t units) {
    std::vector<std::vector<uint64_t>> answers = run(now_us, {merged(zone, units)});
    ASSERT_EQ(answers.size(), 1u);
    ASSERT_EQ(answers[0].at(0), units);
  }
};

// Sub-window i0 of a 2 s window (span 125 ms) starts at kT0.
constexpr uint64_t kSpan = 125 * kMs;
constexpr uint64_t kI0 = kT0 / kSpan;
static_assert(kT0 % kSpan == 0, "kT0 starts a sub-window");

// ================================================================ the grants

TEST_F(Leases, SlidingWindowGrantsAQuarterOfWhatRemainsUntilItsSubWindowWouldStopCountingIt) {
  const Zone zone = sliding_window(40, 2000, "sw");
  // 10 ms into sub-window i0: 39 remain after the request, a quarter is 9;
  // charged to i0, counted until (i0 + 17) * span, so the lease ends by
  // (i0 + 17) * span - window: 115 ms from now (a 16th of the window, 125
  // ms, and the 1000 ms asked are longer).
  EXPECT_EQ(ask(kT0 + 10 * kMs, zone, 1, 100, 1000), (Grant{1, 40, 39, 0, 0, 9, 115, kI0}));
  // A plain check sees the request and the 9 counted: 30 left, 29 after it.
  EXPECT_EQ(plain_check(kT0 + 10 * kMs, zone), Allowed(40, 29, 0));
  const SlidingWindowState state = unpack_sliding_window(get("sw"));
  ASSERT_TRUE(state.valid);
  EXPECT_EQ(state.newest, kI0);
  EXPECT_EQ(state.counts.back(), 11u);
  // The lifetime asked, when shorter; the units asked, when fewer.
  EXPECT_EQ(ask(kT0 + 20 * kMs, zone, 1, 3, 50), (Grant{1, 40, 28, 0, 0, 3, 50, kI0}));
}

TEST_F(Leases, SlidingWindowGrantsNothingTooCloseToASubWindowsEnd) {
  const Zone zone = sliding_window(40, 2000, "sw");
  // 2 ms before the end of i0: the lease could live 2 ms, and gets the
  // units asked for that long: 100 for 1000 ms are 13 for the 125 ms of a
  // 16th of the window, 1 for 2 ms.
  EXPECT_EQ(ask(kT0 + kSpan - 2 * kMs, zone, 1, 100, 1000), (Grant{1, 40, 39, 0, 0, 1, 2, kI0}));
  // Half a ms before it: less than 1 ms, nothing; the request still passes.
  EXPECT_EQ(ask(kT0 + kSpan - 500, zone, 1, 100, 1000), (Grant{1, 40, 37, 0, 0, 0, 0, 0}));
  // The next sub-window, at its start: a whole span (125 ms, also a 16th),
  // 13 units, a quarter of the 36 left is fewer.
  EXPECT_EQ(ask(kT0 + kSpan, zone, 1, 100, 1000), (Grant{1, 40, 36, 0, 0, 9, 125, kI0 + 1}));
}

TEST_F(Leases, SlidingWindowGrantsOnlyAQuarterAndNothingWhenLessThanFourRemainOrNotAllPass) {
  const Zone zone = sliding_window(40, 2000, "sw");
  take(kT0, zone, 32);
  // 7 remain after the request: 1.
  EXPECT_EQ(ask(kT0 + kMs, zone, 1, 100, 1000), (Grant{1, 40, 7, 0, 0, 1, 124, kI0}));
  take(kT0 + kMs, zone, 2);
  // 3 remain after it: none.
  EXPECT_EQ(ask(kT0 + kMs, zone, 1, 100, 1000), (Grant{1, 40, 3, 0, 0, 0, 0, 0}));
  // 3 asked, 2 fit: 2 of 3 pass (recorded), nothing granted; the last passed
  // and the rejected wait for i0 to leave.
  take(kT0 + kMs, zone, 1);
  EXPECT_EQ(ask(kT0 + kMs, zone, 3, 100, 1000), (Grant{2, 40, 0, 2124, 2124, 0, 0, 0}));
  EXPECT_EQ(plain_check(kT0 + kMs, zone), Rejected(40, 0, 2124));
}

TEST_F(Leases, SlidingLogChargesTheUnitsAtTheEndOfTheLifetime) {
  const Zone zone = sliding_log(40, 2000, "log");
  const uint64_t now = kT0 + 10 * kMs;
  // A 16th of the window: 125 ms; the 9 entries from now + 125 ms on.
  const uint64_t mark = now + 125 * kMs + 8;
  EXPECT_EQ(ask(now, zone, 1, 100, 1000), (Grant{1, 40, 39, 0, 0, 9, 125, mark}));
  const std::vector<std::string> members = zrange("log");
  ASSERT_EQ(members.size(), 10u);
  EXPECT_EQ(members[0], std::to_string(now));
  EXPECT_EQ(members[1], std::to_string(now + 125 * kMs));
  EXPECT_EQ(members[9], std::to_string(mark));
  // The TTL covers the last (run() persists the key: the script's own on
  // another): ceil((125.008 ms + the window) / 1 ms).
  ASSERT_EQ(raw(now, {lease(sliding_log(40, 2000, "ttl"), 1, 100, 1000)})->type, REDIS_REPLY_ARRAY);
  EXPECT_LE(pttl("ttl"), 2126);
  EXPECT_GE(pttl("ttl"), 2120);
  // A plain check sees the 10; its entry comes after the grant's.
  EXPECT_EQ(plain_check(now, zone), Allowed(40, 29, 0));
  EXPECT_EQ(zrange("log").back(), std::to_string(mark + 1));
  // A lifetime asked shorter; too short a window (under 16 ms) grants nothing.
  // (its entries from the first free score on: the plain one's is mark + 1,
  // this request's mark + 2)
  EXPECT_EQ(ask(now, zone, 1, 2, 3), (Grant{1, 40, 28, 0, 0, 2, 3, mark + 4}));
  EXPECT_EQ(ask(now, sliding_log(40, 15, "short"), 1, 100, 1000), (Grant{1, 40, 39, 0, 0, 0, 0, 0}));
  EXPECT_EQ(zcard("short"), 1);
}

TEST_F(Leases, SlidingLogGrantsOnlyAQuarterAndNothingWhenLessThanFourRemainOrNotAllPass) {
  const Zone zone = sliding_log(40, 2000, "log");
  take(kT0, zone, 32);
  EXPECT_EQ(ask(kT0 + kMs, zone, 1, 100, 1000).units, 1u);
  take(kT0 + kMs, zone, 2);
  EXPECT_EQ(ask(kT0 + kMs, zone, 1, 100, 1000), (Grant{1, 40, 3, 0, 0, 0, 0, 0}));
  take(kT0 + kMs, zone, 1);
  // 2 of 3 pass, nothing granted; the last to pass and the rejected wait
  // for the oldest entry (kT0) to leave.
  EXPECT_EQ(ask(kT0 + kMs, zone, 3, 100, 1000), (Grant{2, 40, 0, 1999, 1999, 0, 0, 0}));
  EXPECT_EQ(zcard("log"), 40);
}

TEST_F(Leases, FixedWindowLeasesEndInTheirWindow) {
  const Zone zone = fixed_window(40, 1000, "fw");
  const uint64_t index = kT0 / kSecond;
  // 100 ms before the window's end: a 16th of the window, 62.5 ms, is
  // shorter; the units asked for it, 100 for 1000 ms: ceil(6.25) = 7, and 7
  // for the 62 whole ms.
  EXPECT_EQ(ask(kT0 + 900 * kMs, zone, 1, 100, 1000), (Grant{1, 40, 39, 0, 0, 7, 62, index}));
  EXPECT_EQ(get("fw"), std::to_string(index) + ":8");
  EXPECT_EQ(plain_check(kT0 + 900 * kMs, zone), Allowed(40, 31, 0));
  // 40 ms before it: until the window's last microsecond, 39.999 ms: 5 of the 7.
  EXPECT_EQ(ask(kT0 + 960 * kMs, zone, 1, 100, 1000), (Grant{1, 40, 30, 0, 0, 5, 39, index}));
  // Within its last ms: nothing.
  EXPECT_EQ(ask(kT0 + 999 * kMs, zone, 1, 100, 1000), (Grant{1, 40, 24, 0, 0, 0, 0, 0}));
  EXPECT_EQ(get("fw"), std::to_string(index) + ":16");
  // Less than 4 left after the request: nothing; not all passing: nothing.
  take(kT0 + 999 * kMs, zone, 21);
  EXPECT_EQ(ask(kT0 + 999 * kMs, zone, 1, 100, 1000), (Grant{1, 40, 2, 0, 0, 0, 0, 0}));
  EXPECT_EQ(ask(kT0 + 999 * kMs, zone, 3, 100, 1000), (Grant{2, 40, 0, 1, 1, 0, 0, 0}));
}

TEST_F(Leases, TokenBucketChargesTheGrantAsIfSpentAtTheEndOfTheLifetime) {
  // 160 per 2 s, T = 12.5 ms, burst 40.
  const Zone zone = token_bucket(160, 2000, 40, "tb");
  // A full bucket: the request takes the TAT to now + T, the grant starts
  // from now + 125 ms (the lifetime, a 16th of the window), 10 tokens' worth
  // of time, and adds 9 * T: the TAT is now + 237.5 ms.
  EXPECT_EQ(ask(kT0, zone, 1, 100, 1000), (Grant{1, 40, 39, 0, 0, 9, 125, 0}));
  EXPECT_EQ(get("tb"), std::to_string(kT0 + 237500) + ":0");
  // A plain check sees 40 - ceil(237.5 / 12.5) = 21 tokens: 20 after it.
  EXPECT_EQ(plain_check(kT0, zone), Allowed(40, 20, 0));
}

TEST_F(Leases, TokenBucketGrantsWhatFitsAfterTheLifetimeOrAfterTheRequests) {
  const Zone zone = token_bucket(160, 2000, 40, "tb");
  // 20 taken: TAT now + 250 ms; with the request now + 262.5 ms, past the
  // lifetime's end, the grant starts there: 19 tokens left, a quarter 4.
  take(kT0, zone, 20);
  EXPECT_EQ(ask(kT0, zone, 1, 100, 1000), (Grant{1, 40, 19, 0, 0, 4, 125, 0}));
  EXPECT_EQ(get("tb"), std::to_string(kT0 + 312500) + ":0");
  // A nearly empty bucket (3 left after the request): nothing.
  take(kT0, zone, 11);
  EXPECT_EQ(ask(kT0, zone, 1, 100, 1000), (Grant{1, 40, 3, 0, 0, 0, 0, 0}));
  // A small burst: 8, one unit a quarter of what remains, but the lifetime
  // of 125 ms takes 10 tokens' worth: nothing. A lifetime of 10 ms takes 1.
  EXPECT_EQ(ask(kT0, token_bucket(160, 2000, 8, "small"), 1, 100, 1000), (Grant{1, 8, 7, 0, 0, 0, 0, 0}));
  EXPECT_EQ(ask(kT0, token_bucket(160, 2000, 8, "small2"), 1, 100, 10), (Grant{1, 8, 7, 0, 0, 1, 10, 0}));
  // The request's TAT, now + T = 12.5 ms, is past the lifetime's end: the
  // grant's T from there.
  EXPECT_EQ(get("small2"), std::to_string(kT0 + 25000) + ":0");
  // T in fractions of µs (48 per second: 20833 + 16/48 µs): from the end of
  // the lifetime, 62.5 ms (a 16th of the window; the 40 units asked for
  // 1000 ms are 3 for it), charged from its 62 whole ms, plus 3 * T = 62500 µs.
  EXPECT_EQ(ask(kT0, token_bucket(48, 1000, 40, "odd"), 1, 40, 1000), (Grant{1, 40, 39, 0, 0, 3, 62, 0}));
  EXPECT_EQ(get("odd"), std::to_string(kT0 + 62 * kMs + 62500) + ":0");
  // A zone that needs the exact arithmetic grants nothing.
  EXPECT_EQ(ask(kT0, token_bucket(1000000000, 3600000, 1000000000, "big"), 1, 100, 1000).units, 0u);
}

TEST_F(Leases, RequestsOfAnotherCostAreDecidedAsAMergedEntry) {
  // 4 requests of cost 3 in 40: 28 remain, a quarter is 7 units, granted
  // as whole requests' worth: 6 (a 7th unit could never be spent).
  const Zone zone = with_cost(fixed_window(40, 1000, "fw"), 3);
  EXPECT_EQ(ask(kT0, zone, 4, 100, 10), (Grant{4, 40, 28, 0, 0, 6, 10, kT0 / kSecond}));
  EXPECT_EQ(get("fw"), std::to_string(kT0 / kSecond) + ":18");
  // Fewer than a request's worth: nothing.
  const Zone big = with_cost(sliding_window(40, 2000, "sw"), 8);
  EXPECT_EQ(ask(kT0, big, 1, 100, 10).units, 8u);  // 32 left, a quarter is 8
  EXPECT_EQ(ask(kT0, big, 1, 100, 10).units, 0u);  // 16 left, a quarter is 4 < 8
}

// ============================================================== hand-backs

TEST_F(Leases, AHandBackTakesTheUnitsOffTheCount) {
  const Zone sw = sliding_window(40, 2000, "sw");
  const Zone log = sliding_log(40, 2000, "log");
  const Zone fw = fixed_window(40, 1000, "fw");
  const Zone tb = token_bucket(160, 2000, 40, "tb");
  for (const Zone& zone : {sw, log, fw, tb}) {
    const Grant grant = ask(kT0 + 10 * kMs, zone, 1, 100, 62);  // (no lifetime cut short: 100 units)
    ASSERT_EQ(grant.units, 9u) << zone.key;
    const uint64_t taken = give_back(kT0 + 200 * kMs, zone, 5, 9, grant.mark);
    // token_bucket takes nothing back (see token_bucket.lua)
    EXPECT_EQ(taken, zone.algorithm == Algorithm::token_bucket ? 0u : 5u) << zone.key;
  }
  EXPECT_EQ(plain_check(kT0 + 200 * kMs, sw), Allowed(40, 34, 0));
  EXPECT_EQ(plain_check(kT0 + 200 * kMs, log), Allowed(40, 34, 0));
  EXPECT_EQ(zcard("log"), 6);
  EXPECT_EQ(plain_check(kT0 + 200 * kMs, fw), Allowed(40, 34, 0));
  // A server that gives back more than it holds takes at most the count:
  // sub-window i0 holds 5 (the 200 ms check went to the next one), the
  // fixed window 6, then none.
  EXPECT_EQ(give_back(kT0 + 200 * kMs, sw, 9, 9, kI0), 5u);
  EXPECT_EQ(give_back(kT0 + 200 * kMs, fw, 9, 9, kT0 / kSecond), 6u);
  EXPECT_EQ(give_back(kT0 + 200 * kMs, fw, 9, 9, kT0 / kSecond), 0u);
  EXPECT_EQ(get("fw"), std::to_string(kT0 / kSecond) + ":0");
}

TEST_F(Leases, AHandBackAfterTheUnitsLeftTheWindowTakesNothingAndChangesNothing) {
  const Zone sw = sliding_window(40, 2000, "sw");
  const Zone log = sliding_log(40, 2000, "log");
  const Zone fw = fixed_window(40, 1000, "fw");
  const Grant sw_grant = ask(kT0 + 10 * kMs, sw, 1, 100, 1000);
  const Grant log_grant = ask(kT0 + 10 * kMs, log, 1, 100, 1000);
  const Grant fw_grant = ask(kT0 + 10 * kMs, fw, 1, 100, 1000);
  // Later checks in the next sub-windows and windows.
  EXPECT_TRUE(plain_check(kT0 + 17 * kSpan - 1, sw).allowed);
  EXPECT_TRUE(plain_check(kT0 + 17 * kSpan, sw).allowed);
  EXPECT_TRUE(plain_check(kT0 + 1500 * kMs, fw).allowed);
  const std::string sw_state = get("sw"), fw_state = get("fw");
  // Sub-window i0 left the ring at (i0 + 17) * span.
  EXPECT_EQ(give_back(kT0 + 17 * kSpan, sw, 9, 9, sw_grant.mark), 0u);
  EXPECT_EQ(get("sw"), sw_state);
  // The log's entries left the window: scores at or before now - window.
  EXPECT_EQ(give_back(log_grant.mark + 2000 * kMs, log, 9, 9, log_grant.mark), 0u);
  EXPECT_EQ(zcard("log"), 10);
  // Some of them only: the ones still in the window.
  EXPECT_EQ(give_back(log_grant.mark + 2000 * kMs - 3, log, 9, 9, log_grant.mark), 3u);
  // The fixed window ended.
  EXPECT_EQ(give_back(kT0 + 1500 * kMs, fw, 9, 9, fw_grant.mark), 0u);
  EXPECT_EQ(get("fw"), fw_state);
  // A mark never granted, keys of no state or of another type: nothing.
  EXPECT_EQ(give_back(kT0 + 17 * kSpan, sw, 1, 1, kI0 + 17 + 1), 0u);
  EXPECT_EQ(give_back(kT0, sliding_window(40, 2000, "none"), 1, 1, kI0), 0u);
  EXPECT_EQ(give_back(kT0, sliding_log(40, 2000, "fw"), 1, 1, kT0), 0u);
  EXPECT_EQ(give_back(kT0 + 1500 * kMs, fixed_window(40, 1000, "log"), 1, 1, kT0 / kSecond + 1), 0u);
  EXPECT_EQ(get("fw"), fw_state);
  EXPECT_FALSE(exists("none"));
}

TEST_F(Leases, LaterEntriesOfTheBatchSeeAGrantAndAHandBack) {
  for (const Zone& zone : {sliding_window(40, 2000, "sw"), fixed_window(40, 1000, "fw"), sliding_log(40, 2000, "log")}) {
    const uint64_t now = kT0 + 10 * kMs;
    // (62 ms, shorter than every cut: sliding_window's at (i0 + 17) * span -
    // window, a 16th of the window; so the 100 units asked)
    const bool sw = zone.algorithm == Algorithm::sliding_window, fw = zone.algorithm == Algorithm::fixed_window;
    const uint64_t mark = sw ? kI0 : fw ? kT0 / kSecond : now + 62 * kMs + 8;
    const uint64_t lease_ms = 62;
    const std::vector<std::vector<uint64_t>> answers =
        run(now, {lease(zone, 1, 100, 62), plain(zone), hand_back(zone, 4, 9, mark), plain(zone)});
    ASSERT_EQ(answers.size(), 4u);
    EXPECT_EQ(answers[0], (std::vector<uint64_t>{1, 40, 39, 0, 0, 9, lease_ms, mark})) << zone.key;
    EXPECT_EQ(answers[1], (std::vector<uint64_t>{1, 40, 29, 0})) << zone.key;
    EXPECT_EQ(answers[2], (std::vector<uint64_t>{4})) << zone.key;
    EXPECT_EQ(answers[3], (std::vector<uint64_t>{1, 40, 32, 0})) << zone.key;
  }
}

// ================================================================ arguments

TEST_F(Leases, BadLeaseOrHandBackArgumentsAreAnErrorAndNothingIsRecorded) {
  const std::string now = std::to_string(kT0);
  // A plain request, then the entry: `header`, `numbers`, a fixed_window zone.
  auto call = [&](std::string_view header, const std::vector<std::string>& numbers) {
    std::vector<std::string_view> args = {"EVALSHA", sha_, "4", "other", "client", "other!rule", "client!rule",
                                          now, "2",  //
                                          "1", "2", "5", "1000", "5", "1", header};
    args.insert(args.end(), numbers.begin(), numbers.end());
    for (const char* arg : {"2", "5", "1000", "5", "1"}) {
      args.push_back(arg);
    }
    return command(args);
  };
  const std::vector<std::vector<std::string>> leases = {
      {"0", "1", "10"},          {"1", "0", "10"},          {"1", "1", "0"},
      {"1.5", "1", "10"},        {"1", "-1", "10"},         {"1", "1", "0.5"},
      {"1073741825", "1", "10"}, {"1", "1073741825", "10"}, {"1", "1", "1099511627777"},
  };
  for (const std::vector<std::string>& numbers : leases) {
    Reply reply = call("-1", numbers);
    ASSERT_EQ(reply->type, REDIS_REPLY_ERROR) << numbers[0] << " " << numbers[1] << " " << numbers[2];
    EXPECT_EQ(std::string_view(reply->str, reply->len), "rate_guard: bad lease for request 2");
  }
  const std::vector<std::vector<std::string>> hand_backs = {
      {"0", "1", "10"},  {"2", "1", "10"},  {"1", "1", "-1"},         {"1", "1", "9007199254740992"},
      {"1", "1", "1.5"}, {"1.5", "2", "1"}, {"1", "1073741825", "1"}, {"-1", "1", "1"},
  };
  for (const std::vector<std::string>& numbers : hand_backs) {
    Reply reply = call("-2", numbers);
    ASSERT_EQ(reply->type, REDIS_REPLY_ERROR) << numbers[0] << " " << numbers[1] << " " << numbers[2];
    EXPECT_EQ(std::string_view(reply->str, reply->len), "rate_guard: bad hand-back for request 2");
  }
  // Too few numbers (the zone's then read from the wrong place), a charge's
  // header followed by a lease's numbers (too many), another header below 0.
  EXPECT_EQ(call("-1", {"1", "1"})->type, REDIS_REPLY_ERROR);
  EXPECT_EQ(call("-2", {"1", "1"})->type, REDIS_REPLY_ERROR);
  EXPECT_EQ(call("-3", {"1", "1", "1"})->type, REDIS_REPLY_ERROR);
  EXPECT_EQ(call("-4", {"1", "1", "1"})->type, REDIS_REPLY_ERROR);
  EXPECT_EQ(call("-4", {})->type, REDIS_REPLY_ERROR);
  EXPECT_EQ(integer({"DBSIZE"}), 0);
  // The largest mark is taken (and finds nothing to take back).
  Reply reply = call("-2", {"1", "1", "9007199254740991"});
  ASSERT_EQ(reply->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(reply->elements, 5u);
}

// ================================================================= the bound

// Units admitted at a time: plain requests that passed, units of a grant spent.
struct Spent {
  uint64_t time;
  uint64_t units;
};

// The most units spent in a window of the zone beyond what the algorithm
// allows (> 0: over): sliding_window and sliding_log, in any (s, s + window];
// fixed_window, in any aligned window; token_bucket, in any [a, b], burst +
// (b - a) * limit / window (GCRA's own bound: a unit moves the TAT, never
// earlier than its time, T later, and the last decision of the interval had
// the TAT within burst * T of its time).
int64_t worst_excess(const Zone& zone, std::vector<Spent> all) {
  std::sort(all.begin(), all.end(), [](const Spent& a, const Spent& b) { return a.time < b.time; });
  std::vector<Spent> spent;  // one per time
  for (const Spent& s : all) {
    if (!spent.empty() && spent.back().time == s.time) {
      spent.back().units += s.units;
    } else {
      spent.push_back(s);
    }
  }
  const uint64_t window = zone.window_ms * kMs;
  int64_t worst = INT64_MIN;
  switch (zone.algorithm) {
    case Algorithm::sliding_window:
    case Algorithm::sliding_log: {
      uint64_t sum = 0;
      size_t first = 0;
      for (const Spent& s : spent) {
        sum += s.units;
        while (spent[first].time + window <= s.time) {
          sum -= spent[first++].units;
        }
        worst = std::max(worst, static_cast<int64_t>(sum) - static_cast<int64_t>(zone.limit));
      }
      break;
    }
    case Algorithm::fixed_window: {
      std::map<uint64_t, uint64_t> per_window;
      for (const Spent& s : spent) {
        per_window[s.time / window] += s.units;
      }
      for (const auto& [index, sum] : per_window) {
        worst = std::max(worst, static_cast<int64_t>(sum) - static_cast<int64_t>(zone.limit));
      }
      break;
    }
    case Algorithm::token_bucket: {
      // In units * window: sum * window - (burst * window + (b - a) * limit),
      // then back in whole units, rounded up.
      for (size_t a = 0; a < spent.size(); ++a) {
        uint64_t sum = 0;
        for (size_t b = a; b < spent.size(); ++b) {
          sum += spent[b].units;
          const int64_t over = static_cast<int64_t>(sum * window) -
                               static_cast<int64_t>(zone.burst * window + (spent[b].time - spent[a].time) * zone.limit);
          const int64_t units = over > 0 ? (over + static_cast<int64_t>(window) - 1) / static_cast<int64_t>(window)
                                         : over / static_cast<int64_t>(window);
          worst = std::max(worst, units);
        }
      }
      break;
    }
  }
  return worst;
}

struct ReplayStats {
  std::vector<Spent> spent;
  uint64_t grants = 0, granted = 0, spent_late = 0, given_back = 0, taken_back = 0;
};

class LeaseBound : public Leases, public ::testing::WithParamInterface<Algorithm> {
 protected:
  static Zone zone_of(Algorithm algorithm, const std::string& key) {
    switch (algorithm) {
      case Algorithm::sliding_window: return sliding_window(40, 2000, key);
      case Algorithm::sliding_log: return sliding_log(40, 2000, key);
      case Algorithm::fixed_window: return fixed_window(40, 1000, key);
      case Algorithm::token_bucket: return token_bucket(160, 2000, 40, key);
    }
    return {};
  }

  // Several servers on one key, at pinned times: checks that now flood the
  // zone and now trickle, lease entries, the grants' units spent at the
  // worst moments the lease allows, and what was not spent handed back once
  // the lease ended (now at once, now much later, now never), several of
  // these in one call in any order. Every unit admitted, with its time.
  ReplayStats replay(Algorithm algorithm, uint32_t seed, int steps, const std::string& sha = "") {
    std::mt19937 random(seed);
    auto pick = [&](uint64_t low, uint64_t high) { return std::uniform_int_distribution<uint64_t>(low, high)(random); };
    const Zone zone = zone_of(algorithm, "bound" + std::to_string(seed));
    const uint64_t window = zone.window_ms * kMs;
    const uint64_t span = window / 16;
    struct Held {
      uint64_t end, mark, granted, unspent;
    };
    std::vector<Held> held;
    std::vector<uint64_t> ends;  // of the last few grants
    ReplayStats stats;
    uint64_t now = kT0 + pick(0, window);
    for (int step = 0; step < steps && !HasFailure(); ++step) {
      // Time moves on: not at all, a little, to just before or at a
      // sub-window's or a window's edge, to the end of a lease, or far.
      switch (pick(0, 7)) {
        case 0: break;
        case 1: now += pick(1, 2 * kMs); break;
        case 2: now += pick(0, span); break;
        case 3: now = std::max(now, (now / span + 1) * span - pick(0, 2) * pick(0, kMs)); break;
        case 4: now = std::max(now, (now / window + 1) * window - pick(0, 1) * pick(0, 3 * kMs)); break;
        case 5:
          // when units are spent at a lease's very end
          if (!ends.empty()) {
            now = std::max(now, ends[pick(0, ends.size() - 1)] + pick(0, 1));
          }
          break;
        case 6: now += pick(0, window / 3); break;
        default: now += pick(0, 20 * kMs); break;
      }
      std::vector<Entry> entries;
      std::vector<size_t> owner;  // of each entry, its lease in held[] for a hand-back
      for (size_t h = 0; h < held.size(); ++h) {
        // Once ended: back now, or later, or never (lost).
        if (held[h].end <= now && pick(0, 2) == 0) {
          entries.push_back(hand_back(zone, held[h].unspent, held[h].granted, held[h].mark));
          owner.push_back(h);
        }
      }
      const uint64_t leases = pick(0, 2);
      for (uint64_t i = 0; i < leases; ++i) {
        const uint64_t lease_ms = pick(0, 3) == 0 ? pick(1, 5) : pick(0, 1) ? pick(1, zone.window_ms) : 10 * zone.window_ms;
        entries.push_back(lease(zone, pick(1, 3), pick(1, 30), lease_ms));
      }
      // Checks: none, a few, or a flood that fills the zone.
      switch (pick(0, 3)) {
        case 0: break;
        case 1: entries.push_back(plain(zone)); break;
        case 2: entries.push_back(merged(zone, pick(1, 4))); break;
        default: entries.push_back(merged(zone, pick(10, 60))); break;
      }
      if (entries.empty()) {
        continue;
      }
      std::vector<size_t> order(entries.size());
      for (size_t i = 0; i < order.size(); ++i) {
        order[i] = i;
      }
      std::shuffle(order.begin(), order.end(), random);
      std::vector<Entry> shuffled;
      for (size_t i : order) {
        shuffled.push_back(entries[i]);
      }
      const std::vector<std::vector<uint64_t>> answers = run(now, shuffled, sha);
      if (answers.size() != shuffled.size()) {
        ADD_FAILURE() << "seed " << seed << " step " << step << ": no answer";
        break;
      }
      std::vector<bool> handed(held.size(), false);
      for (size_t e = 0; e < shuffled.size(); ++e) {
        const Entry& entry = shuffled[e];
        const std::vector<uint64_t>& a = answers[e];
        if (entry.header == kCheckHandBackHeader) {
          const size_t h = owner.at(order[e]);
          handed[h] = true;
          stats.given_back += held[h].unspent;
          EXPECT_LE(a.at(0), held[h].unspent);
          stats.taken_back += a[0];
          continue;
        }
        if (entry.header == 1) {
          if (a.at(0) == 1) {
            stats.spent.push_back({now, zone.cost});
          }
          continue;
        }
        if (a.at(0) > 0) {
          stats.spent.push_back({now, a[0] * zone.cost});
        }
        if (entry.header != kCheckLeaseHeader || a.at(5) == 0) {
          continue;
        }
        // A grant: each unit spent at one of the worst moments the lease
        // allows, or not at all.
        const uint64_t g = a[5], end = now + a[6] * kMs;
        EXPECT_EQ(a[0], entry.numbers[0]) << "a grant with requests rejected";
        EXPECT_LE(g, a[2] / kLeaseShare);
        stats.grants++;
        ends.push_back(end);
        if (ends.size() > 4) {
          ends.erase(ends.begin());
        }
        stats.granted += g;
        const uint64_t moments[] = {now,
                                    end,
                                    end,
                                    std::min(end, (now / span + 1) * span - 1),
                                    std::min(end, (now / window + 1) * window - 1),
                                    now + pick(0, end - now)};
        uint64_t unspent = 0;
        const bool hoard = pick(0, 3) == 0;
        for (uint64_t u = 0; u < g; ++u) {
          if (hoard || pick(0, 6) == 0) {
            unspent++;
            continue;
          }
          const uint64_t when = moments[pick(0, 5)];
          stats.spent.push_back({when, 1});
          stats.spent_late += when == end;
        }
        if (unspent > 0) {
          held.push_back({end, a[7], g, unspent});
        }
      }
      // The leases handed back are done with; the others are kept, until
      // long after their end now and then (lost hand-backs).
      handed.resize(held.size(), false);
      std::vector<Held> kept;
      for (size_t h = 0; h < handed.size(); ++h) {
        if (!handed[h] && (held[h].end + 3 * window > now || pick(0, 1))) {
          kept.push_back(held[h]);
        }
      }
      held = kept;
    }
    return stats;
  }
};

TEST_P(LeaseBound, SpendingGrantsAtTheWorstMomentsNeverExceedsTheLimit) {
  const Algorithm algorithm = GetParam();
  ReplayStats all;
  for (uint32_t seed = 1; seed <= 16 && !HasFailure(); ++seed) {
    ReplayStats stats = replay(algorithm, seed, 400);
    const Zone zone = zone_of(algorithm, "");
    const int64_t excess = worst_excess(zone, stats.spent);
    EXPECT_LE(excess, 0) << "seed " << seed;
    EXPECT_GE(excess, -1) << "seed " << seed << ": the zone was never full (the replay would prove little)";
    all.grants += stats.grants;
    all.granted += stats.granted;
    all.spent_late += stats.spent_late;
    all.given_back += stats.given_back;
    all.taken_back += stats.taken_back;
  }
  std::cout << algorithm_name(algorithm) << ": " << all.grants << " grants, " << all.granted << " units granted, "
            << all.spent_late << " spent at the lease's very end, " << all.given_back << " handed back, "
            << all.taken_back << " taken back\n";
  EXPECT_GT(all.grants, 200u);
  EXPECT_GT(all.spent_late, 300u);
  if (algorithm != Algorithm::token_bucket) {
    EXPECT_GT(all.taken_back, 100u);
  }
}

INSTANTIATE_TEST_SUITE_P(CheckScript, LeaseBound,
                         ::testing::Values(Algorithm::sliding_window, Algorithm::sliding_log,
                                           Algorithm::fixed_window, Algorithm::token_bucket),
                         [](const ::testing::TestParamInfo<Algorithm>& param) {
                           return std::string(algorithm_name(param.param));
                         });

// The replay tells: a script that gets a lease wrong, in the way each
// algorithm could, lets more through.
TEST_F(LeaseBound, MutantsThatMisplaceTheGrantExceedTheLimit) {
  struct Mutation {
    Algorithm algorithm;
    std::string from, to, what;
  };
  const std::vector<Mutation> mutations = {
      {Algorithm::sliding_window, "min(lifetime, (index + SLOTS) * span - window - now)", "lifetime",
       "sliding_window's lifetime not capped by its sub-window's"},
      {Algorithm::sliding_log, "max(now + lifetime_ms * 1000, last + 1)", "max(now, last + 1)",
       "sliding_log's units charged at the grant"},
      {Algorithm::fixed_window, "min(lifetime, (index + 1) * window - 1 - now)", "lifetime",
       "fixed_window's lifetime past the window's end"},
      {Algorithm::token_bucket, "local ends = now + lifetime_ms * 1000", "local ends = now",
       "token_bucket's units charged at the grant"},
      {Algorithm::sliding_window, "and mark > max(newest, floor(now / span)) - SLOTS then", "then",
       "sliding_window's hand-back after its sub-window left the ring"},
  };
  for (const Mutation& mutation : mutations) {
    ASSERT_EQ(command({"FLUSHALL"})->type, REDIS_REPLY_STATUS);  // the replays' keys, from kT0 again
    const std::string sha = mutant(mutation.from, mutation.to);
    ASSERT_FALSE(sha.empty());
    int64_t worst = INT64_MIN;
    for (uint32_t seed = 1; seed <= 16 && worst <= 0 && !HasFailure(); ++seed) {
      const ReplayStats stats = replay(mutation.algorithm, seed, 400, sha);
      worst = std::max(worst, worst_excess(zone_of(mutation.algorithm, ""), stats.spent));
    }
    EXPECT_GT(worst, 0) << mutation.what << ": the replay does not tell";
    std::cout << mutation.what << ": " << worst << " over\n";
  }
}

}  // namespace
}  // namespace rate_guard
