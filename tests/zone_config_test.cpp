// Specification of the directive parsers: rate_guard_zone, rate_guard and
// rate_guard_redis, each given the arguments after its name (and, for
// rate_guard_zone, after KEY).
#include "zone_config.h"

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace rate_guard {
namespace {

using Args = std::vector<std::string_view>;

// Directive arguments and the error they must produce.
struct BadArgs {
  std::vector<std::string> args;
  std::string error;
};
std::ostream& operator<<(std::ostream& os, const BadArgs& bad) {
  for (const std::string& arg : bad.args) {
    os << arg << ' ';
  }
  return os << "-> " << bad.error;
}

Args views(const std::vector<std::string>& args) { return Args(args.begin(), args.end()); }

// ------------------------------------------------------------------ algorithms

TEST(Algorithm, NamesOfEveryAlgorithm) {
  EXPECT_EQ(algorithm_name(Algorithm::sliding_window), "sliding_window");
  EXPECT_EQ(algorithm_name(Algorithm::sliding_log), "sliding_log");
  EXPECT_EQ(algorithm_name(Algorithm::fixed_window), "fixed_window");
  EXPECT_EQ(algorithm_name(Algorithm::token_bucket), "token_bucket");
}

class AlgorithmRoundTrip : public testing::TestWithParam<Algorithm> {};

TEST_P(AlgorithmRoundTrip, ParsesItsOwnName) {
  Result<Algorithm> parsed = parse_algorithm(algorithm_name(GetParam()));
  ASSERT_TRUE(parsed.ok()) << parsed.error();
  EXPECT_EQ(parsed.value(), GetParam());
}

INSTANTIATE_TEST_SUITE_P(Every, AlgorithmRoundTrip,
                         testing::Values(Algorithm::sliding_window, Algorithm::sliding_log,
                                         Algorithm::fixed_window, Algorithm::token_bucket));

class ParseAlgorithmRejects : public testing::TestWithParam<std::string> {};

TEST_P(ParseAlgorithmRejects, UnknownName) {
  Result<Algorithm> parsed = parse_algorithm(GetParam());
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error(), "invalid algorithm \"" + GetParam() + "\"");
}

INSTANTIATE_TEST_SUITE_P(Malformed, ParseAlgorithmRejects,
                         testing::Values("", "gcra", "SLIDING_WINDOW", "token-bucket",
                                         "sliding_window ", "sliding", "leaky_bucket"));

// ------------------------------------------------------------------ zone names

class ZoneNameAccepted : public testing::TestWithParam<std::string> {};

TEST_P(ZoneNameAccepted, IsValid) { EXPECT_TRUE(is_valid_zone_name(GetParam())); }

INSTANTIATE_TEST_SUITE_P(LettersDigitsUnderscoreDash, ZoneNameAccepted,
                         testing::Values("api", "a", "Login_Per-IP_2", "0", "-", "_",
                                         std::string(64, 'z')));

class ZoneNameRejected : public testing::TestWithParam<std::string> {};

TEST_P(ZoneNameRejected, IsInvalid) { EXPECT_FALSE(is_valid_zone_name(GetParam())); }

INSTANTIATE_TEST_SUITE_P(EmptyTooLongOrOtherCharacters, ZoneNameRejected,
                         testing::Values("", std::string(65, 'z'), "a b", "a:b", "a.b", "a/b",
                                         "a=b", "a\"b", "a{b}", "zone\n", "caf\xc3\xa9",
                                         std::string("a\0b", 3)));

// ---------------------------------------------------------- parse_zone_options

TEST(ZoneOptions, MinimalZoneUsesSlidingWindowAndBurstEqualToLimit) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "rate=100r/m"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_EQ(zone.value().name, "api");
  EXPECT_EQ(zone.value().limit, 100u);
  EXPECT_EQ(zone.value().window_ms, 60000u);
  EXPECT_EQ(zone.value().algorithm, Algorithm::sliding_window);
  EXPECT_EQ(zone.value().burst, 100u);
}

