#include "redis_cluster.h"

#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace rate_guard {
namespace testing {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kSlots = 16384;
constexpr int kNodeAttempts = 5;
constexpr auto kPoll = std::chrono::milliseconds(20);
constexpr auto kCreateTimeout = std::chrono::seconds(60);
constexpr int kStableSeconds = 30;

struct ReplyDeleter {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

std::string text(const redisReply* reply) {
  if (reply == nullptr) return "(no reply)";
  switch (reply->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      return std::string(reply->str, reply->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(reply->integer);
    case REDIS_REPLY_NIL:
      return "(nil)";
    default:
      return "(array of " + std::to_string(reply->elements) + ")";
  }
}

// Runs a program (no shell), returns its exit status and what it printed on
// stdout and stderr; killed (by its PID) after `timeout`.
int run_program(std::vector<std::string> args, std::chrono::seconds timeout, std::string* output) {
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::_exit(1);
    ::dup2(fds[1], STDOUT_FILENO);
    ::dup2(fds[1], STDERR_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  const auto deadline = Clock::now() + timeout;
  bool timed_out = false;
  char buffer[4096];
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd pfd{fds[0], POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;
    const ssize_t n = ::read(fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output->append(buffer, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    output->append("\n(killed after " + std::to_string(timeout.count()) + " s)");
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// One range of CLUSTER SLOTS.
struct Range {
  int start = 0;
  int end = 0;
  int master = 0;
  std::vector<int> replicas;
};

// Polls `done` until it holds or `seconds` pass.
template <class Predicate>
bool eventually(Predicate done, int seconds) {
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(kPoll);
  }
  return done();
}

}  // namespace

// A command on a fresh connection to one node; throws if the node does not
// answer at all (an error reply is returned, not thrown).
static Reply command(const RedisCluster& cluster, int port, const std::vector<std::string>& args) {
  redisContext* context = cluster.connect(port);
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const std::string& arg : args) {
    argv.push_back(arg.data());
    lengths.push_back(arg.size());
  }
  Reply reply(static_cast<redisReply*>(
      redisCommandArgv(context, static_cast<int>(args.size()), argv.data(), lengths.data())));
  const std::string error = context->err != 0 ? context->errstr : "";
  redisFree(context);
  if (!reply) {
    throw std::runtime_error("127.0.0.1:" + std::to_string(port) + " did not answer " + args[0] +
                             ": " + error);
  }
  return reply;
}

// The same, but an error reply throws too.
static Reply checked(const RedisCluster& cluster, int port, const std::vector<std::string>& args) {
  Reply reply = command(cluster, port, args);
  if (reply->type == REDIS_REPLY_ERROR) {
    std::string line;
    for (const std::string& arg : args) line += (line.empty() ? "" : " ") + arg;
    throw std::runtime_error("127.0.0.1:" + std::to_string(port) + " answered '" + line +
                             "' with " + text(reply.get()));
  }
  return reply;
}

static std::vector<Range> cluster_slots(const RedisCluster& cluster, int port) {
  Reply reply = checked(cluster, port, {"CLUSTER", "SLOTS"});
  std::vector<Range> ranges;
  if (reply->type != REDIS_REPLY_ARRAY) return ranges;
  for (size_t i = 0; i < reply->elements; i++) {
    const redisReply* entry = reply->element[i];
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 3) continue;
    Range range;
    range.start = static_cast<int>(entry->element[0]->integer);
    range.end = static_cast<int>(entry->element[1]->integer);
    for (size_t j = 2; j < entry->elements; j++) {
      const redisReply* node = entry->element[j];
      if (node->type != REDIS_REPLY_ARRAY || node->elements < 2) continue;
      const int node_port = static_cast<int>(node->element[1]->integer);
      if (j == 2) {
        range.master = node_port;
      } else {
        range.replicas.push_back(node_port);
      }
    }
    std::sort(range.replicas.begin(), range.replicas.end());
    ranges.push_back(range);
  }
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return a.start < b.start; });
  return ranges;
}

static std::string role(const RedisCluster& cluster, int port) {
  Reply reply = command(cluster, port, {"ROLE"});
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) return text(reply.get());
  return text(reply->element[0]);
}

RedisCluster::RedisCluster(int masters, int replicas_per_master) {
  if (masters < 3 || replicas_per_master < 0) {
    throw std::invalid_argument("a Redis Cluster needs at least 3 masters");
  }
  const int total = masters * (1 + replicas_per_master);
  std::set<int> used;
  for (int i = 0; i < total; i++) {
    std::string last_error;
    for (int attempt = 0; attempt < kNodeAttempts; attempt++) {
      Node node;
      do {
        node.bus_port = pick_free_port();
      } while (used.count(node.bus_port) != 0);
      // nodes.conf is relative to the server's --dir: its own directory.
      RedisServer::Options options;
      options.config_lines = {"cluster-enabled yes",
                              "cluster-config-file nodes.conf",
                              "cluster-node-timeout 1000",
                              "cluster-port " + std::to_string(node.bus_port),
                              // A replica's first full sync at once, not 5 s later:
                              // until then it could not be promoted.
                              "repl-diskless-sync-delay 0",
                              // CLUSTER SLOTS lists a replica only once its
                              // replication offset is not 0: the master's
                              // first PING to it moves it, after 1 s, not 10.
                              "repl-ping-replica-period 1"};
      try {
        node.server = std::make_unique<RedisServer>(std::move(options));
      } catch (const std::runtime_error& error) {
        last_error = error.what();  // most likely the bus port was taken meanwhile
        continue;
      }
      if (used.count(node.server->port()) != 0) continue;  // stopped by its destructor
      used.insert(node.bus_port);
      used.insert(node.server->port());
      nodes_.push_back(std::move(node));
      break;
    }
    if (nodes_.size() != static_cast<size_t>(i + 1)) {
      throw std::runtime_error("cannot start cluster node " + std::to_string(i) + ": " + last_error);
    }
  }

  std::vector<std::string> args = {"redis-cli", "--cluster", "create"};
  for (const Node& node : nodes_) args.push_back("127.0.0.1:" + std::to_string(node.server->port()));
  args.insert(args.end(), {"--cluster-replicas", std::to_string(replicas_per_master), "--cluster-yes"});
  std::string output;
  const int status = run_program(args, std::chrono::duration_cast<std::chrono::seconds>(kCreateTimeout), &output);
  if (status != 0) {
    throw std::runtime_error("redis-cli --cluster create exited with " + std::to_string(status) + ":\n" + output);
  }
  std::string why;
  if (!eventually([&] { return stable(&why, replicas_per_master); }, kStableSeconds)) {
    throw std::runtime_error("the cluster did not settle: " + why + "\nredis-cli said:\n" + output);
  }
}

RedisCluster::~RedisCluster() = default;

const RedisCluster::Node* RedisCluster::find(int port) const {
  for (const Node& node : nodes_) {
    if (node.server->port() == port) return &node;
  }
  return nullptr;
}

RedisServer& RedisCluster::node(int port) {
  const Node* found = find(port);
  if (found == nullptr) throw std::invalid_argument("no cluster node on port " + std::to_string(port));
  return *found->server;
}

redisContext* RedisCluster::connect(int port) const {
  const Node* found = find(port);
  redisContext* context = found == nullptr ? nullptr : found->server->connect();
  if (context == nullptr) {
    throw std::runtime_error("cannot connect to cluster node 127.0.0.1:" + std::to_string(port));
  }
  return context;
}

int RedisCluster::any_running_port() const {
  for (const Node& node : nodes_) {
    if (node.server->running()) return node.server->port();
  }
  throw std::runtime_error("no cluster node is running");
}

std::vector<int> RedisCluster::ports() const {
  std::vector<int> result;
  for (const Node& node : nodes_) {
    if (node.server->running()) result.push_back(node.server->port());
  }
  return result;
}

std::vector<int> RedisCluster::master_ports() const {
  std::vector<int> result;
  for (const Range& range : cluster_slots(*this, any_running_port())) {
    if (std::find(result.begin(), result.end(), range.master) == result.end()) result.push_back(range.master);
  }
  return result;
}

std::string RedisCluster::seeds() const {
  std::string result;
  for (int port : master_ports()) {
    result += (result.empty() ? "" : ",") + std::string("127.0.0.1:") + std::to_string(port);
  }
  return result;
}

std::vector<int> RedisCluster::replica_ports(int master_port) const {
  const std::string master_id = node_id(master_port);
  Reply reply = checked(*this, master_port, {"CLUSTER", "NODES"});
  std::istringstream lines(text(reply.get()));
  std::vector<int> result;
  std::string line;
  while (std::getline(lines, line)) {
    // <id> <ip:port@cport> <flags> <master id> ...
    std::istringstream fields(line);
    std::string id, address, flags, of;
    fields >> id >> address >> flags >> of;
    if (of != master_id || flags.find("slave") == std::string::npos || flags.find("fail") != std::string::npos) {
      continue;
    }
    const size_t colon = address.rfind(':');
    const int port = std::stoi(address.substr(colon + 1));  // stops at '@'
    const Node* found = find(port);
    if (found != nullptr && found->server->running()) result.push_back(port);
  }
  return result;
}

int RedisCluster::master_port_for_slot(int slot) const {
  for (const Range& range : cluster_slots(*this, any_running_port())) {
    if (range.start <= slot && slot <= range.end) return range.master;
  }
  return -1;
}

int RedisCluster::key_slot(const std::string& key) const {
  Reply reply = checked(*this, any_running_port(), {"CLUSTER", "KEYSLOT", key});
  return static_cast<int>(reply->integer);
}

std::string RedisCluster::node_id(int port) const {
  return text(checked(*this, port, {"CLUSTER", "MYID"}).get());
}

std::string RedisCluster::slot_map(int port) const {
  std::string map;
  for (const Range& range : cluster_slots(*this, port)) {
    map += std::to_string(range.start) + "-" + std::to_string(range.end) + ":" + std::to_string(range.master);
    for (int replica : range.replicas) {
      const Node* found = find(replica);
      if (found != nullptr && found->server->running()) map += "/" + std::to_string(replica);
    }
    map += " ";
  }
  return map;
}

bool RedisCluster::stable(std::string* why, int replicas) const {
  try {
    std::string first_map;
    int first_port = 0;
    for (int port : ports()) {
      Reply info = checked(*this, port, {"CLUSTER", "INFO"});
      if (text(info.get()).find("cluster_state:ok") == std::string::npos) {
        *why = "127.0.0.1:" + std::to_string(port) + " is not cluster_state:ok";
        return false;
      }
      const std::string map = slot_map(port);
      if (first_port == 0) {
        first_map = map;
        first_port = port;
      } else if (map != first_map) {
        *why = "slot maps differ: " + std::to_string(first_port) + " says " + first_map + "; " +
               std::to_string(port) + " says " + map;
        return false;
      }
      if (role(*this, port) == "slave") {
        Reply replication = checked(*this, port, {"INFO", "replication"});
        if (text(replication.get()).find("master_link_status:up") == std::string::npos) {
          *why = "replica 127.0.0.1:" + std::to_string(port) + " is not in sync with its master";
          return false;
        }
      }
    }
    int covered = 0;
    for (const Range& range : cluster_slots(*this, first_port)) {
      covered += range.end - range.start + 1;
      const Node* master = find(range.master);
      if (master == nullptr || !master->server->running()) {
        *why = "slots " + std::to_string(range.start) + "-" + std::to_string(range.end) +
               " are still served by the stopped 127.0.0.1:" + std::to_string(range.master);
        return false;
      }
      if (replicas >= 0 && static_cast<int>(range.replicas.size()) != replicas) {
        *why = "slot map " + first_map + "has not " + std::to_string(replicas) + " replicas per master";
        return false;
      }
    }
    if (covered != kSlots) {
      *why = std::to_string(covered) + " slots covered: " + first_map;
      return false;
    }
    return true;
  } catch (const std::runtime_error& error) {
    *why = error.what();
    return false;
  }
}

void RedisCluster::wait_until_stable(int seconds) const {
  std::string why;
  if (!eventually([&] { return stable(&why); }, seconds)) {
    throw std::runtime_error("the cluster is not stable after " + std::to_string(seconds) + " s: " + why);
  }
}

int RedisCluster::kill_master_and_wait_failover(int master_port) {
  if (role(*this, master_port) != "master") {
    throw std::invalid_argument("127.0.0.1:" + std::to_string(master_port) + " is not a master");
  }
  const std::vector<int> candidates = replica_ports(master_port);
  if (candidates.empty()) {
    throw std::runtime_error("127.0.0.1:" + std::to_string(master_port) + " has no replica to promote");
  }
  node(master_port).stop();
  int promoted = -1;
  std::string why = "no replica of it is a master yet";
  const bool done = eventually(
      [&] {
        for (int port : candidates) {
          try {
            if (role(*this, port) == "master") promoted = port;
          } catch (const std::runtime_error&) {
          }
        }
        return promoted > 0 && stable(&why);
      },
      kStableSeconds);
  if (!done) {
    throw std::runtime_error("no failover of 127.0.0.1:" + std::to_string(master_port) + ": " + why);
  }
  return promoted;
}

void RedisCluster::begin_migration(int slot, int to_port) {
  const int from_port = master_port_for_slot(slot);
  if (from_port < 0) throw std::runtime_error("nobody serves slot " + std::to_string(slot));
  if (from_port == to_port) {
    throw std::invalid_argument("slot " + std::to_string(slot) + " is already on 127.0.0.1:" + std::to_string(to_port));
  }
  if (role(*this, to_port) != "master") {
    throw std::invalid_argument("127.0.0.1:" + std::to_string(to_port) + " is not a master");
  }
  const std::string slot_text = std::to_string(slot);
  // The destination first, as redis-cli does: once the source says MIGRATING
  // (and answers ASK), the destination must already accept ASKING.
  checked(*this, to_port, {"CLUSTER", "SETSLOT", slot_text, "IMPORTING", node_id(from_port)});
  checked(*this, from_port, {"CLUSTER", "SETSLOT", slot_text, "MIGRATING", node_id(to_port)});
  migrations_[slot] = Migration{from_port, to_port};
}

size_t RedisCluster::migrate_keys(int slot) {
  const auto found = migrations_.find(slot);
  if (found == migrations_.end()) {
    throw std::logic_error("slot " + std::to_string(slot) + " is not being migrated (begin_migration first)");
  }
  const Migration migration = found->second;
  size_t moved = 0;
  for (;;) {
    Reply keys = checked(*this, migration.from, {"CLUSTER", "GETKEYSINSLOT", std::to_string(slot), "100"});
    if (keys->type != REDIS_REPLY_ARRAY || keys->elements == 0) break;
    // MIGRATE host port "" db timeout KEYS key...: all of them in one go.
    std::vector<std::string> args = {"MIGRATE", "127.0.0.1", std::to_string(migration.to), "", "0", "5000", "KEYS"};
    for (size_t i = 0; i < keys->elements; i++) args.push_back(text(keys->element[i]));
    checked(*this, migration.from, args);  // OK, or NOKEY if they expired meanwhile
    moved += keys->elements;
  }
  return moved;
}

void RedisCluster::finish_migration(int slot) {
  migrate_keys(slot);  // also what requests changed since the last call
  const Migration migration = migrations_.at(slot);
  const std::string slot_text = std::to_string(slot);
  const std::string to_id = node_id(migration.to);
  // Destination, then source (which refuses while it still holds keys of the
  // slot), then every other master.
  checked(*this, migration.to, {"CLUSTER", "SETSLOT", slot_text, "NODE", to_id});
  checked(*this, migration.from, {"CLUSTER", "SETSLOT", slot_text, "NODE", to_id});
  for (int port : master_ports()) {
    if (port != migration.to && port != migration.from) {
      checked(*this, port, {"CLUSTER", "SETSLOT", slot_text, "NODE", to_id});
    }
  }
  migrations_.erase(slot);
  std::string why;
  const bool done = eventually(
      [&] {
        for (int port : ports()) {
          for (const Range& range : cluster_slots(*this, port)) {
            if (range.start <= slot && slot <= range.end && range.master != migration.to) {
              why = "127.0.0.1:" + std::to_string(port) + " still sees slot " + slot_text + " on 127.0.0.1:" +
                    std::to_string(range.master);
              return false;
            }
          }
        }
        return stable(&why);
      },
      kStableSeconds);
  if (!done) throw std::runtime_error("slot " + slot_text + " did not settle on its new master: " + why);
}

void RedisCluster::move_slot(int slot, int to_port) {
  begin_migration(slot, to_port);
  migrate_keys(slot);
  finish_migration(slot);
}

}  // namespace testing
}  // namespace rate_guard
