// Merged entries (lua/check_script.h): the checks of one key and zone that
// wait in one batch go to Redis as one entry, n requests of cost c, and the
// answer is fanned out to them in the order they came. That must decide
// exactly what n entries, one after the other, decide: the same verdict for
// every check, the same Redis state afterwards. Random batches are built by
// the module's own code (add_to_batch, BatchFormatter, decode_member_reply)
// both ways, merged and not, on two copies of the keys ("m:" and "s:"), run
// by a real Redis at pinned times in one MULTI/EXEC, and compared: every
// check's verdict, every key's value and its expiry time.
#include "check_script_fixture.h"

#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "redis/check_batch.h"

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

// A reply as text, for comparing the two copies of a key.
std::string render(const redisReply* reply) {
  switch (reply->type) {
    case REDIS_REPLY_INTEGER: return std::to_string(reply->integer);
    case REDIS_REPLY_NIL: return "(nil)";
    case REDIS_REPLY_ARRAY: {
      std::string text = "[";
      for (size_t i = 0; i < reply->elements; ++i) {
        text += (i > 0 ? ", " : "") + render(reply->element[i]);
      }
      return text + "]";
    }
    default: return std::string(reply->str, reply->len);
  }
}

std::string text(const ZoneVerdict& v) {
  std::ostringstream out;
  out << Verdict{v.allowed, v.limit, v.remaining, v.reset_ms};
  return out.str();
}

class MergedEntries : public CheckScriptTest {
 protected:
  // One batch of `requests` (their keys behind `prefix`), merged or not, as
  // the module makes it; its checks come from pool_.
  CheckBatch* make_batch(const std::vector<Request>& requests, const std::string& prefix, bool merge) {
    CheckBatch* batch = pool_.acquire_batch();
    for (const Request& request : requests) {
      PendingCheck* check = pool_.acquire_check();
      check->zones = request.size();
      check->batches = check->parts_left = 0;
      keys_.clear();
      rule_keys_.clear();
      for (const Zone& zone : request) {
        keys_.push_back(prefix + zone.key);
        rule_keys_.push_back(prefix + "!rule:" + zone.key);
      }
      std::vector<BatchZone> zones;
      for (size_t i = 0; i < request.size(); ++i) {
        const Zone& zone = request[i];
        zones.push_back({keys_[i], rule_keys_[i], static_cast<uint64_t>(zone.algorithm), zone.limit, zone.window_ms, zone.burst,
                         zone.cost});
      }
      const std::vector<uint16_t> slots(request.size(), 0);
      add_to_batch(batch, check, zones.data(), slots.data(), zones.size(), 0, merge);
    }
    return batch;
  }

  // The verdicts of every check of `batch`, in the order they came, from `reply`.
  static std::vector<std::vector<ZoneVerdict>> verdicts(CheckBatch* batch, const redisReply* reply) {
    std::vector<std::vector<ZoneVerdict>> all;
    if (reply->type == REDIS_REPLY_ERROR) {
      ADD_FAILURE() << "script error: " << std::string_view(reply->str, reply->len);
      return all;
    }
    if (!locate_batch_reply(batch, reply)) {
      ADD_FAILURE() << "a reply not of the batch's shape: " << render(reply);
      return all;
    }
    for (const CheckBatch::Member& member : batch->checks) {
      std::vector<ZoneVerdict> zones(member.zones);
      EXPECT_TRUE(decode_member_reply(*batch, member, reply, zones.data()));
      all.push_back(zones);
    }
    return all;
  }

