#include "redis/redis_checker.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>

#include "lua/check_script.h"
#include "redis/cluster_router.h"
#include "redis/cluster_slots_reply.h"
#include "redis/redis_key.h"
#include "redis/sentinel_client.h"
#include "util/log_escape.h"

namespace rate_guard {

namespace {

// With Cluster: a batch follows at most this many MOVED or ASK answers
// before the fail policy decides, and TRYAGAIN is retried this often until
// its checks time out.
constexpr uint8_t kMaxRedirects = 8;
constexpr uint64_t kTryAgainDelayMs = 10;

bool starts_with(const redisReply* reply, std::string_view prefix) {
  return reply->len >= prefix.size() && std::string_view(reply->str, prefix.size()) == prefix;
}

uint64_t steady_now_us() {
  using namespace std::chrono;
  return static_cast<uint64_t>(duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count());
}

void bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

RedisChecker::RedisChecker(RedisConfig config, EventLoop& loop, RedisCounters* counters)
    : config_(std::move(config)),
      loop_(loop),
      log_(loop),
      counters_(counters != nullptr ? counters : &own_counters_),
      shared_{config_, loop_, log_, *counters_, "", !config_.sentinels.empty()} {
  timeout_timer_ = loop_.make_timer([this] { sweep_timeouts(); }, true);
  flush_timer_ = loop_.make_timer([this] { flush(); }, true);
  if (!config_.cluster_nodes.empty()) {
    cluster_ = std::make_unique<ClusterRouter>(shared_, on_batch_reply, this,
                                               [this](bool answered) { slot_map_done(answered); });
    open_by_slot_.assign(kClusterSlots, nullptr);
    retry_timer_ = loop_.make_timer([this] { route_waiting(retrying_); }, true);
    return;
  }
  if (!config_.sentinels.empty()) {
    sentinel_ = std::make_unique<SentinelClient>(config_, loop_, log_);
  }
  single_ = std::make_unique<CheckConnection>(shared_, on_batch_reply, this,
                                              [this](CheckConnection& c) { reconnect_single(c); });
}

RedisChecker::~RedisChecker() {
  shutdown();
}

// ---------------------------------------------------------------- topology

bool RedisChecker::connected() const {
  return cluster() ? cluster_->all_ready() : single_->ready();
}

std::string RedisChecker::address() const {
  return cluster() ? cluster_->address() : single_->address_text();
}

size_t RedisChecker::node_count() const {
  return cluster() ? cluster_->node_count() : 1;
}

void RedisChecker::for_each_connection(const std::function<void(CheckConnection&)>& visit) {
  if (cluster()) {
    cluster_->for_each_connection(visit);
  } else {
    visit(*single_);
  }
}

void RedisChecker::start() {
  if (cluster()) {
    if (!cluster_->known() && !cluster_->asking()) {
      cluster_->refresh();  // the nodes connect once the slot map names them
    }
    return;
  }
  if (single_->state() == CheckConnection::State::idle) {
    if (sentinel_) {
      sentinel_->watch([this](const RedisEndpoint& master) { master_switched(master); });
    }
    reconnect_single(*single_);
  }
}

// With Sentinel the master is asked for on every (re)connection: after a
// connection loss it may have moved.
void RedisChecker::reconnect_single(CheckConnection& connection) {
  if (!sentinel_) {
    connection.open({{config_.host, config_.port, config_.host_name}, config_.unix_path});
    return;
  }
  connection.find_address();
  sentinel_->discover([this, &connection](const RedisEndpoint* master) {
    if (connection.state() != CheckConnection::State::finding_address) {
      return;
    }
    if (master == nullptr) {
      connection.fail("no sentinel told where master \"" + config_.master_name + "\" is");
      return;
    }
    connection.open({*master, ""});
  });
}

void RedisChecker::master_switched(const RedisEndpoint& master) {
  log_.notice("master \"" + config_.master_name + "\" switched to " + endpoint_text(master));
  const CheckConnection::State state = single_->state();
  if ((state == CheckConnection::State::ready || state == CheckConnection::State::connecting) &&
      !(master == single_->address().endpoint)) {
    single_->fail("leaving the old master " + single_->address_text());  // the next connection asks again
  }
}

// A slot-map query ended: the batches parked for the first map go on, or,
// when no node answered the first query, are decided by the fail policy.
void RedisChecker::slot_map_done(bool answered) {
  if (answered) {
    route_waiting(parked_);
    return;
  }
  if (cluster_->failed()) {
    std::vector<CheckBatch*> parked;
    parked.swap(parked_);
    for (CheckBatch* batch : parked) {
      fail_batch(batch, CheckError::unavailable);
    }
  }
}

// Once a connection failed, checks are decided at once until it is up
// again; only the very first connection is waited for.
bool RedisChecker::usable_for(uint16_t slot) const {
  if (!cluster()) {
    return single_->usable();
  }
  if (!cluster_->known()) {
    return cluster_->asking() && !cluster_->failed();  // the first slot map is on its way
  }
  const CheckConnection* connection = cluster_->owner_of(slot);
  return connection != nullptr && connection->usable();
}

// ------------------------------------------------------------------- checks

void RedisChecker::locate_keys(const ZoneRequest* zones, size_t count) {
  const KeyLayout layout = cluster() ? KeyLayout::hash_tagged : KeyLayout::plain;
  keys_.clear();
  key_ends_.clear();
  rule_keys_.clear();
  rule_key_ends_.clear();
  zone_slots_.clear();
  for (size_t i = 0; i < count; i++) {
    const size_t begin = keys_.size();
    append_redis_key(keys_, config_.prefix, *zones[i].zone, zones[i].key, layout);
    key_ends_.push_back(keys_.size());
    append_rule_key(rule_keys_, config_.prefix, zones[i].zone->name, zones[i].key, layout);
    rule_key_ends_.push_back(rule_keys_.size());
    zone_slots_.push_back(
        cluster() ? cluster_key_slot(std::string_view(keys_).substr(begin, keys_.size() - begin)) : 0);
  }
}

void RedisChecker::make_batch_zones(const ZoneRequest* zones, size_t count) {
  batch_zones_.clear();
  for (size_t i = 0; i < count; i++) {
    const size_t begin = i == 0 ? 0 : key_ends_[i - 1];
    const size_t rule_begin = i == 0 ? 0 : rule_key_ends_[i - 1];
    const RequestLimits& limits = zones[i].limits;
    batch_zones_.push_back({std::string_view(keys_).substr(begin, key_ends_[i] - begin),
                            std::string_view(rule_keys_).substr(rule_begin, rule_key_ends_[i] - rule_begin),
                            static_cast<uint64_t>(zones[i].zone->algorithm), limits.limit, limits.window_ms,
                            limits.burst, zones[i].cost});
  }
}

// The timeout sweep (which also finds a Redis that does not answer), and the
// flush at the end of this loop turn.
void RedisChecker::arm_timers() {
  if (!timeout_timer_->armed()) {
    timeout_timer_->arm(config_.timeout_ms);
  }
  // Sent when this turn of the event loop ends, with every check it made
  // (never from here: the callback must not fire before check() returns).
  if (!flush_timer_->armed()) {
    flush_timer_->arm(0);
  }
}

RedisChecker::PendingCheck* RedisChecker::check(const ZoneRequest* zones, size_t count, CheckCallback callback,
                                                void* data, CheckOutcome* immediate) {
  if (count == 0) {
    immediate->error = CheckError::unavailable;
    return nullptr;
  }
  // The keys, and with Cluster the slot of each.
  locate_keys(zones, count);
  // Every connection the check needs must be usable, or the fail policy decides now.
  for (size_t i = 0; i < count; i++) {
    if (!usable_for(zone_slots_[i])) {
      immediate->error = CheckError::unavailable;
      return nullptr;
    }
  }
  make_batch_zones(zones, count);
  // A lease is asked with one-zone checks only (a lifetime of 0 asks none:
  // the script refuses it).
  const bool lease = count == 1 && zones[0].lease_units != 0 && zones[0].lease_ms != 0;
  PendingCheck* pending = pool_.acquire_check();
  pending->callback = callback;
  pending->data = data;
  pending->zones = count;
  pending->verdicts.resize(count);
  pending->parts_left = 0;
  pending->batches = 0;
  pending->deadline_ms = loop_.now_ms() + config_.timeout_ms;
  pending->sent_us = steady_now_us();
  live_.add(pending);
  // One part per slot (zones of different clients may live in different
  // slots): each part is all-or-nothing in itself.
  const auto slots_begin = zone_slots_.begin();
  for (size_t i = 0; i < count; i++) {
    const uint16_t slot = zone_slots_[i];
    if (std::find(slots_begin, slots_begin + static_cast<std::ptrdiff_t>(i), slot) !=
        slots_begin + static_cast<std::ptrdiff_t>(i)) {
      continue;  // this slot's part is made
    }
    CheckBatch* batch = open_batch(slot);
    if (lease) {
      add_lease_to_batch(batch, pending, batch_zones_[0], 0, zones[0].lease_units, zones[0].lease_ms);
    } else {
      add_to_batch(batch, pending, batch_zones_.data(), zone_slots_.data(), count, slot);
    }
    if (batch->entries.size() >= kMaxBatchEntries || batch->zones >= kMaxBatchZones) {
      close_batch(batch);  // the next checks of this slot start another
    }
  }
  arm_timers();
  return pending;
}

void RedisChecker::cancel(PendingCheck* pending) {
  if (pending == nullptr || !pending->live) {
    return;
  }
  live_.remove(pending);
  pending->callback = nullptr;  // released with its last batch
}

// An entry of the open batch of the key's slot, as a check's; no check waits
// for it. Dropped (the units stay counted until they leave the window, as
// when its answer is lost) when there is nothing to give back, or Redis is
// known to be unreachable.
void RedisChecker::hand_back(const ZoneRequest& zone, uint64_t mark, uint64_t granted, uint64_t units) {
  try {
    add_hand_back(zone, mark, granted, units);
  } catch (const std::exception&) {
    // (out of memory) dropped: called from a reply's callbacks, which must go on
  }
}

// A lease granted to a check that timed out or was cancelled: no server will
// spend it, so it goes back at once rather than stay counted.
void RedisChecker::give_back_unclaimed_grant(const CheckBatch& batch, const CheckBatch::Member& member,
                                             const redisReply* reply) {
  const CheckBatch::Entry& entry = batch.entries[member.entry];
  ZoneVerdict verdict;
  LeaseGrant grant;
  if (entry.kind != CheckBatch::Kind::lease || member.rank != 0 ||
      !decode_lease_reply(reply, entry.reply_at, entry.count, 0, entry.cost, entry.lease_units, entry.lease_ms,
                          &verdict, &grant) ||
      grant.units == 0) {
    return;
  }
  const BatchZone zone{key_of(batch, entry.first_key), rule_key_of(batch, entry.first_key), entry.algorithm,
                       entry.limit, entry.window_ms, entry.burst, 1};
  try {
    CheckBatch* open = open_batch(batch.slot);
    add_hand_back_to_batch(open, zone, grant.mark, grant.units, grant.units);
    if (open->entries.size() >= kMaxBatchEntries || open->zones >= kMaxBatchZones) {
      close_batch(open);
    }
    arm_timers();
  } catch (const std::exception&) {
    // (out of memory) dropped: the units stay counted until they leave the window
  }
}

void RedisChecker::add_hand_back(const ZoneRequest& zone, uint64_t mark, uint64_t granted, uint64_t units) {
  if (units == 0 || units > granted || zone.zone == nullptr) {
    return;  // the script would refuse it, and the whole batch with it
  }
  locate_keys(&zone, 1);
  const uint16_t slot = zone_slots_[0];
  if (!usable_for(slot)) {
    return;
  }
  make_batch_zones(&zone, 1);
  batch_zones_[0].cost = 1;  // unused by a hand-back, but checked as any cost
  CheckBatch* batch = open_batch(slot);
  add_hand_back_to_batch(batch, batch_zones_[0], mark, granted, units);
  if (batch->entries.size() >= kMaxBatchEntries || batch->zones >= kMaxBatchZones) {
    close_batch(batch);
  }
  arm_timers();
}

bool RedisChecker::charge(const ZoneRequest& zone, uint32_t tag) {
  try {
    return add_charge(zone, tag);
  } catch (const std::exception&) {
    return false;  // (out of memory) lost, and counted so by the caller
  }
}

void RedisChecker::set_charge_lost(ChargeLostCallback callback, void* data) {
  charge_lost_ = callback;
  charge_lost_data_ = data;
}

bool RedisChecker::add_charge(const ZoneRequest& zone, uint32_t tag) {
  if (zone.cost == 0 || zone.zone == nullptr) {
    return false;  // the script would refuse it, and the whole batch with it
  }
  locate_keys(&zone, 1);
  const uint16_t slot = zone_slots_[0];
  if (!usable_for(slot)) {
    return false;
  }
  make_batch_zones(&zone, 1);
  CheckBatch* batch = open_batch(slot);
  add_charge_to_batch(batch, batch_zones_[0], tag);
  if (batch->entries.size() >= kMaxBatchEntries || batch->zones >= kMaxBatchZones) {
    close_batch(batch);
  }
  arm_timers();
  return true;
}

// The charges of `batch`, which Redis did not record.
void RedisChecker::lose_charges(const CheckBatch& batch) {
  if (batch.charges == 0 || charge_lost_ == nullptr) {
    return;
  }
  for (const CheckBatch::Entry& entry : batch.entries) {
    if (entry.kind == CheckBatch::Kind::charge) {
      charge_lost_(charge_lost_data_, entry.tag, entry.cost);
    }
  }
}

// A batch given up on before Redis answered it.
void RedisChecker::release_unanswered(CheckBatch* batch) {
  lose_charges(*batch);
  pool_.release_batch(batch);
}

void RedisChecker::complete(PendingCheck* pending, const CheckOutcome& outcome) {
  if (outcome.error != CheckError::none) {
    bump(counters_->errors);
  } else {
    counters_->observe_latency_us(steady_now_us() - pending->sent_us);
  }
  live_.remove(pending);
  CheckCallback callback = pending->callback;
  pending->callback = nullptr;
  if (callback != nullptr) {
    callback(pending->data, outcome);
  }
}

void RedisChecker::sweep_timeouts() {
  const uint64_t now = loop_.now_ms();
  expired_.clear();
  uint64_t next_deadline = live_.expired(now, &expired_);
  // A Redis that accepts commands but does not answer one within `timeout`
  // of its sending is treated as down: the checks on it fail now, the next
  // ones are decided at once until a fresh connection is up.
  late_.clear();
  for_each_connection([&](CheckConnection& connection) {
    if (connection.late(now)) {
      late_.push_back(&connection);
    } else {
      next_deadline = std::min(next_deadline, connection.next_deadline());
    }
  });
  if (next_deadline != UINT64_MAX) {
    timeout_timer_->arm(next_deadline - now);
  }
  if (!expired_.empty()) {
    counters_->timeouts.fetch_add(expired_.size(), std::memory_order_relaxed);
    CheckOutcome outcome;
    outcome.error = CheckError::timeout;
    for (PendingCheck* pending : expired_) {
      if (pending->live) {
        complete(pending, outcome);
      }
    }
  }
  for (CheckConnection* connection : late_) {
    connection->fail("Redis " + connection->address_text() + " did not answer within " +
                     std::to_string(config_.timeout_ms) + "ms; reconnecting");
  }
}

// ------------------------------------------------------------------ batches

// This turn's batch for `slot` (found through open_by_slot_ with Cluster,
// where a turn may hold a batch for each of many slots).
CheckBatch* RedisChecker::open_batch(uint16_t slot) {
  CheckBatch*& open = cluster() ? open_by_slot_[slot] : single_open_;
  if (open == nullptr) {
    open = pool_.acquire_batch();
    open->slot = slot;
    open_batches_.push_back(open);
  }
  return open;
}

// No more checks go into `batch`: it waits for the end of the turn.
void RedisChecker::close_batch(CheckBatch* batch) {
  (cluster() ? open_by_slot_[batch->slot] : single_open_) = nullptr;
}

void RedisChecker::flush() {
  flush_timer_->disarm();
  std::vector<CheckBatch*> batches;
  batches.swap(open_batches_);
  for (CheckBatch* batch : batches) {
    close_batch(batch);
  }
  for (CheckBatch* batch : batches) {
    route(batch);
  }
  batches.clear();
  if (open_batches_.empty()) {
    open_batches_.swap(batches);  // keeps the capacity
  }
}

// Sends on the batches that were held back (for the first slot map, or a
// TRYAGAIN), except those whose checks were all decided meanwhile (timed out,
// cancelled, or by the fail policy): nothing of them must be counted.
void RedisChecker::route_waiting(std::vector<CheckBatch*>& held) {
  std::vector<CheckBatch*> batches;
  batches.swap(held);
  for (CheckBatch* batch : batches) {
    if (batch->waited_for()) {
      route(batch);
    } else {
      pool_.release_batch(batch);
    }
  }
}

// Sends `batch` to the connection serving its slot (the only one, without Cluster).
void RedisChecker::route(CheckBatch* batch) {
  if (batch->command == nullptr && !formatter_.format(batch, shared_.script_sha)) {
    fail_batch(batch, CheckError::disconnected);
    return;
  }
  CheckConnection* connection = single_.get();
  if (cluster()) {
    if (!cluster_->known() && !cluster_->failed()) {
      parked_.push_back(batch);  // sent when the first slot map comes
      return;
    }
    connection = cluster_->owner_of(batch->slot);
  }
  if (connection == nullptr || !send_batch(batch, connection, false)) {
    fail_batch(batch, CheckError::disconnected);
  }
}

bool RedisChecker::send_batch(CheckBatch* batch, CheckConnection* connection, bool asking) {
  if (batch->command == nullptr || !connection->send(batch, batch->command, batch->command_len, asking)) {
    return false;
  }
  batch->asking = asking;
  bump(counters_->round_trips);
  return true;
}

// Completes every check of `batch` still waiting with `error`, and releases it.
void RedisChecker::fail_batch(CheckBatch* batch, CheckError error) {
  CheckOutcome outcome;
  outcome.error = error;
  for (const CheckBatch::Member& member : batch->checks) {
    if (member.check->live) {
      complete(member.check, outcome);
    }
  }
  release_unanswered(batch);
}

void RedisChecker::on_batch_reply(void* self, CheckConnection* connection, InFlight* sent, redisReply* reply) {
  static_cast<RedisChecker*>(self)->handle_batch_reply(static_cast<CheckBatch*>(sent), connection, reply);
}

void RedisChecker::handle_batch_reply(CheckBatch* batch, CheckConnection* connection, redisReply* reply) {
  if (cluster()) {
    cluster_->replied_on(connection);
  }
  if (reply == nullptr) {
    fail_batch(batch, CheckError::disconnected);
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    if (starts_with(reply, "NOSCRIPT") && !batch->retried) {
      // The script cache was flushed (SCRIPT FLUSH, a restart, a failover):
      // load it again and send the batch once more, behind the load.
      batch->retried = true;
      connection->reload_script();
      if (send_batch(batch, connection, batch->asking)) {
        return;
      }
    }
    if (cluster()) {
      if ((starts_with(reply, "MOVED ") || starts_with(reply, "ASK ")) && follow_redirect(batch, reply)) {
        return;
      }
      if (starts_with(reply, "TRYAGAIN")) {
        if (!batch->has_live_check()) {
          release_unanswered(batch);  // hand-backs and charges only: dropped, not retried for ever
        } else if (batch->zones > 1) {
          lose_charges(*batch);
          split_into_zones(pool_, batch, [this](CheckBatch* part) { route(part); });  // each key where it is
        } else {
          retry_later(batch);
        }
        return;
      }
      if (starts_with(reply, "CLUSTERDOWN") || starts_with(reply, "MOVED ") || starts_with(reply, "ASK ")) {
        cluster_->refresh();
      }
    }
    log_.error("check failed: " + escape_for_log(std::string_view(reply->str, reply->len)));
    fail_batch(batch, CheckError::redis_error);
    return;
  }
  if (!locate_batch_reply(batch, reply)) {
    log_.error("unexpected reply to the check script");
    fail_batch(batch, CheckError::bad_reply);
    return;
  }
  // Hand-backs have no member: their answer is not read.
  for (const CheckBatch::Member& member : batch->checks) {
    PendingCheck* pending = member.check;
    if (!pending->live) {
      give_back_unclaimed_grant(*batch, member, reply);
      continue;
    }
    verdicts_.resize(member.zones);
    CheckOutcome outcome;
    // The grant, for a lease entry's member (a one-zone check: this is its
    // only part).
    if (!decode_member_reply(*batch, member, reply, verdicts_.data(), &outcome.lease)) {
      outcome.error = CheckError::bad_reply;
      outcome.lease = LeaseGrant{};
      complete(pending, outcome);
      continue;
    }
    for (size_t i = 0; i < member.zones; i++) {
      pending->verdicts[batch->zone_index[member.zone_at + i]] = verdicts_[i];
    }
    if (--pending->parts_left == 0) {
      outcome.decision = combine_verdicts(pending->verdicts.data(), pending->zones);
      for (size_t i = 0; i < pending->zones && i < 32; i++) {
        outcome.banned_zones |= pending->verdicts[i].banned ? 1u << i : 0;
        outcome.overridden_zones |= pending->verdicts[i].overridden ? 1u << i : 0;
      }
      complete(pending, outcome);
    }
  }
  pool_.release_batch(batch);
}

// "MOVED <slot> <host>:<port>": the slot has a new master, for good (the
// map is refreshed too). "ASK <slot> <host>:<port>": this once, during a
// migration, behind ASKING.
bool RedisChecker::follow_redirect(CheckBatch* batch, const redisReply* reply) {
  if (batch->redirects >= kMaxRedirects) {
    return false;
  }
  const std::string_view text(reply->str, reply->len);
  const bool moved = starts_with(reply, "MOVED ");
  const size_t space = text.rfind(' ');
  RedisEndpoint target;
  if (space == std::string_view::npos || !parse_reply_endpoint(text.substr(space + 1), &target) ||
      !is_ip_address(target.host)) {
    return false;  // a hostname would be resolved here, blocking the worker
  }
  CheckConnection* connection = cluster_->redirected_to(target);
  if (moved) {
    cluster_->moved(batch->slot, connection);
  }
  batch->redirects++;
  bump(counters_->redirects);
  if (!moved) {
    // Keys half migrated: each zone on its own (its one key), asked of the
    // importing master.
    lose_charges(*batch);
    split_into_zones(pool_, batch, [this, connection](CheckBatch* part) {
      if (!formatter_.format(part, shared_.script_sha) || !send_batch(part, connection, true)) {
        fail_batch(part, CheckError::disconnected);
      }
    });
    return true;
  }
  return send_batch(batch, connection, !moved);
}

// Until its checks time out: a migration moves a client's keys within moments.
void RedisChecker::retry_later(CheckBatch* batch) {
  retrying_.push_back(batch);
  if (!retry_timer_->armed()) {
    retry_timer_->arm(kTryAgainDelayMs);
  }
}

void RedisChecker::shutdown() {
  live_.forget_all();
  for (CheckBatch* batch : open_batches_) {
    close_batch(batch);
  }
  for (std::vector<CheckBatch*>* waiting : {&open_batches_, &parked_, &retrying_}) {
    std::vector<CheckBatch*> batches;
    batches.swap(*waiting);
    for (CheckBatch* batch : batches) {
      release_unanswered(batch);
    }
  }
  if (sentinel_) {
    sentinel_->shutdown();
  }
  if (retry_timer_) {
    retry_timer_->disarm();
  }
  timeout_timer_->disarm();
  flush_timer_->disarm();
  // Batches in flight come back with nullptr and are released.
  if (cluster()) {
    cluster_->shutdown();
  } else {
    single_->close();
  }
}

}  // namespace rate_guard
