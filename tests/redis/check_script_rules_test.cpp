// Rules (lua/check_script.h, issue 15): a zone's rule key, beside its state
// key, read by the same MGET, may hold "ban=<ms>", "rate=<N>/<W>" or
// "rate=unlimited" (fields separated by spaces, any order, the unknown and
// the malformed ignored). A ban rejects the zone until its end, recording the
// request nowhere; an override decides the zone as a zone of N per W would;
// unlimited passes it counting nothing there. Requests, merged and lease
// entries obey them (no grant under a ban or unlimited); a hand-back takes
// the override's window only; each zone decided under a rule is reported by
// an event after the entries' integers. Time is pinned through ARGV[1]. A
// mutant of the script that gets a rule wrong fails these scenarios: they
// can tell.
#include "check_script_fixture.h"

#include <functional>

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

using Integers = std::vector<uint64_t>;

// A ban's field, ending at `end_us` (whole ms).
std::string ban_until(uint64_t end_us) { return "ban=" + std::to_string(end_us / kMs); }

class Rules : public CheckScriptTest {
 protected:
  // The scenarios the mutants below must fail, of this script or of the one
  // `sha` names; each true when the script does what it must.

  // A ban ends at its time: rejected 1 µs before it, decided by the
  // algorithm (and recorded) at it.
  bool ban_ends_at_its_end(const Zone& zone, const std::string& sha = "") {
    const uint64_t end = kT0 + 2500 * kMs;
    set_rule(zone, ban_until(end));
    const Answer before = answered(end - 1, {plain(zone)}, sha);
    const bool untouched = !exists(zone.key);
    const Answer at = answered(end, {plain(zone)}, sha);
    return before.entries[0] == Integers{0, zone.limit, 0, 1} && before.events == Integers{1 * 2 + kRuleBanned} &&
           untouched && at.entries[0] == Integers{1, zone.limit, zone.limit - 1, 0} && at.events.empty() &&
           exists(zone.key);
  }

  // Unlimited passes every request and records none (the other zones of
  // the request, yes).
  bool unlimited_records_nothing(const Zone& zone, const std::string& sha = "") {
    const Zone other = fixed_window(5, 60000, "other");
    set_rule(zone, "rate=unlimited");
    bool right = true;
    for (uint64_t i = 0; i < 3; ++i) {
      const Answer answer = answered(kT0, {request({zone, other})}, sha);
      right = right && answer.entries[0] == Integers{1, zone.limit, zone.limit, 0, 1, 5, 4 - i, 0} &&
              answer.events == Integers{1 * 2 + kRuleOverride};
    }
    return right && !exists(zone.key) && get("other") == std::to_string(kT0 / kMinute) + ":3";
  }

  // A lease entry under a ban passes nothing and is granted nothing.
  bool no_grant_under_a_ban(const Zone& zone, const std::string& sha = "") {
    set_rule(zone, ban_until(kT0 + kSecond));
    const Answer answer = answered(kT0, {lease(zone, 2, 10, 100)}, sha);
    return answer.entries[0] == Integers{0, zone.limit, 0, 0, 1000, 0, 0, 0} && !exists(zone.key);
  }

  // A lease lives at most kMaxLeaseLifetimeMs (a 16th of a minute's window
  // would be 3750 ms): 1000 ms, and 4 of the 20 units asked for 5000 ms.
  bool lease_lives_at_most_a_second(const Zone& zone, const std::string& sha = "") {
    const Answer answer = answered(kT0, {lease(zone, 1, 20, 5000)}, sha);
    return answer.entries[0].size() == 8 && answer.entries[0][5] == 4 && answer.entries[0][6] == 1000;
  }

  // A hand-back under rate=40/2000 takes the units of a fixed_window grant
  // back: the grant's window is the override's.
  bool hand_back_takes_the_overrides_window(const std::string& sha = "") {
    const Zone zone = fixed_window(5, 60000, "hb");
    set_rule(zone, "rate=40/2000");
    const Answer grant = answered(kT0 + 10 * kMs, {lease(zone, 1, 100, 1000)}, sha);
    const uint64_t units = grant.entries[0].at(5), mark = grant.entries[0].at(7);
    const Answer back = answered(kT0 + 50 * kMs, {hand_back(zone, units, units, mark)}, sha);
    return units > 0 && back.entries[0] == Integers{units};
  }
};

