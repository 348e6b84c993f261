#include "redis/check_connection.h"

#include <hiredis/hiredis.h>

#include <algorithm>

#include "lua/check_script.h"
#include "util/log_escape.h"

namespace rate_guard {

namespace {

// Every connection lost, refused or never made waits before the next
// attempt: 100 ms, doubling up to 1 s. The count starts again only once a
// probe check has been answered, so whatever Redis does a worker makes at
// most a handful of attempts in the first second, then about one a second.
constexpr uint64_t kFirstBackoffMs = 100;
constexpr uint64_t kMaxBackoffMs = 1000;

std::string reply_text(const redisReply* reply) {
  return reply->type == REDIS_REPLY_ERROR ? escape_for_log(std::string_view(reply->str, reply->len))
                                          : std::string("unexpected reply");
}

}  // namespace

uint64_t reconnect_backoff_ms(uint64_t failures) {
  if (failures == 0) {
    return 0;
  }
  return std::min(kFirstBackoffMs << std::min<uint64_t>(failures - 1, 4), kMaxBackoffMs);
}

CheckConnection::CheckConnection(CheckConnectionShared& shared, ReplyFn reply, void* owner, ReconnectFn reconnect)
    : shared_(shared), connection_(shared.loop, shared.config.tls), reply_(reply), owner_(owner), reconnect_(std::move(reconnect)) {
  connect_timer_ = shared_.loop.make_timer(
      [this] {
        if (state_ == State::connecting) {
          fail("no connection to Redis " + address_text() + " ready within " +
               std::to_string(shared_.config.connect_timeout_ms) + "ms");
        }
      },
      false);
  reconnect_timer_ = shared_.loop.make_timer([this] { reconnect_(*this); }, false);
}

CheckConnection::~CheckConnection() {
  close();
}

bool CheckConnection::usable() const {
  return state_ == State::ready || (state_ == State::connecting && !ever_ready_ && failures_ == 0);
}

void CheckConnection::open(const RedisAddress& address) {
  std::string error;
  state_ = State::connecting;
  auto lost = [this](std::string_view reason) {
    fail("connection to Redis " + address_text() + " lost: " + std::string(reason));
  };
  if (!connection_.open(address, lost, &error)) {
    fail("connection to Redis " + address.text() + " lost: " + error);  // as when refused later
    return;
  }
  connect_timer_->arm(shared_.config.connect_timeout_ms);
  send_handshake();
}

// AUTH, SELECT, ROLE and SCRIPT LOAD go first in the pipeline: checks sent
// right after them are answered only once they are done. Any error among
// them fails the connection.
void CheckConnection::send_handshake() {
  const RedisConfig& config = shared_.config;
  connection_.send_auth(config.username, config.password, on_auth_reply, this);
  if (config.db != 0) {
    const std::string db = std::to_string(config.db);
    connection_.send({"SELECT", db}, on_select_reply, this);
  }
  if (shared_.check_role) {
    connection_.send({"ROLE"}, on_role_reply, this);
  }
  connection_.send({"SCRIPT", "LOAD", kCheckScript}, on_script_load_reply, this);
  shared_.counters.script_loads.fetch_add(1, std::memory_order_relaxed);
}

void CheckConnection::on_auth_reply(void* data, redisReply* reply) {
  static_cast<CheckConnection*>(data)->handshake_answered("AUTH", reply);
}

void CheckConnection::on_select_reply(void* data, redisReply* reply) {
  static_cast<CheckConnection*>(data)->handshake_answered("SELECT", reply);
}

void CheckConnection::handshake_answered(std::string_view command, const redisReply* reply) {
  if (reply != nullptr && reply->type == REDIS_REPLY_ERROR && state_ == State::connecting) {
    fail(std::string(command) + " failed: " + reply_text(reply));
  }
}

void CheckConnection::on_role_reply(void* data, redisReply* reply) {
  auto* self = static_cast<CheckConnection*>(data);
  if (reply == nullptr || self->state_ != State::connecting) {
    return;
  }
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 && reply->element[0]->type == REDIS_REPLY_STRING &&
      std::string_view(reply->element[0]->str, reply->element[0]->len) == "master") {
    return;
  }
  // A sentinel's answer can be stale during a failover: ask again.
  self->fail(self->address_text() + " is not the master of \"" + self->shared_.config.master_name + "\"");
}

