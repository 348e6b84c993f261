# The check script's header, check_script_lua.h, generated into
# ${RATE_GUARD_GENERATED_DIR} from the files src/lua/check.files lists (see
# embed.sh): listed among a target's sources, it is made before they compile,
# and made again when a .lua file changes.
set(RATE_GUARD_LUA_DIR ${CMAKE_CURRENT_LIST_DIR})
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${RATE_GUARD_LUA_DIR}/check.files)
file(STRINGS ${RATE_GUARD_LUA_DIR}/check.files RATE_GUARD_LUA_FILES REGEX "^[^#]")
list(TRANSFORM RATE_GUARD_LUA_FILES STRIP)
list(TRANSFORM RATE_GUARD_LUA_FILES PREPEND ${RATE_GUARD_LUA_DIR}/)

set(RATE_GUARD_GENERATED_DIR ${CMAKE_CURRENT_BINARY_DIR}/generated)
set(RATE_GUARD_CHECK_SCRIPT_HEADER ${RATE_GUARD_GENERATED_DIR}/check_script_lua.h)
add_custom_command(
  OUTPUT ${RATE_GUARD_CHECK_SCRIPT_HEADER}
  COMMAND sh ${RATE_GUARD_LUA_DIR}/embed.sh -o ${RATE_GUARD_CHECK_SCRIPT_HEADER} kCheckScriptLua
          ${RATE_GUARD_LUA_FILES}
  DEPENDS ${RATE_GUARD_LUA_DIR}/embed.sh ${RATE_GUARD_LUA_DIR}/check.files ${RATE_GUARD_LUA_FILES}
  COMMENT "Embedding the check script (src/lua/)"
  VERBATIM)