class RulesEveryAlgorithm : public Rules, public ::testing::WithParamInterface<Algorithm> {
 protected:
  // A zone of this algorithm (token_bucket: the burst is the limit).
  Zone zone(uint64_t limit, uint64_t window_ms, const std::string& key) const {
    return make_zone(GetParam(), limit, window_ms, key);
  }
};

// ===================================================================== bans

TEST_P(RulesEveryAlgorithm, ABanRejectsUntilItsEndAndRecordsTheRequestNowhere) {
  const Zone banned = zone(5, 60000, "banned");
  const Zone other = fixed_window(5, 60000, "other");
  answered(kT0, {plain(other)});
  const std::string other_before = dump("other");
  set_rule(banned, ban_until(kT0 + 2500 * kMs));
  // 1499.7 ms before the ban's end: rejected with the usual limit, nothing
  // left, 1500 ms to wait; the other zone answers for itself (3 would
  // remain), but records nothing either. A merged entry: none of its 3
  // pass; a lease entry: none, nothing granted.
  const Answer answer =
      answered(kT0 + 1000 * kMs + 300, {request({banned, other}), merged(banned, 3), lease(banned, 2, 10, 100)});
  EXPECT_EQ(answer.entries[0], (Integers{0, 5, 0, 1500, 1, 5, 3, 0}));
  EXPECT_EQ(answer.entries[1], (Integers{0, 5, 0, 0, 1500}));
  EXPECT_EQ(answer.entries[2], (Integers{0, 5, 0, 0, 1500, 0, 0, 0}));
  // The zones of KEYS 1 (the request's first), 3 (merged), 4 (lease).
  EXPECT_EQ(answer.events, (Integers{1 * 2 + kRuleBanned, 3 * 2 + kRuleBanned, 4 * 2 + kRuleBanned}));
  EXPECT_FALSE(exists("banned"));
  EXPECT_EQ(dump("other"), other_before);
}

TEST_P(RulesEveryAlgorithm, ABanEndsAtItsTime) {
  EXPECT_TRUE(ban_ends_at_its_end(zone(5, 60000, "banned")));
}

TEST_P(RulesEveryAlgorithm, ALeaseEntryUnderABanIsGrantedNothing) {
  EXPECT_TRUE(no_grant_under_a_ban(zone(40, 60000, "banned")));
}

// ================================================================ overrides

TEST_P(RulesEveryAlgorithm, AnOverrideRaisesTheLimit) {
  // 2 a minute, 5 for this key: decided exactly as a zone of 5 a minute
  // ("like", no rule), the limit answered 5; the sixth rejected.
  const Zone ruled = zone(2, 60000, "ruled");
  const Zone like = zone(5, 60000, "like");
  set_rule(ruled, "rate=5/60000");
  for (uint64_t i = 0; i < 6; ++i) {
    const Answer answer = answered(kT0 + i * kSecond, {plain(ruled)});
    EXPECT_EQ(answer.entries[0], answered(kT0 + i * kSecond, {plain(like)}).entries[0]) << i;
    EXPECT_EQ(answer.entries[0].at(0), i < 5 ? 1u : 0u) << i;
    EXPECT_EQ(answer.entries[0].at(1), 5u) << i;
    EXPECT_EQ(answer.events, Integers{1 * 2 + kRuleOverride}) << i;
  }
}

