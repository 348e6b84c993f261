// What the Redis client needs from the event loop it runs on. nginx provides
// one (ngx_module/redis_event_adapter), the tests provide one on libevent.
#pragma once

#include <cstdint>
#include <exception>
#include <string>
#include <functional>
#include <memory>
#include <string_view>

struct redisAsyncContext;

namespace rate_guard {

class Timer {
 public:
  virtual ~Timer() = default;
  // Re-arming moves the deadline; 0 means when the current turn of the loop
  // has handled its other events (the checks of a turn go out together).
  virtual void arm(uint64_t delay_ms) = 0;
  virtual void disarm() = 0;
  virtual bool armed() const = 0;
};

enum class LogLevel : uint8_t { info, notice, warn, error };

class EventLoop {
 public:
  virtual ~EventLoop() = default;
  // A monotonic clock in milliseconds; the loop's cached time is precise enough.
  virtual uint64_t now_ms() = 0;
  // Hooks hiredis's read/write/cleanup callbacks of `context` into the loop.
  virtual bool attach(redisAsyncContext* context) = 0;
  // `keeps_alive`: while armed, such a timer keeps a worker that is shutting
  // down alive, so that checks in flight still get their answer.
  virtual std::unique_ptr<Timer> make_timer(std::function<void()> fire, bool keeps_alive) = 0;
  virtual void log(LogLevel level, std::string_view message) = 0;
};

// Runs `body` for C code that called into the client (hiredis's callbacks):
// no exception may unwind through C frames (it would kill the worker). One
// that escapes is logged, if the line can be made, and dropped.
template <class Body>
void guard_c_callback(EventLoop& loop, Body&& body) noexcept {
  try {
    body();
  } catch (const std::exception& e) {
    try {
      loop.log(LogLevel::error, std::string("rate_guard: ") + e.what());
    } catch (...) {
    }
  } catch (...) {
  }
}

}  // namespace rate_guard
