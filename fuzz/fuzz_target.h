// One fuzz target: RATE_GUARD_FUZZ_TARGET(name) { ... return 0; } defines the
// body that receives each input. Built with clang's -fsanitize=fuzzer it is
// libFuzzer's LLVMFuzzerTestOneInput (one executable per target); built
// without (RATE_GUARD_FUZZ_REPLAY) it registers in a table that fuzz_replay
// uses to run the committed corpus and regression inputs with any compiler.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

namespace rate_guard::fuzz {

using TargetFunction = int (*)(const uint8_t* data, size_t size);
bool register_target(const char* name, TargetFunction function);

inline std::string_view as_text(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A property that must hold for every input: a failure aborts, which
// libFuzzer reports as a crash and keeps the input.
[[noreturn]] inline void property_failed(const char* file, int line, const char* what) {
  std::fprintf(stderr, "%s:%d: property failed: %s\n", file, line, what);
  std::abort();
}

}  // namespace rate_guard::fuzz

#define FUZZ_CHECK(condition)                                                     \
  do {                                                                            \
    if (!(condition)) {                                                           \
      ::rate_guard::fuzz::property_failed(__FILE__, __LINE__, #condition);        \
    }                                                                             \
  } while (0)

#ifdef RATE_GUARD_FUZZ_REPLAY
#define RATE_GUARD_FUZZ_TARGET(name)                                                        \
  static int fuzz_target_##name(const uint8_t* data, size_t size);                          \
  [[maybe_unused]] static const bool fuzz_registered_##name =                               \
      ::rate_guard::fuzz::register_target(#name, fuzz_target_##name);                       \
  static int fuzz_target_##name(const uint8_t* data, size_t size)
#else
#define RATE_GUARD_FUZZ_TARGET(name) \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
#endif
