// Specification of rate_guard_zone's options (after KEY): algorithms, zone
// names, rates, windows, bursts.
#include "config/zone_config.h"

#include "directive_args.h"

namespace rate_guard {
namespace {

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

}  // namespace
}  // namespace rate_guard

// ------------------------------------------------------------------ leases

namespace rate_guard {
namespace {

TEST(ZoneOptions, LeasesAreOnFor100msByDefault) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "rate=10r/s"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_TRUE(zone.value().lease);
  EXPECT_EQ(zone.value().lease_ms, 100u);
}

TEST(ZoneOptions, TokenBucketLeasesOnlyWhenAsked) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "rate=10r/s", "algorithm=token_bucket"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_FALSE(zone.value().lease);
  zone = parse_zone_options({"zone=api", "rate=10r/s", "algorithm=token_bucket", "lease=on"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_TRUE(zone.value().lease);
}

TEST(ZoneOptions, LeaseOffAndLeaseTime) {
  Result<ZoneConfig> zone = parse_zone_options({"zone=api", "rate=10r/s", "lease=off", "lease_time=250ms"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_FALSE(zone.value().lease);
  EXPECT_EQ(zone.value().lease_ms, 250u);
  zone = parse_zone_options({"zone=api", "rate=10r/s", "lease=on", "lease_time=60s"});
  ASSERT_TRUE(zone.ok()) << zone.error();
  EXPECT_TRUE(zone.value().lease);
  EXPECT_EQ(zone.value().lease_ms, 60000u);
}

INSTANTIATE_TEST_SUITE_P(
    BadLease, ZoneOptionsRejects,
    testing::Values(
        BadArgs{{"zone=a", "rate=1r/s", "lease=yes"}, "invalid \"lease=yes\", expected \"lease=on\" or \"lease=off\""},
        BadArgs{{"zone=a", "rate=1r/s", "lease="}, "invalid \"lease=\", expected \"lease=on\" or \"lease=off\""},
        BadArgs{{"zone=a", "rate=1r/s", "lease=on", "lease=off"}, "duplicate option \"lease=\""},
        BadArgs{{"zone=a", "rate=1r/s", "lease_time=61s"}, "lease_time must be between 1ms and 60s in \"lease_time=61s\""},
        BadArgs{{"zone=a", "rate=1r/s", "lease_time=0"}, "lease_time must be between 1ms and 60s in \"lease_time=0\""},
        BadArgs{{"zone=a", "rate=1r/s", "lease_time=9ms"}, "lease_time must be between 10ms and 60s in \"lease_time=9ms\""},
        BadArgs{{"zone=a", "rate=1r/s", "lease_time=soon"}, "invalid lease_time \"soon\""},
        BadArgs{{"zone=a", "rate=1r/s", "lease_time=1s", "lease_time=2s"}, "duplicate option \"lease_time=\""}));

}  // namespace
}  // namespace rate_guard
