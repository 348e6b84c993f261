// The blocked-key cache changes no decision: the same request sequence is
// decided with the cache in front of Redis and by Redis alone, at the same
// (pinned) Redis time, and every decision must be the same.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <random>
#include <string>
#include <vector>

#include "limiter/block_cache.h"
#include "limiter/decision.h"
#include "lua/check_script.h"
#include "redis/redis_checker.h"
#include "redis/redis_key.h"
#include "redis_server.h"

namespace rate_guard {
namespace {

class BlockCacheDecisions : public ::testing::TestWithParam<Algorithm> {
 protected:
  static testing::RedisServer& server() {
    static testing::RedisServer instance;
    return instance;
  }

  void SetUp() override {
    redis_ = server().connect();
    ASSERT_NE(redis_, nullptr);
    auto* reply = static_cast<redisReply*>(
        redisCommand(redis_, "SCRIPT LOAD %b", kCheckScript.data(), kCheckScript.size()));
    ASSERT_EQ(reply->type, REDIS_REPLY_STRING);
    sha_.assign(reply->str, reply->len);
    freeReplyObject(reply);
  }
  void TearDown() override { redisFree(redis_); }

  // One check of `zone` for `key`, with Redis's clock pinned at `now_us`.
  Decision check(const ZoneConfig& zone, const std::string& key, uint64_t cost, uint64_t now_us) {
    std::string redis_key, rule_key;
    append_redis_key(redis_key, "decisions:", zone, key);
    append_redis_key(rule_key, "decisions:", zone.name, "!rule", key);
    // A batch of one request (R = 1) of one zone (n = 1), its state key and
    // its rule key (none there): see lua/check_script.h.
    const std::vector<std::string> args = {
        "EVALSHA", sha_, "2", redis_key, rule_key, std::to_string(now_us), "1", "1",
        std::to_string(static_cast<int>(zone.algorithm)), std::to_string(zone.limit),
        std::to_string(zone.window_ms), std::to_string(zone.burst), std::to_string(cost)};
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(redis_, static_cast<int>(argv.size()), argv.data(), lens.data()));
    ZoneVerdict verdict;
    EXPECT_TRUE(decode_check_reply(reply, 0, 1, &verdict)) << (reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    freeReplyObject(reply);
    return combine_verdicts(&verdict, 1);
  }

  redisContext* redis_ = nullptr;
  std::string sha_;
};

TEST_P(BlockCacheDecisions, SameSequenceSameDecisionsWithAndWithoutTheCache) {
  ZoneConfig with_cache;
  with_cache.algorithm = GetParam();
  with_cache.limit = 5;
  with_cache.window_ms = 1000;
  with_cache.burst = 5;
  with_cache.name = "cached_" + std::string(algorithm_name(GetParam()));
  ZoneConfig alone = with_cache;
  alone.name = "alone_" + std::string(algorithm_name(GetParam()));

  std::vector<uint64_t> memory(64 * 1024 / 8);
  BlockCache cache(memory.data(), 64 * 1024, true);
  const uint64_t zone_id = block_cache_zone_id(with_cache, {with_cache.limit, with_cache.window_ms, with_cache.burst});

  std::mt19937_64 random(20261123);
  uint64_t now_us = 1'800'000'000'000'000ULL;  // an arbitrary Redis time
  size_t hits = 0, rejections = 0, mismatches = 0;
  for (int step = 0; step < 3000; step++) {
    now_us += random() % 60000;  // 0 to 60 ms between requests
    const std::string key = "client-" + std::to_string(random() % 3);
    const uint64_t cost = 1 + random() % 3;
    // The local clock (ms) equals Redis's; the check left 0 to 3 ms before
    // Redis ran it (the round trip's first half).
    const uint64_t local_ms = now_us / 1000;
    const uint64_t sent_ms = local_ms - random() % 4;

    bool cached_allowed;
    CachedRejection hit;
    if (cache.lookup(zone_id, key, cost, local_ms, &hit)) {
      cached_allowed = false;
      hits++;
    } else {
      const Decision d = check(with_cache, key, cost, now_us);
      cached_allowed = d.allowed;
      if (!d.allowed) {
        cache.record(zone_id, key, cost, sent_ms, d.limit, d.remaining, d.reset_ms);
      }
    }
    const Decision reference = check(alone, key, cost, now_us);
    rejections += !reference.allowed;
    if (cached_allowed != reference.allowed) {
      mismatches++;
      ADD_FAILURE() << "step " << step << " key " << key << " cost " << cost << ": with cache "
                    << cached_allowed << ", Redis alone " << reference.allowed;
      if (mismatches > 5) break;
    }
  }
  EXPECT_EQ(mismatches, 0u);
  // The sequence must exercise the cache, or the test proves nothing.
  EXPECT_GT(rejections, 300u);
  EXPECT_GT(hits, 100u);
}

INSTANTIATE_TEST_SUITE_P(AllAlgorithms, BlockCacheDecisions,
                         ::testing::Values(Algorithm::sliding_log, Algorithm::fixed_window,
                                           Algorithm::sliding_window, Algorithm::token_bucket),
                         [](const ::testing::TestParamInfo<Algorithm>& param) {
                           return std::string(algorithm_name(param.param));
                         });

}  // namespace
}  // namespace rate_guard
