// Specification of the value parsers behind the directives: counts, durations,
// rates and name=value options.
#include "config/rate_parser.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <ostream>
#include <string>

namespace rate_guard {
namespace {

// ---------------------------------------------------------------- parse_count

TEST(ParseCount, AcceptsDecimalNumber) {
  Result<uint64_t> count = parse_count("100", 1000);
  ASSERT_TRUE(count.ok()) << count.error();
  EXPECT_EQ(count.value(), 100u);
}

TEST(ParseCount, AcceptsOne) {
  Result<uint64_t> count = parse_count("1", 1000);
  ASSERT_TRUE(count.ok()) << count.error();
  EXPECT_EQ(count.value(), 1u);
}

TEST(ParseCount, AcceptsTheMaximum) {
  Result<uint64_t> count = parse_count("1000", 1000);
  ASSERT_TRUE(count.ok()) << count.error();
  EXPECT_EQ(count.value(), 1000u);
}

TEST(ParseCount, RejectsOneAboveTheMaximum) {
  Result<uint64_t> count = parse_count("1001", 1000);
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.error(), "number must be between 1 and 1000 in \"1001\"");
}

TEST(ParseCount, RejectsZero) {
  Result<uint64_t> count = parse_count("0", 1000);
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.error(), "number must be between 1 and 1000 in \"0\"");
}

TEST(ParseCount, LeadingZerosAreDecimalNotOctal) {
  Result<uint64_t> count = parse_count("010", 1000);
  ASSERT_TRUE(count.ok()) << count.error();
  EXPECT_EQ(count.value(), 10u);
}

TEST(ParseCount, AcceptsLargestUint64WhenMaxAllowsIt) {
  Result<uint64_t> count = parse_count("18446744073709551615", UINT64_MAX);
  ASSERT_TRUE(count.ok()) << count.error();
  EXPECT_EQ(count.value(), UINT64_MAX);
}

TEST(ParseCount, RejectsOneAboveLargestUint64WithoutWrapping) {
  Result<uint64_t> count = parse_count("18446744073709551616", UINT64_MAX);
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.error(),
            "number must be between 1 and 18446744073709551615 in \"18446744073709551616\"");
}

TEST(ParseCount, RejectsTwentyFiveDigitNumberAsOutOfRange) {
  Result<uint64_t> count = parse_count("1234567890123456789012345", 1000000000);
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.error(),
            "number must be between 1 and 1000000000 in \"1234567890123456789012345\"");
}

TEST(ParseCount, HugeNumberFollowedByGarbageIsInvalidNotOutOfRange) {
  Result<uint64_t> count = parse_count("1234567890123456789012345x", 1000);
  ASSERT_FALSE(count.ok());
  EXPECT_EQ(count.error(), "invalid number \"1234567890123456789012345x\"");
}

class ParseCountRejects : public testing::TestWithParam<std::string> {};

TEST_P(ParseCountRejects, MalformedNumber) {
  Result<uint64_t> count = parse_count(GetParam(), 1000000);
  ASSERT_FALSE(count.ok()) << "parsed as " << count.value();
  EXPECT_EQ(count.error(), "invalid number \"" + GetParam() + "\"");
}

INSTANTIATE_TEST_SUITE_P(NotDecimalDigits, ParseCountRejects,
                         testing::Values("", "-1", "+1", "1.5", " 1", "1 ", "1\t", "0x10", "1e3",
                                         "abc", "1_000", "1,000", "10k", "\xd9\xa1" /* Arabic 1 */,
                                         std::string("1\0", 2)));

// ---------------------------------------------------------- parse_duration_ms

struct GoodDuration {
  std::string text;
  uint64_t ms;
};
std::ostream& operator<<(std::ostream& os, const GoodDuration& good) {
  return os << '"' << good.text << "\" -> " << good.ms << "ms";
}

class ParseDurationAccepts : public testing::TestWithParam<GoodDuration> {};

TEST_P(ParseDurationAccepts, NginxTimeSyntax) {
  Result<uint64_t> ms = parse_duration_ms(GetParam().text);
  ASSERT_TRUE(ms.ok()) << ms.error();
  EXPECT_EQ(ms.value(), GetParam().ms);
}

INSTANTIATE_TEST_SUITE_P(
    Units, ParseDurationAccepts,
    testing::Values(GoodDuration{"10", 10000},  // a bare number is seconds
                    GoodDuration{"1ms", 1}, GoodDuration{"500ms", 500}, GoodDuration{"10s", 10000},
                    GoodDuration{"1m", 60000}, GoodDuration{"2h", 7200000},
                    GoodDuration{"1d", 86400000}, GoodDuration{"1w", 604800000},
                    GoodDuration{"1M", 2592000000},   // 30 days
                    GoodDuration{"1y", 31536000000},  // 365 days
                    GoodDuration{"1m30s", 90000}, GoodDuration{"1s500ms", 1500},
                    GoodDuration{"1h1m1s1ms", 3661001},
                    GoodDuration{"1M1w1d1h1m1s1ms",
                                 2592000000 + 604800000 + 86400000 + 3600000 + 60000 + 1000 + 1},
                    GoodDuration{"0m30s", 30000},  // zero parts are fine if the total is not
                    GoodDuration{"90s", 90000},    // a unit need not stay below the next one
                    GoodDuration{"010s", 10000}));

