#include "limiter/metrics.h"

#include <cstdio>
#include <cstring>
#include <new>

namespace rate_guard {

namespace {
constexpr uint64_t kMagic = 0x72676d6574726934ULL;  // "rgmetri4": a new layout starts from zero

struct ZoneSlot {
  char name[Metrics::kMaxZoneName + 1];
  ZoneCounters counters;
};
}  // namespace

struct Metrics::Header {
  uint64_t magic;
  uint64_t zones;
  RedisCounters redis;
  ZoneSlot slots[1];
};

void RedisCounters::observe_latency_us(uint64_t us) {
  size_t bucket = 0;
  while (bucket < kLatencyBuckets && us > kLatencyBucketsUs[bucket]) {
    bucket++;
  }
  latency_buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  latency_sum_us.fetch_add(us, std::memory_order_relaxed);
  latency_count.fetch_add(1, std::memory_order_relaxed);
}

size_t Metrics::bytes_for(size_t zones) {
  return offsetof(Header, slots) + (zones == 0 ? 1 : zones) * sizeof(ZoneSlot);
}

Metrics::Metrics(void* memory, const std::vector<std::string_view>& zone_names)
    : header_(static_cast<Header*>(memory)) {
  bool same = header_->magic == kMagic && header_->zones == zone_names.size();
  for (size_t i = 0; same && i < zone_names.size(); i++) {
    same = zone_names[i].substr(0, kMaxZoneName) == std::string_view(header_->slots[i].name);
  }
  if (same) {
    return;
  }
  // Atomics are trivially destructible; constructing them anew zeroes them.
  std::memset(memory, 0, bytes_for(zone_names.size()));
  new (&header_->redis) RedisCounters();
  for (size_t i = 0; i < zone_names.size(); i++) {
    ZoneSlot& slot = header_->slots[i];
    const std::string_view name = zone_names[i].substr(0, kMaxZoneName);
    std::memcpy(slot.name, name.data(), name.size());
    new (&slot.counters) ZoneCounters();
  }
  header_->zones = zone_names.size();
  header_->magic = kMagic;
}

size_t Metrics::zone_count() const { return header_->zones; }
std::string_view Metrics::zone_name(size_t index) const { return header_->slots[index].name; }
ZoneCounters& Metrics::zone(size_t index) { return header_->slots[index].counters; }
const ZoneCounters& Metrics::zone(size_t index) const { return header_->slots[index].counters; }
RedisCounters& Metrics::redis() { return header_->redis; }
const RedisCounters& Metrics::redis() const { return header_->redis; }

std::string render_prometheus(const Metrics& metrics) {
  std::string out;
  auto header = [&out](std::string_view name, std::string_view help, std::string_view type) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
  };
#define RATE_GUARD_RENDER_ZONE_AS(prefix, field, help)                                          \
  header(prefix #field "_total", help, "counter");                                             \
  for (size_t i = 0; i < metrics.zone_count(); i++) {                                          \
    out.append(prefix #field "_total{zone=\"")                                                 \
        .append(metrics.zone_name(i))                                                          \
        .append("\"} ")                                                                        \
        .append(std::to_string(metrics.zone(i).field.load(std::memory_order_relaxed)))        \
        .append("\n");                                                                         \
  }
#define RATE_GUARD_RENDER_ZONE(field, help) RATE_GUARD_RENDER_ZONE_AS("rate_guard_requests_", field, help)
  RATE_GUARD_ZONE_COUNTERS(RATE_GUARD_RENDER_ZONE)
#undef RATE_GUARD_RENDER_ZONE
#define RATE_GUARD_RENDER_NAMED(field, help) RATE_GUARD_RENDER_ZONE_AS("rate_guard_", field, help)
  RATE_GUARD_LEASE_COUNTERS(RATE_GUARD_RENDER_NAMED)
  RATE_GUARD_RULE_COUNTERS(RATE_GUARD_RENDER_NAMED)
#undef RATE_GUARD_RENDER_NAMED
#undef RATE_GUARD_RENDER_ZONE_AS

  const RedisCounters& redis = metrics.redis();
#define RATE_GUARD_RENDER_REDIS(field, help)                                                   \
  header("rate_guard_redis_" #field "_total", help, "counter");                                \
  out.append("rate_guard_redis_" #field "_total ")                                             \
      .append(std::to_string(redis.field.load(std::memory_order_relaxed)))                    \
      .append("\n");
  RATE_GUARD_REDIS_COUNTERS(RATE_GUARD_RENDER_REDIS)
#undef RATE_GUARD_RENDER_REDIS

  header("rate_guard_redis_check_duration_seconds", "Round-trip time of checks answered by Redis.",
         "histogram");
  uint64_t cumulative = 0;
  for (size_t b = 0; b <= kLatencyBuckets; b++) {
    cumulative += redis.latency_buckets[b].load(std::memory_order_relaxed);
    std::string le = "+Inf";
    if (b < kLatencyBuckets) {
      char text[32];
      std::snprintf(text, sizeof(text), "%g", static_cast<double>(kLatencyBucketsUs[b]) / 1e6);
      le = text;
    }
    out.append("rate_guard_redis_check_duration_seconds_bucket{le=\"")
        .append(le)
        .append("\"} ")
        .append(std::to_string(cumulative))
        .append("\n");
  }
  char sum[48];
  std::snprintf(sum, sizeof(sum), "%.6f",
                static_cast<double>(redis.latency_sum_us.load(std::memory_order_relaxed)) / 1e6);
  out.append("rate_guard_redis_check_duration_seconds_sum ").append(sum).append("\n");
  out.append("rate_guard_redis_check_duration_seconds_count ")
      .append(std::to_string(redis.latency_count.load(std::memory_order_relaxed)))
      .append("\n");
  return out;
}

}  // namespace rate_guard
