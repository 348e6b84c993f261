// The check script: every algorithm, several zones, batches.
#include "check_script_fixture.h"

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

// ================================================================ all zones

class CheckScriptEveryAlgorithmTest : public CheckScriptTest,
                                      public ::testing::WithParamInterface<Algorithm> {
 protected:
  // A zone of the algorithm under test: 2 requests per minute.
  Zone zone_under_test(std::string key) const {
    return make_zone(GetParam(), /*limit=*/2, /*window_ms=*/60000, std::move(key));
  }
};

TEST_P(CheckScriptEveryAlgorithmTest, RequestRejectedByAnotherZoneIsNotCountedHere) {
  const Zone here = zone_under_test("here");
  const Zone full = sliding_log(/*limit=*/1, /*window_ms=*/60000, "full");
  check(kT0, full);
  for (int i = 0; i < 5; ++i) {
    std::vector<Verdict> verdicts = check_all(kT0 + kSecond, {here, full});
    ASSERT_EQ(verdicts.size(), 2u);
    EXPECT_TRUE(verdicts[0].allowed);
    EXPECT_FALSE(verdicts[1].allowed);
  }
  EXPECT_FALSE(exists("here"));
  EXPECT_EQ(check(kT0 + kSecond, here).remaining, 1u);
}

TEST_P(CheckScriptEveryAlgorithmTest, RequestRejectedHereIsNotCountedInAnotherZone) {
  const Zone here = zone_under_test("here");
  const Zone other = sliding_log(/*limit=*/10, /*window_ms=*/60000, "other");
  check(kT0, with_cost(here, 2));
  for (int i = 0; i < 5; ++i) {
    std::vector<Verdict> verdicts = check_all(kT0 + kSecond, {other, here});
    ASSERT_EQ(verdicts.size(), 2u);
    EXPECT_TRUE(verdicts[0].allowed);
    EXPECT_FALSE(verdicts[1].allowed);
  }
  EXPECT_FALSE(exists("other"));
}

TEST_P(CheckScriptEveryAlgorithmTest, RequestAllowedEverywhereIsCountedEverywhere) {
  const Zone here = zone_under_test("here");
  const Zone other = sliding_log(/*limit=*/10, /*window_ms=*/60000, "other");
  std::vector<Verdict> verdicts = check_all(kT0, {here, other});
  ASSERT_EQ(verdicts.size(), 2u);
  EXPECT_EQ(verdicts[0], Allowed(2, 1, 0));
  EXPECT_EQ(verdicts[1], Allowed(10, 9, 0));
  EXPECT_EQ(check(kT0, here).remaining, 0u);
  EXPECT_EQ(zcard("other"), 1);
}

TEST_P(CheckScriptEveryAlgorithmTest, BinaryKeysAreKeptApart) {
  using namespace std::string_literals;
  const std::vector<std::string> keys = {"client\0one"s, "client\0two"s, "client"s,
                                         "client\r\nEVAL x 0\r\n"s, "\0"s};
  for (const std::string& key : keys) {
    EXPECT_TRUE(check(kT0, with_cost(zone_under_test(key), 2)).allowed)
        << std::string_view(key.data(), key.size());
  }
  for (const std::string& key : keys) {
    EXPECT_TRUE(exists(key));
    EXPECT_FALSE(check(kT0, zone_under_test(key)).allowed);
  }
  EXPECT_EQ(integer({"DBSIZE"}), static_cast<long long>(keys.size()));
}

TEST_P(CheckScriptEveryAlgorithmTest, EveryKeyGetsATtlOfAboutTheWindow) {
  check_all(kT0, {zone_under_test("a"), zone_under_test("b")});
  for (const char* key : {"a", "b"}) {
    EXPECT_GT(pttl(key), 0) << key;
    EXPECT_LE(pttl(key), 2 * 60000) << key;
  }
}

