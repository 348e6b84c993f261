// The fixture of the RedisChecker tests (redis_checker_test.cpp over TCP,
// redis_checker_tls_test.cpp over TLS): the real client on a libevent loop,
// a real redis-server, one zone (10 per minute, sliding log, a fresh name
// per test), and the outcomes of the checks sent.
#pragma once

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "libevent_loop.h"
#include "redis/redis_checker.h"
#include "redis_server.h"

namespace rate_guard {
// Named, not anonymous: one fixture type across the translation units that use it.
namespace checker_test {

using testing::LibeventLoop;
using testing::RedisServer;

struct Outcomes {
  std::vector<CheckOutcome> received;
  static void collect(void* data, const CheckOutcome& outcome) {
    static_cast<Outcomes*>(data)->received.push_back(outcome);
  }
  size_t allowed() const {
    size_t n = 0;
    for (const auto& o : received) n += o.error == CheckError::none && o.decision.allowed;
    return n;
  }
  size_t rejected() const {
    size_t n = 0;
    for (const auto& o : received) n += o.error == CheckError::none && !o.decision.allowed;
    return n;
  }
  size_t errors(CheckError error) const {
    size_t n = 0;
    for (const auto& o : received) n += o.error == error;
    return n;
  }
};

inline redisReply* command(redisContext* c, const char* text) {
  return static_cast<redisReply*>(redisCommand(c, text));
}

class RedisCheckerFixture : public ::testing::Test {
 protected:
  // The server of the fixture's tests: made on first use, kept (restarted
  // when a test stopped it) for the binary's run, stopped by PID at exit.
  virtual RedisServer& server() = 0;

  void SetUp() override {
    if (!server().running()) {
      server().start();
    }
    admin_.reset(server().connect());
    ASSERT_NE(admin_, nullptr);
    freeReplyObject(command(admin_.get(), "FLUSHALL"));
    zone_.name = "z" + std::to_string(counter_++);
    zone_.limit = 10;
    zone_.window_ms = 60000;
    zone_.algorithm = Algorithm::sliding_log;
    zone_.burst = 10;
    config_.host = "127.0.0.1";
    config_.port = static_cast<uint16_t>(server().port());
    config_.timeout_ms = 100;
    config_.connect_timeout_ms = 100;
  }

  // A started client for config_ (with TLS, the loop's context made from
  // config_.tls first, as nginx makes it from the configuration).
  std::unique_ptr<RedisChecker> start_checker() {
    if (config_.tls.on) {
      loop_.use_tls(config_.tls);
    }
    auto checker = std::make_unique<RedisChecker>(config_, loop_);
    checker->start();
    return checker;
  }

  // start_checker(), and its connection up.
  std::unique_ptr<RedisChecker> make_checker() {
    auto checker = start_checker();
    EXPECT_TRUE(loop_.run_until([&] { return checker->connected(); }));
    return checker;
  }

  // Sends one check for `key` and returns at once; the outcome lands in outcomes_.
  RedisChecker::PendingCheck* send(RedisChecker& checker, std::string_view key, uint64_t cost = 1) {
    ZoneRequest request{&zone_, key, cost, {zone_.limit, zone_.window_ms, zone_.burst}};
    CheckOutcome immediate;
    RedisChecker::PendingCheck* pending =
        checker.check(&request, 1, Outcomes::collect, &outcomes_, &immediate);
    if (pending == nullptr) {
      outcomes_.received.push_back(immediate);
    }
    return pending;
  }

  void wait_for(size_t outcomes, uint64_t timeout_ms = 2000) {
    loop_.run_until([&] { return outcomes_.received.size() >= outcomes; }, timeout_ms);
  }

  // Whether a log line of `level` contains `text`.
  bool logged(LogLevel level, std::string_view text) const {
    for (const auto& entry : loop_.logs) {
      if (entry.first == level && entry.second.find(text) != std::string::npos) {
        return true;
      }
    }
    return false;
  }

  struct ContextFree {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  static inline int counter_ = 0;
  LibeventLoop loop_;
  RedisConfig config_;
  ZoneConfig zone_;
  Outcomes outcomes_;
  std::unique_ptr<redisContext, ContextFree> admin_;
};

}  // namespace checker_test
}  // namespace rate_guard
