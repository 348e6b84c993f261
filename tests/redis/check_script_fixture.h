// The fixture shared by the specification of the check script
// (check_script_*_test.cpp): Specification of the check script (src/lua/), run by a real
// redis-server. Time is pinned through ARGV[1], in microseconds; every reply
// is written as Allowed/Rejected(limit, remaining, reset_ms). Most tests send
// one request per call; the Batch tests send several. Every zone's state key
// (Zone::key) comes with its rule key (rule_key(), empty unless a test sets
// a rule there).
#pragma once

#include "lua/check_script.h"

#include <gtest/gtest.h>
#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <ostream>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/zone_config.h"
#include "redis_server.h"

namespace rate_guard {
// Named, not anonymous: gtest wants one fixture type for the suite
// CheckScriptTest across the translation units that use it.
namespace check_script {

using testing::RedisServer;

// Microseconds.
constexpr uint64_t kMs = 1000;
constexpr uint64_t kSecond = 1000 * kMs;
constexpr uint64_t kMinute = 60 * kSecond;
constexpr uint64_t kHour = 60 * kMinute;
constexpr uint64_t kDay = 24 * kHour;
// 2023-11-15T00:00:00Z: a midnight, so every window of these tests starts here.
constexpr uint64_t kT0 = 1700006400 * kSecond;

struct Zone {
  Algorithm algorithm;
  uint64_t limit;
  uint64_t window_ms;
  uint64_t burst;
  uint64_t cost;
  std::string key;
};

inline Zone make_zone(Algorithm algorithm, uint64_t limit, uint64_t window_ms, std::string key) {
  return Zone{algorithm, limit, window_ms, limit, 1, std::move(key)};
}
inline Zone sliding_log(uint64_t limit, uint64_t window_ms, std::string key = "client") {
  return make_zone(Algorithm::sliding_log, limit, window_ms, std::move(key));
}
inline Zone fixed_window(uint64_t limit, uint64_t window_ms, std::string key = "client") {
  return make_zone(Algorithm::fixed_window, limit, window_ms, std::move(key));
}
inline Zone sliding_window(uint64_t limit, uint64_t window_ms, std::string key = "client") {
  return make_zone(Algorithm::sliding_window, limit, window_ms, std::move(key));
}
inline Zone token_bucket(uint64_t limit, uint64_t window_ms, uint64_t burst, std::string key = "client") {
  Zone zone = make_zone(Algorithm::token_bucket, limit, window_ms, std::move(key));
  zone.burst = burst;
  return zone;
}
inline Zone with_cost(Zone zone, uint64_t cost) {
  zone.cost = cost;
  return zone;
}

// The rule key of a zone (KEYS[Z + k], lua/check_script.h): its state key's
// name and "!rule" (the module's are "<prefix><zone>!rule:<client key>"), so
// zones of one state key share it.
inline std::string rule_key(const Zone& zone) { return zone.key + "!rule"; }

// One entry of a call (lua/check_script.h), by its header and the numbers
// that follow it: a plain request (its header the zone count), a merged
// entry, a lease entry, a hand-back or a charge, of one zone but a plain
// request.
struct Entry {
  int64_t header;
  std::vector<uint64_t> numbers;
  std::vector<Zone> zones;
};
inline Entry plain(const Zone& zone) { return {1, {}, {zone}}; }
inline Entry request(const std::vector<Zone>& zones) { return {static_cast<int64_t>(zones.size()), {}, zones}; }
inline Entry merged(const Zone& zone, uint64_t n) { return {kCheckMergedHeader, {n}, {zone}}; }
inline Entry lease(const Zone& zone, uint64_t n, uint64_t units, uint64_t lease_ms) {
  return {kCheckLeaseHeader, {n, units, lease_ms}, {zone}};
}
inline Entry hand_back(const Zone& zone, uint64_t units, uint64_t granted, uint64_t mark) {
  return {kCheckHandBackHeader, {units, granted, mark}, {zone}};
}
// `units` charged to `zone` (its cost).
inline Entry charge(const Zone& zone, uint64_t units) { return {kCheckChargeHeader, {}, {with_cost(zone, units)}}; }

inline size_t reply_fields(const Entry& entry) {
  switch (entry.header) {
    case kCheckMergedHeader: return kCheckReplyFieldsPerMerged;
    case kCheckLeaseHeader: return kCheckReplyFieldsPerLease;
    case kCheckHandBackHeader: return kCheckReplyFieldsPerHandBack;
    case kCheckChargeHeader: return kCheckReplyFieldsPerCharge;
    default: return kCheckReplyFieldsPerZone * entry.zones.size();
  }
}

// A reply split: each entry's integers (reply_fields() of them), then the
// rule events after them; or the error reply's text.
struct Answer {
  std::vector<std::vector<uint64_t>> entries;
  std::vector<uint64_t> events;
  std::string error;
};

// One request: every zone it is checked in.
using Request = std::vector<Zone>;

struct Verdict {
  bool allowed = false;
  uint64_t limit = 0;
  uint64_t remaining = 0;
  uint64_t reset_ms = 0;

