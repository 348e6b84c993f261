#include "config/option_parsing.h"

#include "config/parse_detail.h"

namespace rate_guard::detail {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

std::string duplicate_option(std::string_view name) {
  return "duplicate option \"" + std::string(name) + "=\"";
}

bool has_variable(std::string_view value) {
  return value.find('$') != std::string_view::npos;
}

std::string missing_option(std::string_view name) {
  return "missing \"" + std::string(name) + "=\" option";
}

Result<uint64_t> parse_count_option(std::string_view token, std::string_view name,
                                    std::string_view value, uint64_t min, uint64_t max) {
  uint64_t number = 0;
  switch (detail::scan_number(value, min, max, &number)) {
    case detail::Scan::ok:
      return Result<uint64_t>::success(number);
    case detail::Scan::out_of_range:
      return fail<uint64_t>(std::string(name) + " must be between " + std::to_string(min) +
                            " and " + std::to_string(max) + " in " + quoted(token));
    case detail::Scan::invalid:
      break;
  }
  return fail<uint64_t>("invalid " + std::string(name) + " " + quoted(value));
}

Result<uint64_t> parse_duration_option(std::string_view token, std::string_view name,
                                       std::string_view value, uint64_t max_ms,
                                       std::string_view max_text) {
  uint64_t ms = 0;
  switch (detail::scan_duration_ms(value, max_ms, &ms)) {
    case detail::Scan::ok:
      return Result<uint64_t>::success(ms);
    case detail::Scan::out_of_range:
      return fail<uint64_t>(std::string(name) + " must be between 1ms and " +
                            std::string(max_text) + " in " + quoted(token));
    case detail::Scan::invalid:
      break;
  }
  return fail<uint64_t>("invalid " + std::string(name) + " " + quoted(value));
}

}  // namespace rate_guard::detail
