// One question asked of a list of Redis servers, one after the other, each
// over a short-lived connection of its own (AUTH first when a password is
// set), until one answers what the caller accepts. A server that cannot be
// reached, is silent past the timeout, or answers what the caller refuses
// passes the question on to the next. Everything runs on the worker's event
// loop: the Sentinel client asks the sentinels for the master with it, the
// Cluster client the nodes for the slot map.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/redis_config.h"
#include "redis/event_loop.h"
#include "redis/redis_connection.h"
#include "redis/redis_log.h"

struct redisReply;

namespace rate_guard {

class AskInTurn {
 public:
  // `what` names a server in the log: "sentinel", "cluster node".
  // `tls`: how to speak to every server asked (kept by reference).
  AskInTurn(EventLoop& loop, std::string what, RedisLog& log, const RedisTls& tls);
  ~AskInTurn();
  AskInTurn(const AskInTurn&) = delete;
  AskInTurn& operator=(const AskInTurn&) = delete;

  struct Question {
    std::vector<RedisEndpoint> servers;
    std::string username;  // with a password only
    std::string password;
    std::vector<std::string> command;
    uint64_t timeout_ms = 0;  // for each server, connection included
  };
  // True when the reply of `asked` is the answer; otherwise `*error` says why.
  using Accept = std::function<bool(const redisReply* reply, const RedisEndpoint& asked, std::string* error)>;
  // Called once: whether a server gave an accepted answer.
  using Done = std::function<void(bool answered)>;

  // A new question abandons the previous one (whose `done` is never called).
  void ask(Question question, Accept accept, Done done);
  bool busy() const { return static_cast<bool>(done_); }
  void shutdown();

 private:
  static void on_reply(void* self, redisReply* reply);

  void ask_server(size_t index);
  void next_server();
  void finish(bool answered);
  std::string server_text() const;

  EventLoop& loop_;
  std::string what_;
  RedisLog& log_;
  Question question_;
  Accept accept_;
  Done done_;
  size_t asking_ = 0;
  RedisConnection connection_;
  std::unique_ptr<Timer> timer_;
};

}  // namespace rate_guard
