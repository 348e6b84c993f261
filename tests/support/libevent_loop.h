// rate_guard::EventLoop on libevent, with hiredis's own libevent adapter:
// the Redis client runs in the tests exactly as it runs in nginx, on a real loop.
#pragma once

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "redis/event_loop.h"

namespace rate_guard::testing {

class LibeventLoop final : public EventLoop {
 public:
  LibeventLoop() : base_(event_base_new()) {}
  ~LibeventLoop() override { event_base_free(base_); }

  uint64_t now_ms() override {
    using namespace std::chrono;
    return static_cast<uint64_t>(
        duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
  }

  bool attach(redisAsyncContext* context) override {
    return redisLibeventAttach(context, base_) == REDIS_OK;
  }

  std::unique_ptr<Timer> make_timer(std::function<void()> fire, bool) override {
    return std::make_unique<LibeventTimer>(base_, std::move(fire));
  }

  void log(LogLevel level, std::string_view message) override {
    logs.emplace_back(level, std::string(message));
  }

  // Runs the loop until `done()` or `timeout_ms` passed; returns done().
  template <class Predicate>
  bool run_until(Predicate done, uint64_t timeout_ms = 2000) {
    const uint64_t deadline = now_ms() + timeout_ms;
    while (!done() && now_ms() < deadline) {
      event_base_loop(base_, EVLOOP_ONCE | EVLOOP_NONBLOCK);
      if (!done()) {
        timeval tick{0, 1000};
        event_base_loopexit(base_, &tick);
        event_base_loop(base_, EVLOOP_ONCE);
      }
    }
    return done();
  }

  // Runs the loop for `ms` milliseconds.
  void run_for(uint64_t ms) {
    run_until([] { return false; }, ms);
  }

  size_t count_logs(LogLevel level) const {
    size_t n = 0;
    for (const auto& entry : logs) {
      n += entry.first == level;
    }
    return n;
  }

  std::vector<std::pair<LogLevel, std::string>> logs;

 private:
  class LibeventTimer final : public Timer {
   public:
    LibeventTimer(event_base* base, std::function<void()> fire)
        : fire_(std::move(fire)), event_(evtimer_new(base, on_timer, this)) {}
    ~LibeventTimer() override { event_free(event_); }
    void arm(uint64_t delay_ms) override {
      timeval tv{static_cast<time_t>(delay_ms / 1000), static_cast<suseconds_t>((delay_ms % 1000) * 1000)};
      evtimer_add(event_, &tv);
    }
    void disarm() override { evtimer_del(event_); }
    bool armed() const override { return evtimer_pending(event_, nullptr) != 0; }

   private:
    static void on_timer(evutil_socket_t, short, void* data) {
      static_cast<LibeventTimer*>(data)->fire_();
    }
    std::function<void()> fire_;
    event* event_;
  };

  event_base* base_;
};

}  // namespace rate_guard::testing
