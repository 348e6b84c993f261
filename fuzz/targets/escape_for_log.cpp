// escape_for_log: the output is printable ASCII with no '"', every '\' starts
// a \xHH escape, at most 4 * max_bytes + 3 bytes long, and it decodes back to
// the first max_bytes bytes of the input ("..." marks a cut). The overload
// that writes into a buffer of escaped_capacity(max_bytes) bytes (a pool
// buffer in nginx) writes the same and never past it (ASan sees the end).
// Input: two bytes of max_bytes (0..1023), then the key.
#include <algorithm>
#include <memory>
#include <string>

#include "fuzz_target.h"
#include "util/log_escape.h"

using namespace rate_guard;

namespace {
int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;  // escapes are upper case
}
}  // namespace

RATE_GUARD_FUZZ_TARGET(escape_for_log) {
  if (size < 2) {
    return 0;
  }
  size_t max_bytes = (static_cast<size_t>(data[0]) << 8 | data[1]) % 1024;
  std::string_view key = fuzz::as_text(data + 2, size - 2);
  std::string out = escape_for_log(key, max_bytes);

  bool cut = key.size() > max_bytes;
  FUZZ_CHECK(out.size() <= 4 * std::min(key.size(), max_bytes) + (cut ? 3 : 0));
  for (char c : out) {
    FUZZ_CHECK(c >= 0x20 && c <= 0x7e);
    FUZZ_CHECK(c != '"');
  }
  std::string_view body = out;
  if (cut) {
    FUZZ_CHECK(body.size() >= 3 && body.substr(body.size() - 3) == "...");
    body.remove_suffix(3);
  }
  std::string decoded;
  for (size_t i = 0; i < body.size(); i++) {
    if (body[i] != '\\') {
      decoded += body[i];
      continue;
    }
    FUZZ_CHECK(body.size() - i >= 4 && body[i + 1] == 'x');
    int high = hex_value(body[i + 2]);
    int low = hex_value(body[i + 3]);
    FUZZ_CHECK(high >= 0 && low >= 0);
    decoded += static_cast<char>(high << 4 | low);
    i += 3;
  }
  FUZZ_CHECK(decoded == key.substr(0, max_bytes));
  auto buffer = std::make_unique<char[]>(escaped_capacity(max_bytes));
  size_t written = escape_for_log(key, buffer.get(), max_bytes);
  FUZZ_CHECK(written <= escaped_capacity(max_bytes));
  FUZZ_CHECK(std::string_view(buffer.get(), written) == out);
  // The default (256 bytes, what the module logs) obeys the same bound.
  FUZZ_CHECK(escape_for_log(key).size() <= 4 * 256 + 3);
  return 0;
}
