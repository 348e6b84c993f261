#include "redis_checker.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <chrono>
#include <charconv>
#include <cstdlib>

#include "redis_key.h"
#include "scripts.h"

namespace rate_guard {

namespace {

// After a connection is lost the first attempt is immediate (a killed
// connection to a healthy Redis), then 100 ms doubling up to 1 s.
constexpr uint64_t kFirstBackoffMs = 100;
constexpr uint64_t kMaxBackoffMs = 1000;

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

void append_number(std::string& out, uint64_t value) {
  char buffer[24];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, result.ptr);
}

// With Cluster: a refresh of the slot map at most this often (a resharding
// answers many MOVED at once), a batch follows at most this many MOVED or
// ASK answers before the fail policy decides, and TRYAGAIN is retried this
// often until its checks time out.
constexpr uint64_t kMinRefreshIntervalMs = 100;
constexpr uint8_t kMaxRedirects = 8;
constexpr uint64_t kTryAgainDelayMs = 10;

uint64_t backoff_ms(uint64_t failures) {
  if (failures <= 1) {
    return 0;
  }
  return std::min(kFirstBackoffMs << std::min<uint64_t>(failures - 2, 4), kMaxBackoffMs);
}

}  // namespace

struct RedisChecker::PendingCheck {
  CheckCallback callback = nullptr;  // null once completed or cancelled
  void* data = nullptr;
  uint64_t deadline_ms = 0;
  uint64_t sent_us = 0;  // for the latency histogram
  size_t zones = 0;
  size_t parts_left = 0;  // batches (one per slot) whose answer is awaited
  size_t batches = 0;     // batches holding it: released with the last one
  std::vector<ZoneVerdict> verdicts;  // one per zone, filled part by part
  bool live = false;  // waiting for its outcome, in the live list
  PendingCheck* prev = nullptr;
  PendingCheck* next = nullptr;
};

// The checks of one event-loop turn for one slot (for everything without
// Cluster), sent as one EVALSHA. A check stays in its batch (and is released
// with it) even when it completes early, timed out or cancelled: its zones
// still have their place in the reply.
struct RedisChecker::Batch {
  RedisChecker* owner = nullptr;
  uint16_t slot = 0;
  struct Entry {
    PendingCheck* check;
    size_t zones;  // of this check in this batch
  };
  std::vector<Entry> entries;
  std::vector<uint16_t> zone_index;  // of each zone of the batch, in its check
  size_t zones = 0;
  std::string keys;  // the KEYS, back to back
  std::vector<size_t> key_ends;
  std::string args;  // each check's zone count and zone arguments
  std::vector<size_t> arg_ends;
  uint64_t deadline_ms = 0;  // of its last sending: `timeout` after it
  char* command = nullptr;  // formatted when first sent, kept for resending
  size_t command_len = 0;
  bool retried = false;  // NOSCRIPT answered once
  bool asking = false;   // last sent behind ASKING
  uint8_t redirects = 0;
  Node* node = nullptr;  // while in flight: where, in its list
  Batch* prev = nullptr;
  Batch* next = nullptr;
};

// A connection to one Redis server (the master, with Sentinel or Cluster).
struct RedisChecker::Node {
  RedisChecker* owner = nullptr;
  RedisEndpoint endpoint;
  std::string unix_path;
  redisAsyncContext* context = nullptr;
  State state = State::idle;
  bool ever_connected = false;
  uint64_t consecutive_failures = 0;
  std::unique_ptr<Timer> connect_timer;
  std::unique_ptr<Timer> reconnect_timer;
  Batch* in_flight_head = nullptr;  // sent, not answered, oldest first
  Batch* in_flight_tail = nullptr;
  size_t slots = 0;      // with Cluster: how many it serves
  bool retired = false;  // no slot left: freed once nothing is in flight

  std::string address() const { return unix_path.empty() ? endpoint_text(endpoint) : "unix:" + unix_path; }

  void link(Batch* batch) {
    batch->node = this;
    batch->next = nullptr;
    batch->prev = in_flight_tail;
    (in_flight_tail != nullptr ? in_flight_tail->next : in_flight_head) = batch;
    in_flight_tail = batch;
  }
  void unlink(Batch* batch) {
    (batch->prev != nullptr ? batch->prev->next : in_flight_head) = batch->next;
    (batch->next != nullptr ? batch->next->prev : in_flight_tail) = batch->prev;
    batch->prev = batch->next = nullptr;
    batch->node = nullptr;
  }
};

std::string_view check_error_name(CheckError error) {
  switch (error) {
    case CheckError::none: return "none";
    case CheckError::unavailable: return "unavailable";
    case CheckError::timeout: return "timeout";
    case CheckError::disconnected: return "disconnected";
    case CheckError::redis_error: return "redis_error";
    case CheckError::bad_reply: return "bad_reply";
  }
  return "unknown";
}

bool decode_check_reply(const redisReply* reply, size_t first_zone, size_t zones, ZoneVerdict* verdicts) {
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY ||
      reply->elements < (first_zone + zones) * kCheckReplyFieldsPerZone) {
    return false;
  }
  redisReply* const* fields = reply->element + first_zone * kCheckReplyFieldsPerZone;
  for (size_t i = 0; i < zones * kCheckReplyFieldsPerZone; i++) {
    if (fields[i]->type != REDIS_REPLY_INTEGER || fields[i]->integer < 0) {
      return false;
    }
  }
  for (size_t zone = 0; zone < zones; zone++, fields += kCheckReplyFieldsPerZone) {
    verdicts[zone].allowed = fields[0]->integer != 0;
    verdicts[zone].limit = static_cast<uint64_t>(fields[1]->integer);
    verdicts[zone].remaining = static_cast<uint64_t>(fields[2]->integer);
    verdicts[zone].reset_ms = static_cast<uint64_t>(fields[3]->integer);
  }
  return true;
}