  // Both batches, formatted at `now_us`, in one MULTI/EXEC, Redis's TIME
  // read before, between and after them, then the expiry time of every key
  // of `names` in both copies (PEXPIRETIME), then every key made persistent:
  // Redis's clock runs during a transaction (7.0), and a key must not expire
  // in one copy and not yet in the other before the next round reads it
  // (the script tells stale state by the pinned time anyway). EXEC's reply.
  Reply run_both(CheckBatch* merged, CheckBatch* separate, uint64_t now_us, const std::set<std::string>& names) {
    EXPECT_TRUE(formatter_.format(merged, sha_, now_us));
    EXPECT_TRUE(formatter_.format(separate, sha_, now_us));
    size_t sent = 0;
    auto append = [&](const std::vector<std::string>& args) {
      std::vector<const char*> argv;
      std::vector<size_t> lengths;
      for (const std::string& arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
      }
      redisAppendCommandArgv(redis_.get(), static_cast<int>(args.size()), argv.data(), lengths.data());
      sent++;
    };
    append({"MULTI"});
    append({"TIME"});
    redisAppendFormattedCommand(redis_.get(), merged->command, merged->command_len);
    append({"TIME"});
    redisAppendFormattedCommand(redis_.get(), separate->command, separate->command_len);
    append({"TIME"});
    sent += 2;
    for (const char* command : {"PEXPIRETIME", "PERSIST"}) {
      for (const std::string& name : names) {
        append({command, "m:" + name});
        append({command, "s:" + name});
      }
    }
    append({"EXEC"});
    Reply exec;
    for (size_t i = 0; i < sent; ++i) {
      void* raw = nullptr;
      if (redisGetReply(redis_.get(), &raw) != REDIS_OK) {
        ADD_FAILURE() << "connection error: " << redis_->errstr;
        return nullptr;
      }
      exec.reset(static_cast<redisReply*>(raw));
    }
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != sent - 2) {
      ADD_FAILURE() << "EXEC answered " << render(exec.get());
      return nullptr;
    }
    return exec;
  }

  static uint64_t time_ms(const redisReply* time) {
    return (std::stoull(time->element[0]->str) * kSecond + std::stoull(time->element[1]->str)) / kMs;
  }

  // The keys' expiry times in both copies, from run_both's reply: the same
  // TTL, that is, when both scripts ran within one millisecond of Redis's
  // clock, the same time; otherwise the second copy's later by at most the
  // milliseconds between them. Whether the comparison was exact.
  static bool expect_same_expiry(const redisReply* exec, const std::set<std::string>& names,
                                 const std::string& context) {
    const uint64_t first_ms = time_ms(exec->element[0]);
    const uint64_t last_ms = time_ms(exec->element[4]);
    size_t at = 5;
    for (const std::string& name : names) {
      const long long merged = exec->element[at]->integer;
      const long long separate = exec->element[at + 1]->integer;
      at += 2;
      if (merged < 0 || separate < 0 || first_ms == last_ms) {
        EXPECT_EQ(merged, separate) << "expiry time of key " << name << ", " << context;
      } else {
        EXPECT_GE(separate, merged) << "expiry time of key " << name << ", " << context;
        EXPECT_LE(separate - merged, static_cast<long long>(last_ms - first_ms))
            << "expiry time of key " << name << ", " << context;
      }
    }
    return first_ms == last_ms;
  }

  // Every key of `names` holds the same in both copies.
  void expect_same_state(const std::set<std::string>& names, const std::string& context) {
    std::vector<std::vector<std::string>> commands;
    for (const std::string& name : names) {
      for (const char* prefix : {"m:", "s:"}) {
        const std::string key = prefix + name;
        commands.push_back({"TYPE", key});
        commands.push_back({"GET", key});  // WRONGTYPE for a sorted set
        commands.push_back({"ZRANGE", key, "0", "-1", "WITHSCORES"});
      }
    }
    Reply exec = transaction(commands);
    ASSERT_NE(exec, nullptr);
    size_t at = 0;
    for (const std::string& name : names) {
      for (size_t i = 0; i < 3; ++i, ++at) {
        EXPECT_EQ(render(exec->element[at]), render(exec->element[at + 3]))
            << "key " << name << ", " << commands[at][0] << ", " << context;
      }
      at += 3;
    }
  }

  // Random batches of `rounds` loop turns over a few keys of `algorithm`
  // (now and then another, as a reload would leave), both ways; the number
  // of checks that went merged.
  size_t replay(Algorithm algorithm, uint32_t seed, int rounds) {
    std::mt19937 random(seed);
    auto pick = [&](uint64_t low, uint64_t high) {
      return std::uniform_int_distribution<uint64_t>(low, high)(random);
    };
    struct KeyZone {
      Algorithm algorithm;
      uint64_t limit, window_ms, burst;
    };
    const std::vector<std::string> names = {"a", "b", "c", "d"};
    std::map<std::string, KeyZone> zones;
    auto configure = [&](const std::string& name) {
      // Limits near the number of requests a batch holds for a key.
      const uint64_t limit = pick(0, 1) ? pick(1, 12) : pick(10, 60);
      zones[name] = {pick(0, 9) == 0 ? static_cast<Algorithm>(pick(0, 3)) : algorithm, limit,
                     pick(0, 1) ? 1000 : pick(1, 300) * 1000, pick(0, 2) == 0 ? pick(1, 60) : limit};
    };
    for (const std::string& name : names) {
      configure(name);
    }
    size_t merged_checks = 0;
    uint64_t now = kT0 + pick(0, kMinute);
    for (int round = 0; round < rounds; ++round) {
      if (pick(0, 9) == 0) {
        configure(names[pick(0, names.size() - 1)]);  // a reload: another rate, window or algorithm
      }
      // The cost of each key's route this round: mostly 1, sometimes more,
      // now and then past the limit.
      std::map<std::string, uint64_t> costs;
      for (const std::string& name : names) {
        costs[name] = pick(0, 2) != 0 ? 1 : pick(0, 4) == 0 ? pick(1, 15) : pick(2, 4);
      }
      std::vector<Request> requests;
      const size_t count = pick(0, 1) ? pick(1, 4) : pick(1, 40);
      for (size_t r = 0; r < count; ++r) {
        // Mostly the hot key "a", one zone; now and then two zones.
        const size_t zone_count = pick(0, 5) == 0 ? 2 : 1;
        std::vector<std::string> picked;
        while (picked.size() < zone_count) {
          const std::string name = pick(0, 2) == 0 ? names[pick(0, names.size() - 1)] : "a";
          if (std::find(picked.begin(), picked.end(), name) == picked.end()) {
            picked.push_back(name);
          }
        }
        Request request;
        for (const std::string& name : picked) {
          const KeyZone& zone = zones[name];
          // Now and then another cost, or a variable rate.
          const uint64_t cost = pick(0, 9) == 0 ? pick(1, 4) : costs[name];
          const uint64_t limit = pick(0, 19) == 0 ? pick(1, 60) : zone.limit;
          request.push_back(Zone{zone.algorithm, limit, zone.window_ms,
                                 zone.algorithm == Algorithm::token_bucket ? zone.burst : limit, cost, name});
        }
        requests.push_back(request);
      }
      CheckBatch* merged = make_batch(requests, "m:", true);
      CheckBatch* separate = make_batch(requests, "s:", false);
      EXPECT_EQ(separate->entries.size(), requests.size());
      const std::set<std::string> all_names(names.begin(), names.end());
      Reply exec = run_both(merged, separate, now, all_names);
      if (exec == nullptr) {
        return merged_checks;
      }
      const std::vector<std::vector<ZoneVerdict>> got = verdicts(merged, exec->element[1]);
      const std::vector<std::vector<ZoneVerdict>> expected = verdicts(separate, exec->element[3]);
      EXPECT_EQ(got.size(), requests.size());
      EXPECT_EQ(expected.size(), requests.size());
      const std::string context = "seed " + std::to_string(seed) + ", round " + std::to_string(round);
      for (size_t r = 0; r < std::min(got.size(), expected.size()); ++r) {
        for (size_t z = 0; z < requests[r].size(); ++z) {
          EXPECT_EQ(text(got[r][z]), text(expected[r][z]))
              << "request " << r << " (" << requests[r][z].key << ", cost " << requests[r][z].cost << "), zone "
              << z << ", " << context;
        }
      }
      for (const CheckBatch::Entry& entry : merged->entries) {
        if (entry.count > 1 && got.size() == requests.size()) {  // (not after an error reply)
          merged_checks += entry.count;
          const long long passed = exec->element[1]->element[entry.reply_at]->integer;
          partly_passed_ += passed > 0 && passed < entry.count;
        }
      }
      exact_expiry_rounds_ += expect_same_expiry(exec.get(), all_names, context);
      expect_same_state(all_names, context);
      pool_.release_batch(merged);
      pool_.release_batch(separate);
      // Mostly within a sub-window or a few, now and then past a window.
      now += pick(0, 9) == 0 ? pick(0, 2 * kMinute) : pick(0, 1) ? pick(0, 100 * kMs) : pick(0, 5 * kSecond);
    }
    return merged_checks;
  }

  CheckPool pool_;
  BatchFormatter formatter_;
  std::vector<std::string> keys_;
  std::vector<std::string> rule_keys_;
  size_t exact_expiry_rounds_ = 0;  // both scripts within one millisecond
  size_t partly_passed_ = 0;        // merged entries some checks of which passed, not all
};