TEST(ParseDuration, AcceptsExactlyTheMaximumWindowOf366Days) {
  Result<uint64_t> ms = parse_duration_ms("1y1d");
  ASSERT_TRUE(ms.ok()) << ms.error();
  EXPECT_EQ(ms.value(), 31622400000u);
  EXPECT_EQ(ms.value(), kMaxWindowMs);
}

TEST(ParseDuration, RejectsOneMillisecondAboveTheMaximum) {
  Result<uint64_t> ms = parse_duration_ms("31622400001ms");
  ASSERT_FALSE(ms.ok());
  EXPECT_EQ(ms.error(), "duration must be between 1ms and 366d in \"31622400001ms\"");
}

TEST(ParseDuration, ErrorQuotesTheMalformedDuration) {
  Result<uint64_t> ms = parse_duration_ms("10x");
  ASSERT_FALSE(ms.ok());
  EXPECT_EQ(ms.error(), "invalid duration \"10x\"");
}

TEST(ParseDuration, ZeroIsOutOfRange) {
  Result<uint64_t> ms = parse_duration_ms("0s");
  ASSERT_FALSE(ms.ok());
  EXPECT_EQ(ms.error(), "duration must be between 1ms and 366d in \"0s\"");
}

class ParseDurationInvalid : public testing::TestWithParam<std::string> {};

TEST_P(ParseDurationInvalid, IsRejectedAsInvalid) {
  Result<uint64_t> ms = parse_duration_ms(GetParam());
  ASSERT_FALSE(ms.ok()) << "parsed as " << ms.value();
  EXPECT_EQ(ms.error(), "invalid duration \"" + GetParam() + "\"");
}

INSTANTIATE_TEST_SUITE_P(Malformed, ParseDurationInvalid,
                         testing::Values("", "s", "ms", "m30s", "10x", "10sx", "1S", "1H", "1sec",
                                         "1min", "1mss",
                                         "1s1m",   // units out of order
                                         "1ms1s",  // units out of order
                                         "1s1s",   // unit repeated
                                         "1m1m",   // unit repeated
                                         "1M1y",   // units out of order
                                         "1m30",   // trailing number without a unit
                                         "1s500",  // trailing number without a unit
                                         "1 s", " 1s", "1s ", "1m 30s", "-1s", "+1s", "-1", "1.5s",
                                         "1,5s", "0x10s", "10r/s", std::string("1s\0", 3)));

class ParseDurationOutOfRange : public testing::TestWithParam<std::string> {};

TEST_P(ParseDurationOutOfRange, IsRejectedAsOutOfRange) {
  Result<uint64_t> ms = parse_duration_ms(GetParam());
  ASSERT_FALSE(ms.ok()) << "parsed as " << ms.value();
  EXPECT_EQ(ms.error(), "duration must be between 1ms and 366d in \"" + GetParam() + "\"");
}

INSTANTIATE_TEST_SUITE_P(ZeroOrTooLong, ParseDurationOutOfRange,
                         testing::Values("0", "0s", "0ms", "0m0s", "000", "367d", "53w", "1y2d",
                                         "13M", "2y",
                                         "8785h",                      // 366 days and one hour
                                         "99999999999999999999999",    // overflows uint64
                                         "99999999999999999999999ms",  // overflows uint64
                                         "18446744073709551615y",  // the product overflows uint64
                                         "1y1M"));  // each part fits, the sum does not

// ----------------------------------------------------------------- parse_rate

TEST(ParseRate, PerSecond) {
  Result<Rate> rate = parse_rate("100r/s");
  ASSERT_TRUE(rate.ok()) << rate.error();
  EXPECT_EQ(rate.value().limit, 100u);
  EXPECT_EQ(rate.value().window_ms, 1000u);
}

TEST(ParseRate, PerMinute) {
  Result<Rate> rate = parse_rate("100r/m");
  ASSERT_TRUE(rate.ok()) << rate.error();
  EXPECT_EQ(rate.value().limit, 100u);
  EXPECT_EQ(rate.value().window_ms, 60000u);
}

TEST(ParseRate, PerHour) {
  Result<Rate> rate = parse_rate("7r/h");
  ASSERT_TRUE(rate.ok()) << rate.error();
  EXPECT_EQ(rate.value().limit, 7u);
  EXPECT_EQ(rate.value().window_ms, 3600000u);
}

