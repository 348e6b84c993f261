// Private to the parsers (rate_parser.cpp, option_parsing.cpp, zone_config.cpp,
// redis_config.cpp): scanners that say *why* a value is bad, so each caller
// words the error for its own directive ("invalid burst ..." vs "burst must be
// between ... in \"burst=0\"").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/rate_parser.h"

namespace rate_guard::detail {

enum class Scan : uint8_t {
  ok,
  invalid,       // not of the expected form
  out_of_range,  // well formed, but too small, too large or overflowing
};

// `text` in double quotes, as nginx quotes the token an error is about.
std::string quoted(std::string_view text);

// Decimal digits only, in [min, max].
Scan scan_number(std::string_view text, uint64_t min, uint64_t max, uint64_t* value);

// nginx time syntax in milliseconds, in [1, max_ms].
Scan scan_duration_ms(std::string_view text, uint64_t max_ms, uint64_t* value);

// "<N>r/s|m|h|d" or a bare "<N>", N in [1, kMaxLimit].
Scan scan_rate(std::string_view text, Rate* rate);

}  // namespace rate_guard::detail
