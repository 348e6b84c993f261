#include "sentinel_client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

namespace rate_guard {

namespace {

constexpr uint64_t kResubscribeDelayMs = 1000;

}  // namespace

SentinelClient::SentinelClient(const RedisConfig& config, EventLoop& loop, ErrorLog log_error)
    : config_(config), loop_(loop), log_error_(std::move(log_error)) {
  query_timer_ = loop_.make_timer(
      [this] {
        log_error_("sentinel " + endpoint_text(config_.sentinels[asking_]) + " did not answer in time");
        give_up_query();
      },
      false);
  resubscribe_timer_ = loop_.make_timer([this] { subscribe(); }, false);
}

SentinelClient::~SentinelClient() {
  shutdown();
}

void SentinelClient::shutdown() {
  query_timer_->disarm();
  resubscribe_timer_->disarm();
  found_ = nullptr;
  switched_ = nullptr;
  close(query_);
  close(subscription_);
}

// Our own close: callbacks still pending in hiredis see no owner and return.
void SentinelClient::close(redisAsyncContext*& context) {
  redisAsyncContext* c = context;
  context = nullptr;
  if (c != nullptr) {
    c->data = nullptr;
    redisAsyncFree(c);
  }
}

redisAsyncContext* SentinelClient::open(const RedisEndpoint& sentinel) {
  redisAsyncContext* context = redisAsyncConnect(sentinel.host.c_str(), sentinel.port);
  if (context == nullptr) {
    return nullptr;
  }
  if (context->err != 0 || !loop_.attach(context)) {
    log_error_("cannot connect to sentinel " + endpoint_text(sentinel) + ": " + context->errstr);
    redisAsyncFree(context);
    return nullptr;
  }
  context->data = this;
  redisAsyncSetConnectCallback(context, on_connect);
  redisAsyncSetDisconnectCallback(context, on_disconnect);
  if (!config_.sentinel_password.empty()) {
    redisAsyncCommand(context, nullptr, nullptr, "AUTH %b", config_.sentinel_password.data(),
                      config_.sentinel_password.size());
  }
  return context;
}

void SentinelClient::discover(Found found) {
  close(query_);
  found_ = std::move(found);
  ask(0);
}

void SentinelClient::ask(size_t index) {
  query_timer_->disarm();
  if (index >= config_.sentinels.size()) {
    finish(nullptr);
    return;
  }
  asking_ = index;
  query_ = open(config_.sentinels[index]);
  if (query_ == nullptr) {
    ask(index + 1);
    return;
  }
  redisAsyncCommand(query_, on_master_reply, nullptr, "SENTINEL get-master-addr-by-name %b",
                    config_.master_name.data(), config_.master_name.size());
  query_timer_->arm(config_.connect_timeout_ms + config_.timeout_ms);
}

void SentinelClient::give_up_query() {
  close(query_);
  ask(asking_ + 1);
}

void SentinelClient::finish(const RedisEndpoint* master) {
  query_timer_->disarm();
  Found found = std::move(found_);
  found_ = nullptr;
  if (found) {
    found(master);
  }
}

void SentinelClient::on_connect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<SentinelClient*>(context->data);
  if (self == nullptr || status == REDIS_OK) {
    return;
  }
  // hiredis frees the context after this callback.
  const std::string reason = context->errstr;
  if (context == self->query_) {
    self->query_ = nullptr;
    self->log_error_("cannot connect to sentinel " + endpoint_text(self->config_.sentinels[self->asking_]) +
                     ": " + reason);
    self->ask(self->asking_ + 1);
  } else if (context == self->subscription_) {
    self->subscription_ = nullptr;
    self->subscription_lost();
  }
}

void SentinelClient::on_disconnect(const redisAsyncContext* context, int) {
  auto* self = static_cast<SentinelClient*>(context->data);
  if (self == nullptr) {
    return;
  }
  if (context == self->query_) {
    self->query_ = nullptr;
    self->ask(self->asking_ + 1);
  } else if (context == self->subscription_) {
    self->subscription_ = nullptr;
    self->subscription_lost();
  }
}

void SentinelClient::on_master_reply(redisAsyncContext* context, void* reply_ptr, void*) {
  auto* self = static_cast<SentinelClient*>(context->data);
  auto* reply = static_cast<redisReply*>(reply_ptr);
  if (self == nullptr || context != self->query_ || reply == nullptr) {
    return;
  }
  RedisEndpoint master;
  const bool known = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                     reply->element[0]->type == REDIS_REPLY_STRING &&
                     reply->element[1]->type == REDIS_REPLY_STRING &&
                     parse_reply_port(std::string_view(reply->element[1]->str, reply->element[1]->len), &master.port);
  if (!known) {
    self->log_error_("sentinel " + endpoint_text(self->config_.sentinels[self->asking_]) +
                     " does not know master \"" + self->config_.master_name + "\"");
    self->give_up_query();
    return;
  }
  master.host.assign(reply->element[0]->str, reply->element[0]->len);
  self->close(self->query_);
  self->finish(&master);
}

void SentinelClient::watch(std::function<void(const RedisEndpoint&)> switched) {
  switched_ = std::move(switched);
  subscribe();
}

void SentinelClient::subscribe() {
  close(subscription_);
  watching_ %= config_.sentinels.size();
  subscription_ = open(config_.sentinels[watching_]);
  if (subscription_ == nullptr) {
    subscription_lost();
    return;
  }
  redisAsyncCommand(subscription_, on_switch_message, nullptr, "SUBSCRIBE +switch-master");
}

void SentinelClient::subscription_lost() {
  watching_++;  // the next sentinel, after a pause
  if (switched_) {
    resubscribe_timer_->arm(kResubscribeDelayMs);
  }
}

// "+switch-master <name> <old ip> <old port> <new ip> <new port>"
void SentinelClient::on_switch_message(redisAsyncContext* context, void* reply_ptr, void*) {
  auto* self = static_cast<SentinelClient*>(context->data);
  auto* reply = static_cast<redisReply*>(reply_ptr);
  if (self == nullptr || reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
      reply->element[2]->type != REDIS_REPLY_STRING) {
    return;
  }
  std::string_view payload(reply->element[2]->str, reply->element[2]->len);
  std::string_view fields[5];
  for (auto& field : fields) {
    const size_t space = payload.find(' ');
    field = payload.substr(0, space);
    payload = space == std::string_view::npos ? std::string_view() : payload.substr(space + 1);
  }
  RedisEndpoint master;
  if (fields[0] != self->config_.master_name || !parse_reply_port(fields[4], &master.port)) {
    return;
  }
  master.host = std::string(fields[3]);
  if (self->switched_) {
    self->switched_(master);
  }
}

}  // namespace rate_guard