TEST(ParseRate, PerDay) {
  Result<Rate> rate = parse_rate("5000r/d");
  ASSERT_TRUE(rate.ok()) << rate.error();
  EXPECT_EQ(rate.value().limit, 5000u);
  EXPECT_EQ(rate.value().window_ms, 86400000u);
}

TEST(ParseRate, BareCountHasNoWindow) {
  Result<Rate> rate = parse_rate("5");
  ASSERT_TRUE(rate.ok()) << rate.error();
  EXPECT_EQ(rate.value().limit, 5u);
  EXPECT_EQ(rate.value().window_ms, 0u);
}

TEST(ParseRate, AcceptsTheMaximumLimitOfOneBillion) {
  Result<Rate> rate = parse_rate("1000000000r/s");
  ASSERT_TRUE(rate.ok()) << rate.error();
  EXPECT_EQ(rate.value().limit, 1000000000u);
  EXPECT_EQ(rate.value().limit, kMaxLimit);
}

TEST(ParseRate, ErrorQuotesTheMalformedRate) {
  Result<Rate> rate = parse_rate("100r/x");
  ASSERT_FALSE(rate.ok());
  EXPECT_EQ(rate.error(), "invalid rate \"100r/x\"");
}

class ParseRateInvalid : public testing::TestWithParam<std::string> {};

TEST_P(ParseRateInvalid, IsRejectedAsInvalid) {
  Result<Rate> rate = parse_rate(GetParam());
  ASSERT_FALSE(rate.ok()) << "parsed as " << rate.value().limit << " per " << rate.value().window_ms
                          << "ms";
  EXPECT_EQ(rate.error(), "invalid rate \"" + GetParam() + "\"");
}

INSTANTIATE_TEST_SUITE_P(Malformed, ParseRateInvalid,
                         testing::Values("", "r/s", "100r/x", "100r/", "100r", "100/s", "100rs",
                                         "100rps", "100R/s", "100r/S", "100r/M", "100 r/s",
                                         " 100r/s", "100r/s ", "-1r/s", "+1r/s", "1.5r/s",
                                         "100r/ms", "100r/sec", "100r/min", "100r/s/", "100r/w",
                                         "100r/y", "0x10r/s", "1e3r/s", "abc", "r", "100r/s100",
                                         "-5", "5s", "10/1s"));

class ParseRateOutOfRange : public testing::TestWithParam<std::string> {};

TEST_P(ParseRateOutOfRange, LimitOutsideOneToOneBillion) {
  Result<Rate> rate = parse_rate(GetParam());
  ASSERT_FALSE(rate.ok()) << "parsed as " << rate.value().limit;
  EXPECT_EQ(rate.error(), "limit must be between 1 and 1000000000 in \"" + GetParam() + "\"");
}

INSTANTIATE_TEST_SUITE_P(ZeroOrTooLarge, ParseRateOutOfRange,
                         testing::Values("0r/s", "0", "000r/m", "1000000001r/s", "1000000001",
                                         "99999999999999999999999r/d"));

// --------------------------------------------------------------- split_option

TEST(SplitOption, SplitsNameAndValue) {
  Result<Option> option = split_option("zone=api");
  ASSERT_TRUE(option.ok()) << option.error();
  EXPECT_EQ(option.value().name, "zone");
  EXPECT_EQ(option.value().value, "api");
}

TEST(SplitOption, SplitsAtTheFirstEqualsSign) {
  Result<Option> option = split_option("password=a=b=");
  ASSERT_TRUE(option.ok()) << option.error();
  EXPECT_EQ(option.value().name, "password");
  EXPECT_EQ(option.value().value, "a=b=");
}

TEST(SplitOption, ReturnsAnEmptyValueForTheCallerToJudge) {
  Result<Option> option = split_option("prefix=");
  ASSERT_TRUE(option.ok()) << option.error();
  EXPECT_EQ(option.value().name, "prefix");
  EXPECT_EQ(option.value().value, "");
}

TEST(SplitOption, ViewsPointIntoTheToken) {
  std::string token = "cost=5";
  Result<Option> option = split_option(token);
  ASSERT_TRUE(option.ok()) << option.error();
  EXPECT_EQ(option.value().name.data(), token.data());
  EXPECT_EQ(option.value().value.data(), token.data() + 5);
}

class SplitOptionRejects : public testing::TestWithParam<std::string> {};

TEST_P(SplitOptionRejects, TokenWithoutNameOrEquals) {
  Result<Option> option = split_option(GetParam());
  ASSERT_FALSE(option.ok()) << "split as " << option.value().name << " / " << option.value().value;
  EXPECT_EQ(option.error(), "invalid option \"" + GetParam() + "\"");
}

INSTANTIATE_TEST_SUITE_P(Malformed, SplitOptionRejects,
                         testing::Values("", "zone", "off", "=", "=api", "==", "zone:api"));

}  // namespace
}  // namespace rate_guard
