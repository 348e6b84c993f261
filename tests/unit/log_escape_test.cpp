// Specification of the escaping of client keys for the error log.
#include "util/log_escape.h"

#include <gtest/gtest.h>

#include <string>

namespace rate_guard {
namespace {

// ------------------------------------------------------------- escape_for_log

TEST(EscapeForLog, PrintableAsciiIsKept) {
  EXPECT_EQ(escape_for_log("GET /a?b=1 ~x{}"), "GET /a?b=1 ~x{}");
}

TEST(EscapeForLog, QuoteAndBackslashAreEscaped) {
  EXPECT_EQ(escape_for_log("a\"b\\c"), "a\\x22b\\x5Cc");
}

TEST(EscapeForLog, ControlBytesAreEscaped) {
  EXPECT_EQ(escape_for_log(std::string("\r\n\t\x00\x1f", 5)), "\\x0D\\x0A\\x09\\x00\\x1F");
}

TEST(EscapeForLog, DeleteAndHighBytesAreEscaped) {
  EXPECT_EQ(escape_for_log("\x7f\x80\xff"), "\\x7F\\x80\\xFF");
}

TEST(EscapeForLog, EmptyStaysEmpty) { EXPECT_EQ(escape_for_log(""), ""); }

TEST(EscapeForLog, InputLongerThanMaxIsCutWithEllipsis) {
  EXPECT_EQ(escape_for_log("abcdef", 4), "abcd...");
}

TEST(EscapeForLog, InputOfExactlyMaxIsNotCut) { EXPECT_EQ(escape_for_log("abcd", 4), "abcd"); }

TEST(EscapeForLog, CutCountsInputBytesNotEscapedOutput) {
  EXPECT_EQ(escape_for_log("\x01\x02\x03", 2), "\\x01\\x02...");
}

TEST(EscapeForLog, DefaultMaximumIs256Bytes) {
  EXPECT_EQ(escape_for_log(std::string(256, 'a')), std::string(256, 'a'));
  EXPECT_EQ(escape_for_log(std::string(257, 'a')), std::string(256, 'a') + "...");
}

}  // namespace
}  // namespace rate_guard
