// Counting after the response (count=after, lua/check_script.h): before the
// request, a peek, a zone of cost 0 in a plain request, decided as a request
// of cost 1 and recorded nowhere (the request's other zones are, if every
// zone passed); after the response, a charge (kCheckChargeHeader), its units
// recorded whether or not they fit, so that a client that went over waits
// until its debt has left the window, within each algorithm's bound
// (sliding_window: 4294967295 in a sub-window; sliding_log: `limit` entries a
// charge; token_bucket: a bucket of debt a charge). Time is pinned through
// ARGV[1]. A mutant of the script that miscounts fails these scenarios: they
// can tell.
#include "check_script_fixture.h"

#include <functional>

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

using Integers = std::vector<uint64_t>;

// kT0's window of a minute (fixed_window), and of a 3.75 s sub-window (a
// minute's sliding_window).
constexpr uint64_t kMinuteIndex = kT0 / kMinute;
constexpr uint64_t kSubWindow = kMinute / 16;
static_assert(kT0 % kSubWindow == 0, "kT0 starts a sub-window");

Zone peek(const Zone& zone) { return with_cost(zone, 0); }

class CountAfter : public CheckScriptTest {
 protected:
  // The scenarios the mutants below must fail, of this script or of the one
  // `sha` names; each true when the script does what it must.

  // 2 of 3 taken: a peek passes with the 1 left before it, reset 0, and
  // leaves the key as it was.
  bool peek_records_nothing(const Zone& zone, const std::string& sha = "") {
    const bool taken = answered(kT0, {merged(zone, 2)}, sha).entries[0].at(0) == 2;
    const std::string before = dump(zone.key);
    const Answer answer = answered(kT0 + kMs, {plain(peek(zone))}, sha);
    return taken && answer.entries[0] == Integers{1, 3, 1, 0} && answer.events.empty() && dump(zone.key) == before;
  }

  // 5 a minute: a charge of 2 leaves 3, one of 4 is recorded all the same
  // (0 left), and a request is then rejected.
  bool charge_records_over_the_limit(const Zone& zone, const std::string& sha = "") {
    const Answer first = answered(kT0, {charge(zone, 2)}, sha);
    const Answer second = answered(kT0, {charge(zone, 4)}, sha);
    const Answer after = answered(kT0, {plain(zone)}, sha);
    bool six = false;  // the 6 units in the key
    switch (zone.algorithm) {
      case Algorithm::fixed_window: six = get(zone.key) == std::to_string(kMinuteIndex) + ":6"; break;
      case Algorithm::sliding_log: six = zcard(zone.key) == 6; break;
      case Algorithm::sliding_window: {
        const SlidingWindowState state = unpack_sliding_window(get(zone.key));
        six = state.valid && state.newest == kT0 / kSubWindow && state.counts.back() == 6;
        break;
      }
      case Algorithm::token_bucket:
        // 2 * T then 4 * T from the TAT: 6 * 12 s
        six = get(zone.key) == std::to_string(kT0 + 72 * kSecond) + ":0";
        break;
    }
    return first.entries[0] == Integers{3} && second.entries[0] == Integers{0} && first.events.empty() &&
           second.events.empty() && six && after.entries[0].at(0) == 0 && after.entries[0].at(2) == 0;
  }

  // A charge of 8 at kT0 in 5 a minute; a request 1 s later waits `wait_ms`,
  // rejected until then, passes at it.
  bool wait_covers_the_debt(const Zone& zone, uint64_t wait_ms, const std::string& sha = "") {
    const uint64_t later = kT0 + kSecond;
    const bool charged = answered(kT0, {charge(zone, 8)}, sha).entries[0] == Integers{0};
    const Answer waits = answered(later, {plain(zone)}, sha);
    const Answer before = answered(later + wait_ms * kMs - 1, {plain(zone)}, sha);
    const Answer at = answered(later + wait_ms * kMs, {plain(zone)}, sha);
    return charged && waits.entries[0] == Integers{0, 5, 0, wait_ms} && before.entries[0].at(0) == 0 &&
           at.entries[0].at(0) == 1;
  }

  // 4 charges of 2^30 in sliding_window's sub-window: 4294967295, all an
  // I4 holds (2^32 would wrap to 0), and a request still rejected.
  bool sliding_window_count_stops_at_an_i4(const std::string& sha = "") {
    const Zone zone = sliding_window(1073741824, 60000, "sw");
    const Answer answer = answered(kT0, {charge(zone, 1073741824), charge(zone, 1073741824),
                                         charge(zone, 1073741824), charge(zone, 1073741824)}, sha);
    const SlidingWindowState state = unpack_sliding_window(get("sw"));
    const Answer after = answered(kT0, {plain(zone)}, sha);
    return answer.entries == std::vector<Integers>(4, Integers{0}) && state.valid &&
           state.counts.back() == 4294967295u && after.entries[0] == Integers{0, 1073741824, 0, 63750};
  }

