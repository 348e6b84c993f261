// parse_duration_ms: never crashes; a success is in [1ms, 366d] and equals an
// independent reading of nginx's time syntax: number+unit groups with units
// in the order y M w d h m s ms, each at most once; a bare number (the whole
// value) means seconds.
#include <string>

#include "config/rate_parser.h"
#include "fuzz_target.h"

using namespace rate_guard;

namespace {

// The duration in ms, saturated at kMaxWindowMs + 1; -1 when malformed.
__int128 reference_duration_ms(std::string_view text) {
  static const struct {
    const char* unit;
    uint64_t ms;
  } kUnits[] = {{"y", 31536000000ULL}, {"M", 2592000000ULL}, {"w", 604800000ULL},
                {"d", 86400000ULL},    {"h", 3600000ULL},     {"ms", 1},
                {"m", 60000ULL},       {"s", 1000ULL}};
  // Order of units in a duration (ms comes after s).
  auto rank = [](std::string_view unit) {
    static const char* kOrder[] = {"y", "M", "w", "d", "h", "m", "s", "ms"};
    for (int i = 0; i < 8; i++) {
      if (unit == kOrder[i]) return i;
    }
    return -1;
  };
  const __int128 cap = static_cast<__int128>(kMaxWindowMs) + 1;
  if (text.empty()) {
    return -1;
  }
  size_t pos = 0;
  __int128 total = 0;
  int last_rank = -1;
  while (pos < text.size()) {
    size_t start = pos;
    __int128 number = 0;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      number = number * 10 + (text[pos] - '0');
      if (number > cap) number = cap;
      pos++;
    }
    if (pos == start) {
      return -1;
    }
    if (pos == text.size()) {
      if (start != 0) return -1;  // "1m30": a trailing bare number is refused
      total = number * 1000;
      break;
    }
    std::string_view unit;
    uint64_t ms = 0;
    for (const auto& u : kUnits) {  // "ms" is tried before "m"
      std::string_view name(u.unit);
      if (text.substr(pos, name.size()) == name) {
        unit = name;
        ms = u.ms;
        break;
      }
    }
    if (unit.empty() || rank(unit) <= last_rank) {
      return -1;
    }
    last_rank = rank(unit);
    pos += unit.size();
    total += number * ms;
    if (total > cap) total = cap;
  }
  return total > cap ? cap : total;
}

}  // namespace

RATE_GUARD_FUZZ_TARGET(parse_duration_ms) {
  std::string_view text = fuzz::as_text(data, size);
  Result<uint64_t> duration = parse_duration_ms(text);
  __int128 expected = reference_duration_ms(text);
  bool expected_ok = expected >= 1 && expected <= static_cast<__int128>(kMaxWindowMs);
  FUZZ_CHECK(duration.ok() == expected_ok);
  if (duration.ok()) {
    FUZZ_CHECK(duration.value() >= 1 && duration.value() <= kMaxWindowMs);
    FUZZ_CHECK(static_cast<__int128>(duration.value()) == expected);
  } else {
    FUZZ_CHECK(!duration.error().empty());
  }
  return 0;
}
