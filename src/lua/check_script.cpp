#include "lua/check_script.h"

#include <cstdint>

#include "config/zone_config.h"

// The script's text, kCheckScriptLua: made at build time by src/lua/embed.sh
// from the files that src/lua/check.files lists.
#include "check_script_lua.h"

namespace rate_guard {

const std::string_view kCheckScript = kCheckScriptLua;

namespace {

// Whether the script declares `local NAME = VALUE`, VALUE alone on its line
// (a whole number, maybe negative): the numbers the C++ side sends and reads
// are the ones the Lua names.
constexpr bool declares(std::string_view script, std::string_view name, int64_t value) {
  constexpr std::string_view kLocal = "local ";
  for (size_t at = script.find(kLocal); at != std::string_view::npos; at = script.find(kLocal, at + 1)) {
    std::string_view rest = script.substr(at + kLocal.size());
    if (rest.substr(0, name.size()) != name || rest.substr(name.size(), 3) != " = ") {
      continue;
    }
    rest = rest.substr(name.size() + 3);
    const bool negative = !rest.empty() && rest[0] == '-';
    if (negative) {
      rest = rest.substr(1);
      value = -value;
    }
    if (value < 0) {
      return false;
    }
    uint64_t number = 0;
    size_t digits = 0;
    while (digits < rest.size() && rest[digits] >= '0' && rest[digits] <= '9') {
      number = number * 10 + static_cast<uint64_t>(rest[digits] - '0');
      digits++;
    }
    return digits > 0 && digits < rest.size() && rest[digits] == '\n' && number == static_cast<uint64_t>(value);
  }
  return false;
}

constexpr int64_t code(Algorithm algorithm) { return static_cast<int64_t>(algorithm); }

static_assert(declares(kCheckScriptLua, "SLIDING_WINDOW", code(Algorithm::sliding_window)),
              "src/lua/prelude.lua: SLIDING_WINDOW must be Algorithm::sliding_window");
static_assert(declares(kCheckScriptLua, "SLIDING_LOG", code(Algorithm::sliding_log)),
              "src/lua/prelude.lua: SLIDING_LOG must be Algorithm::sliding_log");
static_assert(declares(kCheckScriptLua, "FIXED_WINDOW", code(Algorithm::fixed_window)),
              "src/lua/prelude.lua: FIXED_WINDOW must be Algorithm::fixed_window");
static_assert(declares(kCheckScriptLua, "TOKEN_BUCKET", code(Algorithm::token_bucket)),
              "src/lua/prelude.lua: TOKEN_BUCKET must be Algorithm::token_bucket");
// arguments.lua accepts the codes from SLIDING_WINDOW to TOKEN_BUCKET.
static_assert(code(Algorithm::sliding_window) == 0 && code(Algorithm::token_bucket) == 3,
              "the algorithm codes must run from sliding_window to token_bucket");
static_assert(declares(kCheckScriptLua, "ARGS_PER_ZONE", kCheckArgsPerZone),
              "src/lua/prelude.lua: ARGS_PER_ZONE must be kCheckArgsPerZone");
static_assert(declares(kCheckScriptLua, "REPLY_FIELDS_PER_ZONE", kCheckReplyFieldsPerZone),
              "src/lua/prelude.lua: REPLY_FIELDS_PER_ZONE must be kCheckReplyFieldsPerZone");
static_assert(declares(kCheckScriptLua, "MERGED", kCheckMergedHeader),
              "src/lua/prelude.lua: MERGED must be kCheckMergedHeader");
static_assert(declares(kCheckScriptLua, "REPLY_FIELDS_PER_MERGED", kCheckReplyFieldsPerMerged),
              "src/lua/prelude.lua: REPLY_FIELDS_PER_MERGED must be kCheckReplyFieldsPerMerged");
static_assert(declares(kCheckScriptLua, "LEASE", kCheckLeaseHeader),
              "src/lua/prelude.lua: LEASE must be kCheckLeaseHeader");
static_assert(declares(kCheckScriptLua, "REPLY_FIELDS_PER_LEASE", kCheckReplyFieldsPerLease),
              "src/lua/prelude.lua: REPLY_FIELDS_PER_LEASE must be kCheckReplyFieldsPerLease");
static_assert(declares(kCheckScriptLua, "HAND_BACK", kCheckHandBackHeader),
              "src/lua/prelude.lua: HAND_BACK must be kCheckHandBackHeader");
static_assert(declares(kCheckScriptLua, "REPLY_FIELDS_PER_HAND_BACK", kCheckReplyFieldsPerHandBack),
              "src/lua/prelude.lua: REPLY_FIELDS_PER_HAND_BACK must be kCheckReplyFieldsPerHandBack");
static_assert(declares(kCheckScriptLua, "LEASE_SHARE", kLeaseShare),
              "src/lua/prelude.lua: LEASE_SHARE must be kLeaseShare");
static_assert(declares(kCheckScriptLua, "MAX_LEASE_LIFETIME_MS", kMaxLeaseLifetimeMs),
              "src/lua/prelude.lua: MAX_LEASE_LIFETIME_MS must be kMaxLeaseLifetimeMs");
static_assert(declares(kCheckScriptLua, "CHARGE", kCheckChargeHeader),
              "src/lua/prelude.lua: CHARGE must be kCheckChargeHeader");
static_assert(declares(kCheckScriptLua, "REPLY_FIELDS_PER_CHARGE", kCheckReplyFieldsPerCharge),
              "src/lua/prelude.lua: REPLY_FIELDS_PER_CHARGE must be kCheckReplyFieldsPerCharge");
static_assert(declares(kCheckScriptLua, "RULE_BANNED", kRuleBanned),
              "src/lua/prelude.lua: RULE_BANNED must be kRuleBanned");
static_assert(declares(kCheckScriptLua, "RULE_OVERRIDE", kRuleOverride),
              "src/lua/prelude.lua: RULE_OVERRIDE must be kRuleOverride");
// arguments.lua tells the entries apart by these headers: a plain request's
// zone count is 1 or more.
static_assert(kCheckChargeHeader < kCheckHandBackHeader && kCheckHandBackHeader < kCheckLeaseHeader &&
                  kCheckLeaseHeader < kCheckMergedHeader && kCheckMergedHeader < 1,
              "the entry headers must lie below a plain request's zone count");
// An event is k * 2 + its kind.
static_assert(kRuleBanned == 0 && kRuleOverride == 1, "a rule event's kind must be 0 or 1");

}  // namespace

}  // namespace rate_guard
