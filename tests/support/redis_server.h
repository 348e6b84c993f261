// A real redis-server for the tests: started on a free loopback TCP port and a
// unix socket in a fresh temporary directory, stopped by its PID.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

struct redisContext;

namespace rate_guard {
namespace testing {

// A loopback port that nobody listens on right now (it may be taken by
// someone else before it is used: callers retry).
int pick_free_port();

class RedisServer {
 public:
  // What to start besides the defaults.
  struct Options {
    bool sentinel = false;                  // redis-server --sentinel
    std::vector<std::string> config_lines;  // written to a config file first
    int port = 0;                           // 0: a free loopback port
  };

  // Starts the server and waits until it answers PING; throws
  // std::runtime_error (with the end of its log) if it does not.
  RedisServer();
  explicit RedisServer(Options options);
  // Stops the server (SIGTERM, then waitpid) and removes its directory.
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  int port() const { return port_; }
  const std::string& unix_path() const { return unix_path_; }

  // SIGTERM and waitpid; the data is gone (nothing is saved). Safe to repeat.
  void stop();
  // Starts again on the same port and socket, and waits for PING.
  void start();
  bool running() const;

  // A new synchronous hiredis connection over TCP, or nullptr if the server
  // does not accept one. The caller frees it with redisFree.
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
