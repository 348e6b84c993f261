#include "ngx_event_loop.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "redis/cluster_slots_reply.h"

namespace {

// A Redis connection as nginx makes its upstream connections:
// ngx_event_connect_peer, then c->recv and c->send from the connection's
// event handlers. Events never come from inside a call of its owner (write()
// reports a failure through a posted write event).
class NgxStream final : public rate_guard::Stream {
 public:
  NgxStream(Events& events, NgxRedisTls tls, NgxTlsSessions& tls_sessions)
      : events_(events), tls_(tls), tls_sessions_(tls_sessions) {}

  ~NgxStream() override {
    if (gone_ != nullptr) {
      *gone_ = true;
    }
    close_connection();
  }

  bool connect(const rate_guard::StreamAddress& address, std::string* error) {
    if (!make_sockaddr(address, error)) {
      return false;
    }
    // nginx logs a refused connect() or a failed TLS handshake itself, once
    // per attempt: those lines are ours to say, throttled. The connection's
    // log keeps the last one as the reason instead of writing it.
    connect_log_ = *ngx_cycle->log;
    connect_log_.log_level = NGX_LOG_INFO;
    connect_log_.writer = keep_reason;
    connect_log_.wdata = this;
    connect_log_.next = nullptr;
    if (tls_.ssl != nullptr) {
      tls_name_ = std::string(address.tls_name.empty() ? address.host : address.tls_name);
      tls_session_key_ = name_text_ + " " + tls_name_;
    }
    ngx_memzero(&peer_, sizeof(peer_));
    peer_.sockaddr = reinterpret_cast<sockaddr*>(&sockaddr_);
    peer_.socklen = socklen_;
    peer_.name = &name_;
    peer_.get = ngx_event_get_peer;
    peer_.log = &connect_log_;
    peer_.log_error = NGX_ERROR_INFO;
    const ngx_int_t rc = ngx_event_connect_peer(&peer_);
    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
      const int err = ngx_socket_errno;
      *error = err != 0 ? std::strerror(err) : "cannot connect";
      peer_.connection = nullptr;
      return false;
    }
    c_ = peer_.connection;
    c_->data = this;
    c_->log = &connect_log_;
    c_->read->log = c_->log;
    c_->write->log = c_->log;
    c_->read->handler = on_read;
    c_->write->handler = on_write;
    if (rc == NGX_OK) {
      ngx_post_event(c_->write, &ngx_posted_events);  // "connected", after this call
    }
    return true;
  }

  void write(const char* data, size_t size) override {
    out_.append(data, size);
    if (connected_ && !failed_) {
      flush();
    }
  }

 private:
  bool make_sockaddr(const rate_guard::StreamAddress& address, std::string* error) {
    if (!rate_guard::stream_sockaddr(address, &sockaddr_, &socklen_, error)) {
      return false;
    }
    name_text_ = address.unix_path.empty() ? std::string(address.host) + ":" + std::to_string(address.port)
                                           : "unix:" + std::string(address.unix_path);
    name_.data = reinterpret_cast<u_char*>(name_text_.data());
    name_.len = name_text_.size();
    return true;
  }

