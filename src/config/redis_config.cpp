#include "config/redis_config.h"

#include <functional>

#include <algorithm>
#include <string>
#include <utility>

#include "config/option_parsing.h"
#include "config/parse_detail.h"
#include "config/rate_parser.h"

namespace rate_guard {

using detail::duplicate_option;
using detail::fail;
using detail::is_alnum;
using detail::parse_count_option;
using detail::parse_duration_option;
using detail::quoted;

namespace {

constexpr uint64_t kMaxDb = 2147483647;  // 2^31 - 1
constexpr uint64_t kMaxRedisTimeoutMs = 60 * 1000;
constexpr size_t kMaxUnixPathBytes = 107;  // sun_path holds 108 bytes with the NUL
constexpr uint16_t kDefaultRedisPort = 6379;
constexpr uint16_t kDefaultSentinelPort = 26379;

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
    endpoints->push_back({parsed.host, parsed.port, {}});
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
  std::vector<std::string_view> tls_options;  // seen, to refuse duplicates and tls_* without tls=on

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

    } else if (name == "tls" || name == "tls_verify") {
      if (std::find(tls_options.begin(), tls_options.end(), name) != tls_options.end()) {
        return fail<RedisConfig>(duplicate_option(name));
      }
      if (value != "on" && value != "off") {
        return fail<RedisConfig>("\"" + std::string(name) + "=\" must be \"on\" or \"off\", not " + quoted(value));
      }
      (name == "tls" ? config.tls.on : config.tls.verify) = value == "on";
      tls_options.push_back(name);

    } else if (name == "tls_trusted_certificate" || name == "tls_certificate" || name == "tls_certificate_key" ||
               name == "tls_name") {
      if (std::find(tls_options.begin(), tls_options.end(), name) != tls_options.end()) {
        return fail<RedisConfig>(duplicate_option(name));
      }
      if (value.empty()) {
        return fail<RedisConfig>("\"" + std::string(name) + "=\" needs a value");
      }
      std::string& field = name == "tls_trusted_certificate" ? config.tls.trusted_certificate
                           : name == "tls_certificate"       ? config.tls.certificate
                           : name == "tls_certificate_key"   ? config.tls.certificate_key
                                                             : config.tls.name;
      field = std::string(value);
      tls_options.push_back(name);

    } else {
      return fail<RedisConfig>("unknown option " + quoted(token));
    }
  }

  for (std::string_view name : tls_options) {
    if (name != "tls" && !config.tls.on) {
      return fail<RedisConfig>("\"" + std::string(name) + "=\" needs \"tls=on\"");
    }
  }
  if (config.tls.certificate.empty() != config.tls.certificate_key.empty()) {
    return fail<RedisConfig>(config.tls.certificate.empty() ? "\"tls_certificate_key=\" needs \"tls_certificate=\""
                                                            : "\"tls_certificate=\" needs \"tls_certificate_key=\"");
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

uint64_t redis_target_id(const RedisConfig& config) {
  std::string text;
  auto add = [&text](std::string_view part) {
    text.append(part);
    text.push_back('\0');
  };
  for (const RedisEndpoint& e : config.sentinels) {
    add(endpoint_text(e));
  }
  add(config.master_name);
  for (const RedisEndpoint& e : config.cluster_nodes) {
    add(endpoint_text(e));
  }
  add(config.host);
  add(std::to_string(config.port));
  add(config.unix_path);
  add(std::to_string(config.db));
  add(config.prefix);
  return std::hash<std::string>{}(text);
}

}  // namespace rate_guard
