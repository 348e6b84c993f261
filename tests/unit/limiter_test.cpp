// The limiter's policy, driven with a fake checking client, a real
// blocked-key cache over plain memory and real metrics: no Redis.
#include "limiter/limiter.h"

#include <gtest/gtest.h>

#include <deque>
#include <string>
#include <vector>

namespace rate_guard {
namespace {

// Records every check; answers one when the test says; honours cancel().
class FakeCheckClient : public CheckClient {
 public:
  struct Asked {
    std::vector<std::string> keys;
    std::vector<uint64_t> costs;
    uint64_t lease_units = 0;  // of the first zone
    uint64_t lease_ms = 0;
    CheckCallback callback = nullptr;
    void* data = nullptr;
    bool cancelled = false;
    bool answered = false;
  };

  PendingCheck* check(const ZoneRequest* zones, size_t count, CheckCallback callback, void* data,
                      CheckOutcome* immediate) override {
    if (down) {
      immediate->error = CheckError::unavailable;
      return nullptr;
    }
    Asked& asked = asked_.emplace_back();
    for (size_t i = 0; i < count; i++) {
      asked.keys.emplace_back(zones[i].key);
      asked.costs.push_back(zones[i].cost);
    }
    asked.lease_units = zones[0].lease_units;
    asked.lease_ms = zones[0].lease_ms;
    asked.callback = callback;
    asked.data = data;
    // The handle is the record's address: the caller never looks inside.
    return reinterpret_cast<PendingCheck*>(&asked);
  }

  void cancel(PendingCheck* pending) override { reinterpret_cast<Asked*>(pending)->cancelled = true; }

  struct HandBack {
    std::string key;
    uint64_t mark, granted, units;
  };
  void hand_back(const ZoneRequest& zone, uint64_t mark, uint64_t granted, uint64_t units) override {
    handed_back.push_back({std::string(zone.key), mark, granted, units});
  }
  std::vector<HandBack> handed_back;

  struct Charge {
    std::string key;
    uint64_t cost;
    uint32_t tag;
  };
  bool charge(const ZoneRequest& zone, uint32_t tag) override {
    if (down) {
      return false;
    }
    charged.push_back({std::string(zone.key), zone.cost, tag});
    return true;
  }
  void set_charge_lost(ChargeLostCallback callback, void* data) override {
    lost_callback = callback;
    lost_data = data;
  }
  // What the real client does with a charge Redis did not record.
  void lose(size_t index) { lost_callback(lost_data, charged.at(index).tag, charged.at(index).cost); }
  std::vector<Charge> charged;
  ChargeLostCallback lost_callback = nullptr;
  void* lost_data = nullptr;

  // Answers check `index` as the real client would: never once cancelled.
  void answer(size_t index, const CheckOutcome& outcome) {
    Asked& asked = asked_.at(index);
    ASSERT_FALSE(asked.answered);
    if (asked.cancelled) {
      return;
    }
    asked.answered = true;
    asked.callback(asked.data, outcome);
  }

  size_t checks() const { return asked_.size(); }
  const Asked& asked(size_t index) const { return asked_.at(index); }

  bool down = false;  // Redis known to be unreachable: checks are decided at once

 private:
  std::deque<Asked> asked_;  // addresses stay put
};

class NoLock : public CacheLock {
 public:
  void lock() override { locks++; }
  void unlock() override { unlocks++; }
  int locks = 0;
  int unlocks = 0;
};

CheckOutcome allowed(size_t zone, uint64_t limit, uint64_t remaining) {
  CheckOutcome outcome;
  outcome.decision = {true, zone, limit, remaining, 0};
  return outcome;
}

CheckOutcome rejected(size_t zone, uint64_t limit, uint64_t reset_ms) {
  CheckOutcome outcome;
  outcome.decision = {false, zone, limit, 0, reset_ms};
  return outcome;
}

CheckOutcome failed(CheckError error) {
  CheckOutcome outcome;
  outcome.error = error;
  return outcome;
}

// Two zones, "per_ip" (10 per minute) and "per_key" (100 per minute), with
// counters, a blocked-key cache and the fake client.
class LimiterTest : public ::testing::Test {
 protected:
  LimiterTest()
      : cache_memory_(64 * 1024 / 8),
        cache_(cache_memory_.data(), 64 * 1024, true),
        metrics_memory_(Metrics::bytes_for(2) / 8 + 1, 0),
        metrics_(metrics_memory_.data(), {"per_ip", "per_key"}),
        limiter_(&client_, &cache_, &lock_, &metrics_) {
    per_ip_.name = "per_ip";
    per_ip_.limit = 10;
    per_ip_.window_ms = 60000;
    per_ip_.burst = 10;
    per_key_.name = "per_key";
    per_key_.limit = 100;
    per_key_.window_ms = 60000;
    per_key_.burst = 100;
  }

  // A request of `ip` (and of `api_key`, when not empty) with cost 1.
  LimitCheck& request(const std::string& ip, const std::string& api_key = "") {
    Request& r = requests_.emplace_back();
    r.keys[0] = ip;
    r.keys[1] = api_key;
    const ZoneConfig* configs[2] = {&per_ip_, &per_key_};
    const size_t count = api_key.empty() ? 1 : 2;
    for (size_t i = 0; i < count; i++) {
      r.zones[i].zone = configs[i];
      r.zones[i].key = r.keys[i];
      r.zones[i].cost = 1;
      r.zones[i].limits = {configs[i]->limit, configs[i]->window_ms, configs[i]->burst};
      r.books[i].block_cache_id = block_cache_zone_id(*configs[i], r.zones[i].limits);
      r.books[i].counters = i;
    }
    r.check.zones = r.zones;
    r.check.books = r.books;
    r.check.count = count;
    return r.check;
  }

