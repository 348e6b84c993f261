// fuzz_replay: runs fuzz inputs through the targets without libFuzzer, so the
// committed seeds and every input that once crashed (fuzz/regressions/) are
// replayed by `ctest` with the project's own compiler, and under ASan+UBSan
// in a -DRATE_GUARD_SANITIZE=ON build.
//
//   fuzz_replay DIR              every DIR/{corpus,regressions}/<target>/* file
//   fuzz_replay TARGET FILE...   the given files through one target
//   fuzz_replay --list           the targets
#include <algorithm>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

#include "fuzz_target.h"

namespace rate_guard::fuzz {

namespace {
std::map<std::string, TargetFunction>& targets() {
  static std::map<std::string, TargetFunction> table;
  return table;
}
}  // namespace

bool register_target(const char* name, TargetFunction function) {
  targets()[name] = function;
  return true;
}

}  // namespace rate_guard::fuzz

namespace {

namespace fs = std::filesystem;
using rate_guard::fuzz::targets;

// The input being replayed, named when a target aborts on it.
std::string current_input;

extern "C" void name_the_input(int signal_number) {
  std::fprintf(stderr, "fuzz_replay: the input that failed: %s\n", current_input.c_str());
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

bool run_file(const std::string& target, const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "fuzz_replay: cannot read %s\n", file.c_str());
    return false;
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // A copy of exactly the input's size, so ASan sees any read past its end.
  auto* data = new uint8_t[bytes.size() == 0 ? 1 : bytes.size()];
  std::copy(bytes.begin(), bytes.end(), data);
  current_input = target + " " + file.string();
  targets().at(target)(data, bytes.size());
  delete[] data;
  return true;
}

std::vector<fs::path> files_under(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && entry.path().filename().string()[0] != '.') {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

int replay_tree(const fs::path& root) {
  int failures = 0;
  size_t total = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    fs::path base = root / kind;
    if (!fs::is_directory(base)) {
      continue;
    }
    for (const auto& entry : fs::directory_iterator(base)) {
      if (!entry.is_directory()) {
        continue;
      }
      std::string target = entry.path().filename().string();
      if (targets().count(target) == 0) {
        std::fprintf(stderr, "fuzz_replay: %s names no target\n", entry.path().c_str());
        failures++;
        continue;
      }
      std::vector<fs::path> files = files_under(entry.path());
      for (const fs::path& file : files) {
        failures += run_file(target, file) ? 0 : 1;
      }
      total += files.size();
      std::printf("%-22s %-12s %zu inputs\n", target.c_str(), kind, files.size());
    }
  }
  std::printf("replayed %zu inputs, %d unreadable\n", total, failures);
  return failures == 0 && total > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGABRT, name_the_input);
  std::signal(SIGSEGV, name_the_input);
  if (argc == 2 && std::string(argv[1]) == "--list") {
    for (const auto& [name, function] : targets()) {
      std::printf("%s\n", name.c_str());
    }
    return 0;
  }
  if (argc == 2) {
    return replay_tree(argv[1]);
  }
  if (argc >= 3 && targets().count(argv[1]) != 0) {
    for (int i = 2; i < argc; i++) {
      if (!run_file(argv[1], argv[i])) {
        return 1;
      }
    }
    std::printf("replayed %d inputs through %s\n", argc - 2, argv[1]);
    return 0;
  }
  std::fprintf(stderr, "usage: fuzz_replay DIR | fuzz_replay TARGET FILE... | fuzz_replay --list\n");
  return 2;
}
