// Specification of the check script (src/scripts.cpp), run by a real
// redis-server. Time is pinned through ARGV[1], in microseconds; every reply
// is written as Allowed/Rejected(limit, remaining, reset_ms).
#include "scripts.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <ostream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "redis_server.h"
#include "zone_config.h"

namespace rate_guard {
namespace {

using testing::RedisServer;

// Microseconds.
constexpr uint64_t kMs = 1000;
constexpr uint64_t kSecond = 1000 * kMs;
constexpr uint64_t kMinute = 60 * kSecond;
constexpr uint64_t kHour = 60 * kMinute;
constexpr uint64_t kDay = 24 * kHour;
// 2023-11-15T00:00:00Z: a midnight, so every window of these tests starts here.
constexpr uint64_t kT0 = 1700006400 * kSecond;

struct Zone {
  Algorithm algorithm;
  uint64_t limit;
  uint64_t window_ms;
  uint64_t burst;
  uint64_t cost;
  std::string key;
};

Zone make_zone(Algorithm algorithm, uint64_t limit, uint64_t window_ms, std::string key) {
  return Zone{algorithm, limit, window_ms, limit, 1, std::move(key)};
}
Zone sliding_log(uint64_t limit, uint64_t window_ms, std::string key = "client") {
  return make_zone(Algorithm::sliding_log, limit, window_ms, std::move(key));
}
Zone fixed_window(uint64_t limit, uint64_t window_ms, std::string key = "client") {
  return make_zone(Algorithm::fixed_window, limit, window_ms, std::move(key));
}
Zone sliding_window(uint64_t limit, uint64_t window_ms, std::string key = "client") {
  return make_zone(Algorithm::sliding_window, limit, window_ms, std::move(key));
}
Zone token_bucket(uint64_t limit, uint64_t window_ms, uint64_t burst, std::string key = "client") {
  Zone zone = make_zone(Algorithm::token_bucket, limit, window_ms, std::move(key));
  zone.burst = burst;
  return zone;
}
Zone with_cost(Zone zone, uint64_t cost) {
  zone.cost = cost;
  return zone;
}

struct Verdict {
  bool allowed = false;
  uint64_t limit = 0;
  uint64_t remaining = 0;
  uint64_t reset_ms = 0;

  bool operator==(const Verdict& other) const {
    return allowed == other.allowed && limit == other.limit && remaining == other.remaining &&
           reset_ms == other.reset_ms;
  }
};

std::ostream& operator<<(std::ostream& out, const Verdict& v) {
  return out << (v.allowed ? "Allowed(" : "Rejected(") << v.limit << ", " << v.remaining << ", "
             << v.reset_ms << ")";
}

Verdict Allowed(uint64_t limit, uint64_t remaining, uint64_t reset_ms) {
  return Verdict{true, limit, remaining, reset_ms};
}
Verdict Rejected(uint64_t limit, uint64_t remaining, uint64_t reset_ms) {
  return Verdict{false, limit, remaining, reset_ms};
}

struct ReplyFree {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

struct ContextFree {
  void operator()(redisContext* context) const { redisFree(context); }
};

// The most requests of `times` (sorted) in any half-open span [t, t + window)
// starting at or after `from`; such a span may as well start at a request.
size_t most_in_any_window(const std::vector<uint64_t>& times, uint64_t window, uint64_t from = 0) {
  size_t most = 0;
  for (size_t i = 0; i < times.size(); ++i) {
    if (times[i] < from) {
      continue;
    }
    size_t end = static_cast<size_t>(
        std::lower_bound(times.begin(), times.end(), times[i] + window) - times.begin());
    most = std::max(most, end - i);
  }
  return most;
}

class CheckScriptTest : public ::testing::Test {
 protected:
  static RedisServer& server() {
    static RedisServer instance;  // started on first use, stopped by PID at exit
    return instance;
  }

  void SetUp() override {
    if (!server().running()) {
      server().start();
    }
    redis_.reset(server().connect());
    ASSERT_NE(redis_, nullptr);
    ASSERT_EQ(command({"FLUSHALL"})->type, REDIS_REPLY_STATUS);
    Reply loaded = command({"SCRIPT", "LOAD", kCheckScript});
    ASSERT_EQ(loaded->type, REDIS_REPLY_STRING) << std::string_view(loaded->str, loaded->len);
    sha_.assign(loaded->str, loaded->len);
  }