RedisChecker::RedisChecker(RedisConfig config, EventLoop& loop, RedisCounters* counters)
    : config_(std::move(config)), loop_(loop), counters_(counters != nullptr ? counters : &own_counters_) {
  timeout_timer_ = loop_.make_timer([this] { sweep_timeouts(); }, true);
  flush_timer_ = loop_.make_timer([this] { flush(); }, true);
  if (!config_.sentinels.empty()) {
    sentinel_ = std::make_unique<SentinelClient>(config_, loop_,
                                                 [this](std::string_view message) { log_error(message); });
  }
  if (!config_.cluster_nodes.empty()) {
    slot_map_query_ = std::make_unique<AskInTurn>(loop_, "cluster node",
                                                  [this](std::string_view message) { log_error(message); });
    slot_owner_.assign(kClusterSlots, nullptr);
    open_by_slot_.assign(kClusterSlots, nullptr);
    refresh_timer_ = loop_.make_timer([this] { refresh_slots(); }, false);
    retire_timer_ = loop_.make_timer([this] { retire_unused_nodes(); }, false);
    retry_timer_ = loop_.make_timer([this] { route_waiting(retrying_); }, true);
  } else {
    Node* node = add_node({config_.host, config_.port});
    node->unix_path = config_.unix_path;
  }
}

RedisChecker::~RedisChecker() {
  shutdown();
}

// ---------------------------------------------------------------- connections

RedisChecker::Node* RedisChecker::add_node(const RedisEndpoint& endpoint) {
  nodes_.push_back(std::make_unique<Node>());
  Node* node = nodes_.back().get();
  node->owner = this;
  node->endpoint = endpoint;
  node->connect_timer = loop_.make_timer(
      [this, node] {
        if (node->state == State::connecting) {
          log_error("no connection to Redis " + node->address() + " ready within " +
                    std::to_string(config_.connect_timeout_ms) + "ms");
          drop_connection(node);
        }
      },
      false);
  node->reconnect_timer = loop_.make_timer([this, node] { connect(node); }, false);
  return node;
}

RedisChecker::Node* RedisChecker::node_at(const RedisEndpoint& endpoint) {
  for (const auto& node : nodes_) {
    if (node->endpoint == endpoint) {
      return node.get();
    }
  }
  return nullptr;
}

bool RedisChecker::connected() const {
  if (!cluster()) {
    return nodes_[0]->state == State::ready;
  }
  if (!slots_known_) {
    return false;
  }
  for (const auto& node : nodes_) {
    if (node->slots > 0 && node->state != State::ready) {
      return false;
    }
  }
  return true;
}

std::string RedisChecker::address() const {
  std::string addresses;
  for (const auto& node : nodes_) {
    if (!cluster() || node->slots > 0) {
      addresses += (addresses.empty() ? "" : ",") + node->address();
    }
  }
  return addresses;
}

void RedisChecker::start() {
  if (cluster()) {
    if (!slots_known_ && !slot_map_query_->busy()) {
      refresh_slots();  // the nodes connect once the slot map names them
    }
    return;
  }
  if (nodes_[0]->state == State::idle) {
    if (sentinel_) {
      sentinel_->watch([this](const RedisEndpoint& master) { master_switched(master); });
    }
    connect(nodes_[0].get());
  }
}

// With Sentinel the master is asked for on every (re)connection: after a
// connection loss it may have moved. With Cluster a reconnection asks for
// the slot map too: the master may have been replaced by a replica.
void RedisChecker::connect(Node* node) {
  if (cluster() && node->consecutive_failures > 0) {
    refresh_slots();
  }
  if (!sentinel_) {
    connect_to_redis(node);
    return;
  }
  node->state = State::discovering;
  sentinel_->discover([this, node](const RedisEndpoint* master) {
    if (node->state != State::discovering) {
      return;
    }
    if (master == nullptr) {
      log_error("no sentinel told where master \"" + config_.master_name + "\" is");
      schedule_reconnect(node);
      return;
    }
    node->endpoint = *master;
    connect_to_redis(node);
  });
}

void RedisChecker::master_switched(const RedisEndpoint& master) {
  loop_.log(LogLevel::notice, "rate_guard: master \"" + config_.master_name + "\" switched to " +
                                  master.host + ":" + std::to_string(master.port));
  Node* node = nodes_[0].get();
  if (node->state == State::ready || node->state == State::connecting) {
    if (master == node->endpoint) {
      return;
    }
    drop_connection(node);  // checks in flight fail now; the next connection asks again
  }
}

void RedisChecker::on_role_reply(redisAsyncContext* context, void* reply_ptr, void*) {
  auto* node = static_cast<Node*>(context->data);
  auto* reply = static_cast<redisReply*>(reply_ptr);
  if (node == nullptr || reply == nullptr || context != node->context) {
    return;
  }
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
      reply->element[0]->type == REDIS_REPLY_STRING &&
      std::string_view(reply->element[0]->str, reply->element[0]->len) == "master") {
    return;
  }
  // A sentinel's answer can be stale during a failover: ask again.
  RedisChecker* self = node->owner;
  self->log_error(node->address() + " is not the master of \"" + self->config_.master_name + "\"");
  self->drop_connection(node);
}

