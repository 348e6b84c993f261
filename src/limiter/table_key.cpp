#include "limiter/table_key.h"

#include <cstring>
#include <random>

#include "util/sha256.h"

namespace rate_guard {

uint64_t hash_bytes(const void* data, size_t len, uint64_t seed) {
  constexpr uint64_t m = 0xc6a4a7935bd1e995ULL;
  constexpr int r = 47;
  uint64_t h = seed ^ (len * m);
  const auto* p = static_cast<const unsigned char*>(data);
  const unsigned char* end = p + (len / 8) * 8;
  for (; p != end; p += 8) {
    uint64_t k;
    std::memcpy(&k, p, 8);
    k *= m;
    k ^= k >> r;
    k *= m;
    h ^= k;
    h *= m;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, p, len & 7);
  if ((len & 7) != 0) {
    h ^= tail;
    h *= m;
  }
  h ^= h >> r;
  h *= m;
  h ^= h >> r;
  return h;
}

bool TableKey::operator==(const TableKey& other) const {
  return len == other.len && digested == other.digested && std::memcmp(bytes, other.bytes, len) == 0;
}

std::string_view TableKey::raw() const {
  return digested ? std::string_view() : std::string_view(reinterpret_cast<const char*>(bytes), len);
}

TableKey make_table_key(std::string_view key) {
  TableKey k{};
  if (key.size() > kMaxRawKeyBytes) {
    auto digest = sha256(key);
    std::memcpy(k.bytes, digest.data(), digest.size());
    k.len = static_cast<uint8_t>(digest.size());
    k.digested = 1;
  } else {
    std::memcpy(k.bytes, key.data(), key.size());
    k.len = static_cast<uint8_t>(key.size());
  }
  return k;
}

uint64_t random_table_seed() {
  return (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();
}

}  // namespace rate_guard
