#include "limiter/limiter.h"

#include <algorithm>
#include <atomic>

namespace rate_guard {
namespace {

class Locked {
 public:
  explicit Locked(CacheLock* lock) : lock_(lock) { lock_->lock(); }
  ~Locked() { lock_->unlock(); }
  Locked(const Locked&) = delete;
  Locked& operator=(const Locked&) = delete;

 private:
  CacheLock* lock_;
};

void bump(std::atomic<uint64_t>& counter, uint64_t by = 1) {
  counter.fetch_add(by, std::memory_order_relaxed);
}

// A request asking for a lease keeps the others of its server from asking
// until its answer, or this long (a check the client cancelled).
constexpr uint64_t kLeaseAskTimeoutMs = 1000;

// Unused grants handed back per call of return_leases().
constexpr size_t kReturnsPerCall = 64;

// count=after's check before the request (cost 0) asks what a request of
// cost 1 asks: they share the blocked-key cache's entries.
uint64_t cached_cost(const ZoneRequest& request) {
  return request.cost == 0 ? 1 : request.cost;
}

}  // namespace

Limiter::Limiter(CheckClient* client, BlockCache* cache, CacheLock* lock, Metrics* metrics, LeaseTable* leases)
    : client_(client), cache_(cache), lock_(lock), metrics_(metrics), leases_(leases) {}

void Limiter::set_zones(const KnownZone* zones, size_t count, uint64_t redis_id) {
  zones_ = zones;
  zone_count_ = count;
  redis_id_ = redis_id * 0x9e3779b97f4a7c15ULL;
}

Verdict Limiter::check(LimitCheck& check, uint64_t now_ms, LimitCallback callback, void* data) {
  CheckOutcome immediate;
  if (check.invalid_zone) {
    immediate.error = CheckError::unavailable;
    immediate.decision.zone_index = *check.invalid_zone;
  } else if (client_ == nullptr) {
    immediate.error = CheckError::unavailable;
  } else if (answer_here(check, now_ms)) {
    count(check);
    return check.verdict;
  } else {
    check.limiter = this;
    check.callback = callback;
    check.data = data;
    check.sent_ms = now_ms;
    const ZoneRequest* zones = check.asked_lease ? &check.lease_ask : check.zones;
    check.pending = client_->check(zones, check.count, on_client_answer, &check, &immediate);
    if (check.pending != nullptr) {
      return Verdict::none;
    }
    if (immediate.error == CheckError::unavailable) {
      drop_leases();  // Redis is known to be down
    }
  }
  if (check.asked_lease) {
    lease_answered(check, immediate);
  }
  decide(check, immediate);
  count(check);
  return check.verdict;
}

void Limiter::cancel(LimitCheck& check) {
  // Without a client (nginx: after the worker's exit) there is nothing to cancel.
  if (check.pending != nullptr && client_ != nullptr) {
    client_->cancel(check.pending);
    if (check.asked_lease) {
      // Let another request ask (a grant this one had would be lost: its
      // units stay counted until they leave the window).
      lease_answered(check, CheckOutcome{CheckError::unavailable, {}, {}});
    }
  }
  check.pending = nullptr;
}

void Limiter::on_client_answer(void* data, const CheckOutcome& outcome) {
  auto& check = *static_cast<LimitCheck*>(data);
  Limiter* self = check.limiter;
  check.pending = nullptr;
  if (outcome.error == CheckError::disconnected) {
    self->drop_leases();
  }
  if (check.asked_lease) {
    self->lease_answered(check, outcome);
  }
  self->remember_rejection(check, outcome);
  self->decide(check, outcome);
  self->count(check);
  check.callback(check.data, check);
}

LeaseZone Limiter::lease_zone(const LimitCheck& check) const {
  const ZoneRequest& request = check.zones[0];
  return {check.books[0].block_cache_id ^ redis_id_, request.zone->algorithm, request.limits,
          request.zone->lease_ms};
}

// A one-zone request of a key busy here passes on a lease's units, without
// Redis; or it carries the ask for the key's next lease to Redis.
// Answers without Redis when it can: from a lease's units (a one-zone
// request of a key busy here), else from the blocked-key cache. A request
// that goes to Redis may carry the ask for its key's next lease (never for
// a blocked key).
bool Limiter::answer_here(LimitCheck& check, uint64_t now_ms) {
  // (count=after's check before the request, cost 0, counts nothing: no lease)
  const bool leased = leases_ != nullptr && check.count == 1 && check.zones[0].zone->lease &&
                      check.zones[0].cost != 0 && check.zones[0].key.size() <= kMaxRawKeyBytes;
  if (!leased && cache_ == nullptr) {
    return false;
  }
  Locked locked(lock_);
  CheckOutcome blocked;
  const bool is_blocked = blocked_in_cache(check, now_ms, &blocked);
  if (leased) {
    const ZoneRequest& request = check.zones[0];
    const LeaseUse use =
        leases_->use(lease_zone(check), request.key, request.cost, now_ms, kLeaseAskTimeoutMs, !is_blocked);
    if (metrics_ != nullptr && use.lost_units != 0) {
      bump(metrics_->zone(check.books[0].counters).lease_units_expired, use.lost_units);
    }
    if (use.spent) {
      CheckOutcome outcome;
      outcome.decision = {true, 0, use.limit, use.remaining, 0};
      decide(check, outcome);
      check.from_lease = true;
      return true;
    }
    if (use.ask != 0) {
      check.lease_ask = request;
      // never more than the zone could ever grant (the script refuses past 2^30)
      check.lease_ask.lease_units = std::min(use.ask, std::max(request.limits.limit, request.limits.burst));
      check.lease_ask.lease_ms = request.zone->lease_ms;
      check.asked_lease = true;
    }
  }
  if (is_blocked) {
    decide(check, blocked);
    check.from_block_cache = true;
  }
  return is_blocked;
}

// The answer to a request that asked for a lease: the grant, if any, goes
// to the table, and the ask is over either way.
void Limiter::lease_answered(LimitCheck& check, const CheckOutcome& outcome) {
  check.asked_lease = false;
  LeaseGrant grant;
  if (outcome.error == CheckError::none && outcome.decision.allowed) {
    grant = outcome.lease;
  }
  LeaseReturn displaced;
  uint64_t lost_units = 0;
  bool returning;
  {
    Locked locked(lock_);
    returning = leases_->granted(lease_zone(check), check.zones[0].key, grant, outcome.decision.limit,
                                 outcome.decision.remaining, check.sent_ms, check.sent_ms, &displaced,
                                 &lost_units);
  }
  if (metrics_ != nullptr) {
    ZoneCounters& zone = metrics_->zone(check.books[0].counters);
    if (grant.units != 0) {
      bump(zone.lease_grants);
      bump(zone.lease_units_granted, grant.units);
    }
    bump(zone.lease_units_expired, lost_units);  // as in answer_here, in the zone that evicted
  }
  if (returning) {
    hand_back(displaced);
  }
}

const Limiter::KnownZone* Limiter::known_zone(const LeaseReturn& unused) const {
  for (size_t i = 0; i < zone_count_; i++) {
    if ((block_cache_zone_id(*zones_[i].zone, unused.limits) ^ redis_id_) == unused.zone_id) {
      return &zones_[i];
    }
  }
  return nullptr;
}

// Unused units back to Redis; token_bucket's cannot go back (see the
// script), and a zone a reload changed is no longer known: those expire.
void Limiter::hand_back(const LeaseReturn& unused) {
  const KnownZone* known = known_zone(unused);
  if (known == nullptr) {
    return;
  }
  ZoneCounters* counters = metrics_ != nullptr ? &metrics_->zone(known->counters) : nullptr;
  if (unused.algorithm == Algorithm::token_bucket || client_ == nullptr) {
    if (counters != nullptr) {
      bump(counters->lease_units_expired, unused.units);
    }
    return;
  }
  ZoneRequest zone;
  zone.zone = known->zone;
  zone.key = unused.key.raw();
  zone.limits = unused.limits;
  client_->hand_back(zone, unused.mark, unused.granted, unused.units);
  if (counters != nullptr) {
    bump(counters->lease_units_returned, unused.units);
  }
}

void Limiter::return_leases(uint64_t now_ms) {
  if (leases_ == nullptr || !leases_->has_units()) {
    return;
  }
  LeaseReturn unused[kReturnsPerCall];
  size_t n;
  {
    Locked locked(lock_);
    n = leases_->take_returns(now_ms, unused, kReturnsPerCall);
  }
  for (size_t i = 0; i < n; i++) {
    hand_back(unused[i]);
  }
}

void Limiter::charge(const ZoneRequest& zone, const ZoneBooks& books) {
  const bool sent = client_ != nullptr && zone.cost != 0 && client_->charge(zone, static_cast<uint32_t>(books.counters));
  if (metrics_ != nullptr) {
    ZoneCounters& counters = metrics_->zone(books.counters);
    bump(counters.after_counts);
    bump(counters.after_units, zone.cost);
    if (!sent) {
      bump(counters.after_counts_lost);
    }
  }
}

void Limiter::charge_lost(uint32_t counters, uint64_t) {
  if (metrics_ != nullptr && counters < metrics_->zone_count()) {
    bump(metrics_->zone(counters).after_counts_lost);
  }
}

void Limiter::charge_invalid(const ZoneBooks& books) {
  if (metrics_ != nullptr) {
    bump(metrics_->zone(books.counters).invalid_value);
  }
}

void Limiter::drop_leases() {
  if (leases_ == nullptr || !leases_->has_units()) {
    return;
  }
  Locked locked(lock_);
  leases_->drop_all();
}

// A key known to be blocked is rejected with the same numbers the client
// gave, without asking it. The caller holds the lock.
bool Limiter::blocked_in_cache(const LimitCheck& check, uint64_t now_ms, CheckOutcome* outcome) const {
  if (cache_ == nullptr) {
    return false;
  }
  CachedRejection hit;
  for (size_t i = 0; i < check.count; i++) {
    const ZoneRequest& request = check.zones[i];
    if (cache_->lookup(check.books[i].block_cache_id, request.key, cached_cost(request), now_ms, &hit)) {
      outcome->decision = {false, i, hit.limit, hit.remaining, hit.reset_ms};
      return true;
    }
  }
  return false;
}

void Limiter::remember_rejection(const LimitCheck& check, const CheckOutcome& outcome) {
  if (cache_ == nullptr || outcome.error != CheckError::none || outcome.decision.allowed) {
    return;
  }
  const Decision& d = outcome.decision;
  const ZoneRequest& request = check.zones[d.zone_index];
  Locked locked(lock_);
  cache_->record(check.books[d.zone_index].block_cache_id, request.key, cached_cost(request), check.sent_ms,
                 d.limit, d.remaining, d.reset_ms);
}

void Limiter::decide(LimitCheck& check, const CheckOutcome& outcome) {
  check.error = outcome.error;
  check.decision = outcome.decision;
  check.banned_zones = outcome.banned_zones;
  check.overridden_zones = outcome.overridden_zones;
  if (outcome.error != CheckError::none) {
    check.verdict = Verdict::error;
  } else if (outcome.decision.allowed) {
    check.verdict = Verdict::passed;
  } else {
    check.verdict = check.dry_run ? Verdict::rejected_dry_run : Verdict::rejected;
  }
}

// A passed request or a fail-policy decision counts in every zone of the
// request; a rejection, or an invalid per-request value, in the zone that
// decided; a rejection from the blocked-key cache also as a cache hit.
void Limiter::count(const LimitCheck& check) {
  if (metrics_ == nullptr) {
    return;
  }
  ZoneCounters& decider = metrics_->zone(check.books[check.decision.zone_index].counters);
  switch (check.verdict) {
    case Verdict::error:
      if (check.invalid_zone) {
        bump(decider.invalid_value);
        break;
      }
      [[fallthrough]];
    case Verdict::passed:
      for (size_t i = 0; i < check.count; i++) {
        ZoneCounters& zone = metrics_->zone(check.books[i].counters);
        bump(check.verdict == Verdict::passed ? zone.passed : zone.fail_policy);
      }
      if (check.from_lease) {
        bump(decider.lease_requests);
      }
      break;
    case Verdict::rejected:
      bump(decider.rejected);
      break;
    case Verdict::rejected_dry_run:
      bump(decider.rejected_dry_run);
      break;
    case Verdict::none:
      break;
  }
  if (check.from_block_cache) {
    bump(decider.block_cache_hits);
  }
  for (size_t i = 0; i < check.count && i < 32 && (check.banned_zones | check.overridden_zones) != 0; i++) {
    if ((check.banned_zones >> i & 1) != 0) {
      bump(metrics_->zone(check.books[i].counters).banned);
    }
    if ((check.overridden_zones >> i & 1) != 0) {
      bump(metrics_->zone(check.books[i].counters).overridden);
    }
  }
}

}  // namespace rate_guard
