// The fuzz input as directive arguments: split on spaces (empty words kept,
// as a parser may be handed them by another caller).
#pragma once

#include <string_view>
#include <vector>

namespace rate_guard::fuzz {

inline std::vector<std::string_view> split_words(std::string_view text) {
  std::vector<std::string_view> words;
  size_t start = 0;
  while (true) {
    size_t space = text.find(' ', start);
    words.push_back(text.substr(start, space == std::string_view::npos ? space : space - start));
    if (space == std::string_view::npos) {
      return words;
    }
    start = space + 1;
  }
}

// The value of the one argument "name=..." in `words`, if any.
inline bool find_option(const std::vector<std::string_view>& words, std::string_view name,
                        std::string_view* value) {
  for (std::string_view word : words) {
    if (word.size() > name.size() && word.substr(0, name.size()) == name && word[name.size()] == '=') {
      *value = word.substr(name.size() + 1);
      return true;
    }
  }
  return false;
}

}  // namespace rate_guard::fuzz
