// Specification of the Redis key layout and Redis Cluster's key slot.
#include "redis/redis_key.h"

#include <gtest/gtest.h>

#include <string>

namespace rate_guard {
namespace {

// ------------------------------------------------------------ append_redis_key

TEST(RedisKey, PrefixZoneAndClientKey) {
  std::string key;
  append_redis_key(key, "rate_guard:", "api", "", "203.0.113.7");
  EXPECT_EQ(key, "rate_guard:api:203.0.113.7");
}

TEST(RedisKey, AppendsToWhatIsAlreadyThere) {
  std::string key = "KEEP";
  append_redis_key(key, "rl:", "login", "", "k");
  EXPECT_EQ(key, "KEEPrl:login:k");
}

TEST(RedisKey, KeyOf64BytesIsKeptRaw) {
  std::string client_key(64, 'k');
  std::string key;
  append_redis_key(key, "p:", "z", "", client_key);
  EXPECT_EQ(key, "p:z:" + client_key);
}

TEST(RedisKey, KeyOf65BytesIsReplacedByItsDigest) {
  std::string key;
  append_redis_key(key, "p:", "z", "", std::string(65, 'x'));
  EXPECT_EQ(key, "p:z:sha256:9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9");
}

TEST(RedisKey, HugeKeyTakes71Bytes) {
  std::string key;
  append_redis_key(key, "", "z", "", std::string(1 << 20, 'h'));
  EXPECT_EQ(key.size(), 2u + 71u);
  EXPECT_EQ(key.compare(0, 9, "z:sha256:"), 0);
}

TEST(RedisKey, BinaryBytesAreKeptAsTheyAre) {
  std::string client_key("\x00\xff\r\n \"*3", 8);
  std::string key;
  append_redis_key(key, "p:", "z", "", client_key);
  EXPECT_EQ(key, std::string("p:z:\x00\xff\r\n \"*3", 12));
}

TEST(RedisKey, LongKeysDifferingInTheLastByteGetDifferentKeys) {
  std::string first(100, 'a');
  std::string second = first;
  second.back() = 'b';
  std::string first_key;
  std::string second_key;
  append_redis_key(first_key, "p:", "z", "", first);
  append_redis_key(second_key, "p:", "z", "", second);
  EXPECT_NE(first_key, second_key);
}

TEST(RedisKey, DigestOfBinaryKeyIsLowercaseHexOfSha256) {
  std::string client_key;
  for (int i = 0; i < 256; ++i) {
    client_key += static_cast<char>(i);
  }
  std::string key;
  append_redis_key(key, "", "z", "", client_key);
  EXPECT_EQ(key, "z:sha256:40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880");
}

// A zone's algorithm marks its keys when an earlier release kept another
// state layout under the plain name: sliding_window's 16 counters are at
// "<zone>@sw2", never where the previous release's two counters are.
TEST(RedisKey, SlidingWindowKeysCarryTheirLayoutMark) {
  ZoneConfig zone;
  zone.name = "api";
  std::string key;
  append_redis_key(key, "rate_guard:", zone, "203.0.113.7");
  EXPECT_EQ(zone.algorithm, Algorithm::sliding_window);  // the default
  EXPECT_EQ(key, "rate_guard:api@sw2:203.0.113.7");
  key.clear();
  append_redis_key(key, "rate_guard:", zone, "203.0.113.7", KeyLayout::hash_tagged);
  EXPECT_EQ(key, "rate_guard:api@sw2:{203.0.113.7}");
  for (Algorithm unchanged : {Algorithm::sliding_log, Algorithm::fixed_window, Algorithm::token_bucket}) {
    zone.algorithm = unchanged;
    key.clear();
    append_redis_key(key, "rate_guard:", zone, "203.0.113.7");
    EXPECT_EQ(key, "rate_guard:api:203.0.113.7") << algorithm_name(unchanged);
  }
}

// No zone name holds '@' (is_valid_zone_name) or ':', so no key of a marked layout is
// a key of a plain one: the zone part ends at the first ':' after the prefix.
TEST(RedisKey, NoMarkedKeyIsAPlainOne) {
  EXPECT_TRUE(is_valid_zone_name("api"));
  EXPECT_FALSE(is_valid_zone_name("api@sw2"));
  EXPECT_FALSE(is_valid_zone_name("api:x"));
}

// ------------------------------------------------- Redis Cluster: hash tags, slots

TEST(RedisKey, HashTaggedLayoutPutsTheClientKeyInBraces) {
  std::string key;
  append_redis_key(key, "rate_guard:", "api", "", "203.0.113.7", KeyLayout::hash_tagged);
  EXPECT_EQ(key, "rate_guard:api:{203.0.113.7}");
}

TEST(RedisKey, HashTaggedDigestStaysInsideTheBraces) {
  std::string key;
  append_redis_key(key, "p:", "z", "", std::string(65, 'x'), KeyLayout::hash_tagged);
  EXPECT_EQ(key, "p:z:{sha256:9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9}");
}

// A '}' would end the tag early, a leading one would empty it (the whole key,
// zone included, would then decide the slot): such a key goes as its digest.
TEST(RedisKey, HashTaggedKeyWithAClosingBraceGoesAsItsDigest) {
  std::string key;
  append_redis_key(key, "p:", "z", "", "}x", KeyLayout::hash_tagged);
  EXPECT_EQ(key.compare(0, 12, "p:z:{sha256:"), 0) << key;
  EXPECT_EQ(key.back(), '}');
  std::string plain;
  append_redis_key(plain, "p:", "z", "", "}x");
  EXPECT_EQ(plain, "p:z:}x");  // without Cluster nothing changes
  std::string other_zone;
  append_redis_key(other_zone, "p:", "zone_two", "", "}x", KeyLayout::hash_tagged);
  EXPECT_EQ(cluster_key_slot(key), cluster_key_slot(other_zone));
}

TEST(RedisKey, OneClientsZonesShareASlotWhateverTheZone) {
  for (std::string_view client :
       std::initializer_list<std::string_view>{"203.0.113.7", "k", "a}b", "}", "{x}", std::string_view("\0\xff", 2)}) {
    std::string first;
    std::string second;
    append_redis_key(first, "rate_guard:", "per_second", "@sw2", client, KeyLayout::hash_tagged);
    append_redis_key(second, "rate_guard:", "per_day_zone", "", client, KeyLayout::hash_tagged);
    EXPECT_EQ(cluster_key_slot(first), cluster_key_slot(second)) << client;
  }
}

TEST(ClusterKeySlot, Crc16IsXmodem) {
  EXPECT_EQ(crc16_xmodem("123456789"), 0x31C3);  // the standard check value
  EXPECT_EQ(crc16_xmodem(""), 0);
}

// Values CLUSTER KEYSLOT answers (Redis documentation, cluster spec).
TEST(ClusterKeySlot, MatchesRedis) {
  EXPECT_EQ(cluster_key_slot("somekey"), 11058);
  EXPECT_EQ(cluster_key_slot("foo{hash_tag}"), 2515);
  EXPECT_EQ(cluster_key_slot("foo{hash_tag}"), cluster_key_slot("hash_tag"));
}

TEST(ClusterKeySlot, HashTagRules) {
  // Only the first '{' and the first '}' after it count.
  EXPECT_EQ(cluster_key_slot("{user1000}.following"), cluster_key_slot("{user1000}.followers"));
  EXPECT_EQ(cluster_key_slot("foo{{bar}}zap"), cluster_key_slot("{bar"));
  EXPECT_EQ(cluster_key_slot("foo{bar}{zap}"), cluster_key_slot("bar"));
  // An empty tag or no closing brace: the whole key is hashed.
  EXPECT_EQ(cluster_key_slot("foo{}{bar}"), crc16_xmodem("foo{}{bar}") % kClusterSlots);
  EXPECT_EQ(cluster_key_slot("foo{bar"), crc16_xmodem("foo{bar") % kClusterSlots);
}

TEST(ClusterKeySlot, AlwaysBelow16384) {
  std::string key;
  for (int i = 0; i < 100000; ++i) {
    key = std::to_string(i * 7919);
    EXPECT_LT(cluster_key_slot(key), kClusterSlots);
  }
}

}  // namespace
}  // namespace rate_guard
