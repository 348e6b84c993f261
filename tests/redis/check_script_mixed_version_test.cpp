// A rolling upgrade: the previous release's check script (commit 435628b,
// from `git archive`, see CMakeLists.txt) and this one on the same key of one
// Redis. In a fleet they never share one (this release's sliding_window keys are
// "<zone>@sw2": tests/e2e/mixed_version.sh runs both modules on one Redis);
// should they meet, neither misreads the other's state: each reads the
// other's layout as empty (no pattern of one matches the other) and writes
// its own over it.
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
    previous_ = load(kPreviousCheckScriptLua, /*rule_keys=*/false);
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

// The new script reads the previous release's "index:current:previous" as
// empty, never as counts of its own layout. (In a fleet the two never share
// a key: this one's is "<zone>@sw2", see RedisKey.SlidingWindowKeysCarryTheir
// LayoutMark; this is the guard should one ever be found there.)
TEST_F(MixedVersions, NewReleaseReadsTheOldLayoutAsEmpty) {
  const Zone zone = sliding_window(/*limit=*/3, /*window_ms=*/1000);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(check(kT0 + 500 * kMs, zone, previous_).allowed);
  }
  EXPECT_EQ(get("client"), "1700006400:3:0");
  EXPECT_FALSE(check(kT0 + 500 * kMs, zone, previous_).allowed);
  EXPECT_EQ(check(kT0 + 600 * kMs, zone), Allowed(3, 2, 0));
  const SlidingWindowState state = unpack_sliding_window(get("client"));
  ASSERT_TRUE(state.valid);
  EXPECT_EQ(state.counts, (std::vector<uint32_t>{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}));
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

}  // namespace
}  // namespace rate_guard
