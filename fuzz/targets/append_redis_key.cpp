// append_redis_key: appends "<prefix><zone>:<key>" to what `out` holds; a key
// over 64 bytes becomes "sha256:<hex>" (checked against OpenSSL's SHA-256), so
// what is appended is never more than prefix + zone + 1 + 71 bytes.
// Input: a byte of prefix length and one of zone length (mod 32), the prefix,
// the zone, then the client key (any bytes, up to the input's end).
#include <openssl/sha.h>

#include <string>

#include "fuzz_target.h"
#include "redis/redis_key.h"

using namespace rate_guard;

RATE_GUARD_FUZZ_TARGET(append_redis_key) {
  if (size < 2) {
    return 0;
  }
  size_t prefix_len = data[0] % 32;
  size_t zone_len = data[1] % 32;
  if (size < 2 + prefix_len + zone_len) {
    return 0;
  }
  std::string_view prefix = fuzz::as_text(data + 2, prefix_len);
  std::string_view zone = fuzz::as_text(data + 2 + prefix_len, zone_len);
  std::string_view key = fuzz::as_text(data + 2 + prefix_len + zone_len, size - 2 - prefix_len - zone_len);

  const std::string start("EVALSHA\0already-there", 21);  // appended to, never replaced
  std::string out = start;
  const std::string_view mark = (data[1] & 0x80) != 0 ? zone_key_mark(Algorithm::sliding_window) : "";
  append_redis_key(out, prefix, zone, mark, key);

  FUZZ_CHECK(out.compare(0, start.size(), start) == 0);
  std::string_view added = std::string_view(out).substr(start.size());
  FUZZ_CHECK(added.size() <= prefix.size() + zone.size() + mark.size() + 1 + 71);
  std::string head = std::string(prefix) + std::string(zone) + std::string(mark) + ":";
  FUZZ_CHECK(added.substr(0, head.size()) == head);
  std::string_view tail = added.substr(head.size());
  if (key.size() <= 64) {
    FUZZ_CHECK(tail == key);  // binary bytes kept as they are
  } else {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(key.data()), key.size(), digest);
    std::string expected = "sha256:";
    static const char kHex[] = "0123456789abcdef";
    for (unsigned char byte : digest) {
      expected += kHex[byte >> 4];
      expected += kHex[byte & 0x0f];
    }
    FUZZ_CHECK(tail == expected);
  }
  return 0;
}
