#include "redis/cluster_router.h"

#include <algorithm>

namespace rate_guard {

namespace {

// A refresh of the slot map at most this often: a resharding answers many
// MOVED at once.
constexpr uint64_t kMinRefreshIntervalMs = 100;

}  // namespace

ClusterRouter::ClusterRouter(CheckConnectionShared& shared, CheckConnection::ReplyFn reply, void* owner,
                             MapFn map_done)
    : shared_(shared),
      reply_(reply),
      reply_owner_(owner),
      map_done_(std::move(map_done)),
      query_(shared.loop, "cluster node", shared.log, shared.config.tls),
      owner_(kClusterSlots, nullptr) {
  refresh_timer_ = shared_.loop.make_timer([this] { refresh(); }, false);
  retire_timer_ = shared_.loop.make_timer([this] { retire_unused_nodes(); }, false);
}

ClusterRouter::~ClusterRouter() {
  shutdown();
}

ClusterRouter::Node* ClusterRouter::node_at(const RedisEndpoint& endpoint) {
  for (const auto& node : nodes_) {
    if (node->endpoint == endpoint) {
      return node.get();
    }
  }
  return nullptr;
}

ClusterRouter::Node* ClusterRouter::node_of(const CheckConnection* connection) {
  for (const auto& node : nodes_) {
    if (node->connection.get() == connection) {
      return node.get();
    }
  }
  return nullptr;
}

ClusterRouter::Node* ClusterRouter::add_node(const RedisEndpoint& endpoint) {
  nodes_.push_back(std::make_unique<Node>());
  Node* node = nodes_.back().get();
  node->endpoint = endpoint;
  node->connection =
      std::make_unique<CheckConnection>(shared_, reply_, reply_owner_, [this, node](CheckConnection&) { reopen(node); });
  return node;
}

// A master's connection asks for the slot map on every reconnection after a
// failure: the master may have been replaced by a replica.
void ClusterRouter::reopen(Node* node) {
  if (node->connection->failures() > 0) {
    refresh();
  }
  node->connection->open({node->endpoint, ""});
}

void ClusterRouter::refresh() {
  if (query_.busy()) {
    refresh_again_ = true;
    return;
  }
  const uint64_t now = shared_.loop.now_ms();
  if (last_refresh_ms_ != 0 && now < last_refresh_ms_ + kMinRefreshIntervalMs) {
    if (!refresh_timer_->armed()) {
      refresh_timer_->arm(last_refresh_ms_ + kMinRefreshIntervalMs - now);
    }
    return;
  }
  refresh_timer_->disarm();
  last_refresh_ms_ = std::max<uint64_t>(now, 1);
  // The masters known now first, then the configured nodes.
  std::vector<RedisEndpoint> candidates;
  for (const auto& node : nodes_) {
    if (node->slots > 0) {
      candidates.push_back(node->endpoint);
    }
  }
  for (const RedisEndpoint& seed : shared_.config.cluster_nodes) {
    if (std::find(candidates.begin(), candidates.end(), seed) == candidates.end()) {
      candidates.push_back(seed);
    }
  }
  shared_.counters.slot_map_refreshes.fetch_add(1, std::memory_order_relaxed);
  AskInTurn::Question question;
  question.servers = std::move(candidates);
  question.username = shared_.config.username;
  question.password = shared_.config.password;
  question.command = {"CLUSTER", "SLOTS"};
  question.timeout_ms = shared_.config.connect_timeout_ms + shared_.config.timeout_ms;
  query_.ask(
      std::move(question),
      [this](const redisReply* reply, const RedisEndpoint& asked, std::string* error) {
        return parse_cluster_slots(reply, asked, &ranges_, error);
      },
      [this](bool answered) { map_found(answered); });
}

void ClusterRouter::map_found(bool answered) {
  if (!answered) {
    failures_++;
    shared_.log.error("no Redis Cluster node answered CLUSTER SLOTS");
    failed_ = !known_;
    refresh_timer_->arm(std::max<uint64_t>(reconnect_backoff_ms(failures_), kMinRefreshIntervalMs));
    map_done_(false);
    return;
  }
  failures_ = 0;
  std::fill(owner_.begin(), owner_.end(), nullptr);
  for (const auto& node : nodes_) {
    node->slots = 0;
  }
  for (const SlotRange& range : ranges_) {
    Node* node = node_at(range.master);
    if (node == nullptr) {
      node = add_node(range.master);
    }
    std::fill(owner_.begin() + range.first, owner_.begin() + range.last + 1, node->connection.get());
    node->slots += range.last - range.first + 1u;
  }
  known_ = true;
  failed_ = false;
  const std::string masters = address_with_slots();
  if (masters != masters_ && shared_.log.notice("Redis Cluster masters: " + masters)) {
    masters_ = masters;  // a map left unsaid is said at a later refresh
  }
  for (const auto& node : nodes_) {
    node->retired = node->slots == 0;
    node->connection->keep_reconnecting(!node->retired);
    if (!node->retired) {
      reconnect_soon(node.get());
    }
  }
  retire_timer_->arm(0);
  map_done_(true);
  if (refresh_again_) {
    refresh_again_ = false;
    refresh();
  }
}

// A node that serves slots again: connecting, unless it is, or will be soon.
void ClusterRouter::reconnect_soon(Node* node) {
  CheckConnection& c = *node->connection;
  if (c.state() == CheckConnection::State::idle ||
      (c.state() == CheckConnection::State::waiting_to_reconnect && !c.reconnect_planned())) {
    reopen(node);
  }
}

CheckConnection* ClusterRouter::redirected_to(const RedisEndpoint& endpoint) {
  Node* node = node_at(endpoint);
  if (node == nullptr) {
    node = add_node(endpoint);
  }
  node->retired = false;
  node->connection->keep_reconnecting(true);
  reconnect_soon(node);
  return node->connection.get();
}

void ClusterRouter::moved(uint16_t slot, CheckConnection* to) {
  CheckConnection*& owner = owner_[slot];
  if (owner != to) {
    if (Node* old = node_of(owner); old != nullptr) {
      old->slots--;
    }
    owner = to;
    if (Node* node = node_of(to); node != nullptr) {
      node->slots++;
    }
  }
  refresh();
}

void ClusterRouter::replied_on(CheckConnection* connection) {
  Node* node = node_of(connection);
  if (node != nullptr && node->retired && connection->idle()) {
    retire_timer_->arm(0);
  }
}

// Frees the nodes that serve no slot once nothing is in flight on them
// (outside their own callbacks: this runs from a timer).
void ClusterRouter::retire_unused_nodes() {
  nodes_.erase(std::remove_if(nodes_.begin(), nodes_.end(),
                              [](const std::unique_ptr<Node>& node) {
                                return node->retired && node->connection->idle();
                              }),
               nodes_.end());
}

bool ClusterRouter::all_ready() const {
  if (!known_) {
    return false;
  }
  return std::all_of(nodes_.begin(), nodes_.end(),
                     [](const std::unique_ptr<Node>& node) { return node->slots == 0 || node->connection->ready(); });
}

std::string ClusterRouter::address() const {
  std::string addresses;
  for (const auto& node : nodes_) {
    if (node->slots > 0) {
      addresses += (addresses.empty() ? "" : ",") + endpoint_text(node->endpoint);
    }
  }
  return addresses;
}

std::string ClusterRouter::address_with_slots() const {
  std::string masters;
  for (const auto& node : nodes_) {
    if (node->slots > 0) {
      masters += (masters.empty() ? "" : ", ") + endpoint_text(node->endpoint) + " (" + std::to_string(node->slots) +
                 " slots)";
    }
  }
  return masters;
}

void ClusterRouter::for_each_connection(const std::function<void(CheckConnection&)>& visit) {
  for (const auto& node : nodes_) {
    visit(*node->connection);
  }
}

void ClusterRouter::shutdown() {
  query_.shutdown();
  refresh_timer_->disarm();
  retire_timer_->disarm();
  for (const auto& node : nodes_) {
    node->connection->close();
  }
}

}  // namespace rate_guard
