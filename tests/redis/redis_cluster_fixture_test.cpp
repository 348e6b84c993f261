// The RedisCluster fixture itself: the cluster comes up with every slot
// served, a moved slot answers MOVED on its old master (and ASK while half
// migrated), and a killed master's replica takes over.
#include "redis_cluster.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <chrono>
#include <set>
#include <string>
#include <vector>

namespace rate_guard {
namespace {

using testing::RedisCluster;

// One command on a fresh connection to that node; the reply as text
// ("(nil)" for a nil, the message for an error, the first element of an array).
std::string ask(const RedisCluster& cluster, int port, const std::vector<std::string>& args) {
  redisContext* c = cluster.connect(port);
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  auto* reply = static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(args.size()), argv.data(), lengths.data()));
  std::string text = "(no reply)";
  if (reply != nullptr) {
    if (reply->type == REDIS_REPLY_NIL) {
      text = "(nil)";
    } else if (reply->type == REDIS_REPLY_INTEGER) {
      text = std::to_string(reply->integer);
    } else if (reply->type == REDIS_REPLY_ARRAY) {  // its first element (ROLE)
      text = reply->elements > 0 && reply->element[0]->str != nullptr
                 ? std::string(reply->element[0]->str, reply->element[0]->len)
                 : "(array)";
    } else if (reply->str != nullptr) {
      text = std::string(reply->str, reply->len);
    }
  }
  freeReplyObject(reply);
  redisFree(c);
  return text;
}

std::string address(int port) { return "127.0.0.1:" + std::to_string(port); }

// A master other than `port`.
int other_master(const RedisCluster& cluster, int port) {
  for (int master : cluster.master_ports()) {
    if (master != port) return master;
  }
  return -1;
}

TEST(RedisClusterFixture, ComesUpWithEverySlotServed) {
  const auto started = std::chrono::steady_clock::now();
  RedisCluster cluster(3, 1);
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  RecordProperty("start_seconds", std::to_string(seconds));
  EXPECT_LT(seconds, 15.0) << "the cluster took " << seconds << " s to start";

  EXPECT_EQ(cluster.ports().size(), 6u);
  const std::vector<int> masters = cluster.master_ports();
  ASSERT_EQ(masters.size(), 3u);
  std::string seeds;
  for (int port : masters) seeds += (seeds.empty() ? "" : ",") + address(port);
  EXPECT_EQ(cluster.seeds(), seeds);
  for (int port : cluster.ports()) {
    const std::string info = ask(cluster, port, {"CLUSTER", "INFO"});
    EXPECT_NE(info.find("cluster_state:ok"), std::string::npos) << port;
    EXPECT_NE(info.find("cluster_slots_assigned:16384"), std::string::npos) << port;
    EXPECT_NE(info.find("cluster_known_nodes:6"), std::string::npos) << port;
  }
  std::set<int> owners;
  for (int slot = 0; slot < 16384; slot += 97) {
    const int owner = cluster.master_port_for_slot(slot);
    ASSERT_NE(owner, -1) << "slot " << slot;
    owners.insert(owner);
  }
  EXPECT_EQ(owners.size(), 3u);
  EXPECT_NE(cluster.master_port_for_slot(16383), -1);
  for (int port : masters) EXPECT_EQ(cluster.replica_ports(port).size(), 1u) << port;

  // CLUSTER KEYSLOT, and the hash tag the module's keys carry.
  EXPECT_EQ(cluster.key_slot("foo"), 12182);
  EXPECT_EQ(cluster.key_slot("rate_guard:a:{client}"), cluster.key_slot("client"));
  EXPECT_EQ(cluster.key_slot("rate_guard:b:{client}"), cluster.key_slot("rate_guard:a:{client}"));
  const int owner = cluster.master_port_for_slot(cluster.key_slot("foo"));
  EXPECT_EQ(ask(cluster, owner, {"SET", "foo", "bar"}), "OK");
  EXPECT_EQ(ask(cluster, other_master(cluster, owner), {"GET", "foo"}),
            "MOVED 12182 " + address(owner));
}