void RedisChecker::connect_to_redis(Node* node) {
  redisAsyncContext* context = node->unix_path.empty()
                                   ? redisAsyncConnect(node->endpoint.host.c_str(), node->endpoint.port)
                                   : redisAsyncConnectUnix(node->unix_path.c_str());
  if (context == nullptr) {
    log_error("cannot allocate a Redis connection");
    schedule_reconnect(node);
    return;
  }
  if (context->err != 0) {
    log_error("cannot connect to Redis " + node->address() + ": " + context->errstr);
    redisAsyncFree(context);
    schedule_reconnect(node);
    return;
  }
  context->data = node;
  if (!loop_.attach(context)) {
    log_error("cannot attach the Redis connection to the event loop");
    redisAsyncFree(context);
    schedule_reconnect(node);
    return;
  }
  redisAsyncSetConnectCallback(context, on_connect);
  redisAsyncSetDisconnectCallback(context, on_disconnect);
  node->context = context;
  node->state = State::connecting;
  node->connect_timer->arm(config_.connect_timeout_ms);
  send_handshake(node);
}

// AUTH, SELECT and SCRIPT LOAD go first in the pipeline: checks sent right
// after them are answered only once they are done.
void RedisChecker::send_handshake(Node* node) {
  redisAsyncContext* context = node->context;
  send_auth(context, config_.username, config_.password, on_handshake_reply, const_cast<char*>("AUTH"));
  if (config_.db != 0) {
    redisAsyncCommand(context, on_handshake_reply, const_cast<char*>("SELECT"), "SELECT %u",
                      static_cast<unsigned>(config_.db));
  }
  if (sentinel_) {
    redisAsyncCommand(context, on_role_reply, nullptr, "ROLE");
  }
  redisAsyncCommand(context, on_script_load_reply, nullptr, "SCRIPT LOAD %b", kCheckScript.data(),
                    kCheckScript.size());
  bump(counters_->script_loads);
}

void RedisChecker::on_connect(const redisAsyncContext* context, int status) {
  auto* node = static_cast<Node*>(context->data);
  if (node == nullptr || context != node->context) {
    return;
  }
  if (status != REDIS_OK) {
    node->owner->connection_lost(node, context->errstr);
  }
  // A TCP connection is not yet a working Redis (a paused or hung server
  // accepts connections, a server paused for writes answers SCRIPT LOAD):
  // the connection is up once a probe check is answered, see send_probe.
}

// The last step of the handshake: the script run for no request (no key, so
// any node of a cluster runs it; still a script, so a server paused for
// writes holds it as it holds checks). Until it is answered, checks are
// decided at once.
void RedisChecker::send_probe(Node* node) {
  if (script_sha_.empty()) {
    handshake_answered(node);  // SCRIPT LOAD failed: the checks will tell
    return;
  }
  redisAsyncCommand(node->context, on_probe_reply, nullptr, "EVALSHA %b 0 0 0", script_sha_.data(),
                    script_sha_.size());
}

void RedisChecker::on_probe_reply(redisAsyncContext* context, void* reply, void*) {
  auto* node = static_cast<Node*>(context->data);
  if (node != nullptr && reply != nullptr && context == node->context) {
    node->owner->handshake_answered(node);
  }
}

void RedisChecker::handshake_answered(Node* node) {
  if (node->state != State::connecting) {
    return;
  }
  node->connect_timer->disarm();
  node->state = State::ready;
  node->consecutive_failures = 0;
  if (node->ever_connected) {
    loop_.log(LogLevel::notice, "rate_guard: reconnected to Redis " + node->address());
  }
  node->ever_connected = true;
}

void RedisChecker::on_disconnect(const redisAsyncContext* context, int status) {
  auto* node = static_cast<Node*>(context->data);
  if (node == nullptr || context != node->context) {
    return;  // a connection we dropped ourselves
  }
  node->owner->connection_lost(node, status == REDIS_OK ? "connection closed" : context->errstr);
}

void RedisChecker::on_handshake_reply(redisAsyncContext* context, void* reply_ptr, void* privdata) {
  auto* node = static_cast<Node*>(context->data);
  auto* reply = static_cast<redisReply*>(reply_ptr);
  if (node == nullptr || reply == nullptr || context != node->context) {
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    node->owner->log_error(std::string(static_cast<const char*>(privdata)) + " failed: " +
                           std::string(reply->str, reply->len));
    node->owner->drop_connection(node);
  }
}

void RedisChecker::on_script_load_reply(redisAsyncContext* context, void* reply_ptr, void*) {
  auto* node = static_cast<Node*>(context->data);
  auto* reply = static_cast<redisReply*>(reply_ptr);
  if (node == nullptr || reply == nullptr) {
    return;
  }
  RedisChecker* self = node->owner;
  if (reply->type == REDIS_REPLY_STRING) {
    self->script_sha_.assign(reply->str, reply->len);
  } else if (reply->type == REDIS_REPLY_ERROR) {
    self->log_error("SCRIPT LOAD failed: " + std::string(reply->str, reply->len));
  }
  if (context == node->context && node->state == State::connecting) {
    self->send_probe(node);
  }
}

