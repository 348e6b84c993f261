// decode_lease_reply on any reply tree hiredis could hand over: never
// crashes, reads only what exists, and accepts exactly an array holding, from
// integer `first_field` on, 8 non-negative integers whose first (how many
// passed) is at most `count`, for a `rank` below `count`, with a grant no
// larger than asked (units <= U, lifetime <= the lifetime asked, no lifetime
// without units); the verdict is then a merged entry's (decode_merged_reply),
// and the grant goes to rank 0 only, when it passed and units were granted.
// Input: a byte of count (mod 9), one of rank (mod 9), one of cost (mod 5),
// one of first field (mod 9), one of U (mod 6), one of the lifetime asked
// (mod 6), one whose low bit says whether there is a reply, then the tree
// (reply_tree.h).
#include <hiredis/hiredis.h>

#include "fuzz_target.h"
#include "redis/check_batch.h"
#include "reply_tree.h"

using namespace rate_guard;

using rate_guard::fuzz::Input;
using rate_guard::fuzz::ReplyTree;

RATE_GUARD_FUZZ_TARGET(decode_lease_reply) {
  Input in{data, size};
  size_t count = in.byte() % 9;
  size_t rank = in.byte() % 9;
  uint64_t cost = in.byte() % 5;
  size_t first_field = in.byte() % 9;
  uint64_t units = in.byte() % 6;
  uint64_t lease_ms = in.byte() % 6;
  ReplyTree tree;
  redisReply* reply = in.byte() & 1 ? tree.build(in, 0) : nullptr;

  ZoneVerdict verdict;
  LeaseGrant lease{7, 7, 7};
  bool ok = decode_lease_reply(reply, first_field, count, rank, cost, units, lease_ms, &verdict, &lease);

  bool expected = reply != nullptr && reply->type == REDIS_REPLY_ARRAY && reply->elements >= first_field + 8 &&
                  rank < count;
  for (size_t i = first_field; expected && i < first_field + 8; i++) {
    expected = reply->element[i]->type == REDIS_REPLY_INTEGER && reply->element[i]->integer >= 0;
  }
  if (expected) {
    redisReply** fields = reply->element + first_field;
    const auto granted = static_cast<uint64_t>(fields[5]->integer);
    const auto granted_ms = static_cast<uint64_t>(fields[6]->integer);
    expected = static_cast<uint64_t>(fields[0]->integer) <= count && granted <= units && granted_ms <= lease_ms &&
               (granted != 0 || granted_ms == 0);
  }
  FUZZ_CHECK(ok == expected);
  if (ok) {
    ZoneVerdict merged;
    FUZZ_CHECK(decode_merged_reply(reply, first_field, count, rank, cost, &merged));
    FUZZ_CHECK(verdict.allowed == merged.allowed && verdict.limit == merged.limit &&
               verdict.remaining == merged.remaining && verdict.reset_ms == merged.reset_ms);
    redisReply** fields = reply->element + first_field;
    const auto granted = static_cast<uint64_t>(fields[5]->integer);
    if (rank == 0 && verdict.allowed && granted > 0) {
      FUZZ_CHECK(lease.units == granted);
      FUZZ_CHECK(lease.lease_ms == static_cast<uint64_t>(fields[6]->integer));
      FUZZ_CHECK(lease.mark == static_cast<uint64_t>(fields[7]->integer));
    } else {
      FUZZ_CHECK(lease.units == 0 && lease.lease_ms == 0 && lease.mark == 0);
    }
  }
  return 0;
}
