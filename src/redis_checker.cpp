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

}  // namespace

struct RedisChecker::PendingCheck {
  CheckCallback callback = nullptr;  // null once completed or cancelled
  void* data = nullptr;
  uint64_t deadline_ms = 0;
  uint64_t sent_us = 0;  // for the latency histogram
  size_t zones = 0;
  bool live = false;  // waiting for its outcome, in the live list
  PendingCheck* prev = nullptr;
  PendingCheck* next = nullptr;
};

// The checks of one event-loop turn, sent as one EVALSHA. A check stays in
// its batch (and is released with it) even when it completes early, timed
// out or cancelled: its zones still have their place in the reply.
struct RedisChecker::Batch {
  RedisChecker* owner = nullptr;
  std::vector<PendingCheck*> checks;
  size_t zones = 0;
  std::string keys;  // the KEYS, back to back
  std::vector<size_t> key_ends;
  std::string args;  // each check's zone count and zone arguments
  std::vector<size_t> arg_ends;
  char* command = nullptr;  // formatted at flush, kept for a NOSCRIPT retry
  size_t command_len = 0;
  bool retried = false;
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
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < (first_zone + zones) * 4) {
    return false;
  }
  redisReply* const* fields = reply->element + first_zone * 4;
  for (size_t i = 0; i < zones * 4; i++) {
    if (fields[i]->type != REDIS_REPLY_INTEGER || fields[i]->integer < 0) {
      return false;
    }
  }
  for (size_t zone = 0; zone < zones; zone++, fields += 4) {
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
  connect_timer_ = loop_.make_timer(
      [this] {
        if (state_ == State::connecting) {
          log_error("no connection ready within " + std::to_string(config_.connect_timeout_ms) + "ms");
          drop_connection();
        }
      },
      false);
  reconnect_timer_ = loop_.make_timer([this] { connect(); }, false);
  flush_timer_ = loop_.make_timer([this] { flush(); }, true);
  if (!config_.sentinels.empty()) {
    sentinel_ = std::make_unique<SentinelClient>(config_, loop_,
                                                 [this](std::string_view message) { log_error(message); });
  }
}

RedisChecker::~RedisChecker() {
  shutdown();
}

std::string RedisChecker::address() const {
  if (!config_.unix_path.empty()) {
    return "unix:" + config_.unix_path;
  }
  return config_.host + ":" + std::to_string(config_.port);
}

void RedisChecker::start() {
  if (state_ == State::idle) {
    if (sentinel_) {
      sentinel_->watch([this](const RedisEndpoint& master) { master_switched(master); });
    }
    connect();
  }
}

// With Sentinel the master is asked for on every (re)connection: after a
// connection loss it may have moved.
void RedisChecker::connect() {
  if (!sentinel_) {
    connect_to_redis();
    return;
  }
  state_ = State::discovering;
  sentinel_->discover([this](const RedisEndpoint* master) {
    if (state_ != State::discovering) {
      return;
    }
    if (master == nullptr) {
      log_error("no sentinel told where master \"" + config_.master_name + "\" is");
      schedule_reconnect();
      return;
    }
    config_.host = master->host;
    config_.port = master->port;
    connect_to_redis();
  });
}

void RedisChecker::master_switched(const RedisEndpoint& master) {
  loop_.log(LogLevel::notice, "rate_guard: master \"" + config_.master_name + "\" switched to " +
                                  master.host + ":" + std::to_string(master.port));
  if (state_ == State::ready || state_ == State::connecting) {
    if (master.host == config_.host && master.port == config_.port) {
      return;
    }
    drop_connection();  // checks in flight fail now; the next connection asks again
  }
}

void RedisChecker::on_role_reply(redisAsyncContext* context, void* reply_ptr, void*) {
  auto* self = static_cast<RedisChecker*>(context->data);
  auto* reply = static_cast<redisReply*>(reply_ptr);
  if (self == nullptr || reply == nullptr || context != self->context_) {
    return;
  }
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
      reply->element[0]->type == REDIS_REPLY_STRING &&
      std::string_view(reply->element[0]->str, reply->element[0]->len) == "master") {
    return;
  }
  // A sentinel's answer can be stale during a failover: ask again.
  self->log_error(self->address() + " is not the master of \"" + self->config_.master_name + "\"");
  self->drop_connection();
}

