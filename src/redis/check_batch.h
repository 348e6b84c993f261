// The checks waiting for Redis and the batches they travel in. The checks of
// one event-loop turn for one slot (for everything, without Cluster) go as
// one batch: one EVALSHA of the check script. Checks and batches are pooled:
// a warm client allocates nothing per check (hiredis itself does, for the
// command and the reply).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "limiter/check_client.h"
#include "limiter/decision.h"
#include "redis/check_connection.h"

struct redisReply;

namespace rate_guard {

// A check waiting for Redis: the client's handle (check_client.h) defined.
struct CheckClient::PendingCheck {
  CheckCallback callback = nullptr;  // null once completed or cancelled
  void* data = nullptr;
  uint64_t deadline_ms = 0;
  uint64_t sent_us = 0;  // for the latency histogram
  size_t zones = 0;
  size_t parts_left = 0;  // batches (one per slot) whose answer is awaited
  size_t batches = 0;     // batches holding it: released with the last one
  std::vector<ZoneVerdict> verdicts;  // one per zone, filled part by part
  bool live = false;  // waiting for its outcome, in the live list
  PendingCheck* prev = nullptr;
  PendingCheck* next = nullptr;
};
using PendingCheck = CheckClient::PendingCheck;

// A batch: its checks, in the order they came, and the entries of the
// script call (lua/check_script.h) that carry them. A check is an entry of
// its own, or, when it has one zone in the batch, joins the entry of an
// earlier check of the same key and zone arguments (cost included) that no
// other entry touched since: a merged entry, n checks sent as one, which the
// script decides exactly as n entries one after the other (so the checks of
// other keys between them change nothing). A check stays in its batch (and
// is released with it) even when it completes early, timed out or
// cancelled: its zones still have their place in the reply.
//
// A one-zone check asking for a lease starts a lease entry of its own (rank
// 0 of it, never joining an earlier entry); later checks of the key that
// ask for none may join it as they would a merged entry. A hand-back is an
// entry without a check: nobody waits for its answer, but it touches its
// key (no later check joins an entry before it), and a batch holding one is
// sent even when no check of it is live. A charge (count=after's count after
// the response) is the same kind of entry, named by a tag for its loss.
//
// Every zone travels with its key's rule key (bans and overrides): the
// script's KEYS are the state keys, then the rule keys, in the same order.
struct CheckBatch : InFlight {
  uint16_t slot = 0;
  struct Member {  // a check in the batch
    PendingCheck* check;
    uint32_t zones;    // of this check in this batch
    uint32_t entry;    // index in `entries`
    uint32_t rank;     // its place among the checks of a merged entry, from 0
    uint32_t zone_at;  // index in `zone_index` of its first zone
  };
  std::vector<Member> checks;
  enum class Kind : uint8_t {
    request,    // a request (count 1) or a merged entry (count more than 1)
    lease,      // a lease entry: its first check asks for the lease
    hand_back,  // a hand-back: no check (count 0)
    charge,     // a count after the response: no check (count 0)
  };
  struct Entry {  // an entry of the script call
    uint32_t first_key;  // index in `key_ends`
    uint32_t zones;
    uint32_t first_arg;  // index in `arg_ends` of its zone count (its header)
    uint32_t count;      // checks in it: more than 1 (request), a merged entry
    uint64_t algorithm, limit, window_ms, burst, cost;  // with one zone: its arguments
    size_t reply_at;     // its first integer in the reply (locate_batch_reply)
    Kind kind = Kind::request;
    uint64_t lease_units = 0;  // a lease entry's U and lifetime asked
    uint64_t lease_ms = 0;
    uint32_t tag = 0;  // a charge's, for ChargeLostCallback
  };
  std::vector<Entry> entries;
  std::vector<uint16_t> zone_index;  // of each zone of each check, in its check
  size_t zones = 0;    // keys sent
  std::string keys;  // the state keys, back to back
  std::vector<size_t> key_ends;
  std::string rule_keys;  // the rule key of each, back to back
  std::vector<size_t> rule_key_ends;
  // After locate_batch_reply: per key, the rules the reply named
  // (kRuleBit* bits).
  std::vector<uint8_t> key_rules;
  // Each entry's zone count (or header), then (lease: U and the lifetime;
  // hand-back: u, g and the mark), then its zones' arguments.
  std::string args;
  std::vector<size_t> arg_ends;
  size_t hand_backs = 0;  // hand-back entries
  size_t charges = 0;     // charge entries
  // By a hash of a key: 1 + the index of the last entry that has a zone of
  // a key of that hash, 0 for none (a check joins that entry only if it is
  // of the same key: then no later entry touched the key).
  std::vector<uint32_t> last_entry;
  char* command = nullptr;  // formatted when first sent, kept for resending
  size_t command_len = 0;
  bool retried = false;  // NOSCRIPT answered once
  bool asking = false;   // last sent behind ASKING
  uint8_t redirects = 0;

