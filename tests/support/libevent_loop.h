// rate_guard::EventLoop on libevent, its streams bufferevents (over TLS,
// libevent_openssl's): the Redis client runs in the tests as it runs in
// nginx, on a real loop.
#pragma once

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "libevent_tls.h"
#include "redis/event_loop.h"

namespace rate_guard::testing {

class LibeventLoop final : public EventLoop {
 public:
  // A server that closes on us must not kill the test with SIGPIPE: nginx
  // ignores the signal in its workers, and so do the tests.
  LibeventLoop() : base_(event_base_new()) { std::signal(SIGPIPE, SIG_IGN); }
  ~LibeventLoop() override { event_base_free(base_); }

  uint64_t now_ms() override {
    using namespace std::chrono;
    return static_cast<uint64_t>(
        duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
  }

  // Streams asked for with TLS speak it as `tls` says (as nginx's loop is
  // given the context made from the configuration). Throws
  // std::runtime_error when a file it names cannot be loaded.
  void use_tls(const RedisTls& tls) { tls_ = std::make_unique<LibeventTls>(tls); }

  std::unique_ptr<Stream> connect(const StreamAddress& address, Stream::Events& events,
                                  std::string* error) override {
    sockaddr_storage storage;
    socklen_t length = 0;
    if (!stream_sockaddr(address, &storage, &length, error)) {
      return nullptr;
    }
    bufferevent* event = nullptr;
    std::string tls_name;
    if (address.tls) {
      if (!tls_) {
        *error = "TLS is not configured";
        return nullptr;
      }
      tls_name = std::string(address.tls_name.empty() ? address.host : address.tls_name);
      event = tls_->new_bufferevent(base_, tls_name, error);
    } else {
      event = bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE);
      if (event == nullptr) {
        *error = "cannot make a bufferevent";
      }
    }
    if (event == nullptr) {
      return nullptr;
    }
    auto stream = std::make_unique<LibeventStream>(event, events, address.tls, std::move(tls_name), traffic);
    if (!stream->connect(reinterpret_cast<sockaddr*>(&storage), length, error)) {
      return nullptr;
    }
    return stream;
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

  // What the streams carried, all together: a test can tell that bytes went
  // in many pieces each way.
  struct Traffic {
    uint64_t bytes_written = 0;
    uint64_t bytes_read = 0;
    uint64_t reads = 0;        // read events (each brought bytes)
    uint64_t most_unsent = 0;  // the most left queued by a write: the socket (or TLS) took less
  };
  Traffic traffic;

 private:
  // Destroying it inside one of its own events is allowed: libevent keeps the
  // bufferevent until its callback returns, and `gone_` tells the callback.
  class LibeventStream final : public Stream {
   public:
    // `event`: not connected yet; the stream frees it.
    LibeventStream(bufferevent* event, Events& events, bool tls, std::string tls_name, Traffic& traffic)
        : events_(events), event_(event), tls_(tls), tls_name_(std::move(tls_name)), traffic_(traffic) {
      bufferevent_setcb(event_, on_read, nullptr, on_event, this);
      bufferevent_enable(event_, EV_READ | EV_WRITE);
    }
    ~LibeventStream() override {
      if (gone_ != nullptr) {
        *gone_ = true;
      }
      bufferevent_free(event_);
    }
    bool connect(sockaddr* address, socklen_t length, std::string* error) {
      if (bufferevent_socket_connect(event_, address, static_cast<int>(length)) != 0) {
        *error = std::strerror(EVUTIL_SOCKET_ERROR());
        return false;
      }
      return true;
    }
    void write(const char* data, size_t size) override {
      bufferevent_write(event_, data, size);
      traffic_.bytes_written += size;
      traffic_.most_unsent = std::max<uint64_t>(traffic_.most_unsent, evbuffer_get_length(bufferevent_get_output(event_)));
    }

   private:
    static void on_read(bufferevent* event, void* data) {
      auto* self = static_cast<LibeventStream*>(data);
      bool gone = false;
      self->gone_ = &gone;
      evbuffer* input = bufferevent_get_input(event);
      self->traffic_.reads++;
      self->traffic_.bytes_read += evbuffer_get_length(input);
      char chunk[16384];
      for (;;) {
        const int n = evbuffer_remove(input, chunk, sizeof(chunk));
        if (n <= 0) {
          break;
        }
        self->events_.stream_data(chunk, static_cast<size_t>(n));
        if (gone) {
          return;
        }
      }
      self->gone_ = nullptr;
    }
    // With TLS, "connected" comes after the handshake and the certificate's checks.
    static void on_event(bufferevent* event, short what, void* data) {
      auto* self = static_cast<LibeventStream*>(data);
      if ((what & BEV_EVENT_CONNECTED) != 0) {
        self->connected_ = true;
        self->events_.stream_connected();
        return;
      }
      if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) != 0) {
        const int err = EVUTIL_SOCKET_ERROR();
        std::string reason;
        if ((what & BEV_EVENT_EOF) != 0) {
          reason = "connection closed";
        } else if (self->tls_) {
          reason = LibeventTls::failure(event, self->tls_name_, self->connected_);
        }
        if (reason.empty()) {
          reason = err != 0 ? std::strerror(err) : "connection error";
        }
        self->events_.stream_closed(reason);
      }
    }

    Events& events_;
    bufferevent* event_;
    bool tls_;
    std::string tls_name_;  // the name the certificate is checked for
    bool connected_ = false;
    Traffic& traffic_;
    bool* gone_ = nullptr;
  };

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
  std::unique_ptr<LibeventTls> tls_;
};

}  // namespace rate_guard::testing
