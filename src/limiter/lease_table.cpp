#include "limiter/lease_table.h"

#include <algorithm>
#include <cstring>

namespace rate_guard {

namespace {

constexpr uint64_t kMagic = 0x72676c6561736531ULL;  // "rglease1"
constexpr size_t kWays = 4;                         // entries per bucket
constexpr size_t kGrants = 2;                       // the lease in use and the next one

}  // namespace

static_assert(std::atomic<uint64_t>::is_always_lock_free, "the header is shared between processes");

struct LeaseTable::Header {
  uint64_t magic;
  uint64_t seed;
  uint64_t buckets;
  std::atomic<uint64_t> grants_with_units;
};

struct LeaseTable::Grant {
  uint64_t units;     // left to spend; 0: none
  uint64_t granted;   // units of the grant, for its hand-back
  uint64_t until_ms;  // spendable while now < until_ms
  uint64_t life_ms;   // as granted
  uint64_t mark;      // names the grant in Redis
  uint64_t limit;     // as Redis answered the check that asked
  uint64_t remaining; // Redis's remaining once the grant was counted
};

struct LeaseTable::Entry {
  uint64_t zone_id;  // 0: empty
  uint64_t last_ms;  // the key's last request here
  // Demand: requests of the key in the current period (one lease time
  // long, from period_ms) and in the one before.
  uint64_t period_ms;
  uint64_t period_count;
  uint64_t previous_count;
  uint64_t asking_until_ms;  // a request asking for a lease is out until then
  uint64_t lease_ms;
  RequestLimits limits;
  Algorithm algorithm;
  Grant grants[kGrants];
  TableKey key;
};

// (The cleared header's count of grants with units is 0.)
LeaseTable::LeaseTable(void* memory, size_t bytes, bool initialize)
    : header_(lay_out_table<Header, Entry>(memory, bytes, kWays, kMagic, initialize)),
      entries_(reinterpret_cast<Entry*>(static_cast<char*>(memory) + sizeof(Header))) {}

size_t LeaseTable::entry_size() {
  return sizeof(Entry);
}

size_t LeaseTable::capacity() const {
  return header_->buckets * kWays;
}

bool LeaseTable::has_units() const {
  return header_->grants_with_units.load(std::memory_order_relaxed) != 0;
}

void LeaseTable::set_units(Grant& grant, uint64_t units) {
  if (grant.units == 0 && units != 0) {
    header_->grants_with_units.fetch_add(1, std::memory_order_relaxed);
  } else if (grant.units != 0 && units == 0) {
    header_->grants_with_units.fetch_sub(1, std::memory_order_relaxed);
  }
  grant.units = units;
}

// The key's entry; with `add`, made when missing, in place of the bucket's
// entry least worth keeping: an empty one, else one without units, else
// the least recently used (its units lost, added to *lost_units).
LeaseTable::Entry* LeaseTable::find(uint64_t zone_id, const TableKey& key, bool add, uint64_t now_ms,
                                    uint64_t* lost_units) {
  if (header_->buckets == 0) {
    return nullptr;
  }
  const uint64_t h = hash_bytes(key.bytes, key.len, header_->seed ^ zone_id);
  Entry* bucket = entries_ + (h % header_->buckets) * kWays;
  Entry* victim = nullptr;
  int victim_kind = 3;
  uint64_t victim_last_ms = UINT64_MAX;
  for (size_t i = 0; i < kWays; i++) {
    Entry& e = bucket[i];
    if (e.zone_id == zone_id && e.key == key) {
      return &e;
    }
    uint64_t units = 0;
    for (const Grant& g : e.grants) {
      units += g.units;
    }
    // Evicted first: an empty entry, then one without units, then the oldest.
    const int kind = e.zone_id == 0 ? 0 : (units == 0 ? 1 : 2);
    if (kind < victim_kind || (kind == victim_kind && e.last_ms < victim_last_ms)) {
      victim = &e;
      victim_kind = kind;
      victim_last_ms = e.last_ms;
    }
  }
  if (!add) {
    return nullptr;
  }
  for (Grant& g : victim->grants) {
    *lost_units += g.units;
    set_units(g, 0);
  }
  std::memset(static_cast<void*>(victim), 0, sizeof(Entry));
  victim->zone_id = zone_id;
  victim->key = key;
  victim->period_ms = now_ms;
  victim->last_ms = now_ms;  // (not idle, nor the first to go, before its first request)
  return victim;
}

LeaseUse LeaseTable::use(const LeaseZone& zone, std::string_view key, uint64_t cost, uint64_t now_ms,
                         uint64_t ask_timeout_ms, bool may_ask) {
  LeaseUse use;
  const TableKey k = make_table_key(key);
  Entry* e = find(zone.zone_id, k, true, now_ms, &use.lost_units);
  if (e == nullptr) {
    return use;
  }
  e->last_ms = now_ms;
  e->lease_ms = zone.lease_ms;
  e->limits = zone.limits;
  e->algorithm = zone.algorithm;

  // Demand: the units this key takes in a lease time here, from the last
  // full period, or from this one once half of it has passed (sooner, two
  // requests close together would pass for a busy key).
  const uint64_t lease_ms = std::max<uint64_t>(zone.lease_ms, 1);
  // A worker whose clock read a little before another's counts in its period.
  if (now_ms < e->period_ms && e->period_ms - now_ms < lease_ms) {
    now_ms = e->period_ms;
  }
  uint64_t elapsed = now_ms - e->period_ms;
  if (now_ms < e->period_ms || elapsed >= lease_ms) {
    // The period ended with the first request after it: scaled to a lease time.
    e->previous_count = (now_ms >= e->period_ms && elapsed < 2 * lease_ms) ? e->period_count * lease_ms / elapsed : 0;
    e->period_ms = now_ms;
    e->period_count = 0;
    elapsed = 0;
  }
  e->period_count += cost;
  uint64_t demand = e->previous_count;
  if (elapsed >= lease_ms / 2 && elapsed > 0) {
    // The requests after the period's first, over the time since it.
    demand = std::max(demand, (e->period_count - cost) * lease_ms / elapsed);
  }

  // The live grants: what they hold, and the one that lasts longest.
  uint64_t units = 0;
  const Grant* latest = nullptr;
  Grant* spend_from = nullptr;
  for (Grant& g : e->grants) {
    if (g.units == 0 || g.until_ms <= now_ms) {
      continue;
    }
    units += g.units;
    if (latest == nullptr || g.until_ms > latest->until_ms) {
      latest = &g;
    }
    if (g.units >= cost && (spend_from == nullptr || g.until_ms < spend_from->until_ms)) {
      spend_from = &g;  // the one that ends first
    }
  }

  // The next lease is asked for before this one runs out: when less than
  // half of what the key will take until the lease ends is left, or less
  // than half a lease time. Not for time when Redis cut the last lease
  // short (the end of its sub-window or window): one asked now would end no
  // later.
  // What the key will take before the latest lease ends, at its demand.
  const uint64_t need =
      latest == nullptr ? demand : demand * std::min(latest->until_ms - now_ms, lease_ms) / lease_ms;
  const bool running_out = units < std::max<uint64_t>(1, need / 2);
  const bool ending = latest != nullptr && latest->until_ms < now_ms + lease_ms / 2 &&
                      latest->life_ms + kLeaseClockMarginMs >= lease_ms;
  const bool needs_next = latest == nullptr || running_out || ending;
  if (may_ask && demand >= kMinLeaseDemand && needs_next && e->asking_until_ms <= now_ms) {
    e->asking_until_ms = now_ms + ask_timeout_ms;
    // Running out: what tops the units still held up to what the key will
    // take (more would sit unused, stranded); ending: a lease time's worth.
    use.ask = (latest == nullptr || ending || units >= need) ? demand : std::max(need - units, kMinLeaseDemand);
    return use;
  }
  if (spend_from == nullptr) {
    return use;
  }
  set_units(*spend_from, spend_from->units - cost);
  use.spent = true;
  use.limit = spend_from->limit;
  // What Redis had left once the newest grant was counted, and what the
  // leases here still hold.
  const Grant* newest = spend_from;
  for (const Grant& g : e->grants) {
    if (g.units != 0 && g.until_ms > now_ms && g.until_ms > newest->until_ms) {
      newest = &g;
    }
  }
  use.remaining = newest->remaining + units - cost;
  return use;
}

bool LeaseTable::granted(const LeaseZone& zone, std::string_view key, const LeaseGrant& grant, uint64_t limit,
                         uint64_t remaining, uint64_t sent_ms, uint64_t now_ms, LeaseReturn* displaced,
                         uint64_t* lost_units) {
  const TableKey k = make_table_key(key);
  Entry* e = find(zone.zone_id, k, grant.units > 0, now_ms, lost_units);
  if (e != nullptr) {
    e->asking_until_ms = 0;
  }
  if (grant.units == 0) {
    return false;
  }
  auto give_back = [&](uint64_t mark, uint64_t granted, uint64_t units) {
    *displaced = {zone.zone_id, zone.algorithm, zone.limits, k, mark, granted, units};
    return true;
  };
  const uint64_t until = sent_ms + grant.lease_ms;
  if (e == nullptr || until <= now_ms + kLeaseClockMarginMs) {
    return give_back(grant.mark, grant.units, grant.units);  // too late to be of use
  }
  // An empty place, else the grant that ends first gives way.
  Grant* slot = &e->grants[0];
  for (Grant& g : e->grants) {
    if (g.units == 0) {
      slot = &g;
      break;
    }
    if (g.until_ms < slot->until_ms) {
      slot = &g;
    }
  }
  bool returning = false;
  if (slot->units != 0) {
    returning = give_back(slot->mark, slot->granted, slot->units);
  }
  set_units(*slot, grant.units);
  slot->granted = grant.units;
  slot->until_ms = until - kLeaseClockMarginMs;
  slot->life_ms = grant.lease_ms;
  slot->mark = grant.mark;
  slot->limit = limit;
  slot->remaining = remaining >= grant.units ? remaining - grant.units : 0;
  return returning;
}

size_t LeaseTable::take_returns(uint64_t now_ms, LeaseReturn* out, size_t max) {
  size_t n = 0;
  const size_t count = header_->buckets * kWays;
  for (size_t i = 0; i < count && n < max && has_units(); i++) {
    Entry& e = entries_[i];
    if (e.zone_id == 0) {
      continue;
    }
    // (another worker may have read a later millisecond than this one)
    const bool idle = now_ms > e.last_ms && now_ms - e.last_ms >= std::max<uint64_t>(e.lease_ms / 2, 1);
    for (Grant& g : e.grants) {
      if (g.units != 0 && (g.until_ms <= now_ms || idle) && n < max) {
        out[n++] = {e.zone_id, e.algorithm, e.limits, e.key, g.mark, g.granted, g.units};
        set_units(g, 0);
      }
    }
  }
  return n;
}

uint64_t LeaseTable::drop_all() {
  uint64_t units = 0;
  const size_t count = header_->buckets * kWays;
  for (size_t i = 0; i < count && has_units(); i++) {
    for (Grant& g : entries_[i].grants) {
      units += g.units;
      set_units(g, 0);
    }
  }
  return units;
}

}  // namespace rate_guard
