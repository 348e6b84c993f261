// The check script: sliding_window and token_bucket against exact models.
#include "check_script_fixture.h"

#include <map>

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

// ========================================================= every magnitude

// sliding_window and token_bucket, in exact 128-bit integer arithmetic and
// written from their rules, not from the script: the script computes them in
// doubles while every product stays below 2^51, and in limbs past that (a
// billion a day, a year's window).
__extension__ typedef __int128 Wide;

uint64_t narrow(Wide value) { return static_cast<uint64_t>(value); }
Wide ceil_div(Wide a, Wide b) { return (a + b - 1) / b; }

// The smallest ms >= 0 for which passes(now + ms * 1000) holds, passes being
// false and then true (at `last` ms at the latest).
template <typename Passes>
uint64_t first_ms(Wide now, Wide last, Passes passes) {
  Wide low = 0;
  Wide high = last;
  while (low < high) {
    const Wide middle = (low + high) / 2;
    if (passes(now + middle * 1000)) {
      high = middle;
    } else {
      low = middle + 1;
    }
  }
  return narrow(low);
}

// 16 sub-windows of span = ceil(window / 16); the estimate at sub-window i
// counts sub-windows i - 16 .. i whole (see src/lua/sliding_window.lua).
struct SlidingWindowModel {
  static constexpr Wide kSubWindows = 16;
  SlidingWindowModel(Wide limit_, Wide window_) : limit(limit_), window(window_) {}
  Wide limit, window;  // window in µs
  Wide span = ceil_div(window, kSubWindows);
  Wide newest = -1;
  std::map<Wide, Wide> counts;  // by sub-window

  Wide estimate(Wide i) const {
    Wide sum = 0;
    for (const auto& [x, n] : counts) {
      sum += x >= i - kSubWindows && x <= i ? n : 0;
    }
    return sum;
  }
  // The ms until the oldest counts of i's estimate that add up to `excess`
  // have left: sub-window x leaves at (x + 17) * span.
  uint64_t wait(Wide now, Wide i, Wide excess) const {
    Wide gone = 0, x = i - kSubWindows;
    for (; x < i; ++x) {
      gone += counts.count(x) ? counts.at(x) : 0;
      if (gone >= excess) {
        break;
      }
    }
    return narrow(ceil_div((x + kSubWindows + 1) * span - now, 1000));
  }
  // One request; recorded if allowed, with the key's TTL in `ttl_ms`, or 0
  // when the key keeps its TTL (a write in the sub-window it already holds).
  Verdict check(Wide now, Wide c, uint64_t* ttl_ms) {
    const Wide i = now / span;
    const Wide e = estimate(i);
    const uint64_t left = narrow(std::max<Wide>(0, limit - e));
    if (c > limit) {
      return Rejected(narrow(limit), left, narrow(window / 1000));
    }
    const Wide remaining = limit - e - c;
    if (remaining < 0) {
      return Rejected(narrow(limit), left, wait(now, i, -remaining));
    }
    counts[i] += c;
    const uint64_t reset = remaining > 0 ? 0 : wait(now, i, 1);
    *ttl_ms = newest == i ? 0 : narrow(ceil_div((i + kSubWindows + 1) * span - now, 1000));
    newest = i;
    return Allowed(narrow(limit), narrow(remaining), reset);
  }
  // As the script packs it: 'W', the span and the newest index as
  // little-endian doubles, 17 little-endian uint32 counts by x % 17.
  std::string state() const {
    std::string packed(1 + 8 + 8 + 4 * (kSubWindows + 1), '\0');
    packed[0] = 'W';
    const double span_double = static_cast<double>(narrow(span));
    const double newest_double = static_cast<double>(narrow(newest));
    std::memcpy(&packed[1], &span_double, 8);
    std::memcpy(&packed[9], &newest_double, 8);
    for (Wide x = newest - kSubWindows; x <= newest; ++x) {
      const uint32_t n = counts.count(x) ? static_cast<uint32_t>(counts.at(x)) : 0;
      std::memcpy(&packed[17 + 4 * static_cast<size_t>(x % (kSubWindows + 1))], &n, 4);
    }
    return packed;
  }
};