  Reply command(const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (std::string_view arg : args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    Reply reply(static_cast<redisReply*>(redisCommandArgv(
        redis_.get(), static_cast<int>(args.size()), argv.data(), lengths.data())));
    if (reply == nullptr) {
      throw std::runtime_error(std::string("connection error: ") + redis_->errstr);
    }
    return reply;
  }

  // The EVALSHA arguments of one check.
  std::vector<std::string> evalsha_args(uint64_t now_us, const std::vector<Zone>& zones) const {
    std::vector<std::string> args = {"EVALSHA", sha_, std::to_string(zones.size())};
    for (const Zone& zone : zones) {
      args.push_back(zone.key);
    }
    args.push_back(std::to_string(now_us));
    for (const Zone& zone : zones) {
      for (uint64_t value : {static_cast<uint64_t>(zone.algorithm), zone.limit, zone.window_ms,
                             zone.burst, zone.cost}) {
        args.push_back(std::to_string(value));
      }
    }
    return args;
  }

  static std::vector<Verdict> decode(const redisReply* reply, size_t zones) {
    std::vector<Verdict> verdicts;
    if (reply->type == REDIS_REPLY_ERROR) {
      ADD_FAILURE() << "script error: " << std::string_view(reply->str, reply->len);
      return verdicts;
    }
    EXPECT_EQ(reply->type, REDIS_REPLY_ARRAY);
    EXPECT_EQ(reply->elements, 4 * zones);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 * zones) {
      return verdicts;
    }
    for (size_t i = 0; i < zones; ++i) {
      long long fields[4];
      for (size_t j = 0; j < 4; ++j) {
        const redisReply* field = reply->element[4 * i + j];
        EXPECT_EQ(field->type, REDIS_REPLY_INTEGER);
        EXPECT_GE(field->integer, 0);
        fields[j] = field->integer;
      }
      EXPECT_TRUE(fields[0] == 0 || fields[0] == 1);
      verdicts.push_back(Verdict{fields[0] == 1, static_cast<uint64_t>(fields[1]),
                                 static_cast<uint64_t>(fields[2]),
                                 static_cast<uint64_t>(fields[3])});
    }
    return verdicts;
  }

  // One request through every zone of `zones`, at `now_us`.
  std::vector<Verdict> check_all(uint64_t now_us, const std::vector<Zone>& zones) {
    std::vector<std::string> args = evalsha_args(now_us, zones);
    Reply reply = command(std::vector<std::string_view>(args.begin(), args.end()));
    return decode(reply.get(), zones.size());
  }

  Verdict check(uint64_t now_us, const Zone& zone) {
    std::vector<Verdict> verdicts = check_all(now_us, {zone});
    return verdicts.empty() ? Verdict{} : verdicts[0];
  }

  // One request at each of `times`, all in one MULTI/EXEC: Redis runs them
  // back to back with its clock stopped, so keys whose TTL is a millisecond of
  // real time (a window of 1 ms) cannot expire between them.
  std::vector<Verdict> check_in_one_transaction(const Zone& zone,
                                                const std::vector<uint64_t>& times) {
    std::vector<std::vector<std::string>> commands = {{"MULTI"}};
    for (uint64_t now_us : times) {
      commands.push_back(evalsha_args(now_us, {zone}));
    }
    commands.push_back({"EXEC"});
    for (const std::vector<std::string>& args : commands) {
      std::vector<const char*> argv;
      std::vector<size_t> lengths;
      for (const std::string& arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
      }
      redisAppendCommandArgv(redis_.get(), static_cast<int>(args.size()), argv.data(),
                             lengths.data());
    }
    Reply exec;
    for (size_t i = 0; i < commands.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(redis_.get(), &raw) != REDIS_OK) {
        ADD_FAILURE() << "connection error: " << redis_->errstr;
        return {};
      }
      exec.reset(static_cast<redisReply*>(raw));  // MULTI's OK, QUEUED..., then EXEC's array
    }
    std::vector<Verdict> verdicts;
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != times.size()) {
      ADD_FAILURE() << "EXEC did not answer an array of " << times.size();
      return verdicts;
    }
    for (size_t i = 0; i < exec->elements; ++i) {
      std::vector<Verdict> one = decode(exec->element[i], 1);
      verdicts.push_back(one.empty() ? Verdict{} : one[0]);
    }
    return verdicts;
  }

  long long integer(const std::vector<std::string_view>& args) {
    Reply reply = command(args);
    EXPECT_EQ(reply->type, REDIS_REPLY_INTEGER);
    return reply->integer;
  }
  long long pttl(std::string_view key) { return integer({"PTTL", key}); }
  bool exists(std::string_view key) { return integer({"EXISTS", key}) == 1; }
  long long zcard(std::string_view key) { return integer({"ZCARD", key}); }

  std::string hget(std::string_view key, std::string_view field) {
    Reply reply = command({"HGET", key, field});
    return reply->type == REDIS_REPLY_STRING ? std::string(reply->str, reply->len) : "(nil)";
  }

  std::vector<std::string> zrange(std::string_view key) {
    Reply reply = command({"ZRANGE", key, "0", "-1"});
    std::vector<std::string> members;
    for (size_t i = 0; i < reply->elements; ++i) {
      members.emplace_back(reply->element[i]->str, reply->element[i]->len);
    }
    return members;
  }

  // Redis's clock, in microseconds.
  uint64_t redis_time() {
    Reply reply = command({"TIME"});
    return std::stoull(reply->element[0]->str) * kSecond + std::stoull(reply->element[1]->str);
  }

  std::unique_ptr<redisContext, ContextFree> redis_;
  std::string sha_;
};

// =============================================================== sliding_log

TEST_F(CheckScriptTest, SlidingLogAllowsExactlyTheLimit) {
  const Zone zone = sliding_log(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, zone), Allowed(3, 2, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, zone), Allowed(3, 1, 0));
  // Nothing left: the next request passes when the first leaves, at kT0 + 1 s.
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Allowed(3, 0, 800));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(3, 0, 700));
}

