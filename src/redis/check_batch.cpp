#include "redis/check_batch.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <initializer_list>

#include "lua/check_script.h"

namespace rate_guard {

namespace {

void append_number(std::string& out, uint64_t value) {
  char buffer[24];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out.append(buffer, result.ptr);
}

}  // namespace

std::string_view check_error_name(CheckError error) {
  switch (error) {
    case CheckError::none: return "none";
    case CheckError::unavailable: return "unavailable";
    case CheckError::timeout: return "timeout";
    case CheckError::disconnected: return "disconnected";
    case CheckError::redis_error: return "redis_error";
    case CheckError::bad_reply: return "bad_reply";
  }
  return "unknown";
}

namespace {

// Whether `reply` holds `fields` non-negative integers from integer `first` on.
bool integers_at(const redisReply* reply, size_t first, size_t fields) {
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < first + fields) {
    return false;
  }
  for (size_t i = first; i < first + fields; i++) {
    if (reply->element[i]->type != REDIS_REPLY_INTEGER || reply->element[i]->integer < 0) {
      return false;
    }
  }
  return true;
}

bool decode_fields(const redisReply* reply, size_t first_field, size_t zones, ZoneVerdict* verdicts) {
  if (!integers_at(reply, first_field, zones * kCheckReplyFieldsPerZone)) {
    return false;
  }
  redisReply* const* fields = reply->element + first_field;
  for (size_t zone = 0; zone < zones; zone++, fields += kCheckReplyFieldsPerZone) {
    verdicts[zone].allowed = fields[0]->integer != 0;
    verdicts[zone].limit = static_cast<uint64_t>(fields[1]->integer);
    verdicts[zone].remaining = static_cast<uint64_t>(fields[2]->integer);
    verdicts[zone].reset_ms = static_cast<uint64_t>(fields[3]->integer);
  }
  return true;
}

}  // namespace

bool decode_check_reply(const redisReply* reply, size_t first_zone, size_t zones, ZoneVerdict* verdicts) {
  return decode_fields(reply, first_zone * kCheckReplyFieldsPerZone, zones, verdicts);
}

// m passed of `count`, limit, remaining once the m are counted, the m-th's
// reset, the rejected ones' reset: the i-th (from 0) passed reports what
// remained after it, remaining + (m - 1 - i) * cost, and, before the m-th,
// a reset of 0 (something remained).
bool decode_merged_reply(const redisReply* reply, size_t first_field, size_t count, size_t rank, uint64_t cost,
                         ZoneVerdict* verdict) {
  if (!integers_at(reply, first_field, kCheckReplyFieldsPerMerged) || rank >= count) {
    return false;
  }
  redisReply* const* fields = reply->element + first_field;
  const uint64_t passed = static_cast<uint64_t>(fields[0]->integer);
  if (passed > count) {
    return false;
  }
  verdict->limit = static_cast<uint64_t>(fields[1]->integer);
  verdict->remaining = static_cast<uint64_t>(fields[2]->integer);
  verdict->allowed = rank < passed;
  if (verdict->allowed) {
    // (never past the limit: a key under rate=unlimited reports the limit
    // left for all n, counting nothing)
    verdict->remaining = std::min(verdict->limit, verdict->remaining + (passed - 1 - rank) * cost);
    verdict->reset_ms = rank + 1 == passed ? static_cast<uint64_t>(fields[3]->integer) : 0;
  } else {
    verdict->reset_ms = static_cast<uint64_t>(fields[4]->integer);
  }
  return true;
}