TEST_F(MergedEntries, AMergedEntryIsAnsweredWithHowManyOfItsRequestsPass) {
  // 8 requests of cost 2, fixed_window 5 per second, 200 ms into the window:
  // 2 pass, 1 remains; the last to pass has some left (reset 0), the others
  // wait for the window's end.
  Reply reply = command({"EVALSHA", sha_, "2", "client", "client!rule", std::to_string(kT0 + 200 * kMs), "1",  //
                         "0", "8", "2", "5", "1000", "5", "2"});
  EXPECT_EQ(render(reply.get()), "[2, 5, 1, 0, 800]");
  EXPECT_EQ(get("client"), "1700006400:4");
  // A plain entry after it sees the two: 1 remains, too little for 2.
  EXPECT_EQ(check(kT0 + 200 * kMs, with_cost(fixed_window(5, 1000), 2)), Rejected(5, 1, 800));
}

TEST_F(MergedEntries, ABadMergedCountIsAnErrorAndNothingIsRecorded) {
  for (const char* count : {"0", "-1", "1.5", "1073741825"}) {
    Reply reply = command({"EVALSHA", sha_, "4", "other", "client", "other!rule", "client!rule",  //
                           std::to_string(kT0), "2",                                            //
                           "1", "2", "5", "1000", "5", "1",                                    //
                           "0", count, "2", "5", "1000", "5", "1"});
    ASSERT_EQ(reply->type, REDIS_REPLY_ERROR) << count;
    EXPECT_EQ(std::string_view(reply->str, reply->len), "rate_guard: bad merged count for request 2") << count;
  }
  EXPECT_EQ(integer({"DBSIZE"}), 0);
}