TEST(ZoneOptions, OptionsMayComeInAnyOrder) {
  Result<ZoneConfig> zone =
      parse_zone_options({"algorithm=fixed_window", "rate=10r/s", "zone=login"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_EQ(zone.value().name, "login");
  EXPECT_EQ(zone.value().limit, 10u);
  EXPECT_EQ(zone.value().window_ms, 1000u);
  EXPECT_EQ(zone.value().algorithm, Algorithm::fixed_window);
}

TEST(ZoneOptions, WindowOverridesTheWindowOfTheRate) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "rate=100r/m", "window=10s"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_EQ(zone.value().limit, 100u);
  EXPECT_EQ(zone.value().window_ms, 10000u);
}

TEST(ZoneOptions, WindowBeforeRateStillOverrides) {
  Result<ZoneConfig> zone = parse_zone_options({"window=90s", "zone=api", "rate=1r/s"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_EQ(zone.value().window_ms, 90000u);
}

TEST(ZoneOptions, BareCountTakesItsWindowFromWindowOption) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "rate=5", "window=1m30s"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_EQ(zone.value().limit, 5u);
  EXPECT_EQ(zone.value().window_ms, 90000u);
}

TEST(ZoneOptions, RateWithBareCountNeedsWindow) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "rate=5"});
  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.error(), "rate \"5\" needs \"window=\"");
}

TEST(ZoneOptions, AcceptsTheLongestWindowOf366Days) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "rate=1", "window=366d"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_EQ(zone.value().window_ms, 31622400000u);
}

TEST(ZoneOptions, AcceptsSlidingLog) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "rate=3r/s", "algorithm=sliding_log"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_EQ(zone.value().algorithm, Algorithm::sliding_log);
}

TEST(ZoneOptions, TokenBucketBurstDefaultsToLimit) {
  Result<ZoneConfig> zone =
      parse_zone_options({"zone=api", "rate=30r/m", "algorithm=token_bucket"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_EQ(zone.value().algorithm, Algorithm::token_bucket);
  EXPECT_EQ(zone.value().burst, 30u);
}

TEST(ZoneOptions, TokenBucketTakesBurst) {
  Result<ZoneConfig> zone =
      parse_zone_options({"zone=api", "rate=30r/m", "algorithm=token_bucket", "burst=5"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_EQ(zone.value().limit, 30u);
  EXPECT_EQ(zone.value().burst, 5u);
}

TEST(ZoneOptions, BurstMayComeBeforeAlgorithm) {
  Result<ZoneConfig> zone =
      parse_zone_options({"burst=50", "zone=api", "rate=10r/s", "algorithm=token_bucket"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_EQ(zone.value().burst, 50u);
}

TEST(ZoneOptions, AcceptsBurstOfOneBillion) {
  Result<ZoneConfig> zone =
      parse_zone_options({"zone=api", "rate=1r/s", "algorithm=token_bucket", "burst=1000000000"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_EQ(zone.value().burst, 1000000000u);
}

TEST(ZoneOptions, BurstWithoutAlgorithmIsRejected) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "rate=10r/s", "burst=20"});
  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.error(), "\"burst=\" is only valid with algorithm=token_bucket");
}

class BurstWithOtherAlgorithm : public testing::TestWithParam<std::string> {};

TEST_P(BurstWithOtherAlgorithm, IsRejected) {
  std::string algorithm = "algorithm=" + GetParam();
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "rate=10r/s", algorithm, "burst=20"});
  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.error(), "\"burst=\" is only valid with algorithm=token_bucket");
}

INSTANTIATE_TEST_SUITE_P(NotTokenBucket, BurstWithOtherAlgorithm,
                         testing::Values("sliding_window", "sliding_log", "fixed_window"));

TEST(ZoneOptions, MissingZoneIsRejected) {
  Result<ZoneConfig> zone = parse_zone_options({"rate=10r/s"});
  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.error(), "missing \"zone=\" option");
}

TEST(ZoneOptions, MissingRateIsRejected) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "window=10s"});
  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.error(), "missing \"rate=\" option");
}

