// parse_rate: never crashes; a success has 1 <= limit <= kMaxLimit, one of the
// five windows, and agrees with a reference reading of "<digits>[r/s|m|h|d]".
#include <string>

#include "config/rate_parser.h"
#include "fuzz_target.h"

using namespace rate_guard;

RATE_GUARD_FUZZ_TARGET(parse_rate) {
  std::string_view text = fuzz::as_text(data, size);
  Result<Rate> rate = parse_rate(text);

  // Reference: digits (saturating at kMaxLimit + 1), then one suffix or none.
  size_t digits = 0;
  unsigned __int128 number = 0;
  while (digits < text.size() && text[digits] >= '0' && text[digits] <= '9') {
    number = number * 10 + static_cast<unsigned>(text[digits] - '0');
    if (number > kMaxLimit) {
      number = kMaxLimit + 1;
    }
    digits++;
  }
  std::string_view suffix = text.substr(digits);
  uint64_t window = 1;  // 1: not a known suffix
  if (suffix.empty()) window = 0;
  if (suffix == "r/s") window = 1000;
  if (suffix == "r/m") window = 60000;
  if (suffix == "r/h") window = 3600000;
  if (suffix == "r/d") window = 86400000;
  bool expected_ok = digits > 0 && window != 1 && number >= 1 && number <= kMaxLimit;

  FUZZ_CHECK(rate.ok() == expected_ok);
  if (rate.ok()) {
    FUZZ_CHECK(rate.value().limit >= 1 && rate.value().limit <= kMaxLimit);
    FUZZ_CHECK(rate.value().limit == static_cast<uint64_t>(number));
    FUZZ_CHECK(rate.value().window_ms == window);
  } else {
    // The message quotes the token, as nginx does.
    FUZZ_CHECK(rate.error().find("\"" + std::string(text) + "\"") != std::string::npos);
  }
  return 0;
}
