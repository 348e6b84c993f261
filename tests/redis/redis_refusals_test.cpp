// Every way a Redis (or what listens on its port) can refuse a client, against
// real redis-servers: the client must back off (at most 10 attempts in the
// first second, about one a second after), log about once a second, decide
// checks by the fail policy within the timeout, never count such a
// connection as up, and be exact again, the same client, once Redis is put
// right.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "libevent_loop.h"
#include "redis/redis_checker.h"
#include "redis_server.h"

namespace rate_guard {
namespace {

using testing::LibeventLoop;
using testing::RedisServer;

// A listener on a loopback port that is not Redis: it closes every
// connection at once, or writes `greeting` first and then closes, or keeps
// every connection open and never answers.
class FakeListener {
 public:
  enum class Mode { close_at_once, say_and_close, never_answer };

  explicit FakeListener(Mode mode, std::string greeting = {}) : mode_(mode), greeting_(std::move(greeting)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd_, 128) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      throw std::runtime_error("fake listener: cannot listen");
    }
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { serve(); });
  }
  ~FakeListener() { stop(); }

  int port() const { return port_; }
  int accepted() const { return accepted_.load(); }

  // Closes the listener and every connection it holds.
  void stop() {
    if (thread_.joinable()) {
      stopping_ = true;
      thread_.join();
      for (int fd : held_) ::close(fd);
      held_.clear();
      ::close(fd_);
    }
  }

 private:
  void serve() {
    while (!stopping_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 10) <= 0) {
        continue;
      }
      const int client = ::accept(fd_, nullptr, nullptr);
      if (client < 0) {
        continue;
      }
      accepted_++;
      if (mode_ == Mode::never_answer) {
        held_.push_back(client);
        continue;
      }
      if (mode_ == Mode::say_and_close) {
        [[maybe_unused]] ssize_t n = ::write(client, greeting_.data(), greeting_.size());
      }
      ::close(client);
    }
  }

  Mode mode_;
  std::string greeting_;
  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  std::atomic<int> accepted_{0};
  std::vector<int> held_;
};

redisReply* command(redisContext* c, const char* text) {
  return static_cast<redisReply*>(redisCommand(c, text));
}

void run_ok(redisContext* c, const char* text) {
  redisReply* reply = command(c, text);
  ASSERT_NE(reply, nullptr) << text;
  EXPECT_NE(reply->type, REDIS_REPLY_ERROR) << text << ": " << std::string(reply->str, reply->len);
  freeReplyObject(reply);
}

// What a client did during a refusal.
struct RefusalRun {
  uint64_t reconnects_first_second = 0;
  uint64_t reconnects_after = 0;  // in the 2 s after
  size_t errors_first_second = 0;
  size_t errors_after = 0;
  size_t notices = 0;
  size_t checks = 0;
  size_t checks_decided_by_redis = 0;  // not by the fail policy
  uint64_t slowest_check_ms = 0;
  bool ever_connected = false;
};

class RedisRefusalTest : public ::testing::Test {
 protected:
  void SetUp() override {
    zone_.name = "refusal";
    zone_.limit = 10;
    zone_.window_ms = 60000;
    zone_.algorithm = Algorithm::sliding_log;
    zone_.burst = 10;
    config_.host = "127.0.0.1";
    config_.timeout_ms = 100;
    config_.connect_timeout_ms = 100;
  }

  // Checks made one after the other for 3 s while Redis refuses the client:
  // each must be decided (by the fail policy) within the timeout.
  RefusalRun run_refused(RedisChecker& checker) {
    RefusalRun run;
    const uint64_t start = loop_.now_ms();
    const uint64_t reconnects0 = checker.counters().reconnects.load();
    const size_t errors0 = loop_.count_logs(LogLevel::error);
    const size_t notices0 = loop_.count_logs(LogLevel::notice);
    uint64_t reconnects1 = 0;
    size_t errors1 = 0;
    bool first_second_done = false;
    while (loop_.now_ms() - start < 3000) {
      if (!first_second_done && loop_.now_ms() - start >= 1000) {
        first_second_done = true;
        reconnects1 = checker.counters().reconnects.load();
        errors1 = loop_.count_logs(LogLevel::error);
      }
      std::vector<CheckOutcome> outcomes;
      ZoneRequest request{&zone_, "refused", 1, {zone_.limit, zone_.window_ms, zone_.burst}};
      CheckOutcome immediate;
      const uint64_t sent = loop_.now_ms();
      auto collect = [](void* data, const CheckOutcome& o) {
        static_cast<std::vector<CheckOutcome>*>(data)->push_back(o);
      };
      if (checker.check(&request, 1, collect, &outcomes, &immediate) == nullptr) {
        outcomes.push_back(immediate);
      }
      loop_.run_until([&] { return !outcomes.empty(); }, 1000);
      run.checks++;
      run.slowest_check_ms = std::max(run.slowest_check_ms, loop_.now_ms() - sent);
      run.checks_decided_by_redis += outcomes.empty() || outcomes[0].error == CheckError::none;
      run.ever_connected = run.ever_connected || checker.connected();
      loop_.run_until([&] {
        run.ever_connected = run.ever_connected || checker.connected();
        return false;
      }, 20);
    }
    run.reconnects_first_second = reconnects1 - reconnects0;
    run.reconnects_after = checker.counters().reconnects.load() - reconnects1;
    run.errors_first_second = errors1 - errors0;
    run.errors_after = loop_.count_logs(LogLevel::error) - errors1;
    run.notices = loop_.count_logs(LogLevel::notice) - notices0;
    return run;
  }