TEST_P(CheckScriptEveryAlgorithmTest, StoresNumbersAsIntegersNotFloatText) {
  check(kT0 + 123456, with_cost(zone_under_test("client"), 2));
  std::vector<std::string> values;
  if (type("client") == "zset") {
    Reply all = command({"ZRANGE", "client", "0", "-1", "WITHSCORES"});
    for (size_t i = 0; i < all->elements; ++i) {
      values.emplace_back(all->element[i]->str, all->element[i]->len);
    }
  } else if (GetParam() == Algorithm::sliding_window) {
    // Packed (see unpack_sliding_window): the span and the index are doubles
    // of whole numbers, the counts 32-bit integers (2 here).
    const std::string state = get("client");
    const SlidingWindowState unpacked = unpack_sliding_window(state);
    ASSERT_TRUE(unpacked.valid);
    double span = 0, newest = 0;
    std::memcpy(&span, state.data() + 1, 8);
    std::memcpy(&newest, state.data() + 9, 8);
    EXPECT_EQ(span, 3750000.0);  // a minute / 16
    EXPECT_EQ(newest, static_cast<double>((kT0 + 123456) / 3750000));
    EXPECT_EQ(unpacked.counts.back(), 2u);
    return;
  } else {
    // One string of whole numbers separated by colons.
    EXPECT_EQ(type("client"), "string");
    const std::string state = get("client");
    size_t from = 0;
    for (size_t colon; (colon = state.find(':', from)) != std::string::npos; from = colon + 1) {
      values.push_back(state.substr(from, colon - from));
    }
    values.push_back(state.substr(from));
  }
  ASSERT_FALSE(values.empty());
  for (const std::string& value : values) {
    EXPECT_FALSE(value.empty());
    EXPECT_EQ(value.find_first_not_of("0123456789"), std::string::npos) << value;
  }
}

TEST_P(CheckScriptEveryAlgorithmTest, TimeZeroMeansRedisTime) {
  const Zone zone = make_zone(GetParam(), /*limit=*/1, /*window_ms=*/86400000, "client");
  EXPECT_TRUE(check(0, zone).allowed);
  EXPECT_FALSE(check(0, zone).allowed);
}

TEST_P(CheckScriptEveryAlgorithmTest, ReplacesAKeyLeftByAnotherAlgorithm) {
  for (Algorithm other : {Algorithm::sliding_window, Algorithm::sliding_log,
                          Algorithm::fixed_window, Algorithm::token_bucket}) {
    if (other == GetParam()) {
      continue;
    }
    SCOPED_TRACE(std::string("left by ") + std::string(algorithm_name(other)));
    ASSERT_EQ(command({"FLUSHALL"})->type, REDIS_REPLY_STATUS);
    Zone zone = zone_under_test("client");
    zone.algorithm = other;
    check(kT0, with_cost(zone, 2));
    EXPECT_EQ(check(kT0, zone_under_test("client")), Allowed(2, 1, 0));
    EXPECT_EQ(type("client"), GetParam() == Algorithm::sliding_log ? "zset" : "string");
  }
}

// What the previous version of the script kept: a hash.
TEST_P(CheckScriptEveryAlgorithmTest, ReplacesAHashLeftByAnEarlierVersion) {
  ASSERT_EQ(command({"HSET", "client", "window", "28333440", "count", "2", "current", "2",
                     "previous", "2", "tat", std::to_string(kT0 + kHour), "rem", "0"})
                ->type,
            REDIS_REPLY_INTEGER);
  EXPECT_EQ(check(kT0, zone_under_test("client")), Allowed(2, 1, 0));
  EXPECT_EQ(type("client"), GetParam() == Algorithm::sliding_log ? "zset" : "string");
  EXPECT_GT(pttl("client"), 0);
}

INSTANTIATE_TEST_SUITE_P(CheckScript, CheckScriptEveryAlgorithmTest,
                         ::testing::Values(Algorithm::sliding_window, Algorithm::sliding_log,
                                           Algorithm::fixed_window, Algorithm::token_bucket),
                         [](const ::testing::TestParamInfo<Algorithm>& param) {
                           return std::string(algorithm_name(param.param));
                         });

// =================================================================== batches

