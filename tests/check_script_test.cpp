// Specification of the check script (src/scripts.cpp), run by a real
// redis-server. Time is pinned through ARGV[1], in microseconds; every reply
// is written as Allowed/Rejected(limit, remaining, reset_ms). Most tests send
// one request per call; the Batch tests send several.
#include "scripts.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <ostream>
#include <random>
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

// One request: every zone it is checked in.
using Request = std::vector<Zone>;

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

  // The EVALSHA arguments of one call checking `requests`, in order (the
  // layout of scripts.h).
  std::vector<std::string> evalsha_args(uint64_t now_us,
                                        const std::vector<Request>& requests) const {
    size_t keys = 0;
    for (const Request& request : requests) {
      keys += request.size();
    }
    std::vector<std::string> args = {"EVALSHA", sha_, std::to_string(keys)};
    for (const Request& request : requests) {
      for (const Zone& zone : request) {
        args.push_back(zone.key);
      }
    }
    args.push_back(std::to_string(now_us));
    args.push_back(std::to_string(requests.size()));
    for (const Request& request : requests) {
      args.push_back(std::to_string(request.size()));
      for (const Zone& zone : request) {
        for (uint64_t value : {static_cast<uint64_t>(zone.algorithm), zone.limit,
                               zone.window_ms, zone.burst, zone.cost}) {
          args.push_back(std::to_string(value));
        }
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

  // Every request of `requests` in one call at `now_us`: the verdicts of each.
  std::vector<std::vector<Verdict>> check_batch(uint64_t now_us,
                                                const std::vector<Request>& requests) {
    std::vector<std::string> args = evalsha_args(now_us, requests);
    Reply reply = command(std::vector<std::string_view>(args.begin(), args.end()));
    size_t zones = 0;
    for (const Request& request : requests) {
      zones += request.size();
    }
    std::vector<Verdict> all = decode(reply.get(), zones);
    std::vector<std::vector<Verdict>> verdicts;
    if (all.size() != zones) {
      return verdicts;
    }
    size_t next = 0;
    for (const Request& request : requests) {
      verdicts.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(next),
                            all.begin() + static_cast<std::ptrdiff_t>(next + request.size()));
      next += request.size();
    }
    return verdicts;
  }

  // One request through every zone of `zones`, at `now_us`.
  std::vector<Verdict> check_all(uint64_t now_us, const Request& zones) {
    std::vector<std::vector<Verdict>> verdicts = check_batch(now_us, {zones});
    return verdicts.empty() ? std::vector<Verdict>{} : verdicts[0];
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
    std::vector<std::vector<std::string>> commands;
    for (uint64_t now_us : times) {
      commands.push_back(evalsha_args(now_us, {Request{zone}}));
    }
    Reply exec = transaction(commands);
    std::vector<Verdict> verdicts;
    if (exec == nullptr) {
      return verdicts;
    }
    for (size_t i = 0; i < exec->elements; ++i) {
      std::vector<Verdict> one = decode(exec->element[i], 1);
      verdicts.push_back(one.empty() ? Verdict{} : one[0]);
    }
    return verdicts;
  }

  // Every command of `commands` in one MULTI/EXEC, so that Redis runs them
  // with its clock stopped: no key expires in between. EXEC's array of their
  // replies, or nullptr.
  Reply transaction(std::vector<std::vector<std::string>> commands) {
    commands.insert(commands.begin(), std::vector<std::string>{"MULTI"});
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
        return nullptr;
      }
      exec.reset(static_cast<redisReply*>(raw));  // MULTI's OK, QUEUED..., then EXEC's array
    }
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != commands.size() - 2) {
      ADD_FAILURE() << "EXEC did not answer an array of " << commands.size() - 2;
      return nullptr;
    }
    return exec;
  }

  long long integer(const std::vector<std::string_view>& args) {
    Reply reply = command(args);
    EXPECT_EQ(reply->type, REDIS_REPLY_INTEGER);
    return reply->integer;
  }
  long long pttl(std::string_view key) { return integer({"PTTL", key}); }
  bool exists(std::string_view key) { return integer({"EXISTS", key}) == 1; }
  long long zcard(std::string_view key) { return integer({"ZCARD", key}); }

  // The string value of a key (the state of sliding_window, fixed_window and
  // token_bucket), "(nil)" when none, "(error)" for another type.
  std::string get(std::string_view key) {
    Reply reply = command({"GET", key});
    if (reply->type == REDIS_REPLY_STRING) {
      return std::string(reply->str, reply->len);
    }
    return reply->type == REDIS_REPLY_NIL ? "(nil)" : "(error)";
  }

  std::string type(std::string_view key) {
    Reply reply = command({"TYPE", key});
    return std::string(reply->str, reply->len);
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

TEST_F(CheckScriptTest, SlidingLogCostOfAThousandIsRecordedInFull) {
  const Zone zone = sliding_log(/*limit=*/1000, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 1000)), Allowed(1000, 0, 1000));
  const std::vector<std::string> times = zrange("client");
  ASSERT_EQ(times.size(), 1000u);
  EXPECT_EQ(times.front(), std::to_string(kT0));
  EXPECT_EQ(times.back(), std::to_string(kT0 + 999));
  // The first entry has left: one more fits, the next a microsecond later.
  EXPECT_EQ(check(kT0 + kSecond, zone), Allowed(1000, 0, 1));
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
  // "index:count", the index of the window [kT0, kT0 + 1 s) being kT0 / 1 s.
  EXPECT_EQ(get("client"), "1700006400:3");
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
  EXPECT_EQ(get("client"), "1700006400:5");
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

