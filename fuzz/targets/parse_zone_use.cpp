// parse_zone_use (the arguments of `rate_guard`, split on spaces), then
// request_cost with a per-request cost text (its error message printable
// ASCII: it is logged): a success names a valid zone
// with 1 <= cost <= kMaxCost, or a `cost=$var` whose every accepted value is
// in that range. Input: "ARGUMENTS" or "ARGUMENTS\nCOST_TEXT".
#include "config/rate_parser.h"
#include "config/zone_config.h"
#include "fuzz_target.h"
#include "split_words.h"

using namespace rate_guard;

RATE_GUARD_FUZZ_TARGET(parse_zone_use) {
  std::string_view input = fuzz::as_text(data, size);
  size_t newline = input.find('\n');
  std::string_view arguments = input.substr(0, newline);
  std::string_view cost_text = newline == std::string_view::npos ? "" : input.substr(newline + 1);

  std::vector<std::string_view> words = fuzz::split_words(arguments);
  Result<ZoneUse> parsed = parse_zone_use(words);
  if (!parsed.ok()) {
    FUZZ_CHECK(!parsed.error().empty());
    return 0;
  }
  const ZoneUse& use = parsed.value();
  FUZZ_CHECK(is_valid_zone_name(use.zone));
  std::string_view value;
  FUZZ_CHECK(fuzz::find_option(words, "zone", &value) && value == use.zone);
  if (!fuzz::find_option(words, "cost", &value)) {
    FUZZ_CHECK(use.cost == 1 && use.cost_variable.empty());
  } else if (value.find('$') != std::string_view::npos) {
    FUZZ_CHECK(use.cost == 0 && use.cost_variable == value);
  } else {
    Result<uint64_t> cost = parse_count(value, kMaxCost);
    FUZZ_CHECK(cost.ok() && cost.value() == use.cost && use.cost_variable.empty());
    FUZZ_CHECK(use.cost >= 1 && use.cost <= kMaxCost);
  }

  Result<uint64_t> cost = request_cost(cost_text);
  Result<uint64_t> reference = parse_count(cost_text, kMaxCost);
  FUZZ_CHECK(cost.ok() == reference.ok());
  if (cost.ok()) {
    FUZZ_CHECK(cost.value() >= 1 && cost.value() <= kMaxCost && cost.value() == reference.value());
  } else {
    // Logged at run time with a value a client may choose: printable ASCII only.
    for (char c : cost.error()) {
      FUZZ_CHECK(c >= 0x20 && c <= 0x7e);
    }
  }
  return 0;
}