TEST_P(CheckScriptEveryAlgorithmTest, BatchTwoRequestsForTheSameKeyTheSecondSeesTheFirst) {
  const Zone zone = zone_under_test("client");
  const std::vector<std::vector<Verdict>> batch = check_batch(kT0, {{zone}, {zone}, {zone}});
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_TRUE(batch[0][0].allowed);
  EXPECT_EQ(batch[0][0].remaining, 1u);
  EXPECT_TRUE(batch[1][0].allowed);
  EXPECT_EQ(batch[1][0].remaining, 0u);
  EXPECT_FALSE(batch[2][0].allowed);
  // Exactly what one call per request, at the same time, answers.
  const Zone alone = zone_under_test("alone");
  for (size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(batch[i][0], check(kT0, alone)) << "request " << i;
  }
}

TEST_F(CheckScriptTest, BatchMixesAllowedAndRejectedRequests) {
  const Zone a = fixed_window(/*limit=*/1, /*window_ms=*/1000, "a");
  const Zone b = fixed_window(/*limit=*/1, /*window_ms=*/1000, "b");
  const Zone log = sliding_log(/*limit=*/2, /*window_ms=*/1000, "log");
  EXPECT_EQ(check_batch(kT0 + 200 * kMs, {{a}, {a}, {b}, {log}, {a}, {with_cost(log, 2)}, {log}}),
            (std::vector<std::vector<Verdict>>{{Allowed(1, 0, 800)},
                                               {Rejected(1, 0, 800)},
                                               {Allowed(1, 0, 800)},
                                               {Allowed(2, 1, 0)},
                                               {Rejected(1, 0, 800)},
                                               {Rejected(2, 1, 1000)},
                                               {Allowed(2, 0, 1000)}}));
  EXPECT_EQ(get("a"), "1700006400:1");
  EXPECT_EQ(get("b"), "1700006400:1");
  EXPECT_EQ(zcard("log"), 2);
}

TEST_P(CheckScriptEveryAlgorithmTest, BatchMultiZoneRequestRejectedByOneZoneIsRecordedNowhere) {
  const Zone here = zone_under_test("here");  // 2 a minute
  const Zone full = sliding_log(/*limit=*/1, /*window_ms=*/60000, "full");
  const Zone other = fixed_window(/*limit=*/10, /*window_ms=*/60000, "other");
  check(kT0, full);
  const std::vector<std::vector<Verdict>> verdicts =
      check_batch(kT0 + kSecond, {{here}, {here, full}, {other}, {other, here}});
  ASSERT_EQ(verdicts.size(), 4u);
  ASSERT_EQ(verdicts[1].size(), 2u);
  ASSERT_EQ(verdicts[3].size(), 2u);
  // 1: recorded.
  EXPECT_TRUE(verdicts[0][0].allowed);
  EXPECT_EQ(verdicts[0][0].remaining, 1u);
  // 2: `here` allows it (and sees request 1), `full` rejects it: recorded nowhere.
  EXPECT_TRUE(verdicts[1][0].allowed);
  EXPECT_EQ(verdicts[1][0].remaining, 0u);
  EXPECT_FALSE(verdicts[1][1].allowed);
  // 3: recorded.
  EXPECT_EQ(verdicts[2][0], Allowed(10, 9, 0));
  // 4: recorded in both; `here` still had the room request 2 did not take.
  EXPECT_EQ(verdicts[3][0], Allowed(10, 8, 0));
  EXPECT_TRUE(verdicts[3][1].allowed);
  EXPECT_EQ(verdicts[3][1].remaining, 0u);

  EXPECT_EQ(zcard("full"), 1);
  EXPECT_FALSE(check(kT0 + kSecond, here).allowed);
  EXPECT_EQ(check(kT0 + kSecond, other), Allowed(10, 7, 0));
}

