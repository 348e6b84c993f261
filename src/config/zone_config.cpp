#include "config/zone_config.h"

#include <string>
#include <utility>

#include "config/parse_detail.h"
#include "config/rate_parser.h"
#include "util/log_escape.h"

namespace rate_guard {

using detail::quoted;

namespace {

constexpr size_t kMaxZoneNameBytes = 64;
constexpr uint64_t kMaxDb = 2147483647;  // 2^31 - 1
constexpr uint64_t kMaxRedisTimeoutMs = 60 * 1000;
constexpr size_t kMaxUnixPathBytes = 107;  // sun_path holds 108 bytes with the NUL
constexpr uint16_t kDefaultRedisPort = 6379;
constexpr uint16_t kDefaultSentinelPort = 26379;

struct AlgorithmName {
  Algorithm algorithm;
  std::string_view name;
};
constexpr AlgorithmName kAlgorithmNames[] = {
    {Algorithm::sliding_window, "sliding_window"},
    {Algorithm::sliding_log, "sliding_log"},
    {Algorithm::fixed_window, "fixed_window"},
    {Algorithm::token_bucket, "token_bucket"},
};

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

template <class T>
Result<T> fail(std::string error) {
  return Result<T>::failure(std::move(error));
}

std::string duplicate_option(std::string_view name) {
  return "duplicate option \"" + std::string(name) + "=\"";
}

// nginx's complex values: a "$" makes the value a per-request one.
bool has_variable(std::string_view value) {
  return value.find('$') != std::string_view::npos;
}

std::string missing_option(std::string_view name) {
  return "missing \"" + std::string(name) + "=\" option";
}

// A count option such as "burst=20": the error names the option and, for a
// value out of range, quotes the whole token as nginx does.
Result<uint64_t> parse_count_option(std::string_view token, std::string_view name,
                                    std::string_view value, uint64_t min, uint64_t max) {
  uint64_t number = 0;
  switch (detail::scan_number(value, min, max, &number)) {
    case detail::Scan::ok:
      return Result<uint64_t>::success(number);
    case detail::Scan::out_of_range:
      return fail<uint64_t>(std::string(name) + " must be between " + std::to_string(min) +
                            " and " + std::to_string(max) + " in " + quoted(token));
    case detail::Scan::invalid:
      break;
  }
  return fail<uint64_t>("invalid " + std::string(name) + " " + quoted(value));
}

// A duration option such as "window=10s"; `max_text` is `max_ms` as written
// in the error ("366d", "60s").
Result<uint64_t> parse_duration_option(std::string_view token, std::string_view name,
                                       std::string_view value, uint64_t max_ms,
                                       std::string_view max_text) {
  uint64_t ms = 0;
  switch (detail::scan_duration_ms(value, max_ms, &ms)) {
    case detail::Scan::ok:
      return Result<uint64_t>::success(ms);
    case detail::Scan::out_of_range:
      return fail<uint64_t>(std::string(name) + " must be between 1ms and " +
                            std::string(max_text) + " in " + quoted(token));
    case detail::Scan::invalid:
      break;
  }
  return fail<uint64_t>("invalid " + std::string(name) + " " + quoted(value));
}

// Hostnames and IPv4 addresses, unbracketed.
bool is_valid_host(std::string_view host) {
  if (host.empty()) {
    return false;
  }
  for (char c : host) {
    if (!is_alnum(c) && c != '.' && c != '-' && c != '_') {
      return false;
    }
  }
  return true;
}

// The inside of "[...]": an IPv6 address, possibly with a "%zone".
bool is_valid_ipv6(std::string_view host) {
  if (host.find(':') == std::string_view::npos) {
    return false;
  }
  for (char c : host) {
    if (!is_alnum(c) && c != ':' && c != '.' && c != '%') {
      return false;
    }
  }
  return true;
}

// Parses the port after "host:" into `config`; the error quotes the address.
Result<bool> parse_port(std::string_view address, std::string_view port, RedisConfig* config) {
  uint64_t number = 0;
  switch (detail::scan_number(port, 1, 65535, &number)) {
    case detail::Scan::ok:
      config->port = static_cast<uint16_t>(number);
      return Result<bool>::success(true);
    case detail::Scan::out_of_range:
      return fail<bool>("port must be between 1 and 65535 in " + quoted(address));
    case detail::Scan::invalid:
      break;
  }
  return fail<bool>("invalid port in " + quoted(address));
}

Result<bool> parse_redis_address(std::string_view address, RedisConfig* config) {
  constexpr std::string_view kUnix = "unix:";
  if (address.substr(0, kUnix.size()) == kUnix) {
    std::string_view path = address.substr(kUnix.size());
    if (path.empty() || path[0] != '/') {
      return fail<bool>("unix socket path must be absolute in " + quoted(address));
    }
    // A NUL would cut the path where the kernel reads it.
    if (path.size() == 1 || path.back() == '/' || path.find('\0') != std::string_view::npos) {
      return fail<bool>("invalid unix socket path in " + quoted(address));
    }
    if (path.size() > kMaxUnixPathBytes) {
      return fail<bool>("unix socket path is too long in " + quoted(address));
    }
    config->unix_path = std::string(path);
    config->host.clear();
    return Result<bool>::success(true);
  }

  std::string_view host;
  std::string_view rest;  // what follows the host: "" or ":PORT"
  if (!address.empty() && address[0] == '[') {
    size_t close = address.find(']');
    if (close == std::string_view::npos) {
      return fail<bool>("invalid address " + quoted(address));
    }
    host = address.substr(1, close - 1);
    rest = address.substr(close + 1);
    if (!is_valid_ipv6(host) || (!rest.empty() && rest[0] != ':')) {
      return fail<bool>("invalid address " + quoted(address));
    }
  } else {
    size_t colon = address.find(':');
    host = address.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : address.substr(colon);
    // A second ':' is an IPv6 address without brackets, or garbage.
    if (!is_valid_host(host) || rest.find(':', 1) != std::string_view::npos) {
      return fail<bool>("invalid address " + quoted(address));
    }
  }

  config->port = kDefaultRedisPort;
  if (!rest.empty()) {
    Result<bool> port = parse_port(address, rest.substr(1), config);
    if (!port) {
      return port;
    }
  }
  config->host = std::string(host);
  config->unix_path.clear();
  return Result<bool>::success(true);
}

// Key prefixes: printable ASCII, no spaces.
bool is_valid_prefix(std::string_view prefix) {
  if (prefix.empty()) {
    return false;
  }
  for (char c : prefix) {
    if (c <= ' ' || c > '~') {
      return false;
    }
  }
  return true;
}

}  // namespace

Result<Algorithm> parse_algorithm(std::string_view text) {
  for (const AlgorithmName& entry : kAlgorithmNames) {
    if (entry.name == text) {
      return Result<Algorithm>::success(entry.algorithm);
    }
  }
  return fail<Algorithm>("invalid algorithm " + quoted(text));
}

std::string_view algorithm_name(Algorithm algorithm) {
  for (const AlgorithmName& entry : kAlgorithmNames) {
    if (entry.algorithm == algorithm) {
      return entry.name;
    }
  }
  return "unknown";
}

bool is_valid_zone_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxZoneNameBytes) {
    return false;
  }
  for (char c : name) {
    if (!is_alnum(c) && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

Result<ZoneConfig> parse_zone_options(const std::vector<std::string_view>& options) {
  ZoneConfig zone;
  bool have_zone = false;
  bool have_rate = false;
  bool have_window = false;
  bool have_algorithm = false;
  bool have_burst = false;
  std::string_view rate_text;
  uint64_t rate_window_ms = 0;
  uint64_t window_ms = 0;

  for (std::string_view token : options) {
    Result<Option> option = split_option(token);
    if (!option) {
      return fail<ZoneConfig>(option.error());
    }
    std::string_view name = option.value().name;
    std::string_view value = option.value().value;

    if (name == "zone") {
      if (have_zone) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      if (!is_valid_zone_name(value)) {
        return fail<ZoneConfig>("invalid zone name " + quoted(value));
      }
      zone.name = std::string(value);
      have_zone = true;

    } else if (name == "rate") {
      if (have_rate) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      if (has_variable(value)) {
        zone.rate_variable = std::string(value);  // evaluated per request
        rate_text = value;
        have_rate = true;
        continue;
      }
      Rate rate;
      switch (detail::scan_rate(value, &rate)) {
        case detail::Scan::ok:
          break;
        case detail::Scan::out_of_range:
          return fail<ZoneConfig>("limit must be between 1 and " + std::to_string(kMaxLimit) +
                                  " in " + quoted(token));
        case detail::Scan::invalid:
          return fail<ZoneConfig>("invalid rate " + quoted(value));
      }
      zone.limit = rate.limit;
      rate_window_ms = rate.window_ms;
      rate_text = value;
      have_rate = true;

    } else if (name == "window") {
      if (have_window) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      Result<uint64_t> window = parse_duration_option(token, name, value, kMaxWindowMs, "366d");
      if (!window) {
        return fail<ZoneConfig>(window.error());
      }
      window_ms = window.value();
      have_window = true;

    } else if (name == "algorithm") {
      if (have_algorithm) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      Result<Algorithm> algorithm = parse_algorithm(value);
      if (!algorithm) {
        return fail<ZoneConfig>(algorithm.error());
      }
      zone.algorithm = algorithm.value();
      have_algorithm = true;

    } else if (name == "burst") {
      if (have_burst) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      Result<uint64_t> burst = parse_count_option(token, name, value, 1, kMaxLimit);
      if (!burst) {
        return fail<ZoneConfig>(burst.error());
      }
      zone.burst = burst.value();
      have_burst = true;

    } else {
      return fail<ZoneConfig>("unknown option " + quoted(token));
    }
  }

  if (!have_zone) {
    return fail<ZoneConfig>(missing_option("zone"));
  }
  if (!have_rate) {
    return fail<ZoneConfig>(missing_option("rate"));
  }
  if (have_window) {
    zone.window_ms = window_ms;
  } else if (rate_window_ms != 0) {
    zone.window_ms = rate_window_ms;
  } else if (zone.rate_variable.empty()) {
    return fail<ZoneConfig>("rate " + quoted(rate_text) + " needs \"window=\"");
  }
  if (have_burst && zone.algorithm != Algorithm::token_bucket) {
    return fail<ZoneConfig>("\"burst=\" is only valid with algorithm=token_bucket");
  }
  if (!have_burst) {
    zone.burst = zone.limit;  // 0 with a variable rate: the request's limit
  }
  return Result<ZoneConfig>::success(std::move(zone));
}

// A request's value in an error message: it comes from the client (a header
// through a map), so it is escaped as keys are, never written raw to a log.
std::string quoted_request_value(std::string_view text) {
  return "\"" + escape_for_log(text, 64) + "\"";
}

Result<RequestLimits> request_limits(const ZoneConfig& zone, std::string_view rate_text) {
  if (zone.rate_variable.empty()) {
    return Result<RequestLimits>::success({zone.limit, zone.window_ms, zone.burst});
  }
  Rate rate;
  switch (detail::scan_rate(rate_text, &rate)) {
    case detail::Scan::ok:
      break;
    case detail::Scan::out_of_range:
      return fail<RequestLimits>("limit must be between 1 and " + std::to_string(kMaxLimit) + " in rate " +
                                 quoted_request_value(rate_text) + " from " + quoted(zone.rate_variable));
    case detail::Scan::invalid:
      return fail<RequestLimits>("invalid rate " + quoted_request_value(rate_text) + " from " +
                                 quoted(zone.rate_variable));
  }
  RequestLimits limits{rate.limit, zone.window_ms != 0 ? zone.window_ms : rate.window_ms,
                       zone.burst != 0 ? zone.burst : rate.limit};
  if (limits.window_ms == 0) {
    return fail<RequestLimits>("rate " + quoted_request_value(rate_text) + " from " +
                               quoted(zone.rate_variable) + " needs \"window=\"");
  }
  return Result<RequestLimits>::success(limits);
}

Result<uint64_t> request_cost(std::string_view cost_text) {
  Result<uint64_t> cost = parse_count(cost_text, kMaxCost);
  if (!cost) {
    return fail<uint64_t>("invalid cost " + quoted_request_value(cost_text) + " (a number from 1 to " +
                          std::to_string(kMaxCost) + ")");
  }
  return cost;
}

Result<uint64_t> cost_for_zone(const ZoneConfig& zone, uint64_t cost) {
  if (zone.algorithm == Algorithm::sliding_log && cost > kMaxSlidingLogCost) {
    return fail<uint64_t>("cost " + std::to_string(cost) + " is too large for zone \"" + zone.name +
                          "\" (sliding_log records one entry per unit of cost: at most " +
                          std::to_string(kMaxSlidingLogCost) + ")");
  }
  return Result<uint64_t>::success(cost);
}

Result<uint64_t> cost_within_limits(const ZoneConfig& zone, const RequestLimits& limits, uint64_t cost) {
  const bool bucket = zone.algorithm == Algorithm::token_bucket;
  const uint64_t capacity = bucket ? limits.burst : limits.limit;
  if (cost > capacity) {
    return fail<uint64_t>("cost " + std::to_string(cost) + " is larger than the " + (bucket ? "burst " : "limit ") +
                          std::to_string(capacity) + " of zone \"" + zone.name + "\"");
  }
  return Result<uint64_t>::success(cost);
}

Result<uint64_t> configured_cost_for_zone(const ZoneConfig& zone, uint64_t cost) {
  Result<uint64_t> fits = cost_for_zone(zone, cost);
  if (!fits || !zone.rate_variable.empty()) {
    return fits;  // a variable rate's limit is known per request only
  }
  fits = cost_within_limits(zone, {zone.limit, zone.window_ms, zone.burst}, cost);
  if (!fits) {
    return fail<uint64_t>(fits.error() + ": every request would be rejected");
  }
  return fits;
}

Result<ZoneUse> parse_zone_use(const std::vector<std::string_view>& options) {
  ZoneUse use;
  bool have_zone = false;
  bool have_cost = false;

  for (std::string_view token : options) {
    Result<Option> option = split_option(token);
    if (!option) {
      return fail<ZoneUse>(option.error());
    }
    std::string_view name = option.value().name;
    std::string_view value = option.value().value;

    if (name == "zone") {
      if (have_zone) {
        return fail<ZoneUse>(duplicate_option(name));
      }
      if (!is_valid_zone_name(value)) {
        return fail<ZoneUse>("invalid zone name " + quoted(value));
      }
      use.zone = std::string(value);
      have_zone = true;

    } else if (name == "cost") {
      if (have_cost) {
        return fail<ZoneUse>(duplicate_option(name));
      }
      if (has_variable(value)) {
        use.cost_variable = std::string(value);  // evaluated per request
        use.cost = 0;
        have_cost = true;
        continue;
      }
      Result<uint64_t> cost = parse_count_option(token, name, value, 1, kMaxCost);
      if (!cost) {
        return fail<ZoneUse>(cost.error());
      }
      use.cost = cost.value();
      have_cost = true;

    } else {
      return fail<ZoneUse>("unknown option " + quoted(token));
    }
  }

  if (!have_zone) {
    return fail<ZoneUse>(missing_option("zone"));
  }
  return Result<ZoneUse>::success(std::move(use));
}

// "NAME=HOST[:PORT][,HOST[:PORT]...]" from `offset` on, into `endpoints`.
Result<bool> parse_endpoint_list(std::string_view arg, size_t offset, uint16_t default_port,
                                 std::string_view what, std::vector<RedisEndpoint>* endpoints) {
  std::string_view list = arg.substr(offset);
  while (true) {
    const size_t comma = list.find(',');
    const std::string_view item = list.substr(0, comma);
    RedisConfig parsed;
    Result<bool> address = parse_redis_address(item, &parsed);
    if (!address || !parsed.unix_path.empty()) {
      return fail<bool>(address ? std::string(what) + " needs a host:port in " + quoted(arg) : address.error());
    }
    if (item.back() == ']' || item.find(':') == std::string_view::npos) {
      parsed.port = default_port;  // no port given
    }
    endpoints->push_back({parsed.host, parsed.port});
    if (comma == std::string_view::npos) {
      return Result<bool>::success(true);
    }
    list = list.substr(comma + 1);
  }
}

std::string endpoint_text(const RedisEndpoint& endpoint) {
  const bool v6 = endpoint.host.find(':') != std::string::npos;
  return (v6 ? "[" + endpoint.host + "]" : endpoint.host) + ":" + std::to_string(endpoint.port);
}

bool parse_reply_port(std::string_view text, uint16_t* port) {
  uint64_t value = 0;
  if (detail::scan_number(text, 1, 65535, &value) != detail::Scan::ok) {
    return false;
  }
  *port = static_cast<uint16_t>(value);
  return true;
}

bool parse_reply_endpoint(std::string_view text, RedisEndpoint* endpoint) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || !parse_reply_port(text.substr(colon + 1), &endpoint->port)) {
    return false;
  }
  endpoint->host.assign(text.substr(0, colon));
  return true;
}

