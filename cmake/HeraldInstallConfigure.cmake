# HeraldInstallConfigure: runs at install time (from cmake_install.cmake; see
# HeraldInstall.cmake). CMAKE_INSTALL_PREFIX is the prefix of this install
# (--prefix), HERALD_GNU_* the configured GNUInstallDirs settings.
#
# Names a template may use, all absolute:
#   HERALD_PREFIX HERALD_BINDIR HERALD_LIBDIR HERALD_INCLUDEDIR HERALD_DOCDIR
#   HERALD_MANDIR HERALD_UNITDIR HERALD_SYSUSERSDIR HERALD_TMPFILESDIR
#   HERALD_CONFDIR    SYSCONFDIR/herald: herald.yaml, templates/, herald.env
#   HERALD_STATEDIR   LOCALSTATEDIR/lib/herald: the store and the outboxes
#   HERALD_CONFIG     HERALD_CONFDIR/herald.yaml
#   HERALD_VERSION

# GNUInstallDirs' rule for CMAKE_INSTALL_FULL_<dir>: relative to the prefix,
# except etc and var under the prefixes / and /usr (/etc, /var) and /opt/X
# (/etc/opt/X, /var/opt/X).
function(herald_full_dir out kind dir)
  set(prefix "${CMAKE_INSTALL_PREFIX}")
  string(REGEX REPLACE "/+$" "" prefix "${prefix}")
  if(IS_ABSOLUTE "${dir}")
    set(full "${dir}")
  elseif(kind MATCHES "^(SYSCONFDIR|LOCALSTATEDIR)$" AND (prefix STREQUAL "" OR prefix STREQUAL "/usr"))
    set(full "/${dir}")
  elseif(kind MATCHES "^(SYSCONFDIR|LOCALSTATEDIR)$" AND prefix MATCHES "^/opt/(.+)$")
    set(full "/${dir}/opt/${CMAKE_MATCH_1}")
  else()
    set(full "${prefix}/${dir}")
  endif()
  set(${out} "${full}" PARENT_SCOPE)
endfunction()

set(HERALD_PREFIX "${CMAKE_INSTALL_PREFIX}")
foreach(kind BINDIR LIBDIR INCLUDEDIR SYSCONFDIR LOCALSTATEDIR DATADIR DOCDIR MANDIR
             UNITDIR SYSUSERSDIR TMPFILESDIR)
  herald_full_dir(HERALD_${kind} ${kind} "${HERALD_GNU_${kind}}")
endforeach()
set(HERALD_CONFDIR "${HERALD_SYSCONFDIR}/herald")
set(HERALD_STATEDIR "${HERALD_LOCALSTATEDIR}/lib/herald")
set(HERALD_CONFIG "${HERALD_CONFDIR}/herald.yaml")

#   herald_configure_file(TEMPLATE DIR SUBDIR NAME [KEEP_EXISTING] [COPY])
function(herald_configure_file template dir subdir name)
  cmake_parse_arguments(ARG "KEEP_EXISTING;COPY" "" "" ${ARGN})
  if(subdir)
    string(APPEND dir "/${subdir}")
  endif()
  if(ARG_KEEP_EXISTING AND EXISTS "$ENV{DESTDIR}${dir}/${name}")
    message(STATUS "Kept: $ENV{DESTDIR}${dir}/${name} (already there)")
    return()
  endif()
  string(MD5 stage "${dir}/${name}")
  set(staged "${HERALD_STAGE_DIR}/${stage}/${name}")
  if(ARG_COPY)
    configure_file("${template}" "${staged}" COPYONLY)
  else()
    configure_file("${template}" "${staged}" @ONLY)
  endif()
  file(INSTALL DESTINATION "${dir}" TYPE FILE FILES "${staged}")
  # file(INSTALL) lists what it wrote in this (function) scope's variable;
  # install_manifest.txt is written from the caller's.
  set(CMAKE_INSTALL_MANIFEST_FILES "${CMAKE_INSTALL_MANIFEST_FILES}" PARENT_SCOPE)
endfunction()
