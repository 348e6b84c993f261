// The limiter: the policy applied to one request. Given the request's zones
// (each with its key, cost and limits), it answers from the blocked-key cache
// when it can, asks the checking client otherwise, remembers the rejections
// the client answered, counts every verdict in the metrics, and returns the
// verdict at once or through a callback. The caller (the nginx handler) only
// fills in the zones and translates the verdict.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>

#include "limiter/block_cache.h"
#include "limiter/check_client.h"
#include "limiter/decision.h"
#include "limiter/lease_table.h"
#include "limiter/metrics.h"

namespace rate_guard {

enum class Verdict : uint8_t {
  none,              // not decided yet: the client has the check
  passed,
  rejected,
  rejected_dry_run,  // would have been rejected; a dry run lets it pass
  error,             // the fail policy decides: no answer, or an invalid per-request value
};

// The limiter's books for one zone of a request, beside its ZoneRequest.
struct ZoneBooks {
  uint64_t block_cache_id = 0;  // block_cache_zone_id of the zone with the request's limits
  size_t counters = 0;          // the zone's counters in Metrics
};

struct LimitCheck;
class Limiter;

// Called once with the verdict of a check that waited for the client.
using LimitCallback = void (*)(void* data, LimitCheck& check);

// One request's check, in storage the caller provides (nginx: the request
// pool) and keeps until the verdict came or the check was cancelled. The
// limiter allocates nothing per request.
struct LimitCheck {
  // Filled by the caller.
  const ZoneRequest* zones = nullptr;  // `count` of them, sent to the client as they are
  const ZoneBooks* books = nullptr;    // one per zone
  size_t count = 0;
  bool dry_run = false;                // a rejection passes, counted as a dry-run rejection
  // A zone whose per-request rate or cost was invalid: the fail policy
  // decides without asking the client, counted as invalid in that zone only.
  std::optional<size_t> invalid_zone;

  // Filled by the limiter.
  Verdict verdict = Verdict::none;
  CheckError error = CheckError::none;  // with Verdict::error
  Decision decision;                    // decision.zone_index: the zone that decided
  bool from_block_cache = false;
  bool from_lease = false;  // admitted from a lease: Remaining is an estimate
  // The zones (bit i: zone i) a ban rejected / decided under an override.
  uint32_t banned_zones = 0;
  uint32_t overridden_zones = 0;

  // Whether the client has the check: the callback is still to come.
  bool waiting() const { return pending != nullptr; }

  // The limiter's, while the client has the check.
  CheckClient::PendingCheck* pending = nullptr;
  uint64_t sent_ms = 0;  // when the check went to the client, for the blocked-key cache and leases
  // The one zone sent with a lease asked (zones[0] and the ask), or unused.
  ZoneRequest lease_ask;
  bool asked_lease = false;
  Limiter* limiter = nullptr;
  LimitCallback callback = nullptr;
  void* data = nullptr;
};
static_assert(std::is_trivially_destructible<LimitCheck>::value, "may live in an nginx pool");

// Guards the blocked-key cache and the lease table, which the workers share
// (nginx: the mutex of their shared memory zone).
class CacheLock {
 public:
  virtual ~CacheLock() = default;
  virtual void lock() = 0;
  virtual void unlock() = 0;
};

class Limiter {
 public:
  // `client`: null when there is none (every check goes to the fail policy).
  // `cache`: null without a blocked-key cache; `leases`: null without
  // leases (without both, `lock` is not used).
  // `metrics`: null when nothing is counted.
  Limiter(CheckClient* client, BlockCache* cache, CacheLock* lock, Metrics* metrics,
          LeaseTable* leases = nullptr);

  // The zones of the configuration, with their counters' index: unused
  // lease units are handed back only for a zone found here (a zone a reload
  // changed lets its leases expire).
  struct KnownZone {
    const ZoneConfig* zone;
    size_t counters;
  };
  // `redis_id` (redis_target_id) keeps the leases of one Redis from being
  // used, or handed back, with another after a reload.
  void set_zones(const KnownZone* zones, size_t count, uint64_t redis_id);

  // Decides `check` (its zones filled in, at least one). Returns the verdict
  // when it is known at once; otherwise Verdict::none, and `callback(data,
  // check)` fires once with the verdict, later, unless cancel() came first.
  // `now_ms`: the monotonic clock of the blocked-key cache. Every verdict is
  // counted once, when it is reached.
  Verdict check(LimitCheck& check, uint64_t now_ms, LimitCallback callback, void* data);

  // The callback of `check` will never fire, nor is it counted. Harmless
  // when the check is not waiting.
  void cancel(LimitCheck& check);

  // Hands back the unused units of leases that ended or whose key went
  // idle. Called every few milliseconds by each worker; cheap when no lease
  // holds units.
  void return_leases(uint64_t now_ms);

  // Counts `zone.cost` units (1 or more) of a request after its response
  // (count=after), whether or not they fit: sent with the next batch, never
  // awaited. Counted in the zone's metrics (`books.counters`), as lost at
  // once when Redis is known to be down.
  void charge(const ZoneRequest& zone, const ZoneBooks& books);
  // A charge the client could not deliver (CheckClient::set_charge_lost;
  // `counters`: the tag charge() gave it).
  void charge_lost(uint32_t counters, uint64_t units);
  // A count after the response not made: its cost (a per-request value) was
  // invalid. Counted as an invalid value of the zone.
  void charge_invalid(const ZoneBooks& books);

  // The connection to Redis was lost (a check answered `disconnected` or
  // `unavailable`): what Redis counted may be gone (a restart without its
  // data), so no unit of this server's leases is spent any more.
  void drop_leases();

 private:
  bool answer_here(LimitCheck& check, uint64_t now_ms);
  bool blocked_in_cache(const LimitCheck& check, uint64_t now_ms, CheckOutcome* outcome) const;
  void lease_answered(LimitCheck& check, const CheckOutcome& outcome);
  LeaseZone lease_zone(const LimitCheck& check) const;
  void hand_back(const LeaseReturn& unused);
  const KnownZone* known_zone(const LeaseReturn& unused) const;
  void remember_rejection(const LimitCheck& check, const CheckOutcome& outcome);
  void decide(LimitCheck& check, const CheckOutcome& outcome);
  void count(const LimitCheck& check);
  static void on_client_answer(void* data, const CheckOutcome& outcome);

  CheckClient* client_;
  BlockCache* cache_;
  CacheLock* lock_;
  Metrics* metrics_;
  LeaseTable* leases_;
  const KnownZone* zones_ = nullptr;
  size_t zone_count_ = 0;
  uint64_t redis_id_ = 0;
};

}  // namespace rate_guard
