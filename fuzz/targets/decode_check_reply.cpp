// decode_check_reply on any reply tree hiredis could hand over (arrays,
// integers, strings, nil, errors, status, nested): never crashes, reads only
// what exists, and accepts exactly an array holding, from zone `first_zone`
// on, 4 * zones non-negative integers (a batch reply holds several requests).
// Input: a byte of zone count (mod 9), one of first zone (mod 9), one whose
// low bit says whether there is a reply, then the tree, depth first: a type
// byte, then 8 bytes of integer, a length byte and the string, or an element
// count byte and the elements.
#include <hiredis/hiredis.h>

#include <cstring>
#include <memory>
#include <vector>

#include "fuzz_target.h"
#include "redis_checker.h"

using namespace rate_guard;

namespace {

struct Input {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  uint8_t byte() { return pos < size ? data[pos++] : 0; }
};

// Owns every node: replies are built by hand, not by hiredis's allocator.
struct Tree {
  std::vector<std::unique_ptr<redisReply>> nodes;
  std::vector<std::unique_ptr<redisReply*[]>> arrays;
  std::vector<std::unique_ptr<char[]>> strings;

  redisReply* build(Input& in, int depth) {
    auto node = std::make_unique<redisReply>();
    std::memset(node.get(), 0, sizeof(redisReply));
    static const int kTypes[] = {REDIS_REPLY_INTEGER, REDIS_REPLY_ARRAY, REDIS_REPLY_STRING,
                                 REDIS_REPLY_NIL,     REDIS_REPLY_ERROR, REDIS_REPLY_STATUS};
    node->type = kTypes[in.byte() % 6];
    if (node->type == REDIS_REPLY_ARRAY && depth >= 4) {
      node->type = REDIS_REPLY_NIL;
    }
    switch (node->type) {
      case REDIS_REPLY_INTEGER: {
        uint64_t value = 0;
        for (int i = 0; i < 8; i++) value = value << 8 | in.byte();
        node->integer = static_cast<long long>(value);
        break;
      }
      case REDIS_REPLY_ARRAY: {
        size_t count = in.byte() % 40;
        auto elements = std::make_unique<redisReply*[]>(count == 0 ? 1 : count);
        for (size_t i = 0; i < count; i++) {
          elements[i] = build(in, depth + 1);
        }
        node->elements = count;
        node->element = count == 0 ? nullptr : elements.get();
        arrays.push_back(std::move(elements));
        break;
      }
      case REDIS_REPLY_STRING:
      case REDIS_REPLY_ERROR:
      case REDIS_REPLY_STATUS: {
        size_t len = in.byte() % 16;
        auto text = std::make_unique<char[]>(len + 1);
        for (size_t i = 0; i < len; i++) text[i] = static_cast<char>(in.byte());
        text[len] = '\0';
        node->str = text.get();
        node->len = len;
        strings.push_back(std::move(text));
        break;
      }
      default:
        break;
    }
    nodes.push_back(std::move(node));
    return nodes.back().get();
  }
};

}  // namespace

RATE_GUARD_FUZZ_TARGET(decode_check_reply) {
  Input in{data, size};
  size_t zones = in.byte() % 9;
  size_t first_zone = in.byte() % 9;
  Tree tree;
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