// Our own decision to drop the connection: hiredis answers every command in
// flight with a NULL reply, which fails its check.
void RedisChecker::drop_connection(Node* node) {
  node->connect_timer->disarm();
  redisAsyncContext* context = node->context;
  node->context = nullptr;
  if (context != nullptr) {
    redisAsyncFree(context);
  }
  schedule_reconnect(node);
}

// hiredis lost the connection (or could not make it) and frees the context itself.
void RedisChecker::connection_lost(Node* node, std::string_view reason) {
  node->connect_timer->disarm();
  node->context = nullptr;
  log_error("connection to Redis " + node->address() + " lost: " + std::string(reason));
  schedule_reconnect(node);
}

void RedisChecker::schedule_reconnect(Node* node) {
  node->state = State::waiting_to_reconnect;
  node->consecutive_failures++;
  bump(counters_->reconnects);
  if (node->retired) {
    return;  // no slot left on it: nothing to reconnect for
  }
  node->reconnect_timer->arm(backoff_ms(node->consecutive_failures));
}

// Once a connection failed, checks are decided at once until it is up
// again; only the very first connection is waited for.
bool RedisChecker::usable(const Node* node) const {
  return node != nullptr &&
         (node->state == State::ready ||
          (node->state == State::connecting && !node->ever_connected && node->consecutive_failures == 0));
}

// ------------------------------------------------------------------- Cluster

void RedisChecker::refresh_slots() {
  if (slot_map_query_->busy()) {
    refresh_again_ = true;
    return;
  }
  const uint64_t now = loop_.now_ms();
  if (last_refresh_ms_ != 0 && now < last_refresh_ms_ + kMinRefreshIntervalMs) {
    if (!refresh_timer_->armed()) {
      refresh_timer_->arm(last_refresh_ms_ + kMinRefreshIntervalMs - now);
    }
    return;
  }
  refresh_timer_->disarm();
  last_refresh_ms_ = std::max<uint64_t>(now, 1);
  // The masters known now first, then the configured nodes.
  std::vector<RedisEndpoint> candidates;
  for (const auto& node : nodes_) {
    if (node->slots > 0) {
      candidates.push_back(node->endpoint);
    }
  }
  for (const RedisEndpoint& seed : config_.cluster_nodes) {
    if (std::find(candidates.begin(), candidates.end(), seed) == candidates.end()) {
      candidates.push_back(seed);
    }
  }
  bump(counters_->slot_map_refreshes);
  AskInTurn::Question question;
  question.servers = std::move(candidates);
  question.username = config_.username;
  question.password = config_.password;
  question.command = {"CLUSTER", "SLOTS"};
  question.timeout_ms = config_.connect_timeout_ms + config_.timeout_ms;
  slot_map_query_->ask(
      std::move(question),
      [this](const redisReply* reply, const RedisEndpoint& asked, std::string* error) {
        return parse_cluster_slots(reply, asked, &slot_ranges_, error);
      },
      [this](bool answered) { slots_found(answered); });
}

void RedisChecker::slots_found(bool answered) {
  if (!answered) {
    refresh_failures_++;
    log_error("no Redis Cluster node answered CLUSTER SLOTS");
    if (!slots_known_) {
      slots_failed_ = true;  // checks are decided at once until a map comes
      std::vector<Batch*> parked;
      parked.swap(parked_);
      for (Batch* batch : parked) {
        fail_batch(batch, CheckError::unavailable);
      }
    }
    refresh_timer_->arm(std::max<uint64_t>(backoff_ms(refresh_failures_ + 1), kMinRefreshIntervalMs));
    return;
  }
  refresh_failures_ = 0;
  std::fill(slot_owner_.begin(), slot_owner_.end(), nullptr);
  for (const auto& node : nodes_) {
    node->slots = 0;
  }
  for (const SlotRange& range : slot_ranges_) {
    Node* node = node_at(range.master);
    if (node == nullptr) {
      node = add_node(range.master);
    }
    for (size_t slot = range.first; slot <= range.last; slot++) {
      slot_owner_[slot] = node;
    }
    node->slots += range.last - range.first + 1u;
  }
  slots_known_ = true;
  slots_failed_ = false;
  std::string masters;
  for (const auto& node : nodes_) {
    if (node->slots > 0) {
      masters += (masters.empty() ? "" : ", ") + node->address() + " (" + std::to_string(node->slots) + " slots)";
    }
  }
  if (masters != cluster_masters_) {
    loop_.log(LogLevel::notice, "rate_guard: Redis Cluster masters: " + masters);
    cluster_masters_ = std::move(masters);
  }
  for (const auto& node : nodes_) {
    node->retired = node->slots == 0;
    if (node->retired) {
      node->reconnect_timer->disarm();
    } else {
      reconnect_soon(node.get());
    }
  }
  retire_timer_->arm(0);
  route_waiting(parked_);
  if (refresh_again_) {
    refresh_again_ = false;
    refresh_slots();
  }
}

// A node that serves slots again: connecting, unless it is, or will be soon.
void RedisChecker::reconnect_soon(Node* node) {
  if (node->state == State::idle ||
      (node->state == State::waiting_to_reconnect && !node->reconnect_timer->armed())) {
    connect(node);
  }
}

