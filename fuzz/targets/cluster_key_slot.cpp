// Redis Cluster's key slot of any key, and the hash-tagged key layout: the
// slot is below 16384, a non-empty tag decides it alone, and with the
// module's layout every zone of one client key lands in the same slot.
// Input: a byte of split point, then the bytes (zone before it, client key after).
#include <string>
#include <string_view>

#include "fuzz_target.h"
#include "redis/redis_key.h"

using namespace rate_guard;

RATE_GUARD_FUZZ_TARGET(cluster_key_slot) {
  if (size == 0) {
    return 0;
  }
  const std::string_view rest = fuzz::as_text(data + 1, size - 1);
  const size_t split = data[0] % (rest.size() + 1);
  const std::string_view zone = rest.substr(0, split);
  const std::string_view client = rest.substr(split);

  FUZZ_CHECK(cluster_key_slot(rest) < kClusterSlots);
  const size_t open = rest.find('{');
  const size_t close = open == std::string_view::npos ? open : rest.find('}', open + 1);
  if (close != std::string_view::npos && close > open + 1) {
    FUZZ_CHECK(cluster_key_slot(rest) == crc16_xmodem(rest.substr(open + 1, close - open - 1)) % kClusterSlots);
  } else {
    FUZZ_CHECK(cluster_key_slot(rest) == crc16_xmodem(rest) % kClusterSlots);
  }

  // Zone names never hold a brace, nor does the prefix with Cluster (nginx -t).
  if (zone.find_first_of("{}") != std::string_view::npos || client.empty()) {
    return 0;
  }
  std::string first;
  std::string second;
  append_redis_key(first, "rate_guard:", zone, "@sw2", client, KeyLayout::hash_tagged);
  append_redis_key(second, "rl:", "other_zone", "", client, KeyLayout::hash_tagged);
  FUZZ_CHECK(cluster_key_slot(first) == cluster_key_slot(second));
  return 0;
}
