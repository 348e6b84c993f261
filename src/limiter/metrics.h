// The module's counters, in memory shared by every worker of a server (nginx
// shared memory; plain memory in tests), and their Prometheus text rendering.
// Every counter is declared once, in the lists below.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rate_guard {

// X(name, help)
#define RATE_GUARD_ZONE_COUNTERS(X)                                                       \
  X(passed, "Requests the zone let through.")                                             \
  X(rejected, "Requests the zone rejected.")                                              \
  X(rejected_dry_run, "Requests the zone would have rejected (rate_guard_dry_run on).")   \
  X(fail_policy, "Requests decided by rate_guard_fail because Redis could not answer.")   \
  X(invalid_value, "Requests decided by rate_guard_fail because a per-request rate or cost was invalid.") \
  X(block_cache_hits, "Rejections answered from the blocked-key cache, without Redis.")

// Per zone too, named rate_guard_lease_<name>_total.
#define RATE_GUARD_LEASE_COUNTERS(X)                                                      \
  X(lease_requests, "Requests let through from a lease, without Redis (also counted as passed).") \
  X(lease_grants, "Leases Redis granted to this server.")                                 \
  X(lease_units_granted, "Units in the leases granted.")                                  \
  X(lease_units_returned, "Unused lease units handed back to Redis.")                     \
  X(lease_units_expired, "Unused lease units not handed back (token_bucket's, or lost with an evicted entry): Redis counts them until they leave the window.")

// Per zone too, named rate_guard_<name>_total: the operator's rules (bans
// and overrides written to Redis) and the counts made after the response
// (count=after).
#define RATE_GUARD_RULE_COUNTERS(X)                                                       \
  X(banned, "Requests rejected by a ban written to Redis.")                               \
  X(overridden, "Requests decided under a per-key override written to Redis (a rate, or unlimited).") \
  X(after_counts, "Counts sent after the response (count=after).")                        \
  X(after_units, "Units of the counts sent after the response (their cost).")             \
  X(after_counts_lost, "Counts after the response that Redis never recorded: down, an error reply, the connection lost.")

#define RATE_GUARD_REDIS_COUNTERS(X)                                                      \
  X(round_trips, "Check commands sent to Redis.")                                         \
  X(errors, "Checks that ended in an error: timeout, dropped connection, error reply.")   \
  X(timeouts, "Checks that Redis did not answer within timeout=.")                        \
  X(reconnects, "Reconnection attempts to Redis.")                                        \
  X(script_loads, "SCRIPT LOAD commands sent (on connect and after NOSCRIPT).")          \
  X(redirects, "MOVED and ASK answers followed (Redis Cluster).")                         \
  X(slot_map_refreshes, "CLUSTER SLOTS queries for the slot map (Redis Cluster).")

struct ZoneCounters {
#define RATE_GUARD_DECLARE(name, help) std::atomic<uint64_t> name{0};
  RATE_GUARD_ZONE_COUNTERS(RATE_GUARD_DECLARE)
  RATE_GUARD_LEASE_COUNTERS(RATE_GUARD_DECLARE)
  RATE_GUARD_RULE_COUNTERS(RATE_GUARD_DECLARE)
#undef RATE_GUARD_DECLARE
};

// Upper bounds of the check latency histogram, in microseconds.
constexpr uint64_t kLatencyBucketsUs[] = {250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000};
constexpr size_t kLatencyBuckets = sizeof(kLatencyBucketsUs) / sizeof(kLatencyBucketsUs[0]);

struct RedisCounters {
#define RATE_GUARD_DECLARE(name, help) std::atomic<uint64_t> name{0};
  RATE_GUARD_REDIS_COUNTERS(RATE_GUARD_DECLARE)
#undef RATE_GUARD_DECLARE
  // Round-trip time of answered checks: non-cumulative counts per bucket, the
  // last one for everything slower than the last bound.
  std::atomic<uint64_t> latency_buckets[kLatencyBuckets + 1] = {};
  std::atomic<uint64_t> latency_sum_us{0};
  std::atomic<uint64_t> latency_count{0};

  void observe_latency_us(uint64_t us);
};

static_assert(std::atomic<uint64_t>::is_always_lock_free, "counters are shared between processes");

// The counters of a configuration's zones, laid over a memory block. A block
// laid out for the same zone names keeps its counts (an nginx reload that
// kept the zones); otherwise it starts from zero.
class Metrics {
 public:
  static constexpr size_t kMaxZoneName = 64;
  static size_t bytes_for(size_t zones);

  Metrics(void* memory, const std::vector<std::string_view>& zone_names);

  size_t zone_count() const;
  std::string_view zone_name(size_t index) const;
  ZoneCounters& zone(size_t index);
  const ZoneCounters& zone(size_t index) const;
  RedisCounters& redis();
  const RedisCounters& redis() const;

 private:
  struct Header;
  Header* header_;
};

// Prometheus text exposition format 0.0.4.
std::string render_prometheus(const Metrics& metrics);

}  // namespace rate_guard
