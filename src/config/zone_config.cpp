#include "config/zone_config.h"

#include <string>
#include <utility>

#include "config/option_parsing.h"
#include "config/parse_detail.h"
#include "config/rate_parser.h"
#include "util/log_escape.h"

namespace rate_guard {

using detail::duplicate_option;
using detail::fail;
using detail::has_variable;
using detail::is_alnum;
using detail::missing_option;
using detail::parse_count_option;
using detail::parse_duration_option;
using detail::quoted;

namespace {

constexpr size_t kMaxZoneNameBytes = 64;

struct AlgorithmName {
  Algorithm algorithm;
  std::string_view name;
};
constexpr AlgorithmName kAlgorithmNames[] = {
    {Algorithm::sliding_window, "sliding_window"},
    {Algorithm::sliding_log, "sliding_log"},
    {Algorithm::fixed_window, "fixed_window"},
    {Algorithm::token_bucket, "token_bucket"},
};

}  // namespace

Result<Algorithm> parse_algorithm(std::string_view text) {
  for (const AlgorithmName& entry : kAlgorithmNames) {
    if (entry.name == text) {
      return Result<Algorithm>::success(entry.algorithm);
    }
  }
  return fail<Algorithm>("invalid algorithm " + quoted(text));
}

std::string_view algorithm_name(Algorithm algorithm) {
  for (const AlgorithmName& entry : kAlgorithmNames) {
    if (entry.algorithm == algorithm) {
      return entry.name;
    }
  }
  return "unknown";
}

bool is_valid_zone_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxZoneNameBytes) {
    return false;
  }
  for (char c : name) {
    if (!is_alnum(c) && c != '_' && c != '-') {
      return false;
    }
  }
  return true;
}

Result<ZoneConfig> parse_zone_options(const std::vector<std::string_view>& options) {
  ZoneConfig zone;
  bool have_zone = false;
  bool have_rate = false;
  bool have_window = false;
  bool have_algorithm = false;
  bool have_burst = false;
  bool have_lease = false;
  bool have_lease_time = false;
  std::string_view rate_text;
  uint64_t rate_window_ms = 0;
  uint64_t window_ms = 0;

  for (std::string_view token : options) {
    Result<Option> option = split_option(token);
    if (!option) {
      return fail<ZoneConfig>(option.error());
    }
    std::string_view name = option.value().name;
    std::string_view value = option.value().value;

    if (name == "zone") {
      if (have_zone) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      if (!is_valid_zone_name(value)) {
        return fail<ZoneConfig>("invalid zone name " + quoted(value));
      }
      zone.name = std::string(value);
      have_zone = true;

    } else if (name == "rate") {
      if (have_rate) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      if (has_variable(value)) {
        zone.rate_variable = std::string(value);  // evaluated per request
        rate_text = value;
        have_rate = true;
        continue;
      }
      Rate rate;
      switch (detail::scan_rate(value, &rate)) {
        case detail::Scan::ok:
          break;
        case detail::Scan::out_of_range:
          return fail<ZoneConfig>("limit must be between 1 and " + std::to_string(kMaxLimit) +
                                  " in " + quoted(token));
        case detail::Scan::invalid:
          return fail<ZoneConfig>("invalid rate " + quoted(value));
      }
      zone.limit = rate.limit;
      rate_window_ms = rate.window_ms;
      rate_text = value;
      have_rate = true;

    } else if (name == "window") {
      if (have_window) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      Result<uint64_t> window = parse_duration_option(token, name, value, kMaxWindowMs, "366d");
      if (!window) {
        return fail<ZoneConfig>(window.error());
      }
      window_ms = window.value();
      have_window = true;

    } else if (name == "algorithm") {
      if (have_algorithm) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      Result<Algorithm> algorithm = parse_algorithm(value);
      if (!algorithm) {
        return fail<ZoneConfig>(algorithm.error());
      }
      zone.algorithm = algorithm.value();
      have_algorithm = true;

    } else if (name == "burst") {
      if (have_burst) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      Result<uint64_t> burst = parse_count_option(token, name, value, 1, kMaxLimit);
      if (!burst) {
        return fail<ZoneConfig>(burst.error());
      }
      zone.burst = burst.value();
      have_burst = true;

    } else if (name == "lease") {
      if (have_lease) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      if (value != "on" && value != "off") {
        return fail<ZoneConfig>("invalid " + quoted(token) + ", expected \"lease=on\" or \"lease=off\"");
      }
      zone.lease = value == "on";
      have_lease = true;

    } else if (name == "lease_time") {
      if (have_lease_time) {
        return fail<ZoneConfig>(duplicate_option(name));
      }
      Result<uint64_t> lease_ms = parse_duration_option(token, name, value, kMaxLeaseMs, "60s");
      if (!lease_ms) {
        return fail<ZoneConfig>(lease_ms.error());
      }
      if (lease_ms.value() < kMinLeaseMs) {
        // shorter, a lease would end before the server may spend it
        return fail<ZoneConfig>("lease_time must be between 10ms and 60s in " + quoted(token));
      }
      zone.lease_ms = lease_ms.value();
      have_lease_time = true;

    } else {
      return fail<ZoneConfig>("unknown option " + quoted(token));
    }
  }

  if (!have_zone) {
    return fail<ZoneConfig>(missing_option("zone"));
  }
  if (!have_rate) {
    return fail<ZoneConfig>(missing_option("rate"));
  }
  if (have_window) {
    zone.window_ms = window_ms;
  } else if (rate_window_ms != 0) {
    zone.window_ms = rate_window_ms;
  } else if (zone.rate_variable.empty()) {
    return fail<ZoneConfig>("rate " + quoted(rate_text) + " needs \"window=\"");
  }
  if (have_burst && zone.algorithm != Algorithm::token_bucket) {
    return fail<ZoneConfig>("\"burst=\" is only valid with algorithm=token_bucket");
  }
  if (!have_burst) {
    zone.burst = zone.limit;  // 0 with a variable rate: the request's limit
  }
  if (!have_lease && zone.algorithm == Algorithm::token_bucket) {
    // Its units cannot be handed back (see token_bucket.lua): measured, a
    // leased bucket let through a third less than its rate under load.
    zone.lease = false;
  }
  return Result<ZoneConfig>::success(std::move(zone));
}