// Frees the nodes that serve no slot once nothing is in flight on them
// (outside their own callbacks: this runs from a timer).
void RedisChecker::retire_unused_nodes() {
  for (size_t i = 0; i < nodes_.size();) {
    Node* node = nodes_[i].get();
    if (!node->retired || node->in_flight_head != nullptr) {
      i++;
      continue;
    }
    redisAsyncContext* context = node->context;
    node->context = nullptr;
    if (context != nullptr) {
      context->data = nullptr;
      redisAsyncFree(context);
    }
    nodes_.erase(nodes_.begin() + static_cast<std::ptrdiff_t>(i));
  }
}

// "MOVED <slot> <host>:<port>": the slot has a new master, for good (the
// map is refreshed too). "ASK <slot> <host>:<port>": this once, during a
// migration, behind ASKING.
bool RedisChecker::follow_redirect(Batch* batch, const redisReply* reply) {
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
  Node* node = node_at(target);
  if (node == nullptr) {
    node = add_node(target);
  }
  if (moved) {
    Node*& owner = slot_owner_[batch->slot];
    if (owner != node) {
      if (owner != nullptr) {
        owner->slots--;
      }
      owner = node;
      node->slots++;
    }
    refresh_slots();
  }
  node->retired = false;
  reconnect_soon(node);
  batch->redirects++;
  bump(counters_->redirects);
  if (!moved && batch->zones > 1) {
    split_batch(batch, node);
    return true;
  }
  return send_batch(batch, node, !moved);
}

// Until its checks time out: a migration moves a client's keys within moments.
void RedisChecker::retry_later(Batch* batch) {
  retrying_.push_back(batch);
  if (!retry_timer_->armed()) {
    retry_timer_->arm(kTryAgainDelayMs);
  }
}

// While a slot migrates Redis runs a command of several keys only where all
// of them are (TRYAGAIN otherwise, on either side, until the migration ends),
// and a batch is such a command: its zones go on one by one, each key where
// it is (asked of the importing master behind ASKING when `ask_node` is
// set). A multi-zone check is then all-or-nothing per zone only, for the
// moments its slot migrates.
void RedisChecker::split_batch(Batch* batch, Node* ask_node) {
  size_t key_begin = 0;
  size_t arg = 0;   // index in arg_ends: each check's zone count, then 5 per zone
  size_t zone = 0;  // index in the batch
  for (const Batch::Entry& entry : batch->entries) {
    PendingCheck* pending = entry.check;
    size_t arg_begin = batch->arg_ends[arg];  // after the zone count
    arg++;
    for (size_t i = 0; i < entry.zones; i++, zone++) {
      const size_t arg_end = batch->arg_ends[arg + kCheckArgsPerZone - 1];
      if (pending->live) {
        Batch* part = acquire_batch();
        part->slot = batch->slot;
        part->redirects = batch->redirects;
        part->retried = batch->retried;
        part->keys.assign(batch->keys, key_begin, batch->key_ends[zone] - key_begin);
        part->key_ends.push_back(part->keys.size());
        part->zone_index.push_back(batch->zone_index[zone]);
        part->args = "1";
        part->arg_ends.push_back(1);
        for (size_t a = 0, begin = arg_begin; a < kCheckArgsPerZone; a++) {
          const size_t end = batch->arg_ends[arg + a];
          part->args.append(batch->args, begin, end - begin);
          part->arg_ends.push_back(part->args.size());
          begin = end;
        }
        part->zones = 1;
        part->entries.push_back({pending, 1});
        pending->batches++;
        pending->parts_left++;
        if (ask_node != nullptr) {
          if (!format_batch(part) || !send_batch(part, ask_node, true)) {
            fail_batch(part, CheckError::disconnected);
          }
        } else {
          route(part);
        }
      }
      key_begin = batch->key_ends[zone];
      arg_begin = arg_end;
      arg += kCheckArgsPerZone;
    }
    if (pending->live) {
      pending->parts_left--;  // this batch's part is replaced by the zones' own
    }
  }
  release_batch(batch);
}

// ------------------------------------------------------------------- batches

// Sends on the batches that were held back (for the first slot map, or a
// TRYAGAIN), except those whose checks were all decided meanwhile (timed out,
// cancelled, or by the fail policy): nothing of them must be counted.
void RedisChecker::route_waiting(std::vector<Batch*>& held) {
  std::vector<Batch*> batches;
  batches.swap(held);
  for (Batch* batch : batches) {
    const bool waited_for = std::any_of(batch->entries.begin(), batch->entries.end(),
                                        [](const Batch::Entry& entry) { return entry.check->live; });
    if (waited_for) {
      route(batch);
    } else {
      release_batch(batch);
    }
  }
}

RedisChecker::PendingCheck* RedisChecker::acquire() {
  if (free_checks_.empty()) {
    all_checks_.push_back(std::make_unique<PendingCheck>());
    return all_checks_.back().get();
  }
  PendingCheck* pending = free_checks_.back();
  free_checks_.pop_back();
  return pending;
}

RedisChecker::Batch* RedisChecker::acquire_batch() {
  if (free_batches_.empty()) {
    all_batches_.push_back(std::make_unique<Batch>());
    all_batches_.back()->owner = this;
    return all_batches_.back().get();
  }
  Batch* batch = free_batches_.back();
  free_batches_.pop_back();
  return batch;
}

