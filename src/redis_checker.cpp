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
constexpr uint64_t kErrorLogIntervalMs = 1000;

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
  RedisChecker* owner = nullptr;
  CheckCallback callback = nullptr;  // null once completed or cancelled
  void* data = nullptr;
  uint64_t deadline_ms = 0;
  uint64_t sent_us = 0;  // for the latency histogram
  size_t zones = 0;
  char* command = nullptr;  // formatted once, kept for a NOSCRIPT retry
  size_t command_len = 0;
  bool live = false;       // waiting for its outcome, in the live list
  bool in_flight = false;  // hiredis holds a reply callback for it
  bool retried = false;
  PendingCheck* prev = nullptr;
  PendingCheck* next = nullptr;
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

bool decode_check_reply(const redisReply* reply, size_t zones, ZoneVerdict* verdicts) {
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != zones * 4) {
    return false;
  }
  for (size_t i = 0; i < reply->elements; i++) {
    const redisReply* element = reply->element[i];
    if (element->type != REDIS_REPLY_INTEGER || element->integer < 0) {
      return false;
    }
  }
  for (size_t zone = 0; zone < zones; zone++) {
    redisReply* const* fields = reply->element + zone * 4;
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
  redisAsyncCommand(context_, on_probe_reply, nullptr, "EVALSHA %b 1 %b 0 %d 1000000000 1000 1000000000 1",
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
  if (free_.empty()) {
    all_.push_back(std::make_unique<PendingCheck>());
    all_.back()->owner = this;
    return all_.back().get();
  }
  PendingCheck* pending = free_.back();
  free_.pop_back();
  return pending;
}

void RedisChecker::release(PendingCheck* pending) {
  std::free(pending->command);  // allocated by hiredis's formatter
  pending->command = nullptr;
  pending->callback = nullptr;
  pending->data = nullptr;
  pending->retried = false;
  free_.push_back(pending);
}

void RedisChecker::format_command(PendingCheck* pending, const ZoneRequest* zones, size_t count) {
  // Every argument is appended to text_ first and pointed at afterwards, since
  // text_ may move while it grows.
  text_.clear();
  offsets_.clear();
  auto mark = [this] { offsets_.push_back(text_.size()); };
  const bool have_sha = !script_sha_.empty();
  mark();
  text_.append(have_sha ? "EVALSHA" : "EVAL");
  mark();
  text_.append(have_sha ? std::string_view(script_sha_) : kCheckScript);
  mark();
  append_number(text_, count);
  for (size_t i = 0; i < count; i++) {
    mark();
    append_redis_key(text_, config_.prefix, zones[i].zone->name, zones[i].key);
  }
  mark();
  text_.push_back('0');  // the script reads the time from Redis
  for (size_t i = 0; i < count; i++) {
    const RequestLimits& limits = zones[i].limits;
    for (uint64_t value : {static_cast<uint64_t>(zones[i].zone->algorithm), limits.limit,
                           limits.window_ms, limits.burst, zones[i].cost}) {
      mark();
      append_number(text_, value);
    }
  }
  offsets_.push_back(text_.size());

  const size_t argc = offsets_.size() - 1;
  argv_.resize(argc);
  argvlen_.resize(argc);
  for (size_t i = 0; i < argc; i++) {
    argv_[i] = text_.data() + offsets_[i];
    argvlen_[i] = offsets_[i + 1] - offsets_[i];
  }
  char* command = nullptr;
  int length = redisFormatCommandArgv(&command, static_cast<int>(argc), argv_.data(), argvlen_.data());
  pending->command = length > 0 ? command : nullptr;
  pending->command_len = length > 0 ? static_cast<size_t>(length) : 0;
}

bool RedisChecker::send_check(PendingCheck* pending) {
  if (context_ == nullptr || pending->command == nullptr) {
    return false;
  }
  if (redisAsyncFormattedCommand(context_, on_check_reply, pending, pending->command,
                                 pending->command_len) != REDIS_OK) {
    return false;
  }
  pending->in_flight = true;
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
  PendingCheck* pending = acquire();
  format_command(pending, zones, count);
  if (!send_check(pending)) {
    release(pending);
    immediate->error = CheckError::unavailable;
    return nullptr;
  }
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
  return pending;
}

void RedisChecker::cancel(PendingCheck* pending) {
  if (pending == nullptr || !pending->live) {
    return;
  }
  unlink(pending);
  pending->callback = nullptr;
  if (!pending->in_flight) {
    release(pending);
  }
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
  void* data = pending->data;
  if (!pending->in_flight) {
    release(pending);
  } else {
    pending->callback = nullptr;  // its late reply is dropped when it comes
  }
  if (callback != nullptr) {
    callback(data, outcome);
  }
}

void RedisChecker::on_check_reply(redisAsyncContext*, void* reply, void* privdata) {
  auto* pending = static_cast<PendingCheck*>(privdata);
  pending->in_flight = false;
  pending->owner->handle_check_reply(pending, static_cast<redisReply*>(reply));
}

void RedisChecker::handle_check_reply(PendingCheck* pending, redisReply* reply) {
  if (!pending->live) {
    release(pending);  // cancelled or timed out while in flight
    return;
  }
  CheckOutcome outcome;
  if (reply == nullptr) {
    outcome.error = CheckError::disconnected;
    complete(pending, outcome);
    return;
  }
  if (reply->type == REDIS_REPLY_ERROR) {
    if (starts_with(reply, "NOSCRIPT") && !pending->retried && context_ != nullptr) {
      // The script cache was flushed (SCRIPT FLUSH, a restart, a failover):
      // load it again and retry this check once, behind the load.
      pending->retried = true;
      redisAsyncCommand(context_, on_script_load_reply, nullptr, "SCRIPT LOAD %b",
                        kCheckScript.data(), kCheckScript.size());
      bump(counters_->script_loads);
      if (send_check(pending)) {
        return;
      }
    }
    log_error("check failed: " + escape_for_log(std::string_view(reply->str, reply->len)));
    outcome.error = CheckError::redis_error;
    complete(pending, outcome);
    return;
  }
  verdicts_.resize(pending->zones);
  if (!decode_check_reply(reply, pending->zones, verdicts_.data())) {
    log_error("unexpected reply to the check script");
    outcome.error = CheckError::bad_reply;
    complete(pending, outcome);
    return;
  }
  outcome.decision = combine_verdicts(verdicts_.data(), pending->zones);
  complete(pending, outcome);
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
    if (!pending->in_flight) {
      release(pending);
    }
  }
  state_ = State::idle;
  if (sentinel_) {
    sentinel_->shutdown();
  }
  timeout_timer_->disarm();
  connect_timer_->disarm();
  reconnect_timer_->disarm();
  redisAsyncContext* context = context_;
  context_ = nullptr;
  if (context != nullptr) {
    context->data = nullptr;
    redisAsyncFree(context);  // in-flight checks come back with NULL and are released
  }
}

void RedisChecker::log_error(std::string_view message) {
  const uint64_t now = loop_.now_ms();
  if (logged_any_error_ && now - last_error_log_ms_ < kErrorLogIntervalMs) {
    suppressed_errors_++;
    return;
  }
  std::string line = "rate_guard: " + std::string(message);
  if (suppressed_errors_ > 0) {
    line += " (" + std::to_string(suppressed_errors_) + " more errors since the last report)";
  }
  loop_.log(LogLevel::error, line);
  logged_any_error_ = true;
  last_error_log_ms_ = now;
  suppressed_errors_ = 0;
}

}  // namespace rate_guard