  // nginx's log writer (called from C): keeps the line, never throws.
  static void keep_reason(ngx_log_t* log, ngx_uint_t, u_char* text, size_t length) noexcept {
    auto* self = static_cast<NgxStream*>(log->wdata);
    std::string_view line(reinterpret_cast<const char*>(text), length);
    // "2026/12/03 18:39:27 [crit] 12#12: *3 SSL_read() failed (SSL: ...)": from the function on
    const size_t level = line.find("] ");
    const size_t colon = level == std::string_view::npos ? level : line.find(": ", level);
    if (colon != std::string_view::npos) {
      line.remove_prefix(colon + 2);
    }
    if (!line.empty() && line.front() == '*') {
      const size_t space = line.find(' ');
      line.remove_prefix(space == std::string_view::npos ? line.size() : space + 1);
    }
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
      line.remove_suffix(1);
    }
    try {
      self->reason_.assign(line);
    } catch (...) {
      self->reason_.clear();  // no memory for the reason: the caller says what failed
    }
  }

  // After the TCP connection: the TLS handshake, then the certificate's checks.
  void start_tls() {
    c_->pool = ngx_create_pool(1024, c_->log);
    if (c_->pool == nullptr || ngx_ssl_create_connection(tls_.ssl, c_, NGX_SSL_BUFFER | NGX_SSL_CLIENT) != NGX_OK) {
      closed("cannot start TLS");
      return;
    }
    // SNI names a host, never an address.
    if (!tls_name_.empty() && !rate_guard::is_ip_address(tls_name_) && SSL_set_tlsext_host_name(c_->ssl->connection, tls_name_.c_str()) == 0) {
      closed("cannot set the TLS server name");
      return;
    }
    if (ngx_ssl_set_session(c_, tls_sessions_.find(tls_session_key_)) != NGX_OK) {
      closed("cannot offer the previous TLS session");
      return;
    }
    // OpenSSL hands over the server's new session (with TLS 1.3 after the
    // handshake, while reading): kept for the next connection.
    c_->ssl->save_session = save_session;
    const ngx_int_t rc = ngx_ssl_handshake(c_);
    if (rc == NGX_AGAIN) {
      c_->ssl->handler = on_handshake;
      return;
    }
    handshake_done();
  }

  static void save_session(ngx_connection_t* c) {
    auto* self = static_cast<NgxStream*>(c->data);
    exception_barrier(c->log, [self, c] { self->tls_sessions_.keep(self->tls_session_key_, ngx_ssl_get_session(c)); });
  }

  static void on_handshake(ngx_connection_t* c) {
    auto* self = static_cast<NgxStream*>(c->data);
    exception_barrier(c->log, [self] { self->handshake_done(); });
  }

  void handshake_done() {
    if (!c_->ssl->handshaked) {
      closed("TLS handshake failed" + (reason_.empty() ? std::string() : ": " + reason_));
      return;
    }
    if (tls_.verify) {
      const long result = SSL_get_verify_result(c_->ssl->connection);
      if (result != X509_V_OK) {
        tls_sessions_.keep(tls_session_key_, nullptr);  // never offered to the next connection
        closed("TLS certificate verify error: (" + std::to_string(result) + ":" +
               X509_verify_cert_error_string(result) + ")");
        return;
      }
      if (!certificate_names(tls_name_)) {
        tls_sessions_.keep(tls_session_key_, nullptr);
        closed("TLS certificate does not match \"" + tls_name_ + "\"");
        return;
      }
    }
    ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0, "rate_guard: TLS to Redis at %V: %s, %s session", &name_,
                  SSL_get_version(c_->ssl->connection),
                  SSL_session_reused(c_->ssl->connection) ? "a resumed" : "a new");
    c_->read->handler = on_read;
    c_->write->handler = on_write;
    became_connected();
  }

  // The server's certificate is for `name`: an IP address among its IP
  // subject names, a host name as nginx checks upstreams'.
  bool certificate_names(std::string& name) {
    if (!rate_guard::is_ip_address(name)) {
      ngx_str_t host{name.size(), reinterpret_cast<u_char*>(name.data())};
      return ngx_ssl_check_host(c_, &host) == NGX_OK;
    }
    X509* cert = SSL_get_peer_certificate(c_->ssl->connection);
    const bool named = cert != nullptr && X509_check_ip_asc(cert, name.c_str(), 0) == 1;
    X509_free(cert);
    return named;
  }

  void became_connected() {
    connected_ = true;
    bool gone = false;
    gone_ = &gone;
    events_.stream_connected();
    if (gone) {
      return;
    }
    gone_ = nullptr;
    flush();
    if (failed_) {
      send_failed();
    }
  }

  static void on_read(ngx_event_t* event) {
    auto* c = static_cast<ngx_connection_t*>(event->data);
    auto* self = static_cast<NgxStream*>(c->data);
    exception_barrier(c->log, [self] { (void)self->read(); });
  }

  static void on_write(ngx_event_t* event) {
    auto* c = static_cast<ngx_connection_t*>(event->data);
    auto* self = static_cast<NgxStream*>(c->data);
    exception_barrier(c->log, [self] { self->writable(); });
  }

  // Delivers what has arrived; false when the connection ended meanwhile
  // (closed, or `this` destroyed by its owner).
  bool read() {
    if (tls_.ssl != nullptr && c_->ssl == nullptr) {
      // The socket is readable before the connect was even reported: with
      // TLS, no byte is the server's answer until the handshake is done (the
      // handshake, next, reads them and fails on them).
      return true;
    }
    bool gone = false;
    gone_ = &gone;
    for (;;) {
      const ssize_t n = c_->recv(c_, buffer_, sizeof(buffer_));
      if (n == NGX_AGAIN) {
        break;
      }
      if (n == 0 || n == NGX_ERROR) {
        const int err = ngx_socket_errno;  // recv()'s, as c->recv leaves it
        gone_ = nullptr;
        // TLS errors are OpenSSL's (as nginx logged them), socket errors errno's.
        const bool tls_error = c_->ssl != nullptr && !reason_.empty();
        closed(n == 0      ? "connection closed"
               : tls_error ? reason_
               : err != 0  ? std::strerror(err)
                           : "recv() failed");
        return false;
      }
      events_.stream_data(reinterpret_cast<const char*>(buffer_), static_cast<size_t>(n));
      if (gone) {
        return false;
      }
      // Drained (a short read, or OpenSSL wanting more): another call would
      // only be told so by one more recv(); the next event brings the rest.
      if (!c_->read->ready) {
        break;
      }
    }
    gone_ = nullptr;
    if (ngx_handle_read_event(c_->read, 0) != NGX_OK) {
      closed("cannot watch the connection");
      return false;
    }
    return true;
  }

  // A send failed, often because the server closed the connection after
  // saying why: a TLS Redis in protected mode writes -DENIED right after the
  // handshake and closes before reading, so the first commands meet a reset.
  // What it sent is read first; the send's error is the reason only when
  // nothing read ended the connection.
  void send_failed() {
    if (read()) {
      closed(failure_);
    }
  }

  // The connection is made (or failed), or the socket can take more.
  void writable() {
    if (failed_) {
      send_failed();
      return;
    }
    if (!connected_) {
      int err = 0;
      socklen_t len = sizeof(err);
      if (getsockopt(c_->fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) {
        err = ngx_socket_errno;
      }
      if (err != 0) {
        closed(std::strerror(err));
        return;
      }
      if (tls_.ssl != nullptr && c_->ssl == nullptr) {
        start_tls();
        return;
      }
      became_connected();
      return;
    }
    flush();
    if (failed_) {
      send_failed();
    }
  }

  // Sends what it can; the write event brings the rest.
  void flush() {
    while (sent_ < out_.size()) {
      const ssize_t n = c_->send(c_, reinterpret_cast<u_char*>(out_.data()) + sent_, out_.size() - sent_);
      if (n == NGX_AGAIN) {
        break;
      }
      if (n == NGX_ERROR || n < 0) {
        const int err = ngx_socket_errno;
        failure_ = err != 0 ? std::strerror(err) : "send() failed";
        failed_ = true;
        ngx_post_event(c_->write, &ngx_posted_events);
        return;
      }
      sent_ += static_cast<size_t>(n);
    }
    if (sent_ == out_.size()) {
      out_.clear();  // keeps the capacity
      sent_ = 0;
    }
    if (ngx_handle_write_event(c_->write, 0) != NGX_OK) {
      failure_ = "cannot watch the connection";
      failed_ = true;
      ngx_post_event(c_->write, &ngx_posted_events);
    }
  }

  // The last event: `this` may be gone when it returns.
  void closed(const std::string& reason) {
    close_connection();
    events_.stream_closed(reason);
  }

  void close_connection() {
    if (c_ == nullptr) {
      return;
    }
    ngx_pool_t* pool = c_->pool;
    if (c_->ssl != nullptr) {
      c_->ssl->no_wait_shutdown = 1;  // a close_notify, not waited for
      ngx_ssl_shutdown(c_);
    }
    ngx_close_connection(c_);
    c_ = nullptr;
    if (pool != nullptr) {
      ngx_destroy_pool(pool);
    }
  }

  Events& events_;
  NgxRedisTls tls_;
  NgxTlsSessions& tls_sessions_;
  std::string tls_name_;         // SNI and the name checked in the certificate
  std::string tls_session_key_;  // the address and the name: whose session is offered
  std::string reason_;    // the last line nginx would have logged about the connection
  ngx_peer_connection_t peer_;
  ngx_log_t connect_log_;
  sockaddr_storage sockaddr_;
  socklen_t socklen_ = 0;
  std::string name_text_;
  ngx_str_t name_;
  ngx_connection_t* c_ = nullptr;
  bool connected_ = false;
  bool failed_ = false;  // reported by the write event, never from inside write()
  std::string failure_;
  std::string out_;  // queued bytes, from `sent_` on
  size_t sent_ = 0;
  bool* gone_ = nullptr;  // set while an event is delivered: tells that `this` was destroyed
  u_char buffer_[16384];
};

