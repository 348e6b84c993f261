// The Redis client of a worker: checks batched per event-loop turn (per
// slot with Cluster) and sent over check connections (one; with Sentinel,
// to the master the sentinels name; with Cluster, one per master, MOVED,
// ASK and TRYAGAIN followed), each check completed by its reply, an error,
// its timeout, or cancelled. The parts: CheckConnection (a connection's
// life), ClusterRouter (the slot map), CheckBatch and CheckPool (batches and
// the checks in them), SentinelClient (where the master is).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "config/redis_config.h"
#include "limiter/check_client.h"
#include "limiter/decision.h"
#include "limiter/metrics.h"
#include "redis/check_batch.h"
#include "redis/check_connection.h"
#include "redis/event_loop.h"
#include "redis/redis_log.h"

struct redisReply;

namespace rate_guard {

class ClusterRouter;
class SentinelClient;

class RedisChecker final : public CheckClient {
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

  // Gives back unused units of a lease with the next batch of the key's slot.
  // Never throws (called from a reply's callbacks): a hand-back that cannot be
  // queued is dropped.
  void hand_back(const ZoneRequest& zone, uint64_t mark, uint64_t granted, uint64_t units) override;

  // Counts `zone.cost` units after the response with the next batch of the
  // key's slot. Never throws: false when it cannot be queued (Redis known to
  // be down, out of memory).
  bool charge(const ZoneRequest& zone, uint32_t tag) override;
  void set_charge_lost(ChargeLostCallback callback, void* data) override;

  // Drops the connections without calling any callback (worker exit).
  void shutdown();

  // Every connection the checks need is up (with Cluster: the slot map is
  // known and every master in it answers).
  bool connected() const;
  // "host:port" or "unix:/path" of the Redis in use (with Sentinel, the
  // master found last; with Cluster, the masters, separated by commas).
  std::string address() const;
  size_t pending_count() const { return live_.size(); }
  // With Cluster: the masters in use.
  size_t node_count() const;

  const RedisCounters& counters() const { return *counters_; }

 private:
  bool cluster() const { return cluster_ != nullptr; }
  void add_hand_back(const ZoneRequest& zone, uint64_t mark, uint64_t granted, uint64_t units);
  bool add_charge(const ZoneRequest& zone, uint32_t tag);
  void lose_charges(const CheckBatch& batch);
  void release_unanswered(CheckBatch* batch);
  void give_back_unclaimed_grant(const CheckBatch& batch, const CheckBatch::Member& member,
                                 const redisReply* reply);
  void reconnect_single(CheckConnection& connection);
  void master_switched(const RedisEndpoint& master);
  void slot_map_done(bool answered);
  bool usable_for(uint16_t slot) const;

  // Batches: built during a loop turn, sent when it ends.
  CheckBatch* open_batch(uint16_t slot);
  void close_batch(CheckBatch* batch);
  void route_waiting(std::vector<CheckBatch*>& held);
  void route(CheckBatch* batch);
  bool send_batch(CheckBatch* batch, CheckConnection* connection, bool asking);
  void flush();
  static void on_batch_reply(void* self, CheckConnection* connection, InFlight* sent, redisReply* reply);
  void handle_batch_reply(CheckBatch* batch, CheckConnection* connection, redisReply* reply);
  bool follow_redirect(CheckBatch* batch, const redisReply* reply);
  void retry_later(CheckBatch* batch);
  void fail_batch(CheckBatch* batch, CheckError error);

  // The Redis keys of `zones` into keys_/key_ends_, and their slots into
  // zone_slots_ (0 without Cluster); then their BatchZones into batch_zones_.
  void locate_keys(const ZoneRequest* zones, size_t count);
  void make_batch_zones(const ZoneRequest* zones, size_t count);
  void arm_timers();

  // Checks waiting for their outcome.
  void complete(PendingCheck* pending, const CheckOutcome& outcome);
  void sweep_timeouts();
  void for_each_connection(const std::function<void(CheckConnection&)>& visit);

  RedisConfig config_;
  EventLoop& loop_;
  RedisLog log_;
  RedisCounters own_counters_;
  RedisCounters* counters_;
  CheckConnectionShared shared_;
  std::unique_ptr<Timer> timeout_timer_;
  std::unique_ptr<Timer> flush_timer_;  // sends the open batches when the loop turn ends
  std::unique_ptr<Timer> retry_timer_;  // TRYAGAIN: sends the held batches again

  // Without Cluster, the one connection (with Sentinel: to the master);
  // with Cluster, the router and its connection per master.
  std::unique_ptr<SentinelClient> sentinel_;
  std::unique_ptr<CheckConnection> single_;
  std::unique_ptr<ClusterRouter> cluster_;

  ChargeLostCallback charge_lost_ = nullptr;
  void* charge_lost_data_ = nullptr;

  LiveChecks live_;  // checks waiting for their answer
  std::vector<PendingCheck*> expired_;
  std::vector<CheckConnection*> late_;  // reused by every sweep

  // A batch is cut at this many entries or keys (a script call holds Redis
  // for its length); the checks merged into its entries do not count.
  static constexpr size_t kMaxBatchEntries = 64;
  static constexpr size_t kMaxBatchZones = 256;
  CheckPool pool_;
  BatchFormatter formatter_;
  std::vector<CheckBatch*> open_batches_;  // the checks of this loop turn, one batch per slot
  CheckBatch* single_open_ = nullptr;      // the batch taking checks, without Cluster
  std::vector<CheckBatch*> open_by_slot_;  // with Cluster: per slot, the batch taking checks
  std::vector<CheckBatch*> parked_;        // waiting for the first slot map
  std::vector<CheckBatch*> retrying_;      // TRYAGAIN: sent again shortly

  // Scratch space reused by every check.
  std::string keys_;  // the Redis keys of one check's zones, back to back
  std::vector<size_t> key_ends_;
  std::string rule_keys_;  // their rule keys
  std::vector<size_t> rule_key_ends_;
  std::vector<uint16_t> zone_slots_;
  std::vector<BatchZone> batch_zones_;
  std::vector<ZoneVerdict> verdicts_;
};

}  // namespace rate_guard