class MergedEntriesEveryAlgorithm : public MergedEntries, public ::testing::WithParamInterface<Algorithm> {};

TEST_P(MergedEntriesEveryAlgorithm, DecideExactlyWhatSeparateEntriesDecide) {
  size_t merged_checks = 0;
  for (uint32_t seed = 1; seed <= 16 && !HasFailure(); ++seed) {
    merged_checks += replay(GetParam(), seed, 80);
  }
  // The replay merged many checks, passed part of a merged entry often, and
  // compared many rounds' expiry times exactly (it would prove little
  // otherwise).
  EXPECT_GT(merged_checks, 5000u);
  EXPECT_GT(partly_passed_, 50u);
  EXPECT_GT(exact_expiry_rounds_, 300u);
  std::cout << merged_checks << " checks merged, " << partly_passed_ << " merged entries partly passed, "
            << exact_expiry_rounds_ << " of 1280 rounds' expiry times compared exactly\n";
}

INSTANTIATE_TEST_SUITE_P(CheckScript, MergedEntriesEveryAlgorithm,
                         ::testing::Values(Algorithm::sliding_window, Algorithm::sliding_log,
                                           Algorithm::fixed_window, Algorithm::token_bucket),
                         [](const ::testing::TestParamInfo<Algorithm>& param) {
                           return std::string(algorithm_name(param.param));
                         });

}  // namespace
}  // namespace rate_guard