void CheckConnection::on_script_load_reply(void* data, redisReply* reply) {
  auto* self = static_cast<CheckConnection*>(data);
  if (reply == nullptr) {
    return;
  }
  const bool loaded = reply->type == REDIS_REPLY_STRING && reply->len > 0;
  if (loaded) {
    self->shared_.script_sha.assign(reply->str, reply->len);
  }
  if (self->state_ != State::connecting) {
    if (!loaded) {
      self->shared_.log.error("SCRIPT LOAD failed: " + reply_text(reply));  // after NOSCRIPT: its batch tells
    }
    return;
  }
  if (!loaded) {
    self->fail("SCRIPT LOAD failed: " + reply_text(reply));
    return;
  }
  // The last step: the script run for no request (no key, so any node of a
  // cluster runs it; still a script, so a server paused for writes holds it
  // as it holds checks). Until it is answered as a check is, checks are
  // decided at once; anything else (NOAUTH, LOADING, NOPERM, max clients,
  // ...) fails the connection, and the next attempt waits its backoff.
  const std::string& sha = self->shared_.script_sha;
  self->connection_.send({"EVALSHA", sha, "0", "0", "0"}, on_probe_reply, self);
}

void CheckConnection::on_probe_reply(void* data, redisReply* reply) {
  auto* self = static_cast<CheckConnection*>(data);
  if (reply == nullptr || self->state_ != State::connecting) {
    return;
  }
  if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 0) {
    self->became_ready();
    return;
  }
  self->fail("Redis " + self->address_text() + " did not run the check script: " + reply_text(reply));
}

void CheckConnection::became_ready() {
  connect_timer_->disarm();
  state_ = State::ready;
  failures_ = 0;
  if (ever_ready_) {
    shared_.log.notice("reconnected to Redis " + address_text());
  }
  ever_ready_ = true;
}

void CheckConnection::fail(std::string_view reason) {
  shared_.log.error(reason);
  connect_timer_->disarm();
  connection_.close();
  state_ = State::waiting_to_reconnect;
  failures_++;
  shared_.counters.reconnects.fetch_add(1, std::memory_order_relaxed);
  if (keep_reconnecting_) {
    reconnect_timer_->arm(reconnect_backoff_ms(failures_));
  }
}

void CheckConnection::close() {
  connect_timer_->disarm();
  reconnect_timer_->disarm();
  state_ = State::idle;
  connection_.close();
}

void CheckConnection::keep_reconnecting(bool keep) {
  keep_reconnecting_ = keep;
  if (!keep) {
    reconnect_timer_->disarm();
  }
}

bool CheckConnection::send(InFlight* sent, const char* command, size_t length, bool asking) {
  if (!connection_.is_open()) {
    return false;
  }
  if (asking && !connection_.send({"ASKING"}, nullptr, nullptr)) {
    return false;
  }
  if (!connection_.send_formatted(command, length, on_reply, sent)) {
    return false;
  }
  sent->deadline_ms = shared_.loop.now_ms() + shared_.config.timeout_ms;
  link(sent);
  return true;
}

void CheckConnection::reload_script() {
  connection_.send({"SCRIPT", "LOAD", kCheckScript}, on_script_load_reply, this);
  shared_.counters.script_loads.fetch_add(1, std::memory_order_relaxed);
}

void CheckConnection::on_reply(void* data, redisReply* reply) {
  auto* sent = static_cast<InFlight*>(data);
  CheckConnection* self = sent->connection;
  self->unlink(sent);
  self->reply_(self->owner_, self, sent, reply);
}

bool CheckConnection::late(uint64_t now_ms) const {
  return in_flight_head_ != nullptr && in_flight_head_->deadline_ms <= now_ms;
}

// Sent in order with the same timeout: the oldest has the earliest deadline.
uint64_t CheckConnection::next_deadline() const {
  return in_flight_head_ != nullptr ? in_flight_head_->deadline_ms : UINT64_MAX;
}

void CheckConnection::link(InFlight* sent) {
  sent->connection = this;
  sent->next = nullptr;
  sent->prev = in_flight_tail_;
  (in_flight_tail_ != nullptr ? in_flight_tail_->next : in_flight_head_) = sent;
  in_flight_tail_ = sent;
}

void CheckConnection::unlink(InFlight* sent) {
  (sent->prev != nullptr ? sent->prev->next : in_flight_head_) = sent->next;
  (sent->next != nullptr ? sent->next->prev : in_flight_tail_) = sent->prev;
  sent->prev = sent->next = nullptr;
  sent->connection = nullptr;
}

}  // namespace rate_guard
