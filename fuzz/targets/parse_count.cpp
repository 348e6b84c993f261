// parse_count: the first byte picks the maximum, the rest is the text. A
// success is in [1, max] and is the decimal value of an all-digit text.
#include <limits>

#include "config/rate_parser.h"
#include "fuzz_target.h"

using namespace rate_guard;

RATE_GUARD_FUZZ_TARGET(parse_count) {
  if (size == 0) {
    return 0;
  }
  static const uint64_t kMaxima[] = {1, 9, 10, 65535, 1000000, kMaxLimit,
                                     std::numeric_limits<uint64_t>::max() / 10,
                                     std::numeric_limits<uint64_t>::max()};
  uint64_t max = kMaxima[data[0] % (sizeof(kMaxima) / sizeof(kMaxima[0]))];
  std::string_view text = fuzz::as_text(data + 1, size - 1);
  Result<uint64_t> count = parse_count(text, max);

  bool digits_only = !text.empty();
  unsigned __int128 number = 0;
  const unsigned __int128 cap = static_cast<unsigned __int128>(max) + 1;
  for (char c : text) {
    if (c < '0' || c > '9') {
      digits_only = false;
      break;
    }
    number = number * 10 + static_cast<unsigned>(c - '0');
    if (number > cap) number = cap;
  }
  bool expected_ok = digits_only && number >= 1 && number <= max;
  FUZZ_CHECK(count.ok() == expected_ok);
  if (count.ok()) {
    FUZZ_CHECK(count.value() >= 1 && count.value() <= max);
    FUZZ_CHECK(count.value() == static_cast<uint64_t>(number));
  }
  return 0;
}