// A lease entry: a merged entry's 5, then units granted, lifetime, mark.
bool decode_lease_reply(const redisReply* reply, size_t first_field, size_t count, size_t rank, uint64_t cost,
                        uint64_t units, uint64_t lease_ms, ZoneVerdict* verdict, LeaseGrant* lease) {
  if (!integers_at(reply, first_field, kCheckReplyFieldsPerLease) ||
      !decode_merged_reply(reply, first_field, count, rank, cost, verdict)) {
    return false;
  }
  redisReply* const* fields = reply->element + first_field + kCheckReplyFieldsPerMerged;
  const auto granted = static_cast<uint64_t>(fields[0]->integer);
  const auto granted_ms = static_cast<uint64_t>(fields[1]->integer);
  if (granted > units || granted_ms > lease_ms || (granted == 0 && granted_ms != 0)) {
    return false;
  }
  *lease = LeaseGrant{};
  if (rank == 0 && verdict->allowed && granted > 0) {
    *lease = LeaseGrant{granted, granted_ms, static_cast<uint64_t>(fields[2]->integer)};
  }
  return true;
}

bool locate_batch_reply(CheckBatch* batch, const redisReply* reply) {
  size_t fields = 0;
  for (CheckBatch::Entry& entry : batch->entries) {
    entry.reply_at = fields;
    switch (entry.kind) {
      case CheckBatch::Kind::request:
        fields += entry.count > 1 ? kCheckReplyFieldsPerMerged : entry.zones * kCheckReplyFieldsPerZone;
        break;
      case CheckBatch::Kind::lease: fields += kCheckReplyFieldsPerLease; break;
      case CheckBatch::Kind::hand_back: fields += kCheckReplyFieldsPerHandBack; break;
      case CheckBatch::Kind::charge: fields += kCheckReplyFieldsPerCharge; break;
    }
  }
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < fields) {
    return false;
  }
  // The rule events: k * 2 + kind, k the key's place in KEYS from 1.
  batch->key_rules.assign(batch->zones, 0);
  for (size_t i = fields; i < reply->elements; i++) {
    const redisReply* event = reply->element[i];
    if (event->type != REDIS_REPLY_INTEGER || event->integer < 2) {
      return false;
    }
    const auto k = static_cast<uint64_t>(event->integer / 2);
    if (k > batch->zones) {
      return false;
    }
    batch->key_rules[k - 1] |= event->integer % 2 == kRuleBanned ? kRuleBitBanned : kRuleBitOverride;
  }
  return true;
}

namespace {

void mark_rules(const CheckBatch& batch, size_t first_key, size_t zones, ZoneVerdict* verdicts) {
  for (size_t i = 0; i < zones && first_key + i < batch.key_rules.size(); i++) {
    verdicts[i].banned = (batch.key_rules[first_key + i] & kRuleBitBanned) != 0;
    verdicts[i].overridden = (batch.key_rules[first_key + i] & kRuleBitOverride) != 0;
  }
}

}  // namespace

bool decode_member_reply(const CheckBatch& batch, const CheckBatch::Member& member, const redisReply* reply,
                         ZoneVerdict* verdicts, LeaseGrant* lease) {
  const CheckBatch::Entry& entry = batch.entries[member.entry];
  bool decoded;
  if (entry.kind != CheckBatch::Kind::request) {
    LeaseGrant unused;
    decoded = entry.kind == CheckBatch::Kind::lease && member.zones == 1 &&
              decode_lease_reply(reply, entry.reply_at, entry.count, member.rank, entry.cost, entry.lease_units,
                                 entry.lease_ms, verdicts, lease != nullptr ? lease : &unused);
  } else if (entry.count > 1) {
    decoded = member.zones == 1 &&
              decode_merged_reply(reply, entry.reply_at, entry.count, member.rank, entry.cost, verdicts);
  } else {
    decoded = member.zones == entry.zones && decode_fields(reply, entry.reply_at, entry.zones, verdicts);
  }
  if (decoded) {
    mark_rules(batch, entry.first_key, member.zones, verdicts);
  }
  return decoded;
}

std::string_view key_of(const CheckBatch& batch, size_t index) {
  const size_t begin = index == 0 ? 0 : batch.key_ends[index - 1];
  return std::string_view(batch.keys).substr(begin, batch.key_ends[index] - begin);
}

std::string_view rule_key_of(const CheckBatch& batch, size_t index) {
  const size_t begin = index == 0 ? 0 : batch.rule_key_ends[index - 1];
  return std::string_view(batch.rule_keys).substr(begin, batch.rule_key_ends[index] - begin);
}

