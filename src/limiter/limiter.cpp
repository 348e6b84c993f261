#include "limiter/limiter.h"

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

void bump(std::atomic<uint64_t>& counter) {
  counter.fetch_add(1, std::memory_order_relaxed);
}

}  // namespace

Limiter::Limiter(CheckClient* client, BlockCache* cache, CacheLock* lock, Metrics* metrics)
    : client_(client), cache_(cache), lock_(lock), metrics_(metrics) {}

Verdict Limiter::check(LimitCheck& check, uint64_t now_ms, LimitCallback callback, void* data) {
  CheckOutcome immediate;
  if (check.invalid_zone) {
    immediate.error = CheckError::unavailable;
    immediate.decision.zone_index = *check.invalid_zone;
  } else if (client_ == nullptr) {
    immediate.error = CheckError::unavailable;
  } else if (answer_from_block_cache(check, now_ms)) {
    count(check);
    return check.verdict;
  } else {
    check.limiter = this;
    check.callback = callback;
    check.data = data;
    check.sent_ms = now_ms;
    check.pending = client_->check(check.zones, check.count, on_client_answer, &check, &immediate);
    if (check.pending != nullptr) {
      return Verdict::none;
    }
  }
  decide(check, immediate);
  count(check);
  return check.verdict;
}

void Limiter::cancel(LimitCheck& check) {
  // Without a client (nginx: after the worker's exit) there is nothing to cancel.
  if (check.pending != nullptr && client_ != nullptr) {
    client_->cancel(check.pending);
  }
  check.pending = nullptr;
}

void Limiter::on_client_answer(void* data, const CheckOutcome& outcome) {
  auto& check = *static_cast<LimitCheck*>(data);
  Limiter* self = check.limiter;
  check.pending = nullptr;
  self->remember_rejection(check, outcome);
  self->decide(check, outcome);
  self->count(check);
  check.callback(check.data, check);
}

// A key known to be blocked is rejected here, without the client, with the
// same numbers the client gave.
bool Limiter::answer_from_block_cache(LimitCheck& check, uint64_t now_ms) {
  if (cache_ == nullptr) {
    return false;
  }
  CachedRejection hit;
  Locked locked(lock_);
  for (size_t i = 0; i < check.count; i++) {
    const ZoneRequest& request = check.zones[i];
    if (cache_->lookup(check.books[i].block_cache_id, request.key, request.cost, now_ms, &hit)) {
      CheckOutcome outcome;
      outcome.decision = {false, i, hit.limit, hit.remaining, hit.reset_ms};
      decide(check, outcome);
      check.from_block_cache = true;
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
  cache_->record(check.books[d.zone_index].block_cache_id, request.key, request.cost, check.sent_ms, d.limit,
                 d.remaining, d.reset_ms);
}

void Limiter::decide(LimitCheck& check, const CheckOutcome& outcome) {
  check.error = outcome.error;
  check.decision = outcome.decision;
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
}

}  // namespace rate_guard