  // Some check of it is still live, or it holds a hand-back or a charge
  // (sent anyway; released when answered or failed, as every batch).
  bool waited_for() const;
  bool has_live_check() const;
};

// The state key and the rule key of key `index` (from 0) of `batch`.
std::string_view key_of(const CheckBatch& batch, size_t index);
std::string_view rule_key_of(const CheckBatch& batch, size_t index);

// The arguments of an entry between its header and its zones' arguments.
constexpr uint32_t entry_extra_args(CheckBatch::Kind kind) {
  return kind == CheckBatch::Kind::lease ? 2 : kind == CheckBatch::Kind::hand_back ? 3 : 0;
}

// One zone of a check as the batch needs it: its Redis keys and arguments.
struct BatchZone {
  std::string_view key;
  std::string_view rule_key;
  uint64_t algorithm, limit, window_ms, burst, cost;
};

// CheckBatch::key_rules.
constexpr uint8_t kRuleBitBanned = 1;
constexpr uint8_t kRuleBitOverride = 2;

// The checks waiting for their outcome, in the order they were made.
class LiveChecks {
 public:
  void add(PendingCheck* check);
  // Completed, timed out or cancelled: no longer live.
  void remove(PendingCheck* check);
  size_t size() const { return count_; }
  // The live checks whose deadline has passed, into `expired`; returns the
  // earliest deadline of the others (UINT64_MAX: none).
  uint64_t expired(uint64_t now_ms, std::vector<PendingCheck*>* expired) const;
  // Forgets every live check: no callback of theirs will fire (worker exit).
  void forget_all();

 private:
  PendingCheck* head_ = nullptr;
  PendingCheck* tail_ = nullptr;
  size_t count_ = 0;
};

class CheckPool {
 public:
  CheckPool() = default;
  CheckPool(const CheckPool&) = delete;
  CheckPool& operator=(const CheckPool&) = delete;

  PendingCheck* acquire_check();
  CheckBatch* acquire_batch();
  // Gives back a batch and the checks in it that nothing holds any more;
  // the strings keep their capacity.
  void release_batch(CheckBatch* batch);

