#include "limiter/block_cache.h"

#include <algorithm>
#include <cstring>

#include "limiter/table_key.h"

namespace rate_guard {

namespace {

constexpr uint64_t kMagic = 0x7267626c6f636b32ULL;  // "rgblock2"
constexpr size_t kWays = 4;                         // entries per bucket

}  // namespace

struct BlockCache::Header {
  uint64_t magic;
  uint64_t seed;
  uint64_t buckets;
};

struct BlockCache::Entry {
  uint64_t until_ms;  // 0: empty
  uint64_t held_until_ms;  // answered here until then: until_ms, at most kMaxRejectionHoldMs
  uint64_t zone_id;
  uint64_t limit;
  uint64_t remaining;
  uint64_t cost;
  TableKey key;
};

uint64_t block_cache_zone_id(const ZoneConfig& zone, const RequestLimits& limits) {
  const uint64_t fields[] = {static_cast<uint64_t>(zone.algorithm), limits.limit, limits.window_ms,
                             limits.burst};
  return hash_bytes(zone.name.data(), zone.name.size(),
                    hash_bytes(fields, sizeof(fields), 0x9e3779b97f4a7c15ULL));
}

BlockCache::BlockCache(void* memory, size_t bytes, bool initialize)
    : header_(lay_out_table<Header, Entry>(memory, bytes, kWays, kMagic, initialize)),
      entries_(reinterpret_cast<Entry*>(static_cast<char*>(memory) + sizeof(Header))) {}

size_t BlockCache::entry_size() {
  return sizeof(Entry);
}

size_t BlockCache::capacity() const {
  return header_->buckets * kWays;
}

bool BlockCache::lookup(uint64_t zone_id, std::string_view key, uint64_t cost, uint64_t now_ms,
                        CachedRejection* out) const {
  if (header_->buckets == 0) {
    return false;
  }
  const TableKey k = make_table_key(key);
  const uint64_t h = hash_bytes(k.bytes, k.len, header_->seed ^ zone_id ^ (cost * 0x9e3779b97f4a7c15ULL));
  const Entry* bucket = entries_ + (h % header_->buckets) * kWays;
  for (size_t i = 0; i < kWays; i++) {
    const Entry& e = bucket[i];
    if (e.held_until_ms > now_ms && e.zone_id == zone_id && e.cost == cost && e.key == k) {
      out->limit = e.limit;
      out->remaining = e.remaining;
      out->reset_ms = e.until_ms - now_ms + 1;  // the millisecond taken off in record()
      return true;
    }
  }
  return false;
}

void BlockCache::record(uint64_t zone_id, std::string_view key, uint64_t cost, uint64_t sent_ms,
                        uint64_t limit, uint64_t remaining, uint64_t reset_ms) {
  if (header_->buckets == 0 || reset_ms <= 1) {
    return;  // nothing to gain from an entry that expires at once
  }
  const uint64_t until = sent_ms + reset_ms - 1;
  const TableKey k = make_table_key(key);
  const uint64_t h = hash_bytes(k.bytes, k.len, header_->seed ^ zone_id ^ (cost * 0x9e3779b97f4a7c15ULL));
  Entry* bucket = entries_ + (h % header_->buckets) * kWays;
  // The same key's entry if present, else the entry that expires first
  // (expired ones first of all): the table never grows, old entries give way.
  Entry* slot = &bucket[0];
  for (size_t i = 0; i < kWays; i++) {
    Entry& e = bucket[i];
    if (e.zone_id == zone_id && e.cost == cost && e.key == k) {
      slot = &e;
      break;
    }
    if (e.held_until_ms < slot->held_until_ms) {
      slot = &e;
    }
  }
  slot->until_ms = until;
  slot->held_until_ms = std::min(until, sent_ms + kMaxRejectionHoldMs);
  slot->zone_id = zone_id;
  slot->limit = limit;
  slot->remaining = remaining;
  slot->cost = cost;
  slot->key = k;
}

}  // namespace rate_guard