Result<RedisConfig> parse_redis_config(const std::vector<std::string_view>& args) {
  if (args.empty()) {
    return fail<RedisConfig>("missing Redis address");
  }

  RedisConfig config;
  constexpr std::string_view kSentinel = "sentinel=";
  constexpr std::string_view kCluster = "cluster=";
  if (args[0].substr(0, kSentinel.size()) == kSentinel) {
    Result<bool> list = parse_endpoint_list(args[0], kSentinel.size(), kDefaultSentinelPort, "a sentinel",
                                            &config.sentinels);
    if (!list) {
      return fail<RedisConfig>(list.error());
    }
  } else if (args[0].substr(0, kCluster.size()) == kCluster) {
    Result<bool> list = parse_endpoint_list(args[0], kCluster.size(), kDefaultRedisPort, "a cluster node",
                                            &config.cluster_nodes);
    if (!list) {
      return fail<RedisConfig>(list.error());
    }
  } else {
    Result<bool> address = parse_redis_address(args[0], &config);
    if (!address) {
      return fail<RedisConfig>(address.error());
    }
  }
  bool have_master = false;
  bool have_sentinel_password = false;

  bool have_password = false;
  bool have_username = false;
  bool have_db = false;
  bool have_prefix = false;
  bool have_connect_timeout = false;
  bool have_timeout = false;

  for (size_t i = 1; i < args.size(); ++i) {
    std::string_view token = args[i];
    Result<Option> option = split_option(token);
    if (!option) {
      return fail<RedisConfig>(option.error());
    }
    std::string_view name = option.value().name;
    std::string_view value = option.value().value;

    if (name == "password" || name == "username") {
      bool& seen = name == "password" ? have_password : have_username;
      if (seen) {
        return fail<RedisConfig>(duplicate_option(name));
      }
      if (value.empty()) {
        return fail<RedisConfig>("\"" + std::string(name) + "=\" needs a value");
      }
      (name == "password" ? config.password : config.username) = std::string(value);
      seen = true;

    } else if (name == "master" || name == "sentinel_password") {
      bool& seen = name == "master" ? have_master : have_sentinel_password;
      if (config.sentinels.empty()) {
        return fail<RedisConfig>("\"" + std::string(name) + "=\" needs \"sentinel=\"");
      }
      if (seen) {
        return fail<RedisConfig>(duplicate_option(name));
      }
      if (value.empty()) {
        return fail<RedisConfig>("\"" + std::string(name) + "=\" needs a value");
      }
      (name == "master" ? config.master_name : config.sentinel_password) = std::string(value);
      seen = true;

    } else if (name == "db") {
      if (have_db) {
        return fail<RedisConfig>(duplicate_option(name));
      }
      Result<uint64_t> db = parse_count_option(token, name, value, 0, kMaxDb);
      if (!db) {
        return fail<RedisConfig>(db.error());
      }
      config.db = static_cast<uint32_t>(db.value());
      have_db = true;

    } else if (name == "prefix") {
      if (have_prefix) {
        return fail<RedisConfig>(duplicate_option(name));
      }
      if (value.empty()) {
        return fail<RedisConfig>("\"prefix=\" needs a value");
      }
      if (!is_valid_prefix(value)) {
        return fail<RedisConfig>("invalid prefix " + quoted(value));
      }
      config.prefix = std::string(value);
      have_prefix = true;

    } else if (name == "connect_timeout" || name == "timeout") {
      bool& seen = name == "timeout" ? have_timeout : have_connect_timeout;
      if (seen) {
        return fail<RedisConfig>(duplicate_option(name));
      }
      Result<uint64_t> timeout =
          parse_duration_option(token, name, value, kMaxRedisTimeoutMs, "60s");
      if (!timeout) {
        return fail<RedisConfig>(timeout.error());
      }
      (name == "timeout" ? config.timeout_ms : config.connect_timeout_ms) = timeout.value();
      seen = true;

    } else {
      return fail<RedisConfig>("unknown option " + quoted(token));
    }
  }

  if (have_username && !have_password) {
    return fail<RedisConfig>("\"username=\" requires \"password=\"");
  }
  if (!config.sentinels.empty() && !have_master) {
    return fail<RedisConfig>("\"sentinel=\" needs \"master=\"");
  }
  if (!config.cluster_nodes.empty()) {
    if (config.db != 0) {
      return fail<RedisConfig>("Redis Cluster has only database 0: \"db=\" cannot be used with \"cluster=\"");
    }
    if (config.prefix.find_first_of("{}") != std::string::npos) {
      // The client key is the hash tag; a brace in the prefix would take its place.
      return fail<RedisConfig>("with \"cluster=\" the prefix cannot contain '{' or '}': " + quoted(config.prefix));
    }
  }
  return Result<RedisConfig>::success(std::move(config));
}

}  // namespace rate_guard