  Verdict check(LimitCheck& check, uint64_t now_ms) { return limiter_.check(check, now_ms, on_verdict, this); }

  static void on_verdict(void* data, LimitCheck& check) {
    static_cast<LimiterTest*>(data)->completed_.push_back(&check);
  }

  struct Request {
    std::string keys[2];
    ZoneRequest zones[2];
    ZoneBooks books[2];
    LimitCheck check;
  };

  FakeCheckClient client_;
  NoLock lock_;
  std::vector<uint64_t> cache_memory_;
  BlockCache cache_;
  std::vector<uint64_t> metrics_memory_;
  Metrics metrics_;
  Limiter limiter_;
  ZoneConfig per_ip_;
  ZoneConfig per_key_;
  std::deque<Request> requests_;
  std::vector<LimitCheck*> completed_;  // in the order the callbacks fired
};

TEST_F(LimiterTest, ACheckWaitsForTheClientAndCompletesWithItsAnswer) {
  LimitCheck& c = request("10.0.0.1");
  EXPECT_EQ(check(c, 1000), Verdict::none);
  EXPECT_TRUE(c.waiting());
  ASSERT_EQ(client_.checks(), 1u);
  EXPECT_EQ(client_.asked(0).keys, std::vector<std::string>{"10.0.0.1"});
  EXPECT_TRUE(completed_.empty());

  client_.answer(0, allowed(0, 10, 9));
  ASSERT_EQ(completed_.size(), 1u);
  EXPECT_EQ(completed_[0], &c);
  EXPECT_FALSE(c.waiting());
  EXPECT_EQ(c.verdict, Verdict::passed);
  EXPECT_EQ(c.decision.limit, 10u);
  EXPECT_EQ(c.decision.remaining, 9u);
}

TEST_F(LimiterTest, APassedRequestCountsInEveryZone) {
  LimitCheck& c = request("10.0.0.1", "key-a");
  check(c, 1000);
  client_.answer(0, allowed(1, 100, 99));
  EXPECT_EQ(c.verdict, Verdict::passed);
  EXPECT_EQ(metrics_.zone(0).passed, 1u);
  EXPECT_EQ(metrics_.zone(1).passed, 1u);
}

TEST_F(LimiterTest, ARejectionCountsOnlyInTheZoneThatDecided) {
  LimitCheck& c = request("10.0.0.1", "key-a");
  check(c, 1000);
  client_.answer(0, rejected(1, 100, 5000));
  EXPECT_EQ(c.verdict, Verdict::rejected);
  EXPECT_EQ(c.decision.zone_index, 1u);
  EXPECT_EQ(metrics_.zone(0).rejected, 0u);
  EXPECT_EQ(metrics_.zone(1).rejected, 1u);
  EXPECT_EQ(metrics_.zone(0).passed, 0u);
  EXPECT_EQ(metrics_.zone(1).passed, 0u);
}

TEST_F(LimiterTest, ARejectionIsServedFromTheBlockCacheWithoutAskingTheClient) {
  // Sent at 1000; the client said: passes again in 5000 ms.
  check(request("10.0.0.1"), 1000);
  client_.answer(0, rejected(0, 10, 5000));

  LimitCheck& again = request("10.0.0.1");
  EXPECT_EQ(check(again, 1900), Verdict::rejected);
  EXPECT_EQ(client_.checks(), 1u);
  EXPECT_TRUE(again.from_block_cache);
  EXPECT_EQ(again.decision.limit, 10u);
  EXPECT_EQ(again.decision.remaining, 0u);
  EXPECT_EQ(again.decision.reset_ms, 4100u);  // counted from when the first check was sent
  EXPECT_EQ(metrics_.zone(0).rejected, 2u);
  EXPECT_EQ(metrics_.zone(0).block_cache_hits, 1u);
}

TEST_F(LimiterTest, ABlockedKeyIsAskedAboutAgainOnceItsResetIsOver) {
  check(request("10.0.0.1"), 1000);
  client_.answer(0, rejected(0, 10, 5000));
  EXPECT_EQ(check(request("10.0.0.1"), 6000), Verdict::none);
  EXPECT_EQ(client_.checks(), 2u);
}

TEST_F(LimiterTest, AnotherKeyIsNotServedFromTheBlockCache) {
  check(request("10.0.0.1"), 1000);
  client_.answer(0, rejected(0, 10, 5000));
  EXPECT_EQ(check(request("10.0.0.2"), 2000), Verdict::none);
  EXPECT_EQ(client_.checks(), 2u);
}

TEST_F(LimiterTest, TheBlockCacheIsUsedOnlyUnderItsLock) {
  check(request("10.0.0.1"), 1000);               // a lookup
  client_.answer(0, rejected(0, 10, 5000));       // a record
  check(request("10.0.0.1"), 2000);               // a lookup that hits
  EXPECT_EQ(lock_.locks, 3);
  EXPECT_EQ(lock_.unlocks, 3);
}

TEST_F(LimiterTest, AFailPolicyDecisionCountsInEveryZone) {
  LimitCheck& c = request("10.0.0.1", "key-a");
  check(c, 1000);
  client_.answer(0, failed(CheckError::timeout));
  EXPECT_EQ(c.verdict, Verdict::error);
  EXPECT_EQ(c.error, CheckError::timeout);
  EXPECT_EQ(metrics_.zone(0).fail_policy, 1u);
  EXPECT_EQ(metrics_.zone(1).fail_policy, 1u);
  EXPECT_EQ(metrics_.zone(0).passed, 0u);
}

TEST_F(LimiterTest, AnErrorIsNotRememberedInTheBlockCache) {
  check(request("10.0.0.1"), 1000);
  client_.answer(0, failed(CheckError::redis_error));
  EXPECT_EQ(check(request("10.0.0.1"), 1001), Verdict::none);
  EXPECT_EQ(client_.checks(), 2u);
}

TEST_F(LimiterTest, AnUnreachableClientDecidesAtOnceWithoutACallback) {
  client_.down = true;
  LimitCheck& c = request("10.0.0.1", "key-a");
  EXPECT_EQ(check(c, 1000), Verdict::error);
  EXPECT_EQ(c.error, CheckError::unavailable);
  EXPECT_TRUE(completed_.empty());
  EXPECT_EQ(metrics_.zone(0).fail_policy, 1u);
  EXPECT_EQ(metrics_.zone(1).fail_policy, 1u);
}

TEST_F(LimiterTest, WithoutAClientEveryCheckGoesToTheFailPolicy) {
  Limiter alone(nullptr, nullptr, nullptr, &metrics_);
  LimitCheck& c = request("10.0.0.1");
  EXPECT_EQ(alone.check(c, 1000, on_verdict, this), Verdict::error);
  EXPECT_EQ(metrics_.zone(0).fail_policy, 1u);
}

TEST_F(LimiterTest, AnInvalidValueCountsOnlyInItsZone) {
  // The per-request cost of zone 1 was not a number: the fail policy decides.
  LimitCheck& c = request("10.0.0.1", "key-a");
  c.invalid_zone = 1;
  EXPECT_EQ(check(c, 1000), Verdict::error);
  EXPECT_EQ(client_.checks(), 0u);
  EXPECT_EQ(c.decision.zone_index, 1u);
  EXPECT_EQ(metrics_.zone(1).invalid_value, 1u);
  EXPECT_EQ(metrics_.zone(0).invalid_value, 0u);
  EXPECT_EQ(metrics_.zone(0).fail_policy, 0u);
  EXPECT_EQ(metrics_.zone(1).fail_policy, 0u);
}

TEST_F(LimiterTest, ACancelledCheckNeverCompletes) {
  LimitCheck& c = request("10.0.0.1");
  check(c, 1000);
  limiter_.cancel(c);
  EXPECT_FALSE(c.waiting());
  EXPECT_TRUE(client_.asked(0).cancelled);
  client_.answer(0, allowed(0, 10, 9));
  EXPECT_TRUE(completed_.empty());
  EXPECT_EQ(c.verdict, Verdict::none);
  EXPECT_EQ(metrics_.zone(0).passed, 0u);
}

TEST_F(LimiterTest, DryRunRejectionPassesButCountsAsDryRun) {
  LimitCheck& c = request("10.0.0.1");
  c.dry_run = true;
  check(c, 1000);
  client_.answer(0, rejected(0, 10, 5000));
  EXPECT_EQ(c.verdict, Verdict::rejected_dry_run);
  EXPECT_EQ(metrics_.zone(0).rejected_dry_run, 1u);
  EXPECT_EQ(metrics_.zone(0).rejected, 0u);
  EXPECT_EQ(metrics_.zone(0).passed, 0u);
}

TEST_F(LimiterTest, ADryRunRejectionFromTheBlockCacheIsADryRunToo) {
  LimitCheck& first = request("10.0.0.1");
  first.dry_run = true;
  check(first, 1000);
  client_.answer(0, rejected(0, 10, 5000));

  LimitCheck& again = request("10.0.0.1");
  again.dry_run = true;
  EXPECT_EQ(check(again, 1900), Verdict::rejected_dry_run);
  EXPECT_EQ(metrics_.zone(0).rejected_dry_run, 2u);
  EXPECT_EQ(metrics_.zone(0).block_cache_hits, 1u);
}

}  // namespace
}  // namespace rate_guard