 private:
  std::vector<std::unique_ptr<PendingCheck>> all_checks_;
  std::vector<PendingCheck*> free_checks_;
  std::vector<std::unique_ptr<CheckBatch>> all_batches_;
  std::vector<CheckBatch*> free_batches_;
};

// Appends the zones of `check` whose `slots[i]` is `slot` to `batch`
// (`index[i]`: the zone's place in its check), copied: the caller's memory
// (an nginx request) may be gone when the batch is sent. With one zone in
// the slot it joins a merged entry where it can (see CheckBatch), unless
// `merge` is false.
void add_to_batch(CheckBatch* batch, PendingCheck* check, const BatchZone* zones, const uint16_t* slots,
                  size_t count, uint16_t slot, bool merge = true);

// `check`, of one zone `zone` asking for a lease of `units` (1 or more) for
// `lease_ms` (1 or more), as a lease entry of its own in `batch` (rank 0;
// see CheckBatch). `index`: the zone's place in its check.
void add_lease_to_batch(CheckBatch* batch, PendingCheck* check, const BatchZone& zone, uint16_t index,
                        uint64_t units, uint64_t lease_ms);

// A hand-back of `units` (1 or more) of a grant of `granted` (`units` or
// more) units named `mark`, for `zone`, as an entry of `batch` without a check.
void add_hand_back_to_batch(CheckBatch* batch, const BatchZone& zone, uint64_t mark, uint64_t granted,
                            uint64_t units);

// A charge of `zone.cost` units (1 or more) for `zone`, as an entry of
// `batch` without a check, named `tag`.
void add_charge_to_batch(CheckBatch* batch, const BatchZone& zone, uint32_t tag);

// Decodes `zones` verdicts of the check script's reply (4 integers per zone),
// starting at zone `first_zone` of the reply, into `verdicts`.
bool decode_check_reply(const redisReply* reply, size_t first_zone, size_t zones, ZoneVerdict* verdicts);

// Decodes the verdict of the check of place `rank` (from 0) among the
// `count` checks of cost `cost` of a merged entry, whose 5 integers start at
// integer `first_field` of the reply.
bool decode_merged_reply(const redisReply* reply, size_t first_field, size_t count, size_t rank, uint64_t cost,
                         ZoneVerdict* verdict);

// Decodes the verdict of the check of place `rank` among the `count` of a
// lease entry that asked for `units` for `lease_ms`, whose 8 integers start
// at `first_field`: the first 5 as a merged entry's; the grant, if any, into
// `*lease` for rank 0 when it passed (zero otherwise). False, for every
// rank, when the grant is not one that was asked: more units or a longer
// lifetime, or a lifetime with nothing granted.
bool decode_lease_reply(const redisReply* reply, size_t first_field, size_t count, size_t rank, uint64_t cost,
                        uint64_t units, uint64_t lease_ms, ZoneVerdict* verdict, LeaseGrant* lease);

// Whether `reply` is an array of as many integers as `batch`'s entries are
// answered with, then the rule events; notes where each entry's answer
// starts, and the rules named for each key in batch->key_rules.
bool locate_batch_reply(CheckBatch* batch, const redisReply* reply);

// The verdicts of `member`'s zones in `batch` (after locate_batch_reply),
// into `verdicts`: a merged entry's answer fanned out to its checks in the
// order they came (the first ones pass), each marked banned or overridden
// as the reply's rule events say. For a lease entry's member, `*lease` is
// written (its grant, or zero); otherwise left alone.
bool decode_member_reply(const CheckBatch& batch, const CheckBatch::Member& member, const redisReply* reply,
                         ZoneVerdict* verdicts, LeaseGrant* lease = nullptr);

// While a slot migrates: `batch` cut into batches of one zone each, for the
// zones of its checks still live (each a part its check now waits for,
// instead of the batch), each given to `send`; `batch` is released. A lease
// asked goes on as a plain request (nothing granted), a zone goes without
// its rule (its state key sent in the rule key's place: one key, which the
// script reads as no rule), and hand-backs and
// charges are dropped (the caller reports the charges lost first; a
// hand-back's units stay counted until they leave the window: bounded).
void split_into_zones(CheckPool& pool, CheckBatch* batch, const std::function<void(CheckBatch* part)>& send);

// EVALSHA sha numkeys KEYS... 0 R ARGS... (EVAL with the script text before
// the first SCRIPT LOAD has answered), into batch->command. `now_us`, the
// script's ARGV[1]: 0, Redis's TIME, as the module sends; tests pin the time.
class BatchFormatter {
 public:
  bool format(CheckBatch* batch, const std::string& script_sha, uint64_t now_us = 0);

 private:
  std::string counts_;
  std::vector<size_t> count_ends_;
  std::vector<const char*> argv_;
  std::vector<size_t> argvlen_;
};

}  // namespace rate_guard
