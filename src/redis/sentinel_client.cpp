#include "redis/sentinel_client.h"

#include <hiredis/hiredis.h>

namespace rate_guard {

namespace {

constexpr uint64_t kResubscribeDelayMs = 1000;

}  // namespace

SentinelClient::SentinelClient(const RedisConfig& config, EventLoop& loop, RedisLog& log)
    : config_(config), loop_(loop), log_(log), master_query_(loop, "sentinel", log, config.tls), subscription_(loop, config.tls) {
  resubscribe_timer_ = loop_.make_timer([this] { subscribe(); }, false);
}

SentinelClient::~SentinelClient() {
  shutdown();
}

void SentinelClient::shutdown() {
  master_query_.shutdown();
  resubscribe_timer_->disarm();
  switched_ = nullptr;
  subscription_.close();
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

void SentinelClient::watch(std::function<void(const RedisEndpoint&)> switched) {
  switched_ = std::move(switched);
  subscribe();
}

void SentinelClient::subscribe() {
  watching_ %= config_.sentinels.size();
  const RedisEndpoint& sentinel = config_.sentinels[watching_];
  std::string error;
  if (!subscription_.open({sentinel, ""}, [this](std::string_view) { subscription_lost(); }, &error)) {
    log_.error("cannot connect to sentinel " + endpoint_text(sentinel) + ": " + error);
    subscription_lost();
    return;
  }
  subscription_.send_auth("", config_.sentinel_password, nullptr, nullptr);
  subscription_.subscribe("+switch-master", on_switch_message, this);
}

void SentinelClient::subscription_lost() {
  watching_++;  // the next sentinel, after a pause
  if (switched_) {
    resubscribe_timer_->arm(kResubscribeDelayMs);
  }
}

// "+switch-master <name> <old ip> <old port> <new ip> <new port>"
void SentinelClient::on_switch_message(void* data, redisReply* reply) {
  auto* self = static_cast<SentinelClient*>(data);
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
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
