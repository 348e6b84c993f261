// The blocked-key cache over a plain memory block (nginx gives it shared memory).
#include "limiter/block_cache.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace rate_guard {
namespace {

RequestLimits limits(const ZoneConfig& zone) {
  return {zone.limit, zone.window_ms, zone.burst};
}

class BlockCacheTest : public ::testing::Test {
 protected:
  BlockCacheTest() : memory_(64 * 1024 / 8), cache_(memory_.data(), 64 * 1024, true) {
    zone_.name = "per_ip";
    zone_.limit = 10;
    zone_.window_ms = 60000;
    zone_.burst = 10;
    zone_id_ = block_cache_zone_id(zone_, limits(zone_));
  }
  std::vector<uint64_t> memory_;
  BlockCache cache_;
  ZoneConfig zone_;
  uint64_t zone_id_ = 0;
};

TEST_F(BlockCacheTest, RejectionIsServedUntilOneMillisecondBeforeRedisTime) {
  // Sent at 1000, Redis said: passes again in 900 ms (at 1900 at the earliest).
  cache_.record(zone_id_, "10.0.0.1", 1, 1000, 10, 0, 900);
  CachedRejection hit;
  ASSERT_TRUE(cache_.lookup(zone_id_, "10.0.0.1", 1, 1200, &hit));
  EXPECT_EQ(hit.limit, 10u);
  EXPECT_EQ(hit.remaining, 0u);
  EXPECT_EQ(hit.reset_ms, 700u);
  EXPECT_TRUE(cache_.lookup(zone_id_, "10.0.0.1", 1, 1898, &hit));
  EXPECT_EQ(hit.reset_ms, 2u);
  EXPECT_FALSE(cache_.lookup(zone_id_, "10.0.0.1", 1, 1899, &hit));
}

// An operator's rule (an unban, a higher limit) may let the key through
// earlier than Redis said: a rejection is answered here for a second at
// most, with the reset Redis named; then the key goes to Redis again.
TEST_F(BlockCacheTest, ALongRejectionIsHeldForASecondAtMost) {
  cache_.record(zone_id_, "10.0.0.1", 1, 1000, 10, 0, 5000);
  CachedRejection hit;
  ASSERT_TRUE(cache_.lookup(zone_id_, "10.0.0.1", 1, 1999, &hit));
  EXPECT_EQ(hit.reset_ms, 4001u);  // Retry-After still tells the whole wait
  EXPECT_FALSE(cache_.lookup(zone_id_, "10.0.0.1", 1, 2000, &hit));
  static_assert(kMaxRejectionHoldMs == 1000, "the README promises a second");
}

TEST_F(BlockCacheTest, OtherKeysCostsAndZonesAreNotServed) {
  cache_.record(zone_id_, "10.0.0.1", 2, 0, 10, 1, 5000);
  CachedRejection hit;
  EXPECT_FALSE(cache_.lookup(zone_id_, "10.0.0.2", 2, 10, &hit));
  EXPECT_FALSE(cache_.lookup(zone_id_, "10.0.0.1", 1, 10, &hit));  // a cheaper request may pass
  EXPECT_FALSE(cache_.lookup(zone_id_ + 1, "10.0.0.1", 2, 10, &hit));
  EXPECT_TRUE(cache_.lookup(zone_id_, "10.0.0.1", 2, 10, &hit));
  EXPECT_EQ(hit.remaining, 1u);
}

TEST_F(BlockCacheTest, AZoneWhoseLimitChangedIsAnotherZone) {
  ZoneConfig changed = zone_;
  changed.limit = 20;
  EXPECT_NE(block_cache_zone_id(changed, limits(changed)), zone_id_);
  changed = zone_;
  changed.algorithm = Algorithm::sliding_log;
  EXPECT_NE(block_cache_zone_id(changed, limits(changed)), zone_id_);
  EXPECT_EQ(block_cache_zone_id(zone_, limits(zone_)), zone_id_);
}

TEST_F(BlockCacheTest, LongKeysAreComparedByDigest) {
  std::string a(100, 'x'), b(100, 'x');
  b.back() = 'y';
  cache_.record(zone_id_, a, 1, 0, 10, 0, 5000);
  CachedRejection hit;
  EXPECT_TRUE(cache_.lookup(zone_id_, a, 1, 10, &hit));
  EXPECT_FALSE(cache_.lookup(zone_id_, b, 1, 10, &hit));
}

TEST_F(BlockCacheTest, BinaryKeysWork) {
  const std::string key("\x00\r\n\xff", 4);
  cache_.record(zone_id_, key, 1, 0, 10, 0, 5000);
  CachedRejection hit;
  EXPECT_TRUE(cache_.lookup(zone_id_, key, 1, 10, &hit));
  EXPECT_FALSE(cache_.lookup(zone_id_, std::string("\x00\r\n", 3), 1, 10, &hit));
}

TEST_F(BlockCacheTest, ARepeatedRejectionUpdatesItsEntry) {
  cache_.record(zone_id_, "k", 1, 0, 10, 0, 5000);
  cache_.record(zone_id_, "k", 1, 4000, 10, 0, 3000);
  CachedRejection hit;
  ASSERT_TRUE(cache_.lookup(zone_id_, "k", 1, 4600, &hit));
  EXPECT_EQ(hit.reset_ms, 2400u);
  EXPECT_FALSE(cache_.lookup(zone_id_, "k", 1, 5000, &hit));  // held a second from 4000
}

TEST_F(BlockCacheTest, TheTableIsBoundedAndKeepsWorking) {
  const size_t capacity = cache_.capacity();
  ASSERT_GT(capacity, 100u);
  EXPECT_LE(capacity * BlockCache::entry_size(), 64u * 1024);
  // Ten times as many blocked keys as entries: the newest ones are served.
  for (size_t i = 0; i < capacity * 10; i++) {
    cache_.record(zone_id_, "key-" + std::to_string(i), 1, i, 10, 0, 60000);
  }
  CachedRejection hit;
  size_t served = 0;
  for (size_t i = capacity * 9; i < capacity * 10; i++) {
    served += cache_.lookup(zone_id_, "key-" + std::to_string(i), 1, capacity * 10, &hit);
  }
  EXPECT_GT(served, capacity / 2);
  EXPECT_LE(served, capacity);
}

TEST(BlockCache, TooLittleMemoryHoldsNothing) {
  std::vector<uint64_t> memory(4);
  BlockCache cache(memory.data(), memory.size() * 8, true);
  EXPECT_EQ(cache.capacity(), 0u);
  cache.record(1, "k", 1, 0, 10, 0, 5000);
  CachedRejection hit;
  EXPECT_FALSE(cache.lookup(1, "k", 1, 10, &hit));
}

TEST(BlockCache, ReattachingKeepsEntriesUnlessTheSizeChanged) {
  std::vector<uint64_t> memory(8192);
  {
    BlockCache cache(memory.data(), 8192 * 8, true);
    cache.record(1, "k", 1, 0, 10, 0, 5000);
  }
  CachedRejection hit;
  EXPECT_TRUE(BlockCache(memory.data(), 8192 * 8, false).lookup(1, "k", 1, 10, &hit));
  EXPECT_FALSE(BlockCache(memory.data(), 4096 * 8, false).lookup(1, "k", 1, 10, &hit));
}

TEST(BlockCache, ImmediateExpiryIsNotRecorded) {
  std::vector<uint64_t> memory(8192);
  BlockCache cache(memory.data(), 8192 * 8, true);
  cache.record(1, "k", 1, 100, 10, 0, 1);
  CachedRejection hit;
  EXPECT_FALSE(cache.lookup(1, "k", 1, 100, &hit));
}

}  // namespace
}  // namespace rate_guard
