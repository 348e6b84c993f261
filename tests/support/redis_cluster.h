// A real Redis Cluster for the tests: masters and replicas, each a RedisServer
// (a free loopback port, a private directory, stopped by its PID) started
// with cluster-enabled, joined by `redis-cli --cluster create`. A test can
// kill a master and wait for its replica to take over, and move a slot to
// another master, all at once or step by step (to leave it half-migrated,
// where the source answers ASK).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "redis_server.h"

struct redisContext;

namespace rate_guard {
namespace testing {

class RedisCluster {
 public:
  // Starts masters × (1 + replicas_per_master) nodes (cluster-node-timeout
  // 1000 ms, a cluster bus port picked free, nodes.conf in each server's own
  // directory), creates the cluster and waits until every node says
  // cluster_state:ok, all agree on the slot map and every replica is in sync.
  // Throws std::runtime_error (with redis-cli's output) if that fails.
  explicit RedisCluster(int masters = 3, int replicas_per_master = 1);
  // Stops every node by its PID (RedisServer's destructor).
  ~RedisCluster();
  RedisCluster(const RedisCluster&) = delete;
  RedisCluster& operator=(const RedisCluster&) = delete;

  // "127.0.0.1:P1,127.0.0.1:P2,...": the masters now serving slots, in the
  // order of their first slot.
  std::string seeds() const;
  std::vector<int> master_ports() const;
  // Every node still running, masters and replicas.
  std::vector<int> ports() const;
  // The running replicas of a master (as that master's CLUSTER NODES says).
  std::vector<int> replica_ports(int master_port) const;

  // The master that serves `slot` (CLUSTER SLOTS of a running node), or -1.
  int master_port_for_slot(int slot) const;
  // CLUSTER KEYSLOT key.
  int key_slot(const std::string& key) const;
  // The node's CLUSTER MYID.
  std::string node_id(int port) const;

  // Stops that master by its PID, waits until one of its replicas is the
  // master of its slots and every running node says cluster_state:ok and
  // agrees on the slot map. Returns the promoted replica's port.
  int kill_master_and_wait_failover(int master_port);

  // Moves `slot` to the master on `to_port`, keys and all, as
  // `redis-cli --cluster reshard` does: begin_migration, migrate_keys,
  // finish_migration.
  void move_slot(int slot, int to_port);
  // CLUSTER SETSLOT slot IMPORTING on the destination, then MIGRATING on the
  // source: from now the source answers ASK for keys it does not hold.
  void begin_migration(int slot, int to_port);
  // MIGRATE of every key of the slot still on the source (CLUSTER
  // GETKEYSINSLOT, 100 at a time); returns how many moved.
  size_t migrate_keys(int slot);
  // Migrates what is left, then CLUSTER SETSLOT slot NODE on the destination,
  // the source and every other master; waits until every running node agrees
  // that the destination serves the slot (the source then answers MOVED).
  void finish_migration(int slot);

  // Waits until every running node says cluster_state:ok, all agree on the
  // slot map, all 16384 slots are served by running masters and every running
  // replica's link to its master is up. Throws after `seconds`.
  void wait_until_stable(int seconds = 30) const;

  // The server on that port (to stop or start it by hand), or throws.
  RedisServer& node(int port);
  // A new synchronous connection to that node (redisFree it), or throws.
  redisContext* connect(int port) const;

 private:
  struct Node {
    std::unique_ptr<RedisServer> server;
    int bus_port = 0;
  };
  struct Migration {
    int from = 0;
    int to = 0;
  };

  const Node* find(int port) const;
  int any_running_port() const;
  // The slot map as one running node sees it, normalized for comparison:
  // "start-end:master[/replica...]" per range, sorted; stopped nodes left out.
  std::string slot_map(int port) const;
  // What wait_until_stable waits for; with replicas >= 0, also that every
  // master has that many running replicas. Says in `why` what is missing.
  bool stable(std::string* why, int replicas = -1) const;

  std::vector<Node> nodes_;
  std::map<int, Migration> migrations_;
};

}  // namespace testing
}  // namespace rate_guard
