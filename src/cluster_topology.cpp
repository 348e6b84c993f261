#include "cluster_topology.h"

#include <arpa/inet.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "redis_key.h"

namespace rate_guard {

bool is_ip_address(const std::string& host) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 || inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// Each element: [first slot, last slot, [ip, port, id, ...] of the master,
// the replicas...].
bool parse_cluster_slots(const redisReply* reply, const RedisEndpoint& answered_by, std::vector<SlotRange>* ranges,
                         std::string* error) {
  ranges->clear();
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY) {
    *error = reply != nullptr && reply->type == REDIS_REPLY_ERROR
                 ? "CLUSTER SLOTS failed: \"" + escape_for_log(std::string_view(reply->str, reply->len)) + "\""
                 : "CLUSTER SLOTS answered no slot map";
    return false;
  }
  for (size_t i = 0; i < reply->elements; i++) {
    const redisReply* range = reply->element[i];
    if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 || range->element[0]->type != REDIS_REPLY_INTEGER ||
        range->element[1]->type != REDIS_REPLY_INTEGER || range->element[2]->type != REDIS_REPLY_ARRAY ||
        range->element[2]->elements < 2 || range->element[2]->element[0]->type != REDIS_REPLY_STRING ||
        range->element[2]->element[1]->type != REDIS_REPLY_INTEGER) {
      *error = "CLUSTER SLOTS answered a range that cannot be read";
      return false;
    }
    const long long first = range->element[0]->integer;
    const long long last = range->element[1]->integer;
    const long long port = range->element[2]->element[1]->integer;
    if (first < 0 || last < first || last >= kClusterSlots || port <= 0 || port > 65535) {
      *error = "CLUSTER SLOTS answered a range out of bounds";
      return false;
    }
    SlotRange slots;
    slots.first = static_cast<uint16_t>(first);
    slots.last = static_cast<uint16_t>(last);
    const redisReply* host = range->element[2]->element[0];
    slots.master.host.assign(host->str, host->len);
    slots.master.port = static_cast<uint16_t>(port);
    if (slots.master.host.empty() || slots.master.host == "?") {
      slots.master.host = answered_by.host;
    } else if (!is_ip_address(slots.master.host)) {
      *error = "the cluster announces the hostname \"" + escape_for_log(slots.master.host) +
               "\"; only IP addresses are supported (cluster-preferred-endpoint-type ip)";
      return false;
    }
    ranges->push_back(std::move(slots));
  }
  if (ranges->empty()) {
    *error = "CLUSTER SLOTS answered no slot";
    return false;
  }
  return true;
}

ClusterTopology::ClusterTopology(const RedisConfig& config, EventLoop& loop, ErrorLog log_error)
    : config_(config), loop_(loop), log_error_(std::move(log_error)) {
  query_timer_ = loop_.make_timer(
      [this] {
        log_error_("cluster node " + endpoint_text(nodes_[asking_]) + " did not answer CLUSTER SLOTS in time");
        give_up_query();
      },
      false);
}

ClusterTopology::~ClusterTopology() {
  shutdown();
}

void ClusterTopology::shutdown() {
  query_timer_->disarm();
  found_ = nullptr;
  close_query();
}

// Our own close: callbacks still pending in hiredis see no owner and return.
void ClusterTopology::close_query() {
  redisAsyncContext* context = query_;
  query_ = nullptr;
  if (context != nullptr) {
    context->data = nullptr;
    redisAsyncFree(context);
  }
}

void ClusterTopology::discover(std::vector<RedisEndpoint> nodes, Found found) {
  close_query();
  nodes_ = std::move(nodes);
  found_ = std::move(found);
  ask(0);
}

void ClusterTopology::ask(size_t index) {
  query_timer_->disarm();
  if (index >= nodes_.size()) {
    finish(nullptr);
    return;
  }
  asking_ = index;
  const RedisEndpoint& node = nodes_[index];
  redisAsyncContext* context = redisAsyncConnect(node.host.c_str(), node.port);
  if (context == nullptr || context->err != 0 || !loop_.attach(context)) {
    log_error_("cannot connect to cluster node " + endpoint_text(node) +
               (context != nullptr ? std::string(": ") + context->errstr : std::string()));
    if (context != nullptr) {
      redisAsyncFree(context);
    }
    ask(index + 1);
    return;
  }
  context->data = this;
  redisAsyncSetConnectCallback(context, on_connect);
  redisAsyncSetDisconnectCallback(context, on_disconnect);
  query_ = context;
  if (!config_.password.empty()) {
    if (config_.username.empty()) {
      redisAsyncCommand(context, nullptr, nullptr, "AUTH %b", config_.password.data(), config_.password.size());
    } else {
      redisAsyncCommand(context, nullptr, nullptr, "AUTH %b %b", config_.username.data(), config_.username.size(),
                        config_.password.data(), config_.password.size());
    }
  }
  redisAsyncCommand(context, on_slots_reply, nullptr, "CLUSTER SLOTS");
  query_timer_->arm(config_.connect_timeout_ms + config_.timeout_ms);
}

void ClusterTopology::give_up_query() {
  close_query();
  ask(asking_ + 1);
}

void ClusterTopology::finish(const std::vector<SlotRange>* ranges) {
  query_timer_->disarm();
  Found found = std::move(found_);
  found_ = nullptr;
  if (found) {
    found(ranges);
  }
}

void ClusterTopology::on_connect(const redisAsyncContext* context, int status) {
  auto* self = static_cast<ClusterTopology*>(context->data);
  if (self == nullptr || status == REDIS_OK || context != self->query_) {
    return;
  }
  // hiredis frees the context after this callback.
  self->query_ = nullptr;
  self->log_error_("cannot connect to cluster node " + endpoint_text(self->nodes_[self->asking_]) + ": " +
                   context->errstr);
  self->ask(self->asking_ + 1);
}

void ClusterTopology::on_disconnect(const redisAsyncContext* context, int) {
  auto* self = static_cast<ClusterTopology*>(context->data);
  if (self == nullptr || context != self->query_) {
    return;
  }
  self->query_ = nullptr;
  self->ask(self->asking_ + 1);
}

void ClusterTopology::on_slots_reply(redisAsyncContext* context, void* reply_ptr, void*) {
  auto* self = static_cast<ClusterTopology*>(context->data);
  auto* reply = static_cast<redisReply*>(reply_ptr);
  if (self == nullptr || context != self->query_ || reply == nullptr) {
    return;
  }
  std::vector<SlotRange> ranges;
  std::string error;
  if (!parse_cluster_slots(reply, self->nodes_[self->asking_], &ranges, &error)) {
    self->log_error_("cluster node " + endpoint_text(self->nodes_[self->asking_]) + ": " + error);
    self->give_up_query();
    return;
  }
  self->close_query();
  self->finish(&ranges);
}

}  // namespace rate_guard
