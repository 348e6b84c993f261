// split_option: "name=value" splits at the first '=', the name non-empty;
// name + "=" + value gives the token back.
#include <string>

#include "config/rate_parser.h"
#include "fuzz_target.h"

using namespace rate_guard;

RATE_GUARD_FUZZ_TARGET(split_option) {
  std::string_view token = fuzz::as_text(data, size);
  Result<Option> option = split_option(token);
  size_t equals = token.find('=');
  FUZZ_CHECK(option.ok() == (equals != std::string_view::npos && equals > 0));
  if (option.ok()) {
    const Option& o = option.value();
    FUZZ_CHECK(!o.name.empty());
    FUZZ_CHECK(o.name.find('=') == std::string_view::npos);
    FUZZ_CHECK(std::string(o.name) + "=" + std::string(o.value) == std::string(token));
    // Views into the token, not copies that could dangle.
    FUZZ_CHECK(o.name.data() == token.data());
    FUZZ_CHECK(o.value.data() == token.data() + equals + 1);
  }
  return 0;
}
