// The Redis client logic on a real event loop (libevent) against a real
// redis-server: pipelining, script loading, NOSCRIPT, timeouts, failures and
// reconnection.
#include "redis/redis_checker.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <memory>
#include <string>
#include <vector>

#include "lua/check_script.h"
#include "redis/redis_key.h"
#include "redis_checker_fixture.h"

namespace rate_guard {
namespace checker_test {
namespace {

// Over TCP, to a server of its own.
class RedisCheckerTest : public RedisCheckerFixture {
 protected:
  RedisServer& server() override {
    static RedisServer instance;
    return instance;
  }

  ZoneRequest request_for(std::string_view key, uint64_t lease_units = 0, uint64_t lease_ms = 0) {
    return {&zone_, key, 1, {zone_.limit, zone_.window_ms, zone_.burst}, lease_units, lease_ms};
  }

  // Sends one check for `key` asking for a lease.
  RedisChecker::PendingCheck* send_lease(RedisChecker& checker, std::string_view key, uint64_t units,
                                         uint64_t lease_ms) {
    const ZoneRequest request = request_for(key, units, lease_ms);
    CheckOutcome immediate;
    RedisChecker::PendingCheck* pending = checker.check(&request, 1, Outcomes::collect, &outcomes_, &immediate);
    if (pending == nullptr) {
      outcomes_.received.push_back(immediate);
    }
    return pending;
  }
};

TEST_F(RedisCheckerTest, AllowsUpToTheLimitThenRejects) {
  auto checker = make_checker();
  for (int i = 0; i < 12; i++) {
    send(*checker, "client-a");
    wait_for(static_cast<size_t>(i + 1));
  }
  ASSERT_EQ(outcomes_.received.size(), 12u);
  EXPECT_EQ(outcomes_.allowed(), 10u);
  EXPECT_EQ(outcomes_.rejected(), 2u);
  EXPECT_EQ(outcomes_.received[0].decision.remaining, 9u);
  EXPECT_EQ(outcomes_.received[9].decision.remaining, 0u);
  EXPECT_EQ(outcomes_.received[11].decision.limit, 10u);
  EXPECT_GT(outcomes_.received[11].decision.reset_ms, 59000u);
}

TEST_F(RedisCheckerTest, ChecksOfOneLoopTurnGoAsOneBatchOnOneConnection) {
  auto checker = make_checker();
  const uint64_t round_trips = checker->counters().round_trips.load();
  for (int i = 0; i < 50; i++) {
    ASSERT_NE(send(*checker, "client-b"), nullptr);
  }
  EXPECT_EQ(checker->pending_count(), 50u);
  wait_for(50);
  // In order: the first 10 pass, the next 40 see them and are rejected.
  for (size_t i = 0; i < 50; i++) {
    EXPECT_EQ(outcomes_.received[i].decision.allowed, i < 10) << i;
  }
  EXPECT_EQ(checker->counters().round_trips.load() - round_trips, 1u);
  EXPECT_EQ(checker->pending_count(), 0u);
  redisReply* clients = command(admin_.get(), "CLIENT LIST TYPE normal");
  ASSERT_EQ(clients->type, REDIS_REPLY_STRING);
  const std::string list(clients->str, clients->len);
  freeReplyObject(clients);
  size_t lines = 0;
  for (char ch : list) lines += ch == '\n';
  EXPECT_EQ(lines, 2u) << list;  // the checker's connection and ours
}

TEST_F(RedisCheckerTest, KeysAreWrittenWithThePrefixAndZone) {
  config_.prefix = "rg-test:";
  auto checker = make_checker();
  send(*checker, "client-c");
  wait_for(1);
  std::string key;
  append_redis_key(key, "rg-test:", zone_, "client-c");
  redisReply* exists = static_cast<redisReply*>(
      redisCommand(admin_.get(), "EXISTS %b", key.data(), key.size()));
  EXPECT_EQ(exists->integer, 1);
  freeReplyObject(exists);
}

TEST_F(RedisCheckerTest, CancelledCheckNeverCallsBack) {
  auto checker = make_checker();
  RedisChecker::PendingCheck* pending = send(*checker, "client-d");
  ASSERT_NE(pending, nullptr);
  checker->cancel(pending);
  EXPECT_EQ(checker->pending_count(), 0u);
  send(*checker, "client-d");
  wait_for(1);
  loop_.run_for(50);
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_EQ(outcomes_.received[0].error, CheckError::none);
}

TEST_F(RedisCheckerTest, NoscriptAfterScriptFlushIsLoadedAndRetriedOnce) {
  auto checker = make_checker();
  send(*checker, "client-e");
  wait_for(1);
  const uint64_t loads = checker->counters().script_loads.load();
  freeReplyObject(command(admin_.get(), "SCRIPT FLUSH"));
  send(*checker, "client-e");
  wait_for(2);
  ASSERT_EQ(outcomes_.received.size(), 2u);
  EXPECT_EQ(outcomes_.received[1].error, CheckError::none);
  EXPECT_EQ(outcomes_.received[1].decision.remaining, 8u);
  EXPECT_EQ(checker->counters().script_loads.load(), loads + 1);
}

TEST_F(RedisCheckerTest, ErrorReplyEndsTheCheckWithRedisError) {
  auto checker = make_checker();
  // A read-only replica refuses scripts that write (its master need not exist).
  freeReplyObject(command(admin_.get(), "REPLICAOF 127.0.0.1 1"));
  send(*checker, "client-f");
  wait_for(1);
  freeReplyObject(command(admin_.get(), "REPLICAOF NO ONE"));
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_EQ(outcomes_.received[0].error, CheckError::redis_error);
  EXPECT_TRUE(checker->connected());
  ASSERT_GE(loop_.count_logs(LogLevel::error), 1u);
  EXPECT_NE(loop_.logs.back().second.find("READONLY"), std::string::npos) << loop_.logs.back().second;
  send(*checker, "client-f");
  wait_for(2);
  EXPECT_EQ(outcomes_.received[1].error, CheckError::none);
}

TEST_F(RedisCheckerTest, PausedRedisTimesOutWithinTheTimeout) {
  auto checker = make_checker();
  freeReplyObject(command(admin_.get(), "CLIENT PAUSE 400 ALL"));
  const uint64_t start = loop_.now_ms();
  send(*checker, "client-g");
  wait_for(1);
  const uint64_t elapsed = loop_.now_ms() - start;
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_EQ(outcomes_.received[0].error, CheckError::timeout);
  EXPECT_GE(elapsed, 100u);
  EXPECT_LT(elapsed, 200u);
  // Until a connection answers again, checks are decided at once, and the
  // reconnection attempts back off (a paused Redis accepts connections).
  const uint64_t reconnects = checker->counters().reconnects.load();
  for (int i = 0; i < 20; i++) {
    EXPECT_EQ(send(*checker, "client-g"), nullptr);
    EXPECT_EQ(outcomes_.received.back().error, CheckError::unavailable);
    loop_.run_for(10);
  }
  EXPECT_LE(checker->counters().reconnects.load() - reconnects, 3u);
  // Once the pause is over the client reconnects by itself.
  loop_.run_for(400);
  EXPECT_TRUE(loop_.run_until([&] { return checker->connected(); }, 3000));
  send(*checker, "client-g");
  wait_for(23);
  EXPECT_EQ(outcomes_.received.back().error, CheckError::none);
}

TEST_F(RedisCheckerTest, KilledConnectionFailsChecksInFlightAndReconnects) {
  auto checker = make_checker();
  // One answered check first: Redis has then accepted the connection (a
  // connect completes in the kernel before Redis accepts it).
  send(*checker, "client-h");
  wait_for(1);
  for (int i = 0; i < 5; i++) send(*checker, "client-h");
  // Kill the checker's connection (not ours) before the 5 commands are written.
  redisReply* killed = command(admin_.get(), "CLIENT KILL TYPE normal SKIPME yes");
  ASSERT_EQ(killed->type, REDIS_REPLY_INTEGER) << killed->str;
  EXPECT_EQ(killed->integer, 1);
  freeReplyObject(killed);
  wait_for(6);
  ASSERT_EQ(outcomes_.received.size(), 6u);
  EXPECT_EQ(outcomes_.errors(CheckError::disconnected), 5u)
      << "allowed " << outcomes_.allowed() << ", unavailable " << outcomes_.errors(CheckError::unavailable)
      << ", timeout " << outcomes_.errors(CheckError::timeout);
  EXPECT_TRUE(loop_.run_until([&] { return checker->connected(); }, 3000));
  send(*checker, "client-h");
  wait_for(7);
  EXPECT_EQ(outcomes_.received.back().error, CheckError::none);
  EXPECT_EQ(outcomes_.received.back().decision.remaining, 8u);  // the 5 failed checks counted nothing
}

TEST_F(RedisCheckerTest, RedisDownIsDecidedAtOnceAndLoggedAboutOnceASecond) {
  auto checker = make_checker();
  server().stop();
  EXPECT_TRUE(loop_.run_until([&] { return !checker->connected(); }));
  const size_t logs_before = loop_.count_logs(LogLevel::error);
  for (int i = 0; i < 100; i++) {
    EXPECT_EQ(send(*checker, "client-i"), nullptr);
    loop_.run_for(5);
  }
  EXPECT_EQ(outcomes_.errors(CheckError::unavailable), 100u);
  // ~0.5 s of failures and reconnect attempts: one or two lines, not 100.
  EXPECT_LE(loop_.count_logs(LogLevel::error) - logs_before, 2u);
  server().start();
  EXPECT_TRUE(loop_.run_until([&] { return checker->connected(); }, 3000));
  send(*checker, "client-i");
  wait_for(101);
  EXPECT_EQ(outcomes_.received.back().error, CheckError::none);
  EXPECT_EQ(outcomes_.received.back().decision.remaining, 9u);
}

TEST_F(RedisCheckerTest, PasswordAndDatabaseAreSentOnConnect) {
  freeReplyObject(command(admin_.get(), "CONFIG SET requirepass s3cret"));
  config_.password = "s3cret";
  config_.db = 3;
  auto checker = make_checker();
  send(*checker, "client-j");
  wait_for(1);
  EXPECT_EQ(outcomes_.received[0].error, CheckError::none);
  freeReplyObject(command(admin_.get(), "AUTH s3cret"));
  std::string key;
  append_redis_key(key, config_.prefix, zone_, "client-j");
  auto exists = [&] {
    auto* reply = static_cast<redisReply*>(redisCommand(admin_.get(), "EXISTS %b", key.data(), key.size()));
    const long long n = reply->integer;
    freeReplyObject(reply);
    return n;
  };
  EXPECT_EQ(exists(), 0);  // not in db 0
  freeReplyObject(command(admin_.get(), "SELECT 3"));
  EXPECT_EQ(exists(), 1);
  freeReplyObject(redisCommand(admin_.get(), "CONFIG SET requirepass %s", ""));
  freeReplyObject(command(admin_.get(), "SELECT 0"));
}

TEST_F(RedisCheckerTest, WrongPasswordIsAnError) {
  config_.password = "wrong";
  auto checker = std::make_unique<RedisChecker>(config_, loop_);
  checker->start();
  send(*checker, "client-k");
  wait_for(1);
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_NE(outcomes_.received[0].error, CheckError::none);
  EXPECT_GE(loop_.count_logs(LogLevel::error), 1u);
}

TEST_F(RedisCheckerTest, UnixSocketWorks) {
  config_.host.clear();
  config_.unix_path = server().unix_path();
  auto checker = make_checker();
  send(*checker, "client-l");
  wait_for(1);
  EXPECT_EQ(outcomes_.received[0].error, CheckError::none);
  EXPECT_TRUE(outcomes_.received[0].decision.allowed);
}

TEST_F(RedisCheckerTest, BatchesAreCutAtTheirMaximumSize) {
  auto checker = make_checker();
  const uint64_t round_trips = checker->counters().round_trips.load();
  for (int i = 0; i < 150; i++) {
    ASSERT_NE(send(*checker, "client-m" + std::to_string(i)), nullptr);
  }
  wait_for(150);
  EXPECT_EQ(outcomes_.allowed(), 150u);
  EXPECT_EQ(checker->counters().round_trips.load() - round_trips, 3u);  // 64 + 64 + 22 entries
}

// The calls of `command` Redis counted since the last CONFIG RESETSTAT.
long long calls_of(redisContext* admin, std::string_view name) {
  redisReply* stats = command(admin, "INFO commandstats");
  const std::string text(stats->str, stats->len);
  freeReplyObject(stats);
  const std::string field = "cmdstat_" + std::string(name) + ":calls=";
  const size_t at = text.find(field);
  return at == std::string::npos ? 0 : std::stoll(text.substr(at + field.size()));
}

TEST_F(RedisCheckerTest, AThousandChecksOfOneKeyGoAsOneEntry) {
  auto checker = make_checker();
  freeReplyObject(command(admin_.get(), "CONFIG RESETSTAT"));
  const uint64_t round_trips = checker->counters().round_trips.load();
  for (int i = 0; i < 1000; i++) {
    ASSERT_NE(send(*checker, "client-p"), nullptr);
  }
  wait_for(1000);
  ASSERT_EQ(outcomes_.received.size(), 1000u);
  // In the order they came: the first 10 pass, each seeing the ones before
  // it; the others are rejected until the first leaves the window.
  for (size_t i = 0; i < 1000; i++) {
    const CheckOutcome& outcome = outcomes_.received[i];
    ASSERT_EQ(outcome.error, CheckError::none) << i;
    EXPECT_EQ(outcome.decision.allowed, i < 10) << i;
    EXPECT_EQ(outcome.decision.remaining, i < 10 ? 9 - i : 0) << i;
    EXPECT_EQ(outcome.decision.reset_ms > 59000, i >= 9) << i;
  }
  EXPECT_EQ(checker->counters().round_trips.load() - round_trips, 1u);
  // Redis's work: one script call with one entry, the sliding log read once
  // and written once (10 entries), not a thousand times each.
  EXPECT_EQ(calls_of(admin_.get(), "evalsha"), 1);
  EXPECT_EQ(calls_of(admin_.get(), "zcount"), 1);
  EXPECT_EQ(calls_of(admin_.get(), "zadd"), 1);
  std::string key;
  append_redis_key(key, config_.prefix, zone_, "client-p");
  redisReply* entries = static_cast<redisReply*>(redisCommand(admin_.get(), "ZCARD %b", key.data(), key.size()));
  EXPECT_EQ(entries->integer, 10);
  freeReplyObject(entries);
}

TEST_F(RedisCheckerTest, ACancelledCheckKeepsItsPlaceInTheBatch) {
  auto checker = make_checker();
  send(*checker, "client-n");
  RedisChecker::PendingCheck* cancelled = send(*checker, "client-o");
  send(*checker, "client-n");
  checker->cancel(cancelled);
  wait_for(2);
  loop_.run_for(50);
  ASSERT_EQ(outcomes_.received.size(), 2u);
  EXPECT_EQ(outcomes_.received[0].decision.remaining, 9u);
  EXPECT_EQ(outcomes_.received[1].decision.remaining, 8u);  // client-n's second, not client-o's
}

// ------------------------------------------------ leases (issue 14; need the
// check script's lease entry and hand-back)

// A grant comes with an allowed check: at most what was asked, for at most
// as long, counted by Redis as spent: the next check sees them.
TEST_F(RedisCheckerTest, ALeaseIsGrantedWithAnAllowedCheckAndCounted) {
  auto checker = make_checker();
  const uint64_t round_trips = checker->counters().round_trips.load();
  ASSERT_NE(send_lease(*checker, "client-q", 4, 5000), nullptr);
  wait_for(1);
  ASSERT_EQ(outcomes_.received.size(), 1u);
  const CheckOutcome& first = outcomes_.received[0];
  ASSERT_EQ(first.error, CheckError::none);
  EXPECT_TRUE(first.decision.allowed);
  EXPECT_EQ(first.decision.remaining, 9u);  // not counting the grant
  const LeaseGrant lease = first.lease;
  EXPECT_GT(lease.units, 0u);
  EXPECT_LE(lease.units, 4u);
  EXPECT_LE(lease.units, 9u / kLeaseShare);
  EXPECT_GT(lease.lease_ms, 0u);
  EXPECT_LE(lease.lease_ms, 5000u);
  send(*checker, "client-q");
  wait_for(2);
  ASSERT_EQ(outcomes_.received.size(), 2u);
  EXPECT_EQ(outcomes_.received[1].error, CheckError::none);
  EXPECT_EQ(outcomes_.received[1].decision.remaining, 8u - lease.units);
  EXPECT_EQ(outcomes_.received[1].lease.units, 0u);  // asked for none
  EXPECT_EQ(checker->counters().round_trips.load() - round_trips, 2u);
  EXPECT_EQ(checker->pending_count(), 0u);
}

// The check that asked was cancelled (its client left): the grant Redis made
// for it goes back at once, not stranded until it leaves the window.
TEST_F(RedisCheckerTest, AGrantForACancelledCheckGoesBackAtOnce) {
  auto checker = make_checker();
  PendingCheck* asking = send_lease(*checker, "client-c", 4, 5000);
  ASSERT_NE(asking, nullptr);
  send(*checker, "client-c");  // joins the lease entry
  checker->cancel(asking);
  wait_for(1);
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_EQ(outcomes_.received[0].decision.remaining, 8u);  // both counted, not the grant
  send(*checker, "client-c");
  wait_for(2);
  ASSERT_EQ(outcomes_.received.size(), 2u);
  ASSERT_EQ(outcomes_.received[1].error, CheckError::none);
  // 10 - 3 requests: the grant (2 units here) was handed back before it.
  EXPECT_EQ(outcomes_.received[1].decision.remaining, 7u);
  EXPECT_EQ(checker->pending_count(), 0u);
}

// Checks of the key that ask for none join the lease entry; only the asking
// one gets the grant.
TEST_F(RedisCheckerTest, OnlyTheAskingCheckOfALeaseEntryGetsTheGrant) {
  auto checker = make_checker();
  send_lease(*checker, "client-r", 2, 5000);
  send(*checker, "client-r");
  send(*checker, "client-r");
  wait_for(3);
  ASSERT_EQ(outcomes_.received.size(), 3u);
  for (const CheckOutcome& outcome : outcomes_.received) {
    ASSERT_EQ(outcome.error, CheckError::none);
    EXPECT_TRUE(outcome.decision.allowed);
  }
  const LeaseGrant lease = outcomes_.received[0].lease;
  EXPECT_GT(lease.units, 0u);
  EXPECT_EQ(outcomes_.received[1].lease.units, 0u);
  EXPECT_EQ(outcomes_.received[2].lease.units, 0u);
  EXPECT_EQ(outcomes_.received[2].decision.remaining, 7u);  // not counting the grant
  send(*checker, "client-r");
  wait_for(4);
  EXPECT_EQ(outcomes_.received[3].decision.remaining, 6u - lease.units);
}

// A hand-back and a check of the key in one batch: the check, after it,
// sees the units given back.
TEST_F(RedisCheckerTest, AHandBackRestoresTheUnitsForTheChecksAfterIt) {
  auto checker = make_checker();
  send_lease(*checker, "client-s", 4, 5000);
  wait_for(1);
  const LeaseGrant lease = outcomes_.received.at(0).lease;
  ASSERT_GT(lease.units, 0u);
  const ZoneRequest zone = request_for("client-s");
  checker->hand_back(zone, lease.mark, lease.units, lease.units);
  send(*checker, "client-s");
  wait_for(2);
  ASSERT_EQ(outcomes_.received.size(), 2u);
  EXPECT_EQ(outcomes_.received[1].error, CheckError::none);
  EXPECT_EQ(outcomes_.received[1].decision.remaining, 8u);  // the two checks only
  EXPECT_EQ(loop_.count_logs(LogLevel::error), 0u);
}

// Nobody waits for a hand-back: a batch of only hand-backs is sent all the
// same (one round trip), answered and released; no check is pending.
TEST_F(RedisCheckerTest, ABatchOfOnlyHandBacksIsSentAndReleased) {
  auto checker = make_checker();
  send_lease(*checker, "client-t", 4, 5000);
  send_lease(*checker, "client-t2", 4, 5000);
  wait_for(2);
  const LeaseGrant lease = outcomes_.received.at(0).lease;
  const LeaseGrant lease2 = outcomes_.received.at(1).lease;
  ASSERT_GT(lease.units, 0u);
  ASSERT_GT(lease2.units, 0u);
  freeReplyObject(command(admin_.get(), "CONFIG RESETSTAT"));
  const uint64_t round_trips = checker->counters().round_trips.load();
  const ZoneRequest zone = request_for("client-t");
  const ZoneRequest zone2 = request_for("client-t2");
  checker->hand_back(zone, lease.mark, lease.units, lease.units);
  checker->hand_back(zone2, lease2.mark, lease2.units, lease2.units);
  EXPECT_EQ(checker->pending_count(), 0u);
  EXPECT_TRUE(loop_.run_until([&] { return calls_of(admin_.get(), "evalsha") == 1; }, 2000));
  loop_.run_for(20);
  EXPECT_EQ(checker->counters().round_trips.load() - round_trips, 1u);
  EXPECT_EQ(checker->pending_count(), 0u);
  EXPECT_EQ(checker->counters().errors.load(), 0u);
  EXPECT_EQ(loop_.count_logs(LogLevel::error), 0u);
  send(*checker, "client-t");
  send(*checker, "client-t2");
  wait_for(4);
  EXPECT_EQ(outcomes_.received.at(2).decision.remaining, 8u);  // every unit given back
  EXPECT_EQ(outcomes_.received.at(3).decision.remaining, 8u);
}

// Whatever the script answers a hand-back (a script without them refuses the
// batch), a batch of only one is sent once, nobody is called back, and the
// batch goes: the connection carries on with the next check.
TEST_F(RedisCheckerTest, AHandBackAloneIsSentOnceWhateverTheAnswer) {
  auto checker = make_checker();
  freeReplyObject(command(admin_.get(), "CONFIG RESETSTAT"));
  const uint64_t round_trips = checker->counters().round_trips.load();
  const ZoneRequest zone = request_for("client-w");
  checker->hand_back(zone, 12345, 3, 2);
  EXPECT_EQ(checker->pending_count(), 0u);
  EXPECT_TRUE(loop_.run_until([&] { return calls_of(admin_.get(), "evalsha") == 1; }, 2000));
  loop_.run_for(20);
  EXPECT_EQ(checker->counters().round_trips.load() - round_trips, 1u);
  EXPECT_EQ(checker->pending_count(), 0u);
  EXPECT_TRUE(outcomes_.received.empty());
  EXPECT_TRUE(checker->connected());
  send(*checker, "client-w");
  wait_for(1);
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_EQ(outcomes_.received[0].error, CheckError::none);
  EXPECT_EQ(checker->counters().round_trips.load() - round_trips, 2u);
}

// Nothing to give back (no units, or more than the grant): nothing is sent.
TEST_F(RedisCheckerTest, AnEmptyOrImpossibleHandBackIsNotSent) {
  auto checker = make_checker();
  const uint64_t round_trips = checker->counters().round_trips.load();
  const ZoneRequest zone = request_for("client-v");
  checker->hand_back(zone, 1, 3, 0);
  checker->hand_back(zone, 1, 1, 2);
  loop_.run_for(30);
  EXPECT_EQ(checker->counters().round_trips.load(), round_trips);
  EXPECT_EQ(checker->pending_count(), 0u);
}

// A hand-back sent to a Redis that does not answer is dropped when the
// connection is found late and fails (released with it: no check to fail).
TEST_F(RedisCheckerTest, AHandBackToAPausedRedisGoesWithItsConnection) {
  auto checker = make_checker();
  send(*checker, "client-u");
  wait_for(1);
  loop_.run_for(150);  // the check's timeout sweep is over: the hand-back arms its own
  freeReplyObject(command(admin_.get(), "CLIENT PAUSE 300 ALL"));
  const ZoneRequest zone = request_for("client-u");
  checker->hand_back(zone, 1, 2, 2);
  EXPECT_TRUE(loop_.run_until([&] { return !checker->connected(); }, 1000));
  EXPECT_EQ(checker->pending_count(), 0u);
  loop_.run_for(300);
  EXPECT_TRUE(loop_.run_until([&] { return checker->connected(); }, 3000));
  send(*checker, "client-u");
  wait_for(2);
  EXPECT_EQ(outcomes_.received.back().error, CheckError::none);
}

TEST(DecodeCheckReply, RejectsRepliesOfTheWrongShape) {
  redisReply integer{};
  integer.type = REDIS_REPLY_INTEGER;
  integer.integer = 1;
  redisReply* elements[4] = {&integer, &integer, &integer, &integer};
  redisReply array{};
  array.type = REDIS_REPLY_ARRAY;
  array.elements = 4;
  array.element = elements;
  ZoneVerdict verdicts[2];
  EXPECT_TRUE(decode_check_reply(&array, 0, 1, verdicts));
  EXPECT_FALSE(decode_check_reply(&array, 0, 2, verdicts));
  EXPECT_FALSE(decode_check_reply(&array, 1, 1, verdicts));
  redisReply negative{};
  negative.type = REDIS_REPLY_INTEGER;
  negative.integer = -1;
  elements[2] = &negative;
  EXPECT_FALSE(decode_check_reply(&array, 0, 1, verdicts));
  EXPECT_FALSE(decode_check_reply(nullptr, 0, 1, verdicts));
}

// ---- count=after and the operator's rules ---------------------------------

// What set_charge_lost() reports.
struct LostCharges {
  std::vector<std::pair<uint32_t, uint64_t>> lost;
  static void collect(void* data, uint32_t tag, uint64_t units) {
    static_cast<LostCharges*>(data)->lost.emplace_back(tag, units);
  }
};

class RedisCheckerAfterTest : public RedisCheckerTest {
 protected:
  long long zcard(std::string_view key) {
    std::string redis_key;
    append_redis_key(redis_key, config_.prefix, zone_, key);
    redisReply* reply = static_cast<redisReply*>(redisCommand(admin_.get(), "ZCARD %b", redis_key.data(), redis_key.size()));
    const long long n = reply != nullptr && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    freeReplyObject(reply);
    return n;
  }

