// The immutable configuration objects of the core: zones, their use in a
// location, and the Redis connection. Built once from directive arguments.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace rate_guard {

enum class Algorithm : uint8_t { sliding_window = 0, sliding_log = 1, fixed_window = 2, token_bucket = 3 };

Result<Algorithm> parse_algorithm(std::string_view text);
std::string_view algorithm_name(Algorithm algorithm);

struct ZoneConfig {
  std::string name;
  uint64_t limit = 0;       // requests per window (token_bucket: refill of `limit` per window)
  uint64_t window_ms = 0;
  Algorithm algorithm = Algorithm::sliding_window;
  uint64_t burst = 0;       // token_bucket capacity; equals limit unless burst= is given
  // `rate=$var` (any value with a "$"): the rate comes from the request, as
  // the text of this nginx complex value; then `limit` is 0, `window_ms` is
  // window= (or 0: the rate's own unit) and `burst` is burst= (or 0: the limit).
  std::string rate_variable;
};

// What one request is limited to in a zone.
struct RequestLimits {
  uint64_t limit = 0;
  uint64_t window_ms = 0;
  uint64_t burst = 0;
};

// The zone's limits, or for a zone with a variable rate, those of
// `rate_text` (the variable's value for this request, e.g. "1000r/m").
Result<RequestLimits> request_limits(const ZoneConfig& zone, std::string_view rate_text);

// The options of `rate_guard_zone KEY zone=NAME rate=... [window=T] [algorithm=A] [burst=N]`,
// that is, every argument after KEY.
Result<ZoneConfig> parse_zone_options(const std::vector<std::string_view>& options);

// Zone names become part of Redis keys and of metric labels.
bool is_valid_zone_name(std::string_view name);

// `rate_guard zone=NAME [cost=N]`: every argument after the directive name.
struct ZoneUse {
  std::string zone;
  uint64_t cost = 1;
  std::string cost_variable;  // `cost=$var`: evaluated per request (cost is then 0)
};

// A per-request cost from a variable's value: 1..kMaxCost.
Result<uint64_t> request_cost(std::string_view cost_text);

// sliding_log records one sorted-set entry per unit of cost: a larger cost
// would stall Redis (and hold its memory) for one request.
constexpr uint64_t kMaxSlidingLogCost = 1000;

// `cost` unless it is too large for the zone's algorithm.
Result<uint64_t> cost_for_zone(const ZoneConfig& zone, uint64_t cost);

// `cost` unless it exceeds what `limits` can ever let through (the limit, or
// the burst of a token bucket): such a request could never pass.
Result<uint64_t> cost_within_limits(const ZoneConfig& zone, const RequestLimits& limits, uint64_t cost);

// A cost written in the configuration: as cost_for_zone, and refused when it
// exceeds what the zone can ever let through (its limit, or burst for a token
// bucket), which would reject every request of the location.
Result<uint64_t> configured_cost_for_zone(const ZoneConfig& zone, uint64_t cost);
Result<ZoneUse> parse_zone_use(const std::vector<std::string_view>& options);

constexpr uint64_t kMaxCost = 1000000;

struct RedisEndpoint {
  std::string host;
  uint16_t port = 0;
  bool operator==(const RedisEndpoint& other) const { return host == other.host && port == other.port; }
};

// "host:port" ("[v6]:port" for an IPv6 address), for logs.
std::string endpoint_text(const RedisEndpoint& endpoint);

// A port as Redis writes it in replies: decimal, 1 to 65535.
bool parse_reply_port(std::string_view text, uint16_t* port);

// "host:port" as Redis writes it in MOVED and ASK (the port after the last ':').
bool parse_reply_endpoint(std::string_view text, RedisEndpoint* endpoint);

struct RedisConfig {
  // Redis Sentinel: the master named `master_name` is asked of these.
  std::vector<RedisEndpoint> sentinels;
  std::string master_name;
  std::string sentinel_password;

  // Redis Cluster: the slot map is asked of these (and of the masters it names).
  std::vector<RedisEndpoint> cluster_nodes;

  std::string host;        // empty for a unix socket
  uint16_t port = 6379;
  std::string unix_path;   // set for "unix:/path"
  std::string username;
  std::string password;
  uint32_t db = 0;
  std::string prefix = "rate_guard:";
  uint64_t connect_timeout_ms = 50;
  uint64_t timeout_ms = 50;
};

// `rate_guard_redis ADDRESS [password=S] [username=S] [db=N] [prefix=S]
//                  [connect_timeout=T] [timeout=T]`: every argument after the
// directive name. ADDRESS is "host:port", "host" (port 6379), "[v6]:port",
// "unix:/path", or "sentinel=HOST:PORT[,HOST:PORT...]" (port 26379 by
// default) with "master=NAME" and optionally "sentinel_password=S", or
// "cluster=HOST:PORT[,HOST:PORT...]" (port 6379 by default; no db=, no brace
// in the prefix).
// The host is kept as written; resolving it is the caller's business.
Result<RedisConfig> parse_redis_config(const std::vector<std::string_view>& args);

}  // namespace rate_guard
