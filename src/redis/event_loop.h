// What the Redis client needs from the event loop it runs on: a clock,
// timers, a log, and byte streams to servers. nginx provides one
// (ngx_module/ngx_event_loop, over nginx's own connections), the tests
// provide one on libevent.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <functional>
#include <memory>
#include <string_view>

namespace rate_guard {

// One connection to a server, as a stream of bytes. It belongs to the one
// who asked for it; destroying it closes the connection, and no event comes
// after (destroying it from inside one of its own events is allowed).
class Stream {
 public:
  class Events {
   public:
    // The connection is made (data written before was queued meanwhile).
    virtual void stream_connected() = 0;
    // Bytes arrived.
    virtual void stream_data(const char* data, size_t size) = 0;
    // The connection could not be made, or ended: the last event.
    virtual void stream_closed(std::string_view reason) = 0;

   protected:
    ~Events() = default;
  };

  virtual ~Stream() = default;
  // Queues `data`, sent as the socket allows. Never calls an event itself: a
  // failure is reported later, by stream_closed.
  virtual void write(const char* data, size_t size) = 0;
};

// Where a server listens: host (an IP address, resolved when the
// configuration loaded) and port, or a unix socket when `unix_path` is set;
// and whether to speak TLS to it.
struct StreamAddress {
  std::string_view host;
  uint16_t port = 0;
  std::string_view unix_path;
  // TLS: the handshake (and, when the loop verifies, the server's certificate
  // for `tls_name`) comes before stream_connected.
  bool tls = false;
  std::string_view tls_name;  // SNI and the name checked; empty: `host`
};

// The socket address of `address` (an IPv4 or IPv6 host, or a unix socket)
// into `storage`; false, with why in `*error`, when there is none.
bool stream_sockaddr(const StreamAddress& address, sockaddr_storage* storage, socklen_t* length,
                     std::string* error);

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
  // Starts connecting to `address`; its events go to `events`. nullptr,
  // with why in `*error`, when it cannot even start.
  virtual std::unique_ptr<Stream> connect(const StreamAddress& address, Stream::Events& events,
                                          std::string* error) = 0;
  // `keeps_alive`: while armed, such a timer keeps a worker that is shutting
  // down alive, so that checks in flight still get their answer.
  virtual std::unique_ptr<Timer> make_timer(std::function<void()> fire, bool keeps_alive) = 0;
  virtual void log(LogLevel level, std::string_view message) = 0;
};

}  // namespace rate_guard