  // The bounds of the README: backoff from 100 ms to 1 s, about one error
  // line a second, the fail policy within the timeout, never "connected".
  void expect_backed_off(const RefusalRun& run, const std::string& expected_log) {
    EXPECT_LE(run.reconnects_first_second, 10u);
    EXPECT_LE(run.reconnects_after, 3u);  // ~1 a second over 2 s
    EXPECT_GE(run.reconnects_first_second + run.reconnects_after, 2u);  // it does keep trying
    EXPECT_LE(run.errors_first_second, 2u);
    EXPECT_LE(run.errors_after, 3u);
    EXPECT_LE(run.notices, 3u);
    // The checks made while the very first connection is made wait behind
    // its handshake and may be answered (an EVAL where only EVALSHA is denied).
    EXPECT_LE(run.checks_decided_by_redis, 1u);
    EXPECT_LE(run.slowest_check_ms, config_.timeout_ms + 50);
    EXPECT_GE(run.checks, 20u);
    EXPECT_FALSE(run.ever_connected) << "a refusing Redis was counted as up";
    bool found = false;
    for (const auto& [level, line] : loop_.logs) {
      found = found || (level == LogLevel::error && line.find(expected_log) != std::string::npos);
    }
    EXPECT_TRUE(found) << "no error line with \"" << expected_log << "\"; last: "
                       << (loop_.logs.empty() ? "" : loop_.logs.back().second);
  }

  // Once Redis is put right the same client connects again by itself (within
  // the 1 s backoff cap) and is exact: 10 of 12 pass.
  void expect_exact_again(RedisChecker& checker, const std::string& key) {
    ASSERT_TRUE(loop_.run_until([&] { return checker.connected(); }, 2500)) << "not connected again";
    std::vector<CheckOutcome> outcomes;
    auto collect = [](void* data, const CheckOutcome& o) {
      static_cast<std::vector<CheckOutcome>*>(data)->push_back(o);
    };
    for (int i = 0; i < 12; i++) {
      ZoneRequest request{&zone_, key, 1, {zone_.limit, zone_.window_ms, zone_.burst}};
      CheckOutcome immediate;
      if (checker.check(&request, 1, collect, &outcomes, &immediate) == nullptr) {
        outcomes.push_back(immediate);
      }
    }
    loop_.run_until([&] { return outcomes.size() == 12; }, 1000);
    ASSERT_EQ(outcomes.size(), 12u);
    size_t allowed = 0, rejected = 0;
    for (const auto& o : outcomes) {
      allowed += o.error == CheckError::none && o.decision.allowed;
      rejected += o.error == CheckError::none && !o.decision.allowed;
    }
    EXPECT_EQ(allowed, 10u);
    EXPECT_EQ(rejected, 2u);
  }

  std::unique_ptr<RedisChecker> start_checker(int port) {
    config_.port = static_cast<uint16_t>(port);
    auto checker = std::make_unique<RedisChecker>(config_, loop_);
    checker->start();
    return checker;
  }

  struct ContextFree {
    void operator()(redisContext* c) const { redisFree(c); }
  };
  using Admin = std::unique_ptr<redisContext, ContextFree>;

  LibeventLoop loop_;
  RedisConfig config_;
  ZoneConfig zone_;
};

// Redis 7 answers the unauthenticated SCRIPT LOAD of the script with
// "Protocol error: unauthenticated bulk length" and closes the connection.
TEST_F(RedisRefusalTest, PasswordRequiredAndNoneGiven) {
  RedisServer server;
  Admin admin(server.connect());
  run_ok(admin.get(), "CONFIG SET requirepass s3cret");
  auto checker = start_checker(server.port());
  expect_backed_off(run_refused(*checker), "unauthenticated");
  freeReplyObject(redisCommand(admin.get(), "CONFIG SET requirepass %s", ""));
  expect_exact_again(*checker, "after-requirepass");
}

TEST_F(RedisRefusalTest, WrongPassword) {
  RedisServer server;
  Admin admin(server.connect());
  run_ok(admin.get(), "CONFIG SET requirepass s3cret");
  config_.password = "wrong";
  auto checker = start_checker(server.port());
  expect_backed_off(run_refused(*checker), "AUTH failed");
  run_ok(admin.get(), "CONFIG SET requirepass wrong");
  expect_exact_again(*checker, "after-wrong-password");
}