// A request's value in an error message: it comes from the client (a header
// through a map), so it is escaped as keys are, never written raw to a log.
std::string quoted_request_value(std::string_view text) {
  return "\"" + escape_for_log(text, 64) + "\"";
}

Result<RequestLimits> request_limits(const ZoneConfig& zone, std::string_view rate_text) {
  if (zone.rate_variable.empty()) {
    return Result<RequestLimits>::success({zone.limit, zone.window_ms, zone.burst});
  }
  Rate rate;
  switch (detail::scan_rate(rate_text, &rate)) {
    case detail::Scan::ok:
      break;
    case detail::Scan::out_of_range:
      return fail<RequestLimits>("limit must be between 1 and " + std::to_string(kMaxLimit) + " in rate " +
                                 quoted_request_value(rate_text) + " from " + quoted(zone.rate_variable));
    case detail::Scan::invalid:
      return fail<RequestLimits>("invalid rate " + quoted_request_value(rate_text) + " from " +
                                 quoted(zone.rate_variable));
  }
  RequestLimits limits{rate.limit, zone.window_ms != 0 ? zone.window_ms : rate.window_ms,
                       zone.burst != 0 ? zone.burst : rate.limit};
  if (limits.window_ms == 0) {
    return fail<RequestLimits>("rate " + quoted_request_value(rate_text) + " from " +
                               quoted(zone.rate_variable) + " needs \"window=\"");
  }
  return Result<RequestLimits>::success(limits);
}

Result<uint64_t> request_cost(std::string_view cost_text) {
  Result<uint64_t> cost = parse_count(cost_text, kMaxCost);
  if (!cost) {
    return fail<uint64_t>("invalid cost " + quoted_request_value(cost_text) + " (a number from 1 to " +
                          std::to_string(kMaxCost) + ")");
  }
  return cost;
}