TEST_P(RulesEveryAlgorithm, AnOverrideLowersTheLimitAndSetsTheWindow) {
  // 5 a minute, 2 a second for this key: as a zone of 2 a second, in plain
  // and merged entries; the third request within the second is rejected
  // (the zone's own 5 a minute would take it), with a wait of that window's.
  const Zone ruled = zone(5, 60000, "ruled");
  const Zone like = zone(2, 1000, "like");
  set_rule(ruled, "rate=2/1000");
  const std::vector<uint64_t> times = {kT0, kT0 + 100 * kMs, kT0 + 200 * kMs, kT0 + 1100 * kMs};
  for (uint64_t now : times) {
    const Answer answer = answered(now, {plain(ruled)});
    EXPECT_EQ(answer.entries[0], answered(now, {plain(like)}).entries[0]) << (now - kT0) / kMs << " ms";
    EXPECT_EQ(answer.entries[0].at(1), 2u);
    EXPECT_EQ(answer.events, Integers{1 * 2 + kRuleOverride});
    if (now == kT0 + 200 * kMs) {
      EXPECT_EQ(answer.entries[0].at(0), 0u);
      EXPECT_LE(answer.entries[0].at(3), 1000u);
    }
  }
  const Answer answer = answered(kT0 + 1200 * kMs, {merged(ruled, 3)});
  EXPECT_EQ(answer.entries[0], answered(kT0 + 1200 * kMs, {merged(like, 3)}).entries[0]);
  EXPECT_EQ(answer.entries[0].at(1), 2u);
  EXPECT_EQ(answer.events, Integers{1 * 2 + kRuleOverride});
}

TEST_P(RulesEveryAlgorithm, ALeaseUnderAnOverrideIsGrantedAsUnderItsLimitAndWindow) {
  // 5 a minute, 40 per 2 s for this key: the lease as a zone of 40 per 2 s
  // grants it (a quarter of what remains, for at most a 16th of 2 s).
  const Zone ruled = zone(5, 60000, "ruled");
  const Zone like = zone(40, 2000, "like");
  set_rule(ruled, "rate=40/2000");
  const Answer answer = answered(kT0 + 10 * kMs, {lease(ruled, 1, 100, 1000)});
  EXPECT_EQ(answer.entries[0], answered(kT0 + 10 * kMs, {lease(like, 1, 100, 1000)}).entries[0]);
  EXPECT_GT(answer.entries[0].at(5), 0u);
  EXPECT_LE(answer.entries[0].at(6), 125u);
  EXPECT_EQ(answer.events, Integers{1 * 2 + kRuleOverride});
}

TEST_P(RulesEveryAlgorithm, AHandBackTakesTheOverridesWindowAndIgnoresABan) {
  // A grant under rate=40/2000, then a ban set: the hand-back still gives
  // the units back (a ban is for requests), no event. The grant's window is
  // the override's: fixed_window's mark is a 2 s window's index,
  // sliding_window's a 125 ms sub-window's.
  const Zone ruled = zone(5, 60000, "ruled");
  set_rule(ruled, "rate=40/2000");
  const Answer grant = answered(kT0 + 10 * kMs, {lease(ruled, 1, 100, 1000)});
  const uint64_t units = grant.entries[0].at(5), mark = grant.entries[0].at(7);
  ASSERT_GT(units, 0u);
  set_rule(ruled, ban_until(kT0 + kMinute) + " rate=40/2000");
  const Answer back = answered(kT0 + 50 * kMs, {hand_back(ruled, units, units, mark)});
  // token_bucket takes nothing back (see token_bucket.lua)
  EXPECT_EQ(back.entries[0], Integers{GetParam() == Algorithm::token_bucket ? 0u : units});
  EXPECT_TRUE(back.events.empty());
  // The rule gone, the zone's own window: fixed_window's and
  // sliding_window's mark is then of another window, nothing to take back
  // (sliding_log's marks are times: its entries still go).
  set_rule(ruled, "rate=40/2000");
  const Answer again = answered(kT0 + 60 * kMs, {lease(ruled, 1, 100, 1000)});
  const uint64_t units2 = again.entries[0].at(5), mark2 = again.entries[0].at(7);
  ASSERT_GT(units2, 0u);
  ASSERT_EQ(command({"DEL", rule_key(ruled)})->integer, 1);
  EXPECT_EQ(answered(kT0 + 70 * kMs, {hand_back(ruled, units2, units2, mark2)}).entries[0],
            Integers{GetParam() == Algorithm::sliding_log ? units2 : 0u});
}

