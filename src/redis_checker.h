// The Redis client of a worker: one persistent, pipelined hiredis async
// connection, the check script loaded on connect (NOSCRIPT: load and retry
// once), per-check timeouts, reconnection with backoff, and errors logged at
// most about once a second.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "decision.h"
#include "event_loop.h"
#include "log_throttle.h"
#include "metrics.h"
#include "sentinel_client.h"
#include "zone_config.h"

struct redisAsyncContext;
struct redisReply;

namespace rate_guard {

// One zone of a request's check.
struct ZoneRequest {
  const ZoneConfig* zone = nullptr;
  std::string_view key;  // the client key; binary-safe
  uint64_t cost = 1;
  RequestLimits limits;  // the zone's, or this request's for a variable rate
};

enum class CheckError : uint8_t {
  none,
  unavailable,   // Redis is known to be unreachable: decided at once
  timeout,       // no answer within `timeout`
  disconnected,  // the connection dropped with the check in flight
  redis_error,   // an error reply (script error, OOM, READONLY, ...)
  bad_reply,     // a reply the module cannot read
};
std::string_view check_error_name(CheckError error);

struct CheckOutcome {
  CheckError error = CheckError::none;  // none: `decision` holds the answer
  Decision decision;
};

// Called once with the outcome, unless the check was cancelled first.
using CheckCallback = void (*)(void* data, const CheckOutcome& outcome);

// Decodes `zones` verdicts of the check script's reply (4 integers per zone),
// starting at zone `first_zone` of the reply, into `verdicts`.
bool decode_check_reply(const redisReply* reply, size_t first_zone, size_t zones, ZoneVerdict* verdicts);

class RedisChecker {
 public:
  struct PendingCheck;

  // `counters` (shared by the workers in nginx) receive the client's counts;
  // without them the client keeps its own.
  RedisChecker(RedisConfig config, EventLoop& loop, RedisCounters* counters = nullptr);
  ~RedisChecker();
  RedisChecker(const RedisChecker&) = delete;
  RedisChecker& operator=(const RedisChecker&) = delete;

  // Starts connecting; checks made before the first connection is up wait for it.
  void start();

  // Checks one request's `zones`. The checks made in one turn of the event
  // loop go to Redis together, as one EVALSHA, when the turn ends. Returns the
  // pending check, whose callback fires later; or nullptr when the outcome is
  // known at once (Redis known to be down), written to `*immediate`, and the
  // callback never fires.
  PendingCheck* check(const ZoneRequest* zones, size_t count, CheckCallback callback, void* data,
                      CheckOutcome* immediate);

  // The callback of `pending` will never fire. Safe at any time before it fired.
  void cancel(PendingCheck* pending);

  // Drops the connection without calling any callback (worker exit).
  void shutdown();

  bool connected() const { return state_ == State::ready; }
  // "host:port" or "unix:/path" of the Redis in use (with Sentinel, the
  // master found last).
  std::string address() const;
  size_t pending_count() const { return live_count_; }

  const RedisCounters& counters() const { return *counters_; }

 private:
  enum class State : uint8_t { idle, discovering, connecting, ready, waiting_to_reconnect };

  static void on_connect(const redisAsyncContext* context, int status);
  static void on_disconnect(const redisAsyncContext* context, int status);
  struct Batch;
  static void on_batch_reply(redisAsyncContext* context, void* reply, void* privdata);
  static void on_script_load_reply(redisAsyncContext* context, void* reply, void* privdata);
  static void on_handshake_reply(redisAsyncContext* context, void* reply, void* privdata);

  void connect();
  void connect_to_redis();
  void handshake_answered();
  void send_probe();
  static void on_probe_reply(redisAsyncContext* context, void* reply, void* privdata);
  void master_switched(const RedisEndpoint& master);
  static void on_role_reply(redisAsyncContext* context, void* reply, void* privdata);
  void send_handshake();
  void drop_connection();
  void connection_lost(std::string_view reason);
  void schedule_reconnect();
  void sweep_timeouts();
  void handle_batch_reply(Batch* batch, redisReply* reply);
  void add_to_batch(Batch* batch, const ZoneRequest* zones, size_t count);
  bool format_batch(Batch* batch);
  bool send_batch(Batch* batch);
  void flush();
  void fail_batch(Batch* batch, CheckError error);
  void complete(PendingCheck* pending, const CheckOutcome& outcome);
  void unlink(PendingCheck* pending);
  PendingCheck* acquire();
  Batch* acquire_batch();
  void release_batch(Batch* batch);
  void log_error(std::string_view message);

  RedisConfig config_;
  EventLoop& loop_;
  redisAsyncContext* context_ = nullptr;
  State state_ = State::idle;
  bool ever_connected_ = false;
  std::string script_sha_;  // empty until the first SCRIPT LOAD answered
  uint64_t consecutive_failures_ = 0;
  std::unique_ptr<Timer> timeout_timer_;
  std::unique_ptr<Timer> connect_timer_;
  std::unique_ptr<Timer> reconnect_timer_;
  std::unique_ptr<Timer> flush_timer_;  // sends the open batch when the loop turn ends
  std::unique_ptr<SentinelClient> sentinel_;  // with sentinel=: where the master is

  // Checks waiting for their answer, in the order they were sent.
  PendingCheck* live_head_ = nullptr;
  PendingCheck* live_tail_ = nullptr;
  size_t live_count_ = 0;
  std::vector<PendingCheck*> expired_;

  // Checks and batches are reused: a warm client allocates nothing per check
  // (hiredis itself does, for the command and the reply).
  static constexpr size_t kMaxBatchChecks = 64;
  static constexpr size_t kMaxBatchZones = 256;
  Batch* open_batch_ = nullptr;  // the checks of this loop turn
  std::vector<std::unique_ptr<PendingCheck>> all_checks_;
  std::vector<PendingCheck*> free_checks_;
  std::vector<std::unique_ptr<Batch>> all_batches_;
  std::vector<Batch*> free_batches_;

  // Scratch space reused by every command.
  std::string counts_;
  std::vector<const char*> argv_;
  std::vector<size_t> argvlen_;
  std::vector<ZoneVerdict> verdicts_;

  LogThrottle error_log_;  // errors at most about once a second

  RedisCounters own_counters_;
  RedisCounters* counters_;
};

}  // namespace rate_guard