namespace rate_guard {
namespace {

// ---- count=after and the operator's rules ---------------------------------

// count=after's check before the request asks with cost 0 (counts nothing);
// its rejection is cached as a cost-1 request's: they ask the same.
TEST_F(LimiterTest, ACheckOfCostZeroSharesTheBlockCacheWithCostOne) {
  LimitCheck& before = request("10.0.0.1");
  const_cast<ZoneRequest*>(before.zones)[0].cost = 0;
  check(before, 1000);
  EXPECT_EQ(client_.asked(0).costs, std::vector<uint64_t>{0});
  client_.answer(0, rejected(0, 10, 800));
  LimitCheck& plain = request("10.0.0.1");
  EXPECT_EQ(check(plain, 1100), Verdict::rejected);
  EXPECT_TRUE(plain.from_block_cache);
  LimitCheck& again = request("10.0.0.1");
  const_cast<ZoneRequest*>(again.zones)[0].cost = 0;
  EXPECT_EQ(check(again, 1200), Verdict::rejected);
  EXPECT_TRUE(again.from_block_cache);
  EXPECT_EQ(client_.checks(), 1u);
}

TEST_F(LimiterTest, AChargeIsSentAndCountedWithItsUnits) {
  LimitCheck& c = request("10.0.0.1", "key-a");
  ZoneRequest zone = c.zones[1];
  zone.cost = 7;
  limiter_.charge(zone, c.books[1]);
  ASSERT_EQ(client_.charged.size(), 1u);
  EXPECT_EQ(client_.charged[0].key, "key-a");
  EXPECT_EQ(client_.charged[0].cost, 7u);
  EXPECT_EQ(client_.charged[0].tag, 1u);  // the zone's counters
  EXPECT_EQ(metrics_.zone(1).after_counts, 1u);
  EXPECT_EQ(metrics_.zone(1).after_units, 7u);
  EXPECT_EQ(metrics_.zone(1).after_counts_lost, 0u);
  EXPECT_EQ(metrics_.zone(0).after_counts, 0u);
  // Redis never recorded it: the client says so later.
  client_.lost_callback = [](void* data, uint32_t tag, uint64_t units) {
    static_cast<Limiter*>(data)->charge_lost(tag, units);
  };
  client_.lost_data = &limiter_;
  client_.lose(0);
  EXPECT_EQ(metrics_.zone(1).after_counts_lost, 1u);
}

TEST_F(LimiterTest, AChargeWhileRedisIsDownIsLostAtOnce) {
  client_.down = true;
  LimitCheck& c = request("10.0.0.1");
  limiter_.charge(c.zones[0], c.books[0]);
  EXPECT_TRUE(client_.charged.empty());
  EXPECT_EQ(metrics_.zone(0).after_counts, 1u);
  EXPECT_EQ(metrics_.zone(0).after_counts_lost, 1u);
  limiter_.charge_invalid(c.books[0]);
  EXPECT_EQ(metrics_.zone(0).invalid_value, 1u);
}

TEST_F(LimiterTest, BansAndOverridesAreCountedInTheirZones) {
  LimitCheck& banned = request("10.0.0.1", "key-a");
  check(banned, 1000);
  CheckOutcome outcome = rejected(1, 100, 60000);
  outcome.banned_zones = 1u << 1;
  outcome.overridden_zones = 1u << 0;
  client_.answer(0, outcome);
  EXPECT_EQ(banned.verdict, Verdict::rejected);
  EXPECT_EQ(metrics_.zone(1).banned, 1u);
  EXPECT_EQ(metrics_.zone(0).banned, 0u);
  EXPECT_EQ(metrics_.zone(0).overridden, 1u);
  EXPECT_EQ(metrics_.zone(1).overridden, 0u);
  // The ban's rejection is cached as any other (for a second at most).
  LimitCheck& again = request("10.0.0.1", "key-a");
  EXPECT_EQ(check(again, 1500), Verdict::rejected);
  EXPECT_TRUE(again.from_block_cache);
  EXPECT_EQ(again.decision.reset_ms, 59500u);
  EXPECT_EQ(check(request("10.0.0.1", "key-a"), 2000), Verdict::none);  // asks Redis again
}

CheckOutcome allowed_with_lease(uint64_t limit, uint64_t remaining, uint64_t units, uint64_t lease_ms,
                                uint64_t mark) {
  CheckOutcome outcome = allowed(0, limit, remaining);
  outcome.lease = {units, lease_ms, mark};
  return outcome;
}

// The limiter with a lease table: "per_ip" leased with a lease time of 100 ms.
class LimiterLeaseTest : public LimiterTest {
 protected:
  LimiterLeaseTest()
      : lease_memory_(256 * 1024 / 8), leases_(lease_memory_.data(), 256 * 1024, true) {
    per_ip_.limit = 1000;
    per_ip_.burst = 1000;
    per_ip_.lease_ms = 100;
    limiter_ = Limiter(&client_, &cache_, &lock_, &metrics_, &leases_);
    known_[0] = {&per_ip_, 0};
    known_[1] = {&per_key_, 1};
    limiter_.set_zones(known_, 2, 7);
  }

