// The check script: sliding_window, decision by decision, at a pinned Redis
// time. 16 sub-windows of span = ceil(window / 16); at a time of sub-window
// i the estimate is the sum of the counts of sub-windows i - 16 .. i (the
// oldest counted whole), and a request of cost c passes iff estimate + c <=
// limit. Sub-window x leaves the estimate at (x + 17) * span. kT0 is a
// midnight, so for windows of 1 s, 2 s, 60 s and a day it starts a
// sub-window.
#include "check_script_fixture.h"

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

// ============================================================ sliding_window

TEST_F(CheckScriptTest, SlidingWindowAllowsExactlyTheLimit) {
  // span 62.5 ms: the requests land in sub-windows 0, 1 and 3.
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, zone), Allowed(3, 2, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, zone), Allowed(3, 1, 0));
  // Nothing left: one more fits when sub-window 0 leaves, at 17 * 62.5 ms
  // = kT0 + 1062.5 ms.
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Allowed(3, 0, 863));
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(3, 0, 763));
}

TEST_F(CheckScriptTest, SlidingWindowRejectedRequestConsumesNoQuota) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + 200 * kMs, zone);
  for (uint64_t t = kT0 + 300 * kMs; t < kT0 + 1062 * kMs; t += 50 * kMs) {
    EXPECT_FALSE(check(t, zone).allowed) << "at +" << (t - kT0);
  }
  const SlidingWindowState state = unpack_sliding_window(get("client"));
  ASSERT_TRUE(state.valid);
  EXPECT_EQ(state.newest, kT0 / 62500 + 3);
  EXPECT_EQ(state.counts, (std::vector<uint32_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1}));
  // Sub-window 0 has left; sub-window 1 leaves at 18 * 62.5 ms.
  EXPECT_EQ(check(kT0 + 1062 * kMs + 500, zone), Allowed(3, 0, 63));
}

TEST_F(CheckScriptTest, SlidingWindowRejectionResetIsWhenTheRequestPasses) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + 200 * kMs, zone);
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Rejected(3, 0, 763));
  EXPECT_EQ(check(kT0 + 1062 * kMs + 499, zone), Rejected(3, 0, 1));
  EXPECT_TRUE(check(kT0 + 1062 * kMs + 500, zone).allowed);
}

// The edge: a request holds its quota until its sub-window leaves, up to one
// span (62.5 ms) longer than sliding_log would, never shorter.
TEST_F(CheckScriptTest, SlidingWindowRequestOneWindowLaterWaitsForItsSubWindowToLeave) {
  const Zone zone = sliding_window(/*limit=*/2, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0 + 500 * kMs, zone), Allowed(2, 1, 0));
  // Sub-window 8 ([500, 562.5) ms) leaves at 25 * 62.5 ms = 1562.5 ms.
  EXPECT_EQ(check(kT0 + 500 * kMs, zone), Allowed(2, 0, 1063));
  EXPECT_EQ(check(kT0 + 1500 * kMs - 1, zone), Rejected(2, 0, 63));
  EXPECT_EQ(check(kT0 + 1500 * kMs, zone), Rejected(2, 0, 63));
  EXPECT_EQ(check(kT0 + 1562 * kMs + 499, zone), Rejected(2, 0, 1));
  EXPECT_EQ(check(kT0 + 1562 * kMs + 500, zone), Allowed(2, 1, 0));
}

// At the boundary of an aligned window, where the two-counter estimate let
// up to twice the limit through: nothing changes there.
TEST_F(CheckScriptTest, SlidingWindowWindowBoundaryChangesNothing) {
  const Zone zone = sliding_window(/*limit=*/4, /*window_ms=*/1000);
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(check(kT0 + kSecond - 1, zone).allowed);
  }
  // Sub-window 15 ([937.5, 1000) ms) leaves at 32 * 62.5 ms = 2 s.
  EXPECT_EQ(check(kT0 + kSecond, zone), Rejected(4, 0, 1000));
  EXPECT_EQ(check(kT0 + 2 * kSecond - 1, zone), Rejected(4, 0, 1));
  EXPECT_EQ(check(kT0 + 2 * kSecond, zone), Allowed(4, 3, 0));
}

TEST_F(CheckScriptTest, SlidingWindowLimitOne) {
  const Zone zone = sliding_window(/*limit=*/1, /*window_ms=*/1000);
  // Sub-window 4 ([250, 312.5) ms) leaves at 21 * 62.5 ms = 1312.5 ms.
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(1, 0, 1013));
  EXPECT_EQ(check(kT0 + 1300 * kMs, zone), Rejected(1, 0, 13));
  EXPECT_EQ(check(kT0 + 1312 * kMs + 499, zone), Rejected(1, 0, 1));
  // Sub-window 21 leaves at 38 * 62.5 ms = 2375 ms.
  EXPECT_EQ(check(kT0 + 1312 * kMs + 500, zone), Allowed(1, 0, 1063));
}

