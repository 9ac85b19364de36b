# The Debian package (CPack's DEB generator). Build it, after `cmake --build build`:
#
#   cpack --config build/CPackConfig.cmake -B build/package
#
# → build/package/mqledger_<version>_<arch>.deb. Everything it holds is installed by the rules
# below, in the component "deb" that plain `cmake --install` skips (EXCLUDE_FROM_ALL): the
# `cmake --install build --prefix /usr/local` route keeps installing only the binary and the
# examples (daemon/CMakeLists.txt). tests/package/install_test.sh builds it, runs lintian on it
# and installs it into a scratch root.
#
# Layout: /usr/bin/mqledger; /usr/lib/systemd/system/mqledger.service (deploy/mqledger.service
# with /usr paths); /usr/lib/sysusers.d and tmpfiles.d/mqledger.conf; the conffiles
# /etc/mqledger/mqledger.conf and /etc/mqledger/tokens; /usr/share/mqledger/ (Grafana
# dashboard and provisioning, Prometheus example); mqledger(1); /usr/share/doc/mqledger/.

set(deb_dir ${CMAKE_SOURCE_DIR}/deploy/debian)
set(deb_gen ${CMAKE_BINARY_DIR}/deb)
file(MAKE_DIRECTORY ${deb_gen})
set(MQLEDGER_DEB_RELEASE 1)   # the Debian revision: bump it to rebuild the same upstream version
set(MQLEDGER_DEB_VERSION "${PROJECT_VERSION}-${MQLEDGER_DEB_RELEASE}")

# Writes only when the content changes (keeps time stamps, unlike file(WRITE); no @VAR@
# substitution, unlike file(CONFIGURE)).
function(mqledger_write path content)
  if(EXISTS ${path})
    file(READ ${path} old)
    if(old STREQUAL content)
      return()
    endif()
  endif()
  file(WRITE ${path} "${content}")
endfunction()

# Generated files follow their sources: a changed source reruns cmake at the next build.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS
  ${CMAKE_SOURCE_DIR}/deploy/mqledger.service ${CMAKE_SOURCE_DIR}/deploy/mqledger.conf
  ${CMAKE_SOURCE_DIR}/docs/mqledger.1 ${deb_dir}/changelog.in)

