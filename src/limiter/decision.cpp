#include "limiter/decision.h"

namespace rate_guard {

namespace {

constexpr uint64_t kMsPerSecond = 1000;

// True when zone `candidate` should decide a rejection rather than `current`:
// it takes longer to let the request through (ties keep the lower index).
bool decides_rejection(const ZoneVerdict& candidate, const ZoneVerdict& current) {
  return candidate.reset_ms > current.reset_ms;
}

// True when zone `candidate` is more restrictive than `current` for an allowed
// request: less remaining, then a longer reset (ties keep the lower index).
bool more_restrictive(const ZoneVerdict& candidate, const ZoneVerdict& current) {
  if (candidate.remaining != current.remaining) {
    return candidate.remaining < current.remaining;
  }
  return candidate.reset_ms > current.reset_ms;
}

}  // namespace

Decision combine_verdicts(const ZoneVerdict* verdicts, size_t count) {
  Decision decision;
  if (verdicts == nullptr || count == 0) {
    return decision;
  }

  bool rejected = false;
  size_t chosen = 0;
  for (size_t i = 0; i < count; ++i) {
    const ZoneVerdict& verdict = verdicts[i];
    if (!verdict.allowed) {
      if (!rejected || decides_rejection(verdict, verdicts[chosen])) {
        chosen = i;
      }
      rejected = true;
    } else if (!rejected && more_restrictive(verdict, verdicts[chosen])) {
      chosen = i;
    }
  }

  const ZoneVerdict& deciding = verdicts[chosen];
  decision.allowed = !rejected;
  decision.zone_index = chosen;
  decision.limit = deciding.limit;
  decision.remaining = deciding.remaining;
  decision.reset_ms = deciding.reset_ms;
  return decision;
}

uint64_t reset_seconds(uint64_t reset_ms) {
  return reset_ms / kMsPerSecond + (reset_ms % kMsPerSecond != 0 ? 1 : 0);
}

uint64_t retry_after_seconds(uint64_t reset_ms) {
  uint64_t seconds = reset_seconds(reset_ms);
  return seconds == 0 ? 1 : seconds;
}

}  // namespace rate_guard