bool CheckBatch::has_live_check() const {
  return std::any_of(checks.begin(), checks.end(), [](const Member& member) { return member.check->live; });
}

bool CheckBatch::waited_for() const {
  return hand_backs > 0 || charges > 0 || has_live_check();
}

void LiveChecks::add(PendingCheck* check) {
  check->live = true;
  check->next = nullptr;
  check->prev = tail_;
  (tail_ != nullptr ? tail_->next : head_) = check;
  tail_ = check;
  count_++;
}

void LiveChecks::remove(PendingCheck* check) {
  (check->prev != nullptr ? check->prev->next : head_) = check->next;
  (check->next != nullptr ? check->next->prev : tail_) = check->prev;
  check->prev = check->next = nullptr;
  check->live = false;
  count_--;
}

uint64_t LiveChecks::expired(uint64_t now_ms, std::vector<PendingCheck*>* expired) const {
  uint64_t next_deadline = UINT64_MAX;
  for (PendingCheck* check = head_; check != nullptr; check = check->next) {
    if (check->deadline_ms <= now_ms) {
      expired->push_back(check);
    } else {
      next_deadline = std::min(next_deadline, check->deadline_ms);
    }
  }
  return next_deadline;
}

void LiveChecks::forget_all() {
  while (head_ != nullptr) {
    PendingCheck* check = head_;
    remove(check);
    check->callback = nullptr;  // released with its last batch
  }
}

PendingCheck* CheckPool::acquire_check() {
  if (free_checks_.empty()) {
    all_checks_.push_back(std::make_unique<PendingCheck>());
    return all_checks_.back().get();
  }
  PendingCheck* check = free_checks_.back();
  free_checks_.pop_back();
  return check;
}

CheckBatch* CheckPool::acquire_batch() {
  if (free_batches_.empty()) {
    all_batches_.push_back(std::make_unique<CheckBatch>());
    return all_batches_.back().get();
  }
  CheckBatch* batch = free_batches_.back();
  free_batches_.pop_back();
  return batch;
}

void CheckPool::release_batch(CheckBatch* batch) {
  for (const CheckBatch::Member& member : batch->checks) {
    PendingCheck* check = member.check;
    if (--check->batches > 0 || check->live) {
      continue;  // live: cannot happen once the last batch's reply was handled
    }
    check->callback = nullptr;
    check->data = nullptr;
    free_checks_.push_back(check);
  }
  batch->checks.clear();
  batch->entries.clear();
  batch->zone_index.clear();
  batch->zones = 0;
  batch->keys.clear();
  batch->key_ends.clear();
  batch->rule_keys.clear();
  batch->rule_key_ends.clear();
  batch->key_rules.clear();
  batch->args.clear();
  batch->arg_ends.clear();
  batch->hand_backs = 0;
  batch->charges = 0;
  std::fill(batch->last_entry.begin(), batch->last_entry.end(), 0);
  std::free(batch->command);  // allocated by hiredis's formatter
  batch->command = nullptr;
  batch->command_len = 0;
  batch->retried = false;
  batch->asking = false;
  batch->redirects = 0;
  free_batches_.push_back(batch);
}