// ================================================================ unlimited

TEST_P(RulesEveryAlgorithm, UnlimitedPassesEveryRequestAndRecordsNone) {
  EXPECT_TRUE(unlimited_records_nothing(zone(1, 60000, "free")));
}

TEST_P(RulesEveryAlgorithm, UnlimitedPassesMergedAndLeaseEntriesWithNoGrant) {
  const Zone free = zone(1, 60000, "free");
  set_rule(free, "rate=unlimited");
  const Answer answer = answered(kT0, {merged(free, 4), lease(free, 2, 10, 100)});
  EXPECT_EQ(answer.entries[0], (Integers{4, 1, 1, 0, 0}));
  EXPECT_EQ(answer.entries[1], (Integers{2, 1, 1, 0, 0, 0, 0, 0}));
  EXPECT_EQ(answer.events, (Integers{1 * 2 + kRuleOverride, 2 * 2 + kRuleOverride}));
  EXPECT_FALSE(exists("free"));
}

// ==================================================================== events

TEST_F(Rules, EventsFollowTheEntriesInKeysOrderOnePerZoneDecidedUnderARule) {
  const Zone plain_zone = fixed_window(5, 60000, "x");
  const Zone banned = fixed_window(5, 60000, "y");
  const Zone ruled = fixed_window(5, 60000, "z");
  const Zone free = fixed_window(5, 60000, "w");
  set_rule(banned, ban_until(kT0 + kSecond));
  set_rule(ruled, "rate=10/60000");
  set_rule(free, "rate=unlimited");
  // KEYS: x y | z | w | z (hand-back) | y (charge) | z (lease) | x
  const Answer answer = answered(kT0, {request({plain_zone, banned}), plain(ruled), merged(free, 2),
                                       hand_back(ruled, 1, 1, 0), charge(banned, 1), lease(ruled, 1, 4, 10),
                                       plain(plain_zone)});
  EXPECT_EQ(answer.entries[0], (Integers{1, 5, 4, 0, 0, 5, 0, 1000}));
  EXPECT_EQ(answer.entries[1], (Integers{1, 10, 9, 0}));
  EXPECT_EQ(answer.entries[2], (Integers{2, 5, 5, 0, 0}));
  EXPECT_EQ(answer.entries[3], (Integers{0}));  // nothing of mark 0 to take back
  EXPECT_EQ(answer.entries[4], (Integers{4}));  // a ban stops no charge
  EXPECT_EQ(answer.entries[5].at(1), 10u);
  EXPECT_EQ(answer.entries[6], (Integers{1, 5, 4, 0}));  // the banned request recorded nothing
  // None for the hand-back (5), the charge (6) and the zones without a rule.
  EXPECT_EQ(answer.events, (Integers{2 * 2 + kRuleBanned, 3 * 2 + kRuleOverride, 4 * 2 + kRuleOverride,
                                     7 * 2 + kRuleOverride}));
}

TEST_F(Rules, NoRuleNoEvent) {
  const Answer answer = answered(kT0, {plain(sliding_log(5, 60000, "a")), merged(token_bucket(5, 60000, 5, "b"), 2)});
  EXPECT_EQ(answer.entries[0], (Integers{1, 5, 4, 0}));
  EXPECT_EQ(answer.entries[1], (Integers{2, 5, 3, 0, 0}));
  EXPECT_TRUE(answer.events.empty());
}

// ============================================================ the rule text