TEST_F(CheckScriptTest, SlidingLogRejectedRequestConsumesNoQuota) {
  const Zone zone = sliding_log(/*limit=*/3, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + 200 * kMs, zone);
  // A client hammering every 50 ms is let through as soon as the first request
  // leaves the window, not kept out by its own rejected requests.
  for (uint64_t t = kT0 + 250 * kMs; t < kT0 + kSecond; t += 50 * kMs) {
    EXPECT_EQ(check(t, zone), Rejected(3, 0, (kT0 + kSecond - t) / kMs)) << "at +" << (t - kT0);
  }
  EXPECT_EQ(zcard("client"), 3);
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(3, 0, 100));
}

TEST_F(CheckScriptTest, SlidingLogRequestOneWindowLaterIsJudgedWithoutTheFirst) {
  const Zone zone = sliding_log(/*limit=*/2, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 400 * kMs, zone);
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(2, 0, 400));
}

TEST_F(CheckScriptTest, SlidingLogRequestOneMicrosecondBeforeAWindowLaterStillSeesTheFirst) {
  const Zone zone = sliding_log(/*limit=*/2, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 400 * kMs, zone);
  EXPECT_EQ(check(kT0 + kSecond - 1, zone), Rejected(2, 0, 1));
}

TEST_F(CheckScriptTest, SlidingLogLimitOneAllowsOneRequestPerWindow) {
  const Zone zone = sliding_log(/*limit=*/1, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(1, 0, 1000));
  EXPECT_EQ(check(kT0 + 301 * kMs, zone), Rejected(1, 0, 999));
  EXPECT_EQ(check(kT0 + 1300 * kMs, zone), Allowed(1, 0, 1000));
}

TEST_F(CheckScriptTest, SlidingLogCostCountsTheRequestCostTimes) {
  const Zone zone = sliding_log(/*limit=*/5, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Allowed(5, 3, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, with_cost(zone, 2)), Allowed(5, 1, 0));
  // 4 + 2 > 5: it fits once the oldest entry leaves, at kT0 + 1 s.
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 2)), Rejected(5, 1, 800));
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Allowed(5, 0, 800));
  EXPECT_EQ(zcard("client"), 5);
}

TEST_F(CheckScriptTest, SlidingLogRecordsACostOfThreeAsThreeConsecutiveMicroseconds) {
  const Zone zone = sliding_log(/*limit=*/5, /*window_ms=*/1000);
  check(kT0, with_cost(zone, 3));
  // The next request's entries follow the last one even at the same time.
  check(kT0, with_cost(zone, 2));
  EXPECT_EQ(zrange("client"),
            (std::vector<std::string>{std::to_string(kT0), std::to_string(kT0 + 1),
                                      std::to_string(kT0 + 2), std::to_string(kT0 + 3),
                                      std::to_string(kT0 + 4)}));
  // So they leave the window one microsecond apart: one is gone at kT0 + 1 s.
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(5, 0, 1));
  EXPECT_EQ(check(kT0 + kSecond, zone), Rejected(5, 0, 1));
}

TEST_F(CheckScriptTest, SlidingLogCostAboveTheLimitIsRejectedForAWindow) {
  const Zone zone = sliding_log(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 4)), Rejected(3, 3, 1000));
  EXPECT_FALSE(exists("client"));
  EXPECT_EQ(check(kT0, with_cost(zone, 3)), Allowed(3, 0, 1000));
}

TEST_F(CheckScriptTest, SlidingLogWindowOfADay) {
  const Zone zone = sliding_log(/*limit=*/2, /*window_ms=*/86400000);
  EXPECT_EQ(check(kT0, zone), Allowed(2, 1, 0));
  EXPECT_EQ(check(kT0 + kHour, zone), Allowed(2, 0, 23 * 3600000));
  EXPECT_EQ(check(kT0 + 23 * kHour, zone), Rejected(2, 0, 3600000));
  EXPECT_EQ(check(kT0 + kDay - 1, zone), Rejected(2, 0, 1));
  EXPECT_EQ(check(kT0 + kDay, zone), Allowed(2, 0, 3600000));
}

TEST_F(CheckScriptTest, SlidingLogWindowOfAMillisecond) {
  const Zone zone = sliding_log(/*limit=*/2, /*window_ms=*/1);
  EXPECT_EQ(check_in_one_transaction(
                zone, {kT0, kT0 + 500, kT0 + 999, kT0 + 1000, kT0 + 1499, kT0 + 1500}),
            (std::vector<Verdict>{Allowed(2, 1, 0), Allowed(2, 0, 1), Rejected(2, 0, 1),
                                  Allowed(2, 0, 1), Rejected(2, 0, 1), Allowed(2, 0, 1)}));
}

TEST_F(CheckScriptTest, SlidingLogKeyLivesOneWindowFromItsNewestEntry) {
  const Zone zone = sliding_log(/*limit=*/10, /*window_ms=*/60000);
  check(kT0, zone);
  EXPECT_GT(pttl("client"), 59000);
  EXPECT_LE(pttl("client"), 60000);
  check(kT0 + 30 * kSecond, zone);
  EXPECT_GT(pttl("client"), 59000);
  EXPECT_LE(pttl("client"), 60000);
}

TEST_F(CheckScriptTest, SlidingLogDropsEntriesThatLeftTheWindow) {
  const Zone zone = sliding_log(/*limit=*/10, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + kSecond, zone);
  EXPECT_EQ(zrange("client"), (std::vector<std::string>{std::to_string(kT0 + 100 * kMs),
                                                        std::to_string(kT0 + kSecond)}));
}