// Gives back a batch and the checks in it that nothing holds any more; the
// strings keep their capacity, so a warm client allocates nothing per check.
void RedisChecker::release_batch(Batch* batch) {
  for (const Batch::Entry& entry : batch->entries) {
    PendingCheck* pending = entry.check;
    if (--pending->batches > 0 || pending->live) {
      continue;  // live: cannot happen once the last batch's reply was handled
    }
    pending->callback = nullptr;
    pending->data = nullptr;
    free_checks_.push_back(pending);
  }
  batch->entries.clear();
  batch->zone_index.clear();
  batch->zones = 0;
  batch->keys.clear();
  batch->key_ends.clear();
  batch->args.clear();
  batch->arg_ends.clear();
  std::free(batch->command);  // allocated by hiredis's formatter
  batch->command = nullptr;
  batch->command_len = 0;
  batch->retried = false;
  batch->redirects = 0;
  free_batches_.push_back(batch);
}

// This turn's batch for `slot` (found through open_by_slot_ with Cluster,
// where a turn may hold a batch for each of many slots).
RedisChecker::Batch* RedisChecker::open_batch(uint16_t slot) {
  Batch*& open = cluster() ? open_by_slot_[slot] : single_open_;
  if (open == nullptr) {
    open = acquire_batch();
    open->slot = slot;
    open_batches_.push_back(open);
  }
  return open;
}

// No more checks go into `batch`: it waits for the end of the turn.
void RedisChecker::close_batch(Batch* batch) {
  (cluster() ? open_by_slot_[batch->slot] : single_open_) = nullptr;
}

// Appends the zones of one check that live in `slot` to `batch`: their keys
// (built in keys_) and arguments, copied now since the caller's memory (an
// nginx request) may be gone when the batch is sent.
void RedisChecker::add_to_batch(Batch* batch, PendingCheck* pending, const ZoneRequest* zones,
                                const uint16_t* zone_slots, size_t count, uint16_t slot) {
  size_t in_slot = 0;
  for (size_t i = 0; i < count; i++) {
    if (zone_slots[i] == slot) {
      const size_t begin = i == 0 ? 0 : key_ends_[i - 1];
      batch->keys.append(keys_, begin, key_ends_[i] - begin);
      batch->key_ends.push_back(batch->keys.size());
      batch->zone_index.push_back(static_cast<uint16_t>(i));
      in_slot++;
    }
  }
  append_number(batch->args, in_slot);
  batch->arg_ends.push_back(batch->args.size());
  for (size_t i = 0; i < count; i++) {
    if (zone_slots[i] != slot) {
      continue;
    }
    const RequestLimits& limits = zones[i].limits;
    for (uint64_t value : {static_cast<uint64_t>(zones[i].zone->algorithm), limits.limit,
                           limits.window_ms, limits.burst, zones[i].cost}) {
      append_number(batch->args, value);
      batch->arg_ends.push_back(batch->args.size());
    }
  }
  batch->zones += in_slot;
  batch->entries.push_back({pending, in_slot});
  pending->batches++;
  pending->parts_left++;
}

// EVALSHA sha numkeys KEYS... 0 R ARGS... (EVAL with the script text before
// the first SCRIPT LOAD has answered).
bool RedisChecker::format_batch(Batch* batch) {
  argv_.clear();
  argvlen_.clear();
  auto add = [this](const char* data, size_t len) {
    argv_.push_back(data);
    argvlen_.push_back(len);
  };
  const bool have_sha = !script_sha_.empty();
  add(have_sha ? "EVALSHA" : "EVAL", have_sha ? 7 : 4);
  add(have_sha ? script_sha_.data() : kCheckScript.data(), have_sha ? script_sha_.size() : kCheckScript.size());
  counts_.clear();
  append_number(counts_, batch->zones);
  const size_t numkeys_end = counts_.size();
  append_number(counts_, batch->entries.size());
  add(counts_.data(), numkeys_end);
  size_t begin = 0;
  for (size_t end : batch->key_ends) {
    add(batch->keys.data() + begin, end - begin);
    begin = end;
  }
  add("0", 1);  // the script reads the time from Redis
  add(counts_.data() + numkeys_end, counts_.size() - numkeys_end);
  begin = 0;
  for (size_t end : batch->arg_ends) {
    add(batch->args.data() + begin, end - begin);
    begin = end;
  }
  char* command = nullptr;
  const int length = redisFormatCommandArgv(&command, static_cast<int>(argv_.size()), argv_.data(), argvlen_.data());
  if (length <= 0) {
    return false;
  }
  batch->command = command;
  batch->command_len = static_cast<size_t>(length);
  return true;
}

bool RedisChecker::send_batch(Batch* batch, Node* node, bool asking) {
  if (node->context == nullptr || batch->command == nullptr) {
    return false;
  }
  if (asking) {
    redisAsyncCommand(node->context, nullptr, nullptr, "ASKING");
  }
  if (redisAsyncFormattedCommand(node->context, on_batch_reply, batch, batch->command, batch->command_len) !=
      REDIS_OK) {
    return false;
  }
  batch->asking = asking;
  batch->deadline_ms = loop_.now_ms() + config_.timeout_ms;
  node->link(batch);
  bump(counters_->round_trips);
  return true;
}

// Sends `batch` to the node serving its slot (the only node, without Cluster).
void RedisChecker::route(Batch* batch) {
  if (batch->command == nullptr && !format_batch(batch)) {
    fail_batch(batch, CheckError::disconnected);
    return;
  }
  Node* node = nodes_.empty() ? nullptr : nodes_[0].get();
  if (cluster()) {
    if (!slots_known_ && !slots_failed_) {
      parked_.push_back(batch);  // sent when the first slot map comes
      return;
    }
    node = slots_known_ ? slot_owner_[batch->slot] : nullptr;
  }
  if (node == nullptr || !send_batch(batch, node, false)) {
    fail_batch(batch, CheckError::disconnected);
  }
}

