// nginx's event loop seen through rate_guard::EventLoop: hiredis's socket
// becomes an ngx_connection_t whose events call redisAsyncHandleRead/Write,
// timers are nginx timers, logs go to the cycle's error log.
#pragma once

#include "ngx.hpp"
#include "redis/event_loop.h"

class NgxEventLoop final : public rate_guard::EventLoop {
 public:
  uint64_t now_ms() override;
  bool attach(redisAsyncContext* context) override;
  std::unique_ptr<rate_guard::Timer> make_timer(std::function<void()> fire, bool keeps_alive) override;
  void log(rate_guard::LogLevel level, std::string_view message) override;
};

ngx_uint_t ngx_log_level_of(rate_guard::LogLevel level);
