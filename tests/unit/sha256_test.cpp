// Specification of the key digest (SHA-256).
#include "util/sha256.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <ostream>
#include <string>

namespace rate_guard {
namespace {

std::string hex(const std::array<uint8_t, 32>& digest) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t byte : digest) {
    out += kDigits[byte >> 4];
    out += kDigits[byte & 0x0f];
  }
  return out;
}

// ---------------------------------------------------------------------- sha256

struct Vector {
  std::string message;
  std::string digest;
};
std::ostream& operator<<(std::ostream& os, const Vector& vector) {
  return os << vector.message.size() << " bytes -> " << vector.digest;
}

class Sha256 : public testing::TestWithParam<Vector> {};

TEST_P(Sha256, MatchesTheKnownDigest) {
  EXPECT_EQ(hex(sha256(GetParam().message)), GetParam().digest);
}

// FIPS 180-4 / NIST CAVP examples.
INSTANTIATE_TEST_SUITE_P(
    StandardVectors, Sha256,
    testing::Values(
        Vector{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        Vector{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        Vector{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
               "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        Vector{"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqkl"
               "mnopqrlmnopqrsmnopqrstnopqrstu",
               "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"}));

// Lengths around the padding boundaries: 55 bytes is the longest message whose
// padding fits in its last block, 56 needs a second one; 64 fills a block.
INSTANTIATE_TEST_SUITE_P(
    PaddingBoundaries, Sha256,
    testing::Values(Vector{std::string(55, 'a'),
                           "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
                    Vector{std::string(56, 'a'),
                           "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
                    Vector{std::string(63, 'a'),
                           "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
                    Vector{std::string(64, 'a'),
                           "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
                    Vector{std::string(65, 'a'),
                           "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
                    Vector{std::string(119, 'a'),
                           "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
                    Vector{std::string(120, 'a'),
                           "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"}));

TEST(Sha256Digest, OneMillionLetterA) {
  EXPECT_EQ(hex(sha256(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Digest, EveryByteValueIncludingNul) {
  std::string all_bytes;
  for (int i = 0; i < 256; ++i) {
    all_bytes += static_cast<char>(i);
  }
  EXPECT_EQ(hex(sha256(all_bytes)),
            "40aff2e9d2d8922e47afd4648e6967497158785fbd1da870e7110266bf944880");
}

}  // namespace
}  // namespace rate_guard
