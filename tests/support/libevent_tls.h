// TLS for LibeventLoop's streams: an OpenSSL client context made from
// RedisTls as the module makes nginx's (ngx_module/ngx_event_loop.cpp,
// make_redis_tls), and bufferevents (libevent_openssl) that connect, shake
// hands and verify the server's certificate before they report "connected".
#pragma once

#include <string>

#include "config/redis_config.h"

struct bufferevent;
struct event_base;
struct ssl_ctx_st;

namespace rate_guard::testing {

class LibeventTls {
 public:
  // Reads the files `tls` names (the CA when verifying, else none; the
  // client certificate and key if any). Throws std::runtime_error naming
  // the file that could not be loaded.
  explicit LibeventTls(const RedisTls& tls);
  ~LibeventTls();
  LibeventTls(const LibeventTls&) = delete;
  LibeventTls& operator=(const LibeventTls&) = delete;

  // A bufferevent (not connected yet: bufferevent_socket_connect next) that
  // speaks TLS to `name`: sent as SNI when it is a host name, and, when
  // verifying, the name (or IP address) the certificate must be for. The
  // handshake fails on a certificate that does not verify. nullptr, with
  // why in `*error`, when it cannot be made.
  bufferevent* new_bufferevent(event_base* base, const std::string& name, std::string* error) const;

  // Why the TLS bufferevent `event` for `name`, which ended in an error,
  // failed (in the handshake unless `handshaken`), in the module's words:
  // the certificate's verification, else OpenSSL's error, else "" (the
  // socket's errno then says it).
  static std::string failure(bufferevent* event, const std::string& name, bool handshaken);

 private:
  ssl_ctx_st* context_;
  bool verify_;
};

}  // namespace rate_guard::testing