struct TokenBucketModel {
  Wide limit, window, burst;  // window in µs
  Wide tat = 0, rem = 0;      // the TAT: tat + rem / limit µs

  bool passes(Wide t, Wide tat_, Wide rem_, Wide c) const {
    if (tat_ < t) {
      return c <= burst;
    }
    return (tat_ - t) * limit + rem_ <= (burst - c) * window;
  }
  uint64_t wait(Wide now, Wide tat_, Wide rem_, Wide c) const {
    return first_ms(now, (tat_ - now) / 1000 + 1,
                    [&](Wide t) { return passes(t, tat_, rem_, c); });
  }
  Verdict check(Wide now, Wide c, uint64_t* ttl_ms) {
    Wide t = tat, r = rem;
    if (t < now) {
      t = now;
      r = 0;
    }
    const Wide spent = ceil_div((t - now) * limit + r, window);
    const uint64_t tokens = narrow(std::max<Wide>(0, burst - spent));
    Wide new_tat = t + c * window / limit, new_rem = r + c * window % limit;
    if (new_rem >= limit) {
      new_tat += 1;
      new_rem -= limit;
    }
    if (c > burst) {
      return Rejected(narrow(burst), tokens, narrow(window / 1000));
    }
    if (!passes(now, t, r, c)) {
      return Rejected(narrow(burst), tokens, wait(now, t, r, c));
    }
    const uint64_t remaining = tokens - narrow(c);
    const uint64_t reset = remaining > 0 ? 0 : wait(now, new_tat, new_rem, 1);
    tat = new_tat;
    rem = new_rem;
    *ttl_ms = narrow(ceil_div(new_tat - now + (new_rem > 0 ? 1 : 0), 1000));
    return Allowed(narrow(burst), remaining, reset);
  }
  std::string state() const { return std::to_string(narrow(tat)) + ":" + std::to_string(narrow(rem)); }
};

