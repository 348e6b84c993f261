// The Redis key layout: where a zone and a client key go in a Redis key, and
// Redis Cluster's key slot of a key.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/zone_config.h"

namespace rate_guard {

// Client keys longer than this are replaced by their digest, so that a client
// cannot grow Redis memory by sending huge header values.
constexpr size_t kMaxRawKeyBytes = 64;

// Where a client key stands in its Redis key. With Redis Cluster it is a hash
// tag, "<prefix><zone>:{<client_key>}", so that the zones of one client share
// a slot and one script call checks them all.
enum class KeyLayout : uint8_t { plain, hash_tagged };

// What follows a zone's name in its keys: the layout of its state, when an
// earlier release kept another one under the plain name. "@sw2" for
// sliding_window (16 sub-window counters; the previous release's
// two-counter state is at "<zone>:"), so that in a fleet being upgraded the
// two versions never share a key. Zone names are [A-Za-z0-9_-]: no key of
// one layout can be another's.
std::string_view zone_key_mark(Algorithm algorithm);

// Appends "<prefix><zone><mark>:<client_key>" (or the hash-tagged form) to
// `out`, the mark being zone_key_mark(zone.algorithm); a client key longer
// than kMaxRawKeyBytes (or, hash-tagged, holding a '}') is written as
// "sha256:<64 hex digits>" instead (71 bytes, so no raw key can take that
// form). Binary bytes are kept as they are: Redis arguments are
// length-prefixed.
void append_redis_key(std::string& out, std::string_view prefix, const ZoneConfig& zone,
                      std::string_view client_key, KeyLayout layout = KeyLayout::plain);
// The same with the zone's name and mark given.
void append_redis_key(std::string& out, std::string_view prefix, std::string_view zone, std::string_view mark,
                      std::string_view client_key, KeyLayout layout = KeyLayout::plain);

// Appends the key of the operator's rules (a ban, an override) for a zone
// and client key: "<prefix><zone>!rule:<client_key>", digested and
// hash-tagged as the zone's state keys (so in their slot). One per zone,
// whatever its algorithm; '!' is in no zone name, so no state key is one.
void append_rule_key(std::string& out, std::string_view prefix, std::string_view zone,
                     std::string_view client_key, KeyLayout layout = KeyLayout::plain);

// Redis Cluster's key slot: CRC16 of the key's hash tag (or of the whole key
// without one) modulo 16384, as CLUSTER KEYSLOT computes it.
constexpr uint16_t kClusterSlots = 16384;
uint16_t crc16_xmodem(std::string_view data);
uint16_t cluster_key_slot(std::string_view key);

}  // namespace rate_guard
