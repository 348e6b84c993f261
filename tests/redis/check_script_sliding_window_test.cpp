// The check script: sliding_window.
#include "check_script_fixture.h"

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

// ============================================================ sliding_window

TEST_F(CheckScriptTest, SlidingWindowAllowsExactlyTheLimit) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, zone), Allowed(3, 2, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, zone), Allowed(3, 1, 0));
  // Nothing left. In the next window the 3 weigh 3 * (1 - elapsed/1 s); one
  // more fits when that reaches 2, at kT0 + 1 s + 333.334 ms.
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Allowed(3, 0, 1134));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(3, 0, 1034));
}

TEST_F(CheckScriptTest, SlidingWindowRejectedRequestConsumesNoQuota) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + 200 * kMs, zone);
  for (uint64_t t = kT0 + 300 * kMs; t <= kT0 + 1300 * kMs; t += 100 * kMs) {
    EXPECT_FALSE(check(t, zone).allowed) << "at +" << (t - kT0);
  }
  // "index:current:previous"
  EXPECT_EQ(get("client"), "1700006400:3:0");
  EXPECT_EQ(check(kT0 + 1300 * kMs, zone), Rejected(3, 0, 34));
  // 3 * 0.6 + 1 <= 3; then 1 more fits at kT0 + 1 s + 666.667 ms.
  EXPECT_EQ(check(kT0 + 1400 * kMs, zone), Allowed(3, 0, 267));
}

TEST_F(CheckScriptTest, SlidingWindowRejectionResetIsWhenTheRequestPasses) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + 200 * kMs, zone);
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(3, 0, 1034));
  EXPECT_EQ(check(kT0 + 1333 * kMs + 333, zone), Rejected(3, 0, 1));
  EXPECT_EQ(check(kT0 + 1333 * kMs + 334, zone).allowed, true);
}

TEST_F(CheckScriptTest, SlidingWindowWeighsThePreviousWindowByItsOverlap) {
  const Zone zone = sliding_window(/*limit=*/10, /*window_ms=*/1000);
  for (int i = 0; i < 10; ++i) {
    check(kT0 + 100 * kMs * static_cast<uint64_t>(i), zone);
  }
  // 250 ms into the next window the previous 10 weigh 7.5: estimate 7.5 + 1.
  EXPECT_EQ(check(kT0 + 1250 * kMs, zone), Allowed(10, 1, 0));
  // 500 ms in: 5 + 1 (the previous request) + 1.
  EXPECT_EQ(check(kT0 + 1500 * kMs, zone), Allowed(10, 3, 0));
}

TEST_F(CheckScriptTest, SlidingWindowRequestOneWindowLaterSeesTheFirstWeighedByItsOverlap) {
  const Zone zone = sliding_window(/*limit=*/2, /*window_ms=*/1000);
  check(kT0 + 500 * kMs, zone);
  check(kT0 + 500 * kMs, zone);
  // Exactly one window later the 2 weigh 1 (half the window overlaps): 1 + 1 <= 2.
  EXPECT_EQ(check(kT0 + 1500 * kMs, zone), Allowed(2, 0, 500));
}

TEST_F(CheckScriptTest, SlidingWindowRequestOneMicrosecondBeforeAWindowLaterIsRejected) {
  const Zone zone = sliding_window(/*limit=*/2, /*window_ms=*/1000);
  check(kT0 + 500 * kMs, zone);
  check(kT0 + 500 * kMs, zone);
  // 2 * 0.500001 + 1 > 2, until 1 µs later.
  EXPECT_EQ(check(kT0 + 1500 * kMs - 1, zone), Rejected(2, 0, 1));
}

TEST_F(CheckScriptTest, SlidingWindowCountMovesToPreviousAtTheWindowBoundary) {
  const Zone zone = sliding_window(/*limit=*/1, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0 + kSecond - 1, zone), Allowed(1, 0, 1001));
  // At the boundary the request weighs 1 as the previous window's count...
  EXPECT_EQ(check(kT0 + kSecond, zone), Rejected(1, 0, 1000));
  // ...and fades to nothing by the end of that window.
  EXPECT_EQ(check(kT0 + 2 * kSecond - 1, zone), Rejected(1, 0, 1));
  EXPECT_EQ(check(kT0 + 2 * kSecond, zone), Allowed(1, 0, 2000));
}

TEST_F(CheckScriptTest, SlidingWindowLimitOneWaitsForThePreviousCountToFade) {
  const Zone zone = sliding_window(/*limit=*/1, /*window_ms=*/1000);
  // After a request, any weight of it in the estimate leaves no room for
  // another: the next passes when the following window has ended.
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(1, 0, 1700));
  EXPECT_EQ(check(kT0 + 1300 * kMs, zone), Rejected(1, 0, 700));
  EXPECT_EQ(check(kT0 + 2 * kSecond, zone), Allowed(1, 0, 2000));
}

TEST_F(CheckScriptTest, SlidingWindowCostCountsTheRequestCostTimes) {
  const Zone zone = sliding_window(/*limit=*/5, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Allowed(5, 3, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, with_cost(zone, 2)), Allowed(5, 1, 0));
  // 4 + 2 > 5 here; in the next window 4 * (1 - elapsed/1 s) + 2 <= 5 from 250 ms.
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 2)), Rejected(5, 1, 1050));
  EXPECT_EQ(check(kT0 + 1249 * kMs, with_cost(zone, 2)), Rejected(5, 1, 1));
  // 3 + 2 <= 5; then 4 * (1 - elapsed) + 2 + 1 <= 5 from 500 ms.
  EXPECT_EQ(check(kT0 + 1250 * kMs, with_cost(zone, 2)), Allowed(5, 0, 250));
  EXPECT_EQ(get("client"), "1700006401:2:4");
}