class NgxTimer final : public rate_guard::Timer {
 public:
  NgxTimer(std::function<void()> fire, bool keeps_alive) : fire_(std::move(fire)) {
    ngx_memzero(&event_, sizeof(event_));
    event_.handler = on_timer;
    event_.data = this;
    event_.log = ngx_cycle->log;
    // A cancelable timer does not hold back a worker's graceful exit.
    event_.cancelable = keeps_alive ? 0 : 1;
  }
  ~NgxTimer() override { disarm(); }

  // A delay of 0 means "when this turn of the event loop ends": a posted
  // event, which nginx runs after every event and timer of the turn.
  void arm(uint64_t delay_ms) override {
    disarm();
    if (delay_ms == 0) {
      ngx_post_event(&event_, &ngx_posted_events);
    } else {
      ngx_add_timer(&event_, static_cast<ngx_msec_t>(delay_ms));
    }
  }
  void disarm() override {
    if (event_.timer_set) {
      ngx_del_timer(&event_);
    }
    if (event_.posted) {
      ngx_delete_posted_event(&event_);
    }
  }
  bool armed() const override { return event_.timer_set || event_.posted; }

 private:
  static void on_timer(ngx_event_t* event) {
    auto* self = static_cast<NgxTimer*>(event->data);
    exception_barrier(event->log, [self] { self->fire_(); });
  }

