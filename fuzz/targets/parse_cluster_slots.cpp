// parse_cluster_slots on any reply tree (what a confused or hostile node
// could answer to CLUSTER SLOTS): never crashes, reads only what exists, and
// what it accepts is a usable map: one range per element, in bounds, each
// master with an address and a port.
// Input: a byte whose low bit says whether there is a reply, then the tree
// (fuzz/reply_tree.h).
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

#include "fuzz_target.h"
#include "redis/cluster_slots_reply.h"
#include "redis/redis_key.h"
#include "reply_tree.h"

using namespace rate_guard;

RATE_GUARD_FUZZ_TARGET(parse_cluster_slots) {
  fuzz::Input in{data, size};
  fuzz::ReplyTree tree;
  redisReply* reply = in.byte() & 1 ? tree.build(in, 0) : nullptr;
  const RedisEndpoint answered_by{"192.0.2.1", 7000, {}};
  std::vector<SlotRange> ranges;
  std::string error;
  const bool ok = parse_cluster_slots(reply, answered_by, &ranges, &error);
  FUZZ_CHECK(ok == error.empty());
  if (!ok) {
    return 0;
  }
  FUZZ_CHECK(reply->type == REDIS_REPLY_ARRAY && ranges.size() == reply->elements && !ranges.empty());
  for (const SlotRange& range : ranges) {
    FUZZ_CHECK(range.first <= range.last && range.last < kClusterSlots);
    FUZZ_CHECK(range.master.port != 0 && !range.master.host.empty());
  }
  return 0;
}