TEST(ZoneOptions, NoOptionsAtAllMissesZoneFirst) {
  Result<ZoneConfig> zone = parse_zone_options({});
  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.error(), "missing \"zone=\" option");
}

TEST(ZoneOptions, FirstBadArgumentIsTheOneReported) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=a b", "rate=x", "foo=1"});
  ASSERT_FALSE(zone.ok());
  EXPECT_EQ(zone.error(), "invalid zone name \"a b\"");
}

class ZoneOptionsRejects : public testing::TestWithParam<BadArgs> {};

TEST_P(ZoneOptionsRejects, WithMessageNamingTheToken) {
  Result<ZoneConfig> zone = parse_zone_options(views(GetParam().args));
  ASSERT_FALSE(zone.ok()) << "accepted zone " << zone.value().name;
  EXPECT_EQ(zone.error(), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    UnknownOrMalformedOption, ZoneOptionsRejects,
    testing::Values(BadArgs{{"zone=api", "rate=1r/s", "foo=1"}, "unknown option \"foo=1\""},
                    BadArgs{{"zone=api", "rate=1r/s", "Zone=api"}, "unknown option \"Zone=api\""},
                    BadArgs{{"zone=api", "rate=1r/s", "sync=on"}, "unknown option \"sync=on\""},
                    BadArgs{{"zone=api", "rate=1r/s", "nodelay"}, "invalid option \"nodelay\""},
                    BadArgs{{"zone=api", "rate=1r/s", "=1"}, "invalid option \"=1\""},
                    BadArgs{{"zone=api", "rate=1r/s", ""}, "invalid option \"\""},
                    BadArgs{{"zone=api:10m", "rate=1r/s"}, "invalid zone name \"api:10m\""},
                    BadArgs{{"zone=a b", "rate=1r/s"}, "invalid zone name \"a b\""},
                    BadArgs{{"zone=", "rate=1r/s"}, "invalid zone name \"\""},
                    BadArgs{{"zone=" + std::string(65, 'z'), "rate=1r/s"},
                            "invalid zone name \"" + std::string(65, 'z') + "\""}));

INSTANTIATE_TEST_SUITE_P(
    BadRateOrWindow, ZoneOptionsRejects,
    testing::Values(BadArgs{{"zone=api", "rate=100r/x"}, "invalid rate \"100r/x\""},
                    BadArgs{{"zone=api", "rate="}, "invalid rate \"\""},
                    BadArgs{{"zone=api", "rate=-1r/s"}, "invalid rate \"-1r/s\""},
                    BadArgs{{"zone=api", "rate=0r/s"},
                            "limit must be between 1 and 1000000000 in \"rate=0r/s\""},
                    BadArgs{{"zone=api", "rate=0", "window=1s"},
                            "limit must be between 1 and 1000000000 in \"rate=0\""},
                    BadArgs{{"zone=api", "rate=1000000001r/s"},
                            "limit must be between 1 and 1000000000 in \"rate=1000000001r/s\""},
                    BadArgs{{"zone=api", "rate=1r/s", "window=10x"}, "invalid window \"10x\""},
                    BadArgs{{"zone=api", "rate=1r/s", "window="}, "invalid window \"\""},
                    BadArgs{{"zone=api", "rate=1r/s", "window=1s1m"}, "invalid window \"1s1m\""},
                    BadArgs{{"zone=api", "rate=1r/s", "window=0s"},
                            "window must be between 1ms and 366d in \"window=0s\""},
                    BadArgs{{"zone=api", "rate=1r/s", "window=367d"},
                            "window must be between 1ms and 366d in \"window=367d\""}));

INSTANTIATE_TEST_SUITE_P(
    BadAlgorithmOrBurst, ZoneOptionsRejects,
    testing::Values(BadArgs{{"zone=api", "rate=1r/s", "algorithm=gcra"},
                            "invalid algorithm \"gcra\""},
                    BadArgs{{"zone=api", "rate=1r/s", "algorithm="}, "invalid algorithm \"\""},
                    BadArgs{{"zone=api", "rate=1r/s", "algorithm=token_bucket", "burst=0"},
                            "burst must be between 1 and 1000000000 in \"burst=0\""},
                    BadArgs{{"zone=api", "rate=1r/s", "algorithm=token_bucket", "burst=1000000001"},
                            "burst must be between 1 and 1000000000 in \"burst=1000000001\""},
                    BadArgs{{"zone=api", "rate=1r/s", "algorithm=token_bucket", "burst=abc"},
                            "invalid burst \"abc\""},
                    BadArgs{{"zone=api", "rate=1r/s", "algorithm=token_bucket", "burst="},
                            "invalid burst \"\""},
                    BadArgs{{"zone=api", "rate=1r/s", "algorithm=token_bucket", "burst=-5"},
                            "invalid burst \"-5\""}));

INSTANTIATE_TEST_SUITE_P(
    DuplicateOption, ZoneOptionsRejects,
    testing::Values(
        BadArgs{{"zone=a", "rate=1r/s", "zone=b"}, "duplicate option \"zone=\""},
        BadArgs{{"zone=a", "rate=1r/s", "rate=1r/s"}, "duplicate option \"rate=\""},
        BadArgs{{"zone=a", "rate=1", "window=1s", "window=2s"}, "duplicate option \"window=\""},
        BadArgs{{"zone=a", "rate=1r/s", "algorithm=sliding_log", "algorithm=sliding_log"},
                "duplicate option \"algorithm=\""},
        BadArgs{{"zone=a", "rate=1r/s", "algorithm=token_bucket", "burst=1", "burst=2"},
                "duplicate option \"burst=\""}));

// -------------------------------------------------------------- parse_zone_use

TEST(ZoneUse, CostDefaultsToOne) {
  Result<ZoneUse> use = parse_zone_use({"zone=api"});
  ASSERT_TRUE(use.ok()) << use.error();
  EXPECT_EQ(use.value().zone, "api");
  EXPECT_EQ(use.value().cost, 1u);
}

TEST(ZoneUse, TakesCost) {
  Result<ZoneUse> use = parse_zone_use({"cost=5", "zone=upload"});
  ASSERT_TRUE(use.ok()) << use.error();
  EXPECT_EQ(use.value().zone, "upload");
  EXPECT_EQ(use.value().cost, 5u);
}

TEST(ZoneUse, AcceptsTheMaximumCostOfOneMillion) {
  Result<ZoneUse> use = parse_zone_use({"zone=api", "cost=1000000"});
  ASSERT_TRUE(use.ok()) << use.error();
  EXPECT_EQ(use.value().cost, 1000000u);
  EXPECT_EQ(use.value().cost, kMaxCost);
}

TEST(ZoneUse, MissingZoneIsRejected) {
  Result<ZoneUse> use = parse_zone_use({"cost=2"});
  ASSERT_FALSE(use.ok());
  EXPECT_EQ(use.error(), "missing \"zone=\" option");
}

class ZoneUseRejects : public testing::TestWithParam<BadArgs> {};

TEST_P(ZoneUseRejects, WithMessageNamingTheToken) {
  Result<ZoneUse> use = parse_zone_use(views(GetParam().args));
  ASSERT_FALSE(use.ok()) << "accepted zone " << use.value().zone;
  EXPECT_EQ(use.error(), GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Malformed, ZoneUseRejects,
    testing::Values(BadArgs{{}, "missing \"zone=\" option"},
                    BadArgs{{"zone="}, "invalid zone name \"\""},
                    BadArgs{{"zone=a:b"}, "invalid zone name \"a:b\""},
                    BadArgs{{"zone=api", "cost=0"},
                            "cost must be between 1 and 1000000 in \"cost=0\""},
                    BadArgs{{"zone=api", "cost=1000001"},
                            "cost must be between 1 and 1000000 in \"cost=1000001\""},
                    BadArgs{{"zone=api", "cost=-1"}, "invalid cost \"-1\""},
                    BadArgs{{"zone=api", "cost="}, "invalid cost \"\""},
                    BadArgs{{"zone=api", "cost=1.5"}, "invalid cost \"1.5\""},
                    BadArgs{{"zone=api", "burst=1"}, "unknown option \"burst=1\""},
                    BadArgs{{"zone=api", "nodelay"}, "invalid option \"nodelay\""},
                    BadArgs{{"off"}, "invalid option \"off\""},
                    BadArgs{{"zone=a", "zone=b"}, "duplicate option \"zone=\""},
                    BadArgs{{"zone=a", "cost=1", "cost=1"}, "duplicate option \"cost=\""}));

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


// ---- per-request rates and costs (tiers) ---------------------------------

TEST(ZoneVariables, RateWithAVariableIsKeptForTheRequest) {
  auto zone = parse_zone_options(Args{"zone=api", "rate=$plan_rate"});
  ASSERT_TRUE(zone) << zone.error();
  EXPECT_EQ(zone.value().rate_variable, "$plan_rate");
  EXPECT_EQ(zone.value().limit, 0u);
  EXPECT_EQ(zone.value().window_ms, 0u);
}

TEST(ZoneVariables, RequestLimitsComeFromTheVariablesValue) {
  auto zone = parse_zone_options(Args{"zone=api", "rate=$plan_rate"});
  ASSERT_TRUE(zone);
  auto limits = request_limits(zone.value(), "1000r/m");
  ASSERT_TRUE(limits) << limits.error();
  EXPECT_EQ(limits.value().limit, 1000u);
  EXPECT_EQ(limits.value().window_ms, 60000u);
  EXPECT_EQ(limits.value().burst, 1000u);
}

TEST(ZoneVariables, WindowOptionAppliesToAVariableBareCount) {
  auto zone = parse_zone_options(Args{"zone=api", "rate=${plan}", "window=10s"});
  ASSERT_TRUE(zone) << zone.error();
  auto limits = request_limits(zone.value(), "5");
  ASSERT_TRUE(limits) << limits.error();
  EXPECT_EQ(limits.value().limit, 5u);
  EXPECT_EQ(limits.value().window_ms, 10000u);
}

TEST(ZoneVariables, VariableBareCountWithoutWindowIsAnError) {
  auto zone = parse_zone_options(Args{"zone=api", "rate=$plan_rate"});
  ASSERT_TRUE(zone);
  auto limits = request_limits(zone.value(), "5");
  ASSERT_FALSE(limits);
  EXPECT_EQ(limits.error(), "rate \"5\" from \"$plan_rate\" needs \"window=\"");
}

TEST(ZoneVariables, MalformedRequestRatesAreErrors) {
  auto zone = parse_zone_options(Args{"zone=api", "rate=$plan_rate"});
  ASSERT_TRUE(zone);
  for (std::string_view bad : {"", "lots", "0r/s", "-1r/s", "10r/x", "99999999999r/s"}) {
    EXPECT_FALSE(request_limits(zone.value(), bad)) << bad;
  }
  EXPECT_EQ(request_limits(zone.value(), "lots").error(), "invalid rate \"lots\" from \"$plan_rate\"");
}

TEST(ZoneVariables, StaticZonesIgnoreTheRateText) {
  auto zone = parse_zone_options(Args{"zone=api", "rate=7r/s"});
  ASSERT_TRUE(zone);
  auto limits = request_limits(zone.value(), "anything");
  ASSERT_TRUE(limits);
  EXPECT_EQ(limits.value().limit, 7u);
  EXPECT_EQ(limits.value().window_ms, 1000u);
}

TEST(ZoneVariables, TokenBucketKeepsAStaticBurstWithAVariableRate) {
  auto zone = parse_zone_options(Args{"zone=api", "rate=$r", "algorithm=token_bucket", "burst=3"});
  ASSERT_TRUE(zone) << zone.error();
  auto limits = request_limits(zone.value(), "100r/s");
  ASSERT_TRUE(limits);
  EXPECT_EQ(limits.value().burst, 3u);
}

TEST(ZoneVariables, CostWithAVariableIsEvaluatedPerRequest) {
  auto use = parse_zone_use(Args{"zone=api", "cost=$weight"});
  ASSERT_TRUE(use) << use.error();
  EXPECT_EQ(use.value().cost_variable, "$weight");
  EXPECT_EQ(request_cost("3").value(), 3u);
  EXPECT_FALSE(request_cost("0"));
  EXPECT_FALSE(request_cost(""));
  EXPECT_FALSE(request_cost("1000001"));
  EXPECT_FALSE(request_cost("two"));
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


TEST(ZoneCost, SlidingLogCostIsBoundedSinceEachUnitIsAnEntry) {
  auto log = parse_zone_options(Args{"zone=exact", "rate=1000000r/s", "algorithm=sliding_log"});
  ASSERT_TRUE(log);
  EXPECT_TRUE(cost_for_zone(log.value(), 1000));
  auto big = cost_for_zone(log.value(), 1001);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error(),
            "cost 1001 is too large for zone \"exact\" (sliding_log records one entry per unit of cost: at most 1000)");
  auto window = parse_zone_options(Args{"zone=w", "rate=1000000r/s"});
  ASSERT_TRUE(window);
  EXPECT_TRUE(cost_for_zone(window.value(), 1000000));
}


TEST(RedisAddress, UnixPathWithANulIsRefused) {
  const std::string address("unix:/tmp/r.sock\0 ignored", 26);
  auto config = parse_redis_config(Args{address});
  ASSERT_FALSE(config);
  EXPECT_NE(config.error().find("invalid unix socket path"), std::string::npos) << config.error();
}


TEST(ZoneCost, AConfiguredCostAboveWhatTheZoneCanEverPassIsRefused) {
  auto window = parse_zone_options(Args{"zone=w", "rate=3r/m"});
  ASSERT_TRUE(window);
  EXPECT_TRUE(configured_cost_for_zone(window.value(), 3));
  auto big = configured_cost_for_zone(window.value(), 4);
  ASSERT_FALSE(big);
  EXPECT_EQ(big.error(), "cost 4 is larger than the limit 3 of zone \"w\": every request would be rejected");
  auto bucket = parse_zone_options(Args{"zone=b", "rate=100r/s", "algorithm=token_bucket", "burst=2"});
  ASSERT_TRUE(bucket);
  EXPECT_FALSE(configured_cost_for_zone(bucket.value(), 3));
  auto tier = parse_zone_options(Args{"zone=t", "rate=$plan"});
  ASSERT_TRUE(tier);
  EXPECT_TRUE(configured_cost_for_zone(tier.value(), 1000));  // known per request only
}

TEST(ZoneCost, APerRequestCostAboveTheRequestsLimitCanNeverPass) {
  auto tier = parse_zone_options(Args{"zone=t", "rate=$plan"});
  ASSERT_TRUE(tier);
  auto limits = request_limits(tier.value(), "2r/m");
  ASSERT_TRUE(limits);
  EXPECT_TRUE(cost_within_limits(tier.value(), limits.value(), 2));
  auto over = cost_within_limits(tier.value(), limits.value(), 3);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error(), "cost 3 is larger than the limit 2 of zone \"t\"");
}

TEST(ZoneCost, ATokenBucketsCostIsBoundByItsBurstNotItsRate) {
  auto bucket = parse_zone_options(Args{"zone=b", "rate=$plan", "algorithm=token_bucket", "burst=5"});
  ASSERT_TRUE(bucket);
  auto limits = request_limits(bucket.value(), "2r/s");
  ASSERT_TRUE(limits);
  EXPECT_TRUE(cost_within_limits(bucket.value(), limits.value(), 5));
  auto over = cost_within_limits(bucket.value(), limits.value(), 6);
  ASSERT_FALSE(over);
  EXPECT_EQ(over.error(), "cost 6 is larger than the burst 5 of zone \"b\"");
}

}  // namespace
}  // namespace rate_guard