TEST_F(RedisRefusalTest, AclUserWithoutEvalsha) {
  RedisServer server;
  Admin admin(server.connect());
  run_ok(admin.get(), "ACL SETUSER rg on >pw ~* +@all -evalsha");
  config_.username = "rg";
  config_.password = "pw";
  auto checker = start_checker(server.port());
  expect_backed_off(run_refused(*checker), "NOPERM");
  run_ok(admin.get(), "ACL SETUSER rg +evalsha");
  expect_exact_again(*checker, "after-acl-evalsha");
}

TEST_F(RedisRefusalTest, AclUserWithoutScript) {
  RedisServer server;
  Admin admin(server.connect());
  run_ok(admin.get(), "ACL SETUSER rg on >pw ~* +@all -script");
  config_.username = "rg";
  config_.password = "pw";
  auto checker = start_checker(server.port());
  expect_backed_off(run_refused(*checker), "SCRIPT LOAD failed: NOPERM");
  run_ok(admin.get(), "ACL SETUSER rg +script");
  expect_exact_again(*checker, "after-acl-script");
}

// Redis answers "-ERR max number of clients reached" and closes.
TEST_F(RedisRefusalTest, MaxClientsReached) {
  RedisServer server;
  Admin admin(server.connect());  // holds the one slot
  run_ok(admin.get(), "CONFIG SET maxclients 1");
  auto checker = start_checker(server.port());
  expect_backed_off(run_refused(*checker), "max number of clients reached");
  run_ok(admin.get(), "CONFIG SET maxclients 100");
  expect_exact_again(*checker, "after-maxclients");
}

// A Redis reloading its dataset (DEBUG RELOAD, slowed down by the debug
// config key-load-delay) answers "-LOADING" to everything but a few commands.
TEST_F(RedisRefusalTest, RedisStillLoading) {
  RedisServer server(RedisServer::Options{false, {"enable-debug-command yes"}, 0});
  Admin admin(server.connect());
  run_ok(admin.get(), "DEBUG POPULATE 40000");
  run_ok(admin.get(), "CONFIG SET key-load-delay 100");  // microseconds per key: 4 s of loading
  run_ok(admin.get(), "CONFIG SET loading-process-events-interval-bytes 1024");
  std::thread reload([&server] {
    redisContext* c = server.connect();
    redisSetTimeout(c, timeval{30, 0});
    freeReplyObject(redisCommand(c, "DEBUG RELOAD"));
    redisFree(c);
  });
  const bool loading = loop_.run_until([&] {
    redisReply* info = command(admin.get(), "INFO persistence");
    const bool yes = info != nullptr && info->type == REDIS_REPLY_STRING &&
                     std::string(info->str, info->len).find("loading:1") != std::string::npos;
    freeReplyObject(info);
    return yes;
  }, 3000);
  ASSERT_TRUE(loading);
  auto checker = start_checker(server.port());
  RefusalRun run = run_refused(*checker);
  reload.join();  // the dataset is loaded: Redis is right again
  expect_backed_off(run, "LOADING");
  run_ok(admin.get(), "CONFIG SET key-load-delay 0");
  expect_exact_again(*checker, "after-loading");
}

// Protected mode ("-DENIED Redis is running in protected mode ...", then
// close) only refuses non-loopback clients, so a listener says it instead.
TEST_F(RedisRefusalTest, DeniedLikeProtectedMode) {
  FakeListener fake(FakeListener::Mode::say_and_close,
                    "-DENIED Redis is running in protected mode because protected mode is enabled\r\n");
  auto checker = start_checker(fake.port());
  expect_backed_off(run_refused(*checker), "DENIED");
  fake.stop();
  RedisServer server(RedisServer::Options{false, {}, fake.port()});
  expect_exact_again(*checker, "after-denied");
}

TEST_F(RedisRefusalTest, ListenerThatAcceptsAndClosesAtOnce) {
  FakeListener fake(FakeListener::Mode::close_at_once);
  auto checker = start_checker(fake.port());
  expect_backed_off(run_refused(*checker), "lost");
  EXPECT_GE(fake.accepted(), 2);
  fake.stop();
  RedisServer server(RedisServer::Options{false, {}, fake.port()});
  expect_exact_again(*checker, "after-close");
}

TEST_F(RedisRefusalTest, ListenerThatNeverAnswers) {
  FakeListener fake(FakeListener::Mode::never_answer);
  auto checker = start_checker(fake.port());
  expect_backed_off(run_refused(*checker), "ready within");
  EXPECT_GE(fake.accepted(), 2);
  fake.stop();
  RedisServer server(RedisServer::Options{false, {}, fake.port()});
  expect_exact_again(*checker, "after-silence");
}

}  // namespace
}  // namespace rate_guard