TEST_F(CheckScriptTest, SlidingLogRecordsRedisTimeWhenArgvTimeIsZero) {
  const uint64_t before = redis_time();
  EXPECT_TRUE(check(0, sliding_log(/*limit=*/1, /*window_ms=*/60000)).allowed);
  const uint64_t after = redis_time();
  std::vector<std::string> times = zrange("client");
  ASSERT_EQ(times.size(), 1u);
  EXPECT_GE(std::stoull(times[0]), before);
  EXPECT_LE(std::stoull(times[0]), after);
}

// ============================================================== fixed_window

TEST_F(CheckScriptTest, FixedWindowAllowsExactlyTheLimit) {
  const Zone zone = fixed_window(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, zone), Allowed(3, 2, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, zone), Allowed(3, 1, 0));
  // Nothing left: the next request passes when the window ends, at kT0 + 1 s.
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Allowed(3, 0, 800));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(3, 0, 700));
}

TEST_F(CheckScriptTest, FixedWindowRejectedRequestConsumesNoQuota) {
  const Zone zone = fixed_window(/*limit=*/3, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + 200 * kMs, zone);
  for (uint64_t t = kT0 + 250 * kMs; t < kT0 + kSecond; t += 50 * kMs) {
    EXPECT_EQ(check(t, zone), Rejected(3, 0, (kT0 + kSecond - t) / kMs)) << "at +" << (t - kT0);
  }
  EXPECT_EQ(hget("client", "count"), "3");
  // The next window starts with the whole limit.
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(3, 2, 0));
}

TEST_F(CheckScriptTest, FixedWindowRequestOneWindowLaterIsInTheNextWindow) {
  const Zone zone = fixed_window(/*limit=*/1, /*window_ms=*/1000);
  check(kT0, zone);
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(1, 0, 1000));
}

TEST_F(CheckScriptTest, FixedWindowRequestOneMicrosecondBeforeTheWindowEndsIsInIt) {
  const Zone zone = fixed_window(/*limit=*/1, /*window_ms=*/1000);
  check(kT0, zone);
  EXPECT_EQ(check(kT0 + kSecond - 1, zone), Rejected(1, 0, 1));
}

TEST_F(CheckScriptTest, FixedWindowCountsAlignedWindowsSoTwoLimitsCanMeetAtTheEdge) {
  const Zone zone = fixed_window(/*limit=*/2, /*window_ms=*/1000);
  // In one transaction: the key's TTL is the 1 ms left in its window.
  EXPECT_EQ(check_in_one_transaction(
                zone, {kT0 + 999 * kMs, kT0 + 999 * kMs, kT0 + kSecond, kT0 + kSecond}),
            (std::vector<Verdict>{Allowed(2, 1, 0), Allowed(2, 0, 1), Allowed(2, 1, 0),
                                  Allowed(2, 0, 1000)}));
}

TEST_F(CheckScriptTest, FixedWindowLimitOneAllowsOneRequestPerWindow) {
  const Zone zone = fixed_window(/*limit=*/1, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(1, 0, 700));
  EXPECT_EQ(check(kT0 + 301 * kMs, zone), Rejected(1, 0, 699));
  EXPECT_EQ(check(kT0 + 1300 * kMs, zone), Allowed(1, 0, 700));
}

TEST_F(CheckScriptTest, FixedWindowCostCountsTheRequestCostTimes) {
  const Zone zone = fixed_window(/*limit=*/5, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Allowed(5, 3, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, with_cost(zone, 2)), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 2)), Rejected(5, 1, 800));
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Allowed(5, 0, 800));
  EXPECT_EQ(hget("client", "count"), "5");
}

TEST_F(CheckScriptTest, FixedWindowCostAboveTheLimitIsRejectedForAWindow) {
  const Zone zone = fixed_window(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 4)), Rejected(3, 3, 1000));
  EXPECT_FALSE(exists("client"));
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 3)), Allowed(3, 0, 800));
}

TEST_F(CheckScriptTest, FixedWindowWindowOfADay) {
  const Zone zone = fixed_window(/*limit=*/2, /*window_ms=*/86400000);
  EXPECT_EQ(check(kT0 + kHour, zone), Allowed(2, 1, 0));
  EXPECT_EQ(check(kT0 + 2 * kHour, zone), Allowed(2, 0, 22 * 3600000));
  EXPECT_EQ(check(kT0 + 23 * kHour, zone), Rejected(2, 0, 3600000));
  EXPECT_EQ(check(kT0 + kDay, zone), Allowed(2, 1, 0));
}

TEST_F(CheckScriptTest, FixedWindowWindowOfAMillisecond) {
  const Zone zone = fixed_window(/*limit=*/2, /*window_ms=*/1);
  EXPECT_EQ(check_in_one_transaction(zone, {kT0, kT0 + 500, kT0 + 999, kT0 + 1000, kT0 + 1999}),
            (std::vector<Verdict>{Allowed(2, 1, 0), Allowed(2, 0, 1), Rejected(2, 0, 1),
                                  Allowed(2, 1, 0), Allowed(2, 0, 1)}));
}

TEST_F(CheckScriptTest, FixedWindowKeyLivesUntilItsWindowEnds) {
  const Zone zone = fixed_window(/*limit=*/10, /*window_ms=*/60000);
  check(kT0 + 15 * kSecond, zone);
  EXPECT_GT(pttl("client"), 44000);
  EXPECT_LE(pttl("client"), 45000);
}

