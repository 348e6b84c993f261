// What the limiter asks of a checking client: check one request's zones,
// answer later through a callback, and cancel. RedisChecker is the real one;
// the limiter's tests use a fake.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/zone_config.h"
#include "limiter/decision.h"

namespace rate_guard {

// One zone of a request's check.
struct ZoneRequest {
  const ZoneConfig* zone = nullptr;
  std::string_view key;  // the client key; binary-safe
  // 0: count=after's check before the request, which asks whether a request
  // of cost 1 would pass and counts nothing (the count comes after the
  // response, see CheckClient::charge).
  uint64_t cost = 1;
  RequestLimits limits;  // the zone's, or this request's for a variable rate
  // A lease asked along with the request (one-zone checks only): up to
  // `lease_units` more units, spendable by this server for at most
  // `lease_ms`. 0: none asked.
  uint64_t lease_units = 0;
  uint64_t lease_ms = 0;
};

// What Redis granted along with an allowed request (see ZoneRequest):
// `units` (0: nothing granted) counted by Redis as spent at any moment of
// the next `lease_ms`, measured from Redis's time of the check; `mark`
// names the grant when unused units are handed back.
struct LeaseGrant {
  uint64_t units = 0;
  uint64_t lease_ms = 0;
  uint64_t mark = 0;
};

enum class CheckError : uint8_t {
  none,
  unavailable,   // Redis is known to be unreachable: decided at once
  timeout,       // no answer within `timeout`
  disconnected,  // the connection dropped with the check in flight
  redis_error,   // an error reply (script error, OOM, READONLY, ...)
  bad_reply,     // a reply the module cannot read
};
std::string_view check_error_name(CheckError error);

struct CheckOutcome {
  CheckError error = CheckError::none;  // none: `decision` holds the answer
  Decision decision;
  LeaseGrant lease;  // with a lease asked and the request allowed
  // The zones (bit i: zone i, the first 32) that a ban written to Redis
  // rejected, and those decided under an override (a rate or unlimited).
  uint32_t banned_zones = 0;
  uint32_t overridden_zones = 0;
};

// Called for a charge (CheckClient::charge) Redis never recorded, with its
// `tag` and units.
using ChargeLostCallback = void (*)(void* data, uint32_t tag, uint64_t units);

// Called once with the outcome, unless the check was cancelled first.
using CheckCallback = void (*)(void* data, const CheckOutcome& outcome);

class CheckClient {
 public:
  // A check in flight. Opaque to the caller, who only hands it back to
  // cancel(); the client of the program defines it (RedisChecker does).
  struct PendingCheck;

  virtual ~CheckClient() = default;

  // Checks one request's `zones` (read during the call only). Returns the
  // pending check, whose callback fires later, never from inside check();
  // or nullptr when the outcome is known at once, written to `*immediate`,
  // and the callback never fires.
  virtual PendingCheck* check(const ZoneRequest* zones, size_t count, CheckCallback callback, void* data,
                              CheckOutcome* immediate) = 0;

  // The callback of `pending` will never fire. Safe at any time before it fired.
  virtual void cancel(PendingCheck* pending) = 0;

  // Gives back `units` never spent of a grant of `granted` units named
  // `mark`, for `zone` (its key, zone and limits; cost and lease fields
  // unused). Sent with the next batch; no answer is awaited, and one that is
  // lost leaves the units counted until they leave the window (bounded).
  virtual void hand_back(const ZoneRequest& zone, uint64_t mark, uint64_t granted, uint64_t units) = 0;

  // Counts `zone.cost` units (1 or more) for `zone` after the response
  // (count=after), whether or not they fit its limit: the request was
  // served. Sent with the next batch; nobody waits for it. False when it
  // cannot be sent (Redis known to be down); otherwise, should Redis never
  // record it (an error, the connection lost), the callback of
  // set_charge_lost() fires later with `tag`.
  virtual bool charge(const ZoneRequest& zone, uint32_t tag) = 0;
  virtual void set_charge_lost(ChargeLostCallback callback, void* data) = 0;
};

}  // namespace rate_guard