  // A charge of 50 in 5 a minute adds 5 entries, a window's worth.
  bool sliding_log_adds_at_most_a_limit(const std::string& sha = "") {
    const Zone zone = sliding_log(5, 60000, "log");
    const Answer answer = answered(kT0, {charge(zone, 50)}, sha);
    return answer.entries[0] == Integers{0} && zcard("log") == 5;
  }

  // 5 a minute, burst 5 (T = 12 s): a charge of 100 moves the TAT by the 5
  // tokens and a bucket of debt, 10 * T, and a request waits until 4 * T
  // before it.
  bool token_bucket_adds_at_most_a_bucket_of_debt(const std::string& sha = "") {
    const Zone zone = token_bucket(5, 60000, 5, "tb");
    const Answer answer = answered(kT0, {charge(zone, 100)}, sha);
    const std::string tat = get("tb");
    const Answer after = answered(kT0, {plain(zone)}, sha);
    return answer.entries[0] == Integers{0} && tat == std::to_string(kT0 + 120 * kSecond) + ":0" &&
           after.entries[0] == Integers{0, 5, 0, 72000};
  }
};

class CountAfterEveryAlgorithm : public CountAfter, public ::testing::WithParamInterface<Algorithm> {
 protected:
  // A zone of this algorithm (token_bucket: the burst is the limit).
  Zone zone(uint64_t limit, uint64_t window_ms, const std::string& key) const {
    return make_zone(GetParam(), limit, window_ms, key);
  }
};

// ==================================================================== peeks

TEST_P(CountAfterEveryAlgorithm, APeekIsDecidedAsCostOneAndRecordsNothing) {
  const Zone a = zone(3, 60000, "a");
  EXPECT_TRUE(peek_records_nothing(a));
  // The last unit taken, a peek is rejected as a request of cost 1 is
  // (which records nothing either).
  EXPECT_EQ(answered(kT0 + kMs, {plain(a)}).entries[0].at(2), 0u);
  const Answer rejected = answered(kT0 + 2 * kMs, {plain(peek(a))});
  EXPECT_EQ(rejected.entries[0].at(0), 0u);
  EXPECT_EQ(rejected.entries[0], answered(kT0 + 2 * kMs, {plain(a)}).entries[0]);
  // A fresh key: the whole limit before the request.
  EXPECT_EQ(answered(kT0, {plain(peek(zone(3, 60000, "fresh")))}).entries[0], (Integers{1, 3, 3, 0}));
  EXPECT_FALSE(exists("fresh"));
}

TEST_P(CountAfterEveryAlgorithm, APeekCountsInItsRequestsVerdictTheOtherZonesRecordedWhenAllPass) {
  const Zone a = zone(1, 60000, "a");
  const Zone b = fixed_window(5, 60000, "b");
  // The peek passes: b is recorded, a is not.
  EXPECT_EQ(answered(kT0, {request({peek(a), b})}).entries[0], (Integers{1, 1, 1, 0, 1, 5, 4, 0}));
  EXPECT_FALSE(exists("a"));
  EXPECT_EQ(get("b"), std::to_string(kMinuteIndex) + ":1");
  // a full, the peek rejects the request: b, allowed, is not recorded.
  EXPECT_EQ(answered(kT0, {plain(a)}).entries[0].at(0), 1u);
  const Answer answer = answered(kT0, {request({peek(a), b})});
  EXPECT_EQ(answer.entries[0].at(0), 0u);
  EXPECT_EQ(Integers(answer.entries[0].begin() + 4, answer.entries[0].end()), (Integers{1, 5, 3, 0}));
  EXPECT_EQ(get("b"), std::to_string(kMinuteIndex) + ":1");
}

TEST_P(CountAfterEveryAlgorithm, APeekFollowsItsKeysRule) {
  const Zone banned = zone(3, 60000, "banned");
  const Zone free = zone(3, 60000, "free");
  const Zone ruled = zone(3, 60000, "ruled");
  set_rule(banned, "ban=" + std::to_string((kT0 + kSecond) / kMs));
  set_rule(free, "rate=unlimited");
  set_rule(ruled, "rate=10/60000");
  const Answer answer = answered(kT0, {plain(peek(banned)), plain(peek(free)), plain(peek(ruled))});
  EXPECT_EQ(answer.entries[0], (Integers{0, 3, 0, 1000}));
  EXPECT_EQ(answer.entries[1], (Integers{1, 3, 3, 0}));  // the limit left, none of it taken
  EXPECT_EQ(answer.entries[2], (Integers{1, 10, 10, 0}));
  EXPECT_EQ(answer.events, (Integers{1 * 2 + kRuleBanned, 2 * 2 + kRuleOverride, 3 * 2 + kRuleOverride}));
  EXPECT_EQ(integer({"DBSIZE"}), 3);  // the rules alone
}

