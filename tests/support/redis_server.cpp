#include "redis_server.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace rate_guard {
namespace testing {

namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kStartTimeout = std::chrono::seconds(10);
constexpr auto kStopTimeout = std::chrono::seconds(10);
constexpr auto kPoll = std::chrono::milliseconds(5);
// A port picked free may be taken by someone else before redis-server binds it.
constexpr int kPortAttempts = 5;

}  // namespace

std::string make_temp_dir(const std::string& prefix) {
  std::string pattern = (std::filesystem::temp_directory_path() / (prefix + ".XXXXXX")).string();
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
  }
  return buffer.data();
}

// A loopback port that nobody listens on right now, below the kernel's
// ephemeral range, as scripts/free_ports.py chooses them: one the kernel
// handed out for port 0 can be handed out again at once as the source port of
// an outgoing connection, and the server that binds it then fails.
int pick_free_port() {
  int low = 32768;
  std::ifstream range("/proc/sys/net/ipv4/ip_local_port_range");
  if (!(range >> low) || low < 11000) {
    low = 32768;
  }
  static std::mt19937 random(std::random_device{}());
  std::uniform_int_distribution<int> ports(10000, low - 1);
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = ports(random);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      throw std::runtime_error(std::string("socket: ") + std::strerror(errno));
    }
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    ::close(fd);
    if (bound) {
      return port;
    }
  }
  throw std::runtime_error("no free loopback port below " + std::to_string(low));
}

RedisServer::RedisServer() : RedisServer(Options{}) {}

RedisServer::RedisServer(Options options) : options_(std::move(options)), dir_(make_temp_dir("rate_guard_redis")) {
  unix_path_ = dir_ + "/redis.sock";
  log_path_ = dir_ + "/redis.log";
  std::string last_error;
  for (int attempt = 0; attempt < kPortAttempts; ++attempt) {
    port_ = options_.port != 0 ? options_.port : pick_free_port();
    try {
      start();
      return;
    } catch (const std::runtime_error& error) {
      last_error = error.what();
    }
  }
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
  throw std::runtime_error(last_error);
}

RedisServer::~RedisServer() {
  stop();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

void RedisServer::start() {
  if (running()) {
    return;
  }
  launch();
  const auto deadline = Clock::now() + kStartTimeout;
  while (Clock::now() < deadline) {
    if (!running()) {
      throw std::runtime_error("redis-server exited at start: " + log_tail());
    }
    if (answers_ping()) {
      return;
    }
    std::this_thread::sleep_for(kPoll);
  }
  stop();
  throw std::runtime_error("redis-server did not answer PING: " + log_tail());
}

void RedisServer::launch() {
  const std::string port = std::to_string(port_);
  // Where it listens: the loopback port, plain or TLS only, and the socket.
  std::vector<std::string> listen = {"--bind", "127.0.0.1"};
  if (options_.tls) {
    const Tls& tls = *options_.tls;
    listen.insert(listen.end(), {"--port", "0", "--tls-port", port,
                                 "--tls-cert-file", tls.certificate, "--tls-key-file", tls.key,
                                 "--tls-ca-cert-file", tls.ca,
                                 "--tls-auth-clients", tls.require_client_certificate ? "yes" : "no"});
  } else {
    listen.insert(listen.end(), {"--port", port});
  }
  listen.insert(listen.end(), {"--unixsocket", unix_path_, "--unixsocketperm", "700"});
  // --save "" and --appendonly no: nothing is ever written but the log.
  std::vector<std::string> args = {"redis-server"};
  args.insert(args.end(), listen.begin(), listen.end());
  args.insert(args.end(), {"--save", "",
                           "--appendonly", "no",
                           "--daemonize", "no",
                           "--dir", dir_,
                           "--logfile", log_path_});
  if (options_.sentinel || !options_.config_lines.empty()) {
    // A sentinel rewrites its config file: it must be a file of its own.
    const std::string config = dir_ + "/redis.conf";
    std::ofstream out(config);
    for (const std::string& line : options_.config_lines) {
      out << line << "\n";
    }
    out.close();
    args.insert(args.begin() + 1, config);
    if (options_.sentinel) {
      args = {"redis-server", config, "--sentinel"};
      args.insert(args.end(), listen.begin(), listen.end());
      args.insert(args.end(), {"--daemonize", "no", "--dir", dir_, "--logfile", log_path_});
    }
  }
  std::vector<char*> argv;
  for (std::string& arg : args) {
    argv.push_back(arg.data());
  }
  argv.push_back(nullptr);

  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    // Do not outlive a test binary that crashes or is killed.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) {
      ::_exit(1);
    }
    ::execvp("redis-server", argv.data());
    ::execv("/usr/bin/redis-server", argv.data());
    ::_exit(127);
  }
  pid_ = pid;
}

void RedisServer::stop() {
  if (pid_ <= 0) {
    return;
  }
  ::kill(pid_, SIGTERM);
  const auto deadline = Clock::now() + kStopTimeout;
  int status = 0;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (Clock::now() >= deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(kPoll);
  }
  pid_ = -1;
}

bool RedisServer::running() const {
  if (pid_ <= 0) {
    return false;
  }
  int status = 0;
  pid_t result = ::waitpid(pid_, &status, WNOHANG);
  if (result == 0) {
    return true;
  }
  pid_ = -1;  // exited (and now reaped), or not our child any more
  return false;
}

redisContext* RedisServer::connect() const {
  const timeval timeout{2, 0};
  redisContext* context = options_.tls ? redisConnectUnixWithTimeout(unix_path_.c_str(), timeout)
                                       : redisConnectWithTimeout("127.0.0.1", port_, timeout);
  if (context == nullptr) {
    return nullptr;
  }
  if (context->err != 0) {
    redisFree(context);
    return nullptr;
  }
  redisSetTimeout(context, timeout);
  return context;
}

bool RedisServer::answers_ping() const {
  const timeval timeout{1, 0};
  redisContext* context = redisConnectUnixWithTimeout(unix_path_.c_str(), timeout);
  if (context == nullptr) {
    return false;
  }
  bool pong = false;
  if (context->err == 0) {
    auto* reply = static_cast<redisReply*>(redisCommand(context, "PING"));
    pong = reply != nullptr && reply->type == REDIS_REPLY_STATUS &&
           std::string(reply->str, reply->len) == "PONG";
    freeReplyObject(reply);
  }
  redisFree(context);
  return pong;
}

std::string RedisServer::log_tail() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  std::string log = text.str();
  constexpr size_t kTail = 2000;
  return log.size() > kTail ? log.substr(log.size() - kTail) : log;
}

}  // namespace testing
}  // namespace rate_guard
