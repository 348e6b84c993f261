#include "sentinel_client.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

namespace rate_guard {

namespace {

constexpr uint64_t kResubscribeDelayMs = 1000;

}  // namespace

SentinelClient::SentinelClient(const RedisConfig& config, EventLoop& loop, ErrorLog log_error)
    : config_(config), loop_(loop), log_error_(std::move(log_error)), master_query_(loop, "sentinel", log_error_) {
  resubscribe_timer_ = loop_.make_timer([this] { subscribe(); }, false);
}

SentinelClient::~SentinelClient() {
  shutdown();
}

void SentinelClient::shutdown() {
  master_query_.shutdown();
  resubscribe_timer_->disarm();
  switched_ = nullptr;
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

void SentinelClient::discover(Found found) {
  AskInTurn::Question question;
  question.servers = config_.sentinels;
  question.password = config_.sentinel_password;
  question.command = {"SENTINEL", "get-master-addr-by-name", config_.master_name};
  question.timeout_ms = config_.connect_timeout_ms + config_.timeout_ms;
  master_query_.ask(
      std::move(question),
      [this](const redisReply* reply, const RedisEndpoint&, std::string* error) {
        const bool known = reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                           reply->element[0]->type == REDIS_REPLY_STRING &&
                           reply->element[1]->type == REDIS_REPLY_STRING &&
                           parse_reply_port(std::string_view(reply->element[1]->str, reply->element[1]->len),
                                            &master_.port);
        if (!known) {
          *error = "does not know master \"" + config_.master_name + "\"";
          return false;
        }
        master_.host.assign(reply->element[0]->str, reply->element[0]->len);
        return true;
      },
      [this, found = std::move(found)](bool answered) { found(answered ? &master_ : nullptr); });
}

void SentinelClient::on_connect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<SentinelClient*>(context->data);
  if (self == nullptr || status == REDIS_OK || context != self->subscription_) {
    return;
  }
  // hiredis frees the context after this callback.
  self->subscription_ = nullptr;
  self->subscription_lost();
}

void SentinelClient::on_disconnect(const redisAsyncContext* context, int) {
  auto* self = static_cast<SentinelClient*>(context->data);
  if (self == nullptr || context != self->subscription_) {
    return;
  }
  self->subscription_ = nullptr;
  self->subscription_lost();
}

void SentinelClient::watch(std::function<void(const RedisEndpoint&)> switched) {
  switched_ = std::move(switched);
  subscribe();
}

void SentinelClient::subscribe() {
  close(subscription_);
  watching_ %= config_.sentinels.size();
  const RedisEndpoint& sentinel = config_.sentinels[watching_];
  redisAsyncContext* context = redisAsyncConnect(sentinel.host.c_str(), sentinel.port);
  if (context == nullptr || context->err != 0 || !loop_.attach(context)) {
    log_error_("cannot connect to sentinel " + endpoint_text(sentinel) +
               (context != nullptr ? std::string(": ") + context->errstr : std::string()));
    if (context != nullptr) {
      redisAsyncFree(context);
    }
    subscription_lost();
    return;
  }
  context->data = this;
  redisAsyncSetConnectCallback(context, on_connect);
  redisAsyncSetDisconnectCallback(context, on_disconnect);
  send_auth(context, "", config_.sentinel_password, nullptr, nullptr);
  subscription_ = context;
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
