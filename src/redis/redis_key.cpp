#include "redis/redis_key.h"

#include "util/sha256.h"

namespace rate_guard {

namespace {

constexpr char kLowerHex[] = "0123456789abcdef";
constexpr std::string_view kDigestTag = "sha256:";

}  // namespace

std::string_view zone_key_mark(Algorithm algorithm) {
  return algorithm == Algorithm::sliding_window ? "@sw2" : "";
}

void append_redis_key(std::string& out, std::string_view prefix, const ZoneConfig& zone,
                      std::string_view client_key, KeyLayout layout) {
  append_redis_key(out, prefix, zone.name, zone_key_mark(zone.algorithm), client_key, layout);
}

void append_redis_key(std::string& out, std::string_view prefix, std::string_view zone, std::string_view mark,
                      std::string_view client_key, KeyLayout layout) {
  const bool tagged = layout == KeyLayout::hash_tagged;
  // In a hash tag a '}' would end the tag early (a leading one would empty
  // it, and the zone would then choose the slot): such a key goes as its digest.
  const bool digest =
      client_key.size() > kMaxRawKeyBytes || (tagged && client_key.find('}') != std::string_view::npos);
  const size_t key_bytes = digest ? kDigestTag.size() + 64 : client_key.size();
  out.reserve(out.size() + prefix.size() + zone.size() + mark.size() + 1 + key_bytes + (tagged ? 2 : 0));
  out += prefix;
  out += zone;
  out += mark;
  out += ':';
  if (tagged) {
    out += '{';
  }
  if (!digest) {
    out += client_key;
  } else {
    out += kDigestTag;
    for (uint8_t byte : sha256(client_key)) {
      out += kLowerHex[byte >> 4];
      out += kLowerHex[byte & 0x0f];
    }
  }
  if (tagged) {
    out += '}';
  }
}

void append_rule_key(std::string& out, std::string_view prefix, std::string_view zone,
                     std::string_view client_key, KeyLayout layout) {
  append_redis_key(out, prefix, zone, "!rule", client_key, layout);
}

// CRC-16/XMODEM (polynomial 0x1021, initial value 0), the checksum Redis
// Cluster's key slots are taken from.
uint16_t crc16_xmodem(std::string_view data) {
  uint16_t crc = 0;
  for (char c : data) {
    crc ^= static_cast<uint16_t>(static_cast<unsigned char>(c) << 8);
    for (int bit = 0; bit < 8; ++bit) {
      crc = (crc & 0x8000) != 0 ? static_cast<uint16_t>((crc << 1) ^ 0x1021) : static_cast<uint16_t>(crc << 1);
    }
  }
  return crc;
}

uint16_t cluster_key_slot(std::string_view key) {
  // The hash tag: between the first '{' and the first '}' after it, if not empty.
  const size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) {
      key = key.substr(open + 1, close - open - 1);
    }
  }
  return static_cast<uint16_t>(crc16_xmodem(key) % kClusterSlots);
}

}  // namespace rate_guard