# The packaged unit: deploy/mqledger.service with the /usr paths instead of /usr/local (that file
# stays as it is for `cmake --install --prefix /usr/local`), without its install how-to comment.
file(READ ${CMAKE_SOURCE_DIR}/deploy/mqledger.service unit)
foreach(from IN ITEMS "ExecStart=/usr/local/bin/mqledger " "Documentation=file:///usr/local/share/doc/mqledger/")
  string(FIND "${unit}" "${from}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "deploy/mqledger.service has no '${from}': update deploy/packaging.cmake")
  endif()
endforeach()
string(REPLACE "ExecStart=/usr/local/bin/mqledger " "ExecStart=/usr/bin/mqledger " unit "${unit}")
string(REPLACE "Documentation=file:///usr/local/share/doc/mqledger/README.md"
               "Documentation=man:mqledger(1) file:///usr/share/doc/mqledger/README.md" unit "${unit}")
string(REGEX REPLACE "^(#[^\n]*\n)+" "# mqledger.service, installed by the mqledger Debian package. Override settings with\n# `systemctl edit mqledger`; `systemctl reload mqledger` re-reads /etc/mqledger/tokens.\n" unit "${unit}")
mqledger_write(${deb_gen}/mqledger.service "${unit}")

# The packaged configuration: deploy/mqledger.conf, with its example remote database-url turned
# into a comment, so that the built-in default (dbname=mqledger: the local server's socket, peer
# authentication as the system user mqledger) applies until the admin sets one.
file(READ ${CMAKE_SOURCE_DIR}/deploy/mqledger.conf conf)
string(FIND "${conf}" "\ndatabase-url = " at)
if(at EQUAL -1)
  message(FATAL_ERROR "deploy/mqledger.conf has no 'database-url = ' line: update deploy/packaging.cmake")
endif()
string(REPLACE "\ndatabase-url = "
  "\n# Unset, it is `dbname=mqledger`: the local server through /var/run/postgresql, as the role\n# named like the OS user (peer authentication; the unit runs as mqledger). A remote one, e.g.:\n# database-url = "
  conf "${conf}")
mqledger_write(${deb_gen}/mqledger.conf "${conf}")

# Compressed with gzip -9n (no name or time stamp), as Debian policy and lintian want.
function(mqledger_gzip src dst)
  execute_process(COMMAND gzip -9n -c ${src} OUTPUT_FILE ${dst} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "gzip ${src} failed")
  endif()
endfunction()
configure_file(${deb_dir}/changelog.in ${deb_gen}/changelog.Debian @ONLY)
mqledger_gzip(${deb_gen}/changelog.Debian ${deb_gen}/changelog.Debian.gz)
mqledger_gzip(${CMAKE_SOURCE_DIR}/docs/mqledger.1 ${deb_gen}/mqledger.1.gz)

# Relative destinations land under CPACK_PACKAGING_INSTALL_PREFIX (/usr).
set(deb_install COMPONENT deb EXCLUDE_FROM_ALL)
install(TARGETS mqledger RUNTIME DESTINATION bin ${deb_install})
install(FILES ${deb_gen}/mqledger.service DESTINATION lib/systemd/system ${deb_install})
install(FILES ${deb_dir}/sysusers.conf DESTINATION lib/sysusers.d RENAME mqledger.conf ${deb_install})
install(FILES ${deb_dir}/tmpfiles.conf DESTINATION lib/tmpfiles.d RENAME mqledger.conf ${deb_install})
install(FILES ${deb_gen}/mqledger.conf DESTINATION /etc/mqledger ${deb_install})
install(FILES ${CMAKE_SOURCE_DIR}/deploy/tokens.example DESTINATION /etc/mqledger RENAME tokens ${deb_install})
install(FILES ${CMAKE_SOURCE_DIR}/grafana/dashboards/mqledger.json DESTINATION share/mqledger/grafana/dashboards
        ${deb_install})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/grafana/provisioning/ DESTINATION share/mqledger/grafana/provisioning
        FILE_PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ ${deb_install})
install(FILES ${CMAKE_SOURCE_DIR}/deploy/prometheus.yml DESTINATION share/mqledger ${deb_install})
install(FILES ${deb_gen}/mqledger.1.gz DESTINATION share/man/man1 ${deb_install})
install(FILES ${CMAKE_SOURCE_DIR}/README.md ${deb_dir}/copyright ${deb_gen}/changelog.Debian.gz
        DESTINATION share/doc/mqledger ${deb_install})

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME mqledger)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "mqledger")
set(CPACK_PACKAGE_CONTACT "mqledger maintainers <mqledger@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "event-sourced audit ledger of message-queue instance lifecycles")
# Only the component above (the binary stripped), under /usr, staged with DESTDIR for /etc.
set(CPACK_INSTALL_CMAKE_PROJECTS "${CMAKE_BINARY_DIR};mqledger;deb;/")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR}/package)

set(CPACK_DEBIAN_PACKAGE_NAME mqledger)
set(CPACK_DEBIAN_PACKAGE_RELEASE ${MQLEDGER_DEB_RELEASE})
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# The synopsis is CPACK_PACKAGE_DESCRIPTION_SUMMARY; this is the extended description.
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
  "mqledger keeps an append-only, hash-chained log of the lifecycle and
billing events of managed message-queue instances in PostgreSQL. Its
daemon serves an HTTP API that decides and records commands, runs the
timers acting on due instances, exports Prometheus metrics and signs
Merkle-tree checkpoints for auditors; the command line applies the
migrations, verifies and exports the ledger and checks proofs.
.
The package holds the daemon, a hardened systemd unit, the mqledger
system user, the configuration in /etc/mqledger and a Grafana dashboard
with a Prometheus example. The service is not started on installation.")
# Dependencies from the binary's shared libraries (dpkg-shlibdeps), not a hand-written list.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "postgresql")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "prometheus, grafana")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${deb_dir}/conffiles ${deb_dir}/postinst ${deb_dir}/prerm ${deb_dir}/postrm)
# Maintainer scripts 0755, conffiles 0644, whatever the checkout's modes.
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

include(CPack)