TEST_F(CheckScriptTest, SlidingWindowCostCountsTheRequestCostTimes) {
  const Zone zone = sliding_window(/*limit=*/5, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 2)), Allowed(5, 3, 0));
  EXPECT_EQ(check(kT0 + 100 * kMs, with_cost(zone, 2)), Allowed(5, 1, 0));
  // 4 + 2 > 5: sub-window 0's 2 must leave, at 1062.5 ms.
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(zone, 2)), Rejected(5, 1, 863));
  // The remaining 1 still fits a request of cost 1.
  EXPECT_EQ(check(kT0 + 300 * kMs, zone), Allowed(5, 0, 763));
  EXPECT_EQ(check(kT0 + 1062 * kMs + 499, with_cost(zone, 2)), Rejected(5, 0, 1));
  EXPECT_EQ(check(kT0 + 1062 * kMs + 500, with_cost(zone, 2)), Allowed(5, 0, 63));
}

// A rejected request of cost 3 waits until 3 units have left, however many
// sub-windows that takes.
TEST_F(CheckScriptTest, SlidingWindowCostWaitsForEnoughSubWindowsToLeave) {
  const Zone zone = sliding_window(/*limit=*/4, /*window_ms=*/1000);
  check(kT0, zone);                   // sub-window 0, leaves at 1062.5 ms
  check(kT0 + 70 * kMs, zone);        // sub-window 1, leaves at 1125 ms
  check(kT0 + 130 * kMs, zone);       // sub-window 2, leaves at 1187.5 ms
  check(kT0 + 200 * kMs, zone);       // sub-window 3
  EXPECT_EQ(check(kT0 + 300 * kMs, with_cost(zone, 3)), Rejected(4, 0, 888));
  // Sub-windows 0 and 1 have left: 2 remain, short of 3.
  EXPECT_EQ(check(kT0 + 1187 * kMs + 499, with_cost(zone, 3)), Rejected(4, 2, 1));
  EXPECT_EQ(check(kT0 + 1187 * kMs + 500, with_cost(zone, 3)), Allowed(4, 0, 63));
}

TEST_F(CheckScriptTest, SlidingWindowCostAboveTheLimitIsRejectedForAWindow) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  EXPECT_EQ(check(kT0, with_cost(zone, 4)), Rejected(3, 3, 1000));
  EXPECT_FALSE(exists("client"));
  EXPECT_EQ(check(kT0, with_cost(zone, 3)), Allowed(3, 0, 1063));
}

TEST_F(CheckScriptTest, SlidingWindowWindowOfADay) {
  // span 90 min: 01:00 is in sub-window 0, 02:00 in sub-window 1.
  const Zone zone = sliding_window(/*limit=*/2, /*window_ms=*/86400000);
  EXPECT_EQ(check(kT0 + kHour, zone), Allowed(2, 1, 0));
  // Sub-window 0 leaves at 17 * 90 min = 25 h 30 min.
  EXPECT_EQ(check(kT0 + 2 * kHour, zone), Allowed(2, 0, 84600000));
  EXPECT_EQ(check(kT0 + 25 * kHour + 30 * kMinute - 1, zone), Rejected(2, 0, 1));
  EXPECT_EQ(check(kT0 + 25 * kHour + 30 * kMinute, zone), Allowed(2, 0, 5400000));
  // The key lives until sub-window 17 leaves, at 34 * 90 min = 51 h.
  EXPECT_GT(pttl("client"), 91800000 - 1000);
  EXPECT_LE(pttl("client"), 91800000);
}

TEST_F(CheckScriptTest, SlidingWindowWindowOfAMillisecond) {
  // span ceil(1000 / 16) = 63 µs; `start` begins a sub-window.
  const uint64_t start = kT0 + 63 - kT0 % 63;
  const Zone zone = sliding_window(/*limit=*/2, /*window_ms=*/1);
  // Sub-window 0 leaves at 17 * 63 = 1071 µs, sub-window 7 at 24 * 63 = 1512 µs.
  EXPECT_EQ(check_in_one_transaction(zone, {start, start + 500, start + 1070, start + 1071,
                                            start + 1511, start + 1512}),
            (std::vector<Verdict>{Allowed(2, 1, 0), Allowed(2, 0, 1), Rejected(2, 0, 1),
                                  Allowed(2, 0, 1), Rejected(2, 0, 1), Allowed(2, 0, 1)}));
}

