// A connection the checks go over, and its life: the handshake (AUTH,
// SELECT, ROLE with Sentinel, SCRIPT LOAD), the probe check that makes it
// ready, the commands in flight and their deadlines, loss, and reconnection
// with backoff. Where to connect is its owner's business (a fixed address,
// the master a sentinel names, a node of the Cluster slot map).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "config/redis_config.h"
#include "limiter/metrics.h"
#include "redis/event_loop.h"
#include "redis/redis_connection.h"
#include "redis/redis_log.h"

namespace rate_guard {

class CheckConnection;

// A command sent on a check connection and awaiting its reply; replies come
// in sending order.
struct InFlight {
  CheckConnection* connection = nullptr;  // while in flight
  uint64_t deadline_ms = 0;               // `timeout` after its sending
  InFlight* prev = nullptr;
  InFlight* next = nullptr;
};

// What every check connection of a client shares.
struct CheckConnectionShared {
  const RedisConfig& config;
  EventLoop& loop;
  RedisLog& log;
  RedisCounters& counters;
  std::string script_sha;  // empty until a SCRIPT LOAD answered
  bool check_role = false;  // with Sentinel: the server must say it is the master
};

// Backoff before reconnection attempt `failures` (1, 2, ...): 100 ms,
// doubling up to 1 s.
uint64_t reconnect_backoff_ms(uint64_t failures);

class CheckConnection {
 public:
  enum class State : uint8_t {
    idle,              // never asked to connect
    finding_address,   // its owner looks for where to connect (Sentinel)
    connecting,        // handshake and probe under way
    ready,             // the probe check was answered: checks go here
    waiting_to_reconnect,
  };
  // `reply` gets the reply of each command sent with send(), after the
  // command has left the in-flight list (nullptr when the connection ended).
  using ReplyFn = void (*)(void* owner, CheckConnection* connection, InFlight* sent, struct redisReply* reply);
  // The backoff after a failure is over: the owner opens the connection again.
  using ReconnectFn = std::function<void(CheckConnection&)>;

  CheckConnection(CheckConnectionShared& shared, ReplyFn reply, void* owner, ReconnectFn reconnect);
  ~CheckConnection();
  CheckConnection(const CheckConnection&) = delete;
  CheckConnection& operator=(const CheckConnection&) = delete;

  // Connects to `address` and starts the handshake.
  void open(const RedisAddress& address);
  void find_address() { state_ = State::finding_address; }
  // Counts a failure and waits for the backoff: the connection broke, Redis
  // refused it, was late, or is not the server wanted. Replies in flight
  // come back as nullptr.
  void fail(std::string_view reason);
  // Drops the connection at once, without counting a failure or reconnecting
  // (worker exit, a node without slots).
  void close();
  // Reconnect when the backoff ends (the default), or not at all.
  void keep_reconnecting(bool keep);
  bool reconnect_planned() const { return reconnect_timer_->armed(); }

  // Sends a formatted command (behind ASKING when `asking`) with `sent`
  // linked in flight until its reply.
  bool send(InFlight* sent, const char* command, size_t length, bool asking);
  // Loads the script again (after NOSCRIPT), ahead of whatever is sent next.
  void reload_script();
  // A command in flight longer than `timeout`; the earliest deadline of
  // those in flight (UINT64_MAX: none).
  bool late(uint64_t now_ms) const;
  uint64_t next_deadline() const;
  bool idle() const { return in_flight_head_ == nullptr; }

  State state() const { return state_; }
  bool ready() const { return state_ == State::ready; }
  // Checks may be sent: ready, or making the very first connection.
  bool usable() const;
  uint64_t failures() const { return failures_; }
  const RedisAddress& address() const { return connection_.address(); }
  std::string address_text() const { return connection_.address().text(); }

 private:
  static void on_auth_reply(void* self, redisReply* reply);
  static void on_select_reply(void* self, redisReply* reply);
  void handshake_answered(std::string_view command, const redisReply* reply);
  static void on_role_reply(void* self, redisReply* reply);
  static void on_script_load_reply(void* self, redisReply* reply);
  static void on_probe_reply(void* self, redisReply* reply);
  static void on_reply(void* sent, redisReply* reply);
  void send_handshake();
  void became_ready();
  void link(InFlight* sent);
  void unlink(InFlight* sent);

  CheckConnectionShared& shared_;
  RedisConnection connection_;
  ReplyFn reply_;
  void* owner_;
  ReconnectFn reconnect_;
  State state_ = State::idle;
  bool ever_ready_ = false;
  bool keep_reconnecting_ = true;
  uint64_t failures_ = 0;  // since it was last ready
  std::unique_ptr<Timer> connect_timer_;
  std::unique_ptr<Timer> reconnect_timer_;
  InFlight* in_flight_head_ = nullptr;  // oldest first
  InFlight* in_flight_tail_ = nullptr;
};

}  // namespace rate_guard