void RedisChecker::connect_to_redis() {
  redisAsyncContext* context = config_.unix_path.empty()
                                   ? redisAsyncConnect(config_.host.c_str(), config_.port)
                                   : redisAsyncConnectUnix(config_.unix_path.c_str());
  if (context == nullptr) {
    log_error("cannot allocate a Redis connection");
    schedule_reconnect();
    return;
  }
  if (context->err != 0) {
    log_error(std::string("cannot connect: ") + context->errstr);
    redisAsyncFree(context);
    schedule_reconnect();
    return;
  }
  context->data = this;
  if (!loop_.attach(context)) {
    log_error("cannot attach the Redis connection to the event loop");
    redisAsyncFree(context);
    schedule_reconnect();
    return;
  }
  redisAsyncSetConnectCallback(context, on_connect);
  redisAsyncSetDisconnectCallback(context, on_disconnect);
  context_ = context;
  state_ = State::connecting;
  connect_timer_->arm(config_.connect_timeout_ms);
  send_handshake();
}

// AUTH, SELECT and SCRIPT LOAD go first in the pipeline: checks sent right
// after them are answered only once they are done.
void RedisChecker::send_handshake() {
  if (!config_.password.empty()) {
    if (config_.username.empty()) {
      redisAsyncCommand(context_, on_handshake_reply, const_cast<char*>("AUTH"), "AUTH %b",
                        config_.password.data(), config_.password.size());
    } else {
      redisAsyncCommand(context_, on_handshake_reply, const_cast<char*>("AUTH"), "AUTH %b %b",
                        config_.username.data(), config_.username.size(), config_.password.data(),
                        config_.password.size());
    }
  }
  if (config_.db != 0) {
    redisAsyncCommand(context_, on_handshake_reply, const_cast<char*>("SELECT"), "SELECT %u",
                      static_cast<unsigned>(config_.db));
  }
  if (sentinel_) {
    redisAsyncCommand(context_, on_role_reply, nullptr, "ROLE");
  }
  redisAsyncCommand(context_, on_script_load_reply, nullptr, "SCRIPT LOAD %b", kCheckScript.data(),
                    kCheckScript.size());
  bump(counters_->script_loads);
}

void RedisChecker::on_connect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<RedisChecker*>(context->data);
  if (self == nullptr || context != self->context_) {
    return;
  }
  if (status != REDIS_OK) {
    self->connection_lost(context->errstr);
  }
  // A TCP connection is not yet a working Redis (a paused or hung server
  // accepts connections, a server paused for writes answers SCRIPT LOAD):
  // the connection is up once a probe check is answered, see send_probe.
}

// The last step of the handshake: one check of a key of the module's own
// (no zone's key can be "<prefix>probe", zone keys have a ':' after the
// zone name), a write like every check. Until it is answered, checks are
// decided at once.
void RedisChecker::send_probe() {
  if (script_sha_.empty()) {
    handshake_answered();  // SCRIPT LOAD failed: the checks will tell
    return;
  }
  const std::string key = config_.prefix + "probe";
  redisAsyncCommand(context_, on_probe_reply, nullptr, "EVALSHA %b 1 %b 0 1 1 %d 1000000000 1000 1000000000 1",
                    script_sha_.data(), script_sha_.size(), key.data(), key.size(),
                    static_cast<int>(Algorithm::fixed_window));
}

void RedisChecker::on_probe_reply(redisAsyncContext* context, void* reply, void*) {
  auto* self = static_cast<RedisChecker*>(context->data);
  if (self != nullptr && reply != nullptr && context == self->context_) {
    self->handshake_answered();
  }
}

void RedisChecker::handshake_answered() {
  if (state_ != State::connecting) {
    return;
  }
  connect_timer_->disarm();
  state_ = State::ready;
  consecutive_failures_ = 0;
  if (ever_connected_) {
    loop_.log(LogLevel::notice, "rate_guard: reconnected to Redis " + address());
  }
  ever_connected_ = true;
}

void RedisChecker::on_disconnect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<RedisChecker*>(context->data);
  if (self == nullptr || context != self->context_) {
    return;  // a connection we dropped ourselves
  }
  self->connection_lost(status == REDIS_OK ? "connection closed" : context->errstr);
}

void RedisChecker::on_handshake_reply(redisAsyncContext* context, void* reply_ptr, void* privdata) {
  auto* self = static_cast<RedisChecker*>(context->data);
  auto* reply = static_cast<redisReply*>(reply_ptr);
  if (self == nullptr || reply == nullptr || context != self->context_) {
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    self->log_error(std::string(static_cast<const char*>(privdata)) + " failed: " +
                    std::string(reply->str, reply->len));
    self->drop_connection();
  }
}

