#include "config/rate_parser.h"

#include <string>

#include "config/parse_detail.h"

namespace rate_guard {

namespace {

constexpr uint64_t kMsPerSecond = 1000;
constexpr uint64_t kMsPerMinute = 60 * kMsPerSecond;
constexpr uint64_t kMsPerHour = 60 * kMsPerMinute;
constexpr uint64_t kMsPerDay = 24 * kMsPerHour;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// The units of nginx's time syntax, largest first. A duration lists each unit
// at most once, in this order.
struct TimeUnit {
  std::string_view suffix;
  uint64_t ms;
};
constexpr TimeUnit kTimeUnits[] = {
    {"y", 365 * kMsPerDay}, {"M", 30 * kMsPerDay}, {"w", 7 * kMsPerDay}, {"d", kMsPerDay},
    {"h", kMsPerHour},      {"m", kMsPerMinute},   {"s", kMsPerSecond},  {"ms", 1},
};
constexpr size_t kTimeUnitCount = sizeof(kTimeUnits) / sizeof(kTimeUnits[0]);

// The unit that `text` starts with, as an index into kTimeUnits, or
// kTimeUnitCount. "ms" wins over "m".
size_t match_time_unit(std::string_view text, size_t* length) {
  size_t best = kTimeUnitCount;
  *length = 0;
  for (size_t i = 0; i < kTimeUnitCount; ++i) {
    std::string_view suffix = kTimeUnits[i].suffix;
    if (text.substr(0, suffix.size()) == suffix && suffix.size() > *length) {
      best = i;
      *length = suffix.size();
    }
  }
  return best;
}

}  // namespace

namespace detail {

std::string quoted(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  out += text;
  out += '"';
  return out;
}

Scan scan_number(std::string_view text, uint64_t min, uint64_t max, uint64_t* value) {
  if (text.empty()) {
    return Scan::invalid;
  }
  uint64_t number = 0;
  bool too_large = false;
  for (char c : text) {
    if (!is_digit(c)) {
      return Scan::invalid;
    }
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (too_large || digit > max || number > (max - digit) / 10) {
      // number * 10 + digit > max; keep scanning so "999...9x" is invalid.
      too_large = true;
      continue;
    }
    number = number * 10 + digit;
  }
  if (too_large || number < min || number > max) {
    return Scan::out_of_range;
  }
  *value = number;
  return Scan::ok;
}

Scan scan_duration_ms(std::string_view text, uint64_t max_ms, uint64_t* value) {
  if (text.empty()) {
    return Scan::invalid;
  }
  uint64_t total = 0;
  bool too_large = false;
  size_t next_unit = 0;  // units before this index are no longer allowed
  size_t pos = 0;
  while (pos < text.size()) {
    size_t digits_start = pos;
    uint64_t number = 0;
    bool number_too_large = false;
    while (pos < text.size() && is_digit(text[pos])) {
      uint64_t digit = static_cast<uint64_t>(text[pos] - '0');
      if (number_too_large || digit > max_ms || number > (max_ms - digit) / 10) {
        number_too_large = true;
      } else {
        number = number * 10 + digit;
      }
      ++pos;
    }
    if (pos == digits_start) {
      return Scan::invalid;  // a unit without a number, or a stray character
    }

    uint64_t unit_ms;
    if (pos == text.size()) {
      // A bare number means seconds, but only as the whole value: "1m30" is
      // refused rather than guessed.
      if (digits_start != 0) {
        return Scan::invalid;
      }
      unit_ms = kMsPerSecond;
    } else {
      size_t length;
      size_t unit = match_time_unit(text.substr(pos), &length);
      if (unit == kTimeUnitCount || unit < next_unit) {
        return Scan::invalid;  // unknown unit, or units repeated or out of order
      }
      next_unit = unit + 1;
      pos += length;
      unit_ms = kTimeUnits[unit].ms;
    }

    if (number_too_large || number > max_ms / unit_ms) {
      too_large = true;
      continue;
    }
    uint64_t part = number * unit_ms;
    if (too_large || total > max_ms - part) {
      too_large = true;
      continue;
    }
    total += part;
  }
  if (too_large || total == 0) {
    return Scan::out_of_range;
  }
  *value = total;
  return Scan::ok;
}

Scan scan_rate(std::string_view text, Rate* rate) {
  size_t digits = 0;
  while (digits < text.size() && is_digit(text[digits])) {
    ++digits;
  }
  if (digits == 0) {
    return Scan::invalid;
  }
  std::string_view count = text.substr(0, digits);
  std::string_view per = text.substr(digits);

  uint64_t window_ms;
  if (per.empty()) {
    window_ms = 0;
  } else if (per == "r/s") {
    window_ms = kMsPerSecond;
  } else if (per == "r/m") {
    window_ms = kMsPerMinute;
  } else if (per == "r/h") {
    window_ms = kMsPerHour;
  } else if (per == "r/d") {
    window_ms = kMsPerDay;
  } else {
    return Scan::invalid;
  }

  uint64_t limit;
  Scan scan = scan_number(count, 1, kMaxLimit, &limit);
  if (scan != Scan::ok) {
    return scan;
  }
  rate->limit = limit;
  rate->window_ms = window_ms;
  return Scan::ok;
}

}  // namespace detail

using detail::quoted;

Result<uint64_t> parse_count(std::string_view text, uint64_t max) {
  uint64_t value = 0;
  switch (detail::scan_number(text, 1, max, &value)) {
    case detail::Scan::ok:
      return Result<uint64_t>::success(value);
    case detail::Scan::out_of_range:
      return Result<uint64_t>::failure("number must be between 1 and " + std::to_string(max) +
                                       " in " + quoted(text));
    case detail::Scan::invalid:
      break;
  }
  return Result<uint64_t>::failure("invalid number " + quoted(text));
}

Result<uint64_t> parse_duration_ms(std::string_view text) {
  uint64_t value = 0;
  switch (detail::scan_duration_ms(text, kMaxWindowMs, &value)) {
    case detail::Scan::ok:
      return Result<uint64_t>::success(value);
    case detail::Scan::out_of_range:
      return Result<uint64_t>::failure("duration must be between 1ms and 366d in " + quoted(text));
    case detail::Scan::invalid:
      break;
  }
  return Result<uint64_t>::failure("invalid duration " + quoted(text));
}

Result<Rate> parse_rate(std::string_view text) {
  Rate rate;
  switch (detail::scan_rate(text, &rate)) {
    case detail::Scan::ok:
      return Result<Rate>::success(rate);
    case detail::Scan::out_of_range:
      return Result<Rate>::failure("limit must be between 1 and " + std::to_string(kMaxLimit) +
                                   " in " + quoted(text));
    case detail::Scan::invalid:
      break;
  }
  return Result<Rate>::failure("invalid rate " + quoted(text));
}

Result<Option> split_option(std::string_view token) {
  size_t equals = token.find('=');
  if (equals == std::string_view::npos || equals == 0) {
    return Result<Option>::failure("invalid option " + quoted(token));
  }
  return Result<Option>::success(Option{token.substr(0, equals), token.substr(equals + 1)});
}

}  // namespace rate_guard
