// parse_redis_config (the arguments of rate_guard_redis, split on spaces): a
// success is an address hiredis can be given and options in their ranges.
#include "config/redis_config.h"
#include "fuzz_target.h"
#include "split_words.h"

using namespace rate_guard;

RATE_GUARD_FUZZ_TARGET(parse_redis_config) {
  std::vector<std::string_view> words = fuzz::split_words(fuzz::as_text(data, size));
  Result<RedisConfig> parsed = parse_redis_config(words);
  if (!parsed.ok()) {
    FUZZ_CHECK(!parsed.error().empty());
    return 0;
  }
  const RedisConfig& config = parsed.value();
  if (!config.unix_path.empty()) {
    FUZZ_CHECK(config.host.empty());
    FUZZ_CHECK(config.unix_path[0] == '/');
    FUZZ_CHECK(config.unix_path.size() <= 107);  // fits sun_path with its NUL
    FUZZ_CHECK(config.unix_path.find('\0') == std::string::npos);
    FUZZ_CHECK(words[0] == "unix:" + config.unix_path);
  } else {
    FUZZ_CHECK(!config.host.empty());
    FUZZ_CHECK(config.port >= 1);
    FUZZ_CHECK(config.host.find('\0') == std::string::npos);
    FUZZ_CHECK(words[0].find(config.host) != std::string_view::npos);
  }
  FUZZ_CHECK(config.connect_timeout_ms >= 1 && config.connect_timeout_ms <= 60000);
  FUZZ_CHECK(config.timeout_ms >= 1 && config.timeout_ms <= 60000);
  FUZZ_CHECK(!config.prefix.empty());
  for (char c : config.prefix) {
    FUZZ_CHECK(c > ' ' && c <= '~');  // printable, no space: a key prefix
  }
  FUZZ_CHECK(config.username.empty() || !config.password.empty());
  FUZZ_CHECK(config.db <= 2147483647u);
  return 0;
}
