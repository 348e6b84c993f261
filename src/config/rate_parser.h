// Parsing of the values that directives take: counts, durations, rates and
// `name=value` options. Error texts quote the offending token, as nginx does.
#pragma once

#include <cstdint>
#include <string_view>

#include "util/result.h"

namespace rate_guard {

// Upper bounds that keep every computation in the Lua scripts exact in a double.
constexpr uint64_t kMaxLimit = 1000000000;                // requests per window
constexpr uint64_t kMaxWindowMs = 366ULL * 24 * 3600 * 1000;  // a (leap) year

// A positive decimal integer no larger than `max`: "1", "100". No sign, no spaces.
Result<uint64_t> parse_count(std::string_view text, uint64_t max);

// nginx's time syntax: a sequence of number+unit ("ms", "s", "m", "h", "d", "w"),
// e.g. "500ms", "10s", "1m30s"; a bare number means seconds. Must be > 0.
Result<uint64_t> parse_duration_ms(std::string_view text);

// "100r/s", "100r/m", "100r/h", "100r/d" (window 1 s, 60 s, 3600 s, 86400 s),
// or a bare count "5" whose window must then come from `window=`.
struct Rate {
  uint64_t limit = 0;
  uint64_t window_ms = 0;  // 0 when the rate was a bare count
};
Result<Rate> parse_rate(std::string_view text);

// "name=value" -> {name, value}; fails on a token without '=' or with an empty name.
struct Option {
  std::string_view name;
  std::string_view value;
};
Result<Option> split_option(std::string_view token);

}  // namespace rate_guard