Result<uint64_t> cost_for_zone(const ZoneConfig& zone, uint64_t cost) {
  if (zone.algorithm == Algorithm::sliding_log && cost > kMaxSlidingLogCost) {
    return fail<uint64_t>("cost " + std::to_string(cost) + " is too large for zone \"" + zone.name +
                          "\" (sliding_log records one entry per unit of cost: at most " +
                          std::to_string(kMaxSlidingLogCost) + ")");
  }
  return Result<uint64_t>::success(cost);
}

Result<uint64_t> cost_within_limits(const ZoneConfig& zone, const RequestLimits& limits, uint64_t cost) {
  const bool bucket = zone.algorithm == Algorithm::token_bucket;
  const uint64_t capacity = bucket ? limits.burst : limits.limit;
  if (cost > capacity) {
    return fail<uint64_t>("cost " + std::to_string(cost) + " is larger than the " + (bucket ? "burst " : "limit ") +
                          std::to_string(capacity) + " of zone \"" + zone.name + "\"");
  }
  return Result<uint64_t>::success(cost);
}

Result<uint64_t> configured_cost_for_zone(const ZoneConfig& zone, uint64_t cost) {
  Result<uint64_t> fits = cost_for_zone(zone, cost);
  if (!fits || !zone.rate_variable.empty()) {
    return fits;  // a variable rate's limit is known per request only
  }
  fits = cost_within_limits(zone, {zone.limit, zone.window_ms, zone.burst}, cost);
  if (!fits) {
    return fail<uint64_t>(fits.error() + ": every request would be rejected");
  }
  return fits;
}

Result<ZoneUse> parse_zone_use(const std::vector<std::string_view>& options) {
  ZoneUse use;
  bool have_zone = false;
  bool have_cost = false;
  bool have_count = false;
  bool have_if = false;

  for (std::string_view token : options) {
    Result<Option> option = split_option(token);
    if (!option) {
      return fail<ZoneUse>(option.error());
    }
    std::string_view name = option.value().name;
    std::string_view value = option.value().value;

    if (name == "zone") {
      if (have_zone) {
        return fail<ZoneUse>(duplicate_option(name));
      }
      if (!is_valid_zone_name(value)) {
        return fail<ZoneUse>("invalid zone name " + quoted(value));
      }
      use.zone = std::string(value);
      have_zone = true;

    } else if (name == "cost") {
      if (have_cost) {
        return fail<ZoneUse>(duplicate_option(name));
      }
      if (has_variable(value)) {
        use.cost_variable = std::string(value);  // evaluated per request
        use.cost = 0;
        have_cost = true;
        continue;
      }
      Result<uint64_t> cost = parse_count_option(token, name, value, 1, kMaxCost);
      if (!cost) {
        return fail<ZoneUse>(cost.error());
      }
      use.cost = cost.value();
      have_cost = true;

    } else if (name == "count") {
      if (have_count) {
        return fail<ZoneUse>(duplicate_option(name));
      }
      if (value != "before" && value != "after") {
        return fail<ZoneUse>("invalid " + quoted(token) + ", expected \"count=before\" or \"count=after\"");
      }
      use.count_after = value == "after";
      have_count = true;

    } else if (name == "if") {
      if (have_if) {
        return fail<ZoneUse>(duplicate_option(name));
      }
      if (!has_variable(value)) {
        return fail<ZoneUse>("invalid " + quoted(token) + ", expected a variable, such as \"if=$login_failed\"");
      }
      use.if_variable = std::string(value);
      have_if = true;

    } else {
      return fail<ZoneUse>("unknown option " + quoted(token));
    }
  }

  if (!have_zone) {
    return fail<ZoneUse>(missing_option("zone"));
  }
  if (have_if && !use.count_after) {
    // Before the response nothing tells whether it will be counted: "if="
    // decides the count made after it.
    return fail<ZoneUse>("\"if=\" needs \"count=after\"");
  }
  return Result<ZoneUse>::success(std::move(use));
}

}  // namespace rate_guard