  bool operator==(const Verdict& other) const {
    return allowed == other.allowed && limit == other.limit && remaining == other.remaining &&
           reset_ms == other.reset_ms;
  }
};

inline std::ostream& operator<<(std::ostream& out, const Verdict& v) {
  return out << (v.allowed ? "Allowed(" : "Rejected(") << v.limit << ", " << v.remaining << ", "
             << v.reset_ms << ")";
}

inline Verdict Allowed(uint64_t limit, uint64_t remaining, uint64_t reset_ms) {
  return Verdict{true, limit, remaining, reset_ms};
}
inline Verdict Rejected(uint64_t limit, uint64_t remaining, uint64_t reset_ms) {
  return Verdict{false, limit, remaining, reset_ms};
}

struct ReplyFree {
  void operator()(redisReply* reply) const { freeReplyObject(reply); }
};
using Reply = std::unique_ptr<redisReply, ReplyFree>;

struct ContextFree {
  void operator()(redisContext* context) const { redisFree(context); }
};

// The most requests of `times` (sorted) in any half-open span [t, t + window)
// starting at or after `from`; such a span may as well start at a request.
inline size_t most_in_any_window(const std::vector<uint64_t>& times, uint64_t window, uint64_t from = 0) {
  size_t most = 0;
  for (size_t i = 0; i < times.size(); ++i) {
    if (times[i] < from) {
      continue;
    }
    size_t end = static_cast<size_t>(
        std::lower_bound(times.begin(), times.end(), times[i] + window) - times.begin());
    most = std::max(most, end - i);
  }
  return most;
}

class CheckScriptTest : public ::testing::Test {
 protected:
  static RedisServer& server() {
    static RedisServer instance;  // started on first use, stopped by PID at exit
    return instance;
  }

  void SetUp() override {
    if (!server().running()) {
      server().start();
    }
    redis_.reset(server().connect());
    ASSERT_NE(redis_, nullptr);
    ASSERT_EQ(command({"FLUSHALL"})->type, REDIS_REPLY_STATUS);
    Reply loaded = command({"SCRIPT", "LOAD", kCheckScript});
    ASSERT_EQ(loaded->type, REDIS_REPLY_STRING) << std::string_view(loaded->str, loaded->len);
    sha_.assign(loaded->str, loaded->len);
  }

