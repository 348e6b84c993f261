// Specification of the rate_guard directive (zone=, cost=), per-request rates
// and costs, and the bounds on a cost.
#include "config/zone_config.h"

#include "directive_args.h"

namespace rate_guard {
namespace {

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

TEST(ZoneUse, CountsBeforeByDefault) {
  Result<ZoneUse> use = parse_zone_use({"zone=api"});
  ASSERT_TRUE(use.ok());
  EXPECT_FALSE(use.value().count_after);
  EXPECT_TRUE(use.value().if_variable.empty());
}

TEST(ZoneUse, TakesCountAfterWithIfAndAVariableCost) {
  Result<ZoneUse> use = parse_zone_use({"zone=tokens", "count=after", "cost=$upstream_http_x_tokens_used",
                                        "if=$counted"});
  ASSERT_TRUE(use.ok()) << use.error();
  EXPECT_TRUE(use.value().count_after);
  EXPECT_EQ(use.value().if_variable, "$counted");
  EXPECT_EQ(use.value().cost_variable, "$upstream_http_x_tokens_used");
  use = parse_zone_use({"zone=api", "count=before"});
  ASSERT_TRUE(use.ok());
  EXPECT_FALSE(use.value().count_after);
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
                    BadArgs{{"zone=a", "cost=1", "cost=1"}, "duplicate option \"cost=\""},
                    BadArgs{{"zone=a", "count=sideways"},
                            "invalid \"count=sideways\", expected \"count=before\" or \"count=after\""},
                    BadArgs{{"zone=a", "count=after", "count=after"}, "duplicate option \"count=\""},
                    BadArgs{{"zone=a", "if=$failed"}, "\"if=\" needs \"count=after\""},
                    BadArgs{{"zone=a", "count=before", "if=$failed"}, "\"if=\" needs \"count=after\""},
                    BadArgs{{"zone=a", "count=after", "if=yes"},
                            "invalid \"if=yes\", expected a variable, such as \"if=$login_failed\""},
                    BadArgs{{"zone=a", "count=after", "if=$a", "if=$b"}, "duplicate option \"if=\""}));

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
