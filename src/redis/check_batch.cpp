#include "redis/check_batch.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cstdlib>

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

bool decode_check_reply(const redisReply* reply, size_t first_zone, size_t zones, ZoneVerdict* verdicts) {
  if (reply == nullptr || reply->type != REDIS_REPLY_ARRAY || reply->elements < (first_zone + zones) * kCheckReplyFieldsPerZone) {
    return false;
  }
  redisReply* const* fields = reply->element + first_zone * kCheckReplyFieldsPerZone;
  for (size_t i = 0; i < zones * kCheckReplyFieldsPerZone; i++) {
    if (fields[i]->type != REDIS_REPLY_INTEGER || fields[i]->integer < 0) {
      return false;
    }
  }
  for (size_t zone = 0; zone < zones; zone++, fields += kCheckReplyFieldsPerZone) {
    verdicts[zone].allowed = fields[0]->integer != 0;
    verdicts[zone].limit = static_cast<uint64_t>(fields[1]->integer);
    verdicts[zone].remaining = static_cast<uint64_t>(fields[2]->integer);
    verdicts[zone].reset_ms = static_cast<uint64_t>(fields[3]->integer);
  }
  return true;
}

bool CheckBatch::waited_for() const {
  return std::any_of(entries.begin(), entries.end(), [](const Entry& entry) { return entry.check->live; });
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
  for (const CheckBatch::Entry& entry : batch->entries) {
    PendingCheck* check = entry.check;
    if (--check->batches > 0 || check->live) {
      continue;  // live: cannot happen once the last batch's reply was handled
    }
    check->callback = nullptr;
    check->data = nullptr;
    free_checks_.push_back(check);
  }
  batch->entries.clear();
  batch->zone_index.clear();
  batch->zones = 0;
  batch->keys.clear();
  batch->key_ends.clear();
  batch->args.clear();
  batch->arg_ends.clear();
  std::free(batch->command);  // allocated by hiredis's formatter
  batch->command = nullptr;
  batch->command_len = 0;
  batch->retried = false;
  batch->asking = false;
  batch->redirects = 0;
  free_batches_.push_back(batch);
}

void add_to_batch(CheckBatch* batch, PendingCheck* check, const BatchZone* zones, const uint16_t* slots,
                  size_t count, uint16_t slot) {
  size_t in_slot = 0;
  for (size_t i = 0; i < count; i++) {
    if (slots[i] == slot) {
      batch->keys.append(zones[i].key);
      batch->key_ends.push_back(batch->keys.size());
      batch->zone_index.push_back(static_cast<uint16_t>(i));
      in_slot++;
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
  batch->entries.push_back({check, in_slot});
  check->batches++;
  check->parts_left++;
}

// While a slot migrates Redis runs a command of several keys only where all
// of them are (TRYAGAIN otherwise, on either side, until the migration ends),
// and a batch is such a command: its zones go on one by one, each key where
// it is. A multi-zone check is then all-or-nothing per zone only, for the
// moments its slot migrates.
void split_into_zones(CheckPool& pool, CheckBatch* batch, const std::function<void(CheckBatch* part)>& send) {
  size_t key_begin = 0;
  size_t arg = 0;   // index in arg_ends: each check's zone count, then its zones' arguments
  size_t zone = 0;  // index in the batch
  for (const CheckBatch::Entry& entry : batch->entries) {
    PendingCheck* check = entry.check;
    size_t arg_begin = batch->arg_ends[arg];  // after the zone count
    arg++;
    for (size_t i = 0; i < entry.zones; i++, zone++) {
      const size_t arg_end = batch->arg_ends[arg + kCheckArgsPerZone - 1];
      if (check->live) {
        CheckBatch* part = pool.acquire_batch();
        part->slot = batch->slot;
        part->redirects = batch->redirects;
        part->retried = batch->retried;
        part->keys.assign(batch->keys, key_begin, batch->key_ends[zone] - key_begin);
        part->key_ends.push_back(part->keys.size());
        part->zone_index.push_back(batch->zone_index[zone]);
        part->args = "1";
        part->arg_ends.push_back(1);
        part->args.append(batch->args, arg_begin, arg_end - arg_begin);
        for (size_t a = 0; a < kCheckArgsPerZone; a++) {
          part->arg_ends.push_back(1 + batch->arg_ends[arg + a] - arg_begin);
        }
        part->zones = 1;
        part->entries.push_back({check, 1});
        check->batches++;
        check->parts_left++;
        send(part);
      }
      key_begin = batch->key_ends[zone];
      arg_begin = arg_end;
      arg += kCheckArgsPerZone;
    }
    if (check->live) {
      check->parts_left--;  // this batch's part is replaced by the zones' own
    }
  }
  pool.release_batch(batch);
}

bool BatchFormatter::format(CheckBatch* batch, const std::string& script_sha) {
  argv_.clear();
  argvlen_.clear();
  auto add = [this](const char* data, size_t len) {
    argv_.push_back(data);
    argvlen_.push_back(len);
  };
  const bool have_sha = !script_sha.empty();
  add(have_sha ? "EVALSHA" : "EVAL", have_sha ? 7 : 4);
  add(have_sha ? script_sha.data() : kCheckScript.data(), have_sha ? script_sha.size() : kCheckScript.size());
  counts_.clear();
  append_number(counts_, batch->zones);
  const size_t numkeys_end = counts_.size();
  append_number(counts_, batch->entries.size());
  add(counts_.data(), numkeys_end);
  size_t begin = 0;
  for (size_t end : batch->key_ends) {
    add(batch->keys.data() + begin, end - begin);
    begin = end;
  }
  add("0", 1);  // the script reads the time from Redis
  add(counts_.data() + numkeys_end, counts_.size() - numkeys_end);
  begin = 0;
  for (size_t end : batch->arg_ends) {
    add(batch->args.data() + begin, end - begin);
    begin = end;
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