namespace {

// The slots of CheckBatch::last_entry: twice the zones of a full batch, so
// that keys seldom share one (sharing costs a merge, never a wrong one).
constexpr size_t kLastEntrySlots = 512;

uint32_t& last_entry_of(CheckBatch* batch, std::string_view key) {
  if (batch->last_entry.empty()) {
    batch->last_entry.assign(kLastEntrySlots, 0);
  }
  return batch->last_entry[std::hash<std::string_view>{}(key) & (kLastEntrySlots - 1)];
}

void append_keys(CheckBatch* batch, const BatchZone& zone) {
  batch->keys.append(zone.key);
  batch->key_ends.push_back(batch->keys.size());
  batch->rule_keys.append(zone.rule_key);
  batch->rule_key_ends.push_back(batch->rule_keys.size());
}

// `check`'s one zone `zone` (its place in the check: `index`) joins the
// merged entry of the last checks of its key, if that is one of the same
// arguments.
bool join_entry(CheckBatch* batch, PendingCheck* check, const BatchZone& zone, uint16_t index) {
  const uint32_t last = last_entry_of(batch, zone.key);
  if (last == 0) {
    return false;
  }
  CheckBatch::Entry& entry = batch->entries[last - 1];
  // (a cost of 0, count=after's check before the request, is never merged:
  // the script takes no merged entry of it)
  if (entry.zones != 1 || entry.kind == CheckBatch::Kind::hand_back || entry.kind == CheckBatch::Kind::charge ||
      zone.cost == 0 || entry.algorithm != zone.algorithm || entry.limit != zone.limit ||
      entry.window_ms != zone.window_ms || entry.burst != zone.burst || entry.cost != zone.cost ||
      key_of(*batch, entry.first_key) != zone.key) {
    return false;
  }
  batch->checks.push_back({check, 1, last - 1, entry.count, static_cast<uint32_t>(batch->zone_index.size())});
  batch->zone_index.push_back(index);
  entry.count++;
  return true;
}

void append_arg(CheckBatch* batch, uint64_t value) {
  append_number(batch->args, value);
  batch->arg_ends.push_back(batch->args.size());
}

// A new entry of one zone `zone`, with its header and extra arguments (as
// many as entry_extra_args(kind)): the key, its arguments, the merge barrier.
CheckBatch::Entry& add_one_zone_entry(CheckBatch* batch, CheckBatch::Kind kind, std::string_view header,
                                      std::initializer_list<uint64_t> extra, const BatchZone& zone, uint32_t count) {
  const auto entry_index = static_cast<uint32_t>(batch->entries.size());
  batch->entries.push_back({static_cast<uint32_t>(batch->key_ends.size()), 1,
                            static_cast<uint32_t>(batch->arg_ends.size()), count, zone.algorithm, zone.limit,
                            zone.window_ms, zone.burst, zone.cost, 0, kind});
  append_keys(batch, zone);
  last_entry_of(batch, zone.key) = entry_index + 1;
  batch->args.append(header);
  batch->arg_ends.push_back(batch->args.size());
  for (uint64_t value : extra) {
    append_arg(batch, value);
  }
  for (uint64_t value : {zone.algorithm, zone.limit, zone.window_ms, zone.burst, zone.cost}) {
    append_arg(batch, value);
  }
  batch->zones++;
  return batch->entries.back();
}

}  // namespace

void add_lease_to_batch(CheckBatch* batch, PendingCheck* check, const BatchZone& zone, uint16_t index,
                        uint64_t units, uint64_t lease_ms) {
  static_assert(kCheckLeaseHeader == -1, "sent as \"-1\"");
  static_assert(entry_extra_args(CheckBatch::Kind::lease) == 2, "U, the lifetime");
  check->batches++;
  check->parts_left++;
  batch->checks.push_back({check, 1, static_cast<uint32_t>(batch->entries.size()), 0,
                           static_cast<uint32_t>(batch->zone_index.size())});
  batch->zone_index.push_back(index);
  CheckBatch::Entry& entry = add_one_zone_entry(batch, CheckBatch::Kind::lease, "-1", {units, lease_ms}, zone, 1);
  entry.lease_units = units;
  entry.lease_ms = lease_ms;
}

void add_hand_back_to_batch(CheckBatch* batch, const BatchZone& zone, uint64_t mark, uint64_t granted,
                            uint64_t units) {
  static_assert(kCheckHandBackHeader == -2, "sent as \"-2\"");
  static_assert(entry_extra_args(CheckBatch::Kind::hand_back) == 3, "u, g, the mark");
  add_one_zone_entry(batch, CheckBatch::Kind::hand_back, "-2", {units, granted, mark}, zone, 0);
  batch->hand_backs++;
}

void add_charge_to_batch(CheckBatch* batch, const BatchZone& zone, uint32_t tag) {
  static_assert(kCheckChargeHeader == -3, "sent as \"-3\"");
  static_assert(entry_extra_args(CheckBatch::Kind::charge) == 0, "the zone only");
  add_one_zone_entry(batch, CheckBatch::Kind::charge, "-3", {}, zone, 0).tag = tag;
  batch->charges++;
}