// ================================================================== charges

TEST_P(CountAfterEveryAlgorithm, AChargeIsRecordedWhetherOrNotItFits) {
  EXPECT_TRUE(charge_records_over_the_limit(zone(5, 60000, "a")));
}

TEST_P(CountAfterEveryAlgorithm, TheWaitAfterAChargeCoversTheDebt) {
  // 8 charged at kT0 in 5 a minute; 1 s later a request waits until:
  // sliding_window: sub-window i0, holding 8, leaves the estimate at 17 *
  // 3.75 s; sliding_log: its 5 entries (a window's worth) began at kT0, the
  // oldest leaves at 60 s; fixed_window: the window ends at 60 s;
  // token_bucket: the TAT is kT0 + 8 * 12 s, a request fits once it is
  // within (5 - 1) * 12 s, at 48 s.
  uint64_t wait_ms = 0;
  switch (GetParam()) {
    case Algorithm::sliding_window: wait_ms = 63750 - 1000; break;
    case Algorithm::sliding_log: wait_ms = 60000 - 1000; break;
    case Algorithm::fixed_window: wait_ms = 60000 - 1000; break;
    case Algorithm::token_bucket: wait_ms = 48000 - 1000; break;
  }
  EXPECT_TRUE(wait_covers_the_debt(zone(5, 60000, "a"), wait_ms));
}

TEST_P(CountAfterEveryAlgorithm, AChargeTakesAnOverrideIgnoresABanAndRecordsNothingUnderUnlimited) {
  const Zone banned = zone(5, 60000, "banned");
  const Zone ruled = zone(5, 60000, "ruled");
  const Zone free = zone(5, 60000, "free");
  set_rule(banned, "ban=" + std::to_string((kT0 + kMinute) / kMs));
  set_rule(ruled, "rate=10/60000");
  set_rule(free, "rate=unlimited");
  // No events for charges.
  const Answer answer = answered(kT0, {charge(banned, 2), charge(ruled, 2), charge(free, 2)});
  EXPECT_EQ(answer.entries, (std::vector<Integers>{{3}, {8}, {5}}));
  EXPECT_TRUE(answer.events.empty());
  EXPECT_TRUE(exists("banned"));
  EXPECT_FALSE(exists("free"));
  // The override's request sees the 2 of 10.
  EXPECT_EQ(answered(kT0, {plain(ruled)}).entries[0], (Integers{1, 10, 7, 0}));
}

TEST_P(CountAfterEveryAlgorithm, LaterEntriesOfTheBatchSeeACharge) {
  const Zone a = zone(5, 60000, "a");
  const Answer answer = answered(kT0, {charge(a, 4), plain(a), plain(a)});
  EXPECT_EQ(answer.entries[0], Integers{1});
  EXPECT_EQ(answer.entries[1].at(0), 1u);
  EXPECT_EQ(answer.entries[1].at(2), 0u);
  EXPECT_EQ(answer.entries[2].at(0), 0u);
}

// ================================================================== bounds

TEST_F(CountAfter, SlidingWindowCountsStopAtWhatASubWindowHolds) { EXPECT_TRUE(sliding_window_count_stops_at_an_i4()); }

TEST_F(CountAfter, SlidingLogChargesAddAtMostALimitOfEntriesEach) {
  EXPECT_TRUE(sliding_log_adds_at_most_a_limit());
  // Each charge its window's worth: 10 after two.
  EXPECT_EQ(answered(kT0, {charge(sliding_log(5, 60000, "log"), 50)}).entries[0], Integers{0});
  EXPECT_EQ(zcard("log"), 10);
}

TEST_F(CountAfter, TokenBucketChargesAddAtMostABucketOfDebtEach) {
  EXPECT_TRUE(token_bucket_adds_at_most_a_bucket_of_debt());
  // No token left: the next charge adds a bucket, 5 * T.
  EXPECT_EQ(answered(kT0, {charge(token_bucket(5, 60000, 5, "tb"), 100)}).entries[0], Integers{0});
  EXPECT_EQ(get("tb"), std::to_string(kT0 + 180 * kSecond) + ":0");
}

