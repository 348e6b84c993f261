#include "scripts.h"

// The script's text, kCheckScriptLua: made at build time by src/lua/embed.sh
// from the files that src/lua/check.files lists.
#include "check_script_lua.h"

namespace rate_guard {

const std::string_view kCheckScript = kCheckScriptLua;

}  // namespace rate_guard
