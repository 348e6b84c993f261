#include "util/log_throttle.h"

#include <gtest/gtest.h>

namespace rate_guard {
namespace {

TEST(LogThrottle, OneLineASecondAndTheRestCounted) {
  LogThrottle throttle(1000);
  EXPECT_TRUE(throttle.allow(5000));
  EXPECT_FALSE(throttle.allow(5001));
  EXPECT_FALSE(throttle.allow(5999));
  EXPECT_TRUE(throttle.allow(6000));
  EXPECT_EQ(throttle.take_suppressed(), 2u);
  EXPECT_EQ(throttle.take_suppressed(), 0u);
}

TEST(LogThrottle, TheFirstLineIsAllowedAtAnyTime) {
  LogThrottle throttle(1000);
  EXPECT_TRUE(throttle.allow(0));
  EXPECT_FALSE(throttle.allow(999));
}

}  // namespace
}  // namespace rate_guard
