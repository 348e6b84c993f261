// Redis Cluster's slot map as CLUSTER SLOTS answers it: which master serves
// which slots (the Redis client asks for it with AskInTurn).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/redis_config.h"

struct redisReply;

namespace rate_guard {

struct SlotRange {
  uint16_t first = 0;
  uint16_t last = 0;  // inclusive
  RedisEndpoint master;
};

// An IPv4 or IPv6 address, not a name: connecting to it resolves nothing.
bool is_ip_address(const std::string& host);

// The masters of a CLUSTER SLOTS reply. A master announced without an
// address ("" or "?", Redis 7's unknown endpoint) is the node that answered:
// `answered_by`. Returns false, with `*error` set, for a reply that is not a
// slot map, or announces a hostname (connecting to it would resolve it and
// block the worker: the cluster must announce IP addresses).
bool parse_cluster_slots(const redisReply* reply, const RedisEndpoint& answered_by, std::vector<SlotRange>* ranges,
                         std::string* error);

}  // namespace rate_guard