RedisChecker::PendingCheck* RedisChecker::check(const ZoneRequest* zones, size_t count,
                                                CheckCallback callback, void* data,
                                                CheckOutcome* immediate) {
  if (count == 0) {
    immediate->error = CheckError::unavailable;
    return nullptr;
  }
  // The keys, and with Cluster the slot of each.
  const KeyLayout layout = cluster() ? KeyLayout::hash_tagged : KeyLayout::plain;
  keys_.clear();
  key_ends_.clear();
  zone_slots_.clear();
  for (size_t i = 0; i < count; i++) {
    const size_t begin = keys_.size();
    append_redis_key(keys_, config_.prefix, zones[i].zone->name, zones[i].key, layout);
    key_ends_.push_back(keys_.size());
    zone_slots_.push_back(
        cluster() ? cluster_key_slot(std::string_view(keys_).substr(begin, keys_.size() - begin)) : 0);
  }
  // Every connection the check needs must be usable, or the fail policy decides now.
  for (size_t i = 0; i < count; i++) {
    bool ok;
    if (!cluster()) {
      ok = usable(nodes_[0].get());
    } else if (!slots_known_) {
      ok = slot_map_query_->busy() && !slots_failed_;  // the first slot map is on its way
    } else {
      ok = usable(slot_owner_[zone_slots_[i]]);
    }
    if (!ok) {
      immediate->error = CheckError::unavailable;
      return nullptr;
    }
  }
  PendingCheck* pending = acquire();
  pending->callback = callback;
  pending->data = data;
  pending->zones = count;
  pending->verdicts.resize(count);
  pending->parts_left = 0;
  pending->batches = 0;
  pending->deadline_ms = loop_.now_ms() + config_.timeout_ms;
  pending->sent_us = steady_now_us();
  pending->live = true;
  pending->next = nullptr;
  pending->prev = live_tail_;
  (live_tail_ != nullptr ? live_tail_->next : live_head_) = pending;
  live_tail_ = pending;
  live_count_++;
  if (!timeout_timer_->armed()) {
    timeout_timer_->arm(config_.timeout_ms);
  }
  // One part per slot (zones of different clients may live in different
  // slots): each part is all-or-nothing in itself.
  for (size_t i = 0; i < count; i++) {
    const uint16_t slot = zone_slots_[i];
    if (std::find(zone_slots_.begin(), zone_slots_.begin() + static_cast<std::ptrdiff_t>(i), slot) !=
        zone_slots_.begin() + static_cast<std::ptrdiff_t>(i)) {
      continue;  // this slot's part is made
    }
    Batch* batch = open_batch(slot);
    add_to_batch(batch, pending, zones, zone_slots_.data(), count, slot);
    if (batch->entries.size() >= kMaxBatchChecks || batch->zones >= kMaxBatchZones) {
      close_batch(batch);  // the next checks of this slot start another
    }
  }
  // Sent when this turn of the event loop ends, with every check it made
  // (never from here: the callback must not fire before check() returns).
  if (!flush_timer_->armed()) {
    flush_timer_->arm(0);
  }
  return pending;
}

void RedisChecker::flush() {
  flush_timer_->disarm();
  std::vector<Batch*> batches;
  batches.swap(open_batches_);
  for (Batch* batch : batches) {
    close_batch(batch);
  }
  for (Batch* batch : batches) {
    route(batch);
  }
  batches.clear();
  if (open_batches_.empty()) {
    open_batches_.swap(batches);  // keeps the capacity
  }
}

// Completes every check of `batch` still waiting with `error`, and releases it.
void RedisChecker::fail_batch(Batch* batch, CheckError error) {
  CheckOutcome outcome;
  outcome.error = error;
  for (const Batch::Entry& entry : batch->entries) {
    if (entry.check->live) {
      complete(entry.check, outcome);
    }
  }
  release_batch(batch);
}

void RedisChecker::cancel(PendingCheck* pending) {
  if (pending == nullptr || !pending->live) {
    return;
  }
  unlink(pending);
  pending->callback = nullptr;  // released with its last batch
}

void RedisChecker::unlink(PendingCheck* pending) {
  (pending->prev != nullptr ? pending->prev->next : live_head_) = pending->next;
  (pending->next != nullptr ? pending->next->prev : live_tail_) = pending->prev;
  pending->prev = pending->next = nullptr;
  pending->live = false;
  live_count_--;
}

void RedisChecker::complete(PendingCheck* pending, const CheckOutcome& outcome) {
  if (outcome.error != CheckError::none) {
    bump(counters_->errors);
  } else {
    counters_->observe_latency_us(steady_now_us() - pending->sent_us);
  }
  unlink(pending);
  CheckCallback callback = pending->callback;
  pending->callback = nullptr;
  if (callback != nullptr) {
    callback(pending->data, outcome);
  }
}

void RedisChecker::on_batch_reply(redisAsyncContext*, void* reply, void* privdata) {
  auto* batch = static_cast<Batch*>(privdata);
  batch->owner->handle_batch_reply(batch, static_cast<redisReply*>(reply));
}