TEST(RedisClusterFixture, MovedSlotAnswersMovedOnItsOldMaster) {
  RedisCluster cluster(3, 1);
  const std::string key = "rate_guard:exact:{moving}";
  const int slot = cluster.key_slot(key);
  const int from = cluster.master_port_for_slot(slot);
  const int to = other_master(cluster, from);
  ASSERT_EQ(ask(cluster, from, {"SET", key, "60"}), "OK");
  ASSERT_EQ(ask(cluster, from, {"PEXPIRE", key, "600000"}), "1");
  ASSERT_EQ(ask(cluster, from, {"SET", "rate_guard:wide:{moving}", "1"}), "OK");

  // Half migrated: a key not yet moved is still served by the source; once
  // moved, the source answers ASK and the destination serves it after ASKING.
  cluster.begin_migration(slot, to);
  EXPECT_EQ(ask(cluster, from, {"GET", key}), "60");
  EXPECT_EQ(ask(cluster, from, {"GET", "rate_guard:other:{moving}"}),
            "ASK " + std::to_string(slot) + " " + address(to));
  EXPECT_EQ(cluster.migrate_keys(slot), 2u);
  EXPECT_EQ(ask(cluster, from, {"GET", key}), "ASK " + std::to_string(slot) + " " + address(to));
  EXPECT_EQ(ask(cluster, to, {"GET", key}), "MOVED " + std::to_string(slot) + " " + address(from));
  {
    redisContext* c = cluster.connect(to);
    freeReplyObject(redisCommand(c, "ASKING"));
    auto* reply = static_cast<redisReply*>(redisCommand(c, "GET %s", key.c_str()));
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(std::string(reply->str, reply->len), "60");
    freeReplyObject(reply);
    redisFree(c);
  }
  EXPECT_EQ(cluster.master_port_for_slot(slot), from);

  cluster.finish_migration(slot);
  EXPECT_EQ(cluster.master_port_for_slot(slot), to);
  for (int port : cluster.ports()) EXPECT_EQ(cluster.master_port_for_slot(slot), to) << port;
  EXPECT_EQ(ask(cluster, from, {"GET", key}), "MOVED " + std::to_string(slot) + " " + address(to));
  EXPECT_EQ(ask(cluster, to, {"GET", key}), "60");
  const int ttl = std::stoi(ask(cluster, to, {"PTTL", key}));
  EXPECT_GT(ttl, 500000) << "MIGRATE keeps the TTL";
  EXPECT_EQ(ask(cluster, to, {"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)}), "2");
  EXPECT_EQ(ask(cluster, from, {"CLUSTER", "COUNTKEYSINSLOT", std::to_string(slot)}), "0");

  // move_slot, all in one: back again, with a key written meanwhile.
  ASSERT_EQ(ask(cluster, to, {"INCR", key}), "61");
  cluster.move_slot(slot, from);
  EXPECT_EQ(cluster.master_port_for_slot(slot), from);
  EXPECT_EQ(ask(cluster, to, {"GET", key}), "MOVED " + std::to_string(slot) + " " + address(from));
  EXPECT_EQ(ask(cluster, from, {"GET", key}), "61");
  EXPECT_THROW(cluster.move_slot(slot, from), std::invalid_argument);
}

TEST(RedisClusterFixture, KilledMasterIsReplacedByItsReplica) {
  RedisCluster cluster(3, 1);
  const std::string key = "rate_guard:exact:{failing}";
  const int slot = cluster.key_slot(key);
  const int victim = cluster.master_port_for_slot(slot);
  const std::vector<int> replicas = cluster.replica_ports(victim);
  ASSERT_EQ(replicas.size(), 1u);
  ASSERT_EQ(ask(cluster, victim, {"SET", key, "42"}), "OK");
  ASSERT_EQ(ask(cluster, victim, {"WAIT", "1", "2000"}), "1");  // on the replica too

  const auto started = std::chrono::steady_clock::now();
  const int promoted = cluster.kill_master_and_wait_failover(victim);
  const auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  RecordProperty("failover_seconds", std::to_string(seconds));

  EXPECT_EQ(promoted, replicas[0]);
  EXPECT_FALSE(cluster.node(victim).running());
  EXPECT_EQ(cluster.ports().size(), 5u);
  EXPECT_EQ(cluster.master_port_for_slot(slot), promoted);
  EXPECT_EQ(ask(cluster, promoted, {"ROLE"}), "master");
  EXPECT_EQ(ask(cluster, promoted, {"GET", key}), "42");
  const std::string seeds = cluster.seeds();
  EXPECT_NE(seeds.find(address(promoted)), std::string::npos) << seeds;
  EXPECT_EQ(seeds.find(address(victim)), std::string::npos) << seeds;
  for (int port : cluster.ports()) {
    EXPECT_NE(ask(cluster, port, {"CLUSTER", "INFO"}).find("cluster_state:ok"), std::string::npos) << port;
  }
  // The promoted master has no replica left: a second kill cannot fail over.
  EXPECT_THROW(cluster.kill_master_and_wait_failover(promoted), std::runtime_error);
  EXPECT_TRUE(cluster.node(promoted).running());
}

}  // namespace
}  // namespace rate_guard
