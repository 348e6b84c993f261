// The Redis client with Redis Cluster, against a real cluster started here
// (three masters, a replica each, on loopback ports): the slot map, routing
// by slot, one round trip per slot, MOVED after a resharding, ASK during one,
// and a master's failover.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "libevent_loop.h"
#include "redis/redis_checker.h"
#include "redis/redis_key.h"
#include "redis_cluster.h"

namespace rate_guard {
namespace {

using testing::LibeventLoop;
using testing::RedisCluster;

class RedisClusterTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { cluster_ = new RedisCluster(3, 1); }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  void SetUp() override {
    zone_.name = "z";
    zone_.limit = 3;
    zone_.window_ms = 60000;
    zone_.burst = 3;
    other_zone_ = zone_;
    other_zone_.name = "other";
    other_zone_.limit = 5;
    other_zone_.burst = 5;
  }

  RedisConfig cluster_config() const {
    RedisConfig config;
    for (int port : cluster_->master_ports()) {
      config.cluster_nodes.push_back({"127.0.0.1", static_cast<uint16_t>(port), {}});
    }
    config.timeout_ms = 300;
    config.connect_timeout_ms = 300;
    return config;
  }

  std::unique_ptr<RedisChecker> connected_checker() {
    auto checker = std::make_unique<RedisChecker>(cluster_config(), loop_);
    checker->start();
    EXPECT_TRUE(loop_.run_until([&] { return checker->connected(); }, 3000));
    return checker;
  }

  struct Box {
    bool done = false;
    CheckOutcome outcome;
  };
  static void record(void* data, const CheckOutcome& outcome) {
    static_cast<Box*>(data)->done = true;
    static_cast<Box*>(data)->outcome = outcome;
  }

  // Starts a check (the box is filled when it is answered).
  void start_check(RedisChecker& checker, const ZoneRequest* zones, size_t count, Box* box) {
    CheckOutcome immediate;
    if (checker.check(zones, count, record, box, &immediate) == nullptr) {
      box->done = true;
      box->outcome = immediate;
    }
  }

  CheckOutcome check_once(RedisChecker& checker, const std::string& key) {
    ZoneRequest request{&zone_, key, 1, {zone_.limit, zone_.window_ms, zone_.burst}};
    Box box;
    start_check(checker, &request, 1, &box);
    loop_.run_until([&] { return box.done; }, 3000);
    EXPECT_TRUE(box.done);
    return box.outcome;
  }

  static std::string redis_key(const ZoneConfig& zone, const std::string& client) {
    std::string key;
    append_redis_key(key, "rate_guard:", zone, client, KeyLayout::hash_tagged);
    return key;
  }

  // Whether the node on `port` holds `key` (asked behind ASKING, so that an
  // importing master answers for the keys it already has).
  static bool holds(int port, const std::string& key) {
    redisContext* c = cluster_->connect(port);
    freeReplyObject(redisCommand(c, "ASKING"));
    auto* reply = static_cast<redisReply*>(redisCommand(c, "EXISTS %b", key.data(), key.size()));
    const bool found = reply != nullptr && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1;
    freeReplyObject(reply);
    redisFree(c);
    return found;
  }

  // How many TRYAGAIN errors the node on `port` has answered (INFO errorstats).
  static long long try_again_count(int port) {
    redisContext* c = cluster_->connect(port);
    auto* reply = static_cast<redisReply*>(redisCommand(c, "INFO errorstats"));
    long long count = 0;
    if (reply != nullptr && reply->type == REDIS_REPLY_STRING) {
      const std::string text(reply->str, reply->len);
      const std::string field = "errorstat_TRYAGAIN:count=";
      const size_t at = text.find(field);
      if (at != std::string::npos) count = std::stoll(text.substr(at + field.size()));
    }
    freeReplyObject(reply);
    redisFree(c);
    return count;
  }

  // A client key whose slot is served by the master on `port`, unused so far.
  std::string client_on(int port) {
    for (;;) {
      std::string client = "client-" + std::to_string(next_client_++);
      if (cluster_->master_port_for_slot(cluster_key_slot(redis_key(zone_, client))) == port) {
        return client;
      }
    }
  }

  bool logged(std::string_view text) const {
    for (const auto& log : loop_.logs) {
      if (log.second.find(text) != std::string::npos) return true;
    }
    return false;
  }

