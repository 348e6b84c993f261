// A rolling upgrade: the previous release's check script (commit 435628b,
// tests/redis/fixtures/) and this one on the same keys of one Redis, as an
// old and a new server of one fleet. Neither misreads the other's state: the
// old script reads the new layout as empty (its pattern cannot match the
// tag) and writes its own over it; the new script reads the old
// "index:current:previous" and charges each count as made at the latest
// moment it can have been.
#include "check_script_fixture.h"
#include "previous_check_script_lua.h"

#include <regex>

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

class MixedVersions : public CheckScriptTest {
 protected:
  void SetUp() override {
    CheckScriptTest::SetUp();
    previous_ = load(kPreviousCheckScriptLua);
  }
  bool old_layout(const std::string& value) {
    return std::regex_match(value, std::regex("[0-9]+:[0-9]+:[0-9]+"));
  }
  std::string previous_;
};

TEST_F(MixedVersions, PreviousReleaseReadsTheNewStateAsEmpty) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  check(kT0, zone);
  check(kT0 + 100 * kMs, zone);
  check(kT0 + 200 * kMs, zone);
  EXPECT_FALSE(check(kT0 + 300 * kMs, zone).allowed);
  const std::string state = get("client");
  ASSERT_TRUE(unpack_sliding_window(state).valid);
  EXPECT_FALSE(old_layout(state));
  // The old script sees no count (3 remain before it), and starts the key
  // over in its own layout: the new script's 3 are forgotten.
  EXPECT_EQ(check(kT0 + 300 * kMs, zone, previous_), Allowed(3, 2, 0));
  EXPECT_EQ(get("client"), "1700006400:1:0");
}

