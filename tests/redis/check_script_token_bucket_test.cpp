// The check script: token_bucket.
#include "check_script_fixture.h"

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

// ============================================================== token_bucket

TEST_F(CheckScriptTest, TokenBucketAllowsABurstOfExactlyBurst) {
  // 10 per second: a token every 100 ms, up to 5 saved.
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  EXPECT_EQ(check(kT0, zone), Allowed(5, 4, 0));
  EXPECT_EQ(check(kT0, zone), Allowed(5, 3, 0));
  EXPECT_EQ(check(kT0, zone), Allowed(5, 2, 0));
  EXPECT_EQ(check(kT0, zone), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0, zone), Allowed(5, 0, 100));
  EXPECT_EQ(check(kT0, zone), Rejected(5, 0, 100));
}

TEST_F(CheckScriptTest, TokenBucketRejectedRequestConsumesNoQuota) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  for (int i = 0; i < 5; ++i) {
    check(kT0, zone);
  }
  // Hammering every 10 ms, the client still gets exactly a token per 100 ms.
  int passed = 0;
  for (uint64_t t = kT0 + 10 * kMs; t <= kT0 + kSecond; t += 10 * kMs) {
    Verdict verdict = check(t, zone);
    passed += verdict.allowed;
    EXPECT_EQ(verdict.allowed, (t - kT0) % (100 * kMs) == 0) << "at +" << (t - kT0);
  }
  EXPECT_EQ(passed, 10);
}

TEST_F(CheckScriptTest, TokenBucketRefillsOneTokenPerEmissionInterval) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  for (int i = 0; i < 5; ++i) {
    check(kT0, zone);
  }
  // 300 ms later, 3 tokens are back.
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(5, 2, 0));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(5, 0, 100));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(5, 0, 100));
}

TEST_F(CheckScriptTest, TokenBucketCountsOnlyWholeTokens) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  for (int i = 0; i < 5; ++i) {
    check(kT0, zone);
  }
  // 2.99 tokens are back: 2 whole ones.
  EXPECT_EQ(check(kT0 + 299 * kMs, zone), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0 + 299 * kMs, zone), Allowed(5, 0, 1));
}

TEST_F(CheckScriptTest, TokenBucketNeverHoldsMoreThanBurst) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  check(kT0, zone);
  // An hour idle earns 5 tokens, not 36000.
  for (uint64_t remaining : {4, 3, 2, 1}) {
    EXPECT_EQ(check(kT0 + kHour, zone), Allowed(5, remaining, 0));
  }
  EXPECT_EQ(check(kT0 + kHour, zone), Allowed(5, 0, 100));
  EXPECT_EQ(check(kT0 + kHour, zone), Rejected(5, 0, 100));
}

TEST_F(CheckScriptTest, TokenBucketRequestOneWindowLaterPassesWithLimitOne) {
  const Zone zone = token_bucket(/*limit=*/1, /*window_ms=*/1000, /*burst=*/1);
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(1, 0, 1000));
  EXPECT_EQ(check(kT0 + 1300 * kMs, zone), Allowed(1, 0, 1000));
}

TEST_F(CheckScriptTest, TokenBucketRequestOneMicrosecondBeforeAWindowLaterIsRejected) {
  const Zone zone = token_bucket(/*limit=*/1, /*window_ms=*/1000, /*burst=*/1);
  check(kT0 + 300 * kMs, zone);
  EXPECT_EQ(check(kT0 + 1300 * kMs - 1, zone), Rejected(1, 0, 1));
}

TEST_F(CheckScriptTest, TokenBucketCostTakesThatManyTokens) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Allowed(5, 3, 0));
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Rejected(5, 1, 100));
  EXPECT_EQ(check(kT0, zone), Allowed(5, 0, 100));
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 2)), Allowed(5, 0, 100));
}

TEST_F(CheckScriptTest, TokenBucketCostAboveTheBurstIsRejectedForAWindow) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  EXPECT_EQ(check(kT0, with_cost(zone, 6)), Rejected(5, 5, 1000));
  EXPECT_FALSE(exists("client"));
  EXPECT_EQ(check(kT0, with_cost(zone, 5)), Allowed(5, 0, 100));
}

