// A hiredis reply tree built from fuzz input bytes, depth first: a type byte,
// then 8 bytes of integer, a length byte and the string, or an element count
// byte and the elements (arrays at most 4 deep). Shared by the targets that
// read replies.
#pragma once

#include <hiredis/hiredis.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace rate_guard::fuzz {

struct Input {
  const uint8_t* data;
  size_t size;
  size_t pos = 0;
  uint8_t byte() { return pos < size ? data[pos++] : 0; }
};

// Owns every node: replies are built by hand, not by hiredis's allocator.
struct ReplyTree {
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


}  // namespace rate_guard::fuzz
