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

#include "ask_in_turn.h"
#include "event_loop.h"
#include "zone_config.h"

struct redisAsyncContext;

namespace rate_guard {

class SentinelClient {
 public:
  using ErrorLog = std::function<void(std::string_view)>;
  SentinelClient(const RedisConfig& config, EventLoop& loop, ErrorLog log_error);
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
  static void on_connect(const redisAsyncContext* context, int status);
  static void on_disconnect(const redisAsyncContext* context, int status);
  static void on_switch_message(redisAsyncContext* context, void* reply, void* privdata);

  void subscribe();
  void subscription_lost();
  static void close(redisAsyncContext*& context);

  const RedisConfig& config_;
  EventLoop& loop_;
  ErrorLog log_error_;

  AskInTurn master_query_;  // SENTINEL get-master-addr-by-name, of the sentinels in turn
  RedisEndpoint master_;    // its answer, read into here

  redisAsyncContext* subscription_ = nullptr;
  size_t watching_ = 0;
  std::function<void(const RedisEndpoint&)> switched_;
  std::unique_ptr<Timer> resubscribe_timer_;
};

}  // namespace rate_guard
