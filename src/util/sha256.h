// SHA-256 (FIPS 180-4), for the digest that stands in for a long client key.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace rate_guard {

std::array<uint8_t, 32> sha256(std::string_view data);

}  // namespace rate_guard