  Reply command(const std::vector<std::string_view>& args) {
    std::vector<const char*> argv;
    std::vector<size_t> lengths;
    for (std::string_view arg : args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    Reply reply(static_cast<redisReply*>(redisCommandArgv(
        redis_.get(), static_cast<int>(args.size()), argv.data(), lengths.data())));
    if (reply == nullptr) {
      throw std::runtime_error(std::string("connection error: ") + redis_->errstr);
    }
    return reply;
  }

  // Loads another script (the previous release's, to run beside this one on
  // the same keys; a mutant of this one): its SHA1, for the `sha` argument
  // of the calls below. `rule_keys`: whether it takes a rule key per zone
  // (this release's does; the previous release's does not).
  std::string load(std::string_view script, bool rule_keys = true) {
    Reply loaded = command({"SCRIPT", "LOAD", script});
    EXPECT_EQ(loaded->type, REDIS_REPLY_STRING) << std::string_view(loaded->str, loaded->len);
    if (loaded->type != REDIS_REPLY_STRING) {
      return "";
    }
    std::string sha(loaded->str, loaded->len);
    if (!rule_keys) {
      without_rule_keys_.insert(sha);
    }
    return sha;
  }

  // The EVALSHA arguments of one call checking `requests`, in order (the
  // layout of lua/check_script.h), of this script or of the one `sha` names:
  // every zone's state key, then (unless that script takes none) every
  // zone's rule key.
  std::vector<std::string> evalsha_args(uint64_t now_us, const std::vector<Request>& requests,
                                        const std::string& sha = "") const {
    const bool rule_keys = without_rule_keys_.count(sha) == 0;
    size_t keys = 0;
    for (const Request& request : requests) {
      keys += request.size();
    }
    std::vector<std::string> args = {"EVALSHA", sha.empty() ? sha_ : sha,
                                     std::to_string(rule_keys ? 2 * keys : keys)};
    for (const Request& request : requests) {
      for (const Zone& zone : request) {
        args.push_back(zone.key);
      }
    }
    if (rule_keys) {
      for (const Request& request : requests) {
        for (const Zone& zone : request) {
          args.push_back(rule_key(zone));
        }
      }
    }
    args.push_back(std::to_string(now_us));
    args.push_back(std::to_string(requests.size()));
    for (const Request& request : requests) {
      args.push_back(std::to_string(request.size()));
      for (const Zone& zone : request) {
        for (uint64_t value : {static_cast<uint64_t>(zone.algorithm), zone.limit,
                               zone.window_ms, zone.burst, zone.cost}) {
          args.push_back(std::to_string(value));
        }
      }
    }
    return args;
  }

  // The EVALSHA arguments of one call of `entries` (the layout of
  // lua/check_script.h): every zone's state key, then every zone's rule key.
  std::vector<std::string> entry_args(uint64_t now_us, const std::vector<Entry>& entries,
                                      const std::string& sha = "") const {
    size_t keys = 0;
    for (const Entry& entry : entries) {
      keys += entry.zones.size();
    }
    std::vector<std::string> out = {"EVALSHA", sha.empty() ? sha_ : sha, std::to_string(2 * keys)};
    for (const Entry& entry : entries) {
      for (const Zone& zone : entry.zones) {
        out.push_back(zone.key);
      }
    }
    for (const Entry& entry : entries) {
      for (const Zone& zone : entry.zones) {
        out.push_back(rule_key(zone));
      }
    }
    out.push_back(std::to_string(now_us));
    out.push_back(std::to_string(entries.size()));
    for (const Entry& entry : entries) {
      out.push_back(std::to_string(entry.header));
      for (uint64_t number : entry.numbers) {
        out.push_back(std::to_string(number));
      }
      for (const Zone& zone : entry.zones) {
        for (uint64_t value : {static_cast<uint64_t>(zone.algorithm), zone.limit, zone.window_ms, zone.burst,
                               zone.cost}) {
          out.push_back(std::to_string(value));
        }
      }
    }
    return out;
  }

  Reply raw(uint64_t now_us, const std::vector<Entry>& entries, const std::string& sha = "") {
    std::vector<std::string> a = entry_args(now_us, entries, sha);
    return command(std::vector<std::string_view>(a.begin(), a.end()));
  }

  static Answer split(const redisReply* reply, const std::vector<Entry>& entries) {
    Answer answer;
    if (reply->type == REDIS_REPLY_ERROR) {
      answer.error.assign(reply->str, reply->len);
      return answer;
    }
    EXPECT_EQ(reply->type, REDIS_REPLY_ARRAY);
    if (reply->type != REDIS_REPLY_ARRAY) {
      return answer;
    }
    size_t at = 0;
    for (const Entry& entry : entries) {
      std::vector<uint64_t> fields;
      for (size_t i = 0; i < reply_fields(entry) && at < reply->elements; ++i, ++at) {
        EXPECT_EQ(reply->element[at]->type, REDIS_REPLY_INTEGER);
        EXPECT_GE(reply->element[at]->integer, 0);
        fields.push_back(static_cast<uint64_t>(reply->element[at]->integer));
      }
      EXPECT_EQ(fields.size(), reply_fields(entry)) << "a reply too short";
      answer.entries.push_back(fields);
    }
    for (; at < reply->elements; ++at) {
      EXPECT_EQ(reply->element[at]->type, REDIS_REPLY_INTEGER);
      answer.events.push_back(static_cast<uint64_t>(reply->element[at]->integer));
    }
    return answer;
  }

  // The entries in one call at `now_us`, of this script or of the one `sha`
  // names: each one's integers, and the events.
  Answer send(uint64_t now_us, const std::vector<Entry>& entries, const std::string& sha = "") {
    Reply reply = raw(now_us, entries, sha);
    return split(reply.get(), entries);
  }

  // The entries in one call at `now_us`, which must be answered (no error):
  // each one's integers (as many as reply_fields() says), and the events.
  Answer answered(uint64_t now_us, const std::vector<Entry>& entries, const std::string& sha = "") {
    Answer answer = send(now_us, entries, sha);
    EXPECT_EQ(answer.error, "");
    if (answer.entries.size() != entries.size()) {
      ADD_FAILURE() << "no answer";
      answer.entries.resize(entries.size());
    }
    return answer;
  }

  void set_rule(const Zone& zone, const std::string& value) {
    EXPECT_EQ(command({"SET", rule_key(zone), value})->type, REDIS_REPLY_STATUS);
  }

  // A key's value as DUMP serializes it, whatever its type ("(nil)" when
  // none; no TTL): to tell that a key was left alone.
  std::string dump(const std::string& key) {
    Reply reply = command({"DUMP", key});
    return reply->type == REDIS_REPLY_STRING ? std::string(reply->str, reply->len) : "(nil)";
  }

  // A copy of this script with `from` (found exactly once) replaced by `to`,
  // loaded: its SHA1 (empty, and a failure, when `from` is not found once).
  std::string mutant(const std::string& from, const std::string& to) {
    std::string text(kCheckScript);
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << "the script no longer holds: " << from;
    EXPECT_EQ(text.find(from, at + 1), std::string::npos) << "the script holds more than once: " << from;
    if (at == std::string::npos || text.find(from, at + 1) != std::string::npos) {
      return "";
    }
    text.replace(at, from.size(), to);
    return load(text);
  }

  static std::vector<Verdict> decode(const redisReply* reply, size_t zones) {
    std::vector<Verdict> verdicts;
    if (reply->type == REDIS_REPLY_ERROR) {
      ADD_FAILURE() << "script error: " << std::string_view(reply->str, reply->len);
      return verdicts;
    }
    EXPECT_EQ(reply->type, REDIS_REPLY_ARRAY);
    EXPECT_EQ(reply->elements, 4 * zones);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4 * zones) {
      return verdicts;
    }
    for (size_t i = 0; i < zones; ++i) {
      long long fields[4];
      for (size_t j = 0; j < 4; ++j) {
        const redisReply* field = reply->element[4 * i + j];
        EXPECT_EQ(field->type, REDIS_REPLY_INTEGER);
        EXPECT_GE(field->integer, 0);
        fields[j] = field->integer;
      }
      EXPECT_TRUE(fields[0] == 0 || fields[0] == 1);
      verdicts.push_back(Verdict{fields[0] == 1, static_cast<uint64_t>(fields[1]),
                                 static_cast<uint64_t>(fields[2]),
                                 static_cast<uint64_t>(fields[3])});
    }
    return verdicts;
  }