// Each old count is charged as made at the latest moment it can have been:
// the current window's at now (or the window's last µs), the previous
// window's at its last µs. It then stays counted at least as long as if the
// new script had recorded it.
TEST_F(MixedVersions, NewReleaseChargesOldCountsAtTheirLatestMoment) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  // The old script: 2 in window 0 (at 500 ms), 1 in window 1 (at 1100 ms).
  EXPECT_TRUE(check(kT0 + 500 * kMs, zone, previous_).allowed);
  EXPECT_TRUE(check(kT0 + 500 * kMs, zone, previous_).allowed);
  EXPECT_TRUE(check(kT0 + 1100 * kMs, zone, previous_).allowed);
  EXPECT_EQ(get("client"), "1700006401:1:2");
  // At 1500 ms: the previous 2 as made at 999.999 ms (sub-window 15, leaves
  // at 32 * 62.5 ms = 2 s), the current 1 at 1500 ms (sub-window 24). A
  // sliding_log would have let one through here already (the two of 500 ms
  // left at 1500 ms).
  EXPECT_EQ(check(kT0 + 1500 * kMs, zone), Rejected(3, 0, 500));
  // The rejection wrote the converted state (without the request), so the
  // wait it announced holds: at 2 s the previous 2 have left.
  SlidingWindowState state = unpack_sliding_window(get("client"));
  ASSERT_TRUE(state.valid);
  EXPECT_EQ(state.newest, kT0 / 62500 + 24);
  EXPECT_EQ(state.counts, (std::vector<uint32_t>{0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
  EXPECT_EQ(check(kT0 + 2 * kSecond, zone), Allowed(3, 1, 0));
  state = unpack_sliding_window(get("client"));
  EXPECT_EQ(state.newest, kT0 / 62500 + 32);
  EXPECT_EQ(state.counts, (std::vector<uint32_t>{0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}));
}

TEST_F(MixedVersions, NewReleaseNeverAdmitsOverTheOldCountsItConverted) {
  // The old script fills window 0 up to its last µs; the new script, right
  // after, finds it full for a whole window from then.
  const Zone zone = sliding_window(/*limit=*/5, /*window_ms=*/1000);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(check(kT0 + kSecond - 1, zone, previous_).allowed);
  }
  EXPECT_EQ(check(kT0 + kSecond, zone), Rejected(5, 0, 1000));
  EXPECT_EQ(check(kT0 + 2 * kSecond - 1, zone), Rejected(5, 0, 1));
  EXPECT_EQ(check(kT0 + 2 * kSecond, zone), Allowed(5, 4, 0));
}

// Read again later, an old state would charge its current count later still
// (at the end of its window): the first conversion is kept, so that a client
// that waits what the rejection announced passes.
TEST_F(MixedVersions, WaitingWhatARejectionOfAnOldStateAnnouncedIsEnough) {
  const Zone zone = sliding_window(/*limit=*/5, /*window_ms=*/1000);
  for (int i = 0; i < 5; ++i) {
    EXPECT_TRUE(check(kT0 + 100 * kMs, zone, previous_).allowed);
  }
  // Charged at 200 ms (sub-window 3, leaves at 20 * 62.5 ms = 1250 ms).
  const Verdict rejected = check(kT0 + 200 * kMs, zone);
  EXPECT_EQ(rejected, Rejected(5, 0, 1050));
  EXPECT_TRUE(check(kT0 + 200 * kMs + rejected.reset_ms * kMs, zone).allowed);
}

// Another algorithm's state, or a state of another window (a reload), is
// never read as counts of another meaning.
TEST_F(MixedVersions, OtherLayoutsReadAsEmptyOrAreConverted) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  command({"SET", "client", "1700006400:3"});  // fixed_window's, or token_bucket's
  EXPECT_EQ(check(kT0 + 100 * kMs, zone), Allowed(3, 2, 0));
  command({"SET", "client", std::string("X") + std::string(84, '\0')});  // a later layout
  EXPECT_EQ(check(kT0 + 100 * kMs, zone), Allowed(3, 2, 0));
  // The same zone with a 2 s window before a reload: its 3 counts of
  // sub-window [0, 125 ms), charged at 124.999 ms (sub-window 1 of 62.5 ms,
  // which leaves at 18 * 62.5 ms = 1125 ms), still fill the 1 s window.
  command({"DEL", "client"});
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(check(kT0 + 100 * kMs, sliding_window(3, 2000)).allowed);
  }
  EXPECT_EQ(check(kT0 + 200 * kMs, zone), Rejected(3, 0, 925));
  EXPECT_EQ(check(kT0 + 1125 * kMs, zone), Allowed(3, 2, 0));
}

// A client whose requests alternate between an old and a new server, and
// what the README says of it: each version's write discards what the other
// could not read, so while both serve one client, the limit does not hold
// (the new script's counts are lost whenever an old server writes). Every
// decision is still one of the two layouts' own, and no call fails.
TEST_F(MixedVersions, AlternatingServersNeverMisreadEachOther) {
  const Zone zone = sliding_window(/*limit=*/10, /*window_ms=*/1000);
  std::mt19937_64 random(20261204);
  uint64_t now = kT0 + 123 * kMs;
  size_t passed_old = 0, passed_new = 0;
  for (int i = 0; i < 400; ++i) {
    now += random() % (20 * kMs);
    const bool old_server = random() % 2 == 0;
    const Verdict verdict = check(now, zone, old_server ? previous_ : "");
    ASSERT_EQ(verdict.limit, 10u);
    (old_server ? passed_old : passed_new) += verdict.allowed;
    const std::string state = get("client");
    if (verdict.allowed) {
      // The writer's own layout.
      EXPECT_EQ(old_layout(state), old_server) << "request " << i;
      EXPECT_EQ(unpack_sliding_window(state).valid, !old_server) << "request " << i;
    }
  }
  RecordProperty("passed_old", static_cast<int>(passed_old));
  RecordProperty("passed_new", static_cast<int>(passed_new));
  std::cout << "alternating at random over about 4 s, limit 10 per 1 s: " << passed_old << " passed the old, "
            << passed_new << " the new\n";
}

}  // namespace
}  // namespace rate_guard
