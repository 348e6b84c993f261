# Installing the module where Debian's nginx looks for it, and a .deb built
# the way Debian's own libnginx-mod-* packages are laid out.
#   cmake --install build             (module, modules-available snippet, modules-enabled link,
#                                      the rate-guard-ctl helper)
#   cmake --build build --target deb  (build/libnginx-mod-http-rate-guard_VERSION_ARCH.deb)

set(RATE_GUARD_MODULES_DIR "/usr/lib/nginx/modules" CACHE PATH "where nginx loads modules from")
set(RATE_GUARD_MODULES_AVAILABLE_DIR "/usr/share/nginx/modules-available" CACHE PATH
    "where Debian keeps the load_module snippets of module packages")
set(RATE_GUARD_MODULES_ENABLED_DIR "/etc/nginx/modules-enabled" CACHE PATH
    "the snippets nginx.conf includes")
set(RATE_GUARD_BIN_DIR "/usr/bin" CACHE PATH "where the rate-guard-ctl helper goes")
set(RATE_GUARD_CTL ${CMAKE_SOURCE_DIR}/tools/rate-guard-ctl)

install(FILES ${RATE_GUARD_MODULE} DESTINATION ${RATE_GUARD_MODULES_DIR}
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/mod-http-rate-guard.conf
        DESTINATION ${RATE_GUARD_MODULES_AVAILABLE_DIR})
# Bans and per-key overrides (issue 15): a Python 3 script, standard library only.
install(PROGRAMS ${RATE_GUARD_CTL} DESTINATION ${RATE_GUARD_BIN_DIR})
install(CODE "
  file(MAKE_DIRECTORY \"\$ENV{DESTDIR}${RATE_GUARD_MODULES_ENABLED_DIR}\")
  file(CREATE_LINK ${RATE_GUARD_MODULES_AVAILABLE_DIR}/mod-http-rate-guard.conf
       \"\$ENV{DESTDIR}${RATE_GUARD_MODULES_ENABLED_DIR}/50-mod-http-rate-guard.conf\" SYMBOLIC)
  message(STATUS \"Enabled: ${RATE_GUARD_MODULES_ENABLED_DIR}/50-mod-http-rate-guard.conf\")")

# The nginx ABI the module was built for: Debian's nginx "Provides" it, and
# the package depends on it, so it never installs next to an nginx that
# could not load it.
execute_process(COMMAND dpkg-query -W -f=\${Provides} nginx
                OUTPUT_VARIABLE nginx_provides ERROR_QUIET)
string(REGEX MATCH "nginx-abi-[^ ,]+" RATE_GUARD_NGINX_ABI "${nginx_provides}")
execute_process(COMMAND dpkg --print-architecture OUTPUT_VARIABLE deb_arch
                OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)

set(RATE_GUARD_DEB ${CMAKE_BINARY_DIR}/libnginx-mod-http-rate-guard_${PROJECT_VERSION}_${deb_arch}.deb)
set(deb_root ${CMAKE_BINARY_DIR}/deb-root)
# hiredis is linked in (statically, its symbols local: see config), so the
# package needs no libhiredis at runtime, only the C and C++ runtimes; and
# python3 for rate-guard-ctl.
set(deb_depends "libc6, libstdc++6, libgcc-s1, python3")
if(RATE_GUARD_NGINX_ABI)
  string(PREPEND deb_depends "${RATE_GUARD_NGINX_ABI}, ")
endif()
configure_file(${CMAKE_SOURCE_DIR}/packaging/debian/control.in ${CMAKE_BINARY_DIR}/deb-control @ONLY)

add_custom_command(
  OUTPUT ${RATE_GUARD_DEB}
  COMMAND ${CMAKE_COMMAND} -E rm -rf ${deb_root}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${deb_root}/DEBIAN ${deb_root}${RATE_GUARD_MODULES_DIR}
          ${deb_root}${RATE_GUARD_MODULES_AVAILABLE_DIR} ${deb_root}/usr/share/doc/libnginx-mod-http-rate-guard
          ${deb_root}${RATE_GUARD_BIN_DIR}
  COMMAND ${CMAKE_COMMAND} -E copy ${RATE_GUARD_MODULE} ${deb_root}${RATE_GUARD_MODULES_DIR}/
  COMMAND strip --strip-unneeded ${deb_root}${RATE_GUARD_MODULES_DIR}/ngx_http_rate_guard_module.so
  COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_SOURCE_DIR}/packaging/mod-http-rate-guard.conf
          ${deb_root}${RATE_GUARD_MODULES_AVAILABLE_DIR}/
  COMMAND ${CMAKE_COMMAND} -E copy ${RATE_GUARD_CTL} ${deb_root}${RATE_GUARD_BIN_DIR}/
  COMMAND chmod 0755 ${deb_root}${RATE_GUARD_BIN_DIR}/rate-guard-ctl
  COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_SOURCE_DIR}/README.md
          ${deb_root}/usr/share/doc/libnginx-mod-http-rate-guard/
  COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_BINARY_DIR}/deb-control ${deb_root}/DEBIAN/control
  COMMAND ${CMAKE_COMMAND} -E copy ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
          ${CMAKE_SOURCE_DIR}/packaging/debian/prerm ${CMAKE_SOURCE_DIR}/packaging/debian/postrm
          ${deb_root}/DEBIAN/
  COMMAND chmod 0755 ${deb_root}/DEBIAN/postinst ${deb_root}/DEBIAN/prerm ${deb_root}/DEBIAN/postrm
  COMMAND dpkg-deb --root-owner-group --build ${deb_root} ${RATE_GUARD_DEB}
  DEPENDS ${RATE_GUARD_MODULE} ${CMAKE_BINARY_DIR}/deb-control ${RATE_GUARD_CTL}
          ${CMAKE_SOURCE_DIR}/packaging/mod-http-rate-guard.conf ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
          ${CMAKE_SOURCE_DIR}/packaging/debian/prerm ${CMAKE_SOURCE_DIR}/packaging/debian/postrm
  COMMENT "Building ${RATE_GUARD_DEB}")
# Part of the default build: the deb_package test installs it.
add_custom_target(deb ALL DEPENDS ${RATE_GUARD_DEB})
# The module's rule belongs to nginx_module: build it there, first.
add_dependencies(deb nginx_module)

# Installs the package for real, loads it into Debian's nginx, removes it.
add_test(NAME deb_package COMMAND ${CMAKE_SOURCE_DIR}/tests/e2e/deb_package.sh ${RATE_GUARD_DEB})
set_tests_properties(deb_package PROPERTIES LABELS e2e TIMEOUT 120 RUN_SERIAL TRUE)
