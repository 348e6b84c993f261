// A batch's entries (redis/check_batch.h): which checks are merged into one
// entry, what the formatter sends for them, and how a merged entry's answer
// is fanned out to its checks. What Redis decides for them is specified in
// tests/redis/check_script_merged_test.cpp.
#include "redis/check_batch.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <deque>
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

  // `zone` as the batch takes it: fixed_window, its rule key "!<key>".
  BatchZone batch_zone(const Zone& zone) {
    rule_keys_.push_back("!" + zone.key);
    return {zone.key, rule_keys_.back(), 2, zone.limit, 60000, zone.limit, zone.cost};
  }

  // A one-zone check of `zone` asking for a lease of `units` for `lease_ms`.
  PendingCheck* add_lease(const Zone& zone, uint64_t units, uint64_t lease_ms) {
    PendingCheck* check = pool_.acquire_check();
    check->zones = 1;
    add_lease_to_batch(batch_, check, batch_zone(zone), 0, units, lease_ms);
    return check;
  }

  void add_hand_back(const Zone& zone, uint64_t mark, uint64_t granted, uint64_t units) {
    add_hand_back_to_batch(batch_, batch_zone(zone), mark, granted, units);
  }

  void add_charge(const Zone& zone, uint32_t tag) { add_charge_to_batch(batch_, batch_zone(zone), tag); }

  PendingCheck* add(const std::vector<Zone>& zones, bool merge = true) {
    PendingCheck* check = pool_.acquire_check();
    check->zones = zones.size();
    std::vector<BatchZone> batch_zones;
    for (const Zone& zone : zones) {
      batch_zones.push_back(batch_zone(zone));
    }
    const std::vector<uint16_t> slots(zones.size(), 0);
    add_to_batch(batch_, check, batch_zones.data(), slots.data(), zones.size(), 0, merge);
    return check;
  }

  // The entries: each one's keys, and " x N" for a merged one; a lease
  // entry "lease " first (and " x N" even for 1), a hand-back "back " first.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const CheckBatch::Entry& entry : batch_->entries) {
      std::string text;
      for (uint32_t k = entry.first_key; k < entry.first_key + entry.zones; ++k) {
        const size_t begin = k == 0 ? 0 : batch_->key_ends[k - 1];
        text += (text.empty() ? "" : "+") + batch_->keys.substr(begin, batch_->key_ends[k] - begin);
      }
      if (entry.kind == CheckBatch::Kind::lease) {
        text = "lease " + text + " x " + std::to_string(entry.count);
      } else if (entry.kind == CheckBatch::Kind::hand_back) {
        text = "back " + text;
      } else if (entry.kind == CheckBatch::Kind::charge) {
        text = "charge " + text + " tag " + std::to_string(entry.tag);
      } else if (entry.count > 1) {
        text += " x " + std::to_string(entry.count);
      }
      out.push_back(text);
    }
    return out;
  }

  // The arguments of the formatted command, without the rule keys: those
  // are checked to follow the state keys, each "!<its state key>".
  std::vector<std::string> formatted() {
    std::vector<std::string> args = raw_formatted();
    const size_t keys = std::stoul(args.at(2));
    EXPECT_EQ(keys % 2, 0u);
    EXPECT_EQ(keys, 2 * batch_->zones);
    for (size_t k = 0; k < keys / 2; ++k) {
      EXPECT_EQ(args.at(3 + keys / 2 + k), "!" + args.at(3 + k)) << k;
    }
    args.erase(args.begin() + 3 + static_cast<std::ptrdiff_t>(keys / 2),
               args.begin() + 3 + static_cast<std::ptrdiff_t>(keys));
    args[2] = std::to_string(keys / 2);
    return args;
  }

  // The arguments of the formatted command, parsed back from RESP.
  std::vector<std::string> raw_formatted() {
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
  std::deque<std::string> rule_keys_;  // the rule keys the batch's views point into
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
    for (const std::string& arg : raw_formatted()) {  // the state key twice
      text += arg + " ";
    }
    parts.push_back(text + "zone " + std::to_string(part->zone_index[0]));
    pool_.release_batch(part);
  });
  batch_ = pool_.acquire_batch();  // for TearDown
  EXPECT_EQ(parts, (std::vector<std::string>{
                       "EVALSHA sha 2 a a 0 1 1 2 10 60000 10 1 zone 0",
                       "EVALSHA sha 2 b b 0 1 1 2 10 60000 10 2 zone 0",
                       "EVALSHA sha 2 c c 0 1 1 2 10 60000 10 1 zone 1",
                       "EVALSHA sha 2 a a 0 1 1 2 10 60000 10 1 zone 0",
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

// ------------------------------------------------------------ leases (issue 14)

// A lease-asking check starts an entry of its own (never joining an earlier
// one), rank 0 of it; later plain checks of its key and arguments join it,
// a second lease-asking check does not.
TEST_F(CheckBatchTest, ALeaseEntryIsJoinedByLaterPlainChecksOfItsKeyOnly) {
  std::vector<PendingCheck*> checks = {add({{"a"}}), add_lease({"a"}, 5, 3000), add({{"a"}}), add({{"a"}}),
                                       add_lease({"a"}, 2, 1000), add({{"a"}})};
  EXPECT_EQ(entries(), (std::vector<std::string>{"a", "lease a x 3", "lease a x 2"}));
  const std::vector<uint32_t> entry_of = {0, 1, 1, 1, 2, 2};
  const std::vector<uint32_t> rank_of = {0, 0, 1, 2, 0, 1};
  for (size_t i = 0; i < checks.size(); ++i) {
    EXPECT_EQ(batch_->checks[i].check, checks[i]) << i;
    EXPECT_EQ(batch_->checks[i].entry, entry_of[i]) << i;
    EXPECT_EQ(batch_->checks[i].rank, rank_of[i]) << i;
    EXPECT_EQ(checks[i]->parts_left, 1u) << i;
  }
  EXPECT_EQ(batch_->zones, 3u);
  EXPECT_EQ(batch_->hand_backs, 0u);
  // A lease entry: -1, n, U, the lifetime, its zone.
  EXPECT_EQ(formatted(), (std::vector<std::string>{"EVALSHA", "sha", "3", "a", "a", "a", "0", "3",  //
                                                   "1", "2", "10", "60000", "10", "1",              //
                                                   "-1", "3", "5", "3000", "2", "10", "60000", "10", "1",  //
                                                   "-1", "2", "2", "1000", "2", "10", "60000", "10", "1"}));
}

TEST_F(CheckBatchTest, ALoneLeaseEntryIsSentWithItsCountOfOne) {
  add_lease({"a", 3, 20}, 7, 500);
  add({{"a", 1, 20}});  // another cost: not in it
  add({{"b"}});
  EXPECT_EQ(entries(), (std::vector<std::string>{"lease a x 1", "a", "b"}));
  EXPECT_EQ(formatted(), (std::vector<std::string>{"EVALSHA", "sha", "3", "a", "a", "b", "0", "3",  //
                                                   "-1", "1", "7", "500", "2", "20", "60000", "20", "3",  //
                                                   "1", "2", "20", "60000", "20", "1",                    //
                                                   "1", "2", "10", "60000", "10", "1"}));
}

// A hand-back touches its key: the checks after it start a new entry.
TEST_F(CheckBatchTest, AHandBackIsSentAsItsOwnEntryAndEndsTheEntryOfItsKey) {
  add({{"a"}});
  add({{"a"}});
  add_hand_back({"a"}, 77, 5, 3);
  add({{"a"}});
  add({{"a"}});
  add_lease({"b"}, 4, 1000);
  add_hand_back({"b"}, 78, 4, 4);
  add({{"b"}});
  EXPECT_EQ(entries(), (std::vector<std::string>{"a x 2", "back a", "a x 2", "lease b x 1", "back b", "b"}));
  EXPECT_EQ(batch_->hand_backs, 2u);
  EXPECT_EQ(batch_->checks.size(), 6u);  // the hand-backs are not checks
  EXPECT_EQ(batch_->zones, 6u);
  // A hand-back: -2, u, g, the mark, its zone.
  EXPECT_EQ(formatted(), (std::vector<std::string>{"EVALSHA", "sha", "6", "a", "a", "a", "b", "b", "b", "0", "6",  //
                                                   "0", "2", "2", "10", "60000", "10", "1",                        //
                                                   "-2", "3", "5", "77", "2", "10", "60000", "10", "1",            //
                                                   "0", "2", "2", "10", "60000", "10", "1",                        //
                                                   "-1", "1", "4", "1000", "2", "10", "60000", "10", "1",          //
                                                   "-2", "4", "4", "78", "2", "10", "60000", "10", "1",            //
                                                   "1", "2", "10", "60000", "10", "1"}));
}

// Nobody waits for a hand-back, but its batch is sent and answered all the
// same: 1 integer each.
TEST_F(CheckBatchTest, ABatchOfOnlyHandBacksIsWaitedForAndLocated) {
  EXPECT_FALSE(batch_->waited_for());
  add_hand_back({"a"}, 1, 9, 4);
  add_hand_back({"b", 1, 20}, 2, 3, 3);
  EXPECT_TRUE(batch_->checks.empty());
  EXPECT_TRUE(batch_->waited_for());
  EXPECT_FALSE(batch_->has_live_check());
  EXPECT_EQ(formatted(), (std::vector<std::string>{"EVALSHA", "sha", "2", "a", "b", "0", "2",  //
                                                   "-2", "4", "9", "1", "2", "10", "60000", "10", "1",  //
                                                   "-2", "3", "3", "2", "2", "20", "60000", "20", "1"}));
  const FakeReply reply({4, 0});
  const FakeReply too_short({4});
  const FakeReply too_long({4, 0, 0});
  EXPECT_FALSE(locate_batch_reply(batch_, &too_short.array));
  EXPECT_FALSE(locate_batch_reply(batch_, &too_long.array));
  ASSERT_TRUE(locate_batch_reply(batch_, &reply.array));
  EXPECT_EQ(batch_->entries[1].reply_at, 1u);
  // Released, the batch comes back empty: its hand-backs forgotten.
  pool_.release_batch(batch_);
  batch_ = pool_.acquire_batch();
  EXPECT_EQ(batch_->hand_backs, 0u);
  EXPECT_FALSE(batch_->waited_for());
}

// A lease entry's answer: n, limit, remaining, resets (a merged entry's),
// then the units granted, the lifetime, the mark; fanned out, with the grant
// for rank 0 only.
std::vector<std::string> lease_fan_out(const FakeReply& reply, size_t count, uint64_t cost, uint64_t units,
                                       uint64_t lease_ms) {
  std::vector<std::string> out;
  for (size_t rank = 0; rank < count; ++rank) {
    ZoneVerdict v;
    LeaseGrant lease{11, 11, 11};  // overwritten
    if (!decode_lease_reply(&reply.array, 0, count, rank, cost, units, lease_ms, &v, &lease)) {
      out.push_back("bad");
      continue;
    }
    out.push_back(std::string(v.allowed ? "allowed " : "rejected ") + std::to_string(v.remaining) + " " +
                  std::to_string(v.reset_ms) + " grant " + std::to_string(lease.units) + "/" +
                  std::to_string(lease.lease_ms) + "/" + std::to_string(lease.mark));
  }
  return out;
}

TEST(DecodeLeaseReply, TheAskingCheckAloneGetsTheGrant) {
  // 3 of 3 of cost 2 pass, 4 remain (not counting the grant): 2 units for 2 s.
  EXPECT_EQ(lease_fan_out(FakeReply({3, 10, 4, 600, 0, 2, 2000, 42}), 3, 2, 5, 3000),
            (std::vector<std::string>{"allowed 8 0 grant 2/2000/42", "allowed 6 0 grant 0/0/0",
                                      "allowed 4 600 grant 0/0/0"}));
  // All that was asked, for as long as asked.
  EXPECT_EQ(lease_fan_out(FakeReply({1, 10, 9, 100, 0, 5, 3000, 1}), 1, 1, 5, 3000),
            (std::vector<std::string>{"allowed 9 100 grant 5/3000/1"}));
  // Nothing granted: no grant, whatever the mark.
  EXPECT_EQ(lease_fan_out(FakeReply({1, 10, 1, 100, 0, 0, 0, 8}), 1, 1, 5, 3000),
            (std::vector<std::string>{"allowed 1 100 grant 0/0/0"}));
}

TEST(DecodeLeaseReply, ARejectedAskingCheckGetsNoGrant) {
  EXPECT_EQ(lease_fan_out(FakeReply({0, 10, 0, 0, 700, 0, 0, 0}), 2, 1, 5, 3000),
            (std::vector<std::string>{"rejected 0 700 grant 0/0/0", "rejected 0 700 grant 0/0/0"}));
  // Even were units said granted (the script grants none unless all pass).
  EXPECT_EQ(lease_fan_out(FakeReply({0, 10, 0, 0, 700, 2, 100, 5}), 1, 1, 5, 3000),
            (std::vector<std::string>{"rejected 0 700 grant 0/0/0"}));
}

TEST(DecodeLeaseReply, AGrantNotAskedOrAnyWrongShapeIsABadReply) {
  const std::vector<std::string> bad = {"bad", "bad"};
  EXPECT_EQ(lease_fan_out(FakeReply({2, 10, 4, 0, 0, 6, 1000, 1}), 2, 1, 5, 3000), bad);  // more units than asked
  EXPECT_EQ(lease_fan_out(FakeReply({2, 10, 4, 0, 0, 5, 3001, 1}), 2, 1, 5, 3000), bad);  // longer than asked
  EXPECT_EQ(lease_fan_out(FakeReply({2, 10, 4, 0, 0, 0, 10, 1}), 2, 1, 5, 3000), bad);    // a lifetime of nothing
  EXPECT_EQ(lease_fan_out(FakeReply({2, 10, 4, 0, 0, 1, 10, -1}), 2, 1, 5, 3000), bad);   // a negative mark
  EXPECT_EQ(lease_fan_out(FakeReply({3, 10, 4, 0, 0, 1, 10, 1}), 2, 1, 5, 3000), bad);    // more passed than sent
  EXPECT_EQ(lease_fan_out(FakeReply({2, 10, 4, 0, 0, 1, 10}), 2, 1, 5, 3000), bad);       // 7 integers
  EXPECT_EQ(lease_fan_out(FakeReply({2, 10, 4, 0, 0}), 2, 1, 5, 3000), bad);              // a merged entry's 5
  ZoneVerdict v;
  LeaseGrant lease;
  EXPECT_FALSE(decode_lease_reply(nullptr, 0, 1, 0, 1, 5, 3000, &v, &lease));
  const FakeReply good({1, 10, 4, 0, 0, 1, 10, 1});
  EXPECT_TRUE(decode_lease_reply(&good.array, 0, 1, 0, 1, 5, 3000, &v, &lease));
  EXPECT_FALSE(decode_lease_reply(&good.array, 0, 1, 1, 1, 5, 3000, &v, &lease));  // no such check
}

TEST_F(CheckBatchTest, EachCheckFindsItsAnswerAmongLeasesAndHandBacks) {
  add({{"a"}});
  add_lease({"b"}, 4, 1000);
  add({{"b"}});
  add_hand_back({"c"}, 7, 3, 2);
  add({{"c"}});
  add({{"a"}});
  add_lease({"d"}, 4, 1000);
  ASSERT_EQ(entries(), (std::vector<std::string>{"a x 2", "lease b x 2", "back c", "c", "lease d x 1"}));
  // a x 2 (5), lease b x 2 (8), back c (1), c (4), lease d (8): 26 integers.
  const FakeReply reply({2, 10, 8, 0, 0,              //
                         2, 10, 5, 0, 0, 3, 900, 31,  //
                         2,                           //
                         1, 10, 9, 0,                 //
                         0, 10, 0, 0, 400, 0, 0, 32});
  const FakeReply too_short({2, 10, 8, 0, 0, 2, 10, 5, 0, 0, 3, 900, 31, 2, 1, 10, 9, 0, 0, 10, 0, 0, 400});
  EXPECT_FALSE(locate_batch_reply(batch_, &too_short.array));
  ASSERT_TRUE(locate_batch_reply(batch_, &reply.array));
  EXPECT_EQ(batch_->entries[1].reply_at, 5u);
  EXPECT_EQ(batch_->entries[2].reply_at, 13u);
  EXPECT_EQ(batch_->entries[3].reply_at, 14u);
  EXPECT_EQ(batch_->entries[4].reply_at, 18u);
  std::vector<std::string> got;
  for (const CheckBatch::Member& member : batch_->checks) {
    ZoneVerdict v;
    LeaseGrant lease{99, 99, 99};  // written for a lease entry's member only
    ASSERT_TRUE(decode_member_reply(*batch_, member, &reply.array, &v, &lease));
    got.push_back(std::string(v.allowed ? "+" : "-") + std::to_string(v.remaining) + " " +
                  std::to_string(lease.units) + "/" + std::to_string(lease.lease_ms) + "/" +
                  std::to_string(lease.mark));
  }
  EXPECT_EQ(got, (std::vector<std::string>{"+9 99/99/99", "+6 3/900/31", "+5 0/0/0", "+9 99/99/99", "+8 99/99/99",
                                           "-0 0/0/0"}));
  // Without a place for the grant the verdicts are read all the same.
  ZoneVerdict v;
  EXPECT_TRUE(decode_member_reply(*batch_, batch_->checks[1], &reply.array, &v));
  EXPECT_TRUE(v.allowed);
}

// While a slot migrates: a lease entry's live checks go on as plain requests,
// one part each; hand-backs are dropped.
TEST_F(CheckBatchTest, SplitIntoZonesTurnsLeaseEntriesIntoPlainPartsAndDropsHandBacks) {
  std::vector<PendingCheck*> checks = {add_lease({"a"}, 4, 1000), add({{"a"}})};
  add_hand_back({"e"}, 1, 2, 2);
  checks.push_back(add({{"b", 2}, {"c"}}));
  ASSERT_EQ(entries(), (std::vector<std::string>{"lease a x 2", "back e", "b+c"}));
  for (PendingCheck* check : checks) {
    check->live = true;
  }
  std::vector<std::string> parts;
  split_into_zones(pool_, batch_, [&](CheckBatch* part) {
    batch_ = part;
    std::string text;
    for (const std::string& arg : raw_formatted()) {  // the state key twice
      text += arg + " ";
    }
    parts.push_back(text + "zone " + std::to_string(part->zone_index[0]));
    EXPECT_EQ(part->hand_backs, 0u);
    pool_.release_batch(part);
  });
  batch_ = pool_.acquire_batch();  // for TearDown
  EXPECT_EQ(parts, (std::vector<std::string>{
                       "EVALSHA sha 2 a a 0 1 1 2 10 60000 10 1 zone 0",
                       "EVALSHA sha 2 a a 0 1 1 2 10 60000 10 1 zone 0",
                       "EVALSHA sha 2 b b 0 1 1 2 10 60000 10 2 zone 0",
                       "EVALSHA sha 2 c c 0 1 1 2 10 60000 10 1 zone 1",
                   }));
  for (PendingCheck* check : checks) {
    EXPECT_EQ(check->parts_left, check->zones);
    check->live = false;
  }
}

// Every zone travels with its rule key: KEYS are the state keys, then the
// rule keys in the same order, and numkeys counts both.
TEST_F(CheckBatchTest, TheRuleKeysFollowTheStateKeys) {
  add({{"a"}, {"b"}});
  add({{"c"}});
  EXPECT_EQ(raw_formatted(), (std::vector<std::string>{"EVALSHA", "sha", "6", "a", "b", "c", "!a", "!b", "!c", "0",
                                                       "2",  //
                                                       "2", "2", "10", "60000", "10", "1", "2", "10", "60000", "10",
                                                       "1",  //
                                                       "1", "2", "10", "60000", "10", "1"}));
}

// count=after's check before the request (cost 0) asks without counting:
// the script takes no merged entry of it, so each is an entry of its own.
TEST_F(CheckBatchTest, ChecksOfCostZeroAreNeverMerged) {
  add({{"a", 0}});
  add({{"a", 0}});
  add({{"a"}});
  add({{"a"}});
  EXPECT_EQ(entries(), (std::vector<std::string>{"a", "a", "a x 2"}));
}

// A charge: -3, its zone (the cost the units); no check, a barrier for its
// key, and the batch is sent for it alone.
TEST_F(CheckBatchTest, AChargeIsAnEntryWithoutACheckThatEndsTheEntryOfItsKey) {
  add({{"a"}});
  add_charge({"a", 7}, 3);
  add({{"a"}});
  add({{"a"}});
  EXPECT_EQ(entries(), (std::vector<std::string>{"a", "charge a tag 3", "a x 2"}));
  EXPECT_EQ(batch_->charges, 1u);
  EXPECT_EQ(batch_->checks.size(), 3u);
  EXPECT_EQ(formatted(), (std::vector<std::string>{"EVALSHA", "sha", "3", "a", "a", "a", "0", "3",  //
                                                   "1", "2", "10", "60000", "10", "1",              //
                                                   "-3", "2", "10", "60000", "10", "7",             //
                                                   "0", "2", "2", "10", "60000", "10", "1"}));
  // Answered by one integer.
  const FakeReply reply({1, 10, 9, 0, 2, 2, 10, 7, 0, 0});
  ASSERT_TRUE(locate_batch_reply(batch_, &reply.array));
  EXPECT_EQ(batch_->entries[1].reply_at, 4u);
  EXPECT_EQ(batch_->entries[2].reply_at, 5u);
}

TEST_F(CheckBatchTest, ABatchOfOnlyChargesIsWaitedFor) {
  EXPECT_FALSE(batch_->waited_for());
  add_charge({"a", 2}, 0);
  EXPECT_TRUE(batch_->waited_for());
  EXPECT_FALSE(batch_->has_live_check());
}

// After the entries' integers: one event per zone a rule decided, k * 2 +
// kind, k the key's place in KEYS from 1. Each member of the entry is marked.
TEST_F(CheckBatchTest, RuleEventsMarkTheZonesTheyName) {
  PendingCheck* two = add({{"a"}, {"b"}});
  PendingCheck* merged_first = add({{"c"}});
  PendingCheck* merged_second = add({{"c"}});
  ASSERT_EQ(entries(), (std::vector<std::string>{"a+b", "c x 2"}));
  (void)two, (void)merged_first, (void)merged_second;
  // a: allowed under an override; b: rejected by a ban; c: nothing.
  const FakeReply reply({1, 10, 9, 0, 0, 10, 0, 5000, 2, 10, 8, 0, 0,  //
                         1 * 2 + kRuleOverride, 2 * 2 + kRuleBanned});
  ASSERT_TRUE(locate_batch_reply(batch_, &reply.array));
  ZoneVerdict v[2];
  ASSERT_TRUE(decode_member_reply(*batch_, batch_->checks[0], &reply.array, v));
  EXPECT_TRUE(v[0].overridden);
  EXPECT_FALSE(v[0].banned);
  EXPECT_TRUE(v[1].banned);
  EXPECT_FALSE(v[1].overridden);
  for (size_t member : {1, 2}) {
    ZoneVerdict c;
    c.banned = c.overridden = true;  // overwritten
    ASSERT_TRUE(decode_member_reply(*batch_, batch_->checks[member], &reply.array, &c));
    EXPECT_FALSE(c.banned);
    EXPECT_FALSE(c.overridden);
  }
  const FakeReply merged_banned({1, 10, 9, 0, 0, 10, 0, 5000, 0, 10, 0, 0, 3000, 3 * 2 + kRuleBanned});
  ASSERT_TRUE(locate_batch_reply(batch_, &merged_banned.array));
  for (size_t member : {1, 2}) {
    ZoneVerdict c;
    ASSERT_TRUE(decode_member_reply(*batch_, batch_->checks[member], &merged_banned.array, &c));
    EXPECT_TRUE(c.banned);
    EXPECT_FALSE(c.allowed);
    EXPECT_EQ(c.reset_ms, 3000u);
  }
}

TEST_F(CheckBatchTest, RuleEventsNamingNoKeyAreABadReply) {
  add({{"a"}});
  for (long long event : {0LL, 1LL, -3LL, 2 * 2 + 0LL, 2 * 2 + 1LL}) {
    const FakeReply reply({1, 10, 9, 0, event});
    EXPECT_FALSE(locate_batch_reply(batch_, &reply.array)) << event;
  }
  const FakeReply good({1, 10, 9, 0, 1 * 2 + 0LL});
  EXPECT_TRUE(locate_batch_reply(batch_, &good.array));
}

}  // namespace
}  // namespace rate_guard