TEST_F(CheckScriptTest, SlidingWindowCostAboveTheLimitIsRejectedForAWindow) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 4)), Rejected(3, 3, 1000));
  EXPECT_FALSE(exists("client"));
  EXPECT_EQ(check(kT0, with_cost(zone, 3)), Allowed(3, 0, 1334));
}

TEST_F(CheckScriptTest, SlidingWindowWindowOfADay) {
  const Zone zone = sliding_window(/*limit=*/2, /*window_ms=*/86400000);
  EXPECT_EQ(check(kT0 + kHour, zone), Allowed(2, 1, 0));
  // The 2 weigh 1 at noon of the next day: 34 h from 02:00.
  EXPECT_EQ(check(kT0 + 2 * kHour, zone), Allowed(2, 0, 34 * 3600000));
  EXPECT_EQ(check(kT0 + kDay + 12 * kHour - 1, zone), Rejected(2, 0, 1));
  EXPECT_EQ(check(kT0 + kDay + 12 * kHour, zone), Allowed(2, 0, 12 * 3600000));
}

TEST_F(CheckScriptTest, SlidingWindowWindowOfAMillisecond) {
  const Zone zone = sliding_window(/*limit=*/2, /*window_ms=*/1);
  EXPECT_EQ(check_in_one_transaction(zone, {kT0, kT0 + 500, kT0 + 999, kT0 + 1499, kT0 + 1500}),
            (std::vector<Verdict>{Allowed(2, 1, 0), Allowed(2, 0, 1), Rejected(2, 0, 1),
                                  Rejected(2, 0, 1), Allowed(2, 0, 1)}));
}

TEST_F(CheckScriptTest, SlidingWindowKeyLivesUntilTheNextWindowEnds) {
  const Zone zone = sliding_window(/*limit=*/10, /*window_ms=*/60000);
  check(kT0 + 15 * kSecond, zone);
  EXPECT_GT(pttl("client"), 104000);
  EXPECT_LE(pttl("client"), 105000);
}

// As for fixed_window: the window's first request sets the TTL, the next
// ones of the window keep it.
TEST_F(CheckScriptTest, SlidingWindowLaterRequestsOfTheWindowKeepTheKeysTtl) {
  const Zone zone = sliding_window(/*limit=*/10, /*window_ms=*/60000);
  check(kT0 + 15 * kSecond, zone);
  check(kT0 + 30 * kSecond, zone);
  EXPECT_GT(pttl("client"), 104000);
  EXPECT_LE(pttl("client"), 105000);
  check(kT0 + 75 * kSecond, zone);
  EXPECT_GT(pttl("client"), 104000);
  EXPECT_LE(pttl("client"), 105000);
  EXPECT_EQ(get("client"), "28333441:1:2");
}

// A client sending one request every 2.22 s (4.5 times the rate of 10 per
// 60 s) for ten windows, starting half way into an aligned window (phase
// φ = 0.5), through sliding_window and, for reference, sliding_log.
//
// Bound. A window [t, t + 60 s) overlaps two aligned windows n-1 and n, and
// holds current_n(e) plus the requests of window n-1 after e, where e is t's
// elapsed time. The script admits a request in window n only if
// previous * (W - e)/W + current + 1 <= limit. Window 0 has no previous count:
// it admits its 10 at once, from φ onward. Just before e = φ in window 1,
// all 10 are still inside, and current < 10 - 10 + 10 φ, so the total stays
// below limit * (1 + φ) = 15: at most 14. Later, the previous window's
// admissions were spread by that same rule and the estimate is right to
// within one request of rounding: at most limit + 1 = 11. Simulated over 6000
// random steady streams: never above max(limit + 1, ceil(limit * (1 + φ)) - 1).
TEST_F(CheckScriptTest, SlidingWindowOvershootOnASteadyStreamStaysWithinItsBound) {
  const uint64_t window = kMinute;
  const Zone approximate = sliding_window(/*limit=*/10, /*window_ms=*/60000, "sw");
  const Zone exact = sliding_log(/*limit=*/10, /*window_ms=*/60000, "log");
  const uint64_t start = kT0 + 30 * kSecond;
  std::vector<uint64_t> passed_sw;
  std::vector<uint64_t> passed_log;
  for (uint64_t t = start; t < start + 10 * window; t += 2220 * kMs) {
    if (check(t, approximate).allowed) {
      passed_sw.push_back(t);
    }
    if (check(t, exact).allowed) {
      passed_log.push_back(t);
    }
  }
  const size_t worst_sw = most_in_any_window(passed_sw, window);
  const size_t steady_sw = most_in_any_window(passed_sw, window, kT0 + 2 * window);
  RecordProperty("sliding_window_worst", static_cast<int>(worst_sw));
  RecordProperty("sliding_window_steady", static_cast<int>(steady_sw));
  RecordProperty("sliding_window_admitted", static_cast<int>(passed_sw.size()));
  RecordProperty("sliding_log_admitted", static_cast<int>(passed_log.size()));

  EXPECT_EQ(most_in_any_window(passed_log, window), 10u);
  EXPECT_GT(worst_sw, 10u);  // the approximation does overshoot here
  EXPECT_LE(worst_sw, 14u);
  EXPECT_LE(steady_sw, 11u);
  // Over the ten windows it admits no more than the exact log (96 against 100).
  EXPECT_LE(passed_sw.size(), passed_log.size());
  EXPECT_GE(passed_sw.size(), passed_log.size() - 10);
}

}  // namespace
}  // namespace rate_guard
