// The Redis client with Redis Sentinel, against a real setup started here: a
// master, a replica and three sentinels on loopback ports.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <chrono>
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

std::string command_text(redisContext* c, const char* command) {
  auto* reply = static_cast<redisReply*>(redisCommand(c, command));
  std::string text = reply == nullptr ? "" : reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
                                                     reply->type == REDIS_REPLY_ERROR
                                                 ? std::string(reply->str, reply->len)
                                                 : "";
  if (reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
      reply->element[0]->type == REDIS_REPLY_STRING) {
    text = std::string(reply->element[0]->str, reply->element[0]->len);
  }
  freeReplyObject(reply);
  return text;
}

// Polls `done` for up to `seconds`.
template <class Predicate>
bool eventually(Predicate done, int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

class SentinelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    master_ = new RedisServer();
    replica_ = new RedisServer(RedisServer::Options{
        false, {"replicaof 127.0.0.1 " + std::to_string(master_->port())}});
    // The replica in sync first: the sentinels then learn of it from the
    // master's first INFO instead of ten seconds later.
    ASSERT_TRUE(eventually([] { return replica_in_sync(); }, 20));
    for (int i = 0; i < 3; i++) {
      sentinels_.push_back(new RedisServer(RedisServer::Options{
          true,
          {"sentinel monitor mymaster 127.0.0.1 " + std::to_string(master_->port()) + " 2",
           "sentinel down-after-milliseconds mymaster 1000",
           "sentinel failover-timeout mymaster 4000"}}));
    }
    // Ready when every sentinel has fresh INFO from the replica, which it then
    // can promote (else SENTINEL FAILOVER answers NOGOODSLAVE).
    ASSERT_TRUE(eventually(
        [] {
          for (RedisServer* sentinel : sentinels_) {
            if (!sentinel_can_promote(sentinel)) return false;
          }
          return replica_in_sync();
        },
        30));
  }

  // The sentinel sees one replica, flagged just "slave", linked to the
  // master, with INFO refreshed in the last 5 s.
  static bool sentinel_can_promote(RedisServer* sentinel) {
    redisContext* c = sentinel->connect();
    auto* reply = static_cast<redisReply*>(redisCommand(c, "SENTINEL REPLICAS mymaster"));
    bool ready = reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
                 reply->element[0]->type == REDIS_REPLY_ARRAY;
    if (ready) {
      const redisReply* fields = reply->element[0];
      std::string flags, link;
      long long refresh = -1;
      for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const std::string name(fields->element[i]->str, fields->element[i]->len);
        const std::string value(fields->element[i + 1]->str, fields->element[i + 1]->len);
        if (name == "flags") flags = value;
        if (name == "master-link-status") link = value;
        if (name == "info-refresh") refresh = std::stoll(value);
      }
      ready = flags == "slave" && link == "ok" && refresh >= 0 && refresh < 5000;
    }
    freeReplyObject(reply);
    redisFree(c);
    return ready;
  }

  static bool replica_in_sync() {
    redisContext* c = replica_->connect();
    auto* info = static_cast<redisReply*>(redisCommand(c, "INFO replication"));
    const bool up = info != nullptr && info->type == REDIS_REPLY_STRING &&
                    std::string(info->str, info->len).find("master_link_status:up") != std::string::npos;
    freeReplyObject(info);
    redisFree(c);
    return up;
  }

  static void TearDownTestSuite() {
    for (RedisServer* sentinel : sentinels_) delete sentinel;
    sentinels_.clear();
    delete replica_;
    delete master_;
  }

  RedisConfig sentinel_config() const {
    RedisConfig config;
    for (RedisServer* sentinel : sentinels_) {
      config.sentinels.push_back({"127.0.0.1", static_cast<uint16_t>(sentinel->port()), {}});
    }
    config.master_name = "mymaster";
    config.timeout_ms = 200;
    config.connect_timeout_ms = 200;
    return config;
  }

  // One check, waited for.
  CheckOutcome check_once(RedisChecker& checker, const std::string& key) {
    ZoneRequest request{&zone_, key, 1, {zone_.limit, zone_.window_ms, zone_.burst}};
    struct Box {
      bool done = false;
      CheckOutcome outcome;
    } box;
    CheckOutcome immediate;
    auto* pending = checker.check(
        &request, 1,
        [](void* data, const CheckOutcome& outcome) {
          static_cast<Box*>(data)->done = true;
          static_cast<Box*>(data)->outcome = outcome;
        },
        &box, &immediate);
    if (pending == nullptr) return immediate;
    loop_.run_until([&] { return box.done; }, 2000);
    return box.outcome;
  }

  void SetUp() override {
    zone_.name = "sentinel";
    zone_.limit = 1000;
    zone_.window_ms = 60000;
    zone_.burst = 1000;
  }

  static inline RedisServer* master_ = nullptr;
  static inline RedisServer* replica_ = nullptr;
  static inline std::vector<RedisServer*> sentinels_;
  LibeventLoop loop_;
  ZoneConfig zone_;
};