// Random sequences of requests against the models: every verdict, every
// recorded state and TTL. Each sequence is one transaction, and each check is
// followed by a PERSIST: a script sees keys expire in real time, even in a
// transaction, and a TTL of a millisecond must not end a sequence early.
TEST_F(CheckScriptTest, SlidingWindowAndTokenBucketAreExactAtEveryMagnitude) {
  const uint64_t limits[] = {1, 2, 3, 7, 10, 100, 999, 12345, 1000000, 999999937, 1u << 30};
  const uint64_t windows_ms[] = {1, 7, 1000, 60000, 3600000, 86400000, 31536000000,
                                 1ull << 40};
  std::mt19937_64 random(20261124);
  auto pick = [&](uint64_t bound) { return bound == 0 ? 0 : random() % bound; };
  size_t exact_paths = 0, fast_paths = 0, allowed = 0, rejected = 0;
  for (int sequence = 0; sequence < 400 && !HasFailure(); ++sequence) {
    const bool bucket = sequence % 2 == 1;
    const uint64_t limit = limits[pick(std::size(limits))];
    const uint64_t window_ms = windows_ms[pick(std::size(windows_ms))];
    const uint64_t window = window_ms * kMs;
    uint64_t burst = limit;
    if (bucket && pick(2) == 0) {
      burst = limits[pick(std::size(limits))];
    }
    // Like every time in the script, the TAT (at most burst emission
    // intervals ahead) must stay below 2^53 µs.
    burst = std::max<uint64_t>(
        1, std::min<uint64_t>(burst, static_cast<uint64_t>(static_cast<Wide>(2'000'000'000'000'000) *
                                                           limit / window)));
    Zone zone = bucket ? token_bucket(limit, window_ms, burst, "exact")
                       : sliding_window(limit, window_ms, "exact");
    // token_bucket's limb arithmetic takes over from 2^51 (see EXACT in
    // src/lua/prelude.lua); sliding_window has no product that large.
    if (static_cast<double>(std::max(limit, burst)) * static_cast<double>(window) >=
        2251799813685248.0) {
      exact_paths++;
    } else {
      fast_paths++;
    }
    SlidingWindowModel sliding{limit, window};
    TokenBucketModel tokens{limit, window, burst};

    // The requests: times and costs.
    std::vector<uint64_t> times, costs;
    uint64_t now = kT0 + pick(window);
    // sliding_window's times stay below 2^53 µs (Redis's clock is near 2^50).
    const uint64_t last = bucket ? 4'000'000'000'000'000ull : (1ull << 53) - 2 * window;
    for (int i = 0; i < 30 && now < last; ++i) {
      times.push_back(now);
      const uint64_t top = bucket ? burst : limit;
      const uint64_t choices[] = {1, 1, 2, top, top + 1, 1 + pick(top), std::max<uint64_t>(1, top / 3)};
      costs.push_back(std::min<uint64_t>(1u << 30, choices[pick(std::size(choices))]));
      const uint64_t interval = std::max<uint64_t>(1, window / std::max<uint64_t>(1, limit));
      const uint64_t steps[] = {0, 1, pick(1000), pick(2 * interval), interval, pick(window),
                                window - 1, window};
      now += steps[pick(std::size(steps))];
    }
    // Per check: Redis's time before and after, and the absolute expiry.
    constexpr size_t kPerCheck = 6;
    std::vector<std::vector<std::string>> commands = {{"DEL", "exact"}};
    for (size_t i = 0; i < times.size(); ++i) {
      commands.push_back({"TIME"});
      commands.push_back(evalsha_args(times[i], {Request{with_cost(zone, costs[i])}}));
      commands.push_back({"GET", "exact"});
      commands.push_back({"PEXPIRETIME", "exact"});
      commands.push_back({"PERSIST", "exact"});
      commands.push_back({"TIME"});
    }
    Reply exec = transaction(commands);
    ASSERT_NE(exec, nullptr);
    auto time_ms = [](const redisReply* time) {
      return std::stoll(time->element[0]->str) * 1000 + std::stoll(time->element[1]->str) / 1000;
    };
    std::string expected_state = "(nil)";
    for (size_t i = 0; i < times.size(); ++i) {
      uint64_t ttl_ms = 0;
      const Verdict expected = bucket ? tokens.check(times[i], costs[i], &ttl_ms)
                                      : sliding.check(times[i], costs[i], &ttl_ms);
      if (expected.allowed) {
        expected_state = bucket ? tokens.state() : sliding.state();
        allowed++;
      } else {
        rejected++;
      }
      const redisReply* const* replies = exec->element + 1 + kPerCheck * i;
      std::vector<Verdict> got = decode(replies[1], 1);
      const std::string state = replies[2]->type == REDIS_REPLY_STRING
                                    ? std::string(replies[2]->str, replies[2]->len)
                                    : "(nil)";
      const long long expires_at = replies[3]->integer;
      SCOPED_TRACE(::testing::Message()
                   << (bucket ? "token_bucket" : "sliding_window") << " limit " << limit
                   << " window_ms " << window_ms << " burst " << burst << ", request " << i
                   << " at kT0 + " << times[i] - kT0 << " cost " << costs[i]);
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(got[0], expected);
      EXPECT_EQ(state, expected_state);
      if (expected.allowed && ttl_ms > 0) {
        // Set to expire `ttl_ms` after the script ran, by Redis's clock.
        EXPECT_GE(expires_at - static_cast<long long>(ttl_ms), time_ms(replies[0]));
        EXPECT_LE(expires_at - static_cast<long long>(ttl_ms), time_ms(replies[5]));
      } else if (expected.allowed) {
        // Kept: none since the test's PERSIST.
        EXPECT_EQ(expires_at, -1);
      } else {
        // Left alone: persisted after the last recorded request, or none yet.
        EXPECT_EQ(expires_at, expected_state == "(nil)" ? -2 : -1);
      }
      if (HasFailure()) {
        break;
      }
    }
  }
  // Both kinds of arithmetic, and both verdicts, were exercised.
  RecordProperty("exact_paths", static_cast<int>(exact_paths));
  RecordProperty("fast_paths", static_cast<int>(fast_paths));
  RecordProperty("allowed", static_cast<int>(allowed));
  RecordProperty("rejected", static_cast<int>(rejected));
  EXPECT_GT(exact_paths, 80u);
  EXPECT_GT(fast_paths, 80u);
  EXPECT_GT(allowed, 1000u);
  EXPECT_GT(rejected, 1000u);
}

}  // namespace
}  // namespace rate_guard
