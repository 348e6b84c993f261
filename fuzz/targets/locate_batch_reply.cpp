// locate_batch_reply on any reply tree hiredis could hand over, for a batch
// of a few entries of every kind: never crashes, reads only what exists, and
// accepts exactly an array of at least as many elements as the entries are
// answered with (4 per zone of a request, 5 for a merged entry, 8 for a
// lease, 1 for a hand-back or a charge), the ones after them all rule
// events: integers k * 2 + kind naming a key of the batch (1 <= k <= its
// keys). Each key's rules are then the union of its events' kinds.
// Input: a byte of entries (mod 5), one per entry for its kind (mod 6: a
// request of 1 zone, of 2 zones, a merged entry of 2, a lease, a hand-back,
// a charge), one whose low bit says whether there is a reply, then the tree
// (reply_tree.h).
#include <hiredis/hiredis.h>

#include <string>
#include <vector>

#include "fuzz_target.h"
#include "lua/check_script.h"
#include "redis/check_batch.h"
#include "reply_tree.h"

using namespace rate_guard;

using rate_guard::fuzz::Input;
using rate_guard::fuzz::ReplyTree;

RATE_GUARD_FUZZ_TARGET(locate_batch_reply) {
  Input in{data, size};
  const size_t entries = in.byte() % 5;
  CheckPool pool;
  CheckBatch* batch = pool.acquire_batch();
  std::vector<std::string> keys;
  keys.reserve(2 * entries + 2);
  size_t fields = 0;
  for (size_t e = 0; e < entries; e++) {
    keys.push_back("k" + std::to_string(e));
    keys.push_back("!k" + std::to_string(e));
    const BatchZone zone{keys[keys.size() - 2], keys.back(), 2, 10, 60000, 10, 1};
    const BatchZone other{"o", "!o", 2, 10, 60000, 10, 1};
    const BatchZone two[2] = {zone, other};
    const uint16_t slots[2] = {0, 0};
    switch (in.byte() % 6) {
      case 0:
        add_to_batch(batch, pool.acquire_check(), &zone, slots, 1, 0, false);
        fields += kCheckReplyFieldsPerZone;
        break;
      case 1:
        add_to_batch(batch, pool.acquire_check(), two, slots, 2, 0, false);
        fields += 2 * kCheckReplyFieldsPerZone;
        break;
      case 2:
        add_to_batch(batch, pool.acquire_check(), &zone, slots, 1, 0, false);
        add_to_batch(batch, pool.acquire_check(), &zone, slots, 1, 0, true);
        fields += kCheckReplyFieldsPerMerged;
        break;
      case 3:
        add_lease_to_batch(batch, pool.acquire_check(), zone, 0, 4, 100);
        fields += kCheckReplyFieldsPerLease;
        break;
      case 4:
        add_hand_back_to_batch(batch, zone, 1, 2, 2);
        fields += kCheckReplyFieldsPerHandBack;
        break;
      default:
        add_charge_to_batch(batch, zone, 0);
        fields += kCheckReplyFieldsPerCharge;
        break;
    }
  }
  ReplyTree tree;
  redisReply* reply = in.byte() & 1 ? tree.build(in, 0) : nullptr;

  const bool ok = locate_batch_reply(batch, reply);

  bool expected = reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements >= fields;
  std::vector<uint8_t> rules(batch->zones, 0);
  for (size_t i = fields; expected && i < reply->elements; i++) {
    const redisReply* event = reply->element[i];
    expected = event->type == REDIS_REPLY_INTEGER && event->integer >= 2 &&
               static_cast<unsigned long long>(event->integer) / 2 <= batch->zones;
    if (expected) {
      rules[static_cast<size_t>(event->integer / 2) - 1] |= event->integer % 2 == 0 ? kRuleBitBanned : kRuleBitOverride;
    }
  }
  FUZZ_CHECK(ok == expected);
  if (ok) {
    FUZZ_CHECK(batch->key_rules == rules);
  }
  for (CheckBatch::Member& member : batch->checks) {
    member.check->live = false;
  }
  pool.release_batch(batch);
  return 0;
}