// ============================================================ sliding_window

TEST_F(CheckScriptTest, SlidingWindowAllowsExactlyTheLimit) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, zone), Allowed(3, 2, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, zone), Allowed(3, 1, 0));
  // Nothing left. In the next window the 3 weigh 3 * (1 - elapsed/1 s); one
  // more fits when that reaches 2, at kT0 + 1 s + 333.334 ms.
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Allowed(3, 0, 1134));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(3, 0, 1034));
}

TEST_F(CheckScriptTest, SlidingWindowRejectedRequestConsumesNoQuota) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + 200 * kMs, zone);
  for (uint64_t t = kT0 + 300 * kMs; t <= kT0 + 1300 * kMs; t += 100 * kMs) {
    EXPECT_FALSE(check(t, zone).allowed) << "at +" << (t - kT0);
  }
  EXPECT_EQ(hget("client", "current"), "3");
  EXPECT_EQ(check(kT0 + 1300 * kMs, zone), Rejected(3, 0, 34));
  // 3 * 0.6 + 1 <= 3; then 1 more fits at kT0 + 1 s + 666.667 ms.
  EXPECT_EQ(check(kT0 + 1400 * kMs, zone), Allowed(3, 0, 267));
}

TEST_F(CheckScriptTest, SlidingWindowRejectionResetIsWhenTheRequestPasses) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + 200 * kMs, zone);
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(3, 0, 1034));
  EXPECT_EQ(check(kT0 + 1333 * kMs + 333, zone), Rejected(3, 0, 1));
  EXPECT_EQ(check(kT0 + 1333 * kMs + 334, zone).allowed, true);
}

TEST_F(CheckScriptTest, SlidingWindowWeighsThePreviousWindowByItsOverlap) {
  const Zone zone = sliding_window(/*limit=*/10, /*window_ms=*/1000);
  for (int i = 0; i < 10; ++i) {
    check(kT0 + 100 * kMs * static_cast<uint64_t>(i), zone);
  }
  // 250 ms into the next window the previous 10 weigh 7.5: estimate 7.5 + 1.
  EXPECT_EQ(check(kT0 + 1250 * kMs, zone), Allowed(10, 1, 0));
  // 500 ms in: 5 + 1 (the previous request) + 1.
  EXPECT_EQ(check(kT0 + 1500 * kMs, zone), Allowed(10, 3, 0));
}

TEST_F(CheckScriptTest, SlidingWindowRequestOneWindowLaterSeesTheFirstWeighedByItsOverlap) {
  const Zone zone = sliding_window(/*limit=*/2, /*window_ms=*/1000);
  check(kT0 + 500 * kMs, zone);
  check(kT0 + 500 * kMs, zone);
  // Exactly one window later the 2 weigh 1 (half the window overlaps): 1 + 1 <= 2.
  EXPECT_EQ(check(kT0 + 1500 * kMs, zone), Allowed(2, 0, 500));
}

TEST_F(CheckScriptTest, SlidingWindowRequestOneMicrosecondBeforeAWindowLaterIsRejected) {
  const Zone zone = sliding_window(/*limit=*/2, /*window_ms=*/1000);
  check(kT0 + 500 * kMs, zone);
  check(kT0 + 500 * kMs, zone);
  // 2 * 0.500001 + 1 > 2, until 1 µs later.
  EXPECT_EQ(check(kT0 + 1500 * kMs - 1, zone), Rejected(2, 0, 1));
}

TEST_F(CheckScriptTest, SlidingWindowCountMovesToPreviousAtTheWindowBoundary) {
  const Zone zone = sliding_window(/*limit=*/1, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0 + kSecond - 1, zone), Allowed(1, 0, 1001));
  // At the boundary the request weighs 1 as the previous window's count...
  EXPECT_EQ(check(kT0 + kSecond, zone), Rejected(1, 0, 1000));
  // ...and fades to nothing by the end of that window.
  EXPECT_EQ(check(kT0 + 2 * kSecond - 1, zone), Rejected(1, 0, 1));
  EXPECT_EQ(check(kT0 + 2 * kSecond, zone), Allowed(1, 0, 2000));
}

TEST_F(CheckScriptTest, SlidingWindowLimitOneWaitsForThePreviousCountToFade) {
  const Zone zone = sliding_window(/*limit=*/1, /*window_ms=*/1000);
  // After a request, any weight of it in the estimate leaves no room for
  // another: the next passes when the following window has ended.
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(1, 0, 1700));
  EXPECT_EQ(check(kT0 + 1300 * kMs, zone), Rejected(1, 0, 700));
  EXPECT_EQ(check(kT0 + 2 * kSecond, zone), Allowed(1, 0, 2000));
}

TEST_F(CheckScriptTest, SlidingWindowCostCountsTheRequestCostTimes) {
  const Zone zone = sliding_window(/*limit=*/5, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Allowed(5, 3, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, with_cost(zone, 2)), Allowed(5, 1, 0));
  // 4 + 2 > 5 here; in the next window 4 * (1 - elapsed/1 s) + 2 <= 5 from 250 ms.
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 2)), Rejected(5, 1, 1050));
  EXPECT_EQ(check(kT0 + 1249 * kMs, with_cost(zone, 2)), Rejected(5, 1, 1));
  // 3 + 2 <= 5; then 4 * (1 - elapsed) + 2 + 1 <= 5 from 500 ms.
  EXPECT_EQ(check(kT0 + 1250 * kMs, with_cost(zone, 2)), Allowed(5, 0, 250));
  EXPECT_EQ(hget("client", "current"), "2");
  EXPECT_EQ(hget("client", "previous"), "4");
}