TEST_F(CheckScriptTest, BatchReadsRedisTimeOnce) {
  ASSERT_EQ(command({"CONFIG", "RESETSTAT"})->type, REDIS_REPLY_STATUS);
  const Zone zone = sliding_log(/*limit=*/10, /*window_ms=*/60000);
  const uint64_t before = redis_time();
  const std::vector<std::vector<Verdict>> verdicts =
      check_batch(0, {{zone}, {zone}, {with_cost(zone, 2)}});
  const uint64_t after = redis_time();
  ASSERT_EQ(verdicts.size(), 3u);
  EXPECT_EQ(verdicts[2][0], Allowed(10, 6, 0));
  // Every request of the batch is at one time: entries one microsecond apart.
  std::vector<std::string> times = zrange("client");
  ASSERT_EQ(times.size(), 4u);
  EXPECT_GE(std::stoull(times[0]), before);
  EXPECT_LE(std::stoull(times[0]), after);
  for (size_t i = 1; i < times.size(); ++i) {
    EXPECT_EQ(std::stoull(times[i]), std::stoull(times[0]) + i);
  }
  Reply stats = command({"INFO", "commandstats"});
  const std::string text(stats->str, stats->len);
  EXPECT_NE(text.find("cmdstat_time:calls=3,"), std::string::npos)  // 2 are redis_time()
      << text;
}

// Random batches of up to 16 requests (a quarter of them over two zones, of
// any algorithm, often the same key, costs of 1 to 3), and the same requests
// one call each on other keys: the same verdicts, the same state in Redis.
// All in one transaction, every key persisted after each round: a script sees
// keys expire in real time, and a TTL of a millisecond would end at a
// different moment for the two.
TEST_F(CheckScriptTest, BatchDecidesAsOneCallPerRequestWould) {
  const Algorithm algorithms[] = {Algorithm::sliding_window, Algorithm::sliding_log,
                                  Algorithm::fixed_window, Algorithm::token_bucket};
  std::mt19937_64 random(20261125);
  std::vector<std::vector<Request>> batches;
  std::vector<uint64_t> times;
  std::vector<std::vector<std::string>> commands;
  std::vector<std::string> names;
  for (Algorithm algorithm : algorithms) {
    for (int client = 0; client < 3; ++client) {
      names.push_back(std::string(algorithm_name(algorithm)) + ":" + std::to_string(client));
    }
  }
  uint64_t now = kT0;
  for (int round = 0; round < 80; ++round) {
    now += random() % (300 * kMs);
    std::vector<Request> batched;
    std::vector<Request> single;
    const size_t size = 1 + random() % 16;
    for (size_t i = 0; i < size; ++i) {
      Request b, s;
      const size_t zones = random() % 4 == 0 ? 2 : 1;
      for (size_t z = 0; z < zones; ++z) {
        const Algorithm algorithm = algorithms[random() % 4];
        const std::string name =
            std::string(algorithm_name(algorithm)) + ":" + std::to_string(random() % 3);
        Zone zone = with_cost(make_zone(algorithm, /*limit=*/5, /*window_ms=*/1000, ""),
                              1 + random() % 3);
        zone.key = "batch:" + name;
        b.push_back(zone);
        zone.key = "single:" + name;
        s.push_back(zone);
      }
      batched.push_back(b);
      single.push_back(s);
    }
    commands.push_back(evalsha_args(now, batched));
    for (const Request& request : single) {
      commands.push_back(evalsha_args(now, {request}));
    }
    for (const std::string& name : names) {
      commands.push_back({"PERSIST", "batch:" + name});
      commands.push_back({"PERSIST", "single:" + name});
    }
    batches.push_back(batched);
  }
  // Then the state of every key.
  for (const std::string& name : names) {
    for (const char* prefix : {"batch:", "single:"}) {
      if (name.rfind("sliding_log", 0) == 0) {
        commands.push_back({"ZRANGE", prefix + name, "0", "-1", "WITHSCORES"});
      } else {
        commands.push_back({"GET", prefix + name});
      }
    }
  }
  Reply exec = transaction(commands);
  ASSERT_NE(exec, nullptr);

  size_t next = 0, allowed = 0, rejected = 0;
  for (size_t round = 0; round < batches.size(); ++round) {
    const std::vector<Request>& batch = batches[round];
    size_t zones = 0;
    for (const Request& request : batch) {
      zones += request.size();
    }
    const std::vector<Verdict> batched = decode(exec->element[next++], zones);
    ASSERT_EQ(batched.size(), zones);
    size_t at = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      const std::vector<Verdict> single = decode(exec->element[next++], batch[i].size());
      const std::vector<Verdict> same(batched.begin() + static_cast<std::ptrdiff_t>(at),
                                      batched.begin() +
                                          static_cast<std::ptrdiff_t>(at + batch[i].size()));
      EXPECT_EQ(same, single) << "round " << round << ", request " << i;
      at += batch[i].size();
      (same[0].allowed ? allowed : rejected)++;
    }
    next += 2 * names.size();  // the PERSISTs
  }
  for (const std::string& name : names) {
    const redisReply* batched = exec->element[next++];
    const redisReply* single = exec->element[next++];
    ASSERT_EQ(batched->type, single->type) << name;
    if (batched->type == REDIS_REPLY_STRING) {
      EXPECT_EQ(std::string(batched->str, batched->len), std::string(single->str, single->len))
          << name;
    } else if (batched->type == REDIS_REPLY_ARRAY) {
      ASSERT_EQ(batched->elements, single->elements) << name;
      for (size_t i = 0; i < batched->elements; ++i) {
        EXPECT_EQ(std::string(batched->element[i]->str, batched->element[i]->len),
                  std::string(single->element[i]->str, single->element[i]->len))
            << name;
      }
    }
  }
  EXPECT_GT(allowed, 100u);
  EXPECT_GT(rejected, 100u);
}

