// The check script: sliding_log.
#include "check_script_fixture.h"

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

// =============================================================== sliding_log

TEST_F(CheckScriptTest, SlidingLogAllowsExactlyTheLimit) {
  const Zone zone = sliding_log(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, zone), Allowed(3, 2, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, zone), Allowed(3, 1, 0));
  // Nothing left: the next request passes when the first leaves, at kT0 + 1 s.
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Allowed(3, 0, 800));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(3, 0, 700));
}

TEST_F(CheckScriptTest, SlidingLogRejectedRequestConsumesNoQuota) {
  const Zone zone = sliding_log(/*limit=*/3, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + 200 * kMs, zone);
  // A client hammering every 50 ms is let through as soon as the first request
  // leaves the window, not kept out by its own rejected requests.
  for (uint64_t t = kT0 + 250 * kMs; t < kT0 + kSecond; t += 50 * kMs) {
    EXPECT_EQ(check(t, zone), Rejected(3, 0, (kT0 + kSecond - t) / kMs)) << "at +" << (t - kT0);
  }
  EXPECT_EQ(zcard("client"), 3);
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(3, 0, 100));
}

TEST_F(CheckScriptTest, SlidingLogRequestOneWindowLaterIsJudgedWithoutTheFirst) {
  const Zone zone = sliding_log(/*limit=*/2, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 400 * kMs, zone);
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(2, 0, 400));
}

TEST_F(CheckScriptTest, SlidingLogRequestOneMicrosecondBeforeAWindowLaterStillSeesTheFirst) {
  const Zone zone = sliding_log(/*limit=*/2, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 400 * kMs, zone);
  EXPECT_EQ(check(kT0 + kSecond - 1, zone), Rejected(2, 0, 1));
}

TEST_F(CheckScriptTest, SlidingLogLimitOneAllowsOneRequestPerWindow) {
  const Zone zone = sliding_log(/*limit=*/1, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(1, 0, 1000));
  EXPECT_EQ(check(kT0 + 301 * kMs, zone), Rejected(1, 0, 999));
  EXPECT_EQ(check(kT0 + 1300 * kMs, zone), Allowed(1, 0, 1000));
}

TEST_F(CheckScriptTest, SlidingLogCostCountsTheRequestCostTimes) {
  const Zone zone = sliding_log(/*limit=*/5, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Allowed(5, 3, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, with_cost(zone, 2)), Allowed(5, 1, 0));
  // 4 + 2 > 5: it fits once the oldest entry leaves, at kT0 + 1 s.
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 2)), Rejected(5, 1, 800));
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Allowed(5, 0, 800));
  EXPECT_EQ(zcard("client"), 5);
}

TEST_F(CheckScriptTest, SlidingLogRecordsACostOfThreeAsThreeConsecutiveMicroseconds) {
  const Zone zone = sliding_log(/*limit=*/5, /*window_ms=*/1000);
  check(kT0, with_cost(zone, 3));
  // The next request's entries follow the last one even at the same time.
  check(kT0, with_cost(zone, 2));
  EXPECT_EQ(zrange("client"),
            (std::vector<std::string>{std::to_string(kT0), std::to_string(kT0 + 1),
                                      std::to_string(kT0 + 2), std::to_string(kT0 + 3),
                                      std::to_string(kT0 + 4)}));
  // So they leave the window one microsecond apart: one is gone at kT0 + 1 s.
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(5, 0, 1));
  EXPECT_EQ(check(kT0 + kSecond, zone), Rejected(5, 0, 1));
}

TEST_F(CheckScriptTest, SlidingLogCostAboveTheLimitIsRejectedForAWindow) {
  const Zone zone = sliding_log(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 4)), Rejected(3, 3, 1000));
  EXPECT_FALSE(exists("client"));
  EXPECT_EQ(check(kT0, with_cost(zone, 3)), Allowed(3, 0, 1000));
}

TEST_F(CheckScriptTest, SlidingLogWindowOfADay) {
  const Zone zone = sliding_log(/*limit=*/2, /*window_ms=*/86400000);
  EXPECT_EQ(check(kT0, zone), Allowed(2, 1, 0));
  EXPECT_EQ(check(kT0 + kHour, zone), Allowed(2, 0, 23 * 3600000));
  EXPECT_EQ(check(kT0 + 23 * kHour, zone), Rejected(2, 0, 3600000));
  EXPECT_EQ(check(kT0 + kDay - 1, zone), Rejected(2, 0, 1));
  EXPECT_EQ(check(kT0 + kDay, zone), Allowed(2, 0, 3600000));
}

TEST_F(CheckScriptTest, SlidingLogWindowOfAMillisecond) {
  const Zone zone = sliding_log(/*limit=*/2, /*window_ms=*/1);
  EXPECT_EQ(check_in_one_transaction(
                zone, {kT0, kT0 + 500, kT0 + 999, kT0 + 1000, kT0 + 1499, kT0 + 1500}),
            (std::vector<Verdict>{Allowed(2, 1, 0), Allowed(2, 0, 1), Rejected(2, 0, 1),
                                  Allowed(2, 0, 1), Rejected(2, 0, 1), Allowed(2, 0, 1)}));
}

TEST_F(CheckScriptTest, SlidingLogKeyLivesOneWindowFromItsNewestEntry) {
  const Zone zone = sliding_log(/*limit=*/10, /*window_ms=*/60000);
  check(kT0, zone);
  EXPECT_GT(pttl("client"), 59000);
  EXPECT_LE(pttl("client"), 60000);
  check(kT0 + 30 * kSecond, zone);
  EXPECT_GT(pttl("client"), 59000);
  EXPECT_LE(pttl("client"), 60000);
}

TEST_F(CheckScriptTest, SlidingLogDropsEntriesThatLeftTheWindow) {
  const Zone zone = sliding_log(/*limit=*/10, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + kSecond, zone);
  EXPECT_EQ(zrange("client"), (std::vector<std::string>{std::to_string(kT0 + 100 * kMs),
                                                        std::to_string(kT0 + kSecond)}));
}

TEST_F(CheckScriptTest, SlidingLogCostOfAThousandIsRecordedInFull) {
  const Zone zone = sliding_log(/*limit=*/1000, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 1000)), Allowed(1000, 0, 1000));
  const std::vector<std::string> times = zrange("client");
  ASSERT_EQ(times.size(), 1000u);
  EXPECT_EQ(times.front(), std::to_string(kT0));
  EXPECT_EQ(times.back(), std::to_string(kT0 + 999));
  // The first entry has left: one more fits, the next a microsecond later.
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(1000, 0, 1));
}

TEST_F(CheckScriptTest, SlidingLogRecordsRedisTimeWhenArgvTimeIsZero) {
  const uint64_t before = redis_time();
  EXPECT_TRUE(check(0, sliding_log(/*limit=*/1, /*window_ms=*/60000)).allowed);
  const uint64_t after = redis_time();
  std::vector<std::string> times = zrange("client");
  ASSERT_EQ(times.size(), 1u);
  EXPECT_GE(std::stoull(times[0]), before);
  EXPECT_LE(std::stoull(times[0]), after);
}

}  // namespace
}  // namespace rate_guard
