// Every line the Redis client logs, throttled: a failure that lasts (a Redis
// down, refusing, or closing each connection it accepts) is reported about
// once a second, with the count of lines left out, never once per request or
// per reconnection attempt.
#pragma once

#include <string>
#include <string_view>

#include "redis/event_loop.h"
#include "util/log_throttle.h"

namespace rate_guard {

class RedisLog {
 public:
  explicit RedisLog(EventLoop& loop) : loop_(loop) {}

  void error(std::string_view message) { write(LogLevel::error, errors_, "errors", message); }
  // Whether the line was written (a state worth saying can be said later).
  bool notice(std::string_view message) { return write(LogLevel::notice, notices_, "notices", message); }

 private:
  bool write(LogLevel level, LogThrottle& throttle, const char* what, std::string_view message) {
    if (!throttle.allow(loop_.now_ms())) {
      return false;
    }
    std::string line = "rate_guard: " + std::string(message);
    if (const uint64_t suppressed = throttle.take_suppressed(); suppressed > 0) {
      line += " (" + std::to_string(suppressed) + " more " + what + " since the last report)";
    }
    loop_.log(level, line);
    return true;
  }

  EventLoop& loop_;
  LogThrottle errors_;
  LogThrottle notices_;
};

}  // namespace rate_guard