// A zone whose algorithm changed in a reload, in the middle of a batch: each
// request replaces the key of another type, as one call each would.
TEST_F(CheckScriptTest, BatchWithAKeyChangingAlgorithmDecidesAsOneCallPerRequestWould) {
  const std::vector<Algorithm> sequence = {
      Algorithm::fixed_window,   Algorithm::sliding_log,  Algorithm::sliding_log,
      Algorithm::token_bucket,   Algorithm::sliding_window, Algorithm::fixed_window,
      Algorithm::fixed_window,   Algorithm::sliding_log,  Algorithm::sliding_window,
      Algorithm::sliding_window, Algorithm::token_bucket};
  std::vector<Request> batch;
  std::vector<std::vector<std::string>> commands;
  for (Algorithm algorithm : sequence) {
    batch.push_back({make_zone(algorithm, /*limit=*/2, /*window_ms=*/60000, "batch")});
    commands.push_back(
        evalsha_args(kT0, {Request{make_zone(algorithm, /*limit=*/2, /*window_ms=*/60000, "single")}}));
  }
  commands.push_back(evalsha_args(kT0, batch));
  Reply exec = transaction(commands);
  ASSERT_NE(exec, nullptr);
  const std::vector<Verdict> batched = decode(exec->element[sequence.size()], sequence.size());
  ASSERT_EQ(batched.size(), sequence.size());
  for (size_t i = 0; i < sequence.size(); ++i) {
    EXPECT_EQ(batched[i], decode(exec->element[i], 1).at(0)) << "request " << i;
  }
  EXPECT_EQ(type("batch"), "string");
  EXPECT_EQ(get("batch"), get("single"));
}

TEST_F(CheckScriptTest, BatchOfMoreThanAThousandKeys) {
  std::vector<Request> batch;
  for (int i = 0; i < 1500; ++i) {
    batch.push_back({fixed_window(/*limit=*/1, /*window_ms=*/60000, "k" + std::to_string(i))});
  }
  batch.push_back({fixed_window(/*limit=*/1, /*window_ms=*/60000, "k1234")});
  std::vector<std::vector<Verdict>> verdicts = check_batch(kT0, batch);
  ASSERT_EQ(verdicts.size(), batch.size());
  for (size_t i = 0; i < 1500; ++i) {
    EXPECT_TRUE(verdicts[i][0].allowed) << i;
  }
  EXPECT_FALSE(verdicts[1500][0].allowed);  // it sees the first k1234
  verdicts = check_batch(kT0 + kSecond, batch);
  ASSERT_EQ(verdicts.size(), batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    EXPECT_FALSE(verdicts[i][0].allowed) << i;
  }
  EXPECT_EQ(integer({"DBSIZE"}), 1500);
}

}  // namespace
}  // namespace rate_guard
