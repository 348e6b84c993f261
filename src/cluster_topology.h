// Redis Cluster for the Redis client: which master serves which slots, asked
// with CLUSTER SLOTS of the known nodes one after the other, each over a
// short-lived connection of its own, asynchronously on the worker's loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "event_loop.h"
#include "zone_config.h"

struct redisAsyncContext;
struct redisReply;

namespace rate_guard {

struct SlotRange {
  uint16_t first = 0;
  uint16_t last = 0;  // inclusive
  RedisEndpoint master;
};

// An IPv4 or IPv6 address, not a name: connecting to it resolves nothing.
bool is_ip_address(const std::string& host);

// The masters of a CLUSTER SLOTS reply. A master announced without an
// address ("" or "?", Redis 7's unknown endpoint) is the node that answered:
// `answered_by`. Returns false, with `*error` set, for a reply that is not a
// slot map, or announces a hostname (connecting to it would resolve it and
// block the worker: the cluster must announce IP addresses).
bool parse_cluster_slots(const redisReply* reply, const RedisEndpoint& answered_by, std::vector<SlotRange>* ranges,
                         std::string* error);

class ClusterTopology {
 public:
  using ErrorLog = std::function<void(std::string_view)>;
  ClusterTopology(const RedisConfig& config, EventLoop& loop, ErrorLog log_error);
  ~ClusterTopology();
  ClusterTopology(const ClusterTopology&) = delete;
  ClusterTopology& operator=(const ClusterTopology&) = delete;

  // Asks `nodes` in turn; `found` gets the slot map of the first that
  // answers with one, or nullptr when none did within the timeouts. A new
  // call abandons the previous one.
  using Found = std::function<void(const std::vector<SlotRange>* ranges)>;
  void discover(std::vector<RedisEndpoint> nodes, Found found);
  bool busy() const { return static_cast<bool>(found_); }

  void shutdown();

 private:
  static void on_connect(const redisAsyncContext* context, int status);
  static void on_disconnect(const redisAsyncContext* context, int status);
  static void on_slots_reply(redisAsyncContext* context, void* reply, void* privdata);

  void ask(size_t index);
  void give_up_query();
  void finish(const std::vector<SlotRange>* ranges);
  void close_query();

  const RedisConfig& config_;
  EventLoop& loop_;
  ErrorLog log_error_;

  std::vector<RedisEndpoint> nodes_;
  size_t asking_ = 0;
  redisAsyncContext* query_ = nullptr;
  Found found_;
  std::unique_ptr<Timer> query_timer_;
};

}  // namespace rate_guard
