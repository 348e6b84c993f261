// Redis Cluster for the Redis client: the slot map (CLUSTER SLOTS of the
// known masters, then of the configured nodes, in turn), a check connection
// per master, the owner of each slot, and what MOVED and ASK teach. The map
// is asked again when it proves stale, at most every 100 ms.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "redis/ask_in_turn.h"
#include "redis/check_connection.h"
#include "redis/cluster_slots_reply.h"
#include "redis/redis_key.h"

namespace rate_guard {

class ClusterRouter {
 public:
  // A slot-map query ended: whether a node answered.
  using MapFn = std::function<void(bool answered)>;
  // The connections it makes send their replies to `reply` with `owner`.
  ClusterRouter(CheckConnectionShared& shared, CheckConnection::ReplyFn reply, void* owner, MapFn map_done);
  ~ClusterRouter();
  ClusterRouter(const ClusterRouter&) = delete;
  ClusterRouter& operator=(const ClusterRouter&) = delete;

  // Asks for the slot map, unless asked less than 100 ms ago (then soon).
  void refresh();
  bool known() const { return known_; }
  // No node answered the first query: checks are decided at once until one does.
  bool failed() const { return failed_; }
  bool asking() const { return query_.busy(); }

  CheckConnection* owner_of(uint16_t slot) const { return known_ ? owner_[slot] : nullptr; }
  // The connection to `endpoint`, named by MOVED or ASK (made if new).
  CheckConnection* redirected_to(const RedisEndpoint& endpoint);
  // MOVED: `slot` is `to`'s for good (the map is asked again too).
  void moved(uint16_t slot, CheckConnection* to);
  // A reply came on `connection`: one without slots is freed once idle.
  void replied_on(CheckConnection* connection);

  // Every master of the map is ready.
  bool all_ready() const;
  // The masters' addresses, separated by commas.
  std::string address() const;
  size_t node_count() const { return nodes_.size(); }
  void for_each_connection(const std::function<void(CheckConnection&)>& visit);
  void shutdown();

 private:
  struct Node {
    std::unique_ptr<CheckConnection> connection;
    RedisEndpoint endpoint;
    size_t slots = 0;
    bool retired = false;  // no slot left: freed once nothing is in flight
  };

  Node* node_at(const RedisEndpoint& endpoint);
  Node* node_of(const CheckConnection* connection);
  Node* add_node(const RedisEndpoint& endpoint);
  void map_found(bool answered);
  void reopen(Node* node);
  void reconnect_soon(Node* node);
  void retire_unused_nodes();
  std::string address_with_slots() const;

  CheckConnectionShared& shared_;
  CheckConnection::ReplyFn reply_;
  void* reply_owner_;
  MapFn map_done_;
  std::vector<std::unique_ptr<Node>> nodes_;
  AskInTurn query_;  // CLUSTER SLOTS, of the nodes in turn
  std::vector<SlotRange> ranges_;  // its answer, read into here
  std::vector<CheckConnection*> owner_;  // per slot, once known
  bool known_ = false;
  bool failed_ = false;
  bool refresh_again_ = false;
  std::string masters_;  // as last logged: who serves how many slots
  uint64_t failures_ = 0;
  uint64_t last_refresh_ms_ = 0;
  std::unique_ptr<Timer> refresh_timer_;
  std::unique_ptr<Timer> retire_timer_;  // nodes are freed outside their own callbacks
};

}  // namespace rate_guard
