// What a check decided, and the header values that report it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rate_guard {

// One zone's answer from the check script.
struct ZoneVerdict {
  bool allowed = false;
  uint64_t limit = 0;
  uint64_t remaining = 0;
  // Milliseconds until this zone lets the next request through: 0 while
  // `remaining` > 0; for a rejected request, until that request would pass.
  uint64_t reset_ms = 0;
  // Decided by a rule written to Redis: rejected by a ban, or under an
  // override (a rate of the key's own, or unlimited).
  bool banned = false;
  bool overridden = false;
};

// The request's answer: allowed only if every zone allowed it. `zone_index` is
// the deciding zone: for a rejection, the rejecting zone that takes longest to
// let the request through; otherwise the most restrictive zone (least
// remaining, then longest reset).
struct Decision {
  bool allowed = true;
  size_t zone_index = 0;
  uint64_t limit = 0;
  uint64_t remaining = 0;
  uint64_t reset_ms = 0;
};

Decision combine_verdicts(const ZoneVerdict* verdicts, size_t count);

// X-RateLimit-Reset: whole seconds, rounded up.
uint64_t reset_seconds(uint64_t reset_ms);
// Retry-After: whole seconds, rounded up, at least 1.
uint64_t retry_after_seconds(uint64_t reset_ms);

}  // namespace rate_guard
