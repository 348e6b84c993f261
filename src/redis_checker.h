// The Redis client of a worker: one persistent, pipelined hiredis async
// connection (with Redis Cluster, one per master, each check routed by its
// keys' slot, MOVED and ASK followed), the check script loaded on connect
// (NOSCRIPT: load and retry once), per-check timeouts, reconnection with
// backoff (a connection is up only once a probe check is answered), and
// every line about Redis logged at most about once a second.
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
#include "ask_in_turn.h"
#include "check_client.h"
#include "cluster_topology.h"
#include "sentinel_client.h"
#include "zone_config.h"

struct redisAsyncContext;
struct redisReply;

namespace rate_guard {

// Decodes `zones` verdicts of the check script's reply (4 integers per zone),
// starting at zone `first_zone` of the reply, into `verdicts`.
bool decode_check_reply(const redisReply* reply, size_t first_zone, size_t zones, ZoneVerdict* verdicts);

class RedisChecker : public CheckClient {
 public:
  // `counters` (shared by the workers in nginx) receive the client's counts;
  // without them the client keeps its own.
  RedisChecker(RedisConfig config, EventLoop& loop, RedisCounters* counters = nullptr);
  ~RedisChecker() override;
  RedisChecker(const RedisChecker&) = delete;
  RedisChecker& operator=(const RedisChecker&) = delete;

  // Starts connecting; checks made before the first connection is up wait for it.
  void start();

  // Checks one request's `zones`. The checks made in one turn of the event
  // loop go to Redis together, as one EVALSHA per connection (with Cluster,
  // one per slot), when the turn ends. Returns the pending check, whose
  // callback fires later; or nullptr when the outcome is known at once
  // (Redis known to be down), written to `*immediate`, and the callback
  // never fires.
  PendingCheck* check(const ZoneRequest* zones, size_t count, CheckCallback callback, void* data,
                      CheckOutcome* immediate) override;

  // The callback of `pending` will never fire. Safe at any time before it fired.
  void cancel(PendingCheck* pending) override;

  // Drops the connections without calling any callback (worker exit).
  void shutdown();

  // Every connection the checks need is up (with Cluster: the slot map is
  // known and every master in it answers).
  bool connected() const;
  // "host:port" or "unix:/path" of the Redis in use (with Sentinel, the
  // master found last; with Cluster, the masters, separated by commas).
  std::string address() const;
  size_t pending_count() const { return live_count_; }
  // With Cluster: the masters in use.
  size_t node_count() const { return nodes_.size(); }

  const RedisCounters& counters() const { return *counters_; }

 private:
  enum class State : uint8_t { idle, discovering, connecting, ready, waiting_to_reconnect };
  struct Node;
  struct Batch;

  // A connection and its life: handshake, probe, loss, backoff.
  Node* add_node(const RedisEndpoint& endpoint);
  Node* node_at(const RedisEndpoint& endpoint);
  void connect(Node* node);
  void connect_to_redis(Node* node);
  void send_handshake(Node* node);
  void send_probe(Node* node);
  void handshake_answered(Node* node);
  void drop_connection(Node* node);
  void connection_lost(Node* node, std::string_view reason);
  void schedule_reconnect(Node* node);
  bool usable(const Node* node) const;
  static void on_connect(const redisAsyncContext* context, int status);
  static void on_disconnect(const redisAsyncContext* context, int status);
  static void on_script_load_reply(redisAsyncContext* context, void* reply, void* privdata);
  static void on_handshake_reply(redisAsyncContext* context, void* reply, void* privdata);
  static void on_probe_reply(redisAsyncContext* context, void* reply, void* privdata);
  static void on_role_reply(redisAsyncContext* context, void* reply, void* privdata);

  // Sentinel.
  void master_switched(const RedisEndpoint& master);

  // Cluster: the slot map, refreshed when it proves stale.
  bool cluster() const { return slot_map_query_ != nullptr; }
  void refresh_slots();
  void slots_found(bool answered);
  void retire_unused_nodes();
  void reconnect_soon(Node* node);

