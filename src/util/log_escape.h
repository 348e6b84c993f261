// Client bytes made safe for a log line: printable ASCII kept, every other
// byte written as \xHH, long values cut.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace rate_guard {

// Printable ASCII is kept except '"' and '\\'; every other byte becomes \xHH.
// Output longer than `max_bytes` of input is cut and ends with "...".
std::string escape_for_log(std::string_view bytes, size_t max_bytes = 256);

// The same into `out`, which has room for escaped_capacity(max_bytes) bytes
// (no allocation: nginx gives a pool buffer). Returns the length written.
constexpr size_t escaped_capacity(size_t max_bytes) { return max_bytes * 4 + 3; }
size_t escape_for_log(std::string_view bytes, char* out, size_t max_bytes = 256);

}  // namespace rate_guard
