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

#include <exception>
#include <string>
#include <string_view>

inline std::string_view to_string_view(const ngx_str_t& s) {
  return {reinterpret_cast<const char*>(s.data), s.len};
}

// Every function that nginx or a C library calls into runs its body through
// this: a C++ exception must never unwind through C frames (it would kill the
// worker). It is logged and `failed` is returned instead.
template <class Result, class Body>
Result exception_barrier(ngx_log_t* log, Result failed, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::exception& e) {
    ngx_log_error(NGX_LOG_ALERT, log, 0, "rate_guard: %s", e.what());
  } catch (...) {
    ngx_log_error(NGX_LOG_ALERT, log, 0, "rate_guard: unknown exception");
  }
  return failed;
}

// The same for entry points that return nothing.
template <class Body>
void exception_barrier(ngx_log_t* log, Body&& body) noexcept {
  exception_barrier(log, 0, [&body] {
    body();
    return 0;
  });
}