void add_to_batch(CheckBatch* batch, PendingCheck* check, const BatchZone* zones, const uint16_t* slots,
                  size_t count, uint16_t slot, bool merge) {
  size_t in_slot = 0;
  size_t only = 0;
  for (size_t i = 0; i < count; i++) {
    if (slots[i] == slot) {
      in_slot++;
      only = i;
    }
  }
  check->batches++;
  check->parts_left++;
  if (merge && in_slot == 1 && join_entry(batch, check, zones[only], static_cast<uint16_t>(only))) {
    return;
  }
  const auto entry_index = static_cast<uint32_t>(batch->entries.size());
  CheckBatch::Entry entry{static_cast<uint32_t>(batch->key_ends.size()),
                          static_cast<uint32_t>(in_slot),
                          static_cast<uint32_t>(batch->arg_ends.size()),
                          1,
                          zones[only].algorithm,
                          zones[only].limit,
                          zones[only].window_ms,
                          zones[only].burst,
                          zones[only].cost,
                          0};
  batch->checks.push_back({check, static_cast<uint32_t>(in_slot), entry_index, 0,
                           static_cast<uint32_t>(batch->zone_index.size())});
  for (size_t i = 0; i < count; i++) {
    if (slots[i] == slot) {
      append_keys(batch, zones[i]);
      batch->zone_index.push_back(static_cast<uint16_t>(i));
      last_entry_of(batch, zones[i].key) = entry_index + 1;
    }
  }
  append_number(batch->args, in_slot);
  batch->arg_ends.push_back(batch->args.size());
  for (size_t i = 0; i < count; i++) {
    if (slots[i] != slot) {
      continue;
    }
    const BatchZone& zone = zones[i];
    for (uint64_t value : {zone.algorithm, zone.limit, zone.window_ms, zone.burst, zone.cost}) {
      append_number(batch->args, value);
      batch->arg_ends.push_back(batch->args.size());
    }
  }
  batch->zones += in_slot;
  batch->entries.push_back(entry);
}

// While a slot migrates Redis runs a command of several keys only where all
// of them are (TRYAGAIN otherwise, on either side, until the migration ends),
// and a batch is such a command: its zones go on one by one, each key where
// it is. A multi-zone check is then all-or-nothing per zone only, for the
// moments its slot migrates.
// Hand-backs are not checks: they are dropped here (their units stay counted
// until they leave the window, as when a hand-back is lost), and a lease
// asked is not asked again (the check goes on as a plain request).
void split_into_zones(CheckPool& pool, CheckBatch* batch, const std::function<void(CheckBatch* part)>& send) {
  for (const CheckBatch::Member& member : batch->checks) {
    PendingCheck* check = member.check;
    if (!check->live) {
      continue;
    }
    const CheckBatch::Entry& entry = batch->entries[member.entry];
    for (uint32_t i = 0; i < member.zones; i++) {
      const size_t key = entry.first_key + i;
      // the zone's first argument
      const size_t arg = entry.first_arg + 1 + entry_extra_args(entry.kind) + i * kCheckArgsPerZone;
      const size_t arg_begin = batch->arg_ends[arg - 1];
      CheckBatch* part = pool.acquire_batch();
      part->slot = batch->slot;
      part->redirects = batch->redirects;
      part->retried = batch->retried;
      part->keys.assign(key_of(*batch, key));
      part->key_ends.push_back(part->keys.size());
      // Its state key twice: Redis Cluster's ASKING takes a command of
      // several keys only where all of them exist, and a rule key seldom
      // does; the script reads a rule key equal to the state key as none
      // (the rule is ignored while the slot migrates).
      part->rule_keys.assign(key_of(*batch, key));
      part->rule_key_ends.push_back(part->rule_keys.size());
      part->zone_index.push_back(batch->zone_index[member.zone_at + i]);
      part->args = "1";
      part->arg_ends.push_back(1);
      part->args.append(batch->args, arg_begin, batch->arg_ends[arg + kCheckArgsPerZone - 1] - arg_begin);
      for (size_t a = 0; a < kCheckArgsPerZone; a++) {
        part->arg_ends.push_back(1 + batch->arg_ends[arg + a] - arg_begin);
      }
      part->zones = 1;
      part->entries.push_back({0, 1, 0, 1, 0, 0, 0, 0, 0, 0});
      part->checks.push_back({check, 1, 0, 0, 0});
      check->batches++;
      check->parts_left++;
      send(part);
    }
    check->parts_left--;  // this batch's part is replaced by the zones' own
  }
  pool.release_batch(batch);
}

