// nginx's event loop seen through rate_guard::EventLoop: streams are nginx's
// own connections (ngx_event_connect_peer, c->recv / c->send, and nginx's
// OpenSSL for TLS), timers are nginx timers, logs go to the cycle's error log.
#pragma once

#include <map>
#include <string>

#include "redis/event_loop.h"
#include "config/redis_config.h"
#include "ngx.hpp"

// How the Redis connections speak TLS: the context made when the
// configuration loaded, and whether the server's certificate is verified.
struct NgxRedisTls {
  ngx_ssl_t* ssl = nullptr;  // nullptr: no TLS
  bool verify = true;
};

// Makes `out` for `tls` (the certificate files are read now: a missing or bad
// one fails the configuration, with the directive's file and line).
char* make_redis_tls(ngx_conf_t* cf, const rate_guard::RedisTls& tls, NgxRedisTls* out);

// The last TLS session of each Redis address, offered again when the
// connection is made anew (a resumed handshake is shorter for both sides).
class NgxTlsSessions {
 public:
  NgxTlsSessions() = default;
  NgxTlsSessions(const NgxTlsSessions&) = delete;
  NgxTlsSessions& operator=(const NgxTlsSessions&) = delete;
  ~NgxTlsSessions();

  ngx_ssl_session_t* find(const std::string& address) const;
  // Takes `session` (nullptr forgets the address's).
  void keep(const std::string& address, ngx_ssl_session_t* session);

 private:
  std::map<std::string, ngx_ssl_session_t*, std::less<>> sessions_;
};

class NgxEventLoop final : public rate_guard::EventLoop {
 public:
  explicit NgxEventLoop(NgxRedisTls tls = {}) : tls_(tls) {}
  uint64_t now_ms() override;
  std::unique_ptr<rate_guard::Stream> connect(const rate_guard::StreamAddress& address,
                                              rate_guard::Stream::Events& events, std::string* error) override;
  std::unique_ptr<rate_guard::Timer> make_timer(std::function<void()> fire, bool keeps_alive) override;
  void log(rate_guard::LogLevel level, std::string_view message) override;

 private:
  NgxRedisTls tls_;
  NgxTlsSessions tls_sessions_;
};

ngx_uint_t ngx_log_level_of(rate_guard::LogLevel level);
