// Redis Sentinel for the Redis client: asks the sentinels, one after the
// other, which address the master has, and listens on one of them for
// `+switch-master`, so a failover is followed without a reload. Everything
// is asynchronous on the worker's event loop.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "config/redis_config.h"
#include "redis/ask_in_turn.h"
#include "redis/event_loop.h"
#include "redis/redis_connection.h"
#include "redis/redis_log.h"

struct redisReply;

namespace rate_guard {

class SentinelClient {
 public:
  SentinelClient(const RedisConfig& config, EventLoop& loop, RedisLog& log);
  ~SentinelClient();
  SentinelClient(const SentinelClient&) = delete;
  SentinelClient& operator=(const SentinelClient&) = delete;

  // Asks the sentinels in turn; `found` gets the master's address, or
  // nullptr when none of them answered within the timeouts. A new call
  // abandons the previous one.
  using Found = std::function<void(const RedisEndpoint* master)>;
  void discover(Found found);

  // Subscribes to +switch-master (resubscribing, on the next sentinel, when
  // the subscription is lost); `switched` gets the new master's address.
  void watch(std::function<void(const RedisEndpoint& master)> switched);

  void shutdown();

 private:
  static void on_switch_message(void* self, redisReply* reply);

  void subscribe();
  void subscription_lost();

  const RedisConfig& config_;
  EventLoop& loop_;
  RedisLog& log_;

  AskInTurn master_query_;  // SENTINEL get-master-addr-by-name, of the sentinels in turn
  RedisEndpoint master_;    // its answer, read into here

  RedisConnection subscription_;
  size_t watching_ = 0;
  std::function<void(const RedisEndpoint&)> switched_;
  std::unique_ptr<Timer> resubscribe_timer_;
};

}  // namespace rate_guard