TEST_F(CountAfter, FixedWindowCountsEveryUnit) {
  const Zone zone = fixed_window(1073741824, 60000, "fw");
  answered(kT0, {charge(zone, 1073741824), charge(zone, 1073741824), charge(zone, 1073741824)});
  EXPECT_EQ(get("fw"), std::to_string(kMinuteIndex) + ":3221225472");
  EXPECT_EQ(answered(kT0, {plain(zone)}).entries[0], (Integers{0, 1073741824, 0, 60000}));
}

// ================================================================ arguments

TEST_F(CountAfter, ACostOfZeroOutsideAPlainRequestIsAnErrorAndNothingIsRecorded) {
  const Zone first = fixed_window(5, 60000, "first");
  const Zone zero = peek(fixed_window(5, 60000, "zero"));
  for (const Entry& bad : {merged(zero, 2), lease(zero, 1, 4, 10), hand_back(zero, 1, 1, 0), charge(zero, 0)}) {
    EXPECT_EQ(send(kT0, {plain(first), bad}).error, "rate_guard: cost 0 outside a plain request, in request 2")
        << bad.header;
  }
  EXPECT_EQ(integer({"DBSIZE"}), 0);
}

TEST_F(CountAfter, ABadChargeIsAnErrorAndNothingIsRecorded) {
  const Zone first = fixed_window(5, 60000, "first");
  EXPECT_EQ(send(kT0, {plain(first), charge(fixed_window(5, 60000, "x"), 1073741825)}).error,
            "rate_guard: bad arguments for zone 1 of request 2");
  // A charge's header, then a lease's numbers before the zone: too many.
  const std::string now = std::to_string(kT0);
  Reply reply = command({"EVALSHA", sha_, "2", "x", "x!rule", now, "1", "-3", "1", "4", "10", "2", "5", "60000", "5",
                         "1"});
  EXPECT_EQ(reply->type, REDIS_REPLY_ERROR);
  EXPECT_EQ(integer({"DBSIZE"}), 0);
}

// =================================================================== mutants

// Scripts that miscount, in the ways this one could, fail the scenarios
// above (each holding for this script).
TEST_F(CountAfter, MutantsThatMiscountFailTheScenarios) {
  struct Mutation {
    std::string from, to, what;
    std::function<bool(const std::string&)> holds;
  };
  const std::vector<Mutation> mutations = {
      {"remaining, reset_ms, x = remaining + 1, 0, false", "remaining, reset_ms = remaining + 1, 0",
       "a peek recorded",
       [&](const std::string& sha) { return peek_records_nothing(sliding_window(3, 60000, "a"), sha); }},
      {"local admitted = force and n or min(n, floor((limit - count) / cost))",
       "local admitted = min(n, floor((limit - count) / cost))", "a fixed_window charge that must fit",
       [&](const std::string& sha) { return charge_records_over_the_limit(fixed_window(5, 60000, "a"), sha); }},
      {"local admitted = force and n or min(n, floor(tokens / cost))", "local admitted = min(n, floor(tokens / cost))",
       "a token_bucket charge that must fit",
       [&](const std::string& sha) { return wait_covers_the_debt(token_bucket(5, 60000, 5, "a"), 47000, sha); }},
      {"if force and total > tokens + burst then", "if false then", "token_bucket's debt unbounded",
       [&](const std::string& sha) { return token_bucket_adds_at_most_a_bucket_of_debt(sha); }},
      {"if count > MAX_SLOT then", "if false then", "sliding_window's sub-window count past an I4",
       [&](const std::string& sha) { return sliding_window_count_stops_at_an_i4(sha); }},
      {"if zone_algorithm == SLIDING_LOG and zone_cost > zone_limit then", "if false then",
       "sliding_log's charge uncapped", [&](const std::string& sha) { return sliding_log_adds_at_most_a_limit(sha); }},
  };
  for (const Mutation& mutation : mutations) {
    ASSERT_EQ(command({"FLUSHALL"})->type, REDIS_REPLY_STATUS);
    EXPECT_TRUE(mutation.holds("")) << mutation.what << ": this script fails the scenario";
    ASSERT_EQ(command({"FLUSHALL"})->type, REDIS_REPLY_STATUS);
    const std::string sha = mutant(mutation.from, mutation.to);
    ASSERT_FALSE(sha.empty()) << mutation.what;
    EXPECT_FALSE(mutation.holds(sha)) << mutation.what << ": the scenario does not tell";
  }
}

INSTANTIATE_TEST_SUITE_P(CheckScript, CountAfterEveryAlgorithm,
                         ::testing::Values(Algorithm::sliding_window, Algorithm::sliding_log,
                                           Algorithm::fixed_window, Algorithm::token_bucket),
                         [](const ::testing::TestParamInfo<Algorithm>& param) {
                           return std::string(algorithm_name(param.param));
                         });

}  // namespace
}  // namespace rate_guard