void RedisChecker::handle_batch_reply(Batch* batch, redisReply* reply) {
  Node* node = batch->node;
  if (node != nullptr) {
    node->unlink(batch);
    if (node->retired && node->in_flight_head == nullptr) {
      retire_timer_->arm(0);
    }
  }
  if (reply == nullptr) {
    fail_batch(batch, CheckError::disconnected);
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    if (starts_with(reply, "NOSCRIPT") && !batch->retried && node != nullptr && node->context != nullptr) {
      // The script cache was flushed (SCRIPT FLUSH, a restart, a failover):
      // load it again and send the batch once more, behind the load.
      batch->retried = true;
      redisAsyncCommand(node->context, on_script_load_reply, nullptr, "SCRIPT LOAD %b", kCheckScript.data(),
                        kCheckScript.size());
      bump(counters_->script_loads);
      if (send_batch(batch, node, batch->asking)) {
        return;
      }
    }
    if (cluster()) {
      if ((starts_with(reply, "MOVED ") || starts_with(reply, "ASK ")) && follow_redirect(batch, reply)) {
        return;
      }
      if (starts_with(reply, "TRYAGAIN")) {
        if (batch->zones > 1) {
          split_batch(batch, nullptr);  // keys half migrated: each where it is
        } else {
          retry_later(batch);
        }
        return;
      }
      if (starts_with(reply, "CLUSTERDOWN") || starts_with(reply, "MOVED ") || starts_with(reply, "ASK ")) {
        refresh_slots();
      }
    }
    log_error("check failed: " + escape_for_log(std::string_view(reply->str, reply->len)));
    fail_batch(batch, CheckError::redis_error);
    return;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != batch->zones * kCheckReplyFieldsPerZone) {
    log_error("unexpected reply to the check script");
    fail_batch(batch, CheckError::bad_reply);
    return;
  }
  size_t first_zone = 0;
  for (const Batch::Entry& entry : batch->entries) {
    PendingCheck* pending = entry.check;
    if (pending->live) {
      verdicts_.resize(entry.zones);
      if (!decode_check_reply(reply, first_zone, entry.zones, verdicts_.data())) {
        CheckOutcome outcome;
        outcome.error = CheckError::bad_reply;
        complete(pending, outcome);
      } else {
        for (size_t i = 0; i < entry.zones; i++) {
          pending->verdicts[batch->zone_index[first_zone + i]] = verdicts_[i];
        }
        if (--pending->parts_left == 0) {
          CheckOutcome outcome;
          outcome.decision = combine_verdicts(pending->verdicts.data(), pending->zones);
          complete(pending, outcome);
        }
      }
    }
    first_zone += entry.zones;
  }
  release_batch(batch);
}

void RedisChecker::sweep_timeouts() {
  const uint64_t now = loop_.now_ms();
  expired_.clear();
  uint64_t next_deadline = UINT64_MAX;
  for (PendingCheck* pending = live_head_; pending != nullptr; pending = pending->next) {
    if (pending->deadline_ms <= now) {
      expired_.push_back(pending);
    } else {
      next_deadline = std::min(next_deadline, pending->deadline_ms);
    }
  }
  // A Redis that accepts commands but does not answer one within `timeout`
  // of its sending is treated as down: the checks on it fail now, the next
  // ones are decided at once until a fresh connection is up.
  late_nodes_.clear();
  for (const auto& node : nodes_) {
    bool late = false;
    for (Batch* batch = node->in_flight_head; batch != nullptr && !late; batch = batch->next) {
      late = batch->deadline_ms <= now;
      if (!late) {
        next_deadline = std::min(next_deadline, batch->deadline_ms);
      }
    }
    if (late) {
      late_nodes_.push_back(node.get());
    }
  }
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
  for (Node* node : late_nodes_) {
    log_error("Redis " + node->address() + " did not answer within " + std::to_string(config_.timeout_ms) +
              "ms; reconnecting");
    drop_connection(node);
  }
}

void RedisChecker::shutdown() {
  while (live_head_ != nullptr) {
    PendingCheck* pending = live_head_;
    unlink(pending);
    pending->callback = nullptr;
  }
  for (Batch* batch : open_batches_) {
    close_batch(batch);
  }
  for (std::vector<Batch*>* waiting : {&open_batches_, &parked_, &retrying_}) {
    std::vector<Batch*> batches;
    batches.swap(*waiting);
    for (Batch* batch : batches) {
      release_batch(batch);
    }
  }
  if (sentinel_) {
    sentinel_->shutdown();
  }
  if (cluster()) {
    slot_map_query_->shutdown();
    for (Timer* timer : {refresh_timer_.get(), retire_timer_.get(), retry_timer_.get()}) {
      timer->disarm();
    }
  }
  timeout_timer_->disarm();
  flush_timer_->disarm();
  for (const auto& node : nodes_) {
    node->state = State::idle;
    node->connect_timer->disarm();
    node->reconnect_timer->disarm();
    redisAsyncContext* context = node->context;
    node->context = nullptr;
    if (context != nullptr) {
      context->data = nullptr;
      redisAsyncFree(context);  // batches in flight come back with NULL and are released
    }
  }
}

void RedisChecker::log_error(std::string_view message) {
  if (!error_log_.allow(loop_.now_ms())) {
    return;
  }
  std::string line = "rate_guard: " + std::string(message);
  if (const uint64_t suppressed = error_log_.take_suppressed(); suppressed > 0) {
    line += " (" + std::to_string(suppressed) + " more errors since the last report)";
  }
  loop_.log(LogLevel::error, line);
}

}  // namespace rate_guard
