// One connection to one Redis server on the worker's event loop: opened,
// commands pipelined with their reply callbacks, closed. The connection
// itself is the event loop's Stream (nginx's own connection in nginx);
// hiredis only formats the commands and parses the replies. The check
// connections, the questions to sentinels and cluster nodes, and the
// Sentinel subscription all use it.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/redis_config.h"
#include "redis/event_loop.h"

struct redisReader;
struct redisReply;

namespace rate_guard {

// Where a Redis server listens: a TCP endpoint, or a unix socket when
// `unix_path` is set.
struct RedisAddress {
  RedisEndpoint endpoint;
  std::string unix_path;

  std::string text() const { return unix_path.empty() ? endpoint_text(endpoint) : "unix:" + unix_path; }
};

class RedisConnection final : private Stream::Events {
 public:
  // Called once per command: with its reply, or with nullptr when the
  // connection ends first (close() included). `reply` lives for the call only.
  using ReplyFn = void (*)(void* data, redisReply* reply);
  // The connection could not be made, or was lost; never called for close().
  using LostFn = std::function<void(std::string_view reason)>;

  // `tls`: how to speak to every server it connects to (kept by reference).
  RedisConnection(EventLoop& loop, const RedisTls& tls);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection(RedisConnection&&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Starts connecting (closing any connection it had). False, with why in
  // `*error`, when it cannot even start; commands can be sent at once.
  bool open(const RedisAddress& address, LostFn lost, std::string* error);
  // Our own decision: the replies awaited come back as nullptr, `lost` is not called.
  void close();
  bool is_open() const { return stream_ != nullptr; }
  // The connection was made (TCP or unix); in `lost`: whether it had been.
  bool was_made() const { return made_; }
  const RedisAddress& address() const { return address_; }

  // AUTH PASSWORD, or AUTH USERNAME PASSWORD (Redis 6 ACL) with a username;
  // nothing (and true) without a password.
  bool send_auth(const std::string& username, const std::string& password, ReplyFn reply, void* data);
  bool send(const std::vector<std::string_view>& args, ReplyFn reply, void* data);
  // A command formatted by redisFormatCommandArgv.
  bool send_formatted(const char* command, size_t length, ReplyFn reply, void* data);
  // SUBSCRIBE `channel`: `message` gets every message (and nullptr once when
  // the connection ends).
  bool subscribe(std::string_view channel, ReplyFn message, void* data);

 private:
  struct Awaited {
    ReplyFn reply;
    void* data;
    bool persistent;  // a subscription's: gets every reply from then on
  };
  void stream_connected() override;
  void stream_data(const char* data, size_t size) override;
  void stream_closed(std::string_view reason) override;
  bool send_argv(size_t count, const char** argv, const size_t* lengths, ReplyFn reply, void* data,
                 bool persistent);
  void ended(std::string_view reason);
  void fail_awaited();

  EventLoop& loop_;
  const RedisTls& tls_;
  RedisAddress address_;
  LostFn lost_;
  std::unique_ptr<Stream> stream_;
  redisReader* reader_ = nullptr;
  std::deque<Awaited> awaited_;  // in sending order: Redis answers in order
  uint64_t generation_ = 0;      // a new one at each open and end
  bool made_ = false;
};

}  // namespace rate_guard