TEST_F(SentinelTest, FindsTheMasterThroughTheSentinels) {
  RedisChecker checker(sentinel_config(), loop_);
  checker.start();
  ASSERT_TRUE(loop_.run_until([&] { return checker.connected(); }, 3000));
  EXPECT_EQ(checker.address(), "127.0.0.1:" + std::to_string(master_->port()));
  CheckOutcome outcome = check_once(checker, "client-1");
  EXPECT_EQ(outcome.error, CheckError::none);
  EXPECT_EQ(outcome.decision.remaining, 999u);
}

TEST_F(SentinelTest, SkipsASentinelThatIsDown) {
  RedisConfig config = sentinel_config();
  config.sentinels.insert(config.sentinels.begin(), {"127.0.0.1", 1, {}});  // nothing listens there
  RedisChecker checker(config, loop_);
  checker.start();
  ASSERT_TRUE(loop_.run_until([&] { return checker.connected(); }, 3000));
  EXPECT_EQ(check_once(checker, "client-2").error, CheckError::none);
  EXPECT_GE(loop_.count_logs(LogLevel::error), 1u);
}

TEST_F(SentinelTest, AnUnknownMasterIsAnErrorAndChecksAreDecidedAtOnce) {
  RedisConfig config = sentinel_config();
  config.master_name = "nosuchmaster";
  RedisChecker checker(config, loop_);
  checker.start();
  loop_.run_for(300);
  EXPECT_FALSE(checker.connected());
  EXPECT_EQ(check_once(checker, "client-3").error, CheckError::unavailable);
  ASSERT_GE(loop_.count_logs(LogLevel::error), 1u);
  bool named = false;
  for (const auto& log : loop_.logs) named |= log.second.find("nosuchmaster") != std::string::npos;
  EXPECT_TRUE(named);
}

// Last in the suite: it swaps the roles of master and replica.
TEST_F(SentinelTest, FollowsAFailoverWithoutAReload) {
  RedisChecker checker(sentinel_config(), loop_);
  checker.start();
  ASSERT_TRUE(loop_.run_until([&] { return checker.connected(); }, 3000));
  const std::string old_master = "127.0.0.1:" + std::to_string(master_->port());
  const std::string new_master = "127.0.0.1:" + std::to_string(replica_->port());
  ASSERT_EQ(checker.address(), old_master);

  redisContext* sentinel = sentinels_[0]->connect();
  EXPECT_EQ(command_text(sentinel, "SENTINEL FAILOVER mymaster"), "OK");
  redisFree(sentinel);

  // Checks go on while the failover happens; each is answered (by Redis or
  // by the fail policy), none hangs; afterwards the client is on the new master.
  size_t answered = 0, errors = 0;
  const bool moved = loop_.run_until(
      [&] {
        CheckOutcome outcome = check_once(checker, "client-4");
        answered++;
        errors += outcome.error != CheckError::none;
        return checker.connected() && checker.address() == new_master && outcome.error == CheckError::none;
      },
      15000);
  EXPECT_TRUE(moved) << "still on " << checker.address();
  EXPECT_GT(answered, 0u);
  redisContext* promoted = replica_->connect();
  EXPECT_EQ(command_text(promoted, "ROLE"), "master");
  redisFree(promoted);
  bool switched = false;
  for (const auto& log : loop_.logs) switched |= log.second.find("switched to " + new_master) != std::string::npos;
  EXPECT_TRUE(switched) << "no +switch-master seen";
}

}  // namespace
}  // namespace rate_guard