  // Every request of `requests` in one call at `now_us`: the verdicts of each.
  std::vector<std::vector<Verdict>> check_batch(uint64_t now_us,
                                                const std::vector<Request>& requests,
                                                const std::string& sha = "") {
    std::vector<std::string> args = evalsha_args(now_us, requests, sha);
    Reply reply = command(std::vector<std::string_view>(args.begin(), args.end()));
    size_t zones = 0;
    for (const Request& request : requests) {
      zones += request.size();
    }
    std::vector<Verdict> all = decode(reply.get(), zones);
    std::vector<std::vector<Verdict>> verdicts;
    if (all.size() != zones) {
      return verdicts;
    }
    size_t next = 0;
    for (const Request& request : requests) {
      verdicts.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(next),
                            all.begin() + static_cast<std::ptrdiff_t>(next + request.size()));
      next += request.size();
    }
    return verdicts;
  }

  // One request through every zone of `zones`, at `now_us`.
  std::vector<Verdict> check_all(uint64_t now_us, const Request& zones, const std::string& sha = "") {
    std::vector<std::vector<Verdict>> verdicts = check_batch(now_us, {zones}, sha);
    return verdicts.empty() ? std::vector<Verdict>{} : verdicts[0];
  }

  Verdict check(uint64_t now_us, const Zone& zone, const std::string& sha = "") {
    std::vector<Verdict> verdicts = check_all(now_us, {zone}, sha);
    return verdicts.empty() ? Verdict{} : verdicts[0];
  }

  // One request at each of `times`, all in one MULTI/EXEC: Redis runs them
  // back to back with its clock stopped, so keys whose TTL is a millisecond of
  // real time (a window of 1 ms) cannot expire between them.
  std::vector<Verdict> check_in_one_transaction(const Zone& zone,
                                                const std::vector<uint64_t>& times) {
    std::vector<std::vector<std::string>> commands;
    for (uint64_t now_us : times) {
      commands.push_back(evalsha_args(now_us, {Request{zone}}));
    }
    Reply exec = transaction(commands);
    std::vector<Verdict> verdicts;
    if (exec == nullptr) {
      return verdicts;
    }
    for (size_t i = 0; i < exec->elements; ++i) {
      std::vector<Verdict> one = decode(exec->element[i], 1);
      verdicts.push_back(one.empty() ? Verdict{} : one[0]);
    }
    return verdicts;
  }

