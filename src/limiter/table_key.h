// What the shared-memory tables (the blocked-key cache, the lease table) key
// their entries by: a client key as it fits an entry, and a seeded hash.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

#include "redis/redis_key.h"

namespace rate_guard {

// A seeded 64-bit hash (MurmurHash64A's mixing). Each table's seed is random
// per shared zone, so a client cannot compute keys that collide in it;
// entries compare the whole key anyway, so a collision only evicts.
uint64_t hash_bytes(const void* data, size_t len, uint64_t seed);

// A client key in an entry: its bytes, or for keys longer than
// kMaxRawKeyBytes their SHA-256, as in Redis.
struct TableKey {
  unsigned char bytes[kMaxRawKeyBytes];
  uint8_t len;
  uint8_t digested;

  bool operator==(const TableKey& other) const;
  // The client key itself, when it was short enough to be kept.
  std::string_view raw() const;
};

TableKey make_table_key(std::string_view key);

// A random seed for a new table.
uint64_t random_table_seed();

// Lays a table over `bytes` of `memory` (8-byte aligned): a Header (its
// first fields uint64_t magic, seed, buckets), then buckets of `ways`
// Entries, as many as fit. `initialize` clears it; otherwise the entries
// there are kept when the magic and the bucket count match (a reload that
// kept the shared zone). Returns the header.
template <class Header, class Entry>
Header* lay_out_table(void* memory, size_t bytes, size_t ways, uint64_t magic, bool initialize) {
  auto* header = static_cast<Header*>(memory);
  const size_t buckets = bytes > sizeof(Header) ? (bytes - sizeof(Header)) / (sizeof(Entry) * ways) : 0;
  if (initialize || header->magic != magic || header->buckets != buckets) {
    std::memset(memory, 0, sizeof(Header) + buckets * ways * sizeof(Entry));
    header->magic = magic;
    header->seed = random_table_seed();
    header->buckets = buckets;
  }
  return header;
}

}  // namespace rate_guard
