// The leases of a server. For a key busy on this server, Redis grants units
// ahead with a check (counted there as spent at any moment of the lease's
// life, so the fleet never exceeds the limit however they are spent), and
// every worker spends them locally, without asking Redis, until they run out
// or the lease ends. The table also measures each key's demand on this
// server, to know when to ask for a lease and for how many units: about what
// the key uses in a lease's lifetime. Unused units go back to Redis (see
// take_returns). It lives in memory shared by every worker of a server
// (nginx shared memory); the caller holds the lock around each call.
//
// Local times are the caller's monotonic milliseconds. A lease ends locally
// kLeaseClockMarginMs before the end Redis named, counted from when its check
// was *sent*: the worker's cached clock may lag the real time a little.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/zone_config.h"
#include "limiter/check_client.h"
#include "limiter/table_key.h"

namespace rate_guard {

constexpr uint64_t kLeaseClockMarginMs = 2;
// A key is leased when it is expected to use at least this many units in a
// lease's lifetime on this server: below, leases would save little.
constexpr uint64_t kMinLeaseDemand = 4;

// A zone with the limits of a request, as the table knows it.
struct LeaseZone {
  uint64_t zone_id = 0;  // block_cache_zone_id(zone, limits)
  Algorithm algorithm = Algorithm::sliding_window;
  RequestLimits limits;
  uint64_t lease_ms = 0;  // lease_time=
};

// What one request does with the leases of its key.
struct LeaseUse {
  bool spent = false;     // admitted from a lease
  uint64_t limit = 0;     // with `spent`: the headers' limit
  uint64_t remaining = 0; // with `spent`: an estimate (other servers spend too)
  uint64_t ask = 0;       // > 0: the request goes to Redis asking for this many units
  uint64_t lost_units = 0;  // of an entry evicted to make room: never handed back
};

// Unused units of a grant, taken out of the table to be handed back.
struct LeaseReturn {
  uint64_t zone_id;
  Algorithm algorithm;
  RequestLimits limits;
  TableKey key;
  uint64_t mark;
  uint64_t granted;
  uint64_t units;
};

class LeaseTable {
 public:
  // Lays a table over `bytes` of `memory` (8-byte aligned). `initialize`
  // clears it (a new shared zone); otherwise the entries there are kept (a
  // reload that kept the zone: leases of unchanged zones stay usable).
  LeaseTable(void* memory, size_t bytes, bool initialize);

  static size_t entry_size();
  size_t capacity() const;

  // A request of `cost` of `key` (at most kMaxRawKeyBytes: a longer one
  // could not be handed back) in `zone`, at `now_ms`: spends from a lease
  // when one holds the units, unless the key needs its next lease, which
  // this request then asks for (and no other request of the server asks
  // until the answer or `ask_timeout_ms`). Without `may_ask` (the key is
  // blocked: Redis would reject the request), it spends or does nothing.
  LeaseUse use(const LeaseZone& zone, std::string_view key, uint64_t cost, uint64_t now_ms,
               uint64_t ask_timeout_ms, bool may_ask = true);

  // The answer to a request that asked, sent at `sent_ms`: `grant` (units 0:
  // none; a failed check: none), `limit` and `remaining` as Redis answered
  // the request (remaining not counting the grant). Returns true with
  // `*displaced` filled when units must be handed back at once: a grant too
  // short to use, or an older one that gave way. Units of another key
  // evicted to make room are added to `*lost_units`.
  bool granted(const LeaseZone& zone, std::string_view key, const LeaseGrant& grant, uint64_t limit,
               uint64_t remaining, uint64_t sent_ms, uint64_t now_ms, LeaseReturn* displaced,
               uint64_t* lost_units);

  // Takes out up to `max` grants whose units should go back: the lease ended,
  // or its key had no request for half a lease time. Returns how many.
  size_t take_returns(uint64_t now_ms, LeaseReturn* out, size_t max);

  // Every unit of every lease dropped, not handed back (Redis lost what it
  // counted: a restart). Returns how many.
  uint64_t drop_all();

  // Whether some grant holds units: read without the lock, for a timer.
  bool has_units() const;

 private:
  struct Header;
  struct Grant;
  struct Entry;
  Entry* find(uint64_t zone_id, const TableKey& key, bool add, uint64_t now_ms, uint64_t* lost_units);
  void set_units(Grant& grant, uint64_t units);

  Header* header_;
  Entry* entries_;
};

}  // namespace rate_guard