TEST_F(CheckScriptTest, SlidingWindowLargeLimitAndAYearsWindow) {
  // 2^30 per 365 days: span 22.8 days. Times and counts stay far below 2^53.
  const uint64_t limit = 1ull << 30;
  const Zone zone = sliding_window(limit, /*window_ms=*/31536000000);
  const uint64_t span = 31536000000ull * 1000 / 16;
  const uint64_t start = kT0 - kT0 % span;  // a sub-window's start
  EXPECT_EQ(check(start, with_cost(zone, limit / 2)), Allowed(limit, limit / 2, 0));
  EXPECT_EQ(check(start + kSecond, with_cost(zone, limit / 2 - 1)), Allowed(limit, 1, 0));
  // 17 spans after `start`, less the 2 s since.
  const uint64_t leaves_ms = 17 * span / 1000;
  EXPECT_EQ(check(start + 2 * kSecond, zone), Allowed(limit, 0, leaves_ms - 2000));
  EXPECT_EQ(check(start + 3 * kSecond, zone), Rejected(limit, 0, leaves_ms - 3000));
  EXPECT_EQ(check(start + 3 * kSecond, with_cost(zone, limit)), Rejected(limit, 0, leaves_ms - 3000));
  EXPECT_EQ(check(start + 17 * span - 1, zone), Rejected(limit, 0, 1));
  EXPECT_EQ(check(start + 17 * span, with_cost(zone, limit)), Allowed(limit, 0, 17 * span / 1000));
}

TEST_F(CheckScriptTest, SlidingWindowKeyLivesUntilItsNewestSubWindowLeaves) {
  // span 3.75 s: 15 s is in sub-window 4, which leaves at 21 * 3.75 s = 78.75 s.
  const Zone zone = sliding_window(/*limit=*/10, /*window_ms=*/60000);
  check(kT0 + 15 * kSecond, zone);
  EXPECT_GT(pttl("client"), 63750 - 1000);
  EXPECT_LE(pttl("client"), 63750);
}

// The first request of a sub-window sets the TTL; the next ones of the same
// sub-window keep it (SET ... KEEPTTL), as they would set the same expiry.
TEST_F(CheckScriptTest, SlidingWindowLaterRequestsOfTheSubWindowKeepTheKeysTtl) {
  const Zone zone = sliding_window(/*limit=*/10, /*window_ms=*/60000);
  check(kT0 + 15 * kSecond, zone);
  ASSERT_EQ(command({"PEXPIRE", "client", "100000"})->integer, 1);
  check(kT0 + 18 * kSecond, zone);  // sub-window 4 still: kept
  EXPECT_GT(pttl("client"), 99000);
  check(kT0 + 19 * kSecond, zone);  // sub-window 5, leaves at 22 * 3.75 s = 82.5 s
  EXPECT_GT(pttl("client"), 63500 - 1000);
  EXPECT_LE(pttl("client"), 63500);
  const SlidingWindowState state = unpack_sliding_window(get("client"));
  ASSERT_TRUE(state.valid);
  EXPECT_EQ(state.tag, 'W');
  EXPECT_EQ(state.span, 3750000u);
  EXPECT_EQ(state.newest, kT0 / 3750000 + 5);
  EXPECT_EQ(state.counts[15], 2u);
  EXPECT_EQ(state.counts[16], 1u);
}

// The state a key holds is at most a few hundred bytes, whatever the limit.
TEST_F(CheckScriptTest, SlidingWindowStateIsSmallWhateverTheLimit) {
  const Zone zone = sliding_window(/*limit=*/1u << 30, /*window_ms=*/3600000);
  for (uint64_t i = 0; i < 40; ++i) {
    check(kT0 + i * 4 * kMinute, with_cost(zone, 12345678));
  }
  EXPECT_EQ(get("client").size(), 85u);
  EXPECT_LE(integer({"MEMORY", "USAGE", "client", "SAMPLES", "0"}), 200);
}

// A client that waits reset_ms (what Retry-After and X-RateLimit-Reset
// announce, rounded up to seconds) passes, and not a millisecond sooner,
// whatever the counts: random sequences, each rejection probed on a copy of
// the key.
TEST_F(CheckScriptTest, SlidingWindowWaitingResetMsIsExactlyEnough) {
  std::mt19937_64 random(20261201);
  size_t probed = 0;
  for (int sequence = 0; sequence < 20; ++sequence) {
    command({"DEL", "client"});
    const uint64_t limit = 1 + random() % 12;
    const Zone zone = sliding_window(limit, /*window_ms=*/1000 + random() % 3000);
    uint64_t now = kT0 + random() % kSecond;
    for (int step = 0; step < 60; ++step) {
      now += random() % (200 * kMs);
      const uint64_t cost = 1 + random() % std::min<uint64_t>(limit, 3);
      const Verdict verdict = check(now, with_cost(zone, cost));
      if (verdict.allowed || verdict.reset_ms == 0) {
        continue;
      }
      const std::string state = get("client");
      Zone probe = with_cost(zone, cost);
      probe.key = "probe";
      command({"SET", "probe", state});
      EXPECT_TRUE(check(now + verdict.reset_ms * kMs, probe).allowed) << "sequence " << sequence;
      command({"SET", "probe", state});
      EXPECT_FALSE(check(now + (verdict.reset_ms - 1) * kMs, probe).allowed) << "sequence " << sequence;
      probed++;
    }
  }
  EXPECT_GT(probed, 100u);
}

}  // namespace
}  // namespace rate_guard
