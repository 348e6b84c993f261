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
  EXPECT_EQ(check(again, 2000), Verdict::rejected);
  EXPECT_EQ(client_.checks(), 1u);
  EXPECT_TRUE(again.from_block_cache);
  EXPECT_EQ(again.decision.limit, 10u);
  EXPECT_EQ(again.decision.remaining, 0u);
  EXPECT_EQ(again.decision.reset_ms, 4000u);  // counted from when the first check was sent
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
  EXPECT_EQ(check(again, 2000), Verdict::rejected_dry_run);
  EXPECT_EQ(metrics_.zone(0).rejected_dry_run, 2u);
  EXPECT_EQ(metrics_.zone(0).block_cache_hits, 1u);
}

}  // namespace
}  // namespace rate_guard