void RedisChecker::on_script_load_reply(redisAsyncContext* context, void* reply_ptr, void*) {
  auto* self = static_cast<RedisChecker*>(context->data);
  auto* reply = static_cast<redisReply*>(reply_ptr);
  if (self == nullptr || reply == nullptr) {
    return;
  }
  if (reply->type == REDIS_REPLY_STRING) {
    self->script_sha_.assign(reply->str, reply->len);
  } else if (reply->type == REDIS_REPLY_ERROR) {
    self->log_error("SCRIPT LOAD failed: " + std::string(reply->str, reply->len));
  }
  if (context == self->context_ && self->state_ == State::connecting) {
    self->send_probe();
  }
}

// Our own decision to drop the connection: hiredis answers every command in
// flight with a NULL reply, which fails its check.
void RedisChecker::drop_connection() {
  connect_timer_->disarm();
  redisAsyncContext* context = context_;
  context_ = nullptr;
  if (context != nullptr) {
    redisAsyncFree(context);
  }
  schedule_reconnect();
}

// hiredis lost the connection (or could not make it) and frees the context itself.
void RedisChecker::connection_lost(std::string_view reason) {
  connect_timer_->disarm();
  context_ = nullptr;
  log_error("connection to Redis " + address() + " lost: " + std::string(reason));
  schedule_reconnect();
}

