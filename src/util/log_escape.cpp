#include "util/log_escape.h"

#include <algorithm>

namespace rate_guard {

namespace {

constexpr char kUpperHex[] = "0123456789ABCDEF";

bool is_printable_for_log(unsigned char c) {
  return c >= 0x20 && c <= 0x7e && c != '"' && c != '\\';
}

}  // namespace

size_t escape_for_log(std::string_view bytes, char* out, size_t max_bytes) {
  const bool cut = bytes.size() > max_bytes;
  const std::string_view shown = cut ? bytes.substr(0, max_bytes) : bytes;
  char* p = out;
  for (char c : shown) {
    auto byte = static_cast<unsigned char>(c);
    if (is_printable_for_log(byte)) {
      *p++ = c;
    } else {
      *p++ = '\\';
      *p++ = 'x';
      *p++ = kUpperHex[byte >> 4];
      *p++ = kUpperHex[byte & 0x0f];
    }
  }
  if (cut) {
    *p++ = '.';
    *p++ = '.';
    *p++ = '.';
  }
  return static_cast<size_t>(p - out);
}

std::string escape_for_log(std::string_view bytes, size_t max_bytes) {
  std::string out(escaped_capacity(std::min(bytes.size(), max_bytes)), '\0');
  out.resize(escape_for_log(bytes, out.data(), max_bytes));
  return out;
}

}  // namespace rate_guard