// The window's first request sets the TTL, to the window's end; the next ones
// keep it (SET ... KEEPTTL): on Redis's clock, the same end. Here the pinned
// clock moves on 15 s and Redis's does not: the TTL stays.
TEST_F(CheckScriptTest, FixedWindowLaterRequestsOfTheWindowKeepTheKeysTtl) {
  const Zone zone = fixed_window(/*limit=*/10, /*window_ms=*/60000);
  check(kT0 + 15 * kSecond, zone);
  check(kT0 + 30 * kSecond, zone);
  EXPECT_GT(pttl("client"), 44000);
  EXPECT_LE(pttl("client"), 45000);
  // The next window's first request sets it again.
  check(kT0 + 75 * kSecond, zone);
  EXPECT_GT(pttl("client"), 44000);
  EXPECT_LE(pttl("client"), 45000);
  EXPECT_EQ(get("client"), "28333441:1");
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
  // "index:current:previous"
  EXPECT_EQ(get("client"), "1700006400:3:0");
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
  EXPECT_EQ(get("client"), "1700006401:2:4");
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

// As for fixed_window: the window's first request sets the TTL, the next
// ones of the window keep it.
TEST_F(CheckScriptTest, SlidingWindowLaterRequestsOfTheWindowKeepTheKeysTtl) {
  const Zone zone = sliding_window(/*limit=*/10, /*window_ms=*/60000);
  check(kT0 + 15 * kSecond, zone);
  check(kT0 + 30 * kSecond, zone);
  EXPECT_GT(pttl("client"), 104000);
  EXPECT_LE(pttl("client"), 105000);
  check(kT0 + 75 * kSecond, zone);
  EXPECT_GT(pttl("client"), 104000);
  EXPECT_LE(pttl("client"), 105000);
  EXPECT_EQ(get("client"), "28333441:1:2");
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
  // "tat:rem": the TAT is kT0 + 333333 µs and 1/3 µs.
  EXPECT_EQ(get("client"), std::to_string(kT0 + 333333) + ":1");
  check(kT0, zone);
  check(kT0, zone);
  EXPECT_EQ(get("client"), std::to_string(kT0 + kSecond) + ":0");
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

// ========================================================= every magnitude

// sliding_window and token_bucket, in exact 128-bit integer arithmetic and
// written from their rules, not from the script: the script computes them in
// doubles while every product stays below 2^51, and in limbs past that (a
// billion a day, a year's window).
__extension__ typedef __int128 Wide;

uint64_t narrow(Wide value) { return static_cast<uint64_t>(value); }
Wide ceil_div(Wide a, Wide b) { return (a + b - 1) / b; }

// The smallest ms >= 0 for which passes(now + ms * 1000) holds, passes being
// false and then true (at `last` ms at the latest).
template <typename Passes>
uint64_t first_ms(Wide now, Wide last, Passes passes) {
  Wide low = 0;
  Wide high = last;
  while (low < high) {
    const Wide middle = (low + high) / 2;
    if (passes(now + middle * 1000)) {
      high = middle;
    } else {
      low = middle + 1;
    }
  }
  return narrow(low);
}

struct SlidingWindowModel {
  Wide limit, window;  // window in µs
  Wide index = -2, current = 0, previous = 0;

  // Whether cost c passes at t >= now, the counts of window `at` being cur, prev.
  bool passes(Wide t, Wide at, Wide cur, Wide prev, Wide c) const {
    const Wide i = t / window;
    if (i == at + 1) {
      prev = cur;
      cur = 0;
    } else if (i > at + 1) {
      cur = prev = 0;
    }
    const Wide room = limit - cur - c;
    return room >= 0 && prev * (window - (t - i * window)) <= room * window;
  }
  uint64_t wait(Wide now, Wide at, Wide cur, Wide prev, Wide c) const {
    return first_ms(now, ceil_div((at + 2) * window - now, 1000),
                    [&](Wide t) { return passes(t, at, cur, prev, c); });
  }
  // One request; recorded if allowed, with the key's TTL in `ttl_ms`, or 0
  // when the key keeps its TTL: a write in the window the key already holds
  // (its TTL, the end of the next window, is the same).
  Verdict check(Wide now, Wide c, uint64_t* ttl_ms) {
    const Wide at = now / window;
    Wide cur = 0, prev = 0;
    if (index == at) {
      cur = current;
      prev = previous;
    } else if (index == at - 1) {
      prev = current;
    }
    const Wide weighted = ceil_div(prev * (window - (now - at * window)), window);
    const uint64_t left = narrow(std::max<Wide>(0, limit - cur - weighted));
    if (c > limit) {
      return Rejected(narrow(limit), left, narrow(window / 1000));
    }
    if (!passes(now, at, cur, prev, c)) {
      return Rejected(narrow(limit), left, wait(now, at, cur, prev, c));
    }
    const Wide remaining = limit - cur - c - weighted;
    const uint64_t reset = remaining > 0 ? 0 : wait(now, at, cur + c, prev, 1);
    *ttl_ms = index == at ? 0 : narrow(ceil_div((at + 2) * window - now, 1000));
    index = at;
    current = cur + c;
    previous = prev;
    return Allowed(narrow(limit), narrow(remaining), reset);
  }
  std::string state() const {
    return std::to_string(narrow(index)) + ":" + std::to_string(narrow(current)) + ":" +
           std::to_string(narrow(previous));
  }
};

struct TokenBucketModel {
  Wide limit, window, burst;  // window in µs
  Wide tat = 0, rem = 0;      // the TAT: tat + rem / limit µs

  bool passes(Wide t, Wide tat_, Wide rem_, Wide c) const {
    if (tat_ < t) {
      return c <= burst;
    }
    return (tat_ - t) * limit + rem_ <= (burst - c) * window;
  }
  uint64_t wait(Wide now, Wide tat_, Wide rem_, Wide c) const {
    return first_ms(now, (tat_ - now) / 1000 + 1,
                    [&](Wide t) { return passes(t, tat_, rem_, c); });
  }
  Verdict check(Wide now, Wide c, uint64_t* ttl_ms) {
    Wide t = tat, r = rem;
    if (t < now) {
      t = now;
      r = 0;
    }
    const Wide spent = ceil_div((t - now) * limit + r, window);
    const uint64_t tokens = narrow(std::max<Wide>(0, burst - spent));
    Wide new_tat = t + c * window / limit, new_rem = r + c * window % limit;
    if (new_rem >= limit) {
      new_tat += 1;
      new_rem -= limit;
    }
    if (c > burst) {
      return Rejected(narrow(burst), tokens, narrow(window / 1000));
    }
    if (!passes(now, t, r, c)) {
      return Rejected(narrow(burst), tokens, wait(now, t, r, c));
    }
    const uint64_t remaining = tokens - narrow(c);
    const uint64_t reset = remaining > 0 ? 0 : wait(now, new_tat, new_rem, 1);
    tat = new_tat;
    rem = new_rem;
    *ttl_ms = narrow(ceil_div(new_tat - now + (new_rem > 0 ? 1 : 0), 1000));
    return Allowed(narrow(burst), remaining, reset);
  }
  std::string state() const { return std::to_string(narrow(tat)) + ":" + std::to_string(narrow(rem)); }
};

// Random sequences of requests against the models: every verdict, every
// recorded state and TTL. Each sequence is one transaction, and each check is
// followed by a PERSIST: a script sees keys expire in real time, even in a
// transaction, and a TTL of a millisecond must not end a sequence early.
TEST_F(CheckScriptTest, SlidingWindowAndTokenBucketAreExactAtEveryMagnitude) {
  const uint64_t limits[] = {1, 2, 3, 7, 10, 100, 999, 12345, 1000000, 999999937, 1u << 30};
  const uint64_t windows_ms[] = {1, 7, 1000, 60000, 3600000, 86400000, 31536000000,
                                 1ull << 40};
  std::mt19937_64 random(20261124);
  auto pick = [&](uint64_t bound) { return bound == 0 ? 0 : random() % bound; };
  size_t exact_paths = 0, fast_paths = 0, allowed = 0, rejected = 0;
  for (int sequence = 0; sequence < 400 && !HasFailure(); ++sequence) {
    const bool bucket = sequence % 2 == 1;
    const uint64_t limit = limits[pick(std::size(limits))];
    const uint64_t window_ms = windows_ms[pick(std::size(windows_ms))];
    const uint64_t window = window_ms * kMs;
    uint64_t burst = limit;
    if (bucket && pick(2) == 0) {
      burst = limits[pick(std::size(limits))];
    }
    // Like every time in the script, the TAT (at most burst emission
    // intervals ahead) must stay below 2^53 µs.
    burst = std::max<uint64_t>(
        1, std::min<uint64_t>(burst, static_cast<uint64_t>(static_cast<Wide>(2'000'000'000'000'000) *
                                                           limit / window)));
    Zone zone = bucket ? token_bucket(limit, window_ms, burst, "exact")
                       : sliding_window(limit, window_ms, "exact");
    // The script's limb arithmetic takes over from 2^51 (see EXACT in scripts.cpp).
    if (static_cast<double>(std::max(limit, burst)) * static_cast<double>(window) >=
        2251799813685248.0) {
      exact_paths++;
    } else {
      fast_paths++;
    }
    SlidingWindowModel sliding{limit, window};
    TokenBucketModel tokens{limit, window, burst};

    // The requests: times and costs.
    std::vector<uint64_t> times, costs;
    uint64_t now = kT0 + pick(window);
    for (int i = 0; i < 30 && now < 4'000'000'000'000'000ull; ++i) {
      times.push_back(now);
      const uint64_t top = bucket ? burst : limit;
      const uint64_t choices[] = {1, 1, 2, top, top + 1, 1 + pick(top), std::max<uint64_t>(1, top / 3)};
      costs.push_back(std::min<uint64_t>(1u << 30, choices[pick(std::size(choices))]));
      const uint64_t interval = std::max<uint64_t>(1, window / std::max<uint64_t>(1, limit));
      const uint64_t steps[] = {0, 1, pick(1000), pick(2 * interval), interval, pick(window),
                                window - 1, window};
      now += steps[pick(std::size(steps))];
    }
    // Per check: Redis's time before and after, and the absolute expiry.
    constexpr size_t kPerCheck = 6;
    std::vector<std::vector<std::string>> commands = {{"DEL", "exact"}};
    for (size_t i = 0; i < times.size(); ++i) {
      commands.push_back({"TIME"});
      commands.push_back(evalsha_args(times[i], {Request{with_cost(zone, costs[i])}}));
      commands.push_back({"GET", "exact"});
      commands.push_back({"PEXPIRETIME", "exact"});
      commands.push_back({"PERSIST", "exact"});
      commands.push_back({"TIME"});
    }
    Reply exec = transaction(commands);
    ASSERT_NE(exec, nullptr);
    auto time_ms = [](const redisReply* time) {
      return std::stoll(time->element[0]->str) * 1000 + std::stoll(time->element[1]->str) / 1000;
    };
    std::string expected_state = "(nil)";
    for (size_t i = 0; i < times.size(); ++i) {
      uint64_t ttl_ms = 0;
      const Verdict expected = bucket ? tokens.check(times[i], costs[i], &ttl_ms)
                                      : sliding.check(times[i], costs[i], &ttl_ms);
      if (expected.allowed) {
        expected_state = bucket ? tokens.state() : sliding.state();
        allowed++;
      } else {
        rejected++;
      }
      const redisReply* const* replies = exec->element + 1 + kPerCheck * i;
      std::vector<Verdict> got = decode(replies[1], 1);
      const std::string state = replies[2]->type == REDIS_REPLY_STRING
                                    ? std::string(replies[2]->str, replies[2]->len)
                                    : "(nil)";
      const long long expires_at = replies[3]->integer;
      SCOPED_TRACE(::testing::Message()
                   << (bucket ? "token_bucket" : "sliding_window") << " limit " << limit
                   << " window_ms " << window_ms << " burst " << burst << ", request " << i
                   << " at kT0 + " << times[i] - kT0 << " cost " << costs[i]);
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(got[0], expected);
      EXPECT_EQ(state, expected_state);
      if (expected.allowed && ttl_ms > 0) {
        // Set to expire `ttl_ms` after the script ran, by Redis's clock.
        EXPECT_GE(expires_at - static_cast<long long>(ttl_ms), time_ms(replies[0]));
        EXPECT_LE(expires_at - static_cast<long long>(ttl_ms), time_ms(replies[5]));
      } else if (expected.allowed) {
        // Kept: none since the test's PERSIST.
        EXPECT_EQ(expires_at, -1);
      } else {
        // Left alone: persisted after the last recorded request, or none yet.
        EXPECT_EQ(expires_at, expected_state == "(nil)" ? -2 : -1);
      }
      if (HasFailure()) {
        break;
      }
    }
  }
  // Both kinds of arithmetic, and both verdicts, were exercised.
  RecordProperty("exact_paths", static_cast<int>(exact_paths));
  RecordProperty("fast_paths", static_cast<int>(fast_paths));
  RecordProperty("allowed", static_cast<int>(allowed));
  RecordProperty("rejected", static_cast<int>(rejected));
  EXPECT_GT(exact_paths, 80u);
  EXPECT_GT(fast_paths, 80u);
  EXPECT_GT(allowed, 1000u);
  EXPECT_GT(rejected, 1000u);
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
  std::vector<std::string> values;
  if (type("client") == "zset") {
    Reply all = command({"ZRANGE", "client", "0", "-1", "WITHSCORES"});
    for (size_t i = 0; i < all->elements; ++i) {
      values.emplace_back(all->element[i]->str, all->element[i]->len);
    }
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

// ==================================================================== errors

TEST_F(CheckScriptTest, UnknownAlgorithmIsAnErrorReply) {
  Reply reply =
      command({"EVALSHA", sha_, "1", "client", "0", "1", "1", "7", "10", "1000", "10", "1"});
  EXPECT_EQ(reply->type, REDIS_REPLY_ERROR);
  EXPECT_FALSE(exists("client"));
}

TEST_F(CheckScriptTest, ZeroWindowIsAnErrorReply) {
  Reply reply =
      command({"EVALSHA", sha_, "1", "client", "0", "1", "1", "1", "10", "0", "10", "1"});
  EXPECT_EQ(reply->type, REDIS_REPLY_ERROR);
}

TEST_F(CheckScriptTest, ArgumentsThatDoNotMatchTheLayoutAreAnErrorReply) {
  const std::vector<std::vector<std::string_view>> calls = {
      // no request count
      {"1", "client", "0"},
      // the old layout: one request, 5 arguments, no counts
      {"1", "client", "0", "1", "10", "1000", "10", "1"},
      // an argument short, an argument too many
      {"1", "client", "0", "1", "1", "1", "10", "1000", "10"},
      {"1", "client", "0", "1", "1", "1", "10", "1000", "10", "1", "1"},
      // a key without zone, a zone without key
      {"2", "a", "b", "0", "1", "1", "1", "10", "1000", "10", "1"},
      {"1", "a", "0", "1", "2", "1", "10", "1000", "10", "1", "1", "10", "1000", "10", "1"},
      // a request of no zone
      {"1", "a", "0", "1", "0", "1", "10", "1000", "10", "1"},
      // request counts that are not whole numbers of requests
      {"1", "a", "0", "-1", "1", "1", "10", "1000", "10", "1"},
      {"1", "a", "0", "1.5", "1", "1", "10", "1000", "10", "1"},
      {"1", "a", "0", "x", "1", "1", "10", "1000", "10", "1"},
      {"1", "a", "0", "2", "1", "1", "10", "1000", "10", "1"},
      // an empty batch with a key or an argument
      {"1", "a", "0", "0"},
      {"0", "0", "0", "1"},
  };
  for (const std::vector<std::string_view>& call : calls) {
    std::vector<std::string_view> args = {"EVALSHA", sha_};
    args.insert(args.end(), call.begin(), call.end());
    Reply reply = command(args);
    std::string shown;
    for (std::string_view arg : call) {
      shown.append(arg).append(" ");
    }
    EXPECT_EQ(reply->type, REDIS_REPLY_ERROR) << shown;
  }
  EXPECT_EQ(integer({"DBSIZE"}), 0);
}

// Every argument is checked before anything is recorded.
TEST_F(CheckScriptTest, ABadRequestAnywhereInABatchRecordsNothing) {
  Reply reply = command({"EVALSHA", sha_, "2", "a", "b", "0", "2",  //
                         "1", "2", "10", "1000", "10", "1",         // a: fixed_window
                         "1", "2", "10", "1000", "10", "0"});       // b: cost 0
  EXPECT_EQ(reply->type, REDIS_REPLY_ERROR);
  EXPECT_EQ(integer({"DBSIZE"}), 0);
}

// R = 0: the reply is an empty array, and Redis is left alone.
TEST_F(CheckScriptTest, AnEmptyBatchIsAnsweredWithAnEmptyArray) {
  Reply reply = command({"EVALSHA", sha_, "0", "0", "0"});
  ASSERT_EQ(reply->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(reply->elements, 0u);
  EXPECT_TRUE(check_batch(kT0, {}).empty());
  EXPECT_EQ(integer({"DBSIZE"}), 0);
}

}  // namespace
}  // namespace rate_guard