TEST_P(RulesEveryAlgorithm, MalformedOrUnknownFieldsAreIgnored) {
  const std::vector<std::string> values = {
      "", " ", "ban", "ban=", "ban=x", "ban=-1", "ban=1.5", "ban =99999999999999", "BAN=99999999999999",
      "ban=99999999999999\trate=unlimited", "ban=99999999999999,", "rate=0/60000", "rate=1/0", "rate=1",
      "rate=/60000", "rate=1/", "rate=1073741825/60000", "rate=1/1099511627777", "rate=-1/60000",
      "rate=1.5/60000", "rate=1/60000/2", "rate=Unlimited", "unlimited", "rate=unlimited,", "rate= unlimited",
      "future=1", "ban=1000",  // a ban that ended in 1970
  };
  for (size_t i = 0; i < values.size(); ++i) {
    const Zone z = zone(2, 60000, "key" + std::to_string(i));
    set_rule(z, values[i]);
    const Answer answer = answered(kT0, {plain(z)});
    EXPECT_EQ(answer.entries[0], (Integers{1, 2, 1, 0})) << "\"" << values[i] << "\"";
    EXPECT_TRUE(answer.events.empty()) << "\"" << values[i] << "\"";
  }
  // A rule key of another type than a string: no rule.
  const Zone hashed = zone(2, 60000, "hashed");
  command({"HSET", rule_key(hashed), "ban", "99999999999999"});
  const Answer answer = answered(kT0, {plain(hashed)});
  EXPECT_EQ(answer.entries[0], (Integers{1, 2, 1, 0}));
  EXPECT_TRUE(answer.events.empty());
}

TEST_P(RulesEveryAlgorithm, FieldsComeInAnyOrderBesideUnknownOnesABanFirstThenARateThenUnlimited) {
  const uint64_t later = kT0 + kSecond;
  const std::vector<std::pair<std::string, Integers>> cases = {
      {"x=1 rate=5/60000 y", {1, 5, 4, 0, 1 * 2 + kRuleOverride}},
      {"rate=unlimited " + ban_until(later), {0, 2, 0, 1000, 1 * 2 + kRuleBanned}},
      {"rate=5/60000 " + ban_until(later), {0, 2, 0, 1000, 1 * 2 + kRuleBanned}},
      {ban_until(kT0) + " rate=unlimited", {1, 2, 2, 0, 1 * 2 + kRuleOverride}},  // a ban ended now
      {"rate=unlimited rate=3/60000", {1, 3, 2, 0, 1 * 2 + kRuleOverride}},
      {"rate=3/60000 rate=4/60000", {1, 3, 2, 0, 1 * 2 + kRuleOverride}},  // the first
      // A ban past 2^53 µs (the year 2255) ends then.
      {"ban=99999999999999999999", {0, 2, 0, (9007199254740992 - kT0 + kMs - 1) / kMs, 1 * 2 + kRuleBanned}},
      // The largest limit and window (read_rule writes them out).
      {"rate=1073741824/1099511627776", {1, 1073741824, 1073741823, 0, 1 * 2 + kRuleOverride}},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const Zone z = zone(2, 60000, "key" + std::to_string(i));
    set_rule(z, cases[i].first);
    const Answer answer = answered(kT0, {plain(z)});
    Integers got = answer.entries[0];
    got.insert(got.end(), answer.events.begin(), answer.events.end());
    EXPECT_EQ(got, cases[i].second) << "\"" << cases[i].first << "\"";
  }
}

// ================================================================== leases

TEST_P(RulesEveryAlgorithm, ALeaseLivesAtMostASecondSoThatARuleReachesItsKeyWithinIt) {
  EXPECT_TRUE(lease_lives_at_most_a_second(zone(40, 60000, "leased")));
}

// ================================================================ arguments

// While a slot migrates the module sends a zone's state key in its rule
// key's place (check_batch.h, split_into_zones): that reads as no rule, even
// when the state would read as one.
TEST_F(Rules, ARuleKeyThatIsTheStateKeyIsNoRule) {
  const Zone zone = fixed_window(5, 60000, "migrating");
  command({"SET", zone.key, "ban=99999999999999 rate=1/60000"});
  const std::string now = std::to_string(kT0);
  Reply reply = command({"EVALSHA", sha_, "2", zone.key, zone.key, now, "1", "1", "2", "5", "60000", "5", "1"});
  ASSERT_EQ(reply->type, REDIS_REPLY_ARRAY);
  ASSERT_EQ(reply->elements, 4u);  // no event
  EXPECT_EQ(reply->element[0]->integer, 1);  // allowed: the state, unreadable as fixed_window's, is empty
  EXPECT_EQ(reply->element[1]->integer, 5);
  EXPECT_EQ(reply->element[2]->integer, 4);
}

