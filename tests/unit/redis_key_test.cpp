// Specification of the Redis key layout, the key digest (SHA-256) and the
// escaping of client keys for the error log.
#include "redis/redis_key.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>

namespace rate_guard {
namespace {

std::string hex(const std::array<uint8_t, 32>& digest) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t byte : digest) {
    out += kDigits[byte >> 4];
    out += kDigits[byte & 0x0f];
  }
  return out;
}

// ---------------------------------------------------------------------- sha256

struct Vector {
  std::string message;
  std::string digest;
};
std::ostream& operator<<(std::ostream& os, const Vector& vector) {
  return os << vector.message.size() << " bytes -> " << vector.digest;
}

class Sha256 : public testing::TestWithParam<Vector> {};

TEST_P(Sha256, MatchesTheKnownDigest) {
  EXPECT_EQ(hex(sha256(GetParam().message)), GetParam().digest);
}

// FIPS 180-4 / NIST CAVP examples.
INSTANTIATE_TEST_SUITE_P(
    StandardVectors, Sha256,
    testing::Values(
        Vector{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        Vector{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        Vector{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        Vector{"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqkl"
               "mnopqrlmnopqrsmnopqrstnopqrstu",
               "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"}));

// Lengths around the padding boundaries: 55 bytes is the longest message whose
// padding fits in its last block, 56 needs a second one; 64 fills a block.
INSTANTIATE_TEST_SUITE_P(
    PaddingBoundaries, Sha256,
    testing::Values(Vector{std::string(55, 'a'),
                           "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
                    Vector{std::string(56, 'a'),
                           "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
                    Vector{std::string(63, 'a'),
                           "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
                    Vector{std::string(64, 'a'),
                           "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
                    Vector{std::string(65, 'a'),
                           "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
                    Vector{std::string(119, 'a'),
                           "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
                    Vector{std::string(120, 'a'),
                           "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"}));

TEST(Sha256Digest, OneMillionLetterA) {
  EXPECT_EQ(hex(sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Digest, EveryByteValueIncludingNul) {
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) {
    all_bytes += static_cast<char>(i);
  }
  EXPECT_EQ(hex(sha256(all_bytes)),
            "40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880");
}

// ------------------------------------------------------------ append_redis_key

TEST(RedisKey, PrefixZoneAndClientKey) {
  std::string key;
  append_redis_key(key, "rate_guard:", "api", "203.0.113.7");
  EXPECT_EQ(key, "rate_guard:api:203.0.113.7");
}

TEST(RedisKey, AppendsToWhatIsAlreadyThere) {
  std::string key = "KEEP";
  append_redis_key(key, "rl:", "login", "k");
  EXPECT_EQ(key, "KEEPrl:login:k");
}

TEST(RedisKey, KeyOf64BytesIsKeptRaw) {
  std::string client_key(64, 'k');
  std::string key;
  append_redis_key(key, "p:", "z", client_key);
  EXPECT_EQ(key, "p:z:" + client_key);
}

TEST(RedisKey, KeyOf65BytesIsReplacedByItsDigest) {
  std::string key;
  append_redis_key(key, "p:", "z", std::string(65, 'x'));
  EXPECT_EQ(key, "p:z:sha256:9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9");
}

TEST(RedisKey, HugeKeyTakes71Bytes) {
  std::string key;
  append_redis_key(key, "", "z", std::string(1 << 20, 'h'));
  EXPECT_EQ(key.size(), 2u + 71u);
  EXPECT_EQ(key.compare(0, 9, "z:sha256:"), 0);
}

TEST(RedisKey, BinaryBytesAreKeptAsTheyAre) {
  std::string client_key("\x00\xff\r\n \"*3", 8);
  std::string key;
  append_redis_key(key, "p:", "z", client_key);
  EXPECT_EQ(key, std::string("p:z:\x00\xff\r\n \"*3", 12));
}

TEST(RedisKey, LongKeysDifferingInTheLastByteGetDifferentKeys) {
  std::string first(100, 'a');
  std::string second = first;
  second.back() = 'b';
  std::string first_key;
  std::string second_key;
  append_redis_key(first_key, "p:", "z", first);
  append_redis_key(second_key, "p:", "z", second);
  EXPECT_NE(first_key, second_key);
}

TEST(RedisKey, DigestOfBinaryKeyIsLowercaseHexOfSha256) {
  std::string client_key;
  for (int i = 0; i < 256; ++i) {
    client_key += static_cast<char>(i);
  }
  std::string key;
  append_redis_key(key, "", "z", client_key);
  EXPECT_EQ(key, "z:sha256:40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880");
}

// ------------------------------------------------- Redis Cluster: hash tags, slots

TEST(RedisKey, HashTaggedLayoutPutsTheClientKeyInBraces) {
  std::string key;
  append_redis_key(key, "rate_guard:", "api", "203.0.113.7", KeyLayout::hash_tagged);
  EXPECT_EQ(key, "rate_guard:api:{203.0.113.7}");
}

TEST(RedisKey, HashTaggedDigestStaysInsideTheBraces) {
  std::string key;
  append_redis_key(key, "p:", "z", std::string(65, 'x'), KeyLayout::hash_tagged);
  EXPECT_EQ(key, "p:z:{sha256:9537c5fdf120482f7d58d25e9ed583f52c02b4e304ea814db1633ad565aed7e9}");
}

// A '}' would end the tag early, a leading one would empty it (the whole key,
// zone included, would then decide the slot): such a key goes as its digest.
TEST(RedisKey, HashTaggedKeyWithAClosingBraceGoesAsItsDigest) {
  std::string key;
  append_redis_key(key, "p:", "z", "}x", KeyLayout::hash_tagged);
  EXPECT_EQ(key.compare(0, 12, "p:z:{sha256:"), 0) << key;
  EXPECT_EQ(key.back(), '}');
  std::string plain;
  append_redis_key(plain, "p:", "z", "}x");
  EXPECT_EQ(plain, "p:z:}x");  // without Cluster nothing changes
  std::string other_zone;
  append_redis_key(other_zone, "p:", "zone_two", "}x", KeyLayout::hash_tagged);
  EXPECT_EQ(cluster_key_slot(key), cluster_key_slot(other_zone));
}

TEST(RedisKey, OneClientsZonesShareASlotWhateverTheZone) {
  for (std::string_view client :
       std::initializer_list<std::string_view>{"203.0.113.7", "k", "a}b", "}", "{x}", std::string_view("\0\xff", 2)}) {
    std::string first;
    std::string second;
    append_redis_key(first, "rate_guard:", "per_second", client, KeyLayout::hash_tagged);
    append_redis_key(second, "rate_guard:", "per_day_zone", client, KeyLayout::hash_tagged);
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

// ------------------------------------------------------------- escape_for_log

TEST(EscapeForLog, PrintableAsciiIsKept) {
  EXPECT_EQ(escape_for_log("GET /a?b=1 ~x{}"), "GET /a?b=1 ~x{}");
}

TEST(EscapeForLog, QuoteAndBackslashAreEscaped) {
  EXPECT_EQ(escape_for_log("a\"b\\c"), "a\\x22b\\x5Cc");
}

TEST(EscapeForLog, ControlBytesAreEscaped) {
  EXPECT_EQ(escape_for_log(std::string("\r\n\t\x00\x1f", 5)), "\\x0D\\x0A\\x09\\x00\\x1F");
}

TEST(EscapeForLog, DeleteAndHighBytesAreEscaped) {
  EXPECT_EQ(escape_for_log("\x7f\x80\xff"), "\\x7F\\x80\\xFF");
}

TEST(EscapeForLog, EmptyStaysEmpty) { EXPECT_EQ(escape_for_log(""), ""); }

TEST(EscapeForLog, InputLongerThanMaxIsCutWithEllipsis) {
  EXPECT_EQ(escape_for_log("abcdef", 4), "abcd...");
}

TEST(EscapeForLog, InputOfExactlyMaxIsNotCut) { EXPECT_EQ(escape_for_log("abcd", 4), "abcd"); }

TEST(EscapeForLog, CutCountsInputBytesNotEscapedOutput) {
  EXPECT_EQ(escape_for_log("\x01\x02\x03", 2), "\\x01\\x02...");
}

TEST(EscapeForLog, DefaultMaximumIs256Bytes) {
  EXPECT_EQ(escape_for_log(std::string(256, 'a')), std::string(256, 'a'));
  EXPECT_EQ(escape_for_log(std::string(257, 'a')), std::string(256, 'a') + "...");
}

}  // namespace
}  // namespace rate_guard