  // Requests of `ip` from `now_ms` on, one every 10 ms, answered allowed
  // by the client until one asks for a lease (its demand known); returns
  // the index of the check that asked, its time in asked_ms_.
  size_t until_asked(const std::string& ip, uint64_t now_ms) {
    for (int i = 0; i < 20; i++, now_ms += 10) {
      LimitCheck& c = request(ip);
      EXPECT_EQ(check(c, now_ms), Verdict::none);
      const size_t index = client_.checks() - 1;
      if (client_.asked(index).lease_units != 0) {
        asked_ms_ = now_ms;
        return index;
      }
      client_.answer(index, allowed(0, 1000, 900));
    }
    ADD_FAILURE() << "no lease asked";
    return 0;
  }

  // Requests of `ip` at `now_ms`, until `count` passed from a lease or one
  // did not (which then asked the client); returns how many passed.
  size_t spend(const std::string& ip, uint64_t now_ms, size_t count) {
    size_t passed = 0;
    while (passed < count) {
      LimitCheck& c = request(ip);
      if (check(c, now_ms) != Verdict::passed) {
        break;
      }
      EXPECT_TRUE(c.from_lease);
      passed++;
    }
    return passed;
  }

  uint64_t asked_ms_ = 0;
  std::vector<uint64_t> lease_memory_;
  LeaseTable leases_;
  Limiter::KnownZone known_[2];
};

TEST_F(LimiterLeaseTest, ACheckOfCostZeroNeitherSpendsNorAsksForALease) {
  const size_t asked = until_asked("10.0.0.9", 1000);
  client_.answer(asked, allowed_with_lease(1000, 800, 50, 100, 3));
  ASSERT_EQ(spend("10.0.0.9", asked_ms_ + 1, 1), 1u);  // the lease is there
  for (int i = 0; i < 30; i++) {
    LimitCheck& c = request("10.0.0.9");
    const_cast<ZoneRequest*>(c.zones)[0].cost = 0;
    EXPECT_EQ(check(c, asked_ms_ + 2), Verdict::none) << i;  // to the client, every one
    EXPECT_EQ(client_.asked(client_.checks() - 1).lease_units, 0u) << i;
  }
}

TEST_F(LimiterLeaseTest, AKeyBusyHereAsksForALeaseAndItsRequestsThenPassWithoutTheClient) {
  // Three requests in a lease time are too few to lease.
  for (int i = 0; i < 3; i++) {
    LimitCheck& c = request("10.0.0.1");
    check(c, 1000 + 40 * i);
    EXPECT_EQ(client_.asked(client_.checks() - 1).lease_units, 0u);
    client_.answer(client_.checks() - 1, allowed(0, 1000, 990));
  }
  const size_t asking = until_asked("10.0.0.2", 1000);
  EXPECT_GE(client_.asked(asking).lease_units, kMinLeaseDemand);
  EXPECT_EQ(client_.asked(asking).lease_ms, 100u);
  // While the ask is out, nobody else asks.
  LimitCheck& other = request("10.0.0.2");
  check(other, asked_ms_ + 1);
  EXPECT_EQ(client_.asked(client_.checks() - 1).lease_units, 0u);

  client_.answer(asking, allowed_with_lease(1000, 900, 10, 100, 77));
  EXPECT_EQ(metrics_.zone(0).lease_grants, 1u);
  EXPECT_EQ(metrics_.zone(0).lease_units_granted, 10u);
  const size_t asked_before = client_.checks();
  const uint64_t passed_before = metrics_.zone(0).passed;
  // (More at once would raise the key's demand here past what is left, and
  // a request would ask for the next lease.)
  for (size_t i = 0; i < 3; i++) {
    LimitCheck& c = request("10.0.0.2");
    ASSERT_EQ(check(c, asked_ms_ + 2), Verdict::passed);
    EXPECT_TRUE(c.from_lease);
    EXPECT_EQ(c.decision.limit, 1000u);
    // Redis's 900 less the 10 granted, plus what the lease still holds.
    EXPECT_EQ(c.decision.remaining, 890u + (9 - i));
    EXPECT_EQ(c.decision.reset_ms, 0u);
  }
  EXPECT_EQ(client_.checks(), asked_before);
  EXPECT_EQ(metrics_.zone(0).lease_requests, 3u);
  EXPECT_EQ(metrics_.zone(0).passed, passed_before + 3);
}

TEST_F(LimiterLeaseTest, NoUnitIsSpentPastTheLeasesEndAndTheUnusedGoBack) {
  const size_t asking = until_asked("10.0.0.1", 1000);
  const uint64_t sent_ms = asked_ms_;
  client_.answer(asking, allowed_with_lease(1000, 900, 50, 100, 1234));
  const uint64_t end_ms = sent_ms + 100 - kLeaseClockMarginMs;
  // The last millisecond: the first request asks for the next lease, the
  // next one spends.
  EXPECT_EQ(spend("10.0.0.1", end_ms - 1, 1) + spend("10.0.0.1", end_ms - 1, 1), 1u);
  EXPECT_EQ(spend("10.0.0.1", end_ms, 1), 0u);
  EXPECT_EQ(spend("10.0.0.1", end_ms + 50, 1), 0u);
  EXPECT_TRUE(client_.handed_back.empty());
  limiter_.return_leases(end_ms);
  ASSERT_EQ(client_.handed_back.size(), 1u);
  EXPECT_EQ(client_.handed_back[0].key, "10.0.0.1");
  EXPECT_EQ(client_.handed_back[0].mark, 1234u);
  EXPECT_EQ(client_.handed_back[0].granted, 50u);
  EXPECT_EQ(client_.handed_back[0].units, 49u);
  EXPECT_EQ(metrics_.zone(0).lease_units_returned, 49u);
  // Given back once.
  limiter_.return_leases(end_ms + 100);
  EXPECT_EQ(client_.handed_back.size(), 1u);
}

TEST_F(LimiterLeaseTest, AnIdleKeysUnitsGoBackBeforeTheLeaseEnds) {
  const size_t asking = until_asked("10.0.0.1", 1000);
  client_.answer(asking, allowed_with_lease(1000, 900, 50, 100, 9));
  limiter_.return_leases(asked_ms_ + 49);  // idle for less than half the lease time
  EXPECT_TRUE(client_.handed_back.empty());
  limiter_.return_leases(asked_ms_ + 50);
  ASSERT_EQ(client_.handed_back.size(), 1u);
  EXPECT_EQ(client_.handed_back[0].units, 50u);
  EXPECT_EQ(spend("10.0.0.1", asked_ms_ + 51, 1) + spend("10.0.0.1", asked_ms_ + 51, 1), 0u);
}

TEST_F(LimiterLeaseTest, ARejectedOrFailedAskGrantsNothingAndAnotherRequestMayAsk) {
  size_t asking = until_asked("10.0.0.1", 1000);
  client_.answer(asking, rejected(0, 1000, 500));
  asking = until_asked("10.0.0.2", 1000);
  client_.answer(asking, failed(CheckError::timeout));
  EXPECT_EQ(metrics_.zone(0).lease_grants, 0u);
  // The next request of the key asks again.
  LimitCheck& c = request("10.0.0.2");
  check(c, asked_ms_ + 1);
  EXPECT_NE(client_.asked(client_.checks() - 1).lease_units, 0u);
}

TEST_F(LimiterLeaseTest, ACancelledAskLetsTheNextRequestAsk) {
  const size_t asking = until_asked("10.0.0.1", 1000);
  LimitCheck& asker = requests_.back().check;
  limiter_.cancel(asker);
  LimitCheck& c = request("10.0.0.1");
  check(c, asked_ms_ + 1);
  EXPECT_NE(client_.asked(client_.checks() - 1).lease_units, 0u);
  EXPECT_TRUE(client_.asked(asking).cancelled);
}

TEST_F(LimiterLeaseTest, TokenBucketUnitsExpireInsteadOfGoingBack) {
  per_ip_.algorithm = Algorithm::token_bucket;
  const size_t asking = until_asked("10.0.0.1", 1000);
  client_.answer(asking, allowed_with_lease(1000, 900, 20, 100, 0));
  limiter_.return_leases(asked_ms_ + 200);
  EXPECT_TRUE(client_.handed_back.empty());
  EXPECT_EQ(metrics_.zone(0).lease_units_expired, 20u);
}

TEST_F(LimiterLeaseTest, LeaseOffAndRequestsOfTwoZonesNeverAsk) {
  per_ip_.lease = false;
  for (int i = 0; i < 30; i++) {
    LimitCheck& c = request("10.0.0.1");
    check(c, 1000 + 10 * i);
    EXPECT_EQ(client_.asked(client_.checks() - 1).lease_units, 0u);
  }
  per_ip_.lease = true;
  for (int i = 0; i < 30; i++) {
    LimitCheck& c = request("10.0.0.3", "key-a");
    check(c, 1000 + 10 * i);
    EXPECT_EQ(client_.asked(client_.checks() - 1).lease_units, 0u);
  }
}

TEST_F(LimiterLeaseTest, ALeaseGrantedAfterItsEndIsHandedBackAtOnce) {
  const size_t asking = until_asked("10.0.0.1", 1000);
  client_.answer(asking, allowed_with_lease(1000, 900, 5, kLeaseClockMarginMs, 3));
  ASSERT_EQ(client_.handed_back.size(), 1u);
  EXPECT_EQ(client_.handed_back[0].units, 5u);
}

TEST_F(LimiterLeaseTest, ABlockedKeyIsRejectedFromTheCacheOnlyOnceItsLeaseIsSpent) {
  const size_t asking = until_asked("10.0.0.1", 1000);
  // A request sent while the ask was out is rejected by Redis (other servers
  // took the rest): the blocked-key cache holds the key.
  LimitCheck& other = request("10.0.0.1");
  check(other, asked_ms_);
  client_.answer(asking, allowed_with_lease(1000, 900, 2, 100, 3));
  client_.answer(client_.checks() - 1, rejected(0, 1000, 5000));
  // The lease's units are the fleet's to spend all the same (and a blocked
  // key asks for no lease).
  EXPECT_EQ(spend("10.0.0.1", asked_ms_ + 1, 5), 2u);
  EXPECT_EQ(client_.checks(), asking + 2);
  LimitCheck& c = request("10.0.0.1");
  EXPECT_EQ(check(c, asked_ms_ + 1), Verdict::rejected);
  EXPECT_TRUE(c.from_block_cache);
}

// ---- the table alone

class LeaseTableTest : public ::testing::Test {
 protected:
  LeaseTableTest() : memory_(64 * 1024 / 8), table_(memory_.data(), 64 * 1024, true) {
    zone_.zone_id = 42;
    zone_.algorithm = Algorithm::sliding_window;
    zone_.limits = {1000, 60000, 1000};
    zone_.lease_ms = 100;
  }
  std::vector<uint64_t> memory_;
  LeaseTable table_;
  LeaseZone zone_;
  uint64_t lost_ = 0;
};

TEST_F(LeaseTableTest, DemandFollowsTheKeysRateHere) {
  // 500 a second: once half a lease time has passed, the ask is for about
  // what the key takes in a lease time (50).
  uint64_t now = 1000;
  LeaseUse use;
  for (; now < 1100 && use.ask == 0; now += 2) {
    use = table_.use(zone_, "k", 1, now, 1000);
    EXPECT_FALSE(use.spent);
  }
  EXPECT_EQ(now - 2, 1050u);
  EXPECT_EQ(use.ask, 50u);  // 25 after the first in 50 ms
  // Requests of cost 5 count 5 units each; a quiet key never asks.
  LeaseZone other = zone_;
  other.zone_id = 43;
  for (now = 1000; now < 1050; now += 2) {
    EXPECT_EQ(table_.use(other, "k", 5, now, 1000).ask, 0u);
  }
  EXPECT_EQ(table_.use(other, "k", 5, 1050, 1000).ask, 250u);
  for (now = 1000; now < 2000; now += 30) {
    EXPECT_EQ(table_.use(zone_, "quiet", 1, now, 1000).ask, 0u);
  }
}

TEST_F(LeaseTableTest, TheNextLeaseIsAskedBeforeThisOneRunsOut) {
  uint64_t now = 1000;
  for (; now < 1050; now += 5) {
    ASSERT_EQ(table_.use(zone_, "k", 1, now, 1000).ask, 0u);
  }
  ASSERT_EQ(table_.use(zone_, "k", 1, now, 1000).ask, 20u);  // 10 after the first in 50 ms
  LeaseReturn displaced;
  ASSERT_FALSE(table_.granted(zone_, "k", {20, 100, 1}, 1000, 900, now, now, &displaced, &lost_));
  size_t spent = 0;
  while (table_.use(zone_, "k", 1, now, 1000).spent) {
    spent++;
  }
  // Asked again once fewer than half the demand were left (a burst in one
  // millisecond raises the demand as it goes).
  EXPECT_GE(spent, 1u);
  EXPECT_LT(spent, 20u);
  // The second grant joins what is left of the first, spent first (it ends first).
  ASSERT_FALSE(table_.granted(zone_, "k", {40, 100, 2}, 1000, 880, now + 10, now + 10, &displaced, &lost_));
  uint64_t total = 0;
  while (table_.use(zone_, "k", 1, now + 10, 1000).spent) {
    total++;
  }
  EXPECT_GT(total, 20u - spent);
  // What was not spent goes back, no more, no less.
  LeaseReturn out[4];
  const size_t n = table_.take_returns(now + 200, out, 4);
  uint64_t returned = 0;
  for (size_t i = 0; i < n; i++) {
    returned += out[i].units;
  }
  EXPECT_EQ(returned, 20u + 40u - spent - total);
  EXPECT_FALSE(table_.has_units());
}

TEST_F(LeaseTableTest, AThirdGrantDisplacesTheOneEndingFirst) {
  LeaseReturn displaced;
  table_.use(zone_, "k", 1, 1000, 1000);
  ASSERT_FALSE(table_.granted(zone_, "k", {5, 100, 1}, 1000, 900, 1000, 1000, &displaced, &lost_));
  ASSERT_FALSE(table_.granted(zone_, "k", {6, 100, 2}, 1000, 900, 1010, 1010, &displaced, &lost_));
  ASSERT_TRUE(table_.granted(zone_, "k", {7, 100, 3}, 1000, 900, 1020, 1020, &displaced, &lost_));
  EXPECT_EQ(displaced.mark, 1u);
  EXPECT_EQ(displaced.units, 5u);
  EXPECT_EQ(displaced.granted, 5u);
  EXPECT_EQ(displaced.key.raw(), "k");
  EXPECT_EQ(displaced.zone_id, 42u);
}

TEST_F(LeaseTableTest, DroppedUnitsAreGoneAndNotReturned) {
  LeaseReturn displaced;
  table_.use(zone_, "k", 1, 1000, 1000);
  table_.granted(zone_, "k", {5, 100, 1}, 1000, 900, 1000, 1000, &displaced, &lost_);
  EXPECT_TRUE(table_.has_units());
  EXPECT_EQ(table_.drop_all(), 5u);
  EXPECT_FALSE(table_.has_units());
  LeaseReturn out[4];
  EXPECT_EQ(table_.take_returns(5000, out, 4), 0u);
  EXPECT_FALSE(table_.use(zone_, "k", 1, 1001, 1000).spent);
}

TEST_F(LeaseTableTest, AReloadThatKeepsTheMemoryKeepsTheLeases) {
  LeaseReturn displaced;
  table_.use(zone_, "k", 1, 1000, 1000);
  table_.granted(zone_, "k", {5, 100, 1}, 1000, 900, 1000, 1000, &displaced, &lost_);
  LeaseTable again(memory_.data(), 64 * 1024, false);
  EXPECT_TRUE(again.use(zone_, "k", 1, 1001, 1000).spent);
  LeaseTable fresh(memory_.data(), 64 * 1024, true);
  EXPECT_FALSE(fresh.use(zone_, "k", 1, 1002, 1000).spent);
  EXPECT_FALSE(fresh.has_units());
}

TEST_F(LeaseTableTest, AFullBucketEvictsKeysWithoutUnitsFirst) {
  // One bucket of 4 entries.
  std::vector<uint64_t> small(1024);
  const size_t bytes = 64 + 4 * LeaseTable::entry_size();
  LeaseTable table(small.data(), bytes, true);
  ASSERT_EQ(table.capacity(), 4u);
  LeaseReturn displaced;
  table.use(zone_, "held", 1, 1000, 1000);
  table.granted(zone_, "held", {5, 100, 1}, 1000, 900, 1000, 1000, &displaced, &lost_);
  for (int i = 0; i < 10; i++) {
    const LeaseUse use = table.use(zone_, "cold" + std::to_string(i), 1, 1001 + i, 1000);
    EXPECT_EQ(use.lost_units, 0u);
  }
  EXPECT_TRUE(table.use(zone_, "held", 1, 1020, 1000).spent);
}

TEST_F(LeaseTableTest, AGrantThatEvictsAnotherKeysUnitsReportsThemLost) {
  std::vector<uint64_t> small(1024);
  LeaseTable table(small.data(), 64 + 4 * LeaseTable::entry_size(), true);
  LeaseReturn displaced;
  for (int i = 0; i < 4; i++) {
    const std::string key = "held" + std::to_string(i);
    table.use(zone_, key, 1, 1000 + i, 1000);
    table.granted(zone_, key, {5, 100, 1}, 1000, 900, 1000, 1000, &displaced, &lost_);
  }
  EXPECT_EQ(lost_, 0u);
  // A fifth key's grant: the least recently used of the four gives way.
  table.granted(zone_, "new", {7, 100, 2}, 1000, 900, 1010, 1010, &displaced, &lost_);
  EXPECT_EQ(lost_, 5u);
  EXPECT_FALSE(table.use(zone_, "held0", 1, 1011, 1000).spent);
  EXPECT_TRUE(table.use(zone_, "new", 1, 1011, 1000).spent);
}

}  // namespace
}  // namespace rate_guard

