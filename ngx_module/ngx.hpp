// The whole bridge to nginx: every C++ file of ngx_module/ includes this and
// nothing else of nginx.
#pragma once

#if __cplusplus < 201703L
#error "rate_guard needs C++17 (g++ >= 11 uses it by default)"
#endif

extern "C" {
#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
}

#include <string>
#include <string_view>

inline std::string_view to_string_view(const ngx_str_t& s) {
  return {reinterpret_cast<const char*>(s.data), s.len};
}
