// A batch's entries (redis/check_batch.h): which checks are merged into one
// entry, what the formatter sends for them, and how a merged entry's answer
// is fanned out to its checks. What Redis decides for them is specified in
// tests/redis/check_script_merged_test.cpp.
#include "redis/check_batch.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <string>
#include <string_view>
#include <vector>

#include "lua/check_script.h"

namespace rate_guard {
namespace {

// One zone of a check: key, cost; 10 per minute, fixed_window.
struct Zone {
  std::string key;
  uint64_t cost = 1;
  uint64_t limit = 10;
};

class CheckBatchTest : public ::testing::Test {
 protected:
  void TearDown() override { pool_.release_batch(batch_); }

  PendingCheck* add(const std::vector<Zone>& zones, bool merge = true) {
    PendingCheck* check = pool_.acquire_check();
    check->zones = zones.size();
    std::vector<BatchZone> batch_zones;
    for (const Zone& zone : zones) {
      batch_zones.push_back({zone.key, 2, zone.limit, 60000, zone.limit, zone.cost});
    }
    const std::vector<uint16_t> slots(zones.size(), 0);
    add_to_batch(batch_, check, batch_zones.data(), slots.data(), zones.size(), 0, merge);
    return check;
  }

  // The entries: each one's keys, and " x N" for a merged one.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const CheckBatch::Entry& entry : batch_->entries) {
      std::string text;
      for (uint32_t k = entry.first_key; k < entry.first_key + entry.zones; ++k) {
        const size_t begin = k == 0 ? 0 : batch_->key_ends[k - 1];
        text += (text.empty() ? "" : "+") + batch_->keys.substr(begin, batch_->key_ends[k] - begin);
      }
      if (entry.count > 1) {
        text += " x " + std::to_string(entry.count);
      }
      out.push_back(text);
    }
    return out;
  }

  // The arguments of the formatted command, parsed back from RESP.
  std::vector<std::string> formatted() {
    EXPECT_TRUE(formatter_.format(batch_, "sha", 0));
    std::vector<std::string> args;
    std::string_view rest(batch_->command, batch_->command_len);
    auto line = [&rest] {
      const size_t end = rest.find("\r\n");
      std::string_view text = rest.substr(0, end);
      rest.remove_prefix(end + 2);
      return std::string(text);
    };
    const size_t count = std::stoul(line().substr(1));
    for (size_t i = 0; i < count; ++i) {
      const size_t length = std::stoul(line().substr(1));
      args.emplace_back(rest.substr(0, length));
      rest.remove_prefix(length + 2);
    }
    return args;
  }

  CheckPool pool_;
  BatchFormatter formatter_;
  CheckBatch* batch_ = pool_.acquire_batch();
};

TEST_F(CheckBatchTest, ChecksOfOneKeyAndZoneAreOneEntry) {
  for (int i = 0; i < 1000; ++i) {
    add({{"a"}});
  }
  EXPECT_EQ(entries(), (std::vector<std::string>{"a x 1000"}));
  EXPECT_EQ(batch_->zones, 1u);
  EXPECT_EQ(batch_->checks.size(), 1000u);
  EXPECT_EQ(batch_->checks[999].rank, 999u);
  // EVALSHA sha numkeys key time R, then the merged entry: 0, n, its zone.
  EXPECT_EQ(formatted(),
            (std::vector<std::string>{"EVALSHA", "sha", "1", "a", "0", "1", "0", "1000", "2", "10", "60000", "10", "1"}));
}

TEST_F(CheckBatchTest, ChecksOfOtherKeysBetweenThemChangeNothing) {
  add({{"a"}});
  add({{"b"}});
  add({{"a"}});
  add({{"c"}});
  add({{"b"}});
  EXPECT_EQ(entries(), (std::vector<std::string>{"a x 2", "b x 2", "c"}));
  EXPECT_EQ(formatted(), (std::vector<std::string>{"EVALSHA", "sha", "3", "a", "b", "c", "0", "3",  //
                                                   "0", "2", "2", "10", "60000", "10", "1",         //
                                                   "0", "2", "2", "10", "60000", "10", "1",         //
                                                   "1", "2", "10", "60000", "10", "1"}));
}

