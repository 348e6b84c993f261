// decode_merged_reply on any reply tree hiredis could hand over: never
// crashes, reads only what exists, and accepts exactly an array holding, from
// integer `first_field` on, 5 non-negative integers whose first (how many
// passed) is at most `count`, for a `rank` below `count`; the check of that
// rank then passes iff it is among the first that passed, and reports what
// the fields say (what remained after it, its reset).
// Input: a byte of count (mod 9), one of rank (mod 9), one of cost (mod 5),
// one of first field (mod 9), one whose low bit says whether there is a
// reply, then the tree (reply_tree.h).
#include <hiredis/hiredis.h>

#include "fuzz_target.h"
#include "redis/check_batch.h"
#include "reply_tree.h"

using namespace rate_guard;

using rate_guard::fuzz::Input;
using rate_guard::fuzz::ReplyTree;

RATE_GUARD_FUZZ_TARGET(decode_merged_reply) {
  Input in{data, size};
  size_t count = in.byte() % 9;
  size_t rank = in.byte() % 9;
  uint64_t cost = in.byte() % 5;
  size_t first_field = in.byte() % 9;
  ReplyTree tree;
  redisReply* reply = in.byte() & 1 ? tree.build(in, 0) : nullptr;

  ZoneVerdict verdict;
  bool ok = decode_merged_reply(reply, first_field, count, rank, cost, &verdict);

  bool expected = reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements >= first_field + 5 &&
                  rank < count;
  for (size_t i = first_field; expected && i < first_field + 5; i++) {
    expected = reply->element[i]->type == REDIS_REPLY_INTEGER && reply->element[i]->integer >= 0;
  }
  if (expected) {
    expected = static_cast<uint64_t>(reply->element[first_field]->integer) <= count;
  }
  FUZZ_CHECK(ok == expected);
  if (ok) {
    redisReply** fields = reply->element + first_field;
    const uint64_t passed = static_cast<uint64_t>(fields[0]->integer);
    FUZZ_CHECK(verdict.allowed == (rank < passed));
    FUZZ_CHECK(verdict.limit == static_cast<uint64_t>(fields[1]->integer));
    if (verdict.allowed) {
      FUZZ_CHECK(verdict.remaining == static_cast<uint64_t>(fields[2]->integer) + (passed - 1 - rank) * cost);
      FUZZ_CHECK(verdict.reset_ms == (rank + 1 == passed ? static_cast<uint64_t>(fields[3]->integer) : 0));
    } else {
      FUZZ_CHECK(verdict.remaining == static_cast<uint64_t>(fields[2]->integer));
      FUZZ_CHECK(verdict.reset_ms == static_cast<uint64_t>(fields[4]->integer));
    }
  }
  return 0;
}
