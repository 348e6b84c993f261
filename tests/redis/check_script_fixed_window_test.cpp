// The check script: fixed_window.
#include "check_script_fixture.h"

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

// ============================================================== fixed_window

TEST_F(CheckScriptTest, FixedWindowAllowsExactlyTheLimit) {
  const Zone zone = fixed_window(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, zone), Allowed(3, 2, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, zone), Allowed(3, 1, 0));
  // Nothing left: the next request passes when the window ends, at kT0 + 1 s.
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Allowed(3, 0, 800));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(3, 0, 700));
}

TEST_F(CheckScriptTest, FixedWindowRejectedRequestConsumesNoQuota) {
  const Zone zone = fixed_window(/*limit=*/3, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + 200 * kMs, zone);
  for (uint64_t t = kT0 + 250 * kMs; t < kT0 + kSecond; t += 50 * kMs) {
    EXPECT_EQ(check(t, zone), Rejected(3, 0, (kT0 + kSecond - t) / kMs)) << "at +" << (t - kT0);
  }
  // "index:count", the index of the window [kT0, kT0 + 1 s) being kT0 / 1 s.
  EXPECT_EQ(get("client"), "1700006400:3");
  // The next window starts with the whole limit.
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(3, 2, 0));
}

TEST_F(CheckScriptTest, FixedWindowRequestOneWindowLaterIsInTheNextWindow) {
  const Zone zone = fixed_window(/*limit=*/1, /*window_ms=*/1000);
  check(kT0, zone);
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(1, 0, 1000));
}

TEST_F(CheckScriptTest, FixedWindowRequestOneMicrosecondBeforeTheWindowEndsIsInIt) {
  const Zone zone = fixed_window(/*limit=*/1, /*window_ms=*/1000);
  check(kT0, zone);
  EXPECT_EQ(check(kT0 + kSecond - 1, zone), Rejected(1, 0, 1));
}

TEST_F(CheckScriptTest, FixedWindowCountsAlignedWindowsSoTwoLimitsCanMeetAtTheEdge) {
  const Zone zone = fixed_window(/*limit=*/2, /*window_ms=*/1000);
  // In one transaction: the key's TTL is the 1 ms left in its window.
  EXPECT_EQ(check_in_one_transaction(
                zone, {kT0 + 999 * kMs, kT0 + 999 * kMs, kT0 + kSecond, kT0 + kSecond}),
            (std::vector<Verdict>{Allowed(2, 1, 0), Allowed(2, 0, 1), Allowed(2, 1, 0),
                                  Allowed(2, 0, 1000)}));
}

TEST_F(CheckScriptTest, FixedWindowLimitOneAllowsOneRequestPerWindow) {
  const Zone zone = fixed_window(/*limit=*/1, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(1, 0, 700));
  EXPECT_EQ(check(kT0 + 301 * kMs, zone), Rejected(1, 0, 699));
  EXPECT_EQ(check(kT0 + 1300 * kMs, zone), Allowed(1, 0, 700));
}

TEST_F(CheckScriptTest, FixedWindowCostCountsTheRequestCostTimes) {
  const Zone zone = fixed_window(/*limit=*/5, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Allowed(5, 3, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, with_cost(zone, 2)), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 2)), Rejected(5, 1, 800));
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Allowed(5, 0, 800));
  EXPECT_EQ(get("client"), "1700006400:5");
}

TEST_F(CheckScriptTest, FixedWindowCostAboveTheLimitIsRejectedForAWindow) {
  const Zone zone = fixed_window(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 4)), Rejected(3, 3, 1000));
  EXPECT_FALSE(exists("client"));
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 3)), Allowed(3, 0, 800));
}

TEST_F(CheckScriptTest, FixedWindowWindowOfADay) {
  const Zone zone = fixed_window(/*limit=*/2, /*window_ms=*/86400000);
  EXPECT_EQ(check(kT0 + kHour, zone), Allowed(2, 1, 0));
  EXPECT_EQ(check(kT0 + 2 * kHour, zone), Allowed(2, 0, 22 * 3600000));
  EXPECT_EQ(check(kT0 + 23 * kHour, zone), Rejected(2, 0, 3600000));
  EXPECT_EQ(check(kT0 + kDay, zone), Allowed(2, 1, 0));
}

TEST_F(CheckScriptTest, FixedWindowWindowOfAMillisecond) {
  const Zone zone = fixed_window(/*limit=*/2, /*window_ms=*/1);
  EXPECT_EQ(check_in_one_transaction(zone, {kT0, kT0 + 500, kT0 + 999, kT0 + 1000, kT0 + 1999}),
            (std::vector<Verdict>{Allowed(2, 1, 0), Allowed(2, 0, 1), Rejected(2, 0, 1),
                                  Allowed(2, 1, 0), Allowed(2, 0, 1)}));
}

TEST_F(CheckScriptTest, FixedWindowKeyLivesUntilItsWindowEnds) {
  const Zone zone = fixed_window(/*limit=*/10, /*window_ms=*/60000);
  check(kT0 + 15 * kSecond, zone);
  EXPECT_GT(pttl("client"), 44000);
  EXPECT_LE(pttl("client"), 45000);
}

// The window's first request sets the TTL, to the window's end; the next ones
// keep it (SET ... KEEPTTL): on Redis's clock, the same end. Here the pinned
// clock moves on 15 s and Redis's does not: the TTL stays.
TEST_F(CheckScriptTest, FixedWindowLaterRequestsOfTheWindowKeepTheKeysTtl) {
  const Zone zone = fixed_window(/*limit=*/10, /*window_ms=*/60000);
  check(kT0 + 15 * kSecond, zone);
  check(kT0 + 30 * kSecond, zone);
  EXPECT_GT(pttl("client"), 44000);
  EXPECT_LE(pttl("client"), 45000);
  // The next window's first request sets it again.
  check(kT0 + 75 * kSecond, zone);
  EXPECT_GT(pttl("client"), 44000);
  EXPECT_LE(pttl("client"), 45000);
  EXPECT_EQ(get("client"), "28333441:1");
}

}  // namespace
}  // namespace rate_guard
