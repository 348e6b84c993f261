// The blocked-key cache: a rejection tells when the key may pass again; until
// then the same (zone, key, cost) is rejected locally, with the same headers,
// without asking Redis. It lives in memory shared by every worker of a server
// (nginx shared memory); the caller holds the lock around each call.
//
// It changes no decision: before the time Redis named, a request of the same
// key and cost is rejected by Redis too, since counts only grow until then
// (other requests can only add). The local expiry is computed from the moment
// the check was *sent* and one millisecond early, so it never outlives the
// time Redis measured, whatever the round trip took.
//
// A rule the operator writes to Redis (an unban, a higher limit) can let a
// key through earlier: an entry answers here for at most kMaxRejectionHoldMs
// (the key then goes to Redis once, and is cached again if still blocked),
// so a lifted ban reaches every server within that time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/zone_config.h"

namespace rate_guard {

// Identifies a zone with the limits of a request: a zone whose rate, window,
// algorithm or burst changed on reload does not match the entries of its old
// self, nor does a request of another tier (a variable rate).
uint64_t block_cache_zone_id(const ZoneConfig& zone, const RequestLimits& limits);

constexpr uint64_t kMaxRejectionHoldMs = 1000;

struct CachedRejection {
  uint64_t limit = 0;
  uint64_t remaining = 0;
  uint64_t reset_ms = 0;  // until the key may pass, from `now_ms` of the lookup
};

class BlockCache {
 public:
  // Lays a cache over `bytes` of `memory` (8-byte aligned). `initialize`
  // clears it (a new shared zone); otherwise the entries there are kept (a
  // reload that kept the zone). Fits no entry if `bytes` is too small.
  BlockCache(void* memory, size_t bytes, bool initialize);

  static size_t entry_size();
  size_t capacity() const;

  bool lookup(uint64_t zone_id, std::string_view key, uint64_t cost, uint64_t now_ms,
              CachedRejection* out) const;

  // Records a rejection that Redis answered for a check sent at `sent_ms`
  // (local monotonic time) with `reset_ms` until the request would pass.
  void record(uint64_t zone_id, std::string_view key, uint64_t cost, uint64_t sent_ms,
              uint64_t limit, uint64_t remaining, uint64_t reset_ms);

 private:
  struct Header;
  struct Entry;
  Header* header_;
  Entry* entries_;
};

}  // namespace rate_guard
