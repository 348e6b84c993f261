// The check script: malformed arguments.
#include "check_script_fixture.h"

namespace rate_guard {
namespace {

using namespace check_script;  // NOLINT(google-build-using-namespace)

// ==================================================================== errors

TEST_F(CheckScriptTest, UnknownAlgorithmIsAnErrorReply) {
  Reply reply =
      command({"EVALSHA", sha_, "2", "client", "client!rule", "0", "1", "1", "7", "10", "1000", "10", "1"});
  EXPECT_EQ(reply->type, REDIS_REPLY_ERROR);
  EXPECT_FALSE(exists("client"));
}

TEST_F(CheckScriptTest, ZeroWindowIsAnErrorReply) {
  Reply reply =
      command({"EVALSHA", sha_, "2", "client", "client!rule", "0", "1", "1", "1", "10", "0", "10", "1"});
  EXPECT_EQ(reply->type, REDIS_REPLY_ERROR);
}

TEST_F(CheckScriptTest, ArgumentsThatDoNotMatchTheLayoutAreAnErrorReply) {
  // (Every zone's state key, then its rule key: see lua/check_script.h.)
  const std::vector<std::vector<std::string_view>> calls = {
      // no request count
      {"2", "client", "client!rule", "0"},
      // the old layout: one request, 5 arguments, no counts
      {"2", "client", "client!rule", "0", "1", "10", "1000", "10", "1"},
      // an argument short, an argument too many
      {"2", "client", "client!rule", "0", "1", "1", "1", "10", "1000", "10"},
      {"2", "client", "client!rule", "0", "1", "1", "1", "10", "1000", "10", "1", "1"},
      // a key without zone, a zone without key
      {"4", "a", "b", "a!rule", "b!rule", "0", "1", "1", "1", "10", "1000", "10", "1"},
      {"2", "a", "a!rule", "0", "1", "2", "1", "10", "1000", "10", "1", "1", "10", "1000", "10", "1"},
      // a request of no zone
      {"2", "a", "a!rule", "0", "1", "0", "1", "10", "1000", "10", "1"},
      // request counts that are not whole numbers of requests
      {"2", "a", "a!rule", "0", "-1", "1", "1", "10", "1000", "10", "1"},
      {"2", "a", "a!rule", "0", "1.5", "1", "1", "10", "1000", "10", "1"},
      {"2", "a", "a!rule", "0", "x", "1", "1", "10", "1000", "10", "1"},
      {"2", "a", "a!rule", "0", "2", "1", "1", "10", "1000", "10", "1"},
      // an empty batch with a key or an argument
      {"2", "a", "a!rule", "0", "0"},
      {"0", "0", "0", "1"},
  };
  for (const std::vector<std::string_view>& call : calls) {
    std::vector<std::string_view> args = {"EVALSHA", sha_};
    args.insert(args.end(), call.begin(), call.end());
    Reply reply = command(args);
    std::string shown;
    for (std::string_view arg : call) {
      shown.append(arg).append(" ");
    }
    EXPECT_EQ(reply->type, REDIS_REPLY_ERROR) << shown;
  }
  EXPECT_EQ(integer({"DBSIZE"}), 0);
}

// Every argument is checked before anything is recorded. (A cost of 0 is a
// peek in a plain request, an error only in the other entries: see
// check_script_charge_test.cpp.)
TEST_F(CheckScriptTest, ABadRequestAnywhereInABatchRecordsNothing) {
  const std::vector<std::vector<std::string_view>> bad = {
      {"1", "2", "10", "0", "10", "1"},           // b: window 0
      {"1", "2", "10", "1000", "10", "-1"},       // b: cost below 0
      {"0", "3", "2", "10", "1000", "10", "0"},   // b: 3 merged, cost 0
  };
  for (const std::vector<std::string_view>& b : bad) {
    std::vector<std::string_view> args = {"EVALSHA", sha_, "4", "a", "b", "a!rule", "b!rule", "0", "2",  //
                                          "1", "2", "10", "1000", "10", "1"};  // a: fixed_window
    args.insert(args.end(), b.begin(), b.end());
    Reply reply = command(args);
    EXPECT_EQ(reply->type, REDIS_REPLY_ERROR) << b[0];
  }
  EXPECT_EQ(integer({"DBSIZE"}), 0);
}

// R = 0: the reply is an empty array, and Redis is left alone.
TEST_F(CheckScriptTest, AnEmptyBatchIsAnsweredWithAnEmptyArray) {
  Reply reply = command({"EVALSHA", sha_, "0", "0", "0"});
  ASSERT_EQ(reply->type, REDIS_REPLY_ARRAY);
  EXPECT_EQ(reply->elements, 0u);
  EXPECT_TRUE(check_batch(kT0, {}).empty());
  EXPECT_EQ(integer({"DBSIZE"}), 0);
}

}  // namespace
}  // namespace rate_guard
