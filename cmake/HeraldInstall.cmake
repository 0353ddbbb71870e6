# HeraldInstall: files that name installed paths (the systemd units, the
# sysusers.d and tmpfiles.d entries, the system configuration, herald.pc)
# are written at install time, not at configure time, so that
#     cmake --install build --prefix DIR        (and DESTDIR=... for packages)
# gives units that run DIR/bin/herald-broker and a herald.pc that names
# DIR/include. The install-time half is HeraldInstallConfigure.cmake.
#
#   herald_install_configured(TEMPLATE DIRVAR [SUBDIR dir] [NAME name]
#                             [KEEP_EXISTING] [COPY])
# installs TEMPLATE (its @HERALD_*@ names replaced, see
# HeraldInstallConfigure.cmake) into the install-time directory DIRVAR
# (HERALD_UNITDIR, HERALD_CONFDIR, ...) plus SUBDIR, as NAME (default: the
# template's name without .in). KEEP_EXISTING leaves a file already there
# alone (an operator's edited configuration survives a reinstall); COPY
# replaces nothing (a file that is not a template).
include_guard(GLOBAL)
include(GNUInstallDirs)

set(HERALD_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
    "systemd system units (relative to the prefix, or absolute)")
set(HERALD_SYSUSERS_DIR "lib/sysusers.d" CACHE STRING
    "sysusers.d entries (relative to the prefix, or absolute)")
set(HERALD_TMPFILES_DIR "lib/tmpfiles.d" CACHE STRING
    "tmpfiles.d entries (relative to the prefix, or absolute)")

# The install-time script, once, before any configured file: it turns these
# configure-time directory settings into absolute paths under the prefix the
# install actually uses.
set(_herald_dirs "")
foreach(dir BINDIR LIBDIR INCLUDEDIR SYSCONFDIR LOCALSTATEDIR DATADIR DOCDIR MANDIR)
  string(APPEND _herald_dirs "set(HERALD_GNU_${dir} \"${CMAKE_INSTALL_${dir}}\")\n")
endforeach()
install(CODE "
${_herald_dirs}set(HERALD_GNU_UNITDIR \"${HERALD_SYSTEMD_UNIT_DIR}\")
set(HERALD_GNU_SYSUSERSDIR \"${HERALD_SYSUSERS_DIR}\")
set(HERALD_GNU_TMPFILESDIR \"${HERALD_TMPFILES_DIR}\")
set(HERALD_VERSION \"${PROJECT_VERSION}\")
set(HERALD_STAGE_DIR \"${CMAKE_BINARY_DIR}/install-configured\")
include(\"${CMAKE_CURRENT_LIST_DIR}/HeraldInstallConfigure.cmake\")
")

function(herald_install_configured template dirvar)
  cmake_parse_arguments(ARG "KEEP_EXISTING;COPY" "SUBDIR;NAME" "" ${ARGN})
  get_filename_component(template "${template}" ABSOLUTE)
  if(NOT ARG_NAME)
    get_filename_component(ARG_NAME "${template}" NAME)
    string(REGEX REPLACE "\\.in$" "" ARG_NAME "${ARG_NAME}")
  endif()
  set(options "")
  foreach(option KEEP_EXISTING COPY)
    if(ARG_${option})
      list(APPEND options ${option})
    endif()
  endforeach()
  install(CODE "herald_configure_file(\"${template}\" \"\${${dirvar}}\" \"${ARG_SUBDIR}\" \"${ARG_NAME}\" ${options})")
endfunction()
