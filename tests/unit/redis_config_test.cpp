// Specification of rate_guard_redis: address, options, Sentinel, Cluster.
#include "config/redis_config.h"

#include "directive_args.h"

namespace rate_guard {
namespace {

// ---------------------------------------------------------- parse_redis_config

TEST(RedisConfig, HostAndPort) {
  Result<RedisConfig> redis = parse_redis_config({"redis.internal:6380"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().host, "redis.internal");
  EXPECT_EQ(redis.value().port, 6380);
  EXPECT_EQ(redis.value().unix_path, "");
}

TEST(RedisConfig, HostAloneUsesPort6379) {
  Result<RedisConfig> redis = parse_redis_config({"localhost"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().host, "localhost");
  EXPECT_EQ(redis.value().port, 6379);
}

TEST(RedisConfig, Ipv4AddressAndPort) {
  Result<RedisConfig> redis = parse_redis_config({"127.0.0.1:7000"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().host, "127.0.0.1");
  EXPECT_EQ(redis.value().port, 7000);
}

TEST(RedisConfig, Ipv6InBracketsIsStoredWithoutThem) {
  Result<RedisConfig> redis = parse_redis_config({"[::1]:6380"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().host, "::1");
  EXPECT_EQ(redis.value().port, 6380);
}

TEST(RedisConfig, Ipv6InBracketsWithoutPortUses6379) {
  Result<RedisConfig> redis = parse_redis_config({"[2001:db8::7]"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().host, "2001:db8::7");
  EXPECT_EQ(redis.value().port, 6379);
}

TEST(RedisConfig, UnixSocket) {
  Result<RedisConfig> redis = parse_redis_config({"unix:/run/redis/redis.sock"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().unix_path, "/run/redis/redis.sock");
  EXPECT_EQ(redis.value().host, "");
}

TEST(RedisConfig, UnixSocketPathOf107BytesFitsSunPath) {
  std::string address = "unix:/" + std::string(106, 's');
  Result<RedisConfig> redis = parse_redis_config({address});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().unix_path.size(), 107u);
}

TEST(RedisConfig, PortsOneAnd65535AreTheBounds) {
  Result<RedisConfig> low = parse_redis_config({"h:1"});
  Result<RedisConfig> high = parse_redis_config({"h:65535"});
  ASSERT_TRUE(low.ok()) << low.error();
  ASSERT_TRUE(high.ok()) << high.error();
  EXPECT_EQ(low.value().port, 1);
  EXPECT_EQ(high.value().port, 65535);
}

TEST(RedisConfig, DefaultsWithoutOptions) {
  Result<RedisConfig> redis = parse_redis_config({"localhost"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().db, 0u);
  EXPECT_EQ(redis.value().prefix, "rate_guard:");
  EXPECT_EQ(redis.value().connect_timeout_ms, 50u);
  EXPECT_EQ(redis.value().timeout_ms, 50u);
  EXPECT_EQ(redis.value().username, "");
  EXPECT_EQ(redis.value().password, "");
}

TEST(RedisConfig, TakesEveryOption) {
  Result<RedisConfig> redis =
      parse_redis_config({"redis:6379", "password=s3cr=t", "username=edge", "db=3",
                          "prefix=rl:", "connect_timeout=200ms", "timeout=1s"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().password, "s3cr=t");
  EXPECT_EQ(redis.value().username, "edge");
  EXPECT_EQ(redis.value().db, 3u);
  EXPECT_EQ(redis.value().prefix, "rl:");
  EXPECT_EQ(redis.value().connect_timeout_ms, 200u);
  EXPECT_EQ(redis.value().timeout_ms, 1000u);
}

TEST(RedisConfig, PasswordMayContainSpaces) {
  Result<RedisConfig> redis = parse_redis_config({"localhost", "password=a b"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().password, "a b");
}

TEST(RedisConfig, AcceptsDatabase2147483647) {
  Result<RedisConfig> redis = parse_redis_config({"localhost", "db=2147483647"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().db, 2147483647u);
}

TEST(RedisConfig, AcceptsDatabaseZeroExplicitly) {
  Result<RedisConfig> redis = parse_redis_config({"localhost", "db=0"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().db, 0u);
}

TEST(RedisConfig, TimeoutsUpTo60Seconds) {
  Result<RedisConfig> redis =
      parse_redis_config({"localhost", "connect_timeout=1m", "timeout=60s"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().connect_timeout_ms, 60000u);
  EXPECT_EQ(redis.value().timeout_ms, 60000u);
}

TEST(RedisConfig, UsernameRequiresPassword) {
  Result<RedisConfig> redis = parse_redis_config({"localhost", "username=edge"});
  ASSERT_FALSE(redis.ok());
  EXPECT_EQ(redis.error(), "\"username=\" requires \"password=\"");
}

TEST(RedisConfig, NoArgumentsMissesTheAddress) {
  Result<RedisConfig> redis = parse_redis_config({});
  ASSERT_FALSE(redis.ok());
  EXPECT_EQ(redis.error(), "missing Redis address");
}

class RedisConfigRejects : public testing::TestWithParam<BadArgs> {};

TEST_P(RedisConfigRejects, WithMessageNamingTheToken) {
  Result<RedisConfig> redis = parse_redis_config(views(GetParam().args));
  ASSERT_FALSE(redis.ok()) << "accepted host \"" << redis.value().host << "\" port "
                           << redis.value().port;
  EXPECT_EQ(redis.error(), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    BadAddress, RedisConfigRejects,
    testing::Values(
        BadArgs{{""}, "invalid address \"\""}, BadArgs{{"::1"}, "invalid address \"::1\""},
        BadArgs{{"::1:6379"}, "invalid address \"::1:6379\""},
        BadArgs{{"host:6379:1"}, "invalid address \"host:6379:1\""},
        BadArgs{{":6379"}, "invalid address \":6379\""},
        BadArgs{{"redis host"}, "invalid address \"redis host\""},
        BadArgs{{"redis/0:6379"}, "invalid address \"redis/0:6379\""},
        BadArgs{{"redis://localhost:6379"}, "invalid address \"redis://localhost:6379\""},
        BadArgs{{"password=x"}, "invalid address \"password=x\""},
        BadArgs{{"[::1"}, "invalid address \"[::1\""},
        BadArgs{{"[::1]6380"}, "invalid address \"[::1]6380\""},
        BadArgs{{"[]:6379"}, "invalid address \"[]:6379\""},
        BadArgs{{"[localhost]:6379"}, "invalid address \"[localhost]:6379\""},
        BadArgs{{"[::1]:"}, "invalid port in \"[::1]:\""},
        BadArgs{{"localhost:"}, "invalid port in \"localhost:\""},
        BadArgs{{"localhost:abc"}, "invalid port in \"localhost:abc\""},
        BadArgs{{"localhost:-1"}, "invalid port in \"localhost:-1\""},
        BadArgs{{"localhost:+80"}, "invalid port in \"localhost:+80\""},
        BadArgs{{"localhost:0"}, "port must be between 1 and 65535 in \"localhost:0\""},
        BadArgs{{"localhost:65536"}, "port must be between 1 and 65535 in \"localhost:65536\""},
        BadArgs{{"[::1]:70000"}, "port must be between 1 and 65535 in \"[::1]:70000\""},
        BadArgs{{"unix:redis.sock"}, "unix socket path must be absolute in \"unix:redis.sock\""},
        BadArgs{{"unix:"}, "unix socket path must be absolute in \"unix:\""},
        BadArgs{{"unix:/"}, "invalid unix socket path in \"unix:/\""},
        BadArgs{{"unix:/run/redis/"}, "invalid unix socket path in \"unix:/run/redis/\""},
        BadArgs{{"unix:/" + std::string(107, 's')},
                "unix socket path is too long in \"unix:/" + std::string(107, 's') + "\""}));

INSTANTIATE_TEST_SUITE_P(
    BadOption, RedisConfigRejects,
    testing::Values(
        BadArgs{{"localhost", "password="}, "\"password=\" needs a value"},
        BadArgs{{"localhost", "password=p", "username="}, "\"username=\" needs a value"},
        BadArgs{{"localhost", "db=-1"}, "invalid db \"-1\""},
        BadArgs{{"localhost", "db=one"}, "invalid db \"one\""},
        BadArgs{{"localhost", "db="}, "invalid db \"\""},
        BadArgs{{"localhost", "db=2147483648"},
                "db must be between 0 and 2147483647 in \"db=2147483648\""},
        BadArgs{{"localhost", "db=99999999999999999999999"},
                "db must be between 0 and 2147483647 in \"db=99999999999999999999999\""},
        BadArgs{{"localhost", "prefix="}, "\"prefix=\" needs a value"},
        BadArgs{{"localhost", "prefix=a b"}, "invalid prefix \"a b\""},
        BadArgs{{"localhost", "prefix=rl\t"}, "invalid prefix \"rl\t\""},
        BadArgs{{"localhost", "prefix=\x7f"}, "invalid prefix \"\x7f\""},
        BadArgs{{"localhost", "prefix=caf\xc3\xa9"}, "invalid prefix \"caf\xc3\xa9\""},
        BadArgs{{"localhost", "timeout=abc"}, "invalid timeout \"abc\""},
        BadArgs{{"localhost", "timeout="}, "invalid timeout \"\""},
        BadArgs{{"localhost", "timeout=0"}, "timeout must be between 1ms and 60s in \"timeout=0\""},
        BadArgs{{"localhost", "timeout=60001ms"},
                "timeout must be between 1ms and 60s in \"timeout=60001ms\""},
        BadArgs{{"localhost", "connect_timeout=1m1ms"},
                "connect_timeout must be between 1ms and 60s in \"connect_timeout=1m1ms\""},
        BadArgs{{"localhost", "connect_timeout=0ms"},
                "connect_timeout must be between 1ms and 60s in \"connect_timeout=0ms\""},
        BadArgs{{"localhost", "connect_timeout=5x"}, "invalid connect_timeout \"5x\""},
        BadArgs{{"localhost", "sentinel=a"}, "unknown option \"sentinel=a\""},
        BadArgs{{"localhost", "Password=x"}, "unknown option \"Password=x\""},
        BadArgs{{"localhost", "tls"}, "invalid option \"tls\""},
        BadArgs{{"localhost", "localhost:6380"}, "invalid option \"localhost:6380\""}));

INSTANTIATE_TEST_SUITE_P(
    DuplicateOption, RedisConfigRejects,
    testing::Values(
        BadArgs{{"localhost", "password=a", "password=b"}, "duplicate option \"password=\""},
        BadArgs{{"localhost", "password=a", "username=u", "username=u"},
                "duplicate option \"username=\""},
        BadArgs{{"localhost", "db=1", "db=2"}, "duplicate option \"db=\""},
        BadArgs{{"localhost", "prefix=a:", "prefix=a:"}, "duplicate option \"prefix=\""},
        BadArgs{{"localhost", "connect_timeout=1s", "connect_timeout=2s"},
                "duplicate option \"connect_timeout=\""},
        BadArgs{{"localhost", "timeout=1s", "timeout=2s"}, "duplicate option \"timeout=\""}));

TEST(RedisConfig, TimeoutAndConnectTimeoutAreDistinctOptions) {
  Result<RedisConfig> redis =
      parse_redis_config({"localhost", "timeout=20ms", "connect_timeout=300ms"});
  ASSERT_TRUE(redis.ok()) << redis.error();
  EXPECT_EQ(redis.value().timeout_ms, 20u);
  EXPECT_EQ(redis.value().connect_timeout_ms, 300u);
}

// ---- Redis Sentinel ------------------------------------------------------

TEST(RedisSentinelConfig, SentinelsAndMasterName) {
  auto config = parse_redis_config(Args{"sentinel=10.0.0.1:26380,10.0.0.2,[::1]", "master=mymaster",
                                        "sentinel_password=s", "password=p"});
  ASSERT_TRUE(config) << config.error();
  ASSERT_EQ(config.value().sentinels.size(), 3u);
  EXPECT_EQ(config.value().sentinels[0].host, "10.0.0.1");
  EXPECT_EQ(config.value().sentinels[0].port, 26380);
  EXPECT_EQ(config.value().sentinels[1].port, 26379);  // the sentinel default, not 6379
  EXPECT_EQ(config.value().sentinels[2].host, "::1");
  EXPECT_EQ(config.value().sentinels[2].port, 26379);
  EXPECT_EQ(config.value().master_name, "mymaster");
  EXPECT_EQ(config.value().sentinel_password, "s");
  EXPECT_EQ(config.value().password, "p");
  EXPECT_TRUE(config.value().host.empty());
}

TEST(RedisSentinelConfig, SentinelNeedsMaster) {
  auto config = parse_redis_config(Args{"sentinel=10.0.0.1:26379"});
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error(), "\"sentinel=\" needs \"master=\"");
}

TEST(RedisSentinelConfig, MasterNeedsSentinel) {
  auto config = parse_redis_config(Args{"127.0.0.1:6379", "master=mymaster"});
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error(), "\"master=\" needs \"sentinel=\"");
}

TEST(RedisSentinelConfig, BadSentinelAddressesAreRefused) {
  for (std::string_view bad : {"sentinel=", "sentinel=10.0.0.1:0", "sentinel=a:1,", "sentinel=unix:/tmp/s",
                               "sentinel=,10.0.0.1"}) {
    EXPECT_FALSE(parse_redis_config(Args{bad, "master=m"})) << bad;
  }
}


// ---- Redis Cluster -------------------------------------------------------

TEST(RedisClusterConfig, SeedNodes) {
  auto config = parse_redis_config(Args{"cluster=10.0.0.1:7000,10.0.0.2,[::1]:7002", "password=p",
                                        "timeout=20ms"});
  ASSERT_TRUE(config) << config.error();
  ASSERT_EQ(config.value().cluster_nodes.size(), 3u);
  EXPECT_EQ(config.value().cluster_nodes[0].host, "10.0.0.1");
  EXPECT_EQ(config.value().cluster_nodes[0].port, 7000);
  EXPECT_EQ(config.value().cluster_nodes[1].port, 6379);
  EXPECT_EQ(config.value().cluster_nodes[2].host, "::1");
  EXPECT_EQ(config.value().cluster_nodes[2].port, 7002);
  EXPECT_EQ(config.value().password, "p");
  EXPECT_EQ(config.value().timeout_ms, 20u);
  EXPECT_TRUE(config.value().sentinels.empty());
  EXPECT_TRUE(config.value().host.empty());
}

TEST(RedisClusterConfig, OnlyDatabaseZero) {
  EXPECT_TRUE(parse_redis_config(Args{"cluster=10.0.0.1:7000", "db=0"}));
  auto config = parse_redis_config(Args{"cluster=10.0.0.1:7000", "db=1"});
  ASSERT_FALSE(config);
  EXPECT_EQ(config.error(), "Redis Cluster has only database 0: \"db=\" cannot be used with \"cluster=\"");
}

TEST(RedisClusterConfig, PrefixWithABraceIsRefusedSinceTheClientKeyIsTheHashTag) {
  EXPECT_TRUE(parse_redis_config(Args{"cluster=10.0.0.1:7000", "prefix=rl:"}));
  for (std::string_view prefix : {"prefix={rl}:", "prefix=rl{", "prefix=}"}) {
    auto config = parse_redis_config(Args{"cluster=10.0.0.1:7000", prefix});
    ASSERT_FALSE(config) << prefix;
    EXPECT_NE(config.error().find("with \"cluster=\" the prefix cannot contain '{' or '}'"), std::string::npos)
        << config.error();
  }
  EXPECT_TRUE(parse_redis_config(Args{"127.0.0.1:6379", "prefix={rl}:"}));  // fine without Cluster
}

TEST(RedisClusterConfig, BadNodeAddressesAreRefused) {
  for (std::string_view bad : {"cluster=", "cluster=10.0.0.1:0", "cluster=a:1,", "cluster=unix:/tmp/s",
                               "cluster=,10.0.0.1", "cluster=10.0.0.1:70000"}) {
    EXPECT_FALSE(parse_redis_config(Args{bad})) << bad;
  }
  EXPECT_FALSE(parse_redis_config(Args{"cluster=10.0.0.1", "master=m"}));
  EXPECT_FALSE(parse_redis_config(Args{"10.0.0.1", "cluster=10.0.0.1"}));
}

TEST(RedisAddress, UnixPathWithANulIsRefused) {
  const std::string address("unix:/tmp/r.sock\0 ignored", 26);
  auto config = parse_redis_config(Args{address});
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().find("invalid unix socket path"), std::string::npos) << config.error();
}

TEST(RedisTlsConfig, TlsOptionsAreKeptAndVerifyIsOnByDefault) {
  auto config = parse_redis_config(Args{"10.0.0.1:6380", "tls=on", "tls_trusted_certificate=/etc/ca.pem",
                                        "tls_certificate=/etc/c.pem", "tls_certificate_key=/etc/c.key",
                                        "tls_name=redis.internal"});
  ASSERT_TRUE(config) << config.error();
  const RedisTls& tls = config.value().tls;
  EXPECT_TRUE(tls.on);
  EXPECT_TRUE(tls.verify);
  EXPECT_EQ(tls.trusted_certificate, "/etc/ca.pem");
  EXPECT_EQ(tls.certificate, "/etc/c.pem");
  EXPECT_EQ(tls.certificate_key, "/etc/c.key");
  EXPECT_EQ(tls.name, "redis.internal");
  EXPECT_FALSE(parse_redis_config(Args{"10.0.0.1"}).value().tls.on);
}

TEST(RedisTlsConfig, TlsVerifyOffIsKept) {
  auto config = parse_redis_config(Args{"10.0.0.1", "tls=on", "tls_verify=off"});
  ASSERT_TRUE(config) << config.error();
  EXPECT_FALSE(config.value().tls.verify);
}

TEST(RedisTlsConfig, TlsOptionsWithoutTlsOnAreRefused) {
  for (const char* option : {"tls_verify=off", "tls_trusted_certificate=/ca.pem", "tls_name=x", "tls=off"}) {
    auto config = parse_redis_config(Args{"10.0.0.1", option});
    if (std::string_view(option) == "tls=off") {
      EXPECT_TRUE(config) << config.error();
      continue;
    }
    ASSERT_FALSE(config) << option;
    EXPECT_NE(config.error().find("needs \"tls=on\""), std::string::npos) << config.error();
  }
}

TEST(RedisTlsConfig, ACertificateNeedsItsKeyAndTheKeyItsCertificate) {
  auto key_only = parse_redis_config(Args{"10.0.0.1", "tls=on", "tls_certificate_key=/k.pem"});
  ASSERT_FALSE(key_only);
  EXPECT_EQ(key_only.error(), "\"tls_certificate_key=\" needs \"tls_certificate=\"");
  auto cert_only = parse_redis_config(Args{"10.0.0.1", "tls=on", "tls_certificate=/c.pem"});
  ASSERT_FALSE(cert_only);
  EXPECT_EQ(cert_only.error(), "\"tls_certificate=\" needs \"tls_certificate_key=\"");
}

TEST(RedisTlsConfig, BadOrDuplicateTlsValuesAreRefused) {
  EXPECT_FALSE(parse_redis_config(Args{"10.0.0.1", "tls=yes"}));
  EXPECT_FALSE(parse_redis_config(Args{"10.0.0.1", "tls=on", "tls=on"}));
  EXPECT_FALSE(parse_redis_config(Args{"10.0.0.1", "tls=on", "tls_name="}));
}

TEST(RedisTlsConfig, EveryFormTakesTls) {
  EXPECT_TRUE(parse_redis_config(Args{"sentinel=10.0.0.1:26379", "master=m", "tls=on"}).value().tls.on);
  EXPECT_TRUE(parse_redis_config(Args{"cluster=10.0.0.1:7000", "tls=on"}).value().tls.on);
  EXPECT_TRUE(parse_redis_config(Args{"unix:/run/redis.sock", "tls=on", "tls_name=redis"}).value().tls.on);
}

}  // namespace
}  // namespace rate_guard
