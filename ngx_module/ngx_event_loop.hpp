// nginx's event loop seen through rate_guard::EventLoop: streams are nginx's
// own connections (ngx_event_connect_peer, c->recv / c->send), timers are
// nginx timers, logs go to the cycle's error log.
#pragma once

#include "redis/event_loop.h"
#include "ngx.hpp"

class NgxEventLoop final : public rate_guard::EventLoop {
 public:
  uint64_t now_ms() override;
  std::unique_ptr<rate_guard::Stream> connect(const rate_guard::StreamAddress& address,
                                              rate_guard::Stream::Events& events, std::string* error) override;
  std::unique_ptr<rate_guard::Timer> make_timer(std::function<void()> fire, bool keeps_alive) override;
  void log(rate_guard::LogLevel level, std::string_view message) override;
};

ngx_uint_t ngx_log_level_of(rate_guard::LogLevel level);