namespace rate_guard {
namespace {

TEST_F(LimiterLeaseTest, ALostConnectionDropsEveryLease) {
  const size_t asking = until_asked("10.0.0.1", 1000);
  LimitCheck& other = request("10.0.0.1");
  check(other, asked_ms_);
  client_.answer(asking, allowed_with_lease(1000, 900, 50, 100, 1));
  EXPECT_EQ(spend("10.0.0.1", asked_ms_ + 1, 1), 1u);
  client_.answer(client_.checks() - 1, failed(CheckError::disconnected));
  EXPECT_EQ(spend("10.0.0.1", asked_ms_ + 2, 1) + spend("10.0.0.1", asked_ms_ + 2, 1), 0u);
  EXPECT_FALSE(leases_.has_units());
}

TEST_F(LimiterLeaseTest, RedisKnownDownDropsEveryLease) {
  const size_t asking = until_asked("10.0.0.1", 1000);
  client_.answer(asking, allowed_with_lease(1000, 900, 50, 100, 1));
  client_.down = true;
  LimitCheck& c = request("10.0.0.2");
  EXPECT_EQ(check(c, asked_ms_ + 1), Verdict::error);
  EXPECT_FALSE(leases_.has_units());
}

}  // namespace
}  // namespace rate_guard

namespace rate_guard {
namespace {

// 10 requests in the first 50 ms: a demand of 20 in a lease time.
uint64_t make_demand(LeaseTable& table, const LeaseZone& zone, const char* key) {
  uint64_t now = 1000;
  for (; now < 1050; now += 5) {
    table.use(zone, key, 1, now, 1000);
  }
  EXPECT_EQ(table.use(zone, key, 1, now, 1000).ask, 20u);
  return now;
}

TEST_F(LeaseTableTest, AFullLeaseIsRenewedAtHalfItsLifeACutOneOnlyWhenItEnds) {
  LeaseReturn displaced;
  uint64_t now = make_demand(table_, zone_, "full");
  table_.granted(zone_, "full", {1000, 100, 1}, 1000, 5000, now, now, &displaced, &lost_);
  const uint64_t end = now + 100 - kLeaseClockMarginMs;
  EXPECT_TRUE(table_.use(zone_, "full", 1, end - 51, 1000).spent);
  EXPECT_GT(table_.use(zone_, "full", 1, end - 49, 1000).ask, 0u);

  now = make_demand(table_, zone_, "cut");
  table_.granted(zone_, "cut", {1000, 30, 2}, 1000, 5000, now, now, &displaced, &lost_);
  // Redis cut it to 30 ms (its sub-window ends): asking again before then
  // would bring a lease that ends no later.
  EXPECT_TRUE(table_.use(zone_, "cut", 1, now + 30 - kLeaseClockMarginMs - 1, 1000).spent);
  EXPECT_GT(table_.use(zone_, "cut", 1, now + 30 - kLeaseClockMarginMs, 1000).ask, 0u);
}

}  // namespace
}  // namespace rate_guard