TEST_F(CheckScriptTest, SlidingWindowCostAboveTheLimitIsRejectedForAWindow) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 4)), Rejected(3, 3, 1000));
  EXPECT_FALSE(exists("client"));
  EXPECT_EQ(check(kT0, with_cost(zone, 3)), Allowed(3, 0, 1334));
}

TEST_F(CheckScriptTest, SlidingWindowWindowOfADay) {
  const Zone zone = sliding_window(/*limit=*/2, /*window_ms=*/86400000);
  EXPECT_EQ(check(kT0 + kHour, zone), Allowed(2, 1, 0));
  // The 2 weigh 1 at noon of the next day: 34 h from 02:00.
  EXPECT_EQ(check(kT0 + 2 * kHour, zone), Allowed(2, 0, 34 * 3600000));
  EXPECT_EQ(check(kT0 + kDay + 12 * kHour - 1, zone), Rejected(2, 0, 1));
  EXPECT_EQ(check(kT0 + kDay + 12 * kHour, zone), Allowed(2, 0, 12 * 3600000));
}

TEST_F(CheckScriptTest, SlidingWindowWindowOfAMillisecond) {
  const Zone zone = sliding_window(/*limit=*/2, /*window_ms=*/1);
  EXPECT_EQ(check_in_one_transaction(zone, {kT0, kT0 + 500, kT0 + 999, kT0 + 1499, kT0 + 1500}),
            (std::vector<Verdict>{Allowed(2, 1, 0), Allowed(2, 0, 1), Rejected(2, 0, 1),
                                  Rejected(2, 0, 1), Allowed(2, 0, 1)}));
}

TEST_F(CheckScriptTest, SlidingWindowKeyLivesUntilTheNextWindowEnds) {
  const Zone zone = sliding_window(/*limit=*/10, /*window_ms=*/60000);
  check(kT0 + 15 * kSecond, zone);
  EXPECT_GT(pttl("client"), 104000);
  EXPECT_LE(pttl("client"), 105000);
}

// A client sending one request every 2.22 s (4.5 times the rate of 10 per
// 60 s) for ten windows, starting half way into an aligned window (phase
// φ = 0.5), through sliding_window and, for reference, sliding_log.
//
// Bound. A window [t, t + 60 s) overlaps two aligned windows n-1 and n, and
// holds current_n(e) plus the requests of window n-1 after e, where e is t's
// elapsed time. The script admits a request in window n only if
// previous * (W - e)/W + current + 1 <= limit. Window 0 has no previous count:
// it admits its 10 at once, from φ onward. Just before e = φ in window 1,
// all 10 are still inside, and current < 10 - 10 + 10 φ, so the total stays
// below limit * (1 + φ) = 15: at most 14. Later, the previous window's
// admissions were spread by that same rule and the estimate is right to
// within one request of rounding: at most limit + 1 = 11. Simulated over 6000
// random steady streams: never above max(limit + 1, ceil(limit * (1 + φ)) - 1).
TEST_F(CheckScriptTest, SlidingWindowOvershootOnASteadyStreamStaysWithinItsBound) {
  const uint64_t window = kMinute;
  const Zone approximate = sliding_window(/*limit=*/10, /*window_ms=*/60000, "sw");
  const Zone exact = sliding_log(/*limit=*/10, /*window_ms=*/60000, "log");
  const uint64_t start = kT0 + 30 * kSecond;
  std::vector<uint64_t> passed_sw;
  std::vector<uint64_t> passed_log;
  for (uint64_t t = start; t < start + 10 * window; t += 2220 * kMs) {
    if (check(t, approximate).allowed) {
      passed_sw.push_back(t);
    }
    if (check(t, exact).allowed) {
      passed_log.push_back(t);
    }
  }
  const size_t worst_sw = most_in_any_window(passed_sw, window);
  const size_t steady_sw = most_in_any_window(passed_sw, window, kT0 + 2 * window);
  RecordProperty("sliding_window_worst", static_cast<int>(worst_sw));
  RecordProperty("sliding_window_steady", static_cast<int>(steady_sw));
  RecordProperty("sliding_window_admitted", static_cast<int>(passed_sw.size()));
  RecordProperty("sliding_log_admitted", static_cast<int>(passed_log.size()));

  EXPECT_EQ(most_in_any_window(passed_log, window), 10u);
  EXPECT_GT(worst_sw, 10u);  // the approximation does overshoot here
  EXPECT_LE(worst_sw, 14u);
  EXPECT_LE(steady_sw, 11u);
  // Over the ten windows it admits no more than the exact log (96 against 100).
  EXPECT_LE(passed_sw.size(), passed_log.size());
  EXPECT_GE(passed_sw.size(), passed_log.size() - 10);
}

// ============================================================== token_bucket

