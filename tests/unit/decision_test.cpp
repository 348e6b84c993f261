// Specification of how the zones' answers combine into one decision, and of
// the seconds reported in X-RateLimit-Reset and Retry-After.
#include "limiter/decision.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace rate_guard {
namespace {

ZoneVerdict allowed(uint64_t limit, uint64_t remaining, uint64_t reset_ms) {
  return ZoneVerdict{true, limit, remaining, reset_ms};
}

ZoneVerdict rejected(uint64_t limit, uint64_t remaining, uint64_t reset_ms) {
  return ZoneVerdict{false, limit, remaining, reset_ms};
}

// ----------------------------------------------------------- combine_verdicts

TEST(CombineVerdicts, NoZonesAllowsWithZeros) {
  Decision decision = combine_verdicts(nullptr, 0);
  EXPECT_TRUE(decision.allowed);
  EXPECT_EQ(decision.zone_index, 0u);
  EXPECT_EQ(decision.limit, 0u);
  EXPECT_EQ(decision.remaining, 0u);
  EXPECT_EQ(decision.reset_ms, 0u);
}

TEST(CombineVerdicts, CountZeroIgnoresTheArray) {
  ZoneVerdict verdicts[] = {rejected(5, 0, 3000)};
  Decision decision = combine_verdicts(verdicts, 0);
  EXPECT_TRUE(decision.allowed);
  EXPECT_EQ(decision.limit, 0u);
  EXPECT_EQ(decision.reset_ms, 0u);
}

TEST(CombineVerdicts, SingleAllowedZoneIsReported) {
  ZoneVerdict verdicts[] = {allowed(100, 42, 0)};
  Decision decision = combine_verdicts(verdicts, 1);
  EXPECT_TRUE(decision.allowed);
  EXPECT_EQ(decision.zone_index, 0u);
  EXPECT_EQ(decision.limit, 100u);
  EXPECT_EQ(decision.remaining, 42u);
  EXPECT_EQ(decision.reset_ms, 0u);
}

TEST(CombineVerdicts, SingleRejectedZoneRejects) {
  ZoneVerdict verdicts[] = {rejected(10, 0, 2500)};
  Decision decision = combine_verdicts(verdicts, 1);
  EXPECT_FALSE(decision.allowed);
  EXPECT_EQ(decision.zone_index, 0u);
  EXPECT_EQ(decision.limit, 10u);
  EXPECT_EQ(decision.remaining, 0u);
  EXPECT_EQ(decision.reset_ms, 2500u);
}

TEST(CombineVerdicts, AllowedRequestReportsTheZoneWithLeastRemaining) {
  ZoneVerdict verdicts[] = {allowed(100, 50, 0), allowed(10, 3, 0), allowed(1000, 7, 0)};
  Decision decision = combine_verdicts(verdicts, 3);
  EXPECT_TRUE(decision.allowed);
  EXPECT_EQ(decision.zone_index, 1u);
  EXPECT_EQ(decision.limit, 10u);
  EXPECT_EQ(decision.remaining, 3u);
}

TEST(CombineVerdicts, AllowedTieOnRemainingGoesToTheLongestReset) {
  ZoneVerdict verdicts[] = {allowed(10, 0, 500), allowed(20, 0, 60000), allowed(30, 0, 2000)};
  Decision decision = combine_verdicts(verdicts, 3);
  EXPECT_TRUE(decision.allowed);
  EXPECT_EQ(decision.zone_index, 1u);
  EXPECT_EQ(decision.limit, 20u);
  EXPECT_EQ(decision.remaining, 0u);
  EXPECT_EQ(decision.reset_ms, 60000u);
}

TEST(CombineVerdicts, AllowedFullTieGoesToTheLowestIndex) {
  ZoneVerdict verdicts[] = {allowed(10, 5, 0), allowed(20, 2, 0), allowed(30, 2, 0)};
  Decision decision = combine_verdicts(verdicts, 3);
  EXPECT_EQ(decision.zone_index, 1u);
  EXPECT_EQ(decision.limit, 20u);
}

TEST(CombineVerdicts, LeastRemainingWinsOverLongerReset) {
  ZoneVerdict verdicts[] = {allowed(10, 0, 1000), allowed(5, 1, 0), allowed(5, 2, 0)};
  Decision decision = combine_verdicts(verdicts, 3);
  EXPECT_EQ(decision.zone_index, 0u);
  EXPECT_EQ(decision.remaining, 0u);
  EXPECT_EQ(decision.reset_ms, 1000u);
}

TEST(CombineVerdicts, OneRejectingZoneRejectsTheRequest) {
  ZoneVerdict verdicts[] = {allowed(100, 99, 0), rejected(5, 0, 3000), allowed(50, 49, 0)};
  Decision decision = combine_verdicts(verdicts, 3);
  EXPECT_FALSE(decision.allowed);
  EXPECT_EQ(decision.zone_index, 1u);
  EXPECT_EQ(decision.limit, 5u);
  EXPECT_EQ(decision.remaining, 0u);
  EXPECT_EQ(decision.reset_ms, 3000u);
}

TEST(CombineVerdicts, RejectionIsDecidedByTheRejectingZoneWithTheLongestReset) {
  ZoneVerdict verdicts[] = {rejected(10, 0, 1000), rejected(1000, 0, 3600000),
                            rejected(60, 0, 30000)};
  Decision decision = combine_verdicts(verdicts, 3);
  EXPECT_FALSE(decision.allowed);
  EXPECT_EQ(decision.zone_index, 1u);
  EXPECT_EQ(decision.limit, 1000u);
  EXPECT_EQ(decision.reset_ms, 3600000u);
}

TEST(CombineVerdicts, AllowedZoneNeverDecidesARejection) {
  // The allowed zone has less remaining and a longer reset, yet the
  // rejection is reported by the zone that rejected.
  ZoneVerdict verdicts[] = {allowed(10, 0, 90000), rejected(100, 0, 500)};
  Decision decision = combine_verdicts(verdicts, 2);
  EXPECT_FALSE(decision.allowed);
  EXPECT_EQ(decision.zone_index, 1u);
  EXPECT_EQ(decision.limit, 100u);
  EXPECT_EQ(decision.reset_ms, 500u);
}

TEST(CombineVerdicts, RejectedTieOnResetGoesToTheLowestIndex) {
  ZoneVerdict verdicts[] = {allowed(1, 1, 0), rejected(10, 0, 2000), rejected(20, 0, 2000)};
  Decision decision = combine_verdicts(verdicts, 3);
  EXPECT_EQ(decision.zone_index, 1u);
  EXPECT_EQ(decision.limit, 10u);
}

TEST(CombineVerdicts, RejectionReportsTheZonesOwnRemaining) {
  // cost=5 against 2 remaining: rejected, and 2 are still there for cheaper requests.
  ZoneVerdict verdicts[] = {rejected(10, 2, 4000)};
  Decision decision = combine_verdicts(verdicts, 1);
  EXPECT_FALSE(decision.allowed);
  EXPECT_EQ(decision.remaining, 2u);
  EXPECT_EQ(decision.reset_ms, 4000u);
}

// -------------------------------------------------------------- reset_seconds

TEST(ResetSeconds, ZeroIsZero) { EXPECT_EQ(reset_seconds(0), 0u); }

TEST(ResetSeconds, AnyPartOfASecondRoundsUp) {
  EXPECT_EQ(reset_seconds(1), 1u);
  EXPECT_EQ(reset_seconds(999), 1u);
  EXPECT_EQ(reset_seconds(1001), 2u);
}

TEST(ResetSeconds, WholeSecondsStayExact) {
  EXPECT_EQ(reset_seconds(1000), 1u);
  EXPECT_EQ(reset_seconds(60000), 60u);
}

TEST(ResetSeconds, LargestValueDoesNotOverflow) {
  EXPECT_EQ(reset_seconds(UINT64_MAX), UINT64_MAX / 1000 + 1);
}

// -------------------------------------------------------- retry_after_seconds

TEST(RetryAfterSeconds, IsAtLeastOneEvenForZero) { EXPECT_EQ(retry_after_seconds(0), 1u); }

TEST(RetryAfterSeconds, AnyPartOfASecondRoundsUp) {
  EXPECT_EQ(retry_after_seconds(1), 1u);
  EXPECT_EQ(retry_after_seconds(1500), 2u);
}

TEST(RetryAfterSeconds, WholeSecondsStayExact) { EXPECT_EQ(retry_after_seconds(30000), 30u); }

}  // namespace
}  // namespace rate_guard
