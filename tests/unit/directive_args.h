// Shared by the specification of the directive parsers (zone_options_test,
// zone_cost_test, redis_config_test).
#pragma once

#include <gtest/gtest.h>

#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace rate_guard {
namespace {

using Args = std::vector<std::string_view>;

// Directive arguments and the error they must produce.
struct BadArgs {
  std::vector<std::string> args;
  std::string error;
};
inline std::ostream& operator<<(std::ostream& os, const BadArgs& bad) {
  for (const std::string& arg : bad.args) {
    os << arg << ' ';
  }
  return os << "-> " << bad.error;
}

inline Args views(const std::vector<std::string>& args) { return Args(args.begin(), args.end()); }


}  // namespace
}  // namespace rate_guard