  std::function<void()> fire_;
  ngx_event_t event_;
};

}  // namespace

NgxTlsSessions::~NgxTlsSessions() {
  for (auto& [address, session] : sessions_) {
    ngx_ssl_free_session(session);
  }
}

ngx_ssl_session_t* NgxTlsSessions::find(const std::string& address) const {
  const auto it = sessions_.find(address);
  return it == sessions_.end() ? nullptr : it->second;
}

void NgxTlsSessions::keep(const std::string& address, ngx_ssl_session_t* session) {
  const auto it = sessions_.find(address);
  if (it != sessions_.end()) {
    ngx_ssl_free_session(it->second);
    sessions_.erase(it);
  }
  if (session == nullptr) {
    return;
  }
  try {
    sessions_.emplace(address, session);
  } catch (...) {
    ngx_ssl_free_session(session);  // not kept: the next connection makes a new one
    throw;
  }
}

uint64_t NgxEventLoop::now_ms() {
  return ngx_current_msec;
}

std::unique_ptr<rate_guard::Stream> NgxEventLoop::connect(const rate_guard::StreamAddress& address,
                                                          rate_guard::Stream::Events& events, std::string* error) {
  if (address.tls && tls_.ssl == nullptr) {
    *error = "TLS is not configured";
    return nullptr;
  }
  auto stream = std::make_unique<NgxStream>(events, address.tls ? tls_ : NgxRedisTls{}, tls_sessions_);
  if (!stream->connect(address, error)) {
    return nullptr;
  }
  return stream;
}