TEST_F(CheckScriptTest, TokenBucketCostAboveTheRatePassesWithinTheBurst) {
  // 2 per second, up to 5 saved: a cost of 4 is more than a window's worth.
  const Zone zone = token_bucket(/*limit=*/2, /*window_ms=*/1000, /*burst=*/5);
  EXPECT_EQ(check(kT0, with_cost(zone, 4)), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0, with_cost(zone, 4)), Rejected(5, 1, 1500));
}

TEST_F(CheckScriptTest, TokenBucketWindowOfADay) {
  // 24 a day: a token an hour, up to 2 saved.
  const Zone zone = token_bucket(/*limit=*/24, /*window_ms=*/86400000, /*burst=*/2);
  EXPECT_EQ(check(kT0, zone), Allowed(2, 1, 0));
  EXPECT_EQ(check(kT0, zone), Allowed(2, 0, 3600000));
  EXPECT_EQ(check(kT0 + 30 * kMinute, zone), Rejected(2, 0, 1800000));
  EXPECT_EQ(check(kT0 + kHour - 1, zone), Rejected(2, 0, 1));
  EXPECT_EQ(check(kT0 + kHour, zone), Allowed(2, 0, 3600000));
}

TEST_F(CheckScriptTest, TokenBucketWindowOfAMillisecond) {
  const Zone zone = token_bucket(/*limit=*/1, /*window_ms=*/1, /*burst=*/1);
  EXPECT_EQ(check_in_one_transaction(zone, {kT0, kT0 + 999, kT0 + 1000, kT0 + 1500, kT0 + 2000}),
            (std::vector<Verdict>{Allowed(1, 0, 1), Rejected(1, 0, 1), Allowed(1, 0, 1),
                                  Rejected(1, 0, 1), Allowed(1, 0, 1)}));
}

TEST_F(CheckScriptTest, TokenBucketKeepsAFractionalEmissionIntervalExact) {
  // 3 per second: a token every 333333.33 µs. Three requests make exactly 1 s.
  const Zone zone = token_bucket(/*limit=*/3, /*window_ms=*/1000, /*burst=*/3);
  check(kT0, zone);
  // "tat:rem": the TAT is kT0 + 333333 µs and 1/3 µs.
  EXPECT_EQ(get("client"), std::to_string(kT0 + 333333) + ":1");
  check(kT0, zone);
  check(kT0, zone);
  EXPECT_EQ(get("client"), std::to_string(kT0 + kSecond) + ":0");
  EXPECT_EQ(check(kT0 + 333333, zone), Rejected(3, 0, 1));
  EXPECT_EQ(check(kT0 + 333334, zone), Allowed(3, 0, 334));
}

TEST_F(CheckScriptTest, TokenBucketMeasuresSubMicrosecondEmissionIntervals) {
  // 2 million per second: a token every 0.5 µs, up to a million saved.
  const Zone zone = token_bucket(/*limit=*/2000000, /*window_ms=*/1000, /*burst=*/1000000);
  EXPECT_EQ(check(kT0, with_cost(zone, 1000000)), Allowed(1000000, 0, 1));
  EXPECT_EQ(check(kT0, zone), Rejected(1000000, 0, 1));
  // 1 µs later exactly 2 tokens are back.
  EXPECT_EQ(check(kT0 + 1, with_cost(zone, 3)), Rejected(1000000, 2, 1));
  EXPECT_EQ(check(kT0 + 1, with_cost(zone, 2)), Allowed(1000000, 0, 1));
}

TEST_F(CheckScriptTest, TokenBucketKeyLivesUntilTheBucketIsFull) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/60000, /*burst=*/10);
  for (int i = 0; i < 10; ++i) {
    check(kT0, zone);
  }
  EXPECT_GT(pttl("client"), 59000);
  EXPECT_LE(pttl("client"), 60000);
}

}  // namespace
}  // namespace rate_guard
