// The Redis client over TLS, on the libevent loop (libevent_openssl), against
// a TLS-only redis-server with certificates made for the run
// (test_certificates.h): as exact as over TCP; a certificate that does not
// verify, or is for another name, refused before anything is sent, with the
// reason logged and the checks left to the fail policy; client
// certificates; a restart; many checks pipelined through TLS records.
#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "redis_checker_fixture.h"
#include "test_certificates.h"

namespace rate_guard {
namespace checker_test {
namespace {

using testing::test_certificates;
using testing::tls_server_options;
using testing::trusting_tls;

// Over TLS, verifying the server against the test CA, its name the address
// it is reached at (127.0.0.1, in its certificate).
class RedisCheckerTlsTest : public RedisCheckerFixture {
 protected:
  RedisServer& server() override {
    static RedisServer instance(tls_server_options());
    return instance;
  }

  // A TLS-only server that requires a client certificate from the test CA.
  static RedisServer& client_certificate_server() {
    static RedisServer instance(tls_server_options(true));
    return instance;
  }

  void SetUp() override {
    RedisCheckerFixture::SetUp();
    // The server's own certificate again, whatever the test before put instead.
    use_server_certificate(test_certificates().server);
    config_.tls = trusting_tls();
  }

  // The certificate (with the server key) the server presents from now on.
  void use_server_certificate(const std::string& certificate) {
    auto* reply = static_cast<redisReply*>(redisCommand(admin_.get(), "CONFIG SET tls-cert-file %s tls-key-file %s",
                                                        certificate.c_str(), test_certificates().server_key.c_str()));
    ASSERT_NE(reply, nullptr);
    EXPECT_EQ(reply->type, REDIS_REPLY_STATUS) << std::string(reply->str, reply->len);
    freeReplyObject(reply);
  }