  void set_rule(std::string_view key, const std::string& value) {
    std::string rule_key;
    append_rule_key(rule_key, config_.prefix, zone_.name, key);
    freeReplyObject(redisCommand(admin_.get(), "SET %b %b", rule_key.data(), rule_key.size(), value.data(),
                                 value.size()));
  }

  // Redis's clock, in ms.
  uint64_t redis_ms() {
    redisReply* reply = command(admin_.get(), "TIME");
    const uint64_t ms = std::stoull(reply->element[0]->str) * 1000 + std::stoull(reply->element[1]->str) / 1000;
    freeReplyObject(reply);
    return ms;
  }

  LostCharges lost_;
};

// count=after's check before the request (cost 0) counts nothing and reports
// the quota before the request.
TEST_F(RedisCheckerAfterTest, ACheckOfCostZeroCountsNothing) {
  auto checker = make_checker();
  for (int i = 0; i < 3; i++) {
    send(*checker, "client-p", 0);
  }
  wait_for(3);
  ASSERT_EQ(outcomes_.allowed(), 3u);
  for (const CheckOutcome& outcome : outcomes_.received) {
    EXPECT_EQ(outcome.decision.remaining, 10u);
  }
  EXPECT_EQ(zcard("client-p"), 0);
}

// Charges are recorded whether or not they fit: the client then waits.
TEST_F(RedisCheckerAfterTest, ChargesAreCountedEvenOverTheLimit) {
  auto checker = make_checker();
  checker->set_charge_lost(LostCharges::collect, &lost_);
  const ZoneRequest charge{&zone_, "client-q", 4, {zone_.limit, zone_.window_ms, zone_.burst}};
  for (int i = 0; i < 3; i++) {
    ASSERT_TRUE(checker->charge(charge, 7));
  }
  EXPECT_EQ(checker->pending_count(), 0u);  // nobody waits for a charge
  EXPECT_TRUE(loop_.run_until([&] { return zcard("client-q") == 12; }, 2000)) << zcard("client-q");
  send(*checker, "client-q", 0);
  wait_for(1);
  ASSERT_EQ(outcomes_.rejected(), 1u);
  EXPECT_GT(outcomes_.received[0].decision.reset_ms, 59000u);
  EXPECT_TRUE(lost_.lost.empty());
  EXPECT_EQ(loop_.count_logs(LogLevel::error), 0u);
}

TEST_F(RedisCheckerAfterTest, AChargeWhileRedisIsDownIsRefused) {
  auto checker = make_checker();
  server().stop();
  EXPECT_TRUE(loop_.run_until([&] { return !checker->connected(); }));
  const ZoneRequest charge{&zone_, "client-r", 1, {zone_.limit, zone_.window_ms, zone_.burst}};
  EXPECT_FALSE(checker->charge(charge, 0));
  server().start();
}

// A charge in a batch whose connection is lost is reported lost, with its tag and units.
TEST_F(RedisCheckerAfterTest, AChargeLostWithItsConnectionIsReported) {
  auto checker = make_checker();
  checker->set_charge_lost(LostCharges::collect, &lost_);
  send(*checker, "client-s2");
  wait_for(1);
  const ZoneRequest charge{&zone_, "client-s2", 3, {zone_.limit, zone_.window_ms, zone_.burst}};
  ASSERT_TRUE(checker->charge(charge, 5));
  send(*checker, "client-s2");  // a check of the same batch, to see it fail too
  redisReply* killed = command(admin_.get(), "CLIENT KILL TYPE normal SKIPME yes");
  ASSERT_EQ(killed->type, REDIS_REPLY_INTEGER);
  freeReplyObject(killed);
  wait_for(2);
  ASSERT_EQ(outcomes_.errors(CheckError::disconnected), 1u);
  ASSERT_EQ(lost_.lost.size(), 1u);
  EXPECT_EQ(lost_.lost[0], (std::pair<uint32_t, uint64_t>{5, 3}));
  EXPECT_EQ(zcard("client-s2"), 1);  // only the first check
}

// A ban rejects with its remaining time and is named in the outcome; an
// override gives the key its own limit.
TEST_F(RedisCheckerAfterTest, BansAndOverridesAreAppliedAndReported) {
  auto checker = make_checker();
  set_rule("client-u", "ban=" + std::to_string(redis_ms() + 30000));
  send(*checker, "client-u");
  send(*checker, "client-v");
  wait_for(2);
  ASSERT_EQ(outcomes_.received.size(), 2u);
  const CheckOutcome& banned = outcomes_.received[0];
  EXPECT_FALSE(banned.decision.allowed);
  EXPECT_EQ(banned.banned_zones, 1u);
  EXPECT_GT(banned.decision.reset_ms, 29000u);
  EXPECT_LE(banned.decision.reset_ms, 30000u);
  EXPECT_TRUE(outcomes_.received[1].decision.allowed);
  EXPECT_EQ(outcomes_.received[1].banned_zones, 0u);
  EXPECT_EQ(zcard("client-u"), 0);  // a rejection counts nothing

  set_rule("client-u", "rate=2/60000");
  for (int i = 0; i < 3; i++) {
    send(*checker, "client-u");
  }
  wait_for(5);
  ASSERT_EQ(outcomes_.received.size(), 5u);
  EXPECT_TRUE(outcomes_.received[2].decision.allowed);
  EXPECT_EQ(outcomes_.received[2].decision.limit, 2u);
  EXPECT_EQ(outcomes_.received[2].overridden_zones, 1u);
  EXPECT_TRUE(outcomes_.received[3].decision.allowed);
  EXPECT_FALSE(outcomes_.received[4].decision.allowed);  // the key's own limit of 2
  EXPECT_EQ(outcomes_.received[4].overridden_zones, 1u);
}

}  // namespace
}  // namespace checker_test
}  // namespace rate_guard
