// The certificates of the TLS tests, made with OpenSSL once per run of a test
// binary, in a temporary directory removed at exit: a CA the tests trust, a
// second CA they do not, server certificates signed by each, and a client
// certificate. Keys are P-256 (quick to make); certificates last two days.
#pragma once

#include <string>

#include "config/redis_config.h"
#include "redis_server.h"

namespace rate_guard {
namespace testing {

struct TestCertificates {
  std::string ca;        // the CA the tests trust (PEM)
  std::string other_ca;  // a CA that signed only other_ca_server

  // Every server certificate below has this key.
  std::string server_key;
  // Signed by `ca`, for DNS:redis.test and IP:127.0.0.1.
  std::string server;
  // Signed by `other_ca`, for the same names.
  std::string other_ca_server;
  // Signed by `ca`, for DNS:redis.test only (no IP address).
  std::string server_named_only;

  // Signed by `ca`, for DNS:client.test, and its key.
  std::string client;
  std::string client_key;

  std::string dir;
};

// Made on the first call (throws std::runtime_error if OpenSSL cannot).
const TestCertificates& test_certificates();

// A TLS-only redis-server with `server` and its key, checking client
// certificates against `ca` when `require_client_certificate`.
RedisServer::Options tls_server_options(bool require_client_certificate = false);

// The client side, as `rate_guard_redis ... tls=on
// tls_trusted_certificate=<ca>`: verification on, against `ca`.
RedisTls trusting_tls();

}  // namespace testing
}  // namespace rate_guard