TEST_F(CheckBatchTest, AnotherCostOrLimitIsAnotherEntry) {
  add({{"a", 1}});
  add({{"a", 2}});
  add({{"a", 2}});
  add({{"a", 1}});  // not with the first: the cost-2 checks came between
  add({{"a", 1, 20}});
  EXPECT_EQ(entries(), (std::vector<std::string>{"a", "a x 2", "a", "a"}));
}

TEST_F(CheckBatchTest, AMultiZoneCheckOfTheKeyEndsItsEntry) {
  add({{"a"}});
  add({{"a"}, {"b"}});
  add({{"a"}});
  add({{"b"}});
  add({{"a"}});
  EXPECT_EQ(entries(), (std::vector<std::string>{"a", "a+b", "a x 2", "b"}));
}

TEST_F(CheckBatchTest, WithoutMergingEveryCheckIsAnEntry) {
  for (int i = 0; i < 3; ++i) {
    add({{"a"}}, /*merge=*/false);
  }
  EXPECT_EQ(entries(), (std::vector<std::string>{"a", "a", "a"}));
}

// While a slot migrates a batch goes on zone by zone: a merged entry's checks
// each become a part of their own, a plain request as before.
TEST_F(CheckBatchTest, SplitIntoZonesGivesEveryLiveCheckOfAMergedEntryItsOwnPart) {
  std::vector<PendingCheck*> checks = {add({{"a"}}), add({{"b", 2}, {"c"}}), add({{"a"}}), add({{"a"}})};
  ASSERT_EQ(entries(), (std::vector<std::string>{"a x 3", "b+c"}));
  for (PendingCheck* check : checks) {
    check->live = true;
  }
  checks[2]->live = false;  // timed out: nothing of it is sent again
  std::vector<std::string> parts;
  split_into_zones(pool_, batch_, [&](CheckBatch* part) {
    batch_ = part;
    std::string text;
    for (const std::string& arg : formatted()) {
      text += arg + " ";
    }
    parts.push_back(text + "zone " + std::to_string(part->zone_index[0]));
    pool_.release_batch(part);
  });
  batch_ = pool_.acquire_batch();  // for TearDown
  EXPECT_EQ(parts, (std::vector<std::string>{
                       "EVALSHA sha 1 a 0 1 1 2 10 60000 10 1 zone 0",
                       "EVALSHA sha 1 b 0 1 1 2 10 60000 10 2 zone 0",
                       "EVALSHA sha 1 c 0 1 1 2 10 60000 10 1 zone 1",
                       "EVALSHA sha 1 a 0 1 1 2 10 60000 10 1 zone 0",
                   }));
  // Each live check now waits for its zones' parts (already answered here: released).
  EXPECT_EQ(checks[0]->parts_left, 1u);
  EXPECT_EQ(checks[1]->parts_left, 2u);
  EXPECT_EQ(checks[3]->parts_left, 1u);
  for (PendingCheck* check : checks) {
    check->live = false;
  }
}

// A reply of integers.
struct FakeReply {
  explicit FakeReply(const std::vector<long long>& values) : fields(values.size()), pointers(values.size()) {
    for (size_t i = 0; i < values.size(); ++i) {
      fields[i].type = REDIS_REPLY_INTEGER;
      fields[i].integer = values[i];
      pointers[i] = &fields[i];
    }
    array.type = REDIS_REPLY_ARRAY;
    array.elements = values.size();
    array.element = pointers.data();
  }
  std::vector<redisReply> fields;
  std::vector<redisReply*> pointers;
  redisReply array{};
};