TEST_F(CheckScriptTest, TokenBucketAllowsABurstOfExactlyBurst) {
  // 10 per second: a token every 100 ms, up to 5 saved.
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  EXPECT_EQ(check(kT0, zone), Allowed(5, 4, 0));
  EXPECT_EQ(check(kT0, zone), Allowed(5, 3, 0));
  EXPECT_EQ(check(kT0, zone), Allowed(5, 2, 0));
  EXPECT_EQ(check(kT0, zone), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0, zone), Allowed(5, 0, 100));
  EXPECT_EQ(check(kT0, zone), Rejected(5, 0, 100));
}

TEST_F(CheckScriptTest, TokenBucketRejectedRequestConsumesNoQuota) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  for (int i = 0; i < 5; ++i) {
    check(kT0, zone);
  }
  // Hammering every 10 ms, the client still gets exactly a token per 100 ms.
  int passed = 0;
  for (uint64_t t = kT0 + 10 * kMs; t <= kT0 + kSecond; t += 10 * kMs) {
    Verdict verdict = check(t, zone);
    passed += verdict.allowed;
    EXPECT_EQ(verdict.allowed, (t - kT0) % (100 * kMs) == 0) << "at +" << (t - kT0);
  }
  EXPECT_EQ(passed, 10);
}

TEST_F(CheckScriptTest, TokenBucketRefillsOneTokenPerEmissionInterval) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  for (int i = 0; i < 5; ++i) {
    check(kT0, zone);
  }
  // 300 ms later, 3 tokens are back.
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(5, 2, 0));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(5, 0, 100));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(5, 0, 100));
}

TEST_F(CheckScriptTest, TokenBucketCountsOnlyWholeTokens) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  for (int i = 0; i < 5; ++i) {
    check(kT0, zone);
  }
  // 2.99 tokens are back: 2 whole ones.
  EXPECT_EQ(check(kT0 + 299 * kMs, zone), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0 + 299 * kMs, zone), Allowed(5, 0, 1));
}

TEST_F(CheckScriptTest, TokenBucketNeverHoldsMoreThanBurst) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  check(kT0, zone);
  // An hour idle earns 5 tokens, not 36000.
  for (uint64_t remaining : {4, 3, 2, 1}) {
    EXPECT_EQ(check(kT0 + kHour, zone), Allowed(5, remaining, 0));
  }
  EXPECT_EQ(check(kT0 + kHour, zone), Allowed(5, 0, 100));
  EXPECT_EQ(check(kT0 + kHour, zone), Rejected(5, 0, 100));
}

TEST_F(CheckScriptTest, TokenBucketRequestOneWindowLaterPassesWithLimitOne) {
  const Zone zone = token_bucket(/*limit=*/1, /*window_ms=*/1000, /*burst=*/1);
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(1, 0, 1000));
  EXPECT_EQ(check(kT0 + 1300 * kMs, zone), Allowed(1, 0, 1000));
}

TEST_F(CheckScriptTest, TokenBucketRequestOneMicrosecondBeforeAWindowLaterIsRejected) {
  const Zone zone = token_bucket(/*limit=*/1, /*window_ms=*/1000, /*burst=*/1);
  check(kT0 + 300 * kMs, zone);
  EXPECT_EQ(check(kT0 + 1300 * kMs - 1, zone), Rejected(1, 0, 1));
}

TEST_F(CheckScriptTest, TokenBucketCostTakesThatManyTokens) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Allowed(5, 3, 0));
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Rejected(5, 1, 100));
  EXPECT_EQ(check(kT0, zone), Allowed(5, 0, 100));
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 2)), Allowed(5, 0, 100));
}

TEST_F(CheckScriptTest, TokenBucketCostAboveTheBurstIsRejectedForAWindow) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/1000, /*burst=*/5);
  EXPECT_EQ(check(kT0, with_cost(zone, 6)), Rejected(5, 5, 1000));
  EXPECT_FALSE(exists("client"));
  EXPECT_EQ(check(kT0, with_cost(zone, 5)), Allowed(5, 0, 100));
}

TEST_F(CheckScriptTest, TokenBucketCostAboveTheRatePassesWithinTheBurst) {
  // 2 per second, up to 5 saved: a cost of 4 is more than a window's worth.
  const Zone zone = token_bucket(/*limit=*/2, /*window_ms=*/1000, /*burst=*/5);
  EXPECT_EQ(check(kT0, with_cost(zone, 4)), Allowed(5, 1, 0));
  EXPECT_EQ(check(kT0, with_cost(zone, 4)), Rejected(5, 1, 1500));
}

TEST_F(CheckScriptTest, TokenBucketWindowOfADay) {
  // 24 a day: a token an hour, up to 2 saved.
  const Zone zone = token_bucket(/*limit=*/24, /*window_ms=*/86400000, /*burst=*/2);
  EXPECT_EQ(check(kT0, zone), Allowed(2, 1, 0));
  EXPECT_EQ(check(kT0, zone), Allowed(2, 0, 3600000));
  EXPECT_EQ(check(kT0 + 30 * kMinute, zone), Rejected(2, 0, 1800000));
  EXPECT_EQ(check(kT0 + kHour - 1, zone), Rejected(2, 0, 1));
  EXPECT_EQ(check(kT0 + kHour, zone), Allowed(2, 0, 3600000));
}

