// decode_check_reply on any reply tree hiredis could hand over (arrays,
// integers, strings, nil, errors, status, nested): never crashes, reads only
// what exists, and accepts exactly an array holding, from zone `first_zone`
// on, 4 * zones non-negative integers (a batch reply holds several requests).
// Input: a byte of zone count (mod 9), one of first zone (mod 9), one whose
// low bit says whether there is a reply, then the tree, depth first: a type
// byte, then 8 bytes of integer, a length byte and the string, or an element
// count byte and the elements.
#include <hiredis/hiredis.h>

#include <memory>

#include "fuzz_target.h"
#include "redis/redis_checker.h"
#include "reply_tree.h"

using namespace rate_guard;

using rate_guard::fuzz::Input;
using rate_guard::fuzz::ReplyTree;

RATE_GUARD_FUZZ_TARGET(decode_check_reply) {
  Input in{data, size};
  size_t zones = in.byte() % 9;
  size_t first_zone = in.byte() % 9;
  ReplyTree tree;
  redisReply* reply = in.byte() & 1 ? tree.build(in, 0) : nullptr;

  // Exactly `zones` verdicts: ASan reports a write past them.
  auto verdicts = std::make_unique<ZoneVerdict[]>(zones == 0 ? 1 : zones);
  bool ok = decode_check_reply(reply, first_zone, zones, verdicts.get());

  bool expected = reply != nullptr && reply->type == REDIS_REPLY_ARRAY &&
                  reply->elements >= 4 * (first_zone + zones);
  for (size_t i = 4 * first_zone; expected && i < 4 * (first_zone + zones); i++) {
    expected = reply->element[i]->type == REDIS_REPLY_INTEGER && reply->element[i]->integer >= 0;
  }
  FUZZ_CHECK(ok == expected);
  for (size_t z = 0; ok && z < zones; z++) {
    redisReply** fields = reply->element + 4 * (first_zone + z);
    FUZZ_CHECK(verdicts[z].allowed == (fields[0]->integer != 0));
    FUZZ_CHECK(verdicts[z].limit == static_cast<uint64_t>(fields[1]->integer));
    FUZZ_CHECK(verdicts[z].remaining == static_cast<uint64_t>(fields[2]->integer));
    FUZZ_CHECK(verdicts[z].reset_ms == static_cast<uint64_t>(fields[3]->integer));
  }
  return 0;
}
