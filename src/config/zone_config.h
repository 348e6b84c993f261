// The immutable configuration of the zones and of their use in a location
// (rate, window, algorithm, burst; cost), and the limits and cost of one
// request. Built once from directive arguments.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "util/result.h"

namespace rate_guard {

enum class Algorithm : uint8_t { sliding_window = 0, sliding_log = 1, fixed_window = 2, token_bucket = 3 };

Result<Algorithm> parse_algorithm(std::string_view text);
std::string_view algorithm_name(Algorithm algorithm);

// lease_time='s default and bound: a lease also lives at most a sixteenth of
// the window (the check script's rule).
constexpr uint64_t kDefaultLeaseMs = 100;
constexpr uint64_t kMaxLeaseMs = 60000;
constexpr uint64_t kMinLeaseMs = 10;

struct ZoneConfig {
  std::string name;
  uint64_t limit = 0;       // requests per window (token_bucket: refill of `limit` per window)
  uint64_t window_ms = 0;
  Algorithm algorithm = Algorithm::sliding_window;
  uint64_t burst = 0;       // token_bucket capacity; equals limit unless burst= is given
  // `rate=$var` (any value with a "$"): the rate comes from the request, as
  // the text of this nginx complex value; then `limit` is 0, `window_ms` is
  // window= (or 0: the rate's own unit) and `burst` is burst= (or 0: the limit).
  std::string rate_variable;
  // Leases (lease=, lease_time=): a key busy on this server is admitted from
  // units Redis granted ahead, spendable for at most lease_ms. On by default
  // but for token_bucket.
  bool lease = true;
  uint64_t lease_ms = kDefaultLeaseMs;
};

// What one request is limited to in a zone.
struct RequestLimits {
  uint64_t limit = 0;
  uint64_t window_ms = 0;
  uint64_t burst = 0;
};

// The zone's limits, or for a zone with a variable rate, those of
// `rate_text` (the variable's value for this request, e.g. "1000r/m").
Result<RequestLimits> request_limits(const ZoneConfig& zone, std::string_view rate_text);

// The options of `rate_guard_zone KEY zone=NAME rate=... [window=T] [algorithm=A] [burst=N]
// [lease=on|off] [lease_time=T]`,
// that is, every argument after KEY.
Result<ZoneConfig> parse_zone_options(const std::vector<std::string_view>& options);

// Zone names become part of Redis keys and of metric labels.
bool is_valid_zone_name(std::string_view name);

// `rate_guard zone=NAME [cost=N]`: every argument after the directive name.
struct ZoneUse {
  std::string zone;
  uint64_t cost = 1;
  std::string cost_variable;  // `cost=$var`: evaluated per request (cost is then 0)
  // `count=after`: the request is counted after its response (nginx's log
  // phase), with its cost evaluated then, and only when `if=` (if given) is
  // neither empty nor "0"; before it, a check only asks whether quota remains.
  bool count_after = false;
  std::string if_variable;  // `if=$var`, with count=after only
};

// A per-request cost from a variable's value: 1..kMaxCost.
Result<uint64_t> request_cost(std::string_view cost_text);

// sliding_log records one sorted-set entry per unit of cost: a larger cost
// would stall Redis (and hold its memory) for one request.
constexpr uint64_t kMaxSlidingLogCost = 1000;

// `cost` unless it is too large for the zone's algorithm.
Result<uint64_t> cost_for_zone(const ZoneConfig& zone, uint64_t cost);

// `cost` unless it exceeds what `limits` can ever let through (the limit, or
// the burst of a token bucket): such a request could never pass.
Result<uint64_t> cost_within_limits(const ZoneConfig& zone, const RequestLimits& limits, uint64_t cost);

// A cost written in the configuration: as cost_for_zone, and refused when it
// exceeds what the zone can ever let through (its limit, or burst for a token
// bucket), which would reject every request of the location.
Result<uint64_t> configured_cost_for_zone(const ZoneConfig& zone, uint64_t cost);
Result<ZoneUse> parse_zone_use(const std::vector<std::string_view>& options);

constexpr uint64_t kMaxCost = 1000000;

}  // namespace rate_guard