TEST_F(CheckScriptTest, TokenBucketWindowOfAMillisecond) {
  const Zone zone = token_bucket(/*limit=*/1, /*window_ms=*/1, /*burst=*/1);
  EXPECT_EQ(check_in_one_transaction(zone, {kT0, kT0 + 999, kT0 + 1000, kT0 + 1500, kT0 + 2000}),
            (std::vector<Verdict>{Allowed(1, 0, 1), Rejected(1, 0, 1), Allowed(1, 0, 1),
                                  Rejected(1, 0, 1), Allowed(1, 0, 1)}));
}

TEST_F(CheckScriptTest, TokenBucketKeepsAFractionalEmissionIntervalExact) {
  // 3 per second: a token every 333333.33 µs. Three requests make exactly 1 s.
  const Zone zone = token_bucket(/*limit=*/3, /*window_ms=*/1000, /*burst=*/3);
  check(kT0, zone);
  EXPECT_EQ(hget("client", "tat"), std::to_string(kT0 + 333333));
  EXPECT_EQ(hget("client", "rem"), "1");  // and 1/3 µs
  check(kT0, zone);
  check(kT0, zone);
  EXPECT_EQ(hget("client", "tat"), std::to_string(kT0 + kSecond));
  EXPECT_EQ(hget("client", "rem"), "0");
  EXPECT_EQ(check(kT0 + 333333, zone), Rejected(3, 0, 1));
  EXPECT_EQ(check(kT0 + 333334, zone), Allowed(3, 0, 334));
}

TEST_F(CheckScriptTest, TokenBucketMeasuresSubMicrosecondEmissionIntervals) {
  // 2 million per second: a token every 0.5 µs, up to a million saved.
  const Zone zone = token_bucket(/*limit=*/2000000, /*window_ms=*/1000, /*burst=*/1000000);
  EXPECT_EQ(check(kT0, with_cost(zone, 1000000)), Allowed(1000000, 0, 1));
  EXPECT_EQ(check(kT0, zone), Rejected(1000000, 0, 1));
  // 1 µs later exactly 2 tokens are back.
  EXPECT_EQ(check(kT0 + 1, with_cost(zone, 3)), Rejected(1000000, 2, 1));
  EXPECT_EQ(check(kT0 + 1, with_cost(zone, 2)), Allowed(1000000, 0, 1));
}

TEST_F(CheckScriptTest, TokenBucketKeyLivesUntilTheBucketIsFull) {
  const Zone zone = token_bucket(/*limit=*/10, /*window_ms=*/60000, /*burst=*/10);
  for (int i = 0; i < 10; ++i) {
    check(kT0, zone);
  }
  EXPECT_GT(pttl("client"), 59000);
  EXPECT_LE(pttl("client"), 60000);
}

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
  Reply dump = command({"TYPE", "client"});
  std::vector<std::string> values;
  if (std::string_view(dump->str, dump->len) == "zset") {
    Reply all = command({"ZRANGE", "client", "0", "-1", "WITHSCORES"});
    for (size_t i = 0; i < all->elements; ++i) {
      values.emplace_back(all->element[i]->str, all->element[i]->len);
    }
  } else {
    Reply all = command({"HVALS", "client"});
    for (size_t i = 0; i < all->elements; ++i) {
      values.emplace_back(all->element[i]->str, all->element[i]->len);
    }
  }
  ASSERT_FALSE(values.empty());
  for (const std::string& value : values) {
    EXPECT_EQ(value.find_first_not_of("0123456789"), std::string::npos) << value;
  }
}

TEST_P(CheckScriptEveryAlgorithmTest, TimeZeroMeansRedisTime) {
  const Zone zone = make_zone(GetParam(), /*limit=*/1, /*window_ms=*/86400000, "client");
  EXPECT_TRUE(check(0, zone).allowed);
  EXPECT_FALSE(check(0, zone).allowed);
}

TEST_P(CheckScriptEveryAlgorithmTest, ReplacesAKeyLeftByAnotherAlgorithm) {
  Zone zone = zone_under_test("client");
  zone.algorithm =
      GetParam() == Algorithm::sliding_log ? Algorithm::fixed_window : Algorithm::sliding_log;
  check(kT0, with_cost(zone, 2));
  EXPECT_EQ(check(kT0, zone_under_test("client")), Allowed(2, 1, 0));
}

INSTANTIATE_TEST_SUITE_P(CheckScript, CheckScriptEveryAlgorithmTest,
                         ::testing::Values(Algorithm::sliding_window, Algorithm::sliding_log,
                                           Algorithm::fixed_window, Algorithm::token_bucket),
                         [](const ::testing::TestParamInfo<Algorithm>& param) {
                           return std::string(algorithm_name(param.param));
                         });

// ==================================================================== errors

TEST_F(CheckScriptTest, UnknownAlgorithmIsAnErrorReply) {
  Reply reply = command({"EVALSHA", sha_, "1", "client", "0", "7", "10", "1000", "10", "1"});
  EXPECT_EQ(reply->type, REDIS_REPLY_ERROR);
  EXPECT_FALSE(exists("client"));
}

TEST_F(CheckScriptTest, ZeroWindowIsAnErrorReply) {
  Reply reply = command({"EVALSHA", sha_, "1", "client", "0", "1", "10", "0", "10", "1"});
  EXPECT_EQ(reply->type, REDIS_REPLY_ERROR);
}

}  // namespace
}  // namespace rate_guard