bool BatchFormatter::format(CheckBatch* batch, const std::string& script_sha, uint64_t now_us) {
  // The numbers made here first (counts_ may move as it grows): numkeys,
  // the time, R, then each merged or lease entry's count.
  counts_.clear();
  count_ends_.clear();
  for (uint64_t value : {static_cast<uint64_t>(2 * batch->zones), now_us, static_cast<uint64_t>(batch->entries.size())}) {
    append_number(counts_, value);
    count_ends_.push_back(counts_.size());
  }
  for (const CheckBatch::Entry& entry : batch->entries) {
    if (entry.count > 1 || entry.kind == CheckBatch::Kind::lease) {
      append_number(counts_, entry.count);
      count_ends_.push_back(counts_.size());
    }
  }
  argv_.clear();
  argvlen_.clear();
  auto add = [this](const char* data, size_t len) {
    argv_.push_back(data);
    argvlen_.push_back(len);
  };
  size_t next_count = 0;
  auto add_count = [&] {
    const size_t begin = next_count == 0 ? 0 : count_ends_[next_count - 1];
    add(counts_.data() + begin, count_ends_[next_count] - begin);
    next_count++;
  };
  auto add_args = [&](size_t from, size_t to) {  // arg_ends indices [from, to)
    for (size_t a = from; a < to; a++) {
      const size_t begin = a == 0 ? 0 : batch->arg_ends[a - 1];
      add(batch->args.data() + begin, batch->arg_ends[a] - begin);
    }
  };
  const bool have_sha = !script_sha.empty();
  add(have_sha ? "EVALSHA" : "EVAL", have_sha ? 7 : 4);
  add(have_sha ? script_sha.data() : kCheckScript.data(), have_sha ? script_sha.size() : kCheckScript.size());
  add_count();  // numkeys
  size_t begin = 0;
  for (size_t end : batch->key_ends) {
    add(batch->keys.data() + begin, end - begin);
    begin = end;
  }
  begin = 0;
  for (size_t end : batch->rule_key_ends) {
    add(batch->rule_keys.data() + begin, end - begin);
    begin = end;
  }
  add_count();  // the time: 0, Redis's
  add_count();  // R
  for (const CheckBatch::Entry& entry : batch->entries) {
    const size_t args_end = entry.first_arg + 1 + entry_extra_args(entry.kind) + entry.zones * kCheckArgsPerZone;
    if (entry.kind == CheckBatch::Kind::lease) {
      add_args(entry.first_arg, entry.first_arg + 1);  // "-1"
      add_count();                                    // n
      add_args(entry.first_arg + 1, args_end);        // U, the lifetime, the zone
    } else if (entry.count > 1) {
      static_assert(kCheckMergedHeader == 0, "sent as \"0\"");
      add("0", 1);
      add_count();
      add_args(entry.first_arg + 1, args_end);
    } else {
      add_args(entry.first_arg, args_end);  // a request; a hand-back: "-2", u, g, mark, the zone; a charge: "-3", the zone
    }
  }
  char* command = nullptr;
  const int length = redisFormatCommandArgv(&command, static_cast<int>(argv_.size()), argv_.data(), argvlen_.data());
  if (length <= 0) {
    return false;
  }
  batch->command = command;
  batch->command_len = static_cast<size_t>(length);
  return true;
}

}  // namespace rate_guard