TEST_F(Rules, AnOddNumberOfKeysIsAnErrorAndNothingIsRecorded) {
  const std::string now = std::to_string(kT0);
  const std::vector<std::vector<std::string_view>> calls = {
      // the state key alone (a script without rules)
      {"1", "a", now, "1", "1", "2", "5", "60000", "5", "1"},
      // two zones, one rule key
      {"3", "a", "b", "a!rule", now, "1", "2", "2", "5", "60000", "5", "1", "2", "5", "60000", "5", "1"},
      {"3", "a", "a!rule", "b", now, "1", "1", "2", "5", "60000", "5", "1"},
  };
  for (const std::vector<std::string_view>& call : calls) {
    std::vector<std::string_view> args = {"EVALSHA", sha_};
    args.insert(args.end(), call.begin(), call.end());
    Reply reply = command(args);
    ASSERT_EQ(reply->type, REDIS_REPLY_ERROR) << call[0];
    EXPECT_EQ(std::string_view(reply->str, reply->len),
              "rate_guard: " + std::string(call[0]) + " keys: not a state key and a rule key per zone");
  }
  EXPECT_EQ(integer({"DBSIZE"}), 0);
}

// =================================================================== mutants

// Scripts that get a rule wrong, in the ways this one could, fail the
// scenarios above (each holding for this script).
TEST_F(Rules, MutantsThatMisapplyARuleFailTheScenarios) {
  struct Mutation {
    std::string from, to, what;
    std::function<bool(const std::string&)> holds;
  };
  const Zone zone = sliding_window(40, 60000, "zone");
  const std::vector<Mutation> mutations = {
      {"if ban and now < ban then", "if ban and now <= ban then", "a ban that ends 1 µs late",
       [&](const std::string& sha) { return ban_ends_at_its_end(zone, sha); }},
      {"zone_algorithm, peek = false, false", "peek = false", "unlimited decided (and recorded) by the algorithm",
       [&](const std::string& sha) { return unlimited_records_nothing(zone, sha); }},
      {"if zones == LEASE and ban and now < ban then", "if false then", "a lease entry that ignores a ban",
       [&](const std::string& sha) { return no_grant_under_a_ban(zone, sha); }},
      {", MAX_LEASE_LIFETIME_MS * 1000)", ")", "a lease's lifetime not capped at a second",
       [&](const std::string& sha) { return lease_lives_at_most_a_second(zone, sha); }},
      {"    if zones == HAND_BACK then\n", "    if zones == HAND_BACK then\n      zone_window_ms = ARGV[from + 2]\n",
       "a hand-back in the zone's own window",
       [&](const std::string& sha) { return hand_back_takes_the_overrides_window(sha); }},
  };
  for (const Mutation& mutation : mutations) {
    ASSERT_EQ(command({"FLUSHALL"})->type, REDIS_REPLY_STATUS);
    EXPECT_TRUE(mutation.holds("")) << mutation.what << ": this script fails the scenario";
    ASSERT_EQ(command({"FLUSHALL"})->type, REDIS_REPLY_STATUS);
    const std::string sha = mutant(mutation.from, mutation.to);
    ASSERT_FALSE(sha.empty()) << mutation.what;
    EXPECT_FALSE(mutation.holds(sha)) << mutation.what << ": the scenario does not tell";
  }
}

INSTANTIATE_TEST_SUITE_P(CheckScript, RulesEveryAlgorithm,
                         ::testing::Values(Algorithm::sliding_window, Algorithm::sliding_log,
                                           Algorithm::fixed_window, Algorithm::token_bucket),
                         [](const ::testing::TestParamInfo<Algorithm>& param) {
                           return std::string(algorithm_name(param.param));
                         });

}  // namespace
}  // namespace rate_guard