  static inline RedisCluster* cluster_ = nullptr;
  static inline int next_client_ = 0;
  LibeventLoop loop_;
  ZoneConfig zone_;
  ZoneConfig other_zone_;
};

TEST_F(RedisClusterTest, LearnsTheSlotMapAndConnectsToEveryMaster) {
  auto checker = connected_checker();
  EXPECT_EQ(checker->node_count(), 3u);
  std::set<std::string> masters;
  for (int port : cluster_->master_ports()) masters.insert("127.0.0.1:" + std::to_string(port));
  std::set<std::string> used;
  std::string addresses = checker->address();
  for (size_t begin = 0; begin <= addresses.size();) {
    size_t end = addresses.find(',', begin);
    if (end == std::string::npos) end = addresses.size();
    used.insert(addresses.substr(begin, end - begin));
    begin = end + 1;
  }
  EXPECT_EQ(used, masters);
}

TEST_F(RedisClusterTest, EachCheckGoesToTheMasterOfItsKeysSlot) {
  auto checker = connected_checker();
  for (int port : cluster_->master_ports()) {
    const std::string client = client_on(port);
    CheckOutcome outcome = check_once(*checker, client);
    ASSERT_EQ(outcome.error, CheckError::none) << check_error_name(outcome.error);
    EXPECT_TRUE(outcome.decision.allowed);
    EXPECT_TRUE(holds(port, redis_key(zone_, client))) << client << " not on " << port;
    EXPECT_EQ(cluster_->key_slot(redis_key(zone_, client)), cluster_key_slot(redis_key(zone_, client)));
  }
  EXPECT_EQ(loop_.count_logs(LogLevel::error), 0u);
}

// Many clients in one loop turn: one EVALSHA per slot, every check decided
// exactly (limit 3: 3 of 5 pass per client).
TEST_F(RedisClusterTest, ATurnOfManyClientsIsDecidedExactly) {
  auto checker = connected_checker();
  std::vector<std::string> clients;
  for (int i = 0; i < 60; i++) clients.push_back("turn-" + std::to_string(next_client_++));
  std::vector<ZoneRequest> requests;
  for (const std::string& client : clients) {
    for (int n = 0; n < 5; n++) requests.push_back({&zone_, client, 1, {zone_.limit, zone_.window_ms, zone_.burst}});
  }
  std::vector<Box> boxes(requests.size());
  const uint64_t trips_before = checker->counters().round_trips.load();
  for (size_t i = 0; i < requests.size(); i++) start_check(*checker, &requests[i], 1, &boxes[i]);
  ASSERT_TRUE(loop_.run_until(
      [&] {
        for (const Box& box : boxes) {
          if (!box.done) return false;
        }
        return true;
      },
      3000));
  for (size_t c = 0; c < clients.size(); c++) {
    int passed = 0;
    for (int n = 0; n < 5; n++) {
      const Box& box = boxes[c * 5 + n];
      ASSERT_EQ(box.outcome.error, CheckError::none) << check_error_name(box.outcome.error);
      passed += box.outcome.decision.allowed;
    }
    EXPECT_EQ(passed, 3) << clients[c];
  }
  std::set<uint16_t> slots;
  for (const std::string& client : clients) slots.insert(cluster_key_slot(redis_key(zone_, client)));
  EXPECT_EQ(checker->counters().round_trips.load() - trips_before, slots.size());
}

// The zones of one client share a slot (the hash tag): one round trip, all
// or nothing. Zones of different clients may not: one round trip per slot.
TEST_F(RedisClusterTest, OneClientsZonesAreOneRoundTripOtherClientsOnePerSlot) {
  auto checker = connected_checker();
  const std::string client = client_on(cluster_->master_ports()[0]);
  ZoneRequest same[2] = {{&zone_, client, 1, {zone_.limit, zone_.window_ms, zone_.burst}},
                         {&other_zone_, client, 1, {other_zone_.limit, other_zone_.window_ms, other_zone_.burst}}};
  uint64_t trips = checker->counters().round_trips.load();
  Box box;
  start_check(*checker, same, 2, &box);
  ASSERT_TRUE(loop_.run_until([&] { return box.done; }, 3000));
  ASSERT_EQ(box.outcome.error, CheckError::none);
  EXPECT_EQ(checker->counters().round_trips.load() - trips, 1u);
  EXPECT_EQ(box.outcome.decision.limit, 3u);  // the most restrictive zone
  EXPECT_EQ(box.outcome.decision.remaining, 2u);

  const std::string elsewhere = client_on(cluster_->master_ports()[1]);
  ZoneRequest split[2] = {{&zone_, client, 1, {zone_.limit, zone_.window_ms, zone_.burst}},
                          {&other_zone_, elsewhere, 1, {other_zone_.limit, other_zone_.window_ms, other_zone_.burst}}};
  trips = checker->counters().round_trips.load();
  Box split_box;
  start_check(*checker, split, 2, &split_box);
  ASSERT_TRUE(loop_.run_until([&] { return split_box.done; }, 3000));
  ASSERT_EQ(split_box.outcome.error, CheckError::none);
  EXPECT_EQ(checker->counters().round_trips.load() - trips, 2u);
  EXPECT_TRUE(split_box.outcome.decision.allowed);
  EXPECT_EQ(split_box.outcome.decision.remaining, 1u);  // zone z: 3 - 2
  EXPECT_TRUE(holds(cluster_->master_ports()[1], redis_key(other_zone_, elsewhere)));
}

TEST_F(RedisClusterTest, AConfiguredNodeThatIsDownIsSkipped) {
  RedisConfig config = cluster_config();
  config.cluster_nodes.insert(config.cluster_nodes.begin(), {"127.0.0.1", 1, {}});  // nothing listens there
  RedisChecker checker(config, loop_);
  checker.start();
  ASSERT_TRUE(loop_.run_until([&] { return checker.connected(); }, 3000));
  EXPECT_EQ(check_once(checker, "skip-" + std::to_string(next_client_++)).error, CheckError::none);
  EXPECT_TRUE(logged("127.0.0.1:1"));
}

TEST_F(RedisClusterTest, NoNodeAnsweringMeansChecksAreDecidedAtOnce) {
  RedisConfig config = cluster_config();
  config.cluster_nodes = {{"127.0.0.1", 1, {}}};
  RedisChecker checker(config, loop_);
  checker.start();
  loop_.run_for(200);
  EXPECT_FALSE(checker.connected());
  EXPECT_EQ(check_once(checker, "nobody").error, CheckError::unavailable);
  EXPECT_TRUE(logged("cannot connect to cluster node 127.0.0.1:1"));
}

// A standalone Redis given as a cluster node answers CLUSTER SLOTS with an
// error: said in the log, checks decided by the fail policy.
TEST_F(RedisClusterTest, ARedisWithoutClusterIsAClearError) {
  testing::RedisServer standalone;
  RedisConfig config = cluster_config();
  config.cluster_nodes = {{"127.0.0.1", static_cast<uint16_t>(standalone.port()), {}}};
  RedisChecker checker(config, loop_);
  checker.start();
  loop_.run_for(200);
  EXPECT_EQ(check_once(checker, "standalone").error, CheckError::unavailable);
  EXPECT_TRUE(logged("cluster support disabled")) << (loop_.logs.empty() ? "" : loop_.logs.back().second);
}

// A resharding moves a client's slot to another master: the old master
// answers MOVED, the check follows it at once, the count goes on where it
// was (the key moved with the slot), and the next checks go to the new
// master directly.
TEST_F(RedisClusterTest, FollowsMovedAfterAResharding) {
  auto checker = connected_checker();
  const std::vector<int> masters = cluster_->master_ports();
  const std::string client = client_on(masters[0]);
  const uint16_t slot = cluster_key_slot(redis_key(zone_, client));
  ASSERT_EQ(check_once(*checker, client).decision.remaining, 2u);

  const uint64_t redirects = checker->counters().redirects.load();
  const uint64_t refreshes = checker->counters().slot_map_refreshes.load();
  cluster_->move_slot(slot, masters[1]);
  CheckOutcome outcome = check_once(*checker, client);
  EXPECT_EQ(checker->counters().redirects.load() - redirects, 1u);
  // ... and asked for the map again (within the 100 ms that separate two refreshes).
  EXPECT_TRUE(loop_.run_until([&] { return checker->counters().slot_map_refreshes.load() > refreshes; }, 1000));
  ASSERT_EQ(outcome.error, CheckError::none) << check_error_name(outcome.error);
  EXPECT_EQ(outcome.decision.remaining, 1u);
  EXPECT_TRUE(holds(masters[1], redis_key(zone_, client)));
  EXPECT_FALSE(holds(masters[0], redis_key(zone_, client)));

  const uint64_t trips = checker->counters().round_trips.load();
  outcome = check_once(*checker, client);
  ASSERT_EQ(outcome.error, CheckError::none);
  EXPECT_EQ(outcome.decision.remaining, 0u);
  EXPECT_EQ(checker->counters().round_trips.load() - trips, 1u);  // no redirection any more
  EXPECT_EQ(loop_.count_logs(LogLevel::error), 0u);
}

// While a slot migrates, a key not yet on the source is asked of the
// destination (ASK, then ASKING + the check there).
TEST_F(RedisClusterTest, FollowsAskDuringAMigration) {
  auto checker = connected_checker();
  const std::vector<int> masters = cluster_->master_ports();
  const std::string client = client_on(masters[2]);
  const uint16_t slot = cluster_key_slot(redis_key(zone_, client));
  cluster_->begin_migration(slot, masters[0]);
  CheckOutcome outcome = check_once(*checker, client);
  ASSERT_EQ(outcome.error, CheckError::none) << check_error_name(outcome.error);
  EXPECT_EQ(outcome.decision.remaining, 2u);
  EXPECT_FALSE(holds(masters[2], redis_key(zone_, client)));
  cluster_->finish_migration(slot);
  EXPECT_TRUE(holds(masters[0], redis_key(zone_, client)));
  outcome = check_once(*checker, client);
  ASSERT_EQ(outcome.error, CheckError::none);
  EXPECT_EQ(outcome.decision.remaining, 1u);
  EXPECT_EQ(loop_.count_logs(LogLevel::error), 0u);
}

// While a slot migrates Redis runs a command of several keys only where all
// of them are (TRYAGAIN otherwise): a batch of several keys goes on zone by
// zone, each key where it is. Three cases: a client whose two keys are split
// (one migrated: the source answers TRYAGAIN), a new client with two zones
// (no key anywhere: ASK, then TRYAGAIN on the importing side if sent whole),
// and two clients of the slot in one loop turn.
TEST_F(RedisClusterTest, ChecksOfSeveralKeysGoOnWhileTheirSlotMigrates) {
  auto checker = connected_checker();
  const std::vector<int> masters = cluster_->master_ports();
  const std::string client = client_on(masters[1]);
  const uint16_t slot = cluster_key_slot(redis_key(zone_, client));
  auto both = [&](const std::string& key) {
    return std::vector<ZoneRequest>{
        {&zone_, key, 1, {zone_.limit, zone_.window_ms, zone_.burst}},
        {&other_zone_, key, 1, {other_zone_.limit, other_zone_.window_ms, other_zone_.burst}}};
  };
  std::vector<ZoneRequest> first_zones = both(client);
  Box first;
  start_check(*checker, first_zones.data(), 2, &first);
  ASSERT_TRUE(loop_.run_until([&] { return first.done; }, 3000));
  ASSERT_EQ(first.outcome.error, CheckError::none);

  cluster_->begin_migration(slot, masters[2]);
  const std::string moved_key = redis_key(other_zone_, client);
  redisContext* source = cluster_->connect(masters[1]);
  auto* reply = static_cast<redisReply*>(redisCommand(source, "MIGRATE 127.0.0.1 %d %b 0 5000", masters[2],
                                                      moved_key.data(), moved_key.size()));
  ASSERT_TRUE(reply != nullptr && reply->type == REDIS_REPLY_STATUS) << (reply ? reply->str : "no reply");
  freeReplyObject(reply);
  redisFree(source);
  const long long try_again_before = try_again_count(masters[1]);

  // The split client, a new client of the slot, and two one-zone clients of it.
  std::string fresh = "fresh-" + std::to_string(next_client_++);
  while (cluster_key_slot(redis_key(zone_, fresh)) != slot) fresh = "fresh-" + std::to_string(next_client_++);
  std::string lone[2];
  for (std::string& key : lone) {
    key = "lone-" + std::to_string(next_client_++);
    while (cluster_key_slot(redis_key(zone_, key)) != slot) key = "lone-" + std::to_string(next_client_++);
  }
  std::vector<ZoneRequest> split_zones = both(client);
  std::vector<ZoneRequest> fresh_zones = both(fresh);
  ZoneRequest lone_zones[2] = {{&zone_, lone[0], 1, {zone_.limit, zone_.window_ms, zone_.burst}},
                               {&zone_, lone[1], 1, {zone_.limit, zone_.window_ms, zone_.burst}}};
  Box split, created, lone_boxes[2];
  start_check(*checker, split_zones.data(), 2, &split);
  start_check(*checker, fresh_zones.data(), 2, &created);
  start_check(*checker, &lone_zones[0], 1, &lone_boxes[0]);
  start_check(*checker, &lone_zones[1], 1, &lone_boxes[1]);
  ASSERT_TRUE(loop_.run_until(
      [&] { return split.done && created.done && lone_boxes[0].done && lone_boxes[1].done; }, 3000));
  for (const Box* box : {&split, &created, &lone_boxes[0], &lone_boxes[1]}) {
    ASSERT_EQ(box->outcome.error, CheckError::none) << check_error_name(box->outcome.error);
    EXPECT_TRUE(box->outcome.decision.allowed);
  }
  EXPECT_EQ(split.outcome.decision.remaining, 1u);    // zone z: 3 - 2
  EXPECT_EQ(created.outcome.decision.remaining, 2u);  // zone z: 3 - 1
  EXPECT_GT(try_again_count(masters[1]), try_again_before) << "the source never answered TRYAGAIN";
  EXPECT_TRUE(holds(masters[1], redis_key(zone_, client)));  // not migrated yet: counted on the source
  EXPECT_TRUE(holds(masters[2], moved_key));                  // migrated: counted on the destination
  EXPECT_TRUE(holds(masters[2], redis_key(zone_, fresh)));    // new keys: on the importing side
  EXPECT_TRUE(holds(masters[2], redis_key(other_zone_, fresh)));

  cluster_->finish_migration(slot);
  std::vector<ZoneRequest> after_zones = both(client);
  Box after;
  start_check(*checker, after_zones.data(), 2, &after);
  ASSERT_TRUE(loop_.run_until([&] { return after.done; }, 3000));
  ASSERT_EQ(after.outcome.error, CheckError::none);
  EXPECT_EQ(after.outcome.decision.remaining, 0u);  // zone z: every check counted once
  EXPECT_EQ(loop_.count_logs(LogLevel::error), 0u);
}

// A master that stops answering (CLIENT PAUSE): its clients get one timeout,
// then the fail policy at once while it is out; the other masters' clients
// are not touched; once it answers again it is used again.
TEST_F(RedisClusterTest, AHungMasterCostsOnlyItsOwnSlots) {
  auto checker = connected_checker();
  const std::vector<int> masters = cluster_->master_ports();
  const std::string on_hung = client_on(masters[0]);
  const std::string elsewhere = client_on(masters[1]);
  redisContext* admin = cluster_->connect(masters[0]);
  freeReplyObject(redisCommand(admin, "CLIENT PAUSE 1500 ALL"));
  redisFree(admin);

  EXPECT_EQ(check_once(*checker, on_hung).error, CheckError::timeout);
  EXPECT_EQ(check_once(*checker, on_hung).error, CheckError::unavailable);  // decided at once
  for (int i = 0; i < 5; i++) {
    CheckOutcome outcome = check_once(*checker, elsewhere);
    ASSERT_EQ(outcome.error, CheckError::none) << check_error_name(outcome.error);
  }
  EXPECT_TRUE(logged("Redis 127.0.0.1:" + std::to_string(masters[0]) + " did not answer within 300ms"));
  EXPECT_TRUE(loop_.run_until([&] { return check_once(*checker, on_hung).error == CheckError::none; }, 5000));
}

// Last in the suite: it kills a master. Checks go on during the failover,
// each answered (by Redis or by the fail policy), none hangs; then the
// client finds the promoted replica through the slot map and is exact again.
TEST_F(RedisClusterTest, FollowsAFailover) {
  auto checker = connected_checker();
  const int victim = cluster_->master_ports()[0];
  const std::string client = client_on(victim);
  ASSERT_EQ(check_once(*checker, client).error, CheckError::none);
  const int promoted = cluster_->kill_master_and_wait_failover(victim);
  size_t answered = 0;
  const bool back = loop_.run_until(
      [&] {
        CheckOutcome outcome = check_once(*checker, "failover-" + std::to_string(answered++));
        return checker->connected() && outcome.error == CheckError::none;
      },
      15000);
  ASSERT_TRUE(back) << "masters in use: " << checker->address();
  EXPECT_EQ(checker->node_count(), 3u);
  EXPECT_EQ(checker->address().find("127.0.0.1:" + std::to_string(victim)), std::string::npos);
  CheckOutcome outcome = check_once(*checker, client);
  ASSERT_EQ(outcome.error, CheckError::none);
  EXPECT_TRUE(holds(promoted, redis_key(zone_, client)));
  EXPECT_TRUE(logged("Redis Cluster masters: ")) << "the new map is not logged";
  EXPECT_TRUE(logged("127.0.0.1:" + std::to_string(promoted) + " (")) << "the promoted replica is not named";
}

}  // namespace
}  // namespace rate_guard