void RedisChecker::schedule_reconnect() {
  state_ = State::waiting_to_reconnect;
  consecutive_failures_++;
  uint64_t delay_ms = 0;
  if (consecutive_failures_ > 1) {
    delay_ms = kFirstBackoffMs << std::min<uint64_t>(consecutive_failures_ - 2, 4);
    delay_ms = std::min(delay_ms, kMaxBackoffMs);
  }
  bump(counters_->reconnects);
  reconnect_timer_->arm(delay_ms);
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

// Gives back a batch and the checks in it that are no longer waiting; the
// strings keep their capacity, so a warm client allocates nothing per check.
void RedisChecker::release_batch(Batch* batch) {
  for (PendingCheck* pending : batch->checks) {
    if (pending->live) {
      continue;  // cannot happen once the batch's reply was handled
    }
    pending->callback = nullptr;
    pending->data = nullptr;
    free_checks_.push_back(pending);
  }
  batch->checks.clear();
  batch->zones = 0;
  batch->keys.clear();
  batch->key_ends.clear();
  batch->args.clear();
  batch->arg_ends.clear();
  std::free(batch->command);  // allocated by hiredis's formatter
  batch->command = nullptr;
  batch->command_len = 0;
  batch->retried = false;
  free_batches_.push_back(batch);
}

// Appends one check's keys and arguments to the open batch: copied now, since
// the caller's memory (an nginx request) may be gone when the batch is sent.
void RedisChecker::add_to_batch(Batch* batch, const ZoneRequest* zones, size_t count) {
  for (size_t i = 0; i < count; i++) {
    append_redis_key(batch->keys, config_.prefix, zones[i].zone->name, zones[i].key);
    batch->key_ends.push_back(batch->keys.size());
  }
  append_number(batch->args, count);
  batch->arg_ends.push_back(batch->args.size());
  for (size_t i = 0; i < count; i++) {
    const RequestLimits& limits = zones[i].limits;
    for (uint64_t value : {static_cast<uint64_t>(zones[i].zone->algorithm), limits.limit,
                           limits.window_ms, limits.burst, zones[i].cost}) {
      append_number(batch->args, value);
      batch->arg_ends.push_back(batch->args.size());
    }
  }
  batch->zones += count;
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
  append_number(counts_, batch->checks.size());
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

bool RedisChecker::send_batch(Batch* batch) {
  if (context_ == nullptr || batch->command == nullptr ||
      redisAsyncFormattedCommand(context_, on_batch_reply, batch, batch->command, batch->command_len) != REDIS_OK) {
    return false;
  }
  bump(counters_->round_trips);
  return true;
}

RedisChecker::PendingCheck* RedisChecker::check(const ZoneRequest* zones, size_t count,
                                                CheckCallback callback, void* data,
                                                CheckOutcome* immediate) {
  // Once a connection failed, checks are decided at once until one is up
  // again; only the very first connection is waited for.
  const bool usable = state_ == State::ready ||
                      (state_ == State::connecting && !ever_connected_ && consecutive_failures_ == 0);
  if (!usable || count == 0) {
    immediate->error = CheckError::unavailable;
    return nullptr;
  }
  if (open_batch_ == nullptr) {
    open_batch_ = acquire_batch();
  }
  PendingCheck* pending = acquire();
  add_to_batch(open_batch_, zones, count);
  open_batch_->checks.push_back(pending);
  pending->callback = callback;
  pending->data = data;
  pending->zones = count;
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
  // Sent when this turn of the event loop ends, with every check it made.
  if (open_batch_->checks.size() >= kMaxBatchChecks || open_batch_->zones >= kMaxBatchZones) {
    flush();
  } else if (!flush_timer_->armed()) {
    flush_timer_->arm(0);
  }
  return pending;
}

void RedisChecker::flush() {
  flush_timer_->disarm();
  Batch* batch = open_batch_;
  open_batch_ = nullptr;
  if (batch == nullptr) {
    return;
  }
  if (!format_batch(batch) || !send_batch(batch)) {
    fail_batch(batch, CheckError::disconnected);
  }
}

// Completes every check of `batch` still waiting with `error`, and releases it.
void RedisChecker::fail_batch(Batch* batch, CheckError error) {
  CheckOutcome outcome;
  outcome.error = error;
  for (PendingCheck* pending : batch->checks) {
    if (pending->live) {
      complete(pending, outcome);
    }
  }
  release_batch(batch);
}

void RedisChecker::cancel(PendingCheck* pending) {
  if (pending == nullptr || !pending->live) {
    return;
  }
  unlink(pending);
  pending->callback = nullptr;  // released with its batch
}

void RedisChecker::unlink(PendingCheck* pending) {
  (pending->prev != nullptr ? pending->prev->next : live_head_) = pending->next;
  (pending->next != nullptr ? pending->next->prev : live_tail_) = pending->prev;
  pending->prev = pending->next = nullptr;
  pending->live = false;
  live_count_--;
  if (live_count_ == 0) {
    timeout_timer_->disarm();
  }
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
  if (reply == nullptr) {
    fail_batch(batch, CheckError::disconnected);
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    if (starts_with(reply, "NOSCRIPT") && !batch->retried && context_ != nullptr) {
      // The script cache was flushed (SCRIPT FLUSH, a restart, a failover):
      // load it again and send the batch once more, behind the load.
      batch->retried = true;
      redisAsyncCommand(context_, on_script_load_reply, nullptr, "SCRIPT LOAD %b",
                        kCheckScript.data(), kCheckScript.size());
      bump(counters_->script_loads);
      if (send_batch(batch)) {
        return;
      }
    }
    log_error("check failed: " + escape_for_log(std::string_view(reply->str, reply->len)));
    fail_batch(batch, CheckError::redis_error);
    return;
  }
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != batch->zones * 4) {
    log_error("unexpected reply to the check script");
    fail_batch(batch, CheckError::bad_reply);
    return;
  }
  size_t first_zone = 0;
  for (PendingCheck* pending : batch->checks) {
    const size_t zones = pending->zones;
    if (pending->live) {
      CheckOutcome outcome;
      verdicts_.resize(zones);
      if (decode_check_reply(reply, first_zone, zones, verdicts_.data())) {
        outcome.decision = combine_verdicts(verdicts_.data(), zones);
      } else {
        outcome.error = CheckError::bad_reply;
      }
      complete(pending, outcome);
    }
    first_zone += zones;
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
  if (next_deadline != UINT64_MAX) {
    timeout_timer_->arm(next_deadline - now);
  }
  if (expired_.empty()) {
    return;
  }
  counters_->timeouts.fetch_add(expired_.size(), std::memory_order_relaxed);
  CheckOutcome outcome;
  outcome.error = CheckError::timeout;
  for (PendingCheck* pending : expired_) {
    if (pending->live) {
      complete(pending, outcome);
    }
  }
  // A Redis that accepts commands but does not answer them in time is treated
  // as down: the remaining checks fail now, the next ones are decided at once
  // until a fresh connection is up.
  log_error("Redis " + address() + " did not answer within " + std::to_string(config_.timeout_ms) +
            "ms; reconnecting");
  drop_connection();
}

void RedisChecker::shutdown() {
  while (live_head_ != nullptr) {
    PendingCheck* pending = live_head_;
    unlink(pending);
    pending->callback = nullptr;
  }
  if (open_batch_ != nullptr) {
    release_batch(open_batch_);
    open_batch_ = nullptr;
  }
  state_ = State::idle;
  if (sentinel_) {
    sentinel_->shutdown();
  }
  timeout_timer_->disarm();
  connect_timer_->disarm();
  reconnect_timer_->disarm();
  flush_timer_->disarm();
  redisAsyncContext* context = context_;
  context_ = nullptr;
  if (context != nullptr) {
    context->data = nullptr;
    redisAsyncFree(context);  // batches in flight come back with NULL and are released
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