  // Every command of `commands` in one MULTI/EXEC, so that Redis runs them
  // with its clock stopped: no key expires in between. EXEC's array of their
  // replies, or nullptr.
  Reply transaction(std::vector<std::vector<std::string>> commands) {
    commands.insert(commands.begin(), std::vector<std::string>{"MULTI"});
    commands.push_back({"EXEC"});
    for (const std::vector<std::string>& args : commands) {
      std::vector<const char*> argv;
      std::vector<size_t> lengths;
      for (const std::string& arg : args) {
        argv.push_back(arg.data());
        lengths.push_back(arg.size());
      }
      redisAppendCommandArgv(redis_.get(), static_cast<int>(args.size()), argv.data(),
                             lengths.data());
    }
    Reply exec;
    for (size_t i = 0; i < commands.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(redis_.get(), &raw) != REDIS_OK) {
        ADD_FAILURE() << "connection error: " << redis_->errstr;
        return nullptr;
      }
      exec.reset(static_cast<redisReply*>(raw));  // MULTI's OK, QUEUED..., then EXEC's array
    }
    if (exec->type != REDIS_REPLY_ARRAY || exec->elements != commands.size() - 2) {
      ADD_FAILURE() << "EXEC did not answer an array of " << commands.size() - 2;
      return nullptr;
    }
    return exec;
  }

  long long integer(const std::vector<std::string_view>& args) {
    Reply reply = command(args);
    EXPECT_EQ(reply->type, REDIS_REPLY_INTEGER);
    return reply->integer;
  }
  long long pttl(std::string_view key) { return integer({"PTTL", key}); }
  bool exists(std::string_view key) { return integer({"EXISTS", key}) == 1; }
  long long zcard(std::string_view key) { return integer({"ZCARD", key}); }

  // The string value of a key (the state of sliding_window, fixed_window and
  // token_bucket), "(nil)" when none, "(error)" for another type.
  std::string get(std::string_view key) {
    Reply reply = command({"GET", key});
    if (reply->type == REDIS_REPLY_STRING) {
      return std::string(reply->str, reply->len);
    }
    return reply->type == REDIS_REPLY_NIL ? "(nil)" : "(error)";
  }

  // A sliding_window state (src/lua/sliding_window.lua), unpacked: the tag,
  // the span of a sub-window in µs, the newest sub-window's index, and the
  // counts of the sub-windows newest - 16 .. newest, oldest first, in
  // `counts`. `valid` is false when the value is not of that layout.
  struct SlidingWindowState {
    bool valid = false;
    char tag = 0;
    uint64_t span = 0;
    uint64_t newest = 0;
    std::vector<uint32_t> counts;
  };
  static constexpr size_t kSubWindows = 16;
  static SlidingWindowState unpack_sliding_window(const std::string& value) {
    SlidingWindowState state;
    const size_t slots = kSubWindows + 1;
    if (value.size() != 1 + 8 + 8 + 4 * slots) {
      return state;
    }
    double span = 0, newest = 0;
    static_assert(sizeof(double) == 8, "IEEE doubles, as struct packs them");
    std::memcpy(&span, value.data() + 1, 8);  // little-endian ('<'), as this machine
    std::memcpy(&newest, value.data() + 9, 8);
    state.valid = true;
    state.tag = value[0];
    state.span = static_cast<uint64_t>(span);
    state.newest = static_cast<uint64_t>(newest);
    for (uint64_t x = state.newest - kSubWindows; x <= state.newest; ++x) {
      uint32_t count = 0;
      std::memcpy(&count, value.data() + 17 + 4 * (x % slots), 4);
      state.counts.push_back(count);
    }
    return state;
  }

  std::string type(std::string_view key) {
    Reply reply = command({"TYPE", key});
    return std::string(reply->str, reply->len);
  }

  std::vector<std::string> zrange(std::string_view key) {
    Reply reply = command({"ZRANGE", key, "0", "-1"});
    std::vector<std::string> members;
    for (size_t i = 0; i < reply->elements; ++i) {
      members.emplace_back(reply->element[i]->str, reply->element[i]->len);
    }
    return members;
  }

  // Redis's clock, in microseconds.
  uint64_t redis_time() {
    Reply reply = command({"TIME"});
    return std::stoull(reply->element[0]->str) * kSecond + std::stoull(reply->element[1]->str);
  }

  std::unique_ptr<redisContext, ContextFree> redis_;
  std::string sha_;
  std::set<std::string> without_rule_keys_;  // SHA1s of scripts that take no rule key
};

}  // namespace check_script
}  // namespace rate_guard
