// Private to the directive parsers (zone_config.cpp, redis_config.cpp): the
// `name=value` option helpers they share, with errors worded as nginx words
// them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include "util/result.h"

namespace rate_guard::detail {

bool is_alnum(char c);

template <class T>
Result<T> fail(std::string error) {
  return Result<T>::failure(std::move(error));
}

std::string duplicate_option(std::string_view name);

// nginx's complex values: a "$" makes the value a per-request one.
bool has_variable(std::string_view value);

std::string missing_option(std::string_view name);

// A count option such as "burst=20": the error names the option and, for a
// value out of range, quotes the whole token as nginx does.
Result<uint64_t> parse_count_option(std::string_view token, std::string_view name,
                                    std::string_view value, uint64_t min, uint64_t max);

// A duration option such as "window=10s"; `max_text` is `max_ms` as written
// in the error ("366d", "60s").
Result<uint64_t> parse_duration_option(std::string_view token, std::string_view name,
                                       std::string_view value, uint64_t max_ms,
                                       std::string_view max_text);

}  // namespace rate_guard::detail
