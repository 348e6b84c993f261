// Reading CLUSTER SLOTS replies (as RESP bytes, through hiredis's own reader).
#include "redis/cluster_slots_reply.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

namespace rate_guard {
namespace {

// The reply hiredis makes of `resp`.
struct Parsed {
  explicit Parsed(const std::string& resp) {
    redisReader* reader = redisReaderCreate();
    redisReaderFeed(reader, resp.data(), resp.size());
    void* out = nullptr;
    EXPECT_EQ(redisReaderGetReply(reader, &out), REDIS_OK);
    reply = static_cast<redisReply*>(out);
    redisReaderFree(reader);
  }
  ~Parsed() { freeReplyObject(reply); }
  redisReply* reply = nullptr;
};

std::string bulk(const std::string& text) { return "$" + std::to_string(text.size()) + "\r\n" + text + "\r\n"; }
std::string node(const std::string& host, int port) {
  return "*3\r\n" + bulk(host) + ":" + std::to_string(port) + "\r\n" + bulk("0123456789abcdef");
}
std::string range(int first, int last, const std::string& master, const std::string& replica = "") {
  return "*" + std::to_string(replica.empty() ? 3 : 4) + "\r\n:" + std::to_string(first) + "\r\n:" +
         std::to_string(last) + "\r\n" + master + replica;
}

const RedisEndpoint kAsked{"192.0.2.9", 7009, {}};

TEST(ParseClusterSlots, MastersOfEveryRangeReplicasIgnored) {
  Parsed parsed("*2\r\n" + range(0, 8191, node("10.0.0.1", 7000), node("10.0.0.4", 7003)) +
                range(8192, 16383, node("::1", 7001)));
  std::vector<SlotRange> ranges;
  std::string error;
  ASSERT_TRUE(parse_cluster_slots(parsed.reply, kAsked, &ranges, &error)) << error;
  ASSERT_EQ(ranges.size(), 2u);
  EXPECT_EQ(ranges[0].first, 0);
  EXPECT_EQ(ranges[0].last, 8191);
  EXPECT_EQ(ranges[0].master, (RedisEndpoint{"10.0.0.1", 7000, {}}));
  EXPECT_EQ(ranges[1].first, 8192);
  EXPECT_EQ(ranges[1].last, 16383);
  EXPECT_EQ(ranges[1].master, (RedisEndpoint{"::1", 7001, {}}));
}

// Redis 7 announces "" or "?" when the node does not know its own address:
// it is the node that answered.
TEST(ParseClusterSlots, AnUnknownEndpointIsTheNodeThatAnswered) {
  for (const std::string& unknown : {std::string(""), std::string("?")}) {
    Parsed parsed("*1\r\n" + range(0, 16383, node(unknown, 7005)));
    std::vector<SlotRange> ranges;
    std::string error;
    ASSERT_TRUE(parse_cluster_slots(parsed.reply, kAsked, &ranges, &error)) << error;
    EXPECT_EQ(ranges[0].master, (RedisEndpoint{"192.0.2.9", 7005, {}}));
  }
}

TEST(ParseClusterSlots, AHostnameIsRefusedSinceResolvingItWouldBlock) {
  Parsed parsed("*1\r\n" + range(0, 16383, node("redis-1.internal", 7000)));
  std::vector<SlotRange> ranges;
  std::string error;
  ASSERT_FALSE(parse_cluster_slots(parsed.reply, kAsked, &ranges, &error));
  EXPECT_NE(error.find("\"redis-1.internal\"; only IP addresses are supported"), std::string::npos) << error;
}

TEST(ParseClusterSlots, AnErrorReplyIsQuotedAndEscaped) {
  Parsed parsed("-ERR This instance has cluster support disabled\r\n");
  std::vector<SlotRange> ranges;
  std::string error;
  ASSERT_FALSE(parse_cluster_slots(parsed.reply, kAsked, &ranges, &error));
  EXPECT_EQ(error, "CLUSTER SLOTS failed: \"ERR This instance has cluster support disabled\"");
}

TEST(ParseClusterSlots, MalformedMapsAreRefused) {
  const std::vector<std::string> bad = {
      "*0\r\n",                                                   // no slot at all
      "*1\r\n" + range(0, 16384, node("10.0.0.1", 7000)),         // past the last slot
      "*1\r\n" + range(10, 5, node("10.0.0.1", 7000)),            // backwards
      "*1\r\n" + range(-1, 5, node("10.0.0.1", 7000)),            // negative
      "*1\r\n" + range(0, 5, node("10.0.0.1", 0)),                // no port
      "*1\r\n" + range(0, 5, node("10.0.0.1", 65536)),            // port too large
      "*1\r\n*2\r\n:0\r\n:5\r\n",                                 // no master
      "*1\r\n*3\r\n:0\r\n:5\r\n*1\r\n" + bulk("10.0.0.1"),       // master without a port
      "*1\r\n*3\r\n$1\r\n0\r\n:5\r\n" + node("10.0.0.1", 7000),  // a string for a slot
      ":1\r\n",
      "$2\r\nOK\r\n",
  };
  for (const std::string& resp : bad) {
    Parsed parsed(resp);
    std::vector<SlotRange> ranges;
    std::string error;
    EXPECT_FALSE(parse_cluster_slots(parsed.reply, kAsked, &ranges, &error)) << resp;
    EXPECT_FALSE(error.empty()) << resp;
  }
  std::vector<SlotRange> ranges;
  std::string error;
  EXPECT_FALSE(parse_cluster_slots(nullptr, kAsked, &ranges, &error));
}

TEST(IsIpAddress, AddressesNotNames) {
  EXPECT_TRUE(is_ip_address("127.0.0.1"));
  EXPECT_TRUE(is_ip_address("::1"));
  EXPECT_TRUE(is_ip_address("2001:db8::7"));
  EXPECT_FALSE(is_ip_address("localhost"));
  EXPECT_FALSE(is_ip_address("redis-1"));
  EXPECT_FALSE(is_ip_address(""));
  EXPECT_FALSE(is_ip_address("10.0.0.1:7000"));
}

}  // namespace
}  // namespace rate_guard