std::unique_ptr<rate_guard::Timer> NgxEventLoop::make_timer(std::function<void()> fire,
                                                            bool keeps_alive) {
  return std::make_unique<NgxTimer>(std::move(fire), keeps_alive);
}

ngx_uint_t ngx_log_level_of(rate_guard::LogLevel level) {
  switch (level) {
    case rate_guard::LogLevel::info: return NGX_LOG_INFO;
    case rate_guard::LogLevel::notice: return NGX_LOG_NOTICE;
    case rate_guard::LogLevel::warn: return NGX_LOG_WARN;
    case rate_guard::LogLevel::error: return NGX_LOG_ERR;
  }
  return NGX_LOG_ERR;
}

void NgxEventLoop::log(rate_guard::LogLevel level, std::string_view message) {
  ngx_log_error(ngx_log_level_of(level), ngx_cycle->log, 0, "%*s", message.size(), message.data());
}

namespace {

bool readable(const std::string& file) {
  return access(file.c_str(), R_OK) == 0;
}

}  // namespace

char* make_redis_tls(ngx_conf_t* cf, const rate_guard::RedisTls& tls, NgxRedisTls* out) {
  auto fail = [cf](const std::string& message) {
    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%*s", message.size(), message.data());
    return static_cast<char*>(NGX_CONF_ERROR);
  };
  for (const std::string* file : {&tls.trusted_certificate, &tls.certificate, &tls.certificate_key}) {
    if (!file->empty() && !readable(*file)) {
      return fail("cannot read \"" + *file + "\": " + std::strerror(errno));
    }
  }
  auto* ssl = static_cast<ngx_ssl_t*>(ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t)));
  if (ssl == nullptr) {
    return static_cast<char*>(NGX_CONF_ERROR);
  }
  ssl->log = cf->log;
  if (ngx_ssl_create(ssl, NGX_SSL_TLSv1_2 | NGX_SSL_TLSv1_3, nullptr) != NGX_OK) {
    return fail("cannot create the TLS context for Redis");
  }
  ngx_pool_cleanup_t* cln = ngx_pool_cleanup_add(cf->pool, 0);
  if (cln == nullptr) {
    ngx_ssl_cleanup_ctx(ssl);
    return static_cast<char*>(NGX_CONF_ERROR);
  }
  cln->handler = ngx_ssl_cleanup_ctx;
  cln->data = ssl;
  // A reply's records in one read(), not a header and a body each.
  SSL_CTX_set_read_ahead(ssl->ctx, 1);
  // Sessions are offered again on reconnection (NgxTlsSessions).
  if (ngx_ssl_client_session_cache(cf, ssl, 1) != NGX_OK) {
    return fail("cannot keep TLS sessions for Redis");
  }
  auto str = [cf](const std::string& text) {
    ngx_str_t s{text.size(), static_cast<u_char*>(ngx_pnalloc(cf->pool, text.size() + 1))};
    if (s.data != nullptr) {
      ngx_memcpy(s.data, text.c_str(), text.size() + 1);
    }
    return s;
  };
  if (!tls.certificate.empty()) {
    ngx_str_t cert = str(tls.certificate);
    ngx_str_t key = str(tls.certificate_key);
    if (cert.data == nullptr || key.data == nullptr || ngx_ssl_certificate(cf, ssl, &cert, &key, nullptr) != NGX_OK) {
      return fail("cannot load tls_certificate \"" + tls.certificate + "\" with its key \"" + tls.certificate_key +
                  "\"");
    }
  }
  if (tls.verify) {
    if (!tls.trusted_certificate.empty()) {
      ngx_str_t ca = str(tls.trusted_certificate);
      if (ca.data == nullptr || ngx_ssl_trusted_certificate(cf, ssl, &ca, 9) != NGX_OK) {
        return fail("cannot load tls_trusted_certificate \"" + tls.trusted_certificate + "\"");
      }
    } else if (SSL_CTX_set_default_verify_paths(ssl->ctx) != 1) {
      return fail("cannot load the system's CA certificates for tls_verify");
    }
  }
  out->ssl = ssl;
  out->verify = tls.verify;
  return NGX_CONF_OK;
}