  long long keys_in_redis() {
    redisReply* reply = command(admin_.get(), "DBSIZE");
    const long long n = reply != nullptr && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    freeReplyObject(reply);
    return n;
  }
};

TEST_F(RedisCheckerTlsTest, CountsExactlyAsOverTcp) {
  auto checker = make_checker();
  ASSERT_TRUE(checker->connected());
  for (int i = 0; i < 12; i++) {
    send(*checker, "client-a");
    wait_for(static_cast<size_t>(i + 1));
  }
  ASSERT_EQ(outcomes_.received.size(), 12u);
  EXPECT_EQ(outcomes_.allowed(), 10u);
  EXPECT_EQ(outcomes_.rejected(), 2u);
  for (size_t i = 0; i < 10; i++) {
    EXPECT_EQ(outcomes_.received[i].decision.remaining, 9 - i) << i;
  }
  EXPECT_EQ(outcomes_.received[11].decision.limit, 10u);
  EXPECT_GT(outcomes_.received[11].decision.reset_ms, 59000u);
  EXPECT_EQ(keys_in_redis(), 1);
}

// The port speaks nothing but TLS: what passed above went through TLS.
TEST_F(RedisCheckerTlsTest, PlainClientIsRefusedByTheTlsPort) {
  config_.tls.on = false;
  auto checker = start_checker();
  send(*checker, "client-b");
  wait_for(1);
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_NE(outcomes_.received[0].error, CheckError::none);
  EXPECT_FALSE(checker->connected());
  EXPECT_EQ(keys_in_redis(), 0);
}

TEST_F(RedisCheckerTlsTest, CertificateFromAnotherCaFailsUntilTheServerHasATrustedOne) {
  use_server_certificate(test_certificates().other_ca_server);
  auto checker = start_checker();
  send(*checker, "client-c");
  wait_for(1);
  loop_.run_for(50);
  // The fail policy decides; nothing reached Redis; the log says why.
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_NE(outcomes_.received[0].error, CheckError::none);
  EXPECT_FALSE(checker->connected());
  EXPECT_TRUE(logged(LogLevel::error, "TLS certificate verify error: (20:unable to get local issuer certificate)"))
      << (loop_.logs.empty() ? std::string("no log") : loop_.logs.back().second);
  EXPECT_EQ(keys_in_redis(), 0);
  // Fixed on the server: the same client reconnects (backing off at most 1 s)
  // and counts from the first request.
  use_server_certificate(test_certificates().server);
  ASSERT_TRUE(loop_.run_until([&] { return checker->connected(); }, 3000));
  send(*checker, "client-c");
  wait_for(2);
  ASSERT_EQ(outcomes_.received.size(), 2u);
  EXPECT_EQ(outcomes_.received[1].error, CheckError::none);
  EXPECT_TRUE(outcomes_.received[1].decision.allowed);
  EXPECT_EQ(outcomes_.received[1].decision.remaining, 9u);
}

TEST_F(RedisCheckerTlsTest, VerifyOffAcceptsACertificateFromAnotherCa) {
  use_server_certificate(test_certificates().other_ca_server);
  config_.tls.verify = false;
  config_.tls.trusted_certificate.clear();
  auto checker = make_checker();
  send(*checker, "client-d");
  wait_for(1);
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_EQ(outcomes_.received[0].error, CheckError::none);
  EXPECT_EQ(outcomes_.received[0].decision.remaining, 9u);
}

TEST_F(RedisCheckerTlsTest, TlsNameIsTheNameChecked) {
  config_.tls.name = "redis.test";  // reached at 127.0.0.1, checked for redis.test
  auto checker = make_checker();
  send(*checker, "client-e");
  wait_for(1);
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_EQ(outcomes_.received[0].error, CheckError::none);
  EXPECT_EQ(outcomes_.received[0].decision.remaining, 9u);
}

TEST_F(RedisCheckerTlsTest, NameMismatchIsRefused) {
  config_.tls.name = "other.test";
  auto checker = start_checker();
  send(*checker, "client-f");
  wait_for(1);
  loop_.run_for(50);
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_NE(outcomes_.received[0].error, CheckError::none);
  EXPECT_FALSE(checker->connected());
  EXPECT_TRUE(logged(LogLevel::error, "TLS certificate does not match \"other.test\""))
      << (loop_.logs.empty() ? std::string("no log") : loop_.logs.back().second);
  EXPECT_EQ(keys_in_redis(), 0);
}

// Without tls_name the address is the name: a certificate for redis.test
// alone is not one for 127.0.0.1.
TEST_F(RedisCheckerTlsTest, AddressMissingFromTheCertificateIsRefused) {
  use_server_certificate(test_certificates().server_named_only);
  auto checker = start_checker();
  send(*checker, "client-g");
  wait_for(1);
  loop_.run_for(50);
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_NE(outcomes_.received[0].error, CheckError::none);
  EXPECT_FALSE(checker->connected());
  EXPECT_TRUE(logged(LogLevel::error, "TLS certificate does not match \"127.0.0.1\""))
      << (loop_.logs.empty() ? std::string("no log") : loop_.logs.back().second);
}

TEST_F(RedisCheckerTlsTest, ServerRequiringAClientCertificateRefusesAClientWithout) {
  config_.port = static_cast<uint16_t>(client_certificate_server().port());
  auto checker = start_checker();
  send(*checker, "client-h");
  wait_for(1);
  loop_.run_for(50);
  ASSERT_EQ(outcomes_.received.size(), 1u);
  EXPECT_NE(outcomes_.received[0].error, CheckError::none);
  EXPECT_FALSE(checker->connected());
  // The server's alert ("certificate required"), or the reset when it wins the race.
  EXPECT_TRUE(logged(LogLevel::error, "certificate required") || logged(LogLevel::error, "reset by peer"))
      << (loop_.logs.empty() ? std::string("no log") : loop_.logs.back().second);
}

TEST_F(RedisCheckerTlsTest, ServerRequiringAClientCertificateCountsExactlyWithOne) {
  config_.port = static_cast<uint16_t>(client_certificate_server().port());
  config_.tls.certificate = test_certificates().client;
  config_.tls.certificate_key = test_certificates().client_key;
  auto checker = make_checker();
  for (int i = 0; i < 12; i++) {
    send(*checker, "client-i");
  }
  wait_for(12);
  ASSERT_EQ(outcomes_.received.size(), 12u);
  EXPECT_EQ(outcomes_.allowed(), 10u);
  EXPECT_EQ(outcomes_.rejected(), 2u);
  EXPECT_EQ(outcomes_.received[9].decision.remaining, 0u);
}

TEST_F(RedisCheckerTlsTest, RestartedRedisIsReconnectedOverTls) {
  auto checker = make_checker();
  send(*checker, "client-j");
  wait_for(1);
  ASSERT_EQ(outcomes_.received[0].error, CheckError::none);
  const uint64_t reconnects = checker->counters().reconnects.load();
  server().stop();
  ASSERT_TRUE(loop_.run_until([&] { return !checker->connected(); }));
  EXPECT_EQ(send(*checker, "client-j"), nullptr);  // known down: decided at once
  EXPECT_EQ(outcomes_.received.back().error, CheckError::unavailable);
  server().start();
  ASSERT_TRUE(loop_.run_until([&] { return checker->connected(); }, 3000));
  EXPECT_GT(checker->counters().reconnects.load(), reconnects);
  send(*checker, "client-j");
  wait_for(3);
  ASSERT_EQ(outcomes_.received.size(), 3u);
  EXPECT_EQ(outcomes_.received[2].error, CheckError::none);
  EXPECT_EQ(outcomes_.received[2].decision.remaining, 9u);  // a new Redis: nothing was saved
}

// One answer per check, wherever it lands.
struct Answer {
  CheckOutcome outcome;
  bool received = false;
  static void collect(void* data, const CheckOutcome& outcome) {
    auto* answer = static_cast<Answer*>(data);
    answer->outcome = outcome;
    answer->received = true;
  }
};

// 20,000 checks in one loop turn: some 2.7 MB of commands in batches of 64,
// pipelined on the one connection, and their replies (some 400 kB), cross
// many TLS records and partial reads and writes.
TEST_F(RedisCheckerTlsTest, ManyChecksPipelinedCountExactly) {
  constexpr size_t kKeys = 1000;
  constexpr size_t kRounds = 20;  // per key: 10 allowed, then 10 rejected
  config_.timeout_ms = 20000;
  auto checker = make_checker();
  const uint64_t round_trips = checker->counters().round_trips.load();
  std::vector<std::string> keys;
  for (size_t k = 0; k < kKeys; k++) {
    std::string key = "client-" + std::to_string(k) + "-";
    key.resize(64, 'x');  // the longest key kept as it is
    keys.push_back(key);
  }
  std::vector<Answer> answers(kKeys * kRounds);
  for (size_t round = 0; round < kRounds; round++) {
    for (size_t k = 0; k < kKeys; k++) {
      ZoneRequest request{&zone_, keys[k], 1, {zone_.limit, zone_.window_ms, zone_.burst}};
      CheckOutcome immediate;
      ASSERT_NE(checker->check(&request, 1, Answer::collect, &answers[round * kKeys + k], &immediate), nullptr);
    }
  }
  auto all_received = [&] {
    for (const Answer& answer : answers) {
      if (!answer.received) return false;
    }
    return true;
  };
  ASSERT_TRUE(loop_.run_until(all_received, 30000));
  size_t wrong = 0;
  for (size_t round = 0; round < kRounds; round++) {
    for (size_t k = 0; k < kKeys; k++) {
      const CheckOutcome& outcome = answers[round * kKeys + k].outcome;
      const bool allowed = round < 10;
      const uint64_t remaining = allowed ? 9 - round : 0;
      if (outcome.error != CheckError::none || outcome.decision.allowed != allowed ||
          outcome.decision.remaining != remaining) {
        if (++wrong <= 5) {
          ADD_FAILURE() << "key " << k << ", check " << round << ": error "
                        << check_error_name(outcome.error) << ", allowed " << outcome.decision.allowed
                        << ", remaining " << outcome.decision.remaining;
        }
      }
    }
  }
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(checker->counters().round_trips.load() - round_trips, (kKeys * kRounds + 63) / 64);
  EXPECT_EQ(checker->pending_count(), 0u);
  EXPECT_EQ(keys_in_redis(), static_cast<long long>(kKeys));
  // The pieces: megabytes of commands, some waiting for the socket (TLS
  // writes taken in part); the replies in many reads, across records.
  EXPECT_GT(loop_.traffic.bytes_written, 2000000u);
  EXPECT_GT(loop_.traffic.most_unsent, 0u);
  EXPECT_GT(loop_.traffic.bytes_read, 16384u);
  EXPECT_GT(loop_.traffic.reads, 10u);
}

}  // namespace
}  // namespace checker_test
}  // namespace rate_guard
