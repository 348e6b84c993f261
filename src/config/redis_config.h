// The immutable configuration of the Redis connection (a server, a unix
// socket, Sentinel or Cluster), and the Redis endpoints that replies name.
// Built once from the arguments of `rate_guard_redis`.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace rate_guard {

struct RedisEndpoint {
  std::string host;
  uint16_t port = 0;
  // The host name the configuration gave, when `host` is the address it was
  // resolved to (empty otherwise): the name TLS checks unless tls_name= says.
  std::string name;
  bool operator==(const RedisEndpoint& other) const { return host == other.host && port == other.port; }
};

// "host:port" ("[v6]:port" for an IPv6 address), for logs.
std::string endpoint_text(const RedisEndpoint& endpoint);

// A port as Redis writes it in replies: decimal, 1 to 65535.
bool parse_reply_port(std::string_view text, uint16_t* port);

// "host:port" as Redis writes it in MOVED and ASK (the port after the last ':').
bool parse_reply_endpoint(std::string_view text, RedisEndpoint* endpoint);

// TLS to Redis.
struct RedisTls {
  bool on = false;
  bool verify = true;               // the server's chain and name
  std::string trusted_certificate;  // CA file (PEM); empty: the system's CA store
  std::string certificate;          // client certificate and its key (PEM), or none
  std::string certificate_key;
  std::string name;                 // checked in the certificate and sent as SNI; empty: the host
};

struct RedisConfig {
  // Redis Sentinel: the master named `master_name` is asked of these.
  std::vector<RedisEndpoint> sentinels;
  std::string master_name;
  std::string sentinel_password;

  // Redis Cluster: the slot map is asked of these (and of the masters it names).
  std::vector<RedisEndpoint> cluster_nodes;

  std::string host;        // empty for a unix socket
  uint16_t port = 6379;
  std::string host_name;   // as RedisEndpoint::name
  std::string unix_path;   // set for "unix:/path"
  std::string username;
  std::string password;
  uint32_t db = 0;
  std::string prefix = "rate_guard:";
  uint64_t connect_timeout_ms = 50;
  uint64_t timeout_ms = 50;

  RedisTls tls;  // on every connection it opens: master, sentinels, cluster nodes alike
};

// Names where the counts live (address(es), db, prefix), so that state kept
// for one Redis (the leases of a server, over a reload) is never used with
// another. Stable within a build.
uint64_t redis_target_id(const RedisConfig& config);

// `rate_guard_redis ADDRESS [password=S] [username=S] [db=N] [prefix=S]
//                  [connect_timeout=T] [timeout=T] [tls=on] [tls_verify=on|off]
//                  [tls_trusted_certificate=FILE] [tls_certificate=FILE
//                  tls_certificate_key=FILE] [tls_name=NAME]`: every argument after the
// directive name. ADDRESS is "host:port", "host" (port 6379), "[v6]:port",
// "unix:/path", or "sentinel=HOST:PORT[,HOST:PORT...]" (port 26379 by
// default) with "master=NAME" and optionally "sentinel_password=S", or
// "cluster=HOST:PORT[,HOST:PORT...]" (port 6379 by default; no db=, no brace
// in the prefix).
// The host is kept as written; resolving it is the caller's business.
Result<RedisConfig> parse_redis_config(const std::vector<std::string_view>& args);

}  // namespace rate_guard