  // Batches: built during a loop turn, sent when it ends.
  Batch* open_batch(uint16_t slot);
  void close_batch(Batch* batch);
  void route_waiting(std::vector<Batch*>& held);
  void split_batch(Batch* batch, Node* ask_node);
  void add_to_batch(Batch* batch, PendingCheck* pending, const ZoneRequest* zones, const uint16_t* zone_slots,
                    size_t count, uint16_t slot);
  bool format_batch(Batch* batch);
  void route(Batch* batch);
  bool send_batch(Batch* batch, Node* node, bool asking);
  void flush();
  void flush_batch(Batch* batch);
  static void on_batch_reply(redisAsyncContext* context, void* reply, void* privdata);
  void handle_batch_reply(Batch* batch, redisReply* reply);
  bool follow_redirect(Batch* batch, const redisReply* reply);
  void retry_later(Batch* batch);
  void fail_batch(Batch* batch, CheckError error);
  void complete(PendingCheck* pending, const CheckOutcome& outcome);
  void unlink(PendingCheck* pending);
  void sweep_timeouts();
  PendingCheck* acquire();
  Batch* acquire_batch();
  void release_batch(Batch* batch);
  // Every line about Redis goes through one of these, each at most about
  // once a second, counting the lines left out. log_notice: whether it was logged.
  void log_error(std::string_view message);
  bool log_notice(std::string_view message);
  bool log_throttled(LogThrottle& throttle, LogLevel level, std::string_view what, std::string_view message);

  RedisConfig config_;
  EventLoop& loop_;
  std::string script_sha_;  // empty until the first SCRIPT LOAD answered
  std::unique_ptr<Timer> timeout_timer_;
  std::unique_ptr<Timer> flush_timer_;  // sends the open batches when the loop turn ends
  std::unique_ptr<SentinelClient> sentinel_;  // with sentinel=: where the master is

  // One node without Cluster; with Cluster, the masters of the slot map
  // (and the nodes a redirection named).
  std::vector<std::unique_ptr<Node>> nodes_;

  std::unique_ptr<AskInTurn> slot_map_query_;  // with cluster=: CLUSTER SLOTS of the nodes in turn
  std::vector<SlotRange> slot_ranges_;         // its answer, read into here
  std::vector<Node*> slot_owner_;             // 16384 with Cluster, once known
  bool slots_known_ = false;
  bool slots_failed_ = false;  // no node answered the first CLUSTER SLOTS
  bool refresh_again_ = false;
  std::string cluster_masters_;  // as last logged: who serves how many slots
  uint64_t refresh_failures_ = 0;
  uint64_t last_refresh_ms_ = 0;
  std::unique_ptr<Timer> refresh_timer_;
  std::unique_ptr<Timer> retire_timer_;  // nodes are freed outside their own callbacks
  std::vector<Batch*> parked_;           // waiting for the first slot map
  std::vector<Batch*> retrying_;         // TRYAGAIN: sent again shortly
  std::unique_ptr<Timer> retry_timer_;

  // Checks waiting for their answer, in the order they were made.
  PendingCheck* live_head_ = nullptr;
  PendingCheck* live_tail_ = nullptr;
  size_t live_count_ = 0;
  std::vector<PendingCheck*> expired_;
  std::vector<Node*> late_nodes_;  // reused by every sweep

  // Checks and batches are reused: a warm client allocates nothing per check
  // (hiredis itself does, for the command and the reply).
  static constexpr size_t kMaxBatchChecks = 64;
  static constexpr size_t kMaxBatchZones = 256;
  std::vector<Batch*> open_batches_;  // the checks of this loop turn, one batch per slot
  Batch* single_open_ = nullptr;      // the batch taking checks, without Cluster
  std::vector<Batch*> open_by_slot_;  // with Cluster: per slot, the batch taking checks
  std::vector<std::unique_ptr<PendingCheck>> all_checks_;
  std::vector<PendingCheck*> free_checks_;
  std::vector<std::unique_ptr<Batch>> all_batches_;
  std::vector<Batch*> free_batches_;

  // Scratch space reused by every check and command.
  std::string keys_;  // the Redis keys of one check's zones, back to back
  std::vector<size_t> key_ends_;
  std::vector<uint16_t> zone_slots_;
  std::string counts_;
  std::vector<const char*> argv_;
  std::vector<size_t> argvlen_;
  std::vector<ZoneVerdict> verdicts_;

  LogThrottle error_log_;   // errors at most about once a second
  LogThrottle notice_log_;  // and notices (reconnected, master switched), apart

  RedisCounters own_counters_;
  RedisCounters* counters_;
};

}  // namespace rate_guard
