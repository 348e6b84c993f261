// A real redis-server for the tests: started on a free loopback TCP port (or
// a TLS-only one) and a unix socket in a fresh temporary directory, stopped
// by its PID.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

struct redisContext;

namespace rate_guard {
namespace testing {

// A loopback port that nobody listens on right now (it may be taken by
// someone else before it is used: callers retry).
int pick_free_port();

// A new directory under the system's temporary directory, named from
// `prefix` (mkdtemp); throws std::runtime_error if it cannot be made.
std::string make_temp_dir(const std::string& prefix);

class RedisServer {
 public:
  // What to start besides the defaults.
  // TLS only: the port speaks TLS and nothing else (--port 0 --tls-port);
  // the unix socket stays plain, for the tests' own connections.
  struct Tls {
    std::string certificate;  // the server's (PEM) and its key
    std::string key;
    std::string ca;           // what clients' certificates are checked against
    bool require_client_certificate = false;  // --tls-auth-clients yes|no
  };

  // What to start besides the defaults.
  struct Options {
    bool sentinel = false;                  // redis-server --sentinel
    std::vector<std::string> config_lines;  // written to a config file first
    int port = 0;                           // 0: a free loopback port
    std::optional<Tls> tls = std::nullopt;  // set: TLS only
  };

  // Starts the server and waits until it answers PING; throws
  // std::runtime_error (with the end of its log) if it does not.
  RedisServer();
  explicit RedisServer(Options options);
  // Stops the server (SIGTERM, then waitpid) and removes its directory.
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // The TCP port, or with TLS the TLS port.
  int port() const { return port_; }
  const std::string& unix_path() const { return unix_path_; }

  // SIGTERM and waitpid; the data is gone (nothing is saved). Safe to repeat.
  void stop();
  // Starts again on the same port and socket, and waits for PING.
  void start();
  bool running() const;

  // A new synchronous hiredis connection over TCP (with TLS, over the plain
  // unix socket), or nullptr if the server does not accept one. The caller
  // frees it with redisFree.
  redisContext* connect() const;

 private:
  void launch();
  bool answers_ping() const;
  std::string log_tail() const;

  Options options_;
  std::string dir_;
  std::string unix_path_;
  std::string log_path_;
  int port_ = 0;
  mutable pid_t pid_ = -1;  // reaped by running() if the server died
};

}  // namespace testing
}  // namespace rate_guard