std::vector<std::string> fan_out(const FakeReply& reply, size_t count, uint64_t cost) {
  std::vector<std::string> out;
  for (size_t rank = 0; rank < count; ++rank) {
    ZoneVerdict v;
    if (!decode_merged_reply(&reply.array, 0, count, rank, cost, &v)) {
      out.push_back("bad");
      continue;
    }
    out.push_back(std::string(v.allowed ? "allowed " : "rejected ") + std::to_string(v.remaining) + " " +
                  std::to_string(v.reset_ms));
  }
  return out;
}

TEST(DecodeMergedReply, TheFirstOnesPassEachReportingWhatRemainedAfterIt) {
  // 2 of 4 of cost 3 pass, 1 remains: the first saw 4 remain after it; the
  // second, the last to pass, reports its reset; the rejected theirs.
  EXPECT_EQ(fan_out(FakeReply({2, 10, 1, 500, 900}), 4, 3),
            (std::vector<std::string>{"allowed 4 0", "allowed 1 500", "rejected 1 900", "rejected 1 900"}));
  EXPECT_EQ(fan_out(FakeReply({0, 10, 0, 0, 700}), 2, 1), (std::vector<std::string>{"rejected 0 700", "rejected 0 700"}));
  EXPECT_EQ(fan_out(FakeReply({2, 10, 8, 0, 0}), 2, 1), (std::vector<std::string>{"allowed 9 0", "allowed 8 0"}));
}

TEST(DecodeMergedReply, RejectsRepliesOfTheWrongShape) {
  ZoneVerdict v;
  const FakeReply good({1, 10, 1, 0, 0});
  EXPECT_TRUE(decode_merged_reply(&good.array, 0, 2, 1, 1, &v));
  EXPECT_FALSE(decode_merged_reply(&good.array, 0, 2, 2, 1, &v));  // no such check
  EXPECT_FALSE(decode_merged_reply(&good.array, 1, 2, 0, 1, &v));  // past the end
  const FakeReply too_many({3, 10, 1, 0, 0});                       // more passed than sent
  EXPECT_FALSE(decode_merged_reply(&too_many.array, 0, 2, 0, 1, &v));
  const FakeReply negative({1, 10, -1, 0, 0});
  EXPECT_FALSE(decode_merged_reply(&negative.array, 0, 2, 0, 1, &v));
  const FakeReply short_one({1, 10, 1, 0});
  EXPECT_FALSE(decode_merged_reply(&short_one.array, 0, 2, 0, 1, &v));
  EXPECT_FALSE(decode_merged_reply(nullptr, 0, 2, 0, 1, &v));
}

TEST_F(CheckBatchTest, EachCheckFindsItsAnswerInTheReply) {
  add({{"a"}});
  add({{"b"}, {"c"}});
  add({{"a"}});
  add({{"d"}});
  // a x 2 (5 integers), b+c (2 x 4), d (4).
  FakeReply reply({1, 10, 0, 600, 800, /**/ 1, 10, 7, 0, 1, 10, 6, 0, /**/ 0, 10, 0, 300});
  const FakeReply too_short({1, 10, 0, 600});
  EXPECT_FALSE(locate_batch_reply(batch_, &too_short.array));
  ASSERT_TRUE(locate_batch_reply(batch_, &reply.array));
  std::vector<std::string> got;
  for (const CheckBatch::Member& member : batch_->checks) {
    std::vector<ZoneVerdict> verdicts(member.zones);
    ASSERT_TRUE(decode_member_reply(*batch_, member, &reply.array, verdicts.data()));
    std::string text;
    for (const ZoneVerdict& v : verdicts) {
      text += std::string(v.allowed ? "+" : "-") + std::to_string(v.remaining) + "/" + std::to_string(v.reset_ms) + " ";
    }
    got.push_back(text);
  }
  EXPECT_EQ(got, (std::vector<std::string>{"+0/600 ", "+7/0 +6/0 ", "-0/800 ", "-0/300 "}));
}

}  // namespace
}  // namespace rate_guard