namespace rate_guard {
namespace {

TEST_F(LimiterLeaseTest, AReloadToAnotherRedisNeitherSpendsNorHandsBackTheOldLeases) {
  const size_t asking = until_asked("10.0.0.1", 1000);
  client_.answer(asking, allowed_with_lease(1000, 900, 50, 100, 1));
  EXPECT_EQ(spend("10.0.0.1", asked_ms_ + 1, 1), 1u);
  limiter_.set_zones(known_, 2, 8);  // the workers of a configuration with another Redis
  EXPECT_EQ(spend("10.0.0.1", asked_ms_ + 2, 1) + spend("10.0.0.1", asked_ms_ + 2, 1), 0u);
  limiter_.return_leases(asked_ms_ + 200);
  EXPECT_TRUE(client_.handed_back.empty());  // that Redis never counted them
}

TEST_F(LeaseTableTest, AKeyServedByAWorkerWhoseClockReadLaterIsNotIdle) {
  LeaseReturn displaced;
  uint64_t now = make_demand(table_, zone_, "k");
  table_.granted(zone_, "k", {10, 100, 1}, 1000, 900, now, now, &displaced, &lost_);
  EXPECT_TRUE(table_.use(zone_, "k", 1, now + 5, 1000).spent);
  LeaseReturn out[2];
  EXPECT_EQ(table_.take_returns(now + 4, out, 2), 0u);  // this worker read its clock 1 ms before
}

}  // namespace
}  // namespace rate_guard
