// combine_verdicts: allowed only if every zone allowed; the deciding zone is
// a rejecting zone with the longest reset (lowest index on ties), or, when all
// allow, the one with least remaining, then longest reset, then lowest index;
// the decision carries that zone's numbers. And the header arithmetic:
// X-RateLimit-Reset rounds up, Retry-After is at least 1.
// Input: 25 bytes per zone (allowed, limit, remaining, reset_ms), up to 16.
#include <algorithm>
#include <vector>

#include "fuzz_target.h"
#include "limiter/decision.h"

using namespace rate_guard;

namespace {
uint64_t read64(const uint8_t* p) {
  uint64_t value = 0;
  for (int i = 0; i < 8; i++) value = value << 8 | p[i];
  return value;
}
}  // namespace

RATE_GUARD_FUZZ_TARGET(combine_verdicts) {
  size_t count = std::min<size_t>(size / 25, 16);
  std::vector<ZoneVerdict> verdicts(count);
  for (size_t i = 0; i < count; i++) {
    const uint8_t* p = data + 25 * i;
    verdicts[i] = {(p[0] & 1) != 0, read64(p + 1), read64(p + 9), read64(p + 17)};
  }
  Decision d = combine_verdicts(count == 0 ? nullptr : verdicts.data(), count);

  if (count == 0) {
    FUZZ_CHECK(d.allowed);
  } else {
    bool all_allowed = true;
    for (const ZoneVerdict& v : verdicts) all_allowed = all_allowed && v.allowed;
    FUZZ_CHECK(d.allowed == all_allowed);
    FUZZ_CHECK(d.zone_index < count);
    const ZoneVerdict& chosen = verdicts[d.zone_index];
    FUZZ_CHECK(d.limit == chosen.limit && d.remaining == chosen.remaining && d.reset_ms == chosen.reset_ms);
    for (size_t i = 0; i < count; i++) {
      const ZoneVerdict& v = verdicts[i];
      if (!all_allowed) {
        FUZZ_CHECK(!chosen.allowed);
        if (!v.allowed) {
          FUZZ_CHECK(v.reset_ms < chosen.reset_ms || (v.reset_ms == chosen.reset_ms && i >= d.zone_index));
        }
      } else {
        bool better = v.remaining < chosen.remaining ||
                      (v.remaining == chosen.remaining && v.reset_ms > chosen.reset_ms);
        bool tie = v.remaining == chosen.remaining && v.reset_ms == chosen.reset_ms;
        FUZZ_CHECK(!better);
        FUZZ_CHECK(!tie || i >= d.zone_index);
      }
    }
  }

  for (const ZoneVerdict& v : verdicts) {
    unsigned __int128 ms = v.reset_ms;
    unsigned __int128 seconds = reset_seconds(v.reset_ms);
    FUZZ_CHECK(seconds * 1000 >= ms && (seconds == 0 || (seconds - 1) * 1000 < ms));
    uint64_t retry = retry_after_seconds(v.reset_ms);
    FUZZ_CHECK(retry >= 1 && retry == (seconds == 0 ? 1 : seconds));
  }
  return 0;
}
