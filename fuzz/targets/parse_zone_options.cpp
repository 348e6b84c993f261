// parse_zone_options (the arguments of rate_guard_zone after KEY, split on
// spaces), then request_limits with a per-request rate text: never crashes;
// the limits a request is checked with are always ones the Lua script can
// count exactly, and each field is what the value parsers read from its
// option. `rate=` with a "$" is a variable, evaluated per request. And
// cost_for_zone: a cost is refused exactly when sliding_log would write more
// than kMaxSlidingLogCost entries for one request.
// Input: "ARGUMENTS", "ARGUMENTS\nRATE_TEXT" (the variable's value) or
// "ARGUMENTS\nRATE_TEXT\nCOST".
#include "config/rate_parser.h"
#include "config/zone_config.h"
#include "fuzz_target.h"
#include "split_words.h"

using namespace rate_guard;

RATE_GUARD_FUZZ_TARGET(parse_zone_options) {
  std::string_view input = fuzz::as_text(data, size);
  size_t newline = input.find('\n');
  std::string_view arguments = input.substr(0, newline);
  std::string_view rate_text = newline == std::string_view::npos ? "" : input.substr(newline + 1);
  std::string_view cost_text;
  if (size_t second = rate_text.find('\n'); second != std::string_view::npos) {
    cost_text = rate_text.substr(second + 1);
    rate_text = rate_text.substr(0, second);
  }

  std::vector<std::string_view> words = fuzz::split_words(arguments);
  Result<ZoneConfig> parsed = parse_zone_options(words);
  if (!parsed.ok()) {
    FUZZ_CHECK(!parsed.error().empty());
    return 0;
  }
  const ZoneConfig& zone = parsed.value();
  const bool variable = !zone.rate_variable.empty();
  FUZZ_CHECK(is_valid_zone_name(zone.name));
  FUZZ_CHECK(static_cast<unsigned>(zone.algorithm) <= static_cast<unsigned>(Algorithm::token_bucket));
  for (std::string_view word : words) {
    FUZZ_CHECK(split_option(word).ok());
  }

  std::string_view value;
  FUZZ_CHECK(fuzz::find_option(words, "zone", &value) && value == zone.name);
  FUZZ_CHECK(fuzz::find_option(words, "rate", &value));
  std::string_view rate_option = value;
  Result<Rate> rate = parse_rate(rate_option);
  if (variable) {
    FUZZ_CHECK(zone.rate_variable == rate_option && rate_option.find('$') != std::string_view::npos);
    FUZZ_CHECK(zone.limit == 0);
  } else {
    FUZZ_CHECK(rate.ok() && rate.value().limit == zone.limit);
    FUZZ_CHECK(zone.limit >= 1 && zone.limit <= kMaxLimit);
    FUZZ_CHECK(zone.window_ms >= 1 && zone.window_ms <= kMaxWindowMs);
    FUZZ_CHECK(zone.burst >= 1 && zone.burst <= kMaxLimit);
  }
  bool have_window = fuzz::find_option(words, "window", &value);
  if (have_window) {
    Result<uint64_t> window = parse_duration_ms(value);
    FUZZ_CHECK(window.ok() && window.value() == zone.window_ms);
  } else if (!variable) {
    FUZZ_CHECK(rate.value().window_ms != 0 && rate.value().window_ms == zone.window_ms);
  } else {
    FUZZ_CHECK(zone.window_ms == 0);
  }
  if (fuzz::find_option(words, "algorithm", &value)) {
    Result<Algorithm> algorithm = parse_algorithm(value);
    FUZZ_CHECK(algorithm.ok() && algorithm.value() == zone.algorithm);
  } else {
    FUZZ_CHECK(zone.algorithm == Algorithm::sliding_window);
  }
  bool have_burst = fuzz::find_option(words, "burst", &value);
  if (have_burst) {
    FUZZ_CHECK(zone.algorithm == Algorithm::token_bucket);
    Result<uint64_t> burst = parse_count(value, kMaxLimit);
    FUZZ_CHECK(burst.ok() && burst.value() == zone.burst);
  } else {
    FUZZ_CHECK(zone.burst == zone.limit);
  }

  if (Result<uint64_t> cost = parse_count(cost_text, kMaxCost); cost.ok()) {
    Result<uint64_t> allowed = cost_for_zone(zone, cost.value());
    bool refused = zone.algorithm == Algorithm::sliding_log && cost.value() > kMaxSlidingLogCost;
    FUZZ_CHECK(allowed.ok() == !refused);
    FUZZ_CHECK(!allowed.ok() || allowed.value() == cost.value());
  }

  // What a request is checked with: the zone's own limits, or those of the
  // variable's value (which a client may choose, through a map or a header).
  Result<RequestLimits> limits = request_limits(zone, rate_text);
  if (!variable) {
    FUZZ_CHECK(limits.ok());
    FUZZ_CHECK(limits.value().limit == zone.limit && limits.value().window_ms == zone.window_ms &&
               limits.value().burst == zone.burst);
    return 0;
  }
  Result<Rate> request_rate = parse_rate(rate_text);
  bool expected_ok = request_rate.ok() && (have_window || request_rate.value().window_ms != 0);
  FUZZ_CHECK(limits.ok() == expected_ok);
  if (limits.ok()) {
    const RequestLimits& l = limits.value();
    FUZZ_CHECK(l.limit == request_rate.value().limit);
    FUZZ_CHECK(l.limit >= 1 && l.limit <= kMaxLimit);
    FUZZ_CHECK(l.window_ms >= 1 && l.window_ms <= kMaxWindowMs);
    FUZZ_CHECK(l.window_ms == (have_window ? zone.window_ms : request_rate.value().window_ms));
    FUZZ_CHECK(l.burst >= 1 && l.burst <= kMaxLimit);
    FUZZ_CHECK(l.burst == (have_burst ? zone.burst : l.limit));
  } else {
    // Logged at run time with a value a client may choose: printable ASCII
    // only (the variable's own text comes from the configuration, trusted,
    // and is shown as written).
    FUZZ_CHECK(!limits.error().empty());
    bool printable_config = true;
    for (char c : zone.rate_variable) {
      printable_config = printable_config && c >= 0x20 && c <= 0x7e;
    }
    for (char c : limits.error()) {
      FUZZ_CHECK(!printable_config || (c >= 0x20 && c <= 0x7e));
    }
  }
  return 0;
}
