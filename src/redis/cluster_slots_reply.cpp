#include "redis/cluster_slots_reply.h"

#include <arpa/inet.h>
#include <hiredis/hiredis.h>

#include "redis/redis_key.h"
#include "util/log_escape.h"

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

}  // namespace rate_guard
