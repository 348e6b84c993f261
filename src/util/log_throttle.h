// At most one log line per interval for a recurring error, counting the lines
// left out, so a failure lasting a while is reported about once a second and
// never once per request.
#pragma once

#include <cstdint>

namespace rate_guard {

class LogThrottle {
 public:
  explicit LogThrottle(uint64_t interval_ms = 1000) : interval_ms_(interval_ms) {}

  // Whether a line may be logged at `now_ms`; if not, it is counted.
  bool allow(uint64_t now_ms) {
    if (logged_any_ && now_ms - last_ms_ < interval_ms_) {
      suppressed_++;
      return false;
    }
    logged_any_ = true;
    last_ms_ = now_ms;
    return true;
  }

  // The lines left out since the last one allowed; reading resets it.
  uint64_t take_suppressed() {
    const uint64_t n = suppressed_;
    suppressed_ = 0;
    return n;
  }

 private:
  uint64_t interval_ms_;
  uint64_t last_ms_ = 0;
  bool logged_any_ = false;
  uint64_t suppressed_ = 0;
};

}  // namespace rate_guard
